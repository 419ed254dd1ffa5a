//! The HTTP/1.1 codec: a client connection's request loop. It reads each
//! request head into the connection's buffer, parses it, and hands it to the
//! request path (`request`), which reads the body from, and writes the
//! response to, the same byte stream; keep-alive, pipelining, idle and head
//! time-outs, and the switch to a tunnel after a 101 live here.

use std::time::{Duration, Instant};

use ringgate_http::{ErrorCode, Parsed, RequestError, parse_request};

use crate::io::IoFail;
use crate::request::{Client, INITIAL_READ};

/// What reading a request head needs from the plan, copied out of it.
struct HeadWait {
    limits: ringgate_http::ParseLimits,
    keepalive: Duration,
    header: Duration,
}

enum WaitInput {
    /// A read finds input at once (or the stream cannot wait without one).
    Ready,
    /// The keep-alive or head time-out passed, or the socket failed.
    Closed,
}

enum HeadRead {
    Ready,
    /// The client went away or idled out between requests: close quietly.
    Closed,
    Refused(RequestError),
    TimedOut,
}

impl<S: crate::io::ClientStream + monoio::io::Split> Client<S> {
    /// Serves the connection's requests until it closes. The client is
    /// boxed: an async fn keeps an argument taken by value twice in its
    /// state (once as passed, once moved into the body), and the connection's
    /// task is what every idle connection costs.
    pub(crate) async fn run(mut self: Box<Self>) {
        loop {
            // The plan is taken once the head is in, not before waiting for
            // it: a keep-alive connection idle across a reload must serve its
            // next request with the new plan.
            let wait = {
                let lp = self.w.plan();
                HeadWait {
                    limits: lp.plan.limits,
                    keepalive: lp.plan.keepalive_timeout,
                    header: lp.plan.header_timeout,
                }
            };
            self.meta.reset();
            let read = self.read_head(&wait).await;
            let start = Instant::now();
            let lp = self.w.plan();
            let keep = match read {
                // Boxed: the exchange with a backend is a large future, and
                // an idle keep-alive connection should not carry its space
                // (measured: 6.3 KB per connection inline, vs one small
                // allocation per request).
                HeadRead::Ready => Box::pin(self.handle(&lp, start)).await,
                HeadRead::Closed => return,
                HeadRead::Refused(e) => Box::pin(self.refuse_head(&lp.plan, &e, true, start)).await,
                HeadRead::TimedOut => {
                    if self.w.shared.access_log.is_some() {
                        self.meta.capture_raw(&self.rbuf);
                    }
                    let out = Box::pin(self.reply_error(
                        ErrorCode::RequestTimeout,
                        "408 Request Timeout: the request head did not arrive within header_read_timeout",
                        true,
                    ))
                    .await;
                    self.finish(&lp.plan, None, start, out);
                    false
                }
            };
            if let Some(conn) = self.tunnel.take() {
                let _guard = self.guard;
                // Boxed for the same reason as the exchange: rare, and large.
                Box::pin(crate::tunnel::splice_both(self.stream, conn.stream, crate::exchange::TUNNEL_IDLE)).await;
                return;
            }
            self.served += 1;
            if !keep || self.w.draining() {
                return;
            }
        }
    }
}

impl<S: crate::io::ClientStream> Client<S> {
    /// Reads until a whole request head is buffered. The first request and
    /// each started head must arrive within `header_read_timeout`; an idle
    /// keep-alive connection is closed after `client_keepalive_timeout`.
    async fn read_head(&mut self, plan: &HeadWait) -> HeadRead {
        let mut deadline: Option<Instant> = None;
        loop {
            if !self.rbuf.is_empty() {
                match parse_request(&self.rbuf, &plan.limits, &mut self.head) {
                    Ok(Parsed::Complete(_)) => return HeadRead::Ready,
                    Ok(Parsed::Partial) => {}
                    Err(e) => return HeadRead::Refused(e),
                }
            }
            let idle = self.rbuf.is_empty();
            let wait = match deadline {
                Some(d) => d,
                None if idle && self.served > 0 => Instant::now() + plan.keepalive,
                None => {
                    let d = Instant::now() + plan.header;
                    if !idle {
                        deadline = Some(d);
                    }
                    d
                }
            };
            if idle {
                if self.w.draining() {
                    return HeadRead::Closed;
                }
                self.set_idle(true);
                if let WaitInput::Closed = self.wait_input(wait).await {
                    self.set_idle(false);
                    return HeadRead::Closed;
                }
            }
            // Room for the rest of the head, never beyond the limit.
            let room = (plan.limits.max_head + 1).saturating_sub(self.rbuf.len()).clamp(1, INITIAL_READ);
            let r = self.head_timer.read_more_until(&mut self.stream, &mut self.rbuf, room, wait).await;
            if idle {
                self.set_idle(false);
            }
            match r {
                Ok(0) | Err(IoFail::Io(_)) => return HeadRead::Closed,
                Ok(_) => {
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + plan.header);
                    }
                }
                Err(IoFail::TimedOut) if idle => return HeadRead::Closed,
                Err(IoFail::TimedOut) => return HeadRead::TimedOut,
            }
        }
    }

    /// Waits for a request on a connection with nothing buffered. With a
    /// multishot receive the kernel holds the bytes until a read takes them,
    /// so the read buffer goes back to the allocator meanwhile and a new one
    /// is taken once input is there: an idle keep-alive connection holds its
    /// task, its timers and its socket, not 4 KiB of buffer (measured with
    /// `bench/compare.sh --mode idle`). Without one (TLS, plain receives
    /// after bulk data) the read itself waits, with the buffer.
    async fn wait_input(&mut self, deadline: Instant) -> WaitInput {
        let Some(tcp) = self.stream.tcp() else { return WaitInput::Ready };
        if tcp.multishot_released() {
            // After a spliced upload the next head is read with a plain
            // receive, so that a large body behind it stays in the socket for
            // the pipe; once a request without one went by, the multishot
            // receive comes back.
            if std::mem::take(&mut self.spliced_upload) {
                return WaitInput::Ready;
            }
            tcp.set_multishot_recv(true);
        }
        if !tcp.multishot_recv() || tcp.multishot_pending() {
            return WaitInput::Ready;
        }
        self.rbuf = Vec::new();
        let r = self.head_timer.bound(deadline, tcp.multishot_wait()).await;
        self.rbuf.reserve(INITIAL_READ);
        match r {
            // Input (or the close, or an error) is there: the read takes it.
            Some(Ok(_)) => WaitInput::Ready,
            Some(Err(_)) | None => WaitInput::Closed,
        }
    }

    /// Answers with a 400 saying `why` and closes: [`Client::refuse`] for a
    /// client made just for that.
    pub(crate) async fn refuse_owned(mut self, why: &str) {
        self.refuse(why).await;
    }

    /// Answers a plain HTTP request sent to an HTTPS port, and closes.
    pub(crate) async fn refuse_plain_http(&mut self) {
        self.refuse("400 Bad Request: this port speaks HTTPS: use https:// to reach it").await;
    }

    /// Answers a connection that did not start as this socket expects with a
    /// 400 saying why, logged and counted, then closes it.
    pub(crate) async fn refuse(&mut self, why: &str) {
        let start = Instant::now();
        if self.w.shared.access_log.is_some() {
            self.meta.capture_raw(&self.rbuf);
        }
        let out = self.reply_error(ErrorCode::BadRequest, why, true).await;
        let lp = self.w.plan();
        self.finish(&lp.plan, None, start, out);
    }
}
