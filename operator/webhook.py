"""The validating admission webhook: a Workflow ``autoflow validate`` refuses is refused at once.

Served by the operator through kopf's admission support, so ``kubectl apply``, Helm and
Argo CD show the step and field to fix when they write, not later in a ``Ready`` condition::

    API server --AdmissionReview--> kopf's WebhookServer (HTTPS, this process)
        -> validate_workflow(body) -> workflows.validate(...)   # the code of `autoflow validate`
        -> refused with workflows.message(problems), or admitted

What is checked: everything ``autoflow validate`` checks (schema, DAG, connectors and their
parameters, expressions, sizes), with the same words as the ``Ready`` condition. Not
checked: whether the Integrations a step names exist; GitOps tools apply objects in any
order, so a missing Integration stays a ``Ready=False`` reason that heals when it appears.

Only writes that change the spec are judged: kopf's own annotations and finalizers, labels
and deletion always pass, so a Workflow that became invalid under an older operator can still
be handled and deleted. A bug in validation admits (and logs) rather than refuses: the
operator validates every Workflow again when it reconciles it.

Certificates and configuration (``register``): kopf's ``WebhookServer`` makes a self-signed
certificate at each start, and in managed mode kopf creates the ValidatingWebhookConfiguration
``AUTOFLOW_WEBHOOK_CONFIGURATION`` and patches its webhooks (client config and caBundle) at
each start, and empties them when the operator stops. In a cluster the API server reaches
the webhook through a Service (``AUTOFLOW_WEBHOOK_SERVICE``); without one, by URL (tests,
an operator run beside a local API server). The failure policy is ``Ignore`` unless
``AUTOFLOW_WEBHOOK_FAILURE_POLICY`` says ``Fail``: docs/install.md says why.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import AsyncIterator, Collection
from typing import Any

import aiohttp.web
import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from autoflow.crds import errors, meta
from autoflow.operator import settings as settings_mod
from autoflow.operator import workflows

log = logging.getLogger("autoflow.operator")

HANDLER_ID = "workflow"
# An AdmissionReview carries the object and, on updates, the old one: two Workflows of up to
# the API server's 3 MiB request limit, in JSON. aiohttp reads at most 1 MiB by default,
# and a review it cannot read is a webhook failure, which the failure policy Ignore admits.
MAX_REVIEW_BYTES = 16 * 1024 * 1024
CERT_DAYS = 3650  # made at each start, kept in memory: a long life costs nothing


class Refused(kopf.AdmissionError):
    """A Workflow that ``autoflow validate`` would refuse; the message names step and field."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=422)  # what the API server's own schema checks answer


def problems_of(body: dict[str, Any]) -> list[errors.Problem]:
    """What admission refuses a Workflow for: all ``autoflow validate`` finds."""
    return workflows.validate(body, integrations=None)[1]


def judged(operation: str | None, old: Any, new: Any) -> bool:
    """Whether a write is one to judge: a create, or an update that changes the spec of a
    Workflow that is not being deleted."""
    if operation == "CREATE":
        return True
    if operation != "UPDATE" or new is None:
        return False
    if (new.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return bool(old is None or old.get("spec") != new.get("spec"))


def validate_workflow(body: kopf.Body, **kwargs: Any) -> None:
    """kopf's validating handler: raises ``Refused`` for a Workflow to refuse."""
    if not judged(kwargs.get("operation"), kwargs.get("old"), kwargs.get("new")):
        return
    meta_ = body.get("metadata") or {}
    try:
        problems = problems_of(dict(body))
    except Exception:
        log.exception(
            "admission of workflow %s/%s failed; admitted, the reconcile will judge it",
            meta_.get("namespace"),
            meta_.get("name"),
        )
        return
    if problems:
        raise Refused(f"Workflow {meta_.get('name')} is invalid: {workflows.message(problems)}")


class Server(kopf.WebhookServer):
    """kopf's webhook server, reached through a Service when one is named.

    kopf's server announces itself by URL, which the API server resolves with its own DNS
    (usually not the cluster's); a ``service`` client config is resolved by the API server
    itself. Its self-signed certificate comes from ``cryptography`` (already a dependency,
    through authlib) instead of kopf's optional ``certbuilder``/``oscrypto``. It reads
    reviews of the largest Workflows (``MAX_REVIEW_BYTES``), not only aiohttp's 1 MiB.
    """

    def __init__(self, *, service: tuple[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for config in super().__call__(fn):
            if self.service is None:
                yield config
                continue
            namespace, name = self.service
            yield {
                "service": {
                    "namespace": namespace,
                    "name": name,
                    "port": self.port,
                    "path": self.path or "/",
                },
                "caBundle": config["caBundle"],
            }

    @staticmethod
    async def _serve(fn: Any, request: aiohttp.web.Request) -> aiohttp.web.Response:
        # kopf serves each review through this hook; only the body limit is ours.
        return await kopf.WebhookServer._serve(fn, request.clone(client_max_size=MAX_REVIEW_BYTES))

    @staticmethod
    def build_certificate(
        hostnames: Collection[str], password: str | None = None
    ) -> tuple[bytes, bytes]:
        """A self-signed certificate (its own CA) for ``hostnames``; (cert PEM, key PEM)."""
        ips, names = [], []
        for host in hostnames:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                names.append(host)
                continue
            if not ip.is_unspecified:
                ips.append(ip)
        common = names[0] if names else str(ips[0])
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(names)]
        sans += [x509.IPAddress(ip) for ip in dict.fromkeys(ips)]
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))  # clock skew
            .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256())
        )
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server(settings: settings_mod.Settings) -> Server:
    """The webhook server the settings describe."""
    service = settings.webhook_service_ref()
    host = settings.webhook_host or None
    extra: list[str] = []
    if service is not None:
        namespace, name = service
        host = f"{name}.{namespace}.svc"  # the name the API server checks the certificate for
        extra = [f"{name}.{namespace}.svc.cluster.local"]
    return Server(
        service=service,
        addr=settings.webhook_address,
        port=settings.webhook_port,
        host=host,
        extra_sans=extra,
    )


def register(registry: kopf.OperatorRegistry, settings: settings_mod.Settings) -> None:
    """Register the webhook's handler and, at startup, its server and managed configuration
    (only when ``AUTOFLOW_WEBHOOK_PORT`` is set: kopf refuses handlers without a server)."""
    kopf.on.validate(
        meta.GROUP,
        meta.VERSION,
        "workflows",
        id=HANDLER_ID,
        operations=["CREATE", "UPDATE"],
        ignore_failures=settings.webhook_failure_policy == "Ignore",
        registry=registry,
    )(validate_workflow)

    ours = settings

    @kopf.on.startup(registry=registry)
    async def webhook_startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = server(ours)
        settings.admission.managed = ours.webhook_configuration
