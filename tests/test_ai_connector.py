"""The ``ai`` connector against local servers that follow the providers' API references.

``tests/saas/openai_api.py`` plays OpenAI's Chat Completions API and
``tests/saas/anthropic_api.py`` Anthropic's Messages API (each names the reference pages it
follows, structured outputs included: a non-strict schema is refused there as by the real
APIs). Each test scripts the model's answers and checks what reached the server and what the
step returns: text, a validated object, one label with a confidence, token usage. A 429 with
``Retry-After`` is a retryable error carrying the wait; a malformed ``extract`` answer fails
the step saying what is wrong; the API key is in no output or error.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpserver
import probing
import pytest
from saas import anthropic_api, llm_script, openai_api

from autoflow.connectors import registry, sdk
from autoflow.crds import errors
from autoflow.runners.definitions import checks

Call = Callable[..., Awaitable[dict[str, Any]]]
KEYS = {"openai": openai_api.API_KEY, "anthropic": anthropic_api.API_KEY}


class DictSecrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str) -> str:
        if key not in self.values:
            raise errors.MissingSecretError(f"integration 'llm' has no secret {key!r}")
        return self.values[key]


def info(provider: str, base_url: str, **settings: Any) -> sdk.IntegrationInfo:
    settings.setdefault("baseUrl", base_url)
    settings.setdefault("model", "test-model")
    return sdk.IntegrationInfo("llm", provider, settings, DictSecrets({"apiKey": KEYS[provider]}))


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    """Runs an ai action as one step of a run."""
    actions = registry.Registry(entry_points=False)
    pool = sdk.ResourcePool()

    async def run(action: str, with_: dict[str, Any], intg: sdk.IntegrationInfo) -> dict[str, Any]:
        found = actions.action(f"ai.{action}")
        ctx = sdk.ActionContext(
            run_id="run-1",
            step_id="think",
            attempt=1,
            idempotency_key="run-1:think",
            log=logging.LoggerAdapter(logging.getLogger("test.ai"), {"run_id": "run-1"}),
            integration=intg,
            pool=pool,
        )
        params = found.params.model_validate(with_)
        output: dict[str, Any] = found.dump_output(await found.func(params, ctx))
        return output

    yield run
    await pool.aclose()


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest, saas: Callable[[type[Any]], Any]) -> tuple[str, Any]:
    kind = openai_api.OpenAI if request.param == "openai" else anthropic_api.Anthropic
    return request.param, saas(kind)


async def expect_error(call: Awaitable[Any]) -> errors.ConnectorError:
    with pytest.raises(errors.ConnectorError) as caught:
        await call
    error = caught.value
    text = str(error) + json.dumps(error.details, default=str)
    assert all(key not in text for key in KEYS.values())
    return error


async def test_chat_sends_system_prompt_and_messages(call: Call, provider: tuple[str, Any]) -> None:
    """Chat Completions: system as the first message; Messages API: the ``system`` field.
    The answer's text, the model and the token usage come back."""
    name, service = provider
    service.answer("Hello, Ada.")
    out = await call(
        "chat",
        {
            "prompt": "Greet Ada",
            "system": "Be brief.",
            "temperature": 0.2,
            "maxTokens": 50,
        },
        info(name, service.base_url),
    )
    assert out["text"] == "Hello, Ada."
    assert out["model"] == "test-model"
    assert out["usage"]["totalTokens"] == out["usage"]["inputTokens"] + out["usage"]["outputTokens"]
    assert out["usage"]["outputTokens"] > 0
    body = service.script.bodies[0]
    if name == "openai":
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["max_completion_tokens"] == 50
    else:
        assert body["system"] == "Be brief."
        assert body["max_tokens"] == 50
    assert body["messages"][-1] == {"role": "user", "content": "Greet Ada"}
    assert body["temperature"] == 0.2
    # The step's idempotency key travels with the request.
    assert service.headers[0]["idempotency-key"] == "run-1:think"


async def test_extract_returns_an_object_following_the_schema(
    call: Call, provider: tuple[str, Any]
) -> None:
    """The user's schema (optional fields, bounds) is sent strict: every field required,
    the optional ones nullable, additionalProperties false; a null for an optional field is
    dropped from the result, which validates against the schema as written."""
    name, service = provider
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "amount": {"type": "number", "minimum": 0},
            "currency": {"type": "string", "enum": ["EUR", "USD"]},
            "note": {"type": "string"},
        },
        "required": ["name", "amount", "currency"],
    }
    service.answer({"name": "Ada", "amount": 12.5, "currency": "EUR", "note": None})
    out = await call(
        "extract",
        {"text": "Ada paid 12.50 euros", "schema": schema},
        info(name, service.base_url),
    )
    assert out["data"] == {"name": "Ada", "amount": 12.5, "currency": "EUR"}
    body = service.script.bodies[0]
    sent = (
        body["response_format"]["json_schema"]["schema"]
        if name == "openai"
        else body["output_config"]["format"]["schema"]
    )
    assert llm_script.strict_problems(sent) == []
    assert sent["properties"]["note"]["type"] == ["string", "null"]
    assert "minimum" in sent["properties"]["amount"]["description"]


async def test_a_malformed_extract_answer_fails_the_step_clearly(
    call: Call, provider: tuple[str, Any]
) -> None:
    """Text that is not JSON (a truncated answer) and JSON that breaks the schema are both
    permanent failures of the step, naming the step, the field and what is wrong."""
    name, service = provider
    schema = {
        "type": "object",
        "properties": {"total": {"type": "number", "minimum": 0}},
        "required": ["total"],
    }
    service.answer('{"total": 1', lambda body: '{"total": -5}')
    error = await expect_error(
        call("extract", {"text": "x", "schema": schema}, info(name, service.base_url))
    )
    assert isinstance(error, errors.PermanentError)
    assert "did not answer in JSON" in error.message
    assert error.where.step == "think"
    error = await expect_error(
        call("extract", {"text": "x", "schema": schema}, info(name, service.base_url))
    )
    assert isinstance(error, errors.PermanentError)
    assert "does not follow the schema at 'total'" in error.message
    assert error.where.field == "with.schema"


async def test_an_extract_schema_that_cannot_be_strict_is_refused_before_calling(
    call: Call, saas: Callable[[type[Any]], Any]
) -> None:
    service = saas(openai_api.OpenAI)
    schema = {"type": "object", "properties": {"meta": {"type": "object"}}}
    error = await expect_error(
        call("extract", {"text": "x", "schema": schema}, info("openai", service.base_url))
    )
    assert "free-form map" in error.message
    assert error.where.field == "with.schema"
    assert service.script.bodies == []


async def test_classify_chooses_one_label_with_a_confidence(
    call: Call, provider: tuple[str, Any]
) -> None:
    name, service = provider
    labels = ["billing", "bug", "sales"]
    service.answer({"label": "billing", "confidence": 0.92, "reason": "about an invoice"})
    out = await call(
        "classify",
        {"text": "My invoice is wrong", "labels": labels},
        info(name, service.base_url),
    )
    assert (out["label"], out["confidence"], out["reason"]) == ("billing", 0.92, "about an invoice")
    body = service.script.bodies[0]
    sent = (
        body["response_format"]["json_schema"]["schema"]
        if name == "openai"
        else body["output_config"]["format"]["schema"]
    )
    assert sent["properties"]["label"]["enum"] == labels


async def test_summarize(call: Call, provider: tuple[str, Any]) -> None:
    name, service = provider
    service.answer("  Ada paid.  ")
    out = await call(
        "summarize",
        {"text": "Ada paid 12.50 euros on Monday.", "maxWords": 10, "focus": "payments"},
        info(name, service.base_url),
    )
    assert out["summary"] == "Ada paid."
    system = (
        service.script.bodies[0]["messages"][0]["content"]
        if name == "openai"
        else service.script.bodies[0]["system"]
    )
    assert "at most 10 words" in system and "payments" in system


async def test_429_is_retryable_with_the_providers_retry_after(
    call: Call, provider: tuple[str, Any]
) -> None:
    """The SDKs' own retries are off in the connector: the engine's step retry decides, and
    it waits at least what the provider asked for."""
    name, service = provider
    service.answer(llm_script.Fail(429, retry_after=7))
    error = await expect_error(call("chat", {"prompt": "hi"}, info(name, service.base_url)))
    assert isinstance(error, errors.RetryableError)
    assert error.retry_after == 7
    assert "429" in error.message
    assert len(service.script.bodies) == 1


async def test_5xx_is_retryable_and_401_is_refused_credentials(
    call: Call, provider: tuple[str, Any]
) -> None:
    name, service = provider
    service.answer(llm_script.Fail(500, message="overloaded"))
    error = await expect_error(call("chat", {"prompt": "hi"}, info(name, service.base_url)))
    assert isinstance(error, errors.RetryableError)
    service.api_key = "another-key"
    error = await expect_error(call("chat", {"prompt": "hi"}, info(name, service.base_url)))
    assert isinstance(error, errors.CredentialsRejectedError)
    service.violations.clear()  # the refused key was this test's doing


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_probe_lists_models_with_the_key(kind: str, saas: Callable[[type[Any]], Any]) -> None:
    service = saas(openai_api.OpenAI if kind == "openai" else anthropic_api.Anthropic)
    model = "gpt-test" if kind == "openai" else "claude-test"
    intg = probing.integration(
        "llm", kind, {"baseUrl": service.base_url, "model": model}, keys=["apiKey"]
    )
    health = await probing.check(intg, {"apiKey": KEYS[kind]})
    assert health.ready, health.message
    assert f"model {model} available" in health.message
    assert service.script.bodies == []  # nothing generated
    health = await probing.check(intg, {"apiKey": "wrong"})
    assert not health.ready
    assert health.reason == "CredentialsRejected"
    service.violations.clear()


def test_openai_and_anthropic_integrations_serve_ai_steps() -> None:
    """An Integration of type openai or anthropic is for the ai connector; another type is not."""
    manifest = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "triage"},
        "spec": {
            "steps": [
                {"id": "a", "uses": "ai.chat", "integration": "gpt", "with": {"prompt": "hi"}},
                {"id": "b", "uses": "ai.chat", "integration": "claude", "with": {"prompt": "x"}},
            ]
        },
    }
    _, found = checks.check_manifest(
        manifest, integrations={"gpt": "openai", "claude": "anthropic"}, require_all=True
    )
    assert found == []
    _, found = checks.check_manifest(manifest, integrations={"gpt": "slack", "claude": "ai"})
    assert [p.message for p in found] == [
        "integration 'gpt' is of type 'slack', but ai.chat needs an integration of type "
        "'ai' or 'openai' or 'anthropic'"
    ]


# -- autoflow run -----------------------------------------------------------------------------

RUN_INTEGRATION = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {name: claude}
spec:
  type: anthropic
  settings: {baseUrl: "%(base)s", model: claude-test}
  secretRef: {name: claude-credentials, keys: [apiKey]}
"""

RUN_WORKFLOW = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: triage}
spec:
  inputs:
    message: {type: string, default: "Invoice 17 is wrong: 40 EUR too much"}
  steps:
    - id: kind
      uses: ai.classify
      integration: claude
      retry: {maxAttempts: 3, initialDelay: 10ms}
      with:
        text: ${ inputs.message }
        labels: [billing, bug, other]
    - id: fields
      uses: ai.extract
      integration: claude
      if: steps.kind.output.label == "billing"
      with:
        text: ${ inputs.message }
        schema:
          type: object
          properties: {invoice: {type: string}, amount: {type: number}}
          required: [invoice]
  outputs:
    label: ${ steps.kind.output.label }
    invoice: ${ steps.fields.output.data }
    tokens: ${ steps.kind.output.usage.totalTokens + steps.fields.output.usage.totalTokens }
"""


def test_autoflow_run_with_an_anthropic_integration_retries_a_429(
    saas: Callable[[type[Any]], Any], tmp_path: Path
) -> None:
    """An Integration of type anthropic serves ai steps as `autoflow run` runs them; the 429
    is retried by the step's retry policy after the provider's Retry-After."""
    service = saas(anthropic_api.Anthropic)
    service.answer(
        llm_script.Fail(429, retry_after=1),
        {"label": "billing", "confidence": 0.9, "reason": "an invoice"},
        {"invoice": "17", "amount": 40},
    )
    (tmp_path / "integration.yaml").write_text(RUN_INTEGRATION % {"base": service.base_url})
    (tmp_path / "triage.yaml").write_text(RUN_WORKFLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOFLOW_", "ANTHROPIC"))}
    result = subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", "run", "triage.yaml",
         "integration.yaml", "--output", "json"],
        cwd=tmp_path, env={**env, "AUTOFLOW_SECRET_CLAUDE_APIKEY": anthropic_api.API_KEY},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = json.loads(result.stdout)["outputs"]
    assert outputs["label"] == "billing"
    assert outputs["invoice"] == {"invoice": "17", "amount": 40}
    assert outputs["tokens"] > 0
    assert len(service.script.bodies) == 3
    assert anthropic_api.API_KEY not in result.stdout + result.stderr


async def test_a_slow_provider_times_out_as_retryable_and_the_organization_is_sent(
    call: Call, saas: Callable[[type[Any]], Any]
) -> None:
    service = saas(openai_api.OpenAI)
    slow = httpserver.Reply.with_json({}, 200)
    service.server.queue(
        "/v1/chat/completions", httpserver.Reply(slow.status, slow.body, slow.headers, delay=2)
    )
    intg = info("openai", service.base_url, timeout="500ms", organization="org-acme")
    error = await expect_error(call("chat", {"prompt": "hi"}, intg))
    assert isinstance(error, errors.RetryableError)
    assert "did not answer within 0.5s" in error.message
    service.answer("hello")
    out = await call("chat", {"prompt": "hi"}, intg)
    assert out["text"] == "hello"
    assert service.headers[-1]["openai-organization"] == "org-acme"


async def test_a_server_without_structured_outputs_gets_the_schema_in_the_prompt(
    call: Call, saas: Callable[[type[Any]], Any]
) -> None:
    """settings.structuredOutputs false (an OpenAI-compatible server without json_schema):
    no response_format is sent, the schema is in the system prompt, and the answer (fenced
    JSON, as such servers often write it) is validated against the schema all the same."""
    service = saas(openai_api.OpenAI)
    intg = info("openai", service.base_url, structuredOutputs=False)
    schema = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    service.answer('```json\n{"total": 12.5}\n```', '{"total": "twelve"}')
    out = await call("extract", {"text": "12.50 in all", "schema": schema}, intg)
    assert out["data"] == {"total": 12.5}
    body = service.script.bodies[0]
    assert "response_format" not in body
    assert '"total":{"type":"number"' in body["messages"][0]["content"]
    error = await expect_error(call("extract", {"text": "x", "schema": schema}, intg))
    assert "does not follow the schema at 'total'" in error.message
