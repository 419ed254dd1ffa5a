//! The doctor's own probes: every server of every (backend pool, backend
//! HTTP settings) pair a rule uses, probed from here as the gateway probes
//! it, all at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ringgate_config::{Config, Probe, Protocol, SettingsId};
use ringgate_health::{ProbeFailure, ProbeResult, ProbeTls, probe_addr, resolve, speaks_http, speaks_tls};

/// What the doctor saw of one server, probing it from here.
#[derive(Debug, Clone)]
pub(super) struct ServerCheck {
    /// As the health table names it: `host:port`.
    pub server: String,
    /// `None` when the server's name does not resolve.
    pub addr: Option<SocketAddr>,
    pub dns_error: Option<String>,
    /// The probe's URL, `http://host:port/path`.
    pub url: String,
    /// `None` when it could not be probed (no address, no runtime).
    pub result: Option<ProbeResult>,
    /// When the probe failed as a server speaking the other protocol would
    /// make it fail (see [`suggests_other_protocol`]): whether it does speak
    /// it, tried from here (`None`: not tried, or no answer).
    pub speaks_other: Option<bool>,
}

/// Could this failure of a probe in `protocol` come from a server speaking
/// the other one? A TLS server answers plain HTTP with an alert, a 400 or
/// by closing; a plain server answers a ClientHello with a 400 (not TLS),
/// by closing, or waits for the end of a request head that never comes.
pub(super) fn suggests_other_protocol(protocol: Protocol, f: &ProbeFailure) -> bool {
    match protocol {
        Protocol::Http => matches!(
            f,
            ProbeFailure::TlsAnswer
                | ProbeFailure::Closed
                | ProbeFailure::InvalidResponse(_)
                | ProbeFailure::StatusMismatch(400)
        ),
        Protocol::Https => {
            matches!(f, ProbeFailure::NotTls | ProbeFailure::TlsHandshake(_) | ProbeFailure::ProbeTimeout)
        }
    }
}

/// The checks of each (pool index, settings) pair, servers in pool order.
pub(super) type Checks = BTreeMap<(usize, SettingsId), Vec<ServerCheck>>;

/// Probes every server of every (settings, pool) pair the rules use, from
/// here, concurrently.
pub(super) fn probe_all(cfg: &Config) -> Checks {
    let mut pairs: Vec<(usize, SettingsId)> = Vec::new();
    for r in &cfg.targets {
        if !pairs.contains(&(r.pool.0, r.settings)) {
            pairs.push((r.pool.0, r.settings));
        }
    }
    // The last field: TLS for trying an http server in https.
    type Job = ((usize, SettingsId), ServerCheck, Probe, String, Option<ProbeTls>, Option<ProbeTls>);
    let mut jobs: Vec<Job> = Vec::new();
    for &(pool, sid) in &pairs {
        let settings = &cfg.settings[sid.0];
        let probe = cfg.probe_for(sid);
        let host = cfg.probe_host(sid);
        for s in &cfg.pools[pool].servers {
            let port = s.port_or(settings.port);
            let server = s.display_with(settings.port);
            let (addr, dns_error) = match resolve(&s.host, port) {
                Ok(a) => (a.first().copied(), None),
                Err(e) => (None, Some(e)),
            };
            let url = ringgate_health::probe_url(probe.protocol, &server, probe.port, &probe.path);
            let tls = ProbeTls::for_settings(settings, &s.host, &probe);
            let (tls, other_tls) = match probe.protocol {
                Protocol::Https => (tls, None),
                Protocol::Http => (None, tls),
            };
            jobs.push((
                (pool, sid),
                ServerCheck { server, addr, dns_error, url, result: None, speaks_other: None },
                probe.clone(),
                host.clone(),
                tls,
                other_tls,
            ));
        }
    }
    let rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build();
    let mut out = Checks::new();
    let Ok(mut rt) = rt else {
        for (k, c, ..) in jobs {
            out.entry(k).or_default().push(c);
        }
        return out;
    };
    let results = rt.block_on(async move {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(k, mut c, mut probe, host, tls, other_tls)| {
                monoio::spawn(async move {
                    if let Some(addr) = c.addr {
                        // The probe's own time-out (the reference's 30 s for
                        // the default probe), so the verdict matches the
                        // gateway's; never longer.
                        probe.timeout = probe.timeout.min(Duration::from_secs(30));
                        let result = probe_addr(addr, &probe, &host, tls.as_ref()).await;
                        if let Err((f, _)) = &result
                            && suggests_other_protocol(probe.protocol, f)
                        {
                            // A try of our own, not the probe's: a short
                            // probe time-out must not make it inconclusive.
                            let wait = probe.timeout.max(Duration::from_secs(2));
                            c.speaks_other = match (probe.protocol, &other_tls) {
                                (Protocol::Http, Some(t)) => speaks_tls(addr, t, wait).await,
                                (Protocol::Http, None) => None,
                                (Protocol::Https, _) => Some(speaks_http(addr, &host, wait).await),
                            };
                        }
                        c.result = Some(result);
                    }
                    (k, c)
                })
            })
            .collect();
        let mut v = Vec::new();
        for h in handles {
            v.push(h.await);
        }
        v
    });
    for (k, c) in results {
        out.entry(k).or_default().push(c);
    }
    out
}
