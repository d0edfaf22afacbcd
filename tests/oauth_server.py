"""A local OAuth2 authorization server on 127.0.0.1: RFC 6749 with RFC 7636 PKCE.

It stands in for a SaaS provider's authorization server (Salesforce's, Dropbox's ...) so the
OAuth2 flows run against real HTTP without the internet. It serves, on a
``httpserver.Server``:

- the token endpoint (RFC 6749 section 3.2, POST, form-encoded): grants
  ``client_credentials`` (4.4, no refresh token), ``authorization_code`` (4.1.3: the code
  is single-use, bound to client and redirect_uri, and checked against the PKCE
  ``code_verifier``, RFC 7636 4.6) and ``refresh_token`` (section 6, with optional
  refresh-token rotation); client authentication by ``client_secret_basic`` or
  ``client_secret_post`` (2.3.1, never both); answers as 5.1 (``Cache-Control: no-store``,
  ``expires_in``) and errors as 5.2 (400, or 401 with ``WWW-Authenticate`` for a client
  that authenticated with a header);
- the authorization endpoint (4.1.1), which stands in for a user's consent: it checks
  client, redirect URI (a loopback redirect may use any port, RFC 8252 7.3), response type,
  scope and the PKCE challenge, then redirects at once with a code (4.1.2) or an error
  (4.1.2.1; an unknown client or redirect URI gets a 400 page instead of a redirect). With
  ``consent=True`` it shows a page instead, whose "Allow" and "Deny" links a browser test
  clicks, so the redirect back starts on the provider's own page (a cross-site navigation, as
  with a real provider), not on the client's.

``valid(token)`` is what a resource server asks (an introspection, in effect), so a contract
server can accept exactly the access tokens issued here and not yet expired::

    with httpserver.serve() as server:
        auth = oauth_server.AuthServer(server, expires_in=3600, rotate_refresh_tokens=True)
        auth.token_url, auth.authorize_url, auth.grants  # grants: one entry per token issued
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import html
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable

import httpserver

CLIENT_ID = "3MVG9autoflowTestClient"
CLIENT_SECRET = "cs-8f1Q3zR7vT2mK9xW4pL6nB0yH5jD"
CODE_LIFETIME = 600.0  # RFC 6749 4.1.2 recommends at most 10 minutes


@dataclasses.dataclass
class _Code:
    client_id: str
    redirect_uri: str | None
    scope: str
    challenge: str | None
    method: str | None
    issued: float
    used: bool = False


@dataclasses.dataclass
class _Issued:
    client_id: str
    scope: str
    expires: float


class AuthServer:
    """The authorization server; ``clock`` tells the time (tests move it to expire tokens)."""

    def __init__(
        self,
        server: httpserver.Server,
        *,
        clients: dict[str, str] | None = None,
        redirect_uris: list[str] | None = None,
        scopes: set[str] | None = None,
        expires_in: int | None = 3600,
        rotate_refresh_tokens: bool = False,
        require_pkce: bool = True,
        token_path: str = "/oauth2/token",
        authorize_path: str = "/oauth2/authorize",
        clock: Callable[[], float] = time.time,
        consent: bool = False,
    ) -> None:
        self.server = server
        self.consent = consent
        self.clients = clients if clients is not None else {CLIENT_ID: CLIENT_SECRET}
        self.redirect_uris = redirect_uris
        self.scopes = scopes
        self.expires_in = expires_in
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.require_pkce = require_pkce
        self.token_path = token_path
        self.authorize_path = authorize_path
        self.clock = clock
        self.grants: list[str] = []  # the grant of every token issued
        self.client_auth: list[str] = []  # client_secret_basic or client_secret_post, per call
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Issued] = {}
        self._refresh: dict[str, _Issued] = {}
        server.route(token_path, self.token)
        server.route(authorize_path, self.authorize)

    @property
    def token_url(self) -> str:
        return self.server.url(self.token_path)

    @property
    def authorize_url(self) -> str:
        return self.server.url(self.authorize_path)

    def valid(self, access_token: str) -> bool:
        """Whether ``access_token`` was issued here and has not expired."""
        with self._lock:
            issued = self._access.get(access_token)
        return issued is not None and issued.expires > self.clock()

    def expire_access_tokens(self) -> None:
        with self._lock:
            for issued in self._access.values():
                issued.expires = 0.0

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh.clear()

    @property
    def refresh_tokens(self) -> list[str]:
        with self._lock:
            return list(self._refresh)

    # The token endpoint (RFC 6749 3.2)

    def token(self, request: httpserver.Recorded) -> httpserver.Reply:
        if request.method != "POST":
            return httpserver.Reply(405, headers={"Allow": "POST"})
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            return _error("invalid_request", "the body must be application/x-www-form-urlencoded")
        form = urllib.parse.parse_qs(request.text, keep_blank_values=True)
        repeated = sorted(k for k, v in form.items() if len(v) > 1)
        if repeated:  # 3.2: "Request and response parameters MUST NOT be included more than once"
            return _error("invalid_request", f"repeated parameter {repeated[0]}")
        params = {k: v[0] for k, v in form.items()}
        client_id, failure = self._authenticate(request, params)
        if failure is not None:
            return failure
        grant = params.get("grant_type")
        if grant == "client_credentials":
            return self._client_credentials(client_id, params)
        if grant == "authorization_code":
            return self._authorization_code(client_id, params)
        if grant == "refresh_token":
            return self._refresh_token(client_id, params)
        if not grant:
            return _error("invalid_request", "grant_type is missing")
        return _error("unsupported_grant_type", f"grant_type {grant} is not supported")

    def _authenticate(
        self, request: httpserver.Recorded, params: dict[str, str]
    ) -> tuple[str, httpserver.Reply | None]:
        header = request.headers.get("authorization", "")
        in_body = "client_secret" in params
        if header and in_body:
            return "", _error("invalid_request", "use one client authentication method")
        if header:
            scheme, _, encoded = header.partition(" ")
            try:
                pair = base64.b64decode(encoded, validate=True).decode()
            except ValueError:
                pair = ""
            user, sep, password = pair.partition(":")
            if scheme.lower() != "basic" or not sep:
                return "", _error("invalid_client", "malformed Basic credentials", basic=True)
            # 2.3.1: id and secret are form-encoded before they are joined.
            client_id = urllib.parse.unquote_plus(user)
            secret = urllib.parse.unquote_plus(password)
            method = "client_secret_basic"
        elif in_body:
            client_id, secret = params.get("client_id", ""), params["client_secret"]
            method = "client_secret_post"
        else:
            return "", _error("invalid_client", "client authentication is required", status=401)
        known = self.clients.get(client_id)
        if known is None or not hmac.compare_digest(known, secret):
            return "", _error(
                "invalid_client", "unknown client or wrong secret", basic=bool(header), status=401
            )
        if params.get("client_id", client_id) != client_id:
            return "", _error("invalid_client", "client_id differs from the authenticated one")
        with self._lock:
            self.client_auth.append(method)
        return client_id, None

    def _scope(self, asked: str | None, allowed: str | None = None) -> str | None:
        """The granted scope, or None when ``asked`` is not allowed."""
        wanted = set((asked or "").split())
        limit = set(allowed.split()) if allowed is not None else self.scopes
        if limit is not None and not wanted <= limit:
            return None
        return " ".join(sorted(wanted)) if asked else (allowed or "")

    def _client_credentials(self, client_id: str, params: dict[str, str]) -> httpserver.Reply:
        scope = self._scope(params.get("scope"))
        if scope is None:
            return _error("invalid_scope", "the client may not ask for this scope")
        # 4.4.3: a refresh token SHOULD NOT be included.
        return self._issue("client_credentials", client_id, scope, refresh=False)

    def _authorization_code(self, client_id: str, params: dict[str, str]) -> httpserver.Reply:
        code = params.get("code")
        if not code:
            return _error("invalid_request", "code is missing")
        with self._lock:
            grant = self._codes.get(code)
            reused = grant is not None and grant.used
            if grant is not None:
                grant.used = True
        if grant is None or reused or self.clock() - grant.issued > CODE_LIFETIME:
            # 4.1.2: a code used twice is refused (and its tokens SHOULD be revoked).
            return _error("invalid_grant", "the authorization code is invalid or used")
        if grant.client_id != client_id:
            return _error("invalid_grant", "the code was issued to another client")
        if grant.redirect_uri is not None and params.get("redirect_uri") != grant.redirect_uri:
            return _error("invalid_grant", "redirect_uri differs from the authorization request")
        if grant.challenge is not None:
            verifier = params.get("code_verifier")
            if not verifier:
                return _error("invalid_grant", "code_verifier is missing")
            digest = hashlib.sha256(verifier.encode("ascii")).digest()
            computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not hmac.compare_digest(computed, grant.challenge):
                return _error("invalid_grant", "code_verifier does not match the challenge")
        return self._issue("authorization_code", client_id, grant.scope, refresh=True)

    def _refresh_token(self, client_id: str, params: dict[str, str]) -> httpserver.Reply:
        token = params.get("refresh_token")
        if not token:
            return _error("invalid_request", "refresh_token is missing")
        with self._lock:
            issued = self._refresh.get(token)
        if issued is None or issued.client_id != client_id:
            return _error("invalid_grant", "the refresh token is invalid, expired or revoked")
        scope = self._scope(params.get("scope"), issued.scope)
        if scope is None:
            return _error("invalid_scope", "a refresh may not widen the scope")
        if not self.rotate_refresh_tokens:
            return self._issue("refresh_token", client_id, scope, refresh=False)
        with self._lock:
            self._refresh.pop(token, None)
        return self._issue("refresh_token", client_id, scope, refresh=True)

    def _issue(self, grant: str, client_id: str, scope: str, *, refresh: bool) -> httpserver.Reply:
        access = "at-" + secrets.token_urlsafe(24)
        lifetime = self.expires_in if self.expires_in is not None else 10**9
        body: dict[str, object] = {"access_token": access, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if scope:
            body["scope"] = scope
        with self._lock:
            self._access[access] = _Issued(client_id, scope, self.clock() + lifetime)
            if refresh:
                token = "rt-" + secrets.token_urlsafe(24)
                self._refresh[token] = _Issued(client_id, scope, float("inf"))
                body["refresh_token"] = token
            self.grants.append(grant)
        return httpserver.Reply.with_json(body, headers=_NO_STORE)

    # The authorization endpoint (RFC 6749 4.1.1), standing in for the user's consent

    def authorize(self, request: httpserver.Recorded) -> httpserver.Reply:
        params = {k: v[0] for k, v in request.query.items()}
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri")
        if client_id not in self.clients:
            return httpserver.Reply(400, "unknown client_id")  # 4.1.2.1: do not redirect
        if redirect_uri is None or not self._registered(redirect_uri):
            return httpserver.Reply(400, "redirect_uri is missing or not registered")
        state = params.get("state")

        def refuse(error: str, description: str) -> httpserver.Reply:
            answer = {"error": error, "error_description": description}
            if state is not None:
                answer["state"] = state
            return httpserver.Reply.redirect(_with_query(redirect_uri, answer))

        if params.get("response_type") != "code":
            return refuse("unsupported_response_type", "only response_type=code is supported")
        scope = self._scope(params.get("scope"))
        if scope is None:
            return refuse("invalid_scope", "the client may not ask for this scope")
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        if challenge is None and self.require_pkce:
            return refuse("invalid_request", "code_challenge is required (PKCE)")
        if challenge is not None and method != "S256":
            return refuse("invalid_request", "code_challenge_method must be S256")
        code = "code-" + secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = _Code(
                client_id, redirect_uri, scope, challenge, method, self.clock()
            )
        answer = {"code": code}
        if state is not None:
            answer["state"] = state
        if self.consent:
            denied = {"error": "access_denied", **({"state": state} if state else {})}
            allow = html.escape(_with_query(redirect_uri, answer))
            deny = html.escape(_with_query(redirect_uri, denied))
            page = (
                f"<!doctype html><title>Consent</title><p>Let {html.escape(client_id)} use "
                f'{html.escape(scope)}?</p><a href="{allow}">Allow</a> <a href="{deny}">Deny</a>'
            )
            return httpserver.Reply(200, page, {"Content-Type": "text/html; charset=utf-8"})
        return httpserver.Reply.redirect(_with_query(redirect_uri, answer))

    def _registered(self, redirect_uri: str) -> bool:
        if self.redirect_uris is None:
            return True
        given = urllib.parse.urlsplit(redirect_uri)
        for uri in self.redirect_uris:
            known = urllib.parse.urlsplit(uri)
            if uri == redirect_uri:
                return True
            # RFC 8252 7.3: a loopback redirect URI may use any port.
            loopback = known.hostname in ("127.0.0.1", "::1") and known.scheme == "http"
            if loopback and (given.scheme, given.hostname, given.path) == (
                known.scheme,
                known.hostname,
                known.path,
            ):
                return True
        return False


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error(
    error: str, description: str, *, status: int = 400, basic: bool = False
) -> httpserver.Reply:
    """An error response as RFC 6749 5.2 describes it."""
    headers = dict(_NO_STORE)
    if basic:
        status = 401
        headers["WWW-Authenticate"] = 'Basic realm="oauth2"'
    return httpserver.Reply.with_json(
        {"error": error, "error_description": description}, status, headers
    )


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(uri)
    query = "&".join(q for q in (parts.query, urllib.parse.urlencode(params)) if q)
    return urllib.parse.urlunsplit(parts._replace(query=query))
