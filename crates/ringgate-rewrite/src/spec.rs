//! A rewrite rule set as the configuration loader hands it over: plain names
//! and strings, not yet checked. [`crate::compile`] turns it into a
//! [`crate::RuleSet`] or into every [`SpecError`] it contains.

use std::fmt;

/// A rewrite rule set: the rules one routing rule (or path of a path map)
/// applies to its requests and responses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSetSpec {
    pub name: String,
    pub rules: Vec<RuleSpec>,
}

/// One rewrite rule: when every condition holds, its actions are made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSpec {
    pub name: String,
    /// Rules run in ascending sequence; equal sequences run in listed order.
    pub sequence: u32,
    /// All must match (AND). None: the rule always applies.
    pub conditions: Vec<ConditionSpec>,
    pub actions: ActionSpec,
}

/// A test of one variable against a regular expression.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConditionSpec {
    /// A server variable (`uri_path`, also spelled `var_uri_path`), a request
    /// header (`http_req_<name>`) or a response header (`http_resp_<name>`).
    pub variable: String,
    /// A regular expression (RE2 syntax, as Application Gateway), searched
    /// for anywhere in the value unless anchored with `^`/`$`. The empty
    /// pattern tests that the variable is present.
    pub pattern: String,
    pub ignore_case: bool,
    /// The condition holds when the pattern does *not* match (or the
    /// variable is absent).
    pub negate: bool,
}

/// What a rule changes. Values are templates (see the crate documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionSpec {
    /// `(name, value)`; an empty value deletes the header.
    pub request_headers: Vec<(String, String)>,
    /// `(name, value)`; an empty value deletes the header.
    pub response_headers: Vec<(String, String)>,
    /// The new path; must start with `/` once substituted. A literal `?`
    /// splits it into path and query string.
    pub url_path: Option<String>,
    /// The new query string, without `?`; `Some("")` removes the query.
    pub url_query: Option<String>,
}

/// A compile problem, located so the configuration loader can name the file,
/// line, entry and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// Index into [`RuleSetSpec::rules`]; `None` for the set as a whole.
    pub rule: Option<usize>,
    /// The field inside the rule, e.g. `condition[0].pattern` or
    /// `actions.request_headers["X-A"]`.
    pub field: String,
    /// What is wrong, in plain words.
    pub message: String,
}

impl SpecError {
    pub(crate) fn new(rule: Option<usize>, field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError { rule, field: field.into(), message: message.into() }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = self.rule {
            write!(f, "rule[{r}], ")?;
        }
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for SpecError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_error_display_names_rule_and_field() {
        let e = SpecError::new(Some(2), "condition[0].pattern", "bad");
        assert_eq!(e.to_string(), "rule[2], field `condition[0].pattern`: bad");
        let e = SpecError::new(None, "rules", "bad");
        assert_eq!(e.to_string(), "field `rules`: bad");
    }
}
