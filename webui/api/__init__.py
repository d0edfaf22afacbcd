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

``extra_routers`` are included as they are (the assistant's and the n8n importer's
routers); they may depend on ``deps.person`` and ``deps.backend`` like the built-in ones.
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
    for router in extra_routers:
        app.include_router(router)
    return app
