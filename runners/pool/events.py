"""Run events: every transition of every run this process executes, in order, for live views.

``RunEvents`` is an in-memory hub. A launcher publishes one event per transition (a run
recorded Pending, a run Running, each step attempt starting, retrying, each step's result,
the run's end); ``subscribe`` gives an async iterator of them, optionally of one namespace or
one run. Every event has a monotonic ``id`` (across restarts too: ids start from the clock in
microseconds), so a Server-Sent Events endpoint can send it as ``id:`` and a client that
reconnects with ``Last-Event-ID`` passes it as ``after`` to get what it missed, as long as it
is still in the buffer (the newest ``capacity`` events). Events carry no payloads (no inputs,
outputs or errors): what changed, not what a run holds; a view reads the rest from the store.

An event::

    {"id": 1733390000000001, "runId": "orders-1a2b", "namespace": "shop",
     "workflow": "orders", "kind": "run" | "step" | "end", "step": "charge",  # steps only
     "phase": "Pending" | "Running" | "Retrying" | "Succeeded" | ..., "at": 1733390000.0}

A slow subscriber never holds up a run: publishing appends to the buffer and wakes
subscribers; one that falls more than ``capacity`` behind skips to the oldest event kept.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator
from typing import Any

Event = dict[str, Any]
CAPACITY = 10_000


class RunEvents:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._buffer: list[Event] = []  # oldest first; trimmed to capacity when twice as long
        self._ids: list[int] = []
        self._last_id = time.time_ns() // 1000
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def last_id(self) -> int:
        return self._last_id

    def publish(
        self,
        *,
        run_id: str,
        namespace: str,
        workflow: str,
        kind: str,
        phase: str,
        step: str | None = None,
        at: float | None = None,
    ) -> Event:
        self._last_id = max(self._last_id + 1, time.time_ns() // 1000)
        event: Event = {
            "id": self._last_id,
            "runId": run_id,
            "namespace": namespace,
            "workflow": workflow,
            "kind": kind,
            "phase": phase,
            "at": time.time() if at is None else at,
        }
        if step is not None:
            event["step"] = step
        self._buffer.append(event)
        self._ids.append(self._last_id)
        if len(self._buffer) >= 2 * self._capacity:
            del self._buffer[: -self._capacity], self._ids[: -self._capacity]
        # Wake everyone waiting now; later waiters wait on a fresh event.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return event

    def close(self) -> None:
        """Ends every subscription (at shutdown)."""
        self._closed = True
        self._changed.set()

    def replay(
        self, *, namespace: str | None = None, run_id: str | None = None, after: int | None = None
    ) -> list[Event]:
        """The buffered events matching, after ``after`` (all kept when None)."""
        return [e for e in self._since(after) if _matches(e, namespace, run_id, None)]

    def _since(self, after: int | None) -> list[Event]:
        if after is None:
            return self._buffer[-self._capacity :]
        start = max(bisect.bisect_right(self._ids, after), len(self._buffer) - self._capacity)
        return self._buffer[start:]

    async def subscribe(
        self,
        namespace: str | None = None,
        run_id: str | None = None,
        after: int | None = None,
    ) -> AsyncIterator[Event]:
        """Events from now on (or after ``after``: the buffered ones first), until ``close``.
        Without ``after`` only new events come."""
        cursor = self._last_id if after is None else after
        while not self._closed:
            changed = self._changed
            fresh = self._since(cursor)
            for event in fresh:
                cursor = event["id"]
                if _matches(event, namespace, run_id, None):
                    yield event
            if not fresh:
                await changed.wait()


def _matches(event: Event, namespace: str | None, run_id: str | None, after: int | None) -> bool:
    return (
        (namespace is None or event["namespace"] == namespace)
        and (run_id is None or event["runId"] == run_id)
        and (after is None or event["id"] > after)
    )
