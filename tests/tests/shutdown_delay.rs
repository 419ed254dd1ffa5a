//! `shutdown_delay`: on SIGTERM the gateway first fails its readiness check
//! (`/healthz` answers 503) while still serving, so a load balancer can stop
//! sending it traffic before it stops accepting.

use std::time::{Duration, Instant};

use ringgate_e2e::*;

#[test]
fn sigterm_fails_healthz_first_and_keeps_serving_for_the_delay() {
    let b = Backend::start_ok("b1").unwrap();
    let cfg = simple_config(&[b.addr()], "")
        .replace("drain_timeout = 5\n", "drain_timeout = 5\nshutdown_delay = \"1500ms\"\n");
    let gw = Gateway::start(&cfg);
    assert_eq!(gw.admin_get("/healthz").0, 200);
    let t0 = Instant::now();
    gw.signal(libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(2), || gw.admin_get("/healthz").0 == 503), "{}", gw.stderr());
    // Still serving new connections during the delay.
    let r = get(gw.addr("public"), "/during-delay");
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "the request must land inside the delay for this test to mean anything"
    );
    let status = gw.stop_within(Duration::from_secs(15)).expect("exits");
    assert!(status.success());
    assert!(t0.elapsed() >= Duration::from_millis(1500), "it waited the delay before stopping");
}
