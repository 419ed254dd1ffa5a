//! Socket helpers over monoio's owned-buffer I/O: appending reads into a
//! `Vec`, writing all of a `Vec` or a part of it, with deadlines.
//!
//! monoio moves a buffer into the kernel for the duration of an operation and
//! hands it back on completion. If the future is dropped first (a deadline
//! fired), the buffer stays with the driver until the kernel lets go of it; the
//! `Vec` the caller lent is then left empty, and callers close the connection.

use std::io;
use std::time::Instant;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

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

/// [`read_more`] bounded by a deadline.
pub(crate) async fn read_more_until<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    min_free: usize,
    deadline: Instant,
) -> Result<usize, IoFail> {
    match monoio::time::timeout_at(deadline.into(), read_more(stream, buf, min_free)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(IoFail::Io(e)),
        Err(_) => Err(IoFail::TimedOut),
    }
}

/// Writes `buf[range]` entirely before `deadline`; `buf` is handed back intact.
pub(crate) async fn write_range_until<S: AsyncWriteRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    range: std::ops::Range<usize>,
    deadline: Instant,
) -> Result<(), IoFail> {
    if range.is_empty() {
        return Ok(());
    }
    let owned = std::mem::take(buf);
    let fut = async {
        let (res, slice) = stream.write_all(owned.slice(range)).await;
        (res, slice.into_inner())
    };
    match monoio::time::timeout_at(deadline.into(), fut).await {
        Ok((res, owned)) => {
            *buf = owned;
            res.map(|_| ()).map_err(IoFail::Io)
        }
        Err(_) => Err(IoFail::TimedOut),
    }
}

/// Writes all of `buf` before `deadline`.
pub(crate) async fn write_all_until<S: AsyncWriteRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), IoFail> {
    let len = buf.len();
    write_range_until(stream, buf, 0..len, deadline).await
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
    fn reads_append_and_writes_hand_the_buffer_back() {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().unwrap();
        rt.block_on(async {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = monoio::spawn(async move {
                let mut s = TcpStream::connect_addr(addr).await.unwrap();
                let mut out = b"xxhello worldyy".to_vec();
                let deadline = Instant::now() + std::time::Duration::from_secs(5);
                write_range_until(&mut s, &mut out, 2..13, deadline).await.unwrap();
                assert_eq!(out, b"xxhello worldyy", "the buffer comes back whole");
            });
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = b"[".to_vec();
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            while buf.len() < 12 {
                let n = read_more_until(&mut s, &mut buf, 4, deadline).await.unwrap();
                assert!(n > 0);
            }
            assert_eq!(buf, b"[hello world");
            client.await;
            let n = read_more_until(&mut s, &mut buf, 4, deadline).await.unwrap();
            assert_eq!(n, 0, "closed");
        });
    }
}
