"""A rollup's duration histogram as one number (``runners.store.histograms``), pure.

Both encodings (SQLite's base-2^64 blob, PostgreSQL's base-10^18 number) give back the
counts they were made of, and adding two of them adds the histograms bucket by bucket, at
either end of the bucket range and with counts far beyond any real one. SQLite's functions
behave the same when SQLite calls them (PostgreSQL's are checked by the contract suite).
"""

from __future__ import annotations

import random
import sqlite3
from decimal import Decimal

import pytest

from autoflow.runners.store import histograms, records

LAST = len(records.BOUNDS)  # the highest bucket: 2^30 ms and longer

SHAPES = [
    {},
    {0: 1},
    {LAST: 1},
    {0: 3, LAST: 2**40},
    {46: 1, 47: 5, 88: 2},
    {b: b + 1 for b in range(LAST + 1)},
    {7: 10**18 - 1},  # the largest count of a bucket PostgreSQL's radix holds
]


def _added(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_encoding_gives_back_the_counts_it_was_made_of(shape: dict[int, int]) -> None:
    assert histograms.from_blob(histograms.to_blob(shape)) == shape
    assert histograms.from_decimal(histograms.to_decimal(shape)) == shape
    # As the PostgreSQL driver returns it: a Decimal.
    assert histograms.from_decimal(Decimal(histograms.to_decimal(shape))) == shape


def test_sqlites_counts_hold_any_64_bit_count() -> None:
    shape = {0: 2**64 - 1, 9: 2**63, LAST: 1}
    assert histograms.from_blob(histograms.to_blob(shape)) == shape


def test_the_empty_histogram_is_zero_in_both() -> None:
    assert histograms.single(-1, 1) == histograms.single(5, 0) == histograms.EMPTY == 0
    assert histograms.from_blob(0) == histograms.from_blob(None) == {}
    assert histograms.from_decimal(Decimal(0)) == histograms.from_decimal(None) == {}
    assert histograms.add(0, 0) == 0
    assert histograms.add(0, histograms.single(3, 1)) == histograms.single(3, 1)


def test_adding_histograms_adds_their_counts_bucket_by_bucket() -> None:
    rnd = random.Random(6)
    for _ in range(300):
        a = {rnd.randrange(LAST + 1): rnd.randrange(1, 10**6) for _ in range(rnd.randrange(4))}
        b = {rnd.randrange(LAST + 1): rnd.randrange(1, 10**6) for _ in range(rnd.randrange(4))}
        total = _added(a, b)
        blob = histograms.add(histograms.to_blob(a), histograms.to_blob(b))
        assert histograms.from_blob(blob) == total
        assert blob == histograms.to_blob(total)  # one spelling per histogram
        number = histograms.to_decimal(a) + histograms.to_decimal(b)
        assert histograms.from_decimal(number) == total


def test_one_duration_is_added_in_place_or_widens_the_range() -> None:
    hist = histograms.to_blob({40: 2, 50: 1})
    for bucket in (40, 45, 50, 10, 60, 0, LAST):  # inside, then below and above the range
        hist = histograms.add(hist, histograms.single(bucket, 1))
    expected = {40: 3, 45: 1, 50: 2, 10: 1, 60: 1, 0: 1, LAST: 1}
    assert histograms.from_blob(hist) == expected
    assert hist == histograms.to_blob(expected)


def test_sqlites_functions_sum_a_groups_histograms() -> None:
    conn = sqlite3.connect(":memory:")
    histograms.register(conn)
    conn.execute("CREATE TABLE t (k TEXT, hist BLOB NOT NULL)")
    rows = [("a", 3), ("a", 3), ("a", 200), ("b", -2), ("b", 0), ("a", LAST)]
    for k, bucket in rows:
        conn.execute("INSERT INTO t VALUES (?, autoflow_hist(?, 1))", (k, bucket))
    found = dict(conn.execute("SELECT k, autoflow_hist_sum(hist) FROM t GROUP BY k"))
    assert histograms.from_blob(found["a"]) == {3: 2, 200: 1, LAST: 1}
    assert histograms.from_blob(found["b"]) == {0: 1}  # no duration: counted elsewhere
    (merged,) = conn.execute(
        "SELECT autoflow_hist_add(autoflow_hist(3, 2), autoflow_hist(4, 1))"
    ).fetchone()
    assert histograms.from_blob(merged) == {3: 2, 4: 1}
    p50 = records.percentile(histograms.from_blob(found["a"]), 0.5)
    assert p50 == round(records.bucket_value(3), 3)
