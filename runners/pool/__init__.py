"""Starting runs without a WorkflowRun object: the contract between whoever starts a run (the
webhook gateway, NATS event triggers, Schedules in pool mode, ``autoflow runs start``, the web
API) and whatever executes it (in this process for ``autoflow serve``; JetStream and
``autoflow worker`` processes in a cluster).

A starter builds a ``RunRequest`` and calls ``Launcher.launch``. The launcher records the run
in the run store first (``Store.start_run``: phase Pending, de-duplicated by
``(dedupe_key)`` with a unique key, so a redelivered webhook answers with the first delivery's
run and never starts a second one), then hands the run id to its executor. ``wait`` lets a
caller (a ``sync`` webhook, the web API) wait a bounded time for the run's end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True, slots=True)
class RunRequest:
    namespace: str
    workflow: str
    inputs: Mapping[str, Any]
    trigger: str  # "webhook", "nats", "schedule", "manual", "api"
    started_by: str  # who or what: a user name, "webhook:/hooks/ns/path", "schedule:name"
    # (trigger key, delivery id) made into one string by the starter; None: no de-duplication.
    dedupe_key: str | None = None
    run_id: str | None = None  # chosen by the starter (Schedules: deterministic), else made


@dataclasses.dataclass(frozen=True, slots=True)
class Started:
    run_id: str
    duplicate: bool  # True: this dedupe_key was seen before; run_id is the first one's run


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    run_id: str
    phase: str  # Succeeded, Failed, Cancelled
    outputs: Mapping[str, Any]
    error: str | None


class Launcher(Protocol):
    async def launch(self, request: RunRequest) -> Started: ...

    async def wait(self, run_id: str, timeout: float) -> Outcome | None:
        """The run's end, or None when it has not ended within ``timeout`` seconds."""
        ...
