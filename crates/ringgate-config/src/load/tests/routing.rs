//! The routing sections: path-based rules, redirects, priorities, error
//! pages and the settings that shape forwarded requests; each error names
//! the file, line, entry and field (and, for clashing paths, both paths).

use super::{errors, load};
use crate::*;

/// Two pools, two settings, an https listener's redirect target and a
/// path-based rule on `public`.
const SITE: &str = r#"
[[listener]]
name = "public"
listen = "127.0.0.1:8080"

[[listener]]
name = "secure"
listen = "127.0.0.1:8443"

[[backend_pool]]
name = "web"
addresses = ["127.0.0.1:9000"]

[[backend_pool]]
name = "api"
addresses = ["127.0.0.1:9001"]

[[backend_http_settings]]
name = "web-settings"

[[backend_http_settings]]
name = "api-settings"
override_backend_path = "/v2/"

[[redirect]]
name = "to-secure"
target_listener = "secure"

[[url_path_map]]
name = "site"
default_backend_pool = "web"
default_backend_http_settings = "web-settings"

[[url_path_map.path_rule]]
name = "api"
paths = ["/api/*", "/API2/*"]
backend_pool = "api"
backend_http_settings = "api-settings"

[[url_path_map.path_rule]]
name = "old"
paths = ["/old"]
redirect = "to-secure"

[[rule]]
name = "site"
listener = "public"
rule_type = "path_based"
url_path_map = "site"

[[rule]]
name = "secure"
listener = "secure"
backend_pool = "web"
backend_http_settings = "web-settings"
"#;

#[test]
fn a_path_based_site_loads_into_targets() {
    let cfg = load(SITE).unwrap_or_else(|e| panic!("{e}"));
    // The map's default, the api path rule, and the secure rule.
    let names: Vec<&str> = cfg.targets.iter().map(|t| t.display.as_str()).collect();
    assert_eq!(names, ["site", "site/api", "secure"]);
    let RuleKind::PathBased(m) = cfg.rules[0].kind else { panic!("{:?}", cfg.rules[0].kind) };
    let map = &cfg.url_path_maps[m.0];
    assert_eq!(
        map.path_rules[0].paths,
        vec![PathPattern::Prefix("/api/".into()), PathPattern::Prefix("/api2/".into())]
    );
    assert_eq!(map.path_rules[1].action, Action::Redirect(RedirectId(0)));
    assert_eq!(map.default, Action::Forward(TargetId(0)));
    let r = &cfg.redirects[0];
    assert_eq!((r.status, r.include_path, r.include_query_string), (301, true, true), "defaults");
    assert_eq!(r.target, RedirectTarget::Listener(ListenerId(1)));
    assert_eq!(cfg.settings[1].override_backend_path.as_deref(), Some("/v2/"));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let described = cfg.describe();
    assert!(described.contains("path rule api: /api/*, /api2/* -> pool api with settings api-settings"), "{described}");
    assert!(described.contains("path rule old: /old -> redirect to-secure (301 to listener secure)"), "{described}");
}

#[test]
fn http_to_https_is_three_lines() {
    let text = format!(
        "{}\n[[redirect]]\nname = \"to-https\"\ntarget_listener = \"secure\"\n",
        SITE.replace(
            "[[rule]]\nname = \"site\"\nlistener = \"public\"\nrule_type = \"path_based\"\nurl_path_map = \"site\"",
            "[[rule]]\nname = \"site\"\nlistener = \"public\"\nredirect = \"to-https\""
        )
    );
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.rules[0].kind, RuleKind::Basic(Action::Redirect(RedirectId(1))));
    assert_eq!(cfg.redirects[1].status, 301);
    // The map is now unused: a warning, and its paths still checked.
    assert!(
        cfg.warnings.iter().any(|w| w.message.contains("no [[rule]] uses this url_path_map")),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn clashing_paths_name_both() {
    let text = SITE.replace("paths = [\"/old\"]", "paths = [\"/api/old\", \"/API/*\"]");
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.contains("path_rule \"old\", field `paths[0]`: \"/api/old\" can never match: \"/api/*\" of path rule \"api\" (line 36) is tried first")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e
            .contains("field `paths[1]`: \"/API/*\" is already listed as \"/api/*\" by path rule \"api\" (line 36)")),
        "{errs:?}"
    );
    // The specific path first is fine.
    let ok = SITE.replace("paths = [\"/api/*\", \"/API2/*\"]", "paths = [\"/api/v1/health\", \"/api/*\"]");
    load(&ok).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn bad_paths_and_actions() {
    let cases = [
        ("paths = [\"/old\"]", "paths = [\"old\"]", "field `paths[0]`: \"old\" must start with '/'"),
        ("paths = [\"/old\"]", "paths = [\"/o*ld\"]", "'*' may only be the last character"),
        ("paths = [\"/old\"]", "paths = [\"/a/../old\"]", "is not in normal form (write \"/old\""),
        ("paths = [\"/old\"]", "paths = []", "field `paths`: must list at least one path"),
        (
            "redirect = \"to-secure\"",
            "redirect = \"to-secure\"\nbackend_pool = \"web\"\nbackend_http_settings = \"web-settings\"",
            "set either `backend_pool` + `backend_http_settings` or `redirect`, not both",
        ),
        (
            "redirect = \"to-secure\"",
            "",
            "path_rule \"old\", field `backend_pool`: missing: set `backend_pool` and `backend_http_settings` (to forward), or `redirect`",
        ),
        (
            "redirect = \"to-secure\"",
            "backend_pool = \"web\"",
            "field `backend_http_settings`: missing: `backend_pool` is set",
        ),
        (
            "redirect = \"to-secure\"",
            "redirect = \"to-nowhere\"",
            "refers to [[redirect]] \"to-nowhere\", which does not exist",
        ),
        (
            "url_path_map = \"site\"",
            "url_path_map = \"site\"\nbackend_pool = \"web\"",
            "a path-based rule takes its actions from its url_path_map: set default_backend_pool there",
        ),
        ("rule_type = \"path_based\"", "rule_type = \"weird\"", "\"weird\" is not a rule type"),
        (
            "target_listener = \"secure\"",
            "target_listener = \"secure\"\ntarget_url = \"https://x.example/\"",
            "set either `target_listener` or `target_url`, not both",
        ),
        ("target_listener = \"secure\"", "", "[[redirect]] \"to-secure\", field `target_listener`: missing"),
        (
            "target_listener = \"secure\"",
            "target_url = \"ftp://x\"",
            "must be an absolute URL starting with http:// or https://",
        ),
        ("target_listener = \"secure\"", "target_url = \"https://x.example/#top\"", "a fragment ('#') is not sent"),
        (
            "target_listener = \"secure\"",
            "target_listener = \"secure\"\ntype = \"moved\"",
            "\"moved\" is not a redirect type",
        ),
        ("target_listener = \"secure\"", "target_listener = \"secure\"\ntype = 300", "300 is not a redirect status"),
        (
            "override_backend_path = \"/v2/\"",
            "override_backend_path = \"v2\"",
            "field `override_backend_path`: must start with '/'",
        ),
        (
            "override_backend_path = \"/v2/\"",
            "host_name = \"a.example\"\npick_host_name_from_backend_address = true",
            "set either `host_name` or `pick_host_name_from_backend_address = true`, not both",
        ),
        (
            "override_backend_path = \"/v2/\"",
            "connection_draining = { enabled = true, timeout = 3601 }",
            "connection_draining, field `timeout`: 3601 s is out of range (allowed: 1 to 3600 seconds",
        ),
        ("override_backend_path = \"/v2/\"", "connection_draining = { enabled = true }", "field `timeout`: missing"),
    ];
    for (from, to, want) in cases {
        assert!(SITE.contains(from), "{from}");
        let errs = errors(&SITE.replacen(from, to, 1));
        assert!(errs.iter().any(|e| e.contains(want)), "{to:?}: want {want:?} in {errs:#?}");
        assert!(errs.iter().all(|e| e.starts_with("gw.toml:")), "{errs:?}");
    }
}

#[test]
fn a_map_belongs_to_one_rule() {
    let text = SITE.replace(
        "[[rule]]\nname = \"secure\"\nlistener = \"secure\"\nbackend_pool = \"web\"\nbackend_http_settings = \"web-settings\"",
        "[[rule]]\nname = \"secure\"\nlistener = \"secure\"\nurl_path_map = \"site\"",
    );
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.contains("url_path_map \"site\" is already used by rule \"site\"")), "{errs:?}");
}

#[test]
fn priorities_all_or_none_and_unique() {
    let shared = r#"
[[listener]]
name = "a"
listen = "127.0.0.1:8080"
host_names = ["a.example.com"]

[[listener]]
name = "b"
listen = "127.0.0.1:8080"
host_names = ["*.example.com", "api-?.example.*"]

[[backend_pool]]
name = "p"
addresses = ["127.0.0.1:9000"]

[[backend_http_settings]]
name = "s"

[[rule]]
name = "ra"
listener = "a"
priority = 10
backend_pool = "p"
backend_http_settings = "s"

[[rule]]
name = "rb"
listener = "b"
PRIORITY
backend_pool = "p"
backend_http_settings = "s"
"#;
    let cfg = load(&shared.replace("PRIORITY", "priority = 5")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.rules[1].priority, Some(5));
    assert_eq!(cfg.listeners[1].host_names[1], HostPattern::Glob("api-?.example.*".into()));
    let errs = errors(&shared.replace("PRIORITY", ""));
    assert!(
        errs.iter()
            .any(|e| e.contains("[[rule]] \"rb\", field `priority`: other rules on 127.0.0.1:8080 have a priority")),
        "{errs:?}"
    );
    let errs = errors(&shared.replace("PRIORITY", "priority = 10"));
    assert!(errs.iter().any(|e| e.contains("priority 10 is already taken by rule \"ra\"")), "{errs:?}");
    let errs = errors(&shared.replace("PRIORITY", "priority = 20001"));
    assert!(
        errs.iter().any(|e| e.contains("field `priority`: 20001 is out of range (allowed: 1 to 20000)")),
        "{errs:?}"
    );
}

#[test]
fn error_pages_are_read_at_load() {
    let dir = std::env::temp_dir().join(format!("ringgate-cfg-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("502.html"), "<h1>We'll be right back</h1>").unwrap();
    std::fs::write(dir.join("big.html"), vec![b'x'; ERROR_PAGE_MAX + 1]).unwrap();
    let file = dir.join("gw.toml");
    let with = |pages: &str| {
        let text = format!("[gateway]\nerror_pages = {{ {pages} }}\n{}", super::MINIMAL);
        load_str(&text, &file)
    };
    let cfg = with("\"502\" = \"502.html\"").unwrap_or_else(|e| panic!("{e}"));
    let page = &cfg.gateway.error_pages[0];
    assert_eq!((page.status, page.content_type.as_str()), (502, "text/html; charset=utf-8"));
    assert_eq!(&*page.body, b"<h1>We'll be right back</h1>");
    let msg =
        |pages: &str| with(pages).unwrap_err().errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(
        msg("\"502\" = \"missing.html\"").contains("[gateway], field `error_pages.502`: cannot read"),
        "{}",
        msg("\"502\" = \"missing.html\"")
    );
    assert!(msg("\"502\" = \"big.html\"").contains("over the 1048576 byte limit"));
    assert!(msg("\"200\" = \"502.html\"").contains("\"200\" is not a status the gateway answers itself"));
    assert!(msg("\"502\" = \"502.exe\"").contains("use .html, .htm, .txt, .json or .xml"));
    let _ = std::fs::remove_dir_all(&dir);
}

const REWRITES: &str = r#"
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

[[rewrite_rule_set.rule.condition]]
variable = "uri_path"
pattern = "^/article/(\\d+)$"
"#;

#[test]
fn rewrite_rule_sets_compile_at_load_and_attach_to_targets() {
    let text = format!("{SITE}{REWRITES}").replace(
        "backend_http_settings = \"api-settings\"\n",
        "backend_http_settings = \"api-settings\"\nrewrite_rule_set = \"security\"\n",
    );
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.rewrite_rule_sets.len(), 1);
    let set = &cfg.rewrite_rule_sets[0];
    assert_eq!(set.set.rules_in_order().map(|(n, _)| n).collect::<Vec<_>>(), ["hsts", "articles"]);
    assert_eq!(cfg.targets[1].rewrite_set, Some(RewriteSetId(0)), "the api path rule's target");
    assert_eq!(cfg.targets[0].rewrite_set, None);

    // A bad regex: the regex crate's words, at the pattern's line.
    let bad = format!("{SITE}{}", REWRITES.replace("^/article/(\\\\d+)$", "^/article/(\\\\d+$"));
    let errs = errors(&bad);
    assert!(
        errs.iter()
            .any(|e| e.contains("[[rewrite_rule_set]] \"security\" rule \"articles\", field `condition[0].pattern`")
                && e.contains("unclosed group")),
        "{errs:#?}"
    );
    // Framing and hop-by-hop headers cannot be rewritten; control
    // characters are refused at load.
    for (header, want) in [("Content-Length", "Content-Length"), ("Connection", "hop-by-hop"), ("X-A\\r\\nX-B", "")] {
        let text = format!("{SITE}{}", REWRITES.replace("\"Server\" = \"\"", &format!("\"{header}\" = \"1\"")));
        let errs = errors(&text);
        assert!(errs.iter().any(|e| e.contains("rule \"hsts\"") && e.contains(want)), "{header}: {errs:#?}");
    }
    let text = format!("{SITE}{}", REWRITES.replace("max-age=31536000", "a\\r\\nInjected: 1"));
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.contains("rule \"hsts\"") && e.contains("control character")), "{errs:#?}");
    // A rewrite on a redirect does nothing: refused.
    let text = format!("{SITE}{REWRITES}")
        .replace("redirect = \"to-secure\"\n", "redirect = \"to-secure\"\nrewrite_rule_set = \"security\"\n");
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.contains("a redirect forwards nothing")), "{errs:#?}");
    let text = format!("{SITE}{REWRITES}").replace(
        "backend_http_settings = \"api-settings\"\n",
        "backend_http_settings = \"api-settings\"\nrewrite_rule_set = \"securty\"\n",
    );
    let errs = errors(&text);
    assert!(
        errs.iter().any(
            |e| e.contains("refers to [[rewrite_rule_set]] \"securty\"") && e.contains("did you mean \"security\"")
        ),
        "{errs:#?}"
    );
}
