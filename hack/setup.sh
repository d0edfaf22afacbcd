#!/usr/bin/env bash
# Make the development environment: a virtual environment in .venv with Autoflow installed
# editable and the test tools. Idempotent; takes about a minute the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -P -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "Autoflow needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
# -P: the repository root holds an operator/ directory that would shadow the standard
# library's operator module if the current directory were put on sys.path.
[ -x .venv/bin/python ] || "$PYTHON" -P -m venv .venv
.venv/bin/python -P -m pip install --quiet --upgrade pip
.venv/bin/python -P -m pip install --quiet -e '.[test]'
echo "ready: .venv/bin/autoflow --help" >&2
