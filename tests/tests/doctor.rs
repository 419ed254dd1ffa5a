//! `ringgate doctor` end to end: each of the reference's five causes of a 502
//! is created for real (an empty backend pool, stopped servers, nothing on the
//! default probe's port, a custom probe the servers answer 404, a server
//! slower than the request time-out), and the doctor, run as its own process
//! on the same configuration file, must name exactly that cause with the
//! evidence an operator needs, and exit 1. A healthy setup exits 0, and an
//! invalid file is reported by file, line and field.
//!
//! When a gateway runs, the doctor is pointed at its admin API with `--admin`:
//! the file says `admin_listen = "127.0.0.1:0"`, and only the gateway's log
//! knows which port that became.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringgate_e2e::certs::Ca;
use ringgate_e2e::tls_backend::TlsBackend;
use ringgate_e2e::*;
use serde_json::Value;

/// How long a probe-driven state change may take to show up (probe intervals
/// here are 100 ms).
const SOON: Duration = Duration::from_secs(5);

fn config(addresses: &[String], port: u16, settings_extra: &str, probe: Option<&str>, admin: &str) -> String {
    probed_config(addresses, port, settings_extra, probe, admin)
}

/// Each server's full `ip:port`, for [`config`].
fn addrs(servers: &[SocketAddr]) -> Vec<String> {
    servers.iter().map(ToString::to_string).collect()
}

/// A fast custom probe on the test backend's health path: one failure marks a
/// server down.
const FAST_PROBE: &str = "path = \"/health\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nunhealthy_threshold = 1\n";
/// A custom probe on the health path for servers that must stay healthy: a
/// loaded machine does not fail it (the doctor probes with the same time-out).
const STEADY_PROBE: &str = "path = \"/health\"\ninterval = \"500ms\"\ntimeout = \"500ms\"\n";

/// Writes `text` to `name` in `dir`.
fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// One run of `ringgate doctor`.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Everything it printed, for assertion messages.
    fn show(&self) -> String {
        format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `ringgate doctor --config <config> [--admin <admin>] [--json]`.
fn doctor(config: &Path, admin: Option<SocketAddr>, json: bool) -> Run {
    let mut cmd = Command::new(binary());
    cmd.arg("doctor").arg("--config").arg(config);
    if let Some(a) = admin {
        cmd.arg("--admin").arg(a.to_string());
    }
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run ringgate doctor");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A `--json` run: the parsed report and the run itself.
fn doctor_json(config: &Path, admin: Option<SocketAddr>) -> (Value, Run) {
    let run = doctor(config, admin, true);
    let report = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}):\n{}", run.show()));
    (report, run)
}

/// The single verdict of a report (every configuration here has one rule).
fn only_verdict(report: &Value) -> &Value {
    let verdicts = report["verdicts"].as_array().unwrap_or_else(|| panic!("no verdicts: {report:#}"));
    assert_eq!(verdicts.len(), 1, "one rule, one verdict: {report:#}");
    &verdicts[0]
}

/// The findings of `cause`.
fn findings<'a>(report: &'a Value, cause: &str) -> Vec<&'a Value> {
    report["findings"].as_array().map(|f| f.iter().filter(|f| f["cause"] == cause).collect()).unwrap_or_default()
}

/// The finding of `cause` about `server`; panics when there is none.
fn finding_for<'a>(report: &'a Value, cause: &str, server: &str) -> &'a Value {
    findings(report, cause)
        .into_iter()
        .find(|f| f["server"] == server)
        .unwrap_or_else(|| panic!("no {cause} finding about {server}: {report:#}"))
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_else(|| panic!("no string `{field}` in {v:#}"))
}

/// Checks the verdict's code and cause and the exit code 1.
fn assert_verdict(report: &Value, run: &Run, code: &str, cause: &str) {
    let v = only_verdict(report);
    assert_eq!((&v["code"], &v["cause"]), (&Value::from(code), &Value::from(cause)), "verdict: {v:#}\n{}", run.show());
    assert_eq!(run.code, Some(1), "a rule answers 502 {code}: {}", run.show());
    assert_eq!(report["exit_code"], 1, "{report:#}");
}

/// The first verdict line of the human output: the header, a blank line,
/// then one line per rule.
fn verdict_line(run: &Run) -> &str {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.len() >= 3, "too short: {}", run.show());
    assert!(lines[0].starts_with("ringgate doctor: "), "no header: {}", run.show());
    assert!(lines[1].is_empty(), "no blank line after the header: {}", run.show());
    run.stdout.lines().nth(2).unwrap_or_default()
}

/// Runs the human output and checks its verdict line names the failing rule,
/// the code and the cause's title; returns the run.
fn assert_human_verdict(config: &Path, admin: Option<SocketAddr>, code: &str, cause_title: &str) -> Run {
    let run = doctor(config, admin, false);
    assert_eq!(run.code, Some(1), "{}", run.show());
    let line = verdict_line(&run);
    assert!(line.starts_with("FAIL rule \"rule01\" (listener \"public\"): "), "{line:?}\n{}", run.show());
    assert!(line.contains(code), "no {code} in the verdict line {line:?}\n{}", run.show());
    assert!(line.ends_with(&format!("[cause {cause_title}]")), "cause not named in {line:?}\n{}", run.show());
    run
}

/// Server `address` of rule01 in the gateway's `GET /backend-health`.
fn live_server(gw: &Gateway, address: &str) -> Value {
    let (status, body) = gw.admin_get("/backend-health");
    assert_eq!(status, 200, "GET /backend-health: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/backend-health is not JSON ({e}): {body}"));
    v["rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["rule"] == "rule01"))
        .and_then(|r| r["servers"].as_array())
        .and_then(|servers| servers.iter().find(|s| s["address"] == address))
        .cloned()
        .unwrap_or_else(|| panic!("no server {address} in rule01: {v:#}"))
}

/// Waits until the gateway shows server `address` in `state`.
fn wait_state(gw: &Gateway, address: &str, state: &str) {
    let mut last = Value::Null;
    let ok = wait_until(SOON, || {
        last = live_server(gw, address);
        last["state"] == state
    });
    assert!(ok, "{address} never became {state}: {last:#}\nlog:\n{}", gw.stderr());
}

/// The number of milliseconds in `... took N ms ...` (or `N.NN s`).
fn took_ms(evidence: &str) -> Option<f64> {
    let rest = &evidence[evidence.find(" took ")? + 6..];
    let mut words = rest.split_whitespace();
    let n: f64 = words.next()?.parse().ok()?;
    match words.next()? {
        "ms" => Some(n),
        "s" => Some(n * 1000.0),
        _ => None,
    }
}

#[test]
fn doctor_names_an_empty_pool() {
    let text_cfg = config(&[], 80, "", None, "127.0.0.1:0");
    let gw = Gateway::start(&text_cfg);
    // The gateway answers 502 POOL_EMPTY: the cause is real.
    let r = get(gw.addr("public"), "/");
    assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("POOL_EMPTY")), "{:?} {}", r.headers, r.text());

    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    assert_verdict(&report, &run, "POOL_EMPTY", "empty_pool");
    let f = findings(&report, "empty_pool");
    assert_eq!(f.len(), 1, "{report:#}");
    assert_eq!(f[0]["severity"], "error", "{report:#}");
    assert!(text(f[0], "evidence").contains("\"pool01\" has no addresses"), "{report:#}");
    assert!(text(f[0], "fix").contains("`addresses` of [[backend_pool]] \"pool01\""), "{report:#}");

    assert_human_verdict(gw.config_path(), Some(gw.admin()), "POOL_EMPTY", "1 (empty backend pool)");
}

#[test]
fn doctor_names_all_servers_stopped() {
    let b1 = Backend::builder().name("b1").start().expect("start test backend");
    let b2 = Backend::builder().name("b2").start().expect("start test backend");
    let servers = addrs(&[b1.addr(), b2.addr()]);
    let gw = Gateway::start(&config(&servers, 80, "", Some(FAST_PROBE), "127.0.0.1:0"));
    for a in &servers {
        wait_state(&gw, a, "Healthy");
    }
    for b in [&b1, &b2] {
        b.stop_listening();
        b.close_connections();
    }
    for a in &servers {
        wait_state(&gw, a, "Unhealthy");
    }
    let r = get(gw.addr("public"), "/");
    assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("ALL_UNHEALTHY")), "{}", r.text());

    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    assert_verdict(&report, &run, "ALL_UNHEALTHY", "unhealthy_instances");
    assert!(text(&report, "gateway").starts_with("running"), "{report:#}");
    let summary = text(only_verdict(&report), "summary");
    assert!(summary.contains("2 of 2 servers"), "{summary}");
    for a in &servers {
        let f = finding_for(&report, "unhealthy_instances", a);
        assert_eq!(f["severity"], "error", "{f:#}");
        let evidence = text(f, "evidence");
        assert!(evidence.contains(&format!("connection refused on {a}")), "{evidence}");
        // The gateway's own view, read from its admin API.
        assert!(evidence.starts_with("gateway: Unhealthy since "), "{evidence}");
        assert!(summary.contains(&format!("connection refused on {a}")), "{summary}");
    }

    assert_human_verdict(gw.config_path(), Some(gw.admin()), "ALL_UNHEALTHY", "2 (unhealthy instances)");
}

#[test]
fn doctor_names_the_default_probe_when_nothing_listens_on_the_settings_port() {
    let port = closed_addr().port();
    let dir = TempDir::new("doctor-default-probe");
    let path = write(&dir, "ringgate.toml", &config(&["127.0.0.1".into()], port, "", None, "off"));
    let server = format!("127.0.0.1:{port}");

    let (report, run) = doctor_json(&path, None);
    assert_verdict(&report, &run, "ALL_UNHEALTHY", "default_probe");
    assert!(text(&report, "gateway").contains("admin API off"), "{report:#}");
    let f = finding_for(&report, "default_probe", &server);
    assert_eq!(f["severity"], "error", "{f:#}");
    let evidence = text(f, "evidence");
    assert!(evidence.contains(&format!("connection refused on {server}")), "{evidence}");
    assert!(evidence.contains(&format!("GET http://{server}/ (Host: 127.0.0.1)")), "{evidence}");
    // One failure, one finding: not also told as cause 2.
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(1), "{report:#}");
    let fix = text(f, "fix");
    assert!(fix.contains(&format!("nothing listens on port {port} of the server")), "{fix}");
    assert!(fix.contains(&format!("the settings port is {port} (not 80)")), "{fix}");
    assert!(fix.contains("`port` in [[backend_http_settings]] \"setting01\""), "{fix}");

    assert_human_verdict(&path, None, "ALL_UNHEALTHY", "3 (default probe)");
}

#[test]
fn doctor_names_a_custom_probe_with_a_wrong_path() {
    // The servers run, but nothing is deployed at the probe's path.
    let b1 = Backend::builder().name("b1").health(404, "not found").start().expect("start test backend");
    let b2 = Backend::builder().name("b2").health(404, "not found").start().expect("start test backend");
    let servers = addrs(&[b1.addr(), b2.addr()]);
    let gw = Gateway::start(&config(&servers, 80, "", Some(FAST_PROBE), "127.0.0.1:0"));
    for a in &servers {
        wait_state(&gw, a, "Unhealthy");
    }

    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    assert_verdict(&report, &run, "ALL_UNHEALTHY", "custom_probe");
    assert!(text(only_verdict(&report), "summary").contains("custom probe \"p1\""), "{report:#}");
    for a in &servers {
        let f = finding_for(&report, "custom_probe", a);
        assert_eq!(f["severity"], "error", "{f:#}");
        let evidence = text(f, "evidence");
        assert!(evidence.contains(&format!("status 404 from {a}/health")), "{evidence}");
        assert!(text(f, "fix").contains("path \"/health\""), "{f:#}");
        let not_deployed = format!("{evidence} {}", text(f, "fix"));
        assert!(not_deployed.contains("application is not deployed"), "{f:#}");
    }
    // The wrong answer is cause 4, and only that.
    assert!(findings(&report, "unhealthy_instances").is_empty(), "{report:#}");

    assert_human_verdict(gw.config_path(), Some(gw.admin()), "ALL_UNHEALTHY", "4 (custom probe)");
}

/// A probe that a loaded machine does not fail, and that marks a server
/// down at its first failure.
const ONE_STRIKE_PROBE: &str = "path = \"/health\"\ninterval = \"1s\"\ntimeout = \"1s\"\nunhealthy_threshold = 1\n";

#[test]
fn doctor_gives_one_finding_per_failing_server_with_its_own_failure() {
    // Three servers: one refuses connections, one answers its probe 503,
    // one is healthy.
    let refused = closed_addr();
    let wrong = Backend::builder().name("wrong").health(503, "down").start().expect("start test backend");
    let good = Backend::builder().name("good").start().expect("start test backend");
    let (refused, wrong_a, good_a) = (refused.to_string(), wrong.addr().to_string(), good.addr().to_string());
    let servers = [refused.clone(), wrong_a.clone(), good_a.clone()];
    let gw = Gateway::start(&config(&servers, 80, "", Some(ONE_STRIKE_PROBE), "127.0.0.1:0"));
    wait_state(&gw, &refused, "Unhealthy");
    wait_state(&gw, &wrong_a, "Unhealthy");
    wait_state(&gw, &good_a, "Healthy");

    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    // One server still answers: no 502, exit 0.
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(text(only_verdict(&report), "summary"), "pool01: OK: 1 of 3 servers healthy", "{report:#}");
    let all = report["findings"].as_array().unwrap_or_else(|| panic!("no findings: {report:#}"));
    assert_eq!(all.len(), 2, "one finding per failing server, nothing else: {report:#}");
    for a in &servers {
        let n = all.iter().filter(|f| f["server"] == a.as_str()).count();
        assert_eq!(n, usize::from(*a != good_a), "findings about {a}: {report:#}");
    }
    let f = finding_for(&report, "unhealthy_instances", &refused);
    let evidence = text(f, "evidence");
    assert!(evidence.starts_with("gateway: Unhealthy since "), "{evidence}");
    assert!(evidence.contains(&format!("connection refused on {refused}")), "{evidence}");
    assert!(!evidence.contains(&wrong_a) && !evidence.contains(&good_a), "another server's evidence: {evidence}");
    assert!(
        text(f, "fix").contains(&format!("nothing listens on port {}", &refused[refused.rfind(':').unwrap() + 1..]))
    );
    let f = finding_for(&report, "custom_probe", &wrong_a);
    let evidence = text(f, "evidence");
    assert!(evidence.contains(&format!("status 503 from {wrong_a}/health")), "{evidence}");
    assert!(!evidence.contains(&refused) && !evidence.contains(&good_a), "another server's evidence: {evidence}");
    assert!(text(f, "fix").contains("the server answers 503 on /health"), "{f:#}");
    for f in all {
        assert_eq!(f["severity"], "warning", "the pool still serves: {f:#}");
    }
    // The healthy server is among the probes from here, as fine.
    let probes = report["probes"].as_array().unwrap_or_else(|| panic!("no probes: {report:#}"));
    assert!(probes.iter().any(|p| p["server"] == good_a.as_str() && p["ok"] == true), "{report:#}");

    let human = doctor(gw.config_path(), Some(gw.admin()), false);
    println!("{}", human.stdout);
    let finding_lines: Vec<&str> = human.stdout.lines().filter(|l| l.starts_with("- [")).collect();
    assert_eq!(
        finding_lines,
        [
            format!("- [warning] 2 (unhealthy instances): pool01 / setting01 / {refused}"),
            format!("- [warning] 4 (custom probe): pool01 / setting01 / {wrong_a}")
        ],
        "{}",
        human.show()
    );
}

#[test]
fn doctor_names_a_backend_slower_than_the_request_timeout() {
    // The health path ignores Mode::Slow, so the probe asks for the test
    // backend's slow path: answered 200 after 700 ms, inside the probe's 2 s.
    let b = Backend::builder().name("slow").start().expect("start test backend");
    let a = b.addr().to_string();
    let probe = "path = \"/slow?ms=700\"\ninterval = \"2s\"\ntimeout = \"2s\"\nunhealthy_threshold = 1\n";
    let gw =
        Gateway::start(&config(&addrs(&[b.addr()]), 80, "request_timeout = \"300ms\"", Some(probe), "127.0.0.1:0"));
    wait_state(&gw, &a, "Healthy");
    let r = get(gw.addr("public"), "/slow?ms=700");
    assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("TIMEOUT")), "{:?} {}", r.headers, r.text());

    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    assert_verdict(&report, &run, "TIMEOUT", "request_timeout");
    let f = finding_for(&report, "request_timeout", &a);
    assert_eq!(f["severity"], "error", "{f:#}");
    let evidence = text(f, "evidence");
    let took = took_ms(evidence).unwrap_or_else(|| panic!("no measured time in {evidence:?}"));
    assert!((700.0..2000.0).contains(&took), "measured {took} ms for a 700 ms answer: {evidence}");
    assert!(evidence.contains(&format!("GET http://{a}/slow?ms=700")), "{evidence}");
    assert!(evidence.contains("request time-out of 300 ms"), "{evidence}");
    let fix = text(f, "fix");
    assert!(fix.contains("request_timeout in [[backend_http_settings]] \"setting01\" (now 300 ms)"), "{fix}");

    assert_human_verdict(gw.config_path(), Some(gw.admin()), "TIMEOUT", "5 (request time-out)");
}

#[test]
fn doctor_exits_0_on_a_healthy_setup() {
    let b1 = Backend::builder().name("b1").start().expect("start test backend");
    let b2 = Backend::builder().name("b2").start().expect("start test backend");
    let servers = addrs(&[b1.addr(), b2.addr()]);
    let gw = Gateway::start(&config(&servers, 80, "", Some(STEADY_PROBE), "127.0.0.1:0"));
    for a in &servers {
        wait_state(&gw, a, "Healthy");
    }

    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(report["exit_code"], 0, "{report:#}");
    assert!(text(&report, "gateway").starts_with("running"), "{report:#}");
    for v in report["verdicts"].as_array().expect("verdicts") {
        assert!(v["code"].is_null() && v["cause"].is_null(), "{v:#}");
        assert!(text(v, "summary").contains("OK"), "{v:#}");
    }
    assert_eq!(text(only_verdict(&report), "summary"), "pool01: OK: 2 of 2 servers healthy");
    let errors: Vec<&Value> =
        report["findings"].as_array().expect("findings").iter().filter(|f| f["severity"] == "error").collect();
    assert!(errors.is_empty(), "errors on a healthy setup: {errors:#?}");

    let run = doctor(gw.config_path(), Some(gw.admin()), false);
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(verdict_line(&run).starts_with("ok   rule \"rule01\""), "{}", run.show());
}

#[test]
fn doctor_reports_an_invalid_configuration() {
    let b = Backend::builder().name("b1").start().expect("start test backend");
    let dir = TempDir::new("doctor-invalid");
    let probe = "path = \"health\"\ninterval = \"100ms\"\n";
    let cfg = config(&addrs(&[b.addr()]), 80, "", Some(probe), "off");
    let line = cfg.lines().position(|l| l == "path = \"health\"").expect("the probe path line") + 1;
    let path = write(&dir, "ringgate.toml", &cfg);

    let (report, run) = doctor_json(&path, None);
    assert_eq!(run.code, Some(1), "{}", run.show());
    let v = only_verdict(&report);
    assert_eq!(v["code"], "CONFIG_INVALID", "{v:#}");
    assert!(text(v, "summary").contains("1 error"), "{v:#}");
    let f = findings(&report, "custom_probe");
    assert_eq!(f.len(), 1, "{report:#}");
    let evidence = text(f[0], "evidence");
    let location = format!("{}:{line}: [[probe]] \"p1\", field `path`", path.display());
    assert!(evidence.starts_with(&location), "expected {location:?} in {evidence:?}");
    assert!(evidence.contains("must start with '/'"), "{evidence}");

    let run = doctor(&path, None, false);
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert!(verdict_line(&run).starts_with("FAIL "), "{}", run.show());
    assert!(run.stdout.contains(&location), "{}", run.show());
}

#[test]
fn doctor_human_output_names_config_invalid() {
    let dir = TempDir::new("doctor-invalid-human");
    let probe = "path = \"health\"\n";
    let path = write(&dir, "ringgate.toml", &config(&["127.0.0.1:9".into()], 80, "", Some(probe), "off"));
    let (report, _) = doctor_json(&path, None);
    assert_eq!(only_verdict(&report)["code"], "CONFIG_INVALID", "{report:#}");
    let run = doctor(&path, None, false);
    assert_eq!(run.code, Some(1), "{}", run.show());
    // Every other verdict line carries its code (`pool01: POOL_EMPTY: ...`).
    assert!(verdict_line(&run).contains("CONFIG_INVALID"), "{}", run.show());
}

#[test]
fn doctor_json_and_human_agree() {
    // One server, answering the probe 503: a failure that reads the same on
    // every run.
    let b = Backend::builder().name("b1").health(503, "down").start().expect("start test backend");
    let dir = TempDir::new("doctor-agree");
    let path = write(&dir, "ringgate.toml", &config(&addrs(&[b.addr()]), 80, "", Some(FAST_PROBE), "off"));

    let (report, json_run) = doctor_json(&path, None);
    let human = doctor(&path, None, false);
    assert_eq!(json_run.code, Some(1), "{}", json_run.show());
    assert_eq!(human.code, json_run.code, "{}", human.show());
    let v = only_verdict(&report);
    let summary = text(v, "summary");
    assert!(summary.contains("status 503"), "{v:#}");
    let line = verdict_line(&human);
    assert!(line.contains(summary), "human verdict line {line:?} lacks the JSON summary {summary:?}");
    assert!(human.stdout.lines().next().is_some_and(|h| h.contains(text(&report, "config"))), "{}", human.show());
    // Every finding is shown with its evidence.
    for f in report["findings"].as_array().expect("findings") {
        let evidence = format!("    evidence: {}", text(f, "evidence"));
        assert!(human.stdout.lines().any(|l| l == evidence), "{evidence:?} missing from:\n{}", human.stdout);
    }
}

#[test]
fn doctor_names_the_request_timeout_from_the_gateway_s_502s_when_the_probe_is_fast() {
    // The usual cause 5: the probe path answers at once, the application is slow.
    let b = Backend::builder().name("slow").start().expect("start test backend");
    b.set_mode(Mode::Slow(Duration::from_millis(700)));
    let a = b.addr().to_string();
    let gw = Gateway::start(&config(
        &addrs(&[b.addr()]),
        80,
        "request_timeout = \"300ms\"",
        Some(STEADY_PROBE),
        "127.0.0.1:0",
    ));
    wait_state(&gw, &a, "Healthy");
    for i in 0..2 {
        let r = get(gw.addr("public"), &format!("/app/{i}"));
        assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("TIMEOUT")), "{:?} {}", r.headers, r.text());
    }

    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    assert_verdict(&report, &run, "TIMEOUT", "request_timeout");
    let seen = findings(&report, "request_timeout")
        .into_iter()
        .find(|f| f["server"].is_null())
        .unwrap_or_else(|| panic!("no request_timeout finding from the gateway's metrics: {report:#}"));
    assert_eq!(seen["severity"], "error", "{seen:#}");
    assert!(text(seen, "evidence").contains("2 requests answered 502 TIMEOUT"), "{seen:#}");
    assert!(text(seen, "fix").contains("request_timeout in [[backend_http_settings]] \"setting01\""), "{seen:#}");
}

#[test]
fn doctor_exits_2_when_the_configuration_cannot_be_read() {
    let dir = TempDir::new("doctor-missing");
    let path = dir.path().join("missing.toml");
    let run = doctor(&path, None, true);
    assert_eq!(run.code, Some(2), "{}", run.show());
    // No report at all: a script reading --json must not take it for a verdict.
    assert!(run.stdout.is_empty(), "{}", run.show());
    assert!(run.stderr.contains(&path.display().to_string()), "the message does not name the file: {}", run.show());
}

/// A path-based rule: one verdict per path rule and for the default, each
/// naming its own pool, so a 502 on `/api/*` is traced to the api pool and
/// not blamed on the whole site; `/backend-health` lists the same targets.
#[test]
fn doctor_gives_a_verdict_per_path_rule() {
    let web = Backend::builder().name("web").start().unwrap();
    let text_cfg = format!(
        r#"[gateway]
workers = 1
admin_listen = "127.0.0.1:0"
access_log = "off"
allow_subsecond_timers = true

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[backend_pool]]
name = "web"
addresses = ["{web}"]

[[backend_pool]]
name = "api"
addresses = []

[[backend_http_settings]]
name = "s"
probe = "p"

[[probe]]
name = "p"
{STEADY_PROBE}
[[url_path_map]]
name = "site"
default_backend_pool = "web"
default_backend_http_settings = "s"

[[url_path_map.path_rule]]
name = "api"
paths = ["/api/*"]
backend_pool = "api"
backend_http_settings = "s"

[[rule]]
name = "site"
listener = "public"
url_path_map = "site"
"#,
        web = web.addr()
    );
    let gw = Gateway::start(&text_cfg);
    let r = get(gw.addr("public"), "/api/users");
    assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("POOL_EMPTY")));
    assert_eq!(get(gw.addr("public"), "/index.html").status, 200);

    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    let verdicts = report["verdicts"].as_array().unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(verdicts.len(), 2, "{report:#}");
    let by_rule = |name: &str| {
        verdicts.iter().find(|v| v["rule"] == name).unwrap_or_else(|| panic!("no verdict for {name}: {report:#}"))
    };
    assert_eq!(by_rule("site/api")["code"], "POOL_EMPTY", "{report:#}");
    assert_ne!(by_rule("site")["code"], "POOL_EMPTY", "the default pool is fine: {report:#}");
    assert!(text(findings(&report, "empty_pool")[0], "evidence").contains("\"api\""), "{report:#}");
    assert_eq!(run.code, Some(1), "{}", run.show());

    let (status, body) = gw.admin_get("/backend-health");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let rules: Vec<(&str, &str)> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["rule"].as_str().unwrap_or(""), r["pool"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(rules, [("site", "web"), ("site/api", "api")], "{body}");
}

/// An https backend whose certificate is for other names than the one the
/// settings verify: the gateway's probe and the doctor both say which names
/// the certificate holds, and the fix names `host_name`.
#[test]
fn doctor_lists_the_certificate_s_names_when_the_tls_name_does_not_match() {
    let ca = Ca::new("doctor test CA");
    let backend = TlsBackend::start(&ca.leaf(&["other.example", "10.0.0.1"]));
    let a = backend.addr().to_string();
    let settings = "protocol = \"https\"\ntrusted_root_certificates = \"ca.pem\"\nhost_name = \"backend.example\"\n";
    let probe = format!("protocol = \"https\"\n{ONE_STRIKE_PROBE}");
    let cfg = config(&addrs(&[backend.addr()]), 443, settings, Some(&probe), "127.0.0.1:0");
    let gw = Gateway::start_with_files(&cfg, &[("ca.pem", ca.pem.as_bytes())]);
    wait_state(&gw, &a, "Unhealthy");
    let names = r#"is for "other.example", "10.0.0.1", not "backend.example""#;
    // The gateway's own probe already knows.
    let live = live_server(&gw, &a);
    assert!(live["reason"].as_str().is_some_and(|r| r.contains(names)), "{live:#}");

    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    assert_verdict(&report, &run, "ALL_UNHEALTHY", "custom_probe");
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(1), "{report:#}");
    let f = finding_for(&report, "custom_probe", &a);
    let evidence = text(f, "evidence");
    assert!(evidence.contains(&format!("the certificate of {a} {names}")), "{evidence}");
    let fix = text(f, "fix");
    assert!(fix.contains(r#"the `host_name` of [[backend_http_settings]] "setting01""#), "{fix}");
    assert!(fix.contains(r#"set host_name to a name the certificate holds (such as "other.example")"#), "{fix}");
    assert!(fix.contains(r#"or give the server a certificate for "backend.example""#), "{fix}");
    println!("{}", doctor(gw.config_path(), Some(gw.admin()), false).stdout);
}

/// Settings that speak plain HTTP to a TLS server: the probe gets a TLS
/// alert back, a ClientHello from the doctor is answered, and the fix is
/// `protocol = "https"`.
#[test]
fn doctor_hints_https_when_plain_http_meets_a_tls_server() {
    let ca = Ca::new("doctor test CA");
    let backend = TlsBackend::start(&ca.leaf(&["127.0.0.1"]));
    let a = backend.addr().to_string();
    let gw = Gateway::start(&config(&addrs(&[backend.addr()]), 80, "", Some(ONE_STRIKE_PROBE), "127.0.0.1:0"));
    wait_state(&gw, &a, "Unhealthy");
    let live = live_server(&gw, &a);
    assert!(live["reason"].as_str().is_some_and(|r| r.contains("with a TLS record")), "{live:#}");

    let hellos = backend.client_hellos();
    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    assert_verdict(&report, &run, "ALL_UNHEALTHY", "custom_probe");
    let f = finding_for(&report, "custom_probe", &a);
    let evidence = text(f, "evidence");
    assert!(evidence.contains(&format!("{a} answered the plain HTTP request with a TLS record")), "{evidence}");
    assert!(evidence.contains(&format!("{a} looks like a TLS server")), "{evidence}");
    assert!(evidence.contains("answers a TLS ClientHello in TLS"), "{evidence}");
    assert!(backend.client_hellos() > hellos, "no ClientHello from the doctor reached the server");
    let fix = text(f, "fix");
    assert!(
        fix.starts_with(r#"set protocol = "https" in [[backend_http_settings]] "setting01" and in [[probe]] "p1""#),
        "{fix}"
    );
    println!("{}", doctor(gw.config_path(), Some(gw.admin()), false).stdout);
}

/// Settings that speak TLS to a plain HTTP server: the ClientHello is
/// answered with an HTTP 400, a plain GET from the doctor with a 200, and the
/// fix is `protocol = "http"`.
#[test]
fn doctor_hints_http_when_https_meets_a_plain_server() {
    let b = Backend::builder().name("plain").start().expect("start test backend");
    let a = b.addr().to_string();
    let dir = TempDir::new("doctor-https-to-plain");
    let path = write(&dir, "ringgate.toml", &config(&addrs(&[b.addr()]), 443, "protocol = \"https\"", None, "off"));

    let (report, run) = doctor_json(&path, None);
    assert_verdict(&report, &run, "ALL_UNHEALTHY", "default_probe");
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(1), "{report:#}");
    let f = finding_for(&report, "default_probe", &a);
    let evidence = text(f, "evidence");
    assert!(evidence.contains(&format!("GET https://{a}/ (Host: 127.0.0.1)")), "{evidence}");
    assert!(evidence.contains("answered the TLS handshake with something that is not TLS"), "{evidence}");
    assert!(evidence.contains(&format!("{a} looks like a plain HTTP server")), "{evidence}");
    assert!(evidence.contains("answers GET / in plain HTTP"), "{evidence}");
    assert!(b.requests_to("/") > 0, "the doctor's plain GET never reached the server");
    let fix = text(f, "fix");
    assert!(fix.starts_with(r#"set protocol = "http" in [[backend_http_settings]] "setting01","#), "{fix}");
    assert!(fix.contains(&format!("the server speaks plain HTTP on port {}", b.port())), "{fix}");
    println!("{}", doctor(&path, None, false).stdout);
}

/// `GET /recent` of rule01: its entry.
fn recent_of_rule01(gw: &Gateway) -> Value {
    let (status, body) = gw.admin_get("/recent");
    assert_eq!(status, 200, "GET /recent: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/recent is not JSON ({e}): {body}"));
    v["rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["rule"] == "rule01" && r["pool"] == "pool01"))
        .cloned()
        .unwrap_or_else(|| panic!("no rule01 in /recent: {v:#}"))
}

/// The gateway's time-outs count while they are recent, not forever: within
/// `recent_window` the doctor names them (cause 5, "in the last N s"); once
/// the window has passed over them it no longer does.
#[test]
fn doctor_counts_time_outs_over_the_recent_window_only() {
    let b = Backend::builder().name("slow").start().expect("start test backend");
    b.set_mode(Mode::Slow(Duration::from_millis(700)));
    let a = b.addr().to_string();
    let window = 8.0;
    let cfg = with_gateway_lines(
        &config(&addrs(&[b.addr()]), 80, "request_timeout = \"300ms\"", Some(STEADY_PROBE), "127.0.0.1:0"),
        "recent_window = \"8s\"",
    );
    let gw = Gateway::start(&cfg);
    wait_state(&gw, &a, "Healthy");
    for i in 0..2 {
        let r = get(gw.addr("public"), &format!("/app/{i}"));
        assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("TIMEOUT")), "{:?} {}", r.headers, r.text());
    }
    // The sampler reads the counters every window/60, and a request is
    // counted just after its answer: wait (bounded) for the second.
    let mut recent = Value::Null;
    wait_until(Duration::from_secs(5), || {
        recent = recent_of_rule01(&gw);
        recent["timeouts"] == 2
    });
    assert_eq!(recent["timeouts"], 2, "{recent:#}");
    assert!(recent["covered_seconds"].as_f64().is_some_and(|s| s <= window + 1.0), "{recent:#}");

    // Within the window: cause 5, from the gateway's recent figures.
    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    assert_verdict(&report, &run, "TIMEOUT", "request_timeout");
    let seen = findings(&report, "request_timeout")
        .into_iter()
        .find(|f| f["server"].is_null())
        .unwrap_or_else(|| panic!("no request_timeout finding from the gateway: {report:#}"));
    let evidence = text(seen, "evidence");
    assert!(evidence.starts_with("in the last "), "{evidence}");
    assert!(evidence.contains("the gateway has seen 2 requests answered 502 TIMEOUT"), "{evidence}");
    println!("{}", doctor(gw.config_path(), Some(gw.admin()), false).stdout);

    // Once the window has passed over them, they are history.
    let mut last = Value::Null;
    let passed = wait_until(Duration::from_secs(30), || {
        last = recent_of_rule01(&gw);
        last["timeouts"] == 0
    });
    assert!(passed, "the time-outs never left the window: {last:#}");
    assert!(last["covered_seconds"].as_f64().is_some_and(|s| s >= window), "{last:#}");
    // The metrics since the start still have them.
    let (_, metrics) = gw.admin_get("/metrics");
    assert!(
        metrics.lines().any(|l| l.contains("rule=\"rule01\"") && l.contains("TIMEOUT") && l.ends_with(" 2")),
        "{metrics}"
    );
    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    assert_eq!(run.code, Some(0), "old time-outs are not a cause now: {}", run.show());
    assert!(findings(&report, "request_timeout").is_empty(), "{report:#}");
    println!("{}", doctor(gw.config_path(), Some(gw.admin()), false).stdout);
}

/// Servers that fail their probe but that `min_servers` keeps in rotation
/// still serve: doctor reports them, without an ALL_UNHEALTHY verdict.
#[test]
fn doctor_knows_min_servers_keeps_a_failing_server_serving() {
    let b1 = Backend::builder().name("b1").health(404, "not found").start().expect("start test backend");
    let b2 = Backend::builder().name("b2").health(404, "not found").start().expect("start test backend");
    let servers = addrs(&[b1.addr(), b2.addr()]);
    let probe = format!("{FAST_PROBE}min_servers = 1\n");
    let gw = Gateway::start(&config(&servers, 80, "", Some(&probe), "127.0.0.1:0"));
    for a in &servers {
        wait_state(&gw, a, "Unhealthy");
    }
    assert_eq!(get(gw.addr("public"), "/").status, 200, "b1 is kept in rotation");
    let (report, run) = doctor_json(gw.config_path(), Some(gw.admin()));
    let verdict = only_verdict(&report);
    assert!(verdict["code"].is_null(), "no 502 verdict while a kept server serves: {report:#}\n{}", run.show());
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(findings(&report, "custom_probe").len(), 2, "both failing servers are still reported: {report:#}");
}
