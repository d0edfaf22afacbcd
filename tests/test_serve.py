"""``autoflow serve DIR`` end to end with only SQLite: a process serving a folder of Workflows.

The server runs as a subprocess on a free loopback port. It prints each trigger's URL; a run
started with ``autoflow runs start`` against its store (no NATS) is taken up and executed;
``autoflow runs --store sqlite:///DIR/.autoflow/runs.db list`` shows its history; a Workflow
file added while it runs is served without a restart; a webhook through ``/hooks`` starts a
run when this Autoflow has the gateway.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpserver
import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
AUTOFLOW = (sys.executable, "-P", "-m", "autoflow.cli.main")

HELLO = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: hello}
spec:
  inputs: {name: {type: string, default: world}}
  triggers:
    - webhook: {auth: {none: true}, response: {mode: sync}}
  steps:
    - {id: greet, uses: core.set, with: {values: {text: "hello ${ inputs.name }"}}}
  outputs: {text: "${ steps.greet.output.text }"}
"""


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    return subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Served:
    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log
        self.base = ""

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in the output:\n{self.text()}")


@contextlib.contextmanager
def serving(tmp_path: Path, *extra: str) -> Iterator[Served]:
    """``autoflow serve TMP/flows`` (hello.yaml in it) on a free port, stopped afterwards."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.yaml").write_text(HELLO)
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    proc = subprocess.Popen(
        [*AUTOFLOW, "serve", str(tmp_path / "flows"), "--port", "0", *extra],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(proc, log)
    try:
        served.base = served.wait_for(r"autoflow serve: (http://127\.0\.0\.1:\d+)").group(1)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path, "--no-ui") as served:
        yield served


def test_serve_prints_trigger_urls_runs_started_runs_and_keeps_their_history(
    serve: Served, tmp_path: Path
) -> None:
    flows = tmp_path / "flows"
    url = f"sqlite:///{flows}/.autoflow/runs.db"
    serve.wait_for(rf"webhook\s+default/hello\s+POST {re.escape(serve.base)}/hooks/default/hello")
    assert httpx.get(f"{serve.base}/healthz").text == "ok"

    started = cli(
        "runs",
        "start",
        "default/hello",
        "-f",
        str(flows / "hello.yaml"),
        "-i",
        "name=ann",
        "--store",
        url,
        "--wait",
        "20s",
        "-o",
        "json",
    )
    assert started.returncode == 0, started.stderr + serve.text()
    body = json.loads(started.stdout)
    assert (body["phase"], body["outputs"]) == ("Succeeded", {"text": "hello ann"})

    listed = cli("runs", "--store", url, "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert [(r["runId"], r["phase"], r["namespace"]) for r in runs] == [
        (body["runId"], "Succeeded", "default")
    ]

    # A Workflow added while serving is served without a restart.
    (flows / "bye.yaml").write_text(HELLO.replace("name: hello", "name: bye"))
    serve.wait_for(r"workflows reloaded: 2")
    bye = cli(
        "runs",
        "start",
        "default/bye",
        "-f",
        str(flows / "bye.yaml"),
        "--store",
        url,
        "--wait",
        "20s",
        "-o",
        "json",
    )
    assert json.loads(bye.stdout)["outputs"] == {"text": "hello world"}, bye.stderr


def test_a_webhook_through_serve_becomes_a_run_in_its_history(
    serve: Served, tmp_path: Path
) -> None:
    if "(no gateway in this Autoflow)" in serve.text():
        pytest.fail("this Autoflow has no webhook gateway (runners.gateway) to serve /hooks")
    answer = httpx.post(f"{serve.base}/hooks/default/hello", json={"name": "bob"}, timeout=20)
    assert answer.status_code == 200, answer.text
    url = f"sqlite:///{tmp_path}/flows/.autoflow/runs.db"
    listed = cli("runs", "--store", url, "list", "-o", "json")
    runs = json.loads(listed.stdout)["runs"]
    assert [(r["phase"], r["trigger"]) for r in runs] == [("Succeeded", "webhook")]
    shown = cli("runs", "--store", url, "show", runs[0]["runId"], "-o", "json")
    assert json.loads(shown.stdout)["outputs"] == {"text": "hello bob"}


def test_the_workspace_names_every_workflow_with_its_namespace_once(tmp_path: Path) -> None:
    """Runs, events and the UI name a Workflow by namespace: one without metadata.namespace
    is in `default` everywhere (a nats-triggered run was recorded with no namespace before);
    the gateway's routes come from the same reading of the folder."""
    from autoflow.runners.gateway import sources
    from autoflow.runners.pool import workspace

    (tmp_path / "a.yaml").write_text(
        "apiVersion: autoflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: plain}\n"
        "spec:\n  triggers: [{webhook: {auth: {none: true}}}]\n"
        "  steps: [{id: s, uses: core.log, with: {message: hi}}]\n"
    )
    ws = workspace.Workspace(tmp_path)
    assert ws.refresh()
    (wf,) = ws.workflows.values()
    assert wf.metadata.namespace == "default"
    source = sources.DirectorySource(workspace=ws)
    assert [r.namespace for r in source.table.routes()] == ["default"]
    assert source.workflow("default", "plain") is wf
    (tmp_path / "a.yaml").unlink()
    assert ws.refresh()
    source.sync()
    assert source.table.routes() == [] and source.workflows() == []


WHOAMI = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: whoami}
spec:
  inputs: {base: {type: string, required: true}}
  steps:
    - {id: me, uses: http.request, integration: crm, with: {url: "${ inputs.base }/me"}}
  outputs: {auth: "${ steps.me.output.body.auth }"}
"""


def test_what_the_web_ui_saves_under_serve_runs_at_once(tmp_path: Path) -> None:
    """Under ``autoflow serve`` the web API writes the folder and the launcher reads it:
    a Workflow created, or changed, and run straight away runs exactly what was saved, and
    an Integration's secret written through the UI serves the next run without a restart
    (the folder's own poll comes a second later; nothing may wait for it)."""
    with serving(tmp_path) as served:
        found = served.wait_for(r"web UI\s+(http://127\.0\.0\.1:\d+)/\?token=(\S+)")
        base, token = found.group(1), found.group(2)
        with (
            httpx.Client(
                base_url=f"{base}/api/namespaces/default/",
                headers={"Authorization": f"Bearer {token}"},
                timeout=20,
            ) as api,
            httpserver.serve() as crm,
        ):
            crm.route(
                "/me", lambda r: httpserver.Reply.with_json({"auth": r.headers["authorization"]})
            )

            def run(name: str, inputs: dict[str, str]) -> dict[str, object]:
                started = api.post(f"workflows/{name}/runs", json={"inputs": inputs})
                assert started.status_code == 201, started.text + served.text()
                run_id = started.json()["runId"]
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    detail = api.get(f"runs/{run_id}").json()
                    if detail["phase"] not in ("Pending", "Running"):
                        return dict(detail)
                    time.sleep(0.05)
                raise AssertionError(f"run {run_id} did not finish:\n{served.text()}")

            changed = HELLO.replace('"hello ${', '"bye ${')
            put = api.put("workflows/hello", json={"yaml": changed})
            assert put.status_code == 200, put.text
            assert run("hello", {"name": "ann"})["outputs"] == {"text": "bye ann"}

            integration = {
                "name": "crm",
                "spec": {"type": "http", "settings": {"auth": "bearer"}},
                "secrets": {"token": "first-t0ken"},
            }
            assert api.post("integrations", json=integration).status_code == 201
            made = api.post("workflows", json={"yaml": WHOAMI})
            assert made.status_code == 201, made.text
            first = run("whoami", {"base": crm.base_url})
            assert first["phase"] == "Succeeded", first
            assert crm.requests[-1].headers["authorization"] == "Bearer first-t0ken"
            integration["secrets"] = {"token": "second-t0ken"}
            assert api.put("integrations/crm", json=integration).status_code == 200
            assert run("whoami", {"base": crm.base_url})["phase"] == "Succeeded"
            assert crm.requests[-1].headers["authorization"] == "Bearer second-t0ken"
            assert "t0ken" not in served.text()
