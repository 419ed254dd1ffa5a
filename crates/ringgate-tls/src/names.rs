//! The names a backend's certificate holds, told when it does not hold the
//! name the gateway verifies.
//!
//! rustls reports a name mismatch with the names as debug strings of
//! webpki's own types, and nothing for a certificate without subject
//! alternative names. So the backend verifier is webpki's, wrapped: when
//! webpki refuses the certificate for its name, the wrapper parses the
//! end-entity certificate (x509-parser) and returns a [`NameMismatch`] with
//! the names in plain text instead. The decision itself is webpki's, unchanged.
//! The mismatch travels inside the handshake error, so a configuration shared
//! by many concurrent handshakes needs no per-connection state.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::extensions::GeneralName;

/// A certificate refused because it does not hold the name verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameMismatch {
    /// The name the gateway verified (the settings' `host_name`, else the
    /// server's address).
    pub expected: String,
    /// What the certificate holds: its subject alternative names (DNS names
    /// and IP addresses, in certificate order), else its common names.
    pub presented: Vec<String>,
}

impl NameMismatch {
    /// `is for "a", "b", not "x"`: what follows "the certificate".
    pub fn holds(&self) -> String {
        if self.presented.is_empty() {
            format!("holds no name at all, not {:?}", self.expected)
        } else {
            let names: Vec<String> = self.presented.iter().map(|n| format!("{n:?}")).collect();
            format!("is for {}, not {:?}", names.join(", "), self.expected)
        }
    }
}

impl fmt::Display for NameMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the certificate {}", self.holds())
    }
}

impl std::error::Error for NameMismatch {}

/// The names `der` (one DER certificate) is for: its subject alternative
/// names of DNS and IP type, else the common names of its subject (what a
/// certificate without the extension was for, before RFC 6125). Empty when
/// the certificate does not parse.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return Vec::new() };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_string()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        names.extend(cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_string));
    }
    names
}

/// webpki's verifier, with name mismatches told as [`NameMismatch`].
#[derive(Debug)]
pub(crate) struct NamingVerifier {
    pub(crate) inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NamingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Err(Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(NameMismatch {
                expected: server_name.to_str().into_owned(),
                presented: certificate_names(end_entity),
            }))))),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The name mismatch behind a handshake error, if that is what it was.
pub fn name_mismatch(e: &std::io::Error) -> Option<&NameMismatch> {
    match e.get_ref()?.downcast_ref::<Error>()? {
        Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => inner.downcast_ref(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::{ClientConnection, RootCertStore, ServerConnection};
    use rustls_pki_types::PrivateKeyDer;

    /// A CA, and a leaf it signs for `sans` (none: only the common name `cn`).
    fn ca_and_leaf(sans: &[&str], cn: &str) -> (CertificateDer<'static>, CertificateDer<'static>, KeyPair) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, format!("test CA for {cn}"));
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        (ca_cert.der().clone(), cert.der().clone(), key)
    }

    /// A handshake in memory between our client configuration (trusting `ca`,
    /// verifying `name`) and a server presenting `leaf`: the client's error.
    fn handshake(ca: CertificateDer<'static>, leaf: CertificateDer<'static>, key: &KeyPair, name: &str) -> Error {
        let mut roots = RootCertStore::empty();
        roots.add(ca).unwrap();
        let client_cfg = crate::client_config(Some(Arc::new(roots))).unwrap();
        let server_cfg = rustls::ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf], PrivateKeyDer::try_from(key.serialize_der()).unwrap())
            .unwrap();
        let mut client = ClientConnection::new(client_cfg, crate::server_name(name).unwrap()).unwrap();
        let mut server = ServerConnection::new(Arc::new(server_cfg)).unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            if let Err(e) = server.process_new_packets() {
                panic!("server side failed first: {e}");
            }
            let mut back = Vec::new();
            server.write_tls(&mut back).unwrap();
            client.read_tls(&mut back.as_slice()).unwrap();
            if let Err(e) = client.process_new_packets() {
                return e;
            }
        }
        panic!("the handshake succeeded");
    }

    #[test]
    fn names_are_the_alternative_names_then_the_common_name() {
        let (_, leaf, _) = ca_and_leaf(&["other.example", "10.0.0.1", "::1"], "cn.example");
        assert_eq!(certificate_names(&leaf), ["other.example", "10.0.0.1", "::1"]);
        let (_, leaf, _) = ca_and_leaf(&[], "only-cn.example");
        assert_eq!(certificate_names(&leaf), ["only-cn.example"]);
        assert!(certificate_names(b"not a certificate").is_empty());
    }

    #[test]
    fn a_name_mismatch_says_which_names_the_certificate_holds() {
        let (ca, leaf, key) = ca_and_leaf(&["other.example", "10.0.0.1"], "other.example");
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, handshake(ca, leaf, &key, "backend.example"));
        let m = name_mismatch(&e).unwrap_or_else(|| panic!("not a name mismatch: {e:?}"));
        assert_eq!(m.expected, "backend.example");
        assert_eq!(m.presented, ["other.example", "10.0.0.1"]);
        assert_eq!(m.to_string(), r#"the certificate is for "other.example", "10.0.0.1", not "backend.example""#);
        let told = crate::explain(&e);
        assert!(
            told.starts_with(r#"the backend's certificate is for "other.example", "10.0.0.1", not "backend.example""#),
            "{told}"
        );
        assert!(crate::is_certificate_error(&e) && crate::peer_spoke_tls(&e) && !crate::peer_is_not_tls(&e));
    }

    #[test]
    fn an_untrusted_certificate_is_not_a_name_mismatch() {
        let (_, leaf, key) = ca_and_leaf(&["backend.example"], "backend.example");
        let (other_ca, ..) = ca_and_leaf(&["x.example"], "x");
        let e =
            std::io::Error::new(std::io::ErrorKind::InvalidData, handshake(other_ca, leaf, &key, "backend.example"));
        assert!(name_mismatch(&e).is_none(), "{e:?}");
        assert!(crate::explain(&e).contains("unknown issuer"), "{}", crate::explain(&e));
    }
}
