//! The HTTP/2 codec: one client connection, many streams, each served by the
//! same request path as an HTTP/1.1 request.
//!
//! Framing, HPACK, stream states and flow control are hyperium's `h2` crate
//! (the one hyper and Pingora use), run on the worker's own monoio runtime
//! through tokio's I/O traits (`compat`): no thread, no lock shared with
//! another worker. The connection task drives the connection (it is the only
//! one reading or writing the socket) and spawns a task per stream.
//!
//! A stream becomes a [`Client`] whose byte stream is an [`H2Stream`]:
//! - the request's pseudo-headers and fields are written in HTTP/1.1 syntax
//!   (`:authority` as Host, cookies joined) and parsed by the same parser as
//!   an HTTP/1.1 head, with the same limits (431, 414, 400);
//! - its DATA frames are read as the body, chunk-framed when the request has
//!   no content-length, so the request path forwards them exactly as an
//!   HTTP/1.1 body (chunked to the backend), within `max_request_body`;
//! - the response the request path writes (the backend's head rewritten,
//!   a 502, a redirect, an error page) is parsed back into HEADERS, DATA and
//!   trailers, sent as the client's windows allow.
//!
//! Answers are per stream: a 502 never closes the connection. Abuse is cut
//! off with GOAWAY and counted (`ringgate_http2_defence_total`): floods of
//! RST_STREAM (rapid reset), PING, SETTINGS and CONTINUATION frames are
//! watched on the read side (`FrameWatch`) before `h2` decodes them; `h2`
//! bounds HPACK, refused streams and pending resets itself.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use ringgate_config::SocketKey;
use ringgate_http::{BodyKind, ChunkedDecoder, ErrorCode, Parsed, ResponseHead, parse_request, parse_response};

use crate::metrics::H2Defence;
use crate::request::{Client, ClientProtocol, ConnInfo, Outcome};
use crate::worker::{ConnGuard, Worker};

/// Largest response head the request path writes (it wrote it: this only
/// bounds the translation buffer).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// How long an aborted connection may take to flush its GOAWAY.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Per-connection budgets for control frames: a burst, then a steady rate
/// per second. A browser or a gRPC client stays far below them; the floods
/// they stop send thousands per second.
const RST_BUDGET: (u32, u32) = (200, 100);
const PING_BUDGET: (u32, u32) = (100, 20);
const SETTINGS_BUDGET: (u32, u32) = (50, 10);

/// What the connection task and its streams share.
#[derive(Default)]
struct ConnShared {
    /// A defence tripped: the connection is to be cut off with GOAWAY and
    /// this error code.
    tripped: Cell<Option<(H2Defence, Reason)>>,
    /// The debug data of the last GOAWAY the connection sent (h2 keeps it
    /// off the error it returns), which says why h2 itself cut a client off.
    goaway_debug: Rc<RefCell<Vec<u8>>>,
    /// Streams whose task is running.
    open: Cell<usize>,
    /// When the last stream ended (the keep-alive time-out counts from it).
    idle_since: Cell<Option<Instant>>,
    /// The connection task, woken when a stream ends.
    waker: RefCell<Option<Waker>>,
}

impl ConnShared {
    fn wake(&self) {
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }

    fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

/// Serves an HTTP/2 connection whose first bytes (the preface) `io` yields.
pub(crate) async fn serve<S>(w: Rc<Worker>, io: S, info: ConnInfo, guard: ConnGuard)
where
    S: AsyncReadRent + AsyncWriteRent + monoio::io::Split + 'static,
{
    let peer = info.peer;
    let (settings, limits, header_timeout, keepalive) = {
        let lp = w.plan();
        (lp.plan.http2, lp.plan.limits, lp.plan.header_timeout, lp.plan.keepalive_timeout)
    };
    let shared = Rc::new(ConnShared::default());
    let max_continuations = 8 + (limits.max_head / 2048) as u32;
    let io = Guarded {
        inner: crate::compat::PollIo::new(io),
        shared: shared.clone(),
        watch: FrameWatch::new(max_continuations),
        sent: Frames { sink: GoawayDebug { goaway: None, last: shared.goaway_debug.clone() }, ..Frames::default() },
    };
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(settings.max_concurrent_streams)
        .initial_window_size(settings.initial_stream_window)
        .initial_connection_window_size(settings.initial_connection_window)
        .max_frame_size(settings.max_frame_size)
        // ringgate's own limit is checked on the head it builds (431 as for
        // HTTP/1.1); h2's, above it, bounds what it decodes and buffers.
        .max_header_list_size(u32::try_from(limits.max_head.saturating_mul(2) + 4096).unwrap_or(u32::MAX))
        .max_send_buffer_size(64 * 1024)
        .max_local_error_reset_streams(Some(128));
    let start = Instant::now();
    let handshake = builder.handshake::<_, Bytes>(io);
    let mut conn = match monoio::time::timeout_at((start + header_timeout).into(), handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            if let Some(d) = classify(&e, &shared.goaway_debug.borrow()) {
                w.gauges.count_defence(d);
            }
            tracing::debug!(%peer, "HTTP/2 handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "HTTP/2 preface and SETTINGS did not arrive within header_read_timeout");
            return;
        }
    };
    // The first request must start within the header time-out; later, an
    // idle connection (no stream open) is kept for the keep-alive time-out.
    let mut idle_deadline = start + header_timeout;
    let mut idle_timer = Box::pin(monoio::time::sleep_until(idle_deadline.into()));
    let mut shutting_down = false;
    let mut generation = w.plan().plan.generation;
    // One lives at a time, on the connection task: boxing the large variant
    // would cost an allocation per stream to save a few hundred bytes once.
    #[allow(clippy::large_enum_variant)]
    enum Event {
        Stream(http::Request<RecvStream>, SendResponse<Bytes>),
        Abuse(H2Defence, Reason),
        Drain,
        Idle,
        Failed(h2::Error),
        Closed,
    }
    loop {
        let event = std::future::poll_fn(|cx| {
            shared.set_waker(cx.waker());
            guard.wake_on_drain(cx.waker());
            if let Some((d, r)) = shared.tripped.get() {
                return Poll::Ready(Event::Abuse(d, r));
            }
            if !shutting_down && (w.draining() || listener_removed(&w, &info.socket, &mut generation)) {
                return Poll::Ready(Event::Drain);
            }
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((req, respond)))) => return Poll::Ready(Event::Stream(req, respond)),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Event::Failed(e)),
                Poll::Ready(None) => return Poll::Ready(Event::Closed),
                Poll::Pending => {}
            }
            // Reading may have tripped a defence.
            if let Some((d, r)) = shared.tripped.get() {
                return Poll::Ready(Event::Abuse(d, r));
            }
            if shared.open.get() == 0 {
                // Idle: the keep-alive time-out; after a GOAWAY, a short grace
                // for the client's last frames (h2 would wait for its PING
                // ACK forever).
                let wait = if shutting_down { CLOSE_GRACE } else { keepalive };
                let deadline = shared.idle_since.get().map_or(idle_deadline, |t| t + wait);
                if deadline != idle_deadline {
                    idle_deadline = deadline;
                    idle_timer.as_mut().reset(deadline.into());
                }
                if idle_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Idle);
                }
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Stream(req, respond) => {
                shared.open.set(shared.open.get() + 1);
                shared.idle_since.set(None);
                let task = serve_stream(w.clone(), shared.clone(), req, respond, info.clone());
                monoio::spawn(task);
            }
            Event::Abuse(d, reason) => {
                w.gauges.count_defence(d);
                tracing::debug!(%peer, defence = d.as_str(), "HTTP/2 client cut off");
                conn.abrupt_shutdown(reason);
                break;
            }
            Event::Idle if shutting_down => return,
            Event::Drain | Event::Idle => {
                // GOAWAY; open streams finish, then `poll_accept` ends.
                conn.graceful_shutdown();
                shutting_down = true;
                if shared.open.get() == 0 {
                    shared.idle_since.set(Some(Instant::now()));
                }
            }
            Event::Failed(e) => {
                if let Some(d) = classify(&e, &shared.goaway_debug.borrow()) {
                    w.gauges.count_defence(d);
                    tracing::debug!(%peer, defence = d.as_str(), "HTTP/2 connection error: {e}");
                }
                break;
            }
            Event::Closed => return,
        }
    }
    // Flush the GOAWAY, briefly: the peer is not owed more.
    let close = std::future::poll_fn(|cx| conn.poll_closed(cx));
    let _ = monoio::time::timeout(CLOSE_GRACE, close).await;
}

/// Whether a reload since `generation` removed the connection's listener
/// (its streams then finish, after a GOAWAY, as on shutdown).
fn listener_removed(w: &Worker, socket: &SocketKey, generation: &mut u64) -> bool {
    // Every wake-up of the connection task passes here: look at the
    // generation without taking a reference to the plan.
    let current = w.local.borrow().plan.generation;
    if current == *generation {
        return false;
    }
    *generation = current;
    w.plan().plan.socket(socket).is_none()
}

/// The defence an `h2` connection error stands for, if the client caused
/// it; `debug` is the debug data of the GOAWAY h2 sent.
fn classify(e: &h2::Error, debug: &[u8]) -> Option<H2Defence> {
    if e.is_io() || e.is_remote() || !e.is_go_away() {
        return None;
    }
    let has = |s: &[u8]| debug.windows(s.len()).any(|w| w == s);
    Some(match e.reason() {
        Some(Reason::ENHANCE_YOUR_CALM) if has(b"too_many_resets") => H2Defence::RapidReset,
        Some(Reason::ENHANCE_YOUR_CALM) if has(b"too_many_continuations") => H2Defence::ContinuationFlood,
        Some(Reason::ENHANCE_YOUR_CALM) if has(b"header_list") => H2Defence::HeaderListTooLarge,
        Some(Reason::ENHANCE_YOUR_CALM) if has(b"internal_resets") => H2Defence::TooManyStreams,
        Some(Reason::NO_ERROR) | None => return None,
        _ => H2Defence::ProtocolError,
    })
}

/// What the stream task watches besides the request path: the client
/// resetting the stream.
enum Responder {
    Waiting(SendResponse<Bytes>),
    Streaming(SendStream<Bytes>),
    Done,
}

impl Responder {
    /// Ready when the client reset the stream (or the connection is gone).
    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Reason> {
        let r = match self {
            Responder::Waiting(r) => r.poll_reset(cx),
            Responder::Streaming(s) => s.poll_reset(cx),
            Responder::Done => return Poll::Pending,
        };
        r.map(|r| r.unwrap_or(Reason::CANCEL))
    }

    fn reset(&mut self, reason: Reason) {
        match std::mem::replace(self, Responder::Done) {
            Responder::Waiting(mut r) => r.send_reset(reason),
            Responder::Streaming(mut s) => s.send_reset(reason),
            Responder::Done => {}
        }
    }
}

/// One stream: its head as HTTP/1.1, the request path, then the stream's end.
async fn serve_stream(
    w: Rc<Worker>,
    conn: Rc<ConnShared>,
    req: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    conn_info: ConnInfo,
) {
    let peer = conn_info.peer;
    let stream_id = u32::from(respond.stream_id());
    let (parts, body) = req.into_parts();
    let mut head = Vec::with_capacity(512);
    let synthesized = write_request_head(&parts, body.is_end_stream(), &mut head);
    let chunked = *synthesized.as_ref().unwrap_or(&false);
    let responder = Rc::new(RefCell::new(Responder::Waiting(respond)));
    let is_head = parts.method == http::Method::HEAD;
    let io = H2Stream::new(body, responder.clone(), chunked, is_head);
    let mut c = Client::new(w.clone(), io, conn_info, None, head);
    c.protocol = ClientProtocol::Http2 { stream: stream_id };
    let lp = w.plan();
    let start = Instant::now();
    let reset = {
        let served = async {
            match &synthesized {
                Err(HeadRefusal::BadRequest(text)) => {
                    c.meta.capture_raw(&c.rbuf);
                    let out = c.reply_error(ErrorCode::BadRequest, text, false).await;
                    c.finish(&lp.plan, None, start, out);
                }
                Err(HeadRefusal::Malformed(why)) => {
                    tracing::debug!(%peer, stream = stream_id, "malformed HTTP/2 request: {why}");
                    responder.borrow_mut().reset(Reason::PROTOCOL_ERROR);
                    c.meta.capture_raw(&c.rbuf);
                    let out = Outcome { status: 400, code: Some(ErrorCode::BadRequest), ..Outcome::default() };
                    c.finish(&lp.plan, None, start, out);
                }
                Ok(_) => match parse_request(&c.rbuf, &lp.plan.limits, &mut c.head) {
                    Ok(Parsed::Complete(_)) => {
                        // Boxed as in `h1`: the exchange is a large future,
                        // and the stream task is moved into place whole.
                        Box::pin(c.handle(&lp, start)).await;
                    }
                    Ok(Parsed::Partial) => {
                        let e = ringgate_http::RequestError::Malformed("incomplete request head");
                        c.refuse_head(&lp.plan, &e, false, start).await;
                    }
                    Err(e) => {
                        if e.code() == ErrorCode::HeadTooLarge {
                            w.gauges.count_defence(H2Defence::HeaderListTooLarge);
                        }
                        c.refuse_head(&lp.plan, &e, false, start).await;
                    }
                },
            }
        };
        let mut served = std::pin::pin!(served);
        std::future::poll_fn(|cx| {
            if served.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            responder.borrow_mut().poll_reset(cx).map(Some)
        })
        .await
        // Dropped here: a reset cancels the exchange, and a backend
        // connection it held is closed, never pooled mid-response.
    };
    match reset {
        Some(reason) => {
            // Counted and logged like an HTTP/1 client that went away.
            let plan = &lp.plan;
            let target = c.page_target.and_then(|t| plan.targets.get(t));
            let out = Outcome {
                status: ErrorCode::ClientClosed.status(),
                code: Some(ErrorCode::ClientClosed),
                ..Outcome::default()
            };
            tracing::debug!(%peer, stream = stream_id, %reason, "client reset the stream");
            c.finish(plan, target, start, out);
        }
        None => c.stream.finish(&w),
    }
    drop(c);
    conn.open.set(conn.open.get() - 1);
    if conn.open.get() == 0 {
        conn.idle_since.set(Some(Instant::now()));
    }
    conn.wake();
}

/// Why an HTTP/2 request head cannot be served.
#[derive(Debug, PartialEq, Eq)]
enum HeadRefusal {
    /// Answered with this 400.
    BadRequest(String),
    /// Malformed (RFC 9113 §8.1.1): the stream is reset with PROTOCOL_ERROR.
    Malformed(&'static str),
}

/// Writes an HTTP/2 request's head in HTTP/1.1 syntax into `out`; returns
/// whether its body is chunk-framed (it has one, with no content-length).
fn write_request_head(parts: &http::request::Parts, end_stream: bool, out: &mut Vec<u8>) -> Result<bool, HeadRefusal> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if parts.method == http::Method::OPTIONS && path == "/" && parts.uri.path() != "/" {
        b"*"
    } else {
        path.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HeadRefusal::BadRequest("400 Bad Request: more than one host header".into()));
    }
    match (parts.uri.authority(), host) {
        (Some(a), Some(h)) if !a.as_str().as_bytes().eq_ignore_ascii_case(h.as_bytes()) => {
            return Err(HeadRefusal::BadRequest(format!(
                "400 Bad Request: the host header ({}) disagrees with :authority ({a})",
                String::from_utf8_lossy(h.as_bytes())
            )));
        }
        (Some(a), _) => put_field(out, b"host", a.as_str().as_bytes()),
        (None, Some(h)) => put_field(out, b"host", h.as_bytes()),
        // No Host line: the parser answers 400 as for HTTP/1.1.
        (None, None) => {}
    }
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in &parts.headers {
        // RFC 9113 §8.2.1: no whitespace around a value (HTTP/1.1 would trim
        // it; HTTP/2 calls the request malformed).
        let v = value.as_bytes();
        if v.first().is_some_and(|b| matches!(b, b' ' | b'\t')) || v.last().is_some_and(|b| matches!(b, b' ' | b'\t')) {
            return Err(HeadRefusal::Malformed("a field value starts or ends with whitespace"));
        }
        match *name {
            http::header::HOST => {}
            // Hop by hop; h2 has refused every other connection field.
            http::header::TE => {}
            // RFC 9113 §8.2.3: one field for an HTTP/1.1 server.
            http::header::COOKIE => cookies.push(value.as_bytes()),
            _ => put_field(out, name.as_str().as_bytes(), value.as_bytes()),
        }
    }
    if !cookies.is_empty() {
        out.extend_from_slice(b"cookie: ");
        for (i, c) in cookies.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(c);
        }
        out.extend_from_slice(b"\r\n");
    }
    let chunked = !end_stream && !parts.headers.contains_key(http::header::CONTENT_LENGTH);
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(chunked)
}

fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Where the response written to an [`H2Stream`] stands.
enum Out {
    /// Collecting a head (interim heads are sent as they complete).
    Head(Vec<u8>),
    /// HEADERS sent; relaying the body in the framing the head declared.
    Body(BodyOut),
    /// END_STREAM sent.
    Done,
}

enum BodyOut {
    Length(u64),
    Chunked {
        decoder: ChunkedDecoder,
        trailers: Vec<u8>,
    },
    /// Delimited by the end of the exchange (a backend's close-delimited
    /// body): END_STREAM when the request path finishes cleanly.
    UntilEnd,
}

/// One HTTP/2 stream as the request path's byte stream: reads yield the
/// request body (chunk-framed if `chunked`), writes take an HTTP/1.1
/// response and send it as HEADERS, DATA and trailers.
pub(crate) struct H2Stream {
    body: RecvStream,
    /// The rest of the last DATA frame (with its chunk framing).
    pending: Vec<u8>,
    pending_at: usize,
    chunked: bool,
    body_done: bool,
    responder: Rc<RefCell<Responder>>,
    out: Out,
    is_head: bool,
    resp: ResponseHead,
    /// A write is waiting for the client to open its window.
    waiting_window: bool,
}

impl H2Stream {
    fn new(body: RecvStream, responder: Rc<RefCell<Responder>>, chunked: bool, is_head: bool) -> H2Stream {
        H2Stream {
            body_done: body.is_end_stream(),
            body,
            pending: Vec::new(),
            pending_at: 0,
            chunked,
            responder,
            out: Out::Head(Vec::new()),
            is_head,
            resp: ResponseHead::default(),
            waiting_window: false,
        }
    }

    /// Ends the stream after the request path is done with it: END_STREAM
    /// for a close-delimited body that ended cleanly, else a reset, so a
    /// truncated response never looks complete.
    fn finish(&mut self, w: &Worker) {
        match &self.out {
            Out::Done => {}
            Out::Body(BodyOut::UntilEnd) => {
                if let Responder::Streaming(s) = &mut *self.responder.borrow_mut() {
                    let _ = s.send_data(Bytes::new(), true);
                }
                self.out = Out::Done;
            }
            _ => {
                if self.waiting_window {
                    w.gauges.count_defence(H2Defence::StalledStream);
                }
                self.responder.borrow_mut().reset(if self.waiting_window {
                    Reason::CANCEL
                } else {
                    Reason::INTERNAL_ERROR
                });
                self.out = Out::Done;
            }
        }
        if matches!(self.out, Out::Done) {
            *self.responder.borrow_mut() = Responder::Done;
        }
    }

    /// Fills `pending` with the next DATA frame, or the body's end.
    async fn next_data(&mut self) -> io::Result<()> {
        self.pending.clear();
        self.pending_at = 0;
        match self.body.data().await {
            Some(Ok(data)) => {
                let _ = self.body.flow_control().release_capacity(data.len());
                if data.is_empty() {
                    return Ok(());
                }
                if self.chunked {
                    self.pending.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    self.pending.extend_from_slice(&data);
                    self.pending.extend_from_slice(b"\r\n");
                } else {
                    self.pending.extend_from_slice(&data);
                }
                Ok(())
            }
            Some(Err(e)) => Err(io::Error::new(io::ErrorKind::ConnectionReset, e)),
            None => {
                self.body_done = true;
                if self.chunked {
                    self.pending.extend_from_slice(b"0\r\n");
                    if let Ok(Some(trailers)) = self.body.trailers().await {
                        for (name, value) in &trailers {
                            put_field(&mut self.pending, name.as_str().as_bytes(), value.as_bytes());
                        }
                    }
                    self.pending.extend_from_slice(b"\r\n");
                }
                Ok(())
            }
        }
    }

    /// Takes `data`, HTTP/1.1 response bytes, as far as they go.
    async fn take(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match &mut self.out {
                Out::Done => return Ok(()),
                Out::Head(buf) if buf.is_empty() => {
                    // The usual case: the head arrives whole, in one write,
                    // with the start of the body after it; nothing is copied.
                    match self.take_head(data)? {
                        Some(n) => data = &data[n..],
                        None => {
                            self.out = Out::Head(data.to_vec());
                            return Ok(());
                        }
                    }
                }
                Out::Head(buf) => {
                    buf.extend_from_slice(data);
                    data = &[];
                    let buf = std::mem::take(buf);
                    match self.take_head(&buf)? {
                        Some(n) => Box::pin(self.take(&buf[n..])).await?,
                        None => self.out = Out::Head(buf),
                    }
                }
                Out::Body(BodyOut::Length(remaining)) => {
                    let n = (*remaining).min(data.len() as u64) as usize;
                    *remaining -= n as u64;
                    let end = *remaining == 0;
                    self.send_data(Bytes::copy_from_slice(&data[..n]), end).await?;
                    if end {
                        self.out = Out::Done;
                    }
                    data = &data[n..];
                }
                Out::Body(BodyOut::Chunked { decoder, trailers }) => {
                    let mut plain = bytes::BytesMut::with_capacity(data.len());
                    let p = decoder
                        .feed_keeping_trailers(data, |d| plain.extend_from_slice(d), trailers)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.reason()))?;
                    data = &data[p.consumed..];
                    let trailers = p.done.then(|| std::mem::take(trailers));
                    let plain = plain.freeze();
                    match trailers {
                        Some(t) if !t.is_empty() => {
                            self.send_data(plain, false).await?;
                            self.send_trailers(&t)?;
                        }
                        Some(_) => self.send_data(plain, true).await?,
                        None => self.send_data(plain, false).await?,
                    }
                    if p.done {
                        self.out = Out::Done;
                        return Ok(());
                    }
                }
                Out::Body(BodyOut::UntilEnd) => {
                    self.send_data(Bytes::copy_from_slice(data), false).await?;
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// Sends the head at the start of `buf` if it is complete: an interim
    /// one as informational HEADERS (the state stays `Head`), the final one
    /// as the response. Returns its length, `None` if it is incomplete.
    fn take_head(&mut self, buf: &[u8]) -> io::Result<Option<usize>> {
        let n = match parse_response(buf, MAX_RESPONSE_HEAD, 256, self.is_head, &mut self.resp) {
            Ok(Parsed::Complete(n)) => n,
            Ok(Parsed::Partial) => return Ok(None),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.reason())),
        };
        let head = response_head(buf, &self.resp)?;
        let mut responder = self.responder.borrow_mut();
        if self.resp.is_interim() {
            if let Responder::Waiting(r) = &mut *responder {
                r.send_informational(head).map_err(h2_io)?;
            }
            self.out = Out::Head(Vec::new());
            return Ok(Some(n));
        }
        let end = matches!(self.resp.body, BodyKind::Empty);
        let send = match std::mem::replace(&mut *responder, Responder::Done) {
            Responder::Waiting(mut r) => r.send_response(head, end).map_err(h2_io)?,
            _ => return Err(io::Error::new(io::ErrorKind::ConnectionReset, "the stream was reset")),
        };
        self.out = match self.resp.body {
            BodyKind::Empty => Out::Done,
            BodyKind::Length(n) => Out::Body(BodyOut::Length(n)),
            BodyKind::Chunked => Out::Body(BodyOut::Chunked { decoder: ChunkedDecoder::new(), trailers: Vec::new() }),
            BodyKind::UntilClose => Out::Body(BodyOut::UntilEnd),
        };
        if !end {
            *responder = Responder::Streaming(send);
        }
        Ok(Some(n))
    }

    /// Sends `data` as DATA frames as the client's windows allow.
    async fn send_data(&mut self, mut data: Bytes, end: bool) -> io::Result<()> {
        loop {
            let want = data.len();
            if want == 0 {
                if end {
                    self.with_send(|s| s.send_data(Bytes::new(), true))?;
                    *self.responder.borrow_mut() = Responder::Done;
                }
                return Ok(());
            }
            self.with_send(|s| {
                s.reserve_capacity(want);
                Ok(())
            })?;
            self.waiting_window = true;
            let granted = std::future::poll_fn(|cx| match &mut *self.responder.borrow_mut() {
                Responder::Streaming(s) => {
                    let cap = s.capacity();
                    if cap > 0 {
                        return Poll::Ready(Ok(cap));
                    }
                    match s.poll_capacity(cx) {
                        Poll::Ready(Some(Ok(n))) if n > 0 => Poll::Ready(Ok(n)),
                        Poll::Ready(Some(Ok(_))) => {
                            cx.waker().wake_by_ref();
                            Poll::Pending
                        }
                        Poll::Ready(Some(Err(e))) => Poll::Ready(Err(h2_io(e))),
                        Poll::Ready(None) => Poll::Ready(Err(reset_io())),
                        Poll::Pending => Poll::Pending,
                    }
                }
                _ => Poll::Ready(Err(reset_io())),
            })
            .await?;
            self.waiting_window = false;
            let n = granted.min(want);
            let last = end && n == want;
            let chunk = data.split_to(n);
            self.with_send(|s| s.send_data(chunk, last))?;
            if last {
                *self.responder.borrow_mut() = Responder::Done;
                return Ok(());
            }
        }
    }

    fn send_trailers(&mut self, lines: &[u8]) -> io::Result<()> {
        let mut map = http::HeaderMap::new();
        for line in lines.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(value)) {
                map.append(n, v);
            }
        }
        self.with_send(|s| s.send_trailers(map))?;
        *self.responder.borrow_mut() = Responder::Done;
        Ok(())
    }

    fn with_send(&self, f: impl FnOnce(&mut SendStream<Bytes>) -> Result<(), h2::Error>) -> io::Result<()> {
        match &mut *self.responder.borrow_mut() {
            Responder::Streaming(s) => f(s).map_err(h2_io),
            _ => Err(reset_io()),
        }
    }
}

/// The HEADERS of a response head the request path wrote, minus the fields
/// HTTP/2 has no use for (RFC 9113 §8.2.2).
fn response_head(buf: &[u8], resp: &ResponseHead) -> io::Result<http::Response<()>> {
    let mut r = http::Response::new(());
    *r.status_mut() = http::StatusCode::from_u16(resp.status)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "status out of range"))?;
    let headers = r.headers_mut();
    for h in &resp.headers {
        let name = h.name.of(buf);
        let hop_by_hop = [&b"connection"[..], b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n));
        if hop_by_hop {
            continue;
        }
        // Checked by the parser: a token name and field content.
        if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(h.value.of(buf))) {
            headers.append(n, v);
        }
    }
    Ok(r)
}

fn h2_io(e: h2::Error) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, e)
}

fn reset_io() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "the client reset the stream")
}

impl AsyncReadRent for H2Stream {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        while self.pending_at == self.pending.len() {
            if self.body_done && self.pending.is_empty() {
                return (Ok(0), buf);
            }
            if self.body_done {
                self.pending.clear();
                self.pending_at = 0;
                return (Ok(0), buf);
            }
            if let Err(e) = self.next_data().await {
                return (Err(e), buf);
            }
        }
        let n = (self.pending.len() - self.pending_at).min(buf.bytes_total());
        // SAFETY: `write_ptr` points at `bytes_total` writable bytes of the
        // buffer we own for this call; we write `n` of them and say so.
        #[allow(unsafe_code)]
        unsafe {
            buf.write_ptr().copy_from_nonoverlapping(self.pending[self.pending_at..].as_ptr(), n);
            buf.set_init(n);
        }
        self.pending_at += n;
        (Ok(n), buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw view of the first iovec lives only within this call,
        // while we hold `buf`.
        #[allow(unsafe_code)]
        let Some(raw) = (unsafe { RawBuf::new_from_iovec_mut(&mut buf) }) else {
            return (Ok(0), buf);
        };
        let (r, _) = self.read(raw).await;
        if let Ok(n) = r {
            // SAFETY: `n` bytes of the first iovec were written above.
            #[allow(unsafe_code)]
            unsafe {
                buf.set_init(n);
            }
        }
        (r, buf)
    }
}

impl crate::io::ClientStream for H2Stream {}

impl AsyncWriteRent for H2Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `read_ptr` points at `bytes_init` initialized bytes of the
        // buffer we own for this call.
        #[allow(unsafe_code)]
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let n = data.len();
        let r = self.take(data).await.map(|()| n);
        (r, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw view of the first iovec lives only within this call,
        // while we hold `buf`.
        #[allow(unsafe_code)]
        let Some(raw) = (unsafe { RawBuf::new_from_iovec(&buf) }) else {
            return (Ok(0), buf);
        };
        let (r, _) = self.write(raw).await;
        (r, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The connection's I/O as `h2` sees it, with the read side watched for
/// floods before `h2` decodes a frame.
struct Guarded<T> {
    inner: T,
    shared: Rc<ConnShared>,
    watch: FrameWatch,
    sent: GoawayWatch,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Guarded<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.shared.tripped.get().is_some() {
            // Nothing more is read from an abuser; the connection task
            // answers GOAWAY and closes.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r
            && let Some(d) = this.watch.inspect(&buf.filled()[before..])
        {
            this.shared.tripped.set(Some(d));
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        r
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Guarded<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.sent.feed(&buf[..n]);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A token bucket: `burst` frames at once, refilled at `per_sec`.
#[derive(Debug)]
struct Budget {
    tokens: u32,
    burst: u32,
    per_sec: u32,
    since: Option<Instant>,
}

impl Budget {
    fn new((burst, per_sec): (u32, u32)) -> Budget {
        Budget { tokens: burst, burst, per_sec, since: None }
    }

    /// Spends one token; false when the budget is exhausted.
    fn spend(&mut self) -> bool {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        let earned = (now.duration_since(since).as_millis() as u64 * u64::from(self.per_sec) / 1000) as u32;
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(self.burst);
            self.since = Some(now);
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Follows frame boundaries in a byte stream, split anywhere: each 9-byte
/// frame header, then its payload, handed to a [`FrameSink`].
#[derive(Debug, Default)]
struct Frames<H> {
    header: [u8; 9],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload: usize,
    sink: H,
}

/// What a [`Frames`] reports to; `Some` stops the walk with that result.
trait FrameSink {
    type Out;
    fn header(&mut self, kind: u8, flags: u8, len: usize) -> Option<Self::Out>;
    /// A run of the current frame's payload; `last`: the frame ends with it.
    fn payload(&mut self, _bytes: &[u8], _last: bool) -> Option<Self::Out> {
        None
    }
}

impl<H: FrameSink> Frames<H> {
    fn feed(&mut self, mut data: &[u8]) -> Option<H::Out> {
        while !data.is_empty() {
            if self.payload > 0 {
                let n = self.payload.min(data.len());
                self.payload -= n;
                let out = self.sink.payload(&data[..n], self.payload == 0);
                data = &data[n..];
                if out.is_some() {
                    return out;
                }
                continue;
            }
            let n = (9 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len < 9 {
                break;
            }
            self.header_len = 0;
            let h = self.header;
            self.payload = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            if let Some(out) = self.sink.header(h[3], h[4], self.payload) {
                return Some(out);
            }
        }
        None
    }
}

/// Follows the frames a client sends, without decoding one: enough to see
/// floods of control frames, and the frame errors RFC 9113 names an error
/// code for that `h2` would answer with PROTOCOL_ERROR (a control frame of
/// the wrong length, a first frame that is not SETTINGS, a SETTINGS value
/// out of range).
#[derive(Debug)]
struct FrameWatch {
    /// Preface bytes still to skip.
    preface: usize,
    frames: Frames<Budgets>,
}

/// The client's budgets and the state the frame checks need.
#[derive(Debug)]
struct Budgets {
    /// No frame has been seen yet: the first must be SETTINGS.
    first: bool,
    /// The current frame is a SETTINGS frame whose values are read.
    settings_payload: bool,
    setting: [u8; 6],
    setting_len: usize,
    /// CONTINUATION frames since the header block's HEADERS.
    continuations: u32,
    max_continuations: u32,
    resets: Budget,
    pings: Budget,
    settings: Budget,
}

/// A trip: what to count, and the GOAWAY's error code.
type Trip = (H2Defence, Reason);

impl FrameWatch {
    fn new(max_continuations: u32) -> FrameWatch {
        let budgets = Budgets {
            first: true,
            settings_payload: false,
            setting: [0; 6],
            setting_len: 0,
            continuations: 0,
            max_continuations,
            resets: Budget::new(RST_BUDGET),
            pings: Budget::new(PING_BUDGET),
            settings: Budget::new(SETTINGS_BUDGET),
        };
        FrameWatch {
            preface: crate::accept::H2_PREFACE.len(),
            frames: Frames { header: [0; 9], header_len: 0, payload: 0, sink: budgets },
        }
    }

    /// Follows `data`; what to trip, if a budget ran out or a frame is wrong.
    fn inspect(&mut self, data: &[u8]) -> Option<Trip> {
        let skip = self.preface.min(data.len());
        self.preface -= skip;
        self.frames.feed(&data[skip..])
    }
}

impl FrameSink for Budgets {
    type Out = Trip;

    fn header(&mut self, kind: u8, flags: u8, len: usize) -> Option<Trip> {
        const END_HEADERS: u8 = 0x4;
        const ACK: u8 = 0x1;
        const SETTINGS: u8 = 0x4;
        let frame_size = Some((H2Defence::ProtocolError, Reason::FRAME_SIZE_ERROR));
        if std::mem::take(&mut self.first) && (kind != SETTINGS || flags & ACK != 0) {
            // RFC 9113 §3.4: the preface is followed by SETTINGS.
            return Some((H2Defence::ProtocolError, Reason::PROTOCOL_ERROR));
        }
        self.settings_payload = false;
        match kind {
            // HEADERS
            0x1 => self.continuations = 0,
            // PRIORITY (§6.3), RST_STREAM (§6.4), PING (§6.7), GOAWAY
            // (§6.8), WINDOW_UPDATE (§6.9): fixed lengths.
            0x2 if len != 5 => return frame_size,
            0x3 if len != 4 => return frame_size,
            0x6 if len != 8 => return frame_size,
            0x7 if len < 8 => return frame_size,
            0x8 if len != 4 => return frame_size,
            // SETTINGS (§6.5): an ACK is empty, values are 6 bytes each.
            SETTINGS if (flags & ACK != 0 && len != 0) || !len.is_multiple_of(6) => return frame_size,
            SETTINGS if flags & ACK == 0 => {
                if !self.settings.spend() {
                    return Some((H2Defence::SettingsFlood, Reason::ENHANCE_YOUR_CALM));
                }
                self.settings_payload = true;
                self.setting_len = 0;
            }
            // CONTINUATION
            0x9 => {
                self.continuations += 1;
                if self.continuations > self.max_continuations {
                    return Some((H2Defence::ContinuationFlood, Reason::ENHANCE_YOUR_CALM));
                }
                if flags & END_HEADERS != 0 {
                    self.continuations = 0;
                }
            }
            _ => {}
        }
        match kind {
            0x3 if !self.resets.spend() => Some((H2Defence::RapidReset, Reason::ENHANCE_YOUR_CALM)),
            0x6 if flags & ACK == 0 && !self.pings.spend() => Some((H2Defence::PingFlood, Reason::ENHANCE_YOUR_CALM)),
            _ => None,
        }
    }

    /// Reads SETTINGS values as they arrive, 6 bytes each (§6.5.2).
    fn payload(&mut self, mut data: &[u8], _last: bool) -> Option<Trip> {
        if !self.settings_payload {
            return None;
        }
        while !data.is_empty() {
            let n = (6 - self.setting_len).min(data.len());
            self.setting[self.setting_len..self.setting_len + n].copy_from_slice(&data[..n]);
            self.setting_len += n;
            data = &data[n..];
            if self.setting_len < 6 {
                break;
            }
            self.setting_len = 0;
            let id = u16::from_be_bytes([self.setting[0], self.setting[1]]);
            let value = u32::from_be_bytes([self.setting[2], self.setting[3], self.setting[4], self.setting[5]]);
            let wrong = match id {
                // SETTINGS_ENABLE_PUSH
                0x2 if value > 1 => Reason::PROTOCOL_ERROR,
                // SETTINGS_INITIAL_WINDOW_SIZE
                0x4 if value > (1 << 31) - 1 => Reason::FLOW_CONTROL_ERROR,
                // SETTINGS_MAX_FRAME_SIZE
                0x5 if !(16_384..=(1 << 24) - 1).contains(&value) => Reason::PROTOCOL_ERROR,
                _ => continue,
            };
            return Some((H2Defence::ProtocolError, wrong));
        }
        None
    }
}

/// Follows the frames the connection sends, to keep the debug data of a
/// GOAWAY (the reason h2 cut a client off, which its error does not carry).
type GoawayWatch = Frames<GoawayDebug>;

#[derive(Debug, Default)]
struct GoawayDebug {
    /// Payload bytes of the GOAWAY being sent (its first 8 bytes are the
    /// last stream id and the error code).
    goaway: Option<Vec<u8>>,
    /// The debug data of the last complete GOAWAY.
    last: Rc<RefCell<Vec<u8>>>,
}

impl GoawayDebug {
    /// The longest debug data kept.
    const MAX_DEBUG: usize = 64;
}

impl FrameSink for GoawayDebug {
    type Out = ();

    fn header(&mut self, kind: u8, _flags: u8, len: usize) -> Option<()> {
        self.goaway = (kind == 0x7 && len > 8).then(Vec::new);
        None
    }

    fn payload(&mut self, bytes: &[u8], last: bool) -> Option<()> {
        if let Some(g) = &mut self.goaway {
            let room = (8 + Self::MAX_DEBUG).saturating_sub(g.len());
            g.extend_from_slice(&bytes[..bytes.len().min(room)]);
            if last {
                *self.last.borrow_mut() = g.get(8..).unwrap_or_default().to_vec();
                self.goaway = None;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags, 0, 0, 0, 1];
        f.resize(9 + len, 0);
        f
    }

    #[test]
    fn the_watch_follows_frames_split_anywhere_and_trips_on_a_reset_flood() {
        let mut bytes = crate::accept::H2_PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, 6));
        for _ in 0..RST_BUDGET.0 {
            bytes.extend(frame(0x1, 0x5, 3));
            bytes.extend(frame(0x3, 0, 4));
        }
        let mut w = FrameWatch::new(16);
        for piece in bytes.chunks(7) {
            assert_eq!(w.inspect(piece), None, "within the budget");
        }
        assert_eq!(w.inspect(&frame(0x3, 0, 4)), Some((H2Defence::RapidReset, Reason::ENHANCE_YOUR_CALM)));
    }

    #[test]
    fn continuation_floods_and_ping_floods_trip_acks_do_not() {
        let mut w = FrameWatch::new(4);
        let mut bytes = crate::accept::H2_PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, 0));
        bytes.extend(frame(0x1, 0, 10));
        for _ in 0..4 {
            bytes.extend(frame(0x9, 0, 1));
        }
        assert_eq!(w.inspect(&bytes), None);
        assert_eq!(w.inspect(&frame(0x9, 0, 1)), Some((H2Defence::ContinuationFlood, Reason::ENHANCE_YOUR_CALM)));

        let mut w = FrameWatch::new(4);
        let mut bytes = crate::accept::H2_PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, 0));
        for _ in 0..1000 {
            bytes.extend(frame(0x6, 0x1, 8));
        }
        assert_eq!(w.inspect(&bytes), None, "PING ACKs are not counted");
        let mut flood = Vec::new();
        for _ in 0..=PING_BUDGET.0 {
            flood.extend(frame(0x6, 0, 8));
        }
        assert_eq!(w.inspect(&flood), Some((H2Defence::PingFlood, Reason::ENHANCE_YOUR_CALM)));
    }

    #[test]
    fn frame_errors_get_the_rfcs_codes() {
        let start = |frames: &[Vec<u8>]| {
            let mut w = FrameWatch::new(4);
            let mut bytes = crate::accept::H2_PREFACE.to_vec();
            frames.iter().for_each(|f| bytes.extend(f));
            w.inspect(&bytes)
        };
        let code = |t: Option<Trip>| t.map(|(_, r)| r);
        assert_eq!(code(start(&[frame(0x6, 0, 8)])), Some(Reason::PROTOCOL_ERROR), "PING before SETTINGS");
        let settings = frame(0x4, 0, 0);
        assert_eq!(code(start(&[settings.clone(), frame(0x2, 0, 4)])), Some(Reason::FRAME_SIZE_ERROR));
        assert_eq!(
            code(start(&[settings.clone(), frame(0x4, 1, 6)])),
            Some(Reason::FRAME_SIZE_ERROR),
            "ACK with a payload"
        );
        assert_eq!(code(start(&[settings.clone(), frame(0x8, 0, 3)])), Some(Reason::FRAME_SIZE_ERROR));
        let mut window = frame(0x4, 0, 6);
        window[9..15].copy_from_slice(&[0, 4, 0x80, 0, 0, 0]);
        assert_eq!(code(start(&[window])), Some(Reason::FLOW_CONTROL_ERROR), "INITIAL_WINDOW_SIZE over 2^31-1");
        let mut ok = frame(0x4, 0, 12);
        ok[9..21].copy_from_slice(&[0, 4, 0, 1, 0, 0, 0, 5, 0, 0, 0x40, 0]);
        assert_eq!(start(&[ok, frame(0x6, 0, 8), frame(0x8, 0, 4)]), None);
    }

    #[test]
    fn the_debug_data_of_a_sent_goaway_is_kept() {
        let mut g = GoawayWatch::default();
        let debug = g.sink.last.clone();
        let mut bytes = frame(0x4, 0, 0);
        let mut goaway = frame(0x7, 0, 8 + 15);
        goaway[17..32].copy_from_slice(b"too_many_resets");
        bytes.extend(goaway);
        for piece in bytes.chunks(5) {
            g.feed(piece);
        }
        assert_eq!(&*debug.borrow(), b"too_many_resets");
    }

    #[test]
    fn an_http2_head_becomes_an_http11_head_the_parser_takes() {
        let req = http::Request::builder()
            .method("POST")
            .uri("https://shop.example/cart?x=1")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("te", "trailers")
            .header("x-y", "z")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        assert_eq!(write_request_head(&parts, false, &mut out), Ok(true));
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /cart?x=1 HTTP/1.1\r\nhost: shop.example\r\nx-y: z\r\ncookie: a=1; b=2\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let mut head = ringgate_http::RequestHead::default();
        let limits = ringgate_http::ParseLimits { max_head: 16384, max_headers: 100, max_uri: 8192 };
        assert!(matches!(parse_request(&out, &limits, &mut head), Ok(Parsed::Complete(_))));
        assert_eq!(head.body, BodyKind::Chunked);

        let req = http::Request::builder().uri("https://a.example/").header("host", "b.example").body(()).unwrap();
        let (parts, ()) = req.into_parts();
        let e = write_request_head(&parts, true, &mut Vec::new()).unwrap_err();
        assert!(matches!(&e, HeadRefusal::BadRequest(t) if t.contains("disagrees with :authority")), "{e:?}");
        let req = http::Request::builder().uri("https://a.example/").header("x", " padded").body(()).unwrap();
        let (parts, ()) = req.into_parts();
        assert!(matches!(write_request_head(&parts, true, &mut Vec::new()), Err(HeadRefusal::Malformed(_))));
    }
}
