#!/usr/bin/env bash
# hack/tools.sh - build (once) and locate the Go binaries the test tiers need.
#
#   hack/tools.sh envtest     -> dir holding kube-apiserver, etcd, kubectl
#   hack/tools.sh helm        -> path of helm
#   hack/tools.sh kustomize   -> path of kustomize
#   hack/tools.sh all         -> builds everything, prints "name path" lines
#   hack/tools.sh versions    -> pinned versions
#
# The answer is always the LAST line of stdout; progress goes to stderr.
# Everything is built from source with the Go toolchain through the Go module
# proxy (no prebuilt downloads), cached under
#   ${AUTOFLOW_TOOLS_CACHE:-$HOME/.cache/autoflow-tools}/<tool>-<version>/
# and built in a temp dir that is renamed into place, so an interrupted build
# never leaves a half-filled cache entry. See hack/README.md.
set -euo pipefail

# --- pins (override through the environment only for experiments) ----------
# Kubernetes v1.36.3 pins etcd 3.6.8 (build/dependencies.yaml, go.mod) and
# needs Go >= 1.26.0; all of these build with Go 1.26.x.
K8S_VERSION=${AUTOFLOW_K8S_VERSION:-v1.36.3}
ETCD_VERSION=${AUTOFLOW_ETCD_VERSION:-v3.6.8}
HELM_VERSION=${AUTOFLOW_HELM_VERSION:-v3.22.0}
KUSTOMIZE_VERSION=${AUTOFLOW_KUSTOMIZE_VERSION:-v5.8.2}

CACHE=${AUTOFLOW_TOOLS_CACHE:-$HOME/.cache/autoflow-tools}

log() { printf '[tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- temp dirs, cleaned on any exit -----------------------------------------
TMPS=()
cleanup() {
  local d
  for d in "${TMPS[@]+"${TMPS[@]}"}"; do
    [[ -n "$d" && -e "$d" ]] && rm -rf -- "$d"
  done
  return 0
}
CHILD=""
on_signal() {
  if [[ -n "$CHILD" ]]; then
    kill -TERM "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# run_in DIR CMD...: run a long command in DIR, in the background, and wait for
# it, so that a signal to this script is handled at once (and passed on to the
# command) instead of only after the build.
run_in() {
  local dir=$1; shift
  (cd "$dir" && exec "$@") &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

new_tmpdir() { # new_tmpdir VAR PARENT PREFIX: mktemp -d, registered for cleanup
  local d
  d=$(mktemp -d "$2/$3.XXXXXX")
  TMPS+=("$d")
  printf -v "$1" '%s' "$d"
}

# --- go ---------------------------------------------------------------------
GO_BIN=""
find_go() {
  [[ -n "$GO_BIN" ]] && return 0
  if [[ -n "${GO:-}" ]]; then
    GO_BIN=$GO
  elif command -v go >/dev/null 2>&1; then
    GO_BIN=$(command -v go)
  elif [[ -x /usr/local/go/bin/go ]]; then
    GO_BIN=/usr/local/go/bin/go
  else
    die "no Go toolchain found (set GO=/path/to/go or put go on PATH)"
  fi
  log "using $("$GO_BIN" version)"
}

# Run go with the wrapper-module settings. GOFLAGS is replaced on purpose so a
# caller's GOFLAGS cannot break the throwaway module. GOMODCACHE is left alone
# (default $HOME/go/pkg/mod), so downloads are shared between builds.
gorun_in() { # gorun_in DIR GOARGS...
  local dir=$1; shift
  run_in "$dir" env CGO_ENABLED=0 GOWORK=off GO111MODULE=on \
    GOFLAGS="-mod=mod -buildvcs=false" nice -n 10 "$GO_BIN" "$@"
}

# gomod_of MODULE@VERSION: sets GOMOD_PATH to that version's go.mod in the
# module cache (downloading the module if needed).
GOMOD_PATH=""
gomod_of() {
  local mv=$1 dir json
  new_tmpdir dir "${TMPDIR:-/tmp}" autoflow-gomod
  json=$(cd "$dir" && env GOWORK=off GO111MODULE=on GOFLAGS=-buildvcs=false \
           nice -n 10 "$GO_BIN" mod download -json "$mv") \
    || die "go mod download $mv failed"
  GOMOD_PATH=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
  [[ -n "$GOMOD_PATH" && -f "$GOMOD_PATH" ]] || die "no go.mod for $mv in: $json"
}

# "old [oldver] => new [newver]" for every replace directive of a go.mod
replaces_of() {
  awk '
    { sub(/\/\/.*/, "") }
    /^replace[ \t]*\(/ { blk = 1; next }
    blk && /^[ \t]*\)/ { blk = 0; next }
    blk && /=>/ { print; next }
    /^replace[ \t]+[^(]/ { sub(/^replace[ \t]+/, ""); print }
  ' "$1"
}

# directive lines ("go 1.26.0", "godebug default=go1.26") of a go.mod
go_directive_of() { awk '$1 == "go" && NF == 2 { print $2; exit }' "$1"; }
godebug_of() {
  awk '
    { sub(/\/\/.*/, "") }
    /^godebug[ \t]*\(/ { blk = 1; next }
    blk && /^[ \t]*\)/ { blk = 0; next }
    blk && NF { print "godebug " $1; next }
    /^godebug[ \t]+[^(]/ { print }
  ' "$1"
}

# new_wrapper MODULE VERSION [STAGING_VERSION]
# Creates a throwaway module (dir in WRAPPER) that requires MODULE@VERSION and
# carries over the dependency's go/godebug settings and its module (non-local) replace directives.
# Local "./staging/src/<mod>" replaces (k8s.io/kubernetes) become
# "<mod> => <mod> STAGING_VERSION".
WRAPPER=""
new_wrapper() {
  local mod=$1 ver=$2 staging=${3:-} gm dir godir old rest new nver n=0 line
  gomod_of "$mod@$ver"; gm=$GOMOD_PATH
  new_tmpdir dir "${TMPDIR:-/tmp}" autoflow-wrap
  godir=$(go_directive_of "$gm")
  {
    echo "module autoflow.local/toolbuild"
    echo
    echo "go ${godir:-1.26.0}"
    echo
    godebug_of "$gm"
    echo
    echo "require $mod $ver"
    echo
    echo "replace ("
    while IFS= read -r line; do
      old=$(awk '{print $1}' <<<"${line%%=>*}")
      rest=${line#*=>}
      new=$(awk '{print $1}' <<<"$rest")
      nver=$(awk '{print $2}' <<<"$rest")
      [[ -n "$old" && -n "$new" ]] || continue
      if [[ "$new" == ./staging/src/* && -n "$staging" ]]; then
        echo "	$old => $old $staging"; n=$((n + 1))
      elif [[ -n "$nver" && "$new" != .* && "$new" != /* ]]; then
        echo "	$old => $new $nver"; n=$((n + 1))
      fi
    done < <(replaces_of "$gm")
    echo ")"
  } >"$dir/go.mod"
  log "wrapper for $mod@$ver: go ${godir:-1.26.0}, $n replace line(s) in $dir/go.mod"
  WRAPPER=$dir
}

# --- cache handling ---------------------------------------------------------
# ensure NAME CHECKFN BUILDFN: make $CACHE/NAME exist (CHECKFN DIR succeeds),
# building it with BUILDFN TMPDIR under a lock if it does not.
ensure() {
  local name=$1 check=$2 build=$3 final="$CACHE/$1" tmp fd start
  if [[ -d "$final" ]] && "$check" "$final"; then return 0; fi
  mkdir -p "$CACHE"
  if command -v flock >/dev/null 2>&1; then
    exec {fd}>"$CACHE/.$name.lock"
    flock "$fd"
  fi
  if [[ -d "$final" ]] && "$check" "$final"; then
    [[ -n "${fd:-}" ]] && exec {fd}>&-
    return 0
  fi
  if [[ -e "$final" ]]; then
    log "removing incomplete cache entry $final"
    rm -rf -- "$final"
  fi
  # leftovers of a killed earlier build of this entry (we hold its lock)
  rm -rf -- "$CACHE/.tmp-$name".*
  find_go
  new_tmpdir tmp "$CACHE" ".tmp-$name"
  start=$SECONDS
  log "building $name from source into $final (first run only; a cold" \
      "build of kube-apiserver, etcd, kubectl, helm and kustomize takes about 8 min on 2 cores) ..."
  "$build" "$tmp"
  "$check" "$tmp" || die "build of $name produced no usable output"
  chmod 755 "$tmp"
  mv -T -- "$tmp" "$final"
  log "built $name in $((SECONDS - start))s -> $final"
  [[ -n "${fd:-}" ]] && exec {fd}>&-
  return 0
}

has_exe() { local d=$1 f; shift; for f in "$@"; do [[ -f "$d/$f" && -x "$d/$f" ]] || return 1; done; }

# --- kubernetes: kube-apiserver + kubectl -----------------------------------
check_kubernetes() { has_exe "$1" kube-apiserver kubectl; }
build_kubernetes() {
  local out=$1 w v=${K8S_VERSION#v} major minor date ld=() key val
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  new_wrapper k8s.io/kubernetes "$K8S_VERSION" "v0.${v#*.}"; w=$WRAPPER
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for kv in "gitVersion=$K8S_VERSION" "gitMajor=$major" "gitMinor=$minor" \
            "gitTreeState=clean" "buildDate=$date"; do
    key=${kv%%=*}; val=${kv#*=}
    ld+=("-X k8s.io/component-base/version.$key=$val" "-X k8s.io/client-go/pkg/version.$key=$val")
  done
  gorun_in "$w" build -trimpath -tags=selinux,notest,grpcnotrace \
      -ldflags="-s -w ${ld[*]}" -o "$out/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl \
    || die "building kube-apiserver/kubectl $K8S_VERSION failed"
}

# --- etcd -------------------------------------------------------------------
check_etcd() { has_exe "$1" etcd; }
build_etcd() {
  local out=$1 w
  new_wrapper go.etcd.io/etcd/server/v3 "$ETCD_VERSION"; w=$WRAPPER
  # same as etcd's own main.go (module go.etcd.io/etcd/v3, package main)
  cat >"$w/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  gorun_in "$w" build -trimpath -ldflags="-s -w" -o "$out/etcd" . \
    || die "building etcd $ETCD_VERSION failed"
}

# --- envtest: one dir with all three (hard links into the two entries above) -
check_envtest() { has_exe "$1" kube-apiserver kubectl etcd; }
build_envtest() {
  local out=$1 f src
  for f in kube-apiserver kubectl etcd; do
    if [[ $f == etcd ]]; then src="$CACHE/etcd-$ETCD_VERSION/$f"; else src="$CACHE/kubernetes-$K8S_VERSION/$f"; fi
    ln -- "$src" "$out/$f" 2>/dev/null || cp -- "$src" "$out/$f"
  done
}
envtest_name() { echo "envtest-$K8S_VERSION-etcd-$ETCD_VERSION"; }

cmd_envtest() {
  if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    if has_exe "$KUBEBUILDER_ASSETS" kube-apiserver etcd; then
      log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
      RESULT=$KUBEBUILDER_ASSETS; return 0
    fi
    log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver/etcd; using the cache"
  fi
  local name; name=$(envtest_name)
  if ! { [[ -d "$CACHE/$name" ]] && check_envtest "$CACHE/$name"; }; then
    ensure "kubernetes-$K8S_VERSION" check_kubernetes build_kubernetes
    ensure "etcd-$ETCD_VERSION" check_etcd build_etcd
    ensure "$name" check_envtest build_envtest
  fi
  RESULT="$CACHE/$name"
}

# --- helm -------------------------------------------------------------------
check_helm() { has_exe "$1" helm; }
build_helm() {
  local out=$1 w cg minor ld
  new_wrapper helm.sh/helm/v3 "$HELM_VERSION"; w=$WRAPPER
  # helm's Makefile derives the default Kubernetes version from client-go.
  cg=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$GOMOD_PATH")
  minor=${cg#v0.}; minor=${minor%%.*}
  ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  if [[ "$minor" =~ ^[0-9]+$ ]]; then
    ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
    ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  fi
  gorun_in "$w" build -trimpath -ldflags="$ld" -o "$out/helm" helm.sh/helm/v3/cmd/helm \
    || die "building helm $HELM_VERSION failed"
}
cmd_helm() {
  ensure "helm-$HELM_VERSION" check_helm build_helm
  RESULT="$CACHE/helm-$HELM_VERSION/helm"
}

# --- kustomize --------------------------------------------------------------
check_kustomize() { has_exe "$1" kustomize; }
build_kustomize() {
  local out=$1 w ld
  new_wrapper sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"; w=$WRAPPER
  ld="-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION"
  ld+=" -X sigs.k8s.io/kustomize/api/provenance.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  gorun_in "$w" build -trimpath -ldflags="$ld" -o "$out/kustomize" sigs.k8s.io/kustomize/kustomize/v5 \
    || die "building kustomize $KUSTOMIZE_VERSION failed"
}
cmd_kustomize() {
  ensure "kustomize-$KUSTOMIZE_VERSION" check_kustomize build_kustomize
  RESULT="$CACHE/kustomize-$KUSTOMIZE_VERSION/kustomize"
}

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

RESULT=""
case "${1:-}" in
  envtest) cmd_envtest; printf '%s\n' "$RESULT" ;;
  helm) cmd_helm; printf '%s\n' "$RESULT" ;;
  kustomize) cmd_kustomize; printf '%s\n' "$RESULT" ;;
  all)
    cmd_envtest; e=$RESULT
    cmd_helm; h=$RESULT
    cmd_kustomize; k=$RESULT
    printf 'envtest %s\nhelm %s\nkustomize %s\n' "$e" "$h" "$k"
    ;;
  versions)
    printf 'kubernetes %s\netcd %s\nhelm %s\nkustomize %s\ncache %s\n' \
      "$K8S_VERSION" "$ETCD_VERSION" "$HELM_VERSION" "$KUSTOMIZE_VERSION" "$CACHE"
    ;;
  -h|--help|help) usage ;;
  *) usage ;;
esac
