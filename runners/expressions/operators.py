"""The operators of workflow expressions: arithmetic, comparison and ``in`` on plain values.

``expr_compile`` maps each operator of the expression's syntax tree to one of these functions
(``+`` to ``add``, ``<`` to ``order``, ``in`` to ``contains``); the compiled closures call
them with the operands' values. Each checks the types and the size of what it is about to
build *before* building it (the limits are in ``expr_values``), and reports a problem by
raising ``expr_values.EvalFailure``. ``checked_number``, ``check_size`` and ``comparable``
are shared with the whitelisted functions of ``expr_functions``. ``GROWTH`` prices what
``+`` and ``*`` will build, in budget units, so the compiled operator can pay first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from autoflow.runners.expressions import values as expr_values


def checked_number(value: Any) -> Any:
    """Check an arithmetic result: finite and not absurdly large."""
    if type(value) is float and not math.isfinite(value):
        raise expr_values.EvalFailure("result is too large (not a finite number)")
    return value


def check_size(size: int, what: str) -> None:
    if size > expr_values.MAX_SIZE:
        unit = "characters" if "text" in what else "items"
        raise expr_values.EvalFailure(
            f"{what} would have {size:,} {unit}; the limit is {expr_values.MAX_SIZE:,}"
        )


def add(a: Any, b: Any) -> Any:
    if expr_values.is_number(a) and expr_values.is_number(b):
        return checked_number(a + b)
    if isinstance(a, str) and isinstance(b, str):
        check_size(len(a) + len(b), "joined text")
        return a + b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        check_size(expr_values.size_of(a) + expr_values.size_of(b), "joined list")
        return [*a, *b]
    hint = ""
    if isinstance(a, str) or isinstance(b, str):
        hint = " (use str(x), or interpolation like 'total: ${ x }', to make text)"
    raise expr_values.EvalFailure(
        f"cannot add {expr_values.kind(a)} and {expr_values.kind(b)}: "
        f"{expr_values.show(a)} + {expr_values.show(b)}{hint}"
    )


def _add_growth(a: Any, b: Any) -> int:
    if isinstance(a, str) and isinstance(b, str):
        return len(a) + len(b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return expr_values.ITEM * (len(a) + len(b))
    return 0


def _multiply_growth(a: Any, b: Any) -> int:
    if isinstance(b, str | list | tuple):
        a, b = b, a
    if type(b) not in (int, bool) or b <= 0:
        return 0
    count: int = b
    if isinstance(a, str):
        return len(a) * count
    if isinstance(a, list | tuple):
        return expr_values.ITEM * len(a) * count
    return 0


GROWTH: dict[str, Callable[[Any, Any], int]] = {"+": _add_growth, "*": _multiply_growth}


def subtract(a: Any, b: Any) -> Any:
    if expr_values.is_number(a) and expr_values.is_number(b):
        return checked_number(a - b)
    raise expr_values.EvalFailure(
        f"cannot subtract {expr_values.kind(b)} from {expr_values.kind(a)}: "
        f"{expr_values.show(a)} - {expr_values.show(b)}"
    )


def multiply(a: Any, b: Any) -> Any:
    if expr_values.is_number(a) and expr_values.is_number(b):
        if type(a) is not float and type(b) is not float:
            if abs(a).bit_length() + abs(b).bit_length() > expr_values.MAX_INT_BITS:
                raise expr_values.EvalFailure(
                    f"number too large: {expr_values.show(a)} * {expr_values.show(b)}"
                )
            return a * b
        return checked_number(a * b)
    if isinstance(b, str | list | tuple) and expr_values.is_number(a):
        a, b = b, a
    if isinstance(a, str) and type(b) in (int, bool):
        check_size(len(a) * max(b, 0), "repeated text")
        return a * b
    if isinstance(a, list | tuple) and type(b) in (int, bool):
        check_size(expr_values.size_of(a) * max(b, 0), "repeated list")
        return list(a) * b
    raise expr_values.EvalFailure(
        f"cannot multiply {expr_values.kind(a)} by {expr_values.kind(b)}: "
        f"{expr_values.show(a)} * {expr_values.show(b)}"
    )


def _need_divisor(a: Any, b: Any, symbol: str) -> None:
    if not (expr_values.is_number(a) and expr_values.is_number(b)):
        raise expr_values.EvalFailure(
            f"cannot use {symbol} on {expr_values.kind(a)} and {expr_values.kind(b)}: "
            f"{expr_values.show(a)} {symbol} {expr_values.show(b)}"
        )
    if b == 0:
        raise expr_values.EvalFailure(
            f"division by zero: {expr_values.show(a)} {symbol} {expr_values.show(b)}"
        )


def divide(a: Any, b: Any) -> Any:
    _need_divisor(a, b, "/")
    try:
        return checked_number(a / b)
    except OverflowError:
        raise expr_values.EvalFailure(
            f"result too large: {expr_values.show(a)} / {expr_values.show(b)}"
        ) from None


def floor_divide(a: Any, b: Any) -> Any:
    _need_divisor(a, b, "//")
    return checked_number(a // b)


def modulo(a: Any, b: Any) -> Any:
    _need_divisor(a, b, "%")  # only numbers: '%' on text would be printf formatting
    return checked_number(a % b)


def power(a: Any, b: Any) -> Any:
    if not (expr_values.is_number(a) and expr_values.is_number(b)):
        raise expr_values.EvalFailure(
            f"cannot raise {expr_values.kind(a)} to {expr_values.kind(b)}: "
            f"{expr_values.show(a)} ** {expr_values.show(b)}"
        )
    if abs(b) > expr_values.MAX_EXPONENT:
        raise expr_values.EvalFailure(
            f"exponent too large: {expr_values.show(a)} ** {expr_values.show(b)} "
            f"(limit ±{expr_values.MAX_EXPONENT})"
        )
    if a == 0 and b < 0:
        raise expr_values.EvalFailure(
            f"division by zero: {expr_values.show(a)} ** {expr_values.show(b)}"
        )
    exact = type(a) is not float and type(b) is not float
    if exact and b > 0 and abs(a).bit_length() * b > expr_values.MAX_INT_BITS + 64:
        raise expr_values.EvalFailure(
            f"number too large: {expr_values.show(a)} ** {expr_values.show(b)}"
        )
    try:
        result = a**b
    except OverflowError:
        raise expr_values.EvalFailure(
            f"number too large: {expr_values.show(a)} ** {expr_values.show(b)}"
        ) from None
    if isinstance(result, complex):
        raise expr_values.EvalFailure(
            f"result is not a real number: {expr_values.show(a)} ** {expr_values.show(b)}"
        )
    if abs(result) > expr_values.MAX_NUMBER:
        raise expr_values.EvalFailure(
            f"number too large: {expr_values.show(a)} ** {expr_values.show(b)}"
        )
    return result


def negate(a: Any) -> Any:
    if expr_values.is_number(a):
        return -a
    raise expr_values.EvalFailure(f"cannot negate {expr_values.describe(a)}")


def positive(a: Any) -> Any:
    if expr_values.is_number(a):
        return +a
    raise expr_values.EvalFailure(f"unary + needs a number, got {expr_values.describe(a)}")


def comparable(a: Any, b: Any) -> bool:
    if expr_values.is_number(a):
        return expr_values.is_number(b)
    if isinstance(a, str):
        return isinstance(b, str)
    return isinstance(a, list | tuple) and isinstance(b, list | tuple)


def order(a: Any, b: Any, symbol: str) -> bool:
    """``<``, ``<=``, ``>``, ``>=`` between two numbers, two strings or two lists."""
    if comparable(a, b):
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
    raise expr_values.EvalFailure(
        f"cannot compare {expr_values.kind(a)} with {expr_values.kind(b)}: "
        f"{expr_values.show(a)} {symbol} {expr_values.show(b)}"
    )


def contains(container: Any, item: Any) -> bool:
    """``item in container``: a key of a dict, an item of a list, a substring of a str."""
    if isinstance(container, str):
        if isinstance(item, str):
            return item in container
        raise expr_values.EvalFailure(
            f"cannot look for {expr_values.kind(item)} in text: "
            f"{expr_values.show(item)} in {expr_values.show(container)}"
        )
    if isinstance(container, list | tuple):
        return item in container
    if isinstance(container, Mapping):
        try:
            return item in container
        except TypeError:
            return False  # an unhashable value is never a key
    raise expr_values.EvalFailure(
        f"cannot look for a value in {expr_values.describe(container)}: "
        f"{expr_values.show(item)} in …"
    )
