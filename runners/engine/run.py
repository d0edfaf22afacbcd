"""The engine: runs a compiled Plan step by step, journaling each result before it is used.

Flow of one run::

    Run(plan, inputs, journal).execute()
      → replay the journal (resume: finished steps are restored, not run again)
      → main steps as a DAG: every step whose needs are done starts; ready steps run together
      → on failure: no new main steps start, running ones finish, then the onError steps
      → the finally steps, always
      → outputs rendered, the end recorded, a RunResult returned

Cancelling and interrupting are different stops. ``cancel()`` ends the run: the running main
steps are cancelled, ``finally`` runs, ``Cancelled`` is recorded. ``interrupt()`` is what a
process does when it is told to go away (a pod evicted, Ctrl-C on a journaled run): no new
step, foreach item or retry starts, steps in flight may finish within a grace period and are
journaled, and ``execute`` raises ``RunInterrupted`` without recording an end, so the same
journal resumes the run after its last recorded step.

A step: ``if`` decides whether it runs (a step without ``if`` is skipped when a step it needs
was skipped: the branch was not taken); ``foreach`` runs the action once per item with a
concurrency limit, outputs in input order; each call is retried under the step's retry policy
(only retryable errors, unless ``retryOn: any``), with per-attempt timeouts. Connector errors,
expression errors and parameter errors all end as a readable message on the step; nothing is
raised out of ``execute`` but cancellation of the caller.

A step whose Integration has limits (``rateLimit``, ``maxConcurrency``) makes each call (one
attempt, one foreach item) inside a ``limiter.slot``: the wait for the slot counts against the
step's timeout, and a slot not had in time is a retryable error under the step's policy.

The work is in three parts, each readable alone: ``scheduling`` (the DAG, failures, stops),
``steps`` (a step's condition, items, attempts and calls) and ``journaling`` (recording and
restoring); ``Run`` adds the public face: construction, ``cancel``, ``interrupt``,
``execute``. The engine is the same in every place a run happens (laptop, Job, pool); only the
journal, the integration provider, the limiter and the observer differ.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, NoReturn

from autoflow.connectors import sdk
from autoflow.crds import errors
from autoflow.runners import expressions
from autoflow.runners.access import limits, redact
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.engine import journal as journal_mod
from autoflow.runners.engine.journaling import spec_hash
from autoflow.runners.engine.results import (
    FAILED,
    SUCCEEDED,
    IntegrationProvider,
    Observer,
    RunInterrupted,
    RunResult,
    StepResult,
)
from autoflow.runners.engine.scheduling import Scheduling


class Run(Scheduling):
    """One execution of a plan. ``execute`` once; ``cancel`` or ``interrupt`` from anywhere
    on the loop."""

    def __init__(
        self,
        plan: plan_mod.Plan,
        *,
        run_id: str,
        inputs: Mapping[str, Any],
        journal: journal_mod.Journal | None = None,
        integrations: IntegrationProvider | None = None,
        observer: Observer | None = None,
        env: Mapping[str, str] | None = None,
        run_info: Mapping[str, Any] | None = None,
        limiter: limits.Limiter | None = None,
    ) -> None:
        if not journal_mod.is_safe_run_id(run_id):
            # The id names the journal file and goes into every idempotency key.
            raise errors.RunError(
                f"run id {run_id[:80]!r} is not a safe name: lower-case letters, digits, '.', "
                "'_' and '-', starting with a letter or digit"
            )
        self.plan = plan
        self.run_id = run_id
        self.inputs = dict(inputs)
        self.journal = journal or journal_mod.MemoryJournal()
        # Journals that write remotely buffer records and make them durable in flush().
        self._flush = getattr(self.journal, "flush", None)
        self.integrations = integrations
        # The caller owns a limiter it passes (shared by runs, closed by it).
        self.limiter = limiter or limits.LocalLimiter()
        self._namespace = str((run_info or {}).get("namespace") or "")
        self.observer = observer or Observer()
        self.redactor = redact.Redactor()
        self.results: dict[str, StepResult] = {}
        self._steps_scope: dict[str, Any] = {}
        self._scope: dict[str, Any] = {
            "inputs": self.inputs,
            "steps": self._steps_scope,
            "run": {"id": run_id, "workflow": plan.name, **(run_info or {})},
            "env": dict(env or {}),
        }
        self._replay = journal_mod.Replay()
        self._pool = sdk.ResourcePool()
        self._failure: str | None = None
        self._cancelled = False
        self._task: asyncio.Task[Any] | None = None  # execute's task while the main steps run
        self._interrupted = False
        self._interrupt_event = asyncio.Event()  # wakes retry back-offs on an interruption
        self._grace: asyncio.TimerHandle | None = None
        self._section_task: asyncio.Task[Any] | None = None  # while any section runs
        self._our_cancels = 0  # task.cancel() calls made by cancel() and the grace's end
        self._held = False  # an interruption held back an onError/finally step

    # -- public -----------------------------------------------------------------------------

    def cancel(self) -> None:
        """End the run: running main steps are cancelled, ``finally`` runs, ``Cancelled`` is
        recorded. After ``interrupt()`` a cancel still decides, unless ``execute`` raised
        ``RunInterrupted`` already or the interruption held back an onError or finally step
        (it could not be started again): then ``execute`` raises ``RunInterrupted`` and the
        caller resumes the run cancelled, which runs what is left of ``finally``."""
        if self._held:
            return
        expressions.clear_stop()  # finally's expressions evaluate as usual
        self._cancelled = True
        self._interrupted = False
        self._interrupt_event.clear()  # finally's retries back off as usual again
        if self._grace is not None:
            self._grace.cancel()
        if self._task is not None:
            self._our_cancels += 1
            self._task.cancel()

    def interrupt(self, grace: float | None = None) -> None:
        """Stop without ending the run: no new step, foreach item or retry starts; steps in
        flight get ``grace`` seconds (None: as long as they take) to finish and be journaled,
        then they are stopped unrecorded; ``execute`` raises ``RunInterrupted``, recording
        no end. Call it on the loop (a signal handler added with ``add_signal_handler``)."""
        expressions.clear_stop()  # the signal that raised it has been heard
        if self._cancelled:
            return
        # Already interrupted by a signal that stopped an evaluation: the grace still starts.
        self._interrupted = True
        self._interrupt_event.set()
        if grace is not None and self._grace is None:
            self._grace = asyncio.get_running_loop().call_later(grace, self._grace_over)

    def _grace_over(self) -> None:
        if self._interrupted and self._section_task is not None:
            self._our_cancels += 1
            self._section_task.cancel()

    async def execute(self) -> RunResult:
        started = time.time()
        previous = journal_mod.replay(self.journal.read())
        resumed = previous.header is not None
        if previous.header is not None:
            self._check_resumable(previous.header)
            if previous.end is not None:
                return self._result_from_journal(previous)
            self._replay = previous
            # The run goes on with the inputs it started with, whatever this process was given
            # (``autoflow run`` refuses other values before it gets here).
            self.inputs.clear()
            self.inputs.update(previous.header["inputs"])
            started = previous.header.get("startedAt") or started
            self._restore(previous)
        else:
            self._record(
                {
                    "t": "run",
                    "runId": self.run_id,
                    "workflow": self.plan.name,
                    "specHash": spec_hash(self.plan),
                    "inputs": self.inputs,
                    "startedAt": started,
                }
            )
            await self._durable()
        phase, error = await self._main()
        if self._interrupted:
            await self._leave_interrupted()
        if phase != SUCCEEDED:
            self._scope["error"] = {"message": error, "step": self._failed_step()}
        if phase == FAILED:  # a cancelled run did not fail: only finally runs after it
            await self._guarded(self.plan.on_error)
        await self._guarded(self.plan.finally_)
        if self._interrupted:
            await self._leave_interrupted()
        outputs = None
        if phase == SUCCEEDED:
            try:
                outputs = self.redactor.value(self.plan.outputs.render(self._scope))
            except errors.ExpressionError as exc:
                phase, error = FAILED, f"outputs: {exc.message}"
            except expressions.Stopped:
                self._evaluation_stopped()
                await self._leave_interrupted()  # the resumed run renders them
        finished = time.time()
        self._record(
            {"t": "end", "phase": phase, "outputs": outputs, "error": error, "at": finished}
        )
        await self._durable()
        await self._pool.aclose()
        self.journal.close()
        return RunResult(
            run_id=self.run_id,
            workflow=self.plan.name,
            phase=phase,
            steps=self.results,
            outputs=outputs,
            error=error,
            started_at=started,
            finished_at=finished,
            resumed=resumed,
        )

    # -- run level --------------------------------------------------------------------------

    async def _leave_interrupted(self) -> NoReturn:
        """What finished is made durable; no end is recorded, so the journal resumes."""
        if self._grace is not None:
            self._grace.cancel()
        await self._durable()
        await self._pool.aclose()
        self.journal.close()
        finished = [sid for sid, res in self.results.items() if res.finished_at is not None]
        raise RunInterrupted(self.run_id, finished)
