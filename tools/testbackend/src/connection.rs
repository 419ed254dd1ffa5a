//! One accepted connection on its own thread: reads requests in order (so
//! pipelined requests are answered in order), picks the behaviour from the
//! backend's mode at the moment each head is complete, and writes the answer.
//! Every failure of the peer ends the connection quietly; nothing here panics
//! on what a peer sends.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::backend::Shared;
use crate::mode::Mode;
use crate::request::{self, ChunkedDecoder, Framing, Head, MAX_BODY_BYTES, RequestError};
use crate::response::{self, PATTERN_BLOCK, ResponseHead};
use crate::wire;

const READ_CHUNK: usize = 16 * 1024;
/// After our last byte, how long we keep reading (and discarding) before the
/// close; closing with unread data makes Linux send RST, which can destroy
/// the response in flight at the client.
const LINGER: Duration = Duration::from_secs(1);
const MAX_LINGER_BYTES: usize = 1 << 20;
/// Upper bounds on query parameters, so a typo cannot tie a thread up.
const MAX_SLOW: Duration = Duration::from_secs(600);
const MAX_CHUNKS: u64 = 100_000;
const DEFAULT_CHUNKS: u64 = 3;
const DEFAULT_BYTES: u64 = 1024;
const DEFAULT_SLOW_MS: u64 = 1000;

/// What to do with the connection after an answer.
enum Next {
    KeepAlive,
    /// Close gracefully: half-close, drain briefly, close.
    Close,
    /// Close now (peer gone, time-out, or a deliberate reset).
    Drop,
}

/// How the answer describes the connection's fate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Persist {
    KeepAlive,
    Close,
    /// Close without saying so, as `/close` does.
    SilentClose,
}

enum BodyError {
    /// The peer went away or went silent; nothing to answer.
    Io,
    Request(RequestError),
}

struct Conn<'a> {
    shared: &'a Shared,
    stream: TcpStream,
    /// Received bytes not yet consumed: the rest of a head, a body, or the
    /// next pipelined request.
    buf: Vec<u8>,
    peer: SocketAddr,
    id: u64,
}

/// Serves one connection until it ends.
pub(crate) fn serve(shared: &Shared, stream: TcpStream, peer: SocketAddr, id: u64) {
    if shared.mode() == Mode::CloseImmediately {
        return;
    }
    // Time-outs in both directions so a silent peer, or one that stops
    // reading, cannot hold this thread for ever.
    let _ = stream.set_read_timeout(Some(shared.idle_timeout));
    let _ = stream.set_write_timeout(Some(shared.idle_timeout));
    let _ = stream.set_nodelay(true);
    let mut conn = Conn { shared, stream, buf: Vec::new(), peer, id };
    loop {
        match conn.serve_one() {
            Next::KeepAlive => {}
            Next::Close => {
                conn.close_gracefully();
                return;
            }
            Next::Drop => return,
        }
    }
}

impl Conn<'_> {
    fn serve_one(&mut self) -> Next {
        let head = match self.read_head() {
            Ok(Some(head)) => head,
            Ok(None) => return Next::Drop,
            Err(e) => return self.reject(&e),
        };
        self.shared.count_request(&head);
        let mode = self.shared.mode();
        if let Some(next) = self.misbehave(&mode, &head) {
            return next;
        }
        let framing = match head.framing() {
            Ok(framing) => framing,
            Err(e) => {
                self.record(&head, &[]);
                return self.reject(&e);
            }
        };
        if head.expects_continue() && self.write(wire::CONTINUE).is_err() {
            return Next::Drop;
        }
        let body = match self.read_body(framing) {
            Ok(body) => body,
            Err(BodyError::Io) => return Next::Drop,
            Err(BodyError::Request(e)) => {
                self.record(&head, &[]);
                return self.reject(&e);
            }
        };
        self.record(&head, &body);
        let persist = if head.keep_alive() { Persist::KeepAlive } else { Persist::Close };
        if head.path() == self.shared.health_path {
            if !self.shared.wait_health() {
                return Next::Drop;
            }
            let (status, text) = self.shared.health();
            return self.send(&head, status, &[], text.as_bytes(), persist);
        }
        match mode {
            Mode::Status(status) => self.send(&head, status, &[], response::status_body(status).as_bytes(), persist),
            Mode::Slow(delay) => {
                if !self.shared.sleep(delay) {
                    return Next::Drop;
                }
                self.answer_ok(&head, &body, persist)
            }
            _ => self.answer_ok(&head, &body, persist),
        }
    }

    /// The connection-level failure modes; `None` for the normal ones.
    fn misbehave(&mut self, mode: &Mode, head: &Head) -> Option<Next> {
        let next = match mode {
            Mode::Ok | Mode::Slow(_) | Mode::Status(_) => return None,
            Mode::Stall => {
                self.record(head, &[]);
                self.discard_until_closed();
                Next::Drop
            }
            Mode::Reset => {
                self.record(head, &[]);
                // SO_LINGER 0 turns the close into an RST.
                let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
                Next::Drop
            }
            Mode::CloseImmediately => {
                self.record(head, &[]);
                Next::Drop
            }
            Mode::HalfResponse | Mode::Garbage => {
                let bytes = if *mode == Mode::Garbage { wire::GARBAGE } else { wire::HALF_RESPONSE };
                // Closing either way; a failed write changes nothing.
                let _ = self.reply_raw(head, bytes);
                Next::Close
            }
            Mode::MalformedStatus | Mode::MalformedHeaders | Mode::BodyLonger => {
                let bytes = match mode {
                    Mode::MalformedStatus => wire::MALFORMED_STATUS,
                    Mode::MalformedHeaders => wire::MALFORMED_HEADERS,
                    _ => wire::BODY_LONGER,
                };
                match self.reply_raw(head, bytes) {
                    Ok(()) if head.keep_alive() => Next::KeepAlive,
                    Ok(()) => Next::Close,
                    Err(_) => Next::Drop,
                }
            }
            Mode::BodyShorter => {
                if self.reply_raw(head, wire::BODY_SHORTER).is_ok() {
                    self.discard_until_closed();
                }
                Next::Drop
            }
        };
        Some(next)
    }

    /// Reads the body when that cannot block on a 100-continue handshake we
    /// will not do, records the request, and sends `bytes`.
    fn reply_raw(&mut self, head: &Head, bytes: &[u8]) -> io::Result<()> {
        let body = match head.framing() {
            Ok(framing) if !head.expects_continue() => self.read_body(framing).unwrap_or_default(),
            _ => Vec::new(),
        };
        self.record(head, &body);
        self.write(bytes)
    }

    /// [`Mode::Ok`] and its special paths.
    fn answer_ok(&mut self, head: &Head, body: &[u8], persist: Persist) -> Next {
        // A copy of the reference, so the body can be borrowed while `self` is mutably borrowed.
        let shared = self.shared;
        let path = head.path();
        match path {
            "/echo" | "/continue" => {
                let extra = [("x-request-body-bytes", body.len().to_string())];
                self.send(head, 200, &extra, body, persist)
            }
            "/echo-headers" => {
                let text: String = head.headers.iter().map(|(n, v)| format!("{n}: {v}\n")).collect();
                self.send(head, 200, &[], text.as_bytes(), persist)
            }
            "/chunked" => match self.number(head, "n", DEFAULT_CHUNKS) {
                Some(n) if n <= MAX_CHUNKS => self.send_chunked(head, n, persist),
                _ => self.bad_query(head, persist),
            },
            "/bytes" => match self.number(head, "n", DEFAULT_BYTES) {
                Some(n) => self.send_pattern(head, n, persist),
                None => self.bad_query(head, persist),
            },
            "/slow" => match self.number(head, "ms", DEFAULT_SLOW_MS) {
                Some(ms) => {
                    if !self.shared.sleep(Duration::from_millis(ms).min(MAX_SLOW)) {
                        return Next::Drop;
                    }
                    self.send(head, 200, &[], &shared.body, persist)
                }
                None => self.bad_query(head, persist),
            },
            "/close" => match self.send(head, 200, &[], &shared.body, Persist::SilentClose) {
                Next::Drop => Next::Drop,
                _ => Next::Close,
            },
            "/eof-body" => match self.number(head, "n", DEFAULT_BYTES) {
                Some(n) => self.send_eof_body(head, n),
                None => self.bad_query(head, persist),
            },
            "/upgrade" => self.upgrade(head, persist),
            _ => match path.strip_prefix("/status/") {
                // 1xx are interim answers and cannot end an exchange; /upgrade
                // and /continue produce the meaningful ones.
                Some(code) => match code.parse::<u16>() {
                    Ok(status) if (200..=999).contains(&status) => {
                        self.send(head, status, &[], response::status_body(status).as_bytes(), persist)
                    }
                    _ => self.send(head, 400, &[], b"status must be a number from 200 to 999\n", persist),
                },
                None => self.send(head, 200, &[], &shared.body, persist),
            },
        }
    }

    /// A numeric query parameter: the default when absent, `None` when not a number.
    fn number(&self, head: &Head, key: &str, default: u64) -> Option<u64> {
        match request::query_param(head.query(), key) {
            None => Some(default),
            Some(value) => value.parse().ok(),
        }
    }

    fn bad_query(&mut self, head: &Head, persist: Persist) -> Next {
        self.send(head, 400, &[], b"bad query parameter\n", persist)
    }

    /// The head every normal answer starts with; `framing` (Content-Length
    /// or Transfer-Encoding) goes before the connection header.
    fn head_for(
        &self,
        status: u16,
        extra: &[(&str, String)],
        framing: Option<(&str, String)>,
        persist: Persist,
        minor_version: u8,
    ) -> ResponseHead {
        let mut out =
            ResponseHead::new(status).header("content-type", "text/plain").header("x-backend", &self.shared.name);
        for (name, value) in extra.iter().chain(&framing) {
            out = out.header(name, value);
        }
        match persist {
            Persist::Close => out.header("connection", "close"),
            // HTTP/1.0 clients assume close unless told otherwise.
            Persist::KeepAlive if minor_version == 0 => out.header("connection", "keep-alive"),
            _ => out,
        }
    }

    /// A Content-Length answer (no body for HEAD, 1xx, 204 and 304).
    fn send(&mut self, head: &Head, status: u16, extra: &[(&str, String)], body: &[u8], persist: Persist) -> Next {
        let has_body = response::status_has_body(status);
        let length = has_body.then(|| ("content-length", body.len().to_string()));
        let mut bytes = self.head_for(status, extra, length, persist, head.minor_version).finish();
        if has_body && !head.is_head_method() {
            bytes.extend_from_slice(body);
        }
        self.finish_answer(&bytes, persist)
    }

    fn send_chunked(&mut self, head: &Head, n: u64, persist: Persist) -> Next {
        let framing = Some(("transfer-encoding", "chunked".to_owned()));
        let mut bytes = self.head_for(200, &[], framing, persist, head.minor_version).finish();
        if !head.is_head_method() {
            bytes.extend_from_slice(&response::chunked_body(n));
        }
        self.finish_answer(&bytes, persist)
    }

    fn send_pattern(&mut self, head: &Head, n: u64, persist: Persist) -> Next {
        let length = Some(("content-length", n.to_string()));
        let out = self.head_for(200, &[], length, persist, head.minor_version).finish();
        let sent = self.write(&out).and_then(|()| if head.is_head_method() { Ok(()) } else { self.write_pattern(n) });
        match sent {
            Ok(()) if persist == Persist::KeepAlive => Next::KeepAlive,
            Ok(()) => Next::Close,
            Err(_) => Next::Drop,
        }
    }

    /// A close-delimited body: neither Content-Length nor chunked, so the end
    /// of the body is the end of the connection (RFC 9112 section 6.3, rule 8).
    fn send_eof_body(&mut self, head: &Head, n: u64) -> Next {
        let out = self.head_for(200, &[], None, Persist::Close, head.minor_version).finish();
        let sent = self.write(&out).and_then(|()| if head.is_head_method() { Ok(()) } else { self.write_pattern(n) });
        if sent.is_ok() { Next::Close } else { Next::Drop }
    }

    /// `101 Switching Protocols`, then every byte that arrives is sent back.
    fn upgrade(&mut self, head: &Head, persist: Persist) -> Next {
        if !(head.has_token("connection", "upgrade") && head.has_token("upgrade", "websocket")) {
            return self.send(head, 400, &[], b"upgrade needs Upgrade: websocket and Connection: Upgrade\n", persist);
        }
        let out = ResponseHead::new(101)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("x-backend", &self.shared.name)
            .finish();
        // Bytes sent right behind the head already belong to the new protocol.
        let early = std::mem::take(&mut self.buf);
        if self.write(&out).and_then(|()| self.write(&early)).is_err() {
            return Next::Drop;
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Next::Drop,
                Ok(n) => {
                    if self.write(chunk.get(..n).unwrap_or_default()).is_err() {
                        return Next::Drop;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Drop,
            }
        }
    }

    /// Answers a request we could not read, then closes: after a framing
    /// error we cannot know where the next request would start.
    fn reject(&mut self, e: &RequestError) -> Next {
        let body = format!("{e}\n");
        let bytes = ResponseHead::new(e.status())
            .header("content-type", "text/plain")
            .header("x-backend", &self.shared.name)
            .header("content-length", body.len())
            .header("connection", "close")
            .finish();
        if self.write(&[bytes, body.into_bytes()].concat()).is_ok() { Next::Close } else { Next::Drop }
    }

    fn finish_answer(&mut self, bytes: &[u8], persist: Persist) -> Next {
        match self.write(bytes) {
            Ok(()) if persist == Persist::KeepAlive => Next::KeepAlive,
            Ok(()) => Next::Close,
            Err(_) => Next::Drop,
        }
    }

    fn record(&self, head: &Head, body: &[u8]) {
        self.shared.record(head, body, self.peer, self.id);
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes `n` bytes of the `abc...z` pattern without holding them all.
    fn write_pattern(&mut self, n: u64) -> io::Result<()> {
        let block = response::pattern(PATTERN_BLOCK);
        let mut left = n;
        while left > 0 {
            let take = usize::try_from(left).map_or(PATTERN_BLOCK, |l| l.min(PATTERN_BLOCK));
            self.write(block.get(..take).unwrap_or_default())?;
            left -= take as u64;
        }
        Ok(())
    }

    /// Appends whatever the peer sends next; `Ok(0)` at end of stream.
    fn read_more(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next request head; `Ok(None)` when the peer closed, went silent or
    /// failed before completing one.
    fn read_head(&mut self) -> Result<Option<Head>, RequestError> {
        loop {
            if !self.buf.is_empty()
                && let Some((head, len)) = request::parse_head(&self.buf)?
            {
                self.buf.drain(..len);
                return Ok(Some(head));
            }
            match self.read_more() {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    fn read_body(&mut self, framing: Framing) -> Result<Vec<u8>, BodyError> {
        match framing {
            Framing::Length(n) => {
                if n > MAX_BODY_BYTES {
                    return Err(BodyError::Request(RequestError::BodyTooLarge));
                }
                let n = usize::try_from(n).map_err(|_| BodyError::Request(RequestError::BodyTooLarge))?;
                while self.buf.len() < n {
                    match self.read_more() {
                        Ok(0) | Err(_) => return Err(BodyError::Io),
                        Ok(_) => {}
                    }
                }
                Ok(self.buf.drain(..n).collect())
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = Vec::new();
                loop {
                    let used = decoder.feed(&self.buf, &mut body).map_err(BodyError::Request)?;
                    self.buf.drain(..used);
                    if decoder.is_done() {
                        return Ok(body);
                    }
                    match self.read_more() {
                        Ok(0) | Err(_) => return Err(BodyError::Io),
                        Ok(_) => {}
                    }
                }
            }
        }
    }

    /// Reads and drops everything until the peer closes, the idle time-out
    /// passes, or the backend stops (which shuts the socket down).
    fn discard_until_closed(&mut self) {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Half-closes so the peer sees the end of our bytes, then drains what
    /// it still sends for a short while before the descriptor is closed.
    fn close_gracefully(&mut self) {
        let _ = self.stream.flush();
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut drained = 0;
        let mut chunk = [0u8; 4096];
        while drained <= MAX_LINGER_BYTES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}
