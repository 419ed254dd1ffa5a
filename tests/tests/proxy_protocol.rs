//! PROXY protocol on listeners (`proxy_protocol = true`) and
//! `trusted_proxies`: the header's source address is the client (the
//! X-Forwarded-For element, the access log); a connection without a valid
//! header is refused and counted; `trusted_proxies` decides whose PROXY
//! headers are believed and whose X-Forwarded-For is kept.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringgate_e2e::*;

const V1: &[u8] = b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 80\r\n";

/// A v2 header: TCP over IPv4 from 198.51.100.9:40000, with one TLV.
fn v2_header() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12 + 5]);
    h.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1]);
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h.extend_from_slice(&[0x04, 0x00, 0x02, 0xaa, 0xbb]); // PP2_TYPE_NOOP
    h
}

/// One gateway, listener "public" with `proxy_protocol`, and the
/// `[gateway]` lines `gateway_extra`.
fn gateway(backend: &Backend, gateway_extra: &str, proxy_protocol: bool) -> Gateway {
    let mut config = with_gateway_lines(&simple_config(&[backend.addr()], ""), gateway_extra);
    if proxy_protocol {
        config = config.replacen("name = \"public\"\n", "name = \"public\"\nproxy_protocol = true\n", 1);
    }
    Gateway::start(&config)
}

/// Sends `preamble`, then a GET of `path` with `X-Forwarded-For: 1.1.1.1`;
/// returns the raw answer (empty when the gateway closed without one).
fn send(addr: SocketAddr, preamble: &[u8], path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("read time-out");
    let mut out = preamble.to_vec();
    out.extend_from_slice(
        format!("GET {path} HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-For: 1.1.1.1\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    // The gateway may close as soon as it has seen a bad header.
    let _ = s.write_all(&out);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The X-Forwarded-For the backend got with the request for `path`.
fn forwarded_for(backend: &Backend, path: &str) -> Option<String> {
    backend.recorded().iter().find(|r| r.path() == path).and_then(|r| r.header("x-forwarded-for").map(str::to_string))
}

fn errors(gw: &Gateway) -> u64 {
    gw.metric("ringgate_proxy_protocol_errors_total").unwrap_or(0)
}

#[test]
fn the_proxy_header_gives_the_client_address() {
    let b = Backend::start_ok("b").unwrap();
    let gw = gateway(&b, "", true);
    let addr = gw.addr("public");

    let r = send(addr, V1, "/v1");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // No trusted_proxies: every X-Forwarded-For is kept, as Application
    // Gateway keeps it, and the header's client is appended.
    assert_eq!(forwarded_for(&b, "/v1").as_deref(), Some("1.1.1.1, 192.0.2.7:51000"));

    let r = send(addr, &v2_header(), "/v2");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(forwarded_for(&b, "/v2").as_deref(), Some("1.1.1.1, 198.51.100.9:40000"));

    // LOCAL (a balancer's own health check): the connection's peer stands.
    let mut local = v2_header();
    local[12] = 0x20;
    let r = send(addr, &local, "/local");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let xff = forwarded_for(&b, "/local").unwrap();
    assert!(xff.starts_with("1.1.1.1, 127.0.0.1:"), "{xff}");

    let mut lines = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        lines = gw.access_log();
        lines.len() >= 3
    }));
    let client_of = |path: &str| lines.iter().find(|l| l["path"] == path).map(|l| l["client"].to_string());
    assert_eq!(client_of("/v1").as_deref(), Some("\"192.0.2.7:51000\""), "{lines:?}");
    assert_eq!(client_of("/v2").as_deref(), Some("\"198.51.100.9:40000\""), "{lines:?}");
    assert_eq!(errors(&gw), 0);
}

#[test]
fn a_connection_without_a_valid_header_is_refused_and_counted() {
    let b = Backend::start_ok("b").unwrap();
    let gw = gateway(&b, "", true);
    let addr = gw.addr("public");

    // A plain HTTP client that reached the port directly is told why.
    let r = send(addr, b"", "/direct");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("expects a PROXY protocol header"), "{r}");
    // A broken header: closed without an answer (it is not HTTP).
    let r = send(addr, b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n", "/broken");
    assert!(!r.contains("200 OK"), "{r}");
    let mut bad = v2_header();
    bad[12] = 0x31; // version 3
    let r = send(addr, &bad, "/v3");
    assert_eq!(r, "", "a v2 signature with a bad version gets no HTTP answer");
    assert!(wait_until(Duration::from_secs(5), || errors(&gw) == 3), "errors: {}", errors(&gw));
    assert_eq!(b.requests_to("/direct") + b.requests_to("/broken") + b.requests_to("/v3"), 0);
    // The listener still serves good connections.
    assert!(send(addr, V1, "/after").starts_with("HTTP/1.1 200"));
}

#[test]
fn trusted_proxies_decide_whose_header_and_forwarded_for_count() {
    let b = Backend::start_ok("b").unwrap();
    // The balancer (127.0.0.1) is trusted, the client 192.0.2.7 is not: its
    // X-Forwarded-For is replaced by its own address.
    let gw = gateway(&b, "trusted_proxies = [\"127.0.0.0/8\"]", true);
    let r = send(gw.addr("public"), V1, "/untrusted-client");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(forwarded_for(&b, "/untrusted-client").as_deref(), Some("192.0.2.7:51000"));
    drop(gw);

    // The client's network is trusted too (a CDN in front): kept.
    let gw = gateway(&b, "trusted_proxies = [\"127.0.0.1\", \"192.0.2.0/24\"]", true);
    let r = send(gw.addr("public"), V1, "/trusted-client");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(forwarded_for(&b, "/trusted-client").as_deref(), Some("1.1.1.1, 192.0.2.7:51000"));
    drop(gw);

    // A PROXY header from a peer outside trusted_proxies is not believed.
    let gw = gateway(&b, "trusted_proxies = [\"10.0.0.0/8\"]", true);
    let r = send(gw.addr("public"), V1, "/spoofed");
    assert!(!r.contains("200 OK"), "{r}");
    assert!(wait_until(Duration::from_secs(5), || errors(&gw) == 1));
    assert_eq!(b.requests_to("/spoofed"), 0);
    drop(gw);

    // Without the PROXY protocol, an untrusted client's X-Forwarded-For is
    // replaced too.
    let gw = gateway(&b, "trusted_proxies = [\"10.0.0.0/8\"]", false);
    let r = send(gw.addr("public"), b"", "/plain");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let xff = forwarded_for(&b, "/plain").unwrap();
    assert!(xff.starts_with("127.0.0.1:") && !xff.contains("1.1.1.1"), "{xff}");
}
