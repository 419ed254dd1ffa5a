//! Socket helpers over monoio's owned-buffer I/O: appending reads into a
//! `Vec`, writing all of a `Vec` or a part of it, with deadlines.
//!
//! monoio moves a buffer into the kernel for the duration of an operation and
//! hands it back on completion. If the future is dropped first (a deadline
//! fired), the buffer stays with the driver until the kernel lets go of it; the
//! `Vec` the caller lent is then left empty, and callers close the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::time::Sleep;

/// Why a deadline-bound operation ended without its result.
#[derive(Debug)]
pub(crate) enum IoFail {
    TimedOut,
    Io(io::Error),
}

/// Reads what is available into the spare capacity of `buf`, growing it so at
/// least `min_free` bytes fit. Returns the bytes read (0: the peer closed).
pub(crate) async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    min_free: usize,
) -> io::Result<usize> {
    if buf.capacity() - buf.len() < min_free {
        buf.reserve(min_free);
    }
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    let (res, slice) = stream.read(owned.slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    res
}

/// Writes `buf[range]` entirely; `buf` is handed back intact unless the
/// future is dropped first.
async fn write_range<S: AsyncWriteRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    range: std::ops::Range<usize>,
) -> io::Result<()> {
    let owned = std::mem::take(buf);
    let (res, slice) = stream.write_all(owned.slice(range)).await;
    *buf = slice.into_inner();
    res.map(|_| ())
}

/// One timer for all the deadline-bound I/O of a connection, aimed anew at
/// each operation's deadline.
///
/// A monoio `Timeout` files a timer in the time wheel when its operation
/// starts and takes it out when the operation ends: four times per proxied
/// keep-alive request, about a tenth of the request path's user-space
/// instructions in callgrind. Re-aiming one timer at a later deadline is a
/// store (the wheel re-files it lazily, when the old tick comes); only an
/// earlier deadline re-registers it. Deadlines and who wins a tie (the
/// operation) are as with `timeout_at`.
pub(crate) struct Timer(Pin<Box<Sleep>>);

impl Timer {
    pub(crate) fn new() -> Timer {
        // Never awaited at this deadline: every use re-aims it first.
        Timer(Box::pin(monoio::time::sleep(Duration::from_secs(3600))))
    }

    /// Runs `fut` until it completes or `deadline` passes.
    pub(crate) async fn bound<F: Future>(&mut self, deadline: Instant, fut: F) -> Option<F::Output> {
        self.0.as_mut().reset(deadline.into());
        let mut fut = std::pin::pin!(fut);
        let sleep = &mut self.0;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            sleep.as_mut().poll(cx).map(|()| None)
        })
        .await
    }

    /// [`read_more`] unless `deadline` passes first.
    pub(crate) async fn read_more_until<S: AsyncReadRent>(
        &mut self,
        stream: &mut S,
        buf: &mut Vec<u8>,
        min_free: usize,
        deadline: Instant,
    ) -> Result<usize, IoFail> {
        match self.bound(deadline, read_more(stream, buf, min_free)).await {
            Some(r) => r.map_err(IoFail::Io),
            None => Err(IoFail::TimedOut),
        }
    }

    /// Writes `buf[range]` entirely unless `deadline` passes first; `buf` is
    /// handed back intact.
    pub(crate) async fn write_range_until<S: AsyncWriteRent>(
        &mut self,
        stream: &mut S,
        buf: &mut Vec<u8>,
        range: std::ops::Range<usize>,
        deadline: Instant,
    ) -> Result<(), IoFail> {
        if range.is_empty() {
            return Ok(());
        }
        match self.bound(deadline, write_range(stream, buf, range)).await {
            Some(r) => r.map_err(IoFail::Io),
            None => Err(IoFail::TimedOut),
        }
    }

    /// Writes all of `buf` unless `deadline` passes first.
    pub(crate) async fn write_all_until<S: AsyncWriteRent>(
        &mut self,
        stream: &mut S,
        buf: &mut Vec<u8>,
        deadline: Instant,
    ) -> Result<(), IoFail> {
        let len = buf.len();
        self.write_range_until(stream, buf, 0..len, deadline).await
    }
}

/// A client connection's byte stream. A plain TCP one can have bodies
/// spliced to and from it (see `splice`); TLS and HTTP/2 streams cannot, as
/// their bytes are not the body's.
pub(crate) trait ClientStream: AsyncReadRent + AsyncWriteRent {
    /// The socket itself, when the stream is a plain TCP connection.
    fn tcp(&mut self) -> Option<&mut monoio::net::TcpStream> {
        None
    }
}

impl ClientStream for monoio::net::TcpStream {
    fn tcp(&mut self) -> Option<&mut monoio::net::TcpStream> {
        Some(self)
    }
}

impl<S: AsyncReadRent + AsyncWriteRent> ClientStream for monoio_rustls::ServerTlsStream<S> {}

/// Reads into the spare room of `buf` what `stream`'s multishot receive
/// had taken already, as it hands its receive side over for splicing (see
/// `TcpStream::release_multishot`): `Some(n)` bytes (0: the peer closed),
/// `None` when nothing is left in user space.
pub(crate) async fn release_more(
    stream: &mut monoio::net::TcpStream,
    buf: &mut Vec<u8>,
    min_free: usize,
) -> io::Result<Option<usize>> {
    if buf.capacity() - buf.len() < min_free {
        buf.reserve(min_free);
    }
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    let (res, slice) = stream.release_multishot(owned.slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    res
}

thread_local! {
    /// Whether this worker's sockets receive through multishot receives
    /// (`[gateway.io_uring] multishot_recv`, and an io_uring driver).
    static MULTISHOT_RECV: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Switches a new client or backend socket to a multishot receive when this
/// worker uses them: one receive armed per socket instead of one submitted
/// (and polled for) per read: about 1.5 % less CPU per small request at 64
/// connections and 4-5 % at 1024 (4-10 % more for 64 KiB responses), and an
/// idle pooled connection's close is seen before a request is sent on it
/// (see `ConnPool::take`). Details in `vendor/monoio/RINGGATE.md`.
pub(crate) fn prepare_stream(stream: &mut monoio::net::TcpStream) {
    if MULTISHOT_RECV.with(|m| m.get()) {
        // False on a kernel without provided-buffer rings: reads stay plain.
        stream.set_multishot_recv(true);
    }
}

/// Sets whether this thread's new sockets use multishot receives.
pub(crate) fn set_multishot_recv(on: bool) {
    MULTISHOT_RECV.with(|m| m.set(on));
}

/// Removes the first `n` bytes of `buf`, keeping what follows (the start of a
/// pipelined request) at the front.
#[inline]
pub(crate) fn consume(buf: &mut Vec<u8>, n: usize) {
    if n >= buf.len() {
        buf.clear();
    } else {
        buf.copy_within(n.., 0);
        buf.truncate(buf.len() - n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::net::TcpStream;

    #[test]
    fn consume_keeps_the_rest_in_front() {
        let mut b = b"GET /1\r\n\r\nGET /2".to_vec();
        consume(&mut b, 10);
        assert_eq!(b, b"GET /2");
        consume(&mut b, 100);
        assert!(b.is_empty());
    }

    #[test]
    fn one_timer_bounds_successive_operations_at_their_own_deadlines() {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().unwrap();
        rt.block_on(async {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut s = TcpStream::connect_addr(addr).await.unwrap();
            let (_peer, _) = listener.accept().await.unwrap();
            let mut t = Timer::new();
            let mut out = b"hello".to_vec();
            t.write_all_until(&mut s, &mut out, Instant::now() + Duration::from_secs(5)).await.unwrap();
            // An earlier deadline than the one the timer was aimed at.
            let start = Instant::now();
            let mut buf = Vec::new();
            let r = t.read_more_until(&mut s, &mut buf, 16, start + Duration::from_millis(50)).await;
            assert!(matches!(r, Err(IoFail::TimedOut)), "{r:?}");
            let waited = start.elapsed();
            assert!(waited >= Duration::from_millis(50) && waited < Duration::from_secs(2), "{waited:?}");
            // Fired, then aimed again: bounds the next operation.
            let start = Instant::now();
            let r = t.read_more_until(&mut s, &mut buf, 16, start + Duration::from_millis(80)).await;
            assert!(matches!(r, Err(IoFail::TimedOut)), "{r:?}");
            assert!(start.elapsed() >= Duration::from_millis(80));
        });
    }

    #[test]
    fn reads_append_and_writes_hand_the_buffer_back() {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().unwrap();
        rt.block_on(async {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = monoio::spawn(async move {
                let mut s = TcpStream::connect_addr(addr).await.unwrap();
                let mut out = b"xxhello worldyy".to_vec();
                let deadline = Instant::now() + std::time::Duration::from_secs(5);
                Timer::new().write_range_until(&mut s, &mut out, 2..13, deadline).await.unwrap();
                assert_eq!(out, b"xxhello worldyy", "the buffer comes back whole");
            });
            let (mut s, _) = listener.accept().await.unwrap();
            let mut t = Timer::new();
            let mut buf = b"[".to_vec();
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            while buf.len() < 12 {
                let n = t.read_more_until(&mut s, &mut buf, 4, deadline).await.unwrap();
                assert!(n > 0);
            }
            assert_eq!(buf, b"[hello world");
            client.await;
            let n = t.read_more_until(&mut s, &mut buf, 4, deadline).await.unwrap();
            assert_eq!(n, 0, "closed");
        });
    }
}
