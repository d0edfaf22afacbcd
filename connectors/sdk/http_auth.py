"""Credentials for the ``http`` connector, and keeping them out of everything it returns.

A step's Integration picks a scheme in ``settings.auth``; ``credentials()`` reads the secrets
that scheme needs through ``ctx.secrets`` and returns a ``Credentials``: the headers and query
parameters to add to requests, the one origin they may be sent to, and a
``redaction.Redactor`` holding every secret value read and what is derived from them (the
Basic pair)::

    settings.auth   secrets              goes on the request as
    bearer          token                Authorization: Bearer <token>
    oauth2          accessToken          Authorization: Bearer <the Integration's OAuth2 token>
    basic           username, password   Authorization: Basic <base64>
    header          apiKey               <settings.headerName>: <apiKey>
    query           apiKey               ?<settings.queryName>=<apiKey>

The request code calls ``Credentials.apply`` on every request it sends, redirects included,
so credentials reach their origin only, and runs whatever it returns, raises or logs through
that redactor, so a server that echoes a token back never gets it into a run's journal. The
rule (encoded forms included, short values only where a whole string equals them) is
``connectors.redaction``'s, the same as the run's.
"""

from __future__ import annotations

import base64
import dataclasses

import httpx

from autoflow.connectors import sdk
from autoflow.connectors.sdk import redaction
from autoflow.crds import errors

SCHEMES = ("bearer", "oauth2", "basic", "header", "query")

# (scheme, host, port) with default ports as None, as httpx.URL normalises them.
Origin = tuple[str, str, int | None]


def origin(url: httpx.URL) -> Origin:
    return (url.scheme, url.host, url.port)


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """What to add to requests sent to ``origin``; ``origin=None`` means no credentials."""

    origin: Origin | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    query: dict[str, str] = dataclasses.field(default_factory=dict)
    redactor: redaction.Redactor = dataclasses.field(default_factory=redaction.Redactor)

    def allows(self, url: httpx.URL) -> bool:
        """Whether credentials may go to ``url``: their origin, or its upgrade to https."""
        if self.origin is None:
            return True
        scheme, host, port = self.origin
        if origin(url) == self.origin:
            return True
        upgrade = scheme == "http" and port is None and url.scheme == "https"
        return upgrade and url.host == host and url.port is None

    def apply(self, request: httpx.Request) -> None:
        """Add credentials if the request goes to their origin, else remove any we added.

        What the user set explicitly (a header or query parameter of the same name) wins.
        """
        if self.origin is None:
            return
        if not self.allows(request.url):
            for name, value in self.headers.items():
                if request.headers.get(name) == value:
                    del request.headers[name]
            return
        for name, value in self.headers.items():
            request.headers.setdefault(name, value)
        missing = {k: v for k, v in self.query.items() if k not in request.url.params}
        if missing:
            request.url = request.url.copy_merge_params(missing)


def credentials(ctx: sdk.ActionContext, home: httpx.URL) -> Credentials:
    """The credentials the step's Integration supplies, bound to the origin of ``home``.

    ``home`` is the Integration's ``baseUrl`` when it has one, so an absolute ``url`` (say,
    from an expression over a webhook payload) cannot carry them to another server.
    """
    integration = ctx.integration
    scheme = str(ctx.settings.get("auth") or "none").lower()
    if integration is None or scheme == "none":
        return Credentials()
    where = errors.Where(resource=f"Integration/{integration.name}", field="settings.auth")
    secret = ctx.secrets.get
    if scheme in ("bearer", "oauth2"):
        # oauth2: the token the Integration's oauth2 flow keeps current (runners.oauth2).
        token = secret("token" if scheme == "bearer" else "accessToken")
        return _made(home, {"Authorization": f"Bearer {token}"}, {}, [token])
    if scheme == "basic":
        username, password = secret("username"), secret("password")
        pair = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        return _made(home, {"Authorization": f"Basic {pair}"}, {}, [username, password, pair])
    if scheme == "header":
        name = _setting(ctx, "headerName", where)
        key = secret("apiKey")
        return _made(home, {name: key}, {}, [key])
    if scheme == "query":
        name = _setting(ctx, "queryName", where)
        key = secret("apiKey")
        return _made(home, {}, {name: key}, [key])
    raise errors.InvalidSettingsError(
        f"unknown auth scheme {scheme!r} (known: none, {', '.join(SCHEMES)})", where
    )


def _made(
    url: httpx.URL, headers: dict[str, str], query: dict[str, str], secrets: list[str]
) -> Credentials:
    return Credentials(origin(url), headers, query, redaction.Redactor(secrets))


def _setting(ctx: sdk.ActionContext, name: str, where: errors.Where) -> str:
    value = ctx.settings.get(name)
    if not isinstance(value, str) or not value:
        scheme = ctx.settings.get("auth")
        raise errors.InvalidSettingsError(
            f"auth {scheme!r} needs settings.{name} (the name to put the API key under)",
            where.replace(field=f"settings.{name}"),
        )
    return value
