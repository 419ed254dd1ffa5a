//! A load generator of full TLS handshakes, for the `mtls` mode of the
//! comparison harness (compare.rs): wrk cannot present a client
//! certificate. Each of `--connections` threads opens a new TCP connection
//! per request, makes a full TLS 1.3 handshake (rustls, no session
//! resumption, the client certificate when `--cert`/`--key` are given),
//! sends `GET <path> HTTP/1.1` with `Connection: close`, reads the answer up
//! to the server's close and checks that it is a whole 200. Blocking std
//! threads: one request in flight per thread, as wrk's connections are.
//!
//! It runs for `--duration` seconds (a request started before the end is
//! finished and counted, so the proxy's CPU time over the run belongs to
//! counted handshakes) or for `--requests` requests in all (the harness's
//! checks). It prints `key value` lines: `done` (whole 200 answers),
//! `non200` (other answers), `errors` (connect, handshake, I/O, time-outs,
//! a close before a whole answer), `elapsed_us`, `rps` (whole 200 answers
//! per second), `p50_us` and `p99_us` (connect to close, 200 answers only:
//! unlike wrk's, these include the handshake), and the first error and
//! non-200 answer seen, if any.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

#[derive(Debug)]
struct Args {
    port: u16,
    connections: u32,
    duration: Duration,
    requests: Option<u64>,
    ca: PathBuf,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    path: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: tlsload --port PORT --ca SERVER-CA.pem [--cert CLIENT.pem --key CLIENT-KEY.pem] [--connections N] [--duration SECS | --requests N] [--path /]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        port: 0,
        connections: 16,
        duration: Duration::from_secs(5),
        requests: None,
        ca: PathBuf::new(),
        cert: None,
        key: None,
        path: "/".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--port" => a.port = val().parse().unwrap_or_else(|_| usage()),
            "--connections" => a.connections = val().parse().unwrap_or_else(|_| usage()),
            "--duration" => a.duration = Duration::from_secs_f64(val().parse().unwrap_or_else(|_| usage())),
            "--requests" => a.requests = Some(val().parse().unwrap_or_else(|_| usage())),
            "--ca" => a.ca = val().into(),
            "--cert" => a.cert = Some(val().into()),
            "--key" => a.key = Some(val().into()),
            "--path" => a.path = val(),
            _ => usage(),
        }
    }
    if a.port == 0 || a.connections == 0 || a.ca.as_os_str().is_empty() || a.cert.is_some() != a.key.is_some() {
        usage();
    }
    a
}

/// TLS 1.3 only, the server's CA as the one root, resumption off so that
/// every connection is a full handshake (rustls resumes by default).
fn client_config(a: &Args) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&a.ca).map_err(|e| format!("{}: {e}", a.ca.display()))? {
        roots.add(c.map_err(|e| format!("{}: {e}", a.ca.display()))?).map_err(|e| format!("root: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS 1.3: {e}"))?
        .with_root_certificates(roots);
    let mut cfg = match (&a.cert, &a.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            b.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate: {e}"))?
        }
        _ => b.with_no_client_auth(),
    };
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// Whether `answer` (everything read up to the close) is a whole 200: the
/// status line's code, then a body as long as `Content-Length` says, or a
/// chunked one ended by its last chunk. Otherwise what was wrong.
fn judge(answer: &[u8]) -> Result<(), String> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!("no whole response head in {} bytes: {:?}", answer.len(), shown(answer)));
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let body = &answer[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if status != 200 {
        return Err(status_line.to_string());
    }
    let field = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_ascii_lowercase())
        })
    };
    if let Some(len) = field("content-length") {
        let len: usize = len.parse().map_err(|_| format!("Content-Length {len:?}"))?;
        if body.len() != len {
            return Err(format!("{status_line}, body of {} bytes, Content-Length {len}", body.len()));
        }
    } else if field("transfer-encoding").is_some_and(|t| t.ends_with("chunked")) {
        if !body.ends_with(b"0\r\n\r\n") {
            return Err(format!("{status_line}, chunked body without its last chunk"));
        }
    } else if body.is_empty() {
        // Delimited by the close: an empty body is as likely a cut one.
        return Err(format!("{status_line}, no body and no framing"));
    }
    Ok(())
}

fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned()
}

/// One request on a new connection. `Ok(Ok(()))` for a whole 200,
/// `Ok(Err(what))` for another answer, `Err` for a failure to get one.
fn one(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
    name: &ServerName<'static>,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<Result<(), String>, String> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    // The handshake's last flight and the request go out as two writes,
    // as with wrk; without this, Nagle would hold the second one.
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(10)));
    let mut conn = ClientConnection::new(cfg.clone(), name.clone()).map_err(|e| format!("TLS client: {e}"))?;
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.write_all(request).map_err(|e| format!("handshake or request: {e}"))?;
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    // Read up to the close the request asked for: close_notify (Ok(0)) or
    // a bare FIN (UnexpectedEof); a reset after a whole answer is judged on
    // what came.
    loop {
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !buf.is_empty() => break,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("no close within 10 s after {} bytes: {:?}", buf.len(), shown(buf)));
            }
            Err(e) => {
                return Err(if buf.is_empty() {
                    format!("handshake or response: {e}")
                } else {
                    format!("after {} bytes: {e}", buf.len())
                });
            }
        }
    }
    Ok(judge(buf))
}

/// What one thread saw.
#[derive(Debug, Default)]
struct Tally {
    /// µs from connect to close, for each whole 200.
    latencies: Vec<u64>,
    non200: u64,
    errors: u64,
    first_error: Option<String>,
    first_non200: Option<String>,
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

fn main() {
    let a = parse_args();
    let cfg = client_config(&a).unwrap_or_else(|e| {
        eprintln!("tlsload: {e}");
        std::process::exit(2)
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], a.port));
    let name = ServerName::try_from("localhost").expect("a valid DNS name");
    let request = Arc::new(
        format!("GET {} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n", a.path, a.port).into_bytes(),
    );
    let start = Instant::now();
    let deadline = start + a.duration;
    let threads: Vec<_> = (0..a.connections)
        .map(|i| {
            let (cfg, name, request) = (cfg.clone(), name.clone(), request.clone());
            // --requests: split across the threads, the first ones taking the remainder.
            let budget = a
                .requests
                .map(|n| n / u64::from(a.connections) + u64::from(u64::from(i) < n % u64::from(a.connections)));
            std::thread::spawn(move || {
                let mut t = Tally::default();
                let mut buf = Vec::with_capacity(4096);
                let mut sent = 0u64;
                while budget.map_or(Instant::now() < deadline, |b| sent < b) {
                    sent += 1;
                    let t0 = Instant::now();
                    match one(addr, &cfg, &name, &request, &mut buf) {
                        Ok(Ok(())) => t.latencies.push(t0.elapsed().as_micros() as u64),
                        Ok(Err(what)) => {
                            t.non200 += 1;
                            t.first_non200.get_or_insert(what);
                        }
                        Err(e) => {
                            t.errors += 1;
                            t.first_error.get_or_insert(e);
                        }
                    }
                }
                t
            })
        })
        .collect();
    let mut all = Tally::default();
    for h in threads {
        let t = h.join().expect("a load thread panicked");
        all.latencies.extend(t.latencies);
        all.non200 += t.non200;
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
        if all.first_non200.is_none() {
            all.first_non200 = t.first_non200;
        }
    }
    let elapsed = start.elapsed();
    all.latencies.sort_unstable();
    let done = all.latencies.len() as u64;
    println!("done {done}");
    println!("non200 {}", all.non200);
    println!("errors {}", all.errors);
    println!("elapsed_us {}", elapsed.as_micros());
    println!("rps {:.1}", done as f64 / elapsed.as_secs_f64());
    println!("p50_us {:.0}", quantile(&all.latencies, 0.50));
    println!("p99_us {:.0}", quantile(&all.latencies, 0.99));
    if let Some(e) = all.first_error {
        println!("first_error {}", e.replace('\n', " "));
    }
    if let Some(s) = all.first_non200 {
        println!("first_non200 {}", s.replace('\n', " "));
    }
}

#[cfg(test)]
mod tests {
    use super::judge;

    #[test]
    fn only_a_whole_200_passes() {
        assert_eq!(judge(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n"), Ok(()));
        assert_eq!(judge(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), Ok(()));
        assert_eq!(judge(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello"), Ok(()));
        // ringgate's and nginx's answer to a missing client certificate.
        let e = judge(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nno\n").unwrap_err();
        assert_eq!(e, "HTTP/1.1 400 Bad Request");
        assert!(judge(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello").unwrap_err().contains("5 bytes"));
        assert!(judge(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n").is_err());
        assert!(judge(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap_err().contains("no whole response head"));
        assert!(judge(b"").is_err());
    }
}
