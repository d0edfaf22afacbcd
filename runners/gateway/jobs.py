"""Job-mode runs from the gateway: a webhook of a Workflow with ``runtime.mode: job`` creates a
WorkflowRun, which the operator runs as a Job like any other.

``WorkflowRunLauncher`` follows the ``runners.pool.Launcher`` contract over the Kubernetes
API. De-duplication needs no store: a request with a de-duplication key gets a WorkflowRun
named from a hash of it (``<workflow>-wh-<hash>``), so a redelivery's create is refused as
existing (409) and answered with that run; without a key the name is generated. ``wait``
reads the run's status until it ends. A redelivery after the run's ``runHistory`` deleted
it starts a new run (the name is free again).

``ModeLauncher`` sends each request to the launcher of its Workflow's mode: ``pool`` runs to
the runner pool's launcher, ``job`` runs to ``WorkflowRunLauncher``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

from autoflow.crds import meta, workflow
from autoflow.runners import pool
from autoflow.runners.kube import client as kube_client
from autoflow.runners.kube import errors as kube_errors
from autoflow.runners.kube import paths

ENDED = ("Succeeded", "Failed", "Cancelled")
STARTED_BY = "autoflow.dev/started-by"
TRIGGER = "autoflow.dev/trigger"


def run_name(workflow_name: str, dedupe_key: str) -> str:
    """The WorkflowRun name of a de-duplicated start: the same key, the same name."""
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:16]
    return f"{workflow_name[:40].rstrip('-.')}-wh-{digest}"


class WorkflowRunLauncher:
    def __init__(self, client: kube_client.Client, *, poll_seconds: float = 0.5) -> None:
        self.client = client
        self.poll_seconds = poll_seconds
        self._namespaces: dict[str, str] = {}

    async def launch(self, request: pool.RunRequest) -> pool.Started:
        metadata: meta.JSONDict = {
            "namespace": request.namespace,
            "annotations": {STARTED_BY: request.started_by, TRIGGER: request.trigger},
        }
        if request.dedupe_key:
            metadata["name"] = run_name(request.workflow, request.dedupe_key)
        else:
            metadata["generateName"] = f"{request.workflow[:50].rstrip('-.')}-"
        body: meta.JSONDict = {
            "apiVersion": meta.API_VERSION,
            "kind": "WorkflowRun",
            "metadata": metadata,
            "spec": {"workflowRef": {"name": request.workflow}, "inputs": dict(request.inputs)},
        }
        try:
            created = await self.client.create(paths.run(request.namespace), body)
        except kube_errors.Conflict:
            name = str(metadata["name"])
            self._namespaces[name] = request.namespace
            return pool.Started(name, True)
        name = str(created["metadata"]["name"])
        self._namespaces[name] = request.namespace
        return pool.Started(name, False)

    async def wait(self, run_id: str, timeout: float) -> pool.Outcome | None:
        namespace = self._namespaces.get(run_id)
        if namespace is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            obj = await self.client.get_or_none(paths.run(namespace, run_id))
            status = (obj or {}).get("status") or {}
            phase = status.get("phase")
            if phase in ENDED:
                outputs = status.get("outputs")
                return pool.Outcome(
                    run_id,
                    str(phase),
                    outputs if isinstance(outputs, dict) else {},
                    status.get("message") or None if phase != "Succeeded" else None,
                )
            if obj is None or loop.time() >= deadline:
                return None
            await asyncio.sleep(min(self.poll_seconds, max(0.0, deadline - loop.time())))


class ModeLauncher:
    """Pool-mode Workflows to ``pooled``, job-mode ones to ``jobs``."""

    def __init__(
        self,
        pooled: pool.Launcher,
        jobs: pool.Launcher,
        workflows: Callable[[str, str], workflow.Workflow | None],
    ) -> None:
        self.pooled = pooled
        self.jobs = jobs
        self.workflows = workflows
        self._by_run: dict[str, pool.Launcher] = {}

    async def launch(self, request: pool.RunRequest) -> pool.Started:
        wf = self.workflows(request.namespace, request.workflow)
        runtime = wf.spec.runtime if wf is not None else None
        launcher = self.pooled if runtime is not None and runtime.mode == "pool" else self.jobs
        started = await launcher.launch(request)
        if len(self._by_run) > 10_000:
            self._by_run.clear()
        self._by_run[started.run_id] = launcher
        return started

    async def wait(self, run_id: str, timeout: float) -> pool.Outcome | None:
        launcher = self._by_run.get(run_id)
        return None if launcher is None else await launcher.wait(run_id, timeout)
