"""Where the gateway's routes and webhook secrets come from: files here, or the cluster.

A source owns a ``RouteTable`` (``table``) and answers ``secret(namespace, ref)``; the app
calls ``start()`` when it starts serving and ``stop()`` at the end::

    DirectorySource(dir)        Workflows in dir/*.yaml (namespace: metadata.namespace, else
                                "default"); secrets from AUTOFLOW_SECRET_<NAME>_<KEY> or a
                                secrets file {<name>: {<key>: value}}, as ``autoflow run``
                                reads an Integration's
    KubeSource(client, [ns])    a watch of Workflows in the namespaces (all: []) keeps the
                                table current; Secrets read with ``get`` when a request needs
                                one, kept ``secret_ttl`` seconds. Read-only (config/rbac/
                                gateway.yaml)

A secret's value is never logged; a missing one is logged by Secret name and key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import pydantic

from autoflow.crds import webhook, workflow
from autoflow.crds.workflow import Workflow
from autoflow.runners.gateway import routes as routes_mod
from autoflow.runners.kube import client as kube_client
from autoflow.runners.kube import errors as kube_errors
from autoflow.runners.kube import paths
from autoflow.runners.local import run as local_run
from autoflow.runners.pool import workspace as pool_workspace

log = logging.getLogger("autoflow.gateway")

DEFAULT_NAMESPACE = "default"


class RoutesSource(Protocol):
    table: routes_mod.RouteTable
    # Bumped whenever a Workflow appeared, changed or went (event triggers follow it).
    version: int

    def workflow(self, namespace: str, name: str) -> Workflow | None: ...

    def workflows(self) -> list[Workflow]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def secret(self, namespace: str, ref: webhook.SecretKeyRef) -> str | None: ...


class DirectorySource:
    """The webhooks of a folder's Workflows (a ``runners.pool.workspace.Workspace``, shared
    with ``autoflow serve``'s launcher when given); secrets from the environment or a file."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        env: Mapping[str, str] | None = None,
        workspace: pool_workspace.Workspace | None = None,
    ) -> None:
        if workspace is None:
            if directory is None:
                raise TypeError("DirectorySource needs a directory or a workspace")
            workspace = pool_workspace.Workspace(directory, secrets=secrets, env=env)
            workspace.load()
        self.workspace = workspace
        self.directory = workspace.directory
        self.table = routes_mod.RouteTable()
        self._secrets = secrets or {}
        self._env = os.environ if env is None else env
        self.version = 0
        self.sync()

    @property
    def problems(self) -> list[str]:
        return self.workspace.problems

    def workflow(self, namespace: str, name: str) -> Workflow | None:
        """Any Workflow of the folder (with a webhook or not), by namespace and name."""
        return self.workspace.workflows.get((namespace, name))

    def workflows(self) -> list[Workflow]:
        """Every Workflow, its ``metadata.namespace`` filled in."""
        return list(self.workspace.workflows.values())

    def load(self) -> None:
        """Read every Workflow again; a file that does not load is reported and skipped."""
        self.workspace.load()
        self.sync()

    def sync(self) -> None:
        """The routes of the workspace's Workflows as they are now (after its ``refresh``)."""
        self.table.replace_all(
            [(wf, wf.metadata.namespace or DEFAULT_NAMESPACE) for wf in self.workflows()]
        )
        self.version += 1

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def secret(self, namespace: str, ref: webhook.SecretKeyRef) -> str | None:
        secrets = self.workspace.secrets or self._secrets  # the file as it is now
        value = (secrets.get(ref.name) or {}).get(ref.key)
        if value is None:
            value = self._env.get(local_run.secret_env_name(ref.name, ref.key))
        return value


class KubeSource:
    """Workflows watched in the cluster; Secrets read when a request needs them."""

    def __init__(
        self,
        client: kube_client.Client,
        namespaces: Sequence[str] = (),
        *,
        secret_ttl: float = 30.0,
        retry_seconds: float = 5.0,
    ) -> None:
        self.client = client
        self.namespaces = list(namespaces) or [""]
        self.table = routes_mod.RouteTable()
        self.secret_ttl = secret_ttl
        self.retry_seconds = retry_seconds
        self._secrets: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.synced = asyncio.Event()
        self._synced_namespaces: set[str] = set()
        self._workflows: dict[tuple[str, str], Workflow] = {}
        self.version = 0

    def workflow(self, namespace: str, name: str) -> Workflow | None:
        """Any watched Workflow (with a webhook or not), by namespace and name."""
        return self._workflows.get((namespace, name))

    def workflows(self) -> list[Workflow]:
        return list(self._workflows.values())

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch(ns)) for ns in self.namespaces]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _watch(self, namespace: str) -> None:
        url = paths.workflow(namespace) if namespace else paths.path(paths.AUTOFLOW, "workflows")
        while True:
            try:
                listed = await self.client.get(url)
                seen: set[tuple[str, str]] = set()
                for obj in listed.get("items", []):
                    seen.add(self._apply("ADDED", obj))
                for ns, name in self._known(namespace) - seen:
                    self.table.remove(ns, name)
                for key in [k for k in self._workflows if not namespace or k[0] == namespace]:
                    if key not in seen:
                        del self._workflows[key]
                        self.version += 1
                self._synced_namespaces.add(namespace)
                if len(self._synced_namespaces) == len(self.namespaces):
                    self.synced.set()
                version = (listed.get("metadata") or {}).get("resourceVersion")
                while True:
                    async for kind, obj in self.client.watch(url, version):
                        if kind == "ERROR":
                            raise kube_errors.Gone(410, "Gone", "the watch ended with an error")
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if kind != "BOOKMARK":
                            self._apply(kind, obj)
            except asyncio.CancelledError:
                raise
            except kube_errors.Gone:
                continue  # list again from now
            except Exception as exc:  # the API server away, RBAC refused: try again later
                log.warning(
                    "watching Workflows%s: %s", f" in {namespace}" if namespace else "", exc
                )
                await asyncio.sleep(self.retry_seconds)

    def _known(self, namespace: str) -> set[tuple[str, str]]:
        return {
            (r.namespace, r.name)
            for r in self.table.routes()
            if not namespace or r.namespace == namespace
        }

    def _apply(self, kind: str, obj: Mapping[str, object]) -> tuple[str, str]:
        metadata = obj.get("metadata")
        meta_ = metadata if isinstance(metadata, dict) else {}
        namespace, name = str(meta_.get("namespace") or ""), str(meta_.get("name") or "")
        if kind == "DELETED":
            self.table.remove(namespace, name)
            if self._workflows.pop((namespace, name), None) is not None:
                self.version += 1
            return namespace, name
        try:
            wf = workflow.Workflow.model_validate(
                {k: v for k, v in obj.items() if k in ("apiVersion", "kind", "metadata", "spec")}
            )
        except pydantic.ValidationError:
            log.warning("Workflow %s/%s is not valid; its webhooks are not served", namespace, name)
            self.table.remove(namespace, name)
            if self._workflows.pop((namespace, name), None) is not None:
                self.version += 1
            return namespace, name
        self.table.put(wf, namespace)
        if self._workflows.get((namespace, name)) != wf:
            self._workflows[(namespace, name)] = wf
            self.version += 1
        return namespace, name

    async def secret(self, namespace: str, ref: webhook.SecretKeyRef) -> str | None:
        now = time.monotonic()
        cached = self._secrets.get((namespace, ref.name))
        if cached is None or now - cached[0] > self.secret_ttl:
            try:
                obj = await self.client.get_or_none(paths.secret(namespace, ref.name))
            except kube_errors.ApiError as exc:
                log.warning("reading Secret %s/%s: %s", namespace, ref.name, exc.message)
                obj = None
            data = None
            if obj is not None:
                raw = obj.get("data") or {}
                data = {}
                for key, value in raw.items():
                    with contextlib.suppress(ValueError):  # not base64 or not UTF-8: unusable
                        data[key] = base64.b64decode(value).decode()
            cached = (now, data)
            self._secrets[(namespace, ref.name)] = cached
        values = cached[1]
        return None if values is None else values.get(ref.key)
