"""Mailchimp's Marketing API 3.0 for audience members, as its reference documents it.

Sources (mailchimp.com/developer/marketing/): api/list-members/add-member-to-list/,
api/list-members/list-members-info/ (``count`` up to 1000, ``offset``, ``total_items``),
guides/quick-start/ (HTTP Basic: any user name and the API key as the password; the data
center prefix in the host) and docs/errors/ (problem details:
``application/problem+json`` with ``type``, ``title``, ``status``, ``detail``, ``instance``).

Health probe: api/ping/ping/ (``{"health_status": "Everything's Chimpy!"}``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpserver
from saas import contract

API_KEY = "2b5f0c6e8d7a9b1c3d5e7f9a1b3c5d7e-us6"
LIST_ID = "57afe96172"
STATUSES = {"subscribed", "unsubscribed", "cleaned", "pending", "transactional"}


class Mailchimp(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.members: list[dict[str, Any]] = []
        path = f"/3.0/lists/{LIST_ID}/members"
        self.on("POST", path, self.add_member)
        self.on("GET", path, self.list_members)
        self.on("GET", "/3.0/ping", self.ping)

    def seed(self, count: int) -> None:
        for n in range(count):
            self._add({"email_address": f"reader{n}@example.com", "status": "subscribed"})

    def ping(self, request: httpserver.Recorded) -> httpserver.Reply:
        """api/ping/ping/: a health check that needs a valid API key."""
        return httpserver.Reply.with_json({"health_status": "Everything's Chimpy!"})

    def authenticate(self, request: httpserver.Recorded) -> None:
        _, password = contract.basic(request)
        if password != API_KEY:
            raise contract.Violation(
                401,
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )

    def error(self, status: int, message: str) -> httpserver.Reply:
        title = {401: "API Key Invalid", 404: "Resource Not Found"}.get(status, "Invalid Resource")
        return self.problem(status, title, message)

    def problem(self, status: int, title: str, detail: str) -> httpserver.Reply:
        body = {
            "type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": "4bc5d3e6-4f2a-4c1d-9b2e-3a1c5e7f9b0d",
        }
        return httpserver.Reply(
            status, json.dumps(body), {"Content-Type": "application/problem+json; charset=utf-8"}
        )

    def add_member(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = contract.json_body(
            request,
            required={"email_address", "status"},
            allowed={
                "email_address",
                "status",
                "merge_fields",
                "tags",
                "language",
                "vip",
                "email_type",
            },
        )
        if data["status"] not in STATUSES:
            raise contract.Violation(400, "The resource submitted could not be validated.")
        email = data["email_address"]
        if any(m["email_address"] == email for m in self.members):
            return self.problem(
                400,
                "Member Exists",
                f"{email} is already a list member. Use PUT to insert or update list members.",
            )
        return httpserver.Reply.with_json(self._add(data))

    def list_members(self, request: httpserver.Recorded) -> httpserver.Reply:
        count = int(contract.query(request, "count") or 10)
        if count > 1000:
            raise contract.Violation(400, "count must be at most 1000")
        offset = int(contract.query(request, "offset") or 0)
        status = contract.query(request, "status")
        found = [m for m in self.members if status is None or m["status"] == status]
        return httpserver.Reply.with_json(
            {
                "members": contract.page_of(found, offset, count),
                "list_id": LIST_ID,
                "total_items": len(found),
            }
        )

    def _add(self, data: dict[str, Any]) -> dict[str, Any]:
        email = data["email_address"]
        member = {
            "id": hashlib.md5(email.lower().encode()).hexdigest(),
            "email_address": email,
            "status": data["status"],
            "merge_fields": data.get("merge_fields", {}),
            "tags": [{"id": n, "name": t} for n, t in enumerate(data.get("tags", []))],
            "list_id": LIST_ID,
        }
        self.members.append(member)
        return member
