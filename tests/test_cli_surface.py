"""The ``autoflow`` command's surface: version, help on every option, usage errors that show
the subcommand's usage, ``-o/--output`` on every command that prints data, and the
connector listings a person reads at a terminal.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoflow import __version__
from autoflow.cli import main

ROOT = Path(__file__).resolve().parent.parent


def autoflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoflow.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def parsers(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[argparse.ArgumentParser, argparse._SubParsersAction[Any] | None]]:
    """Every parser in the tree, with the subparsers action that holds its subcommands."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield parser, subs[0] if subs else None
    for sub in subs:
        for child in sub.choices.values():
            yield from parsers(child)


def test_version() -> None:
    result = autoflow("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"autoflow {__version__}"


def test_every_option_and_subcommand_has_help() -> None:
    missing = []
    for parser, sub in parsers(main._parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
        if sub is not None:
            helped = {a.dest for a in sub._choices_actions if a.help}
            missing += [f"{parser.prog} {n}" for n in sub.choices if n not in helped]
    assert missing == []


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("run", ["examples/order-triage.yaml", "--bogus"]),
        ("validate", ["examples/order-triage.yaml", "--bogus"]),
        ("connectors show", ["http", "--bogus"]),
        ("connectors list", ["--bogus"]),
        ("integrations test", ["x.yaml", "--bogus"]),
        ("integrations authorize", ["x.yaml", "--bogus"]),
        ("crds", ["extra"]),
    ],
)
def test_an_unknown_option_shows_the_subcommands_usage(command: str, args: list[str]) -> None:
    result = autoflow(*command.split(), *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: autoflow {command} "), result.stderr
    assert f"autoflow {command}: error: unrecognized arguments: {args[-1]}" in result.stderr


def test_every_command_that_prints_data_takes_output_json() -> None:
    tree = {p.prog: p for p, _ in parsers(main._parser())}
    for prog in (
        "autoflow validate",
        "autoflow run",
        "autoflow crds",
        "autoflow schema",
        "autoflow connectors list",
        "autoflow connectors show",
        "autoflow integrations test",
    ):
        (option,) = [a for a in tree[prog]._actions if "--output" in a.option_strings]
        assert "-o" in option.option_strings
        assert option.choices is not None and "json" in option.choices, prog


def test_connectors_show_prints_a_table_and_json_on_request() -> None:
    text = autoflow("connectors", "show", "http")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("http: ")
    assert not text.stdout.lstrip().startswith("{")
    assert len(lines) < 60
    header = next(i for i, line in enumerate(lines) if line.startswith("http.request"))
    assert lines[header + 1].split() == ["PARAMETER", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"]
    url = next(line for line in lines if line.split()[:1] == ["url"])
    assert url.split()[1:3] == ["string", "yes"]
    method = next(line for line in lines if line.split()[:1] == ["method"])
    assert "GET|POST" in method and '"GET"' in method
    assert any(line.strip().startswith("output: status (integer)") for line in lines)
    doc = json.loads(autoflow("connectors", "show", "http", "-o", "json").stdout)
    assert doc["actions"][0]["params"]["properties"]["url"]["type"] == "string"


def test_connectors_list_columns_stay_aligned_and_json_on_request() -> None:
    result = autoflow("connectors", "list")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    longest = max(len(row.split()[0]) for row in rows)
    assert longest > 16  # long names such as asana.list_project_tasks
    starts = {len(row) - len(row[2 + longest :].lstrip()) for row in rows if len(row.split()) > 1}
    assert starts == {2 + longest + 2}
    doc = json.loads(autoflow("connectors", "list", "-o", "json").stdout)
    http = next(c for c in doc if c["name"] == "http")
    assert http["actions"] == [{"uses": "http.request", "summary": http["actions"][0]["summary"]}]
    assert http["actions"][0]["summary"].startswith("Send an HTTP request")


def test_crds_and_schema_in_the_other_format() -> None:
    crds = json.loads(autoflow("crds", "-o", "json").stdout)
    assert crds["kind"] == "List"
    assert {c["kind"] for c in crds["items"]} == {"CustomResourceDefinition"}
    assert len(crds["items"]) == 4
    as_yaml = yaml.safe_load(autoflow("schema", "http.request", "-o", "yaml").stdout)
    as_json = json.loads(autoflow("schema", "http.request").stdout)
    assert as_yaml == as_json


def test_output_cut_short_by_its_reader_is_no_traceback(tmp_path: Path) -> None:
    """``autoflow ... | head``: the reader leaves early; the command ends quietly."""
    steps = "".join(f"    - id: s{i}\n      uses: nope.x\n" for i in range(3000))
    manifest = tmp_path / "many.yaml"
    manifest.write_text(
        "apiVersion: autoflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: many}\n"
        f"spec:\n  steps:\n{steps}"
    )
    autoflow = Path(sys.executable).parent / "autoflow"
    for args in (["run", str(manifest), "-o", "json"], ["validate", str(manifest), "-o", "json"]):
        cut = subprocess.run(
            ["sh", "-c", '"$0" "$@" | head -c 10 >/dev/null', str(autoflow), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in cut.stderr, cut.stderr
        assert cut.stderr == ""
