//! The control side of the data plane: binds the listeners, starts one worker
//! thread per core, swaps in new plans on reload and drains on shutdown.
//! Workers never wait on it: they pick up a new plan, new sockets and the
//! drain signal from [`Shared`] on their own housekeeping tick.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;
use ringgate_config::{Config, Protocol, SocketKey};
use ringgate_health::HealthTable;

use crate::access_log::AccessLog;
use crate::metrics::MetricsRegistry;
use crate::plan::Plan;

/// Why the gateway could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("listener {listeners}: cannot listen on {addr}: {source}{hint}")]
    Bind {
        listeners: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("worker {worker} could not start: {source}")]
    Worker {
        worker: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("access log: {0}")]
    AccessLog(#[source] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

/// A listening address handed to the workers: one socket per worker, all
/// bound to the same address with SO_REUSEPORT, so the kernel spreads
/// connections across workers without any accept lock.
#[derive(Debug)]
pub(crate) struct SocketHandoff {
    pub key: SocketKey,
    pub per_worker: Vec<Option<TcpListener>>,
}

/// A listener as it is bound (the configured port may have been 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundListener {
    pub name: String,
    pub protocol: Protocol,
    pub configured: SocketAddr,
    pub bound: SocketAddr,
    pub rule: String,
}

/// State shared by the control thread, the workers and the admin API.
#[derive(Debug)]
pub struct Shared {
    pub(crate) plan: ArcSwap<Plan>,
    pub health: Arc<HealthTable>,
    pub metrics: Arc<MetricsRegistry>,
    pub(crate) workers: usize,
    pub(crate) draining: AtomicBool,
    /// Shutdown is announced (readiness fails) but traffic is still served.
    pub(crate) unready: AtomicBool,
    /// The plan generation each worker runs.
    pub(crate) applied: Vec<CachePadded<AtomicU64>>,
    pub(crate) sockets: Mutex<Vec<SocketHandoff>>,
    pub(crate) bound: Mutex<Vec<(SocketKey, SocketAddr)>>,
    pub(crate) access_log: Option<AccessLog>,
    /// Workers that have not finished yet.
    pub(crate) running: AtomicU64,
    /// Reloads applied and rejected (the `result` of
    /// `ringgate_config_reloads_total`).
    pub reloads: [AtomicU64; 2],
    /// When the process started serving (Unix seconds).
    pub started: std::time::SystemTime,
}

impl Shared {
    /// Counts a reload attempt: applied (`ok`) or rejected.
    pub fn count_reload(&self, ok: bool) {
        self.reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    /// Reopens the access log file (SIGUSR1); nothing when it is stdout or
    /// off.
    pub fn reopen_access_log(&self) {
        if let Some(log) = &self.access_log {
            log.reopen();
        }
    }

    /// The plan new requests are served with.
    pub fn plan(&self) -> Arc<Plan> {
        self.plan.load_full()
    }

    pub(crate) fn lock_sockets(&self) -> MutexGuard<'_, Vec<SocketHandoff>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_bound(&self) -> MutexGuard<'_, Vec<(SocketKey, SocketAddr)>> {
        self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The address a listening socket is actually bound to.
    pub fn bound_addr(&self, key: &SocketKey) -> Option<SocketAddr> {
        self.lock_bound().iter().find(|(k, _)| k == key).map(|(_, b)| *b)
    }

    /// Listeners of the current plan with their bound addresses.
    pub fn listeners(&self) -> Vec<BoundListener> {
        let plan = self.plan();
        let cfg = &plan.config;
        cfg.listeners
            .iter()
            .enumerate()
            .map(|(i, l)| BoundListener {
                name: l.name.clone(),
                protocol: l.protocol,
                configured: l.listen,
                bound: self.bound_addr(&l.socket_key()).unwrap_or(l.listen),
                rule: cfg
                    .rule_for(ringgate_config::ListenerId(i))
                    .map_or(String::new(), |r| cfg.rules[r.0].name.clone()),
            })
            .collect()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Fails readiness (`/healthz` answers 503) while still serving, so a
    /// load balancer stops sending new connections before the drain starts.
    pub fn announce_shutdown(&self) {
        self.unready.store(true, Ordering::Relaxed);
    }

    /// Ready for new traffic: not shutting down.
    pub fn is_ready(&self) -> bool {
        !self.unready.load(Ordering::Relaxed) && !self.is_draining()
    }

    pub fn workers(&self) -> usize {
        self.workers
    }
}

/// A running data plane.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    generation: u64,
}

/// Binds `addr` with SO_REUSEPORT, non-blocking, ready for a worker.
fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Fails when another process listens on `addr`, even with SO_REUSEPORT:
/// a socket without that option cannot bind there. Without this check a
/// second ringgate started on the same address would listen too, and the
/// kernel would split the connections between the two without a word.
fn exclusive_probe(addr: SocketAddr) -> std::io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // SO_REUSEADDR lets the probe past connections in TIME_WAIT (a restart),
    // never past a listening socket.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())
}

/// Binds one socket per worker to `addr`; port 0 is resolved by the first.
fn bind_group(addr: SocketAddr, workers: usize) -> std::io::Result<(SocketAddr, Vec<Option<TcpListener>>)> {
    if addr.port() != 0 {
        exclusive_probe(addr)?;
    }
    let first = bind_one(addr)?;
    let bound = first.local_addr()?;
    let mut v = vec![Some(first)];
    for _ in 1..workers {
        v.push(Some(bind_one(bound)?));
    }
    Ok((bound, v))
}

fn bind_hint(e: &std::io::Error, addr: SocketAddr) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => " (ports below 1024 need CAP_NET_BIND_SERVICE)",
        std::io::ErrorKind::AddrInUse => " (another process listens there: is another ringgate running on it?)",
        std::io::ErrorKind::AddrNotAvailable => " (no interface of this host has that address)",
        _ => "",
    }
}

/// Binds every address of `plan` that is not bound yet.
fn bind_new(
    plan: &Plan,
    workers: usize,
    already: &[SocketKey],
) -> Result<Vec<(SocketHandoff, SocketAddr)>, StartError> {
    let mut out = Vec::new();
    for s in &plan.sockets {
        if already.contains(&s.key) {
            continue;
        }
        match bind_group(s.key.addr, workers) {
            Ok((bound, per_worker)) => out.push((SocketHandoff { key: s.key.clone(), per_worker }, bound)),
            Err(e) => {
                let names: Vec<String> = plan
                    .config
                    .listeners
                    .iter()
                    .filter(|l| l.socket_key() == s.key)
                    .map(|l| format!("\"{}\"", l.name))
                    .collect();
                let hint = bind_hint(&e, s.key.addr);
                return Err(StartError::Bind { listeners: names.join(", "), addr: s.key.addr, source: e, hint });
            }
        }
    }
    Ok(out)
}

impl Gateway {
    /// Binds the listeners and starts the workers. Returns once every worker
    /// is serving, or with the first error.
    pub fn start(
        config: Arc<Config>,
        health: Arc<HealthTable>,
        metrics: Arc<MetricsRegistry>,
    ) -> Result<Gateway, StartError> {
        let workers = metrics.workers();
        let mut plan = Plan::build(config.clone(), 1, &health, &metrics).map_err(StartError::Tls)?;
        let handoffs = bind_new(&plan, workers, &[])?;
        let access_log = AccessLog::open(&config.gateway.access_log).map_err(StartError::AccessLog)?;
        let mut bound = Vec::new();
        let mut sockets = Vec::new();
        for (h, b) in handoffs {
            bound.push((h.key.clone(), b));
            sockets.push(h);
        }
        plan.set_bound_ports(&bound);
        let shared = Arc::new(Shared {
            plan: ArcSwap::from_pointee(plan),
            health,
            metrics,
            workers,
            draining: AtomicBool::new(false),
            unready: AtomicBool::new(false),
            applied: (0..workers).map(|_| CachePadded::new(AtomicU64::new(0))).collect(),
            sockets: Mutex::new(sockets),
            bound: Mutex::new(bound),
            access_log,
            running: AtomicU64::new(workers as u64),
            reloads: [AtomicU64::new(0), AtomicU64::new(0)],
            started: std::time::SystemTime::now(),
        });
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(workers);
        let mut threads = Vec::with_capacity(workers);
        for id in 0..workers {
            let shared = shared.clone();
            let ready = ready_tx.clone();
            let cpu = config.gateway.worker_cpus.get(id).copied();
            let entries = config.gateway.io_uring.entries;
            let flags = crate::runtime::IoUringFlags {
                coop_taskrun: config.gateway.io_uring.coop_taskrun,
                defer_taskrun: config.gateway.io_uring.defer_taskrun,
                multishot_recv: config.gateway.io_uring.multishot_recv,
            };
            let t = std::thread::Builder::new()
                .name(format!("ringgate-w{id}"))
                .spawn(move || crate::runtime::run(id, shared, cpu, entries, flags, ready))
                .map_err(|e| StartError::Worker { worker: id, source: e })?;
            threads.push(t);
        }
        drop(ready_tx);
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err((worker, source))) => {
                    shared.draining.store(true, Ordering::Relaxed);
                    return Err(StartError::Worker { worker, source });
                }
                Err(_) => {
                    return Err(StartError::Worker {
                        worker: 0,
                        source: std::io::Error::other("a worker exited at start"),
                    });
                }
            }
        }
        Ok(Gateway { shared, threads, generation: 1 })
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Swaps in `config` for new requests. New listening addresses are bound
    /// first, so a reload that cannot bind changes nothing. Returns once every
    /// worker runs the new plan (or after `wait`).
    pub fn reload(&mut self, config: Arc<Config>, wait: Duration) -> Result<(), StartError> {
        let shared = &self.shared;
        let generation = self.generation + 1;
        let previous = shared.plan.load_full();
        let mut plan = Plan::build_after(config, generation, &shared.health, &shared.metrics, Some(&previous))
            .map_err(StartError::Tls)?;
        let current: Vec<SocketKey> = shared.plan.load().sockets.iter().map(|s| s.key.clone()).collect();
        let new = bind_new(&plan, shared.workers, &current)?;
        let keys = plan.server_keys();
        let wanted: Vec<SocketKey> = plan.sockets.iter().map(|s| s.key.clone()).collect();
        {
            let mut sockets = shared.lock_sockets();
            let mut bound = shared.lock_bound();
            // Sockets of removed addresses that workers have not taken yet.
            sockets.retain(|h| wanted.contains(&h.key));
            bound.retain(|(k, _)| wanted.contains(k));
            for (h, b) in new {
                bound.push((h.key.clone(), b));
                sockets.push(h);
            }
            plan.set_bound_ports(&bound);
        }
        shared.plan.store(Arc::new(plan));
        self.generation = generation;
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if shared.applied.iter().all(|a| a.load(Ordering::Acquire) >= generation) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // Servers the new plan dropped drain only now: until every worker
        // switched, an old plan may still pick them for new requests.
        shared.health.retain(&keys);
        Ok(())
    }

    /// Stops accepting, lets in-flight requests finish for up to `drain`,
    /// closes idle connections and joins the workers. Returns whether every
    /// request finished in time.
    pub fn shutdown(self, drain: Duration) -> bool {
        self.shared.draining.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + drain + Duration::from_millis(500);
        while Instant::now() < deadline && self.shared.running.load(Ordering::Acquire) > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let clean = self.shared.running.load(Ordering::Acquire) == 0;
        if clean {
            for t in self.threads {
                let _ = t.join();
            }
        }
        if let Some(log) = &self.shared.access_log {
            log.flush_and_stop();
        }
        clean
    }
}
