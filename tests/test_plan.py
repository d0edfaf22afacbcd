"""Compiling a workflow: the DAG its steps form and every problem ``autoflow validate`` reports.

Grouped by concern: the DAG rules (chains, ``needs``, joins, cycles), step ids and actions,
parameters, expressions and what they may read, reporting everything at once, and properties
over random DAGs.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoflow.connectors import registry
from autoflow.crds import errors, workflow
from autoflow.runners.definitions import plan

REGISTRY = registry.Registry()


def make_workflow(spec: dict[str, Any], name: str = "wf") -> workflow.Workflow:
    return workflow.Workflow.model_validate({"metadata": {"name": name}, "spec": spec})


def compile_spec(spec: dict[str, Any]) -> plan.Plan:
    return plan.compile_workflow(make_workflow(spec), REGISTRY)


def problems(spec: dict[str, Any]) -> list[tuple[str | None, str | None, str]]:
    """(step, field, message) of every problem the compiler reports."""
    with pytest.raises(errors.ValidationError) as info:
        compile_spec(spec)
    return [(p.where.step, p.where.field, p.message) for p in info.value.problems]


def noop(sid: str, **fields: Any) -> dict[str, Any]:
    return {"id": sid, "uses": "core.noop", **fields}


def value(sid: str, expr: Any, **fields: Any) -> dict[str, Any]:
    return {"id": sid, "uses": "core.transform", "with": {"value": expr}, **fields}


# --- the DAG -----------------------------------------------------------------------------------


def test_a_plain_list_is_a_chain() -> None:
    compiled = compile_spec({"steps": [noop("a"), noop("b"), noop("c")]})
    steps = compiled.main.steps
    assert [steps[s].needs for s in "abc"] == [(), ("a",), ("b",)]
    assert compiled.main.order == ["a", "b", "c"]
    assert compiled.main.roots() == ["a"]
    assert steps["a"].dependents == ["b"]


def test_empty_needs_starts_at_once() -> None:
    compiled = compile_spec({"steps": [noop("a"), noop("b", needs=[]), noop("c")]})
    assert compiled.main.roots() == ["a", "b"]
    assert compiled.main.steps["c"].needs == ("b",)  # the step before it in the list


def test_needs_makes_a_join() -> None:
    spec = {"steps": [noop("a"), noop("b", needs=[]), noop("c", needs=["a", "b"]), noop("d")]}
    compiled = compile_spec(spec)
    assert compiled.main.steps["c"].needs == ("a", "b")
    assert compiled.main.steps["a"].dependents == ["c"]
    assert compiled.main.steps["b"].dependents == ["c"]
    order = compiled.main.order
    assert order.index("c") > max(order.index("a"), order.index("b"))
    assert order[-1] == "d"


def test_repeated_needs_count_once() -> None:
    compiled = compile_spec({"steps": [noop("a"), noop("b", needs=["a", "a"])]})
    assert compiled.main.steps["b"].needs == ("a",)


def test_error_and_finally_lists_chain_on_their_own() -> None:
    compiled = compile_spec(
        {
            "steps": [noop("a")],
            "onError": [noop("e1"), noop("e2")],
            "finally": [noop("f1"), noop("f2", needs=[])],
        }
    )
    assert compiled.on_error.steps["e1"].needs == ()
    assert compiled.on_error.steps["e2"].needs == ("e1",)
    assert compiled.finally_.roots() == ["f1", "f2"]


def test_a_cycle_is_reported_with_its_path() -> None:
    found = problems({"steps": [noop("a", needs=["b"]), noop("b", needs=["a"])]})
    assert found == [("a", "needs", "steps form a cycle: a → b → a")]


def test_a_longer_cycle_names_every_step_on_it() -> None:
    spec = {"steps": [noop("x"), noop("a", needs=["c"]), noop("b"), noop("c")]}
    assert problems(spec) == [("a", "needs", "steps form a cycle: a → c → b → a")]


def test_a_step_needing_itself_is_a_cycle() -> None:
    assert problems({"steps": [noop("a", needs=["a"])]}) == [
        ("a", "needs", "steps form a cycle: a → a")
    ]


def test_unknown_needs() -> None:
    assert problems({"steps": [noop("a"), noop("b", needs=["a", "zz"])]}) == [
        ("b", "needs", "needs unknown step 'zz'")
    ]


def test_error_steps_cannot_need_main_steps_and_are_told_why() -> None:
    [(step, field, message)] = problems({"steps": [noop("a")], "onError": [noop("e", needs=["a"])]})
    assert (step, field) == ("e", "needs")
    assert "needs unknown step 'a'" in message
    assert "main step" in message


# --- ids and actions ---------------------------------------------------------------------------


def test_duplicate_ids_in_the_steps() -> None:
    assert ("a", "id", "duplicate step id") in problems({"steps": [noop("a"), noop("a")]})


@pytest.mark.parametrize("section", ["onError", "finally"])
def test_duplicate_ids_across_sections(section: str) -> None:
    found = problems({"steps": [noop("a"), noop("b")], section: [noop("b")]})
    assert found == [("b", "id", "duplicate step id")]


def test_duplicate_ids_between_on_error_and_finally() -> None:
    found = problems({"steps": [noop("a")], "onError": [noop("h")], "finally": [noop("h")]})
    assert found == [("h", "id", "duplicate step id")]


def test_unknown_connector_names_the_step_and_uses() -> None:
    [(step, field, message)] = problems({"steps": [noop("a"), {"id": "b", "uses": "nosuch.x"}]})
    assert (step, field) == ("b", "uses")
    assert "unknown connector 'nosuch'" in message
    assert "core" in message  # what is known


def test_unknown_action_names_the_step_and_uses() -> None:
    [(step, field, message)] = problems({"steps": [{"id": "a", "uses": "core.explode"}]})
    assert (step, field) == ("a", "uses")
    assert "no action 'explode'" in message
    assert "transform" in message  # the actions it does have


# --- parameters --------------------------------------------------------------------------------


def test_wrong_static_parameter_type_names_the_parameter() -> None:
    spec = {"steps": [{"id": "a", "uses": "core.condition", "with": {"value": [1, 2]}}]}
    [(step, field, message)] = problems(spec)
    assert (step, field) == ("a", "with.value")
    assert "bool" in message


def test_wrong_static_type_next_to_an_expression_names_the_parameter() -> None:
    spec = {
        "steps": [
            {"id": "a", "uses": "core.log", "with": {"message": "${ 1 + 1 }", "level": "loud"}}
        ]
    }
    [(step, field, _)] = problems(spec)
    assert (step, field) == ("a", "with.level")


def test_nested_static_parameter_names_the_path() -> None:
    spec = {"steps": [{"id": "a", "uses": "core.switch", "with": {"cases": [{"name": ""}]}}]}
    [(_, field, _)] = problems(spec)
    assert field == "with.cases[0].name"


@pytest.mark.parametrize("message", ["hello", "${ 'hello' }"])
def test_unknown_parameter(message: str) -> None:
    spec = {"steps": [{"id": "a", "uses": "core.log", "with": {"message": message, "colour": 1}}]}
    [(step, field, text)] = problems(spec)
    assert (step, field) == ("a", "with.colour")
    assert "unknown parameter" in text


@pytest.mark.parametrize("level", ["info", "${ 'info' }"])
def test_missing_required_parameter(level: str) -> None:
    spec = {"steps": [{"id": "a", "uses": "core.log", "with": {"level": level}}]}
    [(step, field, text)] = problems(spec)
    assert (step, field) == ("a", "with.message")
    assert "missing" in text


def test_parameters_given_by_expressions_are_not_type_checked_early() -> None:
    spec = {"inputs": {"x": {}}, "steps": [value("a", "${ inputs.x }")]}
    compile_spec(spec)
    compile_spec({"steps": [{"id": "a", "uses": "core.condition", "with": {"value": "${ 1 }"}}]})


# --- expressions -------------------------------------------------------------------------------


def test_expression_syntax_error_names_the_field() -> None:
    [(step, field, message)] = problems({"steps": [value("a", "total: ${ 1 + }")]})
    assert (step, field) == ("a", "with.value")
    assert "syntax" in message


def test_syntax_error_in_if_and_foreach_name_those_fields() -> None:
    found = problems(
        {"steps": [noop("a", **{"if": "1 +"}), value("b", "${ item }", foreach="[1,")]}
    )
    assert [(s, f) for s, f, _ in found] == [("a", "if"), ("b", "foreach")]


def test_reading_a_step_that_is_not_upstream_says_add_it_to_needs() -> None:
    spec = {"steps": [value("a", 1), value("b", "${ steps.a.output }", needs=[])]}
    [(step, field, message)] = problems(spec)
    assert (step, field) == ("b", "with.value")
    assert "steps.a" in message
    assert "add it to needs" in message


def test_reading_a_step_upstream_through_others_is_fine() -> None:
    spec = {
        "steps": [
            value("a", 1),
            value("b", 2, needs=[]),
            value("c", 3, needs=["a", "b"]),
            value("d", "${ steps.a.output + steps.b.output }", **{"if": "steps.a.output > 0"}),
        ]
    }
    assert compile_spec(spec).main.steps["d"].needs == ("c",)


def test_unknown_step_in_an_expression() -> None:
    [(step, field, message)] = problems({"steps": [value("a", "${ steps.nope.output }")]})
    assert (step, field) == ("a", "with.value")
    assert "unknown step 'nope'" in message


def test_unknown_input_in_an_expression_lists_the_declared_ones() -> None:
    spec = {"inputs": {"limit": {"type": "number"}}, "steps": [value("a", "${ inputs.limt }")]}
    [(step, field, message)] = problems(spec)
    assert (step, field) == ("a", "with.value")
    assert "unknown input 'limt'" in message
    assert "limit" in message


def test_a_step_reading_itself() -> None:
    [(_, _, message)] = problems({"steps": [value("a", "${ steps.a.output }")]})
    assert "its own output" in message


def test_item_outside_foreach() -> None:
    [(step, field, message)] = problems({"steps": [value("a", "${ item.id }")]})
    assert (step, field) == ("a", "with.value")
    assert "'item'" in message
    assert "foreach" in message


def test_item_in_if_is_refused_even_in_a_foreach_step() -> None:
    spec = {"steps": [value("a", "${ item }", foreach=[1], **{"if": "item > 0"})]}
    [(step, field, message)] = problems(spec)
    assert (step, field) == ("a", "if")
    assert "'item'" in message


def test_item_and_index_inside_foreach_are_fine() -> None:
    compile_spec({"steps": [value("a", "${ [index, item] }", foreach="${ [1, 2] }")]})


def test_error_outside_on_error() -> None:
    found = problems(
        {"steps": [value("a", "${ error.message }")], "finally": [value("f", "${ error }")]}
    )
    assert [(s, f) for s, f, _ in found] == [("a", "with.value")]
    assert "'error' is only defined in onError steps" in found[0][2]


def test_on_error_and_finally_read_error_and_main_steps() -> None:
    spec = {
        "steps": [value("a", 1)],
        "onError": [value("h", "${ [error.message, error.step, steps.a.status] }")],
        "finally": [value("f", "${ steps.a.output }")],
    }
    compiled = compile_spec(spec)
    assert compiled.on_error.order == ["h"]
    assert compiled.finally_.order == ["f"]


def test_outputs_are_checked() -> None:
    found = problems({"steps": [value("a", 1)], "outputs": {"x": "${ steps.b.output }"}})
    assert found == [(None, "outputs", "unknown step 'b' in expression")]


# --- everything at once ------------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    spec = {
        "inputs": {"n": {"type": "number"}},
        "steps": [
            noop("a", needs=["b"]),
            noop("b", needs=["a"]),
            {"id": "c", "uses": "core.nope"},
            {"id": "d", "uses": "core.condition", "with": {"value": [1]}},
            {"id": "e", "uses": "core.log", "with": {"level": "info"}},
            value("f", "${ 1 + }"),
            value("g", "${ inputs.m }", needs=["zz"]),
            value("h", "${ item }"),
        ],
        "finally": [noop("a")],
    }
    found = {(s, f) for s, f, _ in problems(spec)}
    assert found == {
        ("a", "id"),  # duplicate
        ("a", "needs"),  # cycle
        ("c", "uses"),
        ("d", "with.value"),
        ("e", "with.message"),
        ("f", "with.value"),
        ("g", "needs"),
        ("g", "with.value"),
        ("h", "with.value"),
    }


def test_problems_name_the_resource() -> None:
    with pytest.raises(errors.ValidationError) as info:
        plan.compile_workflow(
            make_workflow({"steps": [{"id": "a", "uses": "core.nope"}]}, "orders")
        )
    assert str(info.value).startswith("Workflow/orders, step 'a', field 'uses': ")


# --- random DAGs -------------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> list[list[int] | None]:
    """For each step, the earlier steps it needs, or None for the default (the one before)."""
    size = draw(st.integers(1, 12))
    return [
        draw(st.none() | st.lists(st.integers(0, i - 1), max_size=3) if i else st.just(None))
        for i in range(size)
    ]


def effective_needs(dag: list[list[int] | None]) -> list[list[int]]:
    return [([i - 1] if i else []) if n is None else n for i, n in enumerate(dag)]


def dag_spec(needs: list[list[int] | None]) -> dict[str, Any]:
    steps = []
    for i, deps in enumerate(needs):
        step = noop(f"s{i}")
        if deps is not None:
            step["needs"] = [f"s{d}" for d in deps]
        steps.append(step)
    return {"steps": steps}


@given(dags())
def test_random_dags_compile_in_an_order_that_respects_every_edge(
    dag: list[list[int] | None],
) -> None:
    compiled = compile_spec(dag_spec(dag))
    order = compiled.main.order
    assert sorted(order) == sorted(f"s{i}" for i in range(len(dag)))
    position = {sid: n for n, sid in enumerate(order)}
    for i, deps in enumerate(effective_needs(dag)):
        sid = f"s{i}"
        assert set(compiled.main.steps[sid].needs) == {f"s{d}" for d in deps}
        for d in deps:
            assert position[f"s{d}"] < position[sid]
            assert sid in compiled.main.steps[f"s{d}"].dependents


@given(dags(), st.data())
def test_a_need_pointing_forward_into_a_path_is_a_cycle(
    dag: list[list[int] | None], data: st.DataObject
) -> None:
    size = len(dag)
    needs = effective_needs(dag)
    first = data.draw(st.integers(0, size - 1))
    last = data.draw(st.integers(first, size - 1))
    # last needs first, first needs last: whatever else there is, this closes a loop.
    needs[last] = [*needs[last], first] if last != first else needs[last]
    needs[first] = [*needs[first], last]
    found = problems(dag_spec([list(n) for n in needs]))
    cycles = [m for _, field, m in found if m.startswith("steps form a cycle: ")]
    assert len(cycles) == 1
    path = cycles[0].removeprefix("steps form a cycle: ").split(" → ")
    assert path[0] == path[-1]
    for here, there in itertools.pairwise(path):
        assert int(there[1:]) in needs[int(here[1:])]  # each step on it needs the next


def test_an_expression_in_sql_text_is_refused_before_the_run() -> None:
    """SQL text is static: values go as bound parameters, never spliced through ${ }."""
    wf = workflow.Workflow.model_validate(
        {
            "kind": "Workflow",
            "metadata": {"name": "sql"},
            "spec": {
                "inputs": {"id": {"type": "string"}},
                "steps": [
                    {
                        "id": "bad",
                        "uses": "postgres.query",
                        "with": {"sql": "SELECT * FROM t WHERE id = '${ inputs.id }'"},
                    },
                    {
                        "id": "nested",
                        "uses": "postgres.transaction",
                        "with": {
                            "statements": [{"sql": "DELETE FROM t WHERE id = ${ inputs.id }"}]
                        },
                    },
                    {
                        "id": "good",
                        "uses": "postgres.query",
                        "with": {
                            "sql": "SELECT * FROM t WHERE id = %s",
                            "params": ["${ inputs.id }"],
                        },
                    },
                ],
            },
        }
    )
    with pytest.raises(errors.ValidationError) as caught:
        plan.compile_workflow(wf)
    found = {(p.where.step, p.where.field) for p in caught.value.problems}
    assert ("bad", "with.sql") in found
    assert ("nested", "with.statements[0].sql") in found
    assert not any(step == "good" for step, _ in found)


def test_static_values_beside_expressions_are_checked_by_the_model_itself() -> None:
    """Field validators apply at validate time too: a number header is converted, not refused."""
    wf = workflow.Workflow.model_validate(
        {
            "kind": "Workflow",
            "metadata": {"name": "h"},
            "spec": {
                "inputs": {"url": {"type": "string"}},
                "steps": [
                    {
                        "id": "call",
                        "uses": "http.request",
                        "with": {"url": "${ inputs.url }", "headers": {"X-Limit": 10}},
                    },
                    {
                        "id": "bad",
                        "uses": "http.request",
                        "with": {"url": "${ inputs.url }", "method": "FETCH"},
                    },
                ],
            },
        }
    )
    with pytest.raises(errors.ValidationError) as caught:
        plan.compile_workflow(wf)
    found = {(p.where.step, p.where.field) for p in caught.value.problems}
    assert found == {("bad", "with.method")}
