"""Node by node: what each n8n node type becomes (an Autoflow action and its ``with:``).

A mapper takes the node and a ``Scope`` (translates values in the node's place in the graph)
and returns a ``Mapped``: the action, its parameters, how its output holds the n8n items, and
what the report must say. Control nodes (IF, Switch, Filter, Merge, Split In Batches) and
triggers are handled by the converter (``convert``) with help from ``conditions`` here.
Services the declarative catalogue covers are in ``services``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any, Protocol

from autoflow.webui.importers.n8n import expressions
from autoflow.webui.importers.n8n.report import Status


class Scope(Protocol):
    """Translation of values at one node (``$json`` is its current item)."""

    def value(self, value: Any, field: str) -> Any:
        """A ``with:`` value: templates become ``${ }``, plain values stay (``${`` escaped)."""

    def expr(self, value: Any, field: str) -> str:
        """A bare expression for the value (literals as literals)."""

    def note(self, text: str) -> None:
        """Something the report must say about this node (makes it approximated)."""


@dataclasses.dataclass
class Mapped:
    """What one node becomes."""

    uses: str
    with_: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: Status = "converted"
    notes: list[str] = dataclasses.field(default_factory=list)
    todo: str | None = None
    item: str = ""  # the path in one output to the n8n item (".body" for http.request)
    items: str | None = None  # the path in one output to a list of n8n items (".rows")
    connector: str | None = None  # the Integration type the node's credentials become
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    comment: list[str] = dataclasses.field(default_factory=list)
    passthrough: bool = False  # the node hands its input items on unchanged
    own_credential: bool = False  # a credential was typed into the node: it needs an Integration


def placeholder(node: dict[str, Any], why: str, todo: str, code: str | None = None) -> Mapped:
    """A step that stops the run with a message saying what to rewrite (never silently wrong)."""
    comment = [f"PLACEHOLDER for n8n node {node.get('name')!r} ({node.get('type')}): {why}"]
    comment.append(f"To do: {todo}")
    if code:
        comment.append("The original code:")
        comment += [f"  {line}" for line in code.splitlines()]
    message = f"not converted from n8n: node {node.get('name')!r} ({node.get('type')}); {todo}"
    return Mapped(
        "core.fail",
        {"message": expressions.escape_text(message)[:2048]},
        status="not converted",
        notes=[why],
        todo=todo,
        comment=comment,
    )


def rl(value: Any) -> Any:
    """An n8n resource locator (``{__rl: true, value, mode}``) as its value."""
    if isinstance(value, dict) and value.get("__rl"):
        return value.get("value", "")
    return value


def _ms(value: Any) -> str | None:
    return f"{int(value)}ms" if isinstance(value, int | float) and value > 0 else None


def _pairs(params: Any, key: str = "parameters") -> list[dict[str, Any]]:
    if isinstance(params, dict):
        items = params.get(key) or params.get("parameter") or []
        return [p for p in items if isinstance(p, dict)]
    return []


# -- HTTP Request --------------------------------------------------------------------------------

_HTTP_AUTH = {
    "httpBasicAuth": "basic",
    "httpHeaderAuth": "header",
    "httpQueryAuth": "query",
    "httpBearerAuth": "bearer",
    "oAuth2Api": "oauth2",
    "oAuth1Api": None,
    "httpDigestAuth": None,
    "httpCustomAuth": None,
}


def http_request(node: dict[str, Any], s: Scope) -> Mapped:
    p = node.get("parameters") or {}
    version = float(node.get("typeVersion") or 1)
    out = Mapped("http.request", item=".body", connector="http")
    w = out.with_
    w["url"] = s.value(p.get("url", ""), "url")
    method = p.get("method") or p.get("requestMethod") or "GET"
    if method != "GET":
        w["method"] = method
    if version < 3:
        _http_v1(p, s, out)
    else:
        _http_v3(p, s, out)
    options = p.get("options") or {}
    if _ms(options.get("timeout")):
        w["timeout"] = _ms(options.get("timeout"))
    response = ((options.get("response") or {}).get("response")) or {}
    if response.get("neverError") or p.get("options", {}).get("ignoreResponseCode"):
        w["failOnStatus"] = False
    if response.get("fullResponse") or options.get("fullResponse"):
        out.item = ""
        out.notes.append("full response: the status is at .status (n8n: .statusCode)")
        out.status = "approximated"
    fmt = response.get("responseFormat") or p.get("responseFormat")
    if fmt == "file":
        out.status = "approximated"
        out.notes.append("a file response is read as text (no binary data in Autoflow)")
    elif fmt in ("text", "string"):
        w["responseType"] = "text"
    _literal_credentials(out)
    auth = p.get("authentication")
    if auth == "genericCredentialType":
        generic = p.get("genericAuthType")
        scheme = _HTTP_AUTH.get(str(generic))
        if scheme is None:
            out.status = "approximated"
            out.notes.append(f"{generic} is not an Autoflow http auth scheme; set one by hand")
        else:
            out.settings["auth"] = scheme
    elif auth == "predefinedCredentialType":
        cred = p.get("nodeCredentialType")
        out.settings["auth"] = "bearer"
        out.status = "approximated"
        out.notes.append(
            f"n8n's {cred} credential became an http Integration with bearer auth; check the "
            "scheme, or use the service's own connector"
        )
    return out


_SECRET_NAME = re.compile(
    r"(?i)^(authorization|proxy-authorization|cookie)$|api[-_]?key|token|secret|password"
)


def _literal_credentials(out: Mapped) -> None:
    """A credential typed into a header or the query is never written into the Workflow: it is
    left out, and the step gets an Integration whose auth sends it (the Secret holds it)."""
    for where, scheme in (("headers", "header"), ("query", "query")):
        values = out.with_.get(where)
        if not isinstance(values, dict):
            continue
        for name in list(values):
            value = values[name]
            if not _SECRET_NAME.search(str(name)) or not isinstance(value, str) or "${" in value:
                continue
            del values[name]
            out.own_credential = True
            out.status = "approximated"
            if "auth" in out.settings:
                out.notes.append(
                    f"{where} {name!r} held a credential typed into the node: it is left out; "
                    "the Integration sends one credential only, so this one needs a second "
                    "Integration (or a header expression reading a Secret by hand)"
                )
                continue
            if name.lower() == "authorization" and value.lower().startswith("bearer "):
                out.settings.setdefault("auth", "bearer")
                key = "token"
            else:
                out.settings.setdefault("auth", scheme)
                out.settings.setdefault(f"{scheme}Name", name)
                key = "apiKey"
            out.notes.append(
                f"{where} {name!r} held a credential typed into the node: it is left out of the "
                f"Workflow; put it in the Integration's Secret (key {key})"
            )
        if not values:
            del out.with_[where]


def _keypairs(items: list[dict[str, Any]], s: Scope, field: str) -> dict[str, Any]:
    return {
        str(i.get("name", "")): s.value(i.get("value", ""), f"{field}.{i.get('name', '')}")
        for i in items
        if i.get("name")
    }


def _http_v1(p: dict[str, Any], s: Scope, out: Mapped) -> None:
    w = out.with_
    if p.get("jsonParameters"):
        body = p.get("bodyParametersJson")
        if body:
            w["json"] = _json_value(body, s, "json", out)
        headers = p.get("headerParametersJson")
        if headers:
            w["headers"] = _json_value(headers, s, "headers", out)
        query = p.get("queryParametersJson")
        if query:
            w["query"] = _json_value(query, s, "query", out)
        return
    if _pairs(p.get("bodyParametersUi")):
        w["json"] = _keypairs(_pairs(p.get("bodyParametersUi")), s, "json")
    if _pairs(p.get("headerParametersUi")):
        w["headers"] = _keypairs(_pairs(p.get("headerParametersUi")), s, "headers")
    if _pairs(p.get("queryParametersUi")):
        w["query"] = _keypairs(_pairs(p.get("queryParametersUi")), s, "query")


def _http_v3(p: dict[str, Any], s: Scope, out: Mapped) -> None:
    w = out.with_
    if p.get("sendQuery"):
        if p.get("specifyQuery") == "json":
            w["query"] = _json_value(p.get("jsonQuery", "{}"), s, "query", out)
        else:
            w["query"] = _keypairs(_pairs(p.get("queryParameters")), s, "query")
    if p.get("sendHeaders"):
        if p.get("specifyHeaders") == "json":
            w["headers"] = _json_value(p.get("jsonHeaders", "{}"), s, "headers", out)
        else:
            w["headers"] = _keypairs(_pairs(p.get("headerParameters")), s, "headers")
    if not p.get("sendBody"):
        return
    content = p.get("contentType") or "json"
    specify = p.get("specifyBody") or "keypair"
    if content == "json":
        if specify == "json":
            w["json"] = _json_value(p.get("jsonBody", "{}"), s, "json", out)
        else:
            w["json"] = _keypairs(_pairs(p.get("bodyParameters")), s, "json")
    elif content in ("form-urlencoded", "multipart-form-data"):
        if content == "multipart-form-data":
            out.status = "approximated"
            out.notes.append("a multipart body is sent as a form (no file parts)")
        w["form"] = _keypairs(_pairs(p.get("bodyParameters")), s, "form")
    elif content == "raw":
        w["body"] = s.value(p.get("body", ""), "body")
        if p.get("rawContentType"):
            w.setdefault("headers", {})["Content-Type"] = p["rawContentType"]
    else:
        out.status = "approximated"
        out.notes.append(f"a {content} body is not sent: Autoflow steps carry no binary data")


_MARK = "__n8n_expr_{}__"


def _json_value(text: Any, s: Scope, field: str, out: Mapped) -> Any:
    """A JSON parameter: plain JSON, one whole expression, or JSON text with ``{{ }}`` in it."""
    if isinstance(text, dict | list):
        return _deep(text, s, field)
    raw = str(text)
    if not expressions.is_expression(raw):
        try:
            return _deep(json.loads(raw), s, field)
        except ValueError:
            return s.value(raw, field)
    body = raw[1:]
    try:
        parts = expressions.parse_template(body)
    except expressions.Unsupported:
        return s.value(raw, field)
    if len(parts) == 3 and not parts[0].strip() and not parts[2].strip():
        return s.value(raw, field)
    # JSON text with snippets: mark them, read the JSON, put the snippets back as ${ }.
    marked = "".join(part if i % 2 == 0 else _MARK.format(i // 2) for i, part in enumerate(parts))
    marked = _quote_outside_strings(marked)
    try:
        data = json.loads(marked)
    except ValueError:
        out.status = "approximated"
        out.notes.append(f"{field}: the JSON text with expressions is sent as text")
        return s.value(raw, field)
    snippets = parts[1::2]

    def back(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: back(v) for k, v in value.items()}
        if isinstance(value, list):
            return [back(v) for v in value]
        if isinstance(value, str) and "__n8n_expr_" in value:
            template = re.sub(
                r"__n8n_expr_(\d+)__", lambda m: "{{" + snippets[int(m.group(1))] + "}}", value
            )
            return s.value("=" + template, field)
        return value

    return back(data)


def _quote_outside_strings(text: str) -> str:
    """Markers that stand for a whole JSON value (not inside a JSON string) get quotes, so the
    text reads as JSON; ``back`` turns such a string into a typed ``${ }`` again."""
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                out.append(text[i : i + 2])
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif text.startswith("__n8n_expr_", i):
            end = text.index("__", i + len("__n8n_expr_")) + 2
            out.append('"' + text[i:end] + '"')
            i = end
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _deep(value: Any, s: Scope, field: str) -> Any:
    if isinstance(value, dict):
        return {k: _deep(v, s, f"{field}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v, s, f"{field}[{i}]") for i, v in enumerate(value)]
    return s.value(value, field)


# -- Set / Edit Fields ---------------------------------------------------------------------------


def set_fields(node: dict[str, Any], s: Scope) -> Mapped:
    p = node.get("parameters") or {}
    version = float(node.get("typeVersion") or 1)
    out = Mapped("core.set")
    values: dict[str, Any] = {}
    keep_others = False
    if version >= 3:
        if p.get("mode") == "raw":
            raw = p.get("jsonOutput", "{}")
            data = _json_value(raw, s, "values", out)
            if isinstance(data, dict):
                values = data
            else:
                return Mapped("core.transform", {"value": data}, notes=out.notes, status=out.status)
        assignments = (p.get("assignments") or {}).get("assignments") or []
        for a in assignments:
            values[str(a.get("name"))] = _typed(a.get("value"), a.get("type"), s, a.get("name"))
        for f in (p.get("fields") or {}).get("values") or []:  # v3.0-3.2
            kind = f.get("type", "stringValue")
            raw_value = f.get(kind if kind.endswith("Value") else f"{kind}Value", "")
            values[str(f.get("name"))] = _typed(
                raw_value, kind.replace("Value", ""), s, f.get("name")
            )
        keep_others = bool(p.get("includeOtherFields")) or p.get("include") == "all"
    else:
        groups = p.get("values") or {}
        for kind in ("string", "number", "boolean"):
            for v in groups.get(kind) or []:
                values[str(v.get("name"))] = _typed(v.get("value"), kind, s, v.get("name"))
        keep_others = not p.get("keepOnlySet", False)
    dot = (p.get("options") or {}).get("dotNotation", True)
    out.with_["values"] = _nest(values) if dot else values
    if keep_others:
        out.status = "approximated"
        out.notes.append(
            "n8n also keeps the item's other fields; here the step outputs only the fields "
            "it sets (read the others from the step before)"
        )
    return out


def _typed(value: Any, kind: Any, s: Scope, name: Any) -> Any:
    field = f"values.{name}"
    if expressions.is_expression(value):
        return s.value(value, field)
    if kind == "number" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if kind == "boolean" and isinstance(value, str):
        return value.strip().lower() == "true"
    if kind in ("object", "array") and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return s.value(value, field)


def _nest(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return out


# -- conditions (IF, Filter, Switch) -------------------------------------------------------------

_V2_OPS: dict[str, Callable[[str, str], str]] = {
    "equals": lambda a, b: f"{a} == {b}",
    "notEquals": lambda a, b: f"{a} != {b}",
    "contains": lambda a, b: f"contains({a}, {b})",
    "notContains": lambda a, b: f"not contains({a}, {b})",
    "startsWith": lambda a, b: f"startsWith({a}, {b})",
    "notStartsWith": lambda a, b: f"not startsWith({a}, {b})",
    "endsWith": lambda a, b: f"endsWith({a}, {b})",
    "notEndsWith": lambda a, b: f"not endsWith({a}, {b})",
    "gt": lambda a, b: f"{a} > {b}",
    "gte": lambda a, b: f"{a} >= {b}",
    "lt": lambda a, b: f"{a} < {b}",
    "lte": lambda a, b: f"{a} <= {b}",
    "after": lambda a, b: f"{a} > {b}",
    "before": lambda a, b: f"{a} < {b}",
    "true": lambda a, b: f"{a} == true",
    "false": lambda a, b: f"{a} == false",
    "exists": lambda a, b: f"has({a})",
    "notExists": lambda a, b: f"not has({a})",
    "empty": lambda a, b: f"default({a}, null) in [null, '', [], {{}}]",
    "notEmpty": lambda a, b: f"default({a}, null) not in [null, '', [], {{}}]",
    "lengthEquals": lambda a, b: f"len({a}) == {b}",
    "lengthNotEquals": lambda a, b: f"len({a}) != {b}",
    "lengthGt": lambda a, b: f"len({a}) > {b}",
    "lengthLt": lambda a, b: f"len({a}) < {b}",
    "lengthGte": lambda a, b: f"len({a}) >= {b}",
    "lengthLte": lambda a, b: f"len({a}) <= {b}",
}
_V1_OPS = {
    "equal": "equals",
    "notEqual": "notEquals",
    "smaller": "lt",
    "smallerEqual": "lte",
    "larger": "gt",
    "largerEqual": "gte",
    "contains": "contains",
    "notContains": "notContains",
    "startsWith": "startsWith",
    "notStartsWith": "notStartsWith",
    "endsWith": "endsWith",
    "notEndsWith": "notEndsWith",
    "isEmpty": "empty",
    "isNotEmpty": "notEmpty",
    "exists": "exists",
    "notExists": "notExists",
}


def _grouped(expr: str) -> str:
    """The expression in parentheses unless it is one name, literal or call."""
    bare = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", expr)
    return f"({expr})" if " " in bare else expr


def _operand(value: Any, kind: str, s: Scope, field: str) -> str:
    return _grouped(_operand_text(value, kind, s, field))


def _operand_text(value: Any, kind: str, s: Scope, field: str) -> str:
    if not expressions.is_expression(value) and value is not None and value != "":
        if kind == "number":
            try:
                return json.dumps(json.loads(str(value)))
            except ValueError:
                pass
        if kind == "boolean":
            return "true" if str(value).lower() == "true" else "false"
    return s.expr(value, field)


def filter_condition(conditions: Any, s: Scope, field: str = "conditions") -> str:
    """The v2 filter structure (IF v2, Filter v2, Switch v3 rules) as one expression."""
    conditions = conditions or {}
    options = conditions.get("options") or {}
    insensitive = options.get("caseSensitive") is False
    parts: list[str] = []
    for i, c in enumerate(conditions.get("conditions") or []):
        op = c.get("operator") or {}
        kind = str(op.get("type", "string"))
        operation = str(op.get("operation", "equals"))
        if operation in ("regex", "notRegex"):
            raise expressions.Unsupported("regular expression conditions have no equivalent")
        if operation not in _V2_OPS:
            raise expressions.Unsupported(f"the {kind} condition {operation!r} is not known")
        left = _operand(c.get("leftValue"), kind, s, f"{field}[{i}].leftValue")
        right = _operand(c.get("rightValue"), kind, s, f"{field}[{i}].rightValue")
        if insensitive and kind == "string":
            left, right = f"lower({left})", f"lower({right})"
        parts.append(f"({_V2_OPS[operation](left, right)})")
    if not parts:
        return "true"
    joiner = " or " if conditions.get("combinator") == "or" else " and "
    return joiner.join(parts)


def if_condition(node: dict[str, Any], s: Scope) -> str:
    """An IF (v1 or v2) or Filter node's condition."""
    p = node.get("parameters") or {}
    version = float(node.get("typeVersion") or 1)
    if version >= 2:
        return filter_condition(p.get("conditions"), s)
    parts: list[str] = []
    for kind, items in (p.get("conditions") or {}).items():
        for i, c in enumerate(items or []):
            operation = _V1_OPS.get(str(c.get("operation", "equal")))
            if str(c.get("operation")) == "regex":
                raise expressions.Unsupported("regular expression conditions have no equivalent")
            if operation is None:
                raise expressions.Unsupported(f"the {kind} condition {c.get('operation')!r}")
            left = _operand(c.get("value1"), kind, s, f"conditions.{kind}[{i}].value1")
            right = _operand(c.get("value2"), kind, s, f"conditions.{kind}[{i}].value2")
            parts.append(f"({_V2_OPS[operation](left, right)})")
    if not parts:
        return "true"
    return (" or " if p.get("combineOperation") == "any" else " and ").join(parts)


def switch_rules(node: dict[str, Any], s: Scope) -> tuple[list[tuple[int, str]], int | None]:
    """A Switch node's (output index, condition) rules and its fallback output (None: none)."""
    p = node.get("parameters") or {}
    version = float(node.get("typeVersion") or 1)
    if p.get("mode") == "expression":
        count = int(p.get("numberOutputs", 4))
        chosen = _grouped(s.expr(p.get("output"), "output"))
        return [(k, f"{chosen} == {k}") for k in range(count)], None
    if version >= 3:
        rules = (p.get("rules") or {}).get("values") or []
        out = [
            (k, filter_condition(r.get("conditions"), s, f"rules[{k}]"))
            for k, r in enumerate(rules)
        ]
        fallback = (p.get("options") or {}).get("fallbackOutput", "none")
        if fallback == "extra":
            return out, len(rules)
        return out, int(fallback) if isinstance(fallback, int) else None
    kind = str(p.get("dataType", "number"))
    value = _operand(p.get("value1"), kind, s, "value1")
    out = []
    for i, r in enumerate((p.get("rules") or {}).get("rules") or []):
        operation = _V1_OPS.get(str(r.get("operation", "equal")))
        if operation is None:
            raise expressions.Unsupported(f"the switch rule {r.get('operation')!r}")
        right = _operand(r.get("value2"), kind, s, f"rules[{i}].value2")
        out.append((int(r.get("output", i)), _V2_OPS[operation](value, right)))
    fallback = p.get("fallbackOutput", -1)
    return out, int(fallback) if isinstance(fallback, int) and fallback >= 0 else None
