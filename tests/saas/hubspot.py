"""HubSpot's CRM API v3 for contacts and deals, as its reference documents it.

Sources (developers.hubspot.com/docs/api/): crm/contacts (create, update), crm/deals
(create), crm/search (POST .../search: ``query``, ``filterGroups``, ``sorts``,
``properties``, ``limit`` up to 200, ``after``; ``paging.next.after`` while there is more),
usage-details (rate limits and the ``X-HubSpot-RateLimit-*`` headers) and the error format.
Health probe: settings/account-information-api (``GET /account-info/v3/details``).

- ``Authorization: Bearer <private app access token>``; JSON bodies.
- Objects are ``{"properties": {...}}`` in and ``{"id", "properties", "createdAt", ...}`` out.
- Errors are ``{"status": "error", "message", "correlationId", "category"}``; a second
  contact with the same email is 409 ``CONFLICT``.
"""

from __future__ import annotations

from typing import Any

import httpserver
from saas import contract

TOKEN = "pat-eu1-4f2a9c1e-3b4d-6f8a-0c2e-4b6d8f0a1c3e"
SEARCHABLE = ("email", "firstname", "lastname", "phone", "company")


class HubSpot(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.contacts: list[dict[str, Any]] = []
        self.deals: list[dict[str, Any]] = []
        self.on("POST", "/crm/v3/objects/contacts", self.create_contact)
        self.on("POST", "/crm/v3/objects/contacts/search", self.search_contacts)
        self.on("POST", "/crm/v3/objects/deals", self.create_deal)
        self.on("GET", "/account-info/v3/details", self.account_details)

    def seed(self, count: int, company: str = "Acme") -> None:
        for n in range(count):
            self._add({"email": f"person{n}@acme.example", "company": company})

    def account_details(self, request: httpserver.Recorded) -> httpserver.Reply:
        """settings/account-information-api: the account the token belongs to."""
        return httpserver.Reply.with_json(
            {
                "portalId": 62515,
                "accountType": "STANDARD",
                "timeZone": "US/Eastern",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18000000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }
        )

    def authenticate(self, request: httpserver.Recorded) -> None:
        contract.bearer(request, TOKEN)

    def error(self, status: int, message: str) -> httpserver.Reply:
        category = {401: "INVALID_AUTHENTICATION", 409: "CONFLICT"}.get(status, "VALIDATION_ERROR")
        return httpserver.Reply.with_json(
            {
                "status": "error",
                "message": message,
                "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
                "category": category,
            },
            status,
            {"X-HubSpot-RateLimit-Remaining": "99", "X-HubSpot-RateLimit-Max": "100"},
        )

    def create_contact(self, request: httpserver.Recorded) -> httpserver.Reply:
        properties = self._properties(request, required=True)
        email = properties.get("email")
        existing = next((c for c in self.contacts if c["properties"].get("email") == email), None)
        if email and existing:
            raise contract.Violation(409, f"Contact already exists. Existing ID: {existing['id']}")
        return httpserver.Reply.with_json(self._add(properties), 201)

    def update_contact(
        self, request: httpserver.Recorded, contact: dict[str, Any]
    ) -> httpserver.Reply:
        contact["properties"].update(self._properties(request, required=True))
        contact["updatedAt"] = "2025-01-02T12:00:00.000Z"
        return httpserver.Reply.with_json(contact)

    def search_contacts(self, request: httpserver.Recorded) -> httpserver.Reply:
        body = contract.json_body(
            request,
            allowed={"query", "filterGroups", "sorts", "properties", "limit", "after"},
        )
        limit = contract.of_type(body.get("limit", 10), int, "limit")
        if limit > 200:
            raise contract.Violation(400, "limit must be at most 200")
        start = int(contract.of_type(body.get("after", "0"), str, "after"))
        found = [c for c in self.contacts if _matches(c, body)]
        shown = body.get("properties") or ["email", "firstname", "lastname"]
        results = [
            {**c, "properties": {k: v for k, v in c["properties"].items() if k in shown}}
            for c in contract.page_of(found, start, limit)
        ]
        page: dict[str, Any] = {"total": len(found), "results": results}
        if start + limit < len(found):
            after = str(start + limit)
            page["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return httpserver.Reply.with_json(page)

    def create_deal(self, request: httpserver.Recorded) -> httpserver.Reply:
        properties = self._properties(request, required=True)
        contract.fields(properties, required={"dealname", "dealstage"}, where="properties")
        deal = {
            "id": str(9000 + len(self.deals)),
            "properties": properties,
            "createdAt": "2025-01-01T12:00:00.000Z",
            "updatedAt": "2025-01-01T12:00:00.000Z",
            "archived": False,
        }
        self.deals.append(deal)
        return httpserver.Reply.with_json(deal, 201)

    def _properties(self, request: httpserver.Recorded, required: bool) -> dict[str, Any]:
        body = contract.json_body(
            request,
            required={"properties"} if required else (),
            allowed={"properties", "associations"},
        )
        properties = body["properties"]
        if not isinstance(properties, dict):
            raise contract.Violation(400, "properties must be an object")
        for name, value in properties.items():
            contract.of_type(value, (str, int, float, bool), f"properties.{name}")
        return properties

    def _add(self, properties: dict[str, Any]) -> dict[str, Any]:
        contact = {
            "id": str(100 + len(self.contacts)),
            "properties": dict(properties),
            "createdAt": "2025-01-01T12:00:00.000Z",
            "updatedAt": "2025-01-01T12:00:00.000Z",
            "archived": False,
        }
        self.contacts.append(contact)
        self.on(
            "PATCH",
            f"/crm/v3/objects/contacts/{contact['id']}",
            lambda r: self.update_contact(r, contact),
        )
        return contact


def _matches(contact: dict[str, Any], search: dict[str, Any]) -> bool:
    values = contact["properties"]
    text = search.get("query")
    if text and not any(text.lower() in str(values.get(p, "")).lower() for p in SEARCHABLE):
        return False
    groups = search.get("filterGroups") or []
    if not groups:
        return True
    return any(
        all(
            f["operator"] == "EQ" and str(values.get(f["propertyName"])) == str(f["value"])
            for f in group["filters"]
        )
        for group in groups
    )
