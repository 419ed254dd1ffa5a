//! `GET /metrics` read by a real Prometheus text-format parser
//! (prometheus-parse): every line parses, the families have their types, and
//! counters move as requests are made.

use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use ringgate_e2e::*;

fn scrape(gw: &Gateway) -> Scrape {
    let (status, body) = gw.admin_get("/metrics");
    assert_eq!(status, 200);
    let lines = body.lines().map(|l| Ok(l.to_string()));
    Scrape::parse(lines).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{body}"))
}

fn requests(s: &Scrape, class: &str, code: &str) -> f64 {
    s.samples
        .iter()
        .filter(|x: &&Sample| {
            x.metric == "ringgate_requests_total"
                && x.labels.get("rule") == Some("rule01")
                && x.labels.get("class") == Some(class)
                && x.labels.get("code") == Some(code)
        })
        .map(|x| match x.value {
            Value::Counter(v) | Value::Untyped(v) => v,
            _ => panic!("ringgate_requests_total is not a counter: {x:?}"),
        })
        .sum()
}

#[test]
fn metrics_parse_as_prometheus_text_and_counters_move() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let before = scrape(&gw);
    assert_eq!(requests(&before, "2xx", ""), 0.0);
    for _ in 0..7 {
        assert_eq!(get(gw.addr("public"), "/").status, 200);
    }
    b.stop_listening();
    b.close_connections();
    let r = get(gw.addr("public"), "/");
    assert_eq!(r.status, 502);
    let code = r.header("x-ringgate-error").unwrap().to_string();

    // A request is counted just after its answer is written: the scrape
    // waits (boundedly) for the last one.
    let mut after = scrape(&gw);
    wait_until(Duration::from_secs(5), || {
        after = scrape(&gw);
        requests(&after, "5xx", &code) >= 1.0
    });
    assert_eq!(requests(&after, "2xx", ""), 7.0);
    assert_eq!(requests(&after, "5xx", &code), 1.0);
    // Histograms carry their buckets, sum and count.
    let hist = after
        .samples
        .iter()
        .find(|s| s.metric == "ringgate_backend_response_seconds" && s.labels.get("rule") == Some("rule01"))
        .unwrap_or_else(|| {
            panic!("no response-time histogram: {:?}", after.samples.iter().map(|s| &s.metric).collect::<Vec<_>>())
        });
    match &hist.value {
        Value::Histogram(buckets) => {
            let total = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert!(total >= 7.0, "{buckets:?}");
        }
        other => panic!("not a histogram: {other:?}"),
    }
    // Health gauges for the pool.
    assert!(
        after.samples.iter().any(|s| s.metric == "ringgate_pool_servers" && s.labels.get("pool") == Some("pool01"))
    );
    assert!(after.docs.contains_key("ringgate_requests_total"), "HELP text present");
}

/// `promtool check metrics` (Prometheus' own linter, from Debian's
/// `prometheus` package) finds nothing to say about the exposition, after
/// traffic of every kind (200s, a 502 with failover, a reload) made every
/// family carry samples.
#[test]
fn promtool_check_metrics_is_clean() {
    let promtool = ringgate_e2e::tools::require_tool("promtool");
    let a = Backend::start_ok("a").unwrap();
    let dead = closed_addr();
    let gw = Gateway::start(&simple_config(&[a.addr(), dead], ""));
    for i in 0..6 {
        assert_eq!(get(gw.addr("public"), &format!("/{i}")).status, 200);
    }
    let (status, _) = gw.reload_with(&simple_config(&[a.addr(), dead], ""));
    assert_eq!(status, 200);
    let (status, body) = gw.admin_get("/metrics");
    assert_eq!(status, 200);
    for family in [
        "ringgate_retries_total",
        "ringgate_request_duration_seconds",
        "ringgate_config_reloads_total",
        "process_cpu_seconds_total",
        "ringgate_build_info",
    ] {
        assert!(body.contains(&format!("# TYPE {family} ")), "{family} missing:\n{body}");
    }
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), body.as_bytes()).expect("feed promtool");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("promtool output");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n\n{body}");
}
