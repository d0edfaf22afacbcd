"""Compiling a Workflow into a Plan: the DAG, the actions, the expressions, all checked.

``compile_workflow`` is what ``autoflow validate`` and the operator call, and what the engine
runs from. It finds every problem it can before anything runs and reports them all at once:
duplicate step ids, unknown or cyclic ``needs``, unknown connectors and actions, parameters of
the wrong type, expression syntax, and expressions that read a step which is not upstream.

The DAG rule: a step without ``needs`` depends on the step before it in its list, so a plain
list is a chain; ``needs: []`` makes a step start at once; ``needs: [a, b]`` makes a join.
``onError`` and ``finally`` are lists of their own with the same rule, and may read every
main step (guarding with ``default()`` or ``has()`` where a step may not have run).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pydantic

from autoflow.connectors import registry as registry_mod
from autoflow.connectors import sdk
from autoflow.crds import errors, meta, workflow
from autoflow.runners import expressions

NO_RETRY = workflow.Retry(max_attempts=1)
# How a missing Integration is said where the Integrations come from files, not a namespace.
NOT_GIVEN = "is not in the files given; pass the file with its Integration manifest too"
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


@functools.cache
def _field_adapters(params: type[sdk.Params]) -> dict[str, tuple[str, pydantic.TypeAdapter[Any]]]:
    """Manifest key (alias) → (python name, adapter) for checking static values one by one."""
    out: dict[str, tuple[str, pydantic.TypeAdapter[Any]]] = {}
    for name, field in params.model_fields.items():
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(field.annotation or Any)
        out[field.alias or name] = (name, adapter)
        out.setdefault(name, (name, adapter))
    return out


def check_params(
    action: sdk.Action, with_: dict[str, Any], template: expressions.Template, where: errors.Where
) -> Iterator[errors.Problem]:
    """Parameter problems visible before the run: unknown, missing, wrongly typed static values,
    and expressions in fields that must be written literally (``x-autoflow-static``)."""
    yield from _static_fields(action.params, with_, "with", where)
    if template.is_static:
        try:
            action.params.model_validate(with_)
        except pydantic.ValidationError as exc:
            yield from param_problems(exc, with_, where)
        return
    adapters = _field_adapters(action.params)
    for key in with_:
        if key not in adapters:
            known = ", ".join(sorted({f.alias or n for n, f in action.params.model_fields.items()}))
            yield errors.Problem(
                f"unknown parameter for {action.uses} (parameters: {known})",
                where.replace(field=f"with.{key}"),
            )
    for name, field in action.params.model_fields.items():
        key = field.alias or name
        if field.is_required() and key not in with_ and name not in with_:
            yield errors.Problem(
                f"required parameter of {action.uses} is missing",
                where.replace(field=f"with.{key}"),
            )
    # The static values, validated by the model itself (field validators and metadata
    # included); errors about keys that hold expressions or are missing are not theirs.
    static = {
        k: v
        for k, v in with_.items()
        if k in adapters and expressions.compile_template(v, where).is_static
    }
    try:
        action.params.model_validate(static)
    except pydantic.ValidationError as exc:
        own = [
            err
            for err in exc.errors()
            if err["loc"] and err["loc"][0] in static and err["type"] != "missing"
        ]
        if own:
            yield from param_problems(_Only(exc, own), static, where)


class _Only:
    """A pydantic ValidationError narrowed to some of its errors (for ``param_problems``)."""

    def __init__(self, exc: pydantic.ValidationError, found: list[Any]) -> None:
        self._found = found

    def errors(self) -> list[Any]:
        return self._found


STATIC_MESSAGE = (
    "must be written in the manifest, not computed by an expression (an expression here would "
    "be spliced into the text); pass values as parameters instead"
)


def _models_in(annotation: Any) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _static_fields(
    model: type[pydantic.BaseModel], value: Any, path: str, where: errors.Where
) -> Iterator[errors.Problem]:
    """Fields marked ``x-autoflow-static`` (SQL text) must hold no expression, at any depth."""
    if not isinstance(value, dict):
        return
    for name, field in model.model_fields.items():
        key = field.alias if field.alias in value else name
        if key not in value:
            continue
        item, here = value[key], f"{path}.{key}"
        extra = field.json_schema_extra
        marked = isinstance(extra, dict) and bool(extra.get("x-autoflow-static"))
        if marked and not expressions.compile_template(item, where).is_static:
            yield errors.Problem(STATIC_MESSAGE, where.replace(field=here))
        for sub in _models_in(field.annotation):
            if isinstance(item, list):
                for i, element in enumerate(item):
                    yield from _static_fields(sub, element, f"{here}[{i}]", where)
            else:
                yield from _static_fields(sub, item, here, where)


def error_path(err: Any, data: Any, prefix: tuple[str, ...] = ()) -> str:
    """The path of a pydantic error in the user's data, without pydantic's union-branch tags.

    pydantic locates an error inside ``str | int`` as ``("duration", "constrained-str")``;
    following the data instead keeps only the keys and indexes the user wrote.
    """
    loc = (*prefix, *err["loc"])
    node, text = data, ""
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif not (err["type"] == "missing" and i == len(loc) - 1):
            continue  # a union branch or validator tag, not a place in the data
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def param_problems(
    exc: pydantic.ValidationError | _Only,
    data: Any,
    where: errors.Where,
    prefix: tuple[str, ...] = (),
) -> Iterator[errors.Problem]:
    """One problem per parameter path (a union's several complaints become the first one)."""
    by_path: dict[str, list[str]] = {}
    for err in exc.errors():
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown parameter"
        elif err["type"] == "missing":
            msg = "required parameter is missing"
        found = by_path.setdefault(error_path(err, data, prefix), [])
        if msg not in found:
            found.append(msg)
    for path, messages in by_path.items():
        # A union (str | int) complains once per branch: "Input should be a valid string or
        # a valid integer".
        text = messages[0] + "".join(
            " or " + m.removeprefix("Input should be ") for m in messages[1:]
        )
        yield errors.Problem(text, where.replace(field=f"with.{path}" if path else "with"))


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
        problems.extend(check_params(action, step.with_, params, where))
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
    if type_ == connector:
        return None
    return (
        f"integration {integration!r} is of type {type_!r}, but {uses} needs an integration "
        f"of type {connector!r}"
    )


def unknown_type_problem(
    name: str, type_: str, registry: registry_mod.Registry | None = None
) -> errors.Problem | None:
    """An Integration whose type no installed connector provides, with the known types."""
    registry = registry or registry_mod.default()
    known = registry.names()
    if type_ in known:
        return None
    return errors.Problem(
        f"integration {name!r} is of type {type_!r}, which no installed connector provides "
        f"(known: {', '.join(sorted(known))})",
        errors.Where(resource=f"Integration/{name}", field="spec.type"),
    )


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
