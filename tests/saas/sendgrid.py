"""Twilio SendGrid's v3 API for mail and marketing contacts, as its reference documents it.

Sources (twilio.com/docs/sendgrid/api-reference/): mail-send/mail-send (the request body,
its limits and the 202 response), contacts/add-or-update-a-contact (PUT, 202 with a
``job_id``), and how-to-use-the-sendgrid-v3-api/authentication, .../rate-limits
(``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` in Unix seconds) and .../responses
(``{"errors": [{"field", "message", "help"}]}``).
Health probe: api-key-permissions/retrieve-a-list-of-scopes-for-which-this-user-has-access
(``GET /v3/scopes``).

- ``Authorization: Bearer <API key>``; JSON bodies.
- ``personalizations`` (each with ``to``), ``from.email``, a ``subject`` (unless a template
  sets it) and ``content`` (text/plain first, then text/html) unless ``template_id``.
"""

from __future__ import annotations

from typing import Any

import httpserver
from saas import contract

API_KEY = "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"
_MAIL_FIELDS = {
    "personalizations",
    "from",
    "reply_to",
    "subject",
    "content",
    "attachments",
    "template_id",
    "categories",
    "send_at",
}


class SendGrid(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.sent: list[dict[str, Any]] = []
        self.contacts: list[dict[str, Any]] = []
        self.remaining = 600
        self.on("POST", "/v3/mail/send", self.send)
        self.on("PUT", "/v3/marketing/contacts", self.add_contacts)
        self.on("GET", "/v3/scopes", self.scopes)

    def scopes(self, request: httpserver.Recorded) -> httpserver.Reply:
        """api-key-permissions/retrieve-a-list-of-scopes-for-which-this-user-has-access."""
        return httpserver.Reply.with_json({"scopes": ["mail.send", "marketing.contacts.create"]})

    def authenticate(self, request: httpserver.Recorded) -> None:
        contract.bearer(request, API_KEY)

    def error(self, status: int, message: str) -> httpserver.Reply:
        return httpserver.Reply.with_json({"errors": [{"field": None, "message": message}]}, status)

    def send(self, request: httpserver.Recorded) -> httpserver.Reply:
        mail = contract.json_body(
            request, required={"personalizations", "from"}, allowed=_MAIL_FIELDS
        )
        problems = []
        for p in mail["personalizations"]:
            contract.fields(
                p, allowed={"to", "cc", "bcc", "subject", "dynamic_template_data", "headers"}
            )
            if not p.get("to"):
                problems.append(("personalizations.0.to", "The to array is required."))
            for person in [*p.get("to", []), *p.get("cc", []), *p.get("bcc", [])]:
                contract.fields(
                    person, required={"email"}, allowed={"email", "name"}, where="address"
                )
        if not mail["from"].get("email"):
            problems.append(("from.email", "The from email is required."))
        template = "template_id" in mail
        if not template and not mail.get("subject"):
            problems.append(("subject", "The subject is required."))
        content = mail.get("content", [])
        if not template and not content:
            problems.append(
                (
                    "content",
                    "Unless a valid template_id is provided, the content parameter is required.",
                )
            )
        if content and len(content) > 1 and content[0]["type"] != "text/plain":
            problems.append(("content", "The text/plain content type must be first."))
        if problems:
            self.violations.append(f"mail/send: {problems}")
            return httpserver.Reply.with_json(
                {"errors": [{"field": f, "message": m, "help": None} for f, m in problems]}, 400
            )
        self.sent.append(mail)
        self.remaining -= 1
        return httpserver.Reply(
            202,
            headers={
                "X-Message-Id": "W86EgYT6SQKk0lRflfLRsA",
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": "1735732800",
            },
        )

    def add_contacts(self, request: httpserver.Recorded) -> httpserver.Reply:
        body = contract.json_body(request, required={"contacts"}, allowed={"list_ids", "contacts"})
        for person in body["contacts"]:
            contract.fields(
                person,
                allowed={"email", "first_name", "last_name", "phone_number", "custom_fields"},
                where="contact",
            )
            if "email" not in person:
                raise contract.Violation(400, "contacts need an email or an identifier")
        self.contacts.extend(body["contacts"])
        return httpserver.Reply.with_json({"job_id": "2387e363-4104-4225-8960-4a5758492351"}, 202)
