//! A worker thread: builds its monoio io_uring runtime (with the setup flags
//! of `[gateway.io_uring]`, falling back when the kernel refuses them),
//! accepts on its sockets (`accept`), and runs the housekeeping tick: a new
//! plan and its sockets, idle pooled connections swept, the access log
//! flushed, memory handed back after many connections left, and on
//! shutdown the drain.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use monoio::io::Canceller;
use monoio::net::TcpListener;
use ringgate_config::SocketKey;
use tracing::{debug, info, warn};

use crate::gateway::Shared;
use crate::local::LocalPlan;
use crate::worker::Worker;

/// How often a worker looks for a new plan, sweeps idle connections and
/// flushes its access log buffer.
const TICK: Duration = Duration::from_millis(50);

/// Hands the memory this thread freed back to the operating system: the
/// binary sets it to its allocator's collect. mimalloc keeps freed pages
/// for reuse and purges them on later allocator activity, which a worker
/// whose thousands of idle connections just left does not have: without
/// this its RSS stays at the peak.
static RELEASE_MEMORY: OnceLock<fn()> = OnceLock::new();

/// Sets what a worker calls to give freed memory back (once; later calls
/// are ignored).
pub fn set_memory_release(release: fn()) {
    let _ = RELEASE_MEMORY.set(release);
}

/// A worker releases memory when this many fewer connections are open than
/// at its peak since the last release: rare (a crowd left), so the cost of
/// a collect is never paid per request or under steady churn.
const RELEASE_AFTER_CLOSED: usize = 512;

/// Tracks a worker's open connections between memory releases.
#[derive(Debug, Default)]
struct MemoryWatch {
    peak: usize,
}

impl MemoryWatch {
    /// Whether `open` connections, after the peak seen so far, call for a
    /// release; the peak restarts from `open` when they do.
    fn should_release(&mut self, open: usize) -> bool {
        self.peak = self.peak.max(open);
        if self.peak >= open + RELEASE_AFTER_CLOSED {
            self.peak = open;
            return true;
        }
        false
    }
}

/// Applies a new plan and its sockets if the control thread published one.
fn refresh(w: &Rc<Worker>) {
    let plan = w.shared.plan.load();
    if plan.generation != w.local.borrow().plan.generation {
        let plan = w.shared.plan();
        debug!(worker = w.id, generation = plan.generation, "new plan");
        *w.local.borrow_mut() = Rc::new(LocalPlan::new(plan.clone()));
        reconcile_sockets(w, &plan);
        // HTTP/2 connections look whether their listener is still there.
        w.wake_connections();
        w.shared.applied[w.id].store(plan.generation, Ordering::Release);
    }
}

/// Starts accepting on new addresses and stops on removed ones.
fn reconcile_sockets(w: &Rc<Worker>, plan: &crate::plan::Plan) {
    let wanted: Vec<&SocketKey> = plan.sockets.iter().map(|s| &s.key).collect();
    let mut accepting = w.accepting.borrow_mut();
    accepting.retain_mut(|(key, canceller)| {
        if wanted.contains(&&*key) {
            return true;
        }
        debug!(worker = w.id, addr = %key, "listener removed");
        let _ = std::mem::take(canceller).cancel();
        false
    });
    let mut handoffs = w.shared.lock_sockets();
    for h in handoffs.iter_mut() {
        if accepting.iter().any(|(k, _)| *k == h.key) {
            continue;
        }
        let Some(std_listener) = h.per_worker.get_mut(w.id).and_then(Option::take) else { continue };
        match TcpListener::from_std(std_listener) {
            Ok(l) => {
                let canceller = Canceller::new();
                monoio::spawn(crate::accept::accept_loop(w.clone(), l, h.key.clone(), canceller.handle()));
                accepting.push((h.key.clone(), canceller));
            }
            Err(e) => warn!(worker = w.id, addr = %h.key, error = %e, "cannot use listener socket"),
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
            crate::io::set_multishot_recv(tuning.multishot_recv);
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
            reconcile_sockets(&w, &plan);
            shared.applied[id].store(plan.generation, Ordering::Release);
        }
        let _ = ready.send(Ok(()));
        drop(ready);
        let mut drain_deadline: Option<Instant> = None;
        let mut memory = MemoryWatch::default();
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
            refresh(&w);
            let closed = w.pool.borrow_mut().sweep(now);
            if closed > 0 {
                w.gauges.idle_pooled.add(-(closed as i64));
            }
            w.flush_log(true);
            if memory.should_release(w.open_connections())
                && let Some(release) = RELEASE_MEMORY.get()
            {
                debug!(worker = id, open = w.open_connections(), "connections left: handing freed memory back");
                release();
            }
        }
        w.flush_log(true);
    });
    shared.running.fetch_sub(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_released_once_a_crowd_has_left_not_under_churn() {
        let mut m = MemoryWatch::default();
        // Growing, then steady churn around 1,000: nothing to release.
        for open in [10, 500, 1000, 990, 1000, 1010, 700] {
            assert!(!m.should_release(open), "{open}");
        }
        // 512 fewer than the peak (1,010): release, and the peak restarts.
        assert!(m.should_release(498));
        assert!(!m.should_release(0), "498 to 0 is fewer than 512 since the release");
        assert!(!m.should_release(600));
        assert!(m.should_release(88));
    }
}
