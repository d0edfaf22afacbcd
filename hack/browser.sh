#!/usr/bin/env bash
# hack/browser.sh - what the browser test tier (tests/browser/) needs:
#
#   Debian package   used for
#   chromium         /usr/bin/chromium, driven by Playwright through executable_path
#                    (Playwright's own browser download is not used)
#   npm (nodejs)     building the web UI (hack/ui.sh build) when npm is not there yet
#
# then the web UI's build (webui/dist). Playwright itself is a Python test dependency
# (pyproject.toml, test extras). Idempotent and quiet: apt runs only when something is missing.
# Needs root (or sudo) only to install.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[browser] %s\n' "$*" >&2; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else SUDO=(false); fi
fi

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]} and there is no apt-get: install them with your package manager"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq >/dev/null
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash hack/ui.sh build
log "ready: $(/usr/bin/chromium --version 2>/dev/null || echo chromium), node $(node --version), webui/dist built"
