//! What the doctor reads of a running gateway through its admin API: the
//! health table (`GET /backend-health`) and the Prometheus counters
//! (`GET /metrics`).

use std::time::Duration;

use crate::health_view::{HealthView, ServerView};

/// Live state of a running gateway.
pub(super) struct Live {
    pub view: HealthView,
    pub metrics: Option<String>,
}

pub(super) fn fetch(admin: &str) -> Result<Live, String> {
    let (status, body) = crate::admin_client::get(admin, "/backend-health")?;
    if status != 200 {
        return Err(format!("GET /backend-health answered {status}"));
    }
    let view: HealthView = serde_json::from_str(&body).map_err(|e| format!("unexpected /backend-health: {e}"))?;
    let metrics = crate::admin_client::get(admin, "/metrics").ok().filter(|(s, _)| *s == 200).map(|(_, b)| b);
    Ok(Live { view, metrics })
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
pub(super) fn slow_share(metrics: &str, rule: &str, limit: Duration) -> Option<(u64, u64)> {
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
/// gateway started.
pub(super) fn count_code(metrics: &str, rule: &str, code: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("ringgate_requests_total{")
                && l.contains(&format!("rule=\"{rule}\""))
                && l.contains(&format!("code=\"{code}\""))
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
ringgate_requests_total{listener=\"l\",rule=\"r\",pool=\"p\",class=\"5xx\",code=\"TIMEOUT\"} 2\n";

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
}
