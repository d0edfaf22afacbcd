"""The front end's own checks, run with the tests: TypeScript's type check and the vitest
unit tests (the YAML document model: canvas edits keep comments and every byte outside the
changed step). Needs npm and ``webui/frontend/node_modules`` (``bash hack/ui.sh build``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[2] / "webui" / "frontend"


def _npm(script: str) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    ready = npm is not None and (FRONTEND / "node_modules").is_dir()
    if not ready:
        message = "npm and webui/frontend/node_modules are needed: run bash hack/ui.sh build"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    assert npm is not None
    return subprocess.run(
        [npm, "run", "--silent", script],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CI": "true", "NO_COLOR": "1"},
    )


def test_typescript_type_check_is_clean() -> None:
    done = _npm("typecheck")
    assert done.returncode == 0, done.stdout + done.stderr


def test_vitest_unit_tests_pass() -> None:
    done = _npm("test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout
