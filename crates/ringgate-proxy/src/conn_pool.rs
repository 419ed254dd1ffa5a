//! A worker's idle keep-alive connections to backend servers, by address.
//! Single-threaded (one per worker), so taking and returning a connection is a
//! `Vec` push or pop: no lock on the request path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::backend_stream::BackendStream;

/// Which pooled connections may serve a request: same address, and the same
/// TLS identity (0 for plain TCP; else a tag of the server name and roots),
/// so a TLS connection is never handed to a plain request or the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub addr: SocketAddr,
    pub tls: u64,
}

/// An open connection to a backend server, with its read buffer.
#[derive(Debug)]
pub(crate) struct BackendConn {
    pub stream: BackendStream,
    pub buf: Vec<u8>,
    /// The connection's own buffer while a large body streams through a
    /// borrowed one (see `Client::use_body_buffer`).
    pub small_buf: Option<Vec<u8>>,
    pub key: PoolKey,
    /// Held for its drop, which uncounts the connection.
    pub _count: ConnCount,
}

/// Counts a backend connection in the worker's gauge while it lives, so
/// that a connection dropped on any path (an error, a pool sweep, a client
/// that reset its HTTP/2 stream mid-exchange) leaves the gauge right.
#[derive(Debug)]
pub(crate) struct ConnCount(std::sync::Arc<crossbeam_utils::CachePadded<crate::metrics::WorkerGauges>>);

impl ConnCount {
    pub fn new(gauges: &std::sync::Arc<crossbeam_utils::CachePadded<crate::metrics::WorkerGauges>>) -> ConnCount {
        gauges.backend_connections.add(1);
        ConnCount(gauges.clone())
    }
}

impl Drop for ConnCount {
    fn drop(&mut self) {
        self.0.backend_connections.add(-1);
    }
}

#[derive(Debug)]
struct Idle {
    conn: BackendConn,
    expires: Instant,
}

/// Idle connections of one worker.
#[derive(Debug, Default)]
pub(crate) struct ConnPool {
    // FxHash: a socket address is not attacker-chosen, and SipHash showed up
    // in the request path's profile.
    idle: rustc_hash::FxHashMap<PoolKey, Vec<Idle>>,
    count: usize,
}

impl ConnPool {
    /// The most recently returned live connection to `addr`. Most recent
    /// first keeps a small hot set in use and lets the rest expire.
    ///
    /// A connection on which the backend's close (or anything else) arrived
    /// while it was idle is dropped here rather than handed out: a request
    /// sent on it would fail, and one that cannot be retried (a POST) would
    /// cost the client a 502.
    pub fn take(&mut self, key: PoolKey, now: Instant) -> Option<BackendConn> {
        let list = self.idle.get_mut(&key)?;
        while let Some(i) = list.pop() {
            self.count -= 1;
            if i.expires > now && !i.conn.stream.pending_input() {
                return Some(i.conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse unless `max` idle connections to its address are
    /// already kept. Returns whether it was kept.
    pub fn put(&mut self, mut conn: BackendConn, max: usize, idle_timeout: Duration, now: Instant) -> bool {
        let list = self.idle.entry(conn.key).or_default();
        if list.len() >= max {
            return false;
        }
        conn.buf.clear();
        list.push(Idle { conn, expires: now + idle_timeout });
        self.count += 1;
        true
    }

    /// Closes expired connections; returns how many.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let mut closed = 0;
        self.idle.retain(|_, list| {
            let before = list.len();
            list.retain(|i| i.expires > now);
            closed += before - list.len();
            !list.is_empty()
        });
        self.count -= closed;
        closed
    }

    /// Closes every idle connection (shutdown); returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.count;
        self.idle.clear();
        self.count = 0;
        n
    }
}
