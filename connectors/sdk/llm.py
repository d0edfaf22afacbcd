"""Talking to a language model: one small client over the official ``openai`` and
``anthropic`` SDKs, used by the ``ai`` connector and the assistant (``autoflow.webui``).

Both callers say the same thing, whatever the provider::

    client = llm.client(llm.Config(provider="openai", model="gpt-4.1-mini", api_key=key))
    reply = await client.complete(
        [llm.Message("user", "Say hello")], system="Be brief.", schema=None, max_tokens=200
    )
    reply.text, reply.data, reply.usage.input_tokens

With ``schema`` the model answers in JSON that follows it, through the provider's structured
outputs (OpenAI Chat Completions ``response_format: json_schema`` with ``strict: true``;
Anthropic Messages ``output_config.format: json_schema``); the schema must already meet the
strict rules (``sdk.strict``). ``reply.data`` is the parsed answer; an answer that is not JSON
is a ``PermanentError`` saying so (the model's words, shortened, in its details).

``provider: openai`` covers every OpenAI-compatible server (vLLM, Ollama, LiteLLM) through
``base_url``; one without structured outputs takes ``structured_outputs=False`` (the schema
then goes into the system prompt). Keys come from the caller (an Integration's Secret) or
the environment (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``; ``config_from_env``).

Retries: the SDKs' own, which retry 408/409/429/5xx and connection errors with backoff and
honour ``Retry-After``; ``max_retries`` says how many (the ``ai`` connector sets 0 and lets
the engine's step retry do it, from the ``RetryableError`` this module raises with the
``retry_after`` the provider asked for). Errors are mapped once, in ``_error``, onto the
connector error tree: 401/403 ``CredentialsRejectedError``, 429/5xx/timeouts/connection
``RetryableError``, other 4xx ``PermanentError``. The API key never appears in an error.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import anthropic
import openai

from autoflow.crds import errors

Provider = Literal["openai", "anthropic"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic")
ENV_KEYS: dict[str, str] = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
ENV_BASE_URLS: dict[str, str] = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
DEFAULT_MODELS: dict[str, str] = {"openai": "gpt-4.1-mini", "anthropic": "claude-sonnet-4-5"}
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_TOKENS = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation: ``role`` is user or assistant."""

    role: Literal["user", "assistant"]
    content: str


@dataclasses.dataclass(slots=True)
class Usage:
    """Tokens a call (or several, added up) used."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.calls += other.calls

    def as_json(self) -> dict[str, int]:
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.total_tokens,
            "calls": self.calls,
        }


@dataclasses.dataclass(slots=True)
class Reply:
    """What the model answered: its text, the parsed JSON when a schema was given, usage."""

    text: str
    data: Any
    usage: Usage
    model: str
    stop_reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """How to reach a model. ``base_url`` None: the provider's own API."""

    provider: Provider
    model: str
    api_key: str = dataclasses.field(repr=False)
    base_url: str | None = None
    organization: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = 2
    # The header an idempotency key travels in ("" sends none).
    idempotency_header: str = "Idempotency-Key"
    # False for a server without structured outputs: the schema goes into the system prompt
    # and the answer is parsed (and validated by the caller) all the same.
    structured_outputs: bool = True


class Client(Protocol):
    """A provider, as the connector and the assistant use it."""

    config: Config

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        system: str | None = None,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "answer",
        temperature: float | None = None,
        max_tokens: int | None = None,
        idempotency_key: str | None = None,
    ) -> Reply: ...

    async def models(self) -> list[str]: ...


def config_from_env(
    provider: Provider,
    *,
    model: str | None = None,
    base_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    max_retries: int = 2,
    timeout: float = DEFAULT_TIMEOUT,
) -> Config:
    """A Config whose key (and base URL, unless given) come from the environment."""
    env = os.environ if environ is None else environ
    key = env.get(ENV_KEYS[provider], "")
    url = base_url or env.get(ENV_BASE_URLS[provider]) or None
    if not key and url is None:
        raise errors.PermanentError(
            f"no API key for {provider}: set {ENV_KEYS[provider]} (or a base URL of an "
            "OpenAI-compatible server that needs none)",
            errors.Where(field=ENV_KEYS[provider]),
        )
    return Config(
        provider=provider,
        model=model or env.get("AUTOFLOW_AI_MODEL") or DEFAULT_MODELS[provider],
        api_key=key or "none",
        base_url=url,
        organization=env.get("OPENAI_ORG_ID") if provider == "openai" else None,
        timeout=timeout,
        max_retries=max_retries,
        structured_outputs=env.get("AUTOFLOW_AI_STRUCTURED_OUTPUTS", "true").lower() != "false",
    )


def client(config: Config) -> Client:
    """The client of ``config.provider``."""
    if config.provider == "anthropic":
        return AnthropicClient(config)
    return OpenAIClient(config)


def _headers(config: Config, idempotency_key: str | None) -> dict[str, str]:
    if idempotency_key and config.idempotency_header:
        return {config.idempotency_header: idempotency_key}
    return {}


class OpenAIClient:
    """OpenAI's Chat Completions API (and every server that follows it)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._sdk = openai.AsyncOpenAI(
            api_key=config.api_key,
            base_url=config.base_url,
            organization=config.organization,
            timeout=config.timeout,
            max_retries=config.max_retries,
        )

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        system: str | None = None,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "answer",
        temperature: float | None = None,
        max_tokens: int | None = None,
        idempotency_key: str | None = None,
    ) -> Reply:
        system = _with_schema(system, schema, self.config)
        turns: list[dict[str, str]] = []
        if system:
            turns.append({"role": "system", "content": system})
        turns += [{"role": m.role, "content": m.content} for m in messages]
        extra: dict[str, Any] = {}
        if schema is not None and self.config.structured_outputs:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": dict(schema), "strict": True},
            }
        if temperature is not None:
            extra["temperature"] = temperature
        if max_tokens is not None:
            extra["max_completion_tokens"] = max_tokens
        try:
            answer = await self._sdk.chat.completions.create(
                model=self.config.model,
                messages=turns,  # type: ignore[arg-type]
                extra_headers=_headers(self.config, idempotency_key),
                **extra,
            )
        except openai.APIError as exc:
            raise _error(exc, self.config) from None
        if not answer.choices:
            raise errors.PermanentError(f"{self.config.model} answered with no choices")
        choice = answer.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise errors.PermanentError(f"{self.config.model} refused: {_short(refusal)}")
        text = choice.message.content or ""
        usage = Usage(calls=1)
        if answer.usage is not None:
            usage.input_tokens = answer.usage.prompt_tokens
            usage.output_tokens = answer.usage.completion_tokens
        return Reply(
            text=text,
            data=_parse(text, self.config) if schema is not None else None,
            usage=usage,
            model=answer.model or self.config.model,
            stop_reason=choice.finish_reason,
        )

    async def models(self) -> list[str]:
        try:
            page = await self._sdk.models.list()
        except openai.APIError as exc:
            raise _error(exc, self.config) from None
        return [m.id for m in page.data]


class AnthropicClient:
    """Anthropic's Messages API."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._sdk = anthropic.AsyncAnthropic(
            api_key=config.api_key,
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=config.max_retries,
        )

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        system: str | None = None,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "answer",
        temperature: float | None = None,
        max_tokens: int | None = None,
        idempotency_key: str | None = None,
    ) -> Reply:
        system = _with_schema(system, schema, self.config)
        turns: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        extra: dict[str, Any] = {}
        if system:
            extra["system"] = system
        if schema is not None and self.config.structured_outputs:
            extra["output_config"] = {"format": {"type": "json_schema", "schema": dict(schema)}}
        if temperature is not None:
            # Not a parameter of every SDK version's ``create``; the API reference has it.
            extra["extra_body"] = {"temperature": temperature}
        try:
            answer = await self._sdk.messages.create(
                model=self.config.model,
                max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
                messages=turns,
                extra_headers=_headers(self.config, idempotency_key),
                **extra,
            )
        except anthropic.APIError as exc:
            raise _error(exc, self.config) from None
        text = "".join(getattr(block, "text", "") for block in answer.content)
        if answer.stop_reason == "refusal":
            raise errors.PermanentError(f"{self.config.model} refused: {_short(text)}")
        usage = Usage(
            input_tokens=answer.usage.input_tokens,
            output_tokens=answer.usage.output_tokens,
            calls=1,
        )
        return Reply(
            text=text,
            data=_parse(text, self.config) if schema is not None else None,
            usage=usage,
            model=answer.model or self.config.model,
            stop_reason=answer.stop_reason,
        )

    async def models(self) -> list[str]:
        try:
            page = await self._sdk.models.list()
        except anthropic.APIError as exc:
            raise _error(exc, self.config) from None
        return [m.id for m in page.data]


def _with_schema(
    system: str | None, schema: Mapping[str, Any] | None, config: Config
) -> str | None:
    """The system prompt, carrying the schema when the server cannot take it as a format."""
    if schema is None or config.structured_outputs:
        return system
    ask = (
        "Answer with one JSON value only, no prose and no Markdown, following this JSON "
        f"Schema:\n{json.dumps(schema, separators=(',', ':'))}"
    )
    return f"{system}\n\n{ask}" if system else ask


class NotJSONError(errors.PermanentError):
    """The model was asked for JSON and answered something else; ``answer`` is what it said."""

    def __init__(self, message: str, answer: str) -> None:
        super().__init__(message, details={"answer": _short(answer, 2000)})
        self.answer = answer


def _parse(text: str, config: Config) -> Any:
    # Servers without structured outputs (some OpenAI-compatible ones) often fence the JSON.
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped.removeprefix("```json").removeprefix("```").removesuffix("```")
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise NotJSONError(
            f"{config.model} did not answer in JSON as asked ({exc.msg} at character "
            f"{exc.pos}): {_short(text)!r}",
            text,
        ) from None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _error(exc: openai.APIError | anthropic.APIError, config: Config) -> errors.ConnectorError:
    """The SDK's error as one of the connector error tree, the key never in it."""
    name = f"{config.provider} ({config.base_url or 'the provider API'})"
    status = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", "") or exc)
    if config.api_key and config.api_key != "none":
        message = message.replace(config.api_key, "[redacted]")
    message = _short(message, 500)
    details: dict[str, object] = {"status": status} if status is not None else {}
    if isinstance(exc, openai.APITimeoutError | anthropic.APITimeoutError):
        return errors.RetryableError(f"{name} did not answer within {config.timeout:g}s")
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError):
        return errors.UnreachableError(f"cannot reach {name}: {message}")
    if status in (401, 403):
        return errors.CredentialsRejectedError(
            f"{name} refused the API key (HTTP {status}): {message}", details=details
        )
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if status in (408, 409, 429) or (status is not None and status >= 500):
        return errors.RetryableError(
            f"{name} answered HTTP {status}: {message}",
            retry_after=_retry_after(headers),
            details=details,
        )
    return errors.PermanentError(f"{name} answered HTTP {status}: {message}", details=details)
