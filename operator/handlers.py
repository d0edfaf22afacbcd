"""kopf handlers of WorkflowRuns and their Jobs, and the operator's start-up and clean-up.

Thin shells that read, call the pure reconcilers, and write (the Workflows' own handlers are
in ``workflow_handlers``, Schedules' and Integrations' beside them). Each handler is the
sentence of its reconcile path; the decisions live in ``workflows``, ``runs``,
``concurrency`` and ``events`` (pure functions over dicts), and the Kubernetes I/O besides
kopf's own goes through ``runners.kube``. What the handlers share (settings, the API client,
the TTL sweeper, the admissions) is one ``context.Context``, made by ``startup`` and handed
to each handler in kopf's ``memo``; ``register`` adds the handlers to a registry with the
settings' back-off, so importing this module does nothing. Deleting finished runs under a
Workflow's ``runHistory`` is ``sweeper``'s (archived into the run store first, when there is
one: ``archive``); runs under its ``concurrency`` are admitted by ``admission`` (queued runs
get their Jobs from there, when a slot frees).

A WorkflowRun's status has two writers, the operator and the runner. The runner owns the
journal fields (``startedAt``, ``steps``, ``outputs``, ``result``); the operator owns the
phase, the ``Succeeded`` condition and the snapshot. Every operator write of a run status is
guarded by the run's ``resourceVersion``: on a conflict the run is read again and the change
computed again, so two handlers racing to finish a run finish it once, and only the winner
posts the Event, counts the run on its Workflow and applies the history limits.

Handlers that react to a run's status (``run_event``) or to its Job (``job_event``) are
kopf event handlers, which keep no state on the object; only dispatch and cancellation are
change handlers, retried by kopf until they succeed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

import kopf

from autoflow.crds import conditions, errors, meta
from autoflow.operator import (
    admission,
    archive,
    concurrency,
    context,
    diffbase,
    events,
    history,
    metrics,
    pool_status,
    posting,
    retention,
    runs,
    workflow_handlers,
    workflows,
)
from autoflow.operator import settings as settings_mod
from autoflow.operator import sweeper as sweeper_mod
from autoflow.runners import kube, store

log = logging.getLogger("autoflow.operator")

GROUP, VERSION = meta.GROUP, meta.VERSION
CONFLICT_RETRIES = 10

WorkflowIndex = workflow_handlers.WorkflowIndex
Context = context.Context


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Annotations, not status: the CRD schemas prune unknown status fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="autoflow.dev")
    # What kopf compares to find changes: the spec only. Labels and annotations change for
    # reasons of their own (the operator labels runs, GitOps tools annotate), and each
    # change would cost a write of kopf's diff base for nothing. Bounded: a Workflow near
    # the size limit would need an annotation over the API server's limit (``diffbase``).
    settings.persistence.diffbase_storage = diffbase.BoundedDiffBaseStorage(
        prefix="autoflow.dev",
        key="last-handled",
        ignored_fields=["metadata.labels", "metadata.annotations"],
    )
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "autoflow-operator"
    # The CRDs are installed before the operator (chart, kustomize): no need to watch
    # CustomResourceDefinitions or Namespaces, and no RBAC for them.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    # kopf keeps a worker per object until it has been idle this long, and a worker limit
    # counts idle workers too: with kopf's 5 s, a limit of N allowed only N / 5 s new runs.
    # So no limit here; DISPATCH_CONCURRENCY and the API client's connection limit bound
    # the work in flight.
    settings.queueing.worker_limit = None
    settings.queueing.idle_timeout = 1.0
    config = context.settings_of(memo)
    client = kube.Client.from_config()
    archiver = None
    if config.store_url:
        # Unreachable or at the wrong schema version: the operator does not start, saying
        # why (the URL without its password), rather than delete runs it cannot archive.
        archiver = archive.Archiver(
            client, await store.open_store(config.store_url), config.archive_concurrency
        )
        log.info("archiving finished runs into the run store at %s", archiver.store.display_url)
    ctx = Context(config, client, sweeper_mod.Sweeper(client, archiver), archiver=archiver)
    if archiver is not None and config.store_purge_interval_seconds > 0:
        ctx.retainer = retention.Retainer(client, archiver.store, config)
    if archiver is not None and config.store_status_interval_seconds > 0:
        ctx.pool_status = pool_status.PoolStatus(client, archiver.store, config)
    ctx.admissions = admission.Admissions(
        client,
        functools.partial(_transition, ctx),
        functools.partial(_launch_admitted, ctx),
        config.handler_backoff_seconds,
    )
    memo[context.CONTEXT] = ctx
    metrics.serve(config.metrics_port)
    log.info("autoflow operator running as %s", await whoami(client))
    ctx.sweeper.start()
    if ctx.retainer is not None:
        ctx.retainer.start()
    if ctx.pool_status is not None:
        ctx.pool_status.start()


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    ctx = context.of(memo)
    await ctx.admissions.stop()
    await ctx.sweeper.stop()
    if ctx.retainer is not None:
        await ctx.retainer.stop()
    if ctx.pool_status is not None:
        await ctx.pool_status.stop()
    if ctx.archiver is not None:
        await ctx.archiver.store.aclose()
    await ctx.client.aclose()


async def whoami(client: kube.Client) -> str:
    """The user the API server knows this operator as (a SelfSubjectReview)."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    url = kube.path(kube.paths.AUTHENTICATION, "selfsubjectreviews")
    try:
        answer = await client.create(url, review)
    except kube.ApiError as exc:
        return f"<unknown: {exc}>"
    return str(answer.get("status", {}).get("userInfo", {}).get("username", "<unknown>"))


# -- WorkflowRuns: writing the status -------------------------------------------------------


async def _transition(
    ctx: Context, run: meta.JSONDict, compute: Callable[[meta.JSONDict], meta.JSONDict]
) -> meta.JSONDict | None:
    """Write ``compute(run)`` to the run's status, guarded by its resourceVersion.

    On a conflict the run is read again and the change computed again. Returns the run as
    written, or None when there was nothing to write (or the run is gone).
    """
    meta_ = run["metadata"]
    url = kube.paths.run(meta_["namespace"], meta_["name"], "status")
    for _ in range(CONFLICT_RETRIES):
        change = compute(run)
        if not change:
            return None
        body = {"metadata": {"resourceVersion": run["metadata"]["resourceVersion"]}}
        try:
            written = await ctx.client.patch(url, {**body, "status": change})
        except kube.NotFound:
            return None
        except kube.Conflict:
            fresh = await ctx.client.get_or_none(kube.paths.run(meta_["namespace"], meta_["name"]))
            if fresh is None or fresh["metadata"]["uid"] != meta_["uid"]:
                return None
            run = fresh
            continue
        await _announce(ctx, run, written)
        return written
    raise kopf.TemporaryError(f"the status of run {meta_['name']} keeps changing", delay=1)


async def _announce(ctx: Context, old: meta.JSONDict, new: meta.JSONDict) -> None:
    """After a status write: the Event, and for a finished run its Workflow's bookkeeping."""
    before, after = old.get("status") or {}, new.get("status") or {}
    metrics.observe_run_transition(before, after)
    posting.post(new, events.for_run(before, after))
    if runs.is_finished(new) and not runs.is_finished(old):
        await _finished(ctx, new)


async def _finished(ctx: Context, run: meta.JSONDict) -> None:
    """Count the run on its Workflow, then keep only the runs its ``runHistory`` allows."""
    namespace, name = run["metadata"]["namespace"], run["metadata"]["name"]
    wf_name = runs.workflow_name(run)
    ctx.admissions.changed(namespace, wf_name)  # a slot (or a place in the queue) is free
    url = kube.paths.workflow(namespace, wf_name)
    wf: meta.JSONDict | None = None
    for _ in range(CONFLICT_RETRIES):
        wf = await ctx.client.get_or_none(url)
        if wf is None:
            return
        old = wf.get("status") or {}
        phase = runs.phase_of(run)
        status = {
            "lastRun": name,
            "lastRunPhase": phase,
            "runsTotal": int(old.get("runsTotal") or 0) + 1,
            "runsSucceeded": int(old.get("runsSucceeded") or 0) + (phase == "Succeeded"),
            "runsFailed": int(old.get("runsFailed") or 0) + (phase == "Failed"),
        }
        guard = {"resourceVersion": wf["metadata"]["resourceVersion"]}
        try:
            await ctx.client.patch(f"{url}/status", {"metadata": guard, "status": status})
            break
        except kube.NotFound:
            return
        except kube.Conflict:
            continue
    assert wf is not None
    run_history = wf["spec"].get("runHistory")
    await sweeper_mod.enforce(ctx.client, namespace, wf_name, run_history, ctx.archiver)
    ctx.sweeper.schedule(run, history.expires_at(run, run_history))


# -- WorkflowRuns: dispatch, cancel, progress -----------------------------------------------

_KINDS = {
    "ServiceAccount": (kube.CORE, "serviceaccounts"),
    "Role": (kube.RBAC, "roles"),
    "RoleBinding": (kube.RBAC, "rolebindings"),
    "Job": (kube.BATCH, "jobs"),
}


async def _ensure(client: kube.Client, obj: meta.JSONDict, run: meta.JSONDict) -> None:
    """Create ``obj`` for ``run``; one that exists already must be the run's own."""
    api, plural = _KINDS[obj["kind"]]
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    try:
        await client.create(kube.path(api, plural, namespace), obj)
        return
    except kube.Conflict:
        pass
    existing = await client.get_or_none(kube.path(api, plural, namespace, name))
    if existing is not None and runs.owned_by(existing, run):
        return
    # Left by an earlier run of the same name: the garbage collector removes it soon.
    raise NotOurs(f"{obj['kind']} {name} exists and belongs to another run; waiting for it to go")


async def _integrations_of(
    client: kube.Client, run: meta.JSONDict, namespace: str
) -> list[meta.JSONDict]:
    """The Integrations the run's steps name, as they are now (a missing one is left out: the
    runner then says it is not found)."""
    found = await asyncio.gather(
        *(
            client.get_or_none(kube.paths.integration(namespace, name))
            for name in runs.integrations_used(run)
        )
    )
    return [i for i in found if i is not None]


class NotOurs(errors.AutoflowError):
    """An object the run needs exists under its name but was made for another run."""


async def _problems(client: kube.Client, wf: meta.JSONDict, namespace: str) -> list[str]:
    """Why the Workflow cannot run; its Ready condition answers when it is up to date."""
    generation = wf["metadata"].get("generation")
    ready = conditions.get((wf.get("status") or {}).get("conditions"), workflows.READY) or {}
    if ready.get("status") == "True" and ready.get("observedGeneration") == generation:
        return []
    _, found = workflows.validate(wf, await workflow_handlers.integration_names(client, namespace))
    return [str(p.where.replace(resource=None)) + ": " + p.message for p in found]


async def _start(
    ctx: Context, run: meta.JSONDict, namespace: str, index: WorkflowIndex
) -> meta.JSONDict | None:
    """Snapshot the Workflow into the run (Pending), or fail the run; the run as it is now."""
    wf_name = runs.workflow_name(run)
    wf = workflow_handlers.indexed(index, namespace, wf_name)
    if wf is None:
        wf = await ctx.client.get_or_none(kube.paths.workflow(namespace, wf_name))
    problems = [] if wf is None else await _problems(ctx.client, wf, namespace)
    account = runs.workflow_service_account(wf) if wf is not None and not problems else None
    if account is not None:
        sa_url = kube.path(kube.CORE, "serviceaccounts", namespace, account)
        if await ctx.client.get_or_none(sa_url) is None:
            problems = [f"runtime.serviceAccountName: ServiceAccount {account!r} does not exist"]

    def start(current: meta.JSONDict) -> meta.JSONDict:
        if runs.is_finished(current) or (current.get("status") or {}).get("workflowSnapshot"):
            return {}
        return runs.start_status(current, wf, problems)

    # Under spec.concurrency the start also decides whether the run may have its Job now.
    limit = None if wf is None or problems else concurrency.limit_of(wf.get("spec"))
    if limit is None:
        written = await _transition(ctx, run, start)
    else:
        written = await ctx.admissions.start(run, limit, start)
    if written is not None:
        return written
    return await ctx.client.get_or_none(kube.paths.run(namespace, run["metadata"]["name"]))


async def _dispatch(ctx: Context, run: meta.JSONDict, namespace: str, index: WorkflowIndex) -> None:
    """Snapshot the Workflow, then create the runner's access and its Job (idempotently)."""
    # A few at a time, in the order they came: under a burst the first runs start first
    # instead of all of them sharing the API client and finishing together, late.
    async with ctx.dispatching:
        await _dispatch_one(ctx, run, namespace, index)


async def _dispatch_one(
    ctx: Context, run: meta.JSONDict, namespace: str, index: WorkflowIndex
) -> None:
    if not (run.get("status") or {}).get("workflowSnapshot"):
        current = await _start(ctx, run, namespace, index)
        if current is None or current["metadata"]["uid"] != run["metadata"]["uid"]:
            return
        run = current
    elif concurrency.is_queued(run):  # queued earlier (a restart, a retry): see to the queue
        ctx.admissions.wake(namespace, runs.workflow_name(run))
        return
    if runs.is_finished(run) or not (run.get("status") or {}).get("workflowSnapshot"):
        return
    if not (run["spec"].get("cancel") or concurrency.is_queued(run)):
        await _launch(ctx, run, namespace)


async def _launch(ctx: Context, run: meta.JSONDict, namespace: str) -> None:
    """Create the runner's access and its Job (idempotently)."""
    # The ServiceAccount before the Job: the Job controller does not create a pod whose
    # account is missing, and tries again only after a backoff. The Role before its
    # RoleBinding: the API server checks the operator holds what the bound Role grants. The
    # binding and the Job together: the runner waits briefly for its access (runners.job).
    client = ctx.client
    integrations = await _integrations_of(client, run, namespace)
    *first, binding = runs.render_runner_access(run, integrations)
    await asyncio.gather(*(_ensure(client, obj, run) for obj in first))
    job = runs.render_job(run, ctx.settings)
    await asyncio.gather(_ensure(client, binding, run), _ensure(client, job, run))


async def _launch_admitted(ctx: Context, run: meta.JSONDict) -> None:
    """The Job of a queued run given its slot (by ``admission``, outside the run's handlers)."""
    namespace = run["metadata"]["namespace"]
    async with ctx.dispatching:
        await _launch(ctx, run, namespace)
    # A cancel that came as the run was admitted may have found no Job to suspend.
    current = await ctx.client.get_or_none(kube.paths.run(namespace, run["metadata"]["name"]))
    if (
        current
        and current["metadata"]["uid"] == run["metadata"]["uid"]
        and current["spec"].get("cancel")
    ):
        await _cancel(ctx, current, namespace)


@metrics.reconciler("WorkflowRun")
async def run_created(
    body: kopf.Body,
    namespace: str | None,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    ctx = context.of(memo)
    index: WorkflowIndex = kwargs["workflow_index"]
    run = dict(body)
    label = runs.label_value(runs.workflow_name(run))
    if run["metadata"].get("labels", {}).get(runs.LABEL_WORKFLOW) != label:
        patch.metadata.labels[runs.LABEL_WORKFLOW] = label  # history limits list runs by it
    if runs.is_finished(run):
        return
    if run["spec"].get("cancel"):
        await _cancel(ctx, run, namespace or "")
        return
    try:
        await _dispatch(ctx, run, namespace or "", index)
    except kube.NamespaceTerminating as exc:
        log.info("not dispatching run %s/%s: %s", namespace, run["metadata"]["name"], exc)
    except NotOurs as exc:
        if retry == 0:  # once: kopf retries every few seconds until the object is gone
            posting.post(run, events.Event("Warning", "Blocked", str(exc)))
        raise kopf.TemporaryError(str(exc), delay=ctx.backoff) from None


async def _cancel(ctx: Context, run: meta.JSONDict, namespace: str) -> None:
    """Suspend the run's Job (its pod is stopped; the runner runs ``finally`` and ends)."""
    url = kube.paths.job(namespace, runs.job_name(run))
    try:
        job: meta.JSONDict | None = await ctx.client.patch(url, {"spec": {"suspend": True}})
    except kube.NotFound:
        job = None
    if job is not None and not runs.owned_by(job, run):
        job = None
    await _transition(ctx, run, lambda current: runs.cancelled(current, job))


@metrics.reconciler("WorkflowRun")
async def run_cancelled(
    body: kopf.Body, namespace: str | None, new: Any, memo: kopf.Memo, **_: Any
) -> None:
    run = dict(body)
    if new and not runs.is_finished(run):
        await _cancel(context.of(memo), run, namespace or "")


async def run_event(
    body: kopf.Body, type: str, namespace: str | None, memo: kopf.Memo, **kwargs: Any
) -> None:
    """The runner wrote to the status: Running once it started, finished once it recorded a
    result. Finished runs are (re)scheduled for their TTL."""
    ctx = context.of(memo)
    index: WorkflowIndex = kwargs["workflow_index"]
    run = dict(body)
    metrics.observe_run_event(type, run)
    if type == "DELETED":
        ctx.sweeper.forget(run["metadata"]["uid"])
        if not runs.is_finished(run):  # it held a slot, or a place in a queue
            ctx.admissions.changed(namespace or "", runs.workflow_name(run))
        return
    if runs.is_finished(run):
        if ctx.archiver is not None and not archive.is_archived(run):
            # Also every finished run kopf lists at start-up: an archive an operator restart
            # cut short is done again (idempotent).
            await ctx.archiver.ensure(run)
        wf = workflow_handlers.indexed(
            index, run["metadata"].get("namespace"), runs.workflow_name(run)
        )
        run_history = (wf or {}).get("spec", {}).get("runHistory")
        ctx.sweeper.schedule(run, history.expires_at(run, run_history))
        return
    if not (run.get("status") or {}).get("workflowSnapshot"):
        return  # not dispatched yet: run_created does that
    await _transition(ctx, run, lambda current: runs.summarize(current, None))


async def job_event(
    body: kopf.Body, namespace: str | None, type: str, memo: kopf.Memo, **_: Any
) -> None:
    """A runner Job changed: its pod started, failed for good, or stopped after a suspend."""
    job = dict(body)
    owner = next(
        (o for o in job["metadata"].get("ownerReferences", []) if o.get("kind") == "WorkflowRun"),
        None,
    )
    status = job.get("status") or {}
    if owner is None or type == "DELETED":
        return
    if not (status.get("active") or status.get("conditions") or job["spec"].get("suspend")):
        return  # a Job without a pod yet says nothing about its run
    ctx = context.of(memo)
    run = await ctx.client.get_or_none(kube.paths.run(namespace or "", owner["name"]))
    if run is None or run["metadata"].get("uid") != owner.get("uid"):
        return
    if runs.is_finished(run):
        if ctx.archiver is not None and not archive.is_archived(run):
            await ctx.archiver.ensure(run)  # its runner stopped: nothing more on the way
        return
    await _transition(ctx, run, lambda current: runs.summarize(current, job))


def register(registry: kopf.OperatorRegistry, settings: settings_mod.Settings) -> None:
    """Add the handlers of WorkflowRuns and their Jobs (and start-up, clean-up) to ``registry``."""
    backoff = settings.handler_backoff_seconds
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    for run_on in (kopf.on.resume, kopf.on.create):
        run_on(GROUP, VERSION, "workflowruns", backoff=backoff, registry=registry)(run_created)
    kopf.on.field(
        GROUP, VERSION, "workflowruns", field="spec.cancel", backoff=backoff, registry=registry
    )(run_cancelled)
    kopf.on.event(GROUP, VERSION, "workflowruns", registry=registry)(run_event)
    managed = {runs.LABEL_MANAGED: runs.MANAGED_BY}
    kopf.on.event("batch", "v1", "jobs", labels=managed, registry=registry)(job_event)
