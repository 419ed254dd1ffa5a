//! Request heads: the forms that must parse, and every smuggling and limit
//! case that must be refused with its status.

use super::*;

fn parse(raw: &[u8]) -> Result<RequestHead, RequestError> {
    parse_with(raw, &ParseLimits::default())
}

fn parse_with(raw: &[u8], limits: &ParseLimits) -> Result<RequestHead, RequestError> {
    let mut h = RequestHead::default();
    match parse_request(raw, limits, &mut h)? {
        Parsed::Complete(n) => {
            assert_eq!(n, h.head_len);
            Ok(h)
        }
        Parsed::Partial => Err(RequestError::Malformed("partial")),
    }
}

#[test]
fn simple_get() {
    let raw = b"GET /index.html?x=1 HTTP/1.1\r\nHost: Example.com:8080\r\nUser-Agent: t\r\n\r\n";
    let h = parse(raw).unwrap();
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.target.of(raw), b"/index.html?x=1");
    assert_eq!(h.path.of(raw), b"/index.html?x=1");
    assert_eq!(h.host.unwrap().of(raw), b"Example.com:8080");
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.body, BodyKind::Empty);
    assert!(!h.close && !h.upgrade && !h.expect_continue);
    assert_eq!(h.headers.len(), 2);
}

#[test]
fn bodies_and_connection_options() {
    let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n").unwrap();
    assert_eq!(h.body, BodyKind::Length(10));
    let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(h.body, BodyKind::Chunked);
    assert!(h.close);
    let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n").unwrap();
    assert_eq!(h.body, BodyKind::Chunked);
    let h = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(h.close, "HTTP/1.0 closes by default");
    let h = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
    assert!(!h.close);
    let h = parse(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").unwrap();
    assert!(h.expect_continue);
    let h = parse(b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .unwrap();
    assert!(h.upgrade);
    let h = parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n").unwrap();
    assert!(!h.upgrade, "Connection: upgrade without Upgrade is not an upgrade");
}

#[test]
fn target_forms() {
    let raw = b"GET http://api.example.com/v1?q HTTP/1.1\r\nHost: other\r\n\r\n";
    let h = parse(raw).unwrap();
    assert_eq!(h.host.unwrap().of(raw), b"api.example.com");
    assert_eq!(h.path.of(raw), b"/v1?q");
    let raw = b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(parse(raw).unwrap().path.of(raw), b"*");
    assert_eq!(
        parse(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err(),
        RequestError::Malformed("invalid request target")
    );
    assert_eq!(
        parse(b"GET index HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err(),
        RequestError::Malformed("invalid request target")
    );
}

#[test]
fn smuggling_defences() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "conflicting Content-Length values",
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", "conflicting Content-Length values"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", "invalid Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", "invalid Content-Length"),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "chunked is not the final transfer coding",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "chunked applied more than once",
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", "empty Transfer-Encoding"),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n",
            "empty element in the Transfer-Encoding list",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;foo=bar\r\n\r\n",
            "chunked takes no parameters in Transfer-Encoding",
        ),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 request"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
            "invalid header name (obsolete line folding is not accepted)",
        ),
        (b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", "bare LF in the request head"),
        (b"GET / HTTP/1.1\nHost: a\n\n", "bare LF in the request head"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n", "invalid character in a header value"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "more than one Host header"),
        (b"GET / HTTP/1.1\r\nX: a\r\n\r\n", "missing Host header"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid Host header"),
        (b"GET / HTTP/1.1\r\nHost: user@evil\r\n\r\n", "invalid Host header"),
        (b"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n", "invalid header name (obsolete line folding is not accepted)"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", "invalid character in a header value"),
        (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request line"),
    ];
    for (raw, reason) in cases {
        let got = parse(raw);
        assert_eq!(
            got.as_ref().err(),
            Some(&RequestError::Malformed(reason)),
            "{:?} -> {got:?}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(got.unwrap_err().status(), 400);
    }
    for raw in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
    ] {
        assert_eq!(
            parse(raw).unwrap_err(),
            RequestError::Malformed("Transfer-Encoding without a final chunked"),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    for raw in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: cow\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert_eq!(parse(raw).unwrap_err(), RequestError::NotImplemented, "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn limits_map_to_their_statuses() {
    let limits = ParseLimits { max_head: 1024, max_headers: 8, max_uri: 100 };
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(200));
    assert_eq!(parse_with(long_uri.as_bytes(), &limits).unwrap_err(), RequestError::UriTooLong);
    assert_eq!(RequestError::UriTooLong.status(), 414);

    let mut h = RequestHead::default();
    let open_line = format!("GET /{}", "a".repeat(300));
    assert_eq!(parse_request(open_line.as_bytes(), &limits, &mut h), Err(RequestError::UriTooLong));

    let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", "X: y\r\n".repeat(9));
    assert_eq!(parse_with(many.as_bytes(), &limits).unwrap_err(), RequestError::TooManyHeaders);
    assert_eq!(RequestError::TooManyHeaders.status(), 431);

    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "b".repeat(1100));
    assert_eq!(parse_request(big.as_bytes(), &limits, &mut h), Err(RequestError::HeadTooLarge));
    let big_complete = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "b".repeat(1100));
    assert_eq!(parse_with(big_complete.as_bytes(), &limits).unwrap_err(), RequestError::HeadTooLarge);
}

#[test]
fn other_refusals() {
    assert_eq!(parse(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n").unwrap_err(), RequestError::MethodNotAllowed);
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n").unwrap_err(),
        RequestError::ExpectationFailed
    );
    assert_eq!(parse(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n").unwrap_err(), RequestError::VersionNotSupported);
    assert_eq!(parse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap_err(), RequestError::VersionNotSupported);
    assert!(matches!(parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").unwrap_err(), RequestError::Malformed(_)));
}

#[test]
fn higher_minor_versions_are_handled_as_http11() {
    for v in ["1.2", "1.9"] {
        let raw = format!("GET /v HTTP/{v}\r\nHost: a\r\nX: y\r\n\r\n");
        let h = parse(raw.as_bytes()).unwrap_or_else(|e| panic!("HTTP/{v}: {e:?}"));
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.path.of(raw.as_bytes()), b"/v");
        assert_eq!(h.headers[1].value.of(raw.as_bytes()), b"y");
    }
    // Arriving in pieces: partial until the head is whole.
    let raw = b"GET / HTTP/1.2\r\nHost: a\r\n\r\n";
    for cut in 1..raw.len() {
        let mut h = RequestHead::default();
        assert_eq!(parse_request(&raw[..cut], &ParseLimits::default(), &mut h), Ok(Parsed::Partial), "cut at {cut}");
    }
    for v in ["2.0", "0.9", "3.0"] {
        let raw = format!("GET / HTTP/{v}\r\nHost: a\r\n\r\n");
        assert_eq!(parse(raw.as_bytes()).unwrap_err(), RequestError::VersionNotSupported, "HTTP/{v}");
    }
    for bad in ["HTTP/1.10", "HTTP/1.", "HTTP/11", "HTTPS/1.1", "http/1.1", "HTTP/1.2x"] {
        let raw = format!("GET / {bad}\r\nHost: a\r\n\r\n");
        assert!(matches!(parse(raw.as_bytes()), Err(RequestError::Malformed(_))), "{bad}: {:?}", parse(raw.as_bytes()));
    }
}

#[test]
fn request_transfer_encoding_answers() {
    let te = |v: &str| {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {v}\r\n\r\n");
        parse(raw.as_bytes()).map(|h| h.body)
    };
    assert_eq!(te("chunked"), Ok(BodyKind::Chunked));
    assert_eq!(te("gzip, chunked"), Err(RequestError::NotImplemented));
    assert_eq!(RequestError::NotImplemented.status(), 501);
    assert!(matches!(te("chunked,"), Err(RequestError::Malformed(_))));
    assert!(matches!(te("chunked;foo=bar"), Err(RequestError::Malformed(_))));
}

#[test]
fn partial_heads_wait_for_more() {
    let raw = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    let head_len = raw.len() - 3;
    for cut in 0..head_len {
        let mut h = RequestHead::default();
        assert_eq!(parse_request(&raw[..cut], &ParseLimits::default(), &mut h), Ok(Parsed::Partial), "cut at {cut}");
    }
    let mut h = RequestHead::default();
    assert_eq!(parse_request(raw, &ParseLimits::default(), &mut h), Ok(Parsed::Complete(head_len)));
}

#[test]
fn pipelined_requests_parse_one_after_another() {
    let raw = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut h = RequestHead::default();
    let Ok(Parsed::Complete(n)) = parse_request(raw, &ParseLimits::default(), &mut h) else { panic!() };
    assert_eq!(h.path.of(raw), b"/1");
    let rest = &raw[n..];
    let Ok(Parsed::Complete(_)) = parse_request(rest, &ParseLimits::default(), &mut h) else { panic!() };
    assert_eq!(h.path.of(rest), b"/2");
}

mod roundtrip {
    //! Property: a request written from generated parts parses back to the
    //! same parts, and its rewrite for the backend parses too.
    use super::*;
    use crate::{ForwardInfo, write_request_head};
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9-]{0,15}"
    }

    proptest! {
        #[test]
        fn request_codec_round_trips(
            method in prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"]),
            path in "/[a-zA-Z0-9/._~%-]{0,40}(\\?[a-z0-9=&]{0,20})?",
            host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}(:[1-9][0-9]{0,3})?",
            fields in prop::collection::vec((token(), "[ -~]{0,30}"), 0..12),
            body in prop::option::of(0u64..100_000),
        ) {
            let fields: Vec<(String, String)> = fields
                .into_iter()
                .filter(|(n, _)| HeaderKind::of(n.as_bytes()) == HeaderKind::Other)
                .map(|(n, v)| (n, v.trim().to_string()))
                .collect();
            let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
            for (n, v) in &fields {
                raw.push_str(&format!("{n}: {v}\r\n"));
            }
            if let Some(len) = body {
                raw.push_str(&format!("Content-Length: {len}\r\n"));
            }
            raw.push_str("\r\n");
            let raw = raw.into_bytes();
            let h = parse(&raw).unwrap();
            prop_assert_eq!(h.method_span.of(&raw), method.as_bytes());
            prop_assert_eq!(h.path.of(&raw), path.as_bytes());
            prop_assert_eq!(h.host.unwrap().of(&raw), host.as_bytes());
            prop_assert_eq!(h.head_len, raw.len());
            let want_body = match body { Some(0) | None => BodyKind::Empty, Some(n) => BodyKind::Length(n) };
            prop_assert_eq!(h.body, want_body);
            let parsed: Vec<(&[u8], &[u8])> = h
                .headers
                .iter()
                .filter(|x| x.kind == HeaderKind::Other)
                .map(|x| (x.name.of(&raw), x.value.of(&raw)))
                .collect();
            let expected: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
            prop_assert_eq!(parsed, expected);

            let info =
                ForwardInfo { client_ip: b"127.0.0.1", proto: b"http", host_override: None, fallback_host: b"x", target: None, ..Default::default() };
            let mut out = Vec::new();
            write_request_head(&raw, &h, &info, &mut out);
            let again = parse(&out).unwrap();
            prop_assert_eq!(again.path.of(&out), path.as_bytes());
            prop_assert_eq!(again.body, want_body);
            prop_assert_eq!(again.headers.iter().filter(|x| x.kind == HeaderKind::Other).count(), fields.len());
        }
    }
}
