"""Integration health scheduling and status as the operator computes them (pure functions).

The probes themselves run against real servers (tests/services/test_probes.py) and the
whole loop against a real API server (tests/kube/test_operator_integrations.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from autoflow.operator import integrations as intg_mod

NOW = 1_800_000_000.0
OK = intg_mod.Health(True, "ProbeSucceeded", "crm: 200 from GET /health")
DOWN = intg_mod.Health(False, "Unreachable", "crm: connection refused")
REJECTED = intg_mod.Health(False, "CredentialsRejected", "crm: 401 from GET /health")


def integration(
    status: dict[str, Any] | None = None,
    generation: int = 1,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Integration",
        "metadata": {
            "name": "crm",
            "namespace": "shop",
            "uid": "9b1c",
            "generation": generation,
            "annotations": annotations or {},
        },
        "spec": {"type": "http", **spec},
        "status": status or {},
    }


def after(intg: dict[str, Any], health: intg_mod.Health, at: float) -> dict[str, Any]:
    """The Integration as it is once the probe's status was written."""
    return {**intg, "status": intg_mod.probe_status(intg, health, at)}


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    (cond,) = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"]
    return dict(cond)


def test_a_new_integration_is_probed_at_once_and_then_after_its_interval() -> None:
    new = integration(healthCheck={"interval": "5m"})
    assert intg_mod.due(new, NOW)

    checked = after(new, OK, NOW)
    cond = ready(checked)
    assert (cond["status"], cond["reason"], cond["observedGeneration"]) == (
        "True",
        "ProbeSucceeded",
        1,
    )
    assert checked["status"]["lastCheckTime"] == intg_mod.iso(NOW)
    assert checked["status"]["consecutiveFailures"] == 0
    upcoming = intg_mod.epoch(checked["status"]["nextCheckTime"])
    assert upcoming is not None and 270 <= upcoming - NOW <= 330  # 5 min ± 10 % jitter
    assert not intg_mod.due(checked, NOW + 1)
    assert not intg_mod.due(checked, upcoming - 1)
    assert intg_mod.due(checked, upcoming)


def test_jitter_spreads_integrations_but_is_stable_for_one() -> None:
    nexts = set()
    for uid in range(50):
        intg = integration()
        intg["metadata"]["uid"] = f"uid-{uid}"
        nexts.add(intg_mod.next_check(intg, 0, NOW))
        assert intg_mod.next_check(intg, 0, NOW) == intg_mod.next_check(intg, 0, NOW)
    assert len(nexts) > 40
    assert min(nexts) - NOW >= 270 and max(nexts) - NOW <= 330


def test_a_failing_probe_backs_off_and_a_success_resets_it() -> None:
    intg = integration(healthCheck={"interval": "5m"})
    waits = []
    at = NOW
    for _ in range(8):
        intg = after(intg, DOWN, at)
        upcoming = intg_mod.epoch(intg["status"]["nextCheckTime"])
        assert upcoming is not None
        waits.append(upcoming - at)
        at = upcoming
    assert intg["status"]["consecutiveFailures"] == 8
    # 15 s, 30 s, 1 m, 2 m, 4 m, 8 m, then capped at 10 m (each ± 10 %)
    for wait, expected in zip(waits, [15, 30, 60, 120, 240, 480, 600, 600], strict=True):
        assert expected * 0.9 <= wait <= expected * 1.1, waits
    intg = after(intg, OK, at)
    assert intg["status"]["consecutiveFailures"] == 0
    upcoming = intg_mod.epoch(intg["status"]["nextCheckTime"])
    assert upcoming is not None and 270 <= upcoming - at <= 330


def test_backoff_never_caps_below_a_long_interval() -> None:
    assert intg_mod.backoff(20, 3600) == 3600
    assert intg_mod.backoff(1, 3600) == 15


def test_a_spec_change_or_a_requested_check_probes_at_once() -> None:
    checked = after(integration(), OK, NOW)
    assert not intg_mod.due(checked, NOW + 10)

    changed = {**checked, "metadata": {**checked["metadata"], "generation": 2}}
    assert intg_mod.due(changed, NOW + 10)

    asked = {**checked, "metadata": {**checked["metadata"], "annotations": {}}}
    asked["metadata"]["annotations"][intg_mod.CHECK_REQUESTED] = intg_mod.iso(NOW + 5)
    assert intg_mod.due(asked, NOW + 10)
    # An old request (before the last check) asks for nothing.
    asked["metadata"]["annotations"][intg_mod.CHECK_REQUESTED] = intg_mod.iso(NOW - 5)
    assert not intg_mod.due(asked, NOW + 10)


def test_disabled_health_checks_make_ready_unknown_and_are_not_probed() -> None:
    intg = integration(healthCheck={"enabled": False})
    assert intg_mod.due(intg, NOW)  # once, to say so
    status = intg_mod.disabled_status(intg, NOW)
    done = {**intg, "status": status}
    cond = ready(done)
    assert (cond["status"], cond["reason"]) == ("Unknown", "HealthCheckDisabled")
    assert not intg_mod.due(done, NOW + 3600)


def test_ready_transitions_post_one_event_each() -> None:
    first = after(integration(), OK, NOW)
    assert intg_mod.event_for({}, first["status"]) is None  # Ready from the start: quiet

    down = after(first, DOWN, NOW + 300)
    event = intg_mod.event_for(first["status"], down["status"])
    assert event == ("Warning", "Unreachable", "crm: connection refused")
    again = after(down, DOWN, NOW + 315)
    assert intg_mod.event_for(down["status"], again["status"]) is None
    rejected = after(again, REJECTED, NOW + 345)
    assert intg_mod.event_for(again["status"], rejected["status"]) == (
        "Warning",
        "CredentialsRejected",
        "crm: 401 from GET /health",
    )
    back = after(rejected, OK, NOW + 400)
    event = intg_mod.event_for(rejected["status"], back["status"])
    assert event is not None and (event.type, event.reason) == ("Normal", "Ready")


def test_lasttransitiontime_moves_only_when_ready_changes() -> None:
    down = after(integration(), DOWN, NOW)
    again = after(down, REJECTED, NOW + 60)
    assert ready(again)["lastTransitionTime"] == intg_mod.iso(NOW)
    back = after(again, OK, NOW + 120)
    assert ready(back)["lastTransitionTime"] == intg_mod.iso(NOW + 120)


OAUTH = {
    "grantType": "authorization_code",
    "tokenUrl": "https://login.example.com/token",
    "clientId": "autoflow",
    "tokenSecretName": "crm-tokens",
}


@pytest.mark.parametrize(
    ("expires_in", "wanted"),
    [(3600, False), (400, False), (299, True), (-10, True)],
)
def test_a_token_is_refreshed_within_the_margin_of_its_expiry(
    expires_in: float, wanted: bool
) -> None:
    checked = after(integration(oauth2=OAUTH), OK, NOW)
    checked["status"]["tokenExpiresAt"] = intg_mod.iso(NOW + expires_in)
    assert intg_mod.refresh_due(checked, NOW) is wanted


def test_token_refresh_needs_the_authorization_code_grant_and_a_managed_secret() -> None:
    assert not intg_mod.refresh_due(integration(), NOW)
    cc = {**OAUTH, "grantType": "client_credentials"}
    assert not intg_mod.refresh_due(integration(oauth2=cc), NOW)
    unmanaged = {k: v for k, v in OAUTH.items() if k != "tokenSecretName"}
    assert not intg_mod.refresh_due(integration(oauth2=unmanaged), NOW)
    assert intg_mod.refresh_due(integration(oauth2=OAUTH), NOW)  # expiry not read yet


def test_a_failed_refresh_waits_for_the_backoff_before_trying_again() -> None:
    failed = intg_mod.Health(False, "TokenRefreshFailed", "crm: refresh token rejected")
    down = after(integration(oauth2=OAUTH), failed, NOW)
    down["status"]["tokenExpiresAt"] = intg_mod.iso(NOW - 60)
    assert not intg_mod.refresh_due(down, NOW + 5)
    assert intg_mod.refresh_due(down, NOW + 20)
