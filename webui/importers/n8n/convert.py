"""One n8n workflow → an Autoflow Workflow (+ Integration stubs, + Schedules) and a report.

The nodes are visited in dependency order (connections form the DAG; the edge closing a
Split In Batches loop is dropped, any other cycle is reported). Each node becomes one step,
and carries an ``Items`` value saying where its n8n items are in Autoflow terms:

- one item (``many=False``): ``$json`` is ``<expr><path>``, e.g. ``steps.fetch.output.body``;
- a list of items (``many=True``): the next node runs once per item (``foreach: <expr>``) and
  ``$json`` is ``item<path>``, just as n8n runs a node once per incoming item.

IF, Filter and Switch decide per item too: after one item they become ``core.condition`` /
``core.switch`` and the branches get ``if:``; after a list they become a ``core.transform``
that splits the list (``{'true': [...], 'false': [...]}``). Merge joins lists; Split In
Batches becomes the list its loop body runs ``foreach`` over.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import Any

from autoflow.webui.importers.n8n import (
    catalog,
    control,
    export,
    expressions,
    nodes,
    services,
    triggers,
)
from autoflow.webui.importers.n8n.report import Entry, Report
from autoflow.webui.importers.n8n.scope import Items, Placed, Scope, resource_name, step_id

BASE = "n8n-nodes-base."
IF_TYPES = control.IF_TYPES
SWITCH = BASE + "switch"
MERGE = BASE + "merge"
BATCHES = BASE + "splitInBatches"
RESPOND = BASE + "respondToWebhook"
NOOP = BASE + "noOp"
LANGCHAIN = "@n8n/n8n-nodes-langchain."
CODE_TYPES = {
    BASE + "code": "jsCode",
    BASE + "function": "functionCode",
    BASE + "functionItem": "functionCode",
}
API_VERSION = "autoflow.dev/v1alpha1"


@dataclasses.dataclass
class Result:
    """The converted documents, their YAML text and the report."""

    name: str
    documents: list[dict[str, Any]]
    yaml: str
    report: Report


class Converter:
    """Converts one ``export.Export``; ``run`` returns the ``Result``."""

    def __init__(self, wf: export.Export, source: str, name: str | None = None) -> None:
        self.export = wf
        self.name = resource_name(name or wf.name)
        self.report = Report(source=source, workflow=self.name)
        self.placed: dict[str, Placed] = {}
        self.steps: list[dict[str, Any]] = []
        self.comments: dict[str, list[str]] = {}
        self.ids: set[str] = set()
        self.inputs: dict[str, Any] = {}
        self.triggers: list[dict[str, Any]] = []
        self.schedules: list[dict[str, Any]] = []
        self.integrations: dict[str, dict[str, Any]] = {}
        self.responders: list[str] = []
        self.sync_webhooks: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.last_items: Items | None = None
        self.input_items: Items | None = None
        self.loop_ends: dict[str, list[str]] = {}

    # -- the graph --------------------------------------------------------------------------

    def order(self) -> tuple[list[str], list[export.Edge]]:
        """Node names in dependency order, and the edges kept (main connections only)."""
        nodes_ = self.export.nodes
        edges: list[export.Edge] = []
        for e in self.export.edges:
            if e.kind != "main":
                self.report.notes.append(
                    f"the {e.kind} connection {e.source} → {e.target} (an AI sub-node) is not "
                    "converted"
                )
                continue
            edges.append(e)
        # The edge back into Split In Batches closes its loop; the loop becomes a foreach.
        kept: list[export.Edge] = []
        for e in edges:
            if nodes_[e.target].get("type") == BATCHES and _reaches(edges, e.target, e.source):
                self.loop_ends.setdefault(e.target, []).append(e.source)
                continue
            kept.append(e)
        order_edges = list(kept)
        for batch, ends in self.loop_ends.items():
            done = _done_output(nodes_[batch])
            for e in kept:
                if e.source == batch and e.output == done:
                    order_edges += [export.Edge(end, 0, e.target, 0, "order") for end in ends]
        pos = {n: _position(nodes_[n]) for n in nodes_}
        incoming = {n: 0 for n in nodes_}
        for e in order_edges:
            incoming[e.target] += 1
        ready = [(pos[n], i, n) for i, n in enumerate(nodes_) if incoming[n] == 0]
        heapq.heapify(ready)
        out: list[str] = []
        index = {n: i for i, n in enumerate(nodes_)}
        while ready:
            _, _, n = heapq.heappop(ready)
            out.append(n)
            for e in order_edges:
                if e.source == n:
                    incoming[e.target] -= 1
                    if incoming[e.target] == 0:
                        heapq.heappush(ready, (pos[e.target], index[e.target], e.target))
        cyclic = [n for n in nodes_ if n not in out]
        if cyclic:
            self.report.notes.append(
                f"the connections between {', '.join(cyclic)} form a loop, which an Autoflow "
                "DAG cannot have: those connections are dropped"
            )
            out += cyclic
            kept = [e for e in kept if e.source not in cyclic or e.target not in cyclic]
        return out, kept

    # -- conversion -------------------------------------------------------------------------

    def run(self) -> Result:
        self._workflow_notes()
        names, edges = self.order()
        for name in names:
            node = self.export.nodes[name]
            incoming = sorted(
                (e for e in edges if e.target == name),
                key=lambda e: (e.input, names.index(e.source)),
            )
            marks = (len(self.report.entries), len(self.steps), len(self.triggers), set(self.ids))
            try:
                if triggers.is_trigger(str(node.get("type"))):
                    self.trigger(node)
                else:
                    self.step(node, incoming)
            except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
                # Parameters not in the shape this node type stores: say so, convert the rest.
                self._unreadable(node, incoming, marks, exc)
        if not self.steps:
            self.steps.append({"id": "nothing", "uses": "core.noop"})
            self.report.notes.append("the workflow has no nodes besides its triggers")
        from autoflow.webui.importers.n8n import render

        docs = render.documents(self)
        text = render.yaml_text(self, docs)
        self.report.problems = render.validate(text)
        return Result(self.name, docs, render.yaml_text(self, docs), self.report)

    def trigger(self, node: dict[str, Any]) -> None:
        kind = str(node.get("type"))
        name = str(node["name"])
        entry = self.report.add(Entry(name, kind, node.get("typeVersion"), "converted"))
        items = Items("inputs", False)
        if kind == triggers.WEBHOOK:
            path, notes = triggers.webhook_path(node)
            credential = _credential(node)
            hook, auth_notes = triggers.webhook(
                node, path, resource_name(credential[1], 60) if credential else None
            )
            self.triggers.append({"webhook": hook})
            notes += auth_notes
            if hook.get("auth", {}).get("none") and len(notes) == 1:
                notes = []  # n8n's own default: nothing was changed
            self.sync_webhooks.append((hook, node))
            for key in ("body", "headers", "query", "params"):
                self.inputs.setdefault(key, {"type": "object", "default": {}})
            entry.notes.append(
                f"webhook trigger at path {path!r}; the request's body, headers and query are the "
                "run's inputs (n8n's $json.body is inputs.body)"
            )
            entry.notes += notes
            if notes:
                entry.status = "approximated"
        elif kind in (triggers.SCHEDULE, triggers.CRON, triggers.INTERVAL):
            # n8n's schedule item is {timestamp, ...}: the fire time, here the time it is read.
            items = Items("{'timestamp': now()}", False)
            crons, notes = triggers.cron_lines(node)
            timezone = self.export.settings.get("timezone")
            for cron in crons:
                n = len(self.schedules) + 1
                sname = f"{self.name}-schedule" + (f"-{n}" if n > 1 else "")
                self.schedules.append(
                    {
                        "apiVersion": API_VERSION,
                        "kind": "Schedule",
                        "metadata": {"name": sname},
                        "spec": {
                            "cron": cron,
                            "timezone": timezone or "UTC",
                            "workflowRef": {"name": self.name},
                        },
                    }
                )
                entry.notes.append(f"Schedule {sname}: {cron!r}")
                self.report.schedules.append(sname)
            if not timezone:
                notes.append("n8n uses the instance's time zone (GENERIC_TIMEZONE); UTC here")
            entry.notes += notes
            if notes or not crons:
                entry.status = "approximated"
        elif kind in triggers.MANUAL:
            items = Items("{}", False)
            entry.notes.append("manual: start runs with autoflow run / the UI")
        else:
            path = resource_name(name)
            hook, auth_notes = triggers.webhook({"parameters": {}}, path, None)
            self.triggers.append({"webhook": hook})
            entry.notes += auth_notes
            for key in ("body", "headers", "query"):
                self.inputs.setdefault(key, {"type": "object", "default": {}})
            entry.status = "approximated"
            entry.notes.append(
                f"{kind} registers itself with the service in n8n; here it is a webhook trigger at "
                f"{path!r}"
            )
            entry.todo = "point the service's webhook at the gateway URL of this trigger"
        self.placed[name] = Placed(None, items)

    def _workflow_notes(self) -> None:
        """What the export holds besides the flow, said in the report."""
        wf = self.export
        for sticky in wf.sticky_notes:
            text = str((sticky.get("parameters") or {}).get("content", "")).strip()
            short = " ".join(text.split())[:120]
            self.report.notes.append(f"sticky note {sticky.get('name')!r} left out: {short!r}")
        if wf.pinned:
            self.report.notes.append(
                f"pinned test data of {', '.join(wf.pinned)} is not converted (runs read live data)"
            )
        if wf.settings.get("errorWorkflow"):
            self.report.notes.append(
                "the error workflow setting is not converted: add onError steps instead"
            )

    def _unreadable(
        self,
        node: dict[str, Any],
        incoming: list[export.Edge],
        marks: tuple[int, int, int, set[str]],
        exc: Exception,
    ) -> None:
        """A placeholder for a node whose parameters could not be read (the export is damaged
        or from an n8n version the importer does not know)."""
        entries, steps, hooks, ids = marks
        del self.report.entries[entries:], self.steps[steps:], self.triggers[hooks:]
        self.ids = ids
        name = str(node.get("name"))
        kind = str(node.get("type"))
        why = (
            f"its parameters are not in the shape {kind} v{node.get('typeVersion')} stores "
            f"({type(exc).__name__}: {exc})"
        )
        if triggers.is_trigger(kind):
            self.report.add(
                Entry(
                    name,
                    kind,
                    node.get("typeVersion"),
                    "not converted",
                    None,
                    [why],
                    "add the trigger by hand",
                )
            )
            self.placed[name] = Placed(None, Items("inputs", False))
            return
        sid = step_id(name, self.ids)
        mapped = nodes.placeholder(node, why, "write this step by hand")
        needs = [
            p.step
            for e in incoming
            if (p := self.placed.get(e.source)) is not None and p.step is not None
        ]
        self.steps.append(
            {
                "id": sid,
                "name": name[:253],
                "uses": mapped.uses,
                "needs": list(dict.fromkeys(needs)),
                "with": mapped.with_,
            }
        )
        self.comments[sid] = mapped.comment
        self.report.add(
            Entry(
                name, kind, node.get("typeVersion"), "not converted", sid, mapped.notes, mapped.todo
            )
        )
        self.placed[name] = Placed(sid, Items(f"steps.{sid}.output", False))

    def _inputs_of(
        self, incoming: list[export.Edge]
    ) -> tuple[Items | None, list[str], list[str], list[tuple[Items, str]]]:
        """(primary items, needs, delivery conditions, every (items, delivered) per edge)."""
        needs: list[str] = []
        conds: list[str] = []
        per_edge: list[tuple[Items, str]] = []
        primary: Items | None = None
        for e in incoming:
            src = self.placed.get(e.source)
            if src is None:
                continue
            items = src.items
            cond = "true"
            if src.step:
                needs.append(src.step)
                cond = f"steps.{src.step}.status == 'Succeeded'"
            if e.output in src.branches:
                cond = src.branches[e.output]
            elif e.output in src.lists:
                items = src.lists[e.output]
            if self.export.nodes[e.source].get("type") == BATCHES and e.output == _done_output(
                self.export.nodes[e.source]
            ):
                ends = [
                    self.placed[n] for n in self.loop_ends.get(e.source, []) if n in self.placed
                ]
                for end in ends:
                    if end.step:
                        needs.append(end.step)
                if ends and ends[0].items is not None:
                    items = ends[0].items
            if items is None:
                continue
            primary = primary or items
            conds.append(cond)
            per_edge.append((items, cond))
        return primary, list(dict.fromkeys(needs)), conds, per_edge

    def step(self, node: dict[str, Any], incoming: list[export.Edge]) -> None:
        name = str(node["name"])
        kind = str(node.get("type"))
        sid = step_id(name, self.ids)
        entry = self.report.add(Entry(name, kind, node.get("typeVersion"), "converted", sid))
        primary, needs, conds, per_edge = self._inputs_of(incoming)
        self.input_items = primary
        aggregate = kind in (*IF_TYPES, SWITCH, MERGE, BATCHES, RESPOND) or kind in CODE_TYPES
        once = bool(node.get("executeOnce"))
        foreach = bool(primary and primary.many and not aggregate and not once)
        current: str | None = None
        if primary is not None:
            if foreach:
                current = f"item{primary.path}"
            elif primary.many:
                current = primary.one("first", False)
            elif not primary.many:
                current = f"{primary.expr}{primary.path}"
        scope = Scope(self, node, current, foreach)
        placed = Placed(sid, None)
        step: dict[str, Any] = {"id": sid, "name": name[:253]}
        try:
            mapped = self.map(node, scope, primary, placed, per_edge)
        except expressions.Unsupported as exc:
            mapped = nodes.placeholder(
                node, f"its condition could not be converted ({exc})", "write the condition by hand"
            )
            placed.branches.clear()
            placed.lists.clear()
        if node.get("disabled"):
            placed.branches.clear()
            placed.lists.clear()
            placed.items = None
            mapped = nodes.Mapped("core.noop", passthrough=True, status="approximated")
            mapped.notes.append("disabled in n8n: a core.noop that hands its input on")
        step["uses"] = mapped.uses
        all_needs = list(dict.fromkeys([*needs, *sorted(scope.needs)]))
        step["needs"] = all_needs
        gate = _gate(conds) if kind != MERGE else _any(conds)
        if len(conds) > 1 and kind != MERGE:
            scope.notes.append(
                "n8n runs this node once for each input that delivers items; here it runs once, "
                "when any of them did (items from the first input)"
            )
        if gate:
            step["if"] = gate
        if foreach and primary is not None:
            step["foreach"] = primary.expr
        credential = _credential(node)
        if credential is None and mapped.own_credential:
            credential = ("typed into the node", f"{name} credentials")
        if mapped.connector and credential:
            step["integration"] = self.integration(credential, mapped, entry)
        elif credential and mapped.status != "not converted":
            entry.notes.append(f"credential {credential[1]!r} ({credential[0]}) is not used")
        if mapped.with_:
            step["with"] = mapped.with_
        _errors(node, step, entry)
        position = node.get("position")
        if isinstance(position, list) and len(position) == 2:
            step["ui"] = {"x": position[0], "y": position[1]}
        self.steps.append(step)
        if mapped.comment:
            self.comments[sid] = mapped.comment
        # Where this node's items are now.
        if placed.items is None:
            if mapped.passthrough:
                placed.items = primary
            elif mapped.uses == "core.fail":
                placed.items = Items(f"steps.{sid}.output", False)
            elif mapped.items is not None:
                if foreach:
                    placed.items = Items(
                        f"steps.{sid}.output", True, f"{mapped.items}[0]{mapped.item}"
                    )
                    scope.notes.append("each item's first row is kept (n8n flattens every row)")
                else:
                    placed.items = Items(f"steps.{sid}.output{mapped.items}", True, mapped.item)
            else:
                placed.items = Items(f"steps.{sid}.output", foreach, mapped.item)
        self.placed[name] = placed
        if placed.items is not None and mapped.uses != "core.fail":
            self.last_items = placed.items
        entry.status = mapped.status
        entry.notes += mapped.notes + list(dict.fromkeys(scope.notes))
        entry.todo = entry.todo or mapped.todo
        if scope.failed:
            entry.notes += scope.failed
            if entry.status == "converted":
                entry.status = "approximated"
            entry.todo = (
                entry.todo or "rewrite the expressions marked 'n8n expression not converted'"
            )
        if scope.notes and entry.status == "converted":
            entry.status = "approximated"

    def map(
        self,
        node: dict[str, Any],
        scope: Scope,
        primary: Items | None,
        placed: Placed,
        per_edge: list[tuple[Items, str]],
    ) -> nodes.Mapped:
        kind = str(node.get("type"))
        sid = placed.step
        if kind in IF_TYPES or kind == SWITCH:
            return control.branch(self, node, scope, primary, placed)
        if kind == MERGE:
            parts = [f"({items.as_list()} if {cond} else [])" for items, cond in per_edge]
            placed.items = Items(f"steps.{sid}.output", True)
            mapped = nodes.Mapped(
                "core.transform", {"value": f"${{ {' + '.join(parts) or '[]'} }}"}
            )
            mode = (node.get("parameters") or {}).get("mode", "append")
            if mode != "append":
                mapped.status = "approximated"
                mapped.notes.append(
                    f"Merge mode {mode!r} became append: the inputs' items in order"
                )
            return mapped
        if kind == BATCHES:
            value = primary.as_list() if primary else "[]"
            placed.items = Items(f"steps.{sid}.output", True)
            size = (node.get("parameters") or {}).get("batchSize", 10)
            mapped = nodes.Mapped("core.transform", {"value": f"${{ {value} }}"})
            mapped.notes.append(
                f"the loop (batches of {size}) became foreach steps over the items: each step of "
                "the loop body runs once per item"
            )
            if float(node.get("typeVersion") or 1) < 3:
                mapped.status = "approximated"
                mapped.notes.append("v1/v2 loops end with an IF on noItemsLeft: remove it")
            return mapped
        if kind == RESPOND:
            return control.respond(self, node, scope, primary)
        if kind == NOOP:
            return nodes.Mapped("core.noop", passthrough=True)
        if kind in CODE_TYPES:
            p = node.get("parameters") or {}
            code = p.get(CODE_TYPES[kind]) or p.get("pythonCode") or ""
            return nodes.placeholder(
                node,
                "code is not translated (JavaScript/Python has no sandboxed equivalent here)",
                "rewrite it as core.transform / core.set expressions, or a connector",
                code=str(code),
            )
        mapper = services.MAPPERS.get(kind) or catalog.MAPPERS.get(kind)
        if mapper is None and kind.startswith(LANGCHAIN):
            return nodes.placeholder(
                node,
                f"n8n's AI node {kind.split('.')[-1]} (LangChain) is not translated",
                "rewrite it with the ai connector (ai.chat, ai.extract, ai.classify, "
                "ai.summarize) and an openai or anthropic Integration (docs/ai.md)",
            )
        if mapper is None:
            short = kind.split(".")[-1]
            return nodes.placeholder(
                node,
                f"no Autoflow connector for {short}",
                f"call {short}'s API with http.request, or write a connector "
                "(docs/writing-connectors.md)",
            )
        return mapper(node, scope)

    def integration(self, credential: tuple[str, str], mapped: nodes.Mapped, entry: Entry) -> str:
        cred_type, cred_name = credential
        connector = mapped.connector or ""
        name = resource_name(cred_name, 60)
        existing = self.integrations.get(name)
        if existing is not None and existing["spec"]["type"] != connector:
            name = resource_name(f"{cred_name}-{connector}", 60)
            existing = self.integrations.get(name)
        if existing is None:
            spec: dict[str, Any] = {
                "type": connector,
                "description": f"Imported from n8n credential {cred_name!r} ({cred_type}); "
                f"put its secrets in the Secret {name}",
                "secretRef": {"name": name},
            }
            if mapped.settings:
                spec["settings"] = dict(mapped.settings)
            self.integrations[name] = {
                "apiVersion": API_VERSION,
                "kind": "Integration",
                "metadata": {"name": name},
                "spec": spec,
            }
            self.report.integrations.append(name)
        entry.notes.append(f"credential {cred_name!r} → Integration {name} (no secret values)")
        return name


def _credential(node: dict[str, Any]) -> tuple[str, str] | None:
    creds = node.get("credentials")
    if not isinstance(creds, dict) or not creds:
        return None
    cred_type, ref = next(iter(creds.items()))
    label = ref.get("name") if isinstance(ref, dict) else str(ref)
    return str(cred_type), str(label or cred_type)


def _gate(conds: list[str]) -> str | None:
    """The step's ``if``: none when it has one plain input (skipping propagates by itself)."""
    if not conds:
        return None
    if len(conds) == 1:
        return None if conds[0] == "true" or conds[0].endswith("== 'Succeeded'") else conds[0]
    return _any(conds)


def _any(conds: list[str]) -> str | None:
    if not conds or "true" in conds:
        return None if not conds else ("true" if len(conds) > 1 else None)
    unique = list(dict.fromkeys(conds))
    return unique[0] if len(unique) == 1 else " or ".join(f"({c})" for c in unique)


def _errors(node: dict[str, Any], step: dict[str, Any], entry: Entry) -> None:
    """n8n's retry and continue-on-fail settings as ``retry`` and ``continueOnError``."""
    if node.get("retryOnFail"):
        tries = int(node.get("maxTries", 3))
        wait = int(node.get("waitBetweenTries", 1000))
        step["retry"] = {
            "maxAttempts": max(1, min(tries, 100)),
            "initialDelay": f"{wait}ms",
            "multiplier": 1.0,
            "jitter": False,
            "retryOn": "any",
        }
    on_error = node.get("onError")
    if node.get("continueOnFail") or on_error in ("continueRegularOutput", "continueErrorOutput"):
        step["continueOnError"] = True
        if on_error == "continueErrorOutput":
            entry.notes.append("the error output became continueOnError (no separate branch)")
            entry.status = "approximated"


def _position(node: dict[str, Any]) -> tuple[float, float]:
    p = node.get("position")
    if isinstance(p, list) and len(p) == 2 and all(isinstance(v, int | float) for v in p):
        return (float(p[0]), float(p[1]))
    return (0.0, 0.0)


def _done_output(node: dict[str, Any]) -> int:
    """Split In Batches v3 (Loop Over Items) has ``done`` first and ``loop`` second."""
    return 0 if float(node.get("typeVersion") or 1) >= 3 else -1


def _reaches(edges: list[export.Edge], start: str, goal: str) -> bool:
    seen = {start}
    todo = [start]
    while todo:
        n = todo.pop()
        if n == goal:
            return True
        for e in edges:
            if e.source == n and e.target not in seen:
                seen.add(e.target)
                todo.append(e.target)
    return False
