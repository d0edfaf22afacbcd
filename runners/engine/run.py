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

The engine is the same in every place a run happens (laptop, Job, pool); only the journal, the
integration provider, the limiter and the observer differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

import pydantic

from autoflow.connectors import sdk
from autoflow.crds import errors, meta, workflow
from autoflow.runners import expressions
from autoflow.runners.access import limits, redact
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.engine import journal as journal_mod

log = logging.getLogger("autoflow.run")  # what steps log, with run and step ids
engine_log = logging.getLogger("autoflow.engine")  # what the engine decides (retries)

SUCCEEDED, FAILED, SKIPPED, CANCELLED = "Succeeded", "Failed", "Skipped", "Cancelled"
# Results that let dependents go on.
_DONE_OK = {SUCCEEDED, SKIPPED}


@dataclasses.dataclass(slots=True)
class StepResult:
    id: str
    phase: str
    output: Any = None
    error: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""

    def scope(self) -> dict[str, Any]:
        return {"output": self.output, "status": self.phase, "error": self.error}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phase": self.phase,
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "message": self.message,
        }


@dataclasses.dataclass(slots=True)
class RunResult:
    run_id: str
    workflow: str
    phase: str
    steps: dict[str, StepResult]
    outputs: Any = None
    error: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    resumed: bool = False

    @property
    def succeeded(self) -> bool:
        return self.phase == SUCCEEDED

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "workflow": self.workflow,
            "phase": self.phase,
            "error": self.error,
            "outputs": self.outputs,
            "resumed": self.resumed,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "durationMs": round((self.finished_at - self.started_at) * 1000, 3),
            "steps": [s.to_json() for s in self.steps.values()],
        }


class Observer:
    """Hooks for progress display and metrics; the default does nothing."""

    def step_started(self, step: str, attempt: int) -> None: ...

    def step_retrying(self, step: str, attempt: int, error: str, delay: float) -> None: ...

    def step_finished(self, result: StepResult) -> None: ...


class IntegrationProvider(Protocol):
    """Resolves the integration a step names, with a secrets accessor that reports to a Redactor.

    Asynchronous because resolving may read a Kubernetes Secret or fetch an OAuth2 token.
    """

    async def get(self, name: str, redactor: redact.Redactor) -> sdk.IntegrationInfo: ...


class RunInterrupted(errors.RunError):
    """``execute`` stopped on ``interrupt()``: what finished is journaled, no end is recorded,
    so running again with the same journal resumes after the last recorded step."""

    def __init__(self, run_id: str, finished: list[str]) -> None:
        super().__init__(
            f"run {run_id} was interrupted after {len(finished)} finished step(s); they are "
            "journaled and resuming the run goes on after them"
        )
        self.run_id = run_id
        self.finished = finished


class _Unfinished(Exception):
    """A step in flight stopped by an interruption (before a retry or a foreach item): it is
    not journaled as finished, so a resumed run carries it on."""


class StepFailed(Exception):
    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts


def spec_hash(compiled: plan_mod.Plan) -> str:
    """Identifies the definition a journal was written for; resuming under another is refused."""
    if not compiled.digest:
        compiled.digest = _digest(compiled.workflow)
    return compiled.digest


def _digest(wf: workflow.Workflow) -> str:
    body = json.dumps(wf.spec.dump(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def backoff(
    policy: workflow.Retry, attempt: int, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based)."""
    base = meta.parse_duration(policy.initial_delay) * policy.multiplier ** (attempt - 1)
    delay = min(meta.parse_duration(policy.max_delay), base)
    if policy.jitter:
        delay = delay / 2 + rand() * delay / 2
    return delay


def _describe(exc: BaseException, sp: plan_mod.StepPlan) -> tuple[str, bool, float | None]:
    """(message, retryable, retry-after) for anything an attempt raised."""
    if isinstance(exc, errors.ConnectorError):
        return exc.message, exc.retryable, exc.retry_after
    if isinstance(exc, errors.ExpressionError):
        field = exc.where.field or "with"
        text = f"{field}: {exc.message}"
        return (f"{text} (in ${{ {exc.expression} }})" if exc.expression else text), False, None
    if isinstance(exc, TimeoutError):
        return f"timed out after {sp.timeout or 0:g}s", True, None
    if isinstance(exc, errors.AutoflowError):
        return exc.message, False, None
    return f"unexpected error in {sp.action.uses}: {type(exc).__name__}: {exc}", False, None


class Run:
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
        if self._cancelled or self._interrupted:
            return
        self._interrupted = True
        self._interrupt_event.set()
        if grace is not None:
            self._grace = asyncio.get_running_loop().call_later(grace, self._grace_over)

    def _grace_over(self) -> None:
        if self._interrupted and self._section_task is not None:
            self._our_cancels += 1
            self._section_task.cancel()

    def _own_cancel(self) -> bool:
        """Whether the CancelledError being handled came from ``cancel()`` or the end of an
        interruption's grace (then it is absorbed), not from whoever awaits ``execute``."""
        task = asyncio.current_task()
        if not self._our_cancels or task is None:
            return False
        for _ in range(self._our_cancels):
            task.uncancel()
        self._our_cancels = 0
        return task.cancelling() == 0

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

    async def _main(self) -> tuple[str, str | None]:
        # cancel() cancels the task running execute(); no task of our own is created, which
        # keeps a one-step run from paying an extra trip through the event loop.
        self._task = asyncio.current_task()
        try:
            if self.plan.timeout is not None:
                async with asyncio.timeout(self.plan.timeout):
                    await self._section(self.plan.main)
            else:
                await self._section(self.plan.main)
        except TimeoutError:
            self._mark_unfinished(self.plan.main, CANCELLED, "the run timed out")
            return FAILED, f"the run timed out after {self.plan.timeout:g}s"
        except asyncio.CancelledError:
            if not self._own_cancel():
                raise
            if self._interrupted:  # the grace is over: execute leaves without an end
                return CANCELLED, None
            self._mark_unfinished(self.plan.main, CANCELLED, "the run was cancelled")
            return CANCELLED, "the run was cancelled"
        finally:
            self._task = None
        if self._cancelled:
            self._mark_unfinished(self.plan.main, CANCELLED, "the run was cancelled")
            return CANCELLED, "the run was cancelled"
        if self._failure is not None:
            return FAILED, self._failure
        return SUCCEEDED, None

    async def _guarded(self, section: plan_mod.Section) -> None:
        """onError and finally run even after a failure; their own failures are recorded."""
        if not section.order:
            return
        failure, self._failure = self._failure, None
        try:
            await self._section(section)
        except asyncio.CancelledError:
            if not self._own_cancel():  # the end of an interruption's grace is absorbed
                raise
        self._failure = failure

    def _failed_step(self) -> str | None:
        """The main step that failed the run, not one whose failure was tolerated."""
        for sid, res in self.results.items():
            if sid in self.plan.main.steps and res.phase == FAILED and not self._continues(sid):
                return sid
        return None

    def _check_resumable(self, header: dict[str, Any]) -> None:
        if header.get("specHash") != spec_hash(self.plan):
            raise errors.RunError(
                f"the journal belongs to run {header.get('runId')!r} of a different definition "
                f"of workflow {header.get('workflow')!r}; resume it with the workflow it started "
                "with, or start a new journal"
            )

    def _restore(self, state: journal_mod.Replay) -> None:
        """Finished steps become results. Whether a failure stops a section is decided when
        the section replays them in order (``_replay_section``), not here: a failed
        ``finally`` step must not fail a run whose main steps succeeded."""
        for sid, rec in state.steps.items():
            try:
                self.plan.step(sid)
            except KeyError:
                raise errors.RunError(
                    f"corrupt journal: it records step {sid!r}, which workflow "
                    f"{self.plan.name!r} does not have"
                ) from None
            res = StepResult(
                id=sid,
                phase=rec["phase"],
                output=rec.get("output"),
                error=rec.get("error"),
                attempts=rec.get("attempts", 0),
                started_at=rec.get("startedAt"),
                finished_at=rec.get("finishedAt"),
                message=rec.get("message", ""),
            )
            self.results[sid] = res
            self._steps_scope[sid] = res.scope()

    def _continues(self, sid: str) -> bool:
        try:
            return self.plan.step(sid).step.continue_on_error
        except KeyError:
            return False

    def _result_from_journal(self, state: journal_mod.Replay) -> RunResult:
        self._restore(state)
        assert state.header is not None and state.end is not None
        return RunResult(
            run_id=state.header["runId"],
            workflow=state.header["workflow"],
            phase=state.end["phase"],
            steps=self.results,
            outputs=state.end.get("outputs"),
            error=state.end.get("error"),
            started_at=state.header.get("startedAt", 0.0),
            finished_at=state.end.get("at", 0.0),
            resumed=True,
        )

    def _record(self, record: dict[str, Any]) -> None:
        self.journal.append(record)

    async def _durable(self) -> None:
        """Before anything depends on what was recorded, a remote journal must hold it."""
        if self._flush is not None:
            await self._flush()

    def _mark_unfinished(self, section: plan_mod.Section, phase: str, message: str) -> None:
        now = time.time()
        for sid in section.order:
            if sid not in self.results:
                self.results[sid] = StepResult(sid, phase, finished_at=now, message=message)
                # onError and finally may test steps.<id>.status of a step that never ran.
                self._steps_scope[sid] = self.results[sid].scope()

    # -- the DAG ----------------------------------------------------------------------------

    async def _section(self, section: plan_mod.Section) -> None:
        """Run one list of steps as a DAG.

        Whether a step starts is decided the moment the last step it needs is recorded: it
        starts unless a step of the section has failed (without ``continueOnError``) by then.
        The decision is made in the same instant as the journal record, so the order of the
        records says what was decided, and a resumed run replays the restored steps in that
        order and decides the same (``_replay_section``). Decided steps start in the order of
        their decisions; a lone one runs inline (a chain needs no task per step).
        """
        steps = section.steps
        waiting = {sid: len(sp.needs) for sid, sp in steps.items()}
        pending = section.roots()  # decided to start, in the order of the decisions
        running: dict[asyncio.Task[None], str] = {}
        self._section_task = asyncio.current_task()

        def release(sid: str, go: bool) -> None:
            """``sid`` is recorded; ``go``: no failure in the section when it was."""
            for nxt in steps[sid].dependents:
                waiting[nxt] -= 1
                if waiting[nxt] == 0 and go:
                    pending.append(nxt)

        async def run(sid: str) -> None:
            release(sid, await self._step(steps[sid]))

        self._replay_section(section, pending, release)
        try:
            while pending or running:
                if self._cancelled and section is self.plan.main:
                    pending.clear()  # cancel() stops the main steps; onError and finally run
                if self._interrupted and pending:
                    # interrupt() stops every section: the resumed run starts what is left.
                    if section is not self.plan.main:
                        self._held = True
                    pending.clear()
                if pending and not running and len(pending) == 1:
                    await run(pending.pop())
                    continue
                for sid in pending:
                    running[asyncio.ensure_future(run(sid))] = sid
                pending.clear()
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    running.pop(task)
                    task.result()
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        finally:
            self._section_task = None
        if self._failure is not None and not self._interrupted:
            self._mark_unfinished(section, SKIPPED, f"not run: {self._failure}")

    def _replay_section(
        self,
        section: plan_mod.Section,
        pending: list[str],
        release: Callable[[str, bool], None],
    ) -> None:
        """Restored steps of the section, in the order they were recorded, decide again what
        they decided then: a restored failure stops the section from that point on, and a
        step decided before it (in flight when the run was interrupted) still runs."""
        for sid in self._replay.steps:
            if sid not in section.steps:
                continue
            res = self.results[sid]
            if res.phase == FAILED and not self._continues(sid) and self._failure is None:
                self._failure = f"step {sid!r} failed: {res.error}"
            release(sid, self._failure is None)
        pending[:] = [sid for sid in pending if sid not in self.results]

    async def _step(self, sp: plan_mod.StepPlan) -> bool:
        """Run one step and record it; True if no step of the section had failed when it
        was recorded (its dependents may start)."""
        sid = sp.id
        started = time.time()
        result: StepResult
        try:
            result = await self._decide_and_run(sp, started)
        except _Unfinished:
            # Interrupted between attempts or items: not finished, not journaled.
            if sid not in self.plan.main.steps:
                self._held = True
            return False
        except StepFailed as exc:
            message = self.redactor.text(exc.message)
            result = StepResult(sid, FAILED, None, message, exc.attempts, started, time.time())
            if not sp.step.continue_on_error and self._failure is None:
                self._failure = f"step {sid!r} failed: {message}"
        self.results[sid] = result
        self._steps_scope[sid] = result.scope()
        self._record(
            {
                "t": "step",
                "step": sid,
                "phase": result.phase,
                "output": result.output,
                "error": result.error,
                "attempts": result.attempts,
                "startedAt": result.started_at,
                "finishedAt": result.finished_at,
                "message": result.message,
            }
        )
        go = self._failure is None  # decided with the record, before anything can change it
        await self._durable()
        self.observer.step_finished(result)
        return go

    async def _decide_and_run(self, sp: plan_mod.StepPlan, started: float) -> StepResult:
        sid = sp.id
        if sp.condition is None:
            for dep in sp.needs:
                if self.results[dep].phase == SKIPPED:
                    return StepResult(
                        sid,
                        SKIPPED,
                        started_at=started,
                        finished_at=time.time(),
                        message=f"skipped because {dep!r} was skipped",
                    )
        else:
            try:
                go = expressions.truthy(sp.condition.evaluate(self._scope))
            except errors.ExpressionError as exc:
                raise StepFailed(_describe(exc, sp)[0], 0) from None
            if not go:
                return StepResult(
                    sid,
                    SKIPPED,
                    started_at=started,
                    finished_at=time.time(),
                    message="if was false",
                )
        if sp.foreach is not None:
            output, attempts = await self._foreach(sp)
        else:
            output, attempts = await self._attempts(sp, self._scope, -1)
        return StepResult(sid, SUCCEEDED, output, None, attempts, started, time.time())

    async def _foreach(self, sp: plan_mod.StepPlan) -> tuple[list[Any], int]:
        assert sp.foreach is not None
        try:
            if isinstance(sp.foreach, expressions.Expression):
                items = sp.foreach.evaluate(self._scope)
            else:
                items = sp.foreach.render(self._scope)
        except errors.ExpressionError as exc:
            raise StepFailed(_describe(exc, sp)[0], 0) from None
        if isinstance(items, dict):
            items = [{"key": k, "value": v} for k, v in items.items()]
        if not isinstance(items, list):
            raise StepFailed(f"foreach must give a list; got {type(items).__name__}", 0)
        done = self._replay.items.get(sp.id, {})
        outputs: list[Any] = [done.get(i) for i in range(len(items))]
        attempts_of = self._replay.attempts
        # Items that had started before an interruption go first and run even after another
        # item fails, as they did then; a new item starts only while none has failed.
        started = [i for i in range(len(items)) if i not in done and (sp.id, i) in attempts_of]
        must_run = set(started)
        todo = started + [i for i in range(len(items)) if i not in done and i not in must_run]
        limit = sp.step.concurrency or 1
        # Items finished before an interruption count with the attempts they took.
        total_attempts = sum(attempts_of.get((sp.id, i), (1, False))[0] for i in done)
        failed: dict[int, str] = {}
        stopped: list[int] = []  # items an interruption left unfinished

        async def worker() -> None:
            nonlocal total_attempts
            while todo and (not failed or todo[0] in must_run) and not self._interrupted:
                index = todo.pop(0)
                scope = {**self._scope, "item": items[index], "index": index}
                try:
                    output, attempts = await self._attempts(sp, scope, index)
                except StepFailed as exc:
                    total_attempts += exc.attempts
                    failed[index] = exc.message
                    continue
                except _Unfinished:
                    stopped.append(index)
                    return
                total_attempts += attempts
                outputs[index] = output
                self._record({"t": "item", "step": sp.id, "index": index, "output": output})
                await self._durable()

        workers = [worker() for _ in range(min(limit, len(todo)))]
        if len(workers) == 1:
            await workers[0]
        elif workers:
            await asyncio.gather(*workers)
        if stopped or any(i in must_run or not failed for i in todo):
            # Interrupted: finished items are journaled; the resumed run does what this run
            # would still have done (every item, or after a failure those already started).
            raise _Unfinished
        if failed:
            # The first failed item by position, not by time: the same however they interleaved.
            index = min(failed)
            raise StepFailed(f"item {index}: {failed[index]}", total_attempts)
        return outputs, total_attempts

    async def _attempts(
        self, sp: plan_mod.StepPlan, scope: dict[str, Any], item: int
    ) -> tuple[Any, int]:
        """Call the action under the retry policy; returns (output, attempts made, counting
        those made before an interruption: attempt numbers go on across a resume)."""
        policy = sp.retry
        attempt = 1
        if self._replay.attempts:
            attempt = self._replay.next_attempt(sp.id, item)
            # Interrupted while waiting to retry: wait again before the next attempt, as the
            # failed one asked (a rate limit's Retry-After outlives the process).
            waited = self._replay.retry_delays.get((sp.id, item))
            if waited:
                await self._back_off(waited)
                if self._interrupted:
                    raise _Unfinished
        key_step = sp.id if item < 0 else f"{sp.id}[{item}]"
        while True:
            rec: dict[str, Any] = {"t": "start", "step": sp.id, "attempt": attempt}
            if item >= 0:
                rec["item"] = item
            self._record(rec)
            self.observer.step_started(sp.id, attempt)
            try:
                output = await self._call(sp, scope, attempt, f"{self.run_id}:{key_step}")
                return output, attempt
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure becomes a step message, never a traceback
                message, retryable, retry_after = _describe(exc, sp)
            message = self.redactor.text(message)
            may_retry = retryable or policy.retry_on == "any"
            if not may_retry or attempt >= policy.max_attempts:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise StepFailed(f"{message}{tries}", attempt)
            delay = backoff(policy, attempt)
            if retry_after is not None:
                delay = max(delay, retry_after)
            rec = {"t": "retry", "step": sp.id, "attempt": attempt, "error": message}
            rec["delay"] = delay
            if item >= 0:
                rec["item"] = item
            self._record(rec)
            if self._interrupted:
                raise _Unfinished  # the next attempt is the resumed run's
            self.observer.step_retrying(sp.id, attempt, message, delay)
            engine_log.info(
                "step %s attempt %d failed, retrying in %.2fs: %s",
                sp.id,
                attempt,
                delay,
                message,
                extra={"run_id": self.run_id, "step_id": sp.id},
            )
            if delay > 0:
                # No wait asked is no wait: the step keeps its place among the running ones,
                # so a retried step interleaves with others the same way in every run.
                await self._back_off(delay)
                if self._interrupted:
                    raise _Unfinished
            attempt += 1

    async def _back_off(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less when the run is interrupted meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._interrupt_event.wait(), delay)

    async def _call(
        self, sp: plan_mod.StepPlan, scope: dict[str, Any], attempt: int, key: str
    ) -> Any:
        raw = sp.params.render(scope, seconds=sp.timeout)  # evaluation stops at the timeout too
        try:
            params = sp.action.params.model_validate(raw)
        except pydantic.ValidationError as exc:
            found = list(plan_mod.param_problems(exc, raw, errors.Where()))[:5]
            text = "; ".join(f"{p.where.field}: {p.message}" for p in found)
            raise errors.PermanentError(f"invalid parameters: {text}") from None
        info = None
        if sp.step.integration:
            if self.integrations is None:
                raise errors.PermanentError(
                    f"integration {sp.step.integration!r} is not available to this run",
                    errors.Where(step=sp.id, field="integration"),
                )
            info = await self.integrations.get(sp.step.integration, self.redactor)
            if (wrong := plan_mod.type_mismatch(info.name, info.type, sp.action.uses)) is not None:
                raise errors.PermanentError(wrong, errors.Where(step=sp.id, field="integration"))
        ctx = sdk.ActionContext(
            run_id=self.run_id,
            step_id=sp.id,
            attempt=attempt,
            idempotency_key=key,
            log=redact.RedactingAdapter(
                log, {"run_id": self.run_id, "step_id": sp.id}, self.redactor
            ),
            integration=info,
            pool=self._pool,
        )
        if info is not None and info.limits is not None:
            value = await self._limited(sp, params, ctx, info.name, info.limits)
        elif sp.timeout is None:
            value = await sp.action.func(params, ctx)
        else:
            async with asyncio.timeout(sp.timeout):
                value = await sp.action.func(params, ctx)
        output = sp.action.dump_output(value)
        return self.redactor.value(output) if self.redactor else output

    async def _limited(
        self,
        sp: plan_mod.StepPlan,
        params: Any,
        ctx: sdk.ActionContext,
        integration: str,
        quota: sdk.Limits,
    ) -> Any:
        """The action called inside the integration's slot; waiting for the slot counts
        against the step's timeout, so the action gets what is left of it."""
        started = asyncio.get_running_loop().time()
        slot = self.limiter.slot(integration, quota, namespace=self._namespace, max_wait=sp.timeout)
        try:
            async with slot:
                if sp.timeout is None:
                    return await sp.action.func(params, ctx)
                async with asyncio.timeout_at(started + sp.timeout):
                    return await sp.action.func(params, ctx)
        except errors.AutoflowError as exc:
            exc.at(step=sp.id)  # a quota error names the Integration, not the step held back
            raise
