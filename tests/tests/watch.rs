//! `watch_config`: a changed configuration file is reloaded without a signal
//! (how a Kubernetes ConfigMap update reaches the gateway), and a broken one
//! is rejected while the running configuration keeps serving.

use std::time::Duration;

use ringgate_e2e::*;

fn config(backend: std::net::SocketAddr) -> String {
    simple_config(&[backend], "")
        .replace("drain_timeout = 5\n", "drain_timeout = 5\nwatch_config = true\nwatch_interval = \"100ms\"\n")
}

fn backend_of(gw: &Gateway) -> String {
    get(gw.addr("public"), "/").header("x-backend").unwrap_or_default().to_string()
}

#[test]
fn a_changed_file_is_reloaded_and_a_broken_one_rejected() {
    let a = Backend::start_ok("a").unwrap();
    let b = Backend::start_ok("b").unwrap();
    let gw = Gateway::start(&config(a.addr()));
    assert_eq!(backend_of(&gw), "a");

    std::fs::write(gw.config_path(), config(b.addr())).unwrap();
    assert!(wait_until(Duration::from_secs(10), || backend_of(&gw) == "b"), "not reloaded:\n{}", gw.stderr());
    assert!(gw.stderr().contains("changed: reloading"), "{}", gw.stderr());

    std::fs::write(gw.config_path(), "[[listener]]\nname = \n").unwrap();
    assert!(
        gw.wait_log("reload rejected, the previous configuration keeps serving", Duration::from_secs(10)),
        "{}",
        gw.stderr()
    );
    assert_eq!(backend_of(&gw), "b", "the running configuration keeps serving");
    assert!(gw.stop().success());
}
