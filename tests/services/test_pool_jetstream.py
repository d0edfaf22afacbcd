"""The runner pool against real NATS JetStream and a real PostgreSQL run store.

Runs are recorded by ``JetStreamLauncher`` and queued on a work-queue stream; workers (in
this process, or ``autoflow worker`` subprocesses) execute them with the store as journal.
Side effects are counted at a loopback HTTP server: a worker SIGKILLed mid-run has its run
resumed by another worker after the ack wait, with no finished step repeated; after the
maximum deliveries the run ends Failed with the reason and its message is dead-lettered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpserver
import nats
import pytest
import servers

from autoflow.crds import workflow
from autoflow.runners import store
from autoflow.runners.pool import RunRequest, jetstream

REPO = Path(__file__).resolve().parents[2]


def make(name: str, spec: dict[str, Any]) -> workflow.Workflow:
    return workflow.Workflow.model_validate(
        {"kind": "Workflow", "metadata": {"name": name, "namespace": "shop"}, "spec": spec}
    )


def three_steps(server: httpserver.Server) -> dict[str, Any]:
    """a (POST /a) → b (waits 4 s) → c (POST /c): a kill during b shows what is repeated."""
    return {
        "inputs": {"order": {"type": "string"}},
        "steps": [
            {
                "id": "a",
                "uses": "http.request",
                "with": {
                    "method": "POST",
                    "url": server.url("/a"),
                    "json": {"o": "${ inputs.order }"},
                },
            },
            {"id": "b", "uses": "core.delay", "with": {"duration": "4s"}},
            {
                "id": "c",
                "uses": "http.request",
                "with": {"method": "POST", "url": server.url("/c")},
            },
        ],
        "outputs": {"status": "${ steps.c.output.status }"},
    }


@pytest.fixture
async def pg_store(postgres_db: servers.Postgres) -> AsyncIterator[store.Store]:
    st = await store.open_store(postgres_db.dsn, migrate=True)
    yield st
    await st.aclose()


@pytest.fixture
def settings() -> jetstream.Settings:
    # A stream of its own per test: the session's NATS server is shared.
    tag = os.urandom(4).hex()
    return jetstream.Settings(
        stream=f"RUNS_{tag}",
        subject=f"t{tag}.runs.start",
        consumer=f"workers-{tag}",
        dead_stream=f"DEAD_{tag}",
        dead_subject=f"t{tag}.runs.dead",
        events_prefix=f"t{tag}.events",
        ack_wait=2.0,
        max_deliveries=3,
    )


async def test_runs_queued_by_the_launcher_are_executed_by_two_workers_once_each(
    pg_store: store.Store,
    nats_server: servers.Nats,
    settings: jetstream.Settings,
    server: httpserver.Server,
) -> None:
    server.route("/hit", httpserver.Reply.with_json({"ok": True}))
    spec = {
        "inputs": {"n": {"type": "integer"}},
        "steps": [
            {
                "id": "hit",
                "uses": "http.request",
                "with": {
                    "method": "POST",
                    "url": server.url("/hit"),
                    "json": {"n": "${ inputs.n }"},
                },
            }
        ],
        "outputs": {"n": "${ inputs.n }"},
    }
    wf = make("orders", spec)
    nc = await nats.connect(nats_server.url)
    launcher = jetstream.JetStreamLauncher(
        pg_store,
        lambda ns, name: wf if (ns, name) == ("shop", "orders") else None,
        nc,
        settings=settings,
    )
    await launcher.start()
    workers = [
        jetstream.Worker(
            pg_store, nc, lambda ns: None, settings=settings, concurrency=8, name=f"w{i}"
        )
        for i in range(2)
    ]
    running = [asyncio.create_task(w.run()) for w in workers]
    try:
        requests = [
            RunRequest("shop", "orders", {"n": n}, "webhook", "test", dedupe_key=f"k:{n % 100}")
            for n in range(150)  # 50 are redeliveries of the first 100
        ]
        sem = asyncio.Semaphore(20)

        async def one(r: RunRequest) -> Any:
            async with sem:
                return await launcher.launch(r)

        started = await asyncio.gather(*(one(r) for r in requests))
        firsts = {s.run_id for s in started if not s.duplicate}
        assert len(firsts) == 100 and sum(s.duplicate for s in started) == 50
        outcomes = await asyncio.gather(*(launcher.wait(r, 30) for r in firsts))
        detail = [await pg_store.get_run(r) for r in list(firsts)[:1]]
        assert all(o is not None and o.phase == "Succeeded" for o in outcomes), detail
        # A sync webhook's answer: the outputs of the run.
        assert sorted(o.outputs["n"] for o in outcomes if o) == list(range(100))
        assert server.calls("/hit") == 100  # every run once, none duplicated, none lost
        page = await pg_store.list_runs(store.RunFilter(workflow="orders"), limit=500)
        assert len(page.runs) == 100 and {r.phase for r in page.runs} == {"Succeeded"}
        assert sum(w.handled for w in workers) == 100
        assert all(w.handled > 0 for w in workers)  # both took work
        # A redelivery of a run that ended answers with it and queues nothing again.
        again = await launcher.launch(requests[0])
        assert again.duplicate and again.run_id in firsts
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*running)
        await launcher.aclose()
        await nc.close()


def start_worker(
    nats_url: str, store_url: str, settings: jetstream.Settings, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """``autoflow worker`` as a process (so it can be SIGKILLed), on the test's stream."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    env.update(
        AUTOFLOW_POOL_STREAM=settings.stream,
        AUTOFLOW_POOL_SUBJECT=settings.subject,
        AUTOFLOW_POOL_CONSUMER=settings.consumer,
        AUTOFLOW_POOL_DEAD_STREAM=settings.dead_stream,
        AUTOFLOW_POOL_DEAD_SUBJECT=settings.dead_subject,
        AUTOFLOW_POOL_EVENTS=settings.events_prefix,
        AUTOFLOW_DEBUG="1",
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-P",
            "-m",
            "autoflow.cli.main",
            "worker",
            "--nats",
            nats_url,
            "--store",
            store_url,
            "--ack-wait",
            f"{settings.ack_wait:g}s",
            "--max-deliveries",
            str(settings.max_deliveries),
            *extra,
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


async def until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_worker_killed_mid_run_is_resumed_by_another_without_repeating_a_step(
    pg_store: store.Store,
    postgres_db: servers.Postgres,
    nats_server: servers.Nats,
    settings: jetstream.Settings,
    server: httpserver.Server,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    server.route("/a", httpserver.Reply.with_json({"ok": "a"}))
    server.route("/c", httpserver.Reply.with_json({"ok": "c"}))
    wf = make("ship", three_steps(server))
    nc = await nats.connect(nats_server.url)
    launcher = jetstream.JetStreamLauncher(pg_store, lambda ns, name: wf, nc, settings=settings)
    await launcher.start()
    log = tmp_path / "workers.log"
    try:
        first = start_worker(nats_server.url, postgres_db.dsn, settings, log)
        processes.append(first)
        started = await launcher.launch(
            RunRequest("shop", "ship", {"order": "o-1"}, "webhook", "test", dedupe_key="d1")
        )

        async def in_b() -> bool:
            run = await pg_store.get_run(started.run_id)
            return run is not None and any(
                s.step == "b" and s.phase == "Running" for s in run.steps
            )

        await until(in_b)
        assert server.calls("/a") == 1
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start_worker(nats_server.url, postgres_db.dsn, settings, log)
        processes.append(second)
        outcome = await launcher.wait(started.run_id, 40)
        assert outcome is not None, log.read_text()
        assert (outcome.phase, dict(outcome.outputs)) == ("Succeeded", {"status": 200})
        # a finished before the kill: not called again. c once. b (in flight) ran again.
        assert server.calls("/a") == 1 and server.calls("/c") == 1
        run = await pg_store.get_run(started.run_id)
        assert run is not None
        assert [(s.step, s.phase) for s in run.steps] == [
            ("a", "Succeeded"),
            ("b", "Succeeded"),
            ("c", "Succeeded"),
        ]
    finally:
        await launcher.aclose()
        await nc.close()


async def test_after_the_maximum_deliveries_the_run_fails_and_goes_to_the_dead_letters(
    pg_store: store.Store,
    postgres_db: servers.Postgres,
    nats_server: servers.Nats,
    settings: jetstream.Settings,
    server: httpserver.Server,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    server.route("/a", httpserver.Reply.with_json({"ok": "a"}))
    server.route("/c", httpserver.Reply.with_json({"ok": "c"}))
    wf = make("ship", three_steps(server))
    nc = await nats.connect(nats_server.url)
    launcher = jetstream.JetStreamLauncher(pg_store, lambda ns, name: wf, nc, settings=settings)
    await launcher.start()
    log = tmp_path / "workers.log"
    try:
        started = await launcher.launch(
            RunRequest("shop", "ship", {"order": "o-2"}, "webhook", "test")
        )
        seen = 0.0  # when b last started: each worker starts it again (same attempt)
        for _ in range(settings.max_deliveries):
            worker = start_worker(nats_server.url, postgres_db.dsn, settings, log)
            processes.append(worker)

            async def b_again(after: float = seen) -> float:
                run = await pg_store.get_run(started.run_id)
                for s in run.steps if run else ():
                    at = s.tries[-1].started_at if s.tries else None
                    if s.step == "b" and s.phase == "Running" and at and at > after:
                        return at
                return 0.0

            seen = await until(b_again)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        last = start_worker(nats_server.url, postgres_db.dsn, settings, log)
        processes.append(last)
        outcome = await launcher.wait(started.run_id, 30)
        assert outcome is not None, log.read_text()
        assert outcome.phase == "Failed", log.read_text()
        assert outcome.error is not None and "gave up after 3 deliveries" in outcome.error
        assert server.calls("/a") == 1 and server.calls("/c") == 0
        js = nc.jetstream()
        sub = await js.pull_subscribe(settings.dead_subject, stream=settings.dead_stream)
        (dead,) = await sub.fetch(1, timeout=5)
        body = json.loads(dead.data)
        assert body["runId"] == started.run_id and body["deliveries"] == 3
    finally:
        await launcher.aclose()
        await nc.close()


def test_runs_start_queues_a_pool_run_that_a_worker_runs(
    postgres_db: servers.Postgres,
    nats_server: servers.Nats,
    settings: jetstream.Settings,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    autoflow_cli: Any,
) -> None:
    manifest = tmp_path / "hello.yaml"
    manifest.write_text(
        "apiVersion: autoflow.dev/v1alpha1\n"
        "kind: Workflow\n"
        "metadata: {name: hello}\n"
        "spec:\n"
        "  runtime: {mode: pool}\n"
        "  inputs: {n: {type: integer}}\n"
        "  steps:\n"
        "    - {id: twice, uses: core.set, with: {values: {value: '${ inputs.n * 2 }'}}}\n"
        "  outputs: {twice: '${ steps.twice.output.value }'}\n"
    )
    job_mode = tmp_path / "job.yaml"
    job_mode.write_text(manifest.read_text().replace("mode: pool", "mode: job"))
    migrated = autoflow_cli("store", "migrate", "--store", postgres_db.dsn)
    assert migrated.returncode == 0, migrated.stderr
    processes.append(
        start_worker(nats_server.url, postgres_db.dsn, settings, tmp_path / "worker.log")
    )
    env = {
        "AUTOFLOW_POOL_STREAM": settings.stream,
        "AUTOFLOW_POOL_SUBJECT": settings.subject,
        "AUTOFLOW_POOL_CONSUMER": settings.consumer,
        "AUTOFLOW_POOL_DEAD_STREAM": settings.dead_stream,
        "AUTOFLOW_POOL_DEAD_SUBJECT": settings.dead_subject,
        "AUTOFLOW_POOL_EVENTS": settings.events_prefix,
        "AUTOFLOW_NATS_URL": nats_url_of(nats_server),
        "AUTOFLOW_STORE_URL": postgres_db.dsn,
    }
    done = autoflow_cli(
        "runs",
        "start",
        "shop/hello",
        "-f",
        str(manifest),
        "-i",
        "n=21",
        "--wait",
        "30s",
        "-o",
        "json",
        env=env,
    )
    assert done.returncode == 0, done.stderr + (tmp_path / "worker.log").read_text()
    body = json.loads(done.stdout)
    assert (body["phase"], body["outputs"]) == ("Succeeded", {"twice": 42})
    shown = autoflow_cli("runs", "show", body["runId"], env=env)
    assert "hello: Succeeded" in shown.stdout and "by manual" in shown.stdout
    refused = autoflow_cli("runs", "start", "shop/hello", "-f", str(job_mode), "-i", "n=1", env=env)
    assert refused.returncode != 0 and "runtime.mode job" in refused.stderr
    bad = autoflow_cli("runs", "start", "shop/hello", "-f", str(manifest), "-i", "n=x", env=env)
    assert bad.returncode != 0 and "n" in bad.stderr and "Workflow/hello" in bad.stderr


def nats_url_of(server: servers.Nats) -> str:
    return server.url


async def test_a_worker_stopped_with_sigterm_hands_its_run_to_another_at_once(
    pg_store: store.Store,
    postgres_db: servers.Postgres,
    nats_server: servers.Nats,
    settings: jetstream.Settings,
    server: httpserver.Server,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    # An ack wait far beyond the test's patience: only the stopped worker's nak can bring
    # the run to the second worker in time.
    patient = dataclasses.replace(settings, ack_wait=120.0)
    server.route("/a", httpserver.Reply.with_json({"ok": "a"}))
    server.route("/c", httpserver.Reply.with_json({"ok": "c"}))
    wf = make("ship", three_steps(server))
    nc = await nats.connect(nats_server.url)
    launcher = jetstream.JetStreamLauncher(pg_store, lambda ns, name: wf, nc, settings=patient)
    await launcher.start()
    log = tmp_path / "workers.log"
    try:
        first = start_worker(nats_server.url, postgres_db.dsn, patient, log, "--grace", "0s")
        processes.append(first)
        started = await launcher.launch(
            RunRequest("shop", "ship", {"order": "o-3"}, "webhook", "test")
        )

        async def in_b() -> bool:
            run = await pg_store.get_run(started.run_id)
            return run is not None and any(
                s.step == "b" and s.phase == "Running" for s in run.steps
            )

        await until(in_b)
        first.send_signal(signal.SIGTERM)
        assert first.wait(20) == 0, log.read_text()
        processes.append(start_worker(nats_server.url, postgres_db.dsn, patient, log))
        outcome = await launcher.wait(started.run_id, 30)
        assert outcome is not None and outcome.phase == "Succeeded", log.read_text()
        assert server.calls("/a") == 1 and server.calls("/c") == 1
    finally:
        await launcher.aclose()
        await nc.close()
