"""``autoflow integrations test FILE...`` as a user runs it: output, exit code, errors.

Most tests call ``autoflow.cli.main.main`` in this process (stdout and stderr captured); one
runs the command as a subprocess, as a shell would. The Integrations are ``http`` ones
pointed at ``httpserver`` on 127.0.0.1, so every request the probes make is seen; credentials
come from ``AUTOFLOW_SECRET_*`` variables or a ``--secrets`` file, and are never printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpserver
import pytest
import yaml

from autoflow.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok-Integration-7Qz1"


@pytest.fixture(autouse=True)
def no_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("AUTOFLOW_"):
            monkeypatch.delenv(name)


def manifests(path: Path, *integrations: Mapping[str, object]) -> str:
    docs = [
        {
            "apiVersion": "autoflow.dev/v1alpha1",
            "kind": "Integration",
            "metadata": {"name": i["name"]},
            "spec": {k: v for k, v in i.items() if k != "name"},
        }
        for i in integrations
    ]
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def shop(server: httpserver.Server, name: str = "shop", **settings: object) -> dict[str, object]:
    return {
        "name": name,
        "type": "http",
        "settings": {"baseUrl": server.url("/api"), "auth": "bearer", **settings},
        "secretRef": {"name": "shop-credentials", "keys": ["token"]},
    }


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["integrations", "test", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_each_integration_gets_a_line_and_all_ready_exits_0(
    tmp_path: Path,
    server: httpserver.Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.route("/api/health", httpserver.Reply(200, "ok"))
    monkeypatch.setenv("AUTOFLOW_SECRET_SHOP_TOKEN", TOKEN)
    file = manifests(
        tmp_path / "i.yaml",
        shop(server, healthPath="/health"),
        {"name": "misc", "type": "core"},
    )
    code, out, err = run(capsys, file)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("shop  http  READY      ProbeSucceeded  integration 'shop': GET ")
    assert lines[0].endswith(" ms)")
    assert lines[1].startswith("misc  core  READY      NotProbed       integration 'misc': ")
    assert server.last("/api/health").headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in out


def test_one_not_ready_exits_1_and_says_why(
    tmp_path: Path, server: httpserver.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(
        "/api",
        lambda request: httpserver.Reply(401, f"bad {request.headers.get('authorization')}"),
    )
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(yaml.safe_dump({"shop": {"token": TOKEN}}))
    file = manifests(tmp_path / "i.yaml", shop(server))
    code, out, _ = run(capsys, file, "--secrets", str(secrets))
    assert code == 1
    assert "NOT READY  CredentialsRejected  integration 'shop': HTTP 401" in out
    assert "bad Bearer ***" in out
    assert TOKEN not in out


def test_json_output_and_choosing_by_name(
    tmp_path: Path,
    server: httpserver.Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file = manifests(tmp_path / "i.yaml", shop(server), shop(server, name="other"))
    code, out, _ = run(capsys, file, "--name", "other", "-o", "json")
    assert code == 1
    [result] = json.loads(out)
    assert result["elapsedMs"] >= 0
    del result["elapsedMs"]
    assert result == {
        "name": "other",
        "type": "http",
        "ready": False,
        "reason": "SecretMissing",
        "message": "integration 'other' has no secret 'token': set "
        "AUTOFLOW_SECRET_OTHER_TOKEN or add it to the --secrets file",
    }
    assert server.calls() == 0


def test_integrations_are_probed_at_the_same_time(
    tmp_path: Path,
    server: httpserver.Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for n in range(3):
        server.route(f"/slow{n}", httpserver.Reply(200, delay=0.6))
    file = manifests(
        tmp_path / "i.yaml",
        *(
            {"name": f"slow{n}", "type": "http", "settings": {"baseUrl": server.url(f"/slow{n}")}}
            for n in range(3)
        ),
    )
    started = time.monotonic()
    code, out, _ = run(capsys, file)
    assert code == 0, out
    assert time.monotonic() - started < 1.5  # one after the other would take 1.8s
    assert [line.split()[0] for line in out.splitlines()] == ["slow0", "slow1", "slow2"]


def test_timeout_flag(
    tmp_path: Path, server: httpserver.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route("/stuck", httpserver.Reply(200, delay=3))
    file = manifests(
        tmp_path / "i.yaml",
        {"name": "stuck", "type": "http", "settings": {"baseUrl": server.url("/stuck")}},
    )
    code, out, _ = run(capsys, file, "--timeout", "0.3")
    assert code == 1
    assert "NOT READY  Timeout  integration 'stuck': http: no answer within 0.3s" in out


def test_an_invalid_manifest_names_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: autoflow.dev/v1alpha1\nkind: Integration\nmetadata: {name: x}\n"
        "spec: {type: http, maxConcurrency: 0}\n"
    )
    code, out, err = run(capsys, str(bad))
    assert (code, out) == (1, "")
    assert str(bad) in err and "spec.maxConcurrency" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "nope"], "no Integration named 'nope' in the files (there: shop)"),
        (["--timeout", "0"], "--timeout must be more than 0 seconds"),
    ],
)
def test_usage_errors(
    tmp_path: Path,
    server: httpserver.Server,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    file = manifests(tmp_path / "i.yaml", shop(server))
    code, out, err = run(capsys, file, *args)
    assert (code, out) == (1, "")
    assert message in err


def test_files_without_integrations_and_duplicates_are_errors(
    tmp_path: Path, server: httpserver.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = ROOT / "examples" / "order-triage.yaml"
    code, _, err = run(capsys, str(workflow))
    assert code == 1 and f"error: no Integration in {workflow}" in err
    first = manifests(tmp_path / "a.yaml", shop(server))
    second = manifests(tmp_path / "b.yaml", shop(server))
    code, _, err = run(capsys, first, second)
    assert code == 1
    assert (
        f"{second}:1, Integration/shop: Integration 'shop' is defined twice (first in {first})"
        in err
    )


def test_as_a_subprocess(tmp_path: Path, server: httpserver.Server) -> None:
    server.route("/api", httpserver.Reply.with_json({"ok": True}))
    file = manifests(tmp_path / "i.yaml", shop(server))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    result = subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", "integrations", "test", file],
        cwd=ROOT,
        env={**env, "AUTOFLOW_SECRET_SHOP_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(
        f"shop  http  READY      ProbeSucceeded  integration 'shop': GET {server.url('/api')} "
        "answered 200 OK  ("
    )
    assert server.last("/api").headers["authorization"] == f"Bearer {TOKEN}"


def test_integrations_without_a_subcommand_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["integrations"]) == 2
    assert "autoflow integrations test|authorize FILE" in capsys.readouterr().err
