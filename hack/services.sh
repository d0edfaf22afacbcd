#!/usr/bin/env bash
# hack/services.sh - install the servers the real-services test tier starts (tests/services/).
#
# The tests start their own PostgreSQL, Redis and NATS (JetStream) on free loopback ports from
# the installed binaries; the SMTP server is aiosmtpd (a Python test dependency) and its
# certificate comes from openssl. This script only makes sure the binaries are there:
#
#   Debian package   binaries the tests use
#   postgresql       /usr/lib/postgresql/<major>/bin/{initdb,postgres}
#   redis-server     redis-server
#   nats-server      nats-server (/usr/sbin on Debian)
#   openssl          openssl (self-signed certificate for STARTTLS/SSL)
#
# Idempotent and quiet: `apt-get update` and `apt-get install` run only when a package is
# missing. The packages' own service instances (the `main` PostgreSQL cluster, redis-server,
# nats-server) are stopped and disabled so they hold no default ports and use no memory; the
# tests never use them. Needs root (or sudo) only when something is to be installed or stopped.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else SUDO=(false); fi
fi

have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }

missing=()
have_postgres || missing+=(postgresql)
have redis-server || missing+=(redis-server)
have nats-server || missing+=(nats-server)
have openssl || missing+=(openssl)

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

# The packages start (or, where policy-rc.d forbids it, enable) their own instances.
stop_unit() {
  local unit=$1
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl disable --now "$unit" >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    "${SUDO[@]}" service "$unit" stop >/dev/null 2>&1 || true
  fi
}
stop_unit postgresql
stop_unit redis-server
stop_unit nats-server
if command -v pg_lsclusters >/dev/null 2>&1; then
  # Without systemd, `service postgresql stop` may leave a cluster running.
  while read -r version name _port status _; do
    if [[ $status == online* ]]; then
      "${SUDO[@]}" pg_ctlcluster "$version" "$name" stop >/dev/null 2>&1 || true
    fi
  done < <(pg_lsclusters --no-header 2>/dev/null || true)
fi
# Daemons started without an init system (a container's `service` scripts) stop by pid file.
for pidfile in /run/redis/redis-server.pid /var/run/nats-server.pid; do
  if [[ -s $pidfile ]]; then
    "${SUDO[@]}" kill "$(cat "$pidfile")" >/dev/null 2>&1 || true
  fi
done

initdb=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)
nats=$(command -v nats-server || echo /usr/sbin/nats-server)
log "ready: $(dirname "$initdb"), $(command -v redis-server), $nats"
