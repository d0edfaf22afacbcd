"""The operator's admission webhook and bounded diff base, without a cluster.

Grouped by concern: kopf's diff base fit into its budget (``operator.diffbase``); which
writes the webhook judges and what it refuses a Workflow for (``operator.webhook``); its
self-signed certificate; its settings. tests/kube/test_admission.py runs both against a real
kube-apiserver.
"""

from __future__ import annotations

import json
import ssl
from typing import Any, cast

import hypothesis
import kopf
import pytest
from cryptography import x509
from hypothesis import strategies as st

from autoflow.operator import diffbase, webhook, workflows
from autoflow.operator import settings as settings_mod
from autoflow.runners.definitions import loader

# -- the diff base ----------------------------------------------------------------------------


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def big_workflow(values: int = 4, each: int = 250 * 1024) -> dict[str, Any]:
    steps = [
        {"id": f"s{i}", "uses": "core.log", "with": {"message": chr(97 + i) * each}}
        for i in range(values)
    ]
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "big", "namespace": "shop", "generation": 1},
        "spec": {"steps": steps},
    }


def test_a_small_value_is_kept_as_it_is() -> None:
    value = {"spec": {"steps": [{"id": "a", "uses": "core.log"}], "cancel": False}}
    assert diffbase.fit(value, 1000) is value


def test_the_largest_parts_become_digests_and_the_small_ones_stay() -> None:
    value = {"spec": {"cancel": True, "inputs": {"n": 1}, "steps": ["x" * 5000, "y" * 50]}}
    fitted = diffbase.fit(value, 1000)
    assert size(fitted) <= 1000
    assert fitted["spec"]["cancel"] is True and fitted["spec"]["inputs"] == {"n": 1}
    big, small = fitted["spec"]["steps"]
    assert big == diffbase.digest("x" * 5000) and small == "y" * 50


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=300),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=5), children, max_size=6)
    ),
    max_leaves=40,
)


@hypothesis.given(json_values, json_values, st.integers(min_value=80, max_value=2000))
def test_fitted_values_fit_and_differ_when_the_values_do(a: Any, b: Any, budget: int) -> None:
    fa, fb = diffbase.fit(a, budget), diffbase.fit(b, budget)
    assert size(fa) <= budget
    assert (fa == fb) == (a == b)


def body(raw: dict[str, Any]) -> kopf.Body:
    """kopf types a body as its RawBody TypedDict; the tests build plain dicts of that shape."""
    return kopf.Body(cast(kopf.RawBody, raw))


def test_the_diff_base_of_the_largest_workflow_fits_an_annotation() -> None:
    storage = diffbase.BoundedDiffBaseStorage(
        prefix="autoflow.dev", key="last-handled", ignored_fields=["metadata.annotations"]
    )
    raw = big_workflow()
    raw["spec"]["cancel"] = True  # (as a run's would be: small fields stay readable)
    essence = storage.build(body=body(raw))
    patch = kopf.Patch()
    storage.store(body=body(raw), patch=patch, essence=essence)
    stored = patch["metadata"]["annotations"]["autoflow.dev/last-handled"]
    assert len(stored.encode()) <= diffbase.BUDGET + 1 < 256 * 1024
    assert json.loads(stored)["spec"]["cancel"] is True
    # Read back, it is what the next build makes: no change is seen...
    stored_body = {**raw, "metadata": {**raw["metadata"], "annotations": {}}}
    stored_body["metadata"]["annotations"]["autoflow.dev/last-handled"] = stored
    assert storage.fetch(body=body(stored_body)) == storage.build(body=body(stored_body))
    # ... until a large value changes.
    raw["spec"]["steps"][2]["with"]["message"] += "!"
    assert storage.build(body=body(raw)) != essence


def test_a_workflow_within_the_budget_is_stored_as_kopf_stores_it() -> None:
    ours = diffbase.BoundedDiffBaseStorage(prefix="autoflow.dev", key="last-handled")
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix="autoflow.dev", key="last-handled")
    raw = big_workflow(values=2, each=100)
    assert ours.build(body=body(raw)) == kopfs.build(body=body(raw))


# -- what the webhook judges and refuses ------------------------------------------------------


def workflow(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "orders", "namespace": "shop", **meta},
        "spec": spec,
    }


VALID = {"steps": [{"id": "hello", "uses": "core.log", "with": {"message": "hi"}}]}


def test_creates_and_spec_changes_are_judged_other_writes_pass() -> None:
    old, new = workflow(VALID), workflow({"steps": []})
    assert webhook.judged("CREATE", None, old)
    assert webhook.judged("UPDATE", old, new)
    # kopf's annotations, finalizers, labels: the spec is the same
    assert not webhook.judged("UPDATE", old, {**old, "metadata": {"labels": {"a": "b"}}})
    # being deleted: its finalizers must be removable whatever its spec
    deleting = workflow({"steps": []}, deletionTimestamp="2026-03-01T09:00:00Z")
    assert not webhook.judged("UPDATE", old, deleting)
    assert not webhook.judged("DELETE", old, None)


@pytest.mark.parametrize(
    ("steps", "where"),
    [
        (
            [
                {"id": "a", "uses": "core.log", "with": {"message": "a"}, "needs": ["b"]},
                {"id": "b", "uses": "core.log", "with": {"message": "b"}, "needs": ["a"]},
            ],
            "field 'needs': steps form a cycle",
        ),
        ([{"id": "a", "uses": "nosuch.thing"}], "step 'a', field 'uses': unknown connector"),
        (
            [{"id": "a", "uses": "http.request", "with": {"url": "https://x", "timeout": []}}],
            "step 'a', field 'with.timeout'",
        ),
        (
            [{"id": "a", "uses": "core.log", "with": {"message": "${ steps.zz.output }"}}],
            "field 'with.message': unknown step 'zz'",
        ),
    ],
    ids=["cycle", "unknown-connector", "parameter-type", "unknown-step-in-expression"],
)
def test_the_webhook_refuses_what_validate_refuses_in_its_words(
    steps: list[dict[str, Any]], where: str
) -> None:
    wf = workflow({"steps": steps})
    problems = webhook.problems_of(wf)
    assert problems
    with pytest.raises(webhook.Refused) as refused:
        webhook.validate_workflow(body(wf), operation="CREATE", old=None, new=wf)
    assert str(refused.value) == f"Workflow orders is invalid: {workflows.message(problems)}"
    assert where in str(refused.value)
    assert refused.value.code == 422


def test_a_missing_integration_is_left_to_the_ready_condition() -> None:
    wf = workflow({"steps": [{"id": "get", "uses": "http.request", "integration": "shop"}]})
    wf["spec"]["steps"][0]["with"] = {"url": "https://shop.example/orders"}
    assert webhook.problems_of(wf) == []
    _, problems = workflows.validate(wf, integrations=[])
    assert [p.where.field for p in problems] == ["integration"]


def test_a_workflow_over_the_manifest_limit_is_refused_naming_its_size() -> None:
    wf = big_workflow(values=5, each=250 * 1024)
    (problem,) = webhook.problems_of(wf)
    assert problem.where.field == "spec"
    assert "1.2 MiB; a manifest must stay under 1.0 MiB" in problem.message
    assert webhook.problems_of(big_workflow()) == []  # the largest admitted


def test_a_bug_in_validation_admits(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(body: dict[str, Any]) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(webhook, "problems_of", broken)
    wf = workflow(VALID)
    webhook.validate_workflow(body(wf), operation="CREATE", old=None, new=wf)


def test_the_one_manifest_limit_is_the_loaders() -> None:
    assert loader.MAX_MANIFEST_BYTES == 1024 * 1024


# -- certificate and settings -----------------------------------------------------------------


def test_the_self_signed_certificate_serves_tls_for_its_names(tmp_path: Any) -> None:
    cert_pem, key_pem = webhook.Server.build_certificate(
        ["autoflow-operator-webhook.autoflow-system.svc", "0.0.0.0", "127.0.0.1"]
    )
    cert = x509.load_pem_x509_certificate(cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "autoflow-operator-webhook.autoflow-system.svc"
    ]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())  # the caBundle verifies it
    assert client.cert_store_stats()["x509_ca"] == 1
    assert b"ENCRYPTED" in webhook.Server.build_certificate(["h"], password="pw")[1]


def test_behind_a_service_the_certificate_names_the_service() -> None:
    settings = settings_mod.Settings(
        webhook_port=9443, webhook_service="autoflow-system/autoflow-operator-webhook"
    )
    server = webhook.server(settings)
    assert server.service == ("autoflow-system", "autoflow-operator-webhook")
    assert server.host == "autoflow-operator-webhook.autoflow-system.svc"
    assert server.port == 9443
    with pytest.raises(ValueError, match="namespace/name"):
        settings_mod.Settings(webhook_service="just-a-name").webhook_service_ref()
