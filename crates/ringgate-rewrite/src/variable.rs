//! The variables conditions test and templates substitute: Application
//! Gateway's server variables, request and response headers, cookies; how
//! they are spelled in a configuration, and the [`Vars`] trait through which
//! the proxy lends their values without copying them.

use std::fmt;

/// When a variable's value is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Known when the request head has been read.
    Request,
    /// Known only once the backend's response head has arrived.
    Response,
}

/// A variable a condition can test or a template can substitute.
///
/// Header names are stored lowercase (header names are case-insensitive);
/// cookie names as configured (cookie names are case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Variable {
    /// `add_x_forwarded_for_proxy`: the client's X-Forwarded-For with
    /// `client_ip` appended (`IP1, IP2`), or `client_ip` alone.
    AddXForwardedForProxy,
    /// `ciphers_used`: the TLS cipher suite of the client connection.
    CiphersUsed,
    /// `client_certificate_*` (mutual TLS): the client certificate's field
    /// (see [`CertField`]); absent on a connection without one.
    ClientCertificate(CertField),
    /// `client_ip`: the address of the peer that connected to the gateway.
    ClientIp,
    /// `client_port`: the peer's port.
    ClientPort,
    /// `host`: the host from the request line, else the Host header, else
    /// the listener's host name; without the port.
    Host,
    /// `http_method` (also `request_method`): GET, POST, ...
    HttpMethod,
    /// `http_status`: the backend's response status code. Response phase.
    HttpStatus,
    /// `http_version`: `HTTP/1.0` or `HTTP/1.1`.
    HttpVersion,
    /// `query_string` (also `request_query`): what follows `?` in the
    /// request target, without the `?`.
    QueryString,
    /// `request_scheme`: `http` or `https`.
    RequestScheme,
    /// `request_uri`: the original request target, path and query.
    RequestUri,
    /// `server_port`: the listener's port.
    ServerPort,
    /// `ssl_connection_protocol`: the TLS version of the client connection.
    SslConnectionProtocol,
    /// `ssl_enabled`: `on` on a TLS listener, absent otherwise.
    SslEnabled,
    /// `uri_path`: the request target's path, without the query.
    UriPath,
    /// `cookie_<name>`: the value of the request cookie `<name>`
    /// (see [`cookie_value`]).
    Cookie(Box<str>),
    /// `http_req_<name>`: a request header (lowercase name).
    RequestHeader(Box<str>),
    /// `http_resp_<name>`: a response header (lowercase name). Response phase.
    ResponseHeader(Box<str>),
}

/// The parts of a client certificate the `client_certificate_*` variables
/// give, as Application Gateway v2 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertField {
    /// `client_certificate`: the certificate in PEM, URL-encoded (a header
    /// cannot hold its line breaks; nginx's `$ssl_client_escaped_cert`).
    Pem,
    EndDate,
    Fingerprint,
    Issuer,
    Serial,
    StartDate,
    Subject,
    /// `SUCCESS`, `FAILED:<reason>` or `NONE`.
    Verification,
}

/// Server variables by name. Aliases map to the same variant: the nginx
/// spelling `request_method` is accepted for `http_method`, and AppGW lists
/// `request_query` beside `query_string` for the same value.
const SERVER: &[(&str, Variable)] = &[
    ("add_x_forwarded_for_proxy", Variable::AddXForwardedForProxy),
    ("ciphers_used", Variable::CiphersUsed),
    ("client_ip", Variable::ClientIp),
    ("client_port", Variable::ClientPort),
    ("client_certificate", Variable::ClientCertificate(CertField::Pem)),
    ("client_certificate_end_date", Variable::ClientCertificate(CertField::EndDate)),
    ("client_certificate_fingerprint", Variable::ClientCertificate(CertField::Fingerprint)),
    ("client_certificate_issuer", Variable::ClientCertificate(CertField::Issuer)),
    ("client_certificate_serial", Variable::ClientCertificate(CertField::Serial)),
    ("client_certificate_start_date", Variable::ClientCertificate(CertField::StartDate)),
    ("client_certificate_subject", Variable::ClientCertificate(CertField::Subject)),
    ("client_certificate_verification", Variable::ClientCertificate(CertField::Verification)),
    ("host", Variable::Host),
    ("http_method", Variable::HttpMethod),
    ("request_method", Variable::HttpMethod),
    ("http_status", Variable::HttpStatus),
    ("http_version", Variable::HttpVersion),
    ("query_string", Variable::QueryString),
    ("request_query", Variable::QueryString),
    ("request_scheme", Variable::RequestScheme),
    ("request_uri", Variable::RequestUri),
    ("server_port", Variable::ServerPort),
    ("ssl_connection_protocol", Variable::SslConnectionProtocol),
    ("ssl_enabled", Variable::SslEnabled),
    ("uri_path", Variable::UriPath),
];

/// Application Gateway server variables ringgate has no value for: refusing
/// them by name beats a silent "unknown variable".
const NOT_PROVIDED: &[&str] = &["ciphers_supported", "client_tcp_rtt", "client_user", "received_bytes", "sent_bytes"];

/// The names of the server variables ringgate provides, aliases included,
/// plus the `cookie_<name>` form.
pub fn server_variable_names() -> impl Iterator<Item = &'static str> {
    SERVER.iter().map(|(n, _)| *n).chain(std::iter::once("cookie_<name>"))
}

impl Variable {
    /// When the value is known. Conditions and values of rules that rewrite
    /// the request may only use request-phase variables.
    pub fn phase(&self) -> Phase {
        match self {
            Variable::HttpStatus | Variable::ResponseHeader(_) => Phase::Response,
            _ => Phase::Request,
        }
    }

    /// Parses a condition's variable: `uri_path` or `var_uri_path`,
    /// `cookie_<name>`, `http_req_<header>`, `http_resp_<header>`.
    pub fn parse(s: &str) -> Result<Variable, String> {
        if let Some(h) = s.strip_prefix("http_req_") {
            return header_name(h).map(Variable::RequestHeader).map_err(|m| format!("`{s}`: {m}"));
        }
        if let Some(h) = s.strip_prefix("http_resp_") {
            return header_name(h).map(Variable::ResponseHeader).map_err(|m| format!("`{s}`: {m}"));
        }
        let (prefixed, name) = match s.strip_prefix("var_") {
            Some(n) => (true, n),
            None => (false, s),
        };
        parse_server(name).map_err(|e| e.message(name, if prefixed { "var_" } else { "" }, ""))
    }
}

impl fmt::Display for Variable {
    /// The configuration spelling without the `var_` prefix: `uri_path`,
    /// `cookie_a`, `http_req_user-agent`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variable::Cookie(n) => write!(f, "cookie_{n}"),
            Variable::RequestHeader(n) => write!(f, "http_req_{n}"),
            Variable::ResponseHeader(n) => write!(f, "http_resp_{n}"),
            v => {
                let name = SERVER.iter().find(|(_, x)| x == v).map_or("?", |(n, _)| *n);
                f.write_str(name)
            }
        }
    }
}

/// Why a server variable name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameError {
    Empty,
    /// Close to a known name.
    Unknown(Option<&'static str>),
    /// An Application Gateway variable ringgate does not provide.
    NotProvided,
    BadCookie(String),
}

impl NameError {
    /// The message for `name`, spelled back with `pre`/`post` around it
    /// (`var_`, or `{var_` and `}` in a template).
    pub(crate) fn message(&self, name: &str, pre: &str, post: &str) -> String {
        match self {
            NameError::Empty if pre.is_empty() && post.is_empty() => "the variable name is empty".into(),
            NameError::Empty => format!("`{pre}{post}` names no variable"),
            NameError::Unknown(Some(s)) => {
                format!("unknown variable `{pre}{name}{post}`; did you mean `{pre}{s}{post}`?")
            }
            NameError::Unknown(None) => format!(
                "unknown variable `{pre}{name}{post}`: expected a server variable ({}), \
                 `http_req_<header>` or `http_resp_<header>`",
                server_variable_names().collect::<Vec<_>>().join(", ")
            ),
            NameError::NotProvided => format!(
                "`{name}` is an Application Gateway server variable that ringgate does not provide (supported: {})",
                server_variable_names().collect::<Vec<_>>().join(", ")
            ),
            NameError::BadCookie(m) => format!("`{pre}{name}{post}`: {m}"),
        }
    }
}

/// A server variable or `cookie_<name>`, without any `var_` prefix.
pub(crate) fn parse_server(name: &str) -> Result<Variable, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some((_, v)) = SERVER.iter().find(|(n, _)| *n == name) {
        return Ok(v.clone());
    }
    if let Some(c) = name.strip_prefix("cookie_") {
        // Cookie names are tokens (RFC 6265 §4.1.1).
        return match token_error(c) {
            None => Ok(Variable::Cookie(c.into())),
            Some(m) => Err(NameError::BadCookie(format!("cookie name {m}"))),
        };
    }
    if NOT_PROVIDED.contains(&name) {
        return Err(NameError::NotProvided);
    }
    let known = SERVER.iter().map(|(n, _)| *n).chain(NOT_PROVIDED.iter().copied());
    Err(NameError::Unknown(suggest(name, known)))
}

/// Checks a header name and lowercases it.
pub(crate) fn header_name(name: &str) -> Result<Box<str>, String> {
    match token_error(name) {
        None => Ok(name.to_ascii_lowercase().into_boxed_str()),
        Some(m) => Err(format!("header name {m}")),
    }
}

/// Why `s` is not an HTTP token (RFC 9110 §5.6.2), or `None` if it is one.
pub(crate) fn token_error(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    let bad = s.chars().find(|&c| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)))?;
    Some(format!("`{}` is not an HTTP token: {:?} is not allowed", s.escape_debug(), bad))
}

/// The candidate closest to `input`, if it is close enough to be a typo.
pub(crate) fn suggest<'a>(input: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (1 + input.len() / 4).min(3);
    candidates.map(|c| (levenshtein(input, c), c)).filter(|&(d, _)| d <= limit).min_by_key(|&(d, _)| d).map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Where the proxy lends variable values from: its parsed head, the
/// connection, the listener. Nothing is copied unless an action fires.
///
/// `None` means absent: a condition on an absent variable does not match
/// (a negated one does), and an absent variable substitutes as nothing.
/// Implementations must return the same bytes when asked twice during one
/// evaluation (capture groups are located on the first call and cut out on
/// the second).
pub trait Vars {
    fn var(&self, v: &Variable) -> Option<&[u8]>;
}

/// The value of cookie `name` in a Cookie header value (`a=1; b=2`), for
/// implementations of [`Vars`] answering [`Variable::Cookie`].
pub fn cookie_value<'a>(cookie_header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    cookie_header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_variables_parse_with_or_without_var_prefix() {
        assert_eq!(Variable::parse("uri_path"), Ok(Variable::UriPath));
        assert_eq!(Variable::parse("var_uri_path"), Ok(Variable::UriPath));
        assert_eq!(Variable::parse("request_method"), Ok(Variable::HttpMethod));
        assert_eq!(Variable::parse("http_req_User-Agent"), Ok(Variable::RequestHeader("user-agent".into())));
        assert_eq!(Variable::parse("http_resp_Location"), Ok(Variable::ResponseHeader("location".into())));
        assert_eq!(Variable::parse("var_cookie_Session"), Ok(Variable::Cookie("Session".into())));
    }

    #[test]
    fn unknown_variable_suggests_the_closest_name() {
        assert_eq!(Variable::parse("uri_pth").unwrap_err(), "unknown variable `uri_pth`; did you mean `uri_path`?");
        assert_eq!(
            Variable::parse("var_clinet_ip").unwrap_err(),
            "unknown variable `var_clinet_ip`; did you mean `var_client_ip`?"
        );
        let far = Variable::parse("banana").unwrap_err();
        assert!(
            far.starts_with("unknown variable `banana`: expected a server variable (add_x_forwarded_for_proxy"),
            "{far}"
        );
        assert!(far.contains("`http_req_<header>`"), "{far}");
    }

    #[test]
    fn appgw_variables_ringgate_lacks_are_named_as_such() {
        let m = Variable::parse("client_tcp_rtt").unwrap_err();
        assert!(
            m.starts_with("`client_tcp_rtt` is an Application Gateway server variable that ringgate does not provide")
        );
        assert_eq!(Variable::parse("").unwrap_err(), "the variable name is empty");
        assert_eq!(Variable::parse("var_").unwrap_err(), "`var_` names no variable");
    }

    #[test]
    fn header_variables_need_a_token_name() {
        assert_eq!(Variable::parse("http_req_").unwrap_err(), "`http_req_`: header name is empty");
        assert_eq!(
            Variable::parse("http_req_x y").unwrap_err(),
            "`http_req_x y`: header name `x y` is not an HTTP token: ' ' is not allowed"
        );
    }

    #[test]
    fn phases() {
        assert_eq!(Variable::UriPath.phase(), Phase::Request);
        assert_eq!(Variable::RequestHeader("a".into()).phase(), Phase::Request);
        assert_eq!(Variable::ResponseHeader("a".into()).phase(), Phase::Response);
        assert_eq!(Variable::HttpStatus.phase(), Phase::Response);
    }

    #[test]
    fn display_round_trips_through_parse() {
        for name in server_variable_names().filter(|n| !n.contains('<')) {
            let v = Variable::parse(name).unwrap();
            assert_eq!(Variable::parse(&v.to_string()), Ok(v));
        }
        assert_eq!(Variable::RequestHeader("x-a".into()).to_string(), "http_req_x-a");
    }

    #[test]
    fn cookie_value_finds_the_named_cookie() {
        let h = b"a=1; session=abc ;b=2";
        assert_eq!(cookie_value(h, "session"), Some(&b"abc"[..]));
        assert_eq!(cookie_value(h, "b"), Some(&b"2"[..]));
        assert_eq!(cookie_value(h, "sess"), None);
        assert_eq!(cookie_value(b"", "a"), None);
    }
}
