"""Webhook → run finished: the runner pool and ``autoflow serve``, 1-step and 10-step workflows.

    .venv/bin/python -P benchmarks/webhooks.py [--runs 2000] [--concurrency 64] [--low 200]
                                               [--workers 2] [--worker-concurrency 64]

Everything runs on this machine, each server in its own process:

- **pool**: the webhook gateway (``runners.gateway``, with the JetStream launcher) + ``--workers``
  ``autoflow worker`` processes + a real NATS JetStream + a real PostgreSQL run store (started
  from the installed binaries as the services tests do);
- **serve**: ``autoflow serve DIR`` (gateway, in-process launcher and SQLite in one process);
- **baseline**: a bare uvicorn/Starlette endpoint answering ``{}`` to the same POSTs: the cost
  of the HTTP round trip itself, measured in the same run; ratios are against it.

Two loads per workflow (``core.noop`` steps, ``auth: none``):

- *low*: ``--low`` requests one after another to the ``sync`` trigger: each answer comes when
  the run's end is recorded, so its latency is webhook → run finished;
- *saturating*: ``--runs`` requests at ``--concurrency`` to the ``async`` trigger (202 at once),
  then the store is polled until every run ended. Throughput is runs / (last end − first send);
  p50/p95 are each run's recorded duration (recorded Pending by the gateway → end recorded).

Targets (issue 12): ≥ 500 runs/s for the 1-step workflow in pool mode with the PostgreSQL
journal; p50 ≤ 5 ms end to end at low load. Figures, not assertions.

Without the gateway in this Autoflow the pool part launches through ``JetStreamLauncher``
directly (no HTTP; said in the output) and the serve part is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from autoflow.runners import store

REPO = Path(__file__).resolve().parents[1]
PYTHON = (sys.executable, "-P")
try:
    HAVE_GATEWAY = importlib.util.find_spec("autoflow.runners.gateway.server") is not None
except ModuleNotFoundError:
    HAVE_GATEWAY = False


def workflow_yaml(name: str, steps: int) -> str:
    items = "\n".join(f"    - {{id: s{i}, uses: core.noop}}" for i in range(steps))
    return (
        "apiVersion: autoflow.dev/v1alpha1\n"
        "kind: Workflow\n"
        f"metadata: {{name: {name}, namespace: bench}}\n"
        "spec:\n"
        "  runtime: {mode: pool}\n"
        "  inputs: {n: {type: integer, default: 0}}\n"
        "  triggers:\n"
        f"    - webhook: {{path: /{name}, auth: {{none: true}}}}\n"
        f"    - webhook: {{path: /{name}-sync, auth: {{none: true}}, "
        "response: {mode: sync, timeout: 30s}}\n"
        "  steps:\n"
        f"{items}\n"
        "  outputs: {n: '${ inputs.n }'}\n"
    )


FLOWS = {"one": 1, "ten": 10}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))]


# -- processes --------------------------------------------------------------------------------


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env={**clean, **(env or {})},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_for_line(
    log: Path, marker: str, proc: subprocess.Popen[bytes], timeout: float = 30
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if marker in line:
                return line
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{marker!r} never appeared:\n{log.read_text()[-3000:]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def role(proc: subprocess.Popen[bytes]) -> str:
    argv = [str(a) for a in proc.args] if isinstance(proc.args, list) else [str(proc.args)]
    for name in ("worker", "serve", "--gateway-server", "--baseline-server"):
        if name in argv:
            return name.strip("-").replace("-server", "")
    return str(proc.pid)


@contextlib.contextmanager
def stopping(*procs: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        used = ", ".join(f"{role(p)} {cpu_seconds(p.pid):.1f}" for p in procs)
        print(f"  CPU seconds used: {used}")
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


# -- hidden modes: the servers this script starts as processes --------------------------------


def serve_baseline(port_file: str) -> None:
    import uvicorn
    from starlette import applications, responses, routing

    async def ok(request: Any) -> Any:
        await request.body()
        return responses.JSONResponse({}, status_code=200)

    app = applications.Starlette(routes=[routing.Route("/{p:path}", ok, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        Path(port_file).write_text(str(server.servers[0].sockets[0].getsockname()[1]))
        await task

    asyncio.run(run())


def serve_gateway(directory: str, store_url: str, nats_url: str, port_file: str) -> None:
    """The pool's front: the gateway app with the JetStream launcher, on uvicorn."""
    import uvicorn

    from autoflow.runners.pool import jetstream, workspace

    gateway_server = importlib.import_module("autoflow.runners.gateway.server")
    gateway_sources = importlib.import_module("autoflow.runners.gateway.sources")

    async def run() -> None:
        st = await store.open_store(store_url)
        ws = workspace.Workspace(directory)
        ws.refresh()
        nc = await jetstream.connect(nats_url, name="bench-gateway")
        launcher = jetstream.JetStreamLauncher(st, ws.workflow, nc, relay_all=False)
        await launcher.start()
        source = gateway_sources.DirectorySource(directory)
        await source.start()
        app = gateway_server.create_app(source, launcher, st)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        Path(port_file).write_text(str(server.servers[0].sockets[0].getsockname()[1]))
        await task

    asyncio.run(run())


def port_of(port_file: Path, proc: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the server did not start:\n{log.read_text()[-3000:]}")


# -- load -------------------------------------------------------------------------------------


async def low_load(base: str, path: str, count: int) -> list[float]:
    """Sequential sync requests: latency of each (ms)."""
    took: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for n in range(5):  # warm up connections and plans
            await client.post(f"{base}{path}", json={"n": n})
        for n in range(count):
            start = time.perf_counter()
            answer = await client.post(f"{base}{path}", json={"n": n})
            took.append((time.perf_counter() - start) * 1000)
            if answer.status_code >= 300 and path != "/":
                raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:200]}")
    return took


async def flood(base: str, path: str, count: int, concurrency: int) -> int:
    """``count`` POSTs at ``concurrency``; returns how many were refused (after 3 tries)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    failed = 0
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)

        async def sender() -> None:
            nonlocal failed
            while not queue.empty():
                n = queue.get_nowait()
                for attempt in range(3):
                    try:
                        answer = await client.post(f"{base}{path}", json={"n": n})
                    except httpx.HTTPError as exc:
                        problem = f"{type(exc).__name__}"
                    else:
                        if answer.status_code < 300:
                            break
                        problem = f"{answer.status_code} {answer.text[:200]}"
                    if attempt == 2:
                        failed += 1
                        print(f"  {path}: request {n} refused: {problem}", file=sys.stderr)

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return failed


async def finished(st: store.Store, workflow: str, since: float, count: int) -> list[Any]:
    """Waits until ``count`` runs of ``workflow`` started since ``since`` ended."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        page = await st.list_runs(
            store.RunFilter(workflow=workflow, since=since, phase="Succeeded"), limit=count + 1
        )
        if len(page.runs) >= count:
            return list(page.runs)
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{workflow}: not all {count} runs ended within 600 s")


async def saturate(
    base: str | None, st: store.Store, name: str, count: int, concurrency: int, launch: Any
) -> tuple[float, float, float]:
    since = time.time()
    if base is not None:
        failed = await flood(base, f"/hooks/bench/{name}", count, concurrency)
    else:
        failed = await launch(name, count, concurrency)
    runs = await finished(st, name, since, count - failed)
    ended = max(r.finished_at or 0 for r in runs)
    began = min(r.started_at for r in runs)
    rate = len(runs) / max(ended - began, 1e-9)
    durations = [r.duration_ms or 0.0 for r in runs]
    if failed:
        print(f"  {name}: {failed} of {count} requests refused")
    return rate, percentile(durations, 0.5), percentile(durations, 0.95)


Row = tuple[str, str, float, float, float, float]


def report(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(
        f"  {'workflow':<10}{'load':<12}{'runs/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p50/base':>10}"
    )
    for wf, load, rate, p50, p95, base in rows:
        rate_text = f"{rate:.0f}" if rate else "-"
        ratio = f"{p50 / base:.1f}x" if base else "-"
        print(f"  {wf:<10}{load:<12}{rate_text:>10}{p50:>10.2f}{p95:>10.2f}{ratio:>10}")


# -- the scenarios ----------------------------------------------------------------------------


async def baseline(workdir: Path, count: int) -> float:
    log, port_file = workdir / "baseline.log", workdir / "baseline.port"
    proc = spawn([*PYTHON, __file__, "--baseline-server", str(port_file)], log)
    with stopping(proc):
        port = port_of(port_file, proc, log)
        took = await low_load(f"http://127.0.0.1:{port}", "/", count)
    p50 = statistics.median(took)
    print(
        f"baseline (bare uvicorn endpoint, sequential POSTs): p50 {p50:.2f} ms, "
        f"p95 {percentile(took, 0.95):.2f} ms"
    )
    return p50


async def pool(args: argparse.Namespace, workdir: Path, base_ms: float) -> None:
    sys.path.insert(0, str(REPO / "tests" / "services"))
    import servers  # the services tier's launcher: same binaries, loopback port

    flows = workdir / "pool-flows"
    flows.mkdir()
    for name, steps in FLOWS.items():
        (flows / f"{name}.yaml").write_text(workflow_yaml(name, steps))
    cluster = servers.PostgresCluster.create()
    nats_server = servers.Nats.start()
    try:
        with cluster.start(max_connections=200) as pg:
            dsn = pg.create_database("bench_webhooks").dsn
            st = await store.open_store(dsn, migrate=True)
            log = workdir / "pool.log"
            workers = [
                spawn(
                    [
                        *PYTHON,
                        "-m",
                        "autoflow.cli.main",
                        "worker",
                        "--store",
                        dsn,
                        "--nats",
                        nats_server.url,
                        "--concurrency",
                        str(args.worker_concurrency),
                        "--name",
                        f"w{i}",
                    ],
                    log,
                )
                for i in range(args.workers)
            ]
            procs = list(workers)
            front = "gateway over HTTP"
            base: str | None = None
            launch = None
            nc = None
            if HAVE_GATEWAY:
                port_file = workdir / "gateway.port"
                gw = spawn(
                    [
                        *PYTHON,
                        __file__,
                        "--gateway-server",
                        str(flows),
                        dsn,
                        nats_server.url,
                        str(port_file),
                    ],
                    log,
                )
                procs.append(gw)
            with stopping(*procs):
                if HAVE_GATEWAY:
                    base = f"http://127.0.0.1:{port_of(port_file, gw, log)}"
                else:
                    from autoflow.runners.pool import RunRequest, jetstream, workspace

                    front = "JetStreamLauncher called directly (no gateway in this Autoflow)"
                    ws = workspace.Workspace(flows)
                    ws.refresh()
                    nc = await jetstream.connect(nats_server.url, name="bench")
                    launcher = jetstream.JetStreamLauncher(st, ws.workflow, nc)
                    await launcher.start()

                    async def launch_many(name: str, count: int, concurrency: int) -> int:
                        sem = asyncio.Semaphore(concurrency)

                        async def one(n: int) -> None:
                            async with sem:
                                await launcher.launch(
                                    RunRequest("bench", name, {"n": n}, "webhook", "bench")
                                )

                        await asyncio.gather(*(one(n) for n in range(count)))
                        return 0

                    launch = launch_many
                for w in workers:
                    wait_for_line(log, "autoflow worker", w)
                rows: list[Row] = []
                for name in FLOWS:
                    if base is not None:
                        took = await low_load(base, f"/hooks/bench/{name}-sync", args.low)
                    else:
                        took = []
                        for n in range(args.low):
                            t0 = time.perf_counter()
                            started = await launcher.launch(
                                RunRequest("bench", name, {"n": n}, "webhook", "bench")
                            )
                            await launcher.wait(started.run_id, 30)
                            took.append((time.perf_counter() - t0) * 1000)
                    rows.append(
                        (name, "low", 0.0, statistics.median(took), percentile(took, 0.95), base_ms)
                    )
                    rate, p50, p95 = await saturate(
                        base, st, name, args.runs, args.concurrency, launch
                    )
                    rows.append((name, "saturating", rate, p50, p95, base_ms))
                report(
                    f"pool: {front}, {args.workers} workers x {args.worker_concurrency}, "
                    "NATS JetStream, PostgreSQL journal",
                    rows,
                )
                if nc is not None:
                    await nc.close()
            await st.aclose()
    finally:
        nats_server.stop()
        cluster.close()


async def serve(args: argparse.Namespace, workdir: Path, base_ms: float) -> None:
    if not HAVE_GATEWAY:
        print("\nserve: skipped (no gateway in this Autoflow to receive webhooks)")
        return
    flows = workdir / "serve-flows"
    flows.mkdir()
    for name, steps in FLOWS.items():
        (flows / f"{name}.yaml").write_text(workflow_yaml(name, steps))
    log = workdir / "serve.log"
    proc = spawn(
        [
            *PYTHON,
            "-m",
            "autoflow.cli.main",
            "serve",
            str(flows),
            "--port",
            "0",
            "--no-ui",
            "--concurrency",
            str(args.worker_concurrency),
        ],
        log,
    )
    with stopping(proc):
        line = wait_for_line(log, "autoflow serve: http", proc)
        base = line.split()[2]
        st = await store.open_store(f"sqlite:///{flows}/.autoflow/runs.db")
        rows: list[Row] = []
        for name in FLOWS:
            took = await low_load(base, f"/hooks/bench/{name}-sync", args.low)
            rows.append(
                (name, "low", 0.0, statistics.median(took), percentile(took, 0.95), base_ms)
            )
            rate, p50, p95 = await saturate(base, st, name, args.runs, args.concurrency, None)
            rows.append((name, "saturating", rate, p50, p95, base_ms))
        await st.aclose()
    report("serve: autoflow serve (gateway + in-process launcher + SQLite, one process)", rows)


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        base_ms = await baseline(workdir, args.low)
        if not args.skip_pool:
            await pool(args, workdir, base_ms)
        if not args.skip_serve:
            await serve(args, workdir, base_ms)
    print(
        "\ntargets: >= 500 runs/s (pool, one step, saturating); p50 <= 5 ms end to end at low load"
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--baseline-server":
        serve_baseline(sys.argv[2])
        return
    if len(sys.argv) > 5 and sys.argv[1] == "--gateway-server":
        serve_gateway(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs per saturating load")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--low", type=int, default=200, help="sequential requests at low load")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=64)
    parser.add_argument("--skip-pool", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
