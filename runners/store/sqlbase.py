"""What both SQL stores share: group commit of journal writes and the queries.

Group commit: ``record`` queues a run's rows and waits; a writer task takes everything
queued (from every run on the loop) and commits it in one transaction, so 100 runs in
flight pay for a few commits, not 100 (``writers`` of them at once: 1 for both stores
today; more would let one commit's WAL flush overlap the next on PostgreSQL).
A failed commit fails every waiter in it with ``StoreUnavailable``; the writes are
idempotent, so each waiter may simply retry.

A backend supplies three primitives: ``_fetch`` (one query → rows), ``_write`` (rows of
``sql.writes`` in one transaction) and ``_transaction`` (statements in one transaction →
rowcount of each), plus its ``floor`` spelling for time buckets and ``_histogram`` (its
rollup histograms read back).

Stats read the daily rollups for the whole days of the window, the hourly ones for the whole
hours at its edges and raw rows only for the partial hours at the edges of those, put them
all into one duration histogram and take p50/p95 from it (``records.percentile``: within
4.4 % of the nearest-rank value). A rollup row carries its whole histogram as one number the
database sums (``histograms.py``), so a window of 30 days reads about 30 rows per workflow
and step, whatever the durations.
"""

from __future__ import annotations

import abc
import asyncio
import datetime
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import autoflow
from autoflow.runners import store
from autoflow.runners.store import deliveries, records, sql


class SqlStore(store.Store):
    floor: str  # the dialect's floor-to-integer of {x}
    # Transactions in flight at once. One run's batches never overlap (its journal waits
    # for each), so several writers keep every run's order while overlapping commits.
    writers = 1

    def __init__(self, url: str, max_payload: int, subject_key: bytes | None = None) -> None:
        self.url = url
        self.max_payload = max_payload
        self.subject_key = subject_key
        self._queue: list[tuple[records.Rows, asyncio.Future[None]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    # -- primitives ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def _fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    async def _write(self, rows: records.Rows) -> None: ...

    @abc.abstractmethod
    async def _transaction(
        self, statements: list[tuple[str, list[Any]]], *, erasing: bool = False
    ) -> list[int]:
        """``erasing``: the deleted content must not linger in the database's files either
        (SQLite overwrites it; PostgreSQL leaves that to VACUUM)."""

    @abc.abstractmethod
    def _histogram(self, packed: Any) -> dict[int, int]:
        """A rollup's histogram as the dialect stores it (``histograms.py``), as {bucket:
        count}."""

    @property
    def _writes(self) -> tuple[tuple[str, str], ...]:
        return sql.writes(self.floor)

    # -- writes -------------------------------------------------------------------------------

    async def record(self, run_id: str, recs: Sequence[Mapping[str, Any]]) -> None:
        try:
            rows = records.to_rows(run_id, recs, self.max_payload, self.subject_key)
        except records.SubjectKeyMissing:
            raise store.StoreError(
                f"run {run_id!r} names a data subject, but the run store has no key to hash "
                f"it with: set {store.SUBJECT_KEY_ENV} (the subject is never stored in the "
                "clear)"
            ) from None
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
            rows.dedupe()
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

    # -- starting runs (store/deliveries.py) -----------------------------------------------

    async def start_run(
        self,
        *,
        run_id: str,
        workflow: str,
        namespace: str,
        spec: Mapping[str, Any] | None,
        inputs: Mapping[str, Any],
        trigger: str,
        started_by: str,
        dedupe_key: str | None = None,
        subject: str | None = None,
        spec_hash: str = "",
        phase: str = deliveries.PENDING,
        secret_inputs: Sequence[str] = (),
    ) -> tuple[str, bool]:
        if phase not in (deliveries.PENDING, "Running"):
            raise store.StoreError(f"a run starts Pending or Running, not {phase!r}")
        try:
            stored = records.seal_inputs(inputs, secret_inputs, self.subject_key)
        except records.SubjectKeyMissing as exc:
            raise store.StoreError(
                f"run {run_id!r} has secret inputs ({', '.join(exc.args[0])}) that a worker "
                f"reads from the run store, but the store has no key to seal them with: set "
                f"{store.SUBJECT_KEY_ENV} (the same on every launcher and worker; secret "
                "inputs are never stored in the clear)"
            ) from None
        hashed = None
        if subject is not None and str(subject).strip():
            if not self.subject_key:
                raise store.StoreError(
                    f"run {run_id!r} names a data subject, but the run store has no key to "
                    f"hash it with: set {store.SUBJECT_KEY_ENV}"
                )
            hashed = records.subject_hash(subject, self.subject_key)
        statements, delivery, run = deliveries.start_statements(
            run_id=run_id,
            workflow=workflow,
            namespace=namespace,
            spec_hash=spec_hash,
            spec=spec,
            inputs=stored,
            trigger=trigger,
            started_by=started_by,
            dedupe_key=dedupe_key,
            subject_hash=hashed,
            max_payload=self.max_payload,
            phase=phase,
        )
        counts = await self._transaction(statements)
        if counts[run] == 1:
            return run_id, False
        if delivery is not None and counts[delivery] == 0:
            found = await self._fetch(deliveries.FIRST_RUN, [dedupe_key])
            return (str(found[0][0]) if found else run_id), True
        return run_id, True  # this run id exists already (a starter's deterministic id)

    async def claim_run(self, run_id: str) -> list[dict[str, Any]] | None:
        (claimed,) = await self._transaction([(deliveries.CLAIM, [run_id])])
        if claimed:  # it was Pending: nothing of it ran yet, its row is the whole journal
            run = await self._fetch(sql.JOURNAL_RUN, [run_id])
            return self._opened(records.to_journal(run[0], [], [], [])) if run else None
        found = await self.journal(run_id)
        return found or None

    def _opened(self, journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The journal with the header's sealed secret inputs opened; when this store cannot
        open them they stay redacted and the header says why (``sealedInputs``)."""
        if journal and journal[0].get("t") == "run" and journal[0].get("inputs"):
            header = journal[0]
            try:
                header["inputs"] = records.unseal_inputs(header["inputs"], self.subject_key)
            except records.SealedInputsUnreadable as exc:
                header["inputs"] = records.shown_inputs(header["inputs"])
                header["sealedInputs"] = str(exc)
        return journal

    async def unended(self) -> list[str]:
        return [str(r[0]) for r in await self._fetch(deliveries.UNSTARTED, [])]

    # -- reads --------------------------------------------------------------------------------

    async def journal(self, run_id: str) -> list[dict[str, Any]]:
        run = await self._fetch(sql.JOURNAL_RUN, [run_id])
        if not run:
            return []
        attempts = await self._fetch(sql.JOURNAL_ATTEMPTS, [run_id])
        items = await self._fetch(sql.JOURNAL_ITEMS, [run_id])
        steps = await self._fetch(sql.JOURNAL_STEPS, [run_id])
        return self._opened(records.to_journal(run[0], attempts, items, steps))

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
            summary,
            records.shown_inputs(records.load(row[11])),
            records.load(row[12]),
            steps + running,
        )

    async def stats(
        self,
        *,
        since: float,
        until: float,
        namespace: str | None = None,
        workflow: str | None = None,
        bucket: float = 3600,
    ) -> list[store.WorkflowStats]:
        if bucket <= 0:
            raise store.StoreError("a stats bucket is a positive number of seconds")
        days, hours, edges = _segments(since, until)
        ns = namespace
        hist: dict[tuple[str, str, str], _Tally] = {}  # (namespace, workflow, step)
        whole: sql.Parts = [(g, r) for g, r in ((sql.DAY, days), (sql.HOUR, hours)) if r]
        if whole:
            for n, wf, step, count, ok, failed, packed in await self._fetch(
                *sql.rollup_figures(whole, ns, workflow)
            ):
                tally = hist.setdefault((n, wf, step), _Tally())
                tally.merge(int(count), ok, failed, self._histogram(packed))
        if edges:
            for n, wf, phase, ms in await self._fetch(*sql.stats_rows(edges, ns, workflow)):
                hist.setdefault((n, wf, ""), _Tally()).one(phase, ms)
            for n, wf, step, phase, ms in await self._fetch(
                *sql.stats_step_rows(edges, ns, workflow)
            ):
                hist.setdefault((n, wf, step), _Tally()).one(phase, ms)
        # Runs started per bucket: from the days when a bucket is whole days, from the hours
        # when it is whole hours, else from the rows.
        series: dict[tuple[str, str], dict[float, int]] = {}

        def started(rows: list[tuple[Any, ...]]) -> None:
            for n, wf, b, count in rows:
                runs, at = series.setdefault((n, wf), {}), float(b) * bucket
                runs[at] = runs.get(at, 0) + int(count)

        rolled: sql.Parts = []
        raw: list[tuple[float, float]] = [(since, until)] if since < until else []
        if bucket % sql.DAY == 0:
            rolled, raw = whole, edges
        elif bucket % sql.HOUR == 0:
            rolled = [(sql.HOUR, hours + [(d * 24, e * 24) for d, e in days])] if whole else []
            raw = edges
        if rolled:
            started(
                await self._fetch(
                    *sql.rollup_buckets(rolled, ns, workflow, int(bucket), self.floor)
                )
            )
        if raw:
            started(await self._fetch(*sql.stats_buckets(raw, ns, workflow, bucket, self.floor)))
        per_step: dict[tuple[str, str], dict[str, store.Figures]] = {}
        for (n, wf, step), tally in sorted(hist.items()):
            if step:
                per_step.setdefault((n, wf), {})[step] = tally.figures()
        return [
            store.WorkflowStats(
                wf,
                tally.figures(),
                per_step.get((n, wf), {}),
                tuple(sorted(series.get((n, wf), {}).items())),
                namespace=n,
            )
            for (n, wf, step), tally in sorted(hist.items())
            if not step and tally.count
        ]

    # -- deletions --------------------------------------------------------------------------

    def _audit(self, action: str, actor: str, what: str, always: bool) -> tuple[Any, ...]:
        return (time.time(), action, actor, what, autoflow.__version__, always)

    async def _delete(
        self, groups: list[tuple[str, list[Any], tuple[Any, ...]]], *, erasing: bool = False
    ) -> int:
        """Deletes each group's runs (``FROM autoflow_runs{chosen}``) in one transaction,
        rebuilds the rollups of the hours they touched; returns how many runs went."""
        statements: list[tuple[str, list[Any]]] = []
        deletes: list[int] = []
        for chosen, params, audit in groups:
            statements += sql.delete_runs(chosen, params, self.floor, audit)
            deletes.append(len(statements) - 1)
        statements += sql.rebuild(self.floor)
        counts = await self._transaction(statements, erasing=erasing)
        return sum(counts[i] for i in deletes)

    async def purge(self, where: store.RunFilter, *, actor: str = "") -> int:
        self._refuse_empty(where)
        chosen, params = sql.purge_where(where)
        audit = self._audit("purge", actor, _describe(where), True)
        return await self._delete([(chosen, params, audit)])

    async def erase(self, subject: str, *, actor: str = "") -> int:
        if not str(subject).strip():
            raise store.StoreError("erase needs the data subject's value")
        if not self.subject_key:
            raise store.StoreError(
                f"erasure needs the key subjects were hashed with: set {store.SUBJECT_KEY_ENV}"
            )
        hashed = records.subject_hash(subject, self.subject_key)
        audit = self._audit("erase", actor, "every run of one data subject", True)
        return await self._delete([(" WHERE subject = ?", [hashed], audit)], erasing=True)

    async def purge_expired(
        self,
        *,
        default: store.Retention | None = None,
        policies: Mapping[tuple[str, str], store.Retention] | None = None,
        now: float | None = None,
        actor: str = "",
    ) -> int:
        now = time.time() if now is None else now
        given = dict(policies or {})
        groups: list[tuple[str, list[Any], tuple[Any, ...]]] = []
        specs: dict[str, store.Retention | None] = {}
        seen: set[tuple[str, str]] = set()
        for namespace, wf, spec_hash in await self._fetch(sql.NEWEST_PER_WORKFLOW, []):
            if (namespace, wf) in seen:  # two newest runs started at the same moment
                continue
            seen.add((namespace, wf))
            policy = given.get((namespace, wf))
            if policy is None:
                if spec_hash not in specs:
                    spec = await self.get_spec(spec_hash)
                    specs[spec_hash] = store.Retention.from_spec((spec or {}).get("retention"))
                policy = specs[spec_hash] or default
            if policy is None or (policy.days is None and policy.max_runs is None):
                continue
            clauses = []
            params: list[Any] = [namespace, wf]
            if policy.days is not None:
                clauses.append("started_at < ?")
                params.append(now - policy.days * store.DAY)
            if policy.max_runs is not None:
                nth = await self._fetch(sql.NTH_NEWEST_FINISHED, [namespace, wf, policy.max_runs])
                if nth:
                    clauses.append("(started_at < ? OR (started_at = ? AND run_id <= ?))")
                    params += [nth[0][0], nth[0][0], nth[0][1]]
            if not clauses:
                continue
            chosen = (
                " WHERE namespace = ? AND workflow = ? "
                "AND phase NOT IN ('Running', 'Pending') AND (" + " OR ".join(clauses) + ")"
            )
            where = f"runs of {wf}" + (f" in {namespace}" if namespace else "")
            audit = self._audit("purge-expired", actor, f"{where} {policy.describe()}", False)
            groups.append((chosen, params, audit))
        return await self._delete(groups) if groups else 0

    async def activity(self, since: float) -> list[store.Activity]:
        found: dict[tuple[str, str], store.Activity] = {}
        for ns, wf, run_id, phase, at, runs, failed in await self._fetch(
            sql.ACTIVITY, [since, since]
        ):
            key = (str(ns), str(wf))
            old = found.get(key)
            if old is not None and old.last_run >= str(run_id):
                continue  # two newest runs started at the same moment: the greater id
            found[key] = store.Activity(
                key[0], key[1], int(runs), int(failed or 0), str(run_id), str(phase), float(at)
            )
        return [found[k] for k in sorted(found)]

    async def audit(self, *, limit: int = 100) -> list[store.AuditRecord]:
        rows = await self._fetch(sql.AUDIT, [limit])
        return [store.AuditRecord(float(a), b, c, d, int(n)) for a, b, c, d, n in rows]

    # -- versions ---------------------------------------------------------------------------

    async def get_spec(self, spec_hash: str) -> dict[str, Any] | None:
        rows = await self._fetch(sql.GET_SPEC, [spec_hash])
        return json.loads(rows[0][0]) if rows else None

    async def versions(self, workflow: str, *, namespace: str = "") -> list[store.Version]:
        rows = await self._fetch(sql.VERSIONS, [workflow, namespace, namespace])
        return [
            store.Version(h, int(n), float(first), float(last), bool(stored))
            for h, n, first, last, stored in rows
        ]


def _segments(
    since: float, until: float
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[float, float]]]:
    """A window [since, until) as whole days (day numbers), whole hours at their edges (hour
    numbers) and the partial hours at the window's edges (seconds): what stats read from
    the daily rollups, the hourly rollups and the rows."""
    lo, hi = math.ceil(since / sql.HOUR), math.floor(until / sql.HOUR)
    if lo >= hi:
        return [], [], [(since, until)] if since < until else []
    edges = [(a, b) for a, b in ((since, lo * sql.HOUR), (hi * sql.HOUR, until)) if a < b]
    dlo, dhi = math.ceil(lo / 24), math.floor(hi / 24)
    if dlo >= dhi:
        return [], [(lo, hi)], edges
    hours = [(a, b) for a, b in ((lo, dlo * 24), (dhi * 24, hi)) if a < b]
    return [(dlo, dhi)], hours, edges


class _Tally:
    """Finished runs (or step executions) of one workflow/step: counts and a histogram."""

    __slots__ = ("count", "failed", "hist", "ok")

    def __init__(self) -> None:
        self.count = self.ok = self.failed = 0
        self.hist: dict[int, int] = {}

    def merge(self, count: int, ok: Any, failed: Any, histogram: dict[int, int]) -> None:
        self.count += count
        self.ok += int(ok or 0)
        self.failed += int(failed or 0)
        for b, n in histogram.items():
            self.hist[b] = self.hist.get(b, 0) + n

    def one(self, phase: str, ms: float | None) -> None:
        self.merge(1, phase == "Succeeded", phase == "Failed", {records.bucket(ms): 1})

    def figures(self) -> store.Figures:
        return store.Figures(
            self.count,
            self.ok,
            self.failed,
            records.percentile(self.hist, 0.5),
            records.percentile(self.hist, 0.95),
        )


def _describe(where: store.RunFilter) -> str:
    """A purge's filter in words for the audit (workflow names and times, no payloads)."""
    parts = []
    for name in ("workflow", "namespace", "phase", "trigger", "run_id"):
        value = getattr(where, name)
        if value:
            parts.append(f"{name.replace('_', ' ')} {value}")
    for label, moment in (("started from", where.since), ("started before", where.until)):
        if moment is not None:
            when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
            parts.append(f"{label} {when.isoformat(timespec='seconds')}")
    if where.error:
        parts.append("error text")
    return "finished runs: " + ", ".join(parts) if not where.run_id else ", ".join(parts)
