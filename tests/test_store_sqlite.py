"""The run store contract against SQLite, plus what only the embedded store does.

SQLite is migrated on open (nobody else would), its file and directory are created, and a
write blocked by another process holding the database is retried until it goes through.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from store_contract import StoreContract

from autoflow.runners import store
from autoflow.runners.store import journal as store_journal


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/history/runs.db"


@pytest.fixture
def raw_sql(store_url: str) -> Callable[[str], list[tuple[Any, ...]]]:
    def run(statement: str) -> list[tuple[Any, ...]]:
        path = store.sqlite_path(store_url)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with sqlite3.connect(path) as conn:
            return conn.execute(statement).fetchall()

    return run


@pytest.fixture
def tables(raw_sql: Callable[[str], list[tuple[Any, ...]]]) -> Callable[[], list[str]]:
    return lambda: [r[0] for r in raw_sql("SELECT name FROM sqlite_master WHERE type = 'table'")]


class TestSqliteStore(StoreContract):
    pass


def test_urls_name_relative_and_absolute_paths() -> None:
    assert store.sqlite_path("sqlite:///runs.db") == "runs.db"
    assert store.sqlite_path("sqlite:////var/lib/autoflow/runs.db") == "/var/lib/autoflow/runs.db"
    with pytest.raises(store.StoreError, match="sqlite:///PATH"):
        store.sqlite_path("sqlite://runs.db")


async def test_an_unknown_scheme_is_refused_without_the_password() -> None:
    with pytest.raises(store.StoreError) as caught:
        await store.open_store("mysql://app:s3cret@db/runs")
    assert "s3cret" not in str(caught.value)
    assert "mysql://app:***@db/runs" in str(caught.value)


async def test_a_store_that_cannot_be_opened_names_its_url(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(store.StoreUnavailable, match=r"cannot open the run store at sqlite:///"):
        await store.open_store(f"sqlite:///{tmp_path}/file/runs.db")


async def test_an_erased_subject_is_not_left_in_the_database_files(store_url: str) -> None:
    from store_contract import finished

    st = await store.open_store(store_url, subject_key=b"k")
    try:
        for n in range(20):
            subject = "ann.erased@mail.test" if n % 2 else f"other-{n}@mail.test"
            recs = finished(f"r{n}", at=1000.0 + n, subject=subject, inputs={"email": subject})
            await st.record(f"r{n}", recs)
        assert await st.erase("ann.erased@mail.test") == 10
    finally:
        await st.aclose()
    path = Path(store.sqlite_path(store_url))
    files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
    assert files
    for file in files:  # the database, its WAL: no free page still holds the deleted rows
        assert b"ann.erased" not in file.read_bytes(), file.name
    assert b"other-2@mail.test" in path.read_bytes()  # the scan would see it if it were there


async def test_a_write_blocked_by_another_process_waits_and_the_run_does_not_go_past_it(
    tmp_path: Path, probe: Any
) -> None:
    url = f"sqlite:///{tmp_path}/runs.db?timeout=0.05"
    st = await store.open_store(url)
    spec = {"steps": [{"id": f"s{i}", "uses": "t.call", "with": {"value": i}} for i in range(3)]}
    jr = store_journal.StoreJournal(st)
    blocker = sqlite3.connect(store.sqlite_path(url), isolation_level=None)

    def lock_after_s0(result: Any) -> None:
        if result.id == "s0":
            blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database

    class Observer:
        def step_started(self, step: str, attempt: int) -> None: ...
        def step_retrying(self, *args: Any) -> None: ...
        def step_finished(self, result: Any) -> None:
            lock_after_s0(result)

    run = asyncio.create_task(probe.run(spec, journal=jr, observer=Observer(), run_id="held"))
    await asyncio.sleep(0.5)
    # s1 ran, but its result could not be recorded: s2 must not have started.
    assert probe.steps_called() == ["s0", "s1"]
    assert not run.done()
    blocker.execute("ROLLBACK")
    result = await asyncio.wait_for(run, 10)
    assert result.succeeded
    assert probe.steps_called() == ["s0", "s1", "s2"]
    detail = await st.get_run("held")
    assert detail is not None and detail.summary.phase == "Succeeded"
    blocker.close()
    await st.aclose()


def test_a_workspace_key_is_made_once_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``autoflow serve`` needs no setup for runs with secret inputs or a data subject."""
    monkeypatch.delenv(store.SUBJECT_KEY_ENV, raising=False)
    state = tmp_path / ".autoflow"
    key = store.workspace_key(state)
    assert len(key) == 64
    assert (state / "store.key").stat().st_mode & 0o777 == 0o600
    assert store.workspace_key(state) == key  # the same on every start
    monkeypatch.setenv(store.SUBJECT_KEY_ENV, "from-the-environment")
    assert store.workspace_key(state) == b"from-the-environment"
