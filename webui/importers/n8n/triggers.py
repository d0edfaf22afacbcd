"""Trigger nodes: Webhook → a webhook trigger, Schedule Trigger and Cron → Schedules (cron
text), Manual Trigger → nothing (runs are started by hand), other ``*Trigger`` nodes → a
webhook trigger the service must be pointed at.

``webhook`` writes the trigger in the shape the installed Workflow model has: a path only, or
(with the gateway's trigger model) a ``/path`` with ``auth``, ``secretRef``, ``inputs`` mapping
the request to the inputs ``body``/``headers``/``query`` and a ``sync`` ``response``.

``cron_lines`` turns the Schedule Trigger's ``rule.interval`` list (v1.x) and the old Cron
node's ``triggerTimes.item`` list into cron expressions, with a note for what cron cannot say
exactly (every 7 days is not "every Monday").
"""

from __future__ import annotations

import re
from typing import Any

from autoflow.crds import workflow

WEBHOOK = "n8n-nodes-base.webhook"
SCHEDULE = "n8n-nodes-base.scheduleTrigger"
CRON = "n8n-nodes-base.cron"
INTERVAL = "n8n-nodes-base.interval"
MANUAL = ("n8n-nodes-base.manualTrigger", "n8n-nodes-base.start")


def is_trigger(node_type: str) -> bool:
    return (
        node_type in (WEBHOOK, SCHEDULE, CRON, INTERVAL, *MANUAL)
        or node_type.endswith("Trigger")
        or node_type.endswith(".formTrigger")
    )


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def cron_lines(node: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(cron expressions, notes) for a Schedule Trigger, Cron or Interval node."""
    p = node.get("parameters") or {}
    notes: list[str] = []
    crons: list[str] = []
    if node.get("type") == SCHEDULE:
        rules = (p.get("rule") or {}).get("interval") or [{}]
        for r in rules:
            crons.append(_schedule_rule(r, notes))
    elif node.get("type") == CRON:
        for item in (p.get("triggerTimes") or {}).get("item") or []:
            crons.append(_cron_item(item, notes))
    else:  # Interval
        unit = p.get("unit", "seconds")
        value = _int(p.get("interval"), 1)
        crons.append(_every(value, unit, notes))
    return [c for c in crons if c], notes


def _every(value: int, unit: str, notes: list[str]) -> str:
    if unit == "seconds":
        if 60 % value:
            notes.append(f"every {value} seconds is not a cron step; rounded to the minute")
            return "* * * * *"
        return f"*/{value} * * * * *" if value > 1 else "* * * * * *"
    if unit == "minutes":
        return f"*/{value} * * * *" if value > 1 else "* * * * *"
    if unit == "hours":
        return f"0 */{value} * * *" if value > 1 else "0 * * * *"
    return f"0 0 */{value} * *"


def _schedule_rule(r: dict[str, Any], notes: list[str]) -> str:
    field = r.get("field", "days")
    minute = _int(r.get("triggerAtMinute"), 0)
    hour = _int(r.get("triggerAtHour"), 0)
    if field == "cronExpression":
        return str(r.get("expression", "")).strip()
    if field == "seconds":
        return _every(_int(r.get("secondsInterval"), 30), "seconds", notes)
    if field == "minutes":
        return _every(_int(r.get("minutesInterval"), 5), "minutes", notes)
    if field == "hours":
        n = _int(r.get("hoursInterval"), 1)
        return f"{minute} */{n} * * *" if n > 1 else f"{minute} * * * *"
    if field == "days":
        n = _int(r.get("daysInterval"), 1)
        if n > 1:
            notes.append(f"every {n} days became day-of-month */{n} (restarts each month)")
            return f"{minute} {hour} */{n} * *"
        return f"{minute} {hour} * * *"
    if field == "weeks":
        days = r.get("triggerAtDay") or [0]
        if _int(r.get("weeksInterval"), 1) > 1:
            notes.append("every N weeks became every week: cron has no week step")
        return f"{minute} {hour} * * {','.join(str(_int(d, 0)) for d in days)}"
    if field == "months":
        if _int(r.get("monthsInterval"), 1) > 1:
            months = _int(r.get("monthsInterval"), 1)
            return f"{minute} {hour} {_int(r.get('triggerAtDayOfMonth'), 1)} */{months} *"
        return f"{minute} {hour} {_int(r.get('triggerAtDayOfMonth'), 1)} * *"
    notes.append(f"schedule rule {field!r} is not known; left out")
    return ""


_WEEKDAYS = {str(i): str(i) for i in range(7)}


def _cron_item(item: dict[str, Any], notes: list[str]) -> str:
    mode = item.get("mode", "everyDay")
    hour = _int(item.get("hour"), 14)
    minute = _int(item.get("minute"), 0)
    if mode == "custom":
        return str(item.get("cronExpression", "")).strip()
    if mode == "everyMinute":
        return "* * * * *"
    if mode == "everyHour":
        return f"{minute} * * * *"
    if mode == "everyDay":
        return f"{minute} {hour} * * *"
    if mode == "everyWeek":
        return f"{minute} {hour} * * {_WEEKDAYS.get(str(item.get('weekday', 1)), '1')}"
    if mode == "everyMonth":
        return f"{minute} {hour} {_int(item.get('dayOfMonth'), 1)} * *"
    if mode == "everyX":
        return _every(_int(item.get("value"), 2), str(item.get("unit", "hours")), notes)
    notes.append(f"cron mode {mode!r} is not known; left out")
    return ""


def webhook_path(node: dict[str, Any]) -> tuple[str, list[str]]:
    """The trigger path for a Webhook node, and notes (path parameters, auth, methods)."""
    p = node.get("parameters") or {}
    notes: list[str] = []
    path = str(p.get("path") or node.get("webhookId") or node.get("name", "hook"))
    path = path.strip("/")
    if ":" in path:
        notes.append(
            f"the path parameters in {path!r} are not matched: the gateway serves a fixed path"
        )
        path = re.sub(r"/?:[^/]+", "", path) or "hook"
    path = re.sub(r"[^A-Za-z0-9._/-]", "-", path)
    auth = p.get("authentication", "none")
    if auth and auth != "none" and not gateway_model():
        notes.append(
            f"n8n's {auth} on the webhook is not carried over: set the trigger's auth and "
            "secretRef (docs/triggers.md)"
        )
    method = p.get("httpMethod", "GET")
    if isinstance(method, str) and method != "POST":
        notes.append(f"n8n answered {method}; Autoflow's gateway takes POST")
    mode = p.get("responseMode", "onReceived")
    if mode == "lastNode" and not gateway_model():
        notes.append(
            "n8n answered with the last node's data; the run's outputs hold it here (outputs."
            "response): make the trigger's response sync (docs/triggers.md)"
        )
    return path, notes


def gateway_model() -> bool:
    """Whether Workflow webhook triggers have the gateway's fields (auth, inputs, response)."""
    return "auth" in workflow.WebhookTrigger.model_fields


def webhook(
    node: dict[str, Any], path: str, credential: str | None
) -> tuple[dict[str, Any], list[str]]:
    """The ``webhook`` trigger for an n8n Webhook (or service trigger) node, and notes."""
    if not gateway_model():
        return {"path": path}, []
    p = node.get("parameters") or {}
    notes: list[str] = []
    trigger: dict[str, Any] = {
        "path": "/" + path.strip("/"),
        "inputs": {"body": "${ body }", "headers": "${ headers }", "query": "${ query }"},
    }
    auth = p.get("authentication", "none")
    secret = credential or "webhook-secret"
    if auth == "basicAuth":
        trigger["auth"] = {"basic": {"username": "CHANGE-ME"}}
        trigger["secretRef"] = {"name": secret, "key": "password"}
        notes.append(
            f"basic auth: set auth.basic.username and the password in Secret {secret} (key "
            "password)"
        )
    elif auth in ("headerAuth", "jwtAuth"):
        trigger["auth"] = {"bearer": {}}
        trigger["secretRef"] = {"name": secret, "key": "token"}
        notes.append(
            f"n8n's {auth} became bearer auth: the token goes in Secret {secret} (key token); "
            "set auth.bearer.header if the sender uses another header"
        )
    else:
        trigger["auth"] = {"none": True}
        notes.append("no authentication, as in n8n: anyone who can reach the gateway starts runs")
    return trigger, notes


def sync_response(trigger: dict[str, Any], status: Any) -> None:
    """Answer the webhook with the run's ``response`` output (Respond to Webhook, last node)."""
    if "auth" not in trigger:
        return
    response: dict[str, Any] = {"mode": "sync", "output": "response"}
    if isinstance(status, int) and 200 <= status <= 299:
        response["statusCode"] = status
    trigger["response"] = response
