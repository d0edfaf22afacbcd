"""Kubernetes conditions on plain status dicts: set one, read one, keep transition times.

Conditions follow the Kubernetes API conventions: a list keyed by ``type``; each with
``status`` (True/False/Unknown), a CamelCase ``reason``, a human ``message``, the
``observedGeneration`` it was computed for, and ``lastTransitionTime``, which changes only
when ``status`` does.
"""

from __future__ import annotations

import time
from typing import Any

from autoflow.crds import meta


def now() -> str:
    return meta.timestamp(time.time())


def get(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    for cond in conditions or []:
        if cond.get("type") == type_:
            return cond
    return None


def is_true(conditions: list[dict[str, Any]] | None, type_: str) -> bool:
    cond = get(conditions, type_)
    return bool(cond and cond.get("status") == "True")


def set_condition(
    conditions: list[dict[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str = "",
    generation: int | None = None,
    at: str | None = None,
) -> list[dict[str, Any]]:
    """A new conditions list with ``type_`` set; other conditions are kept as they were."""
    previous = get(conditions, type_)
    transition = at or now()
    if previous is not None and previous.get("status") == status:
        transition = previous.get("lastTransitionTime") or transition
    cond: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": transition,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    others = [c for c in conditions or [] if c.get("type") != type_]
    return [*others, cond]
