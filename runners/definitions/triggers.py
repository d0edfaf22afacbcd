"""A Workflow's triggers: the checks a schema cannot make, and their expressions compiled.

Trigger expressions read the request (or message) that starts the run, not a run: a webhook's
``inputs`` and ``deliveryId.expression`` see ``body``, ``headers`` (names in lower case) and
``query``; a nats trigger's see ``body``, ``headers`` and ``subject``. They are compiled by
the expression language with those names as its only roots::

    Workflow ─ trigger_problems ─► [Problem(field="triggers[0].webhook.inputs.orderId"), ...]
             ─ compile_mapping(trigger.inputs, roots) ─► Mapping.render({"body": ..., ...})

``checks.check_manifest`` calls ``trigger_problems``, so ``autoflow validate`` and the
admission webhook report them as they report step problems.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from autoflow.crds import errors, webhook, workflow
from autoflow.runners import expressions
from autoflow.runners.expressions import compiler as expr_compile
from autoflow.runners.expressions import parse as expr_parse

WEBHOOK_ROOTS = ("body", "headers", "query")
NATS_ROOTS = ("body", "headers", "subject")

Render = Callable[[Mapping[str, Any]], Any]


def _expression(text: str, where: errors.Where, roots: Sequence[str]) -> expressions.Expression:
    # compile_expression with the request's names as the roots: they are given to the
    # compiler as names in scope, the way a list comprehension's variable is.
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise errors.ExpressionSyntaxError("empty expression", where, expression=text)
    if len(text) > expressions.MAX_EXPRESSION_LENGTH:
        message = f"expression is longer than {expressions.MAX_EXPRESSION_LENGTH:,} characters"
        raise errors.ExpressionSyntaxError(message, where, expression=text[:80] + "…")
    source = expr_parse.Source(text, where)
    compiler = expr_compile.Compiler(source, where, expressions.MAX_DEPTH)
    compiler.locals = list(roots)
    try:
        fn = compiler.compile(source.parse())
    except errors.ExpressionSyntaxError as exc:
        # The compiler lists the run's roots; here only the request's exist.
        if "unknown name" in exc.message:
            name = exc.message.split("'")[1] if "'" in exc.message else "?"
            message = f"unknown name {name!r} (trigger expressions start from {', '.join(roots)})"
            raise errors.ExpressionSyntaxError(message, where, expression=text) from None
        raise
    return expressions.Expression(text, frozenset(), where, fn, compiler.operations)


def _compile_value(value: Any, where: errors.Where, roots: Sequence[str]) -> Render:
    if isinstance(value, str):
        return _compile_string(value, where, roots)
    if isinstance(value, dict):
        parts = [
            (key, _compile_value(item, _child(where, str(key)), roots))
            for key, item in value.items()
        ]
        return lambda scope: {key: render(scope) for key, render in parts}
    if isinstance(value, list):
        items = [
            _compile_value(item, _child(where, f"[{i}]"), roots) for i, item in enumerate(value)
        ]
        return lambda scope: [render(scope) for render in items]
    return lambda scope: value


def _child(where: errors.Where, key: str) -> errors.Where:
    field = where.field or ""
    return where.replace(field=f"{field}{key}" if key.startswith("[") else f"{field}.{key}")


def _compile_string(text: str, where: errors.Where, roots: Sequence[str]) -> Render:
    if "${" not in text:
        return lambda scope: text
    parts = expr_parse.split_template(text, where)
    if len(parts) == 1:
        constant = parts[0]
        return lambda scope: constant
    if len(parts) == 3 and not parts[0].strip() and not parts[2].strip():
        return _compile_expression_value(parts[1], where, roots)
    pieces = [
        (part, None) if i % 2 == 0 else ("", _expression(part, where, roots))
        for i, part in enumerate(parts)
        if part or i % 2
    ]

    def interpolate(scope: Mapping[str, Any]) -> str:
        frame = expressions.new_frame(scope)
        out: list[str] = []
        for literal, expression in pieces:
            if expression is None:
                out.append(literal)
            else:
                out.append(expressions.stringify(expression.evaluate(frame)))
        return "".join(out)

    return interpolate


def _compile_expression_value(text: str, where: errors.Where, roots: Sequence[str]) -> Render:
    expression = _expression(text, where, roots)
    return lambda scope: expression.evaluate(expressions.new_frame(scope))


class InputMapping:
    """A compiled ``inputs`` mapping; ``render`` gives the run's inputs from the request."""

    def __init__(self, render: Render) -> None:
        self._render = render

    def render(self, scope: Mapping[str, Any]) -> dict[str, Any]:
        value = self._render(scope)
        assert isinstance(value, dict)
        return value


def compile_mapping(
    value: Mapping[str, Any], where: errors.Where, roots: Sequence[str]
) -> InputMapping:
    """Compile an ``inputs`` mapping; raises ``ExpressionSyntaxError`` naming the field."""
    return InputMapping(_compile_value(dict(value), where, roots))


def compile_delivery(text: str, where: errors.Where, roots: Sequence[str]) -> Render:
    """Compile a ``deliveryId.expression`` (bare, or one ``${ ... }``)."""
    stripped = text.strip()
    if stripped.startswith("${") and stripped.endswith("}"):
        parts = expr_parse.split_template(stripped, where)
        if len(parts) == 3 and not parts[0].strip() and not parts[2].strip():
            stripped = parts[1]
    return _compile_expression_value(stripped, where, roots)


def declared_inputs(body: Any, wf: workflow.Workflow) -> dict[str, Any]:
    """Without a mapping: the body's top-level keys that are declared inputs."""
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if k in wf.spec.inputs}


def trigger_problems(wf: workflow.Workflow, where: errors.Where) -> list[errors.Problem]:
    """Every problem of ``wf``'s triggers a schema cannot see, each naming its field."""
    found: list[errors.Problem] = []
    routes: dict[str, int] = {}
    name = wf.metadata.name or ""
    for index, trigger in enumerate(wf.spec.triggers):
        if trigger.webhook is not None:
            at = f"triggers[{index}].webhook"
            route = trigger.webhook.route(name)
            if route in routes:
                found.append(
                    errors.Problem(
                        f"path {route!r} is also the path of triggers[{routes[route]}]",
                        where.replace(field=f"{at}.path"),
                    )
                )
            routes.setdefault(route, index)
            found += _webhook_problems(wf, trigger.webhook, at, where)
        elif trigger.nats is not None:
            at = f"triggers[{index}].nats"
            found += _mapping_problems(wf, trigger.nats.inputs, f"{at}.inputs", NATS_ROOTS, where)
            found += _delivery_problems(trigger.nats.delivery_id, at, NATS_ROOTS, where)
    return found


def _webhook_problems(
    wf: workflow.Workflow, hook: webhook.WebhookTrigger, at: str, where: errors.Where
) -> list[errors.Problem]:
    found = _mapping_problems(wf, hook.inputs, f"{at}.inputs", WEBHOOK_ROOTS, where)
    found += _delivery_problems(hook.delivery_id, at, WEBHOOK_ROOTS, where)
    hmac = hook.auth.hmac
    if hmac is not None and hmac.preset == "stripe":
        fixed = [f for f in ("header", "algorithm", "format", "prefix") if getattr(hmac, f)]
        for field in fixed:
            found.append(
                errors.Problem(
                    f"the stripe preset fixes {field} (Stripe-Signature: t=...,v1=<sha256 hex>)",
                    where.replace(field=f"{at}.auth.hmac.{field}"),
                )
            )
    elif hmac is not None and hmac.tolerance is not None:
        found.append(
            errors.Problem(
                "tolerance applies to timestamped schemes only (preset: stripe); this "
                "signature carries no timestamp",
                where.replace(field=f"{at}.auth.hmac.tolerance"),
            )
        )
    response = hook.response
    if response.mode == "sync" and response.output is not None:
        if response.output not in wf.spec.outputs:
            known = ", ".join(sorted(wf.spec.outputs)) or "none declared"
            found.append(
                errors.Problem(
                    f"unknown output {response.output!r} (outputs: {known})",
                    where.replace(field=f"{at}.response.output"),
                )
            )
    elif response.mode == "async":
        for field, value, default in (
            ("output", response.output, None),
            ("statusCode", response.status_code, 200),
        ):
            if value != default:
                found.append(
                    errors.Problem(
                        f"{field} applies to mode: sync only (async answers 202 with the run id)",
                        where.replace(field=f"{at}.response.{field}"),
                    )
                )
    signed = ("standardWebhooks", "github", "stripe", "hmac")
    if "GET" in hook.methods and hook.auth.scheme in signed:
        found.append(
            errors.Problem(
                "a signature covers a body, which a GET request has none of; sign POST requests",
                where.replace(field=f"{at}.methods"),
            )
        )
    return found


def _mapping_problems(
    wf: workflow.Workflow,
    mapping: Mapping[str, Any] | None,
    field: str,
    roots: Sequence[str],
    where: errors.Where,
) -> list[errors.Problem]:
    if mapping is None:
        return []
    found: list[errors.Problem] = []
    declared = wf.spec.inputs
    for key in mapping:
        if declared and key not in declared:
            known = ", ".join(sorted(declared))
            found.append(
                errors.Problem(
                    f"unknown input {key!r} (inputs: {known})",
                    where.replace(field=f"{field}.{key}"),
                )
            )
    for key, spec in declared.items():
        if spec.required and spec.default is None and key not in mapping:
            found.append(
                errors.Problem(
                    f"required input {key!r} is not mapped (add {key}: ${{ body.{key} }})",
                    where.replace(field=field),
                )
            )
    try:
        compile_mapping(mapping, where.replace(field=field), roots)
    except errors.ExpressionSyntaxError as exc:
        found.append(errors.Problem(_message(exc), exc.where))
    return found


def _delivery_problems(
    delivery: webhook.DeliveryId | None, at: str, roots: Sequence[str], where: errors.Where
) -> list[errors.Problem]:
    if delivery is None or delivery.expression is None:
        return []
    field = where.replace(field=f"{at}.deliveryId.expression")
    try:
        compile_delivery(delivery.expression, field, roots)
    except errors.ExpressionSyntaxError as exc:
        return [errors.Problem(_message(exc), exc.where)]
    return []


def _message(exc: errors.ExpressionError) -> str:
    text = exc.expression if len(exc.expression) <= 120 else exc.expression[:117] + "..."
    return f"{exc.message} (in ${{ {text} }})" if text else exc.message
