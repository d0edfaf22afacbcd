"""The sandboxed expression language of workflow manifests: ``${ steps.fetch.output.total }``.

A manifest value goes through three stages:

1. ``compile_template`` walks a field's value (any JSON-like tree) once, when the workflow is
   loaded. Strings without ``${`` stay as they are. In the others, ``_split_template`` finds
   each ``${ ... }`` with a quote- and bracket-aware scan (an expression may hold ``}`` in a
   string or dict literal) and turns ``$${`` into a literal ``${``.
2. ``compile_expression`` rewrites the token stream (``&&``, ``||``, ``!``, ``true``, ``false``,
   ``null``, keywords after a dot such as ``.from``), parses the result with
   ``ast.parse(mode="eval")`` and compiles the allowed nodes into nested closures. Anything
   outside the whitelist is an ``ExpressionSyntaxError`` here, at validate time, with a column.
3. ``Template.render`` / ``Expression.evaluate`` call the closures with the run's scope
   (``inputs``, ``steps``, ``run``, ``item``, ``index``, ``env``, ``error``). Operators and
   functions come from ``expression_functions``; every failure becomes an
   ``ExpressionEvalError`` naming the field, the failing path and the expression.

The sandbox is structural: no ``eval``, no code objects, no ``getattr``. ``a.b`` and ``a['b']``
are key lookups on mappings, ``a[0]`` an index into a list or text, calls go only to the named
functions of ``expression_functions.FUNCTIONS``, and loops exist only as list comprehensions
with a budget of iterations and of data built.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import difflib
import io
import keyword
import math
import time
import tokenize
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from autoflow.crds import errors
from autoflow.runners import expression_functions as functions

Scope = Mapping[str, Any]
Fn = Callable[[Any], Any]  # a compiled node: scope (or a comprehension frame) in, value out

ROOTS = ("inputs", "steps", "run", "item", "index", "env", "error")
MAX_EXPRESSION_LENGTH = 10_000  # characters of one expression
MAX_DEPTH = 100  # nesting of compiled nodes, so evaluation stays far from the recursion limit
# One evaluation of an expression with list comprehensions shares one budget:
MAX_ITERATIONS = 100_000  # items visited by its list comprehensions
MAX_BUILT = 10_000_000  # characters and items it builds or collects into lists
MAX_SECONDS = 2.0  # a safety net only: the budgets above end any real expression sooner

truthy = functions.truthy


def stringify(value: Any) -> str:
    """The text of a value in interpolation: str as-is, null as "", true/false, compact JSON."""
    try:
        return functions.stringify(value)
    except functions.EvalFailure as exc:
        raise errors.ExpressionEvalError(exc.message) from None


class Expression:
    """One compiled expression; ``references`` lists the (root, first key) pairs it reads."""

    __slots__ = ("_fn", "references", "text", "where")

    def __init__(
        self, text: str, references: frozenset[tuple[str, ...]], where: errors.Where, fn: Fn
    ) -> None:
        self.text = text
        self.references = references
        self.where = where
        self._fn = fn

    def evaluate(self, scope: Scope) -> Any:
        try:
            return self._fn(scope)
        except functions.EvalFailure as exc:
            raise errors.ExpressionEvalError(
                exc.message, self.where, expression=self.text
            ) from None
        except RecursionError:
            message = "data nested too deeply to evaluate"
            raise errors.ExpressionEvalError(message, self.where, expression=self.text) from None

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


class Template:
    """A compiled manifest value: ``render`` returns it with every ``${ ... }`` evaluated.

    ``is_static`` is true when rendering has nothing to do; ``render`` then returns the original
    object itself. (A string whose only ``$`` are ``$${`` escapes is not static: rendering
    turns them into ``${``.) Static parts inside a dynamic dict or list are shared, not copied.
    """

    __slots__ = ("_render", "is_static", "references", "value")

    def __init__(
        self,
        value: Any,
        render: Fn | None,
        references: frozenset[tuple[str, ...]],
    ) -> None:
        self.value = value
        self.is_static = render is None
        self.references = references
        self._render: Fn = render or (lambda scope: value)

    def render(self, scope: Scope) -> Any:
        return self._render(scope)

    def __repr__(self) -> str:
        return f"Template({functions.show(self.value)})"


def compile_expression(text: str, where: errors.Where) -> Expression:
    """Compile bare expression text (no ``${ }``) once; raises ``ExpressionSyntaxError``."""
    if not isinstance(text, str):
        message = f"an expression must be text, got {functions.kind(text)}"
        raise errors.ExpressionSyntaxError(message, where, expression=functions.show(text))
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise errors.ExpressionSyntaxError("empty expression", where, expression=text)
    if len(text) > MAX_EXPRESSION_LENGTH:
        message = f"expression is longer than {MAX_EXPRESSION_LENGTH:,} characters"
        raise errors.ExpressionSyntaxError(message, where, expression=text[:80] + "…")
    source = _Source(text, where)
    compiler = _Compiler(source, where)
    fn = compiler.compile(source.parse())
    if compiler.loops:
        fn = _budgeted(fn)
    return Expression(text, frozenset(compiler.references), where, fn)


def compile_condition(text: str | bool, where: errors.Where) -> Expression:
    """Compile an ``if:`` or ``foreach:`` value: bare ``x > 1``, ``${ x > 1 }`` or true/false."""
    if isinstance(text, bool):
        return Expression("true" if text else "false", frozenset(), where, lambda scope: text)
    if isinstance(text, str) and "${" in text:
        parts = _split_template(text, where)
        if len(parts) == 3 and not parts[0].strip() and not parts[2].strip():
            return compile_expression(parts[1], where)
        message = (
            "a condition is one expression: write `x > 1` or `${ x > 1 }`, with no text around it"
        )
        raise errors.ExpressionSyntaxError(message, where, expression=text.strip())
    return compile_expression(text, where)


def compile_template(value: Any, where: errors.Where) -> Template:
    """Compile a manifest value; nested strings report fields like ``with.headers.X-Id``."""
    render, references = _compile_value(value, where, where.field or "")
    return Template(value, render, references)


# --- templates -------------------------------------------------------------------------------


_NO_REFERENCES: frozenset[tuple[str, ...]] = frozenset()


def _compile_value(
    value: Any, where: errors.Where, field: str
) -> tuple[Fn | None, frozenset[tuple[str, ...]]]:
    """A render function for ``value`` (None when static) and the references inside it."""
    if isinstance(value, str):
        return _compile_string(value, where.replace(field=field or None))
    if isinstance(value, dict):
        entries = [
            (key, item, *_compile_value(item, where, f"{field}.{key}" if field else str(key)))
            for key, item in value.items()
        ]
        if all(render is None for _, _, render, _ in entries):
            return None, _NO_REFERENCES
        parts = [(key, item, render) for key, item, render, _ in entries]

        def render_dict(scope: Any) -> dict[Any, Any]:
            return {key: item if f is None else f(scope) for key, item, f in parts}

        return render_dict, frozenset().union(*(refs for *_, refs in entries))
    if isinstance(value, list):
        items = [_compile_value(item, where, f"{field}[{i}]") for i, item in enumerate(value)]
        if all(render is None for render, _ in items):
            return None, _NO_REFERENCES
        slots = [(item, render) for item, (render, _) in zip(value, items, strict=True)]

        def render_list(scope: Any) -> list[Any]:
            return [item if f is None else f(scope) for item, f in slots]

        return render_list, frozenset().union(*(refs for _, refs in items))
    return None, _NO_REFERENCES


def _compile_string(text: str, where: errors.Where) -> tuple[Fn | None, frozenset[tuple[str, ...]]]:
    if "${" not in text:
        return None, _NO_REFERENCES
    parts = _split_template(text, where)
    if len(parts) == 1:
        constant = parts[0]  # only $${ escapes
        return (lambda scope: constant), _NO_REFERENCES
    if len(parts) == 3 and not parts[0].strip() and not parts[2].strip():
        expression = compile_expression(parts[1], where)  # a whole value keeps its type
        return expression.evaluate, expression.references
    pieces = [
        (part, None) if i % 2 == 0 else ("", compile_expression(part, where))
        for i, part in enumerate(parts)
        if part or i % 2
    ]
    references = frozenset().union(*(e.references for _, e in pieces if e is not None))

    def interpolate(scope: Any) -> str:
        out: list[str] = []
        for literal, expression in pieces:
            if expression is None:
                out.append(literal)
                continue
            value = expression.evaluate(scope)
            if type(value) is str:
                out.append(value)
                continue
            try:
                out.append(functions.stringify(value))
            except functions.EvalFailure as exc:
                text = expression.text
                raise errors.ExpressionEvalError(exc.message, where, expression=text) from None
        return "".join(out)

    return interpolate, references


def _split_template(text: str, where: errors.Where) -> list[str]:
    """Split text into [literal, expression, literal, ..., literal]; ``$${`` becomes ``${``."""
    parts: list[str] = []
    literal: list[str] = []
    pos = 0
    while True:
        start = text.find("${", pos)
        if start < 0:
            literal.append(text[pos:])
            break
        if start > 0 and text[start - 1] == "$":  # "$${" is an escaped "${"
            literal.append(text[pos : start - 1] + "${")
            pos = start + 2
            continue
        literal.append(text[pos:start])
        end = _closing_brace(text, start + 2)
        if end < 0:
            message = f"'${{' at column {start + 1} is never closed with '}}'"
            raise errors.ExpressionSyntaxError(message, where, expression=text[start + 2 :][:80])
        parts.append("".join(literal))
        parts.append(text[start + 2 : end])
        literal = []
        pos = end + 1
    parts.append("".join(literal))
    return parts


def _closing_brace(text: str, pos: int) -> int:
    """Index of the '}' closing an expression that starts at ``pos``, or -1.

    Skips string literals (with escapes and triple quotes) and balanced brackets, so that
    ``${ {'a': '}'}['a'] }`` closes at the last brace.
    """
    depth = 0
    end = len(text)
    while pos < end:
        char = text[pos]
        if char in "'\"":
            quote = char * 3 if text.startswith(char * 3, pos) else char
            pos += len(quote)
            while pos < end and not text.startswith(quote, pos):
                pos += 2 if text[pos] == "\\" else 1
            pos += len(quote)
            continue
        if char in "([{":
            depth += 1
        elif char in ")]":
            depth = max(depth - 1, 0)
        elif char == "}":
            if depth == 0:
                return pos
            depth -= 1
        pos += 1
    return -1


# --- source text: token rewriting, parsing, positions ---------------------------------------


_WORDS = {"true": "True", "false": "False", "null": "None"}
_OPENERS = ("(", "[", "{")
_CLOSERS = (")", "]", "}")
_SKIPPED = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)


class _Source:
    """An expression's text, the Python text it is rewritten to, and a map between the two.

    The text is wrapped in parentheses so it may span lines; the map (anchors of
    (python offset, wrapped offset, replaced?)) turns parser and node positions back into
    the user's line and column.
    """

    def __init__(self, text: str, where: errors.Where) -> None:
        self.text = text
        self.where = where
        self.wrapped = "(" + text + "\n)"
        self.python = self.wrapped
        self.anchors: list[tuple[int, int, bool]] = [(0, 0, False)]
        self.lines: list[str] = []
        self.starts: list[int] = []

    def fail(self, message: str, wrapped_offset: int | None = None) -> NoReturn:
        location = "" if wrapped_offset is None else " " + self._location(wrapped_offset - 1)
        raise errors.ExpressionSyntaxError(message + location, self.where, expression=self.text)

    def parse(self) -> ast.expr:
        with contextlib.suppress(tokenize.TokenError, SyntaxError):
            self._rewrite()  # on failure the parser below reports the problem, and better
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes and `1 is 1`
                tree = ast.parse(self.python, mode="eval")
        except SyntaxError as exc:
            offset = None
            if exc.lineno is not None and exc.offset is not None:
                starts = _line_starts(self.python)
                line = min(exc.lineno, len(starts)) - 1
                offset = self._to_wrapped(starts[line] + max(exc.offset - 1, 0))
            self.fail(f"invalid expression: {exc.msg}", offset)
        except (ValueError, RecursionError, MemoryError):
            self.fail("invalid expression: too complex or contains NUL characters")
        self.lines = self.python.split("\n")
        self.starts = _line_starts(self.python)
        return tree.body

    def _rewrite(self) -> None:
        wrapped = self.wrapped
        starts = _line_starts(wrapped)
        tokens = list(tokenize.generate_tokens(io.StringIO(wrapped).readline))
        edits: list[tuple[int, int, str]] = []
        depth = 0
        previous: tokenize.TokenInfo | None = None
        skip = False
        for i, token in enumerate(tokens):
            if skip:
                skip = False
                previous = token
                continue
            if token.type in _SKIPPED:
                continue
            start = starts[token.start[0] - 1] + token.start[1]
            end = starts[token.end[0] - 1] + token.end[1]
            string = token.string
            if token.type == tokenize.COMMENT:
                self.fail("comments (#) are not allowed in expressions", start)
            if string == "!":
                edits.append((start, end, " not "))
            elif token.type == tokenize.OP:
                if string in _OPENERS:
                    depth += 1
                elif string in _CLOSERS:
                    depth -= 1
                    if depth == 0 and end != len(wrapped):
                        self.fail(f"unmatched '{string}'", start)
                elif string in ("&", "|") and tokens[i + 1][1:3] == (string, token.end):
                    following = tokens[i + 1].end
                    word = " and " if string == "&" else " or "
                    edits.append((start, starts[following[0] - 1] + following[1], word))
                    skip = True
            elif token.type == tokenize.NAME:
                after_dot = previous is not None and previous.string == "."
                if after_dot and keyword.iskeyword(string) and previous is not None:
                    # `.from` is a key lookup, not the keyword: `x.from` -> `x['from']`
                    dot = starts[previous.start[0] - 1] + previous.start[1]
                    edits.append((dot, end, f"[{string!r}]"))
                elif not after_dot and string in _WORDS:
                    edits.append((start, end, _WORDS[string]))
            if not string.isspace():
                previous = token
        pieces: list[str] = []
        self.anchors = []
        python_pos = wrapped_pos = 0
        for start, end, replacement in edits:
            if start > wrapped_pos:
                self.anchors.append((python_pos, wrapped_pos, False))
                pieces.append(wrapped[wrapped_pos:start])
                python_pos += start - wrapped_pos
            self.anchors.append((python_pos, start, True))
            pieces.append(replacement)
            python_pos += len(replacement)
            wrapped_pos = end
        self.anchors.append((python_pos, wrapped_pos, False))
        pieces.append(wrapped[wrapped_pos:])
        self.python = "".join(pieces)

    def _to_wrapped(self, python_offset: int) -> int:
        index = bisect.bisect_right(self.anchors, (python_offset, len(self.wrapped), True)) - 1
        python_start, wrapped_start, replaced = self.anchors[max(index, 0)]
        return wrapped_start if replaced else wrapped_start + python_offset - python_start

    def _node_offsets(self, node: ast.AST) -> tuple[int, int]:
        """Offsets of a node in the user's text (AST columns are UTF-8 byte offsets)."""

        def offset(line: int, column: int) -> int:
            chars = len(self.lines[line - 1].encode()[:column].decode("utf-8", "ignore"))
            return self._to_wrapped(self.starts[line - 1] + chars) - 1

        line: int = getattr(node, "lineno", 1)
        begin = offset(line, getattr(node, "col_offset", 0))
        end_line: int | None = getattr(node, "end_lineno", None)
        end_column: int | None = getattr(node, "end_col_offset", None)
        finish = begin if end_column is None else offset(end_line or line, end_column)
        return max(begin, 0), min(max(finish, begin), len(self.text))

    def location(self, node: ast.AST, at_end: bool = False) -> str:
        return self._location(self._node_offsets(node)[1 if at_end else 0])

    def snippet(self, node: ast.AST) -> str:
        """The user's own text of a node, on one line, cut to 80 characters."""
        begin, end = self._node_offsets(node)
        text = " ".join(self.text[begin:end].split()) or ast.unparse(node)
        return text if len(text) <= 80 else text[:79] + "…"

    def char_before(self, node: ast.AST) -> str:
        begin = self._node_offsets(node)[0]
        return self.text[begin - 1] if begin > 0 else ""

    def _location(self, offset: int) -> str:
        offset = min(max(offset, 0), len(self.text))
        column = offset - self.text.rfind("\n", 0, offset)
        if "\n" not in self.text:
            return f"at column {column}"
        return f"at line {self.text.count(chr(10), 0, offset) + 1}, column {column}"


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for i, char in enumerate(text):
        if char == "\n":
            starts.append(i + 1)
    return starts


# --- the compiler ----------------------------------------------------------------------------


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
    ast.Add: ("+", functions.add),
    ast.Sub: ("-", functions.subtract),
    ast.Mult: ("*", functions.multiply),
    ast.Div: ("/", functions.divide),
    ast.FloorDiv: ("//", functions.floor_divide),
    ast.Mod: ("%", functions.modulo),
    ast.Pow: ("**", functions.power),
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


class _Compiler:
    """Turns the parsed tree of one expression into closures, refusing what is not allowed."""

    def __init__(self, source: _Source, where: errors.Where) -> None:
        self.source = source
        self.where = where
        self.references: set[tuple[str, ...]] = set()
        self.locals: list[str] = []  # list comprehension variables in scope
        self.depth = 0
        self.loops = False  # whether there is a list comprehension

    def fail(self, message: str, node: ast.AST, after: ast.AST | None = None) -> NoReturn:
        """Refuse ``node``; the column is that of ``node``, or of the end of ``after``."""
        where = self.source.location(after, at_end=True) if after else self.source.location(node)
        message = f"{message} {where}"
        raise errors.ExpressionSyntaxError(message, self.where, expression=self.source.text)

    def compile(self, node: ast.AST) -> Fn:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
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
            return lambda scope: _lookup(value(scope), key, True, path, flag)
        assert isinstance(node, ast.Subscript)
        value, path = self.compile(node.value), self.source.snippet(node.value)
        if isinstance(node.slice, ast.Slice):
            bounds = [
                None if part is None else self.compile(part)
                for part in (node.slice.lower, node.slice.upper, node.slice.step)
            ]
            return _charged(lambda scope: _slice(value(scope), bounds, scope, path))
        index, flag = self.compile(node.slice), self._flag(node.value)
        return lambda scope: _lookup(value(scope), index(scope), False, path, flag)

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
                raise functions.EvalFailure(missing, missing=True) from None
            for key, is_attribute, path, flag in steps:
                value = _lookup(value, key, is_attribute, path, flag)
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
        if name in functions.FUNCTIONS or name in functions.LAZY_FUNCTIONS:
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
        if functions.is_number(constant) and isinstance(node.op, ast.USub | ast.UAdd):
            sign = functions.negate if isinstance(node.op, ast.USub) else functions.positive
            folded = sign(constant)
            return lambda scope: folded  # a signed number literal
        operand = self.compile(operand_node)
        if isinstance(node.op, ast.Not):
            return lambda scope: not truthy(operand(scope))
        if isinstance(node.op, ast.USub):
            return lambda scope: functions.negate(operand(scope))
        return lambda scope: functions.positive(operand(scope))

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
        divides, grows = symbol in ("/", "//", "%"), symbol in ("+", "*")

        def run(scope: Any) -> Any:
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
            result = operation(a, b)
            if grows and type(scope) is _Frame:
                _charge(scope, result)
            return result

        return run

    def boolean(self, node: ast.BoolOp) -> Fn:
        operands = [self.compile(value) for value in node.values]
        is_and = isinstance(node.op, ast.And)

        def run(scope: Any) -> Any:
            value = None
            for operand in operands:
                value = operand(scope)
                if truthy(value) is not is_and:
                    return value
            return value

        return run

    def compare(self, node: ast.Compare) -> Fn:
        left = self.compile(node.left)
        pairs: list[tuple[Callable[[Any, Any], bool], Fn]] = []
        operands = [node.left, *node.comparators]
        for i, (op, right) in enumerate(zip(node.ops, node.comparators, strict=True)):
            if isinstance(op, ast.Is | ast.IsNot):
                sides = (operands[i], right)
                if not any(_is_singleton(side) for side in sides):
                    self.fail("'is' only compares with null, true or false; use ==", node)
            pairs.append((_COMPARISONS[type(op)], self.compile(right)))
        if len(pairs) == 1:
            test, right_fn = pairs[0]
            return lambda scope: test(left(scope), right_fn(scope))

        def run(scope: Any) -> bool:
            a = left(scope)
            for test, right_fn in pairs:
                b = right_fn(scope)
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
        return lambda scope: body(scope) if truthy(test(scope)) else orelse(scope)

    # Literals and list comprehensions

    def sequence(self, node: ast.List | ast.Tuple) -> Fn:
        items = [self.compile(item) for item in node.elts]
        return _charged(lambda scope: [item(scope) for item in items])

    def mapping(self, node: ast.Dict) -> Fn:
        if any(key is None for key in node.keys):
            self.fail("unpacking with ** is not allowed", node)
        entries = [
            (self.compile(key), self.compile(value))
            for key, value in zip(node.keys, node.values, strict=True)
            if key is not None
        ]
        return _charged(lambda scope: {_dict_key(k(scope)): v(scope) for k, v in entries})

    def comprehension(self, node: ast.ListComp) -> Fn:
        if len(node.generators) != 1:
            self.fail("a list comprehension may have only one 'for'", node)
        generator = node.generators[0]
        if generator.is_async:
            self.fail("async comprehensions are not allowed", node)
        if not isinstance(generator.target, ast.Name):
            self.fail("the loop variable must be a single name: [x for x in ...]", generator.target)
        name = generator.target.id
        self.loops = True
        iterable, path = self.compile(generator.iter), self.source.snippet(generator.iter)
        self.locals.append(name)
        try:
            conditions = [self.compile(condition) for condition in generator.ifs]
            element = self.compile(node.elt)
        finally:
            self.locals.pop()

        def run(scope: _Frame) -> list[Any]:
            items = _iterable(iterable(scope), path)
            budget = scope.budget
            budget.iterations -= len(items)
            if budget.iterations < 0:
                message = f"list comprehensions may visit at most {MAX_ITERATIONS:,} items"
                raise functions.EvalFailure(message)
            frame = _Frame(scope, budget)
            out = []
            for item in items:
                if time.monotonic() > budget.deadline:
                    raise functions.EvalFailure(f"evaluation took over {MAX_SECONDS:g} seconds")
                frame[name] = item
                for condition in conditions:
                    if not truthy(condition(frame)):
                        break
                else:
                    value = element(frame)
                    # What a list holds is what later comparisons and text conversion walk.
                    budget.built -= functions.size_of(value, max(budget.built, 0))
                    out.append(value)
            if budget.built < 0:
                raise functions.EvalFailure(_OVER_BUDGET)
            return out

        return run

    def call(self, node: ast.Call) -> Fn:
        func = node.func
        if isinstance(func, ast.Attribute):
            hint = ""
            if func.attr in functions.FUNCTIONS:
                hint = f"; write {func.attr}(x, ...) instead of x.{func.attr}(...)"
            self.fail(f"calling methods is not allowed (.{func.attr}(...)){hint}", node, func.value)
        if not isinstance(func, ast.Name):
            self.fail("only functions can be called, by name: len(x)", node)
        name = func.id
        if name not in functions.FUNCTIONS and name not in functions.LAZY_FUNCTIONS:
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
        if name in functions.LAZY_FUNCTIONS:
            return _lazy(name, args)
        return _charged(_call(name, functions.FUNCTIONS[name].impl, args))


_HANDLERS: dict[type[ast.AST], Callable[[_Compiler, Any], Fn]] = {
    ast.Constant: _Compiler.constant,
    ast.Name: _Compiler.access,
    ast.Attribute: _Compiler.access,
    ast.Subscript: _Compiler.access,
    ast.UnaryOp: _Compiler.unary,
    ast.BinOp: _Compiler.binary,
    ast.BoolOp: _Compiler.boolean,
    ast.Compare: _Compiler.compare,
    ast.IfExp: _Compiler.if_else,
    ast.List: _Compiler.sequence,
    ast.Tuple: _Compiler.sequence,
    ast.Dict: _Compiler.mapping,
    ast.ListComp: _Compiler.comprehension,
    ast.Call: _Compiler.call,
}
_FUNCTION_NAMES = [*functions.FUNCTIONS, *functions.LAZY_FUNCTIONS]


def _signature(name: str) -> str:
    if name in functions.LAZY_FUNCTIONS:
        return functions.LAZY_FUNCTIONS[name][2]
    return functions.FUNCTIONS[name].signature


def _arity(name: str) -> tuple[int, int | None]:
    if name in functions.LAZY_FUNCTIONS:
        low, high, _ = functions.LAZY_FUNCTIONS[name]
        return low, high
    spec = functions.FUNCTIONS[name]
    return spec.min_args, spec.max_args


def _is_singleton(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in (None, True, False)


def _ordering(symbol: str, test: Callable[[Any, Any], Any]) -> Callable[[Any, Any], bool]:
    numbers = functions.NUMBER_TYPES

    def compare(a: Any, b: Any) -> bool:
        kind_a, kind_b = type(a), type(b)
        if (kind_a in numbers and kind_b in numbers) or (kind_a is str and kind_b is str):
            return bool(test(a, b))
        return functions.order(a, b, symbol)

    return compare


_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: bool(a == b),
    ast.NotEq: lambda a, b: bool(a != b),
    ast.Lt: _ordering("<", lambda a, b: a < b),
    ast.LtE: _ordering("<=", lambda a, b: a <= b),
    ast.Gt: _ordering(">", lambda a, b: a > b),
    ast.GtE: _ordering(">=", lambda a, b: a >= b),
    ast.In: lambda a, b: functions.contains(b, a),
    ast.NotIn: lambda a, b: not functions.contains(b, a),
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
}


# --- run time: lookups, calls and the comprehension budget -----------------------------------


class _Budget:
    """What one evaluation may still visit and build in its list comprehensions."""

    __slots__ = ("built", "deadline", "iterations")

    def __init__(self) -> None:
        self.iterations = MAX_ITERATIONS
        self.built = MAX_BUILT
        self.deadline = time.monotonic() + MAX_SECONDS


class _Frame(dict[str, Any]):
    """A scope with a budget: the loop variable of a list comprehension, then ``parent``."""

    __slots__ = ("budget", "parent")

    def __init__(self, parent: Any, budget: _Budget) -> None:
        super().__init__()
        self.parent = parent
        self.budget = budget

    def __missing__(self, key: str) -> Any:
        return self.parent[key]


_OVER_BUDGET = f"list comprehensions built more than {MAX_BUILT:,} items and characters"


def _budgeted(fn: Fn) -> Fn:
    """Give each evaluation of an expression that loops one budget, shared by all its loops."""
    return lambda scope: fn(_Frame(scope, _Budget()))


def _charged(fn: Fn) -> Fn:
    """Count what ``fn`` builds against the evaluation's budget, if it has one.

    Each operation is bounded on its own; in a list comprehension the same operation runs
    once per item, so there the total is bounded too.
    """

    def run(scope: Any) -> Any:
        value = fn(scope)
        if type(scope) is _Frame:
            _charge(scope, value)
        return value

    return run


def _charge(frame: _Frame, value: Any) -> None:
    budget = frame.budget
    budget.built -= len(value) if isinstance(value, str | list | dict) else 1
    if budget.built < 0:
        raise functions.EvalFailure(_OVER_BUDGET)


def _lookup(value: Any, key: Any, is_attribute: bool, path: str, flag: str | None) -> Any:
    """``value.key`` or ``value[key]``: a key of a mapping, or an index into a list or text."""
    if isinstance(value, Mapping):
        try:
            return value[key]
        except KeyError:
            raise _missing_key(value, key, path, flag) from None
        except TypeError:
            raise functions.EvalFailure(f"{path} cannot have {functions.a_kind(key)} key") from None
    accessor = f".{key}" if is_attribute else f"[{functions.show(key)}]"
    if value is None:
        raise functions.EvalFailure(f"{path} is null, so it has no {accessor}", missing=True)
    if not is_attribute and isinstance(value, list | tuple | str):
        if type(key) is not int:
            wrong = functions.describe(key)
            message = (
                f"{path} is {functions.a_kind(value)}: index it with a whole number, not {wrong}"
            )
            raise functions.EvalFailure(message)
        try:
            return value[key]
        except IndexError:
            message = f"{path} has no index {key} (length {len(value)})"
            raise functions.EvalFailure(message, missing=True) from None
    hint = ""
    if isinstance(value, list | tuple):
        hint = f" (use {path}[0]{accessor}, or [x{accessor} for x in {path}])"
    elif isinstance(value, str):
        hint = " (if it holds JSON text, read it with fromJson(...) first)"
    message = f"{path} is {functions.a_kind(value)}, not a dict: cannot read {accessor}{hint}"
    raise functions.EvalFailure(message)


def _missing_key(
    mapping: Mapping[Any, Any], key: Any, path: str, flag: str | None
) -> functions.EvalFailure:
    if flag == "steps":
        name = f"steps.{key}" if str(key).isidentifier() else f"steps[{functions.show(key)}]"
        done = f"finished: {functions.key_list(mapping)}" if mapping else "no step has finished yet"
        return functions.EvalFailure(f"{name} has no output yet ({done})", missing=True)
    if flag == "step" and key == "output":
        status = mapping.get("status")
        detail = f" (status: {functions.show(status)})" if status is not None else ""
        return functions.EvalFailure(f"{path} has no output yet{detail}", missing=True)
    hint = ""
    if flag == "step" and "output" in mapping and isinstance(key, str):
        hint = f"; did you mean {path}.output.{key}?"
    keys = f"has: {functions.key_list(mapping)}" if mapping else "it is empty"
    message = f"{path} has no key {functions.show(key)} ({keys}){hint}"
    return functions.EvalFailure(message, missing=True)


def _slice(value: Any, bounds: list[Fn | None], scope: Any, path: str) -> Any:
    lower, upper, step = (None if bound is None else bound(scope) for bound in bounds)
    if not isinstance(value, list | tuple | str):
        raise functions.EvalFailure(
            f"{path} is {functions.describe(value)}: only lists and text can be sliced"
        )
    for bound in (lower, upper, step):
        if bound is not None and type(bound) is not int:
            raise functions.EvalFailure(
                f"slice bounds must be whole numbers, got {functions.describe(bound)}"
            )
    if step == 0:
        raise functions.EvalFailure("slice step must not be zero")
    part = value[lower:upper:step]
    return list(part) if isinstance(part, tuple) else part


def _iterable(value: Any, path: str) -> list[Any] | tuple[Any, ...] | str:
    if isinstance(value, list | tuple | str):
        return value
    if isinstance(value, Mapping):
        return list(value)
    raise functions.EvalFailure(f"cannot loop over {path}: it is {functions.describe(value)}")


def _dict_key(key: Any) -> Any:
    if key is None or type(key) in (str, int, float, bool):
        return key
    raise functions.EvalFailure(
        f"a dict key must be text or a number, not {functions.describe(key)}"
    )


def _call(name: str, impl: Callable[..., Any], args: list[Fn]) -> Fn:
    def run(scope: Any) -> Any:
        values = [arg(scope) for arg in args]
        try:
            return impl(*values)
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            raise functions.EvalFailure(f"{name}(): {str(exc)[:120]}") from None

    return run


def _attempt(fn: Fn, scope: Any) -> tuple[bool, Any]:
    """Evaluate ``fn``; (False, None) when it failed because data is missing."""
    try:
        return True, fn(scope)
    except functions.EvalFailure as exc:
        if exc.missing:
            return False, None
        raise


def _lazy(name: str, args: list[Fn]) -> Fn:
    if name == "has":
        (probe,) = args

        def has(scope: Any) -> bool:
            found, value = _attempt(probe, scope)
            return found and value is not None

        return has
    if name == "default":
        probe, fallback = args

        def default(scope: Any) -> Any:
            found, value = _attempt(probe, scope)
            return value if found and value is not None else fallback(scope)

        return default

    def coalesce(scope: Any) -> Any:
        for arg in args:
            found, value = _attempt(arg, scope)
            if found and value is not None:
                return value
        return None

    return coalesce
