//! Second pass: names are resolved to indices, cross-entry rules are checked
//! (unique names, references that exist, one rule per listener, listeners that
//! share an address without ambiguity) and defaults are filled in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use crate::diag::Diags;
use crate::load::{RawConfig, suggest};
use crate::model::*;

/// `[gateway.splice] min_body`'s default, from `bench/compare.sh --mode
/// bulk --bulk-min-body 8KiB` (see the README's performance section):
/// splicing costs what copying does at 16 and 32 KiB and saves 18 % at
/// 64 KiB, so it starts here.
pub const DEFAULT_SPLICE_MIN_BODY: u64 = 32 * 1024;

mod routing;

/// Checks a host name (RFC 1123 labels; `_` tolerated as internal DNS uses it).
pub(crate) fn parse_host_name(s: &str) -> Result<String, String> {
    let h = s.strip_suffix('.').unwrap_or(s);
    let bad = || format!("\"{s}\" is neither an IP address nor a valid host name");
    if h.is_empty() || h.len() > 253 {
        return Err(bad());
    }
    let mut all_numeric = true;
    for label in h.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad());
        }
        all_numeric &= label.bytes().all(|b| b.is_ascii_digit());
    }
    // "10.0.0.300" looks like a host name label by label but is a mistyped IP.
    if all_numeric {
        return Err(bad());
    }
    Ok(h.to_ascii_lowercase())
}

/// A Host header value: an IP address or a host name.
pub(crate) fn parse_host(s: &str) -> Result<String, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    parse_host_name(s)
}

/// `app.example.com`, `*.example.com`, or (as Application Gateway v2
/// accepts) a name with `*` and `?` anywhere: `api-?.example.*`.
pub(crate) fn parse_host_pattern(s: &str) -> Result<HostPattern, String> {
    if let Some(rest) = s.strip_prefix("*.")
        && !rest.contains(['*', '?'])
    {
        let h =
            parse_host_name(rest).map_err(|_| format!("\"{s}\" is not a host name or a \"*.example.com\" wildcard"))?;
        return Ok(HostPattern::Wildcard(format!(".{h}")));
    }
    if s.contains(['*', '?']) {
        if s.chars().all(|c| c == '*') {
            return Err(format!("\"{s}\" matches every host: use a basic listener (no host_names) instead"));
        }
        if s.len() > 253 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._*?".contains(&b)) {
            return Err(format!(
                "\"{s}\" is not a host name pattern (letters, digits, '-', '.', '_', and the wildcards '*' and '?')"
            ));
        }
        return Ok(HostPattern::Glob(s.to_ascii_lowercase()));
    }
    parse_host_name(s).map(HostPattern::Exact)
}

/// `10.0.0.10`, `10.0.0.10:8080`, `[::1]:8080`, `::1`, `app.internal`, `app.internal:8081`.
pub(crate) fn parse_server_address(s: &str) -> Result<ServerAddress, String> {
    let s = s.trim();
    let port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("\"{s}\": port \"{p}\" is not a number from 1 to 65535")),
        }
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(|| format!("\"{s}\": missing ']'"))?;
        let ip: IpAddr = ip.parse().map_err(|_| format!("\"{s}\": \"{ip}\" is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(port(p.strip_prefix(':').ok_or_else(|| format!("\"{s}\": expected ':' after ']'"))?)?),
        };
        return Ok(ServerAddress { host: ServerHost::Ip(ip), port });
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ServerAddress { host: ServerHost::Ip(ip), port: None });
    }
    let (host, p) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(port(p)?)),
        Some(_) => {
            return Err(format!(
                "\"{s}\" is neither an IP address nor a host name (IPv6 with a port needs brackets: \"[::1]:8080\")"
            ));
        }
        None => (s, None),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerAddress { host: ServerHost::Ip(ip), port: p });
    }
    let name = parse_host_name(host)?;
    Ok(ServerAddress { host: ServerHost::Name(name), port: p })
}

/// `"200"` or `"200-399"`.
pub(crate) fn parse_status_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let code = |c: &str| -> Result<u16, String> {
        match c.trim().parse::<u16>() {
            Ok(n) if (100..=599).contains(&n) => Ok(n),
            _ => Err(format!("\"{s}\": \"{c}\" is not a status code from 100 to 599")),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (code(a)?, code(b)?);
            if a > b {
                return Err(format!("\"{s}\": the range is empty ({a} > {b})"));
            }
            Ok(a..=b)
        }
        None => {
            let c = code(s)?;
            Ok(c..=c)
        }
    }
}

/// Unique names in one section, with the first definition's offset.
fn index_names<'a>(
    d: &mut Diags,
    section: &str,
    entries: impl Iterator<Item = (Option<&'a String>, usize, &'a str)>,
) -> HashMap<String, usize> {
    let mut map: HashMap<String, usize> = HashMap::new();
    let mut first_at: HashMap<String, usize> = HashMap::new();
    for (i, (name, at, label)) in entries.enumerate() {
        let Some(name) = name else { continue };
        if let Some(prev) = first_at.get(name) {
            let line = d.line_of(*prev);
            d.error(
                Some(at),
                label,
                Some("name"),
                format!("duplicate name: another [[{section}]] \"{name}\" is defined on line {line}"),
            );
        } else {
            first_at.insert(name.clone(), at);
            map.insert(name.clone(), i);
        }
    }
    map
}

fn lookup(
    d: &mut Diags,
    map: &HashMap<String, usize>,
    reference: &Option<(String, usize)>,
    label: &str,
    field: &str,
    section: &str,
) -> Option<usize> {
    let (name, at) = reference.as_ref()?;
    match map.get(name) {
        Some(i) => Some(*i),
        None => {
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            let hint = suggest(name, &known).map_or(String::new(), |s| format!("; did you mean \"{s}\"?"));
            let defined = if known.is_empty() {
                format!("no [[{section}]] is defined")
            } else {
                let mut k = known.clone();
                k.sort_unstable();
                format!("defined: {}", k.join(", "))
            };
            d.error(
                Some(*at),
                label,
                Some(field),
                format!("refers to [[{section}]] \"{name}\", which does not exist ({defined}){hint}"),
            );
            None
        }
    }
}

/// Resolves names, checks cross-entry rules and fills in defaults. Returns
/// `None` when something needed to build a [`Config`] is missing (its error is
/// recorded).
pub(crate) fn resolve(mut raw: RawConfig, d: &mut Diags, source: &Path) -> Option<Config> {
    let gateway = resolve_gateway(raw.gateway.take(), d);
    let allow_subsecond = gateway.as_ref().is_some_and(|g| g.allow_subsecond_timers);

    let listener_ix =
        index_names(d, "listener", raw.listeners.iter().map(|l| (l.name.as_ref(), l.at, l.label.as_str())));
    let pool_ix = index_names(d, "backend_pool", raw.pools.iter().map(|p| (p.name.as_ref(), p.at, p.label.as_str())));
    let settings_ix =
        index_names(d, "backend_http_settings", raw.settings.iter().map(|s| (s.name.as_ref(), s.at, s.label.as_str())));
    let probe_ix = index_names(d, "probe", raw.probes.iter().map(|p| (p.name.as_ref(), p.at, p.label.as_str())));
    let _rule_ix = index_names(d, "rule", raw.rules.iter().map(|r| (r.name.as_ref(), r.at, r.label.as_str())));
    let path_map_ix =
        index_names(d, "url_path_map", raw.path_maps.iter().map(|m| (m.name.as_ref(), m.at, m.label.as_str())));
    let redirect_ix =
        index_names(d, "redirect", raw.redirects.iter().map(|r| (r.name.as_ref(), r.at, r.label.as_str())));
    let rewrite_ix =
        index_names(d, "rewrite_rule_set", raw.rewrite_sets.iter().map(|r| (r.name.as_ref(), r.at, r.label.as_str())));

    let mut ok = true;
    let mut rewrite_rule_sets = Vec::new();
    for r in &raw.rewrite_sets {
        match &r.set {
            Some(set) => rewrite_rule_sets.push((**set).clone()),
            None => ok = false,
        }
    }

    let mut listeners = Vec::new();
    for l in &raw.listeners {
        let (Some(name), Some(listen), Some(protocol)) = (&l.name, l.listen, l.protocol) else {
            ok = false;
            continue;
        };
        listeners.push(Listener {
            name: name.clone(),
            listen,
            host_names: l.host_names.iter().map(|(h, _)| h.clone()).collect(),
            protocol,
            tls: l.tls.clone(),
            error_pages: l.error_pages.clone(),
            http2: protocol == crate::model::Protocol::Https && l.http2.unwrap_or(true),
            http2_cleartext: protocol == crate::model::Protocol::Http && l.http2_cleartext.unwrap_or(false),
            proxy_protocol: l.proxy_protocol.unwrap_or(false),
        });
    }

    let mut pools = Vec::new();
    for p in &raw.pools {
        let Some(name) = &p.name else {
            ok = false;
            continue;
        };
        let mut servers: Vec<ServerAddress> = Vec::new();
        let mut weights = Vec::new();
        for ((s, at), w) in p.servers.iter().zip(&p.weights) {
            if servers.contains(s) {
                d.error(Some(*at), &p.label, Some("addresses"), format!("\"{s}\" is listed twice"));
            } else {
                servers.push(s.clone());
                weights.push(*w);
            }
        }
        if servers.is_empty() {
            d.warn(
                Some(p.addresses_at.unwrap_or(p.at)),
                &p.label,
                Some("addresses"),
                "the pool is empty: every request routed to it is answered 502 POOL_EMPTY".into(),
            );
        }
        pools.push(BackendPool { name: name.clone(), servers, weights });
    }

    let mut probes = Vec::new();
    for p in &raw.probes {
        let Some(name) = &p.name else {
            ok = false;
            continue;
        };
        let def = Probe::default_probe();
        let interval = p.interval.unwrap_or(def.interval);
        let timeout = p.timeout.unwrap_or(def.timeout);
        for (field, value, at) in [("interval", p.interval, p.interval_at), ("timeout", p.timeout, p.timeout_at)] {
            if let Some(v) = value {
                check_probe_timer(d, &p.label, field, v, at, allow_subsecond);
            }
        }
        if timeout > interval {
            d.warn(
                Some(p.timeout_at),
                &p.label,
                Some("timeout"),
                format!(
                    "the time-out ({}) is longer than the interval ({}): a slow server is probed less often than configured",
                    crate::units::fmt_duration(timeout),
                    crate::units::fmt_duration(interval)
                ),
            );
        }
        if p.host.is_some() && p.pick_host == Some(true) {
            d.error(
                Some(p.at),
                &p.label,
                Some("host"),
                "set either `host` or `pick_host_name_from_backend_http_settings = true`, not both".into(),
            );
        }
        probes.push(Probe {
            name: name.clone(),
            protocol: p.protocol.unwrap_or(Protocol::Http),
            host: p.host.clone(),
            pick_host_name_from_backend_http_settings: p.pick_host.unwrap_or(false),
            path: p.path.clone().unwrap_or_else(|| "/".into()),
            interval,
            timeout,
            unhealthy_threshold: p.unhealthy_threshold.unwrap_or(def.unhealthy_threshold),
            healthy_threshold: p.healthy_threshold.unwrap_or(def.healthy_threshold),
            status_codes: p.status_codes.clone().unwrap_or(def.status_codes),
            body: p.body.clone(),
            port: p.port,
            min_servers: p.min_servers.unwrap_or(def.min_servers),
        });
    }

    let mut settings = Vec::new();
    for s in &raw.settings {
        let Some(name) = &s.name else {
            ok = false;
            continue;
        };
        let probe = lookup(d, &probe_ix, &s.probe, &s.label, "probe", "probe").map(ProbeId);
        if s.probe.is_some() && probe.is_none() {
            ok = false;
        }
        if let Some(p) = probe.and_then(|p| raw.probes.get(p.0))
            && p.pick_host == Some(true)
            && s.host_name.is_none()
        {
            let at = s.probe.as_ref().map_or(s.at, |(_, at)| *at);
            let probe_name = p.name.as_deref().unwrap_or("?");
            d.error(
                Some(at),
                &s.label,
                Some("host_name"),
                format!("probe \"{probe_name}\" picks its host name from these settings, but `host_name` is not set"),
            );
        }
        let request_timeout = s.request_timeout.unwrap_or(Duration::from_secs(30));
        if let Some(p) = probe.and_then(|p| raw.probes.get(p.0)) {
            check_probe_fits_settings(d, s, p, request_timeout);
        }
        let pick_host_from_address = match s.pick_host_from_address {
            Some((true, at)) if s.host_name.is_some() => {
                d.error(
                    Some(at),
                    &s.label,
                    Some("pick_host_name_from_backend_address"),
                    "set either `host_name` or `pick_host_name_from_backend_address = true`, not both".into(),
                );
                false
            }
            Some((b, _)) => b,
            None => false,
        };
        let connect_timeout = s.connect_timeout.unwrap_or(Duration::from_secs(5)).min(request_timeout);
        let attempt_timeout = match s.attempt_timeout {
            Some((t, at)) if t > request_timeout => {
                d.error(
                    Some(at),
                    &s.label,
                    Some("attempt_timeout"),
                    format!(
                        "{} is longer than request_timeout ({}): one attempt cannot outlast the request",
                        crate::units::fmt_duration(t),
                        crate::units::fmt_duration(request_timeout)
                    ),
                );
                request_timeout
            }
            Some((t, _)) => t,
            None => request_timeout,
        };
        settings.push(BackendHttpSettings {
            name: name.clone(),
            port: s.port.unwrap_or(80),
            protocol: s.protocol.unwrap_or(Protocol::Http),
            cookie_based_affinity: s.cookie_based_affinity.unwrap_or(false),
            affinity_cookie_name: s.affinity_cookie_name.clone().unwrap_or_else(|| "ApplicationGatewayAffinity".into()),
            request_timeout,
            connect_timeout,
            probe,
            host_name: s.host_name.clone(),
            trusted_roots: s.trusted_roots.clone(),
            max_idle_connections: s.max_idle_connections.unwrap_or(64) as usize,
            max_attempts: s.max_attempts.unwrap_or(2) as u32,
            load_distribution: s.load_distribution.unwrap_or(LoadDistribution::RoundRobin),
            slow_start: s.slow_start.unwrap_or(Duration::ZERO),
            attempt_timeout,
            timeout_status: s.timeout_status.unwrap_or(502),
            idle_timeout: s.idle_timeout.unwrap_or(Duration::from_secs(60)),
            override_backend_path: s.override_backend_path.clone(),
            pick_host_name_from_backend_address: pick_host_from_address,
            connection_draining: s
                .connection_draining
                .flatten()
                .map(|timeout| crate::routing::ConnectionDraining { timeout }),
        });
    }

    let names = routing::Names {
        listeners: &listener_ix,
        pools: &pool_ix,
        settings: &settings_ix,
        redirects: &redirect_ix,
        path_maps: &path_map_ix,
        rewrite_sets: &rewrite_ix,
    };
    let routing::Routing { rules, targets, url_path_maps, redirects, listener_rule, ok: routing_ok } =
        routing::resolve(&raw, d, &names);
    ok &= routing_ok;

    if !ok {
        return None;
    }

    // Listeners without a rule would accept connections and route nothing.
    for (i, l) in raw.listeners.iter().enumerate() {
        if !listener_rule.contains_key(&i) {
            d.error(
                Some(l.at),
                &l.label,
                None,
                "no [[rule]] uses this listener: add a rule or remove the listener".into(),
            );
        }
    }

    // Listeners sharing an address form one multi-site socket: same protocol,
    // at most one basic listener, and no host name answered twice.
    for g in crate::model::group_by_socket(&listeners) {
        let mut basic: Option<usize> = None;
        let mut hosts: HashMap<&HostPattern, usize> = HashMap::new();
        for &i in &g {
            let l = &listeners[i];
            let rl = &raw.listeners[i];
            if l.protocol != listeners[g[0]].protocol {
                d.error(
                    Some(rl.at),
                    &rl.label,
                    Some("protocol"),
                    format!("shares {} with listener \"{}\" but uses another protocol", l.listen, listeners[g[0]].name),
                );
            } else if let (Some(a), Some(b)) = (&l.tls, &listeners[g[0]].tls)
                && (a.policy != b.policy
                    || a.client_auth.is_some() != b.client_auth.is_some()
                    || a.client_auth.as_ref().zip(b.client_auth.as_ref()).is_some_and(|(x, y)| !x.same_as(y)))
            {
                // One TLS configuration per socket: the handshake comes
                // before the Host that names the listener (SNI only picks
                // the certificate).
                let field = if a.policy != b.policy { "tls_policy" } else { "trusted_client_certificates" };
                d.error(
                    Some(rl.at),
                    &rl.label,
                    Some(field),
                    format!(
                        "shares {} with listener \"{}\" but sets {field} (or its mutual TLS fields) differently: listeners sharing an address must agree",
                        l.listen,
                        listeners[g[0]].name
                    ),
                );
            } else if l.proxy_protocol != listeners[g[0]].proxy_protocol {
                // The header comes before the request that says which
                // listener the connection is for.
                d.error(
                    Some(rl.at),
                    &rl.label,
                    Some("proxy_protocol"),
                    format!(
                        "shares {} with listener \"{}\" but sets proxy_protocol differently: listeners sharing an address must agree",
                        l.listen,
                        listeners[g[0]].name
                    ),
                );
            } else if (l.http2, l.http2_cleartext) != (listeners[g[0]].http2, listeners[g[0]].http2_cleartext) {
                // The protocol is chosen per connection, before a Host says
                // which listener it is for.
                let field = if l.protocol == crate::model::Protocol::Https { "http2" } else { "http2_cleartext" };
                d.error(
                    Some(rl.at),
                    &rl.label,
                    Some(field),
                    format!(
                        "shares {} with listener \"{}\" but sets {field} differently: listeners sharing an address must agree",
                        l.listen,
                        listeners[g[0]].name
                    ),
                );
            }
            if l.is_basic() {
                if let Some(b) = basic {
                    d.error(
                        Some(rl.at),
                        &rl.label,
                        Some("host_names"),
                        format!(
                            "listener \"{}\" already answers every host on {}: listeners sharing an address need distinct host_names",
                            listeners[b].name, l.listen
                        ),
                    );
                } else {
                    basic = Some(i);
                }
            }
            for (h, at) in &rl.host_names {
                if let Some(&other) = hosts.get(h) {
                    let msg = if other == i {
                        format!("\"{h}\" is listed twice")
                    } else {
                        format!("\"{h}\" on {} is already answered by listener \"{}\"", l.listen, listeners[other].name)
                    };
                    d.error(Some(*at), &rl.label, Some("host_names"), msg);
                } else {
                    hosts.insert(h, i);
                }
            }
        }
    }

    for (i, p) in raw.pools.iter().enumerate() {
        if p.name.is_some() && !targets.iter().any(|t| t.pool.0 == i) {
            d.warn(Some(p.at), &p.label, None, "no [[rule]] or path rule uses this pool".into());
        }
    }
    for (i, s) in raw.settings.iter().enumerate() {
        if s.name.is_some() && !targets.iter().any(|t| t.settings.0 == i) {
            d.warn(Some(s.at), &s.label, None, "no [[rule]] or path rule uses these settings".into());
        }
    }
    for (i, r) in raw.redirects.iter().enumerate() {
        let used = rules.iter().any(|rule| {
            rule.kind
                == crate::routing::RuleKind::Basic(crate::routing::Action::Redirect(crate::routing::RedirectId(i)))
        }) || url_path_maps.iter().any(|m| {
            m.default == crate::routing::Action::Redirect(crate::routing::RedirectId(i))
                || m.path_rules
                    .iter()
                    .any(|p| p.action == crate::routing::Action::Redirect(crate::routing::RedirectId(i)))
        });
        if r.name.is_some() && !used {
            d.warn(Some(r.at), &r.label, None, "no [[rule]] or path rule uses this redirect".into());
        }
    }
    // Priorities order the rules of listeners sharing an address: all of
    // them or none, or the order would be half explicit, half implicit.
    for g in crate::model::group_by_socket(&listeners) {
        let rules_here: Vec<&Rule> = rules.iter().filter(|r| g.contains(&r.listener.0)).collect();
        let with = rules_here.iter().filter(|r| r.priority.is_some()).count();
        if with > 0 && with < rules_here.len() {
            for r in rules_here.iter().filter(|r| r.priority.is_none()) {
                let raw_rule = raw.rules.iter().find(|x| x.name.as_deref() == Some(&r.name));
                d.error(
                    raw_rule.map(|x| x.at),
                    raw_rule.map_or("[[rule]]", |x| x.label.as_str()),
                    Some("priority"),
                    format!(
                        "other rules on {} have a priority: give every rule of listeners sharing an address a priority, or none",
                        listeners[r.listener.0].listen
                    ),
                );
            }
        }
    }
    // min_servers as large as a pool keeps every server of it in rotation:
    // its probes could never take one out.
    let mut warned: Vec<(PoolId, ProbeId)> = Vec::new();
    for t in &targets {
        let Some(pid) = settings[t.settings.0].probe else { continue };
        let (probe, pool, raw_probe) = (&probes[pid.0], &pools[t.pool.0], &raw.probes[pid.0]);
        let n = pool.servers.len();
        if n == 0 || (probe.min_servers as usize) < n || warned.contains(&(t.pool, pid)) {
            continue;
        }
        warned.push((t.pool, pid));
        d.warn(
            Some(raw_probe.min_servers_at),
            &raw_probe.label,
            Some("min_servers"),
            format!(
                "{} is at least the {n} server{} of backend pool \"{}\": all of them stay in rotation whatever their probes say",
                probe.min_servers,
                if n == 1 { "" } else { "s" },
                pool.name
            ),
        );
    }
    for (i, p) in raw.probes.iter().enumerate() {
        if p.name.is_some() && !settings.iter().any(|s| s.probe == Some(ProbeId(i))) {
            d.warn(Some(p.at), &p.label, None, "no [[backend_http_settings]] uses this probe".into());
        }
    }
    if raw.rules.is_empty() {
        d.warn(None, "file", None, "no [[rule]] is defined: the gateway serves nothing".into());
    }

    let gateway = gateway?;
    if let Some(a) = gateway.admin_listen
        && !a.ip().is_loopback()
    {
        d.warn(
            None,
            "[gateway]",
            Some("admin_listen"),
            format!("the admin API on {a} is reachable beyond this host; it can reload the configuration"),
        );
    }

    Some(Config {
        source: source.to_path_buf(),
        gateway,
        listeners,
        pools,
        settings,
        probes,
        rules,
        targets,
        url_path_maps,
        redirects,
        rewrite_rule_sets,
        warnings: d.warnings.clone(),
    })
}

/// A probe interval or time-out that is not a whole number of seconds
/// (`"100ms"`, `"1500ms"`): refused, as Application Gateway v2 refuses it,
/// unless `[gateway] allow_subsecond_timers = true`, and then warned about
/// (so a test setting never reaches production unnoticed).
fn check_probe_timer(d: &mut Diags, label: &str, field: &str, v: Duration, at: usize, allowed: bool) {
    if v.subsec_nanos() == 0 {
        return;
    }
    let shown = crate::units::fmt_duration(v);
    if allowed {
        d.warn(
            Some(at),
            label,
            Some(field),
            format!(
                "{shown} is not a whole number of seconds (Application Gateway v2 takes 1 to 86400 s); accepted because [gateway] allow_subsecond_timers = true"
            ),
        );
    } else {
        d.error(
            Some(at),
            label,
            Some(field),
            format!(
                "{shown} is not a whole number of seconds: Application Gateway v2 takes 1 to 86400 s; for sub-second probes (tests, labs) set [gateway] allow_subsecond_timers = true"
            ),
        );
    }
}

/// A custom probe against the backend HTTP settings that use it: the same
/// protocol (Application Gateway v2 refuses an https probe on http settings
/// and the reverse), and a time-out no longer than the settings' request
/// time-out (a warning: a server too slow for requests would pass its probe).
fn check_probe_fits_settings(
    d: &mut Diags,
    s: &crate::load::RawSettings,
    p: &crate::load::RawProbe,
    request_timeout: Duration,
) {
    let at = s.probe.as_ref().map_or(s.at, |(_, at)| *at);
    let probe_name = p.name.as_deref().unwrap_or("?");
    let (probe_protocol, settings_protocol) =
        (p.protocol.unwrap_or(Protocol::Http), s.protocol.unwrap_or(Protocol::Http));
    if probe_protocol != settings_protocol {
        d.error(
            Some(at),
            &s.label,
            Some("probe"),
            format!(
                "probe \"{probe_name}\" uses protocol {probe_protocol} but these settings use {settings_protocol}: a probe must use the protocol of every [[backend_http_settings]] that uses it (set `protocol = \"{settings_protocol}\"` in the probe, or use another probe)"
            ),
        );
    }
    let timeout = p.timeout.unwrap_or(Probe::default_probe().timeout);
    if timeout > request_timeout {
        let settings_name = s.name.as_deref().unwrap_or("?");
        d.warn(
            Some(p.timeout_at),
            &p.label,
            Some("timeout"),
            format!(
                "the time-out ({}) is longer than request_timeout ({}) of [[backend_http_settings]] \"{settings_name}\", which uses this probe: a server too slow to answer requests still passes its probe",
                crate::units::fmt_duration(timeout),
                crate::units::fmt_duration(request_timeout)
            ),
        );
    }
}

fn resolve_gateway(raw: Option<crate::load::RawGateway>, d: &mut Diags) -> Option<Gateway> {
    let defaults = Gateway {
        workers: 0,
        worker_cpus: Vec::new(),
        prober_cpu: None,
        admin_listen: Some(([127, 0, 0, 1], 9901).into()),
        recent_window: Duration::from_secs(300),
        drain_timeout: Duration::from_secs(30),
        shutdown_delay: Duration::ZERO,
        dns_refresh: Duration::from_secs(60),
        watch_config: false,
        error_detail: ErrorDetail::Public,
        trusted_proxies: None,
        allow_trace: false,
        unknown_version_status: 400,
        log_format: LogFormat::Text,
        watch_interval: Duration::from_secs(2),
        access_log: AccessLog::Stdout,
        access_log_format: AccessLogFormat::Ringgate,
        limits: Limits {
            max_request_head: 16 * 1024,
            max_headers: 100,
            max_uri: 8 * 1024,
            max_request_body: 100 << 20,
            max_connections_per_worker: 65_536,
            client_keepalive_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
        },
        io_uring: IoUringTuning { entries: 1024, coop_taskrun: true, defer_taskrun: true, multishot_recv: true },
        splice: SpliceSettings { enabled: true, min_body: DEFAULT_SPLICE_MIN_BODY, pipe_size: 256 * 1024 },
        http2: Http2Settings {
            max_concurrent_streams: 100,
            initial_stream_window: 65_535,
            initial_connection_window: 1 << 20,
            max_frame_size: 16_384,
        },
        error_pages: Vec::new(),
        allow_subsecond_timers: false,
        unprobed_servers: UnprobedServers::Serve,
    };
    let Some(r) = raw else { return Some(defaults) };
    let l = &defaults.limits;
    let limits = Limits {
        max_request_head: r.max_request_head.map_or(l.max_request_head, |n| n as usize),
        max_headers: r.max_headers.map_or(l.max_headers, |n| n as usize),
        max_uri: r.max_uri.map_or(l.max_uri, |n| n as usize),
        max_request_body: r.max_request_body.unwrap_or(l.max_request_body),
        max_connections_per_worker: r.max_connections_per_worker.map_or(l.max_connections_per_worker, |n| n as usize),
        client_keepalive_timeout: r.client_keepalive_timeout.unwrap_or(l.client_keepalive_timeout),
        header_read_timeout: r.header_read_timeout.unwrap_or(l.header_read_timeout),
    };
    if limits.max_uri > limits.max_request_head {
        d.warn(
            None,
            "[gateway.limits]",
            Some("max_uri"),
            format!(
                "max_uri ({}) exceeds max_request_head ({}): long URIs are answered 431, not 414",
                limits.max_uri, limits.max_request_head
            ),
        );
    }
    let workers = r.workers.unwrap_or(defaults.workers);
    if !r.worker_cpus.is_empty() && workers != 0 && r.worker_cpus.len() < workers {
        d.error(
            Some(r.admin_at),
            "[gateway]",
            Some("worker_cpus"),
            format!("lists {} CPUs for {workers} workers: give one CPU per worker", r.worker_cpus.len()),
        );
    }
    let access_log = match r.access_log.as_deref() {
        None => defaults.access_log,
        Some("off") => AccessLog::Off,
        Some("stdout") | Some("-") => AccessLog::Stdout,
        // Relative to the configuration file, as certificates are.
        Some(p) => AccessLog::File(d.base.join(p)),
    };
    Some(Gateway {
        workers,
        worker_cpus: r.worker_cpus,
        prober_cpu: r.prober_cpu,
        admin_listen: r.admin_listen.unwrap_or(defaults.admin_listen),
        recent_window: r.recent_window.unwrap_or(defaults.recent_window),
        drain_timeout: r.drain_timeout.unwrap_or(defaults.drain_timeout),
        shutdown_delay: r.shutdown_delay.unwrap_or(defaults.shutdown_delay),
        dns_refresh: r.dns_refresh.unwrap_or(defaults.dns_refresh),
        watch_config: r.watch_config.unwrap_or(defaults.watch_config),
        error_detail: r.error_detail.unwrap_or(defaults.error_detail),
        trusted_proxies: r.trusted_proxies,
        allow_trace: r.allow_trace.unwrap_or(defaults.allow_trace),
        unknown_version_status: r.unknown_version_status.unwrap_or(defaults.unknown_version_status),
        log_format: r.log_format.unwrap_or(defaults.log_format),
        watch_interval: r.watch_interval.unwrap_or(defaults.watch_interval),
        access_log,
        access_log_format: r.access_log_format.unwrap_or(defaults.access_log_format),
        limits,
        io_uring: IoUringTuning {
            entries: r.io_uring_entries.map_or(defaults.io_uring.entries, |n| n as u32),
            coop_taskrun: r.coop_taskrun.unwrap_or(defaults.io_uring.coop_taskrun),
            defer_taskrun: r.defer_taskrun.unwrap_or(defaults.io_uring.defer_taskrun),
            multishot_recv: r.multishot_recv.unwrap_or(defaults.io_uring.multishot_recv),
        },
        splice: SpliceSettings {
            enabled: r.splice_enabled.unwrap_or(defaults.splice.enabled),
            min_body: r.splice_min_body.unwrap_or(defaults.splice.min_body),
            pipe_size: r.splice_pipe_size.map_or(defaults.splice.pipe_size, |n| n as u32),
        },
        http2: Http2Settings {
            max_concurrent_streams: r
                .http2_max_concurrent_streams
                .map_or(defaults.http2.max_concurrent_streams, |n| n as u32),
            initial_stream_window: r
                .http2_initial_stream_window
                .map_or(defaults.http2.initial_stream_window, |n| n as u32),
            initial_connection_window: r
                .http2_initial_connection_window
                .map_or(defaults.http2.initial_connection_window, |n| n as u32),
            max_frame_size: r.http2_max_frame_size.map_or(defaults.http2.max_frame_size, |n| n as u32),
        },
        error_pages: r.error_pages,
        allow_subsecond_timers: r.allow_subsecond_timers.unwrap_or(defaults.allow_subsecond_timers),
        unprobed_servers: r.unprobed_servers.unwrap_or(defaults.unprobed_servers),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_rfc1123() {
        assert_eq!(parse_host_name("App.Example.com."), Ok("app.example.com".into()));
        assert!(parse_host_name("my_service.internal").is_ok());
        assert!(parse_host_name("-bad.example").is_err());
        assert!(parse_host_name("a..b").is_err());
        assert!(parse_host_name("10.0.0.300").is_err());
        assert!(parse_host_name("has space").is_err());
        assert!(parse_host_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn server_addresses_in_every_form() {
        let a = parse_server_address("10.0.0.10").unwrap();
        assert_eq!(a.host, ServerHost::Ip("10.0.0.10".parse().unwrap()));
        assert_eq!(a.port, None);
        let a = parse_server_address("10.0.0.10:8080").unwrap();
        assert_eq!(a.port, Some(8080));
        let a = parse_server_address("[::1]:8080").unwrap();
        assert_eq!(a.host, ServerHost::Ip("::1".parse().unwrap()));
        assert_eq!(a.port, Some(8080));
        let a = parse_server_address("::1").unwrap();
        assert_eq!(a.port, None);
        let a = parse_server_address("App.Internal:8081").unwrap();
        assert_eq!(a.host, ServerHost::Name("app.internal".into()));
        assert_eq!(a.port, Some(8081));
        assert!(parse_server_address("10.0.0.10:0").is_err());
        assert!(parse_server_address("10.0.0.10:99999").is_err());
        assert!(parse_server_address("not an address").is_err());
        assert!(parse_server_address("::1:80").is_ok()); // an IPv6 address, no port
        assert!(parse_server_address("[::1").is_err());
    }

    #[test]
    fn host_patterns() {
        assert_eq!(parse_host_pattern("*.Example.com"), Ok(HostPattern::Wildcard(".example.com".into())));
        assert_eq!(parse_host_pattern("a.example.com"), Ok(HostPattern::Exact("a.example.com".into())));
        assert_eq!(parse_host_pattern("A.*.com"), Ok(HostPattern::Glob("a.*.com".into())));
        assert_eq!(parse_host_pattern("api-?.example.*"), Ok(HostPattern::Glob("api-?.example.*".into())));
        assert_eq!(parse_host_pattern("*.*.example.com"), Ok(HostPattern::Glob("*.*.example.com".into())));
        assert!(parse_host_pattern("*").unwrap_err().contains("basic listener"));
        assert!(parse_host_pattern("a b.*").unwrap_err().contains("not a host name pattern"));
    }

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("200-399"), Ok(200..=399));
        assert_eq!(parse_status_range("204"), Ok(204..=204));
        assert!(parse_status_range("399-200").is_err());
        assert!(parse_status_range("99").is_err());
        assert!(parse_status_range("abc").is_err());
    }
}
