"""The PostgreSQL run store: psycopg 3, an async connection pool, in a cluster.

Opening checks the database first over one plain connection, so an unreachable server or
a schema at the wrong version is one clear error naming the URL (never its password), then
opens the pool. Migrations run only when asked (``autoflow store migrate``), under an
advisory lock so two replicas migrating at once apply each version once.

Writes come from ``sqlbase``'s group commit as whole batches: one transaction, each
statement sent with ``executemany`` (psycopg pipelines it: one round trip per statement
kind, not per row), so 100 runs in flight share a commit and its WAL flush. The rollups of
a batch are summed per key in one statement per kind and grain (``sql.pg_batch_rollups``:
the rows as arrays), so a hot hour's counts and histogram are updated once per commit, not
once per step.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg_pool

import autoflow
from autoflow.runners import store
from autoflow.runners.store import histograms, migrations, records, sql, sqlbase

POOL_SIZE = 10
POOL_WAIT = 5.0  # seconds a query waits for a connection before it fails (and is retried)
MIGRATE_LOCK = 0x6175746F666C6F77  # "autoflow": the advisory lock taken while migrating


@functools.lru_cache(maxsize=256)
def _pg(query: str) -> str:
    return query.replace("?", "%s")


class PostgresStore(sqlbase.SqlStore):
    floor = "CAST(floor({x}) AS BIGINT)"
    # One writer, as SQLite: four measured slower on a 2-core machine (smaller batches, more
    # commits); worth measuring again on a real database server.
    writers = 1

    def __init__(
        self,
        url: str,
        max_payload: int,
        pool: psycopg_pool.AsyncConnectionPool,
        subject_key: bytes | None = None,
    ) -> None:
        super().__init__(url, max_payload, subject_key)
        self._pool = pool

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        max_payload: int,
        migrate: bool,
        connect_timeout: float,
        subject_key: bytes | None = None,
    ) -> PostgresStore:
        where = store.display_url(url)
        try:
            conn = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=max(1, round(connect_timeout))
            )
        except psycopg.Error as exc:
            raise store.StoreUnavailable(
                f"cannot reach the run store at {where}: {_reason(exc, url)}"
            ) from None
        try:
            async with conn:
                await (_migrate(conn, where) if migrate else _check(conn, where))
        except psycopg.Error as exc:
            raise store.StoreUnavailable(
                f"cannot use the run store at {where}: {_reason(exc, url)}"
            ) from None
        pool = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            timeout=POOL_WAIT,
            kwargs={"autocommit": True},
            name="autoflow-store",
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout)
        except psycopg_pool.PoolTimeout:
            await pool.close()
            raise store.StoreUnavailable(f"cannot reach the run store at {where}") from None
        return cls(url, max_payload, pool, subject_key)

    # -- primitives ---------------------------------------------------------------------------

    def _histogram(self, packed: Any) -> dict[int, int]:
        return histograms.from_decimal(packed)

    async def _fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(_pg(query), params)
                return await cur.fetchall()
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._unavailable(exc) from None

    async def _write(self, rows: records.Rows) -> None:
        batched = sql.pg_batch_rollups(self.floor)
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            done: set[str] = set()
            for name, statement in self._writes:
                params = getattr(rows, name)
                if not params:
                    continue
                if name in batched:  # the rollups: summed per key, one statement per grain
                    if name not in done:
                        done.add(name)
                        arrays = _columns(params, sql.PG_BATCH_COLUMNS[name])
                        for each in batched[name]:
                            await cur.execute(_pg(each), arrays)
                    continue
                await cur.executemany(_pg(statement), params)

    async def _transaction(
        self, statements: list[tuple[str, list[Any]]], *, erasing: bool = False
    ) -> list[int]:
        count: list[int] = []
        try:
            async with self._pool.connection() as conn, conn.transaction():
                for statement, params in statements:
                    cur = await conn.execute(_pg(statement), params)
                    count.append(cur.rowcount)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._unavailable(exc) from None
        return count

    async def schema_version(self) -> int:
        rows = await self._fetch(sql.SCHEMA_VERSION, [])
        return int(rows[0][0]) if rows else 0

    async def aclose(self) -> None:
        await self._drained()
        await self._pool.close()


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (the first ``width`` columns), for ``unnest``."""
    return [[row[i] for row in rows] for i in range(width)]


def _reason(exc: BaseException, url: str) -> str:
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    return store.hide_secrets(text, url)


async def _version(conn: psycopg.AsyncConnection[Any]) -> tuple[int, str]:
    cur = await conn.execute("SELECT to_regclass('autoflow_schema') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0, ""
    cur = await conn.execute(sql.SCHEMA_VERSION)
    found = await cur.fetchone()
    return (int(found[0]), str(found[1])) if found else (0, "")


async def _check(conn: psycopg.AsyncConnection[Any], where: str) -> None:
    current, by = await _version(conn)
    if current > migrations.LATEST:
        raise store.SchemaMismatch(migrations.too_new(where, current, by, autoflow.__version__))
    if current < migrations.LATEST:
        raise store.SchemaMismatch(migrations.too_old(where, current))


async def _migrate(conn: psycopg.AsyncConnection[Any], where: str) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATE_LOCK])
        await conn.execute(migrations.SCHEMA_TABLE)
        current, by = await _version(conn)
        if current > migrations.LATEST:
            raise store.SchemaMismatch(migrations.too_new(where, current, by, autoflow.__version__))
        steps = migrations.pending(current)
        rebuild_at = migrations.rebuild_at(steps)
        for step in steps:
            for statement in step.statements:
                await conn.execute(statement)
            if step.version == rebuild_at:
                for statement, params in sql.rebuild_all(PostgresStore.floor):
                    await conn.execute(_pg(statement), params)
            await conn.execute(
                _pg(sql.RECORD_VERSION), [step.version, autoflow.__version__, time.time()]
            )
