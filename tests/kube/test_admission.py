"""Admission of Workflows by the real kube-apiserver calling the operator's webhook.

The operator runs with its webhook on (``AUTOFLOW_WEBHOOK_PORT``) on loopback, where the
test API server (on this machine) reaches it by URL and trusts it through the caBundle kopf
writes into the ValidatingWebhookConfiguration it manages, under the RBAC of
``config/rbac/operator.yaml``. ``kubectl apply`` of what ``autoflow validate`` refuses is
refused with the step and field; a valid Workflow, and the largest one admitted, get their
``Ready`` condition (kopf's diff base stays under the annotation limit). The shared operator
of the tier runs without the webhook and is stopped meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apiserver as kube
import objects
import operator_process
import pytest
import yaml
from objects import condition, wait_for

CONFIGURATION = "autoflow-operator.autoflow.dev"  # config/rbac lets the operator patch it
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
CONFIGURATIONS = f"{ADMISSION}/validatingwebhookconfigurations"
WORKFLOWS = "/apis/autoflow.dev/v1alpha1/namespaces/{}/workflows"
KIB = 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _configuration(apiserver: kube.APIServer) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = apiserver.request("GET", f"{CONFIGURATIONS}/{CONFIGURATION}")
    except kube.APIError as exc:
        if exc.code == 404:
            return None
        raise
    return found


def _probe(namespace: str) -> dict[str, Any]:
    wf = objects.workflow("probe", steps=[{"id": "a", "uses": "nosuch.thing"}])
    return objects.placed(wf, namespace)


def _refused(apiserver: kube.APIServer, wf: dict[str, Any]) -> str | None:
    """The API server's refusal of a server-side dry-run create of ``wf``, or None."""
    try:
        apiserver.request(
            "POST",
            WORKFLOWS.format(wf["metadata"]["namespace"]),
            body=wf,
            params={"dryRun": "All"},
        )
    except kube.APIError as exc:
        return exc.message
    return None


def _wait_until_admission_judges(apiserver: kube.APIServer, namespace: str) -> None:
    """The API server calls the webhook once kopf has written the configuration and the
    server's informer has seen it: until then a write is admitted unjudged."""
    deadline = time.monotonic() + objects.TIMEOUT
    while _refused(apiserver, _probe(namespace)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no webhook judges Workflows: {_configuration(apiserver)}")
        time.sleep(0.1)


@pytest.fixture
def webhook_operator(
    apiserver: kube.APIServer,
    namespace: str,
    tmp_path: Path,
    _operator_process: operator_process.Operator,
) -> Iterator[operator_process.Operator]:
    _operator_process.stop()  # only this operator acts meanwhile
    op = operator_process.Operator(
        apiserver,
        kube.REPO / "config" / "rbac",
        tmp_path / "operator.log",
        env={
            "AUTOFLOW_WEBHOOK_PORT": str(_free_port()),
            "AUTOFLOW_WEBHOOK_ADDRESS": "127.0.0.1",
            "AUTOFLOW_WEBHOOK_CONFIGURATION": CONFIGURATION,
        },
    )
    op.install_rbac()
    op.start()
    try:
        _wait_until_admission_judges(apiserver, namespace)
        yield op
    finally:
        op.stop()
        log = op.log_since(0)
        print(log[-30000:])  # shown when the test failed
        # Whatever happened, leave no webhook behind for the tier's other tests.
        for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
            with contextlib.suppress(kube.APIError):
                apiserver.request("DELETE", f"{ADMISSION}/{kind}/{CONFIGURATION}")
    denied = operator_process.rbac_denials(log)
    assert not denied, f"the operator's RBAC refused: {denied}"


def kubectl_apply(apiserver: kube.APIServer, wf: dict[str, Any], namespace: str) -> Any:
    return apiserver.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(wf), check=False
    )


INVALID = [
    (
        [
            {"id": "a", "uses": "core.log", "with": {"message": "a"}, "needs": ["b"]},
            {"id": "b", "uses": "core.log", "with": {"message": "b"}, "needs": ["a"]},
        ],
        "step 'a', field 'needs': steps form a cycle: a → b → a",
    ),
    ([{"id": "a", "uses": "nosuch.thing"}], "step 'a', field 'uses': unknown connector 'nosuch'"),
    (
        [{"id": "a", "uses": "http.request", "with": {"url": "https://x", "timeout": []}}],
        "step 'a', field 'with.timeout': ",
    ),
    (
        [{"id": "a", "uses": "core.log", "with": {"message": "${ steps.zz.output }"}}],
        "step 'a', field 'with.message': unknown step 'zz' in expression",
    ),
    (
        [{"id": "a", "uses": "core.log", "with": {"message": "x" * 2_000_000}}],
        "step 'a', field 'with.message': inline value is 1.9 MiB; the limit is 256 KiB",
    ),
]


@pytest.mark.parametrize(
    ("steps", "message"),
    INVALID,
    ids=["cycle", "unknown-connector", "parameter-type", "unknown-step", "2-MB-value"],
)
def test_kubectl_apply_of_an_invalid_workflow_is_refused_naming_step_and_field(
    apiserver: kube.APIServer,
    namespace: str,
    webhook_operator: operator_process.Operator,
    steps: list[dict[str, Any]],
    message: str,
) -> None:
    wf = objects.workflow("orders", steps=steps)
    done = kubectl_apply(apiserver, wf, namespace)
    assert done.returncode != 0
    assert "denied the request: Workflow orders is invalid: " in done.stderr
    assert message in done.stderr
    with pytest.raises(kube.APIError) as missing:
        apiserver.get(objects.placed(wf, namespace))
    assert missing.value.code == 404


def test_a_valid_workflow_is_admitted_and_becomes_ready(
    apiserver: kube.APIServer, namespace: str, webhook_operator: operator_process.Operator
) -> None:
    wf = objects.workflow("orders")
    done = kubectl_apply(apiserver, wf, namespace)
    assert done.returncode == 0, done.stderr
    ready = wait_for(
        apiserver, objects.placed(wf, namespace), lambda w: bool(condition(w, "Ready"))
    )
    assert condition(ready, "Ready")["status"] == "True"
    # A spec change is judged too.
    bad = objects.workflow("orders", steps=[{"id": "a", "uses": "nosuch.thing"}])
    assert "unknown connector" in kubectl_apply(apiserver, bad, namespace).stderr


def test_the_managed_configuration_says_what_docs_install_says(
    apiserver: kube.APIServer, namespace: str, webhook_operator: operator_process.Operator
) -> None:
    configuration = _configuration(apiserver)
    assert configuration is not None
    (hook,) = configuration["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"  # so dry-runs (Argo CD's diff) are judged too
    (rule,) = hook["rules"]
    assert (rule["apiGroups"], rule["resources"]) == (["autoflow.dev"], ["workflows"])
    assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]
    assert hook["clientConfig"]["caBundle"]  # the operator's self-signed certificate
    # Stopped, the operator withdraws its webhook: nothing refuses Workflows then.
    webhook_operator.stop()
    assert not (_configuration(apiserver) or {}).get("webhooks")


def test_the_largest_workflow_admitted_gets_its_ready_condition(
    apiserver: kube.APIServer, namespace: str, webhook_operator: operator_process.Operator
) -> None:
    # Four values just under the 256 KiB a value may have: just under the 1 MiB a manifest
    # may have. kopf's diff base of it stored whole would pass the 256 KiB annotation limit.
    steps: list[dict[str, Any]] = [
        {"id": f"s{i}", "uses": "core.log", "with": {"message": chr(97 + i) * (250 * KIB)}}
        for i in range(4)
    ]
    wf = objects.placed(objects.workflow("big", steps=steps), namespace)
    assert len(json.dumps(wf)) > 1000 * KIB
    apiserver.apply(wf)
    done = wait_for(apiserver, wf, lambda w: bool(condition(w, "Ready")))
    assert condition(done, "Ready")["status"] == "True"
    stored = done["metadata"]["annotations"]["autoflow.dev/last-handled"]
    assert len(stored) < 64 * KIB
    # A change of a large value is still seen: the operator judges the new generation.
    steps[0]["with"]["message"] = "z" * (250 * KIB)
    apiserver.merge_patch(wf, {"spec": {"steps": steps}})
    again = wait_for(
        apiserver,
        wf,
        lambda w: condition(w, "Ready").get("observedGeneration") == w["metadata"]["generation"],
    )
    assert (again["metadata"]["generation"], condition(again, "Ready")["status"]) == (2, "True")
    assert again["metadata"]["annotations"]["autoflow.dev/last-handled"] != stored


def test_a_workflow_that_got_in_unjudged_is_still_handled_and_deleted(
    apiserver: kube.APIServer, namespace: str, webhook_operator: operator_process.Operator
) -> None:
    # In while the webhook was away (operator down, failurePolicy Ignore): kopf's own
    # annotation and status writes on it must pass, and so must its deletion.
    webhook_operator.stop()
    wf = objects.placed(
        objects.workflow("orders", steps=[{"id": "a", "uses": "nosuch.thing"}]), namespace
    )
    apiserver.apply(wf)
    webhook_operator.start()
    _wait_until_admission_judges(apiserver, namespace)
    done = wait_for(apiserver, wf, lambda w: bool(condition(w, "Ready")))
    assert condition(done, "Ready")["status"] == "False"
    assert "unknown connector 'nosuch'" in condition(done, "Ready")["message"]
    apiserver.merge_patch(wf, {"metadata": {"labels": {"team": "shop"}}})
    apiserver.delete(wf)
    objects.wait_gone(apiserver, wf)
