//! TLS end to end: https listeners (ALPN, TLS 1.2 and 1.3, SNI among the
//! listeners of one address, plain HTTP refused in plain words, stalled
//! handshakes cut off, certificates reloaded under live connections), HTTPS
//! backends and probes (trusted and untrusted certificates, as the client, the
//! backend-health view and `ringgate doctor` see them), and `ringgate check`
//! on broken TLS settings.
//!
//! Certificates are made at test time with rcgen: a CA per test and leaves
//! signed by it (webpki refuses a CA certificate as a server certificate). The
//! PEM files sit next to the configuration file, which names them by relative
//! paths. The client is rustls itself, blocking, over `std::net`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringgate_e2e::certs::{Ca, Leaf};
use ringgate_e2e::*;
use ringgate_testbackend::RecordedRequest;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, StreamOwned, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;

/// How long a probe-driven state change may take to show up.
const SOON: Duration = Duration::from_secs(5);
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

// ---------------------------------------------------------------------------
// Certificates.

// `Ca` and `Leaf` are the harness's (`ringgate_e2e::certs`).

// ---------------------------------------------------------------------------
// Configuration.

/// The `[gateway]` table: one worker, admin API on port 0, no access log,
/// sub-second probe timers allowed (the probes here run every 100 ms).
const GATEWAY: &str = "[gateway]\nworkers = 1\nadmin_listen = \"127.0.0.1:0\"\naccess_log = \"off\"\nallow_subsecond_timers = true\ndrain_timeout = 5\n";

/// The lines of an https listener on `listen` answering `host_names` with
/// the certificate in `<cert>.pem` and its key in `<cert>.key`.
fn https(listen: &str, host_names: &[&str], cert: &str) -> String {
    let hosts: Vec<String> = host_names.iter().map(|h| format!("\"{h}\"")).collect();
    format!(
        "listen = \"{listen}\"\nhost_names = [{}]\nprotocol = \"https\"\ncertificate = \"{cert}.pem\"\nprivate_key = \"{cert}.key\"\n",
        hosts.join(", ")
    )
}

/// Listener `name` (made of `listener_lines`) with its own rule
/// `rule-<name>`, pool `pool-<name>` to `addresses` and settings
/// `settings-<name>` (made of `settings_lines`).
fn site(name: &str, listener_lines: &str, addresses: &[SocketAddr], settings_lines: &str) -> String {
    let addrs: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
[[listener]]
name = "{name}"
{listener_lines}
[[backend_pool]]
name = "pool-{name}"
addresses = [{addrs}]

[[backend_http_settings]]
name = "settings-{name}"
{settings_lines}
[[rule]]
name = "rule-{name}"
listener = "{name}"
backend_pool = "pool-{name}"
backend_http_settings = "settings-{name}"
"#,
        addrs = addrs.join(", "),
    )
}

/// A gateway with one basic https listener `tls` presenting `leaf` (files
/// `cert.pem` and `cert.key` next to the configuration) in front of
/// `backend`; also returns the configuration text, for reloads.
fn https_gateway(backend: &Backend, leaf: &Leaf) -> (Gateway, String) {
    let config = format!("{GATEWAY}{}", site("tls", &https("127.0.0.1:0", &[], "cert"), &[backend.addr()], ""));
    let gw = Gateway::start_with_files(&config, &cert_files("cert", leaf));
    (gw, config)
}

/// `<name>.pem` and `<name>.key` of `leaf`, for [`Gateway::start_with_files`].
fn cert_files<'a>(name: &str, leaf: &'a Leaf) -> [(String, &'a [u8]); 2] {
    [(format!("{name}.pem"), leaf.cert_pem.as_bytes()), (format!("{name}.key"), leaf.key_pem.as_bytes())]
}

// ---------------------------------------------------------------------------
// The TLS client.

/// A client configuration trusting `roots`, speaking `versions`, offering
/// ALPN `http/1.1`.
fn client_config(roots: &[&Ca], versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for ca in roots {
        store.add(ca.der.clone()).expect("add a test root");
    }
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// One TLS connection, handshake done, reading responses off it.
struct TlsClient {
    tls: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl TlsClient {
    /// Connects to `addr` and completes the handshake for `name` (the SNI
    /// and the name the certificate is verified against).
    fn connect(addr: SocketAddr, name: &str, cfg: Arc<ClientConfig>) -> std::io::Result<TlsClient> {
        Self::connect_after(addr, b"", name, cfg)
    }

    /// [`TlsClient::connect`], sending `preamble` (a PROXY protocol header)
    /// before the handshake, as a TCP load balancer does.
    fn connect_after(
        addr: SocketAddr,
        preamble: &[u8],
        name: &str,
        cfg: Arc<ClientConfig>,
    ) -> std::io::Result<TlsClient> {
        let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        tcp.write_all(preamble)?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(name.to_string()).map_err(std::io::Error::other)?;
        let conn = ClientConnection::new(cfg, name).map_err(std::io::Error::other)?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(TlsClient { tls, buf: Vec::new() })
    }

    fn alpn(&self) -> Option<&[u8]> {
        self.tls.conn.alpn_protocol()
    }

    fn version(&self) -> Option<ProtocolVersion> {
        self.tls.conn.protocol_version()
    }

    /// The certificate the server presented.
    fn peer_leaf(&self) -> CertificateDer<'static> {
        self.tls.conn.peer_certificates().and_then(|c| c.first()).expect("the server sent a certificate").clone()
    }

    /// `GET path` with `Host: host`.
    fn get(&mut self, host: &str, path: &str) -> std::io::Result<Response> {
        self.tls.write_all(&format_request("GET", path, &[("Host", host)], b""))?;
        self.tls.flush()?;
        self.read_response()
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let n = self.tls.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one response framed by Content-Length (every answer here is).
    fn read_response(&mut self) -> std::io::Result<Response> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill()? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a response head"));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
            .collect();
        self.buf.drain(..head_end);
        let mut r = Response { status, headers, body: Vec::new(), closed: false };
        let n: usize = r.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "body truncated"));
            }
        }
        r.body = self.buf.drain(..n).collect();
        Ok(r)
    }
}

/// One `GET /` with `Host: host` on a fresh TLS connection for `name`.
fn tls_get(addr: SocketAddr, name: &str, host: &str, cfg: Arc<ClientConfig>) -> (TlsClient, Response) {
    let mut c = TlsClient::connect(addr, name, cfg).unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
    let r = c.get(host, "/").unwrap_or_else(|e| panic!("GET / over TLS to {addr}: {e}"));
    (c, r)
}

// ---------------------------------------------------------------------------
// Admin API and processes.

/// Server 0 of `rule` in the gateway's `GET /backend-health`.
fn health_of(gw: &Gateway, rule: &str) -> Value {
    let (status, body) = gw.admin_get("/backend-health");
    assert_eq!(status, 200, "GET /backend-health: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/backend-health is not JSON ({e}): {body}"));
    v["rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["rule"] == rule))
        .and_then(|r| r["servers"].get(0))
        .cloned()
        .unwrap_or_else(|| panic!("no server in {rule}: {v:#}"))
}

/// Waits until server 0 of `rule` is in `state`; returns its view.
fn wait_state(gw: &Gateway, rule: &str, state: &str) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(SOON, || {
        last = health_of(gw, rule);
        last["state"] == state
    });
    assert!(ok, "{rule}'s server never became {state}: {last:#}\nlog:\n{}", gw.stderr());
    last
}

/// The requests `backend` received that were not health probes.
fn proxied(backend: &Backend) -> Vec<RecordedRequest> {
    let probe = |r: &RecordedRequest| r.header("user-agent").is_some_and(|ua| ua.starts_with("ringgate-probe/"));
    backend.recorded().into_iter().filter(|r| !probe(r)).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

fn check(path: &Path) -> Output {
    Command::new(binary()).arg("check").arg("--config").arg(path).output().expect("run ringgate check")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn https_listener_proxies_over_tls_with_alpn_http11() {
    let ca = Ca::new("ringgate test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
    let backend = Backend::builder().name("tls-backend").start().expect("start test backend");
    let (gw, _) = https_gateway(&backend, &leaf);
    let addr = gw.addr("tls");

    let mut c = TlsClient::connect(addr, "localhost", client_config(&[&ca], TLS13)).expect("TLS 1.3 handshake");
    assert_eq!(c.alpn(), Some(&b"http/1.1"[..]), "ALPN must settle on http/1.1");
    assert_eq!(c.version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(c.peer_leaf(), leaf.der, "the listener must present its certificate");
    // Keep-alive: two requests on the one TLS connection.
    for i in 0..2 {
        let r = c.get("localhost", "/").unwrap_or_else(|e| panic!("request {i} on the TLS connection: {e}"));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-backend"), Some("tls-backend"), "request {i}: {r:?}");
    }
    let seen = proxied(&backend);
    assert_eq!(seen.len(), 2, "{seen:?}");
    for req in &seen {
        assert_eq!(req.header("x-forwarded-proto"), Some("https"), "{req:?}");
    }

    // A client that only speaks TLS 1.2 is served too.
    let (c12, r) = tls_get(addr, "localhost", "localhost", client_config(&[&ca], TLS12));
    assert_eq!(c12.version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(c12.alpn(), Some(&b"http/1.1"[..]));
    assert_eq!((r.status, r.header("x-backend")), (200, Some("tls-backend")), "{r:?}");
    // And one connecting by IP address (no SNI is sent for an IP).
    let (_, r) = tls_get(addr, "127.0.0.1", "127.0.0.1", client_config(&[&ca], TLS13));
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn sni_selects_the_certificate_of_the_multi_site_listener() {
    let ca = Ca::new("ringgate test CA");
    let (a, b) = (ca.leaf(&["a.example.test"]), ca.leaf(&["b.example.test"]));
    // The basic listener's certificate also covers every other name, so a
    // client asking for an unknown one can verify what it gets.
    let default = ca.leaf(&["default.example.test", "*.example.test"]);
    let backend = |name: &str| Backend::builder().name(name).start().expect("start test backend");
    let (ba, bb, bc) = (backend("backend-a"), backend("backend-b"), backend("backend-default"));
    let listen = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "{GATEWAY}{}{}{}",
        site("site-a", &https(&listen, &["a.example.test"], "a"), &[ba.addr()], ""),
        site("site-b", &https(&listen, &["b.example.test"], "b"), &[bb.addr()], ""),
        site("basic", &https(&listen, &[], "default"), &[bc.addr()], ""),
    );
    let files: Vec<(String, &[u8])> =
        [cert_files("a", &a), cert_files("b", &b), cert_files("default", &default)].into_iter().flatten().collect();
    let gw = Gateway::start_with_files(&config, &files);
    let addr = gw.addr("site-a");
    assert_eq!(addr, gw.addr("site-b"), "the two sites share one address");
    let cfg = client_config(&[&ca], TLS13);

    for (host, leaf, name) in [("a.example.test", &a, "backend-a"), ("b.example.test", &b, "backend-b")] {
        let (c, r) = tls_get(addr, host, host, cfg.clone());
        assert!(c.peer_leaf() == leaf.der, "SNI {host} must get the certificate for {host}");
        assert_eq!((r.status, r.header("x-backend")), (200, Some(name)), "{host}: {r:?}");
    }

    // An SNI no site names: the basic listener's certificate and backend.
    let (c, r) = tls_get(addr, "c.example.test", "c.example.test", cfg.clone());
    assert!(c.peer_leaf() == default.der, "an unknown SNI must get the basic listener's certificate");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("backend-default")), "{r:?}");

    // No SNI at all: the default certificate too.
    let mut no_sni = (*cfg).clone();
    no_sni.enable_sni = false;
    let (c, r) = tls_get(addr, "default.example.test", "a.example.test", Arc::new(no_sni));
    assert!(c.peer_leaf() == default.der, "a client without SNI must get the basic listener's certificate");
    // Routing still follows the Host header.
    assert_eq!(r.header("x-backend"), Some("backend-a"), "{r:?}");
}

/// G1 terminates TLS for the test backend with a leaf of `ca`; G2 (plain)
/// sends its rules' traffic to G1 over TLS, trusting the root in `ca.pem`,
/// its own files next to its configuration.
struct TwoGateways {
    g1: Gateway,
    g2: Gateway,
}

fn two_gateways(backend: &Backend, server_ca: &Ca, trusted: &Ca, rules: &[(&str, &str)]) -> TwoGateways {
    let leaf = server_ca.leaf(&["localhost"]);
    let (g1, _) = https_gateway(backend, &leaf);
    let g1_addr = g1.addr("tls");
    let settings = "protocol = \"https\"\ntrusted_root_certificates = \"ca.pem\"\nhost_name = \"localhost\"\n";
    let mut config = GATEWAY.to_string();
    for (name, extra) in rules {
        config.push_str(&site(name, "listen = \"127.0.0.1:0\"\n", &[g1_addr], &format!("{settings}{extra}")));
    }
    config.push_str(
        "\n[[probe]]\nname = \"tls-probe\"\nprotocol = \"https\"\ninterval = \"100ms\"\ntimeout = \"1s\"\nunhealthy_threshold = 1\n",
    );
    let g2 = Gateway::start_with_files(&config, &[("ca.pem", trusted.pem.as_bytes())]);
    TwoGateways { g1, g2 }
}

#[test]
fn https_backend_with_trusted_root_is_proxied() {
    let ca = Ca::new("ringgate test CA");
    let backend = Backend::builder().name("behind-tls").start().expect("start test backend");
    let gws = two_gateways(&backend, &ca, &ca, &[("public", "")]);

    let r = get(gws.g2.addr("public"), "/through-tls");
    assert_eq!(r.status, 200, "{r:?}\nG2 log:\n{}\nG1 log:\n{}", gws.g2.stderr(), gws.g1.stderr());
    assert_eq!(r.header("x-backend"), Some("behind-tls"), "{r:?}");
    let seen = proxied(&backend);
    let req = seen.iter().find(|q| q.path() == "/through-tls").unwrap_or_else(|| panic!("not proxied: {seen:?}"));
    // G1 took it from G2 over TLS, with the settings' host_name as Host.
    assert_eq!(req.header("x-forwarded-proto"), Some("https"), "{req:?}");
    assert_eq!(req.header("host"), Some("localhost"), "{req:?}");

    // The default probe speaks the settings' protocol: https, trusted.
    let view = wait_state(&gws.g2, "rule-public", "Healthy");
    assert!(view["reason"].is_null(), "{view:#}");
}

#[test]
fn untrusted_backend_certificate_is_tls_handshake_failed() {
    let (server_ca, other_ca) = (Ca::new("the backend's CA"), Ca::new("some other CA"));
    let backend = Backend::builder().name("behind-tls").start().expect("start test backend");
    // `public` keeps the default probe (3 failures to go down), so its
    // request reaches the handshake; `probed` has a fast probe.
    let gws = two_gateways(&backend, &server_ca, &other_ca, &[("public", ""), ("probed", "probe = \"tls-probe\"\n")]);
    let g2 = &gws.g2;

    let r = get(g2.addr("public"), "/");
    assert_eq!(r.status, 502, "{r:?}\nlog:\n{}", g2.stderr());
    assert_eq!(r.header("x-ringgate-error"), Some("TLS_HANDSHAKE_FAILED"), "{r:?}");
    // The client is told the cause in public words (`error_detail`'s
    // default); the operator's view below says why.
    assert_eq!(r.text(), "502 Bad Gateway: the TLS handshake with the backend server failed\n");
    assert_eq!(proxied(&backend), [], "nothing may pass an untrusted handshake");

    let view = wait_state(g2, "rule-probed", "Unhealthy");
    assert_eq!(view["reason_kind"], "tls_handshake_failed", "{view:#}");
    let reason = view["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("certificate is not trusted"), "{view:#}");

    let out = Command::new(binary())
        .arg("doctor")
        .arg("--config")
        .arg(g2.config_path())
        .arg("--admin")
        .arg(g2.admin().to_string())
        .arg("--json")
        .output()
        .expect("run ringgate doctor");
    let stdout = text(&out.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}):\n{stdout}\n{}", text(&out.stderr)));
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    let mentions = |f: &Value| {
        ["evidence", "fix"].iter().any(|k| f[*k].as_str().is_some_and(|s| s.contains("certificate is not trusted")))
    };
    assert!(findings.iter().any(mentions), "no finding mentions the untrusted certificate: {report:#}");
    assert_eq!(out.status.code(), Some(1), "a rule answers 502: {report:#}");
}

#[test]
fn plain_http_to_an_https_port_gets_a_clear_400_not_a_hang() {
    let ca = Ca::new("ringgate test CA");
    let backend = Backend::builder().start().expect("start test backend");
    let (gw, _) = https_gateway(&backend, &ca.leaf(&["localhost"]));
    let mut c = Client::connect(gw.addr("tls")).expect("connect");
    c.set_timeout(Duration::from_secs(2));
    let start = Instant::now();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let r = c.read_response(false).expect("a plain-text answer within 2 s");
    assert!(start.elapsed() < Duration::from_secs(2), "answered after {:?}", start.elapsed());
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("x-ringgate-error"), Some("BAD_REQUEST"), "{r:?}");
    assert!(r.text().contains("HTTPS"), "the body must say the port speaks HTTPS: {}", r.text());
    assert!(c.is_closed_within(Duration::from_secs(2)), "the connection must be closed after the 400");
    assert_eq!(proxied(&backend), [], "a refused request must not reach the backend");
}

#[test]
fn tls_client_that_never_finishes_the_handshake_is_cut_off() {
    let ca = Ca::new("ringgate test CA");
    let leaf = ca.leaf(&["localhost"]);
    let backend = Backend::builder().name("tls-backend").start().expect("start test backend");
    let config = with_limits(
        &format!("{GATEWAY}{}", site("tls", &https("127.0.0.1:0", &[], "cert"), &[backend.addr()], "")),
        "header_read_timeout = \"500ms\"",
    );
    let gw = Gateway::start_with_files(&config, &cert_files("cert", &leaf));
    let addr = gw.addr("tls");

    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let start = Instant::now();
    // The first byte of a TLS handshake record, and nothing more.
    s.write_all(&[0x16]).expect("send one byte");
    let mut byte = [0u8; 1];
    let closed = match s.read(&mut byte) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    let after = start.elapsed();
    assert!(closed, "the stalled handshake must be closed, not answered (after {after:?})");
    assert!(
        (Duration::from_millis(400)..Duration::from_secs(3)).contains(&after),
        "closed after {after:?}, expected about header_read_timeout (500 ms)"
    );
    assert!(gw.metric("ringgate_tls_handshake_failures_total").is_some_and(|n| n >= 1), "the cut-off is not counted");

    let (_, r) = tls_get(addr, "localhost", "localhost", client_config(&[&ca], TLS13));
    assert_eq!((r.status, r.header("x-backend")), (200, Some("tls-backend")), "{r:?}");
}

#[test]
fn certificates_reload_without_dropping_connections() {
    let (ca1, ca2) = (Ca::new("first CA"), Ca::new("second CA"));
    let old = ca1.leaf(&["localhost"]);
    let new = ca2.leaf(&["localhost", "reloaded.example.test"]);
    let backend = Backend::builder().name("tls-backend").start().expect("start test backend");
    let (gw, config) = https_gateway(&backend, &old);
    let addr = gw.addr("tls");
    let cfg = client_config(&[&ca1, &ca2], TLS13);

    let (mut kept, r) = tls_get(addr, "localhost", "localhost", cfg.clone());
    assert_eq!(r.status, 200, "{r:?}");
    assert!(kept.peer_leaf() == old.der, "before the reload the old certificate is presented");

    std::fs::write(gw.dir().join("cert.pem"), &new.cert_pem).expect("rewrite the certificate");
    std::fs::write(gw.dir().join("cert.key"), &new.key_pem).expect("rewrite the key");
    let (status, body) = gw.reload_with(&config);
    assert_eq!(status, 200, "reload: {body}\nlog:\n{}", gw.stderr());

    let r = kept.get("localhost", "/").expect("the connection opened before the reload still serves");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("tls-backend")), "{r:?}");
    let (fresh, r) = tls_get(addr, "localhost", "localhost", cfg);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(fresh.peer_leaf() == new.der, "a new connection must get the reloaded certificate");
}

#[test]
fn invalid_tls_config_is_reported_by_check() {
    let dir = TempDir::new("tls-check");
    let ca = Ca::new("ringgate test CA");
    let (leaf, stranger) = (ca.leaf(&["localhost"]), ca.leaf(&["localhost"]));
    write(dir.path(), "cert.pem", &leaf.cert_pem);
    write(dir.path(), "cert.key", &stranger.key_pem);
    write(dir.path(), "ca.pem", &ca.pem);
    let backend: SocketAddr = "127.0.0.1:9".parse().expect("address");

    // The key of another certificate.
    let path = write(
        dir.path(),
        "mismatch.toml",
        &format!("{GATEWAY}{}", site("tls", &https("127.0.0.1:0", &[], "cert"), &[backend], "")),
    );
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{}\nstderr:\n{stderr}", text(&out.stdout));
    let line = stderr.lines().find(|l| l.contains("does not belong")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("[[listener]] \"tls\", field `certificate`"), "{line}");
    assert!(line.contains(&dir.path().join("cert.key").display().to_string()), "the key file is not named: {line}");
    assert!(line.contains(&dir.path().join("cert.pem").display().to_string()), "the certificate is not named: {line}");

    // An https listener without a certificate.
    let listener = "listen = \"127.0.0.1:0\"\nprotocol = \"https\"\nprivate_key = \"cert.key\"\n";
    let path = write(dir.path(), "missing.toml", &format!("{GATEWAY}{}", site("tls", listener, &[backend], "")));
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.contains("[[listener]] \"tls\", field `certificate`: missing")),
        "the missing field is not named:\n{stderr}"
    );

    // Trusted roots on plain-http settings.
    let settings = "protocol = \"http\"\ntrusted_root_certificates = \"ca.pem\"\n";
    let path = write(
        dir.path(),
        "roots.toml",
        &format!("{GATEWAY}{}", site("public", "listen = \"127.0.0.1:0\"\n", &[backend], settings)),
    );
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.contains("field `trusted_root_certificates`: only used with protocol = \"https\"")),
        "{stderr}"
    );
}

/// The access log names each https request's TLS protocol and cipher suite
/// (IANA names), and has them null for plain http.
#[test]
fn access_log_has_the_tls_protocol_and_cipher() {
    let ca = Ca::new("ringgate test CA");
    let leaf = ca.leaf(&["localhost"]);
    let backend = Backend::builder().name("b").start().expect("start test backend");
    let gateway = GATEWAY.replace("access_log = \"off\"", "access_log = \"stdout\"");
    let config = format!(
        "{gateway}{}{}",
        site("tls", &https("127.0.0.1:0", &[], "cert"), &[backend.addr()], ""),
        site("plain", "listen = \"127.0.0.1:0\"\n", &[backend.addr()], "")
    );
    let gw = Gateway::start_with_files(&config, &cert_files("cert", &leaf));
    let (_, r) = tls_get(gw.addr("tls"), "localhost", "localhost", client_config(&[&ca], TLS13));
    assert_eq!(r.status, 200, "{r:?}");
    let (_, r) = tls_get(gw.addr("tls"), "localhost", "localhost", client_config(&[&ca], TLS12));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(get(gw.addr("plain"), "/").status, 200);

    let mut lines = Vec::new();
    let ok = wait_until(Duration::from_secs(10), || {
        lines = gw.access_log();
        lines.len() >= 3
    });
    assert!(ok, "three access log lines expected: {lines:?}");
    let of = |listener: &str| -> Vec<(Option<&str>, Option<&str>)> {
        lines
            .iter()
            .filter(|l| l["listener"] == listener)
            .map(|l| (l["tls_protocol"].as_str(), l["tls_cipher"].as_str()))
            .collect()
    };
    let tls = of("tls");
    assert_eq!(tls.len(), 2, "{lines:?}");
    assert_eq!(tls[0].0, Some("TLSv1.3"), "{lines:?}");
    assert!(tls[0].1.is_some_and(|c| c.starts_with("TLS_AES_") || c.starts_with("TLS_CHACHA20")), "{lines:?}");
    assert_eq!(tls[1].0, Some("TLSv1.2"), "{lines:?}");
    assert!(tls[1].1.is_some_and(|c| c.starts_with("TLS_ECDHE_")), "{lines:?}");
    let plain = &lines.iter().find(|l| l["listener"] == "plain").expect("the plain request's line");
    assert!(plain["tls_protocol"].is_null() && plain["tls_cipher"].is_null(), "{plain}");
}

/// A PROXY protocol header before the TLS handshake: the handshake and the
/// request go through, and the header's address is the client.
#[test]
fn proxy_protocol_header_before_the_tls_handshake() {
    let ca = Ca::new("ringgate test CA");
    let leaf = ca.leaf(&["localhost"]);
    let backend = Backend::builder().name("b").start().expect("start test backend");
    let listener = format!("{}proxy_protocol = true\n", https("127.0.0.1:0", &[], "cert"));
    let config = format!("{GATEWAY}{}", site("tls", &listener, &[backend.addr()], ""));
    let gw = Gateway::start_with_files(&config, &cert_files("cert", &leaf));
    let header = b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 443\r\n";
    let mut c = TlsClient::connect_after(gw.addr("tls"), header, "localhost", client_config(&[&ca], TLS13))
        .expect("TLS handshake after the PROXY header");
    let r = c.get("localhost", "/").expect("request over TLS");
    assert_eq!(r.status, 200, "{r:?}");
    let seen = proxied(&backend);
    assert_eq!(seen[0].header("x-forwarded-for"), Some("192.0.2.7:51000"), "{seen:?}");
}

/// An https server given by IP with no `host_name`: the client's Host is
/// the name sent as SNI and verified (Application Gateway v2's choice), and
/// a probe verifies its own `host` first.
#[test]
fn backend_tls_names_follow_application_gateway_v2() {
    let ca = Ca::new("backend CA");
    let leaf = ca.leaf(&["app.example"]);
    let backend = ringgate_e2e::tls_backend::TlsBackend::start(&leaf);
    let probe = "[[probe]]\nname = \"p\"\nprotocol = \"https\"\nhost = \"app.example\"\npath = \"/\"\ninterval = 1\ntimeout = 1\nunhealthy_threshold = 1\n";
    // The well-known roots beside the test's own CA: the own CA still works.
    let settings = "protocol = \"https\"\ntrusted_root_certificates = \"backend-ca.pem\"\nuse_well_known_ca_certificate = true\nprobe = \"p\"\n";
    let config =
        format!("{GATEWAY}{}{probe}", site("plain", "listen = \"127.0.0.1:0\"\n", &[backend.addr()], settings));
    let gw = Gateway::start_with_files(&config, &[("backend-ca.pem", ca.pem.as_bytes())]);
    // The probe verifies "app.example", which the certificate holds.
    let h = wait_state(&gw, "rule-plain", "Healthy");
    assert_eq!(h["state"], "Healthy", "{h:#}");

    let addr = gw.addr("plain");
    let r = request(addr, "GET", "/", &[("Host", "app.example")], b"").expect("GET with Host app.example");
    assert_eq!(
        r.status,
        200,
        "the client's Host is the name verified: {:?} {}",
        r.header("x-ringgate-error"),
        r.text()
    );
    let r = request(addr, "GET", "/", &[("Host", "other.example:8080")], b"").expect("GET with Host other.example");
    assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("TLS_HANDSHAKE_FAILED")), "{}", r.text());
}

/// `use_well_known_ca_certificate = false` needs trusted roots of its own.
#[test]
fn use_well_known_ca_certificate_false_needs_trusted_roots() {
    let dir = TempDir::new("well-known");
    let settings = "protocol = \"https\"\nuse_well_known_ca_certificate = false\n";
    let config = format!(
        "{GATEWAY}{}",
        site("plain", "listen = \"127.0.0.1:0\"\n", &["127.0.0.1:9".parse().unwrap()], settings)
    );
    let path = write(dir.path(), "gw.toml", &config);
    let out = check(&path);
    let text = text(&out.stderr) + &text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("field `use_well_known_ca_certificate`: false needs trusted_root_certificates"), "{text}");
}
