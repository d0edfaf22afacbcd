"""The CRDs in a real kube-apiserver: what users see when they apply, read and patch resources.

``tests/test_crds.py`` checks the generated schemas offline; here the API server itself judges
them: the CRDs install, manifests come back as written (nothing pruned), invalid ones are
refused with a message that names the field, CEL transition rules hold, the status subresource
splits spec from status, printer columns show, and RBAC guards the resources.
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any

import apiserver as kube
import pytest
import yaml

from autoflow.crds import workflow as workflow_model

API_VERSION = "autoflow.dev/v1alpha1"
CRD_FILES = sorted((kube.REPO / "crds").glob("autoflow.dev_*.yaml"))
EXAMPLES = sorted((kube.REPO / "examples").glob("*.yaml"))
TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1"


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def workflow(name: str = "orders", **spec: Any) -> dict[str, Any]:
    """A small valid Workflow; keyword arguments replace spec fields."""
    body: dict[str, Any] = {
        "steps": [{"id": "fetch", "uses": "http.request", "with": {"url": "https://shop.example"}}]
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {**body, **spec},
    }


def workflow_run(name: str = "orders-1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": {"name": "orders"}, "inputs": {"orderId": "A-1"}, **spec},
    }


RUNNING = {
    "phase": "Running",
    "startedAt": "2025-03-01T09:00:00Z",
    "conditions": [
        {
            "type": "Succeeded",
            "status": "Unknown",
            "reason": "Running",
            "message": "1 of 2 steps done",
            "lastTransitionTime": "2025-03-01T09:00:00Z",
        }
    ],
    "steps": [{"id": "fetch", "phase": "Succeeded", "attempts": 1, "output": {"total": 12.5}}],
}


# -- installation ------------------------------------------------------------------------------


def test_every_crd_installs_and_is_established(apiserver: kube.APIServer) -> None:
    expected = {load(f)["metadata"]["name"] for f in CRD_FILES}
    assert expected == {
        "workflows.autoflow.dev",
        "workflowruns.autoflow.dev",
        "integrations.autoflow.dev",
        "schedules.autoflow.dev",
    }
    crds = apiserver.request(
        "GET",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        params={"labelSelector": "app.kubernetes.io/part-of=autoflow"},
    )["items"]
    assert {c["metadata"]["name"] for c in crds} == expected
    for crd in crds:
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True", crd["metadata"]["name"]
        assert conditions["NamesAccepted"] == "True", crd["metadata"]["name"]
    assert [w for w in apiserver.warnings if "customresourcedefinitions" in w] == []


# -- Workflows as written ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["client-side", "server-side"])
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_kubectl_apply_keeps_example_as_written(
    apiserver: kube.APIServer, namespace: str, example: Path, mode: str
) -> None:
    manifest = load(example)
    args = ["apply", "-n", namespace, "-f", str(example)]
    done = apiserver.kubectl(*args, *(["--server-side"] if mode == "server-side" else []))
    assert "Warning" not in done.stderr

    stored = apiserver.get(
        {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
    )
    assert stored["spec"] == manifest["spec"]


def test_every_field_of_a_rich_workflow_is_kept(apiserver: kube.APIServer, namespace: str) -> None:
    # Server-side apply with Strict field validation: a field missing from the schema is an
    # error naming it, and a schema that prunes would show up as a difference below.
    manifest = load(kube.REPO / "examples" / "order-triage.yaml")
    spec = manifest["spec"]
    spec["inputs"]["orders"]["enum"] = [{"any": ["shape", 1, None]}, "plain"]
    spec["triggers"] = [
        {
            "webhook": {
                "path": "/orders",
                "auth": {"hmac": {"preset": "stripe"}},
                "secretRef": {"name": "hook", "key": "signingSecret"},
                "deliveryId": {"expression": "${ body.id }"},
                "inputs": {"orders": "${ body.data.object }"},
                "response": {"mode": "sync", "timeout": "5s"},
            }
        },
        {"nats": {"subject": "shop.orders.>", "stream": "SHOP", "integration": "shop-nats"}},
    ]
    spec["steps"][0].update(
        ui={"x": 240.5, "y": -80},
        retry={"maxAttempts": 5, "initialDelay": "500ms", "maxDelay": "30s", "multiplier": 1.5},
        timeout=30,
        integration="shop-api",
        continueOnError=True,
    )
    spec["steps"][0]["with"]["extra"] = {"empty": {}, "none": None, "list": [1, 2.5, "x", [], {}]}
    spec["steps"][2]["if"] = True
    spec["steps"].append(
        {"id": "audit", "uses": "core.log", "needs": [], "foreach": ["a", {"b": 1}], "with": {}}
    )
    spec["onError"] = [{"id": "alert", "uses": "core.log", "with": {"message": "${ error }"}}]
    spec.update(
        timeout="5m",
        retry={"maxAttempts": 2},
        concurrency={"maxRuns": 10, "policy": "Queue"},
        runtime={
            "mode": "job",
            "image": "ghcr.io/example/autoflow:1.0",
            "serviceAccountName": "autoflow-runner",
            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "env": {"LOG_LEVEL": "info"},
        },
    )

    workflow_model.Workflow.model_validate(manifest)  # what users may write, no more

    stored = apiserver.apply(manifest, namespace=namespace)

    assert stored["spec"] == spec
    assert apiserver.get(stored)["spec"] == spec


# -- Workflows refused -------------------------------------------------------------------------


def _spec(**changes: Any) -> Any:
    def change(spec: dict[str, Any]) -> None:
        spec.update(copy.deepcopy(changes))

    return change


def _step(**changes: Any) -> Any:
    def change(spec: dict[str, Any]) -> None:
        spec["steps"][0].update(copy.deepcopy(changes))

    return change


def _drop_steps(spec: dict[str, Any]) -> None:
    del spec["steps"]


FETCH = {"id": "fetch", "uses": "http.request"}
WEBHOOK = {"path": "/orders", "auth": {"none": True}}
NATS = {"subject": "shop.orders"}
SECRET = {"secretRef": {"name": "hook"}}
NO_FOREACH_CEL = (
    "the CRD cannot say it: `foreach` is untyped (preserve-unknown-fields), so CEL cannot see "
    "it; only the pydantic model (autoflow validate, the operator) refuses this step"
)

INVALID = [
    pytest.param(
        _step(uses="Slack Post"), ["spec.steps[0].uses", "should match"], id="uses-pattern"
    ),
    pytest.param(
        _spec(steps=[FETCH, FETCH]), ["spec.steps[1]", "Duplicate value", "fetch"], id="dup-id"
    ),
    pytest.param(_drop_steps, ["spec.steps", "Required value"], id="missing-steps"),
    pytest.param(_spec(steps=[]), ["spec.steps", "at least 1 items"], id="no-steps"),
    pytest.param(
        _step(needs=["fetch"]), ["spec.steps[0]", "a step cannot need itself"], id="needs-itself"
    ),
    pytest.param(
        _spec(triggers=[{"webhook": WEBHOOK, "nats": NATS}]),
        ["spec.triggers[0]", "a trigger sets exactly one of webhook or nats"],
        id="trigger-webhook-and-nats",
    ),
    pytest.param(
        _spec(triggers=[{}]),
        ["spec.triggers[0]", "a trigger sets exactly one of webhook or nats"],
        id="trigger-empty",
    ),
    pytest.param(
        _spec(triggers=[{"webhook": {"auth": {"bearer": {}, "none": True}}}]),
        ["spec.triggers[0].webhook.auth", "auth sets exactly one of"],
        id="webhook-two-auth-schemes",
    ),
    pytest.param(
        _spec(triggers=[{"webhook": {"auth": {"standardWebhooks": {}}}}]),
        ["spec.triggers[0].webhook", "this auth scheme needs a secretRef"],
        id="webhook-signature-without-secret",
    ),
    pytest.param(
        _spec(triggers=[{"webhook": {"auth": {"hmac": {"algorithm": "sha256"}}, **SECRET}}]),
        ["spec.triggers[0].webhook.auth.hmac", "hmac needs a header"],
        id="hmac-without-header",
    ),
    pytest.param(
        _step(concurrency=4),
        ["spec.steps[0]", "concurrency applies to foreach steps only"],
        id="concurrency-without-foreach",
        marks=pytest.mark.xfail(strict=True, reason=NO_FOREACH_CEL),
    ),
]


@pytest.mark.parametrize(("change", "expected"), INVALID)
def test_invalid_workflow_is_refused_naming_the_field(
    apiserver: kube.APIServer, namespace: str, change: Any, expected: list[str]
) -> None:
    manifest = workflow()
    change(manifest["spec"])

    with pytest.raises(kube.APIError) as refused:
        apiserver.create(manifest, namespace=namespace)

    assert refused.value.code == 422, refused.value
    for fragment in expected:
        assert fragment in refused.value.message


def test_duplicate_step_id_is_refused_by_server_side_apply(
    apiserver: kube.APIServer, namespace: str
) -> None:
    # Server-side apply merges by the list's key before validation runs, so the refusal comes
    # from the merge (an HTTP 500 in Kubernetes 1.36), not from the 422 validation of create.
    manifest = workflow(steps=[FETCH, {**FETCH, "uses": "core.log"}])

    with pytest.raises(kube.APIError) as refused:
        apiserver.apply(manifest, namespace=namespace)

    assert '.spec.steps: duplicate entries for key [id="fetch"]' in refused.value.message


def test_misspelt_field_is_refused_not_dropped(apiserver: kube.APIServer, namespace: str) -> None:
    manifest = workflow()
    manifest["spec"]["steps"][0]["continueOnErorr"] = True

    done = apiserver.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest), check=False
    )

    assert done.returncode != 0
    assert 'unknown field "spec.steps[0].continueOnErorr"' in done.stderr


# -- WorkflowRuns: transition rules and the status subresource ---------------------------------


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"workflowRef": {"name": "other"}}, "workflowRef is immutable"),
        ({"inputs": {"orderId": "A-2"}}, "inputs are immutable"),
        ({"inputs": None}, "inputs are immutable"),
    ],
    ids=["workflowRef", "inputs-changed", "inputs-removed"],
)
def test_run_spec_is_immutable(
    apiserver: kube.APIServer, namespace: str, patch: dict[str, Any], message: str
) -> None:
    run = apiserver.create(workflow_run(), namespace=namespace)

    with pytest.raises(kube.APIError) as refused:
        apiserver.merge_patch(run, {"spec": patch})

    assert refused.value.code == 422
    assert "spec" in refused.value.message
    assert message in refused.value.message
    assert apiserver.get(run)["spec"] == run["spec"]


def test_a_cancelled_run_cannot_be_uncancelled(apiserver: kube.APIServer, namespace: str) -> None:
    run = apiserver.create(workflow_run(), namespace=namespace)
    apiserver.merge_patch(run, {"spec": {"cancel": False}})  # unset -> false: allowed
    cancelled = apiserver.merge_patch(run, {"spec": {"cancel": True}})
    assert cancelled["spec"]["cancel"] is True

    for undo in (False, None):
        with pytest.raises(kube.APIError) as refused:
            apiserver.merge_patch(run, {"spec": {"cancel": undo}})
        assert refused.value.code == 422
        assert "a cancelled run cannot be un-cancelled" in refused.value.message
    assert apiserver.get(run)["spec"]["cancel"] is True


def test_status_is_written_through_the_status_subresource_only(
    apiserver: kube.APIServer, namespace: str
) -> None:
    run = apiserver.create(workflow_run(), namespace=namespace)
    assert run["metadata"]["generation"] == 1

    written = apiserver.merge_patch(
        run, {"status": RUNNING, "spec": {"cancel": True}}, subresource="status"
    )
    assert written["status"] == RUNNING
    assert "cancel" not in written["spec"]  # /status ignores spec
    assert written["metadata"]["generation"] == 1  # a status write is not a new generation

    ignored = apiserver.merge_patch(run, {"status": {"phase": "Failed"}})
    assert ignored["status"] == RUNNING  # the main resource ignores status
    assert apiserver.get(run)["status"] == RUNNING


# -- what kubectl get shows --------------------------------------------------------------------


@pytest.mark.parametrize("crd_file", CRD_FILES, ids=[f.stem.split("_")[1] for f in CRD_FILES])
def test_table_api_shows_the_declared_printer_columns(
    apiserver: kube.APIServer, namespace: str, crd_file: Path
) -> None:
    crd = load(crd_file)
    (version,) = crd["spec"]["versions"]
    api_version = f"{crd['spec']['group']}/{version['name']}"
    path = apiserver.path(api_version, crd["spec"]["names"]["kind"], namespace)

    table = apiserver.request("GET", path, accept=TABLE)

    assert table["kind"] == "Table"
    declared = [c["name"] for c in version["additionalPrinterColumns"]]
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", *declared]


def test_kubectl_get_shows_workflows_and_runs_with_their_columns(
    apiserver: kube.APIServer, namespace: str
) -> None:
    wf = apiserver.create(workflow(), namespace=namespace)
    ready = {"type": "Ready", "status": "True", "reason": "Valid", "message": "1 step"}
    apiserver.merge_patch(
        wf,
        {"status": {"conditions": [{**ready, "lastTransitionTime": "2025-03-01T09:00:00Z"}]}},
        subresource="status",
    )
    run = apiserver.create(workflow_run(), namespace=namespace)
    apiserver.merge_patch(run, {"status": RUNNING}, subresource="status")

    (wf_row,) = _table(apiserver.kubectl("get", "workflows", "-n", namespace).stdout)
    assert list(wf_row) == ["NAME", "READY", "REASON", "LAST RUN", "AGE"]
    assert [wf_row["NAME"], wf_row["READY"], wf_row["REASON"]] == ["orders", "True", "Valid"]

    out = apiserver.kubectl("get", "workflowruns", "-o", "wide", "-n", namespace).stdout
    (row,) = _table(out)
    assert list(row) == ["NAME", "WORKFLOW", "PHASE", "STARTED", "FINISHED", "AGE"]
    assert [row["NAME"], row["WORKFLOW"], row["PHASE"]] == ["orders-1", "orders", "Running"]
    assert row["STARTED"].endswith("d")  # an age: startedAt is days ago
    assert row["FINISHED"] == ""  # not finished

    short = apiserver.kubectl("get", "wfr", "-n", namespace, "-o", "name").stdout.split()
    assert short == ["workflowrun.autoflow.dev/orders-1"]
    category = apiserver.kubectl("get", "autoflow", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(category) == ["workflow.autoflow.dev/orders", "workflowrun.autoflow.dev/orders-1"]


def _table(out: str) -> list[dict[str, str]]:
    """kubectl's table output as rows keyed by header; an empty cell is a blank, not a gap."""
    header, *lines = out.rstrip("\n").splitlines()
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]  # "LAST RUN" is one
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    names = [header[a:b].strip() for a, b in bounds]
    return [
        {n: line[a:b].strip() for n, (a, b) in zip(names, bounds, strict=True)} for line in lines
    ]


# -- RBAC --------------------------------------------------------------------------------------


def test_a_service_account_reads_workflows_only_once_granted(
    apiserver: kube.APIServer, namespace: str
) -> None:
    apiserver.create(workflow(), namespace=namespace)
    workflows = apiserver.path(API_VERSION, "Workflow", namespace)
    with pytest.raises(kube.APIError) as refused:
        apiserver.request("GET", workflows, user="nobody")
    assert refused.value.code == 403
    assert 'cannot list resource "workflows" in API group "autoflow.dev"' in refused.value.message

    name = f"autoflow-test-workflow-reader-{namespace}"
    grant = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": ["autoflow.dev"],
                    "resources": ["workflows"],
                    "verbs": ["get", "list"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": "autoflow-test-nobody",
                    "namespace": "autoflow-system",
                }
            ],
        },
    ]
    apiserver.apply(grant)
    try:
        listed = _eventually(lambda: apiserver.request("GET", workflows, user="nobody"))
        assert [w["metadata"]["name"] for w in listed["items"]] == ["orders"]
        apiserver.request("GET", f"{workflows}/orders", user="nobody")

        with pytest.raises(kube.APIError) as still:  # only the verbs and resources granted
            apiserver.request("DELETE", f"{workflows}/orders", user="nobody")
        assert still.value.code == 403
        runs = apiserver.path(API_VERSION, "WorkflowRun", namespace)
        with pytest.raises(kube.APIError) as other:
            apiserver.request("GET", runs, user="nobody")
        assert other.value.code == 403
    finally:
        for obj in reversed(grant):
            apiserver.delete(obj)


def _eventually(call: Any, timeout: float = 10.0) -> Any:
    # The RBAC authoriser reads bindings through an informer: a new one takes a moment.
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except kube.APIError as exc:
            if exc.code != 403 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
