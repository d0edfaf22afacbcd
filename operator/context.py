"""What the operator's handlers share, made once at start-up and handed to them by kopf.

Nothing here is made when a module is imported: ``main`` reads the ``Settings`` and puts them
in kopf's ``memo``; the start-up handler (``handlers.startup``) makes the ``Context`` from them
and puts it there too; kopf gives every handler a copy of that memo, and ``of(memo)`` takes the
context out of it::

    main():     settings ─► memo["settings"]
    startup:    Context(settings, API client, TTL sweeper, admissions, semaphores,
                        the run store's archiver when one is configured, ...)
                          ─► memo["context"]
    a handler:  ctx = context.of(memo); await ctx.client.get(...)
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from autoflow.operator import admission, archive, pool_status, retention
from autoflow.operator import settings as settings_mod
from autoflow.operator import sweeper as sweeper_mod
from autoflow.runners import kube

SETTINGS = "settings"
CONTEXT = "context"
# Runs dispatched at once: under a burst the first runs start first instead of all of them
# sharing the API client and finishing together, late.
DISPATCH_CONCURRENCY = 8


@dataclasses.dataclass(eq=False)
class Context:
    """The operator's state: one of each, for the life of the process."""

    settings: settings_mod.Settings
    client: kube.Client
    sweeper: sweeper_mod.Sweeper
    # Made by the handlers module, which holds the functions it calls back.
    admissions: admission.Admissions = dataclasses.field(init=False)
    dispatching: asyncio.Semaphore = dataclasses.field(
        default_factory=lambda: asyncio.Semaphore(DISPATCH_CONCURRENCY)
    )
    probing: asyncio.Semaphore = dataclasses.field(init=False)
    # Schedules (namespace, name) with a run that finished or went since their last sync.
    dirty_schedules: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    # Archives finished runs into the run store (``AUTOFLOW_STORE_URL``); None: no store.
    archiver: archive.Archiver | None = None
    # Purges expired runs from that store periodically; None: no store, or no purge.
    retainer: retention.Retainer | None = None
    # Writes pool-mode Workflows' run counters from that store; None: no store, or off.
    pool_status: pool_status.PoolStatus | None = None

    def __post_init__(self) -> None:
        self.probing = asyncio.Semaphore(self.settings.probe_concurrency)

    @property
    def backoff(self) -> float:
        return self.settings.handler_backoff_seconds


def settings_of(memo: Any) -> settings_mod.Settings:
    """The settings ``main`` put in kopf's memo."""
    settings = memo[SETTINGS]
    assert isinstance(settings, settings_mod.Settings)
    return settings


def of(memo: Any) -> Context:
    """The context the start-up handler put in kopf's memo."""
    ctx = memo[CONTEXT]
    assert isinstance(ctx, Context)
    return ctx
