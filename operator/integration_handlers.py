"""kopf handlers for Integrations: health probes on a jittered timer, OAuth2 token refresh.

Every ``AUTOFLOW_INTEGRATION_TICK_SECONDS`` kopf calls ``integration_tick`` for each
Integration; the tick does nothing unless work is due (``operator.integrations``):

    OAuth2 authorization code with tokenSecretName, token expiring within the margin
        └─► refresh through authlib (runners.access.oauth2) ─► the managed Secret (created, owned by
            the Integration, when missing); a refusal makes Ready False (TokenRefreshFailed)
    a probe due (spec changed, check requested, next check time passed)
        └─► read the Integration's Secrets as a runner would (runners.kube_integrations)
            ─► the connector's probe (runners.access.probe) ─► Ready, lastCheckTime,
            nextCheckTime, consecutiveFailures; an Event when Ready changes

Probes run a few at a time (``AUTOFLOW_PROBE_CONCURRENCY``) so a namespace of Integrations
created together does not open a burst of connections. Everything written (condition
messages, Events, logs) has passed a Redactor holding every secret value read.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf
import pydantic

from autoflow.crds import errors, integration, meta
from autoflow.operator import context, integrations, metrics, posting
from autoflow.operator import settings as settings_mod
from autoflow.runners import kube
from autoflow.runners.access import oauth2, probe, redact
from autoflow.runners.job import integrations as kube_integrations

log = logging.getLogger("autoflow.operator.integrations")

GROUP, VERSION = meta.GROUP, meta.VERSION


def _model(intg: meta.JSONDict) -> integration.Integration | None:
    try:
        return integration.Integration.model_validate(
            {k: intg[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in intg}
        )
    except pydantic.ValidationError:
        return None


async def _health(ctx: context.Context, intg: meta.JSONDict, namespace: str) -> integrations.Health:
    """Probe the Integration as a runner would use it; never raises, never shows a secret."""
    redactor = redact.Redactor()
    model = _model(intg)
    name = (intg.get("metadata") or {}).get("name")
    if model is None:
        return integrations.Health(
            False, "InvalidSpec", f"integration {name!r} does not match the Integration schema"
        )
    provider = kube_integrations.KubeIntegrations(ctx.client, namespace, cache_seconds=0)
    timeout = ctx.settings.probe_timeout_seconds
    try:
        info = await provider.resolve(model, redactor)
        async with ctx.probing:
            result = await probe.check(info, redactor, timeout=timeout)
    except errors.AutoflowError as exc:  # reading its Secrets, or fetching an OAuth2 token
        result = probe.failed(name or "", exc, redactor)
    return integrations.Health(result.ready, result.reason, redactor.text(result.message))


async def _refresh_token(
    client: kube.Client, intg: meta.JSONDict, namespace: str, now: float
) -> tuple[integrations.Health | None, str | None]:
    """Refresh an authorization-code token that is due into the managed Secret.

    (a failed Health to report or None, when the stored token now expires).
    """
    model = _model(intg)
    spec = model.spec.oauth2 if model is not None else None
    if model is None or spec is None or not spec.token_secret_name:
        return None, None
    name = model.metadata.name or ""
    redactor = redact.Redactor()
    ref = model.spec.secret_ref
    creds = await _secret_data(client, namespace, ref.name if ref else None, redactor)
    managed = await _secret_data(client, namespace, spec.token_secret_name, redactor)
    # Before the first refresh the refresh token may sit beside the client secret.
    current = managed if managed else creds
    client_secret = creds.get("clientSecret")
    if client_secret is None:
        message = (
            f"integration {name!r}: the OAuth2 client secret (key clientSecret of its "
            "secretRef Secret) is missing"
        )
        return integrations.Health(False, "SecretMissing", message), None
    try:
        token = await oauth2.refresh_if_due(
            spec,
            client_secret,
            current,
            integration_name=name,
            now=now,
            margin_seconds=integrations.REFRESH_MARGIN,
        )
    except errors.ConnectorError as exc:
        return integrations.Health(False, "TokenRefreshFailed", redactor.text(exc.message)), None
    if token is None:
        return None, _token_expiry(current)
    data = token.to_secret_data()
    await _write_token_secret(client, intg, spec.token_secret_name, data)
    log.info("refreshed the OAuth2 token of integration %s/%s", namespace, name)
    return None, _token_expiry(data)


async def _secret_data(
    client: kube.Client, namespace: str, name: str | None, redactor: redact.Redactor
) -> dict[str, str]:
    if not name:
        return {}
    obj = await client.get_or_none(kube.paths.secret(namespace, name))
    if obj is None:
        return {}
    values = kube_integrations.decode_secret(obj)
    for value in values.values():
        redactor.add(value)
    return values


async def _write_token_secret(
    client: kube.Client, intg: meta.JSONDict, name: str, data: dict[str, str]
) -> None:
    meta_ = intg["metadata"]
    namespace = meta_["namespace"]
    try:
        await client.patch(kube.paths.secret(namespace, name), {"stringData": data})
        return
    except kube.NotFound:
        pass
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "autoflow",
                "autoflow.dev/integration": meta_["name"],
            },
            "ownerReferences": [meta.owner_reference(intg, "Integration", controller=False)],
        },
        "stringData": data,
    }
    await client.create(kube.paths.secret(namespace), secret)


def _token_expiry(data: dict[str, str]) -> str | None:
    token = oauth2.Token.from_secret_data(data)
    if token is None or token.expires_at is None:
        return None
    return integrations.iso(token.expires_at.timestamp())


async def integration_tick(
    body: kopf.Body, namespace: str | None, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    ctx = context.of(memo)
    intg = dict(body)
    ns = namespace or ""
    now = time.time()
    failure, expiry = None, None
    if integrations.refresh_due(intg, now):
        failure, expiry = await _refresh_token(ctx.client, intg, ns, now)
        if failure is None and expiry != (intg.get("status") or {}).get("tokenExpiresAt"):
            patch.status["tokenExpiresAt"] = expiry
    if failure is None and not integrations.due(intg, now):
        return
    old = intg.get("status") or {}
    with metrics.reconciling("Integration"):
        if failure is None and not integrations.enabled(intg):
            status = integrations.disabled_status(intg, now)
        else:
            status = integrations.probe_status(intg, failure or await _health(ctx, intg, ns), now)
    patch.status.update(status)
    posting.post(intg, integrations.event_for(old, status))


def register(registry: kopf.OperatorRegistry, settings: settings_mod.Settings) -> None:
    """Add the Integrations' timer to ``registry``, ticking as often as the settings say."""
    interval = settings.integration_tick_seconds
    kopf.timer(GROUP, VERSION, "integrations", interval=interval, registry=registry)(
        integration_tick
    )
