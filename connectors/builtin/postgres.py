"""The ``postgres`` connector: SQL on PostgreSQL through psycopg 3, values always bound.

Actions::

    query        one statement → rows (one dict per row), rowCount, columns
    execute      one statement → rowCount, and rows when it returns some (RETURNING)
    executeMany  one statement once per parameter set in paramSets → rowCount (summed)
    transaction  statements, each with its own params, in one transaction: all or nothing
    (probe)      the health probe: connect as a step would, read version, database and user

**SQL text and values travel apart.** ``sql`` is written in the manifest, as static text;
values go in ``params``, a list for ``%s`` placeholders or a mapping for ``%(name)s``, and
reach the server as bound parameters of the extended query protocol. They are never spliced
into the text, so a value such as ``x'); DROP TABLE orders; --`` is stored as that string.
Put no ``${ }`` in ``sql``: an expression there is spliced text, not a parameter (the field is
marked ``x-autoflow-static`` in the schema). Names of tables and columns cannot be parameters;
write them in ``sql``. A literal ``%`` in a statement with params is written ``%%``.
A mapping value (or a list holding mappings) is sent as ``jsonb``; a list of scalars as an
array (``WHERE id = ANY(%s)``).

Values come back JSON-compatible: timestamps, dates and times as ISO 8601 text, ``interval``
as seconds (a number), ``numeric`` as exact text (``"12.50"``) unless ``numericAs: float``,
``bytea`` as base64 text, UUIDs and network addresses as text, NaN and infinities as text
(``"NaN"``, ``"Infinity"``), arrays as lists, json/jsonb as they are.

The connection comes from the step's Integration (type ``postgres``)::

    settings: host, port (5432), database, user, sslmode, connectTimeout (10s),
              statementTimeout, maxConnections (5), poolTimeout (30s), applicationName
    secrets:  password (optional), or dsn (a postgresql:// URL or key=value string, used
              when settings has no host)

How a step flows::

    ctx.pooled("postgres:<integration>") ─► Database: one psycopg_pool.AsyncConnectionPool
        per integration per run, opened after one probe connection (so a wrong password or a
        database that is down fails the first step at once, with the server's reason)
    ─ pool.connection() ─► cursor.execute(sql, bound params) ─► rows → JSON-compatible values
    ─ psycopg.Error ─► _failure(): SQLSTATE → RetryableError / PermanentError

Retryable (the engine retries under the step's policy): connection refused or lost, too many
connections, the server starting or shutting down, serialization failure (40001), deadlock
(40P01), lock not available, query cancelled, out of resources. Permanent: everything else,
such as syntax errors, unique violations, undefined tables, refused credentials. Messages name
the integration and carry the SQLSTATE and the server's message; never the password or DSN.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import ipaddress
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import psycopg
import psycopg_pool
import pydantic
from psycopg import conninfo as pg_conninfo
from psycopg.types import json as pg_json
from pydantic import alias_generators

from autoflow.connectors import sdk
from autoflow.connectors.sdk import redaction
from autoflow.crds import errors, meta

connector = sdk.Connector(
    "postgres", "Run SQL on PostgreSQL: queries, statements, batches and transactions."
)

NumericAs = Literal["string", "float"]
Params = list[Any] | dict[str, Any] | None
# Marks a field whose value must be written in the manifest, not computed by an expression.
STATIC: dict[str, Any] = {"x-autoflow-static": True}
MAX_ROWS = 10_000

_SQL_DESCRIPTION = (
    "SQL text, static: values go in params as bound parameters (%s or %(name)s), "
    "never into this text."
)
_PARAMS_DESCRIPTION = (
    "Values bound to the placeholders: a list for %s, a mapping for %(name)s. "
    "A mapping value is sent as jsonb, a list of scalars as an array."
)


# -- parameters and outputs -------------------------------------------------------------------


class Statement(sdk.Params):
    sql: str = pydantic.Field(min_length=1, description=_SQL_DESCRIPTION, json_schema_extra=STATIC)
    params: Params = pydantic.Field(default=None, description=_PARAMS_DESCRIPTION)


class _RowsOptions(sdk.Params):
    max_rows: int = pydantic.Field(
        default=MAX_ROWS,
        gt=0,
        le=1_000_000,
        description="More rows than this fail the step: add LIMIT, or raise this.",
    )
    numeric_as: NumericAs = pydantic.Field(
        default="string",
        description="numeric values as exact text (string) or as JSON numbers (float).",
    )


# The options come last in each action's form: bases listed first, fields listed last.
class QueryParams(_RowsOptions, Statement):
    pass


class ExecuteParams(_RowsOptions, Statement):
    pass


class _Batch(sdk.Params):
    sql: str = pydantic.Field(min_length=1, description=_SQL_DESCRIPTION, json_schema_extra=STATIC)
    param_sets: list[list[Any] | dict[str, Any]] = pydantic.Field(
        max_length=100_000, description="One parameter set (list or mapping) per execution."
    )
    returning: bool = pydantic.Field(
        default=False, description="Collect the rows each execution returns (RETURNING)."
    )


class ExecuteManyParams(_RowsOptions, _Batch):
    pass


class _Transaction(sdk.Params):
    statements: list[Statement] = pydantic.Field(min_length=1, max_length=1000)
    isolation: Literal["read committed", "repeatable read", "serializable"] | None = pydantic.Field(
        default=None, description="Isolation level; the server's default if unset."
    )
    read_only: bool = False


class TransactionParams(_RowsOptions, _Transaction):
    pass


Row = dict[str, Any]


class QueryOutput(sdk.Output):
    rows: list[Row]
    row_count: int
    columns: list[str]


class ExecuteOutput(sdk.Output):
    row_count: int = pydantic.Field(description="Rows the statement inserted, changed or deleted.")
    rows: list[Row] = pydantic.Field(
        default_factory=list, description="Rows the statement returned (RETURNING), if any."
    )


class TransactionOutput(sdk.Output):
    row_count: int = pydantic.Field(description="The sum of the statements' row counts.")
    results: list[ExecuteOutput] = pydantic.Field(description="One result per statement.")


# -- actions ----------------------------------------------------------------------------------


@connector.action("query")
async def query(params: QueryParams, ctx: sdk.ActionContext) -> QueryOutput:
    """Run one statement and output its rows, one dict per row keyed by column name."""
    db = await _database(ctx)
    async with db.connection(ctx) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        await cur.execute(params.sql, _bind(params.params))
        if cur.description is None:  # a statement without a result, such as UPDATE
            count = max(cur.rowcount, 0)
            _log(ctx, "query", started, count)
            return QueryOutput(rows=[], row_count=count, columns=[])
        columns = _columns(cur, ctx)
        rows = await _fetch(cur, columns, params, ctx)
    _log(ctx, "query", started, len(rows))
    return QueryOutput(rows=rows, row_count=len(rows), columns=columns)


@connector.action("execute")
async def execute(params: ExecuteParams, ctx: sdk.ActionContext) -> ExecuteOutput:
    """Run one statement (INSERT, UPDATE, DELETE, DDL) and output the rows it affected."""
    db = await _database(ctx)
    async with db.connection(ctx) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        result = await _execute(cur, params, params, ctx)
    _log(ctx, "execute", started, result.row_count)
    return result


@connector.action("executeMany")
async def execute_many(params: ExecuteManyParams, ctx: sdk.ActionContext) -> ExecuteOutput:
    """Run one statement once per parameter set, in one transaction, pipelined."""
    db = await _database(ctx)
    if not params.param_sets:
        return ExecuteOutput(row_count=0)
    async with db.connection(ctx) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        bound = [_bind_set(p) for p in params.param_sets]
        await cur.executemany(params.sql, bound, returning=params.returning)
        if not params.returning:
            count = max(cur.rowcount, 0)
            _log(ctx, "executeMany", started, count)
            return ExecuteOutput(row_count=count)
        rows: list[Row] = []
        count = 0
        while True:
            count += max(cur.rowcount, 0)
            if cur.description is not None:
                rows += await _fetch(cur, _columns(cur, ctx), params, ctx, len(rows))
            if not cur.nextset():
                break
    _log(ctx, "executeMany", started, count)
    return ExecuteOutput(row_count=count, rows=rows)


@connector.action("transaction")
async def transaction(params: TransactionParams, ctx: sdk.ActionContext) -> TransactionOutput:
    """Run statements in one transaction: all take effect, or (on any error) none does."""
    db = await _database(ctx)
    results: list[ExecuteOutput] = []
    async with db.connection(ctx) as conn, conn.transaction(), conn.cursor() as cur:
        started = time.perf_counter()
        mode = f"ISOLATION LEVEL {params.isolation.upper()}" if params.isolation else ""
        mode += " READ ONLY" if params.read_only else ""
        if mode:  # before any statement: it applies to this transaction only
            await cur.execute(f"SET TRANSACTION {mode.strip()}")
        for statement in params.statements:
            results.append(await _execute(cur, statement, params, ctx))
    total = sum(r.row_count for r in results)
    _log(ctx, "transaction", started, total)
    return TransactionOutput(row_count=total, results=results)


async def _execute(
    cur: psycopg.AsyncCursor[Any],
    statement: Statement,
    options: _RowsOptions,
    ctx: sdk.ActionContext,
) -> ExecuteOutput:
    await cur.execute(statement.sql, _bind(statement.params))
    count = max(cur.rowcount, 0)
    if cur.description is None:
        return ExecuteOutput(row_count=count)
    return ExecuteOutput(row_count=count, rows=await _fetch(cur, _columns(cur, ctx), options, ctx))


def _log(ctx: sdk.ActionContext, action: str, started: float, rows: int) -> None:
    elapsed = (time.perf_counter() - started) * 1000
    ctx.log.debug("postgres.%s: %d rows in %.1f ms", action, rows, elapsed)


# -- values in and out ------------------------------------------------------------------------


def _bind(params: Params) -> Params:
    """Parameters as psycopg adapts them: mappings (and lists of them) become jsonb."""
    return None if params is None else _bind_set(params)


def _bind_set(params: list[Any] | dict[str, Any]) -> list[Any] | dict[str, Any]:
    if isinstance(params, dict):
        return {k: _bind_value(v) for k, v in params.items()}
    return [_bind_value(v) for v in params]


def _bind_value(value: Any) -> Any:
    if isinstance(value, dict) or (isinstance(value, list) and _holds_mapping(value)):
        return pg_json.Jsonb(value)
    return value


def _holds_mapping(values: list[Any]) -> bool:
    return any(isinstance(v, dict) or (isinstance(v, list) and _holds_mapping(v)) for v in values)


def _columns(cur: psycopg.AsyncCursor[Any], ctx: sdk.ActionContext) -> list[str]:
    names = [c.name for c in cur.description or ()]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise errors.PermanentError(
            f"the result has more than one column named {', '.join(map(repr, twice))}; rows "
            "are dicts keyed by column name, so name them apart (SELECT a.id AS a_id, ...)",
            errors.Where(step=ctx.step_id, field="with.sql"),
        )
    return names


async def _fetch(
    cur: psycopg.AsyncCursor[Any],
    columns: list[str],
    options: _RowsOptions,
    ctx: sdk.ActionContext,
    already: int = 0,
) -> list[Row]:
    room = options.max_rows - already
    raw = await cur.fetchmany(room + 1)
    if len(raw) > room:
        raise errors.PermanentError(
            f"the statement returned more than maxRows ({options.max_rows}) rows; add a LIMIT "
            "or raise maxRows (a run's outputs are meant to stay small)",
            errors.Where(step=ctx.step_id, field="with.maxRows"),
        )
    return [
        {name: to_json(value, options.numeric_as) for name, value in zip(columns, row, strict=True)}
        for row in raw
    ]


def to_json(value: Any, numeric_as: NumericAs = "string") -> Any:
    """A value psycopg returned, as JSON-compatible data (see the module docstring)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _non_finite(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return _non_finite(float(value))
        return float(value) if numeric_as == "float" else str(value)
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple):
        return [to_json(v, numeric_as) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v, numeric_as) for k, v in value.items()}
    if isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    return str(value)  # ranges, network masks, enums of extension types: their text form


def _non_finite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


# -- the connection ---------------------------------------------------------------------------


class Settings(pydantic.BaseModel):
    """The ``settings`` of a ``postgres`` Integration."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="forbid"
    )

    host: str | None = None
    port: int = pydantic.Field(default=5432, ge=1, le=65535)
    database: str | None = None
    user: str | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = (
        None
    )
    connect_timeout: meta.Duration = "10s"
    statement_timeout: meta.Duration | None = None
    max_connections: int = pydantic.Field(default=5, ge=1, le=100)
    pool_timeout: meta.Duration = "30s"
    application_name: str = pydantic.Field(default="autoflow", max_length=63)


connector.integration_form(
    Settings,
    password="the user's password, with settings.host and settings.user",
    dsn="instead of settings.host: a whole libpq connection string or postgresql:// URL",
)


class Database:
    """One integration's connection pool for one run; errors name the integration."""

    def __init__(self, name: str, settings: Settings, conninfo: str, hide: Sequence[str]) -> None:
        self.name = name
        self.settings = settings
        self.conninfo = conninfo
        # What the connector derives from secrets (a password inside a DSN or URL), masked by
        # the same rule as the run masks what is read through the secrets accessor.
        self._redactor = redaction.Redactor(hide)
        params = pg_conninfo.conninfo_to_dict(conninfo)
        host, port, db = (
            params.get("host", "localhost"),
            params.get("port", 5432),
            params.get("dbname"),
        )
        self.label = f"{host}:{port}" + (f"/{db}" if db else "")
        self.pool = psycopg_pool.AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=settings.max_connections,
            open=False,
            timeout=meta.parse_duration(settings.pool_timeout),
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            name=f"postgres:{name}",
        )

    async def __aenter__(self) -> Database:
        await self.pool.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.close(timeout=5)

    async def probe(self, ctx: sdk.ActionContext) -> str:
        """Connect once outside the pool: a refused login or a server that is down is
        reported now, with the server's reason, instead of as a pool timeout later.

        Returns what answered: ``PostgreSQL 16.4 at db:5432/shop, database shop as shop_app``.
        """
        async with self._errors(ctx):
            conn = await psycopg.AsyncConnection.connect(self.conninfo)
            try:
                cur = await conn.execute(
                    "SELECT current_setting('server_version'), current_database(), current_user"
                )
                version, database, user = await cur.fetchone() or ("?", "?", "?")
            finally:
                await conn.close()
        return f"PostgreSQL {version} at {self.label}, database {database} as {user}"

    @contextlib.asynccontextmanager
    async def connection(
        self, ctx: sdk.ActionContext
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; committed when the block ends, rolled back if it raises."""
        async with self._errors(ctx):
            try:
                async with self.pool.connection() as conn:
                    yield conn
                return
            except psycopg_pool.PoolTimeout:
                pass
            # The pool hides why it has no connection; one direct attempt says why (it
            # raises the server's reason when the server is down or refuses us).
            direct = await psycopg.AsyncConnection.connect(self.conninfo)
            stats = self.pool.get_stats()
            busy = stats.get("pool_size", 0) - stats.get("pool_available", 0)
            if busy < self.settings.max_connections:
                # Not busy: the pool is still waiting out its reconnect backoff after the
                # server was gone. The server answers now: this step uses the direct
                # connection (committed or rolled back as a pooled one); the pool refills
                # on its own.
                async with direct:
                    yield direct
                return
            await direct.close()
            raise errors.RetryableError(
                f"integration {self.name!r}: no connection to PostgreSQL at {self.label} "
                f"came free within poolTimeout ({self.settings.pool_timeout}); all "
                f"{self.settings.max_connections} (maxConnections) were busy",
                errors.Where(step=ctx.step_id),
            )

    @contextlib.asynccontextmanager
    async def _errors(self, ctx: sdk.ActionContext) -> AsyncIterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise self.failure(exc, ctx) from None

    def failure(self, exc: psycopg.Error, ctx: sdk.ActionContext) -> errors.ConnectorError:
        """The connector error for what psycopg raised: retryable or not, and why."""
        where = errors.Where(step=ctx.step_id)
        sqlstate = exc.sqlstate
        if sqlstate is None:
            return self._client_failure(exc, where)
        condition = _condition(exc)
        diag = exc.diag
        text = diag.message_primary or _one_line(str(exc))
        message = f"integration {self.name!r}: PostgreSQL error {sqlstate} ({condition}): {text}"
        if diag.message_detail:
            message += f"; {diag.message_detail}"
        if diag.message_hint:
            message += f" (hint: {diag.message_hint})"
        details: dict[str, object] = {"sqlstate": sqlstate, "condition": condition}
        for key in ("message_detail", "message_hint", "statement_position", "constraint_name"):
            if value := getattr(diag, key):
                details[key.removeprefix("message_")] = self._scrub(value)
        kind = errors.RetryableError if _retryable_sqlstate(sqlstate) else errors.PermanentError
        return kind(self._scrub(message), where, details=details)

    def _client_failure(self, exc: psycopg.Error, where: errors.Where) -> errors.ConnectorError:
        text = self._scrub(_one_line(str(exc)))
        if isinstance(exc, psycopg.OperationalError):
            lowered = text.lower()
            refused = any(marker in lowered for marker in _REFUSED_LOGIN)
            busy = any(marker in lowered for marker in _BUSY_SERVER)
            message = f"integration {self.name!r}: PostgreSQL at {self.label}: {text}"
            if busy:
                return errors.RetryableError(message, where)
            if any(marker in lowered for marker in _REFUSED_CREDENTIALS):
                return errors.CredentialsRejectedError(message, where)
            if refused:
                return errors.PermanentError(message, where)
            return errors.UnreachableError(message, where)
        if isinstance(exc, psycopg.InterfaceError):
            return errors.RetryableError(f"integration {self.name!r}: {text}", where)
        # ProgrammingError and DataError raised before anything reached the server: the
        # placeholders and params disagree, or a value cannot be sent as any PostgreSQL type.
        return errors.PermanentError(
            f"integration {self.name!r}: {text}", where.replace(field="with.params")
        )

    def _scrub(self, text: str) -> str:
        return self._redactor.text(text)


# Connection failures have no SQLSTATE in libpq: their text says which kind they are.
_REFUSED_CREDENTIALS = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "no pg_hba.conf entry",
    "permission denied",
)
_REFUSED_LOGIN = (
    *_REFUSED_CREDENTIALS,
    "does not exist",  # role or database
    "ssl",
    "certificate",
    "invalid connection option",
    "invalid sslmode",
)
_BUSY_SERVER = (
    "too many clients",
    "remaining connection slots",
    "starting up",
    "shutting down",
    "in recovery",
)

# SQLSTATE classes and codes that are worth trying again: the same statement may succeed.
_RETRYABLE_CLASSES = ("08", "53", "57P", "58")
_RETRYABLE_CODES = frozenset({"40001", "40P01", "55P03", "57014", "55006"})


def _retryable_sqlstate(sqlstate: str) -> bool:
    return sqlstate in _RETRYABLE_CODES or sqlstate.startswith(_RETRYABLE_CLASSES)


def _condition(exc: psycopg.Error) -> str:
    """``UndefinedTable`` → ``undefined_table``: the condition name PostgreSQL documents."""
    name = type(exc).__name__
    if name in ("Error", "DatabaseError", "OperationalError", "ProgrammingError"):
        return "error"
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def _database(ctx: sdk.ActionContext) -> Database:
    async def connect(integration: sdk.IntegrationInfo) -> Database:
        db = _new_database(integration)
        await db.probe(ctx)
        return db

    return await sdk.pooled_connection(ctx, "postgres", connect)


@connector.probe
async def probe(integration: sdk.IntegrationInfo) -> str:
    """Connects with the Integration's settings and credentials and reads the server's
    version, the database and the user."""
    async with sdk.probe_context(integration) as ctx:
        return await _new_database(integration).probe(ctx)


def _new_database(integration: sdk.IntegrationInfo) -> Database:
    name = integration.name
    settings = sdk.integration_settings(integration, Settings)
    options: dict[str, Any] = {
        "connect_timeout": max(1, round(meta.parse_duration(settings.connect_timeout))),
        "application_name": settings.application_name,
    }
    if settings.statement_timeout is not None:
        millis = round(meta.parse_duration(settings.statement_timeout) * 1000)
        options["options"] = f"-c statement_timeout={millis}"
    if settings.host:
        password = sdk.optional_secret(integration, "password")
        values = {
            "host": settings.host,
            "port": settings.port,
            "dbname": settings.database,
            "user": settings.user,
            "password": password,
            "sslmode": settings.sslmode,
            **options,
        }
        conninfo = pg_conninfo.make_conninfo("", **{k: v for k, v in values.items() if v})
        return Database(name, settings, conninfo, [password or ""])
    dsn = integration.secrets.get("dsn")
    try:
        parsed = pg_conninfo.conninfo_to_dict(dsn)
        conninfo = pg_conninfo.make_conninfo(
            dsn, **{k: v for k, v in options.items() if k not in parsed}
        )
    except psycopg.ProgrammingError:
        # psycopg's message quotes the string, password included.
        raise errors.InvalidSettingsError(
            f"integration {name!r}: secret 'dsn' is not a PostgreSQL connection string "
            "(a postgresql:// URL or key=value pairs)",
            errors.Where(resource=f"Integration/{name}", field="secretRef"),
        ) from None
    return Database(name, settings, conninfo, [dsn, str(parsed.get("password") or "")])
