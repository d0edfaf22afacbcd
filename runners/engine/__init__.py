"""The engine: one run of a compiled Plan, step by step, each result journaled before use.

The same engine runs everywhere a run happens (laptop, Job, pool); only the journal, the
Integration provider, the limiter and the observer differ. This package's names are the
engine's public face (``engine.Run``, ``engine.RunResult``, ...); the work is in:

    run.py        Run: the run from start to end, cancel and interrupt
    journal.py    the journal: records, their checks, file and memory journals, replay
"""

from autoflow.runners.engine.run import (
    CANCELLED,
    FAILED,
    SKIPPED,
    SUCCEEDED,
    IntegrationProvider,
    Observer,
    Run,
    RunInterrupted,
    RunResult,
    StepResult,
    backoff,
    spec_hash,
)

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
