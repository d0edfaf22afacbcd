"""Service nodes: Slack, Send Email, Gmail, Postgres, Redis, Wait, and the SaaS services the
declarative catalogue covers (GitHub, Jira, HubSpot, Stripe, Trello, Discord, Mailchimp,
Airtable). Each mapper reads the node's ``resource``/``operation`` and parameters as n8n
exports them and returns a ``nodes.Mapped``; an operation with no Autoflow action becomes a
placeholder that says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from autoflow.webui.importers.n8n import expressions, nodes
from autoflow.webui.importers.n8n.nodes import Mapped, Scope, rl

Mapper = Callable[[dict[str, Any], Scope], Mapped]


def params_of(node: dict[str, Any]) -> dict[str, Any]:
    return node.get("parameters") or {}


def unsupported(node: dict[str, Any], what: str, todo: str | None = None) -> Mapped:
    return nodes.placeholder(
        node,
        f"{what} has no Autoflow action",
        todo or "rewrite this step with http.request against the service's API",
    )


def put(w: dict[str, Any], key: str, value: Any, s: Scope, field: str | None = None) -> None:
    if value is None or value == "":
        return
    w[key] = s.value(rl(value), field or key)


# -- Slack ---------------------------------------------------------------------------------------


def slack(node: dict[str, Any], s: Scope) -> Mapped:
    p = params_of(node)
    resource = p.get("resource", "message")
    operation = p.get("operation", "post")
    if resource != "message" or operation not in ("post", "update"):
        return unsupported(node, f"Slack {resource}.{operation}")
    out = Mapped("slack.postMessage", connector="slack")
    w = out.with_
    channel = p.get("channelId") if "channelId" in p else p.get("channel")
    if p.get("select") == "user":
        channel = p.get("user")
    put(w, "channel", channel, s)
    put(w, "text", p.get("text"), s)
    blocks = p.get("blocksUi")
    if blocks and p.get("messageType", "text") == "block":
        parsed = nodes._json_value(blocks, s, "blocks", out)
        w["blocks"] = parsed.get("blocks", parsed) if isinstance(parsed, dict) else parsed
    options = p.get("otherOptions") or {}
    thread = (options.get("thread_ts") or {}).get("replyValues", {}).get("thread_ts")
    put(w, "threadTs", thread, s)
    if operation == "update":
        out.uses = "slack.updateMessage"
        put(w, "ts", p.get("ts"), s)
        w.pop("threadTs", None)
    if "text" not in w and "blocks" not in w:
        w["text"] = ""
    return out


# -- e-mail --------------------------------------------------------------------------------------


def email_send(node: dict[str, Any], s: Scope) -> Mapped:
    p = params_of(node)
    options = p.get("options") or {}
    out = Mapped("email.send", connector="email")
    w = out.with_
    put(w, "from", p.get("fromEmail"), s)
    put(w, "to", p.get("toEmail"), s)
    put(w, "cc", p.get("ccEmail") or options.get("ccEmail"), s)
    put(w, "bcc", p.get("bccEmail") or options.get("bccEmail"), s)
    put(w, "replyTo", options.get("replyTo"), s)
    put(w, "subject", p.get("subject"), s)
    fmt = p.get("emailFormat", "both" if p.get("html") else "text")
    if fmt in ("text", "both"):
        put(w, "text", p.get("text"), s)
    if fmt in ("html", "both"):
        put(w, "html", p.get("html"), s)
    if p.get("attachments") or options.get("attachments"):
        out.status = "approximated"
        out.notes.append("attachments come from binary data in n8n; they are left out")
    if options.get("appendAttribution", True) and float(node.get("typeVersion") or 1) >= 2.1:
        out.notes.append("n8n's attribution footer is not added")
    return out


def gmail(node: dict[str, Any], s: Scope) -> Mapped:
    p = params_of(node)
    if p.get("resource", "message") != "message" or p.get("operation", "send") != "send":
        return unsupported(node, f"Gmail {p.get('resource')}.{p.get('operation')}")
    out = Mapped("email.send", connector="email", status="approximated")
    w = out.with_
    put(w, "to", p.get("sendTo"), s)
    put(w, "subject", p.get("subject"), s)
    body = "html" if p.get("emailType", "html") == "html" else "text"
    put(w, body, p.get("message"), s)
    opts = p.get("options") or {}
    put(w, "cc", opts.get("ccList"), s)
    put(w, "bcc", opts.get("bccList"), s)
    out.settings.update({"host": "smtp.gmail.com", "port": 587})
    out.notes.append(
        "Gmail's API became SMTP (email.send) through smtp.gmail.com: give the Integration the "
        "account as settings.from and username, and an app password as its password secret"
    )
    return out


# -- Postgres ------------------------------------------------------------------------------------


def _sql_with_params(sql: str, s: Scope, replacements: list[Any]) -> tuple[str, dict[str, Any]]:
    """n8n SQL (``$1`` replacements, ``{{ }}`` snippets) as static SQL and bound parameters."""
    params: dict[str, Any] = {}
    text = sql[1:] if expressions.is_expression(sql) else sql
    parts = expressions.parse_template(text) if "{{" in text else [text]
    out: list[str] = []
    for i in range(1, len(parts), 2):
        # '{{ x }}' written inside SQL quotes: the bound parameter takes the quotes' place.
        if parts[i - 1].endswith("'") and parts[i + 1].startswith("'"):
            parts[i - 1], parts[i + 1] = parts[i - 1][:-1], parts[i + 1][1:]
    for i, part in enumerate(parts):
        if i % 2:
            name = f"e{i // 2 + 1}"
            params[name] = s.value("={{" + part + "}}", f"sql {{{{{part.strip()}}}}}")
            out.append(f"%({name})s")
        else:
            escaped = part.replace("%", "%%")
            out.append(re.sub(r"\$(\d+)\b", lambda m: f"%(p{m.group(1)})s", escaped))
    for n, value in enumerate(replacements, start=1):
        params[f"p{n}"] = s.value(value, f"queryReplacement[{n}]")
    return "".join(out), params


def _replacements(raw: Any) -> list[Any]:
    if isinstance(raw, list):
        return raw
    if not raw:
        return []
    text = str(raw)
    if expressions.is_expression(text):
        body = text[1:]
        parts = expressions.parse_template(body)
        if all(not t.strip(" ,") for t in parts[0::2]):
            return ["={{" + code + "}}" for code in parts[1::2]]
    return [v.strip() for v in text.split(",")]


def _table(p: dict[str, Any]) -> str:
    schema = rl(p.get("schema", "public")) or "public"
    table = rl(p.get("table", ""))
    return f"{_ident(schema)}.{_ident(table)}" if schema != "public" else _ident(table)


def _ident(name: Any) -> str:
    text = str(name)
    return text if re.match(r"^[a-z_][a-z0-9_]*$", text) else '"' + text.replace('"', '""') + '"'


def postgres(node: dict[str, Any], s: Scope) -> Mapped:
    p = params_of(node)
    operation = p.get("operation", "executeQuery" if "query" in p else "insert")
    out = Mapped("postgres.query", connector="postgres", items=".rows")
    w = out.with_
    if operation == "executeQuery":
        sql, params = _sql_with_params(
            str(p.get("query", "")),
            s,
            _replacements(
                (p.get("options") or {}).get("queryReplacement")
                or p.get("additionalFields", {}).get("queryParams")
            ),
        )
        if any(name.startswith("e") for name in params):
            out.status = "approximated"
            out.notes.append(
                "expressions inside the SQL became bound parameters (%(eN)s): Autoflow never "
                "pastes values into SQL; a table or column name written by an expression "
                "must be made static"
            )
        w["sql"] = sql
        if params:
            w["params"] = params
        if not re.match(r"^\s*(select|with|show|values|table)\b", sql, re.I) and not re.search(
            r"\breturning\b", sql, re.I
        ):
            out.uses = "postgres.execute"
        return out
    table = _table(p)
    columns = _columns(p, s)
    if columns is None:
        return nodes.placeholder(
            node,
            f"Postgres {operation} maps the input's fields automatically, which needs the "
            "item's keys at run time",
            "list the columns (n8n: Columns → Map Each Column Manually) and import again, or "
            "write the INSERT in a postgres.execute step",
        )
    if operation == "insert" or operation == "upsert":
        names = ", ".join(_ident(c) for c in columns)
        values = ", ".join(f"%({_param(c)})s" for c in columns)
        sql = f"INSERT INTO {table} ({names}) VALUES ({values})"
        if operation == "upsert":
            keys = _match_columns(p)
            updates = ", ".join(
                f"{_ident(c)} = EXCLUDED.{_ident(c)}" for c in columns if c not in keys
            )
            sql += f" ON CONFLICT ({', '.join(_ident(k) for k in keys)}) DO UPDATE SET {updates}"
        w["sql"] = sql + " RETURNING *"
        w["params"] = {_param(c): v for c, v in columns.items()}
        out.uses = "postgres.execute"
        out.items, out.item = None, ".rows[0]"  # one row written per item, as n8n outputs it
        return out
    if operation == "update":
        keys = _match_columns(p)
        sets = ", ".join(f"{_ident(c)} = %({_param(c)})s" for c in columns if c not in keys)
        where = " AND ".join(f"{_ident(k)} = %({_param(k)})s" for k in keys)
        w["sql"] = f"UPDATE {table} SET {sets} WHERE {where} RETURNING *"
        w["params"] = {_param(c): v for c, v in columns.items()}
        out.uses = "postgres.execute"
        out.items, out.item = None, ".rows[0]"
        return out
    return unsupported(node, f"Postgres {operation}", "write the SQL in a postgres.query step")


def _param(column: str) -> str:
    return "c_" + re.sub(r"\W", "_", column)


def _match_columns(p: dict[str, Any]) -> list[str]:
    cols = p.get("columns")
    keys = (cols or {}).get("matchingColumns") if isinstance(cols, dict) else None
    if keys:
        return [str(k) for k in keys]
    key = p.get("updateKey") or p.get("columnToMatchOn") or "id"
    return [k.strip() for k in str(key).split(",")]


def _columns(p: dict[str, Any], s: Scope) -> dict[str, Any] | None:
    cols = p.get("columns")
    if isinstance(cols, str):  # v1: "name,email" read from the item's fields
        names = [c.strip() for c in cols.split(",") if c.strip()]
        return {c: s.value("={{ $json[" + repr(c) + "] }}", c) for c in names}
    if isinstance(cols, dict):
        if cols.get("mappingMode") == "autoMapInputData":
            schema = cols.get("schema") or []
            names = [str(c.get("id")) for c in schema if isinstance(c, dict) and c.get("id")]
            if not names:
                return None
            return {c: s.value("={{ $json[" + repr(c) + "] }}", c) for c in names}
        values = cols.get("value") or {}
        return {str(k): s.value(v, str(k)) for k, v in values.items()}
    return None


# -- Redis ---------------------------------------------------------------------------------------


def redis(node: dict[str, Any], s: Scope) -> Mapped:
    p = params_of(node)
    operation = p.get("operation", "info")
    out = Mapped("redis.get", connector="redis")
    w = out.with_
    if operation == "get":
        put(w, "key", p.get("key"), s)
        if p.get("keyType") in ("hash",):
            out.uses = "redis.hgetall"
        prop = p.get("propertyName", "propertyName")
        out.notes.append(
            f"the value is at output.value; n8n puts it under {prop!r} of the incoming item"
        )
        out.status = "approximated"
    elif operation == "set":
        out.uses = "redis.set"
        put(w, "key", p.get("key"), s)
        w["value"] = s.value(p.get("value", ""), "value")
        if p.get("expire") and p.get("ttl"):
            w["expireSeconds"] = p.get("ttl")
        if p.get("keyType") == "hash":
            out.uses = "redis.hset"
            w["fields"] = w.pop("value")
            w.pop("expireSeconds", None)
    elif operation == "delete":
        out.uses = "redis.delete"
        w["keys"] = [s.value(p.get("key", ""), "key")]
    elif operation == "incr":
        out.uses = "redis.incr"
        put(w, "key", p.get("key"), s)
        if p.get("expire"):
            out.status = "approximated"
            out.notes.append("the expiry after INCR is not set (redis.incr has none)")
    elif operation == "publish":
        out.uses = "redis.publish"
        put(w, "channel", p.get("channel"), s)
        w["message"] = s.value(p.get("messageData", ""), "message")
    elif operation == "push":
        out.uses = "redis.rpush" if p.get("tail") else "redis.lpush"
        put(w, "key", p.get("list"), s)
        w["values"] = [s.value(p.get("messageData", ""), "values")]
    elif operation == "pop":
        if p.get("tail"):
            return unsupported(node, "Redis pop from the tail (RPOP)")
        out.uses = "redis.lpop"
        put(w, "key", p.get("list"), s)
    else:
        return unsupported(
            node, f"Redis {operation}", "use the redis actions (autoflow connectors show redis)"
        )
    return out


# -- Wait ----------------------------------------------------------------------------------------

_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


def wait(node: dict[str, Any], s: Scope) -> Mapped:
    p = params_of(node)
    resume = p.get("resume", "timeInterval")
    if resume != "timeInterval":
        return nodes.placeholder(
            node,
            f"waiting for {resume} (a resume webhook, form or date) has no Autoflow action",
            "split the workflow in two: the second part started by a webhook trigger",
        )
    amount = p.get("amount", 1)
    unit = p.get("unit", "hours")
    if expressions.is_expression(amount) or unit not in _UNITS:
        return nodes.placeholder(node, "a computed wait time", "set a fixed duration in core.delay")
    seconds = float(amount) * _UNITS[unit]
    return Mapped("core.delay", {"duration": f"{seconds:g}s"}, passthrough=True)


MAPPERS: dict[str, Mapper] = {
    "n8n-nodes-base.slack": slack,
    "n8n-nodes-base.emailSend": email_send,
    "n8n-nodes-base.gmail": gmail,
    "n8n-nodes-base.postgres": postgres,
    "n8n-nodes-base.redis": redis,
    "n8n-nodes-base.wait": wait,
    "n8n-nodes-base.httpRequest": nodes.http_request,
    "n8n-nodes-base.set": nodes.set_fields,
}
