"""Does a webhook request come from its sender? One verifier per ``auth`` scheme.

``verifier_for(auth, secret)`` builds the check once per route (a secret decoded once);
``Verifier.verify(body, headers, now)`` runs it per request and raises ``Refused`` with a
short reason that names no secret and quotes no signature. Every comparison of a secret or a
signature is constant-time (``hmac.compare_digest``); a request with several signatures
(Standard Webhooks during a secret rotation, Stripe's several ``v1``) is compared against
each of them.

    standardWebhooks  webhook-id / webhook-timestamp / webhook-signature: v1,<base64>
                      HMAC-SHA256 over "<id>.<timestamp>.<body>", key: whsec_<base64>
                      (signed by the ``standardwebhooks`` package; our replay window)
    hmac / github     X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>
    hmac / stripe     Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">
    hmac              <header>: <prefix><hex|base64 HMAC-<algorithm> of the body>
    bearer            Authorization: Bearer <token>  (or <header>: <token>)
    basic             Authorization: Basic base64(<username>:<password>)
    none              nothing to check

Header names in ``headers`` are lower case (as ASGI gives them).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import hmac
from collections.abc import Mapping
from typing import Protocol

from standardwebhooks import webhooks as standard

from autoflow.crds import meta, webhook

DEFAULT_TOLERANCE = 300.0  # seconds; Standard Webhooks' and Stripe's own default


class Refused(Exception):
    """The request is not accepted: ``status`` and a short ``reason`` for the sender."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Verifier(Protocol):
    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None: ...


def _unauthorized(reason: str) -> Refused:
    return Refused(401, reason)


@dataclasses.dataclass(frozen=True)
class NoCheck:
    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        return None


@dataclasses.dataclass(frozen=True)
class StandardWebhooks:
    """Standard Webhooks (standardwebhooks.com, spec.md "Signature scheme")."""

    signer: standard.Webhook
    tolerance: float

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        msg_id = headers.get("webhook-id")
        stamp = headers.get("webhook-timestamp")
        signatures = headers.get("webhook-signature")
        if not (msg_id and stamp and signatures):
            raise _unauthorized(
                "missing signature (webhook-id, webhook-timestamp, webhook-signature)"
            )
        when = _timestamp(stamp)
        _within(when, now, self.tolerance)
        expected = self.signer.sign(
            msg_id, datetime.datetime.fromtimestamp(when, datetime.UTC), body
        ).encode()
        if not _any_equal(expected, [s.encode() for s in signatures.split(" ") if s]):
            raise _unauthorized("bad signature")


@dataclasses.dataclass(frozen=True)
class Hmac:
    """An HMAC of the body in one header: ``<prefix><digest>``."""

    key: bytes
    header: str
    algorithm: str
    format: str
    prefix: str

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        given = headers.get(self.header)
        if not given:
            raise _unauthorized(f"missing signature ({self.header})")
        digest = hmac.new(self.key, body, self.algorithm).digest()
        text = digest.hex() if self.format == "hex" else base64.b64encode(digest).decode()
        if self.format == "hex":
            given = given[: len(self.prefix)] + given[len(self.prefix) :].lower()
        if not hmac.compare_digest((self.prefix + text).encode(), given.strip().encode()):
            raise _unauthorized("bad signature")


@dataclasses.dataclass(frozen=True)
class Stripe:
    """Stripe's scheme (docs.stripe.com/webhooks#verify-manually): ``Stripe-Signature:
    t=<timestamp>,v1=<signature>[,v1=...][,v0=...]``; v1 is HMAC-SHA256 over
    ``<t>.<body>`` in hex; other schemes (v0, test mode's) are ignored."""

    key: bytes
    tolerance: float

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        given = headers.get("stripe-signature")
        if not given:
            raise _unauthorized("missing signature (Stripe-Signature)")
        stamp, v1 = "", []
        for item in given.split(","):
            name, _, value = item.strip().partition("=")
            if name == "t":
                stamp = value
            elif name == "v1":
                v1.append(value.strip().lower().encode())
        if not stamp or not v1:
            raise _unauthorized("bad signature (Stripe-Signature needs t= and v1=)")
        _within(_timestamp(stamp), now, self.tolerance)
        expected = hmac.new(self.key, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not _any_equal(expected.encode(), v1):
            raise _unauthorized("bad signature")


@dataclasses.dataclass(frozen=True)
class Bearer:
    token: bytes
    header: str

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        given = headers.get(self.header)
        if not given:
            raise _unauthorized(f"missing credentials ({self.header})")
        if self.header == "authorization":
            scheme, _, given = given.partition(" ")
            if scheme.lower() != "bearer":
                raise _unauthorized("bad credentials (expected Authorization: Bearer)")
        if not hmac.compare_digest(self.token, given.strip().encode()):
            raise _unauthorized("bad credentials")


@dataclasses.dataclass(frozen=True)
class Basic:
    username: bytes
    password: bytes

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        given = headers.get("authorization", "")
        scheme, _, encoded = given.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise _unauthorized("missing credentials (Authorization: Basic)")
        try:
            user, _, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            raise _unauthorized("bad credentials") from None
        # Both compared, always: which one is wrong must not show in the time taken.
        same_user = hmac.compare_digest(self.username, user)
        same_password = hmac.compare_digest(self.password, password)
        if not (same_user and same_password):
            raise _unauthorized("bad credentials")


def _timestamp(text: str) -> float:
    try:
        return float(int(text.strip()))
    except ValueError:
        raise _unauthorized("bad signature timestamp") from None


def _within(when: float, now: float, tolerance: float) -> None:
    if abs(now - when) > tolerance:
        raise _unauthorized("timestamp outside the replay window")


def _any_equal(expected: bytes, given: list[bytes]) -> bool:
    found = False
    for candidate in given:  # no early exit: every candidate costs the same
        found |= hmac.compare_digest(expected, candidate)
    return found


HMAC_PRESETS = {
    "github": ("x-hub-signature-256", "sha256", "hex", "sha256="),
}


def verifier_for(auth: webhook.WebhookAuth, secret: str | None) -> Verifier:
    """The check of ``auth`` with its secret (None only for ``none``); ``ValueError`` when the
    secret cannot be used (a Standard Webhooks secret that is not ``whsec_<base64>``)."""
    if auth.none:
        return NoCheck()
    if secret is None:
        raise ValueError("no secret")
    key = secret.encode()
    if auth.standard_webhooks is not None:
        tolerance = meta.parse_duration(auth.standard_webhooks.tolerance)
        try:
            signer = standard.Webhook(secret)
        except (binascii.Error, ValueError, standard.EmptyWebhookSecretError):
            raise ValueError("a Standard Webhooks secret is whsec_ and base64") from None
        return StandardWebhooks(signer, tolerance)
    if auth.hmac is not None:
        spec = auth.hmac
        tolerance = meta.parse_duration(spec.tolerance) if spec.tolerance else DEFAULT_TOLERANCE
        if spec.preset == "stripe":
            return Stripe(key, tolerance)
        header, algorithm, fmt, prefix = HMAC_PRESETS.get(
            spec.preset or "", (spec.header or "", "sha256", "hex", "")
        )
        return Hmac(
            key,
            (spec.header or header).lower(),
            spec.algorithm or algorithm,
            spec.format or fmt,
            spec.prefix if spec.prefix is not None else prefix,
        )
    if auth.bearer is not None:
        return Bearer(key, auth.bearer.header.lower())
    if auth.basic is not None:
        return Basic(auth.basic.username.encode(), key)
    raise ValueError(f"unknown auth scheme {auth.schemes()}")
