"""The one error tree of Autoflow.

Every error a user can see carries *where* it is about (file, resource, step, field) so the
message names the thing to fix. Everything raised on purpose by Autoflow code derives from
``AutoflowError``::

    AutoflowError
    ├── ManifestError             a file or resource cannot be used as written
    │   ├── ManifestSyntaxError   not parseable (YAML syntax, tabs, not a mapping, too large)
    │   └── ValidationError       parsed, but breaks the schema or the rules; holds many Problems
    ├── ExpressionError           an expression in a step field
    │   ├── ExpressionSyntaxError rejected when the workflow is compiled (validate time)
    │   └── ExpressionEvalError   failed while a run evaluated it (missing key, bad operand)
    ├── InputError                run inputs do not match the workflow's declared inputs
    ├── ConnectorError            raised by a connector action (or health probe)
    │   ├── RetryableError        may succeed if tried again (5xx, 429, timeouts, connection reset)
    │   │   └── UnreachableError  the remote system cannot be reached or cannot serve now
    │   └── PermanentError        will fail the same way again (4xx, bad params, auth refused)
    │       ├── MissingSecretError          the Integration's credentials lack a key
    │       ├── InvalidSettingsError        the Integration's settings cannot be used
    │       └── CredentialsRejectedError    the remote system refused the credentials
    ├── StepFailed                a step ended Failed (the engine's own signal: raised and caught
    │                             inside the engine, its message becomes the step's error)
    ├── RunError                  the run as a whole cannot start or go on (a journal refused)
    │   └── RunInterrupted        the run was interrupted, not ended (runners.engine); resume it
    ├── ApiError                  the Kubernetes API refused a request (runners.kube.errors)
    │   ├── Unreachable           no answer from the API server
    │   ├── Unauthorized          401
    │   ├── Forbidden             403
    │   │   └── NamespaceTerminating  the namespace is being deleted
    │   ├── NotFound              404
    │   ├── Conflict              409: exists already, or changed since read
    │   ├── Gone                  410: a watch's resourceVersion is too old
    │   ├── Invalid               422: breaks the object's schema
    │   ├── TooManyRequests       429
    │   └── ServerError           5xx
    └── NotOurs                   an object a run needs exists, made for another run
                                  (operator.handlers; the run waits for it to go)

This module sits at the bottom of the layer order (``autoflow.crds``) so every component can
raise and catch the same types. It imports nothing of the project; the classes of the layers
above (``ApiError``, ``RunInterrupted`` and ``NotOurs``) are defined where they are raised and
derive from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence


@dataclasses.dataclass(frozen=True, slots=True)
class Where:
    """What an error is about. Every part is optional; ``str()`` joins the known parts."""

    file: str | None = None
    resource: str | None = None  # "Workflow/order-alerts"
    step: str | None = None
    field: str | None = None  # dotted path inside the step or resource: "with.url"
    line: int | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.resource:
            parts.append(self.resource)
        if self.step:
            parts.append(f"step {self.step!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)

    def replace(self, **changes: object) -> Where:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


class AutoflowError(Exception):
    """Base of every error Autoflow raises on purpose; ``str()`` is the user-facing message."""

    def __init__(self, message: str, where: Where | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where or Where()

    def __str__(self) -> str:
        place = str(self.where)
        return f"{place}: {self.message}" if place else self.message

    def at(self, **changes: object) -> AutoflowError:
        """Fill in location parts that are still unknown (outer layers know file and resource)."""
        known = {k: v for k, v in changes.items() if getattr(self.where, k) in (None, "")}
        self.where = self.where.replace(**known)
        return self


class ManifestError(AutoflowError):
    """A file or resource cannot be used as written."""


class ManifestSyntaxError(ManifestError):
    """The text is not a usable document: YAML syntax, tab indentation, wrong top-level type."""


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One finding of validation; a ``ValidationError`` collects all of them at once."""

    message: str
    where: Where = Where()

    def __str__(self) -> str:
        place = str(self.where)
        return f"{place}: {self.message}" if place else self.message


class ValidationError(ManifestError):
    """A resource breaks the schema or the workflow rules. ``problems`` lists every finding."""

    def __init__(self, problems: Sequence[Problem], where: Where | None = None) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else Problem("invalid")
        super().__init__(first.message, where or first.where)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    def at(self, **changes: object) -> AutoflowError:
        updated = []
        for p in self.problems:
            known = {k: v for k, v in changes.items() if getattr(p.where, k) in (None, "")}
            updated.append(Problem(p.message, p.where.replace(**known)))
        self.problems = updated
        return super().at(**changes)

    @classmethod
    def collect(cls, problems: Iterable[Problem]) -> ValidationError | None:
        found = list(problems)
        return cls(found) if found else None


class ExpressionError(AutoflowError):
    """An expression in a manifest field is wrong or failed to evaluate."""

    def __init__(self, message: str, where: Where | None = None, expression: str = "") -> None:
        super().__init__(message, where)
        self.expression = expression

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (in ${{ {self.expression} }})" if self.expression else base


class ExpressionSyntaxError(ExpressionError):
    """Rejected when the workflow is compiled, before anything runs."""


class ExpressionEvalError(ExpressionError):
    """Raised while evaluating against run data: a missing key, an operand of the wrong type."""


class InputError(AutoflowError):
    """Run inputs do not match the inputs the workflow declares."""


class ConnectorError(AutoflowError):
    """Raised by a connector action. ``retryable`` tells the engine whether to try again.

    ``retry_after`` (seconds) is a hint from the remote system (HTTP ``Retry-After``) that the
    engine honours instead of its own backoff when it is larger.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        where: Where | None = None,
        *,
        retry_after: float | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, where)
        self.retry_after = retry_after
        self.details = details or {}


class RetryableError(ConnectorError):
    """May succeed if tried again."""

    retryable = True


class PermanentError(ConnectorError):
    """Will fail the same way if tried again."""

    retryable = False


class MissingSecretError(PermanentError):
    """An Integration's credentials lack a key the connector reads (or its Secret is missing)."""


class InvalidSettingsError(PermanentError):
    """An Integration's ``settings`` (or a credential's form) cannot be used as written."""


class CredentialsRejectedError(PermanentError):
    """The remote system refused the Integration's credentials: a wrong password, a revoked
    token, a login it does not allow."""


class UnreachableError(RetryableError):
    """The remote system could not be reached (refused, no route, no such host, connection
    lost) or answered that it cannot serve now (HTTP 5xx)."""


class StepFailed(AutoflowError):
    """A step ended Failed after ``attempts`` attempts. Control flow inside the engine: it is
    raised where a step's condition, items or attempts fail and caught where the step's end is
    recorded, so it never leaves a run; the message is the step's error."""

    def __init__(self, message: str, attempts: int, where: Where | None = None) -> None:
        super().__init__(message, where)
        self.attempts = attempts


class RunError(AutoflowError):
    """The run as a whole cannot start or go on (a journal refused, an unsafe run id)."""
