"""Workflow reconciliation as a pure function: a Workflow body in, its status out.

The operator validates with exactly the code ``autoflow validate`` uses (``plan.compile_workflow``)
and adds what only the cluster knows: whether the Integrations the steps name exist. The
result is the ``Ready`` condition, whose reason and message name the step and field to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from autoflow.connectors import registry as registry_mod
from autoflow.crds import conditions, errors, workflow
from autoflow.runners import loader, plan

READY = "Ready"


def parse(body: dict[str, Any]) -> workflow.Workflow:
    """The Workflow model of an API object (server fields such as status are dropped)."""
    manifest: dict[str, Any] = {
        k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body
    }
    meta = manifest.get("metadata") or {}
    manifest["metadata"] = {
        k: meta[k] for k in ("name", "namespace", "uid", "generation") if k in meta
    }
    resource = loader.to_resource(manifest, errors.Where())
    assert isinstance(resource, workflow.Workflow)
    return resource


def validate(
    body: dict[str, Any],
    integrations: Iterable[str],
    registry: registry_mod.Registry | None = None,
) -> tuple[workflow.Workflow | None, list[errors.Problem]]:
    """(the model, every problem found); the model is None when the body does not parse.

    ``integrations`` names the Integrations in the namespace; a mapping of name to connector
    type also checks that each step's Integration is of the type its connector needs.
    """
    try:
        wf = parse(body)
    except errors.ValidationError as exc:
        return None, exc.problems
    except errors.AutoflowError as exc:
        return None, [errors.Problem(exc.message, exc.where)]
    problems: list[errors.Problem] = []
    try:
        plan.compile_workflow(wf, registry)
    except errors.ValidationError as exc:
        problems.extend(exc.problems)
    types: Mapping[str, str | None] = (
        integrations if isinstance(integrations, Mapping) else dict.fromkeys(integrations)
    )
    problems.extend(plan.integration_problems(wf, types))
    return wf, problems


def _message(problems: list[errors.Problem]) -> str:
    """Problems without the resource name (the condition sits on that resource already)."""
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
        conds = conditions.set_condition(
            old, READY, "False", reason, _message(problems), generation
        )
    return {"observedGeneration": generation, "conditions": conds}
