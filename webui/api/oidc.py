"""Sign-in in the cluster: OpenID Connect authorization code flow with PKCE, through authlib.

    GET  auth/login?next=/path   discovery (cached) → state, nonce, PKCE verifier kept in a
                                 short-lived encrypted cookie → 302 to the provider
    GET  auth/callback           state checked → code exchanged (client secret + verifier,
                                 RFC 7636) → ID token verified (signature by the provider's
                                 JWKS, iss, aud, exp, nonce: OIDC Core 3.1.3.7) → session
                                 cookie → 303 to ``next`` (a path of this site only)
    POST auth/logout             the session cookie is cleared (CSRF-checked like any POST)

The session is a cookie: HttpOnly, Secure (unless turned off for plain-HTTP development),
SameSite=Lax (the provider's redirect back is a top-level GET), encrypted and authenticated
with Fernet (AES-CBC + HMAC-SHA256: ``sealing``) under ``sessionKey``, and bounded:
Fernet's timestamp is checked against ``sessionLifetime`` on every request. It holds the user
name, groups and the CSRF token; no provider token is kept at all (the web API acts through
impersonation, not with the person's token), so none can leak into a URL, log or response.

The person Kubernetes sees is ``userPrefix + claim[usernameClaim]`` in
``groupPrefix + each of claim[groupsClaim]`` — set the prefixes as the API server's own
``--oidc-username-prefix``/``--oidc-groups-prefix`` are set, so RoleBindings read the same.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
import urllib.parse
import warnings
from typing import Any

import fastapi
import httpx
from fastapi import responses

from autoflow.crds import errors
from autoflow.webui import backend
from autoflow.webui.api import auth, problems, sealing

SESSION_COOKIE = "autoflow_session"
PENDING_COOKIE = "autoflow_signin"
PENDING_LIFETIME = 600  # seconds from login to callback


@dataclasses.dataclass(slots=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    session_key: str = ""  # a Fernet key (32 url-safe base64 bytes); random when empty
    scopes: str = "openid profile email groups"
    username_claim: str = "email"
    groups_claim: str = "groups"
    user_prefix: str = ""
    group_prefix: str = ""
    session_lifetime: int = 8 * 3600
    secure_cookie: bool = True
    redirect_url: str = ""  # the callback's public URL; derived from the request when empty


def new_session_key() -> str:
    return sealing.new_key()


def _authlib() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from authlib import jose  # type: ignore[import-untyped]
        from authlib.integrations import httpx_client  # type: ignore[import-untyped]
    return jose, httpx_client


class OidcAuth:
    """The cluster's authenticator (``auth.Authenticator``)."""

    def __init__(self, settings: OidcSettings, *, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        # Every cookie it sets is sealed under the session key (``sealing``).
        self.sealer = sealing.Sealer(settings.session_key or new_session_key())
        self.secure = settings.secure_cookie
        self._discovery: dict[str, Any] | None = None
        self._jwks: Any = None
        self._http = http

    # -- sessions ------------------------------------------------------------------------------

    def _session(self, request: fastapi.Request) -> dict[str, Any] | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        return self.sealer.open(cookie, self.settings.session_lifetime)

    def person(self, request: fastapi.Request) -> backend.Person:
        session = self._session(request)
        if session is None:
            raise problems.NotSignedIn("sign in at auth/login (the session is missing or expired)")
        auth.check_csrf(request, session["csrf"])
        return backend.Person(session["user"], tuple(session["groups"]))

    def csrf_token(self, request: fastapi.Request) -> str:
        session = self._session(request)
        return str(session["csrf"]) if session else ""

    # -- the provider --------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0)
        return self._http

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                answer = await self._client().get(url)
                answer.raise_for_status()
                found: dict[str, Any] = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise errors.AutoflowError(
                    f"the OIDC provider's discovery document at {url} cannot be read: "
                    f"{type(exc).__name__}"
                ) from None
            if found.get("issuer") != self.settings.issuer:
                raise errors.AutoflowError(
                    f"the OIDC discovery document names issuer {found.get('issuer')!r}, not "
                    f"the configured {self.settings.issuer!r} (OIDC Discovery 4.3)"
                )
            self._discovery = found
        return self._discovery

    async def jwks(self, refresh: bool = False) -> Any:
        if self._jwks is None or refresh:
            jose, _ = _authlib()
            url = (await self.discovery())["jwks_uri"]
            answer = await self._client().get(url)
            answer.raise_for_status()
            self._jwks = jose.JsonWebKey.import_key_set(answer.json())
        return self._jwks

    def _redirect_url(self, request: fastapi.Request) -> str:
        return self.settings.redirect_url or str(request.url_for("oidc_callback"))

    # -- the routes ----------------------------------------------------------------------------

    def router(self) -> fastapi.APIRouter:
        router = fastapi.APIRouter(tags=["sign-in"])
        router.add_api_route("/auth/login", self.login, methods=["GET"], name="oidc_login")
        router.add_api_route(
            "/auth/callback",
            self.callback,
            methods=["GET"],
            name="oidc_callback",
            include_in_schema=False,
        )
        router.add_api_route(
            "/auth/logout", self.logout, methods=["POST"], status_code=204, name="oidc_logout"
        )
        return router

    async def login(self, request: fastapi.Request, next: str = "/") -> responses.Response:
        """Redirects to the provider's sign-in page."""
        found = await self.discovery()
        _, httpx_client = _authlib()
        verifier = secrets.token_urlsafe(64)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        client = httpx_client.AsyncOAuth2Client(
            client_id=self.settings.client_id,
            scope=self.settings.scopes,
            redirect_uri=self._redirect_url(request),
            code_challenge_method="S256",
        )
        url, _ = client.create_authorization_url(
            found["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
        )
        await client.aclose()
        response = responses.RedirectResponse(url, status_code=302)
        pending = {"state": state, "nonce": nonce, "verifier": verifier, "next": _local(next)}
        response.set_cookie(
            PENDING_COOKIE,
            self.sealer.seal(pending),
            max_age=PENDING_LIFETIME,
            httponly=True,
            secure=self.settings.secure_cookie,
            samesite="lax",
            path="/",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    async def callback(
        self, request: fastapi.Request, code: str = "", state: str = "", error: str = ""
    ) -> responses.Response:
        cookie = request.cookies.get(PENDING_COOKIE, "")
        pending = self.sealer.open(cookie, PENDING_LIFETIME) if cookie else None
        if pending is None or not secrets.compare_digest(pending["state"], state or "-"):
            raise problems.NotSignedIn(
                "the sign-in did not start here or took too long; start again"
            )
        if error or not code:
            raise problems.NotSignedIn(f"the provider refused the sign-in: {error or 'no code'}")
        found = await self.discovery()
        _, httpx_client = _authlib()
        client = httpx_client.AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            redirect_uri=self._redirect_url(request),
        )
        try:
            token = await client.fetch_token(
                found["token_endpoint"],
                code=code,
                code_verifier=pending["verifier"],
                grant_type="authorization_code",
            )
        except Exception as exc:
            # The provider's answer can quote the code: say only what kind of failure it was.
            raise problems.NotSignedIn(
                f"the provider did not exchange the code ({type(exc).__name__})"
            ) from None
        finally:
            await client.aclose()
        claims = await self._verify(str(token.get("id_token") or ""), pending["nonce"])
        user = claims.get(self.settings.username_claim)
        if not isinstance(user, str) or not user:
            raise problems.NotSignedIn(
                f"the ID token has no {self.settings.username_claim!r} claim to name the user"
            )
        raw_groups = claims.get(self.settings.groups_claim) or []
        groups = (
            [g for g in raw_groups if isinstance(g, str)] if isinstance(raw_groups, list) else []
        )
        session = {
            "user": self.settings.user_prefix + user,
            "groups": [self.settings.group_prefix + g for g in groups],
            "csrf": secrets.token_urlsafe(32),
        }
        response = responses.RedirectResponse(pending["next"], status_code=303)
        response.delete_cookie(PENDING_COOKIE, path="/")
        response.set_cookie(
            SESSION_COOKIE,
            self.sealer.seal(session),
            max_age=self.settings.session_lifetime,
            httponly=True,
            secure=self.settings.secure_cookie,
            samesite="lax",
            path="/",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims after OIDC Core 3.1.3.7: signature, iss, aud, exp, nonce."""
        if not id_token:
            raise problems.NotSignedIn("the provider answered without an ID token")
        jose, _ = _authlib()
        options = {
            "iss": {"essential": True, "value": self.settings.issuer},
            "aud": {"essential": True, "value": self.settings.client_id},
            "exp": {"essential": True},
            "nonce": {"essential": True, "value": nonce},
        }
        for attempt in (False, True):  # a key not known yet: the provider rotated, fetch again
            try:
                claims = jose.jwt.decode(
                    id_token, await self.jwks(refresh=attempt), claims_options=options
                )
                claims.validate(now=int(time.time()), leeway=60)
                return dict(claims)
            except Exception as exc:
                if attempt:
                    raise problems.NotSignedIn(
                        f"the ID token is not valid: {type(exc).__name__}: {_short(exc)}"
                    ) from None
        raise AssertionError("unreachable")

    async def logout(self, request: fastapi.Request) -> responses.Response:
        self.person(request)  # signed in, and the CSRF token given
        response = responses.Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 and "eyJ" not in text else "refused"


def _local(target: str) -> str:
    """``next`` only as a path of this site: never an open redirect."""
    parts = urllib.parse.urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
