"""Starting a run in the store before anything runs it: the runner pool's entry point.

``start_run`` writes the run's row (phase ``Pending``) and, for a de-duplicated start, a row
in ``autoflow_deliveries`` keyed by the starter's ``dedupe_key``, in ONE transaction: the
delivery row is inserted first (``ON CONFLICT DO NOTHING``), and the run row only if the
delivery row now names this run. Two starts with one key at once (two gateway replicas, a
redelivery racing the first delivery) therefore leave one run: the second transaction waits
on the key's row (PostgreSQL) or on the single writer (SQLite), inserts nothing, and reads
the first run's id. The run counts as started in the rollups from here, hourly and daily (the
engine's own header, written later, adds nothing again: its run row exists).

``claim_run`` turns ``Pending`` into ``Running`` right before the engine starts (a journal
with a Pending row would read as ended); a run already Running (a worker resuming another
worker's run) stays so. A launcher that executes the run at once in its own process records
it ``Running`` straight away (``phase``) and needs no claim.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

from autoflow.runners.store import records, sql

PENDING = "Pending"

INSERT_DELIVERY = (
    "INSERT INTO autoflow_deliveries (dedupe_key, run_id, at) VALUES (?, ?, ?) "
    "ON CONFLICT (dedupe_key) DO NOTHING"
)
OURS = "EXISTS (SELECT 1 FROM autoflow_deliveries WHERE dedupe_key = ? AND run_id = ?)"
INSERT_SPEC = (
    "INSERT INTO autoflow_specs (spec_hash, workflow, spec, recorded_at) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (spec_hash) DO NOTHING"
)
INSERT_RUN = (
    "INSERT INTO autoflow_runs (run_id, workflow, namespace, spec_hash, trigger, "
    "started_by, phase, started_at, inputs, subject) "
    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE {ours} "
    "ON CONFLICT (run_id) DO NOTHING"
)
FIRST_RUN = "SELECT run_id FROM autoflow_deliveries WHERE dedupe_key = ?"
CLAIM = f"UPDATE autoflow_runs SET phase = 'Running' WHERE run_id = ? AND phase = '{PENDING}'"
UNSTARTED = (
    f"SELECT run_id FROM autoflow_runs WHERE phase IN ('{PENDING}', 'Running') "
    "AND trigger <> 'cli' ORDER BY started_at, run_id"
)


def start_statements(
    *,
    run_id: str,
    workflow: str,
    namespace: str,
    spec_hash: str,
    spec: Mapping[str, Any] | None,
    inputs: Mapping[str, Any],
    trigger: str,
    started_by: str,
    dedupe_key: str | None,
    subject_hash: str | None,
    max_payload: int,
    now: float | None = None,
    phase: str = PENDING,
) -> tuple[list[tuple[str, list[Any]]], int | None, int]:
    """The statements of one start, the index of the delivery insert (None: no key) and
    the index of the run insert (their row counts say what happened)."""
    at = time.time() if now is None else now
    statements: list[tuple[str, list[Any]]] = []
    delivery: int | None = None
    if dedupe_key is not None:
        statements.append((INSERT_DELIVERY, [dedupe_key, run_id, at]))
        delivery = 0
        ours, ours_params = OURS, [dedupe_key, run_id]
    else:
        ours, ours_params = "true", []
    if spec is not None and spec_hash:
        body = json.dumps(dict(spec), separators=(",", ":"), default=str)
        statements.append((INSERT_SPEC, [spec_hash, workflow, body, at]))
    hour = math.floor(at / records.HOUR)
    for grain in sql.GRAINS:
        statements.append(
            (sql.rollup_start(grain, ours), [namespace, workflow, hour, run_id, *ours_params])
        )
    statements.append(
        (
            INSERT_RUN.format(ours=ours),
            [
                run_id,
                workflow,
                namespace,
                spec_hash,
                trigger,
                started_by,
                phase,
                at,
                records.payload(dict(inputs), max_payload),
                subject_hash,
                *ours_params,
            ],
        )
    )
    return statements, delivery, len(statements) - 1
