"""Runs: start, list (filters, cursor paging), get with steps, cancel, rerun, retry.

History comes from the run store in both modes, shown to whoever may read the namespace's
runs (``check_runs_access``). A rerun starts the same Workflow with the run's inputs; a retry
starts a new run that takes the failed run's succeeded steps as done (their outputs reused)
and runs the rest.
"""

from __future__ import annotations

from typing import Annotated, Any

import fastapi

from autoflow.crds import errors
from autoflow.runners.definitions import inputs as inputs_mod
from autoflow.webui import backend as backend_mod
from autoflow.webui.api import deps, models
from autoflow.webui.api.routes.workflows import INVALID

router = fastapi.APIRouter(tags=["runs"])
RUNS = "/namespaces/{namespace}/runs"


@router.post(
    "/namespaces/{namespace}/workflows/{name}/runs",
    status_code=201,
    response_model=models.RunId,
    responses=INVALID,
)
async def start_run(
    namespace: str, name: str, body: models.StartRun, me: deps.Me, be: deps.Backend
) -> dict[str, Any]:
    return {"runId": await be.start_run(me, namespace, name, body.inputs)}


@router.get(RUNS, response_model=models.RunPage, responses=INVALID)
async def list_runs(
    namespace: str,
    me: deps.Me,
    be: deps.Backend,
    workflow: str | None = None,
    phase: str | None = None,
    trigger: str | None = None,
    since: float | None = None,
    until: float | None = None,
    q: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    limit: Annotated[int, fastapi.Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, fastapi.Query(max_length=500)] = None,
) -> dict[str, Any]:
    query = backend_mod.RunQuery(workflow, phase, trigger, since, until, q)
    items, nxt = await be.runs_page(me, namespace, query, limit=limit, cursor=cursor)
    return {"items": items, "next": nxt}


@router.get(RUNS + "/{run_id}", response_model=models.RunDetail, responses=INVALID)
async def get_run(namespace: str, run_id: str, me: deps.Me, be: deps.Backend) -> dict[str, Any]:
    return await be.run_detail(me, namespace, run_id)


@router.post(
    RUNS + "/{run_id}/cancel", status_code=202, response_model=models.RunId, responses=INVALID
)
async def cancel_run(namespace: str, run_id: str, me: deps.Me, be: deps.Backend) -> dict[str, Any]:
    await be.cancel_run(me, namespace, run_id)
    return {"runId": run_id}


@router.post(
    RUNS + "/{run_id}/rerun", status_code=201, response_model=models.RunId, responses=INVALID
)
async def rerun(namespace: str, run_id: str, me: deps.Me, be: deps.Backend) -> dict[str, Any]:
    detail = await be.run_detail(me, namespace, run_id)
    given = detail.get("inputs") or {}
    hidden = sorted(name for name, value in given.items() if inputs_mod.is_redacted(value))
    if hidden:
        raise errors.InputError(
            f"run {run_id!r} had secret input(s) {', '.join(hidden)}, whose values the run "
            "store does not show: start a new run and give them"
        )
    new = await be.start_run(me, namespace, detail["workflow"], given)
    return {"runId": new}


@router.post(
    RUNS + "/{run_id}/retry", status_code=201, response_model=models.RunId, responses=INVALID
)
async def retry(namespace: str, run_id: str, me: deps.Me, be: deps.Backend) -> dict[str, Any]:
    await be.check_runs_access(me, namespace, "get")
    return {"runId": await be.retry_run(me, namespace, run_id)}
