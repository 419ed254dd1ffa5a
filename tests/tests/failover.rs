//! Failover: a request whose connection could not be opened (the server died
//! and its probe has not noticed yet) goes to another healthy server of the
//! pool, up to the settings' `max_attempts`; an affinity client of the dead
//! server is moved and given the new server's cookie; a POST is sent on
//! (it cannot have reached the dead server); each retry is counted by reason.

use std::time::Duration;

use ringgate_e2e::*;

/// Two servers, `a` and `b`, behind one rule; the default probe (30 s, three
/// failures) keeps a server that dies "healthy" for the whole test, which
/// is the window failover covers.
fn two_servers(settings: &str) -> (Gateway, Backend, Backend) {
    let a = Backend::start_ok("a").expect("backend a");
    let b = Backend::start_ok("b").expect("backend b");
    let gw = Gateway::start(&simple_config(&[a.addr(), b.addr()], settings));
    (gw, a, b)
}

/// Requests that are not the default probe's (`GET /`, sent to each server
/// at start and every 30 s): the test's own traffic.
fn traffic(b: &Backend) -> u64 {
    b.requests() - b.requests_to("/")
}

fn retries(gw: &Gateway, reason: &str) -> u64 {
    gw.metric(&format!("ringgate_retries_total{{reason=\"{reason}\"}}")).unwrap_or(0)
}

#[test]
fn a_dead_server_is_skipped_with_no_502_for_the_client() {
    let (gw, a, b) = two_servers("");
    let addr = gw.addr("public");
    for i in 0..4 {
        assert_eq!(get(addr, &format!("/warm-{i}")).status, 200);
    }
    assert!(traffic(&b) > 0, "both servers serve before the failure");
    // b dies: connects are refused, and its pooled connections close.
    b.stop_listening();
    b.close_connections();
    let before_a = traffic(&a);
    let mut answered = 0;
    for i in 0..40 {
        let r = get(addr, &format!("/after-{i}"));
        assert_eq!(r.status, 200, "request {i}: {:?} {}\n{}", r.header("x-ringgate-error"), r.text(), gw.stderr());
        assert_eq!(r.header("x-backend"), Some("a"), "request {i}");
        answered += 1;
    }
    assert_eq!(traffic(&a) - before_a, answered, "a served every request");
    let moved = retries(&gw, "connect_failed");
    assert!(moved >= 1, "no retry counted: {:?}", gw.metric("ringgate_retries_total{reason=\"connect_failed\"}"));
    assert!(moved <= 40, "at most one retry per request: {moved}");
    assert!(gw.wait_log("retrying on another server", Duration::from_secs(5)), "{}", gw.stderr());
}

#[test]
fn an_affinity_client_of_a_dead_server_is_moved_and_given_a_new_cookie() {
    let (gw, a, b) = two_servers("cookie_based_affinity = true");
    let addr = gw.addr("public");
    // Find b's cookie.
    let mut b_cookie = None;
    for i in 0..6 {
        let r = get(addr, &format!("/find-{i}"));
        if r.header("x-backend") == Some("b") {
            b_cookie = r.header("set-cookie").map(|c| c.split(';').next().unwrap_or_default().to_string());
            break;
        }
    }
    let b_cookie = b_cookie.expect("round robin reaches b");
    b.stop_listening();
    b.close_connections();
    let r = request(addr, "GET", "/pinned", &[("Cookie", &b_cookie)], b"").expect("answer");
    assert_eq!(r.status, 200, "{:?} {}", r.header("x-ringgate-error"), r.text());
    assert_eq!(r.header("x-backend"), Some("a"));
    let new_cookie =
        r.header("set-cookie").expect("the moved client gets a cookie").split(';').next().unwrap_or_default();
    assert_ne!(new_cookie, b_cookie, "a new server, a new cookie");
    // With the new cookie, the client stays on a without further retries.
    let before = retries(&gw, "connect_failed");
    let r = request(addr, "GET", "/pinned-again", &[("Cookie", new_cookie)], b"").expect("answer");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("a")));
    assert_eq!(r.header("set-cookie"), None);
    assert_eq!(retries(&gw, "connect_failed"), before);
    assert_eq!(a.requests_to("/pinned"), 1);
}

#[test]
fn a_post_to_a_dead_server_goes_to_another_once_with_its_body() {
    let (gw, a, b) = two_servers("");
    let addr = gw.addr("public");
    b.stop_listening();
    b.close_connections();
    let body = b"order=42&qty=1";
    for i in 0..4 {
        let r = request(addr, "POST", &format!("/order-{i}"), &[("Content-Type", "text/plain")], body).expect("answer");
        assert_eq!(r.status, 200, "{:?} {}", r.header("x-ringgate-error"), r.text());
    }
    for i in 0..4 {
        let seen: Vec<_> = a.recorded().into_iter().filter(|q| q.path() == format!("/order-{i}")).collect();
        assert_eq!(seen.len(), 1, "POST /order-{i} reached a exactly once");
        assert_eq!(seen[0].body, body, "with its body");
    }
}

#[test]
fn max_attempts_1_means_no_failover() {
    let (gw, _a, b) = two_servers("max_attempts = 1");
    let addr = gw.addr("public");
    b.stop_listening();
    b.close_connections();
    let codes: Vec<Option<String>> =
        (0..6).map(|i| get(addr, &format!("/x-{i}")).header("x-ringgate-error").map(str::to_string)).collect();
    assert!(codes.iter().any(|c| c.as_deref() == Some("CONNECT_FAILED")), "{codes:?}");
    assert_eq!(retries(&gw, "connect_failed"), 0);
}

/// `POST /servers/<pool>/<server>/drain` takes a server out of rotation for
/// every rule on that pool (shown as Draining in /backend-health, probes go
/// on), `/enable` puts it back; an unknown server is a 404, a GET a 405.
#[test]
fn the_admin_api_drains_and_enables_a_server() {
    let (gw, a, b) = two_servers("");
    let addr = gw.addr("public");
    let admin = gw.admin();
    let server = b.addr().to_string();
    let r = request(admin, "POST", &format!("/servers/pool01/{server}/drain"), &[], b"").expect("admin");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("drained"), "{}", r.text());
    let before_b = traffic(&b);
    for i in 0..10 {
        let r = get(addr, &format!("/while-drained-{i}"));
        assert_eq!((r.status, r.header("x-backend")), (200, Some("a")), "request {i}");
    }
    assert_eq!(traffic(&b) - before_b, 0, "a drained server gets no new requests");
    let (_, view) = gw.admin_get("/backend-health");
    let view: serde_json::Value = serde_json::from_str(&view).expect("json");
    let servers: Vec<&serde_json::Value> =
        view["rules"].as_array().expect("rules").iter().flat_map(|r| r["servers"].as_array().unwrap().iter()).collect();
    let bv = servers.iter().find(|s| s["address"] == server.as_str()).expect("b in the view");
    assert_eq!((bv["state"].as_str(), bv["admin_drained"].as_bool()), (Some("Draining"), Some(true)), "{bv}");

    let r = request(admin, "POST", &format!("/servers/pool01/{server}/enable"), &[], b"").expect("admin");
    assert_eq!(r.status, 200, "{}", r.text());
    let served_b = (0..6).any(|i| get(addr, &format!("/enabled-{i}")).header("x-backend") == Some("b"));
    assert!(served_b, "b is back in rotation");
    assert!(traffic(&a) > 0);

    let r = request(admin, "POST", "/servers/pool01/10.9.9.9:80/drain", &[], b"").expect("admin");
    assert_eq!(r.status, 404, "{}", r.text());
    let r = request(admin, "GET", &format!("/servers/pool01/{server}/drain"), &[], b"").expect("admin");
    assert_eq!(r.status, 405);
}

/// `"addr weight=N"`: a 3:1 pool sends three requests to the first server
/// for each one to the second, spread out (smooth weighted round robin).
#[test]
fn weights_share_the_round_robin() {
    let a = Backend::start_ok("a").expect("backend a");
    let b = Backend::start_ok("b").expect("backend b");
    let config = simple_config(&[a.addr(), b.addr()], "")
        .replace(&format!("\"{}\"", a.addr()), &format!("\"{} weight=3\"", a.addr()));
    assert!(config.contains("weight=3"), "{config}");
    let gw = Gateway::start(&config);
    let seen: Vec<String> = (0..40)
        .map(|i| get(gw.addr("public"), &format!("/w-{i}")).header("x-backend").unwrap_or_default().to_string())
        .collect();
    assert_eq!(seen.iter().filter(|s| *s == "a").count(), 30, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "b").count(), 10, "{seen:?}");
    assert!(!seen.windows(2).any(|w| w[0] == "b" && w[1] == "b"), "b's turns are spread out: {seen:?}");
    let out =
        std::process::Command::new(binary()).args(["check", "--config"]).arg(gw.config_path()).output().expect("check");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} weight=3", a.addr())));
}

/// `load_distribution = "least_connections"`: while one server holds a slow
/// request, the next requests go to the other, where round robin would
/// alternate.
#[test]
fn least_connections_avoids_the_busy_server() {
    let (gw, a, b) = two_servers("load_distribution = \"least_connections\"");
    let addr = gw.addr("public");
    let slow = std::thread::spawn(move || get(addr, "/slow?ms=1500"));
    assert!(
        wait_until(Duration::from_secs(5), || a.requests_to("/slow") + b.requests_to("/slow") == 1),
        "slow request not sent"
    );
    let busy = if a.requests_to("/slow") == 1 { "a" } else { "b" };
    for i in 0..6 {
        let r = get(addr, &format!("/quick-{i}"));
        assert_eq!(r.status, 200);
        assert_ne!(r.header("x-backend"), Some(busy), "request {i} went to the busy server");
    }
    assert_eq!(slow.join().expect("slow client").status, 200);
}
