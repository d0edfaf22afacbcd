"""The chart's webhook gateway (docs/gateway.md), rendered: off by default; on, a locked-down
Deployment running ``autoflow gateway`` with NATS and the store from Secrets, a Service, an
optional Ingress for ``/hooks/``, the RBAC of ``config/rbac/gateway.yaml`` bound clusterwide or
per namespace (Secrets narrowed to ``secretNames`` when given); refused without its services.
``tests/kube/test_gateway_rbac.py`` checks the rules against a real API server.
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
    "gateway": {"enabled": True, "nats": {"existingSecret": "autoflow-nats"}},
}


def gateway_container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objs, "Deployment", "autoflow-gateway")
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(found)


def test_no_gateway_by_default() -> None:
    assert not [o for o in helm_template() if "gateway" in o["metadata"]["name"]]


def test_the_gateway_deployment_serves_hooks_with_its_services_from_secrets() -> None:
    objs = helm_template(ON)
    deployment = one(objs, "Deployment", "autoflow-gateway")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "autoflow-gateway"
    assert pod["securityContext"]["runAsNonRoot"] is True
    gateway = gateway_container(objs)
    assert gateway["args"] == ["gateway", "--port=8080", "--metrics-port=9090"]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/hooks/-/healthz", "port": "http"}
    env = {e["name"]: e for e in gateway["env"]}
    assert env["AUTOFLOW_NATS_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "autoflow-nats", "key": "url"}
    }
    assert env["AUTOFLOW_STORE_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "pg-app", "key": "uri"}
    }
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    service = one(objs, "Service", "autoflow-gateway")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    assert not all_of(objs, "Ingress")


def test_the_gateway_takes_the_workers_nats_secret_when_it_has_none() -> None:
    values = {
        "store": ON["store"],
        "worker": {"enabled": True, "nats": {"existingSecret": "shared-nats"}},
        "gateway": {"enabled": True, "publicUrl": "https://hooks.example.com"},
    }
    env = {e["name"]: e for e in gateway_container(helm_template(values))["env"]}
    assert env["AUTOFLOW_NATS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "shared-nats"
    assert env["AUTOFLOW_GATEWAY_PUBLIC_URL"]["value"] == "https://hooks.example.com"


def test_the_gateways_rules_are_config_rbac_gateway_and_bound_to_its_account() -> None:
    objs = helm_template(ON)
    role = one(objs, "ClusterRole", "autoflow-gateway")
    assert role["rules"] == config_rbac("gateway.yaml")["rules"]
    binding = one(objs, "ClusterRoleBinding", "autoflow-gateway")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "autoflow-gateway", "namespace": NAMESPACE}
    ]


def test_watch_namespaces_and_secret_names_narrow_the_gateway() -> None:
    values = {
        **ON,
        "gateway": {
            **ON["gateway"],
            "watchNamespaces": ["shop", "billing"],
            "secretNames": ["shop-webhook"],
        },
    }
    objs = helm_template(values)
    assert not [o for o in all_of(objs, "ClusterRoleBinding") if "gateway" in o["metadata"]["name"]]
    bindings = [o for o in all_of(objs, "RoleBinding") if "gateway" in o["metadata"]["name"]]
    assert kinds_and_names(bindings) == [
        ("RoleBinding", "autoflow-gateway", "billing"),
        ("RoleBinding", "autoflow-gateway", "shop"),
    ]
    secrets_rule = one(objs, "ClusterRole", "autoflow-gateway")["rules"][2]
    assert secrets_rule == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get"],
        "resourceNames": ["shop-webhook"],
    }
    assert gateway_container(objs)["args"][-2:] == ["--namespace=shop", "--namespace=billing"]


def test_the_ingress_routes_hooks_to_the_gateway() -> None:
    values = {
        **ON,
        "gateway": {
            **ON["gateway"],
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "host": "hooks.shop.example",
                "tlsSecretName": "hooks-tls",
            },
        },
    }
    ingress = one(helm_template(values), "Ingress", "autoflow-gateway")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["hooks.shop.example"], "secretName": "hooks-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "hooks.shop.example"
    assert rule["http"]["paths"] == [
        {
            "path": "/hooks/",
            "pathType": "Prefix",
            "backend": {"service": {"name": "autoflow-gateway", "port": {"name": "http"}}},
        }
    ]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"gateway": {"enabled": True, "nats": {"existingSecret": "n"}}}, "needs the run store"),
        ({"store": {"existingSecret": "s"}, "gateway": {"enabled": True}}, "needs NATS"),
        ({"gateway": {"port": 0}}, "port"),
        ({"gateway": {"publicUrl": "hooks.example.com"}}, "publicUrl"),
        ({"gateway": {"route": "x"}}, "route"),
    ],
)
def test_the_chart_refuses_a_gateway_without_its_services(
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


def test_the_kustomize_gateway_component_is_the_charts_gateway(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()

    def rel(*parts: str) -> str:
        return os.path.relpath(KUSTOMIZE.joinpath(*parts), overlay)

    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"resources: [{rel('base')}]\n"
        f"components: [{rel('components', 'run-store')}, {rel('components', 'gateway')}]\n"
    )
    built = [o for o in kustomize_build(overlay) if "gateway" in o["metadata"]["name"]]
    chart = [
        o
        for o in helm_template(
            {
                "store": {"existingSecret": "autoflow-store"},
                "gateway": {"enabled": True, "nats": {"existingSecret": "autoflow-nats"}},
            }
        )
        if "gateway" in o["metadata"]["name"]
    ]
    assert kinds_and_names(built) == kinds_and_names(chart)
    by = {(o["kind"], o["metadata"]["name"]): o for o in chart}
    for obj in built:
        assert _comparable(obj) == _comparable(by[(obj["kind"], obj["metadata"]["name"])])
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "autoflow"


def test_helm_lint_passes_with_the_gateway_and_its_ingress() -> None:
    values = {**ON, "gateway": {**ON["gateway"], "ingress": {"enabled": True}}}
    done = helm_values("lint", "--strict", CHART, values=values)
    assert done.returncode == 0, done.stdout + done.stderr
