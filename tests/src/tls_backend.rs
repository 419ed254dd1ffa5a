//! A TLS server for the suites: std sockets and rustls, a thread per
//! connection, as plainly as the test backend. It completes the handshake
//! with its certificate, answers every request `200 ok` and closes. A
//! handshake that fails (a plain HTTP request, a client refusing the
//! certificate) ends with the alert rustls sends, as a real TLS server does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::certs::Leaf;

/// A TLS server on a loopback port; stops on drop.
#[derive(Debug)]
pub struct TlsBackend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    hellos: Arc<AtomicU64>,
}

impl TlsBackend {
    /// Serves `leaf` on `127.0.0.1:0`.
    pub fn start(leaf: &Leaf) -> TlsBackend {
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("the leaf's key");
        let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der.clone()], key)
            .expect("the leaf's certificate and key");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TLS backend");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let hellos = Arc::new(AtomicU64::new(0));
        let (stop2, hellos2) = (stop.clone(), hellos.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (config, hellos) = (config.clone(), hellos2.clone());
                std::thread::spawn(move || serve(conn, config, &hellos));
            }
        });
        TlsBackend { addr, stop, hellos }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections that opened with a TLS handshake record (a ClientHello),
    /// whether the handshake then succeeded or not.
    pub fn client_hellos(&self) -> u64 {
        self.hellos.load(Ordering::SeqCst)
    }
}

fn serve(mut sock: TcpStream, config: Arc<ServerConfig>, hellos: &AtomicU64) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let mut first = [0u8; 1];
    if matches!(sock.peek(&mut first), Ok(1)) && first[0] == 0x16 {
        hellos.fetch_add(1, Ordering::SeqCst);
    }
    let Ok(mut conn) = ServerConnection::new(config) else { return };
    while conn.is_handshaking() {
        // On an error, complete_io has already tried to send the alert.
        if conn.complete_io(&mut sock).is_err() {
            return;
        }
    }
    let mut tls = StreamOwned::new(conn, sock);
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n");
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}
