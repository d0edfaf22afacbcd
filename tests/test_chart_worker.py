"""The chart's runner-pool workers (docs/pool.md), rendered: off by default; on, a locked-down
Deployment running ``autoflow worker`` with NATS and the store from Secrets, the RBAC of
``config/rbac/worker.yaml`` bound clusterwide or per namespace, an optional HPA; and refused
without the services it needs. ``tests/kube/test_worker_rbac.py`` checks the rules against a
real API server.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
from manifests import (
    CHART,
    KUSTOMIZE,
    NAMESPACE,
    all_of,
    config_rbac,
    helm_template,
    helm_values,
    kinds_and_names,
    kustomize_build,
    one,
)

ON: dict[str, Any] = {
    "store": {"existingSecret": "pg-app", "key": "uri"},
    "worker": {"enabled": True, "nats": {"existingSecret": "autoflow-nats"}},
}


def worker_container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objs, "Deployment", "autoflow-worker")
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(found)


def test_no_worker_by_default() -> None:
    assert not [o for o in helm_template() if "worker" in o["metadata"]["name"]]


def test_the_worker_deployment_runs_autoflow_worker_with_its_services_from_secrets() -> None:
    objs = helm_template(ON)
    deployment = one(objs, "Deployment", "autoflow-worker")
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "autoflow-worker"
    assert pod["securityContext"]["runAsNonRoot"] is True
    worker = worker_container(objs)
    assert worker["args"] == [
        "worker",
        "--concurrency=16",
        "--ack-wait=30s",
        "--max-deliveries=5",
        "--grace=10s",
        "--metrics-port=9090",
    ]
    assert pod["terminationGracePeriodSeconds"] == 20
    env = {e["name"]: e for e in worker["env"]}
    assert env["AUTOFLOW_NATS_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "autoflow-nats", "key": "url"}
    }
    assert env["AUTOFLOW_STORE_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "pg-app", "key": "uri"}
    }
    assert all("value" not in e or "://" not in e["value"] for e in worker["env"])
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True
    assert not all_of(objs, "HorizontalPodAutoscaler")


def test_the_workers_rules_are_config_rbac_worker_and_bound_to_its_account() -> None:
    objs = helm_template(ON)
    role = one(objs, "ClusterRole", "autoflow-worker")
    assert role["rules"] == config_rbac("worker.yaml")["rules"]
    binding = one(objs, "ClusterRoleBinding", "autoflow-worker")
    assert binding["roleRef"]["name"] == "autoflow-worker"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "autoflow-worker", "namespace": NAMESPACE}
    ]


def test_watch_namespaces_bind_the_worker_only_there() -> None:
    values = {**ON, "worker": {**ON["worker"], "watchNamespaces": ["shop", "billing"]}}
    objs = helm_template(values)
    assert not [o for o in all_of(objs, "ClusterRoleBinding") if "worker" in o["metadata"]["name"]]
    bindings = [o for o in all_of(objs, "RoleBinding") if "worker" in o["metadata"]["name"]]
    assert kinds_and_names(bindings) == [
        ("RoleBinding", "autoflow-worker", "billing"),
        ("RoleBinding", "autoflow-worker", "shop"),
    ]


def test_autoscaling_replaces_the_fixed_replicas() -> None:
    values = {
        **ON,
        "worker": {**ON["worker"], "autoscaling": {"enabled": True, "maxReplicas": 6}},
    }
    objs = helm_template(values)
    assert "replicas" not in one(objs, "Deployment", "autoflow-worker")["spec"]
    hpa = one(objs, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "autoflow-worker"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"worker": {"enabled": True, "nats": {"existingSecret": "n"}}}, "needs the run store"),
        ({"store": {"existingSecret": "s"}, "worker": {"enabled": True}}, "needs NATS"),
        ({"worker": {"concurrency": 0}}, "concurrency"),
        ({"worker": {"queue": "x"}}, "queue"),
    ],
)
def test_the_chart_refuses_a_worker_without_its_services(
    values: dict[str, Any], complaint: str
) -> None:
    done = helm_values("template", "autoflow", CHART, values=values)
    assert done.returncode != 0
    assert complaint in done.stderr


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].pop("labels", None)
    template = out.get("spec", {}).get("template")
    if isinstance(template, dict):
        template["metadata"].pop("labels", None)
    return out


def test_the_kustomize_worker_component_is_the_charts_worker(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()

    def rel(*parts: str) -> str:
        return os.path.relpath(KUSTOMIZE.joinpath(*parts), overlay)

    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"resources: [{rel('base')}]\n"
        f"components: [{rel('components', 'run-store')}, {rel('components', 'worker')}]\n"
    )
    built = [o for o in kustomize_build(overlay) if "worker" in o["metadata"]["name"]]
    chart = [
        o
        for o in helm_template(
            {
                "store": {"existingSecret": "autoflow-store"},
                "worker": {"enabled": True, "nats": {"existingSecret": "autoflow-nats"}},
            }
        )
        if "worker" in o["metadata"]["name"]
    ]
    assert kinds_and_names(built) == kinds_and_names(chart)
    by = {(o["kind"], o["metadata"]["name"]): o for o in chart}
    for obj in built:
        assert _comparable(obj) == _comparable(by[(obj["kind"], obj["metadata"]["name"])])
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "autoflow"


def test_helm_lint_passes_with_the_worker_and_autoscaling() -> None:
    values = {**ON, "worker": {**ON["worker"], "autoscaling": {"enabled": True}}}
    done = helm_values("lint", "--strict", CHART, values=values)
    assert done.returncode == 0, done.stdout + done.stderr
