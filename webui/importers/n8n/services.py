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


def _p(node: dict[str, Any]) -> dict[str, Any]:
    return node.get("parameters") or {}


def _unsupported(node: dict[str, Any], what: str, todo: str | None = None) -> Mapped:
    return nodes.placeholder(
        node,
        f"{what} has no Autoflow action",
        todo or "rewrite this step with http.request against the service's API",
    )


def _set(w: dict[str, Any], key: str, value: Any, s: Scope, field: str | None = None) -> None:
    if value is None or value == "":
        return
    w[key] = s.value(rl(value), field or key)


# -- Slack ---------------------------------------------------------------------------------------


def slack(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    resource = p.get("resource", "message")
    operation = p.get("operation", "post")
    if resource != "message" or operation not in ("post", "update"):
        return _unsupported(node, f"Slack {resource}.{operation}")
    out = Mapped("slack.postMessage", connector="slack")
    w = out.with_
    channel = p.get("channelId") if "channelId" in p else p.get("channel")
    if p.get("select") == "user":
        channel = p.get("user")
    _set(w, "channel", channel, s)
    _set(w, "text", p.get("text"), s)
    blocks = p.get("blocksUi")
    if blocks and p.get("messageType", "text") == "block":
        parsed = nodes._json_value(blocks, s, "blocks", out)
        w["blocks"] = parsed.get("blocks", parsed) if isinstance(parsed, dict) else parsed
    options = p.get("otherOptions") or {}
    thread = (options.get("thread_ts") or {}).get("replyValues", {}).get("thread_ts")
    _set(w, "threadTs", thread, s)
    if operation == "update":
        out.uses = "slack.updateMessage"
        _set(w, "ts", p.get("ts"), s)
        w.pop("threadTs", None)
    if "text" not in w and "blocks" not in w:
        w["text"] = ""
    return out


# -- e-mail --------------------------------------------------------------------------------------


def email_send(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    options = p.get("options") or {}
    out = Mapped("email.send", connector="email")
    w = out.with_
    _set(w, "from", p.get("fromEmail"), s)
    _set(w, "to", p.get("toEmail"), s)
    _set(w, "cc", p.get("ccEmail") or options.get("ccEmail"), s)
    _set(w, "bcc", p.get("bccEmail") or options.get("bccEmail"), s)
    _set(w, "replyTo", options.get("replyTo"), s)
    _set(w, "subject", p.get("subject"), s)
    fmt = p.get("emailFormat", "both" if p.get("html") else "text")
    if fmt in ("text", "both"):
        _set(w, "text", p.get("text"), s)
    if fmt in ("html", "both"):
        _set(w, "html", p.get("html"), s)
    if p.get("attachments") or options.get("attachments"):
        out.status = "approximated"
        out.notes.append("attachments come from binary data in n8n; they are left out")
    if options.get("appendAttribution", True) and float(node.get("typeVersion") or 1) >= 2.1:
        out.notes.append("n8n's attribution footer is not added")
    return out


def gmail(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    if p.get("resource", "message") != "message" or p.get("operation", "send") != "send":
        return _unsupported(node, f"Gmail {p.get('resource')}.{p.get('operation')}")
    out = Mapped("email.send", connector="email", status="approximated")
    w = out.with_
    _set(w, "to", p.get("sendTo"), s)
    _set(w, "subject", p.get("subject"), s)
    body = "html" if p.get("emailType", "html") == "html" else "text"
    _set(w, body, p.get("message"), s)
    opts = p.get("options") or {}
    _set(w, "cc", opts.get("ccList"), s)
    _set(w, "bcc", opts.get("bccList"), s)
    out.notes.append(
        "Gmail's API became SMTP (email.send): give the Integration smtp.gmail.com and an app "
        "password"
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
    p = _p(node)
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
    return _unsupported(node, f"Postgres {operation}", "write the SQL in a postgres.query step")


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
    p = _p(node)
    operation = p.get("operation", "info")
    out = Mapped("redis.get", connector="redis")
    w = out.with_
    if operation == "get":
        _set(w, "key", p.get("key"), s)
        if p.get("keyType") in ("hash",):
            out.uses = "redis.hgetall"
        prop = p.get("propertyName", "propertyName")
        out.notes.append(
            f"the value is at output.value; n8n puts it under {prop!r} of the incoming item"
        )
        out.status = "approximated"
    elif operation == "set":
        out.uses = "redis.set"
        _set(w, "key", p.get("key"), s)
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
        _set(w, "key", p.get("key"), s)
        if p.get("expire"):
            out.status = "approximated"
            out.notes.append("the expiry after INCR is not set (redis.incr has none)")
    elif operation == "publish":
        out.uses = "redis.publish"
        _set(w, "channel", p.get("channel"), s)
        w["message"] = s.value(p.get("messageData", ""), "message")
    elif operation == "push":
        out.uses = "redis.rpush" if p.get("tail") else "redis.lpush"
        _set(w, "key", p.get("list"), s)
        w["values"] = [s.value(p.get("messageData", ""), "values")]
    elif operation == "pop":
        if p.get("tail"):
            return _unsupported(node, "Redis pop from the tail (RPOP)")
        out.uses = "redis.lpop"
        _set(w, "key", p.get("list"), s)
    else:
        return _unsupported(
            node, f"Redis {operation}", "use the redis actions (autoflow connectors show redis)"
        )
    return out


# -- Wait ----------------------------------------------------------------------------------------

_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


def wait(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
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


# -- the declarative catalogue -------------------------------------------------------------------


def _collection(p: dict[str, Any], key: str) -> dict[str, Any]:
    value = p.get(key)
    return value if isinstance(value, dict) else {}


def github(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    resource, operation = p.get("resource", "issue"), p.get("operation", "create")
    out = Mapped("github.create_issue", connector="github")
    w = out.with_
    _set(w, "owner", p.get("owner"), s)
    _set(w, "repo", p.get("repository"), s)
    if (resource, operation) == ("issue", "create"):
        _set(w, "title", p.get("title"), s)
        _set(w, "body", p.get("body"), s)
        labels = [x.get("label") for x in p.get("labels") or [] if isinstance(x, dict)]
        assignees = [x.get("assignee") for x in p.get("assignees") or [] if isinstance(x, dict)]
        if labels:
            w["labels"] = [s.value(x, "labels") for x in labels]
        if assignees:
            w["assignees"] = [s.value(x, "assignees") for x in assignees]
    elif (resource, operation) == ("issue", "createComment"):
        out.uses = "github.add_comment"
        w["issueNumber"] = _number(p.get("issueNumber"), s, "issueNumber")
        _set(w, "body", p.get("body"), s)
    elif (resource, operation) == ("issue", "edit"):
        out.uses = "github.update_issue"
        w["issueNumber"] = _number(p.get("issueNumber"), s, "issueNumber")
        fields = _collection(p, "editFields")
        for key in ("title", "body", "state"):
            _set(w, key, fields.get(key), s)
    else:
        return _unsupported(node, f"GitHub {resource}.{operation}")
    return out


def _number(value: Any, s: Scope, field: str) -> Any:
    if expressions.is_expression(value):
        return s.value(value, field)
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def jira(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    resource, operation = p.get("resource", "issue"), p.get("operation", "create")
    out = Mapped("jira.create_issue", connector="jira")
    w = out.with_
    if (resource, operation) == ("issue", "create"):
        _set(w, "projectKey", p.get("project"), s)
        _set(w, "summary", p.get("summary"), s)
        _set(w, "issueType", p.get("issueType"), s)
        extra = _collection(p, "additionalFields")
        _set(w, "description", extra.get("description"), s)
        if extra.get("labels"):
            w["labels"] = [s.value(x, "labels") for x in extra["labels"]]
        _set(w, "priority", extra.get("priority"), s)
        out.status = "approximated"
        out.notes.append(
            "n8n stores the project and issue type as ids; check that projectKey and issueType "
            "hold the key and the type name"
        )
    elif (resource, operation) == ("issueComment", "add"):
        out.uses = "jira.add_comment"
        _set(w, "issueKey", p.get("issueKey"), s)
        _set(w, "text", p.get("comment"), s)
    elif (resource, operation) == ("issue", "transitions"):
        out.uses = "jira.get_transitions"
        _set(w, "issueKey", p.get("issueKey"), s)
    else:
        return _unsupported(node, f"Jira {resource}.{operation}")
    out.settings["site"] = "CHANGE-ME"
    return out


def hubspot(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    resource, operation = p.get("resource", "contact"), p.get("operation", "upsert")
    out = Mapped("hubspot.create_contact", connector="hubspot")
    w = out.with_
    extra = _collection(p, "additionalFields")
    if resource == "contact" and operation in ("upsert", "create"):
        _set(w, "email", p.get("email"), s)
        for ours, theirs in (
            ("firstName", "firstName"),
            ("lastName", "lastName"),
            ("phone", "phoneNumber"),
            ("company", "companyName"),
        ):
            _set(w, ours, extra.get(theirs), s)
        if operation == "upsert":
            out.status = "approximated"
            out.notes.append("n8n's upsert (create or update by e-mail) became create_contact")
    elif (resource, operation) == ("deal", "create"):
        out.uses = "hubspot.create_deal"
        _set(w, "dealStage", p.get("stage"), s)
        _set(w, "dealName", extra.get("dealName"), s)
        if extra.get("amount") not in (None, ""):
            w["amount"] = _number(extra.get("amount"), s, "amount")
        _set(w, "pipeline", extra.get("pipeline"), s)
        _set(w, "closeDate", extra.get("closeDate"), s)
    else:
        return _unsupported(node, f"HubSpot {resource}.{operation}")
    return out


def stripe(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    resource, operation = p.get("resource", "balance"), p.get("operation", "get")
    out = Mapped("stripe.create_customer", connector="stripe")
    w = out.with_
    extra = _collection(p, "additionalFields")
    if (resource, operation) == ("customer", "create"):
        _set(w, "name", p.get("name"), s)
        for key in ("email", "phone", "description"):
            _set(w, key, extra.get(key), s)
        meta = (extra.get("metadata") or {}).get("metadataProperties") or []
        if meta:
            w["metadata"] = {m.get("key"): s.value(m.get("value"), "metadata") for m in meta}
    elif (resource, operation) == ("charge", "getAll"):
        out.uses = "stripe.list_charges"
        out.items = ".items"
    else:
        return _unsupported(node, f"Stripe {resource}.{operation}")
    return out


def trello(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    if (p.get("resource", "card"), p.get("operation", "create")) != ("card", "create"):
        return _unsupported(node, f"Trello {p.get('resource')}.{p.get('operation')}")
    out = Mapped("trello.create_card", connector="trello")
    _set(out.with_, "idList", p.get("listId"), s)
    _set(out.with_, "name", p.get("name"), s)
    _set(out.with_, "desc", p.get("description"), s)
    return out


def discord(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    out = Mapped("discord.send_message", connector="discord")
    _set(out.with_, "content", p.get("content") or p.get("text"), s)
    opts = _collection(p, "options")
    _set(out.with_, "username", opts.get("username"), s)
    return out


def mailchimp(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    if (p.get("resource", "member"), p.get("operation", "create")) != ("member", "create"):
        return _unsupported(node, f"Mailchimp {p.get('resource')}.{p.get('operation')}")
    out = Mapped("mailchimp.add_member", connector="mailchimp")
    w = out.with_
    _set(w, "listId", p.get("list"), s)
    _set(w, "email", p.get("email"), s)
    _set(w, "status", p.get("status"), s)
    merge = (_collection(p, "mergeFieldsUi").get("mergeFieldsValues")) or []
    if merge:
        w["mergeFields"] = {m.get("name"): s.value(m.get("value"), "mergeFields") for m in merge}
    return out


def airtable(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    operation = p.get("operation", "append")
    if operation not in ("append", "create"):
        return _unsupported(node, f"Airtable {operation}")
    out = Mapped("airtable.create_record", connector="airtable")
    w = out.with_
    _set(w, "baseId", p.get("base") or p.get("application"), s)
    _set(w, "table", p.get("table"), s)
    columns = p.get("columns")
    if isinstance(columns, dict) and columns.get("value"):
        w["fields"] = {k: s.value(v, k) for k, v in columns["value"].items()}
    else:
        return nodes.placeholder(
            node,
            "Airtable append sends every field of the item, known only at run time",
            "map the columns by hand (n8n: Map Each Column Manually) and import again",
        )
    return out


def _addresses(value: Any, s: Scope, field: str) -> list[dict[str, Any]]:
    """n8n's comma-separated addresses as SendGrid's ``[{email}]`` list (an expression: one)."""
    if expressions.is_expression(value):
        return [{"email": s.value(value, field)}]
    return [{"email": e.strip()} for e in str(value or "").split(",") if e.strip()]


def sendgrid(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    resource = p.get("resource", "contact")
    operation = p.get("operation", "send" if resource == "mail" else "upsert")
    if (resource, operation) != ("mail", "send"):
        return _unsupported(node, f"SendGrid {resource}.{operation}")
    out = Mapped("sendgrid.send_mail", connector="sendgrid")
    w = out.with_
    extra = _collection(p, "additionalFields")
    w["to"] = _addresses(p.get("toEmail"), s, "to")
    _set(w, "fromEmail", p.get("fromEmail"), s)
    _set(w, "fromName", p.get("fromName"), s)
    _set(w, "subject", p.get("subject"), s)
    body = "html" if p.get("contentType") == "text/html" else "text"
    _set(w, body, p.get("contentValue"), s)
    if extra.get("ccEmail"):
        w["cc"] = _addresses(extra["ccEmail"], s, "cc")
    if extra.get("bccEmail"):
        w["bcc"] = _addresses(extra["bccEmail"], s, "bcc")
    _set(w, "templateId", p.get("templateId") or extra.get("templateId"), s)
    return out


def pipedrive(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    resource, operation = p.get("resource", "deal"), p.get("operation", "create")
    extra = _collection(p, "additionalFields")
    out = Mapped("pipedrive.create_deal", connector="pipedrive")
    w = out.with_
    if (resource, operation) == ("deal", "create"):
        _set(w, "title", p.get("title"), s)
        if extra.get("value") not in (None, ""):
            w["value"] = _number(extra.get("value"), s, "value")
        _set(w, "currency", extra.get("currency"), s)
        for ours, theirs in (
            ("personId", "person_id"),
            ("orgId", "org_id"),
            ("stageId", "stage_id"),
        ):
            if extra.get(theirs) not in (None, ""):
                w[ours] = _number(extra.get(theirs), s, ours)
        _set(w, "status", extra.get("status"), s)
    elif (resource, operation) == ("person", "create"):
        out.uses = "pipedrive.create_person"
        _set(w, "name", p.get("name"), s)
        for key in ("email", "phone"):
            value = extra.get(key)
            _set(w, key, value[0] if isinstance(value, list) and value else value, s)
    else:
        return _unsupported(node, f"Pipedrive {resource}.{operation}")
    return out


def notion(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    if (p.get("resource", "block"), p.get("operation", "append")) != ("databasePage", "create"):
        return _unsupported(node, f"Notion {p.get('resource')}.{p.get('operation')}")
    out = Mapped("notion.create_page", connector="notion")
    w = out.with_
    _set(w, "databaseId", p.get("databaseId"), s)
    properties: dict[str, Any] = {}
    if p.get("title"):
        properties["Name"] = {"title": [{"text": {"content": s.value(p["title"], "title")}}]}
    for prop in (_collection(p, "propertiesUi").get("propertyValues")) or []:
        key = str(prop.get("key", "")).split("|")[0]
        kind = str(prop.get("key", "|rich_text")).split("|")[-1]
        if kind == "title":
            properties[key] = {"title": [{"text": {"content": s.value(prop.get("title"), key)}}]}
        elif kind == "rich_text":
            text = s.value(prop.get("textContent"), key)
            properties[key] = {"rich_text": [{"text": {"content": text}}]}
        elif kind == "number":
            properties[key] = {"number": _number(prop.get("numberValue"), s, key)}
        elif kind == "select":
            properties[key] = {"select": {"name": s.value(prop.get("selectValue"), key)}}
        elif kind == "checkbox":
            properties[key] = {"checkbox": bool(prop.get("checkboxValue"))}
        else:
            out.status = "approximated"
            out.notes.append(f"the {kind} property {key!r} is left out: add it in Notion's shape")
    w["properties"] = properties
    if "Name" in properties and "title" in p:
        out.notes.append("the page title went to the property 'Name': check the title's name")
        out.status = "approximated"
    return out


def asana(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    if (p.get("resource", "task"), p.get("operation", "create")) != ("task", "create"):
        return _unsupported(node, f"Asana {p.get('resource')}.{p.get('operation')}")
    out = Mapped("asana.create_task", connector="asana")
    w = out.with_
    extra = _collection(p, "otherProperties")
    _set(w, "name", p.get("name"), s)
    projects = extra.get("projects")
    if projects:
        _set(w, "projectId", projects[0] if isinstance(projects, list) else projects, s)
    else:
        _set(w, "workspaceId", p.get("workspace"), s)
    _set(w, "notes", extra.get("notes"), s)
    _set(w, "assignee", extra.get("assignee"), s)
    _set(w, "dueOn", extra.get("due_on"), s)
    return out


_SALESFORCE_FIELDS = {
    "firstname": "FirstName",
    "lastname": "LastName",
    "email": "Email",
    "phone": "Phone",
    "company": "Company",
    "title": "Title",
    "description": "Description",
    "leadSource": "LeadSource",
}


def salesforce(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    resource, operation = p.get("resource", "lead"), p.get("operation", "create")
    if operation != "create" or resource not in ("lead", "contact", "account"):
        return _unsupported(node, f"Salesforce {resource}.{operation}")
    out = Mapped("salesforce.create_record", connector="salesforce")
    fields: dict[str, Any] = {}
    for key, value in {**p, **_collection(p, "additionalFields")}.items():
        name = _SALESFORCE_FIELDS.get(key) or ("Name" if key == "name" else None)
        if name and value not in (None, ""):
            fields[name] = s.value(value, name)
    out.with_ = {"object": resource.capitalize(), "fields": fields}
    return out


def dropbox(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    if (p.get("resource", "file"), p.get("operation", "upload")) != ("folder", "create"):
        return _unsupported(node, f"Dropbox {p.get('resource')}.{p.get('operation')}")
    out = Mapped("dropbox.create_folder", connector="dropbox")
    _set(out.with_, "path", p.get("path"), s)
    return out


def teams(node: dict[str, Any], s: Scope) -> Mapped:
    p = _p(node)
    if (p.get("resource", "channel"), p.get("operation", "create")) not in (
        ("channelMessage", "create"),
        ("chatMessage", "create"),
    ):
        return _unsupported(node, f"Microsoft Teams {p.get('resource')}.{p.get('operation')}")
    out = Mapped("teams.post_message", connector="teams", status="approximated")
    _set(out.with_, "text", p.get("message"), s)
    out.notes.append(
        "n8n posts through Microsoft Graph to a team and channel; Autoflow posts to the "
        "channel's incoming webhook (the Integration's webhookUrl)"
    )
    return out


MAPPERS: dict[str, Mapper] = {
    "n8n-nodes-base.slack": slack,
    "n8n-nodes-base.emailSend": email_send,
    "n8n-nodes-base.gmail": gmail,
    "n8n-nodes-base.postgres": postgres,
    "n8n-nodes-base.redis": redis,
    "n8n-nodes-base.wait": wait,
    "n8n-nodes-base.github": github,
    "n8n-nodes-base.jira": jira,
    "n8n-nodes-base.hubspot": hubspot,
    "n8n-nodes-base.stripe": stripe,
    "n8n-nodes-base.trello": trello,
    "n8n-nodes-base.discord": discord,
    "n8n-nodes-base.mailchimp": mailchimp,
    "n8n-nodes-base.airtable": airtable,
    "n8n-nodes-base.sendGrid": sendgrid,
    "n8n-nodes-base.pipedrive": pipedrive,
    "n8n-nodes-base.notion": notion,
    "n8n-nodes-base.asana": asana,
    "n8n-nodes-base.salesforce": salesforce,
    "n8n-nodes-base.dropbox": dropbox,
    "n8n-nodes-base.microsoftTeams": teams,
    "n8n-nodes-base.httpRequest": nodes.http_request,
    "n8n-nodes-base.set": nodes.set_fields,
}
