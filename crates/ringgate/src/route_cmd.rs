//! `ringgate route`: where would this request go? Loads a configuration,
//! builds the very [`Plan`] the data plane serves from, and walks one
//! request through it without starting anything: the address and listener
//! (and why that listener: an exact host name, a wildcard, a pattern, the
//! basic listener, a priority), the rule, for a path-based rule the
//! normalized path and the path rule that took it, then the redirect and
//! its exact Location, or the target: pool, settings, servers, the path and
//! Host the server would receive and what the rewrite rule set would do.
//!
//! Every decision is the data plane's own code (`HostRoutes::route`,
//! `routing_path`, `PathMapPlan::route`, `RedirectPlan::location`,
//! `PathRoute::override_target`, `RuleSet::request_edits`); this module
//! only explains its answer. Exit status: 0 forwarded or redirected, 1
//! nothing answers (no listener, 404, 400, 502), 2 a configuration or
//! command-line error.

mod rewrite;
mod url;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ringgate_config::{
    Config, HostPattern, ListenerId, Protocol, RedirectTarget, RuleKind, SocketGroup, TargetId, load_file,
};
use ringgate_health::{HealthState, HealthTable};
use ringgate_http::path::split_query;
use ringgate_proxy::{MetricsRegistry, PathRoute, Plan, RouteAction, RulePlan, routing_path};
use serde::Serialize;

use self::rewrite::{RequestVars, RewriteView};
use self::url::RequestUrl;

/// The command line of `ringgate route`.
#[derive(Debug)]
pub struct Args {
    pub config: PathBuf,
    pub host: Option<String>,
    pub listener: Option<String>,
    pub port: Option<u16>,
    pub method: String,
    pub headers: Vec<String>,
    pub client: SocketAddr,
    pub json: bool,
    pub url: String,
}

pub fn run(args: &Args) -> ExitCode {
    let cfg = match load_file(&args.config) {
        Ok(c) => c,
        Err(e) => {
            // As `ringgate check` prints them.
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let req = match Request::of(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringgate route: {e}");
            return ExitCode::from(2);
        }
    };
    // The loaded configuration keeps rewrite rule sets compiled; their
    // rules are read again to say which rule made which edit.
    let specs = std::fs::read_to_string(&args.config).map(|t| rewrite::read_specs(&t)).unwrap_or_default();
    let plan = match Plan::build(Arc::new(cfg), 1, &HealthTable::new(), &MetricsRegistry::new(1)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let report = match route(&plan, &req, &specs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringgate route: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("ringgate route: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", render(&report));
    }
    match report.outcome {
        Outcome::Forward | Outcome::Redirect => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

/// The request, checked.
#[derive(Debug)]
struct Request {
    method: String,
    url: RequestUrl,
    /// The Host header sent: `--host`, else the URL's authority.
    host: Option<String>,
    headers: Vec<(String, String)>,
    client: SocketAddr,
    listener: Option<String>,
    port: Option<u16>,
}

impl Request {
    fn of(args: &Args) -> Result<Request, String> {
        let url = url::parse(&args.url)?;
        url::check_method(&args.method)?;
        let mut headers = Vec::new();
        let mut host = args.host.clone();
        for h in &args.headers {
            let (name, value) = url::parse_header(h)?;
            if name.eq_ignore_ascii_case("host") {
                host.get_or_insert(value);
            } else {
                headers.push((name, value));
            }
        }
        if let Some(h) = &host {
            url::check_host_header(h)?;
        }
        let host = host.or_else(|| url.authority.clone());
        Ok(Request {
            method: args.method.clone(),
            url,
            host,
            headers,
            client: args.client,
            listener: args.listener.clone(),
            port: args.port,
        })
    }
}

/// What the gateway does with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// Forwarded to a server.
    Forward,
    /// Answered with a redirect.
    Redirect,
    /// Nothing listens on the port: the connection is refused.
    NoListener,
    /// 404 NO_ROUTE: no listener on the address answers the host.
    NoRoute,
    /// 400: the path cannot be normalized for path rules.
    BadRequest,
    /// 502 POOL_EMPTY.
    PoolEmpty,
    /// 502 ALL_UNHEALTHY: no server of the pool resolves.
    AllUnhealthy,
}

/// Why the request's Host picked the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum MatchKind {
    Exact,
    Wildcard,
    Glob,
    Basic,
    Priority,
}

#[derive(Debug, Serialize)]
struct Report {
    outcome: Outcome,
    /// The status the gateway answers itself (a redirect, 404, 502);
    /// `None` when a server answers.
    status: Option<u16>,
    /// The `x-ringgate-error` code of such an answer.
    code: Option<&'static str>,
    /// One line saying what happens.
    message: String,
    request: RequestView,
    address: Option<AddressView>,
    listener: Option<ListenerView>,
    rule: Option<RuleView>,
    path: Option<PathView>,
    redirect: Option<RedirectView>,
    target: Option<TargetView>,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RequestView {
    method: String,
    target: String,
    host: Option<String>,
    headers: Vec<(String, String)>,
    client: String,
}

#[derive(Debug, Serialize)]
struct AddressView {
    address: String,
    protocol: &'static str,
    /// The listeners sharing it, in file order.
    listeners: Vec<String>,
    /// How it was picked: `--listener`, `--port`, the URL's port, or the
    /// only address.
    chosen_by: String,
}

#[derive(Debug, Serialize)]
struct ListenerView {
    name: String,
    host_names: Vec<String>,
    #[serde(rename = "match")]
    kind: MatchKind,
    /// The host pattern that matched (`None`: a basic listener).
    pattern: Option<String>,
    priority: Option<u32>,
    reason: String,
}

#[derive(Debug, Serialize)]
struct RuleView {
    name: String,
    /// `basic` or `path_based`.
    kind: &'static str,
    url_path_map: Option<String>,
}

#[derive(Debug, Serialize)]
struct PathView {
    /// The path as sent, without the query.
    requested: String,
    /// What path rules were matched against.
    normalized: String,
    /// `None`: no path rule matched; the map's default took it.
    path_rule: Option<String>,
    /// The pattern of that path rule that matched.
    pattern: Option<String>,
}

#[derive(Debug, Serialize)]
struct RedirectView {
    name: String,
    status: u16,
    reason: &'static str,
    location: String,
}

#[derive(Debug, Serialize)]
struct TargetView {
    /// `rule` or `rule/path_rule`.
    name: String,
    pool: String,
    settings: String,
    protocol: &'static str,
    port: u16,
    request_timeout: String,
    /// The affinity cookie's name, when cookie-based affinity is on.
    affinity_cookie: Option<String>,
    /// `connection_draining`'s time-out.
    connection_draining: Option<String>,
    servers: Vec<ServerView>,
    /// The path and query the server receives.
    backend_target: String,
    /// How `backend_target` was made from the request's.
    backend_target_how: String,
    /// The Host header sent, when it is the same for every server.
    host_header: Option<String>,
    host_header_from: String,
    rewrite: Option<RewriteView>,
}

#[derive(Debug, Serialize)]
struct ServerView {
    address: String,
    host_header: String,
    /// The resolver's error for a host name that does not resolve.
    dns_error: Option<String>,
}

/// Walks the request through the plan.
fn route(plan: &Plan, req: &Request, specs: &[ringgate_rewrite::RuleSetSpec]) -> Result<Report, String> {
    let cfg = &plan.config;
    let mut report = Report {
        outcome: Outcome::Forward,
        status: None,
        code: None,
        message: String::new(),
        request: RequestView {
            method: req.method.clone(),
            target: req.url.target.clone(),
            host: req.host.clone(),
            headers: req.headers.clone(),
            client: req.client.to_string(),
        },
        address: None,
        listener: None,
        rule: None,
        path: None,
        redirect: None,
        target: None,
        notes: Vec::new(),
    };
    if req.url.fragment_dropped {
        report.notes.push("the URL's #fragment is never sent by a client: left out".into());
    }
    let groups = cfg.socket_groups();
    let (gi, chosen_by) = match choose_address(cfg, &groups, req)? {
        Ok(x) => x,
        Err(refused) => {
            report.outcome = Outcome::NoListener;
            report.message = refused;
            return Ok(report);
        }
    };
    let group = &groups[gi];
    let Some(socket) = plan.socket(&group.key) else {
        return Err(format!("no socket in the plan for {}", group.key));
    };
    let addr_text = group.key.to_string();
    report.address = Some(AddressView {
        address: addr_text.clone(),
        protocol: group.protocol.as_str(),
        listeners: group.listeners.iter().map(|l| cfg.listeners[l.0].name.clone()).collect(),
        chosen_by,
    });
    if let Some(s) = req.url.scheme
        && s != group.protocol
    {
        report.notes.push(format!("the URL says {s}, but {addr_text} serves {}", group.protocol));
    }
    let host = req.host.as_deref();
    let Some(ri) = socket.routes.route(host.map(str::as_bytes)) else {
        report.outcome = Outcome::NoRoute;
        report.status = Some(404);
        report.code = Some("NO_ROUTE");
        let there: Vec<String> = group
            .listeners
            .iter()
            .map(|l| {
                let l = &cfg.listeners[l.0];
                format!("{} ({})", l.name, hosts_text(&l.host_names))
            })
            .collect();
        report.message = format!(
            "404 NO_ROUTE: no listener on {addr_text} answers host \"{}\" (listeners there: {})",
            host.unwrap_or_default(),
            there.join(", ")
        );
        return Ok(report);
    };
    let rule = &cfg.rules[ri];
    let listener = explain_listener(cfg, group, ri, host);
    if let Some(named) = &req.listener
        && *named != listener.name
    {
        report
            .notes
            .push(format!("--listener {named} shares {addr_text} with {}, which the Host picked", listener.name));
    }
    report.listener = Some(listener);
    let original = req.url.target.as_str();
    // As the data plane: a basic rule forwards the target as sent; a
    // path-based rule routes, and forwards, the normalized path.
    let mut scratch = Vec::new();
    let (action, matched_len, routed) = match &plan.rules[ri] {
        RulePlan::Basic(a) => {
            report.rule = Some(RuleView { name: rule.name.clone(), kind: "basic", url_path_map: None });
            (*a, 0, original.to_string())
        }
        RulePlan::PathBased(map) => {
            report.rule = Some(RuleView {
                name: rule.name.clone(),
                kind: "path_based",
                url_path_map: Some(map.name.to_string()),
            });
            let (path, changed) = match routing_path(original.as_bytes(), &mut scratch) {
                Ok((p, c)) => (p.to_vec(), c),
                Err(e) => {
                    report.outcome = Outcome::BadRequest;
                    report.status = Some(400);
                    report.code = Some("BAD_REQUEST");
                    report.message = format!("400 BAD_REQUEST: {}", e.reason());
                    return Ok(report);
                }
            };
            let r = map.route(&path);
            let normalized = String::from_utf8_lossy(&path).into_owned();
            let pattern = r.path_rule.and_then(|pr| matched_pattern(cfg, ri, pr, &path));
            report.path = Some(PathView {
                requested: String::from_utf8_lossy(split_query(original.as_bytes()).0).into_owned(),
                normalized: normalized.clone(),
                path_rule: r.path_rule.map(|pr| map.path_rules[pr].0.to_string()),
                pattern,
            });
            let routed = if changed {
                match split_query(original.as_bytes()).1 {
                    Some(q) => format!("{normalized}?{}", String::from_utf8_lossy(q)),
                    None => normalized,
                }
            } else {
                original.to_string()
            };
            (r.action, r.matched_len, routed)
        }
    };
    match action {
        RouteAction::Redirect(x) => {
            let r = &plan.redirects[x];
            let mut loc = Vec::new();
            let fallback = group.key.addr.ip().to_string();
            r.location(host.map(str::as_bytes), fallback.as_bytes(), original.as_bytes(), &mut loc);
            let location = String::from_utf8_lossy(&loc).into_owned();
            if let RedirectTarget::Listener(l) = &cfg.redirects[x].target
                && cfg.listeners[l.0].listen.port() == 0
            {
                report.notes.push(format!(
                    "listener {} listens on port 0 (any free port): the Location carries the port it gets at start",
                    cfg.listeners[l.0].name
                ));
            }
            report.outcome = Outcome::Redirect;
            report.status = Some(r.status);
            report.message = format!("redirect {} to {location}", r.status);
            report.redirect = Some(RedirectView {
                name: r.name.to_string(),
                status: r.status,
                reason: crate::routing_table::redirect_reason(r.status),
                location,
            });
        }
        RouteAction::Forward(t) => {
            let target = forward(plan, TargetId(t), req, host, &routed, original, matched_len, group, specs)?;
            let tp = &plan.targets[t];
            if target.servers.is_empty() {
                report.outcome = Outcome::PoolEmpty;
                report.status = Some(502);
                report.code = Some("POOL_EMPTY");
                report.message = format!("502 POOL_EMPTY: backend pool \"{}\" is empty; add addresses to it", tp.pool);
            } else if target.servers.iter().all(|s| s.dns_error.is_some()) {
                report.outcome = Outcome::AllUnhealthy;
                report.status = Some(502);
                report.code = Some("ALL_UNHEALTHY");
                report.message = format!(
                    "502 ALL_UNHEALTHY: no server of backend pool \"{}\" resolves, so none can be healthy",
                    tp.pool
                );
            } else {
                report.message = format!(
                    "forward to pool {} ({} server{}) through settings {}",
                    tp.pool,
                    tp.servers.len(),
                    if tp.servers.len() == 1 { "" } else { "s" },
                    tp.settings
                );
            }
            report.target = Some(target);
        }
    }
    Ok(report)
}

/// The target's side: servers, the path and Host they receive, rewrites.
#[allow(clippy::too_many_arguments)]
fn forward(
    plan: &Plan,
    t: TargetId,
    req: &Request,
    host: Option<&str>,
    routed: &str,
    original: &str,
    matched_len: usize,
    group: &SocketGroup,
    specs: &[ringgate_rewrite::RuleSetSpec],
) -> Result<TargetView, String> {
    let cfg = &plan.config;
    let tp = &plan.targets[t.0];
    let settings = &cfg.settings[cfg.targets[t.0].settings.0];
    let mut how = Vec::new();
    if routed != original {
        how.push("normalized".to_string());
    }
    let mut backend = routed.to_string();
    if let Some(over) = &tp.override_path {
        let mut out = Vec::new();
        PathRoute::override_target(routed.as_bytes(), over, matched_len, &mut out);
        backend = String::from_utf8_lossy(&out).into_owned();
        let over = String::from_utf8_lossy(over);
        let (path, _) = split_query(routed.as_bytes());
        how.push(if matched_len == 0 {
            format!("override_backend_path \"{over}\" put before the path")
        } else {
            let from = String::from_utf8_lossy(&path[..matched_len.min(path.len())]).into_owned();
            format!("override_backend_path \"{over}\" in place of \"{from}\"")
        });
    }
    let rewrite = match tp.rewrite.as_ref() {
        None => None,
        Some(set) => {
            let vars = RequestVars::new(
                &req.method,
                req.host.as_deref(),
                original,
                &backend,
                group.protocol.as_str(),
                group.key.addr.port(),
                req.client,
                &req.headers,
            )
            .map_err(|e| format!("this request cannot be written as an HTTP/1.1 head: {e}"))?;
            Some(rewrite::evaluate(set, specs.iter().find(|s| s.name == set.name()), &vars))
        }
    };
    if let Some(url) = rewrite.as_ref().and_then(|r| r.url.clone()) {
        how.push(format!("rewritten by rule set {}", rewrite.as_ref().map_or("", |r| r.name.as_str())));
        backend = url;
    }
    let rewritten_host = rewrite.as_ref().and_then(|r| {
        r.request_headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .and_then(|h| h.value.clone().map(|v| (v, r.name.clone())))
    });
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // As the data plane writes Host: a rewrite, else the server's own name
    // (pick_host_name_from_backend_address), else the settings' host_name,
    // else the client's, else the server's address.
    let (from, fixed) = match (&rewritten_host, &tp.host_override, host) {
        (Some((v, set)), ..) => (format!("set by rewrite rule set {set}"), Some(v.clone())),
        (None, ..) if tp.host_from_server => {
            ("each server's own host name: pick_host_name_from_backend_address".to_string(), None)
        }
        (None, Some(h), _) => (format!("host_name of settings {}", settings.name), Some(lossy(h))),
        (None, None, Some(h)) => ("the client's".to_string(), Some(h.to_string())),
        (None, None, None) => ("the client sent none: the server's address".to_string(), None),
    };
    let servers: Vec<ServerView> = tp
        .servers
        .iter()
        .map(|s| {
            let dns_error = match s.health.detail().dns.clone() {
                Some(Err(e)) if s.health.state() == HealthState::Unhealthy => Some(e),
                _ => None,
            };
            let host_header = match &fixed {
                Some(h) => h.clone(),
                None if tp.host_from_server => lossy(&s.host_name),
                None => s.display.to_string(),
            };
            ServerView { address: s.display.to_string(), host_header, dns_error }
        })
        .collect();
    let host_header = match servers.first() {
        Some(first) if servers.iter().all(|s| s.host_header == first.host_header) => Some(first.host_header.clone()),
        Some(_) => None,
        None => fixed,
    };
    Ok(TargetView {
        name: tp.name.to_string(),
        pool: tp.pool.to_string(),
        settings: tp.settings.to_string(),
        protocol: settings.protocol.as_str(),
        port: settings.port,
        request_timeout: fmt_duration(settings.request_timeout),
        affinity_cookie: settings.cookie_based_affinity.then(|| settings.affinity_cookie_name.clone()),
        connection_draining: settings.connection_draining.map(|d| fmt_duration(d.timeout)),
        servers,
        backend_target: backend,
        backend_target_how: if how.is_empty() { "as sent".into() } else { how.join(", then ") },
        host_header,
        host_header_from: from,
        rewrite,
    })
}

/// Picks the listening address: `--listener`, else the port (`--port` or
/// the URL's), else the only address. `Ok(Err(_))` is a refused connection
/// (nothing listens there); `Err` a question that has no single answer.
fn choose_address(
    cfg: &Config,
    groups: &[SocketGroup],
    req: &Request,
) -> Result<Result<(usize, String), String>, String> {
    let listening =
        || groups.iter().map(|g| format!("{} ({})", g.key, names(cfg, &g.listeners))).collect::<Vec<_>>().join(", ");
    if let Some(name) = &req.listener {
        let Some(l) = cfg.listeners.iter().position(|l| l.name == *name) else {
            let known: Vec<&str> = cfg.listeners.iter().map(|l| l.name.as_str()).collect();
            return Err(format!("--listener {name}: no such [[listener]] (defined: {})", known.join(", ")));
        };
        let key = cfg.listeners[l].socket_key();
        let gi = groups.iter().position(|g| g.key == key).ok_or_else(|| format!("no address for listener {name}"))?;
        return Ok(Ok((gi, format!("--listener {name}"))));
    }
    let (port, why) = match (req.port, req.url.port) {
        (Some(p), _) => (p, format!("--port {p}")),
        (None, Some(p)) if req.url.explicit_port => (p, format!("the URL's port {p}")),
        (None, Some(p)) => {
            let scheme = req.url.scheme.map_or("http", Protocol::as_str);
            (p, format!("the URL's port {p} ({scheme} default)"))
        }
        (None, None) => {
            return match groups {
                [_] => Ok(Ok((0, "the only listening address".into()))),
                _ => Err(format!(
                    "the configuration listens on {} addresses ({}): give a full URL with its port, --port N or --listener NAME",
                    groups.len(),
                    listening()
                )),
            };
        }
    };
    let on_port: Vec<usize> = (0..groups.len()).filter(|&i| groups[i].key.addr.port() == port).collect();
    match on_port.as_slice() {
        [] => Ok(Err(format!(
            "nothing listens on port {port} ({why}): the connection would be refused (listening: {})",
            listening()
        ))),
        [one] => Ok(Ok((*one, why))),
        several => {
            // The URL's IP, when it is one of them, tells them apart.
            let ip = req.url.host.as_deref().and_then(url::host_ip);
            let by_ip: Vec<usize> =
                several.iter().copied().filter(|&i| ip.is_some_and(|ip| groups[i].key.addr.ip() == ip)).collect();
            if let [one] = by_ip.as_slice() {
                return Ok(Ok((*one, format!("{why} and its address"))));
            }
            let listed: Vec<String> =
                several.iter().map(|&i| format!("{} ({})", groups[i].key, names(cfg, &groups[i].listeners))).collect();
            Err(format!(
                "port {port} ({why}) is listened on at {} addresses: {}; name one with --listener NAME",
                several.len(),
                listed.join(", ")
            ))
        }
    }
}

fn names(cfg: &Config, ls: &[ListenerId]) -> String {
    let n: Vec<&str> = ls.iter().map(|l| cfg.listeners[l.0].name.as_str()).collect();
    format!("{} {}", if n.len() == 1 { "listener" } else { "listeners" }, n.join(", "))
}

fn hosts_text(h: &[HostPattern]) -> String {
    if h.is_empty() { "any host".into() } else { h.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") }
}

/// `Host` as routing compares it: port and trailing dot gone, lower-case.
fn routing_host(host: &str) -> String {
    let h = ringgate_proxy::strip_port(host.as_bytes());
    let h = h.strip_suffix(b".").unwrap_or(h);
    String::from_utf8_lossy(h).to_ascii_lowercase()
}

/// Says why the data plane's choice, rule `ri`, was made: the pattern of
/// its listener that matched, in the order `HostRoutes` tries them.
fn explain_listener(cfg: &Config, group: &SocketGroup, ri: usize, host: Option<&str>) -> ListenerView {
    let rule = &cfg.rules[ri];
    let l = &cfg.listeners[rule.listener.0];
    let addr = &group.key;
    let h = host.map(routing_host);
    let matches = |p: &HostPattern| h.as_deref().is_some_and(|h| p.matches(h));
    let pattern = match rule.priority {
        // With priorities any of the listener's patterns will do.
        Some(_) => l.host_names.iter().find(|p| matches(p)),
        None => l
            .host_names
            .iter()
            .find(|p| matches!(p, HostPattern::Exact(_)) && matches(p))
            .or_else(|| {
                l.host_names
                    .iter()
                    .filter(|p| matches!(p, HostPattern::Wildcard(_)) && matches(p))
                    .max_by_key(|p| p.to_string().len())
            })
            .or_else(|| l.host_names.iter().find(|p| matches!(p, HostPattern::Glob(_)) && matches(p))),
    };
    let what = |p: &HostPattern| match p {
        HostPattern::Exact(_) => format!("exact host name \"{p}\""),
        HostPattern::Wildcard(_) => format!("wildcard \"{p}\""),
        HostPattern::Glob(_) => format!("pattern \"{p}\""),
    };
    let shown_host = h.as_deref().unwrap_or_default();
    let (kind, reason) = match (rule.priority, pattern) {
        (Some(prio), Some(p)) => (
            MatchKind::Priority,
            format!(
                "priority {prio}, the lowest on {addr} whose listener matches: {} matched \"{shown_host}\"",
                what(p)
            ),
        ),
        (Some(prio), None) => (
            MatchKind::Priority,
            format!("priority {prio}, the lowest on {addr} whose listener matches: a basic listener answers any host"),
        ),
        (None, Some(p @ HostPattern::Exact(_))) => (MatchKind::Exact, format!("{} matched", what(p))),
        (None, Some(p @ HostPattern::Wildcard(_))) => {
            (MatchKind::Wildcard, format!("{} matched \"{shown_host}\" (no exact host name did)", what(p)))
        }
        (None, Some(p)) => (
            MatchKind::Glob,
            format!("{} matched \"{shown_host}\" (no exact host name or *.suffix wildcard did)", what(p)),
        ),
        (None, None) if group.listeners.len() == 1 => {
            (MatchKind::Basic, format!("basic listener, the only one on {addr}"))
        }
        (None, None) if host.is_none() => {
            (MatchKind::Basic, format!("basic listener on {addr} (the request has no Host)"))
        }
        (None, None) => (
            MatchKind::Basic,
            format!("basic listener: no host name of the other listeners on {addr} matched \"{shown_host}\""),
        ),
    };
    ListenerView {
        name: l.name.clone(),
        host_names: l.host_names.iter().map(ToString::to_string).collect(),
        kind,
        pattern: pattern.map(ToString::to_string),
        priority: rule.priority,
        reason,
    }
}

/// The pattern of path rule `pr` of rule `ri`'s map that took `path` (the
/// first of its patterns that matches: no earlier path rule's did).
fn matched_pattern(cfg: &Config, ri: usize, pr: usize, path: &[u8]) -> Option<String> {
    let RuleKind::PathBased(m) = cfg.rules[ri].kind else { return None };
    let lower = path.to_ascii_lowercase();
    cfg.url_path_maps[m.0].path_rules.get(pr)?.paths.iter().find(|p| p.matches(&lower)).map(ToString::to_string)
}

fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

/// The report for a person: one `key: value` line per step.
fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(o, "{:<14}{v}", format!("{k}:"));
    };
    let host = r.request.host.as_ref().map_or("no Host header".to_string(), |h| format!("Host: {h}"));
    line("request", &format!("{} {} ({host})", r.request.method, r.request.target));
    if let Some(a) = &r.address {
        line("address", &format!("{} ({}), by {}", a.address, a.protocol, a.chosen_by));
    }
    if let Some(l) = &r.listener {
        line("listener", &format!("{}: {}", l.name, l.reason));
    }
    if let Some(rule) = &r.rule {
        match &rule.url_path_map {
            Some(m) => line("rule", &format!("{} (path-based, url_path_map {m})", rule.name)),
            None => line("rule", &format!("{} (basic)", rule.name)),
        }
    }
    if let Some(p) = &r.path {
        if p.normalized == p.requested {
            line("path", &p.normalized);
        } else {
            line("path", &format!("{} (normalized from {})", p.normalized, p.requested));
        }
        match (&p.path_rule, &p.pattern) {
            (Some(pr), Some(pat)) => line("path rule", &format!("{pr} ({pat})")),
            (Some(pr), None) => line("path rule", pr),
            (None, _) => line("path rule", "default (no path rule matched)"),
        }
    }
    if let Some(x) = &r.redirect {
        line("redirect", &format!("{} ({} {})", x.name, x.status, x.reason));
        line("location", &x.location);
    }
    if let Some(t) = &r.target {
        line("target", &t.name);
        line("pool", &t.pool);
        let mut settings = format!("{}, port {}, request_timeout {}", t.protocol, t.port, t.request_timeout);
        if let Some(c) = &t.affinity_cookie {
            settings.push_str(&format!(", affinity cookie {c}"));
        }
        if let Some(d) = &t.connection_draining {
            settings.push_str(&format!(", connection draining {d}"));
        }
        line("settings", &format!("{} ({settings})", t.settings));
        let servers: Vec<String> = t
            .servers
            .iter()
            .map(|s| match &s.dns_error {
                Some(e) => format!("{} (does not resolve: {e})", s.address),
                None => s.address.clone(),
            })
            .collect();
        line("servers", &if servers.is_empty() { "none (the pool is empty)".to_string() } else { servers.join(", ") });
        line("backend path", &format!("{} ({})", t.backend_target, t.backend_target_how));
        match &t.host_header {
            Some(h) => line("host header", &format!("{h} ({})", t.host_header_from)),
            None if t.servers.is_empty() => line("host header", &format!("- ({})", t.host_header_from)),
            None => {
                let each: Vec<String> =
                    t.servers.iter().map(|s| format!("{} for {}", s.host_header, s.address)).collect();
                line("host header", &format!("{} ({})", each.join(", "), t.host_header_from));
            }
        }
        match &t.rewrite {
            None => line("rewrite", "none"),
            Some(rw) => {
                line("rewrite", &format!("rule set {}", rw.name));
                for rule in &rw.rules {
                    let mut parts = Vec::new();
                    match rule.matches {
                        Some(true) if rule.request_edits.is_empty() => parts.push("matches".to_string()),
                        Some(true) => parts.push(format!("matches: {}", rule.request_edits.join("; "))),
                        Some(false) => parts.push("does not match".to_string()),
                        None => {}
                    }
                    if rule.applies_to_responses {
                        let also =
                            if rule.matches.is_some() { "also applies to responses" } else { "applies to responses" };
                        parts.push(format!("{also}: {}", rule.response_actions.join("; ")));
                    }
                    let _ = writeln!(o, "  {} (sequence {}): {}", rule.name, rule.sequence, parts.join("; "));
                }
                if rw.rules.is_empty() {
                    let mut edits: Vec<String> = rw
                        .request_headers
                        .iter()
                        .map(|h| match &h.value {
                            Some(v) => format!("set request header {}: {v}", h.name),
                            None => format!("delete request header {}", h.name),
                        })
                        .collect();
                    if let Some(u) = &rw.url {
                        edits.push(format!("URL {u}"));
                    }
                    let _ = writeln!(o, "  {} rule(s) match the request: {}", rw.matched, edits.join("; "));
                }
                if rw.dropped > 0 {
                    let _ = writeln!(o, "  {} unsafe substituted value(s) dropped", rw.dropped);
                }
            }
        }
    }
    for n in &r.notes {
        let _ = writeln!(o, "{:<14}{n}", "note:");
    }
    let _ = writeln!(o, "{:<14}{}", "result:", r.message);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_compared_without_port_dot_or_case() {
        assert_eq!(routing_host("Shop.Example.:8080"), "shop.example");
        assert_eq!(routing_host("[::1]:80"), "[::1]");
        assert_eq!(fmt_duration(Duration::from_millis(2500)), "2500ms");
        assert_eq!(fmt_duration(Duration::from_secs(30)), "30s");
    }
}
