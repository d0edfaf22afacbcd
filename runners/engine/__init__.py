"""The engine: one run of a compiled Plan, step by step, each result journaled before use.

The same engine runs everywhere a run happens (laptop, Job, pool); only the journal, the
Integration provider, the limiter and the observer differ. This package's names are the
engine's public face (``engine.Run``, ``engine.RunResult``, ...); the work is in:

    run.py          Run: construction, cancel, interrupt, execute from start to end
    scheduling.py   the DAG of each section, failures, cancels and interrupts
    steps.py        one step: its condition, foreach items, attempts under the retry policy
    journaling.py   recording each result, checking and restoring a journal to resume
    results.py      RunResult, StepResult, the Observer hooks, RunInterrupted
    journal.py      the journal itself: records, their checks, file and memory journals, replay
"""

from autoflow.runners.engine.journaling import spec_hash
from autoflow.runners.engine.results import (
    CANCELLED,
    FAILED,
    SKIPPED,
    SUCCEEDED,
    IntegrationProvider,
    Observer,
    RunInterrupted,
    RunResult,
    StepResult,
)
from autoflow.runners.engine.run import Run
from autoflow.runners.engine.steps import backoff

__all__ = [
    "CANCELLED",
    "FAILED",
    "SKIPPED",
    "SUCCEEDED",
    "IntegrationProvider",
    "Observer",
    "Run",
    "RunInterrupted",
    "RunResult",
    "StepResult",
    "backoff",
    "spec_hash",
]
