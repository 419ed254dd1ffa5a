//! A compiled rule set and its evaluation: rules in sequence order,
//! conditions with early exit, capture groups located only for conditions a
//! value references, values substituted into the caller's [`Edits`] and
//! dropped when the result would be unsafe to send.

use std::sync::Arc;

use regex::bytes::Regex;

use crate::edits::{CaptureCache, Edits, HeaderName};
use crate::template::{Part, Template};
use crate::variable::{Variable, Vars};

/// A rewrite rule set ready to evaluate. Immutable and `Send + Sync`: share
/// it in the configuration snapshot.
#[derive(Debug)]
pub struct RuleSet {
    /// Tells the capture cache of an [`Edits`] which set its entries belong
    /// to; unique per compiled set.
    pub(crate) id: u64,
    pub(crate) name: Box<str>,
    pub(crate) rules: Box<[Rule]>,
    /// Indices of the rules that rewrite the request, in evaluation order.
    pub(crate) request_order: Box<[usize]>,
    /// Indices of the rules that rewrite response headers, in order.
    pub(crate) response_order: Box<[usize]>,
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: Box<str>,
    pub(crate) sequence: u32,
    pub(crate) conditions: Box<[Condition]>,
    pub(crate) request_headers: Box<[HeaderAction]>,
    pub(crate) response_headers: Box<[HeaderAction]>,
    pub(crate) path: Option<Template>,
    pub(crate) query: Option<Template>,
}

#[derive(Debug)]
pub(crate) struct Condition {
    pub(crate) var: Variable,
    pub(crate) regex: Regex,
    pub(crate) negate: bool,
    /// Set when a value references this condition's groups, which are then
    /// located in this slot of the capture cache once the rule has matched.
    /// Never set on a negated condition (it captures nothing when it holds).
    pub(crate) slot: Option<u32>,
}

#[derive(Debug)]
pub(crate) struct HeaderAction {
    pub(crate) name: Arc<HeaderName>,
    /// `None`: delete.
    pub(crate) value: Option<Template>,
}

impl RuleSet {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule names with their sequence, in evaluation order (request
    /// rules and response rules run in the same relative order).
    pub fn rules_in_order(&self) -> impl Iterator<Item = (&str, u32)> {
        let mut order: Vec<usize> = (0..self.rules.len()).collect();
        order.sort_by_key(|&i| self.rules[i].sequence);
        order.into_iter().map(|i| (&*self.rules[i].name, self.rules[i].sequence))
    }

    /// Some rule rewrites request headers or the URL.
    pub fn has_request_phase(&self) -> bool {
        !self.request_order.is_empty()
    }

    /// Some rule rewrites response headers.
    pub fn has_response_phase(&self) -> bool {
        !self.response_order.is_empty()
    }

    /// Runs the rules that apply before forwarding (request headers, URL)
    /// against the request as received, replacing the contents of `out`.
    /// Leaves `out` empty, without allocating, when no rule matches.
    pub fn request_edits(&self, vars: &dyn Vars, out: &mut Edits) {
        out.clear();
        for &i in &*self.request_order {
            let rule = &self.rules[i];
            if !self.matches(rule, vars, &mut out.caps) {
                continue;
            }
            out.matched += 1;
            for a in &*rule.request_headers {
                self.header_edit(rule, a, vars, out);
            }
            if rule.path.is_some() || rule.query.is_some() {
                self.url_edit(rule, vars, out);
            }
        }
    }

    /// Runs the response-header rules, replacing the contents of `out`.
    /// `vars` answers the response's headers and status as well as the
    /// request's variables, which must be those of the request as received
    /// (conditions never see the rewritten request).
    pub fn response_edits(&self, vars: &dyn Vars, out: &mut Edits) {
        out.clear();
        for &i in &*self.response_order {
            let rule = &self.rules[i];
            if !self.matches(rule, vars, &mut out.caps) {
                continue;
            }
            out.matched += 1;
            for a in &*rule.response_headers {
                self.header_edit(rule, a, vars, out);
            }
        }
    }

    /// Whether every condition holds. `is_match` decides; groups are then
    /// located only for a rule that matched, and only for the conditions a
    /// value references, so a rule that does not match never touches the
    /// capture cache (nor allocates its first entries).
    fn matches(&self, rule: &Rule, vars: &dyn Vars, caps: &mut CaptureCache) -> bool {
        let holds =
            rule.conditions.iter().all(|c| vars.var(&c.var).is_some_and(|hay| c.regex.is_match(hay)) != c.negate);
        holds
            && rule.conditions.iter().all(|c| match c.slot {
                None => true,
                Some(slot) => vars
                    .var(&c.var)
                    .is_some_and(|hay| c.regex.captures_read(caps.locs(self.id, slot, &c.regex), hay).is_some()),
            })
    }

    fn header_edit(&self, rule: &Rule, a: &HeaderAction, vars: &dyn Vars, out: &mut Edits) {
        let Some(t) = &a.value else {
            out.set_header(&a.name, None);
            return;
        };
        let start = out.buf.len();
        self.render(t, rule, vars, &out.caps, &mut out.buf);
        let end = out.buf.len();
        if !out.buf[start..].iter().all(|&b| header_value_byte(b)) {
            out.buf.truncate(start);
            out.dropped += 1;
        } else if start == end {
            // Like an empty configured value: a value that substitutes to nothing
            // deletes the header rather than sending an empty field.
            out.set_header(&a.name, None);
        } else {
            out.set_header(&a.name, Some((start, end)));
        }
    }

    /// Path and query of one rule are made together or not at all: half a
    /// URL rewrite is a URL nobody configured.
    fn url_edit(&self, rule: &Rule, vars: &dyn Vars, out: &mut Edits) {
        let mark = out.buf.len();
        let part = |t: &Option<Template>, out: &mut Edits| {
            t.as_ref().map(|t| {
                let start = out.buf.len();
                self.render(t, rule, vars, &out.caps, &mut out.buf);
                (start, out.buf.len())
            })
        };
        let path = part(&rule.path, out);
        let query = part(&rule.query, out);
        let ok = path.is_none_or(|(a, b)| valid_path(&out.buf[a..b]))
            && query.is_none_or(|(a, b)| valid_query(&out.buf[a..b]));
        if !ok {
            out.buf.truncate(mark);
            out.dropped += 1;
            return;
        }
        if path.is_some() {
            out.path = path;
        }
        if query.is_some() {
            out.query = query;
        }
    }

    fn render(&self, t: &Template, rule: &Rule, vars: &dyn Vars, caps: &CaptureCache, buf: &mut Vec<u8>) {
        for part in &t.parts {
            match part {
                Part::Lit(b) => buf.extend_from_slice(b),
                Part::Var(v) => buf.extend_from_slice(vars.var(v).unwrap_or_default()),
                Part::Capture { group, cond, .. } => {
                    let c = &rule.conditions[*cond];
                    // A group that did not take part in the match is empty.
                    if let (Some(hay), Some(slot)) = (vars.var(&c.var), c.slot)
                        && let Some(locs) = caps.get(self.id, slot)
                        && let Some((a, b)) = locs.get(*group)
                        && let Some(s) = hay.get(a..b)
                    {
                        buf.extend_from_slice(s);
                    }
                }
            }
        }
    }
}

/// Field-value bytes (RFC 9110 §5.5): visible ASCII, space, tab and
/// obs-text; never CR, LF, NUL, other controls or DEL.
pub(crate) fn header_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Bytes a request target may carry as they are (RFC 9112 §3.2): visible
/// ASCII, minus `#` (a fragment never goes on the wire).
pub(crate) fn target_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'#'
}

/// A path must be origin-form and must not smuggle a query of its own past
/// the query edit.
fn valid_path(p: &[u8]) -> bool {
    p.first() == Some(&b'/') && p.iter().all(|&b| target_byte(b) && b != b'?')
}

fn valid_query(q: &[u8]) -> bool {
    q.iter().all(|&b| target_byte(b))
}

#[cfg(test)]
mod tests;
