"""``autoflow run --store`` and ``autoflow runs ...`` as a user runs them, on a SQLite store.

The workflow POSTs to a real local HTTP server that counts calls. Killing the runner
(SIGKILL) while a step's request is in flight and starting the same command again resumes
the same run from the store: steps recorded before the kill are not sent again, the one in
flight is sent again with the same idempotency key. Then the history commands: tables for
people, JSON for scripts, CSV for spreadsheets, and a purge that needs a filter.
"""

from __future__ import annotations

import asyncio
import csv
import io
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
import yaml

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
      with: {{method: POST, url: "${{ inputs.base }}/s{i}", json: {{n: {i}}}}}
"""
    for i in range(1, 5)
)


def _numbered(request: httpserver.Recorded) -> httpserver.Reply:
    return httpserver.Reply.with_json({"n": int(request.path.removeprefix("/s"))})


@pytest.fixture
def server() -> Iterator[httpserver.Server]:
    with httpserver.serve() as running:
        for i in range(1, 5):
            running.route(f"/s{i}", _numbered)
        yield running
        assert not running.errors


def env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    return {**clean, **extra}


def autoflow(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", *args],
        env=env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/store/runs.db"


@pytest.fixture
def workflow(tmp_path: Path) -> str:
    path = tmp_path / "chain.yaml"
    path.write_text(CHAIN)
    return str(path)


def keys(server: httpserver.Server, path: str) -> list[str | None]:
    return [r.headers.get("idempotency-key") for r in server.requests if r.path == path]


def test_a_killed_store_journaled_run_resumes_and_runs_each_step_once(
    server: httpserver.Server, url: str, workflow: str
) -> None:
    cmd = ["run", workflow, "--store", url, "-i", f"base={server.base_url}", "--output", "json"]
    slow = httpserver.Reply.with_json({"n": 3})
    server.queue("/s3", httpserver.Reply(slow.status, slow.body, slow.headers, delay=3.0))
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "autoflow.cli.main", *cmd],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while server.calls("/s3") == 0:
            assert proc.poll() is None, "the run ended before the slow request"
            assert time.monotonic() < deadline, "/s3 never reached the server"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    listed = json.loads(autoflow("runs", "list", "--store", url, "-o", "json").stdout)
    (killed,) = listed["runs"]
    assert killed["phase"] == "Running"
    run_id = killed["runId"]
    shown = json.loads(autoflow("runs", "show", run_id, "--store", url, "-o", "json").stdout)
    assert [(s["id"], s["phase"]) for s in shown["steps"]] == [
        ("s1", "Succeeded"),
        ("s2", "Succeeded"),
        ("s3", "Running"),  # its attempt was recorded in the background as it started
    ]

    result = autoflow(*cmd)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["runId"], doc["phase"], doc["resumed"]) == (run_id, "Succeeded", True)
    calls = {f"/s{i}": server.calls(f"/s{i}") for i in range(1, 5)}
    assert calls == {"/s1": 1, "/s2": 1, "/s3": 2, "/s4": 1}
    assert keys(server, "/s3") == [f"{run_id}:s3"] * 2  # the same key: the server can dedupe

    # A finished run is history: the next start is a new run.
    again = json.loads(autoflow(*cmd).stdout)
    assert again["runId"] != run_id and again["resumed"] is False


def test_history_commands_show_list_stats_export_and_purge(
    server: httpserver.Server, url: str, workflow: str, tmp_path: Path
) -> None:
    base = f"base={server.base_url}"
    server.queue("/s2", httpserver.Reply(400, b"no such order"))
    failed = autoflow("run", workflow, "--store", url, "-i", base, "--output", "json")
    assert failed.returncode == 1
    ok = json.loads(
        autoflow("run", workflow, "--store", url, "-i", base, "--output", "json").stdout
    )
    store_env = {"AUTOFLOW_STORE_URL": url}  # the environment names the store as well

    table = autoflow("runs", "list", **store_env)
    assert table.returncode == 0, table.stderr
    header, first, second = table.stdout.splitlines()
    assert header.split() == ["RUN", "WORKFLOW", "PHASE", "TRIGGER", "STARTED", "TOOK", "ERROR"]
    assert first.startswith(ok["runId"]) and "Succeeded" in first and "cli" in first
    assert "Failed" in second and "400" in second

    failing = json.loads(
        autoflow(
            "runs", "list", "--phase", "Failed", "--error", "400", "-o", "json", **store_env
        ).stdout
    )
    assert [r["workflow"] for r in failing["runs"]] == ["chain"]
    shown = autoflow("runs", "show", failing["runs"][0]["runId"], **store_env).stdout
    assert "s1" in shown
    assert "s2" in shown and "HTTP 400" in shown

    stats = json.loads(autoflow("runs", "stats", "-o", "json", **store_env).stdout)
    (chain,) = stats["workflows"]
    assert (chain["count"], chain["succeeded"], chain["failed"]) == (2, 1, 1)
    assert chain["successRatio"] == 0.5
    assert chain["steps"]["s1"]["count"] == 2
    assert "chain" in autoflow("runs", "stats", **store_env).stdout

    rows = list(csv.DictReader(io.StringIO(autoflow("runs", "export", **store_env).stdout)))
    assert sorted(r["phase"] for r in rows) == ["Failed", "Succeeded"]
    assert rows[0]["startedAt"].endswith("Z")
    stat_rows = list(
        csv.DictReader(io.StringIO(autoflow("runs", "export", "stats", **store_env).stdout))
    )
    assert [(r["workflow"], r["step"]) for r in stat_rows][:2] == [("chain", ""), ("chain", "s1")]

    refused = autoflow("runs", "purge", **store_env)
    assert refused.returncode == 1
    assert "needs a filter" in refused.stderr
    purged = autoflow("runs", "purge", "--phase", "Failed", **store_env)
    assert purged.stdout.strip() == "purged 1 run"
    left = json.loads(autoflow("runs", "list", "-o", "json", **store_env).stdout)
    assert [r["runId"] for r in left["runs"]] == [ok["runId"]]


def test_without_a_store_the_commands_say_how_to_name_one() -> None:
    result = autoflow("runs", "list")
    assert result.returncode == 1
    assert "pass --store URL or set AUTOFLOW_STORE_URL" in result.stderr


def test_an_unknown_run_is_an_error_naming_it(url: str) -> None:
    result = autoflow("runs", "show", "nope", "--store", url)
    assert result.returncode == 1
    assert "no run 'nope'" in result.stderr


def test_journal_and_store_together_are_refused(url: str, workflow: str, tmp_path: Path) -> None:
    result = autoflow("run", workflow, "--store", url, "--journal", str(tmp_path / "j"))
    assert result.returncode == 1
    assert "--journal and --store both journal the run; choose one" in result.stderr


def _seed(url: str, runs: list[list[dict[str, Any]]], key: bytes) -> None:
    from autoflow.runners import store

    async def go() -> None:
        st = await store.open_store(url, subject_key=key)
        try:
            for recs in runs:
                await st.record(recs[0]["runId"], recs)
        finally:
            await st.aclose()

    asyncio.run(go())


def _run(run_id: str, at: float, **header: Any) -> list[dict[str, Any]]:
    return [
        {
            "t": "run",
            "runId": run_id,
            "workflow": "orders",
            "specHash": "h1",
            "inputs": {},
            "startedAt": at,
            **header,
        },
        {"t": "end", "phase": "Succeeded", "outputs": None, "at": at + 1},
    ]


def test_retention_erasure_audit_and_versions_from_the_command_line(url: str) -> None:
    key = "cli-test-key"
    now = time.time()
    v1 = {"steps": [{"id": "s", "uses": "core.noop"}], "retention": {"days": 10}}
    v2 = {"steps": [{"id": "s", "uses": "core.log", "with": {"message": "hi"}}]}
    _seed(
        url,
        [
            _run("old", now - 20 * 86400, spec=v1),
            _run(
                "ann",
                now - 5 * 86400,
                spec=v1,
                subject="ann@mail.test",
                inputs={"email": "ann@mail.test"},
            ),
            _run("new", now - 60, specHash="h2", spec=v2),
        ],
        key.encode(),
    )
    store_env = {"AUTOFLOW_STORE_URL": url, "AUTOFLOW_STORE_SUBJECT_KEY": key, "USER": "ops"}

    versions = json.loads(autoflow("runs", "versions", "orders", "-o", "json", **store_env).stdout)
    assert [(v["specHash"], v["runs"]) for v in versions["versions"]] == [("h2", 1), ("h1", 2)]
    restored = autoflow("runs", "spec", "old", **store_env)
    assert restored.returncode == 0, restored.stderr
    doc = yaml.safe_load(restored.stdout)
    assert (doc["kind"], doc["metadata"]["name"], doc["spec"]) == ("Workflow", "orders", v1)
    assert "autoflow runs spec new" in autoflow("runs", "show", "new", **store_env).stdout

    # The newest run's spec (v2) has no retention: the default of 10 days applies.
    expired = autoflow(
        "runs", "purge", "--expired", **store_env, AUTOFLOW_STORE_RETENTION_DAYS="10"
    )
    assert expired.stdout.strip() == "purged 1 expired run", expired.stderr
    keyless = {k: v for k, v in store_env.items() if k != "AUTOFLOW_STORE_SUBJECT_KEY"}
    refused = autoflow("runs", "erase", "--subject", "ann@mail.test", **keyless)
    assert refused.returncode == 1
    assert "AUTOFLOW_STORE_SUBJECT_KEY" in refused.stderr
    erased = autoflow("runs", "erase", "--subject", "Ann@Mail.test", **store_env)
    assert erased.stdout.strip() == "erased 1 run of that data subject", erased.stderr
    left = json.loads(autoflow("runs", "list", "-o", "json", **store_env).stdout)
    assert [r["runId"] for r in left["runs"]] == ["new"]

    audit = autoflow("runs", "audit", **store_env).stdout
    assert "ann" not in audit.lower().replace("cli:ops", "")
    trail = json.loads(autoflow("runs", "audit", "-o", "json", **store_env).stdout)["audit"]
    assert [(a["action"], a["actor"], a["count"]) for a in trail] == [
        ("erase", "cli:ops", 1),
        ("purge-expired", "cli:ops", 1),
    ]


SUBJECT = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: signup
spec:
  dataSubject: ${ inputs.email }
  inputs:
    email:
      type: string
  steps:
    - id: greet
      uses: core.log
      with:
        message: welcome
"""


def test_autoflow_run_stores_its_spec_and_subject_and_erase_removes_it(
    url: str, tmp_path: Path
) -> None:
    path = tmp_path / "signup.yaml"
    path.write_text(SUBJECT)
    store_env = {"AUTOFLOW_STORE_URL": url, "AUTOFLOW_STORE_SUBJECT_KEY": "k"}
    for email in ("ann@mail.test", "bob@mail.test"):
        ran = autoflow("run", str(path), "--store", url, "-q", "-i", f"email={email}", **store_env)
        assert ran.returncode == 0, ran.stderr
    versions = json.loads(autoflow("runs", "versions", "signup", "-o", "json", **store_env).stdout)
    assert [v["runs"] for v in versions["versions"]] == [2]  # the spec it ran, stored once
    erased = autoflow("runs", "erase", "--subject", "ann@mail.test", **store_env)
    assert erased.stdout.strip() == "erased 1 run of that data subject", erased.stderr
    left = json.loads(autoflow("runs", "list", "-o", "json", **store_env).stdout)["runs"]
    assert len(left) == 1
    shown = json.loads(autoflow("runs", "show", left[0]["runId"], "-o", "json", **store_env).stdout)
    assert "bob@mail.test" in json.dumps(shown)  # Bob's run, inputs and all, is still there
