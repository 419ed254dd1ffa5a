//! Micro-benchmarks of the request path's pure parts: parsing heads, following
//! chunked bodies, routing and picking a server (by host, by path, with a
//! rewrite rule set evaluated), rewriting heads, and the fast-path 502.
//! Run: `cargo bench -p ringgate-bench`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringgate_config::HostPattern;
use ringgate_http::{
    ChunkedDecoder, ErrorCode, ForwardInfo, ParseLimits, RequestHead, ResponseHead, ResponseRewrite, error_response,
    parse_request, parse_response, write_request_head, write_response_head,
};
use ringgate_proxy::{HostRoutes, MetricsRegistry, Plan, RequestVars, RouteAction, RulePlan, pick, routing_path};
use ringgate_rewrite::{Edits, RuleSet};

/// What wrk sends, plus the headers a browser adds.
const WRK_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
const BROWSER_REQUEST: &[u8] = b"GET /api/v1/items?page=2&sort=name HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\nCookie: session=abc123; ApplicationGatewayAffinity=0123456789abcdef\r\nConnection: keep-alive\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n";
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
        client_ip: b"192.0.2.10:51234",
        port: b"80",
        proto: b"http",
        host_override: None,
        fallback_host: b"10.0.0.1:80",
        traceparent: Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ..ForwardInfo::default()
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

    // The browser's request, parsed once (parsing is measured above): what
    // the worker has in hand when it routes.
    let limits = ParseLimits::default();
    let mut head = RequestHead::default();
    parse_request(BROWSER_REQUEST, &limits, &mut head).expect("valid request");
    let req = (BROWSER_REQUEST, &head);

    // A path-based rule of 20 path rules; the request's path is the 15th
    // pattern's. The plan is built from the configuration as a reload
    // builds it; the pick is the basic bench's (4 servers, all up), so the
    // difference between the two is the path routing.
    let plan = plan_of(&path_map_config());
    let mut scratch = Vec::new();
    let (ti, pr) = route_request(&plan, req, &mut scratch);
    assert_eq!(pr, Some(14), "the request must hit the 15th pattern");
    assert_eq!(plan.targets[ti].path_rule.as_deref(), Some("p15"));
    assert_eq!(plan.targets[ti].servers.len(), 4);
    g.bench_function("path_map_20_rules_15th_matches", |b| {
        b.iter(|| {
            let (ti, _) = route_request(&plan, black_box(req), &mut scratch);
            pick(plan.targets[ti].servers.len(), &mut cursor, None, |i| healthy[i])
        })
    });

    // A basic rule whose target has a 5-rule rewrite set with header
    // conditions, evaluated on the browser's request (request phase): once
    // with no rule matching, once with two matching and setting headers
    // (each from a capture group).
    let mut edits = Edits::new();
    for (name, matching) in [("rewrite_5_rules_none_match", false), ("rewrite_5_rules_2_match", true)] {
        let plan = plan_of(&rewrite_config(matching));
        let sets = rewrite_sets(&plan);
        let (ti, _) = route_request(&plan, req, &mut scratch);
        let set = sets[ti].as_deref().expect("the rule's target has the rewrite set");
        assert_eq!(set.len(), 5);
        set.request_edits(&vars_of(req), &mut edits);
        if matching {
            let got: Vec<_> = edits.headers().map(|e| (e.name, e.value.unwrap_or_default())).collect();
            assert_eq!(got, [("X-Browser-Major", &b"120"[..]), ("X-Lang", &b"en"[..])], "two rules set headers");
        } else {
            assert!(edits.is_empty() && edits.matched_rules() == 0, "no rule may match");
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                let req = black_box(req);
                let (ti, _) = route_request(&plan, req, &mut scratch);
                if let Some(set) = &sets[ti] {
                    set.request_edits(&vars_of(req), &mut edits);
                }
                (edits.matched_rules(), pick(plan.targets[ti].servers.len(), &mut cursor, None, |i| healthy[i]))
            })
        });
    }
    g.finish();
}

/// A plan as the control thread builds it on load (nothing is bound).
fn plan_of(toml: &str) -> Plan {
    let config = ringgate_config::load_str(toml, Path::new("bench.toml")).unwrap_or_else(|e| panic!("{e}"));
    let health = ringgate_health::HealthTable::new();
    Plan::build(Arc::new(config), 1, &health, &MetricsRegistry::new(1)).expect("plan")
}

/// Per target, its rewrite rule set (as the plan's targets hold it).
fn rewrite_sets(plan: &Plan) -> Vec<Option<Arc<RuleSet>>> {
    let c = &plan.config;
    c.targets.iter().map(|t| t.rewrite_set.map(|r| c.rewrite_rule_sets[r.0].set.clone())).collect()
}

/// What the worker does from a parsed head to a target: Host to rule on
/// the (only) socket, then the rule's action, by path for a path-based
/// rule. Returns the target and the path rule that matched.
#[inline]
fn route_request(plan: &Plan, (buf, head): (&[u8], &RequestHead), scratch: &mut Vec<u8>) -> (usize, Option<usize>) {
    let host = head.host.map(|h| h.of(buf));
    let ri = plan.sockets[0].routes.route(host).expect("a rule");
    let (action, path_rule) = match &plan.rules[ri] {
        RulePlan::Basic(a) => (*a, None),
        RulePlan::PathBased(map) => {
            let (path, _) = routing_path(head.path.of(buf), scratch).expect("a routable path");
            let r = map.route(path);
            (r.action, r.path_rule)
        }
    };
    match action {
        RouteAction::Forward(t) => (t, path_rule),
        RouteAction::Redirect(_) => unreachable!("the bench configurations forward"),
    }
}

/// Two pools of 4 servers and one setting, for the routing benches.
const POOLS: &str = r#"
[[listener]]
name = "public"
listen = "127.0.0.1:8080"

[[backend_pool]]
name = "web"
addresses = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"]

[[backend_pool]]
name = "api"
addresses = ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:80", "10.0.1.4:80"]

[[backend_http_settings]]
name = "s"
"#;

/// A shop's path map: 20 path rules of one path each, prefix and exact
/// mixed; `/api/v1/*` (the browser request's `/api/v1/items`) is 15th, after
/// patterns that share its first bytes.
fn path_map_config() -> String {
    let paths = [
        "/images/*",
        "/static/*",
        "/favicon.ico",
        "/login",
        "/logout",
        "/account/*",
        "/cart",
        "/checkout/*",
        "/search",
        "/help/*",
        "/api/v3/*",
        "/api/v2/*",
        "/api/health",
        "/api/v1/items/export",
        "/api/v1/*",
        "/ws/*",
        "/admin/*",
        "/robots.txt",
        "/sitemap.xml",
        "/blog/*",
    ];
    let mut t = format!(
        "{POOLS}\n[[url_path_map]]\nname = \"shop\"\ndefault_backend_pool = \"web\"\ndefault_backend_http_settings = \"s\"\n"
    );
    for (i, p) in paths.iter().enumerate() {
        let pool = if p.starts_with("/api/") { "api" } else { "web" };
        t.push_str(&format!(
            "\n[[url_path_map.path_rule]]\nname = \"p{}\"\npaths = [\"{p}\"]\nbackend_pool = \"{pool}\"\nbackend_http_settings = \"s\"\n",
            i + 1
        ));
    }
    t.push_str(
        "\n[[rule]]\nname = \"shop\"\nlistener = \"public\"\nrule_type = \"path_based\"\nurl_path_map = \"shop\"\n",
    );
    t
}

/// A basic rule with a 5-rule rewrite set whose conditions test request
/// headers. `matching`: rules 1 and 3 match the browser's request (Chrome,
/// English) and set a header from a capture group; otherwise they look for
/// Firefox and German/French, and no rule matches. Rules 2, 4 and 5 never
/// match it.
fn rewrite_config(matching: bool) -> String {
    let (ua, lang) = if matching { (r"Chrome/(\d+)", r"^([a-z]{2})\b") } else { (r"Firefox/(\d+)", r"^(de|fr)\b") };
    format!(
        r#"{POOLS}
[[rule]]
name = "site"
listener = "public"
backend_pool = "web"
backend_http_settings = "s"
rewrite_rule_set = "browser"

[[rewrite_rule_set]]
name = "browser"

[[rewrite_rule_set.rule]]
name = "browser-major"
sequence = 10
request_headers = {{ "X-Browser-Major" = "{{http_req_user-agent_1}}" }}

[[rewrite_rule_set.rule.condition]]
variable = "http_req_User-Agent"
pattern = '{ua}'

[[rewrite_rule_set.rule]]
name = "mobile"
sequence = 20
request_headers = {{ "X-Device" = "mobile" }}

[[rewrite_rule_set.rule.condition]]
variable = "http_req_User-Agent"
pattern = 'mobile|android|iphone'
ignore_case = true

[[rewrite_rule_set.rule]]
name = "language"
sequence = 30
request_headers = {{ "X-Lang" = "{{http_req_accept-language_1}}" }}

[[rewrite_rule_set.rule.condition]]
variable = "http_req_Accept-Language"
pattern = '{lang}'

[[rewrite_rule_set.rule]]
name = "legacy-ie"
sequence = 40
request_headers = {{ "X-Legacy-Browser" = "1" }}

[[rewrite_rule_set.rule.condition]]
variable = "http_req_User-Agent"
pattern = 'MSIE |Trident/'

[[rewrite_rule_set.rule]]
name = "beta"
sequence = 50
request_headers = {{ "X-Beta" = "1" }}

[[rewrite_rule_set.rule.condition]]
variable = "http_req_Cookie"
pattern = '(?:^|; )beta=1(?:;|$)'
"#
    )
}

/// The request's variables as a worker lends them: the data plane's own
/// `RequestVars` over the parsed head.
fn vars_of<'a>((buf, head): (&'a [u8], &'a RequestHead)) -> RequestVars<'a> {
    RequestVars::new(buf, head, None, b"192.0.2.10", b"51234", b"8080", b"http", None)
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
