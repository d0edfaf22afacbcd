"""The run journal: every step's result is recorded before anything depends on it.

A journal is an append-only list of records. The engine appends; when a run starts with a
journal that already holds records, ``replay`` turns them into the state to resume from:
finished steps are not run again, finished foreach items are not run again, and an attempt
that started but never finished is run again with the same attempt number, so the
idempotency key a remote system sees is the same as before the crash.

Record kinds (``t``): ``run`` (header: run id, workflow, spec hash, inputs), ``start`` (an
attempt began), ``retry`` (an attempt failed and will be retried after ``delay`` seconds,
which a run resumed in that wait waits again), ``item`` (a foreach item
finished), ``step`` (a step finished: phase, output, error), ``end`` (the run finished).
The order of the records is part of what they say: the engine decides whether a step may
start at the moment the last step it needs is recorded, so replaying the records in order
makes the same decisions again (``runners.engine``).

A journal is input like any other: every record is checked against its kind's model, the
header comes first and once, nothing follows the end, and the run id is a safe name (it
becomes a file name). A journal that breaks any of this is refused as a whole, before any step
runs, by an ``errors.RunError`` naming the file and line (or the record's position); only
a torn last line, what a crash in the middle of a write leaves, is tolerated.

Implementations: ``MemoryJournal`` (``autoflow run`` without ``--journal``), ``FileJournal``
(JSON lines, one ``write`` per record so a killed process leaves at most a torn last line,
which replay ignores). The WorkflowRun-status and Postgres journals implement the same
protocol in the Job and pool runners.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Protocol

import pydantic

from autoflow.crds import errors

# A run id becomes a file name (``DIR/<run id>.jsonl``) and appears in object names and
# idempotency keys: lower-case letters, digits, ``.``, ``_`` and ``-``, starting with a letter
# or digit, never ``..``, at most 200 characters (a file name has room for 255 bytes).
RUN_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,199}$"
RUN_ID_MAX_LENGTH = 200
_RUN_ID = re.compile(RUN_ID_PATTERN)


def is_safe_run_id(run_id: str) -> bool:
    """Whether ``run_id`` can be used as a file or object name as it is."""
    return bool(_RUN_ID.match(run_id)) and ".." not in run_id


def check_run_id(run_id: str) -> str:
    if not is_safe_run_id(run_id):
        raise ValueError(
            f"run id {run_id[:80]!r} is not a safe name (lower-case letters, digits, '.', '_' "
            f"and '-', starting with a letter or digit, no '..', at most {RUN_ID_MAX_LENGTH} "
            "characters)"
        )
    return run_id


# --- the records -------------------------------------------------------------------------------


class _Record(pydantic.BaseModel):
    # Strict: a journal is written by the engine, so "1" where a number belongs is damage.
    # Unknown fields are kept and ignored, so an older runner can read a newer journal.
    model_config = pydantic.ConfigDict(strict=True, extra="allow", populate_by_name=True)


_Step = Annotated[str, pydantic.Field(min_length=1)]
_Time = float | None


class RunRecord(_Record):
    t: Literal["run"]
    run_id: Annotated[str, pydantic.AfterValidator(check_run_id)] = pydantic.Field(alias="runId")
    workflow: str
    spec_hash: str = pydantic.Field(alias="specHash")
    inputs: dict[str, Any]
    started_at: _Time = pydantic.Field(default=None, alias="startedAt")


class StartRecord(_Record):
    t: Literal["start"]
    step: _Step
    attempt: Annotated[int, pydantic.Field(ge=1)]
    item: Annotated[int, pydantic.Field(ge=0)] | None = None


class RetryRecord(_Record):
    t: Literal["retry"]
    step: _Step
    attempt: Annotated[int, pydantic.Field(ge=1)]
    item: Annotated[int, pydantic.Field(ge=0)] | None = None
    error: str | None = None
    delay: Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False)] = 0.0  # before the next


class ItemRecord(_Record):
    t: Literal["item"]
    step: _Step
    index: Annotated[int, pydantic.Field(ge=0)]
    output: Any = None


class StepRecord(_Record):
    t: Literal["step"]
    step: _Step
    phase: Literal["Succeeded", "Failed", "Skipped", "Cancelled"]
    output: Any = None
    error: str | None = None
    attempts: Annotated[int, pydantic.Field(ge=0)] = 0
    started_at: _Time = pydantic.Field(default=None, alias="startedAt")
    finished_at: _Time = pydantic.Field(default=None, alias="finishedAt")
    message: str = ""


class EndRecord(_Record):
    t: Literal["end"]
    phase: Literal["Succeeded", "Failed", "Cancelled"]
    outputs: Any = None
    error: str | None = None
    at: _Time = None


_ANY_RECORD: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(
    Annotated[
        RunRecord | StartRecord | RetryRecord | ItemRecord | StepRecord | EndRecord,
        pydantic.Field(discriminator="t"),
    ]
)
_KINDS = ("run", "start", "retry", "item", "step", "end")


def _problem(record: Any) -> str | None:
    """What is wrong with one record, in a sentence; None when it is a record as written."""
    if not isinstance(record, dict):
        return f"a journal record is a JSON object; got {type(record).__name__}"
    kind = record.get("t")
    if kind not in _KINDS:
        return f"unknown record kind {str(kind)[:40]!r} (field 't'; kinds: {', '.join(_KINDS)})"
    try:
        _ANY_RECORD.validate_python(record)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"][1:]) or "t"
        if first["type"] == "value_error":
            text = str(first.get("ctx", {}).get("error", first["msg"]))
        else:
            text = first["msg"]
        return f"{kind!r} record: field {field!r}: {text}"
    return None


def check(records: Iterable[tuple[int | None, Any]], where: errors.Where) -> list[dict[str, Any]]:
    """The records, each checked, in an order a run can have written them.

    ``records`` are (line, record) pairs; the line goes into the error (None: the position
    in the list is named instead). Raises ``errors.RunError`` at the first problem.
    """
    checked: list[dict[str, Any]] = []
    finished: dict[str, str] = {}  # step → where its first step record is
    for n, (line, record) in enumerate(records, 1):
        label = f"line {line}" if line is not None else f"record {n}"
        problem = _problem(record)
        if problem is None:
            problem = _out_of_place(record, checked, finished)
        if problem is not None:
            at = where.replace(line=line) if line is not None else where
            prefix = "" if line is not None else f"{label}: "
            raise errors.RunError(f"corrupt journal: {prefix}{problem}", at)
        if record["t"] == "step":
            finished[record["step"]] = label
        checked.append(record)
    return checked


def _out_of_place(
    record: dict[str, Any], before: list[dict[str, Any]], finished: dict[str, str]
) -> str | None:
    """What makes a well-formed record impossible where it stands."""
    kind = record["t"]
    if not before and kind != "run":
        return f"the first record must be the run header ('t': 'run'); got {kind!r}"
    if before and kind == "run":
        return "a second run header; a journal holds one run"
    if before and before[-1]["t"] == "end":
        return f"a {kind!r} record after the run's end"
    if kind == "step" and record["step"] in finished:
        return f"step {record['step']!r} finished twice (first at {finished[record['step']]})"
    return None


class Journal(Protocol):
    """``append`` is synchronous and cheap; a journal that writes remotely (the WorkflowRun
    status) buffers there and also defines ``async def flush()``, which the engine awaits
    after each record that something will depend on (run header, step, item, end)."""

    def read(self) -> list[dict[str, Any]]: ...

    def append(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class MemoryJournal:
    def __init__(self, records: list[dict[str, Any]] | None = None) -> None:
        self.records: list[dict[str, Any]] = list(records or [])

    def read(self) -> list[dict[str, Any]]:
        return list(self.records)

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


class FileJournal:
    """JSON lines in a file. ``durable`` adds an fsync per record (survives power loss)."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False) -> None:
        self.path = os.fspath(path)
        self.durable = durable
        self._fd: int | None = None

    def read(self) -> list[dict[str, Any]]:
        """The records, each checked; raises ``errors.RunError`` naming the file and line of
        the first one that is damaged. Only the part after the last newline may be torn."""
        try:
            with open(self.path, "rb") as fh:
                lines = fh.read().split(b"\n")
        except FileNotFoundError:
            return []
        except OSError as exc:  # a directory in its place, no permission
            raise errors.RunError(
                f"cannot read the journal: {exc.strerror}", errors.Where(file=self.path)
            ) from None
        parsed: list[tuple[int | None, Any]] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                parsed.append((number, json.loads(line)))
            except (ValueError, RecursionError):
                if number == len(lines):
                    break  # a torn last write of a killed process: it never counted
                raise errors.RunError(
                    "corrupt journal: the line is not a JSON record (only a torn last line, "
                    "what a crash in the middle of a write leaves, is skipped)",
                    errors.Where(file=self.path, line=number),
                ) from None
        return check(parsed, errors.Where(file=self.path))

    def append(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            self._end_torn_line(self._fd)
        data = json.dumps(record, separators=(",", ":"), default=str).encode() + b"\n"
        os.write(self._fd, data)
        if self.durable:
            os.fsync(self._fd)

    def _end_torn_line(self, fd: int) -> None:
        """Records appended after a torn last line would be glued to it and lost on read."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        with open(self.path, "rb") as fh:
            data = fh.read()
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])
        except (ValueError, RecursionError):
            os.ftruncate(fd, start)  # a torn write: read() already ignored it
        else:
            os.write(fd, b"\n")  # a whole record that lost only its newline, as read() saw it

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclasses.dataclass
class Replay:
    """What a journal says about a run so far."""

    header: dict[str, Any] | None = None
    # Finished steps in the order they were recorded (the engine replays them in this order).
    steps: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    items: dict[str, dict[int, Any]] = dataclasses.field(default_factory=dict)
    # (step, item index or -1) → (attempt number, whether that attempt is known to have failed)
    attempts: dict[tuple[str, int], tuple[int, bool]] = dataclasses.field(default_factory=dict)
    # (step, item index or -1) → seconds to wait before the next attempt, when the journal
    # ends in that wait
    retry_delays: dict[tuple[str, int], float] = dataclasses.field(default_factory=dict)
    end: dict[str, Any] | None = None

    def next_attempt(self, step: str, item: int = -1) -> int:
        """The attempt to run now: the unfinished one again, or the one after a failure."""
        attempt, failed = self.attempts.get((step, item), (0, True))
        return attempt + 1 if failed else attempt


def replay(records: list[dict[str, Any]]) -> Replay:
    """The state the records describe; raises ``errors.RunError`` if they are damaged."""
    state = Replay()
    for rec in check(((None, r) for r in records), errors.Where()):
        kind = rec["t"]
        if kind == "run":
            state.header = rec
        elif kind in ("start", "retry"):
            item = rec.get("item")
            key = (rec["step"], -1 if item is None else item)
            state.attempts[key] = (rec["attempt"], kind == "retry")
            if kind == "retry":
                state.retry_delays[key] = rec.get("delay") or 0.0
            else:
                state.retry_delays.pop(key, None)
        elif kind == "item":
            state.items.setdefault(rec["step"], {})[rec["index"]] = rec.get("output")
        elif kind == "step":
            state.steps[rec["step"]] = rec
        elif kind == "end":
            state.end = rec
    return state


def reusable(records: Iterable[dict[str, Any]], main: Iterable[str]) -> list[dict[str, Any]]:
    """The ``step`` records of a failed run that a retry of it takes as done, in their order:
    its succeeded ``main`` steps. A skipped step is decided again (it may have been skipped
    because the failed step stopped the run); ``onError`` and ``finally`` steps run again at
    the retry's own end."""
    steps = set(main)
    return [
        dict(r)
        for r in records
        if r.get("t") == "step" and r.get("phase") == "Succeeded" and r.get("step") in steps
    ]
