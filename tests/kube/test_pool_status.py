"""Pool-mode Workflows' status counters, written by the operator from the run store, against
the real API server (``operator/pool_status.py``).

The runs are written into the store as the runner pool's workers record them (they create no
WorkflowRun objects); the operator, with the store and a 1 s status interval, shows each
pool-mode Workflow's last run and its runs and failures of the last hour, and patches again
only when a figure changed.
"""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import apiserver as kube
import objects
import operator_process
import pytest
from objects import wait_for

from autoflow.runners import store


@pytest.fixture
def status_store(operator: operator_process.Operator, tmp_path: pathlib.Path) -> Iterator[str]:
    """The operator restarted with a run store whose pool counters it writes every second."""
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    keys = {"AUTOFLOW_STORE_URL": url, "AUTOFLOW_STORE_STATUS_INTERVAL_SECONDS": "1"}
    asyncio.run(_migrate(url))
    with operator.restarted_with(keys):
        yield url


async def _migrate(url: str) -> None:
    opened = await store.open_store(url, migrate=True)
    await opened.aclose()


def record(url: str, namespace: str, workflow: str, runs: list[tuple[str, float, str]]) -> None:
    """Runs (id, start time, phase; Running: not ended) as a worker records them."""

    async def write() -> None:
        opened = await store.open_store(url)
        try:
            for run_id, at, phase in runs:
                recs: list[dict[str, Any]] = [
                    {
                        "t": "run",
                        "runId": run_id,
                        "workflow": workflow,
                        "namespace": namespace,
                        "trigger": "webhook",
                        "specHash": "h",
                        "inputs": {},
                        "startedAt": at,
                    }
                ]
                if phase != "Running":
                    recs.append({"t": "end", "phase": phase, "outputs": None, "at": at + 0.1})
                await opened.record(run_id, recs)
        finally:
            await opened.aclose()

    asyncio.run(write())


def counters(wf: dict[str, Any]) -> tuple[Any, ...]:
    status = wf.get("status") or {}
    return tuple(
        status.get(k)
        for k in ("lastRun", "lastRunPhase", "lastRunTime", "runsLastHour", "failuresLastHour")
    )


def test_a_pool_workflows_status_shows_its_last_run_and_the_last_hours_runs_and_failures(
    apiserver: kube.APIServer, namespace: str, status_store: str
) -> None:
    pool = apiserver.create(
        objects.workflow("orders", runtime={"mode": "pool"}), namespace=namespace
    )
    job = apiserver.create(objects.workflow("invoices"), namespace=namespace)
    now = time.time()
    record(
        status_store,
        namespace,
        "orders",
        [
            ("old", now - 7200, "Failed"),  # over an hour ago: not counted
            ("r1", now - 60, "Succeeded"),
            ("r2", now - 30, "Failed"),
            ("r3", now - 10, "Running"),
        ],
    )
    record(status_store, namespace, "invoices", [("i1", now - 5, "Succeeded")])
    record(status_store, "elsewhere", "orders", [("e1", now - 1, "Succeeded")])

    done = wait_for(apiserver, pool, lambda w: counters(w)[0] == "r3")
    last_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(now - 10)))
    assert counters(done) == ("r3", "Running", last_time, 3, 1)

    # The newest run ends: the phase follows within a round.
    record(status_store, namespace, "orders", [("r3", now - 10, "Failed")])
    done = wait_for(apiserver, pool, lambda w: counters(w)[1] == "Failed")
    assert counters(done) == ("r3", "Failed", last_time, 3, 2)

    # Nothing changed: rounds go on (every second) without writing the Workflow again.
    version = done["metadata"]["resourceVersion"]
    time.sleep(3.5)
    assert apiserver.get(pool)["metadata"]["resourceVersion"] == version
    # A job-mode Workflow is counted by its WorkflowRuns, not from the store.
    assert counters(apiserver.get(job))[3:] == (None, None)
