"""The run store's SQL, written once with ``?`` placeholders for both databases.

PostgreSQL's driver wants ``%s``: ``postgres.py`` converts (no statement here holds a
literal ``?`` or ``%``). The one dialect difference, flooring a time into a bucket, is the
``floor`` parameter of the functions that need it (``{x}`` is the value). Filters are built
by ``where`` from a ``RunFilter``.

Rollups (schema version 6): one row per hour (``autoflow_rollups``) or day
(``autoflow_rollups_daily``) of the run's start, namespace, workflow and step ("" for the run
itself): runs started, how many finished, succeeded, failed, and their duration histogram as
one number (``hist``, ``histograms.py``: the ``autoflow_hist*`` functions). The write path
adds to them only when a run starts or a run or step first finishes (guarded by the run not
being there yet, still being ``Running``, the step having no row yet), so a retried write
adds nothing. A deletion marks the hours it touches in ``autoflow_rollup_dirty`` and rebuilds
them, and their days, from the rows that remain (``rebuild``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from autoflow.runners.store import RunFilter, records

HOUR = records.HOUR
DAY = 24 * HOUR
# The rollup tables by grain: (table, its time column).
GRAINS = {
    HOUR: ("autoflow_rollups", "hour"),
    DAY: ("autoflow_rollups_daily", "day"),
}
# The columns an upsert adds up: of a run started, of a run or step finished.
STARTED: tuple[str, ...] = ("started",)
FINISHED: tuple[str, ...] = ("count", "succeeded", "failed", "hist")


def _into(grain: int) -> str:
    table, unit = GRAINS[grain]
    return (
        f"INSERT INTO {table} (namespace, workflow, step, {unit}, started, count, succeeded, "
        "failed, hist)"
    )


def _add(grain: int, columns: tuple[str, ...]) -> str:
    """The upsert's tail adding the new row's ``columns`` to the row already there."""
    table, unit = GRAINS[grain]
    sets = ", ".join(
        f"hist = autoflow_hist_add({table}.hist, excluded.hist)"
        if c == "hist"
        else f"{c} = {table}.{c} + excluded.{c}"
        for c in columns
    )
    return f"ON CONFLICT ({unit}, namespace, workflow, step) DO UPDATE SET {sets}"


def hour(column: str, floor: str) -> str:
    return floor.format(x=f"{column} / {HOUR}")


def day(column: str, floor: str) -> str:
    return floor.format(x=f"{column} / {DAY}")


_OF_START = {HOUR: hour, DAY: day}
# The hour, or its day, of an hour number given as a parameter (hours are positive).
_OF_HOUR = {HOUR: "?", DAY: "CAST(? AS BIGINT) / 24"}


def bucket_case(value: str) -> str:
    """``records.bucket`` in SQL: the number of bounds at or below the value."""
    whens = " ".join(f"WHEN {value} < {b!r} THEN {i}" for i, b in enumerate(records.BOUNDS))
    return (
        f"CASE WHEN {value} IS NULL THEN {records.NO_DURATION} {whens} "
        f"ELSE {len(records.BOUNDS)} END"
    )


def rollup_start(grain: int, ours: str = "true") -> str:
    """A run started in the hour (or day) of the hour number given: namespace, workflow,
    hour, run id (counted only while the run has no row yet; ``ours``: a further guard)."""
    return (
        f"{_into(grain)} SELECT ?, ?, '', {_OF_HOUR[grain]}, 1, 0, 0, 0, 0 "
        f"WHERE NOT EXISTS (SELECT 1 FROM autoflow_runs WHERE run_id = ?) AND {ours} "
        f"{_add(grain, STARTED)}"
    )


@functools.lru_cache(maxsize=4)
def writes(floor: str) -> tuple[tuple[str, str], ...]:
    """Statements per ``records.Rows`` field, in the order they run in one transaction."""
    grains = (HOUR, DAY)
    return (
        (
            "specs",
            "INSERT INTO autoflow_specs (spec_hash, workflow, spec, recorded_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (spec_hash) DO NOTHING",
        ),
        *(("rollup_starts", rollup_start(g)) for g in grains),
        *WRITES[:5],
        *(
            (
                "rollup_steps",
                f"{_into(g)} SELECT r.namespace, r.workflow, ?, "
                f"{_OF_START[g]('r.started_at', floor)}, 0, 1, ?, ?, autoflow_hist(?, 1) "
                "FROM autoflow_runs r WHERE r.run_id = ? AND NOT EXISTS (SELECT 1 FROM "
                f"autoflow_steps s WHERE s.run_id = r.run_id AND s.step = ?) {_add(g, FINISHED)}",
            )
            for g in grains
        ),
        *WRITES[5:7],
        *(
            (
                "rollup_ends",
                f"{_into(g)} SELECT r.namespace, r.workflow, '', "
                f"{_OF_START[g]('r.started_at', floor)}, 0, 1, r.ok, r.failed, "
                f"autoflow_hist({bucket_case('r.d')}, 1) FROM (SELECT namespace, workflow, "
                "started_at, ? AS ok, ? AS failed, (? - started_at) * 1000 AS d "
                "FROM autoflow_runs WHERE run_id = ? AND phase = 'Running') r WHERE true "
                f"{_add(g, FINISHED)}",
            )
            for g in grains
        ),
        WRITES[7],
    )


# PostgreSQL: each rollup kind of a batch in one statement per grain. The batch's rows are
# sent as arrays (``unnest``), filtered by the same guards, summed per rollup key and added
# once: one upsert per key and batch instead of one per run or step (with 100 runs in
# flight, the same hour's rows would otherwise be updated a hundred times per commit).
# The rows are ``records.Rows``'s; columns as the per-row statements take them.
_PG_BATCH_SOURCES = {
    "rollup_starts": (
        "unnest(?::text[], ?::text[], ?::bigint[], ?::text[]) "
        "AS v(namespace, workflow, hour, run_id)",
        "NOT EXISTS (SELECT 1 FROM autoflow_runs r WHERE r.run_id = v.run_id)",
    ),
    "rollup_steps": (
        "unnest(?::text[], ?::int[], ?::int[], ?::int[], ?::text[]) "
        "AS v(step, ok, failed, bucket, run_id) JOIN autoflow_runs r ON r.run_id = v.run_id",
        "NOT EXISTS (SELECT 1 FROM autoflow_steps s WHERE s.run_id = v.run_id AND s.step = v.step)",
    ),
    "rollup_ends": (
        "unnest(?::int[], ?::int[], ?::float8[], ?::text[]) AS v(ok, failed, at, run_id) "
        "JOIN autoflow_runs r ON r.run_id = v.run_id",
        "r.phase = 'Running'",
    ),
}
# Columns of the rows each statement takes (rollup_steps repeats the step: dropped here).
PG_BATCH_COLUMNS = {"rollup_starts": 4, "rollup_steps": 5, "rollup_ends": 4}


@functools.lru_cache(maxsize=4)
def pg_batch_rollups(floor: str) -> dict[str, tuple[str, ...]]:
    """Per rollup field of ``records.Rows``: its statements (hourly, daily), each taking the
    field's columns as arrays."""
    out: dict[str, tuple[str, ...]] = {}
    finished = "count(*), sum(v.ok), sum(v.failed)"
    for field, (source, guard) in _PG_BATCH_SOURCES.items():
        statements = []
        for grain in (HOUR, DAY):
            of_run = _OF_START[grain]("r.started_at", floor)
            if field == "rollup_starts":
                unit = "v.hour" if grain == HOUR else "v.hour / 24"
                what = f"v.namespace, v.workflow, '', {unit}, count(*), 0, 0, 0, 0"
                columns = STARTED
            elif field == "rollup_steps":
                hist = "sum(autoflow_hist(v.bucket, 1))"
                what = f"r.namespace, r.workflow, v.step, {of_run}, 0, {finished}, {hist}"
                columns = FINISHED
            else:
                hist = f"sum(autoflow_hist({bucket_case('((v.at - r.started_at) * 1000)')}, 1))"
                what = f"r.namespace, r.workflow, '', {of_run}, 0, {finished}, {hist}"
                columns = FINISHED
            statements.append(
                f"{_into(grain)} SELECT {what} FROM {source} WHERE {guard} GROUP BY 1, 2, 3, 4 "
                f"{_add(grain, columns)}"
            )
        out[field] = tuple(statements)
    return out


# The statements without rollups (see ``writes``).
WRITES: tuple[tuple[str, str], ...] = (
    (
        "runs",
        "INSERT INTO autoflow_runs (run_id, workflow, namespace, spec_hash, trigger, "
        "started_by, phase, started_at, inputs, subject) "
        "VALUES (?, ?, ?, ?, ?, ?, 'Running', ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
    ),
    (
        "starts",
        "INSERT INTO autoflow_attempts (run_id, step, item, attempt, outcome, started_at) "
        "VALUES (?, ?, ?, ?, 'Running', ?) ON CONFLICT (run_id, step, item, attempt) DO UPDATE "
        "SET outcome = 'Running', started_at = excluded.started_at, finished_at = NULL, "
        "error = NULL",
    ),
    (
        "retries",
        "UPDATE autoflow_attempts SET outcome = 'Failed', error = ?, finished_at = ? "
        "WHERE run_id = ? AND step = ? AND item = ? AND attempt = ?",
    ),
    (
        "items",
        "INSERT INTO autoflow_items (run_id, step, idx, output) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (run_id, step, idx) DO UPDATE SET output = excluded.output",
    ),
    (
        "items_done",
        "UPDATE autoflow_attempts SET outcome = 'Succeeded', finished_at = ? "
        "WHERE run_id = ? AND step = ? AND item = ? AND outcome = 'Running'",
    ),
    (
        "steps",
        # workflow and run_started_at come from the run's row (written first, in the same
        # or an earlier transaction); "WHERE true" lets SQLite parse the upsert after SELECT.
        "INSERT INTO autoflow_steps (run_id, step, phase, output, error, attempts, started_at, "
        "finished_at, duration_ms, message, workflow, run_started_at) "
        "SELECT r.run_id, ?, ?, ?, ?, ?, ?, ?, ?, ?, r.workflow, r.started_at "
        "FROM autoflow_runs r WHERE r.run_id = ? AND true "
        "ON CONFLICT (run_id, step) DO UPDATE SET phase = excluded.phase, "
        "output = excluded.output, error = excluded.error, attempts = excluded.attempts, "
        "started_at = excluded.started_at, finished_at = excluded.finished_at, "
        "duration_ms = excluded.duration_ms, message = excluded.message",
    ),
    (
        "steps_done",
        "UPDATE autoflow_attempts SET outcome = ?, error = ?, finished_at = ? "
        "WHERE run_id = ? AND step = ? AND outcome = 'Running'",
    ),
    (
        "ends",
        "UPDATE autoflow_runs SET phase = ?, finished_at = ?, "
        "duration_ms = (? - started_at) * 1000, error = ?, outputs = ? WHERE run_id = ?",
    ),
)

SUMMARY = (
    "run_id, workflow, namespace, phase, trigger, started_by, spec_hash, started_at, "
    "finished_at, duration_ms, error"
)

JOURNAL_RUN = (
    "SELECT run_id, workflow, namespace, spec_hash, trigger, started_by, started_at, inputs, "
    "phase, finished_at, error, outputs FROM autoflow_runs WHERE run_id = ?"
)
JOURNAL_ATTEMPTS = (
    "SELECT step, item, attempt, outcome, error FROM autoflow_attempts WHERE run_id = ? "
    "ORDER BY step, item, attempt"
)
JOURNAL_ITEMS = "SELECT step, idx, output FROM autoflow_items WHERE run_id = ? ORDER BY step, idx"
JOURNAL_STEPS = (
    "SELECT step, phase, output, error, attempts, started_at, finished_at, message "
    "FROM autoflow_steps WHERE run_id = ? ORDER BY started_at, step"
)

GET_RUN = f"SELECT {SUMMARY}, inputs, outputs FROM autoflow_runs WHERE run_id = ?"
GET_STEPS = (
    "SELECT step, phase, output, error, attempts, started_at, finished_at, duration_ms, "
    "message FROM autoflow_steps WHERE run_id = ? ORDER BY started_at, step"
)
GET_ATTEMPTS = (
    "SELECT step, item, attempt, outcome, started_at, finished_at, error "
    "FROM autoflow_attempts WHERE run_id = ? ORDER BY step, item, attempt"
)

UNFINISHED = (
    "SELECT run_id FROM autoflow_runs WHERE phase = 'Running' AND workflow = ? "
    "AND namespace = ? AND (trigger = ? OR ? = '') ORDER BY started_at DESC, run_id DESC LIMIT 1"
)

SCHEMA_VERSION = "SELECT version, autoflow_version FROM autoflow_schema ORDER BY version DESC"
RECORD_VERSION = (
    "INSERT INTO autoflow_schema (version, autoflow_version, applied_at) VALUES (?, ?, ?)"
)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def where(f: RunFilter, prefix: str = "") -> tuple[str, list[Any]]:
    """``WHERE ...`` (or "") and its parameters; ``prefix`` qualifies columns (``r.``)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("workflow", f.workflow),
        ("namespace", f.namespace),
        ("phase", f.phase),
        ("trigger", f.trigger),
        ("run_id", f.run_id),
    ):
        if value:
            clauses.append(f"{prefix}{column} = ?")
            params.append(value)
    if f.since is not None:
        clauses.append(f"{prefix}started_at >= ?")
        params.append(f.since)
    if f.until is not None:
        clauses.append(f"{prefix}started_at < ?")
        params.append(f.until)
    if f.error:
        clauses.append(f"lower({prefix}error) LIKE ? ESCAPE '\\'")
        params.append(_like(f.error))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def list_runs(f: RunFilter, limit: int, after: tuple[float, str] | None) -> tuple[str, list[Any]]:
    text, params = where(f)
    if after is not None:
        keyset = "(started_at < ? OR (started_at = ? AND run_id < ?))"
        text = f"{text} AND {keyset}" if text else f" WHERE {keyset}"
        params += [after[0], after[0], after[1]]
    sql = f"SELECT {SUMMARY} FROM autoflow_runs{text} ORDER BY started_at DESC, run_id DESC LIMIT ?"
    return sql, [*params, limit]


Ranges = list[tuple[float, float]]


def _window(
    ranges: Ranges, namespace: str | None, workflow: str | None, p: str
) -> tuple[str, list[Any]]:
    text, params = _ranges(f"{p}started_at", ranges)
    if namespace is not None:
        text += f" AND {p}namespace = ?"
        params.append(namespace)
    if workflow:
        text += f" AND {p}workflow = ?"
        params.append(workflow)
    return text, params


def stats_rows(
    ranges: Ranges, namespace: str | None, workflow: str | None
) -> tuple[str, list[Any]]:
    """Finished runs started in ``ranges`` ([since, until) each) as (namespace, workflow,
    phase, duration): figures computed by the caller (SQLite has no percentile aggregate;
    sorting in Python beats window functions)."""
    window, params = _window(ranges, namespace, workflow, "")
    sql = (
        "SELECT namespace, workflow, phase, duration_ms FROM autoflow_runs "
        f"WHERE {window} AND phase NOT IN ('Running', 'Pending')"
    )
    return sql, params


def stats_step_rows(
    ranges: Ranges, namespace: str | None, workflow: str | None
) -> tuple[str, list[Any]]:
    """Step executions of runs started in ``ranges``: (namespace, workflow, step, phase,
    duration). Steps carry no namespace: it is their run's (by its key)."""
    window, params = _window(ranges, None, workflow, "s.run_")
    window = window.replace("s.run_workflow", "s.workflow")
    if namespace is not None:
        window += " AND r.namespace = ?"
        params.append(namespace)
    sql = (
        "SELECT r.namespace, s.workflow, s.step, s.phase, s.duration_ms FROM autoflow_steps s "
        f"JOIN autoflow_runs r ON r.run_id = s.run_id WHERE {window} "
        "AND s.phase IN ('Succeeded', 'Failed', 'Cancelled')"
    )
    return sql, params


def stats_buckets(
    ranges: Ranges,
    namespace: str | None,
    workflow: str | None,
    width: float,
    floor: str,
) -> tuple[str, list[Any]]:
    """Runs started per ``width`` seconds in ``ranges``: (namespace, workflow, bucket, runs).
    ``floor`` is the dialect's ``floor(x)`` to integer, with ``{x}`` for the value."""
    window, params = _window(ranges, namespace, workflow, "")
    bucket = floor.format(x="started_at / ?")
    sql = (
        f"SELECT namespace, workflow, {bucket} AS b, count(*) FROM autoflow_runs "
        f"WHERE {window} GROUP BY namespace, workflow, b"
    )
    return sql, [width, *params]


def _ranges(column: str, ranges: Sequence[tuple[float, float]]) -> tuple[str, list[Any]]:
    text = " OR ".join(f"({column} >= ? AND {column} < ?)" for _ in ranges)
    return (f"({text})" if len(ranges) > 1 else text), [v for r in ranges for v in r]


def _of(namespace: str | None, workflow: str | None) -> tuple[str, list[Any]]:
    text, params = "", []
    if namespace is not None:
        text, params = " AND namespace = ?", [namespace]
    if workflow:
        text, params = text + " AND workflow = ?", [*params, workflow]
    return text, params


# Whole hours and days of a window, per grain: [(grain, [(first, end), ...]), ...].
Parts = list[tuple[int, list[tuple[int, int]]]]


def rollup_figures(
    parts: Parts, namespace: str | None, workflow: str | None
) -> tuple[str, list[Any]]:
    """Finished runs and steps of the whole hours and days in ``parts``: (namespace,
    workflow, step, count, succeeded, failed, histogram). It sums a row per (namespace,
    workflow, step) and hour or day: a day of 10 workflows of 2 steps is 30 rows."""
    selects, params = [], []
    for grain, ranges in parts:
        table, column = GRAINS[grain]
        window, more = _ranges(column, ranges)
        extra, most = _of(namespace, workflow)
        selects.append(
            "SELECT namespace, workflow, step, count, succeeded, failed, hist "
            f"FROM {table} WHERE {window}{extra} AND count > 0"
        )
        params += [*more, *most]
    sql = (
        "SELECT namespace, workflow, step, sum(count), sum(succeeded), sum(failed), "
        f"autoflow_hist_sum(hist) FROM ({' UNION ALL '.join(selects)}) x "
        "GROUP BY namespace, workflow, step"
    )
    return sql, params


def rollup_buckets(
    parts: Parts, namespace: str | None, workflow: str | None, width: int, floor: str
) -> tuple[str, list[Any]]:
    """Runs started per ``width`` seconds (a whole number of each grain in ``parts``) over
    their hours and days: (namespace, workflow, bucket, runs)."""
    selects, params = [], []
    for grain, ranges in parts:
        table, column = GRAINS[grain]
        window, more = _ranges(column, ranges)
        extra, most = _of(namespace, workflow)
        b = floor.format(x=f"{column} * {grain} / ?")
        selects.append(
            f"SELECT namespace, workflow, {b} AS b, started FROM {table} "
            f"WHERE {window}{extra} AND step = '' AND started > 0"
        )
        params += [width, *more, *most]
    sql = (
        f"SELECT namespace, workflow, b, sum(started) FROM ({' UNION ALL '.join(selects)}) x "
        "GROUP BY namespace, workflow, b"
    )
    return sql, params


# -- deleting runs --------------------------------------------------------------------------

_CHILDREN = ("autoflow_attempts", "autoflow_items", "autoflow_steps")


def purge_where(f: RunFilter) -> tuple[str, list[Any]]:
    """The runs a purge deletes. Unfinished runs only when named by id: a purge must not
    pull the journal from under a live run."""
    text, params = where(f)
    if not f.run_id:
        text += (
            " AND phase NOT IN ('Running', 'Pending')"
            if text
            else " WHERE phase NOT IN ('Running', 'Pending')"
        )
    return text, params


def delete_runs(
    chosen: str, params: list[Any], floor: str, audit: tuple[Any, ...] | None
) -> list[tuple[str, list[Any]]]:
    """Statements deleting the runs ``FROM autoflow_runs{chosen}`` selects and everything
    recorded about them, marking their hours for ``rebuild``; with ``audit`` (at, action,
    actor, what, autoflow version, record even when nothing matched) the audit row first."""
    statements: list[tuple[str, list[Any]]] = []
    if audit is not None:
        *fields, always = audit
        having = "" if always else " WHERE n > 0"
        statements.append(
            (
                "INSERT INTO autoflow_audit (at, action, actor, what, autoflow_version, count) "
                "SELECT a, b, c, d, e, n FROM (SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, "
                f"count(*) AS n FROM autoflow_runs{chosen}) x{having}",
                [*fields, *params],
            )
        )
    statements.append(
        (
            "INSERT INTO autoflow_rollup_dirty (namespace, workflow, hour) SELECT DISTINCT "
            f"namespace, workflow, {hour('started_at', floor)} FROM autoflow_runs{chosen} "
            "ON CONFLICT DO NOTHING",
            list(params),
        )
    )
    ids = f"SELECT run_id FROM autoflow_runs{chosen}"
    statements += [
        (f"DELETE FROM {table} WHERE run_id IN ({ids})", list(params)) for table in _CHILDREN
    ]
    # A delivery's row names its run: it goes with it (a redelivery after the purge starts
    # a new run rather than answering with one that is gone).
    statements.append((f"DELETE FROM autoflow_deliveries WHERE run_id IN ({ids})", list(params)))
    statements.append((f"DELETE FROM autoflow_runs{chosen}", list(params)))
    return statements


def _in_dirty_hour(alias: str, column: str, floor: str, namespace: str) -> str:
    # The range lets the (workflow, time) index find the rows; the hour test is exact.
    return (
        f"JOIN autoflow_rollup_dirty d ON {namespace} = d.namespace "
        f"AND {alias}.workflow = d.workflow "
        f"AND {alias}.{column} >= (d.hour - 1) * {HOUR} "
        f"AND {alias}.{column} < (d.hour + 2) * {HOUR} "
        f"AND {hour(f'{alias}.{column}', floor)} = d.hour"
    )


def rebuild(floor: str) -> list[tuple[str, list[Any]]]:
    """Statements recomputing the rollups of the hours in ``autoflow_rollup_dirty`` from the
    rows that remain (and of their days from those hours), then clearing the marks. The rows
    are counted per duration bucket first, then each group's buckets packed into one
    histogram (``autoflow_hist_sum``)."""
    finished = "CASE WHEN r.phase NOT IN ('Running', 'Pending') THEN 1 ELSE 0 END"
    ok = "sum(CASE WHEN {p}phase = 'Succeeded' THEN 1 ELSE 0 END)"
    failed = "sum(CASE WHEN {p}phase = 'Failed' THEN 1 ELSE 0 END)"
    steps_done = ", ".join(f"'{p}'" for p in records.FINISHED_STEP)
    packed = (
        "sum(started), sum(n), sum(ok), sum(failed), autoflow_hist_sum(autoflow_hist(b, n)) "
        "FROM ({}) x GROUP BY 1, 2, 3, 4"
    )
    return [
        (
            # "hour IN" lets the key find the rows; the EXISTS matches the workflow too.
            "DELETE FROM autoflow_rollups WHERE hour IN (SELECT hour FROM autoflow_rollup_dirty) "
            "AND EXISTS (SELECT 1 FROM autoflow_rollup_dirty d "
            "WHERE d.namespace = autoflow_rollups.namespace "
            "AND d.workflow = autoflow_rollups.workflow AND d.hour = autoflow_rollups.hour)",
            [],
        ),
        (
            # Runs: started (every one), finished (not Running or Pending) and durations.
            f"{_into(HOUR)} SELECT ns, wf, step, h, "
            + packed.format(
                f"SELECT r.namespace AS ns, r.workflow AS wf, '' AS step, d.hour AS h, "
                f"{bucket_case('r.duration_ms')} AS b, count(*) AS started, sum({finished}) "
                f"AS n, {ok.format(p='r.')} AS ok, {failed.format(p='r.')} AS failed "
                f"FROM autoflow_runs r {_in_dirty_hour('r', 'started_at', floor, 'r.namespace')} "
                "GROUP BY 1, 2, 3, 4, 5"
            ),
            [],
        ),
        (
            # A step's namespace is its run's.
            f"{_into(HOUR)} SELECT ns, wf, step, h, "
            + packed.format(
                f"SELECT r.namespace AS ns, s.workflow AS wf, s.step AS step, d.hour AS h, "
                f"{bucket_case('s.duration_ms')} AS b, 0 AS started, count(*) AS n, "
                f"{ok.format(p='s.')} AS ok, {failed.format(p='s.')} AS failed "
                "FROM autoflow_steps s JOIN autoflow_runs r ON r.run_id = s.run_id "
                f"{_in_dirty_hour('s', 'run_started_at', floor, 'r.namespace')} "
                f"WHERE s.phase IN ({steps_done}) GROUP BY 1, 2, 3, 4, 5"
            ),
            [],
        ),
        *REBUILD_DAILY,
        ("DELETE FROM autoflow_rollup_dirty", []),
    ]


# The days of the dirty hours, again from the hourly rollups just rebuilt.
REBUILD_DAILY: tuple[tuple[str, list[Any]], ...] = (
    (
        "DELETE FROM autoflow_rollups_daily WHERE day IN (SELECT hour / 24 FROM "
        "autoflow_rollup_dirty) AND EXISTS (SELECT 1 FROM autoflow_rollup_dirty d WHERE "
        "d.namespace = autoflow_rollups_daily.namespace "
        "AND d.workflow = autoflow_rollups_daily.workflow "
        "AND d.hour / 24 = autoflow_rollups_daily.day)",
        [],
    ),
    (
        f"{_into(DAY)} SELECT h.namespace, h.workflow, h.step, d.day, sum(h.started), "
        "sum(h.count), sum(h.succeeded), sum(h.failed), autoflow_hist_sum(h.hist) "
        "FROM (SELECT DISTINCT namespace, workflow, hour / 24 AS day FROM "
        "autoflow_rollup_dirty) d JOIN autoflow_rollups h ON h.namespace = d.namespace "
        "AND h.workflow = d.workflow AND h.hour >= d.day * 24 AND h.hour < d.day * 24 + 24 "
        "GROUP BY 1, 2, 3, 4",
        [],
    ),
)


def rebuild_all(floor: str) -> list[tuple[str, list[Any]]]:
    """Every hour's rollups, and every day's, from the runs and steps there are (schema
    version 6: a row per namespace, workflow, step and hour or day, with its histogram)."""
    mark = (
        "INSERT INTO autoflow_rollup_dirty (namespace, workflow, hour) SELECT DISTINCT "
        f"namespace, workflow, {hour('started_at', floor)} FROM autoflow_runs WHERE true "
        "ON CONFLICT DO NOTHING"
    )
    return [(mark, []), *rebuild(floor)]


# -- retention, audit, versions -------------------------------------------------------------

NEWEST_PER_WORKFLOW = (
    "SELECT r.namespace, r.workflow, r.spec_hash FROM autoflow_runs r JOIN (SELECT namespace, "
    "workflow, max(started_at) AS newest FROM autoflow_runs GROUP BY namespace, workflow) n "
    "ON r.namespace = n.namespace AND r.workflow = n.workflow AND r.started_at = n.newest"
)
NTH_NEWEST_FINISHED = (
    "SELECT started_at, run_id FROM autoflow_runs WHERE namespace = ? AND workflow = ? "
    "AND phase NOT IN ('Running', 'Pending') ORDER BY started_at DESC, run_id DESC LIMIT 1 OFFSET ?"
)
ACTIVITY = (
    "SELECT r.namespace, r.workflow, r.run_id, r.phase, r.started_at, n.runs, n.failed "
    "FROM autoflow_runs r JOIN (SELECT namespace, workflow, max(started_at) AS newest, "
    "count(*) AS runs, sum(CASE WHEN phase = 'Failed' THEN 1 ELSE 0 END) AS failed "
    "FROM autoflow_runs WHERE started_at >= ? GROUP BY namespace, workflow) n "
    "ON r.namespace = n.namespace AND r.workflow = n.workflow AND r.started_at = n.newest "
    "WHERE r.started_at >= ?"
)
AUDIT = "SELECT at, action, actor, what, count FROM autoflow_audit ORDER BY at DESC LIMIT ?"
GET_SPEC = "SELECT spec, workflow FROM autoflow_specs WHERE spec_hash = ?"
VERSIONS = (
    "SELECT r.spec_hash, count(*), min(r.started_at), max(r.started_at), "
    "max(CASE WHEN s.spec_hash IS NULL THEN 0 ELSE 1 END) FROM autoflow_runs r "
    "LEFT JOIN autoflow_specs s ON s.spec_hash = r.spec_hash WHERE r.workflow = ? "
    "AND (r.namespace = ? OR ? = '') GROUP BY r.spec_hash ORDER BY 4 DESC"
)
