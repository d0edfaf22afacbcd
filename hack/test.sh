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
"$BIN/lint-imports"
exec "$PY" -P -m pytest "$@"
