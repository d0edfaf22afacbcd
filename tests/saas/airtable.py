"""Airtable's Web API for records, as its reference documents it.

Sources (airtable.com/developers/web/api/): authentication (``Authorization: Bearer`` with a
personal access token), create-records, update-record (PATCH keeps unnamed fields),
list-records (``pageSize`` up to 100, ``offset`` in and out, ``view``, ``filterByFormula``),
and errors (``{"error": {"type", "message"}}``, or ``{"error": "NOT_FOUND"}``).
Health probe: get-user-id-scopes (``GET /v0/meta/whoami``: ``id``, ``scopes``).

The table is named in the path, URL-encoded: ``/v0/{baseId}/Sales%20Leads``.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpserver
from saas import contract

TOKEN = "patAbc123XyZ.4f2a9c1e3b4d6f8a0c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d"
BASE = "appLkNDICXNqxSDhG"
USER_ID = "usrL2PNC5o3H4lBEi"
TABLE = "Sales Leads"
FIELDS = {"Name", "Status", "Amount", "Email"}


class Airtable(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.records: list[dict[str, Any]] = []
        self.path = f"/v0/{BASE}/{urllib.parse.quote(TABLE)}"
        self.on("POST", self.path, self.create)
        self.on("GET", self.path, self.list_records)
        self.on("GET", "/v0/meta/whoami", self.whoami)

    def seed(self, count: int) -> None:
        for n in range(count):
            self._add({"Name": f"Lead {n + 1}", "Status": "Todo" if n % 2 else "Done"})

    def whoami(self, request: httpserver.Recorded) -> httpserver.Reply:
        """get-user-id-scopes: the token's user id and scopes (the email needs user.email:read)."""
        return httpserver.Reply.with_json({"id": USER_ID, "scopes": ["data.records:read"]})

    def authenticate(self, request: httpserver.Recorded) -> None:
        contract.bearer(request, TOKEN)

    def error(self, status: int, message: str) -> httpserver.Reply:
        kind = {401: "AUTHENTICATION_REQUIRED", 422: "INVALID_REQUEST_UNKNOWN"}.get(
            status, "INVALID_REQUEST_UNKNOWN"
        )
        return httpserver.Reply.with_json({"error": {"type": kind, "message": message}}, status)

    def create(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = contract.json_body(request, required={"fields"}, allowed={"fields", "typecast"})
        self._check(data)
        return httpserver.Reply.with_json(self._add(data["fields"]))

    def update(self, request: httpserver.Recorded, record: dict[str, Any]) -> httpserver.Reply:
        data = contract.json_body(request, required={"fields"}, allowed={"fields", "typecast"})
        self._check(data)
        record["fields"].update(data["fields"])
        return httpserver.Reply.with_json(record)

    def list_records(self, request: httpserver.Recorded) -> httpserver.Reply:
        size = int(contract.query(request, "pageSize") or 100)
        if size > 100:
            raise contract.Violation(422, "pageSize must be at most 100")
        start = int((contract.query(request, "offset") or "itr0/rec0").split("/rec")[1])
        formula = contract.query(request, "filterByFormula")
        found = self.records
        if formula:
            wanted = formula.split("=")[1].strip().strip("'")
            found = [r for r in found if r["fields"].get("Status") == wanted]
        page: dict[str, Any] = {"records": contract.page_of(found, start, size)}
        if start + size < len(found):
            page["offset"] = f"itrX2Y3Z/rec{start + size}"
        return httpserver.Reply.with_json(page)

    def _check(self, data: dict[str, Any]) -> None:
        unknown = sorted(set(data["fields"]) - FIELDS)
        if unknown:
            raise contract.Violation(422, f'Unknown field name: "{unknown[0]}"')
        if "typecast" in data:
            contract.of_type(data["typecast"], bool, "typecast")

    def _add(self, fields: dict[str, Any]) -> dict[str, Any]:
        record = {
            "id": f"rec560UJdUtocSouk{len(self.records):02d}",
            "createdTime": "2025-01-01T12:00:00.000Z",
            "fields": dict(fields),
        }
        self.records.append(record)
        self.on("PATCH", f"{self.path}/{record['id']}", lambda r: self.update(r, record))
        return record
