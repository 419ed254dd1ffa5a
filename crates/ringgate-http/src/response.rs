//! Response heads from backends: parsed into spans of the backend buffer and
//! framed per RFC 9112 §6.3. A response the gateway cannot frame with
//! certainty is refused (502 `INVALID_RESPONSE`) rather than guessed at.

use std::mem::MaybeUninit;

use crate::Parsed;
use crate::head::{
    BodyKind, Codings, ConnectionOptions, Header, HeaderKind, Span, Version, fold_content_length,
    fold_transfer_encoding, mark_connection_listed, parse_connection, trim_ows,
};
use crate::request::MAX_HEADERS_CAP;

/// A parsed response head; reused across responses on a connection.
#[derive(Debug, Clone, Default)]
pub struct ResponseHead {
    pub status: u16,
    pub version: Version,
    /// The whole status line without its CRLF.
    pub status_line: Span,
    pub head_len: usize,
    pub headers: Vec<Header>,
    pub body: BodyKind,
    /// The Content-Length, when the response has one (a list of equal
    /// values, RFC 9110 §8.6, folded to one).
    pub content_length: Option<u64>,
    /// What its Transfer-Encoding fields say; relayed as ringgate framed it.
    pub transfer_encoding: ResponseCodings,
    /// The backend will close the connection after this response.
    pub close: bool,
    /// `Connection: upgrade` was sent.
    pub upgrade: bool,
}

/// A response's Transfer-Encoding, as far as relaying it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseCodings {
    /// No Transfer-Encoding field.
    #[default]
    Absent,
    /// Exactly `Transfer-Encoding: chunked`.
    Chunked,
    /// Another list (`gzip, chunked`, or a final coding that is not
    /// chunked): relayed as the backend's values, joined.
    Other,
}

impl ResponseHead {
    /// 1xx other than 101: forwarded, then another head follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Why a backend's response head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// Not a valid HTTP/1.x response head; the reason says what.
    Invalid(&'static str),
    /// Larger than the limit the caller allows.
    TooLarge,
}

impl ResponseError {
    pub fn reason(self) -> &'static str {
        match self {
            ResponseError::Invalid(r) => r,
            ResponseError::TooLarge => "response head too large",
        }
    }
}

/// Parses the response head at the start of `buf`. `request_was_head` and the
/// status decide whether a body follows.
pub fn parse_response(
    buf: &[u8],
    max_head: usize,
    max_headers: usize,
    request_was_head: bool,
    head: &mut ResponseHead,
) -> Result<Parsed, ResponseError> {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut res = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut storage[..max_headers.min(MAX_HEADERS_CAP)],
    );
    let len = match status {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if let Some(end) = memchr::memchr(b'\n', buf) {
                check_line_endings(&buf[..=end])?;
            }
            return if buf.len() >= max_head { Err(ResponseError::TooLarge) } else { Ok(Parsed::Partial) };
        }
        Err(e) => {
            return Err(ResponseError::Invalid(match e {
                httparse::Error::Status => "invalid status code",
                httparse::Error::Version => "invalid status line (not HTTP/1.x)",
                httparse::Error::HeaderName => "invalid header name",
                httparse::Error::HeaderValue => "invalid header value",
                httparse::Error::NewLine => "invalid line ending",
                httparse::Error::TooManyHeaders => "too many header fields",
                httparse::Error::Token => "invalid status line",
            }));
        }
    };
    if len > max_head {
        return Err(ResponseError::TooLarge);
    }
    check_line_endings(&buf[..len])?;
    let (Some(code), Some(minor)) = (res.code, res.version) else {
        return Err(ResponseError::Invalid("incomplete status line"));
    };
    if !(100..=599).contains(&code) {
        return Err(ResponseError::Invalid("status code out of range"));
    }
    head.status = code;
    head.version = if minor == 1 { Version::Http11 } else { Version::Http10 };
    // httparse skips empty lines before the status line (RFC 9112 §2.2).
    let line_start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(0);
    let line_end = memchr::memchr(b'\r', &buf[line_start..]).map_or(line_start, |i| line_start + i);
    head.status_line = Span { start: line_start as u32, end: line_end as u32 };
    head.head_len = len;
    head.headers.clear();

    let mut content_length = None;
    let mut codings = Codings::default();
    let mut conn = ConnectionOptions::default();
    for h in res.headers.iter() {
        let kind = HeaderKind::of(h.name.as_bytes());
        let value = trim_ows(h.value);
        match kind {
            HeaderKind::ContentLength => {
                fold_content_length(value, &mut content_length).map_err(ResponseError::Invalid)?;
            }
            HeaderKind::TransferEncoding => fold_transfer_encoding(value, &mut codings),
            HeaderKind::Connection => parse_connection(value, &mut conn),
            _ => {}
        }
        head.headers.push(Header {
            name: Span::within(buf, h.name.as_bytes()),
            value: Span::within(buf, value),
            kind,
            listed_in_connection: false,
        });
    }
    if conn.lists_fields {
        mark_connection_listed(buf, &mut head.headers);
    }
    head.content_length = content_length;
    head.transfer_encoding = match (codings.present, codings.only_chunked) {
        (false, _) => ResponseCodings::Absent,
        (true, true) => ResponseCodings::Chunked,
        (true, false) => ResponseCodings::Other,
    };
    head.upgrade = conn.upgrade;
    head.close = match head.version {
        Version::Http11 => conn.close,
        Version::Http10 => conn.close || !conn.keep_alive,
    };

    head.body = if request_was_head || (100..200).contains(&code) || code == 204 || code == 304 {
        BodyKind::Empty
    } else if codings.present {
        if content_length.is_some() {
            return Err(ResponseError::Invalid("both Content-Length and Transfer-Encoding"));
        }
        if codings.chunked_not_last {
            return Err(ResponseError::Invalid("chunked is not the final transfer coding"));
        }
        if codings.chunked_last {
            BodyKind::Chunked
        } else {
            // RFC 9112 §6.3 (4): a response whose final coding is not
            // chunked is delimited by the connection closing.
            head.close = true;
            BodyKind::UntilClose
        }
    } else {
        match content_length {
            Some(0) => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
            None => {
                head.close = true;
                BodyKind::UntilClose
            }
        }
    };
    Ok(Parsed::Complete(len))
}

fn check_line_endings(head: &[u8]) -> Result<(), ResponseError> {
    if crate::head::crlf_only(head) {
        return Ok(());
    }
    for i in memchr::memchr_iter(b'\n', head) {
        if i == 0 || head[i - 1] != b'\r' {
            return Err(ResponseError::Invalid("bare LF in the response head"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head_req: bool) -> Result<ResponseHead, ResponseError> {
        let mut h = ResponseHead::default();
        match parse_response(raw, 16384, 100, head_req, &mut h)? {
            Parsed::Complete(n) => {
                assert_eq!(n, h.head_len);
                Ok(h)
            }
            Parsed::Partial => Err(ResponseError::Invalid("partial")),
        }
    }

    #[test]
    fn content_length_response() {
        let h = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello", false).unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.body, BodyKind::Length(5));
        assert!(!h.close);
        assert_eq!(h.head_len, 49);
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false).unwrap().body,
            BodyKind::Chunked
        );
        let h = parse(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert_eq!(h.body, BodyKind::UntilClose);
        assert!(h.close);
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).unwrap().body, BodyKind::Empty);
        assert_eq!(parse(b"HTTP/1.1 204 No Content\r\n\r\n", false).unwrap().body, BodyKind::Empty);
        assert_eq!(
            parse(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", false).unwrap().body,
            BodyKind::Empty
        );
        let h = parse(b"HTTP/1.1 100 Continue\r\n\r\n", false).unwrap();
        assert!(h.is_interim());
        let h = parse(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false)
            .unwrap();
        assert!(h.upgrade && !h.is_interim());
        let h = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).unwrap();
        assert!(h.close, "HTTP/1.0 closes unless keep-alive");
        let h = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false).unwrap();
        assert!(h.close);
    }

    #[test]
    fn refused_responses() {
        for raw in [
            &b"HTTP/1.1 abc Bad\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nBad Header Line\r\nContent-Length: 2\r\n\r\nok",
            b"this is not http\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        ] {
            assert!(matches!(parse(raw, false), Err(ResponseError::Invalid(_))), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn partial_and_too_large() {
        let mut h = ResponseHead::default();
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nContent-", 1024, 100, false, &mut h), Ok(Parsed::Partial));
        let big = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 2000]].concat();
        assert_eq!(parse_response(&big, 1024, 100, false, &mut h), Err(ResponseError::TooLarge));
    }
}
