"""Per-integration rate limits and concurrency, shared by every runner through Redis.

An Integration's ``rateLimit`` (``requests`` calls every ``per``) and ``maxConcurrency`` reach
a step as ``sdk.Limits``. The engine wraps each action call of such a step (one attempt, one
foreach item) in a slot::

    async with limiter.slot("crm", limits, namespace="sales", max_wait=30):
        await action(params, ctx)  # holding a lease, at its booked time in the rate window

Taking a slot takes the lease first, then books the call's time in the rate window and sleeps
until it (booked times keep the window exact; a call that waited for a lease after its time
came would bunch up with the next ones). When the slot cannot be had within ``max_wait``
(``DEFAULT_MAX_WAIT`` when None), ``errors.RetryableError`` names the integration and the limit,
with ``retry_after`` the expected wait for a rate limit, so the step's retry policy handles it.

Two limiters share the waiting and differ in where the counts live:

- ``LocalLimiter``: in this process; the quota is honoured per runner.
- ``RedisLimiter``: in Redis, so all runners share one quota. Each change is one Lua script
  (atomic, timed by Redis ``TIME``, never by a runner's clock)::

      rate      a sliding-window log (ZSET of booked call times): at most ``requests`` in any
                window of ``per``; books the earliest allowed time, returns [booked, wait ms]
      acquire   a ZSET of lease ids scored by expiry: drops expired leases, adds one only while
                fewer than ``maxConcurrency`` are held and the caller is first in the line of
                waiters (so no runner starves another's); else returns ms worth waiting
      renew     pushes held leases' expiry on (a heartbeat every ``lease_ttl / 3``)

  Release is a ZREM. A crashed runner's leases are not renewed and free themselves after
  ``lease_ttl``. A runner waiting for a lease polls with the wait the script returns (bounded,
  doubling, jittered; one poller per key in a process, woken at once by its own releases).
  When Redis cannot be reached, slots fall back to a ``LocalLimiter`` (one warning per
  integration; the quota is then honoured per runner) and go back to Redis when it answers.

``from_env(os.environ)``: ``AUTOFLOW_REDIS_URL`` (redis:// or rediss://) gives a RedisLimiter,
else a LocalLimiter. A limiter belongs to one event loop; its owner closes it (``aclose``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import random
import secrets
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Protocol

from autoflow.connectors import sdk
from autoflow.crds import errors

if TYPE_CHECKING:  # imported when a RedisLimiter is made: most runs never need redis-py
    import redis.asyncio as aioredis

log = logging.getLogger("autoflow.limits")

REDIS_URL_ENV = "AUTOFLOW_REDIS_URL"
DEFAULT_MAX_WAIT = 60.0  # seconds a call may wait for its slot when the step sets no timeout
LEASE_TTL = 15.0  # seconds a crashed runner's concurrency lease outlives it
# Between asks for a lease: starts short (slots usually free fast), doubles up to the cap.
_POLL_FIRST, _POLL_CAP = 0.005, 0.05
# A waiter for a lease that has not asked for this long has gone (crashed): far more than
# _POLL_CAP, so a busy event loop does not lose its place.
_PATIENCE_MS = 2000


class Limiter(Protocol):
    """Hands out slots: a concurrency lease and a rate token per action call."""

    def slot(
        self,
        integration: str,
        limits: sdk.Limits,
        *,
        namespace: str = "",
        max_wait: float | None = None,
    ) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def aclose(self) -> None: ...


def from_env(environ: Mapping[str, str]) -> Limiter:
    """A RedisLimiter when ``AUTOFLOW_REDIS_URL`` is set, else a LocalLimiter."""
    url = environ.get(REDIS_URL_ENV, "").strip()
    if not url:
        return LocalLimiter()
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in ("redis", "rediss"):
        # Not the URL itself: it may hold a password.
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise errors.AutoflowError(
            f"{REDIS_URL_ENV} must be a redis:// or rediss:// URL; it has {shown}"
        )
    return RedisLimiter(url)


# -- messages ---------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    """A duration as a manifest would write it: 1s, 500ms, 1m, 1h30m."""
    if value < 1:
        return f"{value * 1000:g}ms"
    if value >= 60 and value == int(value):
        hours, rest = divmod(int(value), 3600)
        minutes, secs = divmod(rest, 60)
        parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
        return "".join(f"{n}{unit}" for n, unit in parts if n)
    return f"{value:g}s"


def rate_exceeded(integration: str, limits: sdk.Limits, wait: float) -> errors.RetryableError:
    requests = limits.requests or 0
    noun = "request" if requests == 1 else "requests"
    return errors.RetryableError(
        f"integration {integration!r} is at its rate limit ({requests} {noun} per "
        f"{_seconds(limits.per_seconds or 0)}); next slot in {wait:.1f}s",
        errors.Where(resource=f"Integration/{integration}"),
        retry_after=wait,
        details={"integration": integration, "limit": "rateLimit"},
    )


def concurrency_exceeded(integration: str, limit: int, waited: float) -> errors.RetryableError:
    noun = "call" if limit == 1 else "calls"
    return errors.RetryableError(
        f"integration {integration!r} is at its concurrency limit ({limit} {noun} at once); "
        f"no slot freed within {waited:.1f}s",
        errors.Where(resource=f"Integration/{integration}"),
        details={"integration": integration, "limit": "maxConcurrency"},
    )


# -- the waiting both limiters share ----------------------------------------------------------


class _Gate:
    """This process's waiters for one key: one at a time asks the store (FIFO), and a release
    in this process wakes it at once rather than at its next poll."""

    __slots__ = ("freed", "turn")

    def __init__(self) -> None:
        self.turn = asyncio.Lock()
        self.freed = asyncio.Event()


class _Slots:
    """``slot()`` over the operations a subclass keeps somewhere: take, leave and release a
    lease, book a call time."""

    def __init__(self) -> None:
        self._gates: dict[str, _Gate] = {}

    def _lease_id(self) -> str:
        return ""  # leases kept in this process need no names

    async def _try_lease(self, key: str, limit: int, lease: str) -> float:
        """Take ``lease`` if fewer than ``limit`` are held: 0.0, else seconds worth waiting."""
        raise NotImplementedError

    async def _book(self, key: str, limits: sdk.Limits, max_wait: float) -> tuple[bool, float]:
        """Book a call time at most ``max_wait`` away: (booked, seconds until that time)."""
        raise NotImplementedError

    async def _release(self, key: str, lease: str) -> None:
        """Give a lease back; never raises."""
        raise NotImplementedError

    async def _leave(self, key: str, lease: str) -> None:
        """Stop waiting for ``lease`` (given up or cancelled); never raises."""

    @contextlib.asynccontextmanager
    async def slot(
        self,
        integration: str,
        limits: sdk.Limits,
        *,
        namespace: str = "",
        max_wait: float | None = None,
    ) -> AsyncIterator[None]:
        budget = DEFAULT_MAX_WAIT if max_wait is None else max(0.0, max_wait)
        key = f"{namespace}/{integration}"
        lease = await self._acquire(key, integration, limits, budget)
        try:
            yield
        finally:
            if lease is not None:
                await self._give_back(key, lease)

    async def aclose(self) -> None:
        self._gates.clear()

    async def _acquire(
        self, key: str, integration: str, limits: sdk.Limits, budget: float
    ) -> str | None:
        """The lease (None without maxConcurrency) once the call may go."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        lease = None
        if limits.max_concurrency is not None:
            lease = await self._lease(key, integration, limits.max_concurrency, deadline, budget)
        try:
            if limits.requests is not None and limits.per_seconds:
                booked, wait = await self._book(key, limits, max(0.0, deadline - loop.time()))
                if not booked:
                    raise rate_exceeded(integration, limits, wait)
                if wait > 0:
                    await asyncio.sleep(wait)
        except BaseException:
            if lease is not None:
                await self._give_back(key, lease)
            raise
        return lease

    async def _lease(
        self, key: str, integration: str, limit: int, deadline: float, budget: float
    ) -> str:
        lease = self._lease_id()
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate()
        if gate.turn.locked():
            try:
                async with asyncio.timeout_at(deadline):
                    await gate.turn.acquire()
            except TimeoutError:
                raise concurrency_exceeded(integration, limit, budget) from None
        else:
            await gate.turn.acquire()  # free: returns without yielding to the loop
        loop = asyncio.get_running_loop()
        taken = False
        try:
            pause = _POLL_FIRST
            while True:
                gate.freed.clear()
                hint = await self._try_lease(key, limit, lease)
                if hint == 0:
                    taken = True
                    return lease
                left = deadline - loop.time()
                if left <= 0:
                    raise concurrency_exceeded(integration, limit, budget)
                nap = min(hint, pause) * random.uniform(0.5, 1.0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(nap, left)):
                        await gate.freed.wait()
                pause = min(pause * 2, _POLL_CAP)
        finally:
            gate.turn.release()
            if not taken:
                await self._leave(key, lease)

    async def _give_back(self, key: str, lease: str) -> None:
        await self._release(key, lease)
        gate = self._gates.get(key)
        if gate is not None:
            gate.freed.set()


# -- in this process --------------------------------------------------------------------------


class LocalLimiter(_Slots):
    """Limits kept in this process (monotonic clock): honoured per runner, not cluster-wide."""

    def __init__(self) -> None:
        super().__init__()
        self._held: dict[str, int] = {}
        self._calls: dict[str, collections.deque[float]] = {}

    async def _try_lease(self, key: str, limit: int, lease: str) -> float:
        held = self._held.get(key, 0)
        if held < limit:
            self._held[key] = held + 1
            return 0.0
        return math.inf  # only a release here frees one, and that wakes the waiter

    async def _release(self, key: str, lease: str) -> None:
        held = self._held.get(key, 0) - 1
        if held > 0:
            self._held[key] = held
        else:
            self._held.pop(key, None)

    async def _book(self, key: str, limits: sdk.Limits, max_wait: float) -> tuple[bool, float]:
        # The same sliding-window log as the Redis script, in seconds of loop time.
        requests, per = limits.requests or 1, limits.per_seconds or 0.0
        now = asyncio.get_running_loop().time()
        calls = self._calls.setdefault(key, collections.deque())
        while calls and calls[0] <= now - per:
            calls.popleft()
        at = max(now, calls[-1]) if calls else now
        if len(calls) >= requests:
            at = max(at, calls[-requests] + per)
        wait = at - now
        if wait > max_wait:
            return False, wait
        calls.append(at)
        return True, wait


# -- in Redis ---------------------------------------------------------------------------------

# KEYS[1] the call log (member: a booking id, score: booked ms); ARGV requests, per ms,
# max wait ms, booking id. At most `requests` booked times in any window of `per`: the new
# time is the later of now, the last booking, and the requests-th latest booking + per.
_RATE = """
local requests, per = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
local at = now
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then at = math.max(at, tonumber(last[2])) end
if redis.call('ZCARD', KEYS[1]) >= requests then
  local nth = redis.call('ZRANGE', KEYS[1], -requests, -requests, 'WITHSCORES')
  at = math.max(at, tonumber(nth[2]) + per)
end
local wait = at - now
if wait > tonumber(ARGV[3]) then return {0, math.ceil(wait)} end
redis.call('ZADD', KEYS[1], at, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(wait + per))
return {1, math.ceil(wait)}
"""

# KEYS[1] the leases (member: lease id, score: expiry ms), KEYS[2] the line of waiters
# (member: lease id, score: when it joined), KEYS[3] when each waiter last asked; ARGV limit,
# ttl ms, lease id, patience ms. A free lease goes to the first in line, so one runner's
# waiters cannot starve another's; a waiter that stopped asking (crashed) leaves the line
# after `patience`. Returns 0 when the lease was taken, else ms worth waiting: until the first
# lease expires, or a moment when a lease is free but others are ahead.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, ttl, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[4]))) do
  redis.call('ZREM', KEYS[2], gone)
  redis.call('ZREM', KEYS[3], gone)
end
local free = limit - redis.call('ZCARD', KEYS[1])
if free > 0 then
  local place = redis.call('ZRANK', KEYS[2], id) or redis.call('ZCARD', KEYS[2])
  if place < free then
    redis.call('ZADD', KEYS[1], now + ttl, id)
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    return 0
  end
end
redis.call('ZADD', KEYS[2], 'NX', now, id)
redis.call('ZADD', KEYS[3], now, id)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if free > 0 then return 5 end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.ceil(tonumber(first[2]) - now))
"""

# KEYS[1] the leases; ARGV ttl ms, lease ids. Renews the ids still held (an expired one is
# gone: re-adding it could exceed the limit); returns how many.
_RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', expiry, ARGV[i])
end
if renewed > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return renewed
"""


def redacted_url(url: str) -> str:
    """``url`` without its password, for log lines and messages."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable Redis URL>"
    secret = ":***" if parts.password else ""
    user = f"{parts.username or ''}{secret}@" if parts.username or secret else ""
    host = f"[{host}]" if ":" in host else host
    return urllib.parse.urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, "", ""))


class RedisLimiter(_Slots):
    """Limits kept in Redis, shared by every runner that uses the same Redis and ``prefix``.

    ``lease_ttl``: how long a crashed runner's lease holds a slot; ``timeout``: per Redis
    command (a call waits at most this long for Redis before falling back); ``recheck``: how
    long slots stay local after Redis failed before it is asked again.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "autoflow:limits:",
        lease_ttl: float = LEASE_TTL,
        timeout: float = 2.0,
        recheck: float = 5.0,
    ) -> None:
        import redis.asyncio as aioredis
        from redis import backoff, exceptions
        from redis.asyncio import retry

        super().__init__()
        # What makes Redis unusable for counting now: down, refusing, out of memory, read-only.
        self._unreachable = (exceptions.RedisError, OSError)
        self.prefix = prefix
        self.lease_ttl = lease_ttl
        self.url = redacted_url(url)
        self._holder = f"{socket.gethostname()}:{os.getpid()}"
        try:
            password = urllib.parse.urlsplit(url).password
        except ValueError:
            password = None
        self._hide = [p for p in {password, urllib.parse.unquote(password or "")} if p]
        try:
            self._client: aioredis.Redis = aioredis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                # No retries inside the client: a failure falls back at once.
                retry=retry.Retry(backoff.NoBackoff(), 0),
                client_name="autoflow-limits",
            )
        except ValueError:
            raise errors.AutoflowError(
                f"{REDIS_URL_ENV} is not a usable Redis URL: {self.url}"
            ) from None
        self._rate = self._client.register_script(_RATE)
        self._acquire_script = self._client.register_script(_ACQUIRE)
        self._renew = self._client.register_script(_RENEW)
        self._local = LocalLimiter()
        self._recheck = recheck
        self._down_until: float | None = None  # monotonic; None while Redis answers
        self._warned: set[str] = set()
        self._held: dict[str, set[str]] = {}  # redis key → lease ids the heartbeat renews
        self._beat: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def slot(
        self,
        integration: str,
        limits: sdk.Limits,
        *,
        namespace: str = "",
        max_wait: float | None = None,
    ) -> AsyncIterator[None]:
        budget = DEFAULT_MAX_WAIT if max_wait is None else max(0.0, max_wait)
        key = f"{namespace}/{integration}"
        started = time.monotonic()
        if self._down_until is None or started >= self._down_until:
            try:
                lease = await self._acquire(key, integration, limits, budget)
            except self._unreachable as exc:
                self._failed(key, integration, exc)
            else:
                self._answered()
                try:
                    yield
                finally:
                    if lease is not None:
                        await self._give_back(key, lease)
                return
        left = budget - (time.monotonic() - started)
        async with self._local.slot(integration, limits, namespace=namespace, max_wait=left):
            yield

    async def aclose(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        self._held.clear()
        await self._local.aclose()
        await self._client.aclose()
        await super().aclose()

    # -- where the counts live ----------------------------------------------------------------

    def _lease_id(self) -> str:
        # Who holds a lease, for whoever looks into Redis: host (the pod), process, a nonce.
        return f"{self._holder}:{secrets.token_hex(6)}"

    def _key(self, key: str, kind: str) -> str:
        # The braces are a hash tag: an integration's keys sit in one Redis Cluster slot.
        return f"{self.prefix}{{{key}}}:{kind}"

    async def _book(self, key: str, limits: sdk.Limits, max_wait: float) -> tuple[bool, float]:
        booked, wait_ms = await self._rate(
            keys=[self._key(key, "rate")],
            args=[
                limits.requests or 1,
                (limits.per_seconds or 0.0) * 1000,
                max_wait * 1000,
                secrets.token_hex(8),
            ],
        )
        return bool(booked), int(wait_ms) / 1000

    async def _try_lease(self, key: str, limit: int, lease: str) -> float:
        name = self._key(key, "leases")
        wait_ms = await self._acquire_script(
            keys=[name, self._key(key, "line"), self._key(key, "asked")],
            args=[limit, math.ceil(self.lease_ttl * 1000), lease, _PATIENCE_MS],
        )
        if int(wait_ms) == 0:
            self._hold(name, lease)
            return 0.0
        return int(wait_ms) / 1000

    async def _leave(self, key: str, lease: str) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zrem(self._key(key, "line"), lease)
                pipe.zrem(self._key(key, "asked"), lease)
                await pipe.execute()
        except self._unreachable as exc:
            # The line forgets a waiter that stopped asking after _PATIENCE_MS.
            log.debug("could not leave the line on %s: %s", self.url, self._reason(exc))

    async def _release(self, key: str, lease: str) -> None:
        name = self._key(key, "leases")
        held = self._held.get(name)
        if held is not None:
            held.discard(lease)
            if not held:
                del self._held[name]
        try:
            await self._client.zrem(name, lease)
        except self._unreachable as exc:
            # Not renewed any more, the lease frees itself after lease_ttl.
            log.debug("could not release a lease on %s: %s", self.url, self._reason(exc))

    # -- heartbeat ------------------------------------------------------------------------------

    def _hold(self, name: str, lease: str) -> None:
        self._held.setdefault(name, set()).add(lease)
        if self._beat is None or self._beat.done():
            self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        ttl_ms = math.ceil(self.lease_ttl * 1000)
        while self._held:
            await asyncio.sleep(self.lease_ttl / 3)
            for name, held in list(self._held.items()):
                if not held:
                    continue
                try:
                    await self._renew(keys=[name], args=[ttl_ms, *held])
                except self._unreachable as exc:
                    log.debug("could not renew leases on %s: %s", self.url, self._reason(exc))

    # -- Redis down and up again ----------------------------------------------------------------

    def _reason(self, exc: BaseException) -> str:
        text = str(exc).rstrip(".") or type(exc).__name__
        for secret in self._hide:
            text = text.replace(secret, "***")
        return text

    def _failed(self, key: str, integration: str, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._recheck
        if key in self._warned:
            return
        self._warned.add(key)
        log.warning(
            "Redis at %s cannot keep integration limits (%s): the limits of integration %r "
            "are kept by this runner alone until Redis answers again",
            self.url,
            self._reason(exc),
            integration,
            extra={"integration": integration},
        )

    def _answered(self) -> None:
        if self._down_until is None:
            return
        self._down_until = None
        self._warned.clear()
        log.info("Redis at %s answers again: limits are shared by all runners again", self.url)
