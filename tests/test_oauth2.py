"""OAuth2 for Integrations, against a real authorization server on 127.0.0.1.

``oauth_server.AuthServer`` plays the provider (RFC 6749 + PKCE); the Salesforce and Dropbox
contract servers from ``tests/saas`` play the APIs and accept exactly the access tokens it
issued and has not expired, so a step succeeds only with a token the flow obtained. Covered:
client credentials (one fetch for many concurrent steps, a new one before expiry), the
authorization code flow through ``autoflow integrations authorize`` (a browser stand-in
follows the redirects), refresh with and without rotation, the operator's ``refresh_if_due``,
the runner's refusal to use an expired token it may not refresh, error mapping (invalid_grant,
invalid_client, 429, 503, unreachable) with credentials kept out of every message, and whole
``autoflow run`` invocations.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import stat
import subprocess
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpserver
import httpx
import oauth_server
import pytest
import yaml
from saas import contract, dropbox, salesforce

from autoflow.cli import authorize
from autoflow.crds import errors, integration
from autoflow.runners.access import integrations, oauth2, redact
from autoflow.runners.local import run as local

ROOT = Path(__file__).resolve().parent.parent
SALESFORCE_TOKEN_PATH = "/services/oauth2/token"
UTC = datetime.UTC


@pytest.fixture
def server() -> Iterator[httpserver.Server]:
    with httpserver.serve() as running:
        yield running
    assert not running.errors, running.errors


@pytest.fixture
def auth(server: httpserver.Server) -> oauth_server.AuthServer:
    return oauth_server.AuthServer(server, scopes={"api", "files.content.write", "refresh"})


def make_integration(
    auth: oauth_server.AuthServer,
    grant: str,
    *,
    name: str = "crm",
    type_: str = "salesforce",
    settings: dict[str, Any] | None = None,
    token_secret_name: str | None = None,
    scopes: list[str] | None = None,
) -> integration.Integration:
    oauth: dict[str, Any] = {
        "grantType": grant,
        "tokenUrl": auth.token_url,
        "clientId": oauth_server.CLIENT_ID,
        "scopes": scopes if scopes is not None else ["api"],
    }
    if grant == "authorization_code":
        oauth["authorizeUrl"] = auth.authorize_url
    if token_secret_name:
        oauth["tokenSecretName"] = token_secret_name
    return integration.Integration.model_validate(
        {
            "metadata": {"name": name, "namespace": "sales"},
            "spec": {
                "type": type_,
                "settings": settings or {},
                "secretRef": {"name": f"{name}-oauth"},
                "oauth2": oauth,
            },
        }
    )


class DictSecrets:
    """A Secret's keys as a runner reads them: a missing key is a MissingSecretError."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.reads: list[str] = []

    def get(self, key: str) -> str:
        self.reads.append(key)
        if key not in self.values:
            raise errors.MissingSecretError(f"no key {key!r}")
        return self.values[key]


def client_secrets(**extra: str) -> DictSecrets:
    return DictSecrets({"clientSecret": oauth_server.CLIENT_SECRET, **extra})


class Clock:
    """A movable clock for TokenCache: starts at the real time."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(UTC)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


def get_code(auth: oauth_server.AuthServer, spec: integration.OAuth2, verifier: str) -> str:
    """What a browser does: open the authorize URL and read the code off the redirect."""
    redirect = "http://127.0.0.1:9/callback"
    url = oauth2.authorization_url(spec, redirect, state="s-1", code_verifier=verifier)
    answer = httpx.get(url)
    assert answer.status_code == 302, answer.text
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["s-1"]
    return query["code"][0]


async def authorized(auth: oauth_server.AuthServer, intg: integration.Integration) -> oauth2.Token:
    spec = intg.spec.oauth2
    assert spec is not None
    verifier = oauth2.new_code_verifier()
    code = await asyncio.to_thread(get_code, auth, spec, verifier)
    return await oauth2.exchange_code(
        spec,
        oauth_server.CLIENT_SECRET,
        code,
        "http://127.0.0.1:9/callback",
        verifier,
        integration_name="crm",
    )


# -- tokens as stored ------------------------------------------------------------------------


def test_token_round_trips_through_secret_data_and_hides_credentials() -> None:
    when = datetime.datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)
    token = oauth2.Token("at-secret-1", "rt-secret-2", when, "Bearer", "api refresh")
    data = token.to_secret_data()
    assert data == {
        "accessToken": "at-secret-1",
        "refreshToken": "rt-secret-2",
        "expiresAt": "2031-05-04T03:02:01Z",
        "tokenType": "Bearer",
        "scope": "api refresh",
    }
    assert oauth2.Token.from_secret_data(data) == token
    assert "secret" not in repr(token)
    # Unknown values are written as "" so nothing of an older token stays behind.
    bare = oauth2.Token("at-only")
    assert bare.to_secret_data()["refreshToken"] == ""
    assert bare.to_secret_data()["expiresAt"] == ""
    assert oauth2.Token.from_secret_data(bare.to_secret_data()) == bare
    assert oauth2.Token.from_secret_data({"refreshToken": "rt"}) is None
    with pytest.raises(ValueError, match="expiresAt is not an RFC 3339 time"):
        oauth2.Token.from_secret_data({"accessToken": "a", "expiresAt": "tomorrow"})


def test_expires_within_takes_datetimes_and_epoch_seconds() -> None:
    when = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    token = oauth2.Token("a", expires_at=when)
    assert token.expires_within(60, when - datetime.timedelta(seconds=60))
    assert not token.expires_within(60, when - datetime.timedelta(seconds=61))
    assert token.expires_within(60, when.timestamp() - 30)
    assert not oauth2.Token("a").expires_within(10**6, when)


# -- client credentials ----------------------------------------------------------------------


async def test_client_credentials_is_fetched_once_for_many_concurrent_steps(
    auth: oauth_server.AuthServer,
) -> None:
    intg = make_integration(auth, "client_credentials")
    cache = integrations.TokenCache()
    redactor = redact.Redactor()
    base = client_secrets()

    async def step() -> str:
        info = await integrations.resolve_info(
            intg, base, redactor, can_refresh=False, token_cache=cache
        )
        return info.secrets.get("accessToken")

    tokens = await asyncio.gather(*(step() for _ in range(20)))
    assert auth.grants == ["client_credentials"]
    assert len(set(tokens)) == 1 and auth.valid(tokens[0])
    assert auth.client_auth == ["client_secret_basic"]
    form = auth.server.last(auth.token_path).form()
    assert form["grant_type"] == ["client_credentials"] and form["scope"] == ["api"]
    # Everything read or obtained is masked in what the run records.
    assert redactor.text(f"{tokens[0]} {oauth_server.CLIENT_SECRET}") == "*** ***"
    # Keys other than accessToken still come from the Integration's Secret.
    info = await integrations.resolve_info(
        intg, base, redactor, can_refresh=False, token_cache=cache
    )
    assert info.secrets.get("clientSecret") == oauth_server.CLIENT_SECRET
    assert auth.grants == ["client_credentials"]


def client_credentials_token(
    intg: integration.Integration, cache: integrations.TokenCache
) -> Callable[[], Awaitable[str]]:
    """What a step reads as its accessToken, through the given cache."""

    async def token() -> str:
        secrets = await integrations.prepare_oauth2(
            intg, client_secrets(), None, redact.Redactor(), can_refresh=False, cache=cache
        )
        return secrets.get("accessToken")

    return token


async def test_client_credentials_token_is_fetched_again_before_it_expires(
    server: httpserver.Server,
) -> None:
    auth = oauth_server.AuthServer(server, expires_in=3600)
    intg = make_integration(auth, "client_credentials", scopes=[])
    clock = Clock()
    cache = integrations.TokenCache(clock)
    token = client_credentials_token(intg, cache)

    first = await token()
    clock.advance(3600 - 120)  # two minutes left: still good
    assert await token() == first
    clock.advance(90)  # 30 s left: within a minute of expiry, so a new one
    second = await token()
    assert second != first and auth.valid(second)
    assert auth.grants == ["client_credentials", "client_credentials"]
    assert "scope" not in auth.server.last(auth.token_path).form()


async def test_client_credentials_without_expires_in_is_reused_for_a_while(
    server: httpserver.Server,
) -> None:
    auth = oauth_server.AuthServer(server, expires_in=None)
    intg = make_integration(auth, "client_credentials", scopes=[])
    clock = Clock()
    cache = integrations.TokenCache(clock)
    token = client_credentials_token(intg, cache)

    first = await token()
    clock.advance(integrations.UNKNOWN_LIFETIME_SECONDS - 1)
    assert await token() == first
    clock.advance(2)
    assert await token() != first
    assert len(auth.grants) == 2


async def test_missing_client_secret_is_a_missing_secret(auth: oauth_server.AuthServer) -> None:
    intg = make_integration(auth, "client_credentials")
    with pytest.raises(errors.MissingSecretError):
        await integrations.prepare_oauth2(
            intg,
            DictSecrets({}),
            None,
            redact.Redactor(),
            can_refresh=True,
            cache=integrations.TokenCache(),
        )
    assert auth.grants == []


# -- errors at the token endpoint ------------------------------------------------------------


async def test_wrong_client_secret_is_permanent_and_names_the_integration(
    auth: oauth_server.AuthServer,
) -> None:
    intg = make_integration(auth, "client_credentials")
    assert intg.spec.oauth2 is not None
    with pytest.raises(errors.PermanentError) as info:
        await oauth2.client_credentials(intg.spec.oauth2, "wrong-secret", integration_name="crm")
    message = str(info.value)
    assert "integration 'crm'" in message
    assert "invalid_client" in message and "check oauth2.clientId" in message
    assert "wrong-secret" not in message


async def test_unavailable_token_endpoint_is_retryable_with_retry_after(
    auth: oauth_server.AuthServer,
) -> None:
    intg = make_integration(auth, "client_credentials")
    assert intg.spec.oauth2 is not None
    auth.server.queue(
        auth.token_path,
        httpserver.Reply(503, "<html>maintenance</html>", {"Retry-After": "7"}),
        httpserver.Reply.with_json({"error": "rate_limited"}, 429, {"Retry-After": "12"}),
    )
    with pytest.raises(errors.RetryableError) as info:
        await oauth2.client_credentials(intg.spec.oauth2, "s3cr3t-value", integration_name="crm")
    assert info.value.retry_after == 7
    assert "integration 'crm'" in str(info.value) and "HTTP 503" in str(info.value)
    with pytest.raises(errors.RetryableError) as info:
        await oauth2.client_credentials(intg.spec.oauth2, "s3cr3t-value", integration_name="crm")
    assert info.value.retry_after == 12 and "HTTP 429" in str(info.value)


async def test_unreachable_token_endpoint_is_retryable() -> None:
    with httpserver.serve() as gone:
        url = gone.url("/oauth2/token")
    spec = integration.OAuth2(grant_type="client_credentials", token_url=url, client_id="c")
    with pytest.raises(errors.RetryableError, match="cannot reach the OAuth2 token endpoint"):
        await oauth2.client_credentials(spec, "s3cr3t-value", integration_name="crm", timeout=2)


async def test_an_error_body_echoing_credentials_keeps_them_out_of_the_error(
    auth: oauth_server.AuthServer,
) -> None:
    """Some token endpoints quote the request back in error_description."""
    intg = make_integration(auth, "authorization_code")
    spec = intg.spec.oauth2
    assert spec is not None
    secret = "cs/with+odd chars=9"
    refresh_token = "rt-echoed-7Fq2"

    def echo(request: httpserver.Recorded) -> httpserver.Reply:
        return httpserver.Reply.with_json(
            {
                "error": "invalid_grant",
                "error_description": f"refused {request.text} from "
                f"{request.headers.get('authorization', '')} (secret {secret})",
            },
            400,
        )

    auth.server.queue(auth.token_path, echo)
    with pytest.raises(errors.PermanentError) as info:
        await oauth2.refresh(spec, secret, refresh_token, integration_name="crm")
    message = str(info.value)
    assert "refused" in message  # the description is there ...
    for credential in (secret, urllib.parse.quote_plus(secret), refresh_token):
        assert credential not in message  # ... without the credentials it quoted
    assert auth.server.last(auth.token_path).form()["refresh_token"] == [refresh_token]


async def test_an_answer_without_an_access_token_is_permanent(
    auth: oauth_server.AuthServer,
) -> None:
    intg = make_integration(auth, "client_credentials")
    assert intg.spec.oauth2 is not None
    auth.server.queue(auth.token_path, httpserver.Reply.with_json({"token_type": "Bearer"}))
    with pytest.raises(errors.PermanentError, match="has no access_token"):
        await oauth2.client_credentials(intg.spec.oauth2, "s3cr3t", integration_name="crm")


# -- authorization code, refresh -------------------------------------------------------------


async def test_refresh_rotates_and_the_old_refresh_token_is_then_refused(
    server: httpserver.Server,
) -> None:
    auth = oauth_server.AuthServer(server, rotate_refresh_tokens=True)
    intg = make_integration(auth, "authorization_code")
    spec = intg.spec.oauth2
    assert spec is not None
    first = await authorized(auth, intg)
    assert first.refresh_token and auth.valid(first.access_token)
    second = await oauth2.refresh(
        spec, oauth_server.CLIENT_SECRET, first.refresh_token, integration_name="crm"
    )
    assert second.access_token != first.access_token and auth.valid(second.access_token)
    assert second.refresh_token not in (None, first.refresh_token)
    assert auth.server.last(auth.token_path).form().get("scope") is None
    with pytest.raises(errors.PermanentError) as info:
        await oauth2.refresh(
            spec, oauth_server.CLIENT_SECRET, first.refresh_token, integration_name="crm"
        )
    message = str(info.value)
    assert "integration 'crm'" in message
    assert "refresh token rejected (invalid_grant" in message
    assert "autoflow integrations authorize" in message
    assert first.refresh_token not in message


async def test_refresh_keeps_the_refresh_token_when_the_server_does_not_rotate(
    auth: oauth_server.AuthServer,
) -> None:
    intg = make_integration(auth, "authorization_code")
    spec = intg.spec.oauth2
    assert spec is not None
    first = await authorized(auth, intg)
    assert first.refresh_token
    second = await oauth2.refresh(
        spec, oauth_server.CLIENT_SECRET, first.refresh_token, integration_name="crm"
    )
    assert second.refresh_token == first.refresh_token
    assert second.scope == "api"
    assert auth.grants == ["authorization_code", "refresh_token"]


async def test_exchange_needs_the_pkce_verifier(auth: oauth_server.AuthServer) -> None:
    intg = make_integration(auth, "authorization_code")
    spec = intg.spec.oauth2
    assert spec is not None
    code = await asyncio.to_thread(get_code, auth, spec, oauth2.new_code_verifier())
    with pytest.raises(errors.PermanentError, match="authorization code rejected"):
        await oauth2.exchange_code(
            spec,
            oauth_server.CLIENT_SECRET,
            code,
            "http://127.0.0.1:9/callback",
            oauth2.new_code_verifier(),  # not the one the challenge was made from
            integration_name="crm",
        )


def test_authorization_url_carries_client_scope_state_and_s256_challenge() -> None:
    spec = integration.OAuth2(
        grant_type="authorization_code",
        token_url="https://api.dropboxapi.com/oauth2/token",
        authorize_url="https://www.dropbox.com/oauth2/authorize?token_access_type=offline",
        client_id="app-key",
        scopes=["files.content.write", "files.content.read"],
    )
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
    url = oauth2.authorization_url(
        spec, "http://127.0.0.1:8976/callback", state="st", code_verifier=verifier
    )
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert parts.netloc == "www.dropbox.com" and parts.path == "/oauth2/authorize"
    assert query == {
        "token_access_type": "offline",
        "response_type": "code",
        "client_id": "app-key",
        "redirect_uri": "http://127.0.0.1:8976/callback",
        "scope": "files.content.write files.content.read",
        "state": "st",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }


# -- what the operator's timer calls ---------------------------------------------------------


async def test_refresh_if_due_honours_the_margin(auth: oauth_server.AuthServer) -> None:
    intg = make_integration(auth, "authorization_code")
    spec = intg.spec.oauth2
    assert spec is not None
    first = await authorized(auth, intg)
    stored = first.to_secret_data()
    expiry = oauth2.parse_time(stored["expiresAt"])

    async def due(before_expiry: float, margin: float = 300) -> oauth2.Token | None:
        return await oauth2.refresh_if_due(
            spec,
            oauth_server.CLIENT_SECRET,
            stored,
            integration_name="crm",
            now=expiry - datetime.timedelta(seconds=before_expiry),
            margin_seconds=margin,
        )

    assert await due(301) is None
    assert await due(600, margin=900) is not None
    assert await due(299) is not None
    assert auth.grants == ["authorization_code", "refresh_token", "refresh_token"]
    # Epoch seconds work as well as datetimes (kopf timers count in them).
    assert (
        await oauth2.refresh_if_due(
            spec,
            oauth_server.CLIENT_SECRET,
            stored,
            integration_name="crm",
            now=expiry.timestamp() - 3000,
        )
        is None
    )
    when = expiry - datetime.timedelta(seconds=1000)
    assert oauth2.next_refresh_in(stored, now=when) == pytest.approx(700)
    assert oauth2.next_refresh_in(stored, now=expiry) == 0
    assert oauth2.next_refresh_in({}, now=when) == 0
    assert oauth2.next_refresh_in({"accessToken": "a"}, now=when) is None


async def test_refresh_if_due_without_anything_to_refresh_with_is_permanent(
    auth: oauth_server.AuthServer,
) -> None:
    intg = make_integration(auth, "authorization_code")
    spec = intg.spec.oauth2
    assert spec is not None
    now = datetime.datetime.now(UTC)
    with pytest.raises(errors.PermanentError, match="has no OAuth2 access token"):
        await oauth2.refresh_if_due(spec, "s3cr3t", {}, integration_name="crm", now=now)
    expired = {"accessToken": "a", "expiresAt": "2020-01-01T00:00:00Z"}
    with pytest.raises(errors.PermanentError, match="no 'refreshToken' to renew it"):
        await oauth2.refresh_if_due(spec, "s3cr3t", expired, integration_name="crm", now=now)
    assert auth.grants == []


async def test_refresh_if_due_for_client_credentials_fetches_a_token(
    auth: oauth_server.AuthServer,
) -> None:
    intg = make_integration(auth, "client_credentials")
    assert intg.spec.oauth2 is not None
    token = await oauth2.refresh_if_due(
        intg.spec.oauth2,
        oauth_server.CLIENT_SECRET,
        {},
        integration_name="crm",
        now=datetime.datetime.now(UTC),
    )
    assert token is not None and auth.valid(token.access_token)
    assert token.refresh_token is None


# -- what a runner does with a stored authorization-code token ------------------------------


async def test_cluster_runner_does_not_refresh_an_expired_token(
    auth: oauth_server.AuthServer,
) -> None:
    intg = make_integration(auth, "authorization_code", token_secret_name="crm-tokens")
    tokens = DictSecrets(
        {"accessToken": "at-old", "refreshToken": "rt-x", "expiresAt": "2024-03-01T10:00:00Z"}
    )
    with pytest.raises(errors.RetryableError) as info:
        await integrations.prepare_oauth2(
            intg,
            client_secrets(),
            tokens,
            redact.Redactor(),
            can_refresh=False,
            cache=integrations.TokenCache(),
        )
    assert str(info.value).endswith(
        "the OAuth2 access token of integration 'crm' expired at 2024-03-01T10:00:00Z; the "
        "operator refreshes it into Secret 'crm-tokens' — see the Integration's Ready condition"
    )
    assert info.value.retry_after == integrations.WAIT_FOR_OPERATOR_SECONDS
    assert auth.grants == []
    assert "refreshToken" not in tokens.reads


async def test_cluster_runner_uses_a_current_token_from_the_token_secret(
    auth: oauth_server.AuthServer,
) -> None:
    intg = make_integration(auth, "authorization_code", token_secret_name="crm-tokens")
    later = oauth2.format_time(datetime.datetime.now(UTC) + datetime.timedelta(hours=1))
    tokens = DictSecrets({"accessToken": "at-current-1234", "expiresAt": later})
    redactor = redact.Redactor()
    secrets = await integrations.prepare_oauth2(
        intg, DictSecrets({}), tokens, redactor, can_refresh=False, cache=integrations.TokenCache()
    )
    assert secrets.get("accessToken") == "at-current-1234"
    assert redactor.text("at-current-1234") == "***"
    assert auth.grants == []


async def test_cluster_token_nobody_refreshes_is_permanent(
    auth: oauth_server.AuthServer,
) -> None:
    """Without tokenSecretName the operator does not refresh: trying again cannot help."""
    intg = make_integration(auth, "authorization_code")
    stored = client_secrets(accessToken="at-old", expiresAt="2024-03-01T10:00:00Z")
    with pytest.raises(errors.PermanentError, match=r"set oauth2\.tokenSecretName") as info:
        await integrations.prepare_oauth2(
            intg,
            stored,
            None,
            redact.Redactor(),
            can_refresh=False,
            cache=integrations.TokenCache(),
        )
    assert not isinstance(info.value, errors.RetryableError)
    assert auth.grants == []


async def test_tokens_beside_the_client_secret_serve_until_the_token_secret_exists(
    auth: oauth_server.AuthServer,
) -> None:
    intg = make_integration(auth, "authorization_code", token_secret_name="crm-tokens")
    later = oauth2.format_time(datetime.datetime.now(UTC) + datetime.timedelta(hours=1))
    base = client_secrets(accessToken="at-beside-5678", expiresAt=later)
    secrets = await integrations.prepare_oauth2(
        intg,
        base,
        DictSecrets({}),  # the managed Secret has no tokens yet
        redact.Redactor(),
        can_refresh=False,
        cache=integrations.TokenCache(),
    )
    assert secrets.get("accessToken") == "at-beside-5678"


async def test_never_authorized_says_how_to_authorize(auth: oauth_server.AuthServer) -> None:
    intg = make_integration(auth, "authorization_code")
    with pytest.raises(errors.PermanentError) as info:
        await integrations.prepare_oauth2(
            intg,
            client_secrets(),
            None,
            redact.Redactor(),
            can_refresh=True,
            cache=integrations.TokenCache(),
        )
    assert "integration 'crm' has no OAuth2 access token" in str(info.value)
    assert "autoflow integrations authorize" in str(info.value)


async def test_laptop_run_refreshes_an_expired_token_once_in_memory(
    server: httpserver.Server,
) -> None:
    auth = oauth_server.AuthServer(server, rotate_refresh_tokens=True, expires_in=3600)
    intg = make_integration(auth, "authorization_code")
    first = await authorized(auth, intg)
    assert first.refresh_token
    stored = client_secrets(
        accessToken=first.access_token,
        refreshToken=first.refresh_token,
        expiresAt="2024-03-01T10:00:00Z",
    )
    clock = Clock()
    cache = integrations.TokenCache(clock)
    redactor = redact.Redactor()

    async def step() -> str:
        secrets = await integrations.prepare_oauth2(
            intg, stored, None, redactor, can_refresh=True, cache=cache
        )
        return secrets.get("accessToken")

    tokens = await asyncio.gather(*(step() for _ in range(10)))
    assert auth.grants == ["authorization_code", "refresh_token"]
    assert len(set(tokens)) == 1 and auth.valid(tokens[0]) and tokens[0] != first.access_token
    # An hour later the in-memory token expires too; the rotated refresh token renews it.
    clock.advance(3600)
    again = await step()
    assert again not in tokens and auth.valid(again)
    assert auth.grants[-1] == "refresh_token" and len(auth.grants) == 3
    for credential in (first.refresh_token, *tokens, again, oauth_server.CLIENT_SECRET):
        assert redactor.text(credential) == "***"


# -- autoflow integrations authorize ---------------------------------------------------------

DROPBOX_INTEGRATION = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {{name: files, namespace: ops}}
spec:
  type: dropbox
  settings: {{baseUrl: "{base}/2"}}
  secretRef: {{name: files-oauth}}
  oauth2:
    grantType: authorization_code
    authorizeUrl: "{authorize}"
    tokenUrl: "{token}"
    clientId: {client}
    scopes: [files.content.write]
    tokenSecretName: files-tokens
"""

DROPBOX_WORKFLOW = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: file-invoices}
spec:
  steps:
    - id: folder
      uses: dropbox.create_folder
      integration: files
      with: {path: /Invoices}
    - id: list
      uses: dropbox.list_folder
      integration: files
      needs: [folder]
      with: {path: /Invoices}
  outputs:
    folder: ${ steps.folder.output.path_display }
    files: ${ len(steps.list.output.items) }
"""


class TokenCheckingDropbox(dropbox.Dropbox):
    """Dropbox that accepts exactly the live access tokens ``auth`` issued."""

    def __init__(self, server: httpserver.Server, auth: oauth_server.AuthServer) -> None:
        super().__init__(server)
        self.auth = auth

    def authenticate(self, request: httpserver.Recorded) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not self.auth.valid(token):
            raise contract.Violation(401, "invalid_access_token")


def authorize_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="autoflow integrations")
    group = parser.add_subparsers(dest="integrations_command")
    authorize.register(group)
    return parser.parse_args(["authorize", *argv])


def browser(url: str) -> None:
    """Opens the authorize URL and follows the redirects, as a browser would."""
    answer = httpx.get(url, follow_redirects=True, timeout=10)
    assert answer.status_code == 200, answer.text
    assert "Autoflow received the authorization" in answer.text


@pytest.fixture
def files(tmp_path: Path, server: httpserver.Server) -> tuple[oauth_server.AuthServer, Path, Path]:
    auth = oauth_server.AuthServer(
        server,
        scopes={"files.content.write"},
        redirect_uris=[f"http://127.0.0.1{authorize.CALLBACK_PATH}"],  # any port (RFC 8252)
    )
    manifest = tmp_path / "files.yaml"
    manifest.write_text(
        DROPBOX_INTEGRATION.format(
            base=server.base_url,
            authorize=auth.authorize_url,
            token=auth.token_url,
            client=oauth_server.CLIENT_ID,
        )
    )
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text(
        yaml.safe_dump(
            {"files": {"clientSecret": oauth_server.CLIENT_SECRET}, "other": {"token": "t-1"}}
        )
    )
    return auth, manifest, secrets_file


async def test_authorize_then_run_a_workflow_with_the_tokens(
    files: tuple[oauth_server.AuthServer, Path, Path],
    server: httpserver.Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    auth, manifest, secrets_file = files
    args = authorize_args(
        str(manifest), "--secrets", str(secrets_file), "--port", "0", "--print-secret"
    )
    assert await asyncio.to_thread(authorize.run, args, open_url=browser) == 0
    assert auth.grants == ["authorization_code"]
    exchange = server.last(auth.token_path).form()
    assert exchange["code_verifier"] and exchange["redirect_uri"][0].endswith("/callback")

    # The secrets file: the tokens beside the client secret, readable by its owner only.
    assert stat.S_IMODE(os.stat(secrets_file).st_mode) == 0o600
    saved = yaml.safe_load(secrets_file.read_text())
    assert saved["other"] == {"token": "t-1"}
    entry = saved["files"]
    assert entry["clientSecret"] == oauth_server.CLIENT_SECRET
    assert auth.valid(entry["accessToken"]) and entry["refreshToken"] in auth.refresh_tokens
    expires = oauth2.parse_time(entry["expiresAt"])
    assert abs((expires - datetime.datetime.now(UTC)).total_seconds() - 3600) < 60
    assert entry["scope"] == "files.content.write"

    # stdout: the Secret manifest, and nothing else; the tokens appear nowhere else.
    out, err = capsys.readouterr()
    secret = yaml.safe_load(out)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "files-tokens"
    assert secret["metadata"]["namespace"] == "ops"
    assert secret["stringData"]["accessToken"] == entry["accessToken"]
    assert "clientSecret" not in secret["stringData"]  # it stays in the secretRef Secret
    assert entry["accessToken"] not in err and entry["refreshToken"] not in err
    assert "is authorized" in err

    # autoflow run with that secrets file: the steps' bearer token comes from the flow.
    service = TokenCheckingDropbox(server, auth)
    service.add_file("/Invoices/2025-01.pdf")
    (tmp_path / "wf.yaml").write_text(DROPBOX_WORKFLOW)
    run = local.prepare(
        [str(tmp_path / "wf.yaml"), str(manifest)],
        given_inputs={},
        from_text=False,
        secrets_file=str(secrets_file),
        env={},
    )
    result = await run.execute()
    assert result.phase == "Succeeded", result.error
    assert result.outputs == {"folder": "/Invoices", "files": 1}
    assert service.violations == []
    assert server.last("/2/files/create_folder_v2").headers["authorization"] == (
        f"Bearer {entry['accessToken']}"
    )
    assert auth.grants == ["authorization_code"]  # the token was current: no refresh

    # A day later the stored token has expired: the run refreshes it (in memory).
    auth.expire_access_tokens()
    del service.entries["/invoices"]  # the folder the first run made
    saved["files"]["expiresAt"] = "2024-03-01T10:00:00Z"
    secrets_file.write_text(yaml.safe_dump(saved))
    run = local.prepare(
        [str(tmp_path / "wf.yaml"), str(manifest)],
        given_inputs={},
        from_text=False,
        secrets_file=str(secrets_file),
        env={},
    )
    result = await run.execute()
    assert result.phase == "Succeeded", result.error
    assert auth.grants == ["authorization_code", "refresh_token"]
    assert service.violations == []


def test_authorize_refuses_a_redirect_with_another_state(
    files: tuple[oauth_server.AuthServer, Path, Path],
) -> None:
    auth, manifest, secrets_file = files
    before = secrets_file.read_text()

    def forged(url: str) -> None:
        location = httpx.get(url).headers["location"]
        parts = urllib.parse.urlsplit(location)
        query = dict(urllib.parse.parse_qsl(parts.query))
        query["state"] = "someone-elses"
        httpx.get(urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query))))

    args = authorize_args(str(manifest), "--secrets", str(secrets_file), "--port", "0")
    with pytest.raises(errors.PermanentError, match="came back with a different state"):
        authorize.run(args, open_url=forged)
    assert auth.grants == []
    assert secrets_file.read_text() == before


def test_authorize_reports_a_refused_consent(
    files: tuple[oauth_server.AuthServer, Path, Path],
) -> None:
    auth, manifest, secrets_file = files
    auth.scopes = set()  # the client may ask for no scope: the server answers invalid_scope
    args = authorize_args(str(manifest), "--secrets", str(secrets_file), "--port", "0")
    with pytest.raises(errors.PermanentError, match=r"refused the authorization \(invalid_scope"):
        authorize.run(args, open_url=lambda url: httpx.get(url, follow_redirects=True))
    assert auth.grants == []


def test_authorize_needs_somewhere_to_put_the_tokens_and_an_authorization_code_grant(
    files: tuple[oauth_server.AuthServer, Path, Path], tmp_path: Path
) -> None:
    _, manifest, _ = files
    with pytest.raises(errors.InputError, match="--secrets FILE"):
        authorize.run(authorize_args(str(manifest)))
    other = tmp_path / "cc.yaml"
    other.write_text(
        manifest.read_text().replace(
            "grantType: authorization_code", "grantType: client_credentials"
        )
    )
    with pytest.raises(errors.ManifestError, match="client_credentials needs no authorization"):
        authorize.run(authorize_args(str(other), "--print-secret"))


def test_secrets_file_is_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new-secrets.yaml"
    authorize.write_tokens(str(path), "crm", oauth2.Token("at-1", "rt-1"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == {
        "crm": {"accessToken": "at-1", "refreshToken": "rt-1", "tokenType": "Bearer"}
    }
    # Writing again replaces every token key, stale ones included.
    authorize.write_tokens(str(path), "crm", oauth2.Token("at-2"))
    assert yaml.safe_load(path.read_text()) == {
        "crm": {"accessToken": "at-2", "tokenType": "Bearer"}
    }


# -- autoflow run, client credentials, as a user runs it -------------------------------------

SALESFORCE_INTEGRATION = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {{name: crm}}
spec:
  type: salesforce
  settings: {{baseUrl: "{base}"}}
  secretRef: {{name: crm-oauth, keys: [clientSecret]}}
  oauth2:
    grantType: client_credentials
    tokenUrl: "{token}"
    clientId: {client}
    scopes: [api]
"""

LEADS_WORKFLOW = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: leads}
spec:
  steps:
    - id: ada
      uses: salesforce.create_record
      integration: crm
      with: {object: Lead, fields: {LastName: Lovelace, Company: Analytical}}
    - id: grace
      uses: salesforce.create_record
      integration: crm
      needs: []
      with: {object: Lead, fields: {LastName: Hopper, Company: Navy}}
    - id: linus
      uses: salesforce.create_record
      integration: crm
      needs: []
      with: {object: Lead, fields: {LastName: Torvalds, Company: Kernel}}
    - id: count
      uses: salesforce.query
      integration: crm
      needs: [ada, grace, linus]
      with: {soql: SELECT Id FROM Lead}
  outputs:
    leads: ${ len(steps.count.output.items) }
"""


JSON = ["--output", "json"]


class TokenCheckingSalesforce(salesforce.Salesforce):
    def __init__(self, server: httpserver.Server, auth: oauth_server.AuthServer) -> None:
        super().__init__(server)
        self.auth = auth

    def authenticate(self, request: httpserver.Recorded) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not self.auth.valid(token):
            raise contract.Violation(401, "Session expired or invalid")


def test_autoflow_run_with_a_client_credentials_integration(
    server: httpserver.Server, tmp_path: Path
) -> None:
    auth = oauth_server.AuthServer(server, token_path=SALESFORCE_TOKEN_PATH, scopes={"api"})
    service = TokenCheckingSalesforce(server, auth)
    (tmp_path / "crm.yaml").write_text(
        SALESFORCE_INTEGRATION.format(
            base=server.url(salesforce.API), token=auth.token_url, client=oauth_server.CLIENT_ID
        )
    )
    (tmp_path / "leads.yaml").write_text(LEADS_WORKFLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    env["AUTOFLOW_SECRET_CRM_CLIENTSECRET"] = oauth_server.CLIENT_SECRET
    result = subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", "run", "leads.yaml", "crm.yaml", *JSON],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)
    assert doc["phase"] == "Succeeded", doc
    assert doc["outputs"] == {"leads": 3}
    assert service.violations == []
    assert auth.grants == ["client_credentials"]  # one token for all four steps
    token = server.last(f"{salesforce.API}/query").headers["authorization"].split()[1]
    assert auth.valid(token)
    assert token not in result.stdout + result.stderr
    assert oauth_server.CLIENT_SECRET not in result.stdout + result.stderr


# -- the client's authentication, and the http connector's oauth2 scheme -----------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_the_client_authenticates_as_the_integration_says(
    auth: oauth_server.AuthServer, method: str
) -> None:
    intg = make_integration(auth, "client_credentials")
    assert intg.spec.oauth2 is not None
    spec = intg.spec.oauth2.model_copy(update={"client_auth_method": method})

    token = await oauth2.client_credentials(
        spec, oauth_server.CLIENT_SECRET, integration_name="crm"
    )

    assert auth.valid(token.access_token)
    assert auth.client_auth == [method]
    form = auth.server.last(auth.token_path).form()
    assert ("client_secret" in form) is (method == "client_secret_post")


HTTP_WORKFLOW = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: invoices}
spec:
  steps:
    - id: list
      uses: http.request
      integration: billing
      with: {url: invoices}
"""


async def test_the_http_connector_sends_the_integrations_oauth2_token(
    auth: oauth_server.AuthServer, server: httpserver.Server, tmp_path: Path
) -> None:
    def invoices(request: httpserver.Recorded) -> httpserver.Reply:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not auth.valid(token):
            return httpserver.Reply.with_json({"error": "invalid_token"}, 401)
        return httpserver.Reply.with_json({"invoices": [{"id": "INV-1"}]})

    server.route("/api/invoices", invoices)
    intg = make_integration(
        auth,
        "client_credentials",
        name="billing",
        type_="http",
        settings={"baseUrl": server.url("/api/"), "auth": "oauth2"},
    )
    manifest = tmp_path / "billing.yaml"
    manifest.write_text(yaml.safe_dump(intg.model_dump(mode="json", by_alias=True)))
    (tmp_path / "wf.yaml").write_text(HTTP_WORKFLOW)
    run = local.prepare(
        [str(tmp_path / "wf.yaml"), str(manifest)],
        given_inputs={},
        from_text=False,
        env={"AUTOFLOW_SECRET_BILLING_CLIENTSECRET": oauth_server.CLIENT_SECRET},
    )

    result = await run.execute()

    assert result.phase == "Succeeded", result.error
    assert result.steps["list"].output["body"] == {"invoices": [{"id": "INV-1"}]}
    assert auth.grants == ["client_credentials"]
