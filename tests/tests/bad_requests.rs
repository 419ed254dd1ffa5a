//! Requests the gateway refuses on its own: each gets its status, an
//! `x-ringgate-error` code, a short reason in the body, and a closed
//! connection (after a framing error nobody can tell where the next request
//! would start). None of them reaches the backend.

use std::time::Duration;

use ringgate_e2e::*;

const LIMITS: &str = r#"max_request_head = "1KiB"
max_headers = 10
max_uri = 256
max_request_body = "1KiB""#;

fn gateway(b: &Backend) -> Gateway {
    Gateway::start(&with_limits(&simple_config(&[b.addr()], ""), LIMITS))
}

/// Sends `bytes` on a fresh connection; checks the answer is `status` with
/// `code`, a body containing `reason`, and a close.
fn refused(gw: &Gateway, bytes: &[u8], status: u16, code: &str, reason: &str) {
    let what = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    c.send(bytes).expect("send");
    let r = c.read_response(false).unwrap_or_else(|e| panic!("{what:?}: {e}\n{}", gw.stderr()));
    assert_eq!(r.status, status, "{what:?}: {r:?}");
    assert_eq!(r.header("x-ringgate-error"), Some(code), "{what:?}: {r:?}");
    let text = r.text();
    assert!(text.starts_with(&format!("{status} ")), "{what:?}: {text}");
    assert!(text.contains(reason), "{what:?}: the body does not say {reason:?}: {text}");
    assert!(text.len() < 200, "{what:?}: a short reason, not {} bytes", text.len());
    assert!(r.closed, "{what:?}: `connection: close` expected: {r:?}");
    assert!(c.is_closed_within(Duration::from_secs(5)), "{what:?}: the connection stayed open");
}

#[test]
fn malformed_request_line_is_refused_with_400() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    refused(&gw, b"this is not http\r\n\r\n", 400, "BAD_REQUEST", "invalid");
    refused(&gw, b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400, "BAD_REQUEST", "invalid request line");
    assert_eq!(b.requests_to("/a"), 0);
}

#[test]
fn content_length_with_transfer_encoding_is_refused_with_400() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let req = b"POST /smuggle HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    refused(&gw, req, 400, "BAD_REQUEST", "both Content-Length and Transfer-Encoding");
    assert_eq!(b.requests_to("/smuggle"), 0);
}

#[test]
fn conflicting_content_lengths_are_refused_with_400() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let req = b"POST /smuggle HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    refused(&gw, req, 400, "BAD_REQUEST", "Content-Length");
    assert_eq!(b.requests_to("/smuggle"), 0);
}

#[test]
fn transfer_encoding_other_than_one_chunked_is_refused() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    // A coding the gateway does not decode: 501 (RFC 9112 §6.1).
    for te in ["gzip, chunked", "cow, chunked"] {
        let req = format!("POST /gzip HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {te}\r\n\r\n");
        refused(&gw, req.as_bytes(), 501, "NOT_IMPLEMENTED", "only the chunked transfer coding");
    }
    // A malformed list, or chunked misused: 400.
    for (te, reason) in [
        ("chunked, gzip", "chunked is not the final transfer coding"),
        // RFC 9112 §6.3 (4): no final chunked, no length: 400.
        ("gzip", "Transfer-Encoding without a final chunked"),
        ("chunked,", "empty element in the Transfer-Encoding list"),
        ("chunked;foo=bar", "chunked takes no parameters"),
    ] {
        let req = format!("POST /gzip HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {te}\r\n\r\n");
        refused(&gw, req.as_bytes(), 400, "BAD_REQUEST", reason);
    }
    assert_eq!(b.requests_to("/gzip"), 0);
}

#[test]
fn obsolete_line_folding_is_refused_with_400() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let req = b"GET /fold HTTP/1.1\r\nHost: t\r\nX-Long: first\r\n  continued\r\n\r\n";
    refused(&gw, req, 400, "BAD_REQUEST", "obsolete line folding");
    assert_eq!(b.requests_to("/fold"), 0);
}

#[test]
fn bare_lf_line_endings_are_refused_with_400() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    refused(&gw, b"GET /lf HTTP/1.1\nHost: t\n\n", 400, "BAD_REQUEST", "bare LF");
    refused(&gw, b"GET /lf HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n", 400, "BAD_REQUEST", "bare LF");
    assert_eq!(b.requests_to("/lf"), 0);
}

#[test]
fn invalid_chunk_size_is_refused_with_400() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let req = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    refused(&gw, req, 400, "BAD_REQUEST", "in the request body");
    assert!(b.recorded().iter().all(|r| r.path() != "/echo" || r.body.is_empty()), "no body was delivered");
}

#[test]
fn invalid_chunk_extension_is_refused_with_400() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    // `;=x` has no extension name; a quoted value must close its quote.
    for body in [&b"5;=x\r\nhello\r\n0\r\n\r\n"[..], b"5;a=\"open\r\nhello\r\n0\r\n\r\n"] {
        let mut req = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        refused(&gw, &req, 400, "BAD_REQUEST", "invalid chunk extension");
    }
}

#[test]
fn bare_cr_in_a_header_is_refused_with_400() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    refused(&gw, b"GET / HTTP/1.1\r\nHost: t\r\nX-Split: a\rb\r\n\r\n", 400, "BAD_REQUEST", "header value");
    assert!(b.recorded().iter().all(|r| r.header("x-split").is_none()), "the request did not reach the backend");
}

#[test]
fn missing_host_in_http11_is_refused_with_400() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    refused(&gw, b"GET /nohost HTTP/1.1\r\n\r\n", 400, "BAD_REQUEST", "missing Host");
    assert_eq!(b.requests_to("/nohost"), 0);
}

#[test]
fn request_head_over_the_limit_is_refused_with_431() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let big = "a".repeat(1100);
    let req = format!("GET /big HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    refused(&gw, req.as_bytes(), 431, "HEADERS_TOO_LARGE", "too large");
    assert_eq!(b.requests_to("/big"), 0);
}

#[test]
fn too_many_header_fields_are_refused_with_431() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let mut req = String::from("GET /many HTTP/1.1\r\nHost: t\r\n");
    for i in 0..12 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    refused(&gw, req.as_bytes(), 431, "HEADERS_TOO_LARGE", "too many request header fields");
    assert_eq!(b.requests_to("/many"), 0);
}

#[test]
fn headers_within_the_limits_are_accepted() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let mut headers = vec![("X-Fill", "f".repeat(600))];
    headers.extend((0..8).map(|i| (["X-A", "X-B", "X-C", "X-D", "X-E", "X-F", "X-G", "X-H"][i], "v".to_string())));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let path = format!("/{}", "p".repeat(200));
    let r = request(gw.addr("public"), "GET", &path, &headers, b"").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn request_target_over_max_uri_is_refused_with_414() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let req = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "u".repeat(300));
    refused(&gw, req.as_bytes(), 414, "URI_TOO_LONG", "request target too long");
    assert_eq!(b.requests(), b.requests_to("/"), "only probes, if any, reached the backend");
}

#[test]
fn content_length_over_max_request_body_is_refused_with_413() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let req = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n";
    refused(&gw, req, 413, "BODY_TOO_LARGE", "exceeds max_request_body");
    assert_eq!(b.requests_to("/upload"), 0);
}

#[test]
fn chunked_body_over_max_request_body_is_refused_with_413() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let mut req = b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(format!("800\r\n{}\r\n0\r\n\r\n", "x".repeat(0x800)).as_bytes());
    refused(&gw, &req, 413, "BODY_TOO_LARGE", "exceeds max_request_body");
    assert!(b.recorded().iter().all(|r| r.path() != "/upload" || r.body.is_empty()), "no body was delivered");
}

#[test]
fn unsupported_expectation_is_refused_with_417() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    refused(&gw, b"GET /x HTTP/1.1\r\nHost: t\r\nExpect: magic\r\n\r\n", 417, "EXPECTATION_FAILED", "100-continue");
}

#[test]
fn a_refused_request_does_not_disturb_other_connections() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = gateway(&b);
    let mut good = Client::connect(gw.addr("public")).unwrap();
    assert_eq!(good.request("GET", "/before", &[], b"").unwrap().status, 200);
    refused(&gw, b"GET /lf HTTP/1.1\nHost: t\n\n", 400, "BAD_REQUEST", "bare LF");
    let r = good.request("GET", "/after", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"b1\n");
}
