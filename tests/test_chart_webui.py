"""The chart's web UI: off by default; when on, a Deployment running ``autoflow webui`` as a
ServiceAccount that may only impersonate (the rules of config/rbac/webui.yaml), the OIDC
client secret and session key from a Secret (never a value in the pod spec), a Service, an
optional Ingress, and ``helm lint --strict`` passing."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from manifests import (
    CHART,
    KUSTOMIZE,
    all_of,
    config_rbac,
    helm_template,
    helm_values,
    kustomize_build,
    one,
)

ON: dict[str, Any] = {
    "webui": {
        "enabled": True,
        "publicUrl": "https://autoflow.example.com/",
        "oidc": {
            "issuer": "https://dex.example.com",
            "clientId": "autoflow",
            "existingSecret": "autoflow-webui-oidc",
        },
        "namespaces": ["shop", "ops"],
        "ingress": {"enabled": True, "host": "autoflow.example.com", "className": "nginx"},
    },
    "store": {"existingSecret": "autoflow-store"},
}


def test_off_by_default() -> None:
    objs = helm_template()
    assert not [o for o in objs if "webui" in o["metadata"]["name"]]


def test_the_webui_may_only_impersonate() -> None:
    objs = helm_template(ON)
    role = one(objs, "ClusterRole", "autoflow-webui-impersonate")
    assert role["rules"] == config_rbac("webui.yaml", name="autoflow-webui-impersonate")["rules"]
    binding = one(objs, "ClusterRoleBinding", "autoflow-webui-impersonate")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "autoflow-webui", "namespace": "autoflow-system"}
    ]
    deployment = one(objs, "Deployment", "autoflow-webui")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "autoflow-webui"
    # No other role is bound to it.
    bound = [
        b
        for b in all_of(objs, "ClusterRoleBinding") + all_of(objs, "RoleBinding")
        if any(s.get("name") == "autoflow-webui" for s in b["subjects"])
    ]
    assert [b["metadata"]["name"] for b in bound] == ["autoflow-webui-impersonate"]


def test_settings_and_secrets_reach_the_container() -> None:
    objs = helm_template(ON)
    pod = one(objs, "Deployment", "autoflow-webui")["spec"]["template"]["spec"]
    (webui,) = pod["containers"]
    assert webui["args"][0] == "webui"
    values = {e["name"]: e.get("value", "") for e in webui["env"]}
    assert values["AUTOFLOW_WEBUI_OIDC_ISSUER"] == "https://dex.example.com"
    assert values["AUTOFLOW_WEBUI_REDIRECT_URL"] == "https://autoflow.example.com/api/auth/callback"
    assert values["AUTOFLOW_WEBUI_NAMESPACES"] == "shop,ops"
    by_name = {e["name"]: e for e in webui["env"]}
    for name, key in (
        ("AUTOFLOW_WEBUI_OIDC_CLIENT_SECRET", "clientSecret"),
        ("AUTOFLOW_WEBUI_SESSION_KEY", "sessionKey"),
        ("AUTOFLOW_STORE_URL", "url"),
    ):
        ref = by_name[name]["valueFrom"]["secretKeyRef"]
        assert "value" not in by_name[name] and ref["key"] == key
    security = webui["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    service = one(objs, "Service", "autoflow-webui")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    ingress = one(objs, "Ingress", "autoflow-webui")
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "autoflow.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "autoflow-webui"


@pytest.mark.parametrize("missing", ["issuer", "clientId", "existingSecret"])
def test_sign_in_settings_are_required(missing: str) -> None:
    values = {**ON, "webui": {**ON["webui"], "oidc": dict(ON["webui"]["oidc"])}}
    del values["webui"]["oidc"][missing]
    done = helm_values("template", "autoflow", CHART, values=values)
    assert done.returncode != 0 and f"webui.oidc.{missing} is required" in done.stderr


def test_helm_lint_with_the_webui() -> None:
    done = helm_values("lint", CHART, "--strict", values=ON)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kustomize_component_is_the_charts_webui(tmp_path: Path) -> None:
    rel = os.path.relpath(KUSTOMIZE, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{rel}/base"],
                "components": [f"{rel}/components/webui"],
            }
        )
    )
    values = {
        "webui": {
            "enabled": True,
            "publicUrl": "https://autoflow.example.com",
            "oidc": {
                "issuer": "https://oidc.example.com",
                "clientId": "autoflow",
                "existingSecret": "autoflow-webui-oidc",
            },
        },
        "store": {"existingSecret": "autoflow-store"},
    }

    def webui(objs: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        out = {}
        for o in objs:
            if "webui" in o["metadata"]["name"]:
                o = copy.deepcopy(o)
                o["metadata"].pop("labels", None)
                o.get("spec", {}).get("template", {}).get("metadata", {}).pop("labels", None)
                out[(o["kind"], o["metadata"]["name"])] = o
        return out

    assert webui(kustomize_build(tmp_path)) == webui(helm_template(values))
