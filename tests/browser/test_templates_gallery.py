"""The template gallery on the New workflow page: pick a template, the builder opens with its
Workflow, save: the Workflow is written as the template has it and its Integrations exist.

The gallery is ``GET /api/templates`` over the shipped ``examples/templates``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml
from playwright.sync_api import Page, expect

Shot = Callable[[Page, str], None]
TEMPLATES = Path(__file__).resolve().parents[2] / "examples" / "templates"


def test_a_template_opens_in_the_builder_and_saves_with_its_integrations(
    page: Page, workspace: Path, screenshot: Shot
) -> None:
    page.get_by_role("link", name="New workflow").click()
    page.get_by_text("Start from a template").click()
    gallery = page.get_by_role("list", name="Templates")
    expect(gallery.get_by_role("listitem")).to_have_count(len(list(TEMPLATES.glob("*.yaml"))))
    card = gallery.get_by_role("listitem").filter(has_text="Invoice reminder")
    expect(card).to_contain_text("Find overdue unpaid invoices in PostgreSQL")
    screenshot(page, "templates")

    card.get_by_role("link", name="Use template Invoice reminder").click()
    expect(page).to_have_url(re.compile(r"#/new/invoice-reminder$"), timeout=30_000)
    expect(page.get_by_label("Workflow name")).to_have_value("invoice-reminder")
    expect(page.locator(".react-flow__node")).to_have_count(3)
    note = page.get_by_label("Template")
    expect(note).to_contain_text("billing-db (postgres), mail (email)")
    assert not list(workspace.glob("*.yaml"))  # opening a template writes nothing

    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"#/workflows/default/invoice-reminder$"), timeout=30_000)
    template = (TEMPLATES / "invoice-reminder.yaml").read_text()
    saved = (workspace / "invoice-reminder.yaml").read_text()
    assert template.startswith(saved + "---\n")  # its Workflow, byte for byte
    kinds = {
        (d["kind"], d["metadata"]["name"])
        for p in workspace.glob("*.yaml")
        for d in yaml.safe_load_all(p.read_text())
    }
    assert kinds == {
        ("Workflow", "invoice-reminder"),
        ("Integration", "billing-db"),
        ("Integration", "mail"),
    }
    page.get_by_role("link", name="Workflows", exact=True).click()
    expect(page.get_by_role("link", name="invoice-reminder")).to_be_visible()
