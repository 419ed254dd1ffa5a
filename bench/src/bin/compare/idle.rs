//! The idle mode: resident memory per idle keep-alive connection, for
//! ringgate, nginx and HAProxy in turn in the same run. A load generator
//! of its own (bench/src/bin/idleconns.rs, pinned to the load CPU) opens N
//! connections, each serving one `GET /` and then staying open; meanwhile
//! wrk checks that normal requests are still served (p99), and after they
//! close the proxy's RSS must come back to within 10 % of its baseline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{HAPROXY_PORT, Load, NGINX_PORT, Opts, RINGGATE_PORT, Sample, Setup, rss_kib, run_wrk};

/// At most this many idle connections (the "about 9,000").
const IDLE_MAX: u64 = 9000;
/// File descriptors HAProxy keeps beside its 2 per connection of maxconn
/// (listeners, pollers, logs...): what its computed limit must leave.
const HAPROXY_FD_SLACK: u64 = 1000;
/// Connections of HAProxy's maxconn kept beyond the idle ones: the wrk load
/// (64) and the proxies' backend connections.
const CONN_SLACK: u64 = 500;
/// wrk's connections while the idle ones are open.
const LOAD_CONNS: u32 = 64;

/// RLIMIT_NOFILE: (soft, hard).
pub fn nofile_limits() -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit writes into the rlimit it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0;
    if ok { (r.rlim_cur, r.rlim_max) } else { (1024, 1024) }
}

/// Raises the soft RLIMIT_NOFILE to the hard one (inherited by children).
pub fn raise_nofile() {
    let (soft, hard) = nofile_limits();
    if soft < hard {
        let r = libc::rlimit { rlim_cur: hard, rlim_max: hard };
        #[allow(unsafe_code)]
        // SAFETY: setrlimit reads the rlimit it is given.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
        if rc != 0 {
            eprintln!("compare: could not raise the open files soft limit from {soft} to {hard}");
        }
    }
}

/// How many idle connections this machine allows, and HAProxy's maxconn.
#[derive(Debug, Clone)]
pub struct Budget {
    pub n: u64,
    pub haproxy_maxconn: u64,
    pub why: String,
}

/// HAProxy takes about 2 file descriptors per connection of its maxconn
/// (a client side and a server side) and refuses to start beyond the hard
/// limit, which binds hardest of the three proxies: maxconn = (hard −
/// 1000) / 2, and N leaves 500 of it to the wrk load and backend
/// connections, at most 9,000.
pub fn budget() -> Budget {
    let (_, hard) = nofile_limits();
    let haproxy_maxconn = (hard.saturating_sub(HAPROXY_FD_SLACK) / 2).max(CONN_SLACK + 100);
    let n = IDLE_MAX.min(haproxy_maxconn - CONN_SLACK);
    let why = format!(
        "the open files hard limit (RLIMIT_NOFILE) is {hard} per process; HAProxy needs about 2 descriptors per connection of its maxconn, so maxconn = ({hard} − {HAPROXY_FD_SLACK}) / 2 = {haproxy_maxconn}, and N = min({IDLE_MAX}, maxconn − {CONN_SLACK} for the wrk load and backend connections) = {n}; nginx gets worker_rlimit_nofile {hard}, ringgate and idleconns the soft limit raised to {hard}"
    );
    Budget { n, haproxy_maxconn, why }
}

/// The sum of the RSS of `pids`, KiB.
fn rss(pids: &[u32]) -> u64 {
    pids.iter().map(|&p| rss_kib(p)).sum()
}

/// One proxy's measurement.
#[derive(Debug, Clone, Default)]
struct Row {
    name: String,
    n: u64,
    before: u64,
    with: u64,
    after: u64,
    /// Idle connections the proxy still held open after the load.
    open_after_load: u64,
    load: Sample,
}

impl Row {
    fn per_conn_kib(&self) -> f64 {
        (self.with as f64 - self.before as f64) / self.n as f64
    }

    fn returned(&self) -> bool {
        self.after as f64 <= self.before as f64 * 1.10
    }
}

/// idleconns, started: its stdin (a `check` line asks how many are still
/// open; closing it closes them) and its stdout.
struct Idle {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Idle {
    fn line(&mut self) -> Result<String, String> {
        let mut l = String::new();
        match self.out.read_line(&mut l) {
            Ok(0) => Err("idleconns exited".into()),
            Ok(_) => Ok(l.trim().to_string()),
            Err(e) => Err(format!("read idleconns: {e}")),
        }
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn measure(o: &Opts, name: &str, port: u16, pids: &[u32], n: u64) -> Result<Row, String> {
    // Warm-up, so the baseline has what the load itself needs.
    let short = Opts { duration: 1, ..o.clone() };
    let _ = run_wrk(&short, port, "/", LOAD_CONNS, pids, Load::Http);
    std::thread::sleep(Duration::from_secs(1));
    let before = rss(pids);
    let mut child = Command::new("taskset")
        .args(["-c", &o.load_cpu])
        .arg(&o.idleconns)
        .args(["--port", &port.to_string(), "--count", &n.to_string(), "--hold", "300"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start {}: {e}", o.idleconns.display()))?;
    let out = BufReader::new(child.stdout.take().ok_or("idleconns stdout")?);
    let mut idle = Idle { child, out };
    let ready = idle.line()?;
    if ready != format!("ready {n}") {
        idle.finish();
        return Err(format!("{name}: idleconns could not open {n} connections: {ready}"));
    }
    std::thread::sleep(Duration::from_secs(1));
    let with = rss(pids);
    let load = run_wrk(o, port, "/", LOAD_CONNS, pids, Load::Http);
    load.report(1, name, "req");
    let check = (|| {
        let stdin = idle.child.stdin.as_mut().ok_or("idleconns stdin")?;
        writeln!(stdin, "check").map_err(|e| format!("idleconns: {e}"))?;
        stdin.flush().map_err(|e| format!("idleconns: {e}"))?;
        idle.line()
    })();
    idle.finish();
    let check = check?;
    // "open K closed C"
    let open_after_load = check.split_whitespace().nth(1).and_then(|k| k.parse().ok()).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    let after = rss(pids);
    Ok(Row { name: name.to_string(), n, before, with, after, open_after_load, load })
}

fn render(rows: &[Row], b: &Budget, o: &Opts) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Memory per idle keep-alive connection: N connections from idleconns (bench/src/bin/idleconns.rs, pinned to CPU {}), each served one `GET /` and then held open; meanwhile wrk, {LOAD_CONNS} connections, {} s on `/`\n",
        o.load_cpu, o.duration
    );
    let _ = writeln!(s, "N = {}: {}.\n", b.n, b.why);
    let mut head = String::from(
        "| proxy | N | still open after the load | RSS before (KiB) | RSS with N (KiB) | RSS after they close (KiB) | KiB per connection |",
    );
    let mut rule = String::from("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = write!(head, " ÷ {}'s |", r.name);
        rule.push_str("---:|");
    }
    head.push_str(" req/s meanwhile | p99 meanwhile | socket errors | RSS back within 10 % |");
    rule.push_str("---:|---:|---:|---|");
    let _ = writeln!(s, "{head}\n{rule}");
    for r in rows {
        let _ = write!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.2} |",
            r.name,
            r.n,
            r.open_after_load,
            r.before,
            r.with,
            r.after,
            r.per_conn_kib()
        );
        for peer in rows {
            let _ = write!(s, " {:.2}× |", r.per_conn_kib() / peer.per_conn_kib());
        }
        let _ = writeln!(
            s,
            " {:.0} | {:.0} µs | {} | {} |",
            r.load.rps,
            r.load.p99_us,
            r.load.errors,
            if r.returned() { "yes" } else { "NO" }
        );
    }
    s
}

/// The idle mode; the failures (a proxy that could not take or hold the
/// connections, or a load beside them with errors). RSS that does not come
/// back is a result, shown in the table.
pub fn idle_mode(
    o: &Opts,
    _setup: &Setup,
    pids: &BTreeMap<&'static str, Vec<u32>>,
    report: &mut String,
) -> Vec<String> {
    let b = budget();
    eprintln!("  idle: N = {}: {}", b.n, b.why);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (name, port) in [("ringgate", RINGGATE_PORT), ("nginx", NGINX_PORT), ("haproxy", HAPROXY_PORT)] {
        if !o.keeps(name) {
            continue;
        }
        match measure(o, name, port, &pids[name], b.n) {
            Ok(r) => {
                eprintln!(
                    "  idle {name}: RSS {} KiB before, {} with {} connections ({:.2} KiB each), {} after; {} still open after the load",
                    r.before,
                    r.with,
                    r.n,
                    r.per_conn_kib(),
                    r.after,
                    r.open_after_load
                );
                if r.open_after_load != r.n {
                    failures.push(format!(
                        "{name}: closed {} of the {} idle connections",
                        r.n - r.open_after_load,
                        r.n
                    ));
                }
                if !r.returned() {
                    // A result (the table says NO), not a broken measurement.
                    eprintln!(
                        "  idle {name}: NOTE: RSS {} KiB after the connections closed, more than 10 % over the baseline {} KiB",
                        r.after, r.before
                    );
                }
                if r.load.errors > 0 || r.load.non2xx > 0 || r.load.rps == 0.0 {
                    failures.push(format!(
                        "{name}: the load beside the idle connections saw {} socket errors and {} non-2xx answers ({:.0} req/s)",
                        r.load.errors, r.load.non2xx, r.load.rps
                    ));
                }
                rows.push(r);
            }
            Err(e) => {
                eprintln!("  idle {name}: FAILED: {e}");
                failures.push(e);
            }
        }
    }
    let text = render(&rows, &b, o);
    eprintln!("{text}");
    report.push_str(&text);
    report.push('\n');
    for f in &failures {
        eprintln!("  idle: FAILED: {f}");
    }
    failures
}
