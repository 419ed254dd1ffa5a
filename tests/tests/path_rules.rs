//! Application Gateway's rule model end to end: path-based rules to several
//! pools (prefix and exact paths, the default, case, the query string),
//! traversal and percent-encoding attempts that must not reach the wrong
//! pool, redirects (HTTP to HTTPS keeping path and query, to a listener, to
//! a URL), `override_backend_path`, `pick_host_name_from_backend_address`,
//! priorities between overlapping multi-site listeners, and `*`/`?` host
//! patterns. Every answer is checked at the client and at the backend.

use std::net::SocketAddr;

use ringgate_e2e::*;

struct Site {
    gw: Gateway,
    web: Backend,
    api: Backend,
    admin: Backend,
    files: Backend,
}

/// `public` routes `/api/*` to api (with `override_backend_path = "/v2/"`),
/// `/admin/*` to admin, `/robots.txt` (exact) to files, `/old/*` to a
/// redirect, and the rest to web; `secure` is an https listener that
/// `insecure` redirects to.
fn site() -> Site {
    let [web, api, admin, files] = ["web", "api", "admin", "files"].map(|n| Backend::start_ok(n).expect("backend"));
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("self-signed certificate");
    let config = format!(
        r#"[gateway]
workers = 1
admin_listen = "127.0.0.1:0"
access_log = "stdout"
drain_timeout = 5

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[listener]]
name = "insecure"
listen = "127.0.0.1:0"

[[listener]]
name = "secure"
listen = "127.0.0.1:0"
protocol = "https"
certificate = "cert.pem"
private_key = "key.pem"

[[backend_pool]]
name = "web"
addresses = ["{web}"]

[[backend_pool]]
name = "api"
addresses = ["{api}"]

[[backend_pool]]
name = "admin"
addresses = ["{admin}"]

[[backend_pool]]
name = "files"
addresses = ["{files}"]

[[backend_http_settings]]
name = "plain"

[[backend_http_settings]]
name = "api-v2"
override_backend_path = "/v2/"

[[redirect]]
name = "to-https"
target_listener = "secure"

[[redirect]]
name = "moved"
type = "permanent_redirect"
target_url = "https://archive.example/"
include_path = true
include_query_string = false

[[url_path_map]]
name = "site"
default_backend_pool = "web"
default_backend_http_settings = "plain"

[[url_path_map.path_rule]]
name = "api"
paths = ["/api/*"]
backend_pool = "api"
backend_http_settings = "api-v2"

[[url_path_map.path_rule]]
name = "admin"
paths = ["/admin/*"]
backend_pool = "admin"
backend_http_settings = "plain"

[[url_path_map.path_rule]]
name = "robots"
paths = ["/robots.txt"]
backend_pool = "files"
backend_http_settings = "plain"

[[url_path_map.path_rule]]
name = "old"
paths = ["/old/*"]
redirect = "moved"

[[rule]]
name = "site"
listener = "public"
url_path_map = "site"

[[rule]]
name = "http-to-https"
listener = "insecure"
redirect = "to-https"

[[rule]]
name = "secure"
listener = "secure"
backend_pool = "web"
backend_http_settings = "plain"
"#,
        web = web.addr(),
        api = api.addr(),
        admin = admin.addr(),
        files = files.addr(),
    );
    let cert = certified.cert.pem();
    let key = certified.signing_key.serialize_pem();
    let gw = Gateway::start_with_files(&config, &[("cert.pem", cert.as_bytes()), ("key.pem", key.as_bytes())]);
    Site { gw, web, api, admin, files }
}

/// Sends a raw request target (not re-encoded by any client library).
fn raw_get(addr: SocketAddr, target: &str, host: &str) -> Response {
    let mut c = Client::connect(addr).expect("connect");
    c.send(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).expect("send");
    c.read_response(false).expect("response")
}

fn last_target(b: &Backend) -> String {
    let r = b.recorded();
    r.iter()
        .rfind(|r| !r.target.starts_with("/health") && r.target != "/")
        .map(|r| r.target.clone())
        .unwrap_or_default()
}

#[test]
fn path_rules_send_each_path_to_its_pool() {
    let s = site();
    let addr = s.gw.addr("public");
    let cases: &[(&str, &str, &str)] = &[
        // (target, pool that answers, target the server sees)
        ("/api/users?id=7", "api", "/v2/users?id=7"),
        ("/API/Users", "api", "/v2/Users"),
        ("/api/", "api", "/v2/"),
        ("/admin/panel", "admin", "/admin/panel"),
        ("/robots.txt", "files", "/robots.txt"),
        ("/robots.txt?x=1", "files", "/robots.txt?x=1"),
        // Exact means exact; a prefix needs its slash.
        ("/robots.txt/more", "web", "/robots.txt/more"),
        ("/api", "web", "/api"),
        ("/apix/users", "web", "/apix/users"),
        // The query is not part of the match.
        ("/index.html?next=/api/x", "web", "/index.html?next=/api/x"),
        // (Plain "/" is what the default probe asks for: a query tells them apart.)
        ("/?home=1", "web", "/?home=1"),
    ];
    for (target, pool, seen) in cases {
        let r = raw_get(addr, target, "shop.example");
        assert_eq!(r.status, 200, "{target}: {}", s.gw.stderr());
        assert_eq!(r.header("x-backend"), Some(*pool), "{target}");
        let b = match *pool {
            "api" => &s.api,
            "admin" => &s.admin,
            "files" => &s.files,
            _ => &s.web,
        };
        assert_eq!(last_target(b), *seen, "{target}: what the {pool} server received");
    }
}

#[test]
fn traversal_and_encoding_cannot_reach_the_wrong_pool() {
    let s = site();
    let addr = s.gw.addr("public");
    let cases: &[(&str, &str, &str)] = &[
        // Dot segments are resolved before matching, and the server gets
        // the path that was matched.
        ("/api/../admin/panel", "admin", "/admin/panel"),
        ("/images/../admin/panel", "admin", "/admin/panel"),
        ("/admin/../api/x", "api", "/v2/x"),
        ("/api/./x", "api", "/v2/x"),
        ("/api/v1/../../admin/panel?q=1", "admin", "/admin/panel?q=1"),
        // Escaped unreserved characters are the characters themselves.
        ("/%61dmin/panel", "admin", "/admin/panel"),
        ("/api/%2e%2e/admin/panel", "admin", "/admin/panel"),
        ("/%41PI/x", "api", "/v2/x"),
        // An escaped '/' is not a separator: it stays encoded, and
        // "/api%2F..%2Fadmin" is one segment, not /admin.
        ("/api%2F..%2Fadmin/panel", "web", "/api%2F..%2Fadmin/panel"),
        ("/static/..%2Fadmin/x", "web", "/static/..%2Fadmin/x"),
    ];
    for (target, pool, seen) in cases {
        let r = raw_get(addr, target, "shop.example");
        assert_eq!(r.status, 200, "{target}: {}", s.gw.stderr());
        assert_eq!(r.header("x-backend"), Some(*pool), "{target} reached the wrong pool");
        let b = match *pool {
            "api" => &s.api,
            "admin" => &s.admin,
            _ => &s.web,
        };
        assert_eq!(last_target(b), *seen, "{target}");
    }
    // A malformed escape could be read two ways: refused.
    let before: u64 = [&s.web, &s.api, &s.admin, &s.files].iter().map(|b| b.requests()).sum();
    let r = raw_get(addr, "/api/%zz", "shop.example");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-ringgate-error"), Some("BAD_REQUEST"));
    assert!(r.text().contains("invalid percent-encoding in the request path"), "{}", r.text());
    let after: u64 = [&s.web, &s.api, &s.admin, &s.files].iter().map(|b| b.requests()).sum();
    assert!(after <= before + 1, "only probes may have arrived meanwhile");
}

#[test]
fn http_to_https_redirect_keeps_path_and_query() {
    let s = site();
    let secure = s.gw.addr("secure");
    let r = raw_get(s.gw.addr("insecure"), "/cart/checkout?item=42&qty=2", "shop.example:8080");
    assert_eq!(r.status, 301, "{:?}", r);
    let head = raw(
        s.gw.addr("insecure"),
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    );
    assert!(head.starts_with(b"HTTP/1.1 301 Moved Permanently\r\n"), "{}", String::from_utf8_lossy(&head));
    assert_eq!(
        r.header("location"),
        Some(format!("https://shop.example:{}/cart/checkout?item=42&qty=2", secure.port()).as_str())
    );
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(!r.closed, "a bodiless redirect keeps the connection");
    assert_eq!(s.web.requests_to("/cart/checkout"), 0);

    // A request with a body is answered without reading it: the connection closes.
    let mut c = Client::connect(s.gw.addr("insecure")).unwrap();
    c.send(b"POST /form HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 3\r\n\r\nabc").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 301);
    assert!(r.closed);

    // Logged with its status and rule.
    let mut line = None;
    wait_until(std::time::Duration::from_secs(5), || {
        line = s.gw.access_log().into_iter().find(|l| l["status"] == 301);
        line.is_some()
    });
    let line = line.unwrap_or_else(|| panic!("no 301 in the access log: {:?}", s.gw.stdout_lines()));
    assert_eq!(line["rule"], "http-to-https", "{line}");
}

#[test]
fn path_rule_redirect_to_a_url() {
    let s = site();
    let r = raw_get(s.gw.addr("public"), "/old/page.html?utm=x", "shop.example");
    assert_eq!(r.status, 308);
    let head = raw(
        s.gw.addr("public"),
        b"GET /old/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    );
    assert!(head.starts_with(b"HTTP/1.1 308 Permanent Redirect\r\n"), "{}", String::from_utf8_lossy(&head));
    assert_eq!(r.header("location"), Some("https://archive.example/old/page.html"), "path kept, query dropped");
}

/// Three listeners on one port with priorities: the lowest number wins even
/// where a more specific host would win without priorities; a `?`/`*`
/// pattern anywhere in the name.
#[test]
fn priorities_order_overlapping_multi_site_listeners() {
    let [wild, exact, glob, basic] = ["wild", "exact", "glob", "basic"].map(|n| Backend::start_ok(n).unwrap());
    let port = free_port();
    let mut config = String::from("[gateway]\nworkers = 1\nadmin_listen = \"127.0.0.1:0\"\naccess_log = \"off\"\n");
    for (name, hosts, prio, b) in [
        ("wild", "[\"*.example.com\"]", 10, &wild),
        ("exact", "[\"a.example.com\"]", 20, &exact),
        ("glob", "[\"api-?.example.*\"]", 30, &glob),
        ("basic", "[]", 40, &basic),
    ] {
        config.push_str(&format!(
            "\n[[listener]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\nhost_names = {hosts}\n\n[[backend_pool]]\nname = \"{name}\"\naddresses = [\"{addr}\"]\n\n[[backend_http_settings]]\nname = \"{name}\"\n\n[[rule]]\nname = \"{name}\"\nlistener = \"{name}\"\npriority = {prio}\nbackend_pool = \"{name}\"\nbackend_http_settings = \"{name}\"\n",
            addr = b.addr()
        ));
    }
    let gw = Gateway::start(&config);
    let addr = gw.addr("wild");
    for (host, who) in [
        ("a.example.com", "wild"),
        ("b.example.com", "wild"),
        ("api-1.example.org", "glob"),
        ("API-2.EXAMPLE.NET", "glob"),
        ("api-12.example.org", "basic"),
        ("other.org", "basic"),
    ] {
        // Not "/": that is what the default probe asks every server, at once.
        let r = raw_get(addr, "/who", host);
        assert_eq!(r.header("x-backend"), Some(who), "Host {host}: {}", gw.stderr());
    }
    assert_eq!(exact.requests_to("/who"), 0, "priority 20 loses to the wildcard's 10");
}

#[test]
fn host_from_the_backend_address() {
    let b = Backend::start_ok("app").unwrap();
    let addr = format!("localhost:{}", b.port());
    let config = simple_config(&[], "pick_host_name_from_backend_address = true")
        .replace("addresses = []", &format!("addresses = [\"{addr}\"]"));
    let gw = Gateway::start(&config);
    let r = raw_get(gw.addr("public"), "/where", "shop.example");
    assert_eq!(r.status, 200, "{}", gw.stderr());
    let seen = b.recorded().into_iter().find(|r| r.target == "/where").expect("forwarded");
    assert_eq!(seen.header("host"), Some("localhost"), "the server's own name, for App Service-style backends");
    assert_eq!(seen.header("x-forwarded-host"), Some("shop.example"), "the client's host is kept for the server");
}
