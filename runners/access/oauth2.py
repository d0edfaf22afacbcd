"""OAuth2 for Integrations: access tokens from a token endpoint through authlib, never shown.

An Integration with ``spec.oauth2`` gives its steps an ``accessToken`` secret that this module
keeps current. The protocol runs through authlib's httpx client (``AsyncOAuth2Client``); this
module adds where tokens live, when they are renewed, and what a failure says::

    grant               the token comes from                        renewed by
    client_credentials  the token endpoint, with secret clientSecret  each process, cached
    authorization_code  `autoflow integrations authorize`, then       the operator (cluster),
                        the token keys of a Secret                    the runner (laptop)

Tokens are kept under the keys ``accessToken``, ``refreshToken``, ``expiresAt`` (RFC 3339,
UTC), ``tokenType`` and ``scope``: in the Secret ``oauth2.tokenSecretName`` when it is set,
else beside ``clientSecret`` in the ``secretRef`` Secret (or, for ``autoflow run``, in the
environment or the ``--secrets`` file)::

    client_credentials(spec, clientSecret)            ─► Token   (RFC 6749 4.4)
    authorization_url(spec, redirect, state, PKCE)    ─► URL for the user's browser (4.1.1)
    exchange_code(spec, clientSecret, code, PKCE)     ─► Token   (4.1.3, RFC 7636)
    refresh(spec, clientSecret, refreshToken)         ─► Token   (section 6)
    Token.to_secret_data() / Token.from_secret_data() ◄─► the token keys of a Secret

Before a step, a runner obtains the current token through ``runners.integrations``
(``resolve_info``), which caches client_credentials tokens per process and refreshes an
authorization_code token only where nobody else does (``autoflow run``).
The operator's timer calls ``refresh_if_due`` (and ``next_refresh_in`` to schedule itself)
and writes the Token it returns with ``Token.to_secret_data``.

Failures at the token endpoint: an OAuth2 error response (RFC 6749 section 5.2) such as
``invalid_grant``, ``invalid_client`` or ``unauthorized_client`` is a ``PermanentError``
naming the integration and what to do; HTTP 429, 5xx and connection failures are a
``RetryableError`` (with ``Retry-After`` as ``retry_after``). Messages pass through a
redactor holding the client secret, tokens and code, as the server may quote them back.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import types
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from autoflow.connectors.sdk import redaction
from autoflow.crds import errors, integration

if TYPE_CHECKING:
    import httpx


@functools.cache
def _authlib() -> types.SimpleNamespace:
    """authlib's modules, imported on first use: they take ~0.3 s (JOSE, cryptography), which
    a run that uses no OAuth2 Integration should not pay.

    authlib warns on import that it runs on httpx rather than its successor httpx2; that is a
    note for whoever upgrades the dependencies, not for someone running a workflow.
    """
    with warnings.catch_warnings():
        from authlib import deprecate  # type: ignore[import-untyped]

        warnings.simplefilter("ignore", deprecate.AuthlibDeprecationWarning)
        from authlib.common import errors, security  # type: ignore[import-untyped]
        from authlib.integrations import httpx_client  # type: ignore[import-untyped]
        from authlib.oauth2 import rfc7636  # type: ignore[import-untyped]
        from authlib.oauth2.rfc6749 import parameters  # type: ignore[import-untyped]
    return types.SimpleNamespace(
        errors=errors,
        security=security,
        httpx_client=httpx_client,
        rfc7636=rfc7636,
        parameters=parameters,
        http=_client_http(),
    )


def _client_http() -> types.ModuleType:
    """The HTTP library authlib's clients are made of, for their exceptions: authlib runs on
    httpx2 when it is installed (the openai, anthropic and FastAPI releases here pull it in)
    and on httpx otherwise, and the two raise unrelated exception classes."""
    try:
        import httpx2 as http
    except ImportError:  # pragma: no cover - depends on what else is installed
        import httpx as http  # type: ignore[no-redef]
    return http


ACCESS_TOKEN = "accessToken"
REFRESH_TOKEN = "refreshToken"
EXPIRES_AT = "expiresAt"
TOKEN_TYPE = "tokenType"
SCOPE = "scope"
TOKEN_KEYS = (ACCESS_TOKEN, REFRESH_TOKEN, EXPIRES_AT, TOKEN_TYPE, SCOPE)
CLIENT_SECRET = "clientSecret"

DEFAULT_TIMEOUT = 10.0
# The operator renews stored tokens this long before they expire.
REFRESH_MARGIN_SECONDS = 300.0
# An error_description is the server's prose; this much of it is enough to act on.
MAX_DESCRIPTION = 300
AUTHORIZE_COMMAND = "autoflow integrations authorize"


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


Moment = datetime.datetime | float  # an aware datetime, or seconds since the epoch


def as_datetime(now: Moment) -> datetime.datetime:
    if isinstance(now, datetime.datetime):
        return now if now.tzinfo is not None else now.replace(tzinfo=datetime.UTC)
    return datetime.datetime.fromtimestamp(now, datetime.UTC)


def format_time(when: datetime.datetime) -> str:
    """RFC 3339 in UTC to the second, as ``expiresAt`` is stored."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 time (a time without an offset is taken as UTC); ValueError otherwise."""
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{EXPIRES_AT} is not an RFC 3339 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class Token:
    """An access token and what came with it. ``repr`` leaves the credentials out."""

    access_token: str = dataclasses.field(repr=False)
    refresh_token: str | None = dataclasses.field(default=None, repr=False)
    expires_at: datetime.datetime | None = None
    token_type: str = "Bearer"
    scope: str = ""

    def expires_within(self, seconds: float, now: Moment) -> bool:
        """Whether it is expired or expires within ``seconds``; False when the expiry is unknown."""
        if self.expires_at is None:
            return False
        return (self.expires_at - as_datetime(now)).total_seconds() <= seconds

    def to_secret_data(self) -> dict[str, str]:
        """Every token key; unknown values are "" so that writing over an older token leaves
        none of its values behind."""
        return {
            ACCESS_TOKEN: self.access_token,
            REFRESH_TOKEN: self.refresh_token or "",
            EXPIRES_AT: format_time(self.expires_at) if self.expires_at else "",
            TOKEN_TYPE: self.token_type,
            SCOPE: self.scope,
        }

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str]) -> Token | None:
        """The token stored in ``data``, None without an ``accessToken``; ValueError when
        ``expiresAt`` is not an RFC 3339 time."""
        access = data.get(ACCESS_TOKEN)
        if not access:
            return None
        expires = data.get(EXPIRES_AT)
        return cls(
            access_token=access,
            refresh_token=data.get(REFRESH_TOKEN) or None,
            expires_at=parse_time(expires) if expires else None,
            token_type=data.get(TOKEN_TYPE) or "Bearer",
            scope=data.get(SCOPE) or "",
        )


def new_state() -> str:
    """A value for the ``state`` parameter that ties the redirect to this request."""
    return str(_authlib().security.generate_token(32))


def new_code_verifier() -> str:
    """A PKCE code verifier (RFC 7636 section 4.1: 43 to 128 unreserved characters)."""
    return str(_authlib().security.generate_token(64))


# The token endpoint


def _where(integration_name: str, field: str = "oauth2") -> errors.Where:
    return errors.Where(resource=f"Integration/{integration_name}", field=field)


def authorization_url(
    spec: integration.OAuth2, redirect_uri: str, *, state: str, code_verifier: str
) -> str:
    """Where to send the user's browser to grant access (RFC 6749 4.1.1, PKCE S256)."""
    if not spec.authorize_url:
        raise errors.ManifestError(
            "the authorization_code grant needs oauth2.authorizeUrl",
            errors.Where(field="spec.oauth2.authorizeUrl"),
        )
    return str(
        _authlib().parameters.prepare_grant_uri(
            spec.authorize_url,
            client_id=spec.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=list(spec.scopes) or None,
            state=state,
            code_challenge=_authlib().rfc7636.create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
    )


async def client_credentials(
    spec: integration.OAuth2,
    client_secret: str,
    *,
    integration_name: str,
    timeout: float = DEFAULT_TIMEOUT,
) -> Token:
    """A new access token for the client itself (RFC 6749 4.4)."""
    request = _TokenRequest(spec, client_secret, integration_name, "client_credentials", timeout)
    return await request.send(
        lambda client: client.fetch_token(spec.token_url, grant_type="client_credentials"),
        scope=True,
    )


async def exchange_code(
    spec: integration.OAuth2,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    *,
    integration_name: str,
    timeout: float = DEFAULT_TIMEOUT,
) -> Token:
    """The tokens for an authorization code the redirect brought (RFC 6749 4.1.3, PKCE)."""
    request = _TokenRequest(
        spec, client_secret, integration_name, "authorization_code", timeout, code, code_verifier
    )
    return await request.send(
        lambda client: client.fetch_token(
            spec.token_url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
        )
    )


async def refresh(
    spec: integration.OAuth2,
    client_secret: str,
    refresh_token: str,
    *,
    integration_name: str,
    timeout: float = DEFAULT_TIMEOUT,
) -> Token:
    """A new access token for a refresh token (RFC 6749 section 6).

    Without a new refresh token in the answer (the server does not rotate them) the old one
    is kept. No scope is sent, which asks for the scope first granted.
    """
    request = _TokenRequest(
        spec, client_secret, integration_name, "refresh_token", timeout, refresh_token
    )
    return await request.send(
        lambda client: client.refresh_token(spec.token_url, refresh_token=refresh_token),
        keep_refresh_token=refresh_token,
    )


_RETRYABLE_CODES = {"temporarily_unavailable", "server_error", "slow_down"}


class _TokenRequest:
    """One call to the token endpoint, its answer turned into a Token or an Autoflow error."""

    def __init__(
        self,
        spec: integration.OAuth2,
        client_secret: str,
        integration_name: str,
        grant: str,
        timeout: float,
        *hidden: str,
    ) -> None:
        self.spec = spec
        self.client_secret = client_secret
        self.name = integration_name
        self.grant = grant
        self.timeout = timeout
        self.scrub = redaction.Redactor([client_secret, *hidden])
        self.where = _where(integration_name, "oauth2.tokenUrl")

    async def send(
        self,
        call: Callable[[Any], Awaitable[Any]],
        *,
        scope: bool = False,
        keep_refresh_token: str | None = None,
    ) -> Token:
        authlib = _authlib()
        client = authlib.httpx_client.AsyncOAuth2Client(
            client_id=self.spec.client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method=self.spec.client_auth_method,
            scope=" ".join(self.spec.scopes) if scope and self.spec.scopes else None,
            timeout=self.timeout,
        )
        # Runs on the raw answer before authlib parses it, so 429 and 5xx are told apart.
        client.register_compliance_hook("access_token_response", self._check_status)
        client.register_compliance_hook("refresh_token_response", self._check_status)
        try:
            async with client:
                answer = await call(client)
        except errors.ConnectorError:
            raise
        except authlib.errors.AuthlibBaseError as exc:  # an OAuth2 error response (5.2)
            raise self._rejected(exc) from None
        except authlib.http.HTTPStatusError as exc:
            raise errors.PermanentError(
                f"integration {self.name!r}: the OAuth2 token endpoint answered HTTP "
                f"{exc.response.status_code} without an OAuth2 error response",
                self.where,
            ) from None
        except authlib.http.TransportError as exc:
            detail = self.scrub.text(str(exc)) or "no detail"
            raise errors.RetryableError(
                f"integration {self.name!r}: cannot reach the OAuth2 token endpoint "
                f"({type(exc).__name__}: {detail})",
                self.where,
            ) from None
        except ValueError:
            raise errors.PermanentError(
                f"integration {self.name!r}: the OAuth2 token endpoint answered without a "
                "JSON token",
                self.where,
            ) from None
        return self._token(dict(answer), keep_refresh_token)

    def _check_status(self, response: httpx.Response) -> httpx.Response:
        from autoflow.connectors.sdk import http_core

        status = response.status_code
        if status == 429 or status >= 500:
            reason = "too many requests" if status == 429 else "unavailable"
            raise errors.RetryableError(
                f"integration {self.name!r}: the OAuth2 token endpoint answered HTTP {status} "
                f"({reason})",
                self.where,
                retry_after=http_core.retry_after(response.headers.get("retry-after")),
            )
        return response

    def _rejected(self, exc: Any) -> errors.ConnectorError:
        code = self.scrub.text(str(getattr(exc, "error", "") or "error"))
        description = self.scrub.text(str(getattr(exc, "description", "") or ""))
        said = f"{code}: {description[:MAX_DESCRIPTION]}" if description else code
        if code in _RETRYABLE_CODES:
            return errors.RetryableError(
                f"integration {self.name!r}: the OAuth2 token endpoint is not available ({said})",
                self.where,
            )
        what = {
            "client_credentials": "OAuth2 client credentials",
            "authorization_code": "OAuth2 authorization code",
            "refresh_token": "OAuth2 refresh token",
        }[self.grant]
        return errors.PermanentError(
            f"integration {self.name!r}: {what} rejected ({said}): {self._advice(code)}",
            self.where,
        )

    def _advice(self, code: str) -> str:
        if code == "invalid_grant" and self.grant == "refresh_token":
            return f"authorize the integration again with `{AUTHORIZE_COMMAND}`"
        if code == "invalid_grant" and self.grant == "authorization_code":
            return f"a code is good once and for minutes; run `{AUTHORIZE_COMMAND}` again"
        if code == "invalid_client":
            return f"check oauth2.clientId and the Integration's secret {CLIENT_SECRET!r}"
        if code in ("unauthorized_client", "unsupported_grant_type", "invalid_grant"):
            return (
                f"allow the {self.grant} grant for client {self.spec.client_id!r} at the "
                "provider, or check oauth2.grantType"
            )
        if code == "invalid_scope":
            return "check oauth2.scopes against what the client may ask for"
        return "check the Integration's oauth2 settings"

    def _token(self, answer: dict[str, Any], keep_refresh_token: str | None) -> Token:
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise errors.PermanentError(
                f"integration {self.name!r}: the OAuth2 token endpoint's answer has no "
                "access_token",
                self.where,
            )
        expires_at = None
        try:
            lifetime = float(answer["expires_in"])
            expires_at = utcnow() + datetime.timedelta(seconds=lifetime)
        except (KeyError, TypeError, ValueError, OverflowError):
            pass  # the server did not say: the token is used until it is refused
        scope = answer.get("scope")
        if isinstance(scope, list):
            scope = " ".join(str(s) for s in scope)
        refresh_token = answer.get("refresh_token")
        return Token(
            access_token=access,
            refresh_token=refresh_token
            if isinstance(refresh_token, str) and refresh_token
            else keep_refresh_token,
            expires_at=expires_at,
            token_type=str(answer.get("token_type") or "Bearer"),
            # Left out of the answer when it is the scope asked for (RFC 6749 5.1).
            scope=str(scope) if scope else " ".join(self.spec.scopes),
        )


# What the operator's timer calls


def stored_token(current: Mapping[str, str], integration_name: str) -> Token | None:
    """The token in ``current`` (None without one); a PermanentError when it is unreadable."""
    try:
        return Token.from_secret_data(current)
    except ValueError as exc:
        raise errors.PermanentError(
            f"integration {integration_name!r}: the stored OAuth2 token is unusable: {exc}; "
            f"authorize the integration again with `{AUTHORIZE_COMMAND}`",
            _where(integration_name),
        ) from None


def not_authorized(integration_name: str, where: str) -> errors.PermanentError:
    """No access token stored in ``where``: the integration was never authorized."""
    return errors.PermanentError(
        f"integration {integration_name!r} has no OAuth2 access token ({where} has no "
        f"{ACCESS_TOKEN!r}): authorize it with `{AUTHORIZE_COMMAND}`",
        _where(integration_name),
    )


def no_refresh_token(token: Token, integration_name: str) -> errors.PermanentError:
    """``token`` is expiring and nothing can renew it."""
    when = format_time(token.expires_at) if token.expires_at else "an unknown time"
    return errors.PermanentError(
        f"integration {integration_name!r}: the OAuth2 access token expires at {when} and "
        f"there is no {REFRESH_TOKEN!r} to renew it: authorize the integration again with "
        f"`{AUTHORIZE_COMMAND}`",
        _where(integration_name),
    )


async def refresh_if_due(
    spec: integration.OAuth2,
    client_secret: str,
    current: Mapping[str, str],
    *,
    integration_name: str,
    now: Moment,
    margin_seconds: float = REFRESH_MARGIN_SECONDS,
    timeout: float = DEFAULT_TIMEOUT,
) -> Token | None:
    """A renewed token when the stored one (``current``, the token keys of its Secret) is
    missing or expires within ``margin_seconds``; None when it is good for longer.

    client_credentials fetches a new token; authorization_code refreshes with the stored
    refresh token (a PermanentError when there is none, or no token at all).
    """
    stored = stored_token(current, integration_name)
    if stored is not None and not stored.expires_within(margin_seconds, now):
        return None
    if spec.grant_type == "client_credentials":
        return await client_credentials(
            spec, client_secret, integration_name=integration_name, timeout=timeout
        )
    if stored is None:
        raise not_authorized(integration_name, "the token Secret")
    if not stored.refresh_token:
        raise no_refresh_token(stored, integration_name)
    return await refresh(
        spec,
        client_secret,
        stored.refresh_token,
        integration_name=integration_name,
        timeout=timeout,
    )


def next_refresh_in(
    current: Mapping[str, str],
    *,
    now: Moment,
    margin_seconds: float = REFRESH_MARGIN_SECONDS,
) -> float | None:
    """Seconds until ``refresh_if_due`` has work to do: 0 when it has now (no token, an
    unreadable one, or within the margin), None when the token's expiry is unknown."""
    try:
        stored = Token.from_secret_data(current)
    except ValueError:
        return 0.0
    if stored is None:
        return 0.0
    if stored.expires_at is None:
        return None
    left = (stored.expires_at - as_datetime(now)).total_seconds()
    return max(0.0, left - margin_seconds)
