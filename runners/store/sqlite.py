"""The SQLite run store: stdlib ``sqlite3``, WAL, the embedded default.

sqlite3 calls block, so they run off the event loop: writes on one thread with its own
connection (SQLite has one writer anyway, and group commit in ``sqlbase`` hands it whole
batches), reads on another with a second connection (WAL lets readers go on while a write
commits). ``synchronous=NORMAL`` in WAL mode: a commit survives the process being killed;
only a power cut can lose the last commits (``?synchronous=full`` for an fsync per commit).

URL options: ``sqlite:///PATH?timeout=SECONDS`` (how long a write waits for another process
holding the database, default 5) and ``synchronous=normal|full``.
The schema is migrated on open (nobody else would), and a database migrated by a newer
Autoflow is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import autoflow
from autoflow.runners import store
from autoflow.runners.store import histograms, migrations, records, sql, sqlbase

T = TypeVar("T")


class SqliteStore(sqlbase.SqlStore):
    floor = "CAST({x} AS INTEGER)"  # times are positive: truncation is floor

    def __init__(self, url: str, max_payload: int, subject_key: bytes | None = None) -> None:
        super().__init__(url, max_payload, subject_key)
        self.path = store.sqlite_path(url)
        options = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        try:
            self._timeout = float(options.get("timeout", 5))
        except ValueError:
            raise store.StoreError(f"timeout in {self.display_url} is not a number") from None
        self._synchronous = options.get("synchronous", "normal").upper()
        if self._synchronous not in ("NORMAL", "FULL"):
            raise store.StoreError(f"synchronous in {self.display_url} is normal or full")
        self._writer_thread = concurrent.futures.ThreadPoolExecutor(1, "autoflow-store-w")
        self._reader_thread = concurrent.futures.ThreadPoolExecutor(1, "autoflow-store-r")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, *, max_payload: int, subject_key: bytes | None = None
    ) -> SqliteStore:
        self = cls(url, max_payload, subject_key)
        try:
            await self._on(self._writer_thread, self._open_writer)
            await self._on(self._reader_thread, self._open_reader)
        except (sqlite3.Error, OSError) as exc:
            await self.aclose()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise store.StoreUnavailable(
                f"cannot open the run store at {self.display_url}: {reason}"
            ) from None
        except BaseException:
            await self.aclose()
            raise
        return self

    async def _on(self, thread: concurrent.futures.Executor, func: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(thread, func)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are begun and ended here, explicitly.
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        histograms.register(conn)  # the rollups' functions (PostgreSQL has them in SQL)
        return conn

    def _open_writer(self) -> None:
        if os.path.dirname(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._wconn = conn = self._connect()
        conn.execute("PRAGMA journal_mode = WAL")
        # Some builds zero every freed byte by default; only an erasure needs that (below).
        conn.execute("PRAGMA secure_delete = OFF")
        self._migrate(conn)

    def _open_reader(self) -> None:
        self._rconn = self._connect()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(migrations.SCHEMA_TABLE)
        conn.execute("BEGIN IMMEDIATE")  # another process opening now waits, then sees ours
        try:
            found = conn.execute(sql.SCHEMA_VERSION).fetchone()
            current = int(found[0]) if found else 0
            if current > migrations.LATEST:
                raise store.SchemaMismatch(
                    migrations.too_new(self.display_url, current, found[1], autoflow.__version__)
                )
            steps = migrations.pending(current)
            rebuild_at = migrations.rebuild_at(steps)
            for step in steps:
                for statement in step.statements:
                    conn.execute(migrations.sqlite_dialect(statement))
                if step.version == rebuild_at:
                    for statement, params in sql.rebuild_all(self.floor):
                        conn.execute(statement, params)
                conn.execute(sql.RECORD_VERSION, (step.version, autoflow.__version__, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- primitives ---------------------------------------------------------------------------

    def _histogram(self, packed: Any) -> dict[int, int]:
        return histograms.from_blob(packed)

    async def _fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            assert self._rconn is not None
            return self._rconn.execute(query, params).fetchall()

        try:
            return await self._on(self._reader_thread, run)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None

    async def _write(self, rows: records.Rows) -> None:
        def run() -> None:
            conn = self._wconn
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            try:
                for name, statement in self._writes:
                    params = getattr(rows, name)
                    if params:
                        conn.executemany(statement, params)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        await self._on(self._writer_thread, run)

    async def _transaction(
        self, statements: list[tuple[str, list[Any]]], *, erasing: bool = False
    ) -> list[int]:
        def run() -> list[int]:
            conn = self._wconn
            assert conn is not None
            if erasing:  # zero the freed space, so the erased rows are not in the file
                conn.execute("PRAGMA secure_delete = ON")
            try:
                count = transaction(conn)
            finally:
                if erasing:
                    conn.execute("PRAGMA secure_delete = OFF")
            if erasing:  # and copy the zeroed pages over the old ones now (best effort)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return count

        def transaction(conn: sqlite3.Connection) -> list[int]:
            count: list[int] = []
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement, params in statements:
                    count.append(conn.execute(statement, params).rowcount)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return count

        try:
            return await self._on(self._writer_thread, run)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None

    async def schema_version(self) -> int:
        rows = await self._fetch(sql.SCHEMA_VERSION, [])
        return int(rows[0][0]) if rows else 0

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._drained()

        def close(conn: sqlite3.Connection | None) -> Callable[[], None]:
            return lambda: conn.close() if conn is not None else None

        await self._on(self._writer_thread, close(self._wconn))
        await self._on(self._reader_thread, close(self._rconn))
        self._wconn = self._rconn = None
        self._writer_thread.shutdown(wait=False)
        self._reader_thread.shutdown(wait=False)
