"""The run store: durable history of runs and their steps, and a journal a run can resume from.

One interface (``Store``), two implementations behind one contract test suite: SQLite
(``sqlite.py``, stdlib, WAL; the embedded default) and PostgreSQL (``postgres.py``, psycopg 3
async pool; in a cluster). ``open_store(url)`` picks one by the URL's scheme::

    sqlite:///runs.db                    relative to the working directory
    sqlite:////var/lib/autoflow/runs.db  absolute (four slashes, as SQLAlchemy spells it)
    postgresql://user:pw@host:5432/db    any libpq connection URL (postgres:// too)

How data flows in: the engine appends journal records (``runners.engine.journal``: ``run``,
``start``, ``retry``, ``item``, ``step``, ``end``) and ``Store.record`` writes them, group
committed with every other run's records that arrived meanwhile (one transaction for many
runs). ``records.py`` turns records into table rows (pure), payloads bounded at ``max_payload``
bytes of JSON. How data flows out: ``journal`` rebuilds a run's records for resume
(``store/journal.py`` is the ``Journal`` over a store), ``list_runs``/``get_run``/``stats``
answer the CLI and the web UI (from daily rollups for whole days, hourly ones for whole hours),
``purge`` deletes by a filter (never without one), ``purge_expired`` applies retention,
``erase`` removes every run of a data subject; each deletion leaves an ``audit`` record
(``retention.retention_loop`` calls ``purge_expired`` periodically). ``versions`` and
``get_spec`` give the Workflow specs runs ran (stored once per spec hash).

Hooks for whoever starts a run (``store/journal.py``): the run header may carry
``subject`` (the value of the Workflow's ``dataSubject`` expression; stored only as an
HMAC-SHA256 keyed with ``AUTOFLOW_STORE_SUBJECT_KEY``) and ``spec`` (the Workflow spec as
applied, ``spec.dump()``, whose hash is ``specHash``). ``StoreJournal(context=...)`` adds
both to the header the engine writes.

Errors (part of Autoflow's one tree, ``crds.errors``)::

    AutoflowError
    └── StoreError              the store refused or cannot be used as configured
        ├── StoreUnavailable    cannot be reached now (retried by the store journal)
        └── SchemaMismatch      migrated by a newer Autoflow, or not migrated yet

Every message names the store by its URL without the password (``display_url``).
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import json
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from autoflow.crds import errors

DEFAULT_MAX_PAYLOAD = 1024 * 1024  # bytes of JSON per stored value; the CR keeps 16 KiB
RUNNING = "Running"
SUBJECT_KEY_ENV = "AUTOFLOW_STORE_SUBJECT_KEY"
DAY = 86400.0


class StoreError(errors.AutoflowError):
    """The run store refused an operation or cannot be used as configured."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now; a write may succeed when tried again."""


class SchemaMismatch(StoreError):
    """The database's schema version is not the one this Autoflow writes."""


def display_url(url: str) -> str:
    """The URL as it may appear in messages and logs: the password replaced by ``***``
    (in the user part and in a ``password=`` query parameter)."""
    parts = urllib.parse.urlsplit(url)
    query_pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is None and all(k != "password" for k, _ in query_pairs):
        return url  # as written (urlunsplit would respell sqlite:///PATH)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = "&".join(
        f"{k}=***" if k == "password" else (f"{k}={v}" if v else k) for k, v in query_pairs
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def hide_secrets(text: str, url: str) -> str:
    """A driver's error text with the URL's password taken out, should it quote it."""
    password = urllib.parse.urlsplit(url).password
    if password:
        text = text.replace(password, "***").replace(urllib.parse.unquote(password), "***")
    return text


def sqlite_path(url: str) -> str:
    """``sqlite:///a.db`` → ``a.db``; ``sqlite:////abs/a.db`` → ``/abs/a.db``."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or len(rest) < 2:
        raise StoreError(f"a SQLite store URL is sqlite:///PATH; got {display_url(url)!r}")
    return urllib.parse.unquote(rest[1:].split("?", 1)[0])


# -- what queries return --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs; every given part must match. ``error`` is text within the run's error
    (case-insensitive); ``since``/``until`` bound the start time (epoch seconds, until
    exclusive)."""

    workflow: str | None = None
    namespace: str | None = None
    phase: str | None = None
    trigger: str | None = None
    since: float | None = None
    until: float | None = None
    error: str | None = None
    run_id: str | None = None

    def is_empty(self) -> bool:
        return all(v is None or v == "" for v in dataclasses.astuple(self))


@dataclasses.dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    workflow: str
    namespace: str
    phase: str
    trigger: str
    started_by: str
    spec_hash: str
    started_at: float
    finished_at: float | None
    duration_ms: float | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "workflow": self.workflow,
            "namespace": self.namespace,
            "phase": self.phase,
            "trigger": self.trigger,
            "startedBy": self.started_by,
            "specHash": self.spec_hash,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "durationMs": self.duration_ms,
            "error": self.error,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    step: str
    item: int  # -1: the step itself, else the foreach item's index
    attempt: int
    outcome: str  # Running, Succeeded, Failed
    started_at: float | None
    finished_at: float | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "item": None if self.item < 0 else self.item,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "error": self.error,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class StepRecord:
    step: str
    phase: str
    output: Any
    error: str | None
    attempts: int
    started_at: float | None
    finished_at: float | None
    duration_ms: float | None
    message: str
    tries: tuple[Attempt, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.step,
            "phase": self.phase,
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "durationMs": self.duration_ms,
            "message": self.message,
            "tries": [a.to_json() for a in self.tries],
        }


@dataclasses.dataclass(frozen=True, slots=True)
class RunDetail:
    summary: RunSummary
    inputs: Any
    outputs: Any
    steps: tuple[StepRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary.to_json(),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "steps": [s.to_json() for s in self.steps],
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    runs: tuple[RunSummary, ...]
    next_cursor: str | None  # pass back to list_runs for the next (older) page


@dataclasses.dataclass(frozen=True, slots=True)
class Figures:
    """Finished runs (or step executions) in a window. Percentiles are nearest-rank over
    durations in milliseconds, the same definition in both stores."""

    count: int
    succeeded: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def success_ratio(self) -> float | None:
        return self.succeeded / self.count if self.count else None

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "successRatio": self.success_ratio,
            "p50Ms": self.p50_ms,
            "p95Ms": self.p95_ms,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowStats:
    """The figures of one Workflow: a name in a namespace (two namespaces' Workflows of one
    name are two entries)."""

    workflow: str
    runs: Figures
    steps: dict[str, Figures]
    buckets: tuple[tuple[float, int], ...]  # (bucket start, runs started in it), oldest first
    namespace: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "namespace": self.namespace,
            **self.runs.to_json(),
            "steps": {k: v.to_json() for k, v in self.steps.items()},
            "buckets": [{"start": s, "runs": n} for s, n in self.buckets],
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Activity:
    """A workflow's runs started since a moment (``Store.activity``): how many, how many
    ended Failed, and the newest of them (its id, phase and start time)."""

    namespace: str
    workflow: str
    runs: int
    failed: int
    last_run: str
    last_phase: str
    last_started_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class Retention:
    """How long finished runs are kept: ``days`` after they started, at most ``max_runs``
    of a workflow (the newest); None is no limit. The Workflow's ``spec.retention``."""

    days: float | None = None
    max_runs: int | None = None

    @classmethod
    def from_spec(cls, doc: Mapping[str, Any] | None) -> Retention | None:
        if not doc:
            return None
        days, max_runs = doc.get("days"), doc.get("maxRuns", doc.get("max_runs"))
        return cls(
            None if days is None else float(days), None if max_runs is None else int(max_runs)
        )

    def describe(self) -> str:
        parts = [f"older than {self.days:g} days"] if self.days is not None else []
        if self.max_runs is not None:
            parts.append(f"beyond the newest {self.max_runs}")
        return " or ".join(parts) or "no limit"


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRecord:
    """A purge or erasure: who, what (never a subject's value or hash), when, how many."""

    at: float
    action: str  # purge, purge-expired, erase
    actor: str
    what: str
    count: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Version:
    """A distinct spec a workflow's runs ran, newest first."""

    spec_hash: str
    runs: int
    first_run: float
    last_run: float
    stored: bool  # the spec itself is in the store (the runner sent it)

    def to_json(self) -> dict[str, Any]:
        return {
            "specHash": self.spec_hash,
            "runs": self.runs,
            "firstRun": self.first_run,
            "lastRun": self.last_run,
            "stored": self.stored,
        }


def subject_key_from_env() -> bytes | None:
    value = os.environ.get(SUBJECT_KEY_ENV, "")
    return value.encode() if value else None


def workspace_key(state_dir: str | os.PathLike[str]) -> bytes:
    """The store key of a workspace (``autoflow serve``, ``autoflow webui --dir``):
    ``SUBJECT_KEY_ENV`` when set, else ``store.key`` in its state folder, made once (random,
    readable by its owner only) so runs that name a data subject or take secret inputs work
    there without setting anything up."""
    found = subject_key_from_env()
    if found:
        return found
    import secrets

    path = os.path.join(os.fspath(state_dir), "store.key")
    try:
        with open(path, "rb") as f:
            key = f.read().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(os.fspath(state_dir), exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def encode_cursor(started_at: float, run_id: str) -> str:
    raw = json.dumps([started_at, run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started_at, run_id = json.loads(raw)
        return float(started_at), str(run_id)
    except (ValueError, TypeError) as exc:
        raise StoreError(f"not a cursor from a previous page: {cursor!r}") from exc


# -- the interface --------------------------------------------------------------------------


class Store(abc.ABC):
    """A run store; open with ``open_store``, close with ``aclose``. Safe for many runs
    (tasks) on one event loop at once."""

    url: str
    max_payload: int

    @property
    def display_url(self) -> str:
        return display_url(self.url)

    @abc.abstractmethod
    async def record(self, run_id: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Journal records of one run, durable when this returns. Idempotent: writing the
        same records again (a retry after an unknown outcome) changes nothing."""

    @abc.abstractmethod
    async def journal(self, run_id: str) -> list[dict[str, Any]]:
        """The run's records as ``runners.engine.journal.replay`` reads them ([] if unknown)."""

    @abc.abstractmethod
    async def unfinished(
        self, workflow: str, *, namespace: str = "", trigger: str = ""
    ) -> str | None:
        """The newest run of the workflow that has not ended, to resume (only of this
        trigger, when given: a laptop must not resume a run the runner pool owns)."""

    @abc.abstractmethod
    async def list_runs(
        self, where: RunFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Newest first, ``limit`` at a time; ``next_cursor`` continues after the last one."""

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> RunDetail | None: ...

    @abc.abstractmethod
    async def stats(
        self,
        *,
        since: float,
        until: float,
        namespace: str | None = None,
        workflow: str | None = None,
        bucket: float = 3600,
    ) -> list[WorkflowStats]:
        """Per (namespace, workflow) (and per step) over runs started in [since, until),
        sorted by namespace and workflow; only ``namespace``'s when given (None: every
        namespace's); ``bucket`` is the width in seconds of the runs-per-time series."""

    @abc.abstractmethod
    async def activity(self, since: float) -> list[Activity]:
        """Per (namespace, workflow) with a run started at or after ``since``: the count of
        those runs, of those Failed, and the newest of them; sorted by namespace, workflow.
        Reads only the window (the start-time index), so a short one is cheap."""

    @abc.abstractmethod
    async def purge(self, where: RunFilter, *, actor: str = "") -> int:
        """Delete the runs matching ``where`` (unfinished ones only when named by
        ``run_id``) with their steps; returns how many. An empty filter is refused.
        Leaves an audit record naming ``actor``."""

    @abc.abstractmethod
    async def purge_expired(
        self,
        *,
        default: Retention | None = None,
        policies: Mapping[tuple[str, str], Retention] | None = None,
        now: float | None = None,
        actor: str = "",
    ) -> int:
        """Apply retention to finished runs, per (namespace, workflow): its entry in
        ``policies`` (the caller's live Workflows), else the ``retention`` of the spec its
        newest run ran (when stored), else ``default``. Meant to be called periodically (the
        operator, ``autoflow serve``) and by ``autoflow runs purge --expired``. An audit
        record per workflow that lost runs; returns how many runs went."""

    @abc.abstractmethod
    async def erase(self, subject: str, *, actor: str = "") -> int:
        """Delete every run (finished or not) whose data subject is ``subject``, with its
        steps, attempts and payloads; returns how many. The audit record names neither
        the subject nor its hash."""

    @abc.abstractmethod
    async def audit(self, *, limit: int = 100) -> list[AuditRecord]:
        """Purges and erasures, newest first."""

    @abc.abstractmethod
    async def get_spec(self, spec_hash: str) -> dict[str, Any] | None:
        """The Workflow spec stored for ``spec_hash`` (None if the runner did not send it)."""

    @abc.abstractmethod
    async def versions(self, workflow: str, *, namespace: str = "") -> list[Version]:
        """The specs a workflow's stored runs ran, newest last run first."""

    # -- starting runs (the runner pool: ``store/deliveries.py``) ---------------------------

    @abc.abstractmethod
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
        phase: str = "Pending",
        secret_inputs: Sequence[str] = (),
    ) -> tuple[str, bool]:
        """Records a run (phase ``Pending``) before anything runs it, with a delivery row
        for ``dedupe_key`` in the same transaction. A key seen before: (the first run's id,
        True), nothing written. ``spec`` (the Workflow's ``spec.dump()``) is stored under
        ``spec_hash`` (``engine.spec_hash`` of its plan, which a resume checks). ``phase``
        ``Running``: the caller executes it at once, without ``claim_run``.
        ``secret_inputs``: the inputs declared ``secret: true``; views see them redacted,
        ``claim_run`` and ``journal`` give them back, sealed in between under a key derived
        from the store's key (``SUBJECT_KEY_ENV``; without one such a run is refused)."""

    @abc.abstractmethod
    async def claim_run(self, run_id: str) -> list[dict[str, Any]] | None:
        """Pending → Running before the engine starts it; returns the run's journal as
        ``journal`` does (None: no such run). A run Running already stays so (a worker
        resuming it); an ended one is returned with its end."""

    @abc.abstractmethod
    async def unended(self) -> list[str]:
        """Runs Pending or Running that a runner pool owns (not ``autoflow run``'s), oldest
        first: what a launcher resumes when it starts."""

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    def _refuse_empty(self, where: RunFilter) -> None:
        if where.is_empty():
            raise StoreError(
                "a purge needs a filter (workflow, before, phase, ...); to delete every run, "
                "say --before with a date in the future"
            )


async def open_store(
    url: str,
    *,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    migrate: bool = False,
    connect_timeout: float = 10.0,
    subject_key: bytes | None = None,
) -> Store:
    """The store at ``url``, reachable and at this Autoflow's schema version.

    SQLite is migrated on open (it is embedded: nobody else to run the migration).
    PostgreSQL is migrated by ``autoflow store migrate`` (``migrate=True`` here); a database
    at an older version is refused with that advice, one at a newer version is refused
    naming the Autoflow version it needs. ``subject_key`` (default: the environment's
    ``AUTOFLOW_STORE_SUBJECT_KEY``) keys the hash data subjects are stored as."""
    key = subject_key if subject_key is not None else subject_key_from_env()
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from autoflow.runners.store import sqlite

        return await sqlite.SqliteStore.open(url, max_payload=max_payload, subject_key=key)
    if scheme in ("postgresql", "postgres"):
        from autoflow.runners.store import postgres

        return await postgres.PostgresStore.open(
            url,
            max_payload=max_payload,
            migrate=migrate,
            connect_timeout=connect_timeout,
            subject_key=key,
        )
    raise StoreError(
        f"unknown run store {display_url(url)!r}: use sqlite:///PATH or postgresql://..."
    )
