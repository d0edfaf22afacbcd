"""Run inputs: checking what a run is given against what the workflow declares.

``resolve`` takes the declared inputs and the given values (from a WorkflowRun, a Schedule, or
``--input k=v`` on the command line, where every value arrives as text) and returns the
values the run sees: types checked or converted, defaults filled in, unknown names refused.
Every problem is found before one is reported (``InputProblems``): a run given none of its
three required inputs says so once, not three times in three attempts. A JSON value given as
text is read with the nesting and size limits files have (``documents.parse_json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from autoflow.crds import errors, workflow
from autoflow.runners import expressions
from autoflow.runners.definitions import documents


class InputProblems(errors.InputError):
    """Several inputs are wrong; ``problems`` names each one (its field is ``inputs.<name>``)."""

    def __init__(self, problems: list[errors.Problem]) -> None:
        super().__init__(problems[0].message, problems[0].where)
        self.problems = problems

    def __str__(self) -> str:
        # One line: it also becomes a WorkflowRun's condition message (operator.runs).
        return "; ".join(str(p) for p in self.problems)


_CHECKS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "string": (str, "a string"),
    "number": ((int, float), "a number"),
    "integer": (int, "an integer"),
    "boolean": (bool, "true or false"),
    "object": (dict, "an object"),
    "array": (list, "an array"),
}


def _from_text(name: str, text: str, decl: workflow.Input, where: errors.Where) -> Any:
    """Convert a command-line value to the declared type."""
    kind = decl.type
    try:
        if kind == "string":
            return text
        if kind == "integer":
            return int(text)
        if kind == "number":
            number = float(text)
            return int(number) if number.is_integer() and "." not in text else number
        if kind == "boolean":
            lowered = text.strip().lower()
            if lowered in {"true", "yes", "1", "on"}:
                return True
            if lowered in {"false", "no", "0", "off"}:
                return False
            raise ValueError(text)
        value = documents.parse_json(text)
    except documents.LimitExceeded as exc:
        raise errors.InputError(
            f"input {name!r}: {exc}", where.replace(field=f"inputs.{name}")
        ) from None
    except ValueError:
        raise errors.InputError(
            f"input {name!r} must be {_CHECKS[kind][1]}; got {text[:80]!r}",
            where.replace(field=f"inputs.{name}"),
        ) from None
    return value


def _check(name: str, value: Any, decl: workflow.Input, where: errors.Where) -> Any:
    expected, wording = _CHECKS[decl.type]
    is_bool = isinstance(value, bool)
    if not isinstance(value, expected) or (is_bool and decl.type in {"number", "integer"}):
        shown = json.dumps(value, default=str)[:80]
        raise errors.InputError(
            f"input {name!r} must be {wording}; got {shown}", where.replace(field=f"inputs.{name}")
        )
    if isinstance(value, float) and not math.isfinite(value):
        # NaN compares false with everything and is not JSON: a run could not record it.
        raise errors.InputError(
            f"input {name!r} must be a finite number; got {value}",
            where.replace(field=f"inputs.{name}"),
        )
    if decl.enum is not None and value not in decl.enum:
        allowed = ", ".join(json.dumps(v) for v in decl.enum)
        raise errors.InputError(
            f"input {name!r} must be one of {allowed}; got {json.dumps(value)[:80]}",
            where.replace(field=f"inputs.{name}"),
        )
    return value


def resolve(
    declared: Mapping[str, workflow.Input],
    given: Mapping[str, Any],
    where: errors.Where,
    *,
    from_text: bool = False,
) -> dict[str, Any]:
    """The inputs a run sees. ``from_text`` converts string values to the declared types.

    Raises ``InputProblems`` naming every input that is unknown, wrong or missing."""
    problems: list[errors.Problem] = []
    known = ", ".join(sorted(declared)) or "none"
    for name in sorted(set(given) - set(declared)):
        problems.append(
            errors.Problem(
                f"unknown input {name!r} (declared inputs: {known})",
                where.replace(field=f"inputs.{name}"),
            )
        )
    values: dict[str, Any] = {}
    for name, decl in declared.items():
        try:
            if name in given:
                value = given[name]
                if from_text and isinstance(value, str):
                    value = _from_text(name, value, decl, where)
                values[name] = _check(name, value, decl, where)
            elif decl.default is not None:
                values[name] = decl.default
            elif decl.required:
                hint = f" ({decl.description})" if decl.description else ""
                raise errors.InputError(
                    f"required input {name!r} is missing{hint}",
                    where.replace(field=f"inputs.{name}"),
                )
            else:
                values[name] = None
        except errors.InputError as exc:
            problems.append(errors.Problem(exc.message, exc.where))
    if problems:
        raise InputProblems(problems)
    return values


# -- what the run store keeps of the inputs ---------------------------------------------------

# What a run store keeps instead of an input declared ``secret: true``.
REDACTED: dict[str, Any] = {"redacted": True}


def secret_names(declared: Mapping[str, workflow.Input]) -> list[str]:
    """The inputs declared ``secret: true``, whose values a run store never keeps."""
    return sorted(name for name, decl in declared.items() if decl.secret)


def redact(values: Mapping[str, Any], secret: Iterable[str]) -> dict[str, Any]:
    """``values`` with each of ``secret`` that has a value replaced by ``REDACTED``."""
    hidden = set(secret)
    return {
        name: dict(REDACTED) if name in hidden and value is not None else value
        for name, value in values.items()
    }


def is_redacted(value: Any) -> bool:
    return isinstance(value, dict) and value == REDACTED


def data_subject(
    spec: workflow.WorkflowSpec, values: Mapping[str, Any], where: errors.Where
) -> str | None:
    """Whose personal data a run holds: the Workflow's ``dataSubject`` over the run's inputs
    (None when it declares none). One function for every way a run starts (``autoflow run``,
    the Job runner, the operator's check when a run is created), so a person's runs are
    found by the same value wherever they ran."""
    if not spec.data_subject:
        return None
    at = where.replace(field="dataSubject")
    try:
        template = expressions.compile_template(spec.data_subject, at)
        subject = template.render({"inputs": dict(values)})
    except errors.ExpressionError as exc:
        raise errors.InputError(f"dataSubject: {exc.message}", at) from None
    if not isinstance(subject, str) or not subject.strip():
        raise errors.InputError(f"dataSubject must give a non-empty text; got {subject!r}", at)
    return subject
