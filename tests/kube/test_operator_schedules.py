"""The operator on Schedules: seconds-resolution crons fire WorkflowRuns, one run per fire.

The operator runs as its own ServiceAccount (fixture ``operator``). No executor runs the Jobs,
so a scheduled run stays Pending: active for as long as a test wants, which is what Forbid
and Replace need; a test finishes a run by writing its status as admin. Crons fire every two
or three seconds (six fields, seconds first). A fire is identified by the run's
``autoflow.dev/scheduled-time`` annotation; its name must be the one derived from (Schedule
uid, fire time), recomputed here independently of the operator's code.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import apiserver as kube
import objects
import operator_process
import pytest
from objects import condition, wait_for

API_VERSION = "autoflow.dev/v1alpha1"
SCHEDULED = "autoflow.dev/scheduled-time"
TIMEOUT = 30.0
T = TypeVar("T")
RBAC = kube.REPO / "config" / "rbac"


def schedule(name: str = "tick", cron: str = "*/2 * * * * *", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": {"cron": cron, "workflowRef": {"name": "orders"}, **spec},
    }


def scheduled_runs(server: kube.APIServer, namespace: str, name: str) -> list[dict[str, Any]]:
    """The runs labelled as this Schedule's, oldest fire first."""
    found = server.request(
        "GET",
        f"/apis/{API_VERSION}/namespaces/{namespace}/workflowruns",
        params={"labelSelector": f"autoflow.dev/schedule={name}"},
    )["items"]
    return sorted(found, key=lambda r: r["metadata"]["annotations"][SCHEDULED])


def fire_times(runs: list[dict[str, Any]]) -> list[datetime.datetime]:
    return [datetime.datetime.fromisoformat(r["metadata"]["annotations"][SCHEDULED]) for r in runs]


def expected_name(sched: dict[str, Any], fire: str) -> str:
    digest = hashlib.sha256(f"{sched['metadata']['uid']}/{fire}".encode()).hexdigest()[:10]
    return f"{sched['metadata']['name']}-{digest}"


def wait_until(
    what: str, probe: Callable[[], T], check: Callable[[T], bool], timeout: float = TIMEOUT
) -> T:
    """``probe()`` once ``check`` holds for it; a TimeoutError shows the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout}s; last: {value!r}")
        time.sleep(0.1)


def wait_runs(
    server: kube.APIServer, namespace: str, name: str, count: int, timeout: float = TIMEOUT
) -> list[dict[str, Any]]:
    return wait_until(
        f"{count} runs of {name}",
        lambda: scheduled_runs(server, namespace, name),
        lambda runs: len(runs) >= count,
        timeout,
    )


def suspend(server: kube.APIServer, sched: dict[str, Any]) -> dict[str, Any]:
    """Suspend the Schedule and wait until the operator has seen it (nothing fires after)."""
    server.merge_patch(sched, {"spec": {"suspend": True}})
    return wait_for(server, sched, lambda s: condition(s, "Ready").get("reason") == "Suspended")


def assert_one_run_per_fire(sched: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    fires = [r["metadata"]["annotations"][SCHEDULED] for r in runs]
    assert len(fires) == len(set(fires)), fires
    for run, fire in zip(runs, fires, strict=True):
        assert run["metadata"]["name"] == expected_name(sched, fire)


def assert_no_gaps(runs: list[dict[str, Any]], every: int) -> None:
    times = fire_times(runs)
    gaps = [(a, b) for a, b in itertools.pairwise(times) if (b - a).seconds != every]
    assert not gaps, f"fires missing between {gaps}"


def finish(
    server: kube.APIServer, run: dict[str, Any], phase: str = "Succeeded", later: int = 0
) -> None:
    """Play the runner: record the run as finished (``later`` seconds from now)."""
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=later)
    status = {"phase": phase, "finishedAt": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    server.merge_patch(run, {"status": status}, subresource="status")


@pytest.fixture
def workflow(apiserver: kube.APIServer, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"inputs": {"region": {"type": "string"}}}
    created: dict[str, Any] = apiserver.create(objects.workflow(**spec), namespace=namespace)
    return created


def test_a_schedule_fires_runs_named_from_its_uid_and_the_fire_time(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    workflow: dict[str, Any],
) -> None:
    sched = apiserver.create(schedule(inputs={"region": "eu"}), namespace=namespace)

    runs = wait_runs(apiserver, namespace, "tick", 3)
    current = suspend(apiserver, sched)
    runs = scheduled_runs(apiserver, namespace, "tick")

    assert_one_run_per_fire(sched, runs)
    assert_no_gaps(runs, every=2)
    for run in runs:
        meta = run["metadata"]
        assert meta["labels"]["autoflow.dev/schedule"] == "tick"
        fire = fire_times([run])[0]
        assert fire.second % 2 == 0 and fire.microsecond == 0
        (owner,) = meta["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "Schedule",
            "tick",
            sched["metadata"]["uid"],
        )
        assert owner["controller"] is True
        assert run["spec"]["workflowRef"] == {"name": "orders"}
        assert run["spec"]["inputs"] == {"region": "eu"}

    status = current["status"]
    assert status["lastScheduleTime"] == runs[-1]["metadata"]["annotations"][SCHEDULED]
    assert "nextScheduleTime" not in status  # suspended
    assert sorted(status["active"]) == sorted(r["metadata"]["name"] for r in runs)  # all Pending
    assert status["observedGeneration"] == current["metadata"]["generation"]

    # Resumed, it shows the next fire, two seconds after the last one.
    apiserver.merge_patch(sched, {"spec": {"suspend": False}})
    resumed = wait_for(
        apiserver,
        sched,
        lambda s: (
            condition(s, "Ready").get("reason") == "Scheduled"
            and bool(s["status"].get("nextScheduleTime"))
        ),
    )
    ready = condition(resumed, "Ready")
    assert ready["status"] == "True" and "'*/2 * * * * *' in UTC" in ready["message"]
    last = datetime.datetime.fromisoformat(resumed["status"]["lastScheduleTime"])
    upcoming = datetime.datetime.fromisoformat(resumed["status"]["nextScheduleTime"])
    assert upcoming - last == datetime.timedelta(seconds=2)
    columns = apiserver.kubectl("get", "schedules", "-n", namespace).stdout
    assert "*/2 * * * * *" in columns and "UTC" in columns

    # kopf keeps a finalizer on a Schedule while its timer runs; deleting it stops the timer.
    apiserver.delete(sched)
    objects.wait_gone(apiserver, sched)


def test_an_operator_restarted_between_fires_runs_each_fire_once(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    workflow: dict[str, Any],
) -> None:
    sched = apiserver.create(schedule(catchUp={"policy": "All"}), namespace=namespace)
    wait_runs(apiserver, namespace, "tick", 2)

    operator.restart()  # a rollout: SIGTERM, then a new process with no memory of the old
    before = len(scheduled_runs(apiserver, namespace, "tick"))
    wait_runs(apiserver, namespace, "tick", before + 2)
    operator.restart()
    before = len(scheduled_runs(apiserver, namespace, "tick"))
    wait_runs(apiserver, namespace, "tick", before + 2)
    suspend(apiserver, sched)

    runs = scheduled_runs(apiserver, namespace, "tick")
    assert_one_run_per_fire(sched, runs)
    assert_no_gaps(runs, every=2)  # catchUp All: the fires during each restart ran late


def test_two_operators_at_once_still_run_each_fire_once(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    workflow: dict[str, Any],
    tmp_path: Path,
) -> None:
    mark = operator.log_size()
    second = operator_process.Operator(apiserver, RBAC, tmp_path / "second-operator.log")
    second.start()
    try:
        sched = apiserver.create(schedule(), namespace=namespace)
        wait_runs(apiserver, namespace, "tick", 5)
        suspend(apiserver, sched)
    finally:
        second.stop()

    runs = scheduled_runs(apiserver, namespace, "tick")
    assert_one_run_per_fire(sched, runs)
    assert_no_gaps(runs, every=2)
    for log in (second.log_since(0), operator.log_since(mark)):
        assert "Timer 'fire' failed" not in log


def test_forbid_skips_fires_while_a_run_is_active(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    workflow: dict[str, Any],
) -> None:
    sched = apiserver.create(schedule(concurrencyPolicy="Forbid"), namespace=namespace)
    (first,) = wait_runs(apiserver, namespace, "tick", 1)
    first_fire = fire_times([first])[0]

    # Three more fires pass while the first run is still Pending (no executor runs its Job).
    def three_fires_later(s: dict[str, Any]) -> bool:
        last: str | None = (s.get("status") or {}).get("lastScheduleTime")
        if not last:
            return False
        return datetime.datetime.fromisoformat(last) - first_fire >= datetime.timedelta(seconds=6)

    current = wait_for(apiserver, sched, three_fires_later)
    assert [r["metadata"]["name"] for r in scheduled_runs(apiserver, namespace, "tick")] == [
        first["metadata"]["name"]
    ]
    assert current["status"]["active"] == [first["metadata"]["name"]]
    skipped = objects.events_about(apiserver, namespace, "tick", "FireSkipped")
    assert skipped and "still active (concurrencyPolicy Forbid)" in skipped[0]["message"]

    # Once it has finished, the next fire runs again.
    finish(apiserver, first)
    runs = wait_runs(apiserver, namespace, "tick", 2)
    suspend(apiserver, sched)
    assert fire_times(runs)[1] - first_fire >= datetime.timedelta(seconds=8)
    assert_one_run_per_fire(sched, scheduled_runs(apiserver, namespace, "tick"))


def test_replace_cancels_the_active_run_and_starts_a_new_one(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    workflow: dict[str, Any],
) -> None:
    sched = apiserver.create(
        schedule(cron="*/3 * * * * *", concurrencyPolicy="Replace", failedRunsHistoryLimit=10),
        namespace=namespace,
    )
    wait_runs(apiserver, namespace, "tick", 2)
    current = suspend(apiserver, sched)
    runs = scheduled_runs(apiserver, namespace, "tick")

    *replaced, newest = runs
    assert all(r["spec"].get("cancel") is True for r in replaced)
    assert not newest["spec"].get("cancel")
    for run in replaced:  # the WorkflowRun side of the operator carries the cancel out
        wait_for(apiserver, run, lambda r: objects.phase(r) == "Cancelled")
    assert newest["metadata"]["name"] in current["status"]["active"]
    assert objects.events_about(apiserver, namespace, "tick", "RunReplaced")
    assert_one_run_per_fire(sched, runs)


def test_suspend_stops_fires_and_resuming_skips_the_missed_ones(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    workflow: dict[str, Any],
) -> None:
    sched = apiserver.create(schedule(startingDeadlineSeconds=1), namespace=namespace)
    wait_runs(apiserver, namespace, "tick", 1)
    suspend(apiserver, sched)
    suspended_at = datetime.datetime.now(datetime.UTC)
    count = len(scheduled_runs(apiserver, namespace, "tick"))

    time.sleep(5)  # two fires' worth of suspension
    assert len(scheduled_runs(apiserver, namespace, "tick")) == count

    apiserver.merge_patch(sched, {"spec": {"suspend": False}})
    resumed_at = datetime.datetime.now(datetime.UTC)
    runs = wait_runs(apiserver, namespace, "tick", count + 2)
    suspend(apiserver, sched)
    # Skip with a 1 s deadline: none of the fires missed while suspended ran late.
    late = [
        t
        for t in fire_times(runs)
        if suspended_at + datetime.timedelta(seconds=1)
        < t
        < resumed_at - datetime.timedelta(seconds=1)
    ]
    assert late == []
    assert objects.events_about(apiserver, namespace, "tick", "MissedFires")
    assert_one_run_per_fire(sched, scheduled_runs(apiserver, namespace, "tick"))


def test_history_limits_delete_the_oldest_finished_runs(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    workflow: dict[str, Any],
) -> None:
    sched = apiserver.create(
        schedule(successfulRunsHistoryLimit=1, failedRunsHistoryLimit=1), namespace=namespace
    )
    wait_runs(apiserver, namespace, "tick", 4)
    suspend(apiserver, sched)
    runs = scheduled_runs(apiserver, namespace, "tick")
    *older, last_failed, last_succeeded = runs
    for run in older:
        finish(apiserver, run, "Failed")
    finish(apiserver, last_failed, "Failed", later=10)
    finish(apiserver, last_succeeded, later=20)

    kept = wait_until(
        "history limits applied",
        lambda: [r["metadata"]["name"] for r in scheduled_runs(apiserver, namespace, "tick")],
        lambda names: len(names) == 2,
    )
    assert kept == [last_failed["metadata"]["name"], last_succeeded["metadata"]["name"]]
    current = wait_for(apiserver, sched, lambda s: not s["status"].get("active"))
    assert current["status"].get("active") in (None, [])


def test_an_invalid_cron_or_timezone_is_not_ready_and_says_which(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    workflow: dict[str, Any],
) -> None:
    sched = apiserver.create(schedule(cron="*/2 * * *"), namespace=namespace)
    current = wait_for(apiserver, sched, lambda s: condition(s, "Ready").get("status") == "False")
    ready = condition(current, "Ready")
    assert ready["reason"] == "InvalidSchedule"
    assert "field 'spec.cron'" in ready["message"] and "has 4 fields" in ready["message"]
    (event,) = objects.events_about(apiserver, namespace, "tick", "InvalidSchedule")
    assert event["type"] == "Warning"

    apiserver.merge_patch(sched, {"spec": {"cron": "0 3 * * *", "timezone": "Europe/Bonn"}})
    current = wait_for(
        apiserver, sched, lambda s: "spec.timezone" in condition(s, "Ready").get("message", "")
    )
    assert condition(current, "Ready")["reason"] == "InvalidSchedule"

    apiserver.merge_patch(sched, {"spec": {"timezone": "Europe/Berlin"}})
    current = wait_for(apiserver, sched, lambda s: condition(s, "Ready").get("status") == "True")
    upcoming = datetime.datetime.fromisoformat(current["status"]["nextScheduleTime"])
    assert upcoming.astimezone(datetime.UTC).minute == 0
    assert scheduled_runs(apiserver, namespace, "tick") == []
    # Between fires the operator writes nothing: the ticks find the status as it should be.
    version = current["metadata"]["resourceVersion"]
    time.sleep(3)
    assert apiserver.get(sched)["metadata"]["resourceVersion"] == version


@pytest.fixture(autouse=True)
def _no_leftover_fires(apiserver: kube.APIServer, namespace: str) -> Iterator[None]:
    """Suspend every Schedule a test leaves behind: the shared operator keeps firing them."""
    yield
    try:
        found = apiserver.request("GET", f"/apis/{API_VERSION}/namespaces/{namespace}/schedules")
    except kube.APIError:
        return
    for item in found["items"]:
        apiserver.merge_patch(item, {"spec": {"suspend": True}})
