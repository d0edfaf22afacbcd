"""Integration types: an unknown connector type, and a step whose Integration is of another
connector's type, are found by ``autoflow validate`` and ``autoflow run`` before anything
runs, and by the engine when an Integration changed under a running run."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoflow.cli import validate
from autoflow.connectors import sdk
from autoflow.crds import errors, workflow
from autoflow.runners import engine
from autoflow.runners.access import redact
from autoflow.runners.definitions import loader, plan
from autoflow.runners.local import run as local

WORKFLOW = """
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: sync}
spec:
  steps:
    - id: rows
      uses: postgres.query
      integration: warehouse
      with: {sql: "select 1"}
"""


def integration(name: str, type_: str) -> str:
    return (
        "apiVersion: autoflow.dev/v1alpha1\nkind: Integration\n"
        f"metadata: {{name: {name}}}\nspec: {{type: {type_}}}\n"
    )


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_an_integration_of_an_unknown_type_names_it_and_the_known_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "fax.yaml", integration("fax", "telefax"))

    assert validate.main([path], "text") == 1

    err = capsys.readouterr().err
    assert f"file {path!r}" in err or path in err
    assert "Integration/fax" in err and "spec.type" in err
    assert "'telefax', which no installed connector provides" in err
    assert "postgres" in err and "http" in err


def test_a_step_naming_an_integration_of_another_type_is_an_error_across_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = write(tmp_path, "wf.yaml", WORKFLOW)
    redis = write(tmp_path, "warehouse.yaml", integration("warehouse", "redis"))

    assert validate.main([wf, redis], "text") == 1

    err = capsys.readouterr().err
    assert "step 'rows'" in err and "field 'integration'" in err
    assert "integration 'warehouse' is of type 'redis', but postgres.query needs" in err


def test_matching_types_validate_and_an_absent_integration_is_not_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = write(tmp_path, "wf.yaml", WORKFLOW)
    pg = write(tmp_path, "warehouse.yaml", integration("warehouse", "postgres"))

    assert validate.main([wf, pg], "text") == 0
    out = capsys.readouterr().out
    assert "Workflow/sync (1 step)" in out and "Integration/warehouse" in out
    # Integrations usually live apart from the Workflow (another file, the cluster).
    assert validate.main([wf], "text") == 0


def test_autoflow_run_refuses_an_integration_of_another_type_before_running(
    tmp_path: Path,
) -> None:
    wf = write(tmp_path, "wf.yaml", WORKFLOW)
    redis = write(tmp_path, "warehouse.yaml", integration("warehouse", "redis"))

    with pytest.raises(errors.ValidationError) as caught:
        local.prepare([wf, redis], given_inputs={}, from_text=False, env={})

    (problem,) = caught.value.problems
    assert (problem.where.file, problem.where.step) == (wf, "rows")
    assert problem.where.field == "integration"
    assert "is of type 'redis', but postgres.query needs" in problem.message


def test_autoflow_run_names_the_step_and_field_of_an_integration_not_given(
    tmp_path: Path,
) -> None:
    wf = write(tmp_path, "wf.yaml", WORKFLOW)

    with pytest.raises(errors.ValidationError) as caught:
        local.prepare([wf], given_inputs={}, from_text=False, env={})

    (problem,) = caught.value.problems
    assert (problem.where.file, problem.where.step) == (wf, "rows")
    assert problem.where.field == "integration"
    assert "integration 'warehouse' is not in the files given" in problem.message


def test_validate_given_integration_files_reports_one_that_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = write(tmp_path, "wf.yaml", WORKFLOW)
    other = write(tmp_path, "crm.yaml", integration("crm", "http"))

    assert validate.main([wf, other], "text") == 1

    err = capsys.readouterr().err
    assert f"{wf}:9, Workflow/sync, step 'rows', field 'integration'" in err
    assert "integration 'warehouse' is not in the files given" in err


class ChangedType:
    """A provider whose Integration changed type after the run was validated (in a cluster,
    someone edits it while runs are in flight)."""

    async def get(self, name: str, redactor: redact.Redactor) -> sdk.IntegrationInfo:
        return sdk.IntegrationInfo(name, "redis", {}, sdk.NoSecrets("rows"))


async def test_the_engine_fails_a_step_whose_integration_changed_type_without_retrying() -> None:
    wf = loader.load_text(
        WORKFLOW.replace("with:", "retry: {maxAttempts: 3, initialDelay: 10ms}\n      with:")
    )[0]
    assert isinstance(wf, workflow.Workflow)
    run = engine.Run(plan.compile_workflow(wf), run_id="r-1", inputs={}, integrations=ChangedType())

    result = await run.execute()

    assert result.phase == "Failed"
    rows = result.steps["rows"]
    assert rows.attempts == 1
    assert "integration 'warehouse' is of type 'redis', but postgres.query needs" in (
        rows.error or ""
    )
