"""Prometheus metrics of the operator: what happened to runs, schedules, integrations and
reconciles, derived by the operator from what it sees.

Runs are short-lived pods that no Prometheus would scrape in time, so nothing here is
measured by a runner. The operator derives run metrics from the run statuses it writes and
watches: the handlers call the functions below and this module turns their plain dicts into
samples on ``prometheus_client.REGISTRY``, which ``serve`` exposes on ``/metrics``::

    observe_run_transition(old_status, new_status)  # after every run status write the
                                                    # operator won: started, finished, durations
    observe_run_event(event_type, run)              # every watch event of a run: active runs
    with reconciling("Workflow"): ...               # reconcile duration and errors by kind
    @reconciler("WorkflowRun")                      # the same around a whole async handler
    schedule_fired("created"), schedule_missed(n)   # Schedule fires
    observe_integration(event_type, integration)    # Integration Ready → 1/0 gauge
    run_archived(seconds), store_write_failed(op)   # the run store archive (``archive``)
    runs_purged(count)                              # its retention (``retention``)
    serve(port)                                     # the /metrics endpoint (a thread)

Naming follows Prometheus conventions: the ``autoflow_`` prefix, base units (seconds),
``_total`` on counters. Labels stay low-cardinality: a run phase, a connector name, a resource
kind, never a run or step name or uid. The one exception is ``autoflow_integration_ready``,
one series per Integration object (namespace, name, type), as kube-state-metrics has one
per Deployment: Integrations are configuration, few and long-lived, and an alert that an
integration is down must say which. docs/monitoring.md is the reference; a test keeps it equal
to the metrics registered here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, ParamSpec, TypeVar

import prometheus_client
from prometheus_client import core, registry

import autoflow
from autoflow.crds import meta as crds_meta

log = logging.getLogger("autoflow.operator.metrics")

TERMINAL = ("Succeeded", "Failed", "Cancelled")
ACTIVE = ("Pending", "Running")
STEP_LISTS = ("steps", "onError", "finally")
# A connector name as the CRD allows it; anything else is reported as "unknown" so a
# malformed snapshot cannot mint label values.
_CONNECTOR = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

# No ``*_created`` series beside every counter and histogram: they would double the series
# count for a timestamp nobody graphs (counter resets are found without them).
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 10800, 43200, 86400)
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

BUILD = prometheus_client.Info("autoflow_build", "Version of the running Autoflow operator.")
BUILD.info({"version": autoflow.__version__})

RUNS_STARTED = prometheus_client.Counter(
    "autoflow_runs_started",
    "WorkflowRuns the operator took up (snapshotted, or failed at once when they cannot run).",
)
RUNS_FINISHED = prometheus_client.Counter(
    "autoflow_runs_finished",
    "WorkflowRuns that reached a terminal phase (Succeeded, Failed, Cancelled).",
    ["phase"],
)
RUN_DURATION = prometheus_client.Histogram(
    "autoflow_run_duration_seconds",
    "Time from the runner starting a run to the run finishing, by terminal phase.",
    ["phase"],
    buckets=RUN_BUCKETS,
)
STEPS_FINISHED = prometheus_client.Counter(
    "autoflow_steps_finished",
    "Steps of finished runs, by connector and the step's phase.",
    ["connector", "phase"],
)
STEP_DURATION = prometheus_client.Histogram(
    "autoflow_step_duration_seconds",
    "Duration of the steps of finished runs (first start to finish, retries included).",
    ["connector"],
    buckets=STEP_BUCKETS,
)
RECONCILE_DURATION = prometheus_client.Histogram(
    "autoflow_reconcile_duration_seconds",
    "Duration of one operator reconcile (one handler call), by resource kind.",
    ["kind"],
    buckets=RECONCILE_BUCKETS,
)
RECONCILE_ERRORS = prometheus_client.Counter(
    "autoflow_reconcile_errors",
    "Reconciles that raised (kopf retries them), by resource kind.",
    ["kind"],
)
SCHEDULE_FIRES = prometheus_client.Counter(
    "autoflow_schedule_fires",
    "Schedule fires carried out: created (a WorkflowRun) or skipped (concurrency policy).",
    ["outcome"],
)
SCHEDULE_MISSED = prometheus_client.Counter(
    "autoflow_schedule_missed_fires",
    "Schedule fires missed (operator down, schedule suspended) and not run under catch-up.",
)
STORE_RUNS_ARCHIVED = prometheus_client.Counter(
    "autoflow_store_runs_archived",
    "Finished runs written to the run store before their WorkflowRun may be deleted.",
)
STORE_ARCHIVE_DURATION = prometheus_client.Histogram(
    "autoflow_store_archive_duration_seconds",
    "Time to archive one finished run: read what the store holds, write the rest, annotate.",
    buckets=RECONCILE_BUCKETS,
)
STORE_RUNS_PURGED = prometheus_client.Counter(
    "autoflow_store_runs_purged",
    "Finished runs the periodic retention purge deleted from the run store.",
)
STORE_WRITE_ERRORS = prometheus_client.Counter(
    "autoflow_store_write_errors",
    "Run store writes by the operator that failed (retried later; the run is kept meanwhile).",
    ["operation"],
)
INTEGRATION_READY = prometheus_client.Gauge(
    "autoflow_integration_ready",
    "1 when an Integration's Ready condition is True, 0 when False (absent while Unknown).",
    ["namespace", "integration", "type"],
)


# -- runs -------------------------------------------------------------------------------------


def _seconds_between(start: Any, end: Any) -> float | None:
    began, ended = crds_meta.epoch(start, lenient=True), crds_meta.epoch(end, lenient=True)
    if began is None or ended is None:
        return None
    return max(0.0, ended - began)


def connector_of(uses: Any) -> str:
    """The connector of a step's ``uses`` (``http.request`` → ``http``), as a label value."""
    name = str(uses or "").split(".", 1)[0]
    return name if _CONNECTOR.match(name) else "unknown"


def _connectors(snapshot: dict[str, Any] | None) -> dict[str, str]:
    """Step id → connector, from the Workflow snapshot on a run's status."""
    found: dict[str, str] = {}
    for key in STEP_LISTS:
        for step in (snapshot or {}).get(key) or []:
            if isinstance(step, dict) and "id" in step:
                found[str(step["id"])] = connector_of(step.get("uses"))
    return found


def observe_run_transition(old_status: dict[str, Any], new_status: dict[str, Any]) -> None:
    """Count what a run status write changed: a run taken up, a run finished (with its
    duration and its steps'). Call once per write the operator won, with the status before
    and the status as written; a write that changes no phase counts nothing."""
    before, after = old_status.get("phase"), new_status.get("phase")
    if after == before or after is None:
        return
    if before is None:
        RUNS_STARTED.inc()
    if after not in TERMINAL or before in TERMINAL:
        return
    RUNS_FINISHED.labels(phase=after).inc()
    duration = _seconds_between(new_status.get("startedAt"), new_status.get("finishedAt"))
    if duration is not None:
        RUN_DURATION.labels(phase=after).observe(duration)
    connectors = _connectors(new_status.get("workflowSnapshot"))
    for step in new_status.get("steps") or []:
        connector = connectors.get(str(step.get("id")), "unknown")
        phase = step.get("phase")
        if phase not in {"Succeeded", "Failed", "Skipped", "Cancelled"}:
            continue  # Pending or Running when the run ended: it never finished
        STEPS_FINISHED.labels(connector=connector, phase=phase).inc()
        took = _seconds_between(step.get("startedAt"), step.get("finishedAt"))
        if took is not None:
            STEP_DURATION.labels(connector=connector).observe(took)


class ActiveRuns(registry.Collector):
    """The runs not finished yet, as the operator's watch last saw them.

    Kept from watch events (which include the initial listing at start-up, so the numbers
    are right after a restart) and turned into gauges when Prometheus scrapes. A run with no
    phase yet (created, not taken up) counts as Pending.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the HTTP server's thread collects, the loop updates
        self._runs: dict[str, tuple[str, float]] = {}  # uid → (phase, created)

    def observe(self, event_type: str | None, run: dict[str, Any]) -> None:
        meta = run.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        phase = (run.get("status") or {}).get("phase") or "Pending"
        with self._lock:
            if event_type == "DELETED" or phase not in ACTIVE:
                self._runs.pop(uid, None)
                return
            created = crds_meta.epoch(meta.get("creationTimestamp"), lenient=True) or time.time()
            self._runs[uid] = (phase, created)

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()

    def describe(self) -> Iterable[core.Metric]:
        return list(self._families())

    def collect(self) -> Iterable[core.Metric]:
        return list(self._families())

    def _families(self) -> Iterator[core.Metric]:
        with self._lock:
            runs = list(self._runs.values())
        active = core.GaugeMetricFamily(
            "autoflow_runs_active",
            "WorkflowRuns not finished yet, by phase (Pending: queued, or waiting for the runner).",
            labels=["phase"],
        )
        oldest = core.GaugeMetricFamily(
            "autoflow_runs_oldest_created_timestamp_seconds",
            "Creation time of the oldest unfinished WorkflowRun in each phase (absent if none).",
            labels=["phase"],
        )
        for phase in ACTIVE:
            created = [at for p, at in runs if p == phase]
            active.add_metric([phase], len(created))
            if created:
                oldest.add_metric([phase], min(created))
        yield active
        yield oldest


ACTIVE_RUNS = ActiveRuns()
prometheus_client.REGISTRY.register(ACTIVE_RUNS)


def observe_run_event(event_type: str | None, run: dict[str, Any]) -> None:
    """Keep the active-run gauges in step with a watch event of a WorkflowRun."""
    ACTIVE_RUNS.observe(event_type, run)


# -- schedules --------------------------------------------------------------------------------


def schedule_fired(outcome: str, count: int = 1) -> None:
    """A Schedule fire was carried out: ``created`` a run, or ``skipped`` (concurrency policy)."""
    if count > 0:
        SCHEDULE_FIRES.labels(outcome=outcome).inc(count)


def schedule_missed(count: int) -> None:
    """Fires a Schedule missed and will not run (the catch-up policy left them out)."""
    if count > 0:
        SCHEDULE_MISSED.inc(count)


# -- the run store ----------------------------------------------------------------------------


def run_archived(seconds: float) -> None:
    """A finished run is in the run store (and annotated archived), in ``seconds``."""
    STORE_RUNS_ARCHIVED.inc()
    STORE_ARCHIVE_DURATION.observe(seconds)


def runs_purged(count: int) -> None:
    """The periodic retention purge deleted ``count`` runs from the store."""
    if count > 0:
        STORE_RUNS_PURGED.inc(count)


def store_write_failed(operation: str) -> None:
    """A run store write failed; ``operation`` is a fixed word (``archive``), never a run."""
    STORE_WRITE_ERRORS.labels(operation=operation).inc()


# -- integrations -----------------------------------------------------------------------------

_integration_types: dict[tuple[str, str], str] = {}


def observe_integration(event_type: str | None, integration: dict[str, Any]) -> None:
    """Set (or, when it is deleted or its Ready is Unknown, remove) an Integration's gauge."""
    meta = integration.get("metadata") or {}
    key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    type_ = str((integration.get("spec") or {}).get("type") or "")
    old_type = _integration_types.pop(key, None)
    if old_type is not None:
        with contextlib.suppress(KeyError):
            INTEGRATION_READY.remove(*key, old_type)
    if event_type == "DELETED":
        return
    ready: dict[str, Any] = next(
        (
            c
            for c in (integration.get("status") or {}).get("conditions") or []
            if c.get("type") == "Ready"
        ),
        {},
    )
    value = {"True": 1.0, "False": 0.0}.get(str(ready.get("status")))
    if value is None:
        return
    INTEGRATION_READY.labels(*key, type_).set(value)
    _integration_types[key] = type_


# -- reconciles -------------------------------------------------------------------------------


@contextlib.contextmanager
def reconciling(kind: str) -> Iterator[None]:
    """Times the block as one reconcile of ``kind`` and counts it when it raises."""
    began = time.perf_counter()
    try:
        yield
    except Exception:
        RECONCILE_ERRORS.labels(kind=kind).inc()
        raise
    finally:
        RECONCILE_DURATION.labels(kind=kind).observe(time.perf_counter() - began)


P = ParamSpec("P")
R = TypeVar("R")


def reconciler(
    kind: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """``reconciling(kind)`` around every call of an async handler. Put it under the kopf
    decorators; the handler keeps its name, so kopf's handler ids do not change."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"{fn.__qualname__} is not an async function")

        @functools.wraps(fn)
        async def handler(*args: P.args, **kwargs: P.kwargs) -> R:
            with reconciling(kind):
                return await fn(*args, **kwargs)

        return handler

    return decorate


# -- the reference ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exported:
    """One metric as Prometheus shows it (counters with ``_total``, info with ``_info``)."""

    name: str
    type: str  # counter, gauge, histogram, info
    labels: tuple[str, ...]
    help: str


_METRICS: tuple[Any, ...] = (
    BUILD,
    RUNS_STARTED,
    RUNS_FINISHED,
    RUN_DURATION,
    STEPS_FINISHED,
    STEP_DURATION,
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    SCHEDULE_FIRES,
    SCHEDULE_MISSED,
    STORE_RUNS_ARCHIVED,
    STORE_ARCHIVE_DURATION,
    STORE_WRITE_ERRORS,
    STORE_RUNS_PURGED,
    INTEGRATION_READY,
)


def reference() -> list[Exported]:
    """Every metric this module exports, for docs/monitoring.md and the dashboard's tests."""
    found = []
    for metric in _METRICS:
        (family,) = metric.describe()
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        labels = tuple(metric._labelnames)
        if family.type == "info":  # its labels are the info's keys
            labels = tuple(next(iter(metric.collect())).samples[0].labels)
        found.append(Exported(family.name + suffix, family.type, labels, family.documentation))
    for family in ACTIVE_RUNS.describe():
        found.append(Exported(family.name, family.type, ("phase",), family.documentation))
    return found


# -- exposition -------------------------------------------------------------------------------

_server: Any = None


def serve(port: int, addr: str = "0.0.0.0") -> int | None:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns the port (``0``
    picks a free one). A second call returns the port already served.

    When the port is taken, this logs an error and serves nothing: metrics are not worth
    stopping the operator for, and the missing scrape fires the AutoflowOperatorDown alert.
    """
    global _server
    if _server is None:
        try:
            _server, _ = prometheus_client.start_http_server(port, addr)
        except OSError as exc:
            log.error("cannot serve metrics on %s:%d: %s", addr, port, exc)
            return None
        log.info("serving metrics on %s:%d/metrics", addr, _server.server_port)
    bound: int = _server.server_port
    return bound
