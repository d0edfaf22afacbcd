"""Integrations: list with health, create and update (secret values write-only), test now,
OAuth2 connect.

Secret values go from the request body into the Integration's Secret (the workspace's secrets
file) and are never returned: the API answers with the names of the stored keys only. The
OAuth2 connect flow goes through ``runners.access.oauth2`` (authlib): ``oauth/start`` answers
the provider's authorization URL (PKCE S256, a ``state`` kept here), the provider redirects
the browser to ``oauth/callback``, which exchanges the code, stores the tokens and sends the
browser back to the web UI's Integrations page (``#/integrations?connected=<name>``, or
``?oauthError=<the provider's error>`` when the person refused). The UI is served at the
parent of the API's mount (``/`` for ``/api``, as ``autoflow webui`` and ``autoflow serve``
do).
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

import fastapi
from fastapi import responses

from autoflow.crds import errors
from autoflow.runners.access import oauth2
from autoflow.webui.api import deps, models
from autoflow.webui.api.routes.workflows import INVALID

router = fastapi.APIRouter(tags=["integrations"])
NS = "/namespaces/{namespace}/integrations"
STATE_LIFETIME = 600.0


@router.get(NS, response_model=models.IntegrationList, responses=INVALID)
async def list_integrations(namespace: str, me: deps.Me, be: deps.Backend) -> dict[str, Any]:
    return {"items": await be.list_integrations(me, namespace)}


@router.post(NS, status_code=201, response_model=models.IntegrationView, responses=INVALID)
async def create_integration(
    namespace: str, body: models.IntegrationBody, me: deps.Me, be: deps.Backend
) -> dict[str, Any]:
    if not body.name:
        raise errors.InputError("an Integration needs a name", errors.Where(field="name"))
    return await be.save_integration(me, namespace, body.name, body.spec, body.secrets, create=True)


@router.put(NS + "/{name}", response_model=models.IntegrationView, responses=INVALID)
async def update_integration(
    namespace: str, name: str, body: models.IntegrationBody, me: deps.Me, be: deps.Backend
) -> dict[str, Any]:
    return await be.save_integration(me, namespace, name, body.spec, body.secrets, create=False)


@router.post(NS + "/{name}/test", response_model=models.Health, responses=INVALID)
async def test_integration(
    namespace: str, name: str, me: deps.Me, be: deps.Backend
) -> dict[str, Any]:
    return await be.test_integration(me, namespace, name)


def _callback_url(request: fastapi.Request) -> str:
    return str(request.url_for("oauth_callback"))


@router.get(NS + "/{name}/oauth/start", response_model=models.OAuthStart, responses=INVALID)
async def oauth_start(
    namespace: str, name: str, request: fastapi.Request, me: deps.Me, ctx: deps.Ctx
) -> dict[str, Any]:
    intg, _secret = await ctx.backend.oauth_integration(me, namespace, name)
    assert intg.spec.oauth2 is not None
    state, verifier = oauth2.new_state(), oauth2.new_code_verifier()
    now = time.time()
    for key in [k for k, v in ctx.oauth_states.items() if v["at"] < now - STATE_LIFETIME]:
        ctx.oauth_states.pop(key, None)
    redirect_uri = _callback_url(request)
    ctx.oauth_states[state] = {
        "namespace": namespace,
        "name": name,
        "verifier": verifier,
        "at": now,
        "user": me.user,
        "redirect": redirect_uri,
    }
    url = oauth2.authorization_url(
        intg.spec.oauth2, redirect_uri, state=state, code_verifier=verifier
    )
    return {"authorizationUrl": url}


@router.get("/oauth/callback", name="oauth_callback", include_in_schema=False)
async def oauth_callback(
    request: fastapi.Request,
    me: deps.Me,
    ctx: deps.Ctx,
    code: str = "",
    state: str = "",
    error: str = "",
) -> responses.Response:
    pending = ctx.oauth_states.pop(state, None)
    expired = pending is None or pending["at"] < time.time() - STATE_LIFETIME
    if pending is None or expired or pending["user"] != me.user:
        raise errors.InputError("the OAuth2 redirect does not belong to a connect started here")
    namespace, name = pending["namespace"], pending["name"]
    if error or not code:
        return _back_to_ui(request, oauthError=error or "no code", integration=name)
    intg, secret = await ctx.backend.oauth_integration(me, namespace, name)
    assert intg.spec.oauth2 is not None
    token = await oauth2.exchange_code(
        intg.spec.oauth2,
        secret,
        code,
        pending["redirect"],
        pending["verifier"],
        integration_name=name,
    )
    await ctx.backend.store_token(me, namespace, name, token.to_secret_data())
    return _back_to_ui(request, connected=name)


def _back_to_ui(request: fastapi.Request, **query: str) -> responses.Response:
    """A redirect to the web UI's Integrations page, which shows the outcome."""
    mount = str(request.scope.get("root_path", "")).rstrip("/")
    ui = mount.rsplit("/", 1)[0] + "/"
    target = f"{ui}#/integrations?{urllib.parse.urlencode(query)}"
    return responses.RedirectResponse(target, status_code=303)
