"""The one thin layer through which Autoflow talks to the Kubernetes API.

Requests are built by pure functions (``path``) and sent by a small async shell (``Client``)
on httpx; everything above it (the Job runner, the operator's reconcilers, the test executor)
works on plain dicts. Connection settings come from a kubeconfig or the in-cluster service
account, read by the ``kubernetes`` package's well-kept loader, so tokens, exec plugins and
client certificates behave as they do for kubectl.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from autoflow.crds import errors, meta

CORE = ("", "v1")
BATCH = ("batch", "v1")
RBAC = ("rbac.authorization.k8s.io", "v1")
AUTOFLOW = (meta.GROUP, meta.VERSION)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# Requests in flight at once. More is not faster: httpcore checks every idle connection of
# its pool on each request (a poll per socket); 16 kept the operator's CPU per dispatched
# run at about half of what 64 took, at the same or better throughput (benchmarks/operator.py).
MAX_CONNECTIONS = 16


class ApiError(errors.AutoflowError):
    """The API server refused a request; ``status`` and ``reason`` as it answered them."""

    def __init__(
        self, status: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"Kubernetes API: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.details = details or {}

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def namespace_terminating(self) -> bool:
        """Refused because the namespace is being deleted: nothing can be made there again."""
        causes = self.details.get("causes") or []
        return any(c.get("reason") == "NamespaceTerminating" for c in causes)


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


class Client:
    """An async Kubernetes API client over httpx: get, list, create, patch, delete, watch."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        verify: ssl.SSLContext | bool = True,
        cert: tuple[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "autoflow"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.server = server.rstrip("/")
        # Requests wait here rather than in httpcore's pool, whose queue handling costs
        # CPU per queued request on every assignment (an operator may have hundreds waiting).
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._http = httpx.AsyncClient(
            base_url=self.server,
            headers=headers,
            verify=verify,
            cert=cert,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            ),
        )

    @classmethod
    def from_config(cls, kubeconfig: str | None = None, context: str | None = None) -> Client:
        """In a pod: the service account; elsewhere: ``kubeconfig`` or ``$KUBECONFIG``."""
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config

        cfg = k8s_client.Configuration()
        if (
            kubeconfig is None
            and os.environ.get("KUBERNETES_SERVICE_HOST")
            and not os.environ.get("KUBECONFIG")
        ):
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=cfg
            )
        token = None
        auth = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
        if auth:
            token = auth.removeprefix("Bearer ").strip()
        verify: ssl.SSLContext | bool = True
        if not cfg.verify_ssl:
            verify = False
        elif cfg.ssl_ca_cert:
            verify = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file and cfg.key_file else None
        if cert and isinstance(verify, ssl.SSLContext):
            verify.load_cert_chain(*cert)
        return cls(cfg.host, token=token, verify=verify, cert=cert)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        content = None if body is None else json.dumps(body, default=str).encode()
        headers = {"Content-Type": content_type} if content is not None else None
        try:
            async with self._slots:
                response = await self._http.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(0, "ConnectionError", f"{method} {url}: {exc}") from None
        if response.status_code >= 400:
            details: dict[str, Any] = {}
            try:
                status = response.json()
                reason, message = status.get("reason", ""), status.get("message", response.text)
                details = status.get("details") or {}
            except ValueError:
                reason, message = response.reason_phrase, response.text[:500]
            raise ApiError(response.status_code, reason, message, details)
        return response.json() if response.content else None

    async def get(self, url: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", url)
        return result

    async def list(self, url: str) -> list[dict[str, Any]]:
        result = await self.request("GET", url)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def create(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", url, body)
        return result

    async def patch(self, url: str, body: Any, content_type: str = MERGE_PATCH) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PATCH", url, body, content_type)
        return result

    async def replace(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PUT", url, body)
        return result

    async def delete(self, url: str, body: dict[str, Any] | None = None) -> Any:
        return await self.request("DELETE", url, body)

    async def watch(
        self, url: str, resource_version: str | None = None, timeout_seconds: int = 300
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) pairs from a watch of a collection URL."""
        sep = "&" if "?" in url else "?"
        query = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if resource_version:
            query["resourceVersion"] = resource_version
        full = f"{url}{sep}{urlencode(query)}"
        async with self._http.stream("GET", full, timeout=None) as response:
            if response.status_code >= 400:
                await response.aread()
                raise ApiError(response.status_code, response.reason_phrase, response.text[:500])
            async for line in response.aiter_lines():
                if line.strip():
                    event = json.loads(line)
                    yield event["type"], event["object"]
