//! Backend side: the configuration for HTTPS backends and probes.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;

use crate::names::NamingVerifier;

/// Trusts `roots` (the settings' `trusted_root_certificates`), or the Mozilla
/// roots of webpki-roots when none are configured.
pub fn client_config(roots: Option<Arc<RootCertStore>>) -> Result<Arc<ClientConfig>, String> {
    let roots = match roots {
        Some(r) => r,
        None => Arc::new(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }),
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, crate::provider())
        .build()
        .map_err(|e| format!("the backend certificate verifier cannot be built: {e}"))?;
    // `dangerous` only because the verifier is a custom type: it is webpki's,
    // as strict, and only words a name mismatch better (see `names`).
    let mut cfg = ClientConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NamingVerifier { inner: webpki }))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// `roots` plus the well-known (Mozilla) roots, for settings that trust both
/// (`use_well_known_ca_certificate = true` with `trusted_root_certificates`).
pub fn with_well_known_roots(roots: &RootCertStore) -> Arc<RootCertStore> {
    let mut all = roots.clone();
    all.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Arc::new(all)
}

/// The name to verify a backend's certificate against (and send as SNI): a
/// host name, or an IP address.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ips() {
        assert!(matches!(server_name("app.example.com"), Some(ServerName::DnsName(_))));
        assert!(matches!(server_name("10.0.0.1"), Some(ServerName::IpAddress(_))));
        assert!(matches!(server_name("[::1]"), Some(ServerName::IpAddress(_))));
        assert!(server_name("bad name").is_none());
    }

    #[test]
    fn well_known_roots_are_added_to_the_trusted_ones() {
        let own = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).expect("a certificate");
        let mut trusted = RootCertStore::empty();
        trusted.add(own.cert.der().clone()).expect("a root");
        let both = with_well_known_roots(&trusted);
        assert_eq!(both.len(), 1 + webpki_roots::TLS_SERVER_ROOTS.len());
        assert_eq!(both.roots[0], trusted.roots[0], "the operator's root is kept");
    }

    #[test]
    fn default_roots_are_the_mozilla_set() {
        assert!(client_config(None).is_ok());
    }
}
