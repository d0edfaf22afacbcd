"""The connector SDK: how a connector declares actions and what an action receives.

A connector is a named set of actions. An action is an ``async`` function taking its validated
parameters (a pydantic model) and an ``ActionContext``; it returns its output (a pydantic model
or plain JSON-like data). The engine renders the step's ``with`` block, validates it into the
parameter model, calls the action, and journals the output as JSON-compatible data::

    connector = sdk.Connector("shop", "Talk to the shop API.")

    class LookupParams(sdk.Params):
        order_id: str

    @connector.action("lookup")
    async def lookup(params: LookupParams, ctx: sdk.ActionContext) -> dict[str, Any]:
        ...

Parameter and output types are read from the function's annotations, so the engine validates
before calling, ``autoflow connectors show`` prints the schema and the web UI renders a form.
Errors are ``errors.RetryableError`` or ``errors.PermanentError``; anything else escaping an
action is reported as a permanent failure with its type and message.

A connector may also declare a health probe, which the operator runs on a timer and ``autoflow
integrations test`` runs on demand (``runners.probe``) to fill in an Integration's ``Ready``
condition. It contacts the remote system without changing anything and says what it reached::

    @connector.probe
    async def probe(integration: sdk.IntegrationInfo) -> str:
        async with sdk.probe_context(integration) as ctx:   # reuse the actions' code
            ...
        return "Shop API 2.3 at https://shop.example/api"

It raises ``errors.CredentialsRejectedError`` when the credentials are refused,
``errors.UnreachableError`` when the system cannot be reached, ``errors.InvalidSettingsError``
for settings it cannot use, any other ``ConnectorError`` for the rest; it returns
``sdk.NotProbed(message)`` when it cannot check without side effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import pydantic
from pydantic import alias_generators

from autoflow.crds import errors, problems


class Params(pydantic.BaseModel):
    """Base of action parameter models: camelCase in manifests, unknown fields rejected."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="forbid"
    )


class Output(pydantic.BaseModel):
    """Base of action output models: serialised with camelCase names into the run journal."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True
    )


class NoParams(Params):
    """For actions that take no parameters."""


class Secrets(typing.Protocol):
    """Read access to an integration's credentials. Values never go to logs or statuses."""

    def get(self, key: str) -> str: ...


class NoSecrets:
    """The secrets of a step that names no integration."""

    def __init__(self, step: str) -> None:
        self._step = step

    def get(self, key: str) -> str:
        raise errors.PermanentError(
            f"needs secret {key!r} but the step names no integration",
            errors.Where(step=self._step, field="integration"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """An Integration's quota: ``requests`` calls every ``per_seconds``, ``max_concurrency``
    at once.

    Shared by every runner (``runners.limits``); None fields are unlimited.
    """

    requests: int | None = None
    per_seconds: float | None = None
    max_concurrency: int | None = None


@dataclasses.dataclass(slots=True)
class IntegrationInfo:
    """What a step sees of the Integration it names: settings and credentials, not the object."""

    name: str
    type: str
    settings: Mapping[str, Any]
    secrets: Secrets
    limits: Limits | None = None


class ActionContext:
    """Everything an action may use besides its parameters.

    ``idempotency_key`` names one unit of work: run id and step id (and the item index in a
    foreach). It is the same for every retry of the step and after a crash and resume, so a
    system that de-duplicates on it (``Idempotency-Key`` in HTTP APIs, a NATS message id)
    carries the work out once even when a reply was lost and the step was tried again.
    ``attempt`` tells the attempts apart where a connector needs that.
    ``pooled`` shares a resource (a connection pool, an HTTP client) across the steps of a run
    and closes it when the run ends.
    """

    __slots__ = (
        "_pool",
        "attempt",
        "idempotency_key",
        "integration",
        "log",
        "run_id",
        "step_id",
    )

    def __init__(
        self,
        *,
        run_id: str,
        step_id: str,
        attempt: int,
        idempotency_key: str,
        log: logging.LoggerAdapter[logging.Logger],
        integration: IntegrationInfo | None,
        pool: ResourcePool,
    ) -> None:
        self.run_id = run_id
        self.step_id = step_id
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.log = log
        self.integration = integration
        self._pool = pool

    @property
    def secrets(self) -> Secrets:
        return self.integration.secrets if self.integration else NoSecrets(self.step_id)

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.integration.settings if self.integration else {}

    async def pooled(self, key: str, factory: Callable[[], Awaitable[Any]]) -> Any:
        return await self._pool.get(key, factory)


class ResourcePool:
    """Run-scoped shared resources, created on first use and closed when the run ends."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._stack = contextlib.AsyncExitStack()

    async def get(self, key: str, factory: Callable[[], Awaitable[Any]]) -> Any:
        if key in self._items:
            return self._items[key]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._items:
                resource = await factory()
                if hasattr(resource, "__aexit__"):
                    resource = await self._stack.enter_async_context(resource)
                self._items[key] = resource
        return self._items[key]

    async def aclose(self) -> None:
        self._items.clear()
        await self._stack.aclose()


SettingsModel = typing.TypeVar("SettingsModel", bound=pydantic.BaseModel)


def integration_settings(integration: IntegrationInfo, model: type[SettingsModel]) -> SettingsModel:
    """An integration's ``settings`` validated into a connector's model, or a PermanentError
    naming the integration and the first unusable setting."""
    try:
        return model.model_validate(dict(integration.settings))
    except pydantic.ValidationError as exc:
        field, message = problems.first(exc)
        raise errors.InvalidSettingsError(
            f"integration {integration.name!r} has unusable settings: {field}: {message}",
            errors.Where(resource=f"Integration/{integration.name}", field=f"settings.{field}"),
        ) from None


def require_integration(ctx: ActionContext, connector: str, what: str = "") -> IntegrationInfo:
    """The step's Integration, or a PermanentError saying the step must name one."""
    if ctx.integration is None:
        kind = f"{connector} ({what})" if what else connector
        raise errors.PermanentError(
            f"the {connector} connector needs an Integration of type {kind}: name it in the "
            "step's `integration` field",
            errors.Where(step=ctx.step_id, field="integration"),
        )
    return ctx.integration


Resource = typing.TypeVar("Resource")


async def pooled_connection(
    ctx: ActionContext,
    connector: str,
    connect: Callable[[IntegrationInfo], Awaitable[Resource]],
) -> Resource:
    """The run's one connection (client, pool) to the step's Integration, made on first use
    by ``connect`` and closed when the run ends."""
    integration = require_integration(ctx, connector)
    resource: Resource = await ctx.pooled(
        f"{connector}:{integration.name}", lambda: connect(integration)
    )
    return resource


def optional_secret(integration: IntegrationInfo, key: str) -> str | None:
    """A secret the remote system may not need (no authentication configured), else None."""
    try:
        return integration.secrets.get(key)
    except errors.PermanentError:
        return None


ActionFunc = Callable[[Any, ActionContext], Awaitable[Any]]


@dataclasses.dataclass(slots=True)
class Action:
    """One declared action: its function and the types the engine validates against."""

    connector: str
    name: str
    func: ActionFunc
    params: type[Params]
    output: pydantic.TypeAdapter[Any]
    output_type: Any
    description: str
    # Whether the output is a pydantic model, so the engine can dump it without the adapter.
    output_is_model: bool

    @property
    def uses(self) -> str:
        return f"{self.connector}.{self.name}"

    def params_schema(self) -> dict[str, Any]:
        return self.params.model_json_schema(by_alias=True)

    def output_schema(self) -> dict[str, Any]:
        return self.output.json_schema(by_alias=True)

    def dump_output(self, value: Any) -> Any:
        """The JSON-compatible form of an output, as the journal stores it."""
        if self.output_is_model and isinstance(value, pydantic.BaseModel):
            return value.model_dump(mode="json", by_alias=True)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        return self.output.dump_python(value, mode="json", by_alias=True)


@dataclasses.dataclass(frozen=True, slots=True)
class NotProbed:
    """What a probe returns when it cannot check without side effects (a webhook can only be
    tested by posting to it): the Integration is Ready, ``message`` says what was not checked."""

    message: str


ProbeFunc = Callable[[IntegrationInfo], Awaitable[str | NotProbed]]


@dataclasses.dataclass(frozen=True, slots=True)
class HealthProbe:
    """A connector's health probe and what it does, in one line, for the docs."""

    func: ProbeFunc
    description: str


class Connector:
    """A named set of actions; modules export one as ``connector`` for the entry point."""

    def __init__(self, name: str, description: str = "") -> None:
        self.name = name
        self.description = description
        self.actions: dict[str, Action] = {}
        self.health_probe: HealthProbe | None = None
        self.settings_model: type[pydantic.BaseModel] | None = None
        self.secret_keys: dict[str, str] = {}
        # The scheme every Integration of this type authenticates with ("oauth2": it needs
        # the Integration's oauth2 block); None when its settings choose (http's auth) or none.
        self.auth_scheme: str | None = None

    def integration_form(
        self, settings: type[pydantic.BaseModel] | None = None, **secrets: str
    ) -> None:
        """Declare what an Integration of this type holds: its ``settings`` (a model) and the
        secret keys the connector reads, each with what it is for. The connector reference
        and the web UI's Integration form are made from this."""
        self.settings_model = settings
        self.secret_keys = dict(secrets)

    def settings_schema(self) -> dict[str, Any]:
        """The JSON Schema of an Integration's ``settings`` ({} when none are declared)."""
        if self.settings_model is None:
            return {}
        return self.settings_model.model_json_schema(by_alias=True)

    def probe(self, func: ProbeFunc) -> ProbeFunc:
        """Declare the connector's health probe; its docstring's first paragraph describes it."""
        summary = (func.__doc__ or "").strip().split("\n\n")[0]
        self.health_probe = HealthProbe(func, " ".join(summary.split()))
        return func

    def action(
        self, name: str, description: str | None = None
    ) -> Callable[[ActionFunc], ActionFunc]:
        """Declare an action; parameter and output types come from the annotations."""

        def register(func: ActionFunc) -> ActionFunc:
            hints = typing.get_type_hints(func)
            names = list(func.__code__.co_varnames[: func.__code__.co_argcount])
            params = hints.get(names[0]) if names else None
            if not (isinstance(params, type) and issubclass(params, Params)):
                raise TypeError(f"{self.name}.{name}: first parameter must be a sdk.Params model")
            output_type = hints.get("return", Any)
            is_model = isinstance(output_type, type) and issubclass(output_type, pydantic.BaseModel)
            self.actions[name] = Action(
                connector=self.name,
                name=name,
                func=func,
                params=params,
                output=pydantic.TypeAdapter(output_type),
                output_type=output_type,
                description=(description or func.__doc__ or "").strip(),
                output_is_model=is_model,
            )
            return func

        return register


# Health probes


@contextlib.asynccontextmanager
async def probe_context(integration: IntegrationInfo) -> AsyncIterator[ActionContext]:
    """An ``ActionContext`` for a probe, so it connects through its actions' own code.

    It names no step (errors name the Integration), and its pooled resources (a connection,
    a client) are closed when the block ends.
    """
    pool = ResourcePool()
    log = logging.LoggerAdapter(
        logging.getLogger(f"autoflow.probe.{integration.type}"), {"integration": integration.name}
    )
    try:
        yield ActionContext(
            run_id="",
            step_id="",
            attempt=1,
            idempotency_key=f"probe:{integration.name}",
            log=log,
            integration=integration,
            pool=pool,
        )
    finally:
        await pool.aclose()


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "autoflow_deadline", default=None
)
# Blocking I/O bounded by ``time_left`` ends this long after the deadline, so the caller's
# own timeout (which cancels the awaiting) is what reports it.
_DEADLINE_GRACE = 0.5


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Code run inside this block should be done ``seconds`` from now (``time_left``)."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def time_left(limit: float) -> float:
    """``limit`` seconds, or fewer when the current ``deadline`` comes sooner.

    For waits a timeout cannot cancel, such as blocking socket calls in a worker thread: an
    abandoned thread would otherwise hold the process (and ``asyncio.run``) for ``limit``.
    """
    end = _deadline.get()
    if end is None:
        return limit
    return max(0.1, min(limit, end - time.monotonic() + _DEADLINE_GRACE))
