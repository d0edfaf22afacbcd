"""Shared dependencies of every route: the backend and the signed-in person (``Depends``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import fastapi

from autoflow.webui import backend as backend_mod
from autoflow.webui.api import auth


@dataclasses.dataclass(slots=True)
class Context:
    backend: backend_mod.Backend
    auth: auth.Authenticator


def context(request: fastapi.Request) -> Context:
    ctx: Context = request.app.state.autoflow
    return ctx


def person(request: fastapi.Request) -> backend_mod.Person:
    return context(request).auth.person(request)


def backend(request: fastapi.Request) -> backend_mod.Backend:
    return context(request).backend


Ctx = Annotated[Context, fastapi.Depends(context)]
Me = Annotated[backend_mod.Person, fastapi.Depends(person)]
Backend = Annotated[backend_mod.Backend, fastapi.Depends(backend)]
