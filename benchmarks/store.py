"""Run store benchmark: what journaling a step costs, and history queries at 100,000 runs.

    .venv/bin/python -P benchmarks/store.py [--postgres URL] [--runs 100000] [--repeat 3]

Part 1, cost per journaled step: chains of ``--steps`` ``core.noop`` steps run with the
in-memory journal (the baseline: the engine's own cost, measured in the same run), the file
journal, the SQLite store and the PostgreSQL store, one run at a time and 100 runs in flight.
The figure is (time − baseline time) / steps journaled, in ms; each step is two records
(its attempt's start and its result), so per record it is half that.

Part 2, query latency: ``--runs`` finished runs (2 steps each, 10 workflows, 30 days, 5 %
failed) are written to fresh SQLite and PostgreSQL stores; then the p50/p95 of ``runs
list`` (first page, by workflow, failed only, by error text, the 10th page) and ``runs
stats`` (24 h, 7 d for one workflow, all 30 d), against a ``SELECT 1`` through the same
store as the baseline. ``runs stats`` reads the daily rollups for the whole days of its
window, the hourly ones for whole hours at the edges and raw rows only for the partial hours
there; a rollup row per hour or day, namespace, workflow and step carries its whole duration
histogram (schema version 6), so 30 days of the 10 workflows are 900 daily rows. The fill
time per run includes keeping both grains.

Without ``--postgres`` a PostgreSQL server is started from the installed binaries as the
services tests do (``tests/services/servers.py``). Targets (issue 11): PostgreSQL ≤ 0.2 ms
and SQLite ≤ 0.05 ms amortised per step record under concurrency, list/stats p50 ≤ 20 ms
at 100,000 runs. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from autoflow.crds import workflow
from autoflow.runners import engine, store
from autoflow.runners.definitions import plan
from autoflow.runners.engine import journal
from autoflow.runners.store import journal as store_journal
from autoflow.runners.store import sqlbase

IN_FLIGHT = 100
DAY = 86400.0


def _plan(steps: int) -> plan.Plan:
    items = [{"id": f"s{i}", "uses": "core.noop"} for i in range(steps)]
    wf = workflow.Workflow.model_validate(
        {"kind": "Workflow", "metadata": {"name": "bench"}, "spec": {"steps": items}}
    )
    return plan.compile_workflow(wf)


# -- part 1: journaling -----------------------------------------------------------------------

JournalFactory = Callable[[int], journal.Journal]


async def _runs(compiled: plan.Plan, make: JournalFactory, count: int, tag: str) -> float:
    async def one(n: int) -> None:
        jr = make(n)
        run = engine.Run(compiled, run_id=f"{tag}-{n}", inputs={}, journal=jr)
        result = await run.execute()
        assert result.succeeded, result.error

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return time.perf_counter() - start


async def journaling(steps: int, repeat: int, pg_url: str, workdir: str) -> None:
    compiled = _plan(steps)
    sqlite_store = await store.open_store(f"sqlite:///{workdir}/journal.db")
    pg_store = await store.open_store(pg_url, migrate=True)
    rounds = 0

    def files(n: int) -> journal.Journal:
        return journal.FileJournal(os.path.join(workdir, f"j{rounds}-{n}.jsonl"))

    kinds: dict[str, JournalFactory] = {
        "memory (baseline)": lambda n: journal.MemoryJournal(),
        "file": files,
        "sqlite store": lambda n: store_journal.StoreJournal(sqlite_store),
        "postgres store": lambda n: store_journal.StoreJournal(pg_store),
    }
    print(f"\ncost per journaled step ({steps}-step chains of core.noop, median of {repeat})")
    print(f"{'journal':<20}{'1 run ms/step':>16}{'100 runs ms/step':>20}{'per record':>14}")
    base: dict[int, float] = {}
    for name, make in kinds.items():
        figures = []
        for count in (1, IN_FLIGHT):
            times = []
            for _ in range(repeat):
                rounds += 1
                times.append(await _runs(compiled, make, count, f"r{rounds}"))
            median = statistics.median(times)
            if name.startswith("memory"):
                base[count] = median
                figures.append(median / (count * steps) * 1000)
            else:
                figures.append((median - base[count]) / (count * steps) * 1000)
        label = "engine only" if name.startswith("memory") else f"{figures[1] / 2:.4f}"
        print(f"{name:<20}{figures[0]:>16.4f}{figures[1]:>20.4f}{label:>14}")
    await sqlite_store.aclose()
    await pg_store.aclose()


# -- part 2: queries --------------------------------------------------------------------------


def _history(runs: int, now: float) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    rnd = random.Random(11)
    for n in range(runs):
        run_id = f"run-{n:07}"
        at = now - rnd.random() * 30 * DAY
        wf = f"workflow-{n % 10}"
        failed = rnd.random() < 0.05
        took = rnd.uniform(0.05, 2.0)
        code = rnd.choice([500, 502, 503])
        error = f"step 'post' failed: HTTP {code} from api" if failed else None
        recs: list[dict[str, Any]] = [
            {
                "t": "run",
                "runId": run_id,
                "workflow": wf,
                "specHash": "h",
                "inputs": {"n": n},
                "startedAt": at,
                "trigger": rnd.choice(["webhook", "schedule", "manual"]),
            },
        ]
        for i, step in enumerate(("fetch", "post")):
            phase = "Failed" if failed and step == "post" else "Succeeded"
            recs.append({"t": "start", "step": step, "attempt": 1, "at": at})
            recs.append(
                {
                    "t": "step",
                    "step": step,
                    "phase": phase,
                    "output": {"status": 200},
                    "error": error if phase == "Failed" else None,
                    "attempts": 1,
                    "startedAt": at + i * took / 2,
                    "finishedAt": at + (i + 1) * took / 2,
                }
            )
        recs.append(
            {
                "t": "end",
                "phase": "Failed" if failed else "Succeeded",
                "outputs": None,
                "error": error,
                "at": at + took,
            }
        )
        yield run_id, recs


async def _fill(st: store.Store, runs: int, now: float) -> float:
    start = time.perf_counter()
    batch: list[Awaitable[None]] = []
    for run_id, recs in _history(runs, now):
        batch.append(st.record(run_id, recs))
        if len(batch) == 1000:  # group commit turns each thousand into one transaction
            await asyncio.gather(*batch)
            batch = []
    await asyncio.gather(*batch)
    return time.perf_counter() - start


async def _latency(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float]:
    await call()  # warm: prepared statements, caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, round(len(times) * 0.95) - 1)]


async def queries(url: str, name: str, runs: int, repeat: int) -> None:
    st = await store.open_store(url, migrate=True)
    assert isinstance(st, sqlbase.SqlStore)
    now = time.time()
    filled = await _fill(st, runs, now)
    print(
        f"\n{name}: {runs:,} runs written in {filled:.1f} s "
        f"({filled / runs * 1000:.3f} ms per run of 6 records, batches of 1000)"
    )
    tenth: list[str | None] = [None]

    async def tenth_page() -> None:
        cursor = None
        for _ in range(10):
            cursor = (await st.list_runs(limit=50, cursor=cursor)).next_cursor
        tenth[0] = cursor

    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("SELECT 1 (baseline)", lambda: st._fetch("SELECT 1", [])),
        ("list: first page", lambda: st.list_runs(limit=50)),
        ("list: one workflow", lambda: st.list_runs(store.RunFilter(workflow="workflow-3"))),
        ("list: failed", lambda: st.list_runs(store.RunFilter(phase="Failed"))),
        ("list: error text", lambda: st.list_runs(store.RunFilter(error="http 502"))),
        ("list: pages 1-10", tenth_page),
        ("stats: 24 h", lambda: st.stats(since=now - DAY, until=now)),
        (
            "stats: 7 d, 1 workflow",
            lambda: st.stats(since=now - 7 * DAY, until=now, workflow="workflow-3"),
        ),
        ("stats: 30 d, all", lambda: st.stats(since=now - 31 * DAY, until=now, bucket=DAY)),
    ]
    print(f"{'query':<26}{'p50 ms':>10}{'p95 ms':>10}{'× baseline':>12}")
    base = None
    for label, call in cases:
        p50, p95 = await _latency(call, repeat)
        base = base or p50
        print(f"{label:<26}{p50:>10.2f}{p95:>10.2f}{p50 / base:>12.1f}")
    await st.aclose()


@contextlib.contextmanager
def _postgres(url: str | None) -> Iterator[Callable[[str], str]]:
    """Makes a database per part (given a URL, both parts share that database)."""
    if url:
        yield lambda name: url
        return
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "services"))
    import servers  # the services tier's launcher: same binaries, loopback port

    cluster = servers.PostgresCluster.create()
    try:
        with cluster.start() as server:
            yield lambda name: server.create_database(name).dsn
    finally:
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="default: start one here")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-queries", action="store_true")
    args = parser.parse_args()
    with _postgres(args.postgres) as new_db, tempfile.TemporaryDirectory() as workdir:
        asyncio.run(journaling(args.steps, args.repeat, new_db("bench_journal"), workdir))
        if not args.skip_queries:
            asyncio.run(queries(f"sqlite:///{workdir}/history.db", "SQLite", args.runs, 20))
            asyncio.run(queries(new_db("bench_history"), "PostgreSQL", args.runs, 20))


if __name__ == "__main__":
    main()
