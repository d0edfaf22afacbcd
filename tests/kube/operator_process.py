"""The operator as the tests run it: ``autoflow operator`` in a subprocess, under its own RBAC.

``Operator`` applies ``config/rbac/operator.yaml`` (namespace, ServiceAccount, ClusterRole,
binding) as admin, then starts ``python -m autoflow.cli.main operator`` with a kubeconfig
holding the token of ``system:serviceaccount:autoflow-system:autoflow-operator`` (the
apiserver fixture's ``operator`` identity), never admin's. Clusterwide, standalone (no kopf
peering). Its output goes to a log file; ``log_since(mark)`` gives what it wrote during one
test, which the fixture shows when that test fails. (The module is not called ``operator``:
that name is the standard library's, imported long before any test.)::

    op = Operator(server, rbac_dir, log_path)
    op.start()                 # waits until it has started up
    op.restart()               # stop (SIGTERM, as a Deployment rollout would), start
    op.log_since(0)
    op.stop()
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import apiserver as kube
import yaml

API_VERSION = "autoflow.dev/v1alpha1"
STARTED = "autoflow operator running as"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


OPERATOR_USER = "system:serviceaccount:autoflow-system:autoflow-operator"
_DENIED = re.compile(r"forbidden: User \\?\"" + re.escape(OPERATOR_USER) + r"\\?\" cannot [^.]*")


def rbac_denials(log: str) -> list[str]:
    """The requests RBAC refused the operator, as the API server worded them in its log."""
    return sorted(set(_DENIED.findall(log)))


class Operator:
    def __init__(
        self,
        server: kube.APIServer,
        rbac_dir: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.server = server
        self.rbac_dir = rbac_dir
        self.log_path = log_path
        self.kubeconfig = server.kubeconfig("operator")
        self.env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "AUTOFLOW_RUNNER_IMAGE": "test",
            "AUTOFLOW_HANDLER_BACKOFF_SECONDS": "1",
            "AUTOFLOW_INTEGRATION_TICK_SECONDS": "0.5",
            "AUTOFLOW_METRICS_PORT": "0",  # a free port: other operators may run beside it
            **(env or {}),
        }
        self.env.pop("KUBERNETES_SERVICE_HOST", None)  # never the in-cluster account
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def install_rbac(self) -> list[dict[str, Any]]:
        """Applies the operator's manifests as admin; returns them."""
        docs = [
            doc for doc in yaml.safe_load_all((self.rbac_dir / "operator.yaml").read_text()) if doc
        ]
        self.server.apply(docs)
        return docs

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, mark: int) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(mark)
            return fh.read().decode(errors="replace")

    def _wait_for_storage(self) -> None:
        """List each kind once as admin: the first list of a new CRD answers 429 "storage is
        (re)initializing" for a while, which the operator would sit out in retries."""
        for kind in ("Workflow", "WorkflowRun", "Integration", "Schedule"):
            self.server.request("GET", self.server.path(API_VERSION, kind, "default"))
        self.server.request("GET", "/apis/batch/v1/jobs")

    def start(self) -> None:
        if self.running:
            return
        self._wait_for_storage()
        mark = self.log_size()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", "autoflow.cli.main", "operator"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
            )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while STARTED not in self.log_since(mark):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the operator exited with {self.process.returncode}:\n{self.log_since(mark)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"the operator did not start:\n{self.log_since(mark)}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @contextlib.contextmanager
    def restarted_with(self, settings: Mapping[str, str]) -> Iterator[None]:
        """The operator restarted with these environment settings for the block, and
        restarted without them afterwards."""
        self.env.update(settings)
        self.restart()
        try:
            yield
        finally:
            for key in settings:
                self.env.pop(key, None)
            self.restart()
