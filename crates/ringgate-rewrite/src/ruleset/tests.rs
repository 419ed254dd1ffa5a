//! Evaluation: order, conditions, captures, both phases, last-wins, and the
//! run-time drop of values that would be unsafe to send.

use super::*;
use crate::testutil::{RuleExt, TestVars, compiled, rule};
use crate::{Edits, HeaderEdit};

fn request(set: &RuleSet, vars: &TestVars) -> Edits {
    let mut e = Edits::new();
    set.request_edits(vars, &mut e);
    e
}

fn response(set: &RuleSet, vars: &TestVars) -> Edits {
    let mut e = Edits::new();
    set.response_edits(vars, &mut e);
    e
}

/// The header edits as `(name, value)`, `None` for a delete.
fn headers(e: &Edits) -> Vec<(String, Option<String>)> {
    e.headers().map(|h| (h.name.to_string(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()))).collect()
}

fn set_(name: &str, value: &str) -> (String, Option<String>) {
    (name.to_string(), Some(value.to_string()))
}

fn del(name: &str) -> (String, Option<String>) {
    (name.to_string(), None)
}

#[test]
fn rules_run_in_ascending_sequence_with_ties_in_listed_order() {
    let s = compiled(vec![
        rule("c", 20).path("/c"),
        rule("a", 10).path("/a").req("X-First", "a"),
        rule("b", 20).path("/b"),
    ]);
    assert_eq!(s.rules_in_order().collect::<Vec<_>>(), vec![("a", 10), ("c", 20), ("b", 20)]);
    let e = request(&s, &TestVars::new());
    // a, then c, then b: the last one listed among the equal sequences wins.
    assert_eq!(e.path(), Some(&b"/b"[..]));
    assert_eq!(e.matched_rules(), 3);
}

#[test]
fn all_conditions_of_a_rule_must_match() {
    let s =
        compiled(vec![rule("r", 1).when("uri_path", "^/api/").when("http_req_X-Env", "^prod$").req("X-Tier", "api")]);
    let both = TestVars::new().with("uri_path", "/api/v1").with("http_req_x-env", "prod");
    assert_eq!(headers(&request(&s, &both)), vec![set_("X-Tier", "api")]);
    let path_only = TestVars::new().with("uri_path", "/api/v1").with("http_req_x-env", "dev");
    assert!(request(&s, &path_only).is_empty());
    let header_only = TestVars::new().with("uri_path", "/web").with("http_req_x-env", "prod");
    assert!(request(&s, &header_only).is_empty());
}

#[test]
fn negate_inverts_a_condition_and_an_absent_variable_never_matches() {
    let s = compiled(vec![
        rule("no-debug", 1).unless("http_req_x-debug", ".").req("X-Debug-Off", "1"),
        rule("has-trace", 2).when("http_req_x-trace", "").req("X-Traced", "1"),
    ]);
    assert_eq!(headers(&request(&s, &TestVars::new())), vec![set_("X-Debug-Off", "1")]);
    let debug = TestVars::new().with("http_req_x-debug", "yes").with("http_req_x-trace", "");
    // The empty pattern matches any present value: a presence test.
    assert_eq!(headers(&request(&s, &debug)), vec![set_("X-Traced", "1")]);
}

#[test]
fn ignore_case_folds_the_pattern() {
    let s = compiled(vec![
        rule("i", 1).cond("uri_path", "^/API/", true, false).req("X-I", "1"),
        rule("s", 2).when("uri_path", "^/API/").req("X-S", "1"),
    ]);
    assert_eq!(headers(&request(&s, &TestVars::new().with("uri_path", "/api/x"))), vec![set_("X-I", "1")]);
    assert_eq!(
        headers(&request(&s, &TestVars::new().with("uri_path", "/API/x"))),
        vec![set_("X-I", "1"), set_("X-S", "1")]
    );
}

#[test]
fn capture_groups_rewrite_the_path_and_query() {
    let s = compiled(vec![
        rule("article", 1).when("uri_path", r"^/article/(\d+)$").path("/view").query("id={var_uri_path_1}"),
    ]);
    let e = request(&s, &TestVars::new().with("uri_path", "/article/42").with("query_string", "x=1"));
    assert_eq!((e.path(), e.query()), (Some(&b"/view"[..]), Some(&b"id=42"[..])));
    assert!(request(&s, &TestVars::new().with("uri_path", "/article/abc")).is_empty());
}

#[test]
fn a_literal_question_mark_in_the_path_splits_it_into_path_and_query() {
    let s = compiled(vec![rule("article", 1).when("uri_path", r"^/article/(\d+)").path("/view?id={var_uri_path_1}")]);
    let e = request(&s, &TestVars::new().with("uri_path", "/article/7"));
    assert_eq!((e.path(), e.query()), (Some(&b"/view"[..]), Some(&b"id=7"[..])));
    // The AppGW documentation's example: /fashion/shirts to
    // /buy.aspx?category=fashion&product=shirts.
    let s = compiled(vec![
        rule("shop", 1)
            .when("var_uri_path", "/(.+)/(.+)")
            .path("/buy.aspx?category={var_uri_path_1}&product={var_uri_path_2}"),
    ]);
    let e = request(&s, &TestVars::new().with("uri_path", "/fashion/shirts"));
    assert_eq!(e.path(), Some(&b"/buy.aspx"[..]));
    assert_eq!(e.query(), Some(&b"category=fashion&product=shirts"[..]));
}

#[test]
fn an_empty_query_removes_it_and_a_path_alone_keeps_it() {
    let s = compiled(vec![rule("strip", 1).query("")]);
    assert_eq!(request(&s, &TestVars::new()).query(), Some(&b""[..]));
    let s = compiled(vec![rule("move", 1).path("/new{var_uri_path}")]);
    let e = request(&s, &TestVars::new().with("uri_path", "/old"));
    assert_eq!((e.path(), e.query()), (Some(&b"/new/old"[..]), None));
}

#[test]
fn headers_are_set_and_deleted_in_both_phases() {
    let s = compiled(vec![
        rule("req", 1).req("X-Client", "{var_client_ip}:{var_client_port}").req("X-Debug", ""),
        rule("resp", 2).resp("Strict-Transport-Security", "max-age=31536000").resp("Server", ""),
    ]);
    assert!(s.has_request_phase() && s.has_response_phase());
    let vars = TestVars::new().with("client_ip", "192.0.2.7").with("client_port", "50123");
    assert_eq!(headers(&request(&s, &vars)), vec![set_("X-Client", "192.0.2.7:50123"), del("X-Debug")]);
    assert_eq!(
        headers(&response(&s, &vars)),
        vec![set_("Strict-Transport-Security", "max-age=31536000"), del("Server")]
    );
}

#[test]
fn response_rules_see_response_headers_and_status() {
    // The AppGW documentation's Location fix.
    let s = compiled(vec![
        rule("location", 1)
            .when("http_resp_Location", r"(https?):\/\/.*azurewebsites\.net(.*)$")
            .resp("Location", "{http_resp_Location_1}://contoso.com{http_resp_Location_2}"),
        rule("errors", 2).when("http_status", "^5").resp("Cache-Control", "no-store"),
    ]);
    assert!(!s.has_request_phase());
    let vars =
        TestVars::new().with("http_resp_location", "https://app.azurewebsites.net/path2").with("http_status", "302");
    assert_eq!(headers(&response(&s, &vars)), vec![set_("Location", "https://contoso.com/path2")]);
    let vars = TestVars::new().with("http_status", "503");
    assert_eq!(headers(&response(&s, &vars)), vec![set_("Cache-Control", "no-store")]);
    assert!(request(&s, &vars).is_empty());
}

#[test]
fn a_rule_with_both_sides_runs_each_in_its_phase() {
    let s = compiled(vec![rule("both", 1).when("uri_path", "^/app").req("X-App", "1").resp("X-Served-By", "ringgate")]);
    let vars = TestVars::new().with("uri_path", "/app/x");
    assert_eq!(headers(&request(&s, &vars)), vec![set_("X-App", "1")]);
    assert_eq!(headers(&response(&s, &vars)), vec![set_("X-Served-By", "ringgate")]);
    assert!(response(&s, &TestVars::new().with("uri_path", "/other")).is_empty());
}

#[test]
fn the_last_rule_to_edit_a_header_wins() {
    let s = compiled(vec![
        rule("set", 1).req("X-A", "first").req("X-B", "kept"),
        rule("delete", 2).req("x-a", ""),
        rule("set-again", 3).req("X-A", "last"),
        rule("delete-b", 4).req("X-B", ""),
        rule("path1", 5).path("/one"),
        rule("path2", 6).path("/two"),
    ]);
    let e = request(&s, &TestVars::new());
    assert_eq!(headers(&e), vec![set_("X-A", "last"), del("X-B")]);
    assert_eq!(e.header(b"x-a"), Some(HeaderEdit { name: "X-A", name_lower: "x-a", value: Some(b"last") }));
    assert_eq!(e.path(), Some(&b"/two"[..]));
}

#[test]
fn a_value_that_substitutes_to_nothing_deletes_the_header() {
    let s = compiled(vec![rule("cert", 1).req("X-Client-Cert", "{var_cookie_cert}")]);
    assert_eq!(headers(&request(&s, &TestVars::new())), vec![del("X-Client-Cert")]);
    let e = request(&s, &TestVars::new().with("cookie_cert", "abc"));
    assert_eq!(headers(&e), vec![set_("X-Client-Cert", "abc")]);
}

#[test]
fn header_capture_references_ignore_the_header_name_case() {
    let s = compiled(vec![
        rule("ua", 1).when("http_req_User-Agent", "(Mobile|Tablet)").req("X-Device", "{http_req_user-agent_1}"),
    ]);
    let e = request(&s, &TestVars::new().with("http_req_user-agent", "Mozilla/5.0 (Linux) Mobile Safari"));
    assert_eq!(headers(&e), vec![set_("X-Device", "Mobile")]);
}

#[test]
fn group_zero_is_the_whole_match_and_an_unmatched_group_is_empty() {
    let s = compiled(vec![
        rule("g", 1).when("uri_path", "/v(1)|/v(2)").req("X-G", "{var_uri_path_0}[{var_uri_path_1}][{var_uri_path_2}]"),
    ]);
    assert_eq!(headers(&request(&s, &TestVars::new().with("uri_path", "/x/v2/y"))), vec![set_("X-G", "/v2[][2]")]);
}

#[test]
fn captured_crlf_from_a_client_header_is_dropped_and_counted() {
    let s = compiled(vec![
        rule("safe", 1).req("X-Safe", "yes"),
        rule("echo", 2)
            .when("http_req_x-user", "(?s)^(.*)$")
            .req("X-User", "u={http_req_x-user_1}")
            .req("X-Safe", "{http_req_x-user}"),
    ]);
    let vars = TestVars::new().with("http_req_x-user", "bob\r\nX-Admin: 1");
    let e = request(&s, &vars);
    // Neither edit of the injected value is made; the earlier X-Safe stands.
    assert_eq!(headers(&e), vec![set_("X-Safe", "yes")]);
    assert_eq!(e.dropped(), 2);
    for bad in ["a\nb", "a\0b", "a\x01b", "a\x7fb"] {
        let e = request(&s, &TestVars::new().with("http_req_x-user", bad));
        assert_eq!(e.dropped(), 2, "{bad:?}");
    }
    let e = request(&s, &TestVars::new().with("http_req_x-user", "bob\tsmith"));
    assert_eq!(headers(&e), vec![set_("X-Safe", "bob\tsmith"), set_("X-User", "u=bob\tsmith")]);
    assert_eq!(e.dropped(), 0);
}

#[test]
fn a_url_that_is_unsafe_once_substituted_is_dropped() {
    let s = compiled(vec![rule("p", 1).when("http_req_x-to", "(?s)(.*)").path("{http_req_x-to_1}")]);
    for bad in ["relative", "/a b", "/a#frag", "/a?smuggled=1", "/a\r\nHost: evil", "/caf\u{e9}", ""] {
        let e = request(&s, &TestVars::new().with("http_req_x-to", bad));
        assert_eq!((e.path(), e.dropped()), (None, 1), "{bad:?}");
    }
    let e = request(&s, &TestVars::new().with("http_req_x-to", "/ok/%20"));
    assert_eq!((e.path(), e.dropped()), (Some(&b"/ok/%20"[..]), 0));

    let s = compiled(vec![rule("q", 1).query("a={http_req_x-q}")]);
    for bad in ["1#x", "1 2", "1\n2"] {
        assert_eq!(request(&s, &TestVars::new().with("http_req_x-q", bad)).dropped(), 1, "{bad:?}");
    }
    assert_eq!(request(&s, &TestVars::new().with("http_req_x-q", "1?2")).query(), Some(&b"a=1?2"[..]));
}

#[test]
fn a_rules_path_and_query_are_made_together_or_not_at_all() {
    let s = compiled(vec![rule("both", 1).path("/view").query("id={http_req_x-id}"), rule("hdr", 2).req("X-A", "1")]);
    let e = request(&s, &TestVars::new().with("http_req_x-id", "1 2"));
    assert_eq!((e.path(), e.query(), e.dropped()), (None, None, 1));
    assert_eq!(headers(&e), vec![set_("X-A", "1")]);
}

#[test]
fn a_non_matching_set_leaves_edits_empty_and_keeps_their_buffers() {
    let s = compiled(vec![
        rule("r", 1)
            .when("uri_path", r"^/article/(\d+)")
            .path("/view?id={var_uri_path_1}")
            .req("X-A", "{var_uri_path}"),
    ]);
    let mut e = Edits::new();
    s.request_edits(&TestVars::new().with("uri_path", "/article/1"), &mut e);
    assert!(!e.is_empty());
    let cap = e.buf.capacity();
    s.request_edits(&TestVars::new().with("uri_path", "/other"), &mut e);
    assert!(e.is_empty());
    assert_eq!((e.headers().len(), e.path(), e.query(), e.dropped(), e.matched_rules()), (0, None, None, 0, 0));
    assert_eq!(e.buf.capacity(), cap);
    // A fresh Edits that meets no match never allocates its buffers at all.
    let mut fresh = Edits::new();
    s.request_edits(&TestVars::new().with("uri_path", "/other"), &mut fresh);
    assert!(fresh.is_empty() && fresh.buf.capacity() == 0);
}

#[test]
fn one_edits_serves_several_rule_sets() {
    let a = compiled(vec![rule("a", 1).when("uri_path", "/(a+)").req("X-A", "{var_uri_path_1}")]);
    let b = compiled(vec![rule("b", 1).when("uri_path", "/(b+)").req("X-B", "{var_uri_path_1}")]);
    let mut e = Edits::new();
    for _ in 0..3 {
        a.request_edits(&TestVars::new().with("uri_path", "/aa"), &mut e);
        assert_eq!(headers(&e), vec![set_("X-A", "aa")]);
        b.request_edits(&TestVars::new().with("uri_path", "/bbb"), &mut e);
        assert_eq!(headers(&e), vec![set_("X-B", "bbb")]);
    }
}

#[test]
fn cookies_are_variables() {
    let s = compiled(vec![rule("c", 1).when("cookie_tier", "^(gold|silver)$").req("X-Tier", "{var_cookie_tier_1}")]);
    assert_eq!(headers(&request(&s, &TestVars::new().with("cookie_tier", "gold"))), vec![set_("X-Tier", "gold")]);
}

#[test]
fn rule_sets_are_shareable_across_workers() {
    fn shareable<T: Send + Sync>() {}
    shareable::<RuleSet>();
    fn sendable<T: Send>() {}
    sendable::<Edits>();
}

/// A captured value that carries `b` in its middle.
fn probe(b: u8) -> Vec<u8> {
    vec![b'a', b, b'z']
}

#[test]
fn every_byte_from_a_client_is_either_passed_safely_or_dropped() {
    let s = compiled(vec![
        rule("h", 1).when("http_req_x-in", "(?s-u)a(.)z").req("X-Out", "<{http_req_x-in_1}>"),
        rule("p", 2).when("http_req_x-in", "(?s-u)a(.)z").path("/p{http_req_x-in_1}").query("q{http_req_x-in}"),
    ]);
    for b in 0..=255u8 {
        let e = request(&s, &TestVars::new().with("http_req_x-in", probe(b)));
        let header_ok = header_value_byte(b);
        let url_ok = target_byte(b) && b != b'?';
        assert_eq!(e.header(b"x-out").is_some(), header_ok, "byte {b:#04x}");
        assert_eq!(e.path().is_some(), url_ok, "byte {b:#04x}");
        assert_eq!(e.dropped(), u32::from(!header_ok) + u32::from(!url_ok), "byte {b:#04x}");
        if let Some(v) = e.header(b"x-out").and_then(|h| h.value) {
            assert_eq!(v, [b'<', b, b'>']);
        }
    }
}

mod props {
    //! Property: whatever bytes the client sends, no returned header value
    //! contains a control character other than tab, and no path or query
    //! anything a request target cannot carry.
    use super::*;
    use proptest::prelude::*;

    fn rules() -> RuleSet {
        compiled(vec![
            rule("h", 1)
                .when("http_req_x-in", "(?s-u)^(.*?)(;.*)?$")
                .when("uri_path", "(?s-u)^/(.*)$")
                .req("X-1", "a{http_req_x-in_1}b")
                .req("X-2", "{http_req_x-in}")
                .req("X-3", "{var_uri_path_1}|{var_query_string}")
                .resp("X-4", "{http_req_x-in_2}{http_resp_x-back}"),
            rule("u", 2)
                .when("uri_path", "(?s-u)^/(.*)$")
                .path("/{var_uri_path_1}")
                .query("q={http_req_x-in}&{var_query_string}"),
        ])
    }

    proptest! {
        #[test]
        fn no_returned_value_contains_a_control_byte(
            x_in in proptest::collection::vec(any::<u8>(), 0..24),
            path in proptest::collection::vec(any::<u8>(), 0..24),
            query in proptest::collection::vec(any::<u8>(), 0..24),
            back in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let s = rules();
            let mut path_v = b"/".to_vec();
            path_v.extend_from_slice(&path);
            let vars = TestVars::new()
                .with("http_req_x-in", &x_in)
                .with("uri_path", &path_v)
                .with("query_string", &query)
                .with("http_resp_x-back", &back);
            let mut e = Edits::new();
            for phase in 0..2 {
                if phase == 0 { s.request_edits(&vars, &mut e) } else { s.response_edits(&vars, &mut e) }
                for h in e.headers() {
                    if let Some(v) = h.value {
                        prop_assert!(!v.is_empty());
                        prop_assert!(v.iter().all(|&b| header_value_byte(b)), "{}: {:?}", h.name, v);
                    }
                }
                if let Some(p) = e.path() {
                    prop_assert!(p.starts_with(b"/") && p.iter().all(|&b| target_byte(b) && b != b'?'), "{:?}", p);
                }
                if let Some(q) = e.query() {
                    prop_assert!(q.iter().all(|&b| target_byte(b)), "{:?}", q);
                }
            }
            // Clean input is never dropped.
            s.request_edits(&vars, &mut e);
            if x_in.iter().all(|&b| header_value_byte(b)) {
                prop_assert!(e.header(b"x-2").is_some() || x_in.is_empty());
            }
        }
    }
}
