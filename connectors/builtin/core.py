"""The ``core`` connector: actions that need no outside system.

``log`` writes a message, ``set`` and ``transform`` produce values (the expressions in ``with``
do the work), ``condition`` and ``switch`` compute a branch that later steps test in ``if``,
``delay`` waits, ``fail`` stops the step with a chosen error, ``noop`` does nothing (a join node
in a DAG, and the unit of the engine benchmarks).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import pydantic

from autoflow.connectors import sdk
from autoflow.crds import errors, meta

connector = sdk.Connector("core", "Built-in actions: logging, values, branching, waiting, failing.")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class LogParams(sdk.Params):
    message: Any = pydantic.Field(description="What to log; non-text values are logged as JSON.")
    level: Literal["debug", "info", "warning", "error"] = "info"


class LogOutput(sdk.Output):
    message: Any


@connector.action("log")
async def log(params: LogParams, ctx: sdk.ActionContext) -> LogOutput:
    """Write a message to the run log."""
    ctx.log.log(_LEVELS.get(params.level, logging.ERROR), "%s", params.message)
    return LogOutput(message=params.message)


class SetParams(sdk.Params):
    values: dict[str, Any] = pydantic.Field(description="Named values; they become the output.")


@connector.action("set")
async def set_(params: SetParams, ctx: sdk.ActionContext) -> dict[str, Any]:
    """Output the given named values (expressions allowed in each)."""
    return params.values


class TransformParams(sdk.Params):
    value: Any = pydantic.Field(description="Any value, usually one whole-value expression.")


@connector.action("transform")
async def transform(params: TransformParams, ctx: sdk.ActionContext) -> Any:
    """Output one value computed by an expression, e.g. a filtered or reshaped list."""
    return params.value


class ConditionParams(sdk.Params):
    value: bool = pydantic.Field(description="The condition; true/false, yes/no and 1/0 accepted.")


class ConditionOutput(sdk.Output):
    result: bool


@connector.action("condition")
async def condition(params: ConditionParams, ctx: sdk.ActionContext) -> ConditionOutput:
    """Evaluate a condition; later steps branch with `if: steps.<id>.output.result`."""
    return ConditionOutput(result=params.value)


class Case(sdk.Params):
    name: str = pydantic.Field(min_length=1, max_length=63)
    when: bool | None = pydantic.Field(default=None, description="Matches when true.")
    equals: Any = pydantic.Field(default=None, description="Matches when `value` equals this.")


class SwitchParams(sdk.Params):
    value: Any = None
    cases: list[Case] = pydantic.Field(min_length=1, max_length=64)
    default: str = "default"


class SwitchOutput(sdk.Output):
    case: str


@connector.action("switch")
async def switch(params: SwitchParams, ctx: sdk.ActionContext) -> SwitchOutput:
    """Pick the first matching case; later steps branch with `if: steps.<id>.output.case == ...`."""
    for case in params.cases:
        if case.when is not None:
            if case.when:
                return SwitchOutput(case=case.name)
        elif case.equals == params.value:
            return SwitchOutput(case=case.name)
    return SwitchOutput(case=params.default)


class DelayParams(sdk.Params):
    duration: meta.Duration = pydantic.Field(description="How long to wait: 500ms, 10s, 1m.")


class DelayOutput(sdk.Output):
    seconds: float


@connector.action("delay")
async def delay(params: DelayParams, ctx: sdk.ActionContext) -> DelayOutput:
    """Wait for a duration (cancellable)."""
    seconds = meta.parse_duration(params.duration)
    await asyncio.sleep(seconds)
    return DelayOutput(seconds=seconds)


class FailParams(sdk.Params):
    message: str = pydantic.Field(max_length=2048)
    retryable: bool = False


@connector.action("fail")
async def fail(params: FailParams, ctx: sdk.ActionContext) -> None:
    """Fail the step with a message (retryable or not)."""
    kind = errors.RetryableError if params.retryable else errors.PermanentError
    raise kind(params.message)


@connector.action("noop")
async def noop(params: sdk.NoParams, ctx: sdk.ActionContext) -> None:
    """Do nothing; useful as a join point in a DAG."""
    return None
