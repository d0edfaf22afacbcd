"""Journaling and restoring a run: what the engine records, and how a journal resumes it.

Every step's end is recorded before anything depends on it (``_record``), and a journal that
writes remotely is made durable first (``_durable``). A run started with a journal that holds
records is checked against the definition it was written for (``spec_hash``); its finished
steps become results again (``_restore``) and a finished run's result is read back whole
(``_result_from_journal``). Which steps then start again is the scheduler's decision
(``scheduling``), made by replaying the restored steps in the order they were recorded.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from autoflow.crds import errors, workflow
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.engine import journal as journal_mod
from autoflow.runners.engine.results import RunResult, StepResult


def spec_hash(compiled: plan_mod.Plan) -> str:
    """Identifies the definition a journal was written for; resuming under another is refused."""
    if not compiled.digest:
        compiled.digest = _digest(compiled.workflow)
    return compiled.digest


def _digest(wf: workflow.Workflow) -> str:
    body = json.dumps(wf.spec.dump(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class Journaling:
    """The journal side of a ``Run``: recording, and the state a journal restores."""

    plan: plan_mod.Plan
    run_id: str
    journal: journal_mod.Journal
    _flush: Any  # a remote journal's flush(), making what was recorded durable; else None
    results: dict[str, StepResult]
    _steps_scope: dict[str, Any]  # steps.<id> as expressions read it
    _replay: journal_mod.Replay  # what the journal held when this run (re)started

    def _record(self, record: dict[str, Any]) -> None:
        self.journal.append(record)

    async def _durable(self) -> None:
        """Before anything depends on what was recorded, a remote journal must hold it."""
        if self._flush is not None:
            await self._flush()

    def _check_resumable(self, header: dict[str, Any]) -> None:
        if header.get("specHash") != spec_hash(self.plan):
            raise errors.RunError(
                f"the journal belongs to run {header.get('runId')!r} of a different definition "
                f"of workflow {header.get('workflow')!r}; resume it with the workflow it started "
                "with, or start a new journal"
            )

    def _restore(self, state: journal_mod.Replay) -> None:
        """Finished steps become results. Whether a failure stops a section is decided when
        the section replays them in order (``_replay_section``), not here: a failed
        ``finally`` step must not fail a run whose main steps succeeded."""
        for sid, rec in state.steps.items():
            try:
                self.plan.step(sid)
            except KeyError:
                raise errors.RunError(
                    f"corrupt journal: it records step {sid!r}, which workflow "
                    f"{self.plan.name!r} does not have"
                ) from None
            res = StepResult(
                id=sid,
                phase=rec["phase"],
                output=rec.get("output"),
                error=rec.get("error"),
                attempts=rec.get("attempts", 0),
                started_at=rec.get("startedAt"),
                finished_at=rec.get("finishedAt"),
                message=rec.get("message", ""),
            )
            self.results[sid] = res
            self._steps_scope[sid] = res.scope()

    def _result_from_journal(self, state: journal_mod.Replay) -> RunResult:
        self._restore(state)
        assert state.header is not None and state.end is not None
        return RunResult(
            run_id=state.header["runId"],
            workflow=state.header["workflow"],
            phase=state.end["phase"],
            steps=self.results,
            outputs=state.end.get("outputs"),
            error=state.end.get("error"),
            started_at=state.header.get("startedAt", 0.0),
            finished_at=state.end.get("at", 0.0),
            resumed=True,
        )
