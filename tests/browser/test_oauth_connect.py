"""Connecting an OAuth2 Integration from the Integrations page, through a real provider.

The provider is ``tests/oauth_server.py`` (RFC 6749 authorization code grant with RFC 7636
PKCE) on loopback. Its authorization endpoint is addressed as ``localhost`` while the UI is
``127.0.0.1``: the two are different sites to the browser, as a real provider and Autoflow
are. It shows a consent page whose Allow link the person clicks, so the way back to the
callback starts on the provider's page: a cross-site navigation, which must still reach the
callback signed in. A scope it does not grant is refused at once with a redirect.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpserver
import oauth_server
import pytest
import yaml
from playwright.sync_api import Page, expect

Shot = Callable[[Page, str], None]


@pytest.fixture
def provider(server: httpserver.Server) -> oauth_server.AuthServer:
    return oauth_server.AuthServer(server, scopes={"api"}, consent=True)


def create_integration(
    page: Page, provider: oauth_server.AuthServer, name: str, scope: str
) -> None:
    """Through the web API, as the signed-in page (its cookie and CSRF token)."""
    base = page.url.split("#")[0]
    csrf = page.request.get(base + "api/session").json()["csrfToken"]
    body: dict[str, Any] = {
        "name": name,
        "spec": {
            "type": "http",
            "settings": {"baseUrl": provider.server.url("/api"), "auth": "oauth2"},
            "oauth2": {
                "grantType": "authorization_code",
                "tokenUrl": provider.token_url,
                "authorizeUrl": provider.authorize_url.replace("127.0.0.1", "localhost"),
                "clientId": oauth_server.CLIENT_ID,
                "scopes": [scope],
            },
        },
        "secrets": {"clientSecret": oauth_server.CLIENT_SECRET},
    }
    made = page.request.post(
        base + "api/namespaces/default/integrations",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
    )
    assert made.status == 201, made.text()


def test_connect_goes_to_the_provider_and_comes_back_connected(
    page: Page, workspace: Path, provider: oauth_server.AuthServer, screenshot: Shot
) -> None:
    create_integration(page, provider, "crm", "api")
    page.get_by_role("link", name="Integrations").click()
    expect(page.get_by_test_id("oauth-crm")).to_have_text("Not connected")

    page.get_by_role("button", name="Connect crm").click()
    page.get_by_role("link", name="Allow").click()  # on the provider's page
    expect(page.get_by_role("status")).to_contain_text("Connected crm")
    expect(page.get_by_test_id("oauth-crm")).to_have_text("Connected")
    expect(page.get_by_role("button", name="Connect crm")).to_have_text("Reconnect")
    assert provider.grants == ["authorization_code"]
    screenshot(page, "integrations-oauth")

    stored = yaml.safe_load((workspace / ".autoflow" / "secrets.yaml").read_text())["crm"]
    assert stored["accessToken"].startswith("at-") and stored["refreshToken"]
    shown = page.content()
    for secret in (stored["accessToken"], stored["refreshToken"], oauth_server.CLIENT_SECRET):
        assert secret not in shown


def test_a_refused_authorization_comes_back_saying_so(
    page: Page, workspace: Path, provider: oauth_server.AuthServer
) -> None:
    create_integration(page, provider, "files", "admin")  # a scope the provider refuses
    page.get_by_role("link", name="Integrations").click()
    page.get_by_role("button", name="Connect files").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Not connected files: the provider answered invalid_scope"
    )
    expect(page.get_by_test_id("oauth-files")).to_have_text("Not connected")
    assert provider.grants == []
