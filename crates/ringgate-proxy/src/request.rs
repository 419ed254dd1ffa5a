//! The request path, one for every client protocol: route a parsed request
//! head, answer it at once when the pool is empty or all-unhealthy (or with
//! a redirect, or an error page), or take it to a backend (`exchange`), then
//! count and log it.
//!
//! A codec (`h1` for an HTTP/1.1 connection, `h2` for each HTTP/2 stream)
//! gives it a [`Client`]: the request head parsed into `rbuf`/`head`, and a
//! byte stream `S` that carries the request body and the response in
//! HTTP/1.1 message syntax. HTTP/1.1's stream is the socket (or its TLS
//! session); an HTTP/2 stream's maps that syntax to and from its frames.
//! So routing, rewrites, the forwarding fields, error pages and every 502
//! are one code whatever the client speaks.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use ringgate_config::SocketKey;
use ringgate_http::{BodyKind, ErrorCode, RequestError, RequestHead, ResponseHead};

use crate::access_log::{LogRecord, format_line};
use crate::balance::{Pick, find_cookie, pick_from};
use crate::io::Timer;
use crate::local::LocalPlan;
use crate::metrics::RuleMetrics;
use crate::plan::{Plan, TargetPlan};
use crate::route::{RouteAction, RulePlan};
use crate::worker::{ConnGuard, Worker};

/// Bytes a new connection's read buffer starts with; it grows up to the
/// request head limit only when a client sends a larger head.
pub(crate) const INITIAL_READ: usize = 4096;

/// What happened to one request, for the metrics and the access log.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub status: u16,
    pub code: Option<ErrorCode>,
    pub server: Option<usize>,
    pub backend_status: Option<u16>,
    pub connect_time: Option<Duration>,
    pub response_time: Option<Duration>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The client connection may serve another request.
    pub keep: bool,
    /// The full text of a gateway error, for the access log (the client may
    /// have been shown less: `error_detail`).
    pub detail: Option<std::sync::Arc<str>>,
}

/// Host, method and path of a request, copied for the access log before the
/// read buffer is reused for the body.
#[derive(Debug, Default)]
pub(crate) struct LogMeta {
    buf: Vec<u8>,
    host: (usize, usize),
    method: (usize, usize),
    path: (usize, usize),
    trace: (usize, usize),
    user_agent: (usize, usize),
    request_id: (usize, usize),
}

impl LogMeta {
    fn capture(&mut self, rbuf: &[u8], head: &RequestHead) {
        self.buf.clear();
        let mut put = |b: &[u8]| {
            let s = self.buf.len();
            self.buf.extend_from_slice(b);
            (s, self.buf.len())
        };
        self.host = head.host.map_or((0, 0), |h| put(h.of(rbuf)));
        self.method = put(head.method_span.of(rbuf));
        self.path = put(head.target.of(rbuf));
        // Only fields the parser did not classify can be these; one pass.
        let (mut ua, mut id) = (None, None);
        for h in head.headers.iter().filter(|h| h.kind == ringgate_http::HeaderKind::Other) {
            let name = h.name.of(rbuf);
            if ua.is_none() && name.eq_ignore_ascii_case(b"user-agent") {
                ua = Some(h.value.of(rbuf));
            } else if id.is_none() && name.eq_ignore_ascii_case(b"x-request-id") {
                id = Some(h.value.of(rbuf));
            }
        }
        self.user_agent = ua.map_or((0, 0), |v| put(&v[..v.len().min(512)]));
        self.request_id = id.map_or((0, 0), |v| put(&v[..v.len().min(128)]));
    }

    /// Best effort for a request refused before its head parsed: the method
    /// and target as they appear on the request line.
    pub(crate) fn capture_raw(&mut self, rbuf: &[u8]) {
        self.reset();
        let line_end = rbuf.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(rbuf.len()).min(1024);
        let mut parts = rbuf[..line_end].splitn(3, |&b| b == b' ');
        let method = parts.next().unwrap_or_default();
        let target = parts.next().unwrap_or_default();
        let mut put = |b: &[u8]| {
            let s = self.buf.len();
            self.buf.extend_from_slice(b);
            (s, self.buf.len())
        };
        self.method = put(method);
        self.path = put(target);
    }

    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.host = (0, 0);
        self.method = (0, 0);
        self.path = (0, 0);
        self.trace = (0, 0);
        self.user_agent = (0, 0);
        self.request_id = (0, 0);
    }

    fn set_trace(&mut self, id: &[u8]) {
        let s = self.buf.len();
        self.buf.extend_from_slice(id);
        self.trace = (s, self.buf.len());
    }

    fn get(&self, r: (usize, usize)) -> &[u8] {
        &self.buf[r.0..r.1]
    }
}

/// The protocol a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientProtocol {
    /// HTTP/1.0 or 1.1, as the request line says.
    Http1,
    /// An HTTP/2 stream, by id.
    Http2 { stream: u32 },
}

/// One client's side of the request path: an HTTP/1 connection, or one
/// HTTP/2 stream, with its buffers.
/// The names an access log line gives a request (empty: none).
#[derive(Debug, Clone, Copy, Default)]
struct LogNames<'a> {
    listener: &'a str,
    rule: &'a str,
    server: &'a str,
    pool: &'a str,
    settings: &'a str,
}

/// What a client connection is, from its accept (and handshake): shared by
/// the HTTP/1 connection and every HTTP/2 stream of it.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// The client: the connection's peer, or the address a PROXY protocol
    /// header gave for it.
    pub peer: SocketAddr,
    /// The socket that accepted the connection.
    pub socket: SocketKey,
    /// The port the client connected to.
    pub port: u16,
    /// What the TLS handshake negotiated (`https` listeners).
    pub tls: Option<ringgate_tls::TlsInfo>,
    /// The client is one of `trusted_proxies`: its X-Forwarded-For is kept.
    pub forwarded_for_trusted: bool,
    /// Mutual TLS: the client's certificate and its verdict (`None`: the
    /// listener asks for none).
    pub client_cert: Option<Rc<ringgate_tls::ClientCert>>,
    /// Requests need a verified client certificate.
    pub client_cert_required: bool,
}

impl ConnInfo {
    /// Before a TLS handshake (if any) has told more.
    pub fn new(peer: SocketAddr, socket: SocketKey, port: u16, forwarded_for_trusted: bool) -> ConnInfo {
        ConnInfo {
            peer,
            socket,
            port,
            tls: None,
            forwarded_for_trusted,
            client_cert: None,
            client_cert_required: false,
        }
    }
}

pub(crate) struct Client<S> {
    pub w: Rc<Worker>,
    pub stream: S,
    pub peer: SocketAddr,
    /// The socket that accepted the connection.
    pub(crate) socket: SocketKey,
    /// Bytes read from the client and not yet consumed: the current request
    /// head, then possibly the start of its body or of the next request.
    pub rbuf: Vec<u8>,
    pub head: RequestHead,
    pub resp: ResponseHead,
    /// The client as `ip:port` text (`[ip]:port` for IPv6), for
    /// X-Forwarded-For; `ip_len` bytes of it are the address itself.
    pub peer_text: Box<[u8]>,
    pub ip_len: usize,
    /// The port the client connected to, as text (X-Forwarded-Port).
    pub port_text: Box<[u8]>,
    /// The current request's head, kept for response rewrite rules that
    /// read request variables (empty unless a rule set needs it).
    pub req_copy: Vec<u8>,
    /// The `traceparent` sent with the current request when the client's
    /// was missing or invalid (`trace_generated`).
    pub traceparent: [u8; ringgate_http::trace::TRACEPARENT_LEN],
    pub trace_generated: bool,
    /// The target the current request was routed to, whose listener's
    /// error pages its gateway answers use (None: the socket's).
    pub(crate) page_target: Option<usize>,
    /// The connection's registration (HTTP/1; an HTTP/2 stream's belongs to
    /// its connection).
    pub(crate) guard: Option<ConnGuard>,
    pub(crate) served: u64,
    pub(crate) meta: LogMeta,
    /// A backend connection switched to another protocol (101), to splice.
    pub tunnel: Option<crate::conn_pool::BackendConn>,
    /// The target forwarded instead of the client's (a normalized path, an
    /// `override_backend_path`), with its query; empty: the client's own.
    pub fwd_target: Vec<u8>,
    /// Room for a normalized request path while routing.
    pub(crate) path_scratch: Vec<u8>,
    /// Bounds the waits for a request head (see [`Timer`]).
    pub(crate) head_timer: Timer,
    /// What the connection's TLS handshake negotiated, for the access log.
    pub(crate) tls: Option<ringgate_tls::TlsInfo>,
    /// The client's own X-Forwarded-For is kept (see `trusted_proxies`).
    pub(crate) forwarded_for_trusted: bool,
    /// See [`ConnInfo::client_cert`].
    pub(crate) client_cert: Option<Rc<ringgate_tls::ClientCert>>,
    pub(crate) client_cert_required: bool,
    /// The last request's body was spliced, and the client's receive side
    /// is still released to the splice path (see `h1::wait_input`).
    pub(crate) spliced_upload: bool,
    /// What the client speaks, for the access log and the metrics.
    pub(crate) protocol: ClientProtocol,
    /// Bounds the reads and writes of an exchange. Apart from `head_timer`
    /// so that each sees deadlines that only move later (keep-alive after
    /// keep-alive; request time-out after request time-out), which re-aims a
    /// timer without re-registering it.
    pub timer: Timer,
}

impl<S: crate::io::ClientStream> Client<S> {
    pub(crate) fn new(w: Rc<Worker>, stream: S, conn: ConnInfo, guard: Option<ConnGuard>, rbuf: Vec<u8>) -> Self {
        let ConnInfo { peer, socket, port, tls, forwarded_for_trusted, client_cert, client_cert_required } = conn;
        // Application Gateway's X-Forwarded-For element: `ip:port`.
        let ip = peer.ip().to_string();
        let peer_text = match peer {
            SocketAddr::V4(_) => format!("{ip}:{}", peer.port()),
            SocketAddr::V6(_) => format!("[{ip}]:{}", peer.port()),
        };
        let ip_len = if peer.is_ipv6() { ip.len() + 2 } else { ip.len() };
        Client {
            w,
            stream,
            peer,
            socket,
            rbuf,
            head: RequestHead::default(),
            resp: ResponseHead::default(),
            peer_text: peer_text.into_bytes().into(),
            ip_len,
            port_text: port.to_string().into_bytes().into(),
            req_copy: Vec::new(),
            traceparent: [0; ringgate_http::trace::TRACEPARENT_LEN],
            trace_generated: false,
            page_target: None,
            guard,
            served: 0,
            meta: LogMeta::default(),
            tunnel: None,
            fwd_target: Vec::new(),
            path_scratch: Vec::new(),
            head_timer: Timer::new(),
            timer: Timer::new(),
            protocol: ClientProtocol::Http1,
            tls,
            forwarded_for_trusted,
            client_cert,
            client_cert_required,
            spliced_upload: false,
        }
    }

    /// Marks the connection idle (between requests) or busy, for a drain.
    pub(crate) fn set_idle(&self, idle: bool) {
        if let Some(g) = &self.guard {
            g.set_idle(idle);
        }
    }

    /// Why a listener that requires a client certificate refuses this
    /// connection's requests (`None`: it has a verified one).
    fn client_cert_refusal(&self) -> Option<(ErrorCode, String)> {
        match self.client_cert.as_deref() {
            Some(c) if c.ok() => None,
            Some(c) if c.failure != Some(ringgate_tls::CertFailure::Missing) => Some((
                ErrorCode::ClientCertificateUntrusted,
                format!("the SSL certificate error: {}", c.verification.trim_start_matches("FAILED:")),
            )),
            // None sent (or, were the verdict missing, none known).
            _ => Some((ErrorCode::ClientCertificateMissing, "no required SSL certificate was sent".into())),
        }
    }

    /// Answers a request head the parser refused (the status and reason
    /// its error gives), and records it. Returns whether the connection
    /// stays open (never, for HTTP/1: the framing of what follows is lost).
    pub(crate) async fn refuse_head(&mut self, plan: &Plan, e: &RequestError, close: bool, start: Instant) -> bool {
        if self.w.shared.access_log.is_some() {
            self.meta.capture_raw(&self.rbuf);
        }
        let status = match e {
            RequestError::VersionNotSupported => plan.config.gateway.unknown_version_status,
            _ => e.status(),
        };
        let text = format!("{status} {}: {}", ringgate_http::reason_phrase(status), e.reason());
        let mut out = self.reply_error_as(e.code(), status, &text, close).await;
        out.detail = Some(text.into());
        self.finish(plan, None, start, out);
        false
    }

    /// Routes and serves one request whose head is in `rbuf`. Returns whether
    /// the connection stays open.
    pub(crate) async fn handle(&mut self, lp: &Rc<LocalPlan>, start: Instant) -> bool {
        let plan = &lp.plan;
        if self.w.shared.access_log.is_some() {
            self.meta.capture(&self.rbuf, &self.head);
        }
        self.choose_trace();
        self.page_target = None;
        if self.client_cert_required
            && let Some((code, why)) = self.client_cert_refusal()
        {
            // As Application Gateway v2: the handshake went through, the
            // request is answered 400 with the reason.
            let close = self.head.body != BodyKind::Empty || self.head.close;
            self.skip_head();
            let text = format!("400 Bad Request: {why}");
            let mut out = self.reply_error(code, &text, close).await;
            out.detail = Some(text.into());
            self.finish(plan, None, start, out);
            return !close;
        }
        if self.head.method == ringgate_http::Method::Trace && !plan.config.gateway.allow_trace {
            let close = self.head.body != BodyKind::Empty || self.head.close;
            self.skip_head();
            let text = "405 Method Not Allowed: TRACE is not allowed by this gateway";
            let out = self.reply_error(ErrorCode::MethodNotAllowed, text, close).await;
            self.finish(plan, None, start, out);
            return !close;
        }
        let host = self.head.host.map(|h| h.of(&self.rbuf));
        let Some(ri) = plan.socket(&self.socket).and_then(|s| s.routes.route(host)) else {
            let text = format!(
                "404 Not Found: no listener on {} answers host \"{}\"",
                self.socket,
                String::from_utf8_lossy(host.unwrap_or_default())
            );
            let close = self.head.body != BodyKind::Empty || self.head.close;
            self.skip_head();
            let shown = if plan.public_errors { crate::error::public_text(ErrorCode::NoRoute) } else { &text };
            let mut out = self.reply_error(ErrorCode::NoRoute, shown, close).await;
            out.detail = Some(text.into());
            self.finish(plan, None, start, out);
            return !close;
        };
        self.fwd_target.clear();
        let (ti, matched_len) = match &plan.rules[ri] {
            RulePlan::Basic(RouteAction::Forward(t)) => (*t, 0),
            RulePlan::Basic(RouteAction::Redirect(r)) => return self.redirect(plan, ri, *r, start).await,
            RulePlan::PathBased(map) => {
                let target = self.head.path.of(&self.rbuf);
                let routed = crate::route::routing_path(target, &mut self.path_scratch).map(|(path, changed)| {
                    let r = map.route(path);
                    (r, changed)
                });
                match routed {
                    Err(e) => {
                        let text = format!("400 Bad Request: {}", e.reason());
                        self.skip_head();
                        let out = self.reply_error(ErrorCode::BadRequest, &text, true).await;
                        self.finish(plan, None, start, out);
                        return false;
                    }
                    Ok((r, changed)) => {
                        // The server gets the path that was routed, so it
                        // cannot read it differently from the path rule.
                        if changed {
                            let (_, query) = ringgate_http::path::split_query(self.head.path.of(&self.rbuf));
                            self.fwd_target.extend_from_slice(&self.path_scratch);
                            if let Some(q) = query {
                                self.fwd_target.push(b'?');
                                self.fwd_target.extend_from_slice(q);
                            }
                        }
                        match r.action {
                            RouteAction::Forward(t) => (t, r.matched_len),
                            RouteAction::Redirect(x) => return self.redirect(plan, ri, x, start).await,
                        }
                    }
                }
            }
        };
        let target = &plan.targets[ti];
        self.page_target = Some(ti);
        if let Some(over) = &target.override_path {
            self.override_path(over, matched_len);
        }
        let out = self.route(lp, ti, target).await;
        let keep = out.keep;
        self.finish(plan, Some(target), start, out);
        keep
    }

    /// The client as (ip, port) text, the IPv6 address without brackets.
    pub(crate) fn client_ip_and_port(&self) -> (&[u8], &[u8]) {
        let ip = &self.peer_text[..self.ip_len];
        let ip = ip.strip_prefix(b"[").and_then(|i| i.strip_suffix(b"]")).unwrap_or(ip);
        (ip, &self.peer_text[self.ip_len + 1..])
    }

    /// Keeps the client's `traceparent` when it sent exactly one valid
    /// value, else makes a new one; the trace id goes to the access log.
    fn choose_trace(&mut self) {
        let mut fields = self.head.headers.iter().filter(|h| h.kind == ringgate_http::HeaderKind::Traceparent);
        let (first, second) = (fields.next(), fields.next());
        let kept = match (first, second) {
            (Some(h), None) => ringgate_http::trace::trace_id(h.value.of(&self.rbuf)).map(|_| h.value),
            _ => None,
        };
        self.trace_generated = kept.is_none();
        if self.trace_generated {
            self.w.trace_ids.borrow_mut().generate(&mut self.traceparent);
        }
        if self.w.shared.access_log.is_some() {
            let id = match kept {
                Some(v) => &v.of(&self.rbuf)[3..35],
                None => &self.traceparent[3..35],
            };
            self.meta.set_trace(id);
        }
    }

    /// `override_backend_path`: the matched prefix of the path (all of it
    /// for an exact path rule, none for a basic rule or a map's default) is
    /// replaced by `over`, keeping one `/` between them.
    fn override_path(&mut self, over: &[u8], matched_len: usize) {
        let current = if self.fwd_target.is_empty() { self.head.path.of(&self.rbuf) } else { &self.fwd_target[..] };
        let mut out = Vec::with_capacity(over.len() + current.len());
        crate::route::PathRoute::override_target(current, over, matched_len, &mut out);
        self.fwd_target = out;
    }

    /// Answers with a redirect configuration's status and Location.
    async fn redirect(&mut self, plan: &Plan, ri: usize, redirect: usize, start: Instant) -> bool {
        let r = &plan.redirects[redirect];
        let close = self.head.body != BodyKind::Empty || self.head.close || self.w.draining();
        let mut bytes = self.w.take_buf();
        bytes.extend_from_slice(b"HTTP/1.1 ");
        bytes.extend_from_slice(itoa::Buffer::new().format(r.status).as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(ringgate_http::reason_phrase(r.status).as_bytes());
        bytes.extend_from_slice(b"\r\nLocation: ");
        let host = self.head.host.map(|h| h.of(&self.rbuf));
        let fallback = self.socket.addr.ip().to_string();
        r.location(host, fallback.as_bytes(), self.head.path.of(&self.rbuf), &mut bytes);
        bytes.extend_from_slice(b"\r\nContent-Length: 0\r\n");
        if close {
            bytes.extend_from_slice(b"Connection: close\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        self.skip_head();
        let deadline = Instant::now() + plan.keepalive_timeout;
        let sent = self.timer.write_all_until(&mut self.stream, &mut bytes, deadline).await.is_ok();
        let n = bytes.len() as u64;
        self.w.give_buf(bytes);
        let out = Outcome {
            status: r.status,
            bytes_in: self.head.head_len as u64,
            bytes_out: if sent { n } else { 0 },
            keep: sent && !close,
            ..Outcome::default()
        };
        let keep = out.keep;
        self.finish_rule(plan, ri, start, out);
        keep
    }

    async fn route(&mut self, lp: &Rc<LocalPlan>, ri: usize, rule: &TargetPlan) -> Outcome {
        let plan = &lp.plan;
        let has_body = self.head.body != BodyKind::Empty;
        if let BodyKind::Length(n) = self.head.body
            && plan.max_request_body > 0
            && n > plan.max_request_body
        {
            let text = format!(
                "413 Content Too Large: the request body of {n} bytes exceeds max_request_body ({} bytes)",
                plan.max_request_body
            );
            self.skip_head();
            return self.reply_error(ErrorCode::BodyTooLarge, &text, true).await;
        }

        let affinity = rule.affinity_cookie.as_ref().and_then(|names| self.affinity_server(rule, names));
        let cursor = &lp.cursors[ri];
        let mut c = cursor.get();
        // Connection draining: a client pinned to a server that has just
        // turned unhealthy keeps it for the draining time-out, as
        // Application Gateway keeps affinity-bound requests on a
        // deregistering instance; everyone else moves at once.
        let draining = |i: usize| {
            let s = &rule.servers[i];
            match s.drain_until {
                // Removed by a reload: until its deadline.
                Some(until) => Instant::now() < until,
                // Turned unhealthy, or drained by an operator.
                None => rule.draining.is_some_and(|t| {
                    matches!(
                        s.health.state(),
                        ringgate_health::HealthState::Unhealthy | ringgate_health::HealthState::Draining
                    ) && s.health.state_age() < t
                }),
            }
        };
        let usable = |i: usize| rule.servers[i].health.accepts_requests();
        let load = |i: usize| lp.inflight[ri][i].get();
        let mut picked = match affinity {
            Some(i) if draining(i) => Pick::Server { index: i, from_cookie: true },
            _ => pick_from(rule.servers.len(), rule.schedule.as_deref(), &mut c, affinity, usable),
        };
        // Without affinity, by load rather than in turn when configured.
        if let Pick::Server { from_cookie: false, .. } = picked {
            let n = rule.servers.len();
            let by_load = match rule.distribution {
                ringgate_config::LoadDistribution::RoundRobin => None,
                ringgate_config::LoadDistribution::LeastConnections => {
                    crate::balance::least_loaded(n, &mut c, load, usable)
                }
                ringgate_config::LoadDistribution::RandomTwo => {
                    let mut r = lp.random.get();
                    let i = crate::balance::random_two(n, &mut r, load, usable);
                    lp.random.set(r);
                    i
                }
            };
            if let Some(index) = by_load {
                picked = Pick::Server { index, from_cookie: false };
            }
        }
        // Slow start: a server back from being unhealthy or drained declines
        // a share of its turns, shrinking over `slow_start`; a declined turn
        // goes to the next server in turn (or stays, when none other is up).
        if let Pick::Server { index, from_cookie: false } = picked
            && !rule.slow_start.is_zero()
            && let Some(age) = rule.servers[index].health.since_recovery()
            && age < rule.slow_start
        {
            let mut r = lp.random.get();
            let admitted = crate::balance::admit_ramping(age, rule.slow_start, &mut r);
            lp.random.set(r);
            if !admitted
                && let Pick::Server { index: other, .. } =
                    pick_from(rule.servers.len(), rule.schedule.as_deref(), &mut c, None, |i| i != index && usable(i))
            {
                picked = Pick::Server { index: other, from_cookie: false };
            }
        }
        cursor.set(c);

        // The fast path: nothing to try, so nothing is touched but the client.
        let close = has_body || self.head.close || self.w.draining();
        let canned = match picked {
            Pick::PoolEmpty => {
                Some((ErrorCode::PoolEmpty, &rule.pool_empty[usize::from(close)], &rule.pool_empty_detail))
            }
            // Off the pick: only when nothing can be tried, is one still to
            // be probed for the first time (unprobed_servers = "wait")?
            Pick::AllUnhealthy if rule.servers.iter().any(|s| s.health.awaiting_first_probe()) => {
                Some((ErrorCode::NotYetProbed, &rule.not_yet_probed[usize::from(close)], &rule.not_yet_probed_detail))
            }
            Pick::AllUnhealthy => {
                Some((ErrorCode::AllUnhealthy, &rule.all_unhealthy[usize::from(close)], &rule.all_unhealthy_detail))
            }
            Pick::Server { .. } => None,
        };
        if let Some((code, bytes, detail)) = canned {
            self.skip_head();
            let mut out = self.reply_canned(code, bytes, close).await;
            out.detail = Some(detail.clone());
            return out;
        }
        let Pick::Server { mut index, mut from_cookie } = picked else { unreachable!("handled above") };
        // Failover: a server no connection could be opened to has not seen
        // the request, so another healthy one is tried, up to max_attempts
        // servers and within the request time-out (as nginx's
        // proxy_next_upstream error, HAProxy's retries + redispatch). An
        // affinity client moved this way gets the new server's cookie.
        let started = Instant::now();
        let mut tried: Vec<usize> = Vec::new();
        loop {
            let server = &rule.servers[index];
            let result = match lp.addrs[ri][index].pick(&server.health) {
                Some(addr) => {
                    let _inflight = crate::local::InFlight::new(&lp.inflight[ri][index]);
                    self.exchange(rule, index, addr, from_cookie, started + rule.request_timeout).await
                }
                None => Err(crate::error::ProxyError::Unresolved { server: server.display.to_string() }),
            };
            let err = match result {
                Ok(mut out) => {
                    out.server = Some(index);
                    return out;
                }
                Err(e) => e,
            };
            // Passive health: let the prober look at this server now.
            server.health.request_probe();
            tried.push(index);
            let next =
                (tried.len() < rule.max_attempts as usize && started.elapsed() < rule.request_timeout).then(|| {
                    let mut c = cursor.get();
                    let p = pick_from(rule.servers.len(), rule.schedule.as_deref(), &mut c, None, |i| {
                        !tried.contains(&i) && rule.servers[i].health.accepts_requests()
                    });
                    cursor.set(c);
                    p
                });
            if let (Some(Pick::Server { index: to, .. }), Some(reason)) = (next, err.retry_reason()) {
                self.w.gauges.count_retry(reason);
                tracing::info!(
                    rule = %rule.name,
                    from = %server.display,
                    to = %rule.servers[to].display,
                    reason = reason.as_str(),
                    "retrying on another server: {err}"
                );
                index = to;
                from_cookie = false;
                continue;
            }
            self.skip_head();
            let mut out = self.reply_proxy_error(rule, &err).await;
            out.server = Some(index);
            return out;
        }
    }

    /// Drops the current request head from the read buffer when the request
    /// is answered without a backend. A body, if any, is not read: those
    /// answers close the connection.
    fn skip_head(&mut self) {
        crate::io::consume(&mut self.rbuf, self.head.head_len);
    }

    /// The server an affinity cookie names, if the request carries one.
    fn affinity_server(&self, rule: &TargetPlan, (name, cors): &crate::plan::AffinityCookies) -> Option<usize> {
        let cookies = || self.head.headers.iter().filter(|h| h.kind == ringgate_http::HeaderKind::Cookie);
        let find = |name: &[u8]| cookies().find_map(|h| find_cookie(h.value.of(&self.rbuf), name));
        find(name)
            .or_else(|| find(cors))
            .and_then(|token| rule.servers.iter().position(|s| &*s.affinity_token == token))
    }

    /// Sends a pre-built response.
    async fn reply_canned(&mut self, code: ErrorCode, bytes: &[u8], close: bool) -> Outcome {
        let mut out = self.w.take_buf();
        out.extend_from_slice(bytes);
        let deadline = Instant::now() + self.w.plan().plan.keepalive_timeout;
        let sent = self.timer.write_all_until(&mut self.stream, &mut out, deadline).await.is_ok();
        let n = out.len() as u64;
        self.w.give_buf(out);
        Outcome {
            status: code.status(),
            code: Some(code),
            bytes_in: self.head.head_len as u64,
            bytes_out: if sent { n } else { 0 },
            keep: sent && !close,
            ..Outcome::default()
        }
    }

    /// Sends a gateway error with `text` as its body.
    pub(crate) async fn reply_error(&mut self, code: ErrorCode, text: &str, close: bool) -> Outcome {
        self.reply_error_as(code, code.status(), text, close).await
    }

    /// [`Client::reply_error`] with `status` instead of the code's own.
    async fn reply_error_as(&mut self, code: ErrorCode, status: u16, text: &str, close: bool) -> Outcome {
        let bytes = {
            let lp = self.w.plan();
            let plan = &lp.plan;
            let pages = match self.page_target {
                Some(ti) => plan.targets.get(ti).map(|t| &t.error_pages),
                None => plan.socket(&self.socket).map(|s| &s.error_pages),
            };
            match pages {
                Some(p) => p.response_as(code, status, text, close),
                None => ringgate_http::error_response_as(code, status, text, close),
            }
        };
        let mut out = self.reply_canned(code, &bytes, close).await;
        out.status = status;
        out
    }

    /// Sends the 502 (or other answer) for a failure before any response.
    pub(crate) async fn reply_proxy_error(&mut self, rule: &TargetPlan, err: &crate::error::ProxyError) -> Outcome {
        let code = err.code();
        let close = true;
        let status = if code == ErrorCode::Timeout { rule.timeout_status } else { code.status() };
        let text = err.explain(&rule.name, &rule.settings, status);
        tracing::debug!(rule = %rule.name, error = %err, "answering {}", code);
        let public = self.w.plan().plan.public_errors;
        let public_text = crate::error::public_text_as(code, status);
        let mut out = self.reply_error_as(code, status, if public { &public_text } else { &text }, close).await;
        out.detail = Some(text.into());
        out
    }

    /// Counts the request and writes its access log line.
    pub(crate) fn finish(&mut self, plan: &Plan, rule: Option<&TargetPlan>, start: Instant, out: Outcome) {
        let m: &RuleMetrics = match rule {
            Some(r) => &r.metrics[self.w.id],
            None => &plan.unrouted[self.w.id],
        };
        let names = rule.map(|r| LogNames {
            listener: &r.listener,
            rule: &r.name,
            server: out.server.map_or("", |i| &*r.servers[i].display),
            pool: &r.pool,
            settings: &r.settings,
        });
        self.record(plan, m, names, start, out);
    }

    /// Counts and logs a request a rule answered without a target (a
    /// redirect).
    fn finish_rule(&mut self, plan: &Plan, ri: usize, start: Instant, out: Outcome) {
        match &plan.rule_series[ri] {
            Some((series, listener, name)) => {
                let names = LogNames { listener, rule: name, ..LogNames::default() };
                self.record(plan, &series[self.w.id], Some(names), start, out)
            }
            None => self.record(plan, &plan.unrouted[self.w.id], None, start, out),
        }
    }

    fn record(&mut self, plan: &Plan, m: &RuleMetrics, names: Option<LogNames<'_>>, start: Instant, out: Outcome) {
        let total = start.elapsed();
        let (pi, stream) = match self.protocol {
            ClientProtocol::Http1 => (0, None),
            ClientProtocol::Http2 { stream } => (1, Some(stream)),
        };
        self.w.gauges.streams_by_protocol[pi].add(1);
        if out.code == Some(ErrorCode::ClientClosed) {
            self.w.gauges.resets_by_protocol[pi].add(1);
        }
        m.count(out.status, out.code);
        m.bytes_in.add(out.bytes_in);
        m.bytes_out.add(out.bytes_out);
        if let Some(t) = out.connect_time {
            m.connect_latency.observe(t);
        }
        if let Some(t) = out.response_time {
            m.response_latency.observe(t);
        }
        m.request_latency.observe(total);
        if self.w.shared.access_log.is_none() {
            return;
        }
        let LogNames { listener, rule: rule_name, server, pool, settings } = names.unwrap_or_default();
        let record = LogRecord {
            time: SystemTime::now() - total,
            client: self.peer,
            listener,
            rule: rule_name,
            host: self.meta.get(self.meta.host),
            method: self.meta.get(self.meta.method),
            path: self.meta.get(self.meta.path),
            status: out.status,
            server,
            backend_status: out.backend_status,
            connect_time: out.connect_time,
            response_time: out.response_time,
            total,
            bytes_in: out.bytes_in,
            bytes_out: out.bytes_out,
            error: out.code,
            trace_id: self.meta.get(self.meta.trace),
            detail: out.detail.as_deref().unwrap_or_default(),
            user_agent: self.meta.get(self.meta.user_agent),
            request_id: self.meta.get(self.meta.request_id),
            protocol: match (stream, self.head.version) {
                (Some(_), _) => "HTTP/2",
                (None, ringgate_http::Version::Http10) => "HTTP/1.0",
                (None, _) => "HTTP/1.1",
            },
            stream,
            tls: self.tls,
            pool,
            settings,
        };
        match plan.config.gateway.access_log_format {
            ringgate_config::AccessLogFormat::Ringgate => format_line(&mut self.w.log_buf.borrow_mut(), &record),
            ringgate_config::AccessLogFormat::AppGw => {
                crate::access_log::format_appgw_line(&mut self.w.log_buf.borrow_mut(), &record)
            }
        }
        self.w.flush_log(false);
    }
}
