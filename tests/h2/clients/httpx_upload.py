"""httpx over TLS with HTTP/2 for ringgate's end-to-end tests (tests/tests/http2.rs).

Usage: httpx_upload.py BASE_URL CA_PEM
Runs on one client (one connection): a GET, a POST of 1 MiB with
Content-Length, and a streamed POST (a generator body, so no Content-Length)
of 300 000 bytes sent in uneven pieces, both to /echo. Prints one JSON object:
for each exchange the HTTP version, status, body length and SHA-256, and the
SHA-256 of what was sent. Hard time-outs: httpx's own and an overall alarm.
"""

import hashlib
import json
import signal
import ssl
import sys

import httpx


def on_alarm(signum, frame):
    raise SystemExit("httpx_upload.py: overall time-out")


def pattern(n):
    base = b"abcdefghijklmnopqrstuvwxyz"
    return (base * (n // len(base) + 1))[:n]


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(60)
    base, ca = sys.argv[1], sys.argv[2]
    ctx = ssl.create_default_context(cafile=ca)
    out = {}
    big = pattern(1024 * 1024)
    streamed_parts = [pattern(n) for n in (1, 4095, 70000, 16384, 209520)]
    streamed = b"".join(streamed_parts)

    def gen():
        for p in streamed_parts:
            yield p

    def describe(r, sent=None):
        d = {
            "version": r.http_version,
            "status": r.status_code,
            "body_len": len(r.content),
            "body_sha": hashlib.sha256(r.content).hexdigest(),
            "x_request_body_bytes": r.headers.get("x-request-body-bytes"),
            "text": r.text if len(r.content) < 200 else None,
        }
        if sent is not None:
            d["sent_len"] = len(sent)
            d["sent_sha"] = hashlib.sha256(sent).hexdigest()
        return d

    with httpx.Client(http2=True, http1=False, verify=ctx, timeout=20.0,
                      limits=httpx.Limits(max_connections=1)) as c:
        out["get"] = describe(c.get(base + "/hello"))
        out["post"] = describe(c.post(base + "/echo?kind=sized", content=big), big)
        out["streamed"] = describe(c.post(base + "/echo?kind=streamed", content=gen()), streamed)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
