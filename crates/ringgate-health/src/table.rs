//! The health table. Workers read a server's state with one relaxed atomic
//! load per request; only the prober writes. Each entry is its own allocation
//! with its hot fields on their own cache line, so a prober write to one
//! server never invalidates the line a worker reads for another.
//!
//! Entries are keyed by (backend HTTP settings, pool, server) and outlive a
//! configuration reload: a server present before and after keeps its state.
//!
//! A server's state byte holds its probe state, an operator's drain, the
//! `min_servers` keep mark (see [`crate::group`]) and, recomputed by every
//! writer from those, whether it takes new requests: the one bit a worker's
//! pick reads.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;
use ringgate_config::{ServerHost, UnprobedServers};

use crate::group::ServerGroup;
use crate::state::{Counters, HealthState, ProbeFailure};

/// Identity of a health entry: the reference's "(backend HTTP settings, pool)
/// pair", and the server within the pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    pub pool: String,
    pub settings: String,
    /// The server as `host:port`, with the port the settings give it.
    pub server: String,
}

impl ServerKey {
    /// The key of server `server` of pool `pool` reached through `settings`.
    pub fn of(
        config: &ringgate_config::Config,
        pool: usize,
        settings: ringgate_config::SettingsId,
        server: usize,
    ) -> ServerKey {
        let s = &config.settings[settings.0];
        ServerKey {
            pool: config.pools[pool].name.clone(),
            settings: s.name.clone(),
            server: config.pools[pool].servers[server].display_with(s.port),
        }
    }
}

impl fmt::Display for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool {} / settings {} / server {}", self.pool, self.settings, self.server)
    }
}

/// What the prober last saw of a server, for the backend-health view. Only the
/// prober and the admin API touch it, never the request path.
#[derive(Debug, Clone, Default)]
pub struct ProbeDetail {
    pub last_probe: Option<SystemTime>,
    pub last_status: Option<u16>,
    pub last_latency: Option<Duration>,
    pub counters: Counters,
    /// Why the last failed probe failed.
    pub last_failure: Option<ProbeFailure>,
    /// When the state last changed.
    pub state_since: Option<SystemTime>,
    pub probes: u64,
    pub failures: u64,
    /// Failed probes by reason kind (`ProbeFailure::kind`).
    pub failures_by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Failures reported by workers on live traffic.
    pub passive_failures: u64,
    /// The addresses a host name resolved to, or the resolver's error.
    pub dns: Option<Result<Vec<SocketAddr>, String>>,
}

/// The layout of a server's state byte, and the pure functions over it.
pub(crate) mod bits {
    use crate::state::HealthState;

    /// The probe state, a [`HealthState`].
    pub const STATE: u8 = 0x03;
    /// Takes new requests: derived from the other bits by [`settle`] on
    /// every write, so the request path tests one bit.
    pub const ROUTABLE: u8 = 0x10;
    /// `unprobed_servers = "wait"`: a server not yet probed (state
    /// Unknown) takes no requests. A copy of the gateway's setting, so that
    /// [`routable`] needs nothing but the byte.
    pub const WAIT: u8 = 0x20;
    /// Kept in rotation by its probe's `min_servers`.
    pub const KEEP: u8 = 0x40;
    /// Drained by an operator (admin API), whatever its probes say.
    pub const DRAIN: u8 = 0x80;

    pub fn state(b: u8) -> HealthState {
        HealthState::from_u8(b & STATE)
    }

    pub fn with_state(b: u8, s: HealthState) -> u8 {
        (b & !STATE) | s as u8
    }

    /// Whether a server whose byte is `b` takes new requests.
    pub fn routable(b: u8) -> bool {
        if b & DRAIN != 0 {
            return false;
        }
        match state(b) {
            HealthState::Healthy => true,
            HealthState::Unknown => b & WAIT == 0 || b & KEEP != 0,
            HealthState::Unhealthy => b & KEEP != 0,
            HealthState::Draining => false,
        }
    }

    /// Not probed yet under `unprobed_servers = "wait"`: a pool with no
    /// server in rotation and one such server answers `NOT_YET_PROBED`.
    pub fn awaiting_first_probe(b: u8) -> bool {
        b & WAIT != 0 && b & DRAIN == 0 && state(b) == HealthState::Unknown
    }

    /// Whether `min_servers` may keep it: not drained, not removed.
    pub fn keepable(b: u8) -> bool {
        b & DRAIN == 0 && state(b) != HealthState::Draining
    }

    /// `b` with [`ROUTABLE`] recomputed.
    pub fn settle(b: u8) -> u8 {
        let b = b & !ROUTABLE;
        if routable(b) { b | ROUTABLE } else { b }
    }
}

#[derive(Debug)]
struct Hot {
    /// See [`bits`].
    state: AtomicU8,
    /// Bumped each time `addrs` changes, so workers re-read it only then.
    addrs_generation: AtomicU64,
    addrs: ArcSwap<Vec<SocketAddr>>,
    /// A worker saw a connect failure or reset: probe at once.
    probe_requested: AtomicBool,
    /// When the state last changed, in ms since [`epoch`].
    changed_ms: AtomicU64,
    /// When the server last came back into rotation (Unhealthy to Healthy,
    /// or enabled after an admin drain), in ms since [`epoch`]; 0: never
    /// (a server healthy since its first probe is not ramped up).
    recovered_ms: AtomicU64,
}

/// The process-wide origin of `changed_ms`.
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// One server's health, shared by all workers.
#[derive(Debug)]
pub struct HealthEntry {
    hot: CachePadded<Hot>,
    key: ServerKey,
    detail: Mutex<ProbeDetail>,
    /// The (pool, settings) group it belongs to, for `min_servers`; weak, as
    /// the group holds its members.
    group: Mutex<Weak<ServerGroup>>,
}

impl HealthEntry {
    /// A never-probed server that takes requests meanwhile
    /// (`unprobed_servers = "serve"`).
    pub fn new(key: ServerKey, addrs: Vec<SocketAddr>) -> HealthEntry {
        Self::with_unprobed(key, addrs, UnprobedServers::Serve)
    }

    /// A never-probed server under the gateway's `unprobed_servers`.
    pub fn with_unprobed(key: ServerKey, addrs: Vec<SocketAddr>, unprobed: UnprobedServers) -> HealthEntry {
        let wait = if unprobed == UnprobedServers::Wait { bits::WAIT } else { 0 };
        HealthEntry {
            hot: CachePadded::new(Hot {
                state: AtomicU8::new(bits::settle(HealthState::Unknown as u8 | wait)),
                addrs_generation: AtomicU64::new(0),
                addrs: ArcSwap::from_pointee(addrs),
                probe_requested: AtomicBool::new(false),
                changed_ms: AtomicU64::new(now_ms()),
                recovered_ms: AtomicU64::new(0),
            }),
            key,
            detail: Mutex::new(ProbeDetail::default()),
            group: Mutex::new(Weak::new()),
        }
    }

    pub fn key(&self) -> &ServerKey {
        &self.key
    }

    /// The whole state byte (see [`bits`]).
    pub(crate) fn raw(&self) -> u8 {
        self.hot.state.load(Ordering::Relaxed)
    }

    /// Changes the byte by `f`, recomputing [`bits::ROUTABLE`]; returns the
    /// old byte. Not through the group: for the group itself and for
    /// entries without one.
    pub(crate) fn apply(&self, f: impl Fn(u8) -> u8) -> u8 {
        self.hot
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| Some(bits::settle(f(old))))
            .unwrap_or_else(|v| v)
    }

    /// Changes the byte by `f`, through the server's `min_servers` group
    /// when it has one (so the group's other members are kept before this
    /// one leaves rotation); returns the old byte. Takes the group's lock,
    /// never the detail lock.
    fn write(&self, f: impl Fn(u8) -> u8) -> u8 {
        let group = self.group.lock().unwrap_or_else(|e| e.into_inner()).upgrade();
        match group {
            Some(g) if g.min_servers() > 0 => {
                let mut prev = 0;
                g.change(Some(self), &f, || prev = self.apply(&f));
                prev
            }
            _ => self.apply(f),
        }
    }

    /// Marks or unmarks the server as kept in rotation by `min_servers`
    /// (its group only).
    pub(crate) fn set_keep(&self, keep: bool) {
        if (self.raw() & bits::KEEP != 0) != keep {
            self.apply(|b| if keep { b | bits::KEEP } else { b & !bits::KEEP });
        }
    }

    /// Makes `group` the server's `min_servers` group.
    pub(crate) fn join(&self, group: &Arc<ServerGroup>) {
        *self.group.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(group);
    }

    /// Whether the server takes new requests: one relaxed load, the request
    /// path's only cost. Healthy or never probed, or kept in rotation by
    /// `min_servers`; not drained, not removed.
    #[inline]
    pub fn accepts_requests(&self) -> bool {
        self.hot.state.load(Ordering::Relaxed) & bits::ROUTABLE != 0
    }

    /// Whether it has had no probe result yet and, under
    /// `unprobed_servers = "wait"`, takes no requests until it has.
    pub fn awaiting_first_probe(&self) -> bool {
        bits::awaiting_first_probe(self.raw())
    }

    /// The `unprobed_servers` this server is under.
    pub fn unprobed(&self) -> UnprobedServers {
        if self.raw() & bits::WAIT != 0 { UnprobedServers::Wait } else { UnprobedServers::Serve }
    }

    /// Puts the server under `unprobed_servers = unprobed` (a reload that
    /// changes it). Switching to "wait", a server that has been probed
    /// without ever succeeding is Unhealthy, as if it had been under "wait"
    /// from the start.
    pub fn set_unprobed(&self, unprobed: UnprobedServers) {
        if self.unprobed() == unprobed {
            return;
        }
        let wait = unprobed == UnprobedServers::Wait;
        self.write(|b| if wait { b | bits::WAIT } else { b & !bits::WAIT });
        if wait && self.probe_state() == HealthState::Unknown && self.detail().probes > 0 {
            self.set_state(HealthState::Unhealthy);
        }
    }

    /// Whether it takes requests only because its probe's `min_servers`
    /// keeps it in rotation (its probes fail).
    pub fn kept_by_min_servers(&self) -> bool {
        let b = self.raw();
        b & bits::KEEP != 0 && !bits::routable(b & !bits::KEEP)
    }

    /// The server's state as operators see it. A server an operator drained
    /// (`set_admin_drain`) is `Draining`, whatever its probes say; one kept
    /// by `min_servers` shows its real probe state.
    #[inline]
    pub fn state(&self) -> HealthState {
        let v = self.raw();
        if v & bits::DRAIN != 0 { HealthState::Draining } else { bits::state(v) }
    }

    /// The state the probes gave, drained or not: what the prober's state
    /// machine goes on from.
    pub fn probe_state(&self) -> HealthState {
        bits::state(self.raw())
    }

    /// Drains the server (no new requests; clients its affinity cookie pins
    /// keep it for the settings' connection-draining time-out) or enables it
    /// again (admin API). Returns whether this changed anything.
    pub fn set_admin_drain(&self, drain: bool) -> bool {
        let prev = self.write(|b| if drain { b | bits::DRAIN } else { b & !bits::DRAIN });
        let changed = (prev & bits::DRAIN != 0) != drain;
        if changed {
            if !drain {
                self.mark_recovered();
            }
            self.hot.changed_ms.store(now_ms(), Ordering::Relaxed);
            self.detail().state_since = Some(SystemTime::now());
        }
        changed
    }

    /// Whether an operator drained the server.
    pub fn admin_drained(&self) -> bool {
        self.raw() & bits::DRAIN != 0
    }

    /// Sets the state (the prober, or a reload marking a server draining).
    pub fn set_state(&self, s: HealthState) {
        let prev = self.write(|b| bits::with_state(b, s));
        self.note_recovery(bits::state(prev), s);
        if bits::state(prev) != s {
            self.hot.changed_ms.store(now_ms(), Ordering::Relaxed);
            self.detail().state_since = Some(SystemTime::now());
        }
    }

    fn note_recovery(&self, prev: HealthState, now: HealthState) {
        if prev == HealthState::Unhealthy && now == HealthState::Healthy {
            self.mark_recovered();
        }
    }

    fn mark_recovered(&self) {
        // `max(1)`: 0 means "never".
        self.hot.recovered_ms.store(now_ms().max(1), Ordering::Relaxed);
    }

    /// How long ago the server came back into rotation after being
    /// unhealthy or drained (`None`: it never was out), for `slow_start`.
    #[inline]
    pub fn since_recovery(&self) -> Option<std::time::Duration> {
        match self.hot.recovered_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(std::time::Duration::from_millis(now_ms().saturating_sub(at))),
        }
    }

    /// How long the server has been in its current state (for connection
    /// draining: an affinity client keeps a server that just turned
    /// unhealthy for the settings' draining time-out).
    pub fn state_age(&self) -> std::time::Duration {
        std::time::Duration::from_millis(now_ms().saturating_sub(self.hot.changed_ms.load(Ordering::Relaxed)))
    }

    /// Sets the state while the caller holds the detail lock.
    pub fn set_state_locked(&self, detail: &mut ProbeDetail, s: HealthState) {
        let prev = self.write(|b| bits::with_state(b, s));
        self.note_recovery(bits::state(prev), s);
        if bits::state(prev) != s {
            self.hot.changed_ms.store(now_ms(), Ordering::Relaxed);
            detail.state_since = Some(SystemTime::now());
        }
    }

    /// Generation of the resolved addresses; compare before calling [`Self::addrs`].
    #[inline]
    pub fn addrs_generation(&self) -> u64 {
        self.hot.addrs_generation.load(Ordering::Acquire)
    }

    /// Where the server can be reached (empty: its name does not resolve).
    pub fn addrs(&self) -> Arc<Vec<SocketAddr>> {
        self.hot.addrs.load_full()
    }

    pub fn set_addrs(&self, addrs: Vec<SocketAddr>) {
        if **self.hot.addrs.load() != addrs {
            self.hot.addrs.store(Arc::new(addrs));
            self.hot.addrs_generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Asks the prober to probe this server now (passive health). Returns
    /// false when a request is already pending, so a burst of failing
    /// requests makes one report, not thousands.
    pub fn request_probe(&self) -> bool {
        !self.hot.probe_requested.swap(true, Ordering::AcqRel)
    }

    /// Takes a pending passive-health request.
    pub fn take_probe_request(&self) -> bool {
        self.hot.probe_requested.swap(false, Ordering::AcqRel)
    }

    /// The probe detail (locked: admin API and prober only).
    pub fn detail(&self) -> MutexGuard<'_, ProbeDetail> {
        // A panic while holding this lock cannot leave the detail
        // inconsistent in a way that matters more than losing the view.
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every server's entry, by key. The map is locked only when a configuration
/// is planned or the admin API lists entries; workers hold `Arc`s to entries.
#[derive(Debug, Default)]
pub struct HealthTable {
    entries: Mutex<HashMap<ServerKey, Arc<HealthEntry>>>,
    draining: Mutex<Vec<Arc<HealthEntry>>>,
    /// The `min_servers` groups of the configuration being served (their
    /// members link to them weakly).
    groups: Mutex<Vec<Arc<ServerGroup>>>,
    /// `unprobed_servers = "wait"` for servers created from now on.
    wait_unprobed: AtomicBool,
}

impl HealthTable {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock_entries(&self) -> MutexGuard<'_, HashMap<ServerKey, Arc<HealthEntry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_draining(&self) -> MutexGuard<'_, Vec<Arc<HealthEntry>>> {
        self.draining.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `unprobed_servers` of servers created from now on.
    pub fn unprobed(&self) -> UnprobedServers {
        if self.wait_unprobed.load(Ordering::Relaxed) { UnprobedServers::Wait } else { UnprobedServers::Serve }
    }

    /// Applies a configuration's `unprobed_servers` to every server, and to
    /// those created from now on. Call it before the configuration's plan
    /// builds its entries (at start), or right after (a reload; a server
    /// that reload adds is then under the old setting for that moment).
    pub fn set_unprobed(&self, unprobed: UnprobedServers) {
        self.wait_unprobed.store(unprobed == UnprobedServers::Wait, Ordering::Relaxed);
        let entries: Vec<Arc<HealthEntry>> = self.lock_entries().values().cloned().collect();
        for e in entries {
            e.set_unprobed(unprobed);
        }
    }

    /// The entry for `key`, created (state Unknown) if new.
    pub fn entry(&self, key: &ServerKey, addrs: impl FnOnce() -> Vec<SocketAddr>) -> Arc<HealthEntry> {
        let mut map = self.lock_entries();
        if let Some(e) = map.get(key) {
            return e.clone();
        }
        let e = Arc::new(HealthEntry::with_unprobed(key.clone(), addrs(), self.unprobed()));
        map.insert(key.clone(), e.clone());
        e
    }

    /// The entry of a server reached at `host:port`, created and resolved if
    /// new. A host name that does not resolve leaves the server without
    /// addresses and marks it unhealthy with the resolver's error.
    pub fn ensure(&self, key: &ServerKey, host: &ServerHost, port: u16) -> Arc<HealthEntry> {
        if let Some(e) = self.get(key) {
            return e;
        }
        let resolved = crate::dns::resolve(host, port);
        let entry = self.entry(key, || resolved.clone().unwrap_or_default());
        if let ServerHost::Name(_) = host {
            let failed = resolved.is_err();
            {
                let mut d = entry.detail();
                if let Err(e) = &resolved {
                    d.last_failure = Some(ProbeFailure::DnsFailure(e.clone()));
                }
                d.dns = Some(resolved);
            }
            if failed {
                entry.set_state(HealthState::Unhealthy);
            }
        }
        entry
    }

    /// Keeps only the entries in `live`; the others are marked draining and
    /// listed until nothing uses them any more.
    pub fn retain(&self, live: &[ServerKey]) {
        let mut map = self.lock_entries();
        let mut draining = self.lock_draining();
        let removed: Vec<ServerKey> = map.keys().filter(|k| !live.contains(k)).cloned().collect();
        for k in removed {
            if let Some(e) = map.remove(&k) {
                e.set_state(HealthState::Draining);
                draining.push(e);
            }
        }
        // A server removed and added back within one reload got a fresh
        // entry from `entry`; the old one only finishes its requests.
        draining.retain(|e| Arc::strong_count(e) > 1);
    }

    /// Current entries, sorted by key, then the draining ones still in use.
    pub fn list(&self) -> Vec<Arc<HealthEntry>> {
        let mut v: Vec<Arc<HealthEntry>> = self.lock_entries().values().cloned().collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        let mut draining = self.lock_draining();
        draining.retain(|e| Arc::strong_count(e) > 1);
        v.extend(draining.iter().cloned());
        v
    }

    pub fn get(&self, key: &ServerKey) -> Option<Arc<HealthEntry>> {
        self.lock_entries().get(key).cloned()
    }

    /// Replaces the `min_servers` groups (one per (pool, settings) pair a
    /// configuration's rules use) and brings every member's keep mark up to
    /// date: a new or changed `min_servers` applies at once.
    pub fn set_groups(&self, groups: Vec<Arc<ServerGroup>>) {
        for g in &groups {
            for m in g.members() {
                m.join(g);
            }
            g.change(None, |b| b, || {});
        }
        *self.groups.lock().unwrap_or_else(|e| e.into_inner()) = groups;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_drain_overlays_the_probe_state_and_outlives_its_changes() {
        let e = HealthEntry::new(key("d:1"), Vec::new());
        e.set_state(HealthState::Healthy);
        assert!(e.set_admin_drain(true));
        assert!(!e.set_admin_drain(true), "already drained");
        assert_eq!((e.state(), e.probe_state()), (HealthState::Draining, HealthState::Healthy));
        // The prober goes on: its state changes under the drain.
        e.set_state(HealthState::Unhealthy);
        assert_eq!((e.state(), e.probe_state()), (HealthState::Draining, HealthState::Unhealthy));
        assert!(e.set_admin_drain(false));
        assert_eq!(e.state(), HealthState::Unhealthy);
        assert!(!e.admin_drained());
    }

    #[test]
    fn recovery_is_marked_on_coming_back_not_on_the_first_probe() {
        let e = HealthEntry::new(key("r:1"), Vec::new());
        e.set_state(HealthState::Healthy);
        assert_eq!(e.since_recovery(), None, "healthy from the first probe: no ramp");
        e.set_state(HealthState::Unhealthy);
        assert_eq!(e.since_recovery(), None);
        e.set_state(HealthState::Healthy);
        assert!(e.since_recovery().is_some_and(|d| d < std::time::Duration::from_secs(5)));

        let d = HealthEntry::new(key("r:2"), Vec::new());
        d.set_state(HealthState::Healthy);
        d.set_admin_drain(true);
        assert_eq!(d.since_recovery(), None);
        d.set_admin_drain(false);
        assert!(d.since_recovery().is_some(), "enabled after a drain: ramped");
    }

    fn key(s: &str) -> ServerKey {
        ServerKey { pool: "pool01".into(), settings: "setting01".into(), server: s.into() }
    }

    #[test]
    fn entries_survive_a_reload_and_removed_ones_drain() {
        let t = HealthTable::new();
        let a = t.entry(&key("10.0.0.1:80"), Vec::new);
        let b = t.entry(&key("10.0.0.2:80"), Vec::new);
        a.set_state(HealthState::Unhealthy);
        // Planned again: same entry, same state.
        let a2 = t.entry(&key("10.0.0.1:80"), Vec::new);
        assert!(Arc::ptr_eq(&a, &a2));
        assert_eq!(a2.state(), HealthState::Unhealthy);

        t.retain(&[key("10.0.0.1:80")]);
        assert_eq!(b.state(), HealthState::Draining);
        assert_eq!(t.list().len(), 2, "b is still used, so still listed");
        drop(b);
        assert_eq!(t.list().len(), 1, "b is gone once unused");
    }

    #[test]
    fn passive_reports_are_deduplicated() {
        let e = HealthEntry::new(key("x:1"), Vec::new());
        assert!(e.request_probe());
        assert!(!e.request_probe());
        assert!(e.take_probe_request());
        assert!(!e.take_probe_request());
        assert!(e.request_probe());
    }

    #[test]
    fn address_changes_bump_the_generation() {
        let e = HealthEntry::new(key("app.internal:80"), Vec::new());
        let g = e.addrs_generation();
        e.set_addrs(vec!["10.0.0.1:80".parse().unwrap()]);
        assert_eq!(e.addrs_generation(), g + 1);
        e.set_addrs(vec!["10.0.0.1:80".parse().unwrap()]);
        assert_eq!(e.addrs_generation(), g + 1, "same addresses: no change");
        assert_eq!(*e.addrs(), vec!["10.0.0.1:80".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn under_wait_a_never_probed_server_takes_no_requests() {
        let serve = HealthEntry::new(key("s:1"), Vec::new());
        assert!(serve.accepts_requests() && !serve.awaiting_first_probe());
        let wait = HealthEntry::with_unprobed(key("w:1"), Vec::new(), UnprobedServers::Wait);
        assert_eq!(wait.state(), HealthState::Unknown);
        assert!(!wait.accepts_requests() && wait.awaiting_first_probe());
        wait.set_state(HealthState::Healthy);
        assert!(wait.accepts_requests() && !wait.awaiting_first_probe());

        // The table hands out entries under its setting, and a change of
        // setting reaches every entry: one probed without success is
        // Unhealthy under "wait", a never-probed one waits.
        let t = HealthTable::new();
        let probed = t.entry(&key("p:1"), Vec::new);
        let fresh = t.entry(&key("f:1"), Vec::new);
        probed.detail().probes = 1;
        assert!(probed.accepts_requests() && fresh.accepts_requests());
        t.set_unprobed(UnprobedServers::Wait);
        assert_eq!(probed.state(), HealthState::Unhealthy);
        assert!(fresh.awaiting_first_probe() && !fresh.accepts_requests());
        assert!(t.entry(&key("n:1"), Vec::new).awaiting_first_probe());
        t.set_unprobed(UnprobedServers::Serve);
        assert!(fresh.accepts_requests() && !fresh.awaiting_first_probe());
        // An operator's drain wins over both.
        fresh.set_admin_drain(true);
        assert!(!fresh.accepts_requests());
    }

    #[test]
    fn entries_are_cache_padded() {
        assert!(std::mem::align_of::<HealthEntry>() >= 64);
    }
}
