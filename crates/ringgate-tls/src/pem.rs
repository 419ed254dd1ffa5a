//! PEM files: certificate chains, private keys and root certificates, read
//! and checked at configuration load with messages that name the file.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub(crate) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    let certs = certs.map_err(|e| format!("{}: not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate (expected -----BEGIN CERTIFICATE-----)", path.display()));
    }
    Ok(certs)
}

/// When a certificate stops being valid (`None`: it does not parse).
pub fn not_after(der: &[u8]) -> Option<std::time::SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let secs = cert.validity().not_after.timestamp();
    let at = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(u64::try_from(secs).ok()?))?;
    Some(at)
}

/// The OCSP responder URLs a certificate names (its Authority Information
/// Access extension).
pub fn ocsp_urls(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return Vec::new() };
    let ocsp = x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP;
    cert.extensions()
        .iter()
        .filter_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => Some(aia),
            _ => None,
        })
        .flat_map(|aia| aia.iter())
        .filter(|d| d.access_method == ocsp)
        .filter_map(|d| match &d.access_location {
            GeneralName::URI(u) => Some((*u).to_string()),
            _ => None,
        })
        .collect()
}

/// `key` with the OCSP response in `path` to staple (DER, as an OCSP
/// responder gives it), for a certificate that names an OCSP responder.
pub fn with_ocsp_response(key: &CertifiedKey, path: &Path) -> Result<Arc<CertifiedKey>, String> {
    let leaf = key.cert.first().ok_or("the certificate chain is empty")?;
    if ocsp_urls(leaf).is_empty() {
        return Err("the certificate names no OCSP responder (no OCSP URL in its Authority Information Access), so clients would not ask for a stapled response".into());
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // An OCSPResponse is a DER SEQUENCE; a PEM or text file is a mistake.
    if bytes.first() != Some(&0x30) || bytes.len() < 8 {
        return Err(format!(
            "{} is not a DER OCSP response (get one with `openssl ocsp ... -respout {}`)",
            path.display(),
            path.display()
        ));
    }
    Ok(Arc::new(CertifiedKey { cert: key.cert.clone(), key: key.key.clone(), ocsp: Some(bytes) }))
}

/// A certificate chain and its private key, checked to belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain = certs(cert)?;
    let bytes = std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    let der = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("{} holds no private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}", key.display()))?;
    let ck = CertifiedKey::from_der(chain, der, &crate::provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("the private key in {} does not belong to the certificate in {}", key.display(), cert.display())
        }
        other => format!("{} / {}: {other}", cert.display(), key.display()),
    })?;
    Ok(Arc::new(ck))
}

/// Root certificates that backends' certificates must chain to.
pub fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store.add(c).map_err(|e| format!("{}: a certificate is not a usable root: {e}", path.display()))?;
    }
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn matching_and_mismatched_keys() {
        let dir = std::env::temp_dir().join(format!("ringgate-tls-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let cert = write(&dir, "a.pem", &a.cert.pem());
        let key = write(&dir, "a.key", &a.signing_key.serialize_pem());
        let other = write(&dir, "b.key", &b.signing_key.serialize_pem());
        assert!(load_certified_key(&cert, &key).is_ok());
        let e = load_certified_key(&cert, &other).unwrap_err();
        assert!(e.contains("does not belong to the certificate"), "{e}");
        let e = load_certified_key(&key, &key).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = load_certified_key(&cert, &cert).unwrap_err();
        assert!(e.contains("holds no private key"), "{e}");
        let e = load_certified_key(&dir.join("missing.pem"), &key).unwrap_err();
        assert!(e.starts_with("cannot read"), "{e}");
        assert_eq!(load_roots(&cert).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
