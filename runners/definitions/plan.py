"""Compiling a Workflow into a Plan: the DAG, the actions, the expressions, all checked.

``compile_workflow`` is what ``autoflow validate`` and the operator call, and what the engine
runs from. It finds every problem it can before anything runs and reports them all at once:
duplicate step ids, unknown or cyclic ``needs``, unknown connectors and actions, parameters of
the wrong type (``parameters``), expression syntax, and expressions that read a step which is
not upstream. Whether the Integrations the steps name exist and fit is ``integration_checks``.

The DAG rule: a step without ``needs`` depends on the step before it in its list, so a plain
list is a chain; ``needs: []`` makes a step start at once; ``needs: [a, b]`` makes a join.
``onError`` and ``finally`` are lists of their own with the same rule, and may read every
main step (guarding with ``default()`` or ``has()`` where a step may not have run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from autoflow.connectors import registry as registry_mod
from autoflow.connectors import sdk
from autoflow.crds import errors, meta, workflow
from autoflow.runners import expressions
from autoflow.runners.definitions import parameters

NO_RETRY = workflow.Retry(max_attempts=1)
ROOTS_IN_FOREACH = {"item", "index"}


@dataclasses.dataclass(slots=True)
class StepPlan:
    """One step, compiled: what it calls, with which templates, after which steps."""

    step: workflow.Step
    section: str  # "steps", "onError" or "finally"
    action: sdk.Action
    params: expressions.Template
    condition: expressions.Expression | None
    foreach: expressions.Expression | expressions.Template | None
    needs: tuple[str, ...]
    retry: workflow.Retry
    timeout: float | None
    where: errors.Where
    dependents: list[str] = dataclasses.field(default_factory=list)

    @property
    def id(self) -> str:
        return self.step.id


@dataclasses.dataclass(slots=True)
class Section:
    """The steps of one list (main, onError, finally) in a topological order."""

    steps: dict[str, StepPlan]
    order: list[str]

    def roots(self) -> list[str]:
        return [sid for sid in self.order if not self.steps[sid].needs]


@dataclasses.dataclass(slots=True)
class Plan:
    workflow: workflow.Workflow
    main: Section
    on_error: Section
    finally_: Section
    outputs: expressions.Template
    timeout: float | None
    # Identifies the definition (see engine.spec_hash); filled on first use.
    digest: str = ""

    @property
    def name(self) -> str:
        return self.workflow.metadata.name or "workflow"

    def step(self, step_id: str) -> StepPlan:
        for section in (self.main, self.on_error, self.finally_):
            if step_id in section.steps:
                return section.steps[step_id]
        raise KeyError(step_id)

    def integrations(self) -> set[str]:
        return {
            s.step.integration
            for section in (self.main, self.on_error, self.finally_)
            for s in section.steps.values()
            if s.step.integration
        }


def _needs(steps: list[workflow.Step]) -> dict[str, tuple[str, ...]]:
    needs: dict[str, tuple[str, ...]] = {}
    previous: str | None = None
    for step in steps:
        if step.needs is not None:
            needs[step.id] = tuple(dict.fromkeys(step.needs))
        else:
            needs[step.id] = (previous,) if previous else ()
        previous = step.id
    return needs


def _topological(
    ids: list[str], needs: dict[str, tuple[str, ...]]
) -> tuple[list[str], list[str] | None]:
    """Kahn's algorithm in list order; returns (order, a cycle if there is one)."""
    indegree = {sid: len(needs[sid]) for sid in ids}
    dependents: dict[str, list[str]] = {sid: [] for sid in ids}
    for sid in ids:
        for dep in needs[sid]:
            dependents[dep].append(sid)
    ready = [sid for sid in ids if indegree[sid] == 0]
    order: list[str] = []
    while ready:
        sid = ready.pop(0)
        order.append(sid)
        for nxt in dependents[sid]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    if len(order) == len(ids):
        return order, None
    return order, _find_cycle([s for s in ids if s not in set(order)], needs)


def _find_cycle(candidates: list[str], needs: dict[str, tuple[str, ...]]) -> list[str]:
    stack: list[str] = []
    on_stack: set[str] = set()
    seen: set[str] = set()

    def visit(sid: str) -> list[str] | None:
        stack.append(sid)
        on_stack.add(sid)
        seen.add(sid)
        for dep in needs[sid]:
            if dep in on_stack:
                return [*stack[stack.index(dep) :], dep]
            if dep not in seen and (found := visit(dep)):
                return found
        stack.pop()
        on_stack.discard(sid)
        return None

    for sid in candidates:
        if sid not in seen and (cycle := visit(sid)):
            return cycle
    return candidates


def _ancestors(sid: str, needs: dict[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    todo = list(needs.get(sid, ()))
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(needs.get(dep, ()))
    return seen


def _expression_message(exc: errors.ExpressionError) -> str:
    """The message with the expression it is about, so the user sees what to fix."""
    text = exc.expression if len(exc.expression) <= 120 else exc.expression[:117] + "..."
    return f"{exc.message} (in ${{ {text} }})" if text else exc.message


def _compile_step(
    step: workflow.Step,
    section: str,
    needs: tuple[str, ...],
    default_retry: workflow.Retry | None,
    registry: registry_mod.Registry,
    where: errors.Where,
    problems: list[errors.Problem],
) -> StepPlan | None:
    where = where.replace(step=step.id)
    try:
        action = registry.action(step.uses)
    except errors.ManifestError as exc:
        problems.append(errors.Problem(exc.message, where.replace(field="uses")))
        return None

    def compiled(make: Any, value: Any, field: str) -> Any:
        try:
            return make(value, where.replace(field=field))
        except errors.ExpressionError as exc:
            problems.append(errors.Problem(_expression_message(exc), exc.where))
            return None

    params = compiled(expressions.compile_template, step.with_, "with")
    if params is not None:
        problems.extend(parameters.check_params(action, step.with_, params, where))
    condition = None
    if step.if_ is not None:
        condition = compiled(expressions.compile_condition, step.if_, "if")
    foreach: Any = None
    if isinstance(step.foreach, str):
        foreach = compiled(expressions.compile_condition, step.foreach, "foreach")
    elif step.foreach is not None:
        foreach = compiled(expressions.compile_template, step.foreach, "foreach")
    if params is None or (step.if_ is not None and condition is None):
        return None
    if step.foreach is not None and foreach is None:
        return None
    return StepPlan(
        step=step,
        section=section,
        action=action,
        params=params,
        condition=condition,
        foreach=foreach,
        needs=needs,
        retry=step.retry or default_retry or NO_RETRY,
        timeout=meta.parse_duration(step.timeout) if step.timeout is not None else None,
        where=where,
    )


def _check_references(
    plan: StepPlan,
    upstream: set[str],
    readable: set[str],
    declared_inputs: set[str],
    problems: list[errors.Problem],
) -> None:
    """Expressions may read inputs that exist and steps that are guaranteed to run first."""
    fields: list[tuple[str, frozenset[tuple[str, ...]]]] = []
    if plan.params.references:
        # Per parameter, so a problem names the field: with.url rather than with.
        for key, value in plan.step.with_.items():
            refs = expressions.compile_template(value, plan.where).references
            if refs:
                fields.append((f"with.{key}", refs))
    if plan.condition is not None:
        fields.append(("if", plan.condition.references))
    if plan.foreach is not None:
        fields.append(("foreach", plan.foreach.references))
    for field, refs in fields:
        for ref in sorted(refs):
            root, name = ref[0], ref[1] if len(ref) > 1 else None
            where = plan.where.replace(field=field)
            if root == "steps" and name is not None:
                if name == plan.id:
                    problems.append(
                        errors.Problem(f"step reads its own output (steps.{name})", where)
                    )
                elif name not in readable:
                    problems.append(errors.Problem(f"unknown step {name!r} in expression", where))
                elif name not in upstream:
                    problems.append(
                        errors.Problem(
                            f"reads steps.{name} but {name!r} is not upstream of this step; "
                            f"add it to needs",
                            where,
                        )
                    )
            elif root == "inputs" and name is not None and name not in declared_inputs:
                known = ", ".join(sorted(declared_inputs)) or "none declared"
                problems.append(errors.Problem(f"unknown input {name!r} (inputs: {known})", where))
            elif root in ROOTS_IN_FOREACH and not field.startswith("with"):
                problems.append(
                    errors.Problem(f"{root!r} is only defined inside the step's with", where)
                )
            elif root in ROOTS_IN_FOREACH and plan.foreach is None:
                problems.append(errors.Problem(f"{root!r} is only defined in foreach steps", where))
            elif root == "error" and plan.section == "steps":
                problems.append(errors.Problem("'error' is only defined in onError steps", where))


def _section(
    name: str,
    steps: list[workflow.Step],
    spec: workflow.WorkflowSpec,
    registry: registry_mod.Registry,
    where: errors.Where,
    problems: list[errors.Problem],
    main_ids: set[str],
) -> Section:
    # A duplicate id is reported once (``_duplicates``); the DAG is built from first occurrences.
    first: dict[str, workflow.Step] = {}
    for step in steps:
        first.setdefault(step.id, step)
    steps = list(first.values())
    needs = _needs(steps)
    ids = [s.id for s in steps]
    for step in steps:
        for dep in needs[step.id]:
            if dep not in needs:
                hint = (
                    " (it is a main step; onError and finally steps start after them)"
                    if dep in main_ids
                    else ""
                )
                problems.append(
                    errors.Problem(
                        f"needs unknown step {dep!r}{hint}",
                        where.replace(step=step.id, field="needs"),
                    )
                )
    clean = {sid: tuple(d for d in deps if d in needs) for sid, deps in needs.items()}
    order, cycle = _topological(ids, clean)
    if cycle:
        problems.append(
            errors.Problem(
                "steps form a cycle: " + " → ".join(cycle),
                where.replace(step=cycle[0], field="needs"),
            )
        )
    plans: dict[str, StepPlan] = {}
    for step in steps:
        compiled = _compile_step(step, name, clean[step.id], spec.retry, registry, where, problems)
        if compiled is not None:
            plans[step.id] = compiled
    for sid, plan in plans.items():
        upstream = _ancestors(sid, clean)
        readable = set(ids)
        if name != "steps":
            upstream |= main_ids
            readable |= main_ids
        _check_references(plan, upstream, readable, set(spec.inputs), problems)
        for dep in plan.needs:
            if dep in plans:
                plans[dep].dependents.append(sid)
    return Section(steps=plans, order=[s for s in order if s in plans])


def _duplicates(
    all_steps: Iterable[workflow.Step], where: errors.Where
) -> Iterator[errors.Problem]:
    seen: set[str] = set()
    for step in all_steps:
        if step.id in seen:
            yield errors.Problem("duplicate step id", where.replace(step=step.id, field="id"))
        seen.add(step.id)


def compile_workflow(
    wf: workflow.Workflow,
    registry: registry_mod.Registry | None = None,
    where: errors.Where | None = None,
) -> Plan:
    """The runnable plan of a workflow, or a ValidationError listing every problem found."""
    registry = registry or registry_mod.default()
    where = (where or errors.Where()).replace(resource=wf.ref)
    spec = wf.spec
    problems = list(_duplicates(wf.all_steps(), where))
    main_ids = {s.id for s in spec.steps}
    main = _section("steps", spec.steps, spec, registry, where, problems, set())
    on_error = _section("onError", spec.on_error, spec, registry, where, problems, main_ids)
    finally_ = _section("finally", spec.finally_, spec, registry, where, problems, main_ids)
    outputs = None
    try:
        outputs = expressions.compile_template(spec.outputs, where.replace(field="outputs"))
        for ref in sorted(outputs.references):
            if ref[0] == "steps" and len(ref) > 1 and ref[1] not in main_ids:
                problems.append(
                    errors.Problem(
                        f"unknown step {ref[1]!r} in expression", where.replace(field="outputs")
                    )
                )
            elif ref[0] in ROOTS_IN_FOREACH | {"error"}:
                problems.append(
                    errors.Problem(
                        f"{ref[0]!r} is not defined in outputs", where.replace(field="outputs")
                    )
                )
    except errors.ExpressionError as exc:
        problems.append(errors.Problem(_expression_message(exc), exc.where))
    if problems:
        raise errors.ValidationError(list(dict.fromkeys(problems)))
    assert outputs is not None
    return Plan(
        workflow=wf,
        main=main,
        on_error=on_error,
        finally_=finally_,
        outputs=outputs,
        timeout=meta.parse_duration(spec.timeout) if spec.timeout is not None else None,
    )
