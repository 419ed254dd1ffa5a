//! The bulk mode's plumbing: a blocking HTTP/1.1 client that streams
//! bodies (Content-Length or chunked) on a keep-alive connection, the
//! upload sink the proxies forward `/upload/...` to, sha256 through
//! `sha256sum`, and random files.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Reads and writes at most this much at a time.
const CHUNK: usize = 256 * 1024;

/// sha256 of a stream, computed by a `sha256sum` child (no hashing crate in
/// the harness's dependencies).
pub struct Sha256 {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Sha256 {
    pub fn new() -> Result<Self, String> {
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start sha256sum: {e}"))?;
        let stdin = child.stdin.take();
        Ok(Sha256 { child, stdin })
    }

    pub fn update(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stdin.as_mut().ok_or("sha256sum closed")?.write_all(bytes).map_err(|e| format!("sha256sum: {e}"))
    }

    /// The digest, lowercase hex.
    pub fn finish(mut self) -> Result<String, String> {
        drop(self.stdin.take());
        let out = self.child.wait_with_output().map_err(|e| format!("sha256sum: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let hex = text.split_whitespace().next().unwrap_or_default();
        if hex.len() == 64 { Ok(hex.to_string()) } else { Err(format!("sha256sum printed {text:?}")) }
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256")
    }
}

pub fn sha256_file(path: &Path) -> Result<String, String> {
    let out = Command::new("sha256sum").arg(path).output().map_err(|e| format!("sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(h) if h.len() == 64 => Ok(h.to_string()),
        _ => Err(format!("sha256sum {}: {text:?}", path.display())),
    }
}

pub fn sha256_bytes(bytes: &[u8]) -> Result<String, String> {
    let mut h = Sha256::new()?;
    h.update(bytes)?;
    h.finish()
}

/// Writes `len` pseudo-random bytes (xorshift64*, seeded by `seed`) to
/// `path`.
pub fn random_file(path: &Path, len: u64, seed: u64) -> Result<(), String> {
    let f = std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(CHUNK, f);
    let mut x = seed | 1;
    let mut left = len;
    let mut block = vec![0u8; CHUNK];
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            word.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = left.min(CHUNK as u64) as usize;
        w.write_all(&block[..n]).map_err(|e| format!("write {}: {e}", path.display()))?;
        left -= n as u64;
    }
    w.flush().map_err(|e| format!("write {}: {e}", path.display()))
}

/// The head of a response (or request): status (or 0), the start line, and
/// the header fields with lowercased names.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub start: String,
    pub fields: Vec<(String, String)>,
}

impl Head {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> Result<Option<u64>, String> {
        self.get("content-length").map(|v| v.parse().map_err(|_| format!("Content-Length {v:?}"))).transpose()
    }
}

/// One HTTP/1.1 connection: the socket and the bytes read past what was
/// consumed.
#[derive(Debug)]
pub struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    /// Deadline of the whole exchange in progress.
    deadline: Option<Instant>,
}

impl Conn {
    pub fn connect(port: u16, timeout: Duration) -> Result<Self, String> {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect to {port}: {e}"))?;
        Ok(Self::from_stream(s, timeout))
    }

    fn from_stream(s: TcpStream, timeout: Duration) -> Self {
        let _ = s.set_read_timeout(Some(timeout));
        let _ = s.set_write_timeout(Some(timeout));
        let _ = s.set_nodelay(true);
        Conn { s, buf: Vec::new(), deadline: None }
    }

    #[cfg(test)]
    pub fn from_stream_for_tests(s: TcpStream) -> Self {
        Self::from_stream(s, Duration::from_secs(5))
    }

    #[cfg(test)]
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.s
    }

    /// Every later exchange must be over by `d` from now.
    pub fn deadline_in(&mut self, d: Duration) {
        self.deadline = Some(Instant::now() + d);
    }

    fn past_deadline(&self) -> Result<(), String> {
        match self.deadline {
            Some(d) if Instant::now() > d => Err("time-out (the transfer's deadline passed)".into()),
            _ => Ok(()),
        }
    }

    /// Reads more bytes into `buf`; an error at the end of the stream.
    fn fill(&mut self) -> Result<(), String> {
        self.past_deadline()?;
        let mut chunk = vec![0u8; CHUNK];
        match self.s.read(&mut chunk) {
            Ok(0) => Err(format!("connection closed ({} bytes unread)", self.buf.len())),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(l);
            }
            if self.buf.len() > 64 * 1024 {
                return Err("a line longer than 64 KiB".into());
            }
            self.fill()?;
        }
    }

    /// Reads a head; `Ok(None)` when the peer closed before its first byte.
    pub fn head(&mut self) -> Result<Option<Head>, String> {
        if self.buf.is_empty() {
            self.past_deadline()?;
            let mut chunk = vec![0u8; 16 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        let start = self.line()?;
        let mut fields = Vec::new();
        loop {
            let l = self.line()?;
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                fields.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let status = start.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        Ok(Some(Head { status, start, fields }))
    }

    /// Hands `n` bytes of the stream to `on`.
    fn exact(&mut self, mut n: u64, on: &mut dyn FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
        while n > 0 {
            if self.buf.is_empty() {
                self.fill()?;
            }
            let take = (self.buf.len() as u64).min(n) as usize;
            on(&self.buf[..take])?;
            self.buf.drain(..take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Reads the body that `head` announces, handing it to `on`; its
    /// length. `request`: a head without a length has no body (a response
    /// without one runs to the end of the stream).
    pub fn body(
        &mut self,
        head: &Head,
        request: bool,
        on: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, String> {
        if head.chunked() {
            let mut total = 0;
            loop {
                let l = self.line()?;
                let size = u64::from_str_radix(l.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| format!("chunk size line {l:?}"))?;
                if size == 0 {
                    while !self.line()?.is_empty() {}
                    return Ok(total);
                }
                self.exact(size, on)?;
                total += size;
                if !self.line()?.is_empty() {
                    return Err("no CRLF after a chunk".into());
                }
            }
        }
        if let Some(n) = head.content_length()? {
            self.exact(n, on)?;
            return Ok(n);
        }
        if request {
            return Ok(0);
        }
        let mut total = 0u64;
        loop {
            let b = std::mem::take(&mut self.buf);
            total += b.len() as u64;
            on(&b)?;
            match self.fill() {
                Ok(()) => {}
                Err(_) if self.buf.is_empty() => return Ok(total),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a request: `len` body bytes from `body` (none when `len` is
    /// `None`).
    pub fn send(&mut self, method: &str, path: &str, len: Option<u64>, body: &mut dyn Read) -> Result<(), String> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(n) = len {
            head.push_str(&format!("Content-Type: application/octet-stream\r\nContent-Length: {n}\r\n"));
        }
        head.push_str("\r\n");
        self.s.write_all(head.as_bytes()).map_err(|e| format!("send the head: {e}"))?;
        let mut left = len.unwrap_or(0);
        let mut chunk = vec![0u8; CHUNK];
        while left > 0 {
            self.past_deadline()?;
            let want = left.min(CHUNK as u64) as usize;
            let got = body.read(&mut chunk[..want]).map_err(|e| format!("read the body source: {e}"))?;
            if got == 0 {
                return Err(format!("the body source ended {left} bytes early"));
            }
            self.s.write_all(&chunk[..got]).map_err(|e| format!("send the body ({left} bytes left): {e}"))?;
            left -= got as u64;
        }
        Ok(())
    }

    /// Sends a request and reads its response, the body handed to `on`:
    /// the response head and the body's length.
    pub fn exchange(
        &mut self,
        method: &str,
        path: &str,
        len: Option<u64>,
        body: &mut dyn Read,
        on: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(Head, u64), String> {
        self.send(method, path, len, body)?;
        let head = self.head()?.ok_or("connection closed before a response")?;
        let n = self.body(&head, false, on)?;
        Ok((head, n))
    }
}

/// The upload sink: answers every request on keep-alive connections after
/// reading its whole body, `ok` for most paths; under `/upload/sha/` the body's
/// length and sha256 (`<len> <hex>\n`), so the client sees what arrived.
/// A thread per connection, all pinned to `cpu`.
#[derive(Debug)]
pub struct Sink {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub const SINK_SHA_PREFIX: &str = "/upload/sha/";

impl Sink {
    pub fn start(port: u16, cpu: usize) -> Result<Self, String> {
        let l = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("upload sink: bind {port}: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            pin_thread(cpu);
            for s in l.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(s) = s else { continue };
                std::thread::spawn(move || {
                    // A proxy dropping a connection (idle, or a request wrk
                    // abandoned when its run ended) is no news; the checks
                    // see any body that does not arrive whole.
                    if let Err(e) = serve(s) {
                        let dropped = ["reset by peer", "Broken pipe", "connection closed"];
                        if !dropped.iter().any(|d| e.contains(d)) {
                            eprintln!("  upload sink: {e}");
                        }
                    }
                });
            }
        });
        Ok(Sink { port, stop, thread: Some(thread) })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Pins the calling thread (and the threads it starts) to `cpu`.
fn pin_thread(cpu: usize) {
    #[allow(unsafe_code)]
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside
    // it (cpu is checked against its size); sched_setaffinity(0) acts on the
    // calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu < libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

fn serve(s: TcpStream) -> Result<(), String> {
    let mut c = Conn::from_stream(s, Duration::from_secs(120));
    // Idle keep-alive connections wait as long as the proxy keeps them.
    let _ = c.s.set_read_timeout(None);
    loop {
        let Some(head) = c.head()? else { return Ok(()) };
        let path = head.start.split(' ').nth(1).unwrap_or("/").to_string();
        if head.get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            c.s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(|e| format!("write: {e}"))?;
        }
        let answer = if path.starts_with(SINK_SHA_PREFIX) {
            let mut h = Sha256::new()?;
            let n = c.body(&head, true, &mut |b| h.update(b))?;
            format!("{n} {}\n", h.finish()?)
        } else {
            c.body(&head, true, &mut |_| Ok(()))?;
            "ok".to_string()
        };
        let close = head.get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n{}\r\n{answer}",
            answer.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        c.s.write_all(resp.as_bytes()).map_err(|e| format!("write: {e}"))?;
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_reports_length_and_sha_of_what_it_read_on_one_connection() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let _sink = Sink::start(port, 0).unwrap();
        let mut c = Conn::connect(port, Duration::from_secs(5)).unwrap();
        let body = vec![7u8; 300_000];
        for _ in 0..2 {
            let mut got = Vec::new();
            let (h, n) = c
                .exchange("POST", "/upload/sha/t", Some(body.len() as u64), &mut &body[..], &mut |b| {
                    got.extend_from_slice(b);
                    Ok(())
                })
                .unwrap();
            assert_eq!(h.status, 200);
            assert_eq!(n as usize, got.len());
            let text = String::from_utf8(got).unwrap();
            assert_eq!(text, format!("300000 {}\n", sha256_bytes(&body).unwrap()));
        }
        let (h, n) = c.exchange("POST", "/upload/x", Some(5), &mut &b"hello"[..], &mut |_| Ok(())).unwrap();
        assert_eq!((h.status, n), (200, 2));
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n",
            )
            .unwrap();
        });
        let mut c = Conn::connect(port, Duration::from_secs(5)).unwrap();
        let mut got = Vec::new();
        let (_, n) = c
            .exchange("GET", "/", None, &mut std::io::empty(), &mut |b| {
                got.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        assert_eq!((n, got.as_slice()), (8, &b"helloabc"[..]));
    }
}
