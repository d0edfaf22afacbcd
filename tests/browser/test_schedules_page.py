"""The Schedules page: each Schedule's next runs in its own time zone, suspend and resume.

Suspending writes ``spec.suspend`` into the Schedule's file and nothing else (its comments
stay); the next runs disappear while it is suspended and come back on resume.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

Shot = Callable[[Page, str], None]

NIGHTLY = """\
# The nightly sync, half past two on Berlin's wall clock.
apiVersion: autoflow.dev/v1alpha1
kind: Schedule
metadata: {name: nightly}
spec:
  cron: "30 2 * * *"
  timezone: Europe/Berlin
  workflowRef: {name: sync}
"""


def test_suspend_and_resume_a_schedule_and_see_its_next_runs(
    page: Page, workspace: Path, screenshot: Shot
) -> None:
    path = workspace / "nightly.yaml"
    path.write_text(NIGHTLY)
    page.get_by_role("link", name="Schedules").click()
    row = page.get_by_role("row").filter(has_text="nightly")
    coming = row.get_by_role("list", name="Next runs of nightly").get_by_role("listitem")
    expect(coming).to_have_count(3)
    # Berlin's wall clock, its zone named: 02:30 CET/CEST (03:00 on the spring-forward night).
    for text in coming.all_inner_texts():
        assert re.search(r"\b0?(2:30|3:00):00\b.*\b(CES?T|GMT\+[12])\b", text), text
    expect(row).to_contain_text("active")
    screenshot(page, "schedules")

    row.get_by_role("button", name="Suspend nightly").click()
    expect(row).to_contain_text("suspended")
    expect(coming).to_have_count(0)
    assert path.read_text() == NIGHTLY.replace('  cron: "30', '  suspend: true\n  cron: "30')

    resume = row.get_by_role("button", name="Resume nightly")
    resume.focus()
    page.keyboard.press("Enter")  # keyboard reachable
    expect(row).to_contain_text("active")
    expect(coming).to_have_count(3)
    assert "suspend: false" in path.read_text()
    assert path.read_text().startswith("# The nightly sync")
