"""Webhook signature checks against each scheme's published examples, and their refusals.

- Standard Webhooks: the test vector of the specification (github.com/standard-webhooks/
  standard-webhooks, spec/standard-webhooks.md and the libraries' "sign function works"
  test): secret ``whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw``, id ``msg_p5jXN8AQM9LWM0D4loKWxJek``,
  timestamp 1614265330, body ``{"test": 2432232314}``.
- GitHub: docs.github.com, "Validating webhook deliveries", "Testing the webhook payload
  validation": secret ``It's a Secret to Everybody``, payload ``Hello, World!``, signature
  ``sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17``.
- Stripe: docs.stripe.com/webhooks, "Verify signatures manually": ``Stripe-Signature:
  t=<timestamp>,v1=<signature>`` where v1 is the hex HMAC-SHA256 of ``<t>.<payload>`` with
  the endpoint's ``whsec_`` secret as the key (used as is), other schemes (v0) ignored, several
  v1 during a secret roll, a tolerance (5 minutes by default) against replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest

from autoflow.crds import webhook
from autoflow.runners.gateway import auth

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIME = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

STRIPE_SECRET = "whsec_test_secret"


def check(scheme: dict[str, Any], secret: str | None) -> auth.Verifier:
    return auth.verifier_for(webhook.WebhookAuth.model_validate(scheme), secret)


def refused(verifier: auth.Verifier, body: bytes, headers: dict[str, str], now: float) -> str:
    with pytest.raises(auth.Refused) as caught:
        verifier.verify(body, headers, now)
    assert caught.value.status == 401
    return caught.value.reason


def sw_headers(signature: str = SW_SIGNATURE, stamp: int = SW_TIME) -> dict[str, str]:
    return {"webhook-id": SW_ID, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def test_standard_webhooks_vector_verifies() -> None:
    verifier = check({"standardWebhooks": {}}, SW_SECRET)
    verifier.verify(SW_BODY, sw_headers(), SW_TIME + 10)
    # During a secret rotation the sender signs with both: any one matching is enough.
    verifier.verify(SW_BODY, sw_headers(f"v1,bm90IHRoaXMgb25l {SW_SIGNATURE}"), SW_TIME)


def test_standard_webhooks_refusals() -> None:
    verifier = check({"standardWebhooks": {"tolerance": "1m"}}, SW_SECRET)
    assert refused(verifier, SW_BODY + b" ", sw_headers(), SW_TIME) == "bad signature"
    assert refused(verifier, SW_BODY, sw_headers(), SW_TIME + 61) == (
        "timestamp outside the replay window"
    )
    assert refused(verifier, SW_BODY, sw_headers(), SW_TIME - 61) == (
        "timestamp outside the replay window"
    )
    # The timestamp is signed: moving it into the window breaks the signature.
    assert refused(verifier, SW_BODY, sw_headers(stamp=SW_TIME + 30), SW_TIME + 30) == (
        "bad signature"
    )
    missing = refused(verifier, SW_BODY, {"webhook-id": SW_ID}, SW_TIME)
    assert missing.startswith("missing signature")
    other = check({"standardWebhooks": {}}, "whsec_" + base64.b64encode(b"other").decode())
    assert refused(other, SW_BODY, sw_headers(), SW_TIME) == "bad signature"


def test_standard_webhooks_secret_must_be_base64() -> None:
    with pytest.raises(ValueError, match="whsec_ and base64"):
        check({"standardWebhooks": {}}, "whsec_not base64!")


def test_github_docs_example_verifies() -> None:
    verifier = check({"hmac": {"preset": "github"}}, GITHUB_SECRET)
    verifier.verify(GITHUB_BODY, {"x-hub-signature-256": GITHUB_SIGNATURE}, 0)
    # Upper-case hex is the same digest.
    verifier.verify(
        GITHUB_BODY, {"x-hub-signature-256": "sha256=" + GITHUB_SIGNATURE[7:].upper()}, 0
    )
    assert refused(verifier, b"Hello, World?", {"x-hub-signature-256": GITHUB_SIGNATURE}, 0) == (
        "bad signature"
    )
    assert refused(verifier, GITHUB_BODY, {"x-hub-signature": GITHUB_SIGNATURE}, 0) == (
        "missing signature (x-hub-signature-256)"
    )
    wrong_prefix = {"x-hub-signature-256": "sha1=" + GITHUB_SIGNATURE[7:]}
    assert refused(verifier, GITHUB_BODY, wrong_prefix, 0) == "bad signature"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("fmt", ["hex", "base64"])
def test_hmac_header_algorithm_format_prefix(algorithm: str, fmt: str) -> None:
    digest = hmac.new(b"s3cret", b"payload", algorithm).digest()
    text = digest.hex() if fmt == "hex" else base64.b64encode(digest).decode()
    scheme = {
        "hmac": {"header": "X-Signature", "algorithm": algorithm, "format": fmt, "prefix": "v0="}
    }
    verifier = check(scheme, "s3cret")
    verifier.verify(b"payload", {"x-signature": f"v0={text}"}, 0)
    assert refused(verifier, b"payload", {"x-signature": text}, 0) == "bad signature"


def stripe_header(body: bytes, stamp: int, secret: str = STRIPE_SECRET) -> str:
    signed = f"{stamp}.".encode() + body
    v1 = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={v1},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"


def test_stripe_scheme() -> None:
    body = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'
    verifier = check({"hmac": {"preset": "stripe"}}, STRIPE_SECRET)
    verifier.verify(body, {"stripe-signature": stripe_header(body, 1_700_000_000)}, 1_700_000_100)
    # A secret roll: two v1 signatures, one with the old secret.
    rolled = (
        stripe_header(body, 1_700_000_000, "whsec_old")
        + ","
        + stripe_header(body, 1_700_000_000).split(",")[1]
    )
    verifier.verify(body, {"stripe-signature": rolled}, 1_700_000_000)
    assert (
        refused(
            verifier, body, {"stripe-signature": stripe_header(body, 1_700_000_000)}, 1_700_000_301
        )
        == "timestamp outside the replay window"
    )
    assert (
        refused(
            verifier,
            body + b"x",
            {"stripe-signature": stripe_header(body, 1_700_000_000)},
            1_700_000_000,
        )
        == "bad signature"
    )
    only_v0 = {"stripe-signature": "t=1700000000,v0=abc"}
    assert "needs t= and v1=" in refused(verifier, body, only_v0, 1_700_000_000)
    longer = check({"hmac": {"preset": "stripe", "tolerance": "10m"}}, STRIPE_SECRET)
    longer.verify(body, {"stripe-signature": stripe_header(body, 1_700_000_000)}, 1_700_000_500)


def test_bearer_and_basic() -> None:
    bearer = check({"bearer": {}}, "tok")
    bearer.verify(b"", {"authorization": "Bearer tok"}, 0)
    bearer.verify(b"", {"authorization": "bearer tok"}, 0)
    assert refused(bearer, b"", {"authorization": "Bearer tok2"}, 0) == "bad credentials"
    assert "expected Authorization: Bearer" in refused(
        bearer, b"", {"authorization": "Basic dG9r"}, 0
    )
    own_header = check({"bearer": {"header": "X-Token"}}, "tok")
    own_header.verify(b"", {"x-token": "tok"}, 0)

    basic = check({"basic": {"username": "shop"}}, "pw")
    good = base64.b64encode(b"shop:pw").decode()
    basic.verify(b"", {"authorization": f"Basic {good}"}, 0)
    for pair in (b"shop:pw2", b"shops:pw", b"shop"):
        header = {"authorization": "Basic " + base64.b64encode(pair).decode()}
        assert refused(basic, b"", header, 0) == "bad credentials"
    assert refused(basic, b"", {"authorization": "Basic !!!"}, 0) == "bad credentials"
    assert refused(basic, b"", {}, 0) == "missing credentials (Authorization: Basic)"


def test_none_checks_nothing() -> None:
    check({"none": True}, None).verify(b"anything", {}, 0)
