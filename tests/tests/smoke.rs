//! The smallest end-to-end check: the binary starts, proxies, and stops.

use ringgate_e2e::*;

#[test]
fn proxies_a_get_and_exits_cleanly_on_sigterm() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let r = get(gw.addr("public"), "/hello");
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("x-backend"), Some("b1"));
    assert_eq!(b.requests_to("/hello"), 1);
    let status = gw.stop();
    assert!(status.success(), "{status}");
}
