//! The routing model, on Application Gateway's: a rule is *basic* (one
//! action for every request of its listener) or *path-based* (a URL path map:
//! ordered path rules, each with its own action, and a default). An action
//! forwards to a [`Target`] (a backend pool through backend HTTP settings) or
//! answers with a [`Redirect`].
//!
//! Match order, documented for operators: path rules are tried in the order
//! the file lists them, and within a rule its paths in order; the first path
//! that matches wins; the map's default takes what none matched. A path
//! ending in `*` matches by prefix, any other exactly; matching ignores case
//! and the query string, and runs on the normalized path (see
//! `ringgate_http::path`), so `/images/../admin` is matched as `/admin`. A
//! later path that an earlier one already covers could never match, and is
//! refused at load, as is the same path twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{ListenerId, PoolId, RuleId, SettingsId};

macro_rules! id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub usize);
    };
}
id!(/// Index into [`crate::Config::targets`].
    TargetId);
id!(/// Index into [`crate::Config::url_path_maps`].
    UrlPathMapId);
id!(/// Index into [`crate::Config::redirects`].
    RedirectId);
id!(/// Index into [`crate::Config::rewrite_rule_sets`].
    RewriteSetId);

/// Where requests are forwarded: a pool through settings, on behalf of one
/// rule (and one of its path rules). Health, metrics and the doctor's
/// verdicts are kept per target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub rule: RuleId,
    /// The path rule, for a path-based rule's non-default target.
    pub path_rule: Option<String>,
    pub pool: PoolId,
    pub settings: SettingsId,
    /// Rewrites applied to requests forwarded to this target.
    pub rewrite_set: Option<RewriteSetId>,
    /// `rule` or `rule/path_rule`, as operators see it.
    pub display: String,
}

/// What a rule or path rule does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward(TargetId),
    Redirect(RedirectId),
}

/// How a rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Every request of the listener gets this action.
    Basic(Action),
    /// The request path picks a path rule of this map.
    PathBased(UrlPathMapId),
}

/// `[[url_path_map]]`: ordered path rules and a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPathMap {
    pub name: String,
    pub path_rules: Vec<PathRule>,
    /// For requests no path rule matches.
    pub default: Action,
}

/// `[[url_path_map.path_rule]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub name: String,
    pub paths: Vec<PathPattern>,
    pub action: Action,
}

/// One entry of a path rule's `paths`, normalized and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathPattern {
    /// `/images/logo.png`: this path only.
    Exact(String),
    /// `/images/*`, stored as `/images/`: every path starting with it.
    Prefix(String),
}

impl PathPattern {
    /// Parses a `paths` entry: starts with `/`, at most one `*`, at the end;
    /// no query, fragment, spaces or control characters.
    pub fn parse(s: &str) -> Result<PathPattern, String> {
        if !s.starts_with('/') {
            return Err(format!("\"{s}\" must start with '/'"));
        }
        if let Some(i) = s.find('*')
            && i != s.len() - 1
        {
            return Err(format!("\"{s}\": '*' may only be the last character (a prefix match)"));
        }
        if s.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#') {
            return Err(format!(
                "\"{}\" contains a space, a control character, '?' or '#' (paths are matched without the query)",
                s.escape_debug()
            ));
        }
        let (body, prefix) = match s.strip_suffix('*') {
            Some(b) => (b, true),
            None => (s, false),
        };
        let normal = ringgate_http::path::normalize(body.as_bytes()).map_err(|e| format!("\"{s}\": {}", e.reason()))?;
        let normal = String::from_utf8(normal).map_err(|_| format!("\"{s}\" is not valid UTF-8"))?;
        if normal != body {
            return Err(format!(
                "\"{s}\" is not in normal form (write \"{normal}{}\": requests are matched after dot segments and escapes of unreserved characters are resolved)",
                if prefix { "*" } else { "" }
            ));
        }
        let lower = normal.to_ascii_lowercase();
        Ok(if prefix { PathPattern::Prefix(lower) } else { PathPattern::Exact(lower) })
    }

    /// Does a normalized, lower-cased request path match?
    pub fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathPattern::Exact(p) => p.as_bytes() == path,
            PathPattern::Prefix(p) => path.starts_with(p.as_bytes()),
        }
    }

    /// Every path `other` matches, this one matches too (so `other`, listed
    /// after it, could never be reached).
    pub fn covers(&self, other: &PathPattern) -> bool {
        match (self, other) {
            (PathPattern::Exact(a), PathPattern::Exact(b)) => a == b,
            (PathPattern::Exact(_), PathPattern::Prefix(_)) => false,
            (PathPattern::Prefix(a), PathPattern::Exact(b) | PathPattern::Prefix(b)) => b.starts_with(a.as_str()),
        }
    }
}

impl std::fmt::Display for PathPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathPattern::Exact(p) => f.write_str(p),
            PathPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// `[[redirect]]`: Application Gateway's redirect configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub name: String,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    pub target: RedirectTarget,
    /// Append the request's path (default true).
    pub include_path: bool,
    /// Append the request's query string (default true).
    pub include_query_string: bool,
}

/// Where a redirect sends the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectTarget {
    /// Another listener of this gateway: its protocol and port, the request's
    /// host.
    Listener(ListenerId),
    /// An absolute `http://` or `https://` URL, without a fragment.
    Url(String),
}

/// The redirect `type` names, as Application Gateway spells them, with 308.
pub const REDIRECT_TYPES: &[(&str, u16)] =
    &[("permanent", 301), ("found", 302), ("see_other", 303), ("temporary", 307), ("permanent_redirect", 308)];

/// `[[rewrite_rule_set]]`: compiled at load (see `ringgate_rewrite`).
#[derive(Debug, Clone)]
pub struct RewriteRuleSet {
    pub name: String,
    pub set: Arc<ringgate_rewrite::RuleSet>,
}

/// A custom error page: the operator's body for one status the gateway
/// answers itself, read at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub status: u16,
    pub path: PathBuf,
    pub content_type: String,
    pub body: Arc<[u8]>,
}

/// The statuses a custom error page may replace.
pub const ERROR_PAGE_STATUSES: &[u16] = &[400, 403, 404, 405, 408, 413, 431, 500, 502, 503, 504];

/// Largest error page accepted (Application Gateway v2's limit).
pub const ERROR_PAGE_MAX: usize = 1024 * 1024;

/// `connection_draining` of backend HTTP settings: how long a server being
/// removed (by a reload, or by turning unhealthy) keeps its in-flight and
/// affinity-bound requests before it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionDraining {
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        assert_eq!(PathPattern::parse("/images/*"), Ok(PathPattern::Prefix("/images/".into())));
        assert_eq!(PathPattern::parse("/API/V1"), Ok(PathPattern::Exact("/api/v1".into())));
        assert_eq!(PathPattern::parse("/*"), Ok(PathPattern::Prefix("/".into())));
        assert!(PathPattern::parse("images/*").unwrap_err().contains("must start with '/'"));
        assert!(PathPattern::parse("/a*/b").unwrap_err().contains("last character"));
        assert!(PathPattern::parse("/a?x=1").unwrap_err().contains("'?'"));
        assert!(PathPattern::parse("/a/../b").unwrap_err().contains("write \"/b\""));
        assert!(PathPattern::parse("/%zz").unwrap_err().contains("percent-encoding"));
    }

    #[test]
    fn matching_and_covering() {
        let images = PathPattern::parse("/images/*").unwrap();
        assert!(images.matches(b"/images/a.png"));
        assert!(images.matches(b"/images/"));
        assert!(!images.matches(b"/images"));
        assert!(!images.matches(b"/imagesx"));
        let exact = PathPattern::parse("/images/logo.png").unwrap();
        assert!(images.covers(&exact));
        assert!(!exact.covers(&images));
        assert!(images.covers(&PathPattern::parse("/images/big/*").unwrap()));
        assert!(!PathPattern::parse("/images/big/*").unwrap().covers(&images));
        assert!(PathPattern::parse("/*").unwrap().covers(&images));
    }
}
