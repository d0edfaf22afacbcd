"""The ``email`` connector: send mail over SMTP (stdlib ``smtplib``), plain, TLS or STARTTLS.

One action::

    send   from, to, cc, bcc, replyTo, subject, text and/or html, attachments, headers
           → messageId, accepted (recipients the server took), refused (recipient → reply)
    (probe) the health probe: the same session (EHLO, TLS, AUTH) and QUIT, no mail sent

The message is built by pure code (``build``) and handed to a thin sending shell
(``_deliver``, run in a worker thread because ``smtplib`` blocks)::

    SendParams ─ build() ─► email.message.EmailMessage
        text/plain, text/html, or multipart/alternative with both; multipart/mixed around
        it when there are attachments (content as text, or base64 with encoding: base64)
        Message-ID from the step's idempotency key; Bcc only in the envelope
    ─ _deliver(): connect (ssl: TLS from the first byte; starttls: STARTTLS, required) ─ EHLO
        ─ AUTH when the Integration has a password ─ MAIL FROM / RCPT TO / DATA ─ QUIT
    ─ smtplib and socket errors ─► Mailer.failure(): RetryableError / PermanentError

**Retries can be recognised downstream.** The Message-ID is derived from the idempotency key
(run, step and item), so every attempt of a step, and the same step after a resume, sends the
same Message-ID; a mail system or a recipient's client can drop the repeat. SMTP itself has
no de-duplication: a reply lost after DATA means the message may arrive twice.

The server comes from the step's Integration (type ``email``)::

    settings: host, port (587 for starttls, 465 for ssl, 25 for none), security (starttls |
              ssl | none; starttls unless set), username, from (the default sender),
              timeout (30s), tlsCaCert (PEM text), tlsVerify (true), localHostname,
              messageIdDomain (the sender's domain unless set)
    secrets:  password (optional; with it, AUTH is used), username (when not in settings)

Retryable: connection refused or lost, timeouts, 4xx replies (greylisting, mailbox busy, too
many connections). Permanent: 5xx replies (an unknown recipient, a refused sender, refused
credentials), a server without the STARTTLS or AUTH the Integration asks for, a certificate
that is not trusted. Messages name the integration and the server, never the password.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime
import email.message
import email.policy
import email.utils
import hashlib
import mimetypes
import smtplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pydantic
from pydantic import alias_generators

from autoflow.connectors import sdk
from autoflow.connectors.sdk import redaction
from autoflow.crds import errors, meta

connector = sdk.Connector(
    "email", "Send email over SMTP: text and HTML bodies, attachments, several recipients."
)

Security = Literal["none", "starttls", "ssl"]
DEFAULT_PORTS: dict[Security, int] = {"none": 25, "starttls": 587, "ssl": 465}
MAX_RECIPIENTS = 1000
# Headers the action writes from its own fields; a `headers` entry may not set them.
_OWN_HEADERS = {
    "from": "from",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "reply-to": "replyTo",
    "subject": "subject",
    "content-type": "text, html and attachments",
    "content-transfer-encoding": "text, html and attachments",
    "mime-version": "text, html and attachments",
}


# -- parameters and outputs -------------------------------------------------------------------


# One address (or several separated by commas) reads better than a list of one. The type
# says so itself, rather than a before-validator: validation of single fields (a `with` block
# that also holds expressions) and the JSON schema see the type, not the model's validators.
Addresses = str | list[str]


_ADDRESSES = "'Name <name@example.com>': one, several separated by commas, or a list."


def _listed(value: Addresses) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    return value


class Attachment(sdk.Params):
    name: str = pydantic.Field(min_length=1, max_length=255, description="The file name.")
    content: str = pydantic.Field(description="The content, as text or base64 (see encoding).")
    encoding: Literal["text", "base64"] = pydantic.Field(
        default="text", description="text: content is sent as UTF-8; base64: it is decoded."
    )
    content_type: str | None = pydantic.Field(
        default=None,
        description="MIME type, e.g. application/pdf; guessed from the name when not given.",
    )

    @pydantic.field_validator("name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(c in value for c in "\r\n\0/\\"):
            raise ValueError("a file name has no line breaks or path separators")
        return value

    @pydantic.field_validator("content_type")
    @classmethod
    def _media_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        maintype, slash, subtype = value.partition(";")[0].strip().lower().partition("/")
        if not (slash and maintype and subtype) or any(c.isspace() for c in maintype + subtype):
            raise ValueError(f"{value!r} is not a MIME type such as application/pdf")
        return f"{maintype}/{subtype}"


class SendParams(sdk.Params):
    from_: str | None = pydantic.Field(
        default=None,
        alias="from",
        description="Sender, e.g. 'Shop <shop@example.com>'; the Integration's from if not given.",
    )
    to: Addresses = pydantic.Field(default_factory=list, description=_ADDRESSES)
    cc: Addresses = pydantic.Field(default_factory=list, description=_ADDRESSES)
    bcc: Addresses = pydantic.Field(
        default_factory=list,
        description="Recipients not shown to the others (only in the SMTP envelope).",
    )
    reply_to: Addresses = pydantic.Field(default_factory=list, description=_ADDRESSES)
    subject: str = pydantic.Field(default="", max_length=998)
    text: str | None = pydantic.Field(default=None, description="The plain-text body.")
    html: str | None = pydantic.Field(
        default=None, description="The HTML body; with text, both go as multipart/alternative."
    )
    attachments: list[Attachment] = pydantic.Field(default_factory=list, max_length=100)
    headers: dict[str, str | int | float | bool] = pydantic.Field(
        default_factory=dict,
        description="More headers (List-Unsubscribe, X-...); Message-ID here replaces the one "
        "derived from the idempotency key.",
    )

    @pydantic.field_validator("to", "cc", "bcc", "reply_to")
    @classmethod
    def _valid_addresses(cls, value: Addresses) -> Addresses:
        for item in _listed(value):
            _parse_addresses(item)
        return value

    @pydantic.field_validator("from_")
    @classmethod
    def _one_sender(cls, value: str | None) -> str | None:
        if value is not None and len(_parse_addresses(value)) != 1:
            raise ValueError("give one sender address")
        return value

    @pydantic.field_validator("subject")
    @classmethod
    def _subject_one_line(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("the subject is one line")
        return value

    @pydantic.field_validator("headers")
    @classmethod
    def _extra_headers(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        for name, text in _texts(value).items():
            own = _OWN_HEADERS.get(name.lower())
            if own:
                raise ValueError(f"header {name!r} is set by the field {own}, not by headers")
            if not name.isascii() or not name or any(c in name for c in ": \t\r\n"):
                raise ValueError(f"{name!r} is not a header name")
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {name!r} has a line break")
        return value

    @pydantic.model_validator(mode="after")
    def _complete(self) -> SendParams:
        count = sum(len(_listed(f)) for f in (self.to, self.cc, self.bcc))
        if not count:
            raise ValueError("give at least one recipient in to, cc or bcc")
        if count > MAX_RECIPIENTS:
            raise ValueError(f"more than {MAX_RECIPIENTS} recipients in to, cc and bcc")
        if self.text is None and self.html is None:
            raise ValueError("give a body: text, html or both")
        return self


class SendOutput(sdk.Output):
    message_id: str = pydantic.Field(description="The Message-ID header, angle brackets included.")
    accepted: list[str] = pydantic.Field(description="Recipients the server accepted.")
    refused: dict[str, str] = pydantic.Field(
        default_factory=dict,
        description="Recipients the server refused (others were accepted): address → reply.",
    )


# -- the action -------------------------------------------------------------------------------


@connector.action("send")
async def send(params: SendParams, ctx: sdk.ActionContext) -> SendOutput:
    """Send one message to every recipient in to, cc and bcc."""
    mailer = _mailer(ctx)
    sender = params.from_ or mailer.settings.from_
    if not sender:
        raise errors.PermanentError(
            f"no sender: give `from` in the step or settings.from in integration {mailer.name!r}",
            errors.Where(step=ctx.step_id, field="with.from"),
        )
    try:
        envelope_from = _parse_addresses(sender)[0]
    except ValueError as exc:  # settings.from: the step's own from was checked by validation
        raise errors.PermanentError(
            f"integration {mailer.name!r}: settings.from: {exc}",
            errors.Where(resource=f"Integration/{mailer.name}", field="settings.from"),
        ) from None
    message = build(params, sender, ctx.idempotency_key, mailer.settings.message_id_domain, ctx)
    recipients = _unique(a for f in (params.to, params.cc, params.bcc) for a in _listed(f))
    try:
        refused = await asyncio.to_thread(mailer.deliver, message, envelope_from, recipients)
    except (smtplib.SMTPException, OSError) as exc:
        raise mailer.failure(exc, ctx) from None
    accepted = [r for r in recipients if r not in refused]
    if refused:
        ctx.log.warning(
            "email.send: %d of %d recipients refused by %s",
            len(refused),
            len(recipients),
            mailer.label,
        )
    ctx.log.debug("email.send: %s to %d recipients", message["Message-ID"], len(accepted))
    return SendOutput(
        message_id=str(message["Message-ID"]),
        accepted=accepted,
        refused={addr: mailer.reply_text(code, text) for addr, (code, text) in refused.items()},
    )


# -- the message ------------------------------------------------------------------------------


def build(
    params: SendParams,
    sender: str,
    idempotency_key: str,
    message_id_domain: str | None,
    ctx: sdk.ActionContext,
) -> email.message.EmailMessage:
    """The message as it goes over the wire, Bcc left out (it is only in the envelope)."""
    msg = email.message.EmailMessage(policy=email.policy.default)
    msg["From"] = sender
    for name, value in (("To", params.to), ("Cc", params.cc), ("Reply-To", params.reply_to)):
        if listed := _listed(value):
            msg[name] = ", ".join(listed)
    msg["Subject"] = params.subject
    msg["Date"] = email.utils.format_datetime(datetime.datetime.now(datetime.UTC))
    headers = _texts(params.headers)
    custom = {k.lower(): k for k in headers}
    if "message-id" not in custom:
        domain = message_id_domain or _parse_addresses(sender)[0].rpartition("@")[2]
        msg["Message-ID"] = message_id(idempotency_key, domain)
    for name, value in headers.items():
        msg[name] = value
    if params.text is not None:
        msg.set_content(params.text, cte=_text_cte(params.text))
        if params.html is not None:
            msg.add_alternative(params.html, subtype="html", cte=_text_cte(params.html))
    else:
        assert params.html is not None
        msg.set_content(params.html, subtype="html", cte=_text_cte(params.html))
    for index, attachment in enumerate(params.attachments):
        data, maintype, subtype, charset = _attachment_content(attachment, index, ctx)
        msg.add_attachment(
            data,
            maintype=maintype,
            subtype=subtype,
            filename=attachment.name,
            params={"charset": charset} if charset else None,
        )
    return msg


def message_id(idempotency_key: str, domain: str) -> str:
    """``<digest.autoflow@domain>``: the same for every attempt of one unit of work."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}.autoflow@{domain or 'autoflow.invalid'}>"


def _texts(headers: dict[str, str | int | float | bool]) -> dict[str, str]:
    """Header values as text: YAML makes ``X-Priority: 1`` a number."""
    return {
        name: ("true" if v else "false") if isinstance(v, bool) else str(v)
        for name, v in headers.items()
    }


def _attachment_content(
    attachment: Attachment, index: int, ctx: sdk.ActionContext
) -> tuple[bytes, str, str, str | None]:
    content_type = attachment.content_type or mimetypes.guess_type(attachment.name)[0]
    if attachment.encoding == "base64":
        try:
            data = base64.b64decode(attachment.content, validate=True)
        except (binascii.Error, ValueError):
            raise errors.PermanentError(
                f"attachment {attachment.name!r}: content is not base64",
                errors.Where(step=ctx.step_id, field=f"with.attachments[{index}].content"),
            ) from None
        content_type = content_type or "application/octet-stream"
    else:
        data = attachment.content.encode()
        content_type = content_type or "text/plain"
    maintype, _, subtype = content_type.partition("/")
    charset = "utf-8" if maintype == "text" and attachment.encoding == "text" else None
    return data, maintype, subtype, charset


def _text_cte(body: str) -> str:
    # quoted-printable keeps mostly-ASCII bodies readable and lines under SMTP's limit.
    return "quoted-printable" if not body.isascii() or _long_lines(body) else "7bit"


def _long_lines(body: str) -> bool:
    return any(len(line) > 900 for line in body.splitlines())


def _parse_addresses(value: str) -> list[str]:
    """The bare addresses in a header-style list (``'A <a@x>, b@y'`` → ``['a@x', 'b@y']``)."""
    problem = ValueError(f"{value!r} is not an email address (name@example.com)")
    if "\r" in value or "\n" in value:
        raise ValueError(f"{value!r} has a line break")
    try:
        # The parser the message headers use, so what passes here can be sent.
        header: Any = email.policy.default.header_factory("To", value)
    except Exception:  # the parser fails with IndexError and others on some inputs
        raise problem from None
    found = [a.addr_spec for a in header.addresses]
    if header.defects or not found or any(not _is_address(a) for a in found):
        raise problem
    return found


def _is_address(addr: str) -> bool:
    local, at, domain = addr.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in addr)


def _unique(addresses: Any) -> list[str]:
    seen: dict[str, None] = {}
    for value in addresses:
        for addr in _parse_addresses(value):
            seen.setdefault(addr, None)
    return list(seen)


# -- the server -------------------------------------------------------------------------------


class Settings(pydantic.BaseModel):
    """The ``settings`` of an ``email`` Integration."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="forbid"
    )

    host: str = pydantic.Field(min_length=1)
    port: int | None = pydantic.Field(default=None, ge=1, le=65535)
    security: Security = "starttls"
    username: str | None = None
    from_: str | None = pydantic.Field(default=None, alias="from")
    timeout: meta.Duration = "30s"
    tls_ca_cert: str | None = pydantic.Field(
        default=None, description="PEM text of the CA that signed the server's certificate."
    )
    tls_verify: bool = pydantic.Field(
        default=True, description="Check the server's certificate and host name."
    )
    local_hostname: str | None = pydantic.Field(
        default=None, description="The name to greet the server with (EHLO); this host's FQDN."
    )
    message_id_domain: str | None = pydantic.Field(
        default=None, description="The domain part of Message-IDs; the sender's domain."
    )


connector.integration_form(
    Settings,
    username="the SMTP AUTH user name (or settings.username)",
    password="the SMTP AUTH password; without it no AUTH is sent",
)


@dataclasses.dataclass(slots=True)
class Mailer:
    """One integration's SMTP server and credentials; errors name the integration."""

    name: str
    settings: Settings
    username: str | None
    password: str | None

    @property
    def port(self) -> int:
        return self.settings.port or DEFAULT_PORTS[self.settings.security]

    @property
    def label(self) -> str:
        return f"{self.settings.host}:{self.port}"

    def deliver(
        self, message: email.message.EmailMessage, sender: str, recipients: Sequence[str]
    ) -> dict[str, tuple[int, bytes]]:
        """Send over one SMTP session (blocking); returns the refused recipients."""
        with self.session() as smtp:
            refused: dict[str, tuple[int, bytes]] = smtp.send_message(message, sender, recipients)
        return refused

    def check(self, timeout: float) -> str:
        """Open a session as ``deliver`` does and QUIT without sending (blocking); returns
        what answered: the name the server greets with, TLS, the user logged in as."""
        with self.session(timeout) as smtp:
            greeting = (smtp.ehlo_resp or b"").decode("utf-8", "replace").splitlines()
            tls = " over TLS" if self.settings.security != "none" else ""
            login = f", logged in as {self.username}" if self.password is not None else ""
        named = f" ({greeting[0].strip()})" if greeting and greeting[0].strip() else ""
        return f"SMTP server {self.label}{named} answered EHLO{tls}{login}"

    @contextlib.contextmanager
    def session(self, timeout: float | None = None) -> Iterator[smtplib.SMTP]:
        """A connected, greeted (EHLO), encrypted as settings say, logged in SMTP session;
        QUIT when the block ends. ``timeout`` (seconds) overrides settings.timeout."""
        settings = self.settings
        if timeout is None:
            timeout = meta.parse_duration(settings.timeout)
        context = self._tls_context() if settings.security != "none" else None
        smtp: smtplib.SMTP
        if settings.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                settings.host,
                self.port,
                local_hostname=settings.local_hostname,
                timeout=timeout,
                context=context,
            )
        else:
            smtp = smtplib.SMTP(
                settings.host, self.port, local_hostname=settings.local_hostname, timeout=timeout
            )
        with smtp:
            smtp.ehlo()
            if settings.security == "starttls":
                # Required, never optional: without it credentials and mail would go in clear.
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.password is not None:
                _login(smtp, self.username or "", self.password)
            yield smtp

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.settings.tls_ca_cert or None)
        if not self.settings.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def failure(self, exc: BaseException, ctx: sdk.ActionContext) -> errors.ConnectorError:
        """The connector error for what smtplib or the socket raised: retryable or not."""
        where = errors.Where(step=ctx.step_id)
        head = f"integration {self.name!r}: SMTP server {self.label}"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            reply = self.reply_text(exc.smtp_code, exc.smtp_error)
            return errors.CredentialsRejectedError(
                f"{head} refused the username or password: {reply}", where
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            replies = {a: (c, self.reply_text(c, t)) for a, (c, t) in exc.recipients.items()}
            listed = "; ".join(f"{a}: {text}" for a, (_, text) in replies.items())
            every_4xx = all(400 <= c < 500 for c, _ in replies.values())
            kind = errors.RetryableError if every_4xx else errors.PermanentError
            return kind(
                f"{head} refused every recipient: {listed}",
                where.replace(field="with.to"),
                details={"refused": {a: text for a, (_, text) in replies.items()}},
            )
        if isinstance(exc, smtplib.SMTPSenderRefused):
            return self._reply_error(
                f"{head} refused the sender {exc.sender}", exc, where.replace(field="with.from")
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            text = self.scrub(str(exc))
            if "STARTTLS" in text.upper():
                hint = "set security: ssl or none to match the server"
                return errors.PermanentError(f"{head} does not offer STARTTLS; {hint}", where)
            if "AUTH" in text.upper():
                hint = "remove the password from the Integration, or use security: starttls"
                return errors.PermanentError(f"{head} does not offer AUTH; {hint}", where)
            # e.g. an internationalised address and a server without SMTPUTF8
            return errors.PermanentError(f"{head}: {text}", where)
        if isinstance(exc, smtplib.SMTPResponseException):
            return self._reply_error(f"{head} answered", exc, where)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return errors.PermanentError(
                f"{head}: its TLS certificate is not trusted ({exc.verify_message}); add its CA "
                "as settings.tlsCaCert",
                where,
            )
        if isinstance(exc, ssl.SSLError):
            return errors.PermanentError(
                f"{head}: TLS failed ({self.scrub(exc.reason or str(exc))}); does "
                f"security: {self.settings.security} match what the server speaks on port "
                f"{self.port}?",
                where,
            )
        if isinstance(exc, smtplib.SMTPServerDisconnected | TimeoutError | socket.timeout):
            text = self.scrub(str(exc)) or type(exc).__name__
            return errors.RetryableError(f"{head}: connection lost or timed out: {text}", where)
        if isinstance(exc, OSError):
            text = self.scrub(exc.strerror or str(exc)) or type(exc).__name__
            return errors.UnreachableError(f"{head}: could not connect: {text}", where)
        return errors.PermanentError(f"{head}: {self.scrub(str(exc))}", where)

    def _reply_error(
        self, message: str, exc: smtplib.SMTPResponseException, where: errors.Where
    ) -> errors.ConnectorError:
        reply = self.reply_text(exc.smtp_code, exc.smtp_error)
        kind = errors.RetryableError if 400 <= exc.smtp_code < 500 else errors.PermanentError
        return kind(f"{message}: {reply}", where, details={"code": exc.smtp_code})

    def reply_text(self, code: int, text: bytes | str) -> str:
        raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return self.scrub(f"{code} {' '.join(raw.split())}".strip())

    def scrub(self, text: str) -> str:
        # The password and the AUTH PLAIN / LOGIN strings derived from it, masked by the same
        # rule as the run masks what is read through the secrets accessor.
        return redaction.Redactor(_auth_strings(self.username, self.password)).text(text)


@connector.probe
async def probe(integration: sdk.IntegrationInfo) -> str:
    """Connects to the SMTP server, greets it (EHLO), starts TLS as settings.security says,
    logs in when the Integration has a password, and QUITs: no mail is sent."""
    async with sdk.probe_context(integration) as ctx:
        mailer = _mailer(ctx)
        # smtplib blocks a worker thread that cancelling cannot stop: bound it by the deadline.
        timeout = sdk.time_left(meta.parse_duration(mailer.settings.timeout))
        try:
            return await asyncio.to_thread(mailer.check, timeout)
        except (smtplib.SMTPException, OSError) as exc:
            raise mailer.failure(exc, ctx) from None


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH with one mechanism the server offers. ``SMTP.login`` tries each in turn, so a
    wrong password would count as several failed logins against the account's lockout."""
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = smtp.esmtp_features["auth"].upper().split()
    smtp.user, smtp.password = username, password
    for mechanism in ("PLAIN", "LOGIN", "CRAM-MD5"):
        if mechanism in offered:
            method = getattr(smtp, "auth_" + mechanism.lower().replace("-", "_"))
            smtp.auth(mechanism, method)  # raises SMTPAuthenticationError when refused
            return
    raise smtplib.SMTPException(
        f"the server offers no AUTH mechanism Autoflow speaks (PLAIN, LOGIN, CRAM-MD5): "
        f"{' '.join(offered)}"
    )


def _auth_strings(username: str | None, password: str | None) -> list[str]:
    """The password, and the base64 strings AUTH PLAIN and AUTH LOGIN send it in."""
    if password is None:
        return []
    plain = f"\0{username or ''}\0{password}".encode()
    encoded = (base64.b64encode(raw).decode("ascii") for raw in (plain, password.encode()))
    return [password, *encoded]


def _mailer(ctx: sdk.ActionContext) -> Mailer:
    integration = sdk.require_integration(ctx, "email", "the SMTP server")
    name = integration.name
    settings = sdk.integration_settings(integration, Settings)
    password = sdk.optional_secret(integration, "password")
    username = settings.username
    if password is not None and not username:
        username = sdk.optional_secret(integration, "username")
        if not username:
            raise errors.InvalidSettingsError(
                f"integration {name!r} has a password but no username: set settings.username "
                "or the secret 'username'",
                errors.Where(resource=f"Integration/{name}", field="secretRef"),
            )
    return Mailer(name, settings, username, password)
