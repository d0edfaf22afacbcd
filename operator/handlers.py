"""kopf handlers: thin shells that read, call the pure reconcilers, and write.

Each handler is the sentence of its reconcile path; the decisions live in ``workflows``,
``runs`` and ``schedules`` (pure functions over dicts), and the Kubernetes I/O besides the
handled object's own status goes through ``runners.kube.Client``.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from autoflow.crds import meta
from autoflow.operator import runs, workflows
from autoflow.operator import settings as settings_mod
from autoflow.runners import kube

log = logging.getLogger("autoflow.operator")

GROUP, VERSION = meta.GROUP, meta.VERSION


class State:
    """What the handlers share: settings and one API client (made at startup)."""

    settings = settings_mod.Settings()
    client: kube.Client | None = None


def client() -> kube.Client:
    if State.client is None:
        State.client = kube.Client.from_config()
    return State.client


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Annotations, not status: the CRD schemas prune unknown status fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="autoflow.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="autoflow.dev", key="last-handled"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.batching.worker_limit = 64
    State.settings = settings_mod.Settings()
    client()


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if State.client is not None:
        await State.client.aclose()
        State.client = None


# -- Workflows ------------------------------------------------------------------------------


async def _integration_names(namespace: str) -> set[str]:
    items = await client().list(kube.path(kube.AUTOFLOW, "integrations", namespace))
    return {i["metadata"]["name"] for i in items}


@kopf.on.resume(GROUP, VERSION, "workflows")
@kopf.on.create(GROUP, VERSION, "workflows")
@kopf.on.update(GROUP, VERSION, "workflows", field="spec")
async def workflow_changed(
    body: kopf.Body, namespace: str | None, patch: kopf.Patch, **_: Any
) -> None:
    status = workflows.status(dict(body), await _integration_names(namespace or ""))
    patch.status.update(status)
    ready = status["conditions"][-1]
    if ready["status"] != "True":
        kopf.warn(body, reason=ready["reason"], message=ready["message"][:1024])


@kopf.on.create(GROUP, VERSION, "integrations")
@kopf.on.delete(GROUP, VERSION, "integrations", optional=True)
async def integration_changed(namespace: str | None, **_: Any) -> None:
    """An Integration appeared or went: the Workflows naming it may change readiness."""
    names = await _integration_names(namespace or "")
    url = kube.path(kube.AUTOFLOW, "workflows", namespace)
    for wf in await client().list(url):
        status = workflows.status(wf, names)
        old = (wf.get("status") or {}).get("conditions")
        if old != status["conditions"]:
            name = wf["metadata"]["name"]
            await client().patch(
                kube.path(kube.AUTOFLOW, "workflows", namespace, name, "status"), {"status": status}
            )


# -- WorkflowRuns ---------------------------------------------------------------------------


async def _get_or_none(url: str) -> dict[str, Any] | None:
    try:
        return await client().get(url)
    except kube.ApiError as exc:
        if exc.not_found:
            return None
        raise


async def _dispatch(run: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Snapshot the workflow, then create the runner Job; returns the status to write."""
    status = run.get("status") or {}
    if not status.get("workflowSnapshot"):
        ref = run["spec"]["workflowRef"]["name"]
        wf = await _get_or_none(kube.path(kube.AUTOFLOW, "workflows", namespace, ref))
        problems: list[str] = []
        if wf is not None:
            _, found = workflows.validate(wf, await _integration_names(namespace or ""))
            problems = [str(p.where.replace(resource=None)) + ": " + p.message for p in found]
        start = runs.start_status(run, wf, problems)
        if start.get("phase") != "Pending":
            return start
        run = {**run, "status": {**status, **start}}
        status = run["status"]
    job = runs.render_job(run, State.settings)
    try:
        await client().create(kube.path(kube.BATCH, "jobs", namespace), job)
    except kube.ApiError as exc:
        if not exc.conflict:
            raise
    changes = {
        k: v
        for k, v in status.items()
        if k in {"phase", "workflowSnapshot", "workflowGeneration", "conditions"}
    }
    changes["jobName"] = job["metadata"]["name"]
    return changes


@kopf.on.resume(GROUP, VERSION, "workflowruns")
@kopf.on.create(GROUP, VERSION, "workflowruns")
async def run_created(body: kopf.Body, namespace: str | None, patch: kopf.Patch, **_: Any) -> None:
    run = dict(body)
    if runs.is_finished(run):
        return
    if run["spec"].get("cancel"):
        patch.status.update(runs.summarize(run, None))
        return
    patch.status.update(await _dispatch(run, namespace or ""))


@kopf.on.field(GROUP, VERSION, "workflowruns", field="spec.cancel")
async def run_cancelled(
    body: kopf.Body, namespace: str | None, patch: kopf.Patch, new: Any, **_: Any
) -> None:
    run = dict(body)
    if not new or runs.is_finished(run):
        return
    job_url = kube.path(kube.BATCH, "jobs", namespace, runs.job_name(run))
    try:
        job = await client().patch(job_url, {"spec": {"suspend": True}})
    except kube.ApiError as exc:
        if not exc.not_found:
            raise
        job = None
    patch.status.update(runs.summarize(run, job))


@kopf.on.field(GROUP, VERSION, "workflowruns", field="status.result")
async def run_result(body: kopf.Body, namespace: str | None, patch: kopf.Patch, **_: Any) -> None:
    run = dict(body)
    job = await _get_or_none(kube.path(kube.BATCH, "jobs", namespace, runs.job_name(run)))
    patch.status.update(runs.summarize(run, job))


@kopf.on.event("batch", "v1", "jobs", labels={runs.LABEL_MANAGED: "autoflow"})
async def job_event(body: kopf.Body, namespace: str | None, type: str, **_: Any) -> None:
    owner = next(
        (o for o in body["metadata"].get("ownerReferences", []) if o.get("kind") == "WorkflowRun"),
        None,
    )
    if owner is None or type == "DELETED":
        return
    run_url = kube.path(kube.AUTOFLOW, "workflowruns", namespace, owner["name"])
    run = await _get_or_none(run_url)
    if run is None or run["metadata"].get("uid") != owner.get("uid"):
        return
    status = runs.summarize(run, dict(body))
    if status:
        await client().patch(f"{run_url}/status", {"status": status})
