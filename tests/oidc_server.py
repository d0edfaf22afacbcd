"""A local OpenID Connect provider on 127.0.0.1, built on ``oauth_server.AuthServer``.

It stands in for an organisation's identity provider (Dex, Keycloak, Entra ID, Google) so the
web API's sign-in runs against real HTTP. On top of the OAuth2 server (RFC 6749 + RFC 7636
PKCE) it follows OpenID Connect Core 1.0 and Discovery 1.0:

- ``/.well-known/openid-configuration`` (Discovery 4): issuer, endpoints, ``jwks_uri``,
  ``code`` response type, ``S256``, ``RS256``;
- ``/jwks`` (RFC 7517): the public signing key;
- the authorization endpoint remembers ``nonce`` (Core 3.1.2.1) and who signed in
  (``login_as``, standing in for the person typing a password);
- the token endpoint answers an ``authorization_code`` grant with an ``id_token`` (Core
  3.1.3.3): a JWT signed RS256 (authlib.jose) with ``iss``, ``sub``, ``aud``, ``exp``,
  ``iat``, ``nonce``, ``email`` and ``groups``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.parse
import warnings
from typing import Any

import httpserver
import oauth_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib import jose  # type: ignore[import-untyped]

CLIENT_ID = "autoflow-webui"
CLIENT_SECRET = "oidc-cs-9Jk2Lm4Np6Qr8St0Uv"


class OidcProvider(oauth_server.AuthServer):
    def __init__(self, server: httpserver.Server, **kwargs: Any) -> None:
        kwargs.setdefault("clients", {CLIENT_ID: CLIENT_SECRET})
        super().__init__(server, **kwargs)
        self.key = jose.JsonWebKey.generate_key("RSA", 2048, is_private=True)
        self.kid = secrets.token_hex(4)
        self.login_as: tuple[str, list[str]] = ("ann@example.com", [])
        self.audience: str | None = None  # set to break the aud claim in a test
        self._signins: dict[str, dict[str, Any]] = {}
        self._signin_lock = threading.Lock()
        server.route("/.well-known/openid-configuration", self.configuration)
        server.route("/jwks", self.jwks)

    @property
    def issuer(self) -> str:
        return self.server.url("").rstrip("/")

    def configuration(self, request: httpserver.Recorded) -> httpserver.Reply:
        return httpserver.Reply.with_json(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.authorize_url,
                "token_endpoint": self.token_url,
                "jwks_uri": self.server.url("/jwks"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "profile", "email", "groups"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )

    def jwks(self, request: httpserver.Recorded) -> httpserver.Reply:
        public = self.key.as_dict(is_private=False)
        public.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return httpserver.Reply.with_json({"keys": [public]})

    def authorize(self, request: httpserver.Recorded) -> httpserver.Reply:
        reply = super().authorize(request)
        location = reply.headers.get("Location", "")
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("code")
        if code:
            params = {k: v[0] for k, v in request.query.items()}
            with self._signin_lock:
                self._signins[code[0]] = {
                    "nonce": params.get("nonce"),
                    "user": self.login_as,
                    "client": params.get("client_id"),
                }
        return reply

    def _authorization_code(self, client_id: str, params: dict[str, str]) -> httpserver.Reply:
        reply = super()._authorization_code(client_id, params)
        with self._signin_lock:
            signin = self._signins.pop(params.get("code", ""), None)
        if reply.status != 200 or signin is None:
            return reply
        body = json.loads(reply.body)
        user, groups = signin["user"]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.audience or client_id,
            "iat": now,
            "exp": now + 300,
            "email": user,
            "groups": groups,
        }
        if signin["nonce"] is not None:
            claims["nonce"] = signin["nonce"]
        header = {"alg": "RS256", "kid": self.kid}
        body["id_token"] = jose.jwt.encode(header, claims, self.key).decode()
        return httpserver.Reply.with_json(body, headers={"Cache-Control": "no-store"})
