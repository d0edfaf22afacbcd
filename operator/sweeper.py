"""Keeping finished runs as their Workflow's ``runHistory`` says, and deleting the rest.

Which runs go is decided by ``history`` (pure); this module does the I/O through
the operator's API client. Count limits are applied when a run finishes and when a Workflow
changes (``enforce``); ``ttlSecondsAfterFinished`` by the ``Sweeper``, one task that sleeps
until the next run is due. Runs are deleted with a uid precondition (never a newer run of the
same name) and background propagation (the garbage collector removes their Jobs and access).
With a run store configured, a run is deleted only once it is archived (``archive``): a run
whose archive fails is kept, and its TTL tried again after ``ARCHIVE_RETRY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from autoflow.crds import meta
from autoflow.operator import archive, history, runs
from autoflow.runners import kube

log = logging.getLogger("autoflow.operator")
ARCHIVE_RETRY_SECONDS = 30.0


async def enforce(
    client: kube.Client,
    namespace: str,
    wf_name: str,
    run_history: meta.JSONDict | None,
    archiver: archive.Archiver | None = None,
) -> None:
    """Delete the finished runs of a Workflow beyond its limits (and past their TTL)."""
    if not run_history:
        return
    selector = f"{runs.LABEL_WORKFLOW}={runs.label_value(wf_name)}"
    listed = await client.list(kube.paths.run(namespace, selector=selector))
    doomed = history.expired_runs(listed, wf_name, run_history, time.time())
    for run in doomed:
        await delete_run(client, run, archiver)


async def delete_run(
    client: kube.Client, run: meta.JSONDict, archiver: archive.Archiver | None = None
) -> bool:
    """Delete a finished run (archived first when there is a store); False: it is kept."""
    if archiver is not None and not await archiver.ensure(run):
        return False
    meta_ = run["metadata"]
    body = {"preconditions": {"uid": meta_["uid"]}, "propagationPolicy": "Background"}
    try:
        await client.delete(kube.paths.run(meta_["namespace"], meta_["name"]), body)
    except (kube.NotFound, kube.Conflict):
        return True
    log.info(
        "deleted finished run %s/%s under its workflow's runHistory",
        meta_["namespace"],
        meta_["name"],
    )
    return True


class Sweeper:
    """Deletes finished runs when their ``ttlSecondsAfterFinished`` is up.

    Runs are scheduled when they finish and whenever kopf lists them (start-up, re-lists),
    so the schedule survives operator restarts. When one is due, its Workflow's current
    ``runHistory`` decides again.
    """

    def __init__(self, client: kube.Client, archiver: archive.Archiver | None = None) -> None:
        self._client = client
        self.archiver = archiver
        self._due: dict[str, tuple[float, str, str]] = {}  # uid → (when, namespace, name)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="autoflow-run-ttl")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def schedule(self, run: meta.JSONDict, at: float | None) -> None:
        """Delete ``run`` at ``at`` (seconds since the epoch); None: never."""
        meta_ = run["metadata"]
        if at is None:
            self._due.pop(meta_["uid"], None)
            return
        self._due[meta_["uid"]] = (at, meta_["namespace"], meta_["name"])
        self._wake.set()

    def forget(self, uid: str) -> None:
        self._due.pop(uid, None)

    async def _loop(self) -> None:
        while True:
            now = time.time()
            for uid, (at, namespace, name) in list(self._due.items()):
                if at <= now:
                    self._due.pop(uid, None)
                    try:
                        await self._expire(uid, namespace, name)
                    except Exception:
                        log.exception("deleting expired run %s/%s failed", namespace, name)
            self._wake.clear()
            soonest = min((at for at, _, _ in self._due.values()), default=None)
            timeout = None if soonest is None else max(0.0, soonest - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _expire(self, uid: str, namespace: str, name: str) -> None:
        client = self._client
        run = await client.get_or_none(kube.paths.run(namespace, name))
        if run is None or run["metadata"]["uid"] != uid:
            return
        wf = await client.get_or_none(kube.paths.workflow(namespace, runs.workflow_name(run)))
        run_history = (wf or {}).get("spec", {}).get("runHistory")
        at = history.expires_at(run, run_history)
        if at is None:
            return
        if at > time.time():
            self.schedule(run, at)
            return
        if not await delete_run(client, run, self.archiver):
            self.schedule(run, time.time() + ARCHIVE_RETRY_SECONDS)
