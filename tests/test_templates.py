"""The template gallery (``examples/templates``): each validates, describes itself for the web
UI's list (title, description, category annotations), is in ``docs/templates.md``, and covers
the families the gallery promises. Those that need only HTTP services run here against the
services' contract servers; the rest run against real servers in
``tests/services/test_templates_run.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpserver
import pytest
import yaml
from n8n_import import run_manifests
from saas import github, jira

from autoflow.cli import validate

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((REPO / "examples" / "templates").glob("*.yaml"))
FAMILIES = {
    "crm-lead-routing": "crm",
    "invoice-reminder": "finance",
    "failed-payment-dunning": "payments",
    "support-triage": "support",
    "nightly-database-report": "reporting",
    "github-jira-sync": "engineering",
    "new-hire-onboarding": "hr",
    "slack-approval": "approvals",
    "webhook-to-database": "data",
    "file-backup": "it",
    "marketing-list-sync": "marketing",
    "incident-escalation": "incidents",
}


def _workflows(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return [d for d in docs if d["kind"] == "Workflow"]


def test_the_gallery_has_every_promised_family() -> None:
    assert {p.stem for p in TEMPLATES} == set(FAMILIES)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_each_template_validates_and_describes_itself(path: Path) -> None:
    _, problems = validate.check_file(str(path), validate.integration_types([str(path)]))
    assert problems == []
    first = _workflows(path)[0]
    notes = first["metadata"]["annotations"]
    assert notes["autoflow.dev/template-category"] == FAMILIES[path.stem]
    assert notes["autoflow.dev/template-title"].strip()
    assert 40 <= len(notes["autoflow.dev/template-description"]) <= 200
    assert first["metadata"]["name"].startswith(path.stem.split("-")[0])
    trigger = notes.get("autoflow.dev/template-trigger")
    assert trigger is None or trigger.startswith("webhook /")


def test_docs_list_every_template() -> None:
    text = (REPO / "docs" / "templates.md").read_text(encoding="utf-8")
    for path in TEMPLATES:
        assert f"examples/templates/{path.name}" in text, path.name


def test_github_jira_sync_copies_each_bug_once(
    tmp_path: Path, server: httpserver.Server, saas: Any
) -> None:
    """GitHub issues (list, comments, update) and Jira issue create, as their REST references
    say: open bug issues are copied, commented with the Jira key and labelled in-jira; pull
    requests and issues already labelled are left alone."""
    gh = saas(github.GitHub)
    saas(jira.Jira)
    gh.seed(3)
    for issue in gh.issues:
        issue["labels"] = [{"name": "bug"}]
        gh.route_issue(issue["number"])
    gh.issues[1]["labels"].append({"name": "in-jira"})
    path = REPO / "examples" / "templates" / "github-jira-sync.yaml"
    settings = {
        "code": {"baseUrl": server.base_url},
        "tracker": {"baseUrl": server.base_url, "site": "acme"},
    }
    secrets = {
        "code": {"token": github.TOKEN},
        "tracker": {"email": jira.EMAIL, "apiToken": jira.API_TOKEN},
    }
    inputs = {"owner": "octo-org", "repo": "hello-world", "project": "OPS"}
    outcome = run_manifests(
        path.read_text(), tmp_path, settings=settings, secrets=secrets, inputs=inputs
    )
    assert outcome.phase == "Succeeded", outcome.error
    assert outcome.outputs == {"copied": ["OPS-1", "OPS-2"]}
    commented = sorted(c["body"] for c in gh.comments)
    assert commented == ["Tracked in Jira as OPS-1", "Tracked in Jira as OPS-2"]
    labelled = [i for i in gh.issues if "in-jira" in [label["name"] for label in i["labels"]]]
    assert len(labelled) == 3
    again = run_manifests(
        path.read_text(), tmp_path, settings=settings, secrets=secrets, inputs=inputs
    )
    assert again.outputs == {"copied": []}
