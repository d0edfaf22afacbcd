"""``autoflow webui`` as a person starts it: the workspace mode prints a URL with its access
token that signs the browser in; the cluster mode refuses to start without sign-in settings."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import httpx

HELLO = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: hello}
spec:
  steps:
    - {id: greet, uses: core.log, with: {message: hi}}
"""


def _autoflow() -> str:
    return str(pathlib.Path(sys.executable).with_name("autoflow"))


def test_workspace_mode_prints_a_link_that_signs_in(tmp_path: pathlib.Path) -> None:
    (tmp_path / "hello.yaml").write_text(HELLO)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    proc = subprocess.Popen(
        [_autoflow(), "webui", "--dir", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        assert found, line
        base, token = found.groups()
        with httpx.Client(base_url=base) as browser:
            assert browser.get("/api/session").status_code == 401
            opened = browser.get(f"/?token={token}")
            assert opened.status_code == 303 and "token" not in opened.headers["location"]
            session = browser.get("/api/session")
            assert session.status_code == 200 and session.json()["mode"] == "workspace"
            names = [
                w["name"] for w in browser.get("/api/namespaces/default/workflows").json()["items"]
            ]
            assert names == ["hello"]
    finally:
        proc.terminate()
        proc.wait(10)
    assert token not in (proc.stderr.read() if proc.stderr else "")


def test_cluster_mode_needs_sign_in_settings(tmp_path: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    done = subprocess.run(
        [_autoflow(), "webui"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 2
    assert "AUTOFLOW_WEBUI_OIDC_ISSUER" in done.stderr
