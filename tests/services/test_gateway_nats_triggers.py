"""``autoflow gateway --nats`` hosts the Workflows' ``nats`` event triggers (real JetStream).

The gateway serves a folder of Workflows (the same launch path as in a cluster, where the
Workflows come from the API server's watch) with runs queued on JetStream for an
``autoflow worker``; both are processes of their own, sharing a SQLite run store. A message
on a trigger's subject becomes one run (a redelivery with the same ``Nats-Msg-Id`` starts no
second one), and a Workflow added to the folder while the gateway runs has its trigger
consumed too.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.js.api
import pytest
import servers
import yaml
from test_pool_jetstream import start_worker, until

from autoflow.runners import store
from autoflow.runners.pool import jetstream

REPO = Path(__file__).resolve().parents[2]


def workflow_file(folder: Path, name: str, subject: str) -> None:
    doc: dict[str, Any] = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "runtime": {"mode": "pool"},
            "inputs": {"order": {"type": "string"}},
            "triggers": [{"nats": {"subject": subject, "inputs": {"order": "${ body.id }"}}}],
            "steps": [{"id": "log", "uses": "core.log", "with": {"message": "${ inputs }"}}],
            "outputs": {"order": "${ inputs.order }"},
        },
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(doc))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


async def test_a_nats_message_becomes_one_run_through_the_gateway_and_a_worker(
    nats_server: servers.Nats, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    tag = os.urandom(3).hex()
    settings = jetstream.Settings(
        stream=f"RUNS_{tag}",
        subject=f"t{tag}.runs.start",
        consumer=f"workers-{tag}",
        dead_stream=f"DEAD_{tag}",
        dead_subject=f"t{tag}.runs.dead",
        events_prefix=f"t{tag}.events",
    )
    folder = tmp_path / "flows"
    folder.mkdir()
    workflow_file(folder, "on-order", f"orders{tag}.created")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    st = await store.open_store(url, migrate=True)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(nats.js.api.StreamConfig(name=f"ORDERS{tag}", subjects=[f"orders{tag}.>"]))
    log = tmp_path / "processes.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    env.update(
        AUTOFLOW_POOL_STREAM=settings.stream,
        AUTOFLOW_POOL_SUBJECT=settings.subject,
        AUTOFLOW_POOL_CONSUMER=settings.consumer,
        AUTOFLOW_POOL_DEAD_STREAM=settings.dead_stream,
        AUTOFLOW_POOL_DEAD_SUBJECT=settings.dead_subject,
        AUTOFLOW_POOL_EVENTS=settings.events_prefix,
    )
    command = [sys.executable, "-P", "-m", "autoflow.cli.main", "gateway", "--dir", str(folder)]
    command += ["--nats", nats_server.url, "--store", url, "--host", "127.0.0.1", "--port", "0"]
    processes.append(
        subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
        )
    )
    processes.append(start_worker(nats_server.url, url, settings, log))

    async def runs(name: str) -> list[store.RunSummary]:
        page = await st.list_runs(store.RunFilter(workflow=name, phase="Succeeded"))
        return list(page.runs)

    try:
        headers = {"Nats-Msg-Id": "order-1"}
        await js.publish(
            f"orders{tag}.created", json.dumps({"id": "o-1"}).encode(), headers=headers
        )
        (run,) = await until(lambda: runs("on-order"), timeout=60)
        assert (run.trigger, run.started_by) == ("nats", f"nats:orders{tag}.created")
        detail = await st.get_run(run.run_id)
        assert detail is not None and detail.outputs == {"order": "o-1"}
        # The sender published again after a lost ack: the same run, no second one.
        await js.publish(
            f"orders{tag}.created", json.dumps({"id": "o-1"}).encode(), headers=headers
        )
        await asyncio.sleep(2)
        assert len((await st.list_runs(store.RunFilter(workflow="on-order"))).runs) == 1

        # A Workflow added while the gateway runs: its trigger is consumed as well.
        workflow_file(folder, "on-refund", f"orders{tag}.refunded")
        await js.publish(f"orders{tag}.refunded", json.dumps({"id": "r-9"}).encode())
        (refund,) = await until(lambda: runs("on-refund"), timeout=60)
        detail = await st.get_run(refund.run_id)
        assert detail is not None and detail.outputs == {"order": "r-9"}
    finally:
        await nc.close()
        await st.aclose()
        for p in processes:
            p.terminate()
        if any(p.wait(10) not in (0, -15) for p in processes):
            print(log.read_text())
