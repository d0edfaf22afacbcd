"""n8n expressions (``={{ $json.total > 100 }}``) translated into Autoflow expressions.

An n8n parameter value that starts with ``=`` is a template: text with JavaScript snippets in
``{{ ... }}``. Each snippet is parsed by a small JavaScript expression parser (the subset n8n
users write: members, indexes, calls, operators, the ternary, literals, template strings) into
a tree, and the tree is written out in Autoflow's expression language::

    "=Total: {{ $json.total }}"  ─ parse_template ─ ["Total: ", Js(member($json, total))]
                                 ─ Translator.expr ─ "Total: ${ steps.fetch.output.body.total }"

What a name such as ``$json`` or ``$('Fetch').item.json`` means depends on where the node sits
in the graph; the ``Context`` the converter passes answers that. Anything the translator does
not know (arrow functions, regular expressions, Luxon date methods, ``$items``) raises
``Unsupported`` with the reason, and the converter keeps the original text and reports it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any, Protocol

from autoflow.webui.importers.n8n import javascript

Unsupported = javascript.Unsupported
Node = javascript.Node
parse = javascript.parse
parse_template = javascript.parse_template


def is_expression(value: Any) -> bool:
    """Whether an n8n parameter value is a template (starts with ``=``)."""
    return isinstance(value, str) and value.startswith("=")


class Context(Protocol):
    """What the names of an n8n expression mean at one node."""

    def current(self) -> str:
        """The item the node is processing (``$json``)."""

    def node_item(self, name: str, which: str) -> str:
        """Another node's item: which is ``item``, ``first``, ``last`` or ``all``."""

    def input_item(self, which: str) -> str:
        """The node's input: ``item``, ``first``, ``last`` or ``all``."""


# -- writing Autoflow ----------------------------------------------------------------------------

_FUNCTIONS: dict[str, Callable[[list[str]], str]] = {
    "JSON.stringify": lambda a: f"json({a[0]})",
    "JSON.parse": lambda a: f"fromJson({a[0]})",
    "Math.round": lambda a: f"round({a[0]})",
    "Math.floor": lambda a: f"floor({a[0]})",
    "Math.ceil": lambda a: f"ceil({a[0]})",
    "Math.abs": lambda a: f"abs({a[0]})",
    "Math.min": lambda a: f"min({', '.join(a)})",
    "Math.max": lambda a: f"max({', '.join(a)})",
    "parseInt": lambda a: f"int({a[0]})",
    "parseFloat": lambda a: f"float({a[0]})",
    "Number": lambda a: f"float({a[0]})",
    "String": lambda a: f"str({a[0]})",
    "Boolean": lambda a: f"bool({a[0]})",
    "Object.keys": lambda a: f"keys({a[0]})",
    "Object.values": lambda a: f"values({a[0]})",
    "encodeURIComponent": lambda a: a[0],
}

_METHODS: dict[str, Callable[[str, list[str]], str]] = {
    "toUpperCase": lambda o, a: f"upper({o})",
    "toLowerCase": lambda o, a: f"lower({o})",
    "trim": lambda o, a: f"trim({o})",
    "includes": lambda o, a: f"contains({o}, {a[0]})",
    "startsWith": lambda o, a: f"startsWith({o}, {a[0]})",
    "endsWith": lambda o, a: f"endsWith({o}, {a[0]})",
    "split": lambda o, a: f"split({o}, {a[0]})" if a else f"[{o}]",
    "join": lambda o, a: f"join({o}, {a[0] if a else repr(',')})",
    "replaceAll": lambda o, a: f"replace({o}, {a[0]}, {a[1]})",
    "toString": lambda o, a: f"str({o})",
    "toJsonString": lambda o, a: f"json({o})",
    "concat": lambda o, a: " + ".join([o, *a]),
    "slice": lambda o, a: f"{o}[{':'.join(a) if len(a) > 1 else a[0] + ':'}]",
    "first": lambda o, a: f"first({o})",
    "last": lambda o, a: f"last({o})",
    "isEmpty": lambda o, a: f"(len({o}) == 0)",
    "isNotEmpty": lambda o, a: f"(len({o}) > 0)",
    "keys": lambda o, a: f"keys({o})",
    "values": lambda o, a: f"values({o})",
    "toFixed": lambda o, a: f"str(round({o}, {a[0] if a else 0}))",
    "toNumber": lambda o, a: f"float({o})",
    "toInt": lambda o, a: f"int({o})",
    "round": lambda o, a: f"round({o}, {a[0] if a else 0})",
    "sum": lambda o, a: f"sum({o})",
    "unique": lambda o, a: f"unique({o})",
    "toISOString": lambda o, a: o,
    "toISO": lambda o, a: o,
}
# Methods whose JavaScript meaning differs a little from what they become: said in the report.
_APPROXIMATE = {
    "replace": "replace() replaces every occurrence in Autoflow, the first one in JavaScript",
    "toFixed": "toFixed() pads with zeros in JavaScript; round() does not",
    "encodeURIComponent": "encodeURIComponent() is left out: Autoflow does not URL-encode",
}

_LIST_METHODS: dict[str, Callable[[str, str, str], str]] = {
    "map": lambda p, obj, body: f"[{body} for {p} in {obj}]",
    "filter": lambda p, obj, body: f"[{p} for {p} in {obj} if {body}]",
    "find": lambda p, obj, body: f"first([{p} for {p} in {obj} if {body}])",
    "some": lambda p, obj, body: f"(len([{p} for {p} in {obj} if {body}]) > 0)",
    "every": lambda p, obj, body: f"(len([{p} for {p} in {obj} if not ({body})]) == 0)",
}
_ROOTS = {"inputs", "steps", "run", "item", "index", "env", "error", "it"}

_OPS = {"===": "==", "!==": "!=", "==": "==", "!=": "!=", "&&": "and", "||": "or"}


class Translator:
    """Writes trees as Autoflow expression text; ``notes`` collects approximations."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.notes: list[str] = []
        self.locals: dict[str, str] = {}

    # Precedence: a child lower than its parent is parenthesised. Kept simple: every binary,
    # unary and conditional is written in parentheses unless it is the whole expression.
    def write(self, node: Node, top: bool = False) -> str:
        text = self._write(node)
        kind = node[0]
        if not top and kind in ("bin", "cond", "un"):
            return f"({text})"
        return text

    def _write(self, node: Node) -> str:
        kind = node[0]
        if kind == "lit":
            return _literal(node[1])
        if kind == "list":
            return "[" + ", ".join(self.write(n, True) for n in node[1]) + "]"
        if kind == "obj":
            return (
                "{" + ", ".join(f"{_literal(k)}: {self.write(v, True)}" for k, v in node[1]) + "}"
            )
        if kind == "tmpl":
            return self._concat(
                [("lit", p) if isinstance(p, str) else p for p in node[1] if p != ""]
            )
        if kind == "cond":
            return f"{self.write(node[2])} if {self.soft(node[1])} else {self.write(node[3])}"
        if kind == "un":
            op, arg = node[1], node[2]
            return f"not {self.soft(arg)}" if op == "!" else f"{op}{self.write(arg)}"
        if kind == "bin":
            return self._binary(node)
        return self._chain(node)

    def _binary(self, node: Node) -> str:
        op, a, b = node[1], node[2], node[3]
        if op == "+":
            terms = _plus_terms(node)
            if any(_is_text(t) for t in terms):
                return self._concat(terms)
        if op == "??":
            return f"coalesce({self.write(a, True)}, {self.write(b, True)})"
        if op in ("||", "&&"):
            return f"{self.soft(a)} {_OPS[op]} {self.soft(b)}"
        return f"{self.write(a)} {_OPS.get(op, op)} {self.write(b)}"

    def soft(self, node: Node) -> str:
        """A field read as a truth value: a missing key is false, as undefined is in JavaScript
        (Autoflow reports a missing key as an error elsewhere)."""
        text = self.write(node)
        if node[0] in ("member", "index") and not text.startswith("len("):
            return f"default({text}, null)"
        return text

    def _concat(self, terms: list[Node]) -> str:
        parts = [self.write(t) if _is_text(t) else f"str({self.write(t, True)})" for t in terms]
        return " + ".join(parts) if parts else "''"

    def _chain(self, node: Node) -> str:
        special = self._n8n_root(node)
        if special is not None:
            return special
        kind = node[0]
        if kind == "name" and node[1] in self.locals:
            return self.locals[node[1]]
        if kind == "name":
            raise Unsupported(f"{node[1]!r} is not known to the importer")
        if kind == "arrow":
            raise Unsupported("arrow functions only inside map, filter, some, every and find")
        if kind == "new":
            target = _dotted(node[1])
            if target == "Date" and not node[2]:
                self.notes.append("new Date() became now() (ISO-8601 text, not a Date)")
                return "now()"
            raise Unsupported(f"new {target or 'object'}(...) has no Autoflow equivalent")
        if kind == "member":
            obj, key = node[1], node[2]
            if key == "length":
                return f"len({self.write(obj, True)})"
            return f"{self.write(obj)}{_key(key)}"
        if kind == "index":
            return f"{self.write(node[1])}[{self.write(node[2], True)}]"
        if kind == "call":
            return self._call(node)
        raise Unsupported(f"cannot translate {kind}")

    def _call(self, node: Node) -> str:
        fn, args = node[1], node[2]
        dotted = _dotted(fn)
        written = [self.write(a, True) for a in args]
        if dotted in _FUNCTIONS:
            if dotted in _APPROXIMATE:
                self.notes.append(_APPROXIMATE[dotted])
            return _FUNCTIONS[dotted](written or ["null"])
        if fn[0] == "member":
            return self._method(self.write(fn[1]), fn[2], args)
        raise Unsupported(f"calling {dotted or 'a function'}() has no Autoflow equivalent")

    def _method(self, obj: str, method: str, args: list[Node]) -> str:
        if args and args[0][0] == "arrow" and method in _LIST_METHODS:
            param = str(args[0][1])
            name = param if param not in _ROOTS else f"x_{param}"
            saved = dict(self.locals)
            self.locals[param] = name
            try:
                body = self.write(args[0][2], True)
            finally:
                self.locals = saved
            return _LIST_METHODS[method](name, obj, body)
        written = [self.write(a, True) for a in args]
        if method == "replace" and len(written) == 2:
            self.notes.append(_APPROXIMATE["replace"])
            return f"replace({obj}, {written[0]}, {written[1]})"
        if method in _METHODS:
            if method in _APPROXIMATE:
                self.notes.append(_APPROXIMATE[method])
            return _METHODS[method](obj, written)
        raise Unsupported(f".{method}() has no Autoflow equivalent")

    def _n8n_root(self, node: Node) -> str | None:
        """The n8n variables: ``$json``, ``$('X')...``, ``$node["X"]...``, ``$input...``."""
        # Unwind the chain into a root and its steps.
        chain: list[Node] = []
        root = node
        while root[0] in ("member", "index", "call"):
            chain.append(root)
            root = root[1]
        chain.reverse()
        if root[0] != "name" or not root[1].startswith("$"):
            return None
        name = root[1]
        rest = chain
        if name == "$json":
            return self._rest(self.ctx.current(), rest)
        if name == "$":
            if not rest or rest[0][0] != "call" or len(rest[0][2]) != 1:
                raise Unsupported("$(...) needs one node name")
            target = _literal_text(rest[0][2][0])
            return self._node_access(lambda w: self.ctx.node_item(target, w), rest[1:])
        if name == "$node":
            if not rest or rest[0][0] not in ("member", "index"):
                raise Unsupported('$node needs a node name: $node["Name"].json')
            first = rest[0]
            target = first[2] if first[0] == "member" else _literal_text(first[2])
            after = rest[1:]
            if after and after[0][0] == "member" and after[0][2] == "json":
                return self._rest(self.ctx.node_item(target, "item"), after[1:])
            raise Unsupported(f'$node["{target}"] is read only through .json here')
        if name == "$input":
            return self._node_access(self.ctx.input_item, rest)
        if name in ("$execution", "$workflow") and rest and rest[0][0] == "member":
            key = (name, rest[0][2])
            known = {
                ("$execution", "id"): "run.id",
                ("$workflow", "name"): "run.workflow",
                ("$workflow", "id"): "run.workflow",
            }
            if key in known:
                return self._rest(known[key], rest[1:])
        if name == "$env" and rest:
            return self._rest("env", rest)
        if name in ("$now", "$today"):
            self.notes.append(f"{name} became now() (ISO-8601 text, not a Luxon DateTime)")
            base = "now()" if name == "$now" else "now()[0:10]"
            if rest and rest[0][0] == "member" and rest[0][2] in ("toISO", "toISOString"):
                rest = rest[2:] if len(rest) > 1 and rest[1][0] == "call" else rest[1:]
            if rest:
                raise Unsupported(f"{name} date methods have no Autoflow equivalent")
            return base
        if name == "$itemIndex":
            return self._rest("index", rest)
        raise Unsupported(f"{name} has no Autoflow equivalent")

    def _node_access(self, item: Callable[[str], str], rest: list[Node]) -> str:
        """``.item.json``, ``.first().json``, ``.last().json``, ``.all()`` after a node."""
        if rest and rest[0][0] == "member" and rest[0][2] in ("item", "json"):
            if rest[0][2] == "json":
                return self._rest(item("item"), rest[1:])
            if len(rest) > 1 and rest[1][0] == "member" and rest[1][2] == "json":
                return self._rest(item("item"), rest[2:])
        if (
            len(rest) >= 2
            and rest[0][0] == "member"
            and rest[0][2] in ("first", "last", "all")
            and rest[1][0] == "call"
        ):
            which = rest[0][2]
            after = rest[2:]
            if which == "all":
                return self._rest(item("all"), after)
            if after and after[0][0] == "member" and after[0][2] == "json":
                return self._rest(item(which), after[1:])
        raise Unsupported("only .item.json, .first().json, .last().json and .all() are read")

    def _rest(self, base: str, rest: list[Node]) -> str:
        """``base`` followed by the remaining members, indexes and method calls."""
        node: Node = ("raw", base)
        for step in rest:
            node = (step[0], node, *step[2:])
        return self._write_raw(node)

    def _write_raw(self, node: Node) -> str:
        if node[0] == "raw":
            return str(node[1])
        if node[0] == "member":
            obj = self._write_raw(node[1])
            if node[2] == "length":
                return f"len({obj})"
            return f"{obj}{_key(node[2])}"
        if node[0] == "index":
            return f"{self._write_raw(node[1])}[{self.write(node[2], True)}]"
        if node[0] == "call":
            fn = node[1]
            if fn[0] != "member":
                raise Unsupported("calling a value has no Autoflow equivalent")
            return self._method(self._write_raw(fn[1]), fn[2], node[2])
        return self.write(node)


def _plus_terms(node: Node) -> list[Node]:
    if node[0] == "bin" and node[1] == "+":
        return [*_plus_terms(node[2]), *_plus_terms(node[3])]
    return [node]


def _is_text(node: Node) -> bool:
    return (node[0] == "lit" and isinstance(node[1], str)) or node[0] == "tmpl"


def _dotted(node: Node) -> str | None:
    if node[0] == "name":
        return str(node[1])
    if node[0] == "member":
        inner = _dotted(node[1])
        return f"{inner}.{node[2]}" if inner else None
    return None


def _literal_text(node: Node) -> str:
    if node[0] != "lit" or not isinstance(node[1], str):
        raise Unsupported("a node name must be written as text")
    return node[1]


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _key(key: str) -> str:
    return f".{key}" if _IDENT.match(key) else f"[{_literal(key)}]"


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value)


def literal(value: Any) -> str:
    """A JSON value as Autoflow expression text."""
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(str(k))}: {literal(v)}" for k, v in value.items()) + "}"
    return _literal(value)


# -- whole values --------------------------------------------------------------------------------


@dataclasses.dataclass
class Translated:
    """One n8n value in Autoflow form, or the reason it could not be translated."""

    value: Any
    expression: str | None = None  # the whole value as one bare expression, when it is one
    notes: list[str] = dataclasses.field(default_factory=list)
    failed: str | None = None


def escape_text(text: str) -> str:
    """Plain text that Autoflow reads as itself: ``${`` becomes ``$${``."""
    return text.replace("${", "$${")


def translate_value(value: Any, ctx: Context) -> Translated:
    """An n8n parameter value (``=`` template or plain) as an Autoflow ``with:`` value."""
    if not is_expression(value):
        if isinstance(value, str):
            return Translated(escape_text(value), expression=_literal(value))
        return Translated(value, expression=literal(value))
    text = str(value)[1:]
    translator = Translator(ctx)
    try:
        parts = parse_template(text)
        code = [translator.write(parse(p), True) for p in parts[1::2]]
    except Unsupported as exc:
        kept = "n8n expression not converted: " + escape_text(text)
        return Translated(kept, failed=str(exc))
    texts = parts[0::2]
    if len(code) == 1 and not texts[0].strip() and not texts[1].strip():
        return Translated(f"${{ {code[0]} }}", expression=code[0], notes=translator.notes)
    if not code:
        return Translated(escape_text(text), expression=_literal(text))
    out = []
    terms: list[str] = []
    for i, t in enumerate(texts):
        out.append(escape_text(t))
        if t:
            terms.append(_literal(t))
        if i < len(code):
            out.append(f"${{ {code[i]} }}")
            terms.append(f"str({code[i]})")
    return Translated("".join(out), expression=" + ".join(terms), notes=translator.notes)
