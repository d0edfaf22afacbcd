"""``sdk.strict``: JSON Schemas made to meet the providers' strict structured-output rules
(OpenAI "Structured Outputs: Supported schemas", Anthropic "Structured outputs: JSON Schema
limitations"), and answers to them brought back to the schema as written."""

from __future__ import annotations

from typing import Any

import jsonschema
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from saas import llm_script

from autoflow.connectors.sdk import strict


class Address(pydantic.BaseModel):
    city: str
    zip: str | None = pydantic.Field(default=None, pattern=r"^\d{5}$")


class Order(pydantic.BaseModel):
    id: int = pydantic.Field(ge=1)
    status: str = "open"
    tags: list[str] = []
    ship_to: Address | None = None
    kind: str | int = "a"


def test_every_property_required_optional_ones_nullable_no_extra_properties() -> None:
    made = strict.strict_schema(Order.model_json_schema())
    assert llm_script.strict_problems(made) == []
    assert made["required"] == ["id", "status", "tags", "ship_to", "kind"]
    assert made["properties"]["status"]["type"] == ["string", "null"]
    assert made["properties"]["id"]["type"] == "integer"  # required: not nullable
    address = made["properties"]["ship_to"]["anyOf"][0]
    assert address["additionalProperties"] is False and address["required"] == ["city", "zip"]
    assert "$defs" not in made and "$ref" not in str(made)


def test_unsupported_keywords_move_into_the_description() -> None:
    made = strict.strict_schema(Order.model_json_schema())
    assert "minimum" not in made["properties"]["id"]
    assert "(minimum: 1)" in made["properties"]["id"]["description"]
    zip_ = made["properties"]["ship_to"]["anyOf"][0]["properties"]["zip"]["anyOf"][0]
    assert zip_ == {"type": "string", "description": '(pattern: "^\\\\d{5}$")'}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"anyOf": [{"type": "object", "properties": {"a": {"type": "string"}}}]}, "root"),
        ({"type": "array", "items": {"type": "string"}}, "root"),
        ({"type": "object", "properties": {"m": {"type": "object"}}}, "$.m: an object without"),
        ({"type": "object", "properties": {"x": {}}}, "$.x: any value"),
        ({"type": "object", "properties": {"l": {"type": "array"}}}, "$.l: an array must say"),
        (
            {
                "type": "object",
                "properties": {"n": {"$ref": "#/$defs/N"}},
                "$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}}},
            },
            "recursive",
        ),
    ],
)
def test_what_cannot_be_strict_is_named(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(strict.StrictSchemaError, match=None) as caught:
        strict.strict_schema(schema)
    assert message in str(caught.value)


def test_unnullable_drops_nulls_of_optional_fields_only() -> None:
    original = Order.model_json_schema()
    answer: dict[str, Any] = {
        "id": 3,
        "status": None,
        "tags": [],
        "ship_to": {"city": "Oslo", "zip": None},
        "kind": 2,
    }
    back = strict.unnullable(answer, original)
    # ship_to was optional and nullable in the original: its null would be kept; status not.
    assert back == {"id": 3, "tags": [], "ship_to": {"city": "Oslo", "zip": None}, "kind": 2}
    Order.model_validate(back)


@given(
    st.fixed_dictionaries(
        {"id": st.integers(1, 10**6)},
        optional={"status": st.text(max_size=5), "tags": st.lists(st.text(max_size=3))},
    )
)
def test_an_answer_to_the_strict_schema_validates_against_the_original(
    value: dict[str, Any],
) -> None:
    original = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["id"],
    }
    made = strict.strict_schema(original)
    answer = {k: value.get(k) for k in made["properties"]}  # what a strict model writes
    jsonschema.validate(answer, made)
    back = strict.unnullable(answer, original)
    jsonschema.validate(back, original)
    assert back == value
