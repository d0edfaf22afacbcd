"""``autoflow validate`` on Integrations: an unknown connector type, and a step whose
Integration is of another connector's type, are found before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoflow.cli import validate

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
