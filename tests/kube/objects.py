"""Builders and waits for the operator tests: small manifests, and polling until a check holds.

The operator and the runners act in their own processes, so the tests wait for what they
write: ``wait_for(server, obj, check)`` reads ``obj`` until ``check`` holds and fails with its
last state when it never does.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import apiserver as kube
import yaml

API_VERSION = "autoflow.dev/v1alpha1"
TIMEOUT = 30.0
STORE_SECRET = "autoflow-store"  # the Secret runner pods read the run store's URL from


def store_secret(server: kube.APIServer, namespace: str, url: str) -> None:
    """The Secret runner pods of ``namespace`` read the run store's URL from (fixture
    ``store_url`` points the operator at it)."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": STORE_SECRET},
        "data": {"url": base64.b64encode(url.encode()).decode()},
    }
    server.create(secret, namespace=namespace)


def workflow(name: str = "orders", **spec: Any) -> dict[str, Any]:
    """A Workflow of one ``core.log`` step; keyword arguments replace spec fields."""
    body: dict[str, Any] = {
        "steps": [{"id": "hello", "uses": "core.log", "with": {"message": "hi"}}]
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {**body, **spec},
    }


def run(name: str = "orders-1", workflow: str = "orders", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": {"name": workflow}, **spec},
    }


def integration(name: str, type_: str = "http", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Integration",
        "metadata": {"name": name},
        "spec": {"type": type_, **spec},
    }


def placed(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` in ``namespace`` (a reference the server helpers can read it by)."""
    return {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}


def ref(api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
    }


def job_of(run_obj: dict[str, Any]) -> dict[str, Any]:
    """A reference to the Job of a run (named after it)."""
    meta = run_obj["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
    }


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition ``type_`` of an object's status ({} when it has none)."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def phase(obj: dict[str, Any]) -> str | None:
    value: str | None = (obj.get("status") or {}).get("phase")
    return value


def finished(obj: dict[str, Any]) -> bool:
    return phase(obj) in {"Succeeded", "Failed", "Cancelled"}


def step(obj: dict[str, Any], step_id: str) -> dict[str, Any]:
    """The status of one step of a run ({} before it is journaled)."""
    for entry in (obj.get("status") or {}).get("steps") or []:
        if entry["id"] == step_id:
            return dict(entry)
    return {}


def wait_for(
    server: kube.APIServer,
    obj: dict[str, Any],
    check: Callable[[dict[str, Any]], bool],
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """The object once ``check`` holds for it; a TimeoutError shows its last state."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            current: dict[str, Any] | None = server.get(obj)
        except kube.APIError as exc:
            if exc.code != 404:
                raise
            current = None
        if current is not None and check(current):
            return current
        if time.monotonic() > deadline:
            state = yaml.safe_dump(current) if current is not None else "(not found)"
            raise TimeoutError(f"condition not met in {timeout}s; last state:\n{state}")
        time.sleep(0.05)


def wait_gone(server: kube.APIServer, obj: dict[str, Any], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.get(obj)
        except kube.APIError as exc:
            if exc.code == 404:
                return
            raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"{obj['kind']} {obj['metadata']['name']} still exists")
        time.sleep(0.05)


def events_about(
    server: kube.APIServer,
    namespace: str,
    name: str,
    reason: str | None = None,
    timeout: float = TIMEOUT,
) -> list[dict[str, Any]]:
    """The Events about object ``name`` (with ``reason``), once there is at least one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [
            e
            for e in server.request("GET", f"/api/v1/namespaces/{namespace}/events")["items"]
            if e["involvedObject"]["name"] == name and reason in (None, e["reason"])
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
