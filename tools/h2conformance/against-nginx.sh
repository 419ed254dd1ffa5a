#!/usr/bin/env bash
# Runs h2conformance.py against nginx, the reference the suite was checked
# on: nginx (Debian nginx-light) in h2c prior-knowledge mode and, with
# --tls, over TLS with ALPN h2, proxying to a second nginx server block (so
# that it reads request bodies, as a gateway does). Everything lives in a
# temporary directory and on free loopback ports; nginx runs as this user's
# own process and is stopped at exit. Arguments go to the suite.
#   tools/h2conformance/against-nginx.sh [--tls] [suite options...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-$here/../../target/test-venv/bin/python}"
command -v nginx >/dev/null || { echo "nginx is missing: apt-get install -y nginx-light" >&2; exit 2; }
dir="$(mktemp -d)"
chmod 755 "$dir"  # nginx's workers may run as another user
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
h2c=$(free_port); tls=$(free_port); backend=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_buffer_size 1m;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fcgi;
  uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$h2c http2;
    location / { proxy_pass http://127.0.0.1:$backend; proxy_http_version 1.1; }
  }
  server {
    listen 127.0.0.1:$tls ssl http2;
    ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem;
    location / { proxy_pass http://127.0.0.1:$backend; proxy_http_version 1.1; }
  }
  server {
    listen 127.0.0.1:$backend;
    location / { return 200 "h2conformance response body: 0123456789abcdefghijklmnopqrstuvwxyz\n"; }
  }
}
CONF
nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>"$dir/stderr" &
pid=$!
for _ in $(seq 50); do
  "$python" -c "import socket; socket.create_connection(('127.0.0.1', $h2c), 0.2)" 2>/dev/null && break
  sleep 0.1
done
port=$h2c
for a in "$@"; do [ "$a" = "--tls" ] && port=$tls; done
"$python" "$here/h2conformance.py" --port "$port" "$@"
