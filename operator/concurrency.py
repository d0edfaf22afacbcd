"""A Workflow's ``spec.concurrency`` as pure functions over plain dicts: who may run now.

A run of a Workflow whose ``concurrency.maxRuns`` is above 0 is *admitted* (gets its Job) only
while fewer than ``maxRuns`` runs of that Workflow hold a slot. One decision reads like its
sentence::

    runs     = runs_of(listed, workflow)          # the Workflow's runs, each once
    decision = decide(run, runs, limit)           # admit, queue (maybe replacing others), fail
    status   = apply(run, start, decision)        # the start status under that decision
    (I/O, in ``admission``) write the status, cancel the replaced runs, create the Job
    later: admissible(runs)                       # queued runs that fit now, oldest first

The state of a run, as its status says it:

- **unstarted**: no ``workflowSnapshot`` yet (created, not taken up by the operator);
- **queued**: Pending, its ``Succeeded`` condition's reason ``Queued``: it waits for a slot
  and has no Job;
- **holding a slot**: started, not queued, not finished (Pending with its Job being made,
  or Running; a cancelled run holds its slot until it has stopped);
- **finished**.

Runs are admitted in creation order (``creationTimestamp``, then name). An unstarted or
queued run created before this one is *ahead* of it and counts against the limit as if it
held a slot, so that runs created together start in the order they were created whichever
the operator takes up first. A cancelled run waits for nothing and is ahead of nobody.

The limit and policy that apply to a run are those of its snapshot: the Workflow as it was
when the run started (the Workflow the start reads, which becomes the snapshot).

Policies, when a run does not fit:

- ``Queue``: it stays Pending, reason ``Queued``, until enough runs ahead of it finish;
- ``Forbid``: it fails at once, reason ``ConcurrencyLimit``;
- ``Replace``: the oldest runs holding a slot or waiting ahead of it are cancelled (those
  already stopping count as going) and it is queued until they have finished.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

from autoflow.crds import conditions, meta
from autoflow.operator import runs

QUEUED = "Queued"
LIMIT_REACHED = "ConcurrencyLimit"

Action = Literal["admit", "queue", "fail"]


@dataclasses.dataclass(frozen=True)
class Limit:
    max_runs: int
    policy: str  # Queue, Forbid or Replace


@dataclasses.dataclass(frozen=True)
class Decision:
    """What becomes of one run under its Workflow's limit."""

    action: Action
    message: str = ""
    replace: tuple[str, ...] = ()  # runs to cancel so that this one can start


def limit_of(spec: meta.JSONDict | None) -> Limit | None:
    """The limit of a Workflow spec (or a run's snapshot); None when runs are unlimited."""
    settings = (spec or {}).get("concurrency") or {}
    max_runs = int(settings.get("maxRuns") or 0)
    if max_runs <= 0:
        return None
    return Limit(max_runs, str(settings.get("policy") or "Queue"))


def run_limit(run: meta.JSONDict) -> Limit | None:
    """The limit a started run is under: its snapshot's."""
    return limit_of((run.get("status") or {}).get("workflowSnapshot"))


# -- the state of a run ---------------------------------------------------------------------


def _uid(run: meta.JSONDict) -> str:
    uid: str = run["metadata"]["uid"]
    return uid


def age(run: meta.JSONDict) -> tuple[str, str]:
    """What orders runs: older first, by creation time then name."""
    meta_ = run["metadata"]
    return (meta_.get("creationTimestamp") or "", meta_["name"])


def _started(run: meta.JSONDict) -> bool:
    return bool((run.get("status") or {}).get("workflowSnapshot"))


def _cancelled(run: meta.JSONDict) -> bool:
    return bool((run.get("spec") or {}).get("cancel"))


def is_queued(run: meta.JSONDict) -> bool:
    """Started, waiting for a slot, without a Job."""
    if not _started(run) or runs.is_finished(run):
        return False
    cond = conditions.get((run.get("status") or {}).get("conditions"), runs.SUCCEEDED) or {}
    return cond.get("reason") == QUEUED


def holds_slot(run: meta.JSONDict) -> bool:
    """Admitted and not finished: it has (or is about to have) a Job."""
    return _started(run) and not runs.is_finished(run) and not is_queued(run)


def waits(run: meta.JSONDict) -> bool:
    """Not admitted yet and going to be: unstarted or queued, not cancelled, not going away."""
    if runs.is_finished(run) or _cancelled(run) or run["metadata"].get("deletionTimestamp"):
        return False
    return not _started(run) or is_queued(run)


def runs_of(listed: Iterable[meta.JSONDict], wf_name: str) -> list[meta.JSONDict]:
    """The runs of workflow ``wf_name`` among ``listed``, each once (the last listing wins)."""
    found: dict[str, meta.JSONDict] = {}
    for run in listed:
        if runs.workflow_name(run) == wf_name:
            found[_uid(run)] = run
    return sorted(found.values(), key=age)


# -- deciding -------------------------------------------------------------------------------


def _occupants(
    run: meta.JSONDict, others: Iterable[meta.JSONDict], admitted: frozenset[str] = frozenset()
) -> tuple[list[meta.JSONDict], list[meta.JSONDict]]:
    """The runs holding a slot and the runs waiting ahead of ``run``, oldest first.

    ``admitted``: uids of runs admitted in this same pass, which hold a slot already.
    """
    me, mine = _uid(run), age(run)
    holding, ahead = [], []
    for other in sorted(others, key=age):
        uid = _uid(other)
        if uid == me:
            continue
        if uid in admitted or holds_slot(other):
            holding.append(other)
        elif waits(other) and age(other) < mine:
            ahead.append(other)
    return holding, ahead


def _names(items: Iterable[meta.JSONDict]) -> str:
    return ", ".join(repr(r["metadata"]["name"]) for r in items)


def _busy(
    holding: list[meta.JSONDict], ahead: list[meta.JSONDict], limit: Limit, wf_name: str
) -> str:
    text = f"{len(holding)} of {limit.max_runs} runs of workflow {wf_name!r} are active"
    if ahead:
        text += f", {len(ahead)} created before this one waiting"
    return text


def decide(run: meta.JSONDict, others: Iterable[meta.JSONDict], limit: Limit) -> Decision:
    """Whether ``run`` starts now, waits, or fails; ``others``: its Workflow's runs."""
    wf_name = runs.workflow_name(run)
    if _cancelled(run):
        # Never admitted: the cancel finishes it without a Job (and it holds no slot).
        return Decision("queue", "cancelled before it was admitted")
    holding, ahead = _occupants(run, others)
    if len(holding) + len(ahead) < limit.max_runs:
        return Decision("admit")
    busy = _busy(holding, ahead, limit, wf_name)
    if limit.policy == "Forbid":
        return Decision("fail", f"{busy} (spec.concurrency.policy Forbid)")
    if limit.policy == "Replace":
        stopping = [r for r in holding if _cancelled(r)]
        replaceable = sorted([r for r in holding if not _cancelled(r)] + ahead, key=age)
        count = max(0, len(holding) + len(ahead) - len(stopping) + 1 - limit.max_runs)
        victims = replaceable[:count]
        going = sorted(stopping + [r for r in victims if holds_slot(r)], key=age)
        parts = [f"replacing run(s) {_names(victims)}"] if victims else []
        if going:
            parts.append(f"starts once {_names(going)} stopped")
        return Decision(
            "queue",
            f"waiting: {'; '.join(parts)} (spec.concurrency.policy Replace)",
            tuple(r["metadata"]["name"] for r in victims),
        )
    return Decision("queue", f"waiting: {busy}")


def admissible(listed: Iterable[meta.JSONDict]) -> list[meta.JSONDict]:
    """The queued runs that fit now, oldest first (each counted as holding a slot for the
    runs after it). Listed runs of one Workflow; each is judged under its own limit."""
    everyone = list(listed)
    admitted: list[meta.JSONDict] = []
    for run in sorted(everyone, key=age):
        if not (is_queued(run) and waits(run)):
            continue
        limit = run_limit(run)
        holding, ahead = _occupants(run, everyone, frozenset(_uid(r) for r in admitted))
        if limit is None or len(holding) + len(ahead) < limit.max_runs:
            admitted.append(run)
    return admitted


# -- the status -----------------------------------------------------------------------------


def apply(run: meta.JSONDict, change: meta.JSONDict, decision: Decision) -> meta.JSONDict:
    """A start status change (``runs.start_status``: Pending) under ``decision``."""
    if not change or change.get("phase") != "Pending" or decision.action == "admit":
        return change
    if decision.action == "fail":  # (with the snapshot, which shows the limit; no Job)
        failed = runs.finished_status(run, "Failed", LIMIT_REACHED, decision.message)
        return {**{k: v for k, v in change.items() if k != "jobName"}, **failed}
    return {**change, **queued(run, decision.message)}


def queued(run: meta.JSONDict, message: str) -> meta.JSONDict:
    """The status of a run waiting for a slot: Pending, reason Queued."""
    status = run.get("status") or {}
    return {
        "phase": "Pending",
        "message": message,
        "conditions": conditions.set_condition(
            status.get("conditions"),
            runs.SUCCEEDED,
            "Unknown",
            QUEUED,
            message,
            run["metadata"].get("generation"),
        ),
    }


def admit(run: meta.JSONDict) -> meta.JSONDict:
    """The status of a queued run given its slot; {} when it is no longer queued (cancelled,
    finished, or admitted already)."""
    if not is_queued(run) or not waits(run):
        return {}
    status = run.get("status") or {}
    return {
        "message": None,  # (a merge patch: removes the waiting message)
        "conditions": conditions.set_condition(
            status.get("conditions"),
            runs.SUCCEEDED,
            "Unknown",
            "Pending",
            runs.WAITING_FOR_RUNNER,
            run["metadata"].get("generation"),
        ),
    }
