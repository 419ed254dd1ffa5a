//! Routing a request to what serves it, in two steps.
//!
//! 1. **Host → rule**, per socket: the listeners sharing the socket's
//!    address are matched against the request's Host. Without priorities:
//!    exact names first, then `*.suffix` wildcards (longest first), then
//!    other `*`/`?` patterns in file order, then the basic listener. With
//!    priorities (Application Gateway v2): the rules in ascending priority,
//!    the first whose listener matches (a basic listener matches any host).
//! 2. **Rule → action**: a basic rule has one; a path-based rule matches the
//!    request path against its path rules in order (see
//!    `ringgate_config::routing` for the match rules), else its default.
//!    An action forwards to a target or answers with a redirect.
//!
//! A basic rule costs one extra match on an enum compared with no routing
//! at all; the path is looked at only by path-based rules.

use ringgate_config::{Action, Config, HostPattern, PathPattern, RedirectTarget, RuleKind};
use ringgate_http::path::{is_normal, normalize_into, split_query};

/// One host pattern, ready for matching bytes.
#[derive(Debug, Clone)]
enum HostMatch {
    Exact(Box<[u8]>),
    /// `.suffix`
    Suffix(Box<[u8]>),
    Glob(Box<[u8]>),
    Any,
}

impl HostMatch {
    fn of(p: &HostPattern) -> HostMatch {
        match p {
            HostPattern::Exact(n) => HostMatch::Exact(n.as_bytes().into()),
            HostPattern::Wildcard(s) => HostMatch::Suffix(s.as_bytes().into()),
            HostPattern::Glob(g) => HostMatch::Glob(g.as_bytes().into()),
        }
    }

    fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostMatch::Exact(n) => host.eq_ignore_ascii_case(n),
            HostMatch::Suffix(s) => host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s),
            HostMatch::Glob(g) => ringgate_config::glob_match(g, host),
            HostMatch::Any => true,
        }
    }
}

/// The listeners of one socket, ready for matching.
#[derive(Debug, Clone, Default)]
pub struct HostRoutes {
    /// (lower-case host, rule index)
    exact: Vec<(Box<[u8]>, usize)>,
    /// (lower-case ".suffix", rule index), longest first.
    wildcard: Vec<(Box<[u8]>, usize)>,
    /// Other patterns, in file order.
    glob: Vec<(HostMatch, usize)>,
    basic: Option<usize>,
    /// With priorities: (priority, patterns, rule), lowest priority first.
    prioritized: Vec<(u32, Vec<HostMatch>, usize)>,
}

impl HostRoutes {
    /// Adds a listener answering `hosts` (empty: every host) with `rule`.
    pub fn add(&mut self, hosts: &[HostPattern], rule: usize) {
        if hosts.is_empty() {
            self.basic = Some(rule);
        }
        for h in hosts {
            match h {
                HostPattern::Exact(n) => self.exact.push((n.as_bytes().into(), rule)),
                HostPattern::Wildcard(s) => self.wildcard.push((s.as_bytes().into(), rule)),
                HostPattern::Glob(_) => self.glob.push((HostMatch::of(h), rule)),
            }
        }
        self.wildcard.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    }

    /// Adds a listener whose rule has a priority; once one has, the socket
    /// routes by priority alone (validation makes them all have one).
    pub fn add_prioritized(&mut self, hosts: &[HostPattern], rule: usize, priority: u32) {
        let matchers = if hosts.is_empty() { vec![HostMatch::Any] } else { hosts.iter().map(HostMatch::of).collect() };
        self.prioritized.push((priority, matchers, rule));
        self.prioritized.sort_by_key(|(p, ..)| *p);
    }

    /// Only a basic listener: Host need not even be looked at.
    #[inline]
    pub fn basic_only(&self) -> Option<usize> {
        if self.exact.is_empty() && self.wildcard.is_empty() && self.glob.is_empty() && self.prioritized.is_empty() {
            self.basic
        } else {
            None
        }
    }

    /// The rule for a request whose Host (or absolute-form authority) is
    /// `host`, port included or not.
    pub fn route(&self, host: Option<&[u8]>) -> Option<usize> {
        if let Some(r) = self.basic_only() {
            return Some(r);
        }
        let host = host.map(strip_port).map(|h| h.strip_suffix(b".").unwrap_or(h));
        if !self.prioritized.is_empty() {
            return self
                .prioritized
                .iter()
                .find(|(_, m, _)| m.iter().any(|m| matches!(m, HostMatch::Any) || host.is_some_and(|h| m.matches(h))))
                .map(|(.., r)| *r);
        }
        let Some(host) = host else { return self.basic };
        for (name, rule) in &self.exact {
            if host.eq_ignore_ascii_case(name) {
                return Some(*rule);
            }
        }
        for (suffix, rule) in &self.wildcard {
            if host.len() > suffix.len() && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix) {
                return Some(*rule);
            }
        }
        for (m, rule) in &self.glob {
            if m.matches(host) {
                return Some(*rule);
            }
        }
        self.basic
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
pub fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// What a rule or path rule does, as the data plane holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAction {
    /// Forward to this target (index into `Plan::targets`).
    Forward(usize),
    /// Answer with this redirect (index into `Plan::redirects`).
    Redirect(usize),
}

impl From<Action> for RouteAction {
    fn from(a: Action) -> RouteAction {
        match a {
            Action::Forward(t) => RouteAction::Forward(t.0),
            Action::Redirect(r) => RouteAction::Redirect(r.0),
        }
    }
}

/// One rule of the plan.
#[derive(Debug, Clone)]
pub enum RulePlan {
    Basic(RouteAction),
    PathBased(PathMapPlan),
}

/// A URL path map: (pattern, path rule index) in match order, actions per
/// path rule, and the default.
#[derive(Debug, Clone)]
pub struct PathMapPlan {
    pub name: Box<str>,
    patterns: Vec<(PathPattern, usize)>,
    /// Per path rule: its name and action.
    pub path_rules: Vec<(Box<str>, RouteAction)>,
    pub default: RouteAction,
}

/// Where path routing sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRoute {
    pub action: RouteAction,
    /// The path rule that matched (None: the default).
    pub path_rule: Option<usize>,
    /// Bytes of the normalized path the matched pattern covered (its
    /// prefix), for `override_backend_path`.
    pub matched_len: usize,
}

impl PathMapPlan {
    /// Matches an already-normalized path (no query).
    pub fn route(&self, path: &[u8]) -> PathRoute {
        for (p, rule) in &self.patterns {
            let hit = match p {
                PathPattern::Exact(e) => path.eq_ignore_ascii_case(e.as_bytes()),
                PathPattern::Prefix(pre) => {
                    path.len() >= pre.len() && path[..pre.len()].eq_ignore_ascii_case(pre.as_bytes())
                }
            };
            if hit {
                let matched_len = match p {
                    PathPattern::Exact(e) => e.len(),
                    PathPattern::Prefix(pre) => pre.len(),
                };
                return PathRoute { action: self.path_rules[*rule].1, path_rule: Some(*rule), matched_len };
            }
        }
        PathRoute { action: self.default, path_rule: None, matched_len: 0 }
    }
}

impl PathRoute {
    /// `override_backend_path`: the target a server receives for `target`
    /// (path and query as they would be forwarded) when the matched prefix
    /// of its path, `matched_len` bytes (all of it for an exact path rule,
    /// none for a basic rule or a map's default), is replaced by `over`,
    /// keeping one `/` between them; the query is kept. Written to `out`
    /// (cleared first). An associated function so that it is reachable as
    /// `ringgate_proxy::PathRoute::override_target` by `ringgate route`.
    pub fn override_target(target: &[u8], over: &[u8], matched_len: usize, out: &mut Vec<u8>) {
        out.clear();
        let (path, query) = split_query(target);
        let base = over.strip_suffix(b"/").unwrap_or(over);
        if matched_len >= path.len() && matched_len > 0 {
            out.extend_from_slice(over);
        } else {
            // A prefix ending in '/' keeps that slash on the rest.
            let from =
                if matched_len > 0 && path.get(matched_len - 1) == Some(&b'/') { matched_len - 1 } else { matched_len };
            let rest = path.get(from..).unwrap_or_default();
            out.extend_from_slice(base);
            if rest.first() != Some(&b'/') {
                out.push(b'/');
            }
            out.extend_from_slice(rest);
        }
        if let Some(q) = query {
            out.push(b'?');
            out.extend_from_slice(q);
        }
    }
}

/// A redirect, with everything but the request's own parts prepared.
#[derive(Debug, Clone)]
pub struct RedirectPlan {
    pub name: Box<str>,
    pub status: u16,
    pub target: RedirectPlanTarget,
    pub include_path: bool,
    pub include_query: bool,
}

#[derive(Debug, Clone)]
pub enum RedirectPlanTarget {
    /// `scheme://<request host>[:port]`: the port is left out when it is the
    /// scheme's default. Filled in once the listener is bound (it may be 0
    /// in the configuration).
    Listener {
        scheme: &'static str,
        port: u16,
        socket: ringgate_config::SocketKey,
    },
    Url(Box<str>),
}

impl RedirectPlan {
    /// Writes the Location value for a request with `target` (path and
    /// query as sent) and `host` (its Host, port stripped here).
    pub fn location(&self, host: Option<&[u8]>, fallback_host: &[u8], target: &[u8], out: &mut Vec<u8>) {
        let (path, query) = split_query(target);
        match &self.target {
            RedirectPlanTarget::Listener { scheme, port, .. } => {
                out.extend_from_slice(scheme.as_bytes());
                out.extend_from_slice(b"://");
                out.extend_from_slice(strip_port(host.unwrap_or(fallback_host)));
                let default = matches!((*scheme, *port), ("http", 80) | ("https", 443));
                if !default {
                    out.push(b':');
                    out.extend_from_slice(itoa::Buffer::new().format(*port).as_bytes());
                }
                if self.include_path {
                    out.extend_from_slice(if path.first() == Some(&b'/') { path } else { b"/" });
                } else {
                    out.push(b'/');
                }
            }
            RedirectPlanTarget::Url(u) => {
                // The request's path goes before the URL's own query.
                let (base, own_query) = split_query(u.as_bytes());
                if self.include_path && path.first() == Some(&b'/') {
                    out.extend_from_slice(base.strip_suffix(b"/").unwrap_or(base));
                    out.extend_from_slice(path);
                } else {
                    out.extend_from_slice(base);
                }
                if let Some(q) = own_query {
                    out.push(b'?');
                    out.extend_from_slice(q);
                }
            }
        }
        if self.include_query
            && let Some(q) = query.filter(|q| !q.is_empty())
        {
            let has_query = matches!(&self.target, RedirectPlanTarget::Url(u) if u.contains('?'));
            out.push(if has_query { b'&' } else { b'?' });
            out.extend_from_slice(q);
        }
    }
}

/// Builds the plan's rules and redirects from the configuration.
pub(crate) fn build(config: &Config) -> (Vec<RulePlan>, Vec<RedirectPlan>) {
    let rules = config
        .rules
        .iter()
        .map(|r| match r.kind {
            RuleKind::Basic(a) => RulePlan::Basic(a.into()),
            RuleKind::PathBased(m) => {
                let map = &config.url_path_maps[m.0];
                let mut patterns = Vec::new();
                for (i, pr) in map.path_rules.iter().enumerate() {
                    for p in &pr.paths {
                        patterns.push((p.clone(), i));
                    }
                }
                RulePlan::PathBased(PathMapPlan {
                    name: map.name.as_str().into(),
                    patterns,
                    path_rules: map.path_rules.iter().map(|p| (p.name.as_str().into(), p.action.into())).collect(),
                    default: map.default.into(),
                })
            }
        })
        .collect();
    let redirects = config
        .redirects
        .iter()
        .map(|r| RedirectPlan {
            name: r.name.as_str().into(),
            status: r.status,
            target: match &r.target {
                RedirectTarget::Listener(l) => {
                    let l = &config.listeners[l.0];
                    RedirectPlanTarget::Listener {
                        scheme: l.protocol.as_str(),
                        port: l.listen.port(),
                        socket: l.socket_key(),
                    }
                }
                RedirectTarget::Url(u) => RedirectPlanTarget::Url(u.as_str().into()),
            },
            include_path: r.include_path,
            include_query: r.include_query_string,
        })
        .collect();
    (rules, redirects)
}

/// The request path as path rules see it: `target` without its query,
/// normalized into `scratch` when it is not already. `Err` for a path that
/// cannot be normalized (a bad escape): answered 400.
pub fn routing_path<'a>(
    target: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<(&'a [u8], bool), ringgate_http::path::PathError> {
    let (path, _) = split_query(target);
    if path.first() != Some(&b'/') {
        // `*` (OPTIONS) and an absolute-form target without a path: the
        // root, as far as routing goes.
        return Ok((b"/", false));
    }
    if is_normal(path) {
        return Ok((path, false));
    }
    normalize_into(path, scratch)?;
    Ok((scratch.as_slice(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> HostRoutes {
        let mut r = HostRoutes::default();
        r.add(&[HostPattern::Exact("a.example.com".into())], 1);
        r.add(&[HostPattern::Wildcard(".example.com".into())], 2);
        r.add(&[HostPattern::Wildcard(".b.example.com".into())], 3);
        r
    }

    #[test]
    fn exact_then_longest_wildcard_then_basic() {
        let mut r = routes();
        assert_eq!(r.route(Some(b"A.Example.COM:8080")), Some(1));
        assert_eq!(r.route(Some(b"x.b.example.com")), Some(3));
        assert_eq!(r.route(Some(b"x.example.com.")), Some(2));
        assert_eq!(r.route(Some(b"example.com")), None);
        assert_eq!(r.route(None), None);
        r.add(&[], 9);
        assert_eq!(r.route(Some(b"other.org")), Some(9));
        assert_eq!(r.route(None), Some(9));
    }

    #[test]
    fn globs_after_wildcards_and_priorities_decide_alone() {
        let mut r = routes();
        r.add(&[HostPattern::Glob("api-?.example.*".into())], 4);
        assert_eq!(r.route(Some(b"api-1.example.org")), Some(4));
        assert_eq!(r.route(Some(b"api-1.example.com")), Some(2), "a *.suffix wildcard is tried before globs");
        assert_eq!(r.route(Some(b"api-12.example.org")), None);

        let mut p = HostRoutes::default();
        p.add_prioritized(&[], 7, 300);
        p.add_prioritized(&[HostPattern::Wildcard(".example.com".into())], 8, 200);
        p.add_prioritized(&[HostPattern::Exact("a.example.com".into())], 9, 100);
        assert_eq!(p.route(Some(b"a.example.com")), Some(9));
        assert_eq!(p.route(Some(b"b.example.com")), Some(8));
        assert_eq!(p.route(Some(b"other")), Some(7));
        assert_eq!(p.route(None), Some(7));
        // A basic listener with the lowest number wins over everything.
        p.add_prioritized(&[], 6, 1);
        assert_eq!(p.route(Some(b"a.example.com")), Some(6));
    }

    #[test]
    fn basic_only_ignores_host() {
        let mut r = HostRoutes::default();
        r.add(&[], 0);
        assert_eq!(r.basic_only(), Some(0));
        assert_eq!(r.route(Some(b"anything")), Some(0));
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port(b"h:80"), b"h");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
        assert_eq!(strip_port(b"[::1]"), b"[::1]");
        assert_eq!(strip_port(b"h"), b"h");
    }

    fn map() -> PathMapPlan {
        let p = |s: &str| PathPattern::parse(s).unwrap();
        PathMapPlan {
            name: "m".into(),
            patterns: vec![(p("/images/*"), 0), (p("/video/*"), 0), (p("/api/v1"), 1)],
            path_rules: vec![("media".into(), RouteAction::Forward(1)), ("api".into(), RouteAction::Forward(2))],
            default: RouteAction::Forward(0),
        }
    }

    #[test]
    fn path_rules_match_in_order_and_ignore_case() {
        let m = map();
        assert_eq!(m.route(b"/images/a.png").action, RouteAction::Forward(1));
        assert_eq!(m.route(b"/IMAGES/a.png").path_rule, Some(0));
        assert_eq!(m.route(b"/video/x").matched_len, "/video/".len());
        assert_eq!(m.route(b"/api/v1").action, RouteAction::Forward(2));
        assert_eq!(m.route(b"/api/v1/x").action, RouteAction::Forward(0), "exact is exact");
        assert_eq!(m.route(b"/images").action, RouteAction::Forward(0));
        assert_eq!(m.route(b"/").path_rule, None);
    }

    #[test]
    fn override_backend_path_replaces_the_matched_prefix() {
        let o = |target: &str, over: &str, matched: usize| {
            let mut out = Vec::new();
            PathRoute::override_target(target.as_bytes(), over.as_bytes(), matched, &mut out);
            String::from_utf8(out).unwrap()
        };
        // `/api/*` (matched "/api/") with "/v2/".
        assert_eq!(o("/api/users?id=7", "/v2/", 5), "/v2/users?id=7");
        assert_eq!(o("/api/", "/v2/", 5), "/v2/");
        assert_eq!(o("/api/users", "/v2", 5), "/v2/users");
        // An exact path rule: the whole path.
        assert_eq!(o("/robots.txt?x", "/static/robots.txt", 11), "/static/robots.txt?x");
        // A basic rule or a map's default: prefixed.
        assert_eq!(o("/a/b", "/base/", 0), "/base/a/b");
        assert_eq!(o("/", "/base", 0), "/base/");
    }

    #[test]
    fn routing_paths_are_normalized() {
        let mut s = Vec::new();
        assert_eq!(routing_path(b"/a/b?x=../y", &mut s).unwrap(), (&b"/a/b"[..], false));
        let mut s = Vec::new();
        assert_eq!(routing_path(b"/images/../admin?q", &mut s).unwrap(), (&b"/admin"[..], true));
        let mut s = Vec::new();
        assert_eq!(routing_path(b"/%2e%2e/admin", &mut s).unwrap(), (&b"/admin"[..], true));
        let mut s = Vec::new();
        assert!(routing_path(b"/%zz", &mut s).is_err());
        let mut s = Vec::new();
        assert_eq!(routing_path(b"*", &mut s).unwrap(), (&b"/"[..], false));
    }

    #[test]
    fn redirect_locations() {
        let key = ringgate_config::SocketKey { addr: "127.0.0.1:443".parse().unwrap(), ephemeral: None };
        let mut r = RedirectPlan {
            name: "r".into(),
            status: 301,
            target: RedirectPlanTarget::Listener { scheme: "https", port: 443, socket: key.clone() },
            include_path: true,
            include_query: true,
        };
        let loc = |r: &RedirectPlan, host: Option<&[u8]>, target: &[u8]| {
            let mut out = Vec::new();
            r.location(host, b"10.0.0.1", target, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(loc(&r, Some(b"shop.example:80"), b"/cart?id=1"), "https://shop.example/cart?id=1");
        assert_eq!(loc(&r, None, b"/"), "https://10.0.0.1/");
        r.target = RedirectPlanTarget::Listener { scheme: "https", port: 8443, socket: key };
        r.include_query = false;
        assert_eq!(loc(&r, Some(b"h"), b"/a?b"), "https://h:8443/a");
        r.include_path = false;
        assert_eq!(loc(&r, Some(b"h"), b"/a?b"), "https://h:8443/");
        r.target = RedirectPlanTarget::Url("https://new.example/".into());
        r.include_path = true;
        r.include_query = true;
        assert_eq!(loc(&r, Some(b"h"), b"/a?b=1"), "https://new.example/a?b=1");
        r.target = RedirectPlanTarget::Url("https://new.example/landing?src=old".into());
        r.include_path = false;
        assert_eq!(loc(&r, Some(b"h"), b"/a?b=1"), "https://new.example/landing?src=old&b=1");
        r.include_path = true;
        assert_eq!(loc(&r, Some(b"h"), b"/a?b=1"), "https://new.example/landing/a?src=old&b=1");
    }
}
