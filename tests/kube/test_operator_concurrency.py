"""The operator enforcing a Workflow's ``spec.concurrency``: how many runs have a Job at once.

The operator runs as its own ServiceAccount (fixture ``operator``) and the ``executor``
fixture runs the Jobs (see executor.py). A ``Watch`` polls the namespace while runs go on and
records what the user could have seen: how many unfinished runs had a Job at the same time,
the order Jobs appeared in, and which runs showed the reason ``Queued``.

Grouped by policy: Queue (the default), Forbid, Replace; then a queued run that is cancelled,
and queued runs across operator restarts.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import apiserver as kube
import executor as executor_mod
import objects
import operator_process
import pytest
from objects import condition, phase, step, wait_for

API_VERSION = "autoflow.dev/v1alpha1"
TIMEOUT = 60.0


def delay(duration: str = "1s") -> dict[str, Any]:
    return {"id": "wait", "uses": "core.delay", "with": {"duration": duration}}


def limited(max_runs: int = 1, policy: str | None = None, **spec: Any) -> dict[str, Any]:
    """The Workflow ``orders``: one delay step (1s unless given), at most ``max_runs`` at once."""
    concurrency: dict[str, Any] = {"maxRuns": max_runs}
    if policy is not None:
        concurrency["policy"] = policy
    return objects.workflow(**{"steps": [delay()], **spec, "concurrency": concurrency})


def reason(run: dict[str, Any]) -> str | None:
    value: str | None = condition(run, "Succeeded").get("reason")
    return value


class Watch:
    """Polls the namespace's runs and Jobs, remembering what it saw."""

    def __init__(self, server: kube.APIServer, namespace: str) -> None:
        self.server = server
        self.namespace = namespace
        self.most_at_once = 0
        self.job_order: list[str] = []
        self.queued: dict[str, str] = {}  # run → its message when first seen Queued
        self.runs: dict[str, dict[str, Any]] = {}

    def poll(self) -> None:
        jobs = self.server.request("GET", f"/apis/batch/v1/namespaces/{self.namespace}/jobs")
        # Runs read after the Jobs: a run unfinished now was unfinished when its Job was seen.
        listed = self.server.request(
            "GET", self.server.path(API_VERSION, "WorkflowRun", self.namespace)
        )
        self.runs = {r["metadata"]["name"]: r for r in listed["items"]}
        names = [j["metadata"]["name"] for j in jobs["items"]]
        active = [n for n in names if n in self.runs and not objects.finished(self.runs[n])]
        self.most_at_once = max(self.most_at_once, len(active))
        for job in sorted(
            jobs["items"], key=lambda j: (j["metadata"]["creationTimestamp"], j["metadata"]["name"])
        ):
            if job["metadata"]["name"] not in self.job_order:
                self.job_order.append(job["metadata"]["name"])
        for name, run in self.runs.items():
            if reason(run) == "Queued" and name not in self.queued:
                self.queued[name] = condition(run, "Succeeded")["message"]

    def until(
        self, check: Callable[[dict[str, dict[str, Any]]], bool], timeout: float = TIMEOUT
    ) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if check(self.runs):
                return self.runs
            if time.monotonic() > deadline:
                states = {n: (phase(r), reason(r)) for n, r in self.runs.items()}
                raise TimeoutError(f"not reached in {timeout}s; runs: {states}")
            time.sleep(0.05)

    def until_finished(self, *names: str) -> list[dict[str, Any]]:
        runs = self.until(lambda seen: all(n in seen and objects.finished(seen[n]) for n in names))
        return [runs[n] for n in names]


def started_after_the_one_before(done: list[dict[str, Any]]) -> bool:
    return all(
        after["status"]["startedAt"] >= before["status"]["finishedAt"]
        for before, after in itertools.pairwise(done)
    )


def no_job(server: kube.APIServer, run: dict[str, Any]) -> bool:
    try:
        server.get(objects.job_of(run))
    except kube.APIError as exc:
        return exc.code == 404
    return False


# -- Queue -------------------------------------------------------------------------------------


def test_queued_runs_start_one_at_a_time_in_creation_order(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    apiserver.create(limited(max_runs=1), namespace=namespace)
    names = ["orders-1", "orders-2", "orders-3"]
    for name in names:  # at once: the operator takes them up in whatever order it likes
        apiserver.create(objects.run(name), namespace=namespace)
    watch = Watch(apiserver, namespace)

    done = watch.until_finished(*names)

    assert [phase(r) for r in done] == ["Succeeded"] * 3
    assert watch.most_at_once == 1
    assert watch.job_order == names
    assert started_after_the_one_before(done)
    assert sorted(watch.queued) == ["orders-2", "orders-3"]
    assert "runs of workflow 'orders' are active" in watch.queued["orders-3"]
    assert watch.queued["orders-3"].startswith("waiting: ")
    (event,) = objects.events_about(apiserver, namespace, "orders-2", "Queued")
    assert event["type"] == "Normal" and event["message"].startswith("waiting: ")


def test_two_slots_keep_two_runs_going(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    apiserver.create(limited(max_runs=2), namespace=namespace)
    names = [f"orders-{n}" for n in range(1, 6)]
    for name in names:
        apiserver.create(objects.run(name), namespace=namespace)
    watch = Watch(apiserver, namespace)

    done = watch.until_finished(*names)

    assert [phase(r) for r in done] == ["Succeeded"] * 5
    assert watch.most_at_once == 2
    assert sorted(watch.job_order[:2]) == names[:2]  # (admitted together: either Job first)
    assert set(watch.queued) >= {"orders-3", "orders-4", "orders-5"}


# -- Forbid ------------------------------------------------------------------------------------


def test_forbid_fails_a_run_beyond_the_limit_without_a_job(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    apiserver.create(limited(1, "Forbid", steps=[delay("3s")]), namespace=namespace)
    first = apiserver.create(objects.run("orders-1"), namespace=namespace)
    wait_for(apiserver, objects.job_of(first), bool)

    second = apiserver.create(objects.run("orders-2"), namespace=namespace)

    failed = wait_for(apiserver, second, objects.finished)
    cond = condition(failed, "Succeeded")
    assert (phase(failed), cond["status"], cond["reason"]) == (
        "Failed",
        "False",
        "ConcurrencyLimit",
    )
    assert "1 of 1 runs of workflow 'orders' are active" in cond["message"]
    assert "Forbid" in cond["message"]
    assert not objects.finished(apiserver.get(first))  # it failed while the first was going
    (event,) = objects.events_about(apiserver, namespace, "orders-2", "ConcurrencyLimit")
    assert event["type"] == "Warning"
    assert phase(wait_for(apiserver, first, objects.finished)) == "Succeeded"
    assert no_job(apiserver, second)

    # The limit counts runs going now: once the first finished, the next run starts.
    third = apiserver.create(objects.run("orders-3"), namespace=namespace)
    assert phase(wait_for(apiserver, third, objects.finished)) == "Succeeded"
    wf = wait_for(
        apiserver,
        objects.placed(objects.workflow(), namespace),
        lambda w: (w.get("status") or {}).get("runsTotal") == 3,
    )
    assert (wf["status"]["runsSucceeded"], wf["status"]["runsFailed"]) == (2, 1)


# -- Replace -----------------------------------------------------------------------------------


def test_replace_cancels_the_running_run_and_starts_the_new_one_after_it(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    spec = {
        "inputs": {"duration": {"type": "string", "default": "60s"}},
        "steps": [delay("${ inputs.duration }")],
    }
    apiserver.create(limited(1, "Replace", **spec), namespace=namespace)
    first = apiserver.create(objects.run("orders-1"), namespace=namespace)
    wait_for(apiserver, first, lambda r: step(r, "wait").get("phase") == "Running")

    second = apiserver.create(
        objects.run("orders-2", inputs={"duration": "100ms"}), namespace=namespace
    )

    replaced = wait_for(apiserver, first, objects.finished)
    cond = condition(replaced, "Succeeded")
    assert (phase(replaced), cond["status"], cond["reason"]) == ("Cancelled", "False", "Replaced")
    assert "replaced by run 'orders-2'" in cond["message"]
    assert step(replaced, "wait")["phase"] == "Cancelled"  # the runner stopped
    job = wait_for(apiserver, objects.job_of(first), lambda j: condition(j, "Suspended") != {})
    assert job["spec"]["suspend"] is True
    done = wait_for(apiserver, second, objects.finished)
    assert phase(done) == "Succeeded"
    # It waited for the replaced run to stop: never two Jobs going at once.
    assert done["status"]["startedAt"] >= replaced["status"]["finishedAt"]
    assert (
        apiserver.get(objects.job_of(second))["metadata"]["creationTimestamp"]
        >= (replaced["status"]["finishedAt"])
    )
    (event,) = objects.events_about(apiserver, namespace, "orders-2", "Queued")
    assert "replacing run(s) 'orders-1'" in event["message"]


# -- a queued run cancelled ----------------------------------------------------------------------


def test_a_queued_run_that_is_cancelled_never_gets_a_job(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    apiserver.create(limited(1, steps=[delay("3s")]), namespace=namespace)
    _, second, _ = (
        apiserver.create(objects.run(f"orders-{n}"), namespace=namespace) for n in (1, 2, 3)
    )
    wait_for(apiserver, second, lambda r: reason(r) == "Queued")

    apiserver.merge_patch(second, {"spec": {"cancel": True}})

    cancelled = wait_for(apiserver, second, objects.finished)
    cond = condition(cancelled, "Succeeded")
    assert (phase(cancelled), cond["reason"]) == ("Cancelled", "Cancelled")
    assert cond["message"] == "cancelled before the runner started"
    watch = Watch(apiserver, namespace)
    done = watch.until_finished("orders-1", "orders-3")
    assert [phase(r) for r in done] == ["Succeeded", "Succeeded"]
    assert watch.most_at_once == 1
    assert started_after_the_one_before(done)
    assert no_job(apiserver, second)
    assert step(cancelled, "wait") == {}  # the runner never ran it


# -- the operator restarts -----------------------------------------------------------------------


def test_queued_runs_start_after_an_operator_restart(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    apiserver.create(limited(1, steps=[delay("2s")]), namespace=namespace)
    names = ["orders-1", "orders-2", "orders-3"]
    first, *_ = (apiserver.create(objects.run(n), namespace=namespace) for n in names)
    watch = Watch(apiserver, namespace)
    watch.until(lambda seen: all(reason(seen.get(n, {})) == "Queued" for n in names[1:]))
    wait_for(apiserver, first, lambda r: phase(r) == "Running")

    # Down while the first run finishes: nothing is there to see it finish and wake the queue.
    operator.stop()
    wait_for(apiserver, first, lambda r: bool((r["status"].get("result") or {}).get("phase")))
    time.sleep(0.5)
    assert [reason(apiserver.get(objects.placed(objects.run(n), namespace))) for n in names] == [
        "Running",
        "Queued",
        "Queued",
    ]
    operator.start()

    done = watch.until_finished(*names)
    assert [phase(r) for r in done] == ["Succeeded"] * 3
    assert watch.most_at_once == 1
    assert watch.job_order == names
    assert started_after_the_one_before(done)


def test_runs_created_while_the_operator_is_down_start_in_creation_order(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    apiserver.create(limited(1), namespace=namespace)
    operator.stop()
    names = [f"orders-{n}" for n in range(1, 5)]
    for name in names:
        apiserver.create(objects.run(name), namespace=namespace)

    operator.start()  # takes up all four at once (kopf's resume and create)

    watch = Watch(apiserver, namespace)
    done = watch.until_finished(*names)
    assert [phase(r) for r in done] == ["Succeeded"] * 4
    assert watch.most_at_once == 1
    assert watch.job_order == names
    assert started_after_the_one_before(done)


@pytest.mark.parametrize("max_runs", [0, None])
def test_without_a_limit_every_run_starts_at_once(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    max_runs: int | None,
) -> None:
    # No executor: Jobs are made and never run, so all three stay going.
    spec: dict[str, Any] = {"steps": [delay()]}
    if max_runs is not None:
        spec["concurrency"] = {"maxRuns": max_runs, "policy": "Forbid"}
    apiserver.create(objects.workflow(**spec), namespace=namespace)
    made = [apiserver.create(objects.run(f"orders-{n}"), namespace=namespace) for n in (1, 2, 3)]

    for run in made:
        wait_for(apiserver, objects.job_of(run), bool)
        assert reason(apiserver.get(run)) == "Pending"
