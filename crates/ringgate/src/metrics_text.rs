//! `GET /metrics`: every worker's counters summed, and the health table, in
//! the Prometheus text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;

use ringgate_health::HealthState;
use ringgate_http::ErrorCode;
use ringgate_proxy::Shared;
use ringgate_proxy::metrics::{ERROR_STATUSES, Histogram, LATENCY_BUCKETS_US, STATUSES};

/// Escapes a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

/// Sums one histogram over workers and writes it.
fn histogram<'a>(o: &mut String, name: &str, labels: &str, hs: impl Iterator<Item = &'a Histogram>) {
    let mut buckets = [0u64; LATENCY_BUCKETS_US.len() + 1];
    let mut sum_us = 0u64;
    for h in hs {
        for (i, b) in h.buckets.iter().enumerate() {
            buckets[i] += b.get();
        }
        sum_us += h.sum_us.get();
    }
    let mut cumulative = 0;
    for (i, le) in LATENCY_BUCKETS_US.iter().enumerate() {
        cumulative += buckets[i];
        let _ = writeln!(o, "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}", *le as f64 / 1e6);
    }
    cumulative += buckets[LATENCY_BUCKETS_US.len()];
    let _ = writeln!(o, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(o, "{name}_sum{{{labels}}} {}", sum_us as f64 / 1e6);
    let _ = writeln!(o, "{name}_count{{{labels}}} {cumulative}");
}

pub fn render(shared: &Shared) -> String {
    let mut o = String::with_capacity(16 * 1024);
    let rules = shared.metrics.rules();

    header(
        &mut o,
        "ringgate_requests_total",
        "counter",
        "Requests answered, by listener, rule, pool, HTTP status (code, and its class) and the gateway's error code (empty: the backend's answer).",
    );
    for (l, series) in &rules {
        let base = format!("listener=\"{}\",rule=\"{}\",pool=\"{}\"", esc(&l.listener), esc(&l.rule), esc(&l.pool));
        for i in 0..STATUSES {
            let n: u64 = series.iter().map(|m| m.statuses[i].get()).sum();
            if n > 0 {
                let status = i + 100;
                let _ = writeln!(
                    o,
                    "ringgate_requests_total{{{base},class=\"{}xx\",code=\"{status}\",error_code=\"\"}} {n}",
                    status / 100
                );
            }
        }
        let mut other: BTreeMap<(u16, ErrorCode), u64> = BTreeMap::new();
        for (status, c, n) in series.iter().flat_map(|m| m.other_errors()) {
            *other.entry((status, c)).or_default() += n;
        }
        for (ci, c) in ErrorCode::ALL.iter().enumerate() {
            let fixed = ERROR_STATUSES
                .iter()
                .enumerate()
                .map(|(si, &status)| (status, series.iter().map(|m| m.errors[ci][si].get()).sum::<u64>()));
            let cut = other.iter().filter(|((_, oc), _)| oc == c).map(|(&(status, _), &n)| (status, n));
            for (status, n) in fixed.chain(cut) {
                if n > 0 {
                    let _ = writeln!(
                        o,
                        "ringgate_requests_total{{{base},class=\"{}xx\",code=\"{status}\",error_code=\"{}\"}} {n}",
                        status / 100,
                        c.as_str()
                    );
                }
            }
        }
    }
    header(&mut o, "ringgate_request_bytes_total", "counter", "Bytes received from clients (heads and bodies).");
    for (l, series) in &rules {
        let n: u64 = series.iter().map(|m| m.bytes_in.get()).sum();
        let _ = writeln!(
            o,
            "ringgate_request_bytes_total{{listener=\"{}\",rule=\"{}\"}} {n}",
            esc(&l.listener),
            esc(&l.rule)
        );
    }
    header(&mut o, "ringgate_response_bytes_total", "counter", "Bytes sent to clients.");
    for (l, series) in &rules {
        let n: u64 = series.iter().map(|m| m.bytes_out.get()).sum();
        let _ = writeln!(
            o,
            "ringgate_response_bytes_total{{listener=\"{}\",rule=\"{}\"}} {n}",
            esc(&l.listener),
            esc(&l.rule)
        );
    }
    header(&mut o, "ringgate_backend_connect_seconds", "histogram", "Time to open a connection to a backend server.");
    for (l, series) in rules.iter().filter(|(l, _)| !l.rule.is_empty()) {
        let labels = format!("rule=\"{}\",pool=\"{}\"", esc(&l.rule), esc(&l.pool));
        histogram(&mut o, "ringgate_backend_connect_seconds", &labels, series.iter().map(|m| &m.connect_latency));
    }
    header(
        &mut o,
        "ringgate_request_duration_seconds",
        "histogram",
        "Time from a request's head being read to the last byte of its response sent, as clients see it.",
    );
    for (l, series) in rules.iter() {
        let labels = format!("listener=\"{}\",rule=\"{}\",pool=\"{}\"", esc(&l.listener), esc(&l.rule), esc(&l.pool));
        histogram(&mut o, "ringgate_request_duration_seconds", &labels, series.iter().map(|m| &m.request_latency));
    }
    header(
        &mut o,
        "ringgate_backend_response_seconds",
        "histogram",
        "Time from sending a request to a backend server to its response head.",
    );
    for (l, series) in rules.iter().filter(|(l, _)| !l.rule.is_empty()) {
        let labels = format!("rule=\"{}\",pool=\"{}\"", esc(&l.rule), esc(&l.pool));
        histogram(&mut o, "ringgate_backend_response_seconds", &labels, series.iter().map(|m| &m.response_latency));
    }

    // Health, from the health table.
    let entries = shared.health.list();
    let mut by_pool: BTreeMap<(String, String), [u64; 4]> = BTreeMap::new();
    for e in &entries {
        let k = (e.key().pool.clone(), e.key().settings.clone());
        let slot = match e.state() {
            HealthState::Unknown => 0,
            HealthState::Healthy => 1,
            HealthState::Unhealthy => 2,
            HealthState::Draining => 3,
        };
        by_pool.entry(k).or_default()[slot] += 1;
    }
    header(
        &mut o,
        "ringgate_pool_servers",
        "gauge",
        "Servers of each (backend pool, backend HTTP settings) pair by health state (unknown: not probed yet).",
    );
    for ((pool, settings), counts) in &by_pool {
        for (i, state) in ["unknown", "healthy", "unhealthy", "draining"].iter().enumerate() {
            let _ = writeln!(
                o,
                "ringgate_pool_servers{{pool=\"{}\",settings=\"{}\",state=\"{state}\"}} {}",
                esc(pool),
                esc(settings),
                counts[i]
            );
        }
    }
    header(
        &mut o,
        "ringgate_server_up",
        "gauge",
        "1 if the server takes requests (healthy, not yet probed with unprobed_servers = serve, or kept by min_servers), else 0.",
    );
    for e in &entries {
        let k = e.key();
        let up = u8::from(e.accepts_requests());
        let _ = writeln!(
            o,
            "ringgate_server_up{{pool=\"{}\",settings=\"{}\",server=\"{}\"}} {up}",
            esc(&k.pool),
            esc(&k.settings),
            esc(&k.server)
        );
    }
    header(
        &mut o,
        "ringgate_probe_results_total",
        "counter",
        "Health probe results by server and result (success or the failure reason).",
    );
    for e in &entries {
        let k = e.key();
        let d = e.detail();
        let labels =
            format!("pool=\"{}\",settings=\"{}\",server=\"{}\"", esc(&k.pool), esc(&k.settings), esc(&k.server));
        let _ = writeln!(o, "ringgate_probe_results_total{{{labels},result=\"success\"}} {}", d.probes - d.failures);
        for (kind, n) in &d.failures_by_kind {
            let _ = writeln!(o, "ringgate_probe_results_total{{{labels},result=\"{kind}\"}} {n}");
        }
    }
    header(
        &mut o,
        "ringgate_passive_failures_total",
        "counter",
        "Connect failures and resets seen on live traffic, by server.",
    );
    for e in &entries {
        let k = e.key();
        let n = e.detail().passive_failures;
        let _ = writeln!(
            o,
            "ringgate_passive_failures_total{{pool=\"{}\",settings=\"{}\",server=\"{}\"}} {n}",
            esc(&k.pool),
            esc(&k.settings),
            esc(&k.server)
        );
    }

    // Connections, summed over workers.
    let g = shared.metrics.all_gauges();
    let sum_i = |f: &dyn Fn(&ringgate_proxy::metrics::WorkerGauges) -> i64| -> i64 { g.iter().map(|x| f(x)).sum() };
    let sum_u = |f: &dyn Fn(&ringgate_proxy::metrics::WorkerGauges) -> u64| -> u64 { g.iter().map(|x| f(x)).sum() };
    header(&mut o, "ringgate_client_connections", "gauge", "Open client connections.");
    let _ = writeln!(o, "ringgate_client_connections {}", sum_i(&|w| w.client_connections.get()));
    header(&mut o, "ringgate_backend_connections", "gauge", "Open connections to backend servers (in use or idle).");
    let _ = writeln!(o, "ringgate_backend_connections {}", sum_i(&|w| w.backend_connections.get()));
    header(
        &mut o,
        "ringgate_backend_idle_connections",
        "gauge",
        "Idle keep-alive connections to backend servers, pooled for reuse.",
    );
    let _ = writeln!(o, "ringgate_backend_idle_connections {}", sum_i(&|w| w.idle_pooled.get()));
    header(&mut o, "ringgate_connections_accepted_total", "counter", "Client connections accepted.");
    let _ = writeln!(o, "ringgate_connections_accepted_total {}", sum_u(&|w| w.accepted.get()));
    header(
        &mut o,
        "ringgate_connections_refused_total",
        "counter",
        "Client connections closed at once because a worker was at max_connections_per_worker.",
    );
    let _ = writeln!(o, "ringgate_connections_refused_total {}", sum_u(&|w| w.refused_over_limit.get()));
    header(
        &mut o,
        "ringgate_access_log_dropped_total",
        "counter",
        "Access log lines dropped because the writer fell behind.",
    );
    let _ = writeln!(o, "ringgate_access_log_dropped_total {}", sum_u(&|w| w.log_dropped.get()));
    header(
        &mut o,
        "ringgate_rewrite_dropped_total",
        "counter",
        "Rewrite values not applied because, once substituted, they held a control character.",
    );
    let _ = writeln!(o, "ringgate_rewrite_dropped_total {}", sum_u(&|w| w.rewrite_dropped.get()));
    header(
        &mut o,
        "ringgate_tls_handshake_failures_total",
        "counter",
        "Client TLS handshakes that failed or timed out.",
    );
    let _ = writeln!(o, "ringgate_tls_handshake_failures_total {}", sum_u(&|w| w.tls_handshake_failures.get()));
    header(
        &mut o,
        "ringgate_proxy_protocol_errors_total",
        "counter",
        "Connections to proxy_protocol listeners closed for a missing or invalid PROXY header, or one from a peer outside trusted_proxies.",
    );
    let _ = writeln!(o, "ringgate_proxy_protocol_errors_total {}", sum_u(&|w| w.proxy_protocol_errors.get()));
    // Counters kept per label value in an array, one series per value.
    type Pick = fn(&ringgate_proxy::metrics::WorkerGauges) -> &[ringgate_proxy::metrics::Counter];
    let labelled: [(&str, &str, &str, &[&str], Pick); 9] = [
        (
            "ringgate_client_connections_total",
            "Client connections, by protocol.",
            "protocol",
            &ringgate_proxy::metrics::PROTOCOLS,
            |w| &w.connections_by_protocol,
        ),
        (
            "ringgate_client_streams_total",
            "Client requests, by protocol (one per HTTP/1 request, one per HTTP/2 stream).",
            "protocol",
            &ringgate_proxy::metrics::PROTOCOLS,
            |w| &w.streams_by_protocol,
        ),
        (
            "ringgate_client_resets_total",
            "Requests the client abandoned before their response was complete (HTTP/2: RST_STREAM; HTTP/1: the connection closed).",
            "protocol",
            &ringgate_proxy::metrics::PROTOCOLS,
            |w| &w.resets_by_protocol,
        ),
        (
            "ringgate_http2_defence_total",
            "HTTP/2 connections (GOAWAY) or streams (RST_STREAM) cut off by a defence against abuse, by kind.",
            "kind",
            &ringgate_proxy::metrics::H2Defence::NAMES,
            |w| &w.h2_defences,
        ),
        (
            "ringgate_retries_total",
            "Requests sent again: on a fresh connection when a pooled one was dead, or to another server when no connection could be opened or an attempt timed out.",
            "reason",
            &ringgate_proxy::metrics::RetryReason::NAMES,
            |w| &w.retries,
        ),
        (
            "ringgate_client_certificate_failures_total",
            "Client certificates not accepted on mutual-TLS listeners (a missing one counted only where required), by reason.",
            "reason",
            &ringgate_proxy::metrics::CERT_FAILURE_NAMES,
            |w| &w.client_cert_failures,
        ),
        (
            "ringgate_spliced_bodies_total",
            "Bodies relayed between plain TCP sockets with splice(2), without copying them through the gateway, by direction.",
            "direction",
            &ringgate_proxy::metrics::DIRECTIONS,
            |w| &w.spliced_bodies,
        ),
        (
            "ringgate_spliced_bytes_total",
            "Body bytes relayed with splice(2), by direction.",
            "direction",
            &ringgate_proxy::metrics::DIRECTIONS,
            |w| &w.spliced_bytes,
        ),
        (
            "ringgate_splice_fallbacks_total",
            "Bodies copied because splicing them was not possible: the kernel refused to splice the sockets, or no pipe could be opened.",
            "reason",
            &ringgate_proxy::metrics::SPLICE_FALLBACKS,
            |w| &w.splice_fallbacks,
        ),
    ];
    for (name, help, label, values, pick) in labelled {
        header(&mut o, name, "counter", help);
        for (i, v) in values.iter().enumerate() {
            let n: u64 = g.iter().map(|w| pick(w)[i].get()).sum();
            let _ = writeln!(o, "{name}{{{label}=\"{v}\"}} {n}");
        }
    }
    header(
        &mut o,
        "ringgate_config_generation",
        "gauge",
        "Generation of the configuration being served (1 at start, +1 per reload).",
    );
    let _ = writeln!(o, "ringgate_config_generation {}", shared.plan().generation);
    header(
        &mut o,
        "ringgate_certificate_expiry_seconds",
        "gauge",
        "Seconds until each https listener's certificate expires (negative: expired).",
    );
    {
        let plan = shared.plan();
        let now = std::time::SystemTime::now();
        for l in &plan.config.listeners {
            let Some((tls, at)) = l.tls.as_ref().and_then(|t| Some((t, t.not_after?))) else { continue };
            let secs = match at.duration_since(now) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            };
            let _ = writeln!(
                o,
                "ringgate_certificate_expiry_seconds{{listener=\"{}\",certificate=\"{}\"}} {secs}",
                esc(&l.name),
                esc(&tls.certificate.display().to_string())
            );
        }
    }
    header(&mut o, "ringgate_config_reloads_total", "counter", "Configuration reloads, applied or rejected.");
    for (i, result) in ["applied", "rejected"].iter().enumerate() {
        let n = shared.reloads[i].load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(o, "ringgate_config_reloads_total{{result=\"{result}\"}} {n}");
    }
    header(&mut o, "ringgate_build_info", "gauge", "Always 1; the labels say which build runs.");
    let _ = writeln!(o, "ringgate_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    process_metrics(&mut o, shared.started);
    header(&mut o, "ringgate_workers", "gauge", "Worker threads.");
    let _ = writeln!(o, "ringgate_workers {}", shared.workers());
    o
}

/// The process's own figures, under the names Prometheus' client libraries
/// use: CPU time, resident memory, open descriptors and their limit, start
/// time. Read from /proc at scrape time; a figure /proc does not give is
/// left out rather than made up.
fn process_metrics(o: &mut String, started: std::time::SystemTime) {
    // Fields after the command name (which may hold spaces) in
    // /proc/self/stat: utime is the 14th field, stime the 15th.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // USER_HZ: /proc reports in hundredths of a second on every Linux
    // architecture (it is part of the user-space ABI, unlike the kernel's HZ).
    let ticks = 100.0;
    if let (Some(u), Some(s)) =
        (fields.get(11).and_then(|v| v.parse::<f64>().ok()), fields.get(12).and_then(|v| v.parse::<f64>().ok()))
    {
        header(o, "process_cpu_seconds_total", "counter", "User and system CPU time of the process.");
        let _ = writeln!(o, "process_cpu_seconds_total {}", (u + s) / ticks);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(kib) = rss_kib {
        header(o, "process_resident_memory_bytes", "gauge", "Resident memory of the process.");
        let _ = writeln!(o, "process_resident_memory_bytes {}", kib * 1024);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        header(o, "process_open_fds", "gauge", "Open file descriptors.");
        let _ = writeln!(o, "process_open_fds {}", fds.count());
    }
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    if let Some(max) = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok())
    {
        header(o, "process_max_fds", "gauge", "The limit on open file descriptors.");
        let _ = writeln!(o, "process_max_fds {max}");
    }
    if let Ok(d) = started.duration_since(std::time::UNIX_EPOCH) {
        header(o, "process_start_time_seconds", "gauge", "When the process started serving, in Unix seconds.");
        let _ = writeln!(o, "process_start_time_seconds {}", d.as_secs());
    }
}
