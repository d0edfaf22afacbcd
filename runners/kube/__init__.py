"""The Kubernetes I/O layer: the one place Autoflow talks to the Kubernetes API.

Requests are built by pure code and sent by a thin async shell::

    paths    the URL of a collection, an object or a subresource (``paths.run(ns, name)``)
    client   ``Client``: get, get_or_none, list, create, patch, replace, delete, watch
    errors   ``ApiError`` and one subclass per refusal (``NotFound``, ``Conflict``, ...)

Everything above it (the Job runner, the operator's handlers, the test executor) imports
this package and works on plain dicts: ``kube.Client``, ``kube.paths.run(...)``,
``except kube.NotFound``.
"""

from __future__ import annotations

from autoflow.runners.kube import paths
from autoflow.runners.kube.client import (
    APPLY_PATCH,
    JSON_PATCH,
    MAX_CONNECTIONS,
    MERGE_PATCH,
    Client,
)
from autoflow.runners.kube.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NamespaceTerminating,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unreachable,
)
from autoflow.runners.kube.paths import AUTOFLOW, BATCH, CORE, RBAC, path

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
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "NamespaceTerminating",
    "NotFound",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
    "Unreachable",
    "path",
    "paths",
]
