//! `ringgate route --config FILE URL`: where a request would go, answered by
//! the data plane's own routing without starting the gateway. A path-based
//! site with several pools, a redirect from http to https and one to a URL,
//! `override_backend_path`, `host_name`, `pick_host_name_from_backend_address`,
//! a rewrite rule set, multi-site listeners ordered by priority; traversal,
//! an unknown host, an empty pool, bad URLs and bad configurations. Every
//! key line is checked exactly, and so is the exit status. The last test
//! asks a running gateway the same questions.

use std::path::{Path, PathBuf};
use std::process::Command;

use ringgate_e2e::*;

/// `www` (priority 10), `shops` (20) and `promo` (30) share one address;
/// `insecure` redirects to the https listener `secure`.
const SITE: &str = r#"[gateway]
admin_listen = "off"

[[listener]]
name = "www"
listen = "127.0.0.1:18080"
host_names = ["www.example.com", "example.com"]

[[listener]]
name = "shops"
listen = "127.0.0.1:18080"
host_names = ["*.example.com", "shop-?.example.*"]

[[listener]]
name = "promo"
listen = "127.0.0.1:18080"
host_names = ["promo.example.com"]

[[listener]]
name = "secure"
listen = "127.0.0.1:18443"
protocol = "https"
certificate = "cert.pem"
private_key = "key.pem"

[[listener]]
name = "insecure"
listen = "127.0.0.1:18081"

[[backend_pool]]
name = "web"
addresses = ["10.0.0.1", "10.0.0.2:8080"]

[[backend_pool]]
name = "api"
addresses = ["10.0.1.1"]

[[backend_pool]]
name = "admin"
addresses = ["10.0.2.1"]

[[backend_pool]]
name = "empty"
addresses = []

[[backend_http_settings]]
name = "plain"

[[backend_http_settings]]
name = "api-v2"
port = 9000
override_backend_path = "/v2/"
host_name = "api.internal"

[[backend_http_settings]]
name = "by-address"
pick_host_name_from_backend_address = true
connection_draining = { enabled = true, timeout = 30 }

[[redirect]]
name = "to-https"
target_listener = "secure"

[[redirect]]
name = "archive"
type = "permanent_redirect"
target_url = "https://archive.example/"
include_query_string = false

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

[[rewrite_rule_set.rule]]
name = "tag"
sequence = 30
request_headers = { "X-Forwarded-Host" = "{var_host}" }

[[url_path_map]]
name = "site"
default_backend_pool = "web"
default_backend_http_settings = "plain"
default_rewrite_rule_set = "security"

[[url_path_map.path_rule]]
name = "api"
paths = ["/api/*"]
backend_pool = "api"
backend_http_settings = "api-v2"

[[url_path_map.path_rule]]
name = "admin"
paths = ["/admin/*", "/images/secret.png"]
backend_pool = "admin"
backend_http_settings = "by-address"

[[url_path_map.path_rule]]
name = "images"
paths = ["/images/*"]
backend_pool = "web"
backend_http_settings = "plain"

[[url_path_map.path_rule]]
name = "old"
paths = ["/old/*"]
redirect = "archive"

[[url_path_map.path_rule]]
name = "soon"
paths = ["/soon"]
backend_pool = "empty"
backend_http_settings = "plain"

[[rule]]
name = "www"
listener = "www"
priority = 10
rule_type = "path_based"
url_path_map = "site"

[[rule]]
name = "shops"
listener = "shops"
priority = 20
backend_pool = "web"
backend_http_settings = "plain"

[[rule]]
name = "promo"
listener = "promo"
priority = 30
backend_pool = "web"
backend_http_settings = "plain"

[[rule]]
name = "insecure"
listener = "insecure"
redirect = "to-https"

[[rule]]
name = "secure"
listener = "secure"
backend_pool = "web"
backend_http_settings = "plain"
"#;

/// A scratch directory holding `gw.toml` and, when it names them, the
/// https listener's certificate and key.
struct Site {
    dir: TempDir,
}

impl Site {
    fn new(config: &str) -> Site {
        let dir = TempDir::new("route");
        std::fs::write(dir.path().join("gw.toml"), config).expect("write config");
        if config.contains("cert.pem") {
            let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("self-signed certificate");
            std::fs::write(dir.path().join("cert.pem"), c.cert.pem()).expect("write cert");
            std::fs::write(dir.path().join("key.pem"), c.signing_key.serialize_pem()).expect("write key");
        }
        Site { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("gw.toml")
    }

    fn route(&self, args: &[&str]) -> Routed {
        route(&self.config(), args)
    }
}

struct Routed {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Routed {
    /// The value of the `key:` line.
    fn get(&self, key: &str) -> &str {
        let prefix = format!("{key}:");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::trim_start))
            .unwrap_or_else(|| panic!("no `{key}:` line in\n{}{}", self.stdout, self.stderr))
    }

    fn has(&self, key: &str) -> bool {
        self.stdout.lines().any(|l| l.starts_with(&format!("{key}:")))
    }

    fn expect_code(&self, code: i32) -> &Routed {
        assert_eq!(self.code, Some(code), "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

fn route(config: &Path, args: &[&str]) -> Routed {
    let out = Command::new(binary())
        .arg("route")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run ringgate route");
    Routed {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn traversal_is_matched_after_normalization_and_forwarded_normalized() {
    let site = Site::new(SITE);
    let r = site.route(&["http://www.example.com:18080/images/../admin/x?q=1"]);
    r.expect_code(0);
    assert_eq!(r.get("request"), "GET /images/../admin/x?q=1 (Host: www.example.com:18080)");
    assert_eq!(r.get("address"), "127.0.0.1:18080 (http), by the URL's port 18080");
    assert_eq!(r.get("rule"), "www (path-based, url_path_map site)");
    assert_eq!(r.get("path"), "/admin/x (normalized from /images/../admin/x)");
    assert_eq!(r.get("path rule"), "admin (/admin/*)");
    assert_eq!(r.get("target"), "www/admin");
    assert_eq!(r.get("pool"), "admin");
    assert_eq!(r.get("settings"), "by-address (http, port 80, request_timeout 30s, connection draining 30s)");
    assert_eq!(r.get("servers"), "10.0.2.1:80");
    assert_eq!(r.get("backend path"), "/admin/x?q=1 (normalized)");
    assert_eq!(r.get("host header"), "10.0.2.1 (each server's own host name: pick_host_name_from_backend_address)");
    assert_eq!(r.get("rewrite"), "none");
    assert_eq!(r.get("result"), "forward to pool admin (1 server) through settings by-address");

    // An exact path beats the later prefix that also covers it; an escaped
    // unreserved character is the character itself.
    let r = site.route(&["http://www.example.com:18080/%69mages/secret.png"]);
    r.expect_code(0);
    assert_eq!(r.get("path"), "/images/secret.png (normalized from /%69mages/secret.png)");
    assert_eq!(r.get("path rule"), "admin (/images/secret.png)");
    let r = site.route(&["http://www.example.com:18080/images/logo.png"]);
    assert_eq!(r.get("path"), "/images/logo.png");
    assert_eq!(r.get("path rule"), "images (/images/*)");
    assert_eq!(r.get("backend path"), "/images/logo.png (as sent)");
}

#[test]
fn override_backend_path_and_host_name_shape_what_the_server_receives() {
    let site = Site::new(SITE);
    let r = site.route(&["http://www.example.com:18080/API/users?id=7"]);
    r.expect_code(0);
    assert_eq!(r.get("path"), "/API/users");
    assert_eq!(r.get("path rule"), "api (/api/*)");
    assert_eq!(r.get("servers"), "10.0.1.1:9000");
    assert_eq!(r.get("backend path"), "/v2/users?id=7 (override_backend_path \"/v2/\" in place of \"/API/\")");
    assert_eq!(r.get("host header"), "api.internal (host_name of settings api-v2)");
    let r = site.route(&["http://www.example.com:18080/api/../api/./x"]);
    assert_eq!(r.get("backend path"), "/v2/x (normalized, then override_backend_path \"/v2/\" in place of \"/api/\")");
}

#[test]
fn rewrite_rules_say_which_match_and_what_they_change() {
    let site = Site::new(SITE);
    let r = site.route(&["http://www.example.com:18080/article/42?ref=home"]);
    r.expect_code(0);
    assert_eq!(r.get("path rule"), "default (no path rule matched)");
    assert_eq!(r.get("target"), "www");
    assert_eq!(r.get("servers"), "10.0.0.1:80, 10.0.0.2:8080");
    assert_eq!(r.get("backend path"), "/view?id=42 (rewritten by rule set security)");
    assert_eq!(r.get("host header"), "www.example.com:18080 (the client's)");
    assert_eq!(r.get("rewrite"), "rule set security");
    let rules: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(
        rules,
        [
            "  hsts (sequence 10): applies to responses: set Strict-Transport-Security: max-age=31536000; delete Server",
            "  articles (sequence 20): matches: URL path /view; query id=42",
            "  tag (sequence 30): matches: set request header X-Forwarded-Host: www.example.com",
        ]
    );
    let r = site.route(&["--host", "Example.com", "--port", "18080", "/articles"]);
    r.expect_code(0);
    assert!(r.stdout.contains("  articles (sequence 20): does not match\n"), "{}", r.stdout);
    assert!(r.stdout.contains("X-Forwarded-Host: Example.com\n"), "{}", r.stdout);
    assert_eq!(r.get("backend path"), "/articles (as sent)");
}

#[test]
fn priorities_pick_the_lowest_matching_rule_first() {
    let site = Site::new(SITE);
    let listener = |url: &str| site.route(&[url]).expect_code(0).get("listener").to_string();
    assert_eq!(
        listener("http://WWW.example.com:18080/"),
        "www: priority 10, the lowest on 127.0.0.1:18080 whose listener matches: exact host name \"www.example.com\" matched \"www.example.com\""
    );
    // promo.example.com is promo's exact name, but shops' wildcard has the
    // lower priority number: it is tried first and wins.
    assert_eq!(
        listener("http://promo.example.com:18080/"),
        "shops: priority 20, the lowest on 127.0.0.1:18080 whose listener matches: wildcard \"*.example.com\" matched \"promo.example.com\""
    );
    assert_eq!(
        listener("http://shop-1.example.org:18080/"),
        "shops: priority 20, the lowest on 127.0.0.1:18080 whose listener matches: pattern \"shop-?.example.*\" matched \"shop-1.example.org\""
    );
}

#[test]
fn redirects_show_the_exact_location() {
    let site = Site::new(SITE);
    let r = site.route(&["http://shop.example.com:18081/cart?id=1"]);
    r.expect_code(0);
    assert_eq!(r.get("listener"), "insecure: basic listener, the only one on 127.0.0.1:18081");
    assert_eq!(r.get("rule"), "insecure (basic)");
    assert_eq!(r.get("redirect"), "to-https (301 Moved Permanently)");
    assert_eq!(r.get("location"), "https://shop.example.com:18443/cart?id=1");
    assert_eq!(r.get("result"), "redirect 301 to https://shop.example.com:18443/cart?id=1");
    assert!(!r.has("pool"), "{}", r.stdout);
    // A path rule's redirect to a URL, without the query.
    let r = site.route(&["http://www.example.com:18080/old/page?x=1"]);
    r.expect_code(0);
    assert_eq!(r.get("path rule"), "old (/old/*)");
    assert_eq!(r.get("redirect"), "archive (308 Permanent Redirect)");
    assert_eq!(r.get("location"), "https://archive.example/old/page");
}

#[test]
fn an_unknown_host_is_404_no_route() {
    let site = Site::new(SITE);
    let r = site.route(&["http://nope.example.org:18080/"]);
    r.expect_code(1);
    assert!(!r.has("listener"), "{}", r.stdout);
    assert_eq!(
        r.get("result"),
        "404 NO_ROUTE: no listener on 127.0.0.1:18080 answers host \"nope.example.org:18080\" (listeners there: www (www.example.com, example.com), shops (*.example.com, shop-?.example.*), promo (promo.example.com))"
    );
}

#[test]
fn an_empty_pool_is_502_pool_empty() {
    let site = Site::new(SITE);
    let r = site.route(&["http://www.example.com:18080/soon"]);
    r.expect_code(1);
    assert_eq!(r.get("path rule"), "soon (/soon)");
    assert_eq!(r.get("pool"), "empty");
    assert_eq!(r.get("servers"), "none (the pool is empty)");
    assert_eq!(r.get("result"), "502 POOL_EMPTY: backend pool \"empty\" is empty; add addresses to it");
}

#[test]
fn nothing_listening_on_the_port_is_a_refused_connection() {
    let site = Site::new(SITE);
    let r = site.route(&["http://www.example.com:9999/"]);
    r.expect_code(1);
    assert_eq!(
        r.get("result"),
        "nothing listens on port 9999 (the URL's port 9999): the connection would be refused (listening: 127.0.0.1:18080 (listeners www, shops, promo), 127.0.0.1:18443 (listener secure), 127.0.0.1:18081 (listener insecure))"
    );
    // Without a port, the URL means port 80.
    let r = site.route(&["http://www.example.com/"]);
    r.expect_code(1);
    assert!(r.get("result").starts_with("nothing listens on port 80 (the URL's port 80 (http default))"));
}

#[test]
fn listener_and_port_pick_the_address() {
    let site = Site::new(SITE);
    let r = site.route(&["--listener", "insecure", "--host", "a.example", "/x"]);
    r.expect_code(0);
    assert_eq!(r.get("address"), "127.0.0.1:18081 (http), by --listener insecure");
    assert_eq!(r.get("location"), "https://a.example:18443/x");
    // The URL's host stays the Host; --port says where it connects.
    let r = site.route(&["--port", "18443", "https://www.example.com/"]);
    r.expect_code(0);
    assert_eq!(r.get("address"), "127.0.0.1:18443 (https), by --port 18443");
    assert_eq!(r.get("host header"), "www.example.com (the client's)");
    // --listener names an address; the Host still picks among its listeners.
    let r = site.route(&["--listener", "promo", "http://www.example.com/"]);
    r.expect_code(0);
    assert!(r.get("listener").starts_with("www: priority 10"), "{}", r.stdout);
    assert_eq!(r.get("note"), "--listener promo shares 127.0.0.1:18080 with www, which the Host picked");
}

#[test]
fn bad_urls_and_questions_without_one_answer_exit_2_with_one_line() {
    let site = Site::new(SITE);
    let cases: &[(&[&str], &str)] = &[
        (
            &["http://www.example.com:18080/a b"],
            "ringgate route: the URL contains a space (write it as %20) at position 31: \"http://www.example.com:18080/a b\"",
        ),
        (
            &["/images/%zz"],
            "ringgate route: invalid percent-encoding \"%zz\" in the path \"/images/%zz\": '%' must be followed by two hex digits",
        ),
        (&["ftp://x/"], "ringgate route: only http:// and https:// URLs reach a listener (got \"ftp://\")"),
        (
            &["www.example.com/x"],
            "ringgate route: \"www.example.com/x\" is neither a URL (http://host[:port]/path) nor a path (it must start with '/')",
        ),
        (&["http://www.example.com:80800/"], "ringgate route: port \"80800\" is not a number from 1 to 65535"),
        (&["--host", "a b", "/"], "ringgate route: --host contains a space (write it as %20) at position 2: \"a b\""),
        (
            &["--listener", "nope", "/"],
            "ringgate route: --listener nope: no such [[listener]] (defined: www, shops, promo, secure, insecure)",
        ),
        (
            &["/x"],
            "ringgate route: the configuration listens on 3 addresses (127.0.0.1:18080 (listeners www, shops, promo), 127.0.0.1:18443 (listener secure), 127.0.0.1:18081 (listener insecure)): give a full URL with its port, --port N or --listener NAME",
        ),
        (&["-X", "G T", "/"], "ringgate route: --method \"G T\" is not an HTTP method (a token such as GET or POST)"),
    ];
    for (args, want) in cases {
        let r = site.route(args);
        assert_eq!(r.code, Some(2), "{args:?}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr, format!("{want}\n"), "{args:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
}

#[test]
fn a_port_on_several_addresses_must_be_named() {
    let text = SITE.replace(
        "[[listener]]\nname = \"insecure\"\nlisten = \"127.0.0.1:18081\"",
        "[[listener]]\nname = \"insecure\"\nlisten = \"127.0.0.2:18080\"",
    );
    let site = Site::new(&text);
    let r = site.route(&["http://shop.example.com:18080/"]);
    r.expect_code(2);
    assert_eq!(
        r.stderr,
        "ringgate route: port 18080 (the URL's port 18080) is listened on at 2 addresses: 127.0.0.1:18080 (listeners www, shops, promo), 127.0.0.2:18080 (listener insecure); name one with --listener NAME\n"
    );
    // An IP in the URL tells them apart.
    let r = site.route(&["http://127.0.0.2:18080/"]);
    r.expect_code(0);
    assert_eq!(r.get("address"), "127.0.0.2:18080 (http), by the URL's port 18080 and its address");
}

#[test]
fn a_broken_configuration_is_reported_as_check_reports_it() {
    let site = Site::new(&SITE.replace("backend_pool = \"api\"", "backend_pool = \"apis\""));
    let r = site.route(&["http://www.example.com:18080/"]);
    r.expect_code(2);
    let check = Command::new(binary()).arg("check").arg("--config").arg(site.config()).output().expect("check");
    assert_eq!(r.stderr, String::from_utf8_lossy(&check.stderr));
    assert!(r.stderr.contains("refers to [[backend_pool]] \"apis\", which does not exist"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn json_says_the_same() {
    let site = Site::new(SITE);
    let r = site.route(&["--json", "http://www.example.com:18080/images/../admin/x?q=1"]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["outcome"], "forward");
    assert_eq!(v["listener"]["name"], "www");
    assert_eq!(v["listener"]["match"], "priority");
    assert_eq!(v["listener"]["pattern"], "www.example.com");
    assert_eq!(v["path"]["normalized"], "/admin/x");
    assert_eq!(v["path"]["path_rule"], "admin");
    assert_eq!(v["target"]["pool"], "admin");
    assert_eq!(v["target"]["backend_target"], "/admin/x?q=1");
    assert_eq!(v["target"]["host_header"], "10.0.2.1");
    let r = site.route(&["--json", "http://www.example.com:18080/soon"]);
    r.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(
        (v["outcome"].as_str(), v["status"].as_u64(), v["code"].as_str()),
        (Some("pool_empty"), Some(502), Some("POOL_EMPTY"))
    );
    let r = site.route(&["--json", "http://www.example.com:18080/article/7"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    let rules = v["target"]["rewrite"]["rules"].as_array().expect("rules");
    assert_eq!(rules[0]["name"], "hsts");
    assert_eq!(rules[0]["matches"], serde_json::Value::Null);
    assert_eq!(rules[0]["applies_to_responses"], true);
    assert_eq!(rules[1]["matches"], true);
    assert_eq!(v["target"]["rewrite"]["url"], "/view?id=7");
}

/// Without priorities: exact names, then `*.suffix` wildcards (longest
/// first), then other patterns, then the basic listener.
#[test]
fn without_priorities_exact_then_wildcard_then_pattern_then_basic() {
    let text = r#"
[gateway]
admin_listen = "off"

[[listener]]
name = "exact"
listen = "127.0.0.1:18090"
host_names = ["a.example.com"]

[[listener]]
name = "wild"
listen = "127.0.0.1:18090"
host_names = ["*.example.com"]

[[listener]]
name = "glob"
listen = "127.0.0.1:18090"
host_names = ["api-?.example.*"]

[[listener]]
name = "basic"
listen = "127.0.0.1:18090"

[[backend_pool]]
name = "p"
addresses = ["10.0.0.1"]

[[backend_http_settings]]
name = "s"

[[rule]]
name = "exact"
listener = "exact"
backend_pool = "p"
backend_http_settings = "s"

[[rule]]
name = "wild"
listener = "wild"
backend_pool = "p"
backend_http_settings = "s"

[[rule]]
name = "glob"
listener = "glob"
backend_pool = "p"
backend_http_settings = "s"

[[rule]]
name = "basic"
listener = "basic"
backend_pool = "p"
backend_http_settings = "s"
"#;
    let site = Site::new(text);
    let cases = [
        ("a.example.com", "exact: exact host name \"a.example.com\" matched"),
        (
            "api-1.example.com",
            "wild: wildcard \"*.example.com\" matched \"api-1.example.com\" (no exact host name did)",
        ),
        (
            "api-1.example.org",
            "glob: pattern \"api-?.example.*\" matched \"api-1.example.org\" (no exact host name or *.suffix wildcard did)",
        ),
        (
            "other.org",
            "basic: basic listener: no host name of the other listeners on 127.0.0.1:18090 matched \"other.org\"",
        ),
    ];
    for (host, want) in cases {
        let r = site.route(&["--host", host, "--port", "18090", "/"]);
        r.expect_code(0);
        assert_eq!(r.get("listener"), want, "{host}");
    }
    let r = site.route(&["--json", "--port", "18090", "--host", "api-1.example.org", "/"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["listener"]["match"], "glob");
    let r = site.route(&["--port", "18090", "/"]);
    assert_eq!(r.get("listener"), "basic: basic listener on 127.0.0.1:18090 (the request has no Host)");
    assert_eq!(r.get("host header"), "10.0.0.1:80 (the client sent none: the server's address)");
}

/// The gateway, run on the same kind of configuration, does what `ringgate
/// route` says: the pool, the path and the Host each server receives.
#[test]
fn route_agrees_with_the_running_gateway() {
    let [web, api, admin] = ["web", "api", "admin"].map(|n| Backend::start_ok(n).expect("backend"));
    let config = format!(
        r#"[gateway]
workers = 1
admin_listen = "127.0.0.1:0"
access_log = "stdout"
drain_timeout = 5

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[backend_pool]]
name = "web"
addresses = ["{web}"]

[[backend_pool]]
name = "api"
addresses = ["{api}"]

[[backend_pool]]
name = "admin"
addresses = ["{admin}"]

[[backend_http_settings]]
name = "plain"

[[backend_http_settings]]
name = "api-v2"
override_backend_path = "/v2/"
host_name = "api.internal"

[[backend_http_settings]]
name = "by-address"
pick_host_name_from_backend_address = true

[[rewrite_rule_set]]
name = "security"

[[rewrite_rule_set.rule]]
name = "articles"
url_path = "/view"
url_query = "id={{var_uri_path_1}}"

[[rewrite_rule_set.rule.condition]]
variable = "uri_path"
pattern = "^/article/(\\d+)$"

[[url_path_map]]
name = "site"
default_backend_pool = "web"
default_backend_http_settings = "plain"
default_rewrite_rule_set = "security"

[[url_path_map.path_rule]]
name = "api"
paths = ["/api/*"]
backend_pool = "api"
backend_http_settings = "api-v2"

[[url_path_map.path_rule]]
name = "admin"
paths = ["/admin/*"]
backend_pool = "admin"
backend_http_settings = "by-address"

[[rule]]
name = "site"
listener = "public"
url_path_map = "site"
"#,
        web = web.addr(),
        api = api.addr(),
        admin = admin.addr(),
    );
    let gw = Gateway::start(&config);
    let addr = gw.addr("public");
    for target in ["/images/../admin/x?q=1", "/API/./users?id=7", "/article/42?ref=home", "/%61pi/", "/x/../../y"] {
        let r = route(gw.config_path(), &["--listener", "public", "--host", "shop.example", target]);
        r.expect_code(0);
        let pool = r.get("pool").to_string();
        let sent_path = r.get("backend path").split(" (").next().unwrap_or_default().to_string();
        let sent_host = r.get("host header").split(" (").next().unwrap_or_default().to_string();

        let mut c = Client::connect(addr).expect("connect");
        c.send(format!("GET {target} HTTP/1.1\r\nHost: shop.example\r\n\r\n").as_bytes()).expect("send");
        let resp = c.read_response(false).expect("response");
        assert_eq!(resp.status, 200, "{target}: {}", gw.stderr());
        assert_eq!(resp.header("x-backend"), Some(pool.as_str()), "{target}: route said pool {pool}");
        let backend = match pool.as_str() {
            "api" => &api,
            "admin" => &admin,
            _ => &web,
        };
        let seen = backend.recorded().into_iter().rfind(|q| q.target != "/").expect("a recorded request");
        assert_eq!(seen.target, sent_path, "{target}: the path the server received");
        let host = seen.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("host")).map(|(_, v)| v.clone());
        assert_eq!(host.as_deref(), Some(sent_host.as_str()), "{target}: the Host the server received");
    }
}
