//! What a target's rewrite rule set would do to the request `ringgate
//! route` describes. The set itself (the one the data plane runs) gives the
//! edits; which rule made which edit takes each rule compiled alone, from
//! its spec read again from the file, since a loaded configuration keeps
//! only the compiled set. That is exact, not an approximation: conditions
//! always see the request as received, so one rule's edits never change
//! whether another matches.

use ringgate_proxy::rewritten_target;
use ringgate_rewrite::{Edits, RuleSet, RuleSetSpec, RuleSpec, Vars};
use serde::Serialize;
use toml::Value;

/// The request `ringgate route` describes, written as the HTTP/1.1 head a
/// client would send and parsed by the data plane's parser, so that the
/// rule set reads it through the data plane's own [`ringgate_proxy::RequestVars`]:
/// the path and query are those the server would receive (normalized,
/// `override_backend_path` applied), `request_uri` the target as sent.
#[derive(Debug)]
pub struct RequestVars {
    pub forwarded_target: String,
    pub scheme: &'static str,
    pub server_port: String,
    pub client_ip: String,
    pub client_port: String,
    buf: Vec<u8>,
    head: ringgate_http::RequestHead,
}

impl RequestVars {
    /// `Err`: the request cannot be written as a head the parser takes
    /// (a `--header` with a control character, say), with the parser's reason.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        method: &str,
        host_header: Option<&str>,
        request_uri: &str,
        forwarded_target: &str,
        scheme: &'static str,
        server_port: u16,
        client: std::net::SocketAddr,
        headers: &[(String, String)],
    ) -> Result<RequestVars, String> {
        let mut buf = format!("{method} {request_uri} HTTP/1.1\r\n").into_bytes();
        if let Some(h) = host_header {
            buf.extend_from_slice(format!("Host: {h}\r\n").as_bytes());
        }
        for (n, v) in headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("host")) {
            buf.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        let limits = ringgate_http::ParseLimits { max_head: 1 << 20, max_headers: 1024, max_uri: 1 << 20 };
        let mut head = ringgate_http::RequestHead::default();
        match ringgate_http::parse_request(&buf, &limits, &mut head) {
            Ok(ringgate_http::Parsed::Complete(_)) => {}
            Ok(ringgate_http::Parsed::Partial) => return Err("incomplete request head".into()),
            Err(e) => return Err(e.reason().to_string()),
        }
        Ok(RequestVars {
            forwarded_target: forwarded_target.to_string(),
            scheme,
            server_port: server_port.to_string(),
            client_ip: client.ip().to_string(),
            client_port: client.port().to_string(),
            buf,
            head,
        })
    }

    /// The data plane's view of this request.
    fn view(&self) -> ringgate_proxy::RequestVars<'_> {
        ringgate_proxy::RequestVars::new(
            &self.buf,
            &self.head,
            Some(self.forwarded_target.as_bytes()),
            self.client_ip.as_bytes(),
            self.client_port.as_bytes(),
            self.server_port.as_bytes(),
            self.scheme.as_bytes(),
            None,
        )
    }
}

/// The rewrite rule set of a target, evaluated.
#[derive(Debug, Clone, Serialize)]
pub struct RewriteView {
    pub name: String,
    /// In evaluation order. Empty when the rules could not be read again
    /// from the file (then only the set's combined edits are known).
    pub rules: Vec<RuleView>,
    /// How many rules matched the request.
    pub matched: u32,
    /// The request header edits of the whole set, last rule winning.
    pub request_headers: Vec<HeaderEditView>,
    /// The target after the set's URL rewrite, when it makes one.
    pub url: Option<String>,
    /// Substituted values left out because they were unsafe to send.
    pub dropped: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub name: String,
    pub sequence: u32,
    /// `None`: the rule does not rewrite requests.
    pub matches: Option<bool>,
    /// The rule rewrites response headers (evaluated when the response
    /// arrives, so not here).
    pub applies_to_responses: bool,
    /// The edits this rule alone makes to the request.
    pub request_edits: Vec<String>,
    /// Its response header actions, as configured.
    pub response_actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderEditView {
    pub name: String,
    /// `None`: the header is deleted.
    pub value: Option<String>,
}

/// Evaluates `set` (with the rules of `spec` one by one, when given) for
/// `vars`.
pub fn evaluate(set: &RuleSet, spec: Option<&RuleSetSpec>, request: &RequestVars) -> RewriteView {
    let vars = request.view();
    let mut edits = Edits::new();
    set.request_edits(&vars, &mut edits);
    let request_headers =
        edits.headers().map(|h| HeaderEditView { name: h.name.to_string(), value: h.value.map(lossy) }).collect();
    let url = rewritten_target(&edits, request.forwarded_target.as_bytes()).map(|t| lossy(&t));
    let rules = spec.and_then(|s| per_rule(set, s, &vars)).unwrap_or_default();
    RewriteView {
        name: set.name().to_string(),
        rules,
        matched: edits.matched_rules(),
        request_headers,
        url,
        dropped: edits.dropped(),
    }
}

/// Each rule compiled and evaluated alone, in the set's order; `None` when
/// the specs are not those of the compiled set.
fn per_rule(set: &RuleSet, spec: &RuleSetSpec, vars: &impl Vars) -> Option<Vec<RuleView>> {
    let mut order: Vec<&RuleSpec> = spec.rules.iter().collect();
    order.sort_by_key(|r| r.sequence);
    let compiled: Vec<(&str, u32)> = set.rules_in_order().collect();
    let read: Vec<(&str, u32)> = order.iter().map(|r| (r.name.as_str(), r.sequence)).collect();
    if compiled != read {
        return None;
    }
    let mut out = Vec::new();
    let mut edits = Edits::new();
    for r in order {
        let one = ringgate_rewrite::compile(&RuleSetSpec { name: spec.name.clone(), rules: vec![r.clone()] }).ok()?;
        let matches = one.has_request_phase().then(|| {
            one.request_edits(vars, &mut edits);
            edits.matched_rules() > 0
        });
        let mut request_edits = Vec::new();
        if matches == Some(true) {
            for h in edits.headers() {
                request_edits.push(match h.value {
                    Some(v) => format!("set request header {}: {}", h.name, lossy(v)),
                    None => format!("delete request header {}", h.name),
                });
            }
            if let Some(p) = edits.path() {
                request_edits.push(format!("URL path {}", lossy(p)));
            }
            if let Some(q) = edits.query() {
                request_edits.push(if q.is_empty() {
                    "remove the query".into()
                } else {
                    format!("query {}", lossy(q))
                });
            }
            if edits.dropped() > 0 {
                request_edits.push(format!("{} unsafe substituted value(s) dropped", edits.dropped()));
            }
        }
        let response_actions = r
            .actions
            .response_headers
            .iter()
            .map(|(n, v)| if v.is_empty() { format!("delete {n}") } else { format!("set {n}: {v}") })
            .collect();
        out.push(RuleView {
            name: r.name.clone(),
            sequence: r.sequence,
            matches,
            applies_to_responses: one.has_response_phase(),
            request_edits,
            response_actions,
        });
    }
    Some(out)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `[[rewrite_rule_set]]` specs of a configuration file's text, read
/// as the loader reads them (`ringgate_config`'s `load/rewrite.rs`); the
/// file has been validated, so what cannot be read is just left out.
pub fn read_specs(text: &str) -> Vec<RuleSetSpec> {
    let Ok(doc) = toml::from_str::<toml::Table>(text) else { return Vec::new() };
    let Some(Value::Array(sets)) = doc.get("rewrite_rule_set") else { return Vec::new() };
    sets.iter()
        .filter_map(Value::as_table)
        .filter_map(|t| {
            let name = t.get("name")?.as_str()?.to_string();
            let rules = t.get("rule")?.as_array()?.iter().filter_map(Value::as_table).filter_map(read_rule).collect();
            Some(RuleSetSpec { name, rules })
        })
        .collect()
}

fn read_rule(t: &toml::Table) -> Option<RuleSpec> {
    let name = t.get("name")?.as_str()?.to_string();
    let sequence = match t.get("sequence") {
        Some(v) => u32::try_from(v.as_integer()?).ok()?,
        None => 100,
    };
    let conditions = match t.get("condition") {
        None => Vec::new(),
        Some(v) => v
            .as_array()?
            .iter()
            .map(|c| {
                let c = c.as_table()?;
                Some(ringgate_rewrite::ConditionSpec {
                    variable: c.get("variable")?.as_str()?.to_string(),
                    pattern: c.get("pattern")?.as_str()?.to_string(),
                    ignore_case: c.get("ignore_case").and_then(Value::as_bool).unwrap_or(false),
                    negate: c.get("negate").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect::<Option<Vec<_>>>()?,
    };
    let headers = |key: &str| -> Option<Vec<(String, String)>> {
        match t.get(key) {
            None => Some(Vec::new()),
            Some(v) => v.as_table()?.iter().map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect(),
        }
    };
    let text = |key: &str| t.get(key).and_then(Value::as_str).map(str::to_string);
    Some(RuleSpec {
        name,
        sequence,
        conditions,
        actions: ringgate_rewrite::ActionSpec {
            request_headers: headers("request_headers")?,
            response_headers: headers("response_headers")?,
            url_path: text("url_path"),
            url_query: text("url_query"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = r#"
[[rewrite_rule_set]]
name = "security"

[[rewrite_rule_set.rule]]
name = "hsts"
sequence = 10
response_headers = { "Strict-Transport-Security" = "max-age=31536000", "Server" = "" }

[[rewrite_rule_set.rule]]
name = "articles"
sequence = 20
url_path = "/view"
url_query = "id={var_uri_path_1}"
request_headers = { "X-Article" = "{var_uri_path_1}" }

[[rewrite_rule_set.rule.condition]]
variable = "uri_path"
pattern = "^/article/(\\d+)$"

[[rewrite_rule_set.rule]]
name = "tag"
sequence = 5
request_headers = { "X-Via" = "{var_host} {var_http_method}" }
"#;

    fn vars(target: &str) -> RequestVars {
        RequestVars::new(
            "POST",
            Some("shop.example:8080"),
            target,
            target,
            "http",
            8080,
            "192.0.2.1:5000".parse().unwrap(),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn each_rule_says_whether_it_matches_and_what_it_edits() {
        let specs = read_specs(SET);
        assert_eq!(specs.len(), 1);
        let set = ringgate_rewrite::compile(&specs[0]).unwrap();
        let v = evaluate(&set, Some(&specs[0]), &vars("/article/42?x=1"));
        let names: Vec<_> = v.rules.iter().map(|r| (r.name.as_str(), r.sequence, r.matches)).collect();
        assert_eq!(names, [("tag", 5, Some(true)), ("hsts", 10, None), ("articles", 20, Some(true))]);
        assert_eq!(v.rules[0].request_edits, ["set request header X-Via: shop.example POST"]);
        assert!(v.rules[1].applies_to_responses);
        assert_eq!(v.rules[1].response_actions, ["set Strict-Transport-Security: max-age=31536000", "delete Server"]);
        assert_eq!(v.rules[2].request_edits, ["set request header X-Article: 42", "URL path /view", "query id=42"]);
        assert_eq!(v.url.as_deref(), Some("/view?id=42"));
        assert_eq!(v.matched, 2);
        assert_eq!(v.request_headers.len(), 2);

        let v = evaluate(&set, Some(&specs[0]), &vars("/other"));
        assert_eq!(v.rules[2].matches, Some(false));
        assert_eq!(v.url, None);
    }

    #[test]
    fn specs_that_do_not_fit_the_set_leave_only_the_combined_edits() {
        let specs = read_specs(SET);
        let set = ringgate_rewrite::compile(&specs[0]).unwrap();
        let other = RuleSetSpec { name: "x".into(), rules: specs[0].rules[..1].to_vec() };
        let v = evaluate(&set, Some(&other), &vars("/article/1"));
        assert!(v.rules.is_empty());
        assert_eq!(v.url.as_deref(), Some("/view?id=1"));
    }
}
