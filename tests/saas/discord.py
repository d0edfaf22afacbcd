"""Discord's webhook API, as its reference documents it.

Sources: discord.com/developers/docs/resources/webhook#execute-webhook (the JSON params,
``?wait=true`` for the created message instead of 204, ``thread_id``),
discord.com/developers/docs/topics/rate-limits (``X-RateLimit-Remaining``,
``X-RateLimit-Reset-After`` in seconds, 429 with ``retry_after`` and ``Retry-After``) and
discord.com/developers/docs/topics/opcodes-and-status-codes (JSON error codes: 50006 empty
message, 50027 invalid webhook token, 50035 invalid form body).
Health probe: get-webhook-with-token (GET on the webhook URL: the webhook object; another
token is 401 with code 50027).

The webhook URL (``/api/webhooks/{id}/{token}``) is the only credential.
"""

from __future__ import annotations

from typing import Any

import httpserver
from saas import contract

WEBHOOK_ID = "1234567890123456789"
WEBHOOK_TOKEN = "Zx3vQm9KpL2sT8wYb4NcRf6HjD1gUe7AoI5kEa0MqWtVyPlXnCs"
_FIELDS = {
    "content",
    "username",
    "avatar_url",
    "tts",
    "embeds",
    "allowed_mentions",
    "flags",
    "thread_name",
}


class Discord(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.messages: list[dict[str, Any]] = []
        self.path = f"/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"
        self.on("POST", self.path, self.execute, authenticated=False)
        self.on("GET", self.path, self.get_webhook, authenticated=False)

    @property
    def url(self) -> str:
        return self.server.url(self.path)

    def get_webhook(self, request: httpserver.Recorded) -> httpserver.Reply:
        """get-webhook-with-token: the webhook object, its token included, and no user."""
        return httpserver.Reply.with_json(
            {
                "id": WEBHOOK_ID,
                "type": 1,
                "guild_id": "199737254929760256",
                "channel_id": "199737254929760256",
                "name": "Order alerts",
                "avatar": None,
                "application_id": None,
                "token": WEBHOOK_TOKEN,
            }
        )

    def invalid_token_at(self, token: str) -> None:
        """Answer a webhook URL with another token as Discord does: 401, code 50027."""
        path = f"/api/webhooks/{WEBHOOK_ID}/{token}"
        invalid = httpserver.Reply.with_json(
            {"message": "Invalid Webhook Token", "code": 50027}, 401
        )
        self.server.route(path, invalid)

    def authenticate(self, request: httpserver.Recorded) -> None:
        pass  # the URL is the credential: a wrong token is a different path

    def error(self, status: int, message: str) -> httpserver.Reply:
        return httpserver.Reply.with_json({"message": message, "code": 50035}, status)

    def execute(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = contract.json_body(request, allowed=_FIELDS)
        if not data.get("content") and not data.get("embeds"):
            return httpserver.Reply.with_json(
                {"message": "Cannot send an empty message", "code": 50006}, 400
            )
        if len(data.get("content", "")) > 2000:
            raise contract.Violation(400, "Invalid Form Body")
        if "embeds" in data and len(data["embeds"]) > 10:
            raise contract.Violation(400, "Invalid Form Body")
        message = {
            "id": str(1100000000000000000 + len(self.messages)),
            "type": 0,
            "content": data.get("content", ""),
            "channel_id": contract.query(request, "thread_id") or "1000000000000000001",
            "author": {"bot": True, "id": WEBHOOK_ID, "username": data.get("username", "Autoflow")},
            "embeds": data.get("embeds", []),
            "tts": data.get("tts", False),
            "timestamp": "2025-01-01T12:00:00.000000+00:00",
            "webhook_id": WEBHOOK_ID,
        }
        self.messages.append(message)
        headers = {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset-After": "2.0",
        }
        if contract.query(request, "wait") == "true":
            return httpserver.Reply.with_json(message, headers=headers)
        return httpserver.Reply(204, headers=headers)

    def rate_limited(self, retry_after: float) -> httpserver.Reply:
        return httpserver.Reply.with_json(
            {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
            429,
            {
                "Retry-After": str(int(retry_after) + 1),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": str(retry_after),
                "X-RateLimit-Scope": "shared",
            },
        )

    def invalid_token_reply(self) -> httpserver.Reply:
        return httpserver.Reply.with_json({"message": "Invalid Webhook Token", "code": 50027}, 401)
