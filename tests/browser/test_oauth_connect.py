"""Making an OAuth2 Integration in the Integrations page's form and connecting it, through a
real provider.

A person fills the form's OAuth2 fields (they appear when the http connector's auth is
oauth2), saves, and presses Connect. The provider is ``tests/oauth_server.py`` (RFC 6749
authorization code grant with RFC 7636 PKCE) on loopback. Its authorization endpoint is
addressed as ``localhost`` while the UI is ``127.0.0.1``: the two are different sites to the
browser, as a real provider and Autoflow are. It shows a consent page whose Allow link the
person clicks, so the way back to the callback starts on the provider's page: a cross-site
navigation, which must still reach the callback signed in. A scope it does not grant is
refused at once with a redirect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpserver
import oauth_server
import pytest
import yaml
from playwright.sync_api import Locator, Page, expect

Shot = Callable[[Page, str], None]


@pytest.fixture
def provider(server: httpserver.Server) -> oauth_server.AuthServer:
    return oauth_server.AuthServer(server, scopes={"api"}, consent=True)


def create_integration(
    page: Page, provider: oauth_server.AuthServer, name: str, scope: str
) -> None:
    """Through the web API, as the signed-in page (its cookie and CSRF token): for the tests
    of what happens after the form."""
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


def fill_oauth_form(page: Page, provider: oauth_server.AuthServer, name: str) -> Locator:
    """Opens the New integration form and fills it as a person does: an http Integration whose
    auth is oauth2, then the OAuth2 fields that appear for it. The client ID, the client
    secret and the scopes are typed with the keyboard, moving on with Tab."""
    page.get_by_role("link", name="Integrations").click()
    page.get_by_role("button", name="New integration").click()
    form = page.get_by_role("form", name="New integration")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Type").select_option("http")
    form.get_by_label("Baseurl").fill(provider.server.url("/api"))
    oauth = form.get_by_role("group", name="OAuth2")
    expect(oauth).to_have_count(0)  # auth: none takes no OAuth2 client
    form.get_by_label("Auth", exact=True).select_option("oauth2")

    grant = oauth.get_by_label("Grant type")
    signs_in = re.compile("authorization_code: a person signs in")
    expect(grant).to_have_accessible_description(signs_in)
    grant.select_option("authorization_code")
    token_url = oauth.get_by_label("Token URL")
    expect(token_url).to_have_attribute("required", "")
    token_url.fill(provider.token_url)
    authorize = oauth.get_by_label("Authorization URL")
    expect(authorize).to_have_attribute("required", "")  # the grant a person connects with
    authorize.fill(provider.authorize_url.replace("127.0.0.1", "localhost"))
    oauth.get_by_label("Client ID").click()
    page.keyboard.type(oauth_server.CLIENT_ID)
    page.keyboard.press("Tab")
    expect(oauth.get_by_label("Client secret")).to_be_focused()
    page.keyboard.type(oauth_server.CLIENT_SECRET)
    page.keyboard.press("Tab")
    expect(oauth.get_by_label("Scopes")).to_be_focused()
    page.keyboard.type("api")
    callback = page.url.split("#")[0] + "api/oauth/callback"
    expect(oauth).to_contain_text(f"redirect URI for the client at the provider: {callback}")
    return form


def test_an_oauth2_integration_made_in_the_form_connects(
    page: Page, workspace: Path, provider: oauth_server.AuthServer, screenshot: Shot
) -> None:
    form = fill_oauth_form(page, provider, "crm")
    screenshot(page, "integrations-oauth-form")
    form.get_by_role("button", name="Save integration").click()
    expect(form).to_have_count(0)
    expect(page.get_by_test_id("oauth-crm")).to_have_text("Not connected")
    saved = yaml.safe_load((workspace / "crm.integration.yaml").read_text())["spec"]
    assert saved["oauth2"] == {
        "grantType": "authorization_code",
        "tokenUrl": provider.token_url,
        "authorizeUrl": provider.authorize_url.replace("127.0.0.1", "localhost"),
        "clientId": oauth_server.CLIENT_ID,
        "scopes": ["api"],
    }
    secrets = yaml.safe_load((workspace / ".autoflow" / "secrets.yaml").read_text())["crm"]
    assert secrets == {"clientSecret": oauth_server.CLIENT_SECRET}

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

    # An edit shows the client, never its secret; saved with the secret left empty, the
    # stored one stays, and so does the connection.
    page.get_by_role("button", name="Edit crm").click()
    edit = page.get_by_role("form", name="Edit crm")
    expect(edit.get_by_label("Token URL")).to_have_value(provider.token_url)
    expect(edit.get_by_label("Scopes")).to_have_value("api")
    secret = edit.get_by_label("Client secret")
    expect(secret).to_have_value("")
    expect(secret).to_have_attribute("placeholder", "set — type to replace")
    expect(secret).not_to_have_attribute("required", "")
    assert oauth_server.CLIENT_SECRET not in page.content()
    edit.get_by_label("Scopes").fill("api refresh_token")
    edit.get_by_role("button", name="Save integration").click()
    expect(edit).to_have_count(0)
    expect(page.get_by_test_id("oauth-crm")).to_have_text("Connected")
    saved = yaml.safe_load((workspace / "crm.integration.yaml").read_text())["spec"]
    assert saved["oauth2"]["scopes"] == ["api", "refresh_token"]
    kept = yaml.safe_load((workspace / ".autoflow" / "secrets.yaml").read_text())["crm"]
    assert kept == stored


def test_a_refused_save_shows_the_problem_at_its_oauth2_field(
    page: Page, workspace: Path, provider: oauth_server.AuthServer
) -> None:
    form = fill_oauth_form(page, provider, "crm")
    oauth = form.get_by_role("group", name="OAuth2")
    oauth.get_by_label("Token secret name").fill("CRM tokens")  # not a Kubernetes name
    form.get_by_role("button", name="Save integration").click()

    expect(form.get_by_role("alert")).to_contain_text("Invalid: 1 problem found")
    field = oauth.get_by_label("Token secret name")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile("String should match pattern"))
    expect(field).to_be_focused()
    assert not (workspace / "crm.integration.yaml").exists()

    field.fill("crm-tokens")
    expect(field).not_to_have_attribute("aria-invalid", "true")
    form.get_by_role("button", name="Save integration").click()
    expect(page.get_by_test_id("oauth-crm")).to_have_text("Not connected")
    saved = yaml.safe_load((workspace / "crm.integration.yaml").read_text())["spec"]
    assert saved["oauth2"]["tokenSecretName"] == "crm-tokens"


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
