//! Response heads and generated bodies as plain values, so the wire form of
//! every normal answer is built (and tested) in one place.

use std::fmt::Display;

/// Bytes per block when streaming the `/bytes` and `/eof-body` pattern; a
/// multiple of 26 so every block starts at `a` and blocks join seamlessly.
pub(crate) const PATTERN_BLOCK: usize = 26 * 2520;

/// The reason phrase we send; clients must ignore it (RFC 9112 section 4), so
/// unknown codes just get `Unknown`.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// 1xx, 204 and 304 responses never carry a body (RFC 9112 section 6.3).
pub(crate) fn status_has_body(status: u16) -> bool {
    !((100..200).contains(&status) || status == 204 || status == 304)
}

/// The short body sent for `/status/NNN` and `Mode::Status`.
pub(crate) fn status_body(status: u16) -> String {
    format!("{status} {}\n", reason(status))
}

/// A response head under construction.
#[derive(Debug)]
pub(crate) struct ResponseHead(Vec<u8>);

impl ResponseHead {
    pub(crate) fn new(status: u16) -> Self {
        ResponseHead(format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes())
    }

    pub(crate) fn header(mut self, name: &str, value: impl Display) -> Self {
        self.0.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        self
    }

    /// Ends the head with the empty line.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(b"\r\n");
        self.0
    }
}

/// `len` bytes of `abc...xyzabc...`.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (b'a'..=b'z').cycle().take(len).collect()
}

/// The chunked body of `/chunked?n=N`: chunks `chunk-0\n` .. `chunk-<N-1>\n`,
/// then the last chunk and an empty trailer section.
pub(crate) fn chunked_body(n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let data = format!("chunk-{i}\n");
        out.extend_from_slice(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes());
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_lines_are_crlf_terminated() {
        let head = ResponseHead::new(404).header("content-length", 3).finish();
        assert_eq!(head, b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(ResponseHead::new(799).finish(), b"HTTP/1.1 799 Unknown\r\n\r\n");
    }

    #[test]
    fn bodyless_statuses() {
        for s in [100, 101, 199, 204, 304] {
            assert!(!status_has_body(s), "{s}");
        }
        for s in [200, 205, 404, 503] {
            assert!(status_has_body(s), "{s}");
        }
        assert_eq!(status_body(503), "503 Service Unavailable\n");
    }

    #[test]
    fn pattern_repeats_the_alphabet_and_blocks_join() {
        assert_eq!(pattern(28), b"abcdefghijklmnopqrstuvwxyzab");
        assert_eq!(PATTERN_BLOCK % 26, 0);
        let block = pattern(PATTERN_BLOCK);
        assert_eq!(block[PATTERN_BLOCK - 1], b'z');
    }

    #[test]
    fn chunked_body_wire_form() {
        assert_eq!(chunked_body(2), b"8\r\nchunk-0\n\r\n8\r\nchunk-1\n\r\n0\r\n\r\n");
        assert_eq!(chunked_body(0), b"0\r\n\r\n");
        assert!(chunked_body(11).starts_with(b"8\r\nchunk-0"));
        assert!(chunked_body(11).ends_with(b"9\r\nchunk-10\n\r\n0\r\n\r\n"));
    }
}
