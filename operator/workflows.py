"""Workflow reconciliation as a pure function: a Workflow body in, its status out.

The operator validates with exactly the code ``autoflow validate`` uses (``plan.compile_workflow``)
and adds what only the cluster knows: whether the Integrations the steps name exist. The
result is the ``Ready`` condition, whose reason and message name the step and field to fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from autoflow.connectors import registry as registry_mod
from autoflow.crds import conditions, errors, workflow
from autoflow.runners.definitions import checks, loader

READY = "Ready"


def _manifest(body: dict[str, Any]) -> dict[str, Any]:
    """The manifest of an API object: server fields such as status are dropped."""
    manifest: dict[str, Any] = {
        k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body
    }
    meta = manifest.get("metadata") or {}
    manifest["metadata"] = {
        k: meta[k] for k in ("name", "namespace", "uid", "generation") if k in meta
    }
    return manifest


def _size(body: dict[str, Any]) -> int:
    """Bytes of the Workflow as JSON: what a manifest of it holds, about."""
    manifest = {k: body.get(k) for k in ("apiVersion", "kind", "spec")}
    manifest["metadata"] = {
        k: v
        for k, v in (body.get("metadata") or {}).items()
        if k not in {"managedFields", "annotations"}
    }
    return len(json.dumps(manifest, separators=(",", ":")).encode())


def size_problems(body: dict[str, Any]) -> list[errors.Problem]:
    """A Workflow over the manifest limit ``autoflow validate`` applies to its file."""
    size = _size(body)
    if size <= loader.MAX_MANIFEST_BYTES:
        return []
    mib = 1024 * 1024
    return [
        errors.Problem(
            f"the Workflow is {size / mib:.1f} MiB; a manifest must stay under "
            f"{loader.MAX_MANIFEST_BYTES / mib:.1f} MiB: keep large data outside it "
            "(pass a URL or read it in a step)",
            errors.Where(field="spec"),
        )
    ]


def validate(
    body: dict[str, Any],
    integrations: Iterable[str] | None,
    registry: registry_mod.Registry | None = None,
) -> tuple[workflow.Workflow | None, list[errors.Problem]]:
    """(the model, every problem found); the model is None when the body does not parse.

    The checks are ``autoflow validate``'s (``checks.check_manifest``), so the Ready condition
    and the admission webhook say what the command says. ``integrations`` names the
    Integrations in the namespace; a mapping of name to connector type also checks that each
    step's Integration is of the type its connector needs. None leaves missing Integrations
    out (admission: they may be applied after the Workflow).
    """
    problems = size_problems(body)
    types: Mapping[str, str | None] = (
        {}
        if integrations is None
        else integrations
        if isinstance(integrations, Mapping)
        else dict.fromkeys(integrations)
    )
    resource, found = checks.check_manifest(
        _manifest(body),
        integrations=types,
        require_all=integrations is not None,
        registry=registry,
    )
    wf = resource if isinstance(resource, workflow.Workflow) else None
    return wf, [*problems, *found]


def message(problems: list[errors.Problem]) -> str:
    """Problems without the resource name (the condition sits on that resource already);
    admission refuses a Workflow with the same words."""
    lines = []
    for p in problems[:20]:
        where = p.where.replace(resource=None, file=None, line=None)
        lines.append(f"{where}: {p.message}" if str(where) else p.message)
    if len(problems) > 20:
        lines.append(f"... and {len(problems) - 20} more")
    return "; ".join(lines)


def status(
    body: dict[str, Any],
    integrations: Iterable[str],
    registry: registry_mod.Registry | None = None,
) -> dict[str, Any]:
    """The status the Workflow should have: ``Ready`` and ``observedGeneration``."""
    generation = (body.get("metadata") or {}).get("generation")
    old = (body.get("status") or {}).get("conditions")
    _, problems = validate(body, integrations, registry)
    if not problems:
        conds = conditions.set_condition(old, READY, "True", "Valid", "", generation)
    else:
        missing = all(
            "does not exist" in p.message and p.where.field == "integration" for p in problems
        )
        reason = "IntegrationNotFound" if missing else "Invalid"
        conds = conditions.set_condition(old, READY, "False", reason, message(problems), generation)
    return {"observedGeneration": generation, "conditions": conds}
