"""Whole journeys through the web UI in headless Chromium against the real ``autoflow serve``.

What a person does: build a workflow on the canvas with the mouse, save it (the file on disk is
what the YAML tab shows), run it and watch the steps turn green live, open a failing run and
see the error at its step, keep hand-written comments through a canvas edit, and create an
Integration whose secret never comes back.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from playwright.sync_api import Locator, Page, expect

Shot = Callable[[Page, str], None]


def yaml_tab_text(page: Page) -> str:
    """The whole text of the YAML tab's editor (CodeMirror renders only the visible lines)."""
    page.get_by_role("tab", name="YAML").click()
    page.locator(".cm-content").wait_for()
    page.get_by_test_id("yaml-editor").wait_for()
    text = page.evaluate("() => document.querySelector('[data-testid=yaml-editor]').yamlText()")
    assert isinstance(text, str)
    return text


def workflow_file(workspace: Path, name: str) -> Path:
    found = [p for p in workspace.glob("*.y*ml") if f"name: {name}\n" in p.read_text()]
    assert len(found) == 1, f"one file for Workflow {name} in {list(workspace.iterdir())}"
    return found[0]


def step_panel(page: Page, step: str) -> Locator:
    return page.get_by_role("complementary", name=f"Step {step}")


def drag(page: Page, source: str, target: str) -> None:
    """Drags from one element's centre to another's with the mouse, in small moves."""
    a = page.locator(source).bounding_box()
    b = page.locator(target).bounding_box()
    assert a is not None and b is not None
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
    page.mouse.up()


def test_build_on_the_canvas_save_and_watch_the_run_live(
    page: Page, workspace: Path, screenshot: Shot
) -> None:
    page.get_by_role("link", name="New workflow").click()
    page.get_by_label("Workflow name").fill("hello-ui")
    page.get_by_role("button", name="Add core.log").click()
    step_panel(page, "log").get_by_label("Message").fill("hello from the canvas")
    page.get_by_role("button", name="Add core.delay").click()
    step_panel(page, "delay").get_by_label("Duration").fill("6s")
    expect(page.locator(".react-flow__node")).to_have_count(2)
    drag(
        page,
        '.react-flow__node[data-id="log"] .react-flow__handle.source',
        '.react-flow__node[data-id="delay"] .react-flow__handle.target',
    )
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    screenshot(page, "builder")

    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"#/workflows/default/hello-ui$"), timeout=30_000)
    expect(page.get_by_label("Workflow name")).to_be_disabled()

    shown = yaml_tab_text(page)
    on_disk = workflow_file(workspace, "hello-ui").read_text()
    assert on_disk == shown
    assert "needs: [log]" in on_disk
    assert "message: hello from the canvas" in on_disk
    assert "duration: 6s" in on_disk
    screenshot(page, "yaml")

    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"#/runs/default/"), timeout=30_000)
    delay = page.get_by_test_id("step-delay")
    # the delay step is seen running, then succeeded, without reloading the page: live events
    # (6 s: on a loaded machine the run view may take a few seconds to open)
    expect(delay).to_have_attribute("data-phase", "Running", timeout=10_000)
    expect(delay).to_have_attribute("data-phase", "Succeeded", timeout=10_000)
    expect(page.get_by_test_id("step-log")).to_have_attribute("data-phase", "Succeeded")
    expect(page.get_by_test_id("run-phase")).to_have_text("Succeeded")
    screenshot(page, "run")

    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_role("table", name="Runs")).to_contain_text("hello-ui")


FAILING = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: breaks
spec:
  steps:
    - id: prepare
      uses: core.log
      with: {message: starting}
    - id: charge
      uses: core.fail
      with:
        message: card declined for order 42
"""


def test_a_failing_run_shows_the_error_at_its_step(page: Page, workspace: Path) -> None:
    (workspace / "breaks.yaml").write_text(FAILING)
    page.reload()
    page.get_by_role("link", name="breaks").click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"#/runs/default/"), timeout=30_000)
    expect(page.get_by_test_id("run-phase")).to_have_text("Failed", timeout=10_000)
    expect(page.get_by_test_id("step-charge")).to_have_attribute("data-phase", "Failed")
    expect(page.get_by_test_id("step-prepare")).to_have_attribute("data-phase", "Succeeded")
    expect(page.get_by_test_id("step-error")).to_contain_text("card declined for order 42")
    expect(page.get_by_test_id("step-detail")).to_contain_text("charge")


COMMENTED = """\
# Greets people. Hand-written: these comments must survive the canvas.
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: greet   # kubectl shows this name
spec:
  description: "Say hello"
  steps:
    # the first greeting
    - id: hello
      uses: core.log
      with:
        message: "hello"    # quoted on purpose

    - id: bye
      uses: core.log
      with:
        message: bye
  outputs: {}
"""


def test_a_canvas_edit_keeps_every_byte_outside_the_changed_step(
    page: Page, workspace: Path
) -> None:
    path = workspace / "greet.yaml"
    path.write_text(COMMENTED)
    page.reload()
    page.get_by_role("link", name="greet").click()
    page.get_by_test_id("step-bye").click()
    step_panel(page, "bye").get_by_label("Message").fill("goodbye")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    saved = path.read_text()
    cut = COMMENTED.index("    - id: bye")
    assert saved[:cut] == COMMENTED[:cut]
    changed = "    - id: bye\n      uses: core.log\n      with:\n        message: goodbye\n"
    assert saved[cut:] == changed + "  outputs: {}\n"
    assert yaml_tab_text(page) == saved


class _Api(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization") or "")
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[str]:
    _Api.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


SECRET = "s3cret-bearer-7f1d"


def test_an_integration_is_created_and_tested_without_its_secret_coming_back(
    page: Page, workspace: Path, api_server: str, screenshot: Shot
) -> None:
    page.get_by_role("link", name="Integrations").click()
    page.get_by_role("button", name="New integration").click()
    form = page.get_by_role("form", name="New integration")
    form.get_by_label("Name").fill("orders-api")
    form.get_by_label("Type").select_option("http")
    form.get_by_label("Baseurl").fill(api_server)
    form.get_by_label("Auth", exact=True).select_option("bearer")
    form.get_by_label("Secret token").fill(SECRET)
    form.get_by_role("button", name="Save integration").click()
    table = page.get_by_role("table", name="Integrations")
    expect(table).to_contain_text("orders-api")
    expect(table).to_contain_text("token")  # which secret keys are set, never their values

    page.get_by_role("button", name="Test orders-api now").click()
    expect(page.get_by_role("status")).to_contain_text("OK")
    assert f"Bearer {SECRET}" in _Api.seen  # stored, and used by the probe
    screenshot(page, "integrations")

    page.get_by_role("button", name="Edit orders-api").click()
    assert page.get_by_label("Secret token").input_value() == ""
    assert SECRET not in page.content()
    listed = page.request.get(page.url.split("#")[0] + "api/namespaces/default/integrations")
    assert listed.ok
    assert SECRET not in listed.text()
    assert json.loads(listed.text())["items"][0]["secretKeys"] == ["token"]
    files = [p for p in workspace.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert [p.relative_to(workspace).as_posix() for p in files] == [".autoflow/secrets.yaml"]


def test_save_refused_shows_the_problem_at_its_step(page: Page, workspace: Path) -> None:
    page.get_by_role("link", name="New workflow").click()
    page.get_by_label("Workflow name").fill("unfinished")
    page.get_by_role("button", name="Add core.log").click()
    step_panel(page, "log").get_by_label("Message").fill("fine")
    page.get_by_role("button", name="Add core.delay").click()  # its duration left out
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").first).to_contain_text("Not saved")
    expect(page.get_by_test_id("step-delay")).to_contain_text("1 problem")
    expect(page.get_by_test_id("step-log")).not_to_contain_text("problem")
    page.get_by_test_id("step-delay").click()
    expect(step_panel(page, "delay").get_by_role("list", name="Step problems")).to_contain_text(
        "duration"
    )
    assert not list(workspace.glob("*.yaml"))


QUICK = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: quick
spec:
  steps:
    - id: only
      uses: core.log
      with: {message: hi}
---
apiVersion: autoflow.dev/v1alpha1
kind: Schedule
metadata:
  name: quick-nightly
spec:
  cron: "0 3 * * *"
  timezone: Europe/Berlin
  workflowRef: {name: quick}
"""


def test_dashboard_counts_runs_and_schedules_are_listed(
    page: Page, workspace: Path, screenshot: Shot
) -> None:
    (workspace / "quick.yaml").write_text(QUICK)
    page.reload()
    page.get_by_role("link", name="quick", exact=True).click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_test_id("run-phase")).to_have_text("Succeeded", timeout=10_000)

    page.get_by_role("link", name="Dashboard").click()
    # the figures refresh every 10 s: a run's end may be announced before the store has it
    expect(page.get_by_test_id("stat-total")).to_have_text("1", timeout=15_000)
    expect(page.get_by_test_id("stat-success")).to_have_text("100 %")
    expect(page.get_by_role("table", name="Workflow figures")).to_contain_text("quick")
    screenshot(page, "dashboard")

    page.get_by_role("link", name="Schedules").click()
    table = page.get_by_role("table", name="Schedules")
    expect(table).to_contain_text("quick-nightly")
    expect(table).to_contain_text("Europe/Berlin")
    expect(table).to_contain_text("0 3 * * *")


TYPED = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: typed
spec:
  steps:
    - id: first
      uses: core.log
      with: {message: one}
    - id: second
      uses: core.log
      with: {message: two}
"""


def test_yaml_typed_by_hand_shows_on_the_canvas_and_saves_as_typed(
    page: Page, workspace: Path
) -> None:
    page.get_by_role("link", name="New workflow").click()
    page.get_by_role("tab", name="YAML").click()
    editor = page.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    editor.fill(TYPED)
    assert yaml_tab_text(page) == TYPED
    page.get_by_role("tab", name="Canvas").click()
    expect(page.locator(".react-flow__node")).to_have_count(2)
    expect(page.locator(".react-flow__edge")).to_have_count(1)  # second waits for first
    expect(page.get_by_label("Workflow name")).to_have_value("typed")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"#/workflows/default/typed$"), timeout=30_000)
    assert workflow_file(workspace, "typed").read_text() == TYPED


def test_saving_over_a_change_made_meanwhile_is_refused(page: Page, workspace: Path) -> None:
    path = workspace / "greet.yaml"
    path.write_text(COMMENTED)
    page.reload()
    page.get_by_role("link", name="greet").click()
    page.get_by_test_id("step-bye").click()
    step_panel(page, "bye").get_by_label("Message").fill("mine")
    theirs = COMMENTED.replace("message: bye", "message: theirs")
    path.write_text(theirs)  # someone else saves first
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").first).to_contain_text("someone changed this Workflow")
    assert path.read_text() == theirs


def test_an_action_dragged_from_the_palette_becomes_a_step(page: Page, workspace: Path) -> None:
    page.get_by_role("link", name="New workflow").click()
    page.get_by_role("button", name="Add core.noop").drag_to(
        page.locator(".react-flow__pane"), target_position={"x": 400, "y": 300}
    )
    node = page.locator('.react-flow__node[data-id="noop"]')
    expect(node).to_be_visible()
    text = yaml_tab_text(page)
    assert "    - id: noop\n      uses: core.noop\n      needs: []\n      ui: {x: " in text
