//! A small blocking client for the admin API, used by `ringgate health` and
//! `ringgate doctor` to read the running gateway's view.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The `host:port` of an admin address given as `host:port` or as a URL
/// (`http://host:port/`, as one copies it from the start-up log).
fn host_port(addr: &str) -> Result<&str, String> {
    if let Some(rest) = addr.strip_prefix("https://") {
        return Err(format!("admin address {addr}: the admin API speaks plain http (http://{rest})"));
    }
    let rest = addr.strip_prefix("http://").unwrap_or(addr);
    Ok(rest.split('/').next().unwrap_or(rest))
}

/// `GET path` on the admin API at `addr`: the status and body.
pub fn get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let addr = host_port(addr)?;
    let sock: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| format!("admin address {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("admin address {addr} resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(3)).map_err(|e| {
        format!("cannot reach the admin API on {addr}: {e} (is the gateway running, with admin_listen = \"{addr}\"?)")
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("admin API on {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("admin API on {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| format!("admin API on {addr}: incomplete response"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("admin API on {addr}: bad status line"))?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn an_admin_address_may_be_a_url() {
        assert_eq!(host_port("127.0.0.1:9901"), Ok("127.0.0.1:9901"));
        assert_eq!(host_port("http://127.0.0.1:9901"), Ok("127.0.0.1:9901"));
        assert_eq!(host_port("http://localhost:9901/backend-health"), Ok("localhost:9901"));
        assert!(host_port("https://127.0.0.1:9901/").unwrap_err().contains("plain http"));
    }
}
