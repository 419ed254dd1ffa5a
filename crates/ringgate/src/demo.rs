//! `ringgate demo`: the gateway's main job on an embedded configuration. Two
//! demo backends answer on loopback; one listener balances across them, a
//! second routes to an empty pool to show a fast 502 and its reason.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use ringgate_testbackend::Backend;

/// The embedded configuration; `{A}`, `{B}`, `{WEB}`, `{BROKEN}` and
/// `{ADMIN}` are filled in with addresses at start.
const DEMO_CONFIG: &str = r#"
[gateway]
workers = 1
admin_listen = "{ADMIN}"
access_log = "stdout"

[[listener]]
name = "web"
listen = "{WEB}"

[[listener]]
name = "broken"
listen = "{BROKEN}"

[[backend_pool]]
name = "demo-pool"
addresses = ["{A}", "{B}"]

[[backend_pool]]
name = "empty-pool"
addresses = []

[[backend_http_settings]]
name = "demo-settings"
port = 80
request_timeout = 5
probe = "demo-probe"

[[backend_http_settings]]
name = "empty-settings"

[[probe]]
name = "demo-probe"
path = "/health"
interval = 2
timeout = 1
unhealthy_threshold = 2

[[rule]]
name = "balanced"
listener = "web"
backend_pool = "demo-pool"
backend_http_settings = "demo-settings"

[[rule]]
name = "shows-a-502"
listener = "broken"
backend_pool = "empty-pool"
backend_http_settings = "empty-settings"
"#;

/// `preferred` if free on loopback, else a free port the system picks.
fn free_addr(preferred: u16) -> SocketAddr {
    let want = SocketAddr::from(([127, 0, 0, 1], preferred));
    match TcpListener::bind(want) {
        Ok(l) => l.local_addr().unwrap_or(want),
        Err(_) => TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap_or(want),
    }
}

pub fn run() -> ExitCode {
    let a = Backend::builder().name("demo-a").body("hello from demo backend A\n").start();
    let b = Backend::builder().name("demo-b").body("hello from demo backend B\n").start();
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("ringgate demo: cannot start the demo backends: {e}");
            return ExitCode::from(1);
        }
    };
    let (web, broken, admin) = (free_addr(8080), free_addr(8081), free_addr(9901));
    let text = DEMO_CONFIG
        .replace("{A}", &a.addr().to_string())
        .replace("{B}", &b.addr().to_string())
        .replace("{WEB}", &web.to_string())
        .replace("{BROKEN}", &broken.to_string())
        .replace("{ADMIN}", &admin.to_string());
    let cfg = match ringgate_config::load_str(&text, Path::new("<embedded demo configuration>")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringgate demo: the embedded configuration is invalid (a bug):\n{e}");
            return ExitCode::from(2);
        }
    };
    let code = crate::serve::serve(Arc::new(cfg), |shared| {
        let addr_of = |name: &str| {
            shared.listeners().into_iter().find(|l| l.name == name).map_or(String::from("?"), |l| l.bound.to_string())
        };
        let (web, broken) = (addr_of("web"), addr_of("broken"));
        println!();
        println!("ringgate demo is running. Two demo backends: {} (A) and {} (B).", a.addr(), b.addr());
        println!();
        println!("  Balanced across A and B (run it twice):");
        println!("    curl -i http://{web}/");
        println!("  A request with a body, echoed by the backend:");
        println!("    curl -i http://{web}/echo -d 'hello'");
        println!("  A 502 answered at once, with its cause in x-ringgate-error (POOL_EMPTY):");
        println!("    curl -i http://{broken}/");
        println!("  Backend health, metrics:");
        println!("    curl http://{admin}/backend-health");
        println!("    curl http://{admin}/metrics");
        println!();
        println!("Access log lines follow (JSON). Press Ctrl-C to stop.");
        println!();
    });
    drop((a, b));
    code
}
