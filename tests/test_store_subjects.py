"""Data subjects and secret inputs wherever a run starts: ``autoflow run --store`` and the
Job runner evaluate the Workflow's ``dataSubject`` with one function
(``runners.definitions.inputs.data_subject``), the operator refuses a run whose inputs give
none, its archive stores the subject of a run the runner never wrote; inputs declared
``secret: true`` are stored as a redaction marker and a resume from the store asks for them
again. Against SQLite, through the store's public interface.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from autoflow.crds import errors, workflow
from autoflow.operator import archive, runs
from autoflow.runners import store
from autoflow.runners.definitions import inputs
from autoflow.runners.job import journal as journal_mod
from autoflow.runners.job import payloads
from autoflow.runners.local import run as local_run

KEY = b"subject-test-key"
UID = "0d9c1f7e-3b1a-4c55-9a0e-6f2b8c7d1e00"
WHERE = errors.Where(resource="WorkflowRun/signup-1")
SPEC: dict[str, Any] = {
    "dataSubject": "${ inputs.email }",
    "inputs": {
        "email": {"type": "string"},
        "token": {"type": "string", "secret": True},
    },
    "steps": [{"id": "greet", "uses": "core.noop"}],
}


def spec(**changes: Any) -> workflow.WorkflowSpec:
    return workflow.WorkflowSpec.model_validate({**SPEC, **changes})


def test_the_data_subject_is_the_expression_over_the_inputs() -> None:
    assert inputs.data_subject(spec(), {"email": "ann@mail.test"}, WHERE) == "ann@mail.test"
    assert inputs.data_subject(spec(dataSubject=None), {"email": "x"}, WHERE) is None
    with pytest.raises(errors.InputError, match="dataSubject must give a non-empty text"):
        inputs.data_subject(spec(), {"email": None}, WHERE)
    with pytest.raises(errors.InputError, match="dataSubject") as failed:
        inputs.data_subject(spec(dataSubject="${ inputs.email.nope() }"), {"email": "a"}, WHERE)
    assert str(failed.value).startswith("WorkflowRun/signup-1")


def test_secret_inputs_are_named_and_redacted() -> None:
    assert inputs.secret_names(spec().inputs) == ["token"]
    assert inputs.redact({"email": "a", "token": "t"}, ["token"]) == {
        "email": "a",
        "token": {"redacted": True},
    }


def test_a_run_whose_inputs_give_no_subject_is_refused_by_the_operator() -> None:
    wf = {"metadata": {"name": "signup", "generation": 1}, "spec": SPEC}
    run: dict[str, Any] = {
        "metadata": {"name": "signup-1", "namespace": "ops", "uid": UID, "generation": 1},
        "spec": {"workflowRef": {"name": "signup"}, "inputs": {"email": ""}},
        "status": {},
    }
    status = runs.start_status(run, wf, [])
    assert status["phase"] == "Failed"
    (cond,) = status["conditions"]
    assert cond["reason"] == "InvalidInputs" and "dataSubject" in cond["message"]
    run["spec"]["inputs"] = {"email": "ann@mail.test"}
    assert runs.start_status(run, wf, [])["phase"] == "Pending"


def header(inputs_: dict[str, Any]) -> dict[str, Any]:
    return {"t": "run", "runId": "signup-1", "workflow": "signup", "inputs": inputs_}


def test_a_resume_from_the_store_asks_for_the_secret_inputs_again() -> None:
    started = header({"email": "ann@mail.test", "token": {"redacted": True}})
    declared = spec().inputs
    with pytest.raises(errors.InputError) as refused:
        local_run.resumed_inputs(declared, started, {}, WHERE, from_text=True)
    message = str(refused.value)
    assert "secret input 'token'" in message and "--input token=..." in message
    values = local_run.resumed_inputs(declared, started, {"token": "t2"}, WHERE, from_text=True)
    assert values == {"email": "ann@mail.test", "token": "t2"}
    with pytest.raises(errors.InputError, match="started with other inputs"):
        local_run.resumed_inputs(
            declared, started, {"token": "t2", "email": "bob@mail.test"}, WHERE, from_text=True
        )


class Patches:
    """The API calls the status journal makes, remembered."""

    async def patch(self, url: str, body: Any) -> dict[str, Any]:
        return {}


async def test_the_job_runner_stores_the_subject_so_the_run_can_be_erased(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(store.SUBJECT_KEY_ENV, KEY.decode())
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run = {"metadata": {"namespace": "ops", "name": "signup-1", "uid": UID}, "status": {}}
    given = {"email": "Ann@Mail.test", "token": "tok-secret"}
    head = {"t": "run", "runId": UID, "workflow": "signup", "specHash": "h", "inputs": given}
    status = journal_mod.StatusJournal(Patches(), run, head, in_store=True)  # type: ignore[arg-type]
    tee = payloads.journal_for(
        status,
        {payloads.STORE_ENV: url},
        namespace="ops",
        resumed=False,
        spec=SPEC,
        subject=inputs.data_subject(spec(), given, WHERE),
        secret_inputs=inputs.secret_names(spec().inputs),
    )
    tee.append({**head, "startedAt": 1000.0})
    tee.append({"t": "end", "phase": "Succeeded", "outputs": None, "error": None, "at": 1001.0})
    await tee.flush()
    assert isinstance(tee, payloads.Tee)
    await tee.aclose()
    opened = await store.open_store(url, subject_key=KEY)
    try:
        detail = await opened.get_run(UID)
        assert detail is not None and detail.inputs["token"] == {"redacted": True}
        assert await opened.get_spec("h") == SPEC
        assert await opened.erase("ann@mail.test") == 1
        assert await opened.get_run(UID) is None
    finally:
        await opened.aclose()


async def test_the_archive_stores_the_subject_and_redacts_secret_inputs(
    tmp_path: pathlib.Path,
) -> None:
    run = {
        "metadata": {"name": "signup-1", "namespace": "ops", "uid": UID,
                     "creationTimestamp": "2026-01-31T12:00:00Z",
                     "labels": {runs.LABEL_WORKFLOW: "signup"}},
        "spec": {"workflowRef": {"name": "signup"},
                 "inputs": {"email": "ann@mail.test", "token": "tok-secret"}},
        "status": {"phase": "Succeeded", "workflowSnapshot": SPEC,
                   "startedAt": "2026-01-31T12:00:01Z", "finishedAt": "2026-01-31T12:00:02Z"},
    }  # fmt: skip
    (head, *_) = archive.records_of(run, None)
    assert head["subject"] == "ann@mail.test" and head["secretInputs"] == ["token"]
    opened = await store.open_store(f"sqlite:///{tmp_path / 'runs.db'}", subject_key=KEY)
    try:
        await opened.record(UID, archive.records_of(run, None))
        detail = await opened.get_run(UID)
        assert detail is not None and detail.inputs["token"] == {"redacted": True}
        assert await opened.erase("ANN@mail.test") == 1
    finally:
        await opened.aclose()
