//! A worker: one thread, one monoio io_uring runtime, its own SO_REUSEPORT
//! socket per listening address, its own backend connection pool. Everything
//! here is single-threaded (`Rc`, `Cell`, `RefCell`); the only shared reads are
//! the plan (checked on the housekeeping tick, not per request) and the
//! servers' health states (one atomic load per pick).

use std::cell::{Cell, RefCell};

use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use monoio::io::Canceller;
use monoio::net::TcpListener;
use ringgate_config::SocketKey;
use tracing::{debug, info, warn};

use crate::conn_pool::ConnPool;
use crate::gateway::Shared;
use crate::local::LocalPlan;
use crate::metrics::WorkerGauges;

/// How often a worker looks for a new plan, sweeps idle connections and
/// flushes its access log buffer.
const TICK: Duration = Duration::from_millis(50);

/// One worker's state, owned by its thread.
pub(crate) struct Worker {
    pub id: usize,
    pub shared: Arc<Shared>,
    local: RefCell<Rc<LocalPlan>>,
    pub pool: RefCell<ConnPool>,
    pub gauges: Arc<CachePadded<WorkerGauges>>,
    conns: RefCell<ConnRegistry>,
    draining: Cell<bool>,
    accepting: RefCell<Vec<(SocketKey, Canceller)>>,
    /// Spare output buffers, so a request borrows one instead of allocating.
    spare_bufs: RefCell<Vec<Vec<u8>>>,
    /// Spare large buffers for streaming bodies.
    body_bufs: RefCell<Vec<Vec<u8>>>,
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
    slots: Vec<Option<(RawFd, bool)>>,
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
    fn new(id: usize, shared: Arc<Shared>) -> Rc<Worker> {
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
        let entry = Some((fd, false));
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

    /// Applies a new plan and its sockets if the control thread published one.
    fn refresh(self: &Rc<Self>) {
        let plan = self.shared.plan.load();
        if plan.generation != self.local.borrow().plan.generation {
            let plan = self.shared.plan();
            debug!(worker = self.id, generation = plan.generation, "new plan");
            *self.local.borrow_mut() = Rc::new(LocalPlan::new(plan.clone()));
            self.reconcile_sockets(&plan);
            self.shared.applied[self.id].store(plan.generation, Ordering::Release);
        }
    }

    /// Starts accepting on new addresses and stops on removed ones.
    fn reconcile_sockets(self: &Rc<Self>, plan: &crate::plan::Plan) {
        let wanted: Vec<&SocketKey> = plan.sockets.iter().map(|s| &s.key).collect();
        let mut accepting = self.accepting.borrow_mut();
        accepting.retain_mut(|(key, canceller)| {
            if wanted.contains(&&*key) {
                return true;
            }
            debug!(worker = self.id, addr = %key, "listener removed");
            let _ = std::mem::take(canceller).cancel();
            false
        });
        let mut handoffs = self.shared.lock_sockets();
        for h in handoffs.iter_mut() {
            if accepting.iter().any(|(k, _)| *k == h.key) {
                continue;
            }
            let Some(std_listener) = h.per_worker.get_mut(self.id).and_then(Option::take) else { continue };
            match TcpListener::from_std(std_listener) {
                Ok(l) => {
                    let canceller = Canceller::new();
                    monoio::spawn(accept_loop(self.clone(), l, h.key.clone(), canceller.handle()));
                    accepting.push((h.key.clone(), canceller));
                }
                Err(e) => warn!(worker = self.id, addr = %h.key, error = %e, "cannot use listener socket"),
            }
        }
    }

    /// Stops accepting and releases idle connections.
    fn begin_drain(&self) {
        self.draining.set(true);
        for (_, c) in self.accepting.borrow_mut().drain(..) {
            let _ = c.cancel();
        }
        for (fd, idle) in self.conns.borrow().slots.iter().flatten() {
            if *idle {
                shutdown_read(*fd);
            }
        }
        let closed = self.pool.borrow_mut().clear();
        self.gauges.idle_pooled.add(-(closed as i64));
        self.gauges.backend_connections.add(-(closed as i64));
    }

    fn open_connections(&self) -> usize {
        self.conns.borrow().open
    }
}

async fn accept_loop(w: Rc<Worker>, listener: TcpListener, key: SocketKey, cancel: monoio::io::CancelHandle) {
    let addr = key.addr;
    let mut last_warn: Option<Instant> = None;
    loop {
        match listener.cancelable_accept(cancel.clone()).await {
            Ok((stream, peer)) => {
                w.gauges.accepted.add(1);
                monoio::spawn(crate::client::serve(w.clone(), stream, peer, key.clone()));
            }
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => return,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning, and say so
                // at most once a second.
                if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                    warn!(worker = w.id, %addr, error = %e, "accept failed");
                    last_warn = Some(Instant::now());
                }
                if w.draining() {
                    return;
                }
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// io_uring setup flags (see `[gateway.io_uring]`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IoUringFlags {
    pub coop_taskrun: bool,
    pub defer_taskrun: bool,
    pub multishot_recv: bool,
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

fn build_runtime(
    entries: u32,
    flags: IoUringFlags,
) -> std::io::Result<
    monoio::FusionRuntime<
        monoio::time::TimeDriver<monoio::IoUringDriver>,
        monoio::time::TimeDriver<monoio::LegacyDriver>,
    >,
> {
    let mut urb = io_uring::IoUring::builder();
    if flags.coop_taskrun {
        // Completions no longer interrupt the worker with an IPI; it picks
        // them up when it next enters the kernel anyway.
        urb.setup_coop_taskrun();
    }
    if flags.defer_taskrun {
        // Completion work runs only when the worker waits for events, in one
        // batch: fewer context switches under load. Needs a single issuer,
        // which a thread-per-core worker is.
        urb.setup_single_issuer();
        urb.setup_defer_taskrun();
    }
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .with_entries(entries)
        .uring_builder(urb)
        .enable_timer()
        .build()
}

/// The worker thread's body.
pub(crate) fn run(
    id: usize,
    shared: Arc<Shared>,
    cpu: Option<usize>,
    entries: u32,
    tuning: IoUringFlags,
    ready: crossbeam_channel::Sender<Result<(), (usize, std::io::Error)>>,
) {
    if let Some(cpu) = cpu
        && let Err(e) = monoio::utils::bind_to_cpu_set([cpu])
    {
        warn!(worker = id, cpu, error = ?e, "cannot pin worker to its CPU");
    }
    let (rt, tuning) = match build_runtime(entries, tuning) {
        Ok(rt) => (Ok(rt), tuning),
        Err(e) => {
            // Kernels before 6.1 refuse some setup flags: fall back to a plain ring.
            warn!(worker = id, error = %e, "io_uring setup flags refused; using a plain ring");
            let plain = IoUringFlags { multishot_recv: tuning.multishot_recv, ..IoUringFlags::default() };
            (build_runtime(entries, plain), plain)
        }
    };
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err((id, e)));
            shared.running.fetch_sub(1, Ordering::AcqRel);
            return;
        }
    };
    // Container runtimes often forbid io_uring (seccomp); monoio then falls
    // back to epoll. Say which, since it matters for performance.
    match &rt {
        monoio::FusionRuntime::Uring(_) => {
            MULTISHOT_RECV.with(|m| m.set(tuning.multishot_recv));
            info!(
                worker = id,
                "I/O driver: io_uring (coop_taskrun {}, defer_taskrun {}, multishot_recv {})",
                tuning.coop_taskrun,
                tuning.defer_taskrun,
                tuning.multishot_recv
            )
        }
        monoio::FusionRuntime::Legacy(_) => {
            warn!(worker = id, "I/O driver: epoll (io_uring is unavailable here, e.g. blocked by seccomp)")
        }
    }
    let task_shared = shared.clone();
    rt.block_on(async move {
        let shared = task_shared;
        let w = Worker::new(id, shared.clone());
        {
            let plan = w.plan().plan.clone();
            w.reconcile_sockets(&plan);
            shared.applied[id].store(plan.generation, Ordering::Release);
        }
        let _ = ready.send(Ok(()));
        drop(ready);
        let mut drain_deadline: Option<Instant> = None;
        loop {
            monoio::time::sleep(TICK).await;
            let now = Instant::now();
            if shared.is_draining() && drain_deadline.is_none() {
                let drain = w.plan().plan.config.gateway.drain_timeout;
                drain_deadline = Some(now + drain);
                w.begin_drain();
            }
            if let Some(deadline) = drain_deadline {
                if w.open_connections() == 0 || now >= deadline {
                    if w.open_connections() > 0 {
                        warn!(
                            worker = id,
                            open = w.open_connections(),
                            "drain time-out: closing connections with requests in flight"
                        );
                    }
                    break;
                }
                continue;
            }
            w.refresh();
            let closed = w.pool.borrow_mut().sweep(now);
            if closed > 0 {
                w.gauges.idle_pooled.add(-(closed as i64));
                w.gauges.backend_connections.add(-(closed as i64));
            }
            w.flush_log(true);
        }
        w.flush_log(true);
    });
    shared.running.fetch_sub(1, Ordering::AcqRel);
}
