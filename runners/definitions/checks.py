"""Every problem of one manifest, as ``autoflow validate`` reports it (and admission can).

``check_manifest`` takes one manifest mapping (a YAML document, an API object) and returns its
model (None when it cannot be built) and every problem found, each naming resource, step and
field, and its line when the document it came from is given::

    mapping ─ loader.to_resource (apiVersion, kind, sizes, name, the schema: all at once)
            ─ Workflow: plan.compile_workflow (DAG, connectors, parameters, expressions)
                        integration_checks.integration_problems (the Integrations the steps name)
            ─ Integration: its type is an installed connector

A schema problem does not hide the rest: a step that breaks the schema is replaced by a
placeholder with the same id and ``needs`` (so other steps may still read and follow it), a
resource-level field that breaks it is left out, and the Workflow is compiled from that. The
placeholder's own compile problems are not reported: they would be about the stand-in.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from autoflow.connectors import registry as registry_mod
from autoflow.crds import errors, integration, workflow
from autoflow.runners.definitions import documents, integration_checks, loader, plan, triggers

_SECTIONS = ("steps", "onError", "finally")


def check_manifest(
    data: Mapping[str, Any],
    *,
    where: errors.Where | None = None,
    integrations: Mapping[str, str | None] | None = None,
    require_all: bool = False,
    missing: str = "does not exist in this namespace",
    registry: registry_mod.Registry | None = None,
    source: documents.Document | None = None,
) -> tuple[loader.Resource | None, list[errors.Problem]]:
    """(the model or None, every problem) of one manifest mapping.

    ``integrations`` maps Integration names to connector types (None: type unknown); a step
    naming one not in it is a problem only with ``require_all`` (said with ``missing``).
    ``source`` is the YAML document ``data`` came from: problems then carry their line.
    """
    doc = dict(data)
    where = where or errors.Where(line=source.line if source else None)
    try:
        resource = loader.to_resource(doc, where, source)
    except errors.ValidationError as exc:
        problems = exc.problems
        if doc.get("kind") == "Workflow":
            problems += _compile_repaired(doc, problems, where, registry, source)
        return None, list(dict.fromkeys(problems))
    except errors.AutoflowError as exc:
        return None, [errors.Problem(exc.message, exc.where)]
    found: list[errors.Problem] = []
    if isinstance(resource, workflow.Workflow):
        try:
            plan.compile_workflow(resource, registry, where=where)
        except errors.ValidationError as exc:
            found += exc.problems
        found += triggers.trigger_problems(resource, where.replace(resource=resource.ref))
        found += integration_checks.integration_problems(
            resource, integrations or {}, where, require_all=require_all, missing=missing
        )
    elif isinstance(resource, integration.Integration):
        unknown = integration_checks.unknown_type_problem(
            resource.metadata.name or "", resource.spec.type, registry
        )
        if unknown is not None:
            at = unknown.where.replace(file=where.file, line=where.line)
            found.append(dataclasses.replace(unknown, where=at))
    return resource, loader.locate_all(found, doc, source)


def _compile_repaired(
    doc: dict[str, Any],
    problems: list[errors.Problem],
    where: errors.Where,
    registry: registry_mod.Registry | None,
    source: documents.Document | None,
) -> list[errors.Problem]:
    """The compile problems of the Workflow with its schema problems stood in for; none when
    it cannot be repaired (apiVersion, kind, metadata or the spec as a whole are wrong)."""
    repaired, stand_ins = _repair(doc, problems)
    if repaired is None:
        return []
    try:
        wf = loader.to_resource(repaired, where)
    except errors.AutoflowError:
        return []
    assert isinstance(wf, workflow.Workflow)
    try:
        plan.compile_workflow(wf, registry, where=where)
    except errors.ValidationError as exc:
        kept = [p for p in exc.problems if p.where.step not in stand_ins]
        return loader.locate_all(kept, doc, source)
    return []


def _repair(
    doc: dict[str, Any], problems: list[errors.Problem]
) -> tuple[dict[str, Any] | None, set[str]]:
    """A copy of ``doc`` without what the problems are about, and the stand-in steps' ids."""
    fixed = copy.deepcopy(doc)
    spec = fixed.get("spec")
    if not isinstance(spec, dict):
        return None, set()
    stand_ins: set[str] = set()
    for problem in problems:
        path = loader.data_path(problem.where, doc)
        if problem.where.step is not None and len(path) >= 3:
            section, index = path[1], path[2]
            steps = spec.get(section)
            if isinstance(section, str) and isinstance(steps, list) and isinstance(index, int):
                steps[index] = _stand_in(steps[index], section, index)
                stand_ins.add(problem.where.step)
                stand_ins.add(str(steps[index]["id"]))
                continue
        if len(path) < 2 or path[0] != "spec" or not _drop(spec, path[1:]):
            return None, set()
    return fixed, stand_ins


def _stand_in(step: Any, section: str, index: int) -> dict[str, Any]:
    """A step that compiles, keeping the id and ``needs`` others may rely on."""
    original = step if isinstance(step, dict) else {}
    sid = original.get("id")
    placeholder: dict[str, Any] = {
        "id": sid if isinstance(sid, str) and sid else f"invalid-{section.lower()}-{index + 1}",
        "uses": "core.noop",
    }
    needs = original.get("needs")
    if isinstance(needs, list) and all(isinstance(n, str) for n in needs):
        placeholder["needs"] = needs
    return placeholder


def _drop(spec: dict[str, Any], path: list[str | int]) -> bool:
    """Leave out the mapping entry at ``path`` in ``spec``, or the nearest one above it that
    exists (a missing field takes its parent with it); False when there is none."""
    for length in range(len(path), 0, -1):
        node: Any = spec
        for part in path[: length - 1]:
            node = _at(node, part)
        last = path[length - 1]
        # List items are never removed: the indexes of later problems would shift.
        if isinstance(node, dict) and last in node:
            del node[last]
            return True
    return False


def _at(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None
