//! From [`RuleSetSpec`] to [`RuleSet`]: every check that can be made before
//! a request arrives is made here, and every failure is reported at once,
//! located by rule and field. What is left for run time is only what depends
//! on the request (see the safety rules in the crate documentation).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use regex::bytes::{Regex, RegexBuilder};

use crate::edits::HeaderName;
use crate::ruleset::{Condition, HeaderAction, Rule, RuleSet, header_value_byte, target_byte};
use crate::spec::{RuleSetSpec, RuleSpec, SpecError};
use crate::template::{self, Part, Template};
use crate::variable::{Phase, Variable, token_error};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Compiles a rule set, or returns every problem in it.
pub fn compile(spec: &RuleSetSpec) -> Result<RuleSet, Vec<SpecError>> {
    let mut errors = Vec::new();
    let mut rules = Vec::with_capacity(spec.rules.len());
    let mut next_slot = 0;
    for (i, r) in spec.rules.iter().enumerate() {
        let mut cx = Cx { rule: i, errors: &mut errors };
        if let Some(rule) = compile_rule(r, &mut cx, &mut next_slot) {
            rules.push(rule);
        }
        if let Some(j) = spec.rules[..i].iter().position(|p| p.name == r.name) {
            errors.push(SpecError::new(
                Some(i),
                "name",
                format!("rule name `{}` is already used by rule[{j}]", r.name),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // A stable sort keeps the listed order among equal sequences.
    let ordered = |pred: fn(&Rule) -> bool| -> Box<[usize]> {
        let mut v: Vec<usize> = (0..rules.len()).filter(|&i| pred(&rules[i])).collect();
        v.sort_by_key(|&i| rules[i].sequence);
        v.into_boxed_slice()
    };
    let request_order = ordered(|r| !r.request_headers.is_empty() || r.path.is_some() || r.query.is_some());
    let response_order = ordered(|r| !r.response_headers.is_empty());
    Ok(RuleSet {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        name: spec.name.as_str().into(),
        rules: rules.into_boxed_slice(),
        request_order,
        response_order,
    })
}

/// Where errors of the rule being compiled go.
struct Cx<'a> {
    rule: usize,
    errors: &'a mut Vec<SpecError>,
}

impl Cx<'_> {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SpecError::new(Some(self.rule), field, message));
    }
}

/// A condition as far as it compiled.
struct CondDraft {
    var: Option<Variable>,
    regex: Option<Regex>,
    pattern: String,
    negate: bool,
    captured: bool,
}

/// A header action as far as it compiled.
struct HeaderDraft {
    field: String,
    name: Arc<HeaderName>,
    /// `None`: delete (or a value that failed to parse, reported already).
    value: Option<Template>,
}

/// A templated value and the field it came from, for errors found later.
struct Value<'t> {
    field: String,
    template: &'t mut Template,
    /// Evaluated before the request is forwarded.
    request_side: bool,
}

fn compile_rule(r: &RuleSpec, cx: &mut Cx<'_>, next_slot: &mut u32) -> Option<Rule> {
    let before = cx.errors.len();
    let mut conds: Vec<CondDraft> = r
        .conditions
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let var = Variable::parse(&c.variable).map_err(|m| cx.err(format!("condition[{ci}].variable"), m)).ok();
            let regex = RegexBuilder::new(&c.pattern)
                .case_insensitive(c.ignore_case)
                .build()
                .map_err(|e| cx.err(format!("condition[{ci}].pattern"), format!("invalid regular expression: {e}")))
                .ok();
            CondDraft { var, regex, pattern: c.pattern.clone(), negate: c.negate, captured: false }
        })
        .collect();

    let a = &r.actions;
    let mut request_headers = header_actions(&a.request_headers, "request_headers", cx);
    let mut response_headers = header_actions(&a.response_headers, "response_headers", cx);
    let (mut path, mut query) = url(a.url_path.as_deref(), a.url_query.as_deref(), cx);

    let rewrites_request = !request_headers.is_empty() || a.url_path.is_some() || a.url_query.is_some();
    if request_headers.is_empty() && response_headers.is_empty() && a.url_path.is_none() && a.url_query.is_none() {
        cx.err("actions", "the rule has no action: set or delete a request or response header, or rewrite the URL");
    }
    if rewrites_request {
        for (ci, c) in conds.iter().enumerate() {
            if c.var.as_ref().is_some_and(|v| v.phase() == Phase::Response) {
                cx.err(
                    format!("condition[{ci}].variable"),
                    format!(
                        "`{}` is only known once the response arrives, but this rule also rewrites the request \
                         (request headers or URL), which happens before the request is forwarded; \
                         put the response-dependent rewrite in a rule of its own",
                        r.conditions[ci].variable
                    ),
                );
            }
        }
    }

    let mut values: Vec<Value<'_>> = Vec::new();
    for (list, request_side) in [(&mut request_headers, true), (&mut response_headers, false)] {
        for h in list.iter_mut() {
            if let Some(t) = &mut h.value {
                values.push(Value { field: h.field.clone(), template: t, request_side });
            }
        }
    }
    for (field, t) in [("actions.url_path", &mut path), ("actions.url_query", &mut query)] {
        if let Some(t) = t {
            values.push(Value { field: field.into(), template: t, request_side: true });
        }
    }
    let all_vars_known = conds.iter().all(|c| c.var.is_some());
    for v in &mut values {
        if v.request_side {
            for var in v.template.variables().filter(|var| var.phase() == Phase::Response) {
                cx.err(
                    v.field.clone(),
                    format!(
                        "`{}` is only known once the response arrives, but this value rewrites the request, \
                         which happens before the request is forwarded",
                        reference(var, None)
                    ),
                );
            }
        }
        resolve_captures(v, &mut conds, all_vars_known, cx);
    }
    drop(values);

    if cx.errors.len() > before {
        return None;
    }
    let conditions = conds
        .into_iter()
        .filter_map(|c| {
            let slot = c.captured.then(|| {
                *next_slot += 1;
                *next_slot - 1
            });
            Some(Condition { var: c.var?, regex: c.regex?, negate: c.negate, slot })
        })
        .collect();
    let finish =
        |list: Vec<HeaderDraft>| list.into_iter().map(|h| HeaderAction { name: h.name, value: h.value }).collect();
    Some(Rule {
        name: r.name.as_str().into(),
        sequence: r.sequence,
        conditions,
        request_headers: finish(request_headers),
        response_headers: finish(response_headers),
        path,
        query,
    })
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection; the gateway
/// writes its own for each side.
const HOP_BY_HOP: [&str; 6] = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"];

/// Checks a list of header actions; returns one draft per action, in the
/// listed order.
fn header_actions(list: &[(String, String)], side: &str, cx: &mut Cx<'_>) -> Vec<HeaderDraft> {
    let mut out = Vec::with_capacity(list.len());
    for (i, (name, value)) in list.iter().enumerate() {
        let field = format!("actions.{side}[{name:?}]");
        let lower = name.to_ascii_lowercase();
        if let Some(m) = token_error(name) {
            cx.err(&field, format!("header name {m}"));
        } else if HOP_BY_HOP.contains(&lower.as_str()) {
            cx.err(
                &field,
                format!(
                    "`{name}` is a hop-by-hop header: it describes one connection, the gateway writes its own \
                     for each side, and it cannot be rewritten"
                ),
            );
        } else if lower == "content-length" || lower == "transfer-encoding" {
            cx.err(
                &field,
                format!(
                    "`{name}` cannot be rewritten: it frames the message body, and a value that disagreed with \
                     the body the gateway forwards would desynchronise the next hop (request smuggling)"
                ),
            );
        } else if side == "request_headers" && lower == "host" && value.is_empty() {
            cx.err(&field, "the Host header cannot be deleted (Application Gateway refuses it too); it can be set");
        }
        if let Some(j) = list[..i].iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) {
            cx.err(&field, format!("`{name}` is already rewritten by entry {j} of this rule's {side}; keep one"));
        }
        let template = if value.is_empty() {
            None
        } else {
            match template::parse(value) {
                Ok(t) => {
                    if let Some(b) = t.literals().flatten().copied().find(|&b| !header_value_byte(b)) {
                        cx.err(
                            &field,
                            format!(
                                "the value contains the control character {}; header values cannot contain CR, \
                                 LF, NUL or any control character other than tab",
                                describe(b)
                            ),
                        );
                    }
                    Some(t)
                }
                Err(ms) => {
                    ms.into_iter().for_each(|m| cx.err(&field, m));
                    None
                }
            }
        };
        let name = Arc::new(HeaderName { configured: name.as_str().into(), lower: lower.into_boxed_str() });
        out.push(HeaderDraft { field, name, value: template });
    }
    out
}

/// Checks the URL rewrite; a literal `?` in the path splits off the query.
fn url(path: Option<&str>, query: Option<&str>, cx: &mut Cx<'_>) -> (Option<Template>, Option<Template>) {
    let parse = |s: &str, field: &str, cx: &mut Cx<'_>| match template::parse(s) {
        Ok(t) => Some(t),
        Err(ms) => {
            ms.into_iter().for_each(|m| cx.err(field, m));
            None
        }
    };
    let mut query_t = query.and_then(|q| parse(q, "actions.url_query", cx));
    let mut path_t = None;
    if let Some(p) = path {
        const FIELD: &str = "actions.url_path";
        if p.is_empty() {
            cx.err(FIELD, "the path is empty; leave url_path out to keep the request's path");
        } else if let Some(t) = parse(p, FIELD, cx) {
            let t = match t.split_query() {
                Some((p_t, q_t)) => {
                    if query.is_some() {
                        cx.err(FIELD, "the path contains `?` and url_query is set too: write the query in one of them");
                    }
                    query_t = Some(q_t);
                    p_t
                }
                None => t,
            };
            match t.parts.first() {
                Some(Part::Lit(b)) if b.first() == Some(&b'/') => {}
                Some(Part::Lit(_)) | None => cx.err(FIELD, format!("the path `{p}` must start with `/`")),
                // Decided per request, once substituted.
                Some(_) => {}
            }
            check_target_literals(&t, FIELD, "path", cx);
            path_t = Some(t);
        }
    }
    if let Some(q) = &query_t {
        let field = if query.is_some() { "actions.url_query" } else { "actions.url_path" };
        check_target_literals(q, field, "query string", cx);
    }
    (path_t, query_t)
}

fn check_target_literals(t: &Template, field: &str, what: &str, cx: &mut Cx<'_>) {
    if let Some(b) = t.literals().flatten().copied().find(|&b| !target_byte(b)) {
        cx.err(
            field,
            format!(
                "the {what} contains {}, which a request target cannot carry (percent-encode it, e.g. %{b:02X})",
                describe(b)
            ),
        );
    }
}

/// Binds each `{..._N}` of a value to the first non-negated condition on its
/// variable and checks the group exists.
fn resolve_captures(v: &mut Value<'_>, conds: &mut [CondDraft], all_vars_known: bool, cx: &mut Cx<'_>) {
    for part in &mut v.template.parts {
        let Part::Capture { var, group, cond } = part else { continue };
        let shown = reference(var, Some(*group));
        let on_var = || conds.iter().enumerate().filter(|(_, c)| c.var.as_ref() == Some(var));
        let Some((ci, c)) = on_var().find(|(_, c)| !c.negate) else {
            if let Some((ci, _)) = on_var().next() {
                cx.err(
                    v.field.clone(),
                    format!("`{shown}` refers to the negated condition[{ci}] on `{var}`, which captures nothing when it holds"),
                );
            } else if all_vars_known {
                // Otherwise the misspelt condition is already reported.
                cx.err(
                    v.field.clone(),
                    format!(
                        "`{shown}` refers to capture group {group} of a condition on `{var}`, but this rule has no \
                         condition on `{var}`"
                    ),
                );
            }
            continue;
        };
        if let Some(re) = &c.regex {
            let groups = re.captures_len() - 1;
            if *group > groups {
                cx.err(
                    v.field.clone(),
                    format!(
                        "`{shown}` refers to capture group {group}, but the pattern of condition[{ci}] (`{}`) has \
                         only {groups} capture group{}",
                        c.pattern,
                        if groups == 1 { "" } else { "s" }
                    ),
                );
                continue;
            }
        }
        *cond = ci;
        conds[ci].captured = true;
    }
}

/// How a reference to `var` is written in a template.
fn reference(var: &Variable, group: Option<usize>) -> String {
    let pre = match var {
        Variable::RequestHeader(_) | Variable::ResponseHeader(_) => "",
        _ => "var_",
    };
    match group {
        Some(n) => format!("{{{pre}{var}_{n}}}"),
        None => format!("{{{pre}{var}}}"),
    }
}

fn describe(b: u8) -> String {
    let name = match b {
        b'\r' => " (CR)",
        b'\n' => " (LF)",
        0 => " (NUL)",
        b'\t' => " (tab)",
        0x7f => " (DEL)",
        b' ' => " (space)",
        b'#' => " (`#`)",
        _ => "",
    };
    format!("byte 0x{b:02x}{name}")
}

#[cfg(test)]
mod tests;
