//! The running server: its builder, the listening socket's life cycle (stop
//! and resume on the same port), the registry of open connections that lets
//! `stop` end every thread, and the counters and request log tests read.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::connection;
use crate::mode::Mode;
use crate::request::Head;
use crate::response;

/// How long `stop` and `stop_listening` wait for threads before leaving them
/// detached; a test backend must never hang the test that drops it.
const JOIN_WAIT: Duration = Duration::from_secs(2);
/// How long `resume_listening` retries a bind that finds the port busy.
const REBIND_WAIT: Duration = Duration::from_secs(1);
const LISTEN_BACKLOG: i32 = 1024;

/// Locks, ignoring poisoning: the data under these locks (counters, logs, the
/// registry) stays consistent even if a connection thread panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request as the backend received it, from [`Backend::recorded`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The method, as sent.
    pub method: String,
    /// The request target, query included.
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// Header fields in arrival order, names in the case they were sent.
    pub headers: Vec<(String, String)>,
    /// The body after removing any chunked framing; empty when the mode
    /// does not read bodies (stall, reset, close-immediately) or the body
    /// could not be read (bad framing, peer gone).
    pub body: Vec<u8>,
    /// The client's address (the proxy's, in end-to-end tests).
    pub peer: SocketAddr,
    /// Numbers accepted connections 1, 2, ...; requests that shared a
    /// connection share the id.
    pub connection_id: u64,
}

impl RecordedRequest {
    /// The target up to the `?`.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Configuration for [`Backend`]; every setter has a default.
#[derive(Clone, Debug)]
pub struct BackendBuilder {
    name: String,
    bind: SocketAddr,
    mode: Mode,
    health_status: u16,
    health_body: String,
    health_path: String,
    body: Option<Vec<u8>>,
    idle_timeout: Duration,
    record_limit: usize,
    hold_health: bool,
}

impl Default for BackendBuilder {
    fn default() -> Self {
        BackendBuilder {
            name: "backend".to_owned(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            mode: Mode::Ok,
            health_status: 200,
            health_body: "healthy".to_owned(),
            health_path: "/health".to_owned(),
            body: None,
            idle_timeout: Duration::from_secs(60),
            record_limit: 1000,
            hold_health: false,
        }
    }
}

impl BackendBuilder {
    /// Sent as `x-backend` and, by default, as the body. Default `backend`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The address to listen on. Default `127.0.0.1:0` (a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The starting mode. Default [`Mode::Ok`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// What the health path answers. Default 200 `healthy`.
    pub fn health(mut self, status: u16, body: impl Into<String>) -> Self {
        self.health_status = status;
        self.health_body = body.into();
        self
    }

    /// The path (without query) that answers per [`Backend::set_health`].
    /// Default `/health`.
    pub fn health_path(mut self, path: impl Into<String>) -> Self {
        self.health_path = path.into();
        self
    }

    /// Health-path requests get no answer until [`Backend::release_health`]
    /// (or the backend stops, or the idle time-out passes: every wait is
    /// bounded): a server whose first health check hangs. Default off.
    pub fn hold_health(mut self) -> Self {
        self.hold_health = true;
        self
    }

    /// The body of [`Mode::Ok`] answers. Default the name followed by `\n`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Makes the [`Mode::Ok`] body `n` bytes of `abc...z` repeated.
    pub fn body_bytes(self, n: usize) -> Self {
        self.body(response::pattern(n))
    }

    /// How long a connection may stay silent (or refuse to take our bytes)
    /// before the backend closes it. Default 60 s; must not be zero.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How many of the latest requests [`Backend::recorded`] keeps. Default
    /// 1000; 0 keeps none (for benchmarks with large bodies).
    pub fn record_limit(mut self, limit: usize) -> Self {
        self.record_limit = limit;
        self
    }

    /// Binds and starts serving.
    ///
    /// Fails with `InvalidInput` when the name cannot be a header value, the
    /// health path does not start with `/`, or the idle time-out is zero.
    pub fn start(self) -> io::Result<Backend> {
        let invalid = |msg: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, msg.to_owned()));
        // The name goes into a header verbatim; CR or LF would split the head.
        if !self.name.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return invalid("backend name must be printable ASCII");
        }
        if !self.health_path.starts_with('/') {
            return invalid("health path must start with `/`");
        }
        if self.idle_timeout.is_zero() {
            return invalid("idle time-out must not be zero");
        }
        let body = self.body.unwrap_or_else(|| format!("{}\n", self.name).into_bytes());
        let shared = Arc::new(Shared {
            name: self.name,
            health_path: self.health_path,
            body,
            idle_timeout: self.idle_timeout,
            record_limit: self.record_limit,
            mode: Mutex::new(self.mode),
            health: Mutex::new((self.health_status, self.health_body)),
            health_held: AtomicBool::new(self.hold_health),
            connections: AtomicU64::new(0),
            open: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            per_path: Mutex::new(HashMap::new()),
            recorded: Mutex::new(VecDeque::new()),
            registry: Mutex::new(Registry::default()),
            changed: Condvar::new(),
        });
        let (listening, addr) = listen(&shared, self.bind)?;
        Ok(Backend { shared, addr, listener: Mutex::new(Some(listening)) })
    }
}

/// A running test backend. Dropping it (or [`Backend::stop`]) closes the
/// listener and every open connection and waits, boundedly, for the threads.
#[derive(Debug)]
pub struct Backend {
    shared: Arc<Shared>,
    addr: SocketAddr,
    listener: Mutex<Option<Listening>>,
}

impl Backend {
    /// A builder with every default.
    pub fn builder() -> BackendBuilder {
        BackendBuilder::default()
    }

    /// A [`Mode::Ok`] backend called `name` on a free loopback port.
    pub fn start_ok(name: &str) -> io::Result<Backend> {
        Backend::builder().name(name).start()
    }

    /// The name sent as `x-backend`.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address it listens on (the port resolved when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port of [`Backend::addr`].
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches behaviour for requests that arrive from now on.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// What the health path answers from now on.
    pub fn set_health(&self, status: u16, body: &str) {
        *lock(&self.shared.health) = (status, body.to_owned());
    }

    /// Lets held health-path requests (see [`BackendBuilder::hold_health`])
    /// be answered, and every later one at once.
    pub fn release_health(&self) {
        // Under the registry lock, which waiters check the flag under: no
        // wake-up is lost.
        let _registry = lock(&self.shared.registry);
        self.shared.health_held.store(false, Ordering::SeqCst);
        self.shared.changed.notify_all();
    }

    /// TCP connections accepted so far, including those closed at once.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// TCP connections accepted and not yet closed by the backend.
    pub fn open_connections(&self) -> u64 {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Complete request heads received, in any mode.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Complete request heads received whose path (target without query) is
    /// exactly `path`.
    pub fn requests_to(&self, path: &str) -> u64 {
        lock(&self.shared.per_path).get(path).copied().unwrap_or(0)
    }

    /// The latest requests (up to the record limit, default 1000), oldest first.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.recorded).iter().cloned().collect()
    }

    /// Empties the request log; counters are untouched.
    pub fn clear_recorded(&self) {
        lock(&self.shared.recorded).clear();
    }

    /// Closes the listening socket: connects are refused from now on. Open
    /// connections are left alone (see [`Backend::close_connections`]).
    pub fn stop_listening(&self) {
        if let Some(listening) = lock(&self.listener).take() {
            listening.close();
        }
    }

    /// Listens again on the same address and port after
    /// [`Backend::stop_listening`]; does nothing if already listening.
    pub fn resume_listening(&self) -> io::Result<()> {
        let mut slot = lock(&self.listener);
        if slot.is_some() {
            return Ok(());
        }
        let deadline = Instant::now() + REBIND_WAIT;
        loop {
            match listen(&self.shared, self.addr) {
                Ok((listening, _)) => {
                    *slot = Some(listening);
                    return Ok(());
                }
                // While the port was free, a client socket may have been given
                // it as its ephemeral port; that socket does not set
                // SO_REUSEADDR, so wait for it to go away.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the listening socket is open.
    pub fn is_listening(&self) -> bool {
        lock(&self.listener).is_some()
    }

    /// Shuts down every open connection (both directions) and returns how
    /// many there were; with [`Backend::stop_listening`] this takes the
    /// backend fully down while keeping it restartable.
    pub fn close_connections(&self) -> usize {
        let registry = lock(&self.shared.registry);
        for stream in registry.conns.values() {
            // Errors mean the peer already closed, which is what we want.
            let _ = stream.shutdown(Shutdown::Both);
        }
        registry.conns.len()
    }

    /// Same as dropping, spelled out.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop_listening();
        let deadline = Instant::now() + JOIN_WAIT;
        let mut registry = lock(&self.shared.registry);
        registry.stopping = true;
        for stream in registry.conns.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Wakes connection threads sleeping in a slow answer.
        self.shared.changed.notify_all();
        while !registry.conns.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            registry = self.shared.changed.wait_timeout(registry, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

/// Open connections, by id, so `stop` can shut each down and wake its thread.
#[derive(Debug, Default)]
struct Registry {
    stopping: bool,
    conns: HashMap<u64, TcpStream>,
}

/// State shared by the handle, the accept thread and connection threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) health_path: String,
    pub(crate) body: Vec<u8>,
    pub(crate) idle_timeout: Duration,
    record_limit: usize,
    mode: Mutex<Mode>,
    health: Mutex<(u16, String)>,
    /// Health answers wait while set (see [`BackendBuilder::hold_health`]).
    health_held: AtomicBool,
    connections: AtomicU64,
    open: AtomicU64,
    requests: AtomicU64,
    per_path: Mutex<HashMap<String, u64>>,
    recorded: Mutex<VecDeque<RecordedRequest>>,
    registry: Mutex<Registry>,
    /// Signalled when `stopping` is set or a connection leaves the registry.
    changed: Condvar,
}

impl Shared {
    pub(crate) fn mode(&self) -> Mode {
        lock(&self.mode).clone()
    }

    pub(crate) fn health(&self) -> (u16, String) {
        lock(&self.health).clone()
    }

    pub(crate) fn count_request(&self, head: &Head) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        *lock(&self.per_path).entry(head.path().to_owned()).or_insert(0) += 1;
    }

    pub(crate) fn record(&self, head: &Head, body: &[u8], peer: SocketAddr, connection_id: u64) {
        if self.record_limit == 0 {
            return;
        }
        let entry = RecordedRequest {
            method: head.method.clone(),
            target: head.target.clone(),
            version: head.version(),
            headers: head.headers.clone(),
            body: body.to_vec(),
            peer,
            connection_id,
        };
        let mut log = lock(&self.recorded);
        while log.len() >= self.record_limit {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// Sleeps for `d` unless the backend stops first; returns whether the
    /// full time passed.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now().checked_add(d);
        let mut registry = lock(&self.registry);
        loop {
            if registry.stopping {
                return false;
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                // Too far away to represent: wait for the stop.
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return true;
            }
            registry = self.changed.wait_timeout(registry, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Waits while health answers are held: until released, the backend
    /// stops (false) or the idle time-out passes (answered anyway).
    pub(crate) fn wait_health(&self) -> bool {
        let deadline = Instant::now() + self.idle_timeout;
        let mut registry = lock(&self.registry);
        loop {
            if registry.stopping {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.health_held.load(Ordering::SeqCst) || left.is_zero() {
                return true;
            }
            registry = self.changed.wait_timeout(registry, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Registers an accepted connection and starts its thread.
    fn spawn_connection(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let id = self.connections.fetch_add(1, Ordering::SeqCst) + 1;
        // Without a clone in the registry `stop` could not end the thread.
        let Ok(clone) = stream.try_clone() else { return };
        {
            let mut registry = lock(&self.registry);
            if registry.stopping {
                return;
            }
            registry.conns.insert(id, clone);
        }
        self.open.fetch_add(1, Ordering::SeqCst);
        let guard = ConnGuard { shared: Arc::clone(self), id };
        // If the spawn fails the closure, guard included, is dropped, which
        // unregisters and closes the connection.
        let _ = thread::Builder::new().name(format!("testbackend-{id}")).spawn(move || {
            connection::serve(&guard.shared, stream, peer, guard.id);
            drop(guard);
        });
    }
}

/// Unregisters a connection when its thread ends, however it ends.
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut registry = lock(&self.shared.registry);
        registry.conns.remove(&self.id);
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        self.shared.changed.notify_all();
    }
}

/// A listening socket and its accept thread.
#[derive(Debug)]
struct Listening {
    /// A second handle on the listening socket, used to wake the accept thread.
    wake: Socket,
    closed: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    /// Disconnects when the accept thread ends.
    done: mpsc::Receiver<()>,
}

impl Listening {
    fn close(self) {
        self.closed.store(true, Ordering::SeqCst);
        // On Linux, shutdown(SHUT_RD) on a listening socket takes it out of
        // LISTEN (new connects are refused at once) and wakes a thread blocked
        // in accept() with EINVAL; merely closing a descriptor would leave
        // accept() blocked and the port listening.
        let _ = self.wake.shutdown(Shutdown::Read);
        if let Err(RecvTimeoutError::Disconnected) = self.done.recv_timeout(JOIN_WAIT) {
            let _ = self.thread.join();
        }
    }
}

/// Binds with SO_REUSEADDR, so the same port can be bound again while
/// earlier connections linger in TIME_WAIT or are still open, and starts the
/// accept thread.
fn listen(shared: &Arc<Shared>, addr: SocketAddr) -> io::Result<(Listening, SocketAddr)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    let local = socket.local_addr()?.as_socket().ok_or_else(|| io::Error::other("listener has no IP address"))?;
    let wake = socket.try_clone()?;
    let listener = TcpListener::from(socket);
    let closed = Arc::new(AtomicBool::new(false));
    let (done_tx, done) = mpsc::channel();
    let thread = thread::Builder::new().name(format!("testbackend-{}", local.port())).spawn({
        let shared = Arc::clone(shared);
        let closed = Arc::clone(&closed);
        move || {
            let _done = done_tx;
            accept_loop(&listener, &shared, &closed);
        }
    })?;
    Ok((Listening { wake, closed, thread, done }, local))
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, closed: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if closed.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => shared.spawn_connection(stream, peer),
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
            // Out of descriptors or memory: back off rather than spin.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[cfg(test)]
mod tests;
