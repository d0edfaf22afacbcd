"""Job-mode runs and the run store: full payloads from the runner, the operator's archive.

Grouped by concern: what a runner Job is given (the store URL from a Secret, never a value);
the runner's journal in two places (``runners.job.payloads``: the status decides, the store
follows and may fail); the archive of a finished run (``operator.archive``: what the store
lacks, idempotent, never replacing full payloads by markers). Against SQLite, through the
store's public interface; the same against the API server is in tests/kube.
"""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import pytest

from autoflow.operator import archive, runs, sweeper
from autoflow.operator import settings as settings_mod
from autoflow.runners import kube, store
from autoflow.runners.job import journal as journal_mod
from autoflow.runners.job import payloads

UID = "5b1f0c2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c"
SETTINGS = settings_mod.Settings(runner_image="ghcr.io/autoflow/autoflow:test")
BIG = "x" * (journal_mod.MAX_STEP_OUTPUT_BYTES + 100)


def finished_run(**annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {
            "name": "triage-1",
            "namespace": "ops",
            "uid": UID,
            "resourceVersion": "7",
            "creationTimestamp": "2026-01-31T12:00:00Z",
            "labels": {runs.LABEL_WORKFLOW: "triage"},
            "annotations": dict(annotations),
        },
        "spec": {"workflowRef": {"name": "triage"}, "inputs": {"order": 42}},
        "status": {
            "phase": "Succeeded",
            "startedAt": "2026-01-31T12:00:01Z",
            "finishedAt": "2026-01-31T12:00:09Z",
            "steps": [
                {
                    "id": "fetch",
                    "phase": "Succeeded",
                    "attempts": 1,
                    "startedAt": "2026-01-31T12:00:01Z",
                    "finishedAt": "2026-01-31T12:00:05Z",
                    "output": {"truncated": True, "bytes": 20000, "preview": "{"},
                    "outputTruncated": True,
                },
                {
                    "id": "notify",
                    "phase": "Succeeded",
                    "attempts": 1,
                    "startedAt": "2026-01-31T12:00:05Z",
                    "finishedAt": "2026-01-31T12:00:09Z",
                    "output": {"sent": True},
                },
            ],
            "outputs": {"ok": True},
            "result": {"phase": "Succeeded", "error": "", "runId": UID},
        },
    }


class FakeClient:
    """The API calls the archive and the status journal make, remembered."""

    def __init__(self, job: dict[str, Any] | None = None) -> None:
        self.patches: list[tuple[str, Any]] = []
        self.deleted: list[str] = []
        self.job = job

    async def get_or_none(self, url: str) -> dict[str, Any] | None:
        assert url == kube.paths.job("ops", runs.job_name(finished_run()))
        return self.job

    async def patch(self, url: str, body: Any) -> dict[str, Any]:
        self.patches.append((url, body))
        return {}

    async def delete(self, url: str, body: Any = None) -> Any:
        self.deleted.append(url)
        return {}


@pytest.fixture
async def sqlite_store(tmp_path: pathlib.Path) -> Any:
    opened = await store.open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    yield opened
    await opened.aclose()


# -- what a runner Job is given ----------------------------------------------------------------


def _store_env(settings: settings_mod.Settings) -> list[dict[str, Any]]:
    run = finished_run()
    run["status"] = {"workflowSnapshot": {"steps": [{"id": "a", "uses": "core.noop"}]}}
    (container,) = runs.render_job(run, settings)["spec"]["template"]["spec"]["containers"]
    return [e for e in container["env"] if e["name"].startswith("AUTOFLOW_STORE")]


def test_runner_jobs_get_the_store_url_from_a_secret_never_as_a_value() -> None:
    assert _store_env(SETTINGS) == []
    # The operator's own URL (with its password) is never written into a Job.
    own = SETTINGS.model_copy(update={"store_url": "postgresql://af:secret@db:5432/af"})
    assert _store_env(own) == []
    secret = own.model_copy(update={"store_secret": "autoflow-store", "store_secret_key": "uri"})
    assert _store_env(secret) == [
        {
            "name": "AUTOFLOW_STORE_URL",
            "valueFrom": {
                "secretKeyRef": {"name": "autoflow-store", "key": "uri", "optional": True}
            },
        }
    ]
    # The key data subjects are hashed with, from a Secret as well (the chart's
    # store.subjectKey): the runner stores such a run under that person's hash.
    keyed = secret.model_copy(update={"store_subject_key_secret": "autoflow-store"})
    assert _store_env(keyed)[1] == {
        "name": "AUTOFLOW_STORE_SUBJECT_KEY",
        "valueFrom": {
            "secretKeyRef": {"name": "autoflow-store", "key": "subjectKey", "optional": True}
        },
    }


# -- the runner's journal in two places ---------------------------------------------------------


def _status_journal(client: FakeClient, *, in_store: bool) -> journal_mod.StatusJournal:
    run = {"metadata": {"namespace": "ops", "name": "triage-1", "uid": UID}, "status": {}}
    header = {"t": "run", "runId": UID, "workflow": "triage", "specHash": "h", "inputs": {}}
    return journal_mod.StatusJournal(client, run, header, in_store=in_store)  # type: ignore[arg-type]


def _records() -> list[dict[str, Any]]:
    return [
        {"t": "run", "runId": UID, "workflow": "triage", "specHash": "h", "inputs": {"a": 1},
         "startedAt": 1000.0},
        {"t": "start", "step": "fetch", "attempt": 1},
        {"t": "step", "step": "fetch", "phase": "Succeeded", "output": {"body": BIG},
         "attempts": 1, "startedAt": 1000.0, "finishedAt": 1001.0},
        {"t": "end", "phase": "Succeeded", "outputs": {"ok": True}, "error": None, "at": 1002.0},
    ]  # fmt: skip


async def test_the_runner_keeps_the_summary_in_the_status_and_the_full_output_in_the_store(
    tmp_path: pathlib.Path,
) -> None:
    client = FakeClient()
    status = _status_journal(client, in_store=True)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    tee = payloads.journal_for(status, {payloads.STORE_ENV: url}, namespace="ops", resumed=False)
    assert isinstance(tee, payloads.Tee)
    for record in _records():
        tee.append(record)
        await tee.flush()
    await tee.aclose()

    written: dict[str, Any] = {}
    for _, body in client.patches:
        written.update(body["status"])
    marker = next(s for s in written["steps"] if s["id"] == "fetch")["output"]
    assert marker["truncated"] is True
    assert marker["store"] is True and marker["hint"] == f"autoflow runs show {UID}"
    opened = await store.open_store(url)
    try:
        detail = await opened.get_run(UID)
    finally:
        await opened.aclose()
    assert detail is not None
    assert detail.summary.namespace == "ops" and detail.summary.trigger == payloads.JOB_TRIGGER
    assert detail.summary.phase == "Succeeded"
    assert detail.steps[0].output == {"body": BIG}  # the full value, not the marker


def test_without_a_store_the_runner_journals_into_the_status_alone() -> None:
    status = _status_journal(FakeClient(), in_store=False)
    assert payloads.journal_for(status, {}, namespace="ops", resumed=False) is status
    status.append(_records()[0])
    status.append(_records()[2])
    (step,) = status._steps.values()
    assert "store" not in step["output"]  # no hint at a store that is not there


async def test_a_store_that_cannot_be_reached_does_not_fail_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(payloads, "STORE_RETRY_SECONDS", 0.2)
    client = FakeClient()
    status = _status_journal(client, in_store=True)
    unreachable = "postgresql://af:secret@127.0.0.1:1/af?connect_timeout=1"
    tee = payloads.journal_for(
        status, {payloads.STORE_ENV: unreachable}, namespace="ops", resumed=False
    )
    assert isinstance(tee, payloads.Tee)
    for record in _records():
        tee.append(record)
        await tee.flush()  # never raises for the store
    await tee.aclose()
    assert tee.store_errors == 1
    assert client.patches[-1][1]["status"]["result"]["phase"] == "Succeeded"
    written = {}
    for _, body in client.patches:
        written.update(body["status"])
    (fetch,) = [s for s in written["steps"] if s["id"] == "fetch"]
    assert fetch["output"]["truncated"] is True
    assert "store" not in fetch["output"]  # the store never got it: no hint pointing there


# -- the operator's archive ----------------------------------------------------------------------


def test_the_archive_of_a_run_the_store_never_saw_is_its_whole_status() -> None:
    records = archive.records_of(finished_run(), None)
    assert [r["t"] for r in records] == ["run", "step", "step", "end"]
    assert records[0]["runId"] == UID and records[0]["namespace"] == "ops"
    assert records[0]["inputs"] == {"order": 42}
    assert records[-1]["phase"] == "Succeeded" and records[-1]["outputs"] == {"ok": True}


async def test_archiving_keeps_the_full_payloads_the_runner_wrote(sqlite_store: Any) -> None:
    full = {"body": BIG}
    await sqlite_store.record(
        UID,
        [
            {"t": "run", "runId": UID, "workflow": "triage", "namespace": "ops",
             "trigger": "job", "startedAt": 1000.0},
            {"t": "step", "step": "fetch", "phase": "Succeeded", "output": full,
             "attempts": 1, "startedAt": 1000.0, "finishedAt": 1001.0},
        ],
    )  # fmt: skip
    client = FakeClient()
    archiver = archive.Archiver(client, sqlite_store)  # type: ignore[arg-type]

    assert await archiver.ensure(finished_run())

    detail = await sqlite_store.get_run(UID)
    steps = {s.step: s for s in detail.steps}
    assert steps["fetch"].output == full  # not the status's marker
    assert steps["notify"].output == {"sent": True}
    assert detail.summary.phase == "Succeeded"
    ((url, body),) = client.patches
    assert url == kube.paths.run("ops", "triage-1")
    assert (
        body["metadata"]["uid"] == UID
        and archive.ANNOTATION_ARCHIVED in body["metadata"]["annotations"]
    )
    # Again, as after an operator restart before the annotation: nothing changes.
    assert await archiver.ensure(finished_run())
    assert (await sqlite_store.get_run(UID)).to_json() == detail.to_json()


async def test_a_run_is_deleted_only_once_it_is_archived(sqlite_store: Any) -> None:
    client = FakeClient()
    archived = finished_run(**{archive.ANNOTATION_ARCHIVED: "2026-01-31T12:01:00Z"})
    archiver = archive.Archiver(client, sqlite_store)  # type: ignore[arg-type]
    assert await sweeper.delete_run(client, archived, archiver)  # type: ignore[arg-type]
    assert client.patches == [] and len(client.deleted) == 1  # already archived: deleted

    client = FakeClient()
    failing = archive.Archiver(client, Unreachable())  # type: ignore[arg-type]
    kept = await sweeper.delete_run(client, finished_run(), failing)  # type: ignore[arg-type]
    assert kept is False and client.deleted == [] and client.patches == []


def runner_job(**status: Any) -> dict[str, Any]:
    owner = {"kind": "WorkflowRun", "name": "triage-1", "uid": UID}
    return {
        "metadata": {"name": runs.job_name(finished_run()), "ownerReferences": [owner]},
        "spec": {},
        "status": status,
    }


def test_a_run_is_archived_once_its_runner_stopped() -> None:
    run = finished_run()
    complete = [{"type": "Complete", "status": "True"}]
    assert archive.runner_writing(run, runner_job(active=1))
    assert not archive.runner_writing(run, runner_job(conditions=complete))
    assert not archive.runner_writing(run, None)
    other = runner_job(active=1)
    other["metadata"]["ownerReferences"][0]["uid"] = "an-earlier-run-of-the-name"
    assert not archive.runner_writing(run, other)
    suspended = runner_job(active=0, terminating=0)
    suspended["spec"]["suspend"] = True
    assert not archive.runner_writing(run, suspended)


async def test_the_archive_waits_for_the_runners_last_writes(sqlite_store: Any) -> None:
    # The status says finished before the runner's last store writes: archiving now could
    # write markers over the full values that land after it.
    client = FakeClient(job=runner_job(active=1))
    archiver = archive.Archiver(client, sqlite_store)  # type: ignore[arg-type]
    assert not await archiver.ensure(finished_run())
    assert await sqlite_store.get_run(UID) is None and client.patches == []
    client.job = runner_job(conditions=[{"type": "Complete", "status": "True"}])
    assert await archiver.ensure(finished_run())
    assert (await sqlite_store.get_run(UID)).summary.phase == "Succeeded"


class Unreachable:
    async def get_run(self, run_id: str) -> None:
        raise store.StoreUnavailable("cannot reach the run store at postgresql://af:***@db/af")


class SlowClient(FakeClient):
    """Counts the archives in flight: each one's Job read takes a moment."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = self.most = 0

    async def get_or_none(self, url: str) -> dict[str, Any] | None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.01)
        finally:
            self.in_flight -= 1
        return None


async def test_archives_at_start_up_are_bounded_in_concurrency(sqlite_store: Any) -> None:
    # kopf lists every finished run at start-up, each in a handler of its own: the store and
    # the API server see at most AUTOFLOW_ARCHIVE_CONCURRENCY archives at once.
    client = SlowClient()
    archiver = archive.Archiver(client, sqlite_store, 3)  # type: ignore[arg-type]
    many = []
    for n in range(12):
        run = finished_run()
        run["metadata"] = {**run["metadata"], "uid": f"run-{n}", "name": f"triage-{n}"}
        many.append(run)
    assert all(await asyncio.gather(*(archiver.ensure(r) for r in many)))
    assert client.most == 3
    assert len((await sqlite_store.list_runs(limit=100)).runs) == 12
    assert settings_mod.Settings().archive_concurrency == 4
