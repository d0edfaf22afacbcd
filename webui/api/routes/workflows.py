"""Workflows: list, get, create, update (If-Match), delete, validate, versions.

The YAML text is the source: it is checked as ``autoflow validate`` checks a file
(``texts.check_workflow``), refused with every problem (422, nothing written), and stored
exactly as sent. ``resourceVersion`` is the ETag; an update with a stale one is a 409.
"""

from __future__ import annotations

from typing import Annotated, Any

import fastapi

from autoflow.webui import backend as backend_mod
from autoflow.webui import texts
from autoflow.webui.api import deps, models, problems

router = fastapi.APIRouter(tags=["workflows"])
NS = "/namespaces/{namespace}/workflows"
INVALID: dict[int | str, dict[str, Any]] = {
    status: models.problem_response(text)
    for status, text in (
        (400, "Bad request"),
        (403, "Not allowed"),
        (404, "Not found"),
        (409, "Exists, or changed since read"),
        (422, "Every problem of the text or request"),
        (503, "Kubernetes or the run store cannot be reached"),
    )
}


def _etag(doc: dict[str, Any], response: fastapi.Response) -> dict[str, Any]:
    response.headers["ETag"] = f'"{doc["resourceVersion"]}"'
    return doc


@router.get(NS, response_model=models.WorkflowList, responses=INVALID)
async def list_workflows(namespace: str, me: deps.Me, be: deps.Backend) -> dict[str, Any]:
    return {"items": await be.list_workflows(me, namespace)}


@router.get(NS + "/{name}", response_model=models.WorkflowDoc, responses=INVALID)
async def get_workflow(
    namespace: str, name: str, me: deps.Me, be: deps.Backend, response: fastapi.Response
) -> dict[str, Any]:
    return _etag(await be.get_workflow(me, namespace, name), response)


async def _checked(
    be: backend_mod.Backend,
    me: backend_mod.Person,
    namespace: str,
    text: str,
    name: str | None = None,
) -> Any:
    types = await be.integration_types(me, namespace)
    wf, found = texts.check_workflow(text, namespace=namespace, name=name, integrations=types)
    if wf is None:
        return problems.invalid(found)
    return wf


@router.post(NS, status_code=201, response_model=models.WorkflowDoc, responses=INVALID)
async def create_workflow(
    namespace: str,
    body: models.YamlBody,
    me: deps.Me,
    be: deps.Backend,
    response: fastapi.Response,
) -> Any:
    wf = await _checked(be, me, namespace, body.yaml)
    if isinstance(wf, fastapi.Response):
        return wf
    doc = await be.save_workflow(me, namespace, wf.metadata.name, body.yaml, create=True)
    response.headers["Location"] = f"workflows/{wf.metadata.name}"
    return _etag(doc, response)


@router.put(NS + "/{name}", response_model=models.WorkflowDoc, responses=INVALID)
async def update_workflow(
    namespace: str,
    name: str,
    body: models.YamlBody,
    me: deps.Me,
    be: deps.Backend,
    response: fastapi.Response,
    if_match: Annotated[str | None, fastapi.Header()] = None,
) -> Any:
    wf = await _checked(be, me, namespace, body.yaml, name)
    if isinstance(wf, fastapi.Response):
        return wf
    version = if_match.strip().removeprefix("W/").strip('"') if if_match else None
    doc = await be.save_workflow(me, namespace, name, body.yaml, create=False, if_match=version)
    return _etag(doc, response)


@router.delete(NS + "/{name}", status_code=204, responses=INVALID)
async def delete_workflow(namespace: str, name: str, me: deps.Me, be: deps.Backend) -> None:
    await be.delete_workflow(me, namespace, name)


@router.post("/validate", response_model=models.Validation)
async def validate(
    body: models.YamlBody,
    me: deps.Me,
    be: deps.Backend,
    namespace: str | None = None,
) -> dict[str, Any]:
    types = await be.integration_types(me, namespace) if namespace else None
    wf, found = texts.check_workflow(body.yaml, namespace=namespace, integrations=types)
    return {"valid": wf is not None, "problems": [texts.problem_json(p) for p in found]}


@router.get(NS + "/{name}/versions", response_model=models.VersionList, responses=INVALID)
async def versions(namespace: str, name: str, me: deps.Me, be: deps.Backend) -> dict[str, Any]:
    await be.check_runs_access(me, namespace, "list")
    return {"items": await be.views.versions(namespace, name)}


@router.get(
    NS + "/{name}/versions/{spec_hash}", response_model=models.VersionDoc, responses=INVALID
)
async def version(
    namespace: str, name: str, spec_hash: str, me: deps.Me, be: deps.Backend
) -> dict[str, Any]:
    await be.check_runs_access(me, namespace, "get")
    return await be.views.version(namespace, name, spec_hash)
