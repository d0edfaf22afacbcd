"""The webhook gateway against a real kube-apiserver, with only its RBAC (config/rbac/gateway.yaml).

The ClusterRole is bound in one namespace to a service account with no other permissions, the
way the chart binds it with ``gateway.watchNamespaces``. As that account the gateway's own
``KubeSource`` watches the Workflows there into its route table (a new Workflow, a changed
path and a deleted Workflow show up without a restart) and reads the webhook Secret its
``secretRef`` names, and a signed request over loopback HTTP starts a run (a job-mode
Workflow's: one WorkflowRun, also when the delivery comes again); everything else is refused:
listing or watching Secrets, Workflows of another namespace, changing Workflows.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import apiserver as kube
import httpx
import pytest
import uvicorn
import yaml

from autoflow.crds import webhook
from autoflow.runners import kube as kube_client
from autoflow.runners import pool
from autoflow.runners.gateway import server, sources

GATEWAY_RULES = kube.REPO / "config" / "rbac" / "gateway.yaml"
SECRET = "gateway-rbac-secret"


@pytest.fixture
def bound(apiserver: kube.APIServer, namespace: str) -> str:
    """The gateway's ClusterRole, bound to ``nobody`` in ``namespace`` only."""
    role: dict[str, Any] = yaml.safe_load(GATEWAY_RULES.read_text())
    role["metadata"]["name"] = f"autoflow-gateway-{secrets.token_hex(3)}"
    apiserver.apply(role)
    apiserver.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "autoflow-gateway", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role["metadata"]["name"],
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": "autoflow-test-nobody",
                    "namespace": "autoflow-system",
                }
            ],
        }
    )
    return namespace


def orders(namespace: str, path: str = "/orders", name: str = "orders") -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "inputs": {"orderId": {"type": "string"}},
            "runtime": {"mode": "pool"},
            "triggers": [
                {
                    "webhook": {
                        "path": path,
                        "auth": {"hmac": {"preset": "github"}},
                        "secretRef": {"name": "shop-hook", "key": "secret"},
                    }
                }
            ],
            "steps": [{"id": "s", "uses": "core.log", "with": {"message": "hi"}}],
        },
    }


class Recorder:
    def __init__(self) -> None:
        self.requests: list[pool.RunRequest] = []

    async def launch(self, request: pool.RunRequest) -> pool.Started:
        self.requests.append(request)
        return pool.Started(f"run-{len(self.requests)}", False)

    async def wait(self, run_id: str, timeout: float) -> pool.Outcome | None:
        return None


async def eventually(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def test_the_gateway_serves_the_namespaces_workflows_and_reads_nothing_else(
    apiserver: kube.APIServer, bound: str
) -> None:
    namespace = bound
    other = f"elsewhere-{secrets.token_hex(3)}"
    apiserver.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    for ns in (namespace, other):
        apiserver.apply(orders(ns))
        apiserver.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "shop-hook", "namespace": ns},
                "stringData": {"secret": SECRET},
            }
        )

    async with kube_client.Client.from_config(str(apiserver.kubeconfig("nobody"))) as client:
        source = sources.KubeSource(client, [namespace], retry_seconds=0.2)
        recorder = Recorder()
        app = server.create_app(source, recorder)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        serving = asyncio.create_task(uv.serve(sockets=[sock]))
        try:
            await asyncio.wait_for(source.synced.wait(), 15)
            assert [r.url_path for r in source.table.routes()] == [f"/hooks/{namespace}/orders"]
            ref = webhook.SecretKeyRef(name="shop-hook", key="secret")
            assert await source.secret(namespace, ref) == SECRET
            # Another namespace's Secret is refused (logged, answered as missing).
            assert await source.secret(other, ref) is None

            host, port = sock.getsockname()
            post = _poster(f"http://{host}:{port}")
            assert (await post(f"/hooks/{namespace}/orders", {"orderId": "A-1"})) == 202
            assert [dict(r.inputs) for r in recorder.requests] == [{"orderId": "A-1"}]
            assert (await post(f"/hooks/{other}/orders", {"orderId": "A-2"})) == 404

            # The watch follows changes: a new path, a new Workflow, a deletion.
            apiserver.apply(orders(namespace, path="/v2/orders"))
            apiserver.apply(orders(namespace, path="/refunds", name="refunds"))
            await eventually(
                lambda: (
                    [r.url_path for r in source.table.routes()]
                    == [f"/hooks/{namespace}/refunds", f"/hooks/{namespace}/v2/orders"]
                )
            )
            apiserver.request(
                "DELETE", apiserver.path("autoflow.dev/v1alpha1", "Workflow", namespace, "refunds")
            )
            await eventually(
                lambda: (
                    [r.url_path for r in source.table.routes()] == [f"/hooks/{namespace}/v2/orders"]
                )
            )
            assert (await post(f"/hooks/{namespace}/v2/orders", {"orderId": "A-3"})) == 202
        finally:
            uv.should_exit = True
            await serving
            sock.close()

    def refused(method: str, path: str, body: Any = None) -> None:
        with pytest.raises(kube.APIError) as caught:
            apiserver.request(method, path, user="nobody", body=body)
        assert caught.value.code == 403, path

    secrets_path = apiserver.path("v1", "Secret", namespace)
    refused("GET", secrets_path)  # list
    refused("GET", secrets_path + "?watch=1")
    refused("GET", apiserver.path("autoflow.dev/v1alpha1", "Workflow", other))
    refused("GET", apiserver.path("autoflow.dev/v1alpha1", "Integration", namespace))
    refused(
        "PATCH",
        apiserver.path("autoflow.dev/v1alpha1", "Workflow", namespace, "orders"),
        {"metadata": {"labels": {"x": "y"}}},
    )
    refused(
        "POST",
        apiserver.path("autoflow.dev/v1alpha1", "Workflow", namespace),
        orders(namespace, name="more"),
    )
    refused("GET", apiserver.path("v1", "Secret", other, "shop-hook"))


def _poster(base: str) -> Callable[[str, dict[str, Any]], Awaitable[int]]:
    async def post(path: str, payload: dict[str, Any]) -> int:
        body = json.dumps(payload).encode()
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}
        async with httpx.AsyncClient() as http:
            answer = await http.post(base + path, content=body, headers=headers)
        return answer.status_code

    return post


async def test_a_job_mode_webhook_creates_one_workflowrun_per_delivery(
    apiserver: kube.APIServer, bound: str
) -> None:
    from autoflow.runners.gateway import jobs

    namespace = bound
    job_mode = orders(namespace)
    job_mode["spec"]["runtime"] = {"mode": "job"}
    apiserver.apply(job_mode)
    apiserver.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "shop-hook", "namespace": namespace},
            "stringData": {"secret": SECRET},
        }
    )
    async with kube_client.Client.from_config(str(apiserver.kubeconfig("nobody"))) as client:
        source = sources.KubeSource(client, [namespace], retry_seconds=0.2)
        launcher = jobs.ModeLauncher(
            Recorder(), jobs.WorkflowRunLauncher(client), source.table.workflow
        )
        app = server.create_app(source, launcher)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        serving = asyncio.create_task(uv.serve(sockets=[sock]))
        try:
            await asyncio.wait_for(source.synced.wait(), 15)
            host, port = sock.getsockname()
            base = f"http://{host}:{port}"
            body = json.dumps({"orderId": "J-1"}).encode()
            digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            headers = {
                "X-Hub-Signature-256": f"sha256={digest}",
                "X-GitHub-Delivery": "delivery-77",
                "Content-Type": "application/json",
            }
            async with httpx.AsyncClient() as http:
                first = await http.post(
                    f"{base}/hooks/{namespace}/orders", content=body, headers=headers
                )
                again = await http.post(
                    f"{base}/hooks/{namespace}/orders", content=body, headers=headers
                )
            assert first.status_code == again.status_code == 202, first.text
            run_id = first.json()["runId"]
            assert again.json() == {**first.json(), "duplicate": True}
        finally:
            uv.should_exit = True
            await serving
            sock.close()
    runs = apiserver.request(
        "GET", apiserver.path("autoflow.dev/v1alpha1", "WorkflowRun", namespace)
    )
    items = runs["items"]
    assert [r["metadata"]["name"] for r in items] == [run_id]
    assert items[0]["spec"] == {"workflowRef": {"name": "orders"}, "inputs": {"orderId": "J-1"}}
    assert items[0]["metadata"]["annotations"]["autoflow.dev/trigger"] == "webhook"


async def test_the_gateway_watches_workflows_with_only_event_triggers_for_its_nats_consumers(
    apiserver: kube.APIServer, bound: str
) -> None:
    """``autoflow gateway --nats`` syncs its ``nats`` trigger consumers from
    ``source.workflows()`` whenever ``source.version`` moves: a Workflow without a webhook
    is there too, and goes when it is deleted."""
    namespace = bound
    events = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "on-order", "namespace": namespace},
        "spec": {
            "runtime": {"mode": "pool"},
            "triggers": [{"nats": {"subject": "orders.created"}}],
            "steps": [{"id": "log", "uses": "core.log", "with": {"message": "hi"}}],
        },
    }
    async with kube_client.Client.from_config(str(apiserver.kubeconfig("nobody"))) as client:
        source = sources.KubeSource(client, [namespace], retry_seconds=0.2)
        await source.start()
        try:
            await asyncio.wait_for(source.synced.wait(), 15)
            before = source.version
            apiserver.apply(events)
            await eventually(lambda: source.workflow(namespace, "on-order") is not None)
            assert source.version > before
            (wf,) = source.workflows()
            assert wf.metadata.namespace == namespace
            assert [t.nats.subject for t in wf.spec.triggers if t.nats] == ["orders.created"]
            assert source.table.routes() == []  # no webhook: nothing served over HTTP
            apiserver.delete(events)
            await eventually(lambda: source.workflows() == [])
        finally:
            await source.stop()
