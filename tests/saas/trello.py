"""Trello's REST API for cards, as its reference documents it.

Sources: developer.atlassian.com/cloud/trello/rest/api-group-cards/ (POST /1/cards, PUT
/1/cards/{id}, POST /1/cards/{id}/actions/comments) and
developer.atlassian.com/cloud/trello/guides/rest-api/authorization/ (the ``key`` and
``token`` query parameters) and .../rate-limits/.
Health probe: api-group-members (``GET /1/members/me``).

- Every request carries ``key`` and ``token`` as query parameters; the card's fields are
  query parameters too (no body).
- Errors are plain text: ``invalid key``, ``invalid value for idList``, ``invalid id``.
- Responses report the token's quota in ``x-rate-limit-api-token-remaining`` and the window
  in ``x-rate-limit-api-token-interval-ms``; a used-up quota answers 429.
"""

from __future__ import annotations

from typing import Any

import httpserver
from saas import contract

API_KEY = "e2a6c1b0f1d24f6a9d1c3e5b7a9f0c2d"
API_TOKEN = "ATTA9f3c5e7a1b2d4f6e8a0c2e4b6d8f0a1c3e5"
LIST_ID = "5abbe4b7ddc1b351ef961414"
_CARD_FIELDS = {"idList", "name", "desc", "pos", "due", "idMembers", "idLabels", "start"}
_UPDATE_FIELDS = _CARD_FIELDS | {"closed", "dueComplete", "idBoard", "subscribed"}


class Trello(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.cards: list[dict[str, Any]] = []
        self.lists = {LIST_ID, "5abbe4b7ddc1b351ef961415"}
        self.remaining = 100
        self.on("POST", "/1/cards", self.create_card)
        self.on("GET", "/1/members/me", self.me)

    def me(self, request: httpserver.Recorded) -> httpserver.Reply:
        """api-group-members, GET /1/members/{id} with ``me``: the token's member."""
        return self.reply(
            {"id": "5abbe4b7ddc1b351ef961414", "username": "bobtester", "fullName": "Bob Tester"}
        )

    def authenticate(self, request: httpserver.Recorded) -> None:
        if contract.query(request, "key") != API_KEY:
            raise contract.Violation(401, "invalid key")
        if contract.query(request, "token") != API_TOKEN:
            raise contract.Violation(401, "invalid token")
        if request.body:
            raise contract.Violation(400, "card fields go in the query string")

    def error(self, status: int, message: str) -> httpserver.Reply:
        return httpserver.Reply(status, message)

    def reply(self, data: Any) -> httpserver.Reply:
        self.remaining -= 1
        return httpserver.Reply.with_json(
            data,
            headers={
                "x-rate-limit-api-token-interval-ms": "10000",
                "x-rate-limit-api-token-max": "100",
                "x-rate-limit-api-token-remaining": str(self.remaining),
            },
        )

    def create_card(self, request: httpserver.Recorded) -> httpserver.Reply:
        given = {k: contract.query(request, k) for k in request.query if k not in ("key", "token")}
        contract.fields(given, required={"idList"}, allowed=_CARD_FIELDS, where="query")
        if given["idList"] not in self.lists:
            raise contract.Violation(400, "invalid value for idList")
        card = {
            "id": f"5abbe4b7ddc1b351ef9614{len(self.cards):02d}",
            "name": given.get("name", ""),
            "desc": given.get("desc", ""),
            "idList": given["idList"],
            "idBoard": "5abbe4b7ddc1b351ef961400",
            "idMembers": (given.get("idMembers") or "").split(",")
            if given.get("idMembers")
            else [],
            "idLabels": (given.get("idLabels") or "").split(",") if given.get("idLabels") else [],
            "due": given.get("due"),
            "dueComplete": False,
            "closed": False,
            "pos": 16384,
            "url": "https://trello.com/c/abc123/1-card",
            "shortUrl": "https://trello.com/c/abc123",
        }
        self.cards.append(card)
        path = f"/1/cards/{card['id']}"
        self.on("PUT", path, lambda r: self.update_card(r, card))
        self.on("POST", f"{path}/actions/comments", lambda r: self.comment(r, card))
        return self.reply(card)

    def update_card(self, request: httpserver.Recorded, card: dict[str, Any]) -> httpserver.Reply:
        given = {k: contract.query(request, k) for k in request.query if k not in ("key", "token")}
        contract.fields(given, allowed=_UPDATE_FIELDS, where="query")
        if "idList" in given and given["idList"] not in self.lists:
            raise contract.Violation(400, "invalid value for idList")
        for name in ("closed", "dueComplete"):
            if name in given:
                if given[name] not in ("true", "false"):
                    raise contract.Violation(400, f"invalid value for {name}")
                card[name] = given.pop(name) == "true"
        card.update(given)
        return self.reply(card)

    def comment(self, request: httpserver.Recorded, card: dict[str, Any]) -> httpserver.Reply:
        text = contract.query(request, "text")
        if not text:
            raise contract.Violation(400, "invalid value for text")
        return self.reply(
            {
                "id": "5abbe4b7ddc1b351ef961499",
                "type": "commentCard",
                "date": "2025-01-01T12:00:00.000Z",
                "data": {"text": text, "card": {"id": card["id"], "name": card["name"]}},
                "memberCreator": {"id": "5abbe4b7ddc1b351ef961401", "username": "ops"},
            }
        )
