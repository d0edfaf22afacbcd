"""The runner-pool worker's RBAC (config/rbac/worker.yaml) against a real kube-apiserver.

The ClusterRole is bound in one namespace to a service account with no other permissions, the
way the chart binds it with ``worker.watchNamespaces``. As that account, the worker's own
Integration provider (``KubeIntegrations``, what ``autoflow worker`` uses) reads an
Integration and its Secret there; everything else is refused: the same objects in another
namespace, listing or watching Secrets, reading Workflows, creating or changing anything.
"""

from __future__ import annotations

import secrets
from typing import Any

import apiserver as kube
import objects
import pytest
import yaml

from autoflow.runners import kube as kube_client
from autoflow.runners.access import redact
from autoflow.runners.job import integrations as kube_integrations

WORKER_RULES = kube.REPO / "config" / "rbac" / "worker.yaml"


@pytest.fixture
def bound(apiserver: kube.APIServer, namespace: str) -> str:
    """The worker's ClusterRole, bound to ``nobody`` in ``namespace`` only."""
    role: dict[str, Any] = yaml.safe_load(WORKER_RULES.read_text())
    role["metadata"]["name"] = f"autoflow-worker-{secrets.token_hex(3)}"
    apiserver.apply(role)
    apiserver.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "autoflow-worker", "namespace": namespace},
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


def _objects(apiserver: kube.APIServer, namespace: str) -> None:
    apiserver.apply(
        objects.placed(
            objects.integration(
                "crm",
                settings={"baseUrl": "https://crm.example.com"},
                secretRef={"name": "crm-creds"},
            ),
            namespace,
        )
    )
    apiserver.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "crm-creds", "namespace": namespace},
            "stringData": {"token": "s3cr3t-token"},
        }
    )


async def test_the_worker_reads_integrations_and_their_secrets_and_nothing_else(
    apiserver: kube.APIServer, bound: str
) -> None:
    namespace = bound
    other = f"elsewhere-{secrets.token_hex(3)}"
    apiserver.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    _objects(apiserver, namespace)
    _objects(apiserver, other)

    async with kube_client.Client.from_config(str(apiserver.kubeconfig("nobody"))) as client:
        provider = kube_integrations.KubeIntegrations(client, namespace)
        info = await provider.get("crm", redact.Redactor())
        assert info.settings["baseUrl"] == "https://crm.example.com"
        assert info.secrets.get("token") == "s3cr3t-token"
        elsewhere = kube_integrations.KubeIntegrations(client, other)
        with pytest.raises(Exception, match="may not read Integration"):
            await elsewhere.get("crm", redact.Redactor())

    def refused(method: str, path: str, body: Any = None) -> None:
        with pytest.raises(kube.APIError) as caught:
            apiserver.request(method, path, user="nobody", body=body)
        assert caught.value.code == 403, path

    secrets_path = apiserver.path("v1", "Secret", namespace)
    refused("GET", secrets_path)  # list
    refused("GET", secrets_path + "?watch=1")
    refused("GET", apiserver.path("autoflow.dev/v1alpha1", "Integration", namespace))
    refused("GET", apiserver.path("autoflow.dev/v1alpha1", "Workflow", namespace))
    refused("GET", apiserver.path("autoflow.dev/v1alpha1", "WorkflowRun", namespace))
    refused(
        "POST",
        apiserver.path("autoflow.dev/v1alpha1", "WorkflowRun", namespace),
        objects.placed(objects.run(), namespace),
    )
    refused(
        "PATCH",
        apiserver.path("v1", "Secret", namespace, "crm-creds"),
        {"metadata": {"labels": {"x": "y"}}},
    )
    refused("GET", apiserver.path("v1", "Secret", other, "crm-creds"))
