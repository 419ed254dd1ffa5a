//! `ringgate check`: validate a configuration, list every error at once, or
//! print the effective configuration with each pool's provisioning state,
//! the redirects, rewrite rule sets and error pages, and the routing table
//! (`-q`: only errors). The access log file is opened as the gateway would.

use std::path::Path;
use std::process::ExitCode;

use ringgate_config::{Config, RedirectTarget, ServerHost, load_file};

pub fn run(path: &Path, quiet: bool) -> ExitCode {
    match load_file(path) {
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Ok(cfg) => {
            // Opened as the gateway will open it (append, created if
            // missing), so a directory that does not exist or a file that
            // cannot be written shows now, not at start.
            if let ringgate_config::AccessLog::File(p) = &cfg.gateway.access_log
                && let Err(e) = std::fs::OpenOptions::new().create(true).append(true).open(p)
            {
                eprintln!(
                    "{}: [gateway], field `access_log`: cannot open {} for appending: {e}",
                    path.display(),
                    p.display()
                );
                return ExitCode::from(1);
            }
            if quiet {
                return ExitCode::SUCCESS;
            }
            println!(
                "{}: configuration is valid ({} listener{}, {} rule{})",
                path.display(),
                cfg.listeners.len(),
                if cfg.listeners.len() == 1 { "" } else { "s" },
                cfg.rules.len(),
                if cfg.rules.len() == 1 { "" } else { "s" }
            );
            print!("{}", effective(&cfg));
            // Names are resolved now, as the gateway will at start, so a
            // name that does not resolve shows before it becomes a 502.
            for p in &cfg.pools {
                for s in &p.servers {
                    if let ServerHost::Name(_) = s.host {
                        match ringgate_health::resolve(&s.host, s.port.unwrap_or(80)) {
                            Ok(a) => {
                                let ips: Vec<String> = a.iter().map(|x| x.ip().to_string()).collect();
                                println!("  resolve {} (pool {}): {}", s, p.name, ips.join(", "));
                            }
                            Err(e) => println!(
                                "  resolve {} (pool {}): FAILED: {e}; that server will be unhealthy",
                                s, p.name
                            ),
                        }
                    }
                }
            }
            print!("{}", crate::routing_table::render(&cfg));
            if !cfg.warnings.is_empty() {
                println!("warnings:");
                for w in &cfg.warnings {
                    println!("  warning: {w}");
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// `Config::describe()` without its `[[rule]]` lines (the routing table
/// says the same, in match order), with what it leaves out: the settings
/// that shape forwarded requests, redirects, rewrite rule sets and custom
/// error pages.
fn effective(cfg: &Config) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let mut in_rule = false;
    let mut settings = cfg.settings.iter();
    for line in cfg.describe().lines() {
        // A rule's path rules and default are indented under it.
        in_rule = line.starts_with("[[rule]] ") || (in_rule && line.starts_with("    "));
        if in_rule {
            continue;
        }
        let _ = write!(o, "{line}");
        // describe() lists the settings in order, one line each.
        if line.starts_with("[[backend_http_settings]] ")
            && let Some(s) = settings.next()
        {
            if let Some(p) = &s.override_backend_path {
                let _ = write!(o, ", override_backend_path {p}");
            }
            if s.pick_host_name_from_backend_address {
                let _ = write!(o, ", pick_host_name_from_backend_address (Host: each server's own name)");
            }
            if let Some(d) = s.connection_draining {
                let _ = write!(o, ", connection draining {} s", d.timeout.as_secs());
            }
        }
        let _ = writeln!(o);
    }
    for r in &cfg.redirects {
        let to = match &r.target {
            RedirectTarget::Listener(l) => format!("listener {}", cfg.listeners[l.0].name),
            RedirectTarget::Url(u) => u.clone(),
        };
        let keep = |b: bool| if b { "kept" } else { "dropped" };
        let _ = writeln!(
            o,
            "[[redirect]] {}: {} {} to {to}, path {}, query {}",
            r.name,
            r.status,
            crate::routing_table::redirect_reason(r.status),
            keep(r.include_path),
            keep(r.include_query_string)
        );
    }
    for s in &cfg.rewrite_rule_sets {
        let rules: Vec<String> = s.set.rules_in_order().map(|(n, seq)| format!("{n} ({seq})")).collect();
        let _ = writeln!(o, "[[rewrite_rule_set]] {}: rules in order {}", s.name, rules.join(", "));
    }
    let pages = |p: &[ringgate_config::ErrorPage]| {
        p.iter().map(|p| format!("{} {}", p.status, p.path.display())).collect::<Vec<_>>().join(", ")
    };
    if !cfg.gateway.error_pages.is_empty() {
        let _ = writeln!(o, "error pages: gateway: {}", pages(&cfg.gateway.error_pages));
    }
    for l in cfg.listeners.iter().filter(|l| !l.error_pages.is_empty()) {
        let _ = writeln!(o, "error pages: listener {}: {}", l.name, pages(&l.error_pages));
    }
    o
}
