"""A Workflow's ``spec.concurrency`` in the operator, without a cluster.

Grouped by concern: reading the limit; a run's state (queued, holding a slot, waiting); the
decision for a new run under Queue, Forbid and Replace; the status written for it; which
queued runs a wake admits; a replaced run's end; Events and metrics of queued runs; and
``admission.Admissions`` over an in-memory API, where two runs started at the same moment
race for the last slot.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from autoflow.crds import conditions
from autoflow.operator import admission, concurrency, events, metrics, runs

ONE = concurrency.Limit(1, "Queue")
SPEC: dict[str, Any] = {
    "steps": [{"id": "hello", "uses": "core.log", "with": {"message": "hi"}}],
    "concurrency": {"maxRuns": 1},
}
_uids = itertools.count(1)


def workflow(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "orders", "namespace": "shop", "generation": 1},
        "spec": copy.deepcopy(spec if spec is not None else SPEC),
    }


def run(
    name: str,
    state: str = "new",
    created: str = "2026-03-01T09:00:00Z",
    wf: str = "orders",
    spec: dict[str, Any] | None = None,
    **run_spec: Any,
) -> dict[str, Any]:
    """A run in ``state``: new (unstarted), queued, pending (admitted), running, or a phase
    it finished in (Succeeded, Failed, Cancelled)."""
    made: dict[str, Any] = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}-{next(_uids)}",
            "generation": 1,
            "creationTimestamp": created,
            "resourceVersion": "1",
        },
        "spec": {"workflowRef": {"name": wf}, **run_spec},
        "status": {},
    }
    if state == "new":
        return made
    made["status"] = runs.start_status(made, workflow(spec), [])
    if state == "queued":
        made["status"].update(concurrency.queued(made, "waiting"))
    elif state == "running":
        made["status"].update(
            runs.summarize({**made, "status": {**made["status"], "startedAt": created}}, None)
        )
    elif state != "pending":
        made["status"].update(runs.finished_status(made, state, state, state))
    return made


def reason_of(status: dict[str, Any]) -> str:
    cond = conditions.get(status.get("conditions"), runs.SUCCEEDED) or {}
    return str(cond.get("reason"))


def names(items: list[dict[str, Any]]) -> list[str]:
    return [r["metadata"]["name"] for r in items]


# -- the limit -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "limit"),
    [
        pytest.param({}, None, id="no-concurrency"),
        pytest.param({"concurrency": {"maxRuns": 0, "policy": "Forbid"}}, None, id="zero"),
        pytest.param({"concurrency": {"maxRuns": 3}}, concurrency.Limit(3, "Queue"), id="queue"),
        pytest.param(
            {"concurrency": {"maxRuns": 1, "policy": "Replace"}},
            concurrency.Limit(1, "Replace"),
            id="replace",
        ),
    ],
)
def test_the_limit_of_a_workflow(spec: dict[str, Any], limit: concurrency.Limit | None) -> None:
    assert concurrency.limit_of(spec) == limit


def test_a_started_run_is_under_its_snapshots_limit() -> None:
    assert concurrency.run_limit(run("a", "queued")) == ONE
    assert concurrency.run_limit(run("a", "pending", spec={"steps": SPEC["steps"]})) is None
    assert concurrency.run_limit(run("a")) is None  # no snapshot yet


# -- the state of a run ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "queued", "holds", "waits"),
    [
        ("new", False, False, True),
        ("queued", True, False, True),
        ("pending", False, True, False),
        ("running", False, True, False),
        ("Succeeded", False, False, False),
        ("Cancelled", False, False, False),
    ],
)
def test_the_state_of_a_run(state: str, queued: bool, holds: bool, waits: bool) -> None:
    made = run("a", state)
    assert (concurrency.is_queued(made), concurrency.holds_slot(made)) == (queued, holds)
    assert concurrency.waits(made) is waits


def test_a_cancelled_run_waits_for_nothing_but_holds_its_slot_until_it_stopped() -> None:
    assert not concurrency.waits(run("a", "queued", cancel=True))
    assert not concurrency.waits(run("a", cancel=True))
    assert concurrency.holds_slot(run("a", "running", cancel=True))


def test_the_runs_of_a_workflow_are_listed_once_each_the_last_listing_winning() -> None:
    fresh = run("b", created="2026-03-01T09:00:05Z")
    later = copy.deepcopy(fresh)
    later["metadata"]["labels"] = {runs.LABEL_WORKFLOW: "orders"}
    other = run("c", wf="invoices")
    found = concurrency.runs_of([fresh, run("a"), other, later], "orders")
    assert names(found) == ["a", "b"]
    assert found[1] is later


# -- deciding --------------------------------------------------------------------------------


def test_a_run_is_admitted_while_there_is_a_free_slot() -> None:
    new = run("b", created="2026-03-01T09:00:05Z")
    others = [run("a", "Succeeded"), run("x", "running", wf="invoices"), new]
    assert concurrency.decide(new, concurrency.runs_of(others, "orders"), ONE).action == "admit"
    two = concurrency.Limit(2, "Queue")
    assert concurrency.decide(new, [run("a", "running"), new], two).action == "admit"


def test_a_run_beyond_the_limit_is_queued_saying_what_it_waits_for() -> None:
    new = run("c", created="2026-03-01T09:00:05Z")
    others = [run("a", "running"), run("b", "pending"), new]
    decision = concurrency.decide(new, others, concurrency.Limit(2, "Queue"))
    assert decision == concurrency.Decision(
        "queue", "waiting: 2 of 2 runs of workflow 'orders' are active"
    )


def test_runs_created_before_and_not_admitted_yet_are_ahead() -> None:
    older = run("a", created="2026-03-01T09:00:00Z")  # not taken up yet
    queued = run("b", "queued", created="2026-03-01T09:00:01Z")
    new = run("c", created="2026-03-01T09:00:02Z")
    decision = concurrency.decide(new, [older, queued, new], concurrency.Limit(2, "Queue"))
    assert decision.message == (
        "waiting: 0 of 2 runs of workflow 'orders' are active, 2 created before this one waiting"
    )
    # The oldest is ahead of nobody: it starts, whichever the operator takes up first.
    assert concurrency.decide(older, [older, queued, new], ONE).action == "admit"


def test_runs_created_in_the_same_second_are_ordered_by_name() -> None:
    a, b = run("orders-1"), run("orders-2")
    assert concurrency.decide(b, [a, b], ONE).action == "queue"
    assert concurrency.decide(a, [a, b], ONE).action == "admit"


def test_newer_cancelled_and_finished_runs_do_not_count() -> None:
    new = run("b", created="2026-03-01T09:00:05Z")
    others = [
        run("a", "Failed"),
        run("c", created="2026-03-01T09:00:09Z"),  # newer
        run("d", "queued", cancel=True),  # cancelled: finishes without a Job
        run("e", created="2026-03-01T08:00:00Z", cancel=True),
        new,
    ]
    assert concurrency.decide(new, others, ONE).action == "admit"


def test_forbid_fails_a_run_beyond_the_limit() -> None:
    new = run("b", created="2026-03-01T09:00:05Z")
    decision = concurrency.decide(new, [run("a", "running"), new], concurrency.Limit(1, "Forbid"))
    assert decision.action == "fail"
    assert decision.message == (
        "1 of 1 runs of workflow 'orders' are active (spec.concurrency.policy Forbid)"
    )


def test_replace_cancels_the_oldest_runs_and_waits_for_them() -> None:
    limit = concurrency.Limit(2, "Replace")
    a = run("a", "running", created="2026-03-01T09:00:00Z")
    b = run("b", "running", created="2026-03-01T09:00:01Z")
    new = run("c", created="2026-03-01T09:00:05Z")
    decision = concurrency.decide(new, [b, a, new], limit)
    assert decision.action == "queue"
    assert decision.replace == ("a",)
    assert decision.message == (
        "waiting: replacing run(s) 'a'; starts once 'a' stopped (spec.concurrency.policy Replace)"
    )


def test_replace_counts_runs_already_stopping_as_going() -> None:
    limit = concurrency.Limit(1, "Replace")
    stopping = run("a", "running", created="2026-03-01T09:00:00Z", cancel=True)
    new = run("c", created="2026-03-01T09:00:05Z")
    decision = concurrency.decide(new, [stopping, new], limit)
    assert (decision.action, decision.replace) == ("queue", ())
    assert decision.message == "waiting: starts once 'a' stopped (spec.concurrency.policy Replace)"


def test_replace_also_cancels_older_runs_still_waiting() -> None:
    limit = concurrency.Limit(1, "Replace")
    stopping = run("a", "running", created="2026-03-01T09:00:00Z", cancel=True)
    waiting = run("b", "queued", created="2026-03-01T09:00:01Z")
    new = run("c", created="2026-03-01T09:00:05Z")
    decision = concurrency.decide(new, [stopping, waiting, new], limit)
    assert decision.replace == ("b",)


def test_a_cancelled_run_is_never_admitted() -> None:
    new = run("a", cancel=True)
    assert concurrency.decide(new, [new], ONE).action == "queue"


# -- the status ------------------------------------------------------------------------------


def start_of(made: dict[str, Any]) -> dict[str, Any]:
    return runs.start_status(made, workflow(), [])


def test_an_admitted_run_starts_as_without_a_limit() -> None:
    new = run("a")
    start = start_of(new)
    assert concurrency.apply(new, start, concurrency.Decision("admit")) == start


def test_a_queued_run_is_pending_with_reason_queued_and_its_snapshot() -> None:
    new = run("a")
    status = concurrency.apply(new, start_of(new), concurrency.Decision("queue", "waiting: x"))
    assert (status["phase"], reason_of(status), status["message"]) == (
        "Pending",
        "Queued",
        "waiting: x",
    )
    cond = conditions.get(status["conditions"], runs.SUCCEEDED) or {}
    assert (cond["status"], cond["message"]) == ("Unknown", "waiting: x")
    assert status["workflowSnapshot"] == SPEC
    assert concurrency.is_queued({**new, "status": status})


def test_a_forbidden_run_fails_with_the_limit_and_no_job() -> None:
    new = run("a")
    status = concurrency.apply(new, start_of(new), concurrency.Decision("fail", "1 of 1 ..."))
    assert (status["phase"], reason_of(status), status["message"]) == (
        "Failed",
        "ConcurrencyLimit",
        "1 of 1 ...",
    )
    assert status["finishedAt"] and "jobName" not in status
    assert status["workflowSnapshot"] == SPEC


def test_a_run_that_cannot_start_fails_whatever_the_decision() -> None:
    new = run("a")
    failed = runs.start_status(new, None, [])
    assert concurrency.apply(new, failed, concurrency.Decision("queue", "waiting")) == failed
    assert concurrency.apply(new, {}, concurrency.Decision("fail", "x")) == {}


def test_admitting_a_queued_run_clears_what_it_waited_for() -> None:
    queued = run("a", "queued")
    status = concurrency.admit(queued)
    assert status["message"] is None  # removed by the merge patch
    assert reason_of(status) == "Pending"
    after = {**queued, "status": {**queued["status"], **status}}
    assert concurrency.holds_slot(after) and not concurrency.is_queued(after)
    assert concurrency.admit(after) == {}  # admitted already
    assert concurrency.admit(run("b", "queued", cancel=True)) == {}
    assert concurrency.admit(run("c", "Cancelled")) == {}


# -- waking the queue ------------------------------------------------------------------------


def test_a_wake_admits_the_oldest_queued_runs_that_fit() -> None:
    listed = [
        run("a", "Succeeded", created="2026-03-01T09:00:00Z"),
        run("d", "queued", created="2026-03-01T09:00:03Z"),
        run("b", "queued", created="2026-03-01T09:00:01Z"),
        run("c", "queued", created="2026-03-01T09:00:02Z"),
    ]
    assert names(concurrency.admissible(listed)) == ["b"]
    two = {**SPEC, "concurrency": {"maxRuns": 2}}
    listed = [
        run(n, "queued", created=f"2026-03-01T09:00:0{i}Z", spec=two) for i, n in enumerate("bcd")
    ]
    assert names(concurrency.admissible(listed)) == ["b", "c"]


def test_a_wake_admits_nothing_while_the_slots_are_taken() -> None:
    listed = [run("a", "running"), run("b", "queued", created="2026-03-01T09:00:01Z")]
    assert concurrency.admissible(listed) == []


def test_a_wake_skips_cancelled_runs_and_leaves_unstarted_older_ones_ahead() -> None:
    cancelled = run("b", "queued", created="2026-03-01T09:00:01Z", cancel=True)
    queued = run("c", "queued", created="2026-03-01T09:00:02Z")
    assert names(concurrency.admissible([cancelled, queued])) == ["c"]
    unstarted = run("a", created="2026-03-01T09:00:00Z")
    assert concurrency.admissible([unstarted, cancelled, queued]) == []


# -- a replaced run, Events, metrics ---------------------------------------------------------


def test_a_replaced_run_ends_cancelled_naming_the_run_that_replaced_it() -> None:
    made = run("a", "running", cancel=True)
    made["metadata"]["annotations"] = {runs.ANNOTATION_REPLACED_BY: "orders-9"}
    status = runs.summarize(
        {**made, "status": {**made["status"], "result": {"phase": "Cancelled"}}}, None
    )
    assert (status["phase"], reason_of(status)) == ("Cancelled", "Replaced")
    assert status["message"] == "replaced by run 'orders-9' (spec.concurrency.policy Replace)"
    queued = run("b", "queued", cancel=True)
    queued["metadata"]["annotations"] = {runs.ANNOTATION_REPLACED_BY: "orders-9"}
    assert reason_of(runs.cancelled(queued, None)) == "Replaced"
    assert reason_of(runs.cancelled(run("c", "queued", cancel=True), None)) == "Cancelled"


def test_a_run_queued_gets_one_event() -> None:
    new = run("a")
    status = concurrency.apply(new, start_of(new), concurrency.Decision("queue", "waiting: 1"))
    assert events.for_run({}, status) == events.Event("Normal", "Queued", "waiting: 1")
    assert events.for_run(status, {**status, "message": "waiting: 2"}) is None
    admitted = {**status, **concurrency.admit({**new, "status": status})}
    assert events.for_run(status, admitted) is None


def test_a_queued_run_counts_as_pending() -> None:
    active = metrics.ActiveRuns()
    active.observe("ADDED", run("a", "queued"))
    active.observe("ADDED", run("b", "running"))
    counts = {
        s.labels["phase"]: s.value
        for family in active.collect()
        if family.name == "autoflow_runs_active"
        for s in family.samples
    }
    assert counts == {"Pending": 1, "Running": 1}


# -- admission: the lock around counting and admitting ---------------------------------------


class FakeAPI:
    """Runs in memory, behind the calls ``Admissions`` makes; each call yields to the loop,
    as a real request would, so that concurrent callers interleave."""

    def __init__(self, *items: dict[str, Any]) -> None:
        self.runs = {r["metadata"]["name"]: copy.deepcopy(r) for r in items}
        self.launched: list[str] = []
        self.patched: dict[str, Any] = {}
        self.before_write: Callable[[dict[str, Any]], None] | None = None

    async def list(self, url: str) -> list[dict[str, Any]]:
        unlabelled = "%21" in url or "!" in url
        found = [
            r
            for r in self.runs.values()
            if (runs.LABEL_WORKFLOW in r["metadata"].get("labels", {})) != unlabelled
        ]
        answer = copy.deepcopy(found)  # as the server saw them, before the answer travels
        await asyncio.sleep(0)
        return answer

    async def patch(self, url: str, body: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        name = url.rsplit("/", 1)[-1]
        self.patched[name] = body
        self.runs[name]["spec"].update(body["spec"])
        self.runs[name]["metadata"].setdefault("annotations", {}).update(
            body["metadata"]["annotations"]
        )
        return copy.deepcopy(self.runs[name])

    async def write(self, made: dict[str, Any], compute: Any) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        if self.before_write is not None:
            self.before_write(made)
        await asyncio.sleep(0)
        current = self.runs[made["metadata"]["name"]]
        change = compute(current)
        if not change:
            return None
        current["status"] = {**current["status"], **change}
        return copy.deepcopy(current)

    async def launch(self, made: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        self.launched.append(made["metadata"]["name"])


def admissions(api: FakeAPI) -> admission.Admissions:
    return admission.Admissions(api, api.write, api.launch, backoff=0.01)  # type: ignore[arg-type]


async def test_of_two_runs_started_at_once_the_older_takes_the_last_slot() -> None:
    api = FakeAPI(run("orders-1"), run("orders-2"))
    admit = admissions(api)

    def start(current: dict[str, Any]) -> dict[str, Any]:
        return runs.start_status(current, workflow(), [])

    await asyncio.gather(
        *(admit.start(api.runs[name], ONE, start) for name in ("orders-2", "orders-1"))
    )

    states = {n: reason_of(r["status"]) for n, r in api.runs.items()}
    assert states == {"orders-1": "Pending", "orders-2": "Queued"}


async def test_a_wake_admits_the_next_run_and_launches_it() -> None:
    api = FakeAPI(
        run("orders-1", "Succeeded"),
        run("orders-2", "queued", created="2026-03-01T09:00:01Z"),
        run("orders-3", "queued", created="2026-03-01T09:00:02Z"),
    )
    admit = admissions(api)

    admit.wake("shop", "orders")
    admit.wake("shop", "orders")  # one more pass after the first, not two at once
    while admit._tasks:
        await asyncio.sleep(0.01)

    assert api.launched == ["orders-2"]
    assert reason_of(api.runs["orders-2"]["status"]) == "Pending"
    assert reason_of(api.runs["orders-3"]["status"]) == "Queued"


async def test_a_run_replacing_another_cancels_it_before_it_is_queued() -> None:
    api = FakeAPI(run("orders-1", "running"), run("orders-2", created="2026-03-01T09:00:05Z"))
    admit = admissions(api)
    replace = concurrency.Limit(1, "Replace")

    await admit.start(api.runs["orders-2"], replace, lambda c: runs.start_status(c, workflow(), []))

    assert api.patched["orders-1"] == {
        "metadata": {"annotations": {runs.ANNOTATION_REPLACED_BY: "orders-2"}},
        "spec": {"cancel": True},
    }
    assert reason_of(api.runs["orders-2"]["status"]) == "Queued"


async def test_a_run_that_finishes_while_another_is_being_queued_wakes_it() -> None:
    api = FakeAPI(run("orders-1", "running"), run("orders-2", created="2026-03-01T09:00:05Z"))
    admit = admissions(api)

    def finish_the_first(made: dict[str, Any]) -> None:
        # After orders-2 counted orders-1 as active, before its Queued status is written.
        if made["metadata"]["name"] == "orders-2" and not api.launched:
            first = api.runs["orders-1"]
            first["status"].update(runs.finished_status(first, "Succeeded", "Succeeded", "ok"))
            admit.changed("shop", "orders")

    api.before_write = finish_the_first
    await admit.start(api.runs["orders-2"], ONE, lambda c: runs.start_status(c, workflow(), []))
    while admit._tasks:
        await asyncio.sleep(0.01)

    # The wake waited for the decision under the lock, then found the run queued.
    assert api.launched == ["orders-2"]
    assert reason_of(api.runs["orders-2"]["status"]) == "Pending"
