//! The `ringgate` command: serve (`run`), validate a configuration (`check`),
//! and try the gateway on an embedded configuration (`demo`).

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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RINGGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into log files.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => {
            init_logging();
            serve::run_file(&config)
        }
        Command::Check { config } => check::run(&config),
        Command::Demo => {
            init_logging();
            demo::run()
        }
        Command::Health { admin, json } => health_cmd::run(&admin, json),
        Command::Doctor { config, admin, json } => doctor::run(&config, admin, json),
    }
}
