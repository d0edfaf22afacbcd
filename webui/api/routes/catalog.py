"""What the UI reads around the resources: the session, the connector catalogue with each
action's JSON Schemas (forms are rendered from them), the kinds' JSON Schemas, schedules and
the dashboard's figures, the template gallery."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import fastapi

from autoflow.connectors import registry
from autoflow.webui import gallery
from autoflow.webui.api import deps, models
from autoflow.webui.api.routes.workflows import INVALID

router = fastapi.APIRouter(tags=["catalogue"])


@router.get("/session", response_model=models.Session, responses=INVALID)
async def session(request: fastapi.Request, me: deps.Me, ctx: deps.Ctx) -> dict[str, Any]:
    return {
        "user": me.user,
        "groups": list(me.groups),
        "mode": ctx.backend.mode,
        "namespaces": await ctx.backend.namespaces(me),
        "csrfToken": ctx.auth.csrf_token(request),
    }


@functools.cache
def connectors() -> list[dict[str, Any]]:
    reg = registry.default()
    out = []
    for name in reg.names():
        conn = reg.connector(name)
        out.append(
            {
                "type": name,
                "description": conn.description,
                "actions": [
                    {
                        "name": a,
                        "uses": conn.actions[a].uses,
                        "description": conn.actions[a].description,
                        "inputSchema": conn.actions[a].params_schema(),
                        "outputSchema": conn.actions[a].output_schema(),
                    }
                    for a in sorted(conn.actions)
                ],
                "integration": {
                    "settingsSchema": conn.settings_schema(),
                    "secretKeys": dict(conn.secret_keys),
                    "auth": conn.auth_scheme,
                },
            }
        )
    return out


@router.get("/connectors", response_model=list[models.ConnectorInfo], responses=INVALID)
async def list_connectors(me: deps.Me) -> list[dict[str, Any]]:
    return connectors()


@functools.cache
def kind_schemas() -> dict[str, Any]:
    from autoflow.crds import generate

    return generate.json_schemas()


@router.get("/schemas", response_model=dict[str, dict[str, Any]], responses=INVALID)
async def schemas(me: deps.Me) -> dict[str, Any]:
    """JSON Schemas of Workflow, Integration, Schedule, WorkflowRun (from ``crds``)."""
    return kind_schemas()


@functools.cache
def template_gallery() -> list[dict[str, Any]]:
    return [t.as_json() for t in gallery.templates()]


@router.get("/templates", response_model=models.TemplateList, responses=INVALID)
async def list_templates(me: deps.Me) -> dict[str, Any]:
    """The template gallery: ready-made Workflows to start from (docs/templates.md)."""
    return {"items": template_gallery()}


@router.get(
    "/namespaces/{namespace}/schedules", response_model=models.ScheduleList, responses=INVALID
)
async def list_schedules(namespace: str, me: deps.Me, be: deps.Backend) -> dict[str, Any]:
    return {"items": await be.list_schedules(me, namespace)}


@router.post(
    "/namespaces/{namespace}/schedules/{name}/suspend",
    response_model=models.ScheduleView,
    responses=INVALID,
)
async def suspend_schedule(
    namespace: str, name: str, me: deps.Me, be: deps.Backend
) -> dict[str, Any]:
    """Nothing fires until it is resumed (``spec.suspend: true``)."""
    return await be.suspend_schedule(me, namespace, name, True)


@router.post(
    "/namespaces/{namespace}/schedules/{name}/resume",
    response_model=models.ScheduleView,
    responses=INVALID,
)
async def resume_schedule(
    namespace: str, name: str, me: deps.Me, be: deps.Backend
) -> dict[str, Any]:
    """Fires again; the Schedule's ``catchUp`` decides about the fires missed meanwhile."""
    return await be.suspend_schedule(me, namespace, name, False)


@router.get("/namespaces/{namespace}/stats", response_model=models.Stats, responses=INVALID)
async def stats(
    namespace: str,
    me: deps.Me,
    be: deps.Backend,
    window: Annotated[str, fastapi.Query(pattern="^(24h|7d|30d)$")] = "24h",
) -> dict[str, Any]:
    await be.check_runs_access(me, namespace, "list")
    names = await be.workflow_names(me, namespace)
    return await be.views.stats(namespace, names, window)
