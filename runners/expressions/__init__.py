"""The sandboxed expression language of workflow manifests: ``${ steps.fetch.output.total }``.

This module is the public face of the language; the work is done by the ``expr_*`` modules.
A manifest value goes through three stages:

1. ``compile_template`` walks a field's value (any JSON-like tree) once, when the workflow is
   loaded. Strings without ``${`` stay as they are. In the others, ``expr_parse`` finds
   each ``${ ... }`` and turns ``$${`` into a literal ``${``.
2. ``compile_expression`` has ``expr_parse`` rewrite the token stream (``&&``, ``||``, ``!``,
   ``true``, ``false``, ``null``, ``.from``) and parse the result, then ``expr_compile`` turns
   the allowed nodes into nested closures. Anything outside the whitelist is an
   ``ExpressionSyntaxError`` here, at validate time, with a column.
3. ``Template.render`` / ``Expression.evaluate`` call the closures with the run's scope
   (``inputs``, ``steps``, ``run``, ``item``, ``index``, ``env``, ``error``). Lookups and
   loops come from ``expr_runtime``, operators from ``expr_operators``, functions from
   ``expr_functions``; every failure (an ``expr_values.EvalFailure``) becomes an
   ``ExpressionEvalError`` naming the field, the failing path and the expression.

The sandbox is structural: no ``eval``, no code objects, no ``getattr``. ``a.b`` and ``a['b']``
are key lookups on mappings, ``a[0]`` an index into a list or text, calls go only to the named
functions of ``expr_functions.FUNCTIONS``, and loops exist only as list comprehensions.

Every evaluation is bounded. One render of a whole field (all the expressions of a ``with:``
tree together, or an ``if:``, a ``foreach:``, the outputs) gets one ``expr_runtime.Budget``
of ``MAX_WORK`` units, and everything that does work pays from it first (see
``expr_runtime``), so the field's evaluation ends, with an error naming the step and field,
before it builds or walks more than that. It runs on the event loop, in the caller's thread:
the budget bounds it to a fraction of a second, which is cheaper and no less prompt than a
thread hop (a thread cannot be stopped either, and would hold the GIL through the same
work). A deadline (the step's timeout for ``with:``, else ``MAX_SECONDS``) is checked as the
budget is spent. docs/expressions.md states the limits for users.

The ``MAX_*`` limits below are read each time they apply, so changing them takes effect at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoflow.crds import errors
from autoflow.runners.expressions import compiler as expr_compile
from autoflow.runners.expressions import parse as expr_parse
from autoflow.runners.expressions import runtime as expr_runtime
from autoflow.runners.expressions import values as expr_values

Scope = Mapping[str, Any]
Fn = expr_runtime.Fn

ROOTS = expr_compile.ROOTS
MAX_EXPRESSION_LENGTH = 10_000  # characters of one expression
MAX_DEPTH = 100  # nesting of compiled nodes, so evaluation stays far from the recursion limit
# What one evaluation of a field may do, in units: a character built or walked is 1, an item
# of a list or map expr_values.ITEM (16), an operation expr_values.OPERATION (64).
MAX_WORK = 16_000_000
MAX_SECONDS = 2.0  # a safety net only: the budget ends any evaluation well before

truthy = expr_values.truthy


def stringify(value: Any) -> str:
    """The text of a value in interpolation: str as-is, null as "", true/false, compact JSON."""
    try:
        return expr_values.stringify(value)
    except expr_values.EvalFailure as exc:
        raise errors.ExpressionEvalError(exc.message) from None


def new_frame(scope: Scope, seconds: float | None = None) -> expr_runtime.Frame:
    """The scope of one evaluation, with a fresh budget; ``seconds`` is the step's timeout."""
    if seconds is not None and seconds < MAX_SECONDS:
        budget = expr_runtime.Budget(MAX_WORK, seconds, timeout=True)
    else:
        budget = expr_runtime.Budget(MAX_WORK, MAX_SECONDS)
    return expr_runtime.frame(scope, budget)


class Expression:
    """One compiled expression; ``references`` lists the (root, first key) pairs it reads.

    ``evaluate`` takes the run's scope (a fresh budget then starts) or the frame of the field
    being rendered (its budget is shared).
    """

    __slots__ = ("_cost", "_fn", "references", "text", "where")

    def __init__(
        self,
        text: str,
        references: frozenset[tuple[str, ...]],
        where: errors.Where,
        fn: Fn,
        operations: int = 1,
    ) -> None:
        self.text = text
        self.references = references
        self.where = where
        self._fn = fn
        self._cost = operations * expr_values.OPERATION

    def evaluate(self, scope: Scope) -> Any:
        frame = scope if type(scope) is expr_runtime.Frame else new_frame(scope)
        try:
            budget = frame.budget
            budget.left -= self._cost  # Budget.spend, inlined: this runs for every expression
            if budget.left < budget.checkpoint:
                budget.spend(0)
            return self._fn(frame)
        except expr_values.EvalFailure as exc:
            raise errors.ExpressionEvalError(
                exc.message, self.where, expression=self.text
            ) from None
        except RecursionError:
            message = "data nested too deeply to evaluate"
            raise errors.ExpressionEvalError(message, self.where, expression=self.text) from None

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


class Template:
    """A compiled manifest value: ``render`` returns it with every ``${ ... }`` evaluated.

    ``is_static`` is true when rendering has nothing to do; ``render`` then returns the original
    object itself. (A string whose only ``$`` are ``$${`` escapes is not static: rendering
    turns them into ``${``.) Static parts inside a dynamic dict or list are shared, not copied.
    """

    __slots__ = ("_render", "is_static", "references", "value")

    def __init__(
        self,
        value: Any,
        render: Fn | None,
        references: frozenset[tuple[str, ...]],
    ) -> None:
        self.value = value
        self.is_static = render is None
        self.references = references
        self._render: Fn = render or (lambda scope: value)

    def render(self, scope: Scope, *, seconds: float | None = None) -> Any:
        """The value with its expressions evaluated, all from one budget.

        ``seconds``: the step's timeout; evaluation stops at it (it never runs past
        ``MAX_SECONDS`` anyway).
        """
        if self.is_static:
            return self.value
        return self._render(new_frame(scope, seconds))

    def __repr__(self) -> str:
        return f"Template({expr_values.show(self.value)})"


def compile_expression(text: str, where: errors.Where) -> Expression:
    """Compile bare expression text (no ``${ }``) once; raises ``ExpressionSyntaxError``."""
    if not isinstance(text, str):
        message = f"an expression must be text, got {expr_values.kind(text)}"
        raise errors.ExpressionSyntaxError(message, where, expression=expr_values.show(text))
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise errors.ExpressionSyntaxError("empty expression", where, expression=text)
    if len(text) > MAX_EXPRESSION_LENGTH:
        message = f"expression is longer than {MAX_EXPRESSION_LENGTH:,} characters"
        raise errors.ExpressionSyntaxError(message, where, expression=text[:80] + "…")
    source = expr_parse.Source(text, where)
    compiler = expr_compile.Compiler(source, where, MAX_DEPTH)
    fn = compiler.compile(source.parse())
    return Expression(text, frozenset(compiler.references), where, fn, compiler.operations)


def compile_condition(text: str | bool, where: errors.Where) -> Expression:
    """Compile an ``if:`` or ``foreach:`` value: bare ``x > 1``, ``${ x > 1 }`` or true/false."""
    if isinstance(text, bool):
        return Expression("true" if text else "false", frozenset(), where, lambda scope: text, 0)
    if isinstance(text, str) and text.lstrip().startswith("${"):
        parts = expr_parse.split_template(text, where)
        if len(parts) == 3 and not parts[0].strip() and not parts[2].strip():
            return compile_expression(parts[1], where)
        raise errors.ExpressionSyntaxError(_ONE_CONDITION, where, expression=text.strip())
    try:
        return compile_expression(text, where)
    except errors.ExpressionSyntaxError as exc:
        if isinstance(text, str) and "${" in text:  # "count is ${ x }": text around ${ }
            raise errors.ExpressionSyntaxError(_ONE_CONDITION, where, expression=text) from exc
        raise


_ONE_CONDITION = "a condition is one expression: write `x > 1` or `${ x > 1 }`, not text with ${ }"


def compile_template(value: Any, where: errors.Where) -> Template:
    """Compile a manifest value; nested strings report fields like ``with.headers.X-Id``."""
    render, references = _compile_value(value, where, where.field or "")
    return Template(value, render, references)


# --- templates -------------------------------------------------------------------------------


_NO_REFERENCES: frozenset[tuple[str, ...]] = frozenset()


def _compile_value(
    value: Any, where: errors.Where, field: str
) -> tuple[Fn | None, frozenset[tuple[str, ...]]]:
    """A render function for ``value`` (None when static) and the references inside it."""
    if isinstance(value, str):
        return _compile_string(value, where.replace(field=field or None))
    if isinstance(value, dict):
        entries = [
            (key, item, *_compile_value(item, where, f"{field}.{key}" if field else str(key)))
            for key, item in value.items()
        ]
        if all(render is None for _, _, render, _ in entries):
            return None, _NO_REFERENCES
        parts = [(key, item, render) for key, item, render, _ in entries]

        def render_dict(scope: Any) -> dict[Any, Any]:
            return {key: item if f is None else f(scope) for key, item, f in parts}

        return render_dict, frozenset().union(*(refs for *_, refs in entries))
    if isinstance(value, list):
        items = [_compile_value(item, where, f"{field}[{i}]") for i, item in enumerate(value)]
        if all(render is None for render, _ in items):
            return None, _NO_REFERENCES
        slots = [(item, render) for item, (render, _) in zip(value, items, strict=True)]

        def render_list(scope: Any) -> list[Any]:
            return [item if f is None else f(scope) for item, f in slots]

        return render_list, frozenset().union(*(refs for _, refs in items))
    return None, _NO_REFERENCES


def _compile_string(text: str, where: errors.Where) -> tuple[Fn | None, frozenset[tuple[str, ...]]]:
    if "${" not in text:
        return None, _NO_REFERENCES
    parts = expr_parse.split_template(text, where)
    if len(parts) == 1:
        constant = parts[0]  # only $${ escapes
        return (lambda scope: constant), _NO_REFERENCES
    if len(parts) == 3 and not parts[0].strip() and not parts[2].strip():
        expression = compile_expression(parts[1], where)  # a whole value keeps its type
        return expression.evaluate, expression.references
    pieces = [
        (part, None) if i % 2 == 0 else ("", compile_expression(part, where))
        for i, part in enumerate(parts)
        if part or i % 2
    ]
    references = frozenset().union(*(e.references for _, e in pieces if e is not None))

    def interpolate(scope: expr_runtime.Frame) -> str:
        out: list[str] = []
        for literal, expression in pieces:
            if expression is None:
                out.append(literal)
                continue
            value = expression.evaluate(scope)
            try:
                out.append(expr_runtime.text(value, scope.budget))  # paid for, even as-is text
            except expr_values.EvalFailure as exc:
                text = expression.text
                raise errors.ExpressionEvalError(exc.message, where, expression=text) from None
        return "".join(out)

    return interpolate, references


Stopped = expr_runtime.Stopped
STOP = expr_runtime.STOP


def stop_on(*signals: int) -> None:
    """Let these signals stop an evaluation in progress (at its next budget checkpoint, every
    few milliseconds), instead of waiting for it to end. Call it after the event loop's own
    ``add_signal_handler`` for the same signals: the loop still gets the signal (through its
    wakeup file descriptor) and decides what it means; this handler only raises the flag,
    which ``clear_stop`` lowers once the run has been told."""
    import signal

    for sig in signals:
        signal.signal(sig, STOP)


def clear_stop() -> None:
    STOP.requested = False
