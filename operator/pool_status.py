"""Status counters of pool-mode Workflows, written by the operator from the run store.

A pool run (``runtime.mode: pool``) creates no WorkflowRun object, and the workers have no
permission to write Workflows; so with a store configured (``AUTOFLOW_STORE_URL``) the
operator, every ``AUTOFLOW_STORE_STATUS_INTERVAL_SECONDS`` (30 by default; 0: never), reads
one window query from the store (``Store.activity``: per workflow and namespace, the runs
started in the last hour, how many of them Failed, and the newest) and patches the status of
each pool-mode Workflow it watches whose figures changed::

    status:
      lastRun: 3f6c...        # the newest run's id (``autoflow runs show`` it)
      lastRunPhase: Running
      lastRunTime: "2026-12-05T09:30:00Z"
      runsLastHour: 118
      failuresLastHour: 2

The rate is bounded: one store query and one list of Workflows a round, and at most one
status patch per Workflow a round, none when nothing changed. A Workflow without a run in
the last hour keeps its ``lastRun*`` and shows zero counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

from autoflow.operator import settings as settings_mod
from autoflow.runners import kube, store

log = logging.getLogger("autoflow.operator")

WINDOW = 3600.0
FIELDS = ("lastRun", "lastRunPhase", "lastRunTime", "runsLastHour", "failuresLastHour")


def rfc3339(at: float) -> str:
    return (
        datetime.datetime.fromtimestamp(at, datetime.UTC)
        .replace(microsecond=0)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def is_pool(wf: Mapping[str, Any]) -> bool:
    spec = wf.get("spec") or {}
    runtime = spec.get("runtime") if isinstance(spec, Mapping) else None
    return isinstance(runtime, Mapping) and runtime.get("mode") == "pool"


def figures(old: Mapping[str, Any], activity: store.Activity | None) -> dict[str, Any]:
    """The status fields a Workflow should show, given its old status and its activity in
    the window (None: no run in it)."""
    if activity is None:
        kept = {k: old.get(k) for k in ("lastRun", "lastRunPhase", "lastRunTime")}
        return {**kept, "runsLastHour": 0, "failuresLastHour": 0}
    return {
        "lastRun": activity.last_run,
        "lastRunPhase": activity.last_phase,
        "lastRunTime": rfc3339(activity.last_started_at),
        "runsLastHour": activity.runs,
        "failuresLastHour": activity.failed,
    }


def changes(
    workflows: list[dict[str, Any]], activity: list[store.Activity]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(Workflow, status patch) for each pool-mode Workflow whose figures changed."""
    by_key = {(a.namespace, a.workflow): a for a in activity}
    out = []
    for wf in workflows:
        if not is_pool(wf):
            continue
        meta = wf.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        old = wf.get("status") or {}
        new = figures(old, by_key.get(key))
        if any(old.get(k) != new[k] for k in FIELDS):
            out.append((wf, new))
    return out


async def list_workflows(client: kube.Client, namespaces: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for namespace in namespaces or [""]:
        url = (
            kube.paths.workflow(namespace)
            if namespace
            else kube.paths.path(kube.paths.AUTOFLOW, "workflows")
        )
        found += await client.list(url)
    return found


async def sync_once(
    client: kube.Client, store_: store.Store, namespaces: list[str], now: float | None = None
) -> int:
    """One round; returns how many Workflows were patched."""
    now = time.time() if now is None else now
    activity = await store_.activity(now - WINDOW)
    patched = 0
    for wf, status in changes(await list_workflows(client, namespaces), activity):
        meta = wf["metadata"]
        url = kube.paths.workflow(meta["namespace"], meta["name"], "status")
        try:
            await client.patch(url, {"status": status})
        except kube.NotFound:
            continue
        patched += 1
    return patched


class PoolStatus:
    """The periodic round as a task: ``start`` at operator start-up, ``stop`` at clean-up."""

    def __init__(
        self, client: kube.Client, store_: store.Store, settings: settings_mod.Settings
    ) -> None:
        self._client = client
        self._store = store_
        self._interval = settings.store_status_interval_seconds
        self._namespaces = settings.namespace_list()
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            try:
                await sync_once(self._client, self._store, self._namespaces)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round tries again
                log.warning("pool workflow status not updated: %s", exc)
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="autoflow-pool-status")
        log.info("writing pool workflows' run counters every %gs", self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
