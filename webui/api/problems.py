"""Errors as problem details (RFC 9457): ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail`` and, for an invalid Workflow, ``problems``: every finding in the words of
``autoflow validate`` (``{path, line, message, resource, step, field}``).

What the backends raise maps to a status here, once::

    errors.ValidationError, errors.InputError, kube.Invalid    422
    kube.Forbidden 403   kube.NotFound 404   kube.Conflict 409   kube.Unauthorized 401
    NotSignedIn 401      CsrfRefused 403     any other AutoflowError 400
    kube.Unreachable, kube.ServerError, store unavailable       503

A Kubernetes refusal's message is the API server's (it names the user, verb and resource,
which is what a person refused needs to know); nothing here ever quotes a request body.
"""

from __future__ import annotations

from typing import Any

import fastapi
from fastapi import responses

from autoflow.crds import errors
from autoflow.runners import kube
from autoflow.runners import store as store_mod
from autoflow.webui import texts

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://autoflow.dev/problems/"


class NotSignedIn(errors.AutoflowError):
    """No session, or it has expired."""


class CsrfRefused(errors.AutoflowError):
    """An unsafe method without the session's X-CSRF-Token."""


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    problems: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> responses.JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
        "problems": problems or [],
    }
    return responses.JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def invalid(found: list[errors.Problem], detail: str | None = None) -> responses.JSONResponse:
    count = len(found)
    return problem(
        422,
        "Invalid",
        detail or f"{count} problem{'s' if count != 1 else ''} found",
        kind="invalid",
        problems=[texts.problem_json(p) for p in found],
    )


_KUBE: tuple[tuple[type[kube.ApiError], int, str], ...] = (
    (kube.Forbidden, 403, "Forbidden"),
    (kube.NotFound, 404, "Not Found"),
    (kube.Conflict, 409, "Conflict"),
    (kube.Unauthorized, 401, "Unauthorized"),
    (kube.Invalid, 422, "Invalid"),
    (kube.Gone, 410, "Gone"),
    (kube.TooManyRequests, 429, "Too Many Requests"),
)


def from_error(exc: errors.AutoflowError) -> responses.JSONResponse:
    if isinstance(exc, errors.ValidationError):
        return invalid(list(exc.problems))
    if isinstance(exc, NotSignedIn):
        return problem(401, "Not signed in", exc.message, kind="not-signed-in")
    if isinstance(exc, CsrfRefused):
        return problem(403, "CSRF token missing or wrong", exc.message, kind="csrf")
    if isinstance(exc, kube.ApiError):
        for kind, status, title in _KUBE:
            if isinstance(exc, kind):
                return problem(
                    status, title, _kube_detail(exc), kind=title.lower().replace(" ", "-")
                )
        return problem(503, "Kubernetes API unavailable", _kube_detail(exc), kind="unavailable")
    if isinstance(exc, store_mod.StoreUnavailable):
        return problem(503, "Run store unavailable", exc.message, kind="unavailable")
    if isinstance(exc, errors.InputError | errors.ManifestError | errors.ExpressionError):
        return invalid([errors.Problem(exc.message, exc.where)], str(exc))
    return problem(400, "Bad request", str(exc), kind="bad-request")


def _kube_detail(exc: kube.ApiError) -> str:
    return exc.message.removeprefix("Kubernetes API: ")


def install(app: fastapi.FastAPI) -> None:
    async def on_autoflow(request: fastapi.Request, exc: Exception) -> responses.JSONResponse:
        assert isinstance(exc, errors.AutoflowError)
        return from_error(exc)

    async def on_request_invalid(
        request: fastapi.Request, exc: Exception
    ) -> responses.JSONResponse:
        assert isinstance(exc, fastapi.exceptions.RequestValidationError)
        found = [
            {
                "path": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "line": None,
                "message": str(e.get("msg", "invalid")),
                "resource": None,
                "step": None,
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or None,
            }
            for e in exc.errors()
        ]
        return problem(
            422,
            "Invalid request",
            "the request does not match the API",
            kind="invalid-request",
            problems=found,
        )

    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def on_http(request: fastapi.Request, exc: Exception) -> responses.JSONResponse:
        # Starlette's own (an unknown path, a wrong method) as well as FastAPI's subclass.
        assert isinstance(exc, StarletteHTTPException)
        return problem(
            exc.status_code,
            str(exc.detail),
            str(exc.detail),
            kind="http",
            headers=dict(exc.headers or {}),
        )

    app.add_exception_handler(errors.AutoflowError, on_autoflow)
    app.add_exception_handler(fastapi.exceptions.RequestValidationError, on_request_invalid)
    app.add_exception_handler(fastapi.HTTPException, on_http)
    app.add_exception_handler(StarletteHTTPException, on_http)
