"""The web API on a real HTTP server on loopback, for tests and benchmarks.

``serve(app)`` runs uvicorn on a free 127.0.0.1 port as a task on the running loop, with the
app mounted at ``/api`` under a root Starlette app (as ``autoflow serve`` mounts it), and
yields the base URL of the API."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve(app: Any, mount: str = "/api") -> AsyncIterator[str]:
    root = Starlette(routes=[Mount(mount, app=app)]) if mount else app
    port = free_port()
    config = uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}{mount}"
    finally:
        server.should_exit = True
        await task
