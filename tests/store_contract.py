"""The run store's contract: what every store (SQLite, PostgreSQL) must do, written once.

A backend's test module subclasses ``StoreContract`` and provides two fixtures:
``store_url`` (a fresh, empty store for the test) and ``raw_sql`` (runs one SQL statement
on it directly, for faults a test sets up by hand). Grouped by concern: the history a run
leaves, queries (filters, paging, stats), purge, the store as a journal (crash and resume
in-process), many runs at once, and the schema version check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from autoflow.runners import engine, store
from autoflow.runners.engine import journal as journal_mod
from autoflow.runners.store import journal as store_journal
from autoflow.runners.store import migrations

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
        opened = await store.open_store(store_url, migrate=True, max_payload=4096)
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
        assert orders.runs.p50_ms == pytest.approx(50.0)
        assert orders.runs.p95_ms == pytest.approx(100.0)
        assert orders.steps["s"].count == 10
        assert orders.steps["s"].p50_ms == pytest.approx(5.0)
        assert orders.buckets == ((36000.0, 10),)
        invoices = by_name["invoices"]
        assert invoices.runs.count == 1
        assert invoices.runs.p95_ms == pytest.approx(7.0)
        assert invoices.buckets == ((39600.0, 1), (43200.0, 1))

        (only,) = await st.stats(since=0, until=1e12, workflow="orders")
        assert only.runs.count == 11

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
        self, st: store.Store, new_probe: Any
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
