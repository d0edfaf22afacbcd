"""The Kubernetes I/O layer: the one place Autoflow talks to the Kubernetes API.

``client`` holds the async client (``Client``) and the pure request builders. Everything
above it (the Job runner, the operator's handlers, the test executor) imports this package
and works on plain dicts: ``kube.Client``, ``kube.path``, ``kube.ApiError``.
"""

from __future__ import annotations

from autoflow.runners.kube.client import (
    APPLY_PATCH,
    AUTOFLOW,
    BATCH,
    CORE,
    JSON_PATCH,
    MAX_CONNECTIONS,
    MERGE_PATCH,
    RBAC,
    ApiError,
    Client,
    path,
)

__all__ = [
    "APPLY_PATCH",
    "AUTOFLOW",
    "BATCH",
    "CORE",
    "JSON_PATCH",
    "MAX_CONNECTIONS",
    "MERGE_PATCH",
    "RBAC",
    "ApiError",
    "Client",
    "path",
]
