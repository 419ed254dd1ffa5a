//! Listener side: certificate selection by SNI among the listeners that share
//! a socket, and the server configuration.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A listener's certificate and the host names it answers (lower-case;
/// wildcards as ".suffix"; other `*`/`?` patterns as globs). A site with no
/// names is the default.
#[derive(Debug, Clone)]
pub struct SniSite {
    pub exact: Vec<String>,
    pub wildcard_suffixes: Vec<String>,
    pub globs: Vec<String>,
    pub key: Arc<CertifiedKey>,
}

/// `*` (any run, none included) and `?` (one character) matching of a
/// lower-case host pattern against a host name, ignoring the name's case.
/// Iterative with one backtrack point: linear in practice, never
/// exponential, whatever the pattern.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t].to_ascii_lowercase() => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[derive(Debug)]
struct Resolver {
    sites: Vec<SniSite>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else { return self.default.clone() };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(s) = self.sites.iter().find(|s| s.exact.contains(&name)) {
            return Some(s.key.clone());
        }
        let wild = self
            .sites
            .iter()
            .flat_map(|s| s.wildcard_suffixes.iter().map(move |w| (w, s)))
            .filter(|(w, _)| name.len() > w.len() && name.ends_with(w.as_str()))
            .max_by_key(|(w, _)| w.len());
        if let Some((_, s)) = wild {
            return Some(s.key.clone());
        }
        if let Some(s) = self.sites.iter().find(|s| s.globs.iter().any(|g| glob_match(g.as_bytes(), name.as_bytes()))) {
            return Some(s.key.clone());
        }
        self.default.clone()
    }
}

/// The configuration of a socket whose listeners are `sites`. Clients
/// without SNI, or asking for a host no site names, get `default` (the basic
/// listener's certificate, else the first site's). ALPN offers `h2` first
/// when `http2`, then `http/1.1`.
pub fn server_config(
    sites: Vec<SniSite>,
    default: Option<Arc<CertifiedKey>>,
    http2: bool,
    policy: &crate::TlsPolicy,
    client_auth: Option<&crate::ClientAuth>,
) -> Result<Arc<ServerConfig>, String> {
    let default = default.or_else(|| sites.first().map(|s| s.key.clone()));
    let builder = ServerConfig::builder_with_provider(policy.provider())
        .with_protocol_versions(policy.versions())
        .map_err(|e| e.to_string())?;
    let builder = match client_auth {
        Some(a) => builder.with_client_cert_verifier(a.handshake_verifier()),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(Resolver { sites, default }));
    cfg.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    // Session tickets let clients resume without a full handshake on any
    // worker (the ticket key is shared through this configuration).
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod glob_tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match(b"api-?.example.*", b"API-1.example.org"));
        assert!(!glob_match(b"api-?.example.*", b"api-12.example.org"));
        assert!(glob_match(b"*.example.com", b"a.b.example.com"));
        assert!(glob_match(b"a*b*c", b"abc"));
        assert!(glob_match(b"a*b*c", b"aXbYbZc"));
        assert!(!glob_match(b"a*b*c", b"aXbYbZ"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"?", b""));
        // Pathological for a naive backtracker; linear here.
        let long = vec![b'a'; 10_000];
        assert!(!glob_match(b"*a*a*a*a*a*a*a*b", &long));
    }
}
