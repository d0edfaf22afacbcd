"""Notion's API for pages and databases, as its reference documents it.

Sources (developers.notion.com/reference/): authentication (``Authorization: Bearer``),
versioning (the ``Notion-Version`` header is required), post-page (create a page in a
database), post-database-query (``filter``, ``sorts``, ``start_cursor``, ``page_size`` up to
100; ``next_cursor`` and ``has_more``), intro#pagination, and status-codes
(``{"object": "error", "status", "code", "message"}``).

Health probe: get-self (``GET /v1/users/me``: the token's bot user)."""

from __future__ import annotations

from typing import Any

import httpserver
from saas import contract

TOKEN = "secret_Zx3vQm9KpL2sT8wYb4NcRf6HjD1gUe7AoI5kEa0MqWt"
DATABASE = "d9824bdc84454327be8b5b47500af6ce"
VERSIONS = {"2022-06-28"}


class Notion(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.pages: list[dict[str, Any]] = []
        self.on("POST", "/v1/pages", self.create_page)
        self.on("POST", f"/v1/databases/{DATABASE}/query", self.query)
        self.on("GET", "/v1/users/me", self.me)

    def seed(self, count: int) -> None:
        for n in range(count):
            self._add({"Name": {"title": [{"text": {"content": f"Row {n + 1}"}}]}})

    def me(self, request: httpserver.Recorded) -> httpserver.Reply:
        """get-self: the bot user of the token."""
        return httpserver.Reply.with_json(
            {
                "object": "user",
                "id": "16d84278-ab0e-484c-9bdd-b35da3bd8905",
                "name": "Order sync",
                "avatar_url": None,
                "type": "bot",
                "bot": {
                    "owner": {"type": "workspace", "workspace": True},
                    "workspace_name": "Acme",
                },
            }
        )

    def authenticate(self, request: httpserver.Recorded) -> None:
        contract.bearer(request, TOKEN)
        if request.headers.get("notion-version") not in VERSIONS:
            raise contract.Violation(
                400, "Notion-Version header failed validation: a supported version is required."
            )

    def error(self, status: int, message: str) -> httpserver.Reply:
        code = {401: "unauthorized", 404: "object_not_found"}.get(status, "validation_error")
        if status == 401:
            message = "API token is invalid."
        return httpserver.Reply.with_json(
            {"object": "error", "status": status, "code": code, "message": message}, status
        )

    def create_page(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = contract.json_body(
            request,
            required={"parent", "properties"},
            allowed={"parent", "properties", "children", "icon", "cover"},
        )
        if data["parent"] != {"database_id": DATABASE}:
            raise contract.Violation(404, f"Could not find database with ID: {data['parent']}.")
        for name, value in data["properties"].items():
            if not isinstance(value, dict):
                raise contract.Violation(400, f"body.properties.{name} should be an object.")
        return httpserver.Reply.with_json(self._add(data["properties"]))

    def query(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = contract.json_body(
            request, allowed={"filter", "sorts", "start_cursor", "page_size", "filter_properties"}
        )
        size = contract.of_type(data.get("page_size", 100), int, "page_size")
        if size > 100:
            raise contract.Violation(400, "body.page_size should be ≤ `100`.")
        start = int(data.get("start_cursor", "0"))
        following = str(start + size) if start + size < len(self.pages) else None
        return httpserver.Reply.with_json(
            {
                "object": "list",
                "results": contract.page_of(self.pages, start, size),
                "next_cursor": following,
                "has_more": following is not None,
                "type": "page_or_database",
                "page_or_database": {},
            }
        )

    def _add(self, properties: dict[str, Any]) -> dict[str, Any]:
        page_id = f"59833787-2cf9-4fdf-8782-e53db20768{len(self.pages):02d}"
        page = {
            "object": "page",
            "id": page_id,
            "parent": {"type": "database_id", "database_id": DATABASE},
            "properties": properties,
            "url": f"https://www.notion.so/{page_id.replace('-', '')}",
            "archived": False,
        }
        self.pages.append(page)
        return page
