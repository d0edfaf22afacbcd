"""The ``autoflow`` command as a user runs it: a subprocess, its exit code, stdout and stderr.

Covers ``run`` (text and JSON results, typed inputs from the command line and a file, failures,
Ctrl-C), ``validate``, ``connectors``, ``schema`` and ``crds``; the shop examples against the
bundled fake shop (``examples/shop_server.py``'s handler, served in this process so the test can
see every request); and credentials from the environment, which must reach the server and
nothing else the command prints.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpserver
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TRIAGE = str(EXAMPLES / "order-triage.yaml")
TOKEN = "tok-7Hq2-secret-9xZ"
TRIAGE_OUTPUTS = {
    "orders": 4,
    "total": 1572.49,
    "bigOrders": ["A-1002", "A-1003"],
    "route": "escalate",
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    return {**env, **extra}


def autoflow(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def json_out(result: subprocess.CompletedProcess[str]) -> Any:
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def steps_by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in doc["steps"]}


# -- autoflow run ---------------------------------------------------------------------------


def test_run_prints_phase_outputs_and_progress() -> None:
    result = autoflow("run", TRIAGE)
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith("Succeeded: run order-triage-")
    assert yaml.safe_load("\n".join(rest)) == {"outputs": TRIAGE_OUTPUTS}
    # Progress and step logs go to stderr, one line per step.
    assert "▶ order-triage" in result.stderr
    for step in ("summary", "big", "announce", "route", "escalate", "done"):
        assert f"✓ {step}" in result.stderr
    assert "[escalate] warning: Escalating: 2 big orders" in result.stderr


def test_run_json_output_is_one_document() -> None:
    doc = json_out(autoflow("run", TRIAGE, "--output", "json"))
    assert doc["phase"] == "Succeeded"
    assert doc["workflow"] == "order-triage"
    assert doc["runId"].startswith("order-triage-")
    assert doc["outputs"] == TRIAGE_OUTPUTS
    steps = steps_by_id(doc)
    assert set(steps) == {"summary", "big", "announce", "route", "escalate", "done"}
    assert all(s["phase"] == "Succeeded" for s in steps.values())
    assert steps["summary"]["output"] == {"count": 4, "total": 1572.49}
    assert [m["message"] for m in steps["announce"]["output"]] == [
        "Big order A-1002 from Grace: 180",
        "Big order A-1003 from Linus: 1250",
    ]


def test_run_converts_command_line_inputs_to_declared_types(tmp_path: Path) -> None:
    types = ("string", "number", "integer", "boolean", "array", "object")
    wf = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "types"},
        "spec": {
            "inputs": {t: {"type": t, "required": True} for t in types},
            "steps": [{"id": "echo", "uses": "core.set", "with": {"values": {"x": 1}}}],
            "outputs": {t: f"${{ inputs.{t} }}" for t in types},
        },
    }
    path = tmp_path / "types.yaml"
    path.write_text(yaml.safe_dump(wf))
    given = {
        "string": "007",  # text stays text, leading zeros and all
        "number": "2.5",
        "integer": "42",
        "boolean": "yes",
        "array": '["a", 1, {"b": null}]',
        "object": '{"k": [true]}',
    }
    args = [arg for name, value in given.items() for arg in ("-i", f"{name}={value}")]
    doc = json_out(autoflow("run", str(path), *args, "--output", "json"))
    assert doc["outputs"] == {
        "string": "007",
        "number": 2.5,
        "integer": 42,
        "boolean": True,
        "array": ["a", 1, {"b": None}],
        "object": {"k": [True]},
    }


def test_run_inputs_from_a_file_and_the_command_line(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(
        yaml.safe_dump(
            {
                "threshold": 500,
                "orders": [
                    {"id": "X-1", "customer": "Ada", "total": 400},
                    {"id": "X-2", "customer": "Bob", "total": 600},
                ],
            }
        )
    )
    doc = json_out(autoflow("run", TRIAGE, "--inputs-file", str(inputs), "--output", "json"))
    assert doc["outputs"] == {"orders": 2, "total": 1000, "bigOrders": ["X-2"], "route": "routine"}
    # --input wins over the file, and is converted to the declared number.
    doc = json_out(
        autoflow(
            "run", TRIAGE, "--inputs-file", str(inputs), "-i", "threshold=100", "--output", "json"
        )
    )
    assert doc["outputs"]["bigOrders"] == ["X-1", "X-2"]


FAILING = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: checkout}
spec:
  steps:
    - {id: reserve, uses: core.set, with: {values: {ok: true}}}
    - {id: charge, uses: core.fail, with: {message: card declined by issuer}}
    - {id: ship, uses: core.log, with: {message: shipped}}
  finally:
    - {id: release, uses: core.log, with: {message: released}}
"""


def test_failing_run_exits_1_with_the_step_reason(tmp_path: Path) -> None:
    path = tmp_path / "checkout.yaml"
    path.write_text(FAILING)
    result = autoflow("run", str(path))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("Failed: run checkout-")
    assert "error: step 'charge' failed: card declined by issuer" in result.stdout
    assert "✗ charge" in result.stderr
    assert "[release] released" in result.stderr  # finally ran
    assert "shipped" not in result.stderr

    result = autoflow("run", str(path), "--output", "json")
    assert result.returncode == 1
    doc = json_out(result)
    steps = steps_by_id(doc)
    assert doc["phase"] == "Failed"
    assert steps["charge"]["phase"] == "Failed"
    assert steps["charge"]["error"] == "card declined by issuer"
    assert steps["ship"]["phase"] == "Skipped"
    assert steps["release"]["phase"] == "Succeeded"


SLEEPY = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: sleepy}
spec:
  steps:
    - {id: first, uses: core.log, with: {message: waiting now}}
    - {id: wait, uses: core.delay, with: {duration: 60s}}
    - {id: after, uses: core.log, with: {message: never}}
  finally:
    - {id: cleanup, uses: core.log, with: {message: cleanup ran}}
"""


@pytest.mark.parametrize("output", ["text", "json"])
def test_ctrl_c_cancels_the_run_and_runs_finally(tmp_path: Path, output: str) -> None:
    path = tmp_path / "sleepy.yaml"
    path.write_text(SLEEPY)
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "autoflow.cli.main", "run", str(path), "--output", output],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the first step's log line: the delay is about to start
            seen.append(line)
            if "waiting now" in line:
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = "".join(seen) + stderr
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert "never" not in stderr
    if output == "json":
        doc = json.loads(stdout)
        steps = steps_by_id(doc)
        assert doc["phase"] == "Cancelled"
        assert steps["first"]["phase"] == "Succeeded"
        assert steps["wait"]["phase"] == "Cancelled"
        assert steps.get("cleanup", {}).get("phase") == "Succeeded", doc["steps"]
    else:
        assert stdout.startswith("Cancelled: run sleepy-"), stdout
        assert "[cleanup] cleanup ran" in stderr, stderr


def test_run_chooses_among_several_workflows(tmp_path: Path) -> None:
    (tmp_path / "checkout.yaml").write_text(FAILING)
    both = (TRIAGE, str(tmp_path / "checkout.yaml"))
    result = autoflow("run", *both)
    assert result.returncode == 1
    assert result.stderr == (
        "error: several Workflows (order-triage, checkout); choose one with --workflow\n"
    )
    doc = json_out(autoflow("run", *both, "--workflow", "order-triage", "--output", "json"))
    assert doc["outputs"] == TRIAGE_OUTPUTS
    result = autoflow("run", *both, "--workflow", "nope")
    assert result.returncode == 1
    assert "no Workflow named 'nope'" in result.stderr


# -- validate, connectors, schema, crds ----------------------------------------------------


def test_validate_examples() -> None:
    # broken.yaml is the tour's example of mistakes (test_validate_finds_the_tours_mistakes).
    files = sorted(
        str(p.relative_to(ROOT)) for p in EXAMPLES.glob("*.yaml") if p.name != "broken.yaml"
    )
    assert len(files) >= 3
    result = autoflow("validate", *files)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for file in files:
        assert f"ok {file}: Workflow/" in result.stdout
    assert "Workflow/order-triage (5 steps)" in result.stdout


def test_validate_finds_the_tours_mistakes() -> None:
    # The README's tour, step 3, as written from the repository root.
    result = autoflow("validate", "examples/broken.yaml")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        "error: examples/broken.yaml:8, Workflow/demo, step 'fetch', field 'uses': "
        "unknown connector 'htp' (known: "
    )
    assert lines[1:] == [
        "error: examples/broken.yaml:17, Workflow/demo, step 'notify', field 'with.message': "
        "reads steps.check but 'check' is not upstream of this step; add it to needs",
        "2 problems found",
    ]


def test_validate_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(FAILING.replace("uses: core.fail", "uses: core.fial"))
    result = autoflow("validate", TRIAGE, str(bad), "--output", "json")
    assert result.returncode == 1
    doc = json_out(result)
    assert doc["valid"] is False
    good, broken = doc["files"]
    assert good == {
        "file": TRIAGE,
        "valid": True,
        "resources": ["Workflow/order-triage (5 steps)"],
        "problems": [],
    }
    assert broken["valid"] is False
    (problem,) = broken["problems"]
    assert problem["file"] == str(bad)
    assert problem["resource"] == "Workflow/checkout"
    assert problem["step"] == "charge"
    assert problem["field"] == "uses"
    assert "'fial'" in problem["message"]


EVERY_PROBLEM = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: first}
spec:
  timeout: 0s
  steps:
    - {id: a, uses: core.noop, neds: []}
    - id: b
      uses: core.log
      with: {message: "${ steps.ghost.output }"}
    - {id: c, uses: fax.send}
---
apiVersion: autoflow.dev/v1alpha1
kind: Workflw
metadata: {name: second}
---
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: third}
spec:
  steps:
    - {id: x, uses: core.delay, with: {duration: [1]}}
---
"""


def test_validate_reports_every_problem_of_every_document_at_its_own_line(
    tmp_path: Path,
) -> None:
    """A schema problem hides neither the next document nor the compile checks of its own."""
    path = tmp_path / "many.yaml"
    path.write_text(EVERY_PROBLEM)
    result = autoflow("validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == "6 problems found", result.stderr
    expected = [
        (5, "Workflow/first, field 'spec.timeout'", "longer than 0"),
        (7, "Workflow/first, step 'a', field 'neds'", "unknown field"),
        (10, "Workflow/first, step 'b', field 'with.message'", "unknown step 'ghost'"),
        (11, "Workflow/first, step 'c', field 'uses'", "unknown connector 'fax'"),
        (14, "Workflw/second, field 'kind'", "not an Autoflow kind"),
        (22, "Workflow/third, step 'x', field 'with.duration'", "valid"),
    ]
    for line, (number, where, message) in zip(lines, expected, strict=False):
        assert line.startswith(f"error: {path}:{number}, {where}: "), line
        assert message in line, line


def test_a_trailing_document_separator_is_an_empty_document_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "checkout.yaml"
    path.write_text(FAILING.replace("uses: core.fail", "uses: core.log") + "---\n")
    assert autoflow("validate", str(path)).returncode == 0
    result = autoflow("run", str(path), "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Succeeded: run checkout-")


TWO_REQUIRED = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: report}
spec:
  inputs:
    region: {type: string, required: true}
    since: {type: string, required: true, description: first day of the report}
    limit: {type: integer}
  steps:
    - {id: a, uses: core.noop}
"""


def test_run_reports_every_missing_input_at_once(tmp_path: Path) -> None:
    path = tmp_path / "report.yaml"
    path.write_text(TWO_REQUIRED)
    result = autoflow("run", str(path), "-i", "limit=many")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert "field 'inputs.region': required input 'region' is missing" in lines[0]
    assert "field 'inputs.since': required input 'since' is missing (first day" in lines[1]
    assert "field 'inputs.limit': input 'limit' must be an integer; got 'many'" in lines[2]


def test_run_errors_under_output_json_are_one_json_document(tmp_path: Path) -> None:
    path = tmp_path / "report.yaml"
    path.write_text(TWO_REQUIRED)
    result = autoflow("run", str(path), "-o", "json")
    assert result.returncode == 1
    assert result.stderr == ""
    doc = json_out(result)
    assert doc["error"] == "required input 'region' is missing"
    assert [(p["file"], p["resource"], p["field"]) for p in doc["problems"]] == [
        (str(path), "Workflow/report", "inputs.region"),
        (str(path), "Workflow/report", "inputs.since"),
    ]

    missing = autoflow("run", str(tmp_path / "nope.yaml"), "--output", "json")
    assert missing.returncode == 1 and missing.stderr == ""
    (problem,) = json_out(missing)["problems"]
    assert problem["file"] == str(tmp_path / "nope.yaml")
    assert "No such file" in problem["message"]

    path.write_text(TWO_REQUIRED.replace("core.noop", "core.nope"))
    invalid = json_out(autoflow("run", str(path), "-o", "json"))
    (problem,) = invalid["problems"]
    assert (problem["line"], problem["step"], problem["field"]) == (10, "a", "uses")


def test_connectors_list() -> None:
    result = autoflow("connectors", "list")
    assert result.returncode == 0, result.stderr
    names = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert {"core.log", "core.set", "core.delay", "core.fail", "http.request"} <= names
    assert any(line.startswith("http:") for line in result.stdout.splitlines())


def test_connectors_show_http() -> None:
    doc = json_out(autoflow("connectors", "show", "http", "-o", "json"))
    assert doc["connector"] == "http"
    (action,) = doc["actions"]
    assert action["uses"] == "http.request"
    params = action["params"]
    assert "url" in params["required"]
    assert {"url", "method", "headers", "query", "json", "timeout"} <= set(params["properties"])
    assert "status" in action["output"]["properties"]
    # What an http Integration holds, for a form: settings and the secret keys read.
    form = doc["integration"]
    assert {"baseUrl", "auth", "healthPath"} <= set(form["settings"]["properties"])
    assert {"token", "accessToken", "apiKey"} <= set(form["secretKeys"])
    assert form["healthProbe"].startswith("GET settings.baseUrl")


def test_schema_of_a_kind_and_an_action() -> None:
    workflow = json_out(autoflow("schema", "Workflow"))
    assert "spec" in workflow["properties"]
    action = json_out(autoflow("schema", "http.request"))
    assert action["uses"] == "http.request"
    assert "url" in action["params"]["properties"]
    everything = json_out(autoflow("schema"))
    assert {"Workflow", "WorkflowRun", "Integration", "Schedule"} <= set(everything["kinds"])
    assert everything["actions"]["http.request"] == action
    result = autoflow("schema", "Workflo")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no schema named 'Workflo'" in result.stderr


def test_crds_prints_the_four_definitions() -> None:
    result = autoflow("crds")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert len(docs) == 4
    assert all(d["kind"] == "CustomResourceDefinition" for d in docs)
    assert {d["metadata"]["name"] for d in docs} == {
        "workflows.autoflow.dev",
        "workflowruns.autoflow.dev",
        "integrations.autoflow.dev",
        "schedules.autoflow.dev",
    }


def test_no_command_prints_usage() -> None:
    result = autoflow()
    assert result.returncode == 2
    assert "usage: autoflow" in result.stdout
    for command in ("validate", "run", "crds", "schema", "connectors"):
        assert command in result.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("autoflow")
    if not script.exists():
        pytest.skip("the autoflow console script is not installed next to this interpreter")
    result = subprocess.run(
        [str(script), "validate", TRIAGE], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


# -- the shop examples against the fake shop ------------------------------------------------


def _load_shop() -> Any:
    spec = importlib.util.spec_from_file_location("shop_server", EXAMPLES / "shop_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Shop:
    """``examples/shop_server.py``'s handler on a free port, recording every request."""

    def __init__(self) -> None:
        shop = _load_shop()
        self.requests: list[tuple[str, str, int, str | None]] = []  # method, path, status, key

        recorded = self.requests

        class Handler(shop.Shop):  # type: ignore[misc, name-defined]
            seen_crm: ClassVar[set[str]] = (
                set()
            )  # a fresh CRM per server: the first PUT answers 503

            def log_request(self, code: Any = "-", size: Any = "-") -> None:
                key = self.headers.get("Idempotency-Key")
                recorded.append((self.command, self.path, int(code), key))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def paths(self, method: str) -> list[str]:
        return [path for m, path, _, _ in self.requests if m == method]


@pytest.fixture
def shop() -> Iterator[Shop]:
    server = Shop()
    thread = threading.Thread(target=server.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)


def test_shop_lookup_notifies_a_big_order(shop: Shop) -> None:
    example = str(EXAMPLES / "shop-lookup.yaml")
    result = autoflow(
        "run", example, "-i", f"shopUrl={shop.url}", "-i", "orderId=A-1003", "--output", "json"
    )
    doc = json_out(result)
    assert result.returncode == 0
    assert doc["outputs"] == {"customer": "Linus", "total": 1250, "notified": True}
    run_id = doc["runId"]
    assert shop.requests == [
        ("GET", "/orders/A-1003", 200, None),
        ("POST", "/notifications", 201, f"{run_id}:notify"),
    ]
    notify = steps_by_id(doc)["notify"]["output"]
    assert notify["body"]["notification"] == {
        "text": "Big order A-1003: 1250 from Linus",
        "orderId": "A-1003",
    }


def test_shop_lookup_small_order_is_not_notified(shop: Shop) -> None:
    example = str(EXAMPLES / "shop-lookup.yaml")
    doc = json_out(
        autoflow(
            "run", example, "-i", f"shopUrl={shop.url}", "-i", "orderId=A-1001", "--output", "json"
        )
    )
    assert doc["outputs"] == {"customer": "Ada", "total": 42.5, "notified": False}
    assert steps_by_id(doc)["notify"]["phase"] == "Skipped"
    assert shop.paths("POST") == []


def test_shop_lookup_unknown_order_fails_and_runs_on_error(shop: Shop) -> None:
    example = str(EXAMPLES / "shop-lookup.yaml")
    result = autoflow("run", example, "-i", f"shopUrl={shop.url}", "-i", "orderId=Z-9")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: step 'fetch' failed: HTTP 404 Not Found" in result.stdout
    assert "no order Z-9" in result.stdout
    assert "[report] error: Lookup of Z-9 failed" in result.stderr
    # A 404 is permanent: no retry, although the workflow allows 4 attempts.
    assert shop.paths("GET") == ["/orders/Z-9"]


def test_nightly_sync_retries_the_busy_crm(shop: Shop) -> None:
    example = str(EXAMPLES / "nightly-sync.yaml")
    result = autoflow("run", example, "-i", f"shopUrl={shop.url}", "--output", "json")
    doc = json_out(result)
    assert result.returncode == 0
    assert doc["outputs"] == {"synced": ["Ada", "Grace", "Linus"], "reportStatus": "Failed"}
    steps = steps_by_id(doc)
    assert steps["report"]["phase"] == "Failed"  # continueOnError: the run still succeeds
    assert "HTTP 404" in steps["report"]["error"]
    assert steps["pushToCrm"]["attempts"] == 6  # three customers, two attempts each
    assert sorted(shop.paths("GET")) == ["/customers", "/orders"]
    assert shop.paths("POST") == ["/reports"]
    run_id = doc["runId"]
    for index, name in enumerate(["Ada", "Grace", "Linus"]):
        puts = [
            (s, k) for m, p, s, k in shop.requests if m == "PUT" and p == f"/crm/customers/{name}"
        ]
        # 503 first, then 200; the same key both times, so the CRM can tell it is a retry.
        assert puts == [
            (503, f"{run_id}:pushToCrm[{index}]"),
            (200, f"{run_id}:pushToCrm[{index}]"),
        ]


# -- credentials ------------------------------------------------------------------------------

INTEGRATION = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {name: shop-api}
spec:
  type: http
  settings: {auth: bearer}
"""

WHOAMI = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: whoami}
spec:
  inputs:
    base: {type: string, required: true}
  steps:
    - id: me
      uses: http.request
      integration: shop-api
      with: {url: "${ inputs.base }/me"}
    - id: orders
      uses: http.request
      integration: shop-api
      with: {url: "${ inputs.base }/orders"}
  onError:
    - {id: tell, uses: core.log, with: {level: error, message: "failed: ${ error.message }"}}
  finally:
    - {id: show, uses: core.log, with: {message: "me said ${ steps.me.output.body }"}}
"""


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[httpserver.Server, list[str]]]:
    (tmp_path / "integration.yaml").write_text(INTEGRATION)
    (tmp_path / "whoami.yaml").write_text(WHOAMI)
    with httpserver.serve() as server:
        # The server echoes the credential back, in a 200 body and in a 401 error.
        server.route(
            "/me", lambda r: httpserver.Reply.with_json({"auth": r.headers["authorization"]})
        )
        server.route(
            "/orders", lambda r: httpserver.Reply(401, f"rejected {r.headers['authorization']}")
        )
        args = ["run", "whoami.yaml", "integration.yaml", "-i", f"base={server.base_url}"]
        yield server, args
        assert not server.errors


@pytest.mark.parametrize("output", ["text", "json"])
def test_secret_reaches_the_server_and_nothing_else(
    secured: tuple[httpserver.Server, list[str]], tmp_path: Path, output: str
) -> None:
    server, args = secured
    extra = ["--output", output, "--journal", str(tmp_path / "journal")]
    if output == "json":
        extra += ["--log-format", "json"]
    env = clean_env(AUTOFLOW_SECRET_SHOP_API_TOKEN=TOKEN)
    result = autoflow(*args, *extra, env=env, cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {TOKEN}"] * 2
    # The run ended, so its journal is kept under its run id.
    (kept,) = (tmp_path / "journal").glob("whoami-*.jsonl")
    journal = kept.read_text()
    for text in (result.stdout, result.stderr, journal):
        assert TOKEN not in text
    assert "HTTP 401 Unauthorized" in result.stdout
    assert "rejected Bearer ***" in result.stdout
    if output == "json":
        doc = json.loads(result.stdout)
        assert steps_by_id(doc)["me"]["output"]["body"] == {"auth": "Bearer ***"}
        logged = {
            record["step_id"]: record["message"]
            for record in map(json.loads, result.stderr.splitlines())
            if "step_id" in record
        }
    else:
        logged = dict(
            line.strip()[1:].split("] ", 1)
            for line in result.stderr.splitlines()
            if line.startswith("  [")
        )
    # What steps log is redacted too: the onError step logs the error, finally the body.
    assert logged["tell"].endswith("rejected Bearer ***")
    assert logged["show"] == 'me said {"auth":"Bearer ***"}'


def test_missing_secret_names_the_variable(
    secured: tuple[httpserver.Server, list[str]], tmp_path: Path
) -> None:
    server, args = secured
    result = autoflow(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "set AUTOFLOW_SECRET_SHOP_API_TOKEN" in result.stdout
    assert server.requests == []


def test_secret_from_a_secrets_file(
    secured: tuple[httpserver.Server, list[str]], tmp_path: Path
) -> None:
    server, args = secured
    (tmp_path / "secrets.yaml").write_text(yaml.safe_dump({"shop-api": {"token": TOKEN}}))
    result = autoflow(*args, "--secrets", "secrets.yaml", cwd=tmp_path)
    assert result.returncode == 1  # /orders answers 401
    assert TOKEN not in result.stdout + result.stderr
    assert server.last("/me").headers["authorization"] == f"Bearer {TOKEN}"


def test_a_run_without_integrations_loads_no_oauth2_redis_or_http_client() -> None:
    # The one-shot run cost (benchmarks/engine.py) is mostly imports: authlib (JOSE,
    # cryptography), redis and httpx load only when a run uses what needs them.
    code = (
        "import sys, contextlib, io\n"
        "from autoflow.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main.main(['run', {TRIAGE!r}]) == 0\n"
        "print(sorted(m for m in ('authlib', 'redis', 'httpx') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", code],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
