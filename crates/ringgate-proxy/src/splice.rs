//! Bulk bodies between two plain TCP sockets without copying them through
//! user space: splice(2) from the source socket into a pipe, and from the
//! pipe into the destination socket, as HAProxy's `option splice-response`
//! does. The kernel moves page references; the bytes are never read.
//!
//! Why splice(2) calls and not io_uring's `IORING_OP_SPLICE`: the kernel runs
//! every io_uring splice in an io-wq worker thread (io_uring/splice.c forces
//! them async), a thread hop per operation; a non-blocking splice(2) after
//! io_uring says the socket is ready costs one system call on the worker's
//! own thread. Readiness is awaited through the worker's ring (a poll).
//!
//! A socket whose multishot receive is on must hand its receive side over
//! first (`TcpStream::release_multishot`), so that nothing takes the bytes
//! meant for the pipe; the exchange does that, and arms it again after.
//!
//! Framing is the caller's: [`relay`] moves exactly the `len` bytes it is
//! given and never reads beyond them, so a backend that sends more than its
//! Content-Length leaves the rest in its socket, where [`unread_bytes`] sees
//! it and the connection is discarded.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::io::Timer;

/// Pipes kept per worker between bodies; more are closed when they come back.
const POOLED_PIPES: usize = 16;

/// One pipe, both ends, with the capacity the kernel granted.
#[derive(Debug)]
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// A new pipe of about `size` bytes (F_SETPIPE_SZ; the kernel's default
    /// stays when the size is refused, e.g. above pipe-max-size).
    #[allow(unsafe_code)]
    fn new(size: u32) -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just opened and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on an open pipe; F_SETPIPE_SZ returns the new
        // capacity, F_GETPIPE_SZ the current one.
        let granted = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
        let capacity = if granted > 0 {
            granted as usize
        } else {
            // SAFETY: as above.
            let current = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
            if current > 0 { current as usize } else { 64 * 1024 }
        };
        Ok(Pipe { read, write, capacity })
    }
}

impl Pipe {
    /// How many bytes the pipe holds.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Reads back what is in the pipe (a prefill that a refused splice did
    /// not deliver), appending it to `out`; the pipe is empty after.
    #[allow(unsafe_code)]
    pub(crate) fn take_back(&self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            out.reserve(16 * 1024);
            let spare = out.capacity() - out.len();
            // SAFETY: read(2) into the vector's spare capacity, then only
            // the bytes it wrote are marked initialised.
            let n = unsafe { libc::read(self.read.as_raw_fd(), out.as_mut_ptr().add(out.len()).cast(), spare) };
            match n {
                0 => return Ok(()),
                n if n > 0 => unsafe { out.set_len(out.len() + n as usize) },
                _ => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return Ok(()),
                        io::ErrorKind::Interrupted => {}
                        _ => return Err(e),
                    }
                }
            }
        }
    }
}

/// A worker's spare pipes: a body borrows one and gives it back empty.
#[derive(Debug, Default)]
pub(crate) struct PipePool {
    free: std::cell::RefCell<Vec<Pipe>>,
}

impl PipePool {
    /// A pipe of about `size` bytes: a spare one, or a new one.
    pub(crate) fn take(&self, size: u32) -> io::Result<Pipe> {
        if refusal_forced() == Some(Refusal::NoPipe) {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        let spare = self.free.borrow_mut().pop();
        match spare {
            Some(p) => Ok(p),
            None => Pipe::new(size),
        }
    }

    /// Takes back a pipe that [`relay`] emptied. One that may still hold
    /// bytes (a relay that failed) must be dropped instead, closing it.
    pub(crate) fn give(&self, pipe: Pipe) {
        let mut free = self.free.borrow_mut();
        if free.len() < POOLED_PIPES {
            free.push(pipe);
        }
    }

    #[cfg(test)]
    pub(crate) fn spare(&self) -> usize {
        self.free.borrow().len()
    }
}

/// How a splice relay ended early.
#[derive(Debug)]
pub(crate) enum SpliceFail {
    /// The kernel does not splice these sockets (EINVAL, ENOSYS,
    /// EOPNOTSUPP on the first call); nothing was moved and the pipe is
    /// empty: copy instead.
    Refused(io::Error),
    /// The source ended (0 bytes) before `len` bytes.
    SourceClosed,
    SourceTimedOut,
    Source(io::Error),
    DestinationTimedOut,
    Destination(io::Error),
}

/// A refusal forced for tests (`RINGGATE_SPLICE_REFUSE`), so that the copy
/// fallback runs on a kernel that splices: `einval` makes the first splice
/// of every body fail as a kernel without socket splicing does, `no-pipe`
/// makes every pipe creation fail as at the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Einval,
    NoPipe,
}

fn refusal_forced() -> Option<Refusal> {
    static FORCED: std::sync::OnceLock<Option<Refusal>> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| match std::env::var("RINGGATE_SPLICE_REFUSE").as_deref() {
        Ok("einval") => Some(Refusal::Einval),
        Ok("no-pipe") => Some(Refusal::NoPipe),
        _ => None,
    })
}

/// Whether an error on the first splice means the kernel cannot splice
/// these descriptors at all (rather than a failing peer).
fn is_refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP))
}

#[allow(unsafe_code)]
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: splice(2) between two open descriptors without offsets; it
    // touches no memory of ours.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// How long [`relay`] waits, each time, for the source to have bytes
/// (`read`) and for the destination to take them (`write`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waits {
    pub(crate) read: Duration,
    pub(crate) write: Duration,
}

/// Moves `prefill` (bytes already in user space: a message head, the start
/// of its body), then exactly `len` bytes from `from`, to `to` through
/// `pipe`, and never reads past them. The prefill is written into the pipe
/// ahead of the body, so head and body leave in one splice rather than a
/// send and a splice (on loopback each send also pays for the peer's
/// receive). Each wait for the source
/// is bounded by `waits.read`, each wait for the destination by
/// `waits.write`. `moved` counts the bytes delivered to `to` as they go,
/// prefill included, for the access log. On success the pipe is empty. On
/// `Refused` nothing was delivered: whatever of the prefill went into the
/// pipe is to be taken back with [`Pipe::take_back`].
#[allow(clippy::too_many_arguments)]
pub(crate) async fn relay(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    prefill: &[u8],
    len: u64,
    timer: &mut Timer,
    waits: Waits,
    moved: &mut u64,
) -> Result<(), SpliceFail> {
    let (src, dst) = (from.as_raw_fd(), to.as_raw_fd());
    // An accepted socket may be blocking (io_uring needs no O_NONBLOCK); a
    // splice on it would block the worker's thread.
    set_nonblocking(src).map_err(SpliceFail::Source)?;
    set_nonblocking(dst).map_err(SpliceFail::Destination)?;
    let mut left = len;
    let mut in_pipe = 0usize;
    let mut first = true;
    let mut prefill = prefill;
    while !prefill.is_empty() || left > 0 || in_pipe > 0 {
        if !prefill.is_empty() && in_pipe < pipe.capacity {
            match write_pipe(&pipe.write, prefill) {
                Ok(n) => {
                    in_pipe += n;
                    prefill = &prefill[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SpliceFail::Destination(e)),
            }
        }
        // Fill the pipe with what the source has, up to what is owed.
        let mut filled = false;
        if prefill.is_empty() && left > 0 && in_pipe < pipe.capacity {
            let want = (pipe.capacity - in_pipe).min(usize::try_from(left).unwrap_or(usize::MAX));
            let r = if first && refusal_forced() == Some(Refusal::Einval) {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                splice(src, pipe.write.as_raw_fd(), want)
            };
            match r {
                Ok(0) => return Err(SpliceFail::SourceClosed),
                Ok(n) => {
                    in_pipe += n;
                    left -= n as u64;
                    filled = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if first && is_refusal(&e) => return Err(SpliceFail::Refused(e)),
                Err(e) => return Err(SpliceFail::Source(e)),
            }
            first = false;
        }
        if in_pipe == 0 && prefill.is_empty() {
            // Nothing to pass on: wait for the source.
            let deadline = Instant::now() + waits.read;
            match timer.bound(deadline, from.readable(false)).await {
                Some(Ok(())) => continue,
                Some(Err(e)) => return Err(SpliceFail::Source(e)),
                None => return Err(SpliceFail::SourceTimedOut),
            }
        }
        // Drain the pipe into the destination.
        match splice(pipe.read.as_raw_fd(), dst, in_pipe) {
            Ok(n) => {
                in_pipe -= n;
                *moved += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if (filled || !prefill.is_empty()) && left > 0 && in_pipe < pipe.capacity {
                    // The source may have more for the pipe meanwhile.
                    continue;
                }
                let deadline = Instant::now() + waits.write;
                match timer.bound(deadline, to.writable(false)).await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => return Err(SpliceFail::Destination(e)),
                    None => return Err(SpliceFail::DestinationTimedOut),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SpliceFail::Destination(e)),
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn write_pipe(pipe: &OwnedFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: write(2) from a slice of ours into an open pipe.
    let n = unsafe { libc::write(pipe.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

#[allow(unsafe_code)]
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl flag calls on an open descriptor.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_NONBLOCK == 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Bytes received on `stream` and not read (FIONREAD): after a spliced
/// body, anything here is more than the peer's Content-Length promised.
#[allow(unsafe_code)]
pub(crate) fn unread_bytes(stream: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD on an open socket writes one int.
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    if r < 0 { 0 } else { n.max(0) as usize }
}

/// Whether `stream` has input a read would return at once: bytes, or its
/// peer's close (a non-blocking one-byte peek; an error counts too). For an
/// idle pooled connection whose multishot receive was released, where the
/// receive ring cannot say.
#[allow(unsafe_code)]
pub(crate) fn input_waiting(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv(2) with MSG_PEEK into one byte of our own.
    let r = unsafe {
        libc::recv(stream.as_raw_fd(), (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT)
    };
    r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>> {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().enable_timer().build().expect("io_uring runtime")
    }

    /// Two connected pairs: (source writer, source reader) and
    /// (destination writer, destination reader).
    async fn pairs() -> (TcpStream, TcpStream, TcpStream, TcpStream) {
        let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let a = TcpStream::connect_addr(addr).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        let c = TcpStream::connect_addr(addr).await.unwrap();
        let (d, _) = l.accept().await.unwrap();
        (a, b, c, d)
    }

    fn pattern(n: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn exactly_len_bytes_arrive_and_the_rest_stays_unread() {
        runtime().block_on(async {
            let (mut w, r, c, mut d) = pairs().await;
            let body = pattern(300_000);
            let mut sent = body.clone();
            sent.extend_from_slice(b"EXTRA");
            let writer = monoio::spawn(async move {
                let (res, _) = w.write_all(sent).await;
                res.unwrap();
                w
            });
            let pool = PipePool::default();
            let pipe = pool.take(64 * 1024).unwrap();
            let mut timer = Timer::new();
            let mut moved = 0;
            let t = Duration::from_secs(5);
            let reader = monoio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < 300_000 {
                    let (res, buf) = d.read(Vec::with_capacity(65536)).await;
                    assert!(res.unwrap() > 0);
                    got.extend_from_slice(&buf);
                }
                got
            });
            relay(&r, &c, &pipe, &[], body.len() as u64, &mut timer, Waits { read: t, write: t }, &mut moved)
                .await
                .unwrap();
            assert_eq!(moved, body.len() as u64);
            let got = reader.await;
            assert!(got == body, "the bytes arrive as sent");
            let _w = writer.await;
            monoio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(unread_bytes(&r), 5, "what follows the length is left in the socket");
            pool.give(pipe);
            assert_eq!(pool.spare(), 1);
        });
    }

    /// A prefill (a head already in user space) leaves first, then the
    /// body, in order; and a pipe holding a prefill gives it back.
    #[test]
    fn a_prefill_goes_out_before_the_spliced_bytes() {
        runtime().block_on(async {
            let (mut w, r, c, mut d) = pairs().await;
            let body = pattern(200_000);
            let sent = body.clone();
            let writer = monoio::spawn(async move { w.write_all(sent).await.0.unwrap() });
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n".to_vec();
            let want = [head.clone(), body.clone()].concat();
            let total = want.len();
            let reader = monoio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < total {
                    let (res, buf) = d.read(Vec::with_capacity(65536)).await;
                    assert!(res.unwrap() > 0);
                    got.extend_from_slice(&buf);
                }
                got
            });
            let pipe = PipePool::default().take(65536).unwrap();
            let (mut moved, t) = (0, Duration::from_secs(5));
            let waits = Waits { read: t, write: t };
            relay(&r, &c, &pipe, &head, body.len() as u64, &mut Timer::new(), waits, &mut moved).await.unwrap();
            assert_eq!(moved, total as u64);
            assert!(reader.await == want, "head, then body");
            writer.await;
            // A prefill left in a pipe comes back out whole.
            assert_eq!(write_pipe(&pipe.write, b"not delivered").unwrap(), 13);
            let mut back = b"x".to_vec();
            pipe.take_back(&mut back).unwrap();
            assert_eq!(&back[..], b"xnot delivered");
        });
    }

    #[test]
    fn a_source_that_closes_early_is_an_error_not_a_short_body() {
        runtime().block_on(async {
            let (mut w, r, c, _d) = pairs().await;
            let (res, _) = w.write_all(pattern(1000)).await;
            res.unwrap();
            drop(w);
            let pipe = PipePool::default().take(65536).unwrap();
            let mut moved = 0;
            let t = Duration::from_secs(5);
            let r = relay(&r, &c, &pipe, &[], 5000, &mut Timer::new(), Waits { read: t, write: t }, &mut moved).await;
            assert!(matches!(r, Err(SpliceFail::SourceClosed)), "{r:?}");
            assert_eq!(moved, 1000);
        });
    }

    #[test]
    fn a_stalled_source_times_out() {
        runtime().block_on(async {
            let (_w, r, c, _d) = pairs().await;
            let pipe = PipePool::default().take(65536).unwrap();
            let mut moved = 0;
            let r = relay(
                &r,
                &c,
                &pipe,
                &[],
                10,
                &mut Timer::new(),
                Waits { read: Duration::from_millis(100), write: Duration::from_secs(5) },
                &mut moved,
            )
            .await;
            assert!(matches!(r, Err(SpliceFail::SourceTimedOut)), "{r:?}");
        });
    }

    #[test]
    fn a_destination_that_does_not_read_times_out() {
        runtime().block_on(async {
            let (mut w, r, c, _d) = pairs().await;
            let writer = monoio::spawn(async move {
                let _ = w.write_all(pattern(64 << 20)).await;
            });
            let pipe = PipePool::default().take(65536).unwrap();
            let mut moved = 0;
            let res = relay(
                &r,
                &c,
                &pipe,
                &[],
                64 << 20,
                &mut Timer::new(),
                Waits { read: Duration::from_secs(5), write: Duration::from_millis(200) },
                &mut moved,
            )
            .await;
            assert!(matches!(res, Err(SpliceFail::DestinationTimedOut)), "{res:?}");
            assert!(moved > 0 && moved < 64 << 20, "{moved}");
            drop(r);
            writer.await;
        });
    }
}
