//! `[[rewrite_rule_set]]` with its `[[rewrite_rule_set.rule]]`s and their
//! `condition`s, read field by field and compiled at once by
//! `ringgate_rewrite::compile`, whose findings are located back on the
//! file's lines: a bad regular expression is reported with the regex
//! crate's own message at the line of its pattern.

use std::sync::Arc;

use ringgate_rewrite::{ActionSpec, ConditionSpec, RuleSetSpec, RuleSpec};
use toml::de::{DeTable, DeValue};

use super::{Fields, type_name};
use crate::diag::Diags;
use crate::routing::RewriteRuleSet;

#[derive(Debug)]
pub(crate) struct RawRewriteSet {
    pub at: usize,
    pub label: String,
    pub name: Option<String>,
    /// The compiled set; `None` when a field or the compile failed.
    pub set: Option<Arc<RewriteRuleSet>>,
}

const SET_FIELDS: &[&str] = &["name", "rule"];
const RULE_FIELDS: &[&str] =
    &["name", "sequence", "condition", "request_headers", "response_headers", "url_path", "url_query"];
const CONDITION_FIELDS: &[&str] = &["variable", "pattern", "ignore_case", "negate"];

/// Where each part of a rule was written, to place compile errors.
#[derive(Debug, Default)]
struct RuleAt {
    at: usize,
    label: String,
    fields: Vec<(String, usize)>,
}

pub(crate) fn read_rewrite_set(d: &mut Diags, t: &DeTable<'_>, at: usize, n: usize) -> RawRewriteSet {
    let mut f = Fields::new(d, t, String::new(), at, SET_FIELDS);
    let name = f.name("rewrite_rule_set", n);
    let mut rules = Vec::new();
    let mut places: Vec<RuleAt> = Vec::new();
    let mut ok = name.is_some();
    match f.get("rule") {
        None => {
            let at = f.at;
            f.err(at, "rule", "missing: a rewrite rule set needs at least one [[rewrite_rule_set.rule]]".into());
            ok = false;
        }
        Some(v) => match v.get_ref() {
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let DeValue::Table(rt) = item.get_ref() else {
                        let msg = format!("expected a table, found {}", type_name(item.get_ref()));
                        f.err(item.span().start, &format!("rule[{i}]"), msg);
                        ok = false;
                        continue;
                    };
                    let set_label = f.label.clone();
                    match read_rule(f.d, rt, item.span().start, i, &set_label) {
                        Some((rule, place)) => {
                            rules.push(rule);
                            places.push(place);
                        }
                        None => ok = false,
                    }
                }
            }
            _ => {
                f.wrong_type("rule", v, "an array of tables: write `[[rewrite_rule_set.rule]]`");
                ok = false;
            }
        },
    }
    let (label, at) = (f.label.clone(), f.at);
    f.finish();
    let set = match (&name, ok) {
        (Some(name), true) => {
            let spec = RuleSetSpec { name: name.clone(), rules };
            match ringgate_rewrite::compile(&spec) {
                Ok(set) => Some(Arc::new(RewriteRuleSet { name: name.clone(), set: Arc::new(set) })),
                Err(errors) => {
                    for e in errors {
                        let place = e.rule.and_then(|r| places.get(r));
                        // `actions.request_headers["X"]` is written
                        // `request_headers` in the file.
                        let field = e.field.strip_prefix("actions.").unwrap_or(&e.field).to_string();
                        let (entry, at) = match place {
                            Some(p) => {
                                let top = field.split(['[', '.']).next().unwrap_or_default();
                                let at =
                                    p.fields.iter().find(|(k, _)| *k == field || *k == top).map_or(p.at, |(_, a)| *a);
                                (p.label.as_str(), at)
                            }
                            None => (label.as_str(), at),
                        };
                        d.error(Some(at), entry, (!field.is_empty()).then_some(field.as_str()), e.message);
                    }
                    None
                }
            }
        }
        _ => None,
    };
    RawRewriteSet { at, label, name, set }
}

fn read_rule(d: &mut Diags, t: &DeTable<'_>, at: usize, n: usize, set_label: &str) -> Option<(RuleSpec, RuleAt)> {
    let mut f = Fields::new(d, t, String::new(), at, RULE_FIELDS);
    let name = f.name("rewrite_rule_set.rule", n);
    f.label = match &name {
        Some(nm) => format!("{set_label} rule \"{nm}\""),
        None => format!("{set_label} rule #{}", n + 1),
    };
    let mut place = RuleAt { at: f.at, label: f.label.clone(), fields: Vec::new() };
    for (k, v) in t.iter() {
        place.fields.push((k.get_ref().to_string(), v.span().start));
    }
    let sequence = match f.get("sequence") {
        Some(_) => f.int("sequence", 0, i64::from(u32::MAX)).map(|s| s as u32),
        None => Some(100),
    };
    let mut conditions = Vec::new();
    let mut ok = true;
    if let Some(v) = f.get("condition") {
        match v.get_ref() {
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let DeValue::Table(ct) = item.get_ref() else {
                        let msg = format!("expected a table, found {}", type_name(item.get_ref()));
                        f.err(item.span().start, &format!("condition[{i}]"), msg);
                        ok = false;
                        continue;
                    };
                    let label = format!("{} condition[{i}]", f.label);
                    let mut c = Fields::new(f.d, ct, label, item.span().start, CONDITION_FIELDS);
                    let variable = c.string("variable");
                    let variable = c.required("variable", variable);
                    let pattern = c.string("pattern");
                    let pattern = c.required("pattern", pattern);
                    let ignore_case = c.bool("ignore_case").unwrap_or(false);
                    let negate = c.bool("negate").unwrap_or(false);
                    // Regex errors from the compile point at the pattern.
                    if let Some(p) = c.get("pattern") {
                        place.fields.push((format!("condition[{i}].pattern"), p.span().start));
                    }
                    if let Some(p) = c.get("variable") {
                        place.fields.push((format!("condition[{i}].variable"), p.span().start));
                    }
                    c.finish();
                    match (variable, pattern) {
                        (Some(variable), Some(pattern)) => {
                            conditions.push(ConditionSpec { variable, pattern, ignore_case, negate })
                        }
                        _ => ok = false,
                    }
                }
            }
            _ => {
                f.wrong_type("condition", v, "an array of tables: write `[[rewrite_rule_set.rule.condition]]`");
                ok = false;
            }
        }
    }
    let request_headers = header_table(&mut f, "request_headers", &mut ok);
    let response_headers = header_table(&mut f, "response_headers", &mut ok);
    let url_path = f.string("url_path");
    let url_query = f.string("url_query");
    f.finish();
    let actions = ActionSpec { request_headers, response_headers, url_path, url_query };
    match (name, sequence, ok) {
        (Some(name), Some(sequence), true) => Some((RuleSpec { name, sequence, conditions, actions }, place)),
        _ => None,
    }
}

/// `request_headers = { "X-A" = "value", "Server" = "" }` (empty: delete),
/// in the order written.
fn header_table(f: &mut Fields<'_, '_>, key: &str, ok: &mut bool) -> Vec<(String, String)> {
    let Some(v) = f.get(key) else { return Vec::new() };
    let DeValue::Table(t) = v.get_ref() else {
        f.wrong_type(key, v, "a table of header = \"value\" (an empty value deletes the header)");
        *ok = false;
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, val) in t.iter() {
        let name: &str = k.get_ref().as_ref();
        match val.get_ref() {
            DeValue::String(s) => out.push((name.to_string(), s.to_string())),
            other => {
                let msg = format!("expected a string, found {}", type_name(other));
                f.err(val.span().start, &format!("{key}[\"{name}\"]"), msg);
                *ok = false;
            }
        }
    }
    out
}
