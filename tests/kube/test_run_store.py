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
import time
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
SECRET = objects.STORE_SECRET


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


@pytest.fixture
def purging_store(operator: operator_process.Operator, tmp_path: pathlib.Path) -> Iterator[str]:
    """The operator restarted with a run store it purges every second (default: 30 days)."""
    url = f"sqlite:///{tmp_path / 'purged.db'}"
    keys = {
        "AUTOFLOW_STORE_URL": url,
        "AUTOFLOW_STORE_PURGE_INTERVAL_SECONDS": "1",
        "AUTOFLOW_STORE_RETENTION_DAYS": "30",
    }
    with operator.restarted_with(keys):
        yield url


def stored_runs(url: str) -> set[tuple[str, str]]:
    async def read() -> set[tuple[str, str]]:
        opened = await store.open_store(url)
        try:
            return {(r.workflow, r.run_id) for r in (await opened.list_runs(limit=100)).runs}
        finally:
            await opened.aclose()

    return asyncio.run(read())


def test_the_operator_purges_by_each_workflows_retention(
    apiserver: kube.APIServer, namespace: str, purging_store: str
) -> None:
    now = time.time()

    async def seed() -> None:
        opened = await store.open_store(purging_store)
        try:
            for wf, n, age_days in [
                ("orders", 0, 0),
                ("orders", 1, 0),
                ("orders", 2, 0),
                ("other", 0, 40),
                ("other", 1, 1),
            ]:
                run_id = f"{wf}-{n}"
                at = now - age_days * 86400 - n
                await opened.record(
                    run_id,
                    [
                        {
                            "t": "run",
                            "runId": run_id,
                            "workflow": wf,
                            "namespace": namespace,
                            "trigger": "job",
                            "specHash": "h",
                            "inputs": {},
                            "startedAt": at,
                        },
                        {"t": "end", "phase": "Succeeded", "outputs": None, "at": at + 1},
                    ],
                )
        finally:
            await opened.aclose()

    asyncio.run(seed())  # fmt: skip
    # The Workflow's own retention (the newest run) for its runs; the default for the rest.
    apiserver.create(objects.workflow(retention={"maxRuns": 1}), namespace=namespace)
    expected = {("orders", "orders-0"), ("other", "other-1")}
    deadline = time.monotonic() + 30
    while stored_runs(purging_store) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stored_runs(purging_store) == expected


SUBJECT_KEY = "kube-subject-key"


@pytest.fixture
def keyed_store(operator: operator_process.Operator, tmp_path: pathlib.Path) -> Iterator[str]:
    """The operator with a run store and the key data subjects are hashed with; runner Jobs
    get both from the Secret ``SECRET`` of their run's namespace."""
    url = f"sqlite:///{tmp_path / 'keyed.db'}"
    keys = {
        "AUTOFLOW_STORE_URL": url,
        "AUTOFLOW_STORE_SECRET": SECRET,
        "AUTOFLOW_STORE_SUBJECT_KEY": SUBJECT_KEY,
        "AUTOFLOW_STORE_SUBJECT_KEY_SECRET": SECRET,
    }
    with operator.restarted_with(keys):
        yield url


def test_a_cluster_run_is_stored_under_its_data_subject_and_erased_by_it(
    apiserver: kube.APIServer,
    namespace: str,
    keyed_store: str,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    data = {"url": keyed_store, "subjectKey": SUBJECT_KEY}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
    apiserver.create(secret, namespace=namespace)
    spec: dict[str, Any] = {
        "dataSubject": "${ inputs.email }",
        "inputs": {"email": {"type": "string"}, "token": {"type": "string", "secret": True}},
    }
    apiserver.create(objects.workflow(**spec), namespace=namespace)
    given = {"email": "Ann@Mail.test", "token": "tok-kube-secret"}
    run = apiserver.create(objects.run(inputs=given), namespace=namespace)
    done = wait_for(apiserver, run, lambda r: archive.ANNOTATION_ARCHIVED in annotations_of(r))
    uid = done["metadata"]["uid"]

    async def erase() -> tuple[store.RunDetail | None, int, store.RunDetail | None]:
        opened = await store.open_store(keyed_store, subject_key=SUBJECT_KEY.encode())
        try:
            before = await opened.get_run(uid)
            # The runner wrote it (the archive sends no spec): spec, subject, redacted input.
            assert before is not None and await opened.get_spec(before.summary.spec_hash)
            count = await opened.erase("ann@mail.test", actor="dpo")
            return before, count, await opened.get_run(uid)
        finally:
            await opened.aclose()

    before, count, after = asyncio.run(erase())
    assert before is not None and before.summary.phase == "Succeeded"
    assert before.inputs == {"email": "Ann@Mail.test", "token": {"redacted": True}}
    assert count == 1 and after is None
