"""A test executor for Jobs: it stands in for the Job controller and the kubelet.

A bare kube-apiserver runs no controllers, so a Job never gets a pod and never gets a status.
``Executor`` plays those parts for the Jobs of the namespaces a test hands it, with what the
real ones would do that Autoflow relies on:

- **the kubelet**: for each "pod" it obtains a token for the pod's ``serviceAccountName``
  through the TokenRequest API (``POST .../serviceaccounts/SA/token``, as admin; this also
  stands in for the ServiceAccount token controller: no token Secrets are made), writes a
  kubeconfig with it, and runs the container's ``command`` + ``args`` as a local process with
  the container's env (``valueFrom.secretKeyRef`` read from the Secret, as admin; a missing
  optional one left out) and ``KUBECONFIG`` (a leading ``autoflow`` becomes this Python running
  ``autoflow.cli.main``). Pod output goes to a log file per pod.
- **the Job controller**: it writes the Job status as the controller does (``startTime``,
  ``active``, ``ready``, ``terminating``, ``succeeded``/``failed`` counts,
  ``SuccessCriteriaMet`` then ``Complete``, or ``FailureTarget`` then ``Failed`` with reason
  ``BackoffLimitExceeded`` or ``DeadlineExceeded``, ``completionTime``); starts a new pod
  after a failed one until ``backoffLimit`` failures are exceeded; enforces
  ``activeDeadlineSeconds``.
- **terminating pods, as the real Job controller counts them**: on ``spec.suspend: true`` the
  controller deletes the pod and, in the same status write, drops it from ``active`` and
  ``ready`` at once, counts it in ``terminating`` (Kubernetes 1.29+, JobPodReplacementPolicy)
  and sets the ``Suspended`` condition, although the process is still running its grace
  period. So does this executor: SIGTERM to the process, ``active: 0, ready: 0,
  terminating: 1`` and ``Suspended`` written at once, ``terminating: 0`` only once the process
  has exited (SIGKILL after ``TERMINATION_GRACE_SECONDS``). ``evict`` plays a node drain the
  same way (SIGTERM, terminating while it exits); the pod then counts as failed and the
  next pod starts.

What it does not do: scheduling, images, resources, volumes, probes, ``restartPolicy:
OnFailure``, parallelism or indexed Jobs, pod objects (there are none), or pod backoff delays.

One ``Executor`` serves a test session (one watch on every Job); tests hand it their
namespace with ``serve(namespace)`` and get a ``NamespaceExecutor`` back::

    jobs = executor.serve(namespace)
    jobs.wait_started("run-1")          # the first pod's process is running
    jobs.kill("run-1")                  # SIGKILL: a pod failure; the next pod starts
    jobs.evict("run-1")                 # SIGTERM as on a node drain; the next pod starts
    jobs.wait_started("run-1", pod=2)
    jobs.logs("run-1")                  # every pod's output
    jobs.stop()                         # every process of the namespace is stopped
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import apiserver as kube
import httpx
import yaml

AUTOFLOW = [sys.executable, "-P", "-m", "autoflow.cli.main"]
TERMINATION_GRACE_SECONDS = 30.0
WATCH_SECONDS = 60
POLL = 0.02


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class Pod:
    """One process the executor ran for a Job."""

    index: int  # 1, 2, ...: the n-th pod of its Job
    process: subprocess.Popen[bytes]
    log: Path
    started: float

    @property
    def exit_code(self) -> int | None:
        return self.process.poll()


class _JobRunner:
    """Drives one Job: pods one after another, the Job status after each change."""

    def __init__(self, executor: Executor, job: dict[str, Any]) -> None:
        self.executor = executor
        self.job = job
        self.namespace = job["metadata"]["namespace"]
        self.name = job["metadata"]["name"]
        self.pods: list[Pod] = []
        self.failed = 0
        self.finished = False
        self.start_time: str | None = None
        self._changed = threading.Condition()
        self._stopping = False
        self._evicting = False
        self._started_at = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"job-{self.namespace}/{self.name}", daemon=True
        )
        self._dir = executor.dir / self.namespace / self.name
        self._dir.mkdir(parents=True, exist_ok=True)

    # -- driven from outside ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def update(self, job: dict[str, Any]) -> None:
        with self._changed:
            self.job = job
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        pod = self.current()
        if pod is not None and pod.exit_code is None:
            _signal(pod.process, signal.SIGKILL)
            pod.process.wait()
        self._thread.join(timeout=10)

    def current(self) -> Pod | None:
        with self._changed:
            return self.pods[-1] if self.pods else None

    def kill(self) -> Pod:
        pod = self.current()
        if pod is None or pod.exit_code is not None:
            raise AssertionError(f"Job {self.name} has no running pod to kill")
        _signal(pod.process, signal.SIGKILL)
        return pod

    def evict(self) -> Pod:
        pod = self.current()
        if pod is None or pod.exit_code is not None:
            raise AssertionError(f"Job {self.name} has no running pod to evict")
        with self._changed:
            self._evicting = True
            self._changed.notify_all()
        return pod

    # -- the controller loop ---------------------------------------------------------------

    def _suspended(self) -> bool:
        return bool(self.job["spec"].get("suspend"))

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # shown in the test's failure output
            self.executor.errors.append(f"Job {self.namespace}/{self.name}: {exc!r}")
            raise

    def _loop(self) -> None:
        while not self._stopping and not self.finished:
            if self._suspended():
                self._write_status(active=0, suspended=True)
                with self._changed:
                    self._changed.wait_for(lambda: self._stopping or not self._suspended())
                if self._stopping:
                    return
                self.start_time = None  # a resumed Job starts its deadline again
                continue
            pod = self._start_pod()
            if pod is None:
                return
            outcome = self._wait(pod)
            if outcome == "stopped":
                return
            if outcome == "suspended":
                continue  # the loop writes the Suspended status
            if outcome == "deadline":
                self._finish("Failed", "DeadlineExceeded", "Job was active longer than specified")
            elif pod.exit_code == 0:
                self._finish("Complete", "CompletionsReached", "Reached expected number")
            else:
                self.failed += 1
                if self.failed > int(self.job["spec"].get("backoffLimit", 6)):
                    self._finish(
                        "Failed",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    )
                else:
                    self._write_status(active=0)

    def _start_pod(self) -> Pod | None:
        spec = self.job["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        account = spec.get("serviceAccountName") or "default"
        token = self._token(account)
        if token is None:
            return None
        index = len(self.pods) + 1
        kubeconfig = self._dir / f"kubeconfig-{index}.yaml"
        kubeconfig.write_text(yaml.safe_dump(self.executor.kubeconfig(token)))
        command = [*container.get("command", []), *container.get("args", [])]
        if command and command[0] == "autoflow":
            command = [*AUTOFLOW, *command[1:]]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._dir),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **self._env(container.get("env", [])),
            "KUBECONFIG": str(kubeconfig),
        }
        log = self._dir / f"pod-{index}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=self._dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,  # SIGKILL reaches whatever the command started
            )
        pod = Pod(index, process, log, time.monotonic())
        with self._changed:
            self.pods.append(pod)
            self._changed.notify_all()
        if self.start_time is None:
            self.start_time = _now()
            self._started_at = time.monotonic()
        self._write_status(active=1)
        return pod

    def _env(self, entries: list[dict[str, Any]]) -> dict[str, str]:
        """The container's env as the kubelet resolves it: values, and Secrets' keys."""
        env: dict[str, str] = {}
        for entry in entries:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                env[entry["name"]] = entry.get("value", "")
                continue
            path = f"/api/v1/namespaces/{self.namespace}/secrets/{ref['name']}"
            response = self.executor.http.get(path)
            data = response.json().get("data") or {} if response.status_code == 200 else {}
            if ref["key"] in data:
                env[entry["name"]] = base64.b64decode(data[ref["key"]]).decode()
            elif not ref.get("optional"):
                raise AssertionError(f"pod env {entry['name']}: no key {ref['key']} in {path}")
        return env

    def _token(self, account: str) -> str | None:
        """A token for the pod's ServiceAccount, as the kubelet gets one (TokenRequest)."""
        path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        }
        while not self._stopping:
            response = self.executor.http.post(path, json=body)
            if response.status_code == 201 or response.status_code == 200:
                token: str = response.json()["status"]["token"]
                return token
            if response.status_code != 404:
                raise AssertionError(f"TokenRequest {path}: {response.status_code} {response.text}")
            time.sleep(0.2)  # no such ServiceAccount (yet): the pod cannot start
        return None

    def _wait(self, pod: Pod) -> str:
        """How the pod ended: exited, deadline, suspended or stopped."""
        deadline_s = self.job["spec"].get("activeDeadlineSeconds")
        deadline = None if deadline_s is None else self._started_at + float(deadline_s)
        while True:
            if pod.exit_code is not None:
                return "exited"
            with self._changed:
                if self._stopping:
                    return "stopped"
                if self._suspended():
                    break
                evicted, self._evicting = self._evicting, False
                if not evicted:
                    self._changed.wait(POLL)
            if evicted:
                # A node drain: the pod is terminating (not active), it has its grace period,
                # and its exit counts as a failure.
                self._terminating(pod, suspended=False)
                return "exited"
            if deadline is not None and time.monotonic() >= deadline:
                _terminate(pod.process)
                return "deadline"
        # The Job controller deletes the pod: at once it is terminating, not active, and the
        # Job Suspended; the process has its grace period (SIGTERM, then SIGKILL).
        self._terminating(pod, suspended=True)
        return "suspended"

    def _terminating(self, pod: Pod, *, suspended: bool) -> None:
        _signal(pod.process, signal.SIGTERM)
        self._write_status(active=0, terminating=1, suspended=suspended)
        _terminate(pod.process)  # waits out the grace period, then SIGKILL

    # -- the Job status --------------------------------------------------------------------

    def _conditions(self) -> list[dict[str, Any]]:
        return list((self.job.get("status") or {}).get("conditions") or [])

    def _write_status(self, *, active: int, terminating: int = 0, suspended: bool = False) -> None:
        status: dict[str, Any] = {
            "active": active,
            "ready": active,
            "terminating": terminating,
            "failed": self.failed,
            "succeeded": 0,
            "startTime": self.start_time,
        }
        conditions = [c for c in self._conditions() if c["type"] != "Suspended"]
        if suspended:
            now = _now()
            conditions.append(
                {
                    "type": "Suspended",
                    "status": "True",
                    "reason": "JobSuspended",
                    "message": "Job suspended",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                }
            )
            status["startTime"] = None
        status["conditions"] = conditions or None
        self._patch_status(status)

    def _finish(self, type_: str, reason: str, message: str) -> None:
        now = _now()
        first = "SuccessCriteriaMet" if type_ == "Complete" else "FailureTarget"
        conditions = [
            {
                "type": t,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }
            for t in (first, type_)
        ]
        status: dict[str, Any] = {
            "active": 0,
            "ready": 0,
            "terminating": 0,
            "failed": self.failed + (type_ == "Failed" and reason == "DeadlineExceeded"),
            "succeeded": 1 if type_ == "Complete" else 0,
            "startTime": self.start_time or now,
            "conditions": [c for c in self._conditions() if c["type"] != "Suspended"] + conditions,
        }
        if type_ == "Complete":
            status["completionTime"] = now
        self._patch_status(status)
        self.finished = True

    def _patch_status(self, status: dict[str, Any]) -> None:
        path = f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{self.name}/status"
        response = self.executor.http.patch(
            path,
            content=json.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if response.status_code == 404:
            self._stopping = True  # the Job is gone
            return
        if response.status_code >= 400:
            raise AssertionError(f"PATCH {path}: {response.status_code} {response.text}")
        with self._changed:
            self.job = response.json()


def _signal(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    _signal(process, signal.SIGTERM)
    try:
        process.wait(timeout=TERMINATION_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL)
        process.wait()


class Executor:
    """Watches every Job; runs those in the namespaces handed to ``serve``."""

    def __init__(self, server: kube.APIServer, directory: Path) -> None:
        self.server = server
        self.dir = directory
        self.errors: list[str] = []
        self.http = httpx.Client(
            base_url=server.url,
            verify=ssl.create_default_context(cafile=str(server.ca_file)),
            headers={"Authorization": f"Bearer {server.identities['admin'].token}"},
            timeout=30.0,
        )
        self._watch_http = httpx.Client(
            base_url=server.url,
            verify=ssl.create_default_context(cafile=str(server.ca_file)),
            headers={"Authorization": f"Bearer {server.identities['admin'].token}"},
            timeout=httpx.Timeout(30.0, read=None),
        )
        self._lock = threading.Lock()
        self._served: set[str] = set()
        self._seen: dict[str, dict[str, Any]] = {}  # uid → latest Job
        self._runners: dict[str, _JobRunner] = {}  # uid → runner
        self._stopping = threading.Event()
        self._watching = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="job-executor", daemon=True)
        self._socket: socket.socket | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._watching.wait(timeout=10):
            raise RuntimeError("the executor's Job watch did not start")

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            runners = list(self._runners.values())
        for runner in runners:
            runner.stop()
        if self._socket is not None:  # wakes the watch from its blocking read
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self._watch_http.close()
        self.http.close()

    def kubeconfig(self, token: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.server.url,
                        "certificate-authority": str(self.server.ca_file),
                    },
                }
            ],
            "users": [{"name": "pod", "user": {"token": token}}],
            "contexts": [{"name": "pod", "context": {"cluster": "test", "user": "pod"}}],
            "current-context": "pod",
        }

    def serve(self, namespace: str) -> NamespaceExecutor:
        with self._lock:
            self._served.add(namespace)
            waiting = [j for j in self._seen.values() if j["metadata"]["namespace"] == namespace]
        for job in waiting:
            self._handle("ADDED", job)
        return NamespaceExecutor(self, namespace)

    def release(self, namespace: str) -> None:
        """Stop serving ``namespace``: every process of its Jobs is stopped."""
        with self._lock:
            self._served.discard(namespace)
            runners = [(uid, r) for uid, r in self._runners.items() if r.namespace == namespace]
        for uid, runner in runners:
            runner.stop()
            with self._lock:
                self._runners.pop(uid, None)

    def runner(self, namespace: str, name: str) -> _JobRunner | None:
        with self._lock:
            for runner in self._runners.values():
                if runner.namespace == namespace and runner.name == name:
                    return runner
        return None

    # -- the watch -------------------------------------------------------------------------

    def _watch(self) -> None:
        version = ""
        while not self._stopping.is_set():
            try:
                if not version:
                    listed = self.http.get("/apis/batch/v1/jobs").json()
                    version = listed["metadata"]["resourceVersion"]
                    for job in listed["items"]:
                        self._handle("ADDED", job)
                    self._watching.set()
                params = {
                    "watch": "true",
                    "resourceVersion": version,
                    "timeoutSeconds": str(WATCH_SECONDS),
                    "allowWatchBookmarks": "true",
                }
                with self._watch_http.stream("GET", "/apis/batch/v1/jobs", params=params) as r:
                    stream = r.extensions.get("network_stream")
                    self._socket = stream.get_extra_info("socket") if stream else None
                    if self._stopping.is_set():
                        return
                    if r.status_code == 410:
                        version = ""
                        continue
                    for line in r.iter_lines():
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            version = ""  # expired: list again
                            break
                        version = event["object"]["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self._handle(event["type"], event["object"])
            except (httpx.HTTPError, RuntimeError) as exc:
                if self._stopping.is_set():
                    return
                self.errors.append(f"Job watch: {exc!r}")
                time.sleep(0.2)

    def _handle(self, type_: str, job: dict[str, Any]) -> None:
        if self._stopping.is_set():
            return
        uid = job["metadata"]["uid"]
        with self._lock:
            if type_ == "DELETED":
                self._seen.pop(uid, None)
                runner = self._runners.pop(uid, None)
            else:
                self._seen[uid] = job
                runner = self._runners.get(uid)
                if runner is None and job["metadata"]["namespace"] in self._served:
                    runner = self._runners[uid] = _JobRunner(self, job)
                    runner.start()
                    return
        if runner is None:
            return
        if type_ == "DELETED":
            runner.stop()  # the garbage collector would delete its pods
        else:
            runner.update(job)


@dataclasses.dataclass
class NamespaceExecutor:
    """The executor as one test sees it: the Jobs of its namespace."""

    executor: Executor
    namespace: str

    def _runner(self, job: str, timeout: float = 15.0) -> _JobRunner:
        deadline = time.monotonic() + timeout
        while (runner := self.executor.runner(self.namespace, job)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Job {self.namespace}/{job} appeared in {timeout}s")
            time.sleep(POLL)
        return runner

    def wait_started(self, job: str, pod: int = 1, timeout: float = 15.0) -> Pod:
        """The ``pod``-th process of ``job``, once it is running."""
        runner = self._runner(job, timeout)
        deadline = time.monotonic() + timeout
        while len(runner.pods) < pod:
            if time.monotonic() > deadline:
                raise TimeoutError(f"pod {pod} of Job {job} did not start in {timeout}s")
            time.sleep(POLL)
        return runner.pods[pod - 1]

    def kill(self, job: str) -> Pod:
        """SIGKILL the Job's running process: a pod failure, so the next pod starts."""
        return self._runner(job).kill()

    def evict(self, job: str) -> Pod:
        """SIGTERM the Job's running process as a node drain does: it is terminating for its
        grace period; when it exits non-zero that is a pod failure and the next pod starts."""
        return self._runner(job).evict()

    def pods(self, job: str) -> list[Pod]:
        runner = self.executor.runner(self.namespace, job)
        return list(runner.pods) if runner else []

    def logs(self, job: str | None = None) -> str:
        with self.executor._lock:
            runners = [
                r
                for r in self.executor._runners.values()
                if r.namespace == self.namespace and job in (None, r.name)
            ]
        parts = []
        for runner in runners:
            for pod in runner.pods:
                text = pod.log.read_text(errors="replace") if pod.log.exists() else ""
                parts.append(
                    f"--- Job {runner.name}, pod {pod.index} (exit {pod.exit_code})\n{text}"
                )
        return "\n".join(parts)

    def stop(self) -> None:
        self.executor.release(self.namespace)
