"""The run store contract against a real PostgreSQL, plus what only a server store does.

Each test gets a fresh database (``postgres_db``). Beyond the contract: an unreachable
server and a database not migrated yet are refused at start with a clear message that names
the URL without its password, and a server that goes away mid-run holds the run at the
unrecorded step until it is back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import servers
from store_contract import StoreContract

from autoflow.runners import store
from autoflow.runners.store import journal as store_journal
from autoflow.runners.store import migrations


@pytest.fixture
def store_url(postgres_db: servers.Postgres) -> str:
    return postgres_db.dsn


@pytest.fixture
def raw_sql(store_url: str) -> Callable[[str], list[tuple[Any, ...]]]:
    def run(statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(store_url, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    return run


@pytest.fixture
def tables(raw_sql: Callable[[str], list[tuple[Any, ...]]]) -> Callable[[], list[str]]:
    query = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    return lambda: [r[0] for r in raw_sql(query)]


class TestPostgresStore(StoreContract):
    pass


async def test_an_unreachable_server_is_named_without_its_password() -> None:
    url = f"postgresql://app:s3cret-pw@127.0.0.1:{servers.free_port()}/runs"
    with pytest.raises(store.StoreUnavailable) as caught:
        await store.open_store(url, connect_timeout=2)
    message = str(caught.value)
    assert message.startswith("cannot reach the run store at postgresql://app:***@127.0.0.1:")
    assert "s3cret-pw" not in message


async def test_a_wrong_password_is_not_repeated(postgres_db: servers.Postgres) -> None:
    url = postgres_db.dsn.replace(f":{postgres_db.password}@", ":not-the-pw-77@")
    with pytest.raises(store.StoreUnavailable) as caught:
        await store.open_store(url)
    assert "not-the-pw-77" not in str(caught.value)
    assert postgres_db.password not in str(caught.value)


async def test_a_database_not_migrated_yet_is_refused_with_the_command_to_run(
    postgres_db: servers.Postgres,
) -> None:
    with pytest.raises(store.SchemaMismatch) as caught:
        await store.open_store(postgres_db.dsn)
    assert "autoflow store migrate" in str(caught.value)
    assert postgres_db.password not in str(caught.value)
    migrated = await store.open_store(postgres_db.dsn, migrate=True)
    await migrated.aclose()
    again = await store.open_store(postgres_db.dsn)  # now it starts
    assert await again.schema_version() >= 1
    await again.aclose()


async def test_migrating_twice_at_once_applies_each_version_once(
    postgres_db: servers.Postgres,
) -> None:
    opened = await asyncio.gather(
        *(store.open_store(postgres_db.dsn, migrate=True) for _ in range(3))
    )
    for st in opened:
        await st.aclose()
    with psycopg.connect(postgres_db.dsn) as conn:
        rows = conn.execute("SELECT version FROM autoflow_schema").fetchall()
    assert sorted(r[0] for r in rows) == list(range(1, len(rows) + 1))


async def test_a_server_gone_mid_run_holds_the_run_at_the_unrecorded_step(
    postgres_factory: Callable[..., servers.Postgres], probe: Any
) -> None:
    server = postgres_factory()
    db = server.create_database()
    st = await store.open_store(db.dsn, migrate=True)
    spec = {"steps": [{"id": f"s{i}", "uses": "t.call", "with": {"value": i}} for i in range(3)]}
    jr = store_journal.StoreJournal(st)

    class StopAfterS0:
        def step_started(self, step: str, attempt: int) -> None: ...
        def step_retrying(self, *args: Any) -> None: ...
        def step_finished(self, result: Any) -> None:
            if result.id == "s0":
                server.stop()

    run = asyncio.create_task(probe.run(spec, journal=jr, observer=StopAfterS0(), run_id="out"))
    await asyncio.sleep(2.0)
    assert probe.steps_called() == ["s0", "s1"]  # s1's result is not recorded: s2 waits
    assert not run.done()
    await asyncio.to_thread(server.start_again)
    result = await asyncio.wait_for(run, 60)
    assert result.succeeded
    assert probe.steps_called() == ["s0", "s1", "s2"]
    detail = await st.get_run("out")
    assert detail is not None
    assert [(s.step, s.phase) for s in detail.steps] == [
        ("s0", "Succeeded"),
        ("s1", "Succeeded"),
        ("s2", "Succeeded"),
    ]
    await st.aclose()


def test_the_cli_migrates_runs_and_lists_history_in_postgres(
    postgres_db: servers.Postgres, autoflow_cli: Callable[..., Any], tmp_path: Any
) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "apiVersion: autoflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: hello}\n"
        "spec:\n  steps:\n    - {id: say, uses: core.log, with: {message: hi}}\n"
    )
    url = postgres_db.dsn
    before = autoflow_cli("run", str(wf), "--store", url)
    assert before.returncode == 1
    assert "autoflow store migrate" in before.stderr
    assert postgres_db.password not in before.stderr

    migrated = autoflow_cli("store", "migrate", env={"AUTOFLOW_STORE_URL": url})
    assert migrated.returncode == 0, migrated.stderr
    assert f"schema version {migrations.LATEST}" in migrated.stdout
    assert postgres_db.password not in migrated.stdout

    ran = autoflow_cli("run", str(wf), "--store", url, "--output", "json")
    assert ran.returncode == 0, ran.stderr
    listed = autoflow_cli("runs", "list", "-o", "json", "--store", url)
    (run,) = json.loads(listed.stdout)["runs"]
    assert (run["workflow"], run["phase"]) == ("hello", "Succeeded")
