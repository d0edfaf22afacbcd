"""The Integrations a Workflow's steps name: whether they exist and are of the right type.

``autoflow validate`` checks them against the Integrations in the files it is given, admission
and the operator against those in the namespace, and the engine checks the type again when a
step resolves its Integration at run time (``type_mismatch``).
"""

from __future__ import annotations

from collections.abc import Mapping

from autoflow.connectors import registry as registry_mod
from autoflow.crds import errors, workflow

# How a missing Integration is said where the Integrations come from files, not a namespace.
NOT_GIVEN = "is not in the files given; pass the file with its Integration manifest too"


def integration_problems(
    wf: workflow.Workflow,
    integrations: Mapping[str, str | None],
    where: errors.Where | None = None,
    *,
    require_all: bool = True,
    missing: str = "does not exist in this namespace",
) -> list[errors.Problem]:
    """Steps naming an Integration that is not there (when ``require_all``) or whose type is
    not the step's connector; ``integrations`` maps Integration names to connector types
    (None: the type is not known here, only the name is checked). ``missing`` says where the
    Integration was looked for, after its name."""
    base = (where or errors.Where()).replace(resource=wf.ref)
    problems = []
    for step in wf.all_steps():
        if not step.integration:
            continue
        at = base.replace(step=step.id, field="integration")
        if step.integration not in integrations:
            if require_all:
                problems.append(errors.Problem(f"integration {step.integration!r} {missing}", at))
            continue
        type_ = integrations[step.integration]
        wrong = type_mismatch(step.integration, type_, step.uses) if type_ is not None else None
        if wrong is not None:
            problems.append(errors.Problem(wrong, at))
    return problems


def type_mismatch(integration: str, type_: str, uses: str) -> str | None:
    """Why an Integration of ``type_`` cannot serve the action ``uses`` (None: it can)."""
    connector = uses.partition(".")[0]
    if registry_mod.connector_for_type(type_) == connector:
        return None
    types = [connector, *(t for t, c in registry_mod.INTEGRATION_TYPES.items() if c == connector)]
    return (
        f"integration {integration!r} is of type {type_!r}, but {uses} needs an integration "
        f"of type {' or '.join(repr(t) for t in types)}"
    )


def unknown_type_problem(
    name: str, type_: str, registry: registry_mod.Registry | None = None
) -> errors.Problem | None:
    """An Integration whose type no installed connector provides, with the known types."""
    registry = registry or registry_mod.default()
    known = registry.integration_types()
    if type_ in known:
        return None
    return errors.Problem(
        f"integration {name!r} is of type {type_!r}, which no installed connector provides "
        f"(known: {', '.join(sorted(known))})",
        errors.Where(resource=f"Integration/{name}", field="spec.type"),
    )
