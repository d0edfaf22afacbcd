"""Fixtures of the browser tier: the real ``autoflow serve`` and headless Chromium.

Every test in this folder is marked ``browser``. Chromium is Debian's ``chromium`` package
(``/usr/bin/chromium``, installed by ``hack/browser.sh``) driven by Playwright through
``executable_path`` (Playwright's own browser download is not used). The front end must be
built (``bash hack/ui.sh build``; ``hack/setup.sh`` does it when npm is there). Without
Chromium or the build the tests fail in CI (``CI=true``) and are skipped elsewhere, saying
how to get them.

- ``workspace``: a temporary folder of Workflows served by ``autoflow serve DIR --port 0`` as a
  subprocess (the real web API, run store, in-process runs and built UI on loopback);
  ``workspace_url`` is the printed UI link with its access token; ``serve_env`` adds
  variables to its environment (a test module overrides it, e.g. to point the assistant at a
  local model server)
- ``page``: a Playwright page at 1280x800, signed in to that workspace (the token link opened
  once); a JavaScript error or a console error of the app fails the test
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import browsing
import pytest
from playwright.sync_api import Browser, Page, expect

# CI runs this tier on 2 loaded cores: a live run's next state may take longer than
# Playwright's default 5 s to show. The assertions stay the same; they only wait longer.
expect.set_options(timeout=15_000)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCREENSHOTS = REPO / "docs" / "images" / "webui"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with browsing.chromium() as b:
        yield b


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    """The folder ``autoflow serve`` serves; the process lives for the test."""
    d = tmp_path / "ws"
    d.mkdir()
    yield d


@pytest.fixture
def serve_env() -> dict[str, str]:
    """Variables added to the environment of ``autoflow serve`` (none by default)."""
    return {}


@pytest.fixture
def workspace_url(workspace: Path, browser: Browser, serve_env: dict[str, str]) -> Iterator[str]:
    # Nothing of the caller's own: no Autoflow setting, no key of a real model provider.
    own = ("AUTOFLOW_", "OPENAI_", "ANTHROPIC_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env.update(serve_env)
    cmd = [sys.executable, "-P", "-m", "autoflow.cli.main", "serve", str(workspace)]
    cmd += ["--host", "127.0.0.1", "--port", "0"]
    log = workspace.parent / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"web UI\s+(\S+)", log.read_text())
            url = m.group(1) if m else None
            time.sleep(0.05)
        if url is None:
            pytest.fail(f"autoflow serve did not print the UI URL:\n{log.read_text()}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def page(browser: Browser, workspace_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    p = context.new_page()
    errors = browsing.watch_errors(p)
    p.goto(workspace_url)
    p.get_by_role("heading", name="Workflows").wait_for()
    yield p
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def screenshot() -> Callable[[Page, str], None]:
    """``screenshot(page, name)``: docs/images/webui/NAME.png, when AUTOFLOW_SCREENSHOTS=1."""

    def take(page: Page, name: str) -> None:
        if os.environ.get("AUTOFLOW_SCREENSHOTS"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    return take
