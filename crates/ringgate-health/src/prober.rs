//! The prober: a dedicated thread with its own monoio runtime that probes
//! every server on its probe's interval and writes the results into the
//! health table. Each server has its own task, so a server that hangs only
//! delays its own probes. A server's first probe is sent at once, at start
//! and when a reload adds the server, as Application Gateway v2 does (under
//! `unprobed_servers = "wait"` it takes no requests until then); the second
//! comes after half to all of the interval, spread over the servers, so a
//! large pool is probed all at once only that first time. A worker that sees
//! a connect failure or a reset on live traffic raises a flag on the server's
//! entry, and the prober probes that server at once (passive health).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use ringgate_config::{Config, Probe, ServerHost, SettingsId};
use ringgate_http::{BodyKind, ChunkedDecoder, Parsed, ResponseHead, parse_response};
use tracing::{debug, info, warn};

use crate::state::{HealthState, ProbeFailure, observe};
use crate::table::{HealthEntry, HealthTable, ServerKey};

/// How often the prober looks for new targets and passive-health flags.
const POLL: Duration = Duration::from_millis(10);
/// Most of a probe response body read for `match.body`.
const MAX_PROBE_BODY: usize = 64 * 1024;

/// One server to probe, with the probe that applies to it.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub entry: Arc<HealthEntry>,
    pub probe: Probe,
    /// The Host header sent.
    pub host_header: String,
    /// The server's host, for resolving host names again.
    pub host: ServerHost,
    pub port: u16,
    /// For https probes.
    pub tls: Option<ProbeTls>,
}

impl ProbeTarget {
    /// Targets are the same probe of the same server.
    fn same_as(&self, other: &ProbeTarget) -> bool {
        Arc::ptr_eq(&self.entry, &other.entry)
            && self.probe == other.probe
            && self.host_header == other.host_header
            && self.port == other.port
    }

    /// `http://host:port/path`, as the reference writes a probe URL (the
    /// probe's own port, when it has one).
    pub fn url(&self) -> String {
        probe_url(self.probe.protocol, &self.entry.key().server, self.probe.port, &self.probe.path)
    }
}

/// `protocol://host:port/path`: where a probe of `server` (`host:port`, as
/// the health table names it) is sent; a probe `port` replaces the server's.
pub fn probe_url(protocol: impl std::fmt::Display, server: &str, port: Option<u16>, path: &str) -> String {
    match port {
        // rsplit: "[::1]:80" keeps its brackets.
        Some(port) => format!("{protocol}://{}:{port}{path}", server.rsplit_once(':').map_or(server, |(host, _)| host)),
        None => format!("{protocol}://{server}{path}"),
    }
}

/// Every server a configuration's rules use, once per (settings, pool) pair,
/// with its probe. Entries come from `table` (created if new).
///
/// Also gives `table` the configuration's `unprobed_servers` and its
/// `min_servers` groups, one per (pool, settings) pair: call it before the
/// first plan is served, and again after each reload.
pub fn targets(config: &Config, table: &HealthTable) -> Vec<ProbeTarget> {
    table.set_unprobed(config.gateway.unprobed_servers);
    let mut seen: Vec<(usize, SettingsId)> = Vec::new();
    let mut out = Vec::new();
    let mut groups = Vec::new();
    for r in &config.targets {
        if seen.contains(&(r.pool.0, r.settings)) {
            continue;
        }
        seen.push((r.pool.0, r.settings));
        let settings = &config.settings[r.settings.0];
        let probe = config.probe_for(r.settings);
        let host_header = config.probe_host(r.settings);
        let mut members = Vec::new();
        for (i, addr) in config.pools[r.pool.0].servers.iter().enumerate() {
            let key = ServerKey::of(config, r.pool.0, r.settings, i);
            let port = addr.port_or(settings.port);
            let entry = table.ensure(&key, &addr.host, port);
            let tls = (probe.protocol == ringgate_config::Protocol::Https)
                .then(|| ProbeTls::for_settings(settings, &addr.host, &probe))
                .flatten();
            members.push(entry.clone());
            out.push(ProbeTarget {
                entry,
                probe: probe.clone(),
                host_header: host_header.clone(),
                host: addr.host.clone(),
                port,
                tls,
            });
        }
        groups.push(Arc::new(crate::group::ServerGroup::new(members, probe.min_servers)));
    }
    table.set_groups(groups);
    out
}

enum Command {
    Targets(Vec<ProbeTarget>),
    Stop,
}

/// Handle to the prober thread.
#[derive(Debug)]
pub struct Prober {
    tx: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    resolver: Option<JoinHandle<()>>,
    names: Arc<Mutex<Vec<ProbeTarget>>>,
    stop_resolver: Sender<()>,
}

impl Prober {
    /// Starts probing `targets` on a new thread (pinned to `cpu` if given);
    /// host names are resolved again every `dns_refresh`.
    pub fn start(targets: Vec<ProbeTarget>, cpu: Option<usize>, dns_refresh: Duration) -> std::io::Result<Prober> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let names = Arc::new(Mutex::new(named(&targets)));
        tx.send(Command::Targets(targets)).map_err(|_| std::io::Error::other("prober channel closed"))?;
        let thread = std::thread::Builder::new().name("ringgate-prober".into()).spawn(move || {
            if let Some(cpu) = cpu
                && let Err(e) = monoio::utils::bind_to_cpu_set([cpu])
            {
                warn!(cpu, error = ?e, "cannot pin the prober to its CPU");
            }
            run(rx);
        })?;
        let (stop_resolver, stop_rx) = crossbeam_channel::bounded(1);
        let n = names.clone();
        let resolver = std::thread::Builder::new()
            .name("ringgate-dns".into())
            .spawn(move || resolve_loop(n, dns_refresh, stop_rx))?;
        Ok(Prober { tx, thread: Some(thread), resolver: Some(resolver), names, stop_resolver })
    }

    /// Replaces the targets (after a reload). Servers that stay keep their
    /// state and their probe schedule.
    pub fn update(&self, targets: Vec<ProbeTarget>) {
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = named(&targets);
        let _ = self.tx.send(Command::Targets(targets));
    }

    /// Stops probing and joins the threads.
    pub fn stop(mut self) {
        let _ = self.tx.send(Command::Stop);
        let _ = self.stop_resolver.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.resolver.take() {
            let _ = t.join();
        }
    }
}

fn named(targets: &[ProbeTarget]) -> Vec<ProbeTarget> {
    targets.iter().filter(|t| matches!(t.host, ServerHost::Name(_))).cloned().collect()
}

/// Resolves host names again every `every`, on its own thread because the
/// system resolver blocks.
fn resolve_loop(names: Arc<Mutex<Vec<ProbeTarget>>>, every: Duration, stop: Receiver<()>) {
    loop {
        match stop.recv_timeout(every) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let list = names.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for t in list {
            let result = crate::dns::resolve(&t.host, t.port);
            match &result {
                Ok(addrs) => t.entry.set_addrs(addrs.clone()),
                // The last good addresses are kept: a resolver outage should
                // not take down servers that still answer their probes.
                Err(e) => warn!("{}: cannot resolve: {e}", t.entry.key()),
            }
            t.entry.detail().dns = Some(result);
        }
    }
}

/// Wakes one task early: a passive-health report or a stop.
#[derive(Default)]
struct Trigger {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Trigger {
    fn fire(&self) {
        self.fired.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.fired.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

struct Running {
    target: ProbeTarget,
    trigger: Rc<Trigger>,
    stopped: Rc<Cell<bool>>,
}

fn run(rx: Receiver<Command>) {
    let rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build();
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            warn!("the prober cannot start its runtime: {e}; servers stay in state Unknown");
            return;
        }
    };
    rt.block_on(async move {
        let mut running: HashMap<ServerKey, Running> = HashMap::new();
        loop {
            loop {
                match rx.try_recv() {
                    Ok(Command::Targets(t)) => apply(&mut running, t),
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => {
                        for r in running.values() {
                            r.stopped.set(true);
                            r.trigger.fire();
                        }
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            for r in running.values() {
                if r.target.entry.take_probe_request() {
                    r.target.entry.detail().passive_failures += 1;
                    debug!("{}: failure seen on live traffic, probing now", r.target.entry.key());
                    r.trigger.fire();
                }
            }
            monoio::time::sleep(POLL).await;
        }
    });
}

/// Starts tasks for new targets, stops those of removed or changed ones.
fn apply(running: &mut HashMap<ServerKey, Running>, targets: Vec<ProbeTarget>) {
    let n = targets.len().max(1);
    let mut keep: HashMap<ServerKey, ()> = HashMap::new();
    for (i, t) in targets.into_iter().enumerate() {
        let key = t.entry.key().clone();
        keep.insert(key.clone(), ());
        if let Some(r) = running.get(&key)
            && r.target.same_as(&t)
        {
            continue;
        }
        if let Some(old) = running.remove(&key) {
            old.stopped.set(true);
            old.trigger.fire();
        }
        // The first probe at once; the second after half to all of the
        // interval, spread over the servers, so they do not stay in step.
        let second = t.probe.interval.mul_f64(1.0 - 0.5 * i as f64 / n as f64);
        let trigger = Rc::new(Trigger::default());
        let stopped = Rc::new(Cell::new(false));
        monoio::spawn(probe_loop(t.clone(), second, trigger.clone(), stopped.clone()));
        running.insert(key, Running { target: t, trigger, stopped });
    }
    running.retain(|k, r| {
        let stays = keep.contains_key(k);
        if !stays {
            r.stopped.set(true);
            r.trigger.fire();
        }
        stays
    });
}

/// Probes `t` at once, then `second` after that first probe started, then
/// every interval (or at once when a worker reports a failure).
async fn probe_loop(t: ProbeTarget, second: Duration, trigger: Rc<Trigger>, stopped: Rc<Cell<bool>>) {
    let mut next = Instant::now();
    let mut gap = second;
    loop {
        let _ = monoio::time::timeout_at(next.into(), trigger.wait()).await;
        if stopped.get() {
            return;
        }
        let started = Instant::now();
        let result = probe_once(&t).await;
        if stopped.get() {
            return;
        }
        record(&t, result);
        next = started + gap;
        gap = t.probe.interval;
    }
}

/// Folds one probe result into the entry; logs state changes.
fn record(t: &ProbeTarget, result: Result<(u16, Duration), (ProbeFailure, Option<Duration>)>) {
    let e = &t.entry;
    let ok = result.is_ok();
    let mut d = e.detail();
    d.last_probe = Some(SystemTime::now());
    d.probes += 1;
    match &result {
        Ok((status, latency)) => {
            d.last_status = Some(*status);
            d.last_latency = Some(*latency);
            d.last_failure = None;
        }
        Err((f, latency)) => {
            d.failures += 1;
            *d.failures_by_kind.entry(f.kind()).or_default() += 1;
            d.last_status = match f {
                ProbeFailure::StatusMismatch(c) | ProbeFailure::BodyMismatch(c) => Some(*c),
                _ => None,
            };
            d.last_latency = *latency;
            d.last_failure = Some(f.clone());
        }
    }
    let state = e.probe_state();
    let flip =
        observe(state, &mut d.counters, ok, t.probe.unhealthy_threshold, t.probe.healthy_threshold, e.unprobed());
    let counters = d.counters;
    let reason = d.last_failure.as_ref().map(ToString::to_string);
    // The state changes under the same lock as the counters, so the
    // backend-health view never shows one without the other.
    if let Some(new) = flip {
        e.set_state_locked(&mut d, new);
    }
    drop(d);
    if let Some(new) = flip {
        match new {
            HealthState::Unhealthy => warn!(
                "{} is Unhealthy after {} consecutive failed probes of {}: {}",
                e.key(),
                counters.consecutive_failures,
                t.url(),
                reason.unwrap_or_default()
            ),
            _ if state == HealthState::Unhealthy => info!(
                "{} is Healthy again after {} consecutive successful probes",
                e.key(),
                counters.consecutive_successes
            ),
            _ => debug!("{} is {new}", e.key()),
        }
    }
}

/// A probe's outcome: the status and latency, or the failure (with the latency
/// when a response came).
pub type ProbeResult = Result<(u16, Duration), (ProbeFailure, Option<Duration>)>;

/// One probe: `GET <path>` with the probe's Host, judged by status and body.
pub(crate) async fn probe_once(t: &ProbeTarget) -> ProbeResult {
    let addrs = t.entry.addrs();
    let Some(&addr) = addrs.first() else {
        let why = match &t.entry.detail().dns {
            Some(Err(e)) => e.clone(),
            _ => format!("{} resolves to no address", t.host),
        };
        return Err((ProbeFailure::DnsFailure(why), None));
    };
    probe_addr(addr, &t.probe, &t.host_header, t.tls.as_ref()).await
}

/// Probes the server at `addr` (also used by `ringgate doctor`): on the
/// probe's own `port` when it has one, on `addr`'s (the traffic port) else.
pub async fn probe_addr(addr: SocketAddr, probe: &Probe, host_header: &str, tls: Option<&ProbeTls>) -> ProbeResult {
    let addr = probe.port.map_or(addr, |port| SocketAddr::new(addr.ip(), port));
    let start = Instant::now();
    let deadline = start + probe.timeout;
    let stream = match monoio::time::timeout_at(deadline.into(), TcpStream::connect_addr(addr)).await {
        Err(_) => return Err((ProbeFailure::ConnectTimeout, None)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err((ProbeFailure::ConnectionRefused, None));
        }
        Ok(Err(e)) => return Err((ProbeFailure::ConnectError(e.to_string()), None)),
        Ok(Ok(s)) => s,
    };
    if probe.protocol == ringgate_config::Protocol::Http {
        let mut stream = stream;
        return http_probe(&mut stream, probe, host_header, start, deadline, true).await;
    }
    let Some(tls) = tls else {
        return Err((ProbeFailure::TlsHandshake("no TLS configuration for this https probe".into()), None));
    };
    let connector = monoio_rustls::TlsConnector::from(tls.config.clone());
    let mut stream = match monoio::time::timeout_at(deadline.into(), connector.connect(tls.name.clone(), stream)).await
    {
        Err(_) => return Err((ProbeFailure::ProbeTimeout, None)),
        Ok(Err(e)) => return Err((handshake_failure(&e.into()), None)),
        Ok(Ok(s)) => s,
    };
    http_probe(&mut stream, probe, host_header, start, deadline, false).await
}

/// A failed TLS handshake of a probe, as precisely as rustls tells it.
fn handshake_failure(e: &std::io::Error) -> ProbeFailure {
    if let Some(m) = ringgate_tls::name_mismatch(e) {
        ProbeFailure::CertificateName { expected: m.expected.clone(), presented: m.presented.clone() }
    } else if ringgate_tls::peer_is_not_tls(e) {
        ProbeFailure::NotTls
    } else {
        ProbeFailure::TlsHandshake(ringgate_tls::explain(e))
    }
}

/// Does the server at `addr` speak TLS? It completes a handshake with
/// `tls`, or fails it in a way only a TLS server can (a refused certificate,
/// an alert). For `ringgate doctor`, when an http probe fails as a TLS
/// server would make it fail; `None` when nothing answered within `timeout`.
pub async fn speaks_tls(addr: SocketAddr, tls: &ProbeTls, timeout: Duration) -> Option<bool> {
    let deadline = Instant::now() + timeout;
    let stream = monoio::time::timeout_at(deadline.into(), TcpStream::connect_addr(addr)).await.ok()?.ok()?;
    let connector = monoio_rustls::TlsConnector::from(tls.config.clone());
    match monoio::time::timeout_at(deadline.into(), connector.connect(tls.name.clone(), stream)).await.ok()? {
        Ok(_) => Some(true),
        Err(e) => Some(ringgate_tls::peer_spoke_tls(&e.into())),
    }
}

/// Does the server at `addr` answer plain HTTP? `GET /` gets a response
/// head, whatever its status. For `ringgate doctor`, when an https probe
/// fails as a plain-HTTP server would make it fail.
pub async fn speaks_http(addr: SocketAddr, host_header: &str, timeout: Duration) -> bool {
    let probe = Probe { protocol: ringgate_config::Protocol::Http, timeout, ..Probe::default_probe() };
    matches!(
        probe_addr(addr, &probe, host_header, None).await,
        Ok(_) | Err((ProbeFailure::StatusMismatch(_) | ProbeFailure::BodyMismatch(_), _))
    )
}

/// TLS for an https probe: the settings' trust roots and the server name
/// the certificate must carry.
#[derive(Debug, Clone)]
pub struct ProbeTls {
    pub config: Arc<ringgate_tls::ClientConfig>,
    pub name: rustls_pki_types::ServerName<'static>,
}

impl ProbeTls {
    /// For servers reached through `settings` at `host` (a name or an IP),
    /// probed by `probe`. The name verified (and sent as SNI) is, as
    /// Application Gateway v2 picks it: the probe's own `host`, else the
    /// settings' `host_name`, else the server's address.
    pub fn for_settings(
        settings: &ringgate_config::BackendHttpSettings,
        host: &ServerHost,
        probe: &ringgate_config::Probe,
    ) -> Option<ProbeTls> {
        let probe_host = probe.host.clone().filter(|_| !probe.pick_host_name_from_backend_http_settings);
        let name = probe_host.or_else(|| settings.host_name.clone()).unwrap_or_else(|| host.to_string());
        let config = ringgate_tls::client_config(settings.trusted_roots.as_ref().map(|r| r.store.clone())).ok()?;
        Some(ProbeTls { config, name: ringgate_tls::server_name(&name)? })
    }
}

/// The HTTP part of a probe, over plain TCP (`plain`) or TLS.
async fn http_probe<S: AsyncReadRent + AsyncWriteRent>(
    stream: &mut S,
    probe: &Probe,
    host_header: &str,
    start: Instant,
    deadline: Instant,
    plain: bool,
) -> ProbeResult {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: ringgate-probe/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        probe.path,
        env!("CARGO_PKG_VERSION")
    );
    let write = monoio::time::timeout_at(deadline.into(), stream.write_all(request.into_bytes())).await;
    match write {
        Err(_) => return Err((ProbeFailure::ProbeTimeout, None)),
        Ok((Err(_), _)) => return Err((ProbeFailure::Closed, None)),
        Ok((Ok(_), _)) => {}
    }
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut head = ResponseHead::default();
    let head_len = loop {
        if plain && is_tls_record(&buf) {
            return Err((ProbeFailure::TlsAnswer, None));
        }
        if !buf.is_empty() {
            match parse_response(&buf, 16 * 1024, 100, false, &mut head) {
                Ok(Parsed::Complete(n)) => break n,
                Ok(Parsed::Partial) => {}
                Err(e) => return Err((ProbeFailure::InvalidResponse(e.reason().to_string()), None)),
            }
        }
        match read(stream, &mut buf, deadline).await {
            Ok(0) => return Err((ProbeFailure::Closed, None)),
            Ok(_) => {}
            Err(f) => return Err((f, None)),
        }
    };
    let latency = start.elapsed();
    if !probe.status_ok(head.status) {
        return Err((ProbeFailure::StatusMismatch(head.status), Some(latency)));
    }
    if let Some(want) = &probe.body {
        let body = match read_body(stream, &mut buf, head_len, head.body, deadline).await {
            Ok(b) => b,
            Err(f) => return Err((f, Some(latency))),
        };
        if memchr::memmem::find(&body, want.as_bytes()).is_none() {
            return Err((ProbeFailure::BodyMismatch(head.status), Some(latency)));
        }
    }
    Ok((head.status, latency))
}

/// Do these first bytes of an answer start a TLS record: an alert (0x15) or
/// a handshake (0x16), TLS version 3.x? A TLS server answers a plain HTTP
/// request so (rustls, OpenSSL: a `decode_error` or `unexpected_message`
/// alert); HTTP starts with `HTTP/`.
fn is_tls_record(buf: &[u8]) -> bool {
    matches!(buf, [0x15 | 0x16, 0x03, ..])
}

async fn read<S: AsyncReadRent>(stream: &mut S, buf: &mut Vec<u8>, deadline: Instant) -> Result<usize, ProbeFailure> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    use monoio::buf::IoBufMut;
    match monoio::time::timeout_at(deadline.into(), stream.read(owned.slice_mut(len..cap))).await {
        Err(_) => Err(ProbeFailure::ProbeTimeout),
        Ok((Err(_), _)) => Err(ProbeFailure::Closed),
        Ok((Ok(n), slice)) => {
            *buf = slice.into_inner();
            Ok(n)
        }
    }
}

/// Reads the body (up to [`MAX_PROBE_BODY`]) as framed by the head.
async fn read_body<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    head_len: usize,
    kind: BodyKind,
    deadline: Instant,
) -> Result<Vec<u8>, ProbeFailure> {
    let mut raw = buf.split_off(head_len);
    loop {
        let done = match kind {
            BodyKind::Empty => true,
            BodyKind::Length(n) => raw.len() as u64 >= n || raw.len() >= MAX_PROBE_BODY,
            BodyKind::Chunked => {
                let mut d = ChunkedDecoder::new();
                matches!(d.feed(&raw, |_| {}), Ok(p) if p.done) || raw.len() >= MAX_PROBE_BODY
            }
            BodyKind::UntilClose => raw.len() >= MAX_PROBE_BODY,
        };
        if done {
            break;
        }
        match read(stream, &mut raw, deadline).await? {
            0 if kind == BodyKind::UntilClose => break,
            0 => return Err(ProbeFailure::Closed),
            _ => {}
        }
    }
    Ok(match kind {
        BodyKind::Chunked => {
            let mut out = Vec::new();
            let mut d = ChunkedDecoder::new();
            d.feed(&raw, |c| out.extend_from_slice(c))
                .map_err(|e| ProbeFailure::InvalidResponse(e.reason().to_string()))?;
            out
        }
        _ => raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn tls_records_are_told_from_http() {
        // A rustls decode_error alert, as a TLS server answers "GET / ...".
        assert!(is_tls_record(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]));
        assert!(is_tls_record(&[0x16, 0x03, 0x01]));
        assert!(!is_tls_record(b"HTTP/1.1 200 OK\r\n"));
        assert!(!is_tls_record(&[0x15]));
        assert!(!is_tls_record(&[]));
    }

    #[test]
    fn a_probe_port_replaces_the_servers_in_the_url() {
        let p = ringgate_config::Protocol::Http;
        assert_eq!(probe_url(p, "10.0.0.1:80", None, "/health"), "http://10.0.0.1:80/health");
        assert_eq!(probe_url(p, "10.0.0.1:80", Some(8081), "/health"), "http://10.0.0.1:8081/health");
        assert_eq!(probe_url(p, "[::1]:80", Some(9), "/"), "http://[::1]:9/");
        assert_eq!(probe_url(p, "app.internal:80", Some(9), "/h"), "http://app.internal:9/h");
    }

    /// A server answering one probe on a loopback port of its own.
    fn one_answer(response: &'static [u8]) -> (u16, std::thread::JoinHandle<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let mut head = Vec::new();
            let mut chunk = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = c.write_all(response);
            String::from_utf8_lossy(&head).into_owned()
        });
        (port, t)
    }

    #[test]
    fn probe_addr_probes_the_probes_own_port_when_it_has_one() {
        // The traffic port refuses; the probe port answers 200.
        let refused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let traffic: SocketAddr = refused.local_addr().expect("addr");
        drop(refused);
        let (health_port, server) = one_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        let probe = Probe {
            path: "/health".into(),
            timeout: Duration::from_secs(5),
            port: Some(health_port),
            ..Probe::default_probe()
        };
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().expect("runtime");
        let got = rt.block_on(probe_addr(traffic, &probe, "127.0.0.1", None));
        assert!(matches!(got, Ok((200, _))), "{got:?}");
        assert!(server.join().expect("server").starts_with("GET /health HTTP/1.1\r\n"));
        // Without the port, the same probe goes to the traffic port.
        let plain = Probe { port: None, ..probe };
        let got = rt.block_on(probe_addr(traffic, &plain, "127.0.0.1", None));
        assert!(matches!(got, Err((ProbeFailure::ConnectionRefused, None))), "{got:?}");
    }
}
