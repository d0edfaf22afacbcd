"""Live status as Server-Sent Events: per run and per namespace, every step transition in
order. Each event has an ``id:`` line; a client that reconnects with ``Last-Event-ID`` (the
browser's EventSource does so by itself) gets every event after it, so a dropped connection
loses nothing. A comment line every 15 s keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import fastapi
from fastapi import responses

from autoflow.webui.api import deps
from autoflow.webui.api.routes.workflows import INVALID

router = fastapi.APIRouter(tags=["events"])
KEEPALIVE = 15.0
SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}
}


def _after(last_event_id: str | None, after: int | None) -> int | None:
    if after is not None:
        return after
    if last_event_id and last_event_id.strip().isdigit():
        return int(last_event_id.strip())
    return None


async def _stream(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    iterator = aiter(events)
    next_event: asyncio.Task[dict[str, Any]] | None = None
    try:
        while True:
            if next_event is None:
                next_event = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({next_event}, timeout=KEEPALIVE)
            if not done:
                yield b": keep-alive\n\n"
                continue
            try:
                event = next_event.result()
            except StopAsyncIteration:
                return
            next_event = None
            data = json.dumps(event, separators=(",", ":"), default=str)
            kind = event.get("kind", "message")
            yield f"id: {event['id']}\nevent: {kind}\ndata: {data}\n\n".encode()
    finally:
        if next_event is not None:
            next_event.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await next_event
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


def _response(events: AsyncIterator[dict[str, Any]]) -> responses.StreamingResponse:
    return responses.StreamingResponse(
        _stream(events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/namespaces/{namespace}/runs/{run_id}/events",
    responses={**INVALID, **SSE},
    response_class=responses.StreamingResponse,
)
async def run_events(
    namespace: str,
    run_id: str,
    me: deps.Me,
    be: deps.Backend,
    last_event_id: Annotated[str | None, fastapi.Header()] = None,
    after: Annotated[int | None, fastapi.Query(ge=0)] = None,
) -> responses.StreamingResponse:
    await be.check_runs_access(me, namespace, "watch")
    return _response(be.events(me, namespace, run_id, _after(last_event_id, after)))


@router.get(
    "/namespaces/{namespace}/events",
    responses={**INVALID, **SSE},
    response_class=responses.StreamingResponse,
)
async def namespace_events(
    namespace: str,
    me: deps.Me,
    be: deps.Backend,
    last_event_id: Annotated[str | None, fastapi.Header()] = None,
    after: Annotated[int | None, fastapi.Query(ge=0)] = None,
) -> responses.StreamingResponse:
    await be.check_runs_access(me, namespace, "watch")
    return _response(be.events(me, namespace, None, _after(last_event_id, after)))
