"""Crash and resume: ``autoflow run --journal DIR`` killed with SIGKILL, then started again.

The workflows POST to a real local HTTP server that counts calls per path. One request is
answered slowly so the test can kill the runner while it is in flight. The restarted command
must finish the same run: steps journaled before the kill are not sent again, the step that
was in flight is sent again with the same ``Idempotency-Key`` (``<run id>:<step id>``, the same
across retries and resume) so the server can de-duplicate it, and later steps read the outputs
of steps restored from the journal. A finished journal is kept aside and the next start is a
new run.
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
    files = sorted(p.name for p in (tmp_path / "journal").iterdir())
    assert files == sorted(["chain.jsonl", f"{first['runId']}.jsonl"])
    assert journal(tmp_path, "chain")[0]["runId"] == second["runId"]
    kept = (tmp_path / "journal" / f"{first['runId']}.jsonl").read_text().splitlines()
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
    header = {"t": "run", "runId": "chain-0123456789", "workflow": "chain"}
    header |= {"specHash": "another-definition", "inputs": {}, "startedAt": 0}
    (tmp_path / "journal" / "chain.jsonl").write_text(json.dumps(header) + "\n")

    result = run(cmd)
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()  # one error line naming the journal to move away
    assert line.startswith(f"error: {tmp_path / 'journal' / 'chain.jsonl'}: "), line
    assert "unfinished run 'chain-0123456789' of a different definition" in line
    assert server.requests == []
