"""OpenAI's Chat Completions API as its reference documents it, answering from a script.

Sources (platform.openai.com/docs/api-reference): chat/create (``POST /v1/chat/completions``:
``model``, ``messages`` of ``{role: system|developer|user|assistant, content}``,
``temperature``, ``max_completion_tokens``, ``response_format``; the response ``{id, object:
chat.completion, created, model, choices: [{index, message: {role, content, refusal},
finish_reason}], usage: {prompt_tokens, completion_tokens, total_tokens}}``), models/list
(``GET /v1/models``), authentication (``Authorization: Bearer``) and errors (``{"error":
{message, type, param, code}}``, 429 with ``Retry-After``). Structured outputs: the guide
"Structured Outputs" (``response_format: {type: json_schema, json_schema: {name, schema,
strict: true}}`` and its "Supported schemas": root object, all fields required,
``additionalProperties: false``); a schema that breaks them is answered 400.

Answers come from a ``llm_script.Script`` (see there); the SDK's base URL is
``server.url("/v1")``.
"""

from __future__ import annotations

import json
from typing import Any

import httpserver
from saas import contract, llm_script

API_KEY = "sk-test-openai-0123456789abcdef"
ROLES = {"system", "developer", "user", "assistant"}
_FIELDS = {
    "model",
    "messages",
    "temperature",
    "max_completion_tokens",
    "max_tokens",
    "response_format",
    "top_p",
    "stop",
    "seed",
    "user",
    "metadata",
}


class OpenAI(contract.Service):
    def __init__(self, server: httpserver.Server, *, api_key: str = API_KEY) -> None:
        super().__init__(server)
        self.api_key = api_key
        self.script = llm_script.Script()
        self.answer = self.script.add
        self.headers: list[dict[str, str]] = []
        self.on("POST", "/v1/chat/completions", self.complete)
        self.on("GET", "/v1/models", self.models)

    @property
    def base_url(self) -> str:
        return self.server.url("/v1")

    def authenticate(self, request: httpserver.Recorded) -> None:
        contract.bearer(request, self.api_key)

    def error(self, status: int, message: str) -> httpserver.Reply:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return httpserver.Reply.with_json(
            {"error": {"message": message, "type": kind, "param": None, "code": None}}, status
        )

    def models(self, request: httpserver.Recorded) -> httpserver.Reply:
        model = {"id": "gpt-test", "object": "model", "created": 1700000000, "owned_by": "test"}
        return httpserver.Reply.with_json({"object": "list", "data": [model]})

    def complete(self, request: httpserver.Recorded) -> httpserver.Reply:
        body = contract.json_body(request, required={"model", "messages"}, allowed=_FIELDS)
        self.headers.append(request.headers)
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise contract.Violation(400, "messages must be a non-empty array")
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise contract.Violation(400, f"invalid message {m!r}")
            contract.of_type(m.get("content"), str, "messages[].content")
        schema = self._schema(body.get("response_format"))
        answer = self.script.next(body)
        if answer is None:
            raise contract.Violation(500, "the test's script has no answer left")
        if isinstance(answer, llm_script.Fail):
            headers = (
                {} if answer.retry_after is None else {"Retry-After": f"{answer.retry_after:g}"}
            )
            reply = self.error(answer.status, answer.message)
            return httpserver.Reply(reply.status, reply.body, {**reply.headers, **headers})
        if not isinstance(answer, str):
            if schema is not None and (why := llm_script.off_schema(answer, schema)):
                raise contract.Violation(500, why)
            answer = json.dumps(answer)
        prompt = sum(len(str(m.get("content", ""))) for m in messages) // 4
        completion = len(answer) // 4
        return httpserver.Reply.with_json(
            {
                "id": f"chatcmpl-{len(self.script.bodies)}",
                "object": "chat.completion",
                "created": 1700000000,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )

    def _schema(self, response_format: Any) -> dict[str, Any] | None:
        if response_format is None:
            return None
        if not isinstance(response_format, dict):
            raise contract.Violation(400, "response_format must be an object")
        if response_format.get("type") in ("text", "json_object"):
            return None
        if response_format.get("type") != "json_schema":
            raise contract.Violation(400, f"unknown response_format type {response_format!r}")
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise contract.Violation(400, "json_schema needs a name and a schema")
        schema = spec.get("schema")
        if spec.get("strict") is True:
            problems = llm_script.strict_problems(schema)
            if problems:
                raise contract.Violation(400, f"Invalid schema for response_format: {problems}")
        return schema if isinstance(schema, dict) else None
