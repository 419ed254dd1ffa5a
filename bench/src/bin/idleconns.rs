//! Idle keep-alive connections for the comparison harness's idle mode:
//! opens `--count` connections to 127.0.0.1:`--port`, sends one
//! `GET / HTTP/1.1` on each and reads its whole response (so each is a
//! keep-alive connection that has served a request), prints `ready N` and
//! holds them until stdin closes (or `--hold` seconds pass), then closes
//! them all and exits. A `check` line on stdin prints `open K closed C`:
//! how many the server still holds open.
//!
//! Raises its own RLIMIT_NOFILE soft limit to the hard one first.

use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: idleconns --port PORT --count N [--path /] [--hold SECS]");
    std::process::exit(2)
}

fn raise_nofile() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit and setrlimit read and write the rlimit given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
            }
        }
    }
    r.rlim_cur
}

/// Reads one response (head, then a Content-Length or chunked body).
fn read_response(s: &mut TcpStream) -> Result<(), String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    let mut fill = |buf: &mut Vec<u8>, s: &mut TcpStream| -> Result<(), String> {
        match s.read(&mut chunk) {
            Ok(0) => Err("closed before a whole response".into()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    };
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(&mut buf, s)?;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 2") {
        return Err(format!("answer {:?}", head.lines().next().unwrap_or("")));
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().map_err(|_| format!("Content-Length {v:?}")))
        .transpose()?;
    match length {
        Some(n) => {
            while buf.len() < end + n {
                fill(&mut buf, s)?;
            }
        }
        // Chunked (the small bodies come whole): up to the last chunk.
        None => {
            while !buf[end..].windows(5).any(|w| w == b"0\r\n\r\n") {
                fill(&mut buf, s)?;
            }
        }
    }
    Ok(())
}

/// How many of `conns` the server has not closed.
fn still_open(conns: &[TcpStream]) -> usize {
    let mut open = 0;
    let mut b = [0u8; 1];
    for c in conns {
        let _ = c.set_nonblocking(true);
        match c.peek(&mut b) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => open += 1,
            Ok(n) if n > 0 => open += 1,
            _ => {}
        }
        let _ = c.set_nonblocking(false);
    }
    open
}

fn main() {
    let (mut port, mut count, mut path, mut hold) = (0u16, 0usize, "/".to_string(), 600u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--port" => port = val().parse().unwrap_or_else(|_| usage()),
            "--count" => count = val().parse().unwrap_or_else(|_| usage()),
            "--path" => path = val(),
            "--hold" => hold = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if port == 0 || count == 0 {
        usage();
    }
    let limit = raise_nofile();
    if count as u64 + 16 > limit {
        println!("failed 0 {count} connections need more than the open files limit {limit}");
        std::process::exit(1);
    }
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let started = Instant::now();
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        let opened = (|| {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut s =
                TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
            s.write_all(req.as_bytes()).map_err(|e| format!("send: {e}"))?;
            read_response(&mut s)?;
            Ok::<_, String>(s)
        })();
        match opened {
            Ok(s) => conns.push(s),
            Err(e) => {
                println!("failed {i} connection {} of {count}: {e}", i + 1);
                std::process::exit(1);
            }
        }
    }
    eprintln!("  idleconns: {count} connections open in {:.2} s", started.elapsed().as_secs_f64());
    println!("ready {count}");
    let _ = std::io::stdout().flush();
    // Until stdin closes; the hold time bounds a harness that went away.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(hold);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.trim() == "check" => {
                let open = still_open(&conns);
                println!("open {open} closed {}", conns.len() - open);
                let _ = std::io::stdout().flush();
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    drop(conns);
}
