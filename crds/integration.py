"""The ``Integration`` resource: a connection to an outside system, with health and limits.

Credentials are never in the spec: ``secretRef`` names a Kubernetes Secret (or, for
``autoflow run`` on a laptop, environment variables) whose keys the connector reads at run time.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

import pydantic

from autoflow.crds import meta


class SecretRef(meta.Model):
    """A Secret in the same namespace; ``keys`` limits which of its keys the connector may read."""

    name: meta.Name
    keys: list[Annotated[str, pydantic.Field(max_length=253)]] = pydantic.Field(
        default_factory=list, max_length=32
    )


class OAuth2(meta.Model):
    """OAuth2 client settings; the client secret and tokens come from ``secretRef``."""

    grant_type: Literal["client_credentials", "authorization_code"] = pydantic.Field(
        description="client_credentials: the client's own access, no person involved; "
        "authorization_code: a person signs in at the provider and consents (Connect in the "
        "web UI, or `autoflow integrations authorize`)."
    )
    token_url: str = pydantic.Field(
        max_length=2048,
        title="Token URL",
        description="The provider's token endpoint, where the client gets access tokens.",
    )
    authorize_url: str | None = pydantic.Field(
        default=None,
        max_length=2048,
        title="Authorization URL",
        description="The provider's authorization endpoint, where a person consents; the "
        "authorization_code grant needs it.",
    )
    client_id: str = pydantic.Field(
        max_length=512,
        title="Client ID",
        description="The client (app) registered at the provider.",
    )
    scopes: list[Annotated[str, pydantic.Field(max_length=256)]] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description="The access asked for, in the provider's names (none: its default).",
    )
    token_secret_name: meta.Name | None = pydantic.Field(
        default=None, description="Managed Secret the operator writes refreshed tokens to."
    )
    client_auth_method: Literal["client_secret_basic", "client_secret_post"] = pydantic.Field(
        default="client_secret_basic",
        title="Client authentication",
        description="How the client authenticates at the token endpoint (RFC 6749 2.3.1): "
        "HTTP Basic, or client_id and client_secret in the form body.",
    )


class RateLimit(meta.Model):
    """At most ``requests`` calls every ``per``, shared by all runners."""

    requests: int = pydantic.Field(ge=1, le=1_000_000)
    per: meta.Duration = "1s"


class HealthCheck(meta.Model):
    """How often the operator probes the outside system to set the `Ready` condition."""

    interval: meta.Duration = "5m"
    enabled: bool = True


class IntegrationSpec(meta.Model):
    """The connector type, its settings, where its credentials are, and its limits."""

    type: str = pydantic.Field(max_length=63, pattern=r"^[a-z][a-z0-9_-]*$")
    description: str = pydantic.Field(default="", max_length=1024)
    settings: dict[str, Any] = pydantic.Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    secret_ref: SecretRef | None = None
    oauth2: OAuth2 | None = None
    rate_limit: RateLimit | None = None
    max_concurrency: int | None = pydantic.Field(default=None, ge=1, le=10000)
    health_check: HealthCheck | None = None


class IntegrationStatus(meta.Model):
    """Written by the operator: the result of the last health check."""

    observed_generation: int | None = None
    conditions: meta.Conditions
    last_check_time: datetime.datetime | None = None
    next_check_time: datetime.datetime | None = pydantic.Field(
        default=None, description="When the operator probes next (sooner after a spec change)."
    )
    consecutive_failures: int = pydantic.Field(
        default=0, ge=0, description="Failed probes in a row; the next probe backs off by it."
    )
    token_expires_at: datetime.datetime | None = pydantic.Field(
        default=None, description="When the OAuth2 access token in the managed Secret expires."
    )


class Integration(meta.Resource):
    """A connection to an outside system: connector type, settings, credentials, limits."""

    kind: Literal["Integration"] = "Integration"
    spec: IntegrationSpec
    status: IntegrationStatus | None = None
