#!/usr/bin/env bash
# hack/ui.sh - the web UI's front end (webui/frontend: React + TypeScript + Vite, npm).
#
#   bash hack/ui.sh build   npm ci (when package-lock.json changed) and vite build into webui/dist
#                           (when a source is newer than the last build); quiet, idempotent
#   bash hack/ui.sh check   typecheck (tsc --noEmit) and the unit tests (vitest)
set -euo pipefail
cd "$(dirname "$0")/../webui/frontend"
log() { printf '[ui] %s\n' "$*" >&2; }

deps() {
    if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
        log "npm ci"
        npm ci --no-audit --no-fund --loglevel=error >/dev/null
    fi
}

case ${1:-build} in
build)
    deps
    if [[ ! -f ../dist/index.html ]] || [[ -n $(find src index.html package-lock.json vite.config.ts -newer ../dist/index.html -print -quit) ]]; then
        log "building webui/dist"
        npm run --silent build -- --logLevel error
    fi
    ;;
check)
    deps
    npm run --silent typecheck
    npm run --silent test
    ;;
*)
    echo "usage: hack/ui.sh build|check" >&2
    exit 2
    ;;
esac
