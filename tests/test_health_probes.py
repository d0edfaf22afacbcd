"""Integration health: ``runners.probe.check``'s verdicts, and the http and slack probes.

``check`` is run as the operator and ``autoflow integrations test`` run it: on an Integration
resource whose secrets come through the local provider (``probing``). Its reasons are tested
with small connectors whose probes do one thing each; the ``http`` and ``slack`` probes
against ``httpserver`` on 127.0.0.1, answering as the server or Slack's reference page says.
Whatever a server echoes back, no secret reaches a message.
"""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import quote_plus

import httpserver
import probing
import pytest

from autoflow.connectors import registry, sdk
from autoflow.crds import errors, integration
from autoflow.runners.access import probe

TOKEN = "tok-8d2f4a6c1e9b"
BUILTIN = registry.Registry(entry_points=False)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- check: one verdict per kind of outcome --------------------------------------------------


def with_probe(func: sdk.ProbeFunc) -> registry.Registry:
    """A registry whose connector ``t`` has ``func`` as its probe."""
    connector = sdk.Connector("t", "A test connector.")
    connector.probe(func)
    found = registry.Registry(targets={}, entry_points=False, catalog=None)
    found.add(connector)
    return found


async def test_a_probe_that_reaches_its_system_is_ready_and_its_message_names_the_integration() -> (
    None
):
    async def reached(info: sdk.IntegrationInfo) -> str:
        return f"shop API 2.3 for {info.settings['tenant']}"

    health = await probing.check(
        probing.integration("shop", "t", {"tenant": "acme"}), registry=with_probe(reached)
    )
    assert health == probe.Health(
        True, "ProbeSucceeded", "integration 'shop': shop API 2.3 for acme"
    )


async def test_an_unknown_type_is_not_ready_and_lists_the_known_ones() -> None:
    health = await probing.check(probing.integration("crm", "salesfarce"), registry=BUILTIN)
    assert not health.ready
    assert health.reason == "UnknownConnectorType"
    assert health.message.startswith("integration 'crm': type 'salesfarce' is not a connector")
    assert "salesforce" in health.message and "postgres" in health.message


async def test_a_connector_without_a_probe_is_ready_but_not_probed() -> None:
    health = await probing.check(probing.integration("misc", "core"), registry=BUILTIN)
    assert health.ready
    assert health.reason == "NotProbed"
    assert "integration 'misc'" in health.message
    assert "settings read" in health.message and "nothing was contacted" in health.message


async def test_a_probe_that_never_answers_times_out_at_the_timeout() -> None:
    async def hangs(info: sdk.IntegrationInfo) -> str:
        await asyncio.sleep(60)
        return "never"

    started = time.monotonic()
    health = await probing.check(
        probing.integration("slow", "t"), registry=with_probe(hangs), timeout=0.2
    )
    assert time.monotonic() - started < 2
    assert health == probe.Health(False, "Timeout", "integration 'slow': t: no answer within 0.2s")


async def test_blocking_waits_are_bounded_by_the_probes_deadline() -> None:
    seen: list[float] = []

    async def measures(info: sdk.IntegrationInfo) -> str:
        seen.append(sdk.time_left(30.0))
        return "ok"

    await probing.check(probing.integration("x", "t"), registry=with_probe(measures), timeout=2)
    assert 1.5 < seen[0] <= 2.5
    assert sdk.time_left(30.0) == 30.0  # outside a probe, the connector's own limit


@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        (errors.MissingSecretError("integration 'x' has no secret 'token'"), "SecretMissing"),
        (errors.InvalidSettingsError("port: not a number"), "InvalidSettings"),
        (errors.CredentialsRejectedError("401 Unauthorized"), "CredentialsRejected"),
        (errors.UnreachableError("connection refused"), "Unreachable"),
        (errors.RetryableError("server is loading"), "ProbeFailed"),
        (errors.PermanentError("404 no such path"), "ProbeFailed"),
        (RuntimeError("a bug in the probe"), "ProbeFailed"),
    ],
)
async def test_each_error_kind_has_its_reason(raised: Exception, reason: str) -> None:
    async def fails(info: sdk.IntegrationInfo) -> str:
        raise raised

    health = await probing.check(probing.integration("x", "t"), registry=with_probe(fails))
    assert (health.ready, health.reason) == (False, reason)
    assert str(raised) in health.message
    assert "integration 'x'" in health.message


async def test_an_unexpected_exception_is_named_by_its_type() -> None:
    async def crashes(info: sdk.IntegrationInfo) -> str:
        found: dict[str, str] = {}
        return found["missing"]

    health = await probing.check(probing.integration("x", "t"), registry=with_probe(crashes))
    assert health == probe.Health(False, "ProbeFailed", "integration 'x': KeyError: 'missing'")


async def test_a_secret_the_probe_read_never_reaches_the_message() -> None:
    """A careless probe (or a library) quotes the credential: the Redactor, which the local
    provider gave every value read, masks it, across line breaks too."""

    async def leaks(info: sdk.IntegrationInfo) -> str:
        token = info.secrets.get("token")
        raise errors.CredentialsRejectedError(f"refused {token}\nand again: {token}")

    intg = probing.integration("leaky", "t", keys=["token"])
    health = await probing.check(intg, {"token": TOKEN}, registry=with_probe(leaks))
    assert health.reason == "CredentialsRejected"
    assert TOKEN not in health.message
    assert health.message == "integration 'leaky': refused *** and again: ***"


async def test_a_secret_the_probe_did_not_find_is_secret_missing() -> None:
    async def reads(info: sdk.IntegrationInfo) -> str:
        return info.secrets.get("token")

    health = await probing.check(probing.integration("x", "t"), registry=with_probe(reads))
    assert health.reason == "SecretMissing"
    assert "AUTOFLOW_SECRET_X_TOKEN" in health.message


async def test_a_probe_may_decline_to_probe() -> None:
    async def declines(info: sdk.IntegrationInfo) -> sdk.NotProbed:
        return sdk.NotProbed("posting is the only way to test it")

    health = await probing.check(probing.integration("x", "t"), registry=with_probe(declines))
    assert health == probe.Health(
        True, "NotProbed", "integration 'x': posting is the only way to test it"
    )


def test_a_probes_docstring_describes_it() -> None:
    connector = sdk.Connector("t")

    @connector.probe
    async def probe_it(info: sdk.IntegrationInfo) -> str:
        """Connects and
        asks for the version.

        More detail that the reference leaves out.
        """
        return ""

    assert connector.health_probe is not None
    assert connector.health_probe.func is probe_it
    assert connector.health_probe.description == "Connects and asks for the version."


def test_every_builtin_protocol_connector_has_a_probe() -> None:
    missing = [
        name
        for name in ("http", "postgres", "redis", "nats", "email", "slack")
        if BUILTIN.connector(name).health_probe is None
    ]
    assert missing == []


# -- http ---------------------------------------------------------------------------------------


def http_integration(server: httpserver.Server, **settings: object) -> integration.Integration:
    return probing.integration(
        "shop",
        "http",
        {"baseUrl": server.url("/api"), "auth": "bearer", **settings},
        keys=["token"],
    )


async def test_http_probe_gets_the_health_path_with_the_integrations_auth(
    server: httpserver.Server,
) -> None:
    server.route("/api/health", httpserver.Reply.with_json({"status": "up"}))
    health = await probing.check(http_integration(server, healthPath="health"), {"token": TOKEN})
    assert health.reason == "ProbeSucceeded", health
    assert health.message == f"integration 'shop': GET {server.url('/api/health')} answered 200 OK"
    seen = server.last()
    assert (seen.method, seen.path) == ("GET", "/api/health")
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"


async def test_http_probe_without_health_path_gets_the_base_url(server: httpserver.Server) -> None:
    server.route("/api", httpserver.Reply(204))
    health = await probing.check(http_integration(server), {"token": TOKEN})
    assert health.reason == "ProbeSucceeded"
    assert server.last().path == "/api"


async def test_http_probe_takes_a_redirect_as_an_answer(server: httpserver.Server) -> None:
    """A 3xx (say, to a login page) says the server is there; it is not followed."""
    server.route("/api", httpserver.Reply.redirect(server.url("/login")))
    health = await probing.check(http_integration(server), {"token": TOKEN})
    assert health.ready
    assert "answered 302 Found" in health.message
    assert server.calls("/login") == 0


@pytest.mark.parametrize("status", [401, 403])
async def test_http_probe_401_and_403_are_rejected_credentials_never_echoed(
    server: httpserver.Server, status: int
) -> None:
    server.route(
        "/api",
        lambda request: httpserver.Reply(
            status, f"token {request.headers['authorization'].split()[1]} is not valid here"
        ),
    )
    health = await probing.check(http_integration(server), {"token": TOKEN})
    assert (health.ready, health.reason) == (False, "CredentialsRejected")
    assert f"HTTP {status}" in health.message
    assert TOKEN not in health.message
    assert "token *** is not valid here" in health.message


async def test_http_probe_hides_a_query_key_echoed_in_its_encoded_form(
    server: httpserver.Server,
) -> None:
    key = "k3y/with spaces+plus"

    def echo(request: httpserver.Recorded) -> httpserver.Reply:
        given = request.query["api_key"][0]
        return httpserver.Reply(401, f"no such key: {given} (sent as {quote_plus(given)})")

    server.route("/api", echo)
    intg = probing.integration(
        "shop",
        "http",
        {"baseUrl": server.url("/api"), "auth": "query", "queryName": "api_key"},
        keys=["apiKey"],
    )
    health = await probing.check(intg, {"apiKey": key})
    assert health.reason == "CredentialsRejected"
    assert "k3y" not in health.message
    assert "no such key: *** (sent as ***)" in health.message


async def test_http_probe_5xx_is_unreachable(server: httpserver.Server) -> None:
    server.route("/api", httpserver.Reply(503, "down for maintenance"))
    health = await probing.check(http_integration(server), {"token": TOKEN})
    assert (health.ready, health.reason) == (False, "Unreachable")
    assert "HTTP 503" in health.message and "down for maintenance" in health.message


async def test_http_probe_of_a_closed_port_is_unreachable() -> None:
    intg = probing.integration("gone", "http", {"baseUrl": f"http://127.0.0.1:{closed_port()}"})
    health = await probing.check(intg)
    assert (health.ready, health.reason) == (False, "Unreachable")
    assert health.message.startswith("integration 'gone': could not connect to http://127.0.0.1:")


async def test_http_probe_of_a_missing_path_fails_and_suggests_a_health_path(
    server: httpserver.Server,
) -> None:
    health = await probing.check(http_integration(server), {"token": TOKEN})
    assert (health.ready, health.reason) == (False, "ProbeFailed")
    assert "HTTP 404" in health.message
    assert "set settings.healthPath" in health.message


async def test_http_probe_that_gets_no_answer_times_out(server: httpserver.Server) -> None:
    server.route("/api", httpserver.Reply(200, delay=3))
    health = await probing.check(http_integration(server), {"token": TOKEN}, timeout=0.3)
    assert (health.ready, health.reason) == (False, "Timeout")
    assert "no answer within 0.3s" in health.message


async def test_http_probe_without_base_url_contacts_nothing() -> None:
    health = await probing.check(probing.integration("any", "http", {"auth": "bearer"}))
    assert (health.ready, health.reason) == (True, "NotProbed")
    assert "no settings.baseUrl" in health.message


async def test_http_probe_without_its_credential_is_secret_missing(
    server: httpserver.Server,
) -> None:
    health = await probing.check(http_integration(server))
    assert (health.ready, health.reason) == (False, "SecretMissing")
    assert "AUTOFLOW_SECRET_SHOP_TOKEN" in health.message
    assert server.calls() == 0


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"baseUrl": "ftp://files.example"}, "settings.baseUrl"),
        ({"baseUrl": "https://shop.example", "healthPath": "https://other.example/health"}, None),
        ({"baseUrl": "https://shop.example", "auth": "header"}, "settings.headerName"),
        ({"baseUrl": "https://shop.example", "auth": "kerberos"}, "settings.auth"),
    ],
)
async def test_http_probe_with_unusable_settings_is_invalid_settings(
    settings: dict[str, str], field: str | None
) -> None:
    health = await probing.check(probing.integration("shop", "http", settings), {"apiKey": "k1234"})
    assert (health.ready, health.reason) == (False, "InvalidSettings")
    assert "Integration/shop" in health.message
    if field:
        assert f"field {field!r}" in health.message


# -- slack ------------------------------------------------------------------------------------

# The reply documented on https://docs.slack.dev/reference/methods/auth.test
AUTH_TEST = {
    "ok": True,
    "url": "https://subarachnoid.slack.com/",
    "team": "Subarachnoid Workspace",
    "user": "grace",
    "team_id": "T12345678",
    "user_id": "W12345678",
}


def slack_integration(server: httpserver.Server | None) -> integration.Integration:
    settings = {"baseUrl": server.url("/api")} if server else {}
    return probing.integration("chat", "slack", settings)


async def test_slack_probe_calls_auth_test(server: httpserver.Server) -> None:
    """https://docs.slack.dev/reference/methods/auth.test: POST with the bearer token; the
    reply names the workspace (team, url) and the user."""
    server.route("/api/auth.test", httpserver.Reply.with_json(AUTH_TEST))
    health = await probing.check(slack_integration(server), {"token": TOKEN})
    assert health == probe.Health(
        True,
        "ProbeSucceeded",
        "integration 'chat': Slack workspace Subarachnoid Workspace "
        "(https://subarachnoid.slack.com/), as grace",
    )
    seen = server.last("/api/auth.test")
    assert seen.method == "POST"
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("code", ["invalid_auth", "token_revoked", "account_inactive"])
async def test_slack_probe_refused_token_is_rejected_credentials(
    server: httpserver.Server, code: str
) -> None:
    """auth.test's documented errors, answered with HTTP 200 and ok: false."""
    server.route("/api/auth.test", httpserver.Reply.with_json({"ok": False, "error": code}))
    health = await probing.check(slack_integration(server), {"token": TOKEN})
    assert (health.ready, health.reason) == (False, "CredentialsRejected")
    assert f"error {code!r}" in health.message


async def test_slack_probe_5xx_is_unreachable(server: httpserver.Server) -> None:
    server.route("/api/auth.test", httpserver.Reply(503, "upstream connect error"))
    health = await probing.check(slack_integration(server), {"token": TOKEN})
    assert (health.ready, health.reason) == (False, "Unreachable")
    assert health.message.startswith("integration 'chat': Slack auth.test: HTTP 503")


async def test_slack_webhook_only_integration_is_ready_without_posting(
    server: httpserver.Server,
) -> None:
    hook = server.url("/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX")
    health = await probing.check(slack_integration(server), {"webhookUrl": hook})
    assert (health.ready, health.reason) == (True, "NotProbed")
    assert "nothing was sent" in health.message
    assert hook not in health.message
    assert server.calls() == 0


async def test_slack_without_token_or_webhook_is_secret_missing() -> None:
    health = await probing.check(slack_integration(None))
    assert (health.ready, health.reason) == (False, "SecretMissing")
    assert "has no secret 'token'" in health.message
