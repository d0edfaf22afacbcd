"""OIDC sign-in of the web API (cluster mode's authenticator) against a local OpenID Connect
provider (tests/oidc_server.py: OpenID Connect Core 1.0, Discovery 1.0, RFC 6749, RFC 7636),
over real HTTP. The backend here is a workspace; sign-in does not depend on it."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import httpserver
import httpx
import oidc_server
import pytest
import webapi_server
from webapi_signin import csrf, settings, sign_in

from autoflow.webui import workspace
from autoflow.webui.api import Settings, create_app, oidc


@pytest.fixture
def provider() -> Iterator[oidc_server.OidcProvider]:
    with httpserver.serve() as server:
        yield oidc_server.OidcProvider(server)


@pytest.fixture
async def backend(tmp_path: pathlib.Path) -> AsyncIterator[workspace.WorkspaceBackend]:
    be = await workspace.WorkspaceBackend.open(tmp_path)
    yield be
    await be.aclose()


async def test_sign_in_gives_a_session_with_the_person_and_groups(
    provider: oidc_server.OidcProvider, backend: workspace.WorkspaceBackend
) -> None:
    auth = oidc.OidcAuth(settings(provider, user_prefix="oidc:", group_prefix="oidc:"))
    app = create_app(backend, Settings(authenticator=auth))
    async with webapi_server.serve(app) as base, httpx.AsyncClient(base_url=base + "/") as c:
        assert (await c.get("session")).status_code == 401
        done = await sign_in(c, provider, "ann@example.com", ["team-a"], "/runs?x=1")
        assert done.status_code == 303 and done.headers["location"] == "/runs?x=1"
        cookie = done.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=28800" in cookie
        session = (await c.get("session")).json()
        assert session["user"] == "oidc:ann@example.com"
        assert session["groups"] == ["oidc:team-a"]
        # Nothing of the provider's tokens is in the cookie or any answer.
        assert "eyJ" not in cookie and "at-" not in (await c.get("session")).text
        assert provider.grants == ["authorization_code"]
        # CSRF: an unsafe method without the token is refused, with it allowed.
        body = {"yaml": "a: 1\n"}
        assert (await c.post("validate", json=body)).status_code == 403
        token = await csrf(c)
        assert (await c.post("validate", json=body, headers={"X-CSRF-Token": token})).json()[
            "valid"
        ] is False
        # Logout needs the CSRF token too, then the session is gone.
        assert (await c.post("auth/logout")).status_code == 403
        out = await c.post("auth/logout", headers={"X-CSRF-Token": token})
        assert out.status_code == 204
        assert (await c.get("session")).status_code == 401


async def test_the_session_cookie_is_secure_by_default_and_next_stays_on_site(
    provider: oidc_server.OidcProvider, backend: workspace.WorkspaceBackend
) -> None:
    auth = oidc.OidcAuth(settings(provider, secure_cookie=True))
    app = create_app(backend, Settings(authenticator=auth))
    async with webapi_server.serve(app) as base, httpx.AsyncClient(base_url=base + "/") as c:
        login = await c.get("auth/login", params={"next": "https://evil.example/"})
        assert "Secure" in login.headers["set-cookie"]
        provider.login_as = ("ann@example.com", [])
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(login.headers["location"])
        # The browser would send the Secure cookie over HTTPS; hand it over as it would.
        pending = login.cookies[oidc.PENDING_COOKIE]
        cookie = {"Cookie": f"{oidc.PENDING_COOKIE}={pending}"}
        done = await c.get(consent.headers["location"], headers=cookie)
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert "Secure" in done.headers["set-cookie"]
        assert "code=" not in done.headers["location"]


async def test_a_forged_or_replayed_sign_in_is_refused(
    provider: oidc_server.OidcProvider, backend: workspace.WorkspaceBackend
) -> None:
    auth = oidc.OidcAuth(settings(provider))
    app = create_app(backend, Settings(authenticator=auth))
    async with webapi_server.serve(app) as base, httpx.AsyncClient(base_url=base + "/") as c:
        # A callback that did not start here (no pending cookie): refused.
        login = await c.get("auth/login")
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(login.headers["location"])
        async with httpx.AsyncClient(base_url=base + "/") as stranger:
            forged = await stranger.get(consent.headers["location"])
            assert forged.status_code == 401
        # A token for another client (aud) is refused (OIDC Core 3.1.3.7 step 3).
        provider.audience = "someone-else"
        wrong = await sign_in(c, provider, "ann@example.com", [])
        assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"]
        provider.audience = None
        assert (await c.get("session")).status_code == 401


async def test_a_session_ends_after_its_lifetime(
    provider: oidc_server.OidcProvider, backend: workspace.WorkspaceBackend
) -> None:
    auth = oidc.OidcAuth(settings(provider, session_lifetime=1))
    app = create_app(backend, Settings(authenticator=auth))
    async with webapi_server.serve(app) as base, httpx.AsyncClient(base_url=base + "/") as c:
        await sign_in(c, provider, "ann@example.com", [])
        assert (await c.get("session")).status_code == 200
        import asyncio

        await asyncio.sleep(2.1)
        assert (await c.get("session")).status_code == 401
