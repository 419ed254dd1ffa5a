//! Accepting client connections and choosing their codec: the accept loop of
//! each socket, then per connection the limit check, the TLS handshake on
//! `https` sockets, and the protocol, from ALPN (`h2` or `http/1.1`) or, on
//! plain sockets with `http2_cleartext`, from the HTTP/2 preface. The
//! connection then belongs to its codec, `h1` or `h2`.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::PrefixedReadIo;
use monoio::net::{TcpListener, TcpStream};
use ringgate_config::SocketKey;
use tracing::warn;

use crate::io::Timer;
use crate::request::{Client, ConnInfo, INITIAL_READ};
use crate::worker::{ConnGuard, Worker};

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub(crate) async fn accept_loop(
    w: Rc<Worker>,
    listener: TcpListener,
    key: SocketKey,
    cancel: monoio::io::CancelHandle,
) {
    let addr = key.addr;
    let mut last_warn: Option<Instant> = None;
    loop {
        match listener.cancelable_accept(cancel.clone()).await {
            Ok((stream, peer)) => {
                w.gauges.accepted.add(1);
                // The task holds the connection's setup boxed, and once that
                // is done only the HTTP/1.1 codec's future: the setup's state
                // (the PROXY header read, the h2c sniffing, the accept
                // arguments kept beside their moved copies) would otherwise
                // stay in every idle connection's task, about 470 bytes
                // (`-Zprint-type-sizes`; `bench/compare.sh --mode idle`).
                let setup = Box::pin(serve(w.clone(), stream, peer, key.clone()));
                monoio::spawn(async move {
                    if let Some(client) = setup.await {
                        client.run().await;
                    }
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => return,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning, and say so
                // at most once a second.
                if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                    warn!(worker = w.id, %addr, error = %e, "accept failed");
                    last_warn = Some(Instant::now());
                }
                if w.draining() {
                    return;
                }
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Entry point of a client connection task: the limit check, the PROXY
/// header, TLS, and the choice of codec. A plain HTTP/1.1 connection comes
/// back for the task to run (see `accept_loop`); every other kind is served
/// here to its end.
async fn serve(
    w: Rc<Worker>,
    mut stream: TcpStream,
    mut peer: SocketAddr,
    socket: SocketKey,
) -> Option<Box<Client<TcpStream>>> {
    crate::io::prepare_stream(&mut stream);
    // Copied out, not held: a connection must not keep a plan alive (and its
    // removed servers listed as draining) while it waits.
    let (max, header_timeout, tls, h2c, proxy_protocol, peer_trusted) = {
        let lp = w.plan();
        let s = lp.plan.socket(&socket);
        (
            lp.plan.max_connections,
            lp.plan.header_timeout,
            s.and_then(|s| s.tls.clone()),
            s.is_some_and(|s| s.h2c),
            s.is_some_and(|s| s.proxy_protocol),
            lp.plan.trusts(peer.ip()),
        )
    };
    let Some(guard) = w.register(stream.as_raw_fd(), max) else {
        w.gauges.refused_over_limit.add(1);
        return None;
    };
    let _ = stream.set_nodelay(true);
    let port = stream.local_addr().map_or(socket.addr.port(), |a| a.port());
    let deadline = Instant::now() + header_timeout;
    let mut first = Vec::with_capacity(INITIAL_READ);
    let mut forwarded_for_trusted = peer_trusted;
    if proxy_protocol {
        match read_proxy_header(&mut stream, &mut first, deadline, peer_trusted).await {
            Ok(source) => {
                if let Some(client) = source {
                    peer = client;
                    forwarded_for_trusted = w.plan().plan.trusts(peer.ip());
                }
            }
            Err(why) => {
                w.gauges.proxy_protocol_errors.add(1);
                tracing::debug!(%peer, "connection closed: {why}");
                // A plain-HTTP client that reached this port directly is told
                // why; anything else cannot read an answer.
                if tls.is_none() && first.first().is_some_and(u8::is_ascii_uppercase) {
                    let conn = ConnInfo::new(peer, socket, port, forwarded_for_trusted);
                    let why = "400 Bad Request: this port expects a PROXY protocol header from the load balancer in front of it";
                    Box::pin(Client::new(w, stream, conn, Some(guard), first).refuse_owned(why)).await;
                }
                return None;
            }
        }
    }
    // The certificates of the plan current at accept time: a reload changes
    // them for new connections only, never dropping established ones.
    if let Some(tls) = tls {
        // Boxed: the handshake and a TLS stream's buffers (8.7 KB of future)
        // would otherwise be allocated with every connection's setup box
        // (see `accept_loop`), plain ones included.
        let conn = ConnInfo::new(peer, socket, port, forwarded_for_trusted);
        Box::pin(serve_tls(w, stream, conn, guard, tls, deadline, first)).await;
        return None;
    }
    let conn = ConnInfo::new(peer, socket, port, forwarded_for_trusted);
    if !h2c {
        w.gauges.count_connection(false);
        return Some(Box::new(Client::new(w, stream, conn, Some(guard), first)));
    }
    // Prior knowledge: the first bytes say which protocol this is.
    let mut timer = Timer::new();
    loop {
        let n = first.len().min(H2_PREFACE.len());
        if n > 0 && (first[..n] != H2_PREFACE[..n] || n == H2_PREFACE.len()) {
            break;
        }
        match timer.read_more_until(&mut stream, &mut first, INITIAL_READ, deadline).await {
            Ok(n) if n > 0 => {}
            _ => return None,
        }
    }
    if first.starts_with(H2_PREFACE) {
        w.gauges.count_connection(true);
        let io = PrefixedReadIo::new(stream, std::io::Cursor::new(first));
        Box::pin(crate::h2::serve(w, io, conn, guard)).await;
        None
    } else {
        w.gauges.count_connection(false);
        Some(Box::new(Client::new(w, stream, conn, Some(guard), first)))
    }
}

/// Mutual TLS: verifies the certificate the client presented (if its
/// socket asks for one), counts a failure, and records the verdict for the
/// request path, which refuses requests when one is required.
fn client_certificate(w: &Worker, conn: &mut ConnInfo, chain: Option<&[rustls_pki_types::CertificateDer<'static>]>) {
    let lp = w.plan();
    let Some(auth) = lp.plan.socket(&conn.socket).and_then(|s| s.client_auth.as_ref()) else { return };
    let cert = auth.verify(chain);
    if let Some(f) = cert.failure
        && (auth.required || f != ringgate_tls::CertFailure::Missing)
    {
        w.gauges.client_cert_failures[f as usize].add(1);
        tracing::debug!(peer = %conn.peer, "client certificate not accepted: {}", cert.verification);
    }
    conn.client_cert_required = auth.required;
    conn.client_cert = Some(Rc::new(cert));
}

/// Reads a `proxy_protocol` connection's PROXY header: the client's address
/// (`None`: the header gave none, the peer's stands), with what followed the
/// header left in `buf`.
async fn read_proxy_header(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    peer_trusted: bool,
) -> Result<Option<SocketAddr>, String> {
    if !peer_trusted {
        return Err("a PROXY protocol header is only taken from trusted_proxies".into());
    }
    let mut timer = Timer::new();
    loop {
        if !buf.is_empty()
            && let Some(h) = crate::proxy_protocol::parse(buf)?
        {
            buf.drain(..h.len);
            return Ok(h.source);
        }
        match timer.read_more_until(stream, buf, INITIAL_READ, deadline).await {
            Ok(n) if n > 0 => {}
            Ok(_) => return Err("closed before its PROXY protocol header was complete".into()),
            Err(_) => return Err("no complete PROXY protocol header within header_read_timeout".into()),
        }
    }
}

/// An `https` socket's connection: TLS handshake, then the codec ALPN chose.
/// `first` holds what was read already (after a PROXY header).
async fn serve_tls(
    w: Rc<Worker>,
    mut stream: TcpStream,
    mut conn: ConnInfo,
    guard: ConnGuard,
    tls: std::sync::Arc<ringgate_tls::ServerConfig>,
    deadline: Instant,
    mut first: Vec<u8>,
) {
    let peer = conn.peer;
    // Look at the first bytes: a client speaking plain HTTP to this port gets
    // told so in plain HTTP, instead of a TLS alert it cannot read.
    if first.is_empty() {
        match Timer::new().read_more_until(&mut stream, &mut first, INITIAL_READ, deadline).await {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
    if !ringgate_tls::looks_like_tls(first[0]) {
        Client::new(w, stream, conn, Some(guard), first).refuse_plain_http().await;
        return;
    }
    let io = PrefixedReadIo::new(stream, std::io::Cursor::new(first));
    let acceptor = monoio_rustls::TlsAcceptor::from(tls);
    match monoio::time::timeout_at(deadline.into(), acceptor.accept(io)).await {
        Ok(Ok(tls_stream)) => {
            conn.tls = ringgate_tls::TlsInfo::of(tls_stream.session());
            client_certificate(&w, &mut conn, tls_stream.session().peer_certificates());
            if tls_stream.alpn_protocol().as_deref() == Some(b"h2") {
                w.gauges.count_connection(true);
                crate::h2::serve(w, tls_stream, conn, guard).await;
            } else {
                w.gauges.count_connection(false);
                let rbuf = Vec::with_capacity(INITIAL_READ);
                Box::new(Client::new(w, tls_stream, conn, Some(guard), rbuf)).run().await;
            }
        }
        Ok(Err(e)) => {
            w.gauges.tls_handshake_failures.add(1);
            let e: std::io::Error = e.into();
            tracing::debug!(%peer, "TLS handshake failed: {}", ringgate_tls::explain(&e));
        }
        Err(_) => {
            w.gauges.tls_handshake_failures.add(1);
            tracing::debug!(%peer, "TLS handshake did not finish within header_read_timeout");
        }
    }
}
