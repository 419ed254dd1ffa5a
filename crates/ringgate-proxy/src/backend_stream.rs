//! A connection to a backend server: plain TCP, or TLS over TCP for
//! `protocol = "https"` settings. One type for both, so the exchange code and
//! the connection pool do not care which.

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::net::TcpStream;

/// A backend connection's byte stream.
#[derive(Debug)]
pub(crate) enum BackendStream {
    Plain(TcpStream),
    Tls(Box<monoio_rustls::ClientTlsStream<TcpStream>>),
}

// SAFETY: both variants are `Split` (monoio's TcpStream, and monoio-rustls'
// stream over a `Split` I/O), so reads and writes may run concurrently on
// either; the enum adds no shared state of its own.
#[allow(unsafe_code)]
unsafe impl Split for BackendStream {}

impl BackendStream {
    /// Whether the backend sent something (bytes, its end of the stream, an
    /// error) that was not read: on an idle pooled connection, a sign that
    /// it is dead. Known for plain connections: from the multishot receive
    /// without a system call (see `io::prepare_stream`), or with a peek at
    /// the socket when its receive side was left released after a spliced
    /// body; false for TLS.
    pub(crate) fn pending_input(&self) -> bool {
        match self {
            BackendStream::Plain(s) if s.multishot_released() => crate::splice::input_waiting(s),
            BackendStream::Plain(s) => s.multishot_pending(),
            BackendStream::Tls(_) => false,
        }
    }
}

impl AsyncReadRent for BackendStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            BackendStream::Plain(s) => s.read(buf).await,
            BackendStream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            BackendStream::Plain(s) => s.readv(buf).await,
            BackendStream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for BackendStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            BackendStream::Plain(s) => s.write(buf).await,
            BackendStream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            BackendStream::Plain(s) => s.writev(buf).await,
            BackendStream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            BackendStream::Plain(s) => s.flush().await,
            BackendStream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            BackendStream::Plain(s) => s.shutdown().await,
            BackendStream::Tls(s) => s.shutdown().await,
        }
    }
}
