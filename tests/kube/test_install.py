"""Installing Autoflow on a real API server: the chart and the kustomize builds, applied.

- Every object ``helm template`` renders (defaults, and every option on) and every kustomize
  build (base, dev, production, production with monitoring) is accepted by server-side apply
  with strict field validation, so a misspelt or misplaced field fails here. ServiceMonitor
  and PrometheusRule need the Prometheus operator's CRDs; the tests install stand-ins for
  them (``MONITORING_CRDS``) whose schemas type the fields the chart uses, from the
  monitoring.coreos.com/v1 API reference, and refuse any other field.
- The operator runs as the chart's Deployment would run it: the container's arguments and
  environment from the rendered Deployment, and a token of the Deployment's ServiceAccount
  (TokenRequest, as the kubelet gets one), so the chart's RBAC and nothing else decides what
  it may do. It runs workflows to success and failure (the ``executor`` plays the kubelet for
  the runner Jobs), and its ``/metrics`` endpoint shows them.

The shared ``operator`` of the tier runs under config/rbac as another identity; the tests here
stop it first so that only the chart's operator acts (the next test that wants it starts it).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apiserver as kube
import executor as executor_mod
import httpx
import objects
import operator_process
import pytest
import yaml
from manifests import (
    ALL_ENABLED,
    KUSTOMIZE,
    container,
    helm_template,
    kustomize_build,
    one,
)
from objects import phase, wait_for
from prometheus_client import parser

from autoflow.operator import metrics

# monitoring.coreos.com/v1 Duration
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    r"(([0-9]+)ms)?)$",
}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": _LABELS,
        "matchExpressions": {"type": "array", "items": {"type": "object"}},
    },
}


def _crd(kind: str, plural: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": spec},
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }


MONITORING_CRDS = [
    _crd(
        "ServiceMonitor",
        "servicemonitors",
        {
            "type": "object",
            "required": ["selector"],
            "properties": {
                "selector": _SELECTOR,
                "jobLabel": {"type": "string"},
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"type": "string", "enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    ),
    _crd(
        "PrometheusRule",
        "prometheusrules",
        {
            "type": "object",
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"x-kubernetes-int-or-string": True},
                                        "for": _DURATION,
                                        "labels": _LABELS,
                                        "annotations": _LABELS,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    ),
]


@pytest.fixture(scope="module")
def monitoring_crds(apiserver: kube.APIServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("monitoring-crds")
    (directory / "monitoring.yaml").write_text(yaml.safe_dump_all(MONITORING_CRDS))
    apiserver.install_crds(directory)


def install(apiserver: kube.APIServer, objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Server-side apply, as ``kubectl apply --server-side`` does: CRDs and Namespaces first."""
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    if crds:
        apiserver.apply(crds)
        for crd in crds:
            apiserver.wait_established(crd["metadata"]["name"])
    first = [o for o in objs if o["kind"] == "Namespace"]
    rest = [o for o in objs if o["kind"] not in {"CustomResourceDefinition", "Namespace"}]
    stored: list[dict[str, Any]] = apiserver.apply([*first, *rest])
    return stored


def check_stored(apiserver: kube.APIServer, objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        if obj["kind"] == "CustomResourceDefinition":
            continue
        stored = apiserver.get(obj)
        assert stored["metadata"]["name"] == obj["metadata"]["name"]
        for field in ("rules", "roleRef", "subjects", "data"):  # specs get server defaults
            if field in obj:
                assert stored[field] == obj[field], f"{obj['kind']} {field}"
    deployments = [o for o in objs if o["kind"] == "Deployment"]
    for deployment in deployments:
        stored = apiserver.get(deployment)
        pod = stored["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (operator,) = pod["containers"]
        assert operator["securityContext"]["readOnlyRootFilesystem"] is True


def release_name() -> str:
    return f"it-{secrets.token_hex(3)}"


# -- the manifests are accepted -----------------------------------------------------------------


def test_chart_defaults_are_accepted(apiserver: kube.APIServer, namespace: str) -> None:
    objs = helm_template(release=release_name(), namespace=namespace, include_crds=True)
    install(apiserver, objs)
    check_stored(apiserver, objs)


@pytest.mark.usefixtures("monitoring_crds")
def test_chart_with_everything_on_is_accepted(apiserver: kube.APIServer, namespace: str) -> None:
    values = {**ALL_ENABLED, "operator": {"watchNamespaces": [namespace]}}
    objs = helm_template(values, release=release_name(), namespace=namespace, include_crds=True)
    kinds = {o["kind"] for o in objs}
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "PodDisruptionBudget"} <= kinds
    assert "RoleBinding" in kinds
    install(apiserver, objs)
    check_stored(apiserver, objs)


@pytest.mark.usefixtures("monitoring_crds")
@pytest.mark.parametrize(
    "build", ["base", "overlays/dev", "overlays/production", "monitoring", "run-store"]
)
def test_kustomize_builds_are_accepted(
    apiserver: kube.APIServer, build: str, tmp_path: Path
) -> None:
    if build in ("monitoring", "run-store"):
        rel = os.path.relpath(KUSTOMIZE, tmp_path)
        (tmp_path / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "resources": [f"{rel}/overlays/production"],
                    "components": [f"{rel}/components/{build}"],
                }
            )
        )
        objs = kustomize_build(tmp_path)
    else:
        objs = kustomize_build(KUSTOMIZE / build)
    install(apiserver, objs)
    check_stored(apiserver, objs)


# -- the operator under the chart's RBAC --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _token(apiserver: kube.APIServer, namespace: str, account: str) -> str:
    answer = apiserver.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    token: str = answer["status"]["token"]
    return token


class ChartOperator:
    """The chart installed in a namespace and its operator running as its Deployment says."""

    def __init__(self, apiserver: kube.APIServer, namespace: str, workdir: Path) -> None:
        self.port = _free_port()
        self.release = release_name()
        self.webhook_port = _free_port()
        values = {
            "metrics": {"port": self.port},
            "operator": {"handlerBackoffSeconds": 1},
            "webhook": {"port": self.webhook_port},
        }
        self.objs = helm_template(values, release=self.release, namespace=namespace)
        install(apiserver, self.objs)
        deployment = one(self.objs, "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        spec = container(self.objs)
        assert spec["args"] == ["operator"] and "command" not in spec  # as Operator runs it
        self.account = f"system:serviceaccount:{namespace}:{pod['serviceAccountName']}"
        token = self.token = _token(apiserver, namespace, pod["serviceAccountName"])
        config = workdir / "kubeconfig.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {
                                "server": apiserver.url,
                                "certificate-authority": str(apiserver.ca_file),
                            },
                        }
                    ],
                    "users": [{"name": "operator", "user": {"token": token}}],
                    "contexts": [
                        {"name": "operator", "context": {"cluster": "test", "user": "operator"}}
                    ],
                    "current-context": "operator",
                }
            )
        )
        env = {e["name"]: e["value"] for e in spec["env"]}
        self.process = operator_process.Operator(
            apiserver,
            kube.REPO / "config" / "rbac",  # not installed: the chart's RBAC is what counts
            workdir / "operator.log",
            # The test API server cannot reach a Service: the webhook by URL on loopback,
            # under the chart's configuration name and RBAC.
            env={
                **env,
                "KUBECONFIG": str(config),
                "AUTOFLOW_WEBHOOK_SERVICE": "",
                "AUTOFLOW_WEBHOOK_ADDRESS": "127.0.0.1",
            },
        )

    def scrape(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5)
                if response.status_code == 200:
                    return response.text
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the operator serves no metrics on port {self.port} (AUTOFLOW_METRICS_PORT):"
                    " autoflow.operator.metrics.serve is not called at start-up"
                )
            time.sleep(0.1)


@pytest.fixture
def chart_operator(
    apiserver: kube.APIServer,
    namespace: str,
    tmp_path: Path,
    _operator_process: operator_process.Operator,
) -> Iterator[ChartOperator]:
    _operator_process.stop()  # only the chart's operator acts meanwhile
    op = ChartOperator(apiserver, namespace, tmp_path)
    op.process.start()
    yield op
    op.process.stop()
    print(op.process.log_since(0)[-30000:])  # shown when the test failed


FAILING = {"steps": [{"id": "check", "uses": "core.fail", "with": {"message": "asked to"}}]}


def test_the_operator_runs_a_workflow_with_the_charts_rbac(
    apiserver: kube.APIServer,
    namespace: str,
    chart_operator: ChartOperator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    log = chart_operator.process.log_since(0)
    assert f"autoflow operator running as {chart_operator.account}" in log
    apiserver.create(objects.workflow(), namespace=namespace)
    run = apiserver.create(objects.run(), namespace=namespace)
    done = wait_for(apiserver, run, objects.finished)
    assert phase(done) == "Succeeded", done["status"]
    assert objects.step(done, "hello")["phase"] == "Succeeded"
    job = apiserver.get(objects.job_of(run))
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "ghcr.io/autoflow/autoflow:0.1.0"  # AUTOFLOW_RUNNER_IMAGE from the chart
    )
    # and no more than it needs: no Secrets, Namespaces, CRDs or Pods
    as_operator = httpx.Client(
        base_url=apiserver.url,
        verify=ssl.create_default_context(cafile=str(apiserver.ca_file)),
        headers={"Authorization": f"Bearer {chart_operator.token}"},
    )
    with as_operator:
        for path in (
            f"/api/v1/namespaces/{namespace}/secrets",
            "/api/v1/namespaces",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            f"/api/v1/namespaces/{namespace}/pods",
        ):
            assert as_operator.get(path).status_code == 403, path
        assert as_operator.get(f"/apis/batch/v1/namespaces/{namespace}/jobs").status_code == 200


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_the_operator_reports_runs_on_its_metrics_endpoint(
    apiserver: kube.APIServer,
    namespace: str,
    chart_operator: ChartOperator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    before = _samples(chart_operator.scrape())

    apiserver.create(objects.workflow(), namespace=namespace)
    apiserver.create(objects.workflow("broken", **FAILING), namespace=namespace)
    good = apiserver.create(objects.run("good-1"), namespace=namespace)
    bad = apiserver.create(objects.run("bad-1", workflow="broken"), namespace=namespace)
    assert phase(wait_for(apiserver, good, objects.finished)) == "Succeeded"
    assert phase(wait_for(apiserver, bad, objects.finished)) == "Failed"

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    # the finished transitions are written just before the runs read as finished
    deadline = time.monotonic() + 10
    while True:
        text = chart_operator.scrape()
        after = _samples(text)
        if grew("autoflow_runs_finished_total", phase="Failed") >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    assert grew("autoflow_runs_started_total") >= 2
    assert grew("autoflow_runs_finished_total", phase="Succeeded") >= 1
    assert grew("autoflow_runs_finished_total", phase="Failed") >= 1
    assert grew("autoflow_run_duration_seconds_count", phase="Succeeded") >= 1
    assert grew("autoflow_steps_finished_total", connector="core", phase="Succeeded") >= 1
    assert grew("autoflow_steps_finished_total", connector="core", phase="Failed") >= 1
    assert after[("autoflow_build_info", (("version", "0.1.0"),))] == 1
    assert ("autoflow_runs_active", (("phase", "Running"),)) in after
    # every metric the module declares is on the endpoint, and no other autoflow_ one
    declared = {m.name for m in metrics.reference()}
    served = set(re.findall(r"^# TYPE (autoflow_\w+) ", text, re.M))
    assert served == declared
