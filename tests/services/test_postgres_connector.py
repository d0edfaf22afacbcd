"""The ``postgres`` connector against a real PostgreSQL: actions, values, errors, a CLI run.

Actions are called as the engine calls them (``call_action``: validated params, a real
``ActionContext`` and ``ResourcePool``), each test on a fresh database (``postgres_db``).
What a workflow author relies on: rows as dicts with JSON-compatible values, values always
bound (an injection attempt through a parameter is stored as text), transactions all or
nothing, and failures that say retryable or not, name the integration and never show the
password. The last section runs ``autoflow run`` with an Integration manifest and the password
in ``AUTOFLOW_SECRET_DB_PASSWORD``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import leaks
import psycopg
import pytest
import servers
from psycopg import sql as psycopg_sql

from autoflow.connectors import sdk
from autoflow.connectors.builtin import postgres as postgres_connector
from autoflow.crds import errors

CallAction = Callable[..., Any]
MakeIntegration = Callable[..., sdk.IntegrationInfo]
Cli = Callable[..., subprocess.CompletedProcess[str]]


def settings_of(pg: servers.Postgres, **extra: Any) -> dict[str, Any]:
    return {"host": pg.host, "port": pg.port, "database": pg.dbname, "user": pg.user, **extra}


@pytest.fixture
def db(postgres_db: servers.Postgres, make_integration: MakeIntegration) -> sdk.IntegrationInfo:
    """Integration ``db`` for a fresh database: settings plus the password secret."""
    return make_integration(
        "db", "postgres", settings_of(postgres_db), {"password": postgres_db.password}
    )


@pytest.fixture
def sql(db: sdk.IntegrationInfo, call_action: CallAction) -> Callable[..., Any]:
    """``await sql(action, with_)``: a postgres action through integration ``db``."""

    async def run(action: str, with_: dict[str, Any], step: str = "step") -> Any:
        return await call_action(f"postgres.{action}", with_, db, step)

    return run


async def make_items(sql: Callable[..., Any]) -> None:
    await sql(
        "execute",
        {"sql": "CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE, qty int)"},
    )


# -- actions ----------------------------------------------------------------------------------


async def test_query_returns_rows_as_dicts(sql: Callable[..., Any]) -> None:
    await make_items(sql)
    await sql("execute", {"sql": "INSERT INTO items (name, qty) VALUES ('bolt', 3), ('nut', 5)"})
    out = await sql(
        "query", {"sql": "SELECT name, qty FROM items WHERE qty >= %s ORDER BY name", "params": [1]}
    )
    assert out == {
        "rows": [{"name": "bolt", "qty": 3}, {"name": "nut", "qty": 5}],
        "rowCount": 2,
        "columns": ["name", "qty"],
    }
    empty = await sql("query", {"sql": "SELECT name FROM items WHERE qty > 100"})
    assert empty == {"rows": [], "rowCount": 0, "columns": ["name"]}
    # A statement without a result set: no rows, the rows it affected.
    changed = await sql("query", {"sql": "UPDATE items SET qty = qty + 1"})
    assert changed == {"rows": [], "rowCount": 2, "columns": []}


async def test_execute_counts_rows_and_returns_returning_rows(sql: Callable[..., Any]) -> None:
    await make_items(sql)
    out = await sql(
        "execute",
        {
            "sql": "INSERT INTO items (name, qty) VALUES (%(name)s, %(qty)s) RETURNING id, name",
            "params": {"name": "washer", "qty": 7},
        },
    )
    assert out == {"rowCount": 1, "rows": [{"id": 1, "name": "washer"}]}
    out = await sql("execute", {"sql": "UPDATE items SET qty = qty + 1"})
    assert out == {"rowCount": 1, "rows": []}


async def test_execute_many_runs_once_per_parameter_set(sql: Callable[..., Any]) -> None:
    await make_items(sql)
    out = await sql(
        "executeMany",
        {
            "sql": "INSERT INTO items (name, qty) VALUES (%s, %s)",
            "paramSets": [["a", 1], ["b", 2], ["c", 3]],
        },
    )
    assert out == {"rowCount": 3, "rows": []}
    out = await sql(
        "executeMany",
        {
            "sql": "UPDATE items SET qty = qty * 10 WHERE name = %(name)s RETURNING name, qty",
            "paramSets": [{"name": "a"}, {"name": "c"}, {"name": "missing"}],
            "returning": True,
        },
    )
    assert out == {"rowCount": 2, "rows": [{"name": "a", "qty": 10}, {"name": "c", "qty": 30}]}
    assert await sql("executeMany", {"sql": "DELETE FROM items", "paramSets": []}) == {
        "rowCount": 0,
        "rows": [],
    }


async def test_execute_many_is_all_or_nothing(sql: Callable[..., Any]) -> None:
    await make_items(sql)
    batch = [["a", 1], ["b", 2], ["a", 3]]  # the third breaks the unique name
    with pytest.raises(errors.PermanentError, match="23505"):
        await sql(
            "executeMany",
            {"sql": "INSERT INTO items (name, qty) VALUES (%s, %s)", "paramSets": batch},
        )
    assert (await sql("query", {"sql": "SELECT count(*) AS n FROM items"}))["rows"] == [{"n": 0}]


async def test_transaction_commits_every_statement(sql: Callable[..., Any]) -> None:
    await make_items(sql)
    out = await sql(
        "transaction",
        {
            "statements": [
                {"sql": "INSERT INTO items (name, qty) VALUES (%s, %s)", "params": ["x", 1]},
                {"sql": "UPDATE items SET qty = qty + %s WHERE name = %s", "params": [4, "x"]},
                {"sql": "SELECT qty FROM items WHERE name = %s", "params": ["x"]},
            ],
            "isolation": "serializable",
        },
    )
    assert out == {
        "rowCount": 3,
        "results": [
            {"rowCount": 1, "rows": []},
            {"rowCount": 1, "rows": []},
            {"rowCount": 1, "rows": [{"qty": 5}]},
        ],
    }


async def test_transaction_is_all_or_nothing(sql: Callable[..., Any]) -> None:
    await make_items(sql)
    await sql("execute", {"sql": "INSERT INTO items (name, qty) VALUES ('taken', 1)"})
    with pytest.raises(errors.PermanentError) as caught:
        await sql(
            "transaction",
            {
                "statements": [
                    {"sql": "INSERT INTO items (name, qty) VALUES (%s, 1)", "params": ["new"]},
                    {"sql": "UPDATE items SET qty = 99"},
                    {"sql": "INSERT INTO items (name, qty) VALUES (%s, 1)", "params": ["taken"]},
                ]
            },
        )
    assert "23505 (unique_violation)" in caught.value.message
    assert caught.value.details["constraint_name"] == "items_name_key"
    rows = await sql("query", {"sql": "SELECT name, qty FROM items"})
    assert rows["rows"] == [{"name": "taken", "qty": 1}]


async def test_read_only_transaction_refuses_writes(sql: Callable[..., Any]) -> None:
    await make_items(sql)
    with pytest.raises(errors.PermanentError, match="25006"):
        await sql(
            "transaction",
            {"statements": [{"sql": "DELETE FROM items"}], "readOnly": True},
        )


async def test_steps_of_a_run_share_one_pool_closed_with_the_run(
    db: sdk.IntegrationInfo, postgres_db: servers.Postgres
) -> None:
    pool = sdk.ResourcePool()
    action = postgres_connector.connector.actions["query"]

    async def step(sql: str) -> Any:
        ctx = sdk.ActionContext(
            run_id="run-1",
            step_id="s",
            attempt=1,
            idempotency_key="run-1:s",
            log=logging.LoggerAdapter(logging.getLogger("test"), {}),
            integration=db,
            pool=pool,
        )
        params = action.params.model_validate({"sql": sql})
        return action.dump_output(await action.func(params, ctx))

    def backends() -> int:
        with psycopg.connect(postgres_db.superuser_dsn) as conn:
            found = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'autoflow'"
            ).fetchone()
            return int(found[0]) if found else 0

    pids = [(await step("SELECT pg_backend_pid() AS pid"))["rows"][0]["pid"] for _ in range(5)]
    assert len(set(pids)) <= 2  # reused, not a connection per step
    # Many steps at once never open more than maxConnections (5 by default).
    results = await asyncio.gather(
        *(step("SELECT pg_backend_pid() AS pid, pg_sleep(0.05) AS z") for _ in range(12))
    )
    assert len({r["rows"][0]["pid"] for r in results}) <= 5
    assert 1 <= backends() <= 5
    await pool.aclose()  # the run ends: its connections close (the server notices at once)
    deadline = time.monotonic() + 5
    while backends() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert backends() == 0


# -- values in, values out --------------------------------------------------------------------

INJECTION = "x'); DROP TABLE items; --"


async def test_an_injection_attempt_through_a_parameter_is_inert(sql: Callable[..., Any]) -> None:
    await make_items(sql)
    await sql(
        "execute",
        {"sql": "INSERT INTO items (name, qty) VALUES (%s, %s)", "params": [INJECTION, 1]},
    )
    await sql(
        "execute",
        {"sql": "INSERT INTO items (name) VALUES (%(name)s)", "params": {"name": "' OR '1'='1"}},
    )
    # The table is still there and holds the attempts as plain text.
    out = await sql("query", {"sql": "SELECT name FROM items ORDER BY id"})
    assert [r["name"] for r in out["rows"]] == [INJECTION, "' OR '1'='1"]
    # A WHERE clause matched against an attempt matches only that exact text.
    out = await sql(
        "query",
        {"sql": "SELECT count(*) AS n FROM items WHERE name = %s", "params": ["' OR '1'='1"]},
    )
    assert out["rows"] == [{"n": 1}]
    out = await sql(
        "query",
        {"sql": "SELECT count(*) AS n FROM items WHERE name = %s", "params": ["x' OR 'a'='a"]},
    )
    assert out["rows"] == [{"n": 0}]


def test_sql_is_marked_static_in_the_schema() -> None:
    for action in postgres_connector.connector.actions.values():
        schema = json.dumps(action.params_schema())
        assert '"x-autoflow-static": true' in schema, action.name


async def test_values_come_back_json_compatible(sql: Callable[..., Any]) -> None:
    out = await sql(
        "query",
        {
            "sql": """
                SELECT timestamptz '2024-05-06 07:08:09.5+00' AS ts,
                       timestamp '2024-05-06 07:08:09' AS local_ts,
                       date '2024-05-06' AS day,
                       time '07:08:09' AS clock,
                       interval '1 day 2 hours' AS span,
                       12.50::numeric AS price,
                       'NaN'::numeric AS not_a_number,
                       'Infinity'::float8 AS big,
                       1.5::float8 AS ratio,
                       '\\x00ff10'::bytea AS raw,
                       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id,
                       '10.1.2.3'::inet AS address,
                       ARRAY[1, 2, 3] AS numbers,
                       '{"a": [1, {"b": null}]}'::jsonb AS doc,
                       true AS flag,
                       NULL::text AS nothing,
                       9007199254740993::bigint AS large
            """
        },
    )
    assert out["rows"] == [
        {
            "ts": "2024-05-06T07:08:09.500000+00:00",
            "local_ts": "2024-05-06T07:08:09",
            "day": "2024-05-06",
            "clock": "07:08:09",
            "span": 93600.0,
            "price": "12.50",
            "not_a_number": "NaN",
            "big": "Infinity",
            "ratio": 1.5,
            "raw": base64.b64encode(b"\x00\xff\x10").decode(),
            "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "address": "10.1.2.3",
            "numbers": [1, 2, 3],
            "doc": {"a": [1, {"b": None}]},
            "flag": True,
            "nothing": None,
            "large": 9007199254740993,
        }
    ]
    json.dumps(out, allow_nan=False)  # what the journal stores


async def test_numeric_as_float(sql: Callable[..., Any]) -> None:
    out = await sql("query", {"sql": "SELECT 12.50::numeric AS price", "numericAs": "float"})
    assert out["rows"] == [{"price": 12.5}]


async def test_mappings_go_as_jsonb_and_lists_as_arrays(sql: Callable[..., Any]) -> None:
    await sql("execute", {"sql": "CREATE TABLE docs (id int, body jsonb)"})
    await sql(
        "executeMany",
        {
            "sql": "INSERT INTO docs VALUES (%s, %s)",
            "paramSets": [[1, {"tags": ["a"], "n": 1}], [2, [{"x": 1}]], [3, {"n": 3}]],
        },
    )
    out = await sql(
        "query",
        {
            "sql": "SELECT id, body FROM docs WHERE id = ANY(%s) ORDER BY id",
            "params": [[1, 2]],
        },
    )
    assert out["rows"] == [
        {"id": 1, "body": {"tags": ["a"], "n": 1}},
        {"id": 2, "body": [{"x": 1}]},
    ]
    # A literal % in a statement with parameters is written %%.
    out = await sql("query", {"sql": "SELECT '100%%' AS pct, %s::text AS v", "params": ["50%"]})
    assert out["rows"] == [{"pct": "100%", "v": "50%"}]


async def test_too_many_rows_fail_the_step(sql: Callable[..., Any]) -> None:
    with pytest.raises(errors.PermanentError, match=r"more than maxRows \(3\)") as caught:
        await sql("query", {"sql": "SELECT generate_series(1, 10) AS n", "maxRows": 3})
    assert caught.value.where.field == "with.maxRows"
    out = await sql("query", {"sql": "SELECT generate_series(1, 3) AS n", "maxRows": 3})
    assert out["rowCount"] == 3


async def test_columns_with_one_name_must_be_named_apart(sql: Callable[..., Any]) -> None:
    with pytest.raises(errors.PermanentError, match="more than one column named 'id'"):
        await sql("query", {"sql": "SELECT 1 AS id, 2 AS id"})


# -- errors -----------------------------------------------------------------------------------


async def test_unknown_table_is_permanent_with_sqlstate(sql: Callable[..., Any]) -> None:
    with pytest.raises(errors.PermanentError) as caught:
        await sql("query", {"sql": "SELECT * FROM no_such_table"})
    message = caught.value.message
    assert message.startswith("integration 'db': PostgreSQL error 42P01 (undefined_table)")
    assert 'relation "no_such_table" does not exist' in message
    assert caught.value.details["sqlstate"] == "42P01"
    assert caught.value.where.step == "step"


async def test_syntax_error_is_permanent(sql: Callable[..., Any]) -> None:
    with pytest.raises(errors.PermanentError, match=r"42601 \(syntax_error\)"):
        await sql("execute", {"sql": "SELEC 1"})


async def test_unique_violation_is_permanent_with_the_detail(sql: Callable[..., Any]) -> None:
    await make_items(sql)
    insert = {"sql": "INSERT INTO items (name) VALUES (%s)", "params": ["dup"]}
    await sql("execute", insert)
    with pytest.raises(errors.PermanentError) as caught:
        await sql("execute", insert)
    assert "23505 (unique_violation)" in caught.value.message
    assert "Key (name)=(dup) already exists" in caught.value.message


async def test_placeholders_and_params_that_disagree(sql: Callable[..., Any]) -> None:
    with pytest.raises(errors.PermanentError, match="2 placeholders but 1 parameters") as caught:
        await sql("query", {"sql": "SELECT %s, %s", "params": [1]})
    assert caught.value.where.field == "with.params"


@pytest.mark.parametrize(
    ("condition", "retryable"),
    [
        ("serialization_failure", True),  # 40001
        ("deadlock_detected", True),  # 40P01
        ("lock_not_available", True),  # 55P03
        ("query_canceled", True),  # 57014
        ("too_many_connections", True),  # 53300
        ("admin_shutdown", True),  # 57P01
        ("unique_violation", False),  # 23505
        ("insufficient_privilege", False),  # 42501
        ("division_by_zero", False),  # 22012
    ],
)
async def test_sqlstates_map_to_retryable_or_permanent(
    sql: Callable[..., Any], condition: str, retryable: bool
) -> None:
    # The server raises the condition itself, exactly as it would report the real thing.
    statement = f"DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '{condition}'; END $$"
    with pytest.raises(errors.ConnectorError) as caught:
        await sql("execute", {"sql": statement})
    assert caught.value.retryable is retryable
    assert f"({condition})" in caught.value.message


async def test_a_real_deadlock_is_retryable(sql: Callable[..., Any]) -> None:
    await sql("execute", {"sql": "CREATE TABLE acct (id int PRIMARY KEY, n int)"})
    await sql("execute", {"sql": "INSERT INTO acct VALUES (1, 0), (2, 0)"})

    def crossing(first: int, second: int) -> dict[str, Any]:
        update = "UPDATE acct SET n = n + 1 WHERE id = %s"
        return {
            "statements": [
                {"sql": update, "params": [first]},
                {"sql": "SELECT pg_sleep(0.3)"},
                {"sql": update, "params": [second]},
            ]
        }

    results = await asyncio.gather(
        sql("transaction", crossing(1, 2), step="a"),
        sql("transaction", crossing(2, 1), step="b"),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1, results
    assert isinstance(failed[0], errors.RetryableError)
    assert "40P01 (deadlock_detected)" in failed[0].message


async def test_statement_timeout_is_retryable(
    call_action: CallAction, postgres_db: servers.Postgres, make_integration: MakeIntegration
) -> None:
    db = make_integration(
        "db",
        "postgres",
        settings_of(postgres_db, statementTimeout="200ms"),
        {"password": postgres_db.password},
    )
    with pytest.raises(errors.RetryableError, match="57014"):
        await call_action("postgres.query", {"sql": "SELECT pg_sleep(2)"}, db)


async def test_wrong_password_is_permanent_and_never_shown(
    call_action: CallAction, postgres: servers.Postgres, make_integration: MakeIntegration
) -> None:
    wrong = "Wr0ng-pa55word-e3f1"
    db = make_integration("orders-db", "postgres", settings_of(postgres), {"password": wrong})
    with pytest.raises(errors.PermanentError) as caught:
        await call_action("postgres.query", {"sql": "SELECT 1"}, db)
    text = str(caught.value)
    assert "integration 'orders-db'" in text
    assert "password authentication failed" in text
    assert wrong not in text and wrong not in repr(caught.value.details)


async def test_a_dsn_secret_connects_and_is_never_shown(
    call_action: CallAction, postgres: servers.Postgres, make_integration: MakeIntegration
) -> None:
    db = make_integration("db", "postgres", {}, {"dsn": postgres.dsn})
    out = await call_action("postgres.query", {"sql": "SELECT current_user AS me"}, db)
    assert out["rows"] == [{"me": postgres.user}]

    wrong = postgres.dsn.replace(postgres.password, "not-the-pw-81c2")
    # (Another integration name: a run keeps one pool per integration.)
    db = make_integration("db2", "postgres", {}, {"dsn": wrong})
    with pytest.raises(errors.PermanentError) as caught:
        await call_action("postgres.query", {"sql": "SELECT 1"}, db)
    assert "not-the-pw-81c2" not in str(caught.value) and wrong not in str(caught.value)

    garbled = "postgresql://u:s3cret-garbled@host:notaport/db ="
    db = make_integration("db3", "postgres", {}, {"dsn": garbled})
    with pytest.raises(errors.PermanentError, match="secret 'dsn' is not") as caught:
        await call_action("postgres.query", {"sql": "SELECT 1"}, db)
    assert "s3cret-garbled" not in str(caught.value)


async def test_connection_refused_is_retryable(
    call_action: CallAction, make_integration: MakeIntegration
) -> None:
    port = servers.free_port()  # nothing listens there
    db = make_integration("db", "postgres", {"host": "127.0.0.1", "port": port, "user": "u"})
    with pytest.raises(errors.RetryableError) as caught:
        await call_action("postgres.query", {"sql": "SELECT 1"}, db)
    assert caught.value.message.startswith(f"integration 'db': PostgreSQL at 127.0.0.1:{port}")
    assert "Connection refused" in caught.value.message


async def test_a_server_that_goes_down_and_comes_back(
    call_action: CallAction,
    postgres_factory: Callable[..., servers.Postgres],
    make_integration: MakeIntegration,
) -> None:
    pg = postgres_factory()
    db = make_integration(
        "db", "postgres", settings_of(pg, poolTimeout="1s"), {"password": pg.password}
    )
    query = {"sql": "SELECT 1 AS one"}
    assert (await call_action("postgres.query", query, db))["rows"] == [{"one": 1}]
    pg.stop()
    with pytest.raises(errors.RetryableError) as caught:
        await call_action("postgres.query", query, db)
    assert "integration 'db'" in caught.value.message
    pg.start_again()
    # The same run's pool recovers: the retried step succeeds at once, even while the pool
    # still waits out its reconnect backoff (the step then takes a direct connection).
    assert (await call_action("postgres.query", query, db))["rows"] == [{"one": 1}]


async def test_a_pool_whose_connections_are_all_busy_says_so(
    call_action: CallAction,
    postgres_factory: Callable[..., servers.Postgres],
    make_integration: MakeIntegration,
) -> None:
    pg = postgres_factory()
    settings = settings_of(pg, poolTimeout="1s", maxConnections=1)
    db = make_integration("db", "postgres", settings, {"password": pg.password})
    slow = asyncio.ensure_future(
        call_action("postgres.query", {"sql": "SELECT pg_sleep(4) AS z"}, db, step="slow")
    )
    await asyncio.sleep(0.5)  # the slow step holds the one connection
    with pytest.raises(errors.RetryableError, match=r"all 1 \(maxConnections\) were busy"):
        await call_action("postgres.query", {"sql": "SELECT 1"}, db, step="other")
    await slow


async def test_too_many_connections_is_retryable(
    call_action: CallAction,
    postgres_factory: Callable[..., servers.Postgres],
    make_integration: MakeIntegration,
) -> None:
    pg = postgres_factory(max_connections=2, superuser_reserved_connections=0)
    held = [await psycopg.AsyncConnection.connect(pg.dsn) for _ in range(2)]
    try:
        db = make_integration("db", "postgres", settings_of(pg), {"password": pg.password})
        with pytest.raises(errors.RetryableError, match="too many clients"):
            await call_action("postgres.query", {"sql": "SELECT 1"}, db)
    finally:
        for conn in held:
            await conn.close()


async def test_unusable_settings_name_the_integration_field(
    call_action: CallAction, make_integration: MakeIntegration
) -> None:
    db = make_integration("db", "postgres", {"host": "127.0.0.1", "port": "five"})
    with pytest.raises(errors.PermanentError) as caught:
        await call_action("postgres.query", {"sql": "SELECT 1"}, db)
    assert caught.value.where.resource == "Integration/db"
    assert caught.value.where.field == "settings.port"
    db = make_integration("db2", "postgres", {"hostname": "x"})
    with pytest.raises(errors.PermanentError, match="hostname"):
        await call_action("postgres.query", {"sql": "SELECT 1"}, db)


async def test_a_step_without_integration(call_action: CallAction) -> None:
    with pytest.raises(errors.PermanentError, match="needs an Integration of type postgres"):
        await call_action("postgres.query", {"sql": "SELECT 1"})


# -- autoflow run -----------------------------------------------------------------------------

INTEGRATION = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {name: db}
spec:
  type: postgres
  settings: {host: 127.0.0.1, port: %(port)d, database: %(dbname)s, user: %(user)s}
  secretRef: {name: db-credentials, keys: [password]}
"""

INVENTORY = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: inventory}
spec:
  inputs:
    items:
      type: array
      default:
        - {name: bolt, qty: 3}
        - {name: nut, qty: 5}
        - {name: "x'); DROP TABLE stock; --", qty: 1}
  steps:
    - id: create
      uses: postgres.execute
      integration: db
      with:
        sql: CREATE TABLE IF NOT EXISTS stock (name text PRIMARY KEY, qty int NOT NULL)
    - id: insert
      uses: postgres.execute
      integration: db
      foreach: ${ inputs.items }
      concurrency: 3
      with:
        sql: INSERT INTO stock (name, qty) VALUES (%(name)s, %(qty)s)
        params: {name: "${ item.name }", qty: "${ item.qty }"}
    - id: read
      uses: postgres.query
      integration: db
      with:
        sql: SELECT name, qty FROM stock WHERE qty >= %s ORDER BY name
        params: [1]
  outputs:
    inserted: ${ len(steps.insert.output) }
    rows: ${ steps.read.output.rows }
"""

BROKEN = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: broken}
spec:
  steps:
    - id: read
      uses: postgres.query
      integration: db
      retry: {maxAttempts: 3, initialDelay: 100ms, jitter: false}
      with: {sql: SELECT * FROM %(table)s}
"""


def write_run_files(directory: Path, pg: servers.Postgres, table: str = "stock") -> None:
    values = {"port": pg.port, "dbname": pg.dbname, "user": pg.user}
    (directory / "integration.yaml").write_text(INTEGRATION % values)
    (directory / "inventory.yaml").write_text(INVENTORY)
    (directory / "broken.yaml").write_text(BROKEN % {"table": table})


def run_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def steps_by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in doc["steps"]}


def test_autoflow_run_creates_inserts_and_reads(
    autoflow_cli: Cli, postgres_db: servers.Postgres, tmp_path: Path
) -> None:
    write_run_files(tmp_path, postgres_db)
    env = {"AUTOFLOW_SECRET_DB_PASSWORD": postgres_db.password}
    args = ["run", "inventory.yaml", "integration.yaml", "--output", "json"]
    result = autoflow_cli(*args, env=env, cwd=tmp_path)
    doc = run_json(result)
    assert result.returncode == 0, result.stdout
    assert doc["outputs"] == {
        "inserted": 3,
        "rows": [
            {"name": "bolt", "qty": 3},
            {"name": "nut", "qty": 5},
            {"name": "x'); DROP TABLE stock; --", "qty": 1},
        ],
    }
    assert steps_by_id(doc)["insert"]["output"] == [{"rowCount": 1, "rows": []}] * 3
    assert postgres_db.password not in result.stdout + result.stderr
    # A second run finds the rows there: the primary key refuses them, and says which.
    again = autoflow_cli(*args, env=env, cwd=tmp_path)
    doc = run_json(again)
    assert again.returncode == 1
    insert = steps_by_id(doc)["insert"]
    # Permanent: not retried. The three items run at once (concurrency 3) and a foreach
    # step's attempts are its items' attempts added up: one each.
    assert insert["attempts"] == 3
    assert "integration 'db': PostgreSQL error 23505 (unique_violation)" in insert["error"]


def test_autoflow_run_wrong_password(
    autoflow_cli: Cli, postgres_db: servers.Postgres, tmp_path: Path
) -> None:
    write_run_files(tmp_path, postgres_db)
    wrong = "definitely-wrong-7d1a"
    result = autoflow_cli(
        "run", "inventory.yaml", "integration.yaml",
        env={"AUTOFLOW_SECRET_DB_PASSWORD": wrong}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "step 'create' failed: integration 'db'" in result.stdout
    assert "password authentication failed" in result.stdout
    assert wrong not in result.stdout + result.stderr


def test_autoflow_run_missing_password_names_the_variable(
    autoflow_cli: Cli, postgres_db: servers.Postgres, tmp_path: Path
) -> None:
    write_run_files(tmp_path, postgres_db)
    result = autoflow_cli("run", "inventory.yaml", "integration.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "integration 'db'" in result.stdout
    assert "no password supplied" in result.stdout


def test_autoflow_run_unknown_table_is_not_retried(
    autoflow_cli: Cli, postgres_db: servers.Postgres, tmp_path: Path
) -> None:
    write_run_files(tmp_path, postgres_db, table="no_such_table")
    result = autoflow_cli(
        "run", "broken.yaml", "integration.yaml", "--output", "json",
        env={"AUTOFLOW_SECRET_DB_PASSWORD": postgres_db.password}, cwd=tmp_path,
    )  # fmt: skip
    step = steps_by_id(run_json(result))["read"]
    assert result.returncode == 1
    assert step["attempts"] == 1
    assert step["error"].startswith("integration 'db': PostgreSQL error 42P01 (undefined_table)")


def test_autoflow_run_database_down_is_retried_under_the_step_policy(
    autoflow_cli: Cli, postgres_db: servers.Postgres, tmp_path: Path
) -> None:
    down = dataclasses.replace(postgres_db, port=servers.free_port(), process=None)
    write_run_files(tmp_path, down, table="anything")
    result = autoflow_cli(
        "run", "broken.yaml", "integration.yaml", "--output", "json",
        env={"AUTOFLOW_SECRET_DB_PASSWORD": postgres_db.password}, cwd=tmp_path,
    )  # fmt: skip
    doc = run_json(result)
    step = steps_by_id(doc)["read"]
    assert result.returncode == 1
    assert step["attempts"] == 3  # maxAttempts: retryable, so tried again
    assert "integration 'db': PostgreSQL at 127.0.0.1" in step["error"]
    assert "Connection refused" in step["error"]
    assert postgres_db.password not in result.stdout + result.stderr


# -- secrets the server echoes back ------------------------------------------------------------


async def test_a_password_the_server_echoes_never_reaches_output_error_or_log(
    postgres_db: servers.Postgres, tmp_path: Path
) -> None:
    """The login password comes back in rows and in an error, raw, URL-encoded, form-encoded
    and JSON-encoded: every form is masked wherever the run shows it."""
    role = f"leaky_{uuid.uuid4().hex[:8]}"
    forms = leaks.forms(leaks.SECRET)
    with psycopg.connect(postgres_db.superuser_dsn, autocommit=True) as conn:
        conn.execute(
            psycopg_sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                psycopg_sql.Identifier(role), psycopg_sql.Literal(leaks.SECRET)
            )
        )
        conn.execute("CREATE TABLE echoes (form text, value text)")
        conn.cursor().executemany("INSERT INTO echoes VALUES (%s, %s)", list(forms.items()))
        conn.execute(
            psycopg_sql.SQL("GRANT SELECT ON echoes TO {}").format(psycopg_sql.Identifier(role))
        )
    settings = {
        "host": postgres_db.host,
        "port": postgres_db.port,
        "database": postgres_db.dbname,
        "user": role,
    }
    steps: list[dict[str, Any]] = [
        {"id": "rows", "uses": "postgres.query", "integration": "db",
         "with": {"sql": "SELECT form, value FROM echoes ORDER BY form"}},
        {"id": "cast", "uses": "postgres.query", "integration": "db", "continueOnError": True,
         "with": {"sql": "SELECT string_agg(value, ' ')::int FROM echoes"}},
    ]  # fmt: skip
    try:
        manifests = leaks.manifests("db", "postgres", settings, steps)
        shown = await leaks.run_locally(tmp_path, manifests, {"db": {"password": leaks.SECRET}})
    finally:
        with psycopg.connect(postgres_db.superuser_dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE echoes")
            conn.execute(psycopg_sql.SQL("DROP ROLE {}").format(psycopg_sql.Identifier(role)))
    leaked = list(leaks.lines_with(shown.text, leaks.SECRET))
    assert leaked == [], leaked
    rows = shown.result.steps["rows"].output["rows"]
    assert {r["form"]: r["value"] for r in rows} == dict.fromkeys(forms, "***")
    error = shown.result.steps["cast"].error or ""
    assert 'invalid input syntax for type integer: "*** *** *** ***"' in error, error
