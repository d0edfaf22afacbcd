"""Where a converted node's n8n items are (``Items``), what is known of a placed node
(``Placed``), and the ``Scope`` that translates a node's values: what ``$json``, ``$('X')``
and ``$input`` mean at that node, which steps it reads (added to ``needs``) and what could not
be translated. Also how step ids and resource names are made from n8n names.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from autoflow.webui.importers.n8n import expressions

if typing.TYPE_CHECKING:
    from autoflow.webui.importers.n8n import convert


@dataclasses.dataclass(frozen=True)
class Items:
    """Where a node's n8n items are: one value, or a list of values (see the module doc)."""

    expr: str
    many: bool
    path: str = ""

    def one(self, which: str, in_foreach: bool) -> str:
        if not self.many:
            return f"[{self.expr}{self.path}]" if which == "all" else f"{self.expr}{self.path}"
        if which == "all":
            return self.expr if not self.path else f"[i{self.path} for i in {self.expr}]"
        index = {"first": "0", "last": "-1"}.get(which, "index" if in_foreach else "0")
        return f"{self.expr}[{index}]{self.path}"

    def as_list(self) -> str:
        if self.many:
            return self.expr if not self.path else f"[i{self.path} for i in {self.expr}]"
        return f"[{self.expr}{self.path}]"


@dataclasses.dataclass
class Placed:
    """A node already converted: its step (None for triggers), items and branch outputs."""

    step: str | None
    items: Items | None
    branches: dict[int, str] = dataclasses.field(default_factory=dict)  # single-item branches
    lists: dict[int, Items] = dataclasses.field(default_factory=dict)  # list-splitting outputs


class Scope:
    """Translation at one node: ``$json`` and the nodes it may read (see ``expressions``)."""

    def __init__(
        self, conv: convert.Converter, node: dict[str, Any], current: str | None, foreach: bool
    ) -> None:
        self.conv = conv
        self.node = node
        self._current = current
        self.foreach = foreach
        self.needs: set[str] = set()
        self.notes: list[str] = []
        self.failed: list[str] = []

    def current(self) -> str:
        if self._current is None:
            raise expressions.Unsupported("$json: the node has no input")
        return self._current

    def node_item(self, name: str, which: str) -> str:
        placed = self.conv.placed.get(name)
        if placed is None:
            if name in self.conv.export.nodes:
                raise expressions.Unsupported(f"reads node {name!r}, which does not run before")
            raise expressions.Unsupported(f"reads node {name!r}, which is not in the workflow")
        if placed.items is None:
            raise expressions.Unsupported(f"node {name!r} has no items to read")
        if placed.step:
            self.needs.add(placed.step)
        if placed.items.many and which == "item":
            self.notes.append(f"{name}'s item is read by position (index), as n8n pairs items")
        return placed.items.one(which, self.foreach)

    def input_item(self, which: str) -> str:
        if which == "item":
            return self.current()
        items = self.conv.input_items
        if items is None:
            raise expressions.Unsupported("$input: the node has no input")
        return items.one(which, self.foreach)

    def value(self, value: Any, field: str) -> Any:
        out = expressions.translate_value(value, self)
        self._record(out, field)
        return out.value

    def expr(self, value: Any, field: str) -> str:
        out = expressions.translate_value(value, self)
        self._record(out, field)
        if out.expression is None:
            raise expressions.Unsupported(f"{field}: {out.failed}")
        return out.expression

    def note(self, text: str) -> None:
        self.notes.append(text)

    def _record(self, out: expressions.Translated, field: str) -> None:
        self.notes += out.notes
        if out.failed:
            self.failed.append(f"{field}: kept verbatim, not converted ({out.failed})")


def step_id(name: str, taken: set[str]) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    base = "".join(w[:1].upper() + w[1:] for w in words)
    base = base[:1].lower() + base[1:]
    if not base or not base[0].isalpha():
        base = "step" + base[:1].upper() + base[1:]
    base = base[:58]
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}{n}", n + 1
    taken.add(candidate)
    return candidate


def resource_name(name: str, limit: int = 53) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:limit].strip("-")
    return slug or "imported"
