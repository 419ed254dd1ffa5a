//! A loopback address whose connects hang instead of being refused, to stand
//! in for a firewall that drops packets (connect time-out, not refusal).
//!
//! How: a socket listens with backlog 0 and never accepts; we connect to it
//! ourselves until its accept queue is full. From then on Linux drops every
//! SYN that reaches it (`tcp_conn_request` checks `sk_acceptq_is_full` and
//! drops, counted as `ListenOverflows`), so the client keeps retransmitting
//! its SYN and its connect times out. No root, no iptables.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// Longest a connect to a listener with room in its queue takes on loopback
/// (the handshake happens within the connect call itself); a probe that
/// takes longer found the queue full.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);
/// Backlog 0 queues one connection on Linux; a few more in case a kernel
/// rounds the backlog up.
const MAX_FILLERS: usize = 8;

/// A listening socket whose full accept queue makes connects to it hang.
/// Dropping it closes everything.
#[derive(Debug)]
pub struct Blackhole {
    addr: SocketAddr,
    _listener: Socket,
    /// Our own connections that fill the accept queue; kept open so it stays full.
    _fillers: Vec<TcpStream>,
}

impl Blackhole {
    /// Listens on a free port of 127.0.0.1 and fills the accept queue. Takes
    /// about 200 ms (the probe that finds the queue full has to time out).
    ///
    /// Fails if the kernel never starts dropping SYNs (not Linux-like).
    pub fn start() -> io::Result<Blackhole> {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        listener.listen(0)?;
        let addr =
            listener.local_addr()?.as_socket().ok_or_else(|| io::Error::other("blackhole socket has no IP address"))?;
        let mut fillers = Vec::new();
        for _ in 0..MAX_FILLERS {
            match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
                Ok(stream) => fillers.push(stream),
                Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                    return Ok(Blackhole { addr, _listener: listener, _fillers: fillers });
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("the blackhole's accept queue never filled: this kernel does not drop SYNs"))
    }

    /// Where connects hang.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port of [`Blackhole::addr`].
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn connect_to_blackhole_times_out_instead_of_being_refused() {
        let hole = Blackhole::start().expect("start blackhole");
        for _ in 0..3 {
            let started = Instant::now();
            let err =
                TcpStream::connect_timeout(&hole.addr(), Duration::from_millis(300)).expect_err("must not connect");
            assert!(
                matches!(err.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock),
                "expected a time-out, got {err:?}"
            );
            assert!(started.elapsed() >= Duration::from_millis(250), "gave up too early: {:?}", started.elapsed());
        }
    }

    #[test]
    fn dropped_blackhole_refuses() {
        let hole = Blackhole::start().expect("start blackhole");
        let addr = hole.addr();
        drop(hole);
        let err = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).expect_err("nothing listens");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }
}
