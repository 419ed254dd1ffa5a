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
             prober_cpu, admin_listen, recent_window, drain_timeout, shutdown_delay, dns_refresh, watch_config, watch_interval, error_detail, trusted_proxies, allow_trace, unknown_version_status, log_format, access_log, access_log_format, limits, io_uring, splice, http2, error_pages, allow_subsecond_timers, unprobed_servers)"
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

/// A path-based rule, a redirect in a path rule and one to a listener.
const PATH_BASED: &str = r#"[gateway]
admin_listen = "off"

[[listener]]
name = "public"
listen = "127.0.0.1:18100"

[[listener]]
name = "new"
listen = "127.0.0.1:18101"

[[listener]]
name = "legacy"
listen = "127.0.0.1:18102"

[[backend_pool]]
name = "web"
addresses = ["10.0.0.1"]

[[backend_pool]]
name = "api"
addresses = ["10.0.1.1"]

[[backend_http_settings]]
name = "plain"

[[backend_http_settings]]
name = "api-v2"
override_backend_path = "/v2/"

[[redirect]]
name = "to-new"
target_listener = "new"

[[redirect]]
name = "moved"
type = "found"
target_url = "https://archive.example/"
include_path = false

[[rewrite_rule_set]]
name = "security"

[[rewrite_rule_set.rule]]
name = "hsts"
response_headers = { "Strict-Transport-Security" = "max-age=31536000" }

[[url_path_map]]
name = "site"
default_backend_pool = "web"
default_backend_http_settings = "plain"

[[url_path_map.path_rule]]
name = "api"
paths = ["/api/v1/health", "/api/*"]
backend_pool = "api"
backend_http_settings = "api-v2"
rewrite_rule_set = "security"

[[url_path_map.path_rule]]
name = "old"
paths = ["/old"]
redirect = "moved"

[[rule]]
name = "site"
listener = "public"
rule_type = "path_based"
url_path_map = "site"

[[rule]]
name = "new"
listener = "new"
backend_pool = "web"
backend_http_settings = "plain"

[[rule]]
name = "legacy"
listener = "legacy"
redirect = "to-new"
"#;

#[test]
fn check_prints_the_routing_table_in_match_order() {
    let dir = TempDir::new("check-paths");
    let path = write(&dir, "paths.toml", PATH_BASED);
    let out = check(&path);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let table: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("routing (")).collect();
    assert_eq!(
        table,
        [
            "routing (listener -> rule -> path -> target; paths in match order, the first match wins):",
            "  127.0.0.1:18100 (http):",
            "    public [any host] -> site -> /api/v1/health (api) -> pool api, settings api-v2, rewrite security",
            "    public [any host] -> site -> /api/* (api)         -> pool api, settings api-v2, rewrite security",
            "    public [any host] -> site -> /old (old)           -> redirect moved: 302 to https://archive.example/ (path dropped)",
            "    public [any host] -> site -> (default)            -> pool web, settings plain",
            "  127.0.0.1:18101 (http):",
            "    new [any host] -> new -> (any path) -> pool web, settings plain",
            "  127.0.0.1:18102 (http):",
            "    legacy [any host] -> legacy -> (any path) -> redirect to-new: 301 to http://<host>:18101 (listener new)",
        ],
        "\n{stdout}"
    );
    // The routing table replaces describe()'s rule lines; what describe()
    // leaves out is listed.
    assert!(!stdout.contains("[[rule]]"), "{stdout}");
    assert!(
        stdout.contains("[[redirect]] moved: 302 Found to https://archive.example/, path dropped, query kept\n"),
        "{stdout}"
    );
    assert!(stdout.contains("[[rewrite_rule_set]] security: rules in order hsts (100)\n"), "{stdout}");
}

/// `ringgate check ... | head -1`: the reader closes the pipe before the
/// command is done writing. The command must stop quietly (SIGPIPE or a
/// clean exit), never panic. The read end is closed before the child writes
/// a byte, so every write meets a closed pipe.
#[test]
fn commands_stop_quietly_on_a_closed_pipe() {
    use std::os::unix::process::ExitStatusExt;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ringgate.toml");
    for args in [vec!["check", "--config"], vec!["route", "--config"]] {
        for _ in 0..5 {
            let mut cmd = std::process::Command::new(binary());
            cmd.args(&args).arg(&example);
            if args[0] == "route" {
                cmd.arg("http://127.0.0.1:8080/api/x");
            }
            let mut child = cmd
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn ringgate");
            drop(child.stdout.take());
            let out = child.wait_with_output().expect("wait");
            let stderr = text(&out.stderr);
            assert!(!stderr.contains("panicked"), "`ringgate {}` panicked on a closed pipe:\n{stderr}", args[0]);
            let quiet = out.status.success() || out.status.signal() == Some(libc::SIGPIPE);
            assert!(quiet, "`ringgate {}` ended with {:?} on a closed pipe:\n{stderr}", args[0], out.status);
        }
    }
}

/// `check -q` prints nothing for a valid file and only the errors for a
/// broken one; `check` opens the access log file as the gateway would, with
/// a relative path taken from the configuration file's directory.
#[test]
fn check_quiet_and_the_access_log_path() {
    let dir = TempDir::new("check-q");
    let b = "127.0.0.1:8080".parse().unwrap();
    let base = simple_config(&[b], "");
    let with_log = |log: &str| base.replace("access_log = \"stdout\"", &format!("access_log = \"{log}\""));

    let good = write(&dir, "good.toml", &with_log("logs-here.jsonl"));
    let out = Command::new(binary()).args(["check", "-q", "--config"]).arg(&good).output().expect("run check -q");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!((text(&out.stdout), text(&out.stderr)), (String::new(), String::new()), "-q says nothing when valid");
    assert!(dir.path().join("logs-here.jsonl").exists(), "the relative log path is the config file's directory's");

    let missing_dir = write(&dir, "bad-log.toml", &with_log("/nonexistent-dir/ringgate/access.log"));
    let out = Command::new(binary()).args(["check", "-q", "--config"]).arg(&missing_dir).output().expect("run check");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("[gateway], field `access_log`: cannot open /nonexistent-dir/ringgate/access.log for appending"),
        "{err}"
    );
    assert_eq!(text(&out.stdout), "", "-q prints no configuration");

    let broken = write(&dir, "broken.toml", BROKEN);
    let out = Command::new(binary()).args(["check", "-q", "--config"]).arg(&broken).output().expect("run check");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("configuration errors"), "{}", text(&out.stderr));
}

/// Probe timers follow Application Gateway v2 (1 to 86400 whole seconds):
/// a sub-second one is an error naming the flag that allows it, and with
/// `allow_subsecond_timers = true` the file is valid and `check` warns.
#[test]
fn check_refuses_subsecond_probe_timers_unless_allowed_and_then_warns() {
    let dir = TempDir::new("check-subsecond");
    let b = "127.0.0.1:8080".parse().unwrap();
    let probed = format!(
        "{}\n[[probe]]\nname = \"p\"\npath = \"/health\"\ninterval = \"100ms\"\n",
        simple_config(&[b], "probe = \"p\"")
    );
    let refused = write(&dir, "refused.toml", &probed.replace("allow_subsecond_timers = true\n", ""));
    let out = check(&refused);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "[[probe]] \"p\", field `interval`: 100ms is not a whole number of seconds: Application Gateway v2 takes 1 to 86400 s; for sub-second probes (tests, labs) set [gateway] allow_subsecond_timers = true"
        ),
        "{err}"
    );

    let allowed = write(&dir, "allowed.toml", &probed);
    let out = check(&allowed);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("warning: ")
            && l.contains("field `interval`: 100ms is not a whole number of seconds")
            && l.contains("accepted because [gateway] allow_subsecond_timers = true")),
        "no warning about the sub-second interval:\n{stdout}"
    );
}
