"""n8n nodes of the services the declarative catalogue covers: GitHub, Jira, HubSpot, Stripe,
Trello, Discord, Mailchimp, Airtable, SendGrid, Pipedrive, Notion, Asana, Salesforce, Dropbox
and Microsoft Teams. Each mapper reads the node's ``resource``/``operation`` as n8n exports
them and returns the catalogue action with its parameters, or a placeholder for an operation
the catalogue has no action for.
"""

from __future__ import annotations

from typing import Any

from autoflow.webui.importers.n8n import expressions, nodes, services
from autoflow.webui.importers.n8n.nodes import Mapped, Scope


def _collection(p: dict[str, Any], key: str) -> dict[str, Any]:
    value = p.get(key)
    return value if isinstance(value, dict) else {}


def github(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    resource, operation = p.get("resource", "issue"), p.get("operation", "create")
    out = Mapped("github.create_issue", connector="github")
    w = out.with_
    services.put(w, "owner", p.get("owner"), s)
    services.put(w, "repo", p.get("repository"), s)
    if (resource, operation) == ("issue", "create"):
        services.put(w, "title", p.get("title"), s)
        services.put(w, "body", p.get("body"), s)
        labels = [x.get("label") for x in p.get("labels") or [] if isinstance(x, dict)]
        assignees = [x.get("assignee") for x in p.get("assignees") or [] if isinstance(x, dict)]
        if labels:
            w["labels"] = [s.value(x, "labels") for x in labels]
        if assignees:
            w["assignees"] = [s.value(x, "assignees") for x in assignees]
    elif (resource, operation) == ("issue", "createComment"):
        out.uses = "github.add_comment"
        w["issueNumber"] = _number(p.get("issueNumber"), s, "issueNumber")
        services.put(w, "body", p.get("body"), s)
    elif (resource, operation) == ("issue", "edit"):
        out.uses = "github.update_issue"
        w["issueNumber"] = _number(p.get("issueNumber"), s, "issueNumber")
        fields = _collection(p, "editFields")
        for key in ("title", "body", "state"):
            services.put(w, key, fields.get(key), s)
    else:
        return services.unsupported(node, f"GitHub {resource}.{operation}")
    return out


def _number(value: Any, s: Scope, field: str) -> Any:
    if expressions.is_expression(value):
        return s.value(value, field)
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def jira(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    resource, operation = p.get("resource", "issue"), p.get("operation", "create")
    out = Mapped("jira.create_issue", connector="jira")
    w = out.with_
    if (resource, operation) == ("issue", "create"):
        services.put(w, "projectKey", p.get("project"), s)
        services.put(w, "summary", p.get("summary"), s)
        services.put(w, "issueType", p.get("issueType"), s)
        extra = _collection(p, "additionalFields")
        services.put(w, "description", extra.get("description"), s)
        if extra.get("labels"):
            w["labels"] = [s.value(x, "labels") for x in extra["labels"]]
        services.put(w, "priority", extra.get("priority"), s)
        out.status = "approximated"
        out.notes.append(
            "n8n stores the project and issue type as ids; check that projectKey and issueType "
            "hold the key and the type name"
        )
    elif (resource, operation) == ("issueComment", "add"):
        out.uses = "jira.add_comment"
        services.put(w, "issueKey", p.get("issueKey"), s)
        services.put(w, "text", p.get("comment"), s)
    elif (resource, operation) == ("issue", "transitions"):
        out.uses = "jira.get_transitions"
        services.put(w, "issueKey", p.get("issueKey"), s)
    else:
        return services.unsupported(node, f"Jira {resource}.{operation}")
    out.settings["site"] = "CHANGE-ME"
    return out


def hubspot(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    resource, operation = p.get("resource", "contact"), p.get("operation", "upsert")
    out = Mapped("hubspot.create_contact", connector="hubspot")
    w = out.with_
    extra = _collection(p, "additionalFields")
    if resource == "contact" and operation in ("upsert", "create"):
        services.put(w, "email", p.get("email"), s)
        for ours, theirs in (
            ("firstName", "firstName"),
            ("lastName", "lastName"),
            ("phone", "phoneNumber"),
            ("company", "companyName"),
        ):
            services.put(w, ours, extra.get(theirs), s)
        if operation == "upsert":
            out.status = "approximated"
            out.notes.append("n8n's upsert (create or update by e-mail) became create_contact")
    elif (resource, operation) == ("deal", "create"):
        out.uses = "hubspot.create_deal"
        services.put(w, "dealStage", p.get("stage"), s)
        services.put(w, "dealName", extra.get("dealName"), s)
        if extra.get("amount") not in (None, ""):
            w["amount"] = _number(extra.get("amount"), s, "amount")
        services.put(w, "pipeline", extra.get("pipeline"), s)
        services.put(w, "closeDate", extra.get("closeDate"), s)
    else:
        return services.unsupported(node, f"HubSpot {resource}.{operation}")
    return out


def stripe(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    resource, operation = p.get("resource", "balance"), p.get("operation", "get")
    out = Mapped("stripe.create_customer", connector="stripe")
    w = out.with_
    extra = _collection(p, "additionalFields")
    if (resource, operation) == ("customer", "create"):
        services.put(w, "name", p.get("name"), s)
        for key in ("email", "phone", "description"):
            services.put(w, key, extra.get(key), s)
        meta = (extra.get("metadata") or {}).get("metadataProperties") or []
        if meta:
            w["metadata"] = {m.get("key"): s.value(m.get("value"), "metadata") for m in meta}
    elif (resource, operation) == ("charge", "getAll"):
        out.uses = "stripe.list_charges"
        out.items = ".items"
    else:
        return services.unsupported(node, f"Stripe {resource}.{operation}")
    return out


def trello(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    if (p.get("resource", "card"), p.get("operation", "create")) != ("card", "create"):
        return services.unsupported(node, f"Trello {p.get('resource')}.{p.get('operation')}")
    out = Mapped("trello.create_card", connector="trello")
    services.put(out.with_, "idList", p.get("listId"), s)
    services.put(out.with_, "name", p.get("name"), s)
    services.put(out.with_, "desc", p.get("description"), s)
    return out


def discord(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    out = Mapped("discord.send_message", connector="discord")
    services.put(out.with_, "content", p.get("content") or p.get("text"), s)
    opts = _collection(p, "options")
    services.put(out.with_, "username", opts.get("username"), s)
    return out


def mailchimp(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    if (p.get("resource", "member"), p.get("operation", "create")) != ("member", "create"):
        return services.unsupported(node, f"Mailchimp {p.get('resource')}.{p.get('operation')}")
    out = Mapped("mailchimp.add_member", connector="mailchimp")
    w = out.with_
    services.put(w, "listId", p.get("list"), s)
    services.put(w, "email", p.get("email"), s)
    services.put(w, "status", p.get("status"), s)
    merge = (_collection(p, "mergeFieldsUi").get("mergeFieldsValues")) or []
    if merge:
        w["mergeFields"] = {m.get("name"): s.value(m.get("value"), "mergeFields") for m in merge}
    return out


def airtable(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    operation = p.get("operation", "append")
    if operation not in ("append", "create"):
        return services.unsupported(node, f"Airtable {operation}")
    out = Mapped("airtable.create_record", connector="airtable")
    w = out.with_
    services.put(w, "baseId", p.get("base") or p.get("application"), s)
    services.put(w, "table", p.get("table"), s)
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
    p = services.params_of(node)
    resource = p.get("resource", "contact")
    operation = p.get("operation", "send" if resource == "mail" else "upsert")
    if (resource, operation) != ("mail", "send"):
        return services.unsupported(node, f"SendGrid {resource}.{operation}")
    out = Mapped("sendgrid.send_mail", connector="sendgrid")
    w = out.with_
    extra = _collection(p, "additionalFields")
    w["to"] = _addresses(p.get("toEmail"), s, "to")
    services.put(w, "fromEmail", p.get("fromEmail"), s)
    services.put(w, "fromName", p.get("fromName"), s)
    services.put(w, "subject", p.get("subject"), s)
    body = "html" if p.get("contentType") == "text/html" else "text"
    services.put(w, body, p.get("contentValue"), s)
    if extra.get("ccEmail"):
        w["cc"] = _addresses(extra["ccEmail"], s, "cc")
    if extra.get("bccEmail"):
        w["bcc"] = _addresses(extra["bccEmail"], s, "bcc")
    services.put(w, "templateId", p.get("templateId") or extra.get("templateId"), s)
    return out


def pipedrive(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    resource, operation = p.get("resource", "deal"), p.get("operation", "create")
    extra = _collection(p, "additionalFields")
    out = Mapped("pipedrive.create_deal", connector="pipedrive")
    w = out.with_
    if (resource, operation) == ("deal", "create"):
        services.put(w, "title", p.get("title"), s)
        if extra.get("value") not in (None, ""):
            w["value"] = _number(extra.get("value"), s, "value")
        services.put(w, "currency", extra.get("currency"), s)
        for ours, theirs in (
            ("personId", "person_id"),
            ("orgId", "org_id"),
            ("stageId", "stage_id"),
        ):
            if extra.get(theirs) not in (None, ""):
                w[ours] = _number(extra.get(theirs), s, ours)
        services.put(w, "status", extra.get("status"), s)
    elif (resource, operation) == ("person", "create"):
        out.uses = "pipedrive.create_person"
        services.put(w, "name", p.get("name"), s)
        for key in ("email", "phone"):
            value = extra.get(key)
            services.put(w, key, value[0] if isinstance(value, list) and value else value, s)
    else:
        return services.unsupported(node, f"Pipedrive {resource}.{operation}")
    return out


def notion(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    if (p.get("resource", "block"), p.get("operation", "append")) != ("databasePage", "create"):
        return services.unsupported(node, f"Notion {p.get('resource')}.{p.get('operation')}")
    out = Mapped("notion.create_page", connector="notion")
    w = out.with_
    services.put(w, "databaseId", p.get("databaseId"), s)
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
    p = services.params_of(node)
    if (p.get("resource", "task"), p.get("operation", "create")) != ("task", "create"):
        return services.unsupported(node, f"Asana {p.get('resource')}.{p.get('operation')}")
    out = Mapped("asana.create_task", connector="asana")
    w = out.with_
    extra = _collection(p, "otherProperties")
    services.put(w, "name", p.get("name"), s)
    projects = extra.get("projects")
    if projects:
        services.put(w, "projectId", projects[0] if isinstance(projects, list) else projects, s)
    else:
        services.put(w, "workspaceId", p.get("workspace"), s)
    services.put(w, "notes", extra.get("notes"), s)
    services.put(w, "assignee", extra.get("assignee"), s)
    services.put(w, "dueOn", extra.get("due_on"), s)
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
    p = services.params_of(node)
    resource, operation = p.get("resource", "lead"), p.get("operation", "create")
    if operation != "create" or resource not in ("lead", "contact", "account"):
        return services.unsupported(node, f"Salesforce {resource}.{operation}")
    out = Mapped("salesforce.create_record", connector="salesforce")
    fields: dict[str, Any] = {}
    for key, value in {**p, **_collection(p, "additionalFields")}.items():
        name = _SALESFORCE_FIELDS.get(key) or ("Name" if key == "name" else None)
        if name and value not in (None, ""):
            fields[name] = s.value(value, name)
    out.with_ = {"object": resource.capitalize(), "fields": fields}
    return out


def dropbox(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    if (p.get("resource", "file"), p.get("operation", "upload")) != ("folder", "create"):
        return services.unsupported(node, f"Dropbox {p.get('resource')}.{p.get('operation')}")
    out = Mapped("dropbox.create_folder", connector="dropbox")
    services.put(out.with_, "path", p.get("path"), s)
    return out


def teams(node: dict[str, Any], s: Scope) -> Mapped:
    p = services.params_of(node)
    if (p.get("resource", "channel"), p.get("operation", "create")) not in (
        ("channelMessage", "create"),
        ("chatMessage", "create"),
    ):
        return services.unsupported(
            node, f"Microsoft Teams {p.get('resource')}.{p.get('operation')}"
        )
    out = Mapped("teams.post_message", connector="teams", status="approximated")
    services.put(out.with_, "text", p.get("message"), s)
    out.notes.append(
        "n8n posts through Microsoft Graph to a team and channel; Autoflow posts to the "
        "channel's incoming webhook (the Integration's webhookUrl)"
    )
    return out


MAPPERS: dict[str, services.Mapper] = {
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
}
