"""The converted manifests as YAML text, and their check by ``autoflow validate``'s own code.

The Workflow comes first, then the Schedules, then the Integration stubs, one YAML stream.
Placeholder steps get a comment block above them (why, what to do, the original code), so the
file itself says what is left to do; the report says it too.
"""

from __future__ import annotations

import typing
from typing import Any

import yaml

from autoflow.runners.definitions import checks, loader
from autoflow.webui.importers.n8n import triggers

if typing.TYPE_CHECKING:
    from autoflow.webui.importers.n8n.convert import Converter

_ORDER = ("id", "name", "uses", "needs", "if", "foreach", "concurrency", "integration", "with")


def documents(conv: Converter) -> list[dict[str, Any]]:
    """The Workflow, Schedules and Integrations as manifest mappings."""
    wf = conv.export
    spec: dict[str, Any] = {
        "description": f"Imported from the n8n workflow {wf.name!r} by autoflow import n8n."[:4096]
    }
    if conv.inputs:
        spec["inputs"] = conv.inputs
    if conv.triggers:
        spec["triggers"] = conv.triggers
    spec["steps"] = [{k: s[k] for k in _sorted_keys(s)} for s in conv.steps]
    responders = [conv.placed[n].step for n in conv.responders if conv.placed[n].step]
    if responders:
        spec["outputs"] = {
            "response": _coalesce([f"steps.{r}.output.body" for r in responders]),
            "statusCode": _coalesce([f"steps.{r}.output.statusCode" for r in responders]),
        }
    for hook, node in conv.sync_webhooks:
        mode = (node.get("parameters") or {}).get("responseMode", "onReceived")
        if responders and mode in ("responseNode", "lastNode"):
            codes = {
                ((conv.export.nodes[n].get("parameters") or {}).get("options") or {}).get(
                    "responseCode", 200
                )
                for n in conv.responders
            }
            triggers.sync_response(hook, codes.pop() if len(codes) == 1 else None)
        elif mode == "lastNode" and not responders and conv.last_items is not None:
            # n8n answers with the first item of the node that ran last.
            spec["outputs"] = {"response": f"${{ {conv.last_items.one('first', False)} }}"}
            triggers.sync_response(hook, 200)
    annotations = {"autoflow.dev/imported-from": "n8n"}
    if wf.tags:
        annotations["autoflow.dev/n8n-tags"] = ", ".join(wf.tags)
    workflow = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": conv.name, "annotations": annotations},
        "spec": spec,
    }
    return [workflow, *conv.schedules, *conv.integrations.values()]


def _coalesce(parts: list[str]) -> str:
    return f"${{ {parts[0]} }}" if len(parts) == 1 else f"${{ coalesce({', '.join(parts)}) }}"


def _sorted_keys(step: dict[str, Any]) -> list[str]:
    first = [k for k in _ORDER if k in step]
    return first + [k for k in step if k not in first]


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _text)


def yaml_text(conv: Converter, docs: list[dict[str, Any]]) -> str:
    report = conv.report
    counts = ", ".join(
        f"{len(report.of(s))} {s}" for s in ("converted", "approximated", "not converted")
    )
    header = [
        f"# Imported from n8n ({report.source}) by autoflow import n8n: {counts} nodes.",
        "# Steps marked PLACEHOLDER stop the run until they are rewritten; see the report.",
    ]
    out: list[str] = []
    for doc in docs:
        text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        if doc.get("kind") == "Workflow":
            text = _comment_steps(text, conv.comments)
        out.append(text)
    return "\n".join(header) + "\n" + "---\n".join(out)


def _comment_steps(text: str, comments: dict[str, list[str]]) -> str:
    lines = text.splitlines()
    result: list[str] = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith("- id: "):
            sid = stripped[len("- id: ") :].strip()
            indent = line[: len(line) - len(stripped)]
            for c in comments.get(sid, []):
                result.append(f"{indent}# {c}".rstrip())
        result.append(line)
    return "\n".join(result) + "\n"


def validate(text: str) -> list[str]:
    """Every problem ``autoflow validate`` finds in the text (empty: it validates)."""
    problems: list[str] = []
    try:
        docs = loader.manifest_documents(text, "<imported>")
    except Exception as exc:  # a YAML the dumper wrote should always read back
        return [f"the YAML does not read back: {exc}"]
    types: dict[str, str | None] = {}
    for doc in docs:
        if doc.data.get("kind") == "Integration":
            types[str(doc.data["metadata"]["name"])] = str(doc.data["spec"]["type"])
    for doc in docs:
        _, found = checks.check_manifest(
            doc.data, integrations=types, require_all=False, source=doc
        )
        problems += [str(p) for p in found]
    return problems
