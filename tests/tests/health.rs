//! Health probing end to end: the real binary probes real backends on
//! loopback, and these tests read the result where an operator would, in
//! `GET /backend-health`, the log, `ringgate health` and the traffic itself.
//!
//! Probe intervals are in milliseconds so thresholds are crossed within a
//! second or two. Nothing sleeps to synchronise: every wait polls the backend
//! counters or the admin API against a deadline.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ringgate_e2e::*;
use serde_json::Value;

/// The path every custom probe here asks for (the test backend's health path).
const PROBE_PATH: &str = "/health";
/// How long a state change may take to show up when it is expected soon.
const SOON: Duration = Duration::from_secs(5);

/// See [`probed_config`]: access log off, admin API on port 0.
fn gateway_config(addresses: &[String], port: u16, probe: Option<&str>) -> String {
    probed_config(addresses, port, "", probe, "127.0.0.1:0")
}

/// `addresses` for [`gateway_config`]: each server's full `ip:port`.
fn addrs(servers: &[SocketAddr]) -> Vec<String> {
    servers.iter().map(ToString::to_string).collect()
}

/// A backend called `name` whose health path answers `status`/`body`.
fn backend(name: &str, status: u16, body: &str) -> Backend {
    Backend::builder().name(name).health(status, body).start().expect("start test backend")
}

/// `GET /backend-health`, parsed.
fn view(gw: &Gateway) -> Value {
    let (status, body) = gw.admin_get("/backend-health");
    assert_eq!(status, 200, "GET /backend-health: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET /backend-health is not JSON ({e}): {body}"))
}

/// Server `address` among the servers of rule `rule` in a view.
fn server_of(view: &Value, rule: &str, address: &str) -> Option<Value> {
    let rules = view["rules"].as_array()?;
    let r = rules.iter().find(|r| r["rule"] == rule)?;
    r["servers"].as_array()?.iter().find(|s| s["address"] == address).cloned()
}

/// Server `address` of rule `rule01`, as the gateway sees it now.
fn server(gw: &Gateway, address: &str) -> Value {
    let v = view(gw);
    server_of(&v, "rule01", address).unwrap_or_else(|| panic!("no server {address} in rule01: {v:#}"))
}

/// ringgate's own words for a server's reason: what follows Application
/// Gateway v2's sentence, in parentheses, where v2 has one.
fn own_reason(s: &Value) -> Value {
    let r = s["reason"].as_str().unwrap_or_default();
    match r.rfind(" (") {
        Some(i) if r.ends_with(')') && r.starts_with(|c: char| c.is_ascii_uppercase()) => {
            Value::from(&r[i + 2..r.len() - 1])
        }
        _ => s["reason"].clone(),
    }
}

fn state(s: &Value) -> &str {
    s["state"].as_str().unwrap_or_else(|| panic!("server view without a state: {s:#}"))
}

fn num(s: &Value, field: &str) -> u64 {
    s[field].as_u64().unwrap_or_else(|| panic!("server view without a number `{field}`: {s:#}"))
}

/// Waits until server `address` of rule01 satisfies `cond`; returns its view.
fn wait_server(gw: &Gateway, address: &str, what: &str, mut cond: impl FnMut(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(SOON, || {
        last = server(gw, address);
        cond(&last)
    });
    assert!(ok, "{address} never became {what}; last view: {last:#}\nlog:\n{}", gw.stderr());
    last
}

fn wait_state(gw: &Gateway, address: &str, want: &str) -> Value {
    wait_server(gw, address, want, |s| state(s) == want)
}

/// Requests that are not probes, as the backend recorded them.
fn non_probe_requests(b: &Backend) -> usize {
    b.recorded().iter().filter(|r| r.path() != PROBE_PATH).count()
}

/// Runs `switch` (a change of what the backend's health path answers) between
/// two probes, so that no probe straddles it: every probe the backend had
/// counted by then was already recorded by the gateway, and every later one
/// sees the new answer. Returns the backend's probe count at the switch and
/// the server's view just before it.
fn switch_between_probes(gw: &Gateway, b: &Backend, address: &str, switch: impl Fn()) -> (u64, Value) {
    for _ in 0..20 {
        // Right after a probe is recorded the next one is a whole interval away.
        let before = num(&server(gw, address), "probes");
        wait_server(gw, address, "probed again", |s| num(s, "probes") > before);
        let at_switch = server(gw, address);
        let recorded = num(&at_switch, "probes");
        if b.requests_to(PROBE_PATH) != recorded {
            continue; // a probe is in flight; try after the next one
        }
        switch();
        // The probe count only grows and the gateway records a probe after the
        // backend counts it: equality means nothing arrived since `at_switch`.
        let base = b.requests_to(PROBE_PATH);
        assert_eq!(
            base, recorded,
            "a probe arrived during the switch (view {at_switch:#}); the machine is too loaded for a 300 ms interval"
        );
        return (base, at_switch);
    }
    panic!("{address}: never found a moment without a probe in flight\nlog:\n{}", gw.stderr());
}

/// After a switch at which the backend had served `base` probes and the
/// gateway had recorded `p0`, polls server `address` until its state is `to`.
/// Checks that it is still `from` once `threshold - 1` probes since the switch
/// have been recorded (with `counter` at that number), and that it is `to`
/// once `threshold` have been (with `counter` equal to the threshold), and
/// never earlier. Returns the first view showing `to`.
#[allow(clippy::too_many_arguments)]
fn watch_flip(
    gw: &Gateway,
    b: &Backend,
    address: &str,
    (base, p0): (u64, u64),
    from: &str,
    to: &str,
    threshold: u64,
    counter: &str,
) -> Value {
    let mut seen_one_short = false;
    let mut flipped = None;
    let ok = wait_until(Duration::from_secs(8), || {
        let s = server(gw, address);
        // Read after the view: the backend counts a probe before the gateway
        // records it, so this is at least what the view can reflect.
        let served = b.requests_to(PROBE_PATH) - base;
        let recorded = num(&s, "probes") - p0;
        if state(&s) == to {
            assert!(
                recorded >= threshold,
                "{address} became {to} after {recorded} probes (threshold {threshold}): {s:#}"
            );
            assert!(served >= threshold, "{address} became {to} when the backend had served {served} probes: {s:#}");
            flipped = Some(s);
            return true;
        }
        assert_eq!(state(&s), from, "{address} left {from} for neither {to}: {s:#}");
        // The view reads the state just before the counters, so it may show
        // the probe that flips the state without the flip; never two.
        assert!(
            recorded <= threshold,
            "{address} is still {from} after {recorded} probes since the switch (threshold {threshold}): {s:#}"
        );
        if recorded == threshold - 1 {
            assert_eq!(num(&s, counter), threshold - 1, "{s:#}");
            seen_one_short = true;
        }
        false
    });
    assert!(ok, "{address} never became {to}: {:#}\nlog:\n{}", server(gw, address), gw.stderr());
    assert!(seen_one_short, "never saw {address} still {from} after {} probes since the switch", threshold - 1);
    let s = flipped.expect("set when the wait succeeded");
    assert_eq!(num(&s, counter), threshold, "{counter} when the state flipped: {s:#}");
    assert_eq!(num(&s, "probes") - p0, threshold, "probes since the switch when the state flipped: {s:#}");
    s
}

/// `GET path` through listener `public`.
fn get_public(gw: &Gateway, path: &str) -> Response {
    get(gw.addr("public"), path)
}

/// Runs `ringgate` with `args`.
fn ringgate(args: &[&str]) -> Output {
    Command::new(binary()).args(args).output().expect("run the ringgate binary")
}

#[test]
fn server_goes_unhealthy_after_exactly_the_unhealthy_threshold() {
    let b1 = backend("b1", 200, "ok");
    let b2 = backend("b2", 200, "ok");
    let probe = "path = \"/health\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\nunhealthy_threshold = 3\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[b1.addr(), b2.addr()]), 80, Some(probe)));
    let a1 = b1.addr().to_string();
    wait_state(&gw, &a1, "Healthy");
    wait_state(&gw, &b2.addr().to_string(), "Healthy");

    // Both take traffic while healthy.
    let before: Vec<String> =
        (0..4).map(|_| get_public(&gw, "/before").header("x-backend").unwrap_or("-").to_string()).collect();
    assert!(before.iter().any(|b| b == "b1") && before.iter().any(|b| b == "b2"), "{before:?}");

    let (base, at_switch) = switch_between_probes(&gw, &b1, &a1, || b1.set_health(500, "broken"));
    assert_eq!(state(&at_switch), "Healthy", "{at_switch:#}");
    assert_eq!(num(&at_switch, "consecutive_failures"), 0, "{at_switch:#}");
    let flipped =
        watch_flip(&gw, &b1, &a1, (base, num(&at_switch, "probes")), "Healthy", "Unhealthy", 3, "consecutive_failures");
    assert_eq!(flipped["last_status"], 500, "{flipped:#}");
    assert_eq!(flipped["reason_kind"], "status_mismatch", "{flipped:#}");
    assert!(
        gw.wait_log(&format!("server {a1} is Unhealthy after 3 consecutive failed probes"), SOON),
        "{}",
        gw.stderr()
    );

    // From now on every request goes to b2, and b1 sees only probes.
    let b1_requests = non_probe_requests(&b1);
    for i in 0..10 {
        let r = get_public(&gw, &format!("/after/{i}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-backend"), Some("b2"));
    }
    assert_eq!(non_probe_requests(&b1), b1_requests, "the unhealthy server got traffic");
}

#[test]
fn all_unhealthy_pool_answers_502_without_backend_io() {
    let b1 = backend("b1", 503, "down");
    let b2 = backend("b2", 503, "down");
    let probe = "path = \"/health\"\ninterval = \"100ms\"\nunhealthy_threshold = 2\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[b1.addr(), b2.addr()]), 80, Some(probe)));
    for b in [&b1, &b2] {
        let s = wait_state(&gw, &b.addr().to_string(), "Unhealthy");
        assert_eq!(own_reason(&s), "status code mismatch: got 503", "{s:#}");
    }

    let started = Instant::now();
    let r = get_public(&gw, "/anything");
    let took = started.elapsed();
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-ringgate-error"), Some("ALL_UNHEALTHY"), "{:?}", r.headers);
    assert!(took < Duration::from_millis(500), "an all-unhealthy 502 took {took:?}");

    for b in [&b1, &b2] {
        let recorded = b.recorded();
        assert!(!recorded.is_empty(), "{} was never probed", b.name());
        for req in &recorded {
            assert_eq!((req.method.as_str(), req.path()), ("GET", PROBE_PATH), "{} got a non-probe request", b.name());
        }
        // Every connection carried a request: the gateway did not even open
        // one. (A probe's connection may be accepted a moment before its
        // request is read, hence the wait.)
        let mut ids = Vec::new();
        let every_connection_had_a_request = wait_until(SOON, || {
            ids = b.recorded().iter().map(|r| r.connection_id).collect();
            ids.sort_unstable();
            ids.dedup();
            b.connections() == ids.len() as u64
        });
        assert!(
            every_connection_had_a_request,
            "{}: {} connections, {} with a request",
            b.name(),
            b.connections(),
            ids.len()
        );
        assert!(b.recorded().iter().all(|r| r.path() == PROBE_PATH));
    }
}

#[test]
fn recovered_server_returns_after_healthy_threshold_successes() {
    let b1 = backend("b1", 500, "broken");
    let probe = "path = \"/health\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\nunhealthy_threshold = 1\nhealthy_threshold = 2\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[b1.addr()]), 80, Some(probe)));
    let a1 = b1.addr().to_string();
    wait_state(&gw, &a1, "Unhealthy");
    let r = get_public(&gw, "/while-down");
    assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("ALL_UNHEALTHY")), "{}", r.text());

    let (base, at_switch) = switch_between_probes(&gw, &b1, &a1, || b1.set_health(200, "ok"));
    assert_eq!(state(&at_switch), "Unhealthy", "{at_switch:#}");
    assert_eq!(num(&at_switch, "consecutive_successes"), 0, "{at_switch:#}");
    let flipped = watch_flip(
        &gw,
        &b1,
        &a1,
        (base, num(&at_switch, "probes")),
        "Unhealthy",
        "Healthy",
        2,
        "consecutive_successes",
    );
    assert_eq!(flipped["consecutive_failures"], 0, "{flipped:#}");
    assert!(gw.wait_log("is Healthy again after 2 consecutive successful probes", SOON), "{}", gw.stderr());

    let r = get_public(&gw, "/after");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-backend"), Some("b1"));
    assert_eq!(b1.requests_to("/after"), 1);
}

#[test]
fn status_mismatch_is_reported_with_the_code() {
    let no_content = backend("no-content", 204, "");
    let ok = backend("ok", 200, "fine");
    let probe =
        "path = \"/health\"\ninterval = \"100ms\"\nunhealthy_threshold = 1\nmatch = { status_codes = [\"200\"] }\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[no_content.addr(), ok.addr()]), 80, Some(probe)));
    let s = wait_state(&gw, &no_content.addr().to_string(), "Unhealthy");
    assert_eq!(own_reason(&s), "status code mismatch: got 204", "{s:#}");
    assert_eq!(s["reason_kind"], "status_mismatch", "{s:#}");
    assert_eq!(s["last_status"], 204, "{s:#}");
    // The same probe accepts the 200.
    let s = wait_state(&gw, &ok.addr().to_string(), "Healthy");
    assert_eq!(s["last_status"], 200, "{s:#}");
    assert!(s["reason"].is_null(), "{s:#}");
}

#[test]
fn body_mismatch_is_reported() {
    let degraded = backend("degraded", 200, "degraded");
    let fine = backend("fine", 200, "all ok here");
    let probe = "path = \"/health\"\ninterval = \"100ms\"\nunhealthy_threshold = 1\nmatch = { body = \"ok\" }\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[degraded.addr(), fine.addr()]), 80, Some(probe)));
    let s = wait_state(&gw, &degraded.addr().to_string(), "Unhealthy");
    assert_eq!(own_reason(&s), "body mismatch", "{s:#}");
    assert_eq!(s["reason_kind"], "body_mismatch", "{s:#}");
    // A body that contains the expected text passes.
    let s = wait_state(&gw, &fine.addr().to_string(), "Healthy");
    assert!(s["reason"].is_null(), "{s:#}");
}

#[test]
fn body_mismatch_reports_the_status_that_came_with_the_body() {
    let degraded = backend("degraded", 200, "degraded");
    let probe = "path = \"/health\"\ninterval = \"100ms\"\nunhealthy_threshold = 1\nmatch = { body = \"ok\" }\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[degraded.addr()]), 80, Some(probe)));
    let s = wait_state(&gw, &degraded.addr().to_string(), "Unhealthy");
    assert_eq!(own_reason(&s), "body mismatch", "{s:#}");
    // The server answered 200; `ringgate health` shows this in its STATUS column.
    assert_eq!(s["last_status"], 200, "{s:#}");
}

#[test]
fn connection_refused_and_connect_timeout_are_told_apart() {
    let refused = backend("refused", 200, "ok");
    refused.stop_listening();
    let hole = Blackhole::start().expect("start blackhole");
    let stalled = Backend::builder().name("stalled").mode(Mode::Stall).start().expect("start test backend");
    let probe = "path = \"/health\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nunhealthy_threshold = 1\n";
    let servers = [refused.addr(), hole.addr(), stalled.addr()];
    let gw = Gateway::start(&gateway_config(&addrs(&servers), 80, Some(probe)));

    for (addr, reason, kind) in [
        (refused.addr(), "connection refused", "connection_refused"),
        (hole.addr(), "connect time-out", "connect_timeout"),
        (stalled.addr(), "probe time-out", "probe_timeout"),
    ] {
        let s = wait_state(&gw, &addr.to_string(), "Unhealthy");
        assert_eq!((own_reason(&s), &s["reason_kind"]), (Value::from(reason), &Value::from(kind)), "{s:#}");
    }
    // The stalled server did get the probe's request: it is the answer that never came.
    assert!(stalled.requests_to(PROBE_PATH) >= 1);
}

#[test]
fn default_probe_sends_host_127_0_0_1_to_root_on_the_settings_port() {
    let b = Backend::start_ok("b1").expect("start test backend");
    let gw = Gateway::start(&gateway_config(&["127.0.0.1".to_string()], b.port(), None));

    let mut probes = Vec::new();
    let arrived = wait_until(SOON, || {
        probes = b.recorded().into_iter().filter(|r| r.target == "/").collect();
        !probes.is_empty()
    });
    assert!(arrived, "no default probe arrived; recorded {:?}\nlog:\n{}", b.recorded(), gw.stderr());
    assert_eq!(probes.len(), 1, "the default probe runs every 30 s: {probes:?}");
    let p = &probes[0];
    assert_eq!(p.method, "GET");
    assert_eq!(p.header("host"), Some("127.0.0.1"), "{p:?}");
    assert!(p.header("user-agent").is_some_and(|ua| ua.starts_with("ringgate-probe")), "{p:?}");
    assert_eq!(b.requests(), 1, "nothing but the probe reached the backend");

    let v = view(&gw);
    let probe = &v["rules"][0]["probe"];
    assert_eq!(probe["name"], "default", "{probe:#}");
    assert_eq!(probe["custom"], false, "{probe:#}");
    assert_eq!(probe["path"], "/", "{probe:#}");
    assert_eq!(probe["host"], "127.0.0.1", "{probe:#}");
    assert_eq!(probe["interval_ms"], 30_000, "{probe:#}");
    assert_eq!(probe["timeout_ms"], 30_000, "{probe:#}");
    assert_eq!(probe["unhealthy_threshold"], 3, "{probe:#}");
    let s = wait_state(&gw, &format!("127.0.0.1:{}", b.port()), "Healthy");
    assert_eq!(s["last_status"], 200, "{s:#}");
}

#[test]
fn passive_failure_triggers_an_immediate_probe() {
    let b = backend("b1", 200, "ok");
    let probe = "path = \"/health\"\ninterval = 60\ntimeout = \"1s\"\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[b.addr()]), 80, Some(probe)));
    let a = b.addr().to_string();
    // The first probe happens at start; the next would be a minute later.
    let s = wait_server(&gw, &a, "probed once", |s| num(s, "probes") == 1 && state(s) == "Healthy");
    assert_eq!(num(&s, "passive_failures"), 0, "{s:#}");

    b.set_mode(Mode::Reset);
    let r = get_public(&gw, "/reset-me");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-ringgate-error"), Some("BACKEND_CLOSED"), "{:?}", r.headers);

    let mut last = Value::Null;
    let reprobed = wait_until(Duration::from_secs(2), || {
        last = server(&gw, &a);
        num(&last, "probes") == 2
    });
    assert!(reprobed, "no probe within 2 s of the failed request: {last:#}\nlog:\n{}", gw.stderr());
    assert!(num(&last, "passive_failures") >= 1, "{last:#}");
    assert_eq!(b.requests_to(PROBE_PATH), 2, "the backend saw the extra probe");
}

#[test]
fn unresolvable_host_name_makes_the_server_unhealthy_not_the_gateway_fail() {
    let good = backend("good", 200, "ok");
    let probe = "path = \"/health\"\ninterval = \"200ms\"\n";
    let servers = vec!["no-such-host.invalid:80".to_string(), good.addr().to_string()];
    let gw = Gateway::start(&gateway_config(&servers, 80, Some(probe)));

    let s = wait_state(&gw, "no-such-host.invalid:80", "Unhealthy");
    assert!(s["reason_kind"] == "dns_failure" || s["dns_error"].is_string(), "no DNS failure in {s:#}");
    assert_eq!(s["resolved"], Value::Array(Vec::new()), "{s:#}");
    for i in 0..6 {
        let r = get_public(&gw, &format!("/r{i}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-backend"), Some("good"));
    }
    assert_eq!(non_probe_requests(&good), 6);
}

#[test]
fn one_hung_backend_does_not_delay_probes_of_the_others() {
    let hung = Backend::builder().name("hung").mode(Mode::Stall).start().expect("start test backend");
    let healthy = backend("healthy", 200, "ok");
    let probe = "path = \"/health\"\ninterval = \"100ms\"\ntimeout = \"2s\"\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[hung.addr(), healthy.addr()]), 80, Some(probe)));

    // The hung server's first probe has been sent and will wait 2 s for an answer.
    assert!(wait_until(SOON, || hung.requests_to(PROBE_PATH) >= 1), "{}", gw.stderr());
    let started = Instant::now();
    let h0 = healthy.requests_to(PROBE_PATH);
    let kept_pace = wait_until(Duration::from_millis(1500), || healthy.requests_to(PROBE_PATH) >= h0 + 5);
    let took = started.elapsed();
    let hung_view = server(&gw, &hung.addr().to_string());
    assert!(
        kept_pace,
        "the healthy server got {} probes in 1.5 s while the hung one's probe was pending",
        healthy.requests_to(PROBE_PATH) - h0
    );
    // Still pending: the hung server's first probe has not finished.
    assert_eq!(num(&hung_view, "probes"), 0, "the hung probe ended within {took:?}: {hung_view:#}");
    assert_eq!(hung.requests_to(PROBE_PATH), 1);
    assert_eq!(state(&server(&gw, &healthy.addr().to_string())), "Healthy");
}

#[test]
fn health_command_lists_unhealthy_servers_first_with_reasons() {
    let x = backend("x", 200, "ok");
    let y = backend("y", 200, "ok");
    // The server that goes down sorts last by address and comes last in the
    // file, so only its state can put it first.
    let (good, down) = if x.addr().to_string() < y.addr().to_string() { (x, y) } else { (y, x) };
    let probe = "path = \"/health\"\ninterval = \"100ms\"\nunhealthy_threshold = 1\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[good.addr(), down.addr()]), 80, Some(probe)));
    let (good_addr, down_addr) = (good.addr().to_string(), down.addr().to_string());
    wait_state(&gw, &good_addr, "Healthy");
    down.stop_listening();
    wait_state(&gw, &down_addr, "Unhealthy");
    let admin = gw.admin().to_string();

    let out = ringgate(&["health", "--admin", &admin]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "a server is down, but the rule still has one\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "{text}");
    assert!(lines[0].contains("2 servers, 1 not taking requests"), "{text}");
    assert!(lines[1].starts_with("STATE"), "{text}");
    let first = lines[2];
    assert!(first.starts_with("Unhealthy") && first.contains(&down_addr), "unhealthy server not first:\n{text}");
    assert!(first.contains("connection refused"), "no reason on the unhealthy line:\n{text}");
    assert!(lines[3].starts_with("Healthy") && lines[3].contains(&good_addr), "{text}");

    let out = ringgate(&["health", "--admin", &admin, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let s = server_of(&json, "rule01", &down_addr).expect("the down server in --json");
    assert_eq!(s["state"], "Unhealthy", "{s:#}");
    assert_eq!(s["reason_kind"], "connection_refused", "{s:#}");

    // Both down: the rule answers 502, the command says so and exits 1;
    // the admin address may be given as the URL the start-up log prints.
    good.stop_listening();
    wait_state(&gw, &good_addr, "Unhealthy");
    let out = ringgate(&["health", "--admin", &format!("http://{admin}/")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "every server is down\n{text}");
    assert!(text.contains("rule rule01 answers 502 ALL_UNHEALTHY"), "{text}");
    good.resume_listening().expect("listen again");
    wait_state(&gw, &good_addr, "Healthy");

    down.resume_listening().expect("listen again");
    wait_state(&gw, &down_addr, "Healthy");
    let out = ringgate(&["health", "--admin", &admin]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "every server is healthy\n{text}");
    assert!(text.lines().skip(2).filter(|l| !l.starts_with("pools:")).all(|l| l.starts_with("Healthy")), "{text}");

    // Nothing listens there: the gateway cannot be asked.
    let nobody = backend("nobody", 200, "ok");
    let nobody_addr = nobody.addr().to_string();
    drop(nobody);
    let out = ringgate(&["health", "--admin", &nobody_addr]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn health_state_survives_a_reload() {
    let b1 = backend("b1", 200, "ok");
    let b2 = backend("b2", 200, "ok");
    let b3 = backend("b3", 200, "ok");
    b1.stop_listening();
    let probe = "path = \"/health\"\ninterval = \"200ms\"\nunhealthy_threshold = 1\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[b1.addr(), b2.addr(), b3.addr()]), 80, Some(probe)));
    let (a1, a2, a3) = (b1.addr().to_string(), b2.addr().to_string(), b3.addr().to_string());
    let before = wait_state(&gw, &a1, "Unhealthy");
    wait_state(&gw, &a2, "Healthy");
    wait_state(&gw, &a3, "Healthy");

    // Keep b1 and b2, drop b3, add a multi-site listener on the same address
    // with its own rule to the same pool and settings.
    let second = r#"
[[listener]]
name = "second"
listen = "127.0.0.1:0"
host_names = ["second.test"]

[[rule]]
name = "rule02"
listener = "second"
backend_pool = "pool01"
backend_http_settings = "setting01"
"#;
    let new = format!("{}{second}", gateway_config(&addrs(&[b1.addr(), b2.addr()]), 80, Some(probe)));
    let (status, text) = gw.reload_with(&new);
    assert_eq!(status, 200, "reload: {text}\nlog:\n{}", gw.stderr());

    let v = view(&gw);
    for rule in ["rule01", "rule02"] {
        let s = server_of(&v, rule, &a1).unwrap_or_else(|| panic!("{a1} missing from {rule}: {v:#}"));
        assert_eq!(s["state"], "Unhealthy", "{rule}: the state was reset by the reload: {s:#}");
        assert!(num(&s, "probes") >= num(&before, "probes"), "{rule}: the probe history was reset: {s:#}");
        assert!(num(&s, "consecutive_failures") >= 1, "{s:#}");
        assert_eq!(s["reason_kind"], "connection_refused", "{s:#}");
        assert!(server_of(&v, rule, &a2).is_some(), "{a2} missing from {rule}: {v:#}");
        assert!(server_of(&v, rule, &a3).is_none(), "{a3} was removed but is still in {rule}: {v:#}");
    }

    // Traffic through the new listener goes to the one healthy server left.
    let addr = gw.addr("public");
    for i in 0..4 {
        let r = request(addr, "GET", &format!("/second/{i}"), &[("Host", "second.test")], b"").expect("request");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-backend"), Some("b2"));
    }
    assert_eq!(non_probe_requests(&b2), 4);

    // The removed server is no longer probed: while b2 gets three more probes,
    // b3 gets at most the one that may have been in flight at the reload.
    let (n2, n3) = (b2.requests_to(PROBE_PATH), b3.requests_to(PROBE_PATH));
    assert!(wait_until(SOON, || b2.requests_to(PROBE_PATH) >= n2 + 3), "b2 is no longer probed");
    assert!(b3.requests_to(PROBE_PATH) <= n3 + 1, "the removed server is still probed");
}

#[test]
fn health_command_lists_an_empty_pool_and_exits_1() {
    let gw = Gateway::start(&simple_config(&[], ""));
    let admin = gw.admin().to_string();
    let out = ringgate(&["health", "--admin", &admin]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.lines().any(|l| l.starts_with("Empty") && l.contains("pool01")), "the empty pool has a row:\n{text}");
    assert!(text.contains("rule rule01 answers 502 POOL_EMPTY: backend pool pool01 has no servers"), "{text}");
}

/// `slow_start`: a server healthy from its first probe takes its full share
/// at once; one back from being unhealthy starts at about 5% of its turns.
#[test]
fn slow_start_ramps_a_recovered_server_up() {
    let b1 = backend("b1", 200, "ok");
    let b2 = backend("b2", 200, "ok");
    let probe = "path = \"/health\"\ninterval = \"100ms\"\nunhealthy_threshold = 1\n";
    let config =
        probed_config(&addrs(&[b1.addr(), b2.addr()]), 80, "slow_start = \"10m\"\n", Some(probe), "127.0.0.1:0");
    let gw = Gateway::start(&config);
    let (a1, a2) = (b1.addr().to_string(), b2.addr().to_string());
    wait_state(&gw, &a1, "Healthy");
    wait_state(&gw, &a2, "Healthy");
    let share_of_b1 = |n: usize, tag: &str| {
        (0..n).filter(|i| get_public(&gw, &format!("/{tag}/{i}")).header("x-backend") == Some("b1")).count()
    };
    assert_eq!(share_of_b1(20, "start"), 10, "no ramp at start: round-robin halves");

    b1.set_health(500, "down");
    wait_state(&gw, &a1, "Unhealthy");
    b1.set_health(200, "ok");
    wait_state(&gw, &a1, "Healthy");
    // Ten minutes of ramp, a few seconds into it: about 5% of b1's 30 turns.
    let n = share_of_b1(60, "ramp");
    assert!(n <= 12, "b1 took {n} of 60 requests right after recovering (half would be 30)");
}

/// A probe `port` (Application Gateway v2's custom probe port): the prober
/// asks the server's address on that port, traffic still goes to the
/// server's own port, and the server is shown by its traffic address.
#[test]
fn a_probe_port_is_probed_instead_of_the_traffic_port() {
    // The traffic port's health path fails; the health port's answers.
    let app = backend("app", 503, "not here");
    let health = backend("health-port", 200, "ok");
    let probe =
        format!("path = \"/health\"\ninterval = \"100ms\"\nunhealthy_threshold = 1\nport = {}\n", health.port());
    let gw = Gateway::start(&gateway_config(&addrs(&[app.addr()]), 80, Some(&probe)));
    let a = app.addr().to_string();
    let s = wait_server(&gw, &a, "Healthy after two probes", |s| state(s) == "Healthy" && num(s, "probes") >= 2);
    assert_eq!((s["address"].as_str(), s["last_status"].as_u64()), (Some(a.as_str()), Some(200)), "{s:#}");
    let v = view(&gw);
    assert_eq!(v["rules"][0]["probe"]["port"], u64::from(health.port()), "{v:#}");

    let r = get_public(&gw, "/through");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("app")), "{}", r.text());
    assert!(health.requests_to(PROBE_PATH) >= 2, "the health port was not probed");
    assert_eq!(app.requests_to(PROBE_PATH), 0, "the traffic port was probed");
    assert_eq!((app.requests_to("/through"), health.requests_to("/through")), (1, 0));

    // `ringgate health`: the server's address, and the URL the probe asks.
    let out = ringgate(&["health", "--admin", &gw.admin().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().find(|l| l.starts_with("Healthy")).unwrap_or_else(|| panic!("no Healthy row:\n{text}"));
    assert!(row.contains(&a), "{text}");
    assert!(row.contains(&format!("http://127.0.0.1:{}/health", health.port())), "{text}");

    // The health port going down takes the server out, though its traffic
    // port still answers.
    health.stop_listening();
    let s = wait_state(&gw, &a, "Unhealthy");
    assert_eq!(s["reason_kind"], "connection_refused", "{s:#}");
    let r = get_public(&gw, "/after");
    assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("ALL_UNHEALTHY")), "{}", r.text());
    assert_eq!(app.requests_to("/after"), 0);
}

/// `min_servers` (v2's probe field): with both servers failing their probes
/// and `min_servers = 1`, the first in configured order stays in rotation
/// (shown with its real state), so requests reach it instead of a 502
/// ALL_UNHEALTHY; an operator's drain passes the role to the next one, and
/// once a server passes its probes again nobody needs keeping.
#[test]
fn min_servers_keeps_the_first_failing_server_in_rotation() {
    // Both answer traffic; both fail their probes.
    let first = backend("first", 503, "probe says no");
    let second = backend("second", 503, "probe says no");
    let probe = "path = \"/health\"\ninterval = \"100ms\"\nunhealthy_threshold = 1\nmin_servers = 1\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[first.addr(), second.addr()]), 80, Some(probe)));
    let (a1, a2) = (first.addr().to_string(), second.addr().to_string());
    // (Until both have failed, the other one takes the requests itself.)
    wait_state(&gw, &a1, "Unhealthy");
    let s2 = wait_state(&gw, &a2, "Unhealthy");
    let s1 = server(&gw, &a1);
    assert_eq!(state(&s1), "Unhealthy", "{s1:#}");
    assert_eq!((&s1["in_rotation"], &s1["kept_by_min_servers"]), (&Value::Bool(true), &Value::Bool(true)), "{s1:#}");
    assert_eq!((&s2["in_rotation"], &s2["kept_by_min_servers"]), (&Value::Bool(false), &Value::Bool(false)), "{s2:#}");
    assert_eq!(view(&gw)["rules"][0]["probe"]["min_servers"], 1);

    for i in 0..6 {
        let r = get_public(&gw, &format!("/kept/{i}"));
        assert_eq!(
            (r.status, r.header("x-backend")),
            (200, Some("first")),
            "{:?}: {}",
            r.header("x-ringgate-error"),
            r.text()
        );
    }
    assert_eq!(non_probe_requests(&second), 0, "the server min_servers does not keep got traffic");

    // `ringgate health`: a rule still served, the row says why.
    let admin = gw.admin().to_string();
    let out = ringgate(&["health", "--admin", &admin]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "the kept server serves the rule\n{text}");
    assert!(text.contains("2 servers, 1 not taking requests"), "{text}");
    let row = text.lines().find(|l| l.contains(&a1)).unwrap_or_else(|| panic!("no row for {a1}:\n{text}"));
    assert!(row.starts_with("Unhealthy") && row.contains("kept in rotation by min_servers"), "{text}");

    // The kept one drained by an operator: the next one takes its place.
    let drain = request(gw.admin(), "POST", &format!("/servers/pool01/{a1}/drain"), &[], b"").expect("drain");
    assert_eq!(drain.status, 200, "{}", drain.text());
    let s2 = server(&gw, &a2);
    assert_eq!(s2["kept_by_min_servers"], true, "{s2:#}");
    let r = get_public(&gw, "/after-drain");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("second")), "{}", r.text());
    let enable = request(gw.admin(), "POST", &format!("/servers/pool01/{a1}/enable"), &[], b"").expect("enable");
    assert_eq!(enable.status, 200, "{}", enable.text());
    assert_eq!(server(&gw, &a1)["kept_by_min_servers"], true, "back to configured order");

    // The second passes its probes again: nobody needs keeping, and it
    // alone takes the traffic.
    second.set_health(200, "ok");
    wait_state(&gw, &a2, "Healthy");
    let s1 = server(&gw, &a1);
    assert_eq!((&s1["in_rotation"], &s1["kept_by_min_servers"]), (&Value::Bool(false), &Value::Bool(false)), "{s1:#}");
    let before = non_probe_requests(&first);
    for i in 0..4 {
        let r = get_public(&gw, &format!("/recovered/{i}"));
        assert_eq!((r.status, r.header("x-backend")), (200, Some("second")), "{}", r.text());
    }
    assert_eq!(non_probe_requests(&first), before);
}

/// [`gateway_config`] under `[gateway] unprobed_servers = "wait"`.
fn waiting_config(addresses: &[String], probe: &str) -> String {
    gateway_config(addresses, 80, Some(probe)).replacen("[gateway]\n", "[gateway]\nunprobed_servers = \"wait\"\n", 1)
}

/// Every server's first probe is sent at once, at start and when a reload
/// adds it: with a 60 s interval, each of three servers (and a fourth a
/// reload adds) is probed within seconds, not spread over the minute.
#[test]
fn the_first_probe_of_every_server_is_sent_at_once_at_start_and_on_reload() {
    let backends: Vec<Backend> = (0..3).map(|i| backend(&format!("b{i}"), 200, "ok")).collect();
    let probe = "path = \"/health\"\ninterval = 60\ntimeout = 5\n";
    let list = |bs: &[&Backend]| bs.iter().map(|b| b.addr().to_string()).collect::<Vec<_>>();
    let all: Vec<&Backend> = backends.iter().collect();
    let gw = Gateway::start(&gateway_config(&list(&all), 80, Some(probe)));
    for b in &backends {
        assert!(wait_until(SOON, || b.requests_to(PROBE_PATH) == 1), "{} was not probed at start", b.name());
        wait_state(&gw, &b.addr().to_string(), "Healthy");
    }
    let added = backend("added", 200, "ok");
    let mut more = all.clone();
    more.push(&added);
    let (status, text) = gw.reload_with(&gateway_config(&list(&more), 80, Some(probe)));
    assert_eq!(status, 200, "reload: {text}");
    assert!(wait_until(SOON, || added.requests_to(PROBE_PATH) == 1), "the added server was not probed at once");
    wait_state(&gw, &added.addr().to_string(), "Healthy");
    // The others keep their schedule: no second probe a minute early.
    assert!(backends.iter().all(|b| b.requests_to(PROBE_PATH) == 1));
}

/// `unprobed_servers = "wait"` (v2): until its first probe succeeds a server
/// takes no requests, and a pool with none in rotation answers 502
/// NOT_YET_PROBED (not ALL_UNHEALTHY, and without touching the server).
#[test]
fn under_wait_requests_get_not_yet_probed_until_the_first_probe_succeeds() {
    // Its health path answers only when the test says so.
    let late = Backend::builder().name("late").hold_health().start().expect("start test backend");
    let probe = "path = \"/health\"\ninterval = \"100ms\"\ntimeout = \"10s\"\nunhealthy_threshold = 3\n";
    let gw = Gateway::start(&waiting_config(&addrs(&[late.addr()]), probe));
    let a = late.addr().to_string();
    assert!(wait_until(SOON, || late.requests_to(PROBE_PATH) == 1), "the first probe was not sent at once");

    let r = get_public(&gw, "/early");
    assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("NOT_YET_PROBED")), "{}", r.text());
    assert!(r.text().contains("have not been health-checked yet"), "{}", r.text());
    assert_eq!(late.requests_to("/early"), 0, "a request reached a server not yet probed");
    let s = server(&gw, &a);
    assert_eq!((state(&s), &s["in_rotation"]), ("Unknown", &Value::Bool(false)), "{s:#}");
    let out = ringgate(&["health", "--admin", &gw.admin().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("rule rule01 answers 502 NOT_YET_PROBED"), "{text}");
    assert!(text.contains("not probed yet: no requests until a probe succeeds"), "{text}");

    late.release_health();
    wait_state(&gw, &a, "Healthy");
    let r = get_public(&gw, "/later");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("late")), "{}", r.text());
    assert_eq!(late.requests_to("/later"), 1);
}

/// Under "wait" the wait lasts at most the first probe's time-out: a server
/// whose first probe gets no answer is Unhealthy after that one failure (not
/// after unhealthy_threshold), and never took a request meanwhile.
#[test]
fn under_wait_an_unanswered_first_probe_makes_the_server_unhealthy_at_once() {
    let mute = Backend::builder().name("mute").hold_health().start().expect("start test backend");
    let probe = "path = \"/health\"\ninterval = \"100ms\"\ntimeout = \"300ms\"\nunhealthy_threshold = 3\n";
    let gw = Gateway::start(&waiting_config(&addrs(&[mute.addr()]), probe));
    let a = mute.addr().to_string();
    // Before or after that time-out, depending on how fast this runs.
    let r = get_public(&gw, "/early");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        ["NOT_YET_PROBED", "ALL_UNHEALTHY"].contains(&r.header("x-ringgate-error").unwrap_or("")),
        "{:?}",
        r.headers
    );

    let s = wait_state(&gw, &a, "Unhealthy");
    assert_eq!(s["reason_kind"], "probe_timeout", "{s:#}");
    // The flip is logged with the failure count it happened at.
    assert!(
        gw.wait_log(&format!("server {a} is Unhealthy after 1 consecutive failed probes"), SOON),
        "not Unhealthy at the first failure:\n{}",
        gw.stderr()
    );
    let r = get_public(&gw, "/after-timeout");
    assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("ALL_UNHEALTHY")), "{}", r.text());
    assert_eq!(non_probe_requests(&mute), 0);

    mute.release_health();
    wait_state(&gw, &a, "Healthy");
    assert_eq!(get_public(&gw, "/recovered").status, 200);
}

/// `unprobed_servers = "serve"` (the default): a server takes requests
/// before its first probe has answered.
#[test]
fn under_serve_a_server_takes_requests_before_its_first_probe_answers() {
    let late = Backend::builder().name("late").hold_health().start().expect("start test backend");
    let probe = "path = \"/health\"\ninterval = \"100ms\"\ntimeout = \"10s\"\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[late.addr()]), 80, Some(probe)));
    assert!(wait_until(SOON, || late.requests_to(PROBE_PATH) == 1), "the first probe was not sent at once");
    let r = get_public(&gw, "/at-once");
    assert_eq!(
        (r.status, r.header("x-backend")),
        (200, Some("late")),
        "{:?}: {}",
        r.header("x-ringgate-error"),
        r.text()
    );
    let s = server(&gw, &late.addr().to_string());
    assert_eq!((state(&s), &s["in_rotation"]), ("Unknown", &Value::Bool(true)), "{s:#}");
    late.release_health();
    wait_state(&gw, &late.addr().to_string(), "Healthy");
}

/// Reasons as Application Gateway v2 words them (with ringgate's detail
/// after), and each pool summed up as Up, Partial or Down.
#[test]
fn reasons_and_pool_status_follow_application_gateway_v2() {
    let b1 = backend("b1", 200, "all ok");
    let b2 = backend("b2", 200, "all ok");
    let probe = "path = \"/health\"\ninterval = \"100ms\"\nunhealthy_threshold = 1\nmatch = { status_codes = [\"200-399\"], body = \"ok\" }\n";
    let gw = Gateway::start(&gateway_config(&addrs(&[b1.addr(), b2.addr()]), 80, Some(probe)));
    let (a1, a2) = (b1.addr().to_string(), b2.addr().to_string());
    wait_state(&gw, &a1, "Healthy");
    wait_state(&gw, &a2, "Healthy");
    assert_eq!(view(&gw)["rules"][0]["pool_status"], "Up");

    b1.set_health(404, "gone");
    let s = wait_state(&gw, &a1, "Unhealthy");
    let reason = s["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Status code of the backend's HTTP response did not match the probe setting. Expected:{200-399} Received:{404}."),
        "{reason}"
    );
    assert!(reason.contains("(status code mismatch: got 404)"), "ringgate's detail follows: {reason}");
    assert_eq!(view(&gw)["rules"][0]["pool_status"], "Partial");

    b2.set_health(200, "nothing here");
    let s = wait_state(&gw, &a2, "Unhealthy");
    let reason = s["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Body of the backend's HTTP response did not match the probe setting. Received response body does not contain {ok}."),
        "{reason}"
    );
    assert_eq!(view(&gw)["rules"][0]["pool_status"], "Down");
    let out = ringgate(&["health", "--admin", &gw.admin().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pools: pool01 / setting01 Down"), "{text}");
}
