"""kopf handlers for Schedules: a timer per Schedule that fires it, and a watch on its runs.

Every second, for each Schedule, the timer reads like its sentence::

    settled(schedule, now)                 # nothing due, status current: done, no API call
    runs = list WorkflowRuns labelled autoflow.dev/schedule=<name>
    plan = schedules.plan(schedule, runs, now)
    cancel (Replace), create (409: the fire happened already), delete beyond history limits
    patch the status (kopf applies it after the handler)

The decisions are pure (``schedules``, ``cron``); this module only reads the clock and does
the I/O. What makes a fire happen once is the run's name: every operator, before or after a
restart, derives the same one, and the API server refuses to create it twice.

The active runs in the status go stale when a run finishes. Instead of listing runs every
second, the watch on WorkflowRuns (which kopf keeps anyway) marks the owning Schedule dirty
when one of its runs finishes or goes (``context.Context.dirty_schedules``), and the next tick
lists them; a full resync every
``RESYNC_SECONDS`` covers anything a watch missed.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from typing import Any

import kopf

from autoflow.crds import conditions, meta
from autoflow.operator import context, events, metrics, posting, runs, schedules
from autoflow.operator import settings as settings_mod
from autoflow.runners import kube

log = logging.getLogger("autoflow.operator.schedules")

GROUP, VERSION = meta.GROUP, meta.VERSION
TICK_SECONDS = 1.0
RESYNC_SECONDS = 60.0
_SYNCED_AT = "autoflow_schedule_synced_at"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def schedule_tick(
    body: kopf.Body, namespace: str | None, name: str, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    ctx = context.of(memo)
    dirty = ctx.dirty_schedules
    schedule = dict(body)
    ns = namespace or ""
    now = _now()
    resync = time.monotonic() - memo.get(_SYNCED_AT, float("-inf")) > RESYNC_SECONDS
    if not resync and (ns, name) not in dirty and schedules.settled(schedule, now):
        return
    dirty.discard((ns, name))
    try:
        with metrics.reconciling("Schedule"):  # only ticks that do work: idle ones cost nothing
            await _reconcile(ctx.client, schedule, ns, now, patch)
    except Exception:
        dirty.add((ns, name))  # kopf calls again after its backoff: look at the runs then
        raise
    memo[_SYNCED_AT] = time.monotonic()


async def _reconcile(
    client: kube.Client,
    schedule: meta.JSONDict,
    ns: str,
    now: datetime.datetime,
    patch: kopf.Patch,
) -> None:
    name = schedule["metadata"]["name"]
    selector = f"{schedules.LABEL_SCHEDULE}={runs.label_value(name)}"
    listed = await client.list(kube.paths.run(ns, selector=selector))
    plan = schedules.plan(schedule, listed, now)
    for run_name in plan.cancel:
        await _cancel(client, schedule, run_name)
    for run in plan.create:
        await _create(client, schedule, run)
    uids = {r["metadata"]["name"]: r["metadata"]["uid"] for r in listed}
    for run_name in plan.delete:
        await _delete(client, ns, run_name, uids[run_name])
    for fire, reason in plan.skipped:
        log.info("schedule %s/%s: %s", ns, name, reason, extra={"fire": str(fire)})
        posting.post(schedule, events.Event("Normal", "FireSkipped", reason))
    metrics.schedule_fired("skipped", len(plan.skipped))
    if plan.missed:
        _missed(schedule, plan.missed)
    if schedules.status_changed(schedule, plan.status):
        _announce_readiness(schedule, plan.status)
        patch.status.update(plan.status)


async def _create(client: kube.Client, schedule: meta.JSONDict, run: meta.JSONDict) -> None:
    meta_ = run["metadata"]
    try:
        await client.create(kube.paths.run(meta_["namespace"]), run)
    except kube.Conflict:
        # This fire's run exists: created before a restart, or by another operator.
        log.info("schedule %s: run %s exists already", schedule["metadata"]["name"], meta_["name"])
        return
    metrics.schedule_fired("created")
    when = meta_["annotations"][schedules.ANNOTATION_SCHEDULED_TIME]
    log.info("schedule %s created run %s for %s", schedule["metadata"]["name"], meta_["name"], when)
    message = f"created WorkflowRun {meta_['name']} for the fire at {when}"
    posting.post(schedule, events.Event("Normal", "RunCreated", message))


async def _cancel(client: kube.Client, schedule: meta.JSONDict, run_name: str) -> None:
    url = kube.paths.run(schedule["metadata"]["namespace"], run_name)
    try:
        await client.patch(url, {"spec": {"cancel": True}})
    except kube.NotFound:
        return
    message = (
        f"cancelled WorkflowRun {run_name}: a new fire replaces it (concurrencyPolicy Replace)"
    )
    posting.post(schedule, events.Event("Normal", "RunReplaced", message))


async def _delete(client: kube.Client, namespace: str, run_name: str, uid: str) -> None:
    body = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
    with contextlib.suppress(kube.NotFound, kube.Conflict):
        await client.delete(kube.paths.run(namespace, run_name), body)


def _missed(schedule: meta.JSONDict, count: int) -> None:
    spec = schedule["spec"]
    policy = (spec.get("catchUp") or {}).get("policy", "Skip")
    more = "or more " if count >= schedules.MISSED_COUNT_LIMIT else ""
    message = (
        f"{count} {more}fires missed (catchUp.policy {policy}, startingDeadlineSeconds"
        f" {spec.get('startingDeadlineSeconds', 'unset')})"
    )
    metrics.schedule_missed(count)
    log.warning("schedule %s: %s", schedule["metadata"]["name"], message)
    posting.post(schedule, events.Event("Warning", "MissedFires", message))


def _announce_readiness(schedule: meta.JSONDict, new: meta.JSONDict) -> None:
    """A Warning when the Schedule becomes not Ready (or its reason for it changes)."""
    old = conditions.get((schedule.get("status") or {}).get("conditions"), schedules.READY) or {}
    ready = conditions.get(new["conditions"], schedules.READY) or {}
    if ready.get("status") == "True":
        return
    if (old.get("status"), old.get("message")) == (ready.get("status"), ready.get("message")):
        return
    posting.post(schedule, events.Event("Warning", ready["reason"], ready["message"]))


async def scheduled_run_event(
    body: kopf.Body, type: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A Schedule's run finished or went: its Schedule's active list needs a look."""
    run = dict(body)
    owner = schedules.owner_of(run)
    if owner is not None and (type == "DELETED" or runs.is_finished(run)):
        context.of(memo).dirty_schedules.add((namespace or "", owner))


def register(registry: kopf.OperatorRegistry, settings: settings_mod.Settings) -> None:
    """Add the Schedules' timer and the watch on their runs to ``registry``."""
    kopf.timer(
        GROUP,
        VERSION,
        "schedules",
        id="fire",
        interval=TICK_SECONDS,
        backoff=settings.handler_backoff_seconds,
        registry=registry,
    )(schedule_tick)
    scheduled = {schedules.LABEL_SCHEDULE: kopf.PRESENT}
    kopf.on.event(GROUP, VERSION, "workflowruns", labels=scheduled, registry=registry)(
        scheduled_run_event
    )
