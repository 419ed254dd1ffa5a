#!/usr/bin/env bash
# Installs what the end-to-end tests use beside the Rust toolchain, when it
# is missing: Debian's nghttp2-client (nghttp, h2load) and curl, and PyPI's
# h2 and httpx[http2] into a virtual environment under target/, and Debian's
# prometheus for promtool (its server is not started by the tests). Idempotent;
# the test harness runs it (under a lock) the first time a test needs a tool,
# so `cargo test --workspace --all-targets` works on a fresh machine.
# Prints nothing on success but what the installers print to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
{ command -v nghttp && command -v h2load; } >/dev/null 2>&1 || need+=(nghttp2-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "install-test-tools: installing ${need[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
venv="${CARGO_TARGET_DIR:-target}/test-venv"
if ! "$venv/bin/python" -c 'import h2, httpx, h2.connection' >/dev/null 2>&1; then
  echo "install-test-tools: creating $venv with h2 and httpx[http2]" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check 'h2>=4.1,<5' 'httpx[http2]>=0.27,<1' >&2
fi
