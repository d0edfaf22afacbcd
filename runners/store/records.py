"""Journal records ⇄ table rows, pure functions shared by both stores.

``to_rows`` turns a run's journal records (``runners.engine.journal``) into the parameter tuples of
the write statements (``sql.py``); ``to_journal`` turns what the tables hold back into records
``journal.replay`` understands, so a run journaled into the store resumes like one journaled
into a file. Payloads (inputs, outputs) are JSON text bounded at the store's
``max_payload``: a larger one is replaced by the same marker the WorkflowRun status uses
(``{"truncated": true, "bytes": N, "preview": ...}``), so a step reading it later sees the
marker, never a silently cut value.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PREVIEW = 1000  # characters of a truncated payload kept as its preview
MAX_TEXT = 8000  # characters of an error or message kept


@dataclasses.dataclass(slots=True)
class Rows:
    """Parameter tuples per write statement; column order as in ``sql.WRITES``."""

    runs: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    starts: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    retries: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    items: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    items_done: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    steps: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    steps_done: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    ends: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)

    def extend(self, other: Rows) -> None:
        for field in dataclasses.fields(self):
            getattr(self, field.name).extend(getattr(other, field.name))


def payload(value: Any, limit: int) -> str | None:
    """JSON text of ``value`` (None stays NULL), or the truncation marker's."""
    if value is None:
        return None
    text = json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)
    size = len(text.encode())
    if size <= limit:
        return text
    marker = {"truncated": True, "bytes": size, "preview": text[:PREVIEW]}
    return json.dumps(marker, separators=(",", ":"), ensure_ascii=False)


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:MAX_TEXT]


def _ms(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    return round((float(end) - float(start)) * 1000, 3)


def to_rows(run_id: str, records: Iterable[Mapping[str, Any]], limit: int) -> Rows:
    """The writes for ``records`` of run ``run_id``. Statements run grouped per table in
    ``sql.WRITES`` order, which gives the same result as the records' own order: attempts
    are keyed by number, and completions only touch attempts still ``Running``."""
    rows = Rows()
    for rec in records:
        kind = rec.get("t")
        if kind == "run":
            rows.runs.append(
                (
                    run_id,
                    str(rec.get("workflow") or ""),
                    str(rec.get("namespace") or ""),
                    str(rec.get("specHash") or ""),
                    str(rec.get("trigger") or "manual"),
                    str(rec.get("startedBy") or ""),
                    float(rec.get("startedAt") or 0.0),
                    payload(rec.get("inputs"), limit),
                )
            )
        elif kind == "start":
            item = int(rec.get("item", -1))
            rows.starts.append((run_id, rec["step"], item, int(rec["attempt"]), rec.get("at")))
        elif kind == "retry":
            item = int(rec.get("item", -1))
            rows.retries.append(
                (_text(rec.get("error")), rec.get("at"), run_id, rec["step"], item, rec["attempt"])
            )
        elif kind == "item":
            rows.items.append(
                (run_id, rec["step"], int(rec["index"]), payload(rec.get("output"), limit))
            )
            rows.items_done.append((rec.get("at"), run_id, rec["step"], int(rec["index"])))
        elif kind == "step":
            started, finished = rec.get("startedAt"), rec.get("finishedAt")
            rows.steps.append(
                (
                    rec["step"],
                    rec["phase"],
                    payload(rec.get("output"), limit),
                    _text(rec.get("error")),
                    int(rec.get("attempts") or 0),
                    started,
                    finished,
                    _ms(started, finished),
                    _text(rec.get("message")) or "",
                    run_id,
                )
            )
            rows.steps_done.append(
                (rec["phase"], _text(rec.get("error")), finished, run_id, rec["step"])
            )
        elif kind == "end":
            at = float(rec.get("at") or 0.0)
            rows.ends.append(
                (
                    rec["phase"],
                    at,
                    at,
                    _text(rec.get("error")),
                    payload(rec.get("outputs"), limit),
                    run_id,
                )
            )
    return rows


def to_journal(
    run: Sequence[Any] | None,
    attempts: Sequence[Sequence[Any]],
    items: Sequence[Sequence[Any]],
    steps: Sequence[Sequence[Any]],
) -> list[dict[str, Any]]:
    """Records for ``journal.replay`` from the rows of ``sql.JOURNAL_*`` (in that order)."""
    if run is None:
        return []
    run_id, workflow, namespace, spec_hash, trigger, started_by, started_at, inputs = run[:8]
    phase, finished_at, error, outputs = run[8:12]
    records: list[dict[str, Any]] = [
        {
            "t": "run",
            "runId": run_id,
            "workflow": workflow,
            "namespace": namespace,
            "specHash": spec_hash,
            "trigger": trigger,
            "startedBy": started_by,
            "inputs": load(inputs) or {},
            "startedAt": started_at,
        }
    ]
    for step, item, attempt, outcome, error_text in attempts:
        rec: dict[str, Any] = {"t": "start", "step": step, "attempt": attempt}
        if item >= 0:
            rec["item"] = item
        records.append(rec)
        if outcome == "Failed":
            records.append({**rec, "t": "retry", "error": error_text})
    for step, index, output in items:
        records.append({"t": "item", "step": step, "index": index, "output": load(output)})
    for step, step_phase, output, step_error, count, started, finished, message in steps:
        records.append(
            {
                "t": "step",
                "step": step,
                "phase": step_phase,
                "output": load(output),
                "error": step_error,
                "attempts": count,
                "startedAt": started,
                "finishedAt": finished,
                "message": message,
            }
        )
    if phase != "Running":
        records.append(
            {
                "t": "end",
                "phase": phase,
                "outputs": load(outputs),
                "error": error,
                "at": finished_at,
            }
        )
    return records
