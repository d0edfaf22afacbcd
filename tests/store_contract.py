"""The run store's contract: what every store (SQLite, PostgreSQL) must do, written once.

A backend's test module subclasses ``StoreContract`` and provides three fixtures:
``store_url`` (a fresh, empty store for the test), ``raw_sql`` (runs one SQL statement on it
directly and returns its rows, for faults a test sets up by hand and for scans) and
``tables`` (the names of every table in it). Grouped by concern: the history a run leaves,
queries (filters, paging, stats from rollups), purge, retention, erasure by data subject,
the audit, versions, the store as a journal (crash and resume in-process), many runs at
once, and the schema (version check, migration from version 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from autoflow.runners import engine, store
from autoflow.runners.engine import journal as journal_mod
from autoflow.runners.store import journal as store_journal
from autoflow.runners.store import migrations, records, retention

KEY = b"contract-test-subject-key"
RETRY = {"maxAttempts": 3, "initialDelay": "1ms", "jitter": False}

# a → b → c (fails once, then succeeds) → each (foreach over 3 items) → d
SPEC: dict[str, Any] = {
    "inputs": {"n": {"type": "integer", "default": 1}},
    "steps": [
        {"id": "a", "uses": "t.call", "with": {"value": "${ inputs.n }"}},
        {"id": "b", "uses": "t.call", "with": {"value": "${ steps.a.output + 1 }"}},
        {"id": "c", "uses": "t.call", "retry": RETRY, "with": {"value": "c", "failUntil": 1}},
        {
            "id": "each",
            "uses": "t.call",
            "foreach": "${ [1, 2, 3] }",
            "with": {"value": "${ item * 10 }"},
        },
        {
            "id": "d",
            "uses": "t.call",
            "with": {"value": "${ [inputs.n, steps.b.output, steps.c.output, steps.each.output] }"},
        },
    ],
    "outputs": {"d": "${ steps.d.output }"},
}

Record = dict[str, Any]


def header(run_id: str, workflow: str = "wf", at: float = 1000.0, **extra: Any) -> Record:
    return {
        "t": "run",
        "runId": run_id,
        "workflow": workflow,
        "specHash": "h1",
        "inputs": {"n": 1},
        "startedAt": at,
        **extra,
    }


def finished(
    run_id: str,
    *,
    workflow: str = "wf",
    at: float = 1000.0,
    ms: float = 100.0,
    phase: str = "Succeeded",
    error: str | None = None,
    step_ms: float = 10.0,
    **extra: Any,
) -> list[Record]:
    """A whole run of one step ``s`` as the engine journals it."""
    step_phase = "Failed" if phase == "Failed" else "Succeeded"
    return [
        header(run_id, workflow, at, **extra),
        {"t": "start", "step": "s", "attempt": 1, "at": at},
        {
            "t": "step",
            "step": "s",
            "phase": step_phase,
            "output": {"ok": step_phase == "Succeeded"},
            "error": error,
            "attempts": 1,
            "startedAt": at,
            "finishedAt": at + step_ms / 1000,
        },
        {"t": "end", "phase": phase, "outputs": None, "error": error, "at": at + ms / 1000},
    ]


def upto(records: list[Record], match: Callable[[Record], bool]) -> list[Record]:
    """The records up to and including the first match: what a killed runner wrote."""
    for n, rec in enumerate(records):
        if match(rec):
            return records[: n + 1]
    raise AssertionError("no such record")


class StoreContract:
    @pytest.fixture
    async def st(self, store_url: str) -> AsyncIterator[store.Store]:
        opened = await store.open_store(store_url, migrate=True, max_payload=4096, subject_key=KEY)
        yield opened
        await opened.aclose()

    # -- the history a run leaves -------------------------------------------------------------

    async def test_a_finished_run_is_listed_and_shown_with_its_steps_and_attempts(
        self, st: store.Store, probe: Any
    ) -> None:
        jr = store_journal.StoreJournal(st, context={"trigger": "webhook", "startedBy": "gh"})
        result = await probe.run(SPEC, journal=jr, inputs={"n": 5}, run_id="run-1")
        assert result.succeeded
        await jr.aclose()

        (listed,) = (await st.list_runs()).runs
        assert (listed.run_id, listed.workflow, listed.phase) == ("run-1", "wf", "Succeeded")
        assert (listed.trigger, listed.started_by) == ("webhook", "gh")
        assert listed.spec_hash == engine.spec_hash(probe.compile(SPEC))
        assert listed.duration_ms is not None and listed.duration_ms >= 0

        run = await st.get_run("run-1")
        assert run is not None
        assert run.inputs == {"n": 5}
        assert run.outputs == {"d": [5, 6, "c", [10, 20, 30]]}
        steps = {s.step: s for s in run.steps}
        assert list(steps) == ["a", "b", "c", "each", "d"]
        assert steps["b"].output == 6
        assert steps["each"].output == [10, 20, 30]
        # c failed once and then succeeded: both attempts are kept, with the error.
        assert [(a.attempt, a.outcome, a.error) for a in steps["c"].tries] == [
            (1, "Failed", "boom"),
            (2, "Succeeded", None),
        ]
        assert steps["c"].attempts == 2
        assert [(a.item, a.outcome) for a in steps["each"].tries] == [
            (0, "Succeeded"),
            (1, "Succeeded"),
            (2, "Succeeded"),
        ]
        assert await st.get_run("no-such-run") is None

    async def test_an_output_over_the_cap_is_kept_as_a_marker_saying_how_big_it_was(
        self, st: store.Store
    ) -> None:
        big = "x" * 10_000  # the fixture's cap is 4096 bytes
        recs = finished("big")
        recs[2]["output"] = {"text": big}
        await st.record("big", recs)
        run = await st.get_run("big")
        assert run is not None
        output = run.steps[0].output
        assert output["truncated"] is True
        assert output["bytes"] > 10_000
        assert output["preview"].startswith('{"text":"xxx')

    async def test_writing_the_same_records_again_changes_nothing(self, st: store.Store) -> None:
        recs = finished("twice")
        await st.record("twice", recs[:2])
        await st.record("twice", recs[:2])  # a retry after an unknown outcome
        await st.record("twice", recs)
        await st.record("twice", recs)
        assert [r.run_id for r in (await st.list_runs()).runs] == ["twice"]
        run = await st.get_run("twice")
        assert run is not None
        assert [(s.step, len(s.tries)) for s in run.steps] == [("s", 1)]
        assert run.summary.phase == "Succeeded"

    async def test_a_step_in_flight_is_shown_as_running(self, st: store.Store) -> None:
        await st.record("live", finished("live")[:2])
        run = await st.get_run("live")
        assert run is not None
        assert run.summary.phase == "Running"
        assert [(s.step, s.phase) for s in run.steps] == [("s", "Running")]

    # -- queries ------------------------------------------------------------------------------

    async def test_runs_are_listed_newest_first_a_page_at_a_time(self, st: store.Store) -> None:
        # Two runs share a start time: the cursor must neither skip nor repeat one of them.
        times = [1000.0, 1001.0, 1002.0, 1002.0, 1003.0, 1004.0, 1005.0]
        for n, at in enumerate(times):
            await st.record(f"r{n}", finished(f"r{n}", at=at))
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await st.list_runs(limit=3, cursor=cursor)
            seen += [r.run_id for r in page.runs]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]
        assert pages == 3

    async def test_runs_are_filtered_by_workflow_phase_trigger_time_and_error_text(
        self, st: store.Store
    ) -> None:
        await st.record("a1", finished("a1", workflow="orders", at=1000, trigger="schedule"))
        await st.record(
            "a2",
            finished("a2", workflow="orders", at=2000, phase="Failed", error="HTTP 503 from Shop"),
        )
        await st.record(
            "b1", finished("b1", workflow="invoices", at=3000, phase="Failed", error="50% off")
        )
        await st.record("b2", [header("b2", "invoices", at=4000)])  # still running

        async def ids(**where: Any) -> list[str]:
            page = await st.list_runs(store.RunFilter(**where))
            return [r.run_id for r in page.runs]

        assert await ids(workflow="orders") == ["a2", "a1"]
        assert await ids(phase="Failed") == ["b1", "a2"]
        assert await ids(phase="Running") == ["b2"]
        assert await ids(trigger="schedule") == ["a1"]
        assert await ids(since=2000, until=4000) == ["b1", "a2"]
        assert await ids(error="shop") == ["a2"]  # any case
        assert await ids(error="0% ") == ["b1"]  # % is text here, not a wildcard
        assert await ids(error="_") == []
        assert await ids(workflow="orders", phase="Failed", error="503") == ["a2"]

    async def test_stats_per_workflow_and_step_over_a_window(self, st: store.Store) -> None:
        # orders: 10 finished runs of 10..100 ms, the two slowest failed; one outside the window.
        for n in range(1, 11):
            phase = "Failed" if n > 8 else "Succeeded"
            at = 3600.0 * 10 + n * 60  # all in one hour bucket
            await st.record(
                f"o{n}",
                finished(f"o{n}", workflow="orders", at=at, ms=n * 10.0, phase=phase, step_ms=n),
            )
        await st.record("o-old", finished("o-old", workflow="orders", at=100.0, ms=99999))
        await st.record("i1", finished("i1", workflow="invoices", at=3600.0 * 11 + 5, ms=7))
        await st.record("i2", [header("i2", "invoices", at=3600.0 * 12)])  # running: no duration

        stats = await st.stats(since=3600.0 * 10, until=3600.0 * 13, bucket=3600)
        by_name = {s.workflow: s for s in stats}
        assert list(by_name) == ["invoices", "orders"]
        orders = by_name["orders"]
        assert orders.runs.count == 10
        assert orders.runs.succeeded == 8
        assert orders.runs.failed == 2
        assert orders.runs.success_ratio == pytest.approx(0.8)
        # Nearest rank: p50 is the 5th of 10 durations, p95 the 10th.
        assert orders.runs.p50_ms == pytest.approx(50.0, rel=0.045)
        assert orders.runs.p95_ms == pytest.approx(100.0, rel=0.045)
        assert orders.steps["s"].count == 10
        assert orders.steps["s"].p50_ms == pytest.approx(5.0, rel=0.045)
        assert orders.buckets == ((36000.0, 10),)
        invoices = by_name["invoices"]
        assert invoices.runs.count == 1
        assert invoices.runs.p95_ms == pytest.approx(7.0, rel=0.045)
        assert invoices.buckets == ((39600.0, 1), (43200.0, 1))

        (only,) = await st.stats(since=0, until=1e12, workflow="orders")
        assert only.runs.count == 11

    async def test_stats_are_per_namespace_and_never_merge_workflows_of_one_name(
        self, st: store.Store
    ) -> None:
        """Two namespaces each have a Workflow "orders": their figures stay apart in the
        rollups (whole hours and days), in the raw rows (partial hours), after a purge, and
        a namespace's stats hold nothing of the other's."""
        base = store.DAY * 300
        runs = {  # run id: (namespace, start, duration ms, phase)
            "a1": ("a", base + 61, 10.0, "Succeeded"),
            "a2": ("a", base + 3600 + 61, 20.0, "Failed"),
            "a3": ("a", base + 86400 + 61, 30.0, "Succeeded"),
            "b1": ("b", base + 125, 500.0, "Succeeded"),
            "b2": ("b", base + 7200 + 125, 700.0, "Succeeded"),
        }
        for run_id, (ns, at, ms, phase) in runs.items():
            recs = finished(run_id, workflow="orders", namespace=ns, at=at, ms=ms, phase=phase)
            await st.record(run_id, recs)

        def expect(ns: str, since: float, until: float) -> list[str]:
            return sorted(r for r, (n, at, _, _) in runs.items() if n == ns and since <= at < until)

        windows = [
            (base, base + 2 * 86400, 86400.0),  # whole days: daily rollups
            (base, base + 3 * 3600, 3600.0),  # whole hours: hourly rollups
            (base + 100, base + 7200 + 200, 3600.0),  # partial hours: raw rows at the edges
        ]
        for since, until, bucket in windows:
            both = await st.stats(since=since, until=until, bucket=bucket)
            assert [(s.namespace, s.workflow) for s in both] == [("a", "orders"), ("b", "orders")]
            for s in both:
                mine = expect(s.namespace, since, until)
                assert s.runs.count == len(mine) == s.steps["s"].count, (since, until)
                assert s.runs.failed == sum(runs[r][3] == "Failed" for r in mine)
                assert sum(n for _, n in s.buckets) == len(mine)
                assert s.to_json()["namespace"] == s.namespace
            for ns in ("a", "b"):
                (only,) = await st.stats(since=since, until=until, namespace=ns, bucket=bucket)
                assert only.namespace == ns and only.runs.count == len(expect(ns, since, until))
                if ns == "b":  # b's durations alone: none of a's 10-30 ms
                    assert only.runs.p50_ms == pytest.approx(500.0, rel=0.045)
            assert await st.stats(since=since, until=until, namespace="c", bucket=bucket) == []
        # A purge of one namespace's runs rebuilds its rollups and leaves the other's.
        assert await st.purge(store.RunFilter(namespace="a", workflow="orders")) == 3
        (left,) = await st.stats(since=base, until=base + 2 * 86400, bucket=86400)
        assert (left.namespace, left.runs.count, left.steps["s"].count) == ("b", 2, 2)
        assert await st.stats(since=base, until=base + 2 * 86400, namespace="a") == []

    async def test_stats_hold_durations_from_the_first_bucket_to_the_last(
        self, st: store.Store
    ) -> None:
        """A rollup row's histogram spans every bucket: under 1 ms, over 2^30 ms (12.4
        days), and a step finished without a duration counts but has no place in it. Read
        from the hours, from the days and after a deletion rebuilt them."""
        base = store.DAY * 400
        durations = [0.2, 3.0, 4.0, 5000.0, 2.0**31, 2.0**31]  # ms, of the runs and steps
        for n, ms in enumerate(durations):
            await st.record(f"x{n}", finished(f"x{n}", at=base + 60 + n, ms=ms, step_ms=ms))
        bare = finished("x-bare", at=base + 90, ms=50.0)  # its step has no start time
        bare[2] = {**bare[2], "startedAt": None}
        await st.record("x-bare", bare)
        for n in range(3):
            await st.record(f"f{n}", finished(f"f{n}", workflow="fast", at=base + 99, ms=0.2))
        await st.record("x-gone", finished("x-gone", at=base + 95, ms=7.0))
        assert await st.purge(store.RunFilter(run_id="x-gone")) == 1

        for since, until, bucket in (
            (base, base + 3600, 3600.0),  # one whole hour
            (base, base + store.DAY, store.DAY),  # one whole day
        ):
            got = {s.workflow: s for s in await st.stats(since=since, until=until, bucket=bucket)}
            s = got["wf"]
            assert (s.runs.count, s.runs.succeeded, s.steps["s"].count) == (7, 7, 7)
            assert s.buckets == ((base, 7),)
            assert s.runs.p50_ms == pytest.approx(50.0, rel=0.045)  # 4th of 7
            assert s.runs.p95_ms == records.bucket_value(len(records.BOUNDS))  # the last
            assert s.steps["s"].p50_ms == pytest.approx(4.0, rel=0.045)  # 3rd of 6 timed
            assert got["fast"].runs.p95_ms == 0.5  # the first bucket: under 1 ms

    # -- purge --------------------------------------------------------------------------------

    async def test_a_purge_without_a_filter_is_refused(self, st: store.Store) -> None:
        await st.record("keep", finished("keep"))
        with pytest.raises(store.StoreError, match="needs a filter"):
            await st.purge(store.RunFilter())
        assert len((await st.list_runs()).runs) == 1

    async def test_purge_removes_matching_finished_runs_and_everything_about_them(
        self, st: store.Store
    ) -> None:
        await st.record("old", finished("old", workflow="orders", at=1000))
        await st.record("new", finished("new", workflow="orders", at=5000))
        await st.record("other", finished("other", workflow="invoices", at=1000))
        await st.record("live", [header("live", "orders", at=1000)])

        assert await st.purge(store.RunFilter(workflow="orders", until=2000)) == 1
        remaining = {r.run_id for r in (await st.list_runs()).runs}
        assert remaining == {"new", "other", "live"}  # an unfinished run is kept
        assert await st.get_run("old") is None
        assert await st.journal("old") == []
        # Named by id, an unfinished run goes too (a stale run nobody will resume).
        assert await st.purge(store.RunFilter(run_id="live")) == 1
        assert await st.unfinished("orders") is None

    async def test_stats_from_rollups_match_the_raw_rows_at_any_window_edges(
        self, st: store.Store
    ) -> None:
        # 30 runs spread over 5 hours, each written twice (a retry after an unknown outcome).
        base = 3600.0 * 100
        for n in range(30):
            recs = finished(f"w{n}", at=base + n * 600 + 7, ms=10.0 * (n + 1), step_ms=n + 1)
            await st.record(f"w{n}", recs)
            await st.record(f"w{n}", recs)
        for since, until in [
            (base, base + 5 * 3600),  # whole hours: rollups only
            (base + 1234, base + 4 * 3600 + 99),  # partial hours at both edges
            (base + 1000, base + 1900),  # inside one hour: raw rows only
        ]:
            expected = [n for n in range(30) if since <= base + n * 600 + 7 < until]
            (s,) = await st.stats(since=since, until=until, bucket=3600)
            assert s.runs.count == len(expected) == s.steps["s"].count
            assert sum(count for _, count in s.buckets) == len(expected)
            durations = sorted(10.0 * (n + 1) for n in expected)
            p95 = durations[-(-len(durations) * 95 // 100) - 1]
            assert s.runs.p95_ms == pytest.approx(p95, rel=0.045)
        (day,) = await st.stats(since=0, until=base + 86400, bucket=86400)
        assert day.buckets == ((base - base % 86400, 30),)

    async def test_stats_over_days_read_daily_rollups_that_follow_deletions(
        self, st: store.Store, raw_sql: Callable[[str], list[tuple[Any, ...]]]
    ) -> None:
        # 60 runs over 5 days, every 2 hours; workflow "b" every 4th; some failed.
        base = store.DAY * 200
        runs: dict[str, tuple[float, float, str, str]] = {}
        for n in range(60):
            at, ms = base + n * 7200 + 61, 5.0 * (n + 1)
            wf, phase = ("b" if n % 4 == 0 else "a"), ("Failed" if n % 7 == 0 else "Succeeded")
            runs[f"d{n}"] = (at, ms, wf, phase)
            await st.record(f"d{n}", finished(f"d{n}", workflow=wf, at=at, ms=ms, phase=phase))
        # Rows of the daily grain: a day's runs of a workflow are counted once, by start day.
        started = raw_sql("SELECT sum(started) FROM autoflow_rollups_daily WHERE step = ''")
        assert int(started[0][0]) == 60

        async def check(since: float, until: float, bucket: float) -> None:
            got = {s.workflow: s for s in await st.stats(since=since, until=until, bucket=bucket)}
            for wf in ("a", "b"):
                mine = [r for r in runs.values() if r[2] == wf and since <= r[0] < until]
                if not mine:
                    assert wf not in got
                    continue
                s = got[wf]
                assert s.runs.count == len(mine) == s.steps["s"].count, (since, until)
                assert s.runs.failed == sum(r[3] == "Failed" for r in mine)
                durations = sorted(r[1] for r in mine)
                for p, value in ((0.5, s.runs.p50_ms), (0.95, s.runs.p95_ms)):
                    rank = max(1, -(-len(durations) * int(p * 100) // 100))
                    assert value == pytest.approx(durations[rank - 1], rel=0.045)
                expected: dict[float, int] = {}
                for r in mine:
                    start = r[0] - r[0] % bucket
                    expected[start] = expected.get(start, 0) + 1
                assert dict(s.buckets) == expected, (since, until, bucket)

        windows = [
            (base, base + 5 * store.DAY),  # whole days only
            (base + 5000, base + 4 * store.DAY + 9000),  # days, hours and rows at both edges
            (base + store.DAY - 7200, base + 2 * store.DAY + 3600),  # whole hours at the edges
            (base + 3 * store.DAY + 100, base + 3 * store.DAY + 50000),  # within one day
        ]
        for since, until in windows:
            for bucket in (store.DAY, 3600.0, 7200.0, 5000.0):
                await check(since, until, bucket)
        # A deletion rebuilds the days it touched from the hours that remain.
        gone = [k for k, r in runs.items() if r[2] == "a" and r[0] < base + 2 * store.DAY]
        assert await st.purge(store.RunFilter(workflow="a", until=base + 2 * store.DAY)) == len(
            gone
        )
        for k in gone:
            del runs[k]
        for since, until in windows:
            await check(since, until, store.DAY)

    # -- retention ----------------------------------------------------------------------------

    async def test_expired_runs_go_by_the_workflows_retention_or_the_default(
        self, st: store.Store
    ) -> None:
        now = 100 * store.DAY
        spec = {"steps": [], "retention": {"maxRuns": 2}}
        for n in range(5):  # keeps its newest 2 (its spec says so)
            await st.record(f"k{n}", finished(f"k{n}", workflow="kept", at=now - n, spec=spec))
        for n, age in enumerate((1, 20, 40)):  # the default: 30 days
            await st.record(f"d{n}", finished(f"d{n}", workflow="dflt", at=now - age * store.DAY))
        await st.record("live", [header("live", "dflt", at=now - 50 * store.DAY)])
        await st.record("p1", finished("p1", workflow="given", at=now - 3 * store.DAY))

        gone = await st.purge_expired(
            default=store.Retention(days=30),
            policies={("", "given"): store.Retention(days=2)},
            now=now,
            actor="operator",
        )
        assert gone == 3 + 1 + 1
        left = {r.run_id for r in (await st.list_runs(limit=100)).runs}
        assert left == {"k0", "k1", "d0", "d1", "live"}  # unfinished runs are never expired
        (s,) = await st.stats(since=0, until=now + 1, workflow="kept")
        assert s.runs.count == 2  # the rollups lost the purged runs too
        assert await st.purge_expired(default=store.Retention(days=30), now=now) == 0
        trail = await st.audit()
        assert len(trail) == 3  # one per workflow that lost runs; a purge of nothing is silent
        assert {(a.action, a.actor) for a in trail} == {("purge-expired", "operator")}
        assert sorted(a.count for a in trail) == [1, 1, 3]
        assert any("kept" in a.what and "newest 2" in a.what for a in trail)

    async def test_the_retention_loop_purges_every_interval_until_cancelled(
        self, st: store.Store
    ) -> None:
        now = time.time()
        await st.record("old", finished("old", workflow="orders", at=now - 40 * store.DAY))
        await st.record("new", finished("new", workflow="orders", at=now - 1))
        rounds: list[int] = []
        asked = 0

        async def policies() -> dict[tuple[str, str], store.Retention]:
            nonlocal asked
            asked += 1
            if asked == 2:
                raise RuntimeError("the API server is away")  # that round fails, the next runs
            return {("", "short"): store.Retention(days=1)}

        loop = asyncio.create_task(
            retention.retention_loop(
                st,
                interval=0.05,
                default=store.Retention(days=30),
                policies=policies,
                actor="operator",
                on_purged=rounds.append,
                delay=0,
            )
        )
        try:
            for _ in range(200):
                if rounds:
                    break
                await asyncio.sleep(0.01)
            assert rounds[0] == 1  # "old", by the default
            await st.record("s1", finished("s1", workflow="short", at=now - 2 * store.DAY))
            for _ in range(400):
                if sum(rounds) == 2:
                    break
                await asyncio.sleep(0.01)
            assert sum(rounds) == 2 and asked >= 3  # "s1", by its policy, after a failed round
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        assert {r.run_id for r in (await st.list_runs()).runs} == {"new"}
        assert {(a.action, a.actor) for a in await st.audit()} == {("purge-expired", "operator")}
        with pytest.raises(store.StoreError, match="positive"):
            await retention.retention_loop(st, interval=0)

    async def test_a_purge_leaves_an_audit_record(self, st: store.Store) -> None:
        await st.record("old", finished("old", workflow="orders", at=1000))
        assert await st.purge(store.RunFilter(workflow="orders", until=2000), actor="ann") == 1
        (entry,) = await st.audit()
        assert (entry.action, entry.actor, entry.count) == ("purge", "ann", 1)
        assert "orders" in entry.what
        assert entry.at == pytest.approx(time.time(), abs=60)

    # -- erasure by data subject --------------------------------------------------------------

    async def test_erasure_leaves_nothing_of_the_subject_in_any_table(
        self,
        st: store.Store,
        raw_sql: Callable[[str], list[tuple[Any, ...]]],
        tables: Callable[[], list[str]],
    ) -> None:
        email = "Ann.Example@Mail.test"
        inputs = {"email": email.lower(), "n": 1}
        for n, at in enumerate((3600.0 * 5, 3600.0 * 30)):
            recs = finished(f"ann-{n}", at=at, subject=email, inputs=inputs)
            recs[2]["output"] = {"sentTo": email}
            await st.record(f"ann-{n}", recs)
        await st.record("ann-live", [header("ann-live", at=3600.0 * 31, subject=f" {email} ")])
        await st.record("bob-0", finished("bob-0", at=3600.0 * 5, subject="bob@mail.test"))
        await st.record("anon", finished("anon", at=3600.0 * 5))

        assert await st.erase(email.upper(), actor="dpo") == 3  # the same person, any case
        assert {r.run_id for r in (await st.list_runs()).runs} == {"bob-0", "anon"}
        hashed = records.subject_hash(email, KEY)
        found = []
        for table in tables():
            for row in raw_sql(f"SELECT * FROM {table}"):
                text = " ".join(str(v) for v in row).lower()
                for needle in ("ann.example", hashed, "ann-0", "ann-1", "ann-live"):
                    if needle in text:
                        found.append((table, needle, row))
        assert found == []
        (entry,) = await st.audit()
        assert (entry.action, entry.actor, entry.count) == ("erase", "dpo", 3)
        (s,) = await st.stats(since=0, until=1e9)
        assert s.runs.count == 2  # bob-0 and anon

    async def test_a_subject_without_a_key_is_refused_never_stored_in_the_clear(
        self, store_url: str
    ) -> None:
        keyless = await store.open_store(store_url, migrate=True, subject_key=b"")
        try:
            with pytest.raises(store.StoreError, match="AUTOFLOW_STORE_SUBJECT_KEY"):
                await keyless.record("r", finished("r", subject="ann@mail.test"))
            with pytest.raises(store.StoreError, match="AUTOFLOW_STORE_SUBJECT_KEY"):
                await keyless.erase("ann@mail.test")
            assert (await keyless.list_runs()).runs == ()
        finally:
            await keyless.aclose()

    async def test_secret_inputs_are_stored_as_a_redaction_marker(
        self,
        st: store.Store,
        raw_sql: Callable[[str], list[tuple[Any, ...]]],
        tables: Callable[[], list[str]],
    ) -> None:
        token = "tok-5ecret-value"
        given = {"token": token, "channel": "#ops", "none": None}
        await st.record("r", finished("r", inputs=given, secretInputs=["token", "none"]))
        detail = await st.get_run("r")
        assert detail is not None
        assert detail.inputs == {"token": {"redacted": True}, "channel": "#ops", "none": None}
        (rec, *_) = await st.journal("r")  # what a resume reads: the marker, never the value
        assert rec["inputs"]["token"] == {"redacted": True}
        for table in tables():
            for row in raw_sql(f"SELECT * FROM {table}"):
                assert token not in " ".join(str(v) for v in row), table

    # -- versions -----------------------------------------------------------------------------

    async def test_each_distinct_spec_is_stored_once_and_versions_say_which_ran(
        self, st: store.Store, raw_sql: Callable[[str], list[tuple[Any, ...]]]
    ) -> None:
        v1 = {"steps": [{"id": "s", "uses": "core.noop"}]}
        v2 = {"steps": [{"id": "s", "uses": "core.log", "with": {"message": "hi"}}]}
        await st.record("a", finished("a", at=1000, specHash="h1", spec=v1))
        await st.record("b", finished("b", at=2000, specHash="h1", spec=v1))
        await st.record("c", finished("c", at=3000, specHash="h2", spec=v2))
        await st.record("d", finished("d", at=4000, specHash="h0"))  # the runner sent no spec
        assert raw_sql("SELECT count(*) FROM autoflow_specs")[0][0] == 2
        versions = await st.versions("wf")
        assert [(v.spec_hash, v.runs, v.stored) for v in versions] == [
            ("h0", 1, False),
            ("h2", 1, True),
            ("h1", 2, True),
        ]
        assert (versions[2].first_run, versions[2].last_run) == (1000, 2000)
        assert await st.get_spec("h1") == v1
        assert await st.get_spec("h0") is None
        # A purge keeps the specs: a version stays restorable after its runs are gone.
        await st.purge(store.RunFilter(until=5000))
        assert await st.get_spec("h2") == v2

    # -- the store as a journal ---------------------------------------------------------------

    @pytest.mark.parametrize(
        ("crash_after", "expected_calls"),
        [
            # killed while c's attempt 2 ran: c runs again as attempt 2, then what follows
            (("start", "c", 2), [("c", 2), ("each", 1), ("each", 1), ("each", 1), ("d", 1)]),
            # killed after c's first failure: the next attempt is 2
            (("retry", "c", 1), [("c", 2), ("each", 1), ("each", 1), ("each", 1), ("d", 1)]),
            # killed after two foreach items: only the third runs
            (("item", "each", 1), [("each", 1), ("d", 1)]),
        ],
    )
    async def test_a_killed_run_resumes_from_the_store_without_repeating_a_step(
        self,
        st: store.Store,
        probe: Any,
        new_probe: Any,
        crash_after: tuple[str, str, int],
        expected_calls: list[tuple[str, int]],
    ) -> None:
        memory = journal_mod.MemoryJournal()
        assert (await probe.run(SPEC, journal=memory, inputs={"n": 5})).succeeded
        kind, step, number = crash_after

        def match(r: Record) -> bool:
            key = "index" if kind == "item" else "attempt"
            return r["t"] == kind and r.get("step") == step and r.get(key) == number

        await st.record("r1", upto(memory.records, match))
        assert await st.unfinished("wf") == "r1"

        again = new_probe()
        resumed = await store_journal.StoreJournal.load(st, "r1")
        result = await again.run(SPEC, journal=resumed, run_id="r1")
        await resumed.aclose()
        assert result.succeeded and result.resumed
        assert [(c.step, c.attempt) for c in again.calls] == expected_calls
        assert result.outputs == {"d": [5, 6, "c", [10, 20, 30]]}
        assert {c.key for c in again.calls if c.step == "c"} <= {"r1:c"}
        assert await st.unfinished("wf") is None
        # The store now tells the whole story once: replaying it gives the same result.
        state = journal_mod.replay(await st.journal("r1"))
        assert state.end is not None and state.end["phase"] == "Succeeded"
        assert sorted(state.steps) == ["a", "b", "c", "d", "each"]

    async def test_a_finished_run_in_the_store_returns_its_result_without_running(
        self, st: store.Store, probe: Any, new_probe: Any
    ) -> None:
        jr = store_journal.StoreJournal(st)
        first = await probe.run(SPEC, journal=jr, run_id="done")
        again = new_probe()
        second = await again.run(
            SPEC, journal=await store_journal.StoreJournal.load(st, "done"), run_id="done"
        )
        assert again.calls == []
        assert second.outputs == first.outputs
        assert second.resumed

    # -- many runs at once --------------------------------------------------------------------

    async def test_a_hundred_runs_in_flight_are_all_recorded(
        self, st: store.Store, new_probe: Any, raw_sql: Callable[[str], list[tuple[Any, ...]]]
    ) -> None:
        spec = {
            "steps": [{"id": f"s{i}", "uses": "t.call", "with": {"value": i}} for i in range(5)]
        }

        async def one(n: int) -> engine.RunResult:
            jr = store_journal.StoreJournal(st)
            try:
                result: engine.RunResult = await new_probe().run(
                    spec, journal=jr, run_id=f"many-{n:03}"
                )
                return result
            finally:
                await jr.aclose()

        results = await asyncio.gather(*(one(n) for n in range(100)))
        assert all(r.succeeded for r in results)
        page = await st.list_runs(limit=200)
        assert len(page.runs) == 100
        assert {r.phase for r in page.runs} == {"Succeeded"}
        run = await st.get_run("many-042")
        assert run is not None
        assert [s.output for s in run.steps] == [0, 1, 2, 3, 4]
        # Batches of many runs add to the same rollup keys (one hour, one day): each run and
        # step counted once, by the hourly and the daily grain alike.
        now = time.time()
        for since in (now - 2 * 3600, now - 3 * store.DAY):
            (s,) = await st.stats(since=since, until=now + 1)
            assert s.runs.count == s.runs.succeeded == 100
            assert {k: f.count for k, f in s.steps.items()} == {f"s{i}": 100 for i in range(5)}
            assert sum(n for _, n in s.buckets) == 100
        for table in ("autoflow_rollups", "autoflow_rollups_daily"):
            (started,) = raw_sql(f"SELECT sum(started) FROM {table} WHERE step = ''")
            assert int(started[0]) == 100, table

    # -- starting runs (the runner pool) ------------------------------------------------------

    async def _start(self, st: store.Store, run_id: str, key: str | None, **kw: Any) -> Any:
        return await st.start_run(
            run_id=run_id,
            workflow=kw.pop("workflow", "wf"),
            namespace="team",
            spec=kw.pop("spec", None),
            inputs=kw.pop("inputs", {"n": 1}),
            trigger="webhook",
            started_by="webhook:/hooks/team/wf",
            dedupe_key=key,
            **kw,
        )

    async def test_a_started_run_is_pending_then_runs_from_its_recorded_inputs(
        self, st: store.Store, probe: Any
    ) -> None:
        compiled = probe.compile(SPEC)
        digest = engine.spec_hash(compiled)
        started = await self._start(
            st, "p1", "hook:d1", inputs={"n": 7}, spec=SPEC, spec_hash=digest
        )
        assert started == ("p1", False)
        (listed,) = (await st.list_runs()).runs
        assert (listed.phase, listed.trigger, listed.namespace) == ("Pending", "webhook", "team")
        assert await st.unended() == ["p1"]
        assert await st.get_spec(digest) == SPEC
        claimed = await st.claim_run("p1")
        assert claimed is not None and claimed == await st.journal("p1")
        assert [r["t"] for r in claimed] == ["run"]  # Running now: no end in its journal
        assert claimed[0]["inputs"] == {"n": 7} and claimed[0]["specHash"] == digest
        assert (await st.list_runs()).runs[0].phase == "Running"
        assert await st.claim_run("p1") == claimed  # a second worker leaves it so
        assert await st.claim_run("nope") is None
        jr = await store_journal.StoreJournal.load(st, "p1")
        result = await probe.run(compiled, journal=jr, run_id="p1")
        await jr.aclose()
        assert result.succeeded and result.outputs == {"d": [7, 8, "c", [10, 20, 30]]}
        run = await st.get_run("p1")
        assert run is not None and run.summary.phase == "Succeeded"
        assert run.summary.trigger == "webhook" and run.inputs == {"n": 7}
        assert await st.unended() == []
        (s,) = await st.stats(since=time.time() - 60, until=time.time() + 60)
        assert (s.runs.count, s.runs.succeeded) == (1, 1)
        assert s.buckets and sum(n for _, n in s.buckets) == 1  # started once, not twice
        # Over whole days too: the start counted in the daily rollups as in the hourly ones.
        today = time.time() // store.DAY * store.DAY
        (s,) = await st.stats(since=today - store.DAY, until=today + store.DAY, bucket=store.DAY)
        assert (s.runs.count, s.buckets) == (1, ((today, 1),))

    async def test_a_redelivery_answers_with_the_first_run_and_writes_nothing(
        self, st: store.Store
    ) -> None:
        assert await self._start(st, "first", "hook:d1") == ("first", False)
        assert await self._start(st, "second", "hook:d1") == ("first", True)
        assert await self._start(st, "third", "hook:d2") == ("third", False)
        assert await self._start(st, "free", None) == ("free", False)
        assert await self._start(st, "free", None) == ("free", True)  # a deterministic id
        page = await st.list_runs()
        assert sorted(r.run_id for r in page.runs) == ["first", "free", "third"]

    async def test_a_purged_or_erased_run_takes_its_delivery_rows_with_it(
        self, st: store.Store, raw_sql: Callable[[str], list[tuple[Any, ...]]]
    ) -> None:
        def deliveries() -> set[str]:
            return {str(r[0]) for r in raw_sql("SELECT run_id FROM autoflow_deliveries")}

        assert await self._start(st, "named", "hook:d1") == ("named", False)
        assert await self._start(st, "kept", "hook:d2") == ("kept", False)
        assert await self._start(st, "ann", "hook:d3", subject="ann@mail.test") == ("ann", False)
        assert await self._start(st, "old", "hook:d4") == ("old", False)
        assert await st.claim_run("old") is not None
        assert await st.claim_run("kept") is not None  # Running: no purge takes it
        end = {"t": "end", "phase": "Succeeded", "outputs": None, "error": None}
        await st.record("old", [{**end, "at": time.time()}])
        assert deliveries() == {"named", "kept", "ann", "old"}

        assert await st.purge(store.RunFilter(run_id="named")) == 1
        assert await st.erase("ann@mail.test") == 1
        assert deliveries() == {"kept", "old"}
        expired = await st.purge_expired(default=store.Retention(days=0), now=time.time() + 60)
        assert expired == 1  # "old" (ended); "kept" is still Running
        assert deliveries() == {"kept"}
        # A redelivery after its run went starts a new run; one whose run is kept answers
        # with it.
        assert await self._start(st, "again", "hook:d1") == ("again", False)
        assert await self._start(st, "dup", "hook:d2") == ("kept", True)

    async def test_a_queued_pending_run_is_neither_purged_nor_counted_as_finished(
        self, st: store.Store
    ) -> None:
        now = time.time()
        assert await self._start(st, "queued", "hook:q1") == ("queued", False)
        await st.record("done", finished("done", at=now, namespace="team"))
        later = now + 86400
        assert await st.purge(store.RunFilter(until=later)) == 1  # "done" only
        await st.record("done2", finished("done2", at=now, namespace="team"))
        assert await st.purge_expired(default=store.Retention(days=0), now=later) == 1
        assert [r.run_id for r in (await st.list_runs()).runs] == ["queued"]
        assert await st.claim_run("queued") is not None  # a worker still finds its run
        # The purges rebuilt the rollups of the hour: a queued run is not a finished one.
        stats = await st.stats(since=now - 3600, until=now + 3600)
        assert [s.runs.count for s in stats] == []

    async def test_activity_counts_each_workflows_runs_and_failures_since_a_moment(
        self, st: store.Store
    ) -> None:
        await st.record("before", finished("before", workflow="orders", at=900, phase="Failed"))
        await st.record("o1", finished("o1", workflow="orders", at=1000, namespace="shop"))
        await st.record(
            "o2", finished("o2", workflow="orders", at=1010, phase="Failed", namespace="shop")
        )
        await st.record("o3", [header("o3", "orders", at=1020, namespace="shop")])
        await st.record("x1", finished("x1", workflow="orders", at=1005, namespace="other"))
        await st.record("i1", finished("i1", workflow="invoices", at=1001, phase="Failed"))
        await st.record("i2", finished("i2", workflow="invoices", at=1001))  # a tie: greater id

        got = await st.activity(1000)
        assert [(a.namespace, a.workflow) for a in got] == [
            ("", "invoices"),
            ("other", "orders"),
            ("shop", "orders"),
        ]
        invoices, other, shop = got
        assert (shop.runs, shop.failed, shop.last_run, shop.last_phase) == (
            3, 1, "o3", "Running",
        )  # fmt: skip
        assert shop.last_started_at == 1020
        assert (other.runs, other.failed, other.last_run) == (1, 0, "x1")
        assert (invoices.runs, invoices.failed, invoices.last_run) == (2, 1, "i2")
        assert await st.activity(2000) == []
        assert [a.runs for a in await st.activity(0) if a.namespace == ""] == [2, 1]

    async def test_a_run_executed_at_once_is_recorded_running_and_needs_no_claim(
        self, st: store.Store
    ) -> None:
        assert await self._start(st, "now", "hook:n", phase="Running") == ("now", False)
        assert (await st.list_runs()).runs[0].phase == "Running"
        assert await st.unended() == ["now"]  # resumed after a crash like any other
        assert [r["t"] for r in await st.journal("now")] == ["run"]
        with pytest.raises(store.StoreError, match="Pending or Running"):
            await self._start(st, "bad", None, phase="Succeeded")

    async def test_concurrent_starts_with_one_key_leave_one_run(self, st: store.Store) -> None:
        results = await asyncio.gather(
            *(self._start(st, f"c{n:02}", f"hook:{n % 5}") for n in range(50))
        )
        firsts = {r[0] for r in results if not r[1]}
        assert len(firsts) == 5
        assert sum(1 for r in results if r[1]) == 45
        by_key: dict[int, set[str]] = {}
        for n, (run_id, _) in enumerate(results):
            by_key.setdefault(n % 5, set()).add(run_id)
        assert all(len(ids) == 1 for ids in by_key.values())
        page = await st.list_runs(limit=100)
        assert sorted(r.run_id for r in page.runs) == sorted(firsts)

    async def test_a_started_run_with_a_subject_stores_only_its_hash(
        self, st: store.Store, raw_sql: Callable[[str], list[tuple[Any, ...]]]
    ) -> None:
        await self._start(st, "s1", None, subject="ann@example.com")
        rows = raw_sql("SELECT subject FROM autoflow_runs WHERE run_id = 's1'")
        assert rows[0][0] == records.subject_hash("ann@example.com", KEY)
        assert await st.erase("ann@example.com") == 1

    async def test_a_started_runs_secret_inputs_are_sealed_and_only_a_claim_opens_them(
        self,
        st: store.Store,
        store_url: str,
        raw_sql: Callable[[str], list[tuple[Any, ...]]],
        tables: Callable[[], list[str]],
    ) -> None:
        """A runner pool's worker reads the inputs of the run it claims from the store, so a
        secret one must be there, but never readable by a view, a dump or another key."""
        token = "tok-5ecret-pool-value"
        given = {"token": token, "channel": "#ops"}
        await self._start(st, "sealed", None, inputs=given, secret_inputs=["token", "unset"])
        detail = await st.get_run("sealed")
        assert detail is not None
        assert detail.inputs == {"token": {"redacted": True}, "channel": "#ops"}
        for table in tables():
            for row in raw_sql(f"SELECT * FROM {table}"):
                assert token not in " ".join(str(v) for v in row), table
        claimed = await st.claim_run("sealed")
        assert claimed is not None and claimed[0]["inputs"] == given
        assert "sealedInputs" not in claimed[0]
        assert (await st.journal("sealed"))[0]["inputs"] == given  # a resume reads them too

        other = await store.open_store(store_url, subject_key=b"another key")
        keyless = await store.open_store(store_url, subject_key=b"")
        try:
            for wrong, why in ((other, "another key"), (keyless, "no key")):
                (header, *_) = await wrong.journal("sealed")
                assert header["inputs"] == {"token": {"redacted": True}, "channel": "#ops"}
                assert header["sealedInputs"] == why
            with pytest.raises(store.StoreError, match="AUTOFLOW_STORE_SUBJECT_KEY") as info:
                await self._start(keyless, "refused", None, inputs=given, secret_inputs=["token"])
            assert token not in str(info.value) and "token" in str(info.value)
            assert await keyless.get_run("refused") is None
            # without a secret value there is nothing to seal: no key needed
            assert await self._start(
                keyless, "plain", None, inputs={"channel": "#ops"}, secret_inputs=["token"]
            ) == ("plain", False)
        finally:
            await other.aclose()
            await keyless.aclose()

    # -- schema -------------------------------------------------------------------------------

    async def test_a_store_migrated_by_a_newer_autoflow_is_refused_naming_the_version(
        self, st: store.Store, store_url: str, raw_sql: Callable[[str], None]
    ) -> None:
        assert await st.schema_version() == migrations.LATEST
        newer = migrations.LATEST + 1
        raw_sql(
            "INSERT INTO autoflow_schema (version, autoflow_version, applied_at) "
            f"VALUES ({newer}, '9.1.0', {time.time()})"
        )
        with pytest.raises(store.SchemaMismatch) as caught:
            await store.open_store(store_url, migrate=True)
        message = str(caught.value)
        assert f"schema version {newer}" in message
        assert "use Autoflow 9.1.0 or newer" in message
        assert ":***@" in message or "sqlite" in message  # never the password

    async def test_a_version_4_store_is_migrated_to_rollups_per_namespace(
        self, store_url: str, raw_sql: Callable[[str], list[tuple[Any, ...]]]
    ) -> None:
        """Version 5 keys the rollups by namespace: a store whose rollups merged two
        namespaces' Workflows of one name gets them apart, rebuilt from its rows."""
        raw_sql(migrations.SCHEMA_TABLE)
        for m in migrations.MIGRATIONS[:4]:
            for statement in m.statements:
                if not store_url.startswith("postgres"):
                    statement = migrations.sqlite_dialect(statement)
                raw_sql(statement)
            raw_sql(
                "INSERT INTO autoflow_schema (version, autoflow_version, applied_at) "
                f"VALUES ({m.version}, '0.4.0', 0)"
            )
        at = 3600.0 * 10
        for run_id, ns, ms in (("x1", "a", 100), ("x2", "a", 100), ("y1", "b", 900)):
            raw_sql(
                "INSERT INTO autoflow_runs (run_id, workflow, namespace, spec_hash, trigger, "
                "started_by, phase, started_at, finished_at, duration_ms) VALUES "
                f"('{run_id}', 'orders', '{ns}', 'h', 'job', '', 'Succeeded', {at}, "
                f"{at + ms / 1000}, {ms})"
            )
        # What version 4 wrote for them: one row for both namespaces.
        raw_sql(
            "INSERT INTO autoflow_rollups (workflow, step, hour, bucket, count, succeeded, "
            "failed) VALUES ('orders', '', 10, -1, 3, 0, 0)"
        )
        migrated = await store.open_store(store_url, migrate=True)
        try:
            assert await migrated.schema_version() == migrations.LATEST
            found = await migrated.stats(since=at, until=at + 86400 * 2, bucket=86400)
            assert [(s.namespace, s.runs.count) for s in found] == [("a", 2), ("b", 1)]
            hourly = await migrated.stats(since=at, until=at + 3600, namespace="b")
            assert [(s.namespace, s.runs.count, s.buckets) for s in hourly] == [
                ("b", 1, ((36000.0, 1),))
            ]
        finally:
            await migrated.aclose()

    async def test_a_version_5_store_gets_rollups_with_histograms_built_from_its_rows(
        self, store_url: str, raw_sql: Callable[[str], list[tuple[Any, ...]]]
    ) -> None:
        """Version 6 keeps one rollup row per hour (or day), namespace, workflow and step
        with its whole duration histogram: a version-5 store's rollups (a row per duration
        bucket) are replaced by ones rebuilt from its runs and steps."""
        raw_sql(migrations.SCHEMA_TABLE)
        for m in migrations.MIGRATIONS[:5]:
            for statement in m.statements:
                if not store_url.startswith("postgres"):
                    statement = migrations.sqlite_dialect(statement)
                raw_sql(statement)
            raw_sql(
                "INSERT INTO autoflow_schema (version, autoflow_version, applied_at) "
                f"VALUES ({m.version}, '0.5.0', 0)"
            )
        at = store.DAY * 100 + 60
        runs = (("r1", "a", 100, "Succeeded"), ("r2", "a", 300, "Failed"), ("r3", "b", 900, ""))
        for run_id, ns, ms, phase in runs:
            ended = (
                f"'{phase}', {at}, {at + ms / 1000}, {ms}"
                if phase
                else f"'Running', {at}, NULL, NULL"
            )
            raw_sql(
                "INSERT INTO autoflow_runs (run_id, workflow, namespace, spec_hash, trigger, "
                "started_by, phase, started_at, finished_at, duration_ms) VALUES "
                f"('{run_id}', 'orders', '{ns}', 'h', 'job', '', {ended})"
            )
            raw_sql(
                "INSERT INTO autoflow_steps (run_id, step, phase, attempts, started_at, "
                f"finished_at, duration_ms, message, workflow, run_started_at) VALUES "
                f"('{run_id}', 's', 'Succeeded', 1, {at}, {at + ms / 2000}, {ms / 2}, '', "
                f"'orders', {at})"
            )
        # What version 5 wrote: a row per duration bucket (these counts are stale on purpose).
        raw_sql(
            "INSERT INTO autoflow_rollups (namespace, workflow, step, hour, bucket, count, "
            f"succeeded, failed) VALUES ('a', 'orders', '', {int(at // 3600)}, 60, 9, 9, 0)"
        )
        migrated = await store.open_store(store_url, migrate=True)
        try:
            assert await migrated.schema_version() == migrations.LATEST
            for since, until, bucket in (
                (at - 60, at + 3540, 3600.0),
                (at - 60, at + 86340, store.DAY),
            ):
                found = await migrated.stats(since=since, until=until, bucket=bucket)
                assert [(s.namespace, s.runs.count, s.runs.failed) for s in found] == [("a", 2, 1)]
                (a,) = found
                assert a.runs.p50_ms == pytest.approx(100.0, rel=0.045)
                assert a.runs.p95_ms == pytest.approx(300.0, rel=0.045)
                assert a.steps["s"].p95_ms == pytest.approx(150.0, rel=0.045)
                assert a.buckets == ((at - 60, 2),)
                # b's run is still running: started, not finished (its step is).
                assert await migrated.stats(since=since, until=until, namespace="b") == []
            for table in ("autoflow_rollups", "autoflow_rollups_daily"):
                counted = raw_sql(
                    f"SELECT namespace, step, started, count FROM {table} ORDER BY 1, 2"
                )
                assert [
                    tuple(int(v) if k > 1 else v for k, v in enumerate(row)) for row in counted
                ] == [
                    ("a", "", 2, 2),
                    ("a", "s", 0, 2),
                    ("b", "", 1, 0),
                    ("b", "s", 0, 1),
                ]
        finally:
            await migrated.aclose()

    async def test_a_version_1_store_is_migrated_and_its_rollups_built_from_its_rows(
        self, store_url: str, raw_sql: Callable[[str], list[tuple[Any, ...]]]
    ) -> None:
        raw_sql(migrations.SCHEMA_TABLE)
        for statement in migrations.MIGRATIONS[0].statements:
            raw_sql(statement)
        raw_sql(
            "INSERT INTO autoflow_schema (version, autoflow_version, applied_at) "
            "VALUES (1, '0.1.0', 0)"
        )
        for n in range(3):  # two finished runs and one running, written by Autoflow 0.1
            at, phase = 3600.0 * 10 + n, "Running" if n == 2 else "Succeeded"
            ends = "NULL, NULL" if n == 2 else f"{at + 0.1}, 100"
            raw_sql(
                "INSERT INTO autoflow_runs (run_id, workflow, namespace, spec_hash, trigger, "
                "started_by, phase, started_at, finished_at, duration_ms) VALUES "
                f"('old{n}', 'wf', '', 'h', 'cli', '', '{phase}', {at}, {ends})"
            )
            raw_sql(
                "INSERT INTO autoflow_steps (run_id, step, phase, attempts, started_at, "
                f"finished_at, duration_ms, message, workflow, run_started_at) VALUES "
                f"('old{n}', 's', 'Succeeded', 1, {at}, {at + 0.01}, 10, '', 'wf', {at})"
            )
        if store_url.startswith("postgres"):
            with pytest.raises(store.SchemaMismatch, match=f"needs {migrations.LATEST}"):
                await store.open_store(store_url)
        migrated = await store.open_store(store_url, migrate=True)
        try:
            assert await migrated.schema_version() == migrations.LATEST
            (s,) = await migrated.stats(since=3600.0 * 10, until=3600.0 * 11)
            assert (s.runs.count, s.steps["s"].count, s.buckets) == (2, 3, ((36000.0, 3),))
            assert s.runs.p50_ms == pytest.approx(100.0, rel=0.045)
        finally:
            await migrated.aclose()
