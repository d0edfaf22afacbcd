#!/usr/bin/env bash
# Make the development environment: a virtual environment in .venv with Autoflow installed
# editable and the test tools. Idempotent; takes about a minute the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Autoflow needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
# Plain python works in the repository root although it holds an operator/ directory:
# operator/__init__.py hands `import operator` the standard library's module
# (docs/architecture.md, "The stdlib shadow").
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# setuptools says, on every editable install, that a folder named like the package may take
# precedence during imports: autoflow/ is that package, so the notice is only noise here.
PYTHONWARNINGS="ignore:Editable installation" \
    .venv/bin/python -m pip install --quiet -e '.[test]'
echo "ready: .venv/bin/autoflow --help" >&2
# The web UI's front end (webui/frontend, npm) built into webui/dist, which the package ships.
# Only when npm is there, and only what is out of date: `npm ci` when the lockfile changed,
# the build when a source is newer than the last build. AUTOFLOW_SKIP_UI=1 leaves it out.
if [[ -z ${AUTOFLOW_SKIP_UI:-} ]] && command -v npm >/dev/null 2>&1; then
    bash hack/ui.sh build
elif [[ -z ${AUTOFLOW_SKIP_UI:-} ]]; then
    echo "npm not found: the web UI is not built (webui/frontend; see docs/webui-guide.md)" >&2
fi
