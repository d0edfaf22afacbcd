"""Scheduling a run: the main steps as a DAG, then onError and finally, and how each stops.

A step starts the moment the last step it needs is recorded, unless a step of its section
has failed (without ``continueOnError``) by then; ready steps run together, a lone one inline.
A resumed run replays its restored steps in the order they were recorded and so decides the
same again (``_replay_section``). ``_main`` runs the main steps under the run's timeout and
turns a cancel, a timeout or a failure into the run's phase; ``_guarded`` runs onError and
finally, which run even after a failure. Each step's end is recorded by ``_step``, which
says whether its dependents may start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from autoflow.crds import errors
from autoflow.runners import expressions
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.engine.results import (
    CANCELLED,
    FAILED,
    SKIPPED,
    SUCCEEDED,
    StepResult,
    Unfinished,
)
from autoflow.runners.engine.steps import StepExecution


class Scheduling(StepExecution):
    """The scheduling side of a ``Run``: sections as DAGs, failures, cancels and interrupts."""

    _failure: str | None  # why the section (and so the run) failed, once a step has
    _cancelled: bool
    _interrupted: bool
    _held: bool  # an interruption held back an onError/finally step
    _task: asyncio.Task[object] | None  # execute's task while the main steps run
    _section_task: asyncio.Task[object] | None  # while any section runs
    _our_cancels: int  # task.cancel() calls made by cancel() and the grace's end

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

    def _continues(self, sid: str) -> bool:
        try:
            return self.plan.step(sid).step.continue_on_error
        except KeyError:
            return False

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
        except (Unfinished, expressions.Stopped) as exc:
            # Interrupted between attempts or items, or a signal stopped its ``if`` or
            # ``foreach`` midway: not finished, not journaled.
            if isinstance(exc, expressions.Stopped):
                self._evaluation_stopped()
            if sid not in self.plan.main.steps:
                self._held = True
            return False
        except errors.StepFailed as exc:
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
