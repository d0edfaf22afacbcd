"""A small JavaScript expression parser: the subset n8n users write inside ``{{ ... }}``.

``parse`` turns one expression into a tree of tuples (members, indexes, calls, operators, the
ternary, literals, template strings, one-parameter arrow functions); ``parse_template`` splits
an n8n template (``"Total: {{ $json.total }}"``) into its text and snippets. Anything outside
the subset raises ``Unsupported`` with the reason. ``expressions`` writes the trees out.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any


class Unsupported(Exception):
    """The expression uses something with no Autoflow equivalent; the message says what."""


# -- tokens --------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<tmpl>`(?:[^`\\]|\\.)*`)
    | (?P<op>===|!==|\?\?|\?\.|=>|==|!=|<=|>=|&&|\|\||\.\.\.|[-+*/%<>!?:.,()\[\]{}])
    )""",
    re.VERBOSE,
)


@dataclasses.dataclass(frozen=True)
class Tok:
    kind: str
    text: str


def tokenize(text: str) -> list[Tok]:
    tokens: list[Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise Unsupported(f"cannot read {text[pos:].strip()[:20]!r}")
        kind = m.lastgroup or "op"
        tokens.append(Tok(kind, m.group(kind)))
        pos = m.end()
    return tokens


# -- the tree ------------------------------------------------------------------------------------

Node = tuple[Any, ...]  # ("name", n) ("lit", value) ("member", obj, key) ("index", obj, node)
# ("call", fn, [args]) ("bin", op, a, b) ("un", op, a) ("cond", c, a, b) ("list", [items])
# ("obj", [(key, node)]) ("tmpl", [text | node])


class _Parser:
    def __init__(self, tokens: list[Tok]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, text: str | None = None) -> Tok | None:
        tok = self.tokens[self.pos] if self.pos < len(self.tokens) else None
        if text is not None and (tok is None or tok.text != text or tok.kind in ("str", "tmpl")):
            return None
        return tok

    def take(self, text: str | None = None) -> Tok:
        tok = self.peek(text)
        if tok is None:
            want = f"{text!r}" if text else "more"
            raise Unsupported(f"expected {want} in the expression")
        self.pos += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.pos != len(self.tokens):
            raise Unsupported(f"unexpected {self.tokens[self.pos].text!r}")
        return node

    def expr(self) -> Node:
        test = self.binary(0)
        if self.peek("?"):
            self.take("?")
            yes = self.expr()
            self.take(":")
            no = self.expr()
            return ("cond", test, yes, no)
        if self.peek("=>"):
            raise Unsupported("arrow functions (=>) have no Autoflow equivalent")
        return test

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||", "??"),
        ("&&",),
        ("===", "!==", "==", "!="),
        ("<", "<=", ">", ">="),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while (
            (tok := self.peek()) is not None
            and tok.kind == "op"
            and tok.text in self._LEVELS[level]
        ):
            self.pos += 1
            node = ("bin", tok.text, node, self.binary(level + 1))
        return node

    def unary(self) -> Node:
        for op in ("!", "-", "+"):
            if self.peek(op):
                self.take(op)
                return ("un", op, self.unary())
        if self.peek("new"):
            self.take("new")
            target = self.postfix(self.primary(), allow_call=False)
            args = self.args() if self.peek("(") else []
            return self.postfix(("new", target, args))
        return self.postfix(self.primary())

    def args(self) -> list[Node]:
        self.take("(")
        items: list[Node] = []
        while not self.peek(")"):
            items.append(self.expr())
            if not self.peek(")"):
                self.take(",")
        self.take(")")
        return items

    def postfix(self, node: Node, allow_call: bool = True) -> Node:
        while True:
            if self.peek(".") or self.peek("?."):
                self.pos += 1
                name = self.take()
                if name.kind != "name":
                    raise Unsupported(f"unexpected {name.text!r} after '.'")
                node = ("member", node, name.text)
            elif self.peek("["):
                self.take("[")
                index = self.expr()
                self.take("]")
                node = ("index", node, index)
            elif allow_call and self.peek("("):
                node = ("call", node, self.args())
            else:
                return node

    def _arrow_ahead(self) -> bool:
        ahead = self.tokens[self.pos : self.pos + 3]
        return (
            len(ahead) == 3
            and ahead[0].kind == "name"
            and ahead[1].text == ")"
            and ahead[2].text == "=>"
        )

    def _arrow_after_parens(self) -> bool:
        depth = 1
        for i in range(self.pos, len(self.tokens)):
            text = self.tokens[i].text if self.tokens[i].kind == "op" else ""
            depth += {"(": 1, ")": -1}.get(text, 0)
            if depth == 0:
                return i + 1 < len(self.tokens) and self.tokens[i + 1].text == "=>"
        return False

    def arrow_body(self) -> Node:
        if self.peek("{"):
            raise Unsupported("arrow functions with a block body have no Autoflow equivalent")
        return self.expr()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return ("lit", float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text))
        if tok.kind == "str":
            return ("lit", _js_string(tok.text[1:-1]))
        if tok.kind == "tmpl":
            return ("tmpl", _template_parts(tok.text[1:-1]))
        if tok.kind == "name" and self.peek("=>"):
            self.take("=>")
            return ("arrow", tok.text, self.arrow_body())
        if tok.text == "(" and tok.kind == "op" and self._arrow_ahead():
            param = self.take().text
            self.take(")")
            self.take("=>")
            return ("arrow", param, self.arrow_body())
        if tok.kind == "name":
            literal = {"true": True, "false": False, "null": None, "undefined": None}
            if tok.text in literal:
                return ("lit", literal[tok.text])
            if tok.text in ("function", "let", "const", "var", "return"):
                raise Unsupported(f"{tok.text!r}: statements have no Autoflow equivalent")
            return ("name", tok.text)
        if tok.text == "(":
            if self._arrow_after_parens():
                raise Unsupported("arrow functions with several parameters have no equivalent")
            node = self.expr()
            self.take(")")
            return node
        if tok.text == "[":
            items: list[Node] = []
            while not self.peek("]"):
                items.append(self.expr())
                if not self.peek("]"):
                    self.take(",")
            self.take("]")
            return ("list", items)
        if tok.text == "{":
            pairs: list[tuple[str, Node]] = []
            while not self.peek("}"):
                key = self.take()
                if key.kind not in ("name", "str", "num"):
                    raise Unsupported("computed object keys have no Autoflow equivalent")
                name = _js_string(key.text[1:-1]) if key.kind == "str" else key.text
                self.take(":")
                pairs.append((name, self.expr()))
                if not self.peek("}"):
                    self.take(",")
            self.take("}")
            return ("obj", pairs)
        if tok.text == "/":
            raise Unsupported("regular expressions have no Autoflow equivalent")
        raise Unsupported(f"unexpected {tok.text!r}")


def _js_string(body: str) -> str:
    out: list[str] = []
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f", "v": "\v"}
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 5 < len(body):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(escapes.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _template_parts(body: str) -> list[str | Node]:
    """A JavaScript template literal's text and ``${ }`` parts."""
    parts: list[str | Node] = []
    pos = 0
    while pos < len(body):
        start = body.find("${", pos)
        if start < 0:
            parts.append(_js_string(body[pos:]))
            break
        if start > pos:
            parts.append(_js_string(body[pos:start]))
        end = _closing(body, start + 2, "{", "}")
        parts.append(parse(body[start + 2 : end]))
        pos = end + 1
    return parts


def _closing(text: str, pos: int, open_: str, close: str) -> int:
    """The index of the bracket closing one opened just before ``pos`` (quotes respected)."""
    depth = 1
    quote: str | None = None
    i = pos
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == open_:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise Unsupported("unbalanced brackets in the expression")


def parse(text: str) -> Node:
    """The tree of one JavaScript expression."""
    if not text.strip():
        raise Unsupported("an empty expression")
    return _Parser(tokenize(text)).parse()


# -- n8n templates -------------------------------------------------------------------------------


def parse_template(text: str) -> list[str | str]:
    """``"Total: {{ $json.total }}"`` → ``["Total: ", "{{ $json.total }}"]``-like parts: the text
    between snippets and each snippet's JavaScript (odd indexes)."""
    parts: list[str] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            parts.append(text[pos:])
            return parts
        end = _snippet_end(text, start + 2)
        parts.append(text[pos:start])
        parts.append(text[start + 2 : end])
        pos = end + 2


def _snippet_end(text: str, pos: int) -> int:
    quote: str | None = None
    depth = 0
    i = pos
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch in "([{":
            if text.startswith("}}", i) and depth == 0:
                return i
            depth += 1
        elif ch in ")]}":
            if depth == 0 and text.startswith("}}", i):
                return i
            depth -= 1
        i += 1
    raise Unsupported("a '{{' without its '}}'")
