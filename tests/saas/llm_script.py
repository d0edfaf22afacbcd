"""What the two model-provider servers (``openai_api``, ``anthropic_api``) share: the script
of answers a test gives, and the providers' strict structured-output schema rules.

A test scripts each answer in order with ``service.answer(...)``:

- a dict or list: a JSON answer; with structured outputs requested it must follow the
  request's schema (a real provider in strict mode cannot answer otherwise), else the
  request is recorded as a violation;
- a str: the answer's text as it is (a malformed answer, or plain chat text);
- a function of the request body (the JSON the SDK sent) giving one of the above, for
  answers that depend on what was asked;
- ``Fail(status, retry_after)``: the provider's error, e.g. 429 with ``Retry-After``.

When the script is used up, the server answers 500 and records a violation: the code under
test asked more often than the test expected.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import jsonschema

# The keywords both providers accept in a strict schema (OpenAI "Supported schemas",
# Anthropic "JSON Schema limitations"), plus the annotations they ignore.
ALLOWED_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "description",
        "title",
        "$defs",
        "$ref",
    }
)


@dataclasses.dataclass(frozen=True)
class Fail:
    """The provider's error answer."""

    status: int
    retry_after: float | None = None
    message: str = "Rate limit reached"


Answer = dict[str, Any] | list[Any] | str | Fail
Scripted = Answer | Callable[[dict[str, Any]], Answer]


class Script:
    """Answers in order, and every request body seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: list[Scripted] = []
        self.bodies: list[dict[str, Any]] = []

    def add(self, *answers: Scripted) -> None:
        with self._lock:
            self._answers.extend(answers)

    def next(self, body: dict[str, Any]) -> Answer | None:
        with self._lock:
            self.bodies.append(body)
            if not self._answers:
                return None
            scripted = self._answers.pop(0)
        return scripted(body) if callable(scripted) else scripted

    @property
    def left(self) -> int:
        with self._lock:
            return len(self._answers)


def strict_problems(schema: Any, path: str = "$") -> list[str]:
    """Why ``schema`` breaks the strict structured-output rules (empty: it does not)."""
    if not isinstance(schema, dict):
        return [f"{path}: not a schema"]
    found: list[str] = []
    if path == "$" and (schema.get("type") != "object" or "anyOf" in schema):
        found.append("$: the root must be an object, not a union")
    unknown = sorted(set(schema) - ALLOWED_KEYWORDS)
    if unknown:
        found.append(f"{path}: unsupported keywords {unknown}")
    types = schema.get("type")
    kinds = set(types) if isinstance(types, list) else {types}
    if "object" in kinds:
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            found.append(f"{path}: an object must declare its properties")
            props = {}
        if schema.get("additionalProperties") is not False:
            found.append(f"{path}: additionalProperties must be false")
        if set(schema.get("required", ())) != set(props):
            found.append(f"{path}: every property must be required")
        for name, sub in props.items():
            found += strict_problems(sub, f"{path}.{name}")
    if "array" in kinds:
        found += strict_problems(schema.get("items"), f"{path}[]")
    for i, option in enumerate(schema.get("anyOf", ())):
        found += strict_problems(option, f"{path}.anyOf[{i}]")
    for name, sub in schema.get("$defs", {}).items():
        found += strict_problems(sub, f"$defs.{name}")
    return found


def off_schema(answer: Any, schema: dict[str, Any]) -> str | None:
    """Why a scripted JSON answer does not follow the requested schema (None: it does)."""
    try:
        jsonschema.validate(answer, schema)
    except jsonschema.ValidationError as exc:
        return f"the scripted answer breaks the schema at {list(exc.absolute_path)}: {exc.message}"
    return None
