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
from collections.abc import Callable, Mapping
from typing import Any

from autoflow.connectors import registry as registry_mod
from autoflow.crds import errors, workflow
from autoflow.runners import engine, expressions, store
from autoflow.runners.access import limits
from autoflow.runners.definitions import inputs as inputs_mod
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.local import run as local_run
from autoflow.runners.pool import Outcome, RunRequest, Started, events, execute

log = logging.getLogger("autoflow.pool")

WorkflowsFor = Callable[[str, str], workflow.Workflow | None]
DEFAULT_CONCURRENCY = 64
KEEP_OUTCOMES = 10_000  # recent outcomes answered from memory by wait()


class UnknownWorkflow(errors.AutoflowError):
    """The request names a Workflow the launcher does not know."""


class InProcessLauncher:
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
        self.store = store_
        self.workflows = workflows
        self.hub = hub if hub is not None else events.RunEvents()
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
        self._compiled: dict[tuple[str, str], tuple[workflow.Workflow, plan_mod.Plan]] = {}
        self._closing = False

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

    # -- Launcher ----------------------------------------------------------------------------

    def _plan(self, namespace: str, name: str) -> tuple[workflow.Workflow, plan_mod.Plan]:
        wf = self.workflows(namespace, name)
        if wf is None:
            where = f"{namespace}/{name}" if namespace else name
            raise UnknownWorkflow(f"no Workflow {where}")
        cached = self._compiled.get((namespace, name))
        if cached is not None and cached[0] is wf:
            return cached
        compiled = self.executor.compile(wf)
        self.executor.remember(compiled)
        self._compiled[(namespace, name)] = (wf, compiled)
        return wf, compiled

    async def launch(self, request: RunRequest) -> Started:
        if self._closing:
            raise store.StoreUnavailable("the launcher is shutting down")
        wf, compiled = self._plan(request.namespace, request.workflow)
        where = errors.Where(resource=wf.ref)
        values = inputs_mod.resolve(wf.spec.inputs, dict(request.inputs), where)
        subject = _data_subject(wf, values, where) if wf.spec.data_subject else None
        run_id = request.run_id or local_run.new_run_id(request.workflow)
        first, duplicate = await self.store.start_run(
            run_id=run_id,
            workflow=request.workflow,
            namespace=request.namespace,
            spec=wf.spec.dump(),
            spec_hash=engine.spec_hash(compiled),
            inputs=values,
            trigger=request.trigger,
            started_by=request.started_by,
            dedupe_key=request.dedupe_key,
            subject=subject,
        )
        if duplicate:
            return Started(first, True)
        self.hub.publish(
            run_id=run_id,
            namespace=request.namespace,
            workflow=request.workflow,
            kind="run",
            phase="Pending",
        )
        self._submit(run_id)
        return Started(run_id, False)

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
                    outcome = await self.executor.execute(run_id)
                except engine.RunInterrupted:
                    return  # shutting down: resumed by the next start
                except Exception as exc:  # a bug or the store gone: say so, keep serving
                    log.exception("run %s stopped: %s", run_id, exc)
                    return
            if outcome is not None:
                self._ended(outcome)
        finally:
            self._tasks.pop(run_id, None)

    def _ended(self, outcome: Outcome) -> None:
        self._outcomes[outcome.run_id] = outcome
        while len(self._outcomes) > KEEP_OUTCOMES:
            self._outcomes.popitem(last=False)
        for future in self._waiters.pop(outcome.run_id, []):
            if not future.done():
                future.set_result(outcome)


def _data_subject(wf: workflow.Workflow, values: Mapping[str, Any], where: errors.Where) -> str:
    """Whose personal data the run holds: the Workflow's ``dataSubject`` over the inputs."""
    at = where.replace(field="dataSubject")
    template = expressions.compile_template(wf.spec.data_subject, at)
    subject = template.render({"inputs": dict(values)})
    if not isinstance(subject, str) or not subject:
        raise errors.InputError(f"dataSubject must give a non-empty text; got {subject!r}", at)
    return subject
