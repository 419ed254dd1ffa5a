//! The plan: a configuration turned into what the request path needs, built
//! once per load or reload on the control thread and shared read-only by the
//! workers. Routing tables, server lists with their health entries, affinity
//! cookies and the fast-path 502 responses are all made here, so serving a
//! request formats nothing it could have prepared.

use std::sync::Arc;
use std::time::Duration;

use ringgate_config::{Config, Protocol, RuleId, SocketKey};
use ringgate_health::{HealthEntry, HealthTable, ServerKey};
use ringgate_http::{ErrorCode, ParseLimits, error_response};

use crate::balance::affinity_token;
use crate::metrics::{MetricsRegistry, RuleLabels, RuleSeries};
use crate::route::HostRoutes;

/// Everything workers need from one configuration.
#[derive(Debug)]
pub struct Plan {
    pub config: Arc<Config>,
    pub generation: u64,
    pub sockets: Vec<SocketPlan>,
    pub rules: Vec<RulePlan>,
    pub limits: ParseLimits,
    pub max_request_body: u64,
    pub keepalive_timeout: Duration,
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// Counters of requests no rule took (bad heads, unknown hosts).
    pub unrouted: RuleSeries,
}

/// One listening address and the listeners (rules) that share it.
#[derive(Debug)]
pub struct SocketPlan {
    pub key: SocketKey,
    pub protocol: Protocol,
    pub routes: HostRoutes,
    /// TLS for an `https` socket: its listeners' certificates, picked by SNI.
    pub tls: Option<Arc<ringgate_tls::ServerConfig>>,
}

/// A rule with its pool and settings resolved.
#[derive(Debug)]
pub struct RulePlan {
    pub name: Arc<str>,
    pub listener: Arc<str>,
    pub pool: Arc<str>,
    pub settings: Arc<str>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
    /// Host header sent instead of the client's.
    pub host_override: Option<Box<[u8]>>,
    /// Affinity cookie name when cookie-based affinity is on.
    pub affinity_cookie: Option<Box<[u8]>>,
    /// `http` or `https`, for X-Forwarded-Proto.
    pub client_proto: &'static [u8],
    pub servers: Vec<ServerPlan>,
    /// Pre-built 502s: index 0 keeps the connection, 1 closes it.
    pub pool_empty: [Box<[u8]>; 2],
    pub all_unhealthy: [Box<[u8]>; 2],
    pub metrics: RuleSeries,
    /// For `https` settings: the TLS client configuration.
    pub backend_tls: Option<Arc<ringgate_tls::ClientConfig>>,
}

/// One server of a rule's pool.
#[derive(Debug)]
pub struct ServerPlan {
    /// `host:port` as shown in logs and errors.
    pub display: Arc<str>,
    /// For `https` settings: the name the server's certificate must carry
    /// (sent as SNI).
    pub tls_name: Option<rustls_pki_types::ServerName<'static>>,
    /// Which pooled connections fit this server (see `PoolKey`).
    pub pool_tag: u64,
    pub health: Arc<HealthEntry>,
    pub affinity_token: Box<[u8]>,
    /// The whole `Set-Cookie` value that pins a client to this server.
    pub set_cookie: Box<[u8]>,
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
        let mut rules = Vec::with_capacity(config.rules.len());
        for (i, _) in config.rules.iter().enumerate() {
            rules.push(build_rule(&config, RuleId(i), health, metrics));
        }
        let sockets = config
            .socket_groups()
            .into_iter()
            .map(|g| {
                let mut routes = HostRoutes::default();
                for l in &g.listeners {
                    if let Some(r) = config.rule_for(*l) {
                        routes.add(&config.listeners[l.0].host_names, r.0);
                    }
                }
                let tls = match g.protocol {
                    Protocol::Https => Some(socket_tls(&config, &g.listeners)?),
                    Protocol::Http => None,
                };
                Ok(SocketPlan { key: g.key, protocol: g.protocol, routes, tls })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let l = &config.gateway.limits;
        Ok(Plan {
            generation,
            sockets,
            rules,
            limits: ParseLimits { max_head: l.max_request_head, max_headers: l.max_headers, max_uri: l.max_uri },
            max_request_body: l.max_request_body,
            keepalive_timeout: l.client_keepalive_timeout,
            header_timeout: l.header_read_timeout,
            max_connections: l.max_connections_per_worker,
            unrouted: metrics.rule(RuleLabels::default()),
            config,
        })
    }

    /// Every (settings, pool, server) key this plan uses, for pruning the
    /// health table after a reload.
    pub fn server_keys(&self) -> Vec<ServerKey> {
        self.rules.iter().flat_map(|r| r.servers.iter().map(|s| s.health.key().clone())).collect()
    }

    #[inline]
    pub fn socket(&self, key: &SocketKey) -> Option<&SocketPlan> {
        self.sockets.iter().find(|s| s.key == *key)
    }
}

fn build_rule(config: &Config, id: RuleId, health: &HealthTable, metrics: &MetricsRegistry) -> RulePlan {
    let rule = &config.rules[id.0];
    let listener = &config.listeners[rule.listener.0];
    let pool = &config.pools[rule.pool.0];
    let settings = &config.settings[rule.settings.0];
    let servers = pool
        .servers
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let key = ServerKey::of(config, rule.pool.0, rule.settings, i);
            let entry = health.ensure(&key, &addr.host, addr.port_or(settings.port));
            let token = affinity_token(&pool.name, &key.server);
            let set_cookie = format!("{}={token}; Path=/; HttpOnly", settings.affinity_cookie_name);
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
                health: entry,
                affinity_token: token.into_bytes().into(),
                set_cookie: set_cookie.into_bytes().into(),
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
    let canned = |code: ErrorCode, text: String| -> [Box<[u8]>; 2] {
        [error_response(code, &text, false).into(), error_response(code, &text, true).into()]
    };
    RulePlan {
        name: rule.name.as_str().into(),
        listener: listener.name.as_str().into(),
        pool: pool.name.as_str().into(),
        settings: settings.name.as_str().into(),
        request_timeout: settings.request_timeout,
        connect_timeout: settings.connect_timeout,
        idle_timeout: settings.idle_timeout,
        max_idle: settings.max_idle_connections,
        host_override: settings.host_name.as_ref().map(|h| h.as_bytes().into()),
        affinity_cookie: settings.cookie_based_affinity.then(|| settings.affinity_cookie_name.as_bytes().into()),
        client_proto: match listener.protocol {
            Protocol::Http => b"http",
            Protocol::Https => b"https",
        },
        servers,
        pool_empty: canned(
            ErrorCode::PoolEmpty,
            format!(
                "502 Bad Gateway (rule \"{}\"): backend pool \"{}\" is empty; add addresses to it",
                rule.name, pool.name
            ),
        ),
        all_unhealthy: canned(
            ErrorCode::AllUnhealthy,
            format!(
                "502 Bad Gateway (rule \"{}\"): every server of backend pool \"{}\" is unhealthy; see GET /backend-health on the admin listener or run `ringgate doctor`",
                rule.name, pool.name
            ),
        ),
        backend_tls,
        metrics: metrics.rule(RuleLabels {
            listener: listener.name.clone(),
            rule: rule.name.clone(),
            pool: pool.name.clone(),
        }),
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
        let mut site = ringgate_tls::SniSite { exact: Vec::new(), wildcard_suffixes: Vec::new(), key: tls.key.clone() };
        for h in &l.host_names {
            match h {
                ringgate_config::HostPattern::Exact(n) => site.exact.push(n.clone()),
                ringgate_config::HostPattern::Wildcard(s) => site.wildcard_suffixes.push(s.clone()),
            }
        }
        sites.push(site);
    }
    ringgate_tls::server_config(sites, default)
}

/// A stable 64-bit tag of a string (FNV-1a), never 0.
fn tag(s: &str) -> u64 {
    crate::balance::fnv1a(s.bytes()) | 1
}
