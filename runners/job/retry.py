"""Retry from a failed step in Job mode: a WorkflowRun with ``spec.retryOf`` starts after the
succeeded main steps of the run it names, taking their outputs from the run store.

The runner's first pod asks this module for the records to start from, before the engine
runs anything::

    spec.retryOf (the failed run's id in the store: its WorkflowRun's uid)
        ─► Store.journal(old run) ─► checked: same namespace and Workflow, Failed, same
           spec hash, same inputs ─► its succeeded main steps (``engine.journal.reusable``)
        ─► journaled as this run's own, after its header ─► the engine resumes after them

Whatever does not hold is ``RetryRefused``, whose message says why and what to do instead
(rerun); the runner records it as the run's failure, so ``kubectl get workflowrun`` and the
web UI show it. A run id of another namespace reads as unknown: a person who may create runs
in one namespace learns nothing of another's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoflow.crds import errors, run
from autoflow.runners import store
from autoflow.runners.definitions import inputs as inputs_mod
from autoflow.runners.engine import journal as journal_mod
from autoflow.runners.job import payloads

REFUSED = run.RETRY_REFUSED  # how a refusal's message starts (the operator's reason)


class RetryRefused(errors.RunError):
    """The run named by ``spec.retryOf`` cannot be retried as this run."""


async def reusable_steps(
    environ: Mapping[str, str],
    retry_of: str,
    *,
    namespace: str,
    workflow: str,
    spec_hash: str,
    values: Mapping[str, Any],
    main: list[str],
) -> list[dict[str, Any]]:
    """The failed run's succeeded main steps, as this run's journal records; or
    ``RetryRefused``. ``values`` are this run's inputs (resolved), ``main`` its main steps."""
    url = environ.get(payloads.STORE_ENV, "").strip()
    if not url:
        raise RetryRefused(
            f"{REFUSED} {retry_of!r}: spec.retryOf needs the run store to read its finished "
            "steps, and none is configured for this namespace (the operator's store Secret); "
            "rerun it instead"
        )
    opened = await store.open_store(url)
    try:
        records = await opened.journal(retry_of)
    finally:
        await opened.aclose()
    return check(records, retry_of, namespace, workflow, spec_hash, values, main)


def check(
    records: list[dict[str, Any]],
    retry_of: str,
    namespace: str,
    workflow: str,
    spec_hash: str,
    values: Mapping[str, Any],
    main: list[str],
) -> list[dict[str, Any]]:
    """``reusable_steps`` over the failed run's journal as the store gave it (pure)."""
    header = records[0] if records and records[0].get("t") == "run" else None
    if header is None or header.get("namespace") != namespace or header.get("workflow") != workflow:
        raise RetryRefused(
            f"{REFUSED} {retry_of!r}: the run store has no run of that id of Workflow "
            f"{workflow!r} in namespace {namespace!r}"
        )
    end = next((r for r in records if r.get("t") == "end"), None)
    phase = "Running" if end is None else str(end.get("phase"))
    if phase != "Failed":
        raise RetryRefused(f"{REFUSED} {retry_of!r}: it is {phase}; only a failed run is retried")
    if header.get("specHash") != spec_hash:
        raise RetryRefused(
            f"{REFUSED} {retry_of!r}: it ran an earlier version of Workflow {workflow!r}, so "
            "its steps' outputs cannot be reused; rerun it instead"
        )
    given = header.get("inputs") or {}
    differ = sorted(
        name
        for name in set(given) | set(values)
        if not inputs_mod.is_redacted(given.get(name)) and given.get(name) != values.get(name)
    )
    if differ:
        raise RetryRefused(
            f"{REFUSED} {retry_of!r}: its inputs differ from this run's ({', '.join(differ)}); "
            "a retry runs with the inputs of the run it retries"
        )
    return [
        {**r, "message": f"reused from run {retry_of}"} for r in journal_mod.reusable(records, main)
    ]
