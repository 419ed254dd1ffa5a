//! Rewrite rule sets, custom error pages and the forwarding fields, end to
//! end: request and response headers set and deleted under conditions, a
//! URL rewritten with capture groups, a value made unsafe by a captured
//! client header dropped and counted, the operator's 502 page served with
//! `x-ringgate-error` kept, and Application Gateway's forwarding fields
//! with a W3C `traceparent` kept or created and logged.

use std::net::SocketAddr;
use std::time::Duration;

use ringgate_e2e::*;
use ringgate_testbackend::RecordedRequest;

const RULES: &str = r#"
[[rewrite_rule_set]]
name = "site"

[[rewrite_rule_set.rule]]
name = "hsts"
sequence = 10
response_headers = { "Strict-Transport-Security" = "max-age=31536000", "X-Powered-By" = "" }

[[rewrite_rule_set.rule]]
name = "html-only"
sequence = 20
response_headers = { "X-Frame-Options" = "DENY" }

[[rewrite_rule_set.rule.condition]]
variable = "http_resp_content-type"
pattern = "^text/html"
ignore_case = true

[[rewrite_rule_set.rule]]
name = "mobile"
sequence = 30
request_headers = { "X-Device" = "mobile", "X-Debug" = "" }

[[rewrite_rule_set.rule.condition]]
variable = "http_req_user-agent"
pattern = "iphone|android"
ignore_case = true

[[rewrite_rule_set.rule]]
name = "articles"
sequence = 40
url_path = "/view"
url_query = "id={var_uri_path_1}&lang={var_query_string}"

[[rewrite_rule_set.rule.condition]]
variable = "uri_path"
pattern = "^/article/(\\d+)$"

[[rewrite_rule_set.rule]]
name = "tenant-path"
sequence = 50
url_path = "/tenant/{http_req_x-tenant_1}"

[[rewrite_rule_set.rule.condition]]
variable = "http_req_x-tenant"
pattern = "^(.+)$"
"#;

/// One rule to a backend whose responses carry `content_type`, with the
/// rule set above and a custom 502 page.
fn gateway(addresses: &[SocketAddr], dir: &TempDir) -> Gateway {
    std::fs::write(dir.path().join("502.html"), "<h1>Our site is taking a break</h1>\n").expect("write the page");
    let config = simple_config(addresses, "")
        .replace(
            "[gateway]\n",
            &format!("[gateway]\nerror_pages = {{ \"502\" = \"{}\" }}\n", dir.path().join("502.html").display()),
        )
        .replace(
            "backend_http_settings = \"setting01\"\n",
            "backend_http_settings = \"setting01\"\nrewrite_rule_set = \"site\"\n",
        )
        + RULES;
    Gateway::start(&config)
}

fn send(addr: SocketAddr, lines: &[&str]) -> Response {
    let mut c = Client::connect(addr).expect("connect");
    let mut req = lines.join("\r\n");
    req.push_str("\r\n\r\n");
    c.send(req.as_bytes()).expect("send");
    c.read_response(false).expect("response")
}

fn seen(b: &Backend, path: &str) -> RecordedRequest {
    b.recorded().into_iter().rfind(|r| r.path() == path).unwrap_or_else(|| panic!("{path} never reached the backend"))
}

#[test]
fn response_headers_are_set_and_deleted_under_conditions() {
    let html = Backend::builder().name("html").body("<p>hi</p>").start().unwrap();
    let dir = TempDir::new("rw");
    let gw = gateway(&[html.addr()], &dir);
    let r = send(gw.addr("public"), &["GET /page HTTP/1.1", "Host: shop.example"]);
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000"));
    // The test backend answers text/plain: the html-only rule does not apply.
    let ct = r.header("content-type").unwrap_or_default().to_string();
    if ct.starts_with("text/html") {
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
    } else {
        assert_eq!(r.header("x-frame-options"), None, "condition on {ct:?} must not match");
    }
    assert_eq!(r.text(), "<p>hi</p>", "the body is untouched");
}

#[test]
fn conditions_see_the_response_content_type() {
    let canned = CannedBackend::start(
        b"HTTP/1.1 200 OK\r\nContent-Type: Text/HTML; charset=utf-8\r\nX-Powered-By: php\r\nContent-Length: 2\r\n\r\nok",
    );
    let dir = TempDir::new("rw");
    let gw = gateway(&[canned.addr()], &dir);
    let r = send(gw.addr("public"), &["GET /x HTTP/1.1", "Host: shop.example"]);
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "ignore_case condition on the response's Content-Type");
    assert_eq!(r.header("x-powered-by"), None, "an empty value deletes the backend's header");
    assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000"));
    assert_eq!(r.header("content-length"), Some("2"), "framing is never a rewrite's");
}

#[test]
fn request_headers_and_the_url_are_rewritten() {
    let b = Backend::start_ok("app").unwrap();
    let dir = TempDir::new("rw");
    let gw = gateway(&[b.addr()], &dir);
    let addr = gw.addr("public");

    let r = send(addr, &["GET /home HTTP/1.1", "Host: shop.example", "User-Agent: Mozilla (iPhone)", "X-Debug: 1"]);
    assert_eq!(r.status, 200);
    let s = seen(&b, "/home");
    assert_eq!(s.header("x-device"), Some("mobile"));
    assert_eq!(s.header("x-debug"), None, "deleted by the rule");
    let r = send(addr, &["GET /home2 HTTP/1.1", "Host: shop.example", "User-Agent: curl", "X-Debug: 1"]);
    assert_eq!(r.status, 200);
    let s = seen(&b, "/home2");
    assert_eq!(s.header("x-device"), None, "the condition does not hold for curl");
    assert_eq!(s.header("x-debug"), Some("1"));

    // A capture group of the path goes into the query.
    let r = send(addr, &["GET /article/42?en HTTP/1.1", "Host: shop.example"]);
    assert_eq!(r.status, 200, "{}", gw.stderr());
    let s = seen(&b, "/view");
    assert_eq!(s.target, "/view?id=42&lang=en");
    assert_eq!(s.header("x-original-url"), Some("/article/42?en"), "the URL as the client sent it");
}

#[test]
fn a_value_unsafe_once_substituted_is_dropped_and_counted() {
    let b = Backend::start_ok("app").unwrap();
    let dir = TempDir::new("rw");
    let gw = gateway(&[b.addr()], &dir);
    let r = send(gw.addr("public"), &["GET /t1 HTTP/1.1", "Host: shop.example", "X-Tenant: acme"]);
    assert_eq!(r.status, 200);
    assert_eq!(b.requests_to("/tenant/acme"), 1, "a clean capture rewrites the path");
    assert_eq!(gw.metric("ringgate_rewrite_dropped_total"), Some(0));
    // A space is valid in a header value but would split the request line:
    // the rewrite is not made, the request goes on unchanged, and it counts.
    let r = send(gw.addr("public"), &["GET /t2 HTTP/1.1", "Host: shop.example", "X-Tenant: a b"]);
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(b.requests_to("/t2"), 1, "forwarded with its own path");
    assert_eq!(gw.metric("ringgate_rewrite_dropped_total"), Some(1));
}

#[test]
fn the_operators_502_page_keeps_the_diagnosis() {
    let dir = TempDir::new("rw");
    let gw = gateway(&[closed_addr()], &dir);
    let r = send(gw.addr("public"), &["GET / HTTP/1.1", "Host: shop.example"]);
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.text(), "<h1>Our site is taking a break</h1>\n");
    let code = r.header("x-ringgate-error").expect("the code stays for operators");
    assert!(["CONNECT_FAILED", "ALL_UNHEALTHY"].contains(&code), "{code}");
    // A status without a page still gets the plain answer.
    let mut c = Client::connect(gw.addr("public")).unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("400 Bad Request"), "{}", r.text());
}

#[test]
fn forwarding_fields_and_trace_context() {
    let b = Backend::start_ok("app").unwrap();
    let dir = TempDir::new("rw");
    let gw = gateway(&[b.addr()], &dir);
    let addr = gw.addr("public");
    let mut c = Client::connect(addr).unwrap();
    c.send(b"GET /f1?q=1 HTTP/1.1\r\nHost: shop.example:8080\r\nX-Forwarded-Port: 1\r\nX-Original-URL: /admin\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 200);
    let s = seen(&b, "/f1");
    let xff = s.header("x-forwarded-for").unwrap();
    assert!(xff.starts_with("127.0.0.1:"), "ip:port: {xff}");
    let port: u16 = xff.rsplit(':').next().unwrap().parse().expect("a port");
    assert!(port > 0);
    assert_eq!(s.header("x-forwarded-port"), Some(addr.port().to_string().as_str()), "spoofed value replaced");
    assert_eq!(s.header("x-original-host"), Some("shop.example:8080"));
    assert_eq!(s.header("x-original-url"), Some("/f1?q=1"), "spoofed value replaced");
    let made = s.header("traceparent").expect("a traceparent is created").to_string();
    assert_eq!(made.len(), 55, "{made}");
    assert!(made.starts_with("00-") && made.ends_with("-01"), "{made}");

    // A valid one is kept as it is, and its trace id is logged.
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = send(addr, &["GET /f2 HTTP/1.1", "Host: shop.example", &format!("traceparent: {tp}")]);
    assert_eq!(r.status, 200);
    assert_eq!(seen(&b, "/f2").header("traceparent"), Some(tp));
    // An invalid one is replaced.
    let r = send(addr, &["GET /f3 HTTP/1.1", "Host: shop.example", "traceparent: 00-zz-yy-01"]);
    assert_eq!(r.status, 200);
    let replaced = seen(&b, "/f3").header("traceparent").unwrap().to_string();
    assert_ne!(replaced, "00-zz-yy-01");
    let mut line = None;
    wait_until(Duration::from_secs(5), || {
        line = gw.access_log().into_iter().find(|l| l["path"] == "/f2");
        line.is_some()
    });
    let line = line.expect("the /f2 request is logged");
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{line}");
    let created = gw.access_log().into_iter().find(|l| l["path"] == "/f1?q=1").expect("/f1 logged");
    assert_eq!(created["trace_id"].as_str(), Some(&made[3..35]), "the created trace id is the one logged");
}
