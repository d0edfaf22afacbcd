"""Running a workflow: what a user relies on when steps run, wait, skip, retry, fail and stop.

Grouped by concern: scheduling the DAG, ``if``, ``foreach``, retries and backoff, timeouts,
failure handling (continueOnError, onError, finally), outputs, errors at run time,
cancellation, idempotency keys, and keeping secrets out of everything a run writes.
The test actions are the ``t`` connector of ``conftest.Probe``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoflow.connectors import sdk
from autoflow.crds import errors, integration, workflow
from autoflow.runners import engine
from autoflow.runners.engine import journal
from autoflow.runners.local import run as local

FAST_RETRY = {"maxAttempts": 5, "initialDelay": "1ms", "multiplier": 2, "jitter": False}


def call(sid: str, **fields: Any) -> dict[str, Any]:
    """A ``t.call`` step; ``with`` parameters go in ``with_``."""
    return {"id": sid, "uses": "t.call", "with": fields.pop("with_", {}), **fields}


class Watch(engine.Observer):
    def __init__(self) -> None:
        self.started: list[tuple[str, int]] = []
        self.retries: list[tuple[str, int, float]] = []

    def step_started(self, step: str, attempt: int) -> None:
        self.started.append((step, attempt))

    def step_retrying(self, step: str, attempt: int, error: str, delay: float) -> None:
        self.retries.append((step, attempt, delay))


async def wait_until(condition: Callable[[], object]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never became true")


def phases(result: engine.RunResult) -> dict[str, str]:
    return {sid: step.phase for sid, step in result.steps.items()}


# --- scheduling --------------------------------------------------------------------------------


async def test_ready_steps_run_concurrently(probe: Any) -> None:
    # Each meet step finishes only while the other one is running too.
    result = await probe.run(
        {
            "steps": [
                {"id": "a", "uses": "t.meet", "needs": [], "with": {"count": 2}},
                {"id": "b", "uses": "t.meet", "needs": [], "with": {"count": 2}},
            ]
        }
    )
    assert result.phase == "Succeeded", result.steps
    assert sorted(probe.steps_called()) == ["a", "b"]


async def test_a_chain_runs_one_step_at_a_time_in_order(probe: Any) -> None:
    steps = [call(s, with_={"value": s, "sleep": 0.001}) for s in "abcd"]
    result = await probe.run({"steps": steps})
    assert result.succeeded
    assert probe.steps_called() == ["a", "b", "c", "d"]
    assert probe.max_running == 1


async def test_dependents_wait_for_their_needs(probe: Any) -> None:
    result = await probe.run(
        {
            "steps": [
                call("a", needs=[], with_={"value": 1, "sleep": 0.02}),
                call("b", needs=[], with_={"value": 2, "sleep": 0.005}),
                call(
                    "c", needs=["a", "b"], with_={"value": "${ [steps.a.output, steps.b.output] }"}
                ),
            ]
        }
    )
    assert result.succeeded
    assert probe.steps_called()[-1] == "c"
    assert result.steps["c"].output == [1, 2]
    c_start = result.steps["c"].started_at
    assert c_start >= result.steps["a"].finished_at
    assert c_start >= result.steps["b"].finished_at


# --- if ----------------------------------------------------------------------------------------


async def test_if_false_skips_the_step_and_the_branch_below_it(probe: Any) -> None:
    result = await probe.run(
        {
            "steps": [
                call("a", with_={"value": 1}),
                call("big", **{"if": "steps.a.output > 5"}),
                call("below", with_={"value": "${ steps.big.output }"}),
                call("join", needs=["a", "big"]),
            ]
        }
    )
    assert result.succeeded
    assert phases(result) == {
        "a": "Succeeded",
        "big": "Skipped",
        "below": "Skipped",
        "join": "Skipped",
    }
    assert result.steps["big"].message == "if was false"
    assert "'big' was skipped" in result.steps["below"].message
    assert probe.steps_called() == ["a"]


async def test_a_dependent_with_its_own_if_decides_for_itself(probe: Any) -> None:
    result = await probe.run(
        {
            "steps": [
                call("big", **{"if": False}),
                call("small", **{"if": "steps.big.status == 'Skipped'"}),
                call("never", needs=["big"], **{"if": "steps.big.status == 'Succeeded'"}),
            ]
        }
    )
    assert phases(result) == {"big": "Skipped", "small": "Succeeded", "never": "Skipped"}
    assert probe.steps_called() == ["small"]


async def test_if_true_runs_the_step(probe: Any) -> None:
    result = await probe.run(
        {"inputs": {"n": {"type": "number"}}, "steps": [call("a", **{"if": "inputs.n > 1"})]},
        inputs={"n": 2},
    )
    assert phases(result) == {"a": "Succeeded"}


# --- foreach -----------------------------------------------------------------------------------


async def test_foreach_keeps_input_order_and_respects_the_concurrency_limit(probe: Any) -> None:
    # Later items finish first; the output is still in input order.
    step = call(
        "each",
        foreach="${ [20, 15, 10, 5, 1, 1] }",
        concurrency=3,
        with_={"value": "${ item * 10 + index }", "sleep": "${ item / 1000 }"},
    )
    result = await probe.run({"steps": [step]})
    assert result.succeeded
    assert result.steps["each"].output == [200, 151, 102, 53, 14, 15]
    assert probe.max_running == 3


async def test_foreach_runs_one_item_at_a_time_by_default(probe: Any) -> None:
    step = call("each", foreach=[1, 2, 3], with_={"value": "${ item }", "sleep": 0.001})
    result = await probe.run({"steps": [step]})
    assert result.steps["each"].output == [1, 2, 3]
    assert probe.max_running == 1


async def test_foreach_over_a_map_gives_key_and_value(probe: Any) -> None:
    step = call(
        "each",
        foreach="${ {'a': 1, 'b': 2} }",
        with_={"value": "${ item.key + '=' + str(item.value) }"},
    )
    result = await probe.run({"steps": [step]})
    assert result.steps["each"].output == ["a=1", "b=2"]


async def test_foreach_over_an_empty_list_succeeds_with_no_calls(probe: Any) -> None:
    result = await probe.run({"steps": [call("each", foreach="${ [] }")]})
    assert result.succeeded
    assert result.steps["each"].output == []
    assert probe.calls == []


async def test_foreach_over_a_non_list_fails_the_step(probe: Any) -> None:
    result = await probe.run({"steps": [call("each", foreach="${ 3 }")]})
    assert result.phase == "Failed"
    assert "foreach must give a list" in result.steps["each"].error


async def test_a_failing_foreach_item_fails_the_step_naming_the_item(probe: Any) -> None:
    step = call(
        "each",
        foreach=[0, 1, 2],
        with_={"failUntil": "${ 1 if item == 1 else 0 }", "error": "permanent"},
    )
    result = await probe.run({"steps": [step]})
    assert result.phase == "Failed"
    assert result.steps["each"].error == "item 1: boom"


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(0, 3), max_size=12),
    st.integers(1, 5),
)
def test_foreach_output_order_is_input_order(new_probe: Any, items: list[int], limit: int) -> None:
    probe = new_probe()
    step = call(
        "each",
        foreach=items,
        concurrency=limit,
        with_={"value": "${ [index, item] }", "sleep": "${ item / 2000 }"},
    )
    result = asyncio.run(probe.run({"steps": [step]}))
    assert result.steps["each"].output == [[i, v] for i, v in enumerate(items)]
    assert probe.max_running <= limit
    assert sorted(c.key for c in probe.calls) == sorted(f"r1:each[{i}]" for i in range(len(items)))


# --- retries -----------------------------------------------------------------------------------


async def test_a_retryable_error_is_retried_with_backoff(probe: Any) -> None:
    watch = Watch()
    step = call("a", retry=FAST_RETRY, with_={"value": "ok", "failUntil": 2})
    jr = journal.MemoryJournal()
    result = await probe.run({"steps": [step]}, observer=watch, journal=jr)
    assert result.succeeded
    assert result.steps["a"].output == "ok"
    assert result.steps["a"].attempts == 3
    assert [c.attempt for c in probe.calls] == [1, 2, 3]
    assert watch.retries == [("a", 1, 0.001), ("a", 2, 0.002)]
    retries = [r for r in jr.records if r["t"] == "retry"]
    assert [(r["attempt"], r["error"]) for r in retries] == [(1, "boom"), (2, "boom")]


async def test_a_permanent_error_is_not_retried(probe: Any) -> None:
    step = call("a", retry=FAST_RETRY, with_={"failUntil": 9, "error": "permanent"})
    result = await probe.run({"steps": [step]})
    assert result.phase == "Failed"
    assert result.steps["a"].error == "boom"
    assert result.steps["a"].attempts == 1
    assert len(probe.calls) == 1


async def test_an_unexpected_exception_is_permanent_and_described(probe: Any) -> None:
    step = call("a", retry=FAST_RETRY, with_={"failUntil": 9, "error": "crash"})
    result = await probe.run({"steps": [step]})
    assert result.steps["a"].error == "unexpected error in t.call: RuntimeError: boom"
    assert len(probe.calls) == 1


@pytest.mark.parametrize("error", ["permanent", "crash"])
async def test_retry_on_any_retries_permanent_errors(probe: Any, error: str) -> None:
    retry = {**FAST_RETRY, "retryOn": "any"}
    step = call("a", retry=retry, with_={"value": 1, "failUntil": 2, "error": error})
    result = await probe.run({"steps": [step]})
    assert result.succeeded
    assert [c.attempt for c in probe.calls] == [1, 2, 3]


async def test_max_attempts_bounds_the_retries(probe: Any) -> None:
    step = call("a", retry={**FAST_RETRY, "maxAttempts": 3}, with_={"failUntil": 99})
    result = await probe.run({"steps": [step]})
    assert result.phase == "Failed"
    assert len(probe.calls) == 3
    assert result.steps["a"].attempts == 3
    assert result.steps["a"].error == "boom after 3 attempts"


async def test_without_a_retry_policy_a_step_is_tried_once(probe: Any) -> None:
    result = await probe.run({"steps": [call("a", with_={"failUntil": 9})]})
    assert result.phase == "Failed"
    assert len(probe.calls) == 1


async def test_the_workflow_retry_policy_is_the_default_for_every_step(probe: Any) -> None:
    spec = {
        "retry": FAST_RETRY,
        "steps": [
            call("a", with_={"failUntil": 1}),
            call("b", retry={"maxAttempts": 1}, with_={"failUntil": 1}),
        ],
    }
    result = await probe.run(spec)
    assert phases(result) == {"a": "Succeeded", "b": "Failed"}
    assert [(c.step, c.attempt) for c in probe.calls] == [("a", 1), ("a", 2), ("b", 1)]


async def test_retry_after_from_the_remote_system_is_honoured(probe: Any) -> None:
    watch = Watch()
    step = call("a", retry=FAST_RETRY, with_={"failUntil": 1, "retryAfter": 0.03})
    began = time.monotonic()
    result = await probe.run({"steps": [step]}, observer=watch)
    assert result.succeeded
    assert watch.retries == [("a", 1, 0.03)]
    assert time.monotonic() - began >= 0.03


async def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it(probe: Any) -> None:
    watch = Watch()
    retry = {**FAST_RETRY, "initialDelay": "20ms"}
    step = call("a", retry=retry, with_={"failUntil": 1, "retryAfter": 0.001})
    await probe.run({"steps": [step]}, observer=watch)
    assert watch.retries == [("a", 1, 0.02)]


def test_backoff_grows_exponentially_up_to_max_delay() -> None:
    policy = workflow.Retry(initial_delay="1s", multiplier=2, max_delay="10s", jitter=False)
    assert [engine.backoff(policy, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    flat = workflow.Retry(initial_delay="500ms", multiplier=1, jitter=False)
    assert [engine.backoff(flat, n) for n in (1, 5)] == [0.5, 0.5]


def test_backoff_jitter_ends() -> None:
    policy = workflow.Retry(initial_delay="1s", multiplier=3, max_delay="1m", jitter=True)
    assert engine.backoff(policy, 2, rand=lambda: 0.0) == 1.5
    assert engine.backoff(policy, 2, rand=lambda: 1.0) == 3.0


@given(
    st.integers(1, 100),
    st.floats(0, 1, exclude_max=True),
    st.sampled_from(["10ms", "1s", "3s"]),
    st.floats(1, 10),
)
def test_backoff_jitter_stays_between_half_and_all_of_the_delay(
    attempt: int, rand: float, initial: str, multiplier: float
) -> None:
    policy = workflow.Retry(initial_delay=initial, multiplier=multiplier, max_delay="60s")
    plain = engine.backoff(policy.model_copy(update={"jitter": False}), attempt)
    assert plain <= 60
    assert plain / 2 <= engine.backoff(policy, attempt, rand=lambda: rand) <= plain


# --- timeouts ----------------------------------------------------------------------------------


async def test_a_step_timeout_fails_the_attempt_as_retryable(probe: Any) -> None:
    watch = Watch()
    spec = {
        "steps": [
            call("slow", timeout="20ms", with_={"sleep": 5}),
            call(
                "retried",
                needs=[],
                timeout="20ms",
                retry={**FAST_RETRY, "maxAttempts": 2},
                with_={"sleep": 5},
            ),
        ]
    }
    result = await probe.run(spec, observer=watch)
    assert result.phase == "Failed"
    assert result.steps["slow"].error == "timed out after 0.02s"
    assert result.steps["retried"].error == "timed out after 0.02s after 2 attempts"
    assert [r[:2] for r in watch.retries] == [("retried", 1)]
    assert probe.running == 0


async def test_a_run_timeout_fails_the_run_and_still_runs_finally(probe: Any) -> None:
    spec = {
        "timeout": "50ms",
        "steps": [call("a"), call("slow", with_={"sleep": 5}), call("after")],
        "finally": [call("cleanup")],
    }
    result = await probe.run(spec)
    assert result.phase == "Failed"
    assert result.error == "the run timed out after 0.05s"
    assert phases(result) == {
        "a": "Succeeded",
        "slow": "Cancelled",
        "after": "Cancelled",
        "cleanup": "Succeeded",
    }
    assert result.steps["slow"].message == "the run timed out"
    assert probe.steps_called() == ["a", "slow", "cleanup"]
    assert probe.running == 0


# --- failures ----------------------------------------------------------------------------------


async def test_continue_on_error_lets_the_run_go_on(probe: Any) -> None:
    spec = {
        "steps": [
            call("a", continueOnError=True, with_={"failUntil": 1, "error": "permanent"}),
            call("b", with_={"value": "${ [steps.a.status, steps.a.error] }"}),
        ],
        "onError": [call("handler")],
    }
    result = await probe.run(spec)
    assert result.succeeded
    assert result.steps["a"].phase == "Failed"
    assert result.steps["a"].error == "boom"
    assert result.steps["b"].output == ["Failed", "boom"]
    assert "handler" not in probe.steps_called()


async def test_a_failure_stops_new_steps_but_running_siblings_finish(probe: Any) -> None:
    spec = {
        "steps": [
            call("bad", needs=[], with_={"failUntil": 1, "error": "permanent"}),
            call("sibling", needs=[], with_={"value": 1, "sleep": 0.03}),
            call("later", needs=["sibling"]),
            call("last"),
        ]
    }
    result = await probe.run(spec)
    assert result.phase == "Failed"
    assert result.error == "step 'bad' failed: boom"
    assert phases(result) == {
        "bad": "Failed",
        "sibling": "Succeeded",
        "later": "Skipped",
        "last": "Skipped",
    }
    assert result.steps["sibling"].output == 1
    assert result.steps["later"].message == "not run: step 'bad' failed: boom"
    assert sorted(probe.steps_called()) == ["bad", "sibling"]


async def test_on_error_steps_see_the_error(probe: Any) -> None:
    spec = {
        "steps": [call("a"), call("b", with_={"failUntil": 1, "message": "no stock"})],
        "onError": [
            call("notify", with_={"value": "${ [error.message, error.step] }"}),
            call("then"),
        ],
    }
    result = await probe.run(spec)
    assert result.phase == "Failed"
    assert result.steps["notify"].output == ["step 'b' failed: no stock", "b"]
    assert result.steps["then"].phase == "Succeeded"
    assert result.error == "step 'b' failed: no stock"  # a handled failure is still a failure


async def test_error_step_is_the_step_that_failed_the_run(probe: Any) -> None:
    spec = {
        "steps": [
            call("tolerated", continueOnError=True, with_={"failUntil": 1}),
            call("fatal", with_={"failUntil": 1}),
        ],
        "onError": [call("notify", with_={"value": "${ error.step }"})],
    }
    result = await probe.run(spec)
    assert result.steps["notify"].output == "fatal"


async def test_on_error_does_not_run_when_the_run_succeeds(probe: Any) -> None:
    result = await probe.run({"steps": [call("a")], "onError": [call("h")]})
    assert result.succeeded
    assert probe.steps_called() == ["a"]
    assert "h" not in result.steps


@pytest.mark.parametrize("fails", [False, True])
async def test_finally_runs_after_success_and_failure(probe: Any, fails: bool) -> None:
    spec = {
        "steps": [call("a", with_={"failUntil": int(fails)})],
        "onError": [call("h")],
        "finally": [call("f1", with_={"value": "${ steps.a.status }"}), call("f2")],
    }
    result = await probe.run(spec)
    assert result.phase == ("Failed" if fails else "Succeeded")
    assert probe.steps_called()[-2:] == ["f1", "f2"]
    assert result.steps["f1"].output == ("Failed" if fails else "Succeeded")


async def test_finally_sees_the_status_of_steps_that_never_ran(probe: Any) -> None:
    spec = {
        "steps": [call("a", with_={"failUntil": 1}), call("b")],
        "finally": [call("f", with_={"value": "${ [steps.a.status, steps.b.status] }"})],
    }
    result = await probe.run(spec)
    assert result.steps["f"].output == ["Failed", "Skipped"]


# --- outputs -----------------------------------------------------------------------------------


async def test_outputs_are_rendered_with_their_types(probe: Any) -> None:
    spec = {
        "inputs": {"n": {"type": "integer"}},
        "steps": [call("a", with_={"value": {"total": "${ inputs.n * 2 }"}})],
        "outputs": {
            "total": "${ steps.a.output.total }",
            "label": "n=${ inputs.n }",
            "fixed": [1, "two"],
        },
    }
    result = await probe.run(spec, inputs={"n": 21})
    assert result.outputs == {"total": 42, "label": "n=21", "fixed": [1, "two"]}


async def test_no_outputs_when_the_run_failed(probe: Any) -> None:
    spec = {"steps": [call("a", with_={"failUntil": 1})], "outputs": {"x": "${ 1 }"}}
    result = await probe.run(spec)
    assert result.phase == "Failed"
    assert result.outputs is None


async def test_an_output_that_cannot_be_rendered_fails_the_run(probe: Any) -> None:
    spec = {"steps": [call("a", with_={"value": {}})], "outputs": {"x": "${ steps.a.output.nope }"}}
    result = await probe.run(spec)
    assert result.phase == "Failed"
    assert result.error.startswith("outputs: ")
    assert "nope" in result.error


# --- errors at run time ------------------------------------------------------------------------


async def test_an_expression_error_fails_the_step_naming_the_field(probe: Any) -> None:
    spec = {
        "inputs": {"order": {"type": "object"}},
        "steps": [call("a", with_={"value": "${ inputs.order.total }"})],
    }
    result = await probe.run(spec, inputs={"order": {"id": 7}})
    assert result.phase == "Failed"
    error = result.steps["a"].error
    assert error.startswith("with.value: ")
    assert "total" in error
    assert "inputs.order.total" in error  # the expression
    assert probe.calls == []


async def test_an_if_that_fails_to_evaluate_fails_the_step_naming_if(probe: Any) -> None:
    spec = {"inputs": {"o": {"type": "object"}}, "steps": [call("a", **{"if": "inputs.o.x > 1"})]}
    result = await probe.run(spec, inputs={"o": {}})
    assert result.steps["a"].phase == "Failed"
    assert result.steps["a"].error.startswith("if: ")


async def test_a_whole_value_of_the_wrong_type_fails_naming_the_parameter(probe: Any) -> None:
    spec = {
        "inputs": {"flag": {"type": "object"}},
        "steps": [{"id": "a", "uses": "core.condition", "with": {"value": "${ inputs.flag }"}}],
    }
    result = await probe.run(spec, inputs={"flag": {"yes": True}})
    assert result.phase == "Failed"
    error = result.steps["a"].error
    assert error.startswith("invalid parameters: with.value: ")


async def test_parameters_are_checked_before_every_attempt_not_retried(probe: Any) -> None:
    spec = {
        "inputs": {"s": {"type": "string"}},
        "steps": [call("a", retry=FAST_RETRY, with_={"sleep": "${ inputs.s }"})],
    }
    result = await probe.run(spec, inputs={"s": "soon"})
    assert result.steps["a"].error.startswith("invalid parameters: with.sleep: ")
    assert result.steps["a"].attempts == 1
    assert probe.calls == []


# --- cancellation ------------------------------------------------------------------------------


async def test_cancel_stops_the_run_and_finally_still_runs(probe: Any) -> None:
    spec = {
        "steps": [
            call("a", needs=[], with_={"sleep": 5}),
            call("b", needs=[], with_={"sleep": 5}),
            call("c"),
        ],
        "finally": [call("cleanup", with_={"value": "${ steps.a.status }"})],
    }
    run = engine.Run(probe.compile(spec), run_id="r1", inputs={})
    task = asyncio.create_task(run.execute())
    await wait_until(lambda: probe.running == 2)
    run.cancel()
    result = await asyncio.wait_for(task, 2)
    assert result.phase == "Cancelled"
    assert result.error == "the run was cancelled"
    assert {s: result.steps[s].phase for s in "abc"} == {s: "Cancelled" for s in "abc"}
    assert probe.running == 0  # nothing left running after execute returned
    assert result.steps["cleanup"].phase == "Succeeded"
    assert result.steps["cleanup"].output == "Cancelled"


async def test_cancel_during_a_chain_runs_finally_but_not_on_error(probe: Any) -> None:
    spec = {
        "steps": [call("a", with_={"sleep": 5}), call("b")],
        "onError": [call("handler")],
        "finally": [call("cleanup")],
    }
    run = engine.Run(probe.compile(spec), run_id="r1", inputs={})
    task = asyncio.create_task(run.execute())
    await wait_until(lambda: probe.calls)
    run.cancel()
    result = await asyncio.wait_for(task, 2)
    assert result.phase == "Cancelled"
    assert phases(result) == {"a": "Cancelled", "b": "Cancelled", "cleanup": "Succeeded"}
    assert probe.steps_called() == ["a", "cleanup"]


async def test_cancel_before_execute_runs_no_step(probe: Any) -> None:
    run = engine.Run(probe.compile({"steps": [call("a"), call("b")]}), run_id="r1", inputs={})
    run.cancel()
    result = await run.execute()
    assert result.phase == "Cancelled"
    assert phases(result) == {"a": "Cancelled", "b": "Cancelled"}
    assert probe.calls == []


async def test_cancelling_the_caller_still_propagates(probe: Any) -> None:
    run = engine.Run(
        probe.compile({"steps": [call("a", with_={"sleep": 5})]}), run_id="r1", inputs={}
    )
    task = asyncio.create_task(run.execute())
    await wait_until(lambda: probe.calls)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- idempotency keys --------------------------------------------------------------------------


async def test_idempotency_keys(probe: Any) -> None:
    spec = {
        "steps": [
            call("a", retry=FAST_RETRY, with_={"failUntil": 2}),
            call("b"),
            call(
                "each",
                foreach=["x", "y"],
                retry=FAST_RETRY,
                with_={"failUntil": "${ 1 if item == 'y' else 0 }"},
            ),
        ]
    }
    result = await probe.run(spec, run_id="run-7")
    assert result.succeeded
    assert [(c.step, c.attempt, c.key) for c in probe.calls] == [
        ("a", 1, "run-7:a"),
        ("a", 2, "run-7:a"),
        ("a", 3, "run-7:a"),
        ("b", 1, "run-7:b"),
        ("each", 1, "run-7:each[0]"),
        ("each", 1, "run-7:each[1]"),
        ("each", 2, "run-7:each[1]"),
    ]


# --- secrets -----------------------------------------------------------------------------------

SECRET = "s3cr3t-T0ken-42"


class LeakParams(sdk.Params):
    fail: bool = False


def vault_connector() -> sdk.Connector:
    """An action that does everything wrong with a secret: logs, returns and raises it."""
    connector = sdk.Connector("vault")

    @connector.action("leak")
    async def leak(params: LeakParams, ctx: sdk.ActionContext) -> dict[str, Any]:
        token = ctx.secrets.get("token")
        ctx.log.info("calling with token %s", token)
        ctx.log.warning(f"plain {token}")
        if params.fail:
            kind = errors.RetryableError if ctx.attempt == 1 else errors.PermanentError
            raise kind(f"token {token} was refused")
        return {"echo": token, "list": [f"Bearer {token}"], token: "as a key"}

    return connector


async def test_secrets_never_leave_the_run(probe: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="autoflow")
    probe.registry.add(vault_connector())
    vault = integration.Integration.model_validate(
        {"metadata": {"name": "vault"}, "spec": {"type": "vault"}}
    )
    provider = local.LocalIntegrations([vault], env={"AUTOFLOW_SECRET_VAULT_TOKEN": SECRET})
    spec = {
        "steps": [
            {"id": "ok", "uses": "vault.leak", "integration": "vault"},
            call("copy", with_={"value": "${ steps.ok.output }"}),
            {
                "id": "bad",
                "uses": "vault.leak",
                "integration": "vault",
                "with": {"fail": True},
                "retry": FAST_RETRY,
            },
        ],
        "onError": [call("notify", with_={"value": "${ error.message }"})],
        "finally": [call("summary", with_={"value": "${ steps.ok.output }"})],
        "outputs": {"echo": "${ steps.ok.output.echo }"},
    }
    jr = journal.MemoryJournal()
    result = await probe.run(spec, journal=jr, integrations=provider)
    assert result.phase == "Failed"
    assert result.steps["ok"].output["echo"] == "***"
    assert result.steps["ok"].output["list"] == ["Bearer ***"]
    assert result.steps["bad"].error == "token *** was refused after 2 attempts"
    assert (
        result.steps["notify"].output == "step 'bad' failed: token *** was refused after 2 attempts"
    )
    assert "calling with token ***" in caplog.messages
    everything = [
        json.dumps(result.to_json()),
        json.dumps(jr.records),
        caplog.text,
        *caplog.messages,
        *(json.dumps(r.args, default=str) for r in caplog.records),
    ]
    for text in everything:
        assert SECRET not in text


async def test_a_step_naming_an_integration_needs_a_provider(probe: Any) -> None:
    spec = {"steps": [call("a", integration="vault")]}
    result = await probe.run(spec)
    assert result.steps["a"].error == "integration 'vault' is not available to this run"
