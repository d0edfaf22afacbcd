"""``autoflow connectors`` and ``autoflow schema``: what the registry and the API types offer.

The JSON Schemas printed here are the ones the web UI renders forms from and the AI
assistant answers in: generated from the pydantic models, never written by hand.
"""

from __future__ import annotations

import json
from typing import Any

from autoflow.connectors import registry, sdk
from autoflow.crds import errors


def list_connectors(output: str = "text") -> int:
    reg = registry.default()
    connectors = [(name, reg.connector(name)) for name in reg.names()]
    if output == "json":
        doc = [
            {
                "name": name,
                "description": conn.description,
                "actions": [
                    {"uses": f"{name}.{a}", "summary": _summary(conn.actions[a].description)}
                    for a in sorted(conn.actions)
                ],
            }
            for name, conn in connectors
        ]
        print(json.dumps(doc, indent=2))
        return 0
    # One column for every action, however long the longest name.
    width = max((len(f"{name}.{a}") for name, conn in connectors for a in conn.actions), default=0)
    for name, conn in connectors:
        print(f"{name}: {conn.description}")
        for action_name, action in sorted(conn.actions.items()):
            print(f"  {f'{name}.{action_name}':<{width}}  {_summary(action.description)}".rstrip())
    return 0


def _summary(description: str) -> str:
    return description.splitlines()[0] if description else ""


def action_schema(uses: str) -> dict[str, Any]:
    action = registry.default().action(uses)
    return {
        "uses": action.uses,
        "description": action.description,
        "params": action.params_schema(),
        "output": action.output_schema(),
    }


def show_connector(name: str, output: str = "text") -> int:
    conn = registry.default().connector(name)
    if output == "text":
        print(connector_text(name, conn), end="")
        return 0
    doc = {
        "connector": name,
        "description": conn.description,
        "integration": {
            "settings": conn.settings_schema(),
            "secretKeys": conn.secret_keys,
            "healthProbe": conn.health_probe.description if conn.health_probe else None,
        },
        "actions": [action_schema(f"{name}.{a}") for a in sorted(conn.actions)],
    }
    print(json.dumps(doc, indent=2))
    return 0


def connector_text(name: str, conn: sdk.Connector) -> str:
    """A connector for a person at a terminal: what an Integration of its type holds, then
    each action with a table of its parameters and what it outputs."""
    out = [f"{name}: {conn.description}", ""]
    probe = conn.health_probe.description if conn.health_probe else "none"
    out.append(f"Health probe: {probe}")
    settings = conn.settings_schema()
    if settings.get("properties"):
        out += ["", "Integration settings:", *_table(settings, "SETTING")]
    if conn.secret_keys:
        out += ["", "Secret keys:"]
        out += _columns([["KEY", "READ FOR"], *([k, v] for k, v in conn.secret_keys.items())])
    for action_name in sorted(conn.actions):
        action = conn.actions[action_name]
        out += ["", f"{action.uses}: {_summary(action.description)}"]
        params = action.params_schema()
        out += _table(params) if params.get("properties") else ["  no parameters"]
        result = action.output_schema()
        fields = result.get("properties") or {}
        if fields:
            defs = result.get("$defs") or {}
            listed = ", ".join(f"{k} ({_type(v, defs)})" for k, v in fields.items())
            out.append(f"  output: {listed}")
        else:
            out.append(f"  output: {_type(result, {})}")
    return "\n".join(out) + "\n"


_SCALARS = {"string", "integer", "number", "boolean"}


def _type(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """A JSON Schema type in a few words: string, list of string, GET|POST, ..."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        kinds = [_type(s, defs) for s in schema["anyOf"] if s.get("type") != "null"]
        if set(kinds) >= _SCALARS:
            kinds = ["scalar", *(k for k in kinds if k not in _SCALARS)]
        return " or ".join(kinds)
    if "enum" in schema:
        return "|".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return str(schema["const"])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}), defs)}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type(schema['additionalProperties'], defs)}"
    return str(kind or "any")


def _table(schema: dict[str, Any], heading: str = "PARAMETER") -> list[str]:
    """The properties of an object schema as aligned columns."""
    required = set(schema.get("required") or [])
    defs = schema.get("$defs") or {}
    rows = [[heading, "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"]]
    for field, prop in (schema.get("properties") or {}).items():
        default = prop.get("default")
        shown = "" if default in (None, "", [], {}) else json.dumps(default)
        description = " ".join(str(prop.get("description", "")).split())
        mark = "yes" if field in required else ""
        rows.append([field, _type(prop, defs), mark, shown, description])
    return _columns(rows)


def _columns(rows: list[list[str]]) -> list[str]:
    """Rows as lines indented by two, every column but the last padded to its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  "
        + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


def schema(name: str | None, output: str = "json") -> int:
    from autoflow.crds import generate

    def emit(doc: Any) -> None:
        if output == "yaml":
            import yaml

            print(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), end="")
        else:
            print(json.dumps(doc, indent=2))

    kinds = generate.json_schemas()
    if name is None:
        reg = registry.default()
        actions = {
            f"{c}.{a}": action_schema(f"{c}.{a}")
            for c in reg.names()
            for a in sorted(reg.connector(c).actions)
        }
        emit({"kinds": kinds, "actions": actions})
    elif name in kinds:
        emit(kinds[name])
    elif "." in name:
        emit(action_schema(name))
    else:
        raise errors.AutoflowError(
            f"no schema named {name!r}: give a kind ({', '.join(kinds)}) or an action (core.log)"
        )
    return 0
