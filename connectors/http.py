"""The ``http`` connector: one action, ``request``, that calls any HTTP API through httpx.

One step flows through it like this::

    RequestParams ─ url joined to the Integration's baseUrl ─► httpx.Request
      (query, json/form/raw body, Idempotency-Key on unsafe methods)
    ─ http_auth.credentials ─► added on every hop bound for their origin, removed elsewhere
    ─ send; redirects followed here, hop by hop ─► response headers
    ─ body streamed, stopped at maxResponseBytes ─► decoded as JSON or text
    ─ status check ─► RequestOutput, or a RetryableError / PermanentError

5xx, 429, 408, timeouts and dropped connections are ``RetryableError`` (``retry_after`` from
``Retry-After``); other 4xx, oversized responses and unusable parameters are
``PermanentError``. The action never retries: the engine does, honouring ``retry_after``.
Whatever it returns, raises or logs goes through the credentials' redactor first.

All steps of a run share one ``httpx.AsyncClient`` (``ctx.pooled``), which keeps no cookies:
state passes between steps through outputs, never through a hidden cookie jar.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import http
import http.cookiejar
import json
import math
import time
from typing import Any, Literal

import httpx
import pydantic

from autoflow.connectors import http_auth, sdk
from autoflow.crds import errors, meta

connector = sdk.Connector(
    "http", "Call any HTTP API: any method, JSON, form or raw bodies, auth from an Integration."
)

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
Scalar = str | int | float | bool
FormValue = Scalar | list[Scalar]

MIB = 1024 * 1024
RETRY_AFTER_CAP = 3600.0
MAX_REDIRECTS = 20
USER_AGENT = "autoflow"

_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_RETRYABLE_4XX = frozenset({408, 429})
# An error response is read this far whatever maxResponseBytes says: enough to explain it.
_ERROR_BODY_BYTES = 64 * 1024
_MESSAGE_BODY_CHARS = 300
_DETAILS_BODY_CHARS = 2000
# httpcore trace events → what the request was doing, for timeout and connection messages.
_STAGES = {
    "connect_tcp": "connecting to",
    "start_tls": "connecting to",
    "send_request_headers": "sending the request to",
    "send_request_body": "sending the request to",
    "receive_response_headers": "waiting for a response from",
    "receive_response_body": "reading the response from",
}


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
        default=10 * MIB, gt=0, description="A larger response body fails the step."
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
    """Send an HTTP request; output the status, headers and decoded body."""
    base = _base_url(ctx)
    url = _resolve_url(params.url, base, _where(ctx, "url"))
    credentials = http_auth.credentials(ctx, base or url)
    if not credentials.allows(url):
        raise errors.PermanentError(
            f"url {credentials.redactor.text(str(url))} is outside the Integration's baseUrl "
            f"{base}; its credentials are only sent there",
            _where(ctx, "url"),
        )
    client = await ctx.pooled("http.client", _new_client)
    return await _Exchange(params, ctx, credentials, client).run(url)


async def _new_client() -> httpx.AsyncClient:
    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(headers={"User-Agent": USER_AGENT}, cookies=no_cookies)


class _Exchange:
    """One request and its redirects, and what error messages need: where it got to."""

    def __init__(
        self,
        params: RequestParams,
        ctx: sdk.ActionContext,
        credentials: http_auth.Credentials,
        client: httpx.AsyncClient,
    ) -> None:
        self.params = params
        self.ctx = ctx
        self.credentials = credentials
        self.redact = credentials.redactor
        self.client = client
        self.seconds = meta.parse_duration(params.timeout)
        self.stage = "connecting to"
        self.url = ""  # the current hop's URL, redacted, for messages

    async def run(self, url: httpx.URL) -> RequestOutput:
        request = self._build(url)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.seconds):
                response, body = await self._send(request)
        except (TimeoutError, httpx.TimeoutException):
            raise errors.RetryableError(
                f"timed out after {_seconds_text(self.seconds)} {self.stage} {self.url}",
                self._where(),
            ) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        status = response.status_code
        headers = self._headers(response)
        self.ctx.log.debug("%s %s -> %d in %.0f ms", request.method, self.url, status, elapsed_ms)
        if self.params.fail_on_status and status >= 400:
            raise self._status_error(response, headers, body)
        return RequestOutput(
            status=status,
            headers=headers,
            body=self.redact.value(self._decode(response, headers, body)),
            url=self.url,
            elapsed_ms=round(elapsed_ms, 3),
        )

    def _build(self, url: httpx.URL) -> httpx.Request:
        p = self.params
        headers = httpx.Headers(p.headers)
        if p.method in _UNSAFE_METHODS and "idempotency-key" not in headers:
            headers["Idempotency-Key"] = self.ctx.idempotency_key
        content: bytes | None = None
        if "json_body" in p.model_fields_set:
            try:
                content = json.dumps(p.json_body, ensure_ascii=False, allow_nan=False).encode()
            except (TypeError, ValueError) as exc:
                raise errors.PermanentError(
                    f"json body is not JSON: {exc}", self._where("json")
                ) from None
            headers.setdefault("Content-Type", "application/json")
        elif p.body is not None:
            content = p.body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        if p.query:
            # Merged here: httpx's own `params=` replaces the query written in the url.
            url = url.copy_merge_params(p.query)
        return self.client.build_request(
            p.method,
            url,
            headers=headers,
            content=content,
            data=p.form,
            timeout=self.seconds,
            extensions={"trace": self._trace},
        )

    async def _trace(self, event: str, info: dict[str, Any]) -> None:
        _, _, step = event.partition(".")
        name, _, phase = step.rpartition(".")
        if phase == "started" and name in _STAGES:
            self.stage = _STAGES[name]

    async def _send(self, request: httpx.Request) -> tuple[httpx.Response, bytes]:
        for _ in range(MAX_REDIRECTS + 1):
            self.credentials.apply(request)
            self.url = self.redact.text(str(request.url))
            self.stage = "connecting to"
            response = await self.client.send(request, stream=True, follow_redirects=False)
            try:
                follow = response.next_request if self.params.follow_redirects else None
                if follow is None:
                    return response, await self._read(response)
            finally:
                await response.aclose()
            if follow.url.scheme not in ("http", "https"):
                raise errors.PermanentError(
                    f"{self.url} redirected to a non-HTTP URL: {self.redact.text(str(follow.url))}",
                    self._where(),
                )
            request = follow
        raise errors.PermanentError(
            f"more than {MAX_REDIRECTS} redirects, the last to {self.url}", self._where()
        )

    async def _read(self, response: httpx.Response) -> bytes:
        failing = self.params.fail_on_status and response.status_code >= 400
        limit = self.params.max_response_bytes
        if failing:
            limit = min(limit, _ERROR_BODY_BYTES)
        declared = response.headers.get("content-length", "")
        if not failing and declared.isdigit() and int(declared) > limit:
            raise self._too_large(response, f"is {int(declared)} bytes, larger than")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                if failing:
                    return bytes(body[:limit])
                raise self._too_large(response, "is larger than")
        return bytes(body)

    def _too_large(self, response: httpx.Response, how: str) -> errors.PermanentError:
        limit = self.params.max_response_bytes
        return errors.PermanentError(
            f"the response from {self.url} {how} maxResponseBytes ({limit} bytes, "
            f"{limit / MIB:.1f} MiB); raise maxResponseBytes or ask the API for less",
            self._where("maxResponseBytes"),
            details={"status": response.status_code, "headers": self._headers(response)},
        )

    def _decode(self, response: httpx.Response, headers: dict[str, str], body: bytes) -> Any:
        wanted = self.params.response_type
        if wanted == "json" or (wanted == "auto" and _is_json(headers.get("content-type", ""))):
            if not body.strip():
                return None
            try:
                return json.loads(body)
            except ValueError as exc:
                if wanted == "json":
                    text = self.redact.text(_text(response, body))
                    raise errors.PermanentError(
                        f"the response from {self.url} is not JSON ({exc}): "
                        f"{_shorten(text, _MESSAGE_BODY_CHARS)}",
                        self._where("responseType"),
                        details={"status": response.status_code, "headers": headers},
                    ) from None
        return _text(response, body)

    def _status_error(
        self, response: httpx.Response, headers: dict[str, str], body: bytes
    ) -> errors.ConnectorError:
        status = response.status_code
        reason = response.reason_phrase or _reason(status)
        text = self.redact.text(_text(response, body))
        message = f"HTTP {status} {reason} from {response.request.method} {self.url}"
        if snippet := _shorten(text, _MESSAGE_BODY_CHARS):
            message = f"{message}: {snippet}"
        details: dict[str, object] = {
            "status": status,
            "headers": headers,
            "body": text[:_DETAILS_BODY_CHARS],
            "url": self.url,
        }
        if status >= 500 or status in _RETRYABLE_4XX:
            return errors.RetryableError(
                message,
                self._where(),
                retry_after=retry_after(headers.get("retry-after")),
                details=details,
            )
        return errors.PermanentError(message, self._where(), details=details)

    def _transport_error(self, exc: httpx.HTTPError) -> errors.ConnectorError:
        detail = self.redact.text(str(exc)) or type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            return errors.RetryableError(
                f"could not connect to {self.url}: {detail}", self._where()
            )
        if isinstance(exc, httpx.LocalProtocolError | httpx.UnsupportedProtocol):
            return errors.PermanentError(
                f"could not send the request to {self.url}: {detail}", self._where()
            )
        if isinstance(exc, httpx.TransportError):
            return errors.RetryableError(
                f"connection lost {self.stage} {self.url}: {detail}", self._where()
            )
        return errors.PermanentError(f"request to {self.url} failed: {detail}", self._where())

    def _headers(self, response: httpx.Response) -> dict[str, str]:
        return {k.lower(): self.redact.text(v) for k, v in response.headers.items()}

    def _where(self, field: str | None = None) -> errors.Where:
        return _where(self.ctx, field)


def retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP-date), at most 1 hour."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        seconds = (when - (now or datetime.datetime.now(datetime.UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def _base_url(ctx: sdk.ActionContext) -> httpx.URL | None:
    raw = ctx.settings.get("baseUrl")
    if not raw or ctx.integration is None:
        return None
    where = errors.Where(resource=f"Integration/{ctx.integration.name}", field="settings.baseUrl")
    try:
        base = httpx.URL(str(raw).strip())
    except httpx.InvalidURL as exc:
        raise errors.PermanentError(f"baseUrl {raw!r} is not a URL: {exc}", where) from None
    if base.scheme not in ("http", "https") or not base.host:
        raise errors.PermanentError(f"baseUrl {raw!r} must be an http:// or https:// URL", where)
    return base


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
    return errors.Where(step=ctx.step_id, field=f"with.{field}" if field else None)


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def _text(response: httpx.Response, body: bytes) -> str:
    try:
        return body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _seconds_text(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"
