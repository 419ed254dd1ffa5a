//! The end-to-end harness: starts the real `ringgate` binary on a generated
//! configuration (every address on 127.0.0.1 port 0, read back from its
//! start-up log), talks to it over real sockets, and stops it.
//!
//! Backends come from `ringgate-testbackend`. Nothing here sleeps to
//! synchronise: waits poll a condition with a deadline.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

pub use ringgate_testbackend::{Backend, Blackhole, Mode, wait_until};

pub mod certs;
pub mod tls_backend;
pub mod tools;

/// Locks, ignoring poisoning: a panicking reader thread leaves the collected
/// lines usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `ringgate` binary of this build, built on first use (a no-op when
/// `cargo test --workspace` already built it).
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test binary> -> target/<profile>/ringgate
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "ringgate", "--bin", "ringgate"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for the ringgate binary");
        assert!(status.success(), "building the ringgate binary failed");
        let bin = profile_dir.join("ringgate");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
    .clone()
}

/// A fresh scratch directory under the target directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = std::env::temp_dir().join(format!("ringgate-e2e-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("create scratch dir");
        TempDir(base)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running gateway process.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    /// Listener name -> bound address, as logged at start.
    listeners: Arc<Mutex<HashMap<String, SocketAddr>>>,
    admin: Option<SocketAddr>,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    config: PathBuf,
    dir: TempDir,
}

/// Extracts `name` and `addr` from `listener "name" listening on http://addr ...`.
fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let rest = &line[line.find("listener \"")? + 10..];
    let name = &rest[..rest.find('"')?];
    let at = rest.find("://")? + 3;
    let addr = rest[at..].split_whitespace().next()?;
    Some((name.to_string(), addr.parse().ok()?))
}

impl Gateway {
    /// Starts `ringgate run` on `config` and waits until it listens.
    pub fn start(config: &str) -> Gateway {
        Self::start_with(config, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Gateway::start`]; returns the process output when it fails to
    /// start within 20 s (or exits).
    pub fn start_with(config: &str, env: &[(&str, &str)]) -> Result<Gateway, String> {
        Self::start_in(TempDir::new("gw"), config, env)
    }

    /// Like [`Gateway::start`], with `files` (name, content) written next to
    /// the configuration file first: certificates and keys that the
    /// configuration names by relative paths.
    pub fn start_with_files(config: &str, files: &[(impl AsRef<str>, impl AsRef<[u8]>)]) -> Gateway {
        let dir = TempDir::new("gw");
        for (name, content) in files {
            std::fs::write(dir.path().join(name.as_ref()), content).expect("write a file next to the config");
        }
        Self::start_in(dir, config, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Writes `config` to `ringgate.toml` in `dir` and starts on it.
    fn start_in(dir: TempDir, config: &str, env: &[(&str, &str)]) -> Result<Gateway, String> {
        let path = dir.path().join("ringgate.toml");
        std::fs::write(&path, config).expect("write config");
        let mut cmd = Command::new(binary());
        cmd.arg("run").arg("--config").arg(&path).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env("RINGGATE_LOG", "info").env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("spawn ringgate: {e}"))?;
        let listeners = Arc::new(Mutex::new(HashMap::new()));
        let admin: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        {
            let err = child.stderr.take().expect("stderr");
            let (l, a, s) = (listeners.clone(), admin.clone(), stderr.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let line = strip_ansi(&line);
                    if let Some((name, addr)) = parse_listening(&line) {
                        lock(&l).insert(name, addr);
                    }
                    if let Some(i) = line.find("admin API listening on http://") {
                        let rest = &line[i + 30..];
                        if let Some(addr) = rest.split_whitespace().next().and_then(|a| a.parse().ok()) {
                            *lock(&a) = Some(addr);
                        }
                    }
                    lock(&s).push(line);
                }
            });
            let out = child.stdout.take().expect("stdout");
            let o = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lock(&o).push(line);
                }
            });
        }
        let expected = config.matches("[[listener]]").count();
        let wants_admin = !config.contains("admin_listen = \"off\"");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = lock(&listeners).len() >= expected && (!wants_admin || lock(&admin).is_some());
            if ready {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!("ringgate exited at start ({status}):\n{}", lock(&stderr).join("\n")));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("ringgate did not start within 20 s:\n{}", lock(&stderr).join("\n")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let admin = *lock(&admin);
        Ok(Gateway { child: Some(child), listeners, admin, stderr, stdout, config: path, dir })
    }

    /// The bound address of a listener.
    pub fn addr(&self, listener: &str) -> SocketAddr {
        *lock(&self.listeners)
            .get(listener)
            .unwrap_or_else(|| panic!("no listener {listener:?}; log:\n{}", self.stderr()))
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin.expect("the admin API is off")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything logged on stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).join("\n")
    }

    /// Lines printed on stdout so far (the access log, when it goes there).
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    /// The access log lines on stdout, each parsed as JSON; panics on a line
    /// that is not a JSON object.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.stdout_lines()
            .iter()
            .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
                Ok(v) if v.is_object() => v,
                _ => panic!("access log line is not a JSON object: {l:?}"),
            })
            .collect()
    }

    /// Waits until stderr contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.stderr().contains(needle))
    }

    /// `GET path` on the admin API: status and body.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let r = request(self.admin(), "GET", path, &[], b"").expect("admin request");
        (r.status, r.text())
    }

    /// `POST /reload` after writing `config` to the file.
    pub fn reload_with(&self, config: &str) -> (u16, String) {
        std::fs::write(&self.config, config).expect("rewrite config");
        let r = request(self.admin(), "POST", "/reload", &[], b"").expect("admin reload");
        (r.status, r.text())
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY-free: kill(2) through libc on our own child's pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.pid() as i32, sig);
        }
    }

    /// Open file descriptors of the process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }

    /// How many of the open descriptors are pipe ends. A worker keeps a
    /// bounded pool of spare splice pipes, so these are counted apart from
    /// sockets when a test checks that descriptors come back.
    pub fn pipe_ends(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("pipe:")))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM, then waits up to `timeout` for the exit.
    pub fn stop_within(self, timeout: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.wait_exit(timeout)
    }

    /// Stops the gateway and returns its exit status.
    pub fn stop(self) -> ExitStatus {
        self.stop_within(Duration::from_secs(40)).expect("ringgate did not exit after SIGTERM")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A parsed HTTP response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server closed the connection after this response.
    pub closed: bool,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that keeps reading responses off one socket.
#[derive(Debug)]
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        Ok(Client { stream, buf: Vec::new() })
    }

    pub fn set_timeout(&self, t: Duration) {
        let _ = self.stream.set_read_timeout(Some(t));
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a simple request.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        self.send(&format_request(method, path, headers, body))?;
        self.read_response(method == "HEAD")
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one response (1xx interim responses included, as separate
    /// calls). `head_request`: the response has no body.
    pub fn read_response(&mut self, head_request: bool) -> std::io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill()? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("closed before a response head; got {:?}", String::from_utf8_lossy(&self.buf)),
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad status line {status_line:?}"))
        })?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
            .collect();
        self.buf.drain(..head_end);
        let mut r = Response { status, headers, body: Vec::new(), closed: false };
        let te = r.header("transfer-encoding").map(|v| v.to_ascii_lowercase());
        let cl = r.header("content-length").and_then(|v| v.parse::<usize>().ok());
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            // no body
        } else if te.as_deref().is_some_and(|t| t.ends_with("chunked")) {
            r.body = self.read_chunked()?;
        } else if let Some(n) = cl {
            while self.buf.len() < n {
                if self.fill()? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("body truncated at {} of {n}", self.buf.len()),
                    ));
                }
            }
            r.body = self.buf.drain(..n).collect();
        } else {
            while self.fill()? > 0 {}
            r.body = std::mem::take(&mut self.buf);
            r.closed = true;
        }
        if r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            r.closed = true;
        }
        Ok(r)
    }

    fn read_chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                if self.fill()? == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "chunked body truncated"));
                }
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad chunk size {size_text:?}"))
            })?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    let end = loop {
                        if let Some(i) = find(&self.buf, b"\r\n") {
                            break i;
                        }
                        if self.fill()? == 0 {
                            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "trailers truncated"));
                        }
                    };
                    self.buf.drain(..end + 2);
                    if end == 0 {
                        return Ok(body);
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if self.fill()? == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "chunk truncated"));
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// Reads until the server closes; returns what arrived (after any
    /// buffered bytes).
    pub fn read_to_close(&mut self) -> std::io::Result<Vec<u8>> {
        while self.fill()? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads exactly `n` bytes (after any already buffered), for a tunnel's
    /// payload that has no HTTP framing.
    pub fn read_exact_bytes(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("closed after {} of {n} bytes", self.buf.len()),
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Whether the server has closed the connection (waits up to `t`).
    pub fn is_closed_within(&mut self, t: Duration) -> bool {
        self.set_timeout(t);
        // One read: a reset is seen once, and a second read after it
        // returns Ok(0), which the old two-read form took for "open".
        match self.fill() {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Formats a request with Host and, for a body, Content-Length.
pub fn format_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        out.push_str("Host: test.local\r\n");
    }
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding")) {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut c = Client::connect(addr)?;
    c.request(method, path, headers, body)
}

/// `GET path` on a fresh connection; panics on I/O errors.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"))
}

/// Sends raw bytes on a fresh connection and returns everything the server
/// sends until it closes (or `timeout` passes).
pub fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(timeout)).expect("timeout");
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A backend that answers every request with the same raw bytes, then
/// closes: for responses [`Backend`] cannot produce (its modes cover the
/// common faults, this any byte sequence). Stops on drop.
#[derive(Debug)]
pub struct CannedBackend {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    served: Arc<std::sync::atomic::AtomicU64>,
}

impl CannedBackend {
    pub fn start(response: &'static [u8]) -> CannedBackend {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind canned backend");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (stop2, served2) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let served = served2.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while find(&head, b"\r\n\r\n").is_none() {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    served.fetch_add(1, Ordering::SeqCst);
                    let _ = conn.write_all(response);
                    // Half-close, then wait for the peer's close so no RST
                    // destroys the response in flight.
                    let _ = conn.shutdown(std::net::Shutdown::Write);
                    while matches!(conn.read(&mut chunk), Ok(n) if n > 0) {}
                });
            }
        });
        CannedBackend { addr, stop, served }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Request heads received so far (health probes included).
    pub fn served(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CannedBackend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// A loopback port that was free when asked: bound on port 0, then released.
/// For configurations that need the same port twice (listeners sharing an
/// address) or an address where nothing listens.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A loopback address nothing listens on: connects to it are refused.
pub fn closed_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// `config` with a `[gateway.limits]` table holding `limits` appended.
pub fn with_limits(config: &str, limits: &str) -> String {
    format!("{config}\n[gateway.limits]\n{limits}\n")
}

/// The value of the sample `series` (name and labels, exactly as exposed) in
/// a Prometheus text page, if present.
pub fn metric_value(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// One listener with its own rule, backend pool and settings, for
/// [`sites_config`].
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    /// Listener name; the rule, pool and settings are named after it
    /// (`rule-<name>`, `pool-<name>`, `settings-<name>`).
    pub listener: &'a str,
    /// `listen` address, e.g. `127.0.0.1:0`.
    pub listen: &'a str,
    /// Empty: a basic listener.
    pub host_names: &'a [&'a str],
    pub addresses: &'a [SocketAddr],
    /// Extra lines for the backend HTTP settings.
    pub settings_extra: &'a str,
}

impl<'a> Site<'a> {
    /// A basic listener on `127.0.0.1:0` to `addresses`.
    pub fn basic(listener: &'a str, addresses: &'a [SocketAddr]) -> Site<'a> {
        Site { listener, listen: "127.0.0.1:0", host_names: &[], addresses, settings_extra: "" }
    }
}

/// A configuration with one listener, rule, pool and settings per site, the
/// admin API on port 0, the access log on stdout and sub-second probe
/// timers allowed.
pub fn sites_config(sites: &[Site<'_>]) -> String {
    // Sub-second probe timers are allowed, explicitly, because the suites
    // probe every 100 ms so thresholds are crossed within a test.
    let mut out = String::from(
        "[gateway]\nworkers = 1\nadmin_listen = \"127.0.0.1:0\"\naccess_log = \"stdout\"\nallow_subsecond_timers = true\ndrain_timeout = 5\n",
    );
    for s in sites {
        let n = s.listener;
        let hosts: Vec<String> = s.host_names.iter().map(|h| format!("\"{h}\"")).collect();
        let addrs: Vec<String> = s.addresses.iter().map(|a| format!("\"{a}\"")).collect();
        let (hosts, addrs) = (hosts.join(", "), addrs.join(", "));
        out.push_str(&format!(
            r#"
[[listener]]
name = "{n}"
listen = "{listen}"
host_names = [{hosts}]

[[backend_pool]]
name = "pool-{n}"
addresses = [{addrs}]

[[backend_http_settings]]
name = "settings-{n}"
{extra}

[[rule]]
name = "rule-{n}"
listener = "{n}"
backend_pool = "pool-{n}"
backend_http_settings = "settings-{n}"
"#,
            listen = s.listen,
            extra = s.settings_extra,
        ));
    }
    out
}

/// One basic listener `public`, rule `rule01` to pool `pool01` (`addresses`,
/// written as given) through settings `setting01` on `port` with the extra
/// lines `settings_extra`. With `probe`, the settings use custom probe `p1`
/// made of those lines; without, the default probe. `admin` is the
/// `admin_listen` value (`"off"` when no gateway runs). Sub-second probe
/// timers are allowed (`allow_subsecond_timers = true`).
pub fn probed_config(
    addresses: &[String],
    port: u16,
    settings_extra: &str,
    probe: Option<&str>,
    admin: &str,
) -> String {
    let addrs: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    let (use_probe, probe_table) = match probe {
        Some(lines) => ("probe = \"p1\"\n", format!("\n[[probe]]\nname = \"p1\"\n{lines}\n")),
        None => ("", String::new()),
    };
    format!(
        r#"[gateway]
workers = 1
admin_listen = "{admin}"
access_log = "off"
allow_subsecond_timers = true
drain_timeout = 5

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[backend_pool]]
name = "pool01"
addresses = [{addrs}]

[[backend_http_settings]]
name = "setting01"
port = {port}
{settings_extra}
{use_probe}
[[rule]]
name = "rule01"
listener = "public"
backend_pool = "pool01"
backend_http_settings = "setting01"
{probe_table}"#,
        addrs = addrs.join(", "),
    )
}

/// A minimal configuration: one basic listener `public`, one rule `rule01` to
/// pool `pool01` with `addresses`, settings `setting01` with `settings_extra`
/// lines added, admin API on port 0, the access log on stdout and sub-second
/// probe timers allowed.
/// `config` (from [`simple_config`] or [`probed_config`]) with `lines` added
/// to its `[gateway]` table, after `drain_timeout` (the table's last line).
pub fn with_gateway_lines(config: &str, lines: &str) -> String {
    config.replacen("drain_timeout = 5\n", &format!("drain_timeout = 5\n{lines}\n"), 1)
}

pub fn simple_config(addresses: &[SocketAddr], settings_extra: &str) -> String {
    let addrs: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"[gateway]
workers = 1
admin_listen = "127.0.0.1:0"
access_log = "stdout"
allow_subsecond_timers = true
drain_timeout = 5

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[backend_pool]]
name = "pool01"
addresses = [{}]

[[backend_http_settings]]
name = "setting01"
port = 80
{settings_extra}

[[rule]]
name = "rule01"
listener = "public"
backend_pool = "pool01"
backend_http_settings = "setting01"
"#,
        addrs.join(", ")
    )
}

// ---------------------------------------------------------------------------
// Helpers for the reliability suites (reload, faults, soak).

impl Gateway {
    /// The bound address of a listener, if it has been logged, at start or
    /// after a reload (the gateway logs every listener again on each reload).
    pub fn try_addr(&self, listener: &str) -> Option<SocketAddr> {
        lock(&self.listeners).get(listener).copied()
    }

    /// Waits until the address of `listener` has been logged, e.g. one a
    /// reload added; panics with the log after `timeout`.
    pub fn wait_addr(&self, listener: &str, timeout: Duration) -> SocketAddr {
        let mut found = None;
        let ok = wait_until(timeout, || {
            found = self.try_addr(listener);
            found.is_some()
        });
        match found {
            Some(addr) if ok => addr,
            _ => panic!("listener {listener:?} was never logged as listening; log:\n{}", self.stderr()),
        }
    }

    /// `GET /metrics`, the value of one series (name and labels exactly as
    /// exposed), if present.
    pub fn metric(&self, series: &str) -> Option<u64> {
        let (status, text) = self.admin_get("/metrics");
        assert_eq!(status, 200, "GET /metrics: {text}");
        metric_value(&text, series)
    }

    /// Whether the process is still running (it has not exited, by itself or
    /// by a signal).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits up to `timeout` for the process to exit on its own (after a
    /// signal the test sent), without signalling it; kills it and returns
    /// `None` when it is still running then.
    pub fn wait_exit(mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit and returns
/// the new soft limit. Gateways started afterwards inherit it.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the `rlimit` we
    // pass, which lives on this stack frame for the whole call.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Whether connecting to `addr` is refused now (nothing listens there).
pub fn connect_refused(addr: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines_are_parsed() {
        let l =
            "2026-01-01T00:00:00Z INFO listener \"public\" listening on http://127.0.0.1:4321 (basic) -> rule \"r\"";
        assert_eq!(parse_listening(l), Some(("public".into(), "127.0.0.1:4321".parse().unwrap())));
        assert_eq!(parse_listening("nothing here"), None);
    }
}
