//! Mutual TLS on `https` listeners, as Application Gateway v2 does it: the
//! listener asks for a client certificate chaining to
//! `trusted_client_certificates` (optionally checked against a CRL, and its
//! issuer's name against those certificates' subjects). The handshake
//! itself accepts any certificate, or none, and the verification is done
//! right after it, so that a missing or untrusted certificate gets an HTTP
//! 400 saying why (v2's answer) instead of a TLS alert the client cannot
//! explain, and so that `client_certificate = "optional"` can let the
//! request through with the verdict in its server variables.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// A listener's client-certificate requirement, loaded and checked once.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// Without a verified certificate, requests are answered 400.
    pub required: bool,
    /// The certificate's issuer must be the subject of one of the trusted
    /// certificates (v2's "verify client certificate issuer's DN").
    pub verify_issuer_dn: bool,
    verifier: Arc<dyn ClientCertVerifier>,
    /// Subjects (DER) of the trusted certificates, for the issuer-DN check.
    subjects: Vec<Vec<u8>>,
}

/// Why a client certificate was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertFailure {
    /// None was sent.
    Missing,
    /// It does not chain to the trusted certificates (or is malformed, or
    /// not for client authentication).
    Untrusted,
    /// It is past its validity (or not yet valid).
    Expired,
    /// The CRL lists it.
    Revoked,
    /// It chains, but its issuer is not one of the trusted certificates'
    /// subjects (`verify_client_cert_issuer_dn`).
    IssuerMismatch,
}

impl CertFailure {
    pub const ALL: [CertFailure; 5] = [
        CertFailure::Missing,
        CertFailure::Untrusted,
        CertFailure::Expired,
        CertFailure::Revoked,
        CertFailure::IssuerMismatch,
    ];

    /// The `reason` labels of `ringgate_client_certificate_failures_total`,
    /// in the order of [`CertFailure::ALL`].
    pub const NAMES: [&'static str; 5] = ["missing", "untrusted", "expired", "revoked", "issuer_mismatch"];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// A connection's client certificate as rewrites and the access log see it
/// (Application Gateway v2's `client_certificate_*` server variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// `SUCCESS`, `FAILED:<reason>` or `NONE` (as v2 and nginx write it).
    pub verification: String,
    pub failure: Option<CertFailure>,
    /// RFC 4514 distinguished names, most specific first (`CN=a,O=b`).
    pub subject: String,
    pub issuer: String,
    /// Hex, upper-case, as v2 writes it.
    pub serial: String,
    /// SHA-1 of the DER certificate, hex (v2's fingerprint).
    pub fingerprint: String,
    /// Validity, as `Mon DD HH:MM:SS YYYY GMT` (nginx's and v2's format).
    pub start_date: String,
    pub end_date: String,
    /// The certificate in PEM, URL-encoded (`client_certificate`).
    pub escaped_pem: String,
}

impl ClientAuth {
    /// Reads the CA bundle (and the CRL file, PEM or DER), and checks them.
    pub fn load(
        bundle: &Path,
        crl: Option<&Path>,
        required: bool,
        verify_issuer_dn: bool,
    ) -> Result<ClientAuth, String> {
        let certs = crate::pem::certs(bundle)?;
        let mut roots = rustls::RootCertStore::empty();
        let mut subjects = Vec::new();
        for c in &certs {
            roots
                .add(c.clone())
                .map_err(|e| format!("{}: a certificate is not a usable trust anchor: {e}", bundle.display()))?;
            let (_, parsed) = x509_parser::parse_x509_certificate(c)
                .map_err(|e| format!("{}: a certificate does not parse: {e}", bundle.display()))?;
            subjects.push(parsed.subject().as_raw().to_vec());
        }
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::provider()).allow_unauthenticated();
        if let Some(path) = crl {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let crls: Vec<CertificateRevocationListDer<'static>> = if bytes.starts_with(b"-----") {
                use rustls::pki_types::pem::PemObject;
                CertificateRevocationListDer::pem_slice_iter(&bytes)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("{}: not a PEM CRL: {e}", path.display()))?
            } else {
                vec![CertificateRevocationListDer::from(bytes)]
            };
            if crls.is_empty() {
                return Err(format!("{} holds no CRL (expected -----BEGIN X509 CRL-----)", path.display()));
            }
            builder = builder.with_crls(crls);
        }
        let verifier = builder.build().map_err(|e| format!("{}: {e}", crl.unwrap_or(bundle).display()))?;
        Ok(ClientAuth { required, verify_issuer_dn, verifier, subjects })
    }

    /// The verifier the listener's handshake uses (see the module header).
    pub(crate) fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(AskAndRecord(self.verifier.clone()))
    }

    /// Verifies the chain a client presented (`None` or empty: none, whose
    /// verdict is `NONE` with the failure `Missing`).
    pub fn verify(&self, chain: Option<&[CertificateDer<'_>]>) -> ClientCert {
        let Some((end_entity, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return ClientCert::none();
        };
        let mut cert = describe(end_entity);
        let result = self.verifier.verify_client_cert(end_entity, intermediates, UnixTime::now());
        let failure = match result {
            Ok(_) => {
                let issuer_ok = !self.verify_issuer_dn
                    || x509_parser::parse_x509_certificate(end_entity)
                        .is_ok_and(|(_, c)| self.subjects.iter().any(|s| s.as_slice() == c.issuer().as_raw()));
                (!issuer_ok).then_some((CertFailure::IssuerMismatch, "issuer DN does not match".to_string()))
            }
            Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)) => {
                Some((CertFailure::Revoked, "certificate revoked".into()))
            }
            Err(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. } | CertificateError::NotValidYet,
            )) => Some((CertFailure::Expired, "certificate expired".into())),
            Err(e) => Some((CertFailure::Untrusted, format!("{e}"))),
        };
        match failure {
            None => cert.verification = "SUCCESS".into(),
            Some((f, why)) => {
                cert.failure = Some(f);
                cert.verification = format!("FAILED:{why}");
            }
        }
        cert
    }
}

impl ClientCert {
    fn none() -> ClientCert {
        ClientCert {
            verification: "NONE".into(),
            failure: Some(CertFailure::Missing),
            subject: String::new(),
            issuer: String::new(),
            serial: String::new(),
            fingerprint: String::new(),
            start_date: String::new(),
            end_date: String::new(),
            escaped_pem: String::new(),
        }
    }

    /// Verified.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// The fields of a certificate, for its server variables.
fn describe(der: &CertificateDer<'_>) -> ClientCert {
    let mut c = ClientCert::none();
    c.failure = None;
    c.fingerprint = hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref(), false);
    c.escaped_pem = url_escape(&pem(der));
    if let Ok((_, x)) = x509_parser::parse_x509_certificate(der) {
        c.subject = rfc4514(x.subject());
        c.issuer = rfc4514(x.issuer());
        c.serial = hex(x.raw_serial(), true);
        c.start_date = gmt(x.validity().not_before);
        c.end_date = gmt(x.validity().not_after);
    }
    c
}

fn hex(bytes: &[u8], upper: bool) -> String {
    bytes.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect()
}

/// Most specific first, as RFC 4514 (and nginx's `$ssl_client_s_dn`).
fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    let reg = x509_parser::objects::oid_registry();
    let rdns: Vec<_> = name.iter_rdn().collect();
    rdns.into_iter()
        .rev()
        .map(|rdn| {
            rdn.iter()
                .map(|a| {
                    let key = x509_parser::objects::oid2abbrev(a.attr_type(), reg)
                        .map(str::to_string)
                        .unwrap_or_else(|_| a.attr_type().to_id_string());
                    let value = a.as_str().map(escape_dn).unwrap_or_default();
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn escape_dn(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, ch) in v.chars().enumerate() {
        if matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || (i == 0 && matches!(ch, '#' | ' ')) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn gmt(t: x509_parser::time::ASN1Time) -> String {
    let d = t.to_datetime();
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[usize::from(u8::from(d.month())) - 1],
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.year()
    )
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pem(der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Asks for a certificate (hinting the trusted subjects), accepts whatever
/// comes, and checks only that the client holds its key: the verdict on
/// the chain is [`ClientAuth::verify`]'s, after the handshake.
#[derive(Debug)]
struct AskAndRecord(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for AskAndRecord {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_and_hex() {
        assert!(pem(b"abc").contains("\nYWJj\n"));
        assert!(pem(b"ab").contains("\nYWI=\n"));
        assert_eq!(hex(&[0x0a, 0xff], true), "0AFF");
        assert_eq!(escape_dn("a,b"), "a\\,b");
        assert_eq!(url_escape("a b\n+/="), "a%20b%0A%2B%2F%3D");
    }
}
