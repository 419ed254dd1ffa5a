//! `ringgate doctor`: walks the troubleshooting reference's list of 502 causes
//! against the configuration, the live network and (when the gateway runs)
//! its health table and metrics, and says which cause applies, with the
//! evidence and the fix.
//!
//! The causes, in the reference's order: (1) an empty backend pool, (2)
//! unhealthy instances, (3) the default probe cannot reach the servers, (4) a
//! misconfigured custom probe, (5) the backend is slower than the request
//! time-out.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use ringgate_config::{Config, ConfigErrors, Probe, Protocol, SettingsId, load_file};
use ringgate_health::{ProbeFailure, ProbeResult, ProbeTls, probe_addr, resolve};
use serde::Serialize;

use crate::health_view::{HealthView, ServerView};

/// The five causes of the reference, plus configuration errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    EmptyPool,
    UnhealthyInstances,
    DefaultProbe,
    CustomProbe,
    RequestTimeout,
    Configuration,
}

impl Cause {
    fn title(self) -> &'static str {
        match self {
            Cause::EmptyPool => "1 (empty backend pool)",
            Cause::UnhealthyInstances => "2 (unhealthy instances)",
            Cause::DefaultProbe => "3 (default probe)",
            Cause::CustomProbe => "4 (custom probe)",
            Cause::RequestTimeout => "5 (request time-out)",
            Cause::Configuration => "configuration",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Causes 502s now.
    Error,
    /// Reduces capacity or risks 502s.
    Warning,
    /// Worth knowing; nothing is wrong.
    Info,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub cause: Cause,
    pub severity: Severity,
    pub rule: Option<String>,
    pub pool: Option<String>,
    pub settings: Option<String>,
    pub server: Option<String>,
    pub evidence: String,
    pub fix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub rule: String,
    pub listener: String,
    pub pool: String,
    /// The 502 code requests of this rule get now; `None` when none.
    pub code: Option<String>,
    /// Which of the reference's causes explains it.
    pub cause: Option<Cause>,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config: String,
    /// What was learnt of the running gateway.
    pub gateway: String,
    pub verdicts: Vec<Verdict>,
    pub findings: Vec<Finding>,
    pub exit_code: u8,
}

/// What the doctor saw of one server, probing it from here.
#[derive(Debug, Clone)]
struct ServerCheck {
    server: String,
    /// `None` when the server's name does not resolve.
    addr: Option<SocketAddr>,
    dns_error: Option<String>,
    url: String,
    result: Option<ProbeResult>,
}

/// Live state of a running gateway.
struct Live {
    view: HealthView,
    metrics: Option<String>,
}

pub fn run(path: &Path, admin: Option<String>, json: bool) -> ExitCode {
    let report = match load_file(path) {
        Ok(cfg) => diagnose(&cfg, admin),
        Err(e) if e.unreadable => {
            eprintln!("ringgate doctor: the check cannot run: {e}");
            return ExitCode::from(2);
        }
        Err(e) => config_report(path, &e),
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("ringgate doctor: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", render(&report));
    }
    ExitCode::from(report.exit_code)
}

/// An invalid configuration: the gateway would refuse it (or keep the old one
/// on reload). Probe field errors are the reference's cause 4.
fn config_report(path: &Path, e: &ConfigErrors) -> Report {
    let findings: Vec<Finding> = e
        .errors
        .iter()
        .map(|d| Finding {
            cause: if d.entry.starts_with("[[probe]]") { Cause::CustomProbe } else { Cause::Configuration },
            severity: Severity::Error,
            rule: None,
            pool: None,
            settings: None,
            server: None,
            evidence: d.to_string(),
            fix: "correct the field as the message says, then run `ringgate check` and reload".into(),
        })
        .collect();
    Report {
        config: path.display().to_string(),
        gateway: "not checked: the configuration is invalid".into(),
        verdicts: vec![Verdict {
            rule: "-".into(),
            listener: "-".into(),
            pool: "-".into(),
            code: Some("CONFIG_INVALID".into()),
            cause: Some(Cause::Configuration),
            summary: format!(
                "CONFIG_INVALID: the configuration has {} error{}: the gateway will not start with it, and a reload keeps the previous one",
                e.errors.len(),
                if e.errors.len() == 1 { "" } else { "s" }
            ),
        }],
        findings,
        exit_code: 1,
    }
}

fn fetch_live(admin: &str) -> Result<Live, String> {
    let (status, body) = crate::admin_client::get(admin, "/backend-health")?;
    if status != 200 {
        return Err(format!("GET /backend-health answered {status}"));
    }
    let view: HealthView = serde_json::from_str(&body).map_err(|e| format!("unexpected /backend-health: {e}"))?;
    let metrics = crate::admin_client::get(admin, "/metrics").ok().filter(|(s, _)| *s == 200).map(|(_, b)| b);
    Ok(Live { view, metrics })
}

/// Probes every server of every (settings, pool) pair the rules use, from
/// here, concurrently.
fn probe_all(cfg: &Config) -> BTreeMap<(usize, SettingsId), Vec<ServerCheck>> {
    let mut pairs: Vec<(usize, SettingsId)> = Vec::new();
    for r in &cfg.targets {
        if !pairs.contains(&(r.pool.0, r.settings)) {
            pairs.push((r.pool.0, r.settings));
        }
    }
    type Job = ((usize, SettingsId), ServerCheck, Probe, String, Option<ProbeTls>);
    let mut jobs: Vec<Job> = Vec::new();
    for &(pool, sid) in &pairs {
        let settings = &cfg.settings[sid.0];
        let probe = cfg.probe_for(sid);
        let host = cfg.probe_host(sid);
        for s in &cfg.pools[pool].servers {
            let port = s.port_or(settings.port);
            let server = s.display_with(settings.port);
            let (addr, dns_error) = match resolve(&s.host, port) {
                Ok(a) => (a.first().copied(), None),
                Err(e) => (None, Some(e)),
            };
            let url = ringgate_health::probe_url(probe.protocol, &server, probe.port, &probe.path);
            let tls = (probe.protocol == Protocol::Https).then(|| ProbeTls::for_settings(settings, &s.host)).flatten();
            jobs.push((
                (pool, sid),
                ServerCheck { server, addr, dns_error, url, result: None },
                probe.clone(),
                host.clone(),
                tls,
            ));
        }
    }
    let rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build();
    let mut out: BTreeMap<(usize, SettingsId), Vec<ServerCheck>> = BTreeMap::new();
    let Ok(mut rt) = rt else {
        for (k, c, ..) in jobs {
            out.entry(k).or_default().push(c);
        }
        return out;
    };
    let results = rt.block_on(async move {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(k, mut c, mut probe, host, tls)| {
                monoio::spawn(async move {
                    if let Some(addr) = c.addr {
                        // The probe's own time-out (the reference's 30 s for
                        // the default probe), so the verdict matches the
                        // gateway's; never longer.
                        probe.timeout = probe.timeout.min(Duration::from_secs(30));
                        c.result = Some(probe_addr(addr, &probe, &host, tls.as_ref()).await);
                    }
                    (k, c)
                })
            })
            .collect();
        let mut v = Vec::new();
        for h in handles {
            v.push(h.await);
        }
        v
    });
    for (k, c) in results {
        out.entry(k).or_default().push(c);
    }
    out
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(1) { format!("{:.2} s", d.as_secs_f64()) } else { format!("{} ms", d.as_millis()) }
}

fn fail_text(f: &ProbeFailure, addr: &str, probe: &Probe) -> String {
    match f {
        ProbeFailure::ConnectionRefused => format!("connection refused on {addr}"),
        ProbeFailure::ConnectTimeout => {
            format!("connect time-out on {addr} (no answer to the connection request within {})", ms(probe.timeout))
        }
        ProbeFailure::ProbeTimeout => {
            format!("no response from {addr} within the probe time-out of {}", ms(probe.timeout))
        }
        ProbeFailure::StatusMismatch(c) => format!("status {c} from {addr}{}", probe.path),
        ProbeFailure::BodyMismatch(c) => {
            format!("the body from {addr}{} (status {c}) lacks {:?}", probe.path, probe.body.as_deref().unwrap_or(""))
        }
        other => format!("{other} on {addr}"),
    }
}

/// Estimates the share of responses slower than `limit` from a Prometheus
/// histogram in `metrics` for `rule`: (slow, total).
fn slow_share(metrics: &str, rule: &str, limit: Duration) -> Option<(u64, u64)> {
    let prefix = format!("ringgate_backend_response_seconds_bucket{{rule=\"{rule}\",");
    let mut below = 0u64;
    let mut total = None;
    for line in metrics.lines().filter(|l| l.starts_with(&prefix)) {
        let le = line.split(",le=\"").nth(1)?.split('"').next()?;
        let n: u64 = line.rsplit(' ').next()?.parse().ok()?;
        if le == "+Inf" {
            total = Some(n);
        } else if let Ok(b) = le.parse::<f64>()
            && b <= limit.as_secs_f64()
        {
            below = below.max(n);
        }
    }
    let total = total?;
    Some((total.saturating_sub(below), total))
}

fn count_code(metrics: &str, rule: &str, code: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("ringgate_requests_total{")
                && l.contains(&format!("rule=\"{rule}\""))
                && l.contains(&format!("code=\"{code}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn diagnose(cfg: &Config, admin: Option<String>) -> Report {
    let admin = admin.or_else(|| cfg.gateway.admin_listen.map(|a| a.to_string()));
    let live = admin.as_deref().map(fetch_live);
    let gateway = match (&admin, &live) {
        (None, _) => "admin API off: checked from here only".to_string(),
        (Some(a), Some(Ok(l))) => format!("running (admin API {a}, configuration generation {})", l.view.generation),
        (Some(a), Some(Err(_))) if a.ends_with(":0") => format!(
            "admin_listen is {a} (any free port): pass --admin with the address the gateway logged at start; checked from here only"
        ),
        (Some(a), Some(Err(e))) => format!("not reachable on {a} ({e}): checked from here only"),
        (Some(_), None) => unreachable!("live is fetched whenever admin is set"),
    };
    let live = live.and_then(Result::ok);
    let checks = probe_all(cfg);
    let mut findings = Vec::new();
    let mut verdicts = Vec::new();

    // One verdict per target: a basic rule, or each path rule of a
    // path-based rule, since each has its own pool.
    for target in &cfg.targets {
        let rule = &cfg.rules[target.rule.0];
        let pool = &cfg.pools[target.pool.0];
        let sid = target.settings;
        let settings = &cfg.settings[sid.0];
        let probe = cfg.probe_for(sid);
        let custom = settings.probe.is_some();
        let probe_host = cfg.probe_host(sid);
        let listener = &cfg.listeners[rule.listener.0];
        let finding = |cause, severity, server: Option<&str>, evidence: String, fix: String| Finding {
            cause,
            severity,
            rule: Some(target.display.clone()),
            pool: Some(pool.name.clone()),
            settings: Some(settings.name.clone()),
            server: server.map(str::to_string),
            evidence,
            fix,
        };
        let mut verdict: Option<(String, Cause, String)> = None;

        // 1. Empty backend pool.
        if pool.servers.is_empty() {
            findings.push(finding(
                Cause::EmptyPool,
                Severity::Error,
                None,
                format!("backend pool \"{}\" has no addresses", pool.name),
                format!(
                    "add the servers' IP addresses or host names to `addresses` of [[backend_pool]] \"{}\"",
                    pool.name
                ),
            ));
            verdict = Some((
                "POOL_EMPTY".into(),
                Cause::EmptyPool,
                format!("{}: POOL_EMPTY: the pool has no addresses", pool.name),
            ));
        }
        let server_checks = checks.get(&(target.pool.0, sid)).cloned().unwrap_or_default();
        let unresolved: Vec<&ServerCheck> = server_checks.iter().filter(|c| c.dns_error.is_some()).collect();
        if verdict.is_none() && !pool.servers.is_empty() && unresolved.len() == pool.servers.len() {
            let names: Vec<String> = unresolved.iter().map(|c| c.dns_error.clone().unwrap_or_default()).collect();
            findings.push(finding(
                Cause::EmptyPool,
                Severity::Error,
                None,
                format!("every address of backend pool \"{}\" is a host name that does not resolve: {}", pool.name, names.join("; ")),
                "fix the names or the DNS records (the gateway resolves them again every dns_refresh), or use IP addresses".into(),
            ));
            verdict = Some((
                "POOL_EMPTY".into(),
                Cause::EmptyPool,
                format!(
                    "{}: POOL_EMPTY (in effect; requests get 502 ALL_UNHEALTHY): no address resolves: {}",
                    pool.name,
                    names.join("; ")
                ),
            ));
        } else {
            for c in &unresolved {
                findings.push(finding(
                    Cause::EmptyPool,
                    Severity::Warning,
                    Some(&c.server),
                    format!("{} does not resolve: {}", c.server, c.dns_error.as_deref().unwrap_or("")),
                    "fix the name or its DNS record; until then that server is unhealthy".into(),
                ));
            }
        }

        // 2. Unhealthy instances: the live table when the gateway runs, else
        // the probes made from here.
        let live_servers: Vec<&ServerView> = live
            .as_ref()
            .map(|l| {
                l.view
                    .rules
                    .iter()
                    .filter(|r| r.pool == pool.name && r.settings == settings.name)
                    .flat_map(|r| r.servers.iter())
                    .collect()
            })
            .unwrap_or_default();
        let mut down: Vec<(String, String)> = Vec::new();
        // Did every failure happen at the HTTP level (the server answers, but
        // not what the probe wants)?
        let mut all_http_level = true;
        for c in &server_checks {
            let live_state = live_servers.iter().find(|s| s.address == c.server);
            let probe_failure = match &c.result {
                Some(Err((f, _))) => Some(f.clone()),
                _ => None,
            };
            let live_down = live_state.is_some_and(|s| s.state == "Unhealthy");
            if live_down || probe_failure.is_some() || c.dns_error.is_some() {
                let why = match (&probe_failure, live_state) {
                    (Some(f), _) => fail_text(f, &c.server, &probe),
                    (None, Some(s)) => s.reason.clone().unwrap_or_else(|| "unhealthy".into()),
                    (None, None) => c.dns_error.clone().unwrap_or_default(),
                };
                let mut evidence = String::new();
                if let Some(s) = live_state {
                    let _ = write!(
                        evidence,
                        "gateway: {} since {} ({} consecutive failed probe{}; last: {}); ",
                        s.state,
                        s.since.as_deref().unwrap_or("start"),
                        s.consecutive_failures,
                        if s.consecutive_failures == 1 { "" } else { "s" },
                        s.reason.as_deref().unwrap_or("-")
                    );
                }
                let _ = write!(evidence, "probe from here: GET {} (Host: {probe_host}): {why}", c.url);
                let not_deployed = matches!(probe_failure, Some(ProbeFailure::StatusMismatch(404)));
                let port = probe.port.unwrap_or_else(|| c.addr.map_or(settings.port, |a| a.port()));
                let fix = match &probe_failure {
                    Some(ProbeFailure::StatusMismatch(404)) => format!(
                        "the server accepts connections but does not serve {}: the application is not deployed there (or the probe path is wrong)",
                        probe.path
                    ),
                    Some(ProbeFailure::ConnectionRefused) => format!(
                        "nothing listens on port {port} of the server: start the application, or correct the address or `port` in [[backend_http_settings]] \"{}\"",
                        settings.name
                    ),
                    Some(ProbeFailure::ConnectTimeout) => format!(
                        "connections to port {port} time out: a firewall or network security rule drops packets between the gateway and the server, or the host is down"
                    ),
                    Some(ProbeFailure::ProbeTimeout) => format!(
                        "the server accepts connections but does not answer {} within the probe time-out of {}",
                        probe.path,
                        ms(probe.timeout)
                    ),
                    Some(ProbeFailure::StatusMismatch(code)) => format!(
                        "the server answers {code} on {}: make it answer 2xx/3xx there, or adjust the probe's `match.status_codes`",
                        probe.path
                    ),
                    Some(ProbeFailure::BodyMismatch(_)) => format!(
                        "the server's answer on {} lacks {:?}: fix the application, or the probe's `match.body`",
                        probe.path,
                        probe.body.as_deref().unwrap_or("")
                    ),
                    Some(ProbeFailure::TlsHandshake(detail)) => format!(
                        "{detail}: set `trusted_root_certificates` in [[backend_http_settings]] \"{}\" to the CA that issued the server's certificate, or fix the certificate",
                        settings.name
                    ),
                    Some(ProbeFailure::DnsFailure(_)) | None if c.dns_error.is_some() => {
                        "fix the host name or its DNS record".to_string()
                    }
                    _ => "make the server answer its probe (see the evidence)".to_string(),
                };
                let evidence = if not_deployed {
                    format!("{evidence}: healthy at the TCP level but the application is not deployed")
                } else {
                    evidence
                };
                findings.push(finding(Cause::UnhealthyInstances, Severity::Warning, Some(&c.server), evidence, fix));
                all_http_level &= matches!(
                    probe_failure,
                    Some(
                        ProbeFailure::StatusMismatch(_)
                            | ProbeFailure::BodyMismatch(_)
                            | ProbeFailure::TlsHandshake(_)
                            | ProbeFailure::ProbeTimeout
                            | ProbeFailure::InvalidResponse(_)
                    )
                );
                down.push((c.server.clone(), why));
            }
        }
        if verdict.is_none() && !pool.servers.is_empty() && down.len() == pool.servers.len() {
            for f in findings
                .iter_mut()
                .filter(|f| f.cause == Cause::UnhealthyInstances && f.rule.as_deref() == Some(&target.display))
            {
                f.severity = Severity::Error;
            }
            let which = if custom { format!("custom probe \"{}\"", probe.name) } else { "the default probe".into() };
            // The default probe's failures are the reference's cause 3; a
            // custom probe the servers answer wrongly is cause 4; servers that
            // do not answer at all are cause 2.
            let cause = match (custom, all_http_level) {
                (false, _) => Cause::DefaultProbe,
                (true, true) => Cause::CustomProbe,
                (true, false) => Cause::UnhealthyInstances,
            };
            verdict = Some((
                "ALL_UNHEALTHY".into(),
                cause,
                format!(
                    "{}: ALL_UNHEALTHY: {} of {} servers fail {which}: {}",
                    pool.name,
                    down.len(),
                    pool.servers.len(),
                    down.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>().join("; ")
                ),
            ));
        }

        // 3. Default probe problems.
        if !custom {
            for c in &server_checks {
                match &c.result {
                    Some(Err((ProbeFailure::ConnectionRefused, _))) => findings.push(finding(
                        Cause::DefaultProbe,
                        Severity::Error,
                        Some(&c.server),
                        format!("nothing listens on {}: the default probe GET {} (Host: 127.0.0.1) is refused", c.server, c.url),
                        if settings.port != 80 {
                            format!("the settings port is {} (not 80): make the default site listen on port {} at the server, or correct `port` in [[backend_http_settings]] \"{}\"", settings.port, settings.port, settings.name)
                        } else {
                            "start the default site on port 80 of the server, listening for 127.0.0.1 as Host".into()
                        },
                    )),
                    Some(Err((ProbeFailure::ConnectTimeout, _))) => findings.push(finding(
                        Cause::DefaultProbe,
                        Severity::Error,
                        Some(&c.server),
                        format!("connecting to {} times out (refused would mean nothing listens; a time-out means packets are dropped)", c.server),
                        "open the port: check firewall rules and network security groups between the gateway and the server".into(),
                    )),
                    Some(Err((ProbeFailure::ProbeTimeout, _))) => findings.push(finding(
                        Cause::DefaultProbe,
                        Severity::Error,
                        Some(&c.server),
                        format!("GET {} connects but does not answer within {}", c.url, ms(probe.timeout)),
                        "the default site must return 200 within the 30 s probe time-out".into(),
                    )),
                    Some(Err((f, _))) => findings.push(finding(
                        Cause::DefaultProbe,
                        Severity::Error,
                        Some(&c.server),
                        format!("GET {} (Host: 127.0.0.1): {}", c.url, fail_text(f, &c.server, &probe)),
                        "the default site at http://127.0.0.1:<port>/ must answer 200 (2xx or 3xx counts as healthy)".into(),
                    )),
                    Some(Ok((status, latency))) => findings.push(finding(
                        Cause::DefaultProbe,
                        Severity::Info,
                        Some(&c.server),
                        format!("GET {} (Host: 127.0.0.1) answered {status} in {}", c.url, ms(*latency)),
                        String::new(),
                    )),
                    None => {}
                }
            }
        }

        // 4. Custom probe problems.
        if let Some(pid) = settings.probe {
            let p = &cfg.probes[pid.0];
            if p.timeout > p.interval {
                findings.push(finding(
                    Cause::CustomProbe,
                    Severity::Warning,
                    None,
                    format!(
                        "probe \"{}\": time-out {} is longer than the interval {}",
                        p.name,
                        ms(p.timeout),
                        ms(p.interval)
                    ),
                    format!("set `timeout` of [[probe]] \"{}\" to at most its interval", p.name),
                ));
            }
            if p.protocol == Protocol::Https && settings.protocol == Protocol::Http {
                findings.push(finding(
                    Cause::CustomProbe,
                    Severity::Warning,
                    None,
                    format!("probe \"{}\" uses https but the settings speak http to the servers", p.name),
                    "use the same protocol as the backend HTTP settings".into(),
                ));
            }
            if listener.is_basic() && p.host.as_deref().is_some_and(|h| h != ringgate_config::DEFAULT_PROBE_HOST) {
                findings.push(finding(
                    Cause::CustomProbe,
                    Severity::Warning,
                    None,
                    format!(
                        "probe \"{}\" sends Host: {} although listener \"{}\" is single-site, where the default 127.0.0.1 is usually right",
                        p.name,
                        p.host.as_deref().unwrap_or(""),
                        listener.name
                    ),
                    format!("remove `host` from [[probe]] \"{}\" unless the servers need that host name", p.name),
                ));
            }
            for c in &server_checks {
                let (severity, evidence) = match &c.result {
                    Some(Ok((s, l))) => {
                        (Severity::Info, format!("GET {} (Host: {probe_host}) answered {s} in {}", c.url, ms(*l)))
                    }
                    Some(Err((f, _))) => {
                        (Severity::Error, format!("GET {} (Host: {probe_host}): {}", c.url, fail_text(f, &c.server, p)))
                    }
                    None => continue,
                };
                let connect_level = matches!(
                    &c.result,
                    Some(Err((
                        ProbeFailure::ConnectionRefused
                            | ProbeFailure::ConnectTimeout
                            | ProbeFailure::ConnectError(_)
                            | ProbeFailure::Closed,
                        _
                    )))
                );
                // A server that takes no connection at all is cause 2, told
                // above with its fix; the probe is not what is wrong.
                if connect_level {
                    continue;
                }
                let fix = if severity == Severity::Info {
                    String::new()
                } else {
                    format!(
                        "check [[probe]] \"{}\": path {:?}, host {:?}, accepted status {}, body {:?}; the server must answer that URL within {}",
                        p.name,
                        p.path,
                        probe_host,
                        p.status_codes
                            .iter()
                            .map(|r| format!("{}-{}", r.start(), r.end()))
                            .collect::<Vec<_>>()
                            .join(","),
                        p.body.as_deref().unwrap_or("(any)"),
                        ms(p.timeout)
                    )
                };
                findings.push(finding(Cause::CustomProbe, severity, Some(&c.server), evidence, fix));
            }
        }

        // 5. Request time-out.
        let limit = settings.request_timeout;
        let setting_line =
            format!("request_timeout in [[backend_http_settings]] \"{}\" (now {})", settings.name, ms(limit));
        let mut slow: Vec<String> = Vec::new();
        for c in &server_checks {
            let latency = match &c.result {
                Some(Ok((_, l))) => Some(*l),
                Some(Err((ProbeFailure::ProbeTimeout, _))) => Some(probe.timeout),
                Some(Err((_, l))) => *l,
                None => None,
            };
            let Some(l) = latency else { continue };
            if l > limit {
                findings.push(finding(
                    Cause::RequestTimeout,
                    Severity::Error,
                    Some(&c.server),
                    format!(
                        "{} took {} to answer GET {}, more than the request time-out of {}",
                        c.server,
                        ms(l),
                        c.url,
                        ms(limit)
                    ),
                    format!("raise {setting_line} above {}, or make the server faster", ms(l)),
                ));
                slow.push(format!("{} took {}", c.server, ms(l)));
            } else if l.as_secs_f64() > 0.8 * limit.as_secs_f64() {
                findings.push(finding(
                    Cause::RequestTimeout,
                    Severity::Warning,
                    Some(&c.server),
                    format!(
                        "{} took {} to answer GET {}, over 80% of the request time-out of {}",
                        c.server,
                        ms(l),
                        c.url,
                        ms(limit)
                    ),
                    format!("raise {setting_line}, or make the server faster"),
                ));
            }
        }
        if let Some(m) = live.as_ref().and_then(|l| l.metrics.as_deref()) {
            let timeouts = count_code(m, &rule.name, "TIMEOUT");
            if let Some((n, total)) = slow_share(m, &rule.name, limit.mul_f64(0.8))
                && (n > 0 || timeouts > 0)
            {
                findings.push(finding(
                    Cause::RequestTimeout,
                    if timeouts > 0 { Severity::Error } else { Severity::Warning },
                    None,
                    format!(
                        "the gateway has seen {timeouts} request{} answered 502 TIMEOUT, and {n} of {total} backend responses slower than 80% of {}",
                        if timeouts == 1 { "" } else { "s" },
                        ms(limit)
                    ),
                    format!("raise {setting_line}, or make the servers faster"),
                ));
                if timeouts > 0 && verdict.is_none() && slow.is_empty() {
                    slow.push(format!("{timeouts} requests timed out at the gateway"));
                }
            }
        }
        if verdict.is_none() && !slow.is_empty() {
            verdict = Some((
                "TIMEOUT".into(),
                Cause::RequestTimeout,
                format!(
                    "{}: TIMEOUT: {}, over the request time-out of {} (settings \"{}\")",
                    pool.name,
                    slow.join("; "),
                    ms(limit),
                    settings.name
                ),
            ));
        }

        let (code, cause, summary) = match verdict {
            Some((c, cause, s)) => (Some(c), Some(cause), s),
            None => {
                let up = pool.servers.len() - down.len();
                (None, None, format!("{}: OK: {up} of {} servers healthy", pool.name, pool.servers.len()))
            }
        };
        verdicts.push(Verdict {
            rule: target.display.clone(),
            listener: listener.name.clone(),
            pool: pool.name.clone(),
            code,
            cause,
            summary,
        });
    }

    let exit_code = u8::from(verdicts.iter().any(|v| v.code.is_some()));
    Report { config: cfg.source.display().to_string(), gateway, verdicts, findings, exit_code }
}

fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "ringgate doctor: {} (gateway {})", r.config, r.gateway);
    let _ = writeln!(o);
    for v in &r.verdicts {
        let mark = if v.code.is_some() { "FAIL" } else { "ok  " };
        let cause = v.cause.map_or(String::new(), |c| format!(" [cause {}]", c.title()));
        let _ = writeln!(o, "{mark} rule \"{}\" (listener \"{}\"): {}{cause}", v.rule, v.listener, v.summary);
    }
    let mut shown: Vec<&Finding> = r.findings.iter().filter(|f| f.severity != Severity::Info).collect();
    shown.sort_by_key(|f| (f.severity, f.cause as u8));
    if !shown.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Findings (cause, evidence, fix):");
        for f in shown {
            let sev = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            let whom = [f.pool.as_deref(), f.settings.as_deref(), f.server.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" / ");
            let whom = if whom.is_empty() { r.config.clone() } else { whom };
            let _ = writeln!(o, "- [{sev}] {}: {whom}", f.cause.title());
            let _ = writeln!(o, "    evidence: {}", f.evidence);
            if !f.fix.is_empty() {
                let _ = writeln!(o, "    fix: {}", f.fix);
            }
        }
    }
    let info: Vec<&Finding> = r.findings.iter().filter(|f| f.severity == Severity::Info).collect();
    if !info.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Probes from here:");
        for f in info {
            let _ = writeln!(o, "- {}", f.evidence);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "ringgate_backend_response_seconds_bucket{rule=\"r\",pool=\"p\",le=\"0.1\"} 5\n\
ringgate_backend_response_seconds_bucket{rule=\"r\",pool=\"p\",le=\"0.25\"} 8\n\
ringgate_backend_response_seconds_bucket{rule=\"r\",pool=\"p\",le=\"+Inf\"} 10\n\
ringgate_requests_total{listener=\"l\",rule=\"r\",pool=\"p\",class=\"5xx\",code=\"TIMEOUT\"} 2\n";

    #[test]
    fn slow_share_reads_the_histogram() {
        assert_eq!(slow_share(METRICS, "r", Duration::from_millis(250)), Some((2, 10)));
        assert_eq!(slow_share(METRICS, "r", Duration::from_millis(100)), Some((5, 10)));
        assert_eq!(slow_share(METRICS, "other", Duration::from_millis(100)), None);
    }

    #[test]
    fn timeouts_are_counted_per_rule() {
        assert_eq!(count_code(METRICS, "r", "TIMEOUT"), 2);
        assert_eq!(count_code(METRICS, "r", "POOL_EMPTY"), 0);
    }

    #[test]
    fn failure_texts_name_the_address() {
        let p = ringgate_config::Probe::default_probe();
        assert_eq!(
            fail_text(&ProbeFailure::ConnectionRefused, "10.0.0.10:80", &p),
            "connection refused on 10.0.0.10:80"
        );
        assert_eq!(fail_text(&ProbeFailure::StatusMismatch(404), "h:80", &p), "status 404 from h:80/");
    }
}
