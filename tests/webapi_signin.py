"""Signing in to the web API the way a browser does, against ``oidc_server.OidcProvider``."""

from __future__ import annotations

import httpx
import oidc_server

from autoflow.webui.api import oidc


def settings(provider: oidc_server.OidcProvider, **changes: object) -> oidc.OidcSettings:
    values: dict[str, object] = {
        "issuer": provider.issuer,
        "client_id": oidc_server.CLIENT_ID,
        "client_secret": oidc_server.CLIENT_SECRET,
        "secure_cookie": False,  # plain HTTP on loopback in tests
        **changes,
    }
    return oidc.OidcSettings(**values)  # type: ignore[arg-type]


async def sign_in(
    client: httpx.AsyncClient,
    provider: oidc_server.OidcProvider,
    user: str,
    groups: list[str],
    next_path: str = "/",
) -> httpx.Response:
    """login → the provider (who signs in: ``user``) → callback; returns the callback's
    answer (303 to ``next_path`` with the session cookie set on ``client``)."""
    provider.login_as = (user, groups)
    login = await client.get("auth/login", params={"next": next_path})
    assert login.status_code == 302, login.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(login.headers["location"])
    assert consent.status_code == 302, consent.text
    return await client.get(consent.headers["location"])


async def csrf(client: httpx.AsyncClient) -> str:
    session = await client.get("session")
    assert session.status_code == 200, session.text
    return str(session.json()["csrfToken"])
