"""The importers' web routes: ``POST /import/n8n {json}`` → ``{yaml, report, valid}``.

``router()`` is mounted by the web API's ``create_app`` under ``/api`` (so the route is
``/api/import/n8n``). ``json`` is the n8n export, as an object or as its text. Something that
is not an n8n export is answered 422 with a problem details body (RFC 9457) whose ``detail``
says why; a partial conversion is a 200 whose report lists what was not converted. Nothing is
saved: the web UI shows the YAML in the editor and the person saves it. The converter has no
side effects and reads no secret, so the route needs only what every route needs (a signed-in
person: pass that dependency to ``router``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import fastapi
import pydantic
from fastapi import responses


class ImportRequest(pydantic.BaseModel):
    """The n8n export to convert, and an optional name for the Workflow."""

    json_: Any = pydantic.Field(alias="json", description="The n8n export: an object or JSON text.")
    name: str | None = pydantic.Field(default=None, max_length=253)

    model_config = pydantic.ConfigDict(populate_by_name=True)


class ImportResponse(pydantic.BaseModel):
    """The manifests as one YAML stream, and the import report."""

    yaml: str
    valid: bool
    report: dict[str, Any]


def router(dependencies: Sequence[Any] = ()) -> fastapi.APIRouter:
    """The routes of every importer (n8n today). ``dependencies`` (``fastapi.Depends(...)``)
    apply to each route: the web API passes the one that requires a signed-in person."""
    api = fastapi.APIRouter(tags=["import"], dependencies=list(dependencies))

    @api.post(
        "/import/n8n",
        response_model=ImportResponse,
        responses={
            422: {
                "description": "Not an n8n workflow export (problem details, RFC 9457)",
                "content": {"application/problem+json": {}},
            }
        },
    )
    def import_n8n(request: ImportRequest) -> Any:
        from autoflow.webui.importers import n8n

        try:
            result = n8n.convert(request.json_, source="upload", name=request.name)
        except n8n.NotAnExport as exc:
            return responses.JSONResponse(
                status_code=422,
                media_type="application/problem+json",
                content={
                    "type": "about:blank",
                    "title": "Not an n8n workflow export",
                    "status": 422,
                    "detail": str(exc),
                    "problems": [{"path": "json", "line": None, "message": str(exc)}],
                },
            )
        return ImportResponse(
            yaml=result.yaml, valid=result.report.valid, report=result.report.as_json()
        )

    return api
