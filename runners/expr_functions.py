"""The whitelisted functions of workflow expressions: ``len(x)``, ``join(list, sep)``, ...

``FUNCTIONS`` is the whole of what an expression can call: ``expr_compile`` checks each call's
name and number of arguments against it when the workflow is loaded, and the compiled call
hands the arguments' values to ``Function.impl``. Each function checks the types and the size
of what it is about to build and reports a problem by raising ``expr_values.EvalFailure``.
``LAZY_FUNCTIONS`` (``default``, ``has``, ``coalesce``) are only named here: they decide
whether to evaluate their arguments, so ``expr_runtime`` implements them.

Nothing here calls a method chosen by the expression, reads an attribute, or formats text
with a user-supplied format.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from autoflow.runners import expr_operators, expr_values


def _need(value: Any, types: tuple[Any, ...], fn: str, what: str) -> None:
    """Check an argument's type; a bool passes only where ``bool`` is named (True is an int)."""
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise expr_values.EvalFailure(f"{fn}() needs {what}, got {expr_values.describe(value)}")


def _list(value: Any, fn: str) -> list[Any] | tuple[Any, ...]:
    _need(value, (list, tuple), fn, "a list")
    return value  # type: ignore[no-any-return]


def _str(value: Any, fn: str, what: str = "text") -> str:
    _need(value, (str,), fn, what)
    return str(value)


def _len(value: Any) -> int:
    _need(value, (str, list, tuple, Mapping), "len", "text, a list or a dict")
    return len(value)


def _split(text: Any, sep: Any = None) -> list[str]:
    _str(text, "split")
    if sep is not None and (_str(sep, "split", "a text separator") == ""):
        raise expr_values.EvalFailure("split() needs a non-empty separator")
    return str(text).split(sep)


def _join(items: Any, separator: Any = "") -> str:
    sep = _str(separator, "join", "a text separator")
    room = expr_values.MAX_SIZE
    parts: list[str] = []
    for item in _list(items, "join"):
        part = expr_values.stringify(item, room)
        room -= len(part) + len(sep)
        if room < 0:
            raise expr_values.EvalFailure(
                f"join() result would be over {expr_values.MAX_SIZE:,} characters"
            )
        parts.append(part)
    return sep.join(parts)


def _starts_with(text: Any, prefix: Any) -> bool:
    return _str(text, "startsWith").startswith(_str(prefix, "startsWith", "a text prefix"))


def _ends_with(text: Any, suffix: Any) -> bool:
    return _str(text, "endsWith").endswith(_str(suffix, "endsWith", "a text suffix"))


def _replace(text: Any, old: Any, new: Any) -> str:
    source, before, after = _str(text, "replace"), _str(old, "replace"), _str(new, "replace")
    count = len(source) + 1 if before == "" else source.count(before)
    expr_operators.check_size(len(source) + count * (len(after) - len(before)), "replace() text")
    return source.replace(before, after)


def _keys(value: Any) -> list[Any]:
    _need(value, (Mapping,), "keys", "a dict")
    return list(value)


def _values(value: Any) -> list[Any]:
    _need(value, (Mapping,), "values", "a dict")
    return list(value.values())


def _to_int(value: Any) -> int:
    if expr_values.is_number(value):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = _to_float(text)
            return int(number)
    raise expr_values.EvalFailure(
        f"int() needs a number or numeric text, got {expr_values.describe(value)}"
    )


def _to_float(value: Any) -> float:
    try:
        if expr_values.is_number(value):
            result = float(value)
        elif isinstance(value, str):
            result = float(value.strip())
        else:
            raise expr_values.EvalFailure(
                f"float() needs a number or numeric text, got {expr_values.describe(value)}"
            )
    except (ValueError, OverflowError):
        raise expr_values.EvalFailure(f"not a number: {expr_values.show(value)}") from None
    if not math.isfinite(result):
        raise expr_values.EvalFailure(f"not a finite number: {expr_values.show(value)}")
    return result


_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0", ""})


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            return word in _TRUE_WORDS
        raise expr_values.EvalFailure(
            f"bool() does not know whether {expr_values.show(value)} is true or false"
        )
    return expr_values.truthy(value)


def _round(value: Any, digits: Any = 0) -> Any:
    _need(value, expr_values.NUMBER_TYPES, "round", "a number")
    _need(digits, (int,), "round", "a whole number of digits")
    if abs(digits) > expr_values.MAX_ROUND_DIGITS:
        raise expr_values.EvalFailure(
            f"round() digits must be between -{expr_values.MAX_ROUND_DIGITS} "
            f"and {expr_values.MAX_ROUND_DIGITS}"
        )
    # Half away from zero on the number as written (2.675 -> 2.68), not Python's banker's rounding.
    exact = decimal.Decimal(repr(value) if type(value) is float else int(value))
    with decimal.localcontext() as context:
        context.prec = 1_000
        rounded = exact.quantize(decimal.Decimal(1).scaleb(-digits), decimal.ROUND_HALF_UP)
    return int(rounded) if digits <= 0 else float(rounded)


def _floor(value: Any) -> int:
    _need(value, expr_values.NUMBER_TYPES, "floor", "a number")
    number: float = value
    return math.floor(number)


def _ceil(value: Any) -> int:
    _need(value, expr_values.NUMBER_TYPES, "ceil", "a number")
    number: float = value
    return math.ceil(number)


def _abs(value: Any) -> Any:
    _need(value, expr_values.NUMBER_TYPES, "abs", "a number")
    return abs(value)


def _extreme(fn: str, pick: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    items = _list(args[0], fn) if len(args) == 1 else args
    if not items:
        raise expr_values.EvalFailure(f"{fn}() of an empty list")
    first = items[0]
    if not all(expr_operators.comparable(first, other) for other in items):
        raise expr_values.EvalFailure(
            f"{fn}() needs all numbers or all text, got {expr_values.show(list(items))}"
        )
    return pick(items)


def _min(*args: Any) -> Any:
    return _extreme("min", min, args)


def _max(*args: Any) -> Any:
    return _extreme("max", max, args)


def _sum(items: Any) -> Any:
    items = _list(items, "sum")
    if not all(expr_values.is_number(item) for item in items):
        raise expr_values.EvalFailure(
            f"sum() needs a list of numbers, got {expr_values.show(items)}"
        )
    return expr_operators.checked_number(sum(items))


def _sorted(items: Any, key: Any = None) -> list[Any]:
    items = _list(items, "sorted")
    if key is None:
        values = list(items)
    else:
        _str(key, "sorted", "a key name")
        if not all(isinstance(item, Mapping) and key in item for item in items):
            raise expr_values.EvalFailure(
                f"sorted(list, {key!r}) needs dicts that all have the key {key!r}"
            )
        values = [item[key] for item in items]
    if values and not all(expr_operators.comparable(values[0], other) for other in values):
        raise expr_values.EvalFailure(
            f"sorted() needs all numbers or all text, got {expr_values.show(values)}"
        )
    if key is None:
        return sorted(values)
    order_ = sorted(range(len(items)), key=values.__getitem__)
    return [items[i] for i in order_]


def _unique(items: Any) -> list[Any]:
    seen: set[Any] = set()
    out: list[Any] = []
    for item in _list(items, "unique"):
        try:
            marker = (0, item) if not isinstance(item, bool) else (1, item)
            hash(marker)
        except TypeError:  # lists and dicts: compare by their JSON text
            marker = (2, expr_values.to_json(item, expr_values.MAX_SIZE))
        if marker not in seen:
            seen.add(marker)
            out.append(item)
    return out


def _first(items: Any) -> Any:
    _need(items, (list, tuple, str), "first", "a list or text")
    return items[0] if items else None


def _last(items: Any) -> Any:
    _need(items, (list, tuple, str), "last", "a list or text")
    return items[-1] if items else None


def _range(*args: Any) -> list[int]:
    for arg in args:
        _need(arg, (int,), "range", "whole numbers")
    if len(args) == 3 and args[2] == 0:
        raise expr_values.EvalFailure("range() step must not be zero")
    numbers = range(*args)
    if len(numbers) > expr_values.MAX_RANGE:
        raise expr_values.EvalFailure(
            f"range() would make {len(numbers):,} numbers; the limit is {expr_values.MAX_RANGE:,}"
        )
    return list(numbers)


def _from_json(text: Any) -> Any:
    text = _str(text, "fromJson")

    def refuse(word: str) -> Any:
        raise expr_values.EvalFailure(f"fromJson(): {word} is not a JSON number")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise expr_values.EvalFailure(
            f"fromJson(): invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise expr_values.EvalFailure("fromJson(): JSON nested too deeply") from None


def _now() -> str:
    moment = datetime.datetime.now(datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True, slots=True)
class Function:
    """One callable name: its implementation and how many arguments it takes."""

    impl: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: any number
    signature: str


def _fn(impl: Callable[..., Any], low: int, high: int | None, signature: str) -> Function:
    return Function(impl, low, high, signature)


FUNCTIONS: dict[str, Function] = {
    "len": _fn(_len, 1, 1, "len(x)"),
    "lower": _fn(lambda s: _str(s, "lower").lower(), 1, 1, "lower(text)"),
    "upper": _fn(lambda s: _str(s, "upper").upper(), 1, 1, "upper(text)"),
    "trim": _fn(lambda s: _str(s, "trim").strip(), 1, 1, "trim(text)"),
    "split": _fn(_split, 1, 2, "split(text, sep)"),
    "join": _fn(_join, 1, 2, "join(list, sep)"),
    "contains": _fn(expr_operators.contains, 2, 2, "contains(container, x)"),
    "startsWith": _fn(_starts_with, 2, 2, "startsWith(text, prefix)"),
    "endsWith": _fn(_ends_with, 2, 2, "endsWith(text, suffix)"),
    "replace": _fn(_replace, 3, 3, "replace(text, old, new)"),
    "keys": _fn(_keys, 1, 1, "keys(dict)"),
    "values": _fn(_values, 1, 1, "values(dict)"),
    "int": _fn(_to_int, 1, 1, "int(x)"),
    "float": _fn(_to_float, 1, 1, "float(x)"),
    "str": _fn(expr_values.stringify, 1, 1, "str(x)"),
    "bool": _fn(_to_bool, 1, 1, "bool(x)"),
    "round": _fn(_round, 1, 2, "round(x, n=0)"),
    "floor": _fn(_floor, 1, 1, "floor(x)"),
    "ceil": _fn(_ceil, 1, 1, "ceil(x)"),
    "abs": _fn(_abs, 1, 1, "abs(x)"),
    "min": _fn(_min, 1, None, "min(list) or min(a, b, ...)"),
    "max": _fn(_max, 1, None, "max(list) or max(a, b, ...)"),
    "sum": _fn(_sum, 1, 1, "sum(list)"),
    "sorted": _fn(_sorted, 1, 2, "sorted(list, key)"),
    "unique": _fn(_unique, 1, 1, "unique(list)"),
    "first": _fn(_first, 1, 1, "first(list)"),
    "last": _fn(_last, 1, 1, "last(list)"),
    "range": _fn(_range, 1, 3, "range(stop) or range(start, stop, step)"),
    "json": _fn(expr_values.to_json, 1, 1, "json(x)"),
    "fromJson": _fn(_from_json, 1, 1, "fromJson(text)"),
    "now": _fn(_now, 0, 0, "now()"),
}

# Evaluated by the compiler itself, because they decide whether to evaluate their arguments.
LAZY_FUNCTIONS: dict[str, tuple[int, int | None, str]] = {
    "default": (2, 2, "default(x, fallback)"),
    "has": (1, 1, "has(x)"),
    "coalesce": (1, None, "coalesce(a, b, ...)"),
}
