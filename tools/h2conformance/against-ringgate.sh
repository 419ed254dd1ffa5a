#!/usr/bin/env bash
# Runs h2conformance.py against a debug build of ringgate (cargo build -p
# ringgate -p ringgate-testbackend first): a listener with
# http2_cleartext = true (or, with --tls, an https listener with a
# self-signed certificate, ALPN h2) in front of one ringgate-testbackend
# answering 1 KiB. Temporary directory, free loopback ports; both processes
# are stopped at exit. Arguments go to the suite. The CI form of this is
# tests/tests/http2_conformance.rs.
#   tools/h2conformance/against-ringgate.sh [--tls] [suite options...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${RINGGATE_BIN_DIR:-$here/../../target/debug}"
python="${PYTHON:-$here/../../target/test-venv/bin/python}"
dir="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend=$(free_port); port=$(free_port)
"$bin/ringgate-testbackend" --listen "127.0.0.1:$backend" --body-bytes 1024 >"$dir/backend.log" 2>&1 &
pids+=($!)
listener="http2_cleartext = true"
for a in "$@"; do
  if [ "$a" = "--tls" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/cert.key" -out "$dir/cert.pem" -days 2 \
      -subj /CN=localhost 2>/dev/null
    listener=$'protocol = "https"\ncertificate = "cert.pem"\nprivate_key = "cert.key"'
  fi
done
cat >"$dir/ringgate.toml" <<CONF
[gateway]
workers = 1
admin_listen = "off"
access_log = "off"

[[listener]]
name = "public"
listen = "127.0.0.1:$port"
$listener

[[backend_pool]]
name = "pool01"
addresses = ["127.0.0.1:$backend"]

[[backend_http_settings]]
name = "setting01"

[[rule]]
name = "rule01"
listener = "public"
backend_pool = "pool01"
backend_http_settings = "setting01"
CONF
"$bin/ringgate" run --config "$dir/ringgate.toml" >"$dir/ringgate.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  "$python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done
"$python" "$here/h2conformance.py" --port "$port" "$@"
