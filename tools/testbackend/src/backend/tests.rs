//! The backend over real loopback sockets: raw request bytes in, exact
//! response bytes out, for every mode and special path, plus the listener and
//! connection life cycle.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::*;
use crate::request::ChunkedDecoder;
use crate::wait::wait_until;
use crate::wire;

/// Generous bound for anything that should be immediate; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

fn backend(name: &str) -> Backend {
    Backend::start_ok(name).expect("start backend")
}

fn with_mode(mode: Mode) -> Backend {
    Backend::builder().name("m").mode(mode).start().expect("start backend")
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A raw HTTP client that keeps unread bytes between responses, so
/// pipelined answers can be taken one at a time.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(b: &Backend) -> Client {
        let stream = TcpStream::connect(b.addr()).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
        Client { stream, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).expect("read response");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill() > 0, "EOF after {} of {n} bytes: {:?}", self.buf.len(), self.text());
        }
        self.buf.drain(..n).collect()
    }

    fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill() > 0 {}
        std::mem::take(&mut self.buf)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    fn response(&mut self) -> Response {
        self.response_to("GET")
    }

    fn response_to(&mut self, method: &str) -> Response {
        let (status, headers) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut slots);
            let status = parsed.parse(&self.buf).expect("valid response head");
            if let httparse::Status::Complete(len) = status {
                let code = parsed.code.expect("status code");
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect();
                self.buf.drain(..len);
                break (code, headers);
            }
            assert!(self.fill() > 0, "EOF inside a response head: {:?}", self.text());
        };
        let mut response = Response { status, headers, body: Vec::new() };
        if method == "HEAD" || !response::status_has_body(status) {
            return response;
        }
        if response.header("transfer-encoding").is_some() {
            let mut decoder = ChunkedDecoder::new();
            loop {
                let used = decoder.feed(&self.buf, &mut response.body).expect("valid chunked response");
                self.buf.drain(..used);
                if decoder.is_done() {
                    break;
                }
                assert!(self.fill() > 0, "EOF inside a chunked body");
            }
        } else if let Some(length) = response.header("content-length") {
            let length = length.parse().expect("numeric content-length");
            response.body = self.take(length);
        } else {
            response.body = self.read_to_end();
        }
        response
    }

    /// The backend closed (FIN) with nothing more to read.
    fn expect_eof(&mut self) {
        assert_eq!(self.fill(), 0, "expected EOF, got {:?}", self.text());
        assert!(self.buf.is_empty());
    }

    /// Nothing arrives for a while and the connection is still open.
    fn expect_silence(&mut self) {
        self.stream.set_read_timeout(Some(QUIET)).expect("read timeout");
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            other => panic!("expected silence, got {other:?}"),
        }
        self.stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    }
}

/// Sends `request` on a fresh connection and returns all bytes until the backend closes.
fn exchange(b: &Backend, request: &[u8]) -> Vec<u8> {
    let mut client = Client::connect(b);
    client.send(request);
    client.read_to_end()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

// ---- Ok mode --------------------------------------------------------------

#[test]
fn ok_mode_answers_its_name_with_exact_bytes() {
    let b = backend("alpha");
    assert_eq!(
        text(&exchange(&b, GET_CLOSE)),
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-backend: alpha\r\ncontent-length: 6\r\n\
         connection: close\r\n\r\nalpha\n"
    );
    assert_eq!((b.connections(), b.requests(), b.requests_to("/")), (1, 1, 1));
}

#[test]
fn configured_body_replaces_the_name() {
    let b = Backend::builder().name("n").body("custom").start().expect("start");
    let mut c = Client::connect(&b);
    c.send(GET);
    assert_eq!(c.response().body, b"custom");
    let b = Backend::builder().body_bytes(30).start().expect("start");
    let mut c = Client::connect(&b);
    c.send(GET);
    assert_eq!(c.response().body, b"abcdefghijklmnopqrstuvwxyzabcd");
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let b = backend("ka");
    let mut c = Client::connect(&b);
    for _ in 0..2 {
        c.send(GET);
        let r = c.response();
        assert_eq!((r.status, r.header("connection")), (200, None));
    }
    assert_eq!((b.connections(), b.requests(), b.open_connections()), (1, 2, 1));
    let ids: Vec<u64> = b.recorded().iter().map(|r| r.connection_id).collect();
    assert_eq!(ids, [1, 1]);
    drop(c);
    assert!(wait_until(PATIENCE, || b.open_connections() == 0));
}

#[test]
fn http10_closes_unless_asked_to_keep_alive() {
    let b = backend("old");
    let raw = text(&exchange(&b, b"GET / HTTP/1.0\r\n\r\n"));
    assert!(raw.contains("\r\nconnection: close\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n\r\nold\n"), "{raw}");

    let mut c = Client::connect(&b);
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.response().header("connection"), Some("keep-alive"));
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().header("connection"), Some("close"));
    c.expect_eof();
    assert_eq!(b.connections(), 2);
}

#[test]
fn head_request_gets_headers_only_and_connection_stays_usable() {
    let b = backend("h");
    let mut c = Client::connect(&b);
    c.send(b"HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    let head = c.response_to("HEAD");
    assert_eq!((head.status, head.header("content-length")), (200, Some("2")));
    assert_eq!(c.response().body, b"h\n");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let b = backend("p");
    let mut c = Client::connect(&b);
    c.send(
        b"GET /status/201 HTTP/1.1\r\n\r\n\
          POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
          POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /bytes?n=3 HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    let statuses_and_bodies: Vec<(u16, Vec<u8>)> = (0..4).map(|_| c.response()).map(|r| (r.status, r.body)).collect();
    assert_eq!(
        statuses_and_bodies,
        [(201, b"201 Created\n".to_vec()), (200, b"hello".to_vec()), (200, b"abc".to_vec()), (200, b"abc".to_vec())]
    );
    c.expect_eof();
    assert_eq!((b.connections(), b.requests()), (1, 4));
}

#[test]
fn echo_returns_the_body_and_its_length() {
    let b = backend("e");
    let mut c = Client::connect(&b);
    c.send(b"POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world");
    let r = c.response();
    assert_eq!((r.status, r.body.as_slice(), r.header("x-request-body-bytes")), (200, &b"hello world"[..], Some("11")));
}

#[test]
fn chunked_request_body_is_decoded_and_echoed() {
    let b = backend("e");
    let mut c = Client::connect(&b);
    c.stream.set_nodelay(true).expect("nodelay");
    // Sent in pieces that split sizes, data and the final CRLFs.
    for piece in [
        &b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r"[..],
        b"\nwi",
        b"ki\r\n5;ext=1\r\npe",
        b"dia\r\n0\r\n",
        b"\r\n",
    ] {
        c.send(piece);
        thread::yield_now();
    }
    let r = c.response();
    assert_eq!((r.body.as_slice(), r.header("x-request-body-bytes")), (&b"wikipedia"[..], Some("9")));
    assert_eq!(b.recorded()[0].body, b"wikipedia");
}

#[test]
fn echo_headers_lists_request_headers_in_order() {
    let b = backend("e");
    let mut c = Client::connect(&b);
    c.send(b"GET /echo-headers HTTP/1.1\r\nHost: example\r\nX-B: 2\r\nx-a: 1\r\n\r\n");
    assert_eq!(text(&c.response().body), "Host: example\nX-B: 2\nx-a: 1\n");
}

#[test]
fn status_path_answers_that_status() {
    let b = backend("s");
    let mut c = Client::connect(&b);
    c.send(b"GET /status/404 HTTP/1.1\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, text(&r.body)), (404, "404 Not Found\n".to_owned()));
    for code in [204, 304] {
        c.send(format!("GET /status/{code} HTTP/1.1\r\n\r\n").as_bytes());
        let r = c.response();
        assert_eq!((r.status, r.header("content-length")), (code, None));
    }
    for bad in ["abc", "150", "1000"] {
        c.send(format!("GET /status/{bad} HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(c.response().status, 400, "{bad}");
    }
    // Nothing stray was sent after the bodyless answers.
    c.send(GET);
    assert_eq!(c.response().body, b"s\n");
}

#[test]
fn chunked_path_sends_n_chunks() {
    let b = backend("c");
    let raw = text(&exchange(&b, b"GET /chunked?n=2 HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert!(raw.contains("\r\ntransfer-encoding: chunked\r\n"), "{raw}");
    assert!(!raw.contains("content-length"), "{raw}");
    assert!(raw.ends_with("\r\n\r\n8\r\nchunk-0\n\r\n8\r\nchunk-1\n\r\n0\r\n\r\n"), "{raw}");
    let mut c = Client::connect(&b);
    c.send(b"GET /chunked HTTP/1.1\r\n\r\n");
    assert_eq!(text(&c.response().body), "chunk-0\nchunk-1\nchunk-2\n");
}

#[test]
fn bytes_path_sends_exactly_n_pattern_bytes() {
    let b = backend("b");
    let mut c = Client::connect(&b);
    c.send(b"GET /bytes?n=30 HTTP/1.1\r\n\r\n");
    assert_eq!(c.response().body, b"abcdefghijklmnopqrstuvwxyzabcd");
    c.send(b"GET /bytes?n=200001 HTTP/1.1\r\n\r\n");
    let body = c.response().body;
    assert_eq!(body.len(), 200_001);
    assert!(body.iter().enumerate().all(|(i, &byte)| byte == b'a' + (i % 26) as u8));
    c.send(b"GET /bytes?n=x HTTP/1.1\r\n\r\n");
    assert_eq!(c.response().status, 400);
}

#[test]
fn slow_path_waits_before_answering() {
    let b = backend("slow");
    let mut c = Client::connect(&b);
    let started = Instant::now();
    c.send(b"GET /slow?ms=150 HTTP/1.1\r\n\r\n");
    assert_eq!(c.response().body, b"slow\n");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[test]
fn close_path_answers_then_drops_a_kept_alive_connection() {
    let b = backend("cl");
    let mut c = Client::connect(&b);
    c.send(b"GET /close HTTP/1.1\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.header("connection"), r.body.as_slice()), (200, None, &b"cl\n"[..]));
    c.expect_eof();
}

#[test]
fn eof_body_is_delimited_by_the_close() {
    let b = backend("eof");
    let mut c = Client::connect(&b);
    c.send(b"GET /eof-body?n=5 HTTP/1.1\r\n\r\n");
    let r = c.response();
    assert_eq!((r.header("content-length"), r.header("transfer-encoding")), (None, None));
    assert_eq!(r.body, b"abcde");
}

#[test]
fn upgrade_switches_to_echoing_bytes() {
    let b = backend("ws");
    let mut c = Client::connect(&b);
    c.send(b"GET /upgrade HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nearly");
    let r = c.response_to("GET");
    assert_eq!((r.status, r.header("upgrade")), (101, Some("websocket")));
    assert_eq!(c.take(5), b"early");
    c.send(b"ping");
    assert_eq!(c.take(4), b"ping");
    c.stream.shutdown(Shutdown::Write).expect("half-close");
    c.expect_eof();

    let mut plain = Client::connect(&b);
    plain.send(b"GET /upgrade HTTP/1.1\r\n\r\n");
    assert_eq!(plain.response().status, 400);
}

#[test]
fn expect_continue_gets_100_before_the_body_is_sent() {
    let b = backend("x");
    let mut c = Client::connect(&b);
    c.send(b"POST /continue HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(c.take(wire::CONTINUE.len()), wire::CONTINUE);
    c.send(b"hello");
    let r = c.response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    // Any path: the 100 comes before the body is read.
    c.send(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(c.take(wire::CONTINUE.len()), wire::CONTINUE);
    c.send(b"ab");
    assert_eq!(c.response().body, b"x\n");
    assert_eq!(b.recorded()[1].body, b"ab");
}

// ---- health ---------------------------------------------------------------

#[test]
fn health_path_answers_per_set_health() {
    let b = backend("hp");
    let mut c = Client::connect(&b);
    c.send(b"GET /health HTTP/1.1\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.body.as_slice(), r.header("x-backend")), (200, &b"healthy"[..], Some("hp")));
    b.set_health(503, "down");
    c.send(b"GET /health?probe=1 HTTP/1.1\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.body.as_slice()), (503, &b"down"[..]));
    assert_eq!(b.requests_to("/health"), 2);

    let custom = Backend::builder().health_path("/hc").health(204, "").start().expect("start");
    let mut c = Client::connect(&custom);
    c.send(b"GET /hc HTTP/1.1\r\n\r\n");
    assert_eq!(c.response().status, 204);
}

#[test]
fn held_health_answers_only_once_released_and_traffic_goes_on() {
    let b = Backend::builder().name("held").hold_health().start().expect("start");
    let mut probe = Client::connect(&b);
    probe.send(b"GET /health HTTP/1.1\r\n\r\n");
    probe.expect_silence();
    // Other paths are answered meanwhile.
    let mut c = Client::connect(&b);
    c.send(GET);
    assert_eq!(c.response().status, 200);
    b.release_health();
    assert_eq!(probe.response().body, b"healthy");
    // From now on at once.
    probe.send(b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(probe.response().status, 200);
}

#[test]
fn a_held_health_answer_never_outlives_the_idle_timeout() {
    let b = Backend::builder().hold_health().idle_timeout(Duration::from_millis(200)).start().expect("start");
    let mut c = Client::connect(&b);
    c.send(b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(c.response().status, 200, "answered once the bound passed");
}

// ---- modes ----------------------------------------------------------------

#[test]
fn slow_mode_delays_answers_but_not_health() {
    let b = with_mode(Mode::Slow(Duration::from_millis(200)));
    let mut c = Client::connect(&b);
    let started = Instant::now();
    c.send(GET);
    assert_eq!(c.response().status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));

    b.set_mode(Mode::Slow(Duration::from_secs(30)));
    let started = Instant::now();
    c.send(b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(c.response().body, b"healthy");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn status_mode_answers_every_path_but_health() {
    let b = with_mode(Mode::Status(503));
    let mut c = Client::connect(&b);
    for path in ["/", "/echo", "/anything?x=1"] {
        c.send(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
        let r = c.response();
        assert_eq!((r.status, text(&r.body)), (503, "503 Service Unavailable\n".to_owned()), "{path}");
    }
    c.send(b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(c.response().status, 200);
}

#[test]
fn mode_switch_applies_to_the_next_request_on_an_open_connection() {
    let b = backend("sw");
    let mut c = Client::connect(&b);
    c.send(GET);
    assert_eq!(c.response().status, 200);
    b.set_mode(Mode::Status(500));
    assert_eq!(b.mode(), Mode::Status(500));
    c.send(GET);
    assert_eq!(c.response().status, 500);
    b.set_mode(Mode::Garbage);
    c.send(GET);
    assert_eq!(c.read_to_end(), wire::GARBAGE);
}

#[test]
fn stall_mode_reads_the_head_and_never_answers() {
    let b = with_mode(Mode::Stall);
    let mut c = Client::connect(&b);
    c.send(GET);
    assert!(wait_until(PATIENCE, || b.requests() == 1));
    c.expect_silence();
    // The health path stalls too: the mode is connection-level.
    let mut h = Client::connect(&b);
    h.send(b"GET /health HTTP/1.1\r\n\r\n");
    assert!(wait_until(PATIENCE, || b.requests_to("/health") == 1));
    h.expect_silence();
}

#[test]
fn reset_mode_closes_with_rst() {
    let b = with_mode(Mode::Reset);
    let mut c = Client::connect(&b);
    c.send(GET);
    let mut buf = [0u8; 16];
    let err = c.stream.read(&mut buf).expect_err("reset");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(b.requests(), 1);
}

#[test]
fn close_immediately_closes_without_reading() {
    let b = with_mode(Mode::CloseImmediately);
    let mut c = Client::connect(&b);
    let mut buf = [0u8; 16];
    assert_eq!(c.stream.read(&mut buf).expect("clean close"), 0);
    assert_eq!((b.connections(), b.requests()), (1, 0));
}

#[test]
fn half_response_and_garbage_send_their_bytes_and_close() {
    for (mode, bytes) in [(Mode::HalfResponse, wire::HALF_RESPONSE), (Mode::Garbage, wire::GARBAGE)] {
        let b = with_mode(mode.clone());
        assert_eq!(exchange(&b, GET), bytes, "{mode}");
        assert_eq!(exchange(&b, b"GET /health HTTP/1.1\r\n\r\n"), bytes, "{mode} on health");
    }
}

#[test]
fn malformed_answers_keep_the_connection_open() {
    for (mode, bytes) in [
        (Mode::MalformedStatus, wire::MALFORMED_STATUS),
        (Mode::MalformedHeaders, wire::MALFORMED_HEADERS),
        (Mode::BodyLonger, wire::BODY_LONGER),
    ] {
        let b = with_mode(mode.clone());
        let mut c = Client::connect(&b);
        for _ in 0..2 {
            c.send(GET);
            assert_eq!(c.take(bytes.len()), bytes, "{mode}");
        }
        c.expect_silence();
        c.send(GET_CLOSE);
        assert_eq!(c.read_to_end(), bytes, "{mode}");
    }
}

#[test]
fn body_shorter_stalls_mid_body() {
    let b = with_mode(Mode::BodyShorter);
    let mut c = Client::connect(&b);
    c.send(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(c.take(wire::BODY_SHORTER.len()), wire::BODY_SHORTER);
    c.expect_silence();
    assert_eq!(b.recorded()[0].body, b"abc");
}

// ---- request log ------------------------------------------------------------

#[test]
fn recorded_requests_keep_what_was_sent() {
    let b = backend("r");
    let mut c = Client::connect(&b);
    c.send(b"POST /x/y?q=1 HTTP/1.1\r\nHost: h\r\nX-Trace: abc\r\nContent-Length: 4\r\n\r\nbody");
    assert_eq!(c.response().status, 200);
    let log = b.recorded();
    assert_eq!(log.len(), 1);
    let r = &log[0];
    assert_eq!(
        (r.method.as_str(), r.target.as_str(), r.path(), r.version.as_str()),
        ("POST", "/x/y?q=1", "/x/y", "HTTP/1.1")
    );
    assert_eq!(
        r.headers,
        [("Host".to_owned(), "h".to_owned()), ("X-Trace".into(), "abc".into()), ("Content-Length".into(), "4".into())]
    );
    assert_eq!((r.header("x-trace"), r.body.as_slice()), (Some("abc"), &b"body"[..]));
    assert_eq!((r.peer, r.connection_id), (c.stream.local_addr().expect("local addr"), 1));
    assert_eq!((b.requests_to("/x/y"), b.requests_to("/x/y?q=1")), (1, 0));
    b.clear_recorded();
    assert!(b.recorded().is_empty());
    assert_eq!(b.requests(), 1);
}

#[test]
fn record_limit_keeps_the_latest() {
    let b = Backend::builder().record_limit(2).start().expect("start");
    let mut c = Client::connect(&b);
    for i in 0..3 {
        c.send(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
        c.response();
    }
    let targets: Vec<String> = b.recorded().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/1", "/2"]);
}

// ---- bad input ----------------------------------------------------------------

#[test]
fn unparseable_requests_get_an_error_status_and_a_close() {
    let b = backend("bad");
    let mut huge = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    huge.resize(100 * 1024, b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    let cases: [(&[u8], &str); 5] = [
        (b"this is not http\r\n\r\n", "HTTP/1.1 400 "),
        (&huge, "HTTP/1.1 431 "),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 2, 3\r\n\r\nab", "HTTP/1.1 400 "),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 400 "),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", "HTTP/1.1 413 "),
    ];
    for (request, expected) in cases {
        let raw = text(&exchange(&b, request));
        assert!(raw.starts_with(expected), "{expected}: {raw}");
        assert!(raw.contains("\r\nconnection: close\r\n"), "{raw}");
    }
    let mut c = Client::connect(&b);
    c.send(GET);
    assert_eq!(c.response().status, 200);
}

static BACKEND_THREAD_PANICKED: AtomicBool = AtomicBool::new(false);

#[test]
fn random_input_never_panics_a_connection_thread() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if thread::current().name().is_some_and(|n| n.starts_with("testbackend-")) {
                BACKEND_THREAD_PANICKED.store(true, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
    let b = Backend::builder().idle_timeout(Duration::from_millis(500)).start().expect("start");
    let fragments: [&[u8]; 12] = [
        b"GET ",
        b"/echo ",
        b"HTTP/1.1\r\n",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"\r\n",
        b"5\r\nab",
        b"0\r\n\r\n",
        b"Expect: 100-continue\r\n",
        b"\xff\x00\xfe",
        b"/status/",
        b"?n=",
    ];
    // xorshift: deterministic, so a failure reproduces.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..60 {
        let mut input = Vec::new();
        for _ in 0..(next() % 12) {
            match next() % 3 {
                0 => input.extend((0..next() % 20).map(|_| next() as u8)),
                _ => input.extend_from_slice(fragments[(next() % fragments.len() as u64) as usize]),
            }
        }
        let mut c = Client::connect(&b);
        // Errors are fine (the backend may reset); only its survival matters.
        let _ = c.stream.write_all(&input);
        let _ = c.stream.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = c.stream.read_to_end(&mut sink);
    }
    let mut c = Client::connect(&b);
    c.send(GET);
    assert_eq!(c.response().status, 200);
    assert!(!BACKEND_THREAD_PANICKED.load(Ordering::SeqCst), "a connection thread panicked");
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let b = Backend::builder().idle_timeout(Duration::from_millis(100)).start().expect("start");
    let mut c = Client::connect(&b);
    c.expect_eof();
    assert!(wait_until(PATIENCE, || b.open_connections() == 0));
}

#[test]
fn builder_rejects_unusable_settings() {
    for builder in [
        Backend::builder().name("a\r\nb"),
        Backend::builder().health_path("health"),
        Backend::builder().idle_timeout(Duration::ZERO),
    ] {
        let err = builder.start().expect_err("invalid");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

// ---- listener and connection life cycle ------------------------------------------

#[test]
fn stop_listening_refuses_and_resume_serves_the_same_port() {
    let b = backend("lc");
    let addr = b.addr();
    assert!(text(&exchange(&b, GET_CLOSE)).ends_with("lc\n"));
    b.stop_listening();
    assert!(!b.is_listening());
    let err = TcpStream::connect_timeout(&addr, PATIENCE).expect_err("refused");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    b.resume_listening().expect("rebind");
    b.resume_listening().expect("already listening is fine");
    assert!(b.is_listening());
    assert_eq!(b.addr(), addr);
    assert!(text(&exchange(&b, GET_CLOSE)).ends_with("lc\n"));
    assert_eq!(b.connections(), 2);
}

#[test]
fn stop_listening_keeps_open_connections_until_closed() {
    let b = backend("oc");
    let mut c = Client::connect(&b);
    c.send(GET);
    c.response();
    b.stop_listening();
    c.send(GET);
    assert_eq!(c.response().status, 200);
    assert_eq!(b.close_connections(), 1);
    c.expect_eof();
    assert!(wait_until(PATIENCE, || b.open_connections() == 0));
}

#[test]
fn stop_ends_stalled_slow_and_upgraded_connections_promptly() {
    let b = with_mode(Mode::Stall);
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(&b)).collect();
    for c in &mut clients {
        c.send(GET);
    }
    assert!(wait_until(PATIENCE, || b.requests() == 3));
    b.set_mode(Mode::Ok);
    let mut ws = Client::connect(&b);
    ws.send(b"GET /upgrade HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    assert_eq!(ws.response().status, 101);
    b.set_mode(Mode::Slow(Duration::from_secs(60)));
    let mut slow = Client::connect(&b);
    slow.send(GET);
    assert!(wait_until(PATIENCE, || b.requests() == 5));
    assert_eq!(b.open_connections(), 5);

    let started = Instant::now();
    b.stop();
    assert!(started.elapsed() < Duration::from_secs(1), "stop took {:?}", started.elapsed());
    for mut c in clients.into_iter().chain([ws, slow]) {
        c.expect_eof();
    }
}

#[test]
fn dropped_backend_refuses_connections() {
    let b = backend("gone");
    let addr = b.addr();
    drop(b);
    let err = TcpStream::connect_timeout(&addr, PATIENCE).expect_err("refused");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}
