"""The ``redis`` connector: keys, counters, hashes, lists, streams and pub/sub on Redis.

Actions::

    get      key → value (text, or null when the key does not exist)
    set      key, value, expireSeconds, nx → written (false when nx found the key)
    delete   keys → deleted (how many existed)
    incr     key, by → value (INCRBY; INCRBYFLOAT when by is a fraction)
    hset     key, fields → added (new fields)      hget  key, field → value
    hgetall  key → fields
    lpush / rpush  key, values → length            lrange key, start, stop → values
    lpop     key, count → value (the first) and values
    xadd     stream, fields, maxLen → id (the entry's id)
    publish  channel, message → receivers (subscribers that got it)
    (probe)  the health probe: connect as a step would, PING, the server's version

Values are text in Redis. A number or boolean is written as its JSON text (``3``, ``2.5``,
``true``), a mapping or list as JSON; ``get`` with ``decode: json`` parses the text back.
Text that is not UTF-8 comes back base64-encoded, marked by ``encoding: base64`` where an
action outputs one value.

The connection comes from the step's Integration (type ``redis``)::

    settings: host, port (6379), db (0), username, tls (false), tlsCaCert (PEM text),
              tlsVerify (true), connectTimeout (10s), commandTimeout (30s), maxConnections (10),
              poolTimeout (30s: how long a step waits for a free connection)
    secrets:  password (optional), or url (redis:// or rediss://, used when settings has no host)

All steps of a run share one client per integration (``ctx.pooled``), checked with a PING
when it is made, so a refused password fails the first step with Redis's reason. The client
never retries on its own: the step's retry policy decides. Connection refused or lost,
timeouts, ``LOADING``, ``BUSY``, ``TRYAGAIN``, ``MASTERDOWN``, ``READONLY`` (a failover) and
``OOM`` are ``RetryableError``; refused credentials, ``NOPERM``, ``WRONGTYPE`` and other
command errors are ``PermanentError``. Messages name the integration, never a password.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Sequence
from typing import Any, Literal

import pydantic
import redis.asyncio as aioredis
from pydantic import alias_generators
from redis import backoff as redis_backoff
from redis import exceptions as redis_errors
from redis.asyncio import retry as redis_retry

from autoflow.connectors import sdk
from autoflow.connectors.sdk import redaction
from autoflow.crds import errors, meta

connector = sdk.Connector(
    "redis", "Read and write Redis: keys, counters, hashes, lists, streams and pub/sub."
)

Scalar = str | int | float | bool
Value = Scalar | list[Any] | dict[str, Any]


# -- parameters and outputs -------------------------------------------------------------------


class KeyParams(sdk.Params):
    key: str = pydantic.Field(min_length=1)


class GetParams(KeyParams):
    decode: Literal["text", "json"] = pydantic.Field(
        default="text", description="json: parse the value as JSON."
    )


class ValueOutput(sdk.Output):
    value: Any = pydantic.Field(description="The value; null when there is none.")
    encoding: Literal["text", "base64"] | None = pydantic.Field(
        default=None, description="base64 when the value is not UTF-8 text."
    )


class SetParams(KeyParams):
    value: Value = pydantic.Field(description="Text; numbers, booleans, mappings as JSON text.")
    expire_seconds: float | None = pydantic.Field(
        default=None, gt=0, description="Time to live; fractions are milliseconds."
    )
    nx: bool = pydantic.Field(default=False, description="Only set the key if it does not exist.")


class SetOutput(sdk.Output):
    written: bool = pydantic.Field(description="False when nx found the key already there.")


class DeleteParams(sdk.Params):
    keys: list[str] = pydantic.Field(min_length=1, max_length=10_000)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: Any) -> Any:
        # `key: x` reads better than `keys: [x]` for the common case.
        if isinstance(data, dict) and "key" in data and "keys" not in data:
            data = {**data, "keys": [data["key"]]}
            del data["key"]
        return data


class DeleteOutput(sdk.Output):
    deleted: int


class IncrParams(KeyParams):
    by: int | float = 1


class IncrOutput(sdk.Output):
    value: int | float


class HsetParams(KeyParams):
    fields: dict[str, Value] = pydantic.Field(min_length=1)


class AddedOutput(sdk.Output):
    added: int


class HgetParams(KeyParams):
    field: str


class FieldsOutput(sdk.Output):
    fields: dict[str, str]


class PushParams(KeyParams):
    values: list[Value] = pydantic.Field(min_length=1, max_length=100_000)


class LengthOutput(sdk.Output):
    length: int


class LrangeParams(KeyParams):
    start: int = 0
    stop: int = pydantic.Field(default=-1, description="Inclusive; -1 is the last element.")


class ValuesOutput(sdk.Output):
    values: list[str]


class LpopParams(KeyParams):
    count: int | None = pydantic.Field(default=None, ge=1)


class LpopOutput(sdk.Output):
    value: str | None = pydantic.Field(description="The first value popped, null if none.")
    values: list[str] = pydantic.Field(description="Every value popped.")


class XaddParams(sdk.Params):
    stream: str = pydantic.Field(min_length=1)
    fields: dict[str, Value] = pydantic.Field(min_length=1)
    id: str = pydantic.Field(default="*", description="* lets Redis choose the id.")
    max_len: int | None = pydantic.Field(
        default=None, ge=1, description="Trim the stream to this many entries (the oldest go)."
    )


class XaddOutput(sdk.Output):
    id: str


class PublishParams(sdk.Params):
    channel: str = pydantic.Field(min_length=1)
    message: Value


class PublishOutput(sdk.Output):
    receivers: int = pydantic.Field(description="Subscribers the message was delivered to.")


# -- actions ----------------------------------------------------------------------------------


@connector.action("get")
async def get(params: GetParams, ctx: sdk.ActionContext) -> ValueOutput:
    """The value of a key (null when it does not exist)."""
    raw = await _call(ctx, lambda r: r.get(params.key))
    if raw is None:
        return ValueOutput(value=None)
    value, encoding = _decoded(raw)
    if params.decode == "json" and encoding == "text":
        try:
            return ValueOutput(value=json.loads(value), encoding="text")
        except ValueError as exc:
            raise errors.PermanentError(
                f"the value of key {params.key!r} is not JSON ({exc}); use decode: text",
                errors.Where(step=ctx.step_id, field="with.decode"),
            ) from None
    return ValueOutput(value=value, encoding=encoding)


@connector.action("set")
async def set_(params: SetParams, ctx: sdk.ActionContext) -> SetOutput:
    """Set a key, with an optional expiry; with nx only when the key does not exist."""
    expiry: dict[str, int] = {}
    if params.expire_seconds is not None:
        millis = round(params.expire_seconds * 1000)
        expiry = {"ex": millis // 1000} if millis % 1000 == 0 else {"px": max(millis, 1)}
    value = _encoded(params.value)
    done = await _call(ctx, lambda r: r.set(params.key, value, nx=params.nx, **expiry))
    return SetOutput(written=bool(done))


@connector.action("delete")
async def delete(params: DeleteParams, ctx: sdk.ActionContext) -> DeleteOutput:
    """Delete keys; outputs how many of them existed."""
    return DeleteOutput(deleted=await _call(ctx, lambda r: r.delete(*params.keys)))


@connector.action("incr")
async def incr(params: IncrParams, ctx: sdk.ActionContext) -> IncrOutput:
    """Add ``by`` (default 1) to a counter, creating it at 0; outputs the new value."""
    if isinstance(params.by, float) and not params.by.is_integer():
        value = await _call(ctx, lambda r: r.incrbyfloat(params.key, params.by))
        return IncrOutput(value=float(value))
    return IncrOutput(value=await _call(ctx, lambda r: r.incrby(params.key, int(params.by))))


@connector.action("hset")
async def hset(params: HsetParams, ctx: sdk.ActionContext) -> AddedOutput:
    """Set fields of a hash; outputs how many fields were new."""
    mapping = {k: _encoded(v) for k, v in params.fields.items()}
    return AddedOutput(added=await _call(ctx, lambda r: r.hset(params.key, mapping=mapping)))


@connector.action("hget")
async def hget(params: HgetParams, ctx: sdk.ActionContext) -> ValueOutput:
    """One field of a hash (null when the hash or the field does not exist)."""
    raw = await _call(ctx, lambda r: r.hget(params.key, params.field))
    if raw is None:
        return ValueOutput(value=None)
    value, encoding = _decoded(raw)
    return ValueOutput(value=value, encoding=encoding)


@connector.action("hgetall")
async def hgetall(params: KeyParams, ctx: sdk.ActionContext) -> FieldsOutput:
    """Every field of a hash (empty when it does not exist)."""
    raw: dict[bytes, bytes] = await _call(ctx, lambda r: r.hgetall(params.key))
    return FieldsOutput(fields={_text(k): _text(v) for k, v in raw.items()})


@connector.action("lpush")
async def lpush(params: PushParams, ctx: sdk.ActionContext) -> LengthOutput:
    """Put values at the head of a list (the last one given ends up first)."""
    values = [_encoded(v) for v in params.values]
    return LengthOutput(length=await _call(ctx, lambda r: r.lpush(params.key, *values)))


@connector.action("rpush")
async def rpush(params: PushParams, ctx: sdk.ActionContext) -> LengthOutput:
    """Append values to the tail of a list."""
    values = [_encoded(v) for v in params.values]
    return LengthOutput(length=await _call(ctx, lambda r: r.rpush(params.key, *values)))


@connector.action("lrange")
async def lrange(params: LrangeParams, ctx: sdk.ActionContext) -> ValuesOutput:
    """Elements ``start`` to ``stop`` (inclusive, negative from the end) of a list."""
    raw = await _call(ctx, lambda r: r.lrange(params.key, params.start, params.stop))
    return ValuesOutput(values=[_text(v) for v in raw])


@connector.action("lpop")
async def lpop(params: LpopParams, ctx: sdk.ActionContext) -> LpopOutput:
    """Remove and output the first element (or the first ``count``) of a list."""
    raw = await _call(ctx, lambda r: r.lpop(params.key, params.count))
    popped = [] if raw is None else raw if isinstance(raw, list) else [raw]
    values = [_text(v) for v in popped]
    return LpopOutput(value=values[0] if values else None, values=values)


@connector.action("xadd")
async def xadd(params: XaddParams, ctx: sdk.ActionContext) -> XaddOutput:
    """Append an entry to a stream; outputs the entry's id."""
    fields = {k: _encoded(v) for k, v in params.fields.items()}
    entry = await _call(
        ctx,
        lambda r: r.xadd(
            params.stream, fields, id=params.id, maxlen=params.max_len, approximate=False
        ),
    )
    return XaddOutput(id=_text(entry))


@connector.action("publish")
async def publish(params: PublishParams, ctx: sdk.ActionContext) -> PublishOutput:
    """Publish a message on a channel; outputs how many subscribers received it."""
    message = _encoded(params.message)
    return PublishOutput(receivers=await _call(ctx, lambda r: r.publish(params.channel, message)))


# -- values -----------------------------------------------------------------------------------


def _encoded(value: Value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _decoded(raw: bytes) -> tuple[str, Literal["text", "base64"]]:
    try:
        return raw.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def _text(raw: bytes | str) -> str:
    """Text from Redis; bytes that are not UTF-8 as base64 (lists and hashes hold text)."""
    return raw if isinstance(raw, str) else _decoded(raw)[0]


# -- the client -------------------------------------------------------------------------------


class Settings(pydantic.BaseModel):
    """The ``settings`` of a ``redis`` Integration."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="forbid"
    )

    host: str | None = None
    port: int = pydantic.Field(default=6379, ge=1, le=65535)
    db: int = pydantic.Field(default=0, ge=0)
    username: str | None = None
    tls: bool = False
    tls_ca_cert: str | None = pydantic.Field(
        default=None, description="PEM text of the CA that signed the server's certificate."
    )
    tls_verify: bool = pydantic.Field(
        default=True, description="Check the server's certificate and host name."
    )
    connect_timeout: meta.Duration = "10s"
    command_timeout: meta.Duration = "30s"
    max_connections: int = pydantic.Field(default=10, ge=1, le=1000)
    pool_timeout: meta.Duration = "30s"


connector.integration_form(
    Settings,
    password="the password (the ACL user's, with settings.username), with settings.host",
    url="instead of settings.host: a redis:// or rediss:// URL, password included",
)


class Client:
    """One integration's Redis client for one run; errors name the integration."""

    def __init__(self, name: str, label: str, client: aioredis.Redis, hide: Sequence[str]) -> None:
        self.name = name
        self.label = label
        self.redis = client
        self.has_password = bool(client.connection_pool.connection_kwargs.get("password"))
        # What the connector derives from secrets (a password inside a DSN or URL), masked by
        # the same rule as the run masks what is read through the secrets accessor.
        self._redactor = redaction.Redactor(hide)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.redis.aclose()

    def failure(self, exc: Exception, ctx: sdk.ActionContext) -> errors.ConnectorError:
        where = errors.Where(step=ctx.step_id)
        text = self._scrub(" ".join(str(exc).split()) or type(exc).__name__)
        if isinstance(exc, redis_errors.AuthenticationError):
            hint = "" if self.has_password else " (the integration gives no password)"
            return errors.CredentialsRejectedError(
                f"integration {self.name!r}: Redis at {self.label} refused the login{hint}: {text}",
                where,
            )
        if isinstance(exc, redis_errors.NoPermissionError):
            return errors.PermanentError(
                f"integration {self.name!r}: Redis at {self.label} refused the command: {text}",
                where,
            )
        message = f"integration {self.name!r}: Redis at {self.label}: {text}"
        if _CERTIFICATE_PROBLEM in text:
            # A TLS handshake that fails verification fails the same way next time.
            return errors.PermanentError(f"{message} (check settings.tlsCaCert)", where)
        if isinstance(exc, redis_errors.ConnectionError):
            return errors.UnreachableError(message, where)
        if isinstance(exc, _RETRYABLE) or (
            isinstance(exc, redis_errors.ResponseError) and text.startswith(_RETRYABLE_REPLIES)
        ):
            return errors.RetryableError(message, where)
        return errors.PermanentError(message, where)

    def _scrub(self, text: str) -> str:
        return self._redactor.text(text)


# ConnectionError covers refused and lost connections and "max number of clients reached";
# its AuthenticationError subclass is caught before (permanent).
_RETRYABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
    redis_errors.ClusterDownError,
)
_CERTIFICATE_PROBLEM = "CERTIFICATE_VERIFY_FAILED"
_RETRYABLE_REPLIES = ("BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN")


async def _call(ctx: sdk.ActionContext, command: Any) -> Any:
    """Run ``command(redis)`` on the run's client for the step's integration."""
    client = await _client(ctx)
    try:
        return await command(client.redis)
    except redis_errors.RedisError as exc:
        raise client.failure(exc, ctx) from None


async def _client(ctx: sdk.ActionContext) -> Client:
    async def connect(integration: sdk.IntegrationInfo) -> Client:
        client = _new_client(integration)
        try:
            await client.redis.ping()
        except redis_errors.RedisError as exc:
            await client.redis.aclose()
            raise client.failure(exc, ctx) from None
        return client

    return await sdk.pooled_connection(ctx, "redis", connect)


@connector.probe
async def probe(integration: sdk.IntegrationInfo) -> str:
    """Connects with the Integration's settings and credentials, sends PING and reads the
    server's version (INFO server)."""
    async with sdk.probe_context(integration) as ctx:
        client = await _client(ctx)  # connects and PINGs
        try:
            info = await _call(ctx, lambda r: r.info("server"))
        except errors.PermanentError:
            info = {}  # an ACL user may be refused INFO; the PING answered all the same
    version = f" {info['redis_version']}" if info.get("redis_version") else ""
    return f"Redis{version} at {client.label} answered PING"


def _new_client(integration: sdk.IntegrationInfo) -> Client:
    name = integration.name
    settings = sdk.integration_settings(integration, Settings)
    options: dict[str, Any] = {
        "socket_connect_timeout": meta.parse_duration(settings.connect_timeout),
        "socket_timeout": meta.parse_duration(settings.command_timeout),
        # No retries inside the client: the step's retry policy decides, and journals them.
        "retry": redis_retry.Retry(redis_backoff.NoBackoff(), 0),
        "client_name": "autoflow",
        # A blocking pool: steps beyond maxConnections wait for a free connection.
        "max_connections": settings.max_connections,
        "timeout": meta.parse_duration(settings.pool_timeout),
    }
    if settings.host:
        password = sdk.optional_secret(integration, "password")
        if settings.tls:
            options.update(_tls_options(settings), connection_class=aioredis.SSLConnection)
        pool = aioredis.BlockingConnectionPool(
            host=settings.host,
            port=settings.port,
            db=settings.db,
            username=settings.username,
            password=password,
            **options,
        )
        label = f"{settings.host}:{settings.port}/{settings.db}"
        return Client(name, label, aioredis.Redis.from_pool(pool), [password or ""])
    url = integration.secrets.get("url")
    if url.startswith("rediss://"):
        options.update(_tls_options(settings))
    try:
        pool = aioredis.BlockingConnectionPool.from_url(url, **options)
    except ValueError:
        # redis-py's message may quote the URL, password included.
        raise errors.InvalidSettingsError(
            f"integration {name!r}: secret 'url' is not a Redis URL (redis://, rediss:// or "
            "unix://)",
            errors.Where(resource=f"Integration/{name}", field="secretRef"),
        ) from None
    kwargs = pool.connection_kwargs
    label = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    hide = [url, str(kwargs.get("password") or "")]
    return Client(name, label, aioredis.Redis.from_pool(pool), hide)


def _tls_options(settings: Settings) -> dict[str, Any]:
    return {
        "ssl_ca_data": settings.tls_ca_cert,
        "ssl_cert_reqs": ssl.CERT_REQUIRED if settings.tls_verify else ssl.CERT_NONE,
        "ssl_check_hostname": settings.tls_verify,
    }
