"""JSON Schemas of the API types: the structural schema a CRD needs, and plain JSON Schema.

Both start from pydantic's ``model_json_schema(by_alias=True, mode="validation")``:

    pydantic JSON Schema ──► structural()   inline $refs, collapse Optional, keep x-kubernetes-*,
                         │                  drop what the apiserver rejects ──► CRD openAPIV3Schema
                         └─► json_schema()  keep $defs, drop x-kubernetes-* ──► web UI, AI assistant

A structural schema (Kubernetes API conventions) gives every node a ``type`` unless it carries
``x-kubernetes-int-or-string`` or ``x-kubernetes-preserve-unknown-fields``, and has no type
information inside ``anyOf``. What the conversion does, and why:

- ``Optional[X]`` (``anyOf`` with ``null``) becomes ``X``: an unset field is simply absent.
- A union of several JSON types must be marked in the model: with ``x-kubernetes-int-or-string``
  it may only join ``string`` and ``integer`` (a float cannot be expressed, which is why
  ``meta.Duration`` is ``str | int``); with ``x-kubernetes-preserve-unknown-fields`` the node is
  left untyped (step ``if`` and ``foreach``). Keywords that apply to one JSON type only
  (``maxLength``, ``pattern``, ``maxItems``, ``minimum``...) are lifted out of the branches, where
  the apiserver still applies them to values of that type.
- ``Any`` (the empty schema) becomes ``x-kubernetes-preserve-unknown-fields: true`` with no type:
  the only structural spelling of "any JSON value".
- ``additionalProperties: false`` is dropped (the apiserver forbids it beside ``properties`` and
  prunes unknown fields anyway); ``additionalProperties: true`` needs preserve-unknown-fields,
  which replaces it.
- ``title``, ``examples``, ``discriminator``, ``$schema`` and defaults are dropped; ``const``
  becomes a one-value ``enum``; a numeric ``exclusiveMinimum`` becomes OpenAPI 3.0's boolean form.
  The models apply their defaults when a resource is read; the CRD keeps only the defaults its
  caller names (those a printer column shows).

Whatever the conversion cannot express raises ``SchemaError`` naming the field, so a model
change that would produce an unstructural CRD fails the generator instead of the apiserver.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

import pydantic

Schema = dict[str, Any]

PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"

# Keywords the apiserver applies only to values of one JSON type: safe to lift out of a union.
_TYPED_KEYWORDS = {
    "string": ("minLength", "maxLength", "pattern", "format"),
    "array": ("minItems", "maxItems"),
    "object": ("minProperties", "maxProperties"),
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
}
# Formats the apiserver validates (k8s.io/kube-openapi strfmt); anything else is an error here.
_FORMATS = {"date-time", "datetime", "date", "duration", "uri", "email", "hostname", "uuid",
            "ipv4", "ipv6", "cidr", "byte", "int32", "int64", "float", "double"}  # fmt: skip
_DROPPED = {"title", "examples", "discriminator", "$schema", "$id", "$defs", "default"}
# Value validations passed through as they are; any other keyword is refused, not guessed at.
_KEPT = {"description", "type", "format", "enum", "minimum", "maximum", "exclusiveMinimum",
         "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "minItems",
         "maxItems", "minProperties", "maxProperties"}  # fmt: skip
_KEY_ORDER = [
    "description", "type", "format", "enum", "default", "minimum", "exclusiveMinimum",
    "maximum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern",
    "minItems", "maxItems", "minProperties", "maxProperties", "required", "properties",
    "additionalProperties", "items", INT_OR_STRING, PRESERVE, "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-validations",
]  # fmt: skip
_RULE_ORDER = ["rule", "messageExpression", "message", "reason", "fieldPath", "optionalOldSelf"]


_OWNED_BY_KUBERNETES = ("apiVersion", "kind", "metadata")
_API_VERSION_DOC = "The versioned schema of this object: autoflow.dev/v1alpha1."
_KIND_DOC = "The REST resource this object represents."


class SchemaError(ValueError):
    """A model says something a structural schema cannot; the message names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '<root>'}: {message}")
        self.path = path


def pydantic_schema(model: type[pydantic.BaseModel]) -> Schema:
    """The model's JSON Schema as pydantic makes it, in the manifest (camelCase) form."""
    return model.model_json_schema(by_alias=True, mode="validation")


def structural(model: type[pydantic.BaseModel], keep_defaults: Collection[str] = ()) -> Schema:
    """The structural OpenAPI v3 schema of a resource model, for a CRD's ``openAPIV3Schema``.

    Kubernetes owns ``metadata`` (only ``type: object`` may be said of it) and checks
    ``apiVersion`` and ``kind`` itself. ``keep_defaults`` names dotted field paths
    (``spec.timezone``) whose pydantic default the apiserver should apply; every other default
    is left to the models.
    """
    source = pydantic_schema(model)
    defs: Mapping[str, Schema] = source.get("$defs", {})
    keep = frozenset(keep_defaults)
    properties: Schema = {
        "apiVersion": {"description": _API_VERSION_DOC, "type": "string"},
        "kind": {"description": _KIND_DOC, "type": "string"},
        "metadata": {"type": "object"},
    }
    for name, child in source["properties"].items():
        if name not in properties:
            properties[name] = _convert(child, defs, name, keep, ())
    root: Schema = {"type": "object", "properties": properties}
    root.update({k: v for k, v in source.items() if k.startswith("x-kubernetes-")})
    if "description" in source:
        root["description"] = _clean_description(source["description"])
    required = [name for name in source.get("required", []) if name not in _OWNED_BY_KUBERNETES]
    if required:
        root["required"] = required
    unknown = keep - _all_paths(root)
    if unknown:
        raise SchemaError(min(unknown), "a default is to be kept for a field that is not there")
    return _ordered(root)


def json_schema(
    model: type[pydantic.BaseModel], schema_id: str, *, drop: Collection[str] = ()
) -> Schema:
    """A standalone draft 2020-12 JSON Schema of ``model``, ``$defs`` kept, no x-kubernetes-*.

    ``drop`` removes top-level properties (``status`` for schemas of what a user writes);
    definitions no longer reachable go with them.
    """
    schema = copy.deepcopy(pydantic_schema(model))
    for name in drop:
        schema.get("properties", {}).pop(name, None)
        if name in schema.get("required", []):
            schema["required"].remove(name)
    schema = _titled(_strip_kubernetes(schema))
    defs = schema.pop("$defs", {})
    used = _reachable(schema, defs)
    head: Schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id}
    head.update(schema)
    if used:
        head["$defs"] = {name: defs[name] for name in sorted(used)}
    return head


def walk(schema: Schema, visit: Callable[[str, Schema], None], path: str = "") -> None:
    """Call ``visit(path, node)`` for every node of a structural schema, parents first."""
    visit(path, schema)
    for name, child in schema.get("properties", {}).items():
        walk(child, visit, f"{path}.{name}" if path else name)
    if isinstance(schema.get("additionalProperties"), dict):
        walk(schema["additionalProperties"], visit, f"{path}.*")
    if isinstance(schema.get("items"), dict):
        walk(schema["items"], visit, f"{path}[]")


def _all_paths(schema: Schema) -> set[str]:
    paths: set[str] = set()
    walk(schema, lambda path, _node: paths.add(path))
    return paths


# --- structural conversion ------------------------------------------------------------------


def _convert(
    node: Schema,
    defs: Mapping[str, Schema],
    path: str,
    keep_defaults: frozenset[str],
    seen: tuple[str, ...],
) -> Schema:
    node, seen = _resolve(node, defs, path, seen)
    if "anyOf" in node or "oneOf" in node:
        return _convert_union(node, defs, path, keep_defaults, seen)
    if "allOf" in node or "not" in node or "prefixItems" in node:
        raise SchemaError(path, "allOf, not and tuples cannot be expressed in a structural schema")

    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED or key in ("properties", "additionalProperties", "items", "required"):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "description":
            out[key] = _clean_description(value)
        elif key == "format" and value not in _FORMATS:
            raise SchemaError(path, f"format {value!r} is not one the apiserver knows")
        elif key == "uniqueItems":
            raise SchemaError(path, "uniqueItems is refused: use x-kubernetes-list-type: set")
        elif key in _KEPT or key.startswith("x-kubernetes-"):
            out[key] = copy.deepcopy(value)
        else:
            raise SchemaError(path, f"{key!r} has no equivalent in a structural schema")
    if path in keep_defaults:
        if "default" not in node:
            raise SchemaError(path, "a default is to be kept but the model has none")
        out["default"] = node["default"]
    _exclusive_bounds(out)

    kind = node.get("type")
    if kind is None:
        if not (out.get(PRESERVE) or out.get(INT_OR_STRING)):
            if _is_any(node):
                out[PRESERVE] = True
            else:
                raise SchemaError(path, f"no type and no x-kubernetes escape hatch: {node}")
    elif isinstance(kind, list) or kind == "null":
        raise SchemaError(path, f"type {kind} is not structural")
    elif kind == "object":
        _convert_object(node, out, defs, path, keep_defaults, seen)
    elif kind == "array":
        if "items" not in node:
            raise SchemaError(path, "an array needs an items schema")
        out["items"] = _convert(node["items"], defs, f"{path}[]", keep_defaults, seen)
    if out.get(INT_OR_STRING) and out.get(PRESERVE):
        raise SchemaError(path, "int-or-string and preserve-unknown-fields exclude each other")
    _check_list_map_keys(out, path)
    return out


def _resolve(
    node: Schema, defs: Mapping[str, Schema], path: str, seen: tuple[str, ...]
) -> tuple[Schema, tuple[str, ...]]:
    """Inline a ``$ref``; the referring node's own keys (description, extras) win."""
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            raise SchemaError(path, f"{name} contains itself; a CRD schema cannot recurse")
        if name not in defs:
            raise SchemaError(path, f"unknown $ref {node['$ref']}")
        seen = (*seen, name)
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        node = {**defs[name], **siblings}
    return node, seen


def _convert_union(
    node: Schema,
    defs: Mapping[str, Schema],
    path: str,
    keep_defaults: frozenset[str],
    seen: tuple[str, ...],
) -> Schema:
    outer = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
    union: list[Schema] = node.get("anyOf") or node.get("oneOf") or []
    raw = [b for b in _flatten(union) if b != {"type": "null"}]
    if len(raw) == 1:
        # Optional[X]: the field's own keys (description, default, extras) go onto X.
        return _convert({**raw[0], **outer}, defs, path, keep_defaults, seen)
    branches = [_resolve(b, defs, path, seen)[0] for b in raw]

    types = [b.get("type") for b in branches]
    if outer.get(INT_OR_STRING):
        if not set(types) <= {"string", "integer"}:
            raise SchemaError(
                path, f"x-kubernetes-int-or-string holds only string and integer, not {types}"
            )
    elif not outer.get(PRESERVE):
        raise SchemaError(
            path,
            f"a union of {types} needs x-kubernetes-int-or-string or "
            "x-kubernetes-preserve-unknown-fields in the model",
        )
    merged: Schema = {}
    for branch in branches:
        for key in _TYPED_KEYWORDS.get(branch.get("type", ""), ()):
            if key in branch:
                if key in merged and merged[key] != branch[key]:
                    raise SchemaError(path, f"union branches disagree on {key}")
                merged[key] = branch[key]
    untyped = {k: v for k, v in outer.items() if k != "type"}
    return _convert({**merged, **untyped}, defs, path, keep_defaults, seen)


def _flatten(branches: list[Schema]) -> list[Schema]:
    flat: list[Schema] = []
    for branch in branches:
        if set(branch) <= {"anyOf"} and "anyOf" in branch:
            flat.extend(_flatten(branch["anyOf"]))
        else:
            flat.append(branch)
    return flat


def _convert_object(
    node: Schema,
    out: Schema,
    defs: Mapping[str, Schema],
    path: str,
    keep_defaults: frozenset[str],
    seen: tuple[str, ...],
) -> None:
    properties = node.get("properties", {})
    extra = node.get("additionalProperties")
    if properties:
        out["properties"] = {
            name: _convert(child, defs, f"{path}.{name}" if path else name, keep_defaults, seen)
            for name, child in properties.items()
        }
        if node.get("required"):
            out["required"] = list(node["required"])
    if isinstance(extra, dict):
        if properties:
            raise SchemaError(path, "properties and additionalProperties exclude each other")
        out["additionalProperties"] = _convert(extra, defs, f"{path}.*", keep_defaults, seen)
    elif (extra is True or (extra is None and not properties)) and not out.get(PRESERVE):
        # A free-form object: without preserve-unknown-fields the apiserver would prune it empty.
        raise SchemaError(
            path, "a free-form object needs x-kubernetes-preserve-unknown-fields in the model"
        )


def _check_list_map_keys(out: Schema, path: str) -> None:
    keys = out.get("x-kubernetes-list-map-keys")
    if not keys:
        return
    items = out.get("items", {})
    missing = [k for k in keys if k not in items.get("required", [])]
    if out.get("x-kubernetes-list-type") != "map" or items.get("type") != "object" or missing:
        raise SchemaError(path, f"list-map keys {keys} must be required fields of object items")


def _is_any(node: Schema) -> bool:
    return not (set(node) - _DROPPED - {"description"})


def _exclusive_bounds(out: Schema) -> None:
    # JSON Schema 2020-12 writes exclusiveMinimum: 0; OpenAPI 3.0 writes minimum: 0 plus true.
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        value = out.get(flag)
        if value is not None and not isinstance(value, bool):
            out[bound] = value
            out[flag] = True


def _clean_description(text: str) -> str:
    """Docstring prose for ``kubectl explain``: reST literals as Markdown, paragraphs unwrapped."""
    paragraphs = text.replace("``", "`").strip().split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _ordered(node: Schema) -> Schema:
    """Keys in a fixed, readable order so the generated YAML is stable and diffs stay small."""
    rank = {key: i for i, key in enumerate(_KEY_ORDER)}
    result: Schema = {}
    for key in sorted(node, key=lambda k: (rank.get(k, len(rank)), k)):
        value = node[key]
        if key == "properties":
            value = {name: _ordered(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            value = _ordered(value)
        elif key == "x-kubernetes-validations":
            value = [{k: rule[k] for k in sorted(rule, key=_rule_rank)} for rule in value]
        result[key] = value
    return result


def _rule_rank(key: str) -> tuple[int, str]:
    return (_RULE_ORDER.index(key) if key in _RULE_ORDER else len(_RULE_ORDER), key)


# --- plain JSON Schema -------------------------------------------------------------------------


def _strip_kubernetes(node: Any, names: bool = False) -> Any:
    """Drop x-kubernetes-* keywords; ``names`` marks a map of property or definition names."""
    if isinstance(node, list):
        return [_strip_kubernetes(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: _strip_kubernetes(value, names=not names and key in ("properties", "$defs"))
        for key, value in node.items()
        if names or not key.startswith("x-kubernetes-")
    }


def _titled(node: Any) -> Any:
    """Form labels: pydantic titles ``maxAttempts`` "Maxattempts"; make that "Max attempts"."""
    if isinstance(node, list):
        return [_titled(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _titled(value) for key, value in node.items()}
    for name, field in result.get("properties", {}).items():
        if isinstance(field, dict) and field.get("title") == name.replace("_", " ").title():
            words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()
            field["title"] = words[:1].upper() + words[1:]
    return result


def _reachable(schema: Schema, defs: Mapping[str, Schema]) -> set[str]:
    found: set[str] = set()
    todo: list[Any] = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in found and name in defs:
                    found.add(name)
                    todo.append(defs[name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return found
