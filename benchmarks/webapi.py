"""Web API benchmark: list runs and stats over a large store, and SSE latency.

    .venv/bin/python benchmarks/webapi.py [--runs 100000] [--requests 200]

A workspace (SQLite) store is filled with ``--runs`` finished runs of 20 workflows over the
last 30 days; the API runs on uvicorn on loopback (as ``autoflow webui --dir`` serves it).
Printed: p50/p95 of ``GET runs?limit=50`` (first page and a deep page by cursor) and of
``GET stats?window=24h|30d``, next to a baseline measured in the same run: a bare Starlette
route on the same server answering a fixed JSON body of the same size (the floor of HTTP +
JSON on this machine). Then SSE latency: from a step finishing (the event's time) to the
event arriving at a client of ``GET namespaces/default/events``, over runs of a one-step
workflow, against a bare SSE endpoint fed by the same hub. Targets (issue 13): list ≤ 30 ms
p50; event ≤ 50 ms p50. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import random
import statistics
import sys
import tempfile
import time
from typing import Any

import httpx
import uvicorn
from starlette import applications, responses, routing

from autoflow.runners.pool import events
from autoflow.webui import workspace
from autoflow.webui.api import Settings, auth, create_app

TOKEN = "bench-token"
ONE_STEP = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: ping}
spec:
  steps:
    - {id: hello, uses: core.set, with: {values: {x: 1}}}
"""


async def fill(be: workspace.WorkspaceBackend, runs: int) -> None:
    now = time.time()
    rng = random.Random(7)
    batch: list[tuple[str, list[dict[str, Any]]]] = []
    for i in range(runs):
        start = now - rng.random() * 30 * 86400
        wf = f"flow-{i % 20}"
        phase = "Failed" if rng.random() < 0.1 else "Succeeded"
        run_id = f"{wf}-{i:08d}"
        records = [
            {
                "t": "run",
                "runId": run_id,
                "workflow": wf,
                "namespace": "default",
                "specHash": "h",
                "trigger": "api",
                "startedBy": "bench",
                "inputs": {"n": i},
                "startedAt": start,
            },
            {
                "t": "step",
                "step": "a",
                "phase": phase,
                "output": {"ok": True},
                "attempts": 1,
                "startedAt": start,
                "finishedAt": start + 0.2,
            },
            {
                "t": "end",
                "phase": phase,
                "outputs": {},
                "at": start + 0.25,
                "error": "boom" if phase == "Failed" else None,
            },
        ]
        batch.append((run_id, records))
        if len(batch) >= 500:
            await asyncio.gather(*(be.store.record(r, recs) for r, recs in batch))
            batch.clear()
    await asyncio.gather(*(be.store.record(r, recs) for r, recs in batch))


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def timed(client: httpx.AsyncClient, url: str, n: int, **kw: Any) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = await client.get(url, **kw)
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text[:200]
    return out


def line(name: str, samples: list[float], base: float) -> None:
    p50 = statistics.median(samples)
    print(
        f"  {name:<34} p50 {p50:7.2f} ms  p95 {pct(samples, 0.95):7.2f} ms  "
        f"({p50 / base:5.1f}x baseline)"
    )


async def main(args: argparse.Namespace) -> None:
    directory = pathlib.Path(tempfile.mkdtemp(prefix="autoflow-bench-"))
    (directory / "ping.yaml").write_text(ONE_STEP)
    for i in range(20):
        (directory / f"flow-{i}.yaml").write_text(ONE_STEP.replace("name: ping", f"name: flow-{i}"))
    be = await workspace.WorkspaceBackend.open(directory)
    t = time.perf_counter()
    await fill(be, args.runs)
    print(f"filled {args.runs} runs in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    api = create_app(be, Settings(authenticator=auth.TokenAuth(TOKEN)))
    hub = events.RunEvents()

    async def bare_json(request: Any) -> responses.Response:
        return responses.Response(body, media_type="application/json")

    async def bare_sse(request: Any) -> responses.StreamingResponse:
        async def stream() -> Any:
            async for event in hub.subscribe():
                yield f"id: {event['id']}\ndata: {json.dumps(event)}\n\n".encode()

        return responses.StreamingResponse(stream(), media_type="text/event-stream")

    body = b"{}"
    app = applications.Starlette(
        routes=[
            routing.Route("/bare", bare_json),
            routing.Route("/bare-events", bare_sse),
            routing.Mount("/api", app=api),
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    serving = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as c:
        first = await c.get("/api/namespaces/default/runs", params={"limit": 50})
        body = first.content  # the baseline answers a body of the same size
        n = args.requests
        baseline = await timed(c, "/bare", n)
        b50 = statistics.median(baseline)
        print(
            f"web API over {args.runs} runs (SQLite), {n} requests each; baseline: bare "
            f"route, {len(body)} bytes of JSON: p50 {b50:.2f} ms"
        )
        line(
            "GET runs?limit=50",
            await timed(c, "/api/namespaces/default/runs", n, params={"limit": 50}),
            b50,
        )
        cursor = first.json()["next"]
        for _ in range(20):
            cursor = (
                await c.get("/api/namespaces/default/runs", params={"limit": 50, "cursor": cursor})
            ).json()["next"]
        line(
            "GET runs (page 21, by cursor)",
            await timed(
                c, "/api/namespaces/default/runs", n, params={"limit": 50, "cursor": cursor}
            ),
            b50,
        )
        line(
            "GET runs?workflow=flow-3&phase=Failed",
            await timed(
                c,
                "/api/namespaces/default/runs",
                n,
                params={"workflow": "flow-3", "phase": "Failed", "limit": 50},
            ),
            b50,
        )
        line(
            "GET stats?window=24h",
            await timed(
                c, "/api/namespaces/default/stats", max(n // 4, 10), params={"window": "24h"}
            ),
            b50,
        )
        line(
            "GET stats?window=30d",
            await timed(
                c, "/api/namespaces/default/stats", max(n // 4, 10), params={"window": "30d"}
            ),
            b50,
        )
        line(
            "GET workflows (20, with last run)",
            await timed(c, "/api/namespaces/default/workflows", max(n // 4, 10)),
            b50,
        )

        async def latencies(path: str, trigger: Any, count: int) -> list[float]:
            got: list[float] = []

            async def listen() -> None:
                async with c.stream("GET", path) as response:
                    async for text in response.aiter_lines():
                        if text.startswith("data: "):
                            event = json.loads(text[6:])
                            if event.get("kind") == "step" and event["phase"] == "Succeeded":
                                got.append((time.time() - event["at"]) * 1000)
                                if len(got) >= count:
                                    return

            task = asyncio.ensure_future(listen())
            await asyncio.sleep(0.3)
            for _ in range(count):
                await trigger()
                await asyncio.sleep(0.02)
            await asyncio.wait_for(task, 60)
            return got

        async def bare_trigger() -> None:
            hub.publish(
                run_id="x",
                namespace="default",
                workflow="ping",
                kind="step",
                step="hello",
                phase="Succeeded",
            )

        async def api_trigger() -> None:
            r = await c.post("/api/namespaces/default/workflows/ping/runs", json={})
            assert r.status_code == 201, r.text

        count = max(args.requests // 4, 20)
        bare = await latencies("/bare-events", bare_trigger, count)
        sb = statistics.median(bare)
        print(
            f"SSE: step finished → event at the client, {count} runs; baseline: bare SSE "
            f"endpoint on the same hub: p50 {sb:.2f} ms"
        )
        line(
            "GET namespaces/default/events",
            await latencies("/api/namespaces/default/events", api_trigger, count),
            sb,
        )
    server.should_exit = True
    await serving
    await be.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
