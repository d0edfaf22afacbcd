"""``autoflow ai draft`` and ``autoflow ai explain`` as a person runs them, against the local
OpenAI Chat Completions server (``tests/saas/openai_api.py``) through OPENAI_BASE_URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import test_assistant as answers
from saas import openai_api

from autoflow.webui.assistant import draft, schema

ROOT = Path(__file__).resolve().parent.parent

INTEGRATIONS = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {name: chat}
spec: {type: slack, secretRef: {name: chat-credentials, keys: [token]}}
"""


def autoflow(service: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OPENAI_API_KEY": openai_api.API_KEY,
        "OPENAI_BASE_URL": service.base_url,
        "AUTOFLOW_AI_PROVIDER": "openai",
    }
    return subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", "ai", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_draft_prints_the_workflow_and_a_diff_and_writes_nothing(
    saas: Callable[[type[Any]], Any], tmp_path: Path
) -> None:
    service = saas(openai_api.OpenAI)
    source = tmp_path / "flow.yaml"
    before = draft.to_yaml(schema.to_manifest(answers.VALID))
    source.write_text(before)
    (tmp_path / "integrations.yaml").write_text(INTEGRATIONS)
    changed = answers.answer(
        answers.NOTIFY,
        {
            **answers.step("tell", "slack.postMessage", channel="#billing", text="failed"),
            "integration": "chat",
        },
        inputs={"id": "string"},
    )
    service.answer(answers.CYCLE, changed)
    done = autoflow(
        service,
        "draft",
        "also post to #billing",
        "--from",
        str(source),
        "--integrations",
        str(tmp_path / "integrations.yaml"),
    )
    assert done.returncode == 0, done.stderr
    assert "uses: slack.postMessage" in done.stdout
    assert "--- a/flow.yaml\n+++ b/flow.yaml\n" in done.stdout
    assert "+  - id: tell" in done.stdout
    assert "valid after 1 repair round" in done.stderr and "nothing was applied" in done.stderr
    assert source.read_text() == before
    assert "chat (type slack)" in json.dumps(service.script.bodies[0])

    service.answer(answers.VALID)
    target = tmp_path / "new.yaml"
    done = autoflow(service, "draft", "log it", "--write", str(target), "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"] is True
    assert "name: payment-failed" in target.read_text()


def test_draft_fails_clearly_when_no_answer_validates(
    saas: Callable[[type[Any]], Any], tmp_path: Path
) -> None:
    service = saas(openai_api.OpenAI)
    service.answer(*[answers.CYCLE] * 3)
    target = tmp_path / "new.yaml"
    done = autoflow(service, "draft", "log it", "--repairs", "2", "--write", str(target))
    assert done.returncode == 1
    assert "no valid Workflow after 2 repair rounds" in done.stderr
    assert "cycle" in done.stderr
    assert not target.exists()


def test_explain(saas: Callable[[type[Any]], Any], tmp_path: Path) -> None:
    service = saas(openai_api.OpenAI)
    source = tmp_path / "flow.yaml"
    source.write_text(draft.to_yaml(schema.to_manifest(answers.VALID)))
    service.answer("When a payment fails, it writes a line to the log.")
    done = autoflow(service, "explain", str(source))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "When a payment fails, it writes a line to the log.\n"
