"""Imported n8n workflows run against real PostgreSQL, Redis and SMTP, and loopback HTTP.

Each test imports a corpus export (``tests/n8n_corpus``), completes the Integration stubs
with where the local servers are (what a person does after ``autoflow import n8n``), runs the
Workflow as ``autoflow run`` does, and checks the effects the n8n workflow was written for:
rows in the database, keys in Redis, mails in the SMTP server's mailbox, requests at the
HTTP server. Slack's chat.postMessage is played by ``httpserver`` answering as Slack's
reference page documents (``{"ok": true, "channel", "ts", "message"}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpserver
import psycopg
import redis as redis_lib
import servers
from n8n_import import imported, run_imported
from saas import hubspot, stripe

SLACK_TOKEN = "xoxb-17-n8n-import-3f9a"
POSTED = {"ok": True, "channel": "C0123", "ts": "1700000000.000100", "message": {"text": "x"}}


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
    return {"baseUrl": server.url("/api")}


def test_order_webhook_announces_big_orders_and_stores_them(
    tmp_path: Path, postgres_db: servers.Postgres, server: httpserver.Server
) -> None:
    _sql(postgres_db, "CREATE TABLE orders (id text PRIMARY KEY, total numeric)")
    result = imported("order-webhook")
    outcome = run_imported(
        result,
        tmp_path,
        settings={"slack-bot": _slack(server), "shop-db": _pg(postgres_db)},
        secrets={
            "slack-bot": {"token": SLACK_TOKEN},
            "shop-db": {"password": postgres_db.password},
        },
        inputs={"body": {"id": "A-7", "customer": "Grace", "total": 180}},
    )
    assert outcome.phase == "Succeeded", outcome.error
    posted = server.last("/api/chat.postMessage")
    assert posted.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert posted.json()["text"] == "Big order A-7 from Grace: 180 EUR"
    assert _sql(postgres_db, "SELECT id, total FROM orders") == [("A-7", 180)]
    assert outcome.outputs == {"response": {"stored": True, "id": "A-7"}, "statusCode": 201}
    # A small order takes the other branch: the Code node's placeholder stops the run there.
    small = run_imported(
        result,
        tmp_path,
        settings={"slack-bot": _slack(server), "shop-db": _pg(postgres_db)},
        secrets={
            "slack-bot": {"token": SLACK_TOKEN},
            "shop-db": {"password": postgres_db.password},
        },
        inputs={"body": {"id": "A-8", "customer": "Linus", "total": 20}},
    )
    assert small.phase == "Failed"
    assert small.steps["code"].phase == "Failed"
    assert "not converted from n8n: node 'Code'" in (small.steps["code"].error or "")
    assert small.steps["announce"].phase == "Skipped"
    assert _sql(postgres_db, "SELECT count(*) FROM orders") == [(1,)]


def test_nightly_report_mails_one_line_per_region(
    tmp_path: Path, postgres_db: servers.Postgres, smtp_server: servers.SmtpServer
) -> None:
    _sql(
        postgres_db,
        "CREATE TABLE sales (day date, region text, total numeric)",
        "INSERT INTO sales VALUES (current_date - 1, 'north', 10), (current_date - 1, 'north', 5),"
        " (current_date - 1, 'south', 7), (current_date, 'south', 100)",
    )
    outcome = run_imported(
        imported("nightly-report"),
        tmp_path,
        settings={"reporting-db": _pg(postgres_db), "company-smtp": _smtp(smtp_server)},
        secrets={"reporting-db": {"password": postgres_db.password}},
    )
    assert outcome.phase == "Succeeded", outcome.error
    [mail] = smtp_server.messages
    assert mail["To"] == "management@example.com"
    assert mail["Subject"].startswith("Sales report 20")
    html = mail.get_body(("html",))
    assert html is not None
    body = html.get_content()
    assert "<p>2 regions</p>" in body and "<p>north: 2 orders, 15 EUR</p>" in body


def test_exchange_rate_cache_writes_redis(
    tmp_path: Path, redis_server: servers.Redis, server: httpserver.Server
) -> None:
    server.route(
        "/latest", httpserver.Reply.with_json({"date": "2026-12-05", "rates": {"USD": 1.08}})
    )
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    client.delete("rates:eur:usd", "rates:refreshes", "rates:history")
    outcome = run_imported(
        imported("cron-cache"),
        tmp_path,
        settings={"cache": {"host": redis_server.host, "port": redis_server.port}},
        secrets={"cache": {"password": redis_server.password}},
        env={"RATES_URL": server.base_url},
    )
    assert outcome.phase == "Succeeded", outcome.error
    assert server.last("/latest").query == {"base": ["EUR"]}
    assert client.get("rates:eur:usd") == "1.08"
    assert 0 < client.ttl("rates:eur:usd") <= 7200
    assert client.get("rates:refreshes") == "1"
    assert client.lrange("rates:history", 0, -1) == ["2026-12-05"]
    assert outcome.steps["readBack"].output["value"] == "1.08"


def test_loop_over_items_sends_one_reminder_per_overdue_invoice(
    tmp_path: Path, postgres_db: servers.Postgres, server: httpserver.Server
) -> None:
    _sql(
        postgres_db,
        "CREATE TABLE invoices (id int, customer text, email text, amount numeric, due date,"
        " paid bool)",
        "INSERT INTO invoices VALUES (1, 'Ada', 'ada@example.com', 100, current_date - 3, false),"
        " (2, 'Grace', 'grace@example.com', 250, current_date - 1, false),"
        " (3, 'Linus', 'linus@example.com', 80, current_date - 9, true)",
    )
    server.route("/reminders", httpserver.Reply.with_json({"queued": True}, 202))
    outcome = run_imported(
        imported("loop-over-items"),
        tmp_path,
        settings={"billing-db": _pg(postgres_db), "slack-bot": _slack(server)},
        secrets={
            "billing-db": {"password": postgres_db.password},
            "slack-bot": {"token": SLACK_TOKEN},
        },
        env={"BILLING_URL": server.base_url},
    )
    assert outcome.phase == "Succeeded", outcome.error
    sent = [r for r in server.requests if r.path == "/reminders"]
    assert sorted(r.json()["invoice"] for r in sent) == [1, 2]
    ada = next(r for r in sent if r.json()["invoice"] == 1)
    assert ada.headers["x-invoice"] == "1"
    assert ada.json() == {
        "invoice": 1,
        "to": "ada@example.com",
        "text": "Dear Ada, invoice 1 over 100 EUR is overdue.",
    }
    told = server.last("/api/chat.postMessage").json()
    assert told == {"channel": "#billing", "text": "Reminders sent for 2 overdue invoices"}


def test_signups_insert_update_and_count_with_bound_parameters(
    tmp_path: Path, postgres_db: servers.Postgres
) -> None:
    _sql(postgres_db, "CREATE TABLE signups (email text PRIMARY KEY, plan text)")
    outcome = run_imported(
        imported("postgres-v1"),
        tmp_path,
        settings={"app-db": _pg(postgres_db)},
        secrets={"app-db": {"password": postgres_db.password}},
        inputs={"body": {"email": "  Ada@Example.COM "}},
    )
    assert outcome.phase == "Succeeded", outcome.error
    assert _sql(postgres_db, "SELECT email, plan FROM signups") == [("ada@example.com", "free")]
    assert outcome.outputs == {"response": {"total": 1}, "statusCode": 200}


def test_lead_routing_creates_the_contact_and_mails_sales(
    tmp_path: Path, smtp_server: servers.SmtpServer, server: httpserver.Server, saas: Any
) -> None:
    crm = saas(hubspot.HubSpot)
    outcome = run_imported(
        imported("lead-routing-v1"),
        tmp_path,
        settings={"hubspot-app": {"baseUrl": server.base_url}, "company-smtp": _smtp(smtp_server)},
        secrets={"hubspot-app": {"token": hubspot.TOKEN}},
        inputs={
            "body": {
                "email": "Ada@Corp.example",
                "first_name": "Ada",
                "last_name": "King",
                "company": "Corp",
                "company_size": "120",
            }
        },
    )
    assert outcome.phase == "Succeeded", outcome.error
    [contact] = crm.contacts
    assert contact["properties"]["email"] == "ada@corp.example"
    assert contact["properties"]["firstname"] == "Ada"
    assert outcome.steps["routeBySize"].output == {"case": "output1"}
    [mail] = smtp_server.messages
    assert mail["To"] == "sales@example.com"
    assert mail["Subject"] == "New lead: Ada King"
    assert outcome.steps["emailEnterprise"].phase == "Skipped"


def test_ticket_batches_route_rows_by_priority_into_redis_lists(
    tmp_path: Path,
    postgres_db: servers.Postgres,
    redis_server: servers.Redis,
    server: httpserver.Server,
) -> None:
    """Older node versions: HTTP Request v2, Set 3.3, Postgres v2, Split In Batches v1, Switch
    v3 in expression mode, IF v1, Redis push, Slack v1, Merge v2."""
    _sql(
        postgres_db,
        "CREATE TABLE tickets (id int, subject text, priority text, status text)",
        "INSERT INTO tickets VALUES (1, 'Site outage', 'high', 'new'),"
        " (2, 'Slow search', 'high', 'new'), (3, 'Typo', 'normal', 'new'),"
        " (4, 'Question', 'low', 'new'), (5, 'Old', 'high', 'closed')",
    )
    server.route("/tickets", httpserver.Reply.with_json({"tickets": [1, 2, 3, 4]}))
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    client.delete("tickets:urgent", "tickets:normal")
    outcome = run_imported(
        imported("older-nodes"),
        tmp_path,
        settings={
            "helpdesk-db": _pg(postgres_db),
            "cache": {"host": redis_server.host, "port": redis_server.port},
            "slack-bot": _slack(server),
        },
        secrets={
            "helpdesk-db": {"password": postgres_db.password},
            "cache": {"password": redis_server.password},
            "slack-bot": {"token": SLACK_TOKEN},
        },
        env={"HELPDESK_URL": server.base_url},
    )
    assert outcome.phase == "Succeeded", outcome.error
    assert server.last("/tickets").query == {"status": ["new"]}
    assert client.lrange("tickets:urgent", 0, -1) == ["1"]
    assert client.lrange("tickets:normal", 0, -1) == ["3"]
    posted = server.last("/api/chat.postMessage").json()
    assert posted == {"channel": "#support", "text": "High priority ticket 2: Slow search"}
    assert len(outcome.steps["merge"].output) == 2


def test_dunning_routes_failed_charges_to_slack_mail_and_crm(
    tmp_path: Path,
    server: httpserver.Server,
    saas: Any,
    smtp_server: servers.SmtpServer,
) -> None:
    """Stripe charges/list, then Filter v2, Switch v3 (rules, fallback output), Slack, Gmail
    (as SMTP) and HubSpot deals/create: each failed charge lands on exactly one branch."""
    payments = saas(stripe.Stripe)
    crm = saas(hubspot.HubSpot)
    payments.seed_charges(4)
    big, mail, neither, ok = payments.charges
    big.update(status="failed", amount=250000, billing_details={"email": None})
    mail.update(status="failed", amount=1200, billing_details={"email": "cy@example.com"})
    neither.update(status="failed", amount=900, billing_details={"email": ""})
    ok.update(status="succeeded", billing_details={"email": "ok@example.com"})
    outcome = run_imported(
        imported("stripe-dunning"),
        tmp_path,
        settings={
            "stripe-live": {"baseUrl": server.url("/v1")},
            "slack-bot": _slack(server),
            "billing-gmail": {**_smtp(smtp_server), "from": "billing@example.com"},
            "hubspot-app": {"baseUrl": server.base_url},
        },
        secrets={
            "stripe-live": {"apiKey": stripe.SECRET_KEY},
            "slack-bot": {"token": SLACK_TOKEN},
            "hubspot-app": {"token": hubspot.TOKEN},
        },
    )
    assert outcome.phase == "Succeeded", outcome.error
    alert = server.last("/api/chat.postMessage").json()["text"]
    assert alert == f":rotating_light: Charge {big['id']} for 2500 EUR failed"
    [sent] = smtp_server.messages
    assert sent["To"] == "cy@example.com"
    assert "your payment of 12 eur failed" in sent.get_content()
    [deal] = crm.deals
    assert deal["properties"]["dealname"] == f"Recover {neither['id']}"
