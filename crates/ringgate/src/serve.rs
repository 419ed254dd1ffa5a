//! `ringgate run`: start the data plane and the admin API, then act on
//! signals and admin requests: SIGHUP or `POST /reload` reloads the file,
//! SIGUSR1 reopens the access log file (logrotate), SIGTERM, SIGQUIT or
//! SIGINT drains and exits.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use ringgate_config::{Config, load_file};
use ringgate_health::{HealthTable, Prober, targets};
use ringgate_proxy::{Gateway, MetricsRegistry, Shared};
use tracing::{error, info, warn};

/// Requests to the control loop.
#[derive(Debug)]
pub enum Control {
    /// Reload the configuration file; the reply says what happened.
    Reload { reply: Option<Sender<Result<String, String>>> },
    /// Drain and exit; the reason is logged.
    Shutdown(&'static str),
    /// Open the access log file again (SIGUSR1, after logrotate).
    ReopenLog,
}

/// Loads `path` and serves it.
pub fn run_file(path: &Path) -> ExitCode {
    let cfg = match load_file(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = crate::init_logging(cfg.gateway.log_format) {
        eprintln!("ringgate: {e}");
        return ExitCode::from(2);
    }
    serve(Arc::new(cfg), |_| {})
}

/// Serves `cfg` until told to stop; `on_ready` runs once everything listens.
pub fn serve(cfg: Arc<Config>, on_ready: impl FnOnce(&Shared)) -> ExitCode {
    ringgate_proxy::set_memory_release(release_memory);
    for w in &cfg.warnings {
        warn!("{w}");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cfg.gateway.effective_workers(cores);
    let health = Arc::new(HealthTable::new());
    // Before any worker reads the table: unprobed_servers and the
    // min_servers groups are in place for the very first request.
    let probe_targets = targets(&cfg, &health);
    let metrics = Arc::new(MetricsRegistry::new(workers));
    let gateway = match Gateway::start(cfg.clone(), health, metrics) {
        Ok(g) => g,
        Err(e) => {
            error!("cannot start: {e}");
            eprintln!("ringgate: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let shared = gateway.shared();
    log_startup(&shared, workers);
    let prober = match Prober::start(probe_targets, cfg.gateway.prober_cpu, cfg.gateway.dns_refresh) {
        Ok(p) => p,
        Err(e) => {
            error!("cannot start the prober: {e}");
            eprintln!("ringgate: cannot start the prober: {e}");
            gateway.shutdown(Duration::ZERO);
            return ExitCode::from(1);
        }
    };

    let (tx, rx) = crossbeam_channel::unbounded::<Control>();
    if let Some(addr) = cfg.gateway.admin_listen {
        let started = crate::recent::start(shared.clone(), cfg.gateway.recent_window)
            .and_then(|recent| crate::admin::start(addr, shared.clone(), recent, tx.clone()));
        match started {
            Ok(bound) => info!(
                "admin API listening on http://{bound} (GET /healthz, /backend-health, /metrics, /recent; POST /reload)"
            ),
            Err(e) => {
                error!("cannot start the admin API on {addr}: {e}");
                eprintln!("ringgate: cannot start the admin API on {addr}: {e}");
                gateway.shutdown(Duration::ZERO);
                prober.stop();
                return ExitCode::from(1);
            }
        }
    }
    if let Err(e) = forward_signals(tx.clone()) {
        warn!("signals will not be handled: {e}");
    }
    if cfg.gateway.watch_config {
        match watch_file(cfg.source.clone(), cfg.gateway.watch_interval, tx.clone()) {
            Ok(()) => info!(
                "watching {} for changes every {}ms (watch_config)",
                cfg.source.display(),
                cfg.gateway.watch_interval.as_millis()
            ),
            Err(e) => warn!("cannot watch {}: {e}", cfg.source.display()),
        }
    }
    on_ready(&shared);
    control_loop(gateway, prober, rx, cfg)
}

fn log_startup(shared: &Shared, workers: usize) {
    let plan = shared.plan();
    info!("ringgate {} started: {workers} worker{}", env!("CARGO_PKG_VERSION"), if workers == 1 { "" } else { "s" });
    for l in shared.listeners() {
        let kind = plan
            .config
            .listeners
            .iter()
            .find(|x| x.name == l.name)
            .map(|x| {
                if x.is_basic() {
                    "basic".to_string()
                } else {
                    format!("hosts {}", x.host_names.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(","))
                }
            })
            .unwrap_or_default();
        info!("listener \"{}\" listening on {}://{} ({kind}) -> rule \"{}\"", l.name, l.protocol, l.bound, l.rule);
    }
    for r in &plan.targets {
        let s = plan.config.settings.iter().find(|s| *s.name == *r.settings);
        let probe = match s.and_then(|s| s.probe) {
            Some(p) => format!("probe \"{}\"", plan.config.probes[p.0].name),
            None => "default probe".to_string(),
        };
        info!(
            "rule \"{}\": listener \"{}\" -> backend pool \"{}\" ({} server{}) with settings \"{}\" (request_timeout {}ms, {probe})",
            r.name,
            r.listener,
            r.pool,
            r.servers.len(),
            if r.servers.len() == 1 { "" } else { "s" },
            r.settings,
            r.request_timeout.as_millis(),
        );
        if r.servers.is_empty() {
            warn!(
                "rule \"{}\": backend pool \"{}\" is empty: its requests are answered 502 POOL_EMPTY",
                r.name, r.pool
            );
        }
    }
}

fn forward_signals(tx: Sender<Control>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1])?;
    std::thread::Builder::new().name("ringgate-signals".into()).spawn(move || {
        for sig in signals.forever() {
            let msg = match sig {
                SIGHUP => Control::Reload { reply: None },
                SIGUSR1 => Control::ReopenLog,
                SIGINT => Control::Shutdown("SIGINT"),
                // As nginx: SIGQUIT is the graceful stop.
                SIGQUIT => Control::Shutdown("SIGQUIT"),
                _ => Control::Shutdown("SIGTERM"),
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}

/// Polls the configuration file and asks for a reload when its content
/// changes. Polling the content (through symlinks) rather than watching inodes
/// is what follows a Kubernetes ConfigMap update, which swaps a symlink.
fn watch_file(path: std::path::PathBuf, every: Duration, tx: Sender<Control>) -> std::io::Result<()> {
    let digest = |p: &Path| -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let bytes = std::fs::read(p).ok()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        Some(h.finish())
    };
    let mut last = digest(&path);
    std::thread::Builder::new().name("ringgate-watch".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            let now = digest(&path);
            if now.is_some() && now != last {
                info!("{} changed: reloading", path.display());
                last = now;
                if tx.send(Control::Reload { reply: None }).is_err() {
                    return;
                }
            }
        }
    })?;
    Ok(())
}

fn control_loop(mut gateway: Gateway, prober: Prober, rx: Receiver<Control>, mut cfg: Arc<Config>) -> ExitCode {
    while let Ok(msg) = rx.recv() {
        match msg {
            Control::Reload { reply } => {
                let result = reload(&mut gateway, &prober, &mut cfg);
                gateway.shared().count_reload(result.is_ok());
                match &result {
                    Ok(s) => info!("{s}"),
                    // One line, whatever the number of errors, so that log
                    // pipelines see one event per rejected reload.
                    Err(e) => error!(
                        "reload rejected, the previous configuration keeps serving: {}",
                        e.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
                    ),
                }
                if let Some(r) = reply {
                    let _ = r.send(result);
                }
            }
            Control::ReopenLog => gateway.shared().reopen_access_log(),
            Control::Shutdown(why) => {
                let delay = cfg.gateway.shutdown_delay;
                if !delay.is_zero() {
                    info!(
                        "{why}: /healthz now fails; serving for {}ms more (shutdown_delay) before draining",
                        delay.as_millis()
                    );
                    gateway.shared().announce_shutdown();
                    std::thread::sleep(delay);
                }
                let drain = cfg.gateway.drain_timeout;
                info!("{why}: draining (up to {}s), then exiting", drain.as_secs());
                let clean = gateway.shutdown(drain);
                prober.stop();
                if clean {
                    info!("stopped");
                } else {
                    warn!("stopped with requests still in flight after the drain time-out");
                }
                return ExitCode::SUCCESS;
            }
        }
    }
    prober.stop();
    ExitCode::SUCCESS
}

fn reload(gateway: &mut Gateway, prober: &Prober, cfg: &mut Arc<Config>) -> Result<String, String> {
    let new = load_file(&cfg.source).map_err(|e| e.to_string())?;
    if new.gateway.workers != cfg.gateway.workers {
        warn!("[gateway] workers changed: takes effect at the next restart");
    }
    if new.gateway.admin_listen != cfg.gateway.admin_listen {
        warn!("[gateway] admin_listen changed: takes effect at the next restart");
    }
    if new.gateway.recent_window != cfg.gateway.recent_window {
        warn!("[gateway] recent_window changed: takes effect at the next restart");
    }
    for w in &new.warnings {
        warn!("{w}");
    }
    let new = Arc::new(new);
    gateway.reload(new.clone(), Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let shared = gateway.shared();
    prober.update(targets(&new, &shared.health));
    *cfg = new;
    let plan = shared.plan();
    for l in shared.listeners() {
        info!("listener \"{}\" listening on {}://{} -> rule \"{}\"", l.name, l.protocol, l.bound, l.rule);
    }
    Ok(format!(
        "configuration reloaded from {} (generation {}: {} listeners, {} rules)",
        cfg.source.display(),
        plan.generation,
        plan.config.listeners.len(),
        plan.config.rules.len()
    ))
}

/// mimalloc's collect, forced: the calling worker's freed pages go back to
/// the operating system now rather than on its next allocations.
fn release_memory() {
    // SAFETY: mi_collect takes no pointers; it only walks the calling
    // thread's own heap.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(true)
    };
}
