//! Bodies relayed with splice(2) (`[gateway.splice]`): downloads and uploads
//! around the threshold arrive byte-exact, chunked ones keep the parsing
//! path, the forced fallbacks (`RINGGATE_SPLICE_REFUSE`) give the same
//! bytes, a backend sending more than its Content-Length gets exactly that
//! many forwarded and its connection discarded, and backends or clients
//! leaving mid-body leak no descriptor or pipe.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ringgate_e2e::{Client, Gateway, simple_config, wait_until, with_gateway_lines};

const MIN_BODY: usize = 32 * 1024;

/// Deterministic, incompressible-looking bytes: body `n` of the backend.
fn content(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ n as u64;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// A keep-alive HTTP/1.1 backend:
/// - `GET /cl/N`: N bytes of [`content`] with a Content-Length;
/// - `GET /chunked/N`: the same, chunked in 10,000-byte chunks;
/// - `GET /extra/N`: Content-Length N, then N + 100 bytes;
/// - `GET /cut/N`: Content-Length N, then N / 2 bytes and a close;
/// - `GET /close-idle/N`: Content-Length N, then a close 100 ms later;
/// - `POST /upload`: answers `len hash` of the body it read.
struct Backend {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
}

impl Backend {
    fn start() -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let connections = Arc::new(AtomicU64::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(s));
            }
        });
        Backend { addr, connections }
    }
}

fn serve(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 65536];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or("/").to_string();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: ").or_else(|| l.strip_prefix("Content-Length: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = std::mem::take(&mut buf);
        while body.len() < len {
            let mut chunk = [0u8; 65536];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        buf = body.split_off(len);
        let n = |p: &str| target.strip_prefix(p).and_then(|v| v.parse::<usize>().ok());
        let ok = if target == "/upload" {
            let answer = format!("{} {:016x}", body.len(), fnv(&body));
            s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}", answer.len()).as_bytes())
        } else if let Some(n) = n("/cl/") {
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
            out.extend_from_slice(&content(n));
            s.write_all(&out)
        } else if let Some(n) = n("/chunked/") {
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in content(n).chunks(10_000) {
                out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            s.write_all(&out)
        } else if let Some(n) = n("/extra/") {
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
            out.extend_from_slice(&content(n + 100));
            s.write_all(&out)
        } else if let Some(n) = n("/close-idle/") {
            // Keep-alive by its head, then closed while idle in the pool.
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
            out.extend_from_slice(&content(n));
            let _ = s.write_all(&out);
            std::thread::sleep(Duration::from_millis(100));
            return;
        } else if let Some(n) = n("/cut/") {
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
            out.extend_from_slice(&content(n)[..n / 2]);
            let _ = s.write_all(&out);
            std::thread::sleep(Duration::from_millis(50));
            return;
        } else {
            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        };
        if ok.is_err() {
            return;
        }
    }
}

fn gateway(backend: &Backend, splice: &str, env: &[(&str, &str)]) -> Gateway {
    let config = with_gateway_lines(&simple_config(&[backend.addr], ""), splice);
    Gateway::start_with(&config, env).unwrap_or_else(|e| panic!("{e}"))
}

const SPLICE_ON: &str = "[gateway.splice]\nmin_body = \"32KiB\"";

/// Sizes around the threshold, and large ones.
fn sizes() -> Vec<usize> {
    vec![0, 1, MIN_BODY - 1, MIN_BODY, MIN_BODY + 1, 100_000, 1 << 20, (4 << 20) + 3]
}

fn downloads_arrive_whole(gw: &Gateway) {
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    for n in sizes() {
        for kind in ["cl", "chunked"] {
            let r = c.request("GET", &format!("/{kind}/{n}"), &[("Host", "site")], b"").expect("response");
            assert_eq!(r.status, 200, "{kind} {n}");
            assert!(r.body == content(n), "{kind} {n}: {} bytes, not the backend's", r.body.len());
        }
    }
}

fn uploads_arrive_whole(gw: &Gateway) {
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    for n in sizes() {
        let body = content(n);
        let r = c.request("POST", "/upload", &[("Host", "site")], &body).expect("response");
        assert_eq!(r.status, 200, "upload {n}");
        assert_eq!(r.text(), format!("{n} {:016x}", fnv(&body)), "upload {n}");
    }
}

fn counter(gw: &Gateway, series: &str) -> u64 {
    gw.metric(series).unwrap_or_else(|| panic!("{series} is exposed"))
}

#[test]
fn bodies_around_the_threshold_arrive_byte_exact_and_large_ones_are_spliced() {
    let backend = Backend::start();
    let gw = gateway(&backend, SPLICE_ON, &[]);
    downloads_arrive_whole(&gw);
    uploads_arrive_whole(&gw);
    // Counted once the answer is written: wait for the last request's count.
    let spliced = |d: &str| counter(&gw, &format!("ringgate_spliced_bytes_total{{direction=\"{d}\"}}"));
    assert!(wait_until(Duration::from_secs(5), || spliced("response") >= 4 << 20), "{}", spliced("response"));
    assert!(spliced("request") >= 4 << 20, "uploads spliced: {}", spliced("request"));
    let bodies = counter(&gw, "ringgate_spliced_bodies_total{direction=\"response\"}");
    // The 1 MiB and 4 MiB bodies at least; chunked ones and those below
    // the threshold never.
    assert!((2..=5).contains(&bodies), "{bodies} response bodies spliced");
    assert_eq!(counter(&gw, "ringgate_splice_fallbacks_total{reason=\"refused\"}"), 0);
}

#[test]
fn a_kernel_that_refuses_to_splice_gives_the_same_bytes_by_copying() {
    let backend = Backend::start();
    let gw = gateway(&backend, SPLICE_ON, &[("RINGGATE_SPLICE_REFUSE", "einval")]);
    downloads_arrive_whole(&gw);
    uploads_arrive_whole(&gw);
    assert!(
        wait_until(Duration::from_secs(5), || counter(&gw, "ringgate_splice_fallbacks_total{reason=\"refused\"}") >= 4)
    );
    assert_eq!(counter(&gw, "ringgate_spliced_bytes_total{direction=\"response\"}"), 0);
    assert_eq!(counter(&gw, "ringgate_spliced_bytes_total{direction=\"request\"}"), 0);
}

#[test]
fn without_a_pipe_bodies_are_copied_and_counted() {
    let backend = Backend::start();
    let gw = gateway(&backend, SPLICE_ON, &[("RINGGATE_SPLICE_REFUSE", "no-pipe")]);
    downloads_arrive_whole(&gw);
    uploads_arrive_whole(&gw);
    // Every Content-Length body at or above the threshold: 5 sizes each way.
    assert!(wait_until(Duration::from_secs(5), || counter(&gw, "ringgate_splice_fallbacks_total{reason=\"no_pipe\"}")
        == 10));
    assert_eq!(counter(&gw, "ringgate_spliced_bodies_total{direction=\"response\"}"), 0);
}

#[test]
fn splicing_turned_off_copies_every_body() {
    let backend = Backend::start();
    let gw = gateway(&backend, "[gateway.splice]\nenabled = false", &[]);
    downloads_arrive_whole(&gw);
    uploads_arrive_whole(&gw);
    assert_eq!(counter(&gw, "ringgate_spliced_bodies_total{direction=\"response\"}"), 0);
    assert_eq!(counter(&gw, "ringgate_spliced_bodies_total{direction=\"request\"}"), 0);
    assert_eq!(counter(&gw, "ringgate_splice_fallbacks_total{reason=\"no_pipe\"}"), 0);
}

#[test]
fn more_than_the_content_length_is_not_forwarded_and_the_connection_is_discarded() {
    let backend = Backend::start();
    let gw = gateway(&backend, SPLICE_ON, &[]);
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    for n in [200_000, 3 << 20] {
        let before = backend.connections.load(Ordering::SeqCst);
        let r = c.request("GET", &format!("/extra/{n}"), &[("Host", "site")], b"").expect("response");
        assert_eq!(r.status, 200);
        assert!(r.body == content(n + 100)[..n], "exactly the first {n} bytes");
        // The next response on the same client connection is its own, from
        // a new backend connection: the one with extra bytes was dropped.
        let r = c.request("GET", "/cl/10", &[("Host", "site")], b"").expect("next response");
        assert!(r.body == content(10), "the next response is intact");
        assert!(backend.connections.load(Ordering::SeqCst) > before, "a fresh backend connection after {n}");
    }
    assert!(counter(&gw, "ringgate_spliced_bodies_total{direction=\"response\"}") >= 1);
}

#[test]
fn leaving_mid_body_leaks_no_descriptor_or_pipe() {
    let backend = Backend::start();
    let gw = gateway(&backend, SPLICE_ON, &[]);
    // A clean spliced body first, so the worker's spare pipe exists.
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    let r = c.request("GET", &format!("/cl/{}", 1 << 20), &[("Host", "site")], b"").expect("response");
    assert!(r.body == content(1 << 20));
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    let (fds, pipe_fds) = (gw.fd_count(), gw.pipe_ends());

    for _ in 0..10 {
        // The backend closes half-way: the client's connection is cut too.
        let mut c = Client::connect(gw.addr("public")).expect("connect");
        let r = c.request("GET", &format!("/cut/{}", 2 << 20), &[("Host", "site")], b"");
        assert!(r.is_err(), "a truncated body is not passed off as whole: {r:?}");
        // The client leaves after the head and a little of a large body.
        let mut s = TcpStream::connect(gw.addr("public")).expect("connect");
        s.write_all(b"GET /cl/33554432 HTTP/1.1\r\nHost: site\r\n\r\n").expect("send");
        let mut first = [0u8; 70_000];
        let mut got = 0;
        while got < first.len() {
            match s.read(&mut first[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        assert!(got > 1000, "the response started");
        drop(s);
        // An upload whose client leaves half-way.
        let mut s = TcpStream::connect(gw.addr("public")).expect("connect");
        s.write_all(b"POST /upload HTTP/1.1\r\nHost: site\r\nContent-Length: 4000000\r\n\r\n").expect("send");
        s.write_all(&content(1_000_000)).expect("send");
        drop(s);
    }
    // A pipe a failed relay may have left bytes in is closed, not kept:
    // fewer descriptors than before is fine (no spare pipe, no pooled
    // connection), more would be a leak.
    let settled = wait_until(Duration::from_secs(10), || gw.fd_count() <= fds && gw.pipe_ends() <= pipe_fds);
    assert!(settled, "descriptors {} (were {fds}), pipe ends {} (were {pipe_fds})", gw.fd_count(), gw.pipe_ends());
    // And the gateway still splices, with one spare pipe again.
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    let r = c.request("GET", &format!("/cl/{}", 1 << 20), &[("Host", "site")], b"").expect("response");
    assert!(r.body == content(1 << 20));
    drop(c);
    assert!(wait_until(Duration::from_secs(5), || gw.pipe_ends() == pipe_fds), "pipe ends {}", gw.pipe_ends());
    assert!(wait_until(Duration::from_secs(5), || gw.fd_count() <= fds), "descriptors {}", gw.fd_count());
}

#[test]
fn a_request_pipelined_after_a_spliced_upload_is_answered() {
    let backend = Backend::start();
    let gw = gateway(&backend, SPLICE_ON, &[]);
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    let body = content(300_000);
    let mut bytes =
        format!("POST /upload HTTP/1.1\r\nHost: site\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(b"GET /cl/50000 HTTP/1.1\r\nHost: site\r\n\r\n");
    c.send(&bytes).expect("send");
    let r = c.read_response(false).expect("upload answer");
    assert_eq!(r.text(), format!("300000 {:016x}", fnv(&body)));
    let r = c.read_response(false).expect("pipelined answer");
    assert!(r.body == content(50_000));
}

/// A connection that carries large bodies one after the other splices every
/// one after the first, both ways: its receive side stays released between
/// them, so a head is read with a plain receive and the body behind it is
/// still in the socket (a multishot receive would have taken it). Small
/// requests in between bring the multishot receive back and are answered.
#[test]
fn consecutive_large_bodies_on_one_connection_are_spliced() {
    let backend = Backend::start();
    let gw = gateway(&backend, SPLICE_ON, &[]);
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    let mut first_connections = 0;
    for i in 0..6 {
        let n = 100_000 + i;
        let r = c.request("GET", &format!("/cl/{n}"), &[("Host", "site")], b"").expect("response");
        assert!(r.status == 200 && r.body == content(n), "download {i}");
        if i == 0 {
            // The health probe's connections, and the one serving us.
            first_connections = backend.connections.load(Ordering::SeqCst);
        }
    }
    for i in 0..6 {
        let body = content(200_000 + i);
        let r = c.request("POST", "/upload", &[("Host", "site")], &body).expect("response");
        assert_eq!(r.text(), format!("{} {:016x}", body.len(), fnv(&body)), "upload {i}");
    }
    let bodies = |d: &str| counter(&gw, &format!("ringgate_spliced_bodies_total{{direction=\"{d}\"}}"));
    assert!(wait_until(Duration::from_secs(5), || bodies("request") >= 5), "uploads spliced: {}", bodies("request"));
    assert!(bodies("response") >= 5, "downloads spliced: {}", bodies("response"));
    // Large and small, mixed, on the same connection.
    for i in 0..4 {
        for n in [150_000 + i, 10 + i, 0] {
            let r = c.request("GET", &format!("/cl/{n}"), &[("Host", "site")], b"").expect("response");
            assert!(r.body == content(n), "mixed {i} {n}");
            let body = content(n * 2);
            let r = c.request("POST", "/upload", &[("Host", "site")], &body).expect("response");
            assert_eq!(r.text(), format!("{} {:016x}", body.len(), fnv(&body)), "mixed upload {i} {n}");
        }
    }
    let connections = backend.connections.load(Ordering::SeqCst);
    assert_eq!(connections, first_connections, "one backend connection served them all");
}

/// A backend that closes a pooled connection whose receive side was left
/// released after a spliced body: the pool sees the close (a peek) and a
/// request that cannot be retried (a POST) goes to a new connection
/// instead of failing on the dead one.
#[test]
fn a_released_pooled_connection_closed_by_its_backend_is_not_reused() {
    let backend = Backend::start();
    let gw = gateway(&backend, SPLICE_ON, &[]);
    let mut c = Client::connect(gw.addr("public")).expect("connect");
    for round in 0..3 {
        let r = c.request("GET", "/close-idle/300000", &[("Host", "site")], b"").expect("response");
        assert!(r.body == content(300_000), "round {round}");
        std::thread::sleep(Duration::from_millis(400));
        let before = backend.connections.load(Ordering::SeqCst);
        let r = c.request("POST", "/upload", &[("Host", "site")], b"abc").expect("response");
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        assert_eq!(r.text(), format!("3 {:016x}", fnv(b"abc")));
        assert_eq!(backend.connections.load(Ordering::SeqCst), before + 1, "a new backend connection");
    }
    assert!(counter(&gw, "ringgate_spliced_bodies_total{direction=\"response\"}") >= 2);
}
