"""Live run status for the web API: an in-process hub of step transitions, in order.

The workspace backend publishes one event per transition of a run it executes (the run
starts, a step starts, a step finishes, the run ends); Server-Sent Events streams read them::

    engine Observer / launcher ─ publish(event) ─► ring buffer (ids 1, 2, 3, ...)
                                                 └► every subscriber woken
    subscribe(namespace, run_id, after=Last-Event-ID) ─► the buffered events after ``after``,
                                                         then each new one as it comes

An event is a dict ``{"id", "runId", "namespace", "workflow", "kind": "run"|"step"|"end",
"step"?, "phase", "at"}``, the shape of ``runners.pool.events.RunEvents`` (interfaces.md), so
either hub can feed the API. Ids are monotonic for the life of the process; a subscriber that
reconnects with the last id it saw gets every event it missed while the buffer still holds it.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

BUFFER = 10_000  # events kept for resuming subscribers


class EventSource(Protocol):
    def subscribe(
        self, namespace: str | None = None, run_id: str | None = None, after: int | None = None
    ) -> AsyncIterator[dict[str, Any]]: ...


class RunEvents:
    """The hub: ``publish`` from the run's loop, ``subscribe`` from request handlers."""

    def __init__(self, buffer: int = BUFFER) -> None:
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=buffer)
        self._next = 1
        self._changed = asyncio.Condition()

    @property
    def last_id(self) -> int:
        return self._next - 1

    def publish(self, **event: Any) -> dict[str, Any]:
        event.setdefault("at", time.time())
        event["id"] = self._next
        self._next += 1
        self._events.append(event)
        asyncio.get_running_loop().create_task(self._wake())
        return event

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def subscribe(
        self, namespace: str | None = None, run_id: str | None = None, after: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        seen = self.last_id if after is None else after
        while True:
            async with self._changed:
                if self.last_id <= seen:
                    await self._changed.wait()
            for event in list(self._events):
                if event["id"] <= seen:
                    continue
                seen = event["id"]
                if namespace is not None and event.get("namespace") != namespace:
                    continue
                if run_id is not None and event.get("runId") != run_id:
                    continue
                yield event
