"""Pipedrive's API v2 for deals and persons, as its reference documents it.

Sources: developers.pipedrive.com/docs/api/v1/Deals (addDeal, updateDeal, getDeals; the v2
endpoints), developers.pipedrive.com/docs/api/v1/Persons (addPerson, v2),
pipedrive.readme.io/docs/core-api-concepts-authentication (the ``x-api-token`` header),
.../core-api-concepts-pagination (cursor pagination: ``cursor``, ``limit`` up to 500,
``additional_data.next_cursor``) and .../core-api-concepts-rate-limiting.

- ``x-api-token: <token>``; JSON bodies; fields in snake_case.
- Answers ``{"success": true, "data": ...}``; errors ``{"success": false, "error",
  "error_info"}``.
- Persons take ``emails`` and ``phones`` as ``[{"value", "primary", "label"}]``.
- Responses carry ``x-ratelimit-remaining`` and ``x-ratelimit-reset`` (seconds to reset).
"""

from __future__ import annotations

from typing import Any

import httpserver
from saas import contract

API_TOKEN = "659c9fddb16335e48cc67114694b52074e812e03"
_DEAL_FIELDS = {
    "title",
    "value",
    "currency",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "owner_id",
    "status",
    "expected_close_date",
    "lost_reason",
}


class Pipedrive(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.deals: list[dict[str, Any]] = []
        self.persons: list[dict[str, Any]] = []
        self.remaining = 80
        self.on("POST", "/api/v2/deals", self.create_deal)
        self.on("GET", "/api/v2/deals", self.list_deals)
        self.on("POST", "/api/v2/persons", self.create_person)

    def seed(self, count: int) -> None:
        for n in range(count):
            self._add({"title": f"Deal {n + 1}", "status": "open" if n % 2 else "won"})

    def authenticate(self, request: httpserver.Recorded) -> None:
        if "api_token" in request.query:
            raise contract.Violation(400, "v2 takes the token in the x-api-token header")
        contract.header(request, "x-api-token", API_TOKEN)

    def error(self, status: int, message: str) -> httpserver.Reply:
        if status == 401:
            message = "unauthorized access"
        return httpserver.Reply.with_json(
            {
                "success": False,
                "error": message,
                "error_info": "Please check developers.pipedrive.com",
            },
            status,
        )

    def reply(self, data: Any, more: dict[str, Any] | None = None) -> httpserver.Reply:
        self.remaining -= 1
        body = {"success": True, "data": data, **({"additional_data": more} if more else {})}
        return httpserver.Reply.with_json(
            body,
            headers={
                "x-ratelimit-limit": "80",
                "x-ratelimit-remaining": str(self.remaining),
                "x-ratelimit-reset": "2",
            },
        )

    def create_deal(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = contract.json_body(request, required={"title"}, allowed=_DEAL_FIELDS)
        self._check_deal(data)
        return self.reply(self._add(data))

    def update_deal(self, request: httpserver.Recorded, deal: dict[str, Any]) -> httpserver.Reply:
        data = contract.json_body(request, allowed=_DEAL_FIELDS)
        self._check_deal(data)
        deal.update(data)
        return self.reply(deal)

    def list_deals(self, request: httpserver.Recorded) -> httpserver.Reply:
        limit = int(contract.query(request, "limit") or 100)
        if limit > 500:
            raise contract.Violation(400, "limit must be at most 500")
        start = int(contract.query(request, "cursor") or "0")
        status = contract.query(request, "status")
        found = [d for d in self.deals if status is None or d["status"] == status]
        following = str(start + limit) if start + limit < len(found) else None
        return self.reply(contract.page_of(found, start, limit), {"next_cursor": following})

    def create_person(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = contract.json_body(
            request,
            required={"name"},
            allowed={"name", "owner_id", "org_id", "emails", "phones", "visible_to"},
        )
        for name in ("emails", "phones"):
            for item in data.get(name, []):
                contract.fields(
                    item, required={"value"}, allowed={"value", "primary", "label"}, where=name
                )
        person = {"id": 500 + len(self.persons), **data, "add_time": "2025-01-01T12:00:00Z"}
        self.persons.append(person)
        return self.reply(person)

    def _check_deal(self, data: dict[str, Any]) -> None:
        for name in ("person_id", "org_id", "pipeline_id", "stage_id", "owner_id"):
            if name in data:
                contract.of_type(data[name], int, name)
        if "value" in data:
            contract.of_type(data["value"], (int, float), "value")
        if data.get("status", "open") not in ("open", "won", "lost"):
            raise contract.Violation(400, "status must be open, won or lost")

    def _add(self, data: dict[str, Any]) -> dict[str, Any]:
        deal = {
            "id": 1 + len(self.deals),
            "status": "open",
            "value": 0,
            "currency": "EUR",
            **data,
            "add_time": "2025-01-01T12:00:00Z",
        }
        self.deals.append(deal)
        self.on("PATCH", f"/api/v2/deals/{deal['id']}", lambda r: self.update_deal(r, deal))
        return deal
