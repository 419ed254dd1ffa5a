//! Micro-benchmarks of the request path's pure parts: parsing heads, following
//! chunked bodies, routing and picking a server, rewriting heads, and the
//! fast-path 502. Run: `cargo bench -p ringgate-bench`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringgate_config::HostPattern;
use ringgate_http::{
    ChunkedDecoder, ErrorCode, ForwardInfo, ParseLimits, RequestHead, ResponseHead, ResponseRewrite, error_response,
    parse_request, parse_response, write_request_head, write_response_head,
};
use ringgate_proxy::{HostRoutes, pick};

/// What wrk sends, plus the headers a browser adds.
const WRK_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
const BROWSER_REQUEST: &[u8] = b"GET /api/v1/items?page=2&sort=name HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\nCookie: session=abc123; RinggateAffinity=0123456789abcdef\r\nConnection: keep-alive\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n";
const NGINX_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 25 Nov 2026 12:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nhello, world\n";

fn heads(c: &mut Criterion) {
    let limits = ParseLimits::default();
    let mut g = c.benchmark_group("request_head_parse");
    for (name, raw) in [("wrk", WRK_REQUEST), ("browser", BROWSER_REQUEST)] {
        g.throughput(Throughput::Bytes(raw.len() as u64));
        let mut head = RequestHead::default();
        g.bench_function(name, |b| b.iter(|| parse_request(black_box(raw), &limits, &mut head)));
    }
    g.finish();

    let mut g = c.benchmark_group("response_head_parse");
    g.throughput(Throughput::Bytes(NGINX_RESPONSE.len() as u64));
    let mut head = ResponseHead::default();
    g.bench_function("nginx", |b| b.iter(|| parse_response(black_box(NGINX_RESPONSE), 65536, 256, false, &mut head)));
    g.finish();

    let mut g = c.benchmark_group("head_rewrite");
    let mut req = RequestHead::default();
    parse_request(BROWSER_REQUEST, &limits, &mut req).expect("valid request");
    let info = ForwardInfo {
        client_ip: b"192.0.2.10",
        proto: b"http",
        host_override: None,
        fallback_host: b"10.0.0.1:80",
        target: None,
    };
    let mut out = Vec::with_capacity(4096);
    g.bench_function("request_browser", |b| {
        b.iter(|| {
            out.clear();
            write_request_head(black_box(BROWSER_REQUEST), &req, &info, &mut out);
        })
    });
    let mut resp = ResponseHead::default();
    parse_response(NGINX_RESPONSE, 65536, 256, false, &mut resp).expect("valid response");
    let rw = ResponseRewrite::default();
    g.bench_function("response_nginx", |b| {
        b.iter(|| {
            out.clear();
            write_response_head(black_box(NGINX_RESPONSE), &resp, &rw, &mut out);
        })
    });
    g.finish();
}

fn chunked(c: &mut Criterion) {
    let mut body = Vec::new();
    for _ in 0..64 {
        body.extend_from_slice(b"400\r\n");
        body.extend(std::iter::repeat_n(b'x', 0x400));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut g = c.benchmark_group("chunked");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("scan_64x1KiB", |b| {
        b.iter(|| {
            let mut d = ChunkedDecoder::new();
            d.feed(black_box(&body), |_| {})
        })
    });
    let small = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("decode_small_with_trailer", |b| {
        b.iter(|| {
            let mut d = ChunkedDecoder::new();
            let mut n = 0;
            let p = d.feed(black_box(small), |c| n += c.len());
            (p, n)
        })
    });
    g.finish();
}

fn route_and_pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_and_pick");
    let mut basic = HostRoutes::default();
    basic.add(&[], 0);
    let healthy = [true; 4];
    let mut cursor = 0usize;
    g.bench_function("basic_listener_4_servers", |b| {
        b.iter(|| {
            let rule = basic.route(black_box(Some(b"127.0.0.1:8080")));
            (rule, pick(4, &mut cursor, None, |i| healthy[i]))
        })
    });
    let mut multi = HostRoutes::default();
    for i in 0..16 {
        multi.add(&[HostPattern::Exact(format!("site{i}.example.com"))], i);
    }
    multi.add(&[HostPattern::Wildcard(".shop.example.com".into())], 16);
    multi.add(&[], 17);
    let mostly_down = [false, false, false, true];
    g.bench_function("multi_site_wildcard_3_of_4_down", |b| {
        b.iter(|| {
            let rule = multi.route(black_box(Some(b"EU.Shop.Example.com:443")));
            (rule, pick(4, &mut cursor, None, |i| mostly_down[i]))
        })
    });
    g.finish();
}

fn fast_502(c: &mut Criterion) {
    let mut g = c.benchmark_group("fast_path_502");
    let text = "502 Bad Gateway (rule \"rule01\"): every server of backend pool \"pool01\" is unhealthy; see GET /backend-health on the admin listener or run `ringgate doctor`";
    g.bench_function("build_at_load", |b| b.iter(|| error_response(ErrorCode::AllUnhealthy, black_box(text), false)));
    let prebuilt = error_response(ErrorCode::AllUnhealthy, text, false);
    let mut out = Vec::with_capacity(4096);
    let states = [false; 4];
    let mut cursor = 0usize;
    g.bench_function("per_request_pick_and_copy", |b| {
        b.iter(|| {
            out.clear();
            let p = pick(4, &mut cursor, None, |i| black_box(states[i]));
            out.extend_from_slice(&prebuilt);
            (p, out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, heads, chunked, route_and_pick, fast_502);
criterion_main!(benches);
