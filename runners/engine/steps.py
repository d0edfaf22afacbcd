"""Running one step: its condition, its foreach items, each call under the retry policy.

``_decide_and_run`` decides whether the step runs (``if``, or a skipped step it needs), then
runs the action once, or once per foreach item with the step's concurrency, outputs in input
order. ``_attempts`` makes the calls of one item under the retry policy: each attempt is
journaled as it starts, a failed one is retried only when retryable (or ``retryOn: any``),
after ``backoff`` (or the remote system's ``Retry-After`` when longer). ``_call`` renders the
parameters, validates them, resolves the Integration, and calls the action under the step's
timeout, inside the Integration's limiter slot when it has limits.

Every failure ends as ``errors.StepFailed`` with a readable, redacted message; an
interruption between attempts or items ends as ``Unfinished`` (nothing recorded as finished).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import pydantic

from autoflow.connectors import sdk
from autoflow.crds import errors, meta, problems, workflow
from autoflow.runners import expressions
from autoflow.runners.access import limits, redact
from autoflow.runners.definitions import integration_checks
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.engine.journaling import Journaling
from autoflow.runners.engine.results import (
    SKIPPED,
    SUCCEEDED,
    IntegrationProvider,
    Observer,
    StepResult,
    Unfinished,
)

log = logging.getLogger("autoflow.run")  # what steps log, with run and step ids
engine_log = logging.getLogger("autoflow.engine")  # what the engine decides (retries)


def backoff(
    policy: workflow.Retry, attempt: int, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based)."""
    base = meta.parse_duration(policy.initial_delay) * policy.multiplier ** (attempt - 1)
    delay = min(meta.parse_duration(policy.max_delay), base)
    if policy.jitter:
        delay = delay / 2 + rand() * delay / 2
    return delay


def _describe(exc: BaseException, sp: plan_mod.StepPlan) -> tuple[str, bool, float | None]:
    """(message, retryable, retry-after) for anything an attempt raised."""
    if isinstance(exc, errors.ConnectorError):
        return exc.message, exc.retryable, exc.retry_after
    if isinstance(exc, errors.ExpressionError):
        field = exc.where.field or "with"
        text = f"{field}: {exc.message}"
        return (f"{text} (in ${{ {exc.expression} }})" if exc.expression else text), False, None
    if isinstance(exc, TimeoutError):
        return f"timed out after {sp.timeout or 0:g}s", True, None
    if isinstance(exc, errors.AutoflowError):
        return exc.message, False, None
    return f"unexpected error in {sp.action.uses}: {type(exc).__name__}: {exc}", False, None


class StepExecution(Journaling):
    """The step side of a ``Run``: one step's decision, items, attempts and calls."""

    integrations: IntegrationProvider | None
    limiter: limits.Limiter
    _namespace: str  # the run's namespace, which the limiter's quotas are kept under
    observer: Observer
    redactor: redact.Redactor
    _scope: dict[str, Any]  # what expressions read: inputs, steps, run, env (and error)
    _pool: sdk.ResourcePool
    _interrupted: bool
    _interrupt_event: asyncio.Event  # wakes retry back-offs on an interruption

    def _evaluation_stopped(self) -> None:
        """A signal stopped an evaluation midway: the run is interrupted from here on, before
        the loop gets to the signal's own handler (which may still make it a cancel)."""
        self._interrupted = True
        self._interrupt_event.set()
        expressions.clear_stop()

    async def _decide_and_run(self, sp: plan_mod.StepPlan, started: float) -> StepResult:
        sid = sp.id
        if sp.condition is None:
            for dep in sp.needs:
                if self.results[dep].phase == SKIPPED:
                    return StepResult(
                        sid,
                        SKIPPED,
                        started_at=started,
                        finished_at=time.time(),
                        message=f"skipped because {dep!r} was skipped",
                    )
        else:
            try:
                go = expressions.truthy(sp.condition.evaluate(self._scope))
            except errors.ExpressionError as exc:
                raise errors.StepFailed(_describe(exc, sp)[0], 0) from None
            if not go:
                return StepResult(
                    sid,
                    SKIPPED,
                    started_at=started,
                    finished_at=time.time(),
                    message="if was false",
                )
        if sp.foreach is not None:
            output, attempts = await self._foreach(sp)
        else:
            output, attempts = await self._attempts(sp, self._scope, -1)
        return StepResult(sid, SUCCEEDED, output, None, attempts, started, time.time())

    async def _foreach(self, sp: plan_mod.StepPlan) -> tuple[list[Any], int]:
        assert sp.foreach is not None
        try:
            if isinstance(sp.foreach, expressions.Expression):
                items = sp.foreach.evaluate(self._scope)
            else:
                items = sp.foreach.render(self._scope)
        except errors.ExpressionError as exc:
            raise errors.StepFailed(_describe(exc, sp)[0], 0) from None
        if isinstance(items, dict):
            items = [{"key": k, "value": v} for k, v in items.items()]
        if not isinstance(items, list):
            raise errors.StepFailed(f"foreach must give a list; got {type(items).__name__}", 0)
        done = self._replay.items.get(sp.id, {})
        outputs: list[Any] = [done.get(i) for i in range(len(items))]
        attempts_of = self._replay.attempts
        # Items that had started before an interruption go first and run even after another
        # item fails, as they did then; a new item starts only while none has failed.
        started = [i for i in range(len(items)) if i not in done and (sp.id, i) in attempts_of]
        must_run = set(started)
        todo = started + [i for i in range(len(items)) if i not in done and i not in must_run]
        limit = sp.step.concurrency or 1
        # Items finished before an interruption count with the attempts they took.
        total_attempts = sum(attempts_of.get((sp.id, i), (1, False))[0] for i in done)
        failed: dict[int, str] = {}
        stopped: list[int] = []  # items an interruption left unfinished

        async def worker() -> None:
            nonlocal total_attempts
            while todo and (not failed or todo[0] in must_run) and not self._interrupted:
                index = todo.pop(0)
                scope = {**self._scope, "item": items[index], "index": index}
                try:
                    output, attempts = await self._attempts(sp, scope, index)
                except errors.StepFailed as exc:
                    total_attempts += exc.attempts
                    failed[index] = exc.message
                    continue
                except Unfinished:
                    stopped.append(index)
                    return
                total_attempts += attempts
                outputs[index] = output
                self._record({"t": "item", "step": sp.id, "index": index, "output": output})
                await self._durable()

        workers = [worker() for _ in range(min(limit, len(todo)))]
        if len(workers) == 1:
            await workers[0]
        elif workers:
            await asyncio.gather(*workers)
        if stopped or any(i in must_run or not failed for i in todo):
            # Interrupted: finished items are journaled; the resumed run does what this run
            # would still have done (every item, or after a failure those already started).
            raise Unfinished
        if failed:
            # The first failed item by position, not by time: the same however they interleaved.
            index = min(failed)
            raise errors.StepFailed(f"item {index}: {failed[index]}", total_attempts)
        return outputs, total_attempts

    async def _attempts(
        self, sp: plan_mod.StepPlan, scope: dict[str, Any], item: int
    ) -> tuple[Any, int]:
        """Call the action under the retry policy; returns (output, attempts made, counting
        those made before an interruption: attempt numbers go on across a resume)."""
        policy = sp.retry
        attempt = 1
        if self._replay.attempts:
            attempt = self._replay.next_attempt(sp.id, item)
            # Interrupted while waiting to retry: wait again before the next attempt, as the
            # failed one asked (a rate limit's Retry-After outlives the process).
            waited = self._replay.retry_delays.get((sp.id, item))
            if waited:
                await self._back_off(waited)
                if self._interrupted:
                    raise Unfinished
        key_step = sp.id if item < 0 else f"{sp.id}[{item}]"
        while True:
            rec: dict[str, Any] = {"t": "start", "step": sp.id, "attempt": attempt}
            if item >= 0:
                rec["item"] = item
            self._record(rec)
            self.observer.step_started(sp.id, attempt)
            try:
                output = await self._call(sp, scope, attempt, f"{self.run_id}:{key_step}")
                return output, attempt
            except asyncio.CancelledError:
                raise
            except expressions.Stopped:
                self._evaluation_stopped()
                raise Unfinished from None  # this attempt is the resumed run's, key and all
            except Exception as exc:  # every failure becomes a step message, never a traceback
                message, retryable, retry_after = _describe(exc, sp)
            message = self.redactor.text(message)
            may_retry = retryable or policy.retry_on == "any"
            if not may_retry or attempt >= policy.max_attempts:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise errors.StepFailed(f"{message}{tries}", attempt)
            delay = backoff(policy, attempt)
            if retry_after is not None:
                delay = max(delay, retry_after)
            rec = {"t": "retry", "step": sp.id, "attempt": attempt, "error": message}
            rec["delay"] = delay
            if item >= 0:
                rec["item"] = item
            self._record(rec)
            if self._interrupted:
                raise Unfinished  # the next attempt is the resumed run's
            self.observer.step_retrying(sp.id, attempt, message, delay)
            engine_log.info(
                "step %s attempt %d failed, retrying in %.2fs: %s",
                sp.id,
                attempt,
                delay,
                message,
                extra={"run_id": self.run_id, "step_id": sp.id},
            )
            if delay > 0:
                # No wait asked is no wait: the step keeps its place among the running ones,
                # so a retried step interleaves with others the same way in every run.
                await self._back_off(delay)
                if self._interrupted:
                    raise Unfinished
            attempt += 1

    async def _back_off(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less when the run is interrupted meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._interrupt_event.wait(), delay)

    async def _call(
        self, sp: plan_mod.StepPlan, scope: dict[str, Any], attempt: int, key: str
    ) -> Any:
        raw = sp.params.render(scope, seconds=sp.timeout)  # evaluation stops at the timeout too
        try:
            params = sp.action.params.model_validate(raw)
        except pydantic.ValidationError as exc:
            found = list(
                problems.problems(exc, raw, errors.Where(), under="with", noun="parameter")
            )
            found = found[:5]
            text = "; ".join(f"{p.where.field}: {p.message}" for p in found)
            raise errors.PermanentError(f"invalid parameters: {text}") from None
        info = None
        if sp.step.integration:
            if self.integrations is None:
                raise errors.PermanentError(
                    f"integration {sp.step.integration!r} is not available to this run",
                    errors.Where(step=sp.id, field="integration"),
                )
            info = await self.integrations.get(sp.step.integration, self.redactor)
            if (
                wrong := integration_checks.type_mismatch(info.name, info.type, sp.action.uses)
            ) is not None:
                raise errors.PermanentError(wrong, errors.Where(step=sp.id, field="integration"))
        ctx = sdk.ActionContext(
            run_id=self.run_id,
            step_id=sp.id,
            attempt=attempt,
            idempotency_key=key,
            log=redact.RedactingAdapter(
                log, {"run_id": self.run_id, "step_id": sp.id}, self.redactor
            ),
            integration=info,
            pool=self._pool,
        )
        if info is not None and info.limits is not None:
            value = await self._limited(sp, params, ctx, info.name, info.limits)
        elif sp.timeout is None:
            value = await sp.action.func(params, ctx)
        else:
            async with asyncio.timeout(sp.timeout):
                value = await sp.action.func(params, ctx)
        output = sp.action.dump_output(value)
        return self.redactor.value(output) if self.redactor else output

    async def _limited(
        self,
        sp: plan_mod.StepPlan,
        params: Any,
        ctx: sdk.ActionContext,
        integration: str,
        quota: sdk.Limits,
    ) -> Any:
        """The action called inside the integration's slot; waiting for the slot counts
        against the step's timeout, so the action gets what is left of it."""
        started = asyncio.get_running_loop().time()
        slot = self.limiter.slot(integration, quota, namespace=self._namespace, max_wait=sp.timeout)
        try:
            async with slot:
                if sp.timeout is None:
                    return await sp.action.func(params, ctx)
                async with asyncio.timeout_at(started + sp.timeout):
                    return await sp.action.func(params, ctx)
        except errors.AutoflowError as exc:
            exc.at(step=sp.id)  # a quota error names the Integration, not the step held back
            raise
