"""Metrics, dashboard and alerts: what the operator exports, and that everything shipped to
Prometheus and Grafana asks only for that.

The operator derives run metrics from status transitions (``autoflow.operator.metrics``);
these tests feed it transitions and read the samples back from ``prometheus_client.REGISTRY``.
The registry is process-wide, so every check is a difference of a sample before and after.

Every PromQL expression in the Grafana dashboard and in the PrometheusRule (rendered by the
chart) may name only metrics the module exports (with their ``_total``, ``_bucket``,
``_sum``, ``_count`` series) and Prometheus's own ``up``. ``docs/monitoring.md`` lists exactly
the exported metrics with their types and labels.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import prometheus_client
import pytest
from manifests import ALL_ENABLED, CHART, REPO, helm_template, one

from autoflow.operator import metrics

REGISTRY = prometheus_client.REGISTRY
BUILTIN = {"up"}  # Prometheus's own series about each scrape target
FORBIDDEN_LABELS = {"run", "name", "uid", "step", "step_id", "run_id", "workflowrun"}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Samples before a block; ``delta(name, **labels)`` is how much they grew since."""

    def __init__(self) -> None:
        self._before: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in REGISTRY.collect():
            for s in family.samples:
                self._before[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def __call__(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return sample(name, **labels) - self._before.get(key, 0.0)


def run_status(phase: str | None, **fields: Any) -> dict[str, Any]:
    status: dict[str, Any] = dict(fields)
    if phase is not None:
        status["phase"] = phase
    return status


SNAPSHOT = {
    "steps": [
        {"id": "fetch", "uses": "http.request"},
        {"id": "check", "uses": "core.condition"},
    ],
    "onError": [{"id": "alert", "uses": "slack.postMessage"}],
    "finally": [{"id": "bye", "uses": "core.log"}],
}


# -- runs ---------------------------------------------------------------------------------------


def test_a_run_taken_up_is_started() -> None:
    delta = Delta()
    metrics.observe_run_transition({}, run_status("Pending"))
    assert delta("autoflow_runs_started_total") == 1
    assert delta("autoflow_runs_finished_total", phase="Succeeded") == 0


def test_running_counts_nothing() -> None:
    delta = Delta()
    metrics.observe_run_transition(run_status("Pending"), run_status("Running"))
    assert delta("autoflow_runs_started_total") == 0


def test_a_run_that_succeeds() -> None:
    delta = Delta()
    finished = run_status(
        "Succeeded",
        startedAt="2026-03-01T10:00:00Z",
        finishedAt="2026-03-01T10:00:12.5Z",
        workflowSnapshot=SNAPSHOT,
        steps=[
            {
                "id": "fetch",
                "phase": "Succeeded",
                "startedAt": "2026-03-01T10:00:01Z",
                "finishedAt": "2026-03-01T10:00:03Z",
            },
            {"id": "check", "phase": "Skipped"},
            {
                "id": "bye",
                "phase": "Succeeded",
                "startedAt": "2026-03-01T10:00:03.000Z",
                "finishedAt": "2026-03-01T10:00:03.250Z",
            },
        ],
    )
    metrics.observe_run_transition(run_status("Running"), finished)
    assert delta("autoflow_runs_started_total") == 0
    assert delta("autoflow_runs_finished_total", phase="Succeeded") == 1
    assert delta("autoflow_run_duration_seconds_count", phase="Succeeded") == 1
    assert delta("autoflow_run_duration_seconds_sum", phase="Succeeded") == pytest.approx(12.5)
    assert delta("autoflow_run_duration_seconds_bucket", phase="Succeeded", le="10.0") == 0
    assert delta("autoflow_run_duration_seconds_bucket", phase="Succeeded", le="30.0") == 1
    assert delta("autoflow_steps_finished_total", connector="http", phase="Succeeded") == 1
    assert delta("autoflow_steps_finished_total", connector="core", phase="Skipped") == 1
    assert delta("autoflow_steps_finished_total", connector="core", phase="Succeeded") == 1
    assert delta("autoflow_step_duration_seconds_count", connector="http") == 1
    assert delta("autoflow_step_duration_seconds_sum", connector="http") == pytest.approx(2.0)
    # the skipped step has no timings: only bye's are observed for core
    assert delta("autoflow_step_duration_seconds_count", connector="core") == 1
    assert delta("autoflow_step_duration_seconds_sum", connector="core") == pytest.approx(0.25)


def test_a_run_that_cannot_start_is_started_and_failed_at_once() -> None:
    delta = Delta()
    metrics.observe_run_transition({}, run_status("Failed", message="no such workflow"))
    assert delta("autoflow_runs_started_total") == 1
    assert delta("autoflow_runs_finished_total", phase="Failed") == 1
    assert delta("autoflow_run_duration_seconds_count", phase="Failed") == 0  # never ran


@pytest.mark.parametrize("phase", ["Failed", "Cancelled"])
def test_failed_and_cancelled_runs(phase: str) -> None:
    delta = Delta()
    status = run_status(
        phase,
        startedAt="2026-03-01T10:00:00Z",
        finishedAt="2026-03-01T10:01:00Z",
        workflowSnapshot=SNAPSHOT,
        steps=[
            {
                "id": "fetch",
                "phase": "Failed",
                "startedAt": "2026-03-01T10:00:00Z",
                "finishedAt": "2026-03-01T10:00:30Z",
            },
            {"id": "check", "phase": "Pending"},  # never ran: not a finished step
            {
                "id": "alert",
                "phase": "Running",  # cut off by the cancel: not finished either
                "startedAt": "2026-03-01T10:00:30Z",
            },
        ],
    )
    metrics.observe_run_transition(run_status("Running"), status)
    assert delta("autoflow_runs_finished_total", phase=phase) == 1
    assert delta("autoflow_run_duration_seconds_sum", phase=phase) == pytest.approx(60)
    assert delta("autoflow_steps_finished_total", connector="http", phase="Failed") == 1
    assert delta("autoflow_steps_finished_total", connector="core", phase="Pending") == 0
    assert delta("autoflow_steps_finished_total", connector="slack", phase="Running") == 0


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Succeeded", "Succeeded"),  # a second write of a finished run
        ("Failed", "Cancelled"),  # terminal is terminal: counted once
        ("Pending", None),
        (None, None),
    ],
)
def test_writes_that_change_no_phase_count_nothing(old: str | None, new: str | None) -> None:
    delta = Delta()
    metrics.observe_run_transition(run_status(old), run_status(new, message="x"))
    assert delta("autoflow_runs_started_total") == 0
    for phase in metrics.TERMINAL:
        assert delta("autoflow_runs_finished_total", phase=phase) == 0


def test_steps_of_unknown_connectors_are_labelled_unknown() -> None:
    delta = Delta()
    snapshot = {"steps": [{"id": "odd", "uses": "Bad Name.x"}]}
    steps = [{"id": "odd", "phase": "Succeeded"}, {"id": "ghost", "phase": "Failed"}]
    metrics.observe_run_transition(
        run_status("Running"),
        run_status("Failed", workflowSnapshot=snapshot, steps=steps),
    )
    assert delta("autoflow_steps_finished_total", connector="unknown", phase="Succeeded") == 1
    assert delta("autoflow_steps_finished_total", connector="unknown", phase="Failed") == 1


@pytest.mark.parametrize(
    ("uses", "connector"),
    [("http.request", "http"), ("core.log", "core"), ("my-crm.push", "my-crm"), ("", "unknown")],
)
def test_connector_of(uses: str, connector: str) -> None:
    assert metrics.connector_of(uses) == connector


# -- active runs --------------------------------------------------------------------------------


def run(uid: str, phase: str | None, created: str = "2026-03-01T10:00:00Z") -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"uid": uid, "creationTimestamp": created}}
    if phase is not None:
        body["status"] = {"phase": phase}
    return body


@pytest.fixture
def no_runs() -> Iterator[None]:
    metrics.ACTIVE_RUNS.clear()
    yield
    metrics.ACTIVE_RUNS.clear()


def oldest(phase: str) -> float | None:
    return REGISTRY.get_sample_value(
        "autoflow_runs_oldest_created_timestamp_seconds", {"phase": phase}
    )


@pytest.mark.usefixtures("no_runs")
def test_active_runs_follow_watch_events() -> None:
    assert sample("autoflow_runs_active", phase="Pending") == 0
    assert oldest("Pending") is None
    metrics.observe_run_event("ADDED", run("a", None, "2026-03-01T10:00:00Z"))  # not taken up
    metrics.observe_run_event("ADDED", run("b", "Pending", "2026-03-01T09:00:00Z"))
    metrics.observe_run_event(None, run("c", "Running"))  # kopf's initial listing has no type
    assert sample("autoflow_runs_active", phase="Pending") == 2
    assert sample("autoflow_runs_active", phase="Running") == 1
    assert oldest("Pending") == pytest.approx(1772355600.0)  # 2026-03-01T09:00:00Z
    metrics.observe_run_event("MODIFIED", run("b", "Running", "2026-03-01T09:00:00Z"))
    assert sample("autoflow_runs_active", phase="Pending") == 1
    assert oldest("Pending") == pytest.approx(1772359200.0)
    assert oldest("Running") == pytest.approx(1772355600.0)
    metrics.observe_run_event("MODIFIED", run("b", "Succeeded"))
    metrics.observe_run_event("DELETED", run("c", "Running"))
    metrics.observe_run_event("MODIFIED", run("b", "Succeeded"))  # gone already: no harm
    assert sample("autoflow_runs_active", phase="Running") == 0
    assert oldest("Running") is None
    metrics.observe_run_event("ADDED", {"metadata": {}})  # no uid: ignored
    assert sample("autoflow_runs_active", phase="Pending") == 1


# -- reconciles, schedules, integrations ----------------------------------------------------------


def test_reconciling_times_and_counts_errors() -> None:
    delta = Delta()
    with metrics.reconciling("Workflow"):
        pass
    with pytest.raises(ValueError), metrics.reconciling("Workflow"):
        raise ValueError("boom")
    assert delta("autoflow_reconcile_duration_seconds_count", kind="Workflow") == 2
    assert delta("autoflow_reconcile_errors_total", kind="Workflow") == 1


async def test_reconciler_wraps_an_async_handler() -> None:
    delta = Delta()

    @metrics.reconciler("Schedule")
    async def schedule_tick(**kwargs: Any) -> str:
        if kwargs.get("fail"):
            raise RuntimeError("no")
        return "done"

    assert schedule_tick.__name__ == "schedule_tick"  # kopf's handler id stays the same
    assert schedule_tick.__qualname__.endswith("schedule_tick")
    assert await schedule_tick(body={}) == "done"
    with pytest.raises(RuntimeError):
        await schedule_tick(fail=True)
    assert delta("autoflow_reconcile_duration_seconds_count", kind="Schedule") == 2
    assert delta("autoflow_reconcile_errors_total", kind="Schedule") == 1
    with pytest.raises(TypeError):
        metrics.reconciler("Schedule")(lambda: None)  # type: ignore[arg-type,return-value]


def test_schedule_fires_and_misses() -> None:
    delta = Delta()
    metrics.schedule_fired("created")
    metrics.schedule_fired("skipped", 2)
    metrics.schedule_fired("created", 0)
    metrics.schedule_missed(3)
    metrics.schedule_missed(0)
    assert delta("autoflow_schedule_fires_total", outcome="created") == 1
    assert delta("autoflow_schedule_fires_total", outcome="skipped") == 2
    assert delta("autoflow_schedule_missed_fires_total") == 3


def integration(ready: str | None, type_: str = "http") -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"namespace": "shop", "name": "crm"},
        "spec": {"type": type_},
    }
    if ready is not None:
        body["status"] = {"conditions": [{"type": "Ready", "status": ready}]}
    return body


def ready(type_: str = "http") -> float | None:
    labels = {"namespace": "shop", "integration": "crm", "type": type_}
    return REGISTRY.get_sample_value("autoflow_integration_ready", labels)


def test_integration_health() -> None:
    metrics.observe_integration("ADDED", integration(None))
    assert ready() is None  # not checked yet: no series
    metrics.observe_integration("MODIFIED", integration("True"))
    assert ready() == 1
    metrics.observe_integration("MODIFIED", integration("False"))
    assert ready() == 0
    metrics.observe_integration("MODIFIED", integration("False", "graphql"))
    assert ready() is None  # the old type's series went
    assert ready("graphql") == 0
    metrics.observe_integration("MODIFIED", integration("Unknown", "graphql"))
    assert ready("graphql") is None
    metrics.observe_integration("MODIFIED", integration("True"))
    metrics.observe_integration("DELETED", integration("True"))
    assert ready() is None


def test_serve_exposes_the_registry() -> None:
    port = metrics.serve(0)
    assert metrics.serve(0) == port  # once per process
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert 'autoflow_build_info{version="0.1.0"} 1.0' in text
    assert "# TYPE autoflow_runs_started_total counter" in text
    assert 'autoflow_runs_active{phase="Pending"}' in text


def test_a_taken_port_leaves_the_operator_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_server", None)  # as in a fresh operator process
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record)  # type: ignore[method-assign]
    metrics.log.addHandler(handler)  # the "autoflow" logger may not propagate to caplog
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            assert metrics.serve(port, "127.0.0.1") is None
    finally:
        metrics.log.removeHandler(handler)
    assert [r.levelname for r in records] == ["ERROR"]
    assert f"cannot serve metrics on 127.0.0.1:{port}" in records[0].getMessage()


# -- conventions --------------------------------------------------------------------------------


def test_naming_conventions() -> None:
    exported = metrics.reference()
    assert len({m.name for m in exported}) == len(exported)
    for m in exported:
        assert m.name.startswith("autoflow_"), m.name
        assert re.fullmatch(r"[a-z_]+", m.name), m.name
        assert (m.type == "counter") == m.name.endswith("_total"), m.name
        if "duration" in m.name or "timestamp" in m.name:
            assert m.name.endswith("_seconds"), f"{m.name}: base unit seconds"
        assert not FORBIDDEN_LABELS & set(m.labels), f"{m.name}: high-cardinality label"
        assert m.help.endswith("."), m.name


# -- what the dashboard and the alerts ask for --------------------------------------------------

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels, keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', " ", expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # grouping labels
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        called = text[match.end() :].lstrip().startswith("(")  # a function or an aggregation
        if not called and match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum(rate(a_total{phase="Failed"}[5m])) / sum(rate(a_total[5m]))', {"a_total"}),
        (
            "histogram_quantile(0.95, sum by (le, connector) (rate(b_bucket[$__rate_interval])))",
            {"b_bucket"},
        ),
        ('absent(up{job="x", namespace="y"} == 1)', {"up"}),
        ("time() - min(c{phase='Pending'}) > 900", {"c"}),
        ("count(d == 0) or vector(0)", {"d"}),
        ("sum without (instance) (e) * on (kind) group_left (version) f offset 5m", {"e", "f"}),
        ("g > 1e3 and h", {"g", "h"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def allowed_names() -> set[str]:
    allowed = set(BUILTIN)
    for m in metrics.reference():
        if m.type == "histogram":
            allowed |= {f"{m.name}_bucket", f"{m.name}_sum", f"{m.name}_count"}
        else:
            allowed.add(m.name)
    return allowed


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expr) of every query in the shipped dashboard, rows included."""
    board = json.loads((CHART / "dashboards" / "autoflow.json").read_text())
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(board["panels"])
    return found


def alert_expressions() -> list[tuple[str, str]]:
    rule = one(helm_template(ALL_ENABLED), "PrometheusRule")
    return [
        (r.get("alert") or r["record"], r["expr"])
        for group in rule["spec"]["groups"]
        for r in group["rules"]
    ]


def test_the_dashboard_asks_only_for_exported_metrics() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    allowed = allowed_names()
    for title, expr in expressions:
        names = metric_names(expr)
        assert names, f"{title}: {expr} selects no metric"
        assert names <= allowed, f"dashboard panel {title!r} asks for {names - allowed}"


def test_the_dashboard_shows_what_it_promises() -> None:
    titles = " | ".join(title.lower() for title, _ in dashboard_expressions())
    for wanted in ("per second", "failure ratio", "p95", "active runs", "integration"):
        assert wanted in titles


def test_the_alerts_ask_only_for_exported_metrics() -> None:
    allowed = allowed_names()
    expressions = alert_expressions()
    assert {name for name, _ in expressions} >= {
        "AutoflowRunFailureRatioHigh",
        "AutoflowRunsStuckPending",
        "AutoflowIntegrationDown",
        "AutoflowOperatorDown",
    }
    for name, expr in expressions:
        names = metric_names(expr)
        assert names, f"{name}: {expr} selects no metric"
        assert names <= allowed, f"alert {name} asks for {names - allowed}"
        assert expr.count("(") == expr.count(")"), name


def test_the_alerts_integration_labels_exist() -> None:
    exported = {m.name: m for m in metrics.reference()}
    rule = one(helm_template(ALL_ENABLED), "PrometheusRule")
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            text = " ".join(r.get("annotations", {}).values())
            used = set(re.findall(r"\$labels\.(\w+)", text))
            selected = metric_names(r["expr"])
            labels = {label for n in selected if n in exported for label in exported[n].labels}
            by = set(re.findall(r"by \(([^)]*)\)", r["expr"]))
            labels |= {label.strip() for group_ in by for label in group_.split(",")}
            assert used <= labels, f"{r['alert']} annotations use labels {used - labels}"


# -- the reference in docs/monitoring.md ----------------------------------------------------------


def test_docs_list_exactly_the_exported_metrics() -> None:
    text = (REPO / "docs" / "monitoring.md").read_text()
    rows = re.findall(r"^\| `(autoflow_\w+)` \| (\w+) \| ([^|]*) \|", text, re.M)
    documented = {
        name: (type_, tuple(re.findall(r"`(\w+)`", labels))) for name, type_, labels in rows
    }
    exported = {m.name: (m.type, m.labels) for m in metrics.reference()}
    assert documented == exported
