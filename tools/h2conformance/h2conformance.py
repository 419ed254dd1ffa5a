#!/usr/bin/env python3
"""An HTTP/2 server conformance suite, modelled on h2spec's test list.

Speaks HTTP/2 by hand (frames are built byte by byte, so that malformed ones
can be sent) over cleartext prior knowledge (h2c) or TLS with ALPN h2, and
checks the server's answer to each case against RFC 9113 (HTTP/2) and
RFC 7541 (HPACK). Case identifiers follow h2spec's (RFC 7540 section
numbers); cases h2spec does not have are marked "+" in the README's table.

Needs the PyPI package `hpack` (installed with `h2`) to decode the server's
header blocks; request header blocks are encoded here.

Output: one line per case, in order,
    PASS|FAIL|SKIP <section> <id> <description> [<reason>]
(SKIP: the case cannot apply to this server, e.g. no frame can exceed a
SETTINGS_MAX_FRAME_SIZE of 2^24-1), then a summary line; with --json, one
JSON document instead. Exit status 0 when no case failed, 1 otherwise, 2 on
a usage error. See README.md for how answers are scored.

Every wait is bounded (--timeout per expected answer), cases run on
--jobs connections at once, and --deadline bounds the whole run: cases not
finished by then are reported FAIL.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

try:
    import hpack
except ImportError:  # pragma: no cover - reported to the user
    sys.stderr.write("h2conformance: the Python package 'hpack' (pip install h2) is required\n")
    sys.exit(2)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = {
    DATA: "DATA", HEADERS: "HEADERS", PRIORITY: "PRIORITY", RST_STREAM: "RST_STREAM", SETTINGS: "SETTINGS",
    PUSH_PROMISE: "PUSH_PROMISE", PING: "PING", GOAWAY: "GOAWAY", WINDOW_UPDATE: "WINDOW_UPDATE",
    CONTINUATION: "CONTINUATION",
}
# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# Settings.
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = (
    1, 2, 3, 4, 5, 6)
# Error codes (RFC 9113 section 7).
ERRORS = [
    "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
    "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
]
(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR,
 REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM, INADEQUATE_SECURITY,
 HTTP_1_1_REQUIRED) = range(14)


def err_name(code: int) -> str:
    return ERRORS[code] if 0 <= code < len(ERRORS) else f"0x{code:x}"


def codes_text(codes) -> str:
    return " or ".join(err_name(c) for c in codes)


class Fail(Exception):
    """The case failed; the message is the reason."""


class Skip(Exception):
    """The case does not apply to this server (the message says why)."""


# ---------------------------------------------------------------------------
# Wire encoding.

def frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame; `stream` may carry the reserved bit; the length is the payload's."""
    assert len(payload) < 1 << 24, "a frame payload is at most 2^24-1 bytes"
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def settings_payload(settings) -> bytes:
    return b"".join(struct.pack(">HI", k, v) for k, v in settings)


def hp_int(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 section 5.1) with `first` holding the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def as_bytes(s) -> bytes:
    return s if isinstance(s, bytes) else s.encode("latin-1")


def hp_str(s) -> bytes:
    b = as_bytes(s)
    return hp_int(len(b), 7, 0x00) + b


def lit(name, value, kind: int = 0x00) -> bytes:
    """Literal field with a literal name: 0x00 without indexing, 0x10 never indexed, 0x40 incremental."""
    return bytes([kind]) + hp_str(name) + hp_str(value)


def lit_name_index(index: int, value, kind: int = 0x00) -> bytes:
    bits = 6 if kind == 0x40 else 4
    return hp_int(index, bits, kind) + hp_str(value)


def indexed(index: int) -> bytes:
    return hp_int(index, 7, 0x80)


def size_update(size: int) -> bytes:
    return hp_int(size, 5, 0x20)


def block(headers) -> bytes:
    """A header block of literals without indexing, names as given (no lowercasing)."""
    return b"".join(lit(n, v) for n, v in headers)


# ---------------------------------------------------------------------------
# The connection.

@dataclass
class Frame:
    type: int
    flags: int
    stream: int
    payload: bytes
    # Set on the frame that ends a header block (HEADERS or CONTINUATION).
    headers: Optional[list] = None
    decode_error: Optional[str] = None
    block_end_stream: bool = False

    def name(self) -> str:
        return FRAME_NAMES.get(self.type, f"type 0x{self.type:x}")

    def code(self) -> int:
        """The error code of RST_STREAM or GOAWAY."""
        if self.type == RST_STREAM and len(self.payload) >= 4:
            return struct.unpack(">I", self.payload[:4])[0]
        if self.type == GOAWAY and len(self.payload) >= 8:
            return struct.unpack(">I", self.payload[4:8])[0]
        return -1

    def last_stream(self) -> int:
        return struct.unpack(">I", self.payload[:4])[0] & 0x7FFFFFFF if len(self.payload) >= 4 else -1

    def data(self) -> bytes:
        """A DATA frame's payload without padding."""
        p = self.payload
        if self.flags & PADDED and p:
            return p[1:len(p) - p[0]]
        return p

    def summary(self) -> str:
        s = f"{self.name()}(stream {self.stream}"
        if self.type in (RST_STREAM, GOAWAY):
            s += f", {err_name(self.code())}"
            if self.type == GOAWAY:
                s += f", last {self.last_stream()}"
                debug = self.payload[8:]
                if debug:
                    s += f", {debug[:60].decode('utf-8', 'replace')!r}"
        elif self.type == DATA:
            s += f", {len(self.payload)} bytes"
        elif self.headers is not None:
            status = dict(self.headers).get(":status")
            if status:
                s += f", :status {status}"
        elif self.decode_error:
            s += f", undecodable: {self.decode_error}"
        if self.type in (DATA, HEADERS) and self.flags & END_STREAM:
            s += ", END_STREAM"
        if self.type in (SETTINGS, PING) and self.flags & ACK:
            s += ", ACK"
        return s + ")"


@dataclass
class Response:
    status: int
    headers: list
    body: bytearray = field(default_factory=bytearray)
    data_frames: list = field(default_factory=list)


class Event:
    TIMEOUT = "timeout"
    CLOSED = "closed"


@dataclass
class Config:
    host: str
    port: int
    tls: bool
    authority: str
    path: str
    timeout: float
    server_name: Optional[str] = None
    lenient_malformed: bool = False
    h2spec_scoring: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


class Conn:
    """One client connection, with a frame reader that keeps HPACK state."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        try:
            sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout)
        except OSError as e:
            raise Fail(f"cannot connect to {cfg.host}:{cfg.port}: {e}")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if cfg.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            try:
                sock = ctx.wrap_socket(sock, server_hostname=cfg.server_name or cfg.host)
            except (OSError, ssl.SSLError) as e:
                raise Fail(f"TLS handshake failed: {e}")
            if sock.selected_alpn_protocol() != "h2":
                raise Fail(f"ALPN chose {sock.selected_alpn_protocol()!r}, not h2")
        self.sock = sock
        self.buf = b""
        self.closed = False
        self.close_reason = ""
        self.decoder = hpack.Decoder()
        self.pending = None  # (first frame, [fragments]) of an unfinished header block
        self.server_settings: dict = {}
        self.received: list = []  # summaries of every frame received
        self.raw_start = b""  # the first bytes received, for non-HTTP/2 answers
        self.frames_seen = 0
        self.final_status: dict = {}  # stream -> the last :status received
        self.ended: set = set()  # streams the server ended with END_STREAM
        self.responses: dict = {}  # stream -> Response being received (final status, body)
        self.resets: dict = {}  # stream -> the RST_STREAM received on it
        self.goaway: Optional[Frame] = None

    # -- sending

    def send(self, data: bytes) -> None:
        """Writes; a write error is not raised (the server may have closed on purpose): reads will tell."""
        if self.closed:
            return
        try:
            self.sock.settimeout(self.cfg.timeout)
            self.sock.sendall(data)
        except (OSError, ssl.SSLError):
            pass

    def send_frame(self, ftype: int, flags: int, stream: int, payload: bytes = b"") -> None:
        self.send(frame(ftype, flags, stream, payload))

    def headers(self, stream: int, hblock: bytes, end_stream: bool = True, end_headers: bool = True) -> None:
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        self.send_frame(HEADERS, flags, stream, hblock)

    def data(self, stream: int, payload: bytes, end_stream: bool = True) -> None:
        self.send_frame(DATA, END_STREAM if end_stream else 0, stream, payload)

    def settings(self, settings=()) -> None:
        self.send_frame(SETTINGS, 0, 0, settings_payload(settings))

    def ping(self, payload: bytes = b"h2spec!!", ack: bool = False) -> None:
        self.send_frame(PING, ACK if ack else 0, 0, payload)

    def window_update(self, stream: int, increment: int) -> None:
        self.send_frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))

    def rst(self, stream: int, code: int) -> None:
        self.send_frame(RST_STREAM, 0, stream, struct.pack(">I", code))

    def priority(self, stream: int, depends_on: int = 0, weight: int = 15, exclusive: bool = False) -> None:
        dep = depends_on | (0x80000000 if exclusive else 0)
        self.send_frame(PRIORITY, 0, stream, struct.pack(">IB", dep, weight))

    # -- receiving

    def next_event(self, deadline: float):
        """The next Frame, or Event.TIMEOUT at `deadline`, or Event.CLOSED."""
        while True:
            f = self._parse()
            if f is not None:
                return f
            if self.closed:
                return Event.CLOSED
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Event.TIMEOUT
            try:
                self.sock.settimeout(remaining)
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return Event.TIMEOUT
            except ssl.SSLWantReadError:
                continue
            except (OSError, ssl.SSLError) as e:
                self.closed = True
                self.close_reason = f"{type(e).__name__}: {e}"
                continue
            if not chunk:
                self.closed = True
                self.close_reason = "EOF"
                continue
            if len(self.raw_start) < 256:
                self.raw_start += chunk[:256 - len(self.raw_start)]
            self.buf += chunk

    def _parse(self) -> Optional[Frame]:
        if self.frames_seen == 0 and self.buf[:5] == b"HTTP/":
            # Not HTTP/2 at all: report it once as a closed connection.
            self.closed = True
            self.close_reason = "answered in HTTP/1: " + self.buf.split(b"\r\n", 1)[0].decode("latin-1", "replace")
            self.buf = b""
            return None
        if len(self.buf) < 9:
            return None
        length = int.from_bytes(self.buf[:3], "big")
        if len(self.buf) < 9 + length:
            return None
        ftype, flags = self.buf[3], self.buf[4]
        stream = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
        payload = self.buf[9:9 + length]
        self.buf = self.buf[9 + length:]
        self.frames_seen += 1
        f = Frame(ftype, flags, stream, payload)
        self._on_frame(f)
        st = ""
        if f.headers is not None:
            st = dict(f.headers).get(":status", "")
            if st.isdigit():
                self.final_status[stream] = int(st)
        if f.headers is not None and st.isdigit() and int(st) >= 200 and stream not in self.responses:
            self.responses[stream] = Response(int(st), f.headers)
        if ftype == DATA and stream in self.responses and stream not in self.ended:
            r = self.responses[stream]
            r.body += f.data()
            r.data_frames.append(len(payload))
        if (ftype == DATA and flags & END_STREAM) or (f.headers is not None and f.block_end_stream):
            self.ended.add(stream)
        if ftype == RST_STREAM:
            self.resets.setdefault(stream, f)
        if ftype == GOAWAY and self.goaway is None:
            self.goaway = f
        self.received.append(f.summary())
        return f

    def _decode(self, fragment: bytes, f: Frame) -> None:
        try:
            f.headers = [(as_str(n), as_str(v)) for n, v in self.decoder.decode(fragment, raw=True)]
        except Exception as e:  # noqa: BLE001 - any decoding failure is the server's
            f.decode_error = f"{type(e).__name__}: {e}"

    def _on_frame(self, f: Frame) -> None:
        if f.type in (HEADERS, PUSH_PROMISE):
            p = f.payload
            pad = 0
            if f.flags & PADDED and p:
                pad, p = p[0], p[1:]
            if f.type == HEADERS and f.flags & PRIORITY_FLAG:
                p = p[5:]
            if f.type == PUSH_PROMISE:
                p = p[4:]
            fragment = p[:len(p) - pad] if pad else p
            if f.flags & END_HEADERS:
                f.block_end_stream = bool(f.flags & END_STREAM)
                self._decode(fragment, f)
            else:
                self.pending = (f, [fragment])
        elif f.type == CONTINUATION and self.pending is not None:
            self.pending[1].append(f.payload)
            if f.flags & END_HEADERS:
                first, frags = self.pending
                self.pending = None
                f.block_end_stream = bool(first.flags & END_STREAM)
                self._decode(b"".join(frags), f)
        elif f.type == SETTINGS and not f.flags & ACK:
            for i in range(0, len(f.payload) - len(f.payload) % 6, 6):
                k, v = struct.unpack(">HI", f.payload[i:i + 6])
                self.server_settings[k] = v
            self.send_frame(SETTINGS, ACK, 0)
        elif f.type == PING and not f.flags & ACK:
            self.send_frame(PING, ACK, 0, f.payload)

    def got(self) -> str:
        """What was received so far, for a reason."""
        items = self.received[-8:]
        more = len(self.received) - len(items)
        text = ", ".join(items) if items else "nothing"
        if more:
            text = f"... {more} more, " + text
        if self.closed:
            text += f"; then closed ({self.close_reason})"
        return text

    # -- the handshake

    def handshake(self, settings=(), wait_ack: bool = True) -> None:
        """Preface + SETTINGS; waits for the server's SETTINGS (the first frame) and its ACK of ours."""
        self.send(PREFACE + frame(SETTINGS, 0, 0, settings_payload(settings)))
        deadline = time.monotonic() + self.cfg.timeout
        got_settings = got_ack = False
        while not (got_settings and (got_ack or not wait_ack)):
            ev = self.next_event(deadline)
            if ev is Event.TIMEOUT:
                raise Fail(f"handshake: no SETTINGS{'/ACK' if got_settings else ''} from the server within "
                           f"{self.cfg.timeout:g} s; got {self.got()}")
            if ev is Event.CLOSED:
                raise Fail(f"handshake: connection closed; got {self.got()}")
            if self.frames_seen == 1 and not (ev.type == SETTINGS and not ev.flags & ACK):
                raise Fail(f"handshake: the server's first frame is {ev.summary()}, not SETTINGS")
            if ev.type == SETTINGS:
                if ev.flags & ACK:
                    got_ack = True
                else:
                    got_settings = True
            elif ev.type == GOAWAY:
                raise Fail(f"handshake: {ev.summary()}")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def as_str(b) -> str:
    return b.decode("latin-1") if isinstance(b, bytes) else b


# ---------------------------------------------------------------------------
# Verifications (each raises Fail or returns a note).

def _deadline(c: Conn, t: Optional[float] = None) -> float:
    return time.monotonic() + (c.cfg.timeout if t is None else t)


def wrong_goaway(c: Conn, goaway: Frame, codes) -> str:
    """A GOAWAY with another code than `codes` fails; with --h2spec-scoring, the close that follows it
    passes, as in h2spec (whose verifiers take any connection close as a pass)."""
    reason = f"GOAWAY({err_name(goaway.code())}), expected {codes_text(codes)}"
    if not c.cfg.h2spec_scoring:
        raise Fail(f"{reason}; got {c.got()}")
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.CLOSED:
            return f"{reason}, then closed (accepted with --h2spec-scoring)"
        if ev is Event.TIMEOUT:
            raise Fail(f"{reason}, and no close within {c.cfg.timeout:g} s; got {c.got()}")


def expect_connection_error(c: Conn, *codes: int) -> str:
    """GOAWAY with one of `codes`, or the connection closed (as h2spec accepts)."""
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            raise Fail(f"expected GOAWAY({codes_text(codes)}) or a close, none within {c.cfg.timeout:g} s; "
                       f"got {c.got()}")
        if ev is Event.CLOSED:
            return f"connection closed without GOAWAY ({c.close_reason})"
        if ev.type == GOAWAY:
            if ev.code() in codes:
                return f"GOAWAY({err_name(ev.code())})"
            return wrong_goaway(c, ev, codes)


def expect_stream_error(c: Conn, stream: Optional[int], *codes: int, conn_codes=None) -> str:
    """RST_STREAM on `stream` with one of `codes`, or GOAWAY with one of `codes` (a connection error is
    always allowed where a stream error is), or the connection closed. A response that ends the stream
    without RST_STREAM fails, as in h2spec."""
    conn_codes = codes if conn_codes is None else conn_codes
    deadline = _deadline(c)
    answered = None
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            if answered:
                raise Fail(f"{answered} instead of RST_STREAM({codes_text(codes)}); got {c.got()}")
            raise Fail(f"expected RST_STREAM({codes_text(codes)}) or GOAWAY, none within {c.cfg.timeout:g} s; "
                       f"got {c.got()}")
        if ev is Event.CLOSED:
            return f"connection closed without GOAWAY ({c.close_reason})"
        if ev.type == RST_STREAM and (stream is None or ev.stream == stream):
            if ev.code() in codes:
                return f"RST_STREAM({err_name(ev.code())})"
            # Another code: keep waiting (as h2spec does), it fails at the deadline.
            answered = answered or f"RST_STREAM({err_name(ev.code())})"
            deadline = min(deadline, time.monotonic() + min(0.5, c.cfg.timeout))
        if ev.type == GOAWAY:
            if ev.code() in conn_codes:
                return f"GOAWAY({err_name(ev.code())})"
            return wrong_goaway(c, ev, conn_codes)
        if stream is not None and ev.stream == stream:
            if ev.headers is not None and answered is None:
                answered = f"answered :status {dict(ev.headers).get(':status')}"
            ended = (ev.type == DATA and ev.flags & END_STREAM) or (ev.headers is not None and ev.block_end_stream)
            if ended:
                # The stream is closed: a RST_STREAM may still follow at once, nothing later.
                deadline = min(deadline, time.monotonic() + min(0.5, c.cfg.timeout))
                answered = (answered or "ended the stream") + " with END_STREAM"


def read_response(c: Conn, stream: int, ok_only: bool = True, t: Optional[float] = None) -> Response:
    """A whole response on `stream` (final status, body to END_STREAM); with ok_only, status < 400.
    Frames of other streams are kept by the connection, so responses can be read in any order."""
    deadline = _deadline(c, t)
    while True:
        if stream in c.resets:
            raise Fail(f"{c.resets[stream].summary()} instead of a response; got {c.got()}")
        if stream in c.ended:
            if stream not in c.responses:
                raise Fail(f"stream {stream} ended without a final response; got {c.got()}")
            break
        if c.goaway is not None:
            raise Fail(f"{c.goaway.summary()} instead of a response; got {c.got()}")
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            what = "no response" if stream not in c.responses else \
                f"response :status {c.responses[stream].status} not ended"
            raise Fail(f"{what} on stream {stream} within {c.cfg.timeout if t is None else t:g} s; got {c.got()}")
        if ev is Event.CLOSED:
            raise Fail(f"connection closed before the response on stream {stream} ended; got {c.got()}")
        if ev.stream == stream and ev.decode_error:
            raise Fail(f"cannot decode the response headers: {ev.decode_error}")
    r = c.responses[stream]
    if ok_only and r.status >= 400:
        raise Fail(f"answered :status {r.status} to a valid request")
    return r


def expect_headers(c: Conn, stream: int) -> Response:
    """The response's final HEADERS on `stream` (the body is not awaited)."""
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            raise Fail(f"no response HEADERS on stream {stream} within {c.cfg.timeout:g} s; got {c.got()}")
        if ev is Event.CLOSED or ev.type == GOAWAY or (ev.type == RST_STREAM and ev.stream == stream):
            raise Fail(f"no response HEADERS on stream {stream}; got {c.got()}")
        if ev.stream == stream and ev.decode_error:
            raise Fail(f"cannot decode the response headers: {ev.decode_error}")
        if ev.stream == stream and ev.headers is not None:
            st = dict(ev.headers).get(":status", "")
            if st.isdigit() and int(st) >= 200:
                if int(st) >= 400:
                    raise Fail(f"answered :status {st} to a valid request")
                return Response(int(st), ev.headers)
        if ev.stream == stream and ev.type == DATA:
            raise Fail("DATA before the response HEADERS")


_ping_counter = [0]
_ping_lock = threading.Lock()


def ping_payload() -> bytes:
    with _ping_lock:
        _ping_counter[0] += 1
        return struct.pack(">Q", 0x6832737065630000 + _ping_counter[0])


def expect_alive(c: Conn, what: str = "") -> str:
    """Sends a PING and waits for its ACK: the frames before it were accepted (or ignored), not a
    connection error."""
    payload = ping_payload()
    c.ping(payload)
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            raise Fail(f"no PING ACK within {c.cfg.timeout:g} s{what}; got {c.got()}")
        if ev is Event.CLOSED:
            raise Fail(f"connection closed{what}; got {c.got()}")
        if ev.type == GOAWAY:
            raise Fail(f"{ev.summary()}{what}; got {c.got()}")
        if ev.type == PING and ev.flags & ACK:
            if ev.payload == payload:
                return "PING ACK"
            raise Fail(f"PING ACK with payload {ev.payload!r}, sent {payload!r}")


def expect_settings_ack(c: Conn) -> str:
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            raise Fail(f"no SETTINGS ACK within {c.cfg.timeout:g} s; got {c.got()}")
        if ev is Event.CLOSED or ev.type == GOAWAY:
            raise Fail(f"no SETTINGS ACK; got {c.got()}")
        if ev.type == SETTINGS and ev.flags & ACK:
            if ev.payload:
                raise Fail(f"SETTINGS ACK with a {len(ev.payload)}-byte payload")
            return "SETTINGS ACK"


def expect_closed(c: Conn) -> str:
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            raise Fail(f"connection still open after {c.cfg.timeout:g} s; got {c.got()}")
        if ev is Event.CLOSED:
            return f"closed ({c.close_reason})"


def next_data(c: Conn, stream: int, t: Optional[float] = None, fail_on_end: bool = False) -> Frame:
    """The next non-empty DATA frame on `stream`."""
    deadline = _deadline(c, t)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            raise Fail(f"no DATA on stream {stream} within {c.cfg.timeout if t is None else t:g} s; got {c.got()}")
        if ev is Event.CLOSED or ev.type == GOAWAY or (ev.type == RST_STREAM and ev.stream == stream):
            raise Fail(f"no DATA on stream {stream}; got {c.got()}")
        if ev.stream == stream and ev.headers is not None and ev.block_end_stream:
            raise Fail(f"response on stream {stream} ended without a body; this case needs --path to answer "
                       f"at least 8 bytes")
        if ev.stream == stream and ev.type == DATA and ev.payload:
            return ev
        if ev.stream == stream and ev.type == DATA and ev.flags & END_STREAM:
            raise Fail(f"response body on stream {stream} too short for this case (--path must answer at "
                       f"least 8 bytes)")


# ---------------------------------------------------------------------------
# Cases.

@dataclass
class Case:
    section: str
    id: int
    description: str
    run: Callable
    extra: bool  # not in h2spec


CASES: list = []


def case(section: str, number: int, description: str, extra: bool = False):
    def register(fn):
        CASES.append(Case(section, number, description, fn, extra))
        return fn
    return register


class Ctx:
    """What a case gets: the configuration and a connection factory."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.conns: list = []

    def connect(self, handshake: bool = True, settings=(), wait_ack: bool = True) -> Conn:
        c = Conn(self.cfg)
        self.conns.append(c)
        if handshake:
            c.handshake(settings, wait_ack)
        return c

    def req(self, method: str = "GET", path: Optional[str] = None, extra=(), pseudo=None) -> list:
        """Request header fields; `pseudo` replaces the four pseudo-header fields."""
        if pseudo is None:
            pseudo = [(":method", method), (":scheme", self.cfg.scheme), (":path", path or self.cfg.path),
                      (":authority", self.cfg.authority)]
        return list(pseudo) + list(extra)

    def block(self, method: str = "GET", path: Optional[str] = None, extra=()) -> bytes:
        return block(self.req(method, path, extra))

    def close(self) -> None:
        for c in self.conns:
            c.close()


def get(ctx: Ctx, c: Conn, stream: int = 1, extra=()) -> None:
    c.headers(stream, ctx.block("GET", extra=extra))


def post_open(ctx: Ctx, c: Conn, stream: int = 1, extra=()) -> None:
    """A POST whose body is still to come: the stream stays open."""
    c.headers(stream, ctx.block("POST", extra=extra), end_stream=False)


def dummy_headers(total: int) -> list:
    """Regular fields adding up to about `total` bytes of header block."""
    out = []
    n = 0
    while total > 0:
        size = min(total, 4000)
        out.append((f"x-dummy{n}", "x" * size))
        total -= size + 12
        n += 1
    return out


# -- generic (h2spec "generic"): the server handles well-formed traffic.

@case("generic/1", 1, "Sends a client connection preface: the server answers with SETTINGS first")
def g_preface(ctx: Ctx):
    ctx.connect()
    return "SETTINGS, then SETTINGS ACK"


@case("generic/2", 1, "Sends a PRIORITY frame on an idle stream, then HEADERS on it")
def g_priority_idle(ctx: Ctx):
    c = ctx.connect()
    c.priority(1, 0, 255)
    get(ctx, c)
    r = read_response(c, 1)
    return f":status {r.status}"


@case("generic/2", 2, "Sends a WINDOW_UPDATE frame on a half-closed (remote) stream")
def g_wu_half_closed(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    c.window_update(1, 100)
    r = read_response(c, 1)
    expect_alive(c)
    return f":status {r.status}"


@case("generic/2", 3, "Sends a PRIORITY frame on a half-closed (remote) stream")
def g_priority_half_closed(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    c.priority(1, 0, 255)
    r = read_response(c, 1)
    return f":status {r.status}"


@case("generic/2", 4, "Sends a RST_STREAM frame on a half-closed (remote) stream")
def g_rst_half_closed(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    c.rst(1, CANCEL)
    return expect_alive(c)


@case("generic/2", 5, "Sends a PRIORITY frame on a closed stream")
def g_priority_closed(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    read_response(c, 1)
    c.priority(1, 0, 255)
    return expect_alive(c)


@case("generic/3.1", 1, "Sends a DATA frame (POST with a body)")
def g_data(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.data(1, b"test")
    return f":status {read_response(c, 1).status}"


@case("generic/3.1", 2, "Sends multiple DATA frames")
def g_data_multi(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.data(1, b"test", end_stream=False)
    c.data(1, b"test", end_stream=False)
    c.data(1, b"test")
    return f":status {read_response(c, 1).status}"


@case("generic/3.1", 3, "Sends a DATA frame with padding")
def g_data_padded(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.send_frame(DATA, END_STREAM | PADDED, 1, bytes([8]) + b"test" + b"\0" * 8)
    return f":status {read_response(c, 1).status}"


@case("generic/3.1", 4, "Sends a POST with a matching content-length", extra=True)
def g_post_cl(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c, extra=[("content-length", "8")])
    c.data(1, b"test", end_stream=False)
    c.data(1, b"test")
    return f":status {read_response(c, 1).status}"


@case("generic/3.1", 5, "Sends an empty DATA frame with END_STREAM after HEADERS", extra=True)
def g_empty_data(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.data(1, b"")
    return f":status {read_response(c, 1).status}"


@case("generic/3.2", 1, "Sends a HEADERS frame (GET)")
def g_headers(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    return f":status {read_response(c, 1).status}"


@case("generic/3.2", 2, "Sends a HEADERS frame with padding")
def g_headers_padded(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.send_frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1, bytes([8]) + hb + b"\0" * 8)
    return f":status {read_response(c, 1).status}"


@case("generic/3.2", 3, "Sends a HEADERS frame with priority")
def g_headers_priority(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.send_frame(HEADERS, END_STREAM | END_HEADERS | PRIORITY_FLAG, 1, struct.pack(">IB", 0, 255) + hb)
    return f":status {read_response(c, 1).status}"


@case("generic/3.2", 4, "Sends a HEAD request: no body in the response", extra=True)
def g_head(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block("HEAD"))
    r = read_response(c, 1)
    if r.body:
        raise Fail(f"response to HEAD carries {len(r.body)} bytes of DATA")
    return f":status {r.status}"


@case("generic/3.3", 1, "Sends a PRIORITY frame with priority 1")
def g_priority_1(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    c.priority(1, 0, 0)
    return f":status {read_response(c, 1).status}"


@case("generic/3.3", 2, "Sends a PRIORITY frame with priority 256")
def g_priority_256(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    c.priority(1, 0, 255)
    return f":status {read_response(c, 1).status}"


@case("generic/3.3", 3, "Sends a PRIORITY frame with stream dependency")
def g_priority_dep(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c, 1)
    get(ctx, c, 3)
    c.priority(3, 1, 100, exclusive=True)
    read_response(c, 1)
    return f":status {read_response(c, 3).status}"


@case("generic/3.4", 1, "Sends a RST_STREAM frame on an open stream")
def g_rst(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.rst(1, CANCEL)
    return expect_alive(c)


@case("generic/3.5", 1, "Sends a SETTINGS frame with the defined parameters")
def g_settings(ctx: Ctx):
    c = ctx.connect()
    c.settings([(HEADER_TABLE_SIZE, 4096), (ENABLE_PUSH, 0), (MAX_CONCURRENT_STREAMS, 100),
                (INITIAL_WINDOW_SIZE, 65535), (MAX_FRAME_SIZE, 16384), (MAX_HEADER_LIST_SIZE, 65536)])
    return expect_settings_ack(c)


@case("generic/3.7", 1, "Sends a PING frame")
def g_ping(ctx: Ctx):
    return expect_alive(ctx.connect())


@case("generic/3.8", 1, "Sends a GOAWAY frame: no error in return")
def g_goaway(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(GOAWAY, 0, 0, struct.pack(">II", 0, NO_ERROR))
    payload = ping_payload()
    c.ping(payload)
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            raise Fail(f"neither PING ACK nor a close within {c.cfg.timeout:g} s; got {c.got()}")
        if ev is Event.CLOSED:
            return "connection closed"
        if ev.type == GOAWAY and ev.code() != NO_ERROR:
            raise Fail(f"{ev.summary()} in answer to a GOAWAY(NO_ERROR)")
        if ev.type == PING and ev.flags & ACK:
            return "PING ACK"


@case("generic/3.9", 1, "Sends a WINDOW_UPDATE frame on the connection")
def g_wu_conn(ctx: Ctx):
    c = ctx.connect()
    c.window_update(0, 1)
    return expect_alive(c)


@case("generic/3.9", 2, "Sends a WINDOW_UPDATE frame on a stream")
def g_wu_stream(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    c.window_update(1, 1)
    return f":status {read_response(c, 1).status}"


@case("generic/3.10", 1, "Sends a CONTINUATION frame")
def g_continuation(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.headers(1, hb[:10], end_headers=False)
    c.send_frame(CONTINUATION, END_HEADERS, 1, hb[10:])
    return f":status {read_response(c, 1).status}"


@case("generic/3.10", 2, "Sends multiple CONTINUATION frames")
def g_continuation_multi(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block(extra=dummy_headers(3000))
    c.headers(1, hb[:1000], end_headers=False)
    c.send_frame(CONTINUATION, 0, 1, hb[1000:2000])
    c.send_frame(CONTINUATION, 0, 1, hb[2000:2500])
    c.send_frame(CONTINUATION, END_HEADERS, 1, hb[2500:])
    return f":status {read_response(c, 1).status}"


@case("generic/4", 1, "Sends a POST request with trailers")
def g_trailers(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c, extra=[("te", "trailers")])
    c.data(1, b"test", end_stream=False)
    c.headers(1, block([("x-trailer", "done")]), end_stream=True)
    return f":status {read_response(c, 1).status}"


@case("generic/4", 2, "Sends two requests on concurrent streams", extra=True)
def g_concurrent(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c, 1)
    get(ctx, c, 3)
    a = read_response(c, 1)
    b = read_response(c, 3)
    return f":status {a.status}, {b.status}"


@case("generic/4", 3, "Sends three requests one after the other on one connection", extra=True)
def g_sequential(ctx: Ctx):
    c = ctx.connect()
    out = []
    for sid in (1, 3, 5):
        get(ctx, c, sid)
        out.append(str(read_response(c, sid).status))
    return ":status " + ", ".join(out)


@case("generic/5", 1, "Sends an indexed header field representation (static table)")
def g_hpack_indexed(ctx: Ctx):
    c = ctx.connect()
    hb = indexed(2) + indexed(6 if not ctx.cfg.tls else 7) + lit_name_index(4, ctx.cfg.path) \
        + lit_name_index(1, ctx.cfg.authority)
    c.headers(1, hb)
    return f":status {read_response(c, 1).status}"


@case("generic/5", 2, "Sends literal header fields with incremental indexing, then uses the dynamic table")
def g_hpack_incremental(ctx: Ctx):
    c = ctx.connect()
    hb = indexed(2) + indexed(6 if not ctx.cfg.tls else 7) + lit_name_index(4, ctx.cfg.path, 0x40) \
        + lit_name_index(1, ctx.cfg.authority, 0x40) + lit("x-indexed", "yes", 0x40)
    c.headers(1, hb)
    read_response(c, 1)
    # Dynamic table now: 62 x-indexed, 63 :authority, 64 :path.
    c.headers(3, indexed(2) + indexed(6 if not ctx.cfg.tls else 7) + indexed(64) + indexed(63) + indexed(62))
    return f":status {read_response(c, 3).status}"


@case("generic/5", 3, "Sends literal header fields without indexing")
def g_hpack_without(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block(extra=[("x-plain", "1")]))
    return f":status {read_response(c, 1).status}"


@case("generic/5", 4, "Sends literal header fields never indexed")
def g_hpack_never(ctx: Ctx):
    c = ctx.connect()
    hb = b"".join(lit(n, v, 0x10) for n, v in ctx.req(extra=[("x-secret", "1")]))
    c.headers(1, hb)
    return f":status {read_response(c, 1).status}"


@case("generic/5", 5, "Sends a dynamic table size update at the start of a header block")
def g_hpack_size_update(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, size_update(100) + ctx.block())
    return f":status {read_response(c, 1).status}"


@case("generic/5", 6, "Sends Huffman-encoded header fields")
def g_hpack_huffman(ctx: Ctx):
    c = ctx.connect()
    enc = hpack.Encoder()
    c.headers(1, enc.encode(ctx.req(extra=[("x-huffman", "huffman-encoded value")]), huffman=True))
    return f":status {read_response(c, 1).status}"


@case("generic/5", 7, "Sends two dynamic table size updates at the start of a header block", extra=True)
def g_hpack_two_updates(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, size_update(0) + size_update(4096) + ctx.block())
    return f":status {read_response(c, 1).status}"


# -- 3.5 HTTP/2 connection preface

@case("http2/3.5", 1, "Sends a client connection preface: the server sends SETTINGS")
def t_3_5_1(ctx: Ctx):
    ctx.connect()
    return "SETTINGS"


@case("http2/3.5", 2, "Sends an invalid connection preface: connection error")
def t_3_5_2(ctx: Ctx):
    c = ctx.connect(handshake=False)
    c.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/3.5", 3, "Sends a preface whose second half is wrong (PRI * HTTP/2.0, then not SM): connection error",
      extra=True)
def t_3_5_3(ctx: Ctx):
    c = ctx.connect(handshake=False)
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + frame(SETTINGS, 0, 0))
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/3.5", 4, "Sends the preface followed by a PING instead of SETTINGS: PROTOCOL_ERROR", extra=True)
def t_3_5_4(ctx: Ctx):
    c = ctx.connect(handshake=False)
    c.send(PREFACE + frame(PING, 0, 0, b"\0" * 8))
    return expect_connection_error(c, PROTOCOL_ERROR)


# -- 4.1 Frame format

@case("http2/4.1", 1, "Sends a frame with an unknown type: ignored")
def t_4_1_1(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(0x16, 0, 0, b"\0" * 8)
    return expect_alive(c)


@case("http2/4.1", 2, "Sends a frame with undefined flags: ignored")
def t_4_1_2(ctx: Ctx):
    c = ctx.connect()
    payload = ping_payload()
    c.send_frame(PING, 0x16, 0, payload)
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT or ev is Event.CLOSED or ev.type == GOAWAY:
            raise Fail(f"no PING ACK for a PING with undefined flags; got {c.got()}")
        if ev.type == PING and ev.flags & ACK and ev.payload == payload:
            return "PING ACK"


@case("http2/4.1", 3, "Sends a frame with the reserved bit set: ignored")
def t_4_1_3(ctx: Ctx):
    c = ctx.connect()
    payload = ping_payload()
    c.send_frame(PING, 0, 0x80000000, payload)
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT or ev is Event.CLOSED or ev.type == GOAWAY:
            raise Fail(f"no PING ACK for a PING with the reserved bit set; got {c.got()}")
        if ev.type == PING and ev.flags & ACK and ev.payload == payload:
            return "PING ACK"


@case("http2/4.1", 4, "Sends HEADERS with the reserved bit set in the stream id: served", extra=True)
def t_4_1_4(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(HEADERS, END_STREAM | END_HEADERS, 0x80000001, ctx.block())
    return f":status {read_response(c, 1).status}"


# -- 4.2 Frame size

def oversized(c: Conn) -> int:
    """One byte more than the server's SETTINGS_MAX_FRAME_SIZE."""
    limit = c.server_settings.get(MAX_FRAME_SIZE, 16384)
    if limit >= (1 << 24) - 6:
        raise Skip(f"the server's SETTINGS_MAX_FRAME_SIZE is {limit}: no frame can exceed it")
    return limit + 1

@case("http2/4.2", 1, "Sends a DATA frame with 2^14 octets in length")
def t_4_2_1(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.data(1, b"x" * 16384)
    return f":status {read_response(c, 1).status}"


@case("http2/4.2", 2, "Sends a DATA frame larger than SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR")
def t_4_2_2(ctx: Ctx):
    c = ctx.connect()
    size = oversized(c)
    post_open(ctx, c)
    c.data(1, b"x" * size)
    return expect_stream_error(c, 1, FRAME_SIZE_ERROR)


@case("http2/4.2", 3, "Sends a HEADERS frame larger than SETTINGS_MAX_FRAME_SIZE: connection error FRAME_SIZE_ERROR")
def t_4_2_3(ctx: Ctx):
    c = ctx.connect()
    size = oversized(c)
    hb = ctx.block(extra=dummy_headers(size))
    c.headers(1, hb)
    return expect_connection_error(c, FRAME_SIZE_ERROR)


@case("http2/4.2", 4, "Sends a SETTINGS frame larger than SETTINGS_MAX_FRAME_SIZE: connection error FRAME_SIZE_ERROR",
      extra=True)
def t_4_2_4(ctx: Ctx):
    c = ctx.connect()
    size = oversized(c) + 5
    size -= size % 6
    c.send_frame(SETTINGS, 0, 0, struct.pack(">HI", 0x99, 0) * (size // 6))
    return expect_connection_error(c, FRAME_SIZE_ERROR)


# -- 4.3 Header compression and decompression

@case("http2/4.3", 1, "Sends an invalid header block fragment: connection error COMPRESSION_ERROR")
def t_4_3_1(ctx: Ctx):
    c = ctx.connect()
    # A lone literal-with-incremental-indexing prefix: the representation is truncated.
    c.headers(1, b"\x40")
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("http2/4.3", 2, "Sends a PRIORITY frame while sending the header blocks: connection error PROTOCOL_ERROR")
def t_4_3_2(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.headers(1, hb[:10], end_headers=False)
    c.priority(1, 0, 255)
    c.send_frame(CONTINUATION, END_HEADERS, 1, hb[10:])
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/4.3", 3, "Sends a HEADERS frame to another stream while sending the header blocks: PROTOCOL_ERROR")
def t_4_3_3(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.headers(1, hb[:10], end_headers=False)
    c.headers(3, hb)
    c.send_frame(CONTINUATION, END_HEADERS, 1, hb[10:])
    return expect_connection_error(c, PROTOCOL_ERROR)


# -- 5.1 Stream states

@case("http2/5.1", 1, "idle: Sends a DATA frame: PROTOCOL_ERROR or STREAM_CLOSED")
def t_5_1_1(ctx: Ctx):
    c = ctx.connect()
    c.data(1, b"test")
    # RFC 9113 5.1 says connection error PROTOCOL_ERROR, 6.1 says stream error STREAM_CLOSED (h2spec takes both).
    return expect_stream_error(c, 1, PROTOCOL_ERROR, STREAM_CLOSED)


@case("http2/5.1", 2, "idle: Sends a RST_STREAM frame: connection error PROTOCOL_ERROR")
def t_5_1_2(ctx: Ctx):
    c = ctx.connect()
    c.rst(1, CANCEL)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.1", 3, "idle: Sends a WINDOW_UPDATE frame: connection error PROTOCOL_ERROR")
def t_5_1_3(ctx: Ctx):
    c = ctx.connect()
    c.window_update(1, 100)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.1", 4, "idle: Sends a CONTINUATION frame: connection error PROTOCOL_ERROR")
def t_5_1_4(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(CONTINUATION, END_HEADERS, 1, ctx.block())
    return expect_connection_error(c, PROTOCOL_ERROR)


def half_closed(ctx: Ctx) -> Conn:
    """A connection whose stream 1 is half-closed (remote) and stays so: the request ended, and the
    response cannot end because the stream window is 0 (a server may hold its HEADERS too)."""
    c = ctx.connect(settings=[(INITIAL_WINDOW_SIZE, 0)])
    get(ctx, c)
    expect_alive(c)
    return c


@case("http2/5.1", 5, "half closed (remote): Sends a DATA frame: STREAM_CLOSED")
def t_5_1_5(ctx: Ctx):
    c = half_closed(ctx)
    c.data(1, b"test")
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("http2/5.1", 6, "half closed (remote): Sends a HEADERS frame: STREAM_CLOSED")
def t_5_1_6(ctx: Ctx):
    c = half_closed(ctx)
    c.headers(1, ctx.block())
    return expect_stream_error(c, 1, STREAM_CLOSED, conn_codes=(STREAM_CLOSED, PROTOCOL_ERROR))


@case("http2/5.1", 7, "half closed (remote): Sends a CONTINUATION frame: STREAM_CLOSED or PROTOCOL_ERROR")
def t_5_1_7(ctx: Ctx):
    c = half_closed(ctx)
    c.send_frame(CONTINUATION, END_HEADERS, 1, ctx.block())
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)


def reset_stream(ctx: Ctx) -> Conn:
    c = ctx.connect()
    post_open(ctx, c)
    c.rst(1, CANCEL)
    return c


@case("http2/5.1", 8, "closed: Sends a DATA frame after sending RST_STREAM: STREAM_CLOSED")
def t_5_1_8(ctx: Ctx):
    c = reset_stream(ctx)
    c.data(1, b"test")
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("http2/5.1", 9, "closed: Sends a HEADERS frame after sending RST_STREAM: STREAM_CLOSED")
def t_5_1_9(ctx: Ctx):
    c = reset_stream(ctx)
    c.headers(1, ctx.block())
    return expect_stream_error(c, 1, STREAM_CLOSED, conn_codes=(STREAM_CLOSED, PROTOCOL_ERROR))


@case("http2/5.1", 10, "closed: Sends a CONTINUATION frame after sending RST_STREAM: STREAM_CLOSED or PROTOCOL_ERROR")
def t_5_1_10(ctx: Ctx):
    c = reset_stream(ctx)
    c.send_frame(CONTINUATION, END_HEADERS, 1, ctx.block())
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)


def closed_stream(ctx: Ctx) -> Conn:
    c = ctx.connect()
    get(ctx, c)
    read_response(c, 1)
    return c


@case("http2/5.1", 11, "closed: Sends a DATA frame after both sides sent END_STREAM: STREAM_CLOSED")
def t_5_1_11(ctx: Ctx):
    c = closed_stream(ctx)
    c.data(1, b"test")
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("http2/5.1", 12, "closed: Sends a HEADERS frame after both sides sent END_STREAM: STREAM_CLOSED")
def t_5_1_12(ctx: Ctx):
    c = closed_stream(ctx)
    c.headers(1, ctx.block())
    return expect_stream_error(c, 1, STREAM_CLOSED, conn_codes=(STREAM_CLOSED, PROTOCOL_ERROR))


@case("http2/5.1", 13, "closed: Sends a CONTINUATION frame after both sides sent END_STREAM: STREAM_CLOSED or "
      "PROTOCOL_ERROR")
def t_5_1_13(ctx: Ctx):
    c = closed_stream(ctx)
    c.send_frame(CONTINUATION, END_HEADERS, 1, ctx.block())
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)


# -- 5.1.1 Stream identifiers

@case("http2/5.1.1", 1, "Sends an even-numbered stream identifier: connection error PROTOCOL_ERROR")
def t_5_1_1_1(ctx: Ctx):
    c = ctx.connect()
    c.headers(2, ctx.block())
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.1.1", 2, "Sends a stream identifier lower than a previous one: connection error PROTOCOL_ERROR")
def t_5_1_1_2(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c, 5)
    read_response(c, 5)
    get(ctx, c, 3)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.1.1", 3, "Sends a request on a stream identifier beyond a skipped one: served", extra=True)
def t_5_1_1_3(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c, 7)
    return f":status {read_response(c, 7).status}"


# -- 5.1.2 Stream concurrency

@case("http2/5.1.2", 1, "Exceeds SETTINGS_MAX_CONCURRENT_STREAMS: PROTOCOL_ERROR or REFUSED_STREAM")
def t_5_1_2_1(ctx: Ctx):
    c = ctx.connect(settings=[(INITIAL_WINDOW_SIZE, 0)])
    limit = c.server_settings.get(MAX_CONCURRENT_STREAMS)
    if limit is None:
        raise Fail("the server advertises no SETTINGS_MAX_CONCURRENT_STREAMS (unlimited): cannot be exceeded")
    if limit > 1000:
        raise Fail(f"SETTINGS_MAX_CONCURRENT_STREAMS = {limit}: too many streams for this suite")
    hb = ctx.block()
    c.send(b"".join(frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, hb) for i in range(limit + 1)))
    return expect_stream_error(c, None, PROTOCOL_ERROR, REFUSED_STREAM) + f" (limit {limit})"


# -- 5.3.1 Stream dependencies

@case("http2/5.3.1", 1, "Sends a HEADERS frame that depends on itself: PROTOCOL_ERROR")
def t_5_3_1_1(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(HEADERS, END_STREAM | END_HEADERS | PRIORITY_FLAG, 1, struct.pack(">IB", 1, 15) + ctx.block())
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


@case("http2/5.3.1", 2, "Sends a PRIORITY frame that depends on itself: PROTOCOL_ERROR")
def t_5_3_1_2(ctx: Ctx):
    c = ctx.connect()
    c.priority(1, 1, 15)
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


# -- 5.4 Error handling

@case("http2/5.4.1", 1, "Sends an invalid PING frame: the connection is closed")
def t_5_4_1_1(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(PING, 0, 0, b"\0" * 6)
    return expect_closed(c)


@case("http2/5.4.1", 2, "Sends an invalid PING frame: GOAWAY carries the last processed stream")
def t_5_4_1_2(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    read_response(c, 1)
    c.send_frame(PING, 0, 0, b"\0" * 6)
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT or ev is Event.CLOSED:
            raise Fail(f"no GOAWAY; got {c.got()}")
        if ev.type == GOAWAY:
            if ev.last_stream() != 1:
                raise Fail(f"{ev.summary()}: last stream id should be 1")
            return ev.summary()


@case("http2/5.4.2", 1, "After RST_STREAM for a malformed request, the connection serves the next request",
      extra=True)
def t_5_4_2_1(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block(extra=[("X-Upper", "1")]))
    note = expect_stream_error(c, 1, PROTOCOL_ERROR)
    if c.goaway is not None or c.closed:
        # RFC 9113 5.4 lets an endpoint treat a stream error as a connection error.
        return f"{note}: the server chose a connection error, which RFC 9113 5.4 allows"
    get(ctx, c, 3)
    return f"{note}, then :status {read_response(c, 3).status} on stream 3"


# -- 5.5 Extending HTTP/2

@case("http2/5.5", 1, "Sends an unknown extension frame: ignored")
def t_5_5_1(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(0xFF, 0, 0, b"\0" * 8)
    return expect_alive(c)


@case("http2/5.5", 2, "Sends an unknown extension frame in the middle of a header block: PROTOCOL_ERROR")
def t_5_5_2(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.headers(1, hb[:10], end_headers=False)
    c.send_frame(0xFF, 0, 1, b"\0" * 8)
    c.send_frame(CONTINUATION, END_HEADERS, 1, hb[10:])
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.5", 3, "Sends an unknown extension frame on an open stream: ignored, the request is served",
      extra=True)
def t_5_5_3(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.send_frame(0xFF, 0xFF, 1, b"ext")
    c.data(1, b"test")
    return f":status {read_response(c, 1).status}"


# -- 6.1 DATA

@case("http2/6.1", 1, "Sends a DATA frame with 0x0 stream identifier: connection error PROTOCOL_ERROR")
def t_6_1_1(ctx: Ctx):
    c = ctx.connect()
    c.data(0, b"test")
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.1", 2, "Sends a DATA frame on a stream not open or half closed (local): STREAM_CLOSED")
def t_6_1_2(ctx: Ctx):
    c = ctx.connect(settings=[(INITIAL_WINDOW_SIZE, 0)])
    post_open(ctx, c)
    c.data(1, b"test")
    c.data(1, b"test")
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("http2/6.1", 3, "Sends a DATA frame with an invalid pad length: connection error PROTOCOL_ERROR")
def t_6_1_3(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    # Pad length 6 with a 5-byte payload after the pad length byte.
    c.send_frame(DATA, END_STREAM | PADDED, 1, bytes([6]) + b"test\0")
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.1", 4, "Sends a PADDED DATA frame with no room for the pad length: PROTOCOL_ERROR or FRAME_SIZE_ERROR",
      extra=True)
def t_6_1_4(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.send_frame(DATA, END_STREAM | PADDED, 1, b"")
    return expect_stream_error(c, 1, PROTOCOL_ERROR, FRAME_SIZE_ERROR)


# -- 6.2 HEADERS

@case("http2/6.2", 1, "Sends a HEADERS frame without END_HEADERS followed by a PRIORITY frame: PROTOCOL_ERROR")
def t_6_2_1(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.headers(1, hb, end_headers=False)
    c.priority(1, 0, 255)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.2", 2, "Sends a HEADERS frame to another stream while sending a header block: PROTOCOL_ERROR")
def t_6_2_2(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.headers(1, hb, end_headers=False)
    c.headers(3, hb)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.2", 3, "Sends a HEADERS frame with 0x0 stream identifier: connection error PROTOCOL_ERROR")
def t_6_2_3(ctx: Ctx):
    c = ctx.connect()
    c.headers(0, ctx.block())
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.2", 4, "Sends a HEADERS frame with an invalid pad length: connection error PROTOCOL_ERROR")
def t_6_2_4(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.send_frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1, bytes([len(hb) + 1]) + hb)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.2", 5, "Sends a HEADERS frame without END_HEADERS followed by a PING: PROTOCOL_ERROR", extra=True)
def t_6_2_5(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block(), end_headers=False)
    c.ping(b"\0" * 8)
    return expect_connection_error(c, PROTOCOL_ERROR)


# -- 6.3 PRIORITY

@case("http2/6.3", 1, "Sends a PRIORITY frame with 0x0 stream identifier: connection error PROTOCOL_ERROR")
def t_6_3_1(ctx: Ctx):
    c = ctx.connect()
    c.priority(0, 1, 255)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.3", 2, "Sends a PRIORITY frame with a length other than 5 octets: FRAME_SIZE_ERROR")
def t_6_3_2(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    c.send_frame(PRIORITY, 0, 1, b"\0\0\0\0")
    return expect_stream_error(c, 1, FRAME_SIZE_ERROR)


# -- 6.4 RST_STREAM

@case("http2/6.4", 1, "Sends a RST_STREAM frame with 0x0 stream identifier: connection error PROTOCOL_ERROR")
def t_6_4_1(ctx: Ctx):
    c = ctx.connect()
    c.rst(0, CANCEL)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.4", 2, "Sends a RST_STREAM frame on an idle stream: connection error PROTOCOL_ERROR")
def t_6_4_2(ctx: Ctx):
    c = ctx.connect()
    c.rst(3, CANCEL)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.4", 3, "Sends a RST_STREAM frame with a length other than 4 octets: connection error FRAME_SIZE_ERROR")
def t_6_4_3(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.send_frame(RST_STREAM, 0, 1, b"\0\0\0")
    return expect_connection_error(c, FRAME_SIZE_ERROR)


# -- 6.5 SETTINGS

@case("http2/6.5", 1, "Sends a SETTINGS frame with ACK and a non-empty payload: connection error FRAME_SIZE_ERROR")
def t_6_5_1(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(SETTINGS, ACK, 0, b"\0\0\0\0\0\0")
    return expect_connection_error(c, FRAME_SIZE_ERROR)


@case("http2/6.5", 2, "Sends a SETTINGS frame with a stream identifier other than 0x0: connection error PROTOCOL_ERROR")
def t_6_5_2(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(SETTINGS, 0, 1, settings_payload([(INITIAL_WINDOW_SIZE, 100)]))
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.5", 3, "Sends a SETTINGS frame with a length not a multiple of 6: connection error FRAME_SIZE_ERROR")
def t_6_5_3(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(SETTINGS, 0, 0, b"\0\x03\0\0\0")
    return expect_connection_error(c, FRAME_SIZE_ERROR)


@case("http2/6.5.2", 1, "Sends SETTINGS_ENABLE_PUSH other than 0 or 1: connection error PROTOCOL_ERROR")
def t_6_5_2_1(ctx: Ctx):
    c = ctx.connect()
    c.settings([(ENABLE_PUSH, 2)])
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.5.2", 2, "Sends SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1: connection error FLOW_CONTROL_ERROR")
def t_6_5_2_2(ctx: Ctx):
    c = ctx.connect()
    c.settings([(INITIAL_WINDOW_SIZE, 2 ** 31)])
    return expect_connection_error(c, FLOW_CONTROL_ERROR)


@case("http2/6.5.2", 3, "Sends SETTINGS_MAX_FRAME_SIZE below the initial value: connection error PROTOCOL_ERROR")
def t_6_5_2_3(ctx: Ctx):
    c = ctx.connect()
    c.settings([(MAX_FRAME_SIZE, 16383)])
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.5.2", 4, "Sends SETTINGS_MAX_FRAME_SIZE above 2^24-1: connection error PROTOCOL_ERROR")
def t_6_5_2_4(ctx: Ctx):
    c = ctx.connect()
    c.settings([(MAX_FRAME_SIZE, 2 ** 24)])
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.5.2", 5, "Sends a SETTINGS frame with an unknown identifier: ignored, ACK sent")
def t_6_5_2_5(ctx: Ctx):
    c = ctx.connect()
    c.settings([(0xFF, 1)])
    return expect_settings_ack(c)


@case("http2/6.5.2", 6, "Sends SETTINGS_ENABLE_PUSH = 1 (a client may): ACK sent", extra=True)
def t_6_5_2_6(ctx: Ctx):
    c = ctx.connect()
    c.settings([(ENABLE_PUSH, 1)])
    return expect_settings_ack(c)


@case("http2/6.5.2", 7, "Sends SETTINGS_INITIAL_WINDOW_SIZE = 2^31-1 (the maximum): ACK sent", extra=True)
def t_6_5_2_7(ctx: Ctx):
    c = ctx.connect()
    c.settings([(INITIAL_WINDOW_SIZE, 2 ** 31 - 1)])
    return expect_settings_ack(c)


@case("http2/6.5.2", 8, "Sends SETTINGS_MAX_FRAME_SIZE = 2^24-1 (the maximum): ACK sent", extra=True)
def t_6_5_2_8(ctx: Ctx):
    c = ctx.connect()
    c.settings([(MAX_FRAME_SIZE, 2 ** 24 - 1)])
    return expect_settings_ack(c)


@case("http2/6.5.3", 1, "Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE: the last one applies")
def t_6_5_3_1(ctx: Ctx):
    c = ctx.connect(settings=[(INITIAL_WINDOW_SIZE, 100), (INITIAL_WINDOW_SIZE, 1)])
    get(ctx, c)
    f = next_data(c, 1)
    if len(f.payload) != 1:
        raise Fail(f"DATA of {len(f.payload)} bytes with a stream window of 1")
    return "DATA of 1 byte"


@case("http2/6.5.3", 2, "Sends a SETTINGS frame without ACK: the server ACKs it")
def t_6_5_3_2(ctx: Ctx):
    c = ctx.connect()
    c.settings([(INITIAL_WINDOW_SIZE, 65535)])
    return expect_settings_ack(c)


# -- 6.7 PING

@case("http2/6.7", 1, "Sends a PING frame: ACK with the same payload")
def t_6_7_1(ctx: Ctx):
    return expect_alive(ctx.connect())


@case("http2/6.7", 2, "Sends a PING frame with ACK: no answer to it")
def t_6_7_2(ctx: Ctx):
    c = ctx.connect()
    unexpected = b"unexpect"
    c.ping(unexpected, ack=True)
    payload = ping_payload()
    c.ping(payload)
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT or ev is Event.CLOSED or ev.type == GOAWAY:
            raise Fail(f"no PING ACK; got {c.got()}")
        if ev.type == PING and ev.flags & ACK:
            if ev.payload == unexpected:
                raise Fail("the server answered a PING ACK")
            if ev.payload == payload:
                return "only the PING without ACK was answered"


@case("http2/6.7", 3, "Sends a PING frame with a stream identifier other than 0x0: connection error PROTOCOL_ERROR")
def t_6_7_3(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(PING, 0, 1, b"\0" * 8)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.7", 4, "Sends a PING frame with a length other than 8: connection error FRAME_SIZE_ERROR")
def t_6_7_4(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(PING, 0, 0, b"\0" * 6)
    return expect_connection_error(c, FRAME_SIZE_ERROR)


# -- 6.8 GOAWAY

@case("http2/6.8", 1, "Sends a GOAWAY frame with a stream identifier other than 0x0: connection error PROTOCOL_ERROR")
def t_6_8_1(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(GOAWAY, 0, 1, struct.pack(">II", 0, NO_ERROR))
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.8", 2, "Sends a GOAWAY frame shorter than 8 octets: connection error FRAME_SIZE_ERROR", extra=True)
def t_6_8_2(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(GOAWAY, 0, 0, b"\0\0\0\0")
    return expect_connection_error(c, FRAME_SIZE_ERROR)


# -- 6.9 WINDOW_UPDATE

@case("http2/6.9", 1, "Sends a WINDOW_UPDATE frame with a flow-control window increment of 0: PROTOCOL_ERROR")
def t_6_9_1(ctx: Ctx):
    c = ctx.connect()
    c.window_update(0, 0)
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.9", 2, "Sends a WINDOW_UPDATE frame with an increment of 0 on a stream: PROTOCOL_ERROR")
def t_6_9_2(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.window_update(1, 0)
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


@case("http2/6.9", 3, "Sends a WINDOW_UPDATE frame with a length other than 4 octets: connection error "
      "FRAME_SIZE_ERROR")
def t_6_9_3(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01")
    return expect_connection_error(c, FRAME_SIZE_ERROR)


@case("http2/6.9.1", 1, "Sends SETTINGS_INITIAL_WINDOW_SIZE = 1: the server sends DATA one byte at a time")
def t_6_9_1_1(ctx: Ctx):
    c = ctx.connect(settings=[(INITIAL_WINDOW_SIZE, 1)])
    get(ctx, c)
    granted, received, rounds = 1, 0, 0
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            raise Fail(f"no DATA within {c.cfg.timeout:g} s after granting {granted} bytes; got {c.got()}")
        if ev is Event.CLOSED or ev.type == GOAWAY or (ev.type == RST_STREAM and ev.stream == 1):
            raise Fail(f"stream not served; got {c.got()}")
        if ev.stream != 1 or ev.type != DATA:
            if ev.stream == 1 and ev.headers is not None and ev.block_end_stream:
                raise Fail("the response has no body: this case needs --path to answer at least 8 bytes")
            continue
        received += len(ev.payload)
        if received > granted:
            raise Fail(f"DATA of {len(ev.payload)} bytes: the server sent {received} bytes with a window of {granted}")
        if ev.flags & END_STREAM:
            raise Fail("the response body is too short for this case (--path must answer at least 8 bytes)")
        if received == granted:
            rounds += 1
            if rounds == 4:
                return "4 DATA frames of 1 byte, each after a WINDOW_UPDATE of 1"
            c.window_update(1, 1)
            granted += 1
            deadline = _deadline(c)


@case("http2/6.9.1", 2, "Sends WINDOW_UPDATEs making the connection window exceed 2^31-1: FLOW_CONTROL_ERROR")
def t_6_9_1_2(ctx: Ctx):
    c = ctx.connect()
    c.window_update(0, 2 ** 31 - 1)
    c.window_update(0, 2 ** 31 - 1)
    return expect_connection_error(c, FLOW_CONTROL_ERROR)


@case("http2/6.9.1", 3, "Sends WINDOW_UPDATEs making a stream window exceed 2^31-1: FLOW_CONTROL_ERROR")
def t_6_9_1_3(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.window_update(1, 2 ** 31 - 1)
    c.window_update(1, 2 ** 31 - 1)
    return expect_stream_error(c, 1, FLOW_CONTROL_ERROR)


@case("http2/6.9.2", 1, "Changes SETTINGS_INITIAL_WINDOW_SIZE after sending HEADERS: applied to the open stream")
def t_6_9_2_1(ctx: Ctx):
    c = ctx.connect(settings=[(INITIAL_WINDOW_SIZE, 0)])
    get(ctx, c)
    expect_alive(c)
    if c.responses.get(1) is not None and c.responses[1].body:
        raise Fail("DATA sent with a stream window of 0")
    c.settings([(INITIAL_WINDOW_SIZE, 1)])
    f = next_data(c, 1)
    if len(f.payload) != 1:
        raise Fail(f"DATA of {len(f.payload)} bytes after the stream window became 1")
    return "DATA of 1 byte"


@case("http2/6.9.2", 2, "Sends a SETTINGS_INITIAL_WINDOW_SIZE making a stream window negative: honoured")
def t_6_9_2_2(ctx: Ctx):
    c = ctx.connect(settings=[(INITIAL_WINDOW_SIZE, 3)])
    get(ctx, c)
    got = 0
    while got < 3:
        f = next_data(c, 1)
        got += len(f.payload)
    if got != 3:
        raise Fail(f"{got} bytes of DATA with a stream window of 3")
    c.settings([(INITIAL_WINDOW_SIZE, 2)])  # the window becomes -1
    expect_settings_ack(c)
    c.window_update(1, 2)  # and now 1
    f = next_data(c, 1)
    if len(f.payload) != 1:
        raise Fail(f"DATA of {len(f.payload)} bytes, the stream window was 1 (-1 + 2)")
    return "DATA of 1 byte"


@case("http2/6.9.2", 3, "Sends a SETTINGS_INITIAL_WINDOW_SIZE above the maximum window size: FLOW_CONTROL_ERROR")
def t_6_9_2_3(ctx: Ctx):
    c = ctx.connect()
    c.settings([(INITIAL_WINDOW_SIZE, 2 ** 31)])
    return expect_connection_error(c, FLOW_CONTROL_ERROR)


# -- 6.10 CONTINUATION

@case("http2/6.10", 1, "Sends multiple CONTINUATION frames preceded by a HEADERS frame")
def t_6_10_1(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block(extra=dummy_headers(200))
    c.headers(1, hb[:20], end_headers=False)
    c.send_frame(CONTINUATION, 0, 1, hb[20:60])
    c.send_frame(CONTINUATION, END_HEADERS, 1, hb[60:])
    return f":status {read_response(c, 1).status}"


@case("http2/6.10", 2, "Sends a CONTINUATION frame followed by any frame other than CONTINUATION: PROTOCOL_ERROR")
def t_6_10_2(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.headers(1, hb[:10], end_headers=False, end_stream=False)
    c.send_frame(CONTINUATION, 0, 1, hb[10:])
    c.data(1, b"test")
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.10", 3, "Sends a CONTINUATION frame with 0x0 stream identifier: connection error PROTOCOL_ERROR")
def t_6_10_3(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.headers(1, hb[:10], end_headers=False)
    c.send_frame(CONTINUATION, END_HEADERS, 0, hb[10:])
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.10", 4, "Sends a CONTINUATION frame preceded by HEADERS with END_HEADERS: PROTOCOL_ERROR")
def t_6_10_4(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block(), end_stream=False)
    c.send_frame(CONTINUATION, END_HEADERS, 1, block([("x-dummy", "1")]))
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.10", 5, "Sends a CONTINUATION frame preceded by CONTINUATION with END_HEADERS: PROTOCOL_ERROR")
def t_6_10_5(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.headers(1, hb[:10], end_headers=False, end_stream=False)
    c.send_frame(CONTINUATION, END_HEADERS, 1, hb[10:])
    c.send_frame(CONTINUATION, END_HEADERS, 1, block([("x-dummy", "1")]))
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.10", 6, "Sends a CONTINUATION frame preceded by a DATA frame: PROTOCOL_ERROR")
def t_6_10_6(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.data(1, b"test", end_stream=False)
    c.send_frame(CONTINUATION, END_HEADERS, 1, block([("x-dummy", "1")]))
    return expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.10", 7, "Sends a CONTINUATION frame on another stream than its HEADERS: PROTOCOL_ERROR", extra=True)
def t_6_10_7(ctx: Ctx):
    c = ctx.connect()
    hb = ctx.block()
    c.headers(1, hb[:10], end_headers=False)
    c.send_frame(CONTINUATION, END_HEADERS, 3, hb[10:])
    return expect_connection_error(c, PROTOCOL_ERROR)


# -- 7 Error codes

@case("http2/7", 1, "Sends a GOAWAY frame with an unknown error code: no connection error in return")
def t_7_1(ctx: Ctx):
    c = ctx.connect()
    c.send_frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0xFF))
    payload = ping_payload()
    c.ping(payload)
    deadline = _deadline(c)
    while True:
        ev = c.next_event(deadline)
        if ev is Event.TIMEOUT:
            raise Fail(f"neither PING ACK nor a close within {c.cfg.timeout:g} s; got {c.got()}")
        if ev is Event.CLOSED:
            return "connection closed"
        if ev.type == GOAWAY and ev.code() != NO_ERROR:
            raise Fail(f"{ev.summary()} in answer to a GOAWAY with an unknown code")
        if ev.type == PING and ev.flags & ACK:
            return "PING ACK"


@case("http2/7", 2, "Sends a RST_STREAM frame with an unknown error code: no connection error")
def t_7_2(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.rst(1, 0xFF)
    return expect_alive(c)


# -- 8.1 HTTP request/response exchange

@case("http2/8.1", 1, "Sends a second HEADERS frame without END_STREAM: PROTOCOL_ERROR")
def t_8_1_1(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.data(1, b"test", end_stream=False)
    c.headers(1, block([("x-trailer", "1")]), end_stream=False)
    return expect_malformed(c, 1)


@case("http2/8.1", 2, "Sends a request whose trailers are in HEADERS + CONTINUATION: served", extra=True)
def t_8_1_2(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.data(1, b"test", end_stream=False)
    tb = block([("x-trailer-a", "1"), ("x-trailer-b", "2")])
    c.send_frame(HEADERS, END_STREAM, 1, tb[:5])
    c.send_frame(CONTINUATION, END_HEADERS, 1, tb[5:])
    return f":status {read_response(c, 1).status}"


def malformed(ctx: Ctx, headers, end_stream: bool = True) -> str:
    """Sends `headers` as the request on stream 1: a malformed request, a stream error PROTOCOL_ERROR."""
    c = ctx.connect()
    c.headers(1, block(headers), end_stream=end_stream)
    return expect_malformed(c, 1)


def expect_malformed(c: Conn, stream: int) -> str:
    """RST_STREAM(PROTOCOL_ERROR) (or a connection error); with --lenient-malformed, a 4xx answer that
    ends the stream also passes."""
    try:
        return expect_stream_error(c, stream, PROTOCOL_ERROR)
    except Fail as e:
        status = c.final_status.get(stream)
        if c.cfg.lenient_malformed and status is not None and 400 <= status < 500 and stream in c.ended:
            return f"answered :status {status} (accepted with --lenient-malformed; strict: {e})"
        raise


@case("http2/8.1.2", 1, "Sends a HEADERS frame with an uppercase header field name: PROTOCOL_ERROR")
def t_8_1_2_1(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("X-Test", "ok")]))


@case("http2/8.1.2", 2, "Sends a header field name with a space: PROTOCOL_ERROR (RFC 9113 8.2.1)", extra=True)
def t_8_1_2_2(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("x test", "ok")]))


@case("http2/8.1.2", 3, "Sends a header field name with a colon inside: PROTOCOL_ERROR (RFC 9113 8.2.1)", extra=True)
def t_8_1_2_3(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("x:test", "ok")]))


@case("http2/8.1.2", 4, "Sends a header field value with CR LF: PROTOCOL_ERROR (RFC 9113 8.2.1)", extra=True)
def t_8_1_2_4(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("x-test", "a\r\nx-injected: 1")]))


@case("http2/8.1.2", 5, "Sends a header field value with NUL: PROTOCOL_ERROR (RFC 9113 8.2.1)", extra=True)
def t_8_1_2_5(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("x-test", "a\0b")]))


@case("http2/8.1.2", 6, "Sends a header field value with leading whitespace: PROTOCOL_ERROR (RFC 9113 8.2.1)",
      extra=True)
def t_8_1_2_6(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("x-test", " padded")]))


@case("http2/8.1.2", 7, "Sends an empty header field name: PROTOCOL_ERROR (RFC 9113 8.2.1)", extra=True)
def t_8_1_2_7(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("", "empty")]))


@case("http2/8.1.2.1", 1, "Sends a HEADERS frame with an unknown pseudo-header field: PROTOCOL_ERROR")
def t_8_1_2_1_1(ctx: Ctx):
    return malformed(ctx, ctx.req() + [(":test", "ok")])


@case("http2/8.1.2.1", 2, "Sends a HEADERS frame with a response pseudo-header field (:status): PROTOCOL_ERROR")
def t_8_1_2_1_2(ctx: Ctx):
    return malformed(ctx, ctx.req() + [(":status", "200")])


@case("http2/8.1.2.1", 3, "Sends a HEADERS frame with a pseudo-header field as trailers: PROTOCOL_ERROR")
def t_8_1_2_1_3(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c)
    c.data(1, b"test", end_stream=False)
    c.headers(1, block([(":method", "POST")]))
    return expect_malformed(c, 1)


@case("http2/8.1.2.1", 4, "Sends a HEADERS frame with a pseudo-header field after a regular one: PROTOCOL_ERROR")
def t_8_1_2_1_4(ctx: Ctx):
    r = ctx.req()
    return malformed(ctx, r[:3] + [("x-test", "ok")] + r[3:])


@case("http2/8.1.2.2", 1, "Sends a HEADERS frame with a connection-specific header field (connection): PROTOCOL_ERROR")
def t_8_1_2_2_1(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("connection", "keep-alive")]))


@case("http2/8.1.2.2", 2, "Sends a TE header field with a value other than trailers: PROTOCOL_ERROR")
def t_8_1_2_2_2(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("te", "trailers, deflate")]))


@case("http2/8.1.2.2", 3, "Sends TE: trailers (allowed): served", extra=True)
def t_8_1_2_2_3(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c, extra=[("te", "trailers")])
    return f":status {read_response(c, 1).status}"


@case("http2/8.1.2.2", 4, "Sends TE: gzip: PROTOCOL_ERROR", extra=True)
def t_8_1_2_2_4(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("te", "gzip")]))


@case("http2/8.1.2.2", 5, "Sends a transfer-encoding header field: PROTOCOL_ERROR", extra=True)
def t_8_1_2_2_5(ctx: Ctx):
    return malformed(ctx, ctx.req("POST", extra=[("transfer-encoding", "chunked")]), end_stream=False)


@case("http2/8.1.2.2", 6, "Sends an upgrade header field: PROTOCOL_ERROR", extra=True)
def t_8_1_2_2_6(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("upgrade", "websocket")]))


@case("http2/8.1.2.2", 7, "Sends a keep-alive header field: PROTOCOL_ERROR", extra=True)
def t_8_1_2_2_7(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("keep-alive", "timeout=5")]))


@case("http2/8.1.2.2", 8, "Sends a proxy-connection header field: PROTOCOL_ERROR", extra=True)
def t_8_1_2_2_8(ctx: Ctx):
    return malformed(ctx, ctx.req(extra=[("proxy-connection", "keep-alive")]))


def without(headers, name: str) -> list:
    return [(n, v) for n, v in headers if n != name]


@case("http2/8.1.2.3", 1, "Sends a HEADERS frame with an empty :path: PROTOCOL_ERROR")
def t_8_1_2_3_1(ctx: Ctx):
    return malformed(ctx, [(n, "" if n == ":path" else v) for n, v in ctx.req()])


@case("http2/8.1.2.3", 2, "Sends a HEADERS frame without :method: PROTOCOL_ERROR")
def t_8_1_2_3_2(ctx: Ctx):
    return malformed(ctx, without(ctx.req(), ":method"))


@case("http2/8.1.2.3", 3, "Sends a HEADERS frame without :scheme: PROTOCOL_ERROR")
def t_8_1_2_3_3(ctx: Ctx):
    return malformed(ctx, without(ctx.req(), ":scheme"))


@case("http2/8.1.2.3", 4, "Sends a HEADERS frame without :path: PROTOCOL_ERROR")
def t_8_1_2_3_4(ctx: Ctx):
    return malformed(ctx, without(ctx.req(), ":path"))


@case("http2/8.1.2.3", 5, "Sends a HEADERS frame with a duplicated :method: PROTOCOL_ERROR")
def t_8_1_2_3_5(ctx: Ctx):
    r = ctx.req()
    return malformed(ctx, r[:1] + [(":method", "GET")] + r[1:])


@case("http2/8.1.2.3", 6, "Sends a HEADERS frame with a duplicated :scheme: PROTOCOL_ERROR")
def t_8_1_2_3_6(ctx: Ctx):
    r = ctx.req()
    return malformed(ctx, r[:2] + [(":scheme", ctx.cfg.scheme)] + r[2:])


@case("http2/8.1.2.3", 7, "Sends a HEADERS frame with a duplicated :path: PROTOCOL_ERROR")
def t_8_1_2_3_7(ctx: Ctx):
    r = ctx.req()
    return malformed(ctx, r[:3] + [(":path", ctx.cfg.path)] + r[3:])


@case("http2/8.1.2.3", 8, "Sends a HEADERS frame with a duplicated :authority: PROTOCOL_ERROR", extra=True)
def t_8_1_2_3_8(ctx: Ctx):
    return malformed(ctx, ctx.req() + [(":authority", ctx.cfg.authority)])


@case("http2/8.1.2.3", 9, "Sends a HEADERS frame with only regular fields (no pseudo-header): PROTOCOL_ERROR",
      extra=True)
def t_8_1_2_3_9(ctx: Ctx):
    return malformed(ctx, [("host", ctx.cfg.authority), ("x-test", "1")])


@case("http2/8.1.2.3", 10, "Sends a request with a host field instead of :authority: served", extra=True)
def t_8_1_2_3_10(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, block(without(ctx.req(), ":authority") + [("host", ctx.cfg.authority)]))
    return f":status {read_response(c, 1).status}"


@case("http2/8.1.2.6", 1, "Sends a HEADERS frame with a content-length not matching the DATA payload: PROTOCOL_ERROR")
def t_8_1_2_6_1(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c, extra=[("content-length", "1")])
    c.data(1, b"test")
    return expect_malformed(c, 1)


@case("http2/8.1.2.6", 2, "Sends a content-length not matching the sum of multiple DATA payloads: PROTOCOL_ERROR")
def t_8_1_2_6_2(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c, extra=[("content-length", "1")])
    c.data(1, b"test", end_stream=False)
    c.data(1, b"test")
    return expect_malformed(c, 1)


@case("http2/8.1.2.6", 3, "Sends less DATA than content-length before END_STREAM: PROTOCOL_ERROR", extra=True)
def t_8_1_2_6_3(ctx: Ctx):
    c = ctx.connect()
    post_open(ctx, c, extra=[("content-length", "10")])
    c.data(1, b"test")
    return expect_malformed(c, 1)


@case("http2/8.1.2.6", 4, "Sends content-length with END_STREAM on HEADERS (no DATA): PROTOCOL_ERROR", extra=True)
def t_8_1_2_6_4(ctx: Ctx):
    return malformed(ctx, ctx.req("POST", extra=[("content-length", "4")]))


@case("http2/8.1.2.6", 5, "Sends a non-numeric content-length: PROTOCOL_ERROR", extra=True)
def t_8_1_2_6_5(ctx: Ctx):
    return malformed(ctx, ctx.req("POST", extra=[("content-length", "four")]), end_stream=False)


@case("http2/8.2", 1, "Sends a PUSH_PROMISE frame: connection error PROTOCOL_ERROR")
def t_8_2_1(ctx: Ctx):
    c = ctx.connect()
    get(ctx, c)
    c.send_frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + ctx.block())
    return expect_connection_error(c, PROTOCOL_ERROR)


# -- HPACK (RFC 7541)

@case("hpack/2.3.3", 1, "Sends an indexed header field with an invalid index: COMPRESSION_ERROR")
def h_2_3_3_1(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block() + indexed(70))
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/2.3.3", 2, "Sends a literal header field whose name index is invalid: COMPRESSION_ERROR")
def h_2_3_3_2(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block() + lit_name_index(70, "x"))
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/2.3.3", 3, "References a dynamic table entry evicted by a size update: COMPRESSION_ERROR", extra=True)
def h_2_3_3_3(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block() + lit("x-indexed", "1", 0x40))
    read_response(c, 1)
    c.headers(3, size_update(0) + ctx.block() + indexed(62))
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/4.2", 1, "Sends a dynamic table size update at the end of a header block: COMPRESSION_ERROR")
def h_4_2_1(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block() + size_update(1))
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/4.2", 2, "Sends SETTINGS_HEADER_TABLE_SIZE = 0: the server's encoder uses no dynamic table", extra=True)
def h_4_2_2(ctx: Ctx):
    c = ctx.connect(settings=[(HEADER_TABLE_SIZE, 0)])
    c.decoder.max_allowed_table_size = 0
    c.decoder.header_table_size = 0
    statuses = []
    for sid in (1, 3):
        get(ctx, c, sid)
        statuses.append(str(read_response(c, sid).status))
    return "two responses decoded with a 0-byte table: :status " + ", ".join(statuses)


@case("hpack/5.1", 1, "Sends an integer that overflows: COMPRESSION_ERROR", extra=True)
def h_5_1_1(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block() + b"\xff" + b"\xff" * 10 + b"\x7f")
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/5.2", 1, "Sends a Huffman-encoded string literal containing the EOS symbol: COMPRESSION_ERROR")
def h_5_2_1(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block() + b"\x00\x85\xf2\xb2\x4a\x84\xff\x87\x49\x51\xff\xff\xff\xfa\x7f")
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/5.2", 2, "Sends a Huffman-encoded string literal with padding longer than 7 bits: COMPRESSION_ERROR")
def h_5_2_2(ctx: Ctx):
    c = ctx.connect()
    # The value's last byte is all padding: 8 bits or more of 1s.
    c.headers(1, ctx.block() + b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff")
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/5.2", 3, "Sends a Huffman-encoded string literal padded with zeros (not the EOS prefix): "
      "COMPRESSION_ERROR")
def h_5_2_3(ctx: Ctx):
    c = ctx.connect()
    # The value's last bits are 0s, not a prefix of EOS.
    c.headers(1, ctx.block() + b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90")
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/5.2", 4, "Sends a string literal longer than the rest of the header block: COMPRESSION_ERROR", extra=True)
def h_5_2_4(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block() + b"\x00" + hp_str("x-test") + b"\x7f\x20abc")
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/6.1", 1, "Sends an indexed header field with index 0: COMPRESSION_ERROR")
def h_6_1_1(ctx: Ctx):
    c = ctx.connect()
    c.headers(1, ctx.block() + b"\x80")
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/6.3", 1, "Sends a dynamic table size update larger than SETTINGS_HEADER_TABLE_SIZE: COMPRESSION_ERROR")
def h_6_3_1(ctx: Ctx):
    c = ctx.connect()
    limit = c.server_settings.get(HEADER_TABLE_SIZE, 4096)
    c.headers(1, size_update(limit + 1) + ctx.block())
    return expect_connection_error(c, COMPRESSION_ERROR)


@case("hpack/6.3", 2, "Sends a dynamic table size update after a header field: COMPRESSION_ERROR", extra=True)
def h_6_3_2(ctx: Ctx):
    c = ctx.connect()
    r = ctx.req()
    c.headers(1, block(r[:1]) + size_update(0) + block(r[1:]))
    return expect_connection_error(c, COMPRESSION_ERROR)


# ---------------------------------------------------------------------------
# Running.

@dataclass
class Result:
    case: Case
    passed: Optional[bool]  # None: skipped
    reason: str
    seconds: float


def run_case(cfg: Config, k: Case) -> Result:
    ctx = Ctx(cfg)
    start = time.monotonic()
    try:
        note = k.run(ctx)
        passed, reason = True, note or ""
    except Fail as e:
        passed, reason = False, str(e)
    except Skip as e:
        passed, reason = None, str(e)
    except Exception as e:  # noqa: BLE001 - a bug in a case must not stop the suite
        passed, reason = False, f"suite error: {type(e).__name__}: {e}"
    finally:
        ctx.close()
    return Result(k, passed, reason.replace("\n", " "), time.monotonic() - start)


def line(r: Result) -> str:
    reason = f" [{r.reason}]" if r.reason else ""
    verdict = "SKIP" if r.passed is None else "PASS" if r.passed else "FAIL"
    return f"{verdict} {r.case.section} {r.case.id} {r.case.description}{reason}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="HTTP/2 server conformance suite (h2spec's cases, in Python).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", "-p", type=int, required=False)
    p.add_argument("--tls", "-t", action="store_true", help="TLS with ALPN h2 (certificates are not verified)")
    p.add_argument("--server-name", help="SNI for --tls (default: --host)")
    p.add_argument("--authority", help=":authority of requests (default host:port)")
    p.add_argument("--path", default="/", help="path of requests; must answer 2xx/3xx with a body of at least "
                                                "8 bytes (default /)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each expected answer "
                                                              "(default 2)")
    p.add_argument("--jobs", "-j", type=int, default=4, help="cases run at once, one connection each (default 4)")
    p.add_argument("--deadline", type=float, default=50.0, help="seconds for the whole run (default 50)")
    p.add_argument("--only", help="comma-separated prefixes of '<section> <id>' to run, e.g. 'http2/6.5,hpack'")
    p.add_argument("--lenient-malformed", action="store_true",
                   help="for malformed requests, also accept a 4xx response that ends the stream instead of "
                        "RST_STREAM(PROTOCOL_ERROR)")
    p.add_argument("--h2spec-scoring", action="store_true",
                   help="score as h2spec does: a GOAWAY with another error code followed by the close passes")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    a = p.parse_args(argv)

    cases = CASES
    if a.only:
        prefixes = [x.strip() for x in a.only.split(",") if x.strip()]
        cases = [k for k in CASES if any(f"{k.section} {k.id}".startswith(x) for x in prefixes)]
    if a.list:
        for k in cases:
            print(f"{k.section} {k.id}{' +' if k.extra else ''} {k.description}")
        return 0
    if a.port is None:
        p.error("--port is required")
    cfg = Config(host=a.host, port=a.port, tls=a.tls, authority=a.authority or f"{a.host}:{a.port}",
                 path=a.path, timeout=a.timeout, server_name=a.server_name,
                 lenient_malformed=a.lenient_malformed, h2spec_scoring=a.h2spec_scoring)

    start = time.monotonic()
    results: dict = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs))
    futures = {pool.submit(run_case, cfg, k): i for i, k in enumerate(cases)}
    printed = 0

    def flush_ready():
        nonlocal printed
        while printed < len(cases) and printed in results:
            if not a.json:
                print(line(results[printed]), flush=True)
            printed += 1

    pending = set(futures)
    while pending:
        remaining = a.deadline - (time.monotonic() - start)
        if remaining <= 0:
            break
        done, pending = concurrent.futures.wait(pending, timeout=remaining,
                                                return_when=concurrent.futures.FIRST_COMPLETED)
        for f in done:
            results[futures[f]] = f.result()
        flush_ready()
    for i, k in enumerate(cases):
        if i not in results:
            results[i] = Result(k, False, f"not finished within the suite's {a.deadline:g} s deadline", 0.0)
    flush_ready()
    elapsed = time.monotonic() - start
    ordered = [results[i] for i in range(len(cases))]
    passed = sum(1 for r in ordered if r.passed)
    skipped = sum(1 for r in ordered if r.passed is None)
    failed = len(ordered) - passed - skipped
    core = [r for r in ordered if not r.case.extra]
    core_passed = sum(1 for r in core if r.passed)
    if a.json:
        doc = {
            "target": f"{'https' if a.tls else 'http'}://{a.host}:{a.port}{a.path}",
            "total": len(ordered), "passed": passed, "failed": failed, "skipped": skipped,
            "seconds": round(elapsed, 3), "lenient_malformed": a.lenient_malformed,
            "h2spec_scoring": a.h2spec_scoring, "h2spec_cases": len(core), "h2spec_cases_passed": core_passed,
            "cases": [{"section": r.case.section, "id": r.case.id, "description": r.case.description,
                       "extra": r.case.extra, "result": "skip" if r.passed is None else "pass" if r.passed else "fail",
                       "reason": r.reason,
                       "seconds": round(r.seconds, 3)} for r in ordered],
        }
        print(json.dumps(doc, indent=1))
    else:
        print(f"summary: {len(ordered)} cases, {passed} passed, {failed} failed, {skipped} skipped "
              f"(cases modelled on h2spec's: {core_passed} of {len(core)} passed) ({elapsed:.1f} s)", flush=True)
    sys.stdout.flush()
    # Threads still blocked on a socket (only after the deadline) must not hold the exit.
    os._exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    sys.exit(main())
