"""Is an Integration usable? Its connector's health probe, turned into a Ready verdict.

The operator runs ``check`` on a timer for every Integration and writes the result into its
``Ready`` condition; ``autoflow integrations test`` runs it on a laptop. Both hand it what a
step would see of the Integration (``runners.integrations.info_for``) and the Redactor its
secrets were registered with as they were read::

    IntegrationInfo (type, settings, secrets) ─ registry: the connector named by type
    ─ its probe (sdk.Connector.probe), under a timeout ─► what it reached, or an error
    ─► Health(ready, reason, message): the message names the Integration, passed the Redactor

Reasons, as the ``Ready`` condition carries them:

    Ready=True   ProbeSucceeded        the probe reached the system with the credentials
                 NotProbed             the connector has no probe, or cannot probe without side
                                       effects (a webhook); nothing was contacted
    Ready=False  UnknownConnectorType  no connector is named like spec.type
                 InvalidSettings       settings (or a credential's form) cannot be used
                 SecretMissing         a credential the connector reads is not there
                 CredentialsRejected   the system refused the credentials
                 Unreachable           no connection, or the system cannot serve now (5xx)
                 Timeout               no answer within the timeout
                 ProbeFailed           anything else, with the connector's message
"""

from __future__ import annotations

import asyncio
import dataclasses

from autoflow.connectors import registry as registry_mod
from autoflow.connectors import sdk
from autoflow.crds import errors
from autoflow.runners.access import redact

PROBE_SUCCEEDED = "ProbeSucceeded"
NOT_PROBED = "NotProbed"
UNKNOWN_CONNECTOR_TYPE = "UnknownConnectorType"
INVALID_SETTINGS = "InvalidSettings"
SECRET_MISSING = "SecretMissing"
CREDENTIALS_REJECTED = "CredentialsRejected"
UNREACHABLE = "Unreachable"
TIMEOUT = "Timeout"
PROBE_FAILED = "ProbeFailed"

READY_REASONS = (PROBE_SUCCEEDED, NOT_PROBED)
NOT_READY_REASONS = (
    UNKNOWN_CONNECTOR_TYPE,
    INVALID_SETTINGS,
    SECRET_MISSING,
    CREDENTIALS_REJECTED,
    UNREACHABLE,
    TIMEOUT,
    PROBE_FAILED,
)

# Most specific first: each is a subclass of a later one's base.
_REASONS: tuple[tuple[type[errors.AutoflowError], str], ...] = (
    (errors.MissingSecretError, SECRET_MISSING),
    (errors.InvalidSettingsError, INVALID_SETTINGS),
    (errors.CredentialsRejectedError, CREDENTIALS_REJECTED),
    (errors.UnreachableError, UNREACHABLE),
)


@dataclasses.dataclass(frozen=True)
class Health:
    """A probe's verdict: ``reason`` is one of the names above, ``message`` is safe to show."""

    ready: bool
    reason: str
    message: str


async def check(
    info: sdk.IntegrationInfo,
    redactor: redact.Redactor,
    *,
    registry: registry_mod.Registry | None = None,
    timeout: float = 10.0,
) -> Health:
    """Probe the Integration ``info`` describes; never raises (but for cancellation)."""
    found = registry if registry is not None else registry_mod.default()
    if info.type not in found.integration_types():
        known = ", ".join(found.integration_types())
        return _verdict(
            info.name,
            False,
            UNKNOWN_CONNECTOR_TYPE,
            f"type {info.type!r} is not a connector (known: {known})",
            redactor,
        )
    try:
        connector = found.connector(registry_mod.connector_for_type(info.type))
    except errors.AutoflowError as exc:
        return failed(info.name, exc, redactor)
    if connector.health_probe is None:
        return _verdict(
            info.name,
            True,
            NOT_PROBED,
            f"settings read; the {info.type} connector has no health probe, so nothing was "
            "contacted",
            redactor,
        )
    limit = asyncio.timeout(timeout)
    try:
        with sdk.deadline(timeout):
            async with limit:
                result = await connector.health_probe.func(info)
    except TimeoutError as exc:
        # The deadline passed, or a wait of the connector's own gave up unmapped.
        text = f"no answer within {timeout:g}s" if limit.expired() else str(exc) or "timed out"
        return _verdict(info.name, False, TIMEOUT, f"{info.type}: {text}", redactor)
    except Exception as exc:
        return failed(info.name, exc, redactor)
    if isinstance(result, sdk.NotProbed):
        return _verdict(info.name, True, NOT_PROBED, result.message, redactor)
    return _verdict(info.name, True, PROBE_SUCCEEDED, result, redactor)


def failed(name: str, exc: Exception, redactor: redact.Redactor) -> Health:
    """The verdict for an error raised by a probe, or while reading the Integration's secrets."""
    reason = next((r for kind, r in _REASONS if isinstance(exc, kind)), PROBE_FAILED)
    if isinstance(exc, errors.AutoflowError):
        text = str(exc)
    else:
        # Not raised on purpose: a bug in the probe or a library error it did not map.
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _verdict(name, False, reason, text, redactor)


def _verdict(name: str, ready: bool, reason: str, text: str, redactor: redact.Redactor) -> Health:
    # Redacted before the text is made one line: a secret may span lines (a .creds file).
    text = " ".join(redactor.text(text).split())
    named = (f"integration {name!r}", f"Integration/{name},", f"Integration/{name}:")
    if not any(form in text for form in named):
        text = f"integration {name!r}: {text}"
    return Health(ready, reason, text)
