"""The web UI and the operator are independent faces: an import-linter contract says so.

``lint-imports`` (run by ``hack/test.sh``) checks the contracts; this test keeps the contract
itself from being dropped or narrowed (docs/architecture.md, "Layers and rooms").
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_webui_and_operator_have_an_independence_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    faces = [
        c
        for c in contracts
        if c["type"] == "independence"
        and {"autoflow.webui", "autoflow.operator"} <= set(c["modules"])
    ]
    assert faces, "no independence contract over autoflow.webui and autoflow.operator"
