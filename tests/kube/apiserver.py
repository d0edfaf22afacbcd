"""A real kube-apiserver and etcd on loopback ports, for the Kubernetes API test tier.

``APIServer`` starts etcd and kube-apiserver (the envtest binaries that ``hack/tools.sh
envtest`` builds) in a temporary directory, with RBAC authorisation and a static token per
identity, and stops both and removes the directory when closed. Nothing else runs: no
controller manager, no scheduler, no kubelet (see docs/testing.md for what that leaves out).

Identities are named; each has a bearer token, an ``httpx.Client`` and a kubeconfig file::

    with apiserver.APIServer(apiserver.find_assets()) as server:
        server.install_crds(Path("crds"))
        server.apply(manifest, namespace="shop")                # server-side apply, as admin
        server.request("GET", path, user="operator")           # -> JSON; APIError on >= 400
        server.kubectl("get", "workflowruns", "-n", "shop")    # -> CompletedProcess
        server.client("runner").get(...)                        # a plain httpx.Client

``admin`` is in ``system:masters`` (everything allowed without RBAC objects); ``operator`` and
``runner`` are the service accounts of the operator and the runners in ``autoflow-system``, with
the groups Kubernetes gives a service account token and, on a fresh server, no permissions.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
CRD_TIMEOUT = 30.0
FIELD_MANAGER = "autoflow-tests"


class AssetsUnavailable(RuntimeError):
    """The kube-apiserver, etcd and kubectl binaries cannot be found or built here."""


class StartError(RuntimeError):
    """etcd or kube-apiserver did not come up; the message ends with the tail of its log."""


class APIError(Exception):
    """The API server answered with an error; ``message`` is the Status message it sent."""

    def __init__(self, method: str, path: str, response: httpx.Response) -> None:
        self.code = response.status_code
        try:
            self.status: dict[str, Any] = response.json()
        except ValueError:
            self.status = {"message": response.text}
        self.reason = str(self.status.get("reason", ""))
        self.message = str(self.status.get("message", response.text))
        super().__init__(f"{method} {path}: {self.code} {self.reason}: {self.message}")


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a request is made as: a line of the apiserver's static token file."""

    name: str  # how tests refer to it: server.client("operator")
    user: str
    groups: tuple[str, ...]
    token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))


def service_account(name: str, account: str, namespace: str) -> Identity:
    """The identity a pod running as ``namespace/account`` has, with the groups of its token."""
    return Identity(
        name,
        f"system:serviceaccount:{namespace}:{account}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


def default_identities() -> list[Identity]:
    return [
        Identity("admin", "admin", ("system:masters", "system:authenticated")),
        service_account("operator", "autoflow-operator", "autoflow-system"),
        service_account("runner", "autoflow-runner", "autoflow-system"),
        # Bound to nothing by any install: RBAC tests grant it what they check.
        service_account("nobody", "autoflow-test-nobody", "autoflow-system"),
    ]


def is_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def find_assets(progress: TextIO | None = None) -> Path:
    """The directory holding kube-apiserver, etcd and kubectl.

    ``$KUBEBUILDER_ASSETS`` when it holds them; otherwise whatever ``hack/tools.sh envtest``
    prints (its cache, or a build from the Go module proxy on first use: minutes, with its
    progress lines copied to ``progress``).
    """
    names = ("kube-apiserver", "etcd", "kubectl")
    env = os.environ.get("KUBEBUILDER_ASSETS")
    if env and all(os.access(Path(env, n), os.X_OK) for n in names):
        return Path(env)
    stderr: collections.deque[str] = collections.deque(maxlen=30)
    try:
        with subprocess.Popen(
            ["bash", str(REPO / "hack" / "tools.sh"), "envtest"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            for line in proc.stderr:  # stdout is one line: it cannot fill its pipe meanwhile
                stderr.append(line)
                if progress is not None:
                    progress.write(line)
                    progress.flush()
            lines = proc.stdout.read().strip().splitlines()
    except OSError as exc:
        raise AssetsUnavailable(f"hack/tools.sh envtest could not run: {exc}") from exc
    if proc.returncode != 0 or not lines:
        raise AssetsUnavailable(
            f"hack/tools.sh envtest failed (exit {proc.returncode}):\n{''.join(stderr).rstrip()}"
        )
    assets = Path(lines[-1])
    missing = [n for n in names if not os.access(assets / n, os.X_OK)]
    if missing:
        raise AssetsUnavailable(f"hack/tools.sh envtest printed {assets}, which lacks {missing}")
    return assets


class APIServer:
    """etcd + kube-apiserver on free loopback ports; a context manager that cleans up."""

    def __init__(self, assets: Path, identities: Iterable[Identity] | None = None) -> None:
        self.assets = assets
        self.identities = {i.name: i for i in (identities or default_identities())}
        self.dir = Path(tempfile.mkdtemp(prefix="autoflow-apiserver-"))
        self.url = ""
        self.ca_file = self.dir / "certs" / "apiserver.crt"  # self-signed by the apiserver
        self.started_in = 0.0  # seconds from start() to /readyz answering ok
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._clients: dict[str, httpx.Client] = {}
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}  # (apiVersion, kind)
        self.warnings: list[str] = []  # every Warning header answered to request(), in order

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> APIServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        began = time.monotonic()
        etcd_port, peer_port, secure_port = _free_ports(3)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._write_credentials()
        self._etcd = self._spawn(
            "etcd",
            "--name=default",
            f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        )
        self._wait(self._etcd, "etcd", lambda: _get_ok(f"{etcd_url}/health", '"health":"true"'))
        self._apiserver = self._spawn(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={secure_port}",
            f"--cert-dir={self.dir / 'certs'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.dir / 'sa.pub'}",
            f"--service-account-signing-key-file={self.dir / 'sa.key'}",
            f"--token-auth-file={self.dir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            # no controller manager creates the `default` ServiceAccount that admission wants
            "--disable-admission-plugins=ServiceAccount",
        )
        self.url = f"https://127.0.0.1:{secure_port}"
        self._wait(self._apiserver, "kube-apiserver", self._ready)
        self.started_in = time.monotonic() - began
        for identity in self.identities.values():
            self._write_kubeconfig(identity)

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd (terminate, then kill), and remove the directory."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        for proc in (self._apiserver, self._etcd):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._apiserver = self._etcd = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def _spawn(self, binary: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.dir / f"{binary}.log").open("wb")
        with log:
            return subprocess.Popen(
                [str(self.assets / binary), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                preexec_fn=_die_with_parent,  # a killed test run leaves no servers behind
            )

    def _wait(self, proc: subprocess.Popen[bytes], binary: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StartError(f"{binary} exited with {proc.returncode}:\n{self._log(binary)}")
            if ready():
                return
            time.sleep(0.1)
        raise StartError(f"{binary} not ready after {START_TIMEOUT:.0f}s:\n{self._log(binary)}")

    def _ready(self) -> bool:
        try:  # the certificate appears, and may be half written, while the server starts
            tls = self._tls()
        except (OSError, ssl.SSLError):
            return False
        return _get_ok(f"{self.url}/readyz", "ok", verify=tls)

    def _log(self, binary: str) -> str:
        try:
            return _tail((self.dir / f"{binary}.log").read_text(errors="replace"))
        except OSError:
            return "(no log)"

    def _write_credentials(self) -> None:
        key, pub = self.dir / "sa.key", self.dir / "sa.pub"
        for cmd in (
            ["openssl", "genrsa", "-out", str(key), "2048"],
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
        ):
            subprocess.run(cmd, check=True, capture_output=True)
        lines = [
            f'{i.token},{i.user},{i.user},"{",".join(i.groups)}"\n'
            for i in self.identities.values()
        ]
        (self.dir / "tokens.csv").write_text("".join(lines))

    def _write_kubeconfig(self, identity: Identity) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "autoflow-test",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": identity.name, "user": {"token": identity.token}}],
            "contexts": [
                {
                    "name": identity.name,
                    "context": {"cluster": "autoflow-test", "user": identity.name},
                }
            ],
            "current-context": identity.name,
        }
        self.kubeconfig(identity.name).write_text(yaml.safe_dump(config))

    # -- access ----------------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def kubeconfig(self, user: str = "admin") -> Path:
        """A kubeconfig file that talks to this server as ``user``."""
        return self.dir / f"kubeconfig-{user}.yaml"

    def client(self, user: str = "admin") -> httpx.Client:
        """An ``httpx.Client`` for the API as ``user``; closed when the server stops."""
        if user not in self._clients:
            self._clients[user] = httpx.Client(
                base_url=self.url,
                verify=self._tls(),
                headers={"Authorization": f"Bearer {self.identities[user].token}"},
                timeout=30.0,
            )
        return self._clients[user]

    def kubectl(
        self, *args: str, user: str = "admin", check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs the kubectl that matches this server, as ``user``; ``check`` raises on failure."""
        done = subprocess.run(
            [
                str(self.assets / "kubectl"),
                f"--kubeconfig={self.kubeconfig(user)}",
                f"--cache-dir={self.dir / 'kubectl-cache'}",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    def request(
        self,
        method: str,
        path: str,
        *,
        user: str = "admin",
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        accept: str = "application/json",
    ) -> Any:
        """One API call; returns the decoded JSON answer, raises ``APIError`` on >= 400."""
        headers = {"Accept": accept}
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body)
        for _ in range(50):
            response = self.client(user).request(
                method, path, content=content, headers=headers, params=params
            )
            if response.status_code != 429:
                break
            # "storage is (re)initializing" for a new resource's first list; clients wait
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 0.2))
        self.warnings += [f"{method} {path}: {w}" for w in response.headers.get_list("Warning")]
        if response.status_code >= 400:
            raise APIError(method, path, response)
        return response.json()

    # -- objects ---------------------------------------------------------------------------

    def path(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """The URL path of a collection or object, found through API discovery."""
        plural, namespaced = self._resource(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            base += f"/namespaces/{namespace or 'default'}"
        parts = [base, plural, *([name] if name else []), *([subresource] if subresource else [])]
        return "/".join(parts)

    def path_of(self, obj: dict[str, Any], subresource: str | None = None) -> str:
        meta = obj["metadata"]
        return self.path(
            obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"], subresource
        )

    def apply(
        self,
        objs: dict[str, Any] | Iterable[dict[str, Any]],
        *,
        user: str = "admin",
        namespace: str | None = None,
        field_manager: str = FIELD_MANAGER,
    ) -> Any:
        """Server-side apply (create or update) of one object or a list; returns what was stored.

        Field validation is Strict here and in ``create``: a field the schema does not know
        fails the call instead of being pruned silently. ``namespace`` fills in objects that
        do not name one.
        """
        params = {"fieldManager": field_manager, "force": "true", "fieldValidation": "Strict"}
        stored = [
            self.request(
                "PATCH",
                self.path_of(obj),
                user=user,
                body=obj,
                content_type="application/apply-patch+yaml",  # JSON is YAML
                params=params,
            )
            for obj in self._placed(objs, namespace)
        ]
        return stored[0] if isinstance(objs, dict) else stored

    def create(
        self, obj: dict[str, Any], *, user: str = "admin", namespace: str | None = None
    ) -> Any:
        """POST to the collection, as ``kubectl create`` (and client-side apply) does."""
        (obj,) = self._placed(obj, namespace)
        meta = obj["metadata"]
        return self.request(
            "POST",
            self.path(obj["apiVersion"], obj["kind"], meta.get("namespace")),
            user=user,
            body=obj,
            params={"fieldValidation": "Strict"},
        )

    def _placed(
        self, objs: dict[str, Any] | Iterable[dict[str, Any]], namespace: str | None
    ) -> list[dict[str, Any]]:
        placed = []
        for obj in [objs] if isinstance(objs, dict) else objs:
            _, namespaced = self._resource(obj["apiVersion"], obj["kind"])
            if namespaced and namespace and not obj["metadata"].get("namespace"):
                obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
            placed.append(obj)
        return placed

    def get(self, obj: dict[str, Any], *, user: str = "admin") -> Any:
        return self.request("GET", self.path_of(obj), user=user)

    def merge_patch(
        self,
        obj: dict[str, Any],
        patch: dict[str, Any],
        *,
        subresource: str | None = None,
        user: str = "admin",
    ) -> Any:
        """A JSON merge patch (``kubectl patch --type=merge``) of ``obj`` or its subresource."""
        return self.request(
            "PATCH",
            self.path_of(obj, subresource),
            user=user,
            body=patch,
            content_type="application/merge-patch+json",
        )

    def delete(self, obj: dict[str, Any], *, user: str = "admin") -> Any:
        return self.request("DELETE", self.path_of(obj), user=user)

    def install_crds(self, directory: Path, pattern: str = "*.yaml") -> list[dict[str, Any]]:
        """Applies every CRD in ``directory`` and waits until each is Established."""
        crds = [
            doc
            for file in sorted(directory.glob(pattern))
            for doc in yaml.safe_load_all(file.read_text())
            if doc and doc.get("kind") == "CustomResourceDefinition"
        ]
        self.apply(crds)
        installed = [self.wait_established(crd["metadata"]["name"]) for crd in crds]
        self._resources.clear()  # discovery has new resources now
        return installed

    def wait_established(self, name: str, timeout: float = CRD_TIMEOUT) -> Any:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        deadline = time.monotonic() + timeout
        while True:
            crd = self.request("GET", path)
            status = crd.get("status") or {}  # conditions are null until the first check
            conditions = {c["type"]: c for c in status.get("conditions") or []}
            if conditions.get("Established", {}).get("status") == "True":
                return crd
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout}s: {conditions}")
            time.sleep(0.05)

    def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) for a kind; re-reads discovery once when it is not known."""
        key = (api_version, kind)
        if key not in self._resources:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            with contextlib.suppress(APIError):
                for res in self.request("GET", base)["resources"]:
                    if "/" not in res["name"]:
                        self._resources[(api_version, res["kind"])] = (
                            res["name"],
                            res["namespaced"],
                        )
        if key not in self._resources:
            raise LookupError(f"the API server serves no {kind} in {api_version}")
        return self._resources[key]


def _free_ports(count: int) -> list[int]:
    # Held open together so the kernel hands out distinct ports.
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _get_ok(url: str, expect: str, verify: ssl.SSLContext | bool = False) -> bool:
    try:
        response = httpx.get(url, verify=verify, timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and expect in response.text


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _die_with_parent() -> None:
    # SIGKILL, not SIGTERM: an orphaned kube-apiserver's graceful shutdown hangs on the etcd
    # that is dying beside it.
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
