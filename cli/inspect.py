"""``autoflow connectors`` and ``autoflow schema``: what the registry and the API types offer.

The JSON Schemas printed here are the ones the web UI renders forms from and the AI
assistant answers in: generated from the pydantic models, never written by hand.
"""

from __future__ import annotations

import json
from typing import Any

from autoflow.connectors import registry
from autoflow.crds import errors


def list_connectors() -> int:
    reg = registry.default()
    for name in reg.names():
        conn = reg.connector(name)
        print(f"{name}: {conn.description}")
        for action_name, action in sorted(conn.actions.items()):
            summary = action.description.splitlines()[0] if action.description else ""
            print(f"  {name}.{action_name:<14} {summary}")
    return 0


def action_schema(uses: str) -> dict[str, Any]:
    action = registry.default().action(uses)
    return {
        "uses": action.uses,
        "description": action.description,
        "params": action.params_schema(),
        "output": action.output_schema(),
    }


def show_connector(name: str) -> int:
    conn = registry.default().connector(name)
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


def schema(name: str | None) -> int:
    from autoflow.crds import generate

    kinds = generate.json_schemas()
    if name is None:
        reg = registry.default()
        actions = {
            f"{c}.{a}": action_schema(f"{c}.{a}")
            for c in reg.names()
            for a in sorted(reg.connector(c).actions)
        }
        print(json.dumps({"kinds": kinds, "actions": actions}, indent=2))
    elif name in kinds:
        print(json.dumps(kinds[name], indent=2))
    elif "." in name:
        print(json.dumps(action_schema(name), indent=2))
    else:
        raise errors.AutoflowError(
            f"no schema named {name!r}: give a kind ({', '.join(kinds)}) or an action (core.log)"
        )
    return 0
