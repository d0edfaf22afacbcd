"""The webhook gateway over real HTTP on loopback: uvicorn serving ``create_app`` on a free
port, httpx sending, the in-process launcher running the runs into a real SQLite store.

Each bad request gets its own status and a short reason; a redelivered webhook answers with
the first delivery's run and starts no second one; a ``sync`` webhook answers with the run's
outputs; 1,000 webhooks sent 50 at a time leave exactly 1,000 runs; nothing of a body, a
signature or a secret reaches the log.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from standardwebhooks import webhooks

from autoflow.crds import workflow
from autoflow.runners import pool, store
from autoflow.runners.gateway import server, sources
from autoflow.runners.pool import inprocess

GITHUB_SECRET = "gh-webhook-secret"
TOKEN = "t0k3n-for-bearer"
WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()


def _workflow(name: str, triggers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "inputs": {"orderId": {"type": "string", "required": True}},
            "triggers": triggers,
            "steps": [{"id": "note", "uses": "core.log", "with": {"message": "order"}}],
            "outputs": {"order": "${ inputs.orderId }", "size": "${ len(inputs.orderId) }"},
            **spec,
        },
    }


WORKFLOWS = [
    _workflow(
        "github-orders",
        [
            {
                "webhook": {
                    "path": "/github",
                    "auth": {"hmac": {"preset": "github"}},
                    "secretRef": {"name": "gh", "key": "secret"},
                    "inputs": {"orderId": "${ body.order.id }"},
                    "maxBodyBytes": 2048,
                }
            }
        ],
    ),
    _workflow(
        "standard",
        [
            {
                "webhook": {
                    "auth": {"standardWebhooks": {"tolerance": "1m"}},
                    "secretRef": {"name": "sw"},
                    "inputs": {"orderId": "${ body.id }"},
                }
            }
        ],
    ),
    _workflow(
        "quote",
        [
            {
                "webhook": {
                    "path": "/quote",
                    "methods": ["POST", "PUT"],
                    "auth": {"bearer": {}},
                    "secretRef": {"name": "api", "key": "token"},
                    "inputs": {"orderId": "${ query.order }-${ headers['x-shop'] }"},
                    "response": {
                        "mode": "sync",
                        "timeout": "20s",
                        "output": "order",
                        "statusCode": 201,
                    },
                }
            }
        ],
    ),
    _workflow(
        "open",
        [{"webhook": {"path": "/open", "auth": {"none": True}}}],
    ),
]


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Served:
    def __init__(self, base: str, st: store.Store, launcher: inprocess.InProcessLauncher) -> None:
        self.base = base
        self.store = st
        self.launcher = launcher
        self.http = httpx.AsyncClient(base_url=base, timeout=30)

    async def runs(self) -> list[store.RunSummary]:
        page = await self.store.list_runs(store.RunFilter(), limit=5000)
        return list(page.runs)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    folder = tmp_path / "flows"
    folder.mkdir()
    for doc in WORKFLOWS:
        (folder / f"{doc['metadata']['name']}.yaml").write_text(yaml.safe_dump(doc))
    secrets = {"gh": {"secret": GITHUB_SECRET}, "sw": {"secret": WHSEC}, "api": {"token": TOKEN}}
    source = sources.DirectorySource(folder, secrets=secrets, env={})
    flows = {(r.namespace, r.name): r.workflow for r in source.table.routes()}

    def find(namespace: str, name: str) -> workflow.Workflow | None:
        return flows.get((namespace, name))

    st = await store.open_store(f"sqlite:///{tmp_path}/runs.db")
    launcher = inprocess.InProcessLauncher(st, find, lambda ns: None, concurrency=64)
    await launcher.start()
    app = server.create_app(source, launcher, st)
    sock = _free_socket()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:
        await asyncio.sleep(0.01)
    host, port = sock.getsockname()
    out = Served(f"http://{host}:{port}", st, launcher)
    try:
        yield out
    finally:
        await out.http.aclose()
        uv.should_exit = True
        await task
        await launcher.aclose()
        await st.aclose()
        sock.close()


def github_headers(
    body: bytes, delivery: str = "d-1", secret: str = GITHUB_SECRET
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }


def standard_headers(body: bytes, msg_id: str, at: float | None = None) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    signature = webhooks.Webhook(WHSEC).sign(
        msg_id, datetime.datetime.fromtimestamp(stamp, datetime.UTC), body
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def test_a_signed_webhook_starts_a_run_with_mapped_inputs(served: Served) -> None:
    body = json.dumps({"order": {"id": "A-1"}}).encode()
    answer = await served.http.post(
        "/hooks/shop/github", content=body, headers=github_headers(body)
    )
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["duplicate"] is False
    assert accepted["status"] == f"{served.base}/hooks/-/runs/shop/{accepted['runId']}"
    assert answer.headers["location"] == accepted["status"]
    outcome = await served.launcher.wait(accepted["runId"], 20)
    assert outcome is not None and outcome.phase == "Succeeded"
    assert dict(outcome.outputs) == {"order": "A-1", "size": 3}
    run = await served.store.get_run(accepted["runId"])
    assert run is not None
    assert (run.summary.trigger, run.summary.started_by) == (
        "webhook",
        "webhook:/hooks/shop/github",
    )
    status = await served.http.get(accepted["status"])
    assert status.json()["phase"] == "Succeeded"


async def test_each_bad_request_gets_its_status_and_a_short_reason(served: Served) -> None:
    body = json.dumps({"order": {"id": "A-1"}}).encode()
    good = github_headers(body)

    async def post(path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        return await served.http.post(path, content=content, headers=headers)

    cases: list[tuple[httpx.Response, int, str]] = [
        (await post("/hooks/shop/nowhere", body, good), 404, "no webhook at this path"),
        (await post("/hooks/other/github", body, good), 404, "no webhook at this path"),
        (await served.http.get("/hooks/shop/github"), 405, "method not allowed"),
        (
            await post("/hooks/shop/github", body, {"Content-Type": "application/json"}),
            401,
            "missing signature (x-hub-signature-256)",
        ),
        (await post("/hooks/shop/github", body + b" ", good), 401, "bad signature"),
        (
            await post("/hooks/shop/github", body, github_headers(body, secret="guess")),
            401,
            "bad signature",
        ),
        (await post("/hooks/shop/github", b"x" * 4096, good), 413, "body larger than 2048 bytes"),
        (
            await post("/hooks/shop/github", b"{not json", github_headers(b"{not json")),
            400,
            "body is not valid JSON",
        ),
        # Signed and JSON, but without what the inputs mapping reads.
        (
            await post("/hooks/shop/github", b"{}", github_headers(b"{}")),
            400,
            "cannot map the request to inputs",
        ),
        (
            await post("/hooks/shop/quote", b"", {"Authorization": "Bearer wrong"}),
            401,
            "bad credentials",
        ),
        (await post("/hooks/shop/quote", b"", {}), 401, "missing credentials (authorization)"),
    ]
    for answer, status, reason in cases:
        assert answer.status_code == status, (answer.request.url, answer.text)
        assert reason in answer.json()["error"], answer.text
    assert cases[2][0].headers["allow"] == "POST"
    assert await served.runs() == []  # none of them started anything


async def test_a_body_sent_in_chunks_is_cut_off_at_the_limit(served: Served) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 1024
            yield b"x" * 1024

    body = b"x" * 65536
    answer = await served.http.post(
        "/hooks/shop/github", content=chunks(), headers=github_headers(body)
    )
    assert answer.status_code == 413
    assert answer.json() == {"error": "body larger than 2048 bytes"}


async def test_a_timestamp_outside_the_replay_window_is_refused(served: Served) -> None:
    body = json.dumps({"id": "B-7"}).encode()
    stale = standard_headers(body, "msg_1", at=time.time() - 120)  # tolerance: 1m
    answer = await served.http.post("/hooks/shop/standard", content=body, headers=stale)
    assert (answer.status_code, answer.json()) == (
        401,
        {"error": "timestamp outside the replay window"},
    )
    fresh = standard_headers(body, "msg_1")
    answer = await served.http.post("/hooks/shop/standard", content=body, headers=fresh)
    assert answer.status_code == 202, answer.text


async def test_a_redelivery_answers_with_the_first_run_and_starts_no_second(
    served: Served,
) -> None:
    body = json.dumps({"id": "C-3"}).encode()
    first = await served.http.post(
        "/hooks/shop/standard", content=body, headers=standard_headers(body, "msg_42")
    )
    # The sender retries (a timeout on its side): same webhook-id, new timestamp and signature.
    again = await asyncio.gather(
        *(
            served.http.post(
                "/hooks/shop/standard", content=body, headers=standard_headers(body, "msg_42")
            )
            for _ in range(5)
        )
    )
    run_id = first.json()["runId"]
    assert all(a.status_code == 202 and a.json()["runId"] == run_id for a in again)
    assert all(a.json()["duplicate"] for a in again)
    other = await served.http.post(
        "/hooks/shop/standard", content=body, headers=standard_headers(body, "msg_43")
    )
    assert other.json()["runId"] != run_id
    await served.launcher.wait(run_id, 20)
    assert sorted(r.run_id for r in await served.runs()) == sorted([run_id, other.json()["runId"]])


async def test_a_sync_webhook_answers_with_the_chosen_output(served: Served) -> None:
    answer = await served.http.put(
        "/hooks/shop/quote?order=Q-9",
        headers={"Authorization": f"Bearer {TOKEN}", "X-Shop": "north"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json() == "Q-9-north"
    run_id = answer.headers["x-autoflow-run-id"]
    run = await served.store.get_run(run_id)
    assert run is not None and run.summary.phase == "Succeeded"


async def test_unauthenticated_route_and_idempotency_key(served: Served) -> None:
    headers = {"Idempotency-Key": "order-5", "Content-Type": "application/json"}
    body = json.dumps({"orderId": "O-5", "ignored": True})
    first = await served.http.post("/hooks/shop/open", content=body, headers=headers)
    second = await served.http.post("/hooks/shop/open", content=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert second.json() == {**first.json(), "duplicate": True}
    outcome = await served.launcher.wait(first.json()["runId"], 20)
    assert outcome is not None and dict(outcome.outputs)["order"] == "O-5"


async def test_nothing_of_a_body_signature_or_secret_is_logged(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = json.dumps({"order": {"id": "SECRET-ORDER-BODY"}}).encode()
    headers = github_headers(body)
    await served.http.post("/hooks/shop/github", content=body, headers=headers)
    bad = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    await served.http.post("/hooks/shop/github", content=body, headers=bad)
    text = caplog.text
    assert "/hooks/shop/github" in text  # it does log the requests
    for secret in ("SECRET-ORDER-BODY", GITHUB_SECRET, headers["X-Hub-Signature-256"][7:]):
        assert secret not in text


async def test_a_thousand_webhooks_fifty_at_a_time_make_exactly_a_thousand_runs(
    served: Served,
) -> None:
    slots = asyncio.Semaphore(50)

    async def send(i: int) -> str:
        body = json.dumps({"order": {"id": f"N-{i}"}}).encode()
        async with slots:
            answer = await served.http.post(
                "/hooks/shop/github", content=body, headers=github_headers(body, f"d-{i}")
            )
        assert answer.status_code == 202, answer.text
        run_id: str = answer.json()["runId"]
        return run_id

    run_ids = await asyncio.gather(*(send(i) for i in range(1000)))
    assert len(set(run_ids)) == 1000
    for run_id in run_ids:
        assert await served.launcher.wait(run_id, 60) is not None
    runs = await served.runs()
    assert len(runs) == 1000
    assert {r.phase for r in runs} == {"Succeeded"}


async def test_mounted_at_hooks_it_serves_the_same_paths(tmp_path: Path) -> None:
    from starlette import applications, routing

    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "open.yaml").write_text(yaml.safe_dump(WORKFLOWS[3]))
    source = sources.DirectorySource(folder, env={})

    class Recorder:
        def __init__(self) -> None:
            self.requests: list[pool.RunRequest] = []

        async def launch(self, request: pool.RunRequest) -> pool.Started:
            self.requests.append(request)
            return pool.Started("run-1", False)

        async def wait(self, run_id: str, timeout: float) -> pool.Outcome | None:
            return None

    recorder = Recorder()

    root = applications.Starlette(
        routes=[routing.Mount("/hooks", app=server.create_app(source, recorder))]
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=root), base_url="http://t") as c:
        answer = await c.post("/hooks/shop/open", json={"orderId": "M-1"})
        assert answer.status_code == 202
        assert answer.json()["status"] == "http://t/hooks/-/runs/shop/run-1"
        assert (await c.post("/hooks/shop/closed")).status_code == 404
    assert [dict(r.inputs) for r in recorder.requests] == [{"orderId": "M-1"}]
