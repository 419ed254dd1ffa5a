#!/usr/bin/env bash
# Side-by-side benchmark: ringgate vs nginx vs HAProxy, driven by wrk.
# Installs nginx, haproxy and wrk from the distribution's packages when
# missing, builds ringgate in release mode, then runs the harness
# (bench/src/bin/compare.rs). Arguments go to the harness, e.g.:
#   bench/compare.sh                       # every mode, 5 rounds of 5 s
#   bench/compare.sh --mode small --rounds 3
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in nginx haproxy wrk taskset; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=()
  for t in "${need[@]}"; do
    case "$t" in
      nginx) pkgs+=(nginx-light) ;;
      taskset) pkgs+=(util-linux) ;;
      *) pkgs+=("$t") ;;
    esac
  done
  echo "compare.sh: installing ${pkgs[*]}" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >&2
fi
# The package starts a system nginx on port 80; it is not ours to stop, and
# the harness uses other ports.
cargo build --release -q -p ringgate -p ringgate-bench --bin ringgate --bin compare --bin relay
exec target/release/compare --ringgate target/release/ringgate --relay target/release/relay "$@"
