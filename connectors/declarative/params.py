"""The Params model of a declarative action, generated from its declared parameters.

Each parameter becomes a field aliased to its name in the file, so a step's ``with`` block,
validation errors and the JSON Schema all use the names the definition uses::

    owner: {type: string, required: true}          owner: str                     (required)
    state: {enum: [open, closed], default: open}   state: Literal[...] = "open"
    labels: {type: array, items: {type: string}}   labels: list[str] | None = None
    to: {type: array, items: {type: object, properties: {email: ...}}}  → a nested model

Python field names are ``p_<name>`` so a parameter named ``json`` or ``schema`` cannot shadow
a pydantic attribute. Paginated actions get one more field, ``maxPages``.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from autoflow.connectors import sdk
from autoflow.connectors.declarative import format as fmt
from autoflow.crds import errors

_SCALARS: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "any": Any,
}


def params_model(
    definition: fmt.Definition,
    action: str,
    spec: fmt.Action,
    paging: fmt.AnyPaging | None,
    source: str,
) -> type[sdk.Params]:
    """The model a step's ``with`` block is validated into before the action runs."""
    fields: dict[str, Any] = {}
    for name, param in spec.params.items():
        fields[f"p_{name}"] = _field(param, name, f"actions.{action}.params.{name}", source)
    if paging is not None:
        fields["p_maxPages"] = (
            int,
            pydantic.Field(
                default=paging.max_pages,
                ge=1,
                le=fmt.MAX_PAGES_LIMIT,
                alias="maxPages",
                description="Read at most this many pages.",
            ),
        )
    model_name = _class_name(definition.name, action, "Params")
    return pydantic.create_model(model_name, __base__=sdk.Params, __module__=__name__, **fields)


def _field(param: fmt.Param, alias: str, at: str, source: str) -> tuple[Any, Any]:
    annotation = _annotation(param, at, source)
    info: dict[str, Any] = {
        "alias": alias,
        "title": alias,
        "description": param.description or None,
        "json_schema_extra": {"format": param.format} if param.format else None,
    }
    if param.required:
        return annotation, pydantic.Field(..., **info)
    if param.default is None:
        return annotation | None, pydantic.Field(None, **info)
    try:
        default = pydantic.TypeAdapter(annotation).validate_python(param.default)
    except pydantic.ValidationError as exc:
        where = errors.Where(file=source, field=f"{at}.default")
        message = f"the default does not fit the type: {exc.errors()[0]['msg']}"
        raise errors.ValidationError([errors.Problem(message, where)]) from None
    return annotation, pydantic.Field(default, **info)


def _annotation(param: fmt.Param, at: str, source: str) -> Any:
    if param.enum:
        return Literal[tuple(param.enum)]
    if param.type == "array":
        item = _annotation(param.items, f"{at}.items", source) if param.items else Any
        return list[item]  # type: ignore[valid-type]
    if param.type == "object":
        if param.properties is None:
            return dict[str, Any]
        fields: dict[str, Any] = {
            f"p_{name}": _field(inner, name, f"{at}.properties.{name}", source)
            for name, inner in param.properties.items()
        }
        model_name = _class_name(source.rpartition("/")[2].partition(".")[0], *at.split(".")[1:])
        return pydantic.create_model(model_name, __base__=sdk.Params, __module__=__name__, **fields)
    return _SCALARS[param.type]


def _class_name(*parts: str) -> str:
    words = [w for part in parts for w in part.replace("-", "_").split("_")]
    return "".join(w[:1].upper() + w[1:] for w in words)
