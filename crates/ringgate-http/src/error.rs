//! The answers the gateway gives on its own behalf: one [`ErrorCode`] per
//! cause, carried in the `x-ringgate-error` header, the access log and the
//! metrics, so a 502 seen by a user can be traced to its cause.

/// Why the gateway answered instead of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// 502: the rule's backend pool has no server.
    PoolEmpty,
    /// 502: every server of the pool is unhealthy.
    AllUnhealthy,
    /// 502: no server of the pool takes requests and one has not had its
    /// first probe yet (`unprobed_servers = "wait"`): the answer may change
    /// within that probe's time-out.
    NotYetProbed,
    /// 502: the server did not answer within the request time-out.
    Timeout,
    /// 502: no connection could be opened to the server.
    ConnectFailed,
    /// 502: the server closed or reset the connection before a response.
    BackendClosed,
    /// 502: the server's response could not be parsed or framed.
    InvalidResponse,
    /// 502: the TLS handshake with the server failed.
    TlsHandshakeFailed,
    /// 400: the request is malformed.
    BadRequest,
    /// 431: the request head is too large.
    HeadTooLarge,
    /// 414: the request target is too long.
    UriTooLong,
    /// 413: the request body is too large.
    BodyTooLarge,
    /// 408: the client was too slow to send the request head.
    RequestTimeout,
    /// 404: no listener answers the request's host.
    NoRoute,
    /// 405: the method is not proxied.
    MethodNotAllowed,
    /// 417: an unsupported expectation.
    ExpectationFailed,
    /// 505: an HTTP version other than 1.x.
    VersionNotSupported,
    /// 501: a transfer coding other than chunked in a request.
    NotImplemented,
    /// 503: the gateway is shutting down.
    ShuttingDown,
    /// 499 (logged only, nothing is sent): the client went away before the
    /// response was complete.
    ClientClosed,
    /// 400: mutual TLS requires a client certificate and none was sent.
    ClientCertificateMissing,
    /// 400: the client certificate is not trusted (unknown issuer, expired,
    /// revoked, or its issuer's name does not match).
    ClientCertificateUntrusted,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::PoolEmpty,
        ErrorCode::AllUnhealthy,
        ErrorCode::NotYetProbed,
        ErrorCode::Timeout,
        ErrorCode::ConnectFailed,
        ErrorCode::BackendClosed,
        ErrorCode::InvalidResponse,
        ErrorCode::TlsHandshakeFailed,
        ErrorCode::BadRequest,
        ErrorCode::HeadTooLarge,
        ErrorCode::UriTooLong,
        ErrorCode::BodyTooLarge,
        ErrorCode::RequestTimeout,
        ErrorCode::NoRoute,
        ErrorCode::MethodNotAllowed,
        ErrorCode::ExpectationFailed,
        ErrorCode::VersionNotSupported,
        ErrorCode::NotImplemented,
        ErrorCode::ShuttingDown,
        ErrorCode::ClientClosed,
        ErrorCode::ClientCertificateMissing,
        ErrorCode::ClientCertificateUntrusted,
    ];

    /// The value of the `x-ringgate-error` header.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::PoolEmpty => "POOL_EMPTY",
            ErrorCode::AllUnhealthy => "ALL_UNHEALTHY",
            ErrorCode::NotYetProbed => "NOT_YET_PROBED",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::ConnectFailed => "CONNECT_FAILED",
            ErrorCode::BackendClosed => "BACKEND_CLOSED",
            ErrorCode::InvalidResponse => "INVALID_RESPONSE",
            ErrorCode::TlsHandshakeFailed => "TLS_HANDSHAKE_FAILED",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::HeadTooLarge => "HEADERS_TOO_LARGE",
            ErrorCode::UriTooLong => "URI_TOO_LONG",
            ErrorCode::BodyTooLarge => "BODY_TOO_LARGE",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::NoRoute => "NO_ROUTE",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::ExpectationFailed => "EXPECTATION_FAILED",
            ErrorCode::VersionNotSupported => "VERSION_NOT_SUPPORTED",
            ErrorCode::NotImplemented => "NOT_IMPLEMENTED",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::ClientClosed => "CLIENT_CLOSED",
            ErrorCode::ClientCertificateMissing => "CLIENT_CERTIFICATE_MISSING",
            ErrorCode::ClientCertificateUntrusted => "CLIENT_CERTIFICATE_UNTRUSTED",
        }
    }

    /// The status code the gateway answers with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::PoolEmpty
            | ErrorCode::AllUnhealthy
            | ErrorCode::NotYetProbed
            | ErrorCode::Timeout
            | ErrorCode::ConnectFailed
            | ErrorCode::BackendClosed
            | ErrorCode::InvalidResponse
            | ErrorCode::TlsHandshakeFailed => 502,
            ErrorCode::BadRequest | ErrorCode::ClientCertificateMissing | ErrorCode::ClientCertificateUntrusted => 400,
            ErrorCode::HeadTooLarge => 431,
            ErrorCode::UriTooLong => 414,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::NoRoute => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::ExpectationFailed => 417,
            ErrorCode::VersionNotSupported => 505,
            ErrorCode::NotImplemented => 501,
            ErrorCode::ShuttingDown => 503,
            ErrorCode::ClientClosed => 499,
        }
    }

    /// Application Gateway v2's `error_info` for this code, where it has one
    /// (`None`: v2 names no such cause, and the log writes ringgate's code).
    /// `detail` is the answer's full text, which tells the kinds of 400
    /// apart as v2 does.
    pub fn appgw_error_info(self, detail: &str) -> Option<&'static str> {
        Some(match self {
            ErrorCode::PoolEmpty | ErrorCode::AllUnhealthy | ErrorCode::ConnectFailed => "ERRORINFO_UPSTREAM_NO_LIVE",
            ErrorCode::Timeout => "ERRORINFO_UPSTREAM_TIMED_OUT",
            ErrorCode::BackendClosed => "ERRORINFO_UPSTREAM_CLOSED_CONNECTION",
            ErrorCode::MethodNotAllowed => "ERRORINFO_INVALID_METHOD",
            ErrorCode::VersionNotSupported => "ERRORINFO_INVALID_VERSION",
            ErrorCode::ClientClosed => "ERRORINFO_CLIENT_CLOSED_REQUEST",
            ErrorCode::BadRequest if detail.contains("missing Host header") => "ERRORINFO_HTTP_NO_HOST_HEADER",
            ErrorCode::BadRequest if detail.contains("Host header") => "ERRORINFO_INVALID_HOST",
            ErrorCode::BadRequest if detail.contains("Content-Length") => "ERRORINFO_INVALID_CONTENT_LENGTH",
            ErrorCode::BadRequest => "ERRORINFO_INVALID_REQUEST",
            _ => return None,
        })
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason phrase of the statuses the gateway and its admin API produce.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// A complete response for `code` whose body is an operator's error page
/// (`content_type`), with the same `x-ringgate-error` header as the plain
/// answer: the page is for users, the code still for operators.
pub fn error_page_response(code: ErrorCode, body: &[u8], content_type: &str, close: bool) -> Vec<u8> {
    error_page_response_as(code, code.status(), body, content_type, close)
}

/// [`error_page_response`] sent with `status` instead of the code's own
/// (a time-out answered 504 by `timeout_status`).
pub fn error_page_response_as(code: ErrorCode, status: u16, body: &[u8], content_type: &str, close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(200 + body.len());
    write_error_head(code, status, content_type, body.len(), close, &mut out);
    out.extend_from_slice(body);
    out
}

/// A complete response for `code`, with `body` (one line of plain words, a
/// newline is added). `close` adds `Connection: close`.
pub fn error_response(code: ErrorCode, body: &str, close: bool) -> Vec<u8> {
    error_response_as(code, code.status(), body, close)
}

/// [`error_response`] sent with `status` instead of the code's own.
pub fn error_response_as(code: ErrorCode, status: u16, body: &str, close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    write_error_head(code, status, "text/plain; charset=utf-8", body.len() + 1, close, &mut out);
    out.extend_from_slice(body.as_bytes());
    out.push(b'\n');
    out
}

/// The head every gateway answer shares: status, type, length, the
/// `x-ringgate-error` code, no caching, and `connection: close` on request.
fn write_error_head(code: ErrorCode, status: u16, content_type: &str, len: usize, close: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\nx-ringgate-error: ");
    out.extend_from_slice(code.as_str().as_bytes());
    out.extend_from_slice(b"\r\ncache-control: no-store\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appgw_error_info_names() {
        assert_eq!(ErrorCode::Timeout.appgw_error_info(""), Some("ERRORINFO_UPSTREAM_TIMED_OUT"));
        assert_eq!(ErrorCode::AllUnhealthy.appgw_error_info(""), Some("ERRORINFO_UPSTREAM_NO_LIVE"));
        let no_host = "400 Bad Request: missing Host header";
        assert_eq!(ErrorCode::BadRequest.appgw_error_info(no_host), Some("ERRORINFO_HTTP_NO_HOST_HEADER"));
        let two_hosts = "400 Bad Request: more than one Host header";
        assert_eq!(ErrorCode::BadRequest.appgw_error_info(two_hosts), Some("ERRORINFO_INVALID_HOST"));
        assert_eq!(ErrorCode::BadRequest.appgw_error_info("400 Bad Request: x"), Some("ERRORINFO_INVALID_REQUEST"));
        assert_eq!(ErrorCode::TlsHandshakeFailed.appgw_error_info(""), None, "no v2 name");
    }

    #[test]
    fn codes_round_trip_and_map_to_statuses() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::PoolEmpty.status(), 502);
        assert_eq!((ErrorCode::NotYetProbed.as_str(), ErrorCode::NotYetProbed.status()), ("NOT_YET_PROBED", 502));
        assert_eq!(ErrorCode::HeadTooLarge.status(), 431);
    }

    #[test]
    fn error_response_is_well_formed() {
        let r = error_response(ErrorCode::AllUnhealthy, "every server is down", true);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        assert!(text.contains("\r\nx-ringgate-error: ALL_UNHEALTHY\r\n"));
        assert!(text.contains("\r\ncontent-length: 21\r\n"));
        assert!(text.contains("\r\nconnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nevery server is down\n"));
    }
}
