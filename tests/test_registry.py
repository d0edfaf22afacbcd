"""Connector discovery: built-ins without metadata, third-party connectors via entry points."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from autoflow.connectors import registry
from autoflow.crds import errors

SHOP_MODULE = """
from autoflow.connectors import sdk

connector = sdk.Connector("shop", "A third-party connector.")


class LookupParams(sdk.Params):
    order_id: str


@connector.action("lookup")
async def lookup(params: LookupParams, ctx: sdk.ActionContext) -> dict:
    return {"id": params.order_id}
"""


@pytest.fixture
def shop_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed distribution that declares a connector in the entry-point group."""
    (tmp_path / "shop_autoflow.py").write_text(SHOP_MODULE)
    dist = tmp_path / "shop_autoflow-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shop-autoflow\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[autoflow.connectors]\nshop = shop_autoflow:connector\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("shop_autoflow", None)


def test_a_connector_from_an_entry_point_is_found_and_loaded_on_use(shop_package: Path) -> None:
    reg = registry.Registry()
    assert "shop_autoflow" not in sys.modules
    assert "shop" in reg.names()
    assert "shop_autoflow" not in sys.modules  # listing names imports nothing
    action = reg.action("shop.lookup")
    assert action.uses == "shop.lookup"
    assert action.params_schema()["required"] == ["orderId"]


def test_builtins_load_without_reading_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: object) -> None:
        raise AssertionError("entry points were scanned for a built-in connector")

    monkeypatch.setattr(metadata, "entry_points", refuse)  # the module registry reads
    assert registry.Registry().action("core.log").uses == "core.log"


def test_unknown_connector_and_action_name_what_exists() -> None:
    reg = registry.Registry()
    with pytest.raises(errors.ManifestError, match=r"unknown connector 'nope' \(known: .*core"):
        reg.action("nope.x")
    with pytest.raises(errors.ManifestError, match=r"has no action 'nope' \(actions: .*log"):
        reg.action("core.nope")
