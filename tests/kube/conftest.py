"""Fixtures of the real Kubernetes API tier: one kube-apiserver per session, a namespace per test.

``apiserver`` starts etcd and kube-apiserver once (binaries from ``$KUBEBUILDER_ASSETS`` or
``hack/tools.sh envtest``) and installs the CRDs in ``crds/``. Without the binaries the tier
fails in CI (``CI=true``) and is skipped elsewhere. Every test here is marked ``kubernetes``,
so ``pytest -m "not kubernetes"`` leaves the tier out.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import apiserver as kube
import pytest

HERE = Path(__file__).resolve().parent
CRDS = kube.REPO / "crds"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.kubernetes)


@pytest.fixture(scope="session")
def apiserver(request: pytest.FixtureRequest) -> Iterator[kube.APIServer]:
    """A running kube-apiserver (RBAC on) with Autoflow's CRDs installed and Established."""
    # A first build takes minutes: show its progress instead of sitting silent.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            assets = kube.find_assets(progress=sys.stderr)
    except kube.AssetsUnavailable as exc:
        if kube.is_ci():
            pytest.fail(f"CI needs kube-apiserver and etcd: {exc}", pytrace=False)
        pytest.skip(f"no kube-apiserver/etcd; build them with `hack/tools.sh envtest`: {exc}")
    with kube.APIServer(assets) as server:
        server.install_crds(CRDS, "autoflow.dev_*.yaml")
        yield server


@pytest.fixture
def namespace(apiserver: kube.APIServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test. Deleted afterwards, but on a bare apiserver
    (no namespace controller) it only goes Terminating; its objects stay readable."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:48].strip("-")
    name = f"{slug}-{secrets.token_hex(3)}"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    apiserver.apply(ns)
    yield name
    with contextlib.suppress(kube.APIError):
        apiserver.delete(ns)
