"""The expression language as a workflow author uses it: ``${ ... }`` in manifest fields.

Grouped by concern: delimiters and templates, types of results, operators, functions,
laziness, the sandbox, resource limits, error messages, references, and the examples of
docs/expressions.md (every "`expression` → `result`" line there is evaluated here).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from autoflow.crds import errors
from autoflow.runners import expressions
from autoflow.runners.expressions import functions as expr_functions
from autoflow.runners.expressions import values as expr_values

WHERE = errors.Where(resource="Workflow/orders", step="notify", field="with")
SCOPE: dict[str, Any] = {
    "inputs": {"name": "Ada", "count": 3, "tags": ["a", "b"], "url": "https://x", "from": "me"},
    "steps": {
        "fetch": {
            "status": "Succeeded",
            "output": {"body": {"total": 120, "items": [{"sku": "A", "qty": 2}, {"sku": "B"}]}},
            "error": None,
        },
        "skipped": {"status": "Skipped", "output": None, "error": None},
    },
    "run": {"id": "r-1", "name": "orders-x1"},
    "env": {"REGION": "eu"},
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


def render(value: Any, scope: dict[str, Any] | None = None) -> Any:
    return expressions.compile_template(value, WHERE).render(SCOPE if scope is None else scope)


def evaluate(text: str, scope: dict[str, Any] | None = None) -> Any:
    return expressions.compile_expression(text, WHERE).evaluate(SCOPE if scope is None else scope)


# --- delimiters and templates ----------------------------------------------------------------


@given(st.text())
def test_text_without_delimiters_is_returned_as_the_same_object(text: str) -> None:
    assume("${" not in text)
    template = expressions.compile_template(text, WHERE)
    assert template.is_static
    assert template.render(SCOPE) is text


@given(st.text())
def test_escaped_delimiters_render_as_literal_text(text: str) -> None:
    assert render(text.replace("${", "$${")) == text


def test_escape_examples() -> None:
    assert render("costs $${ price }") == "costs ${ price }"
    assert render("$${${ inputs.count }}") == "${3}"
    template = expressions.compile_template("only $${ escapes }", WHERE)
    assert not template.is_static  # rendering has work to do: unescape


@given(json_values)
def test_whole_value_keeps_its_type(value: Any) -> None:
    assert render("${ inputs.v }", {"inputs": {"v": value}}) is value
    assert render("  ${inputs.v}\n", {"inputs": {"v": value}}) is value


@given(json_values, st.text(alphabet="ab :-", min_size=1))
def test_interpolation_converts_values_to_text(value: Any, prefix: str) -> None:
    assume(prefix.strip())  # only white space around it makes a whole value
    text = render(prefix + "${ inputs.v }", {"inputs": {"v": value}})
    assert text == prefix + expressions.stringify(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (3.0, "3"),
        (2.5, "2.5"),
        ({"a": [1, None]}, '{"a":[1,null]}'),
        (["é"], '["é"]'),
    ],
)
def test_stringify(value: Any, text: str) -> None:
    assert expressions.stringify(value) == text


def test_closing_brace_is_found_past_strings_and_dicts() -> None:
    assert render("${ '}' }") == "}"
    assert render("${ {'a': '}'}['a'] }!") == "}!"
    assert render('${ "a\\"}" + \'{\' }') == 'a"}{'
    assert render("${ '''}''' }") == "}"
    assert render("[${ {'k': [1, {'n': 2}]}.k[1].n }]") == "[2]"


def test_templates_render_nested_values_into_new_containers() -> None:
    manifest = {"url": "${ inputs.url }", "static": {"a": [1]}, "list": ["x", "${ inputs.count }"]}
    template = expressions.compile_template(manifest, WHERE)
    result = template.render(SCOPE)
    assert result == {"url": "https://x", "static": {"a": [1]}, "list": ["x", 3]}
    assert result is not manifest
    assert result["static"] is manifest["static"]  # static parts are shared, not copied
    assert list(result) == list(manifest)


def test_static_containers_are_returned_unchanged() -> None:
    manifest = {"a": [1, 2, {"b": "text $ { not an expression"}], "c": None}
    template = expressions.compile_template(manifest, WHERE)
    assert template.is_static
    assert template.references == frozenset()
    assert template.render(SCOPE) is manifest


def test_unclosed_delimiter_is_a_syntax_error() -> None:
    with pytest.raises(errors.ExpressionSyntaxError, match="never closed"):
        expressions.compile_template("hello ${ inputs.name", WHERE)


def test_empty_expression_is_a_syntax_error() -> None:
    with pytest.raises(errors.ExpressionSyntaxError, match="empty"):
        expressions.compile_template("${   }", WHERE)


def test_conditions_accept_bare_wrapped_and_boolean_forms() -> None:
    for text in ("inputs.count > 2", "${ inputs.count > 2 }", " ${inputs.count > 2}\n"):
        assert expressions.compile_condition(text, WHERE).evaluate(SCOPE) is True
    assert expressions.compile_condition(False, WHERE).evaluate(SCOPE) is False
    assert expressions.compile_condition("inputs.name != '${'", WHERE).evaluate(SCOPE) is True
    with pytest.raises(errors.ExpressionSyntaxError, match="one expression"):
        expressions.compile_condition("${ inputs.count } > 1 && ${ true }", WHERE)
    with pytest.raises(errors.ExpressionSyntaxError, match="one expression"):
        expressions.compile_condition("count is ${ inputs.count }", WHERE)
    with pytest.raises(errors.ExpressionSyntaxError, match="empty"):
        expressions.compile_condition("  ", WHERE)


def test_multi_line_expressions() -> None:
    assert render("${ inputs.count > 1 &&\n   inputs.name == 'Ada' }") is True


# --- syntax ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true && false", False),
        ("true || false", True),
        ("!false", True),
        ("!!inputs.count", True),
        ("inputs.count != 3", False),
        ("null", None),
        ("[true, false, null]", [True, False, None]),
        ("True and not None", True),
        ("inputs.count > 1 && !(inputs.name == 'Bob')", True),
        ("'&& || ! true null'", "&& || ! true null"),  # strings are left alone
        ("inputs.from", "me"),  # a keyword after a dot is a key
        ("{'true': 1}.true", 1),
        ("inputs.name if inputs.count > 5 else 'few'", "few"),
        ("inputs.count is not null", True),
        ("'a' in inputs.tags and 'z' not in inputs.tags", True),
        ("'url' in inputs", True),
        ("'ttp' in inputs.url", True),
        ("1 < inputs.count <= 3", True),
        ("inputs.tags[-1] + inputs.url[0:5]", "bhttps"),
        ("inputs.tags[::-1]", ["b", "a"]),
        ("(1, 2)", [1, 2]),
        ("-inputs.count", -3),
        ("[t.sku for t in steps.fetch.output.body.items]", ["A", "B"]),
        ("[t.qty for t in steps.fetch.output.body.items if has(t.qty)]", [2]),
        ("[k for k in {'a': 1, 'b': 2}]", ["a", "b"]),
    ],
)
def test_syntax(text: str, expected: Any) -> None:
    assert evaluate(text) == expected


def test_comprehension_variable_shadows_a_root_only_inside() -> None:
    assert evaluate("[item * 2 for item in [1, 2]]", {"item": "outer"}) == [2, 4]
    assert evaluate("[[item, index] for item in [1]]", {"index": 7}) == [[1, 7]]


ints = st.integers(min_value=-(10**12), max_value=10**12)
# Python's own operators; the `operator` module is avoided because the repository's operator/
# directory shadows it for tools that put the repository root on the path.
ARITHMETIC: dict[str, Callable[[int, int], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
    "/": lambda a, b: a / b,
}
COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@given(ints, ints, st.sampled_from(sorted(ARITHMETIC)))
def test_arithmetic_agrees_with_python_on_ints(a: int, b: int, symbol: str) -> None:
    scope = {"inputs": {"a": a, "b": b}}
    expression = expressions.compile_expression(f"inputs.a {symbol} inputs.b", WHERE)
    if b == 0 and symbol in ("//", "%", "/"):
        with pytest.raises(errors.ExpressionEvalError, match="division by zero"):
            expression.evaluate(scope)
    else:
        expected = ARITHMETIC[symbol](a, b)
        assert expression.evaluate(scope) == expected
        assert evaluate(f"{a} {symbol} {b}", {}) == expected  # literals, negative ones too


@given(st.integers(-1000, 1000), st.integers(0, 20))
def test_power_agrees_with_python(a: int, b: int) -> None:
    assert evaluate("inputs.a ** inputs.b", {"inputs": {"a": a, "b": b}}) == a**b


@given(ints, ints, st.sampled_from(sorted(COMPARISONS)))
def test_comparison_agrees_with_python_on_ints(a: int, b: int, symbol: str) -> None:
    result = evaluate(f"inputs.a {symbol} inputs.b", {"inputs": {"a": a, "b": b}})
    assert result is COMPARISONS[symbol](a, b)


@given(json_values)
def test_truthy_matches_python_truth_for_data(value: Any) -> None:
    assert expressions.truthy(value) is bool(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[x for x in [1] for y in [2]]", "only one 'for'"),
        ("[a for (a, b) in [[1, 2]]]", "single name"),
        ("inputs.count & 1", "bitwise"),
        ("~inputs.count", "bitwise"),
        ("inputs.count @ 1", "@"),
        ("inputs.count is 3", "'is' only compares"),
        ("{1, 2}", "sets"),
        ("{k: 1 for k in [1]}", "dict comprehensions"),
        ("(x for x in [1])", "generator"),
        ("b'bytes'", "bytes"),
        ("1j", "complex"),
        ("...", "ellipsis"),
        ("inputs.count # comment", "comments"),
        ("inputs.count) + (1", "unmatched ')'"),
        ("inputs.count +", "invalid expression"),
        ("1e999", "too large"),
        ("len(x=1)", "named arguments"),
        ("len()", "wrong number of arguments"),
        ("lenn(inputs.tags)", "did you mean len()"),
        ("input.name", "did you mean inputs"),
        ("steps.my-step.output", "steps['my-step']"),
        ("len", "len is a function"),
        ("inputs(1)", "inputs is data"),
        ("[x for x in [1]][0](1)", "only functions can be called"),
    ],
)
def test_syntax_errors_say_what_is_not_allowed(text: str, message: str) -> None:
    with pytest.raises(errors.ExpressionSyntaxError) as caught:
        expressions.compile_expression(text, WHERE)
    assert message in caught.value.message
    assert caught.value.where == WHERE
    assert caught.value.expression == text


def test_syntax_errors_point_at_the_column() -> None:
    with pytest.raises(errors.ExpressionSyntaxError, match="at column 9"):
        expressions.compile_expression("'é' + 1 ?", WHERE)
    with pytest.raises(errors.ExpressionSyntaxError, match="at column 13"):
        expressions.compile_expression("true && null.__class__", WHERE)
    with pytest.raises(errors.ExpressionSyntaxError, match="at line 2, column 3"):
        expressions.compile_expression("inputs.count &&\n  nope", WHERE)


# --- functions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("len('abc') + len([1]) + len({'a': 1})", 5),
        ("lower('AbC') + upper('x') + trim('  y ')", "abcXy"),
        ("split('a,b', ',')", ["a", "b"]),
        ("split(' a  b ')", ["a", "b"]),
        ("join([1, 'b', null, true], '-')", "1-b--true"),
        ("contains('abc', 'b') and contains([1], 1) and contains({'k': 1}, 'k')", True),
        ("startsWith('abc', 'ab') and endsWith('abc', 'bc')", True),
        ("replace('a-b-c', '-', '+')", "a+b+c"),
        ("keys({'a': 1, 'b': 2})", ["a", "b"]),
        ("values({'a': 1, 'b': 2})", [1, 2]),
        ("int('42') + int(' 7 ') + int(2.9) + int('3.5') + int(true)", 55),
        ("float('2.5') + float(1)", 3.5),
        ("str(1) + str(2.0) + str(null) + str(false) + str([1])", "12false[1]"),
        (
            "[bool('yes'), bool('False'), bool(''), bool(0), bool([1])]",
            [True, False, False, False, True],
        ),
        ("[round(2.5), round(-2.5), round(2.675, 2), round(1234, -2)]", [3, -3, 2.68, 1200]),
        ("[floor(2.7), ceil(2.1), abs(-3)]", [2, 3, 3]),
        ("[min([3, 1, 2]), max(3, 9), min('b', 'a')]", [1, 9, "a"]),
        ("sum([1, 2.5])", 3.5),
        ("sorted([3, 1, 2])", [1, 2, 3]),
        ("sorted([{'n': 2}, {'n': 1}], 'n')", [{"n": 1}, {"n": 2}]),
        ("unique([1, 2, 1, [1], [1], true])", [1, 2, [1], True]),
        ("[first([1, 2]), last([1, 2]), first([]), last('xy')]", [1, 2, None, "y"]),
        ("range(3) + range(1, 7, 2)", [0, 1, 2, 1, 3, 5]),
        ("json({'a': [1, 'x', null]})", '{"a":[1,"x",null]}'),
        ("json('text')", '"text"'),
        ("fromJson('{\"a\": [1, 2]}').a[1]", 2),
        ("default(inputs.nope, 'x') + default(null, 'y') + default('z', 'w')", "xyz"),
        (
            "[has(inputs.name), has(inputs.nope), has(null), has(inputs.nope.deeper)]",
            [True, False, False, False],
        ),
        ("coalesce(inputs.nope, null, inputs.name, 'later')", "Ada"),
        ("coalesce(null)", None),
    ],
)
def test_functions(text: str, expected: Any) -> None:
    result = evaluate(text)
    assert result == expected
    assert type(result) is type(expected)


def test_now_is_utc_iso_8601() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", evaluate("now()"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("len(3)", "len() needs text, a list or a dict, got int 3"),
        ("lower(null)", "lower() needs text, got null"),
        ("split('a', '')", "non-empty separator"),
        ("int('abc')", "not a number: 'abc'"),
        ("float('nan')", "not a finite number"),
        ("bool('maybe')", "does not know whether 'maybe'"),
        ("min([])", "empty list"),
        ("max([1, 'a'])", "all numbers or all text"),
        ("sum(['a'])", "list of numbers"),
        ("sorted([{'n': 1}, {}], 'n')", "all have the key 'n'"),
        ("range(0, 5, 0)", "step must not be zero"),
        ("range(1.5)", "whole numbers"),
        ("fromJson('{')", "invalid JSON at line 1 column 2"),
        ("fromJson('NaN')", "not a JSON number"),
        ("round(1, 100)", "digits must be between"),
        ("keys([1])", "keys() needs a dict, got list [1]"),
    ],
)
def test_function_errors(text: str, message: str) -> None:
    with pytest.raises(errors.ExpressionEvalError) as caught:
        evaluate(text)
    assert message in caught.value.message


def test_default_and_has_do_not_hide_real_errors() -> None:
    with pytest.raises(errors.ExpressionEvalError, match="division by zero"):
        evaluate("default(1 / 0, 5)")
    with pytest.raises(errors.ExpressionEvalError, match="cannot add"):
        evaluate("has(inputs.name + 1)")
    with pytest.raises(errors.ExpressionEvalError, match="not a dict"):
        evaluate("default(inputs.tags.first, 5)")


def test_default_evaluates_its_fallback_only_when_needed() -> None:
    assert evaluate("default(inputs.count, 1 / 0)") == 3
    assert evaluate("coalesce(inputs.count, 1 / 0)") == 3
    assert evaluate("false && 1 / 0") is False
    assert evaluate("true || 1 / 0") is True
    assert evaluate("inputs.name if true else 1 / 0") == "Ada"


def test_missing_data_that_default_absorbs() -> None:
    for path in (
        "inputs.nope",
        "inputs.tags[9]",
        "steps.skipped.output.body",
        "steps.notyet.output",
        "item",
        "error.message",
    ):
        assert evaluate(f"default({path}, 'fallback')") == "fallback"
        assert evaluate(f"has({path})") is False


# --- the sandbox ---------------------------------------------------------------------------------


class Secretive:
    secret = "s3cr3t"

    def __getitem__(self, key: str) -> str:
        return "from __getitem__"


ESCAPES = [
    "__import__('os')",
    "__builtins__",
    "open('/etc/passwd')",
    "eval('1')",
    "exec('1')",
    "compile('1', 'x', 'eval')",
    "getattr(inputs, 'name')",
    "globals()",
    "vars()",
    "type(1)",
    "inputs.__class__",
    "inputs.__class__.__mro__",
    "().__class__.__bases__",
    "().__class__.__bases__[0].__subclasses__()",
    "''.__class__",
    "[].append",
    "[].append(1)",
    "'a'.upper()",
    "'{}'.format(inputs)",
    "'%s' % inputs",
    "inputs.get('name')",
    "inputs.keys()",
    "str.join(',', ['a'])",
    "len.__self__",
    "str",
    "lambda: 1",
    "(lambda: 1)()",
    "(x := 1)",
    "f'{inputs}'",
    "[*inputs.tags]",
    "{**inputs}",
    "sorted(inputs.tags, key=len)",
    "[x for x in inputs.tags].pop()",
    "inputs.tags.count",
    "inputs['__class__']",
    "inputs.secretive.secret",
    "inputs.secretive['secret']",
    "2 ** 10000",
    "10 ** (10 ** 10)",
    "9 ** 64 ** 64",
    "(2 ** 64) ** 64",
    "'x' * 10 ** 9",
    "[0] * 10 ** 7",
    "'x' * 999999 + 'xx'",
    "range(10 ** 9)",
    "[c for c in 'x' * 200000]",
    "[x for x in inputs.zeros] + [x for x in inputs.zeros]",
    "[[y for y in range(10000)] for x in range(10000)]",
    "[[0] * 1000000 for i in range(100)]",
    "json(['x' * 1000000] * 1000000)",
    "str(['x' * 1000000] * 1000000)",
    "join(['x' * 1000000] * 1000000, '')",
    "replace('abc', '', 'x' * 1000000)",
    "unique([['x' * 1000000] * 100] * 100)",
    "fromJson('[' * 100000 + ']' * 100000)",
    "round(1, -(10 ** 9))",
    "int('9' * 5000) * int('9' * 5000)",
    "1e308 * 10",
    "(-8) ** 0.5",
    "0 ** -1",
    "inputs.count / 0",
    "inputs.count % 0",
    # Shared references: cheap to build, expensive to walk.
    "[[[0] * 1000] * 1000] * 2",
    "[[0] * 1000] * 1000 + [[0] * 1000] * 1000",
    "('x' * 999999 + 'y') in [inputs.text for i in inputs.zeros]",
    "[[y for i in range(20)] for y in [[0] * 1000000]]",
    "[[0] * 1000 for x in inputs.zeros]",
]
HOSTILE_SCOPE = {
    **SCOPE,
    "inputs": {
        **SCOPE["inputs"],
        "secretive": Secretive(),
        "text": "x" * 1_000_000,
        "zeros": [0] * 100_000,
    },
}


@pytest.mark.parametrize("text", ESCAPES)
def test_sandbox_escapes_are_refused(text: str) -> None:
    with pytest.raises(errors.ExpressionError) as caught:
        expressions.compile_expression(text, WHERE).evaluate(HOSTILE_SCOPE)
    assert len(caught.value.message) < 400


def test_slow_evaluations_are_stopped_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expressions, "MAX_WORK", 10**15)  # only the clock can stop it now
    monkeypatch.setattr(expressions, "MAX_SECONDS", 0.05)
    scope = {"inputs": {"big": list(range(1_000_000)), "zeros": [0] * 100_000}}
    with pytest.raises(errors.ExpressionEvalError, match=r"took over 0\.05 seconds"):
        evaluate("[-1 in inputs.big for x in inputs.zeros]", scope)


def test_all_list_comprehensions_of_one_evaluation_share_a_budget() -> None:
    scope = {"inputs": {"items": list(range(100_000))}}
    assert len(evaluate("[x for x in inputs.items]", scope)) == 100_000
    with pytest.raises(errors.ExpressionEvalError, match="budget used up"):
        evaluate("[x for x in inputs.items] + [x for x in inputs.items]", scope)
    twice = expressions.compile_expression("[x for x in inputs.items]", WHERE)
    assert twice.evaluate(scope) == twice.evaluate(scope)  # each evaluation starts afresh


def test_sizes_count_shared_and_nested_items() -> None:
    size_of = expr_values.size_of
    assert size_of("text") == size_of(5) == size_of([]) == 1
    assert size_of([[0] * 1000] * 1000, 10**7) == 1_000_000
    assert size_of({"a": [1, 2], "b": {"c": None}}) == 3
    assert size_of([[0] * 1000] * 1000, 999) > 999
    looped: list[Any] = [1]
    looped.append(looped)
    assert size_of(looped) > 1_000_000


def test_interpolating_a_huge_value_is_refused() -> None:
    scope = {"inputs": {"big": [["x" * 1_000_000] * 100] * 100}}
    with pytest.raises(errors.ExpressionEvalError, match="budget used up"):
        render("big: ${ inputs.big }", scope)


def test_comprehension_limits_are_generous_enough_for_real_work() -> None:
    assert len(evaluate("[i * 2 for i in range(10000)]")) == 10_000
    assert len(evaluate("[[j for j in range(9)] for i in range(10000)]")) == 10_000
    assert len(evaluate("'x' * 1000000")) == 1_000_000
    order = {f"field{i}": "x" * 100 for i in range(50)}
    scope = {"inputs": {"orders": [{**order, "total": i} for i in range(10_000)]}}
    assert len(evaluate("[o for o in inputs.orders if o.total >= 5000]", scope)) == 5_000


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(errors.ExpressionSyntaxError):
        expressions.compile_expression("(" * 300 + "1" + ")" * 300, WHERE)
    with pytest.raises(errors.ExpressionSyntaxError, match="nested too deeply"):
        expressions.compile_expression("[" * 150 + "]" * 150, WHERE)
    with pytest.raises(errors.ExpressionSyntaxError, match="longer than"):
        expressions.compile_expression("1" + " + 1" * 5000, WHERE)


# --- error messages ------------------------------------------------------------------------------


def eval_error(value: Any, scope: dict[str, Any] | None = None) -> errors.ExpressionEvalError:
    with pytest.raises(errors.ExpressionEvalError) as caught:
        render(value, scope)
    return caught.value


def test_missing_key_names_the_path_and_the_keys_that_exist() -> None:
    error = eval_error("${ steps.fetch.output.body.totl }")
    assert error.message == "steps.fetch.output.body has no key 'totl' (has: total, items)"
    assert error.expression == "steps.fetch.output.body.totl"
    assert str(error) == (
        "Workflow/orders, step 'notify', field 'with': steps.fetch.output.body has no key 'totl' "
        "(has: total, items) (in ${ steps.fetch.output.body.totl })"
    )


def test_errors_name_the_nested_field() -> None:
    manifest = {"headers": {"X-Id": "id ${ inputs.nope }"}, "items": [1, 2, "${ 'abc' > 3 }"]}
    template = expressions.compile_template(manifest, WHERE)
    with pytest.raises(errors.ExpressionEvalError) as caught:
        template.render(SCOPE)
    assert caught.value.where.field == "with.headers.X-Id"
    del manifest["headers"]
    with pytest.raises(errors.ExpressionEvalError) as caught:
        expressions.compile_template(manifest, WHERE).render(SCOPE)
    assert caught.value.where.field == "with.items[2]"
    assert caught.value.message == "cannot compare str with int: 'abc' > 3"
    with pytest.raises(errors.ExpressionSyntaxError) as syntax:
        expressions.compile_template({"a": {"b": ["${ 1 + }"]}}, WHERE)
    assert syntax.value.where.field == "with.a.b[0]"
    assert syntax.value.where.step == "notify"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps.notyet.output", "steps.notyet has no output yet (finished: fetch, skipped)"),
        ("steps['my-step'].output", "steps['my-step'] has no output yet"),
        ("steps.fetch.output.body.total.x", "steps.fetch.output.body.total is an int, not a dict"),
        ("steps.fetch.body", "did you mean steps.fetch.output.body?"),
        ("steps.skipped.output.body", "steps.skipped.output is null, so it has no .body"),
        ("inputs.tags.first", "use inputs.tags[0].first, or [x.first for x in inputs.tags]"),
        ("inputs.tags[5]", "inputs.tags has no index 5 (length 2)"),
        ("inputs.tags['a']", "index it with a whole number, not str 'a'"),
        ("inputs.url.host", "fromJson"),
        ("item.sku", "item is only available in a step with foreach"),
        ("error.message", "error is only available while handling a failed step"),
        ("inputs.name + 1", "cannot add str and int: 'Ada' + 1 (use str(x)"),
        ("inputs.count / (inputs.count - 3)", "division by zero: 3 / 0"),
        ("null > 1", "cannot compare null with int: null > 1"),
        ("[x for x in inputs.count]", "cannot loop over inputs.count: it is int 3"),
        ("{[1]: 2}", "a dict key must be text or a number"),
        ("inputs.tags[1:'x']", "slice bounds must be whole numbers"),
        ("3 in null", "cannot look for a value in null"),
        ("-inputs.name", "cannot negate str 'Ada'"),
    ],
)
def test_eval_error_messages(text: str, message: str) -> None:
    error = eval_error("${ " + text + " }")
    assert message in error.message
    assert error.where == WHERE


def test_messages_show_at_most_a_little_of_large_values() -> None:
    scope = {"inputs": {"big": "x" * 100_000, "keys": {f"k{i}": i for i in range(50)}}}
    error = eval_error("${ inputs.big > 1 }", scope)
    assert len(error.message) < 200
    error = eval_error("${ inputs.keys.nope }", scope)
    assert "k9, … 40 more" in error.message
    error = eval_error("${ -inputs.keys }", scope)
    assert len(error.message) < 200


# --- references ----------------------------------------------------------------------------------


def test_references_are_root_and_first_constant_key() -> None:
    template = expressions.compile_template(
        {
            "a": "${ steps.fetch.output.body }",
            "b": ["${ inputs['url'] }", "${ item }", "${ env[inputs.name] }"],
            "c": "${ [x.y for x in run.list] } ${ index }",
            "d": "${ inputs[0] }",
        },
        WHERE,
    )
    assert template.references == {
        ("steps", "fetch"),
        ("inputs", "url"),
        ("item",),
        ("env",),
        ("inputs", "name"),
        ("run", "list"),
        ("index",),
        ("inputs",),
    }
    assert expressions.compile_expression("1 + 2", WHERE).references == frozenset()


# --- the examples in docs/expressions.md ---------------------------------------------------------

DOCS = pathlib.Path(__file__).parent.parent / "docs" / "expressions.md"
EXAMPLE = re.compile(r"`([^`\n]+)` → `([^`\n]+)`")
DOC_SCOPE = {
    "inputs": {"name": "Ada", "count": 3, "tags": ["vip", "eu"], "amount": 12.5},
    "steps": {
        "fetch": {
            "status": "Succeeded",
            "output": {"status": 200, "body": {"total": 120, "items": [{"sku": "A", "qty": 2}]}},
            "error": None,
        }
    },
    "run": {"id": "r-1"},
    "env": {"REGION": "eu"},
}


def doc_examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall(DOCS.read_text(encoding="utf-8"))


def test_docs_have_examples_for_every_function() -> None:
    documented = {name for text, _ in doc_examples() for name in re.findall(r"(\w+)\(", text)}
    every = set(expr_functions.FUNCTIONS) | set(expr_functions.LAZY_FUNCTIONS)
    assert every - {"now"} <= documented


@pytest.mark.parametrize(("text", "expected"), doc_examples())
def test_docs_examples_hold(text: str, expected: str) -> None:
    if "${" in text:  # a field's text and what it renders to
        result = render(text, DOC_SCOPE)
    else:
        result = expressions.compile_expression(text, WHERE).evaluate(DOC_SCOPE)
    if expected.startswith('"'):  # JSON text: the rendered string
        assert result == json.loads(expected)
        return
    wanted = expressions.compile_expression(expected, WHERE).evaluate({})
    assert result == wanted
    assert type(result) is type(wanted)


# --- robustness --------------------------------------------------------------------------------

TOKENS = [
    "inputs", "steps", "fetch", "output", "item", "x", ".", "[", "]", "(", ")", "{", "}", ",",
    ":", "'a'", '"}"', "0", "1", "-1", "2.5", "null", "true", "&&", "||", "!", "+", "-", "*",
    "/", "//", "%", "**", "==", "<", ">=", "in", "not", "and", "or", "if", "else", "for",
    "len", "default", "has", "range", "sorted", "json", "fromJson", "__class__", "lambda",
    "${", "$", "#", "\n", "=", ":=", "@", "&", "|", "is", "...", "'''", "\\",
]  # fmt: skip


@given(st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join))
def test_any_text_compiles_or_is_a_syntax_error_and_evaluates_or_is_an_eval_error(
    text: str,
) -> None:
    try:
        expression = expressions.compile_expression(text, WHERE)
    except errors.ExpressionSyntaxError:
        return
    with contextlib.suppress(errors.ExpressionEvalError):
        expression.evaluate(SCOPE)


@given(st.text(alphabet="${}'\"ab \\", max_size=20))
def test_any_template_compiles_or_is_a_syntax_error(text: str) -> None:
    try:
        template = expressions.compile_template(text, WHERE)
    except errors.ExpressionSyntaxError:
        return
    with contextlib.suppress(errors.ExpressionEvalError):
        template.render(SCOPE)


ATOMS = [
    "inputs", "inputs.name", "inputs.count", "inputs.tags", "steps.fetch.output.body",
    "null", "true", "0", "-1", "2.5", "'a'", "[]", "{}", "[1, 'b']", "{'k': [1]}", "x",
]  # fmt: skip
CALLABLE = sorted(set(expr_functions.FUNCTIONS) | set(expr_functions.LAZY_FUNCTIONS))
OPERATORS = ["+", "-", "*", "/", "//", "%", "**", "==", "<", "in", "and", "||"]


def grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(lambda p: f"({' '.join(p)})"),
        st.tuples(st.sampled_from(CALLABLE), st.lists(inner, max_size=3)).map(
            lambda p: f"{p[0]}({', '.join(p[1])})"
        ),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}[{p[1]}]"),
        st.tuples(inner, inner).map(lambda p: f"[{p[0]} for x in {p[1]}]"),
        inner.map(lambda e: f"!{e}.total"),
    )


@given(st.recursive(st.sampled_from(ATOMS), grow, max_leaves=6))
def test_generated_expressions_fail_only_with_expression_errors(text: str) -> None:
    try:
        expression = expressions.compile_expression(text, WHERE)
    except errors.ExpressionSyntaxError:
        return
    with contextlib.suppress(errors.ExpressionEvalError):
        expression.evaluate(SCOPE)
