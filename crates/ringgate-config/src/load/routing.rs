//! Field-level reading of the routing sections: `[[url_path_map]]` with its
//! `[[url_path_map.path_rule]]`s, `[[redirect]]`, and the `error_pages`
//! tables of `[gateway]` and `[[listener]]`. Names are resolved later, in
//! `validate`.

use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::{Fields, type_name};
use crate::diag::Diags;
use crate::routing::{ERROR_PAGE_MAX, ERROR_PAGE_STATUSES, ErrorPage, PathPattern, REDIRECT_TYPES};

/// A reference by name to another entry, with where it was written.
pub(crate) type Ref = Option<(String, usize)>;

#[derive(Debug)]
pub(crate) struct RawPathMap {
    pub at: usize,
    pub label: String,
    pub name: Option<String>,
    pub default_pool: Ref,
    pub default_settings: Ref,
    pub default_redirect: Ref,
    pub default_rewrite_set: Ref,
    pub path_rules: Vec<RawPathRule>,
}

#[derive(Debug)]
pub(crate) struct RawPathRule {
    pub at: usize,
    pub label: String,
    pub name: Option<String>,
    /// Each pattern with the text as written and its offset.
    pub paths: Vec<(PathPattern, String, usize)>,
    pub pool: Ref,
    pub settings: Ref,
    pub redirect: Ref,
    pub rewrite_set: Ref,
}

#[derive(Debug)]
pub(crate) struct RawRedirect {
    pub at: usize,
    pub label: String,
    pub name: Option<String>,
    pub status: Option<u16>,
    pub target_listener: Ref,
    pub target_url: Ref,
    pub include_path: Option<bool>,
    pub include_query_string: Option<bool>,
}

const PATH_MAP_FIELDS: &[&str] = &[
    "name",
    "default_backend_pool",
    "default_backend_http_settings",
    "default_redirect",
    "default_rewrite_rule_set",
    "path_rule",
];
const PATH_RULE_FIELDS: &[&str] =
    &["name", "paths", "backend_pool", "backend_http_settings", "redirect", "rewrite_rule_set"];

pub(crate) fn read_path_map(d: &mut Diags, t: &DeTable<'_>, at: usize, n: usize) -> RawPathMap {
    let mut f = Fields::new(d, t, String::new(), at, PATH_MAP_FIELDS);
    let name = f.name("url_path_map", n);
    let default_pool = f.string_at("default_backend_pool");
    let default_settings = f.string_at("default_backend_http_settings");
    let default_redirect = f.string_at("default_redirect");
    let default_rewrite_set = f.string_at("default_rewrite_rule_set");
    let mut path_rules = Vec::new();
    if let Some(v) = f.get("path_rule") {
        match v.get_ref() {
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::Table(pt) => {
                            let prefix = f.label.clone();
                            path_rules.push(read_path_rule(f.d, pt, item.span().start, i, &prefix));
                        }
                        other => {
                            let msg = format!("expected a table, found {}", type_name(other));
                            f.err(item.span().start, &format!("path_rule[{i}]"), msg);
                        }
                    }
                }
            }
            _ => f.wrong_type("path_rule", v, "an array of tables: write `[[url_path_map.path_rule]]`"),
        }
    }
    if path_rules.is_empty() && f.get("path_rule").is_none() {
        let at = f.at;
        f.err(
            at,
            "path_rule",
            "missing: a url_path_map needs at least one [[url_path_map.path_rule]] (a rule without paths is a basic rule)"
                .into(),
        );
    }
    let (label, at) = (f.label.clone(), f.at);
    f.finish();
    RawPathMap { at, label, name, default_pool, default_settings, default_redirect, default_rewrite_set, path_rules }
}

fn read_path_rule(d: &mut Diags, t: &DeTable<'_>, at: usize, n: usize, map_label: &str) -> RawPathRule {
    let mut f = Fields::new(d, t, String::new(), at, PATH_RULE_FIELDS);
    let name = f.name("url_path_map.path_rule", n);
    // Located inside its map: `[[url_path_map]] "site" path_rule "api"`.
    f.label = match &name {
        Some(nm) => format!("{map_label} path_rule \"{nm}\""),
        None => format!("{map_label} path_rule #{}", n + 1),
    };
    let paths_at = f.get("paths").map_or(f.at, |v| v.span().start);
    let mut paths = Vec::new();
    match f.strings("paths") {
        Some(list) => {
            if list.is_empty() {
                f.err(paths_at, "paths", "must list at least one path, e.g. [\"/images/*\"]".into());
            }
            for (i, (p, at)) in list.into_iter().enumerate() {
                match PathPattern::parse(&p) {
                    Ok(pat) => paths.push((pat, p, at)),
                    Err(e) => f.err(at, &format!("paths[{i}]"), e),
                }
            }
        }
        None if f.get("paths").is_none() => {
            let at = f.at;
            f.err(at, "paths", "missing (required), e.g. paths = [\"/images/*\"]".into());
        }
        None => {}
    }
    let pool = f.string_at("backend_pool");
    let settings = f.string_at("backend_http_settings");
    let redirect = f.string_at("redirect");
    let rewrite_set = f.string_at("rewrite_rule_set");
    let (label, at) = (f.label.clone(), f.at);
    f.finish();
    RawPathRule { at, label, name, paths, pool, settings, redirect, rewrite_set }
}

const REDIRECT_FIELDS: &[&str] =
    &["name", "type", "target_listener", "target_url", "include_path", "include_query_string"];

pub(crate) fn read_redirect(d: &mut Diags, t: &DeTable<'_>, at: usize, n: usize) -> RawRedirect {
    let mut f = Fields::new(d, t, String::new(), at, REDIRECT_FIELDS);
    let name = f.name("redirect", n);
    let status = match f.get("type") {
        None => Some(301),
        Some(v) => {
            let at = v.span().start;
            let known = || REDIRECT_TYPES.iter().map(|(n, c)| format!("\"{n}\" ({c})")).collect::<Vec<_>>().join(", ");
            match v.get_ref() {
                DeValue::String(s) => {
                    let lower = s.to_ascii_lowercase().replace(['-', ' '], "_");
                    match REDIRECT_TYPES.iter().find(|(n, _)| *n == lower || n.replace('_', "") == lower) {
                        Some((_, c)) => Some(*c),
                        None => {
                            f.err(at, "type", format!("\"{s}\" is not a redirect type (use {})", known()));
                            None
                        }
                    }
                }
                DeValue::Integer(_) => match f.int_of("type", v) {
                    Some(c) if REDIRECT_TYPES.iter().any(|(_, k)| i64::from(*k) == c) => Some(c as u16),
                    Some(c) => {
                        f.err(at, "type", format!("{c} is not a redirect status (use {})", known()));
                        None
                    }
                    None => None,
                },
                _ => {
                    f.wrong_type("type", v, "a redirect type such as \"permanent\"");
                    None
                }
            }
        }
    };
    let target_listener = f.string_at("target_listener");
    let target_url = f.string_at("target_url").and_then(|(u, at)| match check_target_url(&u) {
        Ok(()) => Some((u, at)),
        Err(e) => {
            f.err(at, "target_url", e);
            None
        }
    });
    let include_path = f.bool("include_path");
    let include_query_string = f.bool("include_query_string");
    let (label, at) = (f.label.clone(), f.at);
    f.finish();
    RawRedirect { at, label, name, status, target_listener, target_url, include_path, include_query_string }
}

/// An absolute http(s) URL usable as a Location: a scheme, a host, no
/// fragment, no spaces or control characters.
fn check_target_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("\"{u}\" must be an absolute URL starting with http:// or https://"))?;
    if u.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("\"{}\" contains a space or a control character", u.escape_debug()));
    }
    if u.contains('#') {
        return Err(format!("\"{u}\": a fragment ('#') is not sent in a redirect"));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("\"{u}\" has no host (or carries user information)"));
    }
    Ok(())
}

/// `error_pages = { "502" = "pages/502.html", ... }`: each file read now,
/// relative paths against the configuration file's directory.
pub(crate) fn read_error_pages(f: &mut Fields<'_, '_>) -> Vec<ErrorPage> {
    let base = f.d.base.clone();
    let Some(v) = f.get("error_pages") else { return Vec::new() };
    let DeValue::Table(t) = v.get_ref() else {
        f.wrong_type("error_pages", v, "a table of status = \"file\", e.g. error_pages = { \"502\" = \"502.html\" }");
        return Vec::new();
    };
    let mut pages: Vec<ErrorPage> = Vec::new();
    for (k, val) in t.iter() {
        let key: &str = k.get_ref().as_ref();
        let field = format!("error_pages.{key}");
        let at = val.span().start;
        let status = match key.parse::<u16>() {
            Ok(s) if ERROR_PAGE_STATUSES.contains(&s) => s,
            _ => {
                let list = ERROR_PAGE_STATUSES.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
                f.err(at, &field, format!("\"{key}\" is not a status the gateway answers itself (one of {list})"));
                continue;
            }
        };
        let DeValue::String(file) = val.get_ref() else {
            f.err(at, &field, format!("expected a file path, found {}", type_name(val.get_ref())));
            continue;
        };
        let path = base.join(file.as_ref() as &str);
        let content_type = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("html" | "htm") => "text/html; charset=utf-8",
            Some("txt") => "text/plain; charset=utf-8",
            Some("json") => "application/json",
            Some("xml") => "application/xml",
            _ => {
                f.err(
                    at,
                    &field,
                    format!("\"{file}\": the type comes from the extension: use .html, .htm, .txt, .json or .xml"),
                );
                continue;
            }
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > ERROR_PAGE_MAX as u64 => {
                f.err(
                    at,
                    &field,
                    format!(
                        "{} is {} bytes, over the {} byte limit of an error page",
                        path.display(),
                        m.len(),
                        ERROR_PAGE_MAX
                    ),
                );
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                f.err(at, &field, format!("cannot read {}: {e}", path.display()));
                continue;
            }
        }
        match std::fs::read(&path) {
            Ok(body) => {
                pages.push(ErrorPage { status, path, content_type: content_type.into(), body: Arc::from(body) })
            }
            Err(e) => f.err(at, &field, format!("cannot read {}: {e}", path.display())),
        }
    }
    pages.sort_by_key(|p| p.status);
    pages
}
