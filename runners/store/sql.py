"""The run store's SQL, written once with ``?`` placeholders for both databases.

PostgreSQL's driver wants ``%s``: ``postgres.py`` converts (no statement here holds a
literal ``?`` or ``%``). The one dialect difference, flooring a time into a bucket, is a
parameter of ``stats_buckets``. Filters are built by ``where`` from a ``RunFilter``.
"""

from __future__ import annotations

from typing import Any

from autoflow.runners.store import RunFilter

# Statements per ``records.Rows`` field, in the order they run inside one transaction.
WRITES: tuple[tuple[str, str], ...] = (
    (
        "runs",
        "INSERT INTO autoflow_runs (run_id, workflow, namespace, spec_hash, trigger, "
        "started_by, phase, started_at, inputs) VALUES (?, ?, ?, ?, ?, ?, 'Running', ?, ?) "
        "ON CONFLICT (run_id) DO NOTHING",
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


def _window(since: float, until: float, workflow: str | None, p: str) -> tuple[str, list[Any]]:
    text = f"{p}started_at >= ? AND {p}started_at < ?"
    params: list[Any] = [since, until]
    if workflow:
        text += f" AND {p}workflow = ?"
        params.append(workflow)
    return text, params


def stats_rows(since: float, until: float, workflow: str | None) -> tuple[str, list[Any]]:
    """Finished runs in the window as (workflow, phase, duration): figures computed by the
    caller (SQLite has no percentile aggregate; sorting in Python beats window functions)."""
    window, params = _window(since, until, workflow, "")
    sql = (
        "SELECT workflow, phase, duration_ms FROM autoflow_runs "
        f"WHERE {window} AND phase <> 'Running'"
    )
    return sql, params


def stats_step_rows(since: float, until: float, workflow: str | None) -> tuple[str, list[Any]]:
    """Step executions of runs started in the window: (workflow, step, phase, duration)."""
    window, params = _step_window(since, until, workflow)
    sql = (
        "SELECT workflow, step, phase, duration_ms FROM autoflow_steps "
        f"WHERE {window} AND phase IN ('Succeeded', 'Failed', 'Cancelled')"
    )
    return sql, params


def _step_window(since: float, until: float, workflow: str | None) -> tuple[str, list[Any]]:
    window, params = _window(since, until, workflow, "run_")
    return window.replace("run_workflow", "workflow"), params


# PostgreSQL computes the figures itself: percentile_disc is the nearest rank, the same
# definition the SQLite store uses, so both stores give the same numbers.
_PG_FIGURES = (
    "count(*), count(*) FILTER (WHERE phase = 'Succeeded'), "
    "count(*) FILTER (WHERE phase = 'Failed'), "
    "percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms), "
    "percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms)"
)


def stats_runs(since: float, until: float, workflow: str | None) -> tuple[str, list[Any]]:
    """(PostgreSQL) per workflow: count, succeeded, failed, p50, p95."""
    window, params = _window(since, until, workflow, "")
    sql = (
        f"SELECT workflow, {_PG_FIGURES} FROM autoflow_runs "
        f"WHERE {window} AND phase <> 'Running' GROUP BY workflow ORDER BY workflow"
    )
    return sql, params


def stats_steps(since: float, until: float, workflow: str | None) -> tuple[str, list[Any]]:
    """(PostgreSQL) per workflow and step: count, succeeded, failed, p50, p95."""
    window, params = _step_window(since, until, workflow)
    sql = (
        f"SELECT workflow, step, {_PG_FIGURES} FROM autoflow_steps "
        f"WHERE {window} AND phase IN ('Succeeded', 'Failed', 'Cancelled') "
        "GROUP BY workflow, step ORDER BY workflow, step"
    )
    return sql, params


def stats_buckets(
    since: float, until: float, workflow: str | None, width: float, floor: str
) -> tuple[str, list[Any]]:
    """``floor`` is the dialect's ``floor(x)`` to integer, with ``{x}`` for the value."""
    window, params = _window(since, until, workflow, "")
    bucket = floor.format(x="started_at / ?")
    sql = (
        f"SELECT workflow, {bucket} AS b, count(*) FROM autoflow_runs WHERE {window} "
        "GROUP BY workflow, b ORDER BY workflow, b"
    )
    return sql, [width, *params]


def purge(f: RunFilter) -> list[tuple[str, list[Any]]]:
    """Statements deleting the matching runs and everything recorded about them. Unfinished
    runs only when named by id: a purge must not pull the journal from under a live run."""
    text, params = where(f)
    if not f.run_id:
        text += " AND phase <> 'Running'" if text else " WHERE phase <> 'Running'"
    chosen = f"SELECT run_id FROM autoflow_runs{text}"
    statements = [
        (f"DELETE FROM {table} WHERE run_id IN ({chosen})", list(params))
        for table in ("autoflow_attempts", "autoflow_items", "autoflow_steps")
    ]
    statements.append((f"DELETE FROM autoflow_runs{text}", list(params)))
    return statements
