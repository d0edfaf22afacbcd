"""Health probes of the declarative catalogue, each against its service's contract server.

A definition's ``probe:`` block names one cheap call that changes nothing (who am I, a ping);
the generic engine sends it with the definition's auth, as it sends an action. Each test here
runs ``runners.probe.check`` on an Integration of that type pointed at the contract server in
``tests/saas/`` (``settings.baseUrl``; the webhook URL for Discord) and names the reference
page of the call; the server answers as the page documents, and checks what the page asks of
the request (method, path, auth, no body). With the wrong credential the service's own 401 is
``CredentialsRejected``, and the credential is not in the message.
"""

from __future__ import annotations

from typing import Any

import httpserver
import probing
import pytest
from saas import (
    airtable,
    asana,
    contract,
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
    trello,
)

from autoflow.connectors import declarative, registry
from autoflow.connectors.declarative import format as fmt
from autoflow.crds import errors
from autoflow.runners.access import probe

CATALOG = registry.Registry(entry_points=False)


async def health(
    type: str, server: httpserver.Server, path: str = "", **secrets: str
) -> probe.Health:
    """The probe of a ``type`` Integration whose baseUrl is the server (``path``: the API's
    prefix), as the operator would run it."""
    intg = probing.integration(type, type, {"baseUrl": server.url(path)}, keys=sorted(secrets))
    return await probing.check(intg, secrets, registry=CATALOG)


def succeeded(health: probe.Health, type: str, text: str) -> None:
    """Ready, and the message names the Integration (named like its type) and what answered."""
    assert health == probe.Health(True, "ProbeSucceeded", f"integration {type!r}: {text}")


def test_every_catalogue_service_but_teams_has_a_probe() -> None:
    """Microsoft Teams' incoming webhooks document no call but posting a message."""
    without = [n for n in CATALOG.names() if CATALOG.connector(n).health_probe is None]
    assert without == ["core", "teams"]


async def test_airtable_probe(server: httpserver.Server, saas: Any) -> None:
    """airtable.com/developers/web/api/get-user-id-scopes: GET /v0/meta/whoami answers the
    token's user id (and its email only with the user.email:read scope)."""
    saas(airtable.Airtable)
    got = await health("airtable", server, "/v0", token=airtable.TOKEN)
    succeeded(
        got,
        "airtable",
        f"Airtable: GET {server.url('/v0/meta/whoami')} answered 200, as {airtable.USER_ID}",
    )


async def test_asana_probe(server: httpserver.Server, saas: Any) -> None:
    """developers.asana.com/reference/getuser with user_gid ``me``: the token's user, wrapped
    in ``data``."""
    saas(asana.Asana)
    got = await health("asana", server, "/api/1.0", token=asana.TOKEN)
    succeeded(
        got, "asana", f"Asana: GET {server.url('/api/1.0/users/me')} answered 200, as Greg Sanchez"
    )


async def test_discord_probe_reads_the_webhook_without_posting(
    server: httpserver.Server, saas: Any
) -> None:
    """discord.com/developers/docs/resources/webhook#get-webhook-with-token: GET on the
    webhook URL answers the webhook object (its token included) and needs no other auth."""
    hook = saas(discord.Discord)
    intg = probing.integration("alerts", "discord", keys=["webhookUrl"])
    got = await probing.check(intg, {"webhookUrl": hook.url}, registry=CATALOG)
    assert got == probe.Health(
        True,
        "ProbeSucceeded",
        "integration 'alerts': Discord: GET the webhook URL answered 200, as Order alerts",
    )
    assert hook.messages == []
    assert server.last().method == "GET"


async def test_discord_probe_with_a_revoked_webhook_token(server: httpserver.Server) -> None:
    """A webhook URL whose token is no longer valid: 401, code 50027 ``Invalid Webhook Token``
    (discord.com/developers/docs/topics/opcodes-and-status-codes)."""
    hook = discord.Discord(server)
    stale = "Qw8eRt5yUi2oPa7sDf4gHj1kLz9xCv6bNm3QwErTyUiOpAsDf"
    hook.invalid_token_at(stale)
    url = hook.url.replace(discord.WEBHOOK_TOKEN, stale)
    intg = probing.integration("alerts", "discord", keys=["webhookUrl"])
    got = await probing.check(intg, {"webhookUrl": url}, registry=CATALOG)
    assert (got.ready, got.reason) == (False, "CredentialsRejected")
    assert "Invalid Webhook Token (50027)" in got.message
    assert stale not in got.message


async def test_dropbox_probe_posts_without_a_body(server: httpserver.Server, saas: Any) -> None:
    """dropbox.com/developers/documentation/http/documentation#users-get_current_account: an
    RPC call without parameters (POST, no body); answers the account with its name."""
    saas(dropbox.Dropbox)
    got = await health("dropbox", server, "/2", accessToken=dropbox.ACCESS_TOKEN)
    url = server.url("/2/users/get_current_account")
    succeeded(got, "dropbox", f"Dropbox: POST {url} answered 200, as Franz Ferdinand (Personal)")
    assert server.last().body == b""


async def test_github_probe(server: httpserver.Server, saas: Any) -> None:
    """docs.github.com/en/rest/rate-limit/rate-limit: GET /rate_limit answers any valid token
    (an app installation token too, which GET /user refuses) and is not counted."""
    saas(github.GitHub)
    got = await health("github", server, token=github.TOKEN)
    succeeded(got, "github", f"GitHub: GET {server.url('/rate_limit')} answered 200")


async def test_hubspot_probe(server: httpserver.Server, saas: Any) -> None:
    """developers.hubspot.com/docs/api/settings/account-information-api: GET
    /account-info/v3/details answers the account (portalId) the token belongs to."""
    saas(hubspot.HubSpot)
    got = await health("hubspot", server, token=hubspot.TOKEN)
    succeeded(
        got,
        "hubspot",
        f"HubSpot: GET {server.url('/account-info/v3/details')} answered 200, as 62515",
    )


async def test_jira_probe(server: httpserver.Server, saas: Any) -> None:
    """developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-myself: GET
    /rest/api/3/myself answers the user the email and API token belong to."""
    saas(jira.Jira)
    got = await health("jira", server, email=jira.EMAIL, apiToken=jira.API_TOKEN)
    succeeded(
        got, "jira", f"Jira: GET {server.url('/rest/api/3/myself')} answered 200, as Mia Krystof"
    )


async def test_mailchimp_probe(server: httpserver.Server, saas: Any) -> None:
    """mailchimp.com/developer/marketing/api/ping/ping/: GET /3.0/ping with the API key
    answers ``{"health_status": "Everything's Chimpy!"}``."""
    saas(mailchimp.Mailchimp)
    got = await health("mailchimp", server, "/3.0", apiKey=mailchimp.API_KEY)
    succeeded(got, "mailchimp", f"Mailchimp: GET {server.url('/3.0/ping')} answered 200")


async def test_notion_probe(server: httpserver.Server, saas: Any) -> None:
    """developers.notion.com/reference/get-self: GET /v1/users/me answers the token's bot
    user (the Notion-Version header is required, as for every call)."""
    saas(notion.Notion)
    got = await health("notion", server, "/v1", token=notion.TOKEN)
    succeeded(
        got, "notion", f"Notion: GET {server.url('/v1/users/me')} answered 200, as Order sync"
    )


async def test_pipedrive_probe(server: httpserver.Server, saas: Any) -> None:
    """developers.pipedrive.com/docs/api/v1/Deals#getDeals (v2): one deal read with the
    x-api-token header; v2 has no users/me."""
    service = saas(pipedrive.Pipedrive)
    service.seed(3)
    got = await health("pipedrive", server, "/api/v2", apiToken=pipedrive.API_TOKEN)
    succeeded(got, "pipedrive", f"Pipedrive: GET {server.url('/api/v2/deals')} answered 200")
    assert server.last().query == {"limit": ["1"]}


async def test_salesforce_probe(server: httpserver.Server, saas: Any) -> None:
    """developer.salesforce.com/.../resources_discoveryresource.htm: GET
    /services/data/vXX.X/ lists the version's resources to any valid session."""
    saas(salesforce.Salesforce)
    got = await health("salesforce", server, salesforce.API, accessToken=salesforce.ACCESS_TOKEN)
    succeeded(got, "salesforce", f"Salesforce: GET {server.url(salesforce.API + '/')} answered 200")


async def test_sendgrid_probe(server: httpserver.Server, saas: Any) -> None:
    """twilio.com/docs/sendgrid/api-reference/api-key-permissions/retrieve-a-list-of-scopes-for-
    which-this-user-has-access: GET /v3/scopes answers the API key's scopes."""
    saas(sendgrid.SendGrid)
    got = await health("sendgrid", server, "/v3", apiKey=sendgrid.API_KEY)
    succeeded(got, "sendgrid", f"SendGrid: GET {server.url('/v3/scopes')} answered 200")


async def test_stripe_probe(server: httpserver.Server, saas: Any) -> None:
    """docs.stripe.com/api/balance/balance_retrieve: GET /v1/balance with the secret key as
    the Basic user name changes nothing."""
    saas(stripe.Stripe)
    got = await health("stripe", server, "/v1", apiKey=stripe.SECRET_KEY)
    succeeded(got, "stripe", f"Stripe: GET {server.url('/v1/balance')} answered 200")


async def test_trello_probe_hides_its_query_credentials(
    server: httpserver.Server, saas: Any
) -> None:
    """developer.atlassian.com/cloud/trello/rest/api-group-members/#api-members-id-get with id
    ``me``, key and token as query parameters: the member they belong to."""
    saas(trello.Trello)
    got = await health("trello", server, "/1", apiKey=trello.API_KEY, apiToken=trello.API_TOKEN)
    succeeded(
        got, "trello", f"Trello: GET {server.url('/1/members/me')} answered 200, as bobtester"
    )
    assert trello.API_TOKEN not in got.message and trello.API_KEY not in got.message


# What each service answers a wrong credential, as its error reference documents it.
REJECTED: list[tuple[str, type[contract.Service], str, dict[str, str], str]] = [
    ("airtable", airtable.Airtable, "/v0", {"token": "patWrong.0000000000"}, "401"),
    ("asana", asana.Asana, "/api/1.0", {"token": "2/0/0:wrong-token"}, "401"),
    ("dropbox", dropbox.Dropbox, "/2", {"accessToken": "sl.wrong-token"}, "invalid_access_token"),
    ("github", github.GitHub, "", {"token": "ghp_wrongwrongwrong"}, "Bad credentials"),
    ("hubspot", hubspot.HubSpot, "", {"token": "pat-eu1-wrong"}, "INVALID_AUTHENTICATION"),
    ("jira", jira.Jira, "", {"email": jira.EMAIL, "apiToken": "ATATTwrong"}, "authenticated"),
    ("mailchimp", mailchimp.Mailchimp, "/3.0", {"apiKey": "0000wrong-us6"}, "API Key Invalid"),
    ("notion", notion.Notion, "/v1", {"token": "secret_wrong"}, "API token is invalid."),
    ("pipedrive", pipedrive.Pipedrive, "/api/v2", {"apiToken": "wrong0000"}, "unauthorized"),
    (
        "salesforce",
        salesforce.Salesforce,
        salesforce.API,
        {"accessToken": "00Dwrong!token"},
        "INVALID_SESSION_ID",
    ),
    ("sendgrid", sendgrid.SendGrid, "/v3", {"apiKey": "SG.wrong.key"}, "401"),
    ("stripe", stripe.Stripe, "/v1", {"apiKey": "sk_test_wrongwrong"}, "Invalid API Key"),
    (
        "trello",
        trello.Trello,
        "/1",
        {"apiKey": trello.API_KEY, "apiToken": "wrongtoken000"},
        "invalid token",
    ),
]


@pytest.mark.parametrize(
    ("type", "service", "path", "secrets", "said"), REJECTED, ids=[r[0] for r in REJECTED]
)
async def test_a_wrong_credential_is_rejected_credentials(
    server: httpserver.Server,
    type: str,
    service: type[contract.Service],
    path: str,
    secrets: dict[str, str],
    said: str,
) -> None:
    running = service(server)
    got = await health(type, server, path, **secrets)
    assert (got.ready, got.reason) == (False, "CredentialsRejected"), got
    assert "HTTP 401" in got.message and said in got.message
    for value in secrets.values():
        assert value not in got.message
    # The contract server refused the credential, and nothing else about the request.
    assert len(running.violations) == 1, running.violations


async def test_a_service_error_is_unreachable(server: httpserver.Server) -> None:
    """GitHub answers 503 when it cannot serve (troubleshooting-the-rest-api)."""
    server.route(
        "/rate_limit",
        httpserver.Reply.with_json({"message": "Service Unavailable"}, 503),
    )
    got = await health("github", server, token=github.TOKEN)
    assert (got.ready, got.reason) == (False, "Unreachable")
    assert "GitHub: HTTP 503" in got.message and "Service Unavailable" in got.message


async def test_a_used_up_quota_is_not_rejected_credentials(server: httpserver.Server) -> None:
    """GitHub answers 403 with x-ratelimit-remaining: 0 for a used-up quota: the credentials
    are fine, the probe just could not tell now."""
    service = github.GitHub(server)
    server.route("/rate_limit", service.rate_limit_reply(reset=2_000_000_000), method="GET")
    got = await health("github", server, token=github.TOKEN)
    assert (got.ready, got.reason) == (False, "ProbeFailed")
    assert "API rate limit exceeded" in got.message


# The format


DEFINITION = """
name: shop
title: Shop
family: crm
docs: https://shop.example/docs
baseUrl: https://shop.example/api
auth: {scheme: bearer}
actions:
  ping: {description: Ping., path: /ping}
"""


def test_a_probe_takes_no_parameters() -> None:
    text = DEFINITION + "probe: {path: '/users/{id}'}\n"
    with pytest.raises(errors.ValidationError) as caught:
        declarative.build(fmt.parse(text, "shop.yaml"))
    assert [str(p) for p in caught.value.problems] == [
        "shop.yaml:10, field 'probe.path': {id}: a probe takes no parameters"
    ]


def test_a_probe_field_that_is_not_in_the_format_is_named() -> None:
    text = DEFINITION + "probe: {path: /me, expect: 200}\n"
    with pytest.raises(errors.ValidationError) as caught:
        fmt.parse(text, "shop.yaml")
    assert "field 'probe.expect': is not a field of the format" in str(caught.value)


def test_a_definition_without_a_probe_has_none() -> None:
    connector = declarative.build(fmt.parse(DEFINITION, "shop.yaml"))
    assert connector.health_probe is None
