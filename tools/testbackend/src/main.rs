//! `ringgate-testbackend`: one test backend from the command line, for
//! `ringgate demo`, benchmarks and manual poking. Prints `listening on ADDR`
//! once started, then serves until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use clap::Parser;
use ringgate_testbackend::{Backend, Mode, ParseModeError};

/// A deliberately misbehaving HTTP/1.1 backend.
#[derive(Debug, Parser)]
#[command(name = "ringgate-testbackend", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Sent as `x-backend` and as the default body.
    #[arg(long, default_value = "backend")]
    name: String,
    /// ok, slow, stall, reset, close-immediately, half-response, garbage,
    /// malformed-status, malformed-headers, body-longer, body-shorter, status
    /// (also slow:<ms> and status:<code>).
    #[arg(long, default_value = "ok")]
    mode: String,
    /// Delay for `--mode slow` (default 1000); with the default mode, turns it into slow.
    #[arg(long)]
    slow_ms: Option<u64>,
    /// Status for `--mode status` (default 503).
    #[arg(long)]
    status: Option<u16>,
    /// Answer with N bytes of `abc..z` instead of the name.
    #[arg(long)]
    body_bytes: Option<usize>,
    /// Status the health path answers with.
    #[arg(long, default_value_t = 200)]
    health_status: u16,
    /// Body the health path answers with.
    #[arg(long, default_value = "healthy")]
    health_body: String,
    /// The health path.
    #[arg(long, default_value = "/health")]
    health_path: String,
}

/// The mode the flags ask for: `slow` and `status` take their number from
/// `--slow-ms` and `--status`, and `--slow-ms` alone slows the default mode.
fn resolve_mode(mode: &str, slow_ms: Option<u64>, status: Option<u16>) -> Result<Mode, ParseModeError> {
    match mode {
        "slow" => Ok(Mode::Slow(Duration::from_millis(slow_ms.unwrap_or(1000)))),
        "status" => format!("status:{}", status.unwrap_or(503)).parse(),
        "ok" if slow_ms.is_some() => Ok(Mode::Slow(Duration::from_millis(slow_ms.unwrap_or_default()))),
        other => other.parse(),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mode = match resolve_mode(&args.mode, args.slow_ms, args.status) {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("ringgate-testbackend: {e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = Backend::builder()
        .name(args.name)
        .bind(args.listen)
        .mode(mode)
        .health(args.health_status, args.health_body)
        .health_path(args.health_path);
    if let Some(n) = args.body_bytes {
        builder = builder.body_bytes(n);
    }
    let backend = match builder.start() {
        Ok(backend) => backend,
        Err(e) => {
            eprintln!("ringgate-testbackend: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    // Whoever started us waits for this line to learn the port.
    if writeln!(stdout, "listening on {}", backend.addr()).and_then(|()| stdout.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    // Serve until a signal's default action ends the process.
    loop {
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_flags_combine() {
        assert_eq!(resolve_mode("ok", None, None), Ok(Mode::Ok));
        assert_eq!(resolve_mode("ok", Some(50), None), Ok(Mode::Slow(Duration::from_millis(50))));
        assert_eq!(resolve_mode("slow", Some(50), None), Ok(Mode::Slow(Duration::from_millis(50))));
        assert_eq!(resolve_mode("slow", None, None), Ok(Mode::Slow(Duration::from_secs(1))));
        assert_eq!(resolve_mode("slow:7", None, None), Ok(Mode::Slow(Duration::from_millis(7))));
        assert_eq!(resolve_mode("status", None, Some(404)), Ok(Mode::Status(404)));
        assert_eq!(resolve_mode("status", None, None), Ok(Mode::Status(503)));
        assert_eq!(resolve_mode("half-response", None, None), Ok(Mode::HalfResponse));
        assert!(resolve_mode("status", None, Some(42)).is_err());
        assert!(resolve_mode("nope", None, None).is_err());
    }
}
