"""Runs of the workspace, executed in this process: the web API's launcher for ``--dir``.

It keeps the ``runners.pool.Launcher`` contract (``launch``, ``wait``) and adds what the web
API needs of an in-process executor: ``cancel`` and a retry that reuses finished steps. Each
run is an asyncio task through the engine, journaled into the run store::

    launch(RunRequest) ─ the Workflow (workflows(ns, name)) compiled, inputs resolved
        ─ the run header (and, for a retry, the reused steps' records) written to the store
        ─ engine.Run(journal=StoreJournal over those records) as a task: a resume, so the
          engine starts after the reused steps
        ─ Observer ─► runners.pool.events.RunEvents (run, step, end)

Until ``runners.pool.inprocess.InProcessLauncher`` is merged this is the workspace's only
executor; the web API only relies on the contract, so either can sit behind it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from autoflow.crds import errors, integration, workflow
from autoflow.runners import engine
from autoflow.runners import store as store_mod
from autoflow.runners.access import limits
from autoflow.runners.definitions import inputs as inputs_mod
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.local import run as local
from autoflow.runners.pool import Outcome, RunRequest, Started, events
from autoflow.runners.store import journal as store_journal

log = logging.getLogger("autoflow.webui")

WorkflowSource = Callable[[str, str], workflow.Workflow]
IntegrationSource = Callable[
    [str], tuple[Sequence[integration.Integration], Mapping[str, Mapping[str, str]]]
]


def new_run_id(workflow_name: str) -> str:
    return f"{workflow_name[:40]}-{uuid.uuid4().hex[:12]}"


class _Observer(engine.Observer):
    def __init__(self, hub: events.RunEvents, run_id: str, namespace: str, workflow: str) -> None:
        self.hub, self.run_id, self.namespace, self.workflow = hub, run_id, namespace, workflow

    def publish(self, kind: str, phase: str, step: str | None = None) -> None:
        self.hub.publish(
            run_id=self.run_id,
            namespace=self.namespace,
            workflow=self.workflow,
            kind=kind,
            phase=phase,
            step=step,
        )

    def step_started(self, step: str, attempt: int) -> None:
        self.publish("step", "Running", step)

    def step_finished(self, result: engine.StepResult) -> None:
        self.publish("step", result.phase, result.id)


class LocalLauncher:
    """Runs as tasks on the running loop; ``aclose`` interrupts the ones still going (they
    stay resumable in the store)."""

    def __init__(
        self,
        store: store_mod.Store,
        workflows: WorkflowSource,
        integrations: IntegrationSource,
        hub: events.RunEvents,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.workflows = workflows
        self.integrations = integrations
        self.hub = hub
        self.env = dict(os.environ if env is None else env)
        self.limiter = limits.LocalLimiter()
        self._runs: dict[str, engine.Run] = {}
        self._tasks: dict[str, asyncio.Task[engine.RunResult | None]] = {}

    async def launch(
        self, request: RunRequest, *, reuse: Sequence[Mapping[str, Any]] = ()
    ) -> Started:
        """Start a run; ``reuse`` are ``step`` journal records of an earlier run of the same
        definition whose results the new run takes as done (retry from a failed step)."""
        wf = self.workflows(request.namespace, request.workflow)
        where = errors.Where(resource=wf.ref)
        plan = plan_mod.compile_workflow(wf, where=where)
        values = inputs_mod.resolve(wf.spec.inputs, dict(request.inputs), where, from_text=False)
        run_id = request.run_id or new_run_id(request.workflow)
        header: dict[str, Any] = {
            "t": "run",
            "runId": run_id,
            "workflow": plan.name,
            "namespace": request.namespace,
            "specHash": engine.spec_hash(plan),
            "trigger": request.trigger,
            "startedBy": request.started_by,
            "inputs": values,
            "startedAt": time.time(),
            "spec": wf.spec.dump(),
        }
        records = [header, *(dict(r) for r in reuse)]
        await self.store.record(run_id, records)
        items, secrets = self.integrations(request.namespace)
        journal = store_journal.StoreJournal(self.store, run_id=run_id, records=records)
        observer = _Observer(self.hub, run_id, request.namespace, plan.name)
        run = engine.Run(
            plan,
            run_id=run_id,
            inputs=values,
            journal=journal,
            integrations=local.LocalIntegrations(items, secrets, env={}),
            observer=observer,
            env=local.expression_env(wf, self.env),
            run_info={"namespace": request.namespace},
            limiter=self.limiter,
        )
        self._runs[run_id] = run
        observer.publish("run", "Running")
        self._tasks[run_id] = asyncio.get_running_loop().create_task(
            self._execute(run, journal, observer)
        )
        return Started(run_id, False)

    async def _execute(
        self, run: engine.Run, journal: store_journal.StoreJournal, observer: _Observer
    ) -> engine.RunResult | None:
        try:
            result = await run.execute()
        except engine.RunInterrupted:
            return None
        except Exception:
            log.exception("run failed outside the engine", extra={"run_id": run.run_id})
            observer.publish("end", "Failed")
            return None
        finally:
            await journal.aclose()
            self._runs.pop(run.run_id, None)
        observer.publish("end", result.phase)
        return result

    def running(self, run_id: str) -> bool:
        return run_id in self._runs

    def cancel(self, run_id: str) -> bool:
        """Cancel a run of this process; False when it is not running here."""
        run = self._runs.get(run_id)
        if run is None:
            return False
        run.cancel()
        return True

    async def wait(self, run_id: str, timeout: float) -> Outcome | None:
        task = self._tasks.get(run_id)
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                return None
        detail = await self.store.get_run(run_id)
        if detail is None or detail.summary.phase in ("Running", "Pending"):
            return None
        s = detail.summary
        return Outcome(run_id, s.phase, detail.outputs or {}, s.error)

    async def aclose(self) -> None:
        for run in list(self._runs.values()):
            run.interrupt(grace=1.0)
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        await self.limiter.aclose()
