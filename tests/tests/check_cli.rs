//! `ringgate check --config FILE`: a valid file is confirmed, a broken one
//! gets every error at once, each located by file, line, entry and field.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ringgate_e2e::*;

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

fn check(path: &Path) -> Output {
    Command::new(binary()).arg("check").arg("--config").arg(path).output().expect("run ringgate check")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Four mistakes in one file, on the lines the expected messages name.
const BROKEN: &str = r#"[gateway]
workers = 1
admin_listen = "127.0.0.1:0"
colour = "blue"

[[listener]]
name = "public"
listen = "127.0.0.1:0"
protocol = "ftp"

[[backend_pool]]
name = "pool01"
addresses = ["127.0.0.1:9"]

[[backend_http_settings]]
name = "setting01"
probe = "probe01"

[[probe]]
name = "probe01"
path = "health"

[[rule]]
name = "rule01"
listener = "public"
backend_pool = "pool02"
backend_http_settings = "setting01"
"#;

#[test]
fn check_accepts_a_valid_configuration() {
    let dir = TempDir::new("check-ok");
    let b = "127.0.0.1:8080".parse().unwrap();
    let path = write(&dir, "good.toml", &simple_config(&[b], "request_timeout = \"2s\""));
    let out = check(&path);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    let first = stdout.lines().next().unwrap_or_default();
    assert_eq!(first, format!("{}: configuration is valid (1 listener, 1 rule)", path.display()));
}

#[test]
fn check_accepts_the_shipped_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ringgate.toml");
    let out = check(&example);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("configuration is valid"), "{}", text(&out.stdout));
}

#[test]
fn check_reports_an_empty_pool_as_a_warning_not_an_error() {
    let dir = TempDir::new("check-warn");
    let path = write(&dir, "empty.toml", &simple_config(&[], ""));
    let out = check(&path);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("warning: ") && l.contains("POOL_EMPTY")),
        "no warning about the empty pool:\n{stdout}"
    );
}

#[test]
fn check_lists_every_error_with_file_line_entry_and_field() {
    let dir = TempDir::new("check-bad");
    let path = write(&dir, "broken.toml", BROKEN);
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{}\nstderr:\n{stderr}", text(&out.stdout));
    let p = path.display();
    let expected = [
        format!("{p}: 4 configuration errors"),
        format!(
            "  error: {p}:4: [gateway], field `colour`: unknown field (known fields: workers, worker_cpus, \
             prober_cpu, admin_listen, drain_timeout, shutdown_delay, dns_refresh, watch_config, watch_interval, access_log, limits, io_uring, error_pages)"
        ),
        format!(
            "  error: {p}:9: [[listener]] \"public\", field `protocol`: \"ftp\" is not a protocol (use \"http\" or \"https\")"
        ),
        format!(
            "  error: {p}:21: [[probe]] \"probe01\", field `path`: must start with '/' (got \"health\"); \
             the probe is sent to <protocol>://<host>:<port><path>"
        ),
        format!(
            "  error: {p}:26: [[rule]] \"rule01\", field `backend_pool`: refers to [[backend_pool]] \"pool02\", \
             which does not exist (defined: pool01); did you mean \"pool01\"?"
        ),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines, expected, "\n{stderr}");
}

#[test]
fn run_refuses_a_broken_configuration_with_the_same_errors() {
    let err = Gateway::start_with(BROKEN, &[]).expect_err("a broken configuration must not start");
    assert!(err.contains("4 configuration errors"), "{err}");
    for needle in ["field `colour`", "field `protocol`", "field `path`", "field `backend_pool`"] {
        assert!(err.contains(needle), "{needle} missing:\n{err}");
    }
}
