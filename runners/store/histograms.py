"""A rollup row's duration histogram as one number: adding histograms is adding numbers.

A rollup row (``sql.py``: one per hour or day, namespace, workflow and step) carries the
counts of its durations per bucket (``records.bucket``) as ``Σ count[b] · RADIX**b``: the
counts are the number's digits in base ``RADIX``. Adding two such numbers adds the histograms
bucket by bucket (no digit reaches the radix, so nothing carries), which the database does in
C, so stats over a window group a few hundred rows instead of one row per duration bucket::

    write: upsert … hist = autoflow_hist_add(hist, autoflow_hist(bucket, 1))
    read:  SELECT …, autoflow_hist_sum(hist) … GROUP BY namespace, workflow, step
           → the store's _histogram(sum) → {bucket: count} → records.percentile

The three SQL functions have one name and meaning in both stores:

``autoflow_hist(bucket, n)``   ``n`` durations in ``bucket`` (empty when ``bucket`` < 0:
                               finished without a duration)
``autoflow_hist_add(a, b)``    the sum of two histograms
``autoflow_hist_sum(h)``       the aggregate: the sum of a group's histograms

PostgreSQL: a ``NUMERIC`` in base 10^18 (``DECIMAL_DIGITS``), the functions defined in SQL
by schema version 6 (``migrations.py``); numeric keeps no trailing zero digits, so buckets
below the lowest one used cost nothing. SQLite: a ``BLOB`` in base 2^64, the functions
defined here in Python and registered on each connection (``register``): a byte with the
lowest bucket used, then an 8-byte little-endian count per bucket up to the highest one used.
The empty histogram is 0 in both. A bucket's count stays below either radix as long as the
row's ``count`` (a 64-bit integer) does: PostgreSQL's up to 10^18 runs per bucket and window.
"""

from __future__ import annotations

import sqlite3
import struct
from decimal import Decimal

DECIMAL_DIGITS = 18  # PostgreSQL: digits per bucket (fixed by schema version 6's functions)
_DECIMAL_RADIX = 10**DECIMAL_DIGITS
_BITS = 64  # SQLite: bits per bucket
_FIELD = _BITS // 8  # bytes per bucket
_ONE = 1 + _FIELD  # the size of a histogram of one bucket
EMPTY = 0

Packed = bytes | int  # SQLite's column: a BLOB, or the integer 0 when empty


# -- SQLite: base 2^64 in a BLOB ---------------------------------------------------------------


def _number(packed: Packed | None) -> int:
    if not packed or isinstance(packed, int):
        return 0
    return int.from_bytes(memoryview(packed)[1:], "little") << (_BITS * packed[0])


def _packed(number: int) -> Packed:
    if number <= 0:
        return EMPTY
    low = ((number & -number).bit_length() - 1) // _BITS
    digits = number >> (_BITS * low)
    fields = (digits.bit_length() + _BITS - 1) // _BITS
    return bytes((low,)) + digits.to_bytes(fields * _FIELD, "little")


def single(bucket: int, n: int) -> Packed:
    """``autoflow_hist`` in SQLite."""
    if bucket < 0 or n <= 0:
        return EMPTY
    return bytes((bucket,)) + n.to_bytes(_FIELD, "little")


def add(a: Packed | None, b: Packed | None) -> Packed:
    """``autoflow_hist_add`` in SQLite."""
    if not b or isinstance(b, int):
        return a or EMPTY
    if not a or isinstance(a, int):
        return b
    if len(b) == _ONE:  # one bucket (a run or step just finished): the write path
        return _add_one(a, b[0], b[1:])
    return _packed(_number(a) + _number(b))


def _add_one(a: bytes, bucket: int, count: bytes) -> bytes:
    """``a`` plus ``count`` (8 bytes) in ``bucket``, by splicing bytes (a third of the time
    of adding the whole numbers)."""
    low, high = a[0], a[0] + (len(a) - 1) // _FIELD  # the buckets of ``a``: [low, high)
    if bucket < low:
        return bytes((bucket,)) + count + bytes(_FIELD * (low - bucket - 1)) + a[1:]
    if bucket >= high:
        return a + bytes(_FIELD * (bucket - high)) + count
    at = 1 + _FIELD * (bucket - low)
    total = int.from_bytes(a[at : at + _FIELD], "little") + int.from_bytes(count, "little")
    return a[:at] + total.to_bytes(_FIELD, "little") + a[at + _FIELD :]


class Sum:
    """``autoflow_hist_sum`` in SQLite (an aggregate: one instance per group)."""

    def __init__(self) -> None:
        self.number = 0

    def step(self, packed: Packed | None) -> None:
        if packed:
            self.number += _number(packed)

    def finalize(self) -> Packed:
        return _packed(self.number)


def register(conn: sqlite3.Connection) -> None:
    """Defines the histogram functions on a SQLite connection."""
    conn.create_function("autoflow_hist", 2, single, deterministic=True)
    conn.create_function("autoflow_hist_add", 2, add, deterministic=True)
    # typeshed has an aggregate return an int; SQLite takes any value it stores.
    conn.create_aggregate("autoflow_hist_sum", 1, Sum)  # type: ignore[arg-type]


def from_blob(packed: Packed | None) -> dict[int, int]:
    """SQLite's histogram as {bucket: count} (the buckets with a count)."""
    if not packed or isinstance(packed, int):
        return {}
    body = memoryview(packed)[1:]
    counts = struct.unpack(f"<{len(body) // _FIELD}Q", body)
    return {packed[0] + i: c for i, c in enumerate(counts) if c}


def to_blob(histogram: dict[int, int]) -> Packed:
    """{bucket: count} as SQLite's histogram."""
    return _packed(sum(c << (_BITS * b) for b, c in histogram.items() if b >= 0 and c > 0))


# -- PostgreSQL: base 10^18 in a NUMERIC ---------------------------------------------------------


def from_decimal(packed: Decimal | int | None) -> dict[int, int]:
    """PostgreSQL's histogram as {bucket: count} (the buckets with a count)."""
    if not packed:
        return {}
    # Its decimal digits, 18 per bucket from the right (cheaper than dividing a number of
    # thousands of digits again and again).
    digits = format(Decimal(packed), "f").split(".", 1)[0]
    top = -(-len(digits) // DECIMAL_DIGITS)
    digits = digits.zfill(top * DECIMAL_DIGITS)
    fields = (int(digits[i : i + DECIMAL_DIGITS]) for i in range(0, len(digits), DECIMAL_DIGITS))
    return {top - 1 - i: count for i, count in enumerate(fields) if count}


def to_decimal(histogram: dict[int, int]) -> int:
    """{bucket: count} as PostgreSQL's histogram."""
    return sum(c * _DECIMAL_RADIX**b for b, c in histogram.items() if b >= 0 and c > 0)
