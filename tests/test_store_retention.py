"""The operator's periodic retention (``operator.retention``): its settings, the policies it
reads from Workflows, and the loop it runs, against SQLite (the loop itself, against both
stores, is in the contract suite; against the real API server in tests/kube/test_run_store.py).
"""

from __future__ import annotations

import asyncio
import pathlib
import random
import time
from typing import Any

import pytest

from autoflow.operator import metrics
from autoflow.operator import retention as operator_retention
from autoflow.operator import settings as settings_mod
from autoflow.runners import kube, store
from autoflow.runners.store import retention


def test_the_default_retention_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert operator_retention.default_of(settings_mod.Settings()) is None  # kept for ever
    monkeypatch.setenv("AUTOFLOW_STORE_RETENTION_DAYS", "90")
    monkeypatch.setenv("AUTOFLOW_STORE_RETENTION_MAX_RUNS", "1000")
    monkeypatch.setenv("AUTOFLOW_STORE_PURGE_INTERVAL_SECONDS", "600")
    settings = settings_mod.Settings()
    assert operator_retention.default_of(settings) == store.Retention(90, 1000)
    assert settings.store_purge_interval_seconds == 600
    monkeypatch.setenv("AUTOFLOW_STORE_RETENTION_DAYS", "0")
    with pytest.raises(ValueError, match="store_retention_days"):
        settings_mod.Settings()


def test_policies_are_the_retention_of_each_workflow_that_sets_one() -> None:
    workflows: list[dict[str, Any]] = [
        {"metadata": {"namespace": "ops", "name": "a"}, "spec": {"retention": {"days": 7}}},
        {"metadata": {"namespace": "ops", "name": "b"}, "spec": {"steps": []}},
        {"metadata": {"namespace": "dev", "name": "a"}, "spec": {"retention": {"maxRuns": 5}}},
    ]
    assert operator_retention.policies_of(workflows) == {
        ("ops", "a"): store.Retention(days=7),
        ("dev", "a"): store.Retention(max_runs=5),
    }


def test_the_first_purge_is_jittered_within_the_interval() -> None:
    rnd = random.Random(1)
    delays = [retention.first_delay(60, rnd) for _ in range(50)]
    assert all(0 <= d <= 60 for d in delays) and len(set(delays)) == 50
    assert all(
        d <= retention.FIRST_WITHIN for d in (retention.first_delay(86400) for _ in range(50))
    )


class Workflows:
    """The one API call the retention makes: list the Workflows (of a namespace, or all)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.urls: list[str] = []

    async def list(self, url: str) -> list[dict[str, Any]]:
        self.urls.append(url)
        return self.items


async def test_the_operator_purges_by_each_workflows_retention(tmp_path: pathlib.Path) -> None:
    st = await store.open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    now = time.time()
    for n in range(4):
        run_id = f"r{n}"
        await st.record(
            run_id,
            [
                {"t": "run", "runId": run_id, "workflow": "orders", "namespace": "ops",
                 "specHash": "h", "inputs": {}, "startedAt": now - n},
                {"t": "end", "phase": "Succeeded", "outputs": None, "at": now - n + 0.5},
            ],
        )  # fmt: skip
    client = Workflows(
        [
            {
                "metadata": {"namespace": "ops", "name": "orders"},
                "spec": {"retention": {"maxRuns": 1}},
            }
        ]
    )
    settings = settings_mod.Settings(namespaces="ops", store_purge_interval_seconds=0.05)
    before = metrics.STORE_RUNS_PURGED._value.get()
    retainer = operator_retention.Retainer(client, st, settings)  # type: ignore[arg-type]
    retainer.start(delay=0)
    try:
        for _ in range(300):
            if len((await st.list_runs()).runs) == 1:
                break
            await asyncio.sleep(0.01)
    finally:
        await retainer.stop()
    assert [r.run_id for r in (await st.list_runs()).runs] == ["r0"]
    assert client.urls[0] == kube.paths.workflow("ops")
    assert metrics.STORE_RUNS_PURGED._value.get() - before == 3
    (audit,) = await st.audit()
    assert audit.actor == "autoflow-operator" and audit.count == 3
    await st.aclose()
