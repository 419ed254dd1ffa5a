//! The request `ringgate route` asks about, read from the command line: a
//! URL (`http://host:port/path?query`) or a path (`/path?query`), a Host,
//! a method and headers. Anything the gateway's parser would refuse, or that
//! is not what a client could send, is an error of one line: never a panic.

use std::net::{IpAddr, Ipv6Addr};

use ringgate_config::Protocol;

/// The URL, split as a client would send it: the authority becomes Host,
/// the rest the origin-form target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUrl {
    /// `None` for a bare path.
    pub scheme: Option<Protocol>,
    /// `host[:port]` as written, the Host header a client sends.
    pub authority: Option<String>,
    /// The host without its port (an IPv6 literal keeps its brackets).
    pub host: Option<String>,
    /// The port written, or the scheme's default.
    pub port: Option<u16>,
    /// Whether `port` was written (not the scheme's default).
    pub explicit_port: bool,
    /// Path and query, as the request line carries them.
    pub target: String,
    /// A `#fragment` was given: clients never send it, so it was left out.
    pub fragment_dropped: bool,
}

/// Parses the URL argument.
pub fn parse(url: &str) -> Result<RequestUrl, String> {
    if url.is_empty() {
        return Err("the URL is empty: give http://host[:port]/path or a path starting with '/'".into());
    }
    check_bytes("the URL", url)?;
    let (url, fragment_dropped) = match url.split_once('#') {
        Some((u, _)) => (u, true),
        None => (url, false),
    };
    let lower = url.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("http://") {
        (Protocol::Http, &url[7..])
    } else if lower.starts_with("https://") {
        (Protocol::Https, &url[8..])
    } else if let Some((s, _)) = url.split_once("://") {
        return Err(format!("only http:// and https:// URLs reach a listener (got \"{s}://\")"));
    } else if url.starts_with('/') {
        let target = url.to_string();
        check_path(&target)?;
        return Ok(RequestUrl {
            scheme: None,
            authority: None,
            host: None,
            port: None,
            explicit_port: false,
            target,
            fragment_dropped,
        });
    } else {
        return Err(format!(
            "\"{url}\" is neither a URL (http://host[:port]/path) nor a path (it must start with '/')"
        ));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    if authority.contains('@') {
        return Err("user information (\"user@\") in the URL is never sent to a gateway: leave it out".into());
    }
    let (host, port) = split_authority(authority)?;
    let explicit_port = port.is_some();
    let port = port.unwrap_or(match scheme {
        Protocol::Http => 80,
        Protocol::Https => 443,
    });
    let target = match path.chars().next() {
        None => "/".to_string(),
        Some('?') => format!("/{path}"),
        Some(_) => path.to_string(),
    };
    check_path(&target)?;
    Ok(RequestUrl {
        scheme: Some(scheme),
        authority: Some(authority.to_string()),
        host: Some(host),
        port: Some(port),
        explicit_port,
        target,
        fragment_dropped,
    })
}

/// `host[:port]` → host and port; brackets around an IPv6 address kept.
fn split_authority(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let Some((ip, after)) = inner.split_once(']') else {
            return Err(format!("host \"{authority}\": '[' without a closing ']'"));
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("host \"[{ip}]\" is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| format!("unexpected \"{p}\" after \"[{ip}]\""))?),
        };
        (format!("[{ip}]"), port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    check_host_name(&host)?;
    // "host:" with an empty port means the scheme's default (RFC 3986 §3.2.3).
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("port \"{p}\" is not a number from 1 to 65535")),
    }
}

fn check_host_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.starts_with('[') {
        return Ok(());
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        return Err(format!("host \"{host}\" is not a host name or an IP address"));
    }
    Ok(())
}

/// No space, control or non-ASCII character anywhere: a client must
/// percent-encode them, and the gateway's parser refuses them.
fn check_bytes(what: &str, s: &str) -> Result<(), String> {
    for (i, c) in s.char_indices() {
        let problem = match c {
            ' ' => "a space (write it as %20)",
            c if c.is_ascii_control() => "a control character",
            c if !c.is_ascii() => "a non-ASCII character (percent-encode it)",
            _ => continue,
        };
        return Err(format!("{what} contains {problem} at position {}: {:?}", i + 1, s));
    }
    Ok(())
}

/// Every `%` of the path is followed by two hex digits: a malformed escape
/// could be read two ways by the gateway and the server (a path-based rule
/// answers it 400).
fn check_path(target: &str) -> Result<(), String> {
    let (path, _) = target.split_once('?').unwrap_or((target, ""));
    let b = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
        if !(hex(i + 1) && hex(i + 2)) {
            let bad: String = path[i..].chars().take(3).collect();
            return Err(format!(
                "invalid percent-encoding \"{bad}\" in the path \"{path}\": '%' must be followed by two hex digits"
            ));
        }
    }
    Ok(())
}

/// `--host`: what a client may put in Host.
pub fn check_host_header(host: &str) -> Result<(), String> {
    check_bytes("--host", host)?;
    if host.is_empty() {
        return Err("--host is empty".into());
    }
    split_authority(host).map(|_| ()).map_err(|e| format!("--host: {e}"))
}

/// `--method`: an HTTP token.
pub fn check_method(m: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if m.is_empty() || !m.bytes().all(token) {
        return Err(format!("--method \"{}\" is not an HTTP method (a token such as GET or POST)", m.escape_debug()));
    }
    Ok(())
}

/// `--header "Name: value"`.
pub fn parse_header(h: &str) -> Result<(String, String), String> {
    let Some((name, value)) = h.split_once(':') else {
        return Err(format!("--header \"{}\": write it as \"Name: value\"", h.escape_debug()));
    };
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("--header \"{}\": \"{}\" is not a header name", h.escape_debug(), name.escape_debug()));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!("--header {name}: the value contains a control character"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// The URL's host as an IP address, when it is one.
pub fn host_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_urls_split_into_host_and_target() {
        let u = parse("http://Shop.Example:8080/a/b?x=1#top").unwrap();
        assert_eq!(u.scheme, Some(Protocol::Http));
        assert_eq!(u.authority.as_deref(), Some("Shop.Example:8080"));
        assert_eq!((u.host.as_deref(), u.port, u.explicit_port), (Some("Shop.Example"), Some(8080), true));
        assert_eq!(u.target, "/a/b?x=1");
        assert!(u.fragment_dropped);
        let u = parse("https://[::1]?q").unwrap();
        assert_eq!((u.host.as_deref(), u.port, u.explicit_port), (Some("[::1]"), Some(443), false));
        assert_eq!(u.target, "/?q");
        assert_eq!(parse("HTTP://h").unwrap().target, "/");
        assert_eq!(parse("http://h:/x").unwrap().port, Some(80));
        let p = parse("/images/../admin/x").unwrap();
        assert_eq!((p.scheme, p.host, p.port, p.target.as_str()), (None, None, None, "/images/../admin/x"));
    }

    #[test]
    fn bad_urls_get_one_line_errors() {
        let cases = [
            ("http://h/a b", "contains a space (write it as %20) at position 11"),
            ("/a%zz", "invalid percent-encoding \"%zz\" in the path \"/a%zz\""),
            ("/a%4", "invalid percent-encoding \"%4\""),
            ("/a\u{e9}", "a non-ASCII character"),
            ("/a\nb", "a control character"),
            ("ftp://h/", "only http:// and https:// URLs"),
            ("example.com/x", "neither a URL"),
            ("http:///x", "has no host"),
            ("http://u@h/", "user information"),
            ("http://h:0/", "port \"0\" is not a number from 1 to 65535"),
            ("http://h:99999/", "port \"99999\""),
            ("http://h:+80/", "port \"+80\""),
            ("http://[::1/", "without a closing ']'"),
            ("http://[zz]/", "is not an IPv6 address"),
            ("http://a:1:2/", "port \"1:2\""),
            ("http://a<b/", "is not a host name"),
            ("", "the URL is empty"),
        ];
        for (url, want) in cases {
            let e = parse(url).unwrap_err();
            assert!(e.contains(want), "{url:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        // Escapes in the query are the server's business.
        assert!(parse("/a?q=100%").is_ok());
    }

    #[test]
    fn host_method_and_headers() {
        assert!(check_host_header("shop.example:8080").is_ok());
        assert!(check_host_header("a b").unwrap_err().contains("a space"));
        assert!(check_host_header("h:x").unwrap_err().contains("port"));
        assert!(check_method("PATCH").is_ok());
        assert!(check_method("GE T").is_err());
        assert_eq!(parse_header("X-A:  1 ").unwrap(), ("X-A".into(), "1".into()));
        assert!(parse_header("X-A").is_err());
        assert!(parse_header("X A: 1").is_err());
        assert_eq!(host_ip("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(host_ip("shop"), None);
    }
}
