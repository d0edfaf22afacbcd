"""The control nodes: IF, Filter and Switch (branching one item, or splitting a list of items),
and Respond to Webhook (the run's response). See ``convert`` for how branches become ``if:``
and lists become ``foreach``.
"""

from __future__ import annotations

import typing
from typing import Any

from autoflow.webui.importers.n8n import nodes, triggers
from autoflow.webui.importers.n8n.scope import Items, Placed, Scope

if typing.TYPE_CHECKING:
    from autoflow.webui.importers.n8n import convert

IF_TYPES = ("n8n-nodes-base.if", "n8n-nodes-base.filter")


def branch(
    conv: convert.Converter,
    node: dict[str, Any],
    scope: Scope,
    primary: Items | None,
    placed: Placed,
) -> nodes.Mapped:
    kind = str(node.get("type"))
    sid = placed.step
    many = primary is not None and primary.many
    if many and primary is not None:
        scope._current = f"it{primary.path}"
    if kind in IF_TYPES:
        cond = nodes.if_condition(node, scope)
        if many and primary is not None:
            keep = f"[it for it in {primary.expr} if {cond}]"
            drop = f"[it for it in {primary.expr} if not ({cond})]"
            placed.lists = {
                0: Items(f"steps.{sid}.output['true']", True, primary.path),
                1: Items(f"steps.{sid}.output['false']", True, primary.path),
            }
            return nodes.Mapped(
                "core.transform", {"value": f"${{ {{'true': {keep}, 'false': {drop}}} }}"}
            )
        placed.branches = {
            0: f"steps.{sid}.output.result == true",
            1: f"steps.{sid}.output.result == false",
        }
        placed.items = primary
        return nodes.Mapped("core.condition", {"value": f"${{ {cond} }}"})
    rules, fallback = nodes.switch_rules(node, scope)
    all_match = bool(
        ((node.get("parameters") or {}).get("options") or {}).get("allMatchingOutputs")
    )
    if many and primary is not None:
        lists: dict[str, str] = {}
        before: list[str] = []
        for k, cond in rules:
            test = (
                f"({cond})"
                if all_match or not before
                else f"({cond}) and not ({' or '.join(before)})"
            )
            lists[f"output{k}"] = f"[it for it in {primary.expr} if {test}]"
            before.append(f"({cond})")
        if fallback is not None:
            none = " or ".join(before) or "false"
            lists.setdefault(f"output{fallback}", "[]")
            lists[f"output{fallback}"] += f" + [it for it in {primary.expr} if not ({none})]"
        placed.lists = {
            int(key[6:]): Items(f"steps.{sid}.output['{key}']", True, primary.path) for key in lists
        }
        body = ", ".join(f"'{k}': {v}" for k, v in lists.items())
        return nodes.Mapped("core.transform", {"value": f"${{ {{{body}}} }}"})
    cases = [{"name": f"output{k}", "when": f"${{ {cond} }}"} for k, cond in rules]
    mapped = nodes.Mapped(
        "core.switch",
        {"cases": cases, "default": f"output{fallback}" if fallback is not None else "none"},
    )
    if all_match:
        mapped.status = "approximated"
        mapped.notes.append("all matching outputs: here only the first matching one is taken")
    outputs = {k for k, _ in rules} | ({fallback} if fallback is not None else set())
    placed.branches = {k: f"steps.{sid}.output.case == 'output{k}'" for k in outputs}
    placed.items = primary
    return mapped


def respond(
    conv: convert.Converter, node: dict[str, Any], scope: Scope, primary: Items | None
) -> nodes.Mapped:
    p = node.get("parameters") or {}
    how = p.get("respondWith", "firstIncomingItem")
    out = nodes.Mapped("core.set", passthrough=True, status="approximated")
    if how == "json":
        body = nodes._json_value(p.get("responseBody", "{}"), scope, "body", out)
    elif how == "text":
        body = scope.value(p.get("responseBody", ""), "body")
    elif how == "allIncomingItems" and primary is not None:
        body = f"${{ {primary.as_list()} }}"
    elif how == "noData":
        body = None
    elif primary is not None:
        body = f"${{ {primary.one('first', False)} }}"
    else:
        body = None
    if how in ("binary", "redirect"):
        out.status = "approximated"
        out.notes.append(f"respond with {how} is not converted: the body is empty")
        body = None
    code = (p.get("options") or {}).get("responseCode", 200)
    out.with_ = {"values": {"body": body, "statusCode": code}}
    if triggers.gateway_model():
        out.notes.append(
            "the response becomes the run's output `response`, which the webhook trigger "
            "answers with (response mode sync); headers are not sent"
        )
    else:
        out.notes.append(
            "the response becomes the run's outputs (response, statusCode): make the webhook "
            "trigger's response sync to answer with them (docs/triggers.md)"
        )
    conv.responders.append(scope.node["name"])
    return out
