//! Choosing the rule and the server: multi-site listeners sharing an address
//! (exact host, wildcard, basic catch-all), unknown hosts, round-robin, and
//! cookie-based affinity.

use std::time::{Duration, Instant};

use ringgate_e2e::*;

/// Backends `exact`, `wild` and `basic` behind three listeners on one
/// address, and `only-b` behind a multi-site listener with no basic
/// listener beside it.
struct Sites {
    gw: Gateway,
    shared: std::net::SocketAddr,
    _backends: Vec<Backend>,
}

fn sites() -> Sites {
    let backends: Vec<Backend> =
        ["exact", "wild", "basic", "only-b"].iter().map(|n| Backend::start_ok(n).expect("start backend")).collect();
    // Listeners can only share a fixed port: take one that is free now.
    let shared = format!("127.0.0.1:{}", free_port());
    let addrs: Vec<[std::net::SocketAddr; 1]> = backends.iter().map(|b| [b.addr()]).collect();
    let config = sites_config(&[
        Site { listen: &shared, host_names: &["a.example.com"], ..Site::basic("site-exact", &addrs[0]) },
        Site { listen: &shared, host_names: &["*.example.com"], ..Site::basic("site-wild", &addrs[1]) },
        Site { listen: &shared, ..Site::basic("site-basic", &addrs[2]) },
        Site { listen: "127.0.0.1:0", host_names: &["b.example.org"], ..Site::basic("site-only-b", &addrs[3]) },
    ]);
    let gw = Gateway::start(&config);
    let shared = gw.addr("site-exact");
    assert_eq!(gw.addr("site-wild"), shared);
    assert_eq!(gw.addr("site-basic"), shared);
    Sites { gw, shared, _backends: backends }
}

fn backend_for_host(addr: std::net::SocketAddr, host: &str) -> Response {
    request(addr, "GET", "/who", &[("Host", host)], b"").expect("GET /who")
}

#[test]
fn host_header_picks_the_listener_on_a_shared_address() {
    let s = sites();
    let cases = [
        ("a.example.com", "exact"),
        ("A.Example.COM", "exact"),
        ("a.example.com:8080", "exact"),
        ("x.example.com", "wild"),
        ("deep.x.example.com", "wild"),
        ("example.com", "basic"),
        ("other.org", "basic"),
        ("127.0.0.1", "basic"),
    ];
    for (host, expected) in cases {
        let r = backend_for_host(s.shared, host);
        assert_eq!(r.status, 200, "Host {host}: {}", s.gw.stderr());
        assert_eq!(r.header("x-backend"), Some(expected), "Host {host}");
    }
}

#[test]
fn absolute_form_target_routes_by_its_authority() {
    let s = sites();
    let mut c = Client::connect(s.shared).unwrap();
    c.send(b"GET http://a.example.com/who HTTP/1.1\r\nHost: other.org\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", s.gw.stderr());
    assert_eq!(r.header("x-backend"), Some("exact"));
}

#[test]
fn one_client_connection_can_reach_different_sites() {
    let s = sites();
    let mut c = Client::connect(s.shared).unwrap();
    for (host, expected) in [("a.example.com", "exact"), ("x.example.com", "wild"), ("other.org", "basic")] {
        let r = c.request("GET", "/who", &[("Host", host)], b"").unwrap();
        assert_eq!(r.header("x-backend"), Some(expected), "Host {host}");
    }
}

#[test]
fn unknown_host_without_a_basic_listener_answers_404_no_route() {
    let s = sites();
    let addr = s.gw.addr("site-only-b");
    let mut c = Client::connect(addr).unwrap();
    let r = c.request("GET", "/who", &[("Host", "unknown.example.net")], b"").unwrap();
    assert_eq!(r.status, 404, "{}", s.gw.stderr());
    assert_eq!(r.header("x-ringgate-error"), Some("NO_ROUTE"));
    let text = r.text();
    // No listener address in the public body (`error_detail = "public"`).
    assert_eq!(text, "404 Not Found: no site on this address answers this host\n");
    // A GET without a body leaves the connection usable.
    let r = c.request("GET", "/who", &[("Host", "b.example.org")], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-backend"), Some("only-b"));
}

fn affinity(gw: &Gateway, cookie: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    let r = request(gw.addr("public"), "GET", "/pinned", &headers, b"").expect("GET /pinned");
    assert_eq!(r.status, 200, "{}", gw.stderr());
    r
}

/// `ApplicationGatewayAffinity=<token>` out of a Set-Cookie value.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().trim().to_string()
}

#[test]
fn requests_without_a_cookie_alternate_between_servers() {
    let b1 = Backend::start_ok("b1").unwrap();
    let b2 = Backend::start_ok("b2").unwrap();
    let gw = Gateway::start(&simple_config(&[b1.addr(), b2.addr()], ""));
    let seen: Vec<String> = (0..6).map(|_| get(gw.addr("public"), "/rr").header("x-backend").unwrap().into()).collect();
    for pair in seen.windows(2) {
        assert_ne!(pair[0], pair[1], "round-robin: {seen:?}");
    }
    assert_eq!(b1.requests_to("/rr"), 3);
    assert_eq!(b2.requests_to("/rr"), 3);
}

#[test]
fn affinity_cookie_pins_a_client_to_one_server() {
    let b1 = Backend::start_ok("b1").unwrap();
    let b2 = Backend::start_ok("b2").unwrap();
    let gw = Gateway::start(&simple_config(&[b1.addr(), b2.addr()], "cookie_based_affinity = true"));

    let first = affinity(&gw, None);
    let pinned = first.header("x-backend").unwrap().to_string();
    let set_cookie = first.header("set-cookie").expect("the first response sets the affinity cookie");
    assert!(set_cookie.starts_with("ApplicationGatewayAffinity="), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    let cookie = cookie_pair(set_cookie);

    for _ in 0..8 {
        let r = affinity(&gw, Some(&format!("theme=dark; {cookie}")));
        assert_eq!(r.header("x-backend"), Some(pinned.as_str()), "the cookie must pin the server");
        assert_eq!(r.header("set-cookie"), None, "no new cookie while the pinned server serves");
    }

    // Without the cookie, servers alternate and each sets its own cookie.
    let without: Vec<Response> = (0..4).map(|_| affinity(&gw, None)).collect();
    let names: Vec<&str> = without.iter().map(|r| r.header("x-backend").unwrap()).collect();
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "round-robin without a cookie: {names:?}");
    }
    for r in &without {
        let c = cookie_pair(r.header("set-cookie").expect("a cookie on every unpinned response"));
        assert_eq!(c == cookie, r.header("x-backend") == Some(pinned.as_str()), "cookie {c} for {names:?}");
    }
}

#[test]
fn affinity_cookie_is_honoured_by_another_gateway_with_the_same_configuration() {
    let b1 = Backend::start_ok("b1").unwrap();
    let b2 = Backend::start_ok("b2").unwrap();
    let config = simple_config(&[b1.addr(), b2.addr()], "cookie_based_affinity = true");
    let gw1 = Gateway::start(&config);
    let gw2 = Gateway::start(&config);
    let first = affinity(&gw1, None);
    let cookie = cookie_pair(first.header("set-cookie").unwrap());
    for _ in 0..4 {
        let r = affinity(&gw2, Some(&cookie));
        assert_eq!(r.header("x-backend"), first.header("x-backend"));
    }
}

#[test]
fn affinity_to_a_stopped_server_answers_without_hanging() {
    let b1 = Backend::start_ok("b1").unwrap();
    let b2 = Backend::start_ok("b2").unwrap();
    let gw = Gateway::start(&simple_config(&[b1.addr(), b2.addr()], "cookie_based_affinity = true"));
    let first = affinity(&gw, None);
    let cookie = cookie_pair(first.header("set-cookie").unwrap());
    let (pinned, other) = if first.header("x-backend") == Some("b1") { (&b1, &b2) } else { (&b2, &b1) };
    pinned.stop_listening();
    pinned.close_connections();

    // Without health probing the gateway still picks the pinned server, so
    // a 502 CONNECT_FAILED is as acceptable as a switch to the other one;
    // what matters is a prompt answer and a gateway that keeps working.
    for _ in 0..3 {
        let started = Instant::now();
        let r = request(gw.addr("public"), "GET", "/pinned", &[("Cookie", &cookie)], b"").unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        match r.status {
            200 => assert_eq!(r.header("x-backend"), Some(other.name())),
            502 => assert!(matches!(r.header("x-ringgate-error"), Some("CONNECT_FAILED" | "BACKEND_CLOSED")), "{r:?}"),
            s => panic!("unexpected status {s}: {r:?}"),
        }
    }
    // The other server's cookie still works.
    let other_cookie = (0..4)
        .map(|_| affinity_any(&gw))
        .find(|r| r.header("x-backend") == Some(other.name()))
        .and_then(|r| r.header("set-cookie").map(cookie_pair))
        .expect("round-robin reaches the other server");
    let r = request(gw.addr("public"), "GET", "/pinned", &[("Cookie", &other_cookie)], b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("x-backend"), Some(other.name()));
}

/// A request without a cookie, whatever it is answered with.
fn affinity_any(gw: &Gateway) -> Response {
    request(gw.addr("public"), "GET", "/pinned", &[], b"").expect("GET /pinned")
}

/// Connection draining: a client pinned to a server that turns unhealthy
/// keeps it for the draining time-out; afterwards it is moved, with a new
/// cookie. Without draining it would move at once (see the test above).
#[test]
fn connection_draining_keeps_affinity_to_an_unhealthy_server_for_its_time_out() {
    let b1 = Backend::builder().name("b1").health_path("/h").start().unwrap();
    let b2 = Backend::builder().name("b2").health_path("/h").start().unwrap();
    let addrs = [b1.addr().to_string(), b2.addr().to_string()];
    let config = probed_config(
        &addrs,
        80,
        "cookie_based_affinity = true\nconnection_draining = { enabled = true, timeout = 3 }",
        Some("path = \"/h\"\ninterval = \"100ms\"\ntimeout = \"1s\"\nunhealthy_threshold = 1"),
        "127.0.0.1:0",
    )
    .replace("access_log = \"off\"", "access_log = \"stdout\"");
    let gw = Gateway::start(&config);
    let first = affinity(&gw, None);
    let pinned = first.header("x-backend").unwrap().to_string();
    let cookie = cookie_pair(first.header("set-cookie").unwrap());
    let (down, down_addr) = if pinned == "b1" { (&b1, b1.addr()) } else { (&b2, b2.addr()) };
    // The pinned server fails its probes but still answers requests.
    down.set_health(500, "maintenance");
    let unhealthy = wait_until(Duration::from_secs(10), || {
        let (_, body) = gw.admin_get("/backend-health");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["rules"][0]["servers"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["address"] == down_addr.to_string() && s["state"] == "Unhealthy"))
    });
    assert!(unhealthy, "{pinned} never turned unhealthy");
    let marked = Instant::now();
    let during = affinity(&gw, Some(&cookie));
    assert!(marked.elapsed() < Duration::from_secs(2), "the check ran well inside the draining time-out");
    assert_eq!(during.header("x-backend"), Some(pinned.as_str()), "kept while draining");
    assert_eq!(during.header("set-cookie"), None, "no new cookie while it drains");
    // A client without a cookie never reaches it.
    for _ in 0..4 {
        assert_ne!(affinity(&gw, None).header("x-backend"), Some(pinned.as_str()));
    }
    // After the time-out the pinned client moves, with a new cookie.
    std::thread::sleep(Duration::from_millis(3200).saturating_sub(marked.elapsed()));
    let after = affinity(&gw, Some(&cookie));
    assert_ne!(after.header("x-backend"), Some(pinned.as_str()), "moved after the draining time-out");
    assert!(after.header("set-cookie").is_some(), "re-pinned to the server it now uses");
}
