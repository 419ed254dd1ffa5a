//! The admin API, on its own thread and loopback by default: liveness,
//! backend health, Prometheus metrics, recent time-outs, listeners and
//! reload. It is never on the request path, so it uses plain blocking
//! sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use ringgate_http::{Method, ParseLimits, Parsed, RequestHead, parse_request};
use ringgate_proxy::Shared;
use serde::Serialize;
use tracing::warn;

use crate::recent::Recent;
use crate::serve::Control;

/// Admin connections served at once; more are closed.
const MAX_CONCURRENT: usize = 16;

/// Binds `addr` and serves the admin API on a thread; returns the bound address.
pub fn start(
    addr: SocketAddr,
    shared: Arc<Shared>,
    recent: Arc<Recent>,
    control: Sender<Control>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("ringgate-admin".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if active.load(Ordering::Acquire) >= MAX_CONCURRENT {
                continue;
            }
            active.fetch_add(1, Ordering::AcqRel);
            let (shared, recent, control, active) = (shared.clone(), recent.clone(), control.clone(), active.clone());
            let spawned = std::thread::Builder::new().name("ringgate-admin-conn".into()).spawn(move || {
                handle(stream, &shared, &recent, &control);
                active.fetch_sub(1, Ordering::AcqRel);
            });
            if let Err(e) = spawned {
                warn!("admin API: cannot start a connection thread: {e}");
            }
        }
    })?;
    Ok(bound)
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", body: body.into().into_bytes() }
    }

    fn json(status: u16, v: &impl Serialize) -> Reply {
        let mut body = serde_json::to_vec_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
        body.push(b'\n');
        Reply { status, content_type: "application/json", body }
    }
}

fn handle(mut stream: TcpStream, shared: &Shared, recent: &Recent, control: &Sender<Control>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = vec![0u8; 16 * 1024];
    let mut len = 0;
    let mut request = RequestHead::default();
    let limits = ParseLimits::default();
    let reply = loop {
        match stream.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => len += n,
        }
        match parse_request(&buf[..len], &limits, &mut request) {
            Ok(Parsed::Complete(_)) => break route(&request, &buf[..len], shared, recent, control),
            Ok(Parsed::Partial) if len < buf.len() => continue,
            Ok(Parsed::Partial) => break Reply::text(431, "request head too large\n"),
            Err(e) => break Reply::text(e.status(), format!("{}\n", e.reason())),
        }
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        reply.status,
        ringgate_http::reason_phrase(reply.status),
        reply.content_type,
        reply.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if request.method != Method::Head {
        let _ = stream.write_all(&reply.body);
    }
}

fn route(head: &RequestHead, buf: &[u8], shared: &Shared, recent: &Recent, control: &Sender<Control>) -> Reply {
    let target = head.path.of(buf);
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let get = matches!(head.method, Method::Get | Method::Head);
    match (path, get, head.method) {
        (b"/healthz", true, _) => {
            if !shared.is_ready() {
                Reply::text(503, "draining\n")
            } else {
                Reply::text(200, "ok\n")
            }
        }
        (b"/backend-health", true, _) => Reply::json(200, &crate::health_view::build(shared, &shared.health)),
        (b"/metrics", true, _) => Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: crate::metrics_text::render(shared).into_bytes(),
        },
        (b"/recent", true, _) => Reply::json(200, &recent.view_now(shared)),
        (b"/listeners", true, _) => Reply::json(200, &listeners(shared)),
        (b"/reload", _, Method::Post) => {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if control.send(Control::Reload { reply: Some(tx) }).is_err() {
                return Reply::text(503, "the gateway is stopping\n");
            }
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(msg)) => Reply::text(200, format!("{msg}\n")),
                Ok(Err(e)) => {
                    Reply::text(400, format!("reload rejected, the previous configuration keeps serving:\n{e}\n"))
                }
                Err(_) => Reply::text(504, "the reload did not finish within 30 s\n"),
            }
        }
        (p, _, method) if p.starts_with(b"/servers/") => server_admin(p, method, shared),
        (b"/healthz" | b"/backend-health" | b"/metrics" | b"/recent" | b"/listeners", false, _) => {
            Reply::text(405, "use GET\n")
        }
        (b"/reload", _, _) => Reply::text(405, "use POST\n"),
        _ => Reply::text(
            404,
            "not found: try /healthz, /backend-health, /metrics, /recent, /listeners, POST /reload or POST /servers/<pool>/<server>/drain|enable\n",
        ),
    }
}

/// `POST /servers/<pool>/<server>/drain` and `/enable`: an operator takes a
/// server out of rotation (no new requests; affinity clients keep it for the
/// settings' connection-draining time-out) and puts it back, for every rule
/// that uses that pool. `<server>` is as `/backend-health` names it
/// (`host:port`). The probes go on meanwhile.
fn server_admin(path: &[u8], method: Method, shared: &Shared) -> Reply {
    let path = String::from_utf8_lossy(path);
    let parts: Vec<&str> = path.trim_start_matches("/servers/").split('/').collect();
    let [pool, server, action] = parts[..] else {
        return Reply::text(404, "use POST /servers/<pool>/<server>/drain or /enable\n");
    };
    let drain = match action {
        "drain" => true,
        "enable" => false,
        _ => return Reply::text(404, "use POST /servers/<pool>/<server>/drain or /enable\n"),
    };
    if method != Method::Post {
        return Reply::text(405, "use POST\n");
    }
    let entries: Vec<_> =
        shared.health.list().into_iter().filter(|e| e.key().pool == pool && e.key().server == server).collect();
    if entries.is_empty() {
        return Reply::text(404, format!("no server {server} in backend pool {pool} (see GET /backend-health)\n"));
    }
    for e in &entries {
        e.set_admin_drain(drain);
    }
    let what = if drain { "drained: no new requests" } else { "enabled: back in rotation" };
    tracing::info!(pool, server, "server {what} (admin API)");
    Reply::text(200, format!("server {server} of backend pool {pool} {what}\n"))
}

#[derive(Serialize)]
struct ListenerView {
    name: String,
    protocol: String,
    address: String,
    rule: String,
}

fn listeners(shared: &Shared) -> Vec<ListenerView> {
    shared
        .listeners()
        .into_iter()
        .map(|l| ListenerView {
            name: l.name,
            protocol: l.protocol.to_string(),
            address: l.bound.to_string(),
            rule: l.rule,
        })
        .collect()
}
