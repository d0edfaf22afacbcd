"""The assistant drafts Workflows that validate, against local model servers.

The model is ``tests/saas/openai_api.py`` (OpenAI Chat Completions, structured outputs with
``strict: true``) or ``tests/saas/anthropic_api.py`` (Anthropic Messages, ``output_config``
JSON schema), scripted per test; both refuse a schema that breaks the strict rules and an
answer that does not follow the schema, as the real services cannot give one. The answers are
written in the model-facing schema (``webui.assistant.schema``), the checks are those of
``autoflow validate``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi
import jsonschema
import probing
import pytest
from fastapi import testclient
from saas import anthropic_api, llm_script, openai_api

from autoflow.connectors.sdk import llm
from autoflow.runners.definitions import loader
from autoflow.webui.assistant import catalogue, draft, routes, schema

SCHEMA = schema.answer_schema()
SECRETS = {"stripe": "sk_live_51HxSECRETvalue0001", "slack": "xoxb-SECRET-slack-0002"}


def fill(value: Any, node: dict[str, Any] = SCHEMA) -> Any:
    """A partial answer completed as a strict model writes it: every field, null if unset."""
    if "anyOf" in node:
        for option in node["anyOf"]:
            if value is None and option.get("type") == "null":
                return None
            if isinstance(value, dict) and option.get("type") == "object":
                return fill(value, option)
            if isinstance(value, list) and option.get("type") == "array":
                return fill(value, option)
        return value
    if isinstance(value, dict) and "properties" in node:
        return {k: fill(value.get(k), sub) for k, sub in node["properties"].items()}
    if isinstance(value, list) and "items" in node:
        return [fill(v, node["items"]) for v in value]
    return value


def step(id: str, uses: str, needs: list[str] | None = None, **with_: Any) -> dict[str, Any]:
    pairs = [{"name": k, "value": json.dumps(v)} for k, v in with_.items()]
    return {"id": id, "uses": uses, "with": pairs, "needs": needs}


def answer(*steps: dict[str, Any], inputs: dict[str, str] | None = None) -> dict[str, Any]:
    declared = [{"name": n, "value": {"type": t}} for n, t in (inputs or {}).items()]
    made: dict[str, Any] = fill(
        {
            "metadata": {"name": "payment-failed"},
            "spec": {"description": "Tell billing", "inputs": declared, "steps": list(steps)},
        }
    )
    return made


NOTIFY = step("notify", "core.log", message="Payment ${ inputs.id } failed")
VALID = answer(NOTIFY, inputs={"id": "string"})
CYCLE = answer(
    step("a", "core.log", ["b"], message="a"),
    step("b", "core.log", ["a"], message="b"),
)


@pytest.fixture(params=["openai", "anthropic"])
def model(
    request: pytest.FixtureRequest, saas: Callable[[type[Any]], Any]
) -> tuple[Any, llm.Client]:
    if request.param == "openai":
        service = saas(openai_api.OpenAI)
        key = openai_api.API_KEY
    else:
        service = saas(anthropic_api.Anthropic)
        key = anthropic_api.API_KEY
    config = llm.Config(
        provider=request.param, model="test-model", api_key=key, base_url=service.base_url
    )
    return service, llm.client(config)


def user_messages(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def test_the_model_facing_schema_is_strict_and_comes_back_as_a_manifest() -> None:
    assert llm_script.strict_problems(SCHEMA) == []
    manifest = schema.to_manifest(VALID)
    assert manifest == {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "payment-failed"},
        "spec": {
            "description": "Tell billing",
            "inputs": {"id": {"type": "string"}},
            "steps": [
                {
                    "id": "notify",
                    "uses": "core.log",
                    "with": {"message": "Payment ${ inputs.id } failed"},
                }
            ],
        },
    }
    assert draft.validate(manifest, {}) == []


async def test_a_cycle_is_repaired_in_one_round_and_the_diff_shown(
    model: tuple[Any, llm.Client],
) -> None:
    service, client = model
    service.answer(CYCLE, VALID)
    made = await draft.draft(client, "when a payment fails, log it", current=None)
    assert made.valid and made.rounds == 1 and made.problems == []
    assert "uses: core.log" in made.yaml
    assert made.diff.startswith("--- /dev/null\n+++ b/workflow.yaml\n")
    assert "+  name: payment-failed" in made.diff
    # The repair round told the model every problem autoflow validate found.
    repair = user_messages(service.script.bodies[1])[-1]
    assert "cycle" in repair
    assert made.usage.calls == 2 and made.usage.total_tokens > 0


async def test_a_change_to_an_existing_workflow_is_a_diff_against_it(
    model: tuple[Any, llm.Client],
) -> None:
    service, client = model
    before = draft.to_yaml(schema.to_manifest(VALID))
    after = answer(NOTIFY, step("done", "core.log", message="done"), inputs={"id": "string"})
    service.answer(after)
    made = await draft.draft(client, "log done at the end", current=before)
    assert made.valid and made.rounds == 0
    assert "+  - id: done" in made.diff and "-  - id: notify" not in made.diff
    assert before in user_messages(service.script.bodies[0])[0]


async def test_never_valid_fails_after_the_repair_rounds_naming_the_problems(
    model: tuple[Any, llm.Client],
) -> None:
    service, client = model
    service.answer(*[CYCLE] * 4)
    made = await draft.draft(client, "log it", repairs=3)
    assert not made.valid and made.rounds == 3
    assert len(service.script.bodies) == 4
    assert any("cycle" in str(p) for p in made.problems)
    failure = draft.AssistantFailed(made)
    assert "after 3 repair rounds" in str(failure) and "cycle" in str(failure)


async def test_a_made_up_action_is_repaired_from_the_catalogue(
    model: tuple[Any, llm.Client],
) -> None:
    service, client = model

    def repaired(body: dict[str, Any]) -> dict[str, Any]:
        feedback = user_messages(body)[-1]
        assert "slack.post_message does not exist" in feedback
        assert "- slack.postMessage(" in feedback
        return answer(step("post", "slack.postMessage", channel="#billing", text="failed"))

    made_up = answer(step("post", "slack.post_message", channel="#billing", text="failed"))
    service.answer(made_up, repaired)
    made = await draft.draft(client, "post to #billing")
    assert made.valid and made.rounds == 1
    assert "uses: slack.postMessage" in made.yaml


async def test_the_request_is_grounded_in_relevant_actions_and_integrations_only(
    model: tuple[Any, llm.Client],
) -> None:
    """Only matching actions are sent, never the whole catalogue; Integrations by name and
    type; a step naming one that does not exist is listed as missing, not invented."""
    service, client = model
    service.answer(
        answer(
            {**step("pay", "stripe.list_charges"), "integration": "stripe"},
            {
                **step("tell", "slack.postMessage", channel="#billing", text="x"),
                "integration": "chat",
            },
        )
    )
    made = await draft.draft(
        client,
        "when a Stripe payment fails, e-mail the customer and post to #billing",
        integrations={"stripe": "stripe"},
    )
    assert made.valid
    first = user_messages(service.script.bodies[0])[0]
    assert "- stripe.list_charges(" in first and "- slack.postMessage(" in first
    shown = [line for line in first.splitlines() if line.startswith("- ")]
    assert len(shown) < len(catalogue.cards()) / 2
    assert "stripe (type stripe)" in first
    assert [m.as_json() for m in made.missing_integrations] == [
        {"name": "chat", "type": "slack", "steps": ["tell"]}
    ]


def test_no_secret_value_ever_reaches_the_provider(
    saas: Callable[[type[Any]], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The namespace's Integrations have Secrets (here also in the environment, as
    ``autoflow run`` reads them); every request to the provider is scanned for their values:
    only names and types are sent."""
    service = saas(openai_api.OpenAI)
    for name, value in SECRETS.items():
        monkeypatch.setenv(f"AUTOFLOW_SECRET_{name.upper()}_TOKEN", value)
    monkeypatch.setenv("AUTOFLOW_AI_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", openai_api.API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", service.base_url)
    resources = [
        probing.integration(name, name, {"baseUrl": "https://api.example"}, keys=["token"])
        for name in SECRETS
    ]
    app = fastapi.FastAPI()
    app.include_router(
        routes.router(integrations=lambda ns: routes.integration_types(resources)), prefix="/api"
    )
    http = testclient.TestClient(app)
    service.answer(CYCLE, VALID, "It logs failed payments.")
    reply = http.post("/api/assistant/draft", json={"prompt": "log failed payments"})
    assert reply.json()["valid"] is True
    http.post("/api/assistant/explain", json={"yaml": reply.json()["yaml"]})
    assert len(service.script.bodies) == 3
    assert "slack (type slack), stripe (type stripe)" in json.dumps(service.script.bodies[0])
    for request in service.server.requests:
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        text = request.text + json.dumps(headers)
        assert all(secret not in text for secret in SECRETS.values())


async def test_the_sdk_retries_a_429_after_the_providers_retry_after(
    saas: Callable[[type[Any]], Any],
) -> None:
    service = saas(openai_api.OpenAI)
    config = llm.Config(
        provider="openai",
        model="m",
        api_key=openai_api.API_KEY,
        base_url=service.base_url,
        max_retries=1,
    )
    service.answer(llm_script.Fail(429, retry_after=0.2), VALID)
    made = await draft.draft(llm.client(config), "log it")
    assert made.valid and len(service.script.bodies) == 2


def test_the_router_drafts_and_explains(saas: Callable[[type[Any]], Any]) -> None:
    service = saas(openai_api.OpenAI)
    config = llm.Config(
        provider="openai", model="m", api_key=openai_api.API_KEY, base_url=service.base_url
    )
    app = fastapi.FastAPI()
    app.include_router(
        routes.router(client=lambda: llm.client(config), integrations=lambda ns: {}),
        prefix="/api",
    )
    http = testclient.TestClient(app)
    service.answer(CYCLE, VALID)
    reply = http.post("/api/assistant/draft", json={"prompt": "log it", "namespace": "shop"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) >= {"yaml", "diff", "rounds", "problems", "missingIntegrations", "usage"}
    assert body["valid"] is True and body["rounds"] == 1 and body["problems"] == []
    assert body["usage"]["calls"] == 2
    service.answer(*[CYCLE] * 4)
    body = http.post("/api/assistant/draft", json={"prompt": "log it"}).json()
    assert body["valid"] is False and body["rounds"] == 3
    assert any("cycle" in p["message"] for p in body["problems"])
    service.answer("It writes a line to the log when a payment fails.")
    reply = http.post(
        "/api/assistant/explain", json={"yaml": draft.to_yaml(schema.to_manifest(VALID))}
    )
    assert reply.json()["text"] == "It writes a line to the log when a payment fails."
    reply = http.post("/api/assistant/explain", json={"yaml": "kind: Integration"})
    assert reply.status_code == 422
    service.answer(llm_script.Fail(400, message="model not found"))
    reply = http.post("/api/assistant/draft", json={"prompt": "x"})
    assert reply.status_code == 502 and "model not found" in reply.json()["detail"]


async def test_an_answer_that_is_not_json_is_repaired_like_any_problem(
    saas: Callable[[type[Any]], Any],
) -> None:
    """An OpenAI-compatible server without structured outputs may answer prose, or JSON in a
    Markdown fence: the first is fed back as a problem, the second is read."""
    service = saas(openai_api.OpenAI)
    config = llm.Config(
        provider="openai", model="m", api_key=openai_api.API_KEY, base_url=service.base_url
    )
    service.answer("Sure! Here is your workflow:", "```json\n" + json.dumps(VALID) + "\n```")
    made = await draft.draft(llm.client(config), "log it")
    assert made.valid and made.rounds == 1
    assert "the answer is not JSON" in user_messages(service.script.bodies[1])[-1]


@pytest.mark.parametrize(
    "path",
    ["examples/order-triage.yaml", "examples/nightly-sync.yaml", "examples/shop-lookup.yaml"],
)
def test_workflows_go_to_the_answer_shape_and_back_unchanged(path: str) -> None:
    """``to_answer`` and ``to_manifest`` are inverse for what a draft writes: the examples
    (expressions, nested maps, lists, numbers-as-text) survive the round trip."""
    root = Path(__file__).resolve().parent.parent
    for doc in loader.read_manifests(root / path):
        if doc.data.get("kind") != "Workflow":
            continue
        shaped = schema.to_answer(doc.data)
        jsonschema.validate(shaped, SCHEMA)
        assert schema.to_manifest(shaped) == doc.data


def test_text_that_reads_as_json_stays_text() -> None:
    manifest = schema.to_manifest(VALID)
    manifest["spec"]["steps"][0]["with"] = {"message": "42", "n": 42, "flag": "true", "x": None}
    shaped = schema.to_answer(manifest)
    assert schema.to_manifest(shaped)["spec"]["steps"][0]["with"] == {
        "message": "42",
        "n": 42,
        "flag": "true",
        "x": None,
    }


def test_the_router_runs_the_web_apis_sign_in_check_first(
    saas: Callable[[type[Any]], Any],
) -> None:
    service = saas(openai_api.OpenAI)

    def signed_in(request: fastapi.Request) -> None:
        if request.headers.get("authorization") != "Bearer let-me-in":
            raise fastapi.HTTPException(401, "sign in")

    app = fastapi.FastAPI()
    app.include_router(
        routes.router(
            client=lambda: pytest.fail("the model must not be asked"),
            dependencies=[fastapi.Depends(signed_in)],
        ),
        prefix="/api",
    )
    reply = testclient.TestClient(app).post("/api/assistant/draft", json={"prompt": "x"})
    assert reply.status_code == 401
    assert service.script.bodies == []
