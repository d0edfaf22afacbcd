"""Values of workflow expressions: the failure type, the limits, and how values are described.

Expressions work on plain data (dict, list, str, int, float, bool, None: what YAML, JSON and
step outputs hold). This is the bottom of the expression modules; everything above uses it:

- ``EvalFailure`` is how every run-time problem is reported, with a message written for the
  workflow author; ``expressions.Expression`` turns it into an ``ExpressionEvalError``
  carrying the step, the field and the expression text.
- ``kind``, ``show``, ``describe`` and ``key_list`` put values into such messages, each cut
  to about 80 characters.
- ``truthy`` and ``stringify`` / ``to_json`` give a value's truth and text; ``size_of``
  measures what a value holds, so operators and functions (``expr_operators``,
  ``expr_functions``) can refuse to build anything over the limits below.
- ``text_cost`` and ``walk_cost`` price work in the units of an evaluation's budget
  (``expr_runtime.Budget``): a character is one unit, an item of a list or map ``ITEM``
  units. They are asked *before* the work is done, so nothing over budget is ever built.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

# Resource bounds; docs/expressions.md lists them for users.
MAX_SIZE = 1_000_000  # chars or items built by +, *, replace, join, split
MAX_TEXT = 10_000_000  # chars when a value is converted to text (interpolation, json, str)
MAX_RANGE = 10_000  # items made by range()
MAX_EXPONENT = 64  # |b| in a ** b
MAX_NUMBER = 1e300  # magnitude of a ** b and a * b results
MAX_INT_BITS = 1_000  # int operands beyond this cannot be multiplied or raised further
MAX_ROUND_DIGITS = 64
MAX_JSON_DEPTH = 100  # nesting of what fromJson makes: the same as a manifest's values
MAX_JSON_DIGITS = 300  # digits of a whole number fromJson reads (about MAX_INT_BITS)

# Units of an evaluation's budget, weighed by what they take on a runner. A character built
# or walked costs 1. An item of a list or map costs ITEM: making, walking or comparing one at
# C speed takes about as long as copying a few dozen characters, and it holds 8 to 60 bytes.
# An operation (a node of an expression evaluated, or a function's per-item Python step)
# costs OPERATION: a Python call takes about four times as long as that.
ITEM = 16
OPERATION = 64
# Measuring and converting a container is Python work per container, twice over.
CONTAINER = 4 * OPERATION

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
    if size_of(value, limit, text=True) > limit:
        raise EvalFailure(f"value is too large to convert to text (over {limit:,} characters)")
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


# --- sizes ----------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    return type(value) in NUMBER_TYPES


def size_of(
    value: Any,
    limit: int = MAX_SIZE,
    *,
    text: bool = False,
    per_item: int = 0,
    per_container: int = 0,
) -> int:
    """How many items a value holds, nested ones included; more than ``limit`` if it is over.

    ``[big] * 1000`` is cheap in memory (one list of references) but a thousand times ``big``
    to anything that walks it (comparing, converting to text), so sizes count nested items:
    ``size_of([[0] * 1000] * 1000)`` is 1,000,000. Scalars, text and empty containers count 1;
    with ``text``, the result estimates the length of the value's JSON text instead, plus
    ``per_item`` for each scalar and empty container inside, and ``per_container`` for each
    container (what measuring it takes). Each distinct container is walked once, so shared
    ones cost nothing extra to measure; and measuring stops as soon as what it has seen
    proves the value over ``limit``, so it takes time in proportion to ``limit``, not to the
    value.
    """
    if not _nested(value):
        return len(value) + 2 if text and isinstance(value, str) else 1
    sizes: dict[int, int] = {}  # id of a container -> its size; -1 while its items are counted
    stack: list[tuple[Any, list[Any] | None]] = [(value, None)]
    # Each item counts at least ``least`` in the size of whatever holds it, so the items of
    # the distinct containers seen so far are a lower bound of the result.
    least = per_item + 1 if text else 1
    seen = 0
    while stack:
        node, inner = stack.pop()
        is_map = _is_map(node)
        items = node.values() if is_map else node
        if inner is None:
            if id(node) in sizes:
                continue
            seen += len(node) * least + per_container
            if seen > limit:
                return limit + 1
            if _LEAVES.issuperset(map(type, items)):  # the common case, at C speed
                inner = []
            else:
                inner = [entry for entry in items if type(entry) not in _LEAVES and _nested(entry)]
            sizes[id(node)] = -1
            stack.append((node, inner))
            for item in inner:
                known = sizes.get(id(item))
                if known == -1:  # a container holding itself: walking it never ends
                    return limit + 1
                if known is None:
                    stack.append((item, None))
            continue
        total = sum(sizes[id(item)] for item in inner)
        if text:  # brackets, commas, quotes and keys are counted too
            texts = [entry for entry in items if type(entry) is str]
            total += 2 + 2 * len(node) - len(inner) + sum(map(len, texts)) + len(texts) * 2
            total += per_item * (len(node) - len(inner))
            if is_map:
                total += sum(len(str(key)) + 3 for key in node)
        else:
            total += len(node) - len(inner)
        total += per_container
        if total > limit:
            return limit + 1
        sizes[id(node)] = total
    return sizes[id(value)]


_LEAVES = frozenset({str, int, float, bool, type(None)})


def _is_map(value: Any) -> bool:
    # A dict is told at C speed; only other types pay for the abstract Mapping check.
    kind = type(value)
    return kind is dict or (kind is not list and isinstance(value, Mapping))


def _nested(value: Any) -> bool:
    kind = type(value)
    if kind is list or kind is dict:
        return len(value) > 0
    return isinstance(value, list | tuple | Mapping) and len(value) > 0


# --- costs ----------------------------------------------------------------------------------


def text_cost(value: Any, limit: int) -> int:
    """Units to turn ``value`` into text (``str``, ``json``, interpolation, ``join``).

    The length of the text, plus ``ITEM`` for each item the conversion walks. More than
    ``limit`` (the budget left) when it is over; measuring stops there.
    """
    if type(value) is str:
        return len(value)
    if not _nested(value):
        return ITEM
    return size_of(value, limit, text=True, per_item=ITEM, per_container=CONTAINER)


def walk_cost(value: Any, limit: int) -> int:
    """Units to walk ``value`` (comparing, searching, sorting): each item, and the characters
    of its texts, which a comparison may read to the end; 0 for another scalar."""
    if type(value) is str:
        return len(value)
    if not _nested(value):
        return 0
    return size_of(value, limit, text=True, per_item=ITEM, per_container=CONTAINER)
