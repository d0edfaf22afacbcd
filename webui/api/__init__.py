"""The web API (FastAPI): ``create_app(backend, settings=None, extra_routers=())``.

One app for both backends (``webui.workspace``, ``webui.cluster``); the routes live one
module per resource in ``routes/`` and read the backend and the signed-in person through
``deps``. Errors are problem details (``problems``). The app assumes nothing about where it
is mounted: ``autoflow webui`` serves it at ``/api``, ``autoflow serve`` mounts it there
beside the gateway and the front end; every path it builds is relative to its mount.

    GET  /openapi.json, /docs           the OpenAPI document and its viewer
    GET  /session                       who, mode, namespaces, the CSRF token
    ...  /namespaces/{ns}/workflows     see routes/workflows.py
    ...  /namespaces/{ns}/runs          routes/runs.py; live: routes/events.py (SSE)
    ...  /namespaces/{ns}/integrations  routes/integrations.py
    GET  /connectors, /schemas, /namespaces/{ns}/schedules, /namespaces/{ns}/stats

    POST /assistant/draft, /assistant/explain   the AI assistant (webui.assistant.routes)
    POST /import/n8n                    the n8n importer (webui.importers.routes)

The assistant and the importer are served to signed-in people only (``deps.person`` runs
before each of their routes); the assistant sees the Integrations the person may list in the
namespace (names and types, never a secret). ``extra_routers`` are included as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import fastapi

from autoflow.webui import backend as backend_mod
from autoflow.webui.api import auth, deps, models, problems
from autoflow.webui.api.routes import catalog, events, integrations, runs, workflows

__all__ = ["Settings", "create_app"]


@dataclasses.dataclass(slots=True)
class Settings:
    """``authenticator``: who is asking (default: a workspace ``TokenAuth`` with a new random
    token, readable as ``app.state.autoflow.auth.token``)."""

    authenticator: Any = None
    title: str = "Autoflow API"


def create_app(
    backend: backend_mod.Backend,
    settings: Settings | None = None,
    extra_routers: Iterable[fastapi.APIRouter] = (),
) -> fastapi.FastAPI:
    settings = settings or Settings()
    authenticator = settings.authenticator or auth.TokenAuth()
    app = fastapi.FastAPI(
        title=settings.title,
        version="v1alpha1",
        description="Workflows, runs, integrations and live status of Autoflow, acting as "
        "the signed-in person. Errors are RFC 9457 problem details.",
        responses={401: models.problem_response("Not signed in")},
    )
    app.state.autoflow = deps.Context(backend=backend, auth=authenticator)
    problems.install(app)
    middleware = getattr(authenticator, "middleware", None)
    if middleware is not None:
        app.middleware("http")(middleware)
    for module in (catalog, workflows, runs, events, integrations):
        app.include_router(module.router)
    extra = authenticator.router()
    if extra is not None:
        app.include_router(extra)
    for router in (*faces_routers(), *extra_routers):
        app.include_router(router)
    return app


def faces_routers() -> list[fastapi.APIRouter]:
    """The assistant's and the importer's routes, behind the web API's sign-in."""
    from autoflow.webui.assistant import routes as assistant_routes
    from autoflow.webui.importers import routes as import_routes

    signed_in = [fastapi.Depends(deps.person)]

    async def visible_integrations(request: fastapi.Request, namespace: str) -> dict[str, str]:
        person = deps.person(request)
        found = await deps.backend(request).integration_types(person, namespace)
        return {name: kind for name, kind in (found or {}).items() if kind}

    return [
        assistant_routes.router(integrations_for=visible_integrations, dependencies=signed_in),
        import_routes.router(dependencies=signed_in),
    ]
