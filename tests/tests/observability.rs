//! What the gateway tells its operator: one access log line per request whose
//! `error_info` is the `x-ringgate-error` the client saw, and request
//! counters by listener, rule, pool, status class and code on `/metrics`.

use std::time::Duration;

use ringgate_e2e::*;

/// The access log entries for `path` (the log is flushed on the workers'
/// tick, so this waits until `n` have appeared).
fn log_entries(gw: &Gateway, path: &str, n: usize) -> Vec<serde_json::Value> {
    let entries = || -> Vec<serde_json::Value> {
        gw.access_log().into_iter().filter(|e| e["path"].as_str() == Some(path)).collect()
    };
    let arrived = wait_until(Duration::from_secs(10), || entries().len() >= n);
    assert!(arrived, "{n} access log lines for {path} expected, got:\n{}", gw.stdout_lines().join("\n"));
    entries()
}

#[test]
fn each_request_gets_one_access_log_line_matching_its_response() {
    let good = Backend::start_ok("good").unwrap();
    let bad = Backend::builder().name("bad").mode(Mode::Garbage).start().unwrap();
    let good_addrs = [good.addr()];
    let bad_addrs = [bad.addr()];
    let config = sites_config(&[
        Site::basic("public", &good_addrs),
        Site { listen: "127.0.0.2:0", ..Site::basic("broken", &bad_addrs) },
    ]);
    let gw = Gateway::start(&config);

    let responses = [
        ("/ok", get(gw.addr("public"), "/ok")),
        ("/status/503", get(gw.addr("public"), "/status/503")),
        ("/garbage", get(gw.addr("broken"), "/garbage")),
    ];
    let statuses: Vec<u16> = responses.iter().map(|(_, r)| r.status).collect();
    assert_eq!(statuses, [200, 503, 502]);

    for (path, r) in &responses {
        let entries = log_entries(&gw, path, 1);
        assert_eq!(entries.len(), 1, "one line per request for {path}: {entries:?}");
        let e = &entries[0];
        assert_eq!(e["status"].as_u64(), Some(u64::from(r.status)), "{path}: {e}");
        let code = r.header("x-ringgate-error").unwrap_or("");
        assert_eq!(e["error_info"].as_str(), Some(code), "{path}: {e}");
        assert_eq!(e["method"].as_str(), Some("GET"), "{path}: {e}");
    }
    let ok = &log_entries(&gw, "/ok", 1)[0];
    assert_eq!(ok["listener"].as_str(), Some("public"));
    assert_eq!(ok["rule"].as_str(), Some("rule-public"));
    assert_eq!(ok["backend"].as_str(), Some(good.addr().to_string().as_str()));
    assert_eq!(ok["backend_status"].as_u64(), Some(200));
    let garbage = &log_entries(&gw, "/garbage", 1)[0];
    assert_eq!(garbage["backend"].as_str(), Some(bad.addr().to_string().as_str()));
    assert!(garbage["backend_status"].is_null(), "no backend status for an invalid response: {garbage}");

    // A request refused before its head could be read has no path to log,
    // but still gets its line with the code the client saw.
    let mut c = Client::connect(gw.addr("public")).unwrap();
    c.send(b"GET /bare-lf HTTP/1.1\nHost: t\n\n").unwrap();
    let refused = c.read_response(false).unwrap();
    assert_eq!(refused.header("x-ringgate-error"), Some("BAD_REQUEST"));
    assert!(wait_until(Duration::from_secs(10), || gw.access_log().len() >= 4), "{}", gw.stdout_lines().join("\n"));
    let log = gw.access_log();
    let e = log.iter().find(|e| e["status"].as_u64() == Some(400)).expect("a line for the 400");
    assert_eq!(e["error_info"].as_str(), Some("BAD_REQUEST"), "{e}");
    // Nothing but one line per request on stdout.
    assert_eq!(log.len(), 4, "{}", gw.stdout_lines().join("\n"));
}

#[test]
fn access_log_error_info_for_timeouts_and_empty_pools() {
    let stall = Backend::builder().name("stall").mode(Mode::Stall).start().unwrap();
    let stall_addrs = [stall.addr()];
    let config = sites_config(&[
        Site { settings_extra: "request_timeout = \"200ms\"", ..Site::basic("public", &stall_addrs) },
        Site { listen: "127.0.0.2:0", ..Site::basic("empty", &[]) },
    ]);
    let gw = Gateway::start(&config);
    let timeout = get(gw.addr("public"), "/stall");
    let empty = get(gw.addr("empty"), "/empty");
    assert_eq!(timeout.header("x-ringgate-error"), Some("TIMEOUT"));
    assert_eq!(empty.header("x-ringgate-error"), Some("POOL_EMPTY"));
    let t = &log_entries(&gw, "/stall", 1)[0];
    assert_eq!((t["status"].as_u64(), t["error_info"].as_str()), (Some(502), Some("TIMEOUT")), "{t}");
    let e = &log_entries(&gw, "/empty", 1)[0];
    assert_eq!((e["status"].as_u64(), e["error_info"].as_str()), (Some(502), Some("POOL_EMPTY")), "{e}");
    assert_eq!(e["backend"].as_str(), Some(""), "no server for an empty pool: {e}");
}

const OK_SERIES: &str =
    r#"ringgate_requests_total{listener="public",rule="rule01",pool="pool01",class="2xx",code="200",error_code=""}"#;

/// Polls `/metrics` until `series` has `value`; returns the last page.
fn wait_metric(gw: &Gateway, series: &str, value: u64) -> String {
    let mut page = String::new();
    let ok = wait_until(Duration::from_secs(10), || {
        page = gw.admin_get("/metrics").1;
        metric_value(&page, series) == Some(value)
    });
    assert!(ok, "{series} {value} expected in:\n{page}");
    page
}

#[test]
fn metrics_count_requests_by_status_and_error_code() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let n = 7;
    let mut c = Client::connect(gw.addr("public")).unwrap();
    for _ in 0..n {
        assert_eq!(c.request("GET", "/counted", &[], b"").unwrap().status, 200);
    }
    let (status, page) = gw.admin_get("/metrics");
    assert_eq!(status, 200);
    let page = if metric_value(&page, OK_SERIES) == Some(n) { page } else { wait_metric(&gw, OK_SERIES, n) };
    assert!(page.contains(&format!("{OK_SERIES} {n}\n")), "{page}");

    b.set_mode(Mode::Garbage);
    let r = get(gw.addr("public"), "/broken");
    assert_eq!(r.header("x-ringgate-error"), Some("INVALID_RESPONSE"));
    let bad = r#"ringgate_requests_total{listener="public",rule="rule01",pool="pool01",class="5xx",code="502",error_code="INVALID_RESPONSE"}"#;
    let page = wait_metric(&gw, bad, 1);
    assert_eq!(metric_value(&page, OK_SERIES), Some(n), "the 502 is not counted as a success");

    b.set_mode(Mode::Status(503));
    assert_eq!(get(gw.addr("public"), "/backend-503").status, 503);
    let backend_5xx = r#"ringgate_requests_total{listener="public",rule="rule01",pool="pool01",class="5xx",code="503",error_code=""}"#;
    wait_metric(&gw, backend_5xx, 1);
}

/// The access log has the client's User-Agent and a request id: the
/// client's X-Request-ID when it sends one, else the trace id.
#[test]
fn access_log_has_user_agent_and_request_id() {
    let b = Backend::start_ok("app").expect("backend");
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let addr = gw.addr("public");
    let r = request(addr, "GET", "/with-id", &[("User-Agent", "probe-bot/1.2"), ("X-Request-ID", "req-7f3a")], b"")
        .expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(get(addr, "/without-id").status, 200);
    let lines = || gw.access_log();
    assert!(wait_until(Duration::from_secs(5), || lines().len() >= 2), "{:?}", lines());
    let find = |path: &str| lines().into_iter().find(|l| l["path"] == path).expect("logged");
    let with = find("/with-id");
    assert_eq!((with["user_agent"].as_str(), with["request_id"].as_str()), (Some("probe-bot/1.2"), Some("req-7f3a")));
    let without = find("/without-id");
    assert_eq!(without["request_id"], without["trace_id"], "{without}");
    assert_eq!(without["protocol"], "HTTP/1.1");
}
