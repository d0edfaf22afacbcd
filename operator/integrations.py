"""Integration health as pure functions: when to probe next, and the status a probe result makes.

The operator probes each Integration on a timer (``integration_handlers``); these functions
decide, from the Integration and the clock, whether a probe is due and what to write::

    due(intg, now)              a spec change, a requested check, or the next check time passed
    next_check(intg, ok, n, now) the interval with ±10 % jitter after a success; after n failures
                                 in a row 15 s, 30 s, 1 m, ... (doubling) up to the larger of the
                                 interval and 10 minutes: quick to see a recovery, gentle on a
                                 system that stays down
    probe_status(intg, health, now)  Ready (reason, message), lastCheckTime, nextCheckTime,
                                 consecutiveFailures, observedGeneration
    event_for(old, new)         an Event when Ready changes (or a failure's reason changes)

Jitter is derived from the Integration's uid and the check time, so a restarted operator
computes the same schedule, and many Integrations created together spread their probes.
A user (or the web UI) asks for a probe now by setting the annotation
``autoflow.dev/check-requested-at`` to the current time (RFC 3339).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from autoflow.crds import conditions, meta
from autoflow.operator import events

READY = "Ready"
CHECK_REQUESTED = "autoflow.dev/check-requested-at"
DEFAULT_INTERVAL = 300.0
JITTER = 0.1
BACKOFF_FIRST = 15.0
BACKOFF_CAP = 600.0
# An OAuth2 access token is refreshed this long before it expires.
REFRESH_MARGIN = 300.0
REFRESH_FAILURES = ("TokenRefreshFailed", "SecretMissing")


class Health(NamedTuple):
    """A probe's verdict, as ``runners.access.probe.check`` returns it."""

    ready: bool
    reason: str
    message: str


iso = meta.timestamp


def epoch(text: str | None) -> float | None:
    """Lenient: the check-requested annotation is written by people."""
    return meta.epoch(text, lenient=True)


def _check(intg: meta.JSONDict) -> meta.JSONDict:
    return ((intg.get("spec") or {}).get("healthCheck")) or {}


def enabled(intg: meta.JSONDict) -> bool:
    return bool(_check(intg).get("enabled", True))


def interval(intg: meta.JSONDict) -> float:
    raw = _check(intg).get("interval")
    return meta.parse_duration(raw) if raw is not None else DEFAULT_INTERVAL


def _jitter(uid: str, at: float) -> float:
    """A factor in [1 - JITTER, 1 + JITTER], the same for the same object and check."""
    digest = hashlib.sha256(f"{uid}:{int(at)}".encode()).digest()
    return 1.0 + JITTER * (2 * int.from_bytes(digest[:4], "big") / 0xFFFFFFFF - 1)


def backoff(failures: int, every: float) -> float:
    """The wait before probing again after ``failures`` failed probes in a row."""
    return float(min(BACKOFF_FIRST * 2.0 ** (failures - 1), max(every, BACKOFF_CAP)))


def next_check(intg: meta.JSONDict, failures: int, now: float) -> float:
    uid = str((intg.get("metadata") or {}).get("uid") or "")
    wait = backoff(failures, interval(intg)) if failures else interval(intg)
    return now + wait * _jitter(uid, now)


def due(intg: meta.JSONDict, now: float) -> bool:
    """Whether the Integration should be probed now."""
    status = intg.get("status") or {}
    generation = (intg.get("metadata") or {}).get("generation")
    if status.get("observedGeneration") != generation:
        return True  # created or changed since the last check
    if not enabled(intg):
        return False
    last = epoch(status.get("lastCheckTime"))
    if last is None:
        return True
    annotations = (intg.get("metadata") or {}).get("annotations") or {}
    requested = epoch(annotations.get(CHECK_REQUESTED))
    if requested is not None and requested > last:
        return True
    upcoming = epoch(status.get("nextCheckTime"))
    return upcoming is None or now >= upcoming


def refresh_due(intg: meta.JSONDict, now: float) -> bool:
    """Whether to look at (and maybe refresh) the OAuth2 token in the managed Secret now.

    With every probe, and when ``tokenExpiresAt`` comes within the margin; otherwise the
    Secrets are not read at all. After a failed refresh the next try waits for the backoff.
    """
    oauth2 = (intg.get("spec") or {}).get("oauth2") or {}
    if oauth2.get("grantType") != "authorization_code" or not oauth2.get("tokenSecretName"):
        return False
    status = intg.get("status") or {}
    ready = conditions.get(status.get("conditions"), READY) or {}
    upcoming = epoch(status.get("nextCheckTime"))
    if ready.get("reason") in REFRESH_FAILURES and upcoming is not None and now < upcoming:
        return False
    if due(intg, now):
        return True  # with every probe: the Secret may hold new tokens (authorized again)
    expires = epoch(status.get("tokenExpiresAt"))
    return expires is not None and expires - REFRESH_MARGIN <= now


def probe_status(intg: meta.JSONDict, health: Health, now: float) -> meta.JSONDict:
    """The status after a probe (or after a failure that kept the probe from running)."""
    old = intg.get("status") or {}
    generation = (intg.get("metadata") or {}).get("generation")
    failures = 0 if health.ready else int(old.get("consecutiveFailures") or 0) + 1
    status = "True" if health.ready else "False"
    cond = conditions.set_condition(
        old.get("conditions"), READY, status, health.reason, health.message, generation, iso(now)
    )
    return {
        "observedGeneration": generation,
        "conditions": cond,
        "lastCheckTime": iso(now),
        "nextCheckTime": iso(next_check(intg, failures, now)),
        "consecutiveFailures": failures,
    }


def disabled_status(intg: meta.JSONDict, now: float) -> meta.JSONDict:
    """Health checks are off: Ready is Unknown (the metric drops the series), nothing probed."""
    old = intg.get("status") or {}
    generation = (intg.get("metadata") or {}).get("generation")
    cond = conditions.set_condition(
        old.get("conditions"),
        READY,
        "Unknown",
        "HealthCheckDisabled",
        "spec.healthCheck.enabled is false: the operator does not probe this integration",
        generation,
        iso(now),
    )
    return {
        "observedGeneration": generation,
        "conditions": cond,
        "nextCheckTime": None,
        "consecutiveFailures": 0,
    }


def event_for(old: meta.JSONDict, new: meta.JSONDict) -> events.Event | None:
    """Warning when an Integration stops being Ready (or fails for a new reason); Normal when
    it is Ready again. A probe that ends as the last one did posts nothing."""
    was = conditions.get(old.get("conditions"), READY) or {}
    now = conditions.get(new.get("conditions"), READY) or {}
    if now.get("status") == "True":
        if was.get("status") == "False":
            return events.Event("Normal", "Ready", now.get("message") or "the integration is ready")
        return None
    if now.get("status") != "False":
        return None
    if (was.get("status"), was.get("reason")) == ("False", now.get("reason")):
        return None
    return events.Event("Warning", now.get("reason") or "NotReady", now.get("message") or "")
