"""The ``ai`` connector: language-model steps (OpenAI, Anthropic, OpenAI-compatible servers).

Actions and what they ask the model::

    chat       messages (or one prompt), a system prompt, temperature, max tokens → text
    extract    text + a JSON Schema → an object that follows the schema (validated here)
    classify   text + labels → one of the labels and a confidence between 0 and 1
    summarize  text (+ length, focus) → a summary
    (probe)    lists the provider's models with the key: nothing is generated, nothing billed

Every output carries ``usage`` (input, output and total tokens) and the ``model`` that
answered. ``extract`` and ``classify`` use the provider's structured outputs with a strict
schema (``sdk.strict``): the user's schema is made strict for the request and the answer is
checked against the schema as the user wrote it, so an answer that is not JSON or does not
follow it fails the step with a ``PermanentError`` saying what is wrong, never a half-valid
object passed on.

Calls go through ``sdk.llm`` (the official SDKs) with the SDKs' retries off: a 429 or 5xx is
a ``RetryableError`` carrying the provider's ``Retry-After``, which the step's retry policy
honours, so one place (the engine) decides how often to try. The step's idempotency key is
sent as ``Idempotency-Key`` (settings ``idempotencyHeader``; "" sends none) for the servers
and gateways that de-duplicate on it.

The Integration: type ``openai`` or ``anthropic`` (or ``ai`` with ``settings.provider``)::

    settings: model, baseUrl (an OpenAI-compatible server: vLLM, Ollama, LiteLLM),
              organization (OpenAI), timeout (60s), idempotencyHeader, structuredOutputs,
              provider (type ai)
    secrets:  apiKey
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

import jsonschema
import pydantic
from pydantic import alias_generators

from autoflow.connectors import sdk
from autoflow.connectors.sdk import llm, strict
from autoflow.crds import errors, meta

connector = sdk.Connector(
    "ai",
    "Ask a language model (OpenAI, Anthropic or an OpenAI-compatible server): chat, extract "
    "data to a JSON Schema, classify, summarize.",
)

# -- the Integration --------------------------------------------------------------------------


class Settings(pydantic.BaseModel):
    """The ``settings`` of an ``openai``, ``anthropic`` or ``ai`` Integration."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="forbid"
    )

    provider: llm.Provider | None = pydantic.Field(
        default=None,
        description="openai or anthropic; only for an Integration of type ai (the type says it "
        "otherwise).",
    )
    model: str | None = pydantic.Field(
        default=None, description="The model steps use unless they name one."
    )
    base_url: str | None = pydantic.Field(
        default=None,
        description="The API's base URL: an OpenAI-compatible server (vLLM, Ollama, LiteLLM) "
        "or a gateway; unset: the provider's own API.",
    )
    organization: str | None = pydantic.Field(
        default=None, description="The OpenAI organization the calls are billed to."
    )
    timeout: meta.Duration = "60s"
    idempotency_header: str = pydantic.Field(
        default="Idempotency-Key",
        description="The header the step's idempotency key is sent in; empty sends none.",
    )
    structured_outputs: bool = pydantic.Field(
        default=True,
        description="false for a server without structured outputs (json_schema): the schema "
        "is then given in the system prompt; answers are validated either way.",
    )


connector.integration_form(Settings, apiKey="the provider's API key")


def client_config(integration: sdk.IntegrationInfo) -> llm.Config:
    """How to reach the model of an ``openai``/``anthropic``/``ai`` Integration (its key from
    its Secret); also how the web API's assistant uses an Integration instead of the
    environment (``llm.client(ai.client_config(info))``)."""
    settings = sdk.integration_settings(integration, Settings)
    provider: llm.Provider
    if integration.type == "anthropic":
        provider = "anthropic"
    elif integration.type == "openai":
        provider = "openai"
    elif settings.provider is not None:
        provider = settings.provider
    else:
        raise errors.InvalidSettingsError(
            f"integration {integration.name!r} of type {integration.type!r} does not say its "
            "provider: set settings.provider to openai or anthropic",
            errors.Where(resource=f"Integration/{integration.name}", field="settings.provider"),
        )
    key = sdk.optional_secret(integration, "apiKey")
    if key is None and settings.base_url is None:
        integration.secrets.get("apiKey")  # the provider's own error: which key, where to set it
    return llm.Config(
        provider=provider,
        model=settings.model or llm.DEFAULT_MODELS[provider],
        api_key=key or "none",
        base_url=settings.base_url,
        organization=settings.organization,
        timeout=meta.parse_duration(settings.timeout),
        max_retries=0,
        idempotency_header=settings.idempotency_header,
        structured_outputs=settings.structured_outputs,
    )


async def _client(ctx: sdk.ActionContext) -> llm.Client:
    async def connect(integration: sdk.IntegrationInfo) -> llm.Client:
        return llm.client(client_config(integration))

    found: llm.Client = await sdk.pooled_connection(ctx, "ai", connect)
    return found


async def _ask(
    ctx: sdk.ActionContext,
    messages: list[llm.Message],
    *,
    system: str | None,
    schema: dict[str, Any] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    model: str | None = None,
) -> llm.Reply:
    client = await _client(ctx)
    if model and model != client.config.model:
        client = llm.client(_with_model(client.config, model))
    try:
        return await client.complete(
            messages,
            system=system,
            schema=schema,
            temperature=temperature,
            max_tokens=max_tokens,
            idempotency_key=ctx.idempotency_key,
        )
    except errors.ConnectorError as exc:
        exc.at(step=ctx.step_id)
        raise


def _with_model(config: llm.Config, model: str) -> llm.Config:
    return dataclasses.replace(config, model=model)


# -- parameters and outputs -------------------------------------------------------------------


class Usage(sdk.Output):
    input_tokens: int
    output_tokens: int
    total_tokens: int


def _usage(reply: llm.Reply) -> Usage:
    return Usage(
        input_tokens=reply.usage.input_tokens,
        output_tokens=reply.usage.output_tokens,
        total_tokens=reply.usage.total_tokens,
    )


class _Ask(sdk.Params):
    model: str | None = pydantic.Field(
        default=None, description="The model; unset: the Integration's."
    )
    temperature: float | None = pydantic.Field(default=None, ge=0, le=2)
    max_tokens: int | None = pydantic.Field(
        default=None, ge=1, le=200_000, description="At most this many tokens in the answer."
    )


class ChatMessage(sdk.Params):
    role: Literal["user", "assistant"]
    content: str


class ChatParams(_Ask):
    prompt: str | None = pydantic.Field(default=None, description="One user message.")
    messages: list[ChatMessage] | None = pydantic.Field(
        default=None, description="The conversation so far, after the prompt when both given."
    )
    system: str | None = pydantic.Field(default=None, description="The system prompt.")

    @pydantic.model_validator(mode="after")
    def _has_messages(self) -> ChatParams:
        if not self.prompt and not self.messages:
            raise ValueError("give a prompt or messages")
        return self


class ChatOutput(sdk.Output):
    text: str
    model: str
    stop_reason: str | None
    usage: Usage


@connector.action("chat")
async def chat(params: ChatParams, ctx: sdk.ActionContext) -> ChatOutput:
    """Send messages (and a system prompt) to the model; its answer as text."""
    turns = [llm.Message("user", params.prompt)] if params.prompt else []
    turns += [llm.Message(m.role, m.content) for m in params.messages or []]
    reply = await _ask(
        ctx,
        turns,
        system=params.system,
        temperature=params.temperature,
        max_tokens=params.max_tokens,
        model=params.model,
    )
    return ChatOutput(
        text=reply.text, model=reply.model, stop_reason=reply.stop_reason, usage=_usage(reply)
    )


class ExtractParams(_Ask):
    text: str = pydantic.Field(min_length=1, description="What to extract from.")
    schema_: dict[str, Any] = pydantic.Field(
        alias="schema", description="The JSON Schema (an object) the data must follow."
    )
    instructions: str | None = pydantic.Field(
        default=None, description="What to extract, in words, besides the schema."
    )


class ExtractOutput(sdk.Output):
    data: dict[str, Any]
    model: str
    usage: Usage


@connector.action("extract")
async def extract(params: ExtractParams, ctx: sdk.ActionContext) -> ExtractOutput:
    """Extract data from text into an object following a JSON Schema (validated)."""
    try:
        jsonschema.Draft202012Validator.check_schema(params.schema_)
        wanted = strict.strict_schema(params.schema_)
    except (jsonschema.SchemaError, strict.StrictSchemaError) as exc:
        message = exc.message if isinstance(exc, jsonschema.SchemaError) else str(exc)
        raise errors.PermanentError(
            f"the schema cannot be used: {message}",
            errors.Where(step=ctx.step_id, field="with.schema"),
        ) from None
    system = (
        "Extract the requested data from the user's text. Answer only with JSON that follows "
        "the schema; use null for what the text does not say."
    )
    if params.instructions:
        system += f"\n\n{params.instructions}"
    reply = await _ask(
        ctx,
        [llm.Message("user", params.text)],
        system=system,
        schema=wanted,
        temperature=params.temperature,
        max_tokens=params.max_tokens,
        model=params.model,
    )
    data = strict.unnullable(reply.data, params.schema_)
    problems = sorted(
        jsonschema.Draft202012Validator(params.schema_).iter_errors(data),
        key=lambda e: list(e.absolute_path),
    )
    if problems or not isinstance(data, dict):
        first = problems[0] if problems else None
        at = "/".join(str(p) for p in first.absolute_path) if first else ""
        why = first.message if first else "it is not an object"
        raise errors.PermanentError(
            f"{reply.model}'s answer does not follow the schema"
            + (f" at {at!r}" if at else "")
            + f": {why}",
            errors.Where(step=ctx.step_id, field="with.schema"),
            details={"answer": json.dumps(reply.data)[:2000]},
        )
    return ExtractOutput(data=data, model=reply.model, usage=_usage(reply))


class ClassifyParams(_Ask):
    text: str = pydantic.Field(min_length=1, description="What to classify.")
    labels: list[str] = pydantic.Field(
        min_length=2, max_length=500, description="The labels to choose from."
    )
    instructions: str | None = pydantic.Field(
        default=None, description="What the labels mean, how to choose."
    )

    @pydantic.field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels) or not all(label.strip() for label in labels):
            raise ValueError("labels must be distinct and not empty")
        return labels


class ClassifyOutput(sdk.Output):
    label: str
    confidence: float
    reason: str
    model: str
    usage: Usage


@connector.action("classify")
async def classify(params: ClassifyParams, ctx: sdk.ActionContext) -> ClassifyOutput:
    """Choose the one label that fits the text, with a confidence between 0 and 1."""
    schema = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": params.labels},
            "confidence": {"type": "number", "description": "From 0 (a guess) to 1 (certain)."},
            "reason": {"type": "string", "description": "Why, in one sentence."},
        },
        "required": ["label", "confidence", "reason"],
        "additionalProperties": False,
    }
    system = "Classify the user's text: choose exactly one of the labels " + json.dumps(
        params.labels
    )
    if params.instructions:
        system += f"\n\n{params.instructions}"
    reply = await _ask(
        ctx,
        [llm.Message("user", params.text)],
        system=system,
        schema=schema,
        temperature=params.temperature if params.temperature is not None else 0,
        max_tokens=params.max_tokens,
        model=params.model,
    )
    answer = reply.data if isinstance(reply.data, dict) else {}
    label, confidence = answer.get("label"), answer.get("confidence")
    if label not in params.labels or not isinstance(confidence, int | float):
        raise errors.PermanentError(
            f"{reply.model} did not choose one of the labels with a confidence: "
            f"{json.dumps(reply.data)[:200]}",
            errors.Where(step=ctx.step_id, field="with.labels"),
        )
    return ClassifyOutput(
        label=str(label),
        confidence=min(1.0, max(0.0, float(confidence))),
        reason=str(answer.get("reason") or ""),
        model=reply.model,
        usage=_usage(reply),
    )


class SummarizeParams(_Ask):
    text: str = pydantic.Field(min_length=1, description="What to summarize.")
    max_words: int | None = pydantic.Field(
        default=None, ge=5, le=5000, description="At most about this many words."
    )
    focus: str | None = pydantic.Field(
        default=None, description="What the summary is for, what to keep."
    )


class SummarizeOutput(sdk.Output):
    summary: str
    model: str
    usage: Usage


@connector.action("summarize")
async def summarize(params: SummarizeParams, ctx: sdk.ActionContext) -> SummarizeOutput:
    """Summarize text, optionally in at most about so many words and with a focus."""
    system = "Summarize the user's text faithfully; do not add facts. Answer with the summary only."
    if params.max_words:
        system += f" Use at most {params.max_words} words."
    if params.focus:
        system += f" Focus: {params.focus}"
    reply = await _ask(
        ctx,
        [llm.Message("user", params.text)],
        system=system,
        temperature=params.temperature,
        max_tokens=params.max_tokens,
        model=params.model,
    )
    return SummarizeOutput(summary=reply.text.strip(), model=reply.model, usage=_usage(reply))


# -- health -----------------------------------------------------------------------------------


@connector.probe
async def probe(integration: sdk.IntegrationInfo) -> str:
    """Lists the provider's models with the API key (nothing is generated, nothing billed) and
    says whether the configured model is among them."""
    config = client_config(integration)
    where = config.base_url or f"the {config.provider} API"
    try:
        models = await llm.client(config).models()
    except errors.RetryableError as exc:
        raise errors.UnreachableError(exc.message, exc.where, details=exc.details) from None
    if config.model in models:
        return f"{config.provider} at {where}: model {config.model} available"
    return (
        f"{config.provider} at {where}: key accepted, {len(models)} models; "
        f"{config.model} is not listed"
    )
