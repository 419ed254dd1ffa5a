//! The `ringgate` command: serve (`run`), validate a configuration (`check`),
//! say where a request would go (`route`), diagnose 502s (`doctor`), show
//! backend health (`health`), and try the gateway on an embedded
//! configuration (`demo`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod admin_client;
mod check;
mod demo;
mod doctor;
mod health_cmd;
mod health_view;
mod metrics_text;
mod recent;
mod route_cmd;
mod routing_table;
mod serve;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "ringgate",
    version,
    about = "An HTTP application gateway: listeners, rules, backend pools, health probes, and a reason for every 502."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve traffic as the configuration says, until SIGTERM or SIGINT (SIGHUP reloads).
    Run {
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration and print it with every default filled in.
    Check {
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Print only errors (and nothing when the configuration is valid).
        #[arg(short, long)]
        quiet: bool,
    },
    /// Say where a request would go, without starting the gateway: the
    /// listener and why, the rule, the path rule, then the redirect's
    /// Location or the pool, servers, path and Host the server would get and
    /// what the rewrite rule set would do. Exits 0 when the request would be
    /// forwarded or redirected, 1 when nothing would answer it (no listener,
    /// 404, 502), 2 on a configuration error or a bad URL.
    #[command(
        after_help = "Examples:\n  ringgate route --config gw.toml http://shop.example:8080/images/logo.png\n  ringgate route --config gw.toml --listener public --host shop.example /api/users?id=7"
    )]
    Route {
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The Host header (default: the URL's host and port; none for a bare path).
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// Send the request to this listener's address (default: the URL's port).
        #[arg(long, value_name = "NAME", conflicts_with = "port")]
        listener: Option<String>,
        /// Send the request to the address listening on this port.
        #[arg(long, value_name = "N")]
        port: Option<u16>,
        /// The request method, as rewrite conditions see it.
        #[arg(short = 'X', long, value_name = "METHOD", default_value = "GET")]
        method: String,
        /// A request header, "Name: value", for rewrite conditions and values (repeatable).
        #[arg(short = 'H', long = "header", value_name = "HEADER")]
        headers: Vec<String>,
        /// The client address rewrite rules see as client_ip and client_port.
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:50000")]
        client: SocketAddr,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
        /// http://host[:port]/path?query, or just /path?query.
        #[arg(value_name = "URL")]
        url: String,
    },
    /// Start two demo backends and the gateway on loopback, and show what to try.
    Demo,
    /// Walk the reference's list of 502 causes against the configuration, the
    /// network and the running gateway; say which applies and what to do.
    /// Exits 0 when nothing would cause a 502, 1 when something would, 2 when
    /// the check could not run.
    Doctor {
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The running gateway's admin API (default: the configuration's admin_listen).
        #[arg(long, value_name = "ADDR")]
        admin: Option<String>,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the running gateway's backend health, unhealthy servers first.
    Health {
        /// The gateway's admin API address.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
        admin: String,
        /// Print the JSON of GET /backend-health instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// The gateway's log on stderr. The filter comes from `RINGGATE_LOG`, else
/// `RUST_LOG`, else `info`; one that does not parse is refused with its
/// error rather than silently replaced.
pub(crate) fn init_logging(format: ringgate_config::LogFormat) -> Result<(), String> {
    let (var, value) = match (std::env::var("RINGGATE_LOG"), std::env::var("RUST_LOG")) {
        (Ok(v), _) => ("RINGGATE_LOG", v),
        (Err(_), Ok(v)) => ("RUST_LOG", v),
        _ => ("", "info".to_string()),
    };
    let filter = tracing_subscriber::EnvFilter::builder().parse(&value).map_err(|e| {
        format!("{var}=\"{value}\" is not a valid log filter ({e}); e.g. \"info\" or \"info,ringgate_proxy=debug\"")
    })?;
    // Colours only for a person at a terminal, never into log files.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr);
    match format {
        ringgate_config::LogFormat::Text => builder.with_ansi(ansi).init(),
        ringgate_config::LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// The one-shot commands stop quietly when their reader goes away
/// (`ringgate check ... | head -1`), as `cat` does, instead of panicking in
/// `println!` on EPIPE: Rust ignores SIGPIPE, this restores its default.
/// (`run` keeps ignoring it: a gateway must outlive any one peer.)
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: called first thing in `main`, before any thread starts;
    // setting a signal's disposition to SIG_DFL installs no handler and
    // touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. } | Command::Demo) {
        default_sigpipe();
    }
    match cli.command {
        // `run` starts its log once the file says which format.
        Command::Run { config } => serve::run_file(&config),
        Command::Check { config, quiet } => check::run(&config, quiet),
        Command::Route { config, host, listener, port, method, headers, client, json, url } => {
            route_cmd::run(&route_cmd::Args { config, host, listener, port, method, headers, client, json, url })
        }
        Command::Demo => {
            if let Err(e) = init_logging(ringgate_config::LogFormat::Text) {
                eprintln!("ringgate: {e}");
                return ExitCode::from(2);
            }
            demo::run()
        }
        Command::Health { admin, json } => health_cmd::run(&admin, json),
        Command::Doctor { config, admin, json } => doctor::run(&config, admin, json),
    }
}
