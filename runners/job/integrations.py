"""Integrations and their credentials read from the Kubernetes API, at the moment of use.

The Job runner resolves each step's Integration here, and the operator's health probe reads
the same way, so a Secret is interpreted once::

    GET integrations/<name>          ─► spec: type, settings, secretRef, oauth2, limits
    GET secrets/<secretRef.name>     ─► the keys a connector reads (secretRef.keys, if set,
                                         narrows them), base64-decoded, each reported to the
                                         run's Redactor as it is read
    GET secrets/<oauth2.tokenSecretName> ─► accessToken, refreshToken, expiresAt (kept fresh
                                         by the operator)

Objects are read on first use and kept for ``CACHE_SECONDS``, so a foreach of a thousand
items costs two reads, and a rotated Secret (or a refreshed token) is seen within that time.
A runner's access is narrowed to exactly these names (``operator.runs.render_runner_access``);
a refusal says which object the runner may not read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from autoflow.connectors import sdk
from autoflow.crds import errors, integration
from autoflow.runners import kube
from autoflow.runners.access import integrations as integrations_mod
from autoflow.runners.access import redact

CACHE_SECONDS = 15.0


def decode_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's ``data`` as text; values that are not UTF-8 are left out (never shown)."""
    values: dict[str, str] = {}
    for key, raw in (secret.get("data") or {}).items():
        try:
            values[key] = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
    return values


class SecretValues:
    """The keys of one Secret an Integration may read; missing keys name Secret and key."""

    def __init__(
        self,
        integration_name: str,
        secret_name: str | None,
        values: Mapping[str, str],
        redactor: redact.Redactor,
        allowed: list[str] | None = None,
        problem: str | None = None,
    ) -> None:
        self._integration = integration_name
        self._secret = secret_name
        self._values = values
        self._redactor = redactor
        self._allowed = allowed or []
        self._problem = problem

    def _where(self) -> errors.Where:
        return errors.Where(resource=f"Integration/{self._integration}", field="secretRef")

    def get(self, key: str) -> str:
        name = self._integration
        if self._secret is None:
            raise errors.MissingSecretError(
                f"integration {name!r} has no secretRef, and its connector needs secret {key!r}",
                self._where(),
            )
        if self._problem is not None:
            raise errors.MissingSecretError(self._problem, self._where())
        if self._allowed and key not in self._allowed:
            raise errors.PermanentError(
                f"integration {name!r} does not allow secret key {key!r} "
                f"(secretRef.keys: {', '.join(self._allowed)})",
                self._where(),
            )
        value = self._values.get(key)
        if value is None:
            raise errors.MissingSecretError(
                f"integration {name!r}: Secret {self._secret!r} has no key {key!r}",
                self._where(),
            )
        self._redactor.add(value)
        return value

    def keys(self) -> list[str]:
        return sorted(self._values)


class _Entry:
    __slots__ = ("at", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.at = time.monotonic()


def per_namespace(client: kube.Client) -> Callable[[str], KubeIntegrations]:
    """One provider per namespace, made when first asked for (a worker's, a gateway's)."""
    made: dict[str, KubeIntegrations] = {}

    def provider(namespace: str) -> KubeIntegrations:
        if namespace not in made:
            made[namespace] = KubeIntegrations(client, namespace)
        return made[namespace]

    return provider


class KubeIntegrations:
    """The runner's (and the probe's) integration provider for one namespace."""

    def __init__(
        self, client: kube.Client, namespace: str, *, cache_seconds: float = CACHE_SECONDS
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def _read(self, plural: str, name: str) -> dict[str, Any] | None:
        """The object, None when it does not exist; cached for ``cache_seconds``."""
        key = (plural, name)
        entry = self._cache.get(key)
        if entry is not None and time.monotonic() - entry.at < self._cache_seconds:
            return entry.value  # type: ignore[no-any-return]
        async with self._locks.setdefault(key, asyncio.Lock()):
            entry = self._cache.get(key)
            if entry is not None and time.monotonic() - entry.at < self._cache_seconds:
                return entry.value  # type: ignore[no-any-return]
            url = (kube.paths.integration if plural == "integrations" else kube.paths.secret)(
                self._namespace, name
            )
            try:
                value = await self._client.get_or_none(url)
            except (kube.Unauthorized, kube.Forbidden) as exc:
                kind = "Integration" if plural == "integrations" else "Secret"
                raise errors.PermanentError(
                    f"the runner may not read {kind} {self._namespace}/{name} "
                    f"(Kubernetes API: {exc.status} {exc.reason}); the operator grants "
                    "a run access to the Integrations its Workflow names and their "
                    "Secrets when the run starts"
                ) from None
            except kube.ApiError as exc:
                raise errors.RetryableError(
                    f"cannot read {plural[:-1]} {name!r}: Kubernetes API {exc.status} {exc.reason}"
                ) from None
            self._cache[key] = _Entry(value)
            return value

    async def resource(self, name: str) -> integration.Integration:
        obj = await self._read("integrations", name)
        if obj is None:
            raise errors.PermanentError(
                f"integration {name!r} not found in namespace {self._namespace!r}",
                errors.Where(resource=f"Integration/{name}"),
            )
        try:
            return integration.Integration.model_validate(obj)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise errors.PermanentError(
                f"integration {name!r} is not valid: {field}: {first['msg']}",
                errors.Where(resource=f"Integration/{name}", field=field),
            ) from None

    async def secret_values(
        self, intg: integration.Integration, secret_name: str | None, redactor: redact.Redactor
    ) -> SecretValues:
        """The Secret ``secret_name`` as the Integration's connector may read it."""
        name = intg.metadata.name or ""
        ref = intg.spec.secret_ref
        allowed = ref.keys if ref is not None and ref.name == secret_name else None
        if secret_name is None:
            return SecretValues(name, None, {}, redactor)
        obj = await self._read("secrets", secret_name)
        if obj is None:
            problem = (
                f"integration {name!r}: Secret {secret_name!r} not found in namespace "
                f"{self._namespace!r}"
            )
            return SecretValues(name, secret_name, {}, redactor, allowed, problem)
        return SecretValues(name, secret_name, decode_secret(obj), redactor, allowed)

    async def get(self, name: str, redactor: redact.Redactor) -> sdk.IntegrationInfo:
        return await self.resolve(await self.resource(name), redactor)

    async def resolve(
        self, intg: integration.Integration, redactor: redact.Redactor
    ) -> sdk.IntegrationInfo:
        """What a step (or the probe) sees of ``intg``, its Secrets read now."""
        ref = intg.spec.secret_ref
        secrets = await self.secret_values(intg, ref.name if ref else None, redactor)
        oauth = intg.spec.oauth2
        tokens = None
        if oauth is not None and oauth.token_secret_name:
            tokens = await self.secret_values(intg, oauth.token_secret_name, redactor)
        # The operator refreshes authorization-code tokens into the managed Secret; a runner
        # only reads them (a refresh here would spend a rotating refresh token).
        return await integrations_mod.resolve_info(
            intg, secrets, redactor, token_secrets=tokens, can_refresh=False
        )
