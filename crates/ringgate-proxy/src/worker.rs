//! A worker's state: its plan, its backend connection pool, its open client
//! connections, spare buffers, gauges. A worker is one thread with one monoio
//! io_uring runtime (see `runtime`), so everything here is single-threaded
//! (`Rc`, `Cell`, `RefCell`); the only shared reads are the plan (checked on
//! the housekeeping tick, not per request) and the servers' health states
//! (one atomic load per pick).

use std::cell::{Cell, RefCell};

use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use monoio::io::Canceller;
use ringgate_config::SocketKey;

use crate::conn_pool::ConnPool;
use crate::gateway::Shared;
use crate::local::LocalPlan;
use crate::metrics::WorkerGauges;

/// One worker's state, owned by its thread.
pub(crate) struct Worker {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub(crate) local: RefCell<Rc<LocalPlan>>,
    pub pool: RefCell<ConnPool>,
    pub gauges: Arc<CachePadded<WorkerGauges>>,
    conns: RefCell<ConnRegistry>,
    draining: Cell<bool>,
    /// The sockets this worker accepts on, and how to stop each.
    pub(crate) accepting: RefCell<Vec<(SocketKey, Canceller)>>,
    /// Spare output buffers, so a request borrows one instead of allocating.
    spare_bufs: RefCell<Vec<Vec<u8>>>,
    /// Spare large buffers for streaming bodies.
    body_bufs: RefCell<Vec<Vec<u8>>>,
    /// Spare pipes for spliced bodies (see `splice`).
    pub(crate) pipes: crate::splice::PipePool,
    /// Access log lines not yet handed to the writer.
    pub log_buf: RefCell<Vec<u8>>,
    /// Rewrite edits: one set per worker, as a head is rewritten without
    /// yielding.
    pub edits: RefCell<ringgate_rewrite::Edits>,
    /// Trace ids for requests that bring no valid `traceparent`.
    pub trace_ids: RefCell<ringgate_http::trace::TraceIds>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Open client connections: their fds and whether each is idle between
/// requests, so a drain can close the idle ones at once.
#[derive(Default)]
struct ConnRegistry {
    /// Per connection: its fd, whether it is idle, and (HTTP/2) the waker
    /// of its task, which a drain wakes to send GOAWAY.
    slots: Vec<Option<(RawFd, bool, Option<std::task::Waker>)>>,
    free: Vec<usize>,
    open: usize,
}

/// Keeps a client connection registered while it lives.
pub(crate) struct ConnGuard {
    worker: Rc<Worker>,
    slot: usize,
}

impl ConnGuard {
    /// Marks the connection idle (waiting for a next request) or busy.
    #[inline]
    pub fn set_idle(&self, idle: bool) {
        if let Some(Some(s)) = self.worker.conns.borrow_mut().slots.get_mut(self.slot) {
            s.1 = idle;
        }
    }

    /// Has a drain wake `waker` instead of closing the connection's read
    /// side (an HTTP/2 connection says GOAWAY and finishes its streams).
    pub fn wake_on_drain(&self, waker: &std::task::Waker) {
        if let Some(Some(s)) = self.worker.conns.borrow_mut().slots.get_mut(self.slot)
            && !s.2.as_ref().is_some_and(|w| w.will_wake(waker))
        {
            s.2 = Some(waker.clone());
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut r = self.worker.conns.borrow_mut();
        r.slots[self.slot] = None;
        r.free.push(self.slot);
        r.open -= 1;
        self.worker.gauges.client_connections.add(-1);
    }
}

/// Half-closes the read side of a socket, so a pending receive on it ends
/// with end-of-file. Used to release idle keep-alive connections on drain.
#[allow(unsafe_code)]
fn shutdown_read(fd: RawFd) {
    // SAFETY: `fd` is an open socket owned by a live connection task of this
    // thread (the registry drops its entry before that task closes the fd,
    // and nothing else runs on this thread in between); shutdown(2) does not
    // touch memory and at worst fails with an error we ignore.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
    }
}

/// A seed that differs per worker and per process start.
fn trace_seed(worker: usize) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    now ^ (u64::from(std::process::id()) << 32) ^ (worker as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl Worker {
    pub(crate) fn new(id: usize, shared: Arc<Shared>) -> Rc<Worker> {
        let plan = shared.plan();
        let gauges = shared.metrics.gauges(id);
        Rc::new(Worker {
            id,
            local: RefCell::new(Rc::new(LocalPlan::new(plan))),
            pool: RefCell::new(ConnPool::default()),
            gauges,
            conns: RefCell::new(ConnRegistry::default()),
            draining: Cell::new(false),
            accepting: RefCell::new(Vec::new()),
            spare_bufs: RefCell::new(Vec::new()),
            body_bufs: RefCell::new(Vec::new()),
            pipes: crate::splice::PipePool::default(),
            log_buf: RefCell::new(Vec::new()),
            edits: RefCell::new(ringgate_rewrite::Edits::new()),
            trace_ids: RefCell::new(ringgate_http::trace::TraceIds::new(trace_seed(id))),
            shared,
        })
    }

    /// The plan for a new request.
    #[inline]
    pub fn plan(&self) -> Rc<LocalPlan> {
        self.local.borrow().clone()
    }

    #[inline]
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Registers a client connection; `None` when the worker is at its limit.
    pub fn register(self: &Rc<Self>, fd: RawFd, max: usize) -> Option<ConnGuard> {
        let mut r = self.conns.borrow_mut();
        if r.open >= max {
            return None;
        }
        let entry = Some((fd, false, None));
        let slot = match r.free.pop() {
            Some(s) => {
                r.slots[s] = entry;
                s
            }
            None => {
                r.slots.push(entry);
                r.slots.len() - 1
            }
        };
        r.open += 1;
        self.gauges.client_connections.add(1);
        Some(ConnGuard { worker: self.clone(), slot })
    }

    /// Borrows an output buffer.
    #[inline]
    pub fn take_buf(&self) -> Vec<u8> {
        self.spare_bufs.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(4096))
    }

    /// Returns an output buffer (large ones are let go, to bound memory).
    #[inline]
    pub fn give_buf(&self, mut buf: Vec<u8>) {
        if buf.capacity() <= 64 * 1024 {
            buf.clear();
            let mut spare = self.spare_bufs.borrow_mut();
            if spare.len() < 64 {
                spare.push(buf);
            }
        }
    }

    /// Borrows a large buffer for streaming a body.
    pub fn take_body_buf(&self, size: usize) -> Vec<u8> {
        self.body_bufs.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(size))
    }

    /// Returns a body buffer; a few are kept for the next large bodies.
    pub fn give_body_buf(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut spare = self.body_bufs.borrow_mut();
        if spare.len() < 16 {
            spare.push(buf);
        }
    }

    /// Hands the access log buffer to the writer when it is full enough.
    pub fn flush_log(&self, force: bool) {
        let Some(log) = &self.shared.access_log else { return };
        let mut b = self.log_buf.borrow_mut();
        if b.is_empty() || (!force && b.len() < crate::access_log::FLUSH_AT) {
            return;
        }
        let full = std::mem::replace(&mut *b, Vec::with_capacity(crate::access_log::FLUSH_AT * 2));
        let lines = full.iter().filter(|&&c| c == b'\n').count() as u64;
        if !log.submit(full) {
            self.gauges.log_dropped.add(lines);
        }
    }

    /// Stops accepting and releases idle connections.
    pub(crate) fn begin_drain(&self) {
        self.draining.set(true);
        for (_, c) in self.accepting.borrow_mut().drain(..) {
            let _ = c.cancel();
        }
        for (fd, idle, waker) in self.conns.borrow().slots.iter().flatten() {
            match waker {
                Some(w) => w.wake_by_ref(),
                None if *idle => shutdown_read(*fd),
                None => {}
            }
        }
        let closed = self.pool.borrow_mut().clear();
        self.gauges.idle_pooled.add(-(closed as i64));
    }

    /// Wakes the connections that asked to be (HTTP/2: after a drain began
    /// or a reload, to say GOAWAY if their listener is gone).
    pub(crate) fn wake_connections(&self) {
        for (_, _, waker) in self.conns.borrow().slots.iter().flatten() {
            if let Some(w) = waker {
                w.wake_by_ref();
            }
        }
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.conns.borrow().open
    }
}
