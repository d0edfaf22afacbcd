"""The URL paths of Kubernetes API objects, built by pure code (no I/O).

``path`` builds any of them; the helpers name the objects Autoflow reads and writes, so a
caller says ``paths.run(namespace, name, "status")`` rather than spelling a group, version
and plural.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlencode

from autoflow.crds import meta

CORE = ("", "v1")
BATCH = ("batch", "v1")
RBAC = ("rbac.authorization.k8s.io", "v1")
AUTHENTICATION = ("authentication.k8s.io", "v1")
AUTOFLOW = (meta.GROUP, meta.VERSION)


def path(
    api: tuple[str, str],
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    query: Mapping[str, str] | None = None,
) -> str:
    """The URL path of a collection, an object or a subresource."""
    group, version = api
    parts = ["/api", version] if not group else ["/apis", group, version]
    if namespace:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    text = "/".join(parts)
    return f"{text}?{urlencode(query)}" if query else text


def _selected(selector: str | None) -> dict[str, str] | None:
    return {"labelSelector": selector} if selector else None


def run(
    namespace: str,
    name: str | None = None,
    subresource: str | None = None,
    *,
    selector: str | None = None,
) -> str:
    """A WorkflowRun (``name``), or the namespace's runs (matching a label ``selector``)."""
    return path(AUTOFLOW, "workflowruns", namespace, name, subresource, _selected(selector))


def workflow(namespace: str, name: str | None = None, subresource: str | None = None) -> str:
    """A Workflow, or the namespace's Workflows."""
    return path(AUTOFLOW, "workflows", namespace, name, subresource)


def integration(namespace: str, name: str | None = None) -> str:
    """An Integration, or the namespace's Integrations."""
    return path(AUTOFLOW, "integrations", namespace, name)


def secret(namespace: str, name: str | None = None) -> str:
    """A Secret, or the namespace's Secrets."""
    return path(CORE, "secrets", namespace, name)


def job(namespace: str, name: str | None = None) -> str:
    """A Job, or the namespace's Jobs."""
    return path(BATCH, "jobs", namespace, name)
