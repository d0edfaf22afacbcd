"""Anthropic's Messages API as its reference documents it, answering from a script.

Sources (docs.claude.com/en/api): messages (``POST /v1/messages``: ``model``, ``max_tokens``
(required), ``messages`` of ``{role: user|assistant, content}``, ``system``, ``temperature``;
the response ``{id, type: message, role: assistant, model, content: [{type: text, text}],
stop_reason, stop_sequence, usage: {input_tokens, output_tokens}}``), models-list
(``GET /v1/models``), versioning (the ``anthropic-version`` header is required),
authentication (``x-api-key``, or the key as a bearer token) and errors (``{"type":
"error", "error": {type, message}}``, 429 ``rate_limit_error`` with ``retry-after``).
Structured outputs: the "Structured outputs" page (``output_config: {format: {type:
json_schema, schema}}``, its JSON Schema limitations: ``additionalProperties: false`` on
every object); a schema that breaks them is answered 400.

Answers come from a ``llm_script.Script``; the SDK's base URL is ``server.base_url``.
"""

from __future__ import annotations

import json
from typing import Any

import httpserver
from saas import contract, llm_script

API_KEY = "sk-ant-test-0123456789abcdef"
_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "temperature",
    "output_config",
    "stop_sequences",
    "metadata",
    "top_p",
    "top_k",
}
_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class Anthropic(contract.Service):
    def __init__(self, server: httpserver.Server, *, api_key: str = API_KEY) -> None:
        super().__init__(server)
        self.api_key = api_key
        self.script = llm_script.Script()
        self.answer = self.script.add
        self.headers: list[dict[str, str]] = []
        self.on("POST", "/v1/messages", self.messages)
        self.on("GET", "/v1/models", self.models)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def authenticate(self, request: httpserver.Recorded) -> None:
        # The reference documents x-api-key; the SDK (2.x) sends the key as a bearer token,
        # which the API takes as well.
        if (
            request.headers.get("x-api-key") != self.api_key
            and request.headers.get("authorization") != f"Bearer {self.api_key}"
        ):
            raise contract.Violation(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise contract.Violation(400, "anthropic-version: header is required")

    def error(self, status: int, message: str) -> httpserver.Reply:
        kind = _ERRORS.get(status, "api_error")
        return httpserver.Reply.with_json(
            {"type": "error", "error": {"type": kind, "message": message}}, status
        )

    def models(self, request: httpserver.Recorded) -> httpserver.Reply:
        model = {
            "type": "model",
            "id": "claude-test",
            "display_name": "Claude Test",
            "created_at": "2025-01-01T00:00:00Z",
        }
        return httpserver.Reply.with_json(
            {
                "data": [model],
                "has_more": False,
                "first_id": "claude-test",
                "last_id": "claude-test",
            }
        )

    def messages(self, request: httpserver.Recorded) -> httpserver.Reply:
        body = contract.json_body(
            request, required={"model", "messages", "max_tokens"}, allowed=_FIELDS
        )
        self.headers.append(request.headers)
        contract.of_type(body["max_tokens"], int, "max_tokens")
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise contract.Violation(400, "messages: at least one message is required")
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                raise contract.Violation(400, f"messages: unexpected role in {m!r}")
        if messages[0]["role"] != "user":
            raise contract.Violation(400, "messages: the first message must use the user role")
        if "system" in body:
            contract.of_type(body["system"], str, "system")
        schema = self._schema(body.get("output_config"))
        answer = self.script.next(body)
        if answer is None:
            raise contract.Violation(500, "the test's script has no answer left")
        if isinstance(answer, llm_script.Fail):
            headers = (
                {} if answer.retry_after is None else {"retry-after": f"{answer.retry_after:g}"}
            )
            reply = self.error(answer.status, answer.message)
            return httpserver.Reply(reply.status, reply.body, {**reply.headers, **headers})
        if not isinstance(answer, str):
            if schema is not None and (why := llm_script.off_schema(answer, schema)):
                raise contract.Violation(500, why)
            answer = json.dumps(answer)
        prompt = sum(len(str(m.get("content", ""))) for m in messages) // 4
        return httpserver.Reply.with_json(
            {
                "id": f"msg_{len(self.script.bodies):04d}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": answer}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt, "output_tokens": len(answer) // 4},
            }
        )

    def _schema(self, output_config: Any) -> dict[str, Any] | None:
        if output_config is None:
            return None
        fmt = output_config.get("format") if isinstance(output_config, dict) else None
        if fmt is None:
            return None
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise contract.Violation(400, "output_config.format.type must be json_schema")
        schema = fmt.get("schema")
        problems = llm_script.strict_problems(schema)
        if problems:
            raise contract.Violation(400, f"output_config.format.schema: {problems}")
        return schema if isinstance(schema, dict) else None
