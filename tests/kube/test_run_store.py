"""Job-mode runs with a run store, against the real API server: the CR goes, the history stays.

The operator runs with ``AUTOFLOW_STORE_URL`` (its archive) and ``AUTOFLOW_STORE_SECRET``
(the Secret runner pods get the URL from; the test executor resolves it as the kubelet
does). The store is SQLite in the test's directory, shared by the operator and the runner
processes; the history is read through the store's own interface.
"""

from __future__ import annotations

import asyncio
import base64
import pathlib
from collections.abc import Iterator
from typing import Any

import apiserver as kube
import executor as executor_mod
import objects
import operator_process
import pytest
from objects import step, wait_for

from autoflow.operator import archive
from autoflow.runners import store

BIG = "x" * 20_000  # over the 16 KiB a step output keeps in the status
SECRET = "autoflow-store"


@pytest.fixture
def store_url(operator: operator_process.Operator, tmp_path: pathlib.Path) -> Iterator[str]:
    """The operator restarted with a run store (and back without one afterwards)."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    keys = {"AUTOFLOW_STORE_URL": url, "AUTOFLOW_STORE_SECRET": SECRET}
    operator.env.update(keys)
    operator.restart()
    try:
        yield url
    finally:
        for key in keys:
            operator.env.pop(key, None)
        operator.restart()


def history(url: str, run_id: str) -> store.RunDetail | None:
    async def read() -> store.RunDetail | None:
        opened = await store.open_store(url)
        try:
            return await opened.get_run(run_id)
        finally:
            await opened.aclose()

    return asyncio.run(read())


def test_a_finished_run_is_archived_before_its_ttl_deletes_it(
    apiserver: kube.APIServer,
    namespace: str,
    store_url: str,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET},
        "data": {"url": base64.b64encode(store_url.encode()).decode()},
    }
    apiserver.create(secret, namespace=namespace)
    spec: dict[str, Any] = {
        "steps": [
            {"id": "fetch", "uses": "core.set", "with": {"values": {"body": BIG}}},
            {"id": "wait", "uses": "core.delay", "with": {"duration": "100ms"},
             "needs": ["fetch"]},
        ],
        "runHistory": {"ttlSecondsAfterFinished": 2},
    }  # fmt: skip
    apiserver.create(objects.workflow(**spec), namespace=namespace)
    run = apiserver.create(objects.run(), namespace=namespace)
    done = wait_for(apiserver, run, objects.finished)
    assert objects.phase(done) == "Succeeded"
    uid = done["metadata"]["uid"]
    # The status keeps a marker that says where the full value is.
    marker = step(done, "fetch")["output"]
    assert marker["truncated"] is True and marker["store"] is True
    assert marker["hint"] == f"autoflow runs show {uid}"

    objects.wait_gone(apiserver, done, timeout=30)

    detail = history(store_url, uid)
    assert detail is not None, "the run's history is gone with its CR"
    assert detail.summary.phase == "Succeeded"
    assert detail.summary.workflow == "orders" and detail.summary.namespace == namespace
    steps = {s.step: s for s in detail.steps}
    assert steps["fetch"].output == {"body": BIG}  # the runner's full payload, not the marker
    assert steps["wait"].phase == "Succeeded"


def test_an_archive_cut_short_by_a_restart_is_done_again_once(
    apiserver: kube.APIServer,
    namespace: str,
    store_url: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    apiserver.create(objects.workflow(), namespace=namespace)  # no runHistory: kept
    run = apiserver.create(objects.run(), namespace=namespace)
    done = wait_for(apiserver, run, lambda r: archive.ANNOTATION_ARCHIVED in annotations_of(r))
    uid = done["metadata"]["uid"]
    first = history(store_url, uid)
    assert first is not None and first.summary.phase == "Succeeded"

    # As if the operator stopped between the store write and the annotation.
    operator.stop()
    apiserver.merge_patch(done, {"metadata": {"annotations": {archive.ANNOTATION_ARCHIVED: None}}})
    operator.start()

    wait_for(apiserver, done, lambda r: archive.ANNOTATION_ARCHIVED in annotations_of(r))
    again = history(store_url, uid)
    assert again is not None and again.to_json() == first.to_json()


def annotations_of(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})
