"""Versioned schema migrations of the run store, one list for both databases.

The DDL is the common subset of SQLite and PostgreSQL (``DOUBLE PRECISION`` is REAL in
SQLite; JSON payloads are TEXT in both: written once, read whole, never queried inside, and
TEXT costs no parsing on the write path). A migration is never edited once released: a
change is a new version appended here. ``autoflow_schema`` holds one row per applied
version with the Autoflow release that applied it, so an older Autoflow meeting a newer
database can say which release it needs.

Times are epoch seconds (the engine's clock), durations milliseconds.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    version: int
    about: str
    statements: tuple[str, ...]
    # Then compute the rollups from the rows already there (``sql.rebuild_all``: the
    # dialect's floor is the store's). Only the last such migration of those pending does
    # (``rebuild_at``): the statements are this release's, for the latest rollup tables.
    rebuild_rollups: bool = False


SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS autoflow_schema (
    version INTEGER PRIMARY KEY,
    autoflow_version TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)"""

# The one dialect-specific clause: a comment to PostgreSQL, uncommented by the SQLite store
# (``sqlite_dialect``) so the table is stored in its key's order.
SQLITE_CLUSTERED = " /*sqlite WITHOUT ROWID */"


# A statement for PostgreSQL only (SQLite runs a no-op instead).
POSTGRES_ONLY = "/*postgres only*/ "

# A rollup's duration histogram (``histograms.py``): a number in PostgreSQL, bytes in SQLite.
HISTOGRAM = "NUMERIC /*sqlite BLOB*/"


def sqlite_dialect(statement: str) -> str:
    if statement.startswith(POSTGRES_ONLY):
        return "SELECT 1"
    return statement.replace(SQLITE_CLUSTERED, " WITHOUT ROWID").replace(HISTOGRAM, "BLOB")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, step attempts, foreach items and steps",
        (
            """CREATE TABLE autoflow_runs (
                run_id TEXT PRIMARY KEY,
                workflow TEXT NOT NULL,
                namespace TEXT NOT NULL,
                spec_hash TEXT NOT NULL,
                trigger TEXT NOT NULL,
                started_by TEXT NOT NULL,
                phase TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                finished_at DOUBLE PRECISION,
                duration_ms DOUBLE PRECISION,
                error TEXT,
                inputs TEXT,
                outputs TEXT
            )""",
            # runs list (newest first, keyset paging), per workflow, per phase (and the
            # unfinished run to resume); stats read a time window from a covering index
            # (rows are stored in run id order, so a lookup per row would be random I/O).
            "CREATE INDEX autoflow_runs_started ON autoflow_runs (started_at, run_id)",
            "CREATE INDEX autoflow_runs_stats ON autoflow_runs "
            "(started_at, workflow, phase, duration_ms)",
            "CREATE INDEX autoflow_runs_workflow ON autoflow_runs (workflow, started_at)",
            "CREATE INDEX autoflow_runs_phase ON autoflow_runs (phase, started_at)",
            """CREATE TABLE autoflow_attempts (
                run_id TEXT NOT NULL,
                step TEXT NOT NULL,
                item INTEGER NOT NULL,
                attempt INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION,
                error TEXT,
                PRIMARY KEY (run_id, step, item, attempt)
            )""",
            """CREATE TABLE autoflow_items (
                run_id TEXT NOT NULL,
                step TEXT NOT NULL,
                idx INTEGER NOT NULL,
                output TEXT,
                PRIMARY KEY (run_id, step, idx)
            )""",
            """CREATE TABLE autoflow_steps (
                run_id TEXT NOT NULL,
                step TEXT NOT NULL,
                phase TEXT NOT NULL,
                output TEXT,
                error TEXT,
                attempts INTEGER NOT NULL,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION,
                duration_ms DOUBLE PRECISION,
                message TEXT NOT NULL,
                workflow TEXT NOT NULL,
                run_started_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (run_id, step)
            )""",
            # Step stats by the run's start time without joining runs: workflow and the
            # run's start are copied onto each step as it is written.
            "CREATE INDEX autoflow_steps_stats ON autoflow_steps "
            "(run_started_at, workflow, step, phase, duration_ms)",
        ),
    ),
    Migration(
        2,
        "data subjects, specs per hash, the audit of deletions, hourly rollups for stats",
        (
            # The keyed hash of the run's data subject (never the value): erase finds by it.
            "ALTER TABLE autoflow_runs ADD COLUMN subject TEXT",
            "CREATE INDEX autoflow_runs_subject ON autoflow_runs (subject)",
            """CREATE TABLE autoflow_specs (
                spec_hash TEXT PRIMARY KEY,
                workflow TEXT NOT NULL,
                spec TEXT NOT NULL,
                recorded_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE autoflow_audit (
                at DOUBLE PRECISION NOT NULL,
                action TEXT NOT NULL,
                actor TEXT NOT NULL,
                what TEXT NOT NULL,
                count INTEGER NOT NULL,
                autoflow_version TEXT NOT NULL
            )""",
            "CREATE INDEX autoflow_audit_at ON autoflow_audit (at)",
            # hour: floor(run start / 3600); step '' is the run itself; bucket: the duration
            # histogram's (records.BOUNDS), -1 runs started, -2 finished without a duration.
            """CREATE TABLE autoflow_rollups (
                workflow TEXT NOT NULL,
                step TEXT NOT NULL,
                hour BIGINT NOT NULL,
                bucket INTEGER NOT NULL,
                count INTEGER NOT NULL,
                succeeded INTEGER NOT NULL,
                failed INTEGER NOT NULL,
                PRIMARY KEY (hour, workflow, step, bucket)
            )"""
            + SQLITE_CLUSTERED,
            # No other index: stats read a range of hours through the key, and an update of
            # the counts touches no index (PostgreSQL can update in place: HOT; SQLite keeps
            # the rows in the key's order, counts included).
            # Hours a deletion touched, rebuilt in the same transaction (empty between).
            """CREATE TABLE autoflow_rollup_dirty (
                workflow TEXT NOT NULL,
                hour BIGINT NOT NULL,
                PRIMARY KEY (workflow, hour)
            )""",
        ),
        rebuild_rollups=True,
    ),
    Migration(
        3,
        "daily rollups for stats over weeks and months",
        (
            # day: floor(run start / 86400) = hour / 24; otherwise autoflow_rollups' columns.
            # Written beside the hourly rows by the same statements; a deletion rebuilds the
            # days of the hours it touched from those hours (``sql.REBUILD_DAILY``). Keyed
            # workflow first, day last: SQLite sums a window's days per (workflow, step,
            # bucket) in key order, with no sort (its sort of text keys cost 3x more than
            # reading the rows outside the window and skipping them).
            """CREATE TABLE autoflow_rollups_daily (
                workflow TEXT NOT NULL,
                step TEXT NOT NULL,
                day BIGINT NOT NULL,
                bucket INTEGER NOT NULL,
                count INTEGER NOT NULL,
                succeeded INTEGER NOT NULL,
                failed INTEGER NOT NULL,
                PRIMARY KEY (workflow, step, bucket, day)
            )"""
            + SQLITE_CLUSTERED,
            # PostgreSQL reads a window's days through this (then sums them in a hash
            # aggregate; measured 3.5x faster on 100,000 runs than scanning the table);
            # SQLite scans its clustered table in key order instead (no sort).
            POSTGRES_ONLY
            + "CREATE INDEX autoflow_rollups_daily_day ON autoflow_rollups_daily (day)",
            # The days there are so far, from the hourly rollups.
            "INSERT INTO autoflow_rollups_daily (workflow, step, day, bucket, count, succeeded, "
            "failed) SELECT workflow, step, hour / 24, bucket, sum(count), sum(succeeded), "
            "sum(failed) FROM autoflow_rollups GROUP BY workflow, step, hour / 24, bucket",
        ),
    ),
    Migration(
        4,
        "deliveries: one run per webhook or event delivery (the runner pool's de-duplication)",
        (
            # dedupe_key: the starter's (trigger key, delivery id); run_id: the first
            # delivery's run, which every redelivery answers with.
            """CREATE TABLE autoflow_deliveries (
                dedupe_key TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX autoflow_deliveries_at ON autoflow_deliveries (at)",
        ),
    ),
    Migration(
        5,
        "rollups per namespace: two Workflows of one name in two namespaces are two rows",
        (
            # The key changes, so the tables are made again and refilled from the runs
            # (``rebuild_rollups``); the namespace is the run's.
            "DROP TABLE autoflow_rollups",
            "DROP TABLE autoflow_rollups_daily",
            "DROP TABLE autoflow_rollup_dirty",
            """CREATE TABLE autoflow_rollups (
                namespace TEXT NOT NULL,
                workflow TEXT NOT NULL,
                step TEXT NOT NULL,
                hour BIGINT NOT NULL,
                bucket INTEGER NOT NULL,
                count INTEGER NOT NULL,
                succeeded INTEGER NOT NULL,
                failed INTEGER NOT NULL,
                PRIMARY KEY (hour, namespace, workflow, step, bucket)
            )"""
            + SQLITE_CLUSTERED,
            # As in version 3: namespace and workflow first, day last (sums in key order).
            """CREATE TABLE autoflow_rollups_daily (
                namespace TEXT NOT NULL,
                workflow TEXT NOT NULL,
                step TEXT NOT NULL,
                day BIGINT NOT NULL,
                bucket INTEGER NOT NULL,
                count INTEGER NOT NULL,
                succeeded INTEGER NOT NULL,
                failed INTEGER NOT NULL,
                PRIMARY KEY (namespace, workflow, step, bucket, day)
            )"""
            + SQLITE_CLUSTERED,
            POSTGRES_ONLY
            + "CREATE INDEX autoflow_rollups_daily_day ON autoflow_rollups_daily (day)",
            """CREATE TABLE autoflow_rollup_dirty (
                namespace TEXT NOT NULL,
                workflow TEXT NOT NULL,
                hour BIGINT NOT NULL,
                PRIMARY KEY (namespace, workflow, hour)
            )""",
        ),
        rebuild_rollups=True,
    ),
    Migration(
        6,
        "one rollup row per hour (or day), namespace, workflow and step, with its whole "
        "duration histogram",
        (
            # Stats summed one row per duration bucket (about 40 per workflow, step and day):
            # 36,000 rows for 30 days of 10 workflows, 10-25 ms of SQLite's aggregate alone.
            # Now the row carries the histogram as one number (``histograms.py``) that the
            # database adds up; the tables are made again and refilled from the runs.
            "DROP TABLE autoflow_rollups",
            "DROP TABLE autoflow_rollups_daily",
            # PostgreSQL: the histogram in base 10^18 (SQLite defines these in Python).
            POSTGRES_ONLY
            + "CREATE FUNCTION autoflow_hist(bucket integer, n bigint) RETURNS numeric "
            "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE WHEN bucket < 0 OR n <= 0 "
            "THEN 0 ELSE n * CAST('1e' || (18 * bucket) AS numeric) END $$",
            POSTGRES_ONLY
            + "CREATE FUNCTION autoflow_hist_add(a numeric, b numeric) RETURNS numeric "
            "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT a + b $$",
            POSTGRES_ONLY + "CREATE AGGREGATE autoflow_hist_sum(numeric) "
            "(SFUNC = numeric_add, STYPE = numeric, INITCOND = '0')",
            # step '' is the run itself; started: runs started (0 on a step's row); count:
            # finished, of which succeeded, failed; hist: their durations.
            f"""CREATE TABLE autoflow_rollups (
                namespace TEXT NOT NULL,
                workflow TEXT NOT NULL,
                step TEXT NOT NULL,
                hour BIGINT NOT NULL,
                started BIGINT NOT NULL,
                count BIGINT NOT NULL,
                succeeded BIGINT NOT NULL,
                failed BIGINT NOT NULL,
                hist {HISTOGRAM} NOT NULL,
                PRIMARY KEY (hour, namespace, workflow, step)
            )"""
            + SQLITE_CLUSTERED,
            # Keyed day first like the hours: a window's days are one range of the key (a
            # few hundred rows to group), whatever the history kept around them.
            f"""CREATE TABLE autoflow_rollups_daily (
                namespace TEXT NOT NULL,
                workflow TEXT NOT NULL,
                step TEXT NOT NULL,
                day BIGINT NOT NULL,
                started BIGINT NOT NULL,
                count BIGINT NOT NULL,
                succeeded BIGINT NOT NULL,
                failed BIGINT NOT NULL,
                hist {HISTOGRAM} NOT NULL,
                PRIMARY KEY (day, namespace, workflow, step)
            )"""
            + SQLITE_CLUSTERED,
        ),
        rebuild_rollups=True,
    ),
)

LATEST = MIGRATIONS[-1].version


def rebuild_at(steps: list[Migration]) -> int | None:
    """The version after which the rollups are rebuilt: the last of ``steps`` that asks.

    ``sql.rebuild_all`` is written for the latest rollup tables; an earlier migration's
    rollups would be replaced by the later one's anyway (version 5 re-keys them)."""
    asking = [m.version for m in steps if m.rebuild_rollups]
    return asking[-1] if asking else None


def pending(current: int) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version > current]


def too_new(where: str, found: int, by: str, this_release: str) -> str:
    return (
        f"the run store at {where} has schema version {found}, written by Autoflow {by}; "
        f"this Autoflow ({this_release}) knows schema versions up to {LATEST}: use Autoflow "
        f"{by} or newer"
    )


def too_old(where: str, found: int) -> str:
    return (
        f"the run store at {where} has schema version {found}, this Autoflow needs {LATEST}: "
        f"run `autoflow store migrate --store URL` first"
    )
