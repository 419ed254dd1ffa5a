//! The plan: a configuration turned into what the request path needs, built
//! once per load or reload on the control thread and shared read-only by the
//! workers. Routing tables, server lists with their health entries, affinity
//! cookies and the fast-path 502 responses are all made here, so serving a
//! request formats nothing it could have prepared.
//!
//! Routing is in three layers: a socket's [`HostRoutes`] picks a rule by
//! Host; the rule ([`RulePlan`]) picks an action, by path for a path-based
//! rule; a forwarding action names a [`TargetPlan`] (one per forwarding rule
//! or path rule: a pool through backend HTTP settings), which holds
//! everything an exchange with a backend needs.

use std::sync::Arc;
use std::time::Duration;

use ringgate_config::{Config, Protocol, SocketKey, TargetId};
use ringgate_health::{HealthEntry, HealthTable, ServerKey};
use ringgate_http::{ErrorCode, ParseLimits};

use crate::balance::affinity_token;
use crate::metrics::{MetricsRegistry, RuleLabels, RuleSeries};
use crate::route::{HostRoutes, RedirectPlan, RedirectPlanTarget, RouteAction, RulePlan};

/// Everything workers need from one configuration.
#[derive(Debug)]
pub struct Plan {
    pub config: Arc<Config>,
    pub generation: u64,
    pub sockets: Vec<SocketPlan>,
    /// Per configured rule (indexed like `Config::rules`).
    pub rules: Vec<RulePlan>,
    /// Per forwarding target (indexed like `Config::targets`).
    pub targets: Vec<TargetPlan>,
    pub redirects: Vec<RedirectPlan>,
    /// Per rule: counters, listener and rule name for what a rule answers
    /// without a target (redirects).
    pub rule_series: Vec<Option<RuleOwnSeries>>,
    pub limits: ParseLimits,
    pub max_request_body: u64,
    pub keepalive_timeout: Duration,
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub http2: ringgate_config::Http2Settings,
    pub splice: ringgate_config::SpliceSettings,
    /// `error_detail = "public"`: error bodies without the gateway's internals.
    pub public_errors: bool,
    /// Counters of requests no rule took (bad heads, unknown hosts).
    pub unrouted: RuleSeries,
}

/// Custom error pages by status: a listener's, then the gateway's.
#[derive(Debug, Default)]
pub struct ErrorPages(Vec<(u16, Arc<[u8]>, Box<str>)>);

impl ErrorPages {
    /// The pages of `listener` (by index), falling back to the gateway's.
    fn of(config: &Config, listener: Option<usize>) -> ErrorPages {
        let own = listener.map_or(&[][..], |l| &config.listeners[l].error_pages[..]);
        let mut pages: Vec<(u16, Arc<[u8]>, Box<str>)> =
            own.iter().map(|p| (p.status, p.body.clone(), p.content_type.as_str().into())).collect();
        for p in &config.gateway.error_pages {
            if !pages.iter().any(|(s, ..)| *s == p.status) {
                pages.push((p.status, p.body.clone(), p.content_type.as_str().into()));
            }
        }
        ErrorPages(pages)
    }

    /// The answer for `code`: the page for its status, else the plain text.
    pub fn response(&self, code: ErrorCode, text: &str, close: bool) -> Vec<u8> {
        self.response_as(code, code.status(), text, close)
    }

    /// [`ErrorPages::response`] sent with `status` (and its page) instead of
    /// the code's own.
    pub fn response_as(&self, code: ErrorCode, status: u16, text: &str, close: bool) -> Vec<u8> {
        match self.0.iter().find(|(s, ..)| *s == status) {
            Some((_, body, ct)) => ringgate_http::error_page_response_as(code, status, body, ct, close),
            None => ringgate_http::error_response_as(code, status, text, close),
        }
    }
}

/// An affinity cookie's name and its `CORS` twin's.
pub type AffinityCookies = (Box<[u8]>, Box<[u8]>);

/// A rule's own counters, with its listener and name for the access log.
pub type RuleOwnSeries = (RuleSeries, Arc<str>, Arc<str>);

/// One listening address and the listeners (rules) that share it.
#[derive(Debug)]
pub struct SocketPlan {
    pub key: SocketKey,
    pub protocol: Protocol,
    pub routes: HostRoutes,
    /// TLS for an `https` socket: its listeners' certificates, picked by SNI.
    pub tls: Option<Arc<ringgate_tls::ServerConfig>>,
    /// Pages for answers given before a listener is chosen: the socket's
    /// only listener's, else the gateway's.
    pub error_pages: ErrorPages,
    /// A plain socket serves HTTP/2 with prior knowledge (`http2_cleartext`).
    pub h2c: bool,
    /// Connections start with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// Mutual TLS: how a client's certificate is verified after the
    /// handshake, and whether requests need one.
    pub client_auth: Option<ringgate_tls::ClientAuth>,
}

/// A forwarding target: a rule (or one of its path rules) with its pool and
/// settings resolved.
#[derive(Debug)]
pub struct TargetPlan {
    /// `rule` or `rule/path_rule`.
    pub name: Arc<str>,
    /// The rule's own name.
    pub rule: Arc<str>,
    pub path_rule: Option<Arc<str>>,
    pub listener: Arc<str>,
    pub pool: Arc<str>,
    pub settings: Arc<str>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
    /// Servers tried when a connection cannot be opened (`max_attempts`).
    pub max_attempts: u32,
    /// A server back in rotation ramps up over this long (`slow_start`).
    pub slow_start: Duration,
    /// How long one attempt waits for a response head (`attempt_timeout`).
    pub attempt_timeout: Duration,
    /// The status a `TIMEOUT` is answered with (`timeout_status`).
    pub timeout_status: u16,
    /// The pool's weighted round-robin schedule (`None`: equal weights).
    pub schedule: Option<Box<[u16]>>,
    pub distribution: ringgate_config::LoadDistribution,
    /// Host header sent instead of the client's.
    pub host_override: Option<Box<[u8]>>,
    /// Host = each server's own host name (`pick_host_name_from_backend_address`).
    pub host_from_server: bool,
    /// Replaces the matched path prefix (`override_backend_path`).
    pub override_path: Option<Box<[u8]>>,
    /// `connection_draining` time-out, when enabled.
    pub draining: Option<Duration>,
    /// The rewrite rule set of this rule or path rule.
    pub rewrite: Option<Arc<ringgate_rewrite::RuleSet>>,
    /// Custom error pages of the rule's listener (and the gateway's).
    pub error_pages: ErrorPages,
    /// Affinity cookie name when cookie-based affinity is on, and its
    /// `CORS` twin's (read when the first is absent: a cross-site request).
    pub affinity_cookie: Option<AffinityCookies>,
    /// `http` or `https`, for X-Forwarded-Proto.
    pub client_proto: &'static [u8],
    pub servers: Vec<ServerPlan>,
    /// Pre-built 502s: index 0 keeps the connection, 1 closes it.
    pub pool_empty: [Box<[u8]>; 2],
    pub all_unhealthy: [Box<[u8]>; 2],
    pub not_yet_probed: [Box<[u8]>; 2],
    /// Their full text, for the access log whatever `error_detail` says.
    pub pool_empty_detail: Arc<str>,
    pub all_unhealthy_detail: Arc<str>,
    pub not_yet_probed_detail: Arc<str>,
    pub metrics: RuleSeries,
    /// For `https` settings: the TLS client configuration.
    pub backend_tls: Option<Arc<ringgate_tls::ClientConfig>>,
}

/// One server of a rule's pool.
#[derive(Debug, Clone)]
pub struct ServerPlan {
    /// `host:port` as shown in logs and errors.
    pub display: Arc<str>,
    /// For `https` settings: the name the server's certificate must carry
    /// (sent as SNI).
    pub tls_name: Option<rustls_pki_types::ServerName<'static>>,
    /// The client's Host is sent as SNI and verified instead, when it is a
    /// host name: an `https` server given by IP address, with no `host_name`
    /// in its settings (Application Gateway v2's choice; `tls_name`, the
    /// address, stands for a request without a usable Host).
    pub sni_from_client: bool,
    /// Which pooled connections fit this server (see `PoolKey`).
    pub pool_tag: u64,
    pub health: Arc<HealthEntry>,
    pub affinity_token: Box<[u8]>,
    /// The `Set-Cookie` lines that pin a client to this server.
    pub set_cookie: Box<[u8]>,
    /// The server's host name, for `pick_host_name_from_backend_address`.
    pub host_name: Box<[u8]>,
    /// A server a reload removed, kept with connection draining: until this
    /// instant it serves the clients its affinity cookie pins, no others.
    pub drain_until: Option<std::time::Instant>,
}

impl Plan {
    /// Builds the plan of `config`, taking (or creating) each server's health
    /// entry from `health` and each rule's counters from `metrics`.
    pub fn build(
        config: Arc<Config>,
        generation: u64,
        health: &HealthTable,
        metrics: &MetricsRegistry,
    ) -> Result<Plan, String> {
        Self::build_after(config, generation, health, metrics, None)
    }

    /// Like [`Plan::build`], for a reload: servers of `previous` that the
    /// new configuration removed stay in their target, draining, when its
    /// settings enable connection draining.
    pub fn build_after(
        config: Arc<Config>,
        generation: u64,
        health: &HealthTable,
        metrics: &MetricsRegistry,
        previous: Option<&Plan>,
    ) -> Result<Plan, String> {
        let targets = (0..config.targets.len())
            .map(|i| {
                let mut t = build_target(&config, TargetId(i), health, metrics);
                if let (Some(prev), Some(d)) =
                    (previous, config.settings[config.targets[i].settings.0].connection_draining)
                {
                    keep_draining(&mut t, prev, d.timeout);
                }
                t
            })
            .collect();
        let (rules, redirects) = crate::route::build(&config);
        // Only rules that can redirect get a series of their own (with no
        // pool); everything else is counted on its targets'.
        let rule_series = config
            .rules
            .iter()
            .zip(&rules)
            .map(|(r, plan)| {
                let redirects = match plan {
                    RulePlan::Basic(a) => matches!(a, RouteAction::Redirect(_)),
                    RulePlan::PathBased(m) => {
                        matches!(m.default, RouteAction::Redirect(_))
                            || m.path_rules.iter().any(|(_, a)| matches!(a, RouteAction::Redirect(_)))
                    }
                };
                redirects.then(|| {
                    let listener = config.listeners[r.listener.0].name.clone();
                    let labels = RuleLabels { listener: listener.clone(), rule: r.name.clone(), pool: String::new() };
                    (metrics.rule(labels), listener.into(), r.name.as_str().into())
                })
            })
            .collect();
        let sockets = config
            .socket_groups()
            .into_iter()
            .map(|g| {
                let mut routes = HostRoutes::default();
                for l in &g.listeners {
                    if let Some(r) = config.rule_for(*l) {
                        let hosts = &config.listeners[l.0].host_names;
                        match config.rules[r.0].priority {
                            Some(p) => routes.add_prioritized(hosts, r.0, p),
                            None => routes.add(hosts, r.0),
                        }
                    }
                }
                let tls = match g.protocol {
                    Protocol::Https => Some(socket_tls(&config, &g.listeners)?),
                    Protocol::Http => None,
                };
                // Validation made the listeners of a socket agree on it.
                let client_auth = g
                    .listeners
                    .iter()
                    .find_map(|id| config.listeners[id.0].tls.as_ref()?.client_auth.as_ref())
                    .map(|c| c.auth.clone());
                let only = (g.listeners.len() == 1).then(|| g.listeners[0].0);
                let error_pages = ErrorPages::of(&config, only);
                let h2c = g.listeners.iter().any(|id| config.listeners[id.0].http2_cleartext);
                // Validation made the listeners of a socket agree.
                let proxy_protocol = g.listeners.iter().any(|id| config.listeners[id.0].proxy_protocol);
                Ok(SocketPlan {
                    key: g.key,
                    protocol: g.protocol,
                    routes,
                    tls,
                    error_pages,
                    h2c,
                    proxy_protocol,
                    client_auth,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let l = &config.gateway.limits;
        Ok(Plan {
            generation,
            sockets,
            rules,
            targets,
            redirects,
            rule_series,
            limits: ParseLimits { max_head: l.max_request_head, max_headers: l.max_headers, max_uri: l.max_uri },
            max_request_body: l.max_request_body,
            keepalive_timeout: l.client_keepalive_timeout,
            header_timeout: l.header_read_timeout,
            max_connections: l.max_connections_per_worker,
            http2: config.gateway.http2,
            splice: config.gateway.splice,
            public_errors: config.gateway.error_detail == ringgate_config::ErrorDetail::Public,
            unrouted: metrics.rule(RuleLabels::default()),
            config,
        })
    }

    /// Is `ip` one of `trusted_proxies` (every address when none are set)?
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        // A v4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        self.config.gateway.trusted_proxies.as_ref().is_none_or(|nets| nets.iter().any(|n| n.contains(&ip)))
    }

    /// Every (settings, pool, server) key this plan uses, for pruning the
    /// health table after a reload.
    pub fn server_keys(&self) -> Vec<ServerKey> {
        // Draining servers are left out: the health table marks them so.
        self.targets
            .iter()
            .flat_map(|r| r.servers.iter().filter(|s| s.drain_until.is_none()).map(|s| s.health.key().clone()))
            .collect()
    }

    /// Fills in the ports of redirects to listeners configured on port 0,
    /// once their sockets are bound.
    pub(crate) fn set_bound_ports(&mut self, bound: &[(SocketKey, std::net::SocketAddr)]) {
        for r in &mut self.redirects {
            if let RedirectPlanTarget::Listener { port, socket, .. } = &mut r.target
                && let Some((_, addr)) = bound.iter().find(|(k, _)| k == socket)
            {
                *port = addr.port();
            }
        }
    }

    #[inline]
    pub fn socket(&self, key: &SocketKey) -> Option<&SocketPlan> {
        self.sockets.iter().find(|s| s.key == *key)
    }
}

fn build_target(config: &Config, id: TargetId, health: &HealthTable, metrics: &MetricsRegistry) -> TargetPlan {
    let target = &config.targets[id.0];
    let rule = &config.rules[target.rule.0];
    let listener = &config.listeners[rule.listener.0];
    let pool = &config.pools[target.pool.0];
    let settings = &config.settings[target.settings.0];
    let servers = pool
        .servers
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let key = ServerKey::of(config, target.pool.0, target.settings, i);
            let entry = health.ensure(&key, &addr.host, addr.port_or(settings.port));
            let token = affinity_token(&pool.name, &key.server);
            // On https listeners the cookie is never sent in clear, and not
            // on cross-site subrequests (a top-level navigation keeps it);
            // its `CORS` twin, as Application Gateway v2 sets it, is sent on
            // those too (SameSite=None needs Secure), for cross-origin calls.
            let name = &settings.affinity_cookie_name;
            let set_cookie = match listener.protocol {
                Protocol::Https => format!(
                    "Set-Cookie: {name}={token}; Path=/; HttpOnly; Secure; SameSite=Lax\r\n\
                     Set-Cookie: {name}CORS={token}; Path=/; HttpOnly; SameSite=None; Secure\r\n"
                ),
                Protocol::Http => format!("Set-Cookie: {name}={token}; Path=/; HttpOnly\r\n"),
            };
            let tls_name = (settings.protocol == Protocol::Https)
                .then(|| {
                    let name = settings.host_name.clone().unwrap_or_else(|| addr.host.to_string());
                    ringgate_tls::server_name(&name)
                })
                .flatten();
            let pool_tag = match &tls_name {
                None => 0,
                Some(n) => {
                    let roots =
                        settings.trusted_roots.as_ref().map(|r| r.path.display().to_string()).unwrap_or_default();
                    tag(&format!("{n:?}|{roots}"))
                }
            };
            ServerPlan {
                display: key.server.as_str().into(),
                tls_name,
                pool_tag,
                sni_from_client: settings.protocol == Protocol::Https
                    && settings.host_name.is_none()
                    && !settings.pick_host_name_from_backend_address
                    && addr
                        .host
                        .to_string()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok(),
                health: entry,
                affinity_token: token.into_bytes().into(),
                set_cookie: set_cookie.into_bytes().into(),
                host_name: addr.host.to_string().into_bytes().into(),
                drain_until: None,
            }
        })
        .collect();
    let backend_tls = match settings.protocol {
        Protocol::Https => {
            let roots = settings.trusted_roots.as_ref().map(|r| r.store.clone());
            ringgate_tls::client_config(roots).ok()
        }
        Protocol::Http => None,
    };
    let error_pages = ErrorPages::of(config, Some(rule.listener.0));
    let canned = |code: ErrorCode, text: String| -> [Box<[u8]>; 2] {
        [error_pages.response(code, &text, false).into(), error_pages.response(code, &text, true).into()]
    };
    let full = config.gateway.error_detail == ringgate_config::ErrorDetail::Full;
    let pool_empty_detail = format!(
        "502 Bad Gateway (rule \"{}\"): backend pool \"{}\" is empty; add addresses to it",
        target.display, pool.name
    );
    let all_unhealthy_detail = format!(
        "502 Bad Gateway (rule \"{}\"): every server of backend pool \"{}\" is unhealthy; see GET /backend-health on the admin listener or run `ringgate doctor`",
        target.display, pool.name
    );
    let not_yet_probed_detail = format!(
        "502 Bad Gateway (rule \"{}\"): no server of backend pool \"{}\" takes requests yet: some have not had their first probe's answer (unprobed_servers = \"wait\"), which comes within the probe's time-out ({} ms); see GET /backend-health",
        target.display,
        pool.name,
        config.probe_for(target.settings).timeout.as_millis()
    );
    let shown = |code: ErrorCode, detail: &str| {
        if full { detail.to_string() } else { crate::error::public_text(code).to_string() }
    };
    let pool_empty = canned(ErrorCode::PoolEmpty, shown(ErrorCode::PoolEmpty, &pool_empty_detail));
    let all_unhealthy = canned(ErrorCode::AllUnhealthy, shown(ErrorCode::AllUnhealthy, &all_unhealthy_detail));
    let not_yet_probed = canned(ErrorCode::NotYetProbed, shown(ErrorCode::NotYetProbed, &not_yet_probed_detail));
    TargetPlan {
        name: target.display.as_str().into(),
        rule: rule.name.as_str().into(),
        path_rule: target.path_rule.as_deref().map(Into::into),
        listener: listener.name.as_str().into(),
        pool: pool.name.as_str().into(),
        settings: settings.name.as_str().into(),
        request_timeout: settings.request_timeout,
        connect_timeout: settings.connect_timeout,
        idle_timeout: settings.idle_timeout,
        max_idle: settings.max_idle_connections,
        max_attempts: settings.max_attempts,
        slow_start: settings.slow_start,
        attempt_timeout: settings.attempt_timeout,
        timeout_status: settings.timeout_status,
        schedule: crate::balance::weighted_schedule(&pool.weights),
        distribution: settings.load_distribution,
        host_override: settings.host_name.as_ref().map(|h| h.as_bytes().into()),
        host_from_server: settings.pick_host_name_from_backend_address,
        override_path: settings.override_backend_path.as_ref().map(|p| p.as_bytes().into()),
        draining: settings.connection_draining.map(|d| d.timeout),
        rewrite: target.rewrite_set.map(|r| config.rewrite_rule_sets[r.0].set.clone()),
        error_pages,
        affinity_cookie: settings.cookie_based_affinity.then(|| {
            let name = &settings.affinity_cookie_name;
            (name.as_bytes().into(), format!("{name}CORS").into_bytes().into())
        }),
        client_proto: match listener.protocol {
            Protocol::Http => b"http",
            Protocol::Https => b"https",
        },
        servers,
        pool_empty,
        all_unhealthy,
        not_yet_probed,
        pool_empty_detail: pool_empty_detail.into(),
        all_unhealthy_detail: all_unhealthy_detail.into(),
        not_yet_probed_detail: not_yet_probed_detail.into(),
        backend_tls,
        metrics: metrics.rule(RuleLabels {
            listener: listener.name.clone(),
            rule: rule.name.clone(),
            pool: pool.name.clone(),
        }),
    }
}

/// Connection draining across a reload: the servers the same pool had
/// through the same settings in `prev` and no longer has are kept in `t`,
/// draining until `timeout` after their removal (a server already draining
/// keeps its own deadline).
fn keep_draining(t: &mut TargetPlan, prev: &Plan, timeout: std::time::Duration) {
    let now = std::time::Instant::now();
    for old in prev.targets.iter().filter(|o| o.pool == t.pool && o.settings == t.settings) {
        for s in &old.servers {
            if t.servers.iter().any(|n| n.display == s.display) {
                continue;
            }
            let until = s.drain_until.unwrap_or(now + timeout);
            if until > now {
                t.servers.push(ServerPlan { drain_until: Some(until), ..s.clone() });
            }
        }
    }
}

/// The TLS acceptor of a socket: each listener's certificate, chosen by SNI
/// among the host names it answers; the basic listener's is the default.
fn socket_tls(
    config: &Config,
    listeners: &[ringgate_config::ListenerId],
) -> Result<Arc<ringgate_tls::ServerConfig>, String> {
    let mut sites = Vec::new();
    let mut default = None;
    for id in listeners {
        let l = &config.listeners[id.0];
        let Some(tls) = &l.tls else { continue };
        if l.is_basic() {
            default = Some(tls.key.clone());
        }
        let mut site = ringgate_tls::SniSite {
            exact: Vec::new(),
            wildcard_suffixes: Vec::new(),
            globs: Vec::new(),
            key: tls.key.clone(),
        };
        for h in &l.host_names {
            match h {
                ringgate_config::HostPattern::Exact(n) => site.exact.push(n.clone()),
                ringgate_config::HostPattern::Wildcard(s) => site.wildcard_suffixes.push(s.clone()),
                ringgate_config::HostPattern::Glob(g) => site.globs.push(g.clone()),
            }
        }
        sites.push(site);
    }
    let http2 = listeners.iter().any(|id| config.listeners[id.0].http2);
    let first = listeners.iter().find_map(|id| config.listeners[id.0].tls.as_ref());
    let default_policy = ringgate_tls::TlsPolicy::default_policy();
    let policy = first.map_or(&default_policy, |t| &t.policy);
    let client_auth = first.and_then(|t| t.client_auth.as_ref()).map(|c| &c.auth);
    ringgate_tls::server_config(sites, default, http2, policy, client_auth)
}

/// A stable 64-bit tag of a string (FNV-1a), never 0.
/// The pool tag of a connection to `server` verified for `name`, the
/// client's Host (see [`ServerPlan::sni_from_client`]).
pub(crate) fn tag_for_name(server: &ServerPlan, name: &str) -> u64 {
    server.pool_tag ^ (crate::balance::fnv1a(name.bytes()) | 1)
}

fn tag(s: &str) -> u64 {
    crate::balance::fnv1a(s.bytes()) | 1
}
