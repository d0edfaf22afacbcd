"""The ``email`` connector against a real SMTP server (aiosmtpd) on a loopback port.

Actions are called as the engine calls them (``call_action``); the server records every
message it accepts, parsed, with its envelope, whether it came over TLS and who logged in.
What a workflow author relies on: the message arrives as the step wrote it (several
recipients, Bcc only in the envelope, text and HTML as alternatives, attachments byte for
byte), STARTTLS, SSL and AUTH work and are never silently skipped, a retried step sends the
same Message-ID, and failures say retryable or not, name the integration and never show the
password. The last section runs ``autoflow run`` with an Integration manifest and the password
in ``AUTOFLOW_SECRET_MAIL_PASSWORD``.
"""

from __future__ import annotations

import base64
import email.message
import json
import logging
import smtplib
import subprocess
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import leaks
import pydantic
import pytest
import servers

from autoflow.connectors import sdk
from autoflow.connectors.builtin import email as email_connector
from autoflow.crds import errors

CallAction = Callable[..., Awaitable[Any]]
MakeIntegration = Callable[..., sdk.IntegrationInfo]
SmtpFactory = Callable[..., servers.SmtpServer]
Cli = Callable[..., subprocess.CompletedProcess[str]]

MINIMAL = {"from": "a@example.com", "to": "b@example.com", "text": "x"}
PDF = b"%PDF-1.4\n\x00\x01\x02\xff binary \r\n bytes"


def settings_of(server: servers.SmtpServer, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"host": server.host, "port": server.port}
    if server.certificate is not None:
        values["tlsCaCert"] = server.certificate.cert_file.read_text()
    return {**values, **extra}


@pytest.fixture
def mail(smtp_server: servers.SmtpServer, make_integration: MakeIntegration) -> sdk.IntegrationInfo:
    """Integration ``mail``: the session server over STARTTLS, logged in as its user."""
    return make_integration(
        "mail",
        "email",
        settings_of(smtp_server, username=smtp_server.username, security="starttls"),
        {"password": smtp_server.password},
    )


async def expect_error(call: Awaitable[Any]) -> errors.ConnectorError:
    with pytest.raises(errors.ConnectorError) as caught:
        await call
    return caught.value


def body_of(message: email.message.EmailMessage, content_type: str) -> str:
    """A text part's content, with the wire's CRLF line ends as the step wrote them (LF)."""
    part = next(p for p in message.walk() if p.get_content_type() == content_type)
    content: str = part.get_content()
    return content.replace("\r\n", "\n").removesuffix("\n")


# -- what arrives -----------------------------------------------------------------------------


async def test_several_recipients_text_html_and_attachments_arrive_as_sent(
    call_action: CallAction, mail: sdk.IntegrationInfo, smtp_server: servers.SmtpServer
) -> None:
    out = await call_action(
        "email.send",
        {
            "from": "Shop Ünited <shop@example.com>",
            "to": ["ana@example.org", "Bo Brink <bo@example.net>"],
            "cc": "cy@example.org, Dee <dee@example.org>",
            "bcc": ["audit@example.com"],
            "replyTo": "help@example.com",
            "subject": "Your order 17 ✓",
            "text": "Thanks for your order.\nTotal: 12,50 €",
            "html": "<p>Thanks for your <b>order</b>.</p>",
            "attachments": [
                {"name": "order.csv", "content": "sku,qty\nA-1,2\n"},
                {
                    "name": "invoice.pdf",
                    "content": base64.b64encode(PDF).decode(),
                    "encoding": "base64",
                },
                {"name": "data", "content": '{"a": 1}', "contentType": "application/json"},
            ],
            "headers": {"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.com>"},
        },
        mail,
    )
    everyone = [
        "ana@example.org",
        "bo@example.net",
        "cy@example.org",
        "dee@example.org",
        "audit@example.com",
    ]
    assert out["accepted"] == everyone
    assert out["refused"] == {}
    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "shop@example.com"
    assert envelope.rcpt_tos == everyone
    message = envelope.message
    assert message["From"] == "Shop Ünited <shop@example.com>"
    assert message["To"] == "ana@example.org, Bo Brink <bo@example.net>"
    assert message["Cc"] == "cy@example.org, Dee <dee@example.org>"
    assert message["Bcc"] is None  # only in the envelope
    assert message["Reply-To"] == "help@example.com"
    assert message["Subject"] == "Your order 17 ✓"
    assert message["X-Campaign"] == "spring"
    assert message["List-Unsubscribe"] == "<mailto:u@example.com>"
    assert message["Message-ID"] == out["messageId"]
    assert message["Date"] is not None
    kinds = [part.get_content_type() for part in message.walk()]
    assert kinds[:4] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    assert body_of(message, "text/plain") == "Thanks for your order.\nTotal: 12,50 €"
    assert body_of(message, "text/html") == "<p>Thanks for your <b>order</b>.</p>"
    attached = {
        a.get_filename(): (a.get_content_type(), a.get_payload(decode=True))
        for a in message.iter_attachments()
    }
    assert attached == {
        "order.csv": ("text/csv", b"sku,qty\nA-1,2\n"),
        "invoice.pdf": ("application/pdf", PDF),
        "data": ("application/json", b'{"a": 1}'),
    }


async def test_text_only_and_html_only(
    call_action: CallAction, mail: sdk.IntegrationInfo, smtp_server: servers.SmtpServer
) -> None:
    base = {"from": "shop@example.com", "to": "ana@example.org", "subject": "s"}
    await call_action("email.send", {**base, "text": "just text"}, mail, "text")
    await call_action("email.send", {**base, "html": "<i>just html</i>"}, mail, "html")
    text, html = smtp_server.messages
    assert text.get_content_type() == "text/plain"
    assert body_of(text, "text/plain") == "just text"
    assert html.get_content_type() == "text/html"
    assert body_of(html, "text/html") == "<i>just html</i>"


async def test_long_lines_and_non_ascii_survive(
    call_action: CallAction, mail: sdk.IntegrationInfo, smtp_server: servers.SmtpServer
) -> None:
    line = "ž" + "x" * 3000  # longer than SMTP's 998-character line limit
    await call_action(
        "email.send", {"from": "shop@example.com", "to": "ana@example.org", "text": line}, mail
    )
    [message] = smtp_server.messages
    assert body_of(message, "text/plain") == line


async def test_the_sender_from_the_integration(
    call_action: CallAction,
    make_integration: MakeIntegration,
    smtp_server: servers.SmtpServer,
) -> None:
    mail = make_integration(
        "mail", "email", settings_of(smtp_server, **{"from": "Robot <robot@example.com>"})
    )
    await call_action("email.send", {"to": "ana@example.org", "text": "hi"}, mail)
    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "robot@example.com"
    assert envelope.message["From"] == "Robot <robot@example.com>"


# -- Message-ID and retries -------------------------------------------------------------------


async def test_a_retried_step_sends_the_same_message_id(
    call_action: CallAction, mail: sdk.IntegrationInfo, smtp_server: servers.SmtpServer
) -> None:
    with_ = {"from": "shop@example.com", "to": "ana@example.org", "text": "receipt"}
    first = await call_action("email.send", with_, mail, "receipt")
    again = await call_action("email.send", with_, mail, "receipt")  # attempt 2, same key
    other = await call_action("email.send", with_, mail, "reminder")
    ids = [m["Message-ID"] for m in smtp_server.messages]
    assert ids == [first["messageId"], first["messageId"], other["messageId"]]
    assert again["messageId"] == first["messageId"] != other["messageId"]
    assert first["messageId"] == email_connector.message_id("run-1:receipt", "example.com")
    assert first["messageId"].endswith("@example.com>")


async def test_message_id_domain_and_an_explicit_message_id(
    call_action: CallAction, make_integration: MakeIntegration, smtp_server: servers.SmtpServer
) -> None:
    mail = make_integration(
        "mail", "email", settings_of(smtp_server, messageIdDomain="mail.example.net")
    )
    base = {"from": "shop@example.com", "to": "ana@example.org", "text": "x"}
    out = await call_action("email.send", base, mail, "a")
    assert out["messageId"].endswith("@mail.example.net>")
    out = await call_action("email.send", {**base, "headers": {"Message-ID": "<mine@x>"}}, mail)
    assert out["messageId"] == "<mine@x>"
    assert smtp_server.messages[-1]["Message-ID"] == "<mine@x>"


# -- security and login -----------------------------------------------------------------------


async def test_starttls_and_auth(
    call_action: CallAction, mail: sdk.IntegrationInfo, smtp_server: servers.SmtpServer
) -> None:
    await call_action("email.send", MINIMAL, mail)
    [envelope] = smtp_server.envelopes
    assert envelope.tls is True
    assert envelope.authenticated_as == smtp_server.username


async def test_ssl_and_auth(
    call_action: CallAction, make_integration: MakeIntegration, smtp_factory: SmtpFactory
) -> None:
    server = smtp_factory(tls="ssl", auth=("relay", "relay-pw-77"), auth_required=True)
    mail = make_integration(
        "mail", "email", settings_of(server, security="ssl", username="relay"),
        {"password": "relay-pw-77"},
    )  # fmt: skip
    await call_action("email.send", MINIMAL, mail)
    [envelope] = server.envelopes
    assert (envelope.tls, envelope.authenticated_as) == (True, "relay")


async def test_no_security_against_a_plain_relay(
    call_action: CallAction, make_integration: MakeIntegration, smtp_factory: SmtpFactory
) -> None:
    server = smtp_factory(tls="none")
    mail = make_integration("mail", "email", settings_of(server, security="none"))
    await call_action("email.send", MINIMAL, mail)
    [envelope] = server.envelopes
    assert (envelope.tls, envelope.authenticated_as) == (False, None)


async def test_username_as_a_secret(
    call_action: CallAction, make_integration: MakeIntegration, smtp_server: servers.SmtpServer
) -> None:
    mail = make_integration(
        "mail", "email", settings_of(smtp_server),
        {"username": smtp_server.username, "password": smtp_server.password},
    )  # fmt: skip
    await call_action("email.send", MINIMAL, mail)
    assert smtp_server.envelopes[0].authenticated_as == smtp_server.username


async def test_wrong_password_is_permanent_and_not_shown(
    call_action: CallAction, make_integration: MakeIntegration, smtp_server: servers.SmtpServer
) -> None:
    wrong = "not-the-password-9f"
    mail = make_integration(
        "mail", "email", settings_of(smtp_server, username=smtp_server.username),
        {"password": wrong},
    )  # fmt: skip
    error = await expect_error(call_action("email.send", MINIMAL, mail))
    assert isinstance(error, errors.PermanentError)
    assert f"integration 'mail': SMTP server 127.0.0.1:{smtp_server.port}" in str(error)
    assert "refused the username or password: 535" in str(error)
    assert wrong not in str(error) + repr(error.details)
    assert smtp_server.auth_failures == 1
    assert smtp_server.envelopes == []


async def test_starttls_is_required_when_asked_for(
    call_action: CallAction, make_integration: MakeIntegration, smtp_factory: SmtpFactory
) -> None:
    """A server that does not offer STARTTLS gets nothing: no silent fallback to plain text."""
    server = smtp_factory(tls="none", auth=("u", "pw-secret-1"))
    mail = make_integration(
        "mail", "email", settings_of(server, security="starttls", username="u"),
        {"password": "pw-secret-1"},
    )  # fmt: skip
    error = await expect_error(call_action("email.send", MINIMAL, mail))
    assert isinstance(error, errors.PermanentError)
    assert "does not offer STARTTLS" in str(error)
    assert server.envelopes == [] and server.auth_failures == 0


async def test_an_untrusted_certificate_is_permanent(
    call_action: CallAction, make_integration: MakeIntegration, smtp_server: servers.SmtpServer
) -> None:
    settings = settings_of(smtp_server)
    del settings["tlsCaCert"]
    mail = make_integration("mail", "email", settings)
    error = await expect_error(call_action("email.send", MINIMAL, mail))
    assert isinstance(error, errors.PermanentError)
    assert "certificate is not trusted" in str(error)
    assert "tlsCaCert" in str(error)


async def test_a_server_that_requires_auth_refuses_anonymous_mail(
    call_action: CallAction, make_integration: MakeIntegration, smtp_factory: SmtpFactory
) -> None:
    server = smtp_factory(tls="starttls", auth=("u", "pw-1234"), auth_required=True)
    mail = make_integration("mail", "email", settings_of(server))
    error = await expect_error(call_action("email.send", MINIMAL, mail))
    assert isinstance(error, errors.PermanentError)
    assert "530" in str(error)


# -- outages and server replies ---------------------------------------------------------------


async def test_server_down_is_retryable(
    call_action: CallAction, make_integration: MakeIntegration, smtp_server: servers.SmtpServer
) -> None:
    mail = make_integration(
        "mail", "email", settings_of(smtp_server, port=servers.free_port(), username="u"),
        {"password": "pw-down-1"},
    )  # fmt: skip
    error = await expect_error(call_action("email.send", MINIMAL, mail))
    assert isinstance(error, errors.RetryableError)
    assert "integration 'mail'" in str(error)
    assert "could not connect: Connection refused" in str(error)


def failure(exc: BaseException) -> errors.ConnectorError:
    mailer = email_connector.Mailer(
        "mail", email_connector.Settings(host="smtp.example.com"), "u", "hunter2-pw"
    )
    ctx = sdk.ActionContext(
        run_id="run-1",
        step_id="send",
        attempt=1,
        idempotency_key="run-1:send",
        log=logging.LoggerAdapter(logging.getLogger("test.email"), {}),
        integration=None,
        pool=sdk.ResourcePool(),
    )
    return mailer.failure(exc, ctx)


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (
            smtplib.SMTPRecipientsRefused({"a@x.org": (450, b"4.2.1 mailbox busy")}),
            errors.RetryableError,
            "refused every recipient: a@x.org: 450 4.2.1 mailbox busy",
        ),
        (
            smtplib.SMTPRecipientsRefused(
                {"a@x.org": (450, b"busy"), "b@x.org": (550, b"5.1.1 no such user")}
            ),
            errors.PermanentError,
            "b@x.org: 550 5.1.1 no such user",
        ),
        (
            smtplib.SMTPSenderRefused(553, b"5.7.1 not your domain", "me@x.org"),
            errors.PermanentError,
            "refused the sender me@x.org: 553 5.7.1 not your domain",
        ),
        (
            smtplib.SMTPDataError(451, b"4.3.0 try again later"),
            errors.RetryableError,
            "answered: 451 4.3.0 try again later",
        ),
        (
            smtplib.SMTPDataError(554, b"5.7.1 rejected as spam"),
            errors.PermanentError,
            "answered: 554 5.7.1 rejected as spam",
        ),
        (
            smtplib.SMTPAuthenticationError(535, b"bad credentials for hunter2-pw"),
            errors.CredentialsRejectedError,
            "refused the username or password: 535 bad credentials for ***",
        ),
        (
            smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
            errors.RetryableError,
            "connection lost or timed out",
        ),
        (TimeoutError("timed out"), errors.RetryableError, "connection lost or timed out"),
        (
            smtplib.SMTPNotSupportedError("... the server does not advertise SMTPUTF8 ..."),
            errors.PermanentError,
            "does not advertise SMTPUTF8",
        ),
    ],
)
def test_smtp_replies_are_classified_by_their_code(
    exc: BaseException, kind: type[errors.ConnectorError], text: str
) -> None:
    """4xx replies are temporary in SMTP (RFC 5321 §4.2.1), 5xx are not."""
    error = failure(exc)
    assert type(error) is kind
    assert text in str(error)
    assert "integration 'mail': SMTP server smtp.example.com:587" in str(error)
    assert "hunter2-pw" not in str(error) + json.dumps(error.details, default=str)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("with_", "problem"),
    [
        ({"from": "a@example.com", "text": "x"}, "at least one recipient"),
        ({"from": "a@example.com", "to": "b@example.com"}, "give a body"),
        ({"from": "a@example.com", "to": "not an address", "text": "x"}, "not an email address"),
        ({"from": "a@example.com", "to": "b@example.com", "subject": "a\nBcc: x@y", "text": "x"},
         "one line"),
        ({"from": "a@example.com", "to": "b@example.com", "text": "x",
          "headers": {"X-A": "1\r\nBcc: evil@example.com"}}, "line break"),
        ({"from": "a@example.com", "to": "b@example.com", "text": "x", "headers": {"To": "c@x"}},
         "set by the field to"),
        ({"from": "a@example.com", "to": "b@example.com", "text": "x",
          "attachments": [{"name": "../../etc/passwd", "content": "x"}]}, "path separators"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_sending(with_: dict[str, Any], problem: str) -> None:
    action = email_connector.connector.actions["send"]
    with pytest.raises(pydantic.ValidationError, match=problem):
        action.params.model_validate(with_)


async def test_an_attachment_that_is_not_base64(
    call_action: CallAction, mail: sdk.IntegrationInfo, smtp_server: servers.SmtpServer
) -> None:
    error = await expect_error(
        call_action(
            "email.send",
            {
                "from": "a@example.com",
                "to": "b@example.com",
                "text": "x",
                "attachments": [{"name": "a.bin", "content": "%%%", "encoding": "base64"}],
            },
            mail,
        )
    )
    assert isinstance(error, errors.PermanentError)
    assert error.where.field == "with.attachments[0].content"
    assert smtp_server.envelopes == []


async def test_no_sender_anywhere(
    call_action: CallAction, make_integration: MakeIntegration, smtp_server: servers.SmtpServer
) -> None:
    mail = make_integration("mail", "email", settings_of(smtp_server))
    error = await expect_error(
        call_action("email.send", {"to": "b@example.com", "text": "x"}, mail)
    )
    assert isinstance(error, errors.PermanentError)
    assert "no sender" in str(error)


# -- autoflow run -----------------------------------------------------------------------------

INTEGRATION = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {name: mail}
spec:
  type: email
  settings:
    host: 127.0.0.1
    port: %(port)d
    security: starttls
    username: %(username)s
    from: Shop <shop@example.com>
    tlsCaCert: |
%(ca)s
  secretRef: {name: mail-credentials, keys: [password]}
"""

WORKFLOW = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: receipts}
spec:
  inputs:
    customers:
      type: array
      default:
        - {name: Ana, email: ana@example.org}
        - {name: Bo, email: bo@example.net}
  steps:
    - id: receipt
      uses: email.send
      integration: mail
      foreach: ${ inputs.customers }
      with:
        to: "${ item.name } <${ item.email }>"
        bcc: audit@example.com
        subject: "Receipt for ${ item.name }"
        text: "Hello ${ item.name }"
        html: "<p>Hello <b>${ item.name }</b></p>"
        headers: {X-Priority: 1}
        attachments:
          - {name: receipt.txt, content: "paid: ${ item.name }"}
  outputs:
    ids: ${ [r.messageId for r in steps.receipt.output] }
"""


def write_run_files(directory: Path, server: servers.SmtpServer) -> None:
    assert server.certificate is not None
    ca = textwrap.indent(server.certificate.cert_file.read_text(), " " * 6)
    values = {"port": server.port, "username": server.username, "ca": ca.rstrip("\n")}
    (directory / "integration.yaml").write_text(INTEGRATION % values)
    (directory / "receipts.yaml").write_text(WORKFLOW)


def test_autoflow_run_sends_one_message_per_customer(
    autoflow_cli: Cli, smtp_server: servers.SmtpServer, tmp_path: Path
) -> None:
    write_run_files(tmp_path, smtp_server)
    assert smtp_server.password is not None
    result = autoflow_cli(
        "run", "receipts.yaml", "integration.yaml", "--output", "json",
        env={"AUTOFLOW_SECRET_MAIL_PASSWORD": smtp_server.password}, cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert smtp_server.password not in result.stdout + result.stderr
    ids = json.loads(result.stdout)["outputs"]["ids"]
    envelopes = sorted(smtp_server.envelopes, key=lambda e: e.rcpt_tos[0])
    assert [e.rcpt_tos for e in envelopes] == [
        ["ana@example.org", "audit@example.com"],
        ["bo@example.net", "audit@example.com"],
    ]
    assert all(e.tls and e.authenticated_as == smtp_server.username for e in envelopes)
    assert sorted(e.message["Message-ID"] for e in envelopes) == sorted(ids)
    assert len(set(ids)) == 2  # one per item: each is its own unit of work
    ana = envelopes[0].message
    assert (ana["To"], ana["Subject"]) == ("Ana <ana@example.org>", "Receipt for Ana")
    assert ana["X-Priority"] == "1"
    [attachment] = ana.iter_attachments()
    assert attachment.get_payload(decode=True) == b"paid: Ana"


def test_autoflow_run_with_a_wrong_password_fails_without_showing_it(
    autoflow_cli: Cli, smtp_server: servers.SmtpServer, tmp_path: Path
) -> None:
    write_run_files(tmp_path, smtp_server)
    wrong = "wrong-password-c0ffee"
    result = autoflow_cli(
        "run", "receipts.yaml", "integration.yaml",
        env={"AUTOFLOW_SECRET_MAIL_PASSWORD": wrong}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "integration 'mail': SMTP server 127.0.0.1" in result.stdout
    assert "refused the username or password" in result.stdout
    assert wrong not in result.stdout + result.stderr
    assert smtp_server.envelopes == []


# -- secrets the server echoes back ------------------------------------------------------------


async def test_a_password_the_server_echoes_never_reaches_an_error_or_log(
    smtp_factory: SmtpFactory, tmp_path: Path
) -> None:
    """An SMTP reply repeating the password, raw, URL-encoded, form-encoded and JSON-encoded,
    is masked in the step's error, the logs and the journal."""
    server = smtp_factory(tls="starttls", auth=("mailer", leaks.SECRET), auth_required=True)
    assert server.certificate is not None
    forms = leaks.forms(leaks.SECRET)
    server.rcpt_replies["echo@example.org"] = f"550 5.1.1 not {' '.join(forms.values())}"
    settings = {
        "host": server.host,
        "port": server.port,
        "security": "starttls",
        "username": "mailer",
        "from": "shop@example.com",
        "tlsCaCert": server.certificate.cert_file.read_text(),
    }
    mail = {"subject": "hi", "text": "hello"}
    steps: list[dict[str, Any]] = [
        {"id": "sent", "uses": "email.send", "integration": "mail",
         "with": {**mail, "to": ["ok@example.org"]}},
        {"id": "echo", "uses": "email.send", "integration": "mail", "needs": ["sent"],
         "continueOnError": True, "with": {**mail, "to": ["echo@example.org"]}},
    ]  # fmt: skip
    manifests = leaks.manifests("mail", "email", settings, steps)
    shown = await leaks.run_locally(tmp_path, manifests, {"mail": {"password": leaks.SECRET}})
    leaked = list(leaks.lines_with(shown.text, leaks.SECRET))
    assert leaked == [], leaked
    assert shown.result.steps["sent"].phase == "Succeeded"
    assert [e.rcpt_tos for e in server.envelopes] == [["ok@example.org"]]
    error = shown.result.steps["echo"].error or ""
    assert "550 5.1.1 not *** *** *** ***" in error, error
