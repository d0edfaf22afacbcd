"""``autoflow import n8n``: n8n exports in, Workflows that validate and run out, honestly reported.

The corpus (``tests/n8n_corpus``) holds n8n exports written for these tests in n8n's export
format (docs.n8n.io, "Export and import workflows"; the node parameters as each node's
typeVersion stores them). Every file must convert into manifests that ``autoflow validate``
accepts, with a report that lists exactly the nodes that were approximated or not converted.
Expressions are checked by evaluating the translation on data, not by comparing text only.
Workflows whose services can be played by a local contract server (``tests/saas``) or by
``httpserver`` are run here; those needing PostgreSQL, Redis or SMTP are in
``tests/services/test_import_n8n_run.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastapi
import httpserver
import pytest
import yaml
from fastapi import testclient
from n8n_import import CORPUS, imported, run_imported
from saas import (
    airtable,
    asana,
    discord,
    dropbox,
    github,
    jira,
    mailchimp,
    notion,
    pipedrive,
    salesforce,
    sendgrid,
    stripe,
    teams,
    trello,
)

from autoflow.cli import validate
from autoflow.crds import errors
from autoflow.runners import expressions as runtime
from autoflow.webui.importers import n8n, routes
from autoflow.webui.importers.n8n import expressions, triggers

# node name → status, for every node that is not simply converted.
EXPECTED: dict[str, dict[str, str]] = {
    "cron-cache": {"Cron": "approximated", "Read back": "approximated"},
    "github-jira": {"Github Trigger": "approximated", "Create Jira issue": "approximated"},
    "http-shapes": {"Webhook": "approximated", "Wait for approval": "approximated"},
    "lead-routing-v1": {"HubSpot": "approximated"},
    "loop-over-items": {},
    "nightly-report": {"Send report": "approximated"},
    "older-nodes": {
        "Interval": "approximated",
        "Keep tickets": "approximated",
        "SplitInBatches": "approximated",
        "Merge": "approximated",
    },
    "order-webhook": {"Respond": "approximated", "Code": "not converted"},
    "postgres-v1": {"Count": "approximated", "Respond to Webhook": "approximated"},
    "saas-catalogue": {"Airtable": "approximated"},
    "saas-more": {"Teams": "approximated"},
    "stripe-dunning": {"Alert finance": "approximated", "Gmail": "approximated"},
    "unsupported": {
        "Dates": "approximated",
        "Read sheet": "not converted",
        "Python": "not converted",
        "Old function": "not converted",
        "Regex IF": "not converted",
        "AI Agent": "not converted",
        "OpenAI Chat Model": "not converted",
    },
}


def test_the_corpus_is_the_expected_one() -> None:
    assert sorted(p.stem for p in CORPUS.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_export_converts_into_manifests_autoflow_validate_accepts(
    name: str, tmp_path: Path
) -> None:
    result = imported(name)
    assert result.report.problems == []
    path = tmp_path / "out.yaml"
    path.write_text(result.yaml, encoding="utf-8")
    ok, problems = validate.check_file(str(path), validate.integration_types([str(path)]))
    assert problems == []
    assert ok[0].startswith(f"Workflow/{result.name} ")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_report_lists_exactly_what_was_not_simply_converted(name: str) -> None:
    report = imported(name).report
    found = {e.node: e.status for e in report.entries if e.status != "converted"}
    assert found == EXPECTED[name]
    data = json.loads((CORPUS / f"{name}.json").read_text())
    flow = [n["name"] for n in data["nodes"] if n["type"] != "n8n-nodes-base.stickyNote"]
    assert sorted(e.node for e in report.entries) == sorted(flow)
    for entry in report.entries:
        if entry.status != "converted":
            assert entry.notes, entry.node  # says why
        if entry.status == "not converted":
            assert entry.todo, entry.node  # and what to do


def test_placeholders_stop_the_run_and_keep_the_code_beside_them() -> None:
    result = imported("unsupported")
    steps = {s["id"]: s for s in result.documents[0]["spec"]["steps"]}
    assert steps["python"]["uses"] == "core.fail"
    assert "not converted from n8n" in steps["python"]["with"]["message"]
    assert "  #       item.json['double'] = item.json['n'] * 2\n" in result.yaml
    assert "# PLACEHOLDER for n8n node 'Read sheet' (n8n-nodes-base.googleSheets)" in result.yaml
    # The expression n8n's Luxon dates need is kept verbatim, and cannot evaluate by accident.
    when = steps["dates"]["with"]["values"]["when"]
    assert when.startswith("n8n expression not converted: {{ $now.minus(")
    assert "${" not in when
    # The AI sub-node connection, the sticky note, pinned data and the error workflow setting
    # are named in the report.
    notes = result.report.notes
    assert any("ai_languageModel" in n for n in notes)
    # n8n's AI nodes point to the ai connector.
    agent = next(e for e in result.report.entries if e.node == "AI Agent")
    assert agent.todo is not None
    assert "ai.classify" in agent.todo and "docs/ai.md" in agent.todo
    assert "rewrite it with the ai connector" in steps["aIAgent"]["with"]["message"]
    assert (
        "sticky note 'Sticky Note' left out: '## Read me This workflow shows what cannot "
        "be imported.'" in notes
    )
    assert any(n.startswith("pinned test data of Read sheet") for n in notes)
    assert any(n.startswith("the error workflow setting") for n in notes)
    assert "stickyNote" not in result.yaml


def test_credentials_become_integration_stubs_without_secrets() -> None:
    result = imported("stripe-dunning")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in result.documents}
    assert ("Integration", "stripe-live") in kinds and ("Integration", "billing-gmail") in kinds
    stub = next(d for d in result.documents if d["metadata"]["name"] == "stripe-live")
    assert stub["spec"]["type"] == "stripe"
    assert stub["spec"]["secretRef"] == {"name": "stripe-live"}
    steps = {s["id"]: s for s in result.documents[0]["spec"]["steps"]}
    assert steps["charges"]["integration"] == "stripe-live"


def test_schedule_triggers_become_schedules_in_the_workflows_time_zone() -> None:
    result = imported("nightly-report")
    schedules = [d for d in result.documents if d["kind"] == "Schedule"]
    assert [(s["spec"]["cron"], s["spec"]["timezone"]) for s in schedules] == [
        ("30 6 * * *", "Europe/Berlin"),
        ("0 18 * * 5", "Europe/Berlin"),
    ]
    assert all(s["spec"]["workflowRef"] == {"name": "nightly-sales-report"} for s in schedules)
    cron = [d for d in imported("cron-cache").documents if d["kind"] == "Schedule"]
    assert [s["spec"]["cron"] for s in cron] == ["5 * * * *", "0 8 * * 1"]
    interval = [d for d in imported("older-nodes").documents if d["kind"] == "Schedule"]
    assert [s["spec"]["cron"] for s in interval] == ["*/15 * * * *"]
    dunning = [d for d in imported("stripe-dunning").documents if d["kind"] == "Schedule"]
    assert dunning[0]["spec"]["cron"] == "15 */4 * * *"


def test_webhook_trigger_and_respond_to_webhook() -> None:
    result = imported("order-webhook")
    spec = result.documents[0]["spec"]
    [trigger] = spec["triggers"]
    if triggers.gateway_model():  # the gateway's trigger: auth, the request as inputs, sync
        assert trigger["webhook"] == {
            "path": "/orders",
            "inputs": {"body": "${ body }", "headers": "${ headers }", "query": "${ query }"},
            "auth": {"none": True},
            "response": {"mode": "sync", "output": "response", "statusCode": 201},
        }
    else:
        assert trigger == {"webhook": {"path": "orders"}}
    assert set(spec["inputs"]) == {"body", "headers", "query", "params"}
    assert spec["outputs"] == {
        "response": "${ steps.respond.output.body }",
        "statusCode": "${ steps.respond.output.statusCode }",
    }


# -- expressions ---------------------------------------------------------------------------------


class At:
    """``$json`` is ``inputs.item``; ``$('Order')`` is a step whose output is one item."""

    def current(self) -> str:
        return "inputs.item"

    def node_item(self, name: str, which: str) -> str:
        assert name == "Order"
        return "steps.order.output" if which != "all" else "[steps.order.output]"

    def input_item(self, which: str) -> str:
        return "inputs.item" if which != "all" else "[inputs.item]"


DATA = {
    "inputs": {
        "item": {
            "name": " Ada ",
            "total": 120.5,
            "tags": ["vip", "eu"],
            "n": 3,
            "x": None,
            "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 0}],
        }
    },
    "steps": {"order": {"output": {"id": "o-1", "customer name": "Grace"}, "status": "Succeeded"}},
    "run": {"id": "r-1", "workflow": "w"},
    "env": {"SHOP": "https://shop"},
}

CASES = [
    ("={{ $json.total > 100 }}", True),
    ("=Total: {{ $json.total }} EUR", "Total: 120.5 EUR"),
    ("={{ $('Order').item.json.id }}", "o-1"),
    ('={{ $node["Order"].json["customer name"] }}', "Grace"),
    ("={{ $input.item.json.n * 2 }}", 6),
    ("={{ $json.name.trim().toUpperCase() }}", "ADA"),
    ("={{ 'n=' + $json.n }}", "n=3"),
    ("={{ $json.tags.length }}", 2),
    ("={{ $json.tags.includes('vip') ? 'gold' : 'std' }}", "gold"),
    ("={{ $json.tags.join('|') }}", "vip|eu"),
    ("={{ $json.x ?? 'none' }}", "none"),
    ("={{ $json.missing || 'fallback' }}", "fallback"),
    ("={{ !$json.missing }}", True),
    ("={{ !$json.x && $json.n >= 3 }}", True),
    ("={{ $json.n === 3 }}", True),
    ("={{ $json.n !== 3 }}", False),
    ("={{ `Hi ${$json.name.trim()}!` }}", "Hi Ada!"),
    ("={{ $json.lines.map(l => l.sku) }}", ["A", "B"]),
    ("={{ $json.lines.filter(l => l.qty > 0).length }}", 1),
    ("={{ Math.round($json.total) }}", 121),
    ("={{ JSON.stringify({a: $json.n}) }}", '{"a":3}'),
    ("={{ parseInt('42') + 1 }}", 43),
    ("={{ $execution.id }}", "r-1"),
    ("={{ $env.SHOP }}/orders", "https://shop/orders"),
    ("={{ $input.all().length }}", 1),
    ("={{ $json.name.split(' ')[1] }}", "Ada"),
    ("plain text with ${dollar}", "plain text with ${dollar}"),
]


@pytest.mark.parametrize(("n8n_value", "expected"), CASES)
def test_expressions_mean_the_same_after_translation(n8n_value: str, expected: Any) -> None:
    out = expressions.translate_value(n8n_value, At())
    assert out.failed is None
    template = runtime.compile_template(out.value, errors.Where())
    assert template.render(DATA) == expected


@pytest.mark.parametrize(
    ("n8n_value", "why"),
    [
        (
            "={{ $json.items.reduce((a, b) => a + b, 0) }}",
            "arrow functions with several parameters",
        ),
        ("={{ $json.items.indexOf('x') }}", ".indexOf() has no Autoflow equivalent"),
        ("={{ $now.toFormat('yyyy') }}", "$now date methods have no Autoflow equivalent"),
        ("={{ $json.a.match(/x/) }}", "regular expressions have no Autoflow equivalent"),
        ("={{ $binary.data }}", "$binary has no Autoflow equivalent"),
        ("={{ $json.a.map(x => { return x }) }}", "arrow functions with a block body"),
    ],
)
def test_what_cannot_be_translated_is_kept_verbatim_and_says_why(n8n_value: str, why: str) -> None:
    out = expressions.translate_value(n8n_value, At())
    assert out.failed is not None and why in out.failed
    assert out.value == "n8n expression not converted: " + n8n_value[1:].replace("${", "$${")


# -- running imported workflows against local servers --------------------------------------------


def test_saas_onboarding_runs_against_the_services_contracts(
    tmp_path: Path, server: httpserver.Server, saas: Any
) -> None:
    """Stripe customers/create, Mailchimp lists/members, Trello cards, Airtable records,
    Discord execute-webhook: one request each, as the n8n workflow made."""
    stripe_api = saas(stripe.Stripe)
    mc = saas(mailchimp.Mailchimp)
    saas(trello.Trello)
    at = saas(airtable.Airtable)
    dc = saas(discord.Discord)
    result = imported("saas-catalogue")
    outcome = run_imported(
        result,
        tmp_path,
        settings={
            "stripe-live": {"baseUrl": server.url("/v1")},
            "mailchimp": {"baseUrl": server.url("/3.0"), "dc": "us6"},
            "trello": {"baseUrl": server.url("/1")},
            "airtable": {"baseUrl": server.url("/v0")},
        },
        secrets={
            "stripe-live": {"apiKey": stripe.SECRET_KEY},
            "mailchimp": {"apiKey": mailchimp.API_KEY},
            "trello": {"apiKey": trello.API_KEY, "apiToken": trello.API_TOKEN},
            "airtable": {"token": airtable.TOKEN},
            "discord-hook": {"webhookUrl": server.url(dc.path)},
        },
        inputs={"body": {"name": "Ada Lovelace", "email": "ada@example.com", "plan": "pro"}},
    )
    assert outcome.phase == "Succeeded", outcome.error
    customer = stripe_api.objects["customer"][0]
    assert customer["email"] == "ada@example.com" and customer["metadata"] == {"plan": "pro"}
    member = server.last("/3.0/lists/57afe96172/members").json()
    assert member["merge_fields"]["FNAME"] == "Ada"
    card = server.last("/1/cards").query
    assert card["name"] == ["Onboard Ada Lovelace"] and card["desc"] == [
        f"Stripe: {customer['id']}"
    ]
    assert at.records[-1]["fields"] == {
        "Name": "Ada Lovelace",
        "Email": "ada@example.com",
        "Status": "Todo",
    }
    assert "**Ada Lovelace**" in server.last(dc.path).json()["content"]
    assert mc.violations == [] and at.violations == []


def test_deal_handover_runs_against_the_other_catalogue_services(
    tmp_path: Path, server: httpserver.Server, saas: Any
) -> None:
    """Pipedrive persons/deals (v2), Salesforce sObject create, Notion pages, Asana tasks,
    Dropbox create_folder_v2, SendGrid mail/send and a Teams workflow webhook, as their
    references document them: one request each, with the values the n8n nodes set."""
    pd = saas(pipedrive.Pipedrive)
    sf = saas(salesforce.Salesforce)
    nt = saas(notion.Notion)
    tasks = saas(asana.Asana)
    box = saas(dropbox.Dropbox)
    mail = saas(sendgrid.SendGrid)
    channel = saas(teams.Teams)
    outcome = run_imported(
        imported("saas-more"),
        tmp_path,
        settings={
            "pipedrive": {"baseUrl": server.url("/api/v2"), "companyDomain": "acme"},
            "salesforce": {"baseUrl": server.url(salesforce.API), "myDomain": "acme"},
            "notion": {"baseUrl": server.url("/v1")},
            "asana": {"baseUrl": server.url("/api/1.0")},
            "dropbox": {"baseUrl": server.url("/2")},
            "sendgrid": {"baseUrl": server.url("/v3")},
        },
        secrets={
            "pipedrive": {"apiToken": pipedrive.API_TOKEN},
            "salesforce": {"accessToken": salesforce.ACCESS_TOKEN},
            "notion": {"token": notion.TOKEN},
            "asana": {"token": asana.TOKEN},
            "dropbox": {"accessToken": dropbox.ACCESS_TOKEN},
            "sendgrid": {"apiKey": sendgrid.API_KEY},
            "teams": {"webhookUrl": channel.url},
        },
    )
    assert outcome.phase == "Succeeded", outcome.error
    [person] = pd.persons
    [deal] = pd.deals
    assert deal["title"] == "Acme Ltd renewal" and deal["value"] == 12000
    assert deal["person_id"] == person["id"]
    [lead] = sf.records.values()
    assert {k: lead[k] for k in ("Company", "LastName", "FirstName", "Email")} == {
        "Company": "Acme Ltd",
        "LastName": "King",
        "FirstName": "Ada",
        "Email": "ada@acme.example",
    }
    assert nt.pages[0]["properties"]["Amount"] == {"number": 12000}
    assert tasks.tasks[0]["name"] == "Kick-off with Acme Ltd"
    assert "/customers/acme ltd" in box.entries
    [sent] = mail.sent
    assert [p["email"] for p in sent["personalizations"][0]["to"]] == [
        "onboarding@example.com",
        "ada@acme.example",
    ]
    assert "Closed won: Acme Ltd (12000 EUR)" in json.dumps(server.last().json())


def test_github_to_jira_runs_the_opened_branch_only(
    tmp_path: Path, server: httpserver.Server, saas: Any
) -> None:
    """Jira issue create (REST v3) and GitHub issues/comments: an opened issue is copied to
    Jira and commented on with the key; the unconvertible IF is not on that path."""
    saas(jira.Jira)
    gh = saas(github.GitHub)
    gh.seed(7)
    gh.route_issue(7)
    result = imported("github-jira")
    # The unconvertible condition was converted after all (arrow in map): both IFs run.
    outcome = run_imported(
        result,
        tmp_path,
        settings={
            "jira-cloud": {"baseUrl": server.base_url, "site": "acme"},
            "github-bot": {"baseUrl": server.base_url},
        },
        secrets={
            "jira-cloud": {"email": jira.EMAIL, "apiToken": jira.API_TOKEN},
            "github-bot": {"token": github.TOKEN},
        },
        inputs={
            "body": {
                "action": "opened",
                "issue": {
                    "number": 7,
                    "title": "Checkout fails",
                    "body": "Stack trace",
                    "html_url": "https://gh/7",
                    "labels": [{"name": "bug"}],
                },
            }
        },
    )
    assert outcome.phase == "Succeeded", outcome.error
    created = server.last("/rest/api/3/issue").json()["fields"]
    assert created["summary"] == "Checkout fails"
    key = outcome.steps["createJiraIssue"].output["key"]
    comment = server.last("/repos/octo-org/hello-world/issues/7/comments").json()
    assert comment == {"body": f"Tracked in Jira as {key}"}
    assert outcome.steps["openedBug"].output == {"result": True}
    assert gh.violations == []
    closed = run_imported(
        result,
        tmp_path,
        settings={
            "jira-cloud": {"baseUrl": server.base_url, "site": "acme"},
            "github-bot": {"baseUrl": server.base_url},
        },
        secrets={
            "jira-cloud": {"email": jira.EMAIL, "apiToken": jira.API_TOKEN},
            "github-bot": {"token": github.TOKEN},
        },
        inputs={"body": {"action": "closed", "issue": {"number": 7, "labels": []}}},
    )
    assert closed.phase == "Succeeded"
    assert closed.steps["createJiraIssue"].phase == "Skipped"
    assert closed.steps["commentOnGitHub"].phase == "Skipped"


def test_http_shapes_send_what_n8n_sent(tmp_path: Path, server: httpserver.Server) -> None:
    server.route("/v1/orders", httpserver.Reply.with_json({"body": [1, 2, 3]}), method="GET")
    server.route("/v1/forms", httpserver.Reply(500, "down"), method="POST")
    server.route("/v1/notes", httpserver.Reply(204), method="PUT")
    outcome = run_imported(
        imported("http-shapes"),
        tmp_path,
        settings={"shop-api-key": {"headerName": "X-Api-Key"}},
        secrets={"shop-api-key": {"apiKey": "k-123"}},
        inputs={"body": {"api": server.base_url}, "query": {}, "params": {"tenant": "t1"}},
    )
    assert outcome.phase == "Succeeded", outcome.error
    listed = server.last("/v1/orders")
    assert listed.query == {"status": ["open"], "limit": ["10"]}
    assert listed.headers["x-api-key"] == "k-123"
    assert server.last("/v1/forms").form() == {"count": ["3"], "tenant": ["t1"]}
    assert server.last("/v1/notes").text == "Orders: 3"
    assert outcome.steps["postForm"].phase == "Failed"  # continueOnError, as n8n's onError
    assert outcome.steps["editFields"].output == {"done": True, "count": 1}
    # n8n answered with the last node's item (responseMode lastNode): the run's output.
    assert outcome.outputs == {"response": {"done": True, "count": 1}}


# -- the CLI and the web route -------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", "import", "n8n", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_cli_writes_files_and_exits_0_for_a_partial_conversion(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _cli(
        str(CORPUS / "unsupported.json"),
        str(CORPUS / "order-webhook.json"),
        "--to",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "order-webhook-to-slack-and-postgres.yaml",
        "things-the-importer-cannot-convert.yaml",
    ]
    assert (
        "not converted:\n    Read sheet (n8n-nodes-base.googleSheets v4.5) → step readSheet"
        in done.stdout
    )
    checked = subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", "validate", *map(str, out.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr


def test_cli_json_report_and_exit_1_for_what_is_not_an_export(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "steps": []}')
    done = _cli(str(CORPUS / "lead-routing-v1.json"), str(bad), "-o", "json", cwd=tmp_path)
    assert done.returncode == 1
    files = json.loads(done.stdout)["files"]
    assert files[0]["report"]["counts"] == {"converted": 8, "approximated": 1, "not converted": 0}
    assert yaml.safe_load_all(files[0]["yaml"]) is not None
    assert "not an n8n workflow export" in files[1]["error"]
    assert "not an n8n workflow export" in done.stderr


def test_the_import_route_answers_yaml_and_report() -> None:
    app = fastapi.FastAPI()
    app.include_router(routes.router(), prefix="/api")
    client = testclient.TestClient(app)
    export = json.loads((CORPUS / "order-webhook.json").read_text())
    answer = client.post("/api/import/n8n", json={"json": export})
    assert answer.status_code == 200
    body = answer.json()
    assert body["valid"] is True
    assert (
        next(yaml.safe_load_all(body["yaml"]))["metadata"]["name"]
        == "order-webhook-to-slack-and-postgres"
    )
    assert [n["node"] for n in body["report"]["nodes"] if n["status"] == "not converted"] == [
        "Code"
    ]
    as_text = client.post("/api/import/n8n", json={"json": json.dumps(export), "name": "Orders"})
    assert next(yaml.safe_load_all(as_text.json()["yaml"]))["metadata"]["name"] == "orders"
    refused = client.post("/api/import/n8n", json={"json": {"hello": 1}})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert "not an n8n workflow export" in refused.json()["detail"]


def test_not_an_export_says_why() -> None:
    with pytest.raises(n8n.NotAnExport, match="not JSON"):
        n8n.convert("nodes:", source="x.json")
    with pytest.raises(n8n.NotAnExport, match="has no type"):
        n8n.convert({"nodes": [{"name": "A"}], "connections": {}})
    several = n8n.convert_all([json.loads((CORPUS / "cron-cache.json").read_text())] * 2)
    assert len(several) == 2


def test_cli_prints_yaml_to_stdout_and_the_report_to_stderr(tmp_path: Path) -> None:
    done = _cli(str(CORPUS / "cron-cache.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout) if d]
    assert kinds == ["Workflow", "Schedule", "Schedule", "Integration"]
    assert "Workflow exchange-rate-cache: 5 converted, 2 approximated" in done.stderr


def test_two_exports_with_one_name_are_both_written(tmp_path: Path) -> None:
    twice = tmp_path / "twice.json"
    export = json.loads((CORPUS / "cron-cache.json").read_text())
    twice.write_text(json.dumps([export, export]))
    done = _cli(str(twice), "--to", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["exchange-rate-cache-2.yaml", "exchange-rate-cache.yaml"]


def test_credentials_typed_into_a_node_are_left_out_and_reported() -> None:
    export = {
        "name": "typed secrets",
        "nodes": [
            {
                "name": "Start",
                "type": "n8n-nodes-base.manualTrigger",
                "typeVersion": 1,
                "parameters": {},
            },
            {
                "name": "Call API",
                "type": "n8n-nodes-base.httpRequest",
                "typeVersion": 4.2,
                "parameters": {
                    "url": "https://api.example.com/x",
                    "sendHeaders": True,
                    "headerParameters": {
                        "parameters": [
                            {"name": "Authorization", "value": "Bearer sk-live-123"},
                            {"name": "Accept", "value": "application/json"},
                        ]
                    },
                    "sendQuery": True,
                    "queryParameters": {"parameters": [{"name": "api_key", "value": "k-999"}]},
                },
            },
        ],
        "connections": {"Start": {"main": [[{"node": "Call API", "type": "main", "index": 0}]]}},
    }
    result = n8n.convert(export)
    assert "sk-live-123" not in result.yaml and "k-999" not in result.yaml
    assert "sk-live-123" not in json.dumps(result.report.as_json())
    step = result.documents[0]["spec"]["steps"][0]
    assert step["with"]["headers"] == {"Accept": "application/json"}
    assert "query" not in step["with"]
    stub = next(d for d in result.documents if d["kind"] == "Integration")
    assert step["integration"] == stub["metadata"]["name"] == "call-api-credentials"
    assert stub["spec"]["settings"] == {"auth": "bearer"}
    [entry] = [e for e in result.report.entries if e.node == "Call API"]
    assert entry.status == "approximated"
    assert any("'Authorization' held a credential" in n for n in entry.notes)
    assert any("'api_key' held a credential" in n for n in entry.notes)
    assert result.report.valid


def test_a_schedule_items_timestamp_is_the_time_the_run_reads_it() -> None:
    export = {
        "name": "stamp",
        "nodes": [
            {
                "name": "Every hour",
                "type": "n8n-nodes-base.scheduleTrigger",
                "typeVersion": 1.2,
                "parameters": {"rule": {"interval": [{"field": "hours"}]}},
            },
            {
                "name": "Log",
                "type": "n8n-nodes-base.set",
                "typeVersion": 3.4,
                "parameters": {
                    "assignments": {
                        "assignments": [
                            {
                                "id": "1",
                                "name": "at",
                                "value": "={{ $json.timestamp }}",
                                "type": "string",
                            }
                        ]
                    }
                },
            },
        ],
        "connections": {"Every hour": {"main": [[{"node": "Log", "type": "main", "index": 0}]]}},
        "settings": {"timezone": "UTC"},
    }
    result = n8n.convert(export)
    assert result.report.valid
    step = result.documents[0]["spec"]["steps"][0]
    assert step["with"]["values"]["at"] == "${ {'timestamp': now()}.timestamp }"
    assert result.documents[1]["spec"]["cron"] == "0 * * * *"


def test_a_run_stops_at_the_first_placeholder_naming_the_node(tmp_path: Path) -> None:
    outcome = run_imported(imported("unsupported"), tmp_path)
    assert outcome.phase == "Failed"
    sheet = outcome.steps["readSheet"]
    assert sheet.phase == "Failed"
    assert "not converted from n8n: node 'Read sheet' (n8n-nodes-base.googleSheets)" in (
        sheet.error or ""
    )
    assert outcome.steps["python"].phase != "Succeeded"


def test_parameters_in_an_unknown_shape_become_placeholders_not_crashes() -> None:
    """A damaged export, or one from an n8n version with other parameter shapes: every node
    whose parameters cannot be read is a reported placeholder and the rest is converted."""
    import random

    from autoflow.webui.importers.n8n import catalog, services

    kinds = [*services.MAPPERS, *catalog.MAPPERS] + [
        f"n8n-nodes-base.{t}"
        for t in (
            "if",
            "filter",
            "switch",
            "merge",
            "splitInBatches",
            "respondToWebhook",
            "webhook",
            "scheduleTrigger",
            "cron",
            "wait",
        )
    ]
    odd: list[Any] = [None, "", "={{ ", 3, True, [], {}, [{"name": "a"}], {"values": [{}]}]
    keys = [
        "url",
        "method",
        "operation",
        "resource",
        "jsonBody",
        "assignments",
        "conditions",
        "rules",
        "columns",
        "rule",
        "triggerTimes",
        "options",
        "additionalFields",
        "output",
    ]
    rng = random.Random(7)
    for _ in range(300):
        nodes = [
            {
                "name": f"N{k}",
                "type": rng.choice(kinds),
                "typeVersion": rng.choice([1, 2, 3.4]),
                "parameters": {rng.choice(keys): rng.choice(odd) for _ in range(rng.randint(1, 4))},
            }
            for k in range(3)
        ]
        connections = {
            "N0": {"main": [[{"node": "N1", "type": "main", "index": 0}]]},
            "N1": {"main": [[{"node": "N2", "type": "main", "index": 0}]]},
        }
        result = n8n.convert({"name": "damaged", "nodes": nodes, "connections": connections})
        assert sorted(e.node for e in result.report.entries) == ["N0", "N1", "N2"]


def test_the_import_route_takes_the_web_apis_dependencies() -> None:
    def signed_in(request: fastapi.Request) -> None:
        if request.headers.get("authorization") != "Bearer t":
            raise fastapi.HTTPException(401, "sign in")

    app = fastapi.FastAPI()
    app.include_router(routes.router([fastapi.Depends(signed_in)]), prefix="/api")
    client = testclient.TestClient(app)
    export = json.loads((CORPUS / "cron-cache.json").read_text())
    assert client.post("/api/import/n8n", json={"json": export}).status_code == 401
    allowed = client.post(
        "/api/import/n8n", json={"json": export}, headers={"Authorization": "Bearer t"}
    )
    assert allowed.status_code == 200
