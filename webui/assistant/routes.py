"""The assistant's web API: ``POST /assistant/draft`` and ``POST /assistant/explain``.

``router(...)`` gives a FastAPI ``APIRouter``; the web API (``autoflow.webui.api.create_app``)
mounts it under ``/api``. It needs a way to reach the model (``client``: called per request,
so a key rotated in the environment or Secret is picked up) and the Integrations of a
namespace (``integrations``: names to types, never secrets)::

    POST /assistant/draft   {prompt, yaml?, namespace}
        200 {yaml, diff, valid, rounds, problems: [{path, line, message}],
             missingIntegrations: [{name, type, steps}], usage}
    POST /assistant/explain {yaml}  200 {text, usage}

A draft that is still invalid after the repairs is a 200 with ``valid: false`` and its
problems, so the panel can show what remains; nothing is saved either way. A provider that
cannot be used answers 502, a request that cannot be, 422, as problem details (RFC 9457).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import fastapi
import pydantic
from fastapi import responses
from pydantic import alias_generators

from autoflow.connectors import registry as registry_mod
from autoflow.connectors.sdk import llm
from autoflow.crds import errors, integration
from autoflow.webui.assistant import draft as draft_mod

ClientFactory = Callable[[], llm.Client]
IntegrationsSource = Callable[[str], Mapping[str, str]]
# The web API's: the Integrations the signed-in person may see in a namespace.
RequestIntegrations = Callable[[fastapi.Request, str], Awaitable[Mapping[str, str]]]


class _Body(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="forbid"
    )


class DraftRequest(_Body):
    prompt: str = pydantic.Field(min_length=1, max_length=8000)
    yaml: str | None = pydantic.Field(default=None, max_length=512_000)
    namespace: str = pydantic.Field(default="default", max_length=253)


class ExplainRequest(_Body):
    yaml: str = pydantic.Field(min_length=1, max_length=512_000)


def integration_types(resources: Iterable[integration.Integration]) -> dict[str, str]:
    """Integrations as the assistant sees them: name to type, nothing else."""
    return {r.metadata.name or "": r.spec.type for r in resources if r.metadata.name}


def _problem(status: int, title: str, detail: str) -> responses.JSONResponse:
    return responses.JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, "problems": []},
        status_code=status,
        media_type="application/problem+json",
    )


# What the document says of the answers that are not a draft (problem details, RFC 9457).
_PROVIDER_FAILED: dict[int | str, dict[str, Any]] = {
    502: {
        "description": "The model provider failed, or none is configured",
        "content": {"application/problem+json": {}},
    }
}


def router(
    *,
    client: ClientFactory | None = None,
    integrations: IntegrationsSource | None = None,
    integrations_for: RequestIntegrations | None = None,
    registry: registry_mod.Registry | None = None,
    repairs: int = draft_mod.DEFAULT_REPAIRS,
    dependencies: Sequence[Any] = (),
) -> fastapi.APIRouter:
    """The assistant's routes. ``client`` None: the provider from the environment
    (``AUTOFLOW_AI_PROVIDER``, default openai, and its key variable). ``dependencies`` run
    before every route: the web API passes its sign-in check (``Depends(deps.person)``), so
    only a signed-in person spends the provider's tokens."""
    routes = fastapi.APIRouter(
        prefix="/assistant", tags=["assistant"], dependencies=list(dependencies)
    )

    def model() -> llm.Client:
        if client is not None:
            return client()
        import os

        provider = os.environ.get("AUTOFLOW_AI_PROVIDER", "openai")
        chosen: llm.Provider = "anthropic" if provider == "anthropic" else "openai"
        return llm.client(llm.config_from_env(chosen))

    @routes.post("/draft", response_model=None, responses=_PROVIDER_FAILED)
    async def draft(body: DraftRequest, request: fastapi.Request) -> Any:
        known = dict(integrations(body.namespace)) if integrations else {}
        if integrations_for is not None:
            known.update(await integrations_for(request, body.namespace))
        try:
            made = await draft_mod.draft(
                model(),
                body.prompt,
                current=body.yaml,
                integrations=known,
                registry=registry,
                repairs=repairs,
            )
        except errors.ConnectorError as exc:
            return _problem(502, "The model provider failed", exc.message)
        return made.as_json()

    @routes.post(
        "/explain",
        response_model=None,
        responses={
            **_PROVIDER_FAILED,
            422: {"description": "Not a Workflow", "content": {"application/problem+json": {}}},
        },
    )
    async def explain(body: ExplainRequest) -> Any:
        try:
            text, usage = await draft_mod.explain(model(), body.yaml)
        except errors.ConnectorError as exc:
            return _problem(502, "The model provider failed", exc.message)
        except errors.ManifestError as exc:
            return _problem(422, "Not a Workflow", exc.message)
        return {"text": text, "usage": usage.as_json()}

    return routes
