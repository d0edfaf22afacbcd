"""People sign in to the web UI in a real browser and see only what Kubernetes RBAC allows.

``autoflow webui`` runs in cluster mode as a process, with its own identity (it may only
impersonate: config/rbac/webui.yaml) against the real API server, and signs people in through
the local OpenID Connect provider (tests/oidc_server.py, OpenID Connect Core 1.0 with PKCE).
Chromium (Debian's package, through Playwright) opens the UI, follows Sign in to the provider
and back, and shows what the signed-in person may see: Ann edits namespace A and views B (her
group team-b), so she may switch between them and suspend A's Schedule; Bob only views B, so
A's Workflow never shows for him and suspending B's Schedule is refused with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import apiserver as kube
import browsing
import oidc_server
import pytest
from playwright.sync_api import Browser, Page, expect

from autoflow.webui.api import oidc

expect.set_options(timeout=15_000)
WEBUI = "nobody"  # the identity the webui runs as (two_namespaces: conftest.py)


def workflow(name: str, namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"steps": [{"id": "hello", "uses": "core.log", "with": {"message": "hi"}}]},
    }


def nightly(namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "nightly", "namespace": namespace},
        "spec": {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "workflowRef": {"name": "x"}},
    }


@pytest.fixture
def webui(
    apiserver: kube.APIServer,
    two_namespaces: tuple[str, str],
    provider: oidc_server.OidcProvider,
    tmp_path: Path,
) -> Iterator[str]:
    """``autoflow webui`` in cluster mode on a free loopback port; its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    env.update(
        {
            "AUTOFLOW_WEBUI_OIDC_ISSUER": provider.issuer,
            "AUTOFLOW_WEBUI_OIDC_CLIENT_ID": oidc_server.CLIENT_ID,
            "AUTOFLOW_WEBUI_OIDC_CLIENT_SECRET": oidc_server.CLIENT_SECRET,
            "AUTOFLOW_WEBUI_SESSION_KEY": oidc.new_session_key(),
            "AUTOFLOW_WEBUI_INSECURE_COOKIE": "true",  # plain HTTP on loopback
            "AUTOFLOW_WEBUI_NAMESPACES": ",".join(two_namespaces),
            "AUTOFLOW_STORE_URL": f"sqlite:///{tmp_path / 'runs.db'}",
        }
    )
    log = tmp_path / "webui.log"
    cmd = [sys.executable, "-P", "-m", "autoflow.cli.main", "webui"]
    cmd += ["--kubeconfig", str(apiserver.kubeconfig(WEBUI)), "--port", "0"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=kube.REPO)
    try:
        deadline, found = time.monotonic() + 30, None
        while found is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"autoflow webui \(cluster\): (http://[\d.]+:\d+)/", log.read_text())
            time.sleep(0.05)
        if found is None:
            pytest.fail(f"autoflow webui did not start:\n{log.read_text()}")
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(10)


def sign_in(browser: Browser, base: str) -> tuple[Page, list[str]]:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    errors = browsing.watch_errors(page)
    page.goto(base + "/#/workflows")
    expect(page.get_by_role("heading", name="Sign in to Autoflow")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()  # → the provider → the callback → back
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/workflows$"))
    return page, errors


def test_people_sign_in_through_oidc_and_see_only_what_rbac_allows(
    apiserver: kube.APIServer,
    two_namespaces: tuple[str, str],
    provider: oidc_server.OidcProvider,
    webui: str,
) -> None:
    a, b = two_namespaces
    apiserver.apply([workflow("orders", a), workflow("billing", b), nightly(a), nightly(b)])
    schedules = "/apis/autoflow.dev/v1alpha1/namespaces/{}/schedules/nightly"
    with browsing.chromium() as browser:
        provider.login_as = ("ann@example.com", ["team-b"])
        ann, ann_errors = sign_in(browser, webui)
        expect(ann.get_by_text("ann@example.com · cluster")).to_be_visible()
        listed = ann.get_by_role("table", name="Workflows")
        namespace = ann.get_by_role("combobox", name="Namespace")
        expect(namespace).to_have_value(a)
        expect(listed).to_contain_text("orders")
        expect(listed).not_to_contain_text("billing")
        namespace.select_option(b)
        expect(listed).to_contain_text("billing")
        expect(listed).not_to_contain_text("orders")

        namespace.select_option(a)
        ann.get_by_role("link", name="Schedules").click()
        ann.get_by_role("button", name="Suspend nightly").click()
        expect(ann.get_by_role("row").filter(has_text="nightly")).to_contain_text("suspended")
        cr = apiserver.request("GET", schedules.format(a))
        assert cr["spec"]["suspend"] is True
        assert cr["metadata"]["annotations"]["autoflow.dev/changed-by"] == "ann@example.com"

        ann.get_by_role("button", name="Sign out").click()
        expect(ann.get_by_role("heading", name="Sign in to Autoflow")).to_be_visible()
        ann.reload()  # the session is gone, not just hidden
        expect(ann.get_by_role("heading", name="Sign in to Autoflow")).to_be_visible()

        provider.login_as = ("bob@example.com", ["team-b"])
        bob, bob_errors = sign_in(browser, webui)
        expect(bob.get_by_text(f"bob@example.com · cluster · {b}")).to_be_visible()
        expect(bob.get_by_role("combobox", name="Namespace")).to_have_count(0)  # only B
        listed = bob.get_by_role("table", name="Workflows")
        expect(listed).to_contain_text("billing")
        expect(listed).not_to_contain_text("orders")
        bob.get_by_role("link", name="Schedules").click()
        bob.get_by_role("button", name="Suspend nightly").click()
        expect(bob.get_by_role("alert")).to_contain_text("Cannot suspend nightly")
        expect(bob.get_by_role("alert")).to_contain_text("forbidden", ignore_case=True)
        assert not apiserver.request("GET", schedules.format(b))["spec"].get("suspend")
    assert not ann_errors and not bob_errors, (ann_errors, bob_errors)
