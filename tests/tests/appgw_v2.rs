//! Where ringgate follows today's Application Gateway v2 (the 2016 reference
//! being silent), each as a documented setting: TRACE refused with 405, an
//! unknown HTTP version answered 400 (or 505), time-outs answered 504 when
//! asked (see errors_502.rs).

use std::time::Duration;

use ringgate_e2e::*;

fn gateway(backend: &Backend, gateway_extra: &str) -> Gateway {
    let config = with_gateway_lines(&simple_config(&[backend.addr()], ""), gateway_extra);
    Gateway::start(&config)
}

fn head_of(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase()
}

#[test]
fn trace_is_refused_with_405_unless_allowed() {
    let b = Backend::start_ok("b").unwrap();
    let gw = gateway(&b, "");
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let r = c.request("TRACE", "/t", &[], b"").unwrap();
    assert_eq!((r.status, r.header("x-ringgate-error")), (405, Some("METHOD_NOT_ALLOWED")), "{}", r.text());
    assert!(r.text().contains("TRACE is not allowed"), "{}", r.text());
    assert!(!r.closed, "a refused TRACE without a body keeps the connection");
    assert_eq!(c.request("GET", "/after", &[], b"").unwrap().status, 200);
    assert_eq!(b.requests_to("/t"), 0, "the TRACE reached the backend");

    let gw = gateway(&b, "allow_trace = true");
    let r = request(gw.addr("public"), "TRACE", "/allowed", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.requests_to("/allowed"), 1);
}

#[test]
fn an_unknown_http_version_is_a_400_or_a_505() {
    let b = Backend::start_ok("b").unwrap();
    let gw = gateway(&b, "");
    let got = raw(gw.addr("public"), b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", Duration::from_secs(5));
    let head = head_of(&got);
    assert!(head.starts_with("http/1.1 400 bad request"), "{head}");
    assert!(head.contains("x-ringgate-error: version_not_supported"), "{head}");

    let gw = gateway(&b, "unknown_version_status = 505");
    let got = raw(gw.addr("public"), b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", Duration::from_secs(5));
    assert!(head_of(&got).starts_with("http/1.1 505 http version not supported"), "{}", head_of(&got));
    // HTTP/1.2 is HTTP/1.x (RFC 9112 §2.3): served.
    let got = raw(gw.addr("public"), b"GET / HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n", Duration::from_secs(5));
    assert!(head_of(&got).starts_with("http/1.1 200"), "{}", head_of(&got));
}

/// The affinity cookie has Application Gateway's name, and its `CORS` twin
/// (what a cross-site request carries, the other being SameSite=Lax) pins
/// the client as well.
#[test]
fn the_cors_affinity_cookie_pins_the_client_too() {
    let a = Backend::start_ok("a").unwrap();
    let b = Backend::start_ok("b").unwrap();
    let gw = Gateway::start(&simple_config(&[a.addr(), b.addr()], "cookie_based_affinity = true"));
    let addr = gw.addr("public");
    let mut b_token = None;
    for i in 0..4 {
        let r = get(addr, &format!("/find-{i}"));
        if r.header("x-backend") == Some("b") {
            let c = r.header("set-cookie").expect("a new client gets a cookie");
            assert!(c.starts_with("ApplicationGatewayAffinity="), "{c}");
            b_token = c.split(';').next().and_then(|p| p.split_once('=')).map(|(_, t)| t.to_string());
        }
    }
    let token = b_token.expect("round robin reached b");
    let cookie = format!("ApplicationGatewayAffinityCORS={token}");
    for i in 0..4 {
        let r = request(addr, "GET", &format!("/cors-{i}"), &[("Cookie", &cookie)], b"").unwrap();
        assert_eq!(r.header("x-backend"), Some("b"), "request {i} with the CORS cookie");
        assert_eq!(r.header("set-cookie"), None, "the cookie it has is honoured, not replaced");
    }
}

/// `access_log_format = "appgw"`: each line is Application Gateway v2's
/// access log record, every field there, `error_info` in v2's names.
#[test]
fn the_appgw_access_log_format_has_every_field_of_v2() {
    let b = Backend::start_ok("b").unwrap();
    let gw = gateway(&b, "access_log_format = \"appgw\"");
    let addr = gw.addr("public");
    let r = request(addr, "GET", "/page?x=1", &[("User-Agent", "probe-ua/1"), ("X-Request-ID", "req-7")], b"").unwrap();
    assert_eq!(r.status, 200);
    let got = raw(addr, b"GET /nohost HTTP/1.1\r\n\r\n", Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 400"));

    let mut lines = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        lines = gw.access_log();
        lines.len() >= 2
    }));
    const FIELDS: [&str; 26] = [
        "clientIP",
        "clientPort",
        "httpMethod",
        "requestUri",
        "requestQuery",
        "originalRequestUriWithArgs",
        "userAgent",
        "httpStatus",
        "httpVersion",
        "receivedBytes",
        "sentBytes",
        "timeTaken",
        "sslEnabled",
        "sslCipher",
        "sslProtocol",
        "serverRouted",
        "serverStatus",
        "serverResponseLatency",
        "host",
        "originalHost",
        "error_info",
        "transactionId",
        "ruleName",
        "listenerName",
        "backendPoolName",
        "backendSettingName",
    ];
    for l in &lines {
        assert_eq!(l["category"], "ApplicationGatewayAccessLog", "{l}");
        assert!(l["timeStamp"].is_string(), "{l}");
        for f in FIELDS {
            assert!(!l["properties"][f].is_null(), "field {f} missing in {l}");
        }
    }
    let ok = &lines.iter().find(|l| l["properties"]["requestUri"] == "/page").expect("the GET's line")["properties"];
    assert_eq!(ok["clientIP"], "127.0.0.1");
    assert_eq!((ok["httpStatus"].as_u64(), ok["serverStatus"].as_str()), (Some(200), Some("200")));
    assert_eq!(ok["requestQuery"], "x=1");
    assert_eq!(ok["userAgent"], "probe-ua/1");
    assert_eq!(ok["transactionId"], "req-7");
    assert_eq!(ok["error_info"], "ERRORINFO_NO_ERROR");
    assert_eq!(ok["serverRouted"], b.addr().to_string());
    assert_eq!((ok["ruleName"].as_str(), ok["backendPoolName"].as_str()), (Some("rule01"), Some("pool01")));
    assert_eq!(ok["backendSettingName"], "setting01");
    assert_eq!((ok["sslEnabled"].as_str(), ok["httpVersion"].as_str()), (Some("off"), Some("HTTP/1.1")));
    assert!(ok["timeTaken"].as_f64().is_some_and(|t| t >= 0.0), "{ok}");
    let bad = &lines.iter().find(|l| l["properties"]["requestUri"] == "/nohost").expect("the 400's line")["properties"];
    assert_eq!(bad["httpStatus"], 400);
    assert_eq!(bad["error_info"], "ERRORINFO_HTTP_NO_HOST_HEADER", "{bad}");
    assert_eq!((bad["serverRouted"].as_str(), bad["serverStatus"].as_str()), (Some("-"), Some("-")));
    assert_eq!(bad["ringgateError"], "BAD_REQUEST");
}
