"""The ``http`` connector: one action, ``request``, that calls any HTTP API through httpx.

One step flows through it like this::

    RequestParams ─ url joined to the Integration's baseUrl ─► httpx.Request
      (query, json/form/raw body, Idempotency-Key on unsafe methods)
    ─ http_auth.credentials ─► added on every hop bound for their origin, removed elsewhere
    ─ send; redirects followed here, hop by hop ─► response headers
    ─ body streamed and decompressed, stopped at maxResponseBytes (at most 64 MiB)
      ─► decoded as JSON or text
    ─ status check ─► RequestOutput, or a RetryableError / PermanentError

5xx, 429, 408, timeouts and dropped connections are ``RetryableError`` (``retry_after`` from
``Retry-After``); other 4xx, oversized responses and unusable parameters are
``PermanentError``. The action never retries: the engine does, honouring ``retry_after``.
Whatever it returns, raises or logs goes through the credentials' redactor first.

This module turns the step's parameters into a request; sending it (limits, redirects, error
mapping, redaction) is ``http_core.Exchange``, shared with the declarative SaaS connectors.
The health probe (``probe``) sends one GET to ``settings.baseUrl`` (or ``settings.healthPath``
under it) through the same exchange, with the Integration's auth.
All steps of a run share one ``httpx.AsyncClient`` (``ctx.pooled``), which keeps no cookies:
state passes between steps through outputs, never through a hidden cookie jar.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import httpx
import pydantic

from autoflow.connectors import sdk
from autoflow.connectors.sdk import http_auth, http_core
from autoflow.crds import errors, meta

connector = sdk.Connector(
    "http", "Call any HTTP API: any method, JSON, form or raw bodies, auth from an Integration."
)

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
Scalar = str | int | float | bool
FormValue = Scalar | list[Scalar]

MIB = http_core.MIB
retry_after = http_core.retry_after


class IntegrationSettings(sdk.Params):
    """The ``settings`` of an ``http`` Integration, as the request and auth code read them."""

    base_url: str | None = pydantic.Field(
        default=None,
        description="Relative step URLs are joined to it; credentials go to its origin only.",
    )
    auth: Literal["none", "bearer", "oauth2", "basic", "header", "query"] = pydantic.Field(
        default="none",
        description="bearer: secret token; oauth2: the Integration's OAuth2 accessToken; "
        "basic: username and password; header/query: apiKey under headerName/queryName.",
    )
    header_name: str | None = pydantic.Field(default=None, description="With auth: header.")
    query_name: str | None = pydantic.Field(default=None, description="With auth: query.")
    health_path: str | None = pydantic.Field(
        default=None, description="What the health probe GETs under baseUrl (else baseUrl)."
    )


connector.integration_form(
    IntegrationSettings,
    token="the bearer token (auth: bearer)",
    accessToken="kept current by the Integration's oauth2 flow (auth: oauth2)",
    username="auth: basic",
    password="auth: basic",
    apiKey="auth: header or query",
)


class RequestParams(sdk.Params):
    url: str = pydantic.Field(
        min_length=1,
        description="http:// or https:// URL; a relative one is joined to the Integration's "
        "baseUrl (baseUrl's path, then this path and query).",
    )
    method: Method = "GET"
    headers: dict[str, str] = pydantic.Field(default_factory=dict)
    query: dict[str, FormValue] = pydantic.Field(
        default_factory=dict, description="Query parameters; a list repeats the parameter."
    )
    json_body: Any = pydantic.Field(
        default=None, alias="json", description="A JSON body (any JSON value)."
    )
    form: dict[str, FormValue] | None = pydantic.Field(
        default=None, description="A form body (application/x-www-form-urlencoded)."
    )
    body: str | None = pydantic.Field(
        default=None, description="A raw text body (text/plain unless Content-Type is set)."
    )
    timeout: meta.Duration = pydantic.Field(
        default="30s", description="For the whole exchange, redirects and body included."
    )
    max_response_bytes: int = pydantic.Field(
        default=10 * MIB,
        gt=0,
        description="A larger response body (decompressed) fails the step. At most "
        f"{http_core.MAX_RESPONSE_BYTES} ({http_core.MAX_RESPONSE_BYTES // MIB} MiB).",
        json_schema_extra={"maximum": http_core.MAX_RESPONSE_BYTES},
    )
    response_type: Literal["auto", "json", "text"] = pydantic.Field(
        default="auto", description="auto: JSON when the Content-Type is JSON, else text."
    )
    follow_redirects: bool = True
    fail_on_status: bool = pydantic.Field(
        default=True, description="Fail the step on a 4xx or 5xx status (3xx is an output)."
    )

    @pydantic.field_validator("method", mode="before")
    @classmethod
    def _method_upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @pydantic.field_validator("headers", mode="before")
    @classmethod
    def _header_values_as_text(cls, value: Any) -> Any:
        # YAML turns `X-Limit: 10` into a number; a header value is text either way.
        if isinstance(value, dict):
            return {k: _scalar_text(v) for k, v in value.items()}
        return value

    @pydantic.field_validator("headers")
    @classmethod
    def _headers_ascii(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not (name.isascii() and text.isascii()):
                raise ValueError(f"header {name!r} is not ASCII; encode it (percent, base64)")
        return value

    @pydantic.field_validator("max_response_bytes")
    @classmethod
    def _response_fits_in_memory(cls, value: int) -> int:
        # The body is held in memory and becomes the step's output (journal, status).
        if value > http_core.MAX_RESPONSE_BYTES:
            raise ValueError(
                f"{value} is more than the maximum, {http_core.MAX_RESPONSE_BYTES} "
                f"({http_core.MAX_RESPONSE_BYTES // MIB} MiB): a response is held in memory "
                "and becomes the step's output; page through larger data"
            )
        return value

    @pydantic.field_validator("timeout")
    @classmethod
    def _timeout_positive(cls, value: str | float | int) -> str | float | int:
        if meta.parse_duration(value) <= 0:
            raise ValueError("timeout must be more than zero")
        return value

    @pydantic.model_validator(mode="after")
    def _one_body(self) -> RequestParams:
        given = [
            alias
            for alias, present in (
                ("json", "json_body" in self.model_fields_set),
                ("form", self.form is not None),
                ("body", self.body is not None),
            )
            if present
        ]
        if len(given) > 1:
            raise ValueError(
                f"give one body at most: json, form or body (got {' and '.join(given)})"
            )
        return self


class RequestOutput(sdk.Output):
    status: int
    headers: dict[str, str] = pydantic.Field(description="Response headers, names lower-cased.")
    body: Any = pydantic.Field(description="Parsed JSON, or text.")
    url: str = pydantic.Field(description="The final URL, after redirects.")
    elapsed_ms: float


@connector.action("request")
async def request(params: RequestParams, ctx: sdk.ActionContext) -> RequestOutput:
    """Send an HTTP request; output the status, headers and decoded body.

    The body is read up to maxResponseBytes (at most 64 MiB), counted after decompression:
    Autoflow asks for gzip or deflate and stops a compressed body as soon as it inflates past
    the limit, so a small "zip bomb" fails the step without filling memory."""
    base = _base_url(ctx)
    url = _resolve_url(params.url, base, _where(ctx, "url"))
    credentials = http_auth.credentials(ctx, base or url)
    if not credentials.allows(url):
        raise errors.PermanentError(
            f"url {credentials.redactor.text(str(url))} is outside the Integration's baseUrl "
            f"{base}; its credentials are only sent there",
            _where(ctx, "url"),
        )
    client = await ctx.pooled(http_core.CLIENT_KEY, http_core.new_client)
    options = http_core.Options(
        timeout=meta.parse_duration(params.timeout),
        max_response_bytes=params.max_response_bytes,
        response_type=params.response_type,
        follow_redirects=params.follow_redirects,
        fail_on_status=params.fail_on_status,
    )
    request = _build(params, ctx, client, url, options.timeout)
    response = await http_core.Exchange(ctx, credentials, client, options).run(request)
    return RequestOutput(
        status=response.status,
        headers=response.headers,
        body=response.body,
        url=response.url,
        elapsed_ms=response.elapsed_ms,
    )


@connector.probe
async def probe(integration: sdk.IntegrationInfo) -> str | sdk.NotProbed:
    """GET settings.baseUrl, or settings.healthPath under it, with the Integration's auth: a
    2xx or 3xx answer is healthy, 401/403 refused credentials, a 5xx or no connection
    unreachable."""
    async with sdk.probe_context(integration) as ctx:
        base = _base_url(ctx)
        if base is None:
            return sdk.NotProbed(
                "it has no settings.baseUrl, so there is no one server to check (its "
                "credentials go to whichever URL a step names); nothing was contacted"
            )
        url = _health_url(ctx, base)
        credentials = http_auth.credentials(ctx, base)
        client = await ctx.pooled(http_core.CLIENT_KEY, http_core.new_client)
        # Not following redirects: a 3xx (say, to a login page) shows the server answers.
        options = http_core.Options(follow_redirects=False, limit_field=None, type_field=None)
        request = client.build_request("GET", url, timeout=options.timeout)
        try:
            response = await http_core.Exchange(ctx, credentials, client, options).run(request)
        except errors.ConnectorError as exc:
            if exc.details.get("status") in (404, 405) and "healthPath" not in ctx.settings:
                exc.message += "; set settings.healthPath to a path it answers, e.g. /health"
            raise http_core.probe_error(exc) from None
    return f"GET {response.url} answered {response.status} {response.reason}"


def _health_url(ctx: sdk.ActionContext, base: httpx.URL) -> httpx.URL:
    """settings.healthPath joined to the baseUrl, as a step's relative url is; else the base."""
    raw = ctx.settings.get("healthPath")
    if raw is None:
        return base
    name = ctx.integration.name if ctx.integration else ""
    where = errors.Where(resource=f"Integration/{name}", field="settings.healthPath")
    try:
        url = _resolve_url(str(raw), base, where)
    except errors.PermanentError as exc:
        raise errors.InvalidSettingsError(exc.message, where) from None
    if http_auth.origin(url) != http_auth.origin(base):
        raise errors.InvalidSettingsError(
            f"healthPath {raw!r} leaves the baseUrl's server; give a path such as /health", where
        )
    return url


def _build(
    p: RequestParams,
    ctx: sdk.ActionContext,
    client: httpx.AsyncClient,
    url: httpx.URL,
    seconds: float,
) -> httpx.Request:
    headers = httpx.Headers(p.headers)
    if p.method in http_core.UNSAFE_METHODS and "idempotency-key" not in headers:
        headers["Idempotency-Key"] = ctx.idempotency_key
    content: bytes | None = None
    if "json_body" in p.model_fields_set:
        try:
            content = json.dumps(p.json_body, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise errors.PermanentError(
                f"json body is not JSON: {exc}", _where(ctx, "json")
            ) from None
        headers.setdefault("Content-Type", "application/json")
    elif p.body is not None:
        content = p.body.encode()
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    if p.query:
        # Merged here: httpx's own `params=` replaces the query written in the url.
        url = url.copy_merge_params(p.query)
    return client.build_request(
        p.method, url, headers=headers, content=content, data=p.form, timeout=seconds
    )


def _base_url(ctx: sdk.ActionContext) -> httpx.URL | None:
    raw = ctx.settings.get("baseUrl")
    if not raw or ctx.integration is None:
        return None
    return http_core.base_url(ctx, str(raw))


def _resolve_url(raw: str, base: httpx.URL | None, where: errors.Where) -> httpx.URL:
    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL as exc:
        raise errors.PermanentError(f"{raw!r} is not a URL: {exc}", where) from None
    if not url.scheme and not url.host:
        if base is None:
            raise errors.PermanentError(
                f"{raw!r} is a relative URL but the step's Integration has no baseUrl; "
                "write the whole URL, starting http:// or https://",
                where,
            )
        url = _join(base, url)
    if url.scheme not in ("http", "https"):
        got = f"{url.scheme}:" if url.scheme else "no scheme"
        raise errors.PermanentError(
            f"{raw!r} must start with http:// or https:// (got {got})", where
        )
    if not url.host:
        raise errors.PermanentError(f"{raw!r} has no host", where)
    return url


def _join(base: httpx.URL, relative: httpx.URL) -> httpx.URL:
    """baseUrl's path, then the relative path and query: ``/v1`` + ``users`` → ``/v1/users``."""
    base_path = base.raw_path.partition(b"?")[0].rstrip(b"/")
    tail = relative.raw_path
    joined = base_path + tail if tail.startswith(b"?") else base_path + b"/" + tail.lstrip(b"/")
    return base.copy_with(raw_path=joined or b"/", fragment=relative.fragment or None)


def _where(ctx: sdk.ActionContext, field: str | None = None) -> errors.Where:
    return http_core.where(ctx, field)


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value
