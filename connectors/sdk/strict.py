"""JSON Schemas that meet the providers' strict structured-output rules.

OpenAI's structured outputs (``response_format: {type: json_schema, strict: true}``, the
"Supported schemas" section of its guide) and Anthropic's (``output_config.format``, the
"JSON schema limitations" of its structured-outputs page) accept a subset of JSON Schema:

- the root is an object, not a union (``anyOf`` at the root is refused);
- every object lists all its properties in ``required`` and sets ``additionalProperties:
  false``: a field that may be left out is made *nullable* instead (``anyOf [T, null]``);
- only some keywords are understood. Both take ``type``, ``properties``, ``required``,
  ``additionalProperties``, ``items``, ``enum``, ``const``, ``anyOf`` and ``description``;
  numeric and length bounds, ``pattern``, ``format``, ``default`` and the like are refused
  by one or the other, so they are moved into the description, where the model still reads
  them, and checked afterwards by the caller's own validation;
- an object without declared properties (a free-form map) cannot be strict at all.

``strict_schema`` rewrites a schema (pydantic's or a user's) to those rules, inlining ``$ref``
(the schemas here are not recursive), and raises ``StrictSchemaError`` naming the path of
what cannot be made strict. ``unnullable`` undoes the nullable trick on an answer: a ``null``
for a field that was optional in the original schema is dropped again.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

# Kept as they are: understood by both providers.
_KEPT = ("type", "description", "enum", "const")
# Moved into the description: a provider refuses them or ignores them.
_DESCRIBED = (
    "pattern",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "default",
)
_UNIONS = ("anyOf", "oneOf")


class StrictSchemaError(ValueError):
    """The schema cannot be made strict; the message names the path of the part."""


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` rewritten to the strict rules (see the module docstring)."""
    defs = {**schema.get("$defs", {}), **schema.get("definitions", {})}
    result = _strict(dict(schema), defs, "$", set())
    if result.get("type") != "object" or any(k in result for k in _UNIONS):
        raise StrictSchemaError("$: the root of a strict schema must be an object, not a union")
    return result


def _resolve(node: dict[str, Any], defs: Mapping[str, Any], path: str, seen: set[str]) -> Any:
    ref = node["$ref"]
    name = ref.rsplit("/", 1)[-1]
    if not ref.startswith(("#/$defs/", "#/definitions/")) or name not in defs:
        raise StrictSchemaError(f"{path}: cannot resolve $ref {ref!r}")
    if name in seen:
        raise StrictSchemaError(f"{path}: recursive $ref {ref!r} is not supported")
    merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
    return merged, seen | {name}


def _strict(node: Any, defs: Mapping[str, Any], path: str, seen: set[str]) -> dict[str, Any]:
    if node is True or node == {}:
        raise StrictSchemaError(
            f"{path}: any value is allowed here, which a strict schema cannot say"
        )
    if not isinstance(node, dict):
        raise StrictSchemaError(f"{path}: not a schema: {node!r}")
    if "$ref" in node:
        node, seen = _resolve(node, defs, path, seen)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        node = {**{k: v for k, v in node.items() if k != "allOf"}, **all_of[0]}
        return _strict(node, defs, path, seen)
    if "allOf" in node:
        raise StrictSchemaError(f"{path}: allOf with several schemas is not supported")
    out: dict[str, Any] = {k: copy.deepcopy(node[k]) for k in _KEPT if k in node}
    notes = [f"{k}: {json.dumps(node[k])}" for k in _DESCRIBED if k in node]
    if notes:
        text = out.get("description", "")
        out["description"] = (f"{text} " if text else "") + f"({'; '.join(notes)})"
    for key in _UNIONS:
        if key in node:
            out["anyOf"] = [
                _strict(option, defs, f"{path}.{key}[{i}]", seen)
                for i, option in enumerate(node[key])
            ]
    types = node.get("type")
    kinds = set(types) if isinstance(types, list) else {types}
    if "object" in kinds or "properties" in node:
        properties = node.get("properties") or {}
        if not properties:
            raise StrictSchemaError(
                f"{path}: an object without declared properties (a free-form map) cannot be "
                "strict; declare its properties or use a list of name/value pairs"
            )
        required = set(node.get("required", ()))
        out["type"] = types if types else "object"
        out["properties"] = {}
        for name, sub in properties.items():
            made = _strict(sub, defs, f"{path}.{name}", seen)
            out["properties"][name] = made if name in required else _nullable(made)
        out["required"] = list(properties)
        out["additionalProperties"] = False
    if "array" in kinds:
        items = node.get("items")
        if items is None:
            raise StrictSchemaError(f"{path}: an array must say what its items are")
        out["items"] = _strict(items, defs, f"{path}[]", seen)
    if "type" not in out and "anyOf" not in out and "enum" not in out and "const" not in out:
        raise StrictSchemaError(f"{path}: no type given")
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, also allowing null (how an optional field is said in a strict schema)."""
    if _allows_null(schema):
        return schema
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    if "enum" in schema:
        made = {**schema, "enum": [*schema["enum"], None]}
        if isinstance(schema.get("type"), str):
            made["type"] = [schema["type"], "null"]
        return made
    if isinstance(schema.get("type"), str) and "properties" not in schema:
        return {**schema, "type": [schema["type"], "null"]}
    description = schema.get("description")
    inner = {k: v for k, v in schema.items() if k != "description"}
    made = {"anyOf": [inner, {"type": "null"}]}
    return {**made, "description": description} if description else made


def _allows_null(schema: Mapping[str, Any]) -> bool:
    types = schema.get("type")
    if types == "null" or (isinstance(types, list) and "null" in types):
        return True
    return any(_allows_null(option) for option in schema.get("anyOf", ()))


def unnullable(value: Any, original: Mapping[str, Any]) -> Any:
    """``value`` (an answer to ``strict_schema(original)``) with ``null`` dropped for the
    fields ``original`` did not require, so it validates against ``original`` again."""
    defs = {**original.get("$defs", {}), **original.get("definitions", {})}
    return _unnull(value, dict(original), defs, 0)


def _unnull(value: Any, schema: Any, defs: Mapping[str, Any], depth: int) -> Any:
    if not isinstance(schema, dict) or depth > 64:
        return value
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    for key in ("allOf", *_UNIONS):
        options = schema.get(key)
        if isinstance(options, list) and len(options) == 1:
            return _unnull(value, options[0], defs, depth + 1)
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        required = set(schema.get("required", ()))
        props = schema["properties"]
        return {
            k: _unnull(v, props.get(k), defs, depth + 1)
            for k, v in value.items()
            if not (v is None and k not in required and not _allows_null(props.get(k) or {}))
        }
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_unnull(v, schema["items"], defs, depth + 1) for v in value]
    return value
