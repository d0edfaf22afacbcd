"""Run time of compiled workflow expressions: lookups, slices, calls, loops and their budget.

``expr_compile`` turns an expression into nested closures, each taking a ``Frame`` (the run's
``inputs``, ``steps``, ... and the evaluation's ``Budget``) and returning a value; the
closures call the functions here for everything beyond a plain dict or list read:

- ``lookup`` reads ``a.b`` / ``a['b']`` / ``a[0]``, and when that fails explains why in the
  user's words (``steps.fetch has no output yet``, ``inputs.x has no key 'y' (has: ...)``).
- ``call`` and ``lazy`` run whitelisted functions (``expr_functions``); ``default``, ``has``
  and ``coalesce`` treat missing data as a value.
- ``comprehension`` runs a list comprehension, ``slice_of`` a slice, ``text`` converts a
  value for interpolation.

**The budget.** ``expressions`` makes one ``Budget`` for each evaluation of a whole field (a
``with:`` tree, an ``if:``, the outputs) and puts it in the top ``Frame``; every expression
of that field spends from it. Whatever does work that grows with the data spends *before*
doing it: an expression its operations, a comprehension its items and the operations of
each pass, calls and operators what they will build or walk (``expr_values.text_cost``,
``walk_cost``, the functions' ``cost``). So an evaluation can only do so much, wherever the
work is, and never builds what it cannot pay for. Every ``CHECK_EVERY`` units spent it also
reads the clock, so it stops at its deadline (the step's timeout, or a safety net).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from autoflow.runners.expressions import values as expr_values

Fn = Callable[[Any], Any]  # a compiled node: a Frame in, a value out

CHECK_EVERY = 100_000  # units spent between two readings of the clock (a few milliseconds)


class Stopped(Exception):
    """An evaluation stopped midway because the process was asked to stop (a signal arrived
    while an expression was being evaluated). Not the expression's failure: the engine treats
    the step as interrupted, records nothing for it, and a resumed run evaluates it again."""


class StopRequest:
    """Set from a signal handler (which Python runs between bytecodes, so also in the middle
    of an evaluation); every budget checkpoint reads it. Process-wide, as signals are."""

    __slots__ = ("requested",)

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: object) -> None:
        self.requested = True


STOP = StopRequest()


class Budget:
    """What one evaluation may still spend, in units (``expr_values.ITEM``), and until when.

    ``spend`` is on the hot path: one subtraction and one comparison, and a method call
    only when a clock reading (or the end of the budget) is due.
    """

    __slots__ = ("checkpoint", "deadline", "left", "limit", "seconds", "timeout")

    def __init__(self, units: int, seconds: float, *, timeout: bool = False) -> None:
        self.left = self.limit = units
        self.checkpoint = units - CHECK_EVERY if units > CHECK_EVERY else 0
        self.seconds = seconds
        self.timeout = timeout  # whether ``seconds`` is the step's timeout (for the message)
        # Set at the first checkpoint: most evaluations never reach one, and the work before
        # it is at most CHECK_EVERY units (a few milliseconds), so the clock is read later.
        self.deadline = 0.0

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < self.checkpoint:
            self._check()

    def _check(self) -> None:
        if STOP.requested:
            raise Stopped("evaluation stopped: the run is being stopped")
        if self.left < 0:
            raise expr_values.EvalFailure(
                f"evaluation budget used up: this field's expressions together would build or "
                f"walk more than {self.limit:,} units (a character is 1, an item "
                f"{expr_values.ITEM}, an operation {expr_values.OPERATION})"
            )
        now = time.monotonic()
        if not self.deadline:
            self.deadline = now + self.seconds
        elif now > self.deadline:
            limit = f"the step's timeout of {self.seconds:g}s" if self.timeout else None
            raise expr_values.EvalFailure(
                f"evaluation did not finish within {limit}"
                if limit
                else f"evaluation took over {self.seconds:g} seconds"
            )
        # Never below zero: then the first spend that overdraws the budget is checked.
        self.checkpoint = max(self.left - CHECK_EVERY, 0)


class Frame(dict[str, Any]):
    """The scope of an evaluation (roots, then loop variables) and the budget it spends."""

    __slots__ = ("budget",)
    budget: Budget


def frame(scope: Mapping[str, Any], budget: Budget) -> Frame:
    """A frame holding a copy of ``scope``'s names (a few roots: the copy is cheap)."""
    top = Frame(scope)
    top.budget = budget
    return top


def comprehension(
    name: str, iterable: Fn, path: str, conditions: list[Fn], element: Fn, operations: int
) -> Fn:
    """``[element for name in iterable if condition ...]``.

    Visiting and collecting an item costs ``ITEM`` each, paid for all items before the loop
    starts; each pass then pays for the operations it evaluates (``operations``: those of the
    conditions and of the element, not counting nested comprehensions, which pay their own).
    """
    item_cost = 2 * expr_values.ITEM
    pass_cost = expr_values.OPERATION * operations

    def run(scope: Frame) -> list[Any]:
        items = _iterable(iterable(scope), path)
        budget = scope.budget
        budget.spend(item_cost * len(items))
        inner = Frame(scope)
        inner.budget = budget
        out = []
        for item in items:
            budget.spend(pass_cost)
            inner[name] = item
            for condition in conditions:
                if not expr_values.truthy(condition(inner)):
                    break
            else:
                out.append(element(inner))
        return out

    return run


def text(value: Any, budget: Budget) -> str:
    """``value`` as text for interpolation, paid for before it is made."""
    if type(value) is str:
        budget.spend(len(value))
        return value
    budget.spend(expr_values.text_cost(value, budget.left + 1))
    return expr_values.stringify(value)


def lookup(value: Any, key: Any, is_attribute: bool, path: str, flag: str | None) -> Any:
    """``value.key`` or ``value[key]``: a key of a mapping, or an index into a list or text."""
    if isinstance(value, Mapping):
        try:
            return value[key]
        except KeyError:
            raise _missing_key(value, key, path, flag) from None
        except TypeError:
            raise expr_values.EvalFailure(
                f"{path} cannot have {expr_values.a_kind(key)} key"
            ) from None
    accessor = f".{key}" if is_attribute else f"[{expr_values.show(key)}]"
    if value is None:
        raise expr_values.EvalFailure(f"{path} is null, so it has no {accessor}", missing=True)
    if not is_attribute and isinstance(value, list | tuple | str):
        if type(key) is not int:
            wrong = expr_values.describe(key)
            message = (
                f"{path} is {expr_values.a_kind(value)}: index it with a whole number, not {wrong}"
            )
            raise expr_values.EvalFailure(message)
        try:
            return value[key]
        except IndexError:
            message = f"{path} has no index {key} (length {len(value)})"
            raise expr_values.EvalFailure(message, missing=True) from None
    hint = ""
    if isinstance(value, list | tuple):
        hint = f" (use {path}[0]{accessor}, or [x{accessor} for x in {path}])"
    elif isinstance(value, str):
        hint = " (if it holds JSON text, read it with fromJson(...) first)"
    message = f"{path} is {expr_values.a_kind(value)}, not a dict: cannot read {accessor}{hint}"
    raise expr_values.EvalFailure(message)


def _missing_key(
    mapping: Mapping[Any, Any], key: Any, path: str, flag: str | None
) -> expr_values.EvalFailure:
    if flag == "steps":
        name = f"steps.{key}" if str(key).isidentifier() else f"steps[{expr_values.show(key)}]"
        done = (
            f"finished: {expr_values.key_list(mapping)}" if mapping else "no step has finished yet"
        )
        return expr_values.EvalFailure(f"{name} has no output yet ({done})", missing=True)
    if flag == "step" and key == "output":
        status = mapping.get("status")
        detail = f" (status: {expr_values.show(status)})" if status is not None else ""
        return expr_values.EvalFailure(f"{path} has no output yet{detail}", missing=True)
    hint = ""
    if flag == "step" and "output" in mapping and isinstance(key, str):
        hint = f"; did you mean {path}.output.{key}?"
    keys = f"has: {expr_values.key_list(mapping)}" if mapping else "it is empty"
    message = f"{path} has no key {expr_values.show(key)} ({keys}){hint}"
    return expr_values.EvalFailure(message, missing=True)


def slice_of(value: Any, bounds: list[Fn | None], scope: Frame, path: str) -> Any:
    lower, upper, step = (None if bound is None else bound(scope) for bound in bounds)
    if not isinstance(value, list | tuple | str):
        raise expr_values.EvalFailure(
            f"{path} is {expr_values.describe(value)}: only lists and text can be sliced"
        )
    for bound in (lower, upper, step):
        if bound is not None and type(bound) is not int:
            raise expr_values.EvalFailure(
                f"slice bounds must be whole numbers, got {expr_values.describe(bound)}"
            )
    if step == 0:
        raise expr_values.EvalFailure("slice step must not be zero")
    count = len(range(*slice(lower, upper, step).indices(len(value))))
    scope.budget.spend(count if isinstance(value, str) else count * expr_values.ITEM)
    part = value[lower:upper:step]
    return list(part) if isinstance(part, tuple) else part


def _iterable(value: Any, path: str) -> list[Any] | tuple[Any, ...] | str:
    if isinstance(value, list | tuple | str):
        return value
    if isinstance(value, Mapping):
        return list(value)
    raise expr_values.EvalFailure(f"cannot loop over {path}: it is {expr_values.describe(value)}")


def dict_key(key: Any) -> Any:
    if key is None or type(key) in (str, int, float, bool):
        return key
    raise expr_values.EvalFailure(
        f"a dict key must be text or a number, not {expr_values.describe(key)}"
    )


def call(
    name: str, impl: Callable[..., Any], cost: Callable[..., int] | None, args: list[Fn]
) -> Fn:
    """A whitelisted function; ``cost(room, *values)`` prices its work, paid before it runs."""

    def run(scope: Frame) -> Any:
        values = [arg(scope) for arg in args]
        try:
            if cost is not None:
                budget = scope.budget
                budget.spend(cost(budget.left + 1, *values))
            return impl(*values)
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            raise expr_values.EvalFailure(f"{name}(): {str(exc)[:120]}") from None

    return run


def _attempt(fn: Fn, scope: Any) -> tuple[bool, Any]:
    """Evaluate ``fn``; (False, None) when it failed because data is missing."""
    try:
        return True, fn(scope)
    except expr_values.EvalFailure as exc:
        if exc.missing:
            return False, None
        raise


def lazy(name: str, args: list[Fn]) -> Fn:
    if name == "has":
        (probe,) = args

        def has(scope: Any) -> bool:
            found, value = _attempt(probe, scope)
            return found and value is not None

        return has
    if name == "default":
        probe, fallback = args

        def default(scope: Any) -> Any:
            found, value = _attempt(probe, scope)
            return value if found and value is not None else fallback(scope)

        return default

    def coalesce(scope: Any) -> Any:
        for arg in args:
            found, value = _attempt(arg, scope)
            if found and value is not None:
                return value
        return None

    return coalesce
