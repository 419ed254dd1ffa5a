//! Choosing a server: round-robin over the servers that accept requests,
//! or the one an affinity cookie names while it is healthy. Pure functions
//! over the health states, so fairness and affinity are tested without I/O.

/// The outcome of a pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Use this server (index into the pool); `from_cookie` when the affinity
    /// cookie chose it (so no new cookie needs to be set).
    Server { index: usize, from_cookie: bool },
    /// The pool has no server at all.
    PoolEmpty,
    /// No server accepts requests.
    AllUnhealthy,
}

/// Picks a server. `usable(i)` tells whether server `i` takes requests;
/// `cursor` is the worker's round-robin position for this rule; `affinity`
/// is the server the client's cookie names, if any.
#[inline]
pub fn pick(n: usize, cursor: &mut usize, affinity: Option<usize>, usable: impl Fn(usize) -> bool) -> Pick {
    pick_from(n, None, cursor, affinity, usable)
}

/// [`pick`] whose cursor walks `order`, a sequence of server indices (a
/// weighted schedule), instead of `0..n`.
pub fn pick_from(
    n: usize,
    order: Option<&[u16]>,
    cursor: &mut usize,
    affinity: Option<usize>,
    usable: impl Fn(usize) -> bool,
) -> Pick {
    if n == 0 {
        return Pick::PoolEmpty;
    }
    if let Some(i) = affinity
        && i < n
        && usable(i)
    {
        return Pick::Server { index: i, from_cookie: true };
    }
    let len = order.map_or(n, <[u16]>::len);
    for step in 0..len {
        let at = (*cursor + step) % len;
        let i = order.map_or(at, |o| usize::from(o[at]));
        if usable(i) {
            *cursor = (at + 1) % len;
            return Pick::Server { index: i, from_cookie: false };
        }
    }
    Pick::AllUnhealthy
}

/// The usable server with the fewest requests in flight, ties broken in
/// round-robin order from `cursor` (which then moves past the one chosen).
pub fn least_loaded(
    n: usize,
    cursor: &mut usize,
    inflight: impl Fn(usize) -> u32,
    usable: impl Fn(usize) -> bool,
) -> Option<usize> {
    let best = (0..n).map(|step| (*cursor + step) % n).filter(|&i| usable(i)).min_by_key(|&i| inflight(i))?;
    *cursor = (best + 1) % n;
    Some(best)
}

/// Of two distinct servers drawn with `random`, the usable one with fewer
/// requests in flight ("the power of two choices"); `None` when neither
/// drawn is usable (the caller keeps its round-robin pick).
pub fn random_two(
    n: usize,
    random: &mut u64,
    inflight: impl Fn(usize) -> u32,
    usable: impl Fn(usize) -> bool,
) -> Option<usize> {
    if n < 2 {
        return None;
    }
    let a = (xorshift(random) % n as u64) as usize;
    let b = (a + 1 + (xorshift(random) % (n as u64 - 1)) as usize) % n;
    match (usable(a), usable(b)) {
        (true, true) => Some(if inflight(b) < inflight(a) { b } else { a }),
        (true, false) => Some(a),
        (false, true) => Some(b),
        (false, false) => None,
    }
}

/// xorshift64: a worker's own random numbers, with no lock and no syscall.
#[inline]
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Slow start: does a server `age` into its `slow_start` ramp take this
/// turn? Its share grows linearly from 5% (so it is tried at once) to all of
/// its turns at the end of the ramp.
pub fn admit_ramping(age: std::time::Duration, slow_start: std::time::Duration, random: &mut u64) -> bool {
    if age >= slow_start {
        return true;
    }
    let permille = (age.as_millis() * 1000 / slow_start.as_millis().max(1)).max(50) as u64;
    xorshift(random) % 1000 < permille
}

/// One period of nginx's smooth weighted round robin over `weights`: each
/// server appears as often as its weight, spread out (3:1 gives a a b a,
/// not a a a b). `None` when all weights are equal: plain round robin.
pub fn weighted_schedule(weights: &[u32]) -> Option<Box<[u16]>> {
    if weights.is_empty() || weights.iter().all(|&w| w == weights[0]) || weights.len() > usize::from(u16::MAX) {
        return None;
    }
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        let best = (0..current.len()).fold(0, |b, i| if current[i] > current[b] { i } else { b });
        current[best] -= total;
        out.push(best as u16);
    }
    Some(out.into())
}

/// The affinity token of a server: derived from its identity (pool and
/// address) only, so every gateway instance with the same configuration
/// computes the same token and honours the others' cookies.
pub fn affinity_token(pool: &str, server: &str) -> String {
    format!("{:016x}", fnv1a(pool.bytes().chain([0u8]).chain(server.bytes())))
}

/// FNV-1a: stable across builds, platforms and processes, unlike std's
/// hasher, which is what a token shared between instances needs.
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Finds the value of cookie `name` in a Cookie header value.
pub fn find_cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        (trim(&pair[..eq]) == name).then(|| {
            let v = trim(&pair[eq + 1..]);
            v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v)
        })
    })
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_all_down() {
        let mut c = 0;
        assert_eq!(pick(0, &mut c, None, |_| true), Pick::PoolEmpty);
        // Least loaded: the fewest in flight, ties in turn.
        let load = [3u32, 1, 1];
        let mut cur = 0;
        assert_eq!(least_loaded(3, &mut cur, |i| load[i], |_| true), Some(1));
        assert_eq!(least_loaded(3, &mut cur, |i| load[i], |_| true), Some(2), "the tie goes round");
        assert_eq!(least_loaded(3, &mut cur, |i| load[i], |i| i == 0), Some(0));
        assert_eq!(least_loaded(3, &mut cur, |i| load[i], |_| false), None);
        // Random two: never the busier of the two drawn, over many draws.
        let mut r = 0x1234_5678_9abc_def1u64;
        let load = [100u32, 0];
        for _ in 0..50 {
            assert_eq!(random_two(2, &mut r, |i| load[i], |_| true), Some(1));
        }
        assert_eq!(random_two(2, &mut r, |i| load[i], |i| i == 0), Some(0), "the usable one of the two");
        assert_eq!(random_two(2, &mut r, |i| load[i], |_| false), None);
        assert_eq!(random_two(1, &mut r, |i| load[i], |_| true), None);
        // Weights 3:1, smooth: a a b a, and a down server's turns go on.
        let order = weighted_schedule(&[3, 1]).expect("unequal weights");
        assert_eq!(&*order, &[0, 0, 1, 0]);
        assert_eq!(weighted_schedule(&[2, 2]), None, "equal weights: plain round robin");
        let mut c = 0;
        let got: Vec<usize> = (0..8)
            .map(|_| match pick_from(2, Some(&order), &mut c, None, |_| true) {
                Pick::Server { index, .. } => index,
                p => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(got, [0, 0, 1, 0, 0, 0, 1, 0]);
        assert_eq!(pick_from(2, Some(&order), &mut c, None, |i| i == 1), Pick::Server { index: 1, from_cookie: false });
        let mut c = 0;
        assert_eq!(pick(3, &mut c, None, |_| false), Pick::AllUnhealthy);
    }

    #[test]
    fn a_ramping_server_takes_a_growing_share() {
        use std::time::Duration;
        let ramp = Duration::from_secs(100);
        let mut r = 0x1234_5678_9abc_def1u64;
        let share =
            |age: u64, r: &mut u64| (0..10_000).filter(|_| admit_ramping(Duration::from_secs(age), ramp, r)).count();
        let (start, half, end) = (share(0, &mut r), share(50, &mut r), share(100, &mut r));
        assert!((300..=700).contains(&start), "5% at first: {start}");
        assert!((4_500..=5_500).contains(&half), "half way: {half}");
        assert_eq!(end, 10_000, "the ramp is over");
    }

    #[test]
    fn round_robin_skips_unusable_servers() {
        let mut c = 0;
        let usable = |i: usize| i != 1;
        let seq: Vec<usize> = (0..6)
            .map(|_| match pick(3, &mut c, None, usable) {
                Pick::Server { index, .. } => index,
                p => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(seq, vec![0, 2, 0, 2, 0, 2]);
    }

    #[test]
    fn affinity_wins_while_healthy() {
        let mut c = 0;
        assert_eq!(pick(3, &mut c, Some(2), |_| true), Pick::Server { index: 2, from_cookie: true });
        assert_eq!(pick(3, &mut c, Some(2), |i| i != 2), Pick::Server { index: 0, from_cookie: false });
        assert_eq!(pick(3, &mut c, Some(7), |_| true), Pick::Server { index: 1, from_cookie: false });
    }

    #[test]
    fn tokens_are_stable_and_distinct() {
        assert_eq!(affinity_token("pool01", "10.0.0.10:80"), affinity_token("pool01", "10.0.0.10:80"));
        // Pinned: instances (and versions) must agree on the token, so a
        // change of algorithm would break every client's affinity.
        assert_eq!(affinity_token("pool01", "10.0.0.10:80"), "dcc50af761ddc29a");
        assert_ne!(affinity_token("pool01", "10.0.0.10:80"), affinity_token("pool01", "10.0.0.11:80"));
        assert_ne!(affinity_token("pool0", "110.0.0.10:80"), affinity_token("pool01", "10.0.0.10:80"));
        assert_eq!(affinity_token("p", "s").len(), 16);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = b"a=1; ApplicationGatewayAffinity=abc ; b=\"2\"";
        assert_eq!(find_cookie(h, b"ApplicationGatewayAffinity"), Some(&b"abc"[..]));
        assert_eq!(find_cookie(h, b"b"), Some(&b"2"[..]));
        assert_eq!(find_cookie(h, b"c"), None);
        assert_eq!(find_cookie(b"", b"a"), None);
        assert_eq!(find_cookie(b"junk;;=;a", b"a"), None);
    }

    proptest! {
        /// Over any health pattern, round-robin spreads n*k picks evenly over
        /// the usable servers and never picks an unusable one.
        #[test]
        fn round_robin_is_fair(mask in prop::collection::vec(any::<bool>(), 1..12), rounds in 1usize..20, start in 0usize..12) {
            let n = mask.len();
            let up: Vec<usize> = (0..n).filter(|&i| mask[i]).collect();
            let mut c = start % n;
            let mut counts = vec![0usize; n];
            for _ in 0..rounds * up.len().max(1) {
                match pick(n, &mut c, None, |i| mask[i]) {
                    Pick::Server { index, .. } => counts[index] += 1,
                    Pick::AllUnhealthy => prop_assert!(up.is_empty()),
                    Pick::PoolEmpty => prop_assert!(false),
                }
            }
            for i in 0..n {
                if mask[i] { prop_assert_eq!(counts[i], rounds) } else { prop_assert_eq!(counts[i], 0) }
            }
        }
    }
}
