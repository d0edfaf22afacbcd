"""Crash and resume: ``autoflow run --journal DIR`` killed with SIGKILL, then started again.

The workflows POST to a real local HTTP server that counts calls per path. One request is
answered slowly so the test can kill the runner while it is in flight. The restarted command
must finish the same run: steps journaled before the kill are not sent again, the step that
was in flight is sent again with the same ``Idempotency-Key`` (``<run id>:<step id>``, the same
across retries and resume) so the server can de-duplicate it, and later steps read the outputs
of steps restored from the journal. A finished journal is kept aside and the next start is a
new run.

The second half runs ``autoflow run`` in this process on ``core`` steps: a rerun must give
the inputs the run started with (or none), ``--restart`` starts a new run over an unfinished
journal, a finished journal is kept under its run id the moment the run ends, and a damaged
journal, or one whose run id is not a safe file name, is refused before any step runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpserver
import pytest

SLOW = 3.0  # seconds the in-flight request takes: time enough to kill the runner

CHAIN = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: chain}
spec:
  inputs:
    base: {type: string, required: true}
  steps:
    - id: s1
      uses: http.request
      with: {method: POST, url: "${ inputs.base }/s1", json: {prev: 0}}
""" + "".join(
    f"""    - id: s{i}
      uses: http.request
      with:
        method: POST
        url: ${{ inputs.base }}/s{i}
        json: {{prev: "${{ steps.s{i - 1}.output.body.n }}"}}
"""
    for i in range(2, 6)
)

EACH = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: each}
spec:
  inputs:
    base: {type: string, required: true}
  steps:
    - id: push
      uses: http.request
      foreach: ${ ["a", "b", "c", "d", "e"] }
      with: {method: PUT, url: "${ inputs.base }/items/${ item }", json: {index: "${ index }"}}
    - id: total
      uses: http.request
      with:
        method: POST
        url: ${ inputs.base }/total
        json: {pushed: "${ [r.body.item for r in steps.push.output] }"}
"""


def slow(data: Any) -> httpserver.Reply:
    reply = httpserver.Reply.with_json(data)
    return httpserver.Reply(reply.status, reply.body, reply.headers, delay=SLOW)


def _numbered(request: httpserver.Recorded) -> httpserver.Reply:
    return httpserver.Reply.with_json({"n": int(request.path.removeprefix("/s"))})


def _item(request: httpserver.Recorded) -> httpserver.Reply:
    return httpserver.Reply.with_json({"item": request.path.rsplit("/", 1)[1]})


@pytest.fixture
def server() -> Iterator[httpserver.Server]:
    with httpserver.serve() as running:
        for i in range(1, 6):
            running.route(f"/s{i}", _numbered)
        for item in "abcde":
            running.route(f"/items/{item}", _item)
        running.route("/total", httpserver.echo)
        yield running
        assert not running.errors


def command(tmp_path: Path, name: str, text: str, server: httpserver.Server) -> list[str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return [
        *(sys.executable, "-P", "-m", "autoflow.cli.main", "run", str(path)),
        *("--journal", str(tmp_path / "journal"), "-i", f"base={server.base_url}"),
    ]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}


def run(cmd: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*cmd, *extra], env=env(), capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def kill_when(cmd: list[str], server: httpserver.Server, path: str) -> None:
    """Start the run and SIGKILL it once ``path`` has reached the server (its reply is slow)."""
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while server.calls(path) == 0:
            assert proc.poll() is None, "the run ended before the slow request"
            assert time.monotonic() < deadline, f"{path} never reached the server"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def journal(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    text = (tmp_path / "journal" / f"{name}.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def keys(server: httpserver.Server, path: str) -> list[str | None]:
    return [r.headers.get("idempotency-key") for r in server.requests if r.path == path]


def test_killed_run_resumes_after_the_last_journaled_step(
    tmp_path: Path, server: httpserver.Server
) -> None:
    cmd = command(tmp_path, "chain", CHAIN, server)
    server.queue("/s3", slow({"n": 3}))
    kill_when(cmd, server, "/s3")

    records = journal(tmp_path, "chain")
    run_id = records[0]["runId"]
    assert [r["step"] for r in records if r["t"] == "step"] == ["s1", "s2"]
    assert not any(r["t"] == "end" for r in records)

    result = run(cmd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Succeeded (resumed): run {run_id} of chain")
    # Progress shows only the steps that ran now.
    for step in ("s1", "s2"):
        assert f"✓ {step}" not in result.stderr
    for step in ("s3", "s4", "s5"):
        assert f"✓ {step}" in result.stderr

    # Every step reached the server once, except s3 that was in flight: twice, same key.
    assert {f"/s{i}": server.calls(f"/s{i}") for i in range(1, 6)} == {
        "/s1": 1,
        "/s2": 1,
        "/s3": 2,
        "/s4": 1,
        "/s5": 1,
    }
    assert keys(server, "/s3") == [f"{run_id}:s3", f"{run_id}:s3"]
    for i in (1, 2, 4, 5):
        assert keys(server, f"/s{i}") == [f"{run_id}:s{i}"]
    # s3 read s2's output restored from the journal; s4 read the resumed s3's.
    assert [r.json() for r in server.requests if r.path == "/s3"] == [{"prev": 2}] * 2
    assert server.last("/s4").json() == {"prev": 3}


def test_a_finished_journal_is_kept_and_the_next_start_is_a_new_run(
    tmp_path: Path, server: httpserver.Server
) -> None:
    cmd = command(tmp_path, "chain", CHAIN, server)
    first = json.loads(run(cmd, "--output", "json").stdout)
    second = json.loads(run(cmd, "--output", "json").stdout)
    assert first["phase"] == second["phase"] == "Succeeded"
    assert second["resumed"] is False
    assert second["runId"] != first["runId"]
    # Both runs called every step: the second did not replay the first's results.
    assert all(server.calls(f"/s{i}") == 2 for i in range(1, 6))
    assert keys(server, "/s1") == [f"{first['runId']}:s1", f"{second['runId']}:s1"]
    # Each finished journal was kept under its run id as soon as its run ended.
    files = sorted(p.name for p in (tmp_path / "journal").iterdir())
    assert files == sorted([f"{first['runId']}.jsonl", f"{second['runId']}.jsonl"])
    for doc in (first, second):
        kept = (tmp_path / "journal" / f"{doc['runId']}.jsonl").read_text().splitlines()
        assert json.loads(kept[0])["runId"] == doc["runId"]
        assert json.loads(kept[-1])["t"] == "end"


def test_killed_foreach_resumes_without_repeating_finished_items(
    tmp_path: Path, server: httpserver.Server
) -> None:
    cmd = command(tmp_path, "each", EACH, server)
    server.queue("/items/c", slow({"item": "c"}))
    kill_when(cmd, server, "/items/c")
    records = journal(tmp_path, "each")
    run_id = records[0]["runId"]
    assert [r["index"] for r in records if r["t"] == "item"] == [0, 1]

    result = run(cmd, "--output", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["resumed"] is True
    calls = {item: server.calls(f"/items/{item}") for item in "abcde"}
    assert calls == {"a": 1, "b": 1, "c": 2, "d": 1, "e": 1}
    assert keys(server, "/items/c") == [f"{run_id}:push[2]"] * 2
    assert keys(server, "/items/a") == [f"{run_id}:push[0]"]
    # The step's output is whole and in order, restored items included.
    push = next(s for s in doc["steps"] if s["id"] == "push")
    assert [r["body"]["item"] for r in push["output"]] == list("abcde")
    assert server.last("/total").json() == {"pushed": list("abcde")}


def test_resume_under_a_changed_workflow_is_refused(
    tmp_path: Path, server: httpserver.Server
) -> None:
    cmd = command(tmp_path, "chain", CHAIN, server)
    (tmp_path / "journal").mkdir()
    header: dict[str, Any] = {"t": "run", "runId": "chain-0123456789", "workflow": "chain"}
    header |= {"specHash": "another-definition", "inputs": {}, "startedAt": 0}
    (tmp_path / "journal" / "chain.jsonl").write_text(json.dumps(header) + "\n")

    result = run(cmd)
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()  # one error line naming the journal to move away
    assert line.startswith(f"error: {tmp_path / 'journal' / 'chain.jsonl'}: "), line
    assert "unfinished run 'chain-0123456789' of a different definition" in line
    assert server.requests == []


# --- in this process: inputs, --restart, keeping, damaged journals ---------------------------

COUNT = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: count}
spec:
  inputs:
    n: {type: integer, required: true}
    label: {type: string, default: x}
  steps:
    - {id: a, uses: core.transform, with: {value: "${ inputs.n }"}}
    - {id: b, uses: core.transform, with: {value: "${ steps.a.output + 1 }"}}
  outputs: {b: "${ steps.b.output }", label: "${ inputs.label }"}
"""


class Cli:
    """``autoflow run`` of COUNT with a journal in ``tmp_path/journal``, in this process."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.dir = tmp_path / "journal"
        self.file = tmp_path / "count.yaml"
        self.file.write_text(COUNT)
        self.capsys = capsys

    def __call__(self, *extra: str, output: str = "json") -> tuple[int, str, str]:
        """Exit code, stdout, stderr; errors are read as people see them with ``output="text"``
        (under ``json`` they are a JSON document on stdout)."""
        from autoflow.cli import main

        argv = ["run", str(self.file), "--journal", str(self.dir), "-q", "--output", output]
        code = main.main([*argv, *extra])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err, err
        return code, out, err

    @property
    def current(self) -> Path:
        return self.dir / "count.jsonl"

    def interrupted(self, *inputs: str) -> list[dict[str, Any]]:
        """Leave an unfinished journal: a finished run's records up to step a's."""
        code, out, _ = self(*inputs)
        assert code == 0
        kept = self.dir / f"{json.loads(out)['runId']}.jsonl"
        records = [json.loads(line) for line in kept.read_text().splitlines()]
        kept.unlink()
        cut = next(n for n, r in enumerate(records, 1) if r["t"] == "step")
        self.current.write_text("".join(json.dumps(r) + "\n" for r in records[:cut]))
        return records[:cut]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, capsys)


def test_a_finished_journal_is_kept_the_moment_the_run_ends(cli: Cli) -> None:
    code, out, _ = cli("-i", "n=1")
    assert code == 0
    run_id = json.loads(out)["runId"]
    # Kept at once, not when the next command starts: nothing is left to resume.
    assert sorted(p.name for p in cli.dir.iterdir()) == [f"{run_id}.jsonl"]


def test_a_rerun_resumes_with_the_inputs_it_started_with(cli: Cli) -> None:
    before = cli.interrupted("-i", "n=5")
    for given in ((), ("-i", "n=5"), ("-i", "n=5", "-i", "label=x")):
        cli.current.write_text("".join(json.dumps(r) + "\n" for r in before))
        code, out, err = cli(*given)
        assert code == 0, err
        doc = json.loads(out)
        assert doc["resumed"] is True
        assert doc["runId"] == before[0]["runId"]
        assert doc["outputs"] == {"b": 6, "label": "x"}


def test_a_rerun_with_other_input_values_is_refused(cli: Cli) -> None:
    before = cli.interrupted("-i", "n=5")
    text = cli.current.read_text()
    code, out, err = cli("-i", "n=7", "-i", "label=y", output="text")
    assert code == 1
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"error: {cli.current}"), line
    assert f"unfinished run {before[0]['runId']!r}, started with other inputs" in line
    assert "'n' is 7, the run started with 5" in line
    assert '\'label\' is "y", the run started with "x"' in line
    assert "--restart" in line
    assert cli.current.read_text() == text  # nothing ran, nothing was recorded


@pytest.mark.parametrize("resuming", [False, True])
def test_an_unknown_input_is_refused(cli: Cli, resuming: bool) -> None:
    if resuming:
        cli.interrupted("-i", "n=5")
    code, _, err = cli("-i", "n=5", "-i", "colour=red", output="text")
    assert code == 1
    assert "unknown input 'colour' (declared inputs: label, n)" in err
    if resuming:
        assert [json.loads(x)["t"] for x in cli.current.read_text().splitlines()] == [
            "run",
            "start",
            "step",
        ]


def test_restart_starts_a_new_run_and_keeps_the_unfinished_journal(cli: Cli) -> None:
    before = cli.interrupted("-i", "n=5")
    old_id = before[0]["runId"]
    code, out, err = cli("--restart", "-i", "n=7")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["resumed"] is False
    assert doc["runId"] != old_id
    assert doc["outputs"]["b"] == 8
    kept = [json.loads(x) for x in (cli.dir / f"{old_id}.jsonl").read_text().splitlines()]
    assert kept == before


def test_restart_needs_a_journal(cli: Cli) -> None:
    from autoflow.cli import main

    code = main.main(["run", str(cli.file), "-i", "n=1", "--restart"])
    assert code == 1
    assert "--restart starts a new run over a journal" in cli.capsys.readouterr().err


def test_a_damaged_line_in_the_middle_stops_the_run_before_any_step(cli: Cli) -> None:
    before = cli.interrupted("-i", "n=5")
    lines = [json.dumps(r) for r in before]
    lines.insert(2, "#garbage")
    cli.current.write_text("\n".join(lines) + "\n")
    code, out, err = cli(output="text")
    assert code == 1
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"error: {cli.current}:3: corrupt journal: "), line
    assert "move it away" in line
    assert cli.current.read_text() == "\n".join(lines) + "\n"


def test_a_record_of_the_wrong_shape_is_a_clear_error(cli: Cli) -> None:
    before = cli.interrupted("-i", "n=5")
    before[2]["phase"] = 3
    cli.current.write_text("".join(json.dumps(r) + "\n" for r in before))
    code, _, err = cli(output="text")
    assert code == 1
    assert f"{cli.current}:3: corrupt journal: 'step' record: field 'phase'" in err


@pytest.mark.parametrize("run_id", ["../escaped", "ABSOLUTE", "Count-1", "a/../../b", ".."])
@pytest.mark.parametrize("finished", [False, True])
def test_a_journal_with_an_unsafe_run_id_is_refused(
    cli: Cli, tmp_path: Path, run_id: str, finished: bool
) -> None:
    before = cli.interrupted("-i", "n=5")
    before[0]["runId"] = str(tmp_path / "escaped") if run_id == "ABSOLUTE" else run_id
    if finished:
        before.append({"t": "end", "phase": "Succeeded", "outputs": None, "error": None, "at": 1})
    cli.current.write_text("".join(json.dumps(r) + "\n" for r in before))
    code, _, err = cli("--restart", output="text")
    assert code == 1
    assert f"{cli.current}:1: corrupt journal: 'run' record: field 'runId'" in err
    assert "is not a safe name" in err
    # The journal stays where it was; nothing was moved or written anywhere else.
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["count.yaml", "journal/count.jsonl"]
