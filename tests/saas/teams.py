"""Microsoft Teams incoming webhooks (the Workflows app's "When a Teams webhook request is
received"), as Microsoft documents them.

Sources: learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/
add-incoming-webhook and .../connectors-using#send-adaptive-cards-using-an-incoming-webhook
(the message envelope: ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": <AdaptiveCard>}]}``),
and the Azure Logic Apps request trigger reference (202 Accepted; a bad ``sig`` is 401 with
``{"error": {"code", "message"}}``).

The webhook URL, its ``sig`` query parameter included, is the only credential.
"""

from __future__ import annotations

from typing import Any

import httpserver
from saas import contract

WORKFLOW = "/workflows/6b1d0f3a9c2e4e7b8d5f1a3c6e9b2d4f/triggers/manual/paths/invoke"
SIG = "kX9pQ2vL7mN4rT8wY1bC5dF3gH6jK0sA2eI4oU7zXcV"
CARD = "application/vnd.microsoft.card.adaptive"


class Teams(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.posted: list[dict[str, Any]] = []
        self.on("POST", WORKFLOW, self.post)

    @property
    def url(self) -> str:
        return self.server.url(
            f"{WORKFLOW}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
        )

    def authenticate(self, request: httpserver.Recorded) -> None:
        if contract.query(request, "sig") != SIG:
            raise contract.Violation(401, "The provided authentication token is not valid.")

    def error(self, status: int, message: str) -> httpserver.Reply:
        code = (
            "DirectApiInvalidAuthorizationSignature" if status == 401 else "InvalidRequestContent"
        )
        return httpserver.Reply.with_json({"error": {"code": code, "message": message}}, status)

    def post(self, request: httpserver.Recorded) -> httpserver.Reply:
        message = contract.json_body(
            request, required={"type", "attachments"}, allowed={"type", "attachments", "summary"}
        )
        if message["type"] != "message":
            raise contract.Violation(400, "type must be message")
        for attachment in message["attachments"]:
            if (
                set(attachment) != {"contentType", "contentUrl", "content"}
                or attachment["contentType"] != CARD
            ):
                raise contract.Violation(400, "an attachment is an Adaptive Card")
            card = attachment["content"]
            if card.get("type") != "AdaptiveCard" or "version" not in card:
                raise contract.Violation(400, "content must be an AdaptiveCard with a version")
            for element in card.get("body", []):
                if element.get("type") == "TextBlock" and not isinstance(element.get("text"), str):
                    raise contract.Violation(400, "a TextBlock needs text")
        self.posted.append(message)
        return httpserver.Reply(202)
