//! tokio's poll-based I/O traits over a monoio stream, for the `h2` crate.
//!
//! monoio hands buffers to the kernel and back (io_uring), `h2` lends
//! slices and polls: this adapter owns one read buffer and two write buffers.
//! A read fills the read buffer and copies from it; writes are appended to a
//! buffer that is submitted only when `h2` flushes (or when it passes a high
//! mark), while the other buffer may still be in the kernel's hands. So the
//! frames `h2` writes in one go (a DATA frame's 9-byte header and its payload,
//! the frames of several streams) leave in one write, and over TLS in full
//! records, instead of one write (and one TLS record) per slice.
//!
//! The stream is split into its owned halves, so each operation's future owns
//! what it uses and no borrow outlives a poll.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Split, Splitable};

/// Bytes read per receive.
const READ_SIZE: usize = 16 * 1024;
/// Buffered writes past this are submitted before more are taken.
const WRITE_HIGH: usize = 256 * 1024;

type ReadOp<S> = Pin<Box<dyn Future<Output = (OwnedReadHalf<S>, io::Result<usize>, Vec<u8>)>>>;
type WriteOp<S> = Pin<Box<dyn Future<Output = (OwnedWriteHalf<S>, io::Result<()>, Vec<u8>)>>>;
type ShutdownOp<S> = Pin<Box<dyn Future<Output = (OwnedWriteHalf<S>, io::Result<()>)>>>;

/// A monoio stream as a tokio `AsyncRead + AsyncWrite`.
pub(crate) struct PollIo<S: AsyncWriteRent> {
    reader: Option<OwnedReadHalf<S>>,
    read_op: Option<ReadOp<S>>,
    rbuf: Vec<u8>,
    rpos: usize,
    writer: Option<OwnedWriteHalf<S>>,
    write_op: Option<WriteOp<S>>,
    shutdown_op: Option<ShutdownOp<S>>,
    /// Writes taken and not yet submitted.
    wbuf: Vec<u8>,
    /// The buffer of the last completed write, reused for the next.
    spare: Vec<u8>,
}

impl<S: AsyncReadRent + AsyncWriteRent + Split + 'static> PollIo<S> {
    pub(crate) fn new(stream: S) -> PollIo<S> {
        let (reader, writer) = stream.into_split();
        PollIo {
            reader: Some(reader),
            read_op: None,
            rbuf: Vec::with_capacity(READ_SIZE),
            rpos: 0,
            writer: Some(writer),
            write_op: None,
            shutdown_op: None,
            wbuf: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Drives the write in flight; when none is (or it just ended), submits
    /// what is buffered. Ready when nothing is left to write.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(op) = &mut self.write_op {
                let (half, r, mut buf) = std::task::ready!(op.as_mut().poll(cx));
                self.write_op = None;
                self.writer = Some(half);
                buf.clear();
                self.spare = buf;
                r?;
            }
            if self.wbuf.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let Some(mut half) = self.writer.take() else {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the stream is shut down")));
            };
            let buf = std::mem::replace(&mut self.wbuf, std::mem::take(&mut self.spare));
            self.write_op = Some(Box::pin(async move {
                let (r, buf) = half.write_all(buf).await;
                (half, r.map(|_| ()), buf)
            }));
        }
    }
}

impl<S: AsyncReadRent + AsyncWriteRent + Split + 'static> tokio::io::AsyncRead for PollIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.rpos < this.rbuf.len() {
                let n = (this.rbuf.len() - this.rpos).min(out.remaining());
                out.put_slice(&this.rbuf[this.rpos..this.rpos + n]);
                this.rpos += n;
                return Poll::Ready(Ok(()));
            }
            if this.read_op.is_none() {
                let Some(mut half) = this.reader.take() else { return Poll::Ready(Ok(())) };
                let mut buf = std::mem::take(&mut this.rbuf);
                buf.clear();
                this.rpos = 0;
                this.read_op = Some(Box::pin(async move {
                    let (r, buf) = half.read(buf).await;
                    (half, r, buf)
                }));
            }
            let Some(op) = &mut this.read_op else { unreachable!("armed above") };
            let (half, r, buf) = std::task::ready!(op.as_mut().poll(cx));
            this.read_op = None;
            this.reader = Some(half);
            this.rbuf = buf;
            if r? == 0 {
                // The end of the stream: nothing put in `out`.
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncReadRent + AsyncWriteRent + Split + 'static> tokio::io::AsyncWrite for PollIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.wbuf.len() >= WRITE_HIGH {
            // Back-pressure: submit, and take more once the kernel has it.
            std::task::ready!(this.poll_drain(cx))?;
        }
        if this.wbuf.capacity() == 0 {
            this.wbuf.reserve(READ_SIZE);
        }
        this.wbuf.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        if this.shutdown_op.is_none() {
            let Some(mut half) = this.writer.take() else { return Poll::Ready(Ok(())) };
            this.shutdown_op = Some(Box::pin(async move {
                let r = half.shutdown().await;
                (half, r)
            }));
        }
        let Some(op) = &mut this.shutdown_op else { unreachable!("armed above") };
        let (half, r) = std::task::ready!(op.as_mut().poll(cx));
        this.shutdown_op = None;
        this.writer = Some(half);
        Poll::Ready(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn slices_written_between_flushes_leave_in_one_write_and_reads_come_back_whole() {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().expect("runtime");
        rt.block_on(async {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let peer = monoio::spawn(async move {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut got = Vec::new();
                loop {
                    let (r, buf) = s.read(Vec::with_capacity(64 * 1024)).await;
                    match r {
                        Ok(0) | Err(_) => break,
                        Ok(_) => got.push(buf),
                    }
                    if got.iter().map(Vec::len).sum::<usize>() >= 9 + 100_000 {
                        break;
                    }
                }
                let (r, _) = s.write_all(b"pong".to_vec()).await;
                r.expect("write");
                got
            });
            let s = monoio::net::TcpStream::connect_addr(addr).await.expect("connect");
            let mut io = PollIo::new(s);
            let payload = vec![7u8; 100_000];
            io.write_all(b"123456789").await.expect("header");
            io.write_all(&payload).await.expect("payload");
            io.flush().await.expect("flush");
            let mut pong = [0u8; 4];
            io.read_exact(&mut pong).await.expect("read");
            assert_eq!(&pong, b"pong");
            let got = peer.await;
            let all: Vec<u8> = got.concat();
            assert_eq!(&all[..9], b"123456789");
            assert_eq!(&all[9..], &payload[..]);
            assert!(got[0].len() > 9, "the header left with its payload, not alone");
        });
    }
}
