"""Fixtures of the real Kubernetes API tier: one kube-apiserver per session, a namespace per test.

``apiserver`` starts etcd and kube-apiserver once (binaries from ``$KUBEBUILDER_ASSETS`` or
``hack/tools.sh envtest``) and installs the CRDs in ``crds/``. Without the binaries the tier
fails in CI (``CI=true``) and is skipped elsewhere. Every test here is marked ``kubernetes``,
so ``pytest -m "not kubernetes"`` leaves the tier out.

``operator`` is ``autoflow operator`` running as its own ServiceAccount (``operator_process``)
and ``executor`` plays the Job controller and kubelet for the test's namespace
(``executor.py``); a failed test's report shows what both wrote while it ran.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apiserver as kube
import executor as executor_mod
import httpserver
import objects
import oidc_server
import operator_process
import pytest
import yaml

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


# -- the operator and the Job executor ---------------------------------------------------------

_ON_FAILURE = pytest.StashKey[list[Callable[[], tuple[str, str]]]]()
RBAC = kube.REPO / "config" / "rbac"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report shows what the operator and the runner pods wrote meanwhile."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and report.when in {"setup", "call"}:
        for section in item.stash.get(_ON_FAILURE, []):
            title, text = section()
            report.sections.append((title, text[-30000:] or "(nothing)"))


def _on_failure(request: pytest.FixtureRequest, show: Callable[[], tuple[str, str]]) -> None:
    request.node.stash.setdefault(_ON_FAILURE, []).append(show)


@pytest.fixture(scope="session")
def _operator_process(
    apiserver: kube.APIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[operator_process.Operator]:
    op = operator_process.Operator(
        apiserver, RBAC, tmp_path_factory.mktemp("operator") / "operator.log"
    )
    op.install_rbac()
    op.start()
    yield op
    op.stop()


@pytest.fixture
def operator(
    _operator_process: operator_process.Operator, request: pytest.FixtureRequest
) -> Iterator[operator_process.Operator]:
    """``autoflow operator`` running as its ServiceAccount (clusterwide), shared by the
    session; a test may restart or stop it (the next test starts it again).

    A test fails if the API server refused the operator anything by RBAC meanwhile: the
    operator's role in config/rbac must cover every request its handlers make.
    """
    op = _operator_process
    op.start()
    mark = op.log_size()
    _on_failure(request, lambda: ("operator log", op.log_since(mark)))
    yield op
    denied = operator_process.rbac_denials(op.log_since(mark))
    if denied:
        pytest.fail(f"the operator's RBAC refused: {denied}", pytrace=False)


@pytest.fixture
def store_url(operator: operator_process.Operator, tmp_path: Path) -> Iterator[str]:
    """The operator restarted with a run store (and back without one afterwards): it
    archives into it, and runner Jobs get its URL from the Secret ``STORE_SECRET`` of their
    namespace (``objects.store_secret`` makes it). SQLite in the test's directory, shared by the
    operator, the runner processes and the test."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    keys = {"AUTOFLOW_STORE_URL": url, "AUTOFLOW_STORE_SECRET": objects.STORE_SECRET}
    with operator.restarted_with(keys):
        yield url


@pytest.fixture(scope="session")
def _executor(
    apiserver: kube.APIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[executor_mod.Executor]:
    ex = executor_mod.Executor(apiserver, tmp_path_factory.mktemp("pods"))
    ex.start()
    yield ex
    ex.stop()


@pytest.fixture
def executor(
    _executor: executor_mod.Executor, namespace: str, request: pytest.FixtureRequest
) -> Iterator[executor_mod.NamespaceExecutor]:
    """Runs the Jobs of this test's namespace (see executor.py); stops them afterwards."""
    jobs = _executor.serve(namespace)
    errors = len(_executor.errors)
    _on_failure(
        request,
        lambda: ("runner pods", "\n".join([*_executor.errors[errors:], jobs.logs()])),
    )
    yield jobs
    jobs.stop()


# -- the web UI's people: RBAC and an OIDC provider -------------------------------------------

WEBUI_IDENTITY = "nobody"  # stands in for the autoflow-webui ServiceAccount


def _binding(namespace: str, role: str, kind: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": f"{role}-{name}".replace("@", "-").replace(".", "-"),
            "namespace": namespace,
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}],
    }


@pytest.fixture
def two_namespaces(apiserver: kube.APIServer, namespace: str) -> Iterator[tuple[str, str]]:
    """The web UI's RBAC installed (its identity may only impersonate) and two namespaces:
    Ann (user ann@example.com) edits the first, group team-b views the second."""
    other = f"{namespace[:50]}-b"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}
    apiserver.apply(ns)
    apiserver.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "autoflow-system"}}
    )
    apiserver.apply([d for d in yaml.safe_load_all((RBAC / "webui.yaml").read_text()) if d])
    sa = apiserver.identities[WEBUI_IDENTITY].user.split(":")
    apiserver.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "autoflow-webui-impersonate-test"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "autoflow-webui-impersonate",
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa[3], "namespace": sa[2]}],
        }
    )
    for plural in ("workflows", "workflowruns", "integrations", "schedules"):
        # A new CRD's storage answers 429 for a while: wait here, as a cluster's would be.
        apiserver.request("GET", f"/apis/autoflow.dev/v1alpha1/{plural}")
    apiserver.apply(_binding(namespace, "autoflow-editor", "User", "ann@example.com"))
    apiserver.apply(_binding(other, "autoflow-viewer", "Group", "team-b"))
    yield namespace, other
    with contextlib.suppress(kube.APIError):
        apiserver.delete(ns)


@pytest.fixture
def provider() -> Iterator[oidc_server.OidcProvider]:
    """The local OpenID Connect provider people sign in through (tests/oidc_server.py)."""
    with httpserver.serve() as server:
        yield oidc_server.OidcProvider(server)
