"""The import report: what was converted, what approximated (and why), what not converted.

One ``Entry`` per n8n node, plus entries for expressions kept verbatim and for the Workflow as a
whole (validation). ``text`` is what ``autoflow import n8n`` prints; ``as_json`` what ``-o json``
and the web API return.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

Status = Literal["converted", "approximated", "not converted"]


@dataclasses.dataclass
class Entry:
    """One node of the export: what it became and what the reader must know about it."""

    node: str
    type: str
    type_version: float | int | None
    status: Status
    step: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    todo: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "node": self.node,
            "type": self.type,
            "typeVersion": self.type_version,
            "status": self.status,
            "step": self.step,
            "notes": list(self.notes),
        }
        if self.todo:
            out["todo"] = self.todo
        return out


@dataclasses.dataclass
class Report:
    """Every node's entry, the documents written, and whether the result validates."""

    source: str
    workflow: str
    entries: list[Entry] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    integrations: list[str] = dataclasses.field(default_factory=list)
    schedules: list[str] = dataclasses.field(default_factory=list)

    def add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        return entry

    def of(self, status: Status) -> list[Entry]:
        return [e for e in self.entries if e.status == status]

    @property
    def valid(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "workflow": self.workflow,
            "valid": self.valid,
            "counts": {s: len(self.of(s)) for s in ("converted", "approximated", "not converted")},
            "nodes": [e.as_json() for e in self.entries],
            "notes": list(self.notes),
            "integrations": list(self.integrations),
            "schedules": list(self.schedules),
            "problems": list(self.problems),
        }

    def text(self) -> str:
        counts = ", ".join(
            f"{len(self.of(s))} {s}" for s in ("converted", "approximated", "not converted")
        )
        lines = [f"{self.source} → Workflow {self.workflow}: {counts}"]
        for status in ("converted", "approximated", "not converted"):
            entries = self.of(status)
            if not entries:
                continue
            lines.append(f"  {status}:")
            for e in entries:
                step = f" → step {e.step}" if e.step else ""
                lines.append(f"    {e.node} ({e.type} v{e.type_version}){step}")
                lines += [f"      - {n}" for n in e.notes]
                if e.todo:
                    lines.append(f"      to do: {e.todo}")
        if self.integrations:
            lines.append(f"  integrations (stubs, no secrets): {', '.join(self.integrations)}")
        if self.schedules:
            lines.append(f"  schedules: {', '.join(self.schedules)}")
        lines += [f"  note: {n}" for n in self.notes]
        if self.problems:
            lines.append("  the result does not validate:")
            lines += [f"    {p}" for p in self.problems]
        else:
            lines.append("  the result validates (autoflow validate)")
        return "\n".join(lines)
