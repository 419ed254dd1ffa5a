//! The validated configuration: typed, checked values. Every cross-reference is
//! an index, every time a `Duration`, every address a `SocketAddr` or a parsed
//! host, so the data plane never looks at a string from the file.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Diagnostic;
use crate::routing::{
    Action, ConnectionDraining, ErrorPage, Redirect, RedirectTarget, RuleKind, Target, TargetId, UrlPathMap,
};

macro_rules! id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub usize);
    };
}
id!(/// Index into [`Config::listeners`].
    ListenerId);
id!(/// Index into [`Config::pools`].
    PoolId);
id!(/// Index into [`Config::settings`].
    SettingsId);
id!(/// Index into [`Config::probes`].
    ProbeId);
id!(/// Index into [`Config::rules`].
    RuleId);

/// A whole, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages and reloads).
    pub source: PathBuf,
    pub gateway: Gateway,
    pub listeners: Vec<Listener>,
    pub pools: Vec<BackendPool>,
    pub settings: Vec<BackendHttpSettings>,
    pub probes: Vec<Probe>,
    pub rules: Vec<Rule>,
    /// Every (rule, path rule) that forwards, with its pool and settings.
    pub targets: Vec<Target>,
    pub url_path_maps: Vec<UrlPathMap>,
    pub redirects: Vec<Redirect>,
    pub rewrite_rule_sets: Vec<crate::routing::RewriteRuleSet>,
    /// Things that are valid but probably not what the operator wants
    /// (an empty pool, an unused probe, ...).
    pub warnings: Vec<Diagnostic>,
}

/// `[gateway]`: process-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
    /// CPUs the workers are pinned to, in order (empty: no pinning).
    pub worker_cpus: Vec<usize>,
    /// CPU the prober thread is pinned to.
    pub prober_cpu: Option<usize>,
    /// Admin API address (`None`: disabled).
    pub admin_listen: Option<SocketAddr>,
    /// How far back the admin API's `GET /recent` (time-outs and slow
    /// backend responses per rule, read by `ringgate doctor`) looks;
    /// `recent_window`, default 5 minutes, 1 s to 1 h.
    pub recent_window: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// On shutdown, how long to keep serving with `/healthz` failing before
    /// the drain, so load balancers stop sending traffic first.
    pub shutdown_delay: Duration,
    /// How often host names in backend pools are resolved again.
    pub dns_refresh: Duration,
    /// Reload when the file's content changes (polled every
    /// `watch_interval`), e.g. a Kubernetes ConfigMap update.
    pub watch_config: bool,
    /// What a gateway error's body says (see [`ErrorDetail`]).
    pub error_detail: ErrorDetail,
    /// The proxies whose X-Forwarded-For is kept and whose PROXY protocol
    /// headers are believed (`None`: every client's, as Application Gateway
    /// keeps every X-Forwarded-For).
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
    /// TRACE requests are proxied; off by default: answered 405, as
    /// Application Gateway v2 does (TRACE echoes a request, cookies and
    /// all, back to whoever can make a browser send it).
    pub allow_trace: bool,
    /// The status for a request line with an HTTP version other than 1.x:
    /// 400 as Application Gateway v2 (the default), or 505 as RFC 9112
    /// suggests.
    pub unknown_version_status: u16,
    /// How the gateway's own log lines (stderr) are written.
    pub log_format: LogFormat,
    pub watch_interval: Duration,
    pub access_log: AccessLog,
    pub access_log_format: AccessLogFormat,
    pub limits: Limits,
    pub io_uring: IoUringTuning,
    pub splice: SpliceSettings,
    pub http2: Http2Settings,
    /// Custom error pages for every listener that has none of its own.
    pub error_pages: Vec<ErrorPage>,
    /// Probe intervals and time-outs may be sub-second or fractional
    /// (`"100ms"`, `"1500ms"`), which Application Gateway v2 refuses; for
    /// tests and labs. Off by default; each such value is warned about.
    pub allow_subsecond_timers: bool,
    /// Whether a server that has not had its first probe takes requests.
    pub unprobed_servers: UnprobedServers,
}

/// `[gateway] unprobed_servers`: what a server is before its first probe
/// result (the first probe is sent as soon as the server is configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnprobedServers {
    /// It takes requests until its probes say otherwise (the default, and
    /// ringgate's behaviour before v2's rule): after a failed first probe it
    /// still takes them until `unhealthy_threshold` failures.
    Serve,
    /// As Application Gateway v2: unhealthy until a probe succeeds. A pool
    /// with no server taking requests while one still awaits its first probe
    /// answers 502 `NOT_YET_PROBED`; a failed (or timed-out) first probe
    /// makes the server Unhealthy at once.
    Wait,
}

impl UnprobedServers {
    pub fn as_str(self) -> &'static str {
        match self {
            UnprobedServers::Serve => "serve",
            UnprobedServers::Wait => "wait",
        }
    }
}

impl Gateway {
    /// The number of worker threads to start on a machine with `cores` cores.
    pub fn effective_workers(&self, cores: usize) -> usize {
        if self.workers == 0 { cores.max(1) } else { self.workers }
    }
}

/// `load_distribution` of backend HTTP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadDistribution {
    /// In turn (weighted by the pool's `weight=N`).
    RoundRobin,
    /// The server with the fewest requests in flight on this worker.
    LeastConnections,
    /// Of two servers drawn at random, the one with fewer in flight.
    RandomTwo,
}

/// The gateway's own log (not the access log): lines for people, or JSON
/// objects for a log pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How much a gateway error's body tells the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDetail {
    /// The cause in words, without addresses, names or hints for the
    /// operator (default); the full text goes to the access log.
    Public,
    /// The full text: servers, rules, OS errors, what to check.
    Full,
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    Stdout,
    File(PathBuf),
}

/// How access log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// ringgate's own fields (`client`, `status`, `error_info`, ...).
    Ringgate,
    /// Application Gateway v2's access log: its JSON shape and field names
    /// (`clientIP`, `httpStatus`, `error_info` with `ERRORINFO_*` names ...),
    /// so that queries written for it work on ringgate's lines.
    AppGw,
}

/// Limits on what clients may send; each has a default a production gateway
/// would pick (close to nginx's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and headers), answered with 431.
    pub max_request_head: usize,
    /// Most header fields in a request, answered with 431.
    pub max_headers: usize,
    /// Longest request target, answered with 414.
    pub max_uri: usize,
    /// Largest request body, answered with 413 (0: unlimited).
    pub max_request_body: u64,
    /// Open client connections per worker beyond which new ones are refused.
    pub max_connections_per_worker: usize,
    /// How long an idle keep-alive client connection is kept.
    pub client_keepalive_timeout: Duration,
    /// How long a client may take to send a whole request head (408 after).
    pub header_read_timeout: Duration,
}

/// `[gateway.http2]`: what the gateway announces to HTTP/2 clients in its
/// SETTINGS. The header list limit is `[gateway.limits] max_request_head`,
/// as for HTTP/1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Settings {
    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE), bytes.
    pub initial_stream_window: u32,
    /// The connection's receive window, bytes.
    pub initial_connection_window: u32,
    /// Largest frame payload accepted (SETTINGS_MAX_FRAME_SIZE).
    pub max_frame_size: u32,
}

/// `[gateway.splice]`: bodies relayed between plain TCP sockets without
/// copying them through user space (splice(2) through a pipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpliceSettings {
    /// Off: every body is copied through the gateway's buffers.
    pub enabled: bool,
    /// Bodies with a Content-Length of at least this many bytes are
    /// spliced; shorter ones (and chunked ones, and TLS connections) are
    /// copied.
    pub min_body: u64,
    /// The capacity asked of each pipe (F_SETPIPE_SZ), bytes.
    pub pipe_size: u32,
}

/// io_uring knobs for the worker runtimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoUringTuning {
    /// Submission queue entries per worker ring.
    pub entries: u32,
    /// IORING_SETUP_COOP_TASKRUN: no interrupt per completion.
    pub coop_taskrun: bool,
    /// IORING_SETUP_DEFER_TASKRUN (with SINGLE_ISSUER): completions are
    /// processed in a batch when the worker waits.
    pub defer_taskrun: bool,
    /// Client and backend sockets receive through one multishot receive
    /// each, into a ring of provided buffers, instead of one receive per read.
    pub multishot_recv: bool,
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[listener]]`: an address and, for multi-site listeners, the host names it
/// answers. Listeners with the same address share one socket; the request's
/// Host then picks among them (exact names, then wildcards, then the basic
/// listener without host names).
#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub listen: SocketAddr,
    pub host_names: Vec<HostPattern>,
    pub protocol: Protocol,
    /// The certificate of an `https` listener.
    pub tls: Option<ListenerTls>,
    /// Custom error pages of this listener (before the gateway's).
    pub error_pages: Vec<ErrorPage>,
    /// An `https` listener offers `h2` in ALPN (default on, as Application
    /// Gateway v2).
    pub http2: bool,
    /// A plain `http` listener serves HTTP/2 with prior knowledge (a
    /// connection that opens with the HTTP/2 preface); off by default.
    pub http2_cleartext: bool,
    /// Each connection starts with a PROXY protocol header (v1 or v2) from
    /// the TCP load balancer in front, whose source address is the client.
    pub proxy_protocol: bool,
}

/// An HTTPS listener's certificate chain and private key, loaded and checked
/// to belong together at configuration load.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub key: Arc<ringgate_tls::CertifiedKey>,
    /// When the leaf certificate expires (for the expiry metric and doctor).
    pub not_after: Option<std::time::SystemTime>,
    /// Protocol versions and cipher suites (`tls_policy`).
    pub policy: ringgate_tls::TlsPolicy,
    /// Mutual TLS (`trusted_client_certificates` and its fields).
    pub client_auth: Option<ListenerClientAuth>,
}

/// A listener's mutual TLS: where its CA bundle and CRL come from, and the
/// verifier built from them.
#[derive(Debug, Clone)]
pub struct ListenerClientAuth {
    pub bundle: PathBuf,
    pub crl: Option<PathBuf>,
    pub auth: ringgate_tls::ClientAuth,
}

impl ListenerClientAuth {
    /// Same files and choices (listeners sharing a socket must agree).
    pub fn same_as(&self, o: &ListenerClientAuth) -> bool {
        (&self.bundle, &self.crl, self.auth.required, self.auth.verify_issuer_dn)
            == (&o.bundle, &o.crl, o.auth.required, o.auth.verify_issuer_dn)
    }
}

/// The root certificates an HTTPS backend's certificate must chain to.
#[derive(Debug, Clone)]
pub struct TrustedRoots {
    pub path: PathBuf,
    pub store: Arc<ringgate_tls::RootCertStore>,
}

/// Identifies a listening socket: its address, plus, for port 0 ("any free
/// port"), the listener's name, since each such listener gets a port of its
/// own instead of sharing one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SocketKey {
    pub addr: SocketAddr,
    pub ephemeral: Option<String>,
}

impl fmt::Display for SocketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}

impl Listener {
    /// The socket this listener is served on.
    pub fn socket_key(&self) -> SocketKey {
        SocketKey { addr: self.listen, ephemeral: (self.listen.port() == 0).then(|| self.name.clone()) }
    }

    /// A basic (single-site) listener answers any Host.
    pub fn is_basic(&self) -> bool {
        self.host_names.is_empty()
    }
}

/// A host name a multi-site listener answers: exact, `*.suffix`, or (as
/// Application Gateway v2 accepts) a pattern with `*` (any run of
/// characters, none included) and `?` (one character) anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Lower-case host name.
    Exact(String),
    /// `*.example.com`, stored as the lower-case suffix `.example.com`.
    Wildcard(String),
    /// Any other pattern with `*` or `?`, lower-case, e.g. `api-?.example.*`.
    Glob(String),
}

impl HostPattern {
    /// Does `host` (already lower-case, without port) match?
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
            HostPattern::Glob(g) => glob_match(g.as_bytes(), host.as_bytes()),
        }
    }
}

pub use ringgate_tls::glob_match;

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(s) => write!(f, "*{s}"),
            HostPattern::Glob(g) => f.write_str(g),
        }
    }
}

/// `[[backend_pool]]`: the servers requests are balanced across.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendPool {
    pub name: String,
    pub servers: Vec<ServerAddress>,
    /// Each server's share of the round robin (`"addr weight=N"`, 1 to 100;
    /// default 1), indexed like `servers`.
    pub weights: Vec<u32>,
}

/// One address of a pool, as written: an IP or a host name, with an optional
/// port that overrides the backend HTTP settings' port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddress {
    pub host: ServerHost,
    pub port: Option<u16>,
}

impl ServerAddress {
    /// The port used with settings whose port is `settings_port`.
    pub fn port_or(&self, settings_port: u16) -> u16 {
        self.port.unwrap_or(settings_port)
    }

    /// `host:port` as shown to operators.
    pub fn display_with(&self, settings_port: u16) -> String {
        let port = self.port_or(settings_port);
        match &self.host {
            ServerHost::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            ServerHost::Ip(ip) => format!("{ip}:{port}"),
            ServerHost::Name(n) => format!("{n}:{port}"),
        }
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (ServerHost::Ip(IpAddr::V6(ip)), Some(p)) => write!(f, "[{ip}]:{p}"),
            (h, Some(p)) => write!(f, "{h}:{p}"),
            (h, None) => write!(f, "{h}"),
        }
    }
}

/// An IP address, or a host name resolved by the prober.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerHost {
    Ip(IpAddr),
    /// A fully qualified domain name (lower-case).
    Name(String),
}

impl fmt::Display for ServerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerHost::Ip(ip) => write!(f, "{ip}"),
            ServerHost::Name(n) => f.write_str(n),
        }
    }
}

/// `[[backend_http_settings]]`: how requests and probes reach a pool's servers.
#[derive(Debug, Clone)]
pub struct BackendHttpSettings {
    pub name: String,
    /// Port used for servers whose address has none.
    pub port: u16,
    pub protocol: Protocol,
    pub cookie_based_affinity: bool,
    /// Name of the affinity cookie.
    pub affinity_cookie_name: String,
    /// How long the backend may take to answer (the reference's request time-out).
    pub request_timeout: Duration,
    /// How long a connection to a server may take to open (never more than
    /// `request_timeout`).
    pub connect_timeout: Duration,
    /// The custom probe; `None` means the default probe.
    pub probe: Option<ProbeId>,
    /// Host header sent to the backend instead of the client's.
    pub host_name: Option<String>,
    /// Roots for `https` backends (`None`: the Mozilla roots).
    pub trusted_roots: Option<TrustedRoots>,
    /// Idle keep-alive connections kept per server and worker.
    pub max_idle_connections: usize,
    /// Servers a request may be tried on when a connection cannot be opened
    /// (refused, connect time-out, TLS handshake failure): the first, then
    /// other healthy servers of the pool (default 2; 1: no failover).
    pub max_attempts: u32,
    /// How a server is chosen for a request without affinity.
    pub load_distribution: LoadDistribution,
    /// After a server comes back (unhealthy to healthy, or enabled after a
    /// drain), its share of new requests ramps up from 5% to its full share
    /// over this long (zero: at once), as nginx's and HAProxy's `slow_start`.
    pub slow_start: Duration,
    /// How long one attempt waits for the server's response head before an
    /// idempotent request whose body was not sent is tried on another server
    /// (within `max_attempts` and the request time-out). Equal to
    /// `request_timeout` by default: a time-out is then not retried.
    pub attempt_timeout: Duration,
    /// The status of a request time-out's answer: 502 as the reference
    /// says (the default), or 504 as nginx, HAProxy, Envoy and Application
    /// Gateway v2 answer.
    pub timeout_status: u16,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
    /// Sent instead of the matched path prefix: a request for `/video/a`
    /// matched by `/video/*` reaches the server as `<override>a`; with a
    /// basic rule the override is prefixed to the whole path.
    pub override_backend_path: Option<String>,
    /// Host = the server's own host name (App Service-style backends).
    pub pick_host_name_from_backend_address: bool,
    /// `connection_draining = { enabled = true, timeout = N }`.
    pub connection_draining: Option<ConnectionDraining>,
}

/// `[[probe]]`: a custom health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub name: String,
    pub protocol: Protocol,
    /// Host header of the probe; `None` means `127.0.0.1`, as the default probe.
    pub host: Option<String>,
    /// Send the backend HTTP settings' `host_name` instead of `host`.
    pub pick_host_name_from_backend_http_settings: bool,
    /// Always starts with `/`.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    /// Status codes that count as healthy.
    pub status_codes: Vec<RangeInclusive<u16>>,
    /// Substring the response body must contain (at most 4,090 characters).
    pub body: Option<String>,
    /// The port probes are sent to instead of the server's (v2's custom
    /// probe port, 1 to 65535): the server's address with this port. Traffic
    /// still goes to the server's own port, and the server is still shown
    /// (and keyed) by it.
    pub port: Option<u16>,
    /// Servers of each pool kept in rotation whatever their probes say
    /// (v2's `minServers`, default 0): when fewer than this many pass their
    /// probes, the first servers of the pool in configured order that fail
    /// (and that an operator has not drained) make up the number.
    pub min_servers: u32,
}

/// Host header the default probe sends (the reference's `http://127.0.0.1/`).
pub const DEFAULT_PROBE_HOST: &str = "127.0.0.1";

impl Probe {
    /// The reference's default probe: `GET http://127.0.0.1:<port>/`, every
    /// 30 s, 30 s time-out, down after 3 failures.
    pub fn default_probe() -> Probe {
        Probe {
            name: "default".into(),
            protocol: Protocol::Http,
            host: None,
            pick_host_name_from_backend_http_settings: false,
            path: "/".into(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            unhealthy_threshold: 3,
            healthy_threshold: 1,
            status_codes: vec![200..=399],
            body: None,
            port: None,
            min_servers: 0,
        }
    }

    /// Does a response status count as healthy?
    pub fn status_ok(&self, status: u16) -> bool {
        self.status_codes.iter().any(|r| r.contains(&status))
    }
}

/// `[[rule]]`: what a listener does with its requests (see [`RuleKind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub listener: ListenerId,
    /// 1 to 20000, lower first (Application Gateway v2): the order in which
    /// the rules of listeners sharing an address are tried.
    pub priority: Option<u32>,
    pub kind: RuleKind,
}

/// Listeners sharing one address, served by one socket per worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketGroup {
    pub key: SocketKey,
    pub protocol: Protocol,
    pub listeners: Vec<ListenerId>,
}

/// Indices of listeners that share a socket, grouped in file order of first
/// appearance (also used by validation, before a `Config` exists).
pub(crate) fn group_by_socket(listeners: &[Listener]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(SocketKey, Vec<usize>)> = Vec::new();
    for (i, l) in listeners.iter().enumerate() {
        let key = l.socket_key();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

impl Config {
    /// The probe that watches servers reached through `settings`: its custom
    /// probe, or the default probe.
    pub fn probe_for(&self, settings: SettingsId) -> Probe {
        let s = &self.settings[settings.0];
        match s.probe {
            Some(p) => self.probes[p.0].clone(),
            // The default probe speaks the settings' protocol.
            None => Probe { protocol: s.protocol, ..Probe::default_probe() },
        }
    }

    /// The Host header a probe sends for `settings`.
    pub fn probe_host(&self, settings: SettingsId) -> String {
        let s = &self.settings[settings.0];
        match s.probe.map(|p| &self.probes[p.0]) {
            Some(p) if p.pick_host_name_from_backend_http_settings => {
                s.host_name.clone().unwrap_or_else(|| DEFAULT_PROBE_HOST.into())
            }
            Some(p) => p.host.clone().unwrap_or_else(|| DEFAULT_PROBE_HOST.into()),
            None => DEFAULT_PROBE_HOST.into(),
        }
    }

    /// The rule bound to a listener (validation guarantees exactly one).
    pub fn rule_for(&self, listener: ListenerId) -> Option<RuleId> {
        self.rules.iter().position(|r| r.listener == listener).map(RuleId)
    }

    /// The target a basic rule forwards to (None for a redirect or a
    /// path-based rule).
    pub fn basic_target(&self, rule: RuleId) -> Option<TargetId> {
        match self.rules[rule.0].kind {
            RuleKind::Basic(Action::Forward(t)) => Some(t),
            _ => None,
        }
    }

    /// Describes an action for operators: `pool P with settings S` or
    /// `redirect R (301 to ...)`.
    pub fn describe_action(&self, a: Action) -> String {
        match a {
            Action::Forward(t) => {
                let t = &self.targets[t.0];
                format!("pool {} with settings {}", self.pools[t.pool.0].name, self.settings[t.settings.0].name)
            }
            Action::Redirect(r) => {
                let r = &self.redirects[r.0];
                let to = match &r.target {
                    RedirectTarget::Listener(l) => format!("listener {}", self.listeners[l.0].name),
                    RedirectTarget::Url(u) => u.clone(),
                };
                format!("redirect {} ({} to {to})", r.name, r.status)
            }
        }
    }

    /// Listeners grouped by address, in file order of first appearance.
    pub fn socket_groups(&self) -> Vec<SocketGroup> {
        group_by_socket(&self.listeners)
            .into_iter()
            .map(|g| {
                let first = &self.listeners[g[0]];
                SocketGroup {
                    key: first.socket_key(),
                    protocol: first.protocol,
                    listeners: g.into_iter().map(ListenerId).collect(),
                }
            })
            .collect()
    }

    /// Renders the effective configuration for `ringgate check`, with every
    /// default filled in.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let fd = crate::units::fmt_duration;
        let mut o = String::new();
        let g = &self.gateway;
        let _ = writeln!(o, "[gateway]");
        let workers = if g.workers == 0 { "0 (one per core)".to_string() } else { g.workers.to_string() };
        let _ = writeln!(o, "  workers = {workers}");
        let admin = g.admin_listen.map_or("off".to_string(), |a| a.to_string());
        let _ = writeln!(o, "  admin_listen = {admin}, recent_window = {}", fd(g.recent_window));
        let log = match &g.access_log {
            AccessLog::Off => "off".to_string(),
            AccessLog::Stdout => "stdout".to_string(),
            AccessLog::File(p) => p.display().to_string(),
        };
        let _ = writeln!(o, "  access_log = {log}");
        let _ = writeln!(
            o,
            "  error_detail = {}",
            match g.error_detail {
                ErrorDetail::Public => "public (error bodies without addresses or names; full text in the access log)",
                ErrorDetail::Full => "full (error bodies show servers, rules and OS errors)",
            }
        );
        let _ = match &g.trusted_proxies {
            None => writeln!(o, "  trusted_proxies: any (every client's X-Forwarded-For is kept)"),
            Some(nets) => writeln!(
                o,
                "  trusted_proxies: {} (X-Forwarded-For of other clients is replaced)",
                if nets.is_empty() {
                    "none".to_string()
                } else {
                    nets.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
                }
            ),
        };
        let _ = writeln!(o, "  drain_timeout = {}, dns_refresh = {}", fd(g.drain_timeout), fd(g.dns_refresh));
        let _ = writeln!(
            o,
            "  unprobed_servers = {}",
            match g.unprobed_servers {
                UnprobedServers::Serve => "serve (a server takes requests until its probes say otherwise)",
                UnprobedServers::Wait => "wait (a server takes requests once a probe has succeeded)",
            }
        );
        if g.allow_subsecond_timers {
            let _ = writeln!(o, "  allow_subsecond_timers = true (probe timers below 1 s or fractional are accepted)");
        }
        let l = &g.limits;
        let _ = writeln!(
            o,
            "  limits: request head {} B, {} headers, URI {} B, body {}, {} connections/worker, keep-alive {}, header read {}",
            l.max_request_head,
            l.max_headers,
            l.max_uri,
            if l.max_request_body == 0 { "unlimited".into() } else { format!("{} B", l.max_request_body) },
            l.max_connections_per_worker,
            fd(l.client_keepalive_timeout),
            fd(l.header_read_timeout)
        );
        let h = &g.http2;
        let _ = writeln!(
            o,
            "  http2: {} streams per connection, windows {} B per stream and {} B per connection, frames up to {} B",
            h.max_concurrent_streams, h.initial_stream_window, h.initial_connection_window, h.max_frame_size
        );
        for (i, lst) in self.listeners.iter().enumerate() {
            let hosts = if lst.is_basic() {
                "basic (any host)".to_string()
            } else {
                format!("multi-site: {}", lst.host_names.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", "))
            };
            let rule = self.rule_for(ListenerId(i)).map_or("-".into(), |r| self.rules[r.0].name.clone());
            let cert = lst.tls.as_ref().map_or(String::new(), |t| {
                let mtls = t.client_auth.as_ref().map_or(String::new(), |c| {
                    format!(
                        "; mutual TLS {} (CA {}{}{})",
                        if c.auth.required { "required" } else { "optional" },
                        c.bundle.display(),
                        c.crl.as_ref().map_or(String::new(), |p| format!(", CRL {}", p.display())),
                        if c.auth.verify_issuer_dn { ", issuer DN checked" } else { "" }
                    )
                });
                format!("; certificate {}; TLS policy {}{mtls}", t.certificate.display(), t.policy.describe())
            });
            let protocols = match (lst.protocol, lst.http2, lst.http2_cleartext) {
                (Protocol::Https, true, _) => "; ALPN h2, http/1.1",
                (Protocol::Https, false, _) => "; ALPN http/1.1",
                (Protocol::Http, _, true) => "; HTTP/1.1 and HTTP/2 with prior knowledge",
                (Protocol::Http, _, false) => "",
            };
            let proxy = if lst.proxy_protocol { "; PROXY protocol" } else { "" };
            let _ = writeln!(
                o,
                "[[listener]] {}: {}://{} {hosts}; rule {rule}{cert}{protocols}{proxy}",
                lst.name, lst.protocol, lst.listen
            );
        }
        for p in &self.pools {
            let state = if p.servers.is_empty() {
                "Empty: rules using it answer 502 POOL_EMPTY".to_string()
            } else {
                format!("Succeeded, {} server{}", p.servers.len(), if p.servers.len() == 1 { "" } else { "s" })
            };
            let addrs = p
                .servers
                .iter()
                .zip(&p.weights)
                .map(|(s, w)| if *w == 1 { s.to_string() } else { format!("{s} weight={w}") })
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(o, "[[backend_pool]] {}: provisioning state {state} [{addrs}]", p.name);
        }
        for (i, s) in self.settings.iter().enumerate() {
            let probe = match s.probe {
                Some(p) => format!("custom probe {}", self.probes[p.0].name),
                None => "default probe".into(),
            };
            let _ = writeln!(
                o,
                "[[backend_http_settings]] {}: {}, port {}, request_timeout {}, connect_timeout {}, affinity {}, host {}, {probe} (Host: {})",
                s.name,
                s.protocol,
                s.port,
                fd(s.request_timeout),
                fd(s.connect_timeout),
                if s.cookie_based_affinity { format!("cookie {}", s.affinity_cookie_name) } else { "off".into() },
                s.host_name.as_deref().unwrap_or("(client's)"),
                self.probe_host(SettingsId(i)),
            );
        }
        for p in &self.probes {
            let codes = p
                .status_codes
                .iter()
                .map(
                    |r| if r.start() == r.end() { r.start().to_string() } else { format!("{}-{}", r.start(), r.end()) },
                )
                .collect::<Vec<_>>()
                .join(",");
            let _ = writeln!(
                o,
                "[[probe]] {}: {}://{}{}{} every {}, time-out {}, unhealthy after {}, healthy after {}, status {codes}{}{}",
                p.name,
                p.protocol,
                if p.pick_host_name_from_backend_http_settings {
                    "<settings host_name>"
                } else {
                    p.host.as_deref().unwrap_or(DEFAULT_PROBE_HOST)
                },
                p.path,
                p.port.map_or(String::new(), |port| format!(" (sent to port {port} of each server)")),
                fd(p.interval),
                fd(p.timeout),
                p.unhealthy_threshold,
                p.healthy_threshold,
                p.body.as_ref().map_or(String::new(), |b| format!(", body contains {b:?}")),
                if p.min_servers > 0 {
                    format!(", min_servers {} (kept in rotation whatever their probes say)", p.min_servers)
                } else {
                    String::new()
                }
            );
        }
        for r in &self.rules {
            let prio = r.priority.map_or(String::new(), |p| format!(" (priority {p})"));
            let listener = &self.listeners[r.listener.0].name;
            match r.kind {
                RuleKind::Basic(a) => {
                    let _ =
                        writeln!(o, "[[rule]] {}{prio}: listener {listener} -> {}", r.name, self.describe_action(a));
                }
                RuleKind::PathBased(m) => {
                    let map = &self.url_path_maps[m.0];
                    let _ = writeln!(o, "[[rule]] {}{prio}: listener {listener} -> url_path_map {}", r.name, map.name);
                    for pr in &map.path_rules {
                        let paths = pr.paths.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
                        let _ =
                            writeln!(o, "    path rule {}: {paths} -> {}", pr.name, self.describe_action(pr.action));
                    }
                    let _ = writeln!(o, "    default -> {}", self.describe_action(map.default));
                }
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_needs_a_label_before_the_suffix() {
        let w = HostPattern::Wildcard(".example.com".into());
        assert!(w.matches("a.example.com"));
        assert!(w.matches("a.b.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches(".example.com"));
        assert!(!w.matches("aexample.com"));
    }

    #[test]
    fn default_probe_is_the_references_table() {
        let p = Probe::default_probe();
        assert_eq!(p.path, "/");
        assert_eq!(p.host, None);
        assert_eq!(p.interval, Duration::from_secs(30));
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!(p.unhealthy_threshold, 3);
        assert!(p.status_ok(200) && p.status_ok(399) && !p.status_ok(404));
    }

    #[test]
    fn server_address_display() {
        let v6 = ServerAddress { host: ServerHost::Ip("::1".parse().unwrap()), port: Some(8080) };
        assert_eq!(v6.to_string(), "[::1]:8080");
        assert_eq!(v6.display_with(80), "[::1]:8080");
        let name = ServerAddress { host: ServerHost::Name("app.internal".into()), port: None };
        assert_eq!(name.to_string(), "app.internal");
        assert_eq!(name.display_with(81), "app.internal:81");
    }
}
