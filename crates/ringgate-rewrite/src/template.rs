//! Action values as templates: split once, at compile time, into literal
//! bytes and references (`{var_uri_path}`, `{http_req_user-agent_1}`, ...),
//! so evaluation is a walk over parts with no parsing.

use crate::variable::{Variable, header_name, parse_server};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(Box<[u8]>),
    /// The whole value of a variable.
    Var(Variable),
    /// Group `group` of the rule's condition number `cond` on `var`.
    /// `cond` is resolved by the compiler after parsing (`usize::MAX` until
    /// then).
    Capture {
        var: Variable,
        group: usize,
        cond: usize,
    },
}

/// A parsed value: its parts in order. Adjacent literal bytes are merged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Template {
    pub(crate) parts: Vec<Part>,
}

impl Template {
    pub(crate) fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.parts.iter().filter_map(|p| match p {
            Part::Lit(_) => None,
            Part::Var(v) | Part::Capture { var: v, .. } => Some(v),
        })
    }

    pub(crate) fn literals(&self) -> impl Iterator<Item = &[u8]> {
        self.parts.iter().filter_map(|p| match p {
            Part::Lit(b) => Some(&b[..]),
            _ => None,
        })
    }

    /// Splits at the first literal `?`: the path part and the query part
    /// (which may be empty). `None` if no literal contains `?`.
    pub(crate) fn split_query(&self) -> Option<(Template, Template)> {
        let at = self.parts.iter().position(|p| matches!(p, Part::Lit(b) if b.contains(&b'?')))?;
        let mut path = Template { parts: self.parts[..at].to_vec() };
        let mut query = Template::default();
        if let Part::Lit(b) = &self.parts[at] {
            let q = b.iter().position(|&c| c == b'?').unwrap_or(b.len());
            path.push_lit(&b[..q]);
            query.push_lit(&b[q + 1..]);
        }
        query.parts.extend_from_slice(&self.parts[at + 1..]);
        Some((path, query))
    }

    fn push_lit(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(Part::Lit(prev)) = self.parts.last_mut() {
            let mut v = std::mem::take(prev).into_vec();
            v.extend_from_slice(bytes);
            *prev = v.into_boxed_slice();
        } else {
            self.parts.push(Part::Lit(bytes.into()));
        }
    }
}

const PREFIXES: [&str; 3] = ["var_", "http_req_", "http_resp_"];

/// Parses a value. `{` starts a reference only when followed by `var_`,
/// `http_req_` or `http_resp_` and closed by `}`; any other brace is literal
/// text (JSON in a header, say). Every bad reference is reported.
pub(crate) fn parse(s: &str) -> Result<Template, Vec<String>> {
    let mut t = Template::default();
    let mut errors = Vec::new();
    let mut lit_start = 0;
    let mut i = 0;
    while let Some(off) = s[i..].find('{') {
        let open = i + off;
        let rest = &s[open + 1..];
        let prefixed = PREFIXES.iter().any(|p| rest.starts_with(p));
        match rest.find('}') {
            Some(close) if prefixed && !rest[..close].contains('{') => {
                t.push_lit(&s.as_bytes()[lit_start..open]);
                match reference(&rest[..close]) {
                    Ok(p) => t.parts.push(p),
                    Err(m) => errors.push(m),
                }
                i = open + 1 + close + 1;
                lit_start = i;
                continue;
            }
            _ if prefixed => {
                errors.push(format!("`{{` at byte {open} opens a reference that is never closed with `}}`"))
            }
            Some(close) => {
                // `{uri_path}`: a server variable without `var_` would
                // otherwise be sent literally, which is never what was meant.
                let inner = &rest[..close];
                if parse_server(inner).is_ok() {
                    errors.push(format!("`{{{inner}}}` is literal text; did you mean `{{var_{inner}}}`?"));
                }
            }
            None => {}
        }
        i = open + 1;
    }
    t.push_lit(&s.as_bytes()[lit_start..]);
    if errors.is_empty() { Ok(t) } else { Err(errors) }
}

/// One reference, without its braces: `var_uri_path`, `http_req_a_2`.
fn reference(inner: &str) -> Result<Part, String> {
    // A trailing `_<digits>` is always a capture group, as in AppGW: no
    // server variable ends in digits, and header names with `_` are not
    // forwarded by Application Gateway anyway.
    let (base, group) = match inner.rfind('_') {
        Some(u) if u + 1 < inner.len() && inner[u + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            let n = inner[u + 1..]
                .parse::<usize>()
                .map_err(|_| format!("`{{{inner}}}`: capture group number too large"))?;
            (&inner[..u], Some(n))
        }
        _ => (inner, None),
    };
    let var = if let Some(h) = base.strip_prefix("http_req_") {
        Variable::RequestHeader(header_name(h).map_err(|m| format!("`{{{inner}}}`: {m}"))?)
    } else if let Some(h) = base.strip_prefix("http_resp_") {
        Variable::ResponseHeader(header_name(h).map_err(|m| format!("`{{{inner}}}`: {m}"))?)
    } else {
        let name = base.strip_prefix("var_").unwrap_or(base);
        let post = match group {
            Some(n) => format!("_{n}}}"),
            None => "}".to_string(),
        };
        parse_server(name).map_err(|e| e.message(name, "{var_", &post))?
    };
    Ok(match group {
        Some(group) => Part::Capture { var, group, cond: usize::MAX },
        None => Part::Var(var),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Part {
        Part::Lit(s.as_bytes().into())
    }

    #[test]
    fn literal_text_is_one_part() {
        assert_eq!(parse("max-age=31536000").unwrap().parts, vec![lit("max-age=31536000")]);
        assert!(parse("").unwrap().parts.is_empty());
    }

    #[test]
    fn references_split_the_text() {
        let t = parse("{http_resp_Location_1}://contoso.com{http_resp_Location_2}").unwrap();
        let loc = Variable::ResponseHeader("location".into());
        assert_eq!(
            t.parts,
            vec![
                Part::Capture { var: loc.clone(), group: 1, cond: usize::MAX },
                lit("://contoso.com"),
                Part::Capture { var: loc, group: 2, cond: usize::MAX },
            ]
        );
        let t = parse("a{var_client_ip}:{var_client_port}").unwrap();
        assert_eq!(t.parts, vec![lit("a"), Part::Var(Variable::ClientIp), lit(":"), Part::Var(Variable::ClientPort)]);
        let t = parse("{var_cookie_sid}").unwrap();
        assert_eq!(t.parts, vec![Part::Var(Variable::Cookie("sid".into()))]);
    }

    #[test]
    fn other_braces_are_literal() {
        assert_eq!(parse(r#"{"a":1}"#).unwrap().parts, vec![lit(r#"{"a":1}"#)]);
        assert_eq!(parse("{{var_host}}").unwrap().parts, vec![lit("{"), Part::Var(Variable::Host), lit("}")]);
    }

    #[test]
    fn bad_references_are_all_reported() {
        let errs = parse("{var_uri_pth} {var_host").unwrap_err();
        assert_eq!(
            errs,
            vec![
                "unknown variable `{var_uri_pth}`; did you mean `{var_uri_path}`?".to_string(),
                "`{` at byte 14 opens a reference that is never closed with `}`".to_string(),
            ]
        );
        assert_eq!(
            parse("{uri_path}").unwrap_err(),
            vec!["`{uri_path}` is literal text; did you mean `{var_uri_path}`?"]
        );
        assert_eq!(
            parse("{var_uri_pth_1}").unwrap_err(),
            vec!["unknown variable `{var_uri_pth_1}`; did you mean `{var_uri_path_1}`?"]
        );
        assert_eq!(parse("{http_req_}").unwrap_err(), vec!["`{http_req_}`: header name is empty"]);
    }

    #[test]
    fn split_query_at_the_first_literal_question_mark() {
        let t = parse("/view?id={var_uri_path_1}&x=?").unwrap();
        let (p, q) = t.split_query().unwrap();
        assert_eq!(p.parts, vec![lit("/view")]);
        assert_eq!(
            q.parts,
            vec![lit("id="), Part::Capture { var: Variable::UriPath, group: 1, cond: usize::MAX }, lit("&x=?")]
        );
        let (p, q) = parse("/a?").unwrap().split_query().unwrap();
        assert_eq!((p.parts, q.parts), (vec![lit("/a")], vec![]));
        assert!(parse("/a{var_query_string}").unwrap().split_query().is_none());
    }
}
