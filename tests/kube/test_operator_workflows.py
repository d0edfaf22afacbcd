"""The operator on Workflows: validation into the ``Ready`` condition, Events, Integrations.

The operator runs as a subprocess authenticated as its own ServiceAccount, under the RBAC of
``config/rbac/operator.yaml`` (fixture ``operator``), against the real API server. It judges
a Workflow with the same code as ``autoflow validate`` plus what only the cluster knows
(whether the Integrations it names exist), and says so in ``Ready``, whose message names the
step and field to fix.
"""

from __future__ import annotations

import json
from typing import Any

import apiserver as kube
import objects
import operator_process
import pytest
from objects import condition, wait_for


def observed(obj: dict[str, Any]) -> bool:
    """The operator has judged the current generation of the Workflow."""
    generation = obj["metadata"]["generation"]
    return bool(
        condition(obj, "Ready").get("observedGeneration") == generation
        and (obj.get("status") or {}).get("observedGeneration") == generation
    )


def test_a_valid_workflow_becomes_ready_for_each_generation(
    apiserver: kube.APIServer, namespace: str, operator: operator_process.Operator
) -> None:
    wf = apiserver.create(objects.workflow(), namespace=namespace)

    done = wait_for(apiserver, wf, observed)

    ready = condition(done, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Valid")
    assert done["status"]["observedGeneration"] == 1

    steps = [{"id": "greet", "uses": "core.log", "with": {"message": "hello"}}]
    changed = apiserver.merge_patch(wf, {"spec": {"steps": steps}})
    assert changed["metadata"]["generation"] == 2
    again = wait_for(apiserver, wf, observed)
    assert condition(again, "Ready")["status"] == "True"
    # still True: the transition time is the first one's
    assert condition(again, "Ready")["lastTransitionTime"] == ready["lastTransitionTime"]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            [
                {"id": "a", "uses": "core.set", "with": {"values": {"x": 1}}},
                {
                    "id": "b",
                    "uses": "core.log",
                    "needs": [],
                    "with": {"message": "${ steps.a.output.x }"},
                },
            ],
            ["step 'b'", "field 'with.message'", "'a' is not upstream"],
            id="reads-a-step-not-upstream",
        ),
        pytest.param(
            [{"id": "notify", "uses": "nosuch.post", "with": {"text": "hi"}}],
            ["step 'notify'", "field 'uses'", "unknown connector 'nosuch'"],
            id="unknown-connector",
        ),
    ],
)
def test_an_invalid_workflow_is_not_ready_naming_step_and_field_with_an_event(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    steps: list[dict[str, Any]],
    expected: list[str],
) -> None:
    # The API server accepts it: only the engine knows these rules.
    wf = apiserver.create(objects.workflow("broken", steps=steps), namespace=namespace)

    done = wait_for(apiserver, wf, observed)

    ready = condition(done, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Invalid")
    for fragment in expected:
        assert fragment in ready["message"]
    assert "Workflow/broken" not in ready["message"]  # the condition sits on it already
    (event,) = objects.events_about(apiserver, namespace, "broken", reason="Invalid")
    assert event["type"] == "Warning"
    assert event["involvedObject"]["kind"] == "Workflow"
    assert event["involvedObject"]["uid"] == wf["metadata"]["uid"]
    for fragment in expected:
        assert fragment in event["message"]
    assert event["source"]["component"] == "autoflow-operator"


def test_a_missing_integration_keeps_the_workflow_unready_until_it_exists(
    apiserver: kube.APIServer, namespace: str, operator: operator_process.Operator
) -> None:
    steps = [
        {"id": "fetch", "uses": "http.request", "integration": "shop", "with": {"url": "/orders"}}
    ]
    wf = apiserver.create(objects.workflow(steps=steps), namespace=namespace)

    missing = wait_for(apiserver, wf, observed)

    ready = condition(missing, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "IntegrationNotFound")
    assert "step 'fetch'" in ready["message"]
    assert "field 'integration'" in ready["message"]
    assert "'shop' does not exist" in ready["message"]
    assert objects.events_about(apiserver, namespace, "orders", reason="IntegrationNotFound")

    shop = apiserver.create(
        objects.integration("shop", settings={"baseUrl": "https://shop.example"}),
        namespace=namespace,
    )
    found = wait_for(apiserver, wf, lambda w: condition(w, "Ready").get("status") == "True")
    assert condition(found, "Ready")["reason"] == "Valid"

    apiserver.delete(shop)
    gone = wait_for(apiserver, wf, lambda w: condition(w, "Ready").get("status") == "False")
    assert condition(gone, "Ready")["reason"] == "IntegrationNotFound"


def test_the_operator_runs_as_its_service_account(
    apiserver: kube.APIServer, operator: operator_process.Operator
) -> None:
    # The kubeconfig it was started with holds the operator identity's token, not admin's...
    assert operator.env["KUBECONFIG"] == str(apiserver.kubeconfig("operator"))
    assert apiserver.identities["operator"].token in operator.kubeconfig.read_text()
    assert apiserver.identities["admin"].token not in operator.kubeconfig.read_text()
    # ...and the API server says who it is (a SelfSubjectReview the operator makes at start).
    log = operator.log_since(0)
    assert f"autoflow operator running as {operator_process.OPERATOR_USER}" in log
    # The operator fixture fails any test during which RBAC refused the operator something;
    # here its detector meets a real refusal, as the operator's JSON log would carry it.
    with pytest.raises(kube.APIError) as refused:
        apiserver.request("GET", "/api/v1/namespaces/default/secrets", user="operator")
    line = json.dumps({"message": f"Kubernetes API: 403 Forbidden: {refused.value.message}"})
    (denial,) = operator_process.rbac_denials(line)
    assert 'cannot list resource \\"secrets\\"' in denial


def test_the_operator_role_grants_no_more_than_listed(apiserver: kube.APIServer) -> None:
    # What the ServiceAccount may do is exactly config/rbac/operator.yaml: no wildcard, no
    # escalation verbs; Secrets only to read and to write the managed token Secret, never
    # to list, watch or delete.
    role = apiserver.request(
        "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/autoflow-operator"
    )
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
        if "secrets" in rule["resources"]:
            assert sorted(rule["verbs"]) == ["create", "get", "patch"]

    def allowed(verb: str, resource: str) -> bool:
        review = apiserver.request(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": apiserver.identities["operator"].user,
                    "groups": list(apiserver.identities["operator"].groups),
                    "resourceAttributes": {"verb": verb, "resource": resource, "namespace": "x"},
                },
            },
        )
        return bool(review["status"]["allowed"])

    assert allowed("get", "secrets")
    assert not allowed("list", "secrets") and not allowed("watch", "secrets")
    assert not allowed("delete", "secrets") and not allowed("get", "configmaps")
