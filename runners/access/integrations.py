"""From an ``Integration`` resource and a secrets accessor to what a step sees of it.

Every runner mode (``autoflow run`` on a laptop, the Job runner in a cluster) and the
operator's health probe build the step's view of an Integration here, so settings, credentials
and limits are read the same way everywhere::

    Integration (spec.type, settings, rateLimit, maxConcurrency)
      + Secrets (environment / secrets file / Kubernetes Secret)
      ─► sdk.IntegrationInfo(name, type, settings, secrets, limits)

A step's view comes from ``resolve_info``, which first obtains an OAuth2 Integration's access
token, so that its ``secrets.get("accessToken")`` answers a current one (``runners.oauth2``
talks to the token endpoint)::

    prepare_oauth2(intg, secrets, token_secrets, redactor, can_refresh=...)
      client_credentials  TokenCache (per process; one fetch at a time per Integration)
                          ─(none, or expiring within 60 s)─► oauth2.client_credentials()
      authorization_code  the stored token (token_secrets, else secrets)
                          ─(expiring within 60 s)─► oauth2.refresh() when can_refresh
                          (laptop), else RetryableError: the operator refreshes it
      ─► OAuth2Secrets: get("accessToken") answers the token, other keys the base secrets
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import weakref
from collections.abc import Awaitable, Callable

from autoflow.connectors import sdk
from autoflow.crds import errors, integration, meta
from autoflow.runners.access import oauth2, redact


def limits_of(intg: integration.Integration) -> sdk.Limits | None:
    """The Integration's quota, or None when it sets neither a rate limit nor a concurrency."""
    spec = intg.spec
    if spec.rate_limit is None and spec.max_concurrency is None:
        return None
    rate = spec.rate_limit
    return sdk.Limits(
        requests=rate.requests if rate else None,
        per_seconds=meta.parse_duration(rate.per) if rate else None,
        max_concurrency=spec.max_concurrency,
    )


def info_for(intg: integration.Integration, secrets: sdk.Secrets) -> sdk.IntegrationInfo:
    """What a step (or a probe) sees of ``intg``: settings, credentials, limits."""
    return sdk.IntegrationInfo(
        name=intg.metadata.name or "",
        type=intg.spec.type,
        settings=intg.spec.settings,
        secrets=secrets,
        limits=limits_of(intg),
    )


async def resolve_info(
    intg: integration.Integration,
    secrets: sdk.Secrets,
    redactor: redact.Redactor,
    *,
    token_secrets: sdk.Secrets | None = None,
    can_refresh: bool,
    token_cache: TokenCache | None = None,
) -> sdk.IntegrationInfo:
    """What a step sees of ``intg``, with a current OAuth2 access token when it has
    ``spec.oauth2`` (see ``prepare_oauth2`` for the arguments)."""
    if intg.spec.oauth2 is not None:
        secrets = await prepare_oauth2(
            intg, secrets, token_secrets, redactor, can_refresh=can_refresh, cache=token_cache
        )
    return info_for(intg, secrets)


# OAuth2 access tokens

# A token this close to expiry is renewed before a step uses it: the step may take a while.
EARLY_SECONDS = 60.0
# How long a token is reused when the server does not say how long it lasts (no expires_in).
UNKNOWN_LIFETIME_SECONDS = 300.0
# When the operator has not refreshed a token in time, a step tries again after this long.
WAIT_FOR_OPERATOR_SECONDS = 30.0


CacheKey = tuple[str, str, str, str, str]


def cache_key(intg: integration.Integration) -> CacheKey:
    """One token per Integration (namespace and name), grant, token endpoint and client."""
    spec = intg.spec.oauth2
    assert spec is not None
    return (
        intg.metadata.namespace or "",
        intg.metadata.name or "",
        spec.grant_type,
        spec.token_url,
        spec.client_id,
    )


@dataclasses.dataclass(frozen=True)
class _Cached:
    token: oauth2.Token
    fetched_at: datetime.datetime


class TokenCache:
    """Tokens this process obtained, shared by all its steps; one fetch at a time per key.

    ``clock`` tells the time (tests move it); a token within ``EARLY_SECONDS`` of its expiry
    is not handed out, and one of unknown lifetime is kept ``UNKNOWN_LIFETIME_SECONDS``.
    """

    def __init__(self, clock: Callable[[], datetime.datetime] = oauth2.utcnow) -> None:
        self.clock = clock
        self._tokens: dict[CacheKey, _Cached] = {}
        # Locks are per event loop: a lock waited on in one loop cannot be used in another
        # (asyncio.run more than once in a process, as tests do).
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[CacheKey, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    def latest(self, key: CacheKey) -> oauth2.Token | None:
        """The last token obtained for ``key``, fresh or not."""
        cached = self._tokens.get(key)
        return cached.token if cached else None

    def fresh(self, key: CacheKey) -> oauth2.Token | None:
        """The token for ``key`` if it is good for longer than ``EARLY_SECONDS``."""
        cached = self._tokens.get(key)
        if cached is None:
            return None
        now = self.clock()
        if cached.token.expires_at is None:
            age = (now - cached.fetched_at).total_seconds()
            return cached.token if age < UNKNOWN_LIFETIME_SECONDS else None
        return None if cached.token.expires_within(EARLY_SECONDS, now) else cached.token

    async def obtain(
        self, key: CacheKey, fetch: Callable[[], Awaitable[oauth2.Token]]
    ) -> oauth2.Token:
        """The fresh token for ``key``, fetched once however many steps ask at the same time."""
        token = self.fresh(key)
        if token is not None:
            return token
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault(key, asyncio.Lock()):
            token = self.fresh(key)
            if token is None:
                token = await fetch()
                self._tokens[key] = _Cached(token, self.clock())
            return token

    def clear(self) -> None:
        self._tokens.clear()


DEFAULT_CACHE = TokenCache()


class OAuth2Secrets:
    """An Integration's secrets, with ``accessToken`` answered by the OAuth2 flow."""

    def __init__(self, base: sdk.Secrets, token: oauth2.Token) -> None:
        self._base = base
        self._token = token

    def get(self, key: str) -> str:
        if key == oauth2.ACCESS_TOKEN:
            return self._token.access_token
        return self._base.get(key)


def _read(secrets: sdk.Secrets, key: str) -> str | None:
    try:
        return secrets.get(key)
    except errors.MissingSecretError:
        return None


async def prepare_oauth2(
    intg: integration.Integration,
    secrets: sdk.Secrets,
    token_secrets: sdk.Secrets | None,
    redactor: redact.Redactor,
    *,
    can_refresh: bool,
    cache: TokenCache | None = None,
) -> sdk.Secrets:
    """The secrets a step of ``intg`` reads, with a current ``accessToken`` obtained now.

    ``secrets`` reads the ``secretRef`` keys (``clientSecret``); ``token_secrets`` the
    managed token Secret (None: the tokens sit with the other keys). ``can_refresh`` says
    whether this process may refresh an expired authorization_code token (``autoflow run``)
    or leaves that to the operator (a cluster runner). Every credential read or obtained is
    added to ``redactor``.
    """
    spec = intg.spec.oauth2
    if spec is None:
        return secrets
    cache = cache or DEFAULT_CACHE
    name = intg.metadata.name or ""
    key = cache_key(intg)
    if spec.grant_type == "client_credentials":
        client_secret = secrets.get(oauth2.CLIENT_SECRET)
        redactor.add(client_secret)
        token = await cache.obtain(
            key, lambda: oauth2.client_credentials(spec, client_secret, integration_name=name)
        )
    else:
        token = await _authorization_code_token(
            intg, secrets, token_secrets, redactor, can_refresh, cache
        )
    redactor.add(token.access_token)
    return OAuth2Secrets(secrets, token)


async def _authorization_code_token(
    intg: integration.Integration,
    secrets: sdk.Secrets,
    token_secrets: sdk.Secrets | None,
    redactor: redact.Redactor,
    can_refresh: bool,
    cache: TokenCache,
) -> oauth2.Token:
    spec = intg.spec.oauth2
    assert spec is not None
    name = intg.metadata.name or ""
    ref = intg.spec.secret_ref
    secret_name = spec.token_secret_name or (ref.name if ref else None)
    place = f"Secret {secret_name!r}" if secret_name and not can_refresh else "its secrets"
    # Only these keys are read: expiresAt is not secret, but every value read through a
    # Secrets accessor is masked in the run's output, and tokenType ("Bearer") would be too.
    source = token_secrets or secrets
    access = _read(source, oauth2.ACCESS_TOKEN)
    if not access and token_secrets is not None:
        # Before the managed Secret exists the tokens may sit beside the client secret.
        source = secrets
        with contextlib.suppress(errors.PermanentError):
            access = _read(source, oauth2.ACCESS_TOKEN)
    if not access:
        raise oauth2.not_authorized(name, place)
    expires = _read(source, oauth2.EXPIRES_AT) or ""
    stored = oauth2.stored_token({oauth2.ACCESS_TOKEN: access, oauth2.EXPIRES_AT: expires}, name)
    assert stored is not None
    key = cache_key(intg)
    if not stored.expires_within(EARLY_SECONDS, cache.clock()):
        return stored
    refreshed = cache.fresh(key)
    if refreshed is not None:
        return refreshed
    if not can_refresh:
        assert stored.expires_at is not None
        when = oauth2.format_time(stored.expires_at)
        tense = "expired" if stored.expires_at <= cache.clock() else "expires"
        where = errors.Where(resource=f"Integration/{name}", field="oauth2")
        if not spec.token_secret_name:
            # The operator refreshes into the managed Secret only; nobody renews this one.
            raise errors.PermanentError(
                f"the OAuth2 access token of integration {name!r} {tense} at {when} and "
                "nothing refreshes it: set oauth2.tokenSecretName so that the operator keeps "
                f"it fresh, or authorize again with `{oauth2.AUTHORIZE_COMMAND}`",
                where,
            )
        raise errors.RetryableError(
            f"the OAuth2 access token of integration {name!r} {tense} at {when}; the operator "
            f"refreshes it into Secret {spec.token_secret_name!r} — see the Integration's "
            "Ready condition",
            where,
            retry_after=WAIT_FOR_OPERATOR_SECONDS,
        )
    refresh_token = _read(source, oauth2.REFRESH_TOKEN)
    if not refresh_token:
        raise oauth2.no_refresh_token(stored, name)
    redactor.add(refresh_token)
    client_secret = secrets.get(oauth2.CLIENT_SECRET)
    redactor.add(client_secret)

    async def renew() -> oauth2.Token:
        # A provider that rotates refresh tokens has retired the stored one if this process
        # refreshed before: use the newest.
        previous = cache.latest(key)
        current = previous.refresh_token if previous and previous.refresh_token else None
        token = await oauth2.refresh(
            spec, client_secret, current or refresh_token, integration_name=name
        )
        if token.refresh_token:
            redactor.add(token.refresh_token)
        return token

    return await cache.obtain(key, renew)
