"""The API's request and response bodies (pydantic): the OpenAPI document is made from these.

Field names are the JSON's (camelCase), as the front end reads them. Specs are the Workflow,
Integration and Schedule specs as their ``crds`` models dump them (free-form objects here:
their JSON Schemas are served by ``GET /api/schemas``, generated from ``crds``).
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")


class Problem(Model):
    path: str
    line: int | None = None
    message: str
    resource: str | None = None
    step: str | None = None
    field: str | None = None


class ProblemDetails(Model):
    type: str
    title: str
    status: int
    detail: str
    problems: list[Problem] = []


def problem_response(description: str) -> dict[str, Any]:
    """An error answer in the OpenAPI document: problem details (RFC 9457)."""
    return {
        "model": ProblemDetails,
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
        },
    }


class Session(Model):
    user: str
    groups: list[str] = []
    mode: Literal["cluster", "workspace"]
    namespaces: list[str]
    csrfToken: str


class Condition(Model):
    status: str
    reason: str = ""
    message: str = ""


class LastRun(Model):
    runId: str
    phase: str
    startedAt: float


class WorkflowItem(Model):
    name: str
    namespace: str
    description: str = ""
    ready: Condition | None = None
    lastRun: LastRun | None = None
    successRatio: float | None = None
    runs24h: int = 0
    triggers: list[dict[str, Any]] = []
    resourceVersion: str


class WorkflowList(Model):
    items: list[WorkflowItem]


class WorkflowDoc(Model):
    name: str
    namespace: str
    yaml: str
    resourceVersion: str
    ready: Condition | None = None
    spec: dict[str, Any]
    changedBy: str | None = None


class YamlBody(pydantic.BaseModel):
    yaml: str = pydantic.Field(max_length=1024 * 1024)


class Validation(Model):
    valid: bool
    problems: list[Problem]


class Version(Model):
    specHash: str
    runs: int
    firstRun: float
    lastRun: float
    stored: bool


class VersionList(Model):
    items: list[Version]


class VersionDoc(Model):
    specHash: str
    workflow: str
    spec: dict[str, Any]


class StartRun(pydantic.BaseModel):
    inputs: dict[str, Any] = {}


class RunId(Model):
    runId: str


class RunSummary(Model):
    runId: str
    workflow: str
    namespace: str
    phase: str
    trigger: str
    startedBy: str
    startedAt: float
    finishedAt: float | None = None
    durationMs: float | None = None
    error: str | None = None


class RunPage(Model):
    items: list[RunSummary]
    next: str | None = None


class StepView(Model):
    step: str
    phase: str
    attempts: int = 0
    startedAt: float | None = None
    finishedAt: float | None = None
    durationMs: float | None = None
    output: Any = None
    error: str | None = None
    message: str = ""


class RunDetail(RunSummary):
    inputs: Any = None
    outputs: Any = None
    steps: list[StepView] = []


class Health(Model):
    ready: bool
    reason: str
    message: str
    checkedAt: float | None = None


class IntegrationView(Model):
    name: str
    namespace: str
    type: str | None = None
    spec: dict[str, Any]
    secretKeys: list[str] = pydantic.Field(
        default=[], description="Names of the stored secret keys; their values are never returned."
    )
    health: Health | None = None
    resourceVersion: str | None = None


class IntegrationList(Model):
    items: list[IntegrationView]


class IntegrationBody(pydantic.BaseModel):
    name: str | None = pydantic.Field(
        default=None, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    spec: dict[str, Any]
    secrets: dict[str, str] = pydantic.Field(
        default={}, description="Write-only: stored in the Integration's Secret, never returned."
    )


class OAuthStart(Model):
    authorizationUrl: str


class ActionInfo(Model):
    name: str
    uses: str
    description: str
    inputSchema: dict[str, Any]
    outputSchema: dict[str, Any]


class IntegrationInfo(Model):
    settingsSchema: dict[str, Any]
    secretKeys: dict[str, str]
    auth: str | None = pydantic.Field(
        default=None,
        description="The auth scheme every Integration of this type uses (oauth2: it needs "
        "spec.oauth2); null when its settings choose (the http connector's auth) or none.",
    )


class ConnectorInfo(Model):
    type: str
    description: str
    actions: list[ActionInfo]
    integration: IntegrationInfo


class ScheduleView(Model):
    name: str
    namespace: str
    spec: dict[str, Any]
    status: dict[str, Any] | None = None
    nextFires: list[str] = pydantic.Field(
        default=[],
        description="The next fires (UTC, ISO 8601) by the Schedule's cron in its time zone;"
        " empty while it is suspended",
    )


class ScheduleList(Model):
    items: list[ScheduleView]


class Template(Model):
    """A ready-made Workflow of the gallery (docs/templates.md)."""

    name: str = pydantic.Field(description="The template's file name, without .yaml")
    title: str
    description: str
    category: str | None = None
    integrations: list[str] = pydantic.Field(description="The connector types it uses")
    trigger: str | None = pydantic.Field(
        default=None, description="How it is started, when by a webhook added by hand"
    )
    workflow: str = pydantic.Field(description="The name of its (first) Workflow")
    yaml: str = pydantic.Field(
        description="The whole file: the Workflow, its Schedules and Integration stubs"
    )


class TemplateList(Model):
    items: list[Template]


class Stats(Model):
    window: str
    since: float
    until: float
    runs: int
    succeeded: int
    failed: int
    successRatio: float | None = None
    workflows: list[dict[str, Any]]
