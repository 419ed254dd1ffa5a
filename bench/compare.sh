#!/usr/bin/env bash
# Side-by-side benchmark: ringgate vs nginx vs HAProxy, driven by wrk (and
# by h2load, HTTP/2 over TLS, in the h2 mode; by tlsload, mutual TLS
# handshakes, in the mtls mode).
# Installs nginx, haproxy, wrk and h2load (nghttp2-client) from the
# distribution's packages when missing, builds ringgate in release mode, then
# runs the harness (bench/src/bin/compare.rs). Arguments go to the harness, e.g.:
#   bench/compare.sh                       # every mode, 5 rounds of 5 s
#   bench/compare.sh --mode small --rounds 3
#   bench/compare.sh --mode h2 --rounds 3 --duration 5 --warm-up 1
#                                          # h2load -c 1|64 -m 10, small and 64 KiB
#                                          # responses, over TLS with one certificate
#   bench/compare.sh --mode h2 --proxies nginx,haproxy   # some proxies only
#   bench/compare.sh --mode https --mode mtls --rounds 3 --duration 5
#                                          # mtls: full TLS 1.3 handshakes presenting a
#                                          # client certificate (ringgate
#                                          # trusted_client_certificates, nginx
#                                          # ssl_verify_client on, HAProxy verify
#                                          # required), beside the same without one on
#                                          # the plain https listeners; load from
#                                          # tlsload (bench/src/bin/tlsload.rs), as wrk
#                                          # cannot present a certificate
#   bench/compare.sh --mode bulk --rounds 3 --duration 5
#                                          # 16, 32, 64 KiB and 1 MiB GETs and 1 MiB uploads, 16
#                                          # connections: ringgate splicing and copying,
#                                          # nginx, HAProxy, HAProxy splicing; then 1 GiB
#                                          # down and up through ringgate (sha256, RSS);
#                                          # writes a 1 GiB file into the run directory
#                                          # (removed at the end); --bulk-min-body 8KiB
#                                          # moves the splicing row's threshold
#   bench/compare.sh --mode idle --duration 5
#                                          # RSS per idle keep-alive connection (about
#                                          # 9,000, from idleconns) for each proxy
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in nginx haproxy wrk h2load taskset; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=()
  for t in "${need[@]}"; do
    case "$t" in
      nginx) pkgs+=(nginx-light) ;;
      taskset) pkgs+=(util-linux) ;;
      h2load) pkgs+=(nghttp2-client) ;;
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
cargo build --release -q -p ringgate -p ringgate-bench --bin ringgate --bin compare --bin relay --bin tlsload \
  --bin idleconns
exec target/release/compare --ringgate target/release/ringgate --relay target/release/relay \
  --tlsload target/release/tlsload --idleconns target/release/idleconns "$@"
