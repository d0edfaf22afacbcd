"""Resume is exact: a run resumed from any prefix of its journal ends as if never interrupted.

A crash can happen after any record, so the property is checked for every cut of the journal
of an uninterrupted run: random DAGs of ``t.call`` steps (``needs``, ``if``, ``foreach``,
retries, failures, ``continueOnError``, ``onError`` and ``finally`` steps), the journal cut
after each record, a new Run on the cut journal. The resumed run must end with the same phase,
error, outputs and per-step phase, output, error, attempts and message, and must not call the
action again for a step or foreach item that the cut journal records as finished.

The test actions finish without waiting, retries wait ``0s`` (which the engine does without
yielding) and foreach items run one at a time, so the order in which steps run is decided by
the workflow alone: the interrupted and the resumed run are comparable step for step. (With
real waits, parallel branches race in the uninterrupted run too; a resumed run then ends as one
of the ways the uninterrupted run could have.) Items running side by side are covered by
``test_items_started_before_another_failed_still_run_when_resumed``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoflow.runners import engine
from autoflow.runners.engine import journal

Spec = dict[str, Any]


@st.composite
def behaviours(draw: st.DrawFn) -> dict[str, Any]:
    """How one step (or one foreach item) fails: attempts that fail, and whether retryable."""
    fail_until = draw(st.sampled_from([0, 0, 0, 1, 2, 9]))
    error = draw(st.sampled_from(["retryable", "retryable", "permanent"]))
    return {"failUntil": fail_until, "error": error}


@st.composite
def steps(draw: st.DrawFn, prefix: str, count: int, main: list[str]) -> list[Spec]:
    """``count`` steps named ``<prefix><n>``; ``needs`` and ``if`` refer to earlier ones of
    the same list (``if`` in onError and finally also to main steps)."""
    made: list[Spec] = []
    for n in range(count):
        sid = f"{prefix}{n}"
        earlier = [s["id"] for s in made]
        step: Spec = {"id": sid, "uses": "t.call"}
        needs: list[str] | None = None
        if bool(earlier) and draw(st.booleans()):
            needs = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3))
            step["needs"] = needs
        elif earlier:
            needs = [earlier[-1]]  # without needs a step follows the one before it
        readable = needs or []
        step["with"] = {"value": f"${{ [{', '.join(f'steps.{d}.output' for d in readable)}] }}"}
        step["retry"] = {
            "maxAttempts": draw(st.integers(1, 3)),
            "initialDelay": "0s",
            "jitter": False,
        }
        if draw(st.integers(0, 4)) == 0:
            step["continueOnError"] = True
        testable = readable + (main if prefix != "s" else [])
        if testable and draw(st.integers(0, 4)) == 0:
            other = draw(st.sampled_from(testable))
            step["if"] = f"${{ steps.{other}.status == 'Succeeded' }}"
        if draw(st.integers(0, 3)) == 0:
            items = draw(st.lists(behaviours(), max_size=4))
            step["foreach"] = [{"v": i, **b} for i, b in enumerate(items)]
            step["with"] = {
                "value": "${ [index, item.v] }",
                "failUntil": "${ item.failUntil }",
                "error": "${ item.error }",
            }
        else:
            step["with"].update(draw(behaviours()))
        made.append(step)
    return made


@st.composite
def workflows(draw: st.DrawFn) -> Spec:
    main = draw(steps("s", draw(st.integers(1, 5)), []))
    names = [s["id"] for s in main]
    spec: Spec = {
        "steps": main,
        "onError": draw(steps("e", draw(st.integers(0, 2)), names)),
        "finally": draw(steps("f", draw(st.integers(0, 2)), names)),
        "outputs": {"all": f"${{ [{', '.join(f'steps.{s}.output' for s in names)}] }}"},
    }
    return spec


def outcome(result: engine.RunResult, only: set[str] | None = None) -> Any:
    return (
        result.phase,
        result.error,
        result.outputs,
        {
            sid: (s.phase, s.output, s.error, s.attempts, s.message)
            for sid, s in result.steps.items()
            if only is None or sid in only
        },
    )


def finished_in(records: list[dict[str, Any]]) -> tuple[set[str], set[tuple[str, int]]]:
    steps_done = {r["step"] for r in records if r["t"] == "step"}
    items_done = {(r["step"], r["index"]) for r in records if r["t"] == "item"}
    return steps_done, items_done


def called(key: str) -> tuple[str, int | None]:
    """(step, item) from an idempotency key ``r1:<step>`` or ``r1:<step>[<item>]``."""
    name = key.split(":", 1)[1]
    if name.endswith("]"):
        step, _, index = name[:-1].partition("[")
        return step, int(index)
    return name, None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflows())
def test_resuming_from_any_cut_of_the_journal_ends_as_the_uninterrupted_run(
    new_probe: Any, spec: Spec
) -> None:
    asyncio.run(check_every_cut(new_probe, spec))


async def check_every_cut(new_probe: Any, spec: Spec) -> None:
    probe = new_probe()
    compiled = probe.compile(spec)
    whole = journal.MemoryJournal()
    expected = await probe.run(compiled, journal=whole)
    records = whole.records
    assert records[-1]["t"] == "end"
    for cut in range(1, len(records) + 1):
        again = new_probe()
        kept = records[:cut]
        result = await again.run(again.compile(spec), journal=journal.MemoryJournal(kept))
        assert result.resumed
        if cut == len(records):
            # A finished journal gives back what it recorded, without running anything.
            assert outcome(result) == outcome(expected, set(result.steps)), cut
            assert again.calls == []
            continue
        assert outcome(result) == outcome(expected), f"resumed after record {cut}: {kept[-1]}"
        steps_done, items_done = finished_in(kept)
        for call in again.calls:
            step, item = called(call.key)
            assert step not in steps_done, f"{step} ran again after record {cut}"
            assert (step, item) not in items_done, f"{step}[{item}] ran again after record {cut}"


def test_a_failed_finally_step_does_not_fail_a_resumed_run(new_probe: Any) -> None:
    """The uninterrupted run succeeds (a finally step's failure does not fail the run); so must
    the same run resumed after the finally step was recorded."""
    spec: Spec = {
        "steps": [{"id": "a", "uses": "t.call", "with": {"value": 1}}],
        "onError": [{"id": "e", "uses": "t.call"}],
        "finally": [
            {"id": "f", "uses": "t.call", "with": {"failUntil": 1, "error": "permanent"}},
            {"id": "g", "uses": "t.call", "needs": []},
        ],
    }
    probe = new_probe()
    whole = journal.MemoryJournal()
    expected = asyncio.run(probe.run(spec, journal=whole))
    assert expected.phase == "Succeeded"
    cut = next(
        n for n, r in enumerate(whole.records, 1) if r.get("step") == "f" and r["t"] == "step"
    )
    again = new_probe()
    result = asyncio.run(again.run(spec, journal=journal.MemoryJournal(whole.records[:cut])))
    assert result.phase == "Succeeded", result.error
    assert "e" not in again.steps_called()  # onError is not run for a run that did not fail


def test_a_resumed_step_reports_every_attempt_it_made(new_probe: Any) -> None:
    spec: Spec = {
        "steps": [
            {
                "id": "a",
                "uses": "t.call",
                "retry": {"maxAttempts": 5, "initialDelay": "0s", "jitter": False},
                "with": {"failUntil": 3},
            }
        ]
    }
    probe = new_probe()
    whole = journal.MemoryJournal()
    asyncio.run(probe.run(spec, journal=whole))
    # Interrupted during attempt 3: two attempts failed before, the third is made again.
    cut = next(n for n, r in enumerate(whole.records, 1) if r.get("attempt") == 3)
    again = new_probe()
    result = asyncio.run(again.run(spec, journal=journal.MemoryJournal(whole.records[:cut])))
    assert [c.attempt for c in again.calls] == [3, 4]
    assert result.steps["a"].attempts == 4


def test_items_started_before_another_failed_still_run_when_resumed(new_probe: Any) -> None:
    """Two items ran side by side; the run was interrupted after item 0 failed for good while
    item 1 was between attempts. Item 1 had started, so it finishes, as it would have; item 2
    had not, so it does not start."""
    spec: Spec = {
        "steps": [
            {
                "id": "each",
                "uses": "t.call",
                "foreach": [9, 1, 0],
                "concurrency": 2,
                "retry": {"maxAttempts": 2, "initialDelay": "0s", "jitter": False},
                "with": {"value": "${ item }", "failUntil": "${ item }"},
            }
        ]
    }
    probe = new_probe()
    compiled = probe.compile(spec)
    header = {
        "t": "run",
        "runId": "r1",
        "workflow": "wf",
        "specHash": engine.spec_hash(compiled),
        "inputs": {},
        "startedAt": 0.0,
    }
    crashed = [
        header,
        {"t": "start", "step": "each", "attempt": 1, "item": 0},
        {"t": "retry", "step": "each", "attempt": 1, "item": 0, "error": "boom", "delay": 0},
        {"t": "start", "step": "each", "attempt": 1, "item": 1},
        {"t": "retry", "step": "each", "attempt": 1, "item": 1, "error": "boom", "delay": 0},
        {"t": "start", "step": "each", "attempt": 2, "item": 0},
    ]
    result = asyncio.run(probe.run(compiled, journal=journal.MemoryJournal(crashed)))
    assert result.phase == "Failed"
    assert sorted((c.key, c.attempt) for c in probe.calls) == [("r1:each[0]", 2), ("r1:each[1]", 2)]
    assert result.steps["each"].error == "item 0: boom after 2 attempts"
    assert result.steps["each"].attempts == 4
