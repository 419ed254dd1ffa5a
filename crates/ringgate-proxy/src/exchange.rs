//! One request's trip to a backend server and back: take a pooled connection
//! or open one, send the rewritten head and the body, read the response head
//! within the request time-out, relay the response, and return the connection
//! to the pool only if it is clean.
//!
//! Until the first response byte is sent to the client, every failure becomes
//! a 502 with its code; after that, the only honest answer left is to close
//! the client connection, so a truncated body is never passed off as complete.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use ringgate_http::{
    BodyKind, ChunkedDecoder, DropFields, ErrorCode, ForwardInfo, Method, Parsed, ResponseRewrite, Version,
    parse_response, write_request_head, write_response_head,
};

use crate::backend_stream::BackendStream;
use crate::conn_pool::{BackendConn, ConnCount, PoolKey};
use crate::error::ProxyError;
use crate::io::{IoFail, consume, release_more};
use crate::plan::{ServerPlan, TargetPlan};
use crate::request::{Client, Outcome};
use crate::rewrite_apply::{RequestVars, extra_lines, rewritten_target};
use crate::splice::{SpliceFail, Waits};

/// Largest response head accepted from a backend.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_HEADERS: usize = 256;
/// Read size for bodies.
const BODY_CHUNK: usize = 16 * 1024;
/// Size of the spare buffers large bodies are streamed through.
const BODY_BUFFER: usize = 64 * 1024;
/// A tunnel (WebSocket) with no traffic either way is closed after this.
pub(crate) const TUNNEL_IDLE: Duration = Duration::from_secs(300);

/// Where a request body stands.
#[derive(Debug)]
enum BodyState {
    Done,
    Length(u64),
    Chunked { decoder: ChunkedDecoder, data: u64 },
}

/// A client-side problem while reading the request body.
#[derive(Debug)]
enum ClientFail {
    Gone,
    TimedOut,
    Malformed(&'static str),
    TooLarge,
}

impl BodyState {
    fn new(kind: BodyKind) -> BodyState {
        match kind {
            BodyKind::Empty | BodyKind::UntilClose => BodyState::Done,
            BodyKind::Length(n) => BodyState::Length(n),
            BodyKind::Chunked => BodyState::Chunked { decoder: ChunkedDecoder::new(), data: 0 },
        }
    }

    fn is_done(&self) -> bool {
        matches!(self, BodyState::Done)
    }

    /// How many bytes of `avail` belong to the body; advances the state.
    fn advance(&mut self, avail: &[u8], max_data: u64) -> Result<usize, ClientFail> {
        match self {
            BodyState::Done => Ok(0),
            BodyState::Length(rem) => {
                let n = (*rem).min(avail.len() as u64);
                *rem -= n;
                if *rem == 0 {
                    *self = BodyState::Done;
                }
                Ok(n as usize)
            }
            BodyState::Chunked { decoder, data } => {
                let p = decoder
                    .feed(avail, |chunk| *data += chunk.len() as u64)
                    .map_err(|e| ClientFail::Malformed(e.reason()))?;
                if max_data > 0 && *data > max_data {
                    return Err(ClientFail::TooLarge);
                }
                if p.done {
                    *self = BodyState::Done;
                }
                Ok(p.consumed)
            }
        }
    }
}

/// How an exchange failed.
enum Fail {
    /// No connection to the server could be opened; nothing was consumed.
    Unreached(ProxyError),
    /// Before the response started: answer with this error.
    Proxy(ProxyError),
    /// Bad request body: answer with this code and reason.
    Client(ClientFail),
    /// After the response started, or the client left: close. The code says
    /// why, for the access log and metrics (the client saw a truncated
    /// response, or none).
    Abort(ErrorCode),
}

/// What reading a response head gave.
enum HeadFail {
    TimedOut,
    /// Closed or reset; `empty`: not a byte of response was received.
    Closed {
        empty: bool,
        source: Option<std::io::Error>,
    },
    Invalid(&'static str),
}

impl HeadFail {
    /// The error a failed response head becomes (its 502 code follows).
    fn into_error(self, server: &str, timeout: Duration) -> ProxyError {
        let server = server.to_string();
        match self {
            HeadFail::TimedOut => ProxyError::Timeout { server, timeout },
            HeadFail::Closed { source, .. } => ProxyError::BackendClosed { server, source },
            HeadFail::Invalid(reason) => ProxyError::InvalidResponse { server, reason },
        }
    }
}

impl<S: crate::io::ClientStream> Client<S> {
    /// Takes the request in `rbuf` to server `index` of `rule` at `addr`,
    /// within `deadline` (the request time-out from the first attempt).
    /// `Err`: the request is intact in `rbuf` (no connection could be
    /// opened, or an attempt time-out passed on a request that may be sent
    /// again), and the caller may try another server.
    pub(crate) async fn exchange(
        &mut self,
        rule: &TargetPlan,
        index: usize,
        addr: SocketAddr,
        from_cookie: bool,
        deadline: Instant,
    ) -> Result<Outcome, ProxyError> {
        let mut out = Outcome::default();
        let mut obuf = self.w.take_buf();
        let result = self.exchange_inner(rule, index, addr, from_cookie, deadline, &mut obuf, &mut out).await;
        self.w.give_buf(obuf);
        Ok(match result {
            Ok(()) => out,
            Err(Fail::Unreached(e)) => return Err(e),
            Err(Fail::Abort(code)) => {
                out.keep = false;
                if out.status == 0 {
                    out.status = ErrorCode::ClientClosed.status();
                }
                out.code = Some(code);
                out
            }
            Err(Fail::Client(f)) => {
                let (code, text) = match f {
                    ClientFail::Gone => {
                        out.status = ErrorCode::ClientClosed.status();
                        out.code = Some(ErrorCode::ClientClosed);
                        out.keep = false;
                        return Ok(out);
                    }
                    ClientFail::TimedOut => {
                        (ErrorCode::RequestTimeout, "408 Request Timeout: the request body stalled".to_string())
                    }
                    ClientFail::Malformed(r) => {
                        (ErrorCode::BadRequest, format!("400 Bad Request: {r} in the request body"))
                    }
                    ClientFail::TooLarge => (
                        ErrorCode::BodyTooLarge,
                        "413 Content Too Large: the request body exceeds max_request_body".to_string(),
                    ),
                };
                let sent = self.reply_error(code, &text, true).await;
                Outcome { bytes_in: out.bytes_in, ..sent }
            }
            Err(Fail::Proxy(e)) => {
                if e.is_server_fault() {
                    // Passive health: let the prober look at this server now.
                    rule.servers[index].health.request_probe();
                }
                let sent = self.reply_proxy_error(rule, &e).await;
                Outcome {
                    bytes_in: out.bytes_in,
                    connect_time: out.connect_time,
                    response_time: out.response_time,
                    ..sent
                }
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn exchange_inner(
        &mut self,
        rule: &TargetPlan,
        index: usize,
        addr: SocketAddr,
        from_cookie: bool,
        request_deadline: Instant,
        obuf: &mut Vec<u8>,
        out: &mut Outcome,
    ) -> Result<(), Fail> {
        let server = &rule.servers[index];
        let plan = self.w.plan().plan.clone();
        let head_len = self.head.head_len;

        // A connection first, before anything of the request is consumed:
        // when none can be opened, the request is intact for another server.
        // The client's Host as SNI (see `ServerPlan::sni_from_client`): a
        // connection made for one host name is pooled for that name only.
        let client_name = server
            .sni_from_client
            .then(|| self.head.host.map(|h| crate::route::strip_port(h.of(&self.rbuf))))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.parse::<std::net::IpAddr>().is_err())
            .and_then(|h| rustls_pki_types::ServerName::try_from(h.to_ascii_lowercase()).ok());
        let tls_tag = match &client_name {
            Some(n) => crate::plan::tag_for_name(server, &n.to_str()),
            None => server.pool_tag,
        };
        let key = PoolKey { addr, tls: tls_tag };
        let mut first = Some(match self.pooled(key) {
            Some(c) => (c, true),
            None => {
                let t0 = Instant::now();
                let c =
                    connect(key, rule, server, client_name.as_ref(), &self.w.gauges).await.map_err(Fail::Unreached)?;
                out.connect_time = Some(t0.elapsed());
                (c, false)
            }
        });

        // The head for the backend, and the part of the body already read.
        self.write_forwarded_head(rule, server, obuf);
        let mut body = BodyState::new(self.head.body);
        let prefix = body.advance(&self.rbuf[head_len..], plan.max_request_body).map_err(Fail::Client)?;
        obuf.extend_from_slice(&self.rbuf[head_len..head_len + prefix]);
        let method = self.head.method;
        let client_version = self.head.version;
        let client_close = self.head.close;
        let upgrade_requested = self.head.upgrade;
        let expect_continue = self.head.expect_continue && !body.is_done() && prefix == 0;
        // Response rules may read the request's variables: keep its head
        // (one copy) past the read buffer's reuse for the body.
        let response_rules = rule.rewrite.as_ref().filter(|s| s.has_response_phase());
        if response_rules.is_some() {
            self.req_copy.clear();
            self.req_copy.extend_from_slice(&self.rbuf[..head_len]);
        }
        // An idempotent request without a body may go to another server when
        // this one does not answer within `attempt_timeout`: its head is kept
        // to put back. Nothing is copied unless that is configured.
        let per_attempt = rule.attempt_timeout < rule.request_timeout
            && method.is_idempotent()
            && prefix == 0
            && body.is_done()
            && !expect_continue;
        let mut kept_head = per_attempt.then(|| {
            let mut b = self.w.take_buf();
            b.extend_from_slice(&self.rbuf[..head_len]);
            b
        });
        consume(&mut self.rbuf, head_len + prefix);
        out.bytes_in = (head_len + prefix) as u64;

        if expect_continue {
            // The gateway answers 100-continue itself (the Expect field is not
            // forwarded): the request is routed and a server chosen.
            let mut cont = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
            let deadline = Instant::now() + plan.keepalive_timeout;
            self.timer
                .write_all_until(&mut self.stream, &mut cont, deadline)
                .await
                .map_err(|_| Fail::Client(ClientFail::Gone))?;
            out.bytes_out += cont.len() as u64;
        }

        // A request the server cannot have seen is safe to send again on a
        // fresh connection when a pooled one turns out dead.
        let replayable = method.is_idempotent() && body.is_done();
        let mut retried = false;
        let (mut conn, response_head_len) = loop {
            let pooled = match first.take() {
                Some(c) => Some(c),
                None => self.pooled(key).map(|c| (c, true)),
            };
            let (mut conn, reused) = match pooled {
                Some(c) => c,
                None => {
                    let t0 = Instant::now();
                    let c =
                        connect(key, rule, server, client_name.as_ref(), &self.w.gauges).await.map_err(Fail::Proxy)?;
                    out.connect_time = Some(t0.elapsed());
                    (c, false)
                }
            };
            let deadline = Instant::now() + rule.request_timeout;
            match self.timer.write_all_until(&mut conn.stream, obuf, deadline).await {
                Ok(()) => {}
                Err(IoFail::Io(_)) if reused && replayable && !retried => {
                    retried = true;
                    self.w.gauges.count_retry(crate::metrics::RetryReason::StalePooledConnection);
                    continue;
                }
                Err(e) => {
                    return Err(Fail::Proxy(backend_io_error(e, &server.display, rule.request_timeout)));
                }
            }
            if !body.is_done() {
                out.bytes_in += self.send_body(&mut conn, &mut body, &plan, rule).await?;
            }
            let sent_at = Instant::now();
            let deadline = match &kept_head {
                Some(_) => (sent_at + rule.attempt_timeout).min(request_deadline),
                None => sent_at + rule.request_timeout,
            };
            match self.read_response_head(&mut conn, method, deadline).await {
                Ok(n) => {
                    out.response_time = Some(sent_at.elapsed());
                    if let Some(b) = kept_head.take() {
                        self.w.give_buf(b);
                    }
                    break (conn, n);
                }
                Err(HeadFail::TimedOut) if kept_head.is_some() && Instant::now() < request_deadline => {
                    // The request goes back as it came, for another server;
                    // this connection (with a response maybe on its way) is
                    // dropped, not pooled.
                    let mut head = kept_head.take().unwrap_or_default();
                    head.extend_from_slice(&self.rbuf);
                    std::mem::swap(&mut self.rbuf, &mut head);
                    self.w.give_buf(head);
                    let timeout = rule.attempt_timeout;
                    return Err(Fail::Unreached(ProxyError::AttemptTimeout {
                        server: server.display.to_string(),
                        timeout,
                    }));
                }
                Err(HeadFail::Closed { empty: true, .. }) if reused && replayable && !retried => {
                    retried = true;
                    self.w.gauges.count_retry(crate::metrics::RetryReason::StalePooledConnection);
                    continue;
                }
                Err(f) => {
                    out.response_time = Some(sent_at.elapsed());
                    return Err(Fail::Proxy(f.into_error(&server.display, rule.request_timeout)));
                }
            }
        };

        // Interim responses (100, 103) go to HTTP/1.1 clients; the final one follows.
        let mut response_head_len = response_head_len;
        while self.resp.is_interim() {
            if client_version == Version::Http11 {
                // Rewritten like a final head (hop-by-hop fields dropped,
                // no framing fields), not relayed byte for byte.
                let mut interim = Vec::with_capacity(response_head_len);
                write_response_head(&conn.buf, &self.resp, &ResponseRewrite::default(), &mut interim);
                let deadline = Instant::now() + plan.keepalive_timeout;
                if self.timer.write_all_until(&mut self.stream, &mut interim, deadline).await.is_err() {
                    return Err(Fail::Abort(ErrorCode::ClientClosed));
                }
                out.bytes_out += interim.len() as u64;
            }
            consume(&mut conn.buf, response_head_len);
            let deadline = Instant::now() + rule.request_timeout;
            response_head_len = match self.read_response_head(&mut conn, method, deadline).await {
                Ok(n) => n,
                Err(f) => {
                    return Err(Fail::Proxy(f.into_error(&server.display, rule.request_timeout)));
                }
            };
        }

        let status = self.resp.status;
        out.backend_status = Some(status);
        out.status = status;
        let upgrade = status == 101;
        if upgrade && !upgrade_requested {
            let server = server.display.to_string();
            return Err(Fail::Proxy(ProxyError::InvalidResponse {
                server,
                reason: "101 to a request that asked no upgrade",
            }));
        }

        let kind = self.resp.body;
        let http10 = client_version == Version::Http10;
        let dechunk = http10 && kind == BodyKind::Chunked;
        let close = client_close || self.w.draining() || kind == BodyKind::UntilClose || dechunk;
        let rw = ResponseRewrite {
            close: close && !upgrade,
            keep_alive: http10 && !close,
            dechunk,
            upgrade,
            set_cookie: (rule.affinity_cookie.is_some() && !from_cookie).then_some(&*server.set_cookie),
            ..ResponseRewrite::default()
        };
        obuf.clear();
        match response_rules {
            Some(set) => self.write_rewritten_response(rule, set, &conn.buf, rw, obuf),
            None => write_response_head(&conn.buf, &self.resp, &rw, obuf),
        }
        consume(&mut conn.buf, response_head_len);

        if upgrade {
            self.start_tunnel(conn, obuf, out).await;
            out.keep = false;
            return Ok(());
        }

        let splice = plan.splice;
        let clean = self.relay_response(&mut conn, kind, dechunk, obuf, rule, &server.display, splice, out).await?;
        let reusable = clean && !self.resp.close && conn.buf.is_empty();
        if reusable {
            let now = Instant::now();
            if self.w.pool.borrow_mut().put(conn, rule.max_idle, rule.idle_timeout, now) {
                self.w.gauges.idle_pooled.add(1);
            }
        }
        // Otherwise the connection is dropped here, and uncounted by its
        // `ConnCount`.
        out.keep = !close;
        Ok(())
    }

    /// Writes the request head for `server`: the forwarding fields, and the
    /// target's request rewrites when it has a rule set.
    fn write_forwarded_head(&self, rule: &TargetPlan, server: &ServerPlan, obuf: &mut Vec<u8>) {
        let mut info = ForwardInfo {
            client_ip: &self.peer_text,
            port: &self.port_text,
            proto: rule.client_proto,
            host_override: if rule.host_from_server { Some(&server.host_name) } else { rule.host_override.as_deref() },
            fallback_host: server.display.as_bytes(),
            target: (!self.fwd_target.is_empty()).then_some(&self.fwd_target[..]),
            traceparent: self.trace_generated.then_some(&self.traceparent[..]),
            drop_forwarded_for: !self.forwarded_for_trusted,
            ..ForwardInfo::default()
        };
        let Some(set) = rule.rewrite.as_ref().filter(|s| s.has_request_phase()) else {
            write_request_head(&self.rbuf, &self.head, &info, obuf);
            return;
        };
        let (ip, port) = self.client_ip_and_port();
        let vars =
            RequestVars::new(&self.rbuf, &self.head, info.target, ip, port, &self.port_text, rule.client_proto, None)
                .of_connection(self.tls, self.forwarded_for_trusted, self.client_cert.as_deref());
        let edits = self.rule_edits(|e| set.request_edits(&vars, e));
        if edits.is_empty() {
            write_request_head(&self.rbuf, &self.head, &info, obuf);
            return;
        }
        let mut extra = self.w.take_buf();
        let current = info.target.unwrap_or_else(|| self.head.path.of(&self.rbuf));
        let new_target = rewritten_target(&edits, current);
        if let Some(host) = extra_lines(&edits, &mut extra) {
            info.host_override = Some(host);
        }
        if let Some(t) = &new_target {
            info.target = Some(t);
        }
        let drop = |name: &[u8]| edits.header(name).is_some();
        info.extra = &extra;
        info.drop = Some(DropFields(&drop));
        write_request_head(&self.rbuf, &self.head, &info, obuf);
        self.w.give_buf(extra);
    }

    /// Runs one phase of a rule set into the worker's edits (one per worker:
    /// a head is rewritten without yielding), counting the values dropped.
    fn rule_edits(
        &self,
        run: impl FnOnce(&mut ringgate_rewrite::Edits),
    ) -> std::cell::RefMut<'_, ringgate_rewrite::Edits> {
        let mut edits = self.w.edits.borrow_mut();
        run(&mut edits);
        if edits.dropped() > 0 {
            self.w.gauges.rewrite_dropped.add(u64::from(edits.dropped()));
        }
        edits
    }

    /// Writes the response head with the target's response rewrites.
    fn write_rewritten_response(
        &self,
        rule: &TargetPlan,
        set: &ringgate_rewrite::RuleSet,
        rbuf: &[u8],
        rw: ResponseRewrite<'_>,
        obuf: &mut Vec<u8>,
    ) {
        let (ip, port) = self.client_ip_and_port();
        let vars = RequestVars::new(
            &self.req_copy,
            &self.head,
            (!self.fwd_target.is_empty()).then_some(&self.fwd_target[..]),
            ip,
            port,
            &self.port_text,
            rule.client_proto,
            Some((rbuf, &self.resp)),
        )
        .of_connection(self.tls, self.forwarded_for_trusted, self.client_cert.as_deref());
        let edits = self.rule_edits(|e| set.response_edits(&vars, e));
        let mut extra = self.w.take_buf();
        let _ = extra_lines(&edits, &mut extra);
        let drop = |name: &[u8]| edits.header(name).is_some();
        let rw = ResponseRewrite { extra: &extra, drop: Some(DropFields(&drop)), ..rw };
        write_response_head(rbuf, &self.resp, &rw, obuf);
        self.w.give_buf(extra);
    }

    /// A pooled connection to `addr`, if one is idle.
    fn pooled(&self, key: PoolKey) -> Option<BackendConn> {
        let c = self.w.pool.borrow_mut().take(key, Instant::now())?;
        self.w.gauges.idle_pooled.add(-1);
        Some(c)
    }

    /// Streams the rest of the request body from the client to the server.
    async fn send_body(
        &mut self,
        conn: &mut BackendConn,
        body: &mut BodyState,
        plan: &crate::plan::Plan,
        rule: &TargetPlan,
    ) -> Result<u64, Fail> {
        let mut sent = 0u64;
        if plan.splice.enabled && matches!(self.head.body, BodyKind::Length(n) if n >= plan.splice.min_body) {
            sent += self.splice_request(conn, body, plan, rule).await?;
        }
        while !body.is_done() {
            let deadline = Instant::now() + plan.keepalive_timeout;
            match self.timer.read_more_until(&mut self.stream, &mut self.rbuf, BODY_CHUNK, deadline).await {
                Ok(0) | Err(IoFail::Io(_)) => return Err(Fail::Client(ClientFail::Gone)),
                Err(IoFail::TimedOut) => return Err(Fail::Client(ClientFail::TimedOut)),
                Ok(_) => {}
            }
            let n = body.advance(&self.rbuf, plan.max_request_body).map_err(Fail::Client)?;
            let deadline = Instant::now() + rule.request_timeout;
            if let Err(e) = self.timer.write_range_until(&mut conn.stream, &mut self.rbuf, 0..n, deadline).await {
                let server = conn.key.addr.to_string();
                return Err(Fail::Proxy(backend_io_error(e, &server, rule.request_timeout)));
            }
            consume(&mut self.rbuf, n);
            sent += n as u64;
        }
        Ok(sent)
    }

    /// Sends the rest of a Content-Length request body from a plain client
    /// to a plain backend connection without copying it (see `splice`);
    /// what the client's multishot receive had taken already is copied
    /// first. Returns the bytes sent; `body` says whether any are left for
    /// the copying path (splicing was not possible, counted).
    async fn splice_request(
        &mut self,
        conn: &mut BackendConn,
        body: &mut BodyState,
        plan: &crate::plan::Plan,
        rule: &TargetPlan,
    ) -> Result<u64, Fail> {
        let Some(client) = self.stream.tcp() else { return Ok(0) };
        let BackendStream::Plain(backend) = &mut conn.stream else { return Ok(0) };
        let gauges = &self.w.gauges;
        let server = || conn.key.addr.to_string();
        let pipe = match self.w.pipes.take(plan.splice.pipe_size) {
            Ok(p) => p,
            Err(e) => {
                gauges.splice_fallbacks[1].add(1);
                tracing::debug!("request body copied: no pipe for splicing it ({e})");
                return Ok(0);
            }
        };
        let multishot = client.multishot_recv();
        let mut sent = 0u64;
        while !body.is_done() {
            let deadline = Instant::now() + plan.keepalive_timeout;
            match self.timer.bound(deadline, release_more(client, &mut self.rbuf, BODY_CHUNK)).await {
                None => return Err(Fail::Client(ClientFail::TimedOut)),
                Some(Ok(None)) => break,
                Some(Ok(Some(0)) | Err(_)) => return Err(Fail::Client(ClientFail::Gone)),
                Some(Ok(Some(_))) => {}
            }
            let n = body.advance(&self.rbuf, plan.max_request_body).map_err(Fail::Client)?;
            let deadline = Instant::now() + rule.request_timeout;
            if let Err(e) = self.timer.write_range_until(backend, &mut self.rbuf, 0..n, deadline).await {
                return Err(Fail::Proxy(backend_io_error(e, &server(), rule.request_timeout)));
            }
            consume(&mut self.rbuf, n);
            sent += n as u64;
        }
        if let BodyState::Length(left) = *body {
            let mut moved = 0;
            let r = crate::splice::relay(
                client,
                backend,
                &pipe,
                &[],
                left,
                &mut self.timer,
                Waits { read: plan.keepalive_timeout, write: rule.request_timeout },
                &mut moved,
            )
            .await;
            sent += moved;
            match r {
                Ok(()) => {
                    gauges.spliced_bodies[0].add(1);
                    gauges.spliced_bytes[0].add(moved);
                    *body = BodyState::Done;
                }
                Err(SpliceFail::Refused(e)) => {
                    gauges.splice_fallbacks[0].add(1);
                    tracing::debug!("request body copied: the kernel does not splice these sockets ({e})");
                }
                Err(SpliceFail::SourceTimedOut) => return Err(Fail::Client(ClientFail::TimedOut)),
                Err(SpliceFail::SourceClosed) => return Err(Fail::Client(ClientFail::Gone)),
                Err(SpliceFail::Source(e)) => {
                    tracing::debug!("request body cut off by the client: {e}");
                    return Err(Fail::Client(ClientFail::Gone));
                }
                Err(SpliceFail::DestinationTimedOut) => {
                    return Err(Fail::Proxy(backend_io_error(IoFail::TimedOut, &server(), rule.request_timeout)));
                }
                Err(SpliceFail::Destination(e)) => {
                    return Err(Fail::Proxy(backend_io_error(IoFail::Io(e), &server(), rule.request_timeout)));
                }
            }
        }
        self.w.pipes.give(pipe);
        if body.is_done() {
            // The receive side stays released: if the client's next request
            // also has a large body, its head is read with a plain receive
            // and the body is still in the socket for the pipe (see
            // `h1::wait_input`, which arms the multishot receive again when
            // the client has moved on to small requests).
            self.spliced_upload = true;
        } else if multishot {
            client.set_multishot_recv(true);
        }
        Ok(sent)
    }

    /// Reads a response head into `self.resp`; returns its length.
    async fn read_response_head(
        &mut self,
        conn: &mut BackendConn,
        method: Method,
        deadline: Instant,
    ) -> Result<usize, HeadFail> {
        let is_head = method == Method::Head;
        loop {
            if !conn.buf.is_empty() {
                match parse_response(&conn.buf, MAX_RESPONSE_HEAD, MAX_RESPONSE_HEADERS, is_head, &mut self.resp) {
                    Ok(Parsed::Complete(n)) => return Ok(n),
                    Ok(Parsed::Partial) => {}
                    Err(e) => return Err(HeadFail::Invalid(e.reason())),
                }
            }
            match self.timer.read_more_until(&mut conn.stream, &mut conn.buf, 4096, deadline).await {
                Ok(0) => return Err(HeadFail::Closed { empty: conn.buf.is_empty(), source: None }),
                Ok(_) => {}
                Err(IoFail::TimedOut) => return Err(HeadFail::TimedOut),
                Err(IoFail::Io(e)) => return Err(HeadFail::Closed { empty: conn.buf.is_empty(), source: Some(e) }),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    /// Sends the response head in `obuf` and relays the body. Returns whether
    /// the backend connection ended exactly at the end of the response.
    async fn relay_response(
        &mut self,
        conn: &mut BackendConn,
        kind: BodyKind,
        dechunk: bool,
        obuf: &mut Vec<u8>,
        rule: &TargetPlan,
        server: &str,
        splice: ringgate_config::SpliceSettings,
        out: &mut Outcome,
    ) -> Result<bool, Fail> {
        let write_deadline = || Instant::now() + write_timeout(rule);
        let mut clean = true;
        let mut spliced = false;
        match kind {
            BodyKind::Empty => {
                // Anything after an empty response is not ours to forward.
                clean = conn.buf.is_empty();
                conn.buf.clear();
            }
            BodyKind::Length(n) => {
                let take = (conn.buf.len() as u64).min(n) as usize;
                obuf.extend_from_slice(&conn.buf[..take]);
                clean = take == conn.buf.len();
                conn.buf.clear();
                let mut remaining = n - take as u64;
                if remaining > 0 {
                    self.use_body_buffer(conn);
                }
                if remaining > 0 && splice.enabled && n >= splice.min_body {
                    spliced = true;
                    remaining = self.splice_response(conn, obuf, remaining, rule, splice, &mut clean, out).await?;
                } else {
                    self.send_to_client(obuf, write_deadline(), out).await?;
                }
                while remaining > 0 {
                    let got = self.fill_body(conn, rule).await?;
                    let take = (got as u64).min(remaining) as usize;
                    if take < got {
                        clean = false;
                    }
                    remaining -= take as u64;
                    let deadline = write_deadline();
                    let r = self.timer.write_range_until(&mut self.stream, &mut conn.buf, 0..take, deadline).await;
                    r.map_err(|_| Fail::Abort(ErrorCode::ClientClosed))?;
                    out.bytes_out += take as u64;
                    conn.buf.clear();
                }
            }
            BodyKind::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut first = true;
                loop {
                    let (consumed, done) = if dechunk {
                        let mut data = std::mem::take(obuf);
                        if !first {
                            data.clear();
                        }
                        let p = decoder.feed(&conn.buf, |d| data.extend_from_slice(d));
                        *obuf = data;
                        let p = p.map_err(|e| chunk_fail(e, first, server))?;
                        (p.consumed, p.done)
                    } else {
                        let p = decoder.feed(&conn.buf, |_| {}).map_err(|e| chunk_fail(e, first, server))?;
                        if !first {
                            obuf.clear();
                        }
                        obuf.extend_from_slice(&conn.buf[..p.consumed]);
                        (p.consumed, p.done)
                    };
                    first = false;
                    if done && consumed < conn.buf.len() {
                        clean = false;
                    }
                    conn.buf.clear();
                    self.send_to_client(obuf, write_deadline(), out).await?;
                    if done {
                        break;
                    }
                    self.use_body_buffer(conn);
                    self.fill_body(conn, rule).await?;
                }
            }
            BodyKind::UntilClose => {
                obuf.extend_from_slice(&conn.buf);
                conn.buf.clear();
                self.send_to_client(obuf, write_deadline(), out).await?;
                self.use_body_buffer(conn);
                loop {
                    conn.buf.clear();
                    let deadline = Instant::now() + rule.request_timeout;
                    match self.timer.read_more_until(&mut conn.stream, &mut conn.buf, BODY_CHUNK, deadline).await {
                        Ok(0) => break,
                        Ok(n) => {
                            let deadline = write_deadline();
                            let r = self.timer.write_range_until(&mut self.stream, &mut conn.buf, 0..n, deadline).await;
                            r.map_err(|_| Fail::Abort(ErrorCode::ClientClosed))?;
                            out.bytes_out += n as u64;
                        }
                        Err(IoFail::TimedOut) => return Err(Fail::Abort(ErrorCode::Timeout)),
                        Err(IoFail::Io(_)) => return Err(Fail::Abort(ErrorCode::BackendClosed)),
                    }
                }
                clean = false;
            }
        }
        if kind == BodyKind::Empty {
            self.send_to_client(obuf, write_deadline(), out).await?;
        }
        self.done_with_body_buffer(conn);
        if !spliced {
            // A connection that served a spliced body before was read with
            // plain receives for this response; back in the pool it needs
            // its multishot receive again.
            if let BackendStream::Plain(s) = &mut conn.stream
                && s.multishot_released()
            {
                s.set_multishot_recv(true);
            }
        }
        Ok(clean)
    }

    /// Sends the response head in `obuf` and relays the rest of a
    /// Content-Length body from a plain backend connection to a plain
    /// client without copying it (see `splice`). What the backend's
    /// multishot receive had taken already joins the head; both go into the
    /// pipe ahead of the body, so that the client gets them in one send.
    /// Returns what is left for the copying path: 0, or all that remained
    /// when splicing was not possible (counted), with `obuf` sent either
    /// way. Bytes past the body stay in the backend's socket and make it
    /// unclean.
    #[allow(clippy::too_many_arguments)]
    async fn splice_response(
        &mut self,
        conn: &mut BackendConn,
        obuf: &mut Vec<u8>,
        mut remaining: u64,
        rule: &TargetPlan,
        splice: ringgate_config::SpliceSettings,
        clean: &mut bool,
        out: &mut Outcome,
    ) -> Result<u64, Fail> {
        let write_deadline = || Instant::now() + write_timeout(rule);
        if self.stream.tcp().is_none() || !matches!(conn.stream, BackendStream::Plain(_)) {
            self.send_to_client(obuf, write_deadline(), out).await?;
            return Ok(remaining);
        }
        let pipe = match self.w.pipes.take(splice.pipe_size) {
            Ok(p) => p,
            Err(e) => {
                self.w.gauges.splice_fallbacks[1].add(1);
                tracing::debug!("response body copied: no pipe for splicing it ({e})");
                self.send_to_client(obuf, write_deadline(), out).await?;
                return Ok(remaining);
            }
        };
        let BackendStream::Plain(backend) = &mut conn.stream else { unreachable!("checked above") };
        let multishot = backend.multishot_recv();
        while remaining > 0 {
            if obuf.len() > pipe.capacity() / 2 {
                // Too much for the pipe's head start (a large head, or much
                // taken by the multishot receive): it goes out as is. Checked
                // before each release, so also after the last bytes added.
                self.send_to_client(obuf, write_deadline(), out).await?;
                obuf.clear();
            }
            conn.buf.clear();
            let deadline = Instant::now() + rule.request_timeout;
            let got = match self.timer.bound(deadline, release_more(backend, &mut conn.buf, BODY_CHUNK)).await {
                None => return Err(Fail::Abort(ErrorCode::Timeout)),
                Some(Ok(None)) => break,
                Some(Ok(Some(0)) | Err(_)) => return Err(Fail::Abort(ErrorCode::BackendClosed)),
                Some(Ok(Some(got))) => got,
            };
            let take = (got as u64).min(remaining) as usize;
            if take < got {
                *clean = false;
            }
            remaining -= take as u64;
            obuf.extend_from_slice(&conn.buf[..take]);
        }
        conn.buf.clear();
        let client = self.stream.tcp().expect("checked above");
        if remaining > 0 {
            let mut moved = 0;
            let r = crate::splice::relay(
                backend,
                client,
                &pipe,
                obuf,
                remaining,
                &mut self.timer,
                Waits { read: rule.request_timeout, write: write_timeout(rule) },
                &mut moved,
            )
            .await;
            out.bytes_out += moved;
            let gauges = &self.w.gauges;
            match r {
                Ok(()) => {
                    gauges.spliced_bodies[1].add(1);
                    gauges.spliced_bytes[1].add(moved - obuf.len() as u64);
                    obuf.clear();
                    remaining = 0;
                }
                Err(SpliceFail::Refused(e)) => {
                    gauges.splice_fallbacks[0].add(1);
                    tracing::debug!("response body copied: the kernel does not splice these sockets ({e})");
                    // Nothing was delivered: the head is still all in `obuf`,
                    // and its copy in the pipe is discarded.
                    let mut discard = Vec::new();
                    if pipe.take_back(&mut discard).is_err() {
                        return Err(Fail::Abort(ErrorCode::BackendClosed));
                    }
                }
                Err(SpliceFail::SourceTimedOut) => return Err(Fail::Abort(ErrorCode::Timeout)),
                Err(SpliceFail::SourceClosed) => return Err(Fail::Abort(ErrorCode::BackendClosed)),
                Err(SpliceFail::Source(e)) => {
                    tracing::debug!(server = %conn.key.addr, "response body cut off: {e}");
                    return Err(Fail::Abort(ErrorCode::BackendClosed));
                }
                Err(SpliceFail::DestinationTimedOut | SpliceFail::Destination(_)) => {
                    return Err(Fail::Abort(ErrorCode::ClientClosed));
                }
            }
        }
        // Only a relay that ended well (or was refused and emptied) leaves
        // the pipe empty.
        self.w.pipes.give(pipe);
        let BackendStream::Plain(backend) = &mut conn.stream else { unreachable!("checked above") };
        if remaining == 0 && crate::splice::unread_bytes(backend) > 0 {
            *clean = false;
        }
        if remaining > 0 && multishot {
            backend.set_multishot_recv(true);
        }
        // Otherwise the receive side stays released while the connection
        // serves large bodies: the next response's head is read with a plain
        // receive, which leaves its body in the socket for the pipe. (Under
        // a multishot receive the kernel takes a whole 64 KiB body into
        // provided buffers before the head is even parsed; measured with
        // `bench/compare.sh --mode bulk`.) `relay_response` arms it again
        // after any response it does not splice, and the pool checks a
        // released connection for its peer's close with a peek.
        self.send_to_client(obuf, write_deadline(), out).await?;
        Ok(remaining)
    }

    /// Streams the rest of a body through one of the worker's large spare
    /// buffers, so a large body takes a few big reads and writes, while the
    /// connection keeps only its small buffer for heads once back in the pool.
    fn use_body_buffer(&self, conn: &mut BackendConn) {
        if conn.buf.capacity() < BODY_BUFFER {
            let big = self.w.take_body_buf(BODY_BUFFER);
            conn.small_buf = Some(std::mem::replace(&mut conn.buf, big));
        }
    }

    fn done_with_body_buffer(&self, conn: &mut BackendConn) {
        if let Some(small) = conn.small_buf.take() {
            let big = std::mem::replace(&mut conn.buf, small);
            self.w.give_body_buf(big);
        }
    }

    /// Writes `obuf` to the client.
    async fn send_to_client(&mut self, obuf: &mut Vec<u8>, deadline: Instant, out: &mut Outcome) -> Result<(), Fail> {
        if obuf.is_empty() {
            return Ok(());
        }
        self.timer
            .write_all_until(&mut self.stream, obuf, deadline)
            .await
            .map_err(|_| Fail::Abort(ErrorCode::ClientClosed))?;
        out.bytes_out += obuf.len() as u64;
        Ok(())
    }

    /// Reads more of a response body into the (empty) backend buffer; the
    /// server closing or stalling mid-body aborts the response.
    async fn fill_body(&mut self, conn: &mut BackendConn, rule: &TargetPlan) -> Result<usize, Fail> {
        conn.buf.clear();
        let deadline = Instant::now() + rule.request_timeout;
        match self.timer.read_more_until(&mut conn.stream, &mut conn.buf, BODY_CHUNK, deadline).await {
            Ok(0) | Err(IoFail::Io(_)) => Err(Fail::Abort(ErrorCode::BackendClosed)),
            Err(IoFail::TimedOut) => Err(Fail::Abort(ErrorCode::Timeout)),
            Ok(n) => Ok(n),
        }
    }

    /// After a 101: sends the head, hands the client's early bytes to the
    /// server, and leaves the connection for `run` to splice.
    async fn start_tunnel(&mut self, mut conn: BackendConn, obuf: &mut Vec<u8>, out: &mut Outcome) {
        obuf.extend_from_slice(&conn.buf);
        conn.buf.clear();
        let deadline = Instant::now() + TUNNEL_IDLE;
        if self.timer.write_all_until(&mut self.stream, obuf, deadline).await.is_err() {
            return;
        }
        out.bytes_out += obuf.len() as u64;
        // Bytes the client sent after its upgrade request belong to the tunnel.
        if !self.rbuf.is_empty()
            && self.timer.write_all_until(&mut conn.stream, &mut self.rbuf, deadline).await.is_err()
        {
            return;
        }
        self.rbuf.clear();
        self.tunnel = Some(conn);
    }
}

/// A chunked response that breaks its framing: a 502 if nothing was sent
/// yet (`first`: the head is still held back), else the client is cut off.
fn chunk_fail(e: ringgate_http::ChunkError, first: bool, server: &str) -> Fail {
    if first {
        Fail::Proxy(ProxyError::InvalidResponse { server: server.to_string(), reason: e.reason() })
    } else {
        Fail::Abort(ErrorCode::InvalidResponse)
    }
}

/// Opens a connection to a server within the connect time-out, with a TLS
/// handshake for `https` settings (bounded by the same time-out).
async fn connect(
    key: PoolKey,
    rule: &TargetPlan,
    server: &ServerPlan,
    name_override: Option<&rustls_pki_types::ServerName<'static>>,
    gauges: &std::sync::Arc<crossbeam_utils::CachePadded<crate::metrics::WorkerGauges>>,
) -> Result<BackendConn, ProxyError> {
    let timeout = rule.connect_timeout;
    let display = || server.display.to_string();
    let deadline = Instant::now() + timeout;
    let stream = match monoio::time::timeout_at(deadline.into(), TcpStream::connect_addr(key.addr)).await {
        Ok(Ok(mut stream)) => {
            crate::io::prepare_stream(&mut stream);
            stream
        }
        Ok(Err(e)) => return Err(ProxyError::Connect { server: display(), source: e }),
        Err(_) => return Err(ProxyError::ConnectTimeout { server: display(), after: timeout }),
    };
    let _ = stream.set_nodelay(true);
    let stream = match (&rule.backend_tls, name_override.or(server.tls_name.as_ref())) {
        (Some(cfg), Some(name)) => {
            let connector = monoio_rustls::TlsConnector::from(cfg.clone());
            match monoio::time::timeout_at(deadline.into(), connector.connect(name.clone(), stream)).await {
                Ok(Ok(tls)) => BackendStream::Tls(Box::new(tls)),
                Ok(Err(e)) => {
                    let e: std::io::Error = e.into();
                    return Err(ProxyError::TlsHandshake { server: display(), detail: ringgate_tls::explain(&e) });
                }
                Err(_) => return Err(ProxyError::ConnectTimeout { server: display(), after: timeout }),
            }
        }
        (Some(_), None) => {
            return Err(ProxyError::TlsHandshake {
                server: display(),
                detail: "no valid server name to verify the certificate against (set host_name in the settings)".into(),
            });
        }
        _ => BackendStream::Plain(stream),
    };
    Ok(BackendConn {
        stream,
        buf: Vec::with_capacity(BODY_CHUNK),
        small_buf: None,
        key,
        _count: ConnCount::new(gauges),
    })
}

/// How long a write to the client may wait: the request time-out, and never
/// less than 30 s, so that a slow reader of a large body is not cut off by a
/// short time-out meant for the backend.
fn write_timeout(rule: &TargetPlan) -> Duration {
    rule.request_timeout.max(Duration::from_secs(30))
}

fn backend_io_error(e: IoFail, server: &str, timeout: Duration) -> ProxyError {
    match e {
        IoFail::TimedOut => ProxyError::Timeout { server: server.to_string(), timeout },
        IoFail::Io(source) => ProxyError::BackendClosed { server: server.to_string(), source: Some(source) },
    }
}
