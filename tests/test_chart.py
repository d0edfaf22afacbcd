"""The Helm chart and the kustomize builds, rendered: what they install and that they agree.

- The CRDs the chart and kustomize ship are the generated ones in ``crds/``, byte for byte.
- The operator's ClusterRole is exactly ``config/rbac/operator.yaml`` (the rules the
  operator's own tests run it under), the runner's exactly ``config/rbac/runner.yaml``.
- ``helm lint --strict`` passes with default and with every option on; ``values.schema.json``
  refuses what the chart cannot do (two replicas, unknown keys).
- The operator Deployment is locked down: non-root, read-only root filesystem, no
  capabilities, RuntimeDefault seccomp, and its metrics port is what the Service exposes.
- ``kustomize/base`` renders the chart's default objects; the overlays change what they say;
  the monitoring component is the chart's ServiceMonitor, PrometheusRule and dashboard.

``tests/kube/test_install.py`` applies all of this to a real API server and runs the operator
under the chart's RBAC.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from manifests import (
    ALL_ENABLED,
    CHART,
    KUSTOMIZE,
    NAMESPACE,
    REPO,
    all_of,
    config_rbac,
    container,
    env,
    helm_template,
    helm_values,
    kinds_and_names,
    kustomize_build,
    one,
)

GENERATED_CRDS = sorted((REPO / "crds").glob("autoflow.dev_*.yaml"))
SELECTOR = {
    "app.kubernetes.io/name": "autoflow",
    "app.kubernetes.io/instance": "autoflow",
    "app.kubernetes.io/component": "operator",
}


# -- CRDs and RBAC stay in step with their sources --------------------------------------------


@pytest.mark.parametrize("copies", [CHART / "crds", KUSTOMIZE / "base" / "crds"], ids=str)
def test_shipped_crds_are_the_generated_ones(copies: Path) -> None:
    assert GENERATED_CRDS, "crds/ holds no generated CRDs"
    assert sorted(p.name for p in copies.glob("*.yaml")) == [p.name for p in GENERATED_CRDS]
    for source in GENERATED_CRDS:
        assert (copies / source.name).read_text() == source.read_text(), (
            f"{copies / source.name} differs from {source}; copy it again:"
            f" cp crds/autoflow.dev_*.yaml {copies.relative_to(REPO)}/"
        )


def test_operator_cluster_role_is_config_rbac_operator() -> None:
    objs = helm_template()
    base = kustomize_build(KUSTOMIZE / "base")
    for name in ("autoflow-operator", "autoflow-operator-webhook"):
        expected = config_rbac("operator.yaml", "ClusterRole", name)["rules"]
        assert one(objs, "ClusterRole", name)["rules"] == expected
        assert one(base, "ClusterRole", name)["rules"] == expected


def test_runner_cluster_role_is_config_rbac_runner() -> None:
    expected = config_rbac("runner.yaml")["rules"]
    assert one(helm_template(), "ClusterRole", "autoflow-runner")["rules"] == expected
    base = kustomize_build(KUSTOMIZE / "base")
    assert one(base, "ClusterRole", "autoflow-runner")["rules"] == expected


def test_the_binding_names_the_operators_service_account() -> None:
    objs = helm_template()
    binding = one(objs, "ClusterRoleBinding", "autoflow-operator")
    account = one(objs, "ServiceAccount")
    deployment = one(objs, "Deployment")
    assert binding["roleRef"]["name"] == "autoflow-operator"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "autoflow-operator", "namespace": NAMESPACE}
    ]
    assert account["metadata"]["name"] == "autoflow-operator"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "autoflow-operator"
    # what config/rbac/operator.yaml says and the kube tier's "operator" identity is
    expected = config_rbac("operator.yaml", "ClusterRoleBinding", "autoflow-operator")
    assert binding["subjects"] == expected["subjects"]
    webhook = one(objs, "ClusterRoleBinding", "autoflow-operator-webhook")
    assert webhook["subjects"] == binding["subjects"]
    assert webhook["roleRef"]["name"] == "autoflow-operator-webhook"


# -- helm lint and the schema -----------------------------------------------------------------


@pytest.mark.parametrize("values", [{}, ALL_ENABLED], ids=["defaults", "all-enabled"])
def test_helm_lint(values: dict[str, Any]) -> None:
    done = helm_values("lint", CHART, "--strict", values=values)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"operator": {"replicas": 2}}, "replicas"),
        ({"operator": {"replica": 1}}, "replica"),
        ({"operator": {"logLevel": "loud"}}, "logLevel"),
        ({"metrics": {"port": 0}}, "port"),
        ({"metrics": {"serviceMonitor": {"interval": "soon"}}}, "interval"),
        ({"operator": {"watchNamespaces": ["Not_A_Namespace"]}}, "watchNamespaces"),
        # A password in the URL would be written into every runner Job: a Secret is the way.
        ({"operator": {"runner": {"redis": {"url": "redis://:hunter22@redis:6379"}}}}, "url"),
        ({"operator": {"integrations": {"probeConcurrency": 0}}}, "probeConcurrency"),
        # The run store's password belongs in a Secret (store.existingSecret), never in values.
        ({"store": {"url": "postgresql://autoflow:hunter22@db:5432/autoflow"}}, "url"),
        ({"store": {"url": "postgresql://db/autoflow?password=hunter22"}}, "url"),
        ({"store": {"existingSecret": "pg-app", "key": ""}}, "key"),
    ],
)
def test_the_schema_refuses(values: dict[str, Any], complaint: str) -> None:
    done = helm_values("template", "autoflow", CHART, values=values)
    assert done.returncode != 0
    assert complaint in done.stderr


def test_the_webhook_is_served_through_its_service_with_the_chosen_failure_policy() -> None:
    objs = helm_template()
    service = one(objs, "Service", "autoflow-operator-webhook")
    assert service["spec"]["ports"] == [
        {"name": "webhook", "port": 9443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == SELECTOR
    strict = env(helm_template({"webhook": {"failurePolicy": "Fail", "port": 8443}}))
    assert (strict["AUTOFLOW_WEBHOOK_FAILURE_POLICY"], strict["AUTOFLOW_WEBHOOK_PORT"]) == (
        "Fail",
        "8443",
    )
    off = helm_template({"webhook": {"enabled": False}})
    assert not [o for o in off if "webhook" in o["metadata"]["name"]]
    assert not [k for k in env(off) if k.startswith("AUTOFLOW_WEBHOOK")]
    refused = helm_values("template", "autoflow", CHART, values={"webhook": {"failurePolicy": "x"}})
    assert refused.returncode != 0 and "failurePolicy" in refused.stderr


def test_a_service_monitor_needs_the_service() -> None:
    values = {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}}
    done = helm_values("template", "autoflow", CHART, values=values)
    assert done.returncode != 0
    assert "metrics.service.enabled" in done.stderr


# -- what the chart renders -------------------------------------------------------------------


def test_default_objects() -> None:
    objs = helm_template()
    assert kinds_and_names(objs) == [
        ("ClusterRole", "autoflow-operator", None),
        ("ClusterRole", "autoflow-operator-webhook", None),
        ("ClusterRole", "autoflow-runner", None),
        ("ClusterRoleBinding", "autoflow-operator", None),
        ("ClusterRoleBinding", "autoflow-operator-webhook", None),
        ("Deployment", "autoflow-operator", NAMESPACE),
        ("Service", "autoflow-operator-metrics", NAMESPACE),
        ("Service", "autoflow-operator-webhook", NAMESPACE),
        ("ServiceAccount", "autoflow-operator", NAMESPACE),
    ]
    crds = all_of(helm_template(include_crds=True), "CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "integrations.autoflow.dev",
        "schedules.autoflow.dev",
        "workflowruns.autoflow.dev",
        "workflows.autoflow.dev",
    ]


def test_the_operator_runs_locked_down() -> None:
    objs = helm_template()
    deployment = one(objs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["selector"]["matchLabels"] == SELECTOR
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532  # the image's USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    operator = container(objs)
    assert operator["image"] == "ghcr.io/autoflow/autoflow:0.1.0"
    assert operator["args"] == ["operator"]
    assert "command" not in operator  # the image's ENTRYPOINT, autoflow
    assert operator["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # HOME and TMPDIR are /tmp in the image: the one writable place
    assert operator["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    # `autoflow operator` has no health endpoint (operator/main.py passes kopf no liveness)
    assert "livenessProbe" not in operator
    assert operator["resources"]["requests"] and operator["resources"]["limits"]["memory"]


def test_operator_settings_come_from_values() -> None:
    assert env(helm_template()) == {
        "AUTOFLOW_RUNNER_IMAGE": "ghcr.io/autoflow/autoflow:0.1.0",
        "AUTOFLOW_RUNNER_BACKOFF_LIMIT": "3",
        "AUTOFLOW_JOB_TTL_SECONDS": "3600",
        "AUTOFLOW_NAMESPACES": "",
        "AUTOFLOW_METRICS_PORT": "9090",
        "AUTOFLOW_HANDLER_BACKOFF_SECONDS": "5",
        "AUTOFLOW_LOG_LEVEL": "info",
        "AUTOFLOW_INTEGRATION_TICK_SECONDS": "10",
        "AUTOFLOW_PROBE_TIMEOUT_SECONDS": "10",
        "AUTOFLOW_PROBE_CONCURRENCY": "4",
        "AUTOFLOW_REDIS_URL": "",
        "AUTOFLOW_REDIS_SECRET": "",
        "AUTOFLOW_WEBHOOK_PORT": "9443",
        "AUTOFLOW_WEBHOOK_SERVICE": f"{NAMESPACE}/autoflow-operator-webhook",
        "AUTOFLOW_WEBHOOK_CONFIGURATION": "autoflow-operator.autoflow.dev",
        "AUTOFLOW_WEBHOOK_FAILURE_POLICY": "Ignore",
    }
    values = {
        "image": {"tag": "1.2.3"},
        "operator": {
            "logLevel": "debug",
            "runner": {
                "backoffLimit": 0,
                "jobTTLSeconds": 60,
                "redis": {"secretName": "autoflow-redis"},
            },
            "integrations": {"probeConcurrency": 2},
            "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        },
        "metrics": {"port": 9191},
    }
    objs = helm_template(values)
    got = env(objs)
    assert got["AUTOFLOW_RUNNER_IMAGE"] == "ghcr.io/autoflow/autoflow:1.2.3"
    assert (got["AUTOFLOW_RUNNER_BACKOFF_LIMIT"], got["AUTOFLOW_JOB_TTL_SECONDS"]) == ("0", "60")
    assert got["AUTOFLOW_LOG_LEVEL"] == "debug"
    assert (got["AUTOFLOW_REDIS_SECRET"], got["AUTOFLOW_PROBE_CONCURRENCY"]) == (
        "autoflow-redis",
        "2",
    )
    assert got["HTTPS_PROXY"] == "http://proxy:3128"
    assert got["AUTOFLOW_METRICS_PORT"] == "9191"
    assert container(objs)["ports"] == [
        {"name": "metrics", "containerPort": 9191, "protocol": "TCP"},
        {"name": "webhook", "containerPort": 9443, "protocol": "TCP"},
    ]
    service = one(objs, "Service", "autoflow-operator-metrics")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9191, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == SELECTOR
    runner = helm_template({"operator": {"runner": {"image": "registry.local/autoflow:x"}}})
    assert env(runner)["AUTOFLOW_RUNNER_IMAGE"] == "registry.local/autoflow:x"


def test_watching_some_namespaces_binds_the_role_only_there() -> None:
    objs = helm_template({"operator": {"watchNamespaces": ["shop", "billing"]}})
    # Only the webhook's: its configuration is cluster-scoped.
    (webhook,) = all_of(objs, "ClusterRoleBinding")
    assert webhook["roleRef"]["name"] == "autoflow-operator-webhook"
    bindings = all_of(objs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["billing", "shop"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "autoflow-operator",
        }
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    assert env(objs)["AUTOFLOW_NAMESPACES"] == "shop,billing"


def test_everything_enabled() -> None:
    objs = helm_template(ALL_ENABLED)
    monitor = one(objs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == SELECTOR
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["honorLabels"]) == (
        "metrics",
        "/metrics",
        True,
    )
    rule = one(objs, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "AutoflowRunFailureRatioHigh",
        "AutoflowRunsStuckPending",
        "AutoflowIntegrationDown",
        "AutoflowOperatorDown",
    } <= alerts
    down = next(
        r
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r["alert"] == "AutoflowOperatorDown"
    )
    # the job Prometheus gives the ServiceMonitor's targets is the Service's name
    assert (
        f'job="{one(objs, "Service", "autoflow-operator-metrics")["metadata"]["name"]}"'
        in down["expr"]
    )
    dashboards = one(objs, "ConfigMap")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "autoflow.json").read_text())
    assert json.loads(dashboards["data"]["autoflow.json"]) == shipped
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}


def test_dashboard_sidecar_settings() -> None:
    values = {
        "grafana": {
            "dashboards": {
                "enabled": True,
                "label": "grafana_dashboard_autoflow",
                "labelValue": "yes",
                "namespace": "monitoring",
                "annotations": {"grafana_folder": "Autoflow"},
            }
        }
    }
    dashboards = one(helm_template(values), "ConfigMap")
    assert dashboards["metadata"]["namespace"] == "monitoring"
    assert dashboards["metadata"]["labels"]["grafana_dashboard_autoflow"] == "yes"
    assert dashboards["metadata"]["annotations"] == {"grafana_folder": "Autoflow"}


def test_another_release_name_prefixes_every_name() -> None:
    objs = helm_template(release="team-a", namespace="team-a")
    names = {o["metadata"]["name"] for o in objs}
    assert names == {
        "team-a-autoflow-operator",
        "team-a-autoflow-runner",
        "team-a-autoflow-operator-metrics",
        "team-a-autoflow-operator-webhook",
    }
    assert env(objs)["AUTOFLOW_WEBHOOK_CONFIGURATION"] == "team-a-autoflow-operator.autoflow.dev"
    (patch,) = [
        r
        for r in one(objs, "ClusterRole", "team-a-autoflow-operator-webhook")["rules"]
        if "resourceNames" in r
    ]
    assert patch["resourceNames"] == ["team-a-autoflow-operator.autoflow.dev"]


# -- kustomize ----------------------------------------------------------------------------------


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without what Helm and kustomize label differently (their own labels)."""
    out = copy.deepcopy(obj)
    out["metadata"].pop("labels", None)
    template = out.get("spec", {}).get("template")
    if isinstance(template, dict):
        template["metadata"].pop("labels", None)
    return out


def test_kustomize_base_is_the_charts_defaults() -> None:
    chart = helm_template(include_crds=True)
    base = [o for o in kustomize_build(KUSTOMIZE / "base") if o["kind"] != "Namespace"]
    assert kinds_and_names(base) == kinds_and_names(chart)
    chart_by = {(o["kind"], o["metadata"]["name"]): o for o in chart}
    for obj in base:
        theirs = chart_by[(obj["kind"], obj["metadata"]["name"])]
        assert _comparable(obj) == _comparable(theirs), f"{obj['kind']} {obj['metadata']['name']}"
        labels = obj["metadata"].get("labels", {})
        assert labels["app.kubernetes.io/part-of"] == "autoflow"
    deployment = one(base, "Deployment")
    assert SELECTOR.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (namespace,) = [o for o in kustomize_build(KUSTOMIZE / "base") if o["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == NAMESPACE


def test_dev_overlay() -> None:
    objs = kustomize_build(KUSTOMIZE / "overlays" / "dev")
    assert one(objs, "Deployment")["spec"]["replicas"] == 1
    assert env(objs)["AUTOFLOW_LOG_LEVEL"] == "debug"
    assert env(objs)["AUTOFLOW_HANDLER_BACKOFF_SECONDS"] == "1"
    assert not all_of(objs, "PodDisruptionBudget")


def test_production_overlay() -> None:
    objs = kustomize_build(KUSTOMIZE / "overlays" / "production")
    base = kustomize_build(KUSTOMIZE / "base")
    assert one(objs, "Deployment")["spec"]["replicas"] == 1  # see the overlay: no peering
    resources = container(objs)["resources"]
    assert resources != container(base)["resources"]
    assert resources["requests"]["cpu"] and resources["limits"]["memory"]
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["metadata"]["namespace"] == NAMESPACE
    assert pdb["spec"] == one(helm_template(ALL_ENABLED), "PodDisruptionBudget")["spec"]
    # everything else as in the base
    assert env(objs) == env(base)
    assert kinds_and_names(objs) == sorted(
        [*kinds_and_names(base), ("PodDisruptionBudget", "autoflow-operator", NAMESPACE)]
    )


def with_monitoring(tmp_path: Path, overlay: str = "production") -> list[dict[str, Any]]:
    """An overlay with the monitoring component, as docs/install.md tells users to write it."""
    rel = os.path.relpath(KUSTOMIZE, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{rel}/overlays/{overlay}"],
                "components": [f"{rel}/components/monitoring"],
            }
        )
    )
    return kustomize_build(tmp_path)


def test_monitoring_component_is_the_charts(tmp_path: Path) -> None:
    objs = with_monitoring(tmp_path)
    chart = helm_template(ALL_ENABLED)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert _comparable(one(objs, kind)) == _comparable(one(chart, kind)), kind
    mine, theirs = one(objs, "ConfigMap"), one(chart, "ConfigMap")
    assert mine["metadata"]["name"] == theirs["metadata"]["name"]
    assert mine["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(mine["data"]["autoflow.json"]) == json.loads(theirs["data"]["autoflow.json"])
    copy_ = KUSTOMIZE / "components" / "monitoring" / "autoflow.json"
    assert copy_.read_text() == (CHART / "dashboards" / "autoflow.json").read_text(), (
        "cp charts/autoflow/dashboards/autoflow.json kustomize/components/monitoring/"
    )


# -- the run store -------------------------------------------------------------------------------


def _store_parts(objs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    (deployment,) = all_of(objs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    store_env = [e for e in container(objs)["env"] if e["name"].startswith("AUTOFLOW_STORE")]
    return store_env, pod.get("initContainers", [])


def test_the_store_url_comes_from_a_secret_and_is_migrated_before_the_operator_starts() -> None:
    assert _store_parts(helm_template()) == ([], [])
    objs = helm_template({"store": {"existingSecret": "pg-app", "key": "uri"}})
    store_env, (migrate,) = _store_parts(objs)
    from_secret = {"secretKeyRef": {"name": "pg-app", "key": "uri"}}
    assert store_env == [
        {"name": "AUTOFLOW_STORE_URL", "valueFrom": from_secret},
        {"name": "AUTOFLOW_STORE_SECRET", "value": "pg-app"},
        {"name": "AUTOFLOW_STORE_SECRET_KEY", "value": "uri"},
    ]
    assert migrate["args"] == ["store", "migrate"] and migrate["env"] == store_env
    assert migrate["securityContext"]["readOnlyRootFilesystem"] is True
    # A URL without a password: the operator's; runner Jobs get no store from it.
    plain = helm_template(
        {"store": {"url": "postgresql://autoflow@db:5432/autoflow", "migrate": False}}
    )
    assert _store_parts(plain) == (
        [{"name": "AUTOFLOW_STORE_URL", "value": "postgresql://autoflow@db:5432/autoflow"}],
        [],
    )


def test_the_subject_key_comes_from_a_secret_for_the_operator_and_its_runners() -> None:
    keyed = {
        "existingSecret": "pg-app",
        "subjectKey": {"existingSecret": "autoflow-subjects", "key": "hmac"},
        "retention": {"days": 90},
        "purgeIntervalSeconds": 600,
        "statusIntervalSeconds": 5,
    }
    store_env, (_migrate,) = _store_parts(helm_template({"store": keyed}))
    assert store_env[3:] == [
        {
            "name": "AUTOFLOW_STORE_SUBJECT_KEY",
            "valueFrom": {
                "secretKeyRef": {"name": "autoflow-subjects", "key": "hmac", "optional": True}
            },
        },
        # Runner Jobs get it from a Secret of that name in their run's namespace.
        {"name": "AUTOFLOW_STORE_SUBJECT_KEY_SECRET", "value": "autoflow-subjects"},
        {"name": "AUTOFLOW_STORE_SUBJECT_KEY_SECRET_KEY", "value": "hmac"},
        {"name": "AUTOFLOW_STORE_RETENTION_DAYS", "value": "90"},
        {"name": "AUTOFLOW_STORE_PURGE_INTERVAL_SECONDS", "value": "600"},
        {"name": "AUTOFLOW_STORE_STATUS_INTERVAL_SECONDS", "value": "5"},
    ]
    # No store, no key: nothing about the store at all.
    alone = {"subjectKey": {"existingSecret": "autoflow-subjects"}}
    assert _store_parts(helm_template({"store": alone})) == ([], [])


def test_the_run_store_component_is_the_charts_existing_secret(tmp_path: Path) -> None:
    rel = os.path.relpath(KUSTOMIZE, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{rel}/base"],
                "components": [f"{rel}/components/run-store"],
            }
        )
    )
    mine = _store_parts(kustomize_build(tmp_path))
    same = {"existingSecret": "autoflow-store", "subjectKey": {"existingSecret": "autoflow-store"}}
    assert mine == _store_parts(helm_template({"store": same}))
