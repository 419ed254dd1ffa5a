//! Configuration reloads and shutdown end to end: routing changes under
//! keep-alive load without losing a request, a broken file is refused while
//! the old configuration keeps serving, listeners come and go, servers removed
//! by a reload finish their in-flight requests, and SIGTERM drains within
//! `drain_timeout`.
//!
//! Reloads go through both doors: `POST /reload` (which answers once every
//! worker runs the new plan) and SIGHUP (where the test polls the log line
//! the control thread writes after the same point).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringgate_e2e::*;
use serde_json::Value;

/// How long a change that should be quick may take to show.
const SOON: Duration = Duration::from_secs(5);

fn backend(name: &str) -> Backend {
    Backend::start_ok(name).expect("start test backend")
}

/// One basic listener `public` to `pool`, with `workers` workers and no
/// access log (the load test would fill the harness with it).
fn config(pool: &[SocketAddr], workers: usize) -> String {
    sites_config(&[Site::basic("public", pool)])
        .replace("workers = 1", &format!("workers = {workers}"))
        .replace("access_log = \"stdout\"", "access_log = \"off\"")
}

/// Rewrites the file, sends SIGHUP and waits for the log line the control
/// thread writes once every worker runs plan `generation`.
fn reload_by_sighup(gw: &Gateway, config: &str, generation: u64) {
    std::fs::write(gw.config_path(), config).expect("rewrite config");
    gw.signal(libc::SIGHUP);
    let needle = format!("(generation {generation}:");
    assert!(gw.wait_log(&needle, SOON), "SIGHUP reload to generation {generation} not logged:\n{}", gw.stderr());
}

/// `POST /reload` with `config`; panics unless it is accepted.
fn reload_by_post(gw: &Gateway, config: &str) {
    let (status, text) = gw.reload_with(config);
    assert_eq!(status, 200, "reload refused: {text}\nlog:\n{}", gw.stderr());
}

/// The backend a fresh connection is routed to.
fn route_of_new_connection(addr: SocketAddr) -> String {
    let r = get(addr, "/which");
    assert_eq!(r.status, 200, "{r:?}");
    r.header("x-backend").unwrap_or_default().to_string()
}

/// What one load client saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    failed: u64,
    /// The first few failures, described.
    first_failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.first_failures.len() < 5 {
            self.first_failures.push(what);
        }
    }
}

/// Shared between the test thread and the load clients.
#[derive(Debug, Default)]
struct Load {
    stop: AtomicBool,
    ok: AtomicU64,
    /// Per client, the backend of its latest good response: 0 none, 1 `A`, 2 `B`.
    last: [AtomicU8; 4],
}

/// GETs on one keep-alive connection until told to stop (or `MAX` requests,
/// or a minute). Any error, non-200 or close counts as a failure, after which
/// the client reconnects.
fn load_client(addr: SocketAddr, id: usize, load: &Load) -> Tally {
    const MAX: u64 = 50_000;
    const THINK: [Duration; 4] =
        [Duration::ZERO, Duration::from_micros(500), Duration::from_millis(1), Duration::from_millis(2)];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tally = Tally::default();
    let mut conn: Option<Client> = None;
    for n in 0..MAX {
        if load.stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            break;
        }
        // Think time, different per client, as real clients have: a kept
        // connection then spends most of its life idle between requests,
        // which is when a reload usually finds it.
        if n > 0 {
            std::thread::sleep(THINK[id % THINK.len()]);
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Client::connect(addr) {
                Ok(c) => {
                    c.set_timeout(Duration::from_secs(10));
                    conn.insert(c)
                }
                Err(e) => {
                    tally.fail(format!("request {n}: connect: {e}"));
                    continue;
                }
            },
        };
        match c.request("GET", &format!("/load/{id}/{n}"), &[], b"") {
            Ok(r) if r.status == 200 && !r.closed && matches!(r.header("x-backend"), Some("A" | "B")) => {
                tally.ok += 1;
                load.ok.fetch_add(1, Ordering::Relaxed);
                let which = if r.header("x-backend") == Some("A") { 1 } else { 2 };
                load.last[id].store(which, Ordering::Relaxed);
            }
            Ok(r) => {
                let code = r.header("x-ringgate-error").unwrap_or("-").to_string();
                tally.fail(format!("request {n}: status {} ({code}), closed {}: {:?}", r.status, r.closed, r.text()));
                conn = None;
            }
            Err(e) => {
                tally.fail(format!("request {n}: {e}"));
                conn = None;
            }
        }
    }
    tally
}

#[test]
fn twenty_reloads_under_keep_alive_load_lose_no_request() {
    let (a, b) = (backend("A"), backend("B"));
    let gw = Gateway::start(&config(&[a.addr()], 2));
    let addr = gw.addr("public");
    let load = Arc::new(Load::default());
    let clients: Vec<JoinHandle<Tally>> = (0..4)
        .map(|id| {
            let load = load.clone();
            std::thread::spawn(move || load_client(addr, id, &load))
        })
        .collect();
    // Every generation, the first included, serves some of the load.
    let progressed = |since: u64| wait_until(SOON, || load.ok.load(Ordering::Relaxed) >= since + 40);
    assert!(progressed(0), "the load never got going:\n{}", gw.stderr());

    let mut expected = &a;
    for k in 1..=20u64 {
        // Odd reloads route to B, even ones back to A.
        expected = if k % 2 == 1 { &b } else { &a };
        let new = config(&[expected.addr()], 2);
        if k % 2 == 1 {
            reload_by_post(&gw, &new);
        } else {
            reload_by_sighup(&gw, &new, k + 1);
        }
        assert_eq!(route_of_new_connection(addr), expected.name(), "after reload {k}");
        let before = load.ok.load(Ordering::Relaxed);
        assert!(progressed(before), "the load stalled after reload {k}:\n{}", gw.stderr());
    }

    // The last routing is in effect for the kept connections too: each
    // client's latest answer comes from the last backend.
    let want = if expected.name() == "A" { 1 } else { 2 };
    let switched = wait_until(SOON, || load.last.iter().all(|l| l.load(Ordering::Relaxed) == want));
    load.stop.store(true, Ordering::Relaxed);
    let tallies: Vec<Tally> = clients.into_iter().map(|h| h.join().expect("load client panicked")).collect();
    let ok: u64 = tallies.iter().map(|t| t.ok).sum();
    let failed: u64 = tallies.iter().map(|t| t.failed).sum();
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.first_failures).collect();
    eprintln!("20 reloads under load: {ok} requests served, {failed} failed");
    assert_eq!(failed, 0, "requests lost across the reloads ({ok} served); first failures: {failures:#?}");
    assert!(ok > 0);
    assert!(switched, "a kept connection still reaches the old backend after the last reload");
    assert_eq!(route_of_new_connection(addr), expected.name());
    let status = gw.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn keep_alive_connection_idle_across_a_reload_follows_the_new_routing() {
    let (a, b) = (backend("A"), backend("B"));
    let gw = Gateway::start(&config(&[a.addr()], 1));
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    let r = c.request("GET", "/before", &[], b"").expect("first request");
    assert_eq!(r.header("x-backend"), Some("A"), "{r:?}");
    // The connection now waits for its next request while the pool changes.
    reload_by_post(&gw, &config(&[b.addr()], 1));
    let r = c.request("GET", "/after", &[], b"").expect("second request");
    assert_eq!(
        (r.status, r.header("x-backend"), r.header("x-ringgate-error")),
        (200, Some("B"), None),
        "the request after the reload was served with the old routing: {r:?}"
    );
}

#[test]
fn invalid_reload_is_rejected_and_the_old_config_keeps_serving() {
    let a = backend("A");
    let good = config(&[a.addr()], 1);
    let gw = Gateway::start(&good);
    let addr = gw.addr("public");
    let mut kept = Client::connect(addr).expect("connect");
    assert_eq!(kept.request("GET", "/before", &[], b"").expect("request").status, 200);
    let generation = gw.metric("ringgate_config_generation");

    // Two mistakes: an unknown field and a rule to a pool that does not exist.
    let broken = good
        .replace("[gateway]\n", "[gateway]\ncolour = \"blue\"\n")
        .replace("backend_pool = \"pool-public\"", "backend_pool = \"pool-missing\"");
    assert_ne!(broken, good);
    let (status, text) = gw.reload_with(&broken);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("reload rejected"), "{text}");
    assert!(text.contains("2 configuration errors"), "{text}");
    for needle in ["field `colour`", "field `backend_pool`", "pool-missing"] {
        assert!(text.contains(needle), "the answer does not list {needle:?}:\n{text}");
    }
    assert!(gw.wait_log("reload rejected", SOON), "the log does not say the reload was rejected:\n{}", gw.stderr());

    // Served as before, on the kept connection and on a new one.
    let r = kept.request("GET", "/after", &[], b"").expect("request on the kept connection");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("A")), "{r:?}");
    assert_eq!(route_of_new_connection(addr), "A");
    assert_eq!(gw.metric("ringgate_config_generation"), generation, "a refused reload changed the generation");
    assert_eq!(a.requests_to("/after"), 1);
}

#[test]
fn reload_adds_and_removes_listeners() {
    let (a, b) = (backend("A"), backend("B"));
    let (pool_a, pool_b) = ([a.addr()], [b.addr()]);
    let one = sites_config(&[Site::basic("public", &pool_a)]);
    let two = sites_config(&[Site::basic("public", &pool_a), Site::basic("second", &pool_b)]);
    let gw = Gateway::start(&one);
    let public = gw.addr("public");
    assert_eq!(gw.try_addr("second"), None);

    reload_by_post(&gw, &two);
    let second = gw.wait_addr("second", SOON);
    assert_ne!(second, public, "a port-0 listener gets a port of its own");
    let r = get(second, "/on-second");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("B")), "{r:?}");
    assert_eq!(route_of_new_connection(public), "A", "the first listener changed");

    reload_by_post(&gw, &one);
    assert!(wait_until(SOON, || connect_refused(second)), "the removed listener {second} still accepts connections");
    assert_eq!(route_of_new_connection(public), "A", "the remaining listener stopped serving");
    assert_eq!(b.requests_to("/on-second"), 1);
}

/// The servers `GET /backend-health` lists as removed by a reload.
fn removed_servers(gw: &Gateway) -> Vec<Value> {
    let (status, body) = gw.admin_get("/backend-health");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["removed"].as_array().cloned().unwrap_or_default()
}

#[test]
fn removed_server_drains_its_in_flight_request() {
    let (a, b) = (backend("A"), backend("B"));
    let gw = Gateway::start(&config(&[a.addr()], 1));
    let addr = gw.addr("public");
    let mut slow = Client::connect(addr).expect("connect");
    slow.send(&format_request("GET", "/slow?ms=1500", &[], b"")).expect("send");
    assert!(wait_until(SOON, || a.requests_to("/slow") == 1), "the slow request never reached A");
    let sent = Instant::now();

    reload_by_post(&gw, &config(&[b.addr()], 1));
    assert_eq!(route_of_new_connection(addr), "B", "new requests still go to the removed server");

    // While its request runs, A is listed as removed and draining.
    let a_name = a.addr().to_string();
    let mut seen = Vec::new();
    let listed = wait_until(Duration::from_millis(1200).saturating_sub(sent.elapsed()), || {
        seen = removed_servers(&gw);
        seen.iter().any(|s| s["address"] == a_name.as_str() && s["state"] == "Draining")
    });
    assert!(listed, "A ({a_name}) not listed as removed and Draining while its request runs: {seen:#?}");

    let r = slow.read_response(false).expect("the in-flight request was cut");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("A")), "{r:?}");
    assert_eq!(r.body, b"A\n");
    assert!(sent.elapsed() >= Duration::from_millis(1400), "answered before the backend could have");
    // The next request on that connection follows the new routing.
    let r = slow.request("GET", "/next", &[], b"").expect("request after the drained one");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("B")), "{r:?}");
    // Closed here: see the next test for a connection that stays open.
    drop(slow);

    let gone = wait_until(SOON, || removed_servers(&gw).iter().all(|s| s["address"] != a_name.as_str()));
    assert!(gone, "A is still listed after its last request: {:#?}", removed_servers(&gw));
    assert_eq!(route_of_new_connection(addr), "B");
}

#[test]
fn removed_server_leaves_the_health_view_though_older_connections_stay_open() {
    let (a, b) = (backend("A"), backend("B"));
    let gw = Gateway::start(&config(&[a.addr()], 1));
    let addr = gw.addr("public");
    let mut kept = Client::connect(addr).expect("connect");
    let r = kept.request("GET", "/before", &[], b"").expect("request");
    assert_eq!(r.header("x-backend"), Some("A"), "{r:?}");

    reload_by_post(&gw, &config(&[b.addr()], 1));
    assert_eq!(route_of_new_connection(addr), "B");
    // A has nothing in flight: it must leave the view, though `kept`, idle,
    // stays open.
    let a_name = a.addr().to_string();
    let gone = wait_until(SOON, || removed_servers(&gw).iter().all(|s| s["address"] != a_name.as_str()));
    assert!(gone, "A, with no request in flight, is still listed: {:#?}", removed_servers(&gw));
    drop(kept);
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_0() {
    let b = backend("b1");
    let mut gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let addr = gw.addr("public");
    let mut idle = Client::connect(addr).expect("connect");
    assert_eq!(idle.request("GET", "/before", &[], b"").expect("request").status, 200);
    let mut busy = Client::connect(addr).expect("connect");
    busy.send(&format_request("GET", "/slow?ms=1000", &[], b"")).expect("send");
    assert!(wait_until(SOON, || b.requests_to("/slow") == 1), "the slow request never reached the backend");

    gw.signal(libc::SIGTERM);
    // The idle keep-alive connection is let go at once, while the gateway
    // still drains the busy one.
    assert!(idle.is_closed_within(Duration::from_secs(2)), "the idle connection was not closed by the drain");
    assert!(gw.is_running(), "the gateway exited before its in-flight request finished");
    assert!(wait_until(SOON, || connect_refused(addr)), "new connections are still accepted while draining");

    let r = busy.read_response(false).expect("the in-flight request was cut");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"b1\n");
    assert!(r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")), "{:?}", r.headers);
    let status = gw.wait_exit(Duration::from_secs(10)).expect("did not exit after the drain");
    assert!(status.success(), "{status}");
}

#[test]
fn drain_timeout_bounds_the_shutdown() {
    let b = Backend::builder().name("stall").mode(Mode::Stall).start().expect("start test backend");
    let gw = Gateway::start(&simple_config(&[b.addr()], "").replace("drain_timeout = 5", "drain_timeout = 1"));
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    c.send(&format_request("GET", "/stalled", &[], b"")).expect("send");
    assert!(wait_until(SOON, || b.requests_to("/stalled") == 1), "the request never reached the backend");

    let t0 = Instant::now();
    gw.signal(libc::SIGTERM);
    let status = gw.wait_exit(Duration::from_secs(10)).expect("did not exit within 10 s");
    let took = t0.elapsed();
    assert!(status.success(), "{status}");
    assert!(took >= Duration::from_millis(900), "exited after {took:?}, without waiting for the drain");
    assert!(took <= Duration::from_millis(2500), "exited after {took:?}; drain_timeout is 1 s");
    // The stalled request's client connection ends with the process.
    c.set_timeout(Duration::from_secs(2));
    let _ = c.read_to_close();
}

/// Connection draining across a reload: a server the new configuration
/// removes keeps the clients its affinity cookie pins for the draining
/// time-out, takes no one else, and is shown as Draining; afterwards the
/// pinned client moves, with a new cookie.
#[test]
fn removed_server_keeps_its_pinned_clients_for_the_draining_time_out() {
    let (a, b) = (backend("A"), backend("B"));
    let with = |pool: &[SocketAddr]| {
        sites_config(&[Site {
            settings_extra: "cookie_based_affinity = true\nconnection_draining = { enabled = true, timeout = 3 }",
            ..Site::basic("public", pool)
        }])
    };
    let gw = Gateway::start(&with(&[a.addr(), b.addr()]));
    let addr = gw.addr("public");
    // A client pinned to A.
    let (cookie, pinned) = loop {
        let r = request(addr, "GET", "/pin", &[], b"").expect("request");
        let c = r.header("set-cookie").expect("a cookie").split(';').next().unwrap_or_default().to_string();
        if r.header("x-backend") == Some("A") {
            break (c, "A");
        }
    };
    reload_by_post(&gw, &with(&[b.addr()]));
    let removed_at = std::time::Instant::now();
    let r = request(addr, "GET", "/pinned", &[("Cookie", &cookie)], b"").expect("request");
    assert!(removed_at.elapsed() < Duration::from_secs(2), "checked well inside the time-out");
    assert_eq!(r.header("x-backend"), Some(pinned), "the pinned client keeps the removed server while it drains");
    assert_eq!(r.header("set-cookie"), None);
    for _ in 0..4 {
        let r = request(addr, "GET", "/free", &[], b"").expect("request");
        assert_eq!(r.header("x-backend"), Some("B"), "no new client reaches a draining server");
    }
    let (_, view) = gw.admin_get("/backend-health");
    let v: Value = serde_json::from_str(&view).expect("JSON");
    let a_name = a.addr().to_string();
    let listed = v["rules"][0]["servers"].as_array().expect("servers");
    let a_view =
        listed.iter().find(|s| s["address"] == a_name.as_str()).unwrap_or_else(|| panic!("A not listed: {v:#}"));
    assert_eq!(a_view["state"], "Draining", "{a_view:#}");

    std::thread::sleep(Duration::from_millis(3200).saturating_sub(removed_at.elapsed()));
    let r = request(addr, "GET", "/after", &[("Cookie", &cookie)], b"").expect("request");
    assert_eq!(r.header("x-backend"), Some("B"), "after the time-out the pinned client moves");
    assert!(r.header("set-cookie").is_some(), "with a new cookie");
}
