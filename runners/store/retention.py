"""Retention, applied periodically: ``retention_loop`` calls ``Store.purge_expired`` every
``interval`` seconds until it is cancelled.

Whoever holds a store for long runs it: the operator (``operator.handlers``, with the
retention of the Workflows it watches) and ``autoflow serve``. The first purge comes after
``delay`` (default: a random moment within the first ``min(interval, FIRST_WITHIN)``
seconds), so replicas or processes started together do not all purge at once::

    start ─► sleep(delay) ─► purge_expired(default, policies()) ─► on_purged(n)
                 ▲                                                      │
                 └──────────────────── sleep(interval) ◄────────────────┘

``policies`` is a mapping (namespace, workflow) → ``Retention``, or a function giving one
(plain or async), asked before each purge so a Workflow's changed ``spec.retention`` counts
from the next round. A purge that fails (the store unreachable, a policy source that
raised) is logged and tried again at the next round: retention is never a reason to stop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from autoflow.runners import store

log = logging.getLogger("autoflow.store")

FIRST_WITHIN = 300.0  # seconds: the default first purge is within this (or ``interval``)

Policies = Mapping[tuple[str, str], store.Retention]
PolicySource = Policies | Callable[[], Policies] | Callable[[], Awaitable[Policies]] | None


def first_delay(interval: float, rnd: random.Random | None = None) -> float:
    """A random moment within ``min(interval, FIRST_WITHIN)`` seconds."""
    return (rnd or random).uniform(0.0, max(0.0, min(interval, FIRST_WITHIN)))


async def _policies(source: PolicySource) -> Policies:
    if source is None:
        return {}
    if callable(source):
        found: Any = source()
        if inspect.isawaitable(found):
            found = await found
        return dict(found or {})
    return dict(source)


async def purge_once(
    store_: store.Store,
    *,
    default: store.Retention | None,
    policies: PolicySource,
    actor: str,
) -> int:
    """One round: apply retention now; the number of runs purged."""
    return await store_.purge_expired(
        default=default, policies=await _policies(policies), actor=actor
    )


async def retention_loop(
    store_: store.Store,
    *,
    interval: float,
    default: store.Retention | None = None,
    policies: PolicySource = None,
    actor: str = "retention",
    on_purged: Callable[[int], None] | None = None,
    delay: float | None = None,
) -> None:
    """Purge expired runs every ``interval`` seconds, the first after ``delay``; runs until
    cancelled. ``on_purged(n)`` is told every round's count (a metric), 0 included."""
    if interval <= 0:
        raise store.StoreError(
            f"the retention interval is a positive number of seconds, not {interval!r}"
        )
    await asyncio.sleep(first_delay(interval) if delay is None else max(0.0, delay))
    while True:
        try:
            purged = await purge_once(store_, default=default, policies=policies, actor=actor)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store, or the policy source: try again next round
            reason = (
                exc.message if isinstance(exc, store.StoreError) else f"{type(exc).__name__}: {exc}"
            )
            log.warning("retention purge failed, trying again in %gs: %s", interval, reason)
        else:
            if purged:
                log.info("retention purged %d finished runs from %s", purged, store_.display_url)
            if on_purged is not None:
                on_purged(purged)
        await asyncio.sleep(interval)
