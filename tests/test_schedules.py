"""Schedules as pure functions: cron in a time zone, catch-up, concurrency, names, history.

Four concerns: when a Schedule fires (cron with or without seconds, time zones across daylight
saving time, checked against a minute-by-minute reference); which fires a reconcile carries out
(the catch-up policies with their deadline and cap, suspend); what each fire does (Allow,
Forbid, Replace) and that a fire never becomes two runs, however reconciles interleave; and
what the operator writes (run manifests, names, status, history deletions).
"""

from __future__ import annotations

import datetime
import functools
import re
import zoneinfo
from typing import Any

import croniter
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoflow.crds import errors
from autoflow.operator import runs, schedules

UTC = datetime.UTC
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # transitions at midnight
    "Australia/Lord_Howe",  # a 30-minute shift
    "Asia/Kolkata",  # no DST, a half-hour offset
    "Pacific/Chatham",  # +12:45/+13:45
]


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).astimezone(UTC)


def body(
    cron: str = "*/5 * * * *",
    *,
    status: dict[str, Any] | None = None,
    created: str = "2025-01-01T00:00:00Z",
    uid: str = "uid-1",
    name: str = "nightly",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": uid,
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {"cron": cron, "workflowRef": {"name": "report"}, **spec},
        "status": status or {},
    }


def run(name: str, phase: str | None = None, uid: str = "uid-1", **extra: Any) -> dict[str, Any]:
    status = {"phase": phase} if phase else {}
    status.update(extra.pop("status", {}))
    meta = {
        "name": name,
        "ownerReferences": [{"kind": "Schedule", "uid": uid, "name": "nightly"}],
        **extra.pop("metadata", {}),
    }
    return {
        "metadata": meta,
        "spec": {"workflowRef": {"name": "report"}, **extra},
        "status": status,
    }


def fires(cron: str, start: str, end: str, timezone: str = "UTC") -> list[str]:
    spec = {"cron": cron, "timezone": timezone, "workflowRef": {"name": "x"}}
    return [schedules.format_time(f) for f in schedules.fires_between(spec, at(start), at(end))]


# -- when a Schedule fires ------------------------------------------------------------------

minute_fields = st.sampled_from(["*", "*/7", "0", "15,45", "0-10/5", "59", "30"])
hour_fields = st.sampled_from(["*", "2", "*/3", "0-3", "1,2,3", "23"])
day_fields = st.sampled_from(["*", "1", "15", "L", "*/10", "29"])
month_fields = st.sampled_from(["*", "3", "10", "2", "*/4"])
weekday_fields = st.sampled_from(["*", "0", "1-5", "SUN", "6"])
second_fields = st.sampled_from(["*/13", "0", "30", "5,55"])


@st.composite
def crons(draw: st.DrawFn) -> str:
    fields = [draw(minute_fields), draw(hour_fields), draw(day_fields)]
    fields += [draw(month_fields), draw(weekday_fields)]
    if draw(st.booleans()):
        fields.insert(0, draw(second_fields))
    return " ".join(fields)


instants = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2035, 12, 31)
).map(lambda d: d.replace(tzinfo=UTC))


@settings(max_examples=150, deadline=None)
@given(cron=crons(), zone=st.sampled_from(ZONES), start=instants)
def test_fires_strictly_increase_and_next_fire_is_after(
    cron: str, zone: str, start: datetime.datetime
) -> None:
    spec = {"cron": cron, "timezone": zone, "workflowRef": {"name": "x"}}
    previous = start
    for _ in range(12):
        fire = schedules.next_fire(spec, previous)
        if fire is None:
            break
        assert fire > previous
        assert fire.tzinfo is UTC and fire.microsecond == 0
        previous = fire


@settings(max_examples=100, deadline=None)
@given(cron=crons(), zone=st.sampled_from(ZONES), start=instants, days=st.integers(1, 40))
def test_catching_up_backwards_finds_the_fires_going_forwards_finds(
    cron: str, zone: str, start: datetime.datetime, days: int
) -> None:
    """due_fires walks back from now; next_fire walks forward: they must agree."""
    end = start + datetime.timedelta(days=days)
    spec = {"cron": cron, "timezone": zone, "workflowRef": {"name": "x"}}
    forward = list(schedules.fires_between(spec, start, end))[-50:]
    spec["catchUp"] = {"policy": "All", "maxRuns": 50}
    due = schedules.due_fires(spec, {}, end, created=start)
    assert due.fires == forward
    assert due.last == (forward[-1] if forward else None)


def _reference(cron: str, zone: str, start: datetime.datetime, minutes: int) -> list[str]:
    """Minute by minute in real time: the fire times the module docstring promises."""
    tz = zoneinfo.ZoneInfo(zone)
    every_hour = croniter.croniter(cron).expanded[croniter.HOUR_FIELD] == ["*"]

    def matches(wall: datetime.datetime) -> bool:
        return bool(croniter.croniter.match(cron, wall))

    out = []
    for i in range(1, minutes + 1):
        now = start + datetime.timedelta(minutes=i)
        local = now.astimezone(tz)
        before = (now - datetime.timedelta(minutes=1)).astimezone(tz)
        wall = local.replace(tzinfo=None)
        repeated = local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()
        fire = matches(wall) and not (repeated and not every_hour)
        gap = local.utcoffset() - before.utcoffset()  # type: ignore[operator]
        if gap > datetime.timedelta(0) and not every_hour:  # [wall - gap, wall) never happened
            skipped = int(gap.total_seconds() // 60)
            fire = fire or any(
                matches(wall - datetime.timedelta(minutes=m)) for m in range(1, skipped + 1)
            )
        if fire:
            out.append(schedules.format_time(now))
    return out


@functools.cache
def _transitions(zone: str) -> list[datetime.datetime]:
    """Instants (UTC, whole hours) just before each offset change of 2024-2026."""
    tz = zoneinfo.ZoneInfo(zone)
    hour = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    found = []
    while hour.year < 2027:
        after = hour + datetime.timedelta(hours=1)
        if hour.astimezone(tz).utcoffset() != after.astimezone(tz).utcoffset():
            found.append(hour)
        hour = after
    return found


@settings(max_examples=40, deadline=None)
@given(
    cron=st.tuples(minute_fields, hour_fields).map(lambda mh: f"{mh[0]} {mh[1]} * * *"),
    zone=st.sampled_from(
        ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
    ),
    pick=st.integers(0, 5),
)
def test_fires_across_dst_transitions_match_the_reference(cron: str, zone: str, pick: int) -> None:
    start = _transitions(zone)[pick] - datetime.timedelta(hours=3)
    spec = {"cron": cron, "timezone": zone, "workflowRef": {"name": "x"}}
    end = start + datetime.timedelta(hours=7)
    got = [schedules.format_time(f) for f in schedules.fires_between(spec, start, end)]
    assert got == _reference(cron, zone, start, 7 * 60)


def test_seconds_cron_has_the_seconds_first() -> None:
    got = fires("*/2 * * * * *", "2025-01-01T00:00:00Z", "2025-01-01T00:00:07Z")
    assert got == [f"2025-01-01T00:00:0{s}Z" for s in (2, 4, 6)]
    assert fires("30 0 * * * *", "2025-01-01T00:00:00Z", "2025-01-01T02:00:00Z") == [
        "2025-01-01T00:00:30Z",
        "2025-01-01T01:00:30Z",
    ]


def test_aliases() -> None:
    assert fires("@daily", "2025-01-01T00:00:00Z", "2025-01-03T00:00:00Z") == [
        "2025-01-02T00:00:00Z",
        "2025-01-03T00:00:00Z",
    ]


def test_europe_berlin_spring_forward_moves_a_missing_time_to_the_end_of_the_gap() -> None:
    # 2025-03-30: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    got = fires("30 2 * * *", "2025-03-28T12:00:00Z", "2025-04-01T00:00:00Z", "Europe/Berlin")
    assert got == [
        "2025-03-29T01:30:00Z",  # 02:30 CET
        "2025-03-30T01:00:00Z",  # 03:00 CEST, the first instant after the gap
        "2025-03-31T00:30:00Z",  # 02:30 CEST
    ]
    # fires inside the gap collapse into one
    got = fires("*/20 * * * *", "2025-03-30T00:30:00Z", "2025-03-30T01:30:00Z", "Europe/Berlin")
    assert got == ["2025-03-30T00:40:00Z", "2025-03-30T01:00:00Z", "2025-03-30T01:20:00Z"]


def test_an_hourly_schedule_skips_the_hour_that_never_happened() -> None:
    got = fires("15,45 * * * *", "2025-03-30T00:00:00Z", "2025-03-30T01:30:00Z", "Europe/Berlin")
    assert got == [
        "2025-03-30T00:15:00Z",  # 01:15 CET
        "2025-03-30T00:45:00Z",  # 01:45 CET
        "2025-03-30T01:15:00Z",  # 03:15 CEST: an hour of real time later, as always
    ]


def test_europe_berlin_fall_back_fires_a_repeated_time_once() -> None:
    # 2025-10-26: 03:00 CEST becomes 02:00 CET; 02:30 happens twice that day.
    got = fires("30 2 * * *", "2025-10-24T12:00:00Z", "2025-10-28T00:00:00Z", "Europe/Berlin")
    assert got == [
        "2025-10-25T00:30:00Z",  # 02:30 CEST
        "2025-10-26T00:30:00Z",  # 02:30 CEST, the first of the two
        "2025-10-27T01:30:00Z",  # 02:30 CET
    ]


def test_an_hourly_schedule_keeps_firing_through_the_repeated_hour() -> None:
    got = fires("0 * * * *", "2025-10-25T23:30:00Z", "2025-10-26T02:30:00Z", "Europe/Berlin")
    assert got == [
        "2025-10-26T00:00:00Z",  # 02:00 CEST
        "2025-10-26T01:00:00Z",  # 02:00 CET
        "2025-10-26T02:00:00Z",  # 03:00 CET
    ]


def test_a_fixed_hour_with_every_minute_fires_in_the_first_pass_only() -> None:
    got = fires("0,30 2 * * *", "2025-10-25T23:30:00Z", "2025-10-26T02:30:00Z", "Europe/Berlin")
    assert got == ["2025-10-26T00:00:00Z", "2025-10-26T00:30:00Z"]


@pytest.mark.parametrize(
    ("spec", "field", "fragment"),
    [
        ({"cron": "61 * * * *"}, "spec.cron", "not a valid cron"),
        ({"cron": "* * * *"}, "spec.cron", "has 4 fields"),
        ({"cron": "* * * * * * 2030"}, "spec.cron", "has 7 fields"),
        ({"cron": "@reboot"}, "spec.cron", "not a valid cron"),
        ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, "spec.timezone", "IANA"),
        ({"cron": "0 * * * *", "timezone": "../../etc/passwd"}, "spec.timezone", "IANA"),
    ],
)
def test_invalid_schedules_name_the_field(spec: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(errors.ManifestError) as caught:
        schedules.parse({**spec, "workflowRef": {"name": "x"}})
    assert caught.value.where.field == field
    assert fragment in caught.value.message
    schedule = body(**{k: v for k, v in spec.items() if k != "cron"}, cron=spec["cron"])
    plan = schedules.plan(schedule, [], at("2025-06-01T00:00:00Z"))
    ready = plan.status["conditions"][-1]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert f"field {field!r}" in ready["message"]
    assert plan.create == [] and plan.status["nextScheduleTime"] is None


def test_a_cron_that_never_fires_is_not_ready() -> None:
    plan = schedules.plan(body("0 0 30 2 *"), [], at("2025-06-01T00:00:00Z"))
    ready = plan.status["conditions"][-1]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert "never fires" in ready["message"]


# -- which fires a reconcile carries out ----------------------------------------------------

LAST = {"lastScheduleTime": "2025-06-01T12:00:00Z"}


def due(now: str, status: dict[str, Any] | None = None, **spec: Any) -> schedules.Due:
    full = {"cron": "* * * * *", "workflowRef": {"name": "x"}, **spec}
    return schedules.due_fires(full, LAST if status is None else status, at(now))


def times(values: list[datetime.datetime]) -> list[str]:
    return [schedules.format_time(v) for v in values]


def test_on_time_every_policy_runs_the_fire() -> None:
    for catch_up in (None, {"policy": "Skip"}, {"policy": "Latest"}, {"policy": "All"}):
        got = due("2025-06-01T12:01:00.300Z", catchUp=catch_up)
        assert times(got.fires) == ["2025-06-01T12:01:00Z"]
        assert got.missed == 0 and got.last == at("2025-06-01T12:01:00Z")


def test_nothing_is_due_between_fires() -> None:
    got = due("2025-06-01T12:00:59Z")
    assert got.fires == [] and got.missed == 0 and got.last == at("2025-06-01T12:00:00Z")


def test_skip_runs_only_the_newest_fire_within_the_grace() -> None:
    got = due("2025-06-01T12:05:30Z")  # down for five minutes
    assert times(got.fires) == ["2025-06-01T12:05:00Z"]
    assert got.missed == 4 and got.last == at("2025-06-01T12:05:00Z")
    late = due("2025-06-01T12:06:01Z", cron="*/5 * * * *")  # 61 s late: beyond the grace
    assert late.fires == [] and late.missed == 1 and late.last == at("2025-06-01T12:05:00Z")


def test_skip_honours_starting_deadline_seconds() -> None:
    got = due("2025-06-01T12:05:30Z", startingDeadlineSeconds=20)
    assert got.fires == [] and got.missed == 5
    got = due("2025-06-01T12:05:30Z", startingDeadlineSeconds=600)
    assert times(got.fires) == ["2025-06-01T12:05:00Z"] and got.missed == 4


def test_latest_runs_the_newest_missed_fire_of_any_age_unless_a_deadline_says_otherwise() -> None:
    got = due("2025-06-01T15:00:30Z", catchUp={"policy": "Latest"}, cron="0 * * * *")
    assert times(got.fires) == ["2025-06-01T15:00:00Z"] and got.missed == 2
    got = due("2025-06-01T15:20:00Z", catchUp={"policy": "Latest"}, cron="0 * * * *")
    assert times(got.fires) == ["2025-06-01T15:00:00Z"]
    got = due(
        "2025-06-01T15:20:00Z",
        catchUp={"policy": "Latest"},
        cron="0 * * * *",
        startingDeadlineSeconds=600,
    )
    assert got.fires == [] and got.missed == 3 and got.last == at("2025-06-01T15:00:00Z")


def test_all_runs_every_missed_fire_within_the_deadline_capped_at_max_runs() -> None:
    got = due("2025-06-01T12:05:10Z", catchUp={"policy": "All"})
    assert times(got.fires) == [f"2025-06-01T12:0{m}:00Z" for m in range(1, 6)]
    assert got.missed == 0
    got = due("2025-06-01T12:05:10Z", catchUp={"policy": "All", "maxRuns": 2})
    assert times(got.fires) == ["2025-06-01T12:04:00Z", "2025-06-01T12:05:00Z"]
    assert got.missed == 3
    got = due("2025-06-01T12:05:10Z", catchUp={"policy": "All"}, startingDeadlineSeconds=130)
    assert times(got.fires) == [f"2025-06-01T12:0{m}:00Z" for m in range(3, 6)]
    assert got.missed == 2 and got.last == at("2025-06-01T12:05:00Z")


def test_missed_fires_are_counted_up_to_a_limit() -> None:
    got = due("2025-06-08T12:00:00.5Z", cron="* * * * * *")  # a week of seconds
    assert times(got.fires) == ["2025-06-08T12:00:00Z"]
    assert got.missed == schedules.MISSED_COUNT_LIMIT


def test_without_a_last_fire_counting_starts_at_creation() -> None:
    spec = {"cron": "0 * * * *", "workflowRef": {"name": "x"}, "catchUp": {"policy": "All"}}
    got = schedules.due_fires(spec, {}, at("2025-06-01T03:30:00Z"), at("2025-06-01T01:00:00Z"))
    assert times(got.fires) == ["2025-06-01T02:00:00Z", "2025-06-01T03:00:00Z"]
    assert schedules.due_fires(spec, {}, at("2025-06-01T03:30:00Z"), None).fires == []


def test_suspended_nothing_fires_and_resuming_follows_the_catch_up_policy() -> None:
    got = due("2025-06-01T12:05:30Z", suspend=True, catchUp={"policy": "All"})
    assert got.fires == [] and got.missed == 0 and got.last == at("2025-06-01T12:00:00Z")
    resumed = due("2025-06-01T12:05:30Z", suspend=False, catchUp={"policy": "Latest"})
    assert times(resumed.fires) == ["2025-06-01T12:05:00Z"] and resumed.missed == 4

    schedule = body("* * * * *", status=dict(LAST), suspend=True)
    plan = schedules.plan(schedule, [run("r1", "Running")], at("2025-06-01T12:05:30Z"))
    assert plan.create == [] and plan.cancel == []
    ready = plan.status["conditions"][-1]
    assert (ready["status"], ready["reason"]) == ("True", "Suspended")
    assert plan.status["nextScheduleTime"] is None
    assert plan.status["lastScheduleTime"] == "2025-06-01T12:00:00Z"
    assert plan.status["active"] == ["r1"]


# -- what each fire does --------------------------------------------------------------------

FIRE = at("2025-06-01T12:01:00Z")


def test_allow_creates_beside_active_runs() -> None:
    spec = {"cron": "* * * * *", "workflowRef": {"name": "x"}, "concurrencyPolicy": "Allow"}
    assert schedules.decide(spec, [run("a", "Running")], FIRE) == schedules.Decision(create=True)


def test_forbid_skips_while_a_run_is_active() -> None:
    spec = {"cron": "* * * * *", "workflowRef": {"name": "x"}, "concurrencyPolicy": "Forbid"}
    decision = schedules.decide(spec, [run("a", "Running")], FIRE)
    assert not decision.create and decision.cancel == ()
    assert "WorkflowRun a is still active" in decision.reason
    assert schedules.decide(spec, [], FIRE).create


def test_replace_cancels_the_active_runs_then_creates() -> None:
    spec = {"cron": "* * * * *", "workflowRef": {"name": "x"}, "concurrencyPolicy": "Replace"}
    active = [run("a", "Running"), run("b", "Pending", cancel=True), run("c")]
    decision = schedules.decide(spec, active, FIRE)
    assert decision == schedules.Decision(create=True, cancel=("a", "c"))


def test_plan_forbid_records_the_skipped_fire_and_moves_on() -> None:
    schedule = body("* * * * *", status=dict(LAST), concurrencyPolicy="Forbid")
    plan = schedules.plan(schedule, [run("old", "Running")], at("2025-06-01T12:01:00.5Z"))
    assert plan.create == [] and [s[0] for s in plan.skipped] == [FIRE]
    assert plan.status["lastScheduleTime"] == "2025-06-01T12:01:00Z"
    assert plan.status["active"] == ["old"]


def test_plan_replace_cancels_then_creates() -> None:
    schedule = body("* * * * *", status=dict(LAST), concurrencyPolicy="Replace")
    plan = schedules.plan(schedule, [run("old", "Running")], at("2025-06-01T12:01:00.5Z"))
    assert plan.cancel == ["old"]
    name = schedules.run_name(schedule, FIRE)
    assert [r["metadata"]["name"] for r in plan.create] == [name]
    assert plan.status["active"] == ["old", name]  # until the cancelled run has stopped


def test_plan_replace_during_catch_up_creates_only_the_newest() -> None:
    schedule = body(
        "* * * * *", status=dict(LAST), concurrencyPolicy="Replace", catchUp={"policy": "All"}
    )
    plan = schedules.plan(schedule, [], at("2025-06-01T12:03:00.5Z"))
    newest = at("2025-06-01T12:03:00Z")
    assert [r["metadata"]["name"] for r in plan.create] == [schedules.run_name(schedule, newest)]
    assert plan.cancel == [] and len(plan.skipped) == 2


def test_plan_forbid_during_catch_up_creates_only_the_oldest() -> None:
    schedule = body(
        "* * * * *", status=dict(LAST), concurrencyPolicy="Forbid", catchUp={"policy": "All"}
    )
    plan = schedules.plan(schedule, [], at("2025-06-01T12:03:00.5Z"))
    assert [r["metadata"]["name"] for r in plan.create] == [schedules.run_name(schedule, FIRE)]
    assert len(plan.skipped) == 2


def test_plan_does_not_repeat_a_fire_whose_run_exists() -> None:
    schedule = body("* * * * *", status=dict(LAST), concurrencyPolicy="Forbid")
    existing = run(schedules.run_name(schedule, FIRE), "Running")
    plan = schedules.plan(schedule, [existing], at("2025-06-01T12:01:00.5Z"))
    assert plan.create == [] and plan.skipped == [] and plan.cancel == []
    assert plan.status["lastScheduleTime"] == "2025-06-01T12:01:00Z"


def test_plan_ignores_runs_of_another_schedule_with_the_same_name() -> None:
    schedule = body("* * * * *", status=dict(LAST), concurrencyPolicy="Forbid")
    predecessor = run("old", "Running", uid="uid-of-a-deleted-schedule")
    plan = schedules.plan(schedule, [predecessor], at("2025-06-01T12:01:00.5Z"))
    assert len(plan.create) == 1 and plan.status["active"] == [plan.create[0]["metadata"]["name"]]


class Cluster:
    """Runs by name, as the API server keeps them: a second create of a name fails (409)."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.creates = 0

    def reconcile(
        self, schedule: dict[str, Any], now: datetime.datetime, write_status: bool
    ) -> None:
        plan = schedules.plan(schedule, list(self.runs.values()), now)
        for manifest in plan.create:
            self.creates += 1
            self.runs.setdefault(manifest["metadata"]["name"], manifest)
        if write_status:
            schedule["status"] = {**schedule["status"], **plan.status}


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(0.1, 7.0), st.booleans(), st.sampled_from([0, 1])),
        min_size=1,
        max_size=40,
    ),
    policy=st.sampled_from(["Skip", "Latest", "All"]),
)
def test_interleaved_operators_create_exactly_one_run_per_fire(
    steps: list[tuple[float, bool, int]], policy: str
) -> None:
    """Two operators, each with its own (possibly stale) view of the status, some status
    writes lost (a crash between create and status): every fire still has at most one run,
    and under All with a wide cap no fire is left without one."""
    schedule = body(
        "*/2 * * * * *",
        created="2025-06-01T12:00:00Z",
        catchUp={"policy": policy, "maxRuns": 1000},
    )
    views = [dict(schedule, status={}), dict(schedule, status={})]
    cluster = Cluster()
    now = at("2025-06-01T12:00:00Z")
    for delay, write_status, who in steps:
        now += datetime.timedelta(seconds=delay)
        cluster.reconcile(views[who], now, write_status)
        if write_status:  # the other operator sees the write on its next watch event
            views[1 - who]["status"] = dict(views[who]["status"])
    fired = [
        r["metadata"]["annotations"][schedules.ANNOTATION_SCHEDULED_TIME]
        for r in cluster.runs.values()
    ]
    assert len(fired) == len(set(fired))
    for manifest in cluster.runs.values():
        fire = at(manifest["metadata"]["annotations"][schedules.ANNOTATION_SCHEDULED_TIME])
        assert manifest["metadata"]["name"] == schedules.run_name(schedule, fire)
    if policy == "All":
        expected = schedules.fires_between(schedule["spec"], at("2025-06-01T12:00:00Z"), now)
        assert sorted(fired) == [schedules.format_time(f) for f in expected]


# -- what the operator writes ---------------------------------------------------------------


@given(
    name=st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", fullmatch=True).filter(
        lambda n: DNS_SUBDOMAIN.match(n) is not None
    ),
    uid=st.uuids().map(str),
    fire=instants.map(lambda d: d.replace(microsecond=0)),
    other=instants.map(lambda d: d.replace(microsecond=0)),
)
def test_run_names_are_deterministic_dns_names(
    name: str, uid: str, fire: datetime.datetime, other: datetime.datetime
) -> None:
    schedule = body(name=name, uid=uid)
    got = schedules.run_name(schedule, fire)
    assert got == schedules.run_name(body(name=name, uid=uid), fire.astimezone(UTC))
    assert len(got) <= 63 and DNS_SUBDOMAIN.match(got), got
    assert got.startswith(name[:20].rstrip("-."))
    if other != fire:
        assert schedules.run_name(schedule, other) != got
    assert schedules.run_name(body(name=name, uid=uid + "x"), fire) != got
    label = runs.label_value(name)
    assert len(label) <= 63 and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", label)


def test_a_fire_has_one_name_whatever_zone_its_time_is_given_in() -> None:
    schedule = body()
    berlin = datetime.datetime(2025, 6, 1, 14, 0, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin"))
    assert schedules.run_name(schedule, berlin) == schedules.run_name(
        schedule, FIRE.replace(minute=0)
    )


def test_the_rendered_run_carries_workflow_inputs_labels_and_owner() -> None:
    schedule = body(inputs={"region": "eu", "limit": 5})
    manifest = schedules.render_run(schedule, FIRE)
    assert manifest["kind"] == "WorkflowRun" and manifest["apiVersion"] == "autoflow.dev/v1alpha1"
    meta = manifest["metadata"]
    assert meta["name"] == schedules.run_name(schedule, FIRE) and meta["namespace"] == "shop"
    assert meta["labels"] == {"autoflow.dev/schedule": "nightly", "autoflow.dev/workflow": "report"}
    assert meta["annotations"] == {"autoflow.dev/scheduled-time": "2025-06-01T12:01:00Z"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "autoflow.dev/v1alpha1",
            "kind": "Schedule",
            "name": "nightly",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert manifest["spec"] == {
        "workflowRef": {"name": "report"},
        "inputs": {"region": "eu", "limit": 5},
    }
    assert schedules.owner_of(manifest) == "nightly"


def test_status_shows_last_next_active_and_ready() -> None:
    schedule = body("0 * * * *", timezone="Europe/Berlin", status=dict(LAST))
    plan = schedules.plan(
        schedule, [run("a", "Running"), run("b", "Succeeded")], at("2025-06-01T12:30:00Z")
    )
    assert plan.status["lastScheduleTime"] == "2025-06-01T12:00:00Z"
    assert plan.status["nextScheduleTime"] == "2025-06-01T13:00:00Z"
    assert plan.status["active"] == ["a"]
    assert plan.status["observedGeneration"] == 1
    ready = plan.status["conditions"][-1]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Scheduled")
    assert "Europe/Berlin" in ready["message"]
    # written again unchanged, nothing changes (no needless status writes)
    schedule["status"] = plan.status
    again = schedules.plan(schedule, [run("a", "Running")], at("2025-06-01T12:30:05Z"))
    assert not schedules.status_changed(schedule, again.status)


def test_history_limits_keep_the_newest_finished_runs() -> None:
    def finished(name: str, phase: str, minute: int) -> dict[str, Any]:
        return run(name, phase, status={"finishedAt": f"2025-06-01T12:{minute:02d}:00Z"})

    done = [
        finished("s1", "Succeeded", 1),
        finished("s2", "Succeeded", 2),
        finished("s3", "Succeeded", 3),
        finished("f1", "Failed", 4),
        finished("c1", "Cancelled", 5),
        finished("s4", "Succeeded", 6),
        run("active", "Running"),
    ]
    assert schedules.runs_to_delete(done, 2, 1) == ["s1", "s2", "f1"]
    assert schedules.runs_to_delete(done, 0, 0) == ["s1", "s2", "s3", "f1", "c1", "s4"]
    assert schedules.runs_to_delete(done, 10, 10) == []
    schedule = body(successfulRunsHistoryLimit=1, failedRunsHistoryLimit=0)
    plan = schedules.plan(schedule, done, at("2025-06-01T12:07:30Z"))
    assert plan.delete == ["s1", "s2", "s3", "f1", "c1"]
