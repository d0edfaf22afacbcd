"""Who is asking: the signed-in person of a request, and CSRF protection for unsafe methods.

Two authenticators, one face (``Authenticator``):

- ``TokenAuth`` (workspace mode): a random access token printed at start. ``?token=`` on any
  URL (the link printed) sets an HttpOnly cookie and redirects to the same URL without it, so
  the token leaves the address bar and the history; afterwards the cookie (or
  ``Authorization: Bearer``) authenticates. Compared in constant time.
- ``oidc.OidcAuth`` (cluster mode): OpenID Connect sign-in, an encrypted session cookie.

Each also holds the ``sealer`` its cookies are sealed with (``sealing``) and whether they are
``secure``: routes that keep state in the browser between two requests (the OAuth2 connect)
seal it with the same key.

CSRF: a request authenticated by a cookie and using an unsafe method (POST, PUT, PATCH,
DELETE) must carry ``X-CSRF-Token`` with the value ``GET /api/session`` gave. A request with
``Authorization: Bearer`` carries no ambient credential and needs none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Protocol

import fastapi
from fastapi import responses

from autoflow.webui import backend
from autoflow.webui.api import problems, sealing

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
TOKEN_COOKIE = "autoflow_token"


class Authenticator(Protocol):
    sealer: sealing.Sealer  # seals the cookies this authenticator's routes set
    secure: bool  # whether those cookies are Secure (HTTPS only)

    def person(self, request: fastapi.Request) -> backend.Person:
        """The person, or ``problems.NotSignedIn``; checks CSRF on unsafe methods."""
        ...

    def csrf_token(self, request: fastapi.Request) -> str: ...

    def router(self) -> fastapi.APIRouter | None: ...


def check_csrf(request: fastapi.Request, expected: str) -> None:
    if request.method in SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise problems.CsrfRefused(
            f"{request.method} needs the header {CSRF_HEADER} with the csrfToken of "
            "GET /api/session"
        )


class TokenAuth:
    """The workspace's access token (``secrets.token_urlsafe(32)`` unless given)."""

    def __init__(
        self, token: str | None = None, *, user: str = "workspace", secure: bool = False
    ) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self.user = user
        self.secure = secure
        self._csrf = hmac.new(self.token.encode(), b"csrf", hashlib.sha256).hexdigest()
        self.sealer = sealing.Sealer.derived(self.token, "autoflow cookies")

    def _matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

    def person(self, request: fastapi.Request) -> backend.Person:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and self._matches(header[7:].strip()):
            return backend.Person(self.user)
        cookie = request.cookies.get(TOKEN_COOKIE, "")
        if cookie and self._matches(cookie):
            check_csrf(request, self._csrf)
            return backend.Person(self.user)
        raise problems.NotSignedIn(
            "open the link with the access token printed when the workspace started"
        )

    def csrf_token(self, request: fastapi.Request) -> str:
        return self._csrf

    def router(self) -> fastapi.APIRouter | None:
        return None

    async def middleware(self, request: fastapi.Request, call_next: object) -> fastapi.Response:
        """``?token=`` → cookie, and the same URL without the token (a redirect)."""
        given = request.query_params.get("token")
        if given is not None and request.method in SAFE_METHODS:
            if not self._matches(given):
                return problems.problem(
                    401,
                    "Not signed in",
                    "the access token is not this workspace's",
                    kind="not-signed-in",
                )
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            url = request.url.replace(query="&".join(f"{k}={v}" for k, v in kept))
            response = responses.RedirectResponse(str(url), status_code=303)
            # Lax, not Strict: the browser's way back from an OAuth2 provider's consent page to
            # oauth/callback is a cross-site navigation, which must arrive signed in. Unsafe
            # methods need the CSRF header as well.
            response.set_cookie(
                TOKEN_COOKIE,
                self.token,
                httponly=True,
                samesite="lax",
                secure=self.secure,
                path="/",
            )
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"
            return response
        nxt = call_next
        result: fastapi.Response = await nxt(request)  # type: ignore[operator]
        return result
