"""Probing an Integration in a test as ``autoflow integrations test`` and the operator do.

The Integration is a real resource (validated like a manifest), its secrets come through the
local provider ``autoflow run`` uses (``runners.local.LocalIntegrations``: a missing key is
``MissingSecretError``, every value read is registered with the Redactor), and the verdict
is ``runners.probe.check``'s::

    intg = probing.integration("shop", "http", {"baseUrl": server.url("/")}, keys=["token"])
    health = await probing.check(intg, {"token": "t0k3n"})
    assert health.reason == "ProbeSucceeded"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoflow.connectors import registry as registry_mod
from autoflow.crds import integration as integration_mod
from autoflow.runners.access import probe, redact
from autoflow.runners.local import run as local


def integration(
    name: str,
    type: str,
    settings: Mapping[str, Any] | None = None,
    *,
    keys: list[str] | None = None,
) -> integration_mod.Integration:
    """An Integration resource; ``keys`` become its ``secretRef.keys``."""
    spec: dict[str, Any] = {"type": type, "settings": dict(settings or {})}
    if keys is not None:
        spec["secretRef"] = {"name": f"{name}-credentials", "keys": keys}
    return integration_mod.Integration.model_validate(
        {
            "apiVersion": "autoflow.dev/v1alpha1",
            "kind": "Integration",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


async def check(
    intg: integration_mod.Integration,
    secrets: Mapping[str, str] | None = None,
    *,
    registry: registry_mod.Registry | None = None,
    timeout: float = 10.0,
) -> probe.Health:
    """The Integration's health, its secrets from ``secrets`` (no environment variables)."""
    name = intg.metadata.name or ""
    provider = local.LocalIntegrations([intg], {name: dict(secrets or {})}, env={})
    redactor = redact.Redactor()
    try:
        info = await provider.get(name, redactor)
    except Exception as exc:
        return probe.failed(name, exc, redactor)
    return await probe.check(info, redactor, registry=registry, timeout=timeout)
