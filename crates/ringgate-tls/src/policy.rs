//! TLS policies of `https` listeners, named as Application Gateway v2's
//! predefined ones or custom (a minimum protocol version and cipher suites),
//! resolved at configuration load against what rustls supports, so that an
//! unsupported version or suite is a configuration error, not a handshake
//! that fails later.

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::ALL_CIPHER_SUITES;

/// A listener's protocol versions and cipher suites.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    /// How `check` names it: the predefined policy, `custom` or `default`.
    pub name: String,
    /// TLS 1.3 only (else 1.2 and 1.3).
    pub tls13_only: bool,
    pub suites: Vec<SupportedCipherSuite>,
}

/// Application Gateway v2's predefined policies rustls can serve, with
/// their cipher suites as v2 lists them (rustls has no CBC or static-RSA
/// suite, so those of v2's lists are left out; every suite kept is
/// ECDHE or TLS 1.3, with AES-GCM).
/// v2's 2022 lists less their CBC suites (the same for both 2022 policies).
const ECDHE_GCM: &[&str] = &[
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
];

const PREDEFINED: &[(&str, &[&str])] = &[
    ("AppGwSslPolicy20220101", ECDHE_GCM),
    ("AppGwSslPolicy20220101S", ECDHE_GCM),
    // v2's 2017 list less its CBC and static-RSA suites: the same six.
    ("AppGwSslPolicy20170401S", ECDHE_GCM),
];

/// v2's predefined policies whose minimum is TLS 1.0 or 1.1.
const LEGACY: &[&str] = &["AppGwSslPolicy20150501", "AppGwSslPolicy20170401"];

/// The IANA name of a rustls suite (rustls writes TLS 1.3's `TLS13_*`).
pub fn suite_name(s: &SupportedCipherSuite) -> &'static str {
    crate::session::iana_name(s.suite().as_str().unwrap_or("unknown"))
}

fn find_suite(name: &str) -> Option<SupportedCipherSuite> {
    ALL_CIPHER_SUITES.iter().find(|s| suite_name(s).eq_ignore_ascii_case(name)).copied()
}

fn supported_names() -> String {
    ALL_CIPHER_SUITES.iter().map(suite_name).collect::<Vec<_>>().join(", ")
}

impl TlsPolicy {
    /// rustls' own: TLS 1.2 and 1.3, every suite of its ring provider.
    pub fn default_policy() -> TlsPolicy {
        TlsPolicy { name: "default".into(), tls13_only: false, suites: ALL_CIPHER_SUITES.to_vec() }
    }

    /// One of Application Gateway v2's predefined policies, by its name.
    pub fn predefined(name: &str) -> Result<TlsPolicy, String> {
        if let Some((n, suites)) = PREDEFINED.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            let suites = suites.iter().filter_map(|s| find_suite(s)).collect();
            return Ok(TlsPolicy { name: (*n).to_string(), tls13_only: false, suites });
        }
        if LEGACY.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(format!(
                "\"{name}\" allows TLS 1.0 and 1.1, which ringgate (rustls) does not speak (RFC 8996 deprecates them; Application Gateway retired them in 2025): use \"AppGwSslPolicy20220101\""
            ));
        }
        let known: Vec<&str> = PREDEFINED.iter().map(|(n, _)| *n).collect();
        Err(format!("\"{name}\" is not a predefined policy (known: {}), or a custom table", known.join(", ")))
    }

    /// A custom policy: `min_protocol` `TLSv1_2` or `TLSv1_3` (v2's spelling;
    /// `TLSv1.2` is accepted too), and the cipher suites by IANA name
    /// (empty: every suite rustls has for those versions).
    pub fn custom(min_protocol: &str, suites: &[String]) -> Result<TlsPolicy, Vec<String>> {
        let tls13_only = match min_protocol.replace('.', "_").to_ascii_uppercase().as_str() {
            "TLSV1_2" => false,
            "TLSV1_3" => true,
            "TLSV1_0" | "TLSV1_1" => {
                return Err(vec![format!(
                    "\"{min_protocol}\": ringgate (rustls) does not speak TLS 1.0 or 1.1; the minimum is \"TLSv1_2\""
                )]);
            }
            _ => return Err(vec![format!("\"{min_protocol}\" is not \"TLSv1_2\" or \"TLSv1_3\"")]),
        };
        let mut errors = Vec::new();
        let mut chosen = Vec::new();
        for name in suites {
            match find_suite(name) {
                Some(s) if tls13_only && s.version() != &rustls::version::TLS13 => {
                    errors.push(format!("\"{name}\" is a TLS 1.2 suite, and min_protocol = \"TLSv1_3\" never uses it"))
                }
                Some(s) => chosen.push(s),
                None => errors.push(format!(
                    "\"{name}\" is not a cipher suite rustls supports (supported: {})",
                    supported_names()
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if chosen.is_empty() {
            chosen = ALL_CIPHER_SUITES
                .iter()
                .filter(|s| !tls13_only || s.version() == &rustls::version::TLS13)
                .copied()
                .collect();
        } else if !chosen.iter().any(|s| s.version() == &rustls::version::TLS13) {
            // rustls needs a TLS 1.3 suite whenever 1.3 is enabled.
            return Err(vec![
                "list at least one TLS 1.3 suite (TLS_AES_128_GCM_SHA256, ...): TLS 1.3 is always on".into(),
            ]);
        }
        Ok(TlsPolicy { name: "custom".into(), tls13_only, suites: chosen })
    }

    /// The versions to enable.
    pub fn versions(&self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        static BOTH: [&rustls::SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];
        if self.tls13_only { &TLS13_ONLY } else { &BOTH }
    }

    /// For `check`: `AppGwSslPolicy20220101 (TLS 1.2+, 6 suites)`.
    pub fn describe(&self) -> String {
        format!(
            "{} (TLS {}, {} suites: {})",
            self.name,
            if self.tls13_only { "1.3" } else { "1.2+" },
            self.suites.len(),
            self.suites.iter().map(suite_name).collect::<Vec<_>>().join(", ")
        )
    }

    /// The crypto provider with only this policy's suites.
    pub(crate) fn provider(&self) -> std::sync::Arc<rustls::crypto::CryptoProvider> {
        std::sync::Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: self.suites.clone(),
            ..rustls::crypto::ring::default_provider()
        })
    }
}

impl PartialEq for TlsPolicy {
    fn eq(&self, other: &TlsPolicy) -> bool {
        self.tls13_only == other.tls13_only
            && self.suites.len() == other.suites.len()
            && self.suites.iter().zip(&other.suites).all(|(a, b)| a.suite() == b.suite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_policies_resolve_to_rustls_suites() {
        let p = TlsPolicy::predefined("AppGwSslPolicy20220101").unwrap();
        assert_eq!(p.suites.len(), 6);
        assert!(!p.tls13_only);
        assert!(p.suites.iter().all(|s| !suite_name(s).contains("CHACHA")));
        let e = TlsPolicy::predefined("AppGwSslPolicy20150501").unwrap_err();
        assert!(e.contains("TLS 1.0 and 1.1"), "{e}");
        assert!(TlsPolicy::predefined("Nope").unwrap_err().contains("not a predefined policy"));
    }

    #[test]
    fn custom_policies_are_checked() {
        let p = TlsPolicy::custom("TLSv1_3", &[]).unwrap();
        assert!(p.tls13_only && p.suites.iter().all(|s| s.version() == &rustls::version::TLS13));
        let p = TlsPolicy::custom(
            "TLSv1_2",
            &["TLS_AES_128_GCM_SHA256".into(), "tls_ecdhe_rsa_with_aes_128_gcm_sha256".into()],
        )
        .unwrap();
        assert_eq!(p.suites.len(), 2);
        let e = TlsPolicy::custom("TLSv1_2", &["TLS_RSA_WITH_AES_128_CBC_SHA".into()]).unwrap_err();
        assert!(e[0].contains("not a cipher suite rustls supports (supported: TLS_AES_256_GCM_SHA384"), "{e:?}");
        let e = TlsPolicy::custom("TLSv1_3", &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()]).unwrap_err();
        assert!(e[0].contains("TLS 1.2 suite"), "{e:?}");
        assert!(TlsPolicy::custom("TLSv1_1", &[]).unwrap_err()[0].contains("TLS 1.0 or 1.1"));
        assert!(TlsPolicy::custom("TLSv1_2", &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()]).is_err());
    }
}
