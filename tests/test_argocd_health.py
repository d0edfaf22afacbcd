"""The Argo CD health checks in ``deploy/argocd/*.lua``, run by a real Lua interpreter.

Argo CD runs a health script with the live object as the global ``obj`` and reads the
``{status, message}`` table it returns. lupa embeds Lua; the tests use its Lua 5.1 runtime,
the language of the gopher-lua that Argo CD runs the scripts in, so every branch of every
script runs against sample objects shaped as the operator writes them. The ``argocd-cm``
snippet must embed exactly these files, so what is tested is what users paste.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

REPO = Path(__file__).resolve().parents[1]
ARGOCD = REPO / "deploy" / "argocd"
KINDS = {
    "Workflow": "workflow.lua",
    "WorkflowRun": "workflowrun.lua",
    "Integration": "integration.lua",
    "Schedule": "schedule.lua",
}
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as Argo CD would compute them for ``obj``."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals()["obj"] = lua.table_from(obj, recursive=True)
    # The script returns a Lua table; lupa types what a script returns as object.
    result: Any = lua.execute((ARGOCD / KINDS[kind]).read_text())
    status, message = result["status"], result["message"]
    assert status in ARGO_STATUSES
    assert isinstance(message, str) and message
    return str(status), str(message)


def obj(
    kind: str,
    generation: int = 2,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "shop", "generation": generation},
        "spec": spec or {},
    }
    if status is not None:
        body["status"] = status
    return body


def cond(
    type_: str, status: str, reason: str = "R", message: str = "", observed: int | None = 2
) -> dict[str, Any]:
    c: dict[str, Any] = {"type": type_, "status": status, "reason": reason, "message": message}
    if observed is not None:
        c["observedGeneration"] = observed
    return c


# -- Workflow -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected", "says"),
    [
        (None, "Progressing", "validate"),
        ({}, "Progressing", "validate"),
        ({"conditions": []}, "Progressing", "validate"),
        ({"conditions": [cond("Ready", "True", "Valid")]}, "Healthy", "Valid"),
        (
            {"conditions": [cond("Ready", "False", "Invalid", "step 'a', field 'uses': bad")]},
            "Degraded",
            "Invalid: step 'a', field 'uses': bad",
        ),
        ({"conditions": [cond("Ready", "True", observed=1)]}, "Progressing", "generation 2"),
        ({"conditions": [cond("Ready", "False", observed=1)]}, "Progressing", "generation 2"),
        ({"conditions": [cond("Ready", "Unknown")]}, "Progressing", "validate"),
        # observedGeneration on the status when the condition has none
        (
            {"observedGeneration": 2, "conditions": [cond("Ready", "True", observed=None)]},
            "Healthy",
            "Valid",
        ),
        ({"conditions": [cond("Ready", "True", observed=None)]}, "Progressing", "generation 2"),
    ],
)
def test_workflow(status: dict[str, Any] | None, expected: str, says: str) -> None:
    got, message = health("Workflow", obj("Workflow", status=status))
    assert got == expected
    assert says in message


# -- WorkflowRun --------------------------------------------------------------------------------


def run_status(phase: str | None, reason: str = "", message: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [cond("Succeeded", "Unknown", reason or "Pending")]}
    if phase is not None:
        status["phase"] = phase
    if message:
        status["message"] = message
    if reason:
        status["conditions"] = [cond("Succeeded", "False", reason, message)]
    return status


@pytest.mark.parametrize(
    ("spec", "status", "expected", "says"),
    [
        ({}, None, "Progressing", "start the run"),
        ({}, {"phase": "Pending"}, "Progressing", "runner to start"),
        ({}, {"phase": "Running"}, "Progressing", "runner is running"),
        ({}, {"phase": "Succeeded", "message": "the run succeeded"}, "Healthy", "succeeded"),
        ({}, {"phase": "Succeeded"}, "Healthy", "The run succeeded"),
        (
            {},
            run_status("Failed", "StepFailed", "step 'fetch' failed: 503"),
            "Degraded",
            "StepFailed: step 'fetch' failed: 503",
        ),
        ({}, {"phase": "Failed"}, "Degraded", "Failed: the run failed"),
        ({"cancel": True}, {"phase": "Cancelled", "message": "cancelled"}, "Suspended", "cancel"),
        ({}, {"phase": "Cancelled"}, "Suspended", "The run was cancelled"),
        ({"cancel": True}, {"phase": "Running"}, "Progressing", "being cancelled"),
    ],
)
def test_workflowrun(
    spec: dict[str, Any], status: dict[str, Any] | None, expected: str, says: str
) -> None:
    body = obj("WorkflowRun", generation=1, spec={"workflowRef": {"name": "w"}, **spec})
    if status is not None:
        body["status"] = status
    got, message = health("WorkflowRun", body)
    assert got == expected
    assert says in message


# -- Integration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "status", "expected", "says"),
    [
        ({}, None, "Progressing", "first health check"),
        ({"healthCheck": {"enabled": True}}, {"conditions": []}, "Progressing", "first"),
        ({}, {"conditions": [cond("Ready", "True", "Reachable", "200 OK")]}, "Healthy", "200 OK"),
        ({}, {"conditions": [cond("Ready", "True", "Reachable")]}, "Healthy", "Ready"),
        (
            {},
            {"conditions": [cond("Ready", "False", "Unreachable", "connection refused")]},
            "Degraded",
            "Unreachable: connection refused",
        ),
        ({}, {"conditions": [cond("Ready", "False", observed=1)]}, "Progressing", "generation 2"),
        ({}, {"conditions": [cond("Ready", "Unknown")]}, "Progressing", "first"),
        ({"healthCheck": {"enabled": False}}, None, "Healthy", "disabled"),
    ],
)
def test_integration(
    spec: dict[str, Any], status: dict[str, Any] | None, expected: str, says: str
) -> None:
    got, message = health(
        "Integration", obj("Integration", spec={"type": "http", **spec}, status=status)
    )
    assert got == expected
    assert says in message


# -- Schedule -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "status", "expected", "says"),
    [
        ({}, None, "Progressing", "schedule it"),
        ({"suspend": True}, None, "Suspended", "suspended"),
        ({"suspend": True}, {"conditions": [cond("Ready", "False")]}, "Suspended", "suspended"),
        (
            {},
            {
                "conditions": [cond("Ready", "True", "Scheduled")],
                "nextScheduleTime": "2026-01-01T09:00:00Z",
            },
            "Healthy",
            "Next fire at 2026-01-01T09:00:00Z",
        ),
        ({}, {"conditions": [cond("Ready", "True")]}, "Healthy", "Scheduled"),
        (
            {},
            {"conditions": [cond("Ready", "False", "InvalidCron", "bad cron 'x'")]},
            "Degraded",
            "InvalidCron: bad cron 'x'",
        ),
        ({}, {"conditions": [cond("Ready", "True", observed=1)]}, "Progressing", "generation 2"),
        ({}, {"conditions": [cond("Ready", "Unknown")]}, "Progressing", "schedule it"),
    ],
)
def test_schedule(
    spec: dict[str, Any], status: dict[str, Any] | None, expected: str, says: str
) -> None:
    body = obj("Schedule", spec={"cron": "0 9 * * *", "workflowRef": {"name": "w"}, **spec})
    if status is not None:
        body["status"] = status
    got, message = health("Schedule", body)
    assert got == expected
    assert says in message


# -- the argocd-cm snippet ----------------------------------------------------------------------


def test_argocd_cm_embeds_exactly_the_lua_files() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    expected = {
        f"resource.customizations.health.autoflow.dev_{kind}": (ARGOCD / file).read_text()
        for kind, file in KINDS.items()
    }
    assert cm["data"] == expected
    assert sorted(p.name for p in ARGOCD.glob("*.lua")) == sorted(KINDS.values())


def test_install_docs_show_the_snippet_and_the_application() -> None:
    docs = (REPO / "docs" / "install.md").read_text()
    for kind in KINDS:
        assert f"resource.customizations.health.autoflow.dev_{kind}" in docs
    app = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    assert app["kind"] == "Application"
    assert app["spec"]["source"]["path"] == "charts/autoflow"
    assert "deploy/argocd/application.yaml" in docs
