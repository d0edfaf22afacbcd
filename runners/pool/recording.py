"""What every launcher does before a run executes: find the Workflow, check the inputs, record.

``RecordingLauncher.launch`` finds the Workflow (``workflows(namespace, name)``), compiles it
once per object, checks the request's inputs against the declared ones (a clear error naming
the resource and the input, before anything is recorded), evaluates its ``dataSubject``,
records the run with ``Store.start_run`` (phase Pending, de-duplicated by the request's
``dedupe_key``; the spec is stored under its hash so any worker can run it), publishes it
Pending, and then hands the run id to the executor (``_hand_off``): an asyncio task in this
process (``inprocess``) or a message on a JetStream work queue (``jetstream``).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from autoflow.connectors import registry as registry_mod
from autoflow.crds import errors, workflow
from autoflow.runners import engine, store
from autoflow.runners.definitions import inputs as inputs_mod
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.local import run as local_run
from autoflow.runners.pool import RunRequest, Started, events

WorkflowsFor = Callable[[str, str], workflow.Workflow | None]


class UnknownWorkflow(errors.AutoflowError):
    """The request names a Workflow the launcher does not know."""


class RecordingLauncher(abc.ABC):
    def __init__(
        self,
        store_: store.Store,
        workflows: WorkflowsFor,
        *,
        hub: events.RunEvents | None = None,
        registry: registry_mod.Registry | None = None,
    ) -> None:
        self.store = store_
        self.workflows = workflows
        self.hub = hub if hub is not None else events.RunEvents()
        self.registry = registry
        self._compiled: dict[tuple[str, str], tuple[workflow.Workflow, plan_mod.Plan]] = {}
        # Journals (the header, then any reused steps) of runs recorded Running here.
        self._fresh: dict[str, list[dict[str, Any]]] = {}
        self._closing = False

    def compile(self, wf: workflow.Workflow) -> plan_mod.Plan:
        where = errors.Where(resource=wf.ref)
        if self.registry is not None:
            return plan_mod.compile_workflow(wf, self.registry, where=where)
        return plan_mod.compile_workflow(wf, where=where)

    def _compiled_plan(self, compiled: plan_mod.Plan) -> None:
        """A hook: a plan was compiled for a launch (the in-process executor keeps it)."""
        return

    def plan(self, namespace: str, name: str) -> tuple[workflow.Workflow, plan_mod.Plan]:
        wf = self.workflows(namespace, name)
        if wf is None:
            where = f"{namespace}/{name}" if namespace else name
            raise UnknownWorkflow(f"no Workflow {where}")
        cached = self._compiled.get((namespace, name))
        if cached is not None and cached[0] is wf:
            return cached
        compiled = self.compile(wf)
        self._compiled_plan(compiled)
        self._compiled[(namespace, name)] = (wf, compiled)
        return wf, compiled

    async def launch(
        self, request: RunRequest, *, reuse: Sequence[Mapping[str, Any]] = ()
    ) -> Started:
        """Records and hands off the run. ``reuse``: ``step`` journal records of an earlier
        run of the same spec, recorded as this run's own, so it starts after them (a retry
        from the failed step)."""
        if self._closing:
            raise store.StoreUnavailable("the launcher is shutting down")
        wf, compiled = self.plan(request.namespace, request.workflow)
        where = errors.Where(resource=wf.ref)
        values = inputs_mod.resolve(wf.spec.inputs, dict(request.inputs), where)
        subject = inputs_mod.data_subject(wf.spec, values, where)
        run_id = request.run_id or local_run.new_run_id(request.workflow)
        phase = self._start_phase()
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
            phase=phase,
            secret_inputs=inputs_mod.secret_names(wf.spec.inputs),
        )
        if duplicate:
            return Started(first, True)
        reused = [dict(r) for r in reuse]
        if reused:
            await self.store.record(run_id, reused)
        if phase == "Running":  # executed here at once: its journal is this header
            header = {
                "t": "run",
                "runId": run_id,
                "workflow": request.workflow,
                "namespace": request.namespace,
                "specHash": engine.spec_hash(compiled),
                "trigger": request.trigger,
                "startedBy": request.started_by,
                "inputs": values,
                "startedAt": time.time(),
            }
            self._fresh[run_id] = [header, *reused]
        self.hub.publish(
            run_id=run_id,
            namespace=request.namespace,
            workflow=request.workflow,
            kind="run",
            phase="Pending",
        )
        await self._hand_off(run_id, request)
        return Started(run_id, False)

    def _start_phase(self) -> str:
        """``Running`` when this launcher executes the run at once in this process (it
        keeps the header in ``_fresh`` and needs no claim), else ``Pending``."""
        return "Pending"

    @abc.abstractmethod
    async def _hand_off(self, run_id: str, request: RunRequest) -> None:
        """The recorded run goes to whatever executes it."""
