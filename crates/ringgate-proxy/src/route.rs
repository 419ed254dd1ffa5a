//! Routing a request on one socket to a rule: the listeners sharing the
//! socket's address are matched against the request's Host, exact names
//! first, then wildcards (longest suffix first), then the basic listener.

use ringgate_config::HostPattern;

/// The listeners of one socket, ready for matching.
#[derive(Debug, Clone, Default)]
pub struct HostRoutes {
    /// (lower-case host, rule index)
    exact: Vec<(Box<[u8]>, usize)>,
    /// (lower-case ".suffix", rule index), longest first.
    wildcard: Vec<(Box<[u8]>, usize)>,
    basic: Option<usize>,
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
            }
        }
        self.wildcard.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    }

    /// Only a basic listener: Host need not even be looked at.
    #[inline]
    pub fn basic_only(&self) -> Option<usize> {
        if self.exact.is_empty() && self.wildcard.is_empty() { self.basic } else { None }
    }

    /// The rule for a request whose Host (or absolute-form authority) is
    /// `host`, port included or not.
    pub fn route(&self, host: Option<&[u8]>) -> Option<usize> {
        if let Some(r) = self.basic_only() {
            return Some(r);
        }
        let Some(host) = host.map(strip_port) else { return self.basic };
        let host = host.strip_suffix(b".").unwrap_or(host);
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
        self.basic
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &[u8]) -> &[u8] {
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
}
