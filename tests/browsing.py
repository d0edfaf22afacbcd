"""Headless Chromium for the tiers that drive the web UI in a real browser.

Debian's ``chromium`` package (``/usr/bin/chromium``, installed by ``hack/browser.sh``, or
``$AUTOFLOW_CHROMIUM``) driven by Playwright through ``executable_path``; the front end must be
built (``bash hack/ui.sh build``). Without either a test fails in CI (``CI=true``) and is
skipped elsewhere, saying how to get it. ``app_error`` tells a console error of the app's own
from the browser's note about a 4xx answer the UI shows as it should.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("AUTOFLOW_CHROMIUM", "/usr/bin/chromium")
DIST = REPO / "webui" / "dist" / "index.html"


def is_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def required(ok: bool, message: str) -> None:
    if ok:
        return
    if is_ci():
        pytest.fail(f"CI needs the browser tier: {message}", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Playwright and Chromium, for one module: Playwright's sync API keeps an event loop
    running while it is open, and the asyncio tests of other modules cannot start theirs."""
    found = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    required(found is not None, f"no Chromium at {CHROMIUM}: run bash hack/browser.sh")
    required(DIST.is_file(), "the web UI is not built: run bash hack/ui.sh build (needs npm)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=found, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield b
        finally:
            b.close()


def app_error(message: ConsoleMessage) -> bool:
    """A console error of the app's own. The browser also logs every 4xx answer ("Failed to
    load resource"), which the UI shows as it should (a 422 of a refused save)."""
    return message.type == "error" and not message.text.startswith(
        "Failed to load resource: the server responded with a status of 4"
    )


def watch_errors(page: Page) -> list[str]:
    """The page's JavaScript errors and app console errors, collected as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if app_error(m) else None)
    return errors
