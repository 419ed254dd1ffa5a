//! HTTP/2 on the client side, end to end, with real clients: curl (ALPN h2
//! and h2c prior knowledge, and the fall-backs), nghttp, httpx (uploads
//! with and without a length), and a scripted Python `h2` client
//! (`tests/h2/clients/h2client.py`) for what the others cannot do: many
//! streams on one connection, a stream per 502 cause, `:authority`/`host`
//! disagreements, limits, RST_STREAM, GOAWAY on SIGTERM. The routing cases
//! of the HTTP/1.1 suites run from one table over both protocols, with the
//! same status, headers and body asserted for each.
//!
//! Backends stay HTTP/1.1: what they record shows what the gateway sent.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ringgate_e2e::certs::Ca;
use ringgate_e2e::tools::require_tool;
use ringgate_e2e::*;
use serde_json::{Value, json};

const SOON: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Configuration helpers.

/// `config` with `lines` added to every listener, after its `listen` line.
fn on_listeners(config: &str, lines: &str) -> String {
    let mut out = String::with_capacity(config.len() + 64);
    for l in config.lines() {
        out.push_str(l);
        out.push('\n');
        if l.starts_with("listen = ") {
            out.push_str(lines);
            out.push('\n');
        }
    }
    out
}

/// `config` with HTTP/2 prior knowledge on every (plain) listener.
fn h2c(config: &str) -> String {
    on_listeners(config, "http2_cleartext = true")
}

/// N bytes of `abc..z` repeated, as the Python clients make them.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

// ---------------------------------------------------------------------------
// Certificates (rcgen): a CA per test and a leaf for localhost and 127.0.0.1.

struct Certs {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn certs() -> Certs {
    let ca = Ca::new("ringgate h2 test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
    Certs { ca_pem: ca.pem, cert_pem: leaf.cert_pem, key_pem: leaf.key_pem }
}

/// A gateway whose only listener is https (`cert.pem`/`cert.key`), with
/// `listener_extra` lines, in front of `backends`.
fn https_gateway(backends: &[SocketAddr], listener_extra: &str, c: &Certs) -> Gateway {
    let config = on_listeners(
        &simple_config(backends, ""),
        &format!("protocol = \"https\"\ncertificate = \"cert.pem\"\nprivate_key = \"cert.key\"\n{listener_extra}"),
    );
    Gateway::start_with_files(&config, &[("cert.pem", c.cert_pem.as_bytes()), ("cert.key", c.key_pem.as_bytes())])
}

// ---------------------------------------------------------------------------
// curl.

#[derive(Debug)]
struct Curl {
    exit: Option<i32>,
    /// `%{http_code}`.
    code: String,
    /// `%{http_version}`: `2`, `1.1`, or `0` when nothing came back.
    version: String,
    body: Vec<u8>,
    headers: String,
    stderr: String,
}

fn curl(args: &[&str]) -> Curl {
    let dir = TempDir::new("curl");
    let body = dir.path().join("body");
    let heads = dir.path().join("headers");
    let out = Command::new(require_tool("curl"))
        .args(["-sS", "--max-time", "20", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&heads)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args)
        .output()
        .expect("run curl");
    let w = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, version) = w.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).unwrap_or_default();
    Curl {
        exit: out.status.code(),
        code,
        version,
        body: std::fs::read(&body).unwrap_or_default(),
        headers: std::fs::read_to_string(&heads).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------
// The scripted Python h2 client.

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("h2/clients")
}

/// One run of `h2client.py`: one connection, the steps in order.
struct H2Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// What happened to one stream.
#[derive(Debug, Clone)]
struct H2Stream {
    id: u64,
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    reset: Option<u64>,
}

impl H2Stream {
    /// As a harness [`Response`] (the pseudo-headers left out), for the
    /// same assertions as HTTP/1.1; panics when no response came.
    fn response(&self) -> Response {
        let status = self.status.unwrap_or_else(|| panic!("stream {} got no response: {self:?}", self.id));
        Response {
            status,
            headers: self.headers.iter().filter(|(n, _)| !n.starts_with(':')).cloned().collect(),
            body: self.body.clone(),
            closed: false,
        }
    }
}

#[derive(Debug)]
struct H2Result {
    streams: HashMap<String, H2Stream>,
    /// (error code, last stream id).
    goaway: Option<(u64, u64)>,
    closed: bool,
    raw: Value,
}

impl H2Result {
    fn stream(&self, name: &str) -> &H2Stream {
        self.streams.get(name).unwrap_or_else(|| panic!("no stream {name:?}: {}", self.raw))
    }

    fn response(&self, name: &str) -> Response {
        self.stream(name).response()
    }
}

impl H2Session {
    fn start(addr: SocketAddr, steps: Vec<Value>) -> H2Session {
        let spec = json!({"host": addr.ip().to_string(), "port": addr.port(), "timeout": 40, "steps": steps});
        let mut child = Command::new(require_tool("python-h2"))
            .arg(clients_dir().join("h2client.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start h2client.py");
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{spec}").expect("write the spec");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr");
        let s = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut g = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                g.push_str(&line);
                g.push('\n');
            }
        });
        H2Session { child, stdin: Some(stdin), lines: rx, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn next_line(&self, what: &str) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(50))
            .unwrap_or_else(|e| panic!("h2client.py: no {what} ({e}); stderr:\n{}", self.stderr()));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("h2client.py printed {line:?}: {e}"))
    }

    /// Waits for the script's `{"mark": name}`.
    fn wait_mark(&self, name: &str) {
        let v = self.next_line(&format!("mark {name:?}"));
        assert_eq!(v["mark"], name, "h2client.py: expected mark {name:?}, got {v}");
    }

    /// Lets a `wait_stdin` step go on.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "go").expect("write to h2client.py");
        stdin.flush().expect("flush");
    }

    fn finish(mut self) -> H2Result {
        let v = self.next_line("result");
        drop(self.stdin.take());
        let _ = self.child.wait();
        let r = &v["result"];
        assert!(r.is_object(), "h2client.py: {v}");
        if let Some(e) = r["error"].as_str() {
            panic!("h2client.py failed: {e}\nresult: {r}\nstderr:\n{}", self.stderr());
        }
        let mut streams = HashMap::new();
        for (name, s) in r["streams"].as_object().expect("streams") {
            let headers = s["headers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| (p[0].as_str().unwrap_or("").to_string(), p[1].as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            // Latin-1 text carries the bytes one to one.
            let body: Vec<u8> = s["body"].as_str().unwrap_or("").chars().map(|c| c as u32 as u8).collect();
            streams.insert(
                name.clone(),
                H2Stream {
                    id: s["id"].as_u64().unwrap_or(0),
                    status: s["status"].as_u64().map(|n| n as u16),
                    headers,
                    body,
                    reset: s["reset"].as_u64(),
                },
            );
        }
        let goaway = r["goaway"]
            .as_object()
            .map(|g| (g["code"].as_u64().unwrap_or(99), g["last_stream_id"].as_u64().unwrap_or(0)));
        H2Result { streams, goaway, closed: r["closed"].as_bool().unwrap_or(false), raw: r.clone() }
    }
}

impl Drop for H2Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `steps` on one h2c connection to `addr` and returns what happened.
fn h2(addr: SocketAddr, steps: Vec<Value>) -> H2Result {
    H2Session::start(addr, steps).finish()
}

/// A request step: `method` `path` with `:authority` `authority` (none when
/// empty) and `extra` header fields after the pseudo-headers.
fn req(name: &str, method: &str, authority: &str, path: &str, extra: &[(&str, &str)]) -> Value {
    let mut headers = vec![json!([":method", method]), json!([":scheme", "http"]), json!([":path", path])];
    if !authority.is_empty() {
        headers.push(json!([":authority", authority]));
    }
    headers.extend(extra.iter().map(|(n, v)| json!([n, v])));
    json!({"op": "request", "name": name, "headers": headers})
}

fn get(name: &str, path: &str) -> Value {
    req(name, "GET", "test.local", path, &[])
}

/// `step` without waiting for its stream to end.
fn nowait(mut step: Value) -> Value {
    step["wait"] = json!(false);
    step
}

fn op(name: &str) -> Value {
    json!({"op": name})
}

fn mark(name: &str) -> Value {
    json!({"op": "mark", "name": name})
}

// ---------------------------------------------------------------------------
// 1. curl over TLS: ALPN h2, and HTTP/1.1 when the listener turns HTTP/2 off.

#[test]
fn curl_over_tls_negotiates_h2_and_falls_back_to_http11_when_http2_is_off() {
    let b = Backend::start_ok("app").unwrap();
    let c = certs();
    let dir = TempDir::new("ca");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &c.ca_pem).unwrap();
    let ca = ca.to_str().unwrap();
    for (extra, version) in [("", "2"), ("http2 = false", "1.1")] {
        let gw = https_gateway(&[b.addr()], extra, &c);
        let port = gw.addr("public").port();
        let url = format!("https://localhost:{port}/tls-alpn");
        let resolve = format!("localhost:{port}:127.0.0.1");
        let r = curl(&["--http2", "--cacert", ca, "--resolve", &resolve, &url]);
        assert_eq!(r.exit, Some(0), "{extra:?}: {r:?}\n{}", gw.stderr());
        assert_eq!((r.code.as_str(), r.version.as_str()), ("200", version), "{extra:?}: {r:?}");
        assert_eq!(r.body, b"app\n", "{extra:?}");
        assert!(r.headers.to_ascii_lowercase().contains("x-backend: app"), "{extra:?}: {}", r.headers);
        // By IP address too (the certificate names 127.0.0.1).
        let r = curl(&["--http2", "--cacert", ca, &format!("https://127.0.0.1:{port}/tls-ip")]);
        assert_eq!((r.code.as_str(), r.version.as_str()), ("200", version), "{extra:?}: {r:?}");
    }
    assert_eq!(b.requests_to("/tls-alpn"), 2);
    assert_eq!(b.requests_to("/tls-ip"), 2);
}

// ---------------------------------------------------------------------------
// 2. h2c prior knowledge with curl, on and (by default) off.

#[test]
fn curl_prior_knowledge_is_served_only_with_http2_cleartext() {
    let b = Backend::start_ok("app").unwrap();
    let gw = Gateway::start(&h2c(&simple_config(&[b.addr()], "")));
    let url = format!("http://{}/pk", gw.addr("public"));
    let r = curl(&["--http2-prior-knowledge", &url]);
    assert_eq!((r.exit, r.code.as_str(), r.version.as_str()), (Some(0), "200", "2"), "{r:?}\n{}", gw.stderr());
    assert_eq!(r.body, b"app\n");
    // HTTP/1.1 still works on that listener.
    let h1 = get_h1(gw.addr("public"), "/pk-h1");
    assert_eq!((h1.status, h1.body.as_slice()), (200, b"app\n".as_slice()));

    // Without http2_cleartext the preface is an HTTP/1.1 request line with
    // version HTTP/2.0: ringgate answers 400 (as Application Gateway v2) and
    // curl gets no HTTP/2 answer.
    let off = Gateway::start(&simple_config(&[b.addr()], ""));
    let url = format!("http://{}/pk-off", off.addr("public"));
    let r = curl(&["--http2-prior-knowledge", &url]);
    assert_ne!(r.exit, Some(0), "curl must fail: {r:?}");
    assert!(!r.stderr.is_empty(), "curl says why it failed: {r:?}");
    assert_ne!(r.version, "2", "{r:?}");
    let got = raw(off.addr("public"), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(text.to_ascii_lowercase().contains("x-ringgate-error: version_not_supported"), "{text}");
    assert_eq!(b.requests_to("/pk-off"), 0);
}

fn get_h1(addr: SocketAddr, path: &str) -> Response {
    ringgate_e2e::get(addr, path)
}

// ---------------------------------------------------------------------------
// 3. nghttp, over TLS (ALPN) and h2c (nghttp uses prior knowledge for
// http:// URIs unless given -u, which asks for an Upgrade).

#[test]
fn nghttp_gets_the_backend_answer_over_tls_and_h2c() {
    let b = Backend::builder().name("app").body("nghttp body 7f3a\n").start().unwrap();
    let c = certs();
    let tls = https_gateway(&[b.addr()], "", &c);
    let clear = Gateway::start(&h2c(&simple_config(&[b.addr()], "")));
    for url in [
        format!("https://127.0.0.1:{}/ng-tls", tls.addr("public").port()),
        format!("http://{}/ng-h2c", clear.addr("public")),
    ] {
        let out = Command::new(require_tool("nghttp"))
            // --no-dep: no PRIORITY frames on idle streams, so the request
            // is stream 1.
            .args(["-v", "--no-dep", "-t", "20", &url])
            .output()
            .expect("run nghttp");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{url}: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("recv (stream_id=1) :status: 200"), "{url}:\n{stdout}");
        assert!(stdout.contains("recv (stream_id=1) x-backend: app"), "{url}:\n{stdout}");
        assert!(stdout.contains("nghttp body 7f3a\n"), "{url}:\n{stdout}");
        if url.starts_with("https") {
            assert!(stdout.contains("The negotiated protocol: h2"), "{url}:\n{stdout}");
        } else {
            assert!(!stdout.contains("HTTP Upgrade"), "prior knowledge, no upgrade:\n{stdout}");
        }
    }
    assert_eq!(b.requests_to("/ng-tls"), 1);
    assert_eq!(b.requests_to("/ng-h2c"), 1);
}

// ---------------------------------------------------------------------------
// 4. httpx over TLS: a GET, a 1 MiB upload with a length, a streamed one
// without.

#[test]
fn httpx_uploads_reach_the_backend_byte_exact_with_and_without_a_length() {
    let b = Backend::start_ok("app").unwrap();
    let c = certs();
    let gw = https_gateway(&[b.addr()], "", &c);
    let dir = TempDir::new("ca");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &c.ca_pem).unwrap();
    let out = Command::new(require_tool("python-h2"))
        .arg(clients_dir().join("httpx_upload.py"))
        .arg(format!("https://127.0.0.1:{}", gw.addr("public").port()))
        .arg(&ca)
        .output()
        .expect("run httpx_upload.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        gw.stderr()
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["get"]["version"], "HTTP/2", "{v}");
    assert_eq!(v["get"]["status"], 200, "{v}");
    assert_eq!(v["get"]["text"], "app\n", "{v}");
    for kind in ["post", "streamed"] {
        let x = &v[kind];
        assert_eq!(x["version"], "HTTP/2", "{kind}: {v}");
        assert_eq!(x["status"], 200, "{kind}: {v}");
        assert_eq!(x["body_len"], x["sent_len"], "{kind}: the echo is whole: {v}");
        assert_eq!(x["body_sha"], x["sent_sha"], "{kind}: the echo is byte-exact: {v}");
        assert_eq!(x["x_request_body_bytes"].as_str(), Some(x["sent_len"].to_string().as_str()), "{kind}: {v}");
    }
    let rec = b.recorded();
    let find = |q: &str| rec.iter().find(|r| r.target == format!("/echo?kind={q}")).cloned().expect(q);
    let sized = find("sized");
    assert_eq!(sized.header("content-length"), Some("1048576"), "{:?}", sized.headers);
    assert_eq!(sized.header("transfer-encoding"), None, "{:?}", sized.headers);
    assert!(sized.body == pattern(1024 * 1024), "the 1 MiB body differs at the backend");
    let streamed = find("streamed");
    assert_eq!(streamed.header("content-length"), None, "{:?}", streamed.headers);
    assert!(
        streamed.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")),
        "a body without a length goes chunked: {:?}",
        streamed.headers
    );
    let sent: Vec<u8> = [1usize, 4095, 70000, 16384, 209520].iter().flat_map(|&n| pattern(n)).collect();
    assert!(streamed.body == sent, "the streamed body differs at the backend ({} bytes)", streamed.body.len());
    assert_eq!(
        gw.metric("ringgate_client_connections_total{protocol=\"HTTP/2\"}"),
        Some(1),
        "httpx used one connection"
    );
}

// ---------------------------------------------------------------------------
// 5. 100 concurrent streams on one connection across two backends.

#[test]
fn a_hundred_concurrent_streams_on_one_connection_spread_over_the_pool() {
    let b1 = Backend::start_ok("b1").unwrap();
    let b2 = Backend::start_ok("b2").unwrap();
    let gw = Gateway::start(&h2c(&simple_config(&[b1.addr(), b2.addr()], "")));
    let mut steps: Vec<Value> = (0..100).map(|i| nowait(get(&format!("s{i}"), &format!("/many?i={i}")))).collect();
    steps.extend((0..100).map(|i| json!({"op": "wait", "name": format!("s{i}")})));
    let r = h2(gw.addr("public"), steps);
    let mut per: HashMap<String, usize> = HashMap::new();
    for i in 0..100 {
        assert_eq!(r.stream(&format!("s{i}")).reset, None, "stream s{i} was reset: {}", r.raw);
        let resp = r.response(&format!("s{i}"));
        assert_eq!(resp.status, 200, "stream s{i}: {resp:?}\n{}", gw.stderr());
        let who = resp.header("x-backend").unwrap_or("-").to_string();
        assert_eq!(resp.text(), format!("{who}\n"));
        *per.entry(who).or_default() += 1;
    }
    assert_eq!(per.values().sum::<usize>(), 100);
    assert!(per.get("b1").is_some_and(|&n| n > 0) && per.get("b2").is_some_and(|&n| n > 0), "{per:?}");
    assert_eq!(b1.requests_to("/many") + b2.requests_to("/many"), 100);
    assert_eq!(per["b1"] as u64, b1.requests_to("/many"));
    assert!(r.goaway.is_none() && !r.closed, "{}", r.raw);
    assert_eq!(gw.metric("ringgate_client_connections_total{protocol=\"HTTP/2\"}"), Some(1));
    assert_eq!(gw.metric("ringgate_client_streams_total{protocol=\"HTTP/2\"}"), Some(100));
}

// ---------------------------------------------------------------------------
// 6. A 502 per stream, the connection kept.

#[test]
fn each_502_cause_is_answered_on_its_stream_and_the_connection_goes_on() {
    let ok = Backend::start_ok("ok").unwrap();
    let dead = closed_addr();
    let config = format!(
        r#"[gateway]
workers = 1
admin_listen = "127.0.0.1:0"
access_log = "stdout"
drain_timeout = 5
allow_subsecond_timers = true

[[listener]]
name = "public"
listen = "127.0.0.1:0"
http2_cleartext = true

[[backend_pool]]
name = "none"
addresses = []

[[backend_pool]]
name = "sick"
addresses = ["{dead}"]

[[backend_pool]]
name = "ok"
addresses = ["{ok}"]

[[backend_http_settings]]
name = "plain"

[[backend_http_settings]]
name = "probed"
probe = "p1"

[[probe]]
name = "p1"
path = "/health"
interval = "100ms"
timeout = "1s"
unhealthy_threshold = 1

[[url_path_map]]
name = "map"
default_backend_pool = "ok"
default_backend_http_settings = "plain"

[[url_path_map.path_rule]]
name = "empty"
paths = ["/empty/*"]
backend_pool = "none"
backend_http_settings = "plain"

[[url_path_map.path_rule]]
name = "sick"
paths = ["/sick/*"]
backend_pool = "sick"
backend_http_settings = "probed"

[[rule]]
name = "rule-public"
listener = "public"
url_path_map = "map"
"#,
        ok = ok.addr()
    );
    let gw = Gateway::start(&config);
    let addr = gw.addr("public");
    let unhealthy = wait_until(SOON, || get_h1(addr, "/sick/x").header("x-ringgate-error") == Some("ALL_UNHEALTHY"));
    assert!(unhealthy, "the dead server never turned unhealthy: {:?}\n{}", get_h1(addr, "/sick/x"), gw.stderr());
    let h1_empty = get_h1(addr, "/empty/x");
    let h1_sick = get_h1(addr, "/sick/x");

    let r = h2(addr, vec![get("empty", "/empty/x"), get("sick", "/sick/x"), get("ok", "/ok/x")]);
    let (e, s, o) = (r.response("empty"), r.response("sick"), r.response("ok"));
    assert_eq!((e.status, s.status, o.status), (502, 502, 200), "{}", r.raw);
    assert_eq!(e.header("x-ringgate-error"), Some("POOL_EMPTY"));
    assert_eq!(s.header("x-ringgate-error"), Some("ALL_UNHEALTHY"));
    assert_eq!(o.header("x-ringgate-error"), None);
    assert_eq!(o.body, b"ok\n");
    for (h2r, h1r) in [(&e, &h1_empty), (&s, &h1_sick)] {
        assert_eq!(h2r.header("x-ringgate-error"), h1r.header("x-ringgate-error"));
        assert_eq!(h2r.header("content-type"), h1r.header("content-type"));
        assert_eq!(h2r.text(), h1r.text(), "the HTTP/2 502 body is the HTTP/1.1 one");
        assert!(h2r.text().starts_with("502 Bad Gateway"), "{}", h2r.text());
    }
    assert_eq!([r.stream("empty").id, r.stream("sick").id, r.stream("ok").id], [1, 3, 5], "one connection");
    assert!(r.goaway.is_none() && !r.closed, "the connection stays open after the 502s: {}", r.raw);
}

// ---------------------------------------------------------------------------
// 7. The routing cases over HTTP/1.1 and HTTP/2.

/// One routing case: a request and what must come back (and, optionally,
/// what the backend must have seen).
struct Case {
    name: &'static str,
    host: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    /// Response header expectations (None: absent).
    expect: &'static [(&'static str, Option<&'static str>)],
    /// The exact body, when it is checked.
    body: Option<&'static str>,
    /// What the backend must have received.
    seen: Option<Seen>,
}

const CASES: &[Case] = &[
    Case {
        name: "path-rule",
        host: "shop.example",
        path: "/api/users?id=7",
        headers: &[],
        status: 200,
        expect: &[("x-backend", Some("api"))],
        body: Some("api\n"),
        seen: Some(("api", "/v2/users?id=7", None)),
    },
    Case {
        name: "default",
        host: "shop.example",
        path: "/index.html?x=1",
        headers: &[],
        status: 200,
        expect: &[("x-backend", Some("web"))],
        body: Some("web\n"),
        seen: Some(("web", "/index.html?x=1", None)),
    },
    Case {
        name: "redirect",
        host: "shop.example",
        path: "/old/page.html?utm=x",
        headers: &[],
        status: 308,
        expect: &[("location", Some("https://archive.example/old/page.html")), ("x-backend", None)],
        body: Some(""),
        seen: None,
    },
    Case {
        name: "request-rewrite",
        host: "shop.example",
        path: "/home",
        headers: &[("user-agent", "Mozilla (iPhone)"), ("x-debug", "1")],
        status: 200,
        expect: &[("x-backend", Some("web"))],
        body: Some("web\n"),
        seen: Some(("web", "/home", Some(("x-device", Some("mobile"))))),
    },
    Case {
        name: "request-rewrite-delete",
        host: "shop.example",
        path: "/home2",
        headers: &[("user-agent", "android"), ("x-debug", "1")],
        status: 200,
        expect: &[],
        body: None,
        seen: Some(("web", "/home2", Some(("x-debug", None)))),
    },
    Case {
        name: "response-rewrite",
        host: "shop.example",
        path: "/page",
        headers: &[],
        status: 200,
        expect: &[("strict-transport-security", Some("max-age=31536000")), ("x-backend", Some("web"))],
        body: Some("web\n"),
        seen: None,
    },
    Case {
        name: "error-page",
        host: "shop.example",
        path: "/broken/x",
        headers: &[],
        status: 502,
        expect: &[("x-ringgate-error", Some("POOL_EMPTY")), ("content-type", Some("text/html; charset=utf-8"))],
        body: Some("<h1>Our site is taking a break</h1>\n"),
        seen: None,
    },
    Case {
        name: "multi-site",
        host: "blog.example",
        path: "/who",
        headers: &[],
        status: 200,
        expect: &[("x-backend", Some("blog")), ("strict-transport-security", None)],
        body: Some("blog\n"),
        seen: Some(("blog", "/who", None)),
    },
    Case {
        name: "multi-site-port",
        host: "BLOG.example:8080",
        path: "/who2",
        headers: &[],
        status: 200,
        expect: &[("x-backend", Some("blog"))],
        body: Some("blog\n"),
        seen: None,
    },
    Case {
        name: "catch-all",
        host: "other.org",
        path: "/who",
        headers: &[],
        status: 200,
        expect: &[("x-backend", Some("fallback"))],
        body: Some("fallback\n"),
        seen: Some(("fallback", "/who", None)),
    },
];

/// (backend name, target it received, a header and its value there).
type Seen = (&'static str, &'static str, Option<(&'static str, Option<&'static str>)>);

/// The headers compared between the two protocols for every case.
const COMPARED: &[&str] =
    &["x-backend", "location", "strict-transport-security", "x-powered-by", "x-ringgate-error", "content-type"];

fn routing_gateway(backends: &HashMap<&str, Backend>, port: u16) -> Gateway {
    let a = |n: &str| backends[n].addr();
    let mut config = format!(
        r#"[gateway]
workers = 1
admin_listen = "127.0.0.1:0"
access_log = "stdout"
drain_timeout = 5
error_pages = {{ "502" = "502.html" }}

[[listener]]
name = "shop"
listen = "127.0.0.1:{port}"
host_names = ["shop.example"]

[[listener]]
name = "blog"
listen = "127.0.0.1:{port}"
host_names = ["blog.example"]

[[listener]]
name = "fallback"
listen = "127.0.0.1:{port}"

[[backend_pool]]
name = "web"
addresses = ["{web}"]

[[backend_pool]]
name = "api"
addresses = ["{api}"]

[[backend_pool]]
name = "blog"
addresses = ["{blog}"]

[[backend_pool]]
name = "fallback"
addresses = ["{fallback}"]

[[backend_pool]]
name = "none"
addresses = []

[[backend_http_settings]]
name = "plain"

[[backend_http_settings]]
name = "api-v2"
override_backend_path = "/v2/"

[[redirect]]
name = "moved"
type = "permanent_redirect"
target_url = "https://archive.example/"
include_path = true
include_query_string = false

[[rewrite_rule_set]]
name = "site"

[[rewrite_rule_set.rule]]
name = "hsts"
sequence = 10
response_headers = {{ "Strict-Transport-Security" = "max-age=31536000", "X-Powered-By" = "" }}

[[rewrite_rule_set.rule]]
name = "mobile"
sequence = 20
request_headers = {{ "X-Device" = "mobile", "X-Debug" = "" }}

[[rewrite_rule_set.rule.condition]]
variable = "http_req_user-agent"
pattern = "iphone|android"
ignore_case = true

[[url_path_map]]
name = "shop"
default_backend_pool = "web"
default_backend_http_settings = "plain"
default_rewrite_rule_set = "site"

[[url_path_map.path_rule]]
name = "api"
paths = ["/api/*"]
backend_pool = "api"
backend_http_settings = "api-v2"

[[url_path_map.path_rule]]
name = "old"
paths = ["/old/*"]
redirect = "moved"

[[url_path_map.path_rule]]
name = "broken"
paths = ["/broken/*"]
backend_pool = "none"
backend_http_settings = "plain"

[[rule]]
name = "shop"
listener = "shop"
url_path_map = "shop"

[[rule]]
name = "blog"
listener = "blog"
backend_pool = "blog"
backend_http_settings = "plain"

[[rule]]
name = "fallback"
listener = "fallback"
backend_pool = "fallback"
backend_http_settings = "plain"
"#,
        web = a("web"),
        api = a("api"),
        blog = a("blog"),
        fallback = a("fallback"),
    );
    config = h2c(&config);
    Gateway::start_with_files(&config, &[("502.html", "<h1>Our site is taking a break</h1>\n")])
}

#[test]
fn routing_cases_answer_the_same_over_http11_and_http2() {
    let backends: HashMap<&str, Backend> =
        ["web", "api", "blog", "fallback"].into_iter().map(|n| (n, Backend::start_ok(n).unwrap())).collect();
    let gw = routing_gateway(&backends, free_port());
    let addr = gw.addr("shop");
    let tag = |c: &Case, proto: &str| format!("{}-{proto}", c.name);

    // HTTP/1.1: a connection per case.
    let h1: Vec<Response> = CASES
        .iter()
        .map(|c| {
            let t = tag(c, "h1");
            let mut headers: Vec<(&str, &str)> = vec![("Host", c.host), ("x-case", &t)];
            headers.extend(c.headers.iter().copied());
            request(addr, "GET", c.path, &headers, b"").unwrap_or_else(|e| panic!("{}: {e}", c.name))
        })
        .collect();
    // HTTP/2: every case a stream of one connection.
    let tags: Vec<String> = CASES.iter().map(|c| tag(c, "h2")).collect();
    let steps: Vec<Value> = CASES
        .iter()
        .zip(&tags)
        .map(|(c, t)| {
            let mut extra: Vec<(&str, &str)> = vec![("x-case", t.as_str())];
            extra.extend(c.headers.iter().copied());
            req(c.name, "GET", c.host, c.path, &extra)
        })
        .collect();
    let r = h2(addr, steps);
    assert!(r.goaway.is_none() && !r.closed, "{}", r.raw);

    for (c, h1r) in CASES.iter().zip(&h1) {
        let h2r = r.response(c.name);
        for (proto, resp) in [("HTTP/1.1", h1r), ("HTTP/2", &h2r)] {
            let ctx = format!("{} over {proto}: {resp:?}", c.name);
            assert_eq!(resp.status, c.status, "{ctx}\n{}", gw.stderr());
            for (name, value) in c.expect {
                assert_eq!(resp.header(name), *value, "{name}: {ctx}");
            }
            if let Some(body) = c.body {
                assert_eq!(resp.text(), body, "{ctx}");
            }
            if let Some((backend, target, header)) = c.seen {
                let t = tag(c, if proto == "HTTP/2" { "h2" } else { "h1" });
                let got = backends[backend]
                    .recorded()
                    .into_iter()
                    .find(|q| q.header("x-case") == Some(t.as_str()))
                    .unwrap_or_else(|| panic!("{ctx}: {backend} never got the request"));
                assert_eq!(got.target, target, "{ctx}");
                if let Some((name, value)) = header {
                    assert_eq!(got.header(name), value, "{name} at the backend: {ctx}");
                }
            }
        }
        assert_eq!(h2r.status, h1r.status, "{}", c.name);
        assert_eq!(h2r.body, h1r.body, "{}: the same body over both", c.name);
        for name in COMPARED {
            assert_eq!(h2r.header(name), h1r.header(name), "{}: {name} differs between the protocols", c.name);
        }
    }
    // The redirect and the error page went to no backend.
    for b in backends.values() {
        assert!(b.recorded().iter().all(|q| !q.target.starts_with("/old/") && !q.target.starts_with("/broken/")));
    }
}

// ---------------------------------------------------------------------------
// 8. `:authority` and `host`.

#[test]
fn authority_and_host_must_agree_and_one_of_them_is_needed() {
    let b = Backend::start_ok("app").unwrap();
    let gw = Gateway::start(&h2c(&simple_config(&[b.addr()], "")));
    let r = h2(
        gw.addr("public"),
        vec![
            req("agree", "GET", "a.example", "/agree", &[("host", "a.example")]),
            req("disagree", "GET", "a.example", "/disagree", &[("host", "b.example")]),
            req("neither", "GET", "", "/neither", &[]),
            req("host-only", "GET", "", "/host-only", &[("host", "c.example")]),
            get("after", "/after"),
        ],
    );
    assert_eq!(r.response("agree").status, 200, "{}", r.raw);
    for name in ["disagree", "neither"] {
        let resp = r.response(name);
        assert_eq!(resp.status, 400, "{name}: {resp:?}\n{}", gw.stderr());
        assert_eq!(resp.header("x-ringgate-error"), Some("BAD_REQUEST"), "{name}: {resp:?}");
    }
    assert_eq!(r.response("host-only").status, 200, "a host field stands in for :authority: {}", r.raw);
    assert_eq!(r.response("after").status, 200, "the connection goes on: {}", r.raw);
    assert_eq!(b.requests_to("/disagree") + b.requests_to("/neither"), 0, "refused before the backend");
    let seen = b.recorded().into_iter().find(|q| q.path() == "/host-only").expect("forwarded");
    assert_eq!(seen.header("host"), Some("c.example"));
    let seen = b.recorded().into_iter().find(|q| q.path() == "/agree").expect("forwarded");
    assert_eq!(seen.header("host"), Some("a.example"), ":authority becomes the backend's Host");
}

// ---------------------------------------------------------------------------
// 9. Limits: header list, body with and without a length.

#[test]
fn limits_answer_431_and_413_per_stream_and_the_connection_goes_on() {
    let b = Backend::start_ok("app").unwrap();
    let config = with_limits(&h2c(&simple_config(&[b.addr()], "")), "max_request_head = 4096\nmax_request_body = 1024");
    let gw = Gateway::start(&config);
    let big = "a".repeat(6000);
    let mut sized = req("sized", "POST", "test.local", "/sized", &[("content-length", "2048")]);
    sized["body_len"] = json!(2048);
    let mut streamed = req("streamed", "POST", "test.local", "/streamed", &[]);
    streamed["body_len"] = json!(4096);
    streamed["chunk"] = json!(512);
    let mut small = req("small", "POST", "test.local", "/echo", &[]);
    small["body"] = json!("within the limit");
    let r = h2(
        gw.addr("public"),
        vec![
            req("big-head", "GET", "test.local", "/big-head", &[("x-big", &big)]),
            get("after-head", "/after-head"),
            sized,
            get("after-sized", "/after-sized"),
            streamed,
            small,
            get("after", "/after"),
        ],
    );
    let head = r.response("big-head");
    assert_eq!(head.status, 431, "{head:?}\n{}", r.raw);
    assert_eq!(head.header("x-ringgate-error"), Some("HEADERS_TOO_LARGE"));
    let sized = r.response("sized");
    assert_eq!(sized.status, 413, "{sized:?}");
    assert_eq!(sized.header("x-ringgate-error"), Some("BODY_TOO_LARGE"));
    // Without a length the limit is found while the body streams: still a
    // 413 on the stream (what ringgate does; a reset would be allowed too).
    let streamed = r.response("streamed");
    assert_eq!(streamed.status, 413, "{streamed:?}\n{}", r.raw);
    assert_eq!(streamed.header("x-ringgate-error"), Some("BODY_TOO_LARGE"));
    let small = r.response("small");
    assert_eq!((small.status, small.text().as_str()), (200, "within the limit"), "{small:?}");
    for name in ["after-head", "after-sized", "after"] {
        assert_eq!(r.response(name).status, 200, "{name}: {}", r.raw);
    }
    assert!(r.goaway.is_none() && !r.closed, "{}", r.raw);
    assert_eq!(b.requests_to("/big-head") + b.requests_to("/sized"), 0, "refused before the backend");
    // The streamed body may have reached the backend only cut short: never
    // whole, never over the limit.
    assert!(b.recorded().iter().filter(|q| q.path() == "/streamed").all(|q| q.body.len() <= 1024));
}

// ---------------------------------------------------------------------------
// 10. RST_STREAM from the client cancels the backend exchange.

/// A backend that never answers paths under `/stall` (it holds the
/// connection open until the peer closes it, and counts those held open)
/// and answers everything else (health probes included) `200 ok` and closes.
/// The test backend's stall mode would stall the health probes too, whose
/// connections would then stay open beside the one under test.
struct StallServer {
    addr: SocketAddr,
    stalled: std::sync::Arc<std::sync::atomic::AtomicU64>,
    open: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl StallServer {
    fn start() -> StallServer {
        use std::io::Read;
        use std::sync::atomic::Ordering::SeqCst;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the stall server");
        let addr = listener.local_addr().expect("its address");
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let open = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let (st, op) = (stalled.clone(), open.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let (st, op) = (st.clone(), op.clone());
                std::thread::spawn(move || {
                    // Bounded: no connection outlives 60 s.
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
                    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                    if path.starts_with("/stall") {
                        st.fetch_add(1, SeqCst);
                        op.fetch_add(1, SeqCst);
                        while matches!(conn.read(&mut chunk), Ok(n) if n > 0) {}
                        op.fetch_sub(1, SeqCst);
                    } else {
                        let _ =
                            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
                        let _ = conn.shutdown(std::net::Shutdown::Write);
                        while matches!(conn.read(&mut chunk), Ok(n) if n > 0) {}
                    }
                });
            }
        });
        StallServer { addr, stalled, open }
    }

    fn stalled(&self) -> u64 {
        self.stalled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stalled connections still open.
    fn open(&self) -> i64 {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn client_reset_cancels_the_backend_exchange_and_is_counted() {
    let b = StallServer::start();
    let gw = Gateway::start(&h2c(&simple_config(&[b.addr], "request_timeout = 60")));
    let mut s = H2Session::start(
        gw.addr("public"),
        vec![
            nowait(get("stalled", "/stalled")),
            mark("sent"),
            op("wait_stdin"),
            json!({"op": "reset", "name": "stalled", "code": 8}),
            op("ping"),
            mark("reset"),
            op("wait_stdin"),
            get("next", "/next"),
        ],
    );
    s.wait_mark("sent");
    assert!(
        wait_until(SOON, || b.stalled() == 1 && b.open() == 1),
        "the request never reached the backend: {}",
        gw.stderr()
    );
    assert_eq!(gw.metric("ringgate_client_resets_total{protocol=\"HTTP/2\"}").unwrap_or(0), 0);
    s.go();
    s.wait_mark("reset");
    let closed = wait_until(SOON, || b.open() == 0);
    assert!(closed, "the backend connection is still open after RST_STREAM\n{}", gw.stderr());
    let counted = wait_until(SOON, || gw.metric("ringgate_client_resets_total{protocol=\"HTTP/2\"}").unwrap_or(0) == 1);
    assert!(counted, "resets: {:?}", gw.metric("ringgate_client_resets_total{protocol=\"HTTP/2\"}"));
    assert!(wait_until(SOON, || gw.metric("ringgate_backend_connections") == Some(0)));
    s.go();
    let r = s.finish();
    let next = r.response("next");
    assert_eq!((next.status, next.text().as_str()), (200, "ok\n"), "{}", r.raw);
    assert_eq!(r.stream("next").id, 3, "the same connection");
    assert_eq!(b.stalled(), 1, "a cancelled request is not retried");
}

// ---------------------------------------------------------------------------
// 11. SIGTERM: GOAWAY, the stream in flight completes, the process exits.

#[test]
fn sigterm_sends_goaway_and_lets_the_stream_in_flight_finish() {
    let b = Backend::start_ok("app").unwrap();
    let gw = Gateway::start(&h2c(&simple_config(&[b.addr()], "")));
    let s = H2Session::start(
        gw.addr("public"),
        vec![
            nowait(get("slow", "/slow?ms=1500")),
            mark("sent"),
            op("wait_goaway"),
            json!({"op": "wait", "name": "slow"}),
            op("wait_close"),
        ],
    );
    s.wait_mark("sent");
    assert!(wait_until(SOON, || b.requests_to("/slow") == 1), "the slow request never arrived: {}", gw.stderr());
    gw.signal(libc::SIGTERM);
    let r = s.finish();
    let slow = r.response("slow");
    assert_eq!(slow.status, 200, "{}", r.raw);
    assert_eq!(slow.text(), "app\n", "the whole body: {}", r.raw);
    let (code, last) = r.goaway.unwrap_or_else(|| panic!("no GOAWAY: {}", r.raw));
    assert_eq!(code, 0, "GOAWAY NO_ERROR: {}", r.raw);
    assert!(last >= 1, "the GOAWAY covers stream 1: {}", r.raw);
    assert!(r.closed, "{}", r.raw);
    let status = gw.wait_exit(Duration::from_secs(20)).expect("ringgate did not exit after SIGTERM");
    assert!(status.success(), "{status}");
}

// ---------------------------------------------------------------------------
// 12. Access log and metrics per protocol.

#[test]
fn access_log_and_metrics_tell_the_protocols_apart() {
    let b = Backend::start_ok("app").unwrap();
    let gw = Gateway::start(&h2c(&simple_config(&[b.addr()], "")));
    let addr = gw.addr("public");
    let series = |name: &str, proto: &str| format!("{name}{{protocol=\"{proto}\"}}");
    let read = |name: &str, proto: &str| gw.metric(&series(name, proto)).unwrap_or(0);
    let before = [
        read("ringgate_client_connections_total", "HTTP/2"),
        read("ringgate_client_streams_total", "HTTP/2"),
        read("ringgate_client_connections_total", "HTTP/1.1"),
        read("ringgate_client_streams_total", "HTTP/1.1"),
    ];
    let r = h2(addr, vec![get("a", "/log-h2?n=1"), get("b", "/log-h2?n=2"), get("c", "/log-h2?n=3")]);
    for n in ["a", "b", "c"] {
        assert_eq!(r.response(n).status, 200);
    }
    let mut c = Client::connect(addr).unwrap();
    for _ in 0..2 {
        assert_eq!(c.request("GET", "/log-h1", &[], b"").unwrap().status, 200);
    }
    drop(c);
    let logged = wait_until(SOON, || {
        let l = gw.access_log();
        l.iter().filter(|l| l["path"].as_str().is_some_and(|p| p.starts_with("/log-h2"))).count() == 3
            && l.iter().filter(|l| l["path"] == "/log-h1").count() == 2
    });
    assert!(logged, "{:?}", gw.stdout_lines());
    let log = gw.access_log();
    let mut ids = Vec::new();
    for line in log.iter().filter(|l| l["path"].as_str().is_some_and(|p| p.starts_with("/log-h2"))) {
        assert_eq!(line["protocol"], "HTTP/2", "{line}");
        let id = line["stream"].as_u64().unwrap_or_else(|| panic!("no stream number: {line}"));
        ids.push(id);
        assert_eq!(line["status"], 200, "{line}");
    }
    ids.sort_unstable();
    assert_eq!(ids, [1, 3, 5], "the stream ids of the three requests");
    for line in log.iter().filter(|l| l["path"] == "/log-h1") {
        assert_eq!(line["protocol"], "HTTP/1.1", "{line}");
        assert!(line.get("stream").is_none_or(Value::is_null), "no stream for HTTP/1: {line}");
    }
    let moved = wait_until(SOON, || {
        [
            read("ringgate_client_connections_total", "HTTP/2") - before[0],
            read("ringgate_client_streams_total", "HTTP/2") - before[1],
            read("ringgate_client_connections_total", "HTTP/1.1") - before[2],
            read("ringgate_client_streams_total", "HTTP/1.1") - before[3],
        ] == [1, 3, 1, 2]
    });
    let after = [
        read("ringgate_client_connections_total", "HTTP/2"),
        read("ringgate_client_streams_total", "HTTP/2"),
        read("ringgate_client_connections_total", "HTTP/1.1"),
        read("ringgate_client_streams_total", "HTTP/1.1"),
    ];
    assert!(moved, "connections/streams HTTP/2, HTTP/1.1: before {before:?}, after {after:?}");
    assert_eq!(read("ringgate_client_resets_total", "HTTP/2"), 0, "nothing was abandoned");
}

// ---------------------------------------------------------------------------
// 13. Trailers, both ways: a request body without a length goes to the
// backend chunked with its trailers; a chunked response's trailers reach
// the client as a trailing HEADERS frame.

/// A backend that records one request's raw bytes (up to the end of its
/// chunked body) and answers with a chunked body and trailers.
fn trailer_backend() -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let t = std::thread::spawn(move || {
        // Health probes come too: answered, and not recorded.
        for _ in 0..20 {
            let (mut s, _) = l.accept().expect("accept");
            s.set_read_timeout(Some(SOON)).expect("timeout");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let head_done = |g: &[u8]| g.windows(4).any(|w| w == b"\r\n\r\n");
            // Up to the end of the chunked body: its last chunk, trailers, CRLF.
            let body_done = |g: &[u8]| g.windows(5).any(|w| w == b"\r\n0\r\n") && g.ends_with(b"\r\n\r\n");
            while !(head_done(&got) && (!got.starts_with(b"POST") || body_done(&got))) {
                match std::io::Read::read(&mut s, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            if !got.starts_with(b"POST /up ") {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            }
            let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: abc123\r\n\r\n";
            let _ = s.write_all(answer);
            std::thread::sleep(Duration::from_millis(200));
            return got;
        }
        Vec::new()
    });
    (addr, t)
}

#[test]
fn trailers_pass_both_ways() {
    let (backend, recorded) = trailer_backend();
    let gw = Gateway::start(&h2c(&simple_config(&[backend], "request_timeout = 10")));
    let py = require_tool("python-h2");
    let script = r#"
import json, signal, socket, sys
import h2.connection, h2.config, h2.events
signal.alarm(20)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
c.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "t.example"), (":path", "/up")])
c.send_data(1, b"abc")
c.send_headers(1, [("x-sum", "42")], end_stream=True)
s.sendall(c.data_to_send())
out = {"status": None, "body": "", "trailers": {}}
done = False
while not done:
    data = s.recv(65536)
    if not data:
        break
    for e in c.receive_data(data):
        if isinstance(e, h2.events.ResponseReceived):
            out["status"] = int(dict(e.headers)[b":status"])
        elif isinstance(e, h2.events.DataReceived):
            out["body"] += e.data.decode()
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.TrailersReceived):
            out["trailers"] = {k.decode(): v.decode() for k, v in e.headers}
        elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
            done = True
    s.sendall(c.data_to_send())
print(json.dumps(out))
"#;
    let port = gw.addr("public").port().to_string();
    let o = Command::new(&py).args(["-c", script, &port]).output().expect("run python");
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stderr), gw.stderr());
    let out: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], "hello", "{out}");
    assert_eq!(out["trailers"]["x-checksum"], "abc123", "the response trailer reaches the client: {out}");
    let got = String::from_utf8(recorded.join().expect("backend")).expect("utf8");
    let lower = got.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked\r\n"), "{got}");
    assert!(!lower.contains("content-length"), "{got}");
    assert!(
        got.ends_with("\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 42\r\n\r\n"),
        "body and trailer as the backend saw them: {got:?}"
    );
}

// ---------------------------------------------------------------------------
// 14. The affinity cookie is `Secure; SameSite=Lax` on https listeners (over
// either protocol), with its `CORS` twin (`SameSite=None; Secure`) as
// Application Gateway v2 sets it, and neither on plain ones.

#[test]
fn the_affinity_cookie_is_secure_on_https_listeners_only() {
    let b = Backend::start_ok("app").unwrap();
    let c = certs();
    let dir = TempDir::new("ca");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &c.ca_pem).unwrap();
    let ca = ca.to_str().unwrap();
    let config = on_listeners(
        &simple_config(&[b.addr()], "cookie_based_affinity = true"),
        "protocol = \"https\"\ncertificate = \"cert.pem\"\nprivate_key = \"cert.key\"\n",
    );
    let gw =
        Gateway::start_with_files(&config, &[("cert.pem", c.cert_pem.as_bytes()), ("cert.key", c.key_pem.as_bytes())]);
    let url = format!("https://127.0.0.1:{}/", gw.addr("public").port());
    for proto in ["--http2", "--http1.1"] {
        let r = curl(&[proto, "--cacert", ca, &url]);
        assert_eq!(r.code, "200", "{proto}: {r:?}");
        let cookies: Vec<&str> =
            r.headers.lines().filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).collect();
        assert_eq!(cookies.len(), 2, "{proto}: {}", r.headers);
        let (main, cors) = (cookies[0].trim_end(), cookies[1].trim_end());
        assert!(main.contains(" ApplicationGatewayAffinity="), "{proto}: {main}");
        assert!(main.ends_with("; HttpOnly; Secure; SameSite=Lax"), "{proto}: {main}");
        assert!(cors.contains(" ApplicationGatewayAffinityCORS="), "{proto}: {cors}");
        assert!(cors.ends_with("; HttpOnly; SameSite=None; Secure"), "{proto}: {cors}");
        let token = |c: &str| c.split_once('=').map(|(_, v)| v.split(';').next().unwrap_or_default().to_string());
        assert_eq!(token(main), token(cors), "{proto}: one server, one token");
    }
    let plain = Gateway::start(&simple_config(&[b.addr()], "cookie_based_affinity = true"));
    let r = ringgate_e2e::get(plain.addr("public"), "/");
    let cookie = r.header("set-cookie").expect("a cookie");
    assert!(cookie.ends_with("; HttpOnly") && !cookie.contains("Secure"), "{cookie}");
}
