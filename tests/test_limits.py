"""Integration limits kept in this process: what a workflow author relies on without Redis.

``rateLimit`` (``requests`` per ``per``) and ``maxConcurrency`` of an Integration bound the
calls of every step that names it: never more than ``requests`` calls in any window of
``per``, never more than ``maxConcurrency`` at once; a call that cannot get its slot within
its step's timeout fails retryably with a message naming the integration and the limit, and
the step's retry policy takes it from there. Steps without limits never reach the limiter.
Also: how ``AUTOFLOW_REDIS_URL`` picks the limiter for ``autoflow run``. The same behaviour
shared through a real Redis is in ``tests/services/test_limits_redis.py``.

Times are read from the monotonic clock with generous tolerances: the assertions are about
counts within windows and order, never about how fast anything ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from autoflow.connectors import sdk
from autoflow.crds import errors, integration
from autoflow.runners import engine
from autoflow.runners.access import limits
from autoflow.runners.engine import journal
from autoflow.runners.local import run as local

TOLERANCE = 0.05  # seconds two calls of one window may seem closer than they were booked


def crowded_windows(stamps: Sequence[float], requests: int, per: float) -> list[float]:
    """Spans of ``requests + 1`` consecutive calls that fit in one window of ``per``."""
    s = sorted(stamps)
    spans = [s[i + requests] - s[i] for i in range(len(s) - requests)]
    return [span for span in spans if span < per - TOLERANCE]


class HitParams(sdk.Params):
    value: Any = None
    sleep: float = 0.0


class Hits:
    """The ``lim`` test connector: ``lim.hit`` records when it ran and how many ran at once."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.running = 0
        self.max_running = 0
        self.connector = sdk.Connector("lim", "Records its calls.")

        @self.connector.action("hit")
        async def hit(params: HitParams, ctx: sdk.ActionContext) -> Any:
            self.stamps.append(time.monotonic())
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            try:
                await asyncio.sleep(params.sleep)
            finally:
                self.running -= 1
            return params.value


@pytest.fixture
def hits(probe: Any) -> Hits:
    recorder = Hits()
    probe.registry.add(recorder.connector)
    return recorder


def crm(rate: dict[str, Any] | None = None, concurrency: int | None = None) -> Any:
    spec: dict[str, Any] = {"type": "lim"}
    if rate is not None:
        spec["rateLimit"] = rate
    if concurrency is not None:
        spec["maxConcurrency"] = concurrency
    intg = integration.Integration.model_validate({"metadata": {"name": "crm"}, "spec": spec})
    return local.LocalIntegrations([intg], env={})


async def hammer(
    limiter: limits.Limiter, quota: sdk.Limits, calls: int, hold: float = 0.0, **slot: Any
) -> tuple[list[float], int]:
    """``calls`` calls at once through ``limiter``: their start times and the most in flight."""
    stamps: list[float] = []
    running = peak = 0

    async def one() -> None:
        nonlocal running, peak
        async with limiter.slot("crm", quota, max_wait=10, **slot):
            stamps.append(time.monotonic())
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(hold)
            running -= 1

    await asyncio.gather(*(one() for _ in range(calls)))
    return stamps, peak


@pytest.fixture
async def limiter() -> AsyncIterator[limits.LocalLimiter]:
    lim = limits.LocalLimiter()
    yield lim
    await lim.aclose()


# -- the limiter --------------------------------------------------------------------------------


async def test_rate_limit_allows_a_burst_then_keeps_every_window(
    limiter: limits.LocalLimiter,
) -> None:
    stamps, _ = await hammer(limiter, sdk.Limits(requests=3, per_seconds=0.2), 9)
    assert len(stamps) == 9
    assert crowded_windows(stamps, 3, 0.2) == []
    s = sorted(stamps)
    # A window, not an even spacing: the first three go at once, the fourth a window later.
    assert s[2] - s[0] < 0.1
    assert s[3] - s[0] >= 0.2 - TOLERANCE


async def test_concurrency_is_never_exceeded(limiter: limits.LocalLimiter) -> None:
    stamps, peak = await hammer(limiter, sdk.Limits(max_concurrency=3), 12, hold=0.01)
    assert len(stamps) == 12
    assert peak == 3


async def test_both_limits_at_once(limiter: limits.LocalLimiter) -> None:
    quota = sdk.Limits(requests=4, per_seconds=0.2, max_concurrency=2)
    stamps, peak = await hammer(limiter, quota, 10, hold=0.02)
    assert peak == 2
    assert crowded_windows(stamps, 4, 0.2) == []


async def test_rate_quota_exceeded_is_retryable_and_says_when(
    limiter: limits.LocalLimiter,
) -> None:
    quota = sdk.Limits(requests=1, per_seconds=10)
    async with limiter.slot("crm", quota, max_wait=1):
        pass
    with pytest.raises(errors.RetryableError) as caught:
        async with limiter.slot("crm", quota, max_wait=1):
            pytest.fail("the slot was given beyond the rate limit")
    exc = caught.value
    assert exc.retry_after is not None and 9 < exc.retry_after <= 10
    assert exc.message == (
        f"integration 'crm' is at its rate limit (1 request per 10s); next slot in "
        f"{exc.retry_after:.1f}s"
    )
    assert exc.where.resource == "Integration/crm"


async def test_concurrency_quota_exceeded_after_max_wait(limiter: limits.LocalLimiter) -> None:
    quota = sdk.Limits(max_concurrency=2)
    async with limiter.slot("crm", quota), limiter.slot("crm", quota):
        started = time.monotonic()
        with pytest.raises(errors.RetryableError) as caught:
            async with limiter.slot("crm", quota, max_wait=0.1):
                pytest.fail("a third call ran with maxConcurrency 2")
        assert time.monotonic() - started >= 0.1 - TOLERANCE  # it did wait its max_wait
    assert caught.value.message == (
        "integration 'crm' is at its concurrency limit (2 calls at once); no slot freed within 0.1s"
    )
    # Both slots are free again.
    async with limiter.slot("crm", quota, max_wait=0), limiter.slot("crm", quota, max_wait=0):
        pass


async def test_a_waiting_call_gets_the_slot_as_soon_as_it_frees(
    limiter: limits.LocalLimiter,
) -> None:
    quota = sdk.Limits(max_concurrency=1)
    order: list[str] = []

    async def holder() -> None:
        async with limiter.slot("crm", quota):
            order.append("first in")
            await asyncio.sleep(0.05)
            order.append("first out")

    async def waiter() -> None:
        await asyncio.sleep(0.01)
        async with limiter.slot("crm", quota, max_wait=5):
            order.append("second in")

    await asyncio.gather(holder(), waiter())
    assert order == ["first in", "first out", "second in"]


async def test_slots_come_back_after_errors_and_cancellation(
    limiter: limits.LocalLimiter,
) -> None:
    quota = sdk.Limits(max_concurrency=1)
    with pytest.raises(RuntimeError):
        async with limiter.slot("crm", quota):
            raise RuntimeError("the action failed")
    # A call cancelled while it waits takes no slot with it.
    async with limiter.slot("crm", quota):
        waiting = asyncio.ensure_future(limiter.slot("crm", quota, max_wait=5).__aenter__())
        await asyncio.sleep(0.02)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    # A call refused by the rate limit gives back the lease it already held.
    both = sdk.Limits(requests=1, per_seconds=10, max_concurrency=1)
    async with limiter.slot("crm", both):
        pass
    with pytest.raises(errors.RetryableError, match="rate limit"):
        async with limiter.slot("crm", both, max_wait=0.5):
            pass
    async with limiter.slot("crm", quota, max_wait=0):
        pass


async def test_namespaces_and_integrations_have_their_own_quota(
    limiter: limits.LocalLimiter,
) -> None:
    quota = sdk.Limits(requests=1, per_seconds=10)
    async with limiter.slot("crm", quota, namespace="sales", max_wait=0):
        pass
    async with limiter.slot("crm", quota, namespace="support", max_wait=0):
        pass
    async with limiter.slot("erp", quota, namespace="sales", max_wait=0):
        pass
    with pytest.raises(errors.RetryableError):
        async with limiter.slot("crm", quota, namespace="sales", max_wait=0):
            pass


# -- in a run -----------------------------------------------------------------------------------


async def test_a_workflow_spaces_the_calls_of_a_limited_integration(probe: Any, hits: Hits) -> None:
    spec = {
        "steps": [
            {
                "id": "push",
                "uses": "lim.hit",
                "integration": "crm",
                "foreach": "${ [1, 2, 3, 4, 5, 6, 7] }",
                "concurrency": 7,
                "with": {"value": "${ item }", "sleep": 0.03},
            }
        ]
    }
    provider = crm({"requests": 3, "per": "200ms"}, concurrency=2)
    result = await probe.run(spec, integrations=provider)
    assert result.phase == "Succeeded", result.error
    assert result.steps["push"].output == [1, 2, 3, 4, 5, 6, 7]
    assert len(hits.stamps) == 7
    assert hits.max_running == 2
    assert crowded_windows(hits.stamps, 3, 0.2) == []


async def test_quota_exceeded_is_retried_under_the_step_policy(probe: Any, hits: Hits) -> None:
    spec = {
        "steps": [
            {
                "id": "push",
                "uses": "lim.hit",
                "integration": "crm",
                "foreach": "${ [1, 2] }",
                "concurrency": 2,
                "timeout": "100ms",  # shorter than the wait for the second call's slot
                "retry": {"maxAttempts": 3, "initialDelay": "1ms", "jitter": False},
                "with": {"value": "${ item }"},
            }
        ]
    }
    jr = journal.MemoryJournal()
    result = await probe.run(spec, journal=jr, integrations=crm({"requests": 1, "per": "300ms"}))
    assert result.phase == "Succeeded", result.error
    assert result.steps["push"].output == [1, 2]
    assert result.steps["push"].attempts == 3  # one item needed a second attempt
    retries = [r for r in jr.records if r["t"] == "retry"]
    assert len(retries) == 1
    assert retries[0]["error"].startswith(
        "integration 'crm' is at its rate limit (1 request per 300ms); next slot in "
    )
    s = sorted(hits.stamps)
    assert len(s) == 2
    assert s[1] - s[0] >= 0.3 - TOLERANCE  # the retry waited for retry_after, not 1ms


async def test_quota_exceeded_fails_the_step_when_retries_run_out(probe: Any, hits: Hits) -> None:
    spec = {
        "steps": [
            {
                "id": "push",
                "uses": "lim.hit",
                "integration": "crm",
                "foreach": "${ [1, 2] }",
                "timeout": "50ms",
            }
        ]
    }
    result = await probe.run(spec, integrations=crm({"requests": 1, "per": "1m"}))
    assert result.phase == "Failed"
    error = result.steps["push"].error or ""
    assert error.startswith("item 1: integration 'crm' is at its rate limit (1 request per 1m)")
    assert len(hits.stamps) == 1


class SpyLimiter(limits.LocalLimiter):
    def __init__(self) -> None:
        super().__init__()
        self.slots: list[tuple[str, sdk.Limits, str, float | None]] = []

    @contextlib.asynccontextmanager
    async def slot(
        self,
        integration: str,
        limits: sdk.Limits,
        *,
        namespace: str = "",
        max_wait: float | None = None,
    ) -> AsyncIterator[None]:
        self.slots.append((integration, limits, namespace, max_wait))
        async with super().slot(integration, limits, namespace=namespace, max_wait=max_wait):
            yield


async def test_only_steps_of_limited_integrations_take_a_slot(probe: Any, hits: Hits) -> None:
    plain = integration.Integration.model_validate(
        {"metadata": {"name": "plain"}, "spec": {"type": "lim"}}
    )
    limited = integration.Integration.model_validate(
        {"metadata": {"name": "crm"}, "spec": {"type": "lim", "maxConcurrency": 5}}
    )
    spec = {
        "steps": [
            {"id": "none", "uses": "lim.hit"},
            {"id": "plain", "uses": "lim.hit", "integration": "plain"},
            {"id": "limited", "uses": "lim.hit", "integration": "crm", "timeout": "2s"},
        ]
    }
    spy = SpyLimiter()
    result = await probe.run(
        spec,
        integrations=local.LocalIntegrations([plain, limited], env={}),
        limiter=spy,
        run_info={"namespace": "sales"},
    )
    assert result.phase == "Succeeded", result.error
    assert len(hits.stamps) == 3
    assert spy.slots == [("crm", sdk.Limits(max_concurrency=5), "sales", 2.0)]


# -- choosing the limiter -----------------------------------------------------------------------


async def test_from_env_picks_redis_only_when_configured() -> None:
    assert isinstance(limits.from_env({}), limits.LocalLimiter)
    assert isinstance(limits.from_env({"AUTOFLOW_REDIS_URL": " "}), limits.LocalLimiter)
    shared = limits.from_env({"AUTOFLOW_REDIS_URL": "rediss://app:s3cr3t-pw@redis.example:6380/2"})
    assert isinstance(shared, limits.RedisLimiter)
    assert shared.url == "rediss://app:***@redis.example:6380/2"
    await shared.aclose()  # never connected: nothing to say goodbye to
    with pytest.raises(errors.AutoflowError) as caught:
        limits.from_env({"AUTOFLOW_REDIS_URL": "http://:s3cr3t-pw@redis.example"})
    assert str(caught.value) == (
        "AUTOFLOW_REDIS_URL must be a redis:// or rediss:// URL; it has scheme 'http'"
    )


def test_autoflow_run_takes_its_limiter_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "apiVersion: autoflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\n"
        "spec:\n  steps:\n    - {id: a, uses: core.noop}\n"
    )

    def prepared(env: dict[str, str]) -> engine.Run:
        return local.prepare([str(path)], given_inputs={}, from_text=False, env=env)

    assert isinstance(prepared({}).limiter, limits.LocalLimiter)
    limiter = prepared({"AUTOFLOW_REDIS_URL": "redis://:pw@127.0.0.1:6399/0"}).limiter
    assert isinstance(limiter, limits.RedisLimiter)
    assert limiter.url == "redis://:***@127.0.0.1:6399/0"
