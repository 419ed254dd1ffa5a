//! (ringgate addition) Multishot receives into a provided-buffer ring.
//!
//! A plain `IORING_OP_RECV` on a socket with nothing to read fails once,
//! arms a poll, and is issued again when data comes: per receive, one
//! submission, one failed attempt, one poll armed and disarmed. A multishot
//! receive is submitted once per socket and stays armed; each arrival of data
//! is received straight into a buffer the kernel takes from a ring this
//! driver registered (`IORING_REGISTER_PBUF_RING`), and posts one completion
//! carrying the buffer's id.
//!
//! The completions of one multishot operation queue up in its slab entry
//! ([`MultiState`]) until its owner takes them; the owner copies the bytes
//! out and hands the buffer back to the ring at once, so the ring's size
//! bounds only the data received and not yet taken, never the number of
//! connections.

use std::{
    collections::VecDeque,
    io,
    sync::atomic::{AtomicU16, Ordering},
    task::Waker,
};

/// Size of each provided buffer.
pub(crate) const BUF_SIZE: usize = 4096;
/// Number of provided buffers (a power of two, at most 32768).
pub(crate) const RING_ENTRIES: u16 = 1024;
/// The buffer group id the multishot receives select from.
pub(crate) const BUF_GROUP: u16 = 0x7267; // "rg"

/// The submission of a multishot receive on `fd` into the buffer ring, for
/// slab entry `index`.
pub(crate) fn recv_multi_sqe(
    fd: std::os::unix::prelude::RawFd,
    index: usize,
) -> io_uring::squeue::Entry {
    io_uring::opcode::RecvMulti::new(io_uring::types::Fd(fd), BUF_GROUP)
        .build()
        .user_data(index as u64)
}

/// Completions one multishot receive may hold untaken before it is
/// cancelled, so that a connection whose reader is busy exerts TCP
/// back-pressure instead of draining the ring; its owner re-arms it once it
/// has taken them.
pub(crate) const MAX_QUEUED: usize = 8;

/// What the driver must do after recording a completion.
pub(crate) enum MultiAction {
    None,
    /// Hand this buffer back to the ring (its operation's owner is gone).
    Recycle(u16),
    /// Cancel the operation (too many completions queued).
    Cancel,
    /// Submit the operation again on this fd (see `MultiState::rearm`).
    Rearm(std::os::unix::prelude::RawFd),
}

/// The state of one multishot operation in the slab.
pub(crate) struct MultiState {
    /// Completions not yet taken by the owner: (result, cqe flags).
    pub(crate) queue: VecDeque<(io::Result<u32>, u32)>,
    pub(crate) waker: Option<Waker>,
    /// False once a completion without `IORING_CQE_F_MORE` arrived: the
    /// kernel will post nothing more for this operation.
    pub(crate) armed: bool,
    /// The owner is gone: buffers of later completions go straight back to
    /// the ring, and the final completion frees the slab entry.
    pub(crate) orphaned: bool,
    /// A cancel was sent because too many completions queued.
    pub(crate) throttled: bool,
    /// The owner wants the operation to go on after all: when the cancel in
    /// flight ends it, it is submitted again on this fd (same slab entry).
    pub(crate) rearm: Option<std::os::unix::prelude::RawFd>,
}

impl MultiState {
    pub(crate) fn new() -> Self {
        MultiState {
            queue: VecDeque::new(),
            waker: None,
            armed: true,
            orphaned: false,
            throttled: false,
            rearm: None,
        }
    }
}

/// The ring of provided buffers shared with the kernel: `RING_ENTRIES`
/// entries of `struct io_uring_buf` and the buffers they point at.
pub(crate) struct BufRing {
    entries: *mut u8,
    bufs: Box<[u8]>,
    tail: u16,
}

impl BufRing {
    /// Allocates the ring and registers it with `uring`.
    pub(crate) fn register(uring: &io_uring::IoUring) -> io::Result<BufRing> {
        let layout = std::alloc::Layout::from_size_align(RING_ENTRIES as usize * 16, 4096)
            .map_err(|e| io::Error::new(io::ErrorKind::Other, e.to_string()))?;
        // Safety: the layout's size is not zero.
        let entries = unsafe { std::alloc::alloc_zeroed(layout) };
        if entries.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "provided-buffer ring",
            ));
        }
        let mut ring = BufRing {
            entries,
            bufs: vec![0u8; BUF_SIZE * RING_ENTRIES as usize].into_boxed_slice(),
            tail: 0,
        };
        // Safety: `entries` and `bufs` live, unmoved, as long as this value,
        // which the driver drops only after the ring is gone.
        unsafe {
            uring
                .submitter()
                .register_buf_ring(entries as u64, RING_ENTRIES, BUF_GROUP)?
        };
        for bid in 0..RING_ENTRIES {
            ring.stage(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// The first `len` bytes of buffer `bid`.
    pub(crate) fn data(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * BUF_SIZE;
        &self.bufs[start..start + len.min(BUF_SIZE)]
    }

    /// Hands buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        if bid < RING_ENTRIES {
            self.stage(bid);
            self.publish();
        }
    }

    fn stage(&mut self, bid: u16) {
        let idx = (self.tail & (RING_ENTRIES - 1)) as usize;
        let addr = self.bufs.as_ptr() as u64 + bid as u64 * BUF_SIZE as u64;
        // Safety: idx < RING_ENTRIES, so the 16-byte entry is inside the
        // allocation. `struct io_uring_buf` is { u64 addr; u32 len; u16 bid;
        // u16 resv }; `resv` is not written, as entry 0's holds the tail.
        unsafe {
            let e = self.entries.add(idx * 16);
            (e as *mut u64).write(addr);
            (e.add(8) as *mut u32).write(BUF_SIZE as u32);
            (e.add(12) as *mut u16).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // Safety: offset 14 of the ring is the tail the kernel reads with
        // acquire ordering; it is 2-byte aligned.
        let tail = unsafe { &*(self.entries.add(14) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // Deliberately leaked: the kernel tears a ring down asynchronously
        // after its fd closes, and a receive it has not cancelled yet could
        // still write into these buffers. It happens once per runtime that
        // used multishot receives, when that runtime ends.
        let bufs = std::mem::take(&mut self.bufs);
        std::mem::forget(bufs);
    }
}
