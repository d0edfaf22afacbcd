"""The webhook gateway: an ASGI app (Starlette) that turns authenticated requests into runs.

``create_app(routes_source, launcher, store, settings)`` serves, whether it is the root app
or mounted at ``/hooks`` (it reads the full request path)::

    POST /hooks/<namespace><path>
      route = source.table.find(namespace, path)               404 no webhook here
      pool-only gateway (cluster) and a job-mode Workflow      409
      method in route.trigger.methods                          405 (Allow: ...)
      body = read at most maxBodyBytes, streamed               413
      verifier(secret).verify(body, headers, now)              401 (503: secret missing)
      parsed = JSON | form | text                              400
      inputs = route.inputs.render({body, headers, query})     400 (mapping failed)
      started = launcher.launch(RunRequest(..., dedupe_key=f"{route.key}:{delivery id}"))
      async: 202 {runId, status, duplicate}        a redelivery: the first delivery's run
      sync:  launcher.wait(run, timeout) ─ ended: statusCode, the chosen output (or all)
                                         ─ failed: 500 {runId, phase, error}
                                         ─ not yet: 202 as async
    GET /hooks/-/runs/<namespace>/<run id>   a run's phase, from the store ("-" is no namespace)
    GET /hooks/-/healthz                     200 once the route table is loaded

Every refusal is JSON ``{"error": <short reason>}``. The log line of a request names the
route, the workflow, the outcome and the run id; never the body, a header's value, a
signature or a secret. Metrics: ``autoflow_webhook_requests_total{outcome}`` and
``autoflow_webhook_dedupe_hits_total``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from typing import Any

import prometheus_client
from starlette import applications, requests, responses
from starlette import routing as st_routing

from autoflow.crds import errors, meta
from autoflow.runners import pool
from autoflow.runners.definitions import triggers
from autoflow.runners.gateway import auth, routes, sources
from autoflow.runners.gateway import settings as settings_mod
from autoflow.runners.local import run as local_run

log = logging.getLogger("autoflow.gateway")

REQUESTS = prometheus_client.Counter(
    "autoflow_webhook_requests",
    "Webhook requests by outcome: started, duplicate, sync, not_found, not_pool, method, "
    "too_large, unauthorized, bad_request, unavailable",
    ["outcome"],
)
DEDUPE_HITS = prometheus_client.Counter(
    "autoflow_webhook_dedupe_hits",
    "Redelivered webhooks answered with the first delivery's run instead of a new one",
)

DEFAULT_DELIVERY_HEADERS = {
    "standardWebhooks": "webhook-id",
    "github": "x-github-delivery",
}
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_DELIVERY_ID = 512
_VERIFIERS_KEPT = 1024


class _Refusal(Exception):
    """``reason`` goes to the sender; ``logged`` (default: the reason) to the log, and must
    hold nothing of the request (a reason about inputs may quote the sender's values)."""

    def __init__(
        self, status: int, reason: str, outcome: str, logged: str | None = None, **headers: str
    ) -> None:
        super().__init__(reason)
        self.status, self.reason, self.outcome, self.headers = status, reason, outcome, headers
        self.logged = reason if logged is None else logged


class Gateway:
    """The request handling, independent of how the app is assembled."""

    def __init__(
        self,
        source: sources.RoutesSource,
        launcher: pool.Launcher,
        store: Any,
        settings: settings_mod.Settings,
    ) -> None:
        self.source = source
        self.launcher = launcher
        self.store = store
        self.settings = settings
        # By route object (kept, so its id is not reused) and secret: a changed Workflow or a
        # rotated secret makes a new verifier.
        self._verifiers: dict[tuple[int, str | None], tuple[routes.Route, auth.Verifier]] = {}

    async def handle(self, request: requests.Request) -> responses.Response:
        try:
            return await self._handle(request)
        except _Refusal as refusal:
            REQUESTS.labels(refusal.outcome).inc()
            log.info(
                "webhook %s %s refused: %s %s",
                request.method,
                request.scope["path"],
                refusal.status,
                refusal.logged,
            )
            return responses.JSONResponse(
                {"error": refusal.reason}, refusal.status, headers=refusal.headers or None
            )

    async def _handle(self, request: requests.Request) -> responses.Response:
        path: str = request.scope["path"]
        parts = path.split("/", 3)  # "", "hooks", namespace, rest
        if len(parts) < 4 or parts[1] != routes.PREFIX.strip("/"):
            raise _Refusal(404, "no webhook at this path", "not_found")
        namespace, rest = parts[2], "/" + parts[3].rstrip("/")
        if namespace == "-":
            return await self._own(request, rest)
        route = self.source.table.find(namespace, rest)
        if route is None:
            raise _Refusal(404, "no webhook at this path", "not_found")
        hook = route.trigger
        runtime = route.workflow.spec.runtime
        if self.settings.pool_only and (runtime is None or runtime.mode != "pool"):
            reason = "this Workflow runs in job mode; webhooks start pool runs (runtime.mode: pool)"
            raise _Refusal(409, reason, "not_pool")
        if request.method not in hook.methods:
            raise _Refusal(405, "method not allowed", "method", Allow=", ".join(hook.methods))
        # ASGI header names are lower case already; latin-1 as Starlette decodes them.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
        body = await _read_body(request, hook.max_body_bytes, headers.get("content-length"))
        verifier = await self._verifier(route)
        try:
            verifier.verify(body, headers, time.time())
        except auth.Refused as exc:
            raise _Refusal(exc.status, exc.reason, "unauthorized") from None
        parsed = _parse_body(body, headers.get("content-type", ""))
        raw_query = request.scope.get("query_string", b"").decode("latin-1")
        query = dict(reversed(urllib.parse.parse_qsl(raw_query)))  # the first value of each
        scope = {"body": parsed, "headers": headers, "query": query}
        inputs = _inputs(route, scope)
        delivery = _delivery_id(route, scope, parsed)
        request_ = pool.RunRequest(
            namespace=route.namespace,
            workflow=route.name,
            inputs=inputs,
            trigger="webhook",
            started_by=f"webhook:{route.url_path}",
            dedupe_key=f"{route.key}:{delivery}" if delivery else None,
        )
        try:
            started = await self.launcher.launch(request_)
        except errors.InputError as exc:
            raise _Refusal(
                400, f"inputs: {exc.message}", "bad_request", "inputs refused by the Workflow"
            ) from None
        except Exception:
            log.exception("webhook %s: could not start a run of %s", path, route.name)
            raise _Refusal(503, "could not start the run; try again", "unavailable") from None
        if started.duplicate:
            DEDUPE_HITS.inc()
        status_url = self._status_url(request, route.namespace, started.run_id)
        accepted = {"runId": started.run_id, "status": status_url, "duplicate": started.duplicate}
        if hook.response.mode == "sync":
            timeout = min(
                meta.parse_duration(hook.response.timeout), self.settings.max_sync_seconds
            )
            outcome = await self.launcher.wait(started.run_id, timeout)
            if outcome is not None:
                REQUESTS.labels("sync").inc()
                log.info(
                    "webhook %s: run %s of %s/%s %s",
                    path,
                    started.run_id,
                    route.namespace,
                    route.name,
                    outcome.phase,
                )
                return _sync_answer(route, outcome)
        REQUESTS.labels("duplicate" if started.duplicate else "started").inc()
        log.info(
            "webhook %s: run %s of %s/%s %s",
            path,
            started.run_id,
            route.namespace,
            route.name,
            "(redelivery: the first delivery's run)" if started.duplicate else "started",
        )
        return responses.JSONResponse(accepted, 202, headers={"Location": status_url})

    async def _verifier(self, route: routes.Route) -> auth.Verifier:
        ref = route.trigger.secret_ref
        secret = None
        if ref is not None:
            secret = await self.source.secret(route.namespace, ref)
            if secret is None:
                log.warning(
                    "webhook %s: Secret %r has no key %r (locally: %s)",
                    route.url_path,
                    ref.name,
                    ref.key,
                    local_run.secret_env_name(ref.name, ref.key),
                )
                raise _Refusal(503, "the webhook's secret is not available", "unavailable")
        cache_key = (id(route), secret)
        cached = self._verifiers.get(cache_key)
        verifier = cached[1] if cached is not None and cached[0] is route else None
        if verifier is None:
            try:
                verifier = auth.verifier_for(route.trigger.auth, secret)
            except ValueError as exc:
                log.warning("webhook %s: its secret cannot be used: %s", route.url_path, exc)
                raise _Refusal(503, "the webhook's secret is not usable", "unavailable") from None
            if len(self._verifiers) >= _VERIFIERS_KEPT:
                self._verifiers.clear()
            self._verifiers[cache_key] = (route, verifier)
        return verifier

    def _status_url(self, request: requests.Request, namespace: str, run_id: str) -> str:
        base = self.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
        return f"{base}{routes.PREFIX}/-/runs/{namespace}/{urllib.parse.quote(run_id, safe='')}"

    async def _own(self, request: requests.Request, rest: str) -> responses.Response:
        if rest == "/healthz":
            return responses.JSONResponse({"routes": len(self.source.table.routes())})
        parts = rest.split("/")
        if len(parts) == 4 and parts[1] == "runs" and request.method == "GET":
            if self.store is None:
                raise _Refusal(404, "no run store here", "not_found")
            detail = await self.store.get_run(urllib.parse.unquote(parts[3]))
            if detail is None or detail.summary.namespace != parts[2]:
                raise _Refusal(404, "no such run", "not_found")
            summary = detail.summary
            return responses.JSONResponse(
                {
                    "runId": summary.run_id,
                    "workflow": summary.workflow,
                    "namespace": summary.namespace,
                    "phase": summary.phase,
                    "startedAt": summary.started_at,
                    "finishedAt": summary.finished_at,
                }
            )
        raise _Refusal(404, "no webhook at this path", "not_found")


async def _read_body(request: requests.Request, limit: int, declared: str | None) -> bytes:
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _Refusal(413, f"body larger than {limit} bytes", "too_large")
        except ValueError:
            raise _Refusal(400, "bad Content-Length", "bad_request") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # stop reading: the rest is never buffered
            raise _Refusal(413, f"body larger than {limit} bytes", "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_body(body: bytes, content_type: str) -> Any:
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return None
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise _Refusal(400, "body is not valid JSON", "bad_request") from None
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise _Refusal(400, "body is not UTF-8 text", "bad_request") from None
    if kind == "application/x-www-form-urlencoded":
        form = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
        if "payload" in form and len(form) == 1:  # GitHub's form-encoded deliveries
            try:
                return json.loads(form["payload"])
            except (ValueError, RecursionError):
                raise _Refusal(400, "payload is not valid JSON", "bad_request") from None
        return form
    return text


def _inputs(route: routes.Route, scope: Mapping[str, Any]) -> dict[str, Any]:
    if route.inputs is None:
        return triggers.declared_inputs(scope["body"], route.workflow)
    try:
        return route.inputs.render(scope)
    except errors.ExpressionEvalError as exc:
        field = exc.where.field or "inputs"
        reason = f"cannot map the request to inputs ({field})"
        raise _Refusal(400, f"{reason}: {exc.message}", "bad_request", reason) from None


def _delivery_id(route: routes.Route, scope: Mapping[str, Any], body: Any) -> str | None:
    spec = route.trigger.delivery_id
    headers: Mapping[str, str] = scope["headers"]
    value: Any = None
    if spec is not None and spec.header is not None:
        value = headers.get(spec.header.lower())
    elif route.delivery is not None:
        try:
            value = route.delivery(scope)
        except errors.ExpressionEvalError:
            value = None
    else:
        scheme = route.trigger.auth.scheme
        if scheme in DEFAULT_DELIVERY_HEADERS:
            value = headers.get(DEFAULT_DELIVERY_HEADERS[scheme])
        elif scheme == "stripe" and isinstance(body, dict):
            value = body.get("id")
        else:
            value = headers.get(IDEMPOTENCY_HEADER)
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > MAX_DELIVERY_ID:
        raise _Refusal(400, f"delivery id longer than {MAX_DELIVERY_ID} characters", "bad_request")
    return text


def _sync_answer(route: routes.Route, outcome: pool.Outcome) -> responses.Response:
    if outcome.phase != "Succeeded":
        return responses.JSONResponse(
            {"runId": outcome.run_id, "phase": outcome.phase, "error": outcome.error}, 500
        )
    response = route.trigger.response
    body: Any = dict(outcome.outputs)
    if response.output is not None:
        body = outcome.outputs.get(response.output)
    return responses.JSONResponse(
        body, response.status_code, headers={"X-Autoflow-Run-Id": outcome.run_id}
    )


def create_app(
    routes_source: sources.RoutesSource,
    launcher: pool.Launcher,
    store: Any = None,
    settings: settings_mod.Settings | None = None,
) -> applications.Starlette:
    """The gateway as an ASGI app; mount it at ``/hooks`` or serve it as the root app."""
    gateway = Gateway(routes_source, launcher, store, settings or settings_mod.Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: applications.Starlette) -> AsyncIterator[None]:
        await routes_source.start()
        try:
            yield
        finally:
            await routes_source.stop()

    app = applications.Starlette(
        routes=[
            st_routing.Route(
                "/{rest:path}",
                gateway.handle,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
            )
        ],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
