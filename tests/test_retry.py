"""Retry from a failed step: which finished steps a retry takes as done, and when a Job-mode
retry (``spec.retryOf``) is refused. Pure decisions over journal records; the whole path runs
against the real API server in tests/kube/test_webapi_cluster.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from autoflow.runners.engine import journal
from autoflow.runners.job import retry

HEADER: dict[str, Any] = {
    "t": "run",
    "runId": "old",
    "workflow": "orders",
    "namespace": "shop",
    "specHash": "h1",
    "inputs": {"orderId": "A-1", "token": {"redacted": True}},
    "startedAt": 1.0,
}
STEPS: list[dict[str, Any]] = [
    {"t": "step", "step": "reserve", "phase": "Succeeded", "output": {"n": 1}},
    {"t": "step", "step": "maybe", "phase": "Skipped", "message": "if was false"},
    {"t": "step", "step": "charge", "phase": "Failed", "error": "500"},
    {"t": "step", "step": "ship", "phase": "Skipped", "message": "not run: step 'charge' failed"},
    {"t": "step", "step": "alert", "phase": "Succeeded", "output": {}},  # an onError step
]
FAILED: list[dict[str, Any]] = [
    HEADER,
    *STEPS,
    {"t": "end", "phase": "Failed", "error": "charge", "at": 2.0},
]
MAIN = ["reserve", "maybe", "charge", "ship"]
VALUES = {"orderId": "A-1", "token": "s3cret"}


def check(records: list[dict[str, Any]], **changes: Any) -> list[dict[str, Any]]:
    args: dict[str, Any] = {
        "namespace": "shop",
        "workflow": "orders",
        "spec_hash": "h1",
        "values": VALUES,
        "main": MAIN,
        **changes,
    }
    return retry.check(records, "old", **args)


def test_only_succeeded_main_steps_are_reused_in_their_order() -> None:
    assert journal.reusable(FAILED, MAIN) == [STEPS[0]]
    reused = check(FAILED)
    assert [r["step"] for r in reused] == ["reserve"]
    assert reused[0]["output"] == {"n": 1} and reused[0]["message"] == "reused from run old"


@pytest.mark.parametrize(
    ("records", "changes", "says"),
    [
        ([], {}, "has no run of that id of Workflow 'orders' in namespace 'shop'"),
        (FAILED, {"namespace": "other"}, "has no run of that id"),  # another namespace's
        (FAILED, {"workflow": "refunds"}, "has no run of that id"),
        (FAILED[:-1], {}, "it is Running; only a failed run is retried"),
        ([*FAILED[:-1], {**FAILED[-1], "phase": "Succeeded"}], {}, "it is Succeeded"),
        (FAILED, {"spec_hash": "h2"}, "earlier version of Workflow 'orders'"),
        (
            FAILED,
            {"values": {**VALUES, "orderId": "B-2"}},
            "inputs differ from this run's (orderId)",
        ),
    ],
)
def test_a_retry_that_cannot_be_made_is_refused_saying_why(
    records: list[dict[str, Any]], changes: dict[str, Any], says: str
) -> None:
    with pytest.raises(retry.RetryRefused) as refused:
        check(records, **changes)
    assert refused.value.message.startswith("cannot retry run 'old': ")
    assert says in refused.value.message
    assert "s3cret" not in refused.value.message


def test_without_a_run_store_a_job_mode_retry_is_refused() -> None:
    with pytest.raises(retry.RetryRefused) as refused:
        asyncio.run(
            retry.reusable_steps(
                {}, "old", namespace="shop", workflow="orders", spec_hash="h1", values={}, main=[]
            )
        )
    assert "needs the run store" in refused.value.message
    assert "rerun it instead" in refused.value.message
