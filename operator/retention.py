"""The run store's retention, applied by the operator (``runners.store.retention``).

With a store configured (``AUTOFLOW_STORE_URL``), the operator purges expired runs every
``AUTOFLOW_STORE_PURGE_INTERVAL_SECONDS`` (the first time at a random moment within the first
minutes): each Workflow it watches by its ``spec.retention``, runs of other workflows (deleted
ones, those of ``autoflow serve`` sharing the store) by the ``retention`` of the spec their
newest run ran, else by the default of ``AUTOFLOW_STORE_RETENTION_DAYS`` and
``AUTOFLOW_STORE_RETENTION_MAX_RUNS`` (unset: kept). The Workflows are listed from the API
server at each round, so a changed ``spec.retention`` counts from the next one. Each round that
purges leaves audit records naming the actor ``autoflow-operator``; the count goes to
``autoflow_store_runs_purged_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from autoflow.operator import metrics
from autoflow.operator import settings as settings_mod
from autoflow.runners import kube, store
from autoflow.runners.store import retention

log = logging.getLogger("autoflow.operator")

ACTOR = "autoflow-operator"


def default_of(settings: settings_mod.Settings) -> store.Retention | None:
    """The retention of runs no Workflow speaks for; None when neither setting is given."""
    if settings.store_retention_days is None and settings.store_retention_max_runs is None:
        return None
    return store.Retention(settings.store_retention_days, settings.store_retention_max_runs)


def policies_of(workflows: list[dict[str, object]]) -> dict[tuple[str, str], store.Retention]:
    """(namespace, name) → the Workflow's ``spec.retention``, for those that set one."""
    found: dict[tuple[str, str], store.Retention] = {}
    for wf in workflows:
        meta = wf.get("metadata")
        spec = wf.get("spec")
        if not isinstance(meta, dict) or not isinstance(spec, dict):
            continue
        policy = store.Retention.from_spec(spec.get("retention"))
        if policy is not None:
            found[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = policy
    return found


async def workflow_policies(
    client: kube.Client, namespaces: list[str]
) -> dict[tuple[str, str], store.Retention]:
    """The retention of every Workflow in ``namespaces`` (all when empty), listed now."""
    workflows: list[dict[str, object]] = []
    for namespace in namespaces or [""]:
        url = (
            kube.paths.workflow(namespace)
            if namespace
            else kube.paths.path(kube.paths.AUTOFLOW, "workflows")
        )
        workflows += await client.list(url)
    return policies_of(workflows)


class Retainer:
    """The periodic purge as a task: ``start`` at operator start-up, ``stop`` at clean-up."""

    def __init__(
        self, client: kube.Client, store_: store.Store, settings: settings_mod.Settings
    ) -> None:
        self._client = client
        self._store = store_
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    def start(self, *, delay: float | None = None) -> None:
        settings = self._settings
        namespaces = settings.namespace_list()
        self._task = asyncio.create_task(
            retention.retention_loop(
                self._store,
                interval=settings.store_purge_interval_seconds,
                default=default_of(settings),
                policies=lambda: workflow_policies(self._client, namespaces),
                actor=ACTOR,
                on_purged=metrics.runs_purged,
                delay=delay,
            ),
            name="autoflow-store-retention",
        )
        log.info(
            "purging expired runs from the run store every %gs (default: %s)",
            settings.store_purge_interval_seconds,
            (default_of(settings) or store.Retention()).describe(),
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
