"""OIDC sign-in of the web API (cluster mode's authenticator) against a local OpenID Connect
provider (tests/oidc_server.py: OpenID Connect Core 1.0, Discovery 1.0, RFC 6749, RFC 7636),
over real HTTP. The backend here is a workspace; sign-in does not depend on it."""

from __future__ import annotations

import pathlib
import re
import time
from collections.abc import AsyncIterator, Iterator

import httpserver
import httpx
import oauth_server
import oidc_server
import pytest
import webapi_server
import yaml
from webapi_signin import csrf, settings, sign_in

from autoflow.webui import workspace
from autoflow.webui.api import Settings, create_app, oidc, sealing
from autoflow.webui.api.routes import integrations


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


async def test_an_oauth2_connect_started_on_one_replica_finishes_on_another(
    provider: oidc_server.OidcProvider, tmp_path: pathlib.Path
) -> None:
    """Two webui replicas with the same session key and no state shared but the backend's:
    ``oauth/start`` on one, the provider's redirect lands on the other, and the tokens are
    stored. The pending state travels in a sealed cookie bound to the person; a tampered, an
    expired or a foreign one is refused with a problem that says why."""
    key = oidc.new_session_key()
    one = await workspace.WorkspaceBackend.open(tmp_path)
    two = await workspace.WorkspaceBackend.open(tmp_path)
    app_one = create_app(
        one, Settings(authenticator=oidc.OidcAuth(settings(provider, session_key=key)))
    )
    app_two = create_app(
        two, Settings(authenticator=oidc.OidcAuth(settings(provider, session_key=key)))
    )
    with httpserver.serve() as saas:
        auth_server = oauth_server.AuthServer(saas)
        async with (
            webapi_server.serve(app_one) as base_one,
            webapi_server.serve(app_two) as base_two,
            httpx.AsyncClient(base_url=base_one + "/") as browser,
            httpx.AsyncClient() as elsewhere,
        ):
            await sign_in(browser, provider, "ann@example.com", [])
            token = await csrf(browser)
            body = {
                "name": "crm",
                "spec": {
                    "type": "http",
                    "settings": {"baseUrl": saas.url("/api"), "auth": "oauth2"},
                    "oauth2": {
                        "grantType": "authorization_code",
                        "tokenUrl": auth_server.token_url,
                        "authorizeUrl": auth_server.authorize_url,
                        "clientId": oauth_server.CLIENT_ID,
                        "scopes": ["api"],
                    },
                },
                "secrets": {"clientSecret": oauth_server.CLIENT_SECRET},
            }
            made = await browser.post(
                "namespaces/default/integrations", json=body, headers={"X-CSRF-Token": token}
            )
            assert made.status_code == 201, made.text

            async def start() -> tuple[httpx.Response, str]:
                started = await browser.get("namespaces/default/integrations/crm/oauth/start")
                assert started.status_code == 200, started.text
                consent = await elsewhere.get(started.json()["authorizationUrl"])
                assert consent.status_code == 302, consent.text
                # The load balancer sends the redirect back to the other replica.
                back = consent.headers["location"].replace(base_one, base_two)
                assert back.startswith(base_two + "/oauth/callback?")
                return started, back

            started, back = await start()
            cookie = started.headers["set-cookie"]
            assert cookie.startswith(integrations.PENDING_COOKIE + "=")
            # Cookie-safe characters only: no server quotes it, every client returns it as is.
            assert re.fullmatch(r"[A-Za-z0-9_-]+", cookie.split(";")[0].split("=", 1)[1])
            for attribute in (
                "HttpOnly",
                "SameSite=lax",
                "Max-Age=600",
                "Path=/api/oauth/callback",
            ):
                assert attribute in cookie
            (jar,) = [c for c in browser.cookies.jar if c.name == integrations.PENDING_COOKIE]
            sealed = jar.value
            assert sealed is not None
            where = {"domain": jar.domain, "path": jar.path}
            assert "verifier" not in sealed and "ann@" not in sealed  # encrypted, not encoded

            # Tampered: one character of the sealed value changed.
            flipped = sealed[:40] + ("A" if sealed[40] != "A" else "B") + sealed[41:]
            browser.cookies.set(integrations.PENDING_COOKIE, flipped, **where)
            refused = await browser.get(back)
            assert refused.status_code == 422
            assert refused.headers["content-type"] == "application/problem+json"
            assert "not valid or older than 10 minutes" in refused.json()["detail"]
            # Expired: sealed with the right key eleven minutes ago.
            pending = sealing.Sealer(key).open(sealed, 600)
            assert pending is not None and pending["user"] == "ann@example.com"
            old = sealing.Sealer(key).seal(pending, at=time.time() - 660)
            browser.cookies.set(integrations.PENDING_COOKIE, old, **where)
            refused = await browser.get(back)
            assert refused.status_code == 422
            assert "older than 10 minutes" in refused.json()["detail"]
            # Sealed under another key (another installation's): refused the same way.
            other = sealing.Sealer(oidc.new_session_key()).seal(pending)
            browser.cookies.set(integrations.PENDING_COOKIE, other, **where)
            assert (await browser.get(back)).status_code == 422
            # Another person's browser holding Ann's pending connect (and its own session).
            async with httpx.AsyncClient(base_url=base_two + "/") as bob:
                await sign_in(bob, provider, "bob@example.com", [])
                bob.cookies.set(integrations.PENDING_COOKIE, sealed, **where)
                foreign = await bob.get(back)
                assert foreign.status_code == 422
                assert "started by someone else" in foreign.json()["detail"]
            assert auth_server.grants == []  # no code was exchanged for any of them

            # Ann's own cookie, on the other replica: connected.
            browser.cookies.set(integrations.PENDING_COOKIE, sealed, **where)
            done = await browser.get(back)
            assert done.status_code == 303, done.text  # back to the UI's Integrations page
            assert done.headers["location"].endswith("#/integrations?connected=crm")
            assert auth_server.grants == ["authorization_code"]
            stored = yaml.safe_load((two.state / "secrets.yaml").read_text())["crm"]
            assert stored["accessToken"].startswith("at-") and stored["refreshToken"]
            # The cookie is spent: the same redirect again is refused.
            assert "Max-Age=0" in done.headers["set-cookie"]
            assert integrations.PENDING_COOKIE not in browser.cookies
            again = await browser.get(back)
            assert again.status_code == 422
            assert "no OAuth2 connect is pending" in again.json()["detail"]
            for response in (made, started, done, refused, again):
                assert stored["accessToken"] not in response.text
                assert oauth_server.CLIENT_SECRET not in response.text
    await one.aclose()
    await two.aclose()
