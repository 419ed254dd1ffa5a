//! Resolving the routing sections: rules (basic or path-based, with
//! priorities), URL path maps, redirects; every forwarding (rule, path rule)
//! becomes a [`Target`]. Paths that could never match, or that appear twice,
//! are refused here with both places named.

use std::collections::HashMap;

use super::lookup;
use crate::diag::Diags;
use crate::load::{RawConfig, RawPathRule, RawRule};
use crate::model::{ListenerId, PoolId, Rule, RuleId, SettingsId};
use crate::routing::*;

/// Name → index maps of the sections routing refers to.
pub(crate) struct Names<'a> {
    pub listeners: &'a HashMap<String, usize>,
    pub pools: &'a HashMap<String, usize>,
    pub settings: &'a HashMap<String, usize>,
    pub redirects: &'a HashMap<String, usize>,
    pub path_maps: &'a HashMap<String, usize>,
    pub rewrite_sets: &'a HashMap<String, usize>,
}

/// What routing resolves to.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    pub rules: Vec<Rule>,
    pub targets: Vec<Target>,
    pub url_path_maps: Vec<UrlPathMap>,
    pub redirects: Vec<Redirect>,
    /// Listener index → (rule name, offset) of the rule using it.
    pub listener_rule: HashMap<usize, (String, usize)>,
    pub ok: bool,
}

/// One side of an action as written: forward fields and a redirect.
struct ActionRefs<'r> {
    pool: &'r Option<(String, usize)>,
    settings: &'r Option<(String, usize)>,
    redirect: &'r Option<(String, usize)>,
    rewrite: &'r Option<(String, usize)>,
    /// Field names, e.g. `backend_pool` or `default_backend_pool`.
    fields: [&'static str; 4],
}

/// Field names of a rule's or path rule's action, and of a map's default.
const ACTION_FIELDS: [&str; 4] = ["backend_pool", "backend_http_settings", "redirect", "rewrite_rule_set"];
const DEFAULT_ACTION_FIELDS: [&str; 4] =
    ["default_backend_pool", "default_backend_http_settings", "default_redirect", "default_rewrite_rule_set"];

enum Resolved {
    Forward(PoolId, SettingsId),
    Redirect(RedirectId),
}

fn resolve_action(d: &mut Diags, n: &Names<'_>, a: &ActionRefs<'_>, label: &str, at: usize) -> Option<Resolved> {
    let [pf, sf, rf, _] = a.fields;
    let pool = lookup(d, n.pools, a.pool, label, pf, "backend_pool");
    let settings = lookup(d, n.settings, a.settings, label, sf, "backend_http_settings");
    let redirect = lookup(d, n.redirects, a.redirect, label, rf, "redirect");
    let forward = a.pool.is_some() || a.settings.is_some();
    match (forward, a.redirect.is_some()) {
        (true, true) => {
            let at = a.redirect.as_ref().map_or(at, |(_, at)| *at);
            d.error(Some(at), label, Some(rf), format!("set either `{pf}` + `{sf}` or `{rf}`, not both"));
            None
        }
        (false, false) => {
            d.error(
                Some(at),
                label,
                Some(pf),
                format!("missing: set `{pf}` and `{sf}` (to forward), or `{rf}` (to redirect)"),
            );
            None
        }
        (true, false) => {
            if a.pool.is_none() {
                d.error(Some(at), label, Some(pf), format!("missing: `{sf}` is set, so `{pf}` is needed too"));
            }
            if a.settings.is_none() {
                d.error(Some(at), label, Some(sf), format!("missing: `{pf}` is set, so `{sf}` is needed too"));
            }
            Some(Resolved::Forward(PoolId(pool?), SettingsId(settings?)))
        }
        (false, true) => Some(Resolved::Redirect(RedirectId(redirect?))),
    }
}

pub(crate) fn resolve(raw: &RawConfig, d: &mut Diags, n: &Names<'_>) -> Routing {
    let mut out = Routing { ok: true, ..Routing::default() };
    out.redirects = resolve_redirects(raw, d, n, &mut out.ok);
    let mut map_owner: HashMap<usize, (String, usize)> = HashMap::new();
    let mut priorities: HashMap<u32, (String, usize)> = HashMap::new();

    for (ri, r) in raw.rules.iter().enumerate() {
        let listener = lookup(d, n.listeners, &r.listener, &r.label, "listener", "listener");
        let kind = resolve_rule_kind(raw, d, n, r, RuleId(ri), &mut out, &mut map_owner);
        let (Some(name), Some(listener), Some(kind)) = (&r.name, listener, kind) else {
            out.ok = false;
            continue;
        };
        if let Some((other, other_at)) = out.listener_rule.get(&listener) {
            let line = d.line_of(*other_at);
            let lname = raw.listeners[listener].name.clone().unwrap_or_default();
            d.error(
                r.listener.as_ref().map(|(_, at)| *at),
                &r.label,
                Some("listener"),
                format!(
                    "listener \"{lname}\" is already used by rule \"{other}\" (line {line}); a listener takes one rule: add a listener (multi-site listeners may share an address)"
                ),
            );
            out.ok = false;
            continue;
        }
        if let Some((p, at)) = r.priority {
            if let Some((other, other_at)) = priorities.get(&p) {
                let line = d.line_of(*other_at);
                d.error(
                    Some(at),
                    &r.label,
                    Some("priority"),
                    format!("priority {p} is already taken by rule \"{other}\" (line {line}); priorities are unique"),
                );
            } else {
                priorities.insert(p, (name.clone(), at));
            }
        }
        out.listener_rule.insert(listener, (name.clone(), r.at));
        out.rules.push(Rule {
            name: name.clone(),
            listener: ListenerId(listener),
            priority: r.priority.map(|(p, _)| p),
            kind,
        });
    }

    // A map no rule uses is still checked, so its typos are reported.
    for (mi, m) in raw.path_maps.iter().enumerate() {
        if m.name.is_some() && !map_owner.contains_key(&mi) {
            d.warn(Some(m.at), &m.label, None, "no [[rule]] uses this url_path_map".into());
            let mut scratch = Routing::default();
            let _ = resolve_map(d, n, mi, raw, RuleId(usize::MAX), "", &mut scratch);
        }
    }
    out
}

fn resolve_rule_kind(
    raw: &RawConfig,
    d: &mut Diags,
    n: &Names<'_>,
    r: &RawRule,
    id: RuleId,
    out: &mut Routing,
    map_owner: &mut HashMap<usize, (String, usize)>,
) -> Option<RuleKind> {
    let path_based = match &r.rule_type {
        None => r.url_path_map.is_some(),
        Some((t, at)) => match t.to_ascii_lowercase().replace(['-', ' '], "_").as_str() {
            "basic" => false,
            "path_based" | "pathbased" | "pathbasedrouting" | "path_based_routing" => true,
            _ => {
                d.error(
                    Some(*at),
                    &r.label,
                    Some("rule_type"),
                    format!("\"{t}\" is not a rule type (use \"basic\" or \"path_based\")"),
                );
                return None;
            }
        },
    };
    let rule_name = r.name.clone().unwrap_or_default();
    if !path_based {
        if let Some((_, at)) = &r.url_path_map {
            d.error(
                Some(*at),
                &r.label,
                Some("url_path_map"),
                "only a rule_type = \"path_based\" rule uses a url_path_map".into(),
            );
            return None;
        }
        let refs = ActionRefs {
            pool: &r.pool,
            settings: &r.settings,
            redirect: &r.redirect,
            rewrite: &r.rewrite_set,
            fields: ACTION_FIELDS,
        };
        let action = resolve_target_action(d, n, &refs, &r.label, r.at, out, (id, None, &rule_name))?;
        return Some(RuleKind::Basic(action));
    }
    for (field, v) in [
        ("backend_pool", &r.pool),
        ("backend_http_settings", &r.settings),
        ("redirect", &r.redirect),
        ("rewrite_rule_set", &r.rewrite_set),
    ] {
        if let Some((_, at)) = v {
            d.error(
                Some(*at),
                &r.label,
                Some(field),
                format!("a path-based rule takes its actions from its url_path_map: set default_{field} there"),
            );
        }
    }
    let Some((map_name, map_at)) = &r.url_path_map else {
        d.error(Some(r.at), &r.label, Some("url_path_map"), "missing: a path-based rule needs a url_path_map".into());
        return None;
    };
    let mi = lookup(d, n.path_maps, &r.url_path_map, &r.label, "url_path_map", "url_path_map")?;
    if let Some((other, other_at)) = map_owner.get(&mi) {
        let line = d.line_of(*other_at);
        d.error(
            Some(*map_at),
            &r.label,
            Some("url_path_map"),
            format!("url_path_map \"{map_name}\" is already used by rule \"{other}\" (line {line}); each map belongs to one rule"),
        );
        return None;
    }
    map_owner.insert(mi, (rule_name.clone(), r.at));
    let map = resolve_map(d, n, mi, raw, id, &rule_name, out)?;
    out.url_path_maps.push(map);
    Some(RuleKind::PathBased(UrlPathMapId(out.url_path_maps.len() - 1)))
}

/// A rule's, path rule's or map default's action: a redirect, or a new
/// target (of `owner`: rule, path rule, rule name) with its rewrite set.
/// `None` when a reference is wrong (reported).
fn resolve_target_action(
    d: &mut Diags,
    n: &Names<'_>,
    a: &ActionRefs<'_>,
    label: &str,
    at: usize,
    out: &mut Routing,
    owner: (RuleId, Option<&str>, &str),
) -> Option<Action> {
    let rewrite = rewrite_set(d, n, a.rewrite, label, a.fields[3]);
    let action = match resolve_action(d, n, a, label, at)? {
        Resolved::Forward(pool, settings) => {
            let (rule, path_rule, rule_name) = owner;
            Action::Forward(push_target(out, rule, path_rule, pool, settings, rule_name, rewrite?))
        }
        Resolved::Redirect(x) => {
            if let Some((_, at)) = a.rewrite {
                d.error(
                    Some(*at),
                    label,
                    Some(a.fields[3]),
                    "rewrites apply to forwarded requests; a redirect forwards nothing".into(),
                );
            }
            rewrite?;
            Action::Redirect(x)
        }
    };
    Some(action)
}

/// The rewrite set a rule or path rule names: `Some(None)` when none is
/// named, `None` when the name is wrong (reported).
fn rewrite_set(
    d: &mut Diags,
    n: &Names<'_>,
    reference: &Option<(String, usize)>,
    label: &str,
    field: &str,
) -> Option<Option<RewriteSetId>> {
    if reference.is_none() {
        return Some(None);
    }
    lookup(d, n.rewrite_sets, reference, label, field, "rewrite_rule_set").map(|i| Some(RewriteSetId(i)))
}

#[allow(clippy::too_many_arguments)]
fn push_target(
    out: &mut Routing,
    rule: RuleId,
    path_rule: Option<&str>,
    pool: PoolId,
    settings: SettingsId,
    rule_name: &str,
    rewrite_set: Option<RewriteSetId>,
) -> TargetId {
    let display = match path_rule {
        Some(p) => format!("{rule_name}/{p}"),
        None => rule_name.to_string(),
    };
    out.targets.push(Target { rule, path_rule: path_rule.map(str::to_string), pool, settings, rewrite_set, display });
    TargetId(out.targets.len() - 1)
}

fn resolve_map(
    d: &mut Diags,
    n: &Names<'_>,
    mi: usize,
    raw: &RawConfig,
    rule: RuleId,
    rule_name: &str,
    out: &mut Routing,
) -> Option<UrlPathMap> {
    let m = &raw.path_maps[mi];
    let mut ok = true;
    let refs = ActionRefs {
        pool: &m.default_pool,
        settings: &m.default_settings,
        redirect: &m.default_redirect,
        rewrite: &m.default_rewrite_set,
        fields: DEFAULT_ACTION_FIELDS,
    };
    let default = resolve_target_action(d, n, &refs, &m.label, m.at, out, (rule, None, rule_name));
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut path_rules = Vec::new();
    // Every path so far, in match order: (pattern, as written, offset, path rule).
    let mut seen: Vec<(&PathPattern, &str, usize, &str)> = Vec::new();
    for pr in &m.path_rules {
        let Some(name) = &pr.name else {
            ok = false;
            continue;
        };
        if let Some(prev) = names.get(name.as_str()) {
            let line = d.line_of(*prev);
            d.error(
                Some(pr.at),
                &pr.label,
                Some("name"),
                format!("duplicate name: another path rule \"{name}\" of this map is on line {line}"),
            );
            ok = false;
        }
        names.insert(name, pr.at);
        check_paths(d, pr, &mut seen, &mut ok);
        let refs = ActionRefs {
            pool: &pr.pool,
            settings: &pr.settings,
            redirect: &pr.redirect,
            rewrite: &pr.rewrite_set,
            fields: ACTION_FIELDS,
        };
        let Some(action) = resolve_target_action(d, n, &refs, &pr.label, pr.at, out, (rule, Some(name), rule_name))
        else {
            ok = false;
            continue;
        };
        path_rules.push(PathRule {
            name: name.clone(),
            paths: pr.paths.iter().map(|(p, _, _)| p.clone()).collect(),
            action,
        });
    }
    let (Some(name), Some(default)) = (&m.name, default) else { return None };
    ok.then(|| UrlPathMap { name: name.clone(), path_rules, default })
}

/// Refuses a path that repeats one listed earlier, or that an earlier prefix
/// already covers (first match wins, so it could never be reached).
fn check_paths<'r>(
    d: &mut Diags,
    pr: &'r RawPathRule,
    seen: &mut Vec<(&'r PathPattern, &'r str, usize, &'r str)>,
    ok: &mut bool,
) {
    let this_rule = pr.name.as_deref().unwrap_or("?");
    for (i, (pat, written, at)) in pr.paths.iter().enumerate() {
        let field = format!("paths[{i}]");
        if let Some((earlier, w, other_at, other_rule)) = seen.iter().find(|(p, ..)| p.covers(pat)) {
            let line = d.line_of(*other_at);
            let whose = if *other_rule == this_rule {
                "this path rule".to_string()
            } else {
                format!("path rule \"{other_rule}\"")
            };
            let msg = if *earlier == pat {
                format!(
                    "\"{written}\" is already listed as \"{w}\" by {whose} (line {line}); paths match without regard to case"
                )
            } else {
                format!(
                    "\"{written}\" can never match: \"{w}\" of {whose} (line {line}) is tried first and matches every path it does; list the more specific path first"
                )
            };
            d.error(Some(*at), &pr.label, Some(&field), msg);
            *ok = false;
        }
        seen.push((pat, written, *at, this_rule));
    }
}

fn resolve_redirects(raw: &RawConfig, d: &mut Diags, n: &Names<'_>, ok: &mut bool) -> Vec<Redirect> {
    let mut out = Vec::new();
    for r in &raw.redirects {
        let listener = lookup(d, n.listeners, &r.target_listener, &r.label, "target_listener", "listener");
        let target = match (&r.target_listener, &r.target_url) {
            (Some(_), Some((_, at))) => {
                d.error(
                    Some(*at),
                    &r.label,
                    Some("target_url"),
                    "set either `target_listener` or `target_url`, not both".into(),
                );
                None
            }
            (None, None) => {
                d.error(
                    Some(r.at),
                    &r.label,
                    Some("target_listener"),
                    "missing: set `target_listener` (another listener of this gateway) or `target_url`".into(),
                );
                None
            }
            (Some(_), None) => listener.map(|l| RedirectTarget::Listener(ListenerId(l))),
            (None, Some((u, _))) => Some(RedirectTarget::Url(u.clone())),
        };
        let (Some(name), Some(status), Some(target)) = (&r.name, r.status, target) else {
            *ok = false;
            continue;
        };
        out.push(Redirect {
            name: name.clone(),
            status,
            target,
            include_path: r.include_path.unwrap_or(true),
            include_query_string: r.include_query_string.unwrap_or(true),
        });
    }
    out
}
