"""Values, operators and whitelisted functions of workflow expressions.

``autoflow.runners.expressions`` compiles an expression into closures; at run time those closures
hand plain values (dict, list, str, int, float, bool, None: what YAML, JSON and step outputs hold)
to the functions here. Each operator and function checks the types and the size of what it
is about to build *before* building it, and reports a problem by raising ``EvalFailure``
with a message written for the workflow author. The evaluator turns that into an
``ExpressionEvalError`` carrying the step, the field and the expression text.

Nothing here calls a method chosen by the expression, reads an attribute, or formats text
with a user-supplied format: a function name in ``FUNCTIONS`` is the whole of what an
expression can call, and every value shown in a message is cut to about 80 characters.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

# Resource bounds; docs/expressions.md lists them for users.
MAX_SIZE = 1_000_000  # chars or items built by +, *, replace, join, split
MAX_TEXT = 10_000_000  # chars when a value is converted to text (interpolation, json, str)
MAX_RANGE = 10_000  # items made by range()
MAX_EXPONENT = 64  # |b| in a ** b
MAX_NUMBER = 1e300  # magnitude of a ** b and a * b results
MAX_INT_BITS = 1_000  # int operands beyond this cannot be multiplied or raised further
MAX_ROUND_DIGITS = 64

NUMBER_TYPES = (int, float, bool)


class EvalFailure(Exception):
    """A problem met while evaluating; ``missing`` marks absent data (key, index, null, root)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing


# --- describing values in messages -------------------------------------------------------


def kind(value: Any) -> str:
    """The type name a workflow author sees: null, bool, int, float, str, list, dict."""
    if value is None:
        return "null"
    for name, types in _KINDS:
        if isinstance(value, types):
            return name
    return type(value).__name__


_KINDS: tuple[tuple[str, Any], ...] = (
    ("bool", bool),
    ("int", int),
    ("float", float),
    ("str", str),
    ("dict", Mapping),
    ("list", list | tuple),
)


def show(value: Any, width: int = 80) -> str:
    """``value`` in expression syntax, cut to about ``width`` characters."""
    text = _show(value, max(width, 8))
    return text if len(text) <= width else text[: width - 1] + "…"


def _show(value: Any, width: int) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value[: width + 1])
    if isinstance(value, int):
        return str(value) if value.bit_length() < 200 else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, Mapping | list | tuple):
        is_map = isinstance(value, Mapping)
        entries: Any = value.items() if isinstance(value, Mapping) else value
        parts: list[str] = []
        used = 2
        for entry in entries:
            if used > width:
                parts.append("…")
                break
            if is_map:
                piece = f"{_show(entry[0], width - used)}: {_show(entry[1], width - used)}"
            else:
                piece = _show(entry, width - used)
            parts.append(piece)
            used += len(piece) + 2
        return ("{%s}" if is_map else "[%s]") % ", ".join(parts)
    return f"<{type(value).__name__}>"


def a_kind(value: Any) -> str:
    """``kind`` with its article: "an int", "a list", "null"."""
    name = kind(value)
    return name if value is None else ("an " if name[0] in "aeiou" else "a ") + name


def describe(value: Any) -> str:
    """``kind`` and ``show`` together: "int 5", "str 'abc'", "null"."""
    return "null" if value is None else f"{kind(value)} {show(value)}"


def key_list(mapping: Mapping[Any, Any], limit: int = 10) -> str:
    """The first keys of a mapping, for "has: a, b, c" hints."""
    names = [str(k)[:40] for _, k in zip(range(limit), mapping, strict=False)]
    more = len(mapping) - len(names)
    return ", ".join(names) + (f", … {more} more" if more > 0 else "")


# --- truth and text ------------------------------------------------------------------------


def truthy(value: Any) -> bool:
    """Python truthiness for data: null, false, 0, "", [] and {} are false; anything else true."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, int | float | str | list | tuple | Mapping):
        return bool(value) if not isinstance(value, Mapping) else len(value) > 0
    return True


def float_text(value: float) -> str:
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def stringify(value: Any, limit: int = MAX_TEXT) -> str:
    """The text of a value in interpolation: str as-is, null as "", true/false, compact JSON."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        try:
            return str(value)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise EvalFailure(f"number too large to convert to text: {show(value)}") from None
    if type(value) is float:
        return float_text(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Mapping | list | tuple):
        return to_json(value, limit)
    return str(value)


def to_json(value: Any, limit: int = MAX_TEXT) -> str:
    """Compact JSON text; refuses values that would produce more than ``limit`` characters."""
    if isinstance(value, Mapping | list | tuple):
        _check_text_size(value, limit)
    try:
        text = json.dumps(
            value,
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
            default=_json_default,
        )
    except RecursionError:
        raise EvalFailure("value is nested too deeply to convert to JSON") from None
    except (TypeError, ValueError) as exc:
        raise EvalFailure(f"cannot convert to JSON: {str(exc)[:120]}") from None
    if len(text) > limit:
        raise EvalFailure(f"value is too large to convert to text (over {limit:,} characters)")
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def _check_text_size(value: Any, limit: int) -> None:
    """Walk a container counting about how much text it makes, stopping once over ``limit``.

    The same list may appear many times inside a value (``[big] * 1000``), so the size of its
    text can dwarf its size in memory; this walk sees every repetition, but stops early.
    """
    total = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 2 + len(item)
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += 8
        if total > limit or len(stack) > limit:
            raise EvalFailure(f"value is too large to convert to text (over {limit:,} characters)")


# --- operators -----------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    return type(value) in NUMBER_TYPES


def _number(value: Any) -> Any:
    """Check an arithmetic result: finite and not absurdly large."""
    if type(value) is float and not math.isfinite(value):
        raise EvalFailure("result is too large (not a finite number)")
    return value


def size_of(value: Any, limit: int = MAX_SIZE) -> int:
    """How many items a value holds, nested ones included; stops counting past ``limit``.

    ``[big] * 1000`` is cheap in memory (one list of references) but a thousand times ``big``
    to anything that walks it (comparing, converting to text), so list sizes count nested
    items: ``size_of([[0] * 1000] * 1000)`` is 1,000,000. Scalars, text and empty containers
    count 1.
    """
    if not isinstance(value, list | tuple | Mapping) or not value:
        return 1
    total = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple | Mapping) and item:
            if total + len(item) > limit:
                return limit + 1
            stack.extend(item.values() if isinstance(item, Mapping) else item)
        else:
            total += 1
            if total > limit:
                return total
    return total


def _check_size(size: int, what: str) -> None:
    if size > MAX_SIZE:
        unit = "characters" if "text" in what else "items"
        raise EvalFailure(f"{what} would have {size:,} {unit}; the limit is {MAX_SIZE:,}")


def add(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        return _number(a + b)
    if isinstance(a, str) and isinstance(b, str):
        _check_size(len(a) + len(b), "joined text")
        return a + b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        _check_size(size_of(a) + size_of(b), "joined list")
        return [*a, *b]
    hint = ""
    if isinstance(a, str) or isinstance(b, str):
        hint = " (use str(x), or interpolation like 'total: ${ x }', to make text)"
    raise EvalFailure(f"cannot add {kind(a)} and {kind(b)}: {show(a)} + {show(b)}{hint}")


def subtract(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        return _number(a - b)
    raise EvalFailure(f"cannot subtract {kind(b)} from {kind(a)}: {show(a)} - {show(b)}")


def multiply(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        if type(a) is not float and type(b) is not float:
            if abs(a).bit_length() + abs(b).bit_length() > MAX_INT_BITS:
                raise EvalFailure(f"number too large: {show(a)} * {show(b)}")
            return a * b
        return _number(a * b)
    if isinstance(b, str | list | tuple) and is_number(a):
        a, b = b, a
    if isinstance(a, str) and type(b) in (int, bool):
        _check_size(len(a) * max(b, 0), "repeated text")
        return a * b
    if isinstance(a, list | tuple) and type(b) in (int, bool):
        _check_size(size_of(a) * max(b, 0), "repeated list")
        return list(a) * b
    raise EvalFailure(f"cannot multiply {kind(a)} by {kind(b)}: {show(a)} * {show(b)}")


def _need_divisor(a: Any, b: Any, symbol: str) -> None:
    if not (is_number(a) and is_number(b)):
        raise EvalFailure(
            f"cannot use {symbol} on {kind(a)} and {kind(b)}: {show(a)} {symbol} {show(b)}"
        )
    if b == 0:
        raise EvalFailure(f"division by zero: {show(a)} {symbol} {show(b)}")


def divide(a: Any, b: Any) -> Any:
    _need_divisor(a, b, "/")
    try:
        return _number(a / b)
    except OverflowError:
        raise EvalFailure(f"result too large: {show(a)} / {show(b)}") from None


def floor_divide(a: Any, b: Any) -> Any:
    _need_divisor(a, b, "//")
    return _number(a // b)


def modulo(a: Any, b: Any) -> Any:
    _need_divisor(a, b, "%")  # only numbers: '%' on text would be printf formatting
    return _number(a % b)


def power(a: Any, b: Any) -> Any:
    if not (is_number(a) and is_number(b)):
        raise EvalFailure(f"cannot raise {kind(a)} to {kind(b)}: {show(a)} ** {show(b)}")
    if abs(b) > MAX_EXPONENT:
        raise EvalFailure(f"exponent too large: {show(a)} ** {show(b)} (limit ±{MAX_EXPONENT})")
    if a == 0 and b < 0:
        raise EvalFailure(f"division by zero: {show(a)} ** {show(b)}")
    exact = type(a) is not float and type(b) is not float
    if exact and b > 0 and abs(a).bit_length() * b > MAX_INT_BITS + 64:
        raise EvalFailure(f"number too large: {show(a)} ** {show(b)}")
    try:
        result = a**b
    except OverflowError:
        raise EvalFailure(f"number too large: {show(a)} ** {show(b)}") from None
    if isinstance(result, complex):
        raise EvalFailure(f"result is not a real number: {show(a)} ** {show(b)}")
    if abs(result) > MAX_NUMBER:
        raise EvalFailure(f"number too large: {show(a)} ** {show(b)}")
    return result


def negate(a: Any) -> Any:
    if is_number(a):
        return -a
    raise EvalFailure(f"cannot negate {describe(a)}")


def positive(a: Any) -> Any:
    if is_number(a):
        return +a
    raise EvalFailure(f"unary + needs a number, got {describe(a)}")


def _comparable(a: Any, b: Any) -> bool:
    if is_number(a):
        return is_number(b)
    if isinstance(a, str):
        return isinstance(b, str)
    return isinstance(a, list | tuple) and isinstance(b, list | tuple)


def order(a: Any, b: Any, symbol: str) -> bool:
    """``<``, ``<=``, ``>``, ``>=`` between two numbers, two strings or two lists."""
    if _comparable(a, b):
        try:
            if symbol == "<":
                return bool(a < b)
            if symbol == "<=":
                return bool(a <= b)
            if symbol == ">":
                return bool(a > b)
            return bool(a >= b)
        except TypeError:
            pass  # lists whose items cannot be compared
    raise EvalFailure(f"cannot compare {kind(a)} with {kind(b)}: {show(a)} {symbol} {show(b)}")


def contains(container: Any, item: Any) -> bool:
    """``item in container``: a key of a dict, an item of a list, a substring of a str."""
    if isinstance(container, str):
        if isinstance(item, str):
            return item in container
        raise EvalFailure(
            f"cannot look for {kind(item)} in text: {show(item)} in {show(container)}"
        )
    if isinstance(container, list | tuple):
        return item in container
    if isinstance(container, Mapping):
        try:
            return item in container
        except TypeError:
            return False  # an unhashable value is never a key
    raise EvalFailure(f"cannot look for a value in {describe(container)}: {show(item)} in …")


# --- functions -----------------------------------------------------------------------------


def _need(value: Any, types: tuple[Any, ...], fn: str, what: str) -> None:
    """Check an argument's type; a bool passes only where ``bool`` is named (True is an int)."""
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise EvalFailure(f"{fn}() needs {what}, got {describe(value)}")


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
        raise EvalFailure("split() needs a non-empty separator")
    return str(text).split(sep)


def _join(items: Any, separator: Any = "") -> str:
    sep = _str(separator, "join", "a text separator")
    room = MAX_SIZE
    parts: list[str] = []
    for item in _list(items, "join"):
        part = stringify(item, room)
        room -= len(part) + len(sep)
        if room < 0:
            raise EvalFailure(f"join() result would be over {MAX_SIZE:,} characters")
        parts.append(part)
    return sep.join(parts)


def _starts_with(text: Any, prefix: Any) -> bool:
    return _str(text, "startsWith").startswith(_str(prefix, "startsWith", "a text prefix"))


def _ends_with(text: Any, suffix: Any) -> bool:
    return _str(text, "endsWith").endswith(_str(suffix, "endsWith", "a text suffix"))


def _replace(text: Any, old: Any, new: Any) -> str:
    source, before, after = _str(text, "replace"), _str(old, "replace"), _str(new, "replace")
    count = len(source) + 1 if before == "" else source.count(before)
    _check_size(len(source) + count * (len(after) - len(before)), "replace() text")
    return source.replace(before, after)


def _keys(value: Any) -> list[Any]:
    _need(value, (Mapping,), "keys", "a dict")
    return list(value)


def _values(value: Any) -> list[Any]:
    _need(value, (Mapping,), "values", "a dict")
    return list(value.values())


def _to_int(value: Any) -> int:
    if is_number(value):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = _to_float(text)
            return int(number)
    raise EvalFailure(f"int() needs a number or numeric text, got {describe(value)}")


def _to_float(value: Any) -> float:
    try:
        if is_number(value):
            result = float(value)
        elif isinstance(value, str):
            result = float(value.strip())
        else:
            raise EvalFailure(f"float() needs a number or numeric text, got {describe(value)}")
    except (ValueError, OverflowError):
        raise EvalFailure(f"not a number: {show(value)}") from None
    if not math.isfinite(result):
        raise EvalFailure(f"not a finite number: {show(value)}")
    return result


_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0", ""})


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            return word in _TRUE_WORDS
        raise EvalFailure(f"bool() does not know whether {show(value)} is true or false")
    return truthy(value)


def _round(value: Any, digits: Any = 0) -> Any:
    _need(value, NUMBER_TYPES, "round", "a number")
    _need(digits, (int,), "round", "a whole number of digits")
    if abs(digits) > MAX_ROUND_DIGITS:
        raise EvalFailure(
            f"round() digits must be between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}"
        )
    # Half away from zero on the number as written (2.675 -> 2.68), not Python's banker's rounding.
    exact = decimal.Decimal(repr(value) if type(value) is float else int(value))
    with decimal.localcontext() as context:
        context.prec = 1_000
        rounded = exact.quantize(decimal.Decimal(1).scaleb(-digits), decimal.ROUND_HALF_UP)
    return int(rounded) if digits <= 0 else float(rounded)


def _floor(value: Any) -> int:
    _need(value, NUMBER_TYPES, "floor", "a number")
    number: float = value
    return math.floor(number)


def _ceil(value: Any) -> int:
    _need(value, NUMBER_TYPES, "ceil", "a number")
    number: float = value
    return math.ceil(number)


def _abs(value: Any) -> Any:
    _need(value, NUMBER_TYPES, "abs", "a number")
    return abs(value)


def _extreme(fn: str, pick: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    items = _list(args[0], fn) if len(args) == 1 else args
    if not items:
        raise EvalFailure(f"{fn}() of an empty list")
    first = items[0]
    if not all(_comparable(first, other) for other in items):
        raise EvalFailure(f"{fn}() needs all numbers or all text, got {show(list(items))}")
    return pick(items)


def _min(*args: Any) -> Any:
    return _extreme("min", min, args)


def _max(*args: Any) -> Any:
    return _extreme("max", max, args)


def _sum(items: Any) -> Any:
    items = _list(items, "sum")
    if not all(is_number(item) for item in items):
        raise EvalFailure(f"sum() needs a list of numbers, got {show(items)}")
    return _number(sum(items))


def _sorted(items: Any, key: Any = None) -> list[Any]:
    items = _list(items, "sorted")
    if key is None:
        values = list(items)
    else:
        _str(key, "sorted", "a key name")
        if not all(isinstance(item, Mapping) and key in item for item in items):
            raise EvalFailure(f"sorted(list, {key!r}) needs dicts that all have the key {key!r}")
        values = [item[key] for item in items]
    if values and not all(_comparable(values[0], other) for other in values):
        raise EvalFailure(f"sorted() needs all numbers or all text, got {show(values)}")
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
            marker = (2, to_json(item, MAX_SIZE))
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
        raise EvalFailure("range() step must not be zero")
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise EvalFailure(
            f"range() would make {len(numbers):,} numbers; the limit is {MAX_RANGE:,}"
        )
    return list(numbers)


def _from_json(text: Any) -> Any:
    text = _str(text, "fromJson")

    def refuse(word: str) -> Any:
        raise EvalFailure(f"fromJson(): {word} is not a JSON number")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise EvalFailure(
            f"fromJson(): invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise EvalFailure("fromJson(): JSON nested too deeply") from None


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
    "contains": _fn(contains, 2, 2, "contains(container, x)"),
    "startsWith": _fn(_starts_with, 2, 2, "startsWith(text, prefix)"),
    "endsWith": _fn(_ends_with, 2, 2, "endsWith(text, suffix)"),
    "replace": _fn(_replace, 3, 3, "replace(text, old, new)"),
    "keys": _fn(_keys, 1, 1, "keys(dict)"),
    "values": _fn(_values, 1, 1, "values(dict)"),
    "int": _fn(_to_int, 1, 1, "int(x)"),
    "float": _fn(_to_float, 1, 1, "float(x)"),
    "str": _fn(stringify, 1, 1, "str(x)"),
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
    "json": _fn(to_json, 1, 1, "json(x)"),
    "fromJson": _fn(_from_json, 1, 1, "fromJson(text)"),
    "now": _fn(_now, 0, 0, "now()"),
}

# Evaluated by the compiler itself, because they decide whether to evaluate their arguments.
LAZY_FUNCTIONS: dict[str, tuple[int, int | None, str]] = {
    "default": (2, 2, "default(x, fallback)"),
    "has": (1, 1, "has(x)"),
    "coalesce": (1, None, "coalesce(a, b, ...)"),
}
