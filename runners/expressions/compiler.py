"""Compiling one parsed workflow expression into closures, refusing what the sandbox does not allow.

``Compiler(source, where, max_depth).compile(source.parse())`` walks the syntax tree that
``expr_parse`` produced and returns one closure per node: scope in, value out. This is where
the sandbox is enforced, at validate time, with the user's line and column:

- only the node types in ``_HANDLERS`` compile; the rest (lambda, f-strings, sets, ...) are
  refused with a message from ``_REFUSED``;
- names must be one of ``ROOTS`` or a list comprehension's variable; ``a.b`` and ``a['b']``
  become key lookups (``expr_runtime.lookup``), never attribute reads, and dunder
  attributes are refused;
- calls go only to the names in ``expr_functions.FUNCTIONS`` (or the lazy ``default``,
  ``has``, ``coalesce``), with the right number of arguments.

Along the way the compiler notes the (root, first key) pairs the expression reads
(``references``) and counts its ``operations`` (the nodes evaluated once per evaluation;
those inside a list comprehension are counted for it, as they run once per pass). The
closures call ``expr_operators`` for operators and ``expr_runtime`` for the rest, and pay
for their work from the evaluation's ``expr_runtime.Budget`` before doing it.
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from autoflow.crds import errors
from autoflow.runners.expressions import functions as expr_functions
from autoflow.runners.expressions import operators as expr_operators
from autoflow.runners.expressions import parse as expr_parse
from autoflow.runners.expressions import runtime as expr_runtime
from autoflow.runners.expressions import values as expr_values

Fn = expr_runtime.Fn

ROOTS = ("inputs", "steps", "run", "item", "index", "env", "error")


_REFUSED = {
    ast.Lambda: "lambda is not allowed",
    ast.NamedExpr: "assignment with := is not allowed",
    ast.Starred: "unpacking with * is not allowed",
    ast.JoinedStr: "f-strings are not allowed; put ${ ... } in the field's text instead",
    ast.FormattedValue: "f-strings are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed; use a list: [x for x in ...]",
    ast.SetComp: "sets are not supported; use a list",
    ast.Set: "sets are not supported; use a list",
    ast.DictComp: "dict comprehensions are not supported",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Slice: "a slice (a:b) is only allowed inside [ ]",
}
_BINARY: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", expr_operators.add),
    ast.Sub: ("-", expr_operators.subtract),
    ast.Mult: ("*", expr_operators.multiply),
    ast.Div: ("/", expr_operators.divide),
    ast.FloorDiv: ("//", expr_operators.floor_divide),
    ast.Mod: ("%", expr_operators.modulo),
    ast.Pow: ("**", expr_operators.power),
}
_SMALL = 2**31
_SMALL_INT_OPERATIONS: dict[str, Callable[[int, int], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
}
_BITWISE = {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}
_ROOT_HELP = {
    "item": "item is only available in a step with foreach",
    "index": "index is only available in a step with foreach",
    "error": "error is only available while handling a failed step",
}


class Compiler:
    """Turns the parsed tree of one expression into closures, refusing what is not allowed."""

    def __init__(self, source: expr_parse.Source, where: errors.Where, max_depth: int) -> None:
        self.source = source
        self.where = where
        self.references: set[tuple[str, ...]] = set()
        self.locals: list[str] = []  # list comprehension variables in scope
        self.depth = 0
        self.operations = 0  # nodes evaluated once per evaluation (or per pass of a loop)
        self.max_depth = max_depth

    def fail(self, message: str, node: ast.AST, after: ast.AST | None = None) -> NoReturn:
        """Refuse ``node``; the column is that of ``node``, or of the end of ``after``."""
        where = self.source.location(after, at_end=True) if after else self.source.location(node)
        message = f"{message} {where}"
        raise errors.ExpressionSyntaxError(message, self.where, expression=self.source.text)

    def compile(self, node: ast.AST) -> Fn:
        self.depth += 1
        self.operations += 1
        try:
            if self.depth > self.max_depth:
                self.fail("expression is nested too deeply", node)
            handler = _HANDLERS.get(type(node))
            if handler is None:
                self.fail(_REFUSED.get(type(node), f"{type(node).__name__} is not allowed"), node)
            return handler(self, node)
        finally:
            self.depth -= 1

    def constant(self, node: ast.Constant) -> Fn:
        value = node.value
        if type(value) not in (str, int, float, bool) and value is not None:
            self.fail(f"{type(value).__name__} literals are not allowed", node)
        if type(value) is float and not math.isfinite(value):
            self.fail("number literal is too large", node)
        return lambda scope: value

    # Names, attribute access and subscripts

    def access(self, node: ast.Name | ast.Attribute | ast.Subscript) -> Fn:
        chain = self._flatten(node)
        if chain is not None:
            return self._chain(*chain)
        if isinstance(node, ast.Attribute):
            value, key, path = self.compile(node.value), node.attr, self.source.snippet(node.value)
            flag = self._flag(node.value)
            return lambda scope: expr_runtime.lookup(value(scope), key, True, path, flag)
        assert isinstance(node, ast.Subscript)
        value, path = self.compile(node.value), self.source.snippet(node.value)
        if isinstance(node.slice, ast.Slice):
            bounds = [
                None if part is None else self.compile(part)
                for part in (node.slice.lower, node.slice.upper, node.slice.step)
            ]
            return lambda scope: expr_runtime.slice_of(value(scope), bounds, scope, path)
        index, flag = self.compile(node.slice), self._flag(node.value)
        return lambda scope: expr_runtime.lookup(value(scope), index(scope), False, path, flag)

    def _flatten(self, node: ast.AST) -> tuple[ast.Name, list[ast.AST]] | None:
        """A name then constant keys (``steps.fetch.output['x'][0]``) as (name, accessors)."""
        accessors: list[ast.AST] = []
        while not isinstance(node, ast.Name):
            if isinstance(node, ast.Attribute):
                self._check_attribute(node)
            elif not (
                isinstance(node, ast.Subscript)
                and isinstance(node.slice, ast.Constant)
                and type(node.slice.value) in (str, int)
            ):
                return None
            accessors.append(node)
            node = node.value
        accessors.reverse()
        return node, accessors

    def _check_attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("__") and node.attr.endswith("__"):
            message = f"'.{node.attr}' is not allowed; to read such a key write x['{node.attr}']"
            self.fail(message, node, after=node.value)

    def _chain(self, name: ast.Name, accessors: list[ast.AST]) -> Fn:
        root = self._resolve(name)
        steps: list[tuple[Any, bool, str, str | None]] = []
        for accessor in accessors:
            assert isinstance(accessor, ast.Attribute | ast.Subscript)
            is_attribute = isinstance(accessor, ast.Attribute)
            key = accessor.attr if is_attribute else accessor.slice.value  # type: ignore[union-attr]
            path = self.source.snippet(accessor.value)
            steps.append((key, is_attribute, path, self._flag(accessor.value)))
        if root not in self.locals:
            first = steps[0][0] if steps else None
            self.references.add((root, first) if isinstance(first, str) else (root,))
        keys = tuple(step[0] for step in steps)
        missing = _ROOT_HELP.get(root, f"{root} is not available here")

        def slow(scope: Any) -> Any:
            try:
                value = scope[root]
            except KeyError:
                raise expr_values.EvalFailure(missing, missing=True) from None
            for key, is_attribute, path, flag in steps:
                value = expr_runtime.lookup(value, key, is_attribute, path, flag)
            return value

        def fast(scope: Any) -> Any:
            try:
                value = scope[root]
                for key in keys:
                    kind = type(value)
                    if kind is dict or (kind is list and type(key) is int):
                        value = value[key]
                    else:
                        return slow(scope)
                return value
            except (KeyError, IndexError):
                return slow(scope)

        return fast

    def _resolve(self, node: ast.Name) -> str:
        name = node.id
        if name in self.locals or name in ROOTS:
            return name
        if name in expr_functions.FUNCTIONS or name in expr_functions.LAZY_FUNCTIONS:
            self.fail(f"{name} is a function; call it like {_signature(name)}", node)
        hint = ""
        close = difflib.get_close_matches(name, [*ROOTS, *self.locals], n=1)
        if close:
            hint = f"; did you mean {close[0]}?"
        if self.source.char_before(node) == "-":
            hint = "; to read a key containing '-', write it as a string: steps['my-step']"
        roots = ", ".join(ROOTS)
        self.fail(f"unknown name {name!r} (expressions start from {roots}){hint}", node)

    def _flag(self, node: ast.AST) -> str | None:
        """'steps' for the ``steps`` root, 'step' for ``steps.<id>``: both have own messages."""
        if isinstance(node, ast.Name):
            return "steps" if node.id == "steps" and "steps" not in self.locals else None
        if isinstance(node, ast.Attribute | ast.Subscript) and self._flag(node.value) == "steps":
            return "step"
        return None

    # Operators

    def unary(self, node: ast.UnaryOp) -> Fn:
        if isinstance(node.op, ast.Invert):
            self.fail("bitwise operator ~ is not allowed", node)
        operand_node = node.operand
        constant = operand_node.value if isinstance(operand_node, ast.Constant) else None
        if expr_values.is_number(constant) and isinstance(node.op, ast.USub | ast.UAdd):
            sign = (
                expr_operators.negate if isinstance(node.op, ast.USub) else expr_operators.positive
            )
            folded = sign(constant)
            return lambda scope: folded  # a signed number literal
        operand = self.compile(operand_node)
        if isinstance(node.op, ast.Not):
            return lambda scope: not expr_values.truthy(operand(scope))
        if isinstance(node.op, ast.USub):
            return lambda scope: expr_operators.negate(operand(scope))
        return lambda scope: expr_operators.positive(operand(scope))

    def binary(self, node: ast.BinOp) -> Fn:
        op_type = type(node.op)
        if op_type in _BITWISE:
            symbol = _BITWISE[op_type]
            hint = " (for logic use && or and, || or or)" if symbol in "&|" else ""
            self.fail(f"bitwise operator {symbol} is not allowed{hint}", node)
        if op_type not in _BINARY:
            self.fail("operator @ is not allowed", node)
        symbol, operation = _BINARY[op_type]
        left, right = self.compile(node.left), self.compile(node.right)
        plain = _SMALL_INT_OPERATIONS.get(symbol)
        divides = symbol in ("/", "//", "%")
        growth = expr_operators.GROWTH.get(symbol)

        def run(scope: expr_runtime.Frame) -> Any:
            a, b = left(scope), right(scope)
            if (
                plain is not None
                and type(a) is int
                and type(b) is int
                and -_SMALL < a < _SMALL
                and -_SMALL < b < _SMALL
                and (b or not divides)
            ):
                return plain(a, b)  # cannot overflow any limit: skip the checks
            if growth is not None:
                scope.budget.spend(growth(a, b))
            try:
                return operation(a, b)
            except OverflowError:  # a float meets a whole number too large to be one
                message = f"number too large: {expr_values.show(a)} {symbol} {expr_values.show(b)}"
                raise expr_values.EvalFailure(message) from None

        return run

    def boolean(self, node: ast.BoolOp) -> Fn:
        operands = [self.compile(value) for value in node.values]
        is_and = isinstance(node.op, ast.And)

        def run(scope: Any) -> Any:
            value = None
            for operand in operands:
                value = operand(scope)
                if expr_values.truthy(value) is not is_and:
                    return value
            return value

        return run

    def compare(self, node: ast.Compare) -> Fn:
        left = self.compile(node.left)
        pairs: list[tuple[Callable[[Any, Any], bool], Cost, Fn]] = []
        operands = [node.left, *node.comparators]
        for i, (op, right) in enumerate(zip(node.ops, node.comparators, strict=True)):
            if isinstance(op, ast.Is | ast.IsNot):
                sides = (operands[i], right)
                if not any(_is_singleton(side) for side in sides):
                    self.fail("'is' only compares with null, true or false; use ==", node)
            pairs.append((*_COMPARISONS[type(op)], self.compile(right)))
        if len(pairs) == 1:
            test, cost, right_fn = pairs[0]

            def one(scope: expr_runtime.Frame) -> bool:
                a, b = left(scope), right_fn(scope)
                if type(a) in _WALKED or type(b) in _WALKED:
                    budget = scope.budget
                    budget.spend(cost(a, b, budget.left + 1))
                return test(a, b)

            return one

        def run(scope: expr_runtime.Frame) -> bool:
            a = left(scope)
            for test, cost, right_fn in pairs:
                b = right_fn(scope)
                if type(a) in _WALKED or type(b) in _WALKED:
                    budget = scope.budget
                    budget.spend(cost(a, b, budget.left + 1))
                if not test(a, b):
                    return False
                a = b
            return True

        return run

    def if_else(self, node: ast.IfExp) -> Fn:
        test, body, orelse = (
            self.compile(node.test),
            self.compile(node.body),
            self.compile(node.orelse),
        )
        return lambda scope: body(scope) if expr_values.truthy(test(scope)) else orelse(scope)

    # Literals and list comprehensions

    def sequence(self, node: ast.List | ast.Tuple) -> Fn:
        items = [self.compile(item) for item in node.elts]  # each counted as an operation
        return lambda scope: [item(scope) for item in items]

    def mapping(self, node: ast.Dict) -> Fn:
        if any(key is None for key in node.keys):
            self.fail("unpacking with ** is not allowed", node)
        entries = [
            (self.compile(key), self.compile(value))
            for key, value in zip(node.keys, node.values, strict=True)
            if key is not None
        ]
        return lambda scope: {expr_runtime.dict_key(k(scope)): v(scope) for k, v in entries}

    def comprehension(self, node: ast.ListComp) -> Fn:
        if len(node.generators) != 1:
            self.fail("a list comprehension may have only one 'for'", node)
        generator = node.generators[0]
        if generator.is_async:
            self.fail("async comprehensions are not allowed", node)
        if not isinstance(generator.target, ast.Name):
            self.fail("the loop variable must be a single name: [x for x in ...]", generator.target)
        name = generator.target.id
        iterable, path = self.compile(generator.iter), self.source.snippet(generator.iter)
        self.locals.append(name)
        outer, self.operations = self.operations, 0  # the body runs once per pass: its own count
        try:
            conditions = [self.compile(condition) for condition in generator.ifs]
            element = self.compile(node.elt)
            operations = self.operations
        finally:
            self.locals.pop()
            self.operations = outer
        return expr_runtime.comprehension(name, iterable, path, conditions, element, operations)

    def call(self, node: ast.Call) -> Fn:
        func = node.func
        if isinstance(func, ast.Attribute):
            hint = ""
            if func.attr in expr_functions.FUNCTIONS:
                hint = f"; write {func.attr}(x, ...) instead of x.{func.attr}(...)"
            self.fail(f"calling methods is not allowed (.{func.attr}(...)){hint}", node, func.value)
        if not isinstance(func, ast.Name):
            self.fail("only functions can be called, by name: len(x)", node)
        name = func.id
        if name not in expr_functions.FUNCTIONS and name not in expr_functions.LAZY_FUNCTIONS:
            if name in ROOTS or name in self.locals:
                self.fail(f"{name} is data, not a function", node)
            close = difflib.get_close_matches(name, _FUNCTION_NAMES, n=1)
            hint = f"; did you mean {close[0]}()?" if close else ""
            self.fail(f"unknown function {name}(){hint}", node)
        if node.keywords:
            self.fail(f"{name}() takes no named arguments: {_signature(name)}", node)
        low, high = _arity(name)
        count = len(node.args)
        if count < low or (high is not None and count > high):
            self.fail(f"wrong number of arguments ({count}) for {_signature(name)}", node)
        args = [self.compile(arg) for arg in node.args]
        if name in expr_functions.LAZY_FUNCTIONS:
            return expr_runtime.lazy(name, args)
        function = expr_functions.FUNCTIONS[name]
        return expr_runtime.call(name, function.impl, function.cost, args)


_HANDLERS: dict[type[ast.AST], Callable[[Compiler, Any], Fn]] = {
    ast.Constant: Compiler.constant,
    ast.Name: Compiler.access,
    ast.Attribute: Compiler.access,
    ast.Subscript: Compiler.access,
    ast.UnaryOp: Compiler.unary,
    ast.BinOp: Compiler.binary,
    ast.BoolOp: Compiler.boolean,
    ast.Compare: Compiler.compare,
    ast.IfExp: Compiler.if_else,
    ast.List: Compiler.sequence,
    ast.Tuple: Compiler.sequence,
    ast.Dict: Compiler.mapping,
    ast.ListComp: Compiler.comprehension,
    ast.Call: Compiler.call,
}
_FUNCTION_NAMES = [*expr_functions.FUNCTIONS, *expr_functions.LAZY_FUNCTIONS]


def _signature(name: str) -> str:
    if name in expr_functions.LAZY_FUNCTIONS:
        return expr_functions.LAZY_FUNCTIONS[name][2]
    return expr_functions.FUNCTIONS[name].signature


def _arity(name: str) -> tuple[int, int | None]:
    if name in expr_functions.LAZY_FUNCTIONS:
        low, high, _ = expr_functions.LAZY_FUNCTIONS[name]
        return low, high
    spec = expr_functions.FUNCTIONS[name]
    return spec.min_args, spec.max_args


def _is_singleton(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in (None, True, False)


# Comparisons that may walk their operands: when one is text or a container, the comparison
# pays for the walk first (once per pass in a loop, where a long text compared many times
# adds up). Numbers compare without it.
_WALKED = frozenset({str, list, tuple, dict})
Cost = Callable[[Any, Any, int], int]


def _both_cost(a: Any, b: Any, room: int) -> int:
    """Comparing two texts or two containers walks at most the smaller one."""
    if (type(a) is str) is not (type(b) is str):
        return 0  # text with anything else: decided by the types alone
    return min(expr_values.walk_cost(a, room), expr_values.walk_cost(b, room))


def _in_cost(a: Any, b: Any, room: int) -> int:
    """``a in b`` compares ``a`` with each item of ``b`` (or searches the text ``b``)."""
    return expr_values.walk_cost(b, room) if not isinstance(b, Mapping) else 0


def _ordering(symbol: str, test: Callable[[Any, Any], Any]) -> Callable[[Any, Any], bool]:
    numbers = expr_values.NUMBER_TYPES

    def compare(a: Any, b: Any) -> bool:
        kind_a, kind_b = type(a), type(b)
        if (kind_a in numbers and kind_b in numbers) or (kind_a is str and kind_b is str):
            return bool(test(a, b))
        return expr_operators.order(a, b, symbol)

    return compare


_COMPARISONS: dict[type[ast.cmpop], tuple[Callable[[Any, Any], bool], Cost]] = {
    ast.Eq: (lambda a, b: bool(a == b), _both_cost),
    ast.NotEq: (lambda a, b: bool(a != b), _both_cost),
    ast.Lt: (_ordering("<", lambda a, b: a < b), _both_cost),
    ast.LtE: (_ordering("<=", lambda a, b: a <= b), _both_cost),
    ast.Gt: (_ordering(">", lambda a, b: a > b), _both_cost),
    ast.GtE: (_ordering(">=", lambda a, b: a >= b), _both_cost),
    ast.In: (lambda a, b: expr_operators.contains(b, a), _in_cost),
    ast.NotIn: (lambda a, b: not expr_operators.contains(b, a), _in_cost),
    ast.Is: (lambda a, b: a is b, lambda a, b, room: 0),
    ast.IsNot: (lambda a, b: a is not b, lambda a, b, room: 0),
}
