//! The gateway's own log (stderr): `RINGGATE_LOG`, else `RUST_LOG`, as its
//! filter, an invalid filter refused in words, `log_format = "json"`, and one
//! line per rejected reload.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringgate_e2e::*;

/// Runs `ringgate run` on `config` with `env` (and no `RINGGATE_LOG` unless
/// given), and collects stderr lines until `until` matches one, the process
/// exits, or 10 s pass; then stops it. Returns the lines and the exit code
/// if it exited by itself.
fn run_until(config: &str, env: &[(&str, &str)], until: impl Fn(&str) -> bool) -> (Vec<String>, Option<i32>) {
    let dir = TempDir::new("logging");
    let path = dir.path().join("ringgate.toml");
    std::fs::write(&path, config).expect("write config");
    let mut cmd = Command::new(binary());
    cmd.args(["run", "--config"]).arg(&path).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.env_remove("RINGGATE_LOG").env_remove("RUST_LOG").env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn ringgate");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    let mut code = None;
    let mut exited = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(l) => {
                let done = until(&l);
                lines.push(l);
                if done {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(s)) = child.try_wait() {
                    code = s.code();
                    break;
                }
            }
            // stderr closed: the process is exiting by itself.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                exited = true;
                break;
            }
        }
    }
    if code.is_none() && !exited {
        let _ = child.kill();
    }
    let status = child.wait().ok();
    if exited {
        code = status.and_then(|s| s.code());
    }
    (lines, code)
}

fn config() -> String {
    let b: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    simple_config(&[b], "")
}

#[test]
fn rust_log_is_honoured_and_an_invalid_filter_is_refused() {
    // RUST_LOG alone sets the filter: debug lines appear (a request to the
    // closed backend is answered 502, which is logged at debug).
    let poke = |l: &str| {
        if let Some(at) = l.find("listening on http://") {
            let addr = l[at + 20..].split_whitespace().next().unwrap_or_default();
            if let Ok(addr) = addr.parse::<std::net::SocketAddr>() {
                let _ = request(addr, "GET", "/", &[], b"");
            }
        }
        l.contains("DEBUG")
    };
    let (lines, _) = run_until(&config(), &[("RUST_LOG", "debug")], poke);
    assert!(lines.iter().any(|l| l.contains("DEBUG")), "RUST_LOG=debug gave no debug line: {lines:#?}");
    // RINGGATE_LOG wins over it.
    let (lines, _) =
        run_until(&config(), &[("RUST_LOG", "debug"), ("RINGGATE_LOG", "warn")], |l| l.contains("admin API"));
    assert!(!lines.iter().any(|l| l.contains("DEBUG") || l.contains(" INFO ")), "{lines:#?}");
    for var in ["RUST_LOG", "RINGGATE_LOG"] {
        let (lines, code) = run_until(&config(), &[(var, "info,ringgate=[bad")], |_| false);
        assert_eq!(code, Some(2), "{var}: {lines:#?}");
        let text = lines.join("\n");
        assert!(text.contains(&format!("{var}=\"info,ringgate=[bad\" is not a valid log filter")), "{text}");
    }
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let config = config().replacen("[gateway]\n", "[gateway]\nlog_format = \"json\"\n", 1);
    let (lines, _) = run_until(&config, &[("RINGGATE_LOG", "info")], |l| l.contains("admin API listening"));
    assert!(lines.iter().any(|l| l.contains("admin API listening")), "{lines:#?}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["message"].is_string() && v["timestamp"].is_string(), "{l}");
    }
}

#[test]
fn a_rejected_reload_is_one_log_line() {
    let b = Backend::builder().start().expect("backend");
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let broken = "[gateway]\nworkerz = 1\n[[listener]]\nname = \"x\"\n";
    let (status, _) = gw.reload_with(broken);
    assert_ne!(status, 200);
    assert!(gw.wait_log("reload rejected", Duration::from_secs(5)), "{}", gw.stderr());
    let stderr = gw.stderr();
    let rejected: Vec<&str> = stderr.lines().filter(|l| l.contains("reload rejected")).collect();
    assert_eq!(rejected.len(), 1, "{stderr}");
    let line = rejected[0];
    assert!(line.contains("workerz") && line.contains("listen"), "every error on the one line: {line}");
    let next = stderr.lines().skip_while(|l| !l.contains("reload rejected")).nth(1).unwrap_or_default();
    assert!(!next.starts_with("  "), "no continuation lines: {stderr}");
}
