"""A step's parameters (``with:``) checked against its action's model before anything runs.

``check_params`` reports what can be known when the workflow is compiled: unknown and missing
parameters, static values of the wrong type (validated by the action's own model, field
validators included) and expressions in fields that must be written literally
(``x-autoflow-static``, such as SQL text). Values computed by expressions are checked by the
engine when it renders them. pydantic's errors become problems through ``crds.problems``.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterator
from typing import Any

import pydantic

from autoflow.connectors import sdk
from autoflow.crds import errors, problems
from autoflow.runners import expressions


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
            yield from problems.problems(exc, with_, where, under="with", noun="parameter")
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
            yield from problems.problems(
                _Only(exc, own), static, where, under="with", noun="parameter"
            )


class _Only:
    """A pydantic ValidationError narrowed to some of its errors (for ``problems.problems``)."""

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
