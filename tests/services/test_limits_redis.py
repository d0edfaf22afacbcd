"""Integration limits shared through a real redis-server: one quota for every runner.

A runner here is a ``RedisLimiter`` (two instances in one process, or two processes, or two
``autoflow run`` commands) pointed at the same Redis. What the cluster relies on: no more than
``requests`` calls in any window of ``per`` and no more than ``maxConcurrency`` at once across
all runners; a runner that dies holding a slot gives it back after the lease TTL, while a live
one keeps its slot for as long as it needs (heartbeat); runners waiting for a slot take turns
(and one that dies waiting leaves the line); a quota that cannot be met in time is
a retryable error the step's policy retries; Redis going away falls back to per-runner limits
with one warning (never showing the password) and Redis coming back is used again.

Each test uses its own key prefix or integration name on the session's server; a test that
takes Redis down starts its own. Times come from the monotonic clock (shared by processes on
one machine) or from Redis (stream entry ids), with generous tolerances.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest
import redis
import servers

from autoflow.connectors import registry, sdk
from autoflow.crds import errors, integration, workflow
from autoflow.runners import engine
from autoflow.runners.access import limits
from autoflow.runners.definitions import plan
from autoflow.runners.local import run as local

TOLERANCE = 0.05
Cli = Callable[..., subprocess.CompletedProcess[str]]


def crowded_windows(stamps: Sequence[float], requests: int, per: float, tol: float) -> list[float]:
    """Spans of ``requests + 1`` consecutive calls that fit in one window of ``per``."""
    s = sorted(stamps)
    spans = [s[i + requests] - s[i] for i in range(len(s) - requests)]
    return [span for span in spans if span < per - tol]


@pytest.fixture
def prefix() -> str:
    return f"t-{secrets.token_hex(4)}:"


@pytest.fixture
async def runners(
    redis_server: servers.Redis, prefix: str
) -> AsyncIterator[Callable[..., limits.RedisLimiter]]:
    """``runners(**options)``: a new RedisLimiter on the session's server, closed afterwards."""
    made: list[limits.RedisLimiter] = []

    def make(**options: Any) -> limits.RedisLimiter:
        options.setdefault("prefix", prefix)
        made.append(limits.RedisLimiter(redis_server.url, **options))
        return made[-1]

    yield make
    for limiter in made:
        await limiter.aclose()


class InFlight:
    """Counts calls in flight across limiters: the most at once, and when each started."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.running = 0
        self.peak = 0

    async def call(
        self, limiter: limits.Limiter, quota: sdk.Limits, hold: float = 0.0, name: str = "crm"
    ) -> None:
        async with limiter.slot(name, quota, max_wait=10):
            self.stamps.append(time.monotonic())
            self.running += 1
            self.peak = max(self.peak, self.running)
            await asyncio.sleep(hold)
            self.running -= 1


# -- shared by runners --------------------------------------------------------------------------


async def test_rate_is_shared_by_two_runners(runners: Callable[..., limits.RedisLimiter]) -> None:
    first, second = runners(), runners()
    quota = sdk.Limits(requests=3, per_seconds=0.25)
    seen = InFlight()
    await asyncio.gather(*(seen.call(lim, quota) for lim in [first, second] * 5))
    assert len(seen.stamps) == 10
    assert crowded_windows(seen.stamps, 3, 0.25, TOLERANCE) == []


async def test_concurrency_is_shared_by_two_runners(
    runners: Callable[..., limits.RedisLimiter],
) -> None:
    first, second = runners(), runners()
    quota = sdk.Limits(max_concurrency=3)
    seen = InFlight()
    await asyncio.gather(*(seen.call(lim, quota, hold=0.02) for lim in [first, second] * 8))
    assert len(seen.stamps) == 16
    assert seen.peak == 3


RUNNER_PROCESS = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    import redis
    from autoflow.connectors import sdk
    from autoflow.runners.access import limits

    url, prefix, calls = os.environ["REDIS_URL"], os.environ["PREFIX"], int(sys.argv[1])
    barrier = redis.Redis.from_url(url)
    barrier.incr(prefix + "ready")
    while int(barrier.get(prefix + "ready")) < 2:  # both processes start calling together
        time.sleep(0.005)

    async def main():
        limiter = limits.RedisLimiter(url, prefix=prefix)
        quota = sdk.Limits(requests=3, per_seconds=0.25)
        stamps = []

        async def one():
            async with limiter.slot("crm", quota, max_wait=10):
                stamps.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(calls)))
        await limiter.aclose()
        print(json.dumps(stamps))

    asyncio.run(main())
    """
)


def test_rate_is_shared_by_two_processes(redis_server: servers.Redis, prefix: str) -> None:
    env = {**os.environ, "REDIS_URL": redis_server.url, "PREFIX": prefix}
    procs = [
        subprocess.Popen(
            [sys.executable, "-P", "-c", RUNNER_PROCESS, "6"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    per_process = [json.loads(out) for out, _ in outputs]
    assert [len(s) for s in per_process] == [6, 6]
    stamps = per_process[0] + per_process[1]
    assert crowded_windows(stamps, 3, 0.25, TOLERANCE) == []
    # Twelve calls at three per window take at least three windows, whoever made them.
    assert max(stamps) - min(stamps) >= 3 * 0.25 - TOLERANCE


# -- leases ---------------------------------------------------------------------------------------

CRASHING_RUNNER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from autoflow.connectors import sdk
    from autoflow.runners.access import limits

    async def main():
        limiter = limits.RedisLimiter(os.environ["REDIS_URL"], prefix=os.environ["PREFIX"],
                                      lease_ttl=1.0)
        async with limiter.slot("crm", sdk.Limits(max_concurrency=1)):
            print("holding", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # no release, no more heartbeats

    asyncio.run(main())
    """
)


async def test_the_lease_of_a_crashed_runner_expires(
    redis_server: servers.Redis, prefix: str, runners: Callable[..., limits.RedisLimiter]
) -> None:
    env = {**os.environ, "REDIS_URL": redis_server.url, "PREFIX": prefix}
    crashed = subprocess.run(
        [sys.executable, "-P", "-c", CRASHING_RUNNER], env=env, capture_output=True, text=True
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert crashed.stdout == "holding\n"
    survivor = runners()
    quota = sdk.Limits(max_concurrency=1)
    with pytest.raises(errors.RetryableError, match="concurrency limit"):
        async with survivor.slot("crm", quota, max_wait=0.05):
            pytest.fail("the crashed runner's lease was not held")
    started = time.monotonic()
    async with survivor.slot("crm", quota, max_wait=5):
        waited = time.monotonic() - started
    assert waited < 1.0 + 0.5  # freed by its TTL (1s from when it was taken), not by luck


async def test_a_live_holder_keeps_its_slot_past_the_lease_ttl(
    runners: Callable[..., limits.RedisLimiter],
) -> None:
    holder, other = runners(lease_ttl=0.6), runners(lease_ttl=0.6)
    quota = sdk.Limits(max_concurrency=1)
    refused = 0
    async with holder.slot("crm", quota):
        deadline = time.monotonic() + 2.0  # more than three TTLs: only heartbeats keep it
        while time.monotonic() < deadline:
            try:
                async with other.slot("crm", quota, max_wait=0.05):
                    pytest.fail("the slot was taken from a live holder")
            except errors.RetryableError:
                refused += 1
            await asyncio.sleep(0.1)
    assert refused >= 10
    async with other.slot("crm", quota, max_wait=0.5):
        pass  # released at once when the holder was done


async def test_waiting_runners_take_turns(runners: Callable[..., limits.RedisLimiter]) -> None:
    busy, late = runners(), runners()
    quota = sdk.Limits(max_concurrency=1)
    order: list[str] = []

    async def call(limiter: limits.RedisLimiter, who: str) -> None:
        async with limiter.slot("crm", quota, max_wait=10):
            order.append(who)
            await asyncio.sleep(0.03)

    async def arrive_late() -> None:
        await asyncio.sleep(0.05)  # the busy runner's ten calls are all waiting by now
        await call(late, "late")

    await asyncio.gather(*(call(busy, "busy") for _ in range(10)), arrive_late())
    # A release wakes the busy runner's next call at once, yet the late runner, first in line
    # after the call running when it came, goes next rather than after all ten.
    assert order.index("late") <= 3, order


WAITING_RUNNER = textwrap.dedent(
    """
    import asyncio, os, signal
    from autoflow.connectors import sdk
    from autoflow.runners.access import limits

    async def main():
        limiter = limits.RedisLimiter(os.environ["REDIS_URL"], prefix=os.environ["PREFIX"])
        waiting = asyncio.ensure_future(
            limiter.slot("crm", sdk.Limits(max_concurrency=1), max_wait=30).__aenter__()
        )
        await asyncio.sleep(0.3)  # in line behind the holder
        print("waiting", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def test_a_crashed_waiter_leaves_the_line(
    redis_server: servers.Redis, prefix: str, runners: Callable[..., limits.RedisLimiter]
) -> None:
    holder, other = runners(), runners()
    quota = sdk.Limits(max_concurrency=1)
    env = {**os.environ, "REDIS_URL": redis_server.url, "PREFIX": prefix}
    async with holder.slot("crm", quota):
        crashed = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-c", WAITING_RUNNER, env=env, stdout=subprocess.PIPE
        )
        out, _ = await crashed.communicate()
        assert out == b"waiting\n"
    # The dead waiter is first in line; the slot is free. It is skipped once it has not asked
    # for a while, instead of holding the slot up for ever.
    started = time.monotonic()
    async with other.slot("crm", quota, max_wait=10):
        waited = time.monotonic() - started
    assert 0.5 < waited < 5  # it was held up by the dead waiter, then not any more


async def test_released_slots_leave_nothing_behind(
    redis_server: servers.Redis, prefix: str, runners: Callable[..., limits.RedisLimiter]
) -> None:
    limiter = runners()
    quota = sdk.Limits(requests=5, per_seconds=0.2, max_concurrency=2)
    direct = redis.Redis.from_url(redis_server.url)
    try:
        async with limiter.slot("crm", quota, namespace="sales"):
            leases = f"{prefix}{{sales/crm}}:leases"
            assert direct.zcard(leases) == 1
            assert direct.zcard(f"{prefix}{{sales/crm}}:rate") == 1
        assert direct.zcard(leases) == 0
        await asyncio.sleep(0.3)
        assert direct.keys(f"{prefix}*") == []  # the call log expires with its window
    finally:
        direct.close()


# -- quota exceeded -------------------------------------------------------------------------------


async def test_quota_exceeded_says_which_limit_and_when(
    runners: Callable[..., limits.RedisLimiter],
) -> None:
    first, second = runners(), runners()
    rate = sdk.Limits(requests=2, per_seconds=10)
    async with first.slot("crm", rate, max_wait=0), second.slot("crm", rate, max_wait=0):
        pass
    with pytest.raises(errors.RetryableError) as caught:
        async with first.slot("crm", rate, max_wait=1):
            pytest.fail("a third call in the window")
    exc = caught.value
    assert exc.retry_after is not None and 9 < exc.retry_after <= 10
    assert exc.message == (
        "integration 'crm' is at its rate limit (2 requests per 10s); next slot in "
        f"{exc.retry_after:.1f}s"
    )
    one = sdk.Limits(max_concurrency=1)
    async with first.slot("erp", one):
        with pytest.raises(errors.RetryableError) as caught:
            async with second.slot("erp", one, max_wait=0.1):
                pytest.fail("a second call with maxConcurrency 1")
    assert caught.value.message == (
        "integration 'erp' is at its concurrency limit (1 call at once); no slot freed within 0.1s"
    )


class HitParams(sdk.Params):
    value: Any = None
    sleep: float = 0.0


class Hits:
    """The ``lim`` connector: ``lim.hit`` records start times and calls in flight."""

    def __init__(self) -> None:
        self.seen = InFlight()
        self.connector = sdk.Connector("lim", "Records its calls.")
        self.registry = registry.Registry()
        self.registry.add(self.connector)

        @self.connector.action("hit")
        async def hit(params: HitParams, ctx: sdk.ActionContext) -> Any:
            seen = self.seen
            seen.stamps.append(time.monotonic())
            seen.running += 1
            seen.peak = max(seen.peak, seen.running)
            try:
                await asyncio.sleep(params.sleep)
            finally:
                seen.running -= 1
            return params.value

    async def run(self, step: dict[str, Any], limiter: limits.Limiter, **intg: Any) -> Any:
        manifest = {"metadata": {"name": "crm"}, "spec": {"type": "lim", **intg}}
        provider = local.LocalIntegrations([integration.Integration.model_validate(manifest)])
        wf = workflow.Workflow.model_validate(
            {"metadata": {"name": "wf"}, "spec": {"steps": [step]}}
        )
        compiled = plan.compile_workflow(wf, self.registry)
        run = engine.Run(compiled, run_id="r1", inputs={}, integrations=provider, limiter=limiter)
        return await run.execute()


async def test_a_run_retries_a_quota_exceeded_call_and_succeeds(
    runners: Callable[..., limits.RedisLimiter],
) -> None:
    hits = Hits()
    step = {
        "id": "push",
        "uses": "lim.hit",
        "integration": "crm",
        "foreach": "${ [1, 2, 3] }",
        "concurrency": 3,
        "timeout": "100ms",  # shorter than the wait for a slot of the later items
        "retry": {"maxAttempts": 4, "initialDelay": "1ms", "jitter": False},
        "with": {"value": "${ item }", "sleep": 0.05},
    }
    result = await hits.run(step, runners(), rateLimit={"requests": 1, "per": "250ms"})
    assert result.phase == "Succeeded", result.error
    assert result.steps["push"].output == [1, 2, 3]
    assert result.steps["push"].attempts > 3  # some items were retried
    assert crowded_windows(hits.seen.stamps, 1, 0.25, TOLERANCE) == []


async def test_runs_on_two_runners_share_max_concurrency(
    runners: Callable[..., limits.RedisLimiter],
) -> None:
    hits = Hits()
    step = {
        "id": "push",
        "uses": "lim.hit",
        "integration": "crm",
        "foreach": "${ [1, 2, 3, 4, 5, 6] }",
        "concurrency": 6,
        "with": {"sleep": 0.03},
    }
    a, b = runners(), runners()
    done = await asyncio.gather(
        hits.run(step, a, maxConcurrency=2), hits.run(step, b, maxConcurrency=2)
    )
    assert [r.phase for r in done] == ["Succeeded", "Succeeded"]
    assert len(hits.seen.stamps) == 12
    assert hits.seen.peak == 2


# -- Redis down and back --------------------------------------------------------------------------


async def test_redis_down_falls_back_to_this_runner_and_warns_once(
    redis_factory: Callable[..., servers.Redis],
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="autoflow.limits")
    server = redis_factory()
    limiter = limits.RedisLimiter(server.url, prefix=prefix, recheck=0.2, timeout=0.5)
    direct = redis.Redis.from_url(server.url)
    quota = sdk.Limits(max_concurrency=2)
    try:
        async with limiter.slot("crm", quota):
            assert direct.zcard(f"{prefix}{{/crm}}:leases") == 1
        server.stop()
        seen = InFlight()
        calls = [seen.call(limiter, quota, hold=0.02, name=n) for n in ["crm", "erp"] * 4]
        await asyncio.gather(*calls)
        assert len(seen.stamps) == 8
        assert seen.peak == 4  # two per integration, kept by this runner
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2
        for record in warnings:
            assert record.getMessage().startswith(
                f"Redis at redis://:***@127.0.0.1:{server.port}/0 cannot keep integration limits"
            )
        assert {r.getMessage().split("of integration ")[1][:5] for r in warnings} == {
            "'crm'",
            "'erp'",
        }
        assert server.password not in caplog.text
        server.start_again()
        await asyncio.sleep(0.25)  # past `recheck`: the next slot asks Redis again
        async with limiter.slot("crm", quota):
            assert direct.zcard(f"{prefix}{{/crm}}:leases") == 1
        assert "answers again" in caplog.records[-1].getMessage()
    finally:
        direct.close()
        await limiter.aclose()


async def test_redis_never_reached_still_limits(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="autoflow.limits")
    port = servers.free_port()  # nothing listens there
    limiter = limits.RedisLimiter(f"redis://:pw-9f2c@127.0.0.1:{port}/0", timeout=0.5)
    try:
        quota = sdk.Limits(requests=2, per_seconds=0.2)
        seen = InFlight()
        await asyncio.gather(*(seen.call(limiter, quota) for _ in range(6)))
        assert crowded_windows(seen.stamps, 2, 0.2, TOLERANCE) == []
        assert len(caplog.records) == 1
        assert "pw-9f2c" not in caplog.text
    finally:
        await limiter.aclose()


# -- end to end: `autoflow run` -------------------------------------------------------------------

WORKFLOW = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {{name: cache}}
spec:
  type: redis
  settings: {{host: 127.0.0.1, port: {port}}}
  rateLimit: {{requests: 2, per: 250ms}}
  maxConcurrency: 2
---
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  steps:
    - id: push
      uses: redis.xadd
      integration: cache
      foreach: "${{ range(10) }}"
      concurrency: 2
      with:
        stream: {stream}
        fields: {{run: {name}, item: "${{ item }}"}}
"""


def test_two_autoflow_runs_share_the_integrations_quota(
    redis_server: servers.Redis, tmp_path: Path, autoflow_cli: Cli
) -> None:
    stream = f"calls-{secrets.token_hex(4)}"
    env = {
        "AUTOFLOW_REDIS_URL": redis_server.url,
        "AUTOFLOW_SECRET_CACHE_PASSWORD": redis_server.password,
    }
    files = []
    for name in ["left", "right"]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(WORKFLOW.format(port=redis_server.port, name=name, stream=stream))
        files.append(path)
    direct = redis.Redis.from_url(redis_server.url)
    leases = "autoflow:limits:{/cache}:leases"
    most_leases = 0
    try:
        with futures.ThreadPoolExecutor() as pool:  # both commands at once
            runs = [pool.submit(autoflow_cli, "run", "--quiet", str(f), env=env) for f in files]
            while not all(r.done() for r in runs):
                most_leases = max(most_leases, direct.zcard(leases))
                time.sleep(0.005)
        for r in runs:
            assert r.result().returncode == 0, r.result().stderr
        entries = servers.stream_entries(direct, stream)
    finally:
        direct.close()
    assert len(entries) == 20
    # Entry ids start with Redis's clock in ms at the moment each call reached it.
    times = [int(entry_id.decode().split("-")[0]) / 1000 for entry_id, _ in entries]
    runs_in_order = [fields[b"run"].decode() for _, fields in entries]
    # Two items of each run ask for a slot at a time, so overlapping runs interleave.
    assert set(runs_in_order[:10]) == {"left", "right"}, "the two runs did not overlap"
    # Measured where the action reached Redis, a while after its slot: a busy machine may
    # delay one call towards the next, hence the wide tolerance. Two quotas instead of one
    # would show in the total: 20 calls at 2 per window take 10 windows, not 5.
    assert crowded_windows(times, 2, 0.25, 0.15) == []
    assert max(times) - min(times) >= 9 * 0.25 - 0.1
    assert 1 <= most_leases <= 2
