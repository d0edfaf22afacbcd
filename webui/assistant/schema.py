"""The model-facing Workflow schema: the Workflow model's JSON Schema, made strict.

``crds.workflow.Workflow`` is the one definition; this module derives from its JSON Schema
the schema the model answers in (``answer_schema``) and turns an answer back into a
manifest (``to_manifest``)::

    Workflow.model_json_schema()  ─ facing(): keep what a draft writes, reshape free-form
                                    parts (below) ─ sdk.strict.strict_schema() ─ the model
    the model's JSON  ─ the converters facing() built alongside ─ a Workflow manifest

Strict structured outputs cannot say "any value" or "a map with any keys", which the
Workflow has in a few places: a step's ``with`` (the action's parameters), the spec's
``outputs``, an input's ``default``. They are reshaped:

- a map (``with``, ``outputs``) becomes a list of ``{name, value}`` pairs;
- any value becomes its JSON text (``"\\"#billing\\""``, ``"42"``, ``"${ inputs.email }"``):
  text that is not JSON is kept as a string, so an expression may be written bare.

Fields a draft does not write (status, runtime, retention, labels, the builder's positions)
are left out; a field the model leaves ``null`` is left out of the manifest.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from autoflow.connectors.sdk import strict
from autoflow.crds import meta, workflow

Convert = Callable[[Any], Any]

# Fields of each definition a draft leaves out.
LEFT_OUT: dict[str, frozenset[str]] = {
    "Workflow": frozenset({"status", "apiVersion", "kind"}),
    "ObjectMeta": frozenset(
        {"namespace", "uid", "generation", "resourceVersion", "labels", "annotations"}
    ),
    "WorkflowSpec": frozenset({"runtime", "runHistory", "retention", "concurrency", "dataSubject"}),
    "Step": frozenset({"ui"}),
}
JSON_TEXT = (
    'The value as JSON text: a string in quotes ("#billing"), a number, true, an object '
    "or list; text that is not JSON is taken as a string, so an expression may be written "
    "as is: ${ inputs.email }."
)


def _identity(value: Any) -> Any:
    return value


def _from_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


_SHAPING = frozenset({"type", "anyOf", "oneOf", "allOf", "$ref", "properties", "items", "enum"})


def _free(node: Any) -> bool:
    """Any value is allowed: no keyword says what it is."""
    return node is True or (isinstance(node, dict) and not (set(node) & _SHAPING))


class _Facing:
    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs

    def node(self, node: Any, name: str | None = None) -> tuple[dict[str, Any], Convert]:
        if _free(node):
            return {"type": "string", "description": JSON_TEXT}, _from_json
        assert isinstance(node, dict)
        if "$ref" in node:
            ref = node["$ref"].rsplit("/", 1)[-1]
            merged = {**self.defs[ref], **{k: v for k, v in node.items() if k != "$ref"}}
            return self.node(merged, ref)
        described = {k: node[k] for k in ("description",) if k in node}
        if "anyOf" in node:
            return self.union(node, described)
        kind = node.get("type")
        if kind == "object":
            props = node.get("properties") or {}
            extra = node.get("additionalProperties")
            if not props:
                return self.pairs(extra if extra is not None else True, described)
            return self.object(node, name, described)
        if kind == "array":
            items, convert = self.node(node.get("items", {}))
            schema = {**_plain(node), "items": items}
            return schema, lambda v: [convert(x) for x in v] if isinstance(v, list) else v
        return _plain(node), _identity

    def pairs(self, values: Any, described: dict[str, Any]) -> tuple[dict[str, Any], Convert]:
        value_schema, convert = self.node(values)
        item = {
            "type": "object",
            "properties": {"name": {"type": "string"}, "value": value_schema},
            "required": ["name", "value"],
        }
        text = described.get("description", "")
        schema = {
            "type": "array",
            "items": item,
            "description": (text + " " if text else "") + "As a list of name/value pairs.",
        }

        def to_map(value: Any) -> Any:
            if not isinstance(value, list):
                return value
            return {
                str(p.get("name")): convert(p.get("value")) for p in value if isinstance(p, dict)
            }

        return schema, to_map

    def union(
        self, node: dict[str, Any], described: dict[str, Any]
    ) -> tuple[dict[str, Any], Convert]:
        options: list[dict[str, Any]] = []
        by_kind: dict[type, Convert] = {}
        for option in node["anyOf"]:
            schema, option_convert = self.node(option)
            flat = schema["anyOf"] if "anyOf" in schema and len(schema) == 1 else [schema]
            options += flat
            kind = schema.get("type")
            if kind == "array":
                by_kind[list] = option_convert
            elif kind == "object":
                by_kind[dict] = option_convert

        def convert(value: Any) -> Any:
            return by_kind.get(type(value), _identity)(value)

        return {"anyOf": options, **described}, convert

    def object(
        self, node: dict[str, Any], name: str | None, described: dict[str, Any]
    ) -> tuple[dict[str, Any], Convert]:
        left_out = LEFT_OUT.get(name or "", frozenset())
        props: dict[str, Any] = {}
        converts: dict[str, Convert] = {}
        for key, sub in (node.get("properties") or {}).items():
            if key in left_out:
                continue
            props[key], converts[key] = self.node(sub)
        required = [k for k in node.get("required", ()) if k in props]
        schema = {"type": "object", "properties": props, "required": required, **described}

        def convert(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            return {
                k: converts.get(k, _identity)(v)
                for k, v in value.items()
                if v is not None and k in converts
            }

        return schema, convert


def _plain(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if not k.startswith("x-") and k != "title"}


@functools.cache
def _built() -> tuple[dict[str, Any], Convert]:
    source = workflow.Workflow.model_json_schema(by_alias=True)
    facing, convert = _Facing(source.get("$defs", {})).node(source, "Workflow")
    return strict.strict_schema(facing), convert


def answer_schema() -> dict[str, Any]:
    """The strict JSON Schema of a drafted Workflow (metadata and spec)."""
    copied: dict[str, Any] = json.loads(json.dumps(_built()[0]))  # the caller may change it
    return copied


def to_answer(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A Workflow manifest in the answer's shape (``to_manifest``'s inverse for the fields a
    draft writes): maps as name/value pairs, free values as JSON text, every field present."""
    made: dict[str, Any] = _fill(dict(manifest), _built()[0])
    return made


def _fill(value: Any, node: dict[str, Any]) -> Any:
    if "anyOf" in node:
        if value is None:
            return None
        for option in node["anyOf"]:
            kind = option.get("type")
            kinds = set(kind) if isinstance(kind, list) else {kind}
            if isinstance(value, list | dict) and "array" in kinds:
                return _fill(value, option)
            if isinstance(value, dict) and "object" in kinds:
                return _fill(value, option)
        return value
    kind = node.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if value is None:
        return None
    if isinstance(value, dict) and "array" in kinds:
        return [_fill({"name": k, "value": v}, node["items"]) for k, v in value.items()]
    if isinstance(value, dict) and "properties" in node:
        return {k: _fill(value.get(k), sub) for k, sub in node["properties"].items()}
    if isinstance(value, list) and "items" in node:
        return [_fill(v, node["items"]) for v in value]
    if str(node.get("description", "")).startswith(JSON_TEXT) and not isinstance(value, str):
        return json.dumps(value)
    if str(node.get("description", "")).startswith(JSON_TEXT) and isinstance(value, str):
        # A string that would read as JSON (a number, true) must stay a string.
        return value if _from_json(value) == value else json.dumps(value)
    return value


def to_manifest(answer: Any) -> dict[str, Any]:
    """The Workflow manifest of an answer in ``answer_schema`` (not validated here)."""
    body = _built()[1](answer) if isinstance(answer, dict) else {}
    return {"apiVersion": meta.API_VERSION, "kind": "Workflow", **body}
