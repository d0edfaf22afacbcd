"""Interruption is not cancellation: a run told to go away (eviction, Ctrl-C, ``kill``) resumes.

``Run.interrupt()`` starts no new step, foreach item or retry, lets the steps in flight finish
within a grace period and journals them, records no end and raises ``RunInterrupted``; the
same journal then resumes after the last recorded step and no finished step runs twice.
``Run.cancel()`` still decides after an interruption: ``finally`` runs, ``Cancelled`` is
recorded. The test actions are the ``t`` connector of ``conftest.Probe``; the command-line
tests run ``autoflow run --journal`` as a subprocess against a local HTTP server that counts
every call.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpserver
import pytest

from autoflow.runners import engine
from autoflow.runners.engine import journal

FAST_RETRY = {"maxAttempts": 5, "initialDelay": "1ms", "multiplier": 2, "jitter": False}


def call(sid: str, **fields: Any) -> dict[str, Any]:
    """A ``t.call`` step; ``with`` parameters go in ``with_``."""
    return {"id": sid, "uses": "t.call", "with": fields.pop("with_", {}), **fields}


async def wait_until(condition: Callable[[], object]) -> None:
    for _ in range(4000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never became true")


def kinds(jr: journal.MemoryJournal, kind: str) -> list[dict[str, Any]]:
    return [r for r in jr.records if r["t"] == kind]


def recorded_steps(jr: journal.MemoryJournal) -> list[str]:
    return [r["step"] for r in kinds(jr, "step")]


def start(probe: Any, spec: dict[str, Any], jr: journal.MemoryJournal) -> tuple[Any, Any]:
    run = engine.Run(probe.compile(spec), run_id="r1", inputs={}, journal=jr)
    return run, asyncio.create_task(run.execute())


# -- the engine ---------------------------------------------------------------------------------


async def test_an_interrupted_run_finishes_the_step_in_flight_and_starts_no_other(
    probe: Any,
) -> None:
    jr = journal.MemoryJournal()
    spec = {"steps": [call("a"), call("b", with_={"sleep": 0.3, "value": 2}), call("c")]}
    run, task = start(probe, spec, jr)
    await wait_until(lambda: probe.running == 1 and probe.steps_called() == ["a", "b"])

    run.interrupt()

    with pytest.raises(engine.RunInterrupted) as stopped:
        await asyncio.wait_for(task, 5)
    assert stopped.value.finished == ["a", "b"]
    assert "run r1 was interrupted" in str(stopped.value)
    assert probe.steps_called() == ["a", "b"]  # c never started
    (b,) = [r for r in kinds(jr, "step") if r["step"] == "b"]
    assert (b["phase"], b["output"]) == ("Succeeded", 2)  # the step in flight was journaled
    assert recorded_steps(jr) == ["a", "b"]
    assert kinds(jr, "end") == []  # no end: the journal resumes

    resumed = await probe.run(spec, journal=jr)
    assert resumed.phase == "Succeeded" and resumed.resumed
    assert probe.steps_called() == ["a", "b", "c"]  # nothing finished ran twice


async def test_parallel_steps_in_flight_all_finish_and_their_dependents_wait(probe: Any) -> None:
    jr = journal.MemoryJournal()
    spec = {
        "steps": [
            call("a", needs=[], with_={"sleep": 0.2}),
            call("b", needs=[], with_={"sleep": 0.3}),
            call("c", needs=["a", "b"]),
        ],
        "finally": [call("cleanup")],
    }
    run, task = start(probe, spec, jr)
    await wait_until(lambda: probe.running == 2)

    run.interrupt()

    with pytest.raises(engine.RunInterrupted):
        await asyncio.wait_for(task, 5)
    assert sorted(recorded_steps(jr)) == ["a", "b"]
    assert probe.steps_called() == ["a", "b"]  # neither c nor finally started
    assert kinds(jr, "end") == []


async def test_a_step_longer_than_the_grace_is_stopped_unrecorded_and_runs_again_on_resume(
    probe: Any,
) -> None:
    jr = journal.MemoryJournal()
    spec = {"steps": [call("a"), call("slow", with_={"sleep": "${ env.PAUSE }"}), call("c")]}
    compiled = probe.compile(spec)
    run = engine.Run(compiled, run_id="r1", inputs={}, journal=jr, env={"PAUSE": "30"})
    task = asyncio.create_task(run.execute())
    await wait_until(lambda: probe.running == 1 and probe.steps_called()[-1:] == ["slow"])

    began = time.monotonic()
    run.interrupt(grace=0.2)

    with pytest.raises(engine.RunInterrupted):
        await asyncio.wait_for(task, 5)
    assert time.monotonic() - began < 3  # the grace ended it, not the 30 s step
    assert probe.running == 0  # nothing left running
    assert recorded_steps(jr) == ["a"]  # the stopped step is not recorded as finished
    assert kinds(jr, "end") == []

    again = engine.Run(compiled, run_id="r1", inputs={}, journal=jr, env={"PAUSE": "0"})
    resumed = await again.execute()
    assert resumed.phase == "Succeeded"
    assert probe.steps_called() == ["a", "slow", "slow", "c"]
    # The step stopped in flight is tried again under the same idempotency key.
    keys = [c.key for c in probe.calls if c.step == "slow"]
    assert keys == ["r1:slow", "r1:slow"]


async def test_an_interrupted_foreach_journals_finished_items_and_starts_no_more(
    probe: Any,
) -> None:
    jr = journal.MemoryJournal()
    spec = {
        "steps": [
            call("each", foreach=[1, 2, 3, 4], with_={"sleep": 0.2, "value": "${ item * 10 }"}),
        ]
    }
    run, task = start(probe, spec, jr)
    await wait_until(lambda: probe.running == 1)

    run.interrupt()

    with pytest.raises(engine.RunInterrupted):
        await asyncio.wait_for(task, 5)
    assert [c.value for c in probe.calls] == [10]  # the item in flight, no other
    assert [(r["index"], r["output"]) for r in kinds(jr, "item")] == [(0, 10)]
    assert recorded_steps(jr) == []  # the step itself is not finished

    resumed = await probe.run(spec, journal=jr)
    assert resumed.phase == "Succeeded"
    assert resumed.steps["each"].output == [10, 20, 30, 40]
    assert [c.value for c in probe.calls] == [10, 20, 30, 40]  # item 0 was not repeated


async def test_an_interruption_during_a_retry_back_off_starts_no_further_attempt(
    probe: Any,
) -> None:
    jr = journal.MemoryJournal()
    slow_retry = {"maxAttempts": 5, "initialDelay": "30s", "jitter": False}
    spec = {"steps": [call("flaky", retry=slow_retry, with_={"failUntil": 1})]}
    run, task = start(probe, spec, jr)
    await wait_until(lambda: kinds(jr, "retry"))

    began = time.monotonic()
    run.interrupt()

    with pytest.raises(engine.RunInterrupted):
        await asyncio.wait_for(task, 5)
    assert time.monotonic() - began < 3  # the 30 s back-off did not hold the process
    assert [c.attempt for c in probe.calls] == [1]
    assert recorded_steps(jr) == [] and kinds(jr, "end") == []

    resumed = await probe.run(spec, journal=jr)
    assert resumed.phase == "Succeeded"
    assert [c.attempt for c in probe.calls] == [1, 2]  # the resumed run makes attempt 2


async def test_an_interruption_during_finally_leaves_the_rest_of_finally_to_the_resume(
    probe: Any,
) -> None:
    jr = journal.MemoryJournal()
    spec = {
        "steps": [call("a")],
        "finally": [call("close", with_={"sleep": 0.2}), call("report")],
    }
    run, task = start(probe, spec, jr)
    await wait_until(lambda: probe.steps_called() == ["a", "close"])

    run.interrupt()

    with pytest.raises(engine.RunInterrupted):
        await asyncio.wait_for(task, 5)
    assert recorded_steps(jr) == ["a", "close"]
    assert kinds(jr, "end") == []
    assert probe.steps_called() == ["a", "close"]


async def test_a_cancel_after_an_interruption_cancels_and_runs_finally(probe: Any) -> None:
    jr = journal.MemoryJournal()
    spec = {
        "steps": [call("wait", with_={"sleep": 30}), call("after")],
        "finally": [call("cleanup")],
    }
    run, task = start(probe, spec, jr)
    await wait_until(lambda: probe.running == 1)

    run.interrupt(grace=20)
    await asyncio.sleep(0.05)
    run.cancel()  # what the Job runner does when the run's spec.cancel turns out true

    result = await asyncio.wait_for(task, 5)
    assert result.phase == "Cancelled"
    assert result.steps["wait"].phase == "Cancelled"
    assert result.steps["cleanup"].phase == "Succeeded"
    assert probe.steps_called() == ["wait", "cleanup"]
    assert kinds(jr, "end")[0]["phase"] == "Cancelled"


async def test_a_cancel_after_an_interruption_held_back_finally_is_left_to_the_resume(
    probe: Any,
) -> None:
    jr = journal.MemoryJournal()
    spec = {
        "steps": [call("a")],
        "finally": [call("close", with_={"sleep": 0.3}), call("report")],
    }
    run, task = start(probe, spec, jr)
    await wait_until(lambda: probe.steps_called() == ["a", "close"])
    run.interrupt()
    await asyncio.sleep(0.5)  # close finished meanwhile; report was held back
    run.cancel()  # too late to start report in this run

    with pytest.raises(engine.RunInterrupted):
        await asyncio.wait_for(task, 5)
    assert kinds(jr, "end") == []

    # What the Job runner does next: resume the run cancelled; finally's rest runs once.
    again = engine.Run(probe.compile(spec), run_id="r1", inputs={}, journal=jr)
    again.cancel()
    result = await again.execute()
    assert result.phase == "Cancelled"
    assert probe.steps_called() == ["a", "close", "report"]
    assert kinds(jr, "end")[0]["phase"] == "Cancelled"


async def test_cancelling_the_caller_of_an_interrupted_run_still_propagates(probe: Any) -> None:
    spec = {"steps": [call("wait", with_={"sleep": 30})]}
    run, task = start(probe, spec, journal.MemoryJournal())
    await wait_until(lambda: probe.running == 1)
    run.interrupt(grace=20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


# -- autoflow run --journal ---------------------------------------------------------------------

CHAIN = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: chain}
spec:
  inputs:
    base: {type: string, required: true}
  steps:
""" + "".join(
    f"""    - id: s{i}
      uses: http.request
      with: {{method: POST, url: "${{ inputs.base }}/s{i}"}}
"""
    for i in range(1, 5)
)


@pytest.fixture
def server() -> Iterator[httpserver.Server]:
    with httpserver.serve() as running:
        for i in range(1, 5):
            running.route(f"/s{i}", httpserver.Reply.with_json({"n": i}))
        yield running
        assert not running.errors


def command(tmp_path: Path, server: httpserver.Server) -> list[str]:
    path = tmp_path / "chain.yaml"
    path.write_text(CHAIN)
    return [
        *(sys.executable, "-P", "-m", "autoflow.cli.main", "run", str(path)),
        *("--journal", str(tmp_path / "journal"), "-i", f"base={server.base_url}"),
    ]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}


def slow(n: int, seconds: float) -> httpserver.Reply:
    reply = httpserver.Reply.with_json({"n": n})
    return httpserver.Reply(reply.status, reply.body, reply.headers, delay=seconds)


def signal_when(
    cmd: list[str], server: httpserver.Server, path: str, *signals: signal.Signals
) -> subprocess.CompletedProcess[str]:
    """Start the run; once ``path`` reached the server (its reply is slow), send ``signals``."""
    proc = subprocess.Popen(
        cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while server.calls(path) == 0:
            assert proc.poll() is None, "the run ended before the slow request"
            assert time.monotonic() < deadline, f"{path} never reached the server"
            time.sleep(0.01)
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.2)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def rerun(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_a_killed_journaled_run_finishes_its_step_says_how_to_resume_and_resumes(
    tmp_path: Path, server: httpserver.Server
) -> None:
    cmd = command(tmp_path, server)
    server.queue("/s2", slow(2, 1.0))

    stopped = signal_when(cmd, server, "/s2", signal.SIGTERM)  # a plain `kill`

    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert "resume it by running the same command again: autoflow run " in stopped.stderr
    assert f"--journal {tmp_path / 'journal'}" in stopped.stderr
    assert "2 finished step(s) journaled" in stopped.stderr
    assert (server.calls("/s3"), server.calls("/s4")) == (0, 0)  # no new step started

    resumed = rerun(cmd)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("Succeeded (resumed): run chain-"), resumed.stdout
    # Every step reached the server once: the one in flight at the signal was journaled.
    assert [server.calls(f"/s{i}") for i in range(1, 5)] == [1, 1, 1, 1]


def test_ctrl_c_on_a_journaled_run_leaves_it_resumable(
    tmp_path: Path, server: httpserver.Server
) -> None:
    cmd = [*command(tmp_path, server), "--output", "json"]
    server.queue("/s3", slow(3, 1.0))

    stopped = signal_when(cmd, server, "/s3", signal.SIGINT)

    assert stopped.returncode == 130, stopped.stderr
    doc = json.loads(stopped.stdout)
    assert doc["phase"] == "Interrupted"
    assert doc["finishedSteps"] == ["s1", "s2", "s3"]
    assert doc["resumeCommand"].startswith("autoflow run ")
    resumed = json.loads(rerun(cmd).stdout)
    assert (resumed["phase"], resumed["resumed"]) == ("Succeeded", True)
    assert [server.calls(f"/s{i}") for i in range(1, 5)] == [1, 1, 1, 1]


def test_a_second_ctrl_c_stops_at_once_and_the_run_still_resumes(
    tmp_path: Path, server: httpserver.Server
) -> None:
    cmd = command(tmp_path, server)
    server.queue("/s2", slow(2, 20.0))

    began = time.monotonic()
    stopped = signal_when(cmd, server, "/s2", signal.SIGINT, signal.SIGINT)

    assert time.monotonic() - began < 15  # not held by the 20 s reply
    assert stopped.returncode == 130
    assert "stopped at once; resume by running the same command" in stopped.stderr
    resumed = rerun(cmd)
    assert resumed.returncode == 0, resumed.stderr
    assert "(resumed)" in resumed.stdout
    # s1 finished before the signals and is not repeated; s2 was stopped in flight.
    assert [server.calls(f"/s{i}") for i in range(1, 5)] == [1, 2, 1, 1]


async def test_a_signal_stops_an_expression_in_the_middle_of_its_evaluation(
    probe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal's handler runs on the loop only after the evaluation; the evaluation itself
    stops at its next budget checkpoint, and the step counts as interrupted, not failed."""
    from autoflow.runners import expressions

    # An evaluation that would take many seconds: no budget or deadline ends it first.
    monkeypatch.setattr(expressions, "MAX_WORK", 10**13)
    monkeypatch.setattr(expressions, "MAX_SECONDS", 3600.0)
    slow = "${ len([len([y * 2 for y in range(10000)]) for x in range(10000)]) }"
    jr = _Noting()
    spec = {"steps": [call("a"), call("b", with_={"value": slow})]}
    run = engine.Run(probe.compile(spec), run_id="r1", inputs={}, journal=jr)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, run.interrupt)
    expressions.stop_on(signal.SIGUSR1)
    try:
        # The loop is busy evaluating: the signal comes from another thread, as the kernel's
        # would, once b's attempt has started (its start record precedes the evaluation).
        def send() -> None:
            if jr.b_started.wait(30):
                os.kill(os.getpid(), signal.SIGUSR1)

        sender = threading.Thread(target=send)
        sender.start()
        task = asyncio.create_task(run.execute())
        with pytest.raises(engine.RunInterrupted):
            await asyncio.wait_for(task, 60)
        sender.join()
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
    assert probe.steps_called() == ["a"]  # b's action was never called
    assert recorded_steps(jr) == ["a"]  # and b is not recorded: the resumed run does it
    assert not kinds(jr, "end")
    assert expressions.STOP.requested is False


class _Noting(journal.MemoryJournal):
    """A memory journal that says when step b's attempt has been recorded as started."""

    def __init__(self) -> None:
        super().__init__()
        self.b_started = threading.Event()

    def append(self, record: dict[str, Any]) -> None:
        super().append(record)
        if record["t"] == "start" and record["step"] == "b":
            self.b_started.set()
