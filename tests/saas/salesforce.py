"""Salesforce's REST API for records and SOQL queries, as its reference documents it.

Sources (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/):
dome_sobject_create.htm, dome_sobject_retrieve_get.htm, dome_update_fields.htm,
dome_query.htm (``nextRecordsUrl`` while ``done`` is false), errorcodes.htm (status codes
and the error body), and the OAuth "Use the access token" step (``Authorization: Bearer``).
Health probe: resources_discoveryresource.htm (``GET /services/data/vXX.X/``).

- ``Authorization: Bearer <access token>``; an expired token answers 401
  ``INVALID_SESSION_ID``.
- Creating answers 201 ``{"id", "success", "errors"}``; updating answers 204.
- Errors are a JSON array: ``[{"message", "errorCode", "fields"}]``.
"""

from __future__ import annotations

import functools
from typing import Any

import httpserver
from saas import contract

ACCESS_TOKEN = "00D5e000000ABCD!AQ4AQFmK3zCxB5pRtYh8kLmN0pQrStUvWxYz"
API = "/services/data/v62.0"
REQUIRED = {"Lead": {"LastName", "Company"}, "Account": {"Name"}, "Contact": {"LastName"}}


class Salesforce(contract.Service):
    def __init__(self, server: httpserver.Server, batch: int = 2000) -> None:
        super().__init__(server)
        self.batch = batch
        self.records: dict[str, dict[str, Any]] = {}
        self.token = ACCESS_TOKEN
        for name in REQUIRED:
            self.on("POST", f"{API}/sobjects/{name}/", functools.partial(self.create, name=name))
        self.on("GET", f"{API}/query", self.query)
        self.on("GET", f"{API}/", self.resources)

    def seed(self, count: int) -> None:
        for n in range(count):
            self._add("Account", {"Name": f"Account {n + 1}"})

    def resources(self, request: httpserver.Recorded) -> httpserver.Reply:
        """resources_discoveryresource.htm: the resources of this API version."""
        names = ("sobjects", "query", "queryAll", "search", "limits", "tooling", "recent")
        return httpserver.Reply.with_json({name: f"{API}/{name}" for name in names})

    def authenticate(self, request: httpserver.Recorded) -> None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise contract.Violation(401, "Session expired or invalid")

    def error(self, status: int, message: str) -> httpserver.Reply:
        code = "INVALID_SESSION_ID" if status == 401 else "MALFORMED_QUERY"
        return httpserver.Reply.with_json([{"message": message, "errorCode": code}], status)

    def create(self, request: httpserver.Recorded, name: str) -> httpserver.Reply:
        fields = contract.json_body(request)
        missing = sorted(REQUIRED[name] - set(fields))
        if missing:
            return httpserver.Reply.with_json(
                [
                    {
                        "message": f"Required fields are missing: [{', '.join(missing)}]",
                        "errorCode": "REQUIRED_FIELD_MISSING",
                        "fields": missing,
                    }
                ],
                400,
            )
        record = self._add(name, fields)
        return httpserver.Reply.with_json({"id": record["Id"], "success": True, "errors": []}, 201)

    def get(self, request: httpserver.Recorded, record: dict[str, Any]) -> httpserver.Reply:
        wanted = contract.query(request, "fields")
        if wanted:
            shown = {k: record.get(k) for k in wanted.split(",")}
            return httpserver.Reply.with_json(
                {"attributes": record["attributes"], "Id": record["Id"], **shown}
            )
        return httpserver.Reply.with_json(record)

    def update(self, request: httpserver.Recorded, record: dict[str, Any]) -> httpserver.Reply:
        fields = contract.json_body(request)
        if "Id" in fields:
            raise contract.Violation(400, "Unable to create/update fields: Id.")
        record.update(fields)
        return httpserver.Reply(204)

    def query(self, request: httpserver.Recorded) -> httpserver.Reply:
        soql = contract.query(request, "q") or ""
        if not soql.upper().startswith("SELECT "):
            raise contract.Violation(400, f"unexpected token: '{soql.split(' ')[0]}'")
        found = [r for r in self.records.values() if f"FROM {r['attributes']['type']}" in soql]
        return self._batch(found, 0)

    def _batch(self, found: list[dict[str, Any]], start: int) -> httpserver.Reply:
        page: dict[str, Any] = {
            "totalSize": len(found),
            "done": start + self.batch >= len(found),
            "records": contract.page_of(found, start, self.batch),
        }
        if not page["done"]:
            locator = f"{API}/query/01gRO0000016PIAYA2-{start + self.batch}"
            page["nextRecordsUrl"] = locator
            self.on("GET", locator, lambda r: self._batch(found, start + self.batch))
        return httpserver.Reply.with_json(page)

    def _add(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        prefix = {"Lead": "00Q", "Account": "001", "Contact": "003"}[name]
        record_id = f"{prefix}5e00000{len(self.records):08d}"
        url = f"{API}/sobjects/{name}/{record_id}"
        record = {"attributes": {"type": name, "url": url}, "Id": record_id, **fields}
        self.records[record_id] = record
        self.on("GET", url, lambda r: self.get(r, record))
        self.on("PATCH", url, lambda r: self.update(r, record))
        return record
