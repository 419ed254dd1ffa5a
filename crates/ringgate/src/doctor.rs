//! `ringgate doctor`: walks the troubleshooting reference's list of 502 causes
//! against the configuration, the live network and (when the gateway runs)
//! its health table and metrics, and says which cause applies, with the
//! evidence and the fix.
//!
//! The causes, in the reference's order: (1) an empty backend pool, (2)
//! unhealthy instances, (3) the default probe cannot reach the servers, (4) a
//! misconfigured custom probe, (5) the backend is slower than the request
//! time-out.
//!
//! A failing server gets exactly one finding per cause, with its own
//! address and failure: servers failing the same way are never merged, and
//! one failure is never told twice under two causes. Which cause explains a
//! failure: a name that does not resolve is cause 1 (the pool is empty in
//! effect); any failure of the default probe is cause 3; a custom probe the
//! server answers, but wrongly (status, body, TLS, time-out), is cause 4;
//! one it does not answer at all (refused, connect time-out, closed) is
//! cause 2. Slowness (cause 5) is told beside it.
//!
//! - [`probes`]: the doctor's own probe of every server.
//! - [`gateway`]: what the running gateway's admin API says.

mod gateway;
mod probes;

use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use ringgate_config::{BackendHttpSettings, Config, ConfigErrors, Probe, Protocol, load_file};
use ringgate_health::ProbeFailure;
use serde::Serialize;

use crate::health_view::ServerView;
use gateway::Live;
use probes::{Checks, ServerCheck};

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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub cause: Cause,
    pub severity: Severity,
    /// The rule (or `rule/path_rule`) concerned; several, comma-separated,
    /// when they share the pool and settings.
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

/// One probe the doctor made from here, whatever its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeLine {
    pub pool: String,
    pub settings: String,
    pub server: String,
    pub ok: bool,
    /// `GET <url> (Host: <host>) answered 200 in 3 ms`, or the failure.
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config: String,
    /// What was learnt of the running gateway.
    pub gateway: String,
    pub verdicts: Vec<Verdict>,
    /// What is wrong or at risk; nothing for a healthy server.
    pub findings: Vec<Finding>,
    /// Every server probed from here, healthy ones included.
    pub probes: Vec<ProbeLine>,
    pub exit_code: u8,
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
        probes: Vec::new(),
        exit_code: 1,
    }
}

fn diagnose(cfg: &Config, admin: Option<String>) -> Report {
    let admin = admin.or_else(|| cfg.gateway.admin_listen.map(|a| a.to_string()));
    let live = admin.as_deref().map(gateway::fetch);
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
    let checks = probes::probe_all(cfg);
    assess(cfg, gateway, live.as_ref(), &checks)
}

/// Listener certificates that expire within 30 days (a warning) or have
/// expired (an error: clients refuse the handshake).
fn certificate_findings(cfg: &Config, now: std::time::SystemTime) -> Vec<Finding> {
    const SOON: Duration = Duration::from_secs(30 * 86_400);
    let mut out = Vec::new();
    for l in &cfg.listeners {
        let Some((tls, at)) = l.tls.as_ref().and_then(|t| Some((t, t.not_after?))) else { continue };
        let when = humantime::format_rfc3339_seconds(at);
        let (severity, evidence) = match at.duration_since(now) {
            Err(_) => (Severity::Error, format!("the certificate {} expired on {when}", tls.certificate.display())),
            Ok(left) if left < SOON => (
                Severity::Warning,
                format!(
                    "the certificate {} expires in {} days ({when})",
                    tls.certificate.display(),
                    left.as_secs() / 86_400
                ),
            ),
            Ok(_) => continue,
        };
        out.push(Finding {
            cause: Cause::Configuration,
            severity,
            rule: None,
            pool: None,
            settings: None,
            server: Some(format!("listener \"{}\"", l.name)),
            evidence,
            fix: format!(
                "renew it and replace `certificate`/`private_key` of [[listener]] \"{}\", then reload (SIGHUP or POST /reload): connections keep going",
                l.name
            ),
        });
    }
    out
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(1) { format!("{:.2} s", d.as_secs_f64()) } else { format!("{} ms", d.as_millis()) }
}

fn plural(n: impl Into<u64>) -> &'static str {
    if n.into() == 1 { "" } else { "s" }
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
        ProbeFailure::CertificateName { expected, presented } if presented.is_empty() => {
            format!("the certificate of {addr} holds no name, not {expected:?}")
        }
        ProbeFailure::CertificateName { expected, presented } => {
            format!("the certificate of {addr} is for {}, not {expected:?}", quoted(presented))
        }
        ProbeFailure::TlsAnswer => format!("{addr} answered the plain HTTP request with a TLS record: it speaks TLS"),
        ProbeFailure::NotTls => {
            format!("{addr} answered the TLS handshake with something that is not TLS: it does not speak TLS there")
        }
        other => format!("{other} on {addr}"),
    }
}

/// `"a", "b"`.
fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}

/// When the server speaks the other protocol than the probe: what shows it
/// (appended to the evidence) and the fix (replacing the usual one).
fn protocol_hint(pair: &Pair<'_>, c: &ServerCheck, f: &ProbeFailure) -> Option<(String, String)> {
    let spoke_wrong = matches!(f, ProbeFailure::TlsAnswer | ProbeFailure::NotTls);
    if !(c.speaks_other == Some(true) || spoke_wrong && c.speaks_other != Some(false)) {
        return None;
    }
    let port = c.addr.map_or(pair.settings.port, |a| a.port());
    // What the probe's own failure does not already say.
    let (is, other, shown) = match (pair.probe.protocol, spoke_wrong, c.speaks_other == Some(true)) {
        (Protocol::Http, true, true) => ("a TLS server", Protocol::Https, "it answers a TLS ClientHello in TLS"),
        (Protocol::Http, true, false) => ("a TLS server", Protocol::Https, ""),
        (Protocol::Http, false, _) => (
            "a TLS server",
            Protocol::Https,
            "it does not answer the plain HTTP request, but answers a TLS ClientHello in TLS",
        ),
        (Protocol::Https, true, true) => ("a plain HTTP server", Protocol::Http, "it answers GET / in plain HTTP"),
        (Protocol::Https, true, false) => ("a plain HTTP server", Protocol::Http, ""),
        (Protocol::Https, false, _) => {
            ("a plain HTTP server", Protocol::Http, "the TLS handshake fails, but it answers GET / in plain HTTP")
        }
    };
    let evidence = if shown.is_empty() {
        format!("; {} looks like {is}", c.server)
    } else {
        format!("; {} looks like {is}: {shown}", c.server)
    };
    let mut fix = format!("set protocol = \"{other}\" in [[backend_http_settings]] \"{}\"", pair.settings.name);
    if pair.custom {
        let _ = write!(fix, " and in [[probe]] \"{}\"", pair.probe.name);
    }
    let _ = match other {
        Protocol::Https => write!(
            fix,
            " (with `trusted_root_certificates` for the CA of the server's certificate), since the server speaks TLS on port {port}; or serve plain HTTP there"
        ),
        Protocol::Http => {
            write!(fix, ", since the server speaks plain HTTP on port {port}; or enable TLS on the server")
        }
    };
    Some((evidence, fix))
}

/// Does the server answer, only not as the probe wants (rather than not
/// at all)? Such a failure of a custom probe is the reference's cause 4.
fn answers_wrongly(f: &ProbeFailure) -> bool {
    matches!(
        f,
        ProbeFailure::StatusMismatch(_)
            | ProbeFailure::BodyMismatch(_)
            | ProbeFailure::TlsHandshake(_)
            | ProbeFailure::CertificateName { .. }
            | ProbeFailure::TlsAnswer
            | ProbeFailure::NotTls
            | ProbeFailure::ProbeTimeout
            | ProbeFailure::InvalidResponse(_)
    )
}

/// Is this a failure the probe's own request settings (path, host, status
/// codes, body, time-out) may explain?
fn about_the_request(f: &ProbeFailure) -> bool {
    matches!(
        f,
        ProbeFailure::StatusMismatch(_)
            | ProbeFailure::BodyMismatch(_)
            | ProbeFailure::ProbeTimeout
            | ProbeFailure::InvalidResponse(_)
    )
}

/// [`answers_wrongly`] for the failure kind `/backend-health` reports.
fn kind_answers_wrongly(kind: &str) -> bool {
    matches!(kind, "status_mismatch" | "body_mismatch" | "tls_handshake_failed" | "probe_timeout" | "invalid_response")
}

/// One (backend pool, backend HTTP settings) pair, as its servers are probed.
struct Pair<'a> {
    settings: &'a BackendHttpSettings,
    probe: Probe,
    custom: bool,
    probe_host: String,
}

/// How one server fails.
enum Failure<'a> {
    /// Its name does not resolve.
    Unresolved(&'a str),
    /// The probe from here fails.
    Probe(&'a ProbeFailure),
    /// Only the gateway's own probes fail (the one from here succeeds).
    Gateway(&'a ServerView),
}

/// A failing server, judged: the one cause that explains its failure, with
/// its own evidence and fix.
struct ServerFailure {
    cause: Cause,
    /// The failure in a few words, for the verdict.
    why: String,
    evidence: String,
    fix: String,
    /// Whether the server answers, only wrongly (see [`answers_wrongly`]).
    answers_wrongly: bool,
}

/// Judges one server from the probe from here (`c`) and the gateway's view
/// (`live`); `None` when it is healthy.
fn server_failure(pair: &Pair<'_>, c: &ServerCheck, live: Option<&ServerView>) -> Option<ServerFailure> {
    let probe_failure = match &c.result {
        Some(Err((f, _))) => Some(f),
        _ => None,
    };
    let failure = match (&c.dns_error, probe_failure, live) {
        (Some(e), _, _) => Failure::Unresolved(e),
        (None, Some(f), _) => Failure::Probe(f),
        (None, None, Some(s)) if s.state == "Unhealthy" => Failure::Gateway(s),
        _ => return None,
    };
    let probe = &pair.probe;
    let hint = match &failure {
        Failure::Probe(f) => protocol_hint(pair, c, f),
        _ => None,
    };
    let (why, wrongly) = match &failure {
        Failure::Unresolved(e) => (format!("{} does not resolve: {e}", c.server), false),
        // A server speaking the other protocol does answer, only wrongly.
        Failure::Probe(f) => (fail_text(f, &c.server, probe), answers_wrongly(f) || hint.is_some()),
        Failure::Gateway(s) => (
            s.reason.clone().unwrap_or_else(|| "unhealthy".into()),
            s.reason_kind.as_deref().is_some_and(kind_answers_wrongly),
        ),
    };
    let cause = match (&failure, pair.custom, wrongly) {
        (Failure::Unresolved(_), ..) => Cause::EmptyPool,
        (_, false, _) => Cause::DefaultProbe,
        (_, true, true) => Cause::CustomProbe,
        (_, true, false) => Cause::UnhealthyInstances,
    };

    let mut evidence = String::new();
    if let Some(s) = live {
        let _ = write!(
            evidence,
            "gateway: {} since {} ({} consecutive failed probe{}; last: {}); ",
            s.state,
            s.since.as_deref().unwrap_or("start"),
            s.consecutive_failures,
            plural(s.consecutive_failures),
            s.reason.as_deref().unwrap_or("-")
        );
    }
    let request = format!("GET {} (Host: {})", c.url, pair.probe_host);
    match &failure {
        Failure::Unresolved(_) => evidence.push_str(&why),
        Failure::Probe(ProbeFailure::StatusMismatch(404)) => {
            let _ = write!(
                evidence,
                "probe from here: {request}: {why}: healthy at the TCP level but the application is not deployed"
            );
        }
        Failure::Probe(_) => {
            let _ = write!(evidence, "probe from here: {request}: {why}");
        }
        Failure::Gateway(_) => {
            let answered = match &c.result {
                Some(Ok((status, latency))) => format!(" answered {status} in {}", ms(*latency)),
                _ => String::new(),
            };
            let _ = write!(evidence, "probe from here: {request}{answered}, but the gateway's own probes fail");
        }
    }

    let mut fix = match &failure {
        Failure::Unresolved(_) => "fix the host name or its DNS record (the gateway resolves it again every dns_refresh), or use an IP address; until then the server is unhealthy".to_string(),
        Failure::Gateway(_) => format!(
            "the gateway's probes fail ({why}) while the one from here succeeds: check the network path from the gateway's host to the server, and watch `ringgate health`"
        ),
        Failure::Probe(f) => probe_fix(pair, c, f),
    };
    if let Some((shows, protocol_fix)) = hint {
        evidence.push_str(&shows);
        fix = protocol_fix;
    } else if pair.custom && matches!(failure, Failure::Probe(f) if about_the_request(f)) {
        let _ = write!(
            fix,
            "; check [[probe]] \"{}\": path {:?}, host {:?}, accepted status {}, body {:?}; the server must answer that URL within {}",
            probe.name,
            probe.path,
            pair.probe_host,
            probe.status_codes.iter().map(|r| format!("{}-{}", r.start(), r.end())).collect::<Vec<_>>().join(","),
            probe.body.as_deref().unwrap_or("(any)"),
            ms(probe.timeout)
        );
    }
    Some(ServerFailure { cause, why, evidence, fix, answers_wrongly: wrongly })
}

/// What to do about a probe failure `f` of server `c`.
fn probe_fix(pair: &Pair<'_>, c: &ServerCheck, f: &ProbeFailure) -> String {
    let (probe, settings) = (&pair.probe, &pair.settings.name);
    // The port probed: the probe's own `port`, else the server's.
    let port = probe.port.unwrap_or_else(|| c.addr.map_or(pair.settings.port, |a| a.port()));
    match f {
        ProbeFailure::ConnectionRefused if !pair.custom && port != 80 => format!(
            "nothing listens on port {port} of the server; the settings port is {port} (not 80): make the default site listen on port {port} at the server, or correct `port` in [[backend_http_settings]] \"{settings}\""
        ),
        ProbeFailure::ConnectionRefused if !pair.custom => {
            "nothing listens on port 80 of the server: start the default site there, listening for 127.0.0.1 as Host"
                .into()
        }
        ProbeFailure::ConnectionRefused => format!(
            "nothing listens on port {port} of the server: start the application, or correct the address or `port` in [[backend_http_settings]] \"{settings}\""
        ),
        ProbeFailure::ConnectTimeout => format!(
            "connections to port {port} time out (refused would mean nothing listens; a time-out means packets are dropped): open the port in the firewall rules and network security groups between the gateway and the server, or start the host"
        ),
        ProbeFailure::ProbeTimeout => format!(
            "the server accepts connections but does not answer {} within the probe time-out of {}",
            probe.path,
            ms(probe.timeout)
        ),
        ProbeFailure::StatusMismatch(404) => format!(
            "the server accepts connections but does not serve {}: the application is not deployed there (or the probe path is wrong)",
            probe.path
        ),
        ProbeFailure::StatusMismatch(code) if !pair.custom => format!(
            "the default site at {}://127.0.0.1:{port}/ must answer 200 (2xx or 3xx counts as healthy), not {code}",
            probe.protocol
        ),
        ProbeFailure::StatusMismatch(code) => format!(
            "the server answers {code} on {}: make it answer 2xx/3xx there, or adjust the probe's `match.status_codes`",
            probe.path
        ),
        ProbeFailure::BodyMismatch(_) => format!(
            "the server's answer on {} lacks {:?}: fix the application, or the probe's `match.body`",
            probe.path,
            probe.body.as_deref().unwrap_or("")
        ),
        ProbeFailure::TlsHandshake(detail) => format!(
            "{detail}: set `trusted_root_certificates` in [[backend_http_settings]] \"{settings}\" to the CA that issued the server's certificate, or fix the certificate"
        ),
        ProbeFailure::CertificateName { expected, presented } => {
            let holds = match presented.first() {
                Some(n) => format!("set host_name to a name the certificate holds (such as {n:?})"),
                None => "set host_name to the name the server's certificate should hold".into(),
            };
            match &pair.settings.host_name {
                Some(h) => format!(
                    "the gateway verifies the certificate for {h:?}, the `host_name` of [[backend_http_settings]] \"{settings}\": {holds}, or give the server a certificate for {h:?} (signed by a CA in `trusted_root_certificates`)"
                ),
                None => format!(
                    "the gateway verifies the certificate for the server's address {expected:?}, as [[backend_http_settings]] \"{settings}\" has no `host_name`: {holds} there, or give the server a certificate for {expected:?} (signed by a CA in `trusted_root_certificates`)"
                ),
            }
        }
        ProbeFailure::DnsFailure(_) => "fix the host name or its DNS record".into(),
        _ => "make the server answer its probe (see the evidence)".into(),
    }
}

/// Merges findings that several targets share (path rules on the same pool
/// and settings): one finding, naming every rule.
fn merge_duplicates(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        let same = |g: &Finding| {
            (g.cause, g.severity, &g.pool, &g.settings, &g.server, &g.evidence, &g.fix)
                == (f.cause, f.severity, &f.pool, &f.settings, &f.server, &f.evidence, &f.fix)
        };
        match out.iter_mut().find(|g| same(g)) {
            Some(g) => {
                if let (Some(a), Some(b)) = (&mut g.rule, &f.rule)
                    && !a.split(", ").any(|r| r == b)
                {
                    a.push_str(", ");
                    a.push_str(b);
                }
            }
            None => out.push(f),
        }
    }
    out
}

/// Judges what was learnt: the configuration, the gateway's view (`live`)
/// and the probes from here (`checks`). No I/O.
fn assess(cfg: &Config, gateway: String, live: Option<&Live>, checks: &Checks) -> Report {
    let mut findings = Vec::new();
    let mut verdicts = Vec::new();
    let mut probe_lines: Vec<ProbeLine> = Vec::new();

    // One verdict per target: a basic rule, or each path rule of a
    // path-based rule, since each has its own pool.
    for target in &cfg.targets {
        let rule = &cfg.rules[target.rule.0];
        let pool = &cfg.pools[target.pool.0];
        let sid = target.settings;
        let settings = &cfg.settings[sid.0];
        let pair = Pair {
            settings,
            probe: cfg.probe_for(sid),
            custom: settings.probe.is_some(),
            probe_host: cfg.probe_host(sid),
        };
        let probe = &pair.probe;
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
        let server_checks: &[ServerCheck] = checks.get(&(target.pool.0, sid)).map_or(&[], Vec::as_slice);

        for c in server_checks {
            let text = match (&c.dns_error, &c.result) {
                (Some(e), _) => format!("{} does not resolve: {e}", c.server),
                (None, Some(Ok((s, l)))) => {
                    format!("GET {} (Host: {}) answered {s} in {}", c.url, pair.probe_host, ms(*l))
                }
                (None, Some(Err((f, _)))) => {
                    format!("GET {} (Host: {}): {}", c.url, pair.probe_host, fail_text(f, &c.server, probe))
                }
                (None, None) => continue,
            };
            let line = ProbeLine {
                pool: pool.name.clone(),
                settings: settings.name.clone(),
                server: c.server.clone(),
                ok: matches!(c.result, Some(Ok(_))),
                text,
            };
            if !probe_lines.contains(&line) {
                probe_lines.push(line);
            }
        }

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

        // 1 to 4: each failing server, once, under the cause that explains
        // its failure; the gateway's live table when it runs, and the probes
        // made from here.
        let failing: Vec<(&ServerCheck, ServerFailure)> = server_checks
            .iter()
            .filter_map(|c| {
                let view = live.and_then(|l| l.server(&pool.name, &settings.name, &c.server));
                server_failure(&pair, c, view).map(|f| (c, f))
            })
            .collect();
        // Failing servers `min_servers` keeps in rotation still serve: the
        // pool is not all down, though their requests may fail.
        let kept = failing
            .iter()
            .filter(|(c, _)| {
                live.and_then(|l| l.server(&pool.name, &settings.name, &c.server))
                    .is_some_and(|v| v.kept_by_min_servers)
            })
            .count();
        let all_down = !pool.servers.is_empty() && failing.len() == pool.servers.len() && kept == 0;
        let severity = if all_down { Severity::Error } else { Severity::Warning };
        for (c, f) in &failing {
            findings.push(finding(f.cause, severity, Some(&c.server), f.evidence.clone(), f.fix.clone()));
        }
        let whys = failing.iter().map(|(_, f)| f.why.as_str()).collect::<Vec<_>>().join("; ");
        if verdict.is_none() && all_down && failing.iter().all(|(_, f)| f.cause == Cause::EmptyPool) {
            verdict = Some((
                "POOL_EMPTY".into(),
                Cause::EmptyPool,
                format!(
                    "{}: POOL_EMPTY (in effect; requests get 502 ALL_UNHEALTHY): no address resolves: {whys}",
                    pool.name
                ),
            ));
        }
        if verdict.is_none() && all_down {
            let which =
                if pair.custom { format!("custom probe \"{}\"", probe.name) } else { "the default probe".into() };
            // The default probe's failures are the reference's cause 3; a
            // custom probe the servers answer wrongly is cause 4; servers that
            // do not answer at all are cause 2.
            let cause = match (pair.custom, failing.iter().all(|(_, f)| f.answers_wrongly)) {
                (false, _) => Cause::DefaultProbe,
                (true, true) => Cause::CustomProbe,
                (true, false) => Cause::UnhealthyInstances,
            };
            verdict = Some((
                "ALL_UNHEALTHY".into(),
                cause,
                format!(
                    "{}: ALL_UNHEALTHY: {} of {} servers fail {which}: {whys}",
                    pool.name,
                    failing.len(),
                    pool.servers.len()
                ),
            ));
        }

        // 4. Custom probe settings that risk failures.
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
        }

        // 5. Request time-out.
        let limit = settings.request_timeout;
        let setting_line =
            format!("request_timeout in [[backend_http_settings]] \"{}\" (now {})", settings.name, ms(limit));
        let mut slow: Vec<String> = Vec::new();
        for c in server_checks {
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
        if let Some(t) = live.and_then(|l| gateway::timeouts(l, &listener.name, &rule.name, &pool.name, limit))
            && (t.slow > 0 || t.timeouts > 0)
        {
            findings.push(finding(
                Cause::RequestTimeout,
                if t.timeouts > 0 { Severity::Error } else { Severity::Warning },
                None,
                format!(
                    "{}, the gateway has seen {} request{} answered 502 TIMEOUT, and {} of {} backend responses slower than 80% of {}",
                    t.span,
                    t.timeouts,
                    plural(t.timeouts),
                    t.slow,
                    t.responses,
                    ms(limit)
                ),
                format!("raise {setting_line}, or make the servers faster"),
            ));
            if t.timeouts > 0 && verdict.is_none() && slow.is_empty() {
                slow.push(format!("{} request{} timed out at the gateway {}", t.timeouts, plural(t.timeouts), t.span));
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
                let up = pool.servers.len() - failing.len();
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

    findings.extend(certificate_findings(cfg, std::time::SystemTime::now()));
    let exit_code = u8::from(verdicts.iter().any(|v| v.code.is_some()));
    Report {
        config: cfg.source.display().to_string(),
        gateway,
        verdicts,
        findings: merge_duplicates(findings),
        probes: probe_lines,
        exit_code,
    }
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
    let mut shown: Vec<&Finding> = r.findings.iter().collect();
    shown.sort_by_key(|f| (f.severity, f.cause as u8));
    if !shown.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Findings (cause, evidence, fix):");
        for f in shown {
            let sev = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
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
    if !r.probes.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Probes from here:");
        for p in &r.probes {
            let _ = writeln!(o, "- {}", p.text);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringgate_config::SettingsId;

    /// One rule on pool `pool01` of `servers`, custom probe `p1` when
    /// `custom`, and a second, path rule on the same pool and settings.
    fn config(servers: &[&str], custom: bool) -> Config {
        let addrs: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
        let probe = if custom { "probe = \"p1\"\n\n[[probe]]\nname = \"p1\"\npath = \"/health\"\n" } else { "" };
        let text = format!(
            r#"[gateway]
admin_listen = "off"

[[listener]]
name = "public"
listen = "127.0.0.1:8080"

[[backend_pool]]
name = "pool01"
addresses = [{}]

[[url_path_map]]
name = "site"
default_backend_pool = "pool01"
default_backend_http_settings = "setting01"

[[url_path_map.path_rule]]
name = "api"
paths = ["/api/*"]
backend_pool = "pool01"
backend_http_settings = "setting01"

[[rule]]
name = "rule01"
listener = "public"
url_path_map = "site"

[[backend_http_settings]]
name = "setting01"
port = 80
{probe}"#,
            addrs.join(", ")
        );
        ringgate_config::load_str(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn check(server: &str, result: Option<ringgate_health::ProbeResult>, dns_error: Option<&str>) -> ServerCheck {
        ServerCheck {
            server: server.into(),
            addr: server.parse().ok(),
            dns_error: dns_error.map(str::to_string),
            url: format!("http://{server}/health"),
            result,
            speaks_other: None,
        }
    }

    fn checks(list: Vec<ServerCheck>) -> Checks {
        let mut c = Checks::new();
        c.insert((0, SettingsId(0)), list);
        c
    }

    /// The findings about `server`, as (cause, severity).
    fn about<'a>(r: &'a Report, server: &str) -> Vec<&'a Finding> {
        r.findings.iter().filter(|f| f.server.as_deref() == Some(server)).collect()
    }

    #[test]
    fn each_failing_server_gets_one_finding_with_its_own_failure() {
        let cfg = config(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"], true);
        let ms = Duration::from_millis(2);
        let r = assess(
            &cfg,
            "off".into(),
            None,
            &checks(vec![
                check("10.0.0.1:80", Some(Err((ProbeFailure::ConnectionRefused, None))), None),
                check("10.0.0.2:80", Some(Err((ProbeFailure::StatusMismatch(503), Some(ms)))), None),
                check("10.0.0.3:80", Some(Ok((200, ms))), None),
            ]),
        );
        // Two targets share the pool and settings: still one finding each.
        assert_eq!(r.findings.len(), 2, "{:#?}", r.findings);
        let a = about(&r, "10.0.0.1:80");
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!((a[0].cause, a[0].severity), (Cause::UnhealthyInstances, Severity::Warning));
        assert!(a[0].evidence.contains("connection refused on 10.0.0.1:80"), "{a:#?}");
        assert_eq!(a[0].rule.as_deref(), Some("rule01, rule01/api"));
        let b = about(&r, "10.0.0.2:80");
        assert_eq!(b.len(), 1, "{b:#?}");
        assert_eq!(b[0].cause, Cause::CustomProbe);
        assert!(b[0].evidence.contains("status 503 from 10.0.0.2:80/health"), "{b:#?}");
        assert!(!b[0].evidence.contains("10.0.0.1"), "another server's evidence: {b:#?}");
        assert!(about(&r, "10.0.0.3:80").is_empty());
        // Every server is listed among the probes from here, once.
        assert_eq!(r.probes.len(), 3, "{:#?}", r.probes);
        assert_eq!(r.exit_code, 0, "one server still answers");
    }

    #[test]
    fn servers_that_do_not_resolve_are_told_apart() {
        let cfg = config(&["a.invalid", "b.invalid"], false);
        let r = assess(
            &cfg,
            "off".into(),
            None,
            &checks(vec![
                check("a.invalid:80", None, Some("a.invalid: no such host")),
                check("b.invalid:80", None, Some("b.invalid: no such host")),
            ]),
        );
        assert_eq!(r.findings.len(), 2, "{:#?}", r.findings);
        for s in ["a.invalid", "b.invalid"] {
            let f = about(&r, &format!("{s}:80"));
            assert_eq!(f.len(), 1, "{f:#?}");
            assert_eq!((f[0].cause, f[0].severity), (Cause::EmptyPool, Severity::Error));
            assert!(f[0].evidence.contains(&format!("{s}: no such host")), "{f:#?}");
        }
        assert!(r.verdicts.iter().all(|v| v.code.as_deref() == Some("POOL_EMPTY")), "{:#?}", r.verdicts);
    }

    #[test]
    fn a_default_probe_failure_is_cause_3_only() {
        let cfg = config(&["10.0.0.1:8080"], false);
        let r = assess(
            &cfg,
            "off".into(),
            None,
            &checks(vec![check("10.0.0.1:8080", Some(Err((ProbeFailure::ConnectionRefused, None))), None)]),
        );
        let f = about(&r, "10.0.0.1:8080");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].cause, f[0].severity), (Cause::DefaultProbe, Severity::Error));
        assert!(f[0].fix.contains("nothing listens on port 8080"), "{f:#?}");
        assert_eq!(r.verdicts[0].cause, Some(Cause::DefaultProbe));
    }

    #[test]
    fn a_tls_server_probed_in_plain_http_gets_the_protocol_fix() {
        let cfg = config(&["10.0.0.1:80", "10.0.0.2:80"], true);
        let mut tls = check("10.0.0.1:80", Some(Err((ProbeFailure::TlsAnswer, None))), None);
        tls.speaks_other = Some(true);
        // Closed, and not found to speak TLS either: no hint.
        let mut closed = check("10.0.0.2:80", Some(Err((ProbeFailure::Closed, None))), None);
        closed.speaks_other = Some(false);
        let r = assess(&cfg, "off".into(), None, &checks(vec![tls, closed]));
        let f = about(&r, "10.0.0.1:80");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].cause, Cause::CustomProbe);
        assert!(f[0].evidence.contains("10.0.0.1:80 looks like a TLS server"), "{f:#?}");
        assert!(
            f[0].fix.starts_with(
                r#"set protocol = "https" in [[backend_http_settings]] "setting01" and in [[probe]] "p1""#
            ),
            "{f:#?}"
        );
        let f = about(&r, "10.0.0.2:80");
        assert!(!f[0].evidence.contains("looks like") && !f[0].fix.contains("protocol ="), "{f:#?}");
        assert_eq!(f[0].cause, Cause::UnhealthyInstances);
    }

    #[test]
    fn a_certificate_for_other_names_gets_the_host_name_fix() {
        let cfg = config(&["10.0.0.1:443"], false);
        let failure = ProbeFailure::CertificateName {
            expected: "10.0.0.1".into(),
            presented: vec!["other.example".into(), "10.0.0.9".into()],
        };
        let r =
            assess(&cfg, "off".into(), None, &checks(vec![check("10.0.0.1:443", Some(Err((failure, None))), None)]));
        let f = about(&r, "10.0.0.1:443");
        assert!(
            f[0].evidence
                .contains(r#"the certificate of 10.0.0.1:443 is for "other.example", "10.0.0.9", not "10.0.0.1""#),
            "{f:#?}"
        );
        assert!(
            f[0].fix.contains(
                r#"has no `host_name`: set host_name to a name the certificate holds (such as "other.example")"#
            ),
            "{f:#?}"
        );
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
