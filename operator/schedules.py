"""Schedule reconciliation as pure functions over plain dicts and an injected ``now``.

One reconcile of a Schedule reads like its sentence::

    due    = due_fires(spec, status, now, created)   # the fires to carry out, under catch-up
    action = decide(spec, active_runs, fire)         # per fire: create, skip, or cancel + create
    run    = render_run(schedule, fire)              # named run_name(schedule, fire)
    (I/O, in schedule_handlers) cancel, create (409 = this fire already happened), delete
    status = schedule_status(schedule, now, last, active)

``plan`` strings these together. Nothing here reads a clock or talks to the API.

What the operator promises, and the decisions behind it:

- **Cron and daylight saving time**: see ``autoflow.crds.cron``. In short, five fields or
  six with seconds first, in the IANA ``timezone``; a fixed-hour time lost to spring-forward
  fires at the end of the gap, one repeated by fall-back fires once; an every-hour schedule
  follows real time.
- **One run per fire**: a fire is carried out by creating the WorkflowRun ``run_name(schedule,
  fire)``, a name derived from the Schedule's uid and the fire time. The API server refuses a
  second create of that name (409), so a restarted operator, or two of them, cannot run a fire
  twice; a recreated Schedule (new uid) gets new names.
- **Catch-up**: fires between ``lastScheduleTime`` (or the Schedule's creation) and now. Skip
  (the default) runs only the most recent fire and only while it is at most
  ``startingDeadlineSeconds`` late (60 s when unset); Latest runs the most recent fire within
  the deadline (any age when unset); All runs every fire within the deadline, the newest
  ``catchUp.maxRuns`` of them. The others are missed, and counted. Fires missed while the
  Schedule was suspended are treated the same way when it resumes.
- **lastScheduleTime** is the newest fire the operator has handled: run, skipped under Forbid,
  or missed. It is where the next reconcile starts counting.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import pydantic

from autoflow.crds import conditions, errors, meta, problems, schedule
from autoflow.crds import cron as cron_mod
from autoflow.operator import runs as runs_mod

UTC = datetime.UTC
READY = "Ready"
LABEL_SCHEDULE = "autoflow.dev/schedule"
ANNOTATION_SCHEDULED_TIME = "autoflow.dev/scheduled-time"
# Skip's lateness tolerance when startingDeadlineSeconds is unset: covers an operator restart.
SKIP_GRACE_SECONDS = 60
# Missed fires are counted (for events and metrics) up to this many per reconcile; a seconds
# cron and a week of downtime must not cost a million croniter steps.
MISSED_COUNT_LIMIT = 1000
# Run names stay within 63 characters, so the runner Job (and its label values) keep the name.
NAME_PREFIX_MAX = 52
DIGEST_LENGTH = 10


@dataclasses.dataclass(frozen=True)
class Due:
    """What ``due_fires`` found: fires to carry out (oldest first), missed ones, the newest."""

    fires: list[datetime.datetime]
    missed: int
    last: datetime.datetime | None  # the new lastScheduleTime


@dataclasses.dataclass(frozen=True)
class Decision:
    """What one fire does under the concurrency policy."""

    create: bool
    cancel: tuple[str, ...] = ()
    reason: str = ""  # why the fire creates nothing, for events and logs


@dataclasses.dataclass
class Plan:
    """Everything one reconcile does, in order: cancel, create, delete, then write status."""

    cancel: list[str] = dataclasses.field(default_factory=list)
    create: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    delete: list[str] = dataclasses.field(default_factory=list)
    skipped: list[tuple[datetime.datetime, str]] = dataclasses.field(default_factory=list)
    missed: int = 0
    status: dict[str, Any] = dataclasses.field(default_factory=dict)


# -- time -----------------------------------------------------------------------------------


def format_time(value: datetime.datetime) -> str:
    """A UTC timestamp as Kubernetes writes them (RFC 3339, seconds, ``Z``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# -- cron -----------------------------------------------------------------------------------


def _model(spec: dict[str, Any]) -> schedule.ScheduleSpec:
    try:
        return schedule.ScheduleSpec.model_validate(spec)
    except pydantic.ValidationError as exc:
        field, message = problems.first(exc)
        raise errors.ManifestError(message, errors.Where(field=f"spec.{field}")) from None


def parse(spec: dict[str, Any]) -> cron_mod.Cron:
    """The Schedule's cron; ``ManifestError`` whose ``where.field`` names the bad field."""
    model = _model(spec)
    return cron_mod.parse(model.cron, model.timezone)


def next_fire(
    spec: dict[str, Any] | cron_mod.Cron, after: datetime.datetime
) -> datetime.datetime | None:
    """The first fire strictly after ``after`` (UTC), or None when the cron never fires again."""
    cron = spec if isinstance(spec, cron_mod.Cron) else parse(spec)
    return cron_mod.next_fire(cron, after)


def fires_between(
    spec: dict[str, Any] | cron_mod.Cron, start: datetime.datetime, end: datetime.datetime
) -> Iterator[datetime.datetime]:
    """Every fire in (start, end], oldest first."""
    cron = spec if isinstance(spec, cron_mod.Cron) else parse(spec)
    for fire in cron_mod.fires(cron, start):
        if fire > end:
            return
        yield fire


def _fires_until(cron: cron_mod.Cron, now: datetime.datetime) -> Iterator[datetime.datetime]:
    """Fires at or before ``now``, newest first."""
    start = now.replace(microsecond=0) + datetime.timedelta(seconds=1)
    for fire in cron_mod.fires(cron, start, backwards=True):
        if fire <= now:
            yield fire


# -- what fires -----------------------------------------------------------------------------


def _deadline(model: schedule.ScheduleSpec) -> float | None:
    policy = model.catch_up.policy if model.catch_up else "Skip"
    if model.starting_deadline_seconds is not None:
        return float(model.starting_deadline_seconds)
    return float(SKIP_GRACE_SECONDS) if policy == "Skip" else None


def due_fires(
    spec: dict[str, Any],
    status: dict[str, Any] | None,
    now: datetime.datetime,
    created: datetime.datetime | None = None,
) -> Due:
    """The fires since the last handled one (or ``created``) to carry out now.

    Skip and Latest carry out at most the newest fire, All the newest ``catchUp.maxRuns``;
    only fires at most the deadline late qualify. The rest are counted as missed.
    """
    model = _model(spec)
    last = parse_time((status or {}).get("lastScheduleTime"))
    if model.suspend:
        return Due([], 0, last)
    cron = parse(spec)
    start = last or created
    if start is None:
        return Due([], 0, None)
    deadline = _deadline(model)
    wanted = model.catch_up.max_runs if model.catch_up and model.catch_up.policy == "All" else 1
    fires: list[datetime.datetime] = []
    missed = 0
    newest: datetime.datetime | None = None
    for fire in _fires_until(cron, now):
        if fire <= start:
            break
        newest = newest or fire
        on_time = deadline is None or (now - fire).total_seconds() <= deadline
        if on_time and len(fires) < wanted:
            fires.append(fire)
            continue
        missed += 1
        if missed >= MISSED_COUNT_LIMIT:
            break
    return Due(fires[::-1], missed, newest or last)


def decide(
    spec: dict[str, Any], active_runs: Sequence[dict[str, Any]], fire: datetime.datetime
) -> Decision:
    """Create, skip, or cancel-then-create, by ``concurrencyPolicy`` and the runs still active."""
    policy = _model(spec).concurrency_policy
    active = [r["metadata"]["name"] for r in active_runs]
    if policy == "Allow" or not active:
        return Decision(create=True)
    if policy == "Forbid":
        return Decision(
            create=False,
            reason=f"the fire at {format_time(fire)} was skipped: WorkflowRun {active[0]} is"
            " still active (concurrencyPolicy Forbid)",
        )
    cancel = tuple(r["metadata"]["name"] for r in active_runs if not r["spec"].get("cancel"))
    return Decision(create=True, cancel=cancel)


# -- the runs -------------------------------------------------------------------------------


def run_name(schedule_body: dict[str, Any], fire: datetime.datetime) -> str:
    """``<schedule name>-<hash of (uid, fire time)>``: the same for every operator, ≤ 63 chars."""
    meta_ = schedule_body["metadata"]
    digest = hashlib.sha256(f"{meta_['uid']}/{format_time(fire)}".encode()).hexdigest()
    prefix = meta_["name"][:NAME_PREFIX_MAX].rstrip("-.")
    return f"{prefix}-{digest[:DIGEST_LENGTH]}"


def render_run(schedule_body: dict[str, Any], fire: datetime.datetime) -> dict[str, Any]:
    """The WorkflowRun that carries out ``fire``: the Schedule's workflow and inputs."""
    meta_, spec = schedule_body["metadata"], schedule_body["spec"]
    return {
        "apiVersion": meta.API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {
            "name": run_name(schedule_body, fire),
            "namespace": meta_["namespace"],
            "labels": {
                LABEL_SCHEDULE: runs_mod.label_value(meta_["name"]),
                runs_mod.LABEL_WORKFLOW: runs_mod.label_value(spec["workflowRef"]["name"]),
            },
            "annotations": {ANNOTATION_SCHEDULED_TIME: format_time(fire)},
            "ownerReferences": [meta.owner_reference(schedule_body, "Schedule")],
        },
        "spec": {
            "workflowRef": dict(spec["workflowRef"]),
            "inputs": dict(spec.get("inputs") or {}),
        },
    }


def owner_of(run: dict[str, Any]) -> str | None:
    """The name of the Schedule that owns a run, if one does."""
    for ref in run.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == "Schedule" and ref.get("apiVersion", "").startswith(meta.GROUP):
            name: str = ref["name"]
            return name
    return None


def owned(schedule_body: dict[str, Any], runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs this Schedule created: by owner uid, so a same-named predecessor's runs differ."""
    uid = schedule_body["metadata"]["uid"]
    return [
        r
        for r in runs
        if any(ref.get("uid") == uid for ref in r["metadata"].get("ownerReferences") or [])
    ]


def _finished_at(run: dict[str, Any]) -> tuple[datetime.datetime, str]:
    status, meta_ = run.get("status") or {}, run["metadata"]
    when = parse_time(status.get("finishedAt")) or parse_time(meta_.get("creationTimestamp"))
    return when or datetime.datetime.min.replace(tzinfo=UTC), meta_["name"]


def _created_at(run: dict[str, Any]) -> tuple[str, str]:
    meta_ = run["metadata"]
    return meta_.get("creationTimestamp") or "", meta_["name"]


def runs_to_delete(
    finished: Sequence[dict[str, Any]], successful_limit: int, failed_limit: int
) -> list[str]:
    """Finished runs beyond the history limits, oldest first; Cancelled counts as failed."""
    newest_first = sorted(
        (r for r in finished if runs_mod.is_finished(r)), key=_finished_at, reverse=True
    )
    succeeded = [r for r in newest_first if runs_mod.phase_of(r) == "Succeeded"]
    failed = [r for r in newest_first if runs_mod.phase_of(r) != "Succeeded"]
    extra = succeeded[successful_limit:] + failed[failed_limit:]
    return [r["metadata"]["name"] for r in sorted(extra, key=_finished_at)]


# -- status ---------------------------------------------------------------------------------


def schedule_status(
    schedule_body: dict[str, Any],
    now: datetime.datetime,
    last: datetime.datetime | None,
    active: Sequence[str],
) -> dict[str, Any]:
    """The status to write: ``Ready``, last and next fire, active run names."""
    old = schedule_body.get("status") or {}
    generation = schedule_body["metadata"].get("generation")
    spec = schedule_body["spec"]
    next_time: datetime.datetime | None = None
    try:
        cron = parse(spec)
    except errors.ManifestError as exc:
        ready = ("False", "InvalidSchedule", str(exc))
    else:
        if spec.get("suspend"):
            ready = ("True", "Suspended", "suspended: nothing fires until spec.suspend is false")
        else:
            next_time = next_fire(cron, max(now, last) if last else now)
            tz = cron.timezone.key
            if next_time is None:
                message = f"field 'spec.cron': {cron.expression!r} never fires again"
                ready = ("False", "InvalidSchedule", message)
            else:
                ready = ("True", "Scheduled", f"fires on {cron.expression!r} in {tz}")
    status, reason, message = ready
    return {
        "observedGeneration": generation,
        "conditions": conditions.set_condition(
            old.get("conditions"), READY, status, reason, message, generation, format_time(now)
        ),
        "lastScheduleTime": format_time(last) if last else None,
        "nextScheduleTime": format_time(next_time) if next_time else None,
        "active": list(active)[:1000],
    }


def status_changed(schedule_body: dict[str, Any], new: dict[str, Any]) -> bool:
    old = schedule_body.get("status") or {}
    return any(old.get(k) != v for k, v in new.items() if not (v is None and k not in old))


def settled(schedule_body: dict[str, Any], now: datetime.datetime) -> bool:
    """Nothing is due and the status is as it should be (its active list taken as current):
    the reconcile can skip reading the runs."""
    status = schedule_body.get("status") or {}
    last = parse_time(status.get("lastScheduleTime"))
    created = parse_time(schedule_body["metadata"].get("creationTimestamp"))
    try:
        due = due_fires(schedule_body["spec"], status, now, created)
    except errors.ManifestError:
        pass
    else:
        if due.fires or due.missed or due.last != last:
            return False
    desired = schedule_status(schedule_body, now, last, status.get("active") or [])
    return not status_changed(schedule_body, desired)


# -- the whole reconcile --------------------------------------------------------------------


def plan(
    schedule_body: dict[str, Any], runs: Sequence[dict[str, Any]], now: datetime.datetime
) -> Plan:
    """One reconcile: which runs to cancel, create and delete, and the status to write.

    ``runs`` are the WorkflowRuns labelled with this Schedule (others are ignored by owner uid).
    A fire whose run already exists happened already; creating a run that appeared meanwhile
    fails with 409 in the handler, which means the same.
    """
    spec = schedule_body["spec"]
    status = schedule_body.get("status") or {}
    mine = owned(schedule_body, runs)
    active = [r for r in mine if not runs_mod.is_finished(r)]
    result = Plan()
    created = parse_time(schedule_body["metadata"].get("creationTimestamp"))
    try:
        due = due_fires(spec, status, now, created)
    except errors.ManifestError:
        last = parse_time(status.get("lastScheduleTime"))
        names = [r["metadata"]["name"] for r in sorted(active, key=_created_at)]
        result.status = schedule_status(schedule_body, now, last, names)
        return result
    existing = {r["metadata"]["name"] for r in mine}
    pending: list[tuple[datetime.datetime, dict[str, Any]]] = []  # runs this plan creates
    for fire in due.fires:
        if run_name(schedule_body, fire) in existing:
            continue  # carried out before (by this operator before a restart, or another)
        decision = decide(spec, active + [run for _, run in pending], fire)
        if not decision.create:
            result.skipped.append((fire, decision.reason))
            continue
        for name in decision.cancel:
            superseded = next((p for p in pending if p[1]["metadata"]["name"] == name), None)
            if superseded is None:
                result.cancel.append(name)
            else:  # created and replaced in one reconcile: never create it
                pending.remove(superseded)
                reason = (
                    f"the fire at {format_time(superseded[0])} was replaced by the fire at"
                    f" {format_time(fire)} (concurrencyPolicy Replace)"
                )
                result.skipped.append((superseded[0], reason))
        active = [
            {**r, "spec": {**r["spec"], "cancel": True}}
            if r["metadata"]["name"] in decision.cancel
            else r
            for r in active
        ]
        pending.append((fire, render_run(schedule_body, fire)))
    result.create = [run for _, run in pending]
    result.missed = due.missed
    model = _model(spec)
    result.delete = runs_to_delete(
        mine, model.successful_runs_history_limit, model.failed_runs_history_limit
    )
    names = [r["metadata"]["name"] for r in sorted(active, key=_created_at)]
    names += [r["metadata"]["name"] for r in result.create]
    result.status = schedule_status(schedule_body, now, due.last, names)
    return result
