//! Host names of backend pools, resolved with the system resolver. A name that
//! does not resolve makes its server unhealthy with the resolver's error; it
//! never stops the gateway.

use std::net::{SocketAddr, ToSocketAddrs};

use ringgate_config::ServerHost;

/// Where `host:port` can be reached. Blocking (getaddrinfo): call it from the
/// control or prober threads, never from a worker.
pub fn resolve(host: &ServerHost, port: u16) -> Result<Vec<SocketAddr>, String> {
    match host {
        ServerHost::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
        ServerHost::Name(name) => match (name.as_str(), port).to_socket_addrs() {
            Ok(addrs) => {
                let mut v: Vec<SocketAddr> = addrs.collect();
                // Stable order, so re-resolving the same answer changes nothing.
                v.sort();
                v.dedup();
                if v.is_empty() { Err(format!("{name} resolved to no address")) } else { Ok(v) }
            }
            Err(e) => Err(format!("{name}: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_need_no_resolver() {
        let ip = ServerHost::Ip("10.0.0.1".parse().unwrap());
        assert_eq!(resolve(&ip, 80), Ok(vec!["10.0.0.1:80".parse().unwrap()]));
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let addrs = resolve(&ServerHost::Name("localhost".into()), 8080).unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080), "{addrs:?}");
    }

    #[test]
    fn an_unresolvable_name_is_an_error_with_the_name() {
        let e = resolve(&ServerHost::Name("no-such-host.invalid".into()), 80).unwrap_err();
        assert!(e.starts_with("no-such-host.invalid"), "{e}");
    }
}
