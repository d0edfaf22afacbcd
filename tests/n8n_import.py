"""Helpers for the n8n import and template tests: the corpus, and running manifests for real.

``run_imported(result, tmp_path, settings=..., secrets=..., inputs=..., env=...)`` writes the
imported YAML with each Integration stub completed (its settings: where the local server
is), and runs it as ``autoflow run`` does (``runners.local.run.prepare``), secrets given as
the ``AUTOFLOW_SECRET_*`` environment variables a person would set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from autoflow.runners import engine
from autoflow.runners.local import run as local
from autoflow.webui.importers import n8n

CORPUS = Path(__file__).resolve().parent / "n8n_corpus"


def imported(name: str) -> n8n.Result:
    """The corpus file ``name`` (without .json) converted."""
    path = CORPUS / f"{name}.json"
    return n8n.convert(path.read_text(encoding="utf-8"), source=path.name)


def run_imported(
    result: n8n.Result,
    tmp_path: Path,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    inputs: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> engine.RunResult:
    return run_manifests(
        result.yaml, tmp_path, settings=settings, secrets=secrets, inputs=inputs, env=env
    )


def run_manifests(
    text: str,
    tmp_path: Path,
    *,
    workflow: str | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    inputs: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> engine.RunResult:
    """Runs the Workflow in ``text`` (``workflow`` names it among several) with each
    Integration's settings updated from ``settings`` and its secrets from ``secrets``."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        if doc.get("kind") == "Integration":
            name = doc["metadata"]["name"]
            given = (settings or {}).get(name, {})
            doc["spec"]["settings"] = {**doc["spec"].get("settings", {}), **given}
    path = tmp_path / f"{workflow or 'manifests'}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    environ = {f"{local.ENV_PREFIX}{k}": v for k, v in (env or {}).items()}
    for integration, keys in (secrets or {}).items():
        for key, value in keys.items():
            environ[local.secret_env_name(integration, key)] = value
    run = local.prepare(
        [str(path)],
        given_inputs=dict(inputs or {}),
        from_text=False,
        env=environ,
        workflow_name=workflow,
    )

    async def execute() -> engine.RunResult:
        try:
            return await run.execute()
        finally:
            await run.limiter.aclose()

    return asyncio.run(execute())
