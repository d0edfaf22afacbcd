"""Run time of compiled workflow expressions: lookups, slices, calls, loops and their budget.

``expr_compile`` turns an expression into nested closures, each taking the scope (the run's
``inputs``, ``steps``, ...) and returning a value; the closures call the functions here for
everything beyond a plain dict or list read:

- ``lookup`` reads ``a.b`` / ``a['b']`` / ``a[0]``, and when that fails explains why in the
  user's words (``steps.fetch has no output yet``, ``inputs.x has no key 'y' (has: ...)``).
- ``call`` and ``lazy`` run whitelisted functions (``expr_functions``); ``default``, ``has``
  and ``coalesce`` treat missing data as a value.
- ``comprehension`` runs a list comprehension inside the evaluation's ``Budget``: a ``Frame``
  is a scope that carries the budget, and ``charged`` / ``charge`` count what operations
  build against it, so one evaluation can only visit and build so much. ``expressions``
  creates the budget for each evaluation, from its ``MAX_*`` limits.

Every problem is an ``expr_values.EvalFailure``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from autoflow.runners import expr_values

Fn = Callable[[Any], Any]  # a compiled node: scope (or a comprehension frame) in, value out


class Budget:
    """What one evaluation may still visit and build in its list comprehensions.

    It keeps the limits it started from, for messages.
    """

    __slots__ = ("built", "deadline", "iterations", "max_built", "max_iterations", "seconds")

    def __init__(self, iterations: int, built: int, seconds: float) -> None:
        self.iterations = self.max_iterations = iterations
        self.built = self.max_built = built
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds


class Frame(dict[str, Any]):
    """A scope with a budget: the loop variable of a list comprehension, then ``parent``."""

    __slots__ = ("budget", "parent")

    def __init__(self, parent: Any, budget: Budget) -> None:
        super().__init__()
        self.parent = parent
        self.budget = budget

    def __missing__(self, key: str) -> Any:
        return self.parent[key]


def comprehension(name: str, iterable: Fn, path: str, conditions: list[Fn], element: Fn) -> Fn:
    """``[element for name in iterable if condition ...]``; the scope must be a ``Frame``."""

    def run(scope: Frame) -> list[Any]:
        items = _iterable(iterable(scope), path)
        budget = scope.budget
        budget.iterations -= len(items)
        if budget.iterations < 0:
            message = f"list comprehensions may visit at most {budget.max_iterations:,} items"
            raise expr_values.EvalFailure(message)
        frame = Frame(scope, budget)
        out = []
        for item in items:
            if time.monotonic() > budget.deadline:
                raise expr_values.EvalFailure(f"evaluation took over {budget.seconds:g} seconds")
            frame[name] = item
            for condition in conditions:
                if not expr_values.truthy(condition(frame)):
                    break
            else:
                value = element(frame)
                budget.built -= _held(value, budget.built)
                if budget.built < 0:
                    raise _over_budget(budget)
                out.append(value)
        return out

    return run


def _over_budget(budget: Budget) -> expr_values.EvalFailure:
    message = f"list comprehensions built more than {budget.max_built:,} items and characters"
    return expr_values.EvalFailure(message)


def _held(value: Any, limit: int) -> int:
    """What collecting ``value`` into a list costs: later comparisons and conversions walk it.

    Collecting the same value many times is cheap in memory but not for whatever walks the
    list afterwards, so nested items count, and long text counts a unit per kilobyte.
    """
    if type(value) is str:
        return 1 + len(value) // 1024
    return expr_values.size_of(value, max(limit, 0))


def charged(fn: Fn) -> Fn:
    """Count what ``fn`` builds against the evaluation's budget, if it has one.

    Each operation is bounded on its own; in a list comprehension the same operation runs
    once per item, so there the total is bounded too.
    """

    def run(scope: Any) -> Any:
        value = fn(scope)
        if type(scope) is Frame:
            charge(scope, value)
        return value

    return run


def charge(frame: Frame, value: Any) -> None:
    budget = frame.budget
    budget.built -= len(value) if isinstance(value, str | list | dict) else 1
    if budget.built < 0:
        raise _over_budget(budget)


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


def slice_of(value: Any, bounds: list[Fn | None], scope: Any, path: str) -> Any:
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


def call(name: str, impl: Callable[..., Any], args: list[Fn]) -> Fn:
    def run(scope: Any) -> Any:
        values = [arg(scope) for arg in args]
        try:
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
