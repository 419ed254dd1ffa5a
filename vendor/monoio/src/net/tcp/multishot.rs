//! (ringgate addition) A TCP stream's receive side as one multishot
//! receive (see `driver/uring/multishot.rs`): armed once, re-armed only when
//! the kernel ends it (end of stream, an error, the buffer ring running dry,
//! or too many completions left untaken). Reads copy from the provided
//! buffers into the caller's buffer and hand each provided buffer back as
//! soon as it is empty.
//!
//! Multishot receives pay off for small messages (request and response
//! heads, small bodies); a bulk transfer would come in 4 KiB pieces, one
//! completion and one copy each, where one plain receive takes 64 KiB. So a
//! completion that fills a whole buffer switches the stream to plain
//! receives (the multishot receive is cancelled and drained first, keeping
//! the bytes in order), and a plain receive that returns less than a
//! buffer's worth switches it back.

use std::{
    cell::UnsafeCell,
    io,
    os::unix::prelude::RawFd,
    rc::Rc,
    task::{Context, Poll},
};

use crate::driver::{Inner, UringInner, CURRENT};

/// A provided buffer's size: a completion this large means bulk data.
pub(crate) const BULK: usize = 4096;

pub(crate) struct RecvMulti {
    driver: Rc<UnsafeCell<UringInner>>,
    fd: RawFd,
    /// The armed (or ended, not yet drained) operation's slab index.
    index: Option<usize>,
    /// A provided buffer partly copied out: (buffer id, offset, length).
    current: Option<(u16, usize, usize)>,
    /// Bulk data seen: the operation is cancelled, and once drained reads
    /// go plain.
    stopping: bool,
    /// Reads are plain receives until one returns less than `BULK` bytes.
    plain: bool,
    /// Released to a caller that moves the socket's bytes itself (see
    /// `poll_release`): reads stay plain receives, whatever their length,
    /// until `resume` arms the multishot receive again.
    held: bool,
}

impl RecvMulti {
    /// `None` outside an io_uring runtime, or when the kernel has no
    /// provided-buffer rings.
    pub(crate) fn new(fd: RawFd) -> Option<Self> {
        if !CURRENT.is_set() {
            return None;
        }
        CURRENT.with(|inner| match inner {
            Inner::Uring(this) if UringInner::ensure_buf_ring(this).is_ok() => Some(RecvMulti {
                driver: this.clone(),
                fd,
                index: None,
                current: None,
                stopping: false,
                plain: false,
                held: false,
            }),
            #[allow(unreachable_patterns)]
            _ => None,
        })
    }

    /// Whether the receive side was released (`poll_release`) and not
    /// resumed since.
    pub(crate) fn held(&self) -> bool {
        self.held
    }

    /// Whether bytes, the end of the stream or an error were received and not
    /// read yet.
    pub(crate) fn pending(&self) -> bool {
        self.current.is_some()
            || self
                .index
                .is_some_and(|i| UringInner::recv_multi_queued(&self.driver, i))
    }

    /// Ready(true) once a read would find something without waiting:
    /// received bytes, the end of the stream, an error, or the operation
    /// ended (the read arms a new one). Ready(false) at once when reads are
    /// plain receives (a bulk transfer): only a read can wait then.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.current.is_some() {
            return Poll::Ready(Ok(true));
        }
        if self.plain || self.stopping {
            return Poll::Ready(Ok(false));
        }
        let index = match self.index {
            Some(i) => i,
            None => {
                let i = UringInner::arm_recv_multi(&self.driver, self.fd)?;
                self.index = Some(i);
                i
            }
        };
        UringInner::poll_recv_multi_ready(&self.driver, index, cx).map(|()| Ok(true))
    }

    /// Copies from the current buffer, then from further received buffers
    /// already queued, while `dst` has room: one read takes everything that
    /// has arrived, as a plain receive would, rather than 4 KiB at a time.
    fn fill(&mut self, dst: &mut [u8]) -> usize {
        let mut total = 0;
        while let Some((bid, offset, len)) = self.current {
            let n = UringInner::copy_from_buf(&self.driver, bid, offset, len, &mut dst[total..]);
            total += n;
            if offset + n < len {
                self.current = Some((bid, offset + n, len));
                break;
            }
            self.current = None;
            UringInner::recycle_buf(&self.driver, bid);
            if total == dst.len() {
                break;
            }
            let Some(index) = self.index else { break };
            if let Some((n, bid)) = UringInner::pop_recv_multi_data(&self.driver, index) {
                self.take(index, bid, n);
            }
        }
        total
    }

    /// Makes buffer `bid` with `n` bytes current; a full one is bulk data.
    fn take(&mut self, index: usize, bid: u16, n: usize) {
        self.current = Some((bid, 0, n));
        if n >= BULK && !self.stopping {
            self.stopping = true;
            // Safety: `index` is this stream's live multishot operation.
            unsafe { UringInner::cancel_op(&self.driver, index) };
        }
    }

    /// Called after a plain receive (see `poll_recv`) returned `n` bytes:
    /// fewer than a provided buffer holds means the bulk transfer is over,
    /// and the multishot receive is armed again at once, so that an idle
    /// connection has one. (Re-arming on any short read instead was measured
    /// to cost more: on loopback, bulk reads are often short.)
    pub(crate) fn after_plain(&mut self, n: usize) {
        if self.plain && !self.held && n < BULK {
            self.resume();
        }
    }

    /// Makes sure a multishot receive is armed, whatever a bulk transfer or
    /// a throttle left behind (plain receives, or an ended operation), so
    /// that an idle stream sees its peer's next bytes or close. Leaves things
    /// as they are while received input waits (`pending` says so). The
    /// caller must have no plain receive in flight.
    pub(crate) fn resume(&mut self) {
        if self.current.is_some() {
            return;
        }
        if let Some(i) = self.index {
            if !UringInner::recv_multi_ended(&self.driver, i) {
                // Still armed; if a bulk transfer's cancel is in flight, the
                // operation goes on once the cancel has ended it.
                if self.stopping && UringInner::rearm_recv_multi(&self.driver, i, self.fd) {
                    self.stopping = false;
                }
                return;
            }
            if UringInner::recv_multi_queued(&self.driver, i) {
                return;
            }
            UringInner::release_recv_multi(&self.driver, i);
            self.index = None;
        }
        self.stopping = false;
        self.plain = false;
        self.held = false;
        if let Ok(i) = UringInner::arm_recv_multi(&self.driver, self.fd) {
            self.index = Some(i);
        }
    }

    /// Ends the multishot receive for a caller that will move the stream's
    /// bytes itself (see `TcpStream::release_multishot`): cancels it (and
    /// any re-arm a bulk transfer asked for), copies what it had received
    /// into `dst` (`Ok(Some(n))`, 0 at the end of the stream), and once it
    /// has ended with nothing left, answers `Ok(None)` with reads switched to
    /// plain receives, so that nothing takes the socket's bytes any more.
    /// They stay plain (`held`) until `resume`: a short read does not arm
    /// the multishot receive again, so the next message's body is still in
    /// the socket when its head has been read.
    pub(crate) fn poll_release(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<io::Result<Option<usize>>> {
        loop {
            if self.current.is_some() {
                if dst.is_empty() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "no room to copy received bytes into",
                    )));
                }
                return Poll::Ready(Ok(Some(self.fill(dst))));
            }
            let Some(index) = self.index else {
                self.stopping = false;
                self.plain = true;
                self.held = true;
                return Poll::Ready(Ok(None));
            };
            if !self.plain {
                // `plain` marks the cancel as sent for this release; the
                // loop ends with it set either way.
                self.plain = true;
                self.stopping = true;
                UringInner::forget_rearm(&self.driver, index);
                if !UringInner::recv_multi_ended(&self.driver, index) {
                    // Safety: `index` is this stream's live multishot operation.
                    unsafe { UringInner::cancel_op(&self.driver, index) };
                }
            }
            match UringInner::poll_recv_multi(&self.driver, index, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    UringInner::release_recv_multi(&self.driver, index);
                    self.index = None;
                }
                Poll::Ready(Some((Ok(0), _))) => return Poll::Ready(Ok(Some(0))),
                Poll::Ready(Some((Ok(n), flags))) => match io_uring::cqueue::buffer_select(flags) {
                    Some(bid) => self.current = Some((bid, 0, n as usize)),
                    None => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::Other,
                            "multishot receive completed without a buffer",
                        )))
                    }
                },
                // Its own cancel, or the ring running dry: it has ended.
                Poll::Ready(Some((Err(e), _)))
                    if matches!(e.raw_os_error(), Some(libc::ECANCELED | libc::ENOBUFS)) => {}
                Poll::Ready(Some((Err(e), _))) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Copies the next received bytes into `dst`: `Ok(Some(n))`, with 0 at
    /// the end of the stream. `Ok(None)`: the caller must receive the next
    /// bytes with a plain receive (bulk data, or the ring had no buffer), then
    /// report its length to `after_plain`; nothing was lost or reordered.
    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<io::Result<Option<usize>>> {
        if dst.is_empty() {
            return Poll::Ready(Ok(Some(0)));
        }
        if self.plain {
            return Poll::Ready(Ok(None));
        }
        loop {
            if self.current.is_some() {
                return Poll::Ready(Ok(Some(self.fill(dst))));
            }
            let index = match self.index {
                Some(i) => i,
                None if self.stopping => {
                    // Cancelled and drained: plain receives from here on.
                    self.stopping = false;
                    self.plain = true;
                    return Poll::Ready(Ok(None));
                }
                None => {
                    let i = UringInner::arm_recv_multi(&self.driver, self.fd)?;
                    self.index = Some(i);
                    i
                }
            };
            match UringInner::poll_recv_multi(&self.driver, index, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    // Ended and drained: free it; the loop arms a new one.
                    UringInner::release_recv_multi(&self.driver, index);
                    self.index = None;
                }
                Poll::Ready(Some((Ok(0), _))) => return Poll::Ready(Ok(Some(0))),
                Poll::Ready(Some((Ok(n), flags))) => match io_uring::cqueue::buffer_select(flags) {
                    Some(bid) => self.take(index, bid, n as usize),
                    None => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::Other,
                            "multishot receive completed without a buffer",
                        )))
                    }
                },
                // Cancelled because too many completions waited: re-armed
                // once those are taken.
                Poll::Ready(Some((Err(e), _))) if e.raw_os_error() == Some(libc::ECANCELED) => {}
                // The ring had no buffer (the operation ended): this read is
                // plain, the next one arms a new multishot receive.
                Poll::Ready(Some((Err(e), _))) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Poll::Ready(Ok(None))
                }
                Poll::Ready(Some((Err(e), _))) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Drop for RecvMulti {
    fn drop(&mut self) {
        if let Some((bid, _, _)) = self.current.take() {
            UringInner::recycle_buf(&self.driver, bid);
        }
        if let Some(index) = self.index.take() {
            UringInner::release_recv_multi(&self.driver, index);
        }
    }
}

impl std::fmt::Debug for RecvMulti {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvMulti")
            .field("fd", &self.fd)
            .field("index", &self.index)
            .finish()
    }
}
