"""The async Kubernetes API client: a small shell on httpx that sends what ``paths`` builds.

A refusal raises the ``errors`` class that names it (``NotFound``, ``Conflict``, ...);
everything above works on plain dicts. Connection settings come from a kubeconfig or the
in-cluster service account, read by the ``kubernetes`` package's well-kept loader, so tokens,
exec plugins and client certificates behave as they do for kubectl.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx

from autoflow.crds import meta
from autoflow.runners.kube import errors

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# Requests in flight at once. More is not faster: httpcore checks every idle connection of
# its pool on each request (a poll per socket); 16 kept the operator's CPU per dispatched
# run at about half of what 64 took, at the same or better throughput (benchmarks/operator.py).
MAX_CONNECTIONS = 16


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
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        # ``headers``: sent with every request; a name may repeat (Impersonate-Group).
        pairs = [("Accept", "application/json"), ("User-Agent", "autoflow")]
        if token:
            pairs.append(("Authorization", f"Bearer {token}"))
        default = httpx.Headers([*pairs, *headers])
        self._connection = (server, token, verify, cert, timeout)
        self.server = server.rstrip("/")
        # Requests wait here rather than in httpcore's pool, whose queue handling costs
        # CPU per queued request on every assignment (an operator may have hundreds waiting).
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._http = httpx.AsyncClient(
            base_url=self.server,
            headers=default,
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

    def impersonating(self, user: str, groups: Sequence[str] = ()) -> Client:
        """A new client, on the same connection settings, whose every request is made as
        ``user`` in ``groups`` (``Impersonate-User``/``Impersonate-Group``): the API server
        authorises it as that person; this client's own identity needs only ``impersonate``."""
        server, token, verify, cert, timeout = self._connection
        headers = [("Impersonate-User", user), *(("Impersonate-Group", g) for g in groups)]
        return Client(
            server, token=token, verify=verify, cert=cert, timeout=timeout, headers=headers
        )

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
            raise errors.refused(0, "ConnectionError", f"{method} {url}: {exc}") from None
        if response.status_code >= 400:
            details: meta.JSONDict = {}
            try:
                status = response.json()
                reason, message = status.get("reason", ""), status.get("message", response.text)
                details = status.get("details") or {}
            except ValueError:
                reason, message = response.reason_phrase, response.text[:500]
            raise errors.refused(response.status_code, reason, message, details)
        return response.json() if response.content else None

    async def get(self, url: str) -> meta.JSONDict:
        result: meta.JSONDict = await self.request("GET", url)
        return result

    async def get_or_none(self, url: str) -> meta.JSONDict | None:
        """The object at ``url``, or None when there is none."""
        try:
            return await self.get(url)
        except errors.NotFound:
            return None

    async def list(self, url: str) -> list[meta.JSONDict]:
        result = await self.request("GET", url)
        items: list[meta.JSONDict] = result.get("items", [])
        return items

    async def create(self, url: str, body: meta.JSONDict) -> meta.JSONDict:
        result: meta.JSONDict = await self.request("POST", url, body)
        return result

    async def patch(self, url: str, body: Any, content_type: str = MERGE_PATCH) -> meta.JSONDict:
        result: meta.JSONDict = await self.request("PATCH", url, body, content_type)
        return result

    async def replace(self, url: str, body: meta.JSONDict) -> meta.JSONDict:
        result: meta.JSONDict = await self.request("PUT", url, body)
        return result

    async def delete(self, url: str, body: meta.JSONDict | None = None) -> Any:
        return await self.request("DELETE", url, body)

    async def watch(
        self, url: str, resource_version: str | None = None, timeout_seconds: int = 300
    ) -> AsyncIterator[tuple[str, meta.JSONDict]]:
        """(event type, object) pairs from a watch of a collection URL."""
        sep = "&" if "?" in url else "?"
        query = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if resource_version:
            query["resourceVersion"] = resource_version
        full = f"{url}{sep}{urlencode(query)}"
        async with self._http.stream("GET", full, timeout=None) as response:
            if response.status_code >= 400:
                await response.aread()
                raise errors.refused(
                    response.status_code, response.reason_phrase, response.text[:500]
                )
            async for line in response.aiter_lines():
                if line.strip():
                    event = json.loads(line)
                    yield event["type"], event["object"]
