//! What a finished handshake negotiated, in the words access logs use:
//! `TLSv1.3` as nginx and Application Gateway write the protocol, and the
//! cipher suite's IANA name.

use rustls::{ProtocolVersion, ServerConnection};

/// A client connection's TLS parameters, copied out of the session once at
/// the end of the handshake (both are static names, so this is `Copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub protocol: &'static str,
    /// For example `TLS_AES_128_GCM_SHA256` or
    /// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
}

impl TlsInfo {
    /// `None` while the handshake has not finished.
    pub fn of(conn: &ServerConnection) -> Option<TlsInfo> {
        let protocol = match conn.protocol_version()? {
            ProtocolVersion::TLSv1_3 => "TLSv1.3",
            ProtocolVersion::TLSv1_2 => "TLSv1.2",
            // ringgate enables only TLS 1.2 and 1.3 (see `server_config`).
            _ => "unknown",
        };
        let suite = conn.negotiated_cipher_suite()?.suite();
        Some(TlsInfo { protocol, cipher: iana_name(suite.as_str().unwrap_or("unknown")) })
    }
}

/// rustls names the TLS 1.3 suites `TLS13_*`; their IANA names are `TLS_*`
/// (the TLS 1.2 names are IANA's already).
pub(crate) fn iana_name(rustls_name: &'static str) -> &'static str {
    // A table rather than a format: the names stay `&'static str`, with no
    // allocation per connection.
    rustls_name.strip_prefix("TLS13_").map_or(rustls_name, |rest| match rest {
        "AES_128_GCM_SHA256" => "TLS_AES_128_GCM_SHA256",
        "AES_256_GCM_SHA384" => "TLS_AES_256_GCM_SHA384",
        "CHACHA20_POLY1305_SHA256" => "TLS_CHACHA20_POLY1305_SHA256",
        "AES_128_CCM_SHA256" => "TLS_AES_128_CCM_SHA256",
        "AES_128_CCM_8_SHA256" => "TLS_AES_128_CCM_8_SHA256",
        _ => rustls_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_are_iana_names() {
        assert_eq!(iana_name("TLS13_AES_256_GCM_SHA384"), "TLS_AES_256_GCM_SHA384");
        assert_eq!(iana_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    }
}
