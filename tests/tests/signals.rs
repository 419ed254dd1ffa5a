//! The operator's signals, as nginx users send them: SIGUSR1 reopens the
//! access log file (logrotate's `postrotate`), SIGQUIT drains and exits like
//! SIGTERM. (SIGHUP's reload is in `reload.rs`.)

use std::time::Duration;

use ringgate_e2e::*;

const SOON: Duration = Duration::from_secs(10);

/// Lines of a file that parse as access-log JSON objects with this path.
fn logged_paths(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["path"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn sigusr1_reopens_the_access_log_after_a_rename() {
    let b = Backend::builder().start().expect("backend");
    let dir = TempDir::new("sigusr1");
    let log = dir.path().join("access.log");
    let config = simple_config(&[b.addr()], "")
        .replace("access_log = \"stdout\"", &format!("access_log = \"{}\"", log.display()));
    assert!(config.contains("access.log"), "the config names the log file:\n{config}");
    let mut gw = Gateway::start(&config);
    assert_eq!(get(gw.addr("public"), "/before").status, 200);
    assert!(wait_until(SOON, || logged_paths(&log).contains(&"/before".to_string())), "first line never written");

    // logrotate: rename, then signal.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rename the log");
    gw.signal(libc::SIGUSR1);
    assert!(wait_until(SOON, || log.exists()), "SIGUSR1 did not create the log file again: {}", gw.stderr());
    assert!(gw.is_running(), "SIGUSR1 must not stop the gateway: {}", gw.stderr());
    assert_eq!(get(gw.addr("public"), "/after").status, 200);
    assert!(
        wait_until(SOON, || logged_paths(&log).contains(&"/after".to_string())),
        "the request after the signal is not in the new file: {:?}",
        logged_paths(&log)
    );
    assert_eq!(logged_paths(&rotated), ["/before"], "the rotated file keeps only what came before");
    assert!(!logged_paths(&log).contains(&"/before".to_string()));
    assert!(gw.wait_log("reopened", SOON), "{}", gw.stderr());
}

#[test]
fn sigquit_drains_and_exits_like_sigterm() {
    let b = Backend::builder().start().expect("backend");
    let gw = Gateway::start(&simple_config(&[b.addr()], "request_timeout = 10"));
    let addr = gw.addr("public");
    let slow = std::thread::spawn(move || request(addr, "GET", "/slow?ms=800", &[], b""));
    assert!(wait_until(SOON, || gw.metric("ringgate_backend_connections").unwrap_or(0) >= 1), "no request in flight");
    gw.signal(libc::SIGQUIT);
    let r = slow.join().expect("client thread").expect("the request in flight is answered");
    assert_eq!(r.status, 200, "in-flight request finished during the drain");
    assert!(gw.wait_log("SIGQUIT: draining", SOON), "{}", gw.stderr());
    let status = gw.stop_within(SOON).expect("the gateway exits after SIGQUIT");
    assert!(status.success(), "exit status {status:?}");
}

/// A second `ringgate run` on an address another ringgate serves fails at
/// start, saying so, instead of sharing it through SO_REUSEPORT and taking
/// half the connections; the first one keeps serving all of them.
#[test]
fn a_second_instance_on_the_same_address_fails_at_start() {
    let b = Backend::builder().start().expect("backend");
    let port = free_port();
    let config = simple_config(&[b.addr()], "")
        .replacen("\nlisten = \"127.0.0.1:0\"", &format!("\nlisten = \"127.0.0.1:{port}\""), 1)
        .replace("workers = 1", "workers = 2");
    assert!(config.contains(&format!("127.0.0.1:{port}")), "{config}");
    let first = Gateway::start(&config);
    let addr = first.addr("public");
    assert_eq!(get(addr, "/one").status, 200);
    let second = Gateway::start_with(&config, &[]);
    match second {
        Ok(g) => panic!("the second instance started on {addr}: {}", g.stderr()),
        Err(e) => assert!(
            e.contains(&format!("cannot listen on 127.0.0.1:{port}"))
                && e.contains("is another ringgate running on it?"),
            "{e}"
        ),
    }
    // The first instance (two workers sharing the address) got everything.
    for i in 0..20 {
        assert_eq!(get(addr, &format!("/after-{i}")).status, 200);
    }
    assert_eq!(first.metric("ringgate_client_connections_total{protocol=\"HTTP/1.1\"}").unwrap_or(0), 21);
}
