"""What both SQL stores share: group commit of journal writes and the queries.

Group commit: ``record`` queues a run's rows and waits; a writer task takes everything
queued (from every run on the loop) and commits it in one transaction, so 100 runs in
flight pay for a few commits, not 100 (``writers`` of them at once: 1 for both stores
today; more would let one commit's WAL flush overlap the next on PostgreSQL).
A failed commit fails every waiter in it with ``StoreUnavailable``; the writes are
idempotent, so each waiter may simply retry.

A backend supplies three primitives: ``_fetch`` (one query → rows), ``_write`` (rows of
``sql.WRITES`` in one transaction) and ``_transaction`` (statements in one transaction →
rowcount of the last), plus its ``floor`` spelling for time buckets.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from autoflow.runners import store
from autoflow.runners.store import records, sql


class SqlStore(store.Store):
    floor: str  # the dialect's floor-to-integer of {x}
    # Transactions in flight at once. One run's batches never overlap (its journal waits
    # for each), so several writers keep every run's order while overlapping commits.
    writers = 1

    def __init__(self, url: str, max_payload: int) -> None:
        self.url = url
        self.max_payload = max_payload
        self._queue: list[tuple[records.Rows, asyncio.Future[None]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    # -- primitives ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def _fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    async def _write(self, rows: records.Rows) -> None: ...

    @abc.abstractmethod
    async def _transaction(self, statements: list[tuple[str, list[Any]]]) -> int: ...

    # -- writes -------------------------------------------------------------------------------

    async def record(self, run_id: str, recs: Sequence[Mapping[str, Any]]) -> None:
        rows = records.to_rows(run_id, recs, self.max_payload)
        done = asyncio.get_running_loop().create_future()
        self._queue.append((rows, done))
        # A finished writer leaves the set only in a later loop turn: count the live ones
        # (a live writer re-checks the queue before it ends, so it takes this batch).
        if sum(not w.done() for w in self._writers) < self.writers:
            task = asyncio.create_task(self._drain())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        await done

    async def _drained(self) -> None:
        """Waits for the writes in flight (before closing)."""
        if self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            rows = records.Rows()
            for part, _ in batch:
                rows.extend(part)
            try:
                await self._write(rows)
            except Exception as exc:
                failure = self._unavailable(exc)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(failure)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def _unavailable(self, exc: BaseException) -> store.StoreError:
        if isinstance(exc, store.StoreError):
            return exc
        reason = store.hide_secrets(str(exc).strip().splitlines()[0] if str(exc) else "", self.url)
        return store.StoreUnavailable(
            f"cannot write to the run store at {self.display_url}: {type(exc).__name__}: {reason}"
        )

    # -- reads --------------------------------------------------------------------------------

    async def journal(self, run_id: str) -> list[dict[str, Any]]:
        run = await self._fetch(sql.JOURNAL_RUN, [run_id])
        if not run:
            return []
        attempts = await self._fetch(sql.JOURNAL_ATTEMPTS, [run_id])
        items = await self._fetch(sql.JOURNAL_ITEMS, [run_id])
        steps = await self._fetch(sql.JOURNAL_STEPS, [run_id])
        return records.to_journal(run[0], attempts, items, steps)

    async def unfinished(
        self, workflow: str, *, namespace: str = "", trigger: str = ""
    ) -> str | None:
        rows = await self._fetch(sql.UNFINISHED, [workflow, namespace, trigger, trigger])
        return str(rows[0][0]) if rows else None

    async def list_runs(
        self,
        where: store.RunFilter | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> store.Page:
        after = store.decode_cursor(cursor) if cursor else None
        query, params = sql.list_runs(where or store.RunFilter(), limit, after)
        runs = tuple(store.RunSummary(*row) for row in await self._fetch(query, params))
        more = len(runs) == limit and limit > 0
        last = runs[-1] if runs else None
        next_cursor = store.encode_cursor(last.started_at, last.run_id) if more and last else None
        return store.Page(runs, next_cursor)

    async def get_run(self, run_id: str) -> store.RunDetail | None:
        found = await self._fetch(sql.GET_RUN, [run_id])
        if not found:
            return None
        row = found[0]
        tries: dict[str, list[store.Attempt]] = {}
        for a in await self._fetch(sql.GET_ATTEMPTS, [run_id]):
            tries.setdefault(a[0], []).append(store.Attempt(*a))
        steps = tuple(
            store.StepRecord(
                step=s[0],
                phase=s[1],
                output=records.load(s[2]),
                error=s[3],
                attempts=s[4],
                started_at=s[5],
                finished_at=s[6],
                duration_ms=s[7],
                message=s[8],
                tries=tuple(tries.pop(s[0], ())),
            )
            for s in await self._fetch(sql.GET_STEPS, [run_id])
        )
        # Steps in flight (attempts, no result yet) are shown too.
        running = tuple(
            store.StepRecord(
                sid,
                store.RUNNING,
                None,
                None,
                len(t),
                t[0].started_at,
                None,
                None,
                "",
                tries=tuple(t),
            )
            for sid, t in tries.items()
        )
        summary = store.RunSummary(*row[:11])
        return store.RunDetail(
            summary, records.load(row[11]), records.load(row[12]), steps + running
        )

    async def stats(
        self,
        *,
        since: float,
        until: float,
        workflow: str | None = None,
        bucket: float = 3600,
    ) -> list[store.WorkflowStats]:
        if bucket <= 0:
            raise store.StoreError("a stats bucket is a positive number of seconds")
        runs, steps = await self._figures(since, until, workflow)
        buckets = await self._fetch(*sql.stats_buckets(since, until, workflow, bucket, self.floor))
        per_step: dict[str, dict[str, store.Figures]] = {}
        for wf, step, *figures in steps:
            per_step.setdefault(wf, {})[step] = _figures(figures)
        series: dict[str, list[tuple[float, int]]] = {}
        for wf, b, count in buckets:
            series.setdefault(wf, []).append((float(b) * bucket, int(count)))
        return [
            store.WorkflowStats(
                wf, _figures(figures), per_step.get(wf, {}), tuple(series.get(wf, ()))
            )
            for wf, *figures in runs
        ]

    async def _figures(
        self, since: float, until: float, workflow: str | None
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Rows of (workflow, count, succeeded, failed, p50, p95) and the same with the step
        after the workflow. Here from the raw durations; a store with a percentile
        aggregate overrides it."""
        runs = _group(await self._fetch(*sql.stats_rows(since, until, workflow)), 1)
        steps = _group(await self._fetch(*sql.stats_step_rows(since, until, workflow)), 2)
        return runs, steps

    async def purge(self, where: store.RunFilter) -> int:
        self._refuse_empty(where)
        return await self._transaction(sql.purge(where))


def _figures(row: Sequence[Any]) -> store.Figures:
    count, ok, failed, p50, p95 = row
    return store.Figures(
        int(count),
        int(ok or 0),
        int(failed or 0),
        None if p50 is None else round(float(p50), 3),
        None if p95 is None else round(float(p95), 3),
    )


def _group(rows: Sequence[Sequence[Any]], keys: int) -> list[tuple[Any, ...]]:
    """(key..., phase, duration) rows → (key..., count, succeeded, failed, p50, p95) sorted by
    key; percentiles by nearest rank: the ceil(p·n)-th smallest duration."""
    groups: dict[tuple[Any, ...], tuple[list[float], list[int]]] = {}
    for row in rows:
        durations, counts = groups.setdefault(tuple(row[:keys]), ([], [0, 0]))
        durations.append(row[keys + 1])
        if row[keys] == "Succeeded":
            counts[0] += 1
        elif row[keys] == "Failed":
            counts[1] += 1
    out = []
    for key in sorted(groups):
        durations, (ok, failed) = groups[key]
        known = sorted(d for d in durations if d is not None)
        n = len(known)
        p50 = known[(n * 50 + 99) // 100 - 1] if n else None
        p95 = known[(n * 95 + 99) // 100 - 1] if n else None
        out.append((*key, len(durations), ok, failed, p50, p95))
    return out
