"""The run journal: every step's result is recorded before anything depends on it.

A journal is an append-only list of records. The engine appends; when a run starts with a
journal that already holds records, ``replay`` turns them into the state to resume from:
finished steps are not run again, finished foreach items are not run again, and an attempt
that started but never finished is run again with the same attempt number, so the
idempotency key a remote system sees is the same as before the crash.

Record kinds (``t``): ``run`` (header: run id, workflow, spec hash, inputs), ``start`` (an
attempt began), ``retry`` (an attempt failed and will be retried), ``item`` (a foreach item
finished), ``step`` (a step finished: phase, output, error), ``end`` (the run finished).

Implementations: ``MemoryJournal`` (``autoflow run`` without ``--journal``), ``FileJournal``
(JSON lines, one ``write`` per record so a killed process leaves at most a torn last line,
which replay ignores). The WorkflowRun-status and Postgres journals implement the same
protocol in the Job and pool runners.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Protocol


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
        try:
            with open(self.path, "rb") as fh:
                lines = fh.read().split(b"\n")
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                break  # a torn last write of a killed process; nothing after it is trusted
        return records

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
        except ValueError:
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
    steps: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    items: dict[str, dict[int, Any]] = dataclasses.field(default_factory=dict)
    # (step, item index or -1) → (attempt number, whether that attempt is known to have failed)
    attempts: dict[tuple[str, int], tuple[int, bool]] = dataclasses.field(default_factory=dict)
    end: dict[str, Any] | None = None

    def next_attempt(self, step: str, item: int = -1) -> int:
        """The attempt to run now: the unfinished one again, or the one after a failure."""
        attempt, failed = self.attempts.get((step, item), (0, True))
        return attempt + 1 if failed else attempt


def replay(records: list[dict[str, Any]]) -> Replay:
    state = Replay()
    for rec in records:
        kind = rec.get("t")
        if kind == "run":
            state.header = rec
        elif kind == "start":
            state.attempts[(rec["step"], rec.get("item", -1))] = (rec["attempt"], False)
        elif kind == "retry":
            state.attempts[(rec["step"], rec.get("item", -1))] = (rec["attempt"], True)
        elif kind == "item":
            state.items.setdefault(rec["step"], {})[rec["index"]] = rec.get("output")
        elif kind == "step":
            state.steps[rec["step"]] = rec
        elif kind == "end":
            state.end = rec
    return state
