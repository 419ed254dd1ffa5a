"""A scripted HTTP/2 client for ringgate's end-to-end tests (tests/tests/http2.rs).

Reads one JSON spec on stdin (first line), runs its steps on ONE connection
(h2c prior knowledge, or TLS with ALPN h2), and prints JSON lines on stdout:
`{"mark": NAME}` when a `mark` step runs (so the test can act at that point),
and finally `{"result": ...}` with every stream's outcome and what happened
to the connection. Further stdin lines are read by `wait_stdin` steps.

Spec:
  {"host": "127.0.0.1", "port": N, "tls": false, "ca": PATH, "server_name": NAME,
   "timeout": seconds (overall, default 30),
   "steps": [STEP, ...]}
Steps:
  {"op": "request", "name": N, "headers": [[k, v], ...], "body": TEXT | null,
   "body_len": BYTES (pattern body instead of TEXT), "chunk": BYTES (DATA size),
   "wait": true (wait for the stream to finish, default true)}
     Headers are sent exactly as given (no validation, no normalisation),
     pseudo-headers included: the test writes :method, :scheme, :path,
     :authority itself. Without a body the HEADERS frame ends the stream.
  {"op": "wait", "name": N}            until the stream ends (response or reset)
  {"op": "wait_headers", "name": N}    until its response headers arrived
  {"op": "reset", "name": N, "code": 8}  RST_STREAM (8 = CANCEL)
  {"op": "mark", "name": TEXT}          prints {"mark": TEXT}
  {"op": "wait_stdin"}                  until the test writes a line on stdin
  {"op": "wait_goaway"}                 until a GOAWAY arrives
  {"op": "wait_close"}                  until the server closes the connection
  {"op": "ping"}                        PING and wait for its ACK (a round trip)

Result: {"streams": {NAME: {"id", "status", "headers", "body" (latin-1 text),
         "body_len", "reset" (error code or null), "ended"}},
         "goaway": {"code", "last_stream_id"} | null, "closed": bool,
         "error": text | null}
Every wait is bounded by socket time-outs and an overall alarm.
"""

import json
import select
import signal
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


class Timeout(Exception):
    pass


def pattern(n):
    base = b"abcdefghijklmnopqrstuvwxyz"
    return (base * (n // len(base) + 1))[:n]


class Client:
    def __init__(self, spec):
        self.deadline = time.monotonic() + spec.get("timeout", 30)
        raw = socket.create_connection((spec["host"], spec["port"]), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if spec.get("tls"):
            ctx = ssl.create_default_context(cafile=spec["ca"])
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname=spec.get("server_name", "localhost"))
            if raw.selected_alpn_protocol() != "h2":
                raise RuntimeError("ALPN chose %r, not h2" % raw.selected_alpn_protocol())
        self.sock = raw
        self.closed = False
        self.inbuf = b""
        self.goaways = 0
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        # A large window: the tests read whole bodies without pacing.
        self.conn.increment_flow_control_window(16 * 1024 * 1024)
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16 * 1024 * 1024})
        self.flush()
        self.streams = {}  # name -> state
        self.by_id = {}  # stream id -> name
        self.goaway = None
        self.closed = False
        self.pings = 0
        self.pending = {}  # stream id -> remaining body bytes to send

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def check_deadline(self):
        if time.monotonic() > self.deadline:
            raise Timeout("overall time-out")

    def pump(self, timeout=0.5):
        """Reads what arrived (waits up to `timeout`) and handles the events."""
        self.check_deadline()
        if self.closed:
            time.sleep(0.01)
            return
        pending_tls = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not pending_tls:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            for st in self.streams.values():
                if not st["ended"]:
                    st["ended"] = True
                    st["cut"] = True
            return
        data = self.take_goaway(data)
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.error = "protocol error from the server: %s" % e
            self.closed = True
            return
        for ev in events:
            self.handle(ev)
        self.send_pending()
        self.flush()

    def take_goaway(self, data):
        """Passes h2 every frame but GOAWAY, which it records itself.

        On GOAWAY python-h2 closes its whole state machine and refuses the
        frames of the streams the server still completes (the point of a
        graceful GOAWAY), so the client keeps going on its own.
        """
        self.inbuf += data
        out = b""
        while len(self.inbuf) >= 9:
            length = int.from_bytes(self.inbuf[:3], "big")
            if len(self.inbuf) < 9 + length:
                break
            frame, self.inbuf = self.inbuf[: 9 + length], self.inbuf[9 + length:]
            if frame[3] == 0x7:
                payload = frame[9:]
                self.goaway = {
                    "code": int.from_bytes(payload[4:8], "big"),
                    "last_stream_id": int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF,
                }
                self.goaways += 1
            else:
                out += frame
        return out

    def handle(self, ev):
        name = self.by_id.get(getattr(ev, "stream_id", None))
        st = self.streams.get(name)
        if isinstance(ev, h2.events.ResponseReceived) or isinstance(ev, h2.events.InformationalResponseReceived):
            hdrs = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in ev.headers]
            status = int(dict(hdrs).get(":status", "0"))
            if st is not None and status >= 200:
                st["status"] = status
                st["headers"] = hdrs
        elif isinstance(ev, h2.events.TrailersReceived):
            if st is not None:
                st["trailers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in ev.headers]
        elif isinstance(ev, h2.events.DataReceived):
            if st is not None:
                st["body"] += ev.data
            if ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            if st is not None:
                st["ended"] = True
            self.pending.pop(ev.stream_id, None)
        elif isinstance(ev, h2.events.StreamReset):
            if st is not None:
                st["reset"] = int(ev.error_code)
                st["ended"] = True
            self.pending.pop(ev.stream_id, None)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = {"code": int(ev.error_code), "last_stream_id": ev.last_stream_id}
        elif isinstance(ev, h2.events.PingAckReceived):
            self.pings += 1

    def send_pending(self):
        """Sends request body bytes as far as flow control lets."""
        for sid in list(self.pending):
            body, chunk = self.pending[sid]
            while body:
                try:
                    window = self.conn.local_flow_control_window(sid)
                except (h2.exceptions.StreamClosedError, KeyError):
                    window = -1
                if window < 0:
                    self.pending.pop(sid, None)
                    body = b""
                    break
                n = min(window, chunk, self.conn.max_outbound_frame_size, len(body))
                if n <= 0:
                    break
                try:
                    self.conn.send_data(sid, body[:n])
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                    self.pending.pop(sid, None)
                    body = b""
                    break
                body = body[n:]
                self.flush()
            if sid in self.pending:
                if body:
                    self.pending[sid] = (body, chunk)
                else:
                    del self.pending[sid]
                    try:
                        self.conn.end_stream(sid)
                    except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                        pass
        self.flush()

    def until(self, cond):
        while not cond():
            if self.closed and not cond():
                return False
            self.pump()
        return True

    def request(self, step):
        sid = self.conn.get_next_available_stream_id()
        name = step.get("name", str(sid))
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in step["headers"]]
        if step.get("body_len") is not None:
            body = pattern(step["body_len"])
        elif step.get("body") is not None:
            body = step["body"].encode("latin-1")
        else:
            body = None
        self.streams[name] = {
            "id": sid, "status": None, "headers": [], "body": b"", "reset": None, "ended": False, "cut": False,
        }
        self.by_id[sid] = name
        self.conn.send_headers(sid, headers, end_stream=body is None)
        self.flush()
        if body is not None:
            self.pending[sid] = (body, step.get("chunk", 16384))
            self.send_pending()
        if step.get("wait", True):
            self.until(lambda: self.streams[name]["ended"])

    def run(self, steps):
        for step in steps:
            op = step["op"]
            if op == "request":
                self.request(step)
            elif op == "wait":
                self.until(lambda: self.streams[step["name"]]["ended"])
            elif op == "wait_headers":
                st = self.streams[step["name"]]
                self.until(lambda: st["status"] is not None or st["ended"])
            elif op == "reset":
                sid = self.streams[step["name"]]["id"]
                self.pending.pop(sid, None)
                self.conn.reset_stream(sid, error_code=step.get("code", 8))
                self.streams[step["name"]]["ended"] = True
                self.streams[step["name"]]["reset_by_client"] = True
                self.flush()
            elif op == "mark":
                print(json.dumps({"mark": step["name"]}), flush=True)
            elif op == "wait_stdin":
                while True:
                    self.check_deadline()
                    # Keep the connection serviced while waiting.
                    r, _, _ = select.select([sys.stdin], [], [], 0.05)
                    if r:
                        sys.stdin.readline()
                        break
                    if not self.closed:
                        self.pump(0.05)
            elif op == "wait_goaway":
                self.until(lambda: self.goaway is not None)
            elif op == "wait_close":
                while not self.closed:
                    self.pump()
            elif op == "ping":
                want = self.pings + 1
                self.conn.ping(b"rgtest!!")
                self.flush()
                self.until(lambda: self.pings >= want)
            else:
                raise ValueError("unknown op %r" % op)

    def result(self, error=None):
        streams = {}
        for name, st in self.streams.items():
            streams[name] = {
                "id": st["id"],
                "status": st["status"],
                "headers": st["headers"],
                "body": st["body"].decode("latin-1"),
                "body_len": len(st["body"]),
                "reset": st["reset"],
                "ended": st["ended"],
                "cut": st["cut"],
            }
        return {"streams": streams, "goaway": self.goaway, "closed": self.closed,
                "error": error or getattr(self, "error", None)}


def main():
    spec = json.loads(sys.stdin.readline())
    total = int(spec.get("timeout", 30))

    def on_alarm(signum, frame):
        raise Timeout("alarm: the script ran past %d s" % (total + 5))

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(total + 5)
    client = None
    try:
        client = Client(spec)
        client.run(spec["steps"])
        print(json.dumps({"result": client.result()}), flush=True)
    except Exception as e:  # reported to the test, which fails with it
        err = "%s: %s" % (type(e).__name__, e)
        res = client.result(err) if client else {"streams": {}, "goaway": None, "closed": True, "error": err}
        print(json.dumps({"result": res}), flush=True)


if __name__ == "__main__":
    main()
