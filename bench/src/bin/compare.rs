//! The side-by-side comparison: ringgate, nginx and HAProxy proxying to the
//! same two nginx backends, driven by wrk, measured in interleaved rounds on
//! one machine. Load generator and backends run on CPU 0, the proxy under test
//! on CPU 1 with one worker, so the proxies' CPU time per request is
//! comparable even when the load generator is the bottleneck.
//!
//! Run through `bench/compare.sh`, which installs nginx, HAProxy and wrk when
//! missing and builds ringgate first. Prints Markdown tables.
//!
//! The `route` mode sends `/api/item` through a path rule (`/api/*`, after
//! three other path rules, to a second pool of backends) whose rewrite rule
//! set adds `X-Frame-Options: DENY` to responses; nginx and HAProxy get the
//! equivalent `location` blocks and ACLs. Before measuring, each proxy's
//! answers are checked (the header on `/api/item` only, the api pool's
//! backends behind `/api/item` only); a proxy that fails stops the run
//! with exit status 1, so no table shows a proxy skipping the work.
//!
//! The `h2` mode drives HTTP/2 over TLS with h2load instead of wrk: ringgate
//! (an `https` listener with `http2 = true`, in a ringgate process of its own
//! started for this mode only), nginx (`listen ... ssl http2`) and HAProxy
//! (`bind ... ssl crt ... alpn h2,http/1.1`), all with the harness's one
//! certificate and key, each speaking HTTP/1.1 with reused connections to the
//! same backends. The matrix: 1 and 64 client connections, 10 concurrent
//! streams each (`h2load -t1 -c C -m 10`), the small response and a 64 KiB
//! one (`/64k`); each round is `--warm-up` seconds of warm-up then
//! `--duration` seconds measured (`--warm-up-time`, `-D`). p50 and p99 come
//! from h2load's `--log-file` (one line per request of the measured phase),
//! and the CPU per request is the proxy's /proc time over that phase (from
//! the first logged request's start to the last one's end, interpolated
//! between samples taken every 50 ms) divided by the logged requests. Before
//! measuring, each proxy must answer 100 requests of each size over `h2`
//! (h2load's "Application protocol: h2"), all 2xx, with 100 whole bodies
//! (h2load's DATA byte count); every measured round is
//! held to the same (h2, all 2xx, no failed, errored or timed-out request).
//! A proxy that fails stops the mode with exit status 1 and no table.
//!
//! The `mtls` mode measures mutual TLS handshakes: each proxy gets an https
//! listener of its own that requires a client certificate chaining to a
//! client CA the harness makes (ringgate `trusted_client_certificates`,
//! written in this mode's config only; nginx `ssl_verify_client on` with
//! `ssl_client_certificate`; HAProxy `verify required ca-file`), beside its
//! plain https listener (HAProxy's is a frontend of its own here). wrk
//! cannot present a client certificate, so the load is `tlsload`
//! (bench/src/bin/tlsload.rs, pinned as wrk is): a new connection, a full
//! TLS 1.3 handshake without resumption and one `GET /` with
//! `Connection: close` per request, from 16 threads. Before measuring, each
//! proxy's mTLS listener must answer 200 with the client certificate and
//! refuse (no 200) a client without one and one with a certificate of
//! another CA, and its plain listener must answer 200. Each round measures
//! the plain listener without a certificate (the control) and the mTLS one
//! with it, for every proxy in turn; a round with any error or non-200
//! answer stops the mode with exit status 1 and no table.
//!
//! The `bulk` mode measures large bodies, where ringgate's zero-copy relay
//! (`[gateway.splice]`) matters: ringgate with it on (default `min_body`)
//! and off (`ringgate (copy)`), two processes of their own, nginx, HAProxy,
//! and HAProxy with `option splice-request` / `option splice-response` (a
//! process of its own): GET of a 64 KiB and a 1 MiB random body, POST of 1
//! MiB to an upload sink (a thread of the harness on the load CPU that reads
//! every body whole), 16 connections, ratio columns against both HAProxy
//! rows; then a 1 GiB download and upload through the ringgate rows, sha256
//! compared at both ends, RSS sampled every 100 ms. Each row must first
//! return the backends' bytes exactly and deliver an upload the sink
//! confirms (length, sha256); one that fails is not measured and the run
//! exits with status 1. See compare/bulk.rs.
//!
//! The `idle` mode measures memory per idle keep-alive connection for
//! ringgate, nginx and HAProxy in the same run: N connections (at most
//! 9,000, fewer when RLIMIT_NOFILE's hard limit says so; the report says
//! which and why) from idleconns (bench/src/bin/idleconns.rs), each having
//! served one request; wrk's p99 while they are open; RSS after they close
//! against the baseline. See compare/idle.rs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "compare/bulk.rs"]
mod bulk;
#[path = "compare/idle.rs"]
mod idle;
#[path = "compare/wire.rs"]
mod wire;

#[derive(Debug, Clone)]
struct Opts {
    ringgate: PathBuf,
    /// The byte relay of the `floor` mode (bench/src/bin/relay.rs).
    relay: PathBuf,
    /// The TLS handshake load of the `mtls` mode (bench/src/bin/tlsload.rs).
    tlsload: PathBuf,
    /// The idle connections of the `idle` mode (bench/src/bin/idleconns.rs).
    idleconns: PathBuf,
    rounds: usize,
    duration: u32,
    modes: Vec<String>,
    out: PathBuf,
    load_cpu: String,
    proxy_cpu: String,
    /// Only the rows whose name starts with one of these (empty: all).
    proxies: Vec<String>,
    /// h2load's warm-up before each measured round of the h2 mode, seconds.
    warm_up: u32,
    /// `[gateway.splice] min_body` of the bulk mode's splicing ringgate
    /// (its default when absent), to find the threshold by measurement.
    bulk_min_body: Option<String>,
}

impl Opts {
    /// Whether the row (proxy) `name` is measured.
    fn keeps(&self, name: &str) -> bool {
        self.proxies.is_empty() || self.proxies.iter().any(|p| name.starts_with(p.as_str()))
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: compare [--ringgate PATH] [--relay PATH] [--tlsload PATH] [--idleconns PATH] [--rounds N] [--duration SECS] [--warm-up SECS] [--mode small|c256|c1024|body64k|fast502|https|mtls|log|idle|floor|floor1024|route|h2|bulk|all]... [--proxies ringgate,nginx,haproxy,relay] [--bulk-min-body SIZE] [--out DIR]"
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        ringgate: PathBuf::from("target/release/ringgate"),
        relay: PathBuf::from("target/release/relay"),
        tlsload: PathBuf::from("target/release/tlsload"),
        idleconns: PathBuf::from("target/release/idleconns"),
        rounds: 5,
        duration: 5,
        modes: Vec::new(),
        out: PathBuf::from("bench/results"),
        load_cpu: "0".into(),
        proxy_cpu: "1".into(),
        proxies: Vec::new(),
        warm_up: 1,
        bulk_min_body: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--ringgate" => o.ringgate = val().into(),
            "--relay" => o.relay = val().into(),
            "--tlsload" => o.tlsload = val().into(),
            "--idleconns" => o.idleconns = val().into(),
            "--rounds" => o.rounds = val().parse().unwrap_or_else(|_| usage()),
            "--duration" => o.duration = val().parse().unwrap_or_else(|_| usage()),
            "--warm-up" => o.warm_up = val().parse().unwrap_or_else(|_| usage()),
            "--mode" => o.modes.push(val()),
            "--out" => o.out = val().into(),
            "--load-cpu" => o.load_cpu = val(),
            "--proxy-cpu" => o.proxy_cpu = val(),
            "--bulk-min-body" => o.bulk_min_body = Some(val()),
            "--proxies" => o.proxies = val().split(',').filter(|p| !p.is_empty()).map(str::to_string).collect(),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if o.modes.is_empty() || o.modes.iter().any(|m| m == "all") {
        o.modes = [
            "small",
            "c256",
            "c1024",
            "body64k",
            "fast502",
            "https",
            "mtls",
            "log",
            "idle",
            "floor",
            "floor1024",
            "route",
            "h2",
            "bulk",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
    }
    o
}

const BACKEND_PORTS: [u16; 2] = [19101, 19102];
/// The `api` pool of the route mode: nginx backends that mark their
/// responses `X-Pool: api`, so the harness can tell which pool answered.
const API_BACKEND_PORTS: [u16; 2] = [19103, 19104];
const RINGGATE_PORT: u16 = 18101;
const NGINX_PORT: u16 = 18102;
const HAPROXY_PORT: u16 = 18103;
const RINGGATE_502_PORT: u16 = 18111;
const NGINX_502_PORT: u16 = 18112;
const RINGGATE_ADMIN_PORT: u16 = 18199;
const RINGGATE_TLS_PORT: u16 = 18121;
const NGINX_TLS_PORT: u16 = 18122;
const RINGGATE_LOGGED_PORT: u16 = 18131;
const RINGGATE_LOGGED_ADMIN_PORT: u16 = 18198;
const RELAY_PLAIN_PORT: u16 = 18141;
const RELAY_MULTISHOT_PORT: u16 = 18142;
const RINGGATE_ROUTE_PORT: u16 = 18151;
const NGINX_ROUTE_PORT: u16 = 18152;
const HAPROXY_ROUTE_PORT: u16 = 18153;
/// What the route mode requests: matched by `/api/*` (4th path rule).
const ROUTE_PATH: &str = "/api/item";
/// The h2 mode's listeners: ringgate (a process of its own), nginx, HAProxy.
const RINGGATE_H2_PORT: u16 = 18161;
const NGINX_H2_PORT: u16 = 18162;
const HAPROXY_H2_PORT: u16 = 18163;
const RINGGATE_H2_ADMIN_PORT: u16 = 18197;
/// HAProxy's plain https frontend: the mtls mode's control.
const HAPROXY_TLS_PORT: u16 = 18123;
/// The mtls mode's listeners requiring a client certificate.
const RINGGATE_MTLS_PORT: u16 = 18171;
const NGINX_MTLS_PORT: u16 = 18172;
const HAPROXY_MTLS_PORT: u16 = 18173;
/// Connections in flight (tlsload threads) in the mtls mode, as wrk's in
/// the https mode's handshake table.
const MTLS_CONNECTIONS: u32 = 16;
/// Requests of each of the mtls mode's checks, per proxy.
const MTLS_CHECK_REQUESTS: u64 = 20;
/// The backends' 64 KiB answer, in every mode (the h2 mode's large response).
const BIG_PATH: &str = "/64k";
/// Concurrent streams per h2load connection.
const H2_STREAMS: u32 = 10;
/// Requests of the h2 mode's check, per proxy and response size.
const H2_CHECK_REQUESTS: u64 = 100;
/// The backends' body sizes: "hello, world\n" on `/`, 64 KiB on `BIG_PATH`.
const SMALL_BODY_LEN: u64 = 13;
const BIG_BODY_LEN: u64 = 64 * 1024;
/// The bulk mode's listeners: ringgate splicing (a process of its own),
/// ringgate copying (another), nginx, HAProxy, HAProxy splicing (another
/// process, so its CPU is its own).
const RINGGATE_BULK_PORT: u16 = 18181;
const RINGGATE_COPY_PORT: u16 = 18182;
const NGINX_BULK_PORT: u16 = 18183;
const HAPROXY_BULK_PORT: u16 = 18184;
const HAPROXY_SPLICE_PORT: u16 = 18185;
const RINGGATE_BULK_ADMIN_PORT: u16 = 18196;
const RINGGATE_COPY_ADMIN_PORT: u16 = 18195;
/// The upload sink (bench/src/bin/compare/wire.rs), a thread of the harness
/// pinned to the load CPU: every proxy forwards `/upload/...` to it.
const SINK_PORT: u16 = 19105;
/// The backends' random bodies (every mode; the bulk mode measures them):
/// 64 KiB, 1 MiB and (bulk mode only, written then removed) 1 GiB.
const R64K_PATH: &str = "/r64k";
/// The bulk mode's bodies around the splice threshold.
const R16K_PATH: &str = "/r16k";
const R32K_PATH: &str = "/r32k";
const M1_PATH: &str = "/1m";
const G1_PATH: &str = "/1g";
const M1_LEN: u64 = 1 << 20;
const G1_LEN: u64 = 1 << 30;

/// A process this harness started; stopped by pid on drop.
struct Proc {
    name: String,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on the pid of a child this harness spawned and has
        // not reaped yet (so the pid cannot have been reused).
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, cpu: &str, program: &str, args: &[&str], log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let err = out.try_clone().expect("log handle");
    let child = Command::new("taskset")
        .arg("-c")
        .arg(cpu)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name} ({program}): {e}"));
    Proc { name: name.to_string(), child }
}

/// Whether something listens on `port` within 10 s.
fn listens(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn wait_port(port: u16, what: &str, log: &Path) {
    if listens(port) {
        return;
    }
    panic!("{what} does not listen on {port}; its log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// CPU time (user, system) of a process and all its threads, in µs.
fn cpu_us(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 1_000_000 / clock_ticks();
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    (utime * tick, stime * tick)
}

fn clock_ticks() -> u64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf reads a constant of the running system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The pids whose CPU time counts for a proxy: nginx's workers (not the
/// master), HAProxy's process, ringgate's process.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let ppid: u32 = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
            if ppid == pid {
                out.push(p);
            }
        }
    }
    out
}

#[derive(Debug, Clone, Default)]
struct Sample {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    user_us_per_req: f64,
    sys_us_per_req: f64,
    /// Socket errors (connect, read, write, time-out) seen by wrk.
    errors: u64,
    /// Responses other than 2xx/3xx (expected in the 502 mode).
    non2xx: u64,
}

impl Sample {
    /// One round's progress line on stderr: `what` is the unit counted
    /// (`req` or `handshake`).
    fn report(&self, round: usize, name: &str, what: &str) {
        eprintln!(
            "  round {round} {name:<14} {:>9.0} {what}s/s  p99 {:>8.0} µs  cpu {:>7.2} µs/{what} (user {:.2} sys {:.2}) errors {}",
            self.rps,
            self.p99_us,
            self.user_us_per_req + self.sys_us_per_req,
            self.user_us_per_req,
            self.sys_us_per_req,
            self.errors
        );
    }
}

fn parse_latency(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n,
        "ms" => n * 1000.0,
        "s" => n * 1_000_000.0,
        _ => f64::NAN,
    }
}

/// What wrk sends: plain or TLS, keep-alive or a new connection per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Http,
    Https,
    HttpsHandshakes,
}

/// Runs wrk against `path` on `port` and measures the CPU of `pids`
/// meanwhile.
fn run_wrk(o: &Opts, port: u16, path: &str, conns: u32, pids: &[u32], load: Load) -> Sample {
    run_wrk_script(o, port, path, conns, pids, load, None)
}

/// `run_wrk` with a wrk Lua script (`-s`), e.g. the bulk mode's uploads.
fn run_wrk_script(
    o: &Opts,
    port: u16,
    path: &str,
    conns: u32,
    pids: &[u32],
    load: Load,
    script: Option<&Path>,
) -> Sample {
    let before: Vec<(u64, u64)> = pids.iter().map(|&p| cpu_us(p)).collect();
    let scheme = if load == Load::Http { "http" } else { "https" };
    let url = format!("{scheme}://127.0.0.1:{port}{path}");
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &o.load_cpu, "wrk", "-t1", &format!("-c{conns}"), &format!("-d{}s", o.duration), "--latency"]);
    if load == Load::HttpsHandshakes {
        // A new connection, so a full TLS handshake, per request.
        cmd.args(["-H", "Connection: close"]);
    }
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd.arg(&url).output().expect("run wrk");
    let after: Vec<(u64, u64)> = pids.iter().map(|&p| cpu_us(p)).collect();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut s = Sample::default();
    let mut requests = 0u64;
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["Requests/sec:", v] => s.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => s.p50_us = parse_latency(v),
            ["99%", v] => s.p99_us = parse_latency(v),
            [n, "requests", "in", ..] => requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => s.non2xx += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                s.errors += rest.iter().filter_map(|x| x.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>();
            }
            _ => {}
        }
    }
    let (mut du, mut ds) = (0u64, 0u64);
    for (b, a) in before.iter().zip(&after) {
        du += a.0.saturating_sub(b.0);
        ds += a.1.saturating_sub(b.1);
    }
    if requests > 0 {
        s.user_us_per_req = du as f64 / requests as f64;
        s.sys_us_per_req = ds as f64 / requests as f64;
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// What h2load printed about one run.
#[derive(Debug, Clone, Default, PartialEq)]
struct H2Summary {
    /// "Application protocol: ..." (`h2` when ALPN chose HTTP/2).
    protocol: Option<String>,
    /// Requests per second over the measured phase.
    rps: f64,
    done: u64,
    failed: u64,
    errored: u64,
    timeout: u64,
    /// Responses by status class: 2xx, 3xx, 4xx, 5xx.
    status: [u64; 4],
    /// Response body bytes received ("traffic: ... (N) data").
    data: u64,
}

fn parse_h2load(text: &str) -> H2Summary {
    let mut s = H2Summary::default();
    // "12 done, 0 failed, ..." -> the number before each label.
    let counts = |rest: &str| -> Vec<(String, u64)> {
        let w: Vec<&str> = rest.split_whitespace().collect();
        w.windows(2)
            .filter_map(|p| p[0].parse::<u64>().ok().map(|n| (p[1].trim_end_matches(',').to_string(), n)))
            .collect()
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(p) = line.strip_prefix("Application protocol:") {
            s.protocol = Some(p.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("finished in ") {
            // "finished in 3.00s, 50379.50 req/s, 3.84MB/s"
            s.rps = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("requests:") {
            for (label, n) in counts(rest) {
                match label.as_str() {
                    "done" => s.done = n,
                    "failed" => s.failed = n,
                    "errored" => s.errored = n,
                    "timeout" => s.timeout = n,
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("traffic:") {
            // "traffic: 6.27MB (6572749) total, 10.74KB (11000) headers (...), 6.25MB (6553600) data"
            let w: Vec<&str> = rest.split_whitespace().collect();
            if let Some(i) = w.iter().rposition(|x| *x == "data") {
                s.data = i
                    .checked_sub(1)
                    .and_then(|j| w[j].trim_matches(|c| c == '(' || c == ')').parse().ok())
                    .unwrap_or(0);
            }
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            for (label, n) in counts(rest) {
                if let Some(i) = ["2xx", "3xx", "4xx", "5xx"].iter().position(|c| *c == label) {
                    s.status[i] = n;
                }
            }
        }
    }
    s
}

/// h2load's `--log-file`: per request, (start in µs since the epoch, status,
/// µs until the end of the response).
fn parse_h2_log(text: &str) -> Vec<(u64, u16, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// The (user, system) CPU µs at `t` (µs since the epoch), interpolated
/// between the samples (time, user, system) around it.
fn cpu_at(samples: &[(u64, u64, u64)], t: u64) -> (f64, f64) {
    let Some(first) = samples.first() else { return (0.0, 0.0) };
    if t <= first.0 {
        return (first.1 as f64, first.2 as f64);
    }
    for w in samples.windows(2) {
        let (a, b) = (w[0], w[1]);
        if t <= b.0 {
            let f = if b.0 > a.0 { (t - a.0) as f64 / (b.0 - a.0) as f64 } else { 1.0 };
            let lerp = |x: u64, y: u64| x as f64 + (y as f64 - x as f64) * f;
            return (lerp(a.1, b.1), lerp(a.2, b.2));
        }
    }
    let last = samples[samples.len() - 1];
    (last.1 as f64, last.2 as f64)
}

fn epoch_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Runs h2load (`-c conns -m 10`) against `https://127.0.0.1:port/path`:
/// `measure`, a warm-up and a timed round (`--warm-up-time`, `-D`),
/// measuring the CPU of `pids`; otherwise the check, a fixed
/// `H2_CHECK_REQUESTS` requests. An error unless the run used HTTP/2 and
/// every request got a 2xx answer.
fn run_h2load(
    o: &Opts,
    dir: &Path,
    port: u16,
    path: &str,
    conns: u32,
    pids: &[u32],
    measure: bool,
) -> Result<Sample, String> {
    let log = dir.join("h2load-requests.tsv");
    let out_path = dir.join("h2load.out");
    let _ = std::fs::remove_file(&log);
    let out = std::fs::File::create(&out_path).map_err(|e| format!("create {}: {e}", out_path.display()))?;
    let err = out.try_clone().map_err(|e| format!("h2load output: {e}"))?;
    let url = format!("https://127.0.0.1:{port}{path}");
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &o.load_cpu, "h2load", "-t1", &format!("-c{conns}"), &format!("-m{H2_STREAMS}")]);
    if measure {
        cmd.arg(format!("--duration={}", o.duration)).arg(format!("--warm-up-time={}", o.warm_up));
    } else {
        cmd.arg(format!("--requests={H2_CHECK_REQUESTS}"));
    }
    cmd.arg(format!("--log-file={}", log.display())).arg(&url).stdin(Stdio::null()).stdout(out).stderr(err);
    let sample = || {
        let t = epoch_us();
        let (u, s) = pids.iter().map(|&p| cpu_us(p)).fold((0, 0), |acc, c| (acc.0 + c.0, acc.1 + c.1));
        (t, u, s)
    };
    let mut samples = vec![sample()];
    let mut child = cmd.spawn().map_err(|e| format!("start h2load: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(u64::from(o.duration + o.warm_up) + 30);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("wait for h2load: {e}")),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("h2load against {url} did not finish in time"));
        }
        samples.push(sample());
        std::thread::sleep(Duration::from_millis(50));
    };
    samples.push(sample());
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let h = parse_h2load(&text);
    let shown = || {
        let keep = ["Application protocol", "finished in", "requests:", "status codes:", "traffic:", "error", "fail"];
        text.lines().filter(|l| keep.iter().any(|k| l.contains(k))).collect::<Vec<_>>().join("\n    ")
    };
    if !status.success() {
        return Err(format!("h2load against {url} exited with {status}:\n    {}", text.trim_end()));
    }
    if h.protocol.as_deref() != Some("h2") {
        return Err(format!(
            "{url} was not answered over HTTP/2 (application protocol {:?}):\n    {}",
            h.protocol,
            shown()
        ));
    }
    let requests = parse_h2_log(&std::fs::read_to_string(&log).unwrap_or_default());
    // h2load logs status 0 for a request whose response head arrived in the
    // warm-up (not counted in "status codes") and that ended in the measured
    // phase: at most one per stream in flight when the phase began.
    let early = requests.iter().filter(|r| r.1 == 0).count() as u64;
    let not_2xx = requests.iter().filter(|r| r.1 != 0 && !(200..300).contains(&r.1)).count() as u64;
    let trouble = h.failed + h.errored + h.timeout + h.status[1] + h.status[2] + h.status[3] + not_2xx;
    let in_flight = u64::from(conns * H2_STREAMS);
    let whole = if measure { h.done > 0 } else { h.done == H2_CHECK_REQUESTS && early == 0 };
    if trouble > 0 || !whole || early > in_flight || h.status[0] + early < h.done || requests.len() as u64 != h.done {
        return Err(format!(
            "{url}: not every request got a 2xx answer (done {}, logged {}, {not_2xx} logged non-2xx, {early} logged without a status):\n    {}",
            h.done,
            requests.len(),
            shown()
        ));
    }
    // The check also wants every body whole (h2load counts DATA payload).
    let body = if path == BIG_PATH { BIG_BODY_LEN } else { SMALL_BODY_LEN };
    if !measure && h.data != H2_CHECK_REQUESTS * body {
        return Err(format!(
            "{url}: {} body bytes for {H2_CHECK_REQUESTS} responses, expected {} ({body} each):\n    {}",
            h.data,
            H2_CHECK_REQUESTS * body,
            shown()
        ));
    }
    let mut durations: Vec<u64> = requests.iter().map(|r| r.2).collect();
    durations.sort_unstable();
    // The measured phase as the log has it: first start to last end.
    let start = requests.iter().map(|r| r.0).min().unwrap_or(0);
    let end = requests.iter().map(|r| r.0 + r.2).max().unwrap_or(0);
    let (u0, s0) = cpu_at(&samples, start);
    let (u1, s1) = cpu_at(&samples, end);
    let n = requests.len() as f64;
    Ok(Sample {
        rps: h.rps,
        p50_us: quantile(&durations, 0.50),
        p99_us: quantile(&durations, 0.99),
        user_us_per_req: (u1 - u0).max(0.0) / n,
        sys_us_per_req: (s1 - s0).max(0.0) / n,
        errors: h.failed + h.errored + h.timeout,
        non2xx: not_2xx,
    })
}

/// The h2 mode's rounds: every target once per round, in turn.
fn interleaved_h2(
    o: &Opts,
    dir: &Path,
    conns: u32,
    path: &str,
    targets: &[(&str, u16, Vec<u32>)],
) -> Result<Vec<(String, Vec<Sample>)>, String> {
    let mut rows: Vec<(String, Vec<Sample>)> = targets.iter().map(|(n, _, _)| (n.to_string(), Vec::new())).collect();
    for round in 0..o.rounds {
        for (i, (name, port, pids)) in targets.iter().enumerate() {
            let s = run_h2load(o, dir, *port, path, conns, pids, true).map_err(|e| format!("{name}: {e}"))?;
            s.report(round + 1, name, "req");
            rows[i].1.push(s);
        }
    }
    Ok(rows)
}

/// The h2 mode: checks each proxy, then measures the matrix (1 and 64
/// connections × small and 64 KiB responses), appending a table per cell to
/// `report`. The failures, if any (then the rest is not measured).
fn h2_mode(o: &Opts, setup: &Setup, pids: &BTreeMap<&'static str, Vec<u32>>, report: &mut String) -> Vec<String> {
    let mut failures = setup.failures.clone();
    let mut targets: Vec<(&str, u16, Vec<u32>)> = Vec::new();
    for (name, port, key) in [
        ("ringgate", RINGGATE_H2_PORT, "ringgate (h2)"),
        ("nginx", NGINX_H2_PORT, "nginx"),
        ("haproxy", HAPROXY_H2_PORT, "haproxy"),
    ] {
        if o.keeps(name) {
            match pids.get(key) {
                Some(p) => targets.push((name, port, p.clone())),
                None => failures.push(format!("{name}: not running")),
            }
        }
    }
    let sizes = [("/", "small response (13 B body)"), (BIG_PATH, "64 KiB response")];
    for (name, port, pids) in &targets {
        if failures.iter().any(|f| f.starts_with(&format!("{name}:"))) {
            continue;
        }
        for (path, _) in sizes {
            match run_h2load(o, &setup.dir, *port, path, 1, pids, false) {
                Ok(_) => {
                    eprintln!(
                        "  h2 check {name} GET {path}: ok ({H2_CHECK_REQUESTS} requests over h2, all 2xx, bodies whole)"
                    )
                }
                Err(e) => {
                    eprintln!("  h2 check {name} GET {path}: FAILED: {e}");
                    failures.push(format!("{name}: {e}"));
                }
            }
        }
    }
    if !failures.is_empty() {
        return failures;
    }
    for conns in [1, 64] {
        for (path, what) in sizes {
            eprintln!("  h2: {conns} connection(s), {what}");
            match interleaved_h2(o, &setup.dir, conns, path, &targets) {
                Ok(rows) => {
                    let plural = if conns == 1 { "" } else { "s" };
                    let t = Table {
                        title: format!(
                            "HTTP/2 over TLS (h2load, same certificate), {what}, {conns} connection{plural} × {H2_STREAMS} streams, {} s warm-up then {} s per round",
                            o.warm_up, o.duration
                        ),
                        rows,
                    };
                    let text = render(&t);
                    eprintln!("{text}");
                    report.push_str(&text);
                    report.push('\n');
                }
                Err(e) => {
                    eprintln!("  h2: FAILED: {e}");
                    return vec![e];
                }
            }
        }
    }
    Vec::new()
}

/// The certificate and key tlsload presents, if any.
type ClientCert<'a> = Option<(&'a Path, &'a Path)>;

/// A tlsload run: its sample, and what its lines said beyond it.
#[derive(Debug, Clone, Default)]
struct TlsRun {
    sample: Sample,
    /// Whole 200 answers.
    done: u64,
    /// tlsload's first error and first non-200 answer, when it saw any.
    first: String,
}

/// Reads tlsload's `key value` lines.
fn parse_tlsload(text: &str) -> TlsRun {
    let mut r = TlsRun::default();
    let mut first = Vec::new();
    for line in text.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        let n = || v.trim().parse::<f64>().unwrap_or(f64::NAN);
        match k {
            "done" => r.done = v.trim().parse().unwrap_or(0),
            "non200" => r.sample.non2xx = v.trim().parse().unwrap_or(0),
            "errors" => r.sample.errors = v.trim().parse().unwrap_or(0),
            "rps" => r.sample.rps = n(),
            "p50_us" => r.sample.p50_us = n(),
            "p99_us" => r.sample.p99_us = n(),
            "first_error" => first.push(format!("first error: {v}")),
            "first_non200" => first.push(format!("first other answer: {v}")),
            _ => {}
        }
    }
    r.first = first.join("; ");
    r
}

/// Runs tlsload (pinned as wrk is) against `port`, presenting `client`
/// (certificate, key) when given: `requests` in all when given (a check),
/// else `--duration` seconds; `conns` threads. The CPU of `pids` over the
/// run is divided by the handshakes that got an answer.
fn run_tlsload(
    o: &Opts,
    setup: &Setup,
    port: u16,
    client: ClientCert<'_>,
    conns: u32,
    requests: Option<u64>,
    pids: &[u32],
) -> Result<TlsRun, String> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &o.load_cpu]).arg(&o.tlsload).args(["--port", &port.to_string()]);
    cmd.args(["--connections", &conns.to_string()]).arg("--ca").arg(&setup.server_ca);
    match requests {
        Some(n) => cmd.args(["--requests", &n.to_string()]),
        None => cmd.args(["--duration", &o.duration.to_string()]),
    };
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let before: Vec<(u64, u64)> = pids.iter().map(|&p| cpu_us(p)).collect();
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("start tlsload: {e}"))?;
    let after: Vec<(u64, u64)> = pids.iter().map(|&p| cpu_us(p)).collect();
    if !out.status.success() {
        return Err(format!(
            "tlsload on port {port} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    let mut r = parse_tlsload(&String::from_utf8_lossy(&out.stdout));
    let (mut du, mut ds) = (0u64, 0u64);
    for (b, a) in before.iter().zip(&after) {
        du += a.0.saturating_sub(b.0);
        ds += a.1.saturating_sub(b.1);
    }
    let answered = r.done + r.sample.non2xx;
    if answered > 0 {
        r.sample.user_us_per_req = du as f64 / answered as f64;
        r.sample.sys_us_per_req = ds as f64 / answered as f64;
    }
    Ok(r)
}

/// A measured tlsload round is valid only with every handshake answered by
/// a whole 200: no row is built on errors.
fn valid_tls_round(name: &str, what: &str, r: &TlsRun) -> Result<(), String> {
    if r.done == 0 || r.sample.errors > 0 || r.sample.non2xx > 0 {
        return Err(format!(
            "{name} ({what}): {} errors and {} non-200 answers beside {} whole 200s; {}",
            r.sample.errors, r.sample.non2xx, r.done, r.first
        ));
    }
    Ok(())
}

/// The mtls mode's rounds: a warm-up, then every target once per round, in
/// turn. Targets: (row name, port, client certificate and key, pids).
fn interleaved_tls(
    o: &Opts,
    setup: &Setup,
    targets: &[(String, u16, ClientCert<'_>, Vec<u32>)],
) -> Result<Vec<(String, Vec<Sample>)>, String> {
    for (name, port, client, pids) in targets {
        let short = Opts { duration: 1, ..o.clone() };
        let r = run_tlsload(&short, setup, *port, *client, MTLS_CONNECTIONS, None, pids)?;
        valid_tls_round(name, "warm-up", &r)?;
    }
    let mut rows: Vec<(String, Vec<Sample>)> = targets.iter().map(|(n, ..)| (n.clone(), Vec::new())).collect();
    for round in 0..o.rounds {
        for (i, (name, port, client, pids)) in targets.iter().enumerate() {
            let r = run_tlsload(o, setup, *port, *client, MTLS_CONNECTIONS, None, pids)?;
            valid_tls_round(name, &format!("round {}", round + 1), &r)?;
            let s = r.sample;
            s.report(round + 1, name, "handshake");
            rows[i].1.push(s);
        }
    }
    Ok(rows)
}

/// What mutual TLS adds per handshake, each proxy's mTLS row against its
/// control row (medians of the same interleaved rounds).
fn render_mtls_cost(control: &[(String, Vec<Sample>)], mtls: &[(String, Vec<Sample>)]) -> String {
    let med = |s: &[Sample], f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
    let cpu = |s: &[Sample]| med(s, |x| x.user_us_per_req + x.sys_us_per_req);
    let costs: Vec<(&str, f64, f64, f64, f64)> = control
        .iter()
        .filter_map(|(name, plain)| {
            let (_, with) = mtls.iter().find(|(n, _)| *n == format!("{name} mTLS"))?;
            Some((name.as_str(), med(plain, |x| x.rps), med(with, |x| x.rps), cpu(plain), cpu(with)))
        })
        .collect();
    let nginx = costs.iter().find(|c| c.0 == "nginx").map(|c| c.4 - c.3);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "### What mutual TLS adds to a full handshake (the two tables above: each proxy's mTLS row against its control)\n"
    );
    let _ = writeln!(
        o,
        "| proxy | handshakes/s, no client certificate | handshakes/s, mTLS | CPU µs/handshake, no client certificate | CPU µs/handshake, mTLS | mTLS ÷ no certificate | mTLS cost, CPU µs/handshake | mTLS cost vs nginx's |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, rps0, rps1, c0, c1) in costs {
        let vs = nginx.map_or("–".to_string(), |n| format!("{:.2}×", (c1 - c0) / n));
        let _ = writeln!(
            o,
            "| {name} | {rps0:.0} | {rps1:.0} | {c0:.2} | {c1:.2} | {:.2}× | {:.2} | {vs} |",
            c1 / c0,
            c1 - c0
        );
    }
    o
}

/// The mtls mode: checks each proxy's listeners, then measures mTLS
/// handshakes beside the control (no client certificate, plain https
/// listener), appending three tables to `report`. The failures, if any
/// (then nothing is printed).
fn mtls_mode(o: &Opts, setup: &Setup, pids: &BTreeMap<&'static str, Vec<u32>>, report: &mut String) -> Vec<String> {
    let c = &setup.clients;
    let cert = Some((c.cert.as_path(), c.key.as_path()));
    let stranger = Some((c.stranger_cert.as_path(), c.stranger_key.as_path()));
    let proxies: Vec<(&str, u16, u16, Vec<u32>)> = [
        ("ringgate", RINGGATE_TLS_PORT, RINGGATE_MTLS_PORT),
        ("nginx", NGINX_TLS_PORT, NGINX_MTLS_PORT),
        ("haproxy", HAPROXY_TLS_PORT, HAPROXY_MTLS_PORT),
    ]
    .into_iter()
    .filter(|(n, ..)| o.keeps(n))
    .map(|(n, plain, mtls)| (n, plain, mtls, pids[n].clone()))
    .collect();
    let mut failures = Vec::new();
    for (name, plain, mtls, pids) in &proxies {
        // (what, port, client, whether every request must get a whole 200;
        // otherwise none may)
        let checks = [
            ("plain https listener, no client certificate", *plain, None, true),
            ("mTLS listener, the client certificate", *mtls, cert, true),
            ("mTLS listener, no client certificate", *mtls, None, false),
            ("mTLS listener, a certificate of another CA", *mtls, stranger, false),
        ];
        for (what, port, client, answered) in checks {
            match run_tlsload(o, setup, port, client, 1, Some(MTLS_CHECK_REQUESTS), pids) {
                Err(e) => failures.push(format!("{name}: {what}: {e}")),
                Ok(r) if answered && r.done != MTLS_CHECK_REQUESTS => failures.push(format!(
                    "{name}: {what}: {} of {MTLS_CHECK_REQUESTS} requests got a whole 200; {}",
                    r.done, r.first
                )),
                Ok(r) if !answered && r.done > 0 => failures.push(format!(
                    "{name}: {what}: {} of {MTLS_CHECK_REQUESTS} requests got a 200, expected none",
                    r.done
                )),
                Ok(_) if answered => eprintln!("  mtls check {name}, {what}: ok (all {MTLS_CHECK_REQUESTS} 200)"),
                Ok(r) => eprintln!("  mtls check {name}, {what}: ok (all {MTLS_CHECK_REQUESTS} refused; {})", r.first),
            }
        }
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("  mtls check FAILED: {f}");
        }
        return failures;
    }
    let mut targets: Vec<(String, u16, ClientCert<'_>, Vec<u32>)> = Vec::new();
    for (name, plain, mtls, pids) in &proxies {
        targets.push((name.to_string(), *plain, None, pids.clone()));
        targets.push((format!("{name} mTLS"), *mtls, cert, pids.clone()));
    }
    let rows = match interleaved_tls(o, setup, &targets) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("  mtls: FAILED: {e}");
            return vec![e];
        }
    };
    let (mtls_rows, control_rows): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(n, _)| n.ends_with(" mTLS"));
    let load = format!(
        "tlsload, {MTLS_CONNECTIONS} connections, a new connection per request (full TLS 1.3 handshake, no resumption, `Connection: close`), {} s per round; req/s = handshakes/s, CPU µs per handshake, p50/p99 from connect to close",
        o.duration
    );
    let control = Table {
        title: format!("HTTPS without a client certificate, plain https listeners (the control): {load}"),
        rows: control_rows,
    };
    let mtls = Table {
        title: format!(
            "Mutual TLS: the client certificate verified (ringgate `trusted_client_certificates`, nginx `ssl_verify_client on`, HAProxy `verify required ca-file`): {load}"
        ),
        rows: mtls_rows,
    };
    let text = [
        render_versus(&control, Some("nginx")),
        render_versus(&mtls, Some("nginx mTLS")),
        render_mtls_cost(&control.rows, &mtls.rows),
    ]
    .join("\n");
    eprintln!("{text}");
    report.push_str(&text);
    report.push('\n');
    Vec::new()
}

struct Setup {
    dir: PathBuf,
    procs: Vec<Proc>,
    /// Proxies of the mode that did not start (the h2 mode's ringgate).
    failures: Vec<String>,
    /// The mtls mode's files: the server's CA (tlsload's root) and the
    /// client side's.
    server_ca: PathBuf,
    clients: ClientPki,
    /// The bulk mode's upload sink.
    sink: Option<wire::Sink>,
}

/// The first CPU of a taskset list such as "0" or "0,2" or "0-1".
fn first_cpu(list: &str) -> usize {
    list.split([',', '-']).next().and_then(|c| c.trim().parse().ok()).unwrap_or(0)
}

fn backend_conf(dir: &Path, body64k: bool) -> PathBuf {
    let conf = dir.join("backend.conf");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), "x".repeat(64 * 1024)).expect("64 KiB body");
    let location = if body64k {
        format!("location / {{ root {}; index index.html; }}", www.display())
    } else {
        "location / { return 200 \"hello, world\\n\"; }".to_string()
    };
    // Random bodies (the bulk mode's), whose bytes the harness compares.
    for (file, len, seed) in [
        ("r16k.bin", 16 * 1024, 16),
        ("r32k.bin", 32 * 1024, 32),
        ("r64k.bin", BIG_BODY_LEN, 64),
        ("1m.bin", M1_LEN, 1024),
    ] {
        let path = www.join(file);
        if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(len) {
            wire::random_file(&path, len, seed).expect("random body");
        }
    }
    let big = format!(
        "location = {BIG_PATH} {{ alias {w}/index.html; }} location = {R16K_PATH} {{ alias {w}/r16k.bin; }} location = {R32K_PATH} {{ alias {w}/r32k.bin; }} location = {R64K_PATH} {{ alias {w}/r64k.bin; }} location = {M1_PATH} {{ alias {w}/1m.bin; }} location = {G1_PATH} {{ alias {w}/1g.bin; }}",
        w = www.display()
    );
    let mut servers: String = BACKEND_PORTS
        .iter()
        .map(|p| format!("  server {{ listen 127.0.0.1:{p} backlog=4096; {location} {big} }}\n"))
        .collect();
    // The route mode's second pool: the same small answer, marked.
    for p in API_BACKEND_PORTS {
        let _ = writeln!(
            servers,
            "  server {{ listen 127.0.0.1:{p} backlog=4096; location / {{ add_header X-Pool api; return 200 \"hello, world\\n\"; }} }}"
        );
    }
    let text = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/backend.pid;\nerror_log {d}/backend-error.log warn;\nevents {{ worker_connections 8192; }}\nhttp {{\n  access_log off;\n  keepalive_requests 10000000;\n  sendfile on;\n{servers}}}\n",
        d = dir.display()
    );
    std::fs::write(&conf, text).expect("write backend.conf");
    conf
}

/// A CA and a leaf for "localhost" and 127.0.0.1, shared by ringgate and
/// nginx: the chain (`cert.pem`) and the key; the CA alone goes to `ca.pem`
/// (tlsload verifies the proxies' certificate against it).
fn certificates(dir: &Path) -> (PathBuf, PathBuf) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "ringgate bench CA");
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("leaf params");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, format!("{}{}", leaf_cert.pem(), ca_cert.pem())).expect("write cert");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("write key");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
    (cert, key)
}

/// The mtls mode's client side: the CA the proxies trust, a client
/// certificate it signed, and a stranger's (signed by another CA) that
/// they must refuse.
#[derive(Debug, Clone)]
struct ClientPki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    stranger_cert: PathBuf,
    stranger_key: PathBuf,
}

fn client_certificates(dir: &Path) -> ClientPki {
    // clientAuth usage: webpki (ringgate) and OpenSSL's purpose check
    // (nginx, HAProxy) want it in a client certificate that has usages.
    let ca = |name: &str| {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("client CA params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let key = rcgen::KeyPair::generate().expect("client CA key");
        let cert = p.self_signed(&key).expect("client CA cert");
        (cert.pem(), rcgen::Issuer::new(p, key))
    };
    let client = |issuer: &rcgen::Issuer<'_, rcgen::KeyPair>, cn: &str| {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("client params");
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().expect("client key");
        let cert = p.signed_by(&key, issuer).expect("client cert");
        (cert.pem(), key.serialize_pem())
    };
    let (ca_pem, issuer) = ca("ringgate bench client CA");
    let (other_ca_pem, other) = ca("another client CA");
    let (cert_pem, key_pem) = client(&issuer, "bench client");
    let (stranger_pem, stranger_key_pem) = client(&other, "stranger");
    let pki = ClientPki {
        ca: dir.join("client-ca.pem"),
        cert: dir.join("client.pem"),
        key: dir.join("client-key.pem"),
        stranger_cert: dir.join("stranger.pem"),
        stranger_key: dir.join("stranger-key.pem"),
    };
    for (path, text) in [
        (&pki.ca, ca_pem),
        (&pki.cert, cert_pem),
        (&pki.key, key_pem),
        // The stranger presents its whole chain: refused for its root, not
        // for a missing intermediate.
        (&pki.stranger_cert, format!("{stranger_pem}{other_ca_pem}")),
        (&pki.stranger_key, stranger_key_pem),
    ] {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    pki
}

/// Starts the backends and the proxies for `mode`: the h2 mode adds its
/// ringgate, the mtls mode ringgate's listener requiring a client
/// certificate, the bulk mode the upload sink, two ringgate processes
/// (splicing, copying) and a HAProxy splicing.
fn start_all(o: &Opts, dir: &Path, mode: &str) -> Setup {
    let (body64k, h2, mtls, bulk) = (mode == "body64k", mode == "h2", mode == "mtls", mode == "bulk");
    let mut procs = Vec::new();
    let mut failures = Vec::new();
    let sink = bulk.then(|| wire::Sink::start(SINK_PORT, first_cpu(&o.load_cpu)).expect("upload sink"));
    let bconf = backend_conf(dir, body64k);
    procs.push(spawn(
        "backends (nginx)",
        &o.load_cpu,
        "nginx",
        &["-c", &bconf.to_string_lossy(), "-e", &dir.join("backend-stderr.log").to_string_lossy()],
        &dir.join("backend.out"),
    ));
    for p in BACKEND_PORTS {
        wait_port(p, "backend nginx", &dir.join("backend-error.log"));
    }
    for p in API_BACKEND_PORTS {
        wait_port(p, "api backend nginx", &dir.join("backend-error.log"));
    }
    let quoted = |ports: &[u16]| ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect::<Vec<_>>().join(", ");
    let backends = quoted(&BACKEND_PORTS);
    let api_backends = quoted(&API_BACKEND_PORTS);
    let (cert, key) = certificates(dir);
    let clients = client_certificates(dir);
    // HAProxy wants the chain and the key in one file.
    let cert_and_key = dir.join("cert-and-key.pem");
    std::fs::write(
        &cert_and_key,
        format!(
            "{}{}",
            std::fs::read_to_string(&cert).expect("read cert"),
            std::fs::read_to_string(&key).expect("read key")
        ),
    )
    .expect("write cert-and-key.pem");
    let rg_conf = |admin: u16, log: &str, listeners: &str| {
        format!(
            r#"[gateway]
workers = 1
admin_listen = "127.0.0.1:{admin}"
access_log = "{log}"
{listeners}
[[backend_pool]]
name = "nginx"
addresses = [{backends}]

[[backend_pool]]
name = "empty"
addresses = []

[[backend_pool]]
name = "api"
addresses = [{api_backends}]

[[backend_http_settings]]
name = "s"
request_timeout = 30
connect_timeout = 5
max_idle_connections = 1024
"#
        )
    };
    // `http2` (on a TLS listener only): ringgate's `http2 = true`, written
    // only in the h2 mode's config, so the other modes do not depend on it.
    let listener = |name: &str, port: u16, pool: &str, tls: bool, http2: bool| {
        let tls = if tls {
            let h2 = if http2 { "http2 = true\n" } else { "" };
            format!(
                "protocol = \"https\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n{h2}",
                cert.display(),
                key.display()
            )
        } else {
            String::new()
        };
        format!(
            "\n[[listener]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n{tls}\n[[rule]]\nname = \"{name}\"\nlistener = \"{name}\"\nbackend_pool = \"{pool}\"\nbackend_http_settings = \"s\"\n"
        )
    };
    let mut listeners = [
        listener("bench", RINGGATE_PORT, "nginx", false, false),
        listener("fast502", RINGGATE_502_PORT, "empty", false, false),
        listener("tls", RINGGATE_TLS_PORT, "nginx", true, false),
        ringgate_route(),
    ]
    .concat();
    // The mtls mode's listener, in that mode's config only: the other
    // modes' ringgate is the same as before mutual TLS existed (and an
    // older ringgate can still run them).
    if mtls {
        let l = listener("mtls", RINGGATE_MTLS_PORT, "nginx", true, false);
        let (head, rule) = l.split_once("\n[[rule]]").expect("a listener and its rule");
        let _ = write!(
            listeners,
            "{head}trusted_client_certificates = \"{}\"\nclient_certificate = \"required\"\n\n[[rule]]{rule}",
            clients.ca.display()
        );
    }
    // Writes `conf` to `stem`.toml and starts a ringgate on it, logging to
    // `stem`.log; returns the config and log paths.
    let start_ringgate = |procs: &mut Vec<Proc>, label: &str, stem: &str, conf: String| {
        let path = dir.join(format!("{stem}.toml"));
        std::fs::write(&path, conf).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let log = dir.join(format!("{stem}.log"));
        procs.push(spawn(
            label,
            &o.proxy_cpu,
            &o.ringgate.to_string_lossy(),
            &["run", "--config", &path.to_string_lossy()],
            &log,
        ));
        (path, log)
    };
    let (_, rg_log) =
        start_ringgate(&mut procs, "ringgate", "ringgate", rg_conf(RINGGATE_ADMIN_PORT, "off", &listeners));
    wait_port(RINGGATE_PORT, "ringgate", &rg_log);
    if mtls {
        wait_port(RINGGATE_MTLS_PORT, "ringgate (mTLS listener)", &rg_log);
    }

    // The same, with the access log on (to a file), to measure its cost.
    let access = dir.join("access.log");
    let logged = rg_conf(
        RINGGATE_LOGGED_ADMIN_PORT,
        &access.display().to_string(),
        &listener("logged", RINGGATE_LOGGED_PORT, "nginx", false, false),
    );
    let (_, rg2_log) = start_ringgate(&mut procs, "ringgate+log", "ringgate-logged", logged);
    wait_port(RINGGATE_LOGGED_PORT, "ringgate with access log", &rg2_log);

    // The bulk mode's two ringgates: zero-copy bodies on (the default
    // min_body) and off, bodies of any size (1 GiB uploads), /upload/* to
    // the sink.
    if bulk {
        for (label, stem, port, admin, splice) in [
            ("ringgate (bulk)", "ringgate-bulk", RINGGATE_BULK_PORT, RINGGATE_BULK_ADMIN_PORT, true),
            ("ringgate (copy)", "ringgate-copy", RINGGATE_COPY_PORT, RINGGATE_COPY_ADMIN_PORT, false),
        ] {
            let min_body = if splice { o.bulk_min_body.as_deref() } else { None };
            let conf = rg_conf(admin, "off", &bulk::ringgate_listener(port, splice, min_body))
                .replace("request_timeout = 30\n", "request_timeout = 300\n");
            let (_, log) = start_ringgate(&mut procs, label, stem, conf);
            wait_port(port, label, &log);
        }
    }

    // The h2 mode's ringgate: HTTP/2 over TLS, a process of its own so that a
    // ringgate without HTTP/2 fails that mode only (and loudly), not the run.
    if h2 && o.keeps("ringgate") {
        let conf = rg_conf(RINGGATE_H2_ADMIN_PORT, "off", &listener("h2", RINGGATE_H2_PORT, "nginx", true, true));
        let (rg3, rg3_log) = start_ringgate(&mut procs, "ringgate (h2)", "ringgate-h2", conf);
        if !listens(RINGGATE_H2_PORT) {
            // Give the process a moment to write its last words.
            std::thread::sleep(Duration::from_millis(200));
            failures.push(format!(
                "ringgate: the h2 listener ({}) does not listen on {RINGGATE_H2_PORT}; its log:\n{}",
                rg3.display(),
                std::fs::read_to_string(&rg3_log).unwrap_or_default().trim_end()
            ));
        }
    }

    let upstream: String = BACKEND_PORTS.iter().map(|p| format!("server 127.0.0.1:{p}; ")).collect();
    let api_upstream: String = API_BACKEND_PORTS.iter().map(|p| format!("server 127.0.0.1:{p}; ")).collect();
    let nconf = dir.join("proxy-nginx.conf");
    let proxy_to = |upstream: &str| {
        format!(
            r#"proxy_pass http://{upstream}; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_connect_timeout 5s; proxy_read_timeout 30s;"#
        )
    };
    let proxy = proxy_to("backends");
    let proxy_api = proxy_to("api");
    // The same certificate and TLS settings on every TLS server block.
    let tls = format!(
        "ssl_certificate {}; ssl_certificate_key {}; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;",
        cert.display(),
        key.display()
    );
    std::fs::write(
        &nconf,
        format!(
            r#"worker_processes 1;
daemon off;
pid {d}/proxy-nginx.pid;
error_log {d}/proxy-nginx-error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections 16384; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  upstream backends {{ {upstream} keepalive 1024; }}
  upstream api {{ {api_upstream} keepalive 1024; }}
  upstream sink {{ server 127.0.0.1:{SINK_PORT}; keepalive 1024; }}
  server {{ listen 127.0.0.1:{NGINX_PORT} backlog=4096; location / {{ {proxy} }} }}
  # The bulk mode: bodies streamed both ways (no temporary files, no
  # request buffering, any size), /upload/ to the sink.
  server {{
    listen 127.0.0.1:{NGINX_BULK_PORT} backlog=4096;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_max_temp_file_size 0;
    location /upload/ {{ {proxy_sink} }}
    location / {{ {proxy} }}
  }}
  # The route mode: ringgate's path rules as locations (disjoint prefixes,
  # so nginx's longest-prefix choice is ringgate's first match).
  server {{
    listen 127.0.0.1:{NGINX_ROUTE_PORT} backlog=4096;
    location /images/ {{ {proxy} }}
    location /static/ {{ {proxy} }}
    location = /login {{ {proxy} }}
    location /api/ {{ {proxy_api} add_header X-Frame-Options DENY always; }}
    location / {{ {proxy} }}
  }}
  server {{ listen 127.0.0.1:{NGINX_502_PORT} backlog=4096; location / {{ return 502 "502 Bad Gateway\n"; }} }}
  server {{
    listen 127.0.0.1:{NGINX_TLS_PORT} ssl backlog=4096;
    {tls}
    location / {{ {proxy} }}
  }}
  # The mtls mode: the https server above, requiring a client certificate.
  server {{
    listen 127.0.0.1:{NGINX_MTLS_PORT} ssl backlog=4096;
    {tls}
    ssl_verify_client on;
    ssl_client_certificate {client_ca};
    location / {{ {proxy} }}
  }}
  # The h2 mode (keepalive_requests above also bounds an HTTP/2 connection's
  # streams: at nginx's default of 1000, h2load's connections would end).
  server {{
    listen 127.0.0.1:{NGINX_H2_PORT} ssl http2 backlog=4096;
    {tls}
    location / {{ {proxy} }}
  }}
}}
"#,
            d = dir.display(),
            client_ca = clients.ca.display(),
            nofile = idle::nofile_limits().1,
            proxy_sink = proxy_to("sink"),
        ),
    )
    .expect("write proxy nginx conf");
    let nlog = dir.join("proxy-nginx.out");
    procs.push(spawn(
        "nginx (proxy)",
        &o.proxy_cpu,
        "nginx",
        &["-c", &nconf.to_string_lossy(), "-e", &dir.join("proxy-nginx-stderr.log").to_string_lossy()],
        &nlog,
    ));
    wait_port(NGINX_PORT, "nginx proxy", &dir.join("proxy-nginx-error.log"));
    wait_port(NGINX_ROUTE_PORT, "nginx proxy (route)", &dir.join("proxy-nginx-error.log"));
    wait_port(NGINX_H2_PORT, "nginx proxy (h2)", &dir.join("proxy-nginx-error.log"));
    wait_port(NGINX_MTLS_PORT, "nginx proxy (mTLS)", &dir.join("proxy-nginx-error.log"));

    let servers: String =
        BACKEND_PORTS.iter().enumerate().map(|(i, p)| format!("  server s{i} 127.0.0.1:{p}\n")).collect();
    let api_servers: String =
        API_BACKEND_PORTS.iter().enumerate().map(|(i, p)| format!("  server a{i} 127.0.0.1:{p}\n")).collect();
    let hconf = dir.join("haproxy.cfg");
    std::fs::write(
        &hconf,
        format!(
            "global\n  nbthread 1\n  maxconn {maxconn}\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 30s\n  http-reuse always\nfrontend fe\n  bind 127.0.0.1:{HAPROXY_PORT}\n  default_backend be\nfrontend fe_h2\n  bind 127.0.0.1:{HAPROXY_H2_PORT} ssl crt {pem} alpn h2,http/1.1\n  default_backend be\nfrontend fe_tls\n  bind 127.0.0.1:{HAPROXY_TLS_PORT} ssl crt {pem}\n  default_backend be\nfrontend fe_mtls\n  bind 127.0.0.1:{HAPROXY_MTLS_PORT} ssl crt {pem} verify required ca-file {client_ca}\n  default_backend be\n{route}{bulk_fe}backend be\n  balance roundrobin\n{servers}backend be_api\n  balance roundrobin\n  http-response set-header X-Frame-Options DENY\n{api_servers}",
            route = haproxy_route(),
            bulk_fe = bulk::haproxy_frontend("fe_bulk", HAPROXY_BULK_PORT),
            maxconn = idle::budget().haproxy_maxconn,
            pem = cert_and_key.display(),
            client_ca = clients.ca.display(),
        ),
    )
    .expect("write haproxy.cfg");
    let hlog = dir.join("haproxy.log");
    procs.push(spawn("haproxy", &o.proxy_cpu, "haproxy", &["-f", &hconf.to_string_lossy()], &hlog));
    wait_port(HAPROXY_PORT, "haproxy", &hlog);
    wait_port(HAPROXY_ROUTE_PORT, "haproxy (route)", &hlog);
    wait_port(HAPROXY_H2_PORT, "haproxy (h2)", &hlog);
    wait_port(HAPROXY_TLS_PORT, "haproxy (https)", &hlog);
    wait_port(HAPROXY_MTLS_PORT, "haproxy (mTLS)", &hlog);
    if bulk {
        let conf = dir.join("haproxy-splice.cfg");
        std::fs::write(&conf, bulk::haproxy_splice_conf(dir, &servers)).expect("write haproxy-splice.cfg");
        let log = dir.join("haproxy-splice.log");
        procs.push(spawn("haproxy (splice)", &o.proxy_cpu, "haproxy", &["-f", &conf.to_string_lossy()], &log));
        wait_port(HAPROXY_SPLICE_PORT, "haproxy (splice)", &log);
    }

    // The floor: byte relays that do no HTTP work at all.
    for (name, port, recv) in
        [("relay (plain)", RELAY_PLAIN_PORT, "plain"), ("relay (multishot)", RELAY_MULTISHOT_PORT, "multishot")]
    {
        let log = dir.join(format!("relay-{recv}.log"));
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["--listen", &listen, "--recv", recv];
        let backend_args: Vec<String> = BACKEND_PORTS.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        for b in &backend_args {
            args.extend(["--backend", b.as_str()]);
        }
        procs.push(spawn(name, &o.proxy_cpu, &o.relay.to_string_lossy(), &args, &log));
        wait_port(port, name, &log);
    }
    Setup { dir: dir.to_path_buf(), procs, failures, server_ca: dir.join("ca.pem"), clients, sink }
}

/// The route mode's ringgate listener: a path-based rule whose 4th path
/// rule, `/api/*`, forwards to the api pool with a rewrite rule set that
/// adds `X-Frame-Options: DENY` to responses.
fn ringgate_route() -> String {
    format!(
        r#"
[[listener]]
name = "route"
listen = "127.0.0.1:{RINGGATE_ROUTE_PORT}"

[[rewrite_rule_set]]
name = "frame-options"

[[rewrite_rule_set.rule]]
name = "deny-framing"
sequence = 100
response_headers = {{ "X-Frame-Options" = "DENY" }}

[[url_path_map]]
name = "route"
default_backend_pool = "nginx"
default_backend_http_settings = "s"

[[url_path_map.path_rule]]
name = "images"
paths = ["/images/*"]
backend_pool = "nginx"
backend_http_settings = "s"

[[url_path_map.path_rule]]
name = "static"
paths = ["/static/*"]
backend_pool = "nginx"
backend_http_settings = "s"

[[url_path_map.path_rule]]
name = "login"
paths = ["/login"]
backend_pool = "nginx"
backend_http_settings = "s"

[[url_path_map.path_rule]]
name = "api"
paths = ["/api/*"]
backend_pool = "api"
backend_http_settings = "s"
rewrite_rule_set = "frame-options"

[[rule]]
name = "route"
listener = "route"
rule_type = "path_based"
url_path_map = "route"
"#
    )
}

/// The same in HAProxy: ACLs tried in ringgate's order (`-i`: ringgate's
/// path rules ignore case), the api backend setting the header.
fn haproxy_route() -> String {
    format!(
        "frontend fe_route\n  bind 127.0.0.1:{HAPROXY_ROUTE_PORT}\n  acl images path_beg -i /images/\n  acl static path_beg -i /static/\n  acl login path -i /login\n  acl api path_beg -i /api/\n  use_backend be if images\n  use_backend be if static\n  use_backend be if login\n  use_backend be_api if api\n  default_backend be\n"
    )
}

/// The status and header fields (names lowercased) of the answer to `GET
/// path` on `port`.
fn get_head(port: u16, path: &str) -> Result<(u16, Vec<(String, String)>), String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    // One write: the request in one segment, as wrk sends it.
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("closed before a whole response head: {:?}", String::from_utf8_lossy(&buf))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e} (after {:?})", String::from_utf8_lossy(&buf))),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status =
        status_line.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or(format!("status line {status_line:?}"))?;
    let fields = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, fields))
}

/// What the route mode demands of a proxy on `port`: `/api/item` answered
/// by the api pool with exactly one `X-Frame-Options: DENY`; `/` and
/// `/login` answered by the default pool without it. Returns the failures.
fn check_route(port: u16) -> Vec<String> {
    let mut bad = Vec::new();
    for (path, api) in [(ROUTE_PATH, true), ("/", false), ("/login", false)] {
        let (status, fields) = match get_head(port, path) {
            Ok(h) => h,
            Err(e) => {
                bad.push(format!("GET {path}: {e}"));
                continue;
            }
        };
        let values = |name: &str| fields.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        let shown = || fields.iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>().join("; ");
        if status != 200 {
            bad.push(format!("GET {path}: status {status}, expected 200 ({})", shown()));
        }
        let pool = values("x-pool");
        let frame = values("x-frame-options");
        if api {
            if pool != ["api"] {
                bad.push(format!("GET {path}: not answered by the api pool (no `X-Pool: api`; {})", shown()));
            }
            if frame != ["DENY"] {
                bad.push(format!(
                    "GET {path}: X-Frame-Options is {frame:?}, expected exactly [\"DENY\"] ({})",
                    shown()
                ));
            }
        } else {
            if !pool.is_empty() {
                bad.push(format!("GET {path}: answered by the api pool, expected the default one ({})", shown()));
            }
            if !frame.is_empty() {
                bad.push(format!(
                    "GET {path}: X-Frame-Options {frame:?} set outside the /api/ path rule ({})",
                    shown()
                ));
            }
        }
    }
    bad
}

/// Pids to measure for each proxy.
fn proxy_pids(setup: &Setup) -> BTreeMap<&'static str, Vec<u32>> {
    let mut m = BTreeMap::new();
    for p in &setup.procs {
        let pid = p.child.id();
        match p.name.as_str() {
            "ringgate" => {
                m.insert("ringgate", vec![pid]);
            }
            "ringgate+log" => {
                m.insert("ringgate+log", vec![pid]);
            }
            "ringgate (h2)" => {
                m.insert("ringgate (h2)", vec![pid]);
            }
            "ringgate (bulk)" => {
                m.insert("ringgate (bulk)", vec![pid]);
            }
            "ringgate (copy)" => {
                m.insert("ringgate (copy)", vec![pid]);
            }
            "haproxy (splice)" => {
                m.insert("haproxy (splice)", vec![pid]);
            }
            "nginx (proxy)" => {
                // taskset execs nginx in place; the workers are its children.
                let kids = children_of(pid);
                m.insert("nginx", if kids.is_empty() { vec![pid] } else { kids });
            }
            "haproxy" => {
                m.insert("haproxy", vec![pid]);
            }
            "relay (plain)" => {
                m.insert("relay (plain)", vec![pid]);
            }
            "relay (multishot)" => {
                m.insert("relay (multishot)", vec![pid]);
            }
            _ => {}
        }
    }
    m
}

struct Table {
    title: String,
    rows: Vec<(String, Vec<Sample>)>,
}

fn render(t: &Table) -> String {
    render_versus(t, None)
}

/// The table, its ratio columns comparing with the row named `versus`
/// when given, else with the best peer.
fn render_versus(t: &Table, versus: Option<&str>) -> String {
    render_against(t, &[versus])
}

/// The table with a pair of ratio columns (CPU, p99) per entry of
/// `against`: the row of that name, or (`None`) the best peer.
fn render_against(t: &Table, against: &[Option<&str>]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "### {}\n", t.title);
    let mut head = String::from(
        "| proxy | req/s (median) | p50 | p99 | CPU µs/req (user+sys) | user | sys | socket errors | non-2xx |",
    );
    let mut rule = String::from("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for versus in against {
        let vs = versus.unwrap_or("best peer");
        let _ = write!(head, " CPU vs {vs} | p99 vs {vs} |");
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(o, "{head}\n{rule}");
    let med = |s: &[Sample], f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
    let cpu = |s: &[Sample]| med(s, |x| x.user_us_per_req + x.sys_us_per_req);
    // (best CPU, best p99) of each comparison's peers.
    let bests: Vec<(f64, f64)> = against
        .iter()
        .map(|versus| {
            // Peers are the other proxies; ringgate's own variants and the relays (a floor, not a proxy) are not.
            let mut peers: Vec<&(String, Vec<Sample>)> = match versus {
                Some(v) => t.rows.iter().filter(|(n, _)| n == v).collect(),
                None => t.rows.iter().filter(|(n, _)| !n.starts_with("ringgate") && !n.starts_with("relay")).collect(),
            };
            if peers.is_empty() {
                // A ringgate-only table (the access log's cost): compare with its first row.
                peers = t.rows.iter().take(1).collect();
            }
            let best_cpu = peers.iter().map(|(_, s)| cpu(s)).fold(f64::INFINITY, f64::min);
            let best_p99 = peers.iter().map(|(_, s)| med(s, |x| x.p99_us)).fold(f64::INFINITY, f64::min);
            (best_cpu, best_p99)
        })
        .collect();
    for (name, s) in &t.rows {
        let c = cpu(s);
        let p99 = med(s, |x| x.p99_us);
        let _ = write!(
            o,
            "| {name} | {:.0} | {:.0} µs | {:.0} µs | {:.2} | {:.2} | {:.2} | {} | {} |",
            med(s, |x| x.rps),
            med(s, |x| x.p50_us),
            p99,
            c,
            med(s, |x| x.user_us_per_req),
            med(s, |x| x.sys_us_per_req),
            s.iter().map(|x| x.errors).sum::<u64>(),
            s.iter().map(|x| x.non2xx).sum::<u64>(),
        );
        for (best_cpu, best_p99) in &bests {
            let _ = write!(o, " {:.2}× | {:.2}× |", c / best_cpu, p99 / best_p99);
        }
        o.push('\n');
    }
    o
}

fn interleaved(o: &Opts, conns: u32, targets: &[(&str, u16, Vec<u32>)]) -> Vec<(String, Vec<Sample>)> {
    interleaved_load(o, conns, targets, Load::Http, "/")
}

fn interleaved_load(
    o: &Opts,
    conns: u32,
    targets: &[(&str, u16, Vec<u32>)],
    load: Load,
    path: &str,
) -> Vec<(String, Vec<Sample>)> {
    interleaved_script(o, conns, targets, load, path, None)
}

/// `interleaved_load` with a wrk Lua script.
fn interleaved_script(
    o: &Opts,
    conns: u32,
    targets: &[(&str, u16, Vec<u32>)],
    load: Load,
    path: &str,
    script: Option<&Path>,
) -> Vec<(String, Vec<Sample>)> {
    let targets: Vec<&(&str, u16, Vec<u32>)> = targets.iter().filter(|(n, ..)| o.keeps(n)).collect();
    // Warm-up: connections, pools and caches everywhere.
    for (_, port, pids) in &targets {
        let short = Opts { duration: 1, ..o.clone() };
        let _ = run_wrk_script(&short, *port, path, conns, pids, load, script);
    }
    let mut rows: Vec<(String, Vec<Sample>)> = targets.iter().map(|(n, _, _)| (n.to_string(), Vec::new())).collect();
    for round in 0..o.rounds {
        for (i, (name, port, pids)) in targets.iter().enumerate() {
            let s = run_wrk_script(o, *port, path, conns, pids, load, script);
            s.report(round + 1, name, "req");
            rows[i].1.push(s);
        }
    }
    rows
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let version = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .map(|o| {
                let t = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
                t.lines().next().unwrap_or("").trim().to_string()
            })
            .unwrap_or_default()
    };
    format!(
        "{cores} cores ({cpu}), Linux {kernel}; {}; {}; {}; {}",
        version("nginx", "-v"),
        version("haproxy", "-v"),
        version("wrk", "-v").split(" [").next().unwrap_or(""),
        version("h2load", "--version")
    )
}

fn main() {
    let o = parse_args();
    // The idle mode's thousands of connections: every process started
    // from here (the proxies, idleconns) inherits the raised soft limit.
    idle::raise_nofile();
    let mut tools = vec!["nginx", "haproxy", "taskset"];
    if o.modes.iter().any(|m| m != "h2" && m != "mtls") {
        tools.push("wrk");
    }
    if o.modes.iter().any(|m| m == "h2") {
        tools.push("h2load");
    }
    for tool in tools {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .map(|x| !x.status.success())
            .unwrap_or(true)
        {
            eprintln!("compare: {tool} is missing: run bench/compare.sh, which installs it");
            std::process::exit(2);
        }
    }
    if !o.ringgate.exists() {
        eprintln!("compare: {} is missing: build it with `cargo build --release -p ringgate`", o.ringgate.display());
        std::process::exit(2);
    }
    if o.modes.iter().any(|m| m == "mtls") && !o.tlsload.exists() {
        eprintln!(
            "compare: {} is missing: build it with `cargo build --release -p ringgate-bench`",
            o.tlsload.display()
        );
        std::process::exit(2);
    }
    if o.modes.iter().any(|m| m == "idle") && !o.idleconns.exists() {
        eprintln!(
            "compare: {} is missing: build it with `cargo build --release -p ringgate-bench`",
            o.idleconns.display()
        );
        std::process::exit(2);
    }
    if !o.relay.exists() {
        eprintln!("compare: {} is missing: build it with `cargo build --release -p ringgate-bench`", o.relay.display());
        std::process::exit(2);
    }
    let ports = [
        BACKEND_PORTS[0],
        BACKEND_PORTS[1],
        RINGGATE_PORT,
        NGINX_PORT,
        HAPROXY_PORT,
        RINGGATE_502_PORT,
        NGINX_502_PORT,
        RINGGATE_ADMIN_PORT,
        RINGGATE_TLS_PORT,
        NGINX_TLS_PORT,
        RINGGATE_LOGGED_PORT,
        RINGGATE_LOGGED_ADMIN_PORT,
        RELAY_PLAIN_PORT,
        RELAY_MULTISHOT_PORT,
        API_BACKEND_PORTS[0],
        API_BACKEND_PORTS[1],
        RINGGATE_ROUTE_PORT,
        NGINX_ROUTE_PORT,
        HAPROXY_ROUTE_PORT,
        RINGGATE_H2_PORT,
        NGINX_H2_PORT,
        HAPROXY_H2_PORT,
        RINGGATE_H2_ADMIN_PORT,
        HAPROXY_TLS_PORT,
        RINGGATE_MTLS_PORT,
        NGINX_MTLS_PORT,
        HAPROXY_MTLS_PORT,
        RINGGATE_BULK_PORT,
        RINGGATE_COPY_PORT,
        NGINX_BULK_PORT,
        HAPROXY_BULK_PORT,
        HAPROXY_SPLICE_PORT,
        RINGGATE_BULK_ADMIN_PORT,
        RINGGATE_COPY_ADMIN_PORT,
        SINK_PORT,
    ];
    let taken: Vec<u16> = ports.iter().copied().filter(|p| !port_free(*p)).collect();
    if !taken.is_empty() {
        eprintln!("compare: ports {taken:?} are taken; refusing to start (stop what listens there)");
        std::process::exit(2);
    }
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let dir = o.out.join(format!("run-{stamp}"));
    std::fs::create_dir_all(&dir).expect("results dir");
    // nginx reads relative paths against its own prefix: hand it absolute ones.
    let dir = std::fs::canonicalize(&dir).expect("results dir path");
    let mut report = String::new();
    let _ = writeln!(report, "## ringgate vs nginx vs HAProxy\n");
    let _ = writeln!(
        report,
        "Machine: {}. wrk (h2load in the h2 mode, tlsload in the mtls mode) and the two nginx backends pinned to CPU {}, each proxy to CPU {} with one worker; {} interleaved rounds of {} s per proxy; medians. CPU µs/req is the proxy's user+system time from /proc/<pid>/stat over the round divided by the requests wrk completed (h2 mode: over h2load's measured phase, after its warm-up, divided by the requests it logged; mtls mode: over each tlsload run, divided by the handshakes answered).\n",
        machine(),
        o.load_cpu,
        o.proxy_cpu,
        o.rounds,
        o.duration
    );
    // A check that failed: the run stops after that mode, exit status 1.
    let mut failed: Option<String> = None;
    for mode in &o.modes {
        let setup = start_all(&o, &dir, mode);
        let pids = proxy_pids(&setup);
        let all = |conns: u32| -> Vec<(&str, u16, Vec<u32>)> {
            vec![
                ("ringgate", RINGGATE_PORT, pids["ringgate"].clone()),
                ("nginx", NGINX_PORT, pids["nginx"].clone()),
                ("haproxy", HAPROXY_PORT, pids["haproxy"].clone()),
            ]
            .into_iter()
            .filter(|_| conns > 0)
            .collect()
        };
        eprintln!("mode {mode}:");
        let table = match mode.as_str() {
            "small" => Some(Table {
                title: "Proxied small response (13 B body), 64 connections".into(),
                rows: interleaved(&o, 64, &all(64)),
            }),
            "c256" => Some(Table {
                title: "Proxied small response, 256 connections".into(),
                rows: interleaved(&o, 256, &all(256)),
            }),
            "c1024" => Some(Table {
                title: "Proxied small response, 1024 connections".into(),
                rows: interleaved(&o, 1024, &all(1024)),
            }),
            "body64k" => Some(Table {
                title: "Proxied 64 KiB response, 64 connections".into(),
                rows: interleaved(&o, 64, &all(64)),
            }),
            "fast502" => {
                let targets = vec![
                    ("ringgate 502", RINGGATE_502_PORT, pids["ringgate"].clone()),
                    ("nginx return 502", NGINX_502_PORT, pids["nginx"].clone()),
                ];
                Some(Table {
                    title: "Fast-path 502 (ringgate: empty pool; nginx: `return 502`), 64 connections".into(),
                    rows: interleaved(&o, 64, &targets),
                })
            }
            "https" => {
                let targets = vec![
                    ("ringgate", RINGGATE_TLS_PORT, pids["ringgate"].clone()),
                    ("nginx", NGINX_TLS_PORT, pids["nginx"].clone()),
                ];
                let keep = Table {
                    title: "HTTPS, keep-alive (TLS 1.3, same certificate), 64 connections: requests/s".into(),
                    rows: interleaved_load(&o, 64, &targets, Load::Https, "/"),
                };
                let text = render(&keep);
                eprintln!("{text}");
                report.push_str(&text);
                report.push('\n');
                Some(Table {
                    title: "HTTPS, a new connection per request, 16 connections (wrk resumes each connection's TLS session, so these are mostly resumptions; --mode mtls measures full handshakes): req/s = handshakes/s, CPU µs per handshake".into(),
                    rows: interleaved_load(&o, 16, &targets, Load::HttpsHandshakes, "/"),
                })
            }
            "log" => {
                let targets = vec![
                    ("ringgate (log off)", RINGGATE_PORT, pids["ringgate"].clone()),
                    ("ringgate+log", RINGGATE_LOGGED_PORT, pids["ringgate+log"].clone()),
                ];
                Some(Table {
                    title: "Access log cost: the same ringgate with the JSON access log to a file, 64 connections (the ratio columns compare with the log-off run)".into(),
                    rows: interleaved(&o, 64, &targets),
                })
            }
            "floor" | "floor1024" => {
                let conns = if mode == "floor" { 64 } else { 1024 };
                let mut targets = all(conns);
                targets.push(("relay (plain)", RELAY_PLAIN_PORT, pids["relay (plain)"].clone()));
                targets.push(("relay (multishot)", RELAY_MULTISHOT_PORT, pids["relay (multishot)"].clone()));
                let t = Table {
                    title: format!(
                        "The floor: byte relays on io_uring that parse nothing (bench/src/bin/relay.rs; a backend connection per client connection, plain or multishot receives) beside the proxies, small response, {conns} connections (ratios compare with the best of nginx and HAProxy, and with the multishot relay)"
                    ),
                    rows: interleaved(&o, conns, &targets),
                };
                let text = render_against(&t, &[None, Some("relay (multishot)")]);
                eprintln!("{text}");
                report.push_str(&text);
                report.push('\n');
                None
            }
            "route" => {
                let targets: Vec<(&str, u16, Vec<u32>)> = vec![
                    ("ringgate", RINGGATE_ROUTE_PORT, pids["ringgate"].clone()),
                    ("nginx", NGINX_ROUTE_PORT, pids["nginx"].clone()),
                    ("haproxy", HAPROXY_ROUTE_PORT, pids["haproxy"].clone()),
                ];
                let mut failures = Vec::new();
                for (name, port, _) in targets.iter().filter(|(n, ..)| o.keeps(n)) {
                    let bad = check_route(*port);
                    if bad.is_empty() {
                        eprintln!(
                            "  route check {name}: ok (GET {ROUTE_PATH}: api pool, X-Frame-Options: DENY; / and /login: default pool, no header)"
                        );
                    }
                    for b in bad {
                        eprintln!("  route check {name}: FAILED: {b}");
                        failures.push(format!("{name}: {b}"));
                    }
                }
                if failures.is_empty() {
                    Some(Table {
                        title: format!(
                            "Path rule + a response header set (`GET {ROUTE_PATH}` matched by `/api/*` after 3 other path rules, to a second pool; `X-Frame-Options: DENY` added: ringgate rewrite rule set, nginx `add_header`, HAProxy `http-response set-header`), small response, 64 connections"
                        ),
                        rows: interleaved_load(&o, 64, &targets, Load::Http, ROUTE_PATH),
                    })
                } else {
                    failed = Some(format!(
                        "mode route: not measured, the proxies' answers are wrong:\n{}",
                        failures.join("\n")
                    ));
                    None
                }
            }
            "mtls" => {
                let failures = mtls_mode(&o, &setup, &pids, &mut report);
                if !failures.is_empty() {
                    failed = Some(format!("mode mtls: not measured (or not to the end):\n{}", failures.join("\n")));
                }
                None
            }
            "h2" => {
                let failures = h2_mode(&o, &setup, &pids, &mut report);
                if !failures.is_empty() {
                    failed = Some(format!("mode h2: not measured (or not to the end):\n{}", failures.join("\n")));
                }
                None
            }
            "idle" => {
                let failures = idle::idle_mode(&o, &setup, &pids, &mut report);
                if !failures.is_empty() {
                    failed = Some(format!("mode idle: {}", failures.join("\n")));
                }
                None
            }
            "bulk" => {
                let failures = bulk::bulk_mode(&o, &setup, &pids, &mut report);
                if !failures.is_empty() {
                    failed = Some(format!("mode bulk: checks failed:\n{}", failures.join("\n")));
                }
                None
            }
            other => {
                eprintln!("compare: unknown mode {other}");
                None
            }
        };
        if let Some(t) = table {
            let text = render(&t);
            eprintln!("{text}");
            report.push_str(&text);
            report.push('\n');
        }
        drop(setup.procs);
        drop(setup.sink);
        let _ = setup.dir;
        if failed.is_some() {
            break;
        }
    }
    if let Some(f) = &failed {
        let _ = writeln!(report, "### FAILED\n\n{f}\n");
    }
    let path = dir.join("report.md");
    std::fs::write(&path, &report).expect("write report");
    println!("{report}");
    eprintln!("report written to {}", path.display());
    if let Some(f) = failed {
        eprintln!("compare: {f}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-thread server answering each of `n` connections with
    /// `answer(path)` as the whole response.
    fn fake(n: usize, answer: fn(&str) -> String) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(n) {
                let mut s = s.unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.ends_with(b"\r\n\r\n") {
                    let got = s.read(&mut buf).unwrap();
                    assert!(got > 0, "closed mid-request");
                    req.extend_from_slice(&buf[..got]);
                }
                let req = String::from_utf8_lossy(&req).into_owned();
                let path = req.split(' ').nth(1).unwrap_or("/").to_string();
                let _ = s.write_all(answer(&path).as_bytes());
            }
        });
        port
    }

    #[test]
    fn h2load_summary_and_log_are_read() {
        let text = "starting benchmark...\nTLS Protocol: TLSv1.3\nApplication protocol: h2\n\nfinished in 3.00s, 50379.50 req/s, 3.84MB/s\nrequests: 100759 total, 100760 started, 100759 done, 100758 succeeded, 1 failed, 0 errored, 2 timeout\nstatus codes: 100758 2xx, 0 3xx, 1 4xx, 0 5xx\ntraffic: 6.27MB (6572749) total, 10.74KB (11000) headers (space savings 39.56%), 6.25MB (6553600) data\n";
        let h = parse_h2load(text);
        assert_eq!(h.protocol.as_deref(), Some("h2"));
        assert_eq!(h.rps, 50379.5);
        assert_eq!((h.done, h.failed, h.errored, h.timeout), (100759, 1, 0, 2));
        assert_eq!(h.status, [100758, 0, 1, 0]);
        assert_eq!(h.data, 6553600);
        // HTTP/1.1 after ALPN: no h2.
        let h1 = parse_h2load("Application protocol: http/1.1\n");
        assert_eq!(h1.protocol.as_deref(), Some("http/1.1"));

        let log = parse_h2_log("1796307501855083\t200\t577\n1796307501855084\t502\t702\nnot a row\n");
        assert_eq!(log, vec![(1796307501855083, 200, 577), (1796307501855084, 502, 702)]);

        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 0.50), 50.0);
        assert_eq!(quantile(&[7], 0.99), 7.0);
        assert!(quantile(&[], 0.99).is_nan());

        let samples = [(1000, 0, 0), (2000, 100, 10), (3000, 300, 30)];
        assert_eq!(cpu_at(&samples, 500), (0.0, 0.0));
        assert_eq!(cpu_at(&samples, 1500), (50.0, 5.0));
        assert_eq!(cpu_at(&samples, 2500), (200.0, 20.0));
        assert_eq!(cpu_at(&samples, 9000), (300.0, 30.0));
    }

    #[test]
    fn a_tlsload_round_with_errors_or_other_answers_makes_no_row() {
        let clean =
            parse_tlsload("done 4862\nnon200 0\nerrors 0\nelapsed_us 5003117\nrps 971.8\np50_us 14980\np99_us 41020\n");
        assert_eq!((clean.done, clean.sample.errors, clean.sample.non2xx), (4862, 0, 0));
        assert_eq!((clean.sample.rps, clean.sample.p50_us, clean.sample.p99_us), (971.8, 14980.0, 41020.0));
        assert_eq!(valid_tls_round("nginx mTLS", "round 1", &clean), Ok(()));

        let refused = parse_tlsload(
            "done 4800\nnon200 3\nerrors 1\nrps 960.0\nfirst_error connect: Connection refused (os error 111)\nfirst_non200 HTTP/1.1 400 Bad Request\n",
        );
        let e = valid_tls_round("ringgate mTLS", "round 2", &refused).unwrap_err();
        assert!(e.starts_with("ringgate mTLS (round 2): 1 errors and 3 non-200 answers beside 4800 whole 200s"), "{e}");
        assert!(e.contains("first error: connect: Connection refused") && e.contains("400 Bad Request"), "{e}");
        // Nothing answered is no row either.
        assert!(valid_tls_round("haproxy", "warm-up", &parse_tlsload("done 0\nnon200 0\nerrors 0\n")).is_err());
    }

    #[test]
    fn the_mtls_cost_is_each_proxys_difference_and_its_ratio_to_nginxs() {
        let s = |cpu: f64| Sample { rps: 1000.0, user_us_per_req: cpu, ..Sample::default() };
        let control = vec![("ringgate".to_string(), vec![s(200.0)]), ("nginx".to_string(), vec![s(300.0)])];
        let mtls = vec![("ringgate mTLS".to_string(), vec![s(260.0)]), ("nginx mTLS".to_string(), vec![s(420.0)])];
        let text = render_mtls_cost(&control, &mtls);
        assert!(text.contains("| ringgate | 1000 | 1000 | 200.00 | 260.00 | 1.30× | 60.00 | 0.50× |"), "{text}");
        assert!(text.contains("| nginx | 1000 | 1000 | 300.00 | 420.00 | 1.40× | 120.00 | 1.00× |"), "{text}");
    }

    #[test]
    fn route_check_passes_only_a_proxy_that_routes_and_sets_the_header() {
        let right = fake(3, |p| {
            let extra = if p.starts_with("/api/") { "X-Pool: api\r\nX-Frame-Options: DENY\r\n" } else { "" };
            format!("HTTP/1.1 200 OK\r\n{extra}Content-Length: 0\r\n\r\n")
        });
        assert_eq!(check_route(right), Vec::<String>::new());

        // No rewrite applied: the header is missing.
        let no_header = fake(3, |p| {
            let extra = if p.starts_with("/api/") { "X-Pool: api\r\n" } else { "" };
            format!("HTTP/1.1 200 OK\r\n{extra}Content-Length: 0\r\n\r\n")
        });
        let bad = check_route(no_header);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].contains("X-Frame-Options is []"), "{bad:?}");

        // Everything to the default pool, the header everywhere.
        let wrong = fake(3, |_| "HTTP/1.1 200 OK\r\nX-Frame-Options: DENY\r\nContent-Length: 0\r\n\r\n".into());
        let bad = check_route(wrong);
        assert!(bad.iter().any(|b| b.contains("not answered by the api pool")), "{bad:?}");
        assert!(bad.iter().any(|b| b.contains("GET /login: X-Frame-Options")), "{bad:?}");

        // A 502 is not an answer.
        let down = fake(3, |_| "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".into());
        assert!(check_route(down).iter().any(|b| b.contains("status 502")));
    }
}
