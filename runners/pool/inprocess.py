"""The in-process launcher: runs start and execute in this process (``autoflow serve``).

``launch`` finds the Workflow (``workflows(namespace, name)``), checks the inputs against its
declared ones (a clear error naming the input before anything is recorded), records the run
with ``Store.start_run`` (de-duplicated by the request's ``dedupe_key``), publishes it
Pending and hands it to an asyncio task; at most ``concurrency`` runs execute at once, the
rest wait their turn in start order. Each run goes through the engine with the store as its
journal (``execute.Executor``), so a process stopped mid-run resumes it at the next
``start()``: every run the store holds Pending or Running (started by a launcher, not by
``autoflow run``) is taken up again, after its last recorded step.

``wait(run_id, timeout)`` answers with the run's ``Outcome`` once it ends (at once for a run
that ended already, read from the store), None after ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Mapping

from autoflow.connectors import registry as registry_mod
from autoflow.runners import engine, store
from autoflow.runners.access import limits
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.pool import Outcome, RunRequest, events, execute, recording

log = logging.getLogger("autoflow.pool")

WorkflowsFor = recording.WorkflowsFor
UnknownWorkflow = recording.UnknownWorkflow
DEFAULT_CONCURRENCY = 64
KEEP_OUTCOMES = 10_000  # recent outcomes answered from memory by wait()


class InProcessLauncher(recording.RecordingLauncher):
    def __init__(
        self,
        store_: store.Store,
        workflows: WorkflowsFor,
        integrations: execute.IntegrationsFor,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        hub: events.RunEvents | None = None,
        environ: Mapping[str, str] | None = None,
        limiter: limits.Limiter | None = None,
        registry: registry_mod.Registry | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency is at least 1")
        super().__init__(store_, workflows, hub=hub, registry=registry)
        self.executor = execute.Executor(
            store_,
            integrations,
            hub=self.hub,
            environ=environ,
            limiter=limiter,
            registry=registry,
        )
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waiters: dict[str, list[asyncio.Future[Outcome]]] = {}
        self._outcomes: collections.OrderedDict[str, Outcome] = collections.OrderedDict()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> int:
        """Takes up every unended run in the store; returns how many."""
        found = await self.store.unended()
        for run_id in found:
            self._submit(run_id)
        if found:
            log.info("resuming %d unfinished run(s)", len(found))
        return len(found)

    async def adopt_pending(self) -> int:
        """Takes up runs recorded Pending by someone else (``autoflow runs start`` on this
        store) that are not running here; returns how many."""
        page = await self.store.list_runs(store.RunFilter(phase="Pending"), limit=500)
        fresh = [r.run_id for r in page.runs if r.run_id not in self._tasks]
        for run_id in reversed(fresh):  # oldest first
            self._submit(run_id)
        return len(fresh)

    async def aclose(self, grace: float = 5.0) -> None:
        """Stops: runs in flight get ``grace`` seconds to finish their steps, then are
        interrupted (recorded so far; the next ``start`` resumes them)."""
        self._closing = True
        for run in list(self.executor.runs.values()):
            run.interrupt(grace)
        tasks = list(self._tasks.values())
        for task in tasks:
            if task.get_name() not in self.executor.runs:
                task.cancel()  # not started yet: still Pending/Running in the store
        if tasks:
            await asyncio.wait(tasks, timeout=grace + 5)
        for task in tasks:
            task.cancel()
        await self.executor.limiter.aclose()
        self.hub.close()

    # -- Launcher ---------------------------------------------------------------------------

    def _start_phase(self) -> str:
        return "Running" if len(self._tasks) < self.concurrency else "Pending"

    def _compiled_plan(self, compiled: plan_mod.Plan) -> None:
        self.executor.remember(compiled)

    async def _hand_off(self, run_id: str, request: RunRequest) -> None:
        self._submit(run_id)

    def cancel(self, run_id: str) -> bool:
        """Cancels a run executing in this process; False when it is not running here."""
        run = self.executor.runs.get(run_id)
        if run is None:
            return False
        run.cancel()
        return True

    async def wait(self, run_id: str, timeout: float) -> Outcome | None:
        known = self._outcomes.get(run_id)
        if known is not None:
            return known
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        try:
            if run_id not in self._tasks:  # ended before, or elsewhere: the store knows
                detail = await self.store.get_run(run_id)
                if detail is not None and detail.summary.phase in execute.FINAL:
                    outputs = detail.outputs if isinstance(detail.outputs, Mapping) else {}
                    return Outcome(
                        run_id, detail.summary.phase, dict(outputs), detail.summary.error
                    )
            try:
                return await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                return None
        finally:
            waiting = self._waiters.get(run_id)
            if waiting is not None:
                if future in waiting:
                    waiting.remove(future)
                if not waiting:
                    del self._waiters[run_id]

    # -- executing ---------------------------------------------------------------------------

    def _submit(self, run_id: str) -> None:
        if run_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._run(run_id), name=run_id)
        self._tasks[run_id] = task

    async def _run(self, run_id: str) -> None:
        try:
            async with self._slots:
                try:
                    outcome = await self.executor.execute(run_id, self._fresh.pop(run_id, None))
                except engine.RunInterrupted:
                    return  # shutting down: resumed by the next start
                except Exception as exc:  # a bug or the store gone: say so, keep serving
                    log.exception("run %s stopped: %s", run_id, exc)
                    return
            if outcome is not None:
                self._ended(outcome)
        finally:
            self._tasks.pop(run_id, None)
            self._fresh.pop(run_id, None)

    def _ended(self, outcome: Outcome) -> None:
        self._outcomes[outcome.run_id] = outcome
        while len(self._outcomes) > KEEP_OUTCOMES:
            self._outcomes.popitem(last=False)
        for future in self._waiters.pop(outcome.run_id, []):
            if not future.done():
                future.set_result(outcome)
