//! A soak run: one gateway under a mix of good and hostile clients for a
//! while, its resident memory and descriptor count sampled every second.
//! Leaks that a single fault test cannot see (a few bytes or one descriptor
//! per thousand requests) show up here as a slope.
//!
//! The default run is short, to keep the suite fast. The full run:
//!
//! ```text
//! RINGGATE_SOAK_SECS=120 cargo test --release -p ringgate-e2e --test soak -- --nocapture
//! ```
//!
//! `--nocapture` shows the samples.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::io::{ErrorKind, Read, Write};

use ringgate_e2e::*;

/// Seconds of load unless `RINGGATE_SOAK_SECS` says otherwise.
const DEFAULT_SECS: u64 = 8;
/// Iterations per client thread at most, whatever the duration.
const MAX_ITERATIONS: u64 = 10_000_000;
/// Memory may grow this much after the warm-up: 20 % plus 2 MiB.
const RSS_GROWTH_FACTOR: f64 = 1.2;
const RSS_GROWTH_SLACK_KIB: u64 = 2048;
/// The probe path the failing server is checked on.
const PROBE_PATH: &str = "/health";
/// Workers of the gateway under soak.
const WORKERS: usize = 2;
/// The most spare splice pipes a worker keeps (`POOLED_PIPES` in
/// ringgate-proxy's splice module).
const SPARE_PIPES_PER_WORKER: usize = 16;

fn soak_secs() -> u64 {
    match std::env::var("RINGGATE_SOAK_SECS") {
        Ok(v) => {
            v.trim().parse().unwrap_or_else(|_| panic!("RINGGATE_SOAK_SECS must be a number of seconds, not {v:?}"))
        }
        Err(_) => DEFAULT_SECS,
    }
    .max(3)
}

/// A small xorshift generator: sizes and payloads vary without a dependency.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// 1 to `max` printable bytes.
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = 1 + self.below(max);
        (0..n).map(|_| b'0' + (self.next() % 75) as u8).collect()
    }
}

/// What one client thread saw.
#[derive(Debug, Default)]
struct Tally {
    role: &'static str,
    ok: u64,
    unexpected: u64,
    first_unexpected: Vec<String>,
    /// Expected outcomes by kind, where a role has several.
    kinds: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn new(role: &'static str) -> Tally {
        Tally { role, ..Tally::default() }
    }

    fn check(&mut self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.unexpected += 1;
                if self.first_unexpected.len() < 5 {
                    self.first_unexpected.push(e);
                }
            }
        }
    }
}

/// Runs `step` until `stop`, or [`MAX_ITERATIONS`] times, or `limit` passes.
fn run_until(stop: &AtomicBool, limit: Duration, mut step: impl FnMut(u64)) {
    let deadline = Instant::now() + limit;
    for i in 0..MAX_ITERATIONS {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            return;
        }
        step(i);
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (b'a'..=b'z').cycle().take(n).collect()
}

fn chunk_encode(data: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (1 + rng.below(4096) as usize).min(rest.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A kept connection, opened again after the server closed it.
struct KeptConn {
    addr: SocketAddr,
    conn: Option<Client>,
}

impl KeptConn {
    fn new(addr: SocketAddr) -> KeptConn {
        KeptConn { addr, conn: None }
    }

    /// One request; the connection is dropped after an error or a close.
    fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, String> {
        if self.conn.is_none() {
            let c = Client::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
            c.set_timeout(Duration::from_secs(10));
            self.conn = Some(c);
        }
        let c = self.conn.as_mut().ok_or("no connection")?;
        match c.request(method, path, headers, body) {
            Ok(r) => {
                if r.closed {
                    self.conn = None;
                }
                Ok(r)
            }
            Err(e) => {
                self.conn = None;
                Err(format!("{method} {path}: {e}"))
            }
        }
    }
}

fn expect_200(r: &Response, what: &str, body: &[u8]) -> Result<(), String> {
    if r.status != 200 || r.body != body {
        return Err(format!(
            "{what}: status {}, {} body bytes, {:?}",
            r.status,
            r.body.len(),
            r.header("x-ringgate-error")
        ));
    }
    if r.closed {
        return Err(format!("{what}: the keep-alive connection was closed"));
    }
    Ok(())
}

/// Keep-alive GETs of fixed and chunked bodies, POSTs with Content-Length
/// and chunked bodies, every answer checked byte for byte.
fn good_client(addr: SocketAddr, seed: u64, stop: &AtomicBool, limit: Duration) -> Tally {
    let mut t = Tally::new("good keep-alive");
    let mut rng = Rng(seed);
    let mut c = KeptConn::new(addr);
    run_until(stop, limit, |i| {
        let outcome = match i % 4 {
            0 => {
                let n = rng.below(64 * 1024) as usize;
                let path = format!("/bytes?n={n}");
                c.request("GET", &path, &[], b"").and_then(|r| expect_200(&r, &path, &pattern(n)))
            }
            1 => {
                let body = rng.bytes(32 * 1024);
                c.request("POST", "/echo", &[], &body).and_then(|r| expect_200(&r, "POST /echo", &body))
            }
            2 => {
                let body = rng.bytes(32 * 1024);
                let framed = chunk_encode(&body, &mut rng);
                c.request("POST", "/echo", &[("Transfer-Encoding", "chunked")], &framed)
                    .and_then(|r| expect_200(&r, "chunked POST /echo", &body))
            }
            _ => {
                let want: Vec<u8> = (0..20).flat_map(|k| format!("chunk-{k}\n").into_bytes()).collect();
                c.request("GET", "/chunked?n=20", &[], b"").and_then(|r| expect_200(&r, "GET /chunked", &want))
            }
        };
        t.check(outcome);
    });
    t
}

/// Keep-alive GETs to the slow server.
fn slow_client(addr: SocketAddr, stop: &AtomicBool, limit: Duration) -> Tally {
    let mut t = Tally::new("good slow");
    let mut c = KeptConn::new(addr);
    run_until(stop, limit, |i| {
        let path = format!("/slow-{i}");
        t.check(c.request("GET", &path, &[], b"").and_then(|r| expect_200(&r, &path, b"slow\n")));
    });
    t
}

/// GETs to the failing server: a 502 with one of the codes its faults give,
/// or a 200 while it behaves; never a hang or a broken answer.
fn failing_client(addr: SocketAddr, stop: &AtomicBool, limit: Duration) -> Tally {
    let mut t = Tally::new("failing server");
    let mut c = KeptConn::new(addr);
    run_until(stop, limit, |_| {
        let outcome = c.request("GET", "/f", &[], b"").and_then(|r| {
            let code = r.header("x-ringgate-error");
            match (r.status, code) {
                (200, None) if r.body == b"failing\n" => Ok("200"),
                (502, Some(c @ ("BACKEND_CLOSED" | "INVALID_RESPONSE" | "ALL_UNHEALTHY" | "CONNECT_FAILED"))) => {
                    Ok(match c {
                        "BACKEND_CLOSED" => "502 BACKEND_CLOSED",
                        "INVALID_RESPONSE" => "502 INVALID_RESPONSE",
                        "ALL_UNHEALTHY" => "502 ALL_UNHEALTHY",
                        _ => "502 CONNECT_FAILED",
                    })
                }
                _ => Err(format!("GET /f: {} {code:?} {:?}", r.status, r.text())),
            }
        });
        if let Ok(kind) = outcome {
            *t.kinds.entry(kind).or_default() += 1;
        }
        t.check(outcome.map(|_| ()));
    });
    t
}

/// Keep-alive GETs to the empty pool: 502 POOL_EMPTY, connection kept.
fn empty_pool_client(addr: SocketAddr, stop: &AtomicBool, limit: Duration) -> Tally {
    let mut t = Tally::new("empty pool");
    let mut c = KeptConn::new(addr);
    run_until(stop, limit, |_| {
        let outcome =
            c.request("GET", "/e", &[], b"").and_then(|r| match (r.status, r.header("x-ringgate-error"), r.closed) {
                (502, Some("POOL_EMPTY"), false) => Ok(()),
                _ => Err(format!("GET /e: {r:?}")),
            });
        t.check(outcome);
    });
    t
}

/// Malformed and oversized request heads on fresh connections: each must
/// get its 4xx and a close.
fn malformed_client(addr: SocketAddr, stop: &AtomicBool, limit: Duration) -> Tally {
    let mut t = Tally::new("malformed / oversized");
    let big = format!("GET /big HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    let cases: [(&[u8], &str); 4] = [
        (b"GET /a b c HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET / HTTP/1.1\nHost: t\n\n", "HTTP/1.1 400 "),
        (b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "HTTP/1.1 400 "),
        (big.as_bytes(), "HTTP/1.1 431 "),
    ];
    run_until(stop, limit, |i| {
        let (bytes, want) = cases[(i % 4) as usize];
        let got = raw(addr, bytes, Duration::from_secs(5));
        let outcome = if got.starts_with(want.as_bytes()) {
            Ok(())
        } else {
            Err(format!("wanted {want:?}, got {:?}", String::from_utf8_lossy(&got[..got.len().min(120)])))
        };
        t.check(outcome);
    });
    t
}

/// Drips a request head a byte every 50 ms until the gateway answers; the
/// answer must be the 408 of `header_read_timeout`.
fn slowloris_client(addr: SocketAddr, stop: &AtomicBool, limit: Duration) -> Tally {
    let mut t = Tally::new("slowloris");
    let head = format_request("GET", "/drip", &[("X-Padding", &"p".repeat(200))], b"");
    run_until(stop, limit, |_| {
        let outcome = (|| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
            // The read time-out paces the drip.
            s.set_read_timeout(Some(Duration::from_millis(50))).map_err(|e| e.to_string())?;
            let mut got = Vec::new();
            let mut chunk = [0u8; 1024];
            for &byte in &head {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                if got.is_empty() && s.write_all(&[byte]).is_err() {
                    break;
                }
                match s.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        if !got.is_empty() {
                            break;
                        }
                    }
                    // The gateway closes with our last bytes unread: a reset
                    // may follow its answer.
                    Err(_) if !got.is_empty() => break,
                    Err(e) => return Err(format!("no answer: {e}")),
                }
            }
            if got.starts_with(b"HTTP/1.1 408 ") {
                Ok(())
            } else {
                Err(format!("slowloris got {:?}", String::from_utf8_lossy(&got[..got.len().min(120)])))
            }
        })();
        t.check(outcome);
    });
    t
}

/// Clients that vanish: mid-body, mid-response, mid-head, and at once.
fn aborting_client(addr: SocketAddr, seed: u64, stop: &AtomicBool, limit: Duration) -> Tally {
    let mut t = Tally::new("aborting");
    let mut rng = Rng(seed);
    run_until(stop, limit, |i| {
        let outcome = (|| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
            match i % 4 {
                0 => {
                    let partial = rng.bytes(2000);
                    let head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n";
                    s.write_all(&[head.as_slice(), &partial].concat()).map_err(|e| e.to_string())?;
                }
                1 => {
                    s.write_all(b"GET /bytes?n=2000000 HTTP/1.1\r\nHost: t\r\n\r\n").map_err(|e| e.to_string())?;
                    let mut chunk = [0u8; 4096];
                    let mut got = 0;
                    while got < 4096 {
                        match s.read(&mut chunk) {
                            Ok(0) => return Err(format!("closed after {got} bytes of /bytes")),
                            Ok(n) => got += n,
                            Err(e) => return Err(format!("after {got} bytes of /bytes: {e}")),
                        }
                    }
                }
                2 => s.write_all(b"GET /half HTTP/1.1\r\nHost:").map_err(|e| e.to_string())?,
                _ => {}
            }
            Ok(())
        })();
        t.check(outcome);
    });
    t
}

/// Sizes of the gateway at one moment of the run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
}

#[test]
fn soak_mixed_load_keeps_memory_and_fds_flat() {
    let secs = soak_secs();
    let start = |b: ringgate_testbackend::BackendBuilder| b.record_limit(0).start().expect("start test backend");
    let normal = start(Backend::builder().name("normal"));
    let slow = start(Backend::builder().name("slow").mode(Mode::Slow(Duration::from_millis(50))));
    let failing = start(Backend::builder().name("failing").mode(Mode::Reset));
    let (na, sa, fa) = ([normal.addr()], [slow.addr()], [failing.addr()]);
    // Pooled backend connections expire a second after the load stops, so
    // the descriptor count can come back to its pre-load value.
    let settings = "idle_timeout = 1";
    let failing_settings = "idle_timeout = 1\nprobe = \"quick\"";
    let config = sites_config(&[
        Site { settings_extra: settings, ..Site::basic("normal", &na) },
        Site { settings_extra: settings, ..Site::basic("slow", &sa) },
        Site { settings_extra: failing_settings, ..Site::basic("failing", &fa) },
        Site::basic("empty", &[]),
    ])
    .replace("workers = 1", &format!("workers = {WORKERS}"))
    // The access log is written (to nowhere), so its path is part of the run.
    .replace("access_log = \"stdout\"", "access_log = \"/dev/null\"");
    let probe = format!(
        "\n[[probe]]\nname = \"quick\"\npath = \"{PROBE_PATH}\"\ninterval = \"250ms\"\ntimeout = \"250ms\"\n\
         unhealthy_threshold = 3\nhealthy_threshold = 1\n"
    );
    let limits = "header_read_timeout = \"500ms\"\nmax_request_head = \"8KiB\"\nclient_keepalive_timeout = 5";
    let mut gw = Gateway::start(&with_limits(&format!("{config}{probe}"), limits));
    let addr = |l: &str| gw.addr(l);
    let (normal_addr, slow_addr, failing_addr, empty_addr) =
        (addr("normal"), addr("slow"), addr("failing"), addr("empty"));

    for l in [normal_addr, slow_addr] {
        assert_eq!(get(l, "/warm-up").status, 200, "{}", gw.stderr());
    }
    // Before the load: no client connection, no pooled backend connection.
    assert!(wait_until(Duration::from_secs(5), || gw.metric("ringgate_backend_connections") == Some(0)));
    let mut last = gw.fd_count();
    let steady = wait_until(Duration::from_secs(5), || {
        let now = gw.fd_count();
        std::mem::replace(&mut last, now) == now && now > 0
    });
    assert!(steady, "the descriptor count never settled");
    // Pipe ends are counted apart: each worker may keep up to
    // SPARE_PIPES_PER_WORKER spare splice pipes (two ends each) after a
    // large body, by design; every other descriptor must come back.
    let pipe_baseline = gw.pipe_ends();
    let fd_baseline = last - pipe_baseline;

    let stop = Arc::new(AtomicBool::new(false));
    let limit = Duration::from_secs(secs + 30);
    let mut threads: Vec<JoinHandle<Tally>> = Vec::new();
    let mut spawn = |f: Box<dyn FnOnce(&AtomicBool) -> Tally + Send>| {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || f(&stop)));
    };
    for seed in [0x9e37_79b9_7f4a_7c15_u64, 0x2545_f491_4f6c_dd1d] {
        spawn(Box::new(move |s| good_client(normal_addr, seed, s, limit)));
    }
    spawn(Box::new(move |s| slow_client(slow_addr, s, limit)));
    spawn(Box::new(move |s| failing_client(failing_addr, s, limit)));
    spawn(Box::new(move |s| empty_pool_client(empty_addr, s, limit)));
    spawn(Box::new(move |s| malformed_client(normal_addr, s, limit)));
    for _ in 0..2 {
        spawn(Box::new(move |s| slowloris_client(normal_addr, s, limit)));
    }
    spawn(Box::new(move |s| aborting_client(normal_addr, 0x1234_5678_9abc_def1, s, limit)));

    // The failing server alternates its two faults, with a spell of good
    // behaviour before each, so it is healthy when a fault starts: requests
    // keep reaching it (and failing) rather than all taking the
    // all-unhealthy shortcut once the probes have marked it down.
    let modes = [Mode::Reset, Mode::Ok, Mode::Garbage, Mode::Ok];
    let began = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = began + Duration::from_secs(1);
    let mut next_mode = began;
    let mut mode_index = 0;
    eprintln!("soak: {secs} s; descriptors before the load: {fd_baseline} besides {pipe_baseline} pipe ends");
    while samples.len() < secs as usize {
        let now = Instant::now();
        if now >= next_mode {
            failing.set_mode(modes[mode_index % modes.len()].clone());
            mode_index += 1;
            next_mode += Duration::from_millis(500);
        }
        if now >= next_sample {
            assert!(gw.is_running(), "the gateway died under load:\n{}", gw.stderr());
            let s = Sample { at: began.elapsed(), rss_kib: gw.rss_kib(), fds: gw.fd_count() };
            eprintln!("soak: t={:>5.1}s rss={:>7} KiB fds={:>5}", s.at.as_secs_f64(), s.rss_kib, s.fds);
            samples.push(s);
            next_sample += Duration::from_secs(1);
        }
        // Pacing of the sampler, not synchronisation.
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let stopping = Instant::now();
    let tallies: Vec<Tally> = threads.into_iter().map(|h| h.join().expect("client thread panicked")).collect();
    failing.set_mode(Mode::Ok);
    eprintln!("soak: clients stopped in {:?}", stopping.elapsed());
    for t in &tallies {
        eprintln!("soak: {:<22} {:>8} as expected, {:>4} not: {:?}", t.role, t.ok, t.unexpected, t.first_unexpected);
        if !t.kinds.is_empty() {
            eprintln!("soak: {:<22} {:?}", "", t.kinds);
        }
    }

    assert!(gw.is_running(), "the gateway died under load:\n{}", gw.stderr());
    let r = get(normal_addr, "/final");
    assert_eq!((r.status, r.body.as_slice()), (200, b"normal\n".as_slice()), "{r:?}");

    // Memory: flat after the warm-up (the first third of the run).
    let warm = samples[(samples.len() / 3).max(1) - 1];
    let end = samples[samples.len() - 1];
    let allowed = (warm.rss_kib as f64 * RSS_GROWTH_FACTOR) as u64 + RSS_GROWTH_SLACK_KIB;
    assert!(
        end.rss_kib <= allowed,
        "resident memory grew from {} KiB at {:?} to {} KiB at {:?} (allowed {allowed} KiB)",
        warm.rss_kib,
        warm.at,
        end.rss_kib,
        end.at
    );
    // Descriptors: back to the pre-load count once pooled connections expire.
    let (mut fds, mut pipes) = (0, 0);
    let pipe_bound = pipe_baseline + 2 * SPARE_PIPES_PER_WORKER * WORKERS;
    let back = wait_until(Duration::from_secs(5), || {
        pipes = gw.pipe_ends();
        fds = gw.fd_count().saturating_sub(pipes);
        fds <= fd_baseline && pipes <= pipe_bound
    });
    eprintln!(
        "soak: descriptors after the load: {fds} besides {pipes} pipe ends (before: {fd_baseline} besides {pipe_baseline})"
    );
    assert!(
        back,
        "descriptors: {fd_baseline} before the load, still {fds} five seconds after it; \
         pipe ends {pipes} (at most {pipe_bound})"
    );

    // Every client, hostile ones included, got exactly the answers it should.
    for t in &tallies {
        assert!(t.ok > 0, "{}: nothing went as expected", t.role);
        assert_eq!(t.unexpected, 0, "{}: {:?}", t.role, t.first_unexpected);
    }
    let stopping = Instant::now();
    let status = gw.stop();
    eprintln!("soak: gateway stopped in {:?}", stopping.elapsed());
    assert!(status.success(), "{status}");
}
