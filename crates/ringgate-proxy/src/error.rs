//! Why a request could not be answered by a backend. The 502 code a client
//! sees is decided here, in one place, from the error's kind.

use std::io;
use std::time::Duration;

use ringgate_http::ErrorCode;

/// A failure on the way to a backend or back.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("backend pool \"{pool}\" has no servers")]
    PoolEmpty { pool: String },
    #[error("every server of backend pool \"{pool}\" is unhealthy")]
    AllUnhealthy { pool: String },
    #[error("server {server} does not resolve to any address")]
    Unresolved { server: String },
    #[error("connecting to {server} failed: {source}")]
    Connect {
        server: String,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {server} timed out after {}ms", after.as_millis())]
    ConnectTimeout { server: String, after: Duration },
    #[error("server {server} did not answer within the request time-out of {}ms", timeout.as_millis())]
    Timeout { server: String, timeout: Duration },
    /// The server did not answer within `attempt_timeout`; the request (idempotent, no
    /// body) is intact and may go to another server.
    #[error("server {server} did not answer within the attempt time-out of {}ms", timeout.as_millis())]
    AttemptTimeout { server: String, timeout: Duration },
    #[error("server {server} closed the connection before a complete response")]
    BackendClosed {
        server: String,
        #[source]
        source: Option<io::Error>,
    },
    #[error("server {server} sent an invalid response: {reason}")]
    InvalidResponse { server: String, reason: &'static str },
    #[error("TLS handshake with {server} failed: {detail}")]
    TlsHandshake { server: String, detail: String },
}

impl ProxyError {
    /// The code of the 502 (and of the access log and metrics).
    pub fn code(&self) -> ErrorCode {
        match self {
            ProxyError::PoolEmpty { .. } => ErrorCode::PoolEmpty,
            ProxyError::AllUnhealthy { .. } => ErrorCode::AllUnhealthy,
            ProxyError::Unresolved { .. } | ProxyError::Connect { .. } | ProxyError::ConnectTimeout { .. } => {
                ErrorCode::ConnectFailed
            }
            ProxyError::Timeout { .. } | ProxyError::AttemptTimeout { .. } => ErrorCode::Timeout,
            ProxyError::BackendClosed { .. } => ErrorCode::BackendClosed,
            ProxyError::InvalidResponse { .. } => ErrorCode::InvalidResponse,
            ProxyError::TlsHandshake { .. } => ErrorCode::TlsHandshakeFailed,
        }
    }

    /// Why another server may be tried: no connection could be opened (so
    /// the request cannot have reached the server), or an idempotent request
    /// without a body was not answered within its attempt time-out.
    pub fn retry_reason(&self) -> Option<crate::metrics::RetryReason> {
        use crate::metrics::RetryReason;
        match self {
            ProxyError::Connect { .. } => Some(RetryReason::ConnectFailed),
            ProxyError::ConnectTimeout { .. } => Some(RetryReason::ConnectTimeout),
            ProxyError::TlsHandshake { .. } => Some(RetryReason::TlsHandshakeFailed),
            ProxyError::Unresolved { .. } => Some(RetryReason::Unresolved),
            ProxyError::AttemptTimeout { .. } => Some(RetryReason::AttemptTimeout),
            _ => None,
        }
    }

    /// Does this failure say something about the server's health, so the
    /// prober should look at it now (passive health)?
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect { .. }
                | ProxyError::ConnectTimeout { .. }
                | ProxyError::BackendClosed { .. }
                | ProxyError::TlsHandshake { .. }
        )
    }

    /// The 502 body for anyone (`error_detail = "public"`): the cause in
    /// words, with no address, name, OS error or operator hint in it.
    pub fn public_text(&self) -> &'static str {
        public_text(self.code())
    }

    /// The 502 body: the cause in plain words and what to look at. `status`
    /// is what the answer is sent with (a time-out may be a 504).
    pub fn explain(&self, rule: &str, settings: &str, status: u16) -> String {
        let hint = match self.code() {
            ErrorCode::Timeout => {
                format!("; raise request_timeout in [[backend_http_settings]] \"{settings}\" or make the server faster")
            }
            ErrorCode::ConnectFailed => "; check that the server is up and listening on that port".to_string(),
            _ => String::new(),
        };
        format!("{status} {} (rule \"{rule}\"): {self}{hint}", ringgate_http::reason_phrase(status))
    }
}

/// [`public_text`] for an answer sent with `status`: a time-out answered 504
/// says so in its first words.
pub fn public_text_as(code: ErrorCode, status: u16) -> std::borrow::Cow<'static, str> {
    let text = public_text(code);
    match text.strip_prefix("502 Bad Gateway") {
        Some(rest) if status != 502 => format!("{status} {}{rest}", ringgate_http::reason_phrase(status)).into(),
        _ => text.into(),
    }
}

/// A gateway error's public body (`error_detail = "public"`), for the codes
/// whose full text names the gateway's internals (the others' text is about
/// the client's own request, and is kept).
pub fn public_text(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::PoolEmpty => {
            "502 Bad Gateway: no server is configured to answer this request (the backend pool is empty)"
        }
        ErrorCode::AllUnhealthy => "502 Bad Gateway: every server that can answer this request is unhealthy",
        ErrorCode::NotYetProbed => {
            "502 Bad Gateway: the servers that can answer this request have not been health-checked yet; try again in a moment"
        }
        ErrorCode::ConnectFailed => "502 Bad Gateway: the gateway could not connect to a backend server",
        ErrorCode::Timeout => "502 Bad Gateway: the backend server did not answer in time",
        ErrorCode::BackendClosed => {
            "502 Bad Gateway: the backend server closed the connection before a complete response"
        }
        ErrorCode::InvalidResponse => "502 Bad Gateway: the backend server sent an invalid response",
        ErrorCode::TlsHandshakeFailed => "502 Bad Gateway: the TLS handshake with the backend server failed",
        ErrorCode::NoRoute => "404 Not Found: no site on this address answers this host",
        _ => "the request could not be served",
    }
}
