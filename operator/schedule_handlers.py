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
when one of its runs finishes or goes, and the next tick lists them; a full resync every
``RESYNC_SECONDS`` covers anything a watch missed.
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

import kopf

from autoflow.crds import conditions, meta
from autoflow.operator import events, handlers, metrics, runs, schedules
from autoflow.operator import settings as settings_mod
from autoflow.runners import kube

log = logging.getLogger("autoflow.operator.schedules")

GROUP, VERSION = meta.GROUP, meta.VERSION
TICK_SECONDS = 1.0
RESYNC_SECONDS = 60.0
_BACKOFF = settings_mod.Settings().handler_backoff_seconds
_SYNCED_AT = "autoflow_schedule_synced_at"

# Schedules (namespace, name) with a run that finished or went since their last sync.
_dirty: set[tuple[str, str]] = set()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _runs_url(namespace: str, name: str | None = None) -> str:
    return kube.path(kube.AUTOFLOW, "workflowruns", namespace, name)


@kopf.timer(GROUP, VERSION, "schedules", id="fire", interval=TICK_SECONDS, backoff=_BACKOFF)
async def schedule_tick(
    body: kopf.Body, namespace: str | None, name: str, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    schedule = dict(body)
    ns = namespace or ""
    now = _now()
    resync = time.monotonic() - memo.get(_SYNCED_AT, float("-inf")) > RESYNC_SECONDS
    if not resync and (ns, name) not in _dirty and schedules.settled(schedule, now):
        return
    _dirty.discard((ns, name))
    try:
        with metrics.reconciling("Schedule"):  # only ticks that do work: idle ones cost nothing
            await _reconcile(schedule, ns, now, patch)
    except Exception:
        _dirty.add((ns, name))  # kopf calls again after its backoff: look at the runs then
        raise
    memo[_SYNCED_AT] = time.monotonic()


async def _reconcile(
    schedule: dict[str, Any], ns: str, now: datetime.datetime, patch: kopf.Patch
) -> None:
    name = schedule["metadata"]["name"]
    selector = f"{schedules.LABEL_SCHEDULE}={runs.label_value(name)}"
    listed = await handlers.client().list(
        kube.path(kube.AUTOFLOW, "workflowruns", ns, query={"labelSelector": selector})
    )
    plan = schedules.plan(schedule, listed, now)
    for run_name in plan.cancel:
        await _cancel(schedule, run_name)
    for run in plan.create:
        await _create(schedule, run)
    uids = {r["metadata"]["name"]: r["metadata"]["uid"] for r in listed}
    for run_name in plan.delete:
        await _delete(ns, run_name, uids[run_name])
    for fire, reason in plan.skipped:
        log.info("schedule %s/%s: %s", ns, name, reason, extra={"fire": str(fire)})
        events.post(schedule, events.Event("Normal", "FireSkipped", reason))
    metrics.schedule_fired("skipped", len(plan.skipped))
    if plan.missed:
        _missed(schedule, plan.missed)
    if schedules.status_changed(schedule, plan.status):
        _announce_readiness(schedule, plan.status)
        patch.status.update(plan.status)


async def _create(schedule: dict[str, Any], run: dict[str, Any]) -> None:
    meta_ = run["metadata"]
    try:
        await handlers.client().create(_runs_url(meta_["namespace"]), run)
    except kube.ApiError as exc:
        if not exc.conflict:
            raise
        # This fire's run exists: created before a restart, or by another operator.
        log.info("schedule %s: run %s exists already", schedule["metadata"]["name"], meta_["name"])
        return
    metrics.schedule_fired("created")
    when = meta_["annotations"][schedules.ANNOTATION_SCHEDULED_TIME]
    log.info("schedule %s created run %s for %s", schedule["metadata"]["name"], meta_["name"], when)
    message = f"created WorkflowRun {meta_['name']} for the fire at {when}"
    events.post(schedule, events.Event("Normal", "RunCreated", message))


async def _cancel(schedule: dict[str, Any], run_name: str) -> None:
    url = _runs_url(schedule["metadata"]["namespace"], run_name)
    try:
        await handlers.client().patch(url, {"spec": {"cancel": True}})
    except kube.ApiError as exc:
        if not exc.not_found:
            raise
        return
    message = (
        f"cancelled WorkflowRun {run_name}: a new fire replaces it (concurrencyPolicy Replace)"
    )
    events.post(schedule, events.Event("Normal", "RunReplaced", message))


async def _delete(namespace: str, run_name: str, uid: str) -> None:
    body = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
    try:
        await handlers.client().delete(_runs_url(namespace, run_name), body)
    except kube.ApiError as exc:
        if not (exc.not_found or exc.conflict):
            raise


def _missed(schedule: dict[str, Any], count: int) -> None:
    spec = schedule["spec"]
    policy = (spec.get("catchUp") or {}).get("policy", "Skip")
    more = "or more " if count >= schedules.MISSED_COUNT_LIMIT else ""
    message = (
        f"{count} {more}fires missed (catchUp.policy {policy}, startingDeadlineSeconds"
        f" {spec.get('startingDeadlineSeconds', 'unset')})"
    )
    metrics.schedule_missed(count)
    log.warning("schedule %s: %s", schedule["metadata"]["name"], message)
    events.post(schedule, events.Event("Warning", "MissedFires", message))


def _announce_readiness(schedule: dict[str, Any], new: dict[str, Any]) -> None:
    """A Warning when the Schedule becomes not Ready (or its reason for it changes)."""
    old = conditions.get((schedule.get("status") or {}).get("conditions"), schedules.READY) or {}
    ready = conditions.get(new["conditions"], schedules.READY) or {}
    if ready.get("status") == "True":
        return
    if (old.get("status"), old.get("message")) == (ready.get("status"), ready.get("message")):
        return
    events.post(schedule, events.Event("Warning", ready["reason"], ready["message"]))


@kopf.on.event(GROUP, VERSION, "workflowruns", labels={schedules.LABEL_SCHEDULE: kopf.PRESENT})
async def scheduled_run_event(body: kopf.Body, type: str, namespace: str | None, **_: Any) -> None:
    """A Schedule's run finished or went: its Schedule's active list needs a look."""
    run = dict(body)
    owner = schedules.owner_of(run)
    if owner is not None and (type == "DELETED" or runs.is_finished(run)):
        _dirty.add((namespace or "", owner))
