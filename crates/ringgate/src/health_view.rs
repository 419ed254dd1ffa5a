//! The backend-health view: for each rule, its pool, settings and probe, and
//! each server's state with the evidence behind it. Served as JSON by the
//! admin API and read back by `ringgate health` and `ringgate doctor`.

use std::time::SystemTime;

use ringgate_config::{Config, SettingsId};
use ringgate_health::{HealthEntry, HealthTable};
use ringgate_proxy::Shared;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthView {
    pub generation: u64,
    pub draining: bool,
    pub rules: Vec<RuleView>,
    /// Servers removed by a reload, still finishing requests.
    pub removed: Vec<ServerView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleView {
    /// The rule, or `rule/path_rule` for a path rule's own target.
    pub rule: String,
    /// The path rule, when this target is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_rule: Option<String>,
    pub listener: String,
    pub pool: String,
    pub settings: String,
    pub request_timeout_ms: u64,
    pub probe: ProbeView,
    /// The pool as Application Gateway v2 sums it up: `Up` (every server
    /// takes requests), `Down` (none does) or `Partial`.
    pub pool_status: String,
    pub servers: Vec<ServerView>,
}

/// `Up`, `Down` or `Partial` (an empty pool is `Down`).
pub fn pool_status(servers: &[ServerView]) -> &'static str {
    let up = servers.iter().filter(|s| s.in_rotation).count();
    if up == 0 {
        "Down"
    } else if up == servers.len() {
        "Up"
    } else {
        "Partial"
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeView {
    /// `default` or the custom probe's name.
    pub name: String,
    pub custom: bool,
    pub protocol: String,
    /// The Host header sent.
    pub host: String,
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    /// Servers of each pool kept in rotation whatever their probes say.
    #[serde(default)]
    pub min_servers: u32,
    /// The probe's own port (v2's custom probe port): probes go to each
    /// server's address on it; `None`, the server's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerView {
    pub pool: String,
    pub settings: String,
    pub address: String,
    pub state: String,
    /// When the state last changed (RFC 3339).
    pub since: Option<String>,
    pub last_probe: Option<String>,
    pub last_status: Option<u16>,
    pub latency_ms: Option<f64>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// Why the last failed probe failed.
    pub reason: Option<String>,
    /// Machine-readable kind of that reason (`connection_refused`, ...).
    pub reason_kind: Option<String>,
    pub probes: u64,
    pub failures: u64,
    pub passive_failures: u64,
    /// What the server's name resolved to.
    pub resolved: Vec<String>,
    pub dns_error: Option<String>,
    /// An operator drained it (`POST /servers/<pool>/<server>/drain`).
    #[serde(default)]
    pub admin_drained: bool,
    /// It takes new requests now: its state, an operator's drain and
    /// `min_servers` taken together (what the data plane's pick sees).
    pub in_rotation: bool,
    /// It fails its probes (see `state`) and takes requests only because its
    /// probe's `min_servers` keeps it in rotation.
    #[serde(default)]
    pub kept_by_min_servers: bool,
}

impl ServerView {
    /// The row `ringgate health` shows for a pool without servers.
    pub fn empty_pool(pool: &str, settings: &str) -> ServerView {
        ServerView {
            pool: pool.to_string(),
            settings: settings.to_string(),
            address: "(none)".to_string(),
            state: "Empty".to_string(),
            since: None,
            last_probe: None,
            last_status: None,
            latency_ms: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
            reason: None,
            reason_kind: None,
            probes: 0,
            failures: 0,
            passive_failures: 0,
            resolved: Vec::new(),
            dns_error: None,
            admin_drained: false,
            in_rotation: false,
            kept_by_min_servers: false,
        }
    }
}

fn rfc3339(t: Option<SystemTime>) -> Option<String> {
    t.map(|t| humantime::format_rfc3339_millis(t).to_string())
}

/// The probe's accepted status codes as Application Gateway writes them
/// (`200-399`, `200,301-302`).
fn status_text(codes: &[std::ops::RangeInclusive<u16>]) -> String {
    codes
        .iter()
        .map(|r| if r.start() == r.end() { r.start().to_string() } else { format!("{}-{}", r.start(), r.end()) })
        .collect::<Vec<_>>()
        .join(",")
}

/// A server's view; `probe` (what probes it) words the reason as
/// Application Gateway v2 does.
pub fn server_view(e: &HealthEntry, probe: Option<&ringgate_config::Probe>) -> ServerView {
    // The prober changes state and counters under this lock: read both under it.
    let detail = e.detail();
    let state = e.state();
    let d = detail.clone();
    drop(detail);
    let (resolved, dns_error) = match &d.dns {
        Some(Ok(a)) => (a.iter().map(|x| x.to_string()).collect(), None),
        Some(Err(err)) => (Vec::new(), Some(err.clone())),
        None => (e.addrs().iter().map(|x| x.to_string()).collect(), None),
    };
    ServerView {
        pool: e.key().pool.clone(),
        settings: e.key().settings.clone(),
        address: e.key().server.clone(),
        state: state.as_str().to_string(),
        since: rfc3339(d.state_since),
        last_probe: rfc3339(d.last_probe),
        last_status: d.last_status,
        latency_ms: d.last_latency.map(|l| l.as_secs_f64() * 1000.0),
        consecutive_failures: d.counters.consecutive_failures,
        consecutive_successes: d.counters.consecutive_successes,
        reason: d.last_failure.as_ref().map(|f| match probe {
            Some(p) => f.appgw_reason(&status_text(&p.status_codes), p.body.as_deref()),
            None => f.to_string(),
        }),
        reason_kind: d.last_failure.as_ref().map(|f| f.kind().to_string()),
        probes: d.probes,
        failures: d.failures,
        passive_failures: d.passive_failures,
        resolved,
        dns_error,
        admin_drained: e.admin_drained(),
        in_rotation: e.accepts_requests(),
        kept_by_min_servers: e.kept_by_min_servers(),
    }
}

pub fn probe_view(cfg: &Config, settings: SettingsId) -> ProbeView {
    let p = cfg.probe_for(settings);
    ProbeView {
        custom: cfg.settings[settings.0].probe.is_some(),
        name: p.name.clone(),
        protocol: p.protocol.to_string(),
        host: cfg.probe_host(settings),
        path: p.path.clone(),
        interval_ms: p.interval.as_millis() as u64,
        timeout_ms: p.timeout.as_millis() as u64,
        unhealthy_threshold: p.unhealthy_threshold,
        healthy_threshold: p.healthy_threshold,
        min_servers: p.min_servers,
        port: p.port,
    }
}

/// The view of the running gateway.
pub fn build(shared: &Shared, table: &HealthTable) -> HealthView {
    let plan = shared.plan();
    let cfg = &plan.config;
    let rules = cfg
        .targets
        .iter()
        .zip(&plan.targets)
        .map(|(r, rp)| RuleView {
            rule: r.display.clone(),
            path_rule: r.path_rule.clone(),
            listener: cfg.listeners[cfg.rules[r.rule.0].listener.0].name.clone(),
            pool: cfg.pools[r.pool.0].name.clone(),
            settings: cfg.settings[r.settings.0].name.clone(),
            request_timeout_ms: cfg.settings[r.settings.0].request_timeout.as_millis() as u64,
            probe: probe_view(cfg, r.settings),
            pool_status: String::new(),
            servers: {
                let probe = cfg.probe_for(r.settings);
                rp.servers.iter().map(|s| server_view(&s.health, Some(&probe))).collect()
            },
        })
        .map(|mut v: RuleView| {
            v.pool_status = pool_status(&v.servers).to_string();
            v
        })
        .collect();
    let live = plan.server_keys();
    let removed = table.list().iter().filter(|e| !live.contains(e.key())).map(|e| server_view(e, None)).collect();
    HealthView { generation: plan.generation, draining: shared.is_draining(), rules, removed }
}
