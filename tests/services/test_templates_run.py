"""Every template in ``examples/templates`` runs against real servers and does what it says.

PostgreSQL, Redis and SMTP are the real servers of this tier; SaaS services are their contract
servers (``tests/saas``); Slack's Web API is ``httpserver`` answering as Slack's reference
documents chat.postMessage and chat.update (``{"ok": true, ...}``). Each template's
Integrations are completed with where those servers are, as a person completes them.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import httpserver
import psycopg
import redis as redis_lib
import servers
from n8n_import import run_manifests
from saas import hubspot, jira, mailchimp, openai_api, stripe, trello

from autoflow.runners import engine

TEMPLATES = Path(__file__).resolve().parents[2] / "examples" / "templates"
SLACK_TOKEN = "xoxb-17-templates-3f9a"
POSTED = {"ok": True, "channel": "C0123", "ts": "1700000000.000100", "message": {"text": "x"}}


def _run(name: str, tmp_path: Path, **kwargs: Any) -> engine.RunResult:
    text = (TEMPLATES / f"{name}.yaml").read_text(encoding="utf-8")
    return run_manifests(text, tmp_path, **kwargs)


def _pg(pg: servers.Postgres) -> dict[str, Any]:
    return {"host": pg.host, "port": pg.port, "database": pg.dbname, "user": pg.user}


def _sql(pg: servers.Postgres, *statements: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cur = conn.execute(statement)
            rows = cur.fetchall() if cur.description else []
        return rows


def _smtp(server: servers.SmtpServer) -> dict[str, Any]:
    settings: dict[str, Any] = {"host": server.host, "port": server.port}
    if server.certificate is not None:
        settings["tlsCaCert"] = server.certificate.cert_file.read_text()
    return settings


def _slack(server: httpserver.Server) -> dict[str, Any]:
    server.route("/api/chat.postMessage", httpserver.Reply.with_json(POSTED))
    server.route("/api/chat.update", httpserver.Reply.with_json(POSTED))
    return {"baseUrl": server.url("/api")}


def _redis(r: servers.Redis) -> dict[str, Any]:
    return {"host": r.host, "port": r.port}


def test_crm_lead_routing(
    tmp_path: Path, server: httpserver.Server, saas: Any, smtp_server: servers.SmtpServer
) -> None:
    crm = saas(hubspot.HubSpot)
    kwargs: dict[str, Any] = {
        "settings": {
            "crm": {"baseUrl": server.base_url},
            "chat": _slack(server),
            "mail": _smtp(smtp_server),
        },
        "secrets": {"crm": {"token": hubspot.TOKEN}, "chat": {"token": SLACK_TOKEN}},
    }
    lead = {"email": " Ada@Corp.example", "firstName": "Ada", "lastName": "King", "company": "Corp"}
    big = _run("crm-lead-routing", tmp_path, inputs={"lead": {**lead, "employees": 800}}, **kwargs)
    assert big.phase == "Succeeded", big.error
    assert big.outputs["route"] == "enterprise"
    assert "Corp, 800 people" in server.last("/api/chat.postMessage").json()["text"]
    assert crm.contacts[0]["properties"]["email"] == "ada@corp.example"
    assert smtp_server.messages == []
    mid = _run(
        "crm-lead-routing",
        tmp_path,
        inputs={"lead": {**lead, "email": "bo@mid.example", "employees": 80}},
        **kwargs,
    )
    assert mid.outputs["route"] == "midMarket"
    [mail] = smtp_server.messages
    assert mail["To"] == "sales@example.com" and mail["Subject"] == "New lead: Corp"


def test_invoice_reminder(
    tmp_path: Path, postgres_db: servers.Postgres, smtp_server: servers.SmtpServer
) -> None:
    _sql(
        postgres_db,
        "CREATE TABLE invoices (id int, customer text, email text, amount numeric, due date,"
        " paid bool, reminded_at timestamptz)",
        "INSERT INTO invoices VALUES"
        " (1, 'Ada', 'ada@example.com', 120.50, current_date - 3, false, NULL),"
        " (2, 'Bo', 'bo@example.com', 80, current_date - 3, true, NULL),"
        " (3, 'Cy', 'cy@example.com', 99, current_date - 30, false, now() - interval '1 day'),"
        " (4, 'Di', 'di@example.com', 10, current_date + 3, false, NULL)",
    )
    kwargs: dict[str, Any] = {
        "settings": {"billing-db": _pg(postgres_db), "mail": _smtp(smtp_server)},
        "secrets": {"billing-db": {"password": postgres_db.password}},
    }
    outcome = _run("invoice-reminder", tmp_path, **kwargs)
    assert outcome.phase == "Succeeded", outcome.error
    assert outcome.outputs == {"reminded": [1]}
    [mail] = smtp_server.messages
    assert mail["To"] == "ada@example.com"
    assert "over 120.50 EUR" in mail.get_content()
    again = _run("invoice-reminder", tmp_path, **kwargs)
    assert again.outputs == {"reminded": []}  # reminded once per week


def test_failed_payment_dunning(
    tmp_path: Path, server: httpserver.Server, saas: Any, smtp_server: servers.SmtpServer
) -> None:
    payments = saas(stripe.Stripe)
    payments.seed_charges(3)
    payments.charges[0].update(
        status="failed", billing_details={"email": "ada@example.com"}, amount=2500
    )
    payments.charges[1].update(status="succeeded", billing_details={"email": "bo@example.com"})
    payments.charges[2].update(
        status="failed",
        billing_details={"email": "cy@example.com"},
        amount=1000,
        failure_message="Your card has insufficient funds.",
    )
    outcome = _run(
        "failed-payment-dunning",
        tmp_path,
        settings={
            "payments": {"baseUrl": server.url("/v1")},
            "mail": _smtp(smtp_server),
            "chat": _slack(server),
        },
        secrets={"payments": {"apiKey": stripe.SECRET_KEY}, "chat": {"token": SLACK_TOKEN}},
    )
    assert outcome.phase == "Succeeded", outcome.error
    assert sorted(m["To"] for m in smtp_server.messages) == ["ada@example.com", "cy@example.com"]
    cy = next(m for m in smtp_server.messages if m["To"] == "cy@example.com")
    assert "10 EUR failed (Your card has insufficient funds.)" in cy.get_content()
    told = server.last("/api/chat.postMessage").json()
    assert told == {"channel": "#finance", "text": "2 failed payments, 35 in total"}


def test_support_triage(
    tmp_path: Path, server: httpserver.Server, saas: Any, smtp_server: servers.SmtpServer
) -> None:
    """The ticket is classified by ai.classify against ``tests/saas/openai_api.py`` (OpenAI's
    Chat Completions API with strict structured outputs), scripted to answer each label; the
    label routes the ticket, and an unsure answer goes to a person instead."""
    model = saas(openai_api.OpenAI)
    tracker = jira.Jira(server, project="SUP")
    kwargs: dict[str, Any] = {
        "settings": {
            "gpt": {"baseUrl": model.base_url, "model": "gpt-test"},
            "chat": _slack(server),
            "tracker": {"baseUrl": server.base_url, "site": "acme"},
            "mail": _smtp(smtp_server),
        },
        "secrets": {
            "gpt": {"apiKey": openai_api.API_KEY},
            "chat": {"token": SLACK_TOKEN},
            "tracker": {"email": jira.EMAIL, "apiToken": jira.API_TOKEN},
        },
    }
    ticket = {
        "id": "T-1",
        "email": "ada@example.com",
        "subject": "Checkout",
        "text": "I get an Error 500",
    }
    model.answer({"label": "bug", "confidence": 0.93, "reason": "an error on checkout"})
    bug = _run("support-triage", tmp_path, inputs={"ticket": ticket}, **kwargs)
    assert bug.phase == "Succeeded", bug.error
    assert bug.outputs == {"category": "bug", "confidence": 0.93}
    asked = model.script.bodies[0]
    schema = asked["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == ["outage", "bug", "billing", "question"]
    assert "I get an Error 500" in asked["messages"][-1]["content"]
    assert tracker.issues[0]["fields"]["summary"] == "Checkout (ticket T-1)"
    assert server.calls("/api/chat.postMessage") == 0
    [ack] = smtp_server.messages
    assert ack["To"] == "ada@example.com" and "filed as 'bug'" in ack.get_content()

    smtp_server.clear()
    model.answer({"label": "billing", "confidence": 0.88, "reason": "asks for a refund"})
    billing = {**ticket, "id": "T-2", "text": "Where is my refund?"}
    done = _run("support-triage", tmp_path, inputs={"ticket": billing}, **kwargs)
    assert done.outputs == {"category": "billing", "confidence": 0.88}
    assert sorted(m["To"] for m in smtp_server.messages) == [
        "ada@example.com",
        "billing@example.com",
    ]

    smtp_server.clear()
    model.answer({"label": "outage", "confidence": 0.97, "reason": "the site is down"})
    down = {**ticket, "id": "T-3", "subject": "Site down", "text": "Nothing loads."}
    paged = _run("support-triage", tmp_path, inputs={"ticket": down}, **kwargs)
    assert paged.outputs == {"category": "outage", "confidence": 0.97}
    page = server.last("/api/chat.postMessage").json()
    assert page["channel"] == "#on-call" and "ticket T-3" in page["text"]

    smtp_server.clear()
    model.answer({"label": "outage", "confidence": 0.35, "reason": "maybe slow, maybe down"})
    vague = {**ticket, "id": "T-4", "subject": "Slow", "text": "Things feel sluggish today."}
    unsure = _run("support-triage", tmp_path, inputs={"ticket": vague}, **kwargs)
    assert unsure.outputs == {"category": "unsure", "confidence": 0.35}
    asked_human = server.last("/api/chat.postMessage").json()
    assert asked_human["channel"] == "#support-triage"
    assert "ticket T-4" in asked_human["text"] and "'outage' at 0.35" in asked_human["text"]
    assert server.calls("/api/chat.postMessage") == 2  # one page (T-3), one ask (T-4)
    [ack] = smtp_server.messages  # only the acknowledgement: no bug, no billing mail
    assert ack["To"] == "ada@example.com"
    assert len(tracker.issues) == 1 and tracker.violations == []


def test_nightly_database_report(
    tmp_path: Path, postgres_db: servers.Postgres, smtp_server: servers.SmtpServer
) -> None:
    _sql(
        postgres_db,
        "CREATE TABLE orders (id serial, region text, total numeric, created timestamptz)",
        "INSERT INTO orders (region, total, created) VALUES"
        " ('north', 10, now() - interval '1 day'), ('north', 5.5, now() - interval '1 day'),"
        " ('south', 7, now() - interval '1 day'), ('south', 100, now())",
    )
    outcome = _run(
        "nightly-database-report",
        tmp_path,
        settings={"reporting-db": _pg(postgres_db), "mail": _smtp(smtp_server)},
        secrets={"reporting-db": {"password": postgres_db.password}},
    )
    assert outcome.phase == "Succeeded", outcome.error
    [mail] = smtp_server.messages
    assert mail["Subject"].endswith("(yesterday): 3")
    text = mail.get_body(("plain",))
    assert text is not None
    assert text.get_content().splitlines() == ["north: 2 orders, 15.5", "south: 1 orders, 7"]
    html = mail.get_body(("html",))
    assert (
        html is not None and "<tr><td>north</td><td>2</td><td>15.5</td></tr>" in html.get_content()
    )


def test_new_hire_onboarding(
    tmp_path: Path, server: httpserver.Server, saas: Any, smtp_server: servers.SmtpServer
) -> None:
    board = saas(trello.Trello)
    hire = {
        "name": "Ada",
        "email": "ada@example.com",
        "startDate": "2027-01-04",
        "team": "Platform",
        "manager": {"name": "Grace", "email": "grace@example.com"},
    }
    outcome = _run(
        "new-hire-onboarding",
        tmp_path,
        settings={
            "chat": _slack(server),
            "board": {"baseUrl": server.url("/1")},
            "mail": _smtp(smtp_server),
        },
        secrets={
            "chat": {"token": SLACK_TOKEN},
            "board": {"apiKey": trello.API_KEY, "apiToken": trello.API_TOKEN},
        },
        inputs={"hire": hire, "tasks": ["Laptop", "Buddy"]},
    )
    assert outcome.phase == "Succeeded", outcome.error
    assert sorted(c["name"] for c in board.cards) == ["Buddy: Ada", "Laptop: Ada"]
    assert "Please welcome Ada" in server.last("/api/chat.postMessage").json()["text"]
    [mail] = smtp_server.messages
    assert mail["To"] == "grace@example.com" and "Laptop, Buddy" in mail.get_content()


def test_slack_approval_request_and_decision(
    tmp_path: Path, server: httpserver.Server, redis_server: servers.Redis
) -> None:
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    kwargs: dict[str, Any] = {
        "settings": {"chat": _slack(server), "state": _redis(redis_server)},
        "secrets": {"chat": {"token": SLACK_TOKEN}, "state": {"password": redis_server.password}},
    }
    small = {"id": "E-1", "requester": "Ada", "amount": 40, "reason": "Books"}
    done = _run(
        "slack-approval",
        tmp_path,
        workflow="slack-approval-request",
        inputs={"request": small},
        **kwargs,
    )
    assert done.outputs == {"decision": "approved"}
    assert client.get("approval:E-1") == '{"decision":"approved","by":"autoflow"}'
    assert server.calls("/api/chat.postMessage") == 0
    big = {"id": "E-2", "requester": "Bo", "amount": 900, "reason": "Laptop"}
    asked = _run(
        "slack-approval",
        tmp_path,
        workflow="slack-approval-request",
        inputs={"request": big},
        **kwargs,
    )
    assert asked.outputs == {"decision": "pending"}
    blocks = server.last("/api/chat.postMessage").json()["blocks"]
    assert [b["action_id"] for b in blocks[1]["elements"]] == ["approve", "reject"]
    assert '"decision":"pending"' in (client.get("approval:E-2") or "")
    click = {
        "user": {"username": "grace"},
        "actions": [{"action_id": "approve", "value": "E-2"}],
        "channel": {"id": "C0123"},
        "message": {"ts": "1700000000.000100"},
    }
    decided = _run(
        "slack-approval",
        tmp_path,
        workflow="slack-approval-decision",
        inputs={"payload": click},
        **kwargs,
    )
    assert decided.outputs == {"decision": "approved"}
    assert client.get("approval:E-2") == '{"id":"E-2","decision":"approved","by":"grace"}'
    assert server.last("/api/chat.update").json()["text"] == "Request E-2 approved by grace"


def test_webhook_to_database_is_idempotent(tmp_path: Path, postgres_db: servers.Postgres) -> None:
    _sql(
        postgres_db,
        "CREATE TABLE orders (id text PRIMARY KEY, customer text, total numeric)",
        "CREATE TABLE order_lines (order_id text, sku text, qty int)",
    )
    kwargs: dict[str, Any] = {
        "settings": {"orders-db": _pg(postgres_db)},
        "secrets": {"orders-db": {"password": postgres_db.password}},
    }
    order = {"id": "A-1", "customer": "Ada", "total": 30, "lines": [{"sku": "X", "qty": 2}]}
    for _ in range(2):  # a redelivery
        outcome = _run("webhook-to-database", tmp_path, inputs={"order": order}, **kwargs)
        assert outcome.phase == "Succeeded", outcome.error
    assert _sql(postgres_db, "SELECT id, customer, total FROM orders") == [("A-1", "Ada", 30)]
    assert _sql(postgres_db, "SELECT order_id, sku, qty FROM order_lines") == [("A-1", "X", 2)]


def test_file_backup_copies_and_alerts_on_failure(
    tmp_path: Path, server: httpserver.Server, redis_server: servers.Redis
) -> None:
    for name in ("a.csv", "b.csv"):
        server.route(f"/api/exports/{name}", httpserver.Reply(200, f"data of {name}"))
    stored: list[httpserver.Recorded] = []

    def keep(request: httpserver.Recorded) -> httpserver.Reply:
        stored.append(request)
        return httpserver.Reply(201)

    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    for name in ("a.csv", "b.csv"):
        server.route(f"/store/backups/{today}/{name}", keep, method="PUT")
    kwargs: dict[str, Any] = {
        "settings": {
            "source": {"baseUrl": server.url("/api")},
            "storage": {"baseUrl": server.url("/store")},
            "state": _redis(redis_server),
            "chat": _slack(server),
        },
        "secrets": {
            "source": {"token": "src-token"},
            "storage": {"username": "backup", "password": "pw"},
            "state": {"password": redis_server.password},
            "chat": {"token": SLACK_TOKEN},
        },
    }
    outcome = _run("file-backup", tmp_path, inputs={"files": ["a.csv", "b.csv"]}, **kwargs)
    assert outcome.phase == "Succeeded", outcome.error
    assert sorted(r.text for r in stored) == ["data of a.csv", "data of b.csv"]
    assert server.last("/api/exports/a.csv").headers["authorization"] == "Bearer src-token"
    assert stored[0].headers["authorization"].startswith("Basic ")
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    assert client.hget("backup:last", "files") == "2"
    failed = _run("file-backup", tmp_path, inputs={"files": ["missing.csv"]}, **kwargs)
    assert failed.phase == "Failed"
    alert = server.last("/api/chat.postMessage").json()
    assert alert["text"].startswith(":warning: Backup failed at step download")


def test_marketing_list_sync(
    tmp_path: Path, postgres_db: servers.Postgres, server: httpserver.Server, saas: Any
) -> None:
    audience = saas(mailchimp.Mailchimp)
    _sql(
        postgres_db,
        "CREATE TABLE newsletter_signups (email text, first_name text, last_name text,"
        " created timestamptz DEFAULT now(), synced_at timestamptz)",
        "INSERT INTO newsletter_signups (email, first_name, last_name) VALUES"
        " ('ada@example.com', 'Ada', 'King'), ('bo@example.com', NULL, NULL)",
    )
    kwargs: dict[str, Any] = {
        "settings": {"app-db": _pg(postgres_db), "marketing": {"baseUrl": server.url("/3.0")}},
        "secrets": {
            "app-db": {"password": postgres_db.password},
            "marketing": {"apiKey": mailchimp.API_KEY},
        },
    }
    outcome = _run("marketing-list-sync", tmp_path, **kwargs)
    assert outcome.phase == "Succeeded", outcome.error
    assert outcome.outputs == {"synced": 2}
    added = {m["email_address"] for m in audience.members}
    assert {"ada@example.com", "bo@example.com"} <= added
    assert _sql(postgres_db, "SELECT count(*) FROM newsletter_signups WHERE synced_at IS NULL") == [
        (0,)
    ]
    assert _run("marketing-list-sync", tmp_path, **kwargs).outputs == {"synced": 0}


def test_incident_escalation(
    tmp_path: Path,
    server: httpserver.Server,
    redis_server: servers.Redis,
    smtp_server: servers.SmtpServer,
) -> None:
    tracker = jira.Jira(server)
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    for key in client.scan_iter("alerts:checkout:*"):
        client.delete(key)
    kwargs: dict[str, Any] = {
        "settings": {
            "state": _redis(redis_server),
            "chat": _slack(server),
            "mail": _smtp(smtp_server),
            "tracker": {"baseUrl": server.base_url, "site": "acme"},
        },
        "secrets": {
            "state": {"password": redis_server.password},
            "chat": {"token": SLACK_TOKEN},
            "tracker": {"email": jira.EMAIL, "apiToken": jira.API_TOKEN},
        },
    }
    alert = {
        "name": "latency",
        "severity": "warning",
        "summary": "p95 over 2s",
        "service": "checkout",
    }
    for n in (1, 2):
        outcome = _run("incident-escalation", tmp_path, inputs={"alert": alert}, **kwargs)
        assert outcome.outputs == {"escalated": False, "count": n}, outcome.error
    assert smtp_server.messages == [] and tracker.issues == []
    third = _run("incident-escalation", tmp_path, inputs={"alert": alert}, **kwargs)
    assert third.outputs == {"escalated": True, "count": 3}
    [page] = smtp_server.messages
    assert page["Subject"] == "[WARNING] checkout: latency"
    assert tracker.issues[0]["fields"]["summary"] == "checkout: latency"
    assert server.last("/api/chat.postMessage").json()["channel"] == "#checkout"
    assert tracker.violations == []
