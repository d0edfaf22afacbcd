"""``autoflow gateway --dir``: the gateway alone as a process, a folder of Workflows, secrets
from the environment; a signed webhook over loopback HTTP runs the Workflow, ``autoflow runs``
reads it from the store; without a folder, a store and NATS are asked for by name."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
AUTOFLOW = (sys.executable, "-P", "-m", "autoflow.cli.main")
SECRET = "cli-gateway-secret"

ORDERS = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: orders, namespace: shop}
spec:
  inputs: {orderId: {type: string, required: true}}
  triggers:
    - webhook:
        auth: {hmac: {preset: github}}
        secretRef: {name: shop-hook}
        inputs: {orderId: "${ body.id }"}
        response: {mode: sync, output: text}
  steps:
    - {id: greet, uses: core.set, with: {values: {text: "order ${ inputs.orderId }"}}}
  outputs: {text: "${ steps.greet.output.text }"}
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    return {**env, **extra}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "orders.yaml").write_text(ORDERS)
    log = tmp_path / "gateway.log"
    proc = subprocess.Popen(
        [*AUTOFLOW, "gateway", "--dir", str(flows), "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO,
        env=_env(AUTOFLOW_SECRET_SHOP_HOOK_SECRET=SECRET),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    found = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"autoflow gateway: (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            break
        time.sleep(0.05)
    assert found, log.read_text()
    yield found.group(1), flows, log
    proc.terminate()
    proc.wait(15)
    assert SECRET not in log.read_text()


def test_gateway_serves_a_folder_and_runs_land_in_its_store(
    gateway: tuple[str, Path, Path],
) -> None:
    base, flows, _ = gateway
    body = json.dumps({"id": "A-7"}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Delivery": "delivery-1",
        "Content-Type": "application/json",
    }
    answer = httpx.post(f"{base}/hooks/shop/orders", content=body, headers=headers, timeout=30)
    assert (answer.status_code, answer.json()) == (200, "order A-7"), answer.text
    run_id = answer.headers["x-autoflow-run-id"]
    again = httpx.post(f"{base}/hooks/shop/orders", content=body, headers=headers, timeout=30)
    assert again.headers["x-autoflow-run-id"] == run_id  # the redelivery: the same run
    bad = httpx.post(f"{base}/hooks/shop/orders", content=body, headers={}, timeout=30)
    assert bad.status_code == 401
    store = f"sqlite:///{flows / '.autoflow' / 'runs.db'}"
    listed = subprocess.run(
        [*AUTOFLOW, "runs", "--store", store, "list", "-o", "json"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert [r["runId"] for r in json.loads(listed.stdout)["runs"]] == [run_id]


def test_in_a_cluster_it_needs_a_store_and_nats() -> None:
    result = subprocess.run(
        [*AUTOFLOW, "gateway"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "no run store: pass --store URL or set AUTOFLOW_STORE_URL" in result.stderr
    result = subprocess.run(
        [*AUTOFLOW, "gateway", "--store", "sqlite:///x.db"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "no NATS server: pass --nats URL or set AUTOFLOW_NATS_URL" in result.stderr


def test_a_workflow_file_added_while_it_runs_is_served(gateway: tuple[str, Path, Path]) -> None:
    base, flows, log = gateway
    (flows / "refunds.yaml").write_text(
        ORDERS.replace("name: orders", "name: refunds").replace(
            "auth: {hmac: {preset: github}}\n        secretRef: {name: shop-hook}",
            "auth: {none: true}",
        )
    )
    deadline = time.monotonic() + 20
    while "workflows reloaded" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    answer = httpx.post(f"{base}/hooks/shop/refunds", json={"id": "R-1"}, timeout=30)
    assert (answer.status_code, answer.json()) == (200, "order R-1"), answer.text
