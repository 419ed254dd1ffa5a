//! Per-worker metrics. Each worker writes only its own counters, with a
//! relaxed load and store (no atomic read-modify-write, no shared cache line);
//! a scrape reads every worker's copy and sums them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use ringgate_http::ErrorCode;

/// A counter written by a single worker.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker calls this, so a plain load and store
    /// cannot lose updates, and avoid the cost of a locked instruction.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge written by a single worker.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    #[inline]
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in microseconds (the last bucket,
/// +Inf, is implicit).
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000, 30_000_000,
];

/// A latency histogram (cumulative at render time, per bucket here).
#[derive(Debug, Default)]
pub struct Histogram {
    pub buckets: [Counter; LATENCY_BUCKETS_US.len() + 1],
    pub sum_us: Counter,
}

impl Histogram {
    #[inline]
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = LATENCY_BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[i].add(1);
        self.sum_us.add(us);
    }
}

/// Statuses counted one by one: 100 to 599, all a response can carry (the
/// response parser refuses any other).
pub const STATUSES: usize = 500;
/// The statuses the gateway sends with its own answers (see
/// [`ErrorCode::status`]; a time-out may be 504 by `timeout_status`). Errors
/// are counted per (code, one of these) rather than per (code, any status),
/// which would take 20 times the memory for series that stay empty.
pub const ERROR_STATUSES: [u16; 15] = [400, 404, 405, 408, 413, 414, 417, 421, 431, 499, 501, 502, 503, 504, 505];

/// One worker's counters for one rule.
#[derive(Debug)]
pub struct RuleMetrics {
    /// Answers without an error code (the backends', redirects), by status.
    pub statuses: Box<[Counter; STATUSES]>,
    /// The gateway's own answers, by error code (as in [`ErrorCode::ALL`])
    /// and status (as in [`ERROR_STATUSES`]).
    pub errors: [[Counter; ERROR_STATUSES.len()]; ErrorCode::ALL.len()],
    /// Error codes with any other status: a response cut after its head was
    /// sent (a backend's 200 whose body broke off, `BACKEND_CLOSED`). Rare,
    /// so a lock (this worker's own, uncontended) on that path only.
    pub other_errors: Mutex<Vec<(u16, ErrorCode, u64)>>,
    pub connect_latency: Histogram,
    pub response_latency: Histogram,
    /// From the request head read to the response's last byte sent, as the
    /// client sees it (a fast-path 502 included).
    pub request_latency: Histogram,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
}

impl Default for RuleMetrics {
    fn default() -> Self {
        RuleMetrics {
            statuses: Box::new(std::array::from_fn(|_| Counter::default())),
            errors: Default::default(),
            other_errors: Mutex::new(Vec::new()),
            connect_latency: Histogram::default(),
            response_latency: Histogram::default(),
            request_latency: Histogram::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
        }
    }
}

impl RuleMetrics {
    #[inline]
    pub fn count(&self, status: u16, code: Option<ErrorCode>) {
        if let Some(c) = code {
            match ERROR_STATUSES.iter().position(|&s| s == status) {
                Some(si) => self.errors[c as usize][si].add(1),
                None => {
                    let mut other = self.other_errors.lock().unwrap_or_else(|e| e.into_inner());
                    match other.iter_mut().find(|(s, oc, _)| *s == status && *oc == c) {
                        Some(e) => e.2 += 1,
                        None => other.push((status, c, 1)),
                    }
                }
            }
            return;
        }
        let i = usize::from(status.clamp(100, 599) - 100);
        self.statuses[i].add(1);
    }

    /// Answers with this error code, whatever their status.
    pub fn errors_of(&self, code: ErrorCode) -> u64 {
        let other = self.other_errors.lock().unwrap_or_else(|e| e.into_inner());
        self.errors[code as usize].iter().map(Counter::get).sum::<u64>()
            + other.iter().filter(|e| e.1 == code).map(|e| e.2).sum::<u64>()
    }

    /// Every (status, error code, count) outside the fixed table.
    pub fn other_errors(&self) -> Vec<(u16, ErrorCode, u64)> {
        self.other_errors.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One worker's connection gauges.
#[derive(Debug, Default)]
pub struct WorkerGauges {
    pub client_connections: Gauge,
    pub backend_connections: Gauge,
    pub idle_pooled: Gauge,
    pub accepted: Counter,
    /// Connections closed at once because the worker was at its limit.
    pub refused_over_limit: Counter,
    /// Requests sent again, by [`RetryReason`].
    pub retries: [Counter; RetryReason::ALL.len()],
    /// Access log lines dropped because the writer fell behind.
    pub log_dropped: Counter,
    /// Client TLS handshakes that failed or timed out.
    pub tls_handshake_failures: Counter,
    /// Connections to `proxy_protocol` listeners closed for a missing or
    /// invalid PROXY header, or one from a peer outside `trusted_proxies`.
    pub proxy_protocol_errors: Counter,
    /// Client certificates not accepted on mutual-TLS listeners, by
    /// [`ringgate_tls::CertFailure`].
    pub client_cert_failures: [Counter; ringgate_tls::CertFailure::ALL.len()],
    /// Rewrite values dropped at run time because, once substituted, they
    /// would have put a control character into a head.
    pub rewrite_dropped: Counter,
    /// Client connections, requests (HTTP/2: streams) and requests the
    /// client abandoned, by protocol: `[HTTP/1.1, HTTP/2]`.
    pub connections_by_protocol: [Counter; 2],
    pub streams_by_protocol: [Counter; 2],
    pub resets_by_protocol: [Counter; 2],
    /// HTTP/2 connections or streams cut off, by defence (see [`H2Defence`]).
    pub h2_defences: [Counter; H2Defence::ALL.len()],
    /// Bodies relayed with splice(2), and their bytes, by direction:
    /// [`DIRECTIONS`].
    pub spliced_bodies: [Counter; 2],
    pub spliced_bytes: [Counter; 2],
    /// Bodies that would have been spliced and were copied, by
    /// [`SPLICE_FALLBACKS`].
    pub splice_fallbacks: [Counter; 2],
}

/// The `direction` label of the splice counters: a request body (client to
/// server) or a response body.
pub const DIRECTIONS: [&str; 2] = ["request", "response"];

/// The `reason` label of `ringgate_splice_fallbacks_total`: the kernel
/// refused to splice the sockets (`refused`), or no pipe could be had
/// (`no_pipe`: the descriptor limit, most likely).
pub const SPLICE_FALLBACKS: [&str; 2] = ["refused", "no_pipe"];

/// Why a request was sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// A pooled connection turned out dead before the server saw the
    /// request: sent again to the same server on a fresh connection.
    StalePooledConnection,
    /// The connection was refused (or failed otherwise): another server.
    ConnectFailed,
    ConnectTimeout,
    TlsHandshakeFailed,
    /// The server's name resolves to no address: another server.
    Unresolved,
    /// An idempotent request without a body was not answered within the
    /// settings' `attempt_timeout`: another server.
    AttemptTimeout,
}

impl RetryReason {
    pub const ALL: [RetryReason; 6] = [
        RetryReason::StalePooledConnection,
        RetryReason::ConnectFailed,
        RetryReason::ConnectTimeout,
        RetryReason::TlsHandshakeFailed,
        RetryReason::Unresolved,
        RetryReason::AttemptTimeout,
    ];

    /// The `reason` labels, in index order.
    pub const NAMES: [&'static str; 6] = [
        "stale_pooled_connection",
        "connect_failed",
        "connect_timeout",
        "tls_handshake_failed",
        "unresolved",
        "attempt_timeout",
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The `reason` labels of `ringgate_client_certificate_failures_total`.
pub const CERT_FAILURE_NAMES: [&str; ringgate_tls::CertFailure::ALL.len()] = ringgate_tls::CertFailure::NAMES;

/// The protocols the by-protocol counters are kept for, in index order.
pub const PROTOCOLS: [&str; 2] = ["HTTP/1.1", "HTTP/2"];

/// Why an HTTP/2 connection or stream was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2Defence {
    /// Streams opened and reset by the client faster than its budget
    /// (CVE-2023-44487).
    RapidReset,
    /// A header block spread over more CONTINUATION frames than a header
    /// list within the limit needs (CVE-2024-27316 and kin).
    ContinuationFlood,
    /// A header list over `max_request_head` once decoded (HPACK bomb).
    HeaderListTooLarge,
    SettingsFlood,
    PingFlood,
    /// A stream whose client gave no window for the response within the
    /// request time-out.
    StalledStream,
    /// Streams refused over `max_concurrent_streams`, repeatedly.
    TooManyStreams,
    /// Any other connection error the client caused (RFC 9113 §5.4.1).
    ProtocolError,
}

impl H2Defence {
    pub const ALL: [H2Defence; 8] = [
        H2Defence::RapidReset,
        H2Defence::ContinuationFlood,
        H2Defence::HeaderListTooLarge,
        H2Defence::SettingsFlood,
        H2Defence::PingFlood,
        H2Defence::StalledStream,
        H2Defence::TooManyStreams,
        H2Defence::ProtocolError,
    ];

    /// The `kind` labels, in index order.
    pub const NAMES: [&'static str; 8] = [
        "rapid_reset",
        "continuation_flood",
        "header_list_too_large",
        "settings_flood",
        "ping_flood",
        "stalled_stream",
        "too_many_streams",
        "protocol_error",
    ];

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl WorkerGauges {
    /// Counts a client connection of HTTP/2 (`true`) or HTTP/1.
    #[inline]
    pub fn count_connection(&self, h2: bool) {
        self.connections_by_protocol[usize::from(h2)].add(1);
    }

    /// Counts a request sent again.
    #[inline]
    pub fn count_retry(&self, r: RetryReason) {
        self.retries[r as usize].add(1);
    }

    /// Counts a defence that cut an HTTP/2 client off.
    pub fn count_defence(&self, d: H2Defence) {
        self.h2_defences[d as usize].add(1);
    }
}

/// Identifies a rule's series (all empty: requests no rule took).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleLabels {
    pub listener: String,
    pub rule: String,
    pub pool: String,
}

/// Per-worker copies of one rule's counters, indexed by worker.
pub type RuleSeries = Arc<[CachePadded<RuleMetrics>]>;

/// Every worker's metrics. Rule series are kept by name across reloads, so
/// counters stay monotonic as Prometheus expects.
#[derive(Debug)]
pub struct MetricsRegistry {
    workers: usize,
    rules: Mutex<HashMap<RuleLabels, RuleSeries>>,
    gauges: Vec<Arc<CachePadded<WorkerGauges>>>,
}

impl MetricsRegistry {
    pub fn new(workers: usize) -> Self {
        MetricsRegistry {
            workers,
            rules: Mutex::new(HashMap::new()),
            gauges: (0..workers).map(|_| Arc::new(CachePadded::new(WorkerGauges::default()))).collect(),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The series of a rule, created on first use.
    pub fn rule(&self, labels: RuleLabels) -> RuleSeries {
        let mut map = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(labels)
            .or_insert_with(|| (0..self.workers).map(|_| CachePadded::new(RuleMetrics::default())).collect())
            .clone()
    }

    pub fn gauges(&self, worker: usize) -> Arc<CachePadded<WorkerGauges>> {
        self.gauges[worker].clone()
    }

    pub fn all_gauges(&self) -> &[Arc<CachePadded<WorkerGauges>>] {
        &self.gauges
    }

    /// Every rule series, sorted by labels.
    pub fn rules(&self) -> Vec<(RuleLabels, RuleSeries)> {
        let map = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map.iter().map(|(k, s)| (k.clone(), s.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_follow_the_variants() {
        for (i, d) in H2Defence::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
        }
        for (i, r) in RetryReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, f) in ringgate_tls::CertFailure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "CertFailure::ALL follows the declaration order");
        }
        assert_eq!(H2Defence::RapidReset.as_str(), "rapid_reset");
        assert_eq!(RetryReason::Unresolved.as_str(), "unresolved");
    }

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(100));
        assert_eq!(h.buckets[0].get(), 1);
        assert_eq!(h.buckets[1].get(), 1);
        assert_eq!(h.buckets[LATENCY_BUCKETS_US.len()].get(), 1);
        assert_eq!(h.sum_us.get(), 100 + 101 + 100_000_000);
    }

    #[test]
    fn requests_by_status_and_code() {
        let m = RuleMetrics::default();
        m.count(200, None);
        m.count(502, Some(ErrorCode::PoolEmpty));
        m.count(502, Some(ErrorCode::PoolEmpty));
        m.count(504, Some(ErrorCode::Timeout));
        // A response cut after the backend's head: its status, and the code.
        m.count(200, Some(ErrorCode::BackendClosed));
        m.count(200, Some(ErrorCode::BackendClosed));
        assert_eq!(m.other_errors(), [(200, ErrorCode::BackendClosed, 2)]);
        assert_eq!(m.errors_of(ErrorCode::BackendClosed), 2);
        assert_eq!(m.statuses[100].get(), 1);
        assert_eq!(m.errors_of(ErrorCode::PoolEmpty), 2);
        assert_eq!(m.errors_of(ErrorCode::Timeout), 1);
        assert_eq!(m.statuses.iter().map(Counter::get).sum::<u64>(), 1);
    }

    #[test]
    fn every_error_code_has_its_status_in_the_table() {
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "ErrorCode::ALL follows the declaration order");
            assert!(ERROR_STATUSES.contains(&c.status()), "{c:?}");
        }
    }

    #[test]
    fn series_survive_a_second_lookup() {
        let r = MetricsRegistry::new(2);
        let l = RuleLabels { listener: "l".into(), rule: "r".into(), pool: "p".into() };
        let a = r.rule(l.clone());
        a[1].bytes_in.add(5);
        assert_eq!(r.rule(l)[1].bytes_in.get(), 5);
        assert_eq!(a.len(), 2);
    }
}
