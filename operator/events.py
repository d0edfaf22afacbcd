"""Kubernetes Events on the transitions a user cares about, and only those.

``for_run`` and ``for_workflow`` are pure: the status before and after a write in, the Event
to post (type, reason, message) or None out; ``posting.post`` posts it. Events are posted by
whoever won the status write, so a transition is announced once.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from autoflow.crds import conditions


class Event(NamedTuple):
    type: str  # Normal or Warning
    reason: str
    message: str


def for_run(old: dict[str, Any], new: dict[str, Any]) -> Event | None:
    """The Event for a run whose status went from ``old`` to ``new`` (merged), if any."""
    before, after = old.get("phase"), new.get("phase")
    message = new.get("message") or ""
    reason = (conditions.get(new.get("conditions"), "Succeeded") or {}).get("reason")
    was = (conditions.get(old.get("conditions"), "Succeeded") or {}).get("reason")
    if after == "Pending" and reason == "Queued" and was != "Queued":
        return Event("Normal", "Queued", message or "waiting for a free slot")
    if before == after:
        return None
    if after == "Running":
        return Event("Normal", "Started", "the runner started")
    if after == "Succeeded":
        return Event("Normal", "Succeeded", message or "the run succeeded")
    if after == "Cancelled":
        return Event("Normal", "Cancelled", message or "the run was cancelled")
    if after == "Failed":
        cond = conditions.get(new.get("conditions"), "Succeeded") or {}
        return Event("Warning", cond.get("reason") or "Failed", message or "the run failed")
    return None


def for_workflow(old: dict[str, Any], new: dict[str, Any]) -> Event | None:
    """A Warning when a Workflow becomes (or stays, with a new problem) not Ready."""
    was = conditions.get(old.get("conditions"), "Ready") or {}
    now = conditions.get(new.get("conditions"), "Ready") or {}
    if now.get("status") == "True" or not now:
        return None
    same = (was.get("status"), was.get("reason"), was.get("message")) == (
        now.get("status"),
        now.get("reason"),
        now.get("message"),
    )
    if same and was.get("observedGeneration") == now.get("observedGeneration"):
        return None
    return Event("Warning", now.get("reason") or "Invalid", now.get("message") or "")
