"""Journal records ⇄ table rows, pure functions shared by both stores.

``to_rows`` turns a run's journal records (``runners.engine.journal``) into the parameter
tuples of the write statements (``sql.py``); ``to_journal`` turns what the tables hold back
into records ``journal.replay`` understands, so a run journaled into the store resumes like one
journaled into a file. Three optional header fields go beyond the engine's: ``subject`` (the
run's data subject, stored only as a keyed hash: ``subject_hash``), ``spec`` (the Workflow spec
the run ran, stored once per spec hash) and ``secretInputs`` (the names of inputs declared
``secret: true``, stored as the redaction marker ``{"redacted": true}``, never their values).
Each record that starts a run or first finishes a run or a step also adds to the rollups
(``rollup_*``, hourly and daily: guarded in SQL, so writing it again adds nothing). Payloads
(inputs, outputs) are JSON text bounded at the store's ``max_payload``: a larger one is
replaced by the same marker the WorkflowRun status uses (``{"truncated": true, "bytes": N,
"preview": ...}``), so a step reading it later sees the marker, never a silently cut value.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from autoflow.runners.definitions import inputs

PREVIEW = 1000  # characters of a truncated payload kept as its preview
MAX_TEXT = 8000  # characters of an error or message kept
HOUR = 3600

# Duration histogram of the rollups: bucket 0 is [0, 1 ms), bucket i (1..240) is
# [2^((i-1)/8), 2^(i/8)) ms, bucket 241 is 2^30 ms (12.4 days) and longer. A percentile read
# from it is the bucket's geometric middle: within 2^(1/16) - 1 = 4.4 % of the true nearest-rank
# value (0.5 ms absolute below 1 ms). -1 counts runs started; -2 finished without a duration.
BUCKETS_PER_DOUBLING = 8
BOUNDS: tuple[float, ...] = tuple(2 ** (i / BUCKETS_PER_DOUBLING) for i in range(241))
STARTED, NO_DURATION = -1, -2
FINISHED_STEP = ("Succeeded", "Failed", "Cancelled")


def bucket(ms: float | None) -> int:
    """The histogram bucket of a duration in milliseconds (the SQL twin: ``sql.bucket_case``)."""
    return NO_DURATION if ms is None else bisect.bisect_right(BOUNDS, ms)


def bucket_value(index: int) -> float:
    """What a percentile falling into bucket ``index`` reports."""
    if index <= 0:
        return 0.5
    if index >= len(BOUNDS):
        return BOUNDS[-1]
    return math.sqrt(BOUNDS[index - 1] * BOUNDS[index])


def percentile(histogram: Mapping[int, int], p: float) -> float | None:
    """Nearest rank over the histogram: the bucket holding the ceil(p·n)-th smallest."""
    n = sum(c for b, c in histogram.items() if b >= 0)
    if n <= 0:
        return None
    rank, seen = max(1, math.ceil(p * n - 1e-9)), 0
    for index in sorted(b for b in histogram if b >= 0):
        seen += histogram[index]
        if seen >= rank:
            return round(bucket_value(index), 3)
    return None  # unreachable: the ranks add up to n


def subject_hash(value: Any, key: bytes) -> str:
    """The keyed hash (HMAC-SHA256) a data subject is stored as; the value is trimmed and
    case-folded first, so ``Ann@Example.com`` and ``ann@example.com `` are one person."""
    text = str(value).strip().casefold()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


class SubjectKeyMissing(ValueError):
    """A run names a data subject, but the store has no key to hash it with."""


# A run the runner pool starts is executed later, by whichever worker claims it, so its
# secret inputs must be in the store for that worker; they are kept there sealed (Fernet:
# AES-128-CBC + HMAC-SHA256) under a key derived from the store's key, in one field of the
# stored inputs, beside the redaction markers that views show.
SEALED = "$sealed"


class SealedInputsUnreadable(ValueError):
    """A run's secret inputs are sealed, and this store has no key (or another one)."""


def _fernet(key: bytes) -> Any:
    import base64

    from cryptography import fernet

    derived = hmac.new(key, b"autoflow: sealed run inputs", hashlib.sha256).digest()
    return fernet.Fernet(base64.urlsafe_b64encode(derived))


def seal_inputs(
    values: Mapping[str, Any], secret: Iterable[str], key: bytes | None
) -> dict[str, Any]:
    """``values`` as stored for a run that is executed later: each of ``secret`` with a value
    replaced by the redaction marker, and all of them sealed together under ``SEALED``.
    Without ``key`` raises ``SubjectKeyMissing`` (nothing secret is stored in the clear)."""
    hidden = {name: values[name] for name in secret if values.get(name) is not None}
    if not hidden:
        return dict(values)
    if not key:
        raise SubjectKeyMissing(sorted(hidden))
    stored = inputs.redact(values, hidden)
    text = json.dumps(hidden, separators=(",", ":"), default=str)
    stored[SEALED] = _fernet(key).encrypt(text.encode()).decode()
    return stored


def unseal_inputs(values: Mapping[str, Any], key: bytes | None) -> dict[str, Any]:
    """The run's inputs as given, the sealed secret ones opened; raises
    ``SealedInputsUnreadable`` when they cannot be."""
    token = values.get(SEALED)
    if not isinstance(token, str):
        return dict(values)
    opened: dict[str, Any] = {k: v for k, v in values.items() if k != SEALED}
    if not key:
        raise SealedInputsUnreadable("no key")
    from cryptography import fernet

    try:
        opened.update(json.loads(_fernet(key).decrypt(token.encode())))
    except fernet.InvalidToken:
        raise SealedInputsUnreadable("another key") from None
    return opened


def shown_inputs(values: Any) -> Any:
    """The run's inputs as views show them: secret ones as the redaction marker only."""
    if isinstance(values, Mapping) and SEALED in values:
        return {k: v for k, v in values.items() if k != SEALED}
    return values


@dataclasses.dataclass(slots=True)
class Rows:
    """Parameter tuples per write statement; column order as in ``sql.WRITES``."""

    specs: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    rollup_starts: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    runs: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    starts: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    retries: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    items: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    items_done: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    rollup_steps: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    steps: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    steps_done: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    rollup_ends: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    ends: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)

    def extend(self, other: Rows) -> None:
        for name in _ROW_FIELDS:
            theirs = getattr(other, name)
            if theirs:  # most records fill one or two of the fields
                getattr(self, name).extend(theirs)

    def dedupe(self) -> None:
        """One rollup row per run (or run and step) in a batch: every row of a statement
        runs before the guarded write it checks, so a repeat would count twice."""
        self.rollup_starts = _first(self.rollup_starts, lambda r: r[3])
        self.rollup_steps = _first(self.rollup_steps, lambda r: (r[4], r[0]))
        self.rollup_ends = _first(self.rollup_ends, lambda r: r[3])


_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(Rows))


def _first(rows: list[tuple[Any, ...]], key: Any) -> list[tuple[Any, ...]]:
    seen: set[Any] = set()
    out = []
    for row in rows:
        if key(row) not in seen:
            seen.add(key(row))
            out.append(row)
    return out


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


def _outcome(phase: str) -> tuple[int, int]:
    return int(phase == "Succeeded"), int(phase == "Failed")


def _redacted(values: Any, secret: Any) -> Any:
    """The run's inputs as stored: those the header's ``secretInputs`` names (inputs
    declared ``secret: true``) replaced by ``inputs.REDACTED``."""
    if not secret or not isinstance(values, Mapping):
        return values
    return inputs.redact(values, [str(name) for name in secret])


def to_rows(
    run_id: str,
    records: Iterable[Mapping[str, Any]],
    limit: int,
    subject_key: bytes | None = None,
) -> Rows:
    """The writes for ``records`` of run ``run_id``. Statements run grouped per table in
    ``sql.WRITES`` order, which gives the same result as the records' own order: attempts
    are keyed by number, and completions only touch attempts still ``Running``. A header
    with a ``subject`` and no ``subject_key`` raises ``SubjectKeyMissing``: the value is
    never stored in the clear."""
    rows = Rows()
    for rec in records:
        kind = rec.get("t")
        if kind == "run":
            workflow = str(rec.get("workflow") or "")
            run_started = float(rec.get("startedAt") or 0.0)
            spec_hash = str(rec.get("specHash") or "")
            subject = rec.get("subject")
            hashed = None
            if subject is not None and str(subject).strip():
                if not subject_key:
                    raise SubjectKeyMissing(run_id)
                hashed = subject_hash(subject, subject_key)
            if rec.get("spec") is not None and spec_hash:
                spec = json.dumps(rec["spec"], separators=(",", ":"), default=str)
                rows.specs.append((spec_hash, workflow, spec, run_started))
            namespace = str(rec.get("namespace") or "")
            hour = math.floor(run_started / HOUR)
            rows.rollup_starts.append((namespace, workflow, hour, run_id))
            rows.runs.append(
                (
                    run_id,
                    workflow,
                    namespace,
                    spec_hash,
                    str(rec.get("trigger") or "manual"),
                    str(rec.get("startedBy") or ""),
                    run_started,
                    payload(_redacted(rec.get("inputs"), rec.get("secretInputs")), limit),
                    hashed,
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
            if rec["phase"] in FINISHED_STEP:
                ok, failed = _outcome(rec["phase"])
                ms = _ms(started, finished)
                rows.rollup_steps.append((rec["step"], ok, failed, bucket(ms), run_id, rec["step"]))
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
            rows.rollup_ends.append((*_outcome(rec["phase"]), at, run_id))
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
