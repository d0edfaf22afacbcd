"""A Workflow's ``runHistory``: which finished runs to keep, and when the others go.

Pure functions over run dicts; ``sweeper`` does the deleting (when a run finishes, when a
Workflow changes, and when a ``ttlSecondsAfterFinished`` is up).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from autoflow.crds import meta
from autoflow.operator import runs


def finished_at(run: dict[str, Any]) -> float | None:
    """When a finished run finished (seconds since the epoch); None while it runs."""
    if not runs.is_finished(run):
        return None
    status = run.get("status") or {}
    return meta.epoch(status.get("finishedAt")) or meta.epoch(
        run["metadata"].get("creationTimestamp")
    )


def expired_runs(
    items: Iterable[dict[str, Any]], wf_name: str, history: dict[str, Any] | None, now: float
) -> list[dict[str, Any]]:
    """The finished runs of workflow ``wf_name`` to delete under its ``runHistory``.

    Beyond ``successfulRunsLimit`` (phase Succeeded) or ``failedRunsLimit`` (Failed and
    Cancelled) the oldest go; any older than ``ttlSecondsAfterFinished`` go as well.
    """
    if not history:
        return []
    done = [
        (finished_at(r) or 0.0, r)
        for r in items
        if runs.is_finished(r)
        and runs.workflow_name(r) == wf_name
        and not r["metadata"].get("deletionTimestamp")
    ]
    done.sort(key=lambda pair: (pair[0], pair[1]["metadata"].get("creationTimestamp", "")))
    doomed: dict[str, dict[str, Any]] = {}
    ttl = history.get("ttlSecondsAfterFinished")
    if ttl is not None:
        doomed.update({r["metadata"]["uid"]: r for at, r in done if at + ttl <= now})
    for limit, phases in (
        (history.get("successfulRunsLimit"), {"Succeeded"}),
        (history.get("failedRunsLimit"), {"Failed", "Cancelled"}),
    ):
        if limit is None:
            continue
        kept = [r for _, r in done if runs.phase_of(r) in phases]
        for r in kept[: max(0, len(kept) - limit)]:
            doomed[r["metadata"]["uid"]] = r
    return [r for _, r in done if r["metadata"]["uid"] in doomed]


def expires_at(run: dict[str, Any], history: dict[str, Any] | None) -> float | None:
    """When ``ttlSecondsAfterFinished`` makes a finished run due for deletion, if it does."""
    ttl = (history or {}).get("ttlSecondsAfterFinished")
    at = finished_at(run)
    if ttl is None or at is None:
        return None
    return at + float(ttl)
