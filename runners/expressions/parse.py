"""Source text of workflow expressions: finding ``${ }`` in a string, and parsing one expression.

Two steps, both at validate time:

1. ``split_template`` cuts a manifest string into ``[literal, expression, literal, ...]``. It
   finds each ``${ ... }`` with a quote- and bracket-aware scan (an expression may hold ``}``
   in a string or dict literal) and turns ``$${`` into a literal ``${``.
2. ``Source(text, where).parse()`` rewrites one expression's tokens into Python (``&&``,
   ``||``, ``!``, ``true``, ``false``, ``null``, keywords after a dot such as ``.from``) and
   parses it with ``ast.parse(mode="eval")``. The ``Source`` keeps a map from the rewritten
   text back to the user's, so ``expr_compile`` can name the line and column of a refused
   node, and quote the user's own text of it in run-time messages (``snippet``).

Problems are ``ExpressionSyntaxError`` with a column.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import io
import keyword
import tokenize
import warnings
from typing import NoReturn

from autoflow.crds import errors


def split_template(text: str, where: errors.Where) -> list[str]:
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


# --- one expression: token rewriting, parsing, positions --------------------------------------


_WORDS = {"true": "True", "false": "False", "null": "None"}
_OPENERS = ("(", "[", "{")
_CLOSERS = (")", "]", "}")
_SKIPPED = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)


class Source:
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
