"""The one redaction policy: which forms of a secret are masked, the rule for very short
secrets, and that the HTTP-based connectors (http, a declarative catalogue service, slack)
keep a secret the remote echoes back out of step outputs, errors, logs and the journal.

The same end-to-end check for postgres, redis, nats and email runs against real servers in
``tests/services``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpserver
import leaks
import pytest

from autoflow.connectors.sdk import redaction
from autoflow.runners.access import redact

SECRET = leaks.SECRET

# -- the policy -------------------------------------------------------------------------------


@pytest.mark.parametrize("form", sorted(leaks.forms(SECRET)))
def test_every_encoded_form_of_a_secret_is_masked_inside_text(form: str) -> None:
    encoded = leaks.forms(SECRET)[form]
    redactor = redaction.Redactor([SECRET])
    assert redactor.text(f"denied: {encoded}!") == "denied: ***!"
    assert redactor.value({"k": [f"<{encoded}>"]}) == {"k": ["<***>"]}


def test_lower_case_percent_escapes_are_masked_too() -> None:
    redactor = redaction.Redactor(["a/b+c d"])
    assert redactor.text("q=a%2fb%2bc%20d") == "q=***"


def test_a_short_secret_is_masked_only_as_a_whole_value() -> None:
    """A 1-character password must not turn ``xkcd-y`` into ``xkcd-***`` (corrupting data and
    telling where the secret is); a field that is exactly the secret is still masked."""
    redactor = redaction.Redactor(["y"])
    data = {"word": "xkcd-y", "password": "y", "list": ["y", "yy"], "y": 1}
    assert redactor.value(data) == {
        "word": "xkcd-y",
        "password": "***",
        "list": ["***", "yy"],
        "***": 1,
    }
    assert redactor.text("y") == "***"
    assert redactor.text("day by day") == "day by day"


def test_the_short_rule_ends_at_the_documented_length() -> None:
    shortest = "k" * redaction.MIN_SUBSTRING_LENGTH
    assert redaction.Redactor([shortest]).text(f"a{shortest}b") == "a***b"
    assert redaction.Redactor([shortest[1:]]).text(f"a{shortest[1:]}b") == f"a{shortest[1:]}b"


def test_a_secret_containing_another_is_masked_whole() -> None:
    redactor = redaction.Redactor(["token-1234", "token-1234-extended"])
    assert redactor.text("got token-1234-extended") == "got ***"


def test_the_run_uses_the_same_policy_as_the_connectors() -> None:
    assert redact.Redactor is redaction.Redactor


def test_a_logged_traceback_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    redactor = redaction.Redactor([SECRET])
    adapter = redact.RedactingAdapter(logging.getLogger("test.redact"), {}, redactor)
    encoded = leaks.forms(SECRET)["url-encoded"]
    with caplog.at_level(logging.DEBUG, "test.redact"):
        try:
            raise ValueError(f"cannot parse postgresql://ada:{encoded}@db/x")
        except ValueError:
            adapter.exception("connecting failed")
    [record] = caplog.records
    shown = caplog.text + record.getMessage()
    assert leaks.found(shown, SECRET) == []
    assert "cannot parse postgresql://ada:***@db/x" in record.getMessage()


# -- http, declarative and slack, run as `autoflow run` runs them ------------------------------


@pytest.fixture
def server() -> Iterator[httpserver.Server]:
    with httpserver.serve() as running:
        yield running


def _echo(status: int, *, text: bool = False) -> httpserver.Reply:
    """A reply that repeats SECRET in every form: in JSON (where the parsed values are the
    forms) or as plain text (where the body's text is), and URL-encoded in a header."""
    forms = leaks.forms(SECRET)
    header = {"X-Echo": forms["url-encoded"]}
    if text:
        return httpserver.Reply(status, " ".join(forms.values()), header)
    body = {"ok": status < 400, "message": " ".join(forms.values()), "forms": forms}
    return httpserver.Reply.with_json(body, status, header)


def _assert_nothing_leaked(shown: leaks.Shown, secret: str = SECRET) -> None:
    leaked = list(leaks.lines_with(shown.text, secret))
    assert leaked == [], leaked


async def test_http_keeps_an_echoed_secret_out_of_output_error_log_and_journal(
    server: httpserver.Server, tmp_path: Path
) -> None:
    server.route("/ok", _echo(200))
    server.route("/bad", _echo(400, text=True))
    steps: list[dict[str, Any]] = [
        {"id": "ok", "uses": "http.request", "integration": "api", "with": {"url": "/ok"}},
        {
            "id": "bad",
            "uses": "http.request",
            "integration": "api",
            "with": {"url": "/bad"},
            "continueOnError": True,
        },
        {"id": "say", "uses": "core.log", "with": {"message": "${ steps.ok.output.body }"}},
    ]
    manifests = leaks.manifests(
        "api", "http", {"baseUrl": server.base_url, "auth": "bearer"}, steps
    )
    shown = await leaks.run_locally(tmp_path, manifests, {"api": {"token": SECRET}})
    assert server.last().headers["authorization"] == f"Bearer {SECRET}"
    _assert_nothing_leaked(shown)
    ok = shown.result.steps["ok"].output
    assert ok["body"]["forms"] == dict.fromkeys(leaks.forms(SECRET), "***")
    assert ok["headers"]["x-echo"] == "***"
    assert (shown.result.steps["bad"].error or "").endswith("/bad: *** *** *** ***")


async def test_http_with_a_one_character_password_keeps_the_data_intact(
    server: httpserver.Server, tmp_path: Path
) -> None:
    server.route("/me", httpserver.Reply.with_json({"word": "xkcd-y", "password": "y"}))
    steps = [{"id": "me", "uses": "http.request", "integration": "api", "with": {"url": "/me"}}]
    manifests = leaks.manifests("api", "http", {"baseUrl": server.base_url, "auth": "basic"}, steps)
    secrets = {"api": {"username": "ada", "password": "y"}}
    shown = await leaks.run_locally(tmp_path, manifests, secrets)
    assert shown.result.succeeded, shown.result.error
    assert shown.result.steps["me"].output["body"] == {"word": "xkcd-y", "password": "***"}


async def test_a_declarative_service_keeps_an_echoed_secret_out_of_everything(
    server: httpserver.Server, tmp_path: Path
) -> None:
    path = "/repos/octo/hello/issues"
    server.queue(path, _echo(201), _echo(422))
    with_ = {"owner": "octo", "repo": "hello", "title": "t"}
    steps: list[dict[str, Any]] = [
        {"id": "ok", "uses": "github.create_issue", "integration": "gh", "with": with_},
        {
            "id": "bad",
            "uses": "github.create_issue",
            "integration": "gh",
            "with": with_,
            "continueOnError": True,
            "needs": ["ok"],
        },
    ]
    manifests = leaks.manifests("gh", "github", {"baseUrl": server.base_url}, steps)
    shown = await leaks.run_locally(tmp_path, manifests, {"gh": {"token": SECRET}})
    assert server.calls(path) == 2
    _assert_nothing_leaked(shown)
    assert shown.result.steps["ok"].output["forms"] == dict.fromkeys(leaks.forms(SECRET), "***")
    assert "HTTP 422" in (shown.result.steps["bad"].error or "")
    assert "*** *** *** ***" in (shown.result.steps["bad"].error or "")


async def test_slack_keeps_an_echoed_secret_out_of_everything(
    server: httpserver.Server, tmp_path: Path
) -> None:
    forms = " ".join(leaks.forms(SECRET).values())
    posted = {"ok": True, "channel": "C1", "ts": "1.2", "message": {"text": forms}}
    server.queue(
        "/api/chat.postMessage",
        httpserver.Reply.with_json(posted),
        httpserver.Reply.with_json({"ok": False, "error": forms}),
    )
    with_ = {"channel": "C1", "text": "hi"}
    steps: list[dict[str, Any]] = [
        {"id": "ok", "uses": "slack.postMessage", "integration": "chat", "with": with_},
        {
            "id": "bad",
            "uses": "slack.postMessage",
            "integration": "chat",
            "with": with_,
            "continueOnError": True,
            "needs": ["ok"],
        },
    ]
    manifests = leaks.manifests("chat", "slack", {"baseUrl": server.url("/api")}, steps)
    shown = await leaks.run_locally(tmp_path, manifests, {"chat": {"token": SECRET}})
    assert server.calls("/api/chat.postMessage") == 2
    _assert_nothing_leaked(shown)
    assert shown.result.steps["ok"].output["message"]["text"] == "*** *** *** ***"
    assert "*** *** *** ***" in (shown.result.steps["bad"].error or "")
