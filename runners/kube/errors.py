"""What the Kubernetes API answered when it refused a request, one class per answer.

``refused(status, reason, message, details)`` turns an API server's Status into the class
that says what happened, so callers catch the case they handle and let the rest rise::

    ApiError                  (crds.errors.AutoflowError) any refusal; status, reason, details
    ├── Unreachable           no answer: connection refused, reset, timed out (status 0)
    ├── Unauthorized          401: the credentials are not accepted
    ├── Forbidden             403: RBAC refused it
    │   └── NamespaceTerminating   the namespace is being deleted: nothing can be made there
    ├── NotFound              404
    ├── Conflict              409: exists already, or the resourceVersion is not current
    ├── Gone                  410: a watch's resourceVersion is too old
    ├── Invalid               422: the object breaks its schema
    ├── TooManyRequests       429: throttled, or the storage is (re)initialising
    └── ServerError           5xx
"""

from __future__ import annotations

from typing import Any

from autoflow.crds import errors


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
    def transient(self) -> bool:
        """May succeed if sent again soon (no answer, throttled, a server error)."""
        return isinstance(self, Unreachable | TooManyRequests | ServerError)


class Unreachable(ApiError):
    """No answer from the API server (status 0)."""


class Unauthorized(ApiError):
    """401: the API server does not accept the request's credentials."""


class Forbidden(ApiError):
    """403: the request's user may not do this."""


class NamespaceTerminating(Forbidden):
    """Refused because the namespace is being deleted: nothing can be made there again."""


class NotFound(ApiError):
    """404: no such object (or collection)."""


class Conflict(ApiError):
    """409: the object exists already, or it changed since the resourceVersion given."""


class Gone(ApiError):
    """410: the resourceVersion a watch started from is too old."""


class Invalid(ApiError):
    """422: the object breaks its schema or a validation rule."""


class TooManyRequests(ApiError):
    """429: throttled by priority and fairness, or the storage is (re)initialising."""


class ServerError(ApiError):
    """5xx: the API server failed."""


_BY_STATUS: dict[int, type[ApiError]] = {
    0: Unreachable,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def refused(
    status: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> ApiError:
    """The error for an API server's answer ``status`` (with its Status ``details``)."""
    causes = (details or {}).get("causes") or []
    if any(c.get("reason") == "NamespaceTerminating" for c in causes):
        return NamespaceTerminating(status, reason, message, details)
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return kind(status, reason, message, details)
