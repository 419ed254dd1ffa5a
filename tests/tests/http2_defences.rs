//! ringgate's defences against the known HTTP/2 attacks, end to end.
//!
//! Each test starts a gateway with one healthy backend behind an http
//! listener with `http2_cleartext = true`, runs one attack on one connection
//! with `tests/h2/attacks.py` (hand-built frames, h2c prior knowledge, bounded
//! by a hard alarm and socket time-outs), and asserts that:
//!
//! - the gateway cut the attacker off as RFC 9113 says (GOAWAY with the
//!   expected error code, or the stream reset), then closed the socket;
//! - `ringgate_http2_defence_total{kind="..."}` counted it;
//! - while the attack ran and afterwards, a well-behaved HTTP/2 client
//!   (`curl --http2-prior-knowledge`) and an HTTP/1.1 client got 200: in
//!   rounds as long as the attacker runs, and with one slow (1.5 s) request of
//!   each protocol in flight across the attack;
//! - the gateway's resident memory after (and at its sampled peak during)
//!   the attack stayed within 64 MiB of before, and its open file
//!   descriptors came back to the baseline.
//!
//! Each test prints what the gateway did (GOAWAY code, after how many frames,
//! when, RSS and fds); run with `--nocapture` to see the figures.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringgate_e2e::tools::require_tool;
use ringgate_e2e::*;
use serde_json::Value;

/// How far the gateway's RSS may grow over an attack.
const RSS_SLACK_KIB: u64 = 64 * 1024;

const ENHANCE_YOUR_CALM: u64 = 0xb;
const PROTOCOL_ERROR: u64 = 0x1;
const FLOW_CONTROL_ERROR: u64 = 0x3;
const FRAME_SIZE_ERROR: u64 = 0x6;
const COMPRESSION_ERROR: u64 = 0x9;

/// The gateway: workers = 1, admin API, no access log (floods would fill the
/// harness's log buffer), one http listener `h2c` serving prior-knowledge
/// HTTP/2, one backend. Pooled backend connections close after 1 s idle, so
/// that the fd count has a baseline to come back to.
fn config(backend: SocketAddr, settings_extra: &str, http2: &str, limits: &str) -> String {
    format!(
        r#"[gateway]
workers = 1
admin_listen = "127.0.0.1:0"
access_log = "off"
drain_timeout = 5

[gateway.limits]
{limits}

[gateway.http2]
{http2}

[[listener]]
name = "h2c"
listen = "127.0.0.1:0"
http2_cleartext = true

[[backend_pool]]
name = "pool"
addresses = ["{backend}"]

[[backend_http_settings]]
name = "settings"
idle_timeout = 1
{settings_extra}

[[rule]]
name = "rule"
listener = "h2c"
backend_pool = "pool"
backend_http_settings = "settings"
"#
    )
}

fn attacks_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("h2/attacks.py")
}

/// Kills the child on drop, so that a failing assertion leaves no attacker
/// running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one attack run produced.
#[derive(Debug)]
struct Run {
    /// The script's JSON report.
    r: Value,
    /// Well-behaved requests completed while the attack ran: rounds of one
    /// HTTP/2 and one HTTP/1.1 request, and the two slow requests in flight
    /// across it.
    good_during: usize,
    /// Failures of the well-behaved clients while the attack ran.
    failures: Vec<String>,
    /// The largest RSS sampled during the attack.
    peak_rss: u64,
}

impl Run {
    fn goaway_code(&self) -> Option<u64> {
        self.r["goaway"]["code"].as_u64()
    }

    fn closed(&self) -> bool {
        self.r["closed"].as_bool() == Some(true)
    }

    fn u(&self, key: &str) -> u64 {
        self.r[key].as_u64().unwrap_or(0)
    }

    /// One line for the closing note: what the gateway did.
    fn summary(&self) -> String {
        let r = &self.r;
        let goaway = match r["goaway"].as_object() {
            Some(g) => format!(
                "GOAWAY {} (last stream {}, debug {:?}) at {} s, after at most {} attack frames sent",
                g["code_name"].as_str().unwrap_or("?"),
                g["last_stream"],
                g["debug"].as_str().unwrap_or_default(),
                g["at"],
                g["after_frames_sent"]
            ),
            None => "no GOAWAY".to_string(),
        };
        format!(
            "{goaway}; closed: {} ({}) at {} s; RST_STREAM: {}; statuses: {}; frames received: {}; \
             sent {} frames / {} bytes; send error: {}",
            r["closed"],
            r["closed_by"],
            r["closed_at"],
            r["rst"],
            r["status_counts"],
            r["received"],
            r["sent"]["frames"],
            r["sent"]["bytes"],
            r["send_error"]
        )
    }
}

/// A gateway, its backend and the tools, with the resource baseline taken
/// after a warm-up.
struct Fixture {
    gw: Gateway,
    backend: Backend,
    addr: SocketAddr,
    py: PathBuf,
    curl: PathBuf,
    rss0: u64,
    fds0: usize,
}

impl Fixture {
    fn start(settings_extra: &str, http2: &str, limits: &str) -> Fixture {
        let backend = Backend::builder().name("b1").start().expect("start the backend");
        let py = require_tool("python-h2");
        let curl = require_tool("curl");
        let gw = Gateway::start(&config(backend.addr(), settings_extra, http2, limits));
        let addr = gw.addr("h2c");
        let fds_at_start = gw.fd_count();
        let mut fx = Fixture { gw, backend, addr, py, curl, rss0: 0, fds0: 0 };
        if let Err(e) = fx.good_h2().and_then(|()| fx.good_h1()) {
            panic!("before any attack: {e}\n{}", fx.gw.stderr());
        }
        // The warm-up's pooled backend connection closes after idle_timeout.
        wait_until(Duration::from_secs(10), || fx.gw.fd_count() <= fds_at_start);
        fx.fds0 = fx.gw.fd_count();
        fx.rss0 = fx.gw.rss_kib();
        fx
    }

    /// A well-behaved HTTP/2 client: curl with prior knowledge.
    fn good_h2(&self) -> Result<(), String> {
        good_h2(&self.curl, self.addr, "/good-h2")
    }

    /// A well-behaved HTTP/1.1 client.
    fn good_h1(&self) -> Result<(), String> {
        good_h1(self.addr, "/good-h1")
    }

    fn defence(&self, kind: &str) -> u64 {
        self.gw.metric(&format!("ringgate_http2_defence_total{{kind=\"{kind}\"}}")).unwrap_or(0)
    }

    /// Every defence counter, for the report.
    fn defences(&self) -> String {
        let (_, text) = self.gw.admin_get("/metrics");
        text.lines().filter(|l| l.starts_with("ringgate_http2_defence_total{")).collect::<Vec<_>>().join(", ")
    }

    /// Runs `attacks.py attack` with `args` against the listener; meanwhile
    /// keeps the well-behaved clients going and samples the RSS.
    fn attack(&self, attack: &str, args: &[&str]) -> Run {
        let alarm = 60;
        // Two slow (1.5 s) requests, one per protocol, in flight across the attack:
        // the gateway (one worker) serves them while it fends the attacker off.
        let (curl, addr) = (self.curl.clone(), self.addr);
        let slow_h2 = std::thread::spawn(move || good_h2(&curl, addr, "/slow?ms=1500"));
        let slow_h1 = std::thread::spawn(move || good_h1(addr, "/slow?ms=1500"));
        let mut child = KillOnDrop(
            Command::new(&self.py)
                .arg(attacks_script())
                .arg(attack)
                .arg(self.addr.ip().to_string())
                .arg(self.addr.port().to_string())
                .args(args)
                .arg(format!("alarm={alarm}"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start attacks.py"),
        );
        let mut out_pipe = child.0.stdout.take().expect("stdout");
        let mut err_pipe = child.0.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out_pipe.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err_pipe.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(alarm + 15);
        let (mut good_during, mut failures, mut peak_rss) = (0, Vec::new(), self.rss0);
        loop {
            match child.0.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {}
                _ => panic!("attacks.py {attack} did not finish within {} s", alarm + 15),
            }
            peak_rss = peak_rss.max(self.gw.rss_kib());
            match self.good_h2().and_then(|()| self.good_h1()) {
                Ok(()) => good_during += 1,
                Err(e) => failures.push(e),
            }
            peak_rss = peak_rss.max(self.gw.rss_kib());
            std::thread::sleep(Duration::from_millis(50));
        }
        for slow in [slow_h2, slow_h1] {
            match slow.join() {
                Ok(Ok(())) => good_during += 1,
                Ok(Err(e)) => failures.push(format!("in flight across the attack: {e}")),
                Err(_) => failures.push("a slow client thread panicked".to_string()),
            }
        }
        let status = child.0.wait().expect("attacks.py status");
        let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
        let line = out.lines().last().unwrap_or_default();
        let r: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("attacks.py {attack} ({status}) printed no report ({e}):\n{out}\n{err}"));
        assert!(status.success(), "attacks.py {attack} failed ({status}); report {r}\n{err}");
        Run { r, good_during, failures, peak_rss }
    }

    /// The checks every attack shares: counted as `kind`, the others served
    /// during and after, memory bounded, fds back to the baseline. Prints the
    /// figures.
    fn finish(&self, name: &str, kind: Option<&str>, before: u64, run: &Run) {
        let counted = match kind {
            Some(k) => wait_until(Duration::from_secs(5), || self.defence(k) > before),
            None => true,
        };
        let after_h2 = self.good_h2();
        let after_h1 = self.good_h1();
        let rss_after = self.gw.rss_kib();
        let fds_back = wait_until(Duration::from_secs(15), || self.gw.fd_count() <= self.fds0);
        let fds_after = self.gw.fd_count();
        println!("{name}: {}", run.summary());
        println!(
            "{name}: good rounds during the attack: {} ({} failed); RSS {} KiB before, {} KiB peak, {} KiB after; \
             fds {} before, {} after; defence counters: {}; backend requests: {}",
            run.good_during,
            run.failures.len(),
            self.rss0,
            run.peak_rss,
            rss_after,
            self.fds0,
            fds_after,
            self.defences(),
            self.backend.requests()
        );
        assert!(run.failures.is_empty(), "{name}: well-behaved clients failed during the attack: {:?}", run.failures);
        after_h2.unwrap_or_else(|e| panic!("{name}: after the attack, {e}"));
        after_h1.unwrap_or_else(|e| panic!("{name}: after the attack, {e}"));
        assert!(
            run.peak_rss <= self.rss0 + RSS_SLACK_KIB,
            "{name}: RSS peaked at {} KiB during the attack, from {} KiB before",
            run.peak_rss,
            self.rss0
        );
        assert!(
            rss_after <= self.rss0 + RSS_SLACK_KIB,
            "{name}: RSS {rss_after} KiB after the attack, from {} KiB before",
            self.rss0
        );
        assert!(fds_back, "{name}: {fds_after} fds open 15 s after the attack, {} before", self.fds0);
        // Last, so that a miscounted defence does not hide the checks above.
        if let Some(k) = kind {
            assert!(
                counted,
                "{name}: ringgate_http2_defence_total{{kind={k:?}}} did not grow past {before}; counters: {}",
                self.defences()
            );
        }
    }
}

/// `GET path` with curl over HTTP/2 (prior knowledge): Ok on a 200.
fn good_h2(curl: &Path, addr: SocketAddr, path: &str) -> Result<(), String> {
    let out = Command::new(curl)
        .args(["-sS", "--http2-prior-knowledge", "--max-time", "10", "-o", "/dev/null", "-w"])
        .arg("%{http_code} %{http_version}")
        .arg(format!("http://{addr}{path}"))
        .output()
        .map_err(|e| format!("run curl: {e}"))?;
    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if got == "200 2" {
        Ok(())
    } else {
        Err(format!("HTTP/2 client, {path}: got {got:?} ({})", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `GET path` over HTTP/1.1: Ok on a 200.
fn good_h1(addr: SocketAddr, path: &str) -> Result<(), String> {
    match request(addr, "GET", path, &[], b"") {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("HTTP/1.1 client, {path}: status {} ({})", r.status, r.text())),
        Err(e) => Err(format!("HTTP/1.1 client, {path}: {e}")),
    }
}

/// Asserts a connection error: GOAWAY with `code` received, then the socket
/// closed by the gateway.
fn assert_goaway(name: &str, run: &Run, codes: &[u64]) {
    let names: Vec<String> = codes.iter().map(|c| format!("{c:#x}")).collect();
    assert!(
        run.goaway_code().is_some_and(|c| codes.contains(&c)),
        "{name}: expected GOAWAY with {} ; observed: {}",
        names.join(" or "),
        run.summary()
    );
    assert!(run.closed(), "{name}: the gateway sent GOAWAY but did not close the socket; {}", run.summary());
}

// ---------------------------------------------------------------------------
// 1. Rapid reset (CVE-2023-44487).

#[test]
fn rapid_reset_is_cut_off_with_enhance_your_calm() {
    let fx = Fixture::start("", "", "");
    let before = fx.defence("rapid_reset");
    let run = fx.attack("rapid_reset", &["n=10000", "path=/rapid"]);
    let to_backend = fx.backend.requests_to("/rapid");
    println!(
        "rapid_reset: {} HEADERS+RST_STREAM pairs sent; the backend saw {to_backend} of them",
        run.u("pairs_sent")
    );
    assert_goaway("rapid_reset", &run, &[ENHANCE_YOUR_CALM]);
    assert!(to_backend < 1000, "rapid_reset: the backend saw {to_backend} requests; {}", run.summary());
    fx.finish("rapid_reset", Some("rapid_reset"), before, &run);
}

// ---------------------------------------------------------------------------
// 2. CONTINUATION flood (CVE-2024-27316 and friends).

fn continuation_flood(empty: bool) {
    let fx = Fixture::start("", "", "");
    let name = if empty { "continuation_flood (empty frames)" } else { "continuation_flood" };
    let before = fx.defence("continuation_flood");
    // Empty frames are 9 bytes: a million of them stay under 10 MB.
    let args: &[&str] =
        if empty { &["empty=1", "max_frames=1000000"] } else { &["max_frames=100000", "max_bytes=31457280"] };
    let run = fx.attack("continuation_flood", args);
    let (sent, planned) = (run.u("continuation_frames_sent"), run.u("planned_frames"));
    println!("{name}: {sent} of {planned} CONTINUATION frames sent before the cut-off");
    assert!(run.closed(), "{name}: the connection was never closed; {}", run.summary());
    if let Some(code) = run.goaway_code() {
        assert!(
            [ENHANCE_YOUR_CALM, PROTOCOL_ERROR, COMPRESSION_ERROR].contains(&code),
            "{name}: GOAWAY with an unexpected code; {}",
            run.summary()
        );
    }
    assert!(sent < planned, "{name}: all {planned} frames were sent, the flood was not cut off; {}", run.summary());
    assert_eq!(fx.backend.requests_to("/continuation"), 0, "{name}: the endless header block reached the backend");
    fx.finish(name, Some("continuation_flood"), before, &run);
}

#[test]
fn continuation_flood_is_cut_off() {
    continuation_flood(false);
}

#[test]
fn continuation_flood_of_empty_frames_is_cut_off() {
    continuation_flood(true);
}

// ---------------------------------------------------------------------------
// 3. HPACK bomb: a small block that decodes to far more than max_request_head.

#[test]
fn hpack_bomb_is_refused() {
    let fx = Fixture::start("", "", "max_request_head = \"64KiB\"");
    let before = fx.defence("header_list_too_large");
    let run = fx.attack("hpack_bomb", &["refs=16000", "path=/bomb"]);
    println!(
        "hpack_bomb: a {}-byte block decoding to {} bytes ({}-byte value x {}); table size {}; \
         stream 1: status {}, reset {}; a later request on the connection: {}",
        run.u("block_bytes"),
        run.u("decoded_bytes"),
        run.u("value_len"),
        run.u("refs"),
        run.u("table_size"),
        run.r["statuses"]["1"],
        run.r["rst_first"],
        run.r["after_request"]
    );
    let status = run.r["statuses"]["1"].as_u64();
    let reset = run.r["rst_first"].as_array().is_some_and(|a| a.iter().any(|x| x["stream"] == 1));
    let goaway = run.goaway_code();
    assert!(
        status == Some(431) || (status.is_none() && reset) || goaway.is_some(),
        "hpack_bomb: neither 431, nor a reset, nor GOAWAY; {}",
        run.summary()
    );
    match goaway {
        Some(_) => assert_goaway("hpack_bomb", &run, &[COMPRESSION_ERROR, ENHANCE_YOUR_CALM, PROTOCOL_ERROR]),
        None => {
            // A stream-level answer: the HPACK state survived, the connection
            // still serves (RFC 9113 section 4.3).
            assert_eq!(
                run.r["after_request"].as_u64(),
                Some(200),
                "hpack_bomb: the connection did not serve a request after the refused bomb; {}",
                run.summary()
            );
        }
    }
    assert_eq!(fx.backend.requests_to("/bomb"), 0, "hpack_bomb: the bomb reached the backend");
    fx.finish("hpack_bomb", Some("header_list_too_large"), before, &run);
}

#[test]
fn header_list_over_max_request_head_is_431_on_its_stream() {
    // Decoded, five references to a 4000-byte value make 20 KB: over
    // max_request_head (16 KiB) but not a bomb. The stream is answered 431,
    // as over HTTP/1.1, and the connection keeps serving.
    let fx = Fixture::start("", "", "max_request_head = \"16KiB\"");
    let before = fx.defence("header_list_too_large");
    let run = fx.attack("hpack_bomb", &["refs=5", "path=/big-head"]);
    println!(
        "header list over the limit: {} bytes decoded; stream 1: status {}, reset {}; then: {}",
        run.u("decoded_bytes"),
        run.r["statuses"]["1"],
        run.r["rst_first"],
        run.r["after_request"]
    );
    assert_eq!(run.r["statuses"]["1"].as_u64(), Some(431), "header list over the limit; {}", run.summary());
    assert_eq!(
        run.r["after_request"].as_u64(),
        Some(200),
        "header list over the limit: the next request on the connection; {}",
        run.summary()
    );
    assert!(run.goaway_code().is_none(), "header list over the limit: a stream error, not GOAWAY; {}", run.summary());
    assert_eq!(fx.backend.requests_to("/big-head"), 0, "the oversized head reached the backend");
    fx.finish("header list over the limit", Some("header_list_too_large"), before, &run);
}

// ---------------------------------------------------------------------------
// 4. SETTINGS flood.

#[test]
fn settings_flood_is_cut_off_with_enhance_your_calm() {
    let fx = Fixture::start("", "", "");
    let before = fx.defence("settings_flood");
    let run = fx.attack("settings_flood", &["n=10000"]);
    println!(
        "settings_flood: {} SETTINGS sent before the cut-off, {} ACKs received",
        run.u("settings_sent"),
        run.u("settings_acks")
    );
    assert_goaway("settings_flood", &run, &[ENHANCE_YOUR_CALM]);
    fx.finish("settings_flood", Some("settings_flood"), before, &run);
}

// ---------------------------------------------------------------------------
// 5. PING flood, the attacker never reading the ACKs.

#[test]
fn ping_flood_is_cut_off_with_enhance_your_calm() {
    let fx = Fixture::start("", "", "");
    let before = fx.defence("ping_flood");
    let run = fx.attack("ping_flood", &["n=100000", "rcvbuf=8192"]);
    println!(
        "ping_flood: {} PINGs sent (send blocked: {}), {} ACKs read afterwards",
        run.u("pings_sent"),
        run.r["send_blocked"],
        run.u("ping_acks")
    );
    assert_goaway("ping_flood", &run, &[ENHANCE_YOUR_CALM]);
    fx.finish("ping_flood", Some("ping_flood"), before, &run);
}

// ---------------------------------------------------------------------------
// 6. Stalled streams: a zero window, and a connection that never asks.

#[test]
fn zero_window_stream_is_reset_after_the_request_timeout() {
    // A response write waits for a client as long as it would for an
    // HTTP/1.1 one: the settings' request time-out, at least 30 s.
    let fx = Fixture::start("request_timeout = 2", "", "");
    let before = fx.defence("stalled_stream");
    let run = fx.attack("stalled_stream", &["path=/bytes?n=1048576", "wait=40"]);
    println!(
        "stalled_stream: stream 1 status {}, reset at {} s ({}), DATA bytes {}",
        run.r["statuses"]["1"], run.r["stream_reset_at"], run.r["rst"], run.r["data_bytes"]
    );
    let reset = run.r["stream_reset_at"].is_number();
    assert!(
        reset || run.closed(),
        "stalled_stream: 40 s on, the stalled stream was neither reset nor the connection closed; {}",
        run.summary()
    );
    assert_eq!(
        run.r["data_bytes"]["1"].as_u64().unwrap_or(0),
        0,
        "stalled_stream: DATA was sent beyond a zero window; {}",
        run.summary()
    );
    fx.finish("stalled_stream", Some("stalled_stream"), before, &run);
}

#[test]
fn preface_without_a_request_is_closed_after_header_read_timeout() {
    let fx = Fixture::start("", "", "header_read_timeout = 1");
    let run = fx.attack("slowloris", &["wait=15"]);
    assert!(
        run.closed(),
        "slowloris: a connection with only the preface and SETTINGS was still open after 15 s; {}",
        run.summary()
    );
    if let Some(code) = run.goaway_code() {
        assert!(
            [0x0, ENHANCE_YOUR_CALM, PROTOCOL_ERROR].contains(&code),
            "slowloris: GOAWAY with an unexpected code; {}",
            run.summary()
        );
    }
    fx.finish("slowloris", None, 0, &run);
}

#[test]
fn preface_answering_pings_without_a_request_is_closed_after_header_read_timeout() {
    // As above, but the client answers the server's PINGs, as h2's graceful
    // shutdown waits for.
    let fx = Fixture::start("", "", "header_read_timeout = 1");
    let run = fx.attack("slowloris", &["wait=15", "ack_pings=1"]);
    assert!(run.closed(), "slowloris (answering PINGs): still open after 15 s; {}", run.summary());
    fx.finish("slowloris (answering PINGs)", None, 0, &run);
}

// ---------------------------------------------------------------------------
// 7. More streams than max_concurrent_streams.

#[test]
fn streams_over_the_limit_are_refused_then_cut_off() {
    let fx = Fixture::start("", "max_concurrent_streams = 10", "");
    let before = fx.defence("too_many_streams");
    let run = fx.attack("too_many_streams", &["extra=1000", "path=/slow?ms=8000"]);
    let advertised = run.r["server_settings"]["MAX_CONCURRENT_STREAMS"].as_u64();
    println!(
        "too_many_streams: advertised {advertised:?}; the 11th stream got {}; {} more opened before the cut-off; \
         the first 10: {}",
        run.r["first_extra_answer"], run.r["extra_streams_opened"], run.r["in_limit_statuses"]
    );
    assert_eq!(advertised, Some(10), "too_many_streams: SETTINGS_MAX_CONCURRENT_STREAMS; {}", run.summary());
    assert_eq!(
        run.r["first_extra_answer"].as_str(),
        Some("REFUSED_STREAM"),
        "too_many_streams: the stream over the limit; {}",
        run.summary()
    );
    assert_goaway("too_many_streams", &run, &[ENHANCE_YOUR_CALM]);
    // The 10 streams within the limit, and the 2 slow well-behaved requests
    // of `Fixture::attack`: none of the refused streams.
    let slow = fx.backend.requests_to("/slow");
    assert!(slow <= 12, "too_many_streams: {slow} requests reached /slow, 10 streams in the limit + 2 others");
    fx.finish("too_many_streams", Some("too_many_streams"), before, &run);
}

// ---------------------------------------------------------------------------
// 8. Malformed frames: connection errors with the RFC's code.

fn malformed(attack: &str, codes: &[u64]) {
    let fx = Fixture::start("", "", "");
    let before = fx.defence("protocol_error");
    let run = fx.attack(attack, &[]);
    assert_goaway(attack, &run, codes);
    fx.finish(attack, Some("protocol_error"), before, &run);
}

#[test]
fn data_on_stream_0_is_a_protocol_error() {
    // RFC 9113 section 6.1.
    malformed("data_on_stream_0", &[PROTOCOL_ERROR]);
}

#[test]
fn headers_larger_than_max_frame_size_is_a_frame_size_error() {
    // RFC 9113 section 4.2: a frame carrying a field block is a connection error.
    malformed("oversized_frame", &[FRAME_SIZE_ERROR]);
}

#[test]
fn headers_on_an_even_stream_is_a_protocol_error() {
    // RFC 9113 section 5.1.1.
    malformed("headers_on_even_stream", &[PROTOCOL_ERROR]);
}

#[test]
fn window_update_overflowing_the_window_is_a_flow_control_error() {
    // RFC 9113 section 6.9.1: over 2^31-1 on the connection.
    malformed("window_overflow", &[FLOW_CONTROL_ERROR]);
}

#[test]
fn preface_not_followed_by_settings_is_a_protocol_error() {
    // RFC 9113 section 3.4: the preface is the magic string *and* a SETTINGS
    // frame; anything else there is an invalid preface, a connection error
    // of type PROTOCOL_ERROR.
    malformed("preface_without_settings", &[PROTOCOL_ERROR]);
}

#[test]
fn garbled_preface_is_closed() {
    // `PRI * HTTP/2.0` then not the rest of the magic: not HTTP/2, so either
    // GOAWAY PROTOCOL_ERROR or an HTTP/1.1 error answer, then the close. Not
    // asserted as counted: bytes that are not an HTTP/2 preface may well be
    // handled as a (bad) HTTP/1 request.
    let fx = Fixture::start("", "", "");
    let run = fx.attack("bad_preface", &[]);
    let raw = run.r["raw_received"].as_str().unwrap_or_default().to_string();
    println!("bad_preface: received {raw:?}");
    assert!(run.closed(), "bad_preface: the connection stayed open; {}", run.summary());
    let http1_error = raw.starts_with("HTTP/1.1 4") || raw.starts_with("HTTP/1.1 5");
    assert!(
        run.goaway_code() == Some(PROTOCOL_ERROR) || http1_error || raw.is_empty(),
        "bad_preface: neither GOAWAY PROTOCOL_ERROR nor an HTTP/1.1 error answer nor a bare close; {}",
        run.summary()
    );
    fx.finish("bad_preface", None, 0, &run);
}
