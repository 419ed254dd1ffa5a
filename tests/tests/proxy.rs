//! Forwarding through the gateway: request and response bodies in every
//! framing, keep-alive and pooled backend connections, pipelining, the
//! headers a proxy adds and removes, 100-continue, upgrades, HTTP/1.0
//! clients, and a clean stop.

use std::collections::HashSet;
use std::time::Duration;

use ringgate_e2e::*;

/// The `/bytes` and `/eof-body` body: `abc..z` repeated.
fn pattern(n: usize) -> Vec<u8> {
    (b'a'..=b'z').cycle().take(n).collect()
}

/// Connection ids of the requests `b` received for `path` (probes and other
/// paths left out).
fn connection_ids(b: &Backend, path: &str) -> HashSet<u64> {
    b.recorded().iter().filter(|r| r.path() == path).map(|r| r.connection_id).collect()
}

#[test]
fn get_is_answered_by_the_backend() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let r = get(gw.addr("public"), "/hello?x=1");
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("x-backend"), Some("b1"));
    assert_eq!(r.body, b"b1\n");
    assert_eq!(r.header("x-ringgate-error"), None);
    let seen = b.recorded().into_iter().find(|r| r.path() == "/hello").expect("request reached the backend");
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, "/hello?x=1", "the query is forwarded as sent");
}

#[test]
fn post_with_content_length_body_reaches_the_backend_and_is_echoed() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let body = b"name=ringgate&kind=gateway";
    let r = request(gw.addr("public"), "POST", "/echo", &[("Content-Type", "text/plain")], body).unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.body, body);
    assert_eq!(r.header("x-request-body-bytes"), Some(body.len().to_string().as_str()));
    let seen = b.recorded().into_iter().find(|r| r.path() == "/echo").unwrap();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body, body);
}

#[test]
fn chunked_request_body_reaches_the_backend_decoded() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    // The head and the chunks in separate writes, so the body is streamed
    // after the exchange with the backend has started.
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    c.send(b"5\r\nhello\r\n").unwrap();
    c.send(b"6;ext=1\r\n world\r\n").unwrap();
    c.send(b"0\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.body, b"hello world");
    let seen = b.recorded().into_iter().find(|r| r.path() == "/echo").unwrap();
    assert_eq!(seen.body, b"hello world");
    // The connection is still usable after a chunked request.
    let r = c.request("GET", "/after", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"b1\n");
}

#[test]
fn streamed_bodies_end_exactly_where_the_next_pipelined_request_starts() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    // The head alone first; once the backend has it, the gateway is
    // streaming the body, and the rest arrives with the next request.
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n").unwrap();
    assert!(wait_until(Duration::from_secs(5), || b.requests_to("/echo") == 1), "{}", gw.stderr());
    let mut rest = b"2\r\nde\r\n0\r\n\r\n".to_vec();
    rest.extend(format_request("POST", "/echo", &[], b"12345"));
    c.send(&rest[..rest.len() - 3]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || b.requests_to("/echo") == 2), "{}", gw.stderr());
    c.send(&rest[rest.len() - 3..]).unwrap();
    c.send(&format_request("GET", "/third", &[], b"")).unwrap();
    let bodies: Vec<Vec<u8>> = (0..3).map(|_| c.read_response(false).unwrap().body).collect();
    assert_eq!(bodies, [b"abcde".to_vec(), b"12345".to_vec(), b"b1\n".to_vec()]);
}

#[test]
fn chunked_request_body_in_one_write_is_echoed() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.body, b"abc");
    assert_eq!(b.recorded().into_iter().find(|r| r.path() == "/echo").unwrap().body, b"abc");
}

#[test]
fn chunked_response_is_relayed_intact() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let r = c.request("GET", "/chunked?n=5", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.text(), "chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\n");
    assert!(!r.closed, "a chunked response to a 1.1 client keeps the connection");
    let r = c.request("GET", "/next", &[], b"").unwrap();
    assert_eq!(r.body, b"b1\n", "the chunked response ended exactly at its last chunk");
}

#[test]
fn large_response_body_is_relayed_completely() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let r = c.request("GET", "/bytes?n=1000000", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("content-length"), Some("1000000"));
    assert_eq!(r.body.len(), 1_000_000);
    assert!(r.body == pattern(1_000_000), "the body arrived altered");
    let r = c.request("GET", "/next", &[], b"").unwrap();
    assert_eq!(r.body, b"b1\n");
}

#[test]
fn large_request_body_is_relayed_completely() {
    let b = Backend::builder().name("b1").record_limit(10).start().unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let body = pattern(1_000_000);
    let r = request(gw.addr("public"), "POST", "/echo", &[], &body).unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("x-request-body-bytes"), Some("1000000"));
    assert!(r.body == body, "the echoed body differs");
}

#[test]
fn head_request_gets_the_headers_without_a_body() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let r = c.request("HEAD", "/bytes?n=500", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("content-length"), Some("500"));
    // Had the gateway sent body bytes after the head, they would be read as
    // the next response here.
    let r = c.request("GET", "/next", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"b1\n");
}

#[test]
fn status_204_and_304_are_relayed_without_a_body() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    for status in [204, 304] {
        let r = c.request("GET", &format!("/status/{status}"), &[], b"").unwrap();
        assert_eq!(r.status, status, "{}", gw.stderr());
        assert!(r.body.is_empty());
        assert_eq!(r.header("x-backend"), Some("b1"));
    }
    let r = c.request("GET", "/status/404", &[], b"").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "404 Not Found\n", "a backend's own error passes through");
    assert_eq!(r.header("x-ringgate-error"), None);
    let r = c.request("GET", "/next", &[], b"").unwrap();
    assert_eq!(r.body, b"b1\n");
}

#[test]
fn head_request_to_a_chunked_resource_gets_no_body() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let r = c.request("HEAD", "/chunked?n=4", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let r = c.request("GET", "/next", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"b1\n");
}

#[test]
fn close_delimited_response_is_relayed_until_the_backend_closes() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let r = c.request("GET", "/eof-body?n=5000", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert!(r.closed, "a body delimited by the close ends with the client connection too");
    assert!(r.body == pattern(5000), "got {} bytes", r.body.len());
}

#[test]
fn client_connection_close_is_honoured() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let r = c.request("GET", "/bye", &[("Connection", "close")], b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.body, b"b1\n");
    assert!(r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")), "{:?}", r.headers);
    assert!(c.is_closed_within(Duration::from_secs(5)));
    // The backend connection was not the client's to close: it is reused.
    assert_eq!(get(gw.addr("public"), "/again").status, 200);
    assert_eq!(connection_ids(&b, "/bye"), connection_ids(&b, "/again"));
}

#[test]
fn sequential_requests_on_one_client_connection_reuse_the_backend_connection() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let n = 20;
    for i in 0..n {
        let r = c.request("GET", "/ka", &[], b"").unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", gw.stderr());
        assert!(!r.closed);
    }
    assert_eq!(b.requests_to("/ka"), n);
    assert!(b.connections() < n, "{} backend connections for {n} requests", b.connections());
    assert_eq!(connection_ids(&b, "/ka").len(), 1, "every request went over one pooled connection");
}

#[test]
fn successive_client_connections_reuse_pooled_backend_connections() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let n = 10;
    for i in 0..n {
        let r = get(gw.addr("public"), "/fresh-client");
        assert_eq!(r.status, 200, "request {i}: {}", gw.stderr());
    }
    assert_eq!(b.requests_to("/fresh-client"), n);
    assert!(b.connections() < n, "{} backend connections for {n} client connections", b.connections());
    assert!(connection_ids(&b, "/fresh-client").len() < 3, "{:?}", connection_ids(&b, "/fresh-client"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let mut batch = format_request("GET", "/status/201", &[], b"");
    batch.extend(format_request("POST", "/echo", &[], b"second"));
    batch.extend(format_request("GET", "/echo-headers", &[("X-Seq", "third")], b""));
    c.send(&batch).unwrap();
    let first = c.read_response(false).unwrap();
    let second = c.read_response(false).unwrap();
    let third = c.read_response(false).unwrap();
    assert_eq!(first.status, 201, "{}", gw.stderr());
    assert_eq!(first.text(), "201 Created\n");
    assert_eq!(second.status, 200);
    assert_eq!(second.body, b"second");
    assert_eq!(third.status, 200);
    assert!(third.text().contains("X-Seq: third\n"), "{}", third.text());
    let order: Vec<String> = b.recorded().iter().map(|r| r.path().to_string()).filter(|p| p != "/").collect();
    assert_eq!(order, ["/status/201", "/echo", "/echo-headers"]);
}

#[test]
fn chunked_request_followed_by_a_pipelined_request_is_framed_exactly() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let mut batch =
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\n".to_vec();
    batch.extend(format_request("GET", "/status/202", &[], b""));
    c.send(&batch).unwrap();
    let first = c.read_response(false).unwrap();
    let second = c.read_response(false).unwrap();
    assert_eq!((first.status, first.body.as_slice()), (200, &b"wiki"[..]), "{}", gw.stderr());
    assert_eq!(second.status, 202);
    assert_eq!(b.requests_to("/status/202"), 1, "the second request was not swallowed as body");
}

#[test]
fn pooled_connection_closed_by_the_backend_is_replaced_transparently() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    // `/close` answers without `connection: close` and then closes, so the
    // gateway pools a connection that is already dead.
    let r = c.request("GET", "/close", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert!(!r.closed, "the client connection is not the one that closed");
    let r = c.request("GET", "/after-close", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("x-ringgate-error"), None);
    assert_eq!(r.body, b"b1\n");
    let close_conn = connection_ids(&b, "/close");
    let after_conn = connection_ids(&b, "/after-close");
    assert_eq!(after_conn.len(), 1);
    assert!(close_conn.is_disjoint(&after_conn), "the retry went over a fresh connection");
}

/// Makes the gateway pool a connection that the backend then closes (`/close`
/// answers without `connection: close`, then closes); returns the client.
fn pool_a_closed_connection(b: &Backend, gw: &Gateway) -> Client {
    let mut c = Client::connect(gw.addr("public")).expect("connect to the gateway");
    assert_eq!(c.request("GET", "/close", &[], b"").expect("GET /close").status, 200);
    assert!(wait_until(Duration::from_secs(5), || b.open_connections() == 0), "the backend never closed");
    c
}

#[test]
fn post_on_a_dead_pooled_connection_is_not_replayed_and_answers_502() {
    let b = Backend::start_ok("b1").unwrap();
    // Without multishot receives the gateway cannot see the close while the
    // connection is idle (see the next test), which is the case when a close
    // arrives just as a request is sent: the case tested here.
    let config = simple_config(&[b.addr()], "")
        .replace("drain_timeout = 5\n", "drain_timeout = 5\n\n[gateway.io_uring]\nmultishot_recv = false\n");
    assert!(config.contains("multishot_recv = false"));
    let gw = Gateway::start(&config);
    // The gateway pools a connection the backend has already closed.
    let mut c = pool_a_closed_connection(&b, &gw);
    // A POST may have side effects: it is not sent twice, so the dead
    // connection costs this request a 502 rather than a silent replay.
    let r = c.request("POST", "/echo", &[], b"once").unwrap();
    assert_eq!(r.status, 502, "{r:?}\n{}", gw.stderr());
    assert_eq!(r.header("x-ringgate-error"), Some("BACKEND_CLOSED"));
    assert_eq!(b.requests_to("/echo"), 0, "the POST was not replayed on a fresh connection");
    // The next request is served normally.
    let mut c = Client::connect(gw.addr("public")).unwrap();
    assert_eq!(c.request("POST", "/echo", &[], b"again").unwrap().body, b"again");
}

#[test]
fn post_after_the_backend_closed_its_pooled_connection_goes_over_a_fresh_one() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = pool_a_closed_connection(&b, &gw);
    // The backend's close reached the idle pooled connection's multishot
    // receive, so the pool drops it instead of handing it to the POST.
    let r = c.request("POST", "/echo", &[], b"once").unwrap();
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.stderr());
    assert_eq!(r.body, b"once");
    assert_eq!(b.requests_to("/echo"), 1);
    assert!(connection_ids(&b, "/close").is_disjoint(&connection_ids(&b, "/echo")), "a fresh connection");
}

#[test]
fn pooled_connection_closed_while_idle_is_replaced_transparently() {
    let b = Backend::builder().name("b1").idle_timeout(Duration::from_millis(200)).start().unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    assert_eq!(c.request("GET", "/first", &[], b"").unwrap().status, 200);
    // The backend drops the idle connection the gateway keeps in its pool.
    assert!(wait_until(Duration::from_secs(5), || b.open_connections() == 0), "the backend never closed");
    let r = c.request("GET", "/second", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.stderr());
    assert_eq!(r.body, b"b1\n");
}

#[test]
fn timed_out_backend_connection_is_not_reused_for_the_late_answer() {
    let b = Backend::builder().name("late").mode(Mode::Slow(Duration::from_millis(600))).start().unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], "request_timeout = \"300ms\""));
    let r = get(gw.addr("public"), "/slow-one");
    assert_eq!(r.header("x-ringgate-error"), Some("TIMEOUT"), "{r:?}");
    b.set_mode(Mode::Ok);
    // Had the timed-out connection been pooled, this would get the late
    // answer to /slow-one (or fail on it).
    let r = request(gw.addr("public"), "GET", "/echo-headers", &[("X-Marker", "fresh")], b"").unwrap();
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.stderr());
    assert!(r.text().contains("X-Marker: fresh\n"), "{}", r.text());
}

#[test]
fn forwarding_headers_are_added_and_hop_by_hop_headers_removed() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let headers = [
        ("Host", "shop.example:8080"),
        ("Connection", "keep-alive, X-Foo"),
        ("X-Foo", "connection-specific"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Proto", "https"),
        ("X-Custom", "kept"),
    ];
    let r = request(gw.addr("public"), "GET", "/echo-headers", &headers, b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    let seen = b.recorded().into_iter().find(|r| r.path() == "/echo-headers").unwrap();
    for gone in ["connection", "x-foo", "keep-alive", "te", "proxy-connection"] {
        assert_eq!(seen.header(gone), None, "{gone} was forwarded: {:?}", seen.headers);
    }
    assert_eq!(seen.header("x-custom"), Some("kept"));
    assert_eq!(seen.header("host"), Some("shop.example:8080"));
    // Application Gateway's form: the client as ip:port.
    let xff = seen.header("x-forwarded-for").unwrap_or_default();
    let client = xff.strip_prefix("203.0.113.9, 127.0.0.1:").unwrap_or_else(|| panic!("X-Forwarded-For: {xff}"));
    assert!(client.parse::<u16>().is_ok_and(|p| p > 0), "X-Forwarded-For: {xff}");
    assert_eq!(seen.header("x-forwarded-port"), Some(gw.addr("public").port().to_string().as_str()));
    assert_eq!(seen.header("x-original-host"), Some("shop.example:8080"));
    assert_eq!(seen.header("x-original-url"), Some("/echo-headers"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"), "the scheme the client used, not its claim");
    assert_eq!(seen.header("x-forwarded-host"), Some("shop.example:8080"));
    let one_each = ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];
    for name in one_each {
        let n = seen.headers.iter().filter(|(h, _)| h.eq_ignore_ascii_case(name)).count();
        assert_eq!(n, 1, "{name} appears {n} times: {:?}", seen.headers);
    }
    // The echo shows the same view.
    assert!(r.text().contains(&format!("X-Forwarded-For: {xff}\n")), "{}", r.text());
}

#[test]
fn repeated_identical_content_length_reaches_the_backend_as_one_value() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let listed = b"POST /listed HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc";
    let twice = b"POST /twice HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
    for (path, bytes) in [("/listed", &listed[..]), ("/twice", &twice[..])] {
        let mut c = Client::connect(gw.addr("public")).unwrap();
        c.send(bytes).unwrap();
        let r = c.read_response(false).unwrap();
        // Refusing the request would be as good as normalising it.
        if r.status == 400 {
            continue;
        }
        assert_eq!(r.status, 200, "{path}: {}", gw.stderr());
        let seen = b.recorded().into_iter().find(|r| r.path() == path).unwrap();
        let lengths: Vec<&str> = seen
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(lengths, ["3"], "{path}: a field value outside the grammar was forwarded");
    }
}

#[test]
fn host_name_setting_overrides_the_host_sent_to_the_backend() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], "host_name = \"app.internal\""));
    let r = request(gw.addr("public"), "GET", "/echo-headers", &[("Host", "www.example.com")], b"").unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    let seen = b.recorded().into_iter().find(|r| r.path() == "/echo-headers").unwrap();
    assert_eq!(seen.header("host"), Some("app.internal"));
    assert_eq!(seen.header("x-forwarded-host"), Some("www.example.com"), "the client's Host is kept here");
}

/// Reads responses until a final one; returns the 1xx statuses seen first.
fn read_final(c: &mut Client) -> (Vec<u16>, Response) {
    let mut interim = Vec::new();
    loop {
        let r = c.read_response(false).expect("a response");
        if r.status >= 200 {
            return (interim, r);
        }
        interim.push(r.status);
    }
}

#[test]
fn expect_100_continue_gets_continue_before_the_body_is_sent() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n").unwrap();
    // Nothing of the body has been sent yet: the 100 must come first.
    let cont = c.read_response(false).unwrap();
    assert_eq!(cont.status, 100, "{}", gw.stderr());
    c.send(b"hello world").unwrap();
    let (_, r) = read_final(&mut c);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world");
    assert_eq!(b.recorded().into_iter().find(|r| r.path() == "/echo").unwrap().body, b"hello world");
}

#[test]
fn expect_100_continue_is_answered_exactly_once() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 100);
    c.send(b"hello").unwrap();
    let (interim, r) = read_final(&mut c);
    assert_eq!(interim, Vec::<u16>::new(), "interim responses after the body was sent");
    assert_eq!(r.body, b"hello");
    let seen = b.recorded().into_iter().find(|r| r.path() == "/echo").unwrap();
    assert_eq!(seen.header("expect"), None, "the gateway answers the expectation itself");
}

#[test]
fn websocket_upgrade_is_passed_through_both_ways() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let r = c
        .request(
            "GET",
            "/upgrade",
            &[("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 101, "{}", gw.stderr());
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert!(r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("upgrade")), "{:?}", r.headers);
    let seen = b.recorded().into_iter().find(|r| r.path() == "/upgrade").unwrap();
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert_eq!(seen.header("sec-websocket-version"), Some("13"));
    for msg in [&b"ping-1"[..], b"\x81\x05hello", &[0u8; 3000]] {
        c.send(msg).unwrap();
        assert_eq!(c.read_exact_bytes(msg.len()).unwrap(), msg);
    }
}

#[test]
fn bytes_sent_right_behind_an_upgrade_request_reach_the_backend() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    let mut bytes = format_request("GET", "/upgrade", &[("Connection", "Upgrade"), ("Upgrade", "websocket")], b"");
    bytes.extend_from_slice(b"early-bytes");
    c.send(&bytes).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 101, "{}", gw.stderr());
    assert_eq!(c.read_exact_bytes(11).unwrap(), b"early-bytes");
}

#[test]
fn http10_client_gets_a_content_length_response_and_a_close() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    c.send(b"GET /hello HTTP/1.0\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("content-length"), Some("3"));
    assert_eq!(r.body, b"b1\n");
    assert!(c.is_closed_within(Duration::from_secs(5)), "HTTP/1.0 without keep-alive is closed after the response");
    let seen = b.recorded().into_iter().find(|r| r.path() == "/hello").unwrap();
    assert_eq!(seen.version, "HTTP/1.1", "the gateway speaks HTTP/1.1 to backends");
    assert!(seen.header("host").is_some(), "a Host is supplied for a 1.0 request without one");
}

#[test]
fn http10_client_gets_a_chunked_response_dechunked_then_a_close() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    c.send(b"GET /chunked?n=3 HTTP/1.0\r\nHost: t\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(r.header("transfer-encoding"), None, "HTTP/1.0 has no chunked coding");
    assert_eq!(r.text(), "chunk-0\nchunk-1\nchunk-2\n");
    assert!(r.closed, "the end of a de-chunked body is the close");
}

#[test]
fn http10_keep_alive_client_keeps_its_connection() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    for _ in 0..2 {
        c.send(b"GET /hello HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n").unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{}", gw.stderr());
        assert!(r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")), "{:?}", r.headers);
        assert_eq!(r.body, b"b1\n");
    }
}

#[test]
fn sigterm_stops_the_gateway_with_exit_status_zero() {
    let b = Backend::start_ok("b1").unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut idle = Client::connect(gw.addr("public")).unwrap();
    assert_eq!(idle.request("GET", "/hello", &[], b"").unwrap().status, 200);
    // An idle keep-alive client connection must not hold the stop up.
    let status = gw.stop_within(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status}");
    assert!(idle.is_closed_within(Duration::from_secs(2)), "the idle client connection was closed");
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let b = Backend::builder().name("slow").mode(Mode::Slow(Duration::from_millis(300))).start().unwrap();
    let gw = Gateway::start(&simple_config(&[b.addr()], ""));
    let mut c = Client::connect(gw.addr("public")).unwrap();
    c.send(&format_request("GET", "/in-flight", &[], b"")).unwrap();
    assert!(wait_until(Duration::from_secs(5), || b.requests_to("/in-flight") == 1));
    gw.signal(libc::SIGTERM);
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"slow\n");
    let status = gw.stop_within(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status}");
}
