//! `GET /recent`: the time-outs and backend responses of each rule over the
//! last `recent_window` ([gateway], default 5 minutes), where `/metrics`
//! counts since the start. `ringgate doctor` reads it, so a time-out storm
//! of yesterday is not reported as today's cause.
//!
//! A sampler thread reads every rule's counters (summed over workers) every
//! `recent_window / 60` (at least 100 ms, at most 5 s) into a ring that spans
//! the window. A request subtracts the newest sample at least a window old
//! (the zero counters of the start, while the gateway is younger than the
//! window) from the counters read then, and says which span that covered.
//! Nothing of this is on the request path: workers only write the counters
//! they always write.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringgate_config::Config;
use ringgate_http::ErrorCode;
use ringgate_proxy::Shared;
use ringgate_proxy::metrics::{LATENCY_BUCKETS_US, RuleLabels, RuleSeries};
use serde::{Deserialize, Serialize};

/// One rule's counters at one moment, summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    timeouts: u64,
    /// Backend responses per latency bucket (not cumulative), the last one
    /// over the highest bound.
    buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
}

impl Counts {
    /// What happened between `base` and `self` (counters only grow; a
    /// series that was not there yet counts from zero).
    fn since(&self, base: Option<&Counts>) -> Counts {
        let Some(b) = base else { return *self };
        let mut d = Counts { timeouts: self.timeouts.saturating_sub(b.timeouts), ..Counts::default() };
        for (i, n) in d.buckets.iter_mut().enumerate() {
            *n = self.buckets[i].saturating_sub(b.buckets[i]);
        }
        d
    }
}

/// Requests of a rule answered 502 TIMEOUT, summed over workers and status
/// classes. The one place that knows where time-outs are counted.
fn timeouts(series: &RuleSeries) -> u64 {
    series.iter().map(|m| m.errors_of(ErrorCode::Timeout)).sum()
}

/// Every rule series' counters now.
fn read(shared: &Shared) -> HashMap<RuleLabels, Counts> {
    shared
        .metrics
        .rules()
        .into_iter()
        .map(|(labels, series)| {
            let mut c = Counts { timeouts: timeouts(&series), ..Counts::default() };
            for m in series.iter() {
                for (i, b) in m.response_latency.buckets.iter().enumerate() {
                    c.buckets[i] += b.get();
                }
            }
            (labels, c)
        })
        .collect()
}

/// The admin API's answer to `GET /recent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentView {
    /// `recent_window`, in seconds.
    pub window_seconds: f64,
    /// How often the counters are sampled; the span covered is the window
    /// plus up to this much (less while the gateway is younger than it).
    pub sample_every_seconds: f64,
    /// One entry per (listener, rule, backend pool) that forwards.
    pub rules: Vec<RecentRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentRule {
    pub listener: String,
    pub rule: String,
    pub pool: String,
    /// The span these figures cover, in seconds.
    pub covered_seconds: f64,
    /// Requests answered 502 TIMEOUT.
    pub timeouts: u64,
    /// Backend responses (response heads received).
    pub responses: u64,
    /// Of those, how many took longer than `slow_threshold_seconds`.
    pub slow_responses: u64,
    /// 80% of the rule's request time-out (the shortest of its backend HTTP
    /// settings on that pool), down to the latency histogram's bucket bound
    /// at or below it.
    pub slow_threshold_seconds: f64,
}

struct Sample {
    at: Instant,
    counts: HashMap<RuleLabels, Counts>,
}

/// The ring of samples.
#[derive(Debug)]
pub struct Recent {
    window: Duration,
    every: Duration,
    ring: Mutex<VecDeque<Sample>>,
}

impl std::fmt::Debug for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample").field("series", &self.counts.len()).finish_non_exhaustive()
    }
}

impl Recent {
    /// An empty history of `window`, whose counters were all zero at `start`.
    fn new(window: Duration, start: Instant) -> Recent {
        let every = (window / 60).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let first = Sample { at: start, counts: HashMap::new() };
        Recent { window, every, ring: Mutex::new(VecDeque::from([first])) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the counters read at `at`, and forgets samples no request can
    /// need any more: all but the newest at least a window old.
    fn record(&self, at: Instant, counts: HashMap<RuleLabels, Counts>) {
        let mut ring = self.lock();
        ring.push_back(Sample { at, counts });
        if let Some(edge) = at.checked_sub(self.window) {
            while ring.len() > 1 && ring[1].at <= edge {
                ring.pop_front();
            }
        }
    }

    /// The figures between the base sample and `current`, read at `now`;
    /// `limit` gives the request time-out of a series (`None`: the series
    /// forwards to no pool, and is left out).
    fn view(
        &self,
        now: Instant,
        current: &HashMap<RuleLabels, Counts>,
        limit: impl Fn(&RuleLabels) -> Option<Duration>,
    ) -> RecentView {
        let ring = self.lock();
        let edge = now.checked_sub(self.window);
        let base = edge
            .and_then(|edge| ring.iter().rev().find(|s| s.at <= edge))
            .or_else(|| ring.front())
            .map(|s| (s.at, &s.counts));
        let covered = base.map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(at));
        let mut rules: Vec<RecentRule> = current
            .iter()
            .filter_map(|(labels, now_counts)| {
                let limit = limit(labels)?;
                let d = now_counts.since(base.and_then(|(_, b)| b.get(labels)));
                let (slow, threshold) = slow(&d.buckets, limit.mul_f64(0.8));
                Some(RecentRule {
                    listener: labels.listener.clone(),
                    rule: labels.rule.clone(),
                    pool: labels.pool.clone(),
                    covered_seconds: covered.as_secs_f64(),
                    timeouts: d.timeouts,
                    responses: d.buckets.iter().sum(),
                    slow_responses: slow,
                    slow_threshold_seconds: threshold.as_secs_f64(),
                })
            })
            .collect();
        rules.sort_by(|a, b| (&a.listener, &a.rule, &a.pool).cmp(&(&b.listener, &b.rule, &b.pool)));
        RecentView { window_seconds: self.window.as_secs_f64(), sample_every_seconds: self.every.as_secs_f64(), rules }
    }

    /// `GET /recent` now.
    pub fn view_now(&self, shared: &Shared) -> RecentView {
        let plan = shared.plan();
        let current = read(shared);
        self.view(Instant::now(), &current, |l| request_timeout(&plan.config, l))
    }
}

/// Responses slower than `threshold`, counted from per-bucket counts: those
/// above the highest bucket bound at or below it, and that bound.
fn slow(buckets: &[u64; LATENCY_BUCKETS_US.len() + 1], threshold: Duration) -> (u64, Duration) {
    let us = threshold.as_micros().min(u128::from(u64::MAX)) as u64;
    // Buckets 0..fast hold responses at or below the bound used.
    let fast = LATENCY_BUCKETS_US.partition_point(|&b| b <= us);
    let bound = fast.checked_sub(1).map_or(Duration::ZERO, |i| Duration::from_micros(LATENCY_BUCKETS_US[i]));
    (buckets[fast..].iter().sum(), bound)
}

/// The shortest request time-out of the backend HTTP settings that
/// `labels`' rule uses on its pool.
fn request_timeout(cfg: &Config, labels: &RuleLabels) -> Option<Duration> {
    cfg.targets
        .iter()
        .filter(|t| {
            let rule = &cfg.rules[t.rule.0];
            rule.name == labels.rule
                && cfg.pools[t.pool.0].name == labels.pool
                && cfg.listeners[rule.listener.0].name == labels.listener
        })
        .map(|t| cfg.settings[t.settings.0].request_timeout)
        .min()
}

/// Starts sampling `shared`'s counters over `window` on a thread of its own.
pub fn start(shared: Arc<Shared>, window: Duration) -> std::io::Result<Arc<Recent>> {
    let recent = Arc::new(Recent::new(window, Instant::now()));
    let r = recent.clone();
    std::thread::Builder::new().name("ringgate-recent".into()).spawn(move || {
        loop {
            std::thread::sleep(r.every);
            r.record(Instant::now(), read(&shared));
        }
    })?;
    Ok(recent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(rule: &str) -> RuleLabels {
        RuleLabels { listener: "l".into(), rule: rule.into(), pool: "p".into() }
    }

    /// `timeouts` time-outs and one response in each of `buckets` (indices).
    fn counts(timeouts: u64, buckets: &[usize]) -> Counts {
        let mut c = Counts { timeouts, ..Counts::default() };
        for &b in buckets {
            c.buckets[b] += 1;
        }
        c
    }

    fn at(rule: &str, c: Counts) -> HashMap<RuleLabels, Counts> {
        HashMap::from([(labels(rule), c)])
    }

    const LIMIT: Duration = Duration::from_millis(300);

    #[test]
    fn a_young_gateway_counts_since_its_start() {
        let t0 = Instant::now();
        let r = Recent::new(Duration::from_secs(60), t0);
        let now = t0 + Duration::from_secs(10);
        r.record(t0 + Duration::from_secs(5), at("r", counts(1, &[0])));
        let v = r.view(now, &at("r", counts(2, &[0, 12])), |_| Some(LIMIT));
        assert_eq!(v.window_seconds, 60.0);
        assert_eq!(v.sample_every_seconds, 1.0);
        let rule = &v.rules[0];
        assert_eq!((rule.timeouts, rule.responses, rule.covered_seconds), (2, 2, 10.0));
        // 80% of 300 ms is 240 ms: the bucket bound at or below is 100 ms,
        // and the response in bucket 12 (up to 1 s) is slower.
        assert_eq!((rule.slow_responses, rule.slow_threshold_seconds), (1, 0.1));
    }

    #[test]
    fn what_happened_before_the_window_is_forgotten() {
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        let r = Recent::new(w, t0);
        let s = Duration::from_secs;
        // Two time-outs at 5 s, nothing after.
        let sample = |i| at("r", counts(if i >= 5 { 2 } else { 0 }, &[]));
        for i in 1..=60 {
            r.record(t0 + s(i), sample(i));
        }
        let current = at("r", counts(2, &[]));
        // At 60 s, the window reaches back to the start: both are recent.
        assert_eq!(r.view(t0 + s(60), &current, |_| Some(LIMIT)).rules[0].timeouts, 2);
        for i in 61..=100 {
            r.record(t0 + s(i), sample(i));
        }
        // At 100 s, the base is the sample of 40 s, after them.
        let v = r.view(t0 + s(100), &current, |_| Some(LIMIT));
        assert_eq!((v.rules[0].timeouts, v.rules[0].covered_seconds), (0, 60.0));
        // The ring keeps only what a view may need: about a window's samples.
        assert!(r.lock().len() <= 62, "{}", r.lock().len());
    }

    #[test]
    fn a_series_new_since_the_base_counts_from_zero_and_redirects_are_left_out() {
        let t0 = Instant::now();
        let r = Recent::new(Duration::from_secs(1), t0);
        r.record(t0 + Duration::from_secs(2), HashMap::new());
        let mut current = at("new", counts(3, &[1]));
        current.insert(labels("redirect"), counts(0, &[]));
        let v = r.view(t0 + Duration::from_secs(3), &current, |l| (l.rule != "redirect").then_some(LIMIT));
        assert_eq!(v.rules.len(), 1);
        assert_eq!((v.rules[0].rule.as_str(), v.rules[0].timeouts, v.rules[0].responses), ("new", 3, 1));
    }

    #[test]
    fn slow_responses_are_counted_above_the_bucket_bound() {
        let c = counts(0, &[0, 8, 9, 16]);
        // 100 ms is a bound: the 100 ms bucket (9) is not slower than it.
        assert_eq!(slow(&c.buckets, Duration::from_millis(100)), (1, Duration::from_millis(100)));
        assert_eq!(slow(&c.buckets, Duration::from_millis(60)), (2, Duration::from_millis(50)));
        assert_eq!(slow(&c.buckets, Duration::from_micros(50)), (4, Duration::ZERO));
    }
}
