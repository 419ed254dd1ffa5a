//! The routing part of `ringgate check`, as a table an operator reads top to
//! bottom the way a request is matched: per listening address, each
//! listener with its rule, one line per path pattern in match order (the
//! first that matches wins), the map's default last, and where each goes:
//! a pool through settings (with its rewrite rule set), or a redirect with
//! its status and destination.

use std::fmt::Write;

use ringgate_config::{Action, Config, ListenerId, RedirectTarget, RuleKind};

/// The table, headed by one line; every row is
/// `listener [hosts] -> rule -> path -> target`.
pub fn render(cfg: &Config) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "routing (listener -> rule -> path -> target; paths in match order, the first match wins):");
    for g in cfg.socket_groups() {
        let prioritized =
            g.listeners.iter().any(|l| cfg.rule_for(*l).is_some_and(|r| cfg.rules[r.0].priority.is_some()));
        let mut listeners: Vec<ListenerId> = g.listeners.clone();
        if prioritized {
            listeners.sort_by_key(|l| cfg.rule_for(*l).and_then(|r| cfg.rules[r.0].priority));
        } else {
            // Host names first; the basic listener takes what they do not.
            listeners.sort_by_key(|l| cfg.listeners[l.0].is_basic());
        }
        let order = if g.listeners.len() == 1 {
            ""
        } else if prioritized {
            ", listeners by rule priority, lowest first"
        } else {
            ", by Host: exact names, then *.suffix wildcards, then patterns, then the basic listener"
        };
        let _ = writeln!(o, "  {} ({}){order}:", g.key, g.protocol);
        let mut rows: Vec<[String; 4]> = Vec::new();
        for l in listeners {
            let listener = &cfg.listeners[l.0];
            let hosts = if listener.is_basic() {
                "any host".to_string()
            } else {
                listener.host_names.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            let lcell = format!("{} [{hosts}]", listener.name);
            let Some(r) = cfg.rule_for(l) else {
                rows.push([lcell, "(no rule)".into(), String::new(), "404 NO_ROUTE".into()]);
                continue;
            };
            let rule = &cfg.rules[r.0];
            let rcell = match rule.priority {
                Some(p) => format!("{} (priority {p})", rule.name),
                None => rule.name.clone(),
            };
            match rule.kind {
                RuleKind::Basic(a) => rows.push([lcell, rcell, "(any path)".into(), action(cfg, a)]),
                RuleKind::PathBased(m) => {
                    let map = &cfg.url_path_maps[m.0];
                    for pr in &map.path_rules {
                        for p in &pr.paths {
                            rows.push([
                                lcell.clone(),
                                rcell.clone(),
                                format!("{p} ({})", pr.name),
                                action(cfg, pr.action),
                            ]);
                        }
                    }
                    rows.push([lcell, rcell, "(default)".into(), action(cfg, map.default)]);
                }
            }
        }
        let w = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
        let (w0, w1, w2) = (w(0), w(1), w(2));
        for [a, b, c, d] in &rows {
            let _ = writeln!(o, "    {a:<w0$} -> {b:<w1$} -> {c:<w2$} -> {d}");
        }
    }
    o
}

/// `pool P, settings S[, rewrite R]` or `redirect R: 301 to ...`.
fn action(cfg: &Config, a: Action) -> String {
    match a {
        Action::Forward(t) => {
            let t = &cfg.targets[t.0];
            let rewrite =
                t.rewrite_set.map_or(String::new(), |r| format!(", rewrite {}", cfg.rewrite_rule_sets[r.0].name));
            format!("pool {}, settings {}{rewrite}", cfg.pools[t.pool.0].name, cfg.settings[t.settings.0].name)
        }
        Action::Redirect(r) => {
            let r = &cfg.redirects[r.0];
            let to = match &r.target {
                RedirectTarget::Listener(l) => {
                    let l = &cfg.listeners[l.0];
                    let port = l.listen.port();
                    let default = matches!((l.protocol.as_str(), port), ("http", 80) | ("https", 443));
                    let port = if default { String::new() } else { format!(":{port}") };
                    format!("{}://<host>{port} (listener {})", l.protocol, l.name)
                }
                RedirectTarget::Url(u) => u.clone(),
            };
            let dropped = match (r.include_path, r.include_query_string) {
                (true, true) => "",
                (false, true) => " (path dropped)",
                (true, false) => " (query dropped)",
                (false, false) => " (path and query dropped)",
            };
            format!("redirect {}: {} to {to}{dropped}", r.name, r.status)
        }
    }
}

/// The reason phrase of a redirect status (`ringgate_http::reason_phrase`
/// knows only the statuses the gateway answers with errors).
pub fn redirect_reason(status: u16) -> &'static str {
    match status {
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        _ => "Redirect",
    }
}
