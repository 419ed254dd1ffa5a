//! Builders for specs and a map-backed [`Vars`], shared by the unit tests.

use std::collections::HashMap;

use crate::{ConditionSpec, RuleSet, RuleSetSpec, RuleSpec, SpecError, Variable, Vars, compile};

pub(crate) fn rule(name: &str, sequence: u32) -> RuleSpec {
    RuleSpec { name: name.into(), sequence, ..RuleSpec::default() }
}

pub(crate) fn set(rules: Vec<RuleSpec>) -> RuleSetSpec {
    RuleSetSpec { name: "set01".into(), rules }
}

/// Chained setters, so a test reads like the rule it builds.
pub(crate) trait RuleExt: Sized {
    fn cond(self, variable: &str, pattern: &str, ignore_case: bool, negate: bool) -> Self;
    fn when(self, variable: &str, pattern: &str) -> Self {
        self.cond(variable, pattern, false, false)
    }
    fn unless(self, variable: &str, pattern: &str) -> Self {
        self.cond(variable, pattern, false, true)
    }
    fn req(self, name: &str, value: &str) -> Self;
    fn resp(self, name: &str, value: &str) -> Self;
    fn path(self, path: &str) -> Self;
    fn query(self, query: &str) -> Self;
}

impl RuleExt for RuleSpec {
    fn cond(mut self, variable: &str, pattern: &str, ignore_case: bool, negate: bool) -> Self {
        self.conditions.push(ConditionSpec { variable: variable.into(), pattern: pattern.into(), ignore_case, negate });
        self
    }
    fn req(mut self, name: &str, value: &str) -> Self {
        self.actions.request_headers.push((name.into(), value.into()));
        self
    }
    fn resp(mut self, name: &str, value: &str) -> Self {
        self.actions.response_headers.push((name.into(), value.into()));
        self
    }
    fn path(mut self, path: &str) -> Self {
        self.actions.url_path = Some(path.into());
        self
    }
    fn query(mut self, query: &str) -> Self {
        self.actions.url_query = Some(query.into());
        self
    }
}

pub(crate) fn compiled(rules: Vec<RuleSpec>) -> RuleSet {
    match compile(&set(rules)) {
        Ok(s) => s,
        Err(errs) => panic!("unexpected compile errors: {errs:#?}"),
    }
}

pub(crate) fn errors(rules: Vec<RuleSpec>) -> Vec<SpecError> {
    match compile(&set(rules)) {
        Ok(_) => panic!("compiled, but errors were expected"),
        Err(errs) => errs,
    }
}

/// Variables by their configuration spelling.
#[derive(Debug, Default, Clone)]
pub(crate) struct TestVars(HashMap<Variable, Vec<u8>>);

impl TestVars {
    pub(crate) fn new() -> Self {
        TestVars::default()
    }

    pub(crate) fn with(mut self, variable: &str, value: impl AsRef<[u8]>) -> Self {
        self.0.insert(Variable::parse(variable).expect("test variable"), value.as_ref().to_vec());
        self
    }
}

impl Vars for TestVars {
    fn var(&self, v: &Variable) -> Option<&[u8]> {
        self.0.get(v).map(Vec::as_slice)
    }
}
