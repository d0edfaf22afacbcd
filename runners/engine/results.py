"""What a run gives back and the hooks it offers: results, the observer, the stops.

``Run.execute`` returns a ``RunResult`` holding one ``StepResult`` per step, in the order the
steps finished; an ``Observer`` sees steps start, retry and finish as it happens. A run that
is interrupted raises ``RunInterrupted`` instead of returning. ``Unfinished`` is the engine's
own signal, never seen outside it: a step in flight stopped by an interruption.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from autoflow.connectors import sdk
from autoflow.crds import errors
from autoflow.runners.access import redact

SUCCEEDED, FAILED, SKIPPED, CANCELLED = "Succeeded", "Failed", "Skipped", "Cancelled"


@dataclasses.dataclass(slots=True)
class StepResult:
    id: str
    phase: str
    output: Any = None
    error: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""

    def scope(self) -> dict[str, Any]:
        return {"output": self.output, "status": self.phase, "error": self.error}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phase": self.phase,
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "message": self.message,
        }


@dataclasses.dataclass(slots=True)
class RunResult:
    run_id: str
    workflow: str
    phase: str
    steps: dict[str, StepResult]
    outputs: Any = None
    error: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    resumed: bool = False

    @property
    def succeeded(self) -> bool:
        return self.phase == SUCCEEDED

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "workflow": self.workflow,
            "phase": self.phase,
            "error": self.error,
            "outputs": self.outputs,
            "resumed": self.resumed,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "durationMs": round((self.finished_at - self.started_at) * 1000, 3),
            "steps": [s.to_json() for s in self.steps.values()],
        }


class Observer:
    """Hooks for progress display and metrics; the default does nothing."""

    def step_started(self, step: str, attempt: int) -> None: ...

    def step_retrying(self, step: str, attempt: int, error: str, delay: float) -> None: ...

    def step_finished(self, result: StepResult) -> None: ...


class IntegrationProvider(Protocol):
    """Resolves the integration a step names, with a secrets accessor that reports to a Redactor.

    Asynchronous because resolving may read a Kubernetes Secret or fetch an OAuth2 token.
    """

    async def get(self, name: str, redactor: redact.Redactor) -> sdk.IntegrationInfo: ...


class RunInterrupted(errors.RunError):
    """``execute`` stopped on ``interrupt()``: what finished is journaled, no end is recorded,
    so running again with the same journal resumes after the last recorded step."""

    def __init__(self, run_id: str, finished: list[str]) -> None:
        super().__init__(
            f"run {run_id} was interrupted after {len(finished)} finished step(s); they are "
            "journaled and resuming the run goes on after them"
        )
        self.run_id = run_id
        self.finished = finished


class Unfinished(Exception):
    """A step in flight stopped by an interruption (before a retry or a foreach item): it is
    not journaled as finished, so a resumed run carries it on."""
