"""What every SaaS contract server shares: routes, credential checks, body parsing, violations.

A contract server plays one SaaS service on a ``httpserver.Server``, following that service's
documented contract for the actions the catalogue ships: the method and path, the auth header
form, the content type, the body's fields and types, the response shape, pagination and the
shape of an error. A request that breaks the contract is answered the way the service answers
it (in the service's error shape) *and* recorded in ``violations``, so a test fails both by
its own assertions and by ``assert service.violations == []``::

    class Shop(contract.Service):
        def __init__(self, server):
            super().__init__(server)
            self.on("POST", "/v1/orders", self.create_order)

        def authenticate(self, request):
            contract.bearer(request, TOKEN)

        def error(self, status, message):
            return httpserver.Reply.with_json({"error": message}, status)

        def create_order(self, request):
            order = contract.json_body(request, required={"sku"}, allowed={"sku", "qty"})
            return httpserver.Reply.with_json({"id": 1, **order}, 201)
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Callable, Collection
from typing import Any

import httpserver


class Violation(Exception):
    """A request the real service would refuse; ``status`` is what it answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Service:
    """A fake service on ``server``: subclasses route actions and say how auth and errors look."""

    def __init__(self, server: httpserver.Server) -> None:
        self.server = server
        self.violations: list[str] = []

    def on(
        self,
        method: str,
        path: str,
        handler: Callable[[httpserver.Recorded], httpserver.Reply],
        *,
        authenticated: bool = True,
    ) -> None:
        def answer(request: httpserver.Recorded) -> httpserver.Reply:
            try:
                if authenticated:
                    self.authenticate(request)
                return handler(request)
            except Violation as broken:
                self.violations.append(f"{request.method} {request.path}: {broken.message}")
                return self.error(broken.status, broken.message)

        self.server.route(path, answer, method=method)

    def authenticate(self, request: httpserver.Recorded) -> None:
        raise NotImplementedError

    def error(self, status: int, message: str) -> httpserver.Reply:
        raise NotImplementedError


# Credentials


def bearer(request: httpserver.Recorded, token: str, scheme: str = "Bearer") -> None:
    if request.headers.get("authorization") != f"{scheme} {token}":
        raise Violation(401, f"needs Authorization: {scheme} <token>")


def basic(request: httpserver.Recorded) -> tuple[str, str]:
    """The user name and password of a Basic Authorization header, or a 401 violation."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme != "Basic":
        raise Violation(401, "needs Authorization: Basic")
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    return user, password


def header(request: httpserver.Recorded, name: str, value: str) -> None:
    if request.headers.get(name.lower()) != value:
        raise Violation(401, f"needs the {name} header")


# Bodies


def json_body(
    request: httpserver.Recorded,
    *,
    required: Collection[str] = (),
    allowed: Collection[str] | None = None,
) -> Any:
    """The JSON body of a request sent as application/json, its top-level keys checked."""
    media = request.headers.get("content-type", "").partition(";")[0].strip()
    if media != "application/json":
        raise Violation(415, f"Content-Type must be application/json, not {media or 'none'}")
    try:
        data = request.json()
    except ValueError as exc:
        raise Violation(400, f"the body is not JSON: {exc}") from None
    if isinstance(data, dict):
        fields(data, required=required, allowed=allowed)
    return data


def fields(
    data: dict[str, Any],
    *,
    required: Collection[str] = (),
    allowed: Collection[str] | None = None,
    where: str = "body",
) -> None:
    missing = sorted(set(required) - set(data))
    if missing:
        raise Violation(400, f"{where} misses {', '.join(missing)}")
    if allowed is not None and (unknown := sorted(set(data) - set(allowed))):
        raise Violation(400, f"{where} has unknown fields {', '.join(unknown)}")
    nulls = sorted(k for k, v in data.items() if v is None)
    if nulls:
        raise Violation(400, f"{where} sends null for {', '.join(nulls)}")


def of_type(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise Violation(400, f"{name} must be {getattr(kind, '__name__', kind)}, not {value!r}")
    return value


_BRACKETS = re.compile(r"\[([^\]]*)\]")


def form_body(request: httpserver.Recorded) -> dict[str, Any]:
    """A form-encoded body, ``a[b]=c`` and ``a[0]=c`` nested as Stripe reads them."""
    media = request.headers.get("content-type", "").partition(";")[0].strip()
    if media != "application/x-www-form-urlencoded":
        raise Violation(400, f"Content-Type must be application/x-www-form-urlencoded, not {media}")
    data: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(request.text, keep_blank_values=True):
        head = key.split("[", 1)[0]
        path = [head, *_BRACKETS.findall(key[len(head) :])]
        target: Any = data
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise Violation(400, f"{key} mixes a value and nested fields")
        target[path[-1]] = value
    listed: dict[str, Any] = _listed(data)
    return listed


def _listed(value: Any) -> Any:
    """Nested fields keyed 0, 1, ... as the lists they encode."""
    if not isinstance(value, dict):
        return value
    inner = {k: _listed(v) for k, v in value.items()}
    if inner and all(k.isdigit() for k in inner):
        return [inner[k] for k in sorted(inner, key=int)]
    return inner


def query(request: httpserver.Recorded, name: str) -> str | None:
    """A query parameter given once, or None."""
    values = request.query.get(name)
    if values and len(values) > 1:
        raise Violation(400, f"query parameter {name} given {len(values)} times")
    return values[0] if values else None


def page_of(items: list[Any], start: int, size: int) -> list[Any]:
    return items[start : start + size]
