//! Every compile-time refusal, with the field it is reported on and its
//! message, and that all of them are reported at once.

use crate::testutil::{RuleExt, compiled, errors, rule, set};
use crate::{SpecError, compile};

/// The single error of a one-rule set.
fn only_error(r: crate::RuleSpec) -> SpecError {
    let errs = errors(vec![r]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().unwrap()
}

fn err(field: &str, message: &str) -> SpecError {
    SpecError { rule: Some(0), field: field.into(), message: message.into() }
}

#[test]
fn a_valid_set_compiles() {
    let s = compiled(vec![
        rule("a", 1).when("uri_path", "^/x").req("X-A", "{var_uri_path}").resp("X-B", "{http_resp_server}"),
        rule("b", 2).path("/y"),
    ]);
    assert_eq!((s.name(), s.len(), s.is_empty()), ("set01", 2, false));
    let empty = compile(&set(vec![])).unwrap();
    assert!(!empty.has_request_phase() && !empty.has_response_phase() && empty.is_empty());
}

#[test]
fn unknown_condition_variable_suggests_the_closest_name() {
    let e = only_error(rule("r", 1).when("uri_pat", "x").req("X-A", "1"));
    assert_eq!(e, err("condition[0].variable", "unknown variable `uri_pat`; did you mean `uri_path`?"));
}

#[test]
fn unknown_template_variable_suggests_the_closest_name() {
    let e = only_error(rule("r", 1).req("X-A", "{var_clent_ip}"));
    assert_eq!(
        e,
        err("actions.request_headers[\"X-A\"]", "unknown variable `{var_clent_ip}`; did you mean `{var_client_ip}`?")
    );
    let e = only_error(rule("r", 1).req("X-A", "{client_ip}"));
    assert_eq!(e.message, "`{client_ip}` is literal text; did you mean `{var_client_ip}`?");
}

#[test]
fn invalid_regex_reports_the_regex_message() {
    let e = only_error(rule("r", 1).when("uri_path", "/(a").req("X-A", "1"));
    assert_eq!(e.field, "condition[0].pattern");
    assert!(e.message.starts_with("invalid regular expression: regex parse error:"), "{}", e.message);
    assert!(e.message.contains("unclosed group"), "{}", e.message);
    // RE2 syntax, as AppGW: no look-around.
    let e = only_error(rule("r", 1).when("uri_path", "(?=a)").req("X-A", "1"));
    assert!(e.message.contains("look-around"), "{}", e.message);
}

#[test]
fn header_names_must_be_http_tokens() {
    let e = only_error(rule("r", 1).req("X A", "1"));
    assert_eq!(
        e,
        err("actions.request_headers[\"X A\"]", "header name `X A` is not an HTTP token: ' ' is not allowed")
    );
    let e = only_error(rule("r", 1).resp("", "1"));
    assert_eq!(e, err("actions.response_headers[\"\"]", "header name is empty"));
    let e = only_error(rule("r", 1).resp("X:Y", "1"));
    assert_eq!(e.message, "header name `X:Y` is not an HTTP token: ':' is not allowed");
}

#[test]
fn hop_by_hop_headers_cannot_be_rewritten_on_either_side() {
    for name in ["Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "upgrade"] {
        for value in ["x", ""] {
            let errs = errors(vec![rule("r", 1).req(name, value).resp(name, value)]);
            assert_eq!(errs.len(), 2, "{errs:#?}");
            assert_eq!(errs[0].field, format!("actions.request_headers[\"{name}\"]"));
            assert_eq!(errs[1].field, format!("actions.response_headers[\"{name}\"]"));
            assert_eq!(
                errs[0].message,
                format!(
                    "`{name}` is a hop-by-hop header: it describes one connection, the gateway writes its own for \
                     each side, and it cannot be rewritten"
                )
            );
        }
    }
}

#[test]
fn framing_headers_cannot_be_rewritten() {
    for name in ["Content-Length", "transfer-encoding"] {
        let e = only_error(rule("r", 1).req(name, "0"));
        assert_eq!(
            e.message,
            format!(
                "`{name}` cannot be rewritten: it frames the message body, and a value that disagreed with the body \
                 the gateway forwards would desynchronise the next hop (request smuggling)"
            )
        );
        assert_eq!(errors(vec![rule("r", 1).resp(name, "")]).len(), 1);
    }
}

#[test]
fn host_can_be_set_but_not_deleted() {
    compiled(vec![rule("r", 1).req("Host", "{var_host}.internal")]);
    let e = only_error(rule("r", 1).req("host", ""));
    assert_eq!(
        e,
        err(
            "actions.request_headers[\"host\"]",
            "the Host header cannot be deleted (Application Gateway refuses it too); it can be set"
        )
    );
}

#[test]
fn control_characters_in_literal_values_are_refused() {
    for (value, shown) in [
        ("a\r\nX-Injected: 1", "byte 0x0d (CR)"),
        ("a\nb", "byte 0x0a (LF)"),
        ("a\0b", "byte 0x00 (NUL)"),
        ("a\x01b", "byte 0x01"),
        ("a\x7fb", "byte 0x7f (DEL)"),
    ] {
        let e = only_error(rule("r", 1).resp("X-A", value));
        assert_eq!(
            e.message,
            format!(
                "the value contains the control character {shown}; header values cannot contain CR, LF, NUL or any \
                 control character other than tab"
            )
        );
    }
    compiled(vec![rule("r", 1).resp("X-A", "a\tb \u{e9}")]);
}

#[test]
fn capture_reference_needs_a_condition_on_its_variable() {
    let e = only_error(rule("r", 1).when("query_string", "(.*)").path("/v/{var_uri_path_1}"));
    assert_eq!(
        e,
        err(
            "actions.url_path",
            "`{var_uri_path_1}` refers to capture group 1 of a condition on `uri_path`, but this rule has no \
             condition on `uri_path`"
        )
    );
    let e = only_error(rule("r", 1).req("X-A", "{http_req_User-Agent_1}"));
    assert_eq!(
        e.message,
        "`{http_req_user-agent_1}` refers to capture group 1 of a condition on `http_req_user-agent`, but this \
         rule has no condition on `http_req_user-agent`"
    );
}

#[test]
fn capture_reference_beyond_the_group_count_is_refused() {
    let e = only_error(rule("r", 1).when("uri_path", r"^/article/(\d+)").path("/view").query("id={var_uri_path_2}"));
    assert_eq!(
        e,
        err(
            "actions.url_query",
            r"`{var_uri_path_2}` refers to capture group 2, but the pattern of condition[0] (`^/article/(\d+)`) has only 1 capture group"
        )
    );
    let e = only_error(rule("r", 1).when("uri_path", "^/a").req("X-A", "{var_uri_path_1}"));
    assert!(e.message.ends_with("has only 0 capture groups"), "{}", e.message);
}

#[test]
fn capture_reference_to_a_negated_condition_is_refused() {
    let e = only_error(rule("r", 1).unless("uri_path", "(a)").req("X-A", "{var_uri_path_1}"));
    assert_eq!(
        e.message,
        "`{var_uri_path_1}` refers to the negated condition[0] on `uri_path`, which captures nothing when it holds"
    );
    // A non-negated condition on the same variable is used instead.
    compiled(vec![rule("r", 1).unless("uri_path", "(a)").when("uri_path", "(b)").req("X-A", "{var_uri_path_1}")]);
}

#[test]
fn a_literal_url_path_must_start_with_a_slash() {
    let e = only_error(rule("r", 1).path("buy.aspx"));
    assert_eq!(e, err("actions.url_path", "the path `buy.aspx` must start with `/`"));
    let e = only_error(rule("r", 1).path("?a=1"));
    assert_eq!(e.message, "the path `?a=1` must start with `/`");
    let e = only_error(rule("r", 1).path(""));
    assert_eq!(e.message, "the path is empty; leave url_path out to keep the request's path");
    // Starting with a variable: checked per request instead.
    compiled(vec![rule("r", 1).path("{var_uri_path}/x")]);
}

#[test]
fn url_literals_cannot_carry_spaces_hashes_or_controls() {
    let e = only_error(rule("r", 1).path("/a b"));
    assert_eq!(
        e.message,
        "the path contains byte 0x20 (space), which a request target cannot carry (percent-encode it, e.g. %20)"
    );
    let e = only_error(rule("r", 1).query("a=1#top"));
    assert_eq!(
        e,
        err(
            "actions.url_query",
            "the query string contains byte 0x23 (`#`), which a request target cannot carry (percent-encode it, e.g. %23)"
        )
    );
    let e = only_error(rule("r", 1).path("/v?a=\r\n"));
    assert_eq!(e.field, "actions.url_path");
    assert!(e.message.starts_with("the query string contains byte 0x0d (CR)"), "{}", e.message);
}

#[test]
fn a_query_in_the_path_and_in_url_query_is_refused() {
    let e = only_error(rule("r", 1).path("/v?a=1").query("b=2"));
    assert_eq!(
        e,
        err("actions.url_path", "the path contains `?` and url_query is set too: write the query in one of them")
    );
}

#[test]
fn response_variables_are_refused_where_the_request_is_rewritten() {
    let errs = errors(vec![rule("r", 1).when("http_resp_Location", "x").req("X-A", "{http_resp_server}").path("/a")]);
    assert_eq!(
        errs,
        vec![
            err(
                "condition[0].variable",
                "`http_resp_Location` is only known once the response arrives, but this rule also rewrites the \
                 request (request headers or URL), which happens before the request is forwarded; put the \
                 response-dependent rewrite in a rule of its own"
            ),
            err(
                "actions.request_headers[\"X-A\"]",
                "`{http_resp_server}` is only known once the response arrives, but this value rewrites the request, \
                 which happens before the request is forwarded"
            ),
        ]
    );
    let e = only_error(rule("r", 1).when("http_status", "^5").path("/error"));
    assert_eq!(e.field, "condition[0].variable");
    // In a response-only rule they are what conditions are for.
    compiled(vec![
        rule("r", 1)
            .when("http_status", "^3")
            .when("http_resp_Location", "(.*)")
            .resp("Location", "{http_resp_location_1}"),
    ]);
}

#[test]
fn a_rule_without_actions_is_refused() {
    let e = only_error(rule("r", 1).when("uri_path", "x"));
    assert_eq!(
        e,
        err("actions", "the rule has no action: set or delete a request or response header, or rewrite the URL")
    );
}

#[test]
fn duplicate_rule_names_and_headers_are_refused() {
    let errs = errors(vec![rule("a", 1).req("X-A", "1"), rule("a", 2).req("X-A", "1").req("x-a", "2")]);
    assert_eq!(
        errs,
        vec![
            SpecError {
                rule: Some(1),
                field: "actions.request_headers[\"x-a\"]".into(),
                message: "`x-a` is already rewritten by entry 0 of this rule's request_headers; keep one".into(),
            },
            SpecError {
                rule: Some(1),
                field: "name".into(),
                message: "rule name `a` is already used by rule[0]".into()
            },
        ]
    );
}

#[test]
fn unclosed_references_are_refused() {
    let e = only_error(rule("r", 1).req("X-A", "{var_host"));
    assert_eq!(e.message, "`{` at byte 0 opens a reference that is never closed with `}`");
}

#[test]
fn every_error_is_reported_at_once() {
    let errs = errors(vec![
        rule("ok", 1).req("X-A", "1"),
        rule("bad", 2)
            .when("uri_pth", "(")
            .req("Connection", "close")
            .req("X-B", "a\nb")
            .resp("X-C", "{var_nope}")
            .path("relative"),
    ]);
    let located: Vec<(Option<usize>, &str)> = errs.iter().map(|e| (e.rule, e.field.as_str())).collect();
    assert_eq!(
        located,
        vec![
            (Some(1), "condition[0].variable"),
            (Some(1), "condition[0].pattern"),
            (Some(1), "actions.request_headers[\"Connection\"]"),
            (Some(1), "actions.request_headers[\"X-B\"]"),
            (Some(1), "actions.response_headers[\"X-C\"]"),
            (Some(1), "actions.url_path"),
        ]
    );
    // A misspelt condition variable is not reported a second time through
    // the captures that refer to it.
    let errs = errors(vec![rule("r", 1).when("uri_pth", "(a)").req("X-A", "{var_uri_path_1}")]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
}
