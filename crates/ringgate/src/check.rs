//! `ringgate check`: validate a configuration, list every error at once, or
//! print the effective configuration with each pool's provisioning state.

use std::path::Path;
use std::process::ExitCode;

use ringgate_config::{ServerHost, load_file};

pub fn run(path: &Path) -> ExitCode {
    match load_file(path) {
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Ok(cfg) => {
            println!(
                "{}: configuration is valid ({} listener{}, {} rule{})",
                path.display(),
                cfg.listeners.len(),
                if cfg.listeners.len() == 1 { "" } else { "s" },
                cfg.rules.len(),
                if cfg.rules.len() == 1 { "" } else { "s" }
            );
            print!("{}", cfg.describe());
            // Names are resolved now, as the gateway will at start, so a
            // name that does not resolve shows before it becomes a 502.
            for p in &cfg.pools {
                for s in &p.servers {
                    if let ServerHost::Name(_) = s.host {
                        match ringgate_health::resolve(&s.host, s.port.unwrap_or(80)) {
                            Ok(a) => {
                                let ips: Vec<String> = a.iter().map(|x| x.ip().to_string()).collect();
                                println!("  resolve {} (pool {}): {}", s, p.name, ips.join(", "));
                            }
                            Err(e) => println!(
                                "  resolve {} (pool {}): FAILED: {e}; that server will be unhealthy",
                                s, p.name
                            ),
                        }
                    }
                }
            }
            if !cfg.warnings.is_empty() {
                println!("warnings:");
                for w in &cfg.warnings {
                    println!("  warning: {w}");
                }
            }
            ExitCode::SUCCESS
        }
    }
}
