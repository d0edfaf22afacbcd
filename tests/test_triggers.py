"""Trigger definitions: what the models refuse (as admission's CEL rules do), and what
``autoflow validate`` reports about triggers, each problem naming its field."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from autoflow.crds import errors, workflow
from autoflow.runners.definitions import checks, triggers


def manifest(*trigger_list: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "orders", "namespace": "shop"},
        "spec": {
            "inputs": {"orderId": {"type": "string", "required": True}, "note": {}},
            "outputs": {"total": "${ steps.s.output.message }"},
            "triggers": list(trigger_list),
            "steps": [{"id": "s", "uses": "core.log", "with": {"message": "hi"}}],
            **spec,
        },
    }


SECRET = {"secretRef": {"name": "gh"}}
GITHUB = {"auth": {"hmac": {"preset": "github"}}, **SECRET}


def problems(doc: dict[str, Any]) -> list[str]:
    _, found = checks.check_manifest(doc)
    return [f"{p.where.field}: {p.message}" for p in found]


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"webhook": {"auth": {"bearer": {}, "none": True}}}, "exactly one of standardWebhooks"),
        ({"webhook": {"auth": {}}}, "exactly one of standardWebhooks"),
        ({"webhook": {"auth": {"bearer": {}}}}, "needs a secretRef"),
        ({"webhook": {"auth": {"none": True}, "secretRef": {"name": "x"}}}, "takes no secretRef"),
        ({"webhook": {"path": "orders", "auth": {"none": True}}}, "should match pattern"),
        ({"webhook": {"auth": {"none": True}, "methods": ["TRACE"]}}, "Input should be"),
        ({"webhook": {"auth": {"none": True}, "maxBodyBytes": 0}}, "greater than or equal"),
        ({"nats": {"subject": "a..b"}}, "should match pattern"),
        ({}, "exactly one of webhook or nats"),
        ({"webhook": {"auth": {"none": True}}, "nats": {"subject": "a"}}, "exactly one of"),
    ],
)
def test_the_models_refuse(trigger: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        workflow.Workflow.model_validate(manifest(trigger))


def test_validate_reports_trigger_problems_by_field() -> None:
    doc = manifest(
        {
            "webhook": {
                **GITHUB,
                "inputs": {"orderId": "${ body.id }", "nope": "${ bogus.x }"},
                "response": {"mode": "sync", "output": "totl"},
                "deliveryId": {"expression": "${ body.[ }"},
            }
        },
        {"webhook": {"auth": {"none": True}, "path": "/orders"}},  # the default path again
        {
            "webhook": {
                "auth": {"hmac": {"preset": "stripe", "prefix": "x"}},
                **SECRET,
                "path": "/stripe",
            }
        },
        {
            "webhook": {
                "auth": {"hmac": {"header": "X-Sig", "tolerance": "1m"}},
                **SECRET,
                "path": "/sig",
                "methods": ["GET"],
                "response": {"statusCode": 201},
            }
        },
        {"nats": {"subject": "shop.orders", "inputs": {"note": "${ body.note }"}}},
    )
    found = problems(doc)
    expected = [
        "triggers[0].webhook.inputs.nope: unknown input 'nope' (inputs: note, orderId)",
        "triggers[0].webhook.inputs.nope: unknown name 'bogus' (trigger expressions start from "
        "body, headers, query) (in ${ bogus.x })",
        "triggers[0].webhook.deliveryId.expression: ",
        "triggers[0].webhook.response.output: unknown output 'totl' (outputs: total)",
        "triggers[1].webhook.path: path '/orders' is also the path of triggers[0]",
        "triggers[2].webhook.auth.hmac.prefix: the stripe preset fixes prefix",
        "triggers[3].webhook.auth.hmac.tolerance: tolerance applies to timestamped schemes only",
        "triggers[3].webhook.response.statusCode: statusCode applies to mode: sync only",
        "triggers[3].webhook.methods: a signature covers a body",
        "triggers[4].nats.inputs: required input 'orderId' is not mapped",
    ]
    for fragment in expected:
        assert any(p.startswith(fragment) for p in found), (fragment, found)
    assert len(found) == len(expected), found


def test_a_mapping_renders_from_the_request() -> None:
    where = errors.Where(field="inputs")
    mapping = triggers.compile_mapping(
        {
            "orderId": "${ body.order.id }",
            "label": "from ${ headers['x-shop'] } page ${ query.page }",
            "items": ["${ body.order.items[0] }", 2],
            "fixed": True,
        },
        where,
        triggers.WEBHOOK_ROOTS,
    )
    scope = {
        "body": {"order": {"id": "A-1", "items": ["x"]}},
        "headers": {"x-shop": "north"},
        "query": {"page": "2"},
    }
    assert mapping.render(scope) == {
        "orderId": "A-1",
        "label": "from north page 2",
        "items": ["x", 2],
        "fixed": True,
    }
    with pytest.raises(errors.ExpressionEvalError) as missing:
        mapping.render({**scope, "body": {}})
    assert missing.value.where.field == "inputs.orderId"


def test_admission_refuses_with_the_same_trigger_problems() -> None:
    from autoflow.operator import webhook as admission

    doc = manifest({"webhook": {**GITHUB, "response": {"mode": "sync", "output": "totl"}}})
    found = admission.problems_of(doc)
    assert [f"{p.where.field}: {p.message}" for p in found] == [
        "triggers[0].webhook.response.output: unknown output 'totl' (outputs: total)"
    ]
