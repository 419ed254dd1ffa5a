//! Walks the TOML document field by field. Unlike a derived serde struct, which
//! stops at the first problem, the walk records every problem (wrong type,
//! out-of-range value, unknown field) with its line and keeps going, so an
//! operator fixes a broken file in one pass.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{ConfigErrors, Diags};
use crate::model::{Config, HostPattern, Protocol, ServerAddress};
use crate::units::{parse_duration, parse_size};
use crate::validate::{self, parse_host, parse_host_pattern, parse_server_address};

mod rewrite;
mod routing;
pub(crate) use rewrite::RawRewriteSet;
pub(crate) use routing::{RawPathMap, RawPathRule, RawRedirect};

/// Reads and validates a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors::io(path, &e))?;
    load_str(&text, path)
}

/// Validates configuration text; `source` names it in messages.
pub fn load_str(text: &str, source: &Path) -> Result<Config, ConfigErrors> {
    let mut d = Diags::new(source, text);
    let root = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => {
            let at = e.span().map(|s| s.start);
            d.error(at, "file", None, format!("not valid TOML: {}", e.message().trim()));
            return Err(d.into_errors());
        }
    };
    let mut raw = RawConfig::default();
    for (key, value) in root.get_ref().iter() {
        let at = key.span().start;
        match key.get_ref().as_ref() {
            "gateway" => match value.get_ref() {
                DeValue::Table(t) => raw.gateway = Some(read_gateway(&mut d, t, at)),
                _ => d.error(Some(at), "[gateway]", None, "must be a table: write `[gateway]`".into()),
            },
            section @ ("listener"
            | "backend_pool"
            | "backend_http_settings"
            | "probe"
            | "rule"
            | "url_path_map"
            | "redirect"
            | "rewrite_rule_set") => {
                let DeValue::Array(items) = value.get_ref() else {
                    d.error(
                        Some(at),
                        &format!("[{section}]"),
                        None,
                        format!("must be an array of tables: write `[[{section}]]` for each entry"),
                    );
                    continue;
                };
                for (n, item) in items.iter().enumerate() {
                    let DeValue::Table(t) = item.get_ref() else {
                        d.error(
                            Some(item.span().start),
                            &format!("[[{section}]] #{}", n + 1),
                            None,
                            "must be a table".into(),
                        );
                        continue;
                    };
                    let at = item.span().start;
                    match section {
                        "listener" => raw.listeners.push(read_listener(&mut d, t, at, n)),
                        "backend_pool" => raw.pools.push(read_pool(&mut d, t, at, n)),
                        "backend_http_settings" => raw.settings.push(read_settings(&mut d, t, at, n)),
                        "probe" => raw.probes.push(read_probe(&mut d, t, at, n)),
                        "url_path_map" => raw.path_maps.push(routing::read_path_map(&mut d, t, at, n)),
                        "redirect" => raw.redirects.push(routing::read_redirect(&mut d, t, at, n)),
                        "rewrite_rule_set" => raw.rewrite_sets.push(rewrite::read_rewrite_set(&mut d, t, at, n)),
                        _ => raw.rules.push(read_rule(&mut d, t, at, n)),
                    }
                }
            }
            other => {
                let hint = suggest(other, TOP_LEVEL).map_or(String::new(), |s| format!("; did you mean `{s}`?"));
                d.error(
                    Some(at),
                    "file",
                    Some(other),
                    format!("unknown section (expected one of: {}){hint}", TOP_LEVEL.join(", ")),
                );
            }
        }
    }
    let cfg = validate::resolve(raw, &mut d, source);
    match cfg {
        Some(cfg) if d.errors.is_empty() => Ok(cfg),
        _ => Err(d.into_errors()),
    }
}

const TOP_LEVEL: &[&str] = &[
    "gateway",
    "listener",
    "backend_pool",
    "backend_http_settings",
    "probe",
    "rule",
    "url_path_map",
    "redirect",
    "rewrite_rule_set",
];

/// The file's entries after field-level checks, before names are resolved.
/// A field that failed its check is `None` (its error is already recorded).
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub gateway: Option<RawGateway>,
    pub listeners: Vec<RawListener>,
    pub pools: Vec<RawPool>,
    pub settings: Vec<RawSettings>,
    pub probes: Vec<RawProbe>,
    pub rules: Vec<RawRule>,
    pub path_maps: Vec<RawPathMap>,
    pub redirects: Vec<RawRedirect>,
    pub rewrite_sets: Vec<RawRewriteSet>,
}

#[derive(Debug)]
pub(crate) struct RawGateway {
    pub workers: Option<usize>,
    pub worker_cpus: Vec<usize>,
    pub prober_cpu: Option<usize>,
    /// `Some(None)`: explicitly disabled.
    pub admin_listen: Option<Option<SocketAddr>>,
    pub admin_at: usize,
    pub recent_window: Option<Duration>,
    pub drain_timeout: Option<Duration>,
    pub shutdown_delay: Option<Duration>,
    pub dns_refresh: Option<Duration>,
    pub watch_config: Option<bool>,
    pub error_detail: Option<crate::model::ErrorDetail>,
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
    pub allow_trace: Option<bool>,
    pub access_log_format: Option<crate::model::AccessLogFormat>,
    pub unknown_version_status: Option<u16>,
    pub log_format: Option<crate::model::LogFormat>,
    pub watch_interval: Option<Duration>,
    pub access_log: Option<String>,
    pub max_request_head: Option<u64>,
    pub max_headers: Option<u64>,
    pub max_uri: Option<u64>,
    pub max_request_body: Option<u64>,
    pub max_connections_per_worker: Option<u64>,
    pub client_keepalive_timeout: Option<Duration>,
    pub header_read_timeout: Option<Duration>,
    pub io_uring_entries: Option<u64>,
    pub coop_taskrun: Option<bool>,
    pub defer_taskrun: Option<bool>,
    pub multishot_recv: Option<bool>,
    pub splice_enabled: Option<bool>,
    pub splice_min_body: Option<u64>,
    pub splice_pipe_size: Option<u64>,
    pub http2_max_concurrent_streams: Option<u64>,
    pub http2_initial_stream_window: Option<u64>,
    pub http2_initial_connection_window: Option<u64>,
    pub http2_max_frame_size: Option<u64>,
    pub error_pages: Vec<crate::routing::ErrorPage>,
    pub allow_subsecond_timers: Option<bool>,
    pub unprobed_servers: Option<crate::model::UnprobedServers>,
}

#[derive(Debug)]
pub(crate) struct RawListener {
    pub at: usize,
    pub label: String,
    pub name: Option<String>,
    pub listen: Option<SocketAddr>,
    pub host_names: Vec<(HostPattern, usize)>,
    pub protocol: Option<Protocol>,
    pub tls: Option<crate::model::ListenerTls>,
    pub error_pages: Vec<crate::routing::ErrorPage>,
    pub http2: Option<bool>,
    pub http2_cleartext: Option<bool>,
    pub proxy_protocol: Option<bool>,
}

#[derive(Debug)]
pub(crate) struct RawPool {
    pub at: usize,
    pub addresses_at: Option<usize>,
    pub label: String,
    pub name: Option<String>,
    pub servers: Vec<(ServerAddress, usize)>,
    pub weights: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct RawSettings {
    pub at: usize,
    pub label: String,
    pub name: Option<String>,
    pub port: Option<u16>,
    pub protocol: Option<Protocol>,
    pub cookie_based_affinity: Option<bool>,
    pub affinity_cookie_name: Option<String>,
    pub request_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub probe: Option<(String, usize)>,
    pub host_name: Option<String>,
    pub trusted_roots: Option<crate::model::TrustedRoots>,
    pub max_idle_connections: Option<u64>,
    pub max_attempts: Option<u64>,
    pub load_distribution: Option<crate::model::LoadDistribution>,
    pub slow_start: Option<Duration>,
    pub attempt_timeout: Option<(Duration, usize)>,
    pub timeout_status: Option<u16>,
    pub idle_timeout: Option<Duration>,
    pub override_backend_path: Option<String>,
    pub pick_host_from_address: Option<(bool, usize)>,
    pub connection_draining: Option<Option<Duration>>,
}

#[derive(Debug)]
pub(crate) struct RawProbe {
    pub at: usize,
    pub label: String,
    pub name: Option<String>,
    pub protocol: Option<Protocol>,
    pub host: Option<String>,
    pub pick_host: Option<bool>,
    pub path: Option<String>,
    pub interval: Option<Duration>,
    pub interval_at: usize,
    pub timeout: Option<Duration>,
    pub timeout_at: usize,
    pub unhealthy_threshold: Option<u32>,
    pub healthy_threshold: Option<u32>,
    pub status_codes: Option<Vec<std::ops::RangeInclusive<u16>>>,
    pub body: Option<String>,
    pub port: Option<u16>,
    pub min_servers: Option<u32>,
    pub min_servers_at: usize,
}

#[derive(Debug)]
pub(crate) struct RawRule {
    pub at: usize,
    pub label: String,
    pub name: Option<String>,
    pub listener: Option<(String, usize)>,
    pub pool: Option<(String, usize)>,
    pub settings: Option<(String, usize)>,
    pub priority: Option<(u32, usize)>,
    pub rule_type: Option<(String, usize)>,
    pub url_path_map: Option<(String, usize)>,
    pub redirect: Option<(String, usize)>,
    pub rewrite_set: Option<(String, usize)>,
}

/// Probe and request time-outs: 1 s to 1 day as integers, down to 10 ms as strings.
const TIME_MIN: Duration = Duration::from_millis(10);
const TIME_MAX: Duration = Duration::from_secs(86_400);
/// Application Gateway v2's probe interval and time-out: 1 to 86400 whole
/// seconds. Sub-second and fractional values (down to [`TIME_MIN`]) are
/// accepted only with `[gateway] allow_subsecond_timers = true`, decided in
/// `validate` once the whole file (and so `[gateway]`) has been read.
const PROBE_TIME_MIN: Duration = Duration::from_secs(1);
/// Largest `min_servers`: more than any pool would hold (it only ever keeps
/// the servers a pool has).
const MAX_MIN_SERVERS: i64 = 10_000;
/// Longest `match.body` Application Gateway v2 accepts, in characters.
pub(crate) const MAX_MATCH_BODY_CHARS: usize = 4090;

/// Reads the fields of one table entry, recording problems against it.
struct Fields<'a, 'i> {
    d: &'a mut Diags,
    table: &'a DeTable<'i>,
    label: String,
    at: usize,
    known: &'static [&'static str],
}

type Val<'a, 'i> = &'a Spanned<DeValue<'i>>;

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Fields<'a, 'i> {
    fn new(d: &'a mut Diags, table: &'a DeTable<'i>, label: String, at: usize, known: &'static [&'static str]) -> Self {
        Fields { d, table, label, at, known }
    }

    fn get(&self, key: &str) -> Option<Val<'a, 'i>> {
        debug_assert!(self.known.contains(&key), "{key} missing from the known list");
        self.table.get(key)
    }

    fn err(&mut self, at: usize, field: &str, msg: String) {
        self.d.error(Some(at), &self.label, Some(field), msg);
    }

    fn wrong_type(&mut self, field: &str, v: Val<'_, '_>, want: &str) {
        self.err(v.span().start, field, format!("expected {want}, found {}", type_name(v.get_ref())));
    }

    fn string(&mut self, key: &str) -> Option<String> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    fn string_at(&mut self, key: &str) -> Option<(String, usize)> {
        let at = self.get(key)?.span().start;
        self.string(key).map(|s| (s, at))
    }

    fn bool(&mut self, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, v, "true or false");
                None
            }
        }
    }

    fn int_of(&mut self, key: &str, v: Val<'_, '_>) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.err(v.span().start, key, "integer out of range".into());
                    None
                }
            },
            _ => {
                self.wrong_type(key, v, "an integer");
                None
            }
        }
    }

    /// An integer in `min..=max`.
    fn int(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.get(key)?;
        let n = self.int_of(key, v)?;
        if n < min || n > max {
            self.err(v.span().start, key, format!("{n} is out of range (allowed: {min} to {max})"));
            return None;
        }
        Some(n)
    }

    /// Seconds as an integer, or a string such as "250ms", within `min..=max`.
    fn duration(&mut self, key: &str, min: Duration, max: Duration) -> Option<Duration> {
        let v = self.get(key)?;
        let at = v.span().start;
        let d = match v.get_ref() {
            DeValue::Integer(_) => {
                let n = self.int_of(key, v)?;
                // Zero is allowed only where the field means "none" (delays).
                let lo = if min.is_zero() { 0 } else { min.as_secs().max(1) as i64 };
                if n < lo || n > max.as_secs() as i64 {
                    self.err(
                        at,
                        key,
                        format!(
                            "{n} s is out of range (allowed: {lo} to {} seconds, or a string down to \"{}ms\")",
                            max.as_secs(),
                            min.as_millis()
                        ),
                    );
                    return None;
                }
                Duration::from_secs(n as u64)
            }
            DeValue::String(s) => match parse_duration(s) {
                Ok(d) if d < min || d > max => {
                    self.err(
                        at,
                        key,
                        format!("\"{s}\" is out of range (allowed: {}ms to {} s)", min.as_millis(), max.as_secs()),
                    );
                    return None;
                }
                Ok(d) => d,
                Err(e) => {
                    self.err(at, key, e);
                    return None;
                }
            },
            _ => {
                self.wrong_type(key, v, "seconds as an integer or a string such as \"250ms\"");
                return None;
            }
        };
        Some(d)
    }

    /// A probe interval or time-out: whole seconds as an integer (1 to
    /// 86400, Application Gateway v2's range), or a string such as `"30s"`
    /// or `"100ms"` (10 ms to 86400 s). Whether a value that is not whole
    /// seconds is allowed depends on `[gateway] allow_subsecond_timers`,
    /// checked in `validate`.
    fn probe_duration(&mut self, key: &str) -> Option<Duration> {
        let v = self.get(key)?;
        let at = v.span().start;
        match v.get_ref() {
            DeValue::Integer(_) => {
                let n = self.int_of(key, v)?;
                let (lo, hi) = (PROBE_TIME_MIN.as_secs() as i64, TIME_MAX.as_secs() as i64);
                if n < lo || n > hi {
                    self.err(
                        at,
                        key,
                        format!(
                            "{n} s is out of range (allowed: {lo} to {hi} whole seconds, as Application Gateway v2)"
                        ),
                    );
                    return None;
                }
                Some(Duration::from_secs(n as u64))
            }
            DeValue::String(s) => match parse_duration(s) {
                Ok(d) if d < TIME_MIN || d > TIME_MAX => {
                    self.err(
                        at,
                        key,
                        format!(
                            "\"{s}\" is out of range (allowed: 1 to {} s; with [gateway] allow_subsecond_timers = true, down to \"{}ms\")",
                            TIME_MAX.as_secs(),
                            TIME_MIN.as_millis()
                        ),
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(at, key, e);
                    None
                }
            },
            _ => {
                self.wrong_type(key, v, "seconds as an integer or a string such as \"30s\"");
                None
            }
        }
    }

    /// Bytes as an integer, or a string such as "16KiB", within `min..=max`.
    fn size(&mut self, key: &str, min: u64, max: u64) -> Option<u64> {
        let v = self.get(key)?;
        let at = v.span().start;
        let n = match v.get_ref() {
            DeValue::Integer(_) => {
                let n = self.int_of(key, v)?;
                if n < 0 {
                    self.err(at, key, format!("{n} is negative"));
                    return None;
                }
                n as u64
            }
            DeValue::String(s) => match parse_size(s) {
                Ok(n) => n,
                Err(e) => {
                    self.err(at, key, e);
                    return None;
                }
            },
            _ => {
                self.wrong_type(key, v, "bytes as an integer or a string such as \"16KiB\"");
                return None;
            }
        };
        if n < min || n > max {
            self.err(at, key, format!("{n} bytes is out of range (allowed: {min} to {max})"));
            return None;
        }
        Some(n)
    }

    /// An array of strings, each with its offset.
    fn strings(&mut self, key: &str) -> Option<Vec<(String, usize)>> {
        let v = self.get(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(key, v, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span().start)),
                other => {
                    let msg = format!("expected a string, found {}", type_name(other));
                    self.err(item.span().start, &format!("{key}[{i}]"), msg);
                }
            }
        }
        Some(out)
    }

    fn protocol(&mut self, key: &str) -> Option<Protocol> {
        let (s, at) = self.string_at(key)?;
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Protocol::Http),
            "https" => Some(Protocol::Https),
            _ => {
                self.err(at, key, format!("\"{s}\" is not a protocol (use \"http\" or \"https\")"));
                None
            }
        }
    }

    /// The entry's `name`, which also labels its messages from here on.
    fn name(&mut self, section: &str, n: usize) -> Option<String> {
        let name = match self.get("name") {
            None => {
                self.label = format!("[[{section}]] #{}", n + 1);
                let at = self.at;
                self.err(at, "name", "missing: every entry needs a name".into());
                return None;
            }
            Some(_) => self.string("name"),
        };
        match &name {
            Some(s) if s.trim().is_empty() => {
                self.label = format!("[[{section}]] #{}", n + 1);
                let at = self.at;
                self.err(at, "name", "must not be empty".into());
                None
            }
            Some(s) => {
                self.label = format!("[[{section}]] \"{s}\"");
                // From here on the entry is located by its name's line.
                self.at = self.get("name").map_or(self.at, |v| v.span().start);
                name
            }
            None => {
                self.label = format!("[[{section}]] #{}", n + 1);
                None
            }
        }
    }

    fn required<T>(&mut self, key: &str, v: Option<T>) -> Option<T> {
        if v.is_none() && self.table.get(key).is_none() {
            let at = self.at;
            self.err(at, key, "missing (required)".into());
        }
        v
    }

    /// Reports every key the entry has that is not a known field.
    fn finish(self) {
        for (k, v) in self.table.iter() {
            let key: &str = k.get_ref().as_ref();
            if !self.known.contains(&key) {
                let hint = suggest(key, self.known).map_or(String::new(), |s| format!("; did you mean `{s}`?"));
                let msg = format!("unknown field (known fields: {}){hint}", self.known.join(", "));
                let at = v.span().start.min(k.span().start);
                self.d.error(Some(at), &self.label, Some(key), msg);
            }
        }
    }
}

const GATEWAY_FIELDS: &[&str] = &[
    "workers",
    "worker_cpus",
    "prober_cpu",
    "admin_listen",
    "recent_window",
    "drain_timeout",
    "shutdown_delay",
    "dns_refresh",
    "watch_config",
    "watch_interval",
    "error_detail",
    "trusted_proxies",
    "allow_trace",
    "unknown_version_status",
    "log_format",
    "access_log",
    "access_log_format",
    "limits",
    "io_uring",
    "splice",
    "http2",
    "error_pages",
    "allow_subsecond_timers",
    "unprobed_servers",
];
const LIMIT_FIELDS: &[&str] = &[
    "max_request_head",
    "max_headers",
    "max_uri",
    "max_request_body",
    "max_connections_per_worker",
    "client_keepalive_timeout",
    "header_read_timeout",
];
const IO_URING_FIELDS: &[&str] = &["entries", "coop_taskrun", "defer_taskrun", "multishot_recv"];
const SPLICE_FIELDS: &[&str] = &["enabled", "min_body", "pipe_size"];
const HTTP2_FIELDS: &[&str] =
    &["max_concurrent_streams", "initial_stream_window", "initial_connection_window", "max_frame_size"];

/// A `trusted_proxies` entry: a CIDR range, or one address.
fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let bad =
        || format!("\"{s}\" is not an IP address or CIDR range (e.g. \"10.0.0.0/8\", \"192.0.2.7\" or \"fd00::/8\")");
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(ip.into());
    }
    let net = s.parse::<ipnet::IpNet>().map_err(|_| bad())?;
    if net.addr() != net.network() {
        // Almost always a typo for the range, or an address meant alone.
        return Err(format!("\"{s}\" has host bits set: write the range as \"{}\", or the address alone", net.trunc()));
    }
    Ok(net)
}

fn read_gateway(d: &mut Diags, t: &DeTable<'_>, at: usize) -> RawGateway {
    let mut f = Fields::new(d, t, "[gateway]".into(), at, GATEWAY_FIELDS);
    let workers = f.int("workers", 0, 1024).map(|n| n as usize);
    let worker_cpus = f
        .get("worker_cpus")
        .and_then(|v| match v.get_ref() {
            DeValue::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, it)| {
                        let key = format!("worker_cpus[{i}]");
                        let n = f.int_of(&key, it)?;
                        if !(0..=4095).contains(&n) {
                            f.err(it.span().start, &key, format!("{n} is not a CPU number (0 to 4095)"));
                            return None;
                        }
                        Some(n as usize)
                    })
                    .collect(),
            ),
            _ => {
                f.wrong_type("worker_cpus", v, "an array of CPU numbers");
                None
            }
        })
        .unwrap_or_default();
    let prober_cpu = f.int("prober_cpu", 0, 4095).map(|n| n as usize);
    let admin_at = f.get("admin_listen").map_or(at, |v| v.span().start);
    let admin_listen = f.string_at("admin_listen").and_then(|(s, at)| {
        if s.is_empty() || s == "off" {
            return Some(None);
        }
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(Some(a)),
            Err(_) => {
                f.err(at, "admin_listen", format!("\"{s}\" is not an IP:port address (or \"off\")"));
                None
            }
        }
    });
    // At least a second, so the window holds several samples; at most an
    // hour, as a ring of samples it is kept in memory.
    let recent_window = f.duration("recent_window", Duration::from_secs(1), Duration::from_secs(3600));
    let drain_timeout = f.duration("drain_timeout", Duration::ZERO, TIME_MAX);
    let shutdown_delay = f.duration("shutdown_delay", Duration::ZERO, TIME_MAX);
    let dns_refresh = f.duration("dns_refresh", Duration::from_secs(1), TIME_MAX);
    let watch_config = f.bool("watch_config");
    let watch_interval = f.duration("watch_interval", Duration::from_millis(100), TIME_MAX);
    let log_format = f.string_at("log_format").and_then(|(s, at)| match s.as_str() {
        "text" => Some(crate::model::LogFormat::Text),
        "json" => Some(crate::model::LogFormat::Json),
        _ => {
            f.err(at, "log_format", format!("\"{s}\" is not \"text\" or \"json\""));
            None
        }
    });
    let error_detail = f.string_at("error_detail").and_then(|(s, at)| match s.as_str() {
        "public" => Some(crate::model::ErrorDetail::Public),
        "full" => Some(crate::model::ErrorDetail::Full),
        _ => {
            f.err(at, "error_detail", format!("\"{s}\" is not \"public\" or \"full\""));
            None
        }
    });
    let trusted_proxies = f.strings("trusted_proxies").map(|items| {
        items
            .into_iter()
            .enumerate()
            .filter_map(|(i, (s, at))| match parse_cidr(&s) {
                Ok(net) => Some(net),
                Err(e) => {
                    f.err(at, &format!("trusted_proxies[{i}]"), e);
                    None
                }
            })
            .collect()
    });
    let allow_trace = f.bool("allow_trace");
    let access_log_format = f.string_at("access_log_format").and_then(|(s, at)| match s.as_str() {
        "ringgate" => Some(crate::model::AccessLogFormat::Ringgate),
        "appgw" => Some(crate::model::AccessLogFormat::AppGw),
        _ => {
            f.err(at, "access_log_format", format!("\"{s}\" is not \"ringgate\" or \"appgw\""));
            None
        }
    });
    let unknown_version_status = f.int("unknown_version_status", 100, 599).and_then(|n| match n {
        400 | 505 => Some(n as u16),
        _ => {
            let at = f.get("unknown_version_status").map_or(at, |v| v.span().start);
            let msg = format!("{n} is not 400 (Application Gateway v2's answer) or 505 (HTTP Version Not Supported)");
            f.err(at, "unknown_version_status", msg);
            None
        }
    });
    let access_log = f.string_at("access_log").and_then(|(s, at)| {
        if s.trim().is_empty() {
            f.err(at, "access_log", "must be \"off\", \"stdout\" or a file path".into());
            None
        } else {
            Some(s)
        }
    });
    let allow_subsecond_timers = f.bool("allow_subsecond_timers");
    let unprobed_servers = f.string_at("unprobed_servers").and_then(|(s, at)| match s.as_str() {
        "serve" => Some(crate::model::UnprobedServers::Serve),
        "wait" => Some(crate::model::UnprobedServers::Wait),
        _ => {
            f.err(
                at,
                "unprobed_servers",
                format!(
                    "\"{s}\" is not \"serve\" (a server takes requests before its first probe) or \"wait\" (not until a probe succeeds)"
                ),
            );
            None
        }
    });
    let mut g = RawGateway {
        allow_subsecond_timers,
        unprobed_servers,
        workers,
        worker_cpus,
        prober_cpu,
        admin_listen,
        admin_at,
        recent_window,
        drain_timeout,
        shutdown_delay,
        dns_refresh,
        watch_config,
        error_detail,
        trusted_proxies,
        allow_trace,
        access_log_format,
        unknown_version_status,
        log_format,
        watch_interval,
        access_log,
        max_request_head: None,
        max_headers: None,
        max_uri: None,
        max_request_body: None,
        max_connections_per_worker: None,
        client_keepalive_timeout: None,
        header_read_timeout: None,
        io_uring_entries: None,
        coop_taskrun: None,
        defer_taskrun: None,
        multishot_recv: None,
        splice_enabled: None,
        splice_min_body: None,
        splice_pipe_size: None,
        http2_max_concurrent_streams: None,
        http2_initial_stream_window: None,
        http2_initial_connection_window: None,
        http2_max_frame_size: None,
        error_pages: Vec::new(),
    };
    g.error_pages = routing::read_error_pages(&mut f);
    if let Some(v) = f.get("limits") {
        match v.get_ref() {
            DeValue::Table(lt) => {
                let at = v.span().start;
                let mut l = Fields::new(f.d, lt, "[gateway.limits]".into(), at, LIMIT_FIELDS);
                g.max_request_head = l.size("max_request_head", 1024, 1 << 20);
                g.max_headers = l.int("max_headers", 8, 1024).map(|n| n as u64);
                g.max_uri = l.size("max_uri", 64, 1 << 20);
                g.max_request_body = l.size("max_request_body", 0, u64::MAX / 2);
                g.max_connections_per_worker = l.int("max_connections_per_worker", 1, 10_000_000).map(|n| n as u64);
                g.client_keepalive_timeout = l.duration("client_keepalive_timeout", TIME_MIN, TIME_MAX);
                g.header_read_timeout = l.duration("header_read_timeout", TIME_MIN, TIME_MAX);
                l.finish();
            }
            _ => f.wrong_type("limits", v, "a table: write `[gateway.limits]`"),
        }
    }
    if let Some(v) = f.get("io_uring") {
        match v.get_ref() {
            DeValue::Table(it) => {
                let at = v.span().start;
                let mut u = Fields::new(f.d, it, "[gateway.io_uring]".into(), at, IO_URING_FIELDS);
                g.io_uring_entries = u.int("entries", 64, 32768).map(|n| n as u64);
                if let Some(n) = g.io_uring_entries
                    && !n.is_power_of_two()
                {
                    let at = u.get("entries").map_or(at, |v| v.span().start);
                    u.err(at, "entries", format!("{n} is not a power of two"));
                    g.io_uring_entries = None;
                }
                g.coop_taskrun = u.bool("coop_taskrun");
                g.defer_taskrun = u.bool("defer_taskrun");
                g.multishot_recv = u.bool("multishot_recv");
                u.finish();
            }
            _ => f.wrong_type("io_uring", v, "a table: write `[gateway.io_uring]`"),
        }
    }
    if let Some(v) = f.get("splice") {
        match v.get_ref() {
            DeValue::Table(st) => {
                let at = v.span().start;
                let mut s = Fields::new(f.d, st, "[gateway.splice]".into(), at, SPLICE_FIELDS);
                g.splice_enabled = s.bool("enabled");
                g.splice_min_body = s.size("min_body", 1, u64::MAX / 2);
                // A page up to what an unprivileged process may ask
                // (/proc/sys/fs/pipe-max-size, 1 MiB by default).
                g.splice_pipe_size = s.size("pipe_size", 4096, 1 << 20);
                s.finish();
            }
            _ => f.wrong_type("splice", v, "a table: write `[gateway.splice]`"),
        }
    }
    if let Some(v) = f.get("http2") {
        match v.get_ref() {
            DeValue::Table(ht) => {
                let at = v.span().start;
                let mut h = Fields::new(f.d, ht, "[gateway.http2]".into(), at, HTTP2_FIELDS);
                // Ranges from RFC 9113 §6.5.2 (windows at most 2^31-1, frames
                // 16 KiB to 16 MiB), and at least one stream.
                g.http2_max_concurrent_streams = h.int("max_concurrent_streams", 1, 10_000).map(|n| n as u64);
                g.http2_initial_stream_window = h.size("initial_stream_window", 1024, (1 << 31) - 1);
                g.http2_initial_connection_window = h.size("initial_connection_window", 65_535, (1 << 31) - 1);
                g.http2_max_frame_size = h.size("max_frame_size", 16_384, (1 << 24) - 1);
                h.finish();
            }
            _ => f.wrong_type("http2", v, "a table: write `[gateway.http2]`"),
        }
    }
    f.finish();
    g
}

const LISTENER_FIELDS: &[&str] = &[
    "name",
    "listen",
    "host_names",
    "protocol",
    "certificate",
    "private_key",
    "error_pages",
    "http2",
    "http2_cleartext",
    "proxy_protocol",
    "tls_policy",
    "trusted_client_certificates",
    "client_certificate",
    "verify_client_cert_issuer_dn",
    "client_crl",
    "ocsp_response",
];
const TLS_POLICY_FIELDS: &[&str] = &["min_protocol", "cipher_suites"];

/// `tls_policy`: a predefined policy's name, or a custom table. `None`
/// when it is wrong (said).
fn read_tls_policy(f: &mut Fields<'_, '_>) -> Option<ringgate_tls::TlsPolicy> {
    let Some(v) = f.get("tls_policy") else { return Some(ringgate_tls::TlsPolicy::default_policy()) };
    let at = v.span().start;
    match v.get_ref() {
        DeValue::String(name) => match ringgate_tls::TlsPolicy::predefined(name) {
            Ok(p) => Some(p),
            Err(e) => {
                f.err(at, "tls_policy", e);
                None
            }
        },
        DeValue::Table(t) => {
            let label = format!("{} tls_policy", f.label);
            let mut c = Fields::new(f.d, t, label, at, TLS_POLICY_FIELDS);
            let min = c.string_at("min_protocol").map_or("TLSv1_2".to_string(), |(s, _)| s);
            let suites: Vec<String> =
                c.strings("cipher_suites").unwrap_or_default().into_iter().map(|(s, _)| s).collect();
            let policy = match ringgate_tls::TlsPolicy::custom(&min, &suites) {
                Ok(p) => Some(p),
                Err(errors) => {
                    let at = c.get("cipher_suites").or_else(|| c.get("min_protocol")).map_or(at, |v| v.span().start);
                    for e in errors {
                        c.err(at, "cipher_suites", e);
                    }
                    None
                }
            };
            c.finish();
            policy
        }
        _ => {
            f.wrong_type(
                "tls_policy",
                v,
                "a predefined policy's name (\"AppGwSslPolicy20220101\") or a table { min_protocol = \"TLSv1_2\", cipher_suites = [...] }",
            );
            None
        }
    }
}

/// Mutual TLS fields. `Some(None)`: not asked for; `None`: wrong (said).
fn read_client_auth(f: &mut Fields<'_, '_>) -> Option<Option<crate::model::ListenerClientAuth>> {
    let bundle = f.string_at("trusted_client_certificates");
    let mode = f.string_at("client_certificate");
    let issuer_dn = f.bool("verify_client_cert_issuer_dn");
    let crl = f.string_at("client_crl");
    let Some((bundle, bundle_at)) = bundle else {
        for (field, at) in [
            ("client_certificate", mode.map(|m| m.1)),
            ("client_crl", crl.map(|c| c.1)),
            (
                "verify_client_cert_issuer_dn",
                issuer_dn.and(f.get("verify_client_cert_issuer_dn")).map(|v| v.span().start),
            ),
        ] {
            if let Some(at) = at {
                f.err(
                    at,
                    field,
                    "needs trusted_client_certificates (the CA bundle client certificates must chain to)".into(),
                );
            }
        }
        return Some(None);
    };
    let required = match mode.as_ref().map(|(m, at)| (m.as_str(), *at)) {
        None | Some(("required", _)) => true,
        Some(("optional", _)) => false,
        Some((other, at)) => {
            f.err(at, "client_certificate", format!("\"{other}\" is not \"required\" or \"optional\""));
            return None;
        }
    };
    let bundle = f.d.base.join(bundle);
    let crl = crl.map(|(c, at)| (f.d.base.join(c), at));
    match ringgate_tls::ClientAuth::load(
        &bundle,
        crl.as_ref().map(|c| c.0.as_path()),
        required,
        issuer_dn.unwrap_or(false),
    ) {
        Ok(auth) => Some(Some(crate::model::ListenerClientAuth { bundle, crl: crl.map(|c| c.0), auth })),
        Err(e) => {
            let (field, at) = match &crl {
                // The error names the file it is about.
                Some((p, at)) if e.contains(&p.display().to_string()) => ("client_crl", *at),
                _ => ("trusted_client_certificates", bundle_at),
            };
            f.err(at, field, e);
            None
        }
    }
}

fn read_listener(d: &mut Diags, t: &DeTable<'_>, at: usize, n: usize) -> RawListener {
    let mut f = Fields::new(d, t, String::new(), at, LISTENER_FIELDS);
    let name = f.name("listener", n);
    let listen = f.string_at("listen").and_then(|(s, at)| match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            f.err(at, "listen", format!("\"{s}\" is not an IP:port address (e.g. \"0.0.0.0:8080\" or \"[::]:8080\")"));
            None
        }
    });
    let listen = f.required("listen", listen);
    let mut host_names = Vec::new();
    for (i, (h, at)) in f.strings("host_names").unwrap_or_default().into_iter().enumerate() {
        match parse_host_pattern(&h) {
            Ok(p) => host_names.push((p, at)),
            Err(e) => f.err(at, &format!("host_names[{i}]"), e),
        }
    }
    let protocol = if f.get("protocol").is_some() { f.protocol("protocol") } else { Some(Protocol::Http) };
    let certificate = f.string_at("certificate");
    let private_key = f.string_at("private_key");
    let tls = match protocol {
        Some(Protocol::Https) => match (certificate, private_key) {
            (Some((c, c_at)), Some((k, _))) => {
                let (certificate, private_key) = (f.d.base.join(c), f.d.base.join(k));
                let policy = read_tls_policy(&mut f);
                let client_auth = read_client_auth(&mut f);
                let ocsp = f.string_at("ocsp_response").map(|(p, at)| (f.d.base.join(p), at));
                let loaded = ringgate_tls::load_certified_key(&certificate, &private_key);
                let loaded = match (loaded, ocsp) {
                    (Ok(key), Some((path, at))) => match ringgate_tls::with_ocsp_response(&key, &path) {
                        Ok(k) => Ok(k),
                        Err(e) => {
                            f.err(at, "ocsp_response", e);
                            Ok(key)
                        }
                    },
                    (other, _) => other,
                };
                match loaded {
                    Ok(key) => policy.zip(client_auth).map(|(policy, client_auth)| crate::model::ListenerTls {
                        certificate,
                        private_key,
                        not_after: key.cert.first().and_then(|c| ringgate_tls::not_after(c)),
                        key,
                        policy,
                        client_auth,
                    }),
                    Err(e) => {
                        f.err(c_at, "certificate", e);
                        None
                    }
                }
            }
            (c, k) => {
                let at = f.get("protocol").map_or(at, |v| v.span().start);
                if c.is_none() {
                    f.err(at, "certificate", "missing: an https listener needs a certificate chain (PEM file)".into());
                }
                if k.is_none() {
                    f.err(
                        at,
                        "private_key",
                        "missing: an https listener needs the certificate's private key (PEM file)".into(),
                    );
                }
                None
            }
        },
        _ => {
            for (field, v) in [("certificate", certificate), ("private_key", private_key)] {
                if let Some((_, at)) = v {
                    f.err(at, field, "only used with protocol = \"https\"".into());
                }
            }
            for field in [
                "tls_policy",
                "trusted_client_certificates",
                "client_certificate",
                "verify_client_cert_issuer_dn",
                "client_crl",
            ] {
                if let Some(at) = f.get(field).map(|v| v.span().start) {
                    f.err(at, field, "only used with protocol = \"https\"".into());
                }
            }
            None
        }
    };
    let error_pages = routing::read_error_pages(&mut f);
    let http2 = f.bool("http2");
    if http2.is_some() && protocol == Some(Protocol::Http) {
        let at = f.get("http2").map_or(at, |v| v.span().start);
        f.err(
            at,
            "http2",
            "only used with protocol = \"https\" (ALPN); for HTTP/2 on a plain listener set http2_cleartext = true"
                .into(),
        );
    }
    let http2_cleartext = f.bool("http2_cleartext");
    if http2_cleartext.is_some() && protocol == Some(Protocol::Https) {
        let at = f.get("http2_cleartext").map_or(at, |v| v.span().start);
        f.err(at, "http2_cleartext", "only used with protocol = \"http\"; https listeners use http2".into());
    }
    let proxy_protocol = f.bool("proxy_protocol");
    let (label, at) = (f.label.clone(), f.at);
    f.finish();
    RawListener {
        at,
        label,
        name,
        listen,
        host_names,
        protocol,
        tls,
        error_pages,
        http2,
        http2_cleartext,
        proxy_protocol,
    }
}

const POOL_FIELDS: &[&str] = &["name", "addresses"];

fn read_pool(d: &mut Diags, t: &DeTable<'_>, at: usize, n: usize) -> RawPool {
    let mut f = Fields::new(d, t, String::new(), at, POOL_FIELDS);
    let name = f.name("backend_pool", n);
    let addresses_at = f.get("addresses").map(|v| v.span().start);
    let mut servers = Vec::new();
    let mut weights = Vec::new();
    for (i, (a, at)) in f.strings("addresses").unwrap_or_default().into_iter().enumerate() {
        // "10.0.0.1:8080" or "10.0.0.1:8080 weight=3", as nginx writes it.
        let mut words = a.split_whitespace();
        let addr = words.next().unwrap_or_default();
        let mut weight = 1;
        let mut ok = true;
        for w in words {
            match w.strip_prefix("weight=").map(str::parse::<u32>) {
                Some(Ok(n)) if (1..=100).contains(&n) => weight = n,
                Some(_) => {
                    f.err(at, &format!("addresses[{i}]"), format!("\"{w}\": a weight is a whole number from 1 to 100"));
                    ok = false;
                }
                None => {
                    f.err(
                        at,
                        &format!("addresses[{i}]"),
                        format!("\"{w}\" after the address: only weight=N may follow it"),
                    );
                    ok = false;
                }
            }
        }
        match parse_server_address(addr) {
            Ok(s) if ok => {
                servers.push((s, at));
                weights.push(weight);
            }
            Ok(_) => {}
            Err(e) => f.err(at, &format!("addresses[{i}]"), e),
        }
    }
    let (label, at) = (f.label.clone(), f.at);
    f.finish();
    RawPool { at, addresses_at, label, name, servers, weights }
}

const SETTINGS_FIELDS: &[&str] = &[
    "name",
    "port",
    "protocol",
    "cookie_based_affinity",
    "affinity_cookie_name",
    "request_timeout",
    "connect_timeout",
    "probe",
    "host_name",
    "trusted_root_certificates",
    "use_well_known_ca_certificate",
    "max_idle_connections",
    "max_attempts",
    "load_distribution",
    "slow_start",
    "attempt_timeout",
    "timeout_status",
    "idle_timeout",
    "override_backend_path",
    "pick_host_name_from_backend_address",
    "connection_draining",
];
const DRAINING_FIELDS: &[&str] = &["enabled", "timeout"];

fn read_settings(d: &mut Diags, t: &DeTable<'_>, at: usize, n: usize) -> RawSettings {
    let mut f = Fields::new(d, t, String::new(), at, SETTINGS_FIELDS);
    let name = f.name("backend_http_settings", n);
    let port = f.int("port", 1, 65535).map(|p| p as u16);
    let protocol = f.protocol("protocol");
    let trusted_roots = f.string_at("trusted_root_certificates").and_then(|(p, at)| {
        if protocol != Some(Protocol::Https) {
            f.err(at, "trusted_root_certificates", "only used with protocol = \"https\"".into());
            return None;
        }
        let path = f.d.base.join(p);
        match ringgate_tls::load_roots(&path) {
            Ok(store) => Some(crate::model::TrustedRoots { path, store }),
            Err(e) => {
                f.err(at, "trusted_root_certificates", e);
                None
            }
        }
    });
    // Application Gateway v2's switch: the well-known CAs are trusted unless
    // trusted_root_certificates is given (then those alone), or both when
    // it is set to true beside them.
    let well_known = f.bool("use_well_known_ca_certificate");
    let well_known_at = f.get("use_well_known_ca_certificate").map(|v| v.span().start);
    let trusted_roots = match (trusted_roots, well_known, well_known_at) {
        (Some(r), Some(true), _) => {
            Some(crate::model::TrustedRoots { store: ringgate_tls::with_well_known_roots(&r.store), ..r })
        }
        (None, Some(false), Some(at)) => {
            f.err(
                at,
                "use_well_known_ca_certificate",
                "false needs trusted_root_certificates: the backend's certificate must chain to some root".into(),
            );
            None
        }
        (r, _, Some(at)) if protocol != Some(Protocol::Https) => {
            f.err(at, "use_well_known_ca_certificate", "only used with protocol = \"https\"".into());
            r
        }
        (r, _, _) => r,
    };
    let cookie_based_affinity = f.bool("cookie_based_affinity");
    let affinity_cookie_name = f.string_at("affinity_cookie_name").and_then(|(s, at)| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            f.err(
                at,
                "affinity_cookie_name",
                format!("\"{s}\" is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)"),
            );
            None
        } else {
            Some(s)
        }
    });
    let request_timeout = f.duration("request_timeout", TIME_MIN, TIME_MAX);
    let connect_timeout = f.duration("connect_timeout", TIME_MIN, TIME_MAX);
    let probe = f.string_at("probe");
    let host_name = f.string_at("host_name").and_then(|(s, at)| match parse_host(&s) {
        Ok(h) => Some(h),
        Err(e) => {
            f.err(at, "host_name", e);
            None
        }
    });
    let max_idle_connections = f.int("max_idle_connections", 0, 100_000).map(|n| n as u64);
    let max_attempts = f.int("max_attempts", 1, 10).map(|n| n as u64);
    let load_distribution = f.string_at("load_distribution").and_then(|(s, at)| match s.as_str() {
        "round_robin" => Some(crate::model::LoadDistribution::RoundRobin),
        "least_connections" => Some(crate::model::LoadDistribution::LeastConnections),
        "random_two" => Some(crate::model::LoadDistribution::RandomTwo),
        _ => {
            f.err(
                at,
                "load_distribution",
                format!("\"{s}\" is not \"round_robin\", \"least_connections\" or \"random_two\""),
            );
            None
        }
    });
    // 0 (the default) is off; an hour is already far past any warm-up.
    let slow_start = f.duration("slow_start", Duration::ZERO, Duration::from_secs(3600));
    let attempt_timeout = f
        .get("attempt_timeout")
        .map(|v| v.span().start)
        .and_then(|at| f.duration("attempt_timeout", TIME_MIN, TIME_MAX).map(|d| (d, at)));
    let timeout_status = f.int("timeout_status", 100, 599).and_then(|n| match n {
        502 | 504 => Some(n as u16),
        _ => {
            let at = f.get("timeout_status").map_or(at, |v| v.span().start);
            f.err(at, "timeout_status", format!("{n} is not 502 (the reference's) or 504 (Gateway Timeout)"));
            None
        }
    });
    let idle_timeout = f.duration("idle_timeout", TIME_MIN, TIME_MAX);
    let override_backend_path = f.string_at("override_backend_path").and_then(|(p, at)| {
        if !p.starts_with('/') {
            f.err(at, "override_backend_path", format!("must start with '/' (got \"{p}\")"));
            None
        } else if p.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#') {
            f.err(
                at,
                "override_backend_path",
                format!("\"{}\" contains a space, a control character, '?' or '#'", p.escape_debug()),
            );
            None
        } else {
            Some(p)
        }
    });
    let pick_host_from_address = f
        .get("pick_host_name_from_backend_address")
        .map(|v| v.span().start)
        .and_then(|at| f.bool("pick_host_name_from_backend_address").map(|b| (b, at)));
    let mut connection_draining = None;
    if let Some(v) = f.get("connection_draining") {
        match v.get_ref() {
            DeValue::Table(dt) => {
                let label = format!("{} connection_draining", f.label);
                let mut c = Fields::new(f.d, dt, label, v.span().start, DRAINING_FIELDS);
                let enabled = c.bool("enabled");
                let timeout = c.duration("timeout", Duration::from_secs(1), Duration::from_secs(3600));
                if enabled == Some(true) && c.get("timeout").is_none() {
                    let at = c.at;
                    c.err(
                        at,
                        "timeout",
                        "missing: how long a removed server keeps its connections (1 to 3600 s)".into(),
                    );
                }
                connection_draining = match (enabled, timeout) {
                    (Some(true), Some(t)) => Some(Some(t)),
                    (Some(false), _) => Some(None),
                    _ => None,
                };
                if enabled.is_none() && c.get("enabled").is_none() {
                    let at = c.at;
                    c.err(at, "enabled", "missing (required): true or false".into());
                }
                c.finish();
            }
            _ => f.wrong_type(
                "connection_draining",
                v,
                "a table: connection_draining = { enabled = true, timeout = 60 }",
            ),
        }
    }
    let (label, at) = (f.label.clone(), f.at);
    f.finish();
    RawSettings {
        override_backend_path,
        pick_host_from_address,
        connection_draining,
        at,
        label,
        name,
        port,
        protocol,
        cookie_based_affinity,
        affinity_cookie_name,
        request_timeout,
        connect_timeout,
        probe,
        host_name,
        trusted_roots,
        max_idle_connections,
        max_attempts,
        load_distribution,
        slow_start,
        attempt_timeout,
        timeout_status,
        idle_timeout,
    }
}

const PROBE_FIELDS: &[&str] = &[
    "name",
    "protocol",
    "host",
    "pick_host_name_from_backend_http_settings",
    "path",
    "interval",
    "timeout",
    "unhealthy_threshold",
    "healthy_threshold",
    "match",
    "port",
    "min_servers",
];
const MATCH_FIELDS: &[&str] = &["status_codes", "body"];

fn read_probe(d: &mut Diags, t: &DeTable<'_>, at: usize, n: usize) -> RawProbe {
    let mut f = Fields::new(d, t, String::new(), at, PROBE_FIELDS);
    let name = f.name("probe", n);
    let protocol = f.protocol("protocol");
    let host = f.string_at("host").and_then(|(s, at)| match parse_host(&s) {
        Ok(h) => Some(h),
        Err(e) => {
            f.err(at, "host", e);
            None
        }
    });
    let pick_host = f.bool("pick_host_name_from_backend_http_settings");
    let path = f.string_at("path").and_then(|(s, at)| {
        if !s.starts_with('/') {
            f.err(
                at,
                "path",
                format!("must start with '/' (got \"{s}\"); the probe is sent to <protocol>://<host>:<port><path>"),
            );
            None
        } else if s.bytes().any(|b| b <= b' ' || b == 0x7f) {
            f.err(at, "path", format!("\"{}\" contains spaces or control characters", s.escape_debug()));
            None
        } else {
            Some(s)
        }
    });
    let interval_at = f.get("interval").map_or(at, |v| v.span().start);
    let interval = f.probe_duration("interval");
    let timeout_at = f.get("timeout").map_or(at, |v| v.span().start);
    let timeout = f.probe_duration("timeout");
    let unhealthy_threshold = f.int("unhealthy_threshold", 1, 20).map(|n| n as u32);
    let healthy_threshold = f.int("healthy_threshold", 1, 20).map(|n| n as u32);
    let port = f.int("port", 1, 65535).map(|n| n as u16);
    let min_servers_at = f.get("min_servers").map_or(at, |v| v.span().start);
    let min_servers = f.int("min_servers", 0, MAX_MIN_SERVERS).map(|n| n as u32);
    let mut status_codes = None;
    let mut body = None;
    if let Some(v) = f.get("match") {
        match v.get_ref() {
            DeValue::Table(mt) => {
                let label = format!("{} match", f.label);
                let mut m = Fields::new(f.d, mt, label, v.span().start, MATCH_FIELDS);
                if let Some(codes) = m.strings("status_codes") {
                    let mut ranges = Vec::new();
                    for (i, (c, at)) in codes.into_iter().enumerate() {
                        match validate::parse_status_range(&c) {
                            Ok(r) => ranges.push(r),
                            Err(e) => m.err(at, &format!("status_codes[{i}]"), e),
                        }
                    }
                    if ranges.is_empty() {
                        let at = m.get("status_codes").map_or(at, |v| v.span().start);
                        m.err(at, "status_codes", "must list at least one code or range, e.g. [\"200-399\"]".into());
                    } else {
                        status_codes = Some(ranges);
                    }
                }
                body = m.string_at("body").and_then(|(b, at)| {
                    let chars = b.chars().count();
                    if chars > MAX_MATCH_BODY_CHARS {
                        m.err(
                            at,
                            "body",
                            format!(
                                "{chars} characters is too long (at most {MAX_MATCH_BODY_CHARS}, as Application Gateway v2)"
                            ),
                        );
                        None
                    } else {
                        Some(b)
                    }
                });
                m.finish();
            }
            _ => f.wrong_type("match", v, "a table: write `match = { status_codes = [\"200-399\"] }`"),
        }
    }
    let (label, at) = (f.label.clone(), f.at);
    f.finish();
    RawProbe {
        at,
        label,
        name,
        protocol,
        host,
        pick_host,
        path,
        interval,
        interval_at,
        timeout,
        timeout_at,
        unhealthy_threshold,
        healthy_threshold,
        status_codes,
        body,
        port,
        min_servers,
        min_servers_at,
    }
}

const RULE_FIELDS: &[&str] = &[
    "name",
    "listener",
    "priority",
    "rule_type",
    "backend_pool",
    "backend_http_settings",
    "redirect",
    "url_path_map",
    "rewrite_rule_set",
];

fn read_rule(d: &mut Diags, t: &DeTable<'_>, at: usize, n: usize) -> RawRule {
    let mut f = Fields::new(d, t, String::new(), at, RULE_FIELDS);
    let name = f.name("rule", n);
    let listener = f.string_at("listener");
    let listener = f.required("listener", listener);
    let priority_at = f.get("priority").map(|v| v.span().start);
    let priority = f.int("priority", 1, 20_000).zip(priority_at).map(|(p, at)| (p as u32, at));
    let rule_type = f.string_at("rule_type");
    let pool = f.string_at("backend_pool");
    let settings = f.string_at("backend_http_settings");
    let redirect = f.string_at("redirect");
    let url_path_map = f.string_at("url_path_map");
    let rewrite_set = f.string_at("rewrite_rule_set");
    let (label, at) = (f.label.clone(), f.at);
    f.finish();
    RawRule { at, label, name, listener, pool, settings, priority, rule_type, url_path_map, redirect, rewrite_set }
}

/// The known word closest to a misspelt one, if close enough to be a typo.
pub(crate) fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(dist, k)| *dist <= 2.max(k.len() / 4))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests;
