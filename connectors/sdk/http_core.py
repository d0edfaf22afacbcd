"""One HTTP exchange as every HTTP-based connector sends it: limits, redirects, errors, redaction.

A connector builds an ``httpx.Request`` (method, URL, headers, body) and hands it to an
``Exchange`` with its ``Options`` and the step's ``http_auth.Credentials``::

    httpx.Request ─ Credentials.apply on every hop (added for their origin, removed elsewhere)
    ─ send; redirects followed here, hop by hop ─► response headers
    ─ body streamed and decompressed piece by piece (gzip, deflate), stopped when the
      decompressed size passes max_response_bytes ─► decoded as JSON or text
    ─ status check (when fail_on_status) ─► Response, or a RetryableError / PermanentError

5xx, 429, 408, timeouts and dropped connections are ``RetryableError`` (``retry_after`` from
``Retry-After``; a connection that fails or drops is its ``UnreachableError`` kind); other 4xx,
oversized responses and undecodable JSON are ``PermanentError``. The size limit counts the
decompressed body, and the body is inflated a bounded piece at a time, so a compressed "bomb"
is stopped at the limit, never inflated in memory first. An exchange never retries: the engine
does, honouring ``retry_after``. Whatever it returns or raises has been through the
credentials' redactor. ``status_error`` builds the error for a 4xx/5xx response, so a
connector that explains errors its own way (the declarative engine, with the service's
message) classifies them the same way.

The ``http`` connector and the declarative SaaS connectors share this module, and one
``httpx.AsyncClient`` per run (``new_client`` under ``ctx.pooled(CLIENT_KEY, ...)``) that
keeps no cookies: state passes between steps through outputs, never through a cookie jar.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import email.utils
import http
import http.cookiejar
import json
import math
import time
import zlib
from collections.abc import Iterator
from typing import Any, Literal

import httpx

from autoflow.connectors import sdk
from autoflow.connectors.sdk import http_auth
from autoflow.crds import errors

MIB = 1024 * 1024
# The most a step may ask to read: a response is held in memory and becomes a step output.
MAX_RESPONSE_BYTES = 64 * MIB
RETRY_AFTER_CAP = 3600.0
MAX_REDIRECTS = 20
USER_AGENT = "autoflow"
ACCEPT_ENCODING = "gzip, deflate"
CLIENT_KEY = "http.client"
DEFAULT_TIMEOUT = 30.0

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRYABLE_4XX = frozenset({408, 429})
# An error response is read this far whatever max_response_bytes says: enough to explain it.
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


async def new_client() -> httpx.AsyncClient:
    """The run's shared client: no cookie jar, Autoflow's User-Agent."""
    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    # Only the encodings _Decoder inflates within the size limit (httpx would add br or zstd
    # when their packages happen to be installed).
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
    return httpx.AsyncClient(headers=headers, cookies=no_cookies)


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """How to carry out one exchange.

    ``limit_field`` and ``type_field`` name the step fields that set ``max_response_bytes``
    and ``response_type``, so an error about them points there; ``None`` where the step has
    no such field.
    """

    timeout: float = DEFAULT_TIMEOUT
    max_response_bytes: int = 10 * MIB
    response_type: Literal["auto", "json", "text"] = "auto"
    follow_redirects: bool = True
    fail_on_status: bool = True
    limit_field: str | None = "maxResponseBytes"
    type_field: str | None = "responseType"


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    """A received response, every string in it already redacted.

    ``text`` is the body as text for a 4xx/5xx status (to explain the error), else empty.
    """

    method: str
    url: str
    status: int
    reason: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or text
    text: str
    elapsed_ms: float


class Exchange:
    """One request and its redirects, and what error messages need: where it got to."""

    def __init__(
        self,
        ctx: sdk.ActionContext,
        credentials: http_auth.Credentials,
        client: httpx.AsyncClient,
        options: Options,
    ) -> None:
        self.ctx = ctx
        self.credentials = credentials
        self.redact = credentials.redactor
        self.client = client
        self.options = options
        self.stage = "connecting to"
        self.url = ""  # the current hop's URL, redacted, for messages
        self._encoding = "identity"  # the response's Content-Encoding, for messages

    async def run(self, request: httpx.Request) -> Response:
        request.extensions["trace"] = self._trace
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.options.timeout):
                response, body = await self._send(request)
        except (TimeoutError, httpx.TimeoutException):
            raise errors.RetryableError(
                f"timed out after {_seconds_text(self.options.timeout)} {self.stage} {self.url}",
                self._where(),
            ) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        status = response.status_code
        headers = self._headers(response)
        self.ctx.log.debug("%s %s -> %d in %.0f ms", request.method, self.url, status, elapsed_ms)
        failed = status >= 400
        result = Response(
            method=response.request.method,
            url=self.url,
            status=status,
            reason=response.reason_phrase or _reason(status),
            headers=headers,
            body=None,
            text=self.redact.text(_text(response, body)) if failed else "",
            elapsed_ms=round(elapsed_ms, 3),
        )
        if failed and self.options.fail_on_status:
            raise status_error(result, self._where())
        decoded = self.redact.value(self._decode(response, headers, body))
        return dataclasses.replace(result, body=decoded)

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
                follow = response.next_request if self.options.follow_redirects else None
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
        """The decompressed body, read until it ends or passes the limit.

        Raw bytes are inflated a bounded piece at a time, so a small compressed body that
        expands to gigabytes costs no more memory than the limit before it is refused.
        """
        failing = self.options.fail_on_status and response.status_code >= 400
        limit = self.options.max_response_bytes
        if failing:
            limit = min(limit, _ERROR_BODY_BYTES)
        declared = response.headers.get("content-length", "")
        if not failing and declared.isdigit() and int(declared) > limit:
            raise self._too_large(response, f"is {int(declared)} bytes, larger than")
        decoder = self._decoder(response)
        body = bytearray()
        async for raw in response.aiter_raw():
            if self._fill(body, decoder.feed(raw, limit + 1 - len(body)), limit):
                break
        else:
            self._fill(body, decoder.finish(limit + 1 - len(body)), limit)
        if len(body) > limit:
            if failing:
                return bytes(body[:limit])
            raise self._too_large(response, "is larger than")
        return bytes(body)

    def _fill(self, body: bytearray, pieces: Iterator[bytes], limit: int) -> bool:
        """Append decoded pieces up to one byte past ``limit``; whether it was passed."""
        try:
            for piece in pieces:
                body += piece[: limit + 1 - len(body)]
                if len(body) > limit:
                    return True
        except zlib.error as exc:
            raise errors.PermanentError(
                f"the response from {self.url} is not valid {self._encoding}: {exc}",
                self._where(),
            ) from None
        return False

    def _decoder(self, response: httpx.Response) -> _Decoder:
        self._encoding = response.headers.get("content-encoding", "identity")
        try:
            return _Decoder(self._encoding)
        except ValueError as exc:
            raise errors.PermanentError(
                f"the response from {self.url} {exc}; Autoflow asks for "
                f"Accept-Encoding: {ACCEPT_ENCODING}",
                self._where("headers"),
            ) from None

    def _too_large(self, response: httpx.Response, how: str) -> errors.PermanentError:
        limit = self.options.max_response_bytes
        field = self.options.limit_field
        size = f"{limit} bytes, {limit / MIB:.1f} MiB"
        limit_text = f"{field} ({size})" if field else f"the limit ({size})"
        hint = f"raise {field} or ask the API for less" if field else "ask the API for less"
        return errors.PermanentError(
            f"the response from {self.url} {how} {limit_text}; {hint}",
            self._where(field),
            details={"status": response.status_code, "headers": self._headers(response)},
        )

    def _decode(self, response: httpx.Response, headers: dict[str, str], body: bytes) -> Any:
        wanted = self.options.response_type
        if wanted == "json" or (wanted == "auto" and is_json(headers.get("content-type", ""))):
            if not body.strip():
                return None
            try:
                return json.loads(body)
            except ValueError as exc:
                if wanted == "json":
                    text = self.redact.text(_text(response, body))
                    raise errors.PermanentError(
                        f"the response from {self.url} is not JSON ({exc}): "
                        f"{shorten(text, _MESSAGE_BODY_CHARS)}",
                        self._where(self.options.type_field),
                        details={"status": response.status_code, "headers": headers},
                    ) from None
        return _text(response, body)

    def _transport_error(self, exc: httpx.HTTPError) -> errors.ConnectorError:
        detail = self.redact.text(str(exc)) or type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            return errors.UnreachableError(
                f"could not connect to {self.url}: {detail}", self._where()
            )
        if isinstance(exc, httpx.LocalProtocolError | httpx.UnsupportedProtocol):
            return errors.PermanentError(
                f"could not send the request to {self.url}: {detail}", self._where()
            )
        if isinstance(exc, httpx.TransportError):
            return errors.UnreachableError(
                f"connection lost {self.stage} {self.url}: {detail}", self._where()
            )
        return errors.PermanentError(f"request to {self.url} failed: {detail}", self._where())

    def _headers(self, response: httpx.Response) -> dict[str, str]:
        return {k.lower(): self.redact.text(v) for k, v in response.headers.items()}

    def _where(self, field: str | None = None) -> errors.Where:
        return where(self.ctx, field)


class _Decoder:
    """Undoes a response's Content-Encoding (gzip, deflate, identity; stacked in any order)
    with bounded output: ``feed`` and ``finish`` yield pieces of at most ``room`` bytes and
    inflate no further than the caller iterates, so stopping at the size limit stops the work.
    """

    def __init__(self, content_encoding: str) -> None:
        names = [n.strip().lower() for n in content_encoding.split(",")]
        names = [n for n in names if n and n != "identity"]
        for name in names:
            if name not in _INFLATE_WBITS:
                raise ValueError(f"is encoded as {name!r}, which Autoflow does not decode")
        # The last encoding applied is the first to undo.
        self._layers = [_Inflater(name) for name in reversed(names)]

    def feed(self, data: bytes, room: int) -> Iterator[bytes]:
        return self._through(0, data, room)

    def finish(self, room: int) -> Iterator[bytes]:
        for index, layer in enumerate(self._layers):
            yield from self._through(index + 1, layer.flush(), room)

    def _through(self, index: int, data: bytes, room: int) -> Iterator[bytes]:
        if index == len(self._layers):
            if data:
                yield data
            return
        layer = self._layers[index]
        while data:
            out, data = layer.inflate(data, room)
            yield from self._through(index + 1, out, room)


class _Inflater:
    """One zlib decompressor; ``deflate`` falls back to a raw stream as browsers do, since
    servers send either under that name."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._zlib = zlib.decompressobj(_INFLATE_WBITS[name])
        self._started = False

    def inflate(self, data: bytes, room: int) -> tuple[bytes, bytes]:
        """At most ``room`` (≥ 1) bytes of output, and the input not yet used."""
        if self._zlib.eof:
            return b"", b""  # trailing bytes after the stream's end are ignored
        try:
            out = self._zlib.decompress(data, max(room, 1))
        except zlib.error:
            if self._name != "deflate" or self._started:
                raise
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, max(room, 1))
        self._started = True
        return out, self._zlib.unconsumed_tail

    def flush(self) -> bytes:
        return b"" if self._zlib.eof else self._zlib.flush()


_INFLATE_WBITS = {
    "gzip": zlib.MAX_WBITS | 16,
    "x-gzip": zlib.MAX_WBITS | 16,
    "deflate": zlib.MAX_WBITS,
}


def status_error(
    response: Response,
    at: errors.Where,
    *,
    explanation: str | None = None,
    prefix: str = "",
    retry: bool | None = None,
    retry_after_seconds: float | None = None,
) -> errors.ConnectorError:
    """The error for a 4xx/5xx response: retryable for 5xx, 408 and 429 unless ``retry`` says.

    The message ends with ``explanation`` (say, the service's own error message) or else the
    start of the body; ``retry_after_seconds`` stands in when there is no ``Retry-After``.
    """
    status = response.status
    message = f"{prefix}HTTP {status} {response.reason} from {response.method} {response.url}"
    if snippet := shorten(explanation or response.text, _MESSAGE_BODY_CHARS):
        message = f"{message}: {snippet}"
    details: dict[str, object] = {
        "status": status,
        "headers": response.headers,
        "body": response.text[:_DETAILS_BODY_CHARS],
        "url": response.url,
    }
    if retry is None:
        retry = status >= 500 or status in RETRYABLE_4XX
    if retry:
        wait = retry_after(response.headers.get("retry-after"))
        return errors.RetryableError(
            message,
            at,
            retry_after=retry_after_seconds if wait is None else wait,
            details=details,
        )
    return errors.PermanentError(message, at, details=details)


def probe_error(exc: errors.ConnectorError) -> errors.ConnectorError:
    """What a health probe makes of a failed HTTP call: a 401 or 403 (not a used-up quota)
    refused the credentials, a 5xx means the service cannot serve now; others stay as they are.
    """
    status = exc.details.get("status")
    kind: type[errors.ConnectorError]
    if status in (401, 403) and not exc.retryable:
        kind = errors.CredentialsRejectedError
    elif isinstance(status, int) and status >= 500:
        kind = errors.UnreachableError
    else:
        return exc
    return kind(exc.message, exc.where, retry_after=exc.retry_after, details=exc.details)


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


def where(ctx: sdk.ActionContext, field: str | None = None) -> errors.Where:
    """The step, and the field of its ``with`` block an error is about."""
    return errors.Where(step=ctx.step_id, field=f"with.{field}" if field else None)


def base_url(ctx: sdk.ActionContext, raw: str) -> httpx.URL:
    """An Integration's ``settings.baseUrl``, checked: an http(s) URL with a host."""
    name = ctx.integration.name if ctx.integration else ""
    at = errors.Where(resource=f"Integration/{name}", field="settings.baseUrl")
    try:
        base = httpx.URL(raw.strip())
    except httpx.InvalidURL as exc:
        raise errors.InvalidSettingsError(f"baseUrl {raw!r} is not a URL: {exc}", at) from None
    if base.scheme not in ("http", "https") or not base.host:
        raise errors.InvalidSettingsError(f"baseUrl {raw!r} must be an http:// or https:// URL", at)
    return base


def is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _text(response: httpx.Response, body: bytes) -> str:
    try:
        return body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _seconds_text(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"
