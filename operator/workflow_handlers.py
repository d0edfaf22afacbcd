"""kopf handlers for Workflows: their Ready condition, and the index runs snapshot them from.

A Workflow is judged by ``workflows`` (pure) against the Integrations of its namespace:
when it changes, and when an Integration it may name appears or goes. A lowered
``runHistory`` applies at once to the runs already kept (``sweeper``).
"""

from __future__ import annotations

import copy
from typing import Any

import kopf

from autoflow.crds import meta
from autoflow.operator import context, events, metrics, posting, sweeper, workflows
from autoflow.operator import settings as settings_mod
from autoflow.runners import kube

GROUP, VERSION = meta.GROUP, meta.VERSION
WorkflowIndex = kopf.Index[tuple[str | None, str], meta.JSONDict]


def workflow_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    """Each Workflow as its last watch event showed it, as an informer cache would: a run
    snapshots it without a GET (a miss falls back to one) and its TTL comes from it."""
    meta_ = body.get("metadata") or {}
    return {
        (namespace, name): {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": {k: meta_.get(k) for k in ("name", "namespace", "uid", "generation")},
            "spec": copy.deepcopy(dict(body.get("spec") or {})),
            "status": {"conditions": copy.deepcopy((body.get("status") or {}).get("conditions"))},
        }
    }


def indexed(index: WorkflowIndex, namespace: str | None, name: str) -> meta.JSONDict | None:
    """The Workflow ``namespace/name`` as the index holds it, or None."""
    store = index.get((namespace, name))
    return next(iter(store), None) if store else None


async def integration_names(client: kube.Client, namespace: str) -> dict[str, str]:
    """The namespace's Integrations: name to connector type."""
    items = await client.list(kube.paths.integration(namespace))
    return {i["metadata"]["name"]: (i.get("spec") or {}).get("type", "") for i in items}


@metrics.reconciler("Workflow")
async def workflow_changed(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    ctx = context.of(memo)
    client = ctx.client
    wf = dict(body)
    status = workflows.status(wf, await integration_names(client, namespace or ""))
    patch.status.update(status)
    posting.post(wf, events.for_workflow(wf.get("status") or {}, status))
    # A lowered limit applies to the runs already kept.
    run_history = wf["spec"].get("runHistory")
    await sweeper.enforce(client, namespace or "", name, run_history, ctx.archiver)


async def integration_event(
    type: str, body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """An Integration appeared or went: the Workflows naming it may change readiness."""
    metrics.observe_integration(type, dict(body))
    if type not in {"ADDED", "DELETED"}:
        return  # an existing one listed (startup, re-list) or changed: names are unchanged
    ns = namespace or ""
    client = context.of(memo).client
    names = await integration_names(client, ns)
    for wf in await client.list(kube.paths.workflow(ns)):
        old = wf.get("status") or {}
        status = workflows.status(wf, names)
        if old.get("conditions") == status["conditions"]:
            continue
        url = kube.paths.workflow(ns, wf["metadata"]["name"], "status")
        try:
            await client.patch(url, {"status": status})
        except kube.NotFound:
            continue
        posting.post(wf, events.for_workflow(old, status))


def register(registry: kopf.OperatorRegistry, settings: settings_mod.Settings) -> None:
    """Add the Workflows' index and handlers to ``registry``."""
    kopf.index(GROUP, VERSION, "workflows", registry=registry)(workflow_index)
    for workflow_on in (kopf.on.resume, kopf.on.create):
        workflow_on(GROUP, VERSION, "workflows", registry=registry)(workflow_changed)
    kopf.on.update(GROUP, VERSION, "workflows", field="spec", registry=registry)(workflow_changed)
    kopf.on.event(GROUP, VERSION, "integrations", registry=registry)(integration_event)
