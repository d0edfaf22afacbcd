"""The engine's test connector and small workflows, for tests that cannot import ``conftest``
by name (a session that also collects tests/kube has another ``conftest`` module there).

``make_workflow(spec)`` validates a spec dict into a Workflow. ``Probe`` is a test connector
named ``t`` registered in a fresh registry, whose actions record every call (step, attempt,
idempotency key, value) and how many calls were running at once (see ``conftest``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Literal

from autoflow.connectors import registry, sdk
from autoflow.crds import errors, workflow
from autoflow.runners import engine
from autoflow.runners.definitions import inputs as inputs_mod
from autoflow.runners.definitions import plan
from autoflow.runners.engine import journal as journal_mod


def make_workflow(spec: dict[str, Any], name: str = "wf") -> workflow.Workflow:
    return workflow.Workflow.model_validate({"metadata": {"name": name}, "spec": spec})


class CallParams(sdk.Params):
    value: Any = None
    sleep: float = 0.0
    fail_until: int = 0  # attempts up to this number fail
    error: Literal["retryable", "permanent", "crash"] = "retryable"
    message: str = "boom"
    retry_after: float | None = None


class MeetParams(sdk.Params):
    count: int
    value: Any = None


@dataclasses.dataclass
class Call:
    step: str
    attempt: int
    key: str
    value: Any


class Probe:
    """The ``t`` connector and what it saw."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.running = 0
        self.max_running = 0
        self._arrived = 0
        self._met = asyncio.Event()
        self.connector = sdk.Connector("t", "Test actions that record their calls.")
        self.registry = registry.Registry()
        self.registry.add(self.connector)

        @self.connector.action("call")
        async def call(params: CallParams, ctx: sdk.ActionContext) -> Any:
            """Returns ``value``; sleeps, fails the first ``failUntil`` attempts when asked."""
            return await self._call(params, ctx)

        @self.connector.action("meet")
        async def meet(params: MeetParams, ctx: sdk.ActionContext) -> Any:
            """Finishes only when ``count`` meet calls are running at the same time."""
            return await self._meet(params, ctx)

    async def _call(self, params: CallParams, ctx: sdk.ActionContext) -> Any:
        self.calls.append(Call(ctx.step_id, ctx.attempt, ctx.idempotency_key, params.value))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if params.sleep:
                await asyncio.sleep(params.sleep)
            if ctx.attempt <= params.fail_until:
                if params.error == "crash":
                    raise RuntimeError(params.message)
                kind = (
                    errors.RetryableError if params.error == "retryable" else errors.PermanentError
                )
                raise kind(params.message, retry_after=params.retry_after)
            return params.value
        finally:
            self.running -= 1

    async def _meet(self, params: MeetParams, ctx: sdk.ActionContext) -> Any:
        self.calls.append(Call(ctx.step_id, ctx.attempt, ctx.idempotency_key, params.value))
        self._arrived += 1
        if self._arrived >= params.count:
            self._met.set()
        try:
            await asyncio.wait_for(self._met.wait(), 2)
        except TimeoutError:
            raise errors.PermanentError("the others never arrived: not run concurrently") from None
        return params.value

    def steps_called(self) -> list[str]:
        return [c.step for c in self.calls]

    def compile(self, spec: dict[str, Any], name: str = "wf") -> plan.Plan:
        return plan.compile_workflow(make_workflow(spec, name), self.registry)

    async def run(
        self,
        spec: dict[str, Any] | plan.Plan,
        *,
        inputs: dict[str, Any] | None = None,
        journal: journal_mod.Journal | None = None,
        run_id: str = "r1",
        **kwargs: Any,
    ) -> engine.RunResult:
        """Run to the end; inputs are resolved against the declared ones, defaults filled in."""
        compiled = spec if isinstance(spec, plan.Plan) else self.compile(spec)
        declared = compiled.workflow.spec.inputs
        values = inputs_mod.resolve(declared, inputs or {}, errors.Where())
        run = engine.Run(compiled, run_id=run_id, inputs=values, journal=journal, **kwargs)
        return await run.execute()
