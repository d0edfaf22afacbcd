"""Archiving finished runs into the run store before their ``runHistory`` deletes them.

With a store configured (``AUTOFLOW_STORE_URL``), a finished WorkflowRun is written to the
store and then annotated ``autoflow.dev/archived``; the sweeper deletes a run only once it is
archived (``Archiver.ensure``), so history limits and TTLs delete the CR, never the history.
Archiving is idempotent: the store's writes are, and what the store already holds is left
as it is, so the full payloads a runner wrote (``runners.job.payloads``) are never replaced
by the status's truncated markers. An operator restarted between the write and the
annotation writes again, harmlessly.

A run is archived once its runner has stopped (its Job complete, failed or suspended with no
pod left, or gone): the runner writes the status before the store, so a run reads finished
while its last store writes may still be on their way, and an archive that read the store
before they landed would write the status's markers over the full values after them::

    finished run, runner stopped ─► records_of(run, stored) ─► store.record
        ─► annotate archived ─► (history limits, TTL) delete

``records_of`` and ``runner_writing`` are pure; ``Archiver`` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import pydantic

from autoflow.crds import errors, meta, workflow
from autoflow.operator import metrics, runs
from autoflow.runners import kube, store
from autoflow.runners.definitions import inputs

log = logging.getLogger("autoflow.operator")

ANNOTATION_ARCHIVED = "autoflow.dev/archived"
TRIGGER = "job"  # runs the operator runs are Job-mode runs, as the runner records them
FINISHED_STEP = {"Succeeded", "Failed", "Skipped", "Cancelled"}


def is_archived(run: meta.JSONDict) -> bool:
    return bool((run["metadata"].get("annotations") or {}).get(ANNOTATION_ARCHIVED))


def runner_writing(run: meta.JSONDict, job: meta.JSONDict | None) -> bool:
    """Whether the run's runner Job may still be running a pod that writes to the store."""
    if job is None or not runs.owned_by(job, run):
        return False
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return False
    return not ((job.get("spec") or {}).get("suspend") and runs.runner_stopped(status))


def records_of(run: meta.JSONDict, stored: store.RunDetail | None) -> list[dict[str, Any]]:
    """Journal records of a finished run's status that the store does not hold yet.

    Steps the store has finished keep their (full) stored values; a run the store has
    ended gets no second end."""
    meta_ = run["metadata"]
    status = run.get("status") or {}
    result = status.get("result") or {}
    started = meta.epoch(status.get("startedAt")) or meta.epoch(meta_.get("creationTimestamp"))
    given = (run.get("spec") or {}).get("inputs") or {}
    records: list[dict[str, Any]] = [
        {
            "t": "run",
            "runId": meta_["uid"],
            "workflow": runs.workflow_name(run),
            "namespace": meta_["namespace"],
            "trigger": TRIGGER,
            "inputs": given,
            "startedAt": started or 0.0,
            **_about(status.get("workflowSnapshot"), given, meta_["name"]),
        }
    ]
    done = {s.step for s in stored.steps if s.phase in FINISHED_STEP} if stored else set()
    for step in status.get("steps") or []:
        if step.get("phase") not in FINISHED_STEP or step["id"] in done:
            continue
        records.append(
            {
                "t": "step",
                "step": step["id"],
                "phase": step["phase"],
                "output": step.get("output"),
                "error": step.get("message") if step["phase"] == "Failed" else None,
                "attempts": step.get("attempts", 0),
                "startedAt": meta.epoch(step.get("startedAt")),
                "finishedAt": meta.epoch(step.get("finishedAt")),
                "message": step.get("message") or "",
            }
        )
    if stored is None or stored.summary.phase == store.RUNNING:
        records.append(
            {
                "t": "end",
                "phase": result.get("phase") or runs.phase_of(run),
                "outputs": status.get("outputs"),
                "error": result.get("error") or None,
                "at": meta.epoch(status.get("finishedAt")) or started or time.time(),
            }
        )
    return records


def _about(snapshot: Any, given: dict[str, Any], name: str) -> dict[str, Any]:
    """What the runner's header would have told the store beyond the status: the inputs
    declared secret (stored redacted) and the data subject (stored as a keyed hash, so
    ``autoflow runs erase`` finds a run the runner never wrote to the store)."""
    if not isinstance(snapshot, dict):
        return {}
    try:
        spec = workflow.WorkflowSpec.model_validate(snapshot)
        values = inputs.resolve(spec.inputs, given, errors.Where(resource=f"WorkflowRun/{name}"))
    except (pydantic.ValidationError, errors.AutoflowError):
        return {}  # the run failed on them; its inputs are stored as given
    about: dict[str, Any] = {}
    secret = inputs.secret_names(spec.inputs)
    if secret:
        about["secretInputs"] = secret
    with contextlib.suppress(errors.AutoflowError):  # a run refused for it never started
        subject = inputs.data_subject(spec, values, errors.Where(resource=f"WorkflowRun/{name}"))
        if subject is not None:
            about["subject"] = subject
    return about


class Archiver:
    """Writes finished runs to ``store`` and marks them archived, through ``client``."""

    def __init__(self, client: kube.Client, store_: store.Store, concurrency: int = 4) -> None:
        self._client = client
        self.store = store_
        # Archives in flight at once: at start-up kopf hands over every finished run it
        # lists, possibly thousands, each in a handler of its own; the store and the API
        # server see at most this many at a time (``AUTOFLOW_ARCHIVE_CONCURRENCY``).
        self._slots = asyncio.Semaphore(max(1, concurrency))

    async def ensure(self, run: meta.JSONDict) -> bool:
        """Archive ``run`` unless it is; False when that failed or must wait for its runner
        to stop (the run must stay)."""
        if is_archived(run):
            return True
        try:
            async with self._slots:
                job = await self._client.get_or_none(
                    kube.paths.job(run["metadata"]["namespace"], runs.job_name(run))
                )
                if runner_writing(run, job):
                    return False  # archived when its Job finishes (``handlers.job_event``)
                await self.archive(run)
        except (store.StoreError, kube.ApiError) as exc:
            metrics.store_write_failed("archive")
            log.warning(
                "could not archive run %s/%s, keeping it: %s",
                run["metadata"]["namespace"],
                run["metadata"]["name"],
                exc,
                extra={"run_id": run["metadata"]["uid"]},
            )
            return False
        return True

    async def archive(self, run: meta.JSONDict) -> None:
        meta_ = run["metadata"]
        began = time.perf_counter()
        uid = meta_["uid"]
        stored = await self.store.get_run(uid)
        records = records_of(run, stored)
        await self.store.record(uid, records)
        patch = {
            "metadata": {
                "uid": uid,
                "annotations": {ANNOTATION_ARCHIVED: meta.timestamp(time.time())},
            }
        }
        # Gone (or a newer run of the name) meanwhile: its history is in the store all the same.
        with contextlib.suppress(kube.NotFound, kube.Conflict):
            await self._client.patch(kube.paths.run(meta_["namespace"], meta_["name"]), patch)
        metrics.run_archived(time.perf_counter() - began)
        log.info(
            "archived run %s/%s into the run store",
            meta_["namespace"],
            meta_["name"],
            extra={"run_id": uid},
        )
