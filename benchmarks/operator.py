"""Operator benchmark: how fast WorkflowRuns become Jobs on a real kube-apiserver.

    .venv/bin/python benchmarks/operator.py [--runs 200]

Starts etcd and kube-apiserver (the test tier's binaries, ``hack/tools.sh envtest``) and the
operator (``autoflow operator``, as a subprocess, under its own RBAC), then creates N
WorkflowRuns at once and watches for their Jobs. Prints dispatch throughput (runs per second
from the first create to the last Job) and p50/p95 latency (run created → its Job created),
next to a baseline measured in the same run: the same N objects written straight to the API
server (ConfigMaps), i.e. what the API server itself allows on this machine. Targets
(issue 3): ≥ 20 runs/s, p50 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "kube"))

import apiserver as kube  # noqa: E402  (the test tier's server harness)
import operator_process  # noqa: E402  (`autoflow operator` under its own RBAC, as in the tests)

WORKFLOW = {
    "apiVersion": "autoflow.dev/v1alpha1",
    "kind": "Workflow",
    "metadata": {"name": "bench"},
    "spec": {"steps": [{"id": "hello", "uses": "core.log", "with": {"message": "hi"}}]},
}


def _run(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": {"name": "bench"}},
    }


def _configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class JobWatch:
    """Records when each Job appears, from a watch on the namespace's Jobs."""

    def __init__(self, server: kube.APIServer, namespace: str) -> None:
        self.seen: dict[str, float] = {}
        self._server = server
        self._namespace = namespace
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        path = f"/apis/batch/v1/namespaces/{self._namespace}/jobs?watch=true&timeoutSeconds=600"
        http = self._server.client()
        try:
            self._follow(http, path)
        except Exception:
            return

    def _follow(self, http: Any, path: str) -> None:
        with http.stream("GET", path, timeout=None) as response:
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.strip():
                    event = json.loads(line)
                    name = event["object"]["metadata"]["name"]
                    self.seen.setdefault(name, time.perf_counter())

    def wait(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(n in self.seen for n in names):
            time.sleep(0.01)
        self._stop.set()


def _create_all(server: kube.APIServer, objs: list[dict[str, Any]], ns: str) -> dict[str, float]:
    created: dict[str, float] = {}

    def one(obj: dict[str, Any]) -> None:
        server.create(obj, namespace=ns)
        created[obj["metadata"]["name"]] = time.perf_counter()

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, objs))
    return created


def _one_at_a_time(server: kube.APIServer, ns: str, count: int) -> list[float]:
    """Dispatch latency without a queue: each run is created after the previous got its Job."""
    latencies = []
    for i in range(count):
        name = f"single-{i}"
        watch = JobWatch(server, ns)
        time.sleep(0.05)  # the watch is open before the run exists
        created = _create_all(server, [_run(name)], ns)[name]
        watch.wait([name], timeout=30)
        if name in watch.seen:
            latencies.append((watch.seen[name] - created) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    n = args.runs
    assets = kube.find_assets(progress=sys.stderr)
    with kube.APIServer(assets) as server:
        server.install_crds(ROOT / "crds", "autoflow.dev_*.yaml")
        ns = "bench"
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

        start = time.perf_counter()
        _create_all(server, [_configmap(f"cm-{i}") for i in range(n)], ns)
        base_rate = n / (time.perf_counter() - start)

        operator = operator_process.Operator(
            server, ROOT / "config" / "rbac", server.dir / "operator.log"
        )
        operator.install_rbac()
        operator.start()
        try:
            server.create(dict(WORKFLOW), namespace=ns)
            time.sleep(3)  # the operator is up and has handled the Workflow
            watch = JobWatch(server, ns)
            names = [f"run-{i}" for i in range(n)]
            first = time.perf_counter()
            created = _create_all(server, [_run(name) for name in names], ns)
            watch.wait(names, timeout=max(60.0, n / 2))
            done = [name for name in names if name in watch.seen]
            if len(done) < n:
                print(f"only {len(done)} of {n} runs got a Job in time:")
                print(operator.log_since(0)[-3000:])
            latencies = [(watch.seen[x] - created[x]) * 1000 for x in done]
            rate = len(done) / (max(watch.seen[x] for x in done) - first)
            single = _one_at_a_time(server, ns, count=20)
        finally:
            operator.stop()
    print(f"WorkflowRun → Job dispatch, {n} runs created at once (16 writers)")
    print(f"  {'':<22}{'operator':>10}{'baseline':>10}{'ratio':>8}{'target':>10}")
    print(
        f"  {'throughput (runs/s)':<22}{rate:>10.1f}{base_rate:>10.1f}"
        f"{rate / base_rate:>7.2f}x{'≥20 ' + ('ok' if rate >= 20 else 'MISS'):>10}"
    )
    p50, p95 = statistics.median(latencies), _percentile(latencies, 0.95)
    print(
        f"  {'p50 latency (ms)':<22}{p50:>10.1f}{'':>10}{'':>8}"
        f"{'≤100 ' + ('ok' if p50 <= 100 else 'MISS'):>10}"
    )
    print(f"  {'p95 latency (ms)':<22}{p95:>10.1f}")
    print("  (baseline: the same number of ConfigMaps written straight to the API server)")
    print(f"one run at a time ({len(single)} runs): created → Job created")
    print(
        f"  {'p50 latency (ms)':<22}{statistics.median(single):>10.1f}"
        f"{'':>18}{'≤100 ' + ('ok' if statistics.median(single) <= 100 else 'MISS'):>10}"
    )


if __name__ == "__main__":
    main()
