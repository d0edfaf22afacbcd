"""The assistant panel in the builder, against a local model server.

``autoflow serve`` talks to ``tests/saas/openai_api.py`` (OpenAI Chat Completions with strict
structured outputs) through the environment the assistant reads (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``); the test scripts the model's answers. A person asks in a sentence, sees the
proposal as a diff against the Workflow open in the builder, and only Accept writes the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_assistant as answers
from playwright.sync_api import Page, expect
from saas import openai_api

Shot = Callable[[Page, str], None]

GREET = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: greet
spec:
  steps:
    - id: hello
      uses: core.log
      with:
        message: hello
"""


@pytest.fixture
def model(saas: Callable[[type[Any]], Any]) -> openai_api.OpenAI:
    service: openai_api.OpenAI = saas(openai_api.OpenAI)
    return service


@pytest.fixture
def serve_env(model: openai_api.OpenAI) -> dict[str, str]:
    return {
        "AUTOFLOW_AI_PROVIDER": "openai",
        "OPENAI_API_KEY": openai_api.API_KEY,
        "OPENAI_BASE_URL": model.base_url,
    }


def proposal(message: str) -> dict[str, Any]:
    """The model's answer: greet with a second step that logs ``message``."""
    made = answers.answer(
        answers.step("hello", "core.log", message="hello"),
        answers.step("bye", "core.log", ["hello"], message=message),
    )
    made["metadata"]["name"] = "greet"
    return made


def test_a_proposal_is_shown_as_a_diff_and_saved_only_when_accepted(
    page: Page, workspace: Path, model: openai_api.OpenAI, screenshot: Shot
) -> None:
    path = workspace / "greet.yaml"
    path.write_text(GREET)
    page.reload()
    page.get_by_role("link", name="greet").click()
    expect(page).to_have_url(re.compile(r"#/workflows/default/greet$"), timeout=30_000)
    page.get_by_role("button", name="Assistant").click()
    panel = page.get_by_role("complementary", name="Assistant")

    model.answer(proposal("see you"))
    panel.get_by_label("Describe the automation").fill("say see you after the greeting")
    panel.get_by_role("button", name="Draft").click()
    diff = panel.get_by_label("Proposed diff")
    expect(diff.locator(".add").filter(has_text="- id: bye")).to_have_count(1)
    expect(diff).to_contain_text("see you")
    # the model was asked with the sentence and the Workflow open in the builder
    (asked,) = model.script.bodies
    sent = "\n".join(m["content"] for m in asked["messages"] if m["role"] == "user")
    assert "say see you after the greeting" in sent and "message: hello" in sent
    assert path.read_text() == GREET  # a proposal writes nothing
    screenshot(page, "assistant")

    panel.get_by_role("button", name="Reject").click()
    expect(panel).to_contain_text("the Workflow is unchanged")
    expect(panel.get_by_label("Proposed diff")).to_have_count(0)
    assert path.read_text() == GREET
    expect(page.locator(".react-flow__node")).to_have_count(1)

    model.answer(proposal("goodbye"))
    panel.get_by_role("button", name="Draft").click()
    expect(panel.get_by_label("Proposed diff")).to_contain_text("goodbye")
    panel.get_by_role("button", name="Accept and save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    saved = path.read_text()
    assert "- id: bye" in saved and "message: goodbye" in saved and "see you" not in saved
    expect(page.locator(".react-flow__node")).to_have_count(2)
    assert len(model.script.bodies) == 2
