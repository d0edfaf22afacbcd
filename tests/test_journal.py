"""The run journal: a runner that dies resumes after the last recorded step, never redoing one.

A crash is simulated by keeping only the first records of a finished run's journal (the
records a killed runner would have written) and starting a new Run on them. Grouped by
concern: what is recorded when, resuming (steps, attempts, foreach items, inputs), refusing
a journal of another definition, finished journals, and the JSON-lines file.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from autoflow.crds import errors
from autoflow.runners import engine
from autoflow.runners.engine import journal

RETRY = {"maxAttempts": 3, "initialDelay": "1ms", "jitter": False}

# a → b → c (fails once, then succeeds) → d, which reads b and c.
SPEC: dict[str, Any] = {
    "inputs": {"n": {"type": "integer", "default": 1}},
    "steps": [
        {"id": "a", "uses": "t.call", "with": {"value": "${ inputs.n }"}},
        {"id": "b", "uses": "t.call", "with": {"value": "${ steps.a.output + 1 }"}},
        {"id": "c", "uses": "t.call", "retry": RETRY, "with": {"value": "c", "failUntil": 1}},
        {
            "id": "d",
            "uses": "t.call",
            "with": {"value": "${ [inputs.n, steps.b.output, steps.c.output] }"},
        },
    ],
    "outputs": {"d": "${ steps.d.output }"},
}

Record = dict[str, Any]


async def full_run(probe: Any, spec: dict[str, Any], **kwargs: Any) -> list[Record]:
    jr = journal.MemoryJournal()
    result = await probe.run(spec, journal=jr, **kwargs)
    assert result.succeeded, result.steps
    return jr.records


def upto(records: list[Record], match: Callable[[Record], bool]) -> list[Record]:
    """The records up to and including the first one that matches: what a crash leaves."""
    for n, rec in enumerate(records):
        if match(rec):
            return records[: n + 1]
    raise AssertionError("no such record")


def is_(kind: str, step: str, **fields: Any) -> Callable[[Record], bool]:
    return lambda r: r["t"] == kind and r["step"] == step and fields.items() <= r.items()


# --- what is recorded --------------------------------------------------------------------------


async def test_a_step_is_recorded_before_a_step_that_needs_it_starts(probe: Any) -> None:
    records = await full_run(probe, SPEC)
    kinds = [(r["t"], r.get("step"), r.get("attempt")) for r in records]
    assert kinds == [
        ("run", None, None),
        ("start", "a", 1),
        ("step", "a", None),
        ("start", "b", 1),
        ("step", "b", None),
        ("start", "c", 1),
        ("retry", "c", 1),
        ("start", "c", 2),
        ("step", "c", None),
        ("start", "d", 1),
        ("step", "d", None),
        ("end", None, None),
    ]
    assert records[0]["inputs"] == {"n": 1}
    assert records[-1]["phase"] == "Succeeded"
    assert records[-1]["outputs"] == {"d": [1, 2, "c"]}


async def test_the_records_are_json(probe: Any) -> None:
    records = await full_run(probe, SPEC)
    assert json.loads(json.dumps(records)) == records


# --- resuming ----------------------------------------------------------------------------------


async def test_resume_runs_the_unfinished_attempt_again_and_what_follows(
    probe: Any, new_probe: Any
) -> None:
    records = await full_run(probe, SPEC, inputs={"n": 5})
    crashed = upto(records, is_("start", "c", attempt=2))
    again = new_probe()
    result = await again.run(SPEC, journal=journal.MemoryJournal(crashed))
    assert result.succeeded
    assert result.resumed
    # c's attempt 2 was in flight: it runs again as attempt 2, with the same key.
    assert [(c.step, c.attempt, c.key) for c in again.calls] == [("c", 2, "r1:c"), ("d", 1, "r1:d")]
    first_c_key = next(c.key for c in probe.calls if c.step == "c")
    assert first_c_key == "r1:c"
    # a and b are restored from the journal, and the inputs too.
    assert result.steps["a"].output == 5
    assert result.steps["b"].output == 6
    assert result.outputs == {"d": [5, 6, "c"]}


async def test_resume_after_a_failed_attempt_runs_the_next_one(probe: Any, new_probe: Any) -> None:
    records = await full_run(probe, SPEC)
    crashed = upto(records, is_("retry", "c", attempt=1))
    again = new_probe()
    result = await again.run(SPEC, journal=journal.MemoryJournal(crashed))
    assert result.succeeded
    assert [(c.step, c.attempt) for c in again.calls] == [("c", 2), ("d", 1)]


async def test_resume_after_a_finished_step_starts_the_next(probe: Any, new_probe: Any) -> None:
    records = await full_run(probe, SPEC)
    again = new_probe()
    jr = journal.MemoryJournal(upto(records, is_("step", "b")))
    result = await again.run(SPEC, journal=jr)
    assert result.succeeded
    assert [(c.step, c.attempt) for c in again.calls] == [("c", 1), ("c", 2), ("d", 1)]
    # The journal now tells the whole story, once.
    assert [r["t"] for r in jr.records].count("run") == 1
    assert jr.records[-1]["t"] == "end"


async def test_attempts_before_a_crash_count_towards_max_attempts(new_probe: Any) -> None:
    spec = {
        "steps": [
            {
                "id": "c",
                "uses": "t.call",
                "retry": {**RETRY, "maxAttempts": 2},
                "with": {"failUntil": 9},
            }
        ]
    }
    again = new_probe()
    compiled = again.compile(spec)
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
        {"t": "start", "step": "c", "attempt": 1},
        {"t": "retry", "step": "c", "attempt": 1, "error": "boom"},
        {"t": "start", "step": "c", "attempt": 2},
    ]
    result = await again.run(compiled, journal=journal.MemoryJournal(crashed))
    assert result.phase == "Failed"
    assert [c.attempt for c in again.calls] == [2]
    assert result.steps["c"].error == "boom after 2 attempts"


async def test_a_finished_foreach_item_is_not_run_again(probe: Any, new_probe: Any) -> None:
    spec = {
        "steps": [
            {
                "id": "each",
                "uses": "t.call",
                "foreach": [10, 20, 30, 40],
                "concurrency": 2,
                "with": {"value": "${ item * 2 }"},
            },
            {"id": "after", "uses": "t.call", "with": {"value": "${ steps.each.output }"}},
        ]
    }
    records = await full_run(probe, spec)
    # Items 0 and 1 finished; item 2 had started.
    finished = [r for r in records if r["t"] == "item"]
    assert sorted(r["index"] for r in finished) == [0, 1, 2, 3]
    crashed = upto(records, is_("start", "each", item=2))
    assert sorted(r["index"] for r in crashed if r["t"] == "item") == [0, 1]
    again = new_probe()
    result = await again.run(spec, journal=journal.MemoryJournal(crashed))
    assert result.succeeded
    assert [(c.step, c.key, c.attempt) for c in again.calls] == [
        ("each", "r1:each[2]", 1),
        ("each", "r1:each[3]", 1),
        ("after", "r1:after", 1),
    ]
    assert result.steps["each"].output == [20, 40, 60, 80]
    assert result.steps["after"].output == [20, 40, 60, 80]


async def test_a_journaled_failure_is_not_run_again(probe: Any, new_probe: Any) -> None:
    spec = {
        "steps": [
            {"id": "a", "uses": "t.call", "with": {"failUntil": 1}},
            {"id": "b", "uses": "t.call"},
        ],
        "finally": [{"id": "f", "uses": "t.call"}],
    }
    jr = journal.MemoryJournal()
    await probe.run(spec, journal=jr)
    crashed = upto(jr.records, is_("step", "a"))
    again = new_probe()
    result = await again.run(spec, journal=journal.MemoryJournal(crashed))
    assert result.phase == "Failed"
    assert result.error == "step 'a' failed: boom"
    assert again.steps_called() == ["f"]
    assert result.steps["b"].phase == "Skipped"


async def test_a_journal_of_another_definition_is_refused(probe: Any, new_probe: Any) -> None:
    records = await full_run(probe, SPEC)
    changed = {**SPEC, "steps": [*SPEC["steps"][:3], {"id": "d", "uses": "t.call"}]}
    again = new_probe()
    crashed = upto(records, is_("step", "b"))
    with pytest.raises(errors.RunError, match="different definition") as info:
        await again.run(changed, journal=journal.MemoryJournal(crashed))
    assert "'r1'" in str(info.value)  # names the run it belongs to
    assert again.calls == []


async def test_a_finished_journal_returns_the_stored_result(probe: Any, new_probe: Any) -> None:
    jr = journal.MemoryJournal()
    first = await probe.run(SPEC, journal=jr)
    again = new_probe()
    kept = list(jr.records)
    second = await again.run(SPEC, journal=jr)
    assert again.calls == []
    assert jr.records == kept  # nothing appended
    assert second.resumed
    assert second.phase == first.phase
    assert second.outputs == first.outputs
    assert {s: r.output for s, r in second.steps.items()} == {
        s: r.output for s, r in first.steps.items()
    }


# --- the file ----------------------------------------------------------------------------------


HEADER: Record = {
    "t": "run",
    "runId": "r1",
    "workflow": "wf",
    "specHash": "0123456789abcdef",
    "inputs": {"note": "ünïcode"},
    "startedAt": 0.0,
}
START_A: Record = {"t": "start", "step": "a", "attempt": 1}
STEP_A: Record = {"t": "step", "step": "a", "phase": "Succeeded", "output": 1, "attempts": 1}
END: Record = {"t": "end", "phase": "Succeeded", "outputs": None, "error": None, "at": 1.0}


def lines(*records: Record) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_records_survive_reopening(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "runs" / "wf.jsonl"
    first = journal.FileJournal(path)
    first.append(HEADER)
    first.append(START_A)
    first.close()
    second = journal.FileJournal(path)
    assert second.read() == [HEADER, START_A]
    second.append(END)
    second.close()
    assert [r["t"] for r in journal.FileJournal(path).read()] == ["run", "start", "end"]


def test_a_missing_file_is_an_empty_journal(tmp_path: pathlib.Path) -> None:
    assert journal.FileJournal(tmp_path / "none.jsonl").read() == []


def test_a_torn_last_line_is_ignored(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wf.jsonl"
    path.write_text(lines(HEADER) + '{"t": "start", "step": "a", "att')
    assert journal.FileJournal(path).read() == [HEADER]


def test_records_appended_after_a_torn_line_are_read(tmp_path: pathlib.Path) -> None:
    # The resumed run appends to the file the killed one left; its records must count.
    path = tmp_path / "wf.jsonl"
    path.write_text(lines(HEADER) + '{"t": "start", "step": "a", "att')
    resumed = journal.FileJournal(path)
    resumed.append(START_A)
    resumed.append(END)
    resumed.close()
    assert journal.FileJournal(path).read() == [HEADER, START_A, END]


def test_a_last_record_missing_only_its_newline_is_kept(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wf.jsonl"
    path.write_text(lines(HEADER) + json.dumps(STEP_A))
    assert len(journal.FileJournal(path).read()) == 2
    resumed = journal.FileJournal(path)
    resumed.append(END)
    resumed.close()
    assert [r["t"] for r in journal.FileJournal(path).read()] == ["run", "step", "end"]


async def test_a_run_killed_mid_write_resumes_from_the_file(
    probe: Any, new_probe: Any, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "wf.jsonl"
    records = await full_run(probe, SPEC)
    kept = upto(records, is_("step", "b"))
    torn = json.dumps(records[len(kept)])[:10]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept) + torn)

    again = new_probe()
    result = await again.run(SPEC, journal=journal.FileJournal(path, durable=True))
    assert result.succeeded
    assert again.steps_called() == ["c", "c", "d"]

    # Starting once more finds the finished run in the file and runs nothing.
    third = new_probe()
    stored = await third.run(SPEC, journal=journal.FileJournal(path))
    assert third.calls == []
    assert stored.outputs == result.outputs


def test_replay_of_an_empty_journal_starts_fresh() -> None:
    state = journal.replay([])
    assert state.header is None
    assert state.end is None
    assert state.next_attempt("a") == 1


# --- a damaged journal -------------------------------------------------------------------------


def test_a_damaged_line_in_the_middle_names_the_file_and_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wf.jsonl"
    path.write_text(lines(HEADER) + "not json\n" + lines(START_A, STEP_A))
    with pytest.raises(errors.RunError) as info:
        journal.FileJournal(path).read()
    assert str(info.value).startswith(f"{path}:2: corrupt journal: the line is not a JSON record")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([1, 2], "a journal record is a JSON object; got list"),
        ({"t": "jump"}, "unknown record kind 'jump'"),
        ({**STEP_A, "phase": "Done"}, "'step' record: field 'phase'"),
        ({**START_A, "attempt": "1"}, "'start' record: field 'attempt'"),
        ({**START_A, "attempt": 0}, "'start' record: field 'attempt'"),
        ({"t": "item", "step": "a", "index": -1}, "'item' record: field 'index'"),
        ({**HEADER, "t": "run"}, "a second run header"),
        ({**STEP_A}, "step 'a' finished twice (first at line 2)"),
    ],
)
def test_a_record_of_the_wrong_shape_or_place_is_refused(
    tmp_path: pathlib.Path, bad: Any, message: str
) -> None:
    path = tmp_path / "wf.jsonl"
    path.write_text(lines(HEADER, STEP_A) + json.dumps(bad) + "\n" + lines(END))
    with pytest.raises(errors.RunError) as info:
        journal.FileJournal(path).read()
    assert str(info.value).startswith(f"{path}:3: corrupt journal: {message}"), info.value


def test_a_journal_that_cannot_be_read_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "wf.jsonl").mkdir()
    with pytest.raises(errors.RunError, match=r"wf.jsonl: cannot read the journal: Is a dir"):
        journal.FileJournal(tmp_path / "wf.jsonl").read()
    (tmp_path / "binary.jsonl").write_bytes(lines(HEADER).encode() + b"\xff\xfe\x00\n{}\n")
    with pytest.raises(errors.RunError, match=r"binary.jsonl:2: corrupt journal: the line is not"):
        journal.FileJournal(tmp_path / "binary.jsonl").read()


def test_the_header_comes_first_and_nothing_after_the_end(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wf.jsonl"
    path.write_text(lines(START_A, HEADER))
    with pytest.raises(errors.RunError, match=r":1: corrupt journal: the first record must"):
        journal.FileJournal(path).read()
    path.write_text(lines(HEADER, END, START_A))
    with pytest.raises(errors.RunError, match=r":3: corrupt journal: a 'start' record after"):
        journal.FileJournal(path).read()


@pytest.mark.parametrize("run_id", ["../x", "/etc/x", "A", "a/b", "a..b", "", "x" * 201])
def test_an_unsafe_run_id_is_a_corrupt_header(tmp_path: pathlib.Path, run_id: str) -> None:
    path = tmp_path / "wf.jsonl"
    path.write_text(lines({**HEADER, "runId": run_id}))
    with pytest.raises(errors.RunError, match=r"field 'runId'.* is not a safe name"):
        journal.FileJournal(path).read()


async def test_a_damaged_journal_stops_the_run_before_any_step(probe: Any, new_probe: Any) -> None:
    records = await full_run(probe, SPEC)
    crashed = upto(records, is_("step", "b"))
    crashed[1] = {**crashed[1], "attempt": "1"}
    again = new_probe()
    with pytest.raises(errors.RunError, match=r"record 2: 'start' record: field 'attempt'"):
        await again.run(SPEC, journal=journal.MemoryJournal(crashed))
    assert again.calls == []


async def test_a_journal_naming_a_step_the_workflow_lacks_is_refused(
    probe: Any, new_probe: Any
) -> None:
    records = await full_run(probe, SPEC)
    crashed = upto(records, is_("step", "b"))
    crashed[-1] = {**crashed[-1], "step": "zz"}
    again = new_probe()
    with pytest.raises(errors.RunError, match="it records step 'zz', which workflow 'wf'"):
        await again.run(SPEC, journal=journal.MemoryJournal(crashed))
    assert again.calls == []


def test_a_run_id_that_is_not_a_safe_name_is_refused(probe: Any) -> None:
    with pytest.raises(errors.RunError, match="not a safe name"):
        engine.Run(probe.compile(SPEC), run_id="../x", inputs={})
