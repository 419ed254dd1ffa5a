//! What the doctor reads of a running gateway through its admin API: the
//! health table (`GET /backend-health`), the time-outs and slow responses
//! of the last `recent_window` (`GET /recent`) and, from a gateway without
//! that endpoint, the Prometheus counters since its start (`GET /metrics`).

use std::time::Duration;

use crate::health_view::{HealthView, ServerView};
use crate::recent::RecentView;

/// Live state of a running gateway.
pub(super) struct Live {
    pub view: HealthView,
    pub recent: Option<RecentView>,
    pub metrics: Option<String>,
}

pub(super) fn fetch(admin: &str) -> Result<Live, String> {
    let (status, body) = crate::admin_client::get(admin, "/backend-health")?;
    if status != 200 {
        return Err(format!("GET /backend-health answered {status}"));
    }
    let view: HealthView = serde_json::from_str(&body).map_err(|e| format!("unexpected /backend-health: {e}"))?;
    let ok = |path: &str| crate::admin_client::get(admin, path).ok().filter(|(s, _)| *s == 200).map(|(_, b)| b);
    // An older gateway answers 404: the since-start counters then.
    let recent = ok("/recent").and_then(|b| serde_json::from_str(&b).ok());
    let metrics = if recent.is_none() { ok("/metrics") } else { None };
    Ok(Live { view, recent, metrics })
}

/// What the gateway saw of time-outs for one target, and over what span.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Timeouts {
    /// `in the last 300 s`, or `since the gateway started`.
    pub span: String,
    /// Requests answered 502 TIMEOUT.
    pub timeouts: u64,
    /// Backend responses slower than 80% of the request time-out, and all.
    pub slow: u64,
    pub responses: u64,
}

/// The time-outs of `rule` on `pool` (listener `listener`, request
/// time-out `limit`): from `/recent` when the gateway has it, else from its
/// counters since the start.
pub(super) fn timeouts(live: &Live, listener: &str, rule: &str, pool: &str, limit: Duration) -> Option<Timeouts> {
    if let Some(r) = &live.recent {
        let e = r.rules.iter().find(|e| e.listener == listener && e.rule == rule && e.pool == pool)?;
        return Some(Timeouts {
            span: format!("in the last {:.0} s", e.covered_seconds),
            timeouts: e.timeouts,
            slow: e.slow_responses,
            responses: e.responses,
        });
    }
    let m = live.metrics.as_deref()?;
    let (slow, responses) = slow_share(m, rule, limit.mul_f64(0.8))?;
    Some(Timeouts {
        span: "since the gateway started".into(),
        timeouts: count_code(m, rule, "TIMEOUT"),
        slow,
        responses,
    })
}

impl Live {
    /// The gateway's view of `server` of `pool` through `settings`.
    pub fn server(&self, pool: &str, settings: &str, server: &str) -> Option<&ServerView> {
        self.view
            .rules
            .iter()
            .filter(|r| r.pool == pool && r.settings == settings)
            .flat_map(|r| r.servers.iter())
            .find(|s| s.address == server)
    }
}

/// Estimates the share of responses slower than `limit` from a Prometheus
/// histogram in `metrics` for `rule`: (slow, total).
fn slow_share(metrics: &str, rule: &str, limit: Duration) -> Option<(u64, u64)> {
    let prefix = format!("ringgate_backend_response_seconds_bucket{{rule=\"{rule}\",");
    let mut below = 0u64;
    let mut total = None;
    for line in metrics.lines().filter(|l| l.starts_with(&prefix)) {
        let le = line.split(",le=\"").nth(1)?.split('"').next()?;
        let n: u64 = line.rsplit(' ').next()?.parse().ok()?;
        if le == "+Inf" {
            total = Some(n);
        } else if let Ok(b) = le.parse::<f64>()
            && b <= limit.as_secs_f64()
        {
            below = below.max(n);
        }
    }
    let total = total?;
    Some((total.saturating_sub(below), total))
}

/// Requests of `rule` answered with the gateway error `code`, since the
/// gateway started. The one place that reads the error code's label
/// (`error_code="TIMEOUT"`; `code` holds the HTTP status).
fn count_code(metrics: &str, rule: &str, code: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("ringgate_requests_total{")
                && l.contains(&format!("rule=\"{rule}\""))
                && l.contains(&format!("error_code=\"{code}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "ringgate_backend_response_seconds_bucket{rule=\"r\",pool=\"p\",le=\"0.1\"} 5\n\
ringgate_backend_response_seconds_bucket{rule=\"r\",pool=\"p\",le=\"0.25\"} 8\n\
ringgate_backend_response_seconds_bucket{rule=\"r\",pool=\"p\",le=\"+Inf\"} 10\n\
ringgate_requests_total{listener=\"l\",rule=\"r\",pool=\"p\",class=\"5xx\",code=\"502\",error_code=\"TIMEOUT\"} 2\n";

    #[test]
    fn slow_share_reads_the_histogram() {
        assert_eq!(slow_share(METRICS, "r", Duration::from_millis(250)), Some((2, 10)));
        assert_eq!(slow_share(METRICS, "r", Duration::from_millis(100)), Some((5, 10)));
        assert_eq!(slow_share(METRICS, "other", Duration::from_millis(100)), None);
    }

    #[test]
    fn timeouts_are_counted_per_rule() {
        assert_eq!(count_code(METRICS, "r", "TIMEOUT"), 2);
        assert_eq!(count_code(METRICS, "r", "POOL_EMPTY"), 0);
    }

    fn live(recent: Option<RecentView>) -> Live {
        let view = HealthView { generation: 1, draining: false, rules: Vec::new(), removed: Vec::new() };
        Live { view, recent, metrics: Some(METRICS.into()) }
    }

    #[test]
    fn recent_figures_come_first_and_the_counters_since_start_only_without_them() {
        let limit = Duration::from_millis(300);
        let old = live(None);
        assert_eq!(
            timeouts(&old, "l", "r", "p", limit),
            Some(Timeouts { span: "since the gateway started".into(), timeouts: 2, slow: 5, responses: 10 })
        );
        let recent = RecentView {
            window_seconds: 300.0,
            sample_every_seconds: 5.0,
            rules: vec![crate::recent::RecentRule {
                listener: "l".into(),
                rule: "r".into(),
                pool: "p".into(),
                covered_seconds: 301.6,
                timeouts: 0,
                responses: 4,
                slow_responses: 1,
                slow_threshold_seconds: 0.1,
            }],
        };
        let new = live(Some(recent));
        assert_eq!(
            timeouts(&new, "l", "r", "p", limit),
            Some(Timeouts { span: "in the last 302 s".into(), timeouts: 0, slow: 1, responses: 4 })
        );
        assert_eq!(timeouts(&new, "l", "r", "other", limit), None);
    }
}
