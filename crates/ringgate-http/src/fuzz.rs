//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer). Each
//! feeds arbitrary bytes through a parser and checks the invariants the proxy
//! relies on; a panic here is a bug.

use crate::{
    BodyKind, ChunkedDecoder, ForwardInfo, HeaderKind, ParseLimits, Parsed, RequestHead, ResponseHead, ResponseRewrite,
    parse_request, parse_response, write_request_head, write_response_head,
};

/// Request heads: a complete head's spans lie inside it, and its rewrite for
/// the backend parses again to the same framing.
pub fn request(data: &[u8]) {
    let limits = ParseLimits { max_head: 16 * 1024, max_headers: 64, max_uri: 4096 };
    let mut head = RequestHead::default();
    let Ok(Parsed::Complete(len)) = parse_request(data, &limits, &mut head) else { return };
    assert!(len <= data.len());
    for h in &head.headers {
        assert!(h.name.end as usize <= len && h.value.end as usize <= len);
    }
    let info = ForwardInfo {
        client_ip: b"192.0.2.1",
        proto: b"http",
        host_override: None,
        fallback_host: b"h:80",
        target: None,
        ..Default::default()
    };
    let mut out = Vec::new();
    write_request_head(data, &head, &info, &mut out);
    let mut again = RequestHead::default();
    let big = ParseLimits { max_head: out.len() + 1, max_headers: 1024, max_uri: 1 << 20 };
    match parse_request(&out, &big, &mut again) {
        Ok(Parsed::Complete(n)) => {
            assert_eq!(n, out.len(), "the rewrite is exactly one head");
            assert_eq!(again.body, head.body, "the rewrite frames the body the same way");
        }
        other => panic!("rewritten head does not parse: {other:?}\n{}", String::from_utf8_lossy(&out)),
    }
}

/// The request rewrite as a server sees it: the request at the start of
/// `data` is parsed, its head rewritten and its body forwarded as ringgate
/// frames it; the forwarded bytes are then parsed again as the server would
/// parse them. The server must see exactly one request, with the same
/// method, target, host and body framing, a body that ends exactly where the
/// forwarded bytes end, ringgate's X-Forwarded-For stamp, and none of the
/// fields the client's Connection header named. A difference here is a
/// request the server could be made to read differently from ringgate:
/// smuggling.
pub fn request_rewrite(data: &[u8]) {
    const CLIENT_IP: &[u8] = b"192.0.2.1";
    let limits = ParseLimits { max_head: 16 * 1024, max_headers: 64, max_uri: 4096 };
    let mut head = RequestHead::default();
    let Ok(Parsed::Complete(len)) = parse_request(data, &limits, &mut head) else { return };

    // The body as ringgate forwards it: verbatim, up to where it frames
    // the end. A body that does not end within `data` is not checked.
    let rest = &data[len..];
    let body_len = match head.body {
        BodyKind::Empty | BodyKind::UntilClose => 0,
        BodyKind::Length(n) => match usize::try_from(n) {
            Ok(n) if n <= rest.len() => n,
            _ => return,
        },
        BodyKind::Chunked => match ChunkedDecoder::new().feed(rest, |_| {}) {
            Ok(p) if p.done => p.consumed,
            _ => return,
        },
    };
    let info = ForwardInfo {
        client_ip: CLIENT_IP,
        proto: b"http",
        host_override: None,
        fallback_host: b"h:80",
        target: None,
        ..Default::default()
    };
    let mut forwarded = Vec::new();
    write_request_head(data, &head, &info, &mut forwarded);
    let head_out = forwarded.len();
    forwarded.extend_from_slice(&rest[..body_len]);

    let mut seen = RequestHead::default();
    let big = ParseLimits { max_head: head_out + 1, max_headers: 1024, max_uri: 1 << 20 };
    let n = match parse_request(&forwarded, &big, &mut seen) {
        Ok(Parsed::Complete(n)) => n,
        other => panic!("the forwarded head does not parse: {other:?}\n{}", String::from_utf8_lossy(&forwarded)),
    };
    let show = || String::from_utf8_lossy(&forwarded).into_owned();
    assert_eq!(n, head_out, "the forwarded head is exactly one head: {}", show());
    assert_eq!(seen.body, head.body, "the server frames the body as ringgate did: {}", show());
    assert_eq!(seen.method_span.of(&forwarded), head.method_span.of(data), "{}", show());
    let server_body = &forwarded[n..];
    let server_body_len = match seen.body {
        BodyKind::Empty | BodyKind::UntilClose => 0,
        BodyKind::Length(n) => n as usize,
        BodyKind::Chunked => match ChunkedDecoder::new().feed(server_body, |_| {}) {
            Ok(p) if p.done => p.consumed,
            other => panic!("the server cannot find the end of the chunked body: {other:?}: {}", show()),
        },
    };
    assert_eq!(server_body_len, server_body.len(), "the body ends where the forwarded bytes end: {}", show());
    if let Some(h) = head.host {
        assert_eq!(seen.host.map(|s| s.of(&forwarded)), Some(h.of(data)), "{}", show());
    }
    let path = head.path.of(data);
    let seen_path = seen.path.of(&forwarded);
    assert!(seen_path == path || seen_path.strip_prefix(b"/") == Some(path), "{}", show());

    let fields = |kind| seen.headers.iter().filter(move |h| h.kind == kind);
    let xff: Vec<_> = fields(HeaderKind::XForwardedFor).collect();
    assert_eq!(xff.len(), 1, "one X-Forwarded-For: {}", show());
    assert!(xff[0].value.of(&forwarded).ends_with(CLIENT_IP), "{}", show());
    assert!(fields(HeaderKind::ContentLength).count() <= 1, "{}", show());
    assert!(fields(HeaderKind::TransferEncoding).count() <= 1, "{}", show());
    assert!(fields(HeaderKind::Host).count() == 1, "{}", show());
    for h in fields(HeaderKind::Connection) {
        assert!(head.upgrade && h.value.of(&forwarded) == b"upgrade", "no Connection but for an upgrade: {}", show());
    }
    // What the client's Connection named (but the framing fields and Host,
    // which ringgate writes itself) must not reach the server.
    for named in head.headers.iter().filter(|h| h.listed_in_connection) {
        if matches!(named.kind, HeaderKind::Host | HeaderKind::ContentLength | HeaderKind::TransferEncoding) {
            continue;
        }
        let name = named.name.of(data);
        let leaked = seen.headers.iter().any(|h| h.name.of(&forwarded).eq_ignore_ascii_case(name));
        assert!(!leaked, "{:?} was named in Connection: {}", String::from_utf8_lossy(name), show());
    }
}

/// Response heads: same invariants, for the client side.
pub fn response(data: &[u8]) {
    let mut head = ResponseHead::default();
    let is_head = data.first().is_some_and(|b| b & 1 == 1);
    let Ok(Parsed::Complete(len)) = parse_response(data, 16 * 1024, 64, is_head, &mut head) else { return };
    assert!(len <= data.len());
    let mut out = Vec::new();
    write_response_head(data, &head, &ResponseRewrite { close: true, ..Default::default() }, &mut out);
    let mut again = ResponseHead::default();
    match parse_response(&out, out.len() + 1, 1024, is_head, &mut again) {
        Ok(Parsed::Complete(n)) => {
            assert_eq!(n, out.len());
            assert_eq!(again.status, head.status);
        }
        other => panic!("rewritten response head does not parse: {other:?}\n{}", String::from_utf8_lossy(&out)),
    }
}

/// Chunked bodies: feeding the input whole or split at any point gives the
/// same result.
pub fn chunked(data: &[u8]) {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let whole = {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        d.feed(data, |c| out.extend_from_slice(c)).map(|p| (p, out))
    };
    let parts = {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        d.feed(&data[..split], |c| out.extend_from_slice(c)).and_then(|a| {
            if a.done {
                return Ok((a, out));
            }
            let b = d.feed(&data[split..], |c| out.extend_from_slice(c))?;
            Ok((crate::Progress { consumed: a.consumed + b.consumed, done: b.done }, out))
        })
    };
    match (whole, parts) {
        (Ok((a, da)), Ok((b, db))) => {
            assert_eq!(a, b);
            assert_eq!(da, db);
            assert!(a.consumed <= data.len());
        }
        (Err(_), Err(_)) => {}
        (w, p) => panic!("whole {w:?} and split {p:?} disagree"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_run_clean() {
        super::request(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\nConnection: x\r\nX: y\r\n\r\nabc");
        super::response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close, x\r\nX: 1\r\n\r\nok");
        super::chunked(b"\x055\r\nhello\r\n0\r\n\r\n");
    }

    /// The smuggling issue's cases, each as the server must see it.
    #[test]
    fn rewrite_seeds_run_clean() {
        let seeds: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nHost: t\r\nConnection: Content-Length\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close, Content-Length\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: t\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: t\r\nConnection: Host, X-A\r\nX-A: 1\r\nContent-Length: 2, 2\r\n\r\nhi",
            b"GET / HTTP/1.2\r\nHost: t\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, X-B\r\nUpgrade: websocket\r\nX-B: 2\r\n\r\n",
        ];
        for seed in seeds {
            super::request_rewrite(seed);
            super::request(seed);
        }
    }

    /// Every seed kept in `fuzz/corpus` runs clean through its target.
    #[test]
    fn corpus_seeds_run_clean() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 4] = [
            ("request_head", super::request),
            ("request_rewrite", super::request_rewrite),
            ("response_head", super::response),
            ("chunked", super::chunked),
        ];
        let mut ran = 0;
        for (dir, target) in targets {
            let entries = std::fs::read_dir(corpus.join(dir)).unwrap_or_else(|e| panic!("fuzz/corpus/{dir}: {e}"));
            for entry in entries {
                let path = entry.expect("corpus entry").path();
                target(&std::fs::read(&path).expect("read a seed"));
                ran += 1;
            }
        }
        assert!(ran >= 10, "only {ran} seeds");
    }

    /// Found by the fuzzer: an absolute-form target whose path starts with
    /// the query was forwarded without its leading slash.
    #[test]
    fn absolute_target_with_query_only() {
        super::request(b"GET http://h?P//p HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    /// Found by the fuzzer: empty lines before the status line (which
    /// httparse skips) made the status line's span start at 0.
    #[test]
    fn empty_lines_before_the_status_line() {
        super::response(b"\r\nHTTP/1.1 199 OK\r\nConnection: close\r\n\r\n");
    }
}
