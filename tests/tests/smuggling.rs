//! Request smuggling, end to end: a table of requests (and backend
//! responses) built to make the gateway and the server behind it disagree on
//! where a message ends, sent through the real `ringgate` binary to a raw
//! recording backend. For every case it checks what the client gets, the
//! exact bytes the backend received, and that every request the backend
//! parses out of those bytes carries ringgate's X-Forwarded-For stamp: a
//! request without one travelled past the gateway inside another request.
//!
//! All cases run one after another through one gateway and one backend.
//! `max_idle_connections = 0` gives every forwarded request its own backend
//! connection, closed by the gateway after the exchange, so no case can see
//! another case's bytes. `SMUGGLING_FILTER=<text>` runs only the cases whose
//! name contains `<text>`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ringgate_e2e::{Gateway, probed_config, wait_until};

/// The Host most cases send.
const HOST: &str = "t";
/// The health probe's path: the backend answers it, and leaves it out of
/// every case's record.
const PROBE_PATH: &str = "/__smuggling-probe";
/// How long the client waits for each read: more than the gateway's
/// `request_timeout` (5 s), so a backend that never answers shows as the
/// gateway's own 504, not as a client time-out.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(7);
/// How long a backend connection may sit without a byte before the backend
/// gives up on it: nothing here can hang for longer.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a case's backend connections may stay open after the client is
/// done.
const QUIET_TIMEOUT: Duration = Duration::from_secs(10);
/// What the backend answers unless the case scripts otherwise.
const DEFAULT_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
/// [`DEFAULT_REPLY`] as the gateway relays it to the client.
const RELAYED_DEFAULT: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
/// A valid chunked body.
const HELLO_CHUNKED: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";
const TE_CHUNKED: &str = "Transfer-Encoding: chunked";

// ---------------------------------------------------------------------------
// What ringgate forwards: the one place that knows the format.

/// Stands for the client in expected bytes; replaced by [`client_id`] of the
/// case's client connection when compared. When X-Forwarded-For becomes
/// `ip:port`, [`client_id`] is the only function to change.
const CLIENT: &str = "\u{1}client\u{1}";

/// How ringgate names a client in X-Forwarded-For: `ip:port`, as
/// Application Gateway does.
fn client_id(client: SocketAddr) -> String {
    client.to_string()
}

/// Stands for the gateway listener's port (X-Forwarded-Port).
const GW_PORT: &str = "\u{1}port\u{1}";
thread_local! {
    /// The port of the gateway the current test thread's cases run against
    /// (set by [`run_case`]).
    static GATEWAY_PORT: std::cell::Cell<u16> = const { std::cell::Cell::new(0) };
}

/// Stands for the `traceparent` value ringgate makes for a request that
/// brings none: random, so the received bytes have it masked ([`mask_trace`]).
const TRACE: &str = "\u{1}trace\u{1}";

/// `raw` with each well-formed generated `traceparent` value replaced by
/// [`TRACE`]; a malformed one is left as it is, and so fails the comparison.
fn mask_trace(raw: &[u8]) -> Vec<u8> {
    const FIELD: &[u8] = b"\r\ntraceparent: ";
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(FIELD) && raw.len() >= i + FIELD.len() + 55 {
            let v = &raw[i + FIELD.len()..i + FIELD.len() + 55];
            let hex = |s: &[u8]| s.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
            if v.starts_with(b"00-") && v[35] == b'-' && v[52] == b'-' && hex(&v[3..35]) && hex(&v[36..52]) {
                out.extend_from_slice(FIELD);
                out.extend_from_slice(TRACE.as_bytes());
                i += FIELD.len() + 55;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// Whether a request head the backend parsed carries ringgate's stamp: one
/// X-Forwarded-For field whose last element is the case's client.
fn has_stamp(head: &str, client: &str) -> bool {
    let xff: Vec<&str> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, v)| v.trim())
        .collect();
    xff.len() == 1 && xff[0].rsplit(',').next().map(str::trim) == Some(client)
}

/// How the forwarded request's body is framed (written by ringgate).
#[derive(Debug, Clone, Copy)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// The Host ringgate forwards.
#[derive(Debug, Clone, Copy)]
enum FwdHost<'a> {
    /// The request's host (Host, or the absolute-form authority); it is
    /// also the X-Forwarded-Host.
    Client(&'a str),
    /// The server's address as configured, for an HTTP/1.0 request without
    /// a host; no X-Forwarded-Host then.
    Fallback(&'a str),
}

/// The exact bytes ringgate sends the backend for a request: its own
/// request line and Host, the client's other fields byte for byte (`kept`,
/// without line ends), its own framing, its forwarding fields, then the body
/// as the client sent it.
fn forwarded(
    method: &str,
    path: &str,
    host: FwdHost<'_>,
    kept: &[&str],
    framing: Framing,
    xff_prior: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let (host, xfh) = match host {
        FwdHost::Client(h) => (h, Some(h)),
        FwdHost::Fallback(h) => (h, None),
    };
    let mut s = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for line in kept {
        s.push_str(line);
        s.push_str("\r\n");
    }
    match framing {
        Framing::None => {}
        Framing::Length(n) => s.push_str(&format!("Content-Length: {n}\r\n")),
        Framing::Chunked => s.push_str("Transfer-Encoding: chunked\r\n"),
    }
    match xff_prior {
        Some(prior) => s.push_str(&format!("X-Forwarded-For: {prior}, {CLIENT}\r\n")),
        None => s.push_str(&format!("X-Forwarded-For: {CLIENT}\r\n")),
    }
    s.push_str(&format!("X-Forwarded-Proto: http\r\nX-Forwarded-Port: {GW_PORT}\r\n"));
    if let Some(h) = xfh {
        s.push_str(&format!("X-Forwarded-Host: {h}\r\nX-Original-Host: {h}\r\n"));
    }
    s.push_str(&format!("X-Original-URL: {path}\r\ntraceparent: {TRACE}\r\n\r\n"));
    [s.as_bytes(), body].concat()
}

/// `GET path` to host `t` as forwarded.
fn fwd_get(path: &str, kept: &[&str]) -> Vec<u8> {
    forwarded("GET", path, FwdHost::Client(HOST), kept, Framing::None, None, b"")
}

/// `POST /` to host `t` as forwarded.
fn fwd_post(kept: &[&str], framing: Framing, body: &[u8]) -> Vec<u8> {
    forwarded("POST", "/", FwdHost::Client(HOST), kept, framing, None, body)
}

/// `expected` with the client placeholder replaced by `client`, and the
/// gateway's port filled in.
fn with_client(expected: &[u8], client: &str) -> Vec<u8> {
    let needle = CLIENT.as_bytes();
    let port = GATEWAY_PORT.with(|p| p.get()).to_string();
    let mut out = Vec::with_capacity(expected.len());
    let mut i = 0;
    while i < expected.len() {
        if expected[i..].starts_with(needle) {
            out.extend_from_slice(client.as_bytes());
            i += needle.len();
        } else if expected[i..].starts_with(GW_PORT.as_bytes()) {
            out.extend_from_slice(port.as_bytes());
            i += GW_PORT.len();
        } else {
            out.push(expected[i]);
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// What clients send.

/// A request line, header lines, the blank line, then `body`.
fn req(start: &str, lines: &[&str], body: &[u8]) -> Vec<u8> {
    let mut s = format!("{start}\r\n");
    for line in lines {
        s.push_str(line);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    [s.as_bytes(), body].concat()
}

/// `POST / HTTP/1.1` with `Host: t`, then `lines`.
fn post(lines: &[&str], body: &[u8]) -> Vec<u8> {
    let all: Vec<&str> = std::iter::once("Host: t").chain(lines.iter().copied()).collect();
    req("POST / HTTP/1.1", &all, body)
}

/// `GET path HTTP/1.1` with `Host: t`, then `lines`.
fn get(path: &str, lines: &[&str]) -> Vec<u8> {
    let all: Vec<&str> = std::iter::once("Host: t").chain(lines.iter().copied()).collect();
    req(&format!("GET {path} HTTP/1.1"), &all, b"")
}

/// A chunked `POST /` with `body`.
fn chunked_post(body: &[u8]) -> Vec<u8> {
    post(&[TE_CHUNKED], body)
}

// ---------------------------------------------------------------------------
// The cases.

/// One response the client must get.
#[derive(Debug, Clone)]
enum Answer {
    /// The backend's default reply, relayed: 200, body `ok`, no
    /// `x-ringgate-error`.
    Ok,
    /// The gateway's own answer: this status and `x-ringgate-error` code,
    /// with `Connection: close`.
    Refused(u16, &'static str),
    /// Exactly these bytes.
    Exact(Vec<u8>),
    /// A relayed response with this status and body (raw, as framed) and
    /// these headers (`None`: absent).
    Relayed { status: u16, body: Vec<u8>, headers: Vec<(&'static str, Option<&'static str>)> },
}

/// Bytes the client sends at once, and the responses it must get for them.
#[derive(Debug, Clone)]
struct Step {
    send: Vec<u8>,
    expect: Vec<Answer>,
    /// Before the next step, wait until the backend has received (at least)
    /// these bytes: the gateway is then streaming the body, so what the
    /// next step sends arrives mid-body rather than with the head.
    await_backend: Option<Vec<u8>>,
}

fn step(send: Vec<u8>, expect: Vec<Answer>) -> Step {
    Step { send, expect, await_backend: None }
}

/// What must happen once the expected responses are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// The gateway closes the connection by itself, with nothing more sent.
    Closed,
    /// Nothing more arrives; the client half-closes and the gateway closes.
    Idle,
}

/// What the backend must have received.
#[derive(Debug, Clone)]
enum Seen {
    /// No connection at all.
    Nothing,
    /// One connection per element, in order, with exactly these bytes.
    Exact(Vec<Vec<u8>>),
    /// A request refused in the middle of its body: at most one connection,
    /// its bytes a prefix of these (the head and the body before the bad
    /// point may have gone out), and no complete request in them.
    PrefixOf(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Case {
    group: &'static str,
    name: &'static str,
    steps: Vec<Step>,
    after: After,
    seen: Seen,
    /// What the backend answers to the case's requests, in order (then
    /// [`DEFAULT_REPLY`]).
    replies: Vec<Reply>,
}

impl Case {
    /// The gateway closes after the (last) response: the client asked for
    /// it, or spoke HTTP/1.0.
    fn closing(mut self) -> Case {
        self.after = After::Closed;
        self
    }
}

const CL_TE: &str = "CL.TE / TE.CL";
const TE_TE: &str = "TE.TE obfuscation";
const CONN: &str = "Connection-listed";
const CL: &str = "Content-Length";
const CHUNK: &str = "chunk lines";
const TRAILER: &str = "trailers";
const SYNTAX: &str = "head syntax";
const LINE: &str = "request line / Host / version";
const HOP: &str = "hop-by-hop";
const PIPE: &str = "pipelining";
const RESP: &str = "response side";

const BAD_REQUEST: &str = "BAD_REQUEST";

/// Accepted: forwarded as `fwd`, answered by the backend.
fn accepted(group: &'static str, name: &'static str, send: Vec<u8>, fwd: Vec<u8>) -> Case {
    Case {
        group,
        name,
        steps: vec![step(send, vec![Answer::Ok])],
        after: After::Idle,
        seen: Seen::Exact(vec![fwd]),
        replies: Vec::new(),
    }
}

/// Refused by the gateway before anything reaches the backend.
fn refused(group: &'static str, name: &'static str, send: Vec<u8>, status: u16, code: &'static str) -> Case {
    Case {
        group,
        name,
        steps: vec![step(send, vec![Answer::Refused(status, code)])],
        after: After::Closed,
        seen: Seen::Nothing,
        replies: Vec::new(),
    }
}

/// Refused with 400 before anything reaches the backend.
fn bad(group: &'static str, name: &'static str, send: Vec<u8>) -> Case {
    refused(group, name, send, 400, BAD_REQUEST)
}

/// Refused with 501: a well-formed Transfer-Encoding naming another coding
/// before its final chunked (RFC 9112 §6.1). Without a final chunked the
/// answer is 400 (§6.3 (4)).
fn not_implemented(group: &'static str, name: &'static str, send: Vec<u8>) -> Case {
    refused(group, name, send, 501, "NOT_IMPLEMENTED")
}

/// Refused with 400 in the middle of a body whose head forwards as `fwd`.
fn bad_body(group: &'static str, name: &'static str, send: Vec<u8>, fwd: Vec<u8>) -> Case {
    Case { seen: Seen::PrefixOf(fwd), ..bad(group, name, send) }
}

/// A chunked `POST /` whose body is refused mid-body.
fn bad_chunked(group: &'static str, name: &'static str, body: &[u8]) -> Case {
    bad_body(group, name, chunked_post(body), fwd_post(&[], Framing::Chunked, body))
}

/// A chunked `POST /` forwarded with its body verbatim.
fn good_chunked(group: &'static str, name: &'static str, body: &[u8]) -> Case {
    accepted(group, name, chunked_post(body), fwd_post(&[], Framing::Chunked, body))
}

/// The first chunk of a streamed body.
const FIRST_CHUNK: &[u8] = b"5\r\nhello\r\n";

/// A chunked `POST /` sent in two writes: the head with [`FIRST_CHUNK`],
/// and once the backend has those, `rest` (answered with `expect`).
fn streamed(group: &'static str, name: &'static str, rest: &[u8], expect: Answer, seen: Seen) -> Case {
    Case {
        group,
        name,
        steps: vec![
            Step {
                send: chunked_post(FIRST_CHUNK),
                expect: Vec::new(),
                await_backend: Some(fwd_post(&[], Framing::Chunked, FIRST_CHUNK)),
            },
            step(rest.to_vec(), vec![expect]),
        ],
        after: After::Idle,
        seen,
        replies: Vec::new(),
    }
}

/// A streamed chunked body refused with 400 at `rest`, after the backend
/// got the head and the first chunk.
fn streamed_bad(group: &'static str, name: &'static str, rest: &[u8]) -> Case {
    let full = fwd_post(&[], Framing::Chunked, &[FIRST_CHUNK, rest].concat());
    Case {
        after: After::Closed,
        ..streamed(group, name, rest, Answer::Refused(400, BAD_REQUEST), Seen::PrefixOf(full))
    }
}

fn cl_te_cases() -> Vec<Case> {
    let g = CL_TE;
    let smuggled = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    vec![
        bad(g, "cl_then_te", post(&["Content-Length: 6", TE_CHUNKED], b"0\r\n\r\nX")),
        bad(g, "te_then_cl", post(&[TE_CHUNKED, "Content-Length: 3"], b"8\r\nSMUGGLED\r\n0\r\n\r\n")),
        bad(g, "cl_te_smuggled_get", post(&["Content-Length: 40", TE_CHUNKED], smuggled)),
        bad(g, "te_cl_smuggled_get", post(&[TE_CHUNKED, "Content-Length: 5"], smuggled)),
        bad(g, "cl_zero_te", post(&["Content-Length: 0", TE_CHUNKED], HELLO_CHUNKED)),
        bad(g, "te_cl_zero", post(&[TE_CHUNKED, "Content-Length: 0"], HELLO_CHUNKED)),
        bad(g, "cl_te_upper_case", post(&["CONTENT-LENGTH: 5", "TRANSFER-ENCODING: CHUNKED"], HELLO_CHUNKED)),
        bad(g, "cl_te_lower_case", post(&["content-length: 5", "transfer-encoding: chunked"], HELLO_CHUNKED)),
        bad(g, "cl_te_gzip_chunked", post(&["Content-Length: 5", "Transfer-Encoding: gzip, chunked"], HELLO_CHUNKED)),
        bad(g, "cl_te_xchunked", post(&["Content-Length: 5", "Transfer-Encoding: xchunked"], b"hello")),
        bad(g, "cl_te_identity", post(&["Content-Length: 5", "Transfer-Encoding: identity"], b"hello")),
        bad(g, "cl_te_extra_ows", post(&["Content-Length: 5", "Transfer-Encoding:   chunked"], HELLO_CHUNKED)),
        bad(g, "cl_te_tab", post(&["Content-Length: 5", "Transfer-Encoding:\tchunked"], HELLO_CHUNKED)),
        bad(g, "cl_te_trailing_ws", post(&["Content-Length: 5", "Transfer-Encoding: chunked \t"], HELLO_CHUNKED)),
        bad(g, "cl_te_empty_te", post(&["Content-Length: 5", "Transfer-Encoding:"], b"hello")),
        bad(
            g,
            "cl_te_two_te_fields",
            post(&["Content-Length: 5", TE_CHUNKED, "Transfer-Encoding: identity"], b"hello"),
        ),
        bad(g, "cl_list_te", post(&["Content-Length: 5, 5", TE_CHUNKED], HELLO_CHUNKED)),
        bad(g, "cl_te_far_apart", post(&[TE_CHUNKED, "X-A: 1", "X-B: 2", "Content-Length: 5"], HELLO_CHUNKED)),
        bad(g, "cl_te_on_get", req("GET / HTTP/1.1", &["Host: t", "Content-Length: 5", TE_CHUNKED], HELLO_CHUNKED)),
        bad(
            g,
            "cl_te_with_connection_close",
            post(&["Connection: close", "Content-Length: 5", TE_CHUNKED], HELLO_CHUNKED),
        ),
        bad(g, "cl_te_http10", req("POST / HTTP/1.0", &["Host: t", "Content-Length: 5", TE_CHUNKED], HELLO_CHUNKED)),
        // Look-alike names are other fields: forwarded as they are, and
        // they frame nothing.
        accepted(
            g,
            "x_transfer_encoding_is_not_te",
            post(&["X-Transfer-Encoding: chunked", "Content-Length: 5"], b"hello"),
            fwd_post(&["X-Transfer-Encoding: chunked"], Framing::Length(5), b"hello"),
        ),
        accepted(
            g,
            "transfer_underscore_encoding_is_not_te",
            post(&["Transfer_Encoding: chunked", "Content-Length: 5"], b"hello"),
            fwd_post(&["Transfer_Encoding: chunked"], Framing::Length(5), b"hello"),
        ),
        accepted(
            g,
            "content_underscore_length_is_not_cl",
            post(&["Content_Length: 7", TE_CHUNKED], HELLO_CHUNKED),
            fwd_post(&["Content_Length: 7"], Framing::Chunked, HELLO_CHUNKED),
        ),
    ]
}

fn te_cases() -> Vec<Case> {
    let g = TE_TE;
    let te = |value: &str| format!("Transfer-Encoding:{value}");
    let one = |value: &str| post(&[&te(value)], HELLO_CHUNKED);
    let ok = |name, value: &str| accepted(g, name, one(value), fwd_post(&[], Framing::Chunked, HELLO_CHUNKED));
    let two = |a: &str, b: &str| post(&[&te(a), &te(b)], HELLO_CHUNKED);
    vec![
        ok("te_chunked", " chunked"),
        ok("te_chunked_capitalised", " Chunked"),
        ok("te_chunked_upper_case", " CHUNKED"),
        ok("te_chunked_mixed_case", " cHuNkEd"),
        ok("te_spaces_around", "  chunked  "),
        ok("te_tabs_around", "\tchunked\t"),
        ok("te_no_space", "chunked"),
        accepted(
            g,
            "te_name_upper_case",
            post(&["TRANSFER-ENCODING: chunked"], HELLO_CHUNKED),
            fwd_post(&[], Framing::Chunked, HELLO_CHUNKED),
        ),
        accepted(
            g,
            "te_name_lower_case",
            post(&["transfer-encoding: chunked"], HELLO_CHUNKED),
            fwd_post(&[], Framing::Chunked, HELLO_CHUNKED),
        ),
        accepted(
            g,
            "te_between_other_fields",
            post(&["X-A: 1", TE_CHUNKED, "X-B: 2"], HELLO_CHUNKED),
            fwd_post(&["X-A: 1", "X-B: 2"], Framing::Chunked, HELLO_CHUNKED),
        ),
        bad(g, "te_trailing_comma", one(" chunked,")),
        bad(g, "te_leading_comma", one(" , chunked")),
        bad(g, "te_empty_elements", one(" chunked, ,")),
        bad(g, "te_empty_value", one("")),
        bad(g, "te_blank_value", one("   ")),
        bad(g, "te_only_comma", one(" ,")),
        bad(g, "te_chunked_with_parameter", one(" chunked;foo=bar")),
        bad(g, "te_chunked_with_semicolon", one(" chunked;")),
        bad(g, "te_chunked_twice", one(" chunked, chunked")),
        bad(g, "te_two_chunked_fields", two(" chunked", " chunked")),
        bad(g, "te_chunked_then_gzip", one(" chunked, gzip")),
        bad(g, "te_chunked_then_identity", one(" chunked, identity")),
        bad(g, "te_chunked_field_then_gzip_field", two(" chunked", " gzip")),
        bad(g, "te_chunked_gzip_chunked", one(" chunked, gzip, chunked")),
        bad(g, "te_chunked_then_empty_field", two(" chunked", "")),
        bad(g, "te_space_inside", one(" chun ked")),
        bad(g, "te_quoted", one(" \"chunked\"")),
        bad(g, "te_vertical_tab", one(" chunked\x0b")),
        bad(g, "te_form_feed", one(" \x0cchunked")),
        bad(g, "te_nul", one(" chunked\0")),
        bad(g, "te_http10", req("POST / HTTP/1.0", &["Host: t", TE_CHUNKED], HELLO_CHUNKED)),
        bad(g, "te_gzip_http10", req("POST / HTTP/1.0", &["Host: t", "Transfer-Encoding: gzip"], b"hello")),
        bad(g, "te_gzip", one(" gzip")),
        not_implemented(g, "te_gzip_chunked", one(" gzip, chunked")),
        not_implemented(g, "te_identity_chunked", one(" identity, chunked")),
        not_implemented(g, "te_cow_chunked", one(" cow, chunked")),
        bad(g, "te_xchunked", one(" xchunked")),
        bad(g, "te_chunkedx", one(" chunkedx")),
        not_implemented(g, "te_cow_field_then_chunked_field", two(" cow", " chunked")),
        bad(g, "te_identity", one(" identity")),
        not_implemented(g, "te_deflate_chunked", one(" deflate, chunked")),
        bad(g, "te_compress", one(" compress")),
    ]
}

fn connection_cases() -> Vec<Case> {
    let g = CONN;
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    let cl5 = |conn: &str| post(&[conn, "Content-Length: 5"], b"hello");
    let fwd5 = || fwd_post(&[], Framing::Length(5), b"hello");
    vec![
        // The repro, byte for byte.
        accepted(
            g,
            "issue_repro_connection_content_length",
            b"POST / HTTP/1.1\r\nHost: t\r\nConnection: Content-Length\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            fwd_post(&[], Framing::Length(35), smuggled),
        ),
        accepted(g, "connection_close_and_content_length", cl5("Connection: close, Content-Length"), fwd5()).closing(),
        accepted(g, "connection_content_length_lower_case", cl5("Connection: content-length"), fwd5()),
        accepted(g, "connection_content_length_upper_case", cl5("Connection: CONTENT-LENGTH"), fwd5()),
        accepted(
            g,
            "connection_content_length_in_second_field",
            post(&["Connection: keep-alive", "Connection: Content-Length", "Content-Length: 5"], b"hello"),
            fwd5(),
        ),
        accepted(
            g,
            "connection_after_content_length",
            post(&["Content-Length: 5", "Connection: Content-Length"], b"hello"),
            fwd5(),
        ),
        accepted(
            g,
            "connection_content_length_zero",
            post(&["Connection: Content-Length", "Content-Length: 0"], b""),
            fwd_post(&[], Framing::Length(0), b""),
        ),
        accepted(
            g,
            "connection_content_length_list",
            post(&["Connection: Content-Length", "Content-Length: 5, 5"], b"hello"),
            fwd5(),
        ),
        accepted(
            g,
            "connection_transfer_encoding",
            post(&["Connection: Transfer-Encoding", TE_CHUNKED], HELLO_CHUNKED),
            fwd_post(&[], Framing::Chunked, HELLO_CHUNKED),
        ),
        // The chunked body ends at its last chunk; what follows is the
        // client's next request, forwarded on its own with its own stamp.
        Case {
            steps: vec![step(
                post(&["Connection: Transfer-Encoding", TE_CHUNKED], &[&b"0\r\n\r\n"[..], smuggled].concat()),
                vec![Answer::Ok, Answer::Ok],
            )],
            seen: Seen::Exact(vec![fwd_post(&[], Framing::Chunked, b"0\r\n\r\n"), fwd_get("/smuggled", &[])]),
            ..accepted(g, "connection_transfer_encoding_then_pipelined", Vec::new(), Vec::new())
        },
        accepted(g, "connection_host", get("/", &["Connection: Host"]), fwd_get("/", &[])),
        accepted(g, "connection_host_mixed_case", get("/", &["Connection: hOsT"]), fwd_get("/", &[])),
        accepted(g, "connection_names_all_framing", cl5("Connection: Host, Content-Length, Transfer-Encoding"), fwd5()),
        accepted(g, "connection_empty_elements", cl5("Connection: , Content-Length ,"), fwd5()),
        accepted(g, "connection_upgrade_without_upgrade_field", cl5("Connection: upgrade"), fwd5()),
        bad(g, "connection_listed_cl_with_te", post(&["Connection: Content-Length", "Content-Length: 5", TE_CHUNKED], HELLO_CHUNKED)),
        bad(g, "connection_listed_te_with_cl", post(&["Connection: Transfer-Encoding", TE_CHUNKED, "Content-Length: 5"], HELLO_CHUNKED)),
        bad(g, "connection_listed_both_with_both", post(&["Connection: Content-Length, Transfer-Encoding", "Content-Length: 5", TE_CHUNKED], HELLO_CHUNKED)),
        // Naming Transfer-Encoding in Connection does not make its coding
        // any less unknown.
        bad(g, "connection_listed_te_gzip", post(&["Connection: Transfer-Encoding", "Transfer-Encoding: gzip"], b"hello")),
        bad(g, "connection_listed_host_twice", req("GET / HTTP/1.1", &["Connection: Host", "Host: t", "Host: u"], b"")),
    ]
}

fn content_length_cases() -> Vec<Case> {
    let g = CL;
    let cl = |value: &str| post(&[&format!("Content-Length:{value}")], b"hello");
    let ok5 = |name, value: &str| accepted(g, name, cl(value), fwd_post(&[], Framing::Length(5), b"hello"));
    let bad_cl = |name, value: &str| bad(g, name, cl(value));
    vec![
        ok5("cl_plain", " 5"),
        ok5("cl_leading_zeros", " 005"),
        ok5("cl_list_equal", " 5, 5"),
        ok5("cl_list_equal_no_spaces", " 5,5,5"),
        ok5("cl_extra_ows", "   5  "),
        ok5("cl_tab", "\t5"),
        ok5("cl_no_space", "5"),
        accepted(
            g,
            "cl_two_equal_fields",
            post(&["Content-Length: 5", "Content-Length: 5"], b"hello"),
            fwd_post(&[], Framing::Length(5), b"hello"),
        ),
        accepted(
            g,
            "cl_name_mixed_case",
            post(&["content-LENGTH: 5"], b"hello"),
            fwd_post(&[], Framing::Length(5), b"hello"),
        ),
        accepted(g, "cl_zero", post(&["Content-Length: 0"], b""), fwd_post(&[], Framing::Length(0), b"")),
        accepted(g, "cl_all_zeros", post(&["Content-Length: 000"], b""), fwd_post(&[], Framing::Length(0), b"")),
        accepted(
            g,
            "cl_on_get",
            req("GET / HTTP/1.1", &["Host: t", "Content-Length: 3"], b"abc"),
            forwarded("GET", "/", FwdHost::Client(HOST), &[], Framing::Length(3), None, b"abc"),
        ),
        accepted(
            g,
            "cl_between_other_fields",
            post(&["X-A: 1", "Content-Length: 5", "X-B: 2"], b"hello"),
            fwd_post(&["X-A: 1", "X-B: 2"], Framing::Length(5), b"hello"),
        ),
        bad_cl("cl_plus_sign", " +5"),
        bad_cl("cl_negative", " -1"),
        bad_cl("cl_space_inside", " 5 5"),
        bad_cl("cl_hex", " 0x5"),
        bad_cl("cl_decimal", " 5.0"),
        bad_cl("cl_empty", ""),
        bad_cl("cl_blank", " "),
        bad_cl("cl_20_digits", " 99999999999999999999"),
        bad_cl("cl_u64_overflow", " 18446744073709551616"),
        bad_cl("cl_trailing_comma", " 1,"),
        bad_cl("cl_leading_comma", " ,5"),
        bad_cl("cl_double_comma", " 5,,5"),
        bad_cl("cl_conflicting_list", " 5, 6"),
        bad_cl("cl_letters", " 5a"),
        bad_cl("cl_exponent", " 1e3"),
        bad_cl("cl_quoted", " \"5\""),
        bad_cl("cl_arabic_indic_digit", " \u{665}"),
        bad(g, "cl_conflicting_fields", post(&["Content-Length: 5", "Content-Length: 6"], b"hello!")),
        bad(g, "cl_list_then_conflicting_field", post(&["Content-Length: 5, 5", "Content-Length: 6"], b"hello!")),
    ]
}

fn chunk_line_cases() -> Vec<Case> {
    let g = CHUNK;
    vec![
        good_chunked(g, "chunk_ext_token", b"5;a=b\r\nhello\r\n0\r\n\r\n"),
        good_chunked(g, "chunk_ext_quoted", b"5;a=\"x y\"\r\nhello\r\n0\r\n\r\n"),
        good_chunked(g, "chunk_ext_quoted_escape", b"5;a=\"x\\\"y\"\r\nhello\r\n0\r\n\r\n"),
        good_chunked(g, "chunk_ext_name_only", b"5;a\r\nhello\r\n0\r\n\r\n"),
        good_chunked(g, "chunk_ext_several", b"5;a=b;c=d\r\nhello\r\n0\r\n\r\n"),
        // RFC 9112 §7.1.1: BWS before the `;`.
        good_chunked(g, "chunk_ext_after_bws", b"5 ;a=b\r\nhello\r\n0\r\n\r\n"),
        good_chunked(g, "chunk_ext_on_last_chunk", b"5\r\nhello\r\n0;end=1\r\n\r\n"),
        good_chunked(g, "chunk_size_leading_zeros", b"0005\r\nhello\r\n0\r\n\r\n"),
        good_chunked(g, "chunk_size_upper_hex", b"A\r\n0123456789\r\n0\r\n\r\n"),
        good_chunked(g, "chunk_size_lower_hex", b"a\r\n0123456789\r\n0\r\n\r\n"),
        good_chunked(g, "chunk_several", b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
        good_chunked(g, "chunk_empty_body", b"0\r\n\r\n"),
        good_chunked(g, "chunk_data_with_crlf", b"6\r\nab\r\ncd\r\n0\r\n\r\n"),
        good_chunked(g, "chunk_data_looks_like_a_request", b"1a\r\nGET /smuggled HTTP/1.1\r\n\r\n\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_negative", b"-5\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_plus", b"+5\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_leading_space", b" 5\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_trailing_space", b"5 \r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_trailing_tab", b"5\t\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_16_digits", b"1000000000000000\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_18_digits", b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_empty", b"\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_junk", b"zz\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_suffix", b"5x\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_data_not_followed_by_crlf", b"5\r\nhelloX\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_data_shorter_than_size", b"5\r\nhel\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_lines_lf_only", b"5\nhello\n0\n\n"),
        bad_chunked(g, "chunk_data_lf_only", b"5\r\nhello\n0\r\n\r\n"),
        bad_chunked(g, "chunk_last_line_lf_only", b"5\r\nhello\r\n0\r\n\n"),
        bad_chunked(g, "chunk_size_bare_cr", b"5\rhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_size_double_cr", b"5\r\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_ext_without_name", b"5;=x\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_ext_empty", b"5;\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_ext_open_quote", b"5;a=\"x\r\nhello\r\n0\r\n\r\n"),
        bad_chunked(g, "chunk_ext_space_in_value", b"5;a=b c\r\nhello\r\n0\r\n\r\n"),
        // The same faults once the gateway is already streaming the body.
        streamed(
            g,
            "streamed_good_body",
            b"3\r\nabc\r\n0\r\n\r\n",
            Answer::Ok,
            Seen::Exact(vec![fwd_post(&[], Framing::Chunked, b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n")]),
        ),
        streamed_bad(g, "streamed_chunk_size_junk", b"zz\r\nhello\r\n0\r\n\r\n"),
        streamed_bad(
            g,
            "streamed_chunk_size_0x_then_smuggled",
            b"0x0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
        streamed_bad(g, "streamed_chunk_size_too_large", b"1000000000000000\r\nhello\r\n0\r\n\r\n"),
        streamed_bad(g, "streamed_chunk_data_not_followed_by_crlf", b"3\r\nabcX\r\n0\r\n\r\n"),
        streamed_bad(g, "streamed_chunk_lines_lf_only", b"3\nabc\n0\n\n"),
        streamed_bad(g, "streamed_chunk_ext_without_name", b"3;=x\r\nabc\r\n0\r\n\r\n"),
    ]
}

fn trailer_cases() -> Vec<Case> {
    let g = TRAILER;
    vec![
        good_chunked(g, "trailer_one", b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
        good_chunked(g, "trailer_two", b"5\r\nhello\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n"),
        good_chunked(g, "trailer_empty_value", b"5\r\nhello\r\n0\r\nX-T:\r\n\r\n"),
        good_chunked(g, "trailer_ows", b"5\r\nhello\r\n0\r\nX-T:  1 \t\r\n\r\n"),
        bad_chunked(g, "trailer_without_colon", b"5\r\nhello\r\n0\r\nfoo\r\n\r\n"),
        bad_chunked(g, "trailer_empty_name", b"5\r\nhello\r\n0\r\n: v\r\n\r\n"),
        bad_chunked(g, "trailer_space_in_name", b"5\r\nhello\r\n0\r\nX T: 1\r\n\r\n"),
        bad_chunked(g, "trailer_space_before_colon", b"5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n"),
        bad_chunked(g, "trailer_control_character", b"5\r\nhello\r\n0\r\nX-T: a\x01b\r\n\r\n"),
        bad_chunked(g, "trailer_nul", b"5\r\nhello\r\n0\r\nX-T: a\0b\r\n\r\n"),
        bad_chunked(g, "trailer_bare_cr", b"5\r\nhello\r\n0\r\nX-T: a\rb\r\n\r\n"),
        bad_chunked(g, "trailer_bare_lf", b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n"),
        bad_chunked(g, "trailer_obs_fold", b"5\r\nhello\r\n0\r\nX-T: 1\r\n continued\r\n\r\n"),
        bad_chunked(g, "trailer_content_length", b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n"),
        bad_chunked(g, "trailer_content_length_lower_case", b"5\r\nhello\r\n0\r\ncontent-length: 5\r\n\r\n"),
        bad_chunked(g, "trailer_transfer_encoding", b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        bad_chunked(g, "trailer_host", b"5\r\nhello\r\n0\r\nHost: evil\r\n\r\n"),
        streamed(
            g,
            "streamed_trailer",
            b"0\r\nX-T: 1\r\n\r\n",
            Answer::Ok,
            Seen::Exact(vec![fwd_post(&[], Framing::Chunked, b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")]),
        ),
        streamed_bad(g, "streamed_trailer_content_length", b"0\r\nContent-Length: 5\r\n\r\n"),
        streamed_bad(g, "streamed_trailer_transfer_encoding", b"0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        streamed_bad(g, "streamed_trailer_host", b"0\r\nHost: evil\r\n\r\n"),
        streamed_bad(g, "streamed_trailer_without_colon", b"0\r\nfoo\r\n\r\n"),
    ]
}

fn head_syntax_cases() -> Vec<Case> {
    let g = SYNTAX;
    vec![
        bad(g, "obs_fold_space", get("/", &["X-Long: first", "  continued"])),
        bad(g, "obs_fold_tab", get("/", &["X-Long: first", "\tcontinued"])),
        bad(g, "obs_fold_transfer_encoding", post(&["Transfer-Encoding:", " chunked"], HELLO_CHUNKED)),
        bad(g, "obs_fold_content_length", post(&["Content-Length:", " 5"], b"hello")),
        bad(g, "first_field_indented", b"GET / HTTP/1.1\r\n Host: t\r\n\r\n".to_vec()),
        bad(g, "space_before_colon_te", post(&["Transfer-Encoding : chunked"], HELLO_CHUNKED)),
        bad(g, "space_before_colon_cl", post(&["Content-Length : 5"], b"hello")),
        bad(g, "tab_before_colon_cl", post(&["Content-Length\t: 5"], b"hello")),
        bad(g, "bare_lf_everywhere", b"GET / HTTP/1.1\nHost: t\n\n".to_vec()),
        bad(g, "bare_lf_one_line", b"GET / HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n".to_vec()),
        bad(
            g,
            "bare_lf_hides_content_length",
            b"POST / HTTP/1.1\r\nHost: t\r\nX: y\nContent-Length: 5\r\n\r\nhello".to_vec(),
        ),
        bad(g, "bare_lf_ends_head", b"GET / HTTP/1.1\r\nHost: t\r\n\n".to_vec()),
        bad(g, "bare_cr_in_value", get("/", &["X-Split: a\rb"])),
        bad(g, "bare_cr_line_end", b"GET / HTTP/1.1\rHost: t\r\n\r\n".to_vec()),
        bad(g, "nul_in_value", get("/", &["X-Nul: a\0b"])),
        bad(g, "nul_in_name", get("/", &["X-N\0ul: a"])),
        bad(g, "vertical_tab_in_value", get("/", &["X-A: a\x0bb"])),
        bad(g, "del_in_value", get("/", &["X-A: a\x7fb"])),
        bad(g, "field_without_colon", get("/", &["X-No-Colon"])),
        bad(g, "field_with_empty_name", get("/", &[": v"])),
        bad(g, "parenthesis_in_name", get("/", &["X(A): 1"])),
        bad(g, "non_ascii_in_name", get("/", &["X-\u{e9}: 1"])),
    ]
}

fn request_line_cases(fallback_host: &'static str) -> Vec<Case> {
    let g = LINE;
    let line = |l: &str| req(l, &["Host: t"], b"");
    let version = |v: &str| line(&format!("GET / {v}"));
    vec![
        accepted(g, "version_1_2", version("HTTP/1.2"), fwd_get("/", &[])),
        accepted(g, "version_1_9", version("HTTP/1.9"), fwd_get("/", &[])),
        accepted(
            g,
            "version_1_2_with_body",
            req("POST / HTTP/1.2", &["Host: t", "Content-Length: 5"], b"hello"),
            fwd_post(&[], Framing::Length(5), b"hello"),
        ),
        refused(g, "version_2_0", version("HTTP/2.0"), 400, "VERSION_NOT_SUPPORTED"),
        refused(g, "version_0_9", version("HTTP/0.9"), 400, "VERSION_NOT_SUPPORTED"),
        refused(g, "version_3_0", version("HTTP/3.0"), 400, "VERSION_NOT_SUPPORTED"),
        bad(g, "version_1_10", version("HTTP/1.10")),
        bad(g, "version_1_dot", version("HTTP/1.")),
        bad(g, "version_11", version("HTTP/11")),
        bad(g, "version_https", version("HTTPS/1.1")),
        bad(g, "version_lower_case", version("http/1.1")),
        bad(g, "host_missing", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        bad(g, "host_twice", req("GET / HTTP/1.1", &["Host: t", "Host: t"], b"")),
        bad(g, "host_twice_different", req("GET / HTTP/1.1", &["Host: t", "host: u"], b"")),
        bad(g, "host_with_space", req("GET / HTTP/1.1", &["Host: a b"], b"")),
        bad(g, "host_with_at", req("GET / HTTP/1.1", &["Host: user@a"], b"")),
        bad(g, "host_with_slash", req("GET / HTTP/1.1", &["Host: a/b"], b"")),
        accepted(g, "host_ows_trimmed", req("GET / HTTP/1.1", &["Host:   t  "], b""), fwd_get("/", &[])),
        accepted(
            g,
            "host_with_port",
            req("GET / HTTP/1.1", &["Host: t:8080"], b""),
            forwarded("GET", "/", FwdHost::Client("t:8080"), &[], Framing::None, None, b""),
        ),
        accepted(
            g,
            "absolute_form_overrides_host",
            req("GET http://a.example/x HTTP/1.1", &["Host: other"], b""),
            forwarded("GET", "/x", FwdHost::Client("a.example"), &[], Framing::None, None, b""),
        ),
        accepted(
            g,
            "absolute_form_without_path",
            req("GET http://a.example HTTP/1.1", &["Host: a.example"], b""),
            forwarded("GET", "/", FwdHost::Client("a.example"), &[], Framing::None, None, b""),
        ),
        bad(g, "absolute_form_with_userinfo", req("GET http://u@a.example/x HTTP/1.1", &["Host: a.example"], b"")),
        refused(
            g,
            "connect",
            req("CONNECT a.example:443 HTTP/1.1", &["Host: a.example:443"], b""),
            405,
            "METHOD_NOT_ALLOWED",
        ),
        bad(g, "target_without_slash", line("GET x HTTP/1.1")),
        accepted(
            g,
            "options_asterisk",
            line("OPTIONS * HTTP/1.1"),
            forwarded("OPTIONS", "*", FwdHost::Client(HOST), &[], Framing::None, None, b""),
        ),
        bad(g, "get_asterisk", line("GET * HTTP/1.1")),
        bad(g, "two_spaces_after_method", line("GET  / HTTP/1.1")),
        bad(g, "tab_after_method", line("GET\t/ HTTP/1.1")),
        bad(g, "space_in_target", line("GET /a b HTTP/1.1")),
        bad(g, "space_after_version", line("GET / HTTP/1.1 ")),
        accepted(
            g,
            "http10_without_host",
            b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            forwarded("GET", "/", FwdHost::Fallback(fallback_host), &[], Framing::None, None, b""),
        )
        .closing(),
        accepted(g, "http10_with_host", version("HTTP/1.0"), fwd_get("/", &[])).closing(),
        accepted(
            g,
            "http10_with_body",
            req("POST / HTTP/1.0", &["Host: t", "Content-Length: 5"], b"hello"),
            fwd_post(&[], Framing::Length(5), b"hello"),
        )
        .closing(),
    ]
}

fn hop_by_hop_cases() -> Vec<Case> {
    let g = HOP;
    let gone = |name, line: &str| accepted(g, name, get("/", &[line, "X-Kept: k"]), fwd_get("/", &["X-Kept: k"]));
    let xff = |name, lines: &[&str], prior| {
        let fwd = forwarded("GET", "/", FwdHost::Client(HOST), &[], Framing::None, Some(prior), b"");
        accepted(g, name, get("/", lines), fwd)
    };
    vec![
        accepted(
            g,
            "connection_listed_field",
            get("/", &["Connection: X-Secret", "X-Secret: s", "X-Kept: k"]),
            fwd_get("/", &["X-Kept: k"]),
        ),
        accepted(
            g,
            "connection_listed_fields",
            get("/", &["Connection: keep-alive, X-A, X-B", "X-A: 1", "X-B: 2", "X-C: 3"]),
            fwd_get("/", &["X-C: 3"]),
        ),
        accepted(
            g,
            "connection_listed_field_other_case",
            get("/", &["Connection: x-secret", "X-SECRET: s"]),
            fwd_get("/", &[]),
        ),
        gone("keep_alive", "Keep-Alive: timeout=5"),
        gone("proxy_connection", "Proxy-Connection: keep-alive"),
        gone("te_trailers", "TE: trailers"),
        gone("trailer", "Trailer: X-T"),
        gone("upgrade_without_connection_upgrade", "Upgrade: h2c"),
        gone("expect_100_continue", "Expect: 100-continue"),
        gone("x_forwarded_proto_replaced", "X-Forwarded-Proto: https"),
        gone("x_forwarded_host_replaced", "X-Forwarded-Host: evil.example"),
        xff("x_forwarded_for_appended", &["X-Forwarded-For: 1.2.3.4"], "1.2.3.4"),
        xff(
            "x_forwarded_for_two_fields",
            &["X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 2.2.2.2"],
            "1.1.1.1, 2.2.2.2",
        ),
        xff("x_forwarded_for_list", &["X-Forwarded-For: 1.1.1.1, 2.2.2.2"], "1.1.1.1, 2.2.2.2"),
        accepted(
            g,
            "kept_fields_byte_for_byte",
            get("/", &["X-Pad:\t v \t", "x-lower: A", "X-Empty:"]),
            fwd_get("/", &["X-Pad:\t v \t", "x-lower: A", "X-Empty:"]),
        ),
    ]
}

fn pipelining_cases() -> Vec<Case> {
    let g = PIPE;
    let pipelined = |name, sends: &[Vec<u8>], fwds: Vec<Vec<u8>>| Case {
        steps: vec![step(sends.concat(), vec![Answer::Ok; sends.len()])],
        seen: Seen::Exact(fwds),
        ..accepted(g, name, Vec::new(), Vec::new())
    };
    vec![
        pipelined("two_gets", &[get("/a", &[]), get("/b", &[])], vec![fwd_get("/a", &[]), fwd_get("/b", &[])]),
        pipelined(
            "three_requests",
            &[get("/a", &[]), post(&["Content-Length: 2"], b"hi"), get("/c", &[])],
            vec![fwd_get("/a", &[]), fwd_post(&[], Framing::Length(2), b"hi"), fwd_get("/c", &[])],
        ),
        pipelined(
            "content_length_body_then_get",
            &[post(&["Content-Length: 5"], b"hello"), get("/second", &[])],
            vec![fwd_post(&[], Framing::Length(5), b"hello"), fwd_get("/second", &[])],
        ),
        pipelined(
            "content_length_zero_then_get",
            &[post(&["Content-Length: 0"], b""), get("/smuggled", &[])],
            vec![fwd_post(&[], Framing::Length(0), b""), fwd_get("/smuggled", &[])],
        ),
        pipelined(
            "no_framing_then_get",
            &[post(&[], b""), get("/second", &[])],
            vec![fwd_post(&[], Framing::None, b""), fwd_get("/second", &[])],
        ),
        pipelined(
            "chunked_body_then_get",
            &[chunked_post(HELLO_CHUNKED), get("/second", &[])],
            vec![fwd_post(&[], Framing::Chunked, HELLO_CHUNKED), fwd_get("/second", &[])],
        ),
        // The body's second half arrives with the next request.
        Case {
            steps: vec![
                Step {
                    send: post(&["Content-Length: 10"], b"hello"),
                    expect: Vec::new(),
                    await_backend: Some(fwd_post(&[], Framing::Length(10), b"hello")),
                },
                step([&b"world"[..], &get("/second", &[])].concat(), vec![Answer::Ok, Answer::Ok]),
            ],
            seen: Seen::Exact(vec![fwd_post(&[], Framing::Length(10), b"helloworld"), fwd_get("/second", &[])]),
            ..accepted(g, "streamed_content_length_body_then_get", Vec::new(), Vec::new())
        },
        Case {
            steps: vec![step(
                [get("/", &[]), post(&["Content-Length: 5", TE_CHUNKED], HELLO_CHUNKED)].concat(),
                vec![Answer::Ok, Answer::Refused(400, BAD_REQUEST)],
            )],
            after: After::Closed,
            seen: Seen::Exact(vec![fwd_get("/", &[])]),
            ..accepted(g, "good_then_refused", Vec::new(), Vec::new())
        },
    ]
}

/// A backend reply for a response-side case.
fn scripted(bytes: &[u8]) -> Reply {
    Reply { bytes: bytes.to_vec(), close: false }
}

/// `GET /` answered by the backend with `reply`; the client must get
/// `first`. With `reusable`, a second `GET /next` on the same connection
/// must then be answered normally; else the gateway closes.
fn response_case(name: &'static str, reply: Reply, first: Answer, reusable: bool) -> Case {
    let mut steps = vec![step(get("/", &[]), vec![first])];
    let mut seen = vec![fwd_get("/", &[])];
    if reusable {
        steps.push(step(get("/next", &[]), vec![Answer::Exact(RELAYED_DEFAULT.to_vec())]));
        seen.push(fwd_get("/next", &[]));
    }
    Case {
        group: RESP,
        name,
        steps,
        after: if reusable { After::Idle } else { After::Closed },
        seen: Seen::Exact(seen),
        replies: vec![reply],
    }
}

fn response_cases() -> Vec<Case> {
    let exact = |b: &[u8]| Answer::Exact(b.to_vec());
    let invalid = || Answer::Refused(502, "INVALID_RESPONSE");
    let hello = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let hello_chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let empty = |status| Answer::Relayed { status, body: Vec::new(), headers: Vec::new() };
    vec![
        response_case(
            "response_connection_content_length",
            scripted(b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"),
            exact(hello),
            true,
        ),
        response_case(
            "response_connection_transfer_encoding",
            scripted(
                b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            ),
            exact(hello_chunked),
            true,
        ),
        response_case(
            "response_cl_and_te",
            scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            invalid(),
            false,
        ),
        response_case(
            "response_te_and_cl",
            scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            invalid(),
            false,
        ),
        response_case(
            "response_connection_listed_cl_with_te",
            scripted(
                b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            ),
            invalid(),
            false,
        ),
        response_case(
            "response_conflicting_cl_fields",
            scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            invalid(),
            false,
        ),
        response_case(
            "response_conflicting_cl_list",
            scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!"),
            invalid(),
            false,
        ),
        response_case(
            "response_cl_not_a_number",
            scripted(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello"),
            invalid(),
            false,
        ),
        response_case(
            "response_cl_plus_sign",
            scripted(b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"),
            invalid(),
            false,
        ),
        response_case(
            "response_bare_lf_head",
            scripted(b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello"),
            invalid(),
            false,
        ),
        response_case(
            "response_bare_lf_one_line",
            scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 5\nX: y\r\n\r\nhello"),
            invalid(),
            false,
        ),
        response_case(
            "response_close_delimited",
            Reply { bytes: b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nhello".to_vec(), close: true },
            Answer::Relayed {
                status: 200,
                body: b"hello".to_vec(),
                headers: vec![("connection", Some("close")), ("content-length", None), ("transfer-encoding", None)],
            },
            false,
        ),
        response_case(
            "response_unknown_coding_close_delimited",
            Reply { bytes: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nnot-gzip".to_vec(), close: true },
            Answer::Relayed { status: 200, body: b"not-gzip".to_vec(), headers: vec![("connection", Some("close"))] },
            false,
        ),
        response_case(
            "response_cl_list_equal",
            scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"),
            exact(hello),
            true,
        ),
        response_case(
            "response_cl_two_equal_fields",
            scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
            exact(hello),
            true,
        ),
        response_case(
            "response_204_with_body_after",
            scripted(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\nhello"),
            empty(204),
            true,
        ),
        response_case(
            "response_304_with_body_after",
            scripted(b"HTTP/1.1 304 Not Modified\r\nServer: x\r\n\r\nhello"),
            empty(304),
            true,
        ),
        response_case(
            "response_exact_head",
            scripted(b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello"),
            exact(b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello"),
            true,
        ),
        response_case(
            "response_content_length_written_last",
            scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello"),
            exact(b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello"),
            true,
        ),
        response_case(
            "response_hop_by_hop_dropped",
            scripted(
                b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-Kept: k\r\nContent-Length: 2\r\n\r\nok",
            ),
            exact(b"HTTP/1.1 200 OK\r\nX-Kept: k\r\nContent-Length: 2\r\n\r\nok"),
            true,
        ),
        response_case(
            "response_http10_backend",
            scripted(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            exact(hello),
            true,
        ),
        response_case(
            "response_te_upper_case",
            scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            exact(hello_chunked),
            true,
        ),
        response_case(
            "response_chunked_extensions_and_trailer_verbatim",
            scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
            exact(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
            true,
        ),
    ]
}

/// Every case. `fallback_host`: the backend's address as configured.
fn corpus(fallback_host: &'static str) -> Vec<Case> {
    [
        cl_te_cases(),
        te_cases(),
        connection_cases(),
        content_length_cases(),
        chunk_line_cases(),
        trailer_cases(),
        head_syntax_cases(),
        request_line_cases(fallback_host),
        hop_by_hop_cases(),
        pipelining_cases(),
        response_cases(),
    ]
    .concat()
}

// ---------------------------------------------------------------------------
// The raw recording backend.

/// Locks, ignoring poisoning: a panicking connection thread leaves the
/// records readable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the backend writes for one parsed request.
#[derive(Debug, Clone)]
struct Reply {
    bytes: Vec<u8>,
    /// Half-close after it: the end of a close-delimited body.
    close: bool,
}

/// A request the backend parsed.
#[derive(Debug, Clone)]
struct SeenRequest {
    head: String,
    /// Decoded, for chunked bodies.
    body: Vec<u8>,
    /// The body was complete (else the connection ended inside it).
    complete: bool,
}

/// One backend connection.
#[derive(Debug, Clone)]
struct ConnRecord {
    seq: u64,
    /// The case it was accepted during.
    epoch: u64,
    peer: SocketAddr,
    raw: Vec<u8>,
    requests: Vec<SeenRequest>,
    /// Why parsing stopped before the end, if it did.
    unparsable: Option<String>,
    closed: bool,
    /// A health probe's connection.
    probe: bool,
}

#[derive(Debug, Default)]
struct BackendState {
    /// Bumped by every case.
    epoch: u64,
    next_seq: u64,
    /// In accept order.
    conns: Vec<ConnRecord>,
    /// The current case's scripted replies.
    replies: VecDeque<Reply>,
    /// Connections the test itself opened (see [`RawBackend::fence`]).
    fences: Vec<SocketAddr>,
}

impl BackendState {
    fn conn(&mut self, seq: u64) -> Option<&mut ConnRecord> {
        self.conns.iter_mut().find(|c| c.seq == seq)
    }
}

/// A backend that records every byte it receives per connection and parses
/// requests out of them as a lenient origin server would, answering each.
/// Stops on drop.
#[derive(Debug)]
struct RawBackend {
    addr: SocketAddr,
    state: Arc<Mutex<BackendState>>,
    stop: Arc<AtomicBool>,
}

impl RawBackend {
    fn start() -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the raw backend");
        let addr = listener.local_addr().expect("the raw backend's address");
        let state = Arc::new(Mutex::new(BackendState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let Ok(peer) = conn.peer_addr() else { continue };
                // Registered before the thread starts, so a connection is
                // in the record as soon as it is accepted.
                let seq = {
                    let mut s = lock(&st);
                    let seq = s.next_seq;
                    s.next_seq += 1;
                    let epoch = s.epoch;
                    s.conns.push(ConnRecord {
                        seq,
                        epoch,
                        peer,
                        raw: Vec::new(),
                        requests: Vec::new(),
                        unparsable: None,
                        closed: false,
                        probe: false,
                    });
                    seq
                };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, seq, &st));
            }
        });
        RawBackend { addr, state, stop }
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts a new case: forgets finished connections, and scripts the
    /// replies to the case's requests.
    fn reset(&self, replies: &[Reply]) {
        let mut s = lock(&self.state);
        s.conns.retain(|c| !c.closed);
        s.epoch += 1;
        s.replies = replies.iter().cloned().collect();
        s.fences.clear();
    }

    /// Waits until every connection established so far has been accepted:
    /// connects, and waits for that connection to be accepted (the accept
    /// queue is in order). Without it, a connection the gateway opened just
    /// before it answered could be accepted after the case is checked.
    fn fence(&self) {
        let Ok(s) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) else { return };
        let Ok(me) = s.local_addr() else { return };
        lock(&self.state).fences.push(me);
        wait_until(Duration::from_secs(5), || lock(&self.state).conns.iter().any(|c| c.peer == me));
    }

    /// The current case's connections (no probes, no fences).
    fn case_conns(&self) -> Vec<ConnRecord> {
        let s = lock(&self.state);
        s.conns.iter().filter(|c| c.epoch == s.epoch && !c.probe && !s.fences.contains(&c.peer)).cloned().collect()
    }

    /// Waits until every connection of the current case has closed; returns
    /// them, and whether they all did within `timeout`.
    fn wait_quiet(&self, timeout: Duration) -> (Vec<ConnRecord>, bool) {
        let quiet = wait_until(timeout, || self.case_conns().iter().all(|c| c.closed));
        (self.case_conns(), quiet)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag; connection threads end
        // on their read time-out at the latest.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// One backend connection: records, parses, answers.
fn serve(mut conn: TcpStream, seq: u64, state: &Mutex<BackendState>) {
    let _ = conn.set_read_timeout(Some(BACKEND_TIMEOUT));
    let mut pending: Vec<u8> = Vec::new();
    let mut parsing = true;
    let mut first = true;
    let mut chunk = [0u8; 16384];
    loop {
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(r) = lock(state).conn(seq) {
            r.raw.extend_from_slice(&chunk[..n]);
        }
        if !parsing {
            continue;
        }
        pending.extend_from_slice(&chunk[..n]);
        while parsing {
            match parse_origin(&pending) {
                Origin::More(_) => break,
                Origin::Bad(head, why) => {
                    let mut s = lock(state);
                    if let Some(r) = s.conn(seq) {
                        r.requests.push(SeenRequest { head, body: Vec::new(), complete: false });
                        r.unparsable = Some(why);
                    }
                    parsing = false;
                }
                Origin::Request { head, body, len } => {
                    pending.drain(..len);
                    let probe = first && head.starts_with(&format!("GET {PROBE_PATH} "));
                    first = false;
                    let reply = {
                        let mut s = lock(state);
                        let epoch = s.epoch;
                        let ours = match s.conn(seq) {
                            Some(r) => {
                                r.probe |= probe;
                                r.requests.push(SeenRequest { head, body, complete: true });
                                !probe && r.epoch == epoch
                            }
                            None => false,
                        };
                        if ours { s.replies.pop_front() } else { None }
                    };
                    let reply = reply.unwrap_or_else(|| Reply { bytes: DEFAULT_REPLY.to_vec(), close: false });
                    if conn.write_all(&reply.bytes).is_err() {
                        parsing = false;
                    } else if reply.close {
                        let _ = conn.shutdown(Shutdown::Write);
                        parsing = false;
                    }
                }
            }
        }
    }
    let mut s = lock(state);
    if let Some(r) = s.conn(seq) {
        if parsing {
            // A head whose body never completed is a request too: it must
            // carry the stamp as well.
            match parse_origin(&pending) {
                Origin::More(Some(head)) => r.requests.push(SeenRequest { head, body: Vec::new(), complete: false }),
                _ if !pending.is_empty() => r.unparsable = Some(format!("{} byte(s) without a head", pending.len())),
                _ => {}
            }
        }
        r.closed = true;
    }
}

/// What [`parse_origin`] found at the start of a buffer.
#[derive(Debug)]
enum Origin {
    /// More bytes are needed; the head, when it is complete.
    More(Option<String>),
    /// A head, then a body no server could read.
    Bad(String, String),
    /// A whole request of `len` bytes.
    Request { head: String, body: Vec<u8>, len: usize },
}

/// Parses one request the way a typical lenient origin server does: the
/// head ends at the first CRLFCRLF; the body is chunked when the last
/// Transfer-Encoding coding is `chunked`, else as long as the first
/// Content-Length says (0 when it is not a number), else empty.
fn parse_origin(buf: &[u8]) -> Origin {
    let Some(end) = find(buf, b"\r\n\r\n") else { return Origin::More(None) };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let rest = &buf[end + 4..];
    let mut codings: Vec<String> = Vec::new();
    let mut length = None;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            codings.extend(value.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()));
        } else if name.eq_ignore_ascii_case("content-length") && length.is_none() {
            length = Some(value.trim().parse::<usize>().unwrap_or(0));
        }
    }
    if codings.last().is_some_and(|c| c == "chunked") {
        match dechunk(rest) {
            Chunks::More => Origin::More(Some(head)),
            Chunks::Bad(why) => Origin::Bad(head, why),
            Chunks::Done { data, len } => Origin::Request { head, body: data, len: end + 4 + len },
        }
    } else if let Some(n) = length {
        if rest.len() < n {
            Origin::More(Some(head))
        } else {
            Origin::Request { head, body: rest[..n].to_vec(), len: end + 4 + n }
        }
    } else {
        Origin::Request { head, body: Vec::new(), len: end + 4 }
    }
}

/// What [`dechunk`] found.
#[derive(Debug)]
enum Chunks {
    More,
    Bad(String),
    /// The data, and the length of the chunked body (trailers included).
    Done {
        data: Vec<u8>,
        len: usize,
    },
}

/// Decodes a chunked body leniently (size before any `;`, trimmed; any
/// trailer lines until an empty one).
fn dechunk(buf: &[u8]) -> Chunks {
    let mut data = Vec::new();
    let mut i = 0;
    loop {
        let Some(eol) = find(&buf[i..], b"\r\n") else { return Chunks::More };
        let line = String::from_utf8_lossy(&buf[i..i + eol]).into_owned();
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Chunks::Bad(format!("chunk size line {:?}", line));
        };
        i += eol + 2;
        if size == 0 {
            loop {
                let Some(eol) = find(&buf[i..], b"\r\n") else { return Chunks::More };
                i += eol + 2;
                if eol == 0 {
                    return Chunks::Done { data, len: i };
                }
            }
        }
        let Some(end) = i.checked_add(size).and_then(|e| e.checked_add(2)) else {
            return Chunks::Bad(format!("chunk size {size_text} overflows"));
        };
        if buf.len() < end {
            return Chunks::More;
        }
        data.extend_from_slice(&buf[i..i + size]);
        if &buf[i + size..end] != b"\r\n" {
            return Chunks::Bad("chunk data not followed by CRLF".into());
        }
        i = end;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// The client side.

/// A response as it arrived.
#[derive(Debug, Clone)]
struct Got {
    raw: Vec<u8>,
    status: u16,
    headers: Vec<(String, String)>,
    /// As framed (a chunked body still chunked).
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What arrived once the expected responses were in.
#[derive(Debug, Default)]
struct Rest {
    bytes: Vec<u8>,
    closed: bool,
}

/// A client connection that keeps every byte it reads.
#[derive(Debug)]
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
    local: SocketAddr,
}

impl Wire {
    fn connect(addr: SocketAddr) -> std::io::Result<Wire> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        Ok(Wire { stream, buf: Vec::new(), local })
    }

    /// Reads more; `Ok(0)` at the close.
    fn fill(&mut self) -> Result<usize, String> {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(format!("nothing more within {CLIENT_TIMEOUT:?}"))
            }
            Err(e) => Err(format!("read failed: {e}")),
        }
    }

    /// Reads one response, framed as a client would (no request here is a
    /// HEAD).
    fn read_response(&mut self) -> Result<Got, String> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill().map_err(|e| format!("no complete response head ({e})"))? == 0 {
                return Err("the connection closed before a complete response head".into());
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status_line = head.split("\r\n").next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {:?}", status_line))?;
        let headers: Vec<(String, String)> = head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let codings: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
            .flat_map(|(_, v)| v.split(',').map(|c| c.trim().to_ascii_lowercase()).collect::<Vec<_>>())
            .collect();
        let length =
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length")).and_then(|(_, v)| v.parse().ok());
        let body_len = if (100..200).contains(&status) || status == 204 || status == 304 {
            0
        } else if !codings.is_empty() && codings.last().is_some_and(|c| c == "chunked") {
            loop {
                match dechunk(&self.buf[head_end..]) {
                    Chunks::Done { len, .. } => break len,
                    Chunks::Bad(why) => return Err(format!("bad chunked response body: {why}")),
                    Chunks::More => {
                        if self.fill().map_err(|e| format!("chunked response body incomplete ({e})"))? == 0 {
                            return Err("the connection closed inside a chunked response body".into());
                        }
                    }
                }
            }
        } else if codings.is_empty()
            && let Some(n) = length
        {
            while self.buf.len() < head_end + n {
                if self.fill().map_err(|e| format!("response body incomplete ({e})"))? == 0 {
                    return Err(format!(
                        "the connection closed {} bytes into a {n}-byte body",
                        self.buf.len() - head_end
                    ));
                }
            }
            n
        } else {
            // Delimited by the close.
            while self.fill().map_err(|e| format!("close-delimited body never ended ({e})"))? > 0 {}
            self.buf.len() - head_end
        };
        let raw: Vec<u8> = self.buf.drain(..head_end + body_len).collect();
        let body = raw[head_end..].to_vec();
        Ok(Got { raw, status, headers, body })
    }

    /// Reads until the gateway closes (or the client time-out passes).
    fn read_rest(&mut self) -> Rest {
        loop {
            match self.fill() {
                Ok(0) => return Rest { bytes: std::mem::take(&mut self.buf), closed: true },
                Ok(_) => {}
                Err(e) if e.contains("reset") => return Rest { bytes: std::mem::take(&mut self.buf), closed: true },
                Err(_) => return Rest { bytes: std::mem::take(&mut self.buf), closed: false },
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Running and checking.

/// Bytes for a report: escaped, and cut when very long.
fn esc(b: &[u8]) -> String {
    const MAX: usize = 1200;
    if b.len() > MAX {
        format!("{}... ({} bytes)", b[..MAX].escape_ascii(), b.len())
    } else {
        b.escape_ascii().to_string()
    }
}

/// Where two byte strings first differ, for a report.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    let from = at.saturating_sub(20);
    let cut = |b: &[u8]| esc(&b[from.min(b.len())..(at + 40).min(b.len())]);
    format!("first difference at byte {at}: got `{}`, expected `{}`", cut(got), cut(want))
}

fn check_answer(want: &Answer, got: &Got) -> Vec<String> {
    let mut p = Vec::new();
    let error = got.header("x-ringgate-error");
    match want {
        Answer::Ok => {
            if got.status != 200 || error.is_some() || got.body != b"ok" {
                p.push(format!(
                    "status {} (x-ringgate-error {:?}, body `{}`), expected the backend's 200 `ok`",
                    got.status,
                    error.unwrap_or("-"),
                    esc(&got.body)
                ));
            }
        }
        Answer::Refused(status, code) => {
            if got.status != *status || error != Some(*code) {
                p.push(format!(
                    "status {} with x-ringgate-error {:?}, expected {status} {code}",
                    got.status,
                    error.unwrap_or("-")
                ));
            }
            if !got.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                p.push(format!("the gateway's {} has no `Connection: close`", got.status));
            }
        }
        Answer::Exact(bytes) => {
            if got.raw != *bytes {
                p.push(format!(
                    "response `{}`, expected exactly `{}`; {}",
                    esc(&got.raw),
                    esc(bytes),
                    first_difference(&got.raw, bytes)
                ));
            }
        }
        Answer::Relayed { status, body, headers } => {
            if got.status != *status || got.body != *body || error.is_some() {
                p.push(format!(
                    "status {} (x-ringgate-error {:?}) body `{}`, expected {status} with body `{}`",
                    got.status,
                    error.unwrap_or("-"),
                    esc(&got.body),
                    esc(body)
                ));
            }
            for (name, value) in headers {
                let have = got.header(name);
                let ok = match value {
                    None => have.is_none(),
                    Some(v) => have.is_some_and(|h| h.eq_ignore_ascii_case(v)),
                };
                if !ok {
                    p.push(format!("header {name} is {have:?}, expected {value:?}"));
                }
            }
        }
    }
    p
}

fn check_seen(want: &Seen, conns: &[ConnRecord], client: &str) -> Vec<String> {
    let mut p = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        for r in &c.requests {
            if !has_stamp(&r.head, client) {
                let line = r.head.split("\r\n").next().unwrap_or_default();
                p.push(format!(
                    "backend connection {} parsed `{}` without ringgate's X-Forwarded-For stamp: a smuggled request",
                    i + 1,
                    line.escape_debug()
                ));
            }
        }
    }
    match want {
        Seen::Nothing => {
            if !conns.is_empty() {
                p.push(format!("the backend got {} connection(s), expected none", conns.len()));
            }
        }
        Seen::Exact(list) => {
            if conns.len() != list.len() {
                p.push(format!("the backend got {} connection(s), expected {}", conns.len(), list.len()));
            }
            for (i, (c, want)) in conns.iter().zip(list).enumerate() {
                let want = with_client(want, client);
                let raw = mask_trace(&c.raw);
                if raw != want {
                    p.push(format!(
                        "backend connection {} got other bytes than expected; {}",
                        i + 1,
                        first_difference(&raw, &want)
                    ));
                }
            }
        }
        Seen::PrefixOf(full) => {
            let full = with_client(full, client);
            if conns.len() > 1 {
                p.push(format!("the backend got {} connections, expected at most one", conns.len()));
            }
            for c in conns {
                let raw = mask_trace(&c.raw);
                if !full.starts_with(&raw) {
                    p.push(format!(
                        "the backend got bytes that are not the start of the forwarded request; {}",
                        first_difference(&raw, &full)
                    ));
                }
                if c.requests.iter().any(|r| r.complete) {
                    p.push("the backend received a complete request although the gateway refused it".into());
                }
            }
        }
    }
    p
}

/// What a case expects of the backend, for a report.
fn describe_seen(want: &Seen, client: &str) -> String {
    match want {
        Seen::Nothing => "  nothing (no connection)\n".into(),
        Seen::Exact(list) => {
            list.iter().enumerate().map(|(i, b)| format!("  #{} `{}`\n", i + 1, esc(&with_client(b, client)))).collect()
        }
        Seen::PrefixOf(b) => format!("  at most a prefix of `{}`\n", esc(&with_client(b, client))),
    }
}

/// Runs one case; returns its failure report, if it failed.
fn run_case(gw: SocketAddr, backend: &RawBackend, case: &Case) -> Option<String> {
    GATEWAY_PORT.with(|p| p.set(gw.port()));
    backend.reset(&case.replies);
    let mut problems: Vec<String> = Vec::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut wire = match Wire::connect(gw) {
        Ok(w) => w,
        Err(e) => {
            return Some(format!("---- [{}] {}\n  - cannot connect to the gateway: {e}\n", case.group, case.name));
        }
    };
    let client = client_id(wire.local);
    let mut complete = true;
    let mut n = 0;
    'steps: for step in &case.steps {
        if let Err(e) = wire.stream.write_all(&step.send) {
            problems.push(format!("sending failed: {e}"));
            complete = false;
            break;
        }
        for want in &step.expect {
            n += 1;
            match wire.read_response() {
                Ok(r) => {
                    problems.extend(check_answer(want, &r).into_iter().map(|p| format!("response {n}: {p}")));
                    got.push(r.raw);
                }
                Err(e) => {
                    problems.push(format!("response {n}: {e}"));
                    complete = false;
                    break 'steps;
                }
            }
        }
        if let Some(prefix) = &step.await_backend {
            let prefix = with_client(prefix, &client);
            let there = || backend.case_conns().iter().any(|c| mask_trace(&c.raw).starts_with(&prefix));
            if !wait_until(QUIET_TIMEOUT, there) {
                problems.push(format!("the backend never received `{}` before the next write", esc(&prefix)));
            }
        }
    }
    // Then nothing but the close: a response more would be an answer to a
    // request the client never sent.
    let await_close = case.after == After::Closed && problems.is_empty();
    if !await_close {
        let _ = wire.stream.shutdown(Shutdown::Write);
    }
    let rest = wire.read_rest();
    if complete {
        if !rest.bytes.is_empty() {
            problems.push(format!("{} byte(s) arrived after the expected response(s)", rest.bytes.len()));
        }
        if !rest.closed {
            problems.push(if await_close {
                "the gateway kept the connection open, a close was expected".into()
            } else {
                "the gateway did not close after the client's half-close".into()
            });
        }
    }
    drop(wire);
    backend.fence();
    let (conns, quiet) = backend.wait_quiet(QUIET_TIMEOUT);
    if !quiet {
        problems.push(format!("a backend connection was still open {QUIET_TIMEOUT:?} after the client was done"));
    }
    problems.extend(check_seen(&case.seen, &conns, &client));
    if problems.is_empty() {
        return None;
    }

    let mut r = format!("---- [{}] {}\n", case.group, case.name);
    for p in &problems {
        let _ = writeln!(r, "  - {p}");
    }
    for (i, step) in case.steps.iter().enumerate() {
        let _ = writeln!(r, " sent #{}: `{}`", i + 1, esc(&step.send));
    }
    let _ = writeln!(r, " client got:");
    for (i, g) in got.iter().enumerate() {
        let _ = writeln!(r, "  #{} `{}`", i + 1, esc(g));
    }
    let _ = writeln!(r, "  then `{}` and {}", esc(&rest.bytes), if rest.closed { "the close" } else { "no close" });
    let _ = writeln!(r, " backend got {} connection(s):", conns.len());
    for (i, c) in conns.iter().enumerate() {
        let _ = writeln!(r, "  #{} `{}`{}", i + 1, esc(&c.raw), if c.closed { "" } else { " (still open)" });
        for q in &c.requests {
            let line = q.head.split("\r\n").next().unwrap_or_default();
            let _ = writeln!(
                r,
                "     parsed `{}` with a {}-byte body{}{}",
                line.escape_debug(),
                q.body.len(),
                if q.complete { "" } else { " (incomplete)" },
                if has_stamp(&q.head, &client) { "" } else { ", NO STAMP" }
            );
        }
        if let Some(why) = &c.unparsable {
            let _ = writeln!(r, "     then unparsable: {why}");
        }
    }
    let _ = write!(r, " backend expected:\n{}", describe_seen(&case.seen, &client));
    Some(r)
}

/// A gateway in front of `backend`: every request on a fresh backend
/// connection, a probe the backend can tell apart, and no admin API.
fn start_gateway(backend: &RawBackend) -> Gateway {
    let probe = format!("path = \"{PROBE_PATH}\"\ninterval = \"24h\"");
    let config = probed_config(
        &[backend.addr().to_string()],
        backend.addr().port(),
        "max_idle_connections = 0\nrequest_timeout = 5",
        Some(&probe),
        "off",
    );
    Gateway::start(&config)
}

#[test]
fn smuggling_corpus() {
    let backend = RawBackend::start();
    let gw = start_gateway(&backend);
    // The server as the configuration writes it: the Host of an HTTP/1.0
    // request that has none.
    let fallback: &'static str = Box::leak(backend.addr().to_string().into_boxed_str());
    let cases = corpus(fallback);
    assert!(cases.len() >= 150, "the corpus has {} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "case names are unique");

    let filter = std::env::var("SMUGGLING_FILTER").ok();
    let selected: Vec<&Case> = cases.iter().filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f))).collect();
    let started = Instant::now();
    let mut by_group: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failures: Vec<(&Case, String)> = Vec::new();
    for case in &selected {
        let entry = by_group.entry(case.group).or_default();
        entry.0 += 1;
        if let Some(report) = run_case(gw.addr("public"), &backend, case) {
            entry.1 += 1;
            failures.push((case, report));
        }
    }

    let mut summary = format!("{} cases in {:.1?}:\n", selected.len(), started.elapsed());
    for (group, (total, failed)) in &by_group {
        let _ = writeln!(summary, "  {group:<32} {total:>3} cases, {failed:>3} failed");
    }
    for (case, report) in &failures {
        let first = report.lines().nth(1).unwrap_or_default().trim_start_matches("  - ");
        let _ = writeln!(summary, "FAIL {}: {first}", case.name);
    }
    println!("{summary}");
    let reports: Vec<&str> = failures.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} smuggling cases failed\n{summary}\n{}\ngateway log (last lines):\n{}",
        failures.len(),
        selected.len(),
        reports.join("\n"),
        gw.stderr().lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// The harness itself: a right expectation passes, a wrong one fails with a
/// report that names the case and shows the bytes, and a request smuggled
/// to the backend without the stamp is caught.
#[test]
fn the_harness_tells_right_from_wrong() {
    let backend = RawBackend::start();
    let gw = start_gateway(&backend);
    let addr = gw.addr("public");

    let right = accepted(
        "self-check",
        "right",
        post(&["Content-Length: 5"], b"hello"),
        fwd_post(&[], Framing::Length(5), b"hello"),
    );
    if let Some(report) = run_case(addr, &backend, &right) {
        panic!("a right expectation failed:\n{report}\n{}", gw.stderr());
    }

    let wrong = Case {
        name: "wrong_on_purpose",
        seen: Seen::Exact(vec![fwd_post(&[], Framing::Length(6), b"hello")]),
        steps: vec![step(post(&["Content-Length: 5"], b"hello"), vec![Answer::Refused(400, BAD_REQUEST)])],
        ..right.clone()
    };
    let report = run_case(addr, &backend, &wrong).expect("a wrong expectation must fail");
    for needle in [
        "wrong_on_purpose",
        "status 200 with x-ringgate-error \"-\", expected 400 BAD_REQUEST",
        "backend connection 1 got other bytes than expected",
        "Content-Length: 5\\r\\nX-Forwarded-For: 127.0.0.1",
        "POST / HTTP/1.1\\r\\nHost: t\\r\\nContent-Length: 5\\r\\n\\r\\nhello",
    ] {
        assert!(report.contains(needle), "the report does not say {needle:?}:\n{report}");
    }

    // A request parsed out of another request's body has no stamp: sent
    // straight to the backend, the smuggled GET must be reported.
    backend.reset(&[]);
    let mut direct = TcpStream::connect(backend.addr()).expect("connect to the backend");
    direct.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("timeout");
    let smuggling = [&fwd_post(&[], Framing::None, b"")[..], b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"].concat();
    direct.write_all(&with_client(&smuggling, "127.0.0.1")).expect("send");
    let mut answers = Vec::new();
    let mut chunk = [0u8; 1024];
    while answers.len() < 2 * DEFAULT_REPLY.len() {
        match direct.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answers.extend_from_slice(&chunk[..n]),
        }
    }
    assert_eq!(answers, [DEFAULT_REPLY, DEFAULT_REPLY].concat(), "the backend answers each request it parses");
    drop(direct);
    let (conns, quiet) = backend.wait_quiet(QUIET_TIMEOUT);
    assert!(quiet);
    let problems = check_seen(&Seen::Exact(vec![smuggling]), &conns, "127.0.0.1");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("`GET /smuggled HTTP/1.1` without ringgate's X-Forwarded-For stamp"), "{problems:?}");
}

/// The backend frames like a lenient origin: the last coding decides
/// chunked, then the first Content-Length, chunk extensions and trailers
/// skipped.
#[test]
fn the_backend_parses_like_a_lenient_origin() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"GET / HTTP/1.1\r\nHost: t\r\n\r\nNEXT", b""),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcNEXT", b"abc"),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcNEXT", b"abc"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nNEXT", b"abc"),
        (b"POST / HTTP/1.1\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nNEXT", b""),
    ];
    for (input, body) in cases {
        match parse_origin(input) {
            Origin::Request { body: b, len, .. } => {
                assert_eq!(b, *body, "{}", input.escape_ascii());
                assert_eq!(&input[len..], b"NEXT", "{}", input.escape_ascii());
            }
            other => panic!("{}: {other:?}", input.escape_ascii()),
        }
    }
    assert!(matches!(parse_origin(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc"), Origin::More(Some(_))));
    assert!(matches!(parse_origin(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), Origin::Bad(..)));
    assert!(has_stamp("GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4, 127.0.0.1", "127.0.0.1"));
    assert!(!has_stamp("GET / HTTP/1.1\r\nX-Forwarded-For: 127.0.0.1, 1.2.3.4", "127.0.0.1"));
    assert!(!has_stamp("GET / HTTP/1.1\r\nHost: t", "127.0.0.1"));
}
