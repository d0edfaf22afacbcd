"""Limits benchmark: what an Integration's rateLimit and maxConcurrency cost per action call.

    .venv/bin/python -P benchmarks/limits.py [--calls 2000] [--repeat 5]

Runs a ``foreach`` of ``core.noop`` calls through the engine, one item at a time and 20 at
once, with the step's Integration carrying no limits (the baseline, measured in the same run),
then limits kept in this process (``LocalLimiter``), then limits kept in Redis
(``RedisLimiter``, against a redis-server started from the installed binary on a free
loopback port). The limits are set so high that no call ever waits: what is measured is the
bookkeeping alone. Prints milliseconds per call (median of the repeats) and the ratio to the
baseline. Figures, not assertions: tests never time anything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import redis

from autoflow.crds import integration, workflow
from autoflow.runners import engine
from autoflow.runners.access import limits
from autoflow.runners.definitions import plan
from autoflow.runners.engine import journal
from autoflow.runners.local import run as local

NO_WAIT = {"rateLimit": {"requests": 1_000_000, "per": "1s"}, "maxConcurrency": 10_000}


def _plan(calls: int, concurrency: int) -> plan.Plan:
    step = {
        "id": "call",
        "uses": "core.noop",
        "integration": "bench",
        "foreach": f"${{ range({calls}) }}",
        "concurrency": concurrency,
    }
    wf = workflow.Workflow.model_validate(
        {"kind": "Workflow", "metadata": {"name": "bench"}, "spec": {"steps": [step]}}
    )
    return plan.compile_workflow(wf)


def _integrations(spec: dict[str, Any]) -> local.LocalIntegrations:
    intg = integration.Integration.model_validate(
        {"metadata": {"name": "bench"}, "spec": {"type": "core", **spec}}
    )
    return local.LocalIntegrations([intg], env={})


async def _once(compiled: plan.Plan, provider: Any, limiter: limits.Limiter) -> float:
    run = engine.Run(
        compiled,
        run_id="bench",
        inputs={},
        journal=journal.MemoryJournal(),
        integrations=provider,
        limiter=limiter,
    )
    start = time.perf_counter()
    result = await run.execute()
    elapsed = time.perf_counter() - start
    assert result.succeeded, result.error
    return elapsed


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its URL (with a password)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        raise SystemExit("redis-server is not installed; hack/services.sh installs it")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    password = secrets.token_hex(12)
    workdir = tempfile.mkdtemp(prefix="autoflow-bench-redis-")
    argv = [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--requirepass", password,
        "--save", "", "--appendonly", "no", "--dir", workdir, "--loglevel", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(500):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.01)
        else:
            raise SystemExit("redis-server did not start")
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


async def bench(calls: int, repeat: int, url: str) -> None:
    print(f"action calls with limits (ms per call, median of {repeat} runs of {calls} calls)")
    print(f"  {'foreach':<16}{'limits':<14}{'ms/call':>10}{'ratio':>8}")
    plain = _integrations({})
    limited = _integrations(NO_WAIT)
    for concurrency in (1, 20):
        compiled = _plan(calls, concurrency)
        cases: list[tuple[str, Any, limits.Limiter]] = [
            ("none", plain, limits.LocalLimiter()),
            ("in process", limited, limits.LocalLimiter()),
            # A prefix per case: the rate log of one case does not slow the next one.
            ("Redis", limited, limits.RedisLimiter(url, prefix=f"bench{concurrency}:")),
        ]
        baseline = 0.0
        for label, provider, limiter in cases:
            await _once(compiled, provider, limiter)  # warm up (Redis: connect, load scripts)
            samples = [await _once(compiled, provider, limiter) for _ in range(repeat)]
            await limiter.aclose()
            per_call = statistics.median(samples) * 1000 / calls
            baseline = baseline or per_call
            shape = f"{concurrency} at once" if concurrency > 1 else "one at a time"
            print(f"  {shape:<16}{label:<14}{per_call:>10.4f}{per_call / baseline:>7.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with redis_server() as url:
        asyncio.run(bench(args.calls, args.repeat, url))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
