//! The bulk mode: large bodies, where ringgate's zero-copy relay
//! (`[gateway.splice]`) matters. Rows: ringgate splicing (the default
//! `min_body`), ringgate copying (`enabled = false`), nginx (bodies streamed:
//! no request buffering, no temporary files), HAProxy, and HAProxy with
//! `option splice-request` and `option splice-response` (a process of its
//! own, so its CPU is its own). Loads: GET of 16, 32 and 64 KiB random
//! bodies (around the splice threshold, which `--bulk-min-body` moves for
//! the splicing row) and of a 1 MiB one, and POST of a 1 MiB body to the
//! upload sink (a thread of the harness pinned to the load CPU that reads
//! every body whole), at
//! `BULK_CONNS` connections. Before measuring, every row must return the
//! backends' bytes exactly (twice, on one keep-alive connection) and deliver
//! an upload whose length and sha256 the sink confirms; a row that fails is
//! not measured and the mode exits with status 1. Then a 1 GiB download
//! and upload through each ringgate row, sha256 compared at both ends,
//! ringgate's RSS sampled every 100 ms.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::wire::{self, Conn, SINK_SHA_PREFIX};
use super::{
    G1_LEN, G1_PATH, HAPROXY_BULK_PORT, HAPROXY_SPLICE_PORT, Load, M1_LEN, M1_PATH, NGINX_BULK_PORT, Opts, R16K_PATH,
    R32K_PATH, R64K_PATH, RINGGATE_BULK_ADMIN_PORT, RINGGATE_BULK_PORT, RINGGATE_COPY_ADMIN_PORT, RINGGATE_COPY_PORT,
    SINK_PORT, Setup, Table, interleaved_script, render_against, rss_kib,
};

/// wrk's connections in the bulk loads: 16 × 1 MiB in flight stays well
/// inside loopback's socket memory.
const BULK_CONNS: u32 = 16;
/// The most ringgate's RSS may grow during a 1 GiB transfer.
const RSS_GROWTH_MAX_KIB: u64 = 32 * 1024;
/// A 1 GiB transfer's deadline.
const BIG_DEADLINE: Duration = Duration::from_secs(300);

/// The bulk ringgates' listener: `/upload/*` to the sink, the rest to the
/// backends; bodies of any size, zero-copy on or off.
pub fn ringgate_listener(port: u16, splice: bool, min_body: Option<&str>) -> String {
    let min_body = min_body.map(|m| format!("min_body = \"{m}\"\n")).unwrap_or_default();
    format!(
        r#"
[gateway.limits]
max_request_body = 0

[gateway.splice]
enabled = {splice}
{min_body}
[[listener]]
name = "bulk"
listen = "127.0.0.1:{port}"

[[backend_pool]]
name = "sink"
addresses = ["127.0.0.1:{SINK_PORT}"]

[[url_path_map]]
name = "bulk"
default_backend_pool = "nginx"
default_backend_http_settings = "s"

[[url_path_map.path_rule]]
name = "upload"
paths = ["/upload/*"]
backend_pool = "sink"
backend_http_settings = "s"

[[rule]]
name = "bulk"
listener = "bulk"
rule_type = "path_based"
url_path_map = "bulk"
"#
    )
}

/// A HAProxy frontend for the bulk mode, `/upload/` to the sink, and the
/// sink's backend (`be_sink`).
pub fn haproxy_frontend(name: &str, port: u16) -> String {
    format!(
        "frontend {name}\n  bind 127.0.0.1:{port}\n  acl upload path_beg /upload/\n  use_backend be_sink if upload\n  default_backend be\nbackend be_sink\n  server k0 127.0.0.1:{SINK_PORT}\n"
    )
}

/// The splicing HAProxy's whole configuration (`servers`: the backend
/// lines of `be`), with a stats socket to read its pipe counts from.
pub fn haproxy_splice_conf(dir: &Path, servers: &str) -> String {
    format!(
        "global\n  nbthread 1\n  maxconn 2000\n  stats socket {sock} mode 600 level admin\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 30s\n  http-reuse always\n  option splice-request\n  option splice-response\n{fe}backend be\n  balance roundrobin\n{servers}",
        sock = dir.join("haproxy-splice.sock").display(),
        fe = haproxy_frontend("fe_splice", HAPROXY_SPLICE_PORT),
    )
}

/// ringgate's splice counters at its admin port: (bodies spliced, bytes
/// spliced, fallbacks), each summed over its labels.
fn splice_metrics(admin: u16) -> Result<(f64, f64, f64), String> {
    let mut c = Conn::connect(admin, Duration::from_secs(5))?;
    let mut text = Vec::new();
    let (h, _) = c.exchange("GET", "/metrics", None, &mut std::io::empty(), &mut |b| {
        text.extend_from_slice(b);
        Ok(())
    })?;
    if h.status != 200 {
        return Err(format!("/metrics: status {}", h.status));
    }
    let mut m = (0.0, 0.0, 0.0);
    for line in String::from_utf8_lossy(&text).lines().filter(|l| !l.starts_with('#')) {
        let mut w = line.split_whitespace();
        let (Some(series), Some(v)) = (w.next(), w.next()) else { continue };
        let v: f64 = v.parse().unwrap_or(0.0);
        match series.split('{').next().unwrap_or("") {
            "ringgate_spliced_bodies_total" => m.0 += v,
            "ringgate_spliced_bytes_total" => m.1 += v,
            "ringgate_splice_fallbacks_total" => m.2 += v,
            _ => {}
        }
    }
    Ok(m)
}

/// HAProxy's `show info` pipe counts: (PipesUsed, PipesFree).
fn haproxy_pipes(sock: &Path) -> Result<(u64, u64), String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).map_err(|e| format!("{}: {e}", sock.display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.write_all(b"show info\n").map_err(|e| format!("stats socket: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| format!("stats socket: {e}"))?;
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    Ok((get("PipesUsed:"), get("PipesFree:")))
}

/// Where two byte strings first differ.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at byte {i}"),
        None => format!("{} bytes, {} expected (a prefix of the right bytes)", a.len(), b.len()),
    }
}

/// The pre-check of one row: both random bodies byte for byte and a 1 MiB
/// upload as the sink received it, twice on one keep-alive connection.
fn check_row(port: u16, r64k: &[u8], m1: &[u8], m1_sha: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let mut c = match Conn::connect(port, Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => return vec![e],
    };
    for round in 1..=2 {
        for (path, want) in [(R64K_PATH, r64k), (M1_PATH, m1)] {
            let mut got = Vec::with_capacity(want.len());
            match c.exchange("GET", path, None, &mut std::io::empty(), &mut |b| {
                got.extend_from_slice(b);
                Ok(())
            }) {
                Ok((h, _)) if h.status != 200 => bad.push(format!("GET {path} (#{round}): status {}", h.status)),
                Ok(_) if got != want => bad
                    .push(format!("GET {path} (#{round}): not the backend's bytes: {}", first_difference(&got, want))),
                Ok(_) => {}
                Err(e) => {
                    bad.push(format!("GET {path} (#{round}): {e}"));
                    return bad;
                }
            }
        }
        let path = format!("{SINK_SHA_PREFIX}check");
        let mut got = Vec::new();
        match c.exchange("POST", &path, Some(M1_LEN), &mut &m1[..], &mut |b| {
            got.extend_from_slice(b);
            Ok(())
        }) {
            Ok((h, _)) if h.status != 200 => bad.push(format!("POST {path} (#{round}): status {}", h.status)),
            Ok(_) => {
                let text = String::from_utf8_lossy(&got);
                if text != format!("{M1_LEN} {m1_sha}\n") {
                    bad.push(format!(
                        "POST {path} (#{round}): the sink received {:?} (length, sha256), expected {M1_LEN} {m1_sha}",
                        text.trim()
                    ));
                }
            }
            Err(e) => {
                bad.push(format!("POST {path} (#{round}): {e}"));
                return bad;
            }
        }
    }
    bad
}

/// One 1 GiB transfer's result.
#[derive(Debug, Clone, Default)]
struct Big {
    name: String,
    what: &'static str,
    status: u16,
    bytes: u64,
    sha_ok: bool,
    secs: f64,
    baseline: u64,
    max: u64,
    error: Option<String>,
}

impl Big {
    fn growth(&self) -> u64 {
        self.max.saturating_sub(self.baseline)
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(e) = &self.error {
            p.push(e.clone());
        }
        if self.error.is_none() && self.status != 200 {
            p.push(format!("status {}", self.status));
        }
        if self.error.is_none() && self.bytes != G1_LEN {
            p.push(format!("{} bytes, {G1_LEN} expected", self.bytes));
        }
        if self.error.is_none() && !self.sha_ok {
            p.push("sha256 differs".into());
        }
        if self.growth() > RSS_GROWTH_MAX_KIB {
            p.push(format!("RSS grew by {} KiB (more than {RSS_GROWTH_MAX_KIB})", self.growth()));
        }
        p
    }
}

/// Runs `f` while sampling the summed RSS of `pids` every 100 ms: its
/// result, the RSS before and the most seen.
fn sampling_rss<T>(pids: &[u32], f: impl FnOnce() -> T) -> (T, u64, u64) {
    let rss = || pids.iter().map(|&p| rss_kib(p)).sum::<u64>();
    let baseline = rss();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut max = baseline;
            while !stop.load(Ordering::SeqCst) {
                max = max.max(rss());
                std::thread::sleep(Duration::from_millis(100));
            }
            max.max(rss())
        });
        let r = f();
        stop.store(true, Ordering::SeqCst);
        let max = sampler.join().unwrap_or(baseline);
        (r, baseline, max)
    })
}

fn download(port: u16, sha: &str) -> Result<(u16, u64, bool), String> {
    let mut c = Conn::connect(port, Duration::from_secs(30))?;
    c.deadline_in(BIG_DEADLINE);
    let mut h = wire::Sha256::new()?;
    let (head, n) = c.exchange("GET", G1_PATH, None, &mut std::io::empty(), &mut |b| h.update(b))?;
    Ok((head.status, n, h.finish()? == sha))
}

fn upload(port: u16, file: &Path, sha: &str) -> Result<(u16, u64, bool), String> {
    let mut f = std::fs::File::open(file).map_err(|e| format!("open {}: {e}", file.display()))?;
    let mut c = Conn::connect(port, Duration::from_secs(30))?;
    c.deadline_in(BIG_DEADLINE);
    let mut got = Vec::new();
    let (head, _) = c.exchange("POST", &format!("{SINK_SHA_PREFIX}1g"), Some(G1_LEN), &mut f, &mut |b| {
        got.extend_from_slice(b);
        Ok(())
    })?;
    // The sink's "<length> <sha256>".
    let text = String::from_utf8_lossy(&got);
    let mut w = text.split_whitespace();
    let n = w.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    Ok((head.status, n, w.next() == Some(sha)))
}

/// The 1 GiB download and upload through each of `rows`.
fn big_transfers(dir: &Path, rows: &[(&str, u16, Vec<u32>)]) -> (String, Vec<String>) {
    let file = dir.join("www").join("1g.bin");
    eprintln!("  bulk: writing a 1 GiB random file ({})", file.display());
    let t = Instant::now();
    let sha = wire::random_file(&file, G1_LEN, 0x1_0000_0000).and_then(|()| wire::sha256_file(&file));
    let sha = match sha {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&file);
            return (String::new(), vec![format!("the 1 GiB file: {e}")]);
        }
    };
    eprintln!("  bulk: 1 GiB file written, sha256 {sha} ({:.1} s)", t.elapsed().as_secs_f64());
    let mut results = Vec::new();
    for (name, port, pids) in rows {
        for what in ["download", "upload"] {
            let t = Instant::now();
            let (r, baseline, max) = sampling_rss(pids, || match what {
                "download" => download(*port, &sha),
                _ => upload(*port, &file, &sha),
            });
            let mut b =
                Big { name: name.to_string(), what, secs: t.elapsed().as_secs_f64(), baseline, max, ..Big::default() };
            match r {
                Ok((status, bytes, sha_ok)) => {
                    b.status = status;
                    b.bytes = bytes;
                    b.sha_ok = sha_ok;
                }
                Err(e) => b.error = Some(e),
            }
            let p = b.problems();
            eprintln!(
                "  bulk 1 GiB {what} through {name}: {} in {:.1} s, RSS {} KiB → max {} KiB (+{} KiB){}",
                if p.is_empty() { "ok" } else { "FAILED" },
                b.secs,
                b.baseline,
                b.max,
                b.growth(),
                if p.is_empty() { String::new() } else { format!(": {}", p.join("; ")) }
            );
            results.push(b);
        }
    }
    let _ = std::fs::remove_file(&file);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### 1 GiB through the gateway: a random file downloaded from a backend (sha256 of the received bytes) and uploaded to the sink (sha256 computed by the sink), ringgate's RSS sampled every 100 ms; at most {} MiB of growth allowed\n",
        RSS_GROWTH_MAX_KIB / 1024
    );
    let _ = writeln!(
        s,
        "| proxy | transfer | status | bytes | sha256 | seconds | MB/s | RSS before (KiB) | RSS max (KiB) | growth (KiB) | verdict |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|");
    let mut failures = Vec::new();
    for b in &results {
        let p = b.problems();
        let verdict = if p.is_empty() { "ok".to_string() } else { format!("FAILED: {}", p.join("; ")) };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.1} | {:.0} | {} | {} | {} | {verdict} |",
            b.name,
            b.what,
            b.status,
            b.bytes,
            if b.sha_ok { "same" } else { "DIFFERS" },
            b.secs,
            b.bytes as f64 / b.secs / 1e6,
            b.baseline,
            b.max,
            b.growth()
        );
        if !p.is_empty() {
            failures.push(format!("{}: 1 GiB {}: {}", b.name, b.what, p.join("; ")));
        }
    }
    (s, failures)
}

/// The bulk mode; the failures (checks, 1 GiB transfers).
pub fn bulk_mode(o: &Opts, setup: &Setup, pids: &BTreeMap<&'static str, Vec<u32>>, report: &mut String) -> Vec<String> {
    // (row, port, pids' key, admin port)
    let all = [
        ("ringgate", RINGGATE_BULK_PORT, "ringgate (bulk)", Some(RINGGATE_BULK_ADMIN_PORT)),
        ("ringgate (copy)", RINGGATE_COPY_PORT, "ringgate (copy)", Some(RINGGATE_COPY_ADMIN_PORT)),
        ("nginx", NGINX_BULK_PORT, "nginx", None),
        ("haproxy", HAPROXY_BULK_PORT, "haproxy", None),
        ("haproxy (splice)", HAPROXY_SPLICE_PORT, "haproxy (splice)", None),
    ];
    let www = setup.dir.join("www");
    let (r64k, m1) = match (std::fs::read(www.join("r64k.bin")), std::fs::read(www.join("1m.bin"))) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return vec!["the backends' random bodies are missing".into()],
    };
    let m1_sha = match wire::sha256_bytes(&m1) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let mut failures = Vec::new();
    let mut targets: Vec<(&str, u16, Vec<u32>)> = Vec::new();
    let mut admins: Vec<(&str, u16)> = Vec::new();
    for (name, port, key, admin) in all {
        if !o.keeps(name) {
            continue;
        }
        let Some(p) = pids.get(key) else {
            eprintln!("  bulk check {name}: FAILED: not running");
            failures.push(format!("{name}: not running"));
            continue;
        };
        let bad = check_row(port, &r64k, &m1, &m1_sha);
        if bad.is_empty() {
            eprintln!(
                "  bulk check {name}: ok (GET {R64K_PATH} and {M1_PATH}: the backend's bytes; POST 1 MiB: the sink got its length and sha256; twice on one connection)"
            );
            targets.push((name, port, p.clone()));
            if let Some(a) = admin {
                admins.push((name, a));
            }
        } else {
            for b in &bad {
                eprintln!("  bulk check {name}: FAILED: {b}");
            }
            let _ = writeln!(report, "**bulk check {name} FAILED (not measured):** {}\n", bad.join("; "));
            failures.push(format!("{name}: {}", bad.join("; ")));
        }
    }
    let lua = setup.dir.join("post1m.lua");
    let script = format!(
        "wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", {M1_LEN})\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n"
    );
    if let Err(e) = std::fs::write(&lua, script) {
        failures.push(format!("write {}: {e}", lua.display()));
        return failures;
    }
    // The ratio columns: against HAProxy, and HAProxy splicing.
    let peers: Vec<Option<&str>> =
        ["haproxy", "haproxy (splice)"].into_iter().filter(|p| targets.iter().any(|t| t.0 == *p)).map(Some).collect();
    let peers = if peers.is_empty() { vec![None] } else { peers };
    let loads = [
        ("GET, a 16 KiB random response", R16K_PATH, None),
        ("GET, a 32 KiB random response", R32K_PATH, None),
        ("GET, a 64 KiB random response", R64K_PATH, None),
        ("GET, a 1 MiB random response", M1_PATH, None),
        ("POST, a 1 MiB request body to the upload sink (a 2 B answer)", "/upload/load", Some(lua.as_path())),
    ];
    let min_body = match &o.bulk_min_body {
        Some(m) => format!("min_body = \"{m}\""),
        None => "the default min_body".to_string(),
    };
    for (what, path, script) in loads {
        eprintln!("  bulk: {what}");
        let before: Vec<_> = admins.iter().map(|(n, a)| (*n, splice_metrics(*a))).collect();
        let rows = interleaved_script(o, BULK_CONNS, &targets, Load::Http, path, script);
        let t = Table {
            title: format!(
                "Bulk: {what}, {BULK_CONNS} connections (ringgate: `[gateway.splice]` on with {min_body}; ringgate (copy): `enabled = false`; nginx: `proxy_request_buffering off`, `proxy_max_temp_file_size 0`; haproxy (splice): `option splice-request`, `option splice-response`)"
            ),
            rows,
        };
        let mut text = render_against(&t, &peers);
        text.push('\n');
        for (name, b) in before {
            let after = admins.iter().find(|(n, _)| *n == name).map(|(_, a)| splice_metrics(*a));
            match (b, after) {
                (Ok(b), Some(Ok(a))) => {
                    let _ = writeln!(
                        text,
                        "- {name}: {:.0} bodies spliced ({:.1} MiB), {:.0} splice fallbacks over this table's runs (warm-up included)",
                        a.0 - b.0,
                        (a.1 - b.1) / 1048576.0,
                        a.2 - b.2
                    );
                }
                (Err(e), _) | (_, Some(Err(e))) => {
                    let _ = writeln!(text, "- {name}: splice metrics unavailable: {e}");
                }
                _ => {}
            }
        }
        eprintln!("{text}");
        report.push_str(&text);
        report.push('\n');
    }
    if targets.iter().any(|t| t.0 == "haproxy (splice)") {
        let line = match haproxy_pipes(&setup.dir.join("haproxy-splice.sock")) {
            Ok((0, 0)) => {
                "- haproxy (splice): WARNING: `show info` counts no pipe (PipesUsed 0, PipesFree 0): it did not splice"
                    .to_string()
            }
            Ok((used, free)) => {
                format!("- haproxy (splice): `show info` PipesUsed {used}, PipesFree {free} (it spliced)")
            }
            Err(e) => format!("- haproxy (splice): pipe counts unavailable: {e}"),
        };
        eprintln!("{line}");
        let _ = writeln!(report, "{line}\n");
    }
    let big: Vec<(&str, u16, Vec<u32>)> = targets.iter().filter(|t| t.0.starts_with("ringgate")).cloned().collect();
    if !big.is_empty() {
        let (text, f) = big_transfers(&setup.dir, &big);
        eprintln!("{text}");
        report.push_str(&text);
        report.push('\n');
        failures.extend(f);
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    /// A server answering GETs with `body` (of its own Content-Length) and
    /// POSTs, after reading them, with `upload_answer`.
    fn fake(body: Vec<u8>, upload_answer: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut c = Conn::from_stream_for_tests(s);
            while let Ok(Some(h)) = c.head() {
                c.body(&h, true, &mut |_| Ok(())).unwrap();
                let b: &[u8] = if h.start.starts_with("GET") { &body } else { upload_answer.as_bytes() };
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len());
                c.stream().write_all(head.as_bytes()).unwrap();
                c.stream().write_all(b).unwrap();
            }
        });
        port
    }

    #[test]
    fn the_pre_check_refuses_other_bytes_and_an_upload_the_sink_did_not_get_whole() {
        let r64k = vec![1u8; 1000];
        let m1 = vec![2u8; M1_LEN as usize];
        let sha = "ab".repeat(32);
        // Right bytes for /r64k and for /1m cannot both come from one
        // body: one GET of each round fails, and the upload answer is wrong.
        let port = fake(r64k.clone(), "5 nope\n");
        let bad = check_row(port, &r64k, &m1, &sha);
        assert!(bad.iter().any(|b| b.starts_with("GET /1m (#1): not the backend's bytes")), "{bad:?}");
        assert!(bad.iter().any(|b| b.contains("the sink received \"5 nope\"")), "{bad:?}");
        assert_eq!(bad.len(), 4, "{bad:?}");
        // A flipped byte is found.
        let mut flipped = r64k.clone();
        flipped[700] ^= 1;
        assert_eq!(first_difference(&flipped, &r64k), "first difference at byte 700");
        assert!(first_difference(&r64k[..10], &r64k).contains("a prefix"));
    }
}
