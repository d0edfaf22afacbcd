"""Checking that a secret stays out of everything a run shows, for the connectors' tests.

``run_locally(directory, manifests, secrets)`` runs a Workflow in this process as
``autoflow run`` does (Integrations from the manifests, secrets from a ``--secrets`` file, a
journal in ``directory``), with every log record captured at DEBUG. What it returns is all a
user could see of the run: the result as ``--output json`` prints it, each step's error, the
log lines and the journal file::

    manifests = leaks.manifests("db", "postgres", {...}, [{"id": "echo", ...}])
    shown = await leaks.run_locally(tmp_path, manifests, {"db": {"password": SECRET}})
    assert leaks.found(shown.text, SECRET) == []
    assert shown.result.steps["echo"].output == ...

``SECRET`` is a credential whose raw, URL-encoded, form-encoded and JSON-encoded forms all
differ, so a redactor that masks only one of them is caught; ``forms`` spells them out for a
test server to echo back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from autoflow.runners import engine
from autoflow.runners.local import run as local

SECRET = 'Pa55 w/rd+&"q@x'


def manifests(
    name: str, type_: str, settings: Mapping[str, Any], steps: list[dict[str, Any]]
) -> str:
    """An Integration ``name`` and a Workflow ``echo`` with these steps, as YAML documents."""
    integration = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Integration",
        "metadata": {"name": name},
        "spec": {"type": type_, "settings": dict(settings)},
    }
    workflow = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "echo"},
        "spec": {"steps": steps},
    }
    return f"{json.dumps(integration)}\n---\n{json.dumps(workflow)}\n"


def forms(secret: str) -> dict[str, str]:
    """The forms a remote may echo a secret in, by name."""
    return {
        "raw": secret,
        "url-encoded": urllib.parse.quote(secret, safe=""),
        "form-encoded": urllib.parse.quote_plus(secret),
        "json-encoded": json.dumps(secret)[1:-1],
    }


def found(text: str, secret: str) -> list[str]:
    """The names of the forms of ``secret`` that appear in ``text``."""
    return [name for name, form in forms(secret).items() if form in text]


@dataclasses.dataclass(frozen=True)
class Shown:
    result: engine.RunResult
    logs: list[str]
    journal: str

    @property
    def text(self) -> str:
        """Everything at once: the JSON result, every step error, log line and journal line."""
        errors = [f"{s.error} {s.message}" for s in self.result.steps.values()]
        return "\n".join([json.dumps(self.result.to_json()), *errors, *self.logs, self.journal])


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def run_locally(
    directory: Path, manifests: str, secrets: Mapping[str, Mapping[str, str]]
) -> Shown:
    """Run the one Workflow in ``manifests`` (YAML documents) with these Integration secrets."""
    (directory / "run.yaml").write_text(manifests)
    (directory / "secrets.json").write_text(json.dumps(secrets))
    journal_dir = directory / "journal"
    with _captured() as capture:
        run = local.prepare(
            [str(directory / "run.yaml")],
            given_inputs={},
            from_text=False,
            journal_dir=str(journal_dir),
            secrets_file=str(directory / "secrets.json"),
            env={},
        )
        try:
            result = await run.execute()
        finally:
            await run.limiter.aclose()
    journal = "\n".join(p.read_text() for p in sorted(journal_dir.glob("*.jsonl")))
    return Shown(result, capture.lines, journal)


@contextlib.contextmanager
def _captured() -> Iterator[_Capture]:
    """Every record of the ``autoflow`` loggers, at DEBUG, while the block runs: what a run
    logs (``runners.logs`` shows those loggers and no others)."""
    capture, root = _Capture(), logging.getLogger("autoflow")
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


def lines_with(text: str, secret: str) -> Iterator[str]:
    """The lines of ``text`` holding any form of ``secret``, for an assertion's message."""
    return (line for line in text.splitlines() if found(line, secret))
