"""What the install tests render: the Helm chart and the kustomize builds, as lists of objects.

``helm`` and ``kustomize`` come from ``hack/tools.sh`` (built from the Go module proxy on
first use, cached afterwards). Without them the tests that need them fail in CI
(``CI=true``) and are skipped elsewhere, as the Kubernetes API tier does::

    objs = helm_template(values={"metrics": {"port": 9191}}, namespace="shop")
    objs = kustomize_build(REPO / "kustomize" / "overlays" / "dev")
    one(objs, "Deployment")                  # the only Deployment
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "autoflow"
KUSTOMIZE = REPO / "kustomize"
NAMESPACE = "autoflow-system"
RELEASE = "autoflow"

# Every optional part of the chart switched on.
ALL_ENABLED: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "grafana": {"dashboards": {"enabled": True}},
    "podDisruptionBudget": {"enabled": True},
    "store": {"existingSecret": "autoflow-store"},
}


class ToolUnavailable(RuntimeError):
    pass


@functools.cache
def _tool_path(name: str) -> Path:
    try:
        done = subprocess.run(
            ["bash", str(REPO / "hack" / "tools.sh"), name],
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolUnavailable(f"hack/tools.sh {name} could not run: {exc}") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not os.access(lines[-1], os.X_OK):
        raise ToolUnavailable(f"hack/tools.sh {name} failed:\n{done.stderr[-3000:]}")
    return Path(lines[-1])


def tool(name: str) -> Path:
    """The path of ``helm`` or ``kustomize``; fails in CI, skips elsewhere when missing."""
    try:
        return _tool_path(name)
    except ToolUnavailable as exc:
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(f"CI needs {name}: {exc}", pytrace=False)
        pytest.skip(f"no {name}; build it with `hack/tools.sh {name}`: {exc}")


def run(argv: list[str | Path], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def helm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run([tool("helm"), *args])


def helm_values(
    *args: str | Path, values: dict[str, Any] | None = None, extra: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``helm ARGS`` with ``values`` passed as a values file (JSON is YAML)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "values.json")
        path.write_text(json.dumps(values or {}))
        return helm(*args, "--values", path, *(extra or []))


def helm_template(
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """``helm template`` of the chart with ``values`` (a values file), parsed."""
    done = helm_values(
        "template",
        release,
        CHART,
        "--namespace",
        namespace,
        values=values,
        extra=["--include-crds"] if include_crds else [],
    )
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    return load_all(done.stdout)


def kustomize_build(path: Path) -> list[dict[str, Any]]:
    done = run([tool("kustomize"), "build", path])
    assert done.returncode == 0, f"kustomize build {path} failed:\n{done.stderr}"
    return load_all(done.stdout)


def kinds_and_names(objs: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return sorted((o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objs)


def all_of(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in all_of(objs, kind) if name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {kinds_and_names(found)}"
    return found[0]


def container(objs: list[dict[str, Any]], name: str = "operator") -> dict[str, Any]:
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    (found,) = [c for c in pod["containers"] if c["name"] == name]
    return dict(found)


def env(objs: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(objs).get("env", [])}


def config_rbac(file: str, kind: str = "ClusterRole", name: str | None = None) -> dict[str, Any]:
    """An object of ``config/rbac/<file>``, the operator's own statement of its permissions."""
    return one(load_all((REPO / "config" / "rbac" / file).read_text()), kind, name)
