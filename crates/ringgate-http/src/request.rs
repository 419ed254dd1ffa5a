//! Request heads: parsed with httparse into spans of the client's buffer, then
//! held to RFC 9112's framing rules, because a gateway that frames a request
//! differently from the server behind it can be used to smuggle requests.

use std::mem::MaybeUninit;

use crate::Parsed;
use crate::error::ErrorCode;
use crate::head::{
    BodyKind, ConnectionOptions, Header, HeaderKind, RequestCodings, RequestFraming, Span, Version,
    fold_content_length, fold_request_transfer_encoding, mark_connection_listed, parse_connection, trim_ows,
};

/// Upper bound on `ParseLimits::max_headers`; sizes the stack array httparse
/// fills, so parsing allocates nothing.
pub const MAX_HEADERS_CAP: usize = 1024;

/// Limits a request head must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest head (request line and fields), else 431.
    pub max_head: usize,
    /// Most header fields, else 431 (at most [`MAX_HEADERS_CAP`]).
    pub max_headers: usize,
    /// Longest request target, else 414.
    pub max_uri: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits { max_head: 16 * 1024, max_headers: 100, max_uri: 8 * 1024 }
    }
}

/// Request methods the gateway distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Patch,
    Connect,
    Other,
}

impl Method {
    fn of(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// Idempotent methods (RFC 9110 §9.2.2) may be sent again on a fresh
    /// connection when a pooled one turns out dead.
    pub fn is_idempotent(self) -> bool {
        matches!(self, Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace)
    }
}

/// A parsed request head; reused across the requests of a connection so its
/// header vector keeps its capacity.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    pub method: Method,
    pub method_span: Span,
    /// The request target as sent.
    pub target: Span,
    /// What is forwarded as the target: the target itself, or the path of an
    /// absolute-form target.
    pub path: Span,
    pub version: Version,
    /// Length of the head including the final CRLF.
    pub head_len: usize,
    pub headers: Vec<Header>,
    /// The host the request is for: the absolute-form authority, else Host.
    pub host: Option<Span>,
    pub body: BodyKind,
    /// The Content-Length, when the request has one (a list of equal values,
    /// RFC 9110 §8.6, folded to one). The forwarded head carries this, as
    /// ringgate parsed it, never the client's own field.
    pub content_length: Option<u64>,
    /// The client wants the connection closed after this exchange.
    pub close: bool,
    /// `Connection: upgrade` with an `Upgrade` field.
    pub upgrade: bool,
    pub expect_continue: bool,
}

/// Why a request head is refused; each maps to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// 400, with the reason.
    Malformed(&'static str),
    /// 431: the head is larger than `max_head`.
    HeadTooLarge,
    /// 431: more than `max_headers` fields.
    TooManyHeaders,
    /// 414: the target is longer than `max_uri`.
    UriTooLong,
    /// 405: CONNECT is not proxied.
    MethodNotAllowed,
    /// 417: an Expect other than 100-continue.
    ExpectationFailed,
    /// 505: not HTTP/1.x.
    VersionNotSupported,
    /// 501: a Transfer-Encoding with a coding other than chunked.
    NotImplemented,
}

impl RequestError {
    pub fn status(self) -> u16 {
        match self {
            RequestError::Malformed(_) => 400,
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::UriTooLong => 414,
            RequestError::MethodNotAllowed => 405,
            RequestError::ExpectationFailed => 417,
            RequestError::VersionNotSupported => 505,
            RequestError::NotImplemented => 501,
        }
    }

    pub fn code(self) -> ErrorCode {
        match self {
            RequestError::Malformed(_) => ErrorCode::BadRequest,
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => ErrorCode::HeadTooLarge,
            RequestError::UriTooLong => ErrorCode::UriTooLong,
            RequestError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            RequestError::ExpectationFailed => ErrorCode::ExpectationFailed,
            RequestError::VersionNotSupported => ErrorCode::VersionNotSupported,
            RequestError::NotImplemented => ErrorCode::NotImplemented,
        }
    }

    /// A short reason for the response body and the log.
    pub fn reason(self) -> &'static str {
        match self {
            RequestError::Malformed(r) => r,
            RequestError::HeadTooLarge => "request header fields too large",
            RequestError::TooManyHeaders => "too many request header fields",
            RequestError::UriTooLong => "request target too long",
            RequestError::MethodNotAllowed => "CONNECT is not supported by this gateway",
            RequestError::ExpectationFailed => "only \"Expect: 100-continue\" is supported",
            RequestError::VersionNotSupported => "only HTTP/1.x is supported",
            RequestError::NotImplemented => "only the chunked transfer coding is supported in requests",
        }
    }
}

/// Parses the request head at the start of `buf` into `head`.
///
/// `Ok(Parsed::Partial)` means more bytes are needed; the caller must not let
/// `buf` grow past `limits.max_head` (this function answers
/// [`RequestError::HeadTooLarge`] once it has).
pub fn parse_request(buf: &[u8], limits: &ParseLimits, head: &mut RequestHead) -> Result<Parsed, RequestError> {
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, &mut storage[..max_headers]);
    let len = match status {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(buf, limits),
        Err(httparse::Error::Version) if higher_minor_version(buf).is_some() => {
            return parse_higher_minor(buf, limits, head);
        }
        Err(e) => return Err(map_error(e, buf, limits)),
    };
    if len > limits.max_head {
        return Err(RequestError::HeadTooLarge);
    }
    check_line_endings(&buf[..len])?;

    // httparse returns Complete only with every part present.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(RequestError::Malformed("incomplete request line"));
    };
    if target.len() > limits.max_uri {
        return Err(RequestError::UriTooLong);
    }
    head.method = Method::of(method.as_bytes());
    if head.method == Method::Connect {
        return Err(RequestError::MethodNotAllowed);
    }
    head.method_span = Span::within(buf, method.as_bytes());
    head.target = Span::within(buf, target.as_bytes());
    head.version = if minor == 1 { Version::Http11 } else { Version::Http10 };
    head.head_len = len;
    head.headers.clear();
    head.host = None;
    head.upgrade = false;
    head.expect_continue = false;

    let mut host_count = 0;
    let mut content_length = None;
    let mut codings = RequestCodings::default();
    let mut conn = ConnectionOptions::default();
    let mut has_upgrade_field = false;
    for h in req.headers.iter() {
        let kind = HeaderKind::of(h.name.as_bytes());
        let value = trim_ows(h.value);
        let header = Header {
            name: Span::within(buf, h.name.as_bytes()),
            value: Span::within(buf, value),
            kind,
            listed_in_connection: false,
        };
        match kind {
            HeaderKind::Host => {
                host_count += 1;
                if !valid_authority(value) {
                    return Err(RequestError::Malformed("invalid Host header"));
                }
                head.host = Some(header.value);
            }
            HeaderKind::ContentLength => {
                fold_content_length(value, &mut content_length).map_err(RequestError::Malformed)?;
            }
            HeaderKind::TransferEncoding => fold_request_transfer_encoding(value, &mut codings),
            HeaderKind::Connection => parse_connection(value, &mut conn),
            HeaderKind::Upgrade => has_upgrade_field = true,
            HeaderKind::Expect => {
                if !value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(RequestError::ExpectationFailed);
                }
                head.expect_continue = head.version == Version::Http11;
            }
            _ => {}
        }
        head.headers.push(header);
    }
    if host_count > 1 {
        return Err(RequestError::Malformed("more than one Host header"));
    }
    if conn.lists_fields {
        mark_connection_listed(buf, &mut head.headers);
    }

    // Target forms (RFC 9112 §3.2): origin-form, absolute-form (whose
    // authority replaces Host), and asterisk-form for OPTIONS only.
    let t = target.as_bytes();
    head.path = head.target;
    if t.first() == Some(&b'/') {
        // origin-form
    } else if let Some((authority, path)) = split_absolute(t) {
        if !valid_authority(authority) || authority.is_empty() {
            return Err(RequestError::Malformed("invalid authority in the request target"));
        }
        head.host = Some(Span::within(buf, authority));
        head.path = if path.is_empty() { Span { start: 0, end: 0 } } else { Span::within(buf, path) };
    } else if t == b"*" && head.method == Method::Options {
        // asterisk-form
    } else {
        return Err(RequestError::Malformed("invalid request target"));
    }
    if head.version == Version::Http11 && host_count == 0 {
        return Err(RequestError::Malformed("missing Host header"));
    }

    // Body framing (RFC 9112 §6.3). Ambiguity here is how requests are
    // smuggled past a gateway, so every doubtful case is refused.
    head.body = if codings.present {
        if head.version == Version::Http10 {
            return Err(RequestError::Malformed("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if content_length.is_some() {
            return Err(RequestError::Malformed("both Content-Length and Transfer-Encoding"));
        }
        match codings.framing() {
            RequestFraming::Chunked => BodyKind::Chunked,
            RequestFraming::Malformed(why) => return Err(RequestError::Malformed(why)),
            RequestFraming::Unsupported => return Err(RequestError::NotImplemented),
            RequestFraming::Absent => unreachable!("codings are present"),
        }
    } else {
        match content_length {
            Some(0) | None => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
        }
    };

    head.content_length = content_length;
    head.close = match head.version {
        Version::Http11 => conn.close,
        Version::Http10 => conn.close || !conn.keep_alive,
    };
    head.upgrade = conn.upgrade && has_upgrade_field && head.version == Version::Http11;
    Ok(Parsed::Complete(len))
}

/// Where the minor digit of an `HTTP/1.2` ... `HTTP/1.9` request line's
/// version is. RFC 9110 §6.2: a message with a higher minor version than
/// the recipient's is handled as the highest minor version it implements.
fn higher_minor_version(buf: &[u8]) -> Option<usize> {
    // Before the line end has arrived too: the rest of the head then
    // parses from the copy as Partial.
    let line = &buf[..memchr::memchr2(b'\r', b'\n', buf).unwrap_or(buf.len())];
    let version_at = memchr::memrchr(b' ', line)? + 1;
    match &line[version_at..] {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9'] => Some(version_at + 7),
        _ => None,
    }
}

/// Parses an `HTTP/1.x` (x > 1) request as HTTP/1.1. httparse knows only 1.0
/// and 1.1, so the head is parsed from a copy whose minor digit reads `1`;
/// the copy has the same length, so every span is also right for `buf`.
fn parse_higher_minor(buf: &[u8], limits: &ParseLimits, head: &mut RequestHead) -> Result<Parsed, RequestError> {
    let Some(digit) = higher_minor_version(buf) else {
        return Err(RequestError::Malformed("invalid request line"));
    };
    let mut copy = buf.to_vec();
    copy[digit] = b'1';
    parse_request(&copy, limits, head)
}

/// Splits `http://authority/path?query` into authority and path-and-query.
fn split_absolute(t: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = if t.len() > 7 && t[..7].eq_ignore_ascii_case(b"http://") {
        &t[7..]
    } else if t.len() > 8 && t[..8].eq_ignore_ascii_case(b"https://") {
        &t[8..]
    } else {
        return None;
    };
    let end = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

/// A Host value: reg-name / IPv4 / bracketed IPv6, optional port; no
/// userinfo, no spaces, no path.
fn valid_authority(v: &[u8]) -> bool {
    v.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b))
}

/// httparse accepts a bare LF as a line ending; a server behind the gateway
/// might not, and that disagreement is a smuggling vector, so only CRLF is
/// accepted.
fn check_line_endings(head: &[u8]) -> Result<(), RequestError> {
    if crate::head::crlf_only(head) {
        return Ok(());
    }
    // One pass over both bytes: every LF must follow a CR, every CR precede an LF.
    for i in memchr::memchr2_iter(b'\r', b'\n', head) {
        if head[i] == b'\n' {
            if i == 0 || head[i - 1] != b'\r' {
                return Err(RequestError::Malformed("bare LF in the request head"));
            }
        } else if head.get(i + 1) != Some(&b'\n') {
            return Err(RequestError::Malformed("bare CR in the request head"));
        }
    }
    Ok(())
}

fn partial(buf: &[u8], limits: &ParseLimits) -> Result<Parsed, RequestError> {
    // A request line still open past the URI limit will be refused anyway;
    // say so now rather than waiting for the head limit.
    let line_end = memchr::memchr(b'\n', buf);
    if line_end.is_none() && buf.len() > limits.max_uri + 32 {
        return Err(RequestError::UriTooLong);
    }
    if let Some(end) = line_end {
        check_line_endings(&buf[..=end])?;
    }
    if buf.len() >= limits.max_head {
        return Err(RequestError::HeadTooLarge);
    }
    Ok(Parsed::Partial)
}

fn map_error(e: httparse::Error, buf: &[u8], limits: &ParseLimits) -> RequestError {
    use httparse::Error as E;
    match e {
        E::TooManyHeaders => RequestError::TooManyHeaders,
        E::Version => {
            // "HTTP/2.0" and the HTTP/2 preface parse as a bad version: a
            // well-formed version (`HTTP/` DIGIT `.` DIGIT, RFC 9112 §2.3)
            // that is not 1.x. Anything else there is just malformed.
            let line = &buf[..memchr::memchr2(b'\r', b'\n', buf).unwrap_or(buf.len())];
            let mut parts = line.split(|&b| b == b' ');
            let well_formed = parts.nth(2).is_some_and(|v| {
                matches!(v, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                    if major.is_ascii_digit() && minor.is_ascii_digit())
            }) && parts.next().is_none();
            if well_formed {
                RequestError::VersionNotSupported
            } else {
                RequestError::Malformed("invalid request line")
            }
        }
        E::Token => {
            if memchr::memchr(b'\n', buf).is_none() && buf.len() > limits.max_uri {
                RequestError::UriTooLong
            } else {
                RequestError::Malformed("invalid method or request target")
            }
        }
        E::HeaderName => RequestError::Malformed("invalid header name (obsolete line folding is not accepted)"),
        E::HeaderValue => RequestError::Malformed("invalid character in a header value"),
        E::NewLine => RequestError::Malformed("invalid line ending"),
        E::Status => RequestError::Malformed("invalid request line"),
    }
}

#[cfg(test)]
mod tests;
