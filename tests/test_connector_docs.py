"""docs/connectors.md is generated from the registry; it must match the code."""

from __future__ import annotations

from autoflow.connectors import reference


def test_the_committed_connector_reference_matches_the_registry() -> None:
    assert reference.DOCS.read_text() == reference.render(), (
        "docs/connectors.md is stale: run python -m autoflow.connectors.reference"
    )


def test_every_action_is_documented_with_its_parameters() -> None:
    text = reference.render()
    assert "### `http.request`" in text
    assert "| `url` | string | yes |" in text
    assert "### `core.noop`" in text and "No parameters." in text
