//! A worker's own view of a plan: the round-robin positions and cached server
//! addresses that change per request, kept in `Cell`s so the shared plan stays
//! read-only and no two workers write to the same memory.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::Arc;

use ringgate_health::HealthEntry;

use crate::plan::Plan;

/// Per-worker mutable state for one plan.
#[derive(Debug)]
pub(crate) struct LocalPlan {
    pub plan: Arc<Plan>,
    /// Round-robin position of each target.
    pub cursors: Vec<Cell<usize>>,
    /// Cached addresses of each target's servers.
    pub addrs: Vec<Vec<AddrCache>>,
    /// Requests in flight on this worker, per target and server (for
    /// `least_connections` and `random_two`).
    pub inflight: Vec<Vec<Cell<u32>>>,
    /// This worker's random state for `random_two` (xorshift).
    pub random: Cell<u64>,
}

/// Counts a request in flight on a server while it lives (dropped with the
/// exchange, however it ends).
pub(crate) struct InFlight<'a>(&'a Cell<u32>);

impl<'a> InFlight<'a> {
    pub fn new(c: &'a Cell<u32>) -> InFlight<'a> {
        c.set(c.get() + 1);
        InFlight(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl LocalPlan {
    pub fn new(plan: Arc<Plan>) -> LocalPlan {
        LocalPlan {
            cursors: plan.targets.iter().map(|_| Cell::new(0)).collect(),
            addrs: plan.targets.iter().map(|r| r.servers.iter().map(|s| AddrCache::new(&s.health)).collect()).collect(),
            inflight: plan.targets.iter().map(|r| r.servers.iter().map(|_| Cell::new(0)).collect()).collect(),
            random: Cell::new(0x9e37_79b9_7f4a_7c15 ^ (Arc::as_ptr(&plan) as u64)),
            plan,
        }
    }
}

/// A server's resolved addresses, re-read only when the prober changed them.
#[derive(Debug)]
pub(crate) struct AddrCache {
    generation: Cell<u64>,
    addrs: RefCell<Arc<Vec<SocketAddr>>>,
    next: Cell<usize>,
}

impl AddrCache {
    fn new(entry: &HealthEntry) -> AddrCache {
        AddrCache {
            generation: Cell::new(entry.addrs_generation()),
            addrs: RefCell::new(entry.addrs()),
            next: Cell::new(0),
        }
    }

    /// The address to connect to: rotates over a host name's addresses;
    /// `None` when the name resolves to nothing.
    #[inline]
    pub fn pick(&self, entry: &HealthEntry) -> Option<SocketAddr> {
        let g = entry.addrs_generation();
        if g != self.generation.get() {
            *self.addrs.borrow_mut() = entry.addrs();
            self.generation.set(g);
        }
        let addrs = self.addrs.borrow();
        match addrs.len() {
            0 => None,
            1 => Some(addrs[0]),
            n => {
                let i = self.next.get();
                self.next.set(i.wrapping_add(1));
                Some(addrs[i % n])
            }
        }
    }
}
