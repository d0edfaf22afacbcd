"""Webhook gateway benchmark: the gateway alone against a bare Starlette endpoint, one run.

    .venv/bin/python -P benchmarks/gateway.py [--requests 1000] [--rounds 3] [--concurrency 1,32]

Three servers, each a uvicorn process of its own (one worker) on a loopback port, answer the
same JSON POST; the client is this process (httpx, keep-alive):

- ``baseline``: a bare Starlette route that reads the body and answers 202 with a small
  JSON object — the floor of uvicorn + Starlette on this machine;
- ``gateway-none``: ``create_app`` with a route whose auth is ``none``: route lookup, bounded
  body read, JSON parse, an inputs mapping, de-dup key, launch, answer;
- ``gateway-github``: the same route with ``hmac: {preset: github}`` (HMAC-SHA256 over the
  body, constant-time compare) and a delivery id header.

The launcher only counts (no store, no run): this measures the gateway's own cost. The
whole path (store, queue, workers) is ``benchmarks/webhooks.py``. Printed: requests/s and
p50/p95 latency per server and concurrency, and each gateway's ratio to the baseline
measured in the same run. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

SECRET = "bench-secret"
SERVERS = ("baseline", "gateway-none", "gateway-github")
PATHS = {
    "baseline": "/hooks/bench/x",
    "gateway-none": "/hooks/bench/none",
    "gateway-github": "/hooks/bench/github",
}
FLOW = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: orders, namespace: bench}
spec:
  inputs: {orderId: {type: string}, total: {type: number}}
  triggers:
    - webhook:
        path: /none
        auth: {none: true}
        inputs: {orderId: "${ body.order.id }", total: "${ body.order.total }"}
    - webhook:
        path: /github
        auth: {hmac: {preset: github}}
        secretRef: {name: bench}
        inputs: {orderId: "${ body.order.id }", total: "${ body.order.total }"}
  steps:
    - {id: s, uses: core.log, with: {message: x}}
"""


def serve(kind: str, port: int, folder: str) -> None:
    """The server process: one of SERVERS on 127.0.0.1:port."""
    import uvicorn
    from starlette import applications, requests, responses, routing

    from autoflow.runners import pool
    from autoflow.runners.gateway import server, sources

    if kind == "baseline":

        async def accept(request: requests.Request) -> responses.Response:
            body = await request.body()
            json.loads(body)
            return responses.JSONResponse({"runId": "r", "duplicate": False}, 202)

        app: Any = applications.Starlette(
            routes=[routing.Route("/hooks/bench/{path}", accept, methods=["POST"])]
        )
    else:

        class Counting:
            def __init__(self) -> None:
                self.n = 0

            async def launch(self, request: pool.RunRequest) -> pool.Started:
                self.n += 1
                return pool.Started(f"run-{self.n}", False)

            async def wait(self, run_id: str, timeout: float) -> pool.Outcome | None:
                return None

        source = sources.DirectorySource(folder, secrets={"bench": {"secret": SECRET}}, env={})
        app = server.create_app(source, Counting())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def load(url: str, total: int, concurrency: int, signed: bool) -> tuple[float, list[float]]:
    body = json.dumps({"order": {"id": "A-1001", "total": 12.5, "items": list(range(20))}})
    raw = body.encode()
    headers = {"Content-Type": "application/json"}
    if signed:
        digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature-256"] = f"sha256={digest}"
    latencies: list[float] = []
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal next_index
            while next_index < total:
                i = next_index
                next_index += 1
                sent = {**headers, "X-GitHub-Delivery": f"d-{i}"}
                start = time.perf_counter()
                answer = await client.post(url, content=raw, headers=sent)
                latencies.append(time.perf_counter() - start)
                assert answer.status_code == 202, answer.text

        for _ in range(min(50, total)):  # warm-up: connections, caches
            await client.post(url, content=raw, headers={**headers, "X-GitHub-Delivery": "w"})
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.folder)
        return 0
    levels = [int(c) for c in args.concurrency.split(",")]
    samples: dict[tuple[str, int], list[tuple[float, list[float]]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "orders.yaml").write_text(FLOW)
        ports = {kind: free_port() for kind in SERVERS}
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-P",
                    __file__,
                    "--serve",
                    kind,
                    "--port",
                    str(port),
                    "--folder",
                    folder,
                ],
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            for kind, port in ports.items()
        ]
        try:
            for port in ports.values():
                _wait_for(port)
            # Rounds alternate the servers, so a busy moment of a shared machine falls on all.
            for _ in range(args.rounds):
                for level in levels:
                    for kind in SERVERS:
                        url = f"http://127.0.0.1:{ports[kind]}{PATHS[kind]}"
                        signed = kind == "gateway-github"
                        sample = asyncio.run(load(url, args.requests, level, signed))
                        samples.setdefault((kind, level), []).append(sample)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    results: dict[tuple[str, int], tuple[float, float, float]] = {}
    for key, runs in samples.items():
        best_rps = max(rps for rps, _ in runs)  # the least disturbed round
        latencies = [x for _, lat in runs for x in lat]
        results[key] = (best_rps, percentile(latencies, 50), percentile(latencies, 95))
    print(f"{'server':<16}{'conc':>6}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'vs baseline':>13}")
    for (kind, level), (rps, p50, p95) in results.items():
        base = results[("baseline", level)]
        ratio = f"{rps / base[0]:.2f}x rps" if kind != "baseline" else "1.00x"
        print(f"{kind:<16}{level:>6}{rps:>10.0f}{p50:>9.2f}{p95:>9.2f}{ratio:>13}")
    for level in levels:
        base = results[("baseline", level)]
        for kind in SERVERS[1:]:
            rps, p50, _ = results[(kind, level)]
            extra = (1 / rps - 1 / base[0]) * 1000
            print(
                f"{kind} at concurrency {level}: {extra:.3f} ms of server time per request "
                f"over the baseline, p50 {p50 - base[1]:+.2f} ms"
            )
    print(
        f"({args.rounds} rounds of {args.requests} requests per cell, servers alternating; "
        "req/s: the best round, percentiles nearest-rank over all rounds)"
    )
    return 0


def _wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


if __name__ == "__main__":
    sys.exit(main())
