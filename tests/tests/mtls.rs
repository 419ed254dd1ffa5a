//! Mutual TLS and TLS policies on https listeners, as Application Gateway
//! v2 has them: a client certificate required or optional, chaining to
//! `trusted_client_certificates`, checked against a CRL and (optionally) its
//! issuer's name; a missing or untrusted one answered 400 with its own code
//! and counted; the certificate's fields in rewrites' server variables; and
//! `tls_policy` (predefined or custom) refusing clients outside it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ringgate_e2e::certs::{Ca, Leaf};
use ringgate_e2e::*;
use rustls::pki_types::{PrivateKeyDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion};

const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// The server's CA, the clients' CA, and the server's certificate.
struct Pki {
    server_ca: Ca,
    server: Leaf,
    clients: Ca,
}

fn pki() -> Pki {
    let server_ca = Ca::new("server CA");
    let server = server_ca.leaf(&["localhost"]);
    Pki { server_ca, server, clients: Ca::new("clients CA") }
}

/// A gateway with one https listener `tls` (its extra lines
/// `listener_extra`) in front of `backend`, the rule's rewrite set copying
/// the client certificate's variables into request headers. `files` are
/// written beside the configuration.
fn gateway(p: &Pki, backend: &Backend, listener_extra: &str, files: &[(&str, String)]) -> Gateway {
    let config = format!(
        r#"[gateway]
workers = 1
admin_listen = "127.0.0.1:0"
access_log = "off"
drain_timeout = 5

[[listener]]
name = "tls"
listen = "127.0.0.1:0"
protocol = "https"
certificate = "cert.pem"
private_key = "cert.key"
{listener_extra}

[[backend_pool]]
name = "pool01"
addresses = ["{backend}"]

[[backend_http_settings]]
name = "setting01"

[[rewrite_rule_set]]
name = "mtls"

[[rewrite_rule_set.rule]]
name = "client-cert"
sequence = 10
request_headers = {{ "X-Client-Verify" = "{{var_client_certificate_verification}}", "X-Client-Subject" = "{{var_client_certificate_subject}}", "X-Client-Issuer" = "{{var_client_certificate_issuer}}", "X-Client-Serial" = "{{var_client_certificate_serial}}", "X-Client-Fingerprint" = "{{var_client_certificate_fingerprint}}", "X-Client-Cert" = "{{var_client_certificate}}" }}

[[rule]]
name = "rule01"
listener = "tls"
backend_pool = "pool01"
backend_http_settings = "setting01"
rewrite_rule_set = "mtls"
"#,
        backend = backend.addr()
    );
    let mut all: Vec<(String, Vec<u8>)> = vec![
        ("cert.pem".into(), p.server.cert_pem.clone().into_bytes()),
        ("cert.key".into(), p.server.key_pem.clone().into_bytes()),
    ];
    all.extend(files.iter().map(|(n, t)| (n.to_string(), t.clone().into_bytes())));
    Gateway::start_with_files(&config, &all)
}

/// A TLS client trusting `ca`, presenting `client` (with the chain
/// `extra_chain` after it) when given.
fn client_config(
    ca: &Ca,
    client: Option<(&Leaf, &[&Ca])>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).expect("the server CA as a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots);
    Arc::new(match client {
        None => b.with_no_client_auth(),
        Some((leaf, chain)) => {
            let mut certs = vec![leaf.der.clone()];
            certs.extend(chain.iter().map(|c| c.der.clone()));
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("the client key");
            b.with_client_auth_cert(certs, key).expect("the client certificate")
        }
    })
}

/// GET `path` over TLS: the status and the whole answer, or the error of
/// the handshake.
fn tls_get(addr: SocketAddr, cfg: Arc<ClientConfig>, path: &str) -> std::io::Result<(u16, String)> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let conn = ClientConnection::new(cfg, name).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut out = Vec::new();
    if let Err(e) = tls.read_to_end(&mut out)
        && out.is_empty()
    {
        return Err(e);
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, text))
}

fn failures(gw: &Gateway, reason: &str) -> u64 {
    gw.metric(&format!("ringgate_client_certificate_failures_total{{reason=\"{reason}\"}}")).unwrap_or(0)
}

fn recorded(b: &Backend, path: &str) -> ringgate_testbackend::RecordedRequest {
    b.recorded().into_iter().find(|r| r.path() == path).unwrap_or_else(|| panic!("{path} did not reach the backend"))
}

#[test]
fn a_required_client_certificate_is_checked_and_its_fields_forwarded() {
    let p = pki();
    let b = Backend::start_ok("b").unwrap();
    let gw =
        gateway(&p, &b, "trusted_client_certificates = \"clients.pem\"", &[("clients.pem", p.clients.pem.clone())]);
    let addr = gw.addr("tls");

    // A trusted certificate: served, its fields in the rewrite's headers.
    let alice = p.clients.client("alice", "Example Org");
    let (status, text) = tls_get(addr, client_config(&p.server_ca, Some((&alice, &[])), TLS13), "/alice").unwrap();
    assert_eq!(status, 200, "{text}");
    let seen = recorded(&b, "/alice");
    assert_eq!(seen.header("x-client-verify"), Some("SUCCESS"));
    // RFC 4514 order, as `openssl x509 -nameopt RFC2253` and nginx write it
    // (rcgen encodes the common name first).
    assert_eq!(seen.header("x-client-subject"), Some("O=Example Org,CN=alice"));
    assert_eq!(seen.header("x-client-issuer"), Some("CN=clients CA"));
    let serial: String = alice.serial.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(seen.header("x-client-serial"), Some(serial.as_str()));
    assert_eq!(seen.header("x-client-fingerprint").map(str::len), Some(40), "SHA-1 in hex");
    assert!(
        seen.header("x-client-cert").is_some_and(|c| c.starts_with("-----BEGIN%20CERTIFICATE-----%0A")),
        "{seen:?}"
    );

    // None: 400 with its own code, and counted.
    let (status, text) = tls_get(addr, client_config(&p.server_ca, None, TLS13), "/none").unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.to_ascii_lowercase().contains("x-ringgate-error: client_certificate_missing"), "{text}");
    assert!(text.contains("no required SSL certificate was sent"), "{text}");
    // One from another CA: 400, untrusted.
    let stranger = Ca::new("stranger CA").client("mallory", "Elsewhere");
    let (status, text) =
        tls_get(addr, client_config(&p.server_ca, Some((&stranger, &[])), TLS13), "/stranger").unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.to_ascii_lowercase().contains("x-ringgate-error: client_certificate_untrusted"), "{text}");
    assert_eq!(b.requests_to("/none") + b.requests_to("/stranger"), 0);
    assert!(wait_until(Duration::from_secs(5), || failures(&gw, "missing") == 1 && failures(&gw, "untrusted") == 1));
    // TLS 1.2 clients are checked the same way.
    let (status, _) = tls_get(addr, client_config(&p.server_ca, Some((&alice, &[])), TLS12), "/alice12").unwrap();
    assert_eq!(status, 200);
}

#[test]
fn a_revoked_certificate_is_refused() {
    let p = pki();
    let b = Backend::start_ok("b").unwrap();
    let good = p.clients.client("good", "Org");
    let revoked = p.clients.client("revoked", "Org");
    let crl = p.clients.crl(&[&revoked]);
    let gw = gateway(
        &p,
        &b,
        "trusted_client_certificates = \"clients.pem\"\nclient_crl = \"clients.crl\"",
        &[("clients.pem", p.clients.pem.clone()), ("clients.crl", crl)],
    );
    let addr = gw.addr("tls");
    let (status, text) = tls_get(addr, client_config(&p.server_ca, Some((&revoked, &[])), TLS13), "/revoked").unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("revoked"), "{text}");
    assert!(wait_until(Duration::from_secs(5), || failures(&gw, "revoked") == 1));
    let (status, _) = tls_get(addr, client_config(&p.server_ca, Some((&good, &[])), TLS13), "/good").unwrap();
    assert_eq!(status, 200);
}

#[test]
fn an_optional_certificate_lets_requests_through_with_the_verdict() {
    let p = pki();
    let b = Backend::start_ok("b").unwrap();
    let gw = gateway(
        &p,
        &b,
        "trusted_client_certificates = \"clients.pem\"\nclient_certificate = \"optional\"",
        &[("clients.pem", p.clients.pem.clone())],
    );
    let addr = gw.addr("tls");
    let (status, _) = tls_get(addr, client_config(&p.server_ca, None, TLS13), "/anonymous").unwrap();
    assert_eq!(status, 200);
    assert_eq!(recorded(&b, "/anonymous").header("x-client-verify"), Some("NONE"));
    let stranger = Ca::new("stranger CA").client("mallory", "Elsewhere");
    let (status, _) = tls_get(addr, client_config(&p.server_ca, Some((&stranger, &[])), TLS13), "/stranger").unwrap();
    assert_eq!(status, 200);
    let verdict = recorded(&b, "/stranger").header("x-client-verify").map(str::to_string);
    assert!(verdict.as_deref().is_some_and(|v| v.starts_with("FAILED:")), "{verdict:?}");
    assert_eq!(failures(&gw, "missing"), 0, "a missing optional certificate is no failure");
}

#[test]
fn the_issuer_dn_check_wants_the_trusted_certificates_subject() {
    let p = pki();
    let b = Backend::start_ok("b").unwrap();
    let issuing = p.clients.intermediate("issuing CA");
    let carol = issuing.client("carol", "Org");
    // Only the root is trusted: the chain verifies, the issuer (the
    // intermediate) is not one of the trusted subjects.
    let listener = "trusted_client_certificates = \"clients.pem\"\nverify_client_cert_issuer_dn = true";
    let gw = gateway(&p, &b, listener, &[("clients.pem", p.clients.pem.clone())]);
    let cfg = client_config(&p.server_ca, Some((&carol, &[&issuing])), TLS13);
    let (status, text) = tls_get(gw.addr("tls"), cfg.clone(), "/carol").unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("issuer DN does not match"), "{text}");
    assert!(wait_until(Duration::from_secs(5), || failures(&gw, "issuer_mismatch") == 1));
    drop(gw);
    // The intermediate in the bundle too: accepted.
    let bundle = format!("{}{}", p.clients.pem, issuing.pem);
    let gw = gateway(&p, &b, listener, &[("clients.pem", bundle)]);
    let (status, text) = tls_get(gw.addr("tls"), cfg, "/carol2").unwrap();
    assert_eq!(status, 200, "{text}");
}

#[test]
fn a_tls_policy_refuses_clients_outside_it() {
    let p = pki();
    let b = Backend::start_ok("b").unwrap();
    let gw = gateway(&p, &b, "tls_policy = { min_protocol = \"TLSv1_3\" }", &[]);
    let addr = gw.addr("tls");
    assert!(
        tls_get(addr, client_config(&p.server_ca, None, TLS12), "/old").is_err(),
        "a TLS 1.2 client must be refused"
    );
    assert_eq!(tls_get(addr, client_config(&p.server_ca, None, TLS13), "/new").unwrap().0, 200);
    drop(gw);

    // A predefined policy without CHACHA20: a client offering only it fails.
    let gw = gateway(&p, &b, "tls_policy = \"AppGwSslPolicy20220101\"", &[]);
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256];
    let mut roots = RootCertStore::empty();
    roots.add(p.server_ca.der.clone()).unwrap();
    let chacha = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(TLS13)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    assert!(tls_get(gw.addr("tls"), chacha, "/chacha").is_err(), "CHACHA20 is outside AppGwSslPolicy20220101");
    assert_eq!(tls_get(gw.addr("tls"), client_config(&p.server_ca, None, TLS12), "/gcm").unwrap().0, 200);
}

#[test]
fn tls_policy_and_mutual_tls_errors_name_the_field() {
    let dir = TempDir::new("mtls-check");
    let p = pki();
    std::fs::write(dir.path().join("cert.pem"), &p.server.cert_pem).unwrap();
    std::fs::write(dir.path().join("cert.key"), &p.server.key_pem).unwrap();
    let config = "[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:8443\"\nprotocol = \"https\"\ncertificate = \"cert.pem\"\nprivate_key = \"cert.key\"\ntls_policy = { min_protocol = \"TLSv1_2\", cipher_suites = [\"TLS_RSA_WITH_AES_128_CBC_SHA\"] }\nclient_certificate = \"optional\"\n\n[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:8444\"\nprotocol = \"https\"\ncertificate = \"cert.pem\"\nprivate_key = \"cert.key\"\ntls_policy = \"AppGwSslPolicy20150501\"\ntrusted_client_certificates = \"missing.pem\"\nocsp_response = \"cert.ocsp\"\n";
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, config).unwrap();
    let out =
        std::process::Command::new(binary()).args(["check", "--config", path.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for needle in [
        "field `cipher_suites`: \"TLS_RSA_WITH_AES_128_CBC_SHA\" is not a cipher suite rustls supports",
        "field `client_certificate`: needs trusted_client_certificates",
        "field `tls_policy`: \"AppGwSslPolicy20150501\" allows TLS 1.0 and 1.1",
        "field `trusted_client_certificates`: cannot read",
        "field `ocsp_response`: the certificate names no OCSP responder",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}

/// A listener certificate's expiry is exported, and `doctor` flags one
/// expiring within 30 days.
#[test]
fn certificate_expiry_is_a_metric_and_a_doctor_warning() {
    let server_ca = Ca::new("server CA");
    let soon = server_ca.leaf_expiring(&["localhost"], 10);
    let p = Pki { server_ca, server: soon, clients: Ca::new("clients CA") };
    let b = Backend::start_ok("b").unwrap();
    let gw = gateway(&p, &b, "", &[]);
    let series = r#"ringgate_certificate_expiry_seconds{listener="tls",certificate=""#;
    let page = gw.admin_get("/metrics").1;
    let line = page.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in:\n{page}"));
    let secs: i64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number");
    assert!((9 * 86_400..=10 * 86_400).contains(&secs), "{line}");

    let out = std::process::Command::new(binary())
        .args(["doctor", "--config", gw.config_path().to_str().unwrap(), "--admin", &gw.admin().to_string()])
        .output()
        .expect("run doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("expires in 9 days") || text.contains("expires in 10 days"), "{text}");
    assert!(text.contains("renew it"), "{text}");
}

/// Records the OCSP response the server stapled, then verifies as webpki.
#[derive(Debug)]
struct StapleRecorder {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    stapled: std::sync::Mutex<Vec<u8>>,
}

impl rustls::client::danger::ServerCertVerifier for StapleRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.stapled.lock().expect("lock") = ocsp_response.to_vec();
        self.inner.verify_server_cert(end_entity, intermediates, server_name, &[], now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// OCSP stapling: a listener certificate naming an OCSP responder, with a
/// response file, has that response stapled to its handshakes; one naming
/// none is refused at load.
#[test]
fn an_ocsp_response_is_stapled() {
    let server_ca = Ca::new("server CA");
    let leaf = server_ca.leaf_with_ocsp_url(&["localhost"], "http://ocsp.example/");
    let p = Pki { server_ca, server: leaf, clients: Ca::new("clients CA") };
    let b = Backend::start_ok("b").unwrap();
    // Not a signed response, but shaped as DER: rustls staples it as given.
    let response: Vec<u8> = [0x30, 0x0a].iter().chain(b"ocsp-bytes").copied().collect();
    let dir_files = [("cert.ocsp", String::from_utf8_lossy(&response).into_owned())];
    let gw = gateway(&p, &b, "ocsp_response = \"cert.ocsp\"", &dir_files);
    let mut roots = RootCertStore::empty();
    roots.add(p.server_ca.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let recorder = Arc::new(StapleRecorder { inner, stapled: std::sync::Mutex::new(Vec::new()) });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(TLS13)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    assert_eq!(tls_get(gw.addr("tls"), Arc::new(cfg), "/stapled").unwrap().0, 200);
    assert_eq!(*recorder.stapled.lock().unwrap(), response, "the response file, stapled");
}
