"""Trigger types of a Workflow: ``webhook`` (an HTTP request to the gateway) and ``nats``.

A webhook trigger becomes a route of the gateway (``autoflow.runners.gateway``)::

    /hooks/<namespace><path>      path defaults to /<workflow name>
      ─ method in ``methods``                                  else 405
      ─ body no longer than ``maxBodyBytes``                   else 413
      ─ ``auth``: exactly one scheme, its secret from ``secretRef``   else 401
      ─ body parsed (JSON, form or text)                       else 400
      ─ ``inputs``: expressions over ``body``, ``headers``, ``query`` give the run's inputs
      ─ ``deliveryId`` (header or expression; a default per scheme) de-duplicates redeliveries
      ─ ``response``: ``async`` 202 with the run id, or ``sync`` the run's outputs

What a schema can say is said here (and so checked at admission, with CEL rules where a rule
spans fields); what needs the expression compiler or the workflow's outputs is checked by
``autoflow.runners.definitions.triggers``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from autoflow.crds import meta

PATH_PATTERN = r"^(/[A-Za-z0-9._~-]+)+$"
HEADER_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
# A NATS subject: dot-separated tokens, `*` one token, `>` the rest (last token only).
SUBJECT_PATTERN = r"^([^.\s*>]+|\*)(\.([^.\s*>]+|\*))*(\.>)?$|^>$"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024

Header = Annotated[str, pydantic.Field(min_length=1, max_length=128, pattern=HEADER_PATTERN)]
Method = Literal["POST", "PUT", "PATCH", "GET", "DELETE"]


def _post_only() -> list[Method]:
    return ["POST"]


class StandardWebhooksAuth(meta.Model):
    """Standard Webhooks signatures (standardwebhooks.com): headers ``webhook-id``,
    ``webhook-timestamp`` and ``webhook-signature``; the secret is the ``whsec_...`` one."""

    tolerance: meta.Duration = pydantic.Field(
        default="5m",
        description="The replay window: a timestamp further than this from now is refused.",
    )


class HmacAuth(meta.Model):
    """An HMAC of the body in a header, as most providers sign webhooks.

    ``preset: github`` is ``X-Hub-Signature-256: sha256=<hex>``; ``preset: stripe`` is
    ``Stripe-Signature: t=<unix time>,v1=<hex>`` over ``<t>.<body>`` with a replay window.
    Without a preset, ``header`` is required and ``algorithm``, ``format``, ``prefix`` say
    how the signature is written."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.preset) || has(self.header)",
                    "message": "hmac needs a header (or a preset: github, stripe)",
                }
            ]
        }
    )

    preset: Literal["github", "stripe"] | None = None
    header: Header | None = pydantic.Field(
        default=None, description="The header holding the signature (the preset's by default)."
    )
    algorithm: Literal["sha1", "sha256", "sha512"] | None = pydantic.Field(
        default=None, description="Hash of the HMAC; sha256 unless a preset says otherwise."
    )
    format: Literal["hex", "base64"] | None = pydantic.Field(
        default=None, description="How the digest is written; hex unless a preset says otherwise."
    )
    prefix: str | None = pydantic.Field(
        default=None, max_length=64, description="Text before the digest, such as `sha256=`."
    )
    tolerance: meta.Duration | None = pydantic.Field(
        default=None, description="Replay window of a timestamped scheme (stripe: 5m)."
    )


class BearerAuth(meta.Model):
    """``Authorization: Bearer <token>``; the token is the secret."""

    header: Header = pydantic.Field(
        default="Authorization",
        description="The header with `Bearer <token>` (another header may hold the bare token).",
    )


class BasicAuth(meta.Model):
    """HTTP Basic authentication; the password is the secret."""

    username: str = pydantic.Field(min_length=1, max_length=253)


class WebhookAuth(meta.Model):
    """How a request proves it comes from the sender: exactly one scheme."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.standardWebhooks) ? 1 : 0) + (has(self.hmac) ? 1 : 0)"
                    " + (has(self.bearer) ? 1 : 0) + (has(self.basic) ? 1 : 0)"
                    " + (has(self.none) ? 1 : 0) == 1",
                    "message": "auth sets exactly one of standardWebhooks, hmac, bearer, basic, "
                    "none",
                }
            ]
        }
    )

    standard_webhooks: StandardWebhooksAuth | None = None
    hmac: HmacAuth | None = None
    bearer: BearerAuth | None = None
    basic: BasicAuth | None = None
    none: Literal[True] | None = pydantic.Field(
        default=None,
        description="true: no authentication; anyone who can reach the gateway starts runs.",
    )

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> WebhookAuth:
        if len(self.schemes()) != 1:
            raise ValueError("auth sets exactly one of standardWebhooks, hmac, bearer, basic, none")
        return self

    def schemes(self) -> list[str]:
        found = {
            "standardWebhooks": self.standard_webhooks,
            "hmac": self.hmac,
            "bearer": self.bearer,
            "basic": self.basic,
            "none": self.none,
        }
        return [name for name, value in found.items() if value is not None]

    @property
    def scheme(self) -> str:
        """One of standardWebhooks, github, stripe, hmac, bearer, basic, none."""
        name = self.schemes()[0]
        if name == "hmac" and self.hmac is not None and self.hmac.preset:
            return self.hmac.preset
        return name


class SecretKeyRef(meta.Model):
    """One key of a Secret in the Workflow's namespace (locally: ``AUTOFLOW_SECRET_<NAME>_<KEY>``
    or the ``--secrets`` file's ``<name>: {<key>: ...}``)."""

    name: meta.Name
    key: str = pydantic.Field(
        default="secret", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$"
    )


class DeliveryId(meta.Model):
    """Where the sender's delivery id is, so a redelivery starts no second run."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.header) != has(self.expression)",
                    "message": "deliveryId sets exactly one of header or expression",
                }
            ]
        }
    )

    header: Header | None = None
    expression: str | None = pydantic.Field(
        default=None,
        max_length=4096,
        description="An expression over body, headers and query: ${ body.id }.",
    )


class WebhookResponse(meta.Model):
    """What the sender gets back: at once (``async``) or the run's outputs (``sync``)."""

    mode: Literal["async", "sync"] = pydantic.Field(
        default="async",
        description="async: 202 with the run id and status URL; sync: wait for the outputs.",
    )
    timeout: meta.Duration = pydantic.Field(
        default="30s",
        description="sync: how long to wait; after it the answer is 202 with the run id.",
    )
    output: str | None = pydantic.Field(
        default=None,
        max_length=253,
        description="sync: the workflow output that becomes the body (unset: all outputs).",
    )
    status_code: int = pydantic.Field(
        default=200, ge=200, le=299, description="sync: the status of a succeeded run's answer."
    )


class WebhookTrigger(meta.Model):
    """Start a run on an authenticated HTTP request to the gateway."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.auth.none) || has(self.secretRef)",
                    "message": "this auth scheme needs a secretRef (only auth.none goes without)",
                },
                {
                    "rule": "!(has(self.auth.none) && has(self.secretRef))",
                    "message": "auth.none takes no secretRef",
                },
            ]
        }
    )

    path: str | None = pydantic.Field(
        default=None,
        max_length=253,
        pattern=PATH_PATTERN,
        description="Served at /hooks/<namespace><path>; default /<workflow name>.",
    )
    methods: list[Method] = pydantic.Field(
        default_factory=_post_only,
        min_length=1,
        max_length=5,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    auth: WebhookAuth
    secret_ref: SecretKeyRef | None = None
    delivery_id: DeliveryId | None = pydantic.Field(
        default=None,
        description=(
            "Unset: webhook-id (standardWebhooks), X-GitHub-Delivery (github), the event id "
            "in the body (stripe), Idempotency-Key if sent (other schemes)."
        ),
    )
    max_body_bytes: int = pydantic.Field(default=DEFAULT_MAX_BODY_BYTES, ge=1, le=MAX_BODY_BYTES)
    inputs: dict[str, Any] | None = pydantic.Field(
        default=None,
        max_length=64,
        description=(
            "The run's inputs as expressions over body, headers (lower-case names) and query. "
            "Unset: the body's top-level keys that are declared inputs."
        ),
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    response: WebhookResponse = pydantic.Field(default_factory=WebhookResponse)

    @pydantic.model_validator(mode="after")
    def _secret_matches_auth(self) -> WebhookTrigger:
        if self.auth.none is None and self.secret_ref is None:
            raise ValueError("this auth scheme needs a secretRef (only auth.none goes without)")
        if self.auth.none is not None and self.secret_ref is not None:
            raise ValueError("auth.none takes no secretRef")
        return self

    def route(self, workflow_name: str) -> str:
        """The path under ``/hooks/<namespace>``."""
        return self.path or f"/{workflow_name}"


class NatsTrigger(meta.Model):
    """Start a run for each message on a NATS subject, read by a JetStream durable consumer."""

    subject: str = pydantic.Field(min_length=1, max_length=253, pattern=SUBJECT_PATTERN)
    stream: str | None = pydantic.Field(
        default=None, max_length=253, description="The JetStream stream (unset: found by subject)."
    )
    consumer: str | None = pydantic.Field(
        default=None,
        max_length=253,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The durable consumer's name; default autoflow-<namespace>-<workflow>.",
    )
    integration: meta.Name | None = pydantic.Field(
        default=None, description="A nats Integration with the connection (else the pool's)."
    )
    inputs: dict[str, Any] | None = pydantic.Field(
        default=None,
        max_length=64,
        description=(
            "The run's inputs as expressions over body (the data, parsed as JSON when it is), "
            "headers and subject. Unset: the body's top-level keys that are declared inputs."
        ),
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    delivery_id: DeliveryId | None = pydantic.Field(
        default=None, description="Unset: the Nats-Msg-Id header when the message has one."
    )
