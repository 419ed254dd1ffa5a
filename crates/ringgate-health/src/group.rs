//! `min_servers` (Application Gateway v2's probe field): the servers of one
//! (pool, backend HTTP settings) pair, and which of them are kept in
//! rotation whatever their probes say.
//!
//! The rule: when fewer than `min_servers` servers of the pair take requests
//! on their own (probe state, not drained by an operator), the first servers
//! of the pool in configured order that do not, and that an operator has not
//! drained, are kept in rotation until the count is made up. A server a
//! reload removed is never kept. The choice is made here, by whoever changes
//! a member's state (the prober, the admin API, a reload), and written into
//! each member's state byte, so a worker's pick stays one atomic load.
//!
//! Every change to a member goes through [`ServerGroup::change`]: the servers
//! that must be kept after the change are marked *before* it is made and the
//! ones that no longer need to be are unmarked *after*, so the pool never has
//! fewer than `min_servers` servers in rotation, not even for a moment. (A
//! pick reads each server once, one load each, so a pick racing a change
//! within those nanoseconds may still see it half made, as it may see two
//! unrelated probe results half made; no lock is worth that on the request
//! path.)

use std::sync::{Arc, Mutex};

use crate::table::{HealthEntry, bits};

/// The servers of one (pool, settings) pair with its probe's `min_servers`.
#[derive(Debug)]
pub struct ServerGroup {
    /// In the pool's configured order.
    members: Vec<Arc<HealthEntry>>,
    min_servers: usize,
    /// Serialises changes to members: the prober's and the admin API's.
    /// Never held while taking a member's detail lock.
    lock: Mutex<()>,
}

/// Which members to keep: `members[i]` is (takes requests on its own, may be
/// kept). Keeps nothing when at least `min` take requests; else the first
/// members that may be kept and do not take requests, up to the shortfall.
pub fn kept(members: &[(bool, bool)], min: usize) -> Vec<bool> {
    let serving = members.iter().filter(|(own, _)| *own).count();
    let mut missing = min.saturating_sub(serving);
    members
        .iter()
        .map(|&(own, eligible)| {
            let keep = missing > 0 && !own && eligible;
            if keep {
                missing -= 1;
            }
            keep
        })
        .collect()
}

impl ServerGroup {
    pub fn new(members: Vec<Arc<HealthEntry>>, min_servers: u32) -> ServerGroup {
        ServerGroup { members, min_servers: min_servers as usize, lock: Mutex::new(()) }
    }

    pub fn min_servers(&self) -> usize {
        self.min_servers
    }

    /// Applies `commit` to `member` (its state byte goes from `b` to
    /// `predict(b)`), keeping the group's `min_servers` in rotation before,
    /// during and after. With `member` `None` it only brings the marks up to
    /// date (a new or reloaded group).
    pub(crate) fn change(&self, member: Option<&HealthEntry>, predict: impl Fn(u8) -> u8, commit: impl FnOnce()) {
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let now: Vec<(bool, bool)> = self
            .members
            .iter()
            .map(|m| {
                let b = m.raw();
                let b = if member.is_some_and(|x| std::ptr::eq(x, &**m)) { predict(b) } else { b };
                (bits::routable(b & !bits::KEEP), bits::keepable(b))
            })
            .collect();
        let keep = kept(&now, self.min_servers);
        for (m, &k) in self.members.iter().zip(&keep) {
            if k {
                m.set_keep(true);
            }
        }
        commit();
        for (m, &k) in self.members.iter().zip(&keep) {
            if !k {
                m.set_keep(false);
            }
        }
    }

    pub fn members(&self) -> &[Arc<HealthEntry>] {
        &self.members
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HealthState;
    use crate::table::ServerKey;

    fn entry(server: &str) -> Arc<HealthEntry> {
        let key = ServerKey { pool: "pool01".into(), settings: "setting01".into(), server: server.into() };
        Arc::new(HealthEntry::new(key, Vec::new()))
    }

    #[test]
    fn the_first_failing_servers_make_up_the_shortfall() {
        // (takes requests on its own, may be kept)
        assert_eq!(kept(&[(false, true), (false, true)], 1), [true, false]);
        assert_eq!(kept(&[(false, true), (false, true), (false, true)], 2), [true, true, false]);
        // Enough on their own: nobody kept.
        assert_eq!(kept(&[(true, true), (false, true)], 1), [false, false]);
        // One short: the first failing one, wherever the healthy one is.
        assert_eq!(kept(&[(false, true), (true, true), (false, true)], 2), [true, false, false]);
        // Drained or removed servers are skipped.
        assert_eq!(kept(&[(false, false), (false, true)], 1), [false, true]);
        // More than the pool has: every eligible one.
        assert_eq!(kept(&[(false, true), (false, false)], 5), [true, false]);
        assert_eq!(kept(&[(false, true)], 0), [false]);
        assert!(kept(&[], 3).is_empty());
    }

    #[test]
    fn a_group_keeps_min_servers_in_rotation_through_every_change() {
        let (a, b) = (entry("a:80"), entry("b:80"));
        let g = Arc::new(ServerGroup::new(vec![a.clone(), b.clone()], 1));
        for e in [&a, &b] {
            e.join(&g);
        }
        g.change(None, |b| b, || {});
        // Never probed (serve): both take requests, nobody is kept.
        assert!(a.accepts_requests() && b.accepts_requests());
        assert!(!a.kept_by_min_servers() && !b.kept_by_min_servers());

        a.set_state(HealthState::Unhealthy);
        assert!(b.accepts_requests() && !a.kept_by_min_servers());
        b.set_state(HealthState::Unhealthy);
        // Both fail: the first in configured order is kept, with its real state.
        assert_eq!((a.state(), b.state()), (HealthState::Unhealthy, HealthState::Unhealthy));
        assert!(a.accepts_requests() && a.kept_by_min_servers());
        assert!(!b.accepts_requests() && !b.kept_by_min_servers());

        // The kept one drained by an operator: the next takes its place.
        assert!(a.set_admin_drain(true));
        assert!(!a.accepts_requests() && !a.kept_by_min_servers());
        assert!(b.accepts_requests() && b.kept_by_min_servers());
        assert!(a.set_admin_drain(false));
        assert!(a.kept_by_min_servers() && !b.kept_by_min_servers(), "back to configured order");

        // One recovers: nobody needs keeping any more.
        b.set_state(HealthState::Healthy);
        assert!(b.accepts_requests() && !b.kept_by_min_servers());
        assert!(!a.accepts_requests() && !a.kept_by_min_servers());
        // A server a reload removed is never kept.
        b.set_state(HealthState::Draining);
        assert!(a.kept_by_min_servers() && !b.accepts_requests());
    }

    /// The order of a change: the servers to keep are marked before the
    /// member's own change is made, and the ones no longer needed unmarked
    /// after, so at no instant is the group short of `min_servers`.
    #[test]
    fn keeps_are_marked_before_the_change_and_released_after() {
        let (a, b) = (entry("a:80"), entry("b:80"));
        let g = Arc::new(ServerGroup::new(vec![a.clone(), b.clone()], 1));
        for e in [&a, &b] {
            e.join(&g);
        }
        a.set_state(HealthState::Unhealthy);
        b.set_state(HealthState::Healthy);
        assert!(!a.accepts_requests() && b.accepts_requests());
        // b fails: a is already in rotation when b's byte changes.
        let down = |x| bits::with_state(x, HealthState::Unhealthy);
        g.change(Some(&b), down, || {
            assert!(a.accepts_requests() && a.kept_by_min_servers(), "b left before a was kept");
            b.apply(down);
        });
        assert!(a.accepts_requests() && !b.accepts_requests());
        // b recovers: a stays in rotation until b is back.
        let up = |x| bits::with_state(x, HealthState::Healthy);
        g.change(Some(&b), up, || {
            assert!(a.accepts_requests(), "a was released before b was back");
            b.apply(up);
        });
        assert!(!a.accepts_requests() && !a.kept_by_min_servers() && b.accepts_requests());
    }
}
