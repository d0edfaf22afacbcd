"""Reading an n8n workflow export: JSON with ``nodes`` and ``connections``.

n8n writes one workflow as an object (``Download`` in the editor, ``n8n export:workflow
--id``) and several as a list (``--all``). A node is ``{name, type, typeVersion, position,
parameters, credentials?, disabled?, ...}``; ``connections`` is keyed by the source node's
name, then the connection type (``main``, or ``ai_*`` for AI sub-nodes), then one list per
output index of ``{node, type, index}`` targets. ``load`` checks exactly that much and raises
``NotAnExport`` (naming what is wrong) for anything else.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

STICKY_NOTE = "n8n-nodes-base.stickyNote"


class NotAnExport(ValueError):
    """The document is not an n8n workflow export; the message says why."""


@dataclasses.dataclass(frozen=True)
class Edge:
    """One connection: ``source`` output ``output`` → ``target`` input ``input``."""

    source: str
    output: int
    target: str
    input: int
    kind: str = "main"


@dataclasses.dataclass
class Export:
    """One n8n workflow: its name, nodes by name (in file order) and connections."""

    name: str
    nodes: dict[str, dict[str, Any]]
    edges: list[Edge]
    settings: dict[str, Any]
    tags: list[str]
    sticky_notes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    pinned: list[str] = dataclasses.field(default_factory=list)


def load(data: Any, source: str = "<input>") -> list[Export]:
    """The workflows in an export (an object, a list of them, or JSON text of either)."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise NotAnExport(f"{source}: not JSON ({exc})") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise NotAnExport(f"{source}: an empty list, no workflow in it")
    return [
        _workflow(item, source, i if isinstance(data, list) else None)
        for i, item in enumerate(items)
    ]


def _workflow(data: Any, source: str, index: int | None) -> Export:
    where = source if index is None else f"{source}[{index}]"
    if not isinstance(data, dict):
        raise NotAnExport(f"{where}: an n8n export is a JSON object with nodes and connections")
    nodes = data.get("nodes")
    connections = data.get("connections")
    if not isinstance(nodes, list) or not isinstance(connections, dict):
        missing = [
            k
            for k in ("nodes", "connections")
            if not isinstance(data.get(k), list if k == "nodes" else dict)
        ]
        raise NotAnExport(
            f"{where}: not an n8n workflow export: {' and '.join(missing)} missing or of the "
            "wrong type (nodes is a list, connections an object)"
        )
    by_name: dict[str, dict[str, Any]] = {}
    notes: list[dict[str, Any]] = []
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("name"), str):
            raise NotAnExport(f"{where}: nodes[{i}] has no name")
        if not isinstance(node.get("type"), str):
            raise NotAnExport(f"{where}: node {node['name']!r} has no type")
        if node["type"] == STICKY_NOTE:
            notes.append(node)  # canvas annotations, not part of the flow
            continue
        by_name[node["name"]] = node
    edges: list[Edge] = []
    for src, kinds in connections.items():
        if src not in by_name or not isinstance(kinds, dict):
            continue
        for kind, outputs in kinds.items():
            for out_index, targets in enumerate(outputs or []):
                for target in targets or []:
                    if isinstance(target, dict) and target.get("node") in by_name:
                        edges.append(
                            Edge(src, out_index, target["node"], int(target.get("index", 0)), kind)
                        )
    settings = data.get("settings")
    tags = [t.get("name") if isinstance(t, dict) else str(t) for t in data.get("tags") or []]
    return Export(
        name=str(data.get("name") or "imported"),
        nodes=by_name,
        edges=edges,
        settings=settings if isinstance(settings, dict) else {},
        tags=[t for t in tags if t],
        sticky_notes=notes,
        pinned=sorted(data["pinData"]) if isinstance(data.get("pinData"), dict) else [],
    )
