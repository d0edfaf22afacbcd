"""Integrations: list with health, create and update (secret values write-only), test now,
OAuth2 connect.

Secret values go from the request body into the Integration's Secret (the workspace's secrets
file) and are never returned: the API answers with the names of the stored keys only. The
OAuth2 connect flow goes through ``runners.access.oauth2`` (authlib): ``oauth/start`` answers
the provider's authorization URL (PKCE S256) and sets a sealed cookie (``sealing``: encrypted,
authenticated, ten minutes, HttpOnly, SameSite=Lax, for the callback's path only) holding the
``state``, the PKCE verifier, the Integration and who started it; the provider redirects the
browser to ``oauth/callback``, which opens that cookie, checks ``state`` and the person
against it, exchanges the code, stores the tokens and sends the browser back to the web UI's
Integrations page (``#/integrations?connected=<name>``, or ``?oauthError=<the provider's
error>`` when the person refused). Nothing is kept in the process, so start and callback may
land on different replicas that share the session key. The UI is served at the parent of the
API's mount (``/`` for ``/api``, as ``autoflow webui`` and ``autoflow serve`` do).
"""

from __future__ import annotations

import secrets
import urllib.parse
from typing import Any

import fastapi
from fastapi import responses

from autoflow.crds import errors
from autoflow.runners.access import oauth2
from autoflow.webui import backend as backend_mod
from autoflow.webui.api import deps, models
from autoflow.webui.api.routes.workflows import INVALID

router = fastapi.APIRouter(tags=["integrations"])
NS = "/namespaces/{namespace}/integrations"
STATE_LIFETIME = 600.0  # seconds from oauth/start to the provider's redirect back
PENDING_COOKIE = "autoflow_oauth"


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


def _cookie_path(callback_url: str) -> str:
    # Sent back to the callback only, on whichever replica the provider's redirect lands.
    return urllib.parse.urlsplit(callback_url).path or "/"


@router.get(NS + "/{name}/oauth/start", response_model=models.OAuthStart, responses=INVALID)
async def oauth_start(
    namespace: str,
    name: str,
    request: fastapi.Request,
    response: fastapi.Response,
    me: deps.Me,
    ctx: deps.Ctx,
) -> dict[str, Any]:
    intg, _secret = await ctx.backend.oauth_integration(me, namespace, name)
    assert intg.spec.oauth2 is not None
    state, verifier = oauth2.new_state(), oauth2.new_code_verifier()
    redirect_uri = _callback_url(request)
    pending = {
        "state": state,
        "namespace": namespace,
        "name": name,
        "verifier": verifier,
        "user": me.user,
        "redirect": redirect_uri,
    }
    response.set_cookie(
        PENDING_COOKIE,
        ctx.auth.sealer.seal(pending),
        max_age=int(STATE_LIFETIME),
        httponly=True,
        secure=ctx.auth.secure,
        samesite="lax",  # the provider's redirect back is a top-level GET from its site
        path=_cookie_path(redirect_uri),
    )
    response.headers["Cache-Control"] = "no-store"
    url = oauth2.authorization_url(
        intg.spec.oauth2, redirect_uri, state=state, code_verifier=verifier
    )
    return {"authorizationUrl": url}


def _pending(
    request: fastapi.Request, ctx: deps.Context, me: backend_mod.Person, state: str
) -> dict[str, Any]:
    """The connect this browser started (the sealed cookie), checked against the redirect."""
    cookie = request.cookies.get(PENDING_COOKIE, "")
    if not cookie:
        raise errors.InputError(
            "no OAuth2 connect is pending in this browser: start it again from the Integration"
        )
    pending = ctx.auth.sealer.open(cookie, STATE_LIFETIME)
    if pending is None:
        raise errors.InputError(
            f"the OAuth2 connect state is not valid or older than {STATE_LIFETIME / 60:g} "
            "minutes: start it again from the Integration"
        )
    if not secrets.compare_digest(str(pending.get("state", "")), state or "-"):
        raise errors.InputError("the OAuth2 redirect does not belong to the connect started here")
    if pending.get("user") != me.user:
        raise errors.InputError("the OAuth2 connect was started by someone else: start it again")
    return pending


@router.get("/oauth/callback", name="oauth_callback", include_in_schema=False)
async def oauth_callback(
    request: fastapi.Request,
    me: deps.Me,
    ctx: deps.Ctx,
    code: str = "",
    state: str = "",
    error: str = "",
) -> responses.Response:
    pending = _pending(request, ctx, me, state)
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
    """A redirect to the web UI's Integrations page, which shows the outcome; the pending
    connect's cookie is spent either way."""
    mount = str(request.scope.get("root_path", "")).rstrip("/")
    ui = mount.rsplit("/", 1)[0] + "/"
    target = f"{ui}#/integrations?{urllib.parse.urlencode(query)}"
    back = responses.RedirectResponse(target, status_code=303)
    back.delete_cookie(PENDING_COOKIE, path=_cookie_path(_callback_url(request)))
    back.headers["Cache-Control"] = "no-store"
    return back
