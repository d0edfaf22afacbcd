"""What the operator writes into a pool-mode Workflow's status from the run store's activity
(``operator/pool_status.py``): only pool Workflows, only when a figure changed, and a quiet
hour keeps the last run while its counts go to zero. The loop against the real API server is
tests/kube/test_pool_status.py."""

from __future__ import annotations

from typing import Any

from autoflow.operator import pool_status
from autoflow.runners import store


def wf(name: str, mode: str | None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"steps": []}
    if mode is not None:
        spec["runtime"] = {"mode": mode}
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": spec, "status": status}


ACTIVE = store.Activity("shop", "orders", 4, 1, "run-9", "Running", 1_800_000_000.4)
SHOWN = {
    "lastRun": "run-9",
    "lastRunPhase": "Running",
    "lastRunTime": "2027-01-15T08:00:00Z",
    "runsLastHour": 4,
    "failuresLastHour": 1,
}


def test_a_pool_workflow_with_new_figures_is_patched_and_a_job_workflow_never() -> None:
    found = pool_status.changes(
        [wf("orders", "pool"), wf("orders-job", "job"), wf("plain", None)],
        [ACTIVE, store.Activity("shop", "orders-job", 1, 0, "x", "Succeeded", 1.0)],
    )
    assert [(w["metadata"]["name"], patch) for w, patch in found] == [("orders", SHOWN)]


def test_unchanged_figures_are_not_written_again() -> None:
    assert pool_status.changes([wf("orders", "pool", dict(SHOWN))], [ACTIVE]) == []


def test_a_quiet_hour_keeps_the_last_run_and_shows_zero_counts() -> None:
    ((_, patch),) = pool_status.changes([wf("orders", "pool", dict(SHOWN))], [])
    assert patch == {**SHOWN, "runsLastHour": 0, "failuresLastHour": 0}
    quiet = {**SHOWN, "runsLastHour": 0, "failuresLastHour": 0}
    assert pool_status.changes([wf("orders", "pool", quiet)], []) == []
