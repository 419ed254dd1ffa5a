//! How the gateway treats what a backend answers, byte for byte: fields a
//! proxy must drop, framing it must refuse, interim responses, and framing
//! errors found before anything was relayed. The backends here reply with
//! fixed raw bytes.

use std::time::Duration;

use ringgate_e2e::*;

/// One GET through a gateway whose only server answers `response`.
fn through(response: &'static [u8]) -> (Response, Gateway, CannedBackend) {
    let b = CannedBackend::start(response);
    let gw = Gateway::start(&simple_config(&[b.addr()], "request_timeout = \"2s\""));
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    c.set_timeout(Duration::from_secs(5));
    c.send(&format_request("GET", "/canned", &[], b"")).expect("send");
    let r = c.read_response(false).unwrap_or_else(|e| panic!("no response: {e}\n{}", gw.stderr()));
    (r, gw, b)
}

/// A 502 INVALID_RESPONSE: the client is told so in public words
/// (`error_detail`'s default), the access log's `error_detail` says why.
fn assert_invalid_response(gw: &Gateway, r: &Response, reason: &str) {
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.header("x-ringgate-error"), Some("INVALID_RESPONSE"), "{r:?}");
    assert_eq!(r.text(), "502 Bad Gateway: the backend server sent an invalid response\n");
    assert!(r.closed, "{r:?}");
    let logged = wait_until(Duration::from_secs(5), || {
        gw.access_log().iter().any(|l| l["error_detail"].as_str().is_some_and(|d| d.contains(reason)))
    });
    assert!(logged, "no access log detail says {reason:?}: {:#?}", gw.access_log());
}

#[test]
fn response_hop_by_hop_headers_are_not_relayed() {
    let (r, gw, _b) = through(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\nX-Kept: k\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.body, b"ok");
    assert_eq!(r.header("x-kept"), Some("k"));
    for gone in ["x-secret", "keep-alive", "proxy-connection"] {
        assert_eq!(r.header(gone), None, "{gone} was relayed: {:?}", r.headers);
    }
    assert!(!r.header("connection").is_some_and(|v| v.to_ascii_lowercase().contains("x-secret")), "{:?}", r.headers);
}

#[test]
fn conflicting_response_content_lengths_answer_502_invalid_response() {
    let (r, gw, _b) = through(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk");
    assert_invalid_response(&gw, &r, "conflicting Content-Length");
}

#[test]
fn response_with_content_length_and_transfer_encoding_answers_502_invalid_response() {
    let (r, gw, _b) =
        through(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    assert_invalid_response(&gw, &r, "both Content-Length and Transfer-Encoding");
}

#[test]
fn response_status_outside_100_to_599_answers_502_invalid_response() {
    let (r, gw, _b) = through(b"HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok");
    assert_invalid_response(&gw, &r, "status code");
}

#[test]
fn response_head_with_a_bare_lf_answers_502_invalid_response() {
    let (r, gw, _b) = through(b"HTTP/1.1 200 OK\r\nContent-Length: 2\nX: y\r\n\r\nok");
    assert_invalid_response(&gw, &r, "bare LF");
}

#[test]
fn unsolicited_101_answers_502_invalid_response() {
    let (r, gw, _b) = through(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    assert_invalid_response(&gw, &r, "101 to a request that asked no upgrade");
}

#[test]
fn early_hints_are_relayed_before_the_final_response() {
    let b = CannedBackend::start(
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    c.send(&format_request("GET", "/hints", &[], b"")).expect("send");
    let hints = c.read_response(false).expect("the 103");
    assert_eq!(hints.status, 103, "{}", gw.stderr());
    assert_eq!(hints.header("link"), Some("</style.css>; rel=preload"));
    let r = c.read_response(false).expect("the final response");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok");
}

#[test]
fn close_delimited_response_with_an_unknown_coding_is_relayed_until_the_close() {
    let (r, gw, _b) = through(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nnot-really-gzip");
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("transfer-encoding"), Some("gzip"));
    assert_eq!(r.body, b"not-really-gzip");
    assert!(r.closed);
}

#[test]
fn invalid_chunked_response_before_any_byte_was_relayed_answers_502_invalid_response() {
    let b = CannedBackend::start(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n");
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    c.set_timeout(Duration::from_secs(5));
    c.send(&format_request("GET", "/bad-chunks", &[], b"")).expect("send");
    // Nothing had been sent to the client when the framing error was found,
    // so it can still be told why (exchange.rs: "until the first response
    // byte is sent to the client, every failure becomes a 502 with its code").
    let r = c.read_response(false).unwrap_or_else(|e| panic!("no response: {e}"));
    assert_invalid_response(&gw, &r, "chunk");
    assert!(wait_until(Duration::from_secs(10), || !gw.access_log().is_empty()));
    let line = &gw.access_log()[0];
    assert_eq!(line["status"].as_u64(), Some(502), "{line}");
    assert_eq!(line["error_info"].as_str(), Some("INVALID_RESPONSE"), "{line}");
}

#[test]
fn repeated_identical_response_content_length_reaches_the_client_as_one_value() {
    let b = CannedBackend::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok");
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    // Read raw: a client that cannot parse the list would wait for a close.
    let req = format_request("GET", "/listed", &[("Connection", "close")], b"");
    let raw = raw(gw.addr("public"), &req, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&raw).into_owned();
    // A 502 would do as well as normalising; relaying the list would not.
    if text.starts_with("HTTP/1.1 502 ") {
        return;
    }
    assert!(text.starts_with("HTTP/1.1 200 "), "{text:?}\n{}", gw.stderr());
    let lengths: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim())
        .collect();
    assert_eq!(lengths, ["2"], "{text:?}");
    assert!(text.ends_with("\r\n\r\nok"), "{text:?}");
}
