"""Engine benchmark: cost per no-op step, and what one ``autoflow run`` costs from the shell.

    .venv/bin/python benchmarks/engine.py [--repeat 5]

Prints, for chains of 1, 50, 200 and 1000 ``core.noop`` steps and a 1000-wide fan-out, the
milliseconds per step (median of the repeats), next to a baseline measured in the same run:
a bare asyncio loop awaiting one no-op coroutine per step, the floor any asyncio engine
stands on. Then the wall time and peak RSS of ``autoflow run`` on a one-step workflow,
against ``python -c pass`` as the baseline. Targets (issue 2): ≤ 0.05 ms per no-op step,
one-shot run ≤ 0.6 s and ≤ 80 MB. Figures, not assertions: tests never time anything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from autoflow.crds import workflow
from autoflow.runners import engine
from autoflow.runners.definitions import plan
from autoflow.runners.engine import journal

ONE_STEP = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: one-step}
spec:
  steps:
    - {id: hello, uses: core.log, with: {message: hello}}
"""


def _workflow(steps: int, fan_out: bool) -> workflow.Workflow:
    items: list[dict[str, Any]] = [{"id": f"s{i}", "uses": "core.noop"} for i in range(steps)]
    if fan_out:
        for item in items:
            item["needs"] = []
    return workflow.Workflow.model_validate(
        {"kind": "Workflow", "metadata": {"name": "bench"}, "spec": {"steps": items}}
    )


async def _engine_once(compiled: plan.Plan) -> float:
    run = engine.Run(compiled, run_id="bench", inputs={}, journal=journal.MemoryJournal())
    start = time.perf_counter()
    result = await run.execute()
    elapsed = time.perf_counter() - start
    assert result.succeeded, result.error
    return elapsed


async def _noop() -> None:
    return None


async def _baseline_once(steps: int, fan_out: bool) -> float:
    start = time.perf_counter()
    if fan_out:
        await asyncio.gather(*(asyncio.ensure_future(_noop()) for _ in range(steps)))
    else:
        for _ in range(steps):
            await _noop()
    return time.perf_counter() - start


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def bench_steps(repeat: int) -> None:
    print("no-op steps (ms per step, median of", repeat, "runs)")
    print(f"  {'shape':<16}{'engine':>10}{'baseline':>10}{'ratio':>8}{'target':>9}")
    for label, steps, fan_out in [
        ("chain 1", 1, False),
        ("chain 50", 50, False),
        ("chain 200", 200, False),
        ("chain 1000", 1000, False),
        ("fan-out 1000", 1000, True),
    ]:
        compiled = plan.compile_workflow(_workflow(steps, fan_out))

        async def measure(
            compiled: plan.Plan = compiled, steps: int = steps, fan: bool = fan_out
        ) -> tuple[list[float], list[float]]:
            await _engine_once(compiled)  # warm up
            eng = [await _engine_once(compiled) for _ in range(repeat)]
            base = [await _baseline_once(steps, fan) for _ in range(repeat)]
            return eng, base

        eng, base = asyncio.run(measure())
        per_step = _median(eng) * 1000 / steps
        per_base = _median(base) * 1000 / steps
        verdict = "ok" if per_step <= 0.05 else "MISS"
        print(
            f"  {label:<16}{per_step:>10.4f}{per_base:>10.4f}{per_step / per_base:>7.0f}x"
            f"{'≤0.05 ' + verdict:>10}"
        )


def _run_child(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    start = time.perf_counter()
    pid = os.spawnv(os.P_NOWAIT, argv[0], argv)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed with {status}")
    return elapsed, usage.ru_maxrss / 1024


def bench_one_shot(repeat: int) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "autoflow")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "one-step.yaml")
        with open(path, "w") as fh:
            fh.write(ONE_STEP)
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(1), os.dup(2)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            _run_child([exe, "run", "--quiet", path])  # warm the file cache
            runs = [_run_child([exe, "run", "--quiet", path]) for _ in range(repeat)]
            bases = [_run_child([sys.executable, "-c", "pass"]) for _ in range(repeat)]
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    wall, rss = _median([r[0] for r in runs]), max(r[1] for r in runs)
    base_wall, base_rss = _median([b[0] for b in bases]), max(b[1] for b in bases)
    print("one-shot `autoflow run` of a 1-step workflow (median wall, peak RSS)")
    print(f"  {'':<16}{'autoflow':>10}{'python':>10}{'ratio':>8}{'target':>9}")
    print(
        f"  {'wall (s)':<16}{wall:>10.3f}{base_wall:>10.3f}{wall / base_wall:>7.1f}x"
        f"{'≤0.6 ' + ('ok' if wall <= 0.6 else 'MISS'):>10}"
    )
    print(
        f"  {'peak RSS (MB)':<16}{rss:>10.1f}{base_rss:>10.1f}{rss / base_rss:>7.1f}x"
        f"{'≤80 ' + ('ok' if rss <= 80 else 'MISS'):>10}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bench_steps(args.repeat)
    bench_one_shot(args.repeat)


if __name__ == "__main__":
    main()
