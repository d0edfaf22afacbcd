"""Python started in the repository root gets the standard library's ``operator``, not ours.

The root holds the ``operator/`` component directory and Python puts the current directory
first on ``sys.path`` for ``-c`` and ``-m``, so ``import operator`` (which ``collections``
does) finds the component. ``operator/__init__.py`` then installs the standard library's
module in its place (docs/architecture.md, "The stdlib shadow"). These run Python as a user
does, without ``-P``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECK = """
import collections, functools, operator, sys
assert not hasattr(operator, "__path__"), operator.__file__
assert operator.__file__.endswith("operator.py"), operator.__file__
assert sys.modules["operator"] is operator
assert operator.add(2, 3) == 5 and operator.__add__ is operator.add
assert operator.itemgetter(1)("ab") == "b"
assert collections.Counter("aab").most_common(1) == [("a", 2)]
print("stdlib operator")
"""


def python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_without_site_the_root_gets_the_stdlib_operator() -> None:
    # -S: no site, so nothing has imported collections (and operator) before the current
    # directory is on sys.path: the bare case the editable install's .pth used to hide.
    result = python("-S", "-c", CHECK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stdlib operator"


def test_with_site_the_root_gets_the_stdlib_operator() -> None:
    result = python("-c", CHECK)
    assert result.returncode == 0, result.stderr


def test_the_component_is_still_autoflow_operator() -> None:
    code = (
        "import operator, autoflow.operator as o;"
        "assert o.__name__ == 'autoflow.operator' and hasattr(o, '__path__');"
        "assert operator is not o"
    )
    result = python("-c", code)
    assert result.returncode == 0, result.stderr


def test_the_documented_module_commands_work_from_the_root_without_dash_p() -> None:
    result = python("-m", "autoflow.cli.main", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: autoflow" in result.stdout
    result = python("-m", "autoflow.cli.main", "validate", "examples/order-triage.yaml")
    assert result.returncode == 0, result.stderr
