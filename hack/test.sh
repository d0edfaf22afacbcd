#!/usr/bin/env bash
# The project's checks, in the order that fails fastest: lint, types, layers, then the tests.
# Run from the repository root with the virtual environment made by hack/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BIN=$(dirname "$PY")
"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/mypy" -p autoflow
# The tests and benchmarks (`files` in pyproject.toml), strict like the product. The test tiers'
# own conftest.py files would all be the module `conftest` to mypy, so each is a run of its own.
"$BIN/mypy"
"$BIN/mypy" tests/kube/conftest.py
"$BIN/mypy" tests/services/conftest.py
"$BIN/lint-imports"
exec "$PY" -P -m pytest "$@"
