//! What a client sends, parsed on byte slices with no socket in sight: the
//! request head and the body framing rules of RFC 9112 sections 6 and 7, so
//! each rule is unit-tested with input split at every position.

use thiserror::Error;

/// Longest request head accepted before answering 431.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted before answering 431.
const MAX_HEADERS: usize = 128;
/// Largest request body accepted before answering 413; bodies are held in
/// memory for the echo and the request log.
pub(crate) const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// Longest chunk-size or trailer line; a peer sending more is not speaking
/// HTTP and must not make us buffer without bound.
const MAX_LINE_BYTES: usize = 4096;

/// Why a request could not be read; each maps to the status we answer with.
#[derive(Debug, Error)]
pub(crate) enum RequestError {
    #[error("request head is longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("request head has more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("malformed request head")]
    Malformed(#[source] httparse::Error),
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("Transfer-Encoding whose final coding is not chunked")]
    BadTransferEncoding,
    #[error("malformed chunked body")]
    BadChunk,
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
}

impl RequestError {
    /// The status the backend answers this error with before closing.
    pub(crate) fn status(&self) -> u16 {
        match self {
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::BodyTooLarge => 413,
            _ => 400,
        }
    }
}

/// How the request body is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Exactly this many bytes; 0 when the request has no body.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A parsed request head. Header names and values keep the case and order
/// they arrived in, since tests assert on what the proxy forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) target: String,
    /// The `x` of `HTTP/1.x`.
    pub(crate) minor_version: u8,
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    /// The request target up to the `?`.
    pub(crate) fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The request target after the `?`, or `""`.
    pub(crate) fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// `HTTP/1.0` or `HTTP/1.1`.
    pub(crate) fn version(&self) -> String {
        format!("HTTP/1.{}", self.minor_version)
    }

    pub(crate) fn is_head_method(&self) -> bool {
        self.method == "HEAD"
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header (Connection, Upgrade, ...) lists `token`.
    pub(crate) fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection may carry another request after this one
    /// (RFC 9112 section 9.3): HTTP/1.1 persists unless told `close`,
    /// HTTP/1.0 only when told `keep-alive`. A request framed by both
    /// Transfer-Encoding and Content-Length is a smuggling attempt or a broken
    /// client, and section 6.1 asks the server to close after it.
    pub(crate) fn keep_alive(&self) -> bool {
        if self.values("transfer-encoding").next().is_some() && self.values("content-length").next().is_some() {
            return false;
        }
        if self.has_token("connection", "close") {
            return false;
        }
        self.minor_version >= 1 || self.has_token("connection", "keep-alive")
    }

    /// `Expect: 100-continue`; HTTP/1.0 clients cannot send it meaningfully,
    /// so RFC 9110 section 10.1.1 has servers ignore it there.
    pub(crate) fn expects_continue(&self) -> bool {
        self.minor_version >= 1 && self.values("expect").any(|v| v.trim().eq_ignore_ascii_case("100-continue"))
    }

    /// The body framing; Transfer-Encoding wins over Content-Length.
    pub(crate) fn framing(&self) -> Result<Framing, RequestError> {
        let mut codings = self.values("transfer-encoding").flat_map(|v| v.split(',')).map(str::trim).peekable();
        if codings.peek().is_some() {
            // A request body whose final coding is not chunked has no knowable
            // end (RFC 9112 section 6.3, rule 4), and chunked applied twice or
            // not last is malformed.
            let codings: Vec<&str> = codings.collect();
            let chunked = codings.iter().filter(|c| c.eq_ignore_ascii_case("chunked")).count();
            return match codings.last() {
                Some(last) if last.eq_ignore_ascii_case("chunked") && chunked == 1 => Ok(Framing::Chunked),
                _ => Err(RequestError::BadTransferEncoding),
            };
        }
        let mut length = None;
        for value in self.values("content-length").flat_map(|v| v.split(',')) {
            let value = value.trim();
            // Only digits: `+5` and ` 5` parse as numbers in Rust but not in HTTP.
            if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RequestError::BadContentLength);
            }
            let n: u64 = value.parse().map_err(|_| RequestError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(RequestError::BadContentLength);
            }
            length = Some(n);
        }
        Ok(Framing::Length(length.unwrap_or(0)))
    }
}

/// Parses a request head at the start of `buf`: `Ok(None)` while it is
/// incomplete, otherwise the head and how many bytes it took.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => Err(RequestError::HeadTooLarge),
        Ok(httparse::Status::Complete(len)) => {
            let head = Head {
                method: req.method.unwrap_or_default().to_owned(),
                target: req.path.unwrap_or_default().to_owned(),
                minor_version: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect(),
            };
            Ok(Some((head, len)))
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => Err(RequestError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(RequestError::TooManyHeaders),
        Err(e) => Err(RequestError::Malformed(e)),
    }
}

/// The value of `key` in a `a=1&b=2` query string.
pub(crate) fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Where the chunked decoder is within the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk-size line; `line` counts its bytes.
    Size {
        value: u64,
        digits: u32,
        in_ext: bool,
        line: usize,
    },
    /// After the CR that ends a chunk-size line.
    SizeLf {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// In a trailer line (or at the empty line that ends the body).
    Trailer {
        line: usize,
    },
    TrailerLf {
        line: usize,
    },
    Done,
}

const SIZE_START: ChunkState = ChunkState::Size { value: 0, digits: 0, in_ext: false, line: 0 };

/// Incremental decoder for a chunked request body (RFC 9112 section 7.1):
/// feed it whatever bytes have arrived, it consumes what it can. Chunk
/// extensions and trailer fields are skipped.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
    total: u64,
}

impl ChunkedDecoder {
    pub(crate) fn new() -> Self {
        ChunkedDecoder { state: SIZE_START, total: 0 }
    }

    /// Whether the last chunk and the trailer section have been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input`, appending chunk data to `out`; returns how many
    /// bytes of `input` were consumed. Stops right after the end of the body,
    /// so bytes of a pipelined next request are left alone.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RequestError> {
        let mut i = 0;
        while let Some(rest) = input.get(i..).filter(|r| !r.is_empty()) {
            match self.state {
                ChunkState::Done => break,
                ChunkState::Data { remaining } => {
                    let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    out.extend_from_slice(rest.get(..take).unwrap_or_default());
                    i += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 { ChunkState::DataCr } else { ChunkState::Data { remaining: left } };
                }
                state => {
                    self.state = self.step(state, rest[0])?;
                    i += 1;
                }
            }
        }
        Ok(i)
    }

    fn step(&mut self, state: ChunkState, b: u8) -> Result<ChunkState, RequestError> {
        use ChunkState::*;
        let next = match state {
            Size { value, digits, in_ext, line } => {
                let line = line + 1;
                if line > MAX_LINE_BYTES {
                    return Err(RequestError::BadChunk);
                }
                match b {
                    b'\r' if digits > 0 => SizeLf { value },
                    // Extensions are skipped whole; a bare LF is still an error.
                    _ if in_ext && b != b'\n' => Size { value, digits, in_ext, line },
                    b';' | b' ' | b'\t' if digits > 0 => Size { value, digits, in_ext: true, line },
                    _ => {
                        let digit = char::from(b).to_digit(16).ok_or(RequestError::BadChunk)?;
                        // 15 hex digits is far beyond MAX_BODY_BYTES and cannot overflow.
                        if in_ext || digits >= 15 {
                            return Err(RequestError::BadChunk);
                        }
                        Size { value: value * 16 + u64::from(digit), digits: digits + 1, in_ext, line }
                    }
                }
            }
            SizeLf { value } if b == b'\n' => {
                if value == 0 {
                    Trailer { line: 0 }
                } else {
                    self.total = self.total.saturating_add(value);
                    if self.total > MAX_BODY_BYTES {
                        return Err(RequestError::BodyTooLarge);
                    }
                    Data { remaining: value }
                }
            }
            DataCr if b == b'\r' => DataLf,
            DataLf if b == b'\n' => SIZE_START,
            Trailer { line } if b == b'\r' => TrailerLf { line },
            Trailer { line } if b != b'\n' && line < MAX_LINE_BYTES => Trailer { line: line + 1 },
            TrailerLf { line: 0 } if b == b'\n' => Done,
            TrailerLf { .. } if b == b'\n' => Trailer { line: 0 },
            // Data and Done are handled by `feed`; everything else is malformed.
            Data { .. } | Done => state,
            _ => return Err(RequestError::BadChunk),
        };
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        let (head, len) = parse_head(raw.as_bytes()).expect("valid head").expect("complete head");
        assert_eq!(len, raw.len());
        head
    }

    #[test]
    fn head_keeps_header_order_and_case() {
        let h = head("POST /a/b?x=1&n=7 HTTP/1.1\r\nHost: h\r\nX-One: 1\r\nx-one: 2\r\n\r\n");
        assert_eq!(h.method, "POST");
        assert_eq!(h.target, "/a/b?x=1&n=7");
        assert_eq!(h.path(), "/a/b");
        assert_eq!(h.query(), "x=1&n=7");
        assert_eq!(h.version(), "HTTP/1.1");
        assert_eq!(
            h.headers,
            [("Host".into(), "h".into()), ("X-One".into(), "1".into()), ("x-one".into(), "2".into())]
        );
        assert_eq!(query_param(h.query(), "n"), Some("7"));
        assert_eq!(query_param(h.query(), "m"), None);
    }

    #[test]
    fn incomplete_head_asks_for_more_at_every_split() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        for cut in 0..raw.len() {
            assert!(parse_head(&raw[..cut]).expect("prefix is not an error").is_none(), "cut {cut}");
        }
    }

    #[test]
    fn garbage_and_oversized_heads_are_errors_with_statuses() {
        let err = parse_head(b"this is not http\r\n\r\n").expect_err("garbage");
        assert_eq!(err.status(), 400);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD_BYTES + 10, b'a');
        assert_eq!(parse_head(&big).expect_err("too big").status(), 431);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse_head(raw.as_bytes()).expect_err("too many").status(), 431);
    }

    #[test]
    fn keep_alive_follows_version_and_connection_tokens() {
        assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        let both = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(both.framing().expect("chunked wins"), Framing::Chunked);
        assert!(!both.keep_alive());
    }

    #[test]
    fn framing_rules() {
        assert_eq!(head("GET / HTTP/1.1\r\n\r\n").framing().expect("none"), Framing::Length(0));
        assert_eq!(head("P / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").framing().expect("cl"), Framing::Length(12));
        assert_eq!(
            head("P / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3, 3\r\n\r\n").framing().expect("same"),
            Framing::Length(3)
        );
        for bad in ["3, 4", "+3", "-1", "", "0x10", "99999999999999999999"] {
            let h = head(&format!("P / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n"));
            assert!(matches!(h.framing(), Err(RequestError::BadContentLength)), "{bad:?}");
        }
        assert_eq!(
            head("P / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n").framing().expect("te"),
            Framing::Chunked
        );
        for bad in ["gzip", "chunked, gzip", "chunked, chunked"] {
            let h = head(&format!("P / HTTP/1.1\r\nTransfer-Encoding: {bad}\r\n\r\n"));
            assert!(matches!(h.framing(), Err(RequestError::BadTransferEncoding)), "{bad:?}");
        }
    }

    #[test]
    fn expect_continue_only_counts_on_http11() {
        assert!(head("P / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").expects_continue());
        assert!(!head("P / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expects_continue());
        assert!(!head("P / HTTP/1.1\r\n\r\n").expects_continue());
    }

    const CHUNKED: &[u8] = b"5;name=value\r\nhello\r\nA\r\n, world!!!\r\n0\r\nTrailer: x\r\n\r\nNEXT";

    #[test]
    fn chunked_body_decodes_whole() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let used = d.feed(CHUNKED, &mut out).expect("valid");
        assert!(d.is_done());
        assert_eq!(out, b"hello, world!!!");
        assert_eq!(&CHUNKED[used..], b"NEXT");
    }

    #[test]
    fn chunked_body_decodes_when_split_anywhere() {
        let end = CHUNKED.len() - b"NEXT".len();
        for cut in 0..CHUNKED.len() {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let first = d.feed(&CHUNKED[..cut], &mut out).expect("valid prefix");
            assert_eq!(first, cut.min(end), "a prefix of the body is consumed whole, and nothing past it");
            let second = d.feed(&CHUNKED[cut..], &mut out).expect("valid rest");
            assert!(d.is_done(), "cut {cut}");
            assert_eq!(out, b"hello, world!!!");
            assert_eq!(first + second, end);
        }
    }

    #[test]
    fn malformed_chunks_are_rejected() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello",
            b"5\r\nhelloXX",
            b"1234567890abcdef0\r\n",
            b"0\r\nbad\ntrailer",
            b"5 x\r\n",
        ] {
            let mut d = ChunkedDecoder::new();
            let r = d.feed(bad, &mut Vec::new());
            // `5 x` is a (whitespace-led) extension and is fine; all others fail.
            if bad == b"5 x\r\n" {
                assert!(r.is_ok());
            } else {
                assert!(matches!(r, Err(RequestError::BadChunk)), "{:?}", String::from_utf8_lossy(bad));
            }
        }
        let mut d = ChunkedDecoder::new();
        let huge = format!("{:x}\r\n", MAX_BODY_BYTES + 1);
        assert!(matches!(d.feed(huge.as_bytes(), &mut Vec::new()), Err(RequestError::BodyTooLarge)));
        let mut d = ChunkedDecoder::new();
        let long_ext = [b"1;".as_slice(), &[b'e'; MAX_LINE_BYTES]].concat();
        assert!(matches!(d.feed(&long_ext, &mut Vec::new()), Err(RequestError::BadChunk)));
    }
}
