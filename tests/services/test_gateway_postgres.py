"""Two webhook gateway replicas over real HTTP on loopback, one real PostgreSQL run store.

Each replica is ``create_app`` on its own uvicorn port with its own in-process launcher; they
share nothing but the store. 1,000 signed webhooks sent 50 at a time, spread over both
replicas, leave exactly 1,000 runs, all finished; every delivery sent to both replicas at
once (as a load balancer's retry does) still makes one run, both answering with its id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import servers
import uvicorn
import yaml

from autoflow.crds import workflow
from autoflow.runners import store
from autoflow.runners.gateway import server, sources
from autoflow.runners.pool import inprocess

SECRET = "pg-gateway-secret"
FLOW: dict[str, Any] = {
    "apiVersion": "autoflow.dev/v1alpha1",
    "kind": "Workflow",
    "metadata": {"name": "orders", "namespace": "shop"},
    "spec": {
        "inputs": {"orderId": {"type": "string", "required": True}},
        "triggers": [
            {
                "webhook": {
                    "auth": {"hmac": {"preset": "github"}},
                    "secretRef": {"name": "gh"},
                    "inputs": {"orderId": "${ body.id }"},
                }
            }
        ],
        "steps": [{"id": "note", "uses": "core.log", "with": {"message": "order"}}],
        "outputs": {"order": "${ inputs.orderId }"},
    },
}


class Replica:
    def __init__(self, base: str, launcher: inprocess.InProcessLauncher) -> None:
        self.base = base
        self.launcher = launcher


@pytest.fixture
async def replicas(
    tmp_path: Path, postgres_db: servers.Postgres
) -> AsyncIterator[tuple[store.Store, list[Replica]]]:
    (tmp_path / "orders.yaml").write_text(yaml.safe_dump(FLOW))
    stores: list[store.Store] = []
    running: list[tuple[uvicorn.Server, asyncio.Task[None], socket.socket]] = []
    out: list[Replica] = []
    for _ in range(2):
        st = await store.open_store(postgres_db.dsn, migrate=True)
        stores.append(st)
        source = sources.DirectorySource(tmp_path, secrets={"gh": {"secret": SECRET}}, env={})
        table = source.table

        def find(namespace: str, name: str, table: Any = table) -> workflow.Workflow | None:
            found: workflow.Workflow | None = table.workflow(namespace, name)
            return found

        launcher = inprocess.InProcessLauncher(st, find, lambda ns: None, concurrency=32)
        await launcher.start()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        uv = uvicorn.Server(
            uvicorn.Config(server.create_app(source, launcher, st), log_level="warning")
        )
        task = asyncio.create_task(uv.serve(sockets=[sock]))
        while not uv.started:
            await asyncio.sleep(0.01)
        running.append((uv, task, sock))
        host, port = sock.getsockname()
        out.append(Replica(f"http://{host}:{port}", launcher))
    try:
        yield stores[0], out
    finally:
        for uv, task, sock in running:
            uv.should_exit = True
            await task
            sock.close()
        for replica in out:
            await replica.launcher.aclose()
        for st in stores:
            await st.aclose()


def signed(order: str, delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": order}).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }


async def test_a_thousand_webhooks_over_two_replicas_make_a_thousand_runs(
    replicas: tuple[store.Store, list[Replica]],
) -> None:
    st, (one, two) = replicas
    slots = asyncio.Semaphore(50)
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def send(i: int) -> str:
            body, headers = signed(f"N-{i}", f"d-{i}")
            replica = (one, two)[i % 2]
            async with slots:
                answer = await http.post(
                    f"{replica.base}/hooks/shop/orders", content=body, headers=headers
                )
            assert answer.status_code == 202, answer.text
            run_id: str = answer.json()["runId"]
            return run_id

        run_ids = await asyncio.gather(*(send(i) for i in range(1000)))

        # The same delivery to both replicas at once: one run, both answer with it.
        async def both(i: int) -> set[str]:
            body, headers = signed(f"D-{i}", f"dup-{i}")
            answers = await asyncio.gather(
                *(
                    http.post(f"{r.base}/hooks/shop/orders", content=body, headers=headers)
                    for r in (one, two)
                )
            )
            assert [a.status_code for a in answers] == [202, 202]
            assert sorted(a.json()["duplicate"] for a in answers) == [False, True]
            return {a.json()["runId"] for a in answers}

        duplicated = await asyncio.gather(*(both(i) for i in range(20)))

    assert len(set(run_ids)) == 1000
    assert all(len(ids) == 1 for ids in duplicated)
    expected = set(run_ids) | {ids.pop() for ids in duplicated}
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        page = await st.list_runs(store.RunFilter(), limit=5000)
        phases = {r.run_id: r.phase for r in page.runs}
        if set(phases.values()) == {"Succeeded"} or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert set(phases) == expected  # none lost, none duplicated
    assert set(phases.values()) == {"Succeeded"}
