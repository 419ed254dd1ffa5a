//! ringgate's TLS, on rustls with the ring provider: TLS 1.2 and 1.3 only,
//! ALPN `http/1.1`.
//!
//! - [`load_certified_key`] and [`load_roots`] read PEM files once, at
//!   configuration load, and say exactly what is wrong with them.
//! - [`server_config`] builds a listener's configuration: the client's SNI
//!   picks the certificate of the listener that answers that host.
//! - [`client_config`] builds the configuration for HTTPS backends and probes.
//! - [`TlsInfo`] is what a handshake negotiated, for the access log.
//! - [`explain`] turns a handshake error into the sentence an operator needs;
//!   a certificate refused for its name says which names it holds
//!   ([`name_mismatch`]).
//! - [`TlsPolicy`] and [`ClientAuth`]: a listener's versions and suites, and
//!   its mutual TLS.

mod client;
mod client_auth;
mod names;
mod pem;
mod policy;
mod server;
mod session;

pub use client::{client_config, server_name, with_well_known_roots};
pub use client_auth::{CertFailure, ClientAuth, ClientCert};
pub use names::{NameMismatch, certificate_names, name_mismatch};
pub use pem::{load_certified_key, load_roots, not_after, ocsp_urls, with_ocsp_response};
pub use policy::{TlsPolicy, suite_name};
pub use rustls::{ClientConfig, RootCertStore, ServerConfig, sign::CertifiedKey};
pub use server::{SniSite, glob_match, server_config};
pub use session::TlsInfo;

use std::sync::Arc;

/// The crypto provider every configuration uses.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Does this first byte of a connection start a TLS handshake record?
/// (Plain HTTP starts with a method's first letter.)
pub fn looks_like_tls(first: u8) -> bool {
    first == 0x16
}

/// A handshake failure in plain words, from the error rustls reported (as an
/// `io::Error` through the TLS stream).
pub fn explain(e: &std::io::Error) -> String {
    let Some(inner) = e.get_ref().and_then(|x| x.downcast_ref::<rustls::Error>()) else {
        return e.to_string();
    };
    if let Some(m) = name_mismatch(e) {
        return format!(
            "the backend's certificate {} (set host_name in the settings to a name it holds, or change the certificate)",
            m.holds()
        );
    }
    use rustls::{CertificateError, Error};
    match inner {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the backend's certificate is not trusted by the settings' root certificates (unknown issuer)".into()
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "the backend's certificate is not valid for the name the gateway connects to (set host_name in the settings)"
                .into()
        }
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => "the backend's certificate has expired".into(),
        Error::InvalidCertificate(CertificateError::NotValidYet)
        | Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => {
            "the backend's certificate is not valid yet".into()
        }
        Error::InvalidCertificate(c) => format!("the backend's certificate is rejected: {c:?}"),
        Error::AlertReceived(a) => format!("the peer refused the handshake (alert {a:?})"),
        Error::InvalidMessage(m) => format!("the peer does not speak TLS ({m:?})"),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Did the peer answer the ClientHello with something that is not TLS (its
/// first bytes are no TLS record: plain HTTP, typically an HTTP 400)?
pub fn peer_is_not_tls(e: &std::io::Error) -> bool {
    use rustls::InvalidMessage;
    matches!(
        e.get_ref().and_then(|x| x.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidMessage(
            InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion
        ))
    )
}

/// Did the peer speak TLS, although the handshake failed? It sent TLS
/// records: a certificate that was refused, an alert, a version or cipher
/// suite we do not take. (An EOF or a reset tells nothing.)
pub fn peer_spoke_tls(e: &std::io::Error) -> bool {
    use rustls::Error;
    matches!(
        e.get_ref().and_then(|x| x.downcast_ref::<Error>()),
        Some(
            Error::InvalidCertificate(_)
                | Error::AlertReceived(_)
                | Error::PeerIncompatible(_)
                | Error::PeerMisbehaved(_)
                | Error::NoCertificatesPresented
                | Error::InappropriateHandshakeMessage { .. }
                | Error::InappropriateMessage { .. }
                | Error::DecryptError
        )
    )
}

/// Is this error a certificate problem (as opposed to the peer going away)?
pub fn is_certificate_error(e: &std::io::Error) -> bool {
    matches!(e.get_ref().and_then(|x| x.downcast_ref::<rustls::Error>()), Some(rustls::Error::InvalidCertificate(_)))
}
