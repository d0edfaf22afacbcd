"""The whitelisted functions of workflow expressions: ``len(x)``, ``join(list, sep)``, ...

``FUNCTIONS`` is the whole of what an expression can call: ``expr_compile`` checks each call's
name and number of arguments against it when the workflow is loaded, and the compiled call
hands the arguments' values to ``Function.cost`` (what the call will build or walk, in budget
units, paid before it runs; None for calls that take constant time), then to
``Function.impl``. Each function checks the types and the size of what it is about to build
and reports a problem by raising ``expr_values.EvalFailure``.
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
import sys
from collections.abc import Callable, Mapping
from typing import Any

from autoflow.runners.expressions import operators as expr_operators
from autoflow.runners.expressions import values as expr_values


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
    expr_operators.check_size(_most_parts(text, sep), "split() list")
    return str(text).split(sep)


# What str.split() without a separator splits on (every character whose isspace() is true).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _most_parts(text: str, sep: Any) -> int:
    """How many parts ``split`` can make at most, counted at C speed before splitting."""
    if isinstance(sep, str) and sep:
        return text.count(sep) + 1
    marks = WHITESPACE[:10] if text.isascii() else WHITESPACE
    return sum(text.count(mark) for mark in marks) + 1


def _split_cost(room: int, text: Any, sep: Any = None) -> int:
    if type(text) is not str:
        return 0
    return 2 * len(text) + expr_values.ITEM * _most_parts(text, sep)  # read, then copied out


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
            number = int(text)
        except ValueError:
            return int(_to_float(text))
        if number.bit_length() > expr_values.MAX_INT_BITS:  # a float could not hold it either
            raise expr_values.EvalFailure(
                f"int(): number too large: {len(text):,} digits "
                f"(the limit is about {expr_values.MAX_JSON_DIGITS})"
            )
        return number
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
    try:
        value = json.loads(
            text, parse_constant=_json_word, parse_int=_json_int, parse_float=_json_float
        )
    except json.JSONDecodeError as exc:
        raise expr_values.EvalFailure(
            f"fromJson(): invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        value = None  # deeper than the parser goes: refused below like any deep value
        depth = sys.getrecursionlimit()
    else:
        depth = _depth(value, expr_values.MAX_JSON_DEPTH)
    if depth > expr_values.MAX_JSON_DEPTH:
        raise expr_values.EvalFailure(
            f"fromJson(): JSON nested more than {expr_values.MAX_JSON_DEPTH} levels deep"
        )
    return value


def _json_word(word: str) -> Any:
    raise expr_values.EvalFailure(f"fromJson(): {word} is not a JSON number")


def _json_int(digits: str) -> int:
    # Python refuses over 4,300 digits with a ValueError, and a long number overflows any
    # float it meets later: refuse numbers no real document holds, with their size.
    if len(digits) > expr_values.MAX_JSON_DIGITS:
        raise expr_values.EvalFailure(
            f"fromJson(): a number of {len(digits):,} digits is too large "
            f"(the limit is {expr_values.MAX_JSON_DIGITS})"
        )
    return int(digits)


def _json_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999: Python reads infinity, which JSON cannot write back
        raise expr_values.EvalFailure(f"fromJson(): {text[:40]} is too large for a number")
    return number


def _depth(value: Any, limit: int) -> int:
    """How deeply containers nest in ``value`` (a scalar is 0); stops counting past ``limit``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        if level > limit:
            return level
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node if isinstance(child, dict | list))
    return deepest


def _from_json_cost(room: int, text: Any) -> int:
    """Reading the text, and for each value it can hold (counted by its punctuation) an
    operation: numbers are checked in Python, and every value is visited for its depth."""
    if type(text) is not str:
        return 0
    marks = text.count(",") + text.count(":") + text.count("[") + text.count("{") + 1
    return len(text) + expr_values.OPERATION * marks


def _now() -> str:
    moment = datetime.datetime.now(datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- what calls cost ---------------------------------------------------------------------
# ``cost(room, *args)`` is what a call will build or walk, in budget units (``room`` is the
# budget left: measuring may stop past it). It sees the arguments before their types are
# checked, so anything unexpected costs 0 and the call then reports it.


def _chars(room: int, text: Any, *rest: Any) -> int:
    """Reading or copying the first argument's text."""
    return len(text) if type(text) is str else 0


def _second_chars(room: int, text: Any, other: Any) -> int:
    return len(other) if type(other) is str else 0


def _steps(items: Any) -> int:
    """A Python step for each item (checking types, making a marker, converting one)."""
    return expr_values.OPERATION * len(items) if isinstance(items, list | tuple) else 0


def _check_each(room: int, *args: Any) -> int:
    """``min``, ``max``, ``sum``: each item type-checked in Python, then walked."""
    items = args[0] if len(args) == 1 else args
    return _steps(items) + expr_values.walk_cost(items, room)


def _text_of(room: int, value: Any) -> int:
    """Converting to text: ``str``, ``json``."""
    return expr_values.text_cost(value, room)


def _join_cost(room: int, items: Any, separator: Any = "") -> int:
    """Each item converted on its own, then the parts and separators copied into one text."""
    cost = _steps(items) + 2 * expr_values.text_cost(items, room)
    if type(separator) is str and isinstance(items, list | tuple):
        cost += len(separator) * len(items)
    return cost


def _shallow(room: int, value: Any) -> int:
    """Copying the items (not what they hold) into a new list."""
    return expr_values.ITEM * len(value) if isinstance(value, list | tuple | Mapping) else 0


def _sort_cost(room: int, items: Any, key: Any = None) -> int:
    """About n log n comparisons, each walking what it compares."""
    if not isinstance(items, list | tuple):
        return 0
    return _steps(items) + expr_values.walk_cost(items, room) * max(1, len(items).bit_length())


def _unique_cost(room: int, items: Any) -> int:
    """A marker made for each item; lists and dicts among them become JSON text."""
    return _steps(items) + expr_values.text_cost(items, room)


def _replace_cost(room: int, text: Any, old: Any, new: Any) -> int:
    if not (type(text) is str and type(old) is str and type(new) is str):
        return 0
    count = len(text) + 1 if old == "" else text.count(old)
    return len(text) + max(0, len(text) + count * (len(new) - len(old)))


def _contains_cost(room: int, container: Any, item: Any) -> int:
    return 0 if isinstance(container, Mapping) else expr_values.walk_cost(container, room)


def _range_cost(room: int, *args: Any) -> int:
    try:
        return expr_values.ITEM * len(range(*args))
    except (TypeError, ValueError, OverflowError):
        return 0


@dataclasses.dataclass(frozen=True, slots=True)
class Function:
    """One callable name: its implementation, how many arguments it takes, what it costs."""

    impl: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: any number
    signature: str
    cost: Callable[..., int] | None  # None: constant time


def _fn(
    impl: Callable[..., Any],
    low: int,
    high: int | None,
    signature: str,
    cost: Callable[..., int] | None = None,
) -> Function:
    return Function(impl, low, high, signature, cost)


FUNCTIONS: dict[str, Function] = {
    "len": _fn(_len, 1, 1, "len(x)"),
    "lower": _fn(lambda s: _str(s, "lower").lower(), 1, 1, "lower(text)", _chars),
    "upper": _fn(lambda s: _str(s, "upper").upper(), 1, 1, "upper(text)", _chars),
    "trim": _fn(lambda s: _str(s, "trim").strip(), 1, 1, "trim(text)", _chars),
    "split": _fn(_split, 1, 2, "split(text, sep)", _split_cost),
    "join": _fn(_join, 1, 2, "join(list, sep)", _join_cost),
    "contains": _fn(expr_operators.contains, 2, 2, "contains(container, x)", _contains_cost),
    "startsWith": _fn(_starts_with, 2, 2, "startsWith(text, prefix)", _second_chars),
    "endsWith": _fn(_ends_with, 2, 2, "endsWith(text, suffix)", _second_chars),
    "replace": _fn(_replace, 3, 3, "replace(text, old, new)", _replace_cost),
    "keys": _fn(_keys, 1, 1, "keys(dict)", _shallow),
    "values": _fn(_values, 1, 1, "values(dict)", _shallow),
    "int": _fn(_to_int, 1, 1, "int(x)", _chars),
    "float": _fn(_to_float, 1, 1, "float(x)", _chars),
    "str": _fn(expr_values.stringify, 1, 1, "str(x)", _text_of),
    "bool": _fn(_to_bool, 1, 1, "bool(x)", _chars),
    "round": _fn(_round, 1, 2, "round(x, n=0)"),
    "floor": _fn(_floor, 1, 1, "floor(x)"),
    "ceil": _fn(_ceil, 1, 1, "ceil(x)"),
    "abs": _fn(_abs, 1, 1, "abs(x)"),
    "min": _fn(_min, 1, None, "min(list) or min(a, b, ...)", _check_each),
    "max": _fn(_max, 1, None, "max(list) or max(a, b, ...)", _check_each),
    "sum": _fn(_sum, 1, 1, "sum(list)", _check_each),
    "sorted": _fn(_sorted, 1, 2, "sorted(list, key)", _sort_cost),
    "unique": _fn(_unique, 1, 1, "unique(list)", _unique_cost),
    "first": _fn(_first, 1, 1, "first(list)"),
    "last": _fn(_last, 1, 1, "last(list)"),
    "range": _fn(_range, 1, 3, "range(stop) or range(start, stop, step)", _range_cost),
    "json": _fn(expr_values.to_json, 1, 1, "json(x)", _text_of),
    "fromJson": _fn(_from_json, 1, 1, "fromJson(text)", _from_json_cost),
    "now": _fn(_now, 0, 0, "now()"),
}

# Evaluated by the compiler itself, because they decide whether to evaluate their arguments.
LAZY_FUNCTIONS: dict[str, tuple[int, int | None, str]] = {
    "default": (2, 2, "default(x, fallback)"),
    "has": (1, 1, "has(x)"),
    "coalesce": (1, None, "coalesce(a, b, ...)"),
}
