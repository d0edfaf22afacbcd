"""From an ``Integration`` resource and a secrets accessor to what a step sees of it.

Every runner mode (``autoflow run`` on a laptop, the Job runner in a cluster) and the
operator's health probe build the step's view of an Integration here, so settings, credentials
and limits are read the same way everywhere::

    Integration (spec.type, settings, rateLimit, maxConcurrency)
      + Secrets (environment / secrets file / Kubernetes Secret)
      ─► sdk.IntegrationInfo(name, type, settings, secrets, limits)
"""

from __future__ import annotations

from autoflow.connectors import sdk
from autoflow.crds import integration, meta


def limits_of(intg: integration.Integration) -> sdk.Limits | None:
    """The Integration's quota, or None when it sets neither a rate limit nor a concurrency."""
    spec = intg.spec
    if spec.rate_limit is None and spec.max_concurrency is None:
        return None
    rate = spec.rate_limit
    return sdk.Limits(
        requests=rate.requests if rate else None,
        per_seconds=meta.parse_duration(rate.per) if rate else None,
        max_concurrency=spec.max_concurrency,
    )


def info_for(intg: integration.Integration, secrets: sdk.Secrets) -> sdk.IntegrationInfo:
    """What a step (or a probe) sees of ``intg``: settings, credentials, limits."""
    return sdk.IntegrationInfo(
        name=intg.metadata.name or "",
        type=intg.spec.type,
        settings=intg.spec.settings,
        secrets=secrets,
        limits=limits_of(intg),
    )
