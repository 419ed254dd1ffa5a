//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer). Each
//! feeds arbitrary bytes through a parser and checks the invariants the proxy
//! relies on; a panic here is a bug.

use crate::{
    ChunkedDecoder, ForwardInfo, ParseLimits, Parsed, RequestHead, ResponseHead, ResponseRewrite, parse_request,
    parse_response, write_request_head, write_response_head,
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
    let info = ForwardInfo { client_ip: b"192.0.2.1", proto: b"http", host_override: None, fallback_host: b"h:80" };
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
