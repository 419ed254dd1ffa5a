//! `ringgate health`: the running gateway's backend health for a person, one
//! server a line, unhealthy ones first with their reasons.

use std::process::ExitCode;

use crate::health_view::{HealthView, ServerView};

/// Prints the health table; exits 0 when every rule has a server taking
/// requests, 1 when some rule would answer 502 (its pool empty, or none of
/// its servers taking requests), 2 when the gateway cannot be asked.
pub fn run(admin: &str, json: bool) -> ExitCode {
    let body = match crate::admin_client::get(admin, "/backend-health") {
        Ok((200, b)) => b,
        Ok((s, b)) => {
            eprintln!("ringgate health: the admin API answered {s}: {}", b.trim());
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("ringgate health: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        print!("{body}");
    }
    let view: HealthView = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ringgate health: unexpected answer from the admin API: {e}");
            return ExitCode::from(2);
        }
    };
    let rows = rows(&view);
    let failing = failing_rules(&view);
    if !json {
        print!("{}", render(&view, &rows));
        // Each pool (with its settings) once, as Application Gateway v2
        // sums it up: Up, Down or Partial.
        let mut pools: Vec<String> = Vec::new();
        for r in view.rules.iter().filter(|r| !r.pool_status.is_empty()) {
            let line = format!("{} / {} {}", r.pool, r.settings, r.pool_status);
            if !pools.contains(&line) {
                pools.push(line);
            }
        }
        if !pools.is_empty() {
            println!("pools: {}", pools.join(", "));
        }
        for (rule, why) in &failing {
            println!("rule {rule} answers 502 {why}");
        }
    }
    if failing.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// The rules that would answer 502 now, with the code and why.
fn failing_rules(view: &HealthView) -> Vec<(String, String)> {
    view.rules
        .iter()
        .filter_map(|r| {
            if r.servers.is_empty() {
                Some((r.rule.clone(), format!("POOL_EMPTY: backend pool {} has no servers", r.pool)))
            } else if !r.servers.iter().any(|s| s.in_rotation) && r.servers.iter().any(awaiting_first_probe) {
                Some((
                    r.rule.clone(),
                    format!(
                        "NOT_YET_PROBED: no server of backend pool {} takes requests until its first probe succeeds (unprobed_servers = \"wait\")",
                        r.pool
                    ),
                ))
            } else if !r.servers.iter().any(|s| s.in_rotation) {
                Some((r.rule.clone(), format!("ALL_UNHEALTHY: no server of backend pool {} takes requests", r.pool)))
            } else {
                None
            }
        })
        .collect()
}

/// Not probed yet and out of rotation meanwhile (`unprobed_servers =
/// "wait"`; a drained server shows as Draining).
fn awaiting_first_probe(s: &ServerView) -> bool {
    s.state == "Unknown" && !s.in_rotation
}

/// Each server once (several rules may share a pool and settings), with the
/// probe that watches it; unhealthy first.
fn rows(view: &HealthView) -> Vec<(ServerView, String)> {
    let mut rows: Vec<(ServerView, String)> = Vec::new();
    for r in &view.rules {
        let p = &r.probe;
        for s in &r.servers {
            if rows.iter().any(|(x, _)| x.pool == s.pool && x.settings == s.settings && x.address == s.address) {
                continue;
            }
            let url = ringgate_health::probe_url(&p.protocol, &s.address, p.port, &p.path);
            let probe = format!("{} {url} Host: {}", p.name, p.host);
            rows.push((s.clone(), probe));
        }
    }
    for s in &view.removed {
        rows.push((s.clone(), "(removed by a reload)".into()));
    }
    // An empty pool has no server to list: a row says so.
    for r in view.rules.iter().filter(|r| r.servers.is_empty()) {
        if rows.iter().any(|(x, _)| x.state == "Empty" && x.pool == r.pool) {
            continue;
        }
        let row = ServerView::empty_pool(&r.pool, &r.settings);
        rows.push((row, format!("no addresses in backend pool {}: add some", r.pool)));
    }
    let rank = |s: &str| match s {
        "Empty" => 0,
        "Unhealthy" => 0,
        "Draining" => 1,
        "Unknown" => 2,
        _ => 3,
    };
    rows.sort_by(|a, b| rank(&a.0.state).cmp(&rank(&b.0.state)).then(a.0.address.cmp(&b.0.address)));
    rows
}

fn render(view: &HealthView, rows: &[(ServerView, String)]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let down = rows.iter().filter(|(s, _)| !s.in_rotation).count();
    let _ = writeln!(
        o,
        "{} server{}, {down} not taking requests (configuration generation {}{})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        view.generation,
        if view.draining { ", draining" } else { "" }
    );
    let _ = writeln!(
        o,
        "{:<10} {:<24} {:<28} {:>6} {:>9} {:>5}  REASON / PROBE",
        "STATE", "SERVER", "POOL / SETTINGS", "STATUS", "LATENCY", "FAILS"
    );
    for (s, probe) in rows {
        let status = s.last_status.map_or("-".to_string(), |c| c.to_string());
        let latency = s.latency_ms.map_or("-".to_string(), |l| format!("{l:.1}ms"));
        let why = match (&s.reason, &s.dns_error) {
            (Some(r), _) => r.clone(),
            (None, Some(d)) => format!("DNS: {d}"),
            (None, None) if awaiting_first_probe(s) => "not probed yet: no requests until a probe succeeds".to_string(),
            (None, None) if s.state == "Unknown" => "not probed yet".to_string(),
            _ => String::new(),
        };
        let since = s.since.as_deref().map_or(String::new(), |t| format!(" since {t}"));
        // Its real state stays in the STATE column; why it still gets
        // requests comes first here.
        let kept = if s.kept_by_min_servers { "kept in rotation by min_servers; " } else { "" };
        let detail =
            if why.is_empty() { format!("{kept}{probe}") } else { format!("{kept}{why}{since}; probe {probe}") };
        let _ = writeln!(
            o,
            "{:<10} {:<24} {:<28} {:>6} {:>9} {:>5}  {detail}",
            s.state,
            s.address,
            format!("{} / {}", s.pool, s.settings),
            status,
            latency,
            s.consecutive_failures
        );
    }
    o
}
