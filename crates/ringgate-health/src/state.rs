//! The health state machine: a pure function of consecutive probe results, so
//! thresholds can be tested without sockets or clocks.

use std::fmt;

use ringgate_config::UnprobedServers;

/// A server's health as workers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HealthState {
    /// No probe result yet (under `unprobed_servers = "serve"`, also one
    /// whose failures have not reached the threshold before any success).
    /// Takes requests under "serve", as in the reference; not under "wait",
    /// as in Application Gateway v2.
    Unknown = 0,
    Healthy = 1,
    Unhealthy = 2,
    /// Removed by a reload; finishing its in-flight requests, gets no new ones.
    Draining = 3,
}

impl HealthState {
    pub(crate) fn from_u8(v: u8) -> HealthState {
        match v {
            1 => HealthState::Healthy,
            2 => HealthState::Unhealthy,
            3 => HealthState::Draining,
            _ => HealthState::Unknown,
        }
    }

    /// May new requests be sent to a server in this state, by its probes
    /// alone? (The request path asks [`crate::HealthEntry::accepts_requests`],
    /// which also counts an operator's drain and `min_servers`.)
    #[inline]
    pub fn accepts_requests(self) -> bool {
        matches!(self, HealthState::Unknown | HealthState::Healthy)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "Unknown",
            HealthState::Healthy => "Healthy",
            HealthState::Unhealthy => "Unhealthy",
            HealthState::Draining => "Draining",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a probe (or a live request, for passive health) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// Nothing listens on the port (RST to the SYN).
    ConnectionRefused,
    /// The SYN went unanswered: a firewall or security rule dropping packets,
    /// or a host that is down.
    ConnectTimeout,
    /// Connected, but no complete response within the probe's time-out.
    ProbeTimeout,
    /// A response whose status is not in the probe's accepted codes.
    StatusMismatch(u16),
    /// A response (with this status) whose body lacks the probe's expected
    /// substring.
    BodyMismatch(u16),
    /// The server's host name does not resolve.
    DnsFailure(String),
    /// The connection was closed or reset before a complete response.
    Closed,
    /// The response is not valid HTTP.
    InvalidResponse(String),
    /// Another connect error (unreachable network, ...).
    ConnectError(String),
    /// An https probe's TLS handshake failed (untrusted certificate, expired,
    /// ...).
    TlsHandshake(String),
    /// An https probe's server certificate does not hold the name verified
    /// (`expected`); `presented` is what it holds.
    CertificateName { expected: String, presented: Vec<String> },
    /// An http probe was answered with a TLS record (an alert, typically):
    /// the server speaks TLS on that port.
    TlsAnswer,
    /// An https probe's ClientHello was answered with something that is not
    /// TLS (plain HTTP, typically a 400).
    NotTls,
}

impl ProbeFailure {
    /// A stable identifier, used as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeFailure::ConnectionRefused => "connection_refused",
            ProbeFailure::ConnectTimeout => "connect_timeout",
            ProbeFailure::ProbeTimeout => "probe_timeout",
            ProbeFailure::StatusMismatch(_) => "status_mismatch",
            ProbeFailure::BodyMismatch(_) => "body_mismatch",
            ProbeFailure::DnsFailure(_) => "dns_failure",
            ProbeFailure::Closed => "closed",
            ProbeFailure::InvalidResponse(_) => "invalid_response",
            ProbeFailure::ConnectError(_) => "connect_error",
            // The new, more precise failures keep the labels they had
            // before they were told apart, so dashboards do not change.
            ProbeFailure::TlsHandshake(_) | ProbeFailure::CertificateName { .. } | ProbeFailure::NotTls => {
                "tls_handshake_failed"
            }
            ProbeFailure::TlsAnswer => "invalid_response",
        }
    }
}

impl ProbeFailure {
    /// The reason as Application Gateway v2's backend health words it,
    /// where it has a sentence for it, with ringgate's own detail after it
    /// (else ringgate's alone). `expected` is the probe's accepted status
    /// codes (`200-399`), `body` its body match.
    pub fn appgw_reason(&self, expected: &str, body: Option<&str>) -> String {
        let v2 = match self {
            ProbeFailure::ProbeTimeout | ProbeFailure::ConnectTimeout => "Time taken by the backend to respond to application gateway's health probe is more than the time-out threshold in the probe setting.".to_string(),
            ProbeFailure::StatusMismatch(got) => format!(
                "Status code of the backend's HTTP response did not match the probe setting. Expected:{{{expected}}} Received:{{{got}}}."
            ),
            ProbeFailure::BodyMismatch(_) => format!(
                "Body of the backend's HTTP response did not match the probe setting. Received response body does not contain {{{}}}.",
                body.unwrap_or_default()
            ),
            _ => return self.to_string(),
        };
        format!("{v2} ({self})")
    }
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeFailure::ConnectionRefused => f.write_str("connection refused"),
            ProbeFailure::ConnectTimeout => f.write_str("connect time-out"),
            ProbeFailure::ProbeTimeout => f.write_str("probe time-out"),
            ProbeFailure::StatusMismatch(c) => write!(f, "status code mismatch: got {c}"),
            ProbeFailure::BodyMismatch(_) => f.write_str("body mismatch"),
            ProbeFailure::DnsFailure(e) => write!(f, "DNS failure: {e}"),
            ProbeFailure::Closed => f.write_str("connection closed before a complete response"),
            ProbeFailure::InvalidResponse(e) => write!(f, "invalid response: {e}"),
            ProbeFailure::ConnectError(e) => write!(f, "connect error: {e}"),
            ProbeFailure::TlsHandshake(e) => write!(f, "TLS handshake failed: {e}"),
            ProbeFailure::CertificateName { expected, presented } => {
                let m = ringgate_tls::NameMismatch { expected: expected.clone(), presented: presented.clone() };
                write!(f, "TLS handshake failed: {m}")
            }
            ProbeFailure::TlsAnswer => {
                f.write_str("invalid response: the server answered plain HTTP with a TLS record (it speaks TLS)")
            }
            ProbeFailure::NotTls => {
                f.write_str("TLS handshake failed: the server answered the TLS handshake with something else than TLS (plain HTTP?)")
            }
        }
    }
}

/// Consecutive results of one server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
}

/// Folds one probe result into the counters and returns the new state when it
/// flips: down after `unhealthy_threshold` consecutive failures, up after
/// `healthy_threshold` consecutive successes. A never-probed server becomes
/// healthy on its first success; under `unprobed_servers = "wait"` it is
/// unhealthy after its first failure (Application Gateway v2: unhealthy
/// until a probe succeeds), under "serve" after `unhealthy_threshold`.
pub fn observe(
    state: HealthState,
    c: &mut Counters,
    success: bool,
    unhealthy_threshold: u32,
    healthy_threshold: u32,
    unprobed: UnprobedServers,
) -> Option<HealthState> {
    if success {
        c.consecutive_failures = 0;
        c.consecutive_successes = c.consecutive_successes.saturating_add(1);
    } else {
        c.consecutive_successes = 0;
        c.consecutive_failures = c.consecutive_failures.saturating_add(1);
    }
    let next = match state {
        HealthState::Draining => return None,
        HealthState::Unknown if success => HealthState::Healthy,
        HealthState::Unknown if unprobed == UnprobedServers::Wait => HealthState::Unhealthy,
        HealthState::Unknown | HealthState::Healthy if c.consecutive_failures >= unhealthy_threshold => {
            HealthState::Unhealthy
        }
        HealthState::Unhealthy if c.consecutive_successes >= healthy_threshold => HealthState::Healthy,
        _ => return None,
    };
    (next != state).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(results: &[bool], unhealthy: u32, healthy: u32) -> Vec<HealthState> {
        let mut s = HealthState::Unknown;
        let mut c = Counters::default();
        results
            .iter()
            .map(|&ok| {
                if let Some(n) = observe(s, &mut c, ok, unhealthy, healthy, UnprobedServers::Serve) {
                    s = n;
                }
                s
            })
            .collect()
    }

    use HealthState::*;

    #[test]
    fn down_after_exactly_the_unhealthy_threshold() {
        assert_eq!(run(&[true, false, false, false], 3, 1), vec![Healthy, Healthy, Healthy, Unhealthy]);
        assert_eq!(run(&[false, false, false], 3, 1), vec![Unknown, Unknown, Unhealthy]);
        assert_eq!(run(&[false], 1, 1), vec![Unhealthy]);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        assert_eq!(run(&[true, false, false, true, false, false], 3, 1), vec![Healthy; 6]);
    }

    #[test]
    fn up_after_exactly_the_healthy_threshold() {
        let r = run(&[false, false, true, false, true, true], 2, 2);
        assert_eq!(r, vec![Unknown, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Healthy]);
    }

    #[test]
    fn draining_never_flips() {
        let mut c = Counters::default();
        for u in [UnprobedServers::Serve, UnprobedServers::Wait] {
            assert_eq!(observe(Draining, &mut c, true, 1, 1, u), None);
            assert_eq!(observe(Draining, &mut c, false, 1, 1, u), None);
        }
    }

    #[test]
    fn under_wait_a_first_failure_is_unhealthy_at_once() {
        let wait = UnprobedServers::Wait;
        let mut c = Counters::default();
        assert_eq!(observe(Unknown, &mut c, false, 3, 1, wait), Some(Unhealthy));
        let mut c = Counters::default();
        assert_eq!(observe(Unknown, &mut c, true, 3, 1, wait), Some(Healthy));
        // Once up, the threshold applies as before.
        assert_eq!(observe(Healthy, &mut c, false, 3, 1, wait), None);
        assert_eq!(observe(Healthy, &mut c, false, 3, 1, wait), None);
        assert_eq!(observe(Healthy, &mut c, false, 3, 1, wait), Some(Unhealthy));
        // Under serve a never-probed server waits for the threshold.
        let mut c = Counters::default();
        assert_eq!(observe(Unknown, &mut c, false, 3, 1, UnprobedServers::Serve), None);
    }

    #[test]
    fn only_unknown_and_healthy_take_requests() {
        assert!(Unknown.accepts_requests() && Healthy.accepts_requests());
        assert!(!Unhealthy.accepts_requests() && !Draining.accepts_requests());
    }
}
