"""Every expression is bounded: the work budget, the deadline and numbers that do not fit.

What a runner relies on when a manifest (or the data it reads) is hostile or careless: one
evaluation of a field, all its expressions together, can build and walk only so much
(``expressions.MAX_WORK``), whatever construct does the work; it stops at the step's
timeout; and numbers too large for JSON or for a float end as clear errors naming the step
and field, never as an "unexpected error" or a silent ``null``. The attacks are those of
issue 9 §4, scaled so that they fail fast once bounded.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from autoflow.crds import errors
from autoflow.runners import expressions
from autoflow.runners.expressions import runtime as expr_runtime
from autoflow.runners.expressions import values as expr_values

WHERE = errors.Where(resource="Workflow/orders", step="notify", field="with")
SCOPE: dict[str, Any] = {
    "inputs": {
        "text": "x" * 100_000,
        "same": "x" * 100_000,  # equal to text, another object: comparing reads it all
        "words": "a b " * 25_000,
        "items": list(range(10_000)),
        "copy": list(range(10_000)),
        "map": {f"k{i}": i for i in range(10_000)},
        "json": json.dumps(list(range(10_000))),
    }
}


def render(value: Any, scope: dict[str, Any] | None = None, seconds: float | None = None) -> Any:
    template = expressions.compile_template(value, WHERE)
    scope = SCOPE if scope is None else scope
    return template.render(scope) if seconds is None else template.render(scope, seconds=seconds)


def render_error(value: Any, scope: dict[str, Any] | None = None) -> errors.ExpressionEvalError:
    with pytest.raises(errors.ExpressionEvalError) as caught:
        render(value, scope)
    return caught.value


# --- the budget covers every construct, across a whole field ---------------------------------

# Each is fine on its own, and does work in proportion to its data; 200 of them in one
# field add up to more than the budget.
CONSTRUCTS = [
    "inputs.text + inputs.text",
    "inputs.items + inputs.items",
    "inputs.text * 2",
    "inputs.items * 2",
    "str(inputs.items)",
    "json(inputs.items)",
    "split(inputs.words, ' ')",
    "split(inputs.words)",
    "join(inputs.items, ',')",
    "replace(inputs.text, 'x', 'yy')",
    "upper(inputs.text)",
    "range(10000)",
    "inputs.items[1:]",
    "inputs.text[::-1]",
    "sorted(inputs.items)",
    "unique(inputs.items)",
    "min(inputs.items)",
    "sum(inputs.items)",
    "keys(inputs.map)",
    "values(inputs.map)",
    "fromJson(inputs.json)",
    "inputs.items == inputs.copy",
    "inputs.items < inputs.copy",
    "inputs.text == inputs.same",
    "-1 in inputs.items",
    "'y' in inputs.text",
    "contains(inputs.items, -1)",
    "startsWith(inputs.text, inputs.same)",
    "[x for x in inputs.items]",
    "len(str([[0] * 100] * 100))",
]


@pytest.mark.parametrize("text", CONSTRUCTS)
def test_every_construct_pays_from_one_budget_per_field(text: str) -> None:
    render({"x": "${ " + text + " }"})  # on its own: well within the budget
    error = render_error({"x": ["${ " + text + " }"] * 200})
    assert "evaluation budget used up" in error.message
    assert error.where.step == "notify"
    field = error.where.field or ""
    assert field.startswith("with.x[") and field != "with.x[0]"  # the sum was refused


def test_interpolated_text_pays_too() -> None:
    render({"x": "a ${ inputs.text } b"})
    error = render_error({"x": ["a ${ inputs.text } b"] * 200})
    assert "evaluation budget used up" in error.message


def test_a_list_of_moderate_expressions_cannot_add_up_past_the_budget() -> None:
    # Issue 9: 150 of these ran 6 s past a 1 s step timeout. One is refused now; a smaller
    # one is fine, and 150 of the smaller ones are refused as a whole.
    error = render_error({"x": ["${ len(str([[0]*1000]*1000)) }"] * 150})
    assert "evaluation budget used up" in error.message
    assert render({"x": "${ len(str([[0]*100]*1000)) }"}) == {"x": 202_001}
    error = render_error({"x": ["${ len(str([[0]*100]*1000)) }"] * 150})
    assert error.where.field not in (None, "with.x[0]")
    assert "more than 16,000,000 units" in error.message


def test_splitting_built_text_cannot_exhaust_memory() -> None:
    # Issue 9: 40 of these in a list reached 2.9 GB.
    attack = "${ split(str([['a'] * 1000] * 1000), 'a') }"
    assert "evaluation budget used up" in render_error({"x": [attack] * 40}).message
    moderate = "${ split(str([['a'] * 100] * 100), 'a') }"
    assert len(render(moderate)) == 10_001
    assert "evaluation budget used up" in render_error([moderate] * 40).message


def test_each_field_starts_with_a_full_budget() -> None:
    template = expressions.compile_template(["${ len(str([[0]*100]*1000)) }"] * 5, WHERE)
    for _ in range(3):  # each render affords what one render can
        assert template.render(SCOPE) == [202_001] * 5


def test_work_that_never_ends_is_refused_by_the_budget() -> None:
    endless = "${ [[len(str(range(1000))) for y in range(10000)] for x in range(10000)] }"
    assert "evaluation budget used up" in render_error(endless).message


def test_a_condition_has_its_own_budget() -> None:
    condition = expressions.compile_condition("len(str([[0]*1000]*1000)) > 0", WHERE)
    with pytest.raises(errors.ExpressionEvalError, match="budget used up"):
        condition.evaluate(SCOPE)


# --- the deadline ------------------------------------------------------------------------------


def test_rendering_stops_at_the_steps_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expressions, "MAX_WORK", 10**15)  # only the clock can stop it now
    endless = "${ [[len(str(range(1000))) for y in range(10000)] for x in range(10000)] }"
    started = time.monotonic()
    with pytest.raises(errors.ExpressionEvalError) as caught:
        render({"x": endless}, seconds=0.05)
    assert time.monotonic() - started < 30  # without the deadline: hours
    assert "did not finish within the step's timeout of 0.05s" in caught.value.message
    assert caught.value.where.field == "with.x"


async def test_a_step_timeout_interrupts_a_long_evaluation(
    probe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(expressions, "MAX_WORK", 10**15)  # only the step's timeout stops it
    endless = "${ [[len(str(range(1000))) for y in range(10000)] for x in range(10000)] }"
    spec = {
        "steps": [{"id": "slow", "uses": "t.call", "timeout": "100ms", "with": {"value": endless}}]
    }
    started = time.monotonic()
    result = await probe.run(spec)
    assert time.monotonic() - started < 30  # without the deadline: hours
    assert result.phase == "Failed"
    error = result.steps["slow"].error or ""
    assert error.startswith("with.value: evaluation did not finish within the step's timeout")
    assert probe.steps_called() == []


async def test_a_runs_step_error_names_the_field_over_budget(probe: Any) -> None:
    attack = "${ len(str([[0]*100]*1000)) }"
    spec = {"steps": [{"id": "big", "uses": "t.call", "with": {"value": [attack] * 150}}]}
    result = await probe.run(spec)
    assert result.phase == "Failed"
    error = result.steps["big"].error or ""
    assert error.startswith("with.value[") and "evaluation budget used up" in error
    assert probe.steps_called() == []


# --- numbers -----------------------------------------------------------------------------------

HUGE = {"inputs": {"big": 10**400, "huger": 10**5000, "digits": "1" * 4000}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "fromJson('" + "1" * 4000 + "') * 1.5",
            "fromJson(): a number of 4,000 digits is too large",
        ),
        ("fromJson('1e999')", "fromJson(): 1e999 is too large for a number"),
        ("fromJson('[1, -1e999]')", "fromJson(): -1e999 is too large for a number"),
        ("fromJson('NaN')", "NaN is not a JSON number"),
        ("fromJson('[' * 101 + ']' * 101)", "JSON nested more than 100 levels deep"),
        ("int(inputs.digits) * 1.5", "int(): number too large: 4,000 digits"),
        ("inputs.big * 1.5", "number too large: <int of 1329 bits> * 1.5"),
        ("inputs.big + 0.5", "number too large: <int of 1329 bits> + 0.5"),
        ("inputs.big - 0.5", "number too large"),
        ("inputs.big / 3", "result too large"),
        ("inputs.big ** 2", "number too large"),
        ("2.0 ** 2000", "exponent too large"),
        ("1e300 ** 2", "number too large"),
        ("float(inputs.big)", "not a number"),
        ("str(inputs.huger)", "number too large to convert to text"),
        ("float('nan')", "not a finite number"),
        ("float('inf')", "not a finite number"),
    ],
)
def test_numbers_that_do_not_fit_are_clear_errors(text: str, message: str) -> None:
    error = render_error("${ " + text + " }", HUGE)
    assert message in error.message
    assert error.where.step == "notify"


def test_deep_json_from_data_is_a_clear_error() -> None:
    for depth in (150, 100_000):  # parsed, then refused; too deep for the parser itself
        scope = {"inputs": {"text": "[" * depth + "]" * depth}}
        error = render_error("${ fromJson(inputs.text) }", scope)
        assert "JSON nested more than 100 levels deep" in error.message
    assert render("${ fromJson(inputs.text) }", {"inputs": {"text": "[" * 100 + "]" * 100}})


def test_large_but_real_json_numbers_still_read() -> None:
    assert (
        render("${ fromJson('123456789012345678901234567890') }") == 123456789012345678901234567890
    )
    assert render("${ fromJson('[1.5e300, -2.5e-300]') }") == [1.5e300, -2.5e-300]


def test_a_budget_cannot_be_overdrawn_between_clock_readings() -> None:
    budget = expr_runtime.Budget(1_000_000, 60.0)
    budget.spend(950_000)  # a clock reading is due here
    with pytest.raises(expr_values.EvalFailure, match="budget used up"):
        budget.spend(60_000)  # one large payment just after it
