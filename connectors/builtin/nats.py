"""The ``nats`` connector: publish, request/reply and JetStream publish on NATS (nats-py).

Actions::

    publish           subject, data, headers → subject, bytes (the server has accepted it)
    request           subject, data, headers, timeout → data, headers (the reply)
    jetstreamPublish  subject, data, headers, msgId, stream → stream, seq, duplicate, msgId
    (probe)           the health probe: connect as a step would, PING/PONG, the server version

``data`` is text (sent as it is, UTF-8) or any other JSON value (sent as JSON); no ``data``
sends an empty message. A reply is decoded as JSON when it parses as JSON (``responseType``
says otherwise), else as text, and bytes that are not UTF-8 come back base64-encoded.

**A retried step publishes to JetStream once.** ``jetstreamPublish`` sets ``Nats-Msg-Id`` to
``msgId``, which defaults to the step's idempotency key (run, step and item): the same for every
attempt and after a resume. JetStream stores one message per id within the stream's duplicate
window (2 minutes unless the stream says otherwise) and acknowledges the repeat with
``duplicate: true``. Core ``publish`` and ``request`` are at most once per attempt: a retried
``request`` may reach the responder twice.

The connection comes from the step's Integration (type ``nats``)::

    settings: servers (a URL or a list; nats://host:4222, tls://...), name, connectTimeout (5s),
              timeout (5s: request and JetStream acknowledgement), tlsCaCert (PEM text), user
    secrets:  token, or user and password, or creds (the text of a .creds file: JWT and
              NKey seed); all optional, read in that order

All steps of a run share one connection per integration (``ctx.pooled``); when it was lost for
good (the server gone for longer than its reconnect attempts), the next step connects again.
How a step flows::

    Connection.client() ─► nats.aio.client.Client (connected once per run, again when closed)
    ─ publish + flush, or request, or JetStream publish, raced against the server's
      ``-ERR Permissions Violation`` for that subject (nats-py reports it asynchronously)
    ─ nats errors ─► Connection.failure(): RetryableError / PermanentError

Retryable: no server reachable, connection lost, a timeout waiting for a reply or an
acknowledgement, no responders on a request subject (the service may be restarting), JetStream
unavailable. Permanent: credentials refused, a permissions violation, no stream capturing the
subject (or not the expected ``stream``), a bad subject or header, a message over the server's
maximum payload. Messages name the integration and never a credential.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import re
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import nats
import nats.errors
import nats.js.errors
import pydantic
from nats.aio import client as nats_client
from nats.aio import msg as nats_msg
from pydantic import alias_generators

from autoflow.connectors import sdk
from autoflow.connectors.sdk import redaction
from autoflow.crds import errors, meta

connector = sdk.Connector(
    "nats", "Publish messages, make requests and publish to JetStream streams on NATS."
)

T = TypeVar("T")
ResponseType = Literal["auto", "json", "text"]
Scalar = str | int | float | bool
# nats-py gives up on a server after this many failed attempts in a row (1 = try twice), so a
# step does not wait long for a server that is down: the step's retry policy waits instead.
RECONNECT_ATTEMPTS = 3
RECONNECT_WAIT = 0.5
_VIOLATION = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"', re.I)


# -- parameters and outputs -------------------------------------------------------------------


class _Message(sdk.Params):
    subject: str = pydantic.Field(min_length=1, description="The subject, e.g. orders.created.")
    data: Any = pydantic.Field(
        default=None,
        description="Text (sent as it is) or any other JSON value (sent as JSON); "
        "none sends an empty message.",
    )
    headers: dict[str, Scalar] = pydantic.Field(
        default_factory=dict, description="Header values are sent as text."
    )

    def header_text(self) -> dict[str, str]:
        # YAML turns `X-Count: 3` into a number; a header value is text either way.
        return {name: _scalar_text(value) for name, value in self.headers.items()}

    @pydantic.field_validator("subject")
    @classmethod
    def _subject_has_no_spaces(cls, value: str) -> str:
        if any(c.isspace() for c in value):
            raise ValueError("a subject has no spaces or line breaks")
        return value


class PublishParams(_Message):
    pass


class PublishOutput(sdk.Output):
    subject: str
    bytes: int = pydantic.Field(description="The size of the message body sent.")


class RequestParams(_Message):
    timeout: meta.Duration | None = pydantic.Field(
        default=None,
        description="How long to wait for the reply; the Integration's timeout "
        "(5s unless set) when not given.",
    )
    response_type: ResponseType = pydantic.Field(
        default="auto", description="auto: JSON when the reply parses as JSON, else text."
    )


class RequestOutput(sdk.Output):
    data: Any = pydantic.Field(description="The reply: parsed JSON, text, or base64 text.")
    encoding: Literal["json", "text", "base64"] = pydantic.Field(
        description="How data was decoded: base64 when the reply is not UTF-8 text."
    )
    headers: dict[str, str] = pydantic.Field(default_factory=dict)
    subject: str = pydantic.Field(description="The subject the reply came on.")


class JetStreamPublishParams(_Message):
    msg_id: str | None = pydantic.Field(
        default=None,
        min_length=1,
        description="Sent as Nats-Msg-Id, so JetStream stores the message once; the step's "
        "idempotency key (the same on every retry and after a resume) when not given.",
    )
    stream: str | None = pydantic.Field(
        default=None,
        min_length=1,
        description="The stream expected to capture the subject; another stream is an error.",
    )
    timeout: meta.Duration | None = pydantic.Field(
        default=None,
        description="How long to wait for the acknowledgement; the "
        "Integration's timeout (5s unless set) when not given.",
    )


class JetStreamPublishOutput(sdk.Output):
    stream: str = pydantic.Field(description="The stream that stored the message.")
    seq: int = pydantic.Field(description="Its sequence number in the stream.")
    duplicate: bool = pydantic.Field(
        description="True when the stream already had a message with this msgId (not stored "
        "again; seq is the earlier message's)."
    )
    msg_id: str


# -- actions ----------------------------------------------------------------------------------


@connector.action("publish")
async def publish(params: PublishParams, ctx: sdk.ActionContext) -> PublishOutput:
    """Publish a message; done when the server has accepted it (at most once, no reply)."""
    conn = await _connection(ctx)
    payload = _payload(params.data, ctx)

    async def send(nc: nats_client.Client) -> None:
        await nc.publish(params.subject, payload, headers=params.header_text() or None)
        # A PING/PONG round trip after the message makes the server answer a refused publish
        # (-ERR) before the PONG. Twice: nats-py writes a flush's PING ahead of commands still
        # in its buffer, so only the second PING is sure to follow the message.
        for _ in range(2):
            await nc.flush(timeout=max(1, math.ceil(conn.timeout)))
        if not nc.is_connected:
            # Disconnected, flush() returns at once and the message waits in nats-py's
            # buffer for a reconnect that may not come: not a success to report.
            raise nats.errors.ConnectionReconnectingError

    await conn.run(
        ctx,
        params.subject,
        send,
        what="publishing to",
        awaited="confirmation from the server",
        replies=False,
    )
    ctx.log.debug("nats.publish: %d bytes to %s", len(payload), params.subject)
    return PublishOutput(subject=params.subject, bytes=len(payload))


@connector.action("request")
async def request(params: RequestParams, ctx: sdk.ActionContext) -> RequestOutput:
    """Send a request and output the first reply (request/reply with a timeout)."""
    conn = await _connection(ctx)
    payload = _payload(params.data, ctx)
    timeout = meta.parse_duration(params.timeout) if params.timeout else conn.timeout

    async def ask(nc: nats_client.Client) -> nats_msg.Msg:
        return await nc.request(
            params.subject, payload, timeout=timeout, headers=params.header_text() or None
        )

    reply = await conn.run(
        ctx, params.subject, ask, what="requesting on", awaited="reply", timeout=timeout
    )
    data, encoding = _decoded(reply.data, params.response_type, ctx)
    return RequestOutput(
        data=data, encoding=encoding, headers=dict(reply.headers or {}), subject=reply.subject
    )


@connector.action("jetstreamPublish")
async def jetstream_publish(
    params: JetStreamPublishParams, ctx: sdk.ActionContext
) -> JetStreamPublishOutput:
    """Publish to the JetStream stream capturing the subject, de-duplicated by msgId."""
    conn = await _connection(ctx)
    payload = _payload(params.data, ctx)
    timeout = meta.parse_duration(params.timeout) if params.timeout else conn.timeout
    headers = params.header_text()
    msg_id = params.msg_id or headers.get("Nats-Msg-Id") or ctx.idempotency_key
    headers["Nats-Msg-Id"] = msg_id

    async def store(nc: nats_client.Client) -> Any:
        js = nc.jetstream(timeout=timeout)
        return await js.publish(
            params.subject, payload, timeout=timeout, stream=params.stream, headers=headers
        )

    ack = await conn.run(
        ctx,
        params.subject,
        store,
        what="publishing to JetStream on",
        awaited="acknowledgement",
        timeout=timeout,
    )
    ctx.log.debug(
        "nats.jetstreamPublish: %s seq %d%s", ack.stream, ack.seq, " (dup)" if ack.duplicate else ""
    )
    return JetStreamPublishOutput(
        stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate), msg_id=msg_id
    )


# -- values -----------------------------------------------------------------------------------


def _payload(data: Any, ctx: sdk.ActionContext) -> bytes:
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode()
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise errors.PermanentError(
            f"data is not JSON: {exc}", errors.Where(step=ctx.step_id, field="with.data")
        ) from None


def _decoded(
    raw: bytes, wanted: ResponseType, ctx: sdk.ActionContext
) -> tuple[Any, Literal["json", "text", "base64"]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"
    if wanted == "text":
        return text, "text"
    try:
        return json.loads(text), "json"
    except ValueError as exc:
        if wanted == "json":
            raise errors.PermanentError(
                f"the reply is not JSON ({exc}): {_shorten(text)}",
                errors.Where(step=ctx.step_id, field="with.responseType"),
            ) from None
        return text, "text"


def _scalar_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _shorten(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- the connection ---------------------------------------------------------------------------


class Settings(pydantic.BaseModel):
    """The ``settings`` of a ``nats`` Integration."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="forbid"
    )

    servers: list[str] = pydantic.Field(
        min_length=1, description="Server URLs: nats://host:4222, tls://host:4222."
    )
    name: str = pydantic.Field(default="autoflow", description="The connection's name.")
    connect_timeout: meta.Duration = "5s"
    timeout: meta.Duration = pydantic.Field(
        default="5s", description="Default wait for a reply or a JetStream acknowledgement."
    )
    tls_ca_cert: str | None = pydantic.Field(
        default=None, description="PEM text of the CA that signed the servers' certificates."
    )
    user: str | None = pydantic.Field(
        default=None, description="The user name, when it is not the secret `user`."
    )

    @pydantic.field_validator("servers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # One URL, or several separated by commas, as NATS tools accept them.
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value


connector.integration_form(
    Settings,
    token="an authentication token",
    user="the user name (or settings.user), with password",
    password="the user's password",
    creds="the content of a .creds file (JWT and NKey seed)",
)


class Connection:
    """One integration's NATS connection for one run; errors name the integration.

    nats-py reports a refused publish or subscription (``-ERR 'Permissions Violation ...'``)
    to an error callback, not to the call that caused it; ``run`` waits for the call and for
    such a report about its subject, whichever comes first.
    """

    def __init__(
        self,
        name: str,
        settings: Settings,
        auth: Mapping[str, Any],
        hide: list[str],
        reconnect_attempts: int = RECONNECT_ATTEMPTS,
    ) -> None:
        self.name = name
        self.reconnect_attempts = reconnect_attempts
        self.settings = settings
        self.timeout = meta.parse_duration(settings.timeout)
        self.label = ", ".join(_without_userinfo(s) for s in settings.servers)
        self._auth = dict(auth)
        # What the connector derives from secrets (a password inside a DSN or URL), masked by
        # the same rule as the run masks what is read through the secrets accessor.
        self._redactor = redaction.Redactor(hide)
        self._client: nats_client.Client | None = None
        self._lock = asyncio.Lock()
        # (subject, whether the call waits for a reply, resolved when the server refuses it)
        self._watchers: set[tuple[str, bool, asyncio.Future[str]]] = set()
        # What the error callback heard while connecting: NoServersError does not say.
        self._heard: list[BaseException] = []
        self._connecting = False

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None and not self._client.is_closed:
            with contextlib.suppress(Exception):
                await self._client.close()
        self._client = None

    async def client(self, ctx: sdk.ActionContext) -> nats_client.Client:
        """The connected client; connects (again) when there is none or it was closed."""
        async with self._lock:
            if self._client is None or self._client.is_closed:
                self._client = await self._connect(ctx)
            return self._client

    async def _connect(self, ctx: sdk.ActionContext) -> nats_client.Client:
        self._heard = []
        options: dict[str, Any] = {
            "servers": self.settings.servers,
            "name": self.settings.name,
            "connect_timeout": max(1, round(meta.parse_duration(self.settings.connect_timeout))),
            "max_reconnect_attempts": self.reconnect_attempts,
            "reconnect_time_wait": RECONNECT_WAIT,
            "error_cb": self._on_error,
            **self._auth,
        }
        if self.settings.tls_ca_cert:
            options["tls"] = ssl.create_default_context(cadata=self.settings.tls_ca_cert)
        self._connecting = True
        try:
            nc = await nats.connect(**options)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise self.failure(exc, ctx, "connecting to") from None
        finally:
            self._connecting = False
        ctx.log.debug("nats: integration %r connected to %s", self.name, nc.connected_url)
        return nc

    async def _on_error(self, exc: Exception) -> None:
        if self._connecting:
            self._heard.append(exc)
        found = _VIOLATION.search(str(exc))
        if found is None:
            return
        kind, subject = found.group(1).lower(), found.group(2).lower()
        for watched, replies, future in list(self._watchers):
            # The only subscription is the reply inbox, which every pending request needs.
            # nats-py lower-cases the server's whole message, the subject in it too.
            refused = watched.lower() == subject if kind == "publish" else replies
            if refused and not future.done():
                future.set_result(f"{kind} to {subject!r}")

    async def run(
        self,
        ctx: sdk.ActionContext,
        subject: str,
        call: Callable[[nats_client.Client], Awaitable[T]],
        *,
        what: str,
        awaited: str,
        timeout: float | None = None,
        replies: bool = True,
    ) -> T:
        """``call(client)``, unless the server refuses the subject (or, when ``replies``,
        the reply inbox) first; errors mapped."""
        nc = await self.client(ctx)
        refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        watcher = (subject, replies, refused)
        self._watchers.add(watcher)
        task = asyncio.ensure_future(call(nc))
        try:
            if replies:
                either: set[asyncio.Future[Any]] = {task, refused}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            else:
                # A flush is never cancelled, not even with the step: nats-py's reader fails
                # on the PONG that still comes, and the connection stops working. It ends by
                # its own timeout, and the server reports a refusal before its PONG.
                await asyncio.wait({task})
            if refused.done():
                task.cancel()
                await asyncio.wait({task})  # wait() does not raise the task's error
                raise errors.PermanentError(
                    f"integration {self.name!r}: NATS at {self.label} refused {what} subject "
                    f"{subject!r}: permissions violation for {refused.result()}; the "
                    "credentials do not allow it",
                    errors.Where(step=ctx.step_id, field="with.subject"),
                )
            try:
                return task.result()
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                raise self.failure(exc, ctx, what, subject, awaited, timeout) from None
        finally:
            self._watchers.discard(watcher)
            if replies and not task.done():
                task.cancel()  # a request: nats-py forgets its pending reply

    def failure(
        self,
        exc: BaseException,
        ctx: sdk.ActionContext,
        what: str,
        subject: str | None = None,
        awaited: str = "reply",
        timeout: float | None = None,
    ) -> errors.ConnectorError:
        """The connector error for what nats-py raised: retryable or not, and why."""
        where = errors.Where(step=ctx.step_id)
        on = f" subject {subject!r}" if subject else ""
        head = f"integration {self.name!r}: NATS at {self.label}"
        if isinstance(exc, nats.js.errors.NoStreamResponseError):
            return errors.PermanentError(
                f"{head}: no JetStream stream captures{on}; add the subject to a stream",
                where.replace(field="with.subject"),
            )
        if isinstance(exc, nats.js.errors.APIError):
            return self._jetstream_failure(exc, head, on, where)
        if isinstance(exc, nats.errors.NoRespondersError):
            return errors.RetryableError(
                f"{head}: no responders on{on}: no service is subscribed to answer it now", where
            )
        if isinstance(exc, nats.errors.NoServersError):
            return self._connect_failure(head, where)
        if isinstance(exc, nats.errors.AuthorizationError):
            return errors.CredentialsRejectedError(f"{head} refused the credentials", where)
        if isinstance(exc, nats.errors.TimeoutError | TimeoutError):
            waited = f" within {timeout:g}s" if timeout else ""
            return errors.RetryableError(f"{head}: {what}{on}: no {awaited}{waited}", where)
        text = self._scrub(" ".join(str(exc).split()) or type(exc).__name__)
        if isinstance(exc, nats.errors.BadSubjectError):
            return errors.PermanentError(
                f"{head}: bad subject{on}: {text}", where.replace(field="with.subject")
            )
        if isinstance(exc, nats.errors.BadHeaderError):
            return errors.PermanentError(f"{head}: {text}", where.replace(field="with.headers"))
        if isinstance(exc, nats.errors.MaxPayloadError):
            return errors.PermanentError(
                f"{head}: the message is larger than the server's maximum payload",
                where.replace(field="with.data"),
            )
        if isinstance(exc, nats.errors.InvalidUserCredentialsError):
            return errors.PermanentError(f"{head}: secret 'creds' is not a .creds file", where)
        if isinstance(exc, (*_RETRYABLE, OSError)):
            return errors.RetryableError(f"{head}: {what}{on}: {text}", where)
        return errors.PermanentError(f"{head}: {what}{on}: {text}", where)

    def _connect_failure(self, head: str, where: errors.Where) -> errors.ConnectorError:
        # NoServersError says only that nothing worked; the error callback heard why.
        reasons = [self._scrub(" ".join(str(e).split()) or type(e).__name__) for e in self._heard]
        refused = [r for r in reasons if "authorization violation" in r.lower()]
        if refused:
            return errors.CredentialsRejectedError(
                f"{head} refused the credentials (authorization violation)", where
            )
        why = f": {reasons[-1]}" if reasons else ""
        return errors.UnreachableError(f"{head}: no server could be reached{why}", where)

    def _jetstream_failure(
        self, exc: nats.js.errors.APIError, head: str, on: str, where: errors.Where
    ) -> errors.ConnectorError:
        text = self._scrub(exc.description or type(exc).__name__)
        code = f" {exc.code}" + (f" (err_code {exc.err_code})" if exc.err_code else "")
        message = f"{head}: JetStream error{code} publishing to{on}: {text}"
        details: dict[str, object] = {"code": exc.code, "errCode": exc.err_code}
        if isinstance(exc, nats.js.errors.ServiceUnavailableError | nats.js.errors.ServerError):
            return errors.RetryableError(message, where, details=details)
        field = "with.stream" if "stream" in text.lower() else None
        return errors.PermanentError(message, where.replace(field=field), details=details)

    def _scrub(self, text: str) -> str:
        return self._redactor.text(text)


_RETRYABLE = (
    nats.errors.ConnectionClosedError,
    nats.errors.StaleConnectionError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.SlowConsumerError,
)


async def _connection(ctx: sdk.ActionContext) -> Connection:
    async def connect(integration: sdk.IntegrationInfo) -> Connection:
        conn = _new_connection(integration)
        await conn.client(ctx)
        return conn

    return await sdk.pooled_connection(ctx, "nats", connect)


@connector.probe
async def probe(integration: sdk.IntegrationInfo) -> str:
    """Connects with the Integration's settings and credentials and waits for the server to
    answer a PING (flush); reports the server's version. JetStream is not checked: an
    Integration names no stream."""
    async with sdk.probe_context(integration) as ctx:
        conn = await _connection(ctx)
        nc = await conn.client(ctx)
        try:
            await nc.flush(timeout=max(1, math.ceil(conn.timeout)))
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise conn.failure(exc, ctx, "checking", awaited="PONG", timeout=conn.timeout) from None
        url = nc.connected_url.geturl() if nc.connected_url else conn.label
        server = nc.connected_server_version
    version = f"{server.major}.{server.minor}.{server.patch}"
    return f"NATS {version} at {_without_userinfo(url)} answered PING"


@contextlib.asynccontextmanager
async def consumer_connection(
    integration: sdk.IntegrationInfo,
) -> AsyncIterator[nats_client.Client]:
    """A long-lived connection with the Integration's settings and credentials, for an event
    trigger that consumes from it (``triggers[].nats.integration``): connected as a step
    connects, but it reconnects without end. Fails as a step does: ``RetryableError`` or
    ``PermanentError``, naming the integration and never a credential."""
    conn = _new_connection(integration, reconnect_attempts=-1)
    async with sdk.probe_context(integration) as ctx, conn:
        yield await conn.client(ctx)


def _new_connection(
    integration: sdk.IntegrationInfo, reconnect_attempts: int = RECONNECT_ATTEMPTS
) -> Connection:
    name = integration.name
    settings = sdk.integration_settings(integration, Settings)
    auth: dict[str, Any] = {}
    hide: list[str] = []
    if token := sdk.optional_secret(integration, "token"):
        auth["token"] = token
        hide.append(token)
    elif password := sdk.optional_secret(integration, "password"):
        user = sdk.optional_secret(integration, "user") or settings.user
        if not user:
            raise errors.InvalidSettingsError(
                f"integration {name!r} has a password but no user: add the secret 'user' or "
                "settings.user",
                errors.Where(resource=f"Integration/{name}", field="secretRef"),
            )
        auth.update(user=user, password=password)
        hide.append(password)
    elif creds := sdk.optional_secret(integration, "creds"):
        auth["user_credentials"] = nats_client.RawCredentials(creds)
        hide.extend(line for line in creds.splitlines() if len(line.strip()) >= 16)
    return Connection(name, settings, auth, hide, reconnect_attempts)


def _without_userinfo(url: str) -> str:
    """A server URL fit for messages: ``nats://user:pw@host:4222`` → ``nats://host:4222``."""
    try:
        parts = urllib.parse.urlsplit(url if "://" in url else f"nats://{url}")
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a server URL that does not parse)"
    return f"{parts.scheme}://{host}{port}"
