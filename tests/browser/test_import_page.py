"""The n8n import page: upload an export from the corpus, read the report, save, find it listed.

The export is ``tests/n8n_corpus/github-jira.json`` (two credentials: two Integration stubs);
the converter is the real one behind ``POST /api/import/n8n``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml
from playwright.sync_api import Page, expect

Shot = Callable[[Page, str], None]
CORPUS = Path(__file__).resolve().parents[1] / "n8n_corpus"


def test_an_uploaded_export_is_reported_saved_and_listed(
    page: Page, workspace: Path, screenshot: Shot
) -> None:
    page.get_by_role("link", name="Import n8n").click()
    expect(page).to_have_url(re.compile(r"#/import$"), timeout=30_000)

    page.get_by_label("n8n workflow JSON").fill('{"name": "not an export"}')
    page.get_by_role("button", name="Convert").click()
    expect(page.get_by_role("alert")).to_contain_text("Not an n8n workflow export")

    page.get_by_label("Upload an n8n export").set_input_files(CORPUS / "github-jira.json")
    expect(page.get_by_label("n8n workflow JSON")).to_have_value(re.compile(r"GitHub bugs to Jira"))
    page.get_by_role("button", name="Convert").click()
    expect(page.get_by_test_id("import-summary")).to_contain_text(
        "github-bugs-to-jira: 3 converted, 2 approximated, 0 not converted"
    )
    report = page.get_by_role("table", name="Import report")
    jira = report.get_by_role("row").filter(has_text="Create Jira issue")
    expect(jira).to_have_attribute("data-status", "approximated")
    expect(jira).to_contain_text("createJiraIssue")
    expect(jira).to_contain_text("check that projectKey and issueType")
    assert not list(workspace.glob("*.yaml"))  # converting saves nothing
    screenshot(page, "import")

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Saved Workflow github-bugs-to-jira and the Integrations jira-cloud, github-bot"
    )
    shown = page.get_by_label("Imported YAML").inner_text()
    saved = (workspace / "github-bugs-to-jira.yaml").read_text()
    assert shown.startswith(saved)  # the Workflow's document as converted, comments and all
    assert saved.startswith("# Imported from n8n")
    kinds = {
        (d["kind"], d["metadata"]["name"])
        for p in workspace.glob("*.yaml")
        for d in yaml.safe_load_all(p.read_text())
    }
    assert kinds == {
        ("Workflow", "github-bugs-to-jira"),
        ("Integration", "jira-cloud"),
        ("Integration", "github-bot"),
    }

    page.get_by_role("link", name="Workflows", exact=True).click()
    page.get_by_role("link", name="github-bugs-to-jira").click()
    expect(page).to_have_url(
        re.compile(r"#/workflows/default/github-bugs-to-jira$"), timeout=30_000
    )
    expect(page.locator(".react-flow__node")).to_have_count(4)
