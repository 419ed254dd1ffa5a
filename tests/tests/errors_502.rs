//! Every 502 the gateway gives, each with its code in `x-ringgate-error` and
//! the cause in the body; and backend faults after the response has started,
//! which must end in a closed client connection, never a complete-looking
//! response.
//!
//! Each case runs a gateway with two listeners: `public`, to the backend
//! under test, and `spare`, to a healthy backend, to show that the gateway
//! keeps serving after the failure.

use std::time::{Duration, Instant};

use ringgate_e2e::*;

/// A gateway with `public` to `addresses` (settings lines `extra`) and
/// `spare` to a healthy backend.
struct Setup {
    gw: Gateway,
    spare: Backend,
}

fn setup(addresses: &[std::net::SocketAddr], extra: &str) -> Setup {
    let spare = Backend::start_ok("spare").expect("start spare backend");
    let spare_addrs = [spare.addr()];
    let config = sites_config(&[
        Site { settings_extra: extra, ..Site::basic("public", addresses) },
        // Another loopback address: two basic listeners cannot share one.
        Site { listen: "127.0.0.2:0", ..Site::basic("spare", &spare_addrs) },
    ]);
    Setup { gw: Gateway::start(&config), spare }
}

impl Setup {
    fn public(&self) -> std::net::SocketAddr {
        self.gw.addr("public")
    }

    /// The healthy backend still answers through the same gateway.
    fn assert_still_serving(&self) {
        let r = get(self.gw.addr("spare"), "/still-serving");
        assert_eq!(r.status, 200, "{}", self.gw.stderr());
        assert_eq!(r.header("x-backend"), Some("spare"));
        assert!(self.spare.requests_to("/still-serving") >= 1);
    }
}

/// What a public error body must never show: addresses, ports, names of
/// the configuration's rules, pools and settings, OS errors, admin hints.
fn assert_no_internals(text: &str, gw: &Gateway) {
    let mut forbidden = vec![
        "127.0.0.".to_string(),
        "rule-".into(),
        "pool-".into(),
        "settings-".into(),
        "os error".into(),
        "backend-health".into(),
        "doctor".into(),
        "request_timeout".into(),
    ];
    forbidden.push(gw.admin().port().to_string());
    for f in &forbidden {
        assert!(!text.contains(f.as_str()), "the public body shows {f:?}: {text}");
    }
}

/// Checks a 502 with `code`: the client's body says the cause in public
/// words (`error_detail = "public"`, the default) and nothing internal; the
/// access log's `error_detail` has the full text with every one of `words`.
fn assert_502(s: &Setup, r: &Response, code: &str, words: &[&str]) {
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.header("x-ringgate-error"), Some(code), "{r:?}");
    let text = r.text();
    assert!(text.starts_with("502 Bad Gateway: "), "{text}");
    assert_no_internals(&text, &s.gw);
    let logged = wait_until(Duration::from_secs(5), || {
        s.gw.access_log().iter().any(|l| {
            l["error_info"] == code && l["error_detail"].as_str().is_some_and(|d| words.iter().all(|w| d.contains(w)))
        })
    });
    assert!(logged, "no access log line with {code} and a detail saying {words:?}: {:#?}", s.gw.access_log());
}

/// A backend in `mode`, its 502, then the same backend switched back to
/// [`Mode::Ok`] answers normally.
fn fault_then_recovery(mode: Mode, code: &str, words: &[&str]) {
    let b = Backend::builder().name("faulty").mode(mode.clone()).start().expect("start faulty backend");
    let s = setup(&[b.addr()], "");
    let r = get(s.public(), "/fault");
    assert_502(&s, &r, code, &words.iter().copied().chain([b.addr().to_string().as_str()]).collect::<Vec<_>>());
    assert!(r.closed, "a 502 after backend I/O closes the client connection");
    s.assert_still_serving();
    b.set_mode(Mode::Ok);
    let r = get(s.public(), "/recovered");
    assert_eq!(r.status, 200, "after {mode}: {}", s.gw.stderr());
    assert_eq!(r.body, b"faulty\n");
}

#[test]
fn empty_pool_answers_502_pool_empty_without_backend_io() {
    let s = setup(&[], "");
    let started = Instant::now();
    let r = get(s.public(), "/nowhere");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_502(&s, &r, "POOL_EMPTY", &["backend pool \"pool-public\" is empty", "add addresses"]);
    assert!(!r.closed, "an answer without backend I/O keeps the client connection");
    assert_eq!(s.spare.requests_to("/nowhere"), 0, "the request went to no server");
    s.assert_still_serving();
}

#[test]
fn empty_pool_keeps_the_client_connection_for_the_next_request() {
    let s = setup(&[], "");
    let mut c = Client::connect(s.public()).unwrap();
    for _ in 0..3 {
        let r = c.request("GET", "/nowhere", &[], b"").unwrap();
        assert_502(&s, &r, "POOL_EMPTY", &["is empty"]);
    }
}

#[test]
fn stalled_backend_answers_502_timeout_after_the_request_timeout() {
    let b = Backend::builder().name("stall").mode(Mode::Stall).start().unwrap();
    let s = setup(&[b.addr()], "request_timeout = \"300ms\"");
    let started = Instant::now();
    let r = get(s.public(), "/stall");
    let took = started.elapsed();
    assert_502(&s, &r, "TIMEOUT", &["did not answer within the request time-out of 300ms", "raise request_timeout"]);
    assert!(took >= Duration::from_millis(290), "the time-out fired early: {took:?}");
    assert!(took < Duration::from_secs(5), "the time-out fired late: {took:?}");
    assert_eq!(b.requests_to("/stall"), 1, "the request reached the backend once, without a retry");
    s.assert_still_serving();
    b.set_mode(Mode::Ok);
    assert_eq!(get(s.public(), "/recovered").status, 200);
}

/// `timeout_status = 504`: the same time-out answered 504 Gateway Timeout,
/// with the same code, in the body's first words, the access log and the
/// metrics; other causes stay 502.
#[test]
fn timeout_status_504_answers_gateway_timeout() {
    let b = Backend::builder().name("stall").mode(Mode::Stall).start().unwrap();
    let s = setup(&[b.addr()], "request_timeout = \"300ms\"\ntimeout_status = 504");
    let r = get(s.public(), "/stall");
    assert_eq!((r.status, r.header("x-ringgate-error")), (504, Some("TIMEOUT")), "{r:?}");
    let text = r.text();
    assert!(text.starts_with("504 Gateway Timeout: the backend server did not answer in time"), "{text}");
    assert_no_internals(&text, &s.gw);
    let logged = wait_until(Duration::from_secs(5), || {
        s.gw.access_log().iter().any(|l| {
            l["status"] == 504
                && l["error_info"] == "TIMEOUT"
                && l["error_detail"].as_str().is_some_and(|d| d.starts_with("504 Gateway Timeout (rule"))
        })
    });
    assert!(logged, "{:#?}", s.gw.access_log());
    let series = r#"ringgate_requests_total{listener="public",rule="rule-public",pool="pool-public",class="5xx",code="504",error_code="TIMEOUT"}"#;
    assert!(wait_until(Duration::from_secs(5), || s.gw.metric(series) == Some(1)), "{}", s.gw.admin_get("/metrics").1);
    // Another cause on the same settings is still a 502.
    b.stop_listening();
    b.close_connections();
    let r = get(s.public(), "/refused");
    assert_eq!((r.status, r.header("x-ringgate-error")), (502, Some("CONNECT_FAILED")), "{r:?}");
}

#[test]
fn refused_connect_answers_502_connect_failed() {
    let dead = closed_addr();
    let s = setup(&[dead], "");
    let started = Instant::now();
    let r = get(s.public(), "/refused");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_502(
        &s,
        &r,
        "CONNECT_FAILED",
        &[&format!("connecting to {dead} failed"), "check that the server is up and listening"],
    );
    s.assert_still_serving();
}

#[test]
fn backend_reset_answers_502_backend_closed() {
    fault_then_recovery(Mode::Reset, "BACKEND_CLOSED", &["closed the connection before a complete response"]);
}

#[test]
fn backend_closing_at_accept_answers_502_backend_closed() {
    fault_then_recovery(
        Mode::CloseImmediately,
        "BACKEND_CLOSED",
        &["closed the connection before a complete response"],
    );
}

#[test]
fn garbage_response_answers_502_invalid_response() {
    fault_then_recovery(Mode::Garbage, "INVALID_RESPONSE", &["sent an invalid response"]);
}

#[test]
fn malformed_status_line_answers_502_invalid_response() {
    fault_then_recovery(Mode::MalformedStatus, "INVALID_RESPONSE", &["sent an invalid response"]);
}

#[test]
fn malformed_response_headers_answer_502_invalid_response() {
    fault_then_recovery(Mode::MalformedHeaders, "INVALID_RESPONSE", &["sent an invalid response"]);
}

/// Splits what a client received into the head and the body bytes.
fn split_head(raw: &[u8]) -> (String, &[u8]) {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(raw.len());
    (String::from_utf8_lossy(&raw[..end]).into_owned(), &raw[end..])
}

#[test]
fn backend_closing_mid_body_closes_the_client_connection_with_a_truncated_body() {
    let b = Backend::builder().name("half").mode(Mode::HalfResponse).start().unwrap();
    let s = setup(&[b.addr()], "");
    let mut c = Client::connect(s.public()).unwrap();
    c.set_timeout(Duration::from_secs(5));
    c.send(&format_request("GET", "/half", &[], b"")).unwrap();
    let raw = c.read_to_close().expect("the gateway closes the client connection");
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-length: 100\r\n"), "{head}");
    assert_eq!(body, b"0123456789", "the 10 bytes the backend sent, and nothing after");
    s.assert_still_serving();
}

#[test]
fn backend_stalling_mid_body_closes_the_client_connection_after_the_request_timeout() {
    let b = Backend::builder().name("short").mode(Mode::BodyShorter).start().unwrap();
    let s = setup(&[b.addr()], "request_timeout = \"300ms\"");
    let mut c = Client::connect(s.public()).unwrap();
    c.set_timeout(Duration::from_secs(5));
    let started = Instant::now();
    c.send(&format_request("GET", "/short", &[], b"")).unwrap();
    let raw = c.read_to_close().expect("the gateway closes the client connection");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-length: 50\r\n"), "{head}");
    assert_eq!(body, b"short", "5 of the announced 50 bytes, then the close");
    s.assert_still_serving();
}

#[test]
fn backend_sending_more_than_content_length_is_cut_and_its_connection_not_reused() {
    let b = Backend::builder().name("longer").mode(Mode::BodyLonger).start().unwrap();
    let s = setup(&[b.addr()], "");
    let mut c = Client::connect(s.public()).unwrap();
    let r = c.request("GET", "/longer", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", s.gw.stderr());
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(r.body, b"hello", "exactly Content-Length bytes");
    // The stray bytes must not be taken as the start of the next response:
    // that connection is dirty and must be closed, not pooled.
    b.set_mode(Mode::Ok);
    let r = c.request("GET", "/next", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{r:?}\n{}", s.gw.stderr());
    assert_eq!(r.header("x-ringgate-error"), None);
    assert_eq!(r.header("x-backend"), Some("longer"));
    assert_eq!(r.body, b"longer\n");
    let conn = |path: &str| b.recorded().iter().find(|r| r.path() == path).map(|r| r.connection_id);
    assert_ne!(conn("/longer"), conn("/next"), "the dirty backend connection was reused");
}

#[test]
fn failed_exchanges_leave_no_descriptor_behind() {
    let b = Backend::start_ok("b1").unwrap();
    let s = setup(&[b.addr()], "request_timeout = \"200ms\"");
    assert_eq!(get(s.public(), "/warm-up").status, 200);
    let baseline = s.gw.fd_count();
    assert!(baseline > 0, "cannot read /proc/<pid>/fd");
    let faults = [
        Mode::Stall,
        Mode::Reset,
        Mode::CloseImmediately,
        Mode::HalfResponse,
        Mode::Garbage,
        Mode::MalformedStatus,
        Mode::MalformedHeaders,
        Mode::BodyLonger,
        Mode::BodyShorter,
    ];
    for round in 0..3 {
        for mode in &faults {
            b.set_mode(mode.clone());
            let mut c = Client::connect(s.public()).expect("connect");
            c.set_timeout(Duration::from_secs(5));
            // `close`: a complete response (body-longer) ends in a close too.
            c.send(&format_request("GET", "/fault", &[("Connection", "close")], b"")).expect("send");
            // A 502, a truncated or a cut response, then the close.
            let got = c.read_to_close().unwrap_or_else(|e| panic!("round {round}, {mode}: {e}"));
            assert!(got.starts_with(b"HTTP/1.1 "), "round {round}, {mode}: {:?}", String::from_utf8_lossy(&got));
        }
    }
    b.set_mode(Mode::Ok);
    assert_eq!(get(s.public(), "/after").status, 200);
    let settled = wait_until(Duration::from_secs(5), || s.gw.fd_count() <= baseline + 1);
    assert!(settled, "descriptors: {} at the start, {} after the faults", baseline, s.gw.fd_count());
}

/// `error_detail = "full"`: the body is the operator's text, with the rule,
/// the server and what to check (as the access log has it in either mode).
#[test]
fn full_error_detail_shows_the_operators_text_to_the_client() {
    let dead = closed_addr();
    let config = sites_config(&[Site::basic("public", &[dead])]).replacen(
        "[gateway]\n",
        "[gateway]\nerror_detail = \"full\"\n",
        1,
    );
    let gw = Gateway::start(&config);
    let r = get(gw.addr("public"), "/refused");
    assert_eq!(r.header("x-ringgate-error"), Some("CONNECT_FAILED"), "{r:?}");
    let text = r.text();
    assert!(text.starts_with("502 Bad Gateway (rule \"rule-public\"): "), "{text}");
    assert!(text.contains(&format!("connecting to {dead} failed")), "{text}");
    assert!(text.contains("check that the server is up and listening"), "{text}");
}
