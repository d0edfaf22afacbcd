"""Declarative SaaS connectors: the format, the engine, and every catalogue action.

Each catalogue action runs as the engine runs it (its generated Params model validates the
step's ``with`` block, a real ``ActionContext`` carries the Integration's settings and
secrets, the output is dumped to journal JSON) against a contract server from
``tests/saas/``: a real HTTP server on 127.0.0.1 that follows the service's documented
request and response contract. Each test's docstring names the reference page it follows.
The Integration points the connector at the server through ``settings.baseUrl`` (webhook
connectors through their URL secret), so the paths are the service's real ones.
"""

from __future__ import annotations

import json
import logging
import pathlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpserver
import pydantic
import pytest
from saas import (
    airtable,
    asana,
    discord,
    dropbox,
    github,
    hubspot,
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

from autoflow.cli import inspect as cli_inspect
from autoflow.connectors import declarative, registry, sdk
from autoflow.connectors.declarative import auth as declarative_auth
from autoflow.connectors.declarative import templates
from autoflow.crds import errors, integration
from autoflow.runners.local import run as local

CATALOG = registry.Registry(entry_points=False)
IDEMPOTENCY_KEY = "run-1:step:0"

Call = Callable[..., Awaitable[Any]]


class DictSecrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str) -> str:
        if key not in self.values:
            raise errors.PermanentError(f"integration has no secret {key!r}")
        return self.values[key]


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    """Runs a catalogue action as one step of a run; the HTTP client closes with the fixture."""
    pool = sdk.ResourcePool()

    async def run(
        uses: str,
        with_: dict[str, Any],
        *,
        settings: dict[str, Any],
        secrets: dict[str, str],
        connectors: registry.Registry = CATALOG,
        key: str = IDEMPOTENCY_KEY,
    ) -> Any:
        action = connectors.action(uses)
        info = sdk.IntegrationInfo("saas", uses.partition(".")[0], settings, DictSecrets(secrets))
        ctx = sdk.ActionContext(
            run_id="run-1",
            step_id="step",
            attempt=1,
            idempotency_key=key,
            log=logging.LoggerAdapter(logging.getLogger("test.declarative"), {}),
            integration=info,
            pool=pool,
        )
        params = action.params.model_validate(with_)
        return action.dump_output(await action.func(params, ctx))

    yield run
    await pool.aclose()


def at(server: httpserver.Server, path: str = "", **secrets: str) -> dict[str, Any]:
    """An Integration whose baseUrl is the contract server (``path`` is the API's prefix)."""
    return {"settings": {"baseUrl": server.url(path)}, "secrets": secrets}


# GitHub


@pytest.fixture
def gh(server: httpserver.Server) -> Iterator[github.GitHub]:
    service = github.GitHub(server)
    yield service
    assert service.violations == []


def gh_auth(server: httpserver.Server) -> dict[str, Any]:
    return {"settings": {"baseUrl": server.base_url}, "secrets": {"token": github.TOKEN}}


async def test_github_create_issue(
    call: Call, server: httpserver.Server, gh: github.GitHub
) -> None:
    """docs.github.com/en/rest/issues/issues#create-an-issue: POST JSON, 201 with the issue."""
    out = await call(
        "github.create_issue",
        {"owner": "octo-org", "repo": "hello-world", "title": "Found a bug", "labels": ["bug"]},
        **gh_auth(server),
    )
    assert (out["number"], out["title"], out["labels"][0]["name"]) == (1, "Found a bug", "bug")
    sent = server.last()
    assert sent.json() == {"title": "Found a bug", "labels": ["bug"]}  # unset params left out
    assert sent.headers["authorization"] == f"Bearer {github.TOKEN}"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    assert "idempotency-key" not in sent.headers  # GitHub does not take one


async def test_github_update_issue(
    call: Call, server: httpserver.Server, gh: github.GitHub
) -> None:
    """docs.github.com/en/rest/issues/issues#update-an-issue: PATCH with state_reason."""
    gh.seed(3)
    out = await call(
        "github.update_issue",
        {
            "owner": "octo-org",
            "repo": "hello-world",
            "issueNumber": 2,
            "state": "closed",
            "stateReason": "not_planned",
        },
        **gh_auth(server),
    )
    assert (out["number"], out["state"], out["state_reason"]) == (2, "closed", "not_planned")
    assert server.last().json() == {"state": "closed", "state_reason": "not_planned"}


async def test_github_list_issues_follows_link_headers(
    call: Call, server: httpserver.Server, gh: github.GitHub
) -> None:
    """docs.github.com/en/rest/issues/issues#list-repository-issues and using-pagination:
    per_page up to 100, the Link header's rel="next" until there is none."""
    gh.seed(250)
    out = await call(
        "github.list_issues",
        {"owner": "octo-org", "repo": "hello-world", "labels": "bug,ui"},
        **gh_auth(server),
    )
    assert (out["pages"], out["truncated"], len(out["items"])) == (3, False, 250)
    assert [i["number"] for i in out["items"][:2]] == [250, 249]
    pages = [r.query for r in server.requests]
    assert pages[0] == {
        "state": ["open"],
        "labels": ["bug,ui"],
        "per_page": ["100"],
    }
    assert pages[2]["page"] == ["3"] and pages[2]["labels"] == ["bug,ui"]
    assert all(r.headers["authorization"] == f"Bearer {github.TOKEN}" for r in server.requests)


async def test_github_add_comment(call: Call, server: httpserver.Server, gh: github.GitHub) -> None:
    """docs.github.com/en/rest/issues/comments#create-an-issue-comment: POST {body}, 201."""
    gh.seed(1)
    out = await call(
        "github.add_comment",
        {"owner": "octo-org", "repo": "hello-world", "issueNumber": 1, "body": "Fixed in #2"},
        **gh_auth(server),
    )
    assert out["body"] == "Fixed in #2"
    assert server.last().path == "/repos/octo-org/hello-world/issues/1/comments"


async def test_github_validation_failed_says_which_field(
    call: Call, server: httpserver.Server, gh: github.GitHub
) -> None:
    """docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api: 422
    Validation Failed lists the failing fields; it is permanent."""
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "github.create_issue",
            {"owner": "octo-org", "repo": "hello-world", "title": "x", "assignees": ["mallory"]},
            **gh_auth(server),
        )
    assert info.value.message.startswith(
        "GitHub: HTTP 422 Unprocessable Entity from POST http://127.0.0.1:"
    )
    assert info.value.message.endswith(
        ": Validation Failed: resource: Issue; code: invalid; field: assignees; value: mallory"
    )
    gh.violations.clear()


async def test_github_bad_credentials_are_permanent(
    call: Call, server: httpserver.Server, gh: github.GitHub
) -> None:
    """docs.github.com/en/rest/authentication: a refused token answers 401 Bad credentials."""
    gh.seed(1)
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "github.update_issue",
            {"owner": "octo-org", "repo": "hello-world", "issueNumber": 1, "title": "x"},
            settings={"baseUrl": server.base_url},
            secrets={"token": "wrong"},
        )
    assert info.value.message.startswith("GitHub: HTTP 401 Unauthorized from PATCH ")
    assert info.value.message.endswith(": Bad credentials")
    gh.violations.clear()


async def test_github_rate_limit_is_retryable_until_the_reset(
    call: Call, server: httpserver.Server, gh: github.GitHub
) -> None:
    """docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api: a used-up
    quota answers 403 with x-ratelimit-remaining 0 and x-ratelimit-reset in Unix seconds."""
    reset = int(time.time()) + 120
    server.queue("/repos/octo-org/hello-world/issues", gh.rate_limit_reply(reset))
    with pytest.raises(errors.RetryableError) as info:
        await call(
            "github.create_issue",
            {"owner": "octo-org", "repo": "hello-world", "title": "x"},
            **gh_auth(server),
        )
    assert info.value.retry_after is not None
    assert 115 <= info.value.retry_after <= 120
    assert "API rate limit exceeded" in info.value.message


# Jira


async def test_jira_create_issue(call: Call, server: httpserver.Server, saas: Any) -> None:
    """developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-post:
    basic auth with email and API token; the description in Atlassian Document Format."""
    saas(jira.Jira)
    out = await call(
        "jira.create_issue",
        {
            "projectKey": "OPS",
            "summary": "Disk full on db-1",
            "description": "The data volume is at 100%.",
            "labels": ["infra"],
            "fields": {"customfield_10010": 5},
        },
        **at(server, email=jira.EMAIL, apiToken=jira.API_TOKEN),
    )
    assert out == {"id": "10001", "key": "OPS-1", "self": server.url("/rest/api/3/issue/10001")}
    sent = server.last().json()["fields"]
    assert sent == {
        "customfield_10010": 5,
        "project": {"key": "OPS"},
        "summary": "Disk full on db-1",
        "issuetype": {"name": "Task"},
        "description": {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "paragraph",
                    "content": [{"type": "text", "text": "The data volume is at 100%."}],
                }
            ],
        },
        "labels": ["infra"],
    }


async def test_jira_field_errors_come_from_the_errors_map(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """...rest/v3/intro/#status-codes: a 400 lists field problems in ``errors``."""
    service = saas(jira.Jira)
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "jira.create_issue",
            {"projectKey": "NOPE", "summary": "x"},
            **at(server, email=jira.EMAIL, apiToken=jira.API_TOKEN),
        )
    assert info.value.message.endswith(": project: Specify a valid project ID or key")
    service.violations.clear()


async def test_jira_search_pages_with_next_page_token(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """...api-group-issue-search/#api-rest-api-3-search-jql-get: maxResults and nextPageToken
    until the last page, which has none."""
    saas(jira.Jira).seed(230)
    out = await call(
        "jira.search_issues",
        {"jql": "project = OPS ORDER BY created"},
        **at(server, email=jira.EMAIL, apiToken=jira.API_TOKEN),
    )
    assert (len(out["items"]), out["pages"], out["truncated"]) == (230, 3, False)
    assert out["items"][229]["key"] == "OPS-230"
    first, second = server.requests[:2]
    assert first.query == {
        "jql": ["project = OPS ORDER BY created"],
        "fields": ["*navigable"],
        "maxResults": ["100"],
    }
    assert second.query["nextPageToken"] == ["100"]


async def test_jira_comment_and_transition(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """...api-group-issue-comments/#api-rest-api-3-issue-issueidorkey-comment-post and
    api-group-issues/#api-rest-api-3-issue-issueidorkey-transitions-get and -post (204)."""
    service = saas(jira.Jira)
    service.seed(1)
    auth = at(server, email=jira.EMAIL, apiToken=jira.API_TOKEN)
    comment = await call("jira.add_comment", {"issueKey": "OPS-1", "text": "On it."}, **auth)
    assert comment["body"]["content"][0]["content"][0]["text"] == "On it."
    transitions = await call("jira.get_transitions", {"issueKey": "OPS-1"}, **auth)
    done = next(t["id"] for t in transitions if t["name"] == "Done")
    out = await call("jira.transition_issue", {"issueKey": "OPS-1", "transitionId": done}, **auth)
    assert out is None  # 204 No Content
    assert server.last().json() == {"transition": {"id": "31"}}
    assert service.issues[0]["fields"]["status"]["name"] == "Done"
    with pytest.raises(errors.PermanentError, match="Transition id '99' is not valid"):
        await call("jira.transition_issue", {"issueKey": "OPS-1", "transitionId": "99"}, **auth)


# Trello


async def test_trello_create_card_sends_fields_and_credentials_as_query(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developer.atlassian.com/cloud/trello/rest/api-group-cards/#api-cards-post and the
    authorization guide: key and token query parameters, card fields in the query."""
    saas(trello.Trello)
    out = await call(
        "trello.create_card",
        {"idList": trello.LIST_ID, "name": "Call Ada", "desc": "About the renewal"},
        **at(server, "/1", apiKey=trello.API_KEY, apiToken=trello.API_TOKEN),
    )
    assert (out["name"], out["idList"], out["closed"]) == ("Call Ada", trello.LIST_ID, False)
    sent = server.last()
    assert sent.path == "/1/cards"
    assert sent.query == {
        "idList": [trello.LIST_ID],
        "name": ["Call Ada"],
        "desc": ["About the renewal"],
        "key": [trello.API_KEY],
        "token": [trello.API_TOKEN],
    }
    assert sent.body == b""


async def test_trello_update_card_and_comment(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """...api-group-cards/#api-cards-id-put and #api-cards-id-actions-comments-post."""
    saas(trello.Trello)
    auth = at(server, "/1", apiKey=trello.API_KEY, apiToken=trello.API_TOKEN)
    card = await call("trello.create_card", {"idList": trello.LIST_ID, "name": "x"}, **auth)
    moved = await call(
        "trello.update_card",
        {"cardId": card["id"], "idList": "5abbe4b7ddc1b351ef961415", "dueComplete": True},
        **auth,
    )
    assert (moved["idList"], moved["dueComplete"]) == ("5abbe4b7ddc1b351ef961415", True)
    assert server.last().query["dueComplete"] == ["true"]
    comment = await call("trello.add_comment", {"cardId": card["id"], "text": "Done"}, **auth)
    assert (comment["type"], comment["data"]["text"]) == ("commentCard", "Done")


async def test_trello_text_errors_keep_the_credentials_out(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """Trello answers errors as plain text (``invalid value for idList``); the key and token
    sit in the request's query, so the error's URL shows them masked."""
    service = saas(trello.Trello)
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "trello.create_card",
            {"idList": "nope", "name": "x"},
            **at(server, "/1", apiKey=trello.API_KEY, apiToken=trello.API_TOKEN),
        )
    assert info.value.message.endswith(": invalid value for idList")
    assert "key=***" in info.value.message and "token=***" in info.value.message
    assert trello.API_KEY not in str(info.value) + str(info.value.details)
    service.violations.clear()


# Asana


async def test_asana_create_task_wraps_data(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developers.asana.com/reference/createtask: {"data": {...}} in and out, 201."""
    saas(asana.Asana)
    out = await call(
        "asana.create_task",
        {"name": "Send contract", "projectId": asana.PROJECT, "dueOn": "2025-02-01"},
        **at(server, "/api/1.0", token=asana.TOKEN),
    )
    assert (out["name"], out["due_on"], out["projects"][0]["gid"]) == (
        "Send contract",
        "2025-02-01",
        asana.PROJECT,
    )
    assert server.last().json() == {
        "data": {"name": "Send contract", "projects": [asana.PROJECT], "due_on": "2025-02-01"}
    }


async def test_asana_error_message(call: Call, server: httpserver.Server, saas: Any) -> None:
    """developers.asana.com/docs/errors: {"errors": [{"message", "help"}]}."""
    service = saas(asana.Asana)
    with pytest.raises(errors.PermanentError) as info:
        await call("asana.create_task", {"name": "x"}, **at(server, "/api/1.0", token=asana.TOKEN))
    assert info.value.message.endswith(
        "HTTP 400 Bad Request from POST "
        + server.url("/api/1.0/tasks")
        + ": You should specify one of workspace, parent, projects"
    )
    service.violations.clear()


async def test_asana_update_list_and_comment(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developers.asana.com/reference/updatetask, /gettasksforproject (limit and offset;
    next_page.offset until next_page is null) and /createstoryfortask."""
    service = saas(asana.Asana)
    service.seed(230)
    auth = at(server, "/api/1.0", token=asana.TOKEN)
    task = service.tasks[0]["gid"]
    done = await call("asana.update_task", {"taskId": task, "completed": True}, **auth)
    assert done["completed"] is True
    listed = await call("asana.list_project_tasks", {"projectId": asana.PROJECT}, **auth)
    assert (len(listed["items"]), listed["pages"]) == (230, 3)
    assert listed["items"][0] == {
        "gid": task,
        "resource_type": "task",
        "name": "Task 1",
        "completed": True,
        "due_on": None,
    }
    assert [r.query.get("offset") for r in server.requests[1:]] == [None, ["100"], ["200"]]
    story = await call("asana.add_comment", {"taskId": task, "text": "Signed."}, **auth)
    assert (story["type"], story["text"]) == ("comment", "Signed.")


# HubSpot


async def test_hubspot_create_contact_merges_properties(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developers.hubspot.com/docs/api/crm/contacts: POST {"properties": {...}}, 201."""
    saas(hubspot.HubSpot)
    out = await call(
        "hubspot.create_contact",
        {"email": "ada@acme.example", "firstName": "Ada", "properties": {"lifecyclestage": "lead"}},
        **at(server, token=hubspot.TOKEN),
    )
    assert out["id"] == "100"
    assert server.last().json() == {
        "properties": {"lifecyclestage": "lead", "email": "ada@acme.example", "firstname": "Ada"}
    }


async def test_hubspot_conflict_message_and_category(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developers.hubspot.com/docs/api/crm/contacts: a second contact with the same email is
    409 CONFLICT; the message and category come from HubSpot's error body."""
    service = saas(hubspot.HubSpot)
    auth = at(server, token=hubspot.TOKEN)
    await call("hubspot.create_contact", {"email": "ada@acme.example"}, **auth)
    with pytest.raises(errors.PermanentError) as info:
        await call("hubspot.create_contact", {"email": "ada@acme.example"}, **auth)
    assert info.value.message.endswith(": Contact already exists. Existing ID: 100 (CONFLICT)")
    service.violations.clear()


async def test_hubspot_search_pages_with_after_in_the_body(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developers.hubspot.com/docs/api/crm/search: limit and after in the JSON body,
    paging.next.after while there are more results."""
    service = saas(hubspot.HubSpot)
    service.seed(230)
    out = await call(
        "hubspot.search_contacts",
        {"query": "acme", "properties": ["email", "company"]},
        **at(server, token=hubspot.TOKEN),
    )
    assert (len(out["items"]), out["pages"]) == (230, 3)
    bodies = [r.json() for r in server.requests]
    assert bodies[0] == {"query": "acme", "properties": ["email", "company"], "limit": 100}
    assert [b.get("after") for b in bodies] == [None, "100", "200"]


async def test_hubspot_update_contact_and_create_deal(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developers.hubspot.com/docs/api/crm/contacts (PATCH) and /crm/deals (create)."""
    service = saas(hubspot.HubSpot)
    service.seed(1)
    auth = at(server, token=hubspot.TOKEN)
    updated = await call(
        "hubspot.update_contact",
        {"contactId": "100", "properties": {"phone": "+49 30 1234"}},
        **auth,
    )
    assert updated["properties"]["phone"] == "+49 30 1234"
    deal = await call(
        "hubspot.create_deal",
        {"dealName": "Acme renewal", "dealStage": "appointmentscheduled", "amount": 1200.5},
        **auth,
    )
    assert deal["properties"] == {
        "dealname": "Acme renewal",
        "amount": 1200.5,
        "pipeline": "default",
        "dealstage": "appointmentscheduled",
    }


# Pipedrive


async def test_pipedrive_create_and_update_deal(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developers.pipedrive.com/docs/api/v1/Deals#addDeal and #updateDeal (v2 endpoints) and
    core-api-concepts-authentication: the x-api-token header; answers {success, data}."""
    saas(pipedrive.Pipedrive)
    auth = at(server, "/api/v2", apiToken=pipedrive.API_TOKEN)
    deal = await call(
        "pipedrive.create_deal",
        {"title": "Acme renewal", "value": 1200, "currency": "EUR", "personId": 7},
        **auth,
    )
    assert (deal["id"], deal["title"], deal["person_id"]) == (1, "Acme renewal", 7)
    assert server.last().headers["x-api-token"] == pipedrive.API_TOKEN
    won = await call("pipedrive.update_deal", {"dealId": 1, "status": "won"}, **auth)
    assert won["status"] == "won"
    assert server.last().method == "PATCH"


async def test_pipedrive_list_deals_with_cursor(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """core-api-concepts-pagination: cursor and limit in, additional_data.next_cursor out."""
    saas(pipedrive.Pipedrive).seed(230)
    out = await call(
        "pipedrive.list_deals",
        {"status": "open"},
        **at(server, "/api/v2", apiToken=pipedrive.API_TOKEN),
    )
    assert (len(out["items"]), out["pages"]) == (115, 2)
    assert [r.query.get("cursor") for r in server.requests] == [None, ["100"]]


async def test_pipedrive_create_person(call: Call, server: httpserver.Server, saas: Any) -> None:
    """developers.pipedrive.com/docs/api/v1/Persons#addPerson (v2): emails and phones as
    [{value, primary, label}]."""
    saas(pipedrive.Pipedrive)
    out = await call(
        "pipedrive.create_person",
        {"name": "Ada Lovelace", "email": "ada@acme.example"},
        **at(server, "/api/v2", apiToken=pipedrive.API_TOKEN),
    )
    assert out["emails"] == [{"value": "ada@acme.example", "primary": True, "label": "work"}]
    assert "phones" not in server.last().json()


async def test_pipedrive_refused_token_message(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """core-api-concepts-authentication: a wrong token is 401 {success: false, error}."""
    service = saas(pipedrive.Pipedrive)
    with pytest.raises(errors.PermanentError) as info:
        await call("pipedrive.create_deal", {"title": "x"}, **at(server, "/api/v2", apiToken="bad"))
    assert info.value.message.endswith(": unauthorized access")
    service.violations.clear()


# Salesforce


async def test_salesforce_create_get_and_update_record(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_create.htm,
    dome_sobject_retrieve_get.htm and dome_update_fields.htm (PATCH answers 204)."""
    saas(salesforce.Salesforce)
    auth = at(server, salesforce.API, accessToken=salesforce.ACCESS_TOKEN)
    created = await call(
        "salesforce.create_record",
        {"object": "Lead", "fields": {"LastName": "Lovelace", "Company": "Acme"}},
        **auth,
    )
    assert created["success"] is True
    record_id = created["id"]
    assert server.last().path == f"{salesforce.API}/sobjects/Lead/"
    got = await call(
        "salesforce.get_record",
        {"object": "Lead", "recordId": record_id, "fields": "LastName,Company"},
        **auth,
    )
    assert (got["Id"], got["LastName"], got["Company"]) == (record_id, "Lovelace", "Acme")
    changed = await call(
        "salesforce.update_record",
        {"object": "Lead", "recordId": record_id, "fields": {"Company": "Acme Ltd"}},
        **auth,
    )
    assert changed is None
    assert server.last().json() == {"Company": "Acme Ltd"}


async def test_salesforce_errors_are_an_array(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """.../api_rest/errorcodes.htm: [{"message", "errorCode", "fields"}]."""
    saas(salesforce.Salesforce)
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "salesforce.create_record",
            {"object": "Lead", "fields": {"LastName": "Lovelace"}},
            **at(server, salesforce.API, accessToken=salesforce.ACCESS_TOKEN),
        )
    assert info.value.message.endswith(
        ": Required fields are missing: [Company] (REQUIRED_FIELD_MISSING)"
    )


async def test_salesforce_expired_token_points_at_oauth(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """.../api_rest/errorcodes.htm: 401 INVALID_SESSION_ID when the access token expired."""
    service = saas(salesforce.Salesforce)
    service.token = "rotated"
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "salesforce.query",
            {"soql": "SELECT Id FROM Account"},
            **at(server, salesforce.API, accessToken=salesforce.ACCESS_TOKEN),
        )
    assert "Session expired or invalid (INVALID_SESSION_ID)" in info.value.message
    assert "OAuth2 access token was refused" in info.value.message
    service.violations.clear()


async def test_salesforce_query_follows_next_records_url(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """.../api_rest/dome_query.htm: nextRecordsUrl (a path from the host's root) while done
    is false."""
    service = saas(salesforce.Salesforce)
    service.batch = 100
    service.seed(250)
    out = await call(
        "salesforce.query",
        {"soql": "SELECT Id, Name FROM Account"},
        **at(server, salesforce.API, accessToken=salesforce.ACCESS_TOKEN),
    )
    assert (len(out["items"]), out["pages"]) == (250, 3)
    assert [r.path for r in server.requests] == [
        f"{salesforce.API}/query",
        f"{salesforce.API}/query/01gRO0000016PIAYA2-100",
        f"{salesforce.API}/query/01gRO0000016PIAYA2-200",
    ]
    assert all(r.headers["authorization"].startswith("Bearer ") for r in server.requests)


# Stripe


async def test_stripe_create_customer_form_encoded(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """docs.stripe.com/api/authentication (basic auth, the key as user name, no password) and
    /api/customers/create: form-encoded body, nested metadata[key]=value."""
    saas(stripe.Stripe)
    out = await call(
        "stripe.create_customer",
        {"email": "ada@acme.example", "name": "Ada", "metadata": {"crmId": 42}},
        **at(server, "/v1", apiKey=stripe.SECRET_KEY),
    )
    assert (out["object"], out["email"]) == ("customer", "ada@acme.example")
    sent = server.last()
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.form() == {
        "email": ["ada@acme.example"],
        "name": ["Ada"],
        "metadata[crmId]": ["42"],
    }
    assert sent.headers["idempotency-key"] == IDEMPOTENCY_KEY


async def test_stripe_payment_intent_is_created_once_across_retries(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """docs.stripe.com/api/payment_intents/create and /api/idempotent_requests: the step's
    idempotency key makes a retried step get the first PaymentIntent back."""
    service = saas(stripe.Stripe)
    params = {
        "amount": 1099,
        "currency": "eur",
        "automaticPaymentMethods": True,
        "metadata": {"order": "A-17"},
    }
    auth = at(server, "/v1", apiKey=stripe.SECRET_KEY)
    first = await call("stripe.create_payment_intent", params, **auth)
    again = await call("stripe.create_payment_intent", params, **auth)
    assert first == again
    assert (first["amount"], first["status"]) == (1099, "requires_payment_method")
    assert len(service.objects["payment_intent"]) == 1
    assert server.requests[0].form() == {
        "amount": ["1099"],
        "currency": ["eur"],
        "automatic_payment_methods[enabled]": ["true"],
        "metadata[order]": ["A-17"],
    }


async def test_stripe_lists_go_in_indexed_form_fields(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """docs.stripe.com/api/payment_intents/create: payment_method_types is an array."""
    saas(stripe.Stripe)
    await call(
        "stripe.create_payment_intent",
        {"amount": 500, "currency": "eur", "paymentMethodTypes": ["card", "sepa_debit"]},
        **at(server, "/v1", apiKey=stripe.SECRET_KEY),
    )
    form = server.last().form()
    assert form["payment_method_types[0]"] == ["card"]
    assert form["payment_method_types[1]"] == ["sepa_debit"]


async def test_stripe_refund_twice_is_permanent_with_the_code(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """docs.stripe.com/api/refunds/create and /api/errors: the error's message and code, and
    Stripe-Should-Retry: false."""
    saas(stripe.Stripe)
    auth = at(server, "/v1", apiKey=stripe.SECRET_KEY)
    refund = await call("stripe.create_refund", {"paymentIntent": "pi_1", "amount": 500}, **auth)
    assert (refund["object"], refund["amount"], refund["status"]) == ("refund", 500, "succeeded")
    with pytest.raises(errors.PermanentError) as info:
        # Another step, so another idempotency key: Stripe really tries a second refund.
        await call("stripe.create_refund", {"paymentIntent": "pi_1"}, **auth, key="run-1:b:0")
    assert info.value.message.endswith(
        ": Charge for pi_1 has already been refunded. (charge_already_refunded)"
    )


async def test_stripe_list_charges_with_starting_after(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """docs.stripe.com/api/pagination: limit, starting_after = the last object's id,
    has_more; docs.stripe.com/api/charges/list: customer and created[gte] filters."""
    service = saas(stripe.Stripe)
    service.seed_charges(230)
    out = await call(
        "stripe.list_charges",
        {"customer": "cus_NffrFeUfNV2Hib", "createdAfter": 1_699_999_800},
        **at(server, "/v1", apiKey=stripe.SECRET_KEY),
    )
    assert (len(out["items"]), out["pages"]) == (201, 3)
    first, second = server.requests[:2]
    assert first.query == {
        "customer": ["cus_NffrFeUfNV2Hib"],
        "created[gte]": ["1699999800"],
        "limit": ["100"],
    }
    assert second.query["starting_after"] == [out["items"][99]["id"]]
    assert "idempotency-key" not in first.headers  # GET


# SendGrid


async def test_sendgrid_send_mail(call: Call, server: httpserver.Server, saas: Any) -> None:
    """twilio.com/docs/sendgrid/api-reference/mail-send/mail-send: personalizations, from,
    subject, content (text/plain first); 202 Accepted with no body."""
    service = saas(sendgrid.SendGrid)
    out = await call(
        "sendgrid.send_mail",
        {
            "to": [{"email": "ada@acme.example", "name": "Ada"}, {"email": "bob@acme.example"}],
            "fromEmail": "orders@shop.example",
            "subject": "Your order",
            "text": "Thanks!",
            "html": "<p>Thanks!</p>",
        },
        **at(server, "/v3", apiKey=sendgrid.API_KEY),
    )
    assert out is None
    assert service.sent == [
        {
            "personalizations": [
                {
                    "to": [
                        {"email": "ada@acme.example", "name": "Ada"},
                        {"email": "bob@acme.example"},
                    ]
                }
            ],
            "from": {"email": "orders@shop.example"},
            "subject": "Your order",
            "content": [
                {"type": "text/plain", "value": "Thanks!"},
                {"type": "text/html", "value": "<p>Thanks!</p>"},
            ],
        }
    ]


async def test_sendgrid_dynamic_template_and_missing_content(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """.../mail-send/mail-send: a template_id replaces content and subject; without either,
    400 with SendGrid's messages."""
    service = saas(sendgrid.SendGrid)
    auth = at(server, "/v3", apiKey=sendgrid.API_KEY)
    base = {"to": [{"email": "ada@acme.example"}], "fromEmail": "orders@shop.example"}
    await call(
        "sendgrid.send_mail",
        {**base, "templateId": "d-13b8f94f", "templateData": {"order": "A-17"}},
        **auth,
    )
    assert service.sent[0]["personalizations"][0]["dynamic_template_data"] == {"order": "A-17"}
    with pytest.raises(errors.PermanentError) as info:
        await call("sendgrid.send_mail", {**base, "subject": "Hi"}, **auth)
    assert info.value.message.endswith(
        ": Unless a valid template_id is provided, the content parameter is required."
    )
    service.violations.clear()


async def test_sendgrid_add_contact(call: Call, server: httpserver.Server, saas: Any) -> None:
    """twilio.com/docs/sendgrid/api-reference/contacts/add-or-update-a-contact: PUT, 202 with
    a job_id."""
    service = saas(sendgrid.SendGrid)
    out = await call(
        "sendgrid.add_contact",
        {"email": "ada@acme.example", "firstName": "Ada", "listIds": ["ca7a3796"]},
        **at(server, "/v3", apiKey=sendgrid.API_KEY),
    )
    assert out == {"job_id": "2387e363-4104-4225-8960-4a5758492351"}
    assert service.contacts == [{"email": "ada@acme.example", "first_name": "Ada"}]
    assert server.last().json()["list_ids"] == ["ca7a3796"]


async def test_sendgrid_429_waits_for_the_rate_limit_reset(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits:
    429 with X-RateLimit-Remaining 0 and X-RateLimit-Reset (Unix seconds), no Retry-After."""
    saas(sendgrid.SendGrid)
    reset = int(time.time()) + 40
    server.queue(
        "/v3/mail/send",
        httpserver.Reply.with_json(
            {"errors": [{"field": None, "message": "too many requests"}]},
            429,
            {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            },
        ),
    )
    with pytest.raises(errors.RetryableError) as info:
        await call(
            "sendgrid.send_mail",
            {
                "to": [{"email": "a@b.example"}],
                "fromEmail": "o@s.example",
                "subject": "s",
                "text": "t",
            },
            **at(server, "/v3", apiKey=sendgrid.API_KEY),
        )
    assert info.value.retry_after is not None and 35 <= info.value.retry_after <= 40
    assert info.value.message.endswith(": too many requests")


# Mailchimp


async def test_mailchimp_add_member(call: Call, server: httpserver.Server, saas: Any) -> None:
    """mailchimp.com/developer/marketing/api/list-members/add-member-to-list/ and the quick
    start's basic auth (any user name, the API key as the password)."""
    saas(mailchimp.Mailchimp)
    out = await call(
        "mailchimp.add_member",
        {"listId": mailchimp.LIST_ID, "email": "ada@acme.example", "firstName": "Ada"},
        **at(server, "/3.0", apiKey=mailchimp.API_KEY),
    )
    assert (out["status"], out["merge_fields"]) == ("subscribed", {"FNAME": "Ada"})
    assert server.last().json() == {
        "email_address": "ada@acme.example",
        "status": "subscribed",
        "merge_fields": {"FNAME": "Ada"},
    }


async def test_mailchimp_problem_details(call: Call, server: httpserver.Server, saas: Any) -> None:
    """mailchimp.com/developer/marketing/docs/errors/: application/problem+json with title
    and detail."""
    saas(mailchimp.Mailchimp).seed(1)
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "mailchimp.add_member",
            {"listId": mailchimp.LIST_ID, "email": "reader0@example.com"},
            **at(server, "/3.0", apiKey=mailchimp.API_KEY),
        )
    assert info.value.message.endswith(
        ": reader0@example.com is already a list member. Use PUT to insert or update list "
        "members. (Member Exists)"
    )


async def test_mailchimp_list_members_by_offset(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """.../list-members/list-members-info/: count and offset, until total_items."""
    saas(mailchimp.Mailchimp).seed(1000)
    out = await call(
        "mailchimp.list_members",
        {"listId": mailchimp.LIST_ID},
        **at(server, "/3.0", apiKey=mailchimp.API_KEY),
    )
    assert (len(out["items"]), out["pages"]) == (1000, 2)  # total_items says no third page
    assert [r.query["offset"] for r in server.requests] == [["0"], ["500"]]
    assert server.requests[0].query["count"] == ["500"]


# Discord


async def test_discord_send_message(call: Call, server: httpserver.Server, saas: Any) -> None:
    """discord.com/developers/docs/resources/webhook#execute-webhook: JSON params, wait=true
    for the created message."""
    service = saas(discord.Discord)
    out = await call(
        "discord.send_message",
        {"content": "Order A-17 shipped", "username": "Shop", "avatarUrl": "https://x/a.png"},
        settings={},
        secrets={"webhookUrl": service.url},
    )
    assert (out["content"], out["author"]["username"], out["webhook_id"]) == (
        "Order A-17 shipped",
        "Shop",
        discord.WEBHOOK_ID,
    )
    sent = server.last()
    assert sent.query == {"wait": ["true"]}
    assert sent.json() == {
        "content": "Order A-17 shipped",
        "username": "Shop",
        "avatar_url": "https://x/a.png",
    }


async def test_discord_errors_and_rate_limits(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """discord.com/developers/docs/topics/opcodes-and-status-codes (50006) and
    /topics/rate-limits: 429 with Retry-After and X-RateLimit-Reset-After."""
    service = saas(discord.Discord)
    secrets = {"webhookUrl": service.url}
    with pytest.raises(errors.PermanentError) as info:
        await call("discord.send_message", {"username": "Shop"}, settings={}, secrets=secrets)
    assert info.value.message.endswith(": Cannot send an empty message (50006)")
    server.queue(service.path, service.rate_limited(1.5))
    with pytest.raises(errors.RetryableError) as limited:
        await call("discord.send_message", {"content": "x"}, settings={}, secrets=secrets)
    assert limited.value.retry_after == 2  # Retry-After wins over the reset header
    server.queue(service.path, service.invalid_token_reply())
    with pytest.raises(errors.PermanentError) as refused:
        await call("discord.send_message", {"content": "x"}, settings={}, secrets=secrets)
    assert refused.value.message.startswith(
        "Discord: HTTP 401 Unauthorized from POST ***?wait=true"
    )
    assert discord.WEBHOOK_TOKEN not in str(refused.value) + str(refused.value.details)


# Microsoft Teams


async def test_teams_post_message_as_adaptive_card(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """learn.microsoft.com/.../webhooks-and-connectors/how-to/connectors-using#send-adaptive-
    cards-using-an-incoming-webhook: a message whose attachment is an Adaptive Card; 202."""
    service = saas(teams.Teams)
    secrets = {"webhookUrl": service.url}
    out = await call(
        "teams.post_message", {"text": "Deploy done", "title": "CI"}, settings={}, secrets=secrets
    )
    assert out is None
    await call("teams.post_message", {"text": "No title"}, settings={}, secrets=secrets)
    bodies = [m["attachments"][0]["content"]["body"] for m in service.posted]
    assert [b["text"] for b in bodies[0]] == ["CI", "Deploy done"]
    assert [b["text"] for b in bodies[1]] == ["No title"]
    assert service.posted[0]["attachments"][0]["contentUrl"] is None
    assert server.last().query["sig"] == [teams.SIG]


async def test_teams_post_card_and_a_bad_signature(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """The same page, and the Logic Apps request trigger: a wrong sig is 401 with
    {"error": {"code", "message"}}; the URL's sig never shows."""
    service = saas(teams.Teams)
    card = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "Hi"}]}
    await call("teams.post_card", {"card": card}, settings={}, secrets={"webhookUrl": service.url})
    assert service.posted[0]["attachments"][0]["content"] == card
    wrong = service.url.replace(teams.SIG, "Zm9yZ2VkLXNpZ25hdHVyZS1mb3ItdGVzdHM")
    with pytest.raises(errors.PermanentError) as info:
        await call("teams.post_card", {"card": card}, settings={}, secrets={"webhookUrl": wrong})
    assert info.value.message.endswith(": The provided authentication token is not valid.")
    assert "Zm9yZ2VkLXNpZ25hdHVyZS1mb3ItdGVzdHM" not in str(info.value)
    service.violations.clear()


# Notion


async def test_notion_create_page_with_version_header(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developers.notion.com/reference/post-page and /reference/versioning: the
    Notion-Version header is required."""
    saas(notion.Notion)
    properties = {"Name": {"title": [{"text": {"content": "Ada"}}]}}
    out = await call(
        "notion.create_page",
        {"databaseId": notion.DATABASE, "properties": properties},
        **at(server, "/v1", token=notion.TOKEN),
    )
    assert (out["object"], out["properties"]) == ("page", properties)
    assert server.last().headers["notion-version"] == "2022-06-28"


async def test_notion_query_database_pages_with_start_cursor(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """developers.notion.com/reference/post-database-query and /reference/intro#pagination:
    start_cursor and page_size in the body; next_cursor and has_more."""
    saas(notion.Notion).seed(230)
    out = await call(
        "notion.query_database",
        {
            "databaseId": notion.DATABASE,
            "filter": {"property": "Done", "checkbox": {"equals": False}},
        },
        **at(server, "/v1", token=notion.TOKEN),
    )
    assert (len(out["items"]), out["pages"]) == (230, 3)
    bodies = [r.json() for r in server.requests]
    assert bodies[0] == {
        "filter": {"property": "Done", "checkbox": {"equals": False}},
        "page_size": 100,
    }
    assert [b.get("start_cursor") for b in bodies] == [None, "100", "200"]


async def test_notion_error_code(call: Call, server: httpserver.Server, saas: Any) -> None:
    """developers.notion.com/reference/status-codes: {"object": "error", "code", "message"}."""
    service = saas(notion.Notion)
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "notion.create_page",
            {"databaseId": "0" * 32, "properties": {}},
            **at(server, "/v1", token=notion.TOKEN),
        )
    assert "(object_not_found)" in info.value.message
    service.violations.clear()


# Dropbox


async def test_dropbox_list_folder_continues_with_the_cursor(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """dropbox.com/developers/documentation/http/documentation#files-list_folder and
    #files-list_folder-continue: later pages POST {"cursor"} alone to .../continue."""
    service = saas(dropbox.Dropbox)
    for n in range(5):
        service.add_file(f"/Invoices/2025-{n + 1:02d}.pdf")
    out = await call(
        "dropbox.list_folder",
        {"path": "/Invoices"},
        **at(server, "/2", accessToken=dropbox.ACCESS_TOKEN),
    )
    assert [e["name"] for e in out["items"]] == [f"2025-{n:02d}.pdf" for n in range(1, 6)]
    assert [r.path for r in server.requests] == [
        "/2/files/list_folder",
        "/2/files/list_folder/continue",
        "/2/files/list_folder/continue",
    ]
    assert server.requests[0].json() == {"path": "/Invoices", "recursive": False}
    assert server.requests[1].json() == {"cursor": "/invoices@2"}


async def test_dropbox_409_endpoint_errors_are_permanent(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """dropbox.com/developers/documentation/http/documentation#error-handling: 409 is an
    endpoint-specific error with error_summary; not a conflict to retry."""
    saas(dropbox.Dropbox)
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "dropbox.list_folder",
            {"path": "/Nope"},
            **at(server, "/2", accessToken=dropbox.ACCESS_TOKEN),
        )
    assert info.value.message.endswith(
        "HTTP 409 Conflict from POST " + server.url("/2/files/list_folder") + ": path/not_found/.."
    )


async def test_dropbox_create_folder_and_temporary_link(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """...#files-create_folder_v2 (metadata) and #files-get_temporary_link (metadata, link)."""
    service = saas(dropbox.Dropbox)
    service.add_file("/Invoices/2025-01.pdf")
    auth = at(server, "/2", accessToken=dropbox.ACCESS_TOKEN)
    folder = await call("dropbox.create_folder", {"path": "/Reports"}, **auth)
    assert folder["path_display"] == "/Reports"
    assert server.last().json() == {"path": "/Reports", "autorename": False}
    link = await call("dropbox.get_temporary_link", {"path": "/Invoices/2025-01.pdf"}, **auth)
    assert link["link"].startswith("https://") and link["metadata"]["name"] == "2025-01.pdf"


# Airtable


async def test_airtable_create_record_in_a_table_named_with_spaces(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """airtable.com/developers/web/api/create-records: the table name URL-encoded in the path,
    {fields, typecast} in the body."""
    service = saas(airtable.Airtable)
    out = await call(
        "airtable.create_record",
        {
            "baseId": airtable.BASE,
            "table": airtable.TABLE,
            "fields": {"Name": "Ada"},
            "typecast": True,
        },
        **at(server, "/v0", token=airtable.TOKEN),
    )
    assert out["fields"] == {"Name": "Ada"} and out["id"].startswith("rec")
    assert server.last().path == service.path == f"/v0/{airtable.BASE}/Sales%20Leads"


async def test_airtable_update_and_unknown_field(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """airtable.com/developers/web/api/update-record and /errors: 422 with
    {"error": {"type", "message"}}."""
    service = saas(airtable.Airtable)
    service.seed(1)
    auth = at(server, "/v0", token=airtable.TOKEN)
    record = service.records[0]["id"]
    out = await call(
        "airtable.update_record",
        {
            "baseId": airtable.BASE,
            "table": airtable.TABLE,
            "recordId": record,
            "fields": {"Status": "Won"},
        },
        **auth,
    )
    assert out["fields"] == {"Name": "Lead 1", "Status": "Won"}
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "airtable.create_record",
            {"baseId": airtable.BASE, "table": airtable.TABLE, "fields": {"Colour": "red"}},
            **auth,
        )
    assert info.value.message.endswith(': Unknown field name: "Colour" (INVALID_REQUEST_UNKNOWN)')
    service.violations.clear()


async def test_airtable_list_records_with_offset(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """airtable.com/developers/web/api/list-records: pageSize and the offset the previous
    page returned; filterByFormula."""
    saas(airtable.Airtable).seed(230)
    out = await call(
        "airtable.list_records",
        {"baseId": airtable.BASE, "table": airtable.TABLE, "filterByFormula": "{Status} = 'Todo'"},
        **at(server, "/v0", token=airtable.TOKEN),
    )
    assert (len(out["items"]), out["pages"]) == (115, 2)
    assert server.requests[1].query["offset"] == ["itrX2Y3Z/rec100"]
    assert server.requests[0].query["filterByFormula"] == ["{Status} = 'Todo'"]


# The catalogue as a whole


def test_every_catalogue_file_loads_and_names_its_family() -> None:
    names = [p.stem for p in registry.CATALOG.glob("*.yaml")]
    assert len(names) >= 12
    families = set()
    for name in names:
        connector = CATALOG.connector(name)
        assert isinstance(connector, declarative.DeclarativeConnector)
        families.add(connector.definition.family)
        for action in connector.actions.values():
            assert action.params_schema()["type"] == "object"
            assert "API reference: https://" in action.description
    assert families == {
        "crm",
        "chat",
        "email",
        "file-storage",
        "database",
        "payments",
        "marketing",
        "project-management",
    }


def test_catalogue_names_are_listed_without_reading_the_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a catalogue file was read to list names")

    monkeypatch.setattr(declarative, "load", refuse)
    names = registry.Registry(entry_points=False).names()
    assert {"github", "stripe", "core", "http"} <= set(names)


def test_a_catalogue_connector_loads_only_its_own_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read: list[str] = []
    real = pathlib.Path.read_text

    def spy(self: pathlib.Path, *args: Any, **kwargs: Any) -> str:
        read.append(self.name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", spy)
    reg = registry.Registry(entry_points=False)
    assert reg.action("github.create_issue").uses == "github.create_issue"
    assert read == ["github.yaml"]


# The format: a bad definition says which file, line and field

SHOP = """\
name: shop
title: Shop
family: crm
docs: https://shop.example/docs
baseUrl: https://api.shop.example/v1
auth: {scheme: bearer}
actions:
  get_order:
    description: Read an order.
    params:
      orderId: {required: true}
    path: /orders/{orderId}
"""


def catalogue(tmp_path: pathlib.Path, **files: str) -> registry.Registry:
    """A registry whose catalogue is ``files`` (name → YAML text)."""
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return registry.Registry({}, entry_points=False, catalog=tmp_path)


def load_error(tmp_path: pathlib.Path, text: str, name: str = "shop") -> errors.ManifestError:
    with pytest.raises(errors.ManifestError) as info:
        catalogue(tmp_path, **{name: text}).connector(name)
    return info.value


def test_a_good_definition_loads(tmp_path: pathlib.Path) -> None:
    connector = catalogue(tmp_path, shop=SHOP).connector("shop")
    assert connector.description.startswith("Shop (crm; API docs https://shop.example/docs")
    assert connector.actions["get_order"].params_schema()["required"] == ["orderId"]


@pytest.mark.parametrize(
    ("change", "field", "line", "message"),
    [
        (
            ("path: /orders/{orderId}", "path: /orders/{id}"),
            "actions.get_order.path",
            12,
            "{id} is not a parameter (params: orderId)",
        ),
        (
            ("auth: {scheme: bearer}", "auth: {scheme: magic}"),
            "auth",
            6,
            "scheme: 'magic' is not one of 'none', 'bearer', 'oauth2', 'basic', 'header'",
        ),
        (
            ("    path: /orders", "    method: FETCH\n    path: /orders"),
            "actions.get_order.method",
            12,
            "Input should be 'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'",
        ),
        (
            ("family: crm", "family: crm\npagination: {style: link}\nbaseURL: x"),
            "baseURL",
            5,
            "is not a field of the format (a typo?)",
        ),
        (
            ("orderId: {required: true}", "orderId: {}"),
            "actions.get_order.params.orderId",
            11,
            "is in the path, so it must be required or have a default",
        ),
        (
            ("    path: /orders", "    paginate: true\n    path: /orders"),
            "actions.get_order.paginate",
            12,
            "the action paginates but neither it nor the connector has pagination",
        ),
        (("name: shop", "name: store"), "name", 1, "is 'store' but the file is named shop.yaml"),
        (
            ("auth: {scheme: bearer}", "auth: {scheme: header}"),
            "auth.name",
            6,
            "Field required",
        ),
        (
            ("family: crm", "family: crm\npagination: {style: cursor}"),
            "pagination",
            4,
            "give one of from (a response path) or fromLastItem",
        ),
        (
            ("baseUrl: https://api.shop.example/v1", "baseUrl: https://{region}.shop.example"),
            "baseUrl",
            5,
            "{region} is not a declared setting (settings: baseUrl, timeout)",
        ),
        (
            ("orderId: {required: true}", "orderId: {type: integer, default: soon}"),
            "actions.get_order.params.orderId.default",
            None,
            "the default does not fit the type",
        ),
    ],
)
def test_a_bad_definition_names_file_line_and_field(
    tmp_path: pathlib.Path, change: tuple[str, str], field: str, line: int | None, message: str
) -> None:
    error = load_error(tmp_path, SHOP.replace(*change))
    problems = error.problems if isinstance(error, errors.ValidationError) else []
    found = next(p for p in problems if p.where.field == field)
    assert found.where.file == str(tmp_path / "shop.yaml")
    if line is not None:
        assert found.where.line == line
    assert message in found.message
    assert f"shop.yaml{f':{line}' if line else ''}, field '{field}'" in str(error)


def test_yaml_syntax_errors_name_the_line(tmp_path: pathlib.Path) -> None:
    error = load_error(tmp_path, SHOP.replace("title: Shop", "title: [Shop"))
    assert isinstance(error, errors.ManifestSyntaxError)
    assert error.where.file == str(tmp_path / "shop.yaml") and error.where.line is not None
    assert "not valid YAML" in error.message


# Parameters


def test_generated_params_validate_before_any_request() -> None:
    action = CATALOG.action("github.update_issue")
    schema = action.params_schema()
    assert schema["required"] == ["owner", "repo", "issueNumber"]
    assert schema["properties"]["state"]["anyOf"][0]["enum"] == ["open", "closed"]
    assert schema["additionalProperties"] is False
    with pytest.raises(pydantic.ValidationError, match="state"):
        action.params.model_validate({"owner": "o", "repo": "r", "issueNumber": 1, "state": "gone"})
    with pytest.raises(pydantic.ValidationError, match="colour"):
        action.params.model_validate({"owner": "o", "repo": "r", "issueNumber": 1, "colour": "x"})
    listed = CATALOG.action("github.list_issues").params_schema()["properties"]["maxPages"]
    assert (listed["default"], listed["maximum"]) == (10, 1000)
    nested = CATALOG.action("sendgrid.send_mail").params_schema()
    item = nested["$defs"][nested["properties"]["to"]["items"]["$ref"].rpartition("/")[2]]
    assert item["required"] == ["email"] and item["properties"]["email"]["format"] == "email"


# Pagination limits and quotas

PAGED = """\
name: paged
title: Paged
family: database
docs: https://paged.example/docs
baseUrl: https://paged.example
auth: {scheme: bearer}
rateLimit: {remaining: x-left, reset: x-reset-in, resetKind: seconds, maxWait: 2s}
pagination: {style: page, param: page, sizeParam: size, size: 3, maxPages: 4, items: rows}
actions:
  rows:
    description: All rows.
    path: /rows
    paginate: true
"""


PAGED_TOKEN = "paged-5f2a9c1e"


def rows_server(
    server: httpserver.Server, total: int, headers: dict[str, str] | None = None
) -> None:
    def page(request: httpserver.Recorded) -> httpserver.Reply:
        number, size = int(request.query["page"][0]), int(request.query["size"][0])
        rows = list(range(total))[(number - 1) * size : number * size]
        return httpserver.Reply.with_json({"rows": rows}, headers=headers)

    server.route("/rows", page)


async def test_page_style_stops_at_a_short_page(
    call: Call, server: httpserver.Server, tmp_path: pathlib.Path
) -> None:
    rows_server(server, total=7)
    out = await call(
        "paged.rows",
        {},
        **at(server, token=PAGED_TOKEN),
        connectors=catalogue(tmp_path, paged=PAGED),
    )
    assert out == {"items": [0, 1, 2, 3, 4, 5, 6], "pages": 3, "truncated": False}
    assert [r.query["page"] for r in server.requests] == [["1"], ["2"], ["3"]]


async def test_pagination_stops_at_max_pages(
    call: Call, server: httpserver.Server, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows_server(server, total=100)
    reg = catalogue(tmp_path, paged=PAGED)
    out = await call("paged.rows", {}, **at(server, token=PAGED_TOKEN), connectors=reg)
    assert (out["pages"], out["truncated"], len(out["items"])) == (4, True, 12)
    assert "stopped after maxPages=4 pages (12 items)" in caplog.text
    fewer = await call(
        "paged.rows", {"maxPages": 2}, **at(server, token=PAGED_TOKEN), connectors=reg
    )
    assert (fewer["pages"], fewer["truncated"], fewer["items"]) == (2, True, [0, 1, 2, 3, 4, 5])
    assert server.calls("/rows") == 6


async def test_a_used_up_quota_is_waited_for_between_pages(
    call: Call, server: httpserver.Server, tmp_path: pathlib.Path
) -> None:
    rows_server(server, total=5, headers={"x-left": "0", "x-reset-in": "0.2"})
    started = time.monotonic()
    out = await call(
        "paged.rows",
        {},
        **at(server, token=PAGED_TOKEN),
        connectors=catalogue(tmp_path, paged=PAGED),
    )
    assert out["pages"] == 2
    assert time.monotonic() - started >= 0.2


async def test_a_long_quota_reset_fails_the_step_as_retryable(
    call: Call, server: httpserver.Server, tmp_path: pathlib.Path
) -> None:
    rows_server(server, total=5, headers={"x-left": "0", "x-reset-in": "90"})
    with pytest.raises(errors.RetryableError) as info:
        await call(
            "paged.rows",
            {},
            **at(server, token=PAGED_TOKEN),
            connectors=catalogue(tmp_path, paged=PAGED),
        )
    assert info.value.retry_after == 90
    assert info.value.message == "Paged: the rate limit is used up after 1 pages and resets in 90s"


async def test_a_next_link_to_another_host_is_not_followed(
    call: Call, server: httpserver.Server, gh: github.GitHub
) -> None:
    """The credentials go to the base URL's origin only: a Link to elsewhere stops the step."""
    server.queue(
        "/repos/octo-org/hello-world/issues",
        httpserver.Reply.with_json(
            [{"number": 1}], headers={"Link": '<http://attacker.example/x>; rel="next"'}
        ),
    )
    with pytest.raises(
        errors.PermanentError, match=r"outside http://127\.0\.0\.1:\d+; not following"
    ):
        await call(
            "github.list_issues", {"owner": "octo-org", "repo": "hello-world"}, **gh_auth(server)
        )
    assert server.calls() == 1


# Integration settings and secrets


@pytest.mark.parametrize(
    ("uses", "settings", "expected"),
    [
        ("jira.add_comment", {"site": "acme"}, "https://acme.atlassian.net"),
        ("mailchimp.add_member", {"dc": "us6"}, "https://us6.api.mailchimp.com/3.0"),
        ("pipedrive.create_deal", {"companyDomain": "acme"}, "https://acme.pipedrive.com/api/v2"),
        (
            "salesforce.query",
            {"myDomain": "acme"},
            "https://acme.my.salesforce.com/services/data/v62.0",
        ),
        (
            "salesforce.query",
            {"myDomain": "acme", "apiVersion": "v60.0"},
            "https://acme.my.salesforce.com/services/data/v60.0",
        ),
        (
            "jira.add_comment",
            {"site": "evil.example/x#"},
            "https://evil.example%2Fx%23.atlassian.net",
        ),
        (
            "github.create_issue",
            {"baseUrl": "https://ghe.acme.example/api/v3"},
            "https://ghe.acme.example/api/v3",
        ),
    ],
)
def test_the_base_url_comes_from_settings(
    uses: str, settings: dict[str, str], expected: str
) -> None:
    connector = CATALOG.connector(uses.partition(".")[0])
    assert isinstance(connector, declarative.DeclarativeConnector)
    ctx = context(settings)
    try:
        url = declarative_auth.base_url(connector.definition, ctx, {})
    except errors.PermanentError:
        assert "%2F" in expected  # an encoded host is no host: refused
        return
    assert str(url) == expected


def context(settings: dict[str, Any], secrets: dict[str, str] | None = None) -> sdk.ActionContext:
    return sdk.ActionContext(
        run_id="run-1",
        step_id="step",
        attempt=1,
        idempotency_key=IDEMPOTENCY_KEY,
        log=logging.LoggerAdapter(logging.getLogger("test.declarative"), {}),
        integration=sdk.IntegrationInfo("crm", "jira", settings, DictSecrets(secrets or {})),
        pool=sdk.ResourcePool(),
    )


async def test_a_missing_setting_names_the_integration_and_setting(call: Call) -> None:
    with pytest.raises(errors.PermanentError) as info:
        await call(
            "jira.add_comment",
            {"issueKey": "OPS-1", "text": "x"},
            settings={},
            secrets={"email": jira.EMAIL, "apiToken": jira.API_TOKEN},
        )
    assert (info.value.where.resource, info.value.where.field) == (
        "Integration/saas",
        "settings.site",
    )
    assert (
        "needs settings.site (Your Jira Cloud site: acme for acme.atlassian.net.)"
        in info.value.message
    )


async def test_a_missing_secret_is_reported_before_any_request(
    call: Call, server: httpserver.Server
) -> None:
    with pytest.raises(errors.PermanentError, match="no secret 'apiToken'"):
        await call(
            "jira.add_comment",
            {"issueKey": "OPS-1", "text": "x"},
            settings={"baseUrl": server.base_url},
            secrets={"email": jira.EMAIL},
        )
    assert server.requests == []


ECHO = """\
name: echo
title: Echo
family: crm
docs: https://echo.example/docs
baseUrl: https://echo.example
auth: AUTH
actions:
  ok:
    description: Answers 200 with the request.
    path: /ok
  fail:
    description: Answers 400 with the request.
    path: /fail
"""


@pytest.mark.parametrize(
    ("auth", "secrets"),
    [
        ("{scheme: bearer}", {"token": "tok-5f2a9c1e3b4d"}),
        ("{scheme: oauth2}", {"accessToken": "ya29.a0AfB_byC5f2a9"}),
        ("{scheme: basic, username: '{apiKey}', password: ''}", {"apiKey": "sk_test_5f2a9c1e"}),
        ("{scheme: basic}", {"username": "ops@acme.example", "password": "p@ss w0rd/+"}),
        ("{scheme: header, name: X-Api-Key, value: 'Token {apiKey}'}", {"apiKey": "k-5f2a9c1e3b"}),
        (
            "{scheme: query, params: {key: '{apiKey}', token: '{apiToken}'}}",
            {"apiKey": "k5f2a9c1e", "apiToken": "t3b4d6f8a"},
        ),
    ],
)
async def test_secrets_never_appear_in_outputs_or_errors(
    call: Call,
    server: httpserver.Server,
    tmp_path: pathlib.Path,
    auth: str,
    secrets: dict[str, str],
) -> None:
    """The service echoes the whole request back, credentials included, in a 200 body, in a
    response header and in a 400 error; the step sees none of them."""

    def echo(status: int) -> Callable[[httpserver.Recorded], httpserver.Reply]:
        def reply(request: httpserver.Recorded) -> httpserver.Reply:
            seen = {"headers": request.headers, "query": request.query, "url": request.path}
            return httpserver.Reply.with_json(
                {"message": str(seen), "echo": seen}, status, {"X-Echo": str(request.headers)}
            )

        return reply

    server.route("/ok", echo(200))
    server.route("/fail", echo(400))
    reg = catalogue(tmp_path, echo=ECHO.replace("AUTH", auth))
    out = await call("echo.ok", {}, **at(server, **secrets), connectors=reg)
    with pytest.raises(errors.PermanentError) as info:
        await call("echo.fail", {}, **at(server, **secrets), connectors=reg)
    shown = json.dumps(out) + str(info.value) + json.dumps(info.value.details)
    for value in [*secrets.values(), *(quote(v) for v in secrets.values())]:
        assert value not in shown
    assert "***" in json.dumps(out["echo"])


# Idempotency keys


async def test_idempotency_keys_go_only_to_services_that_take_them(
    call: Call, server: httpserver.Server, saas: Any
) -> None:
    """docs.stripe.com/api/idempotent_requests: Stripe takes Idempotency-Key on POST;
    HubSpot documents none, so it gets none."""
    saas(stripe.Stripe)
    saas(hubspot.HubSpot)
    await call(
        "stripe.create_customer", {"name": "Ada"}, **at(server, "/v1", apiKey=stripe.SECRET_KEY)
    )
    await call(
        "hubspot.create_contact", {"email": "a@b.example"}, **at(server, token=hubspot.TOKEN)
    )
    stripe_request, hubspot_request = server.requests
    assert stripe_request.headers["idempotency-key"] == IDEMPOTENCY_KEY
    assert "idempotency-key" not in hubspot_request.headers


# Through the engine: a workflow with an Integration


async def test_a_workflow_step_uses_a_catalogue_connector_with_its_integration(
    probe: Any, server: httpserver.Server, gh: github.GitHub
) -> None:
    """The run resolves ``github.create_issue`` from the catalogue, reads the token from the
    Integration's secret and keeps it out of every output and error, even when GitHub's error
    quotes it back."""
    server.queue(
        "/repos/octo-org/hello-world/issues",
        lambda r: httpserver.Reply.with_json(
            {"message": f"token {r.headers['authorization']} is odd"}, 403
        ),
    )
    intg = integration.Integration.model_validate(
        {
            "metadata": {"name": "gh"},
            "spec": {
                "type": "github",
                "settings": {"baseUrl": server.base_url},
                "secretRef": {"name": "gh", "keys": ["token"]},
            },
        }
    )
    provider = local.LocalIntegrations([intg], env={"AUTOFLOW_SECRET_GH_TOKEN": github.TOKEN})
    step = {
        "uses": "github.create_issue",
        "integration": "gh",
        "with": {"owner": "octo-org", "repo": "hello-world", "title": "From a workflow"},
    }
    spec = {
        "steps": [
            {"id": "first", **step, "continueOnError": True},
            {"id": "second", **step},
        ],
        "outputs": {"number": "${ steps.second.output.number }"},
    }
    result = await probe.run(spec, integrations=provider)
    assert result.phase == "Succeeded", result.error
    assert result.outputs == {"number": 1}
    assert result.steps["first"].error.endswith(": token Bearer *** is odd")
    assert github.TOKEN not in json.dumps(result.to_json())


# Templates, paths and encodings (pure functions)


def test_templates_leave_unset_parameters_out() -> None:
    values = {"title": "Disk full", "labels": ["infra"], "count": 3, "props": {"tier": "gold"}}
    body = {
        "title": "{title}",
        "summary": "[{title}] {missing}",
        "labels": "{labels}",
        "count": "{count}",
        "assignee": {"accountId": "{missing}"},
        "description": {"type": "doc", "content": [{"text": "{missing}"}]},
        "watchers": ["{missing}", "{title}"],
        "extra": {"$merge": "{props}", "tier": "{missing}", "source": "autoflow"},
        "literal": "{{not a placeholder}}",
        "constant": 7,
    }
    assert templates.render(body, values) == {
        "title": "Disk full",
        "summary": "[Disk full] ",
        "labels": ["infra"],
        "count": 3,
        "watchers": ["Disk full"],
        "extra": {"tier": "gold", "source": "autoflow"},
        "literal": "{not a placeholder}",
        "constant": 7,
    }
    assert templates.render({"a": "{missing}"}, values) is templates.MISSING
    assert templates.render_entries({"wait": "true", "thread": "{missing}"}, values) == {
        "wait": "true"
    }
    assert templates.render_text("/r/{title}", values, quote=True) == "/r/Disk%20full"
    assert templates.placeholders(body) == {"title", "missing", "labels", "count", "props"}


def test_paths_forms_and_links() -> None:
    doc = {"errors": [{"message": "a"}, {"message": "b"}], "paging": {"next": {"after": "9"}}}
    assert templates.pick(doc, "errors.*.message") == ["a", "b"]
    assert templates.pick(doc, "errors.1.message") == "b"
    assert templates.pick(doc, "paging.next.after") == "9"
    assert templates.pick(doc, "paging.prev.after") is None
    assert templates.pick([{"m": 1}], "0.m") == 1
    assert templates.describe({"errorMessages": [], "errors": {"summary": "required"}}) == (
        "errors: summary: required"
    )
    assert templates.form_fields(
        {"amount": 100, "metadata": {"order": 7}, "types": ["card"], "auto": {"on": True}}
    ) == [("amount", "100"), ("metadata[order]", "7"), ("types[0]", "card"), ("auto[on]", "true")]
    link = '<https://x/r?page=2>; rel="next", <https://x/r?page=5>; rel="last"'
    assert templates.links(link) == {"next": "https://x/r?page=2", "last": "https://x/r?page=5"}
    assert templates.links("") == {}


def test_connectors_show_prints_the_generated_schema() -> None:
    shown = cli_inspect.action_schema("github.create_issue")
    assert shown["params"]["required"] == ["owner", "repo", "title"]
    assert shown["params"]["properties"]["labels"]["anyOf"][0] == {
        "items": {"type": "string"},
        "type": "array",
    }
    listed = cli_inspect.action_schema("github.list_issues")["output"]
    assert set(listed["properties"]) == {"items", "pages", "truncated"}
