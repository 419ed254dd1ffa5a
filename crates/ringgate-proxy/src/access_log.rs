//! The access log: one JSON line per request. Workers format lines into a
//! local buffer and hand full buffers to a writer thread over a bounded
//! channel; if the writer falls behind, lines are dropped and counted rather
//! than letting a slow disk stall the request path.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use ringgate_http::ErrorCode;

/// Buffers are handed over once this large (or on the worker's tick).
pub(crate) const FLUSH_AT: usize = 32 * 1024;

/// What the writer thread is handed.
#[derive(Debug)]
enum Msg {
    Lines(Vec<u8>),
    /// Open the file again (after logrotate renamed it: SIGUSR1).
    Reopen,
    Stop,
}

/// The writer side, shared by the workers.
#[derive(Debug)]
pub struct AccessLog {
    tx: Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Where lines go, and how to open it again.
enum Sink {
    Stdout(io::Stdout),
    File(std::path::PathBuf, std::fs::File),
}

impl Sink {
    fn open_file(p: &std::path::Path) -> io::Result<std::fs::File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", p.display())))
    }

    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(s) => s,
            Sink::File(_, f) => f,
        }
    }
}

impl AccessLog {
    /// Opens the configured destination; `None` when logging is off.
    pub(crate) fn open(dest: &ringgate_config::AccessLog) -> io::Result<Option<AccessLog>> {
        let out = match dest {
            ringgate_config::AccessLog::Off => return Ok(None),
            ringgate_config::AccessLog::Stdout => Sink::Stdout(io::stdout()),
            ringgate_config::AccessLog::File(p) => Sink::File(p.clone(), Sink::open_file(p)?),
        };
        let (tx, rx) = crossbeam_channel::bounded::<Msg>(256);
        let thread = std::thread::Builder::new().name("ringgate-log".into()).spawn(move || write_loop(rx, out))?;
        Ok(Some(AccessLog { tx, thread: Mutex::new(Some(thread)) }))
    }

    /// Hands a full buffer to the writer; false if it had to be dropped.
    pub(crate) fn submit(&self, buf: Vec<u8>) -> bool {
        match self.tx.try_send(Msg::Lines(buf)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Has the writer open its file again, after the lines already handed
    /// over: what logrotate's `postrotate` asks with SIGUSR1, as of nginx.
    pub fn reopen(&self) {
        let _ = self.tx.send_timeout(Msg::Reopen, Duration::from_secs(2));
    }

    /// Sends the stop mark and waits for the writer.
    pub(crate) fn flush_and_stop(&self) {
        let _ = self.tx.send_timeout(Msg::Stop, Duration::from_secs(2));
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn write_loop(rx: Receiver<Msg>, mut sink: Sink) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Stop => break,
            Msg::Reopen => {
                let _ = sink.out().flush();
                if let Sink::File(path, file) = &mut sink {
                    match Sink::open_file(path) {
                        Ok(f) => {
                            *file = f;
                            tracing::info!("access log {} reopened", path.display());
                        }
                        // Keep writing to the old file rather than lose lines.
                        Err(e) => tracing::error!("access log not reopened, still writing the old file: {e}"),
                    }
                }
            }
            Msg::Lines(buf) => {
                if sink.out().write_all(&buf).is_err() {
                    // Nowhere to report it but stderr; keep draining so workers never block.
                    eprintln!("ringgate: access log write failed; lines are being lost");
                }
                if rx.is_empty() {
                    let _ = sink.out().flush();
                }
            }
        }
    }
    let _ = sink.out().flush();
}

/// One request, as logged.
#[derive(Debug)]
pub(crate) struct LogRecord<'a> {
    pub time: SystemTime,
    pub client: SocketAddr,
    pub listener: &'a str,
    pub rule: &'a str,
    pub host: &'a [u8],
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub status: u16,
    pub server: &'a str,
    pub backend_status: Option<u16>,
    pub connect_time: Option<Duration>,
    pub response_time: Option<Duration>,
    pub total: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub error: Option<ErrorCode>,
    /// The W3C trace id the request was forwarded with (empty: none).
    pub trace_id: &'a [u8],
    /// The client's User-Agent (empty: none), at most 512 bytes.
    pub user_agent: &'a [u8],
    /// The client's X-Request-ID (empty: none; the trace id identifies
    /// the request then), at most 128 bytes.
    pub request_id: &'a [u8],
    /// The full text of a gateway error (empty: none), whatever the client
    /// was shown (`error_detail`).
    pub detail: &'a str,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    pub protocol: &'static str,
    /// The HTTP/2 stream id (none for HTTP/1).
    pub stream: Option<u32>,
    /// The TLS protocol and cipher suite of an `https` connection.
    pub tls: Option<ringgate_tls::TlsInfo>,
    /// The target's backend pool and settings (empty: no target).
    pub pool: &'a str,
    pub settings: &'a str,
}

impl LogRecord<'_> {
    /// The client's X-Request-ID, else the trace id (both formats' request
    /// identity).
    fn request_id(&self) -> &[u8] {
        if self.request_id.is_empty() { self.trace_id } else { self.request_id }
    }
}

fn json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
        }
    }
    out.push(b'"');
}

fn json_ms(out: &mut Vec<u8>, d: Option<Duration>) {
    match d {
        Some(d) => {
            let us = d.as_micros();
            out.extend_from_slice(itoa::Buffer::new().format(us / 1000).as_bytes());
            let _ = write!(out, ".{:03}", us % 1000);
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `r` as one JSON line.
pub(crate) fn format_line(out: &mut Vec<u8>, r: &LogRecord<'_>) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"{\"time\":\"");
    let _ = write!(out, "{}\",\"client\":\"{}\"", humantime::format_rfc3339_millis(r.time), r.client);
    out.extend_from_slice(b",\"listener\":");
    json_str(out, r.listener.as_bytes());
    out.extend_from_slice(b",\"rule\":");
    json_str(out, r.rule.as_bytes());
    out.extend_from_slice(b",\"host\":");
    json_str(out, r.host);
    out.extend_from_slice(b",\"method\":");
    json_str(out, r.method);
    out.extend_from_slice(b",\"path\":");
    json_str(out, r.path);
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(num.format(r.status).as_bytes());
    out.extend_from_slice(b",\"backend\":");
    json_str(out, r.server.as_bytes());
    out.extend_from_slice(b",\"backend_status\":");
    match r.backend_status {
        Some(s) => out.extend_from_slice(num.format(s).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"backend_connect_ms\":");
    json_ms(out, r.connect_time);
    out.extend_from_slice(b",\"backend_response_ms\":");
    json_ms(out, r.response_time);
    out.extend_from_slice(b",\"total_ms\":");
    json_ms(out, Some(r.total));
    out.extend_from_slice(b",\"bytes_in\":");
    out.extend_from_slice(num.format(r.bytes_in).as_bytes());
    out.extend_from_slice(b",\"bytes_out\":");
    out.extend_from_slice(num.format(r.bytes_out).as_bytes());
    out.extend_from_slice(b",\"error_info\":\"");
    if let Some(e) = r.error {
        out.extend_from_slice(e.as_str().as_bytes());
    }
    out.extend_from_slice(b"\",\"appgw_error_info\":\"");
    out.extend_from_slice(appgw_error_info(r).as_bytes());
    out.extend_from_slice(b"\",\"trace_id\":");
    json_str(out, r.trace_id);
    out.extend_from_slice(b",\"user_agent\":");
    json_str(out, r.user_agent);
    out.extend_from_slice(b",\"request_id\":");
    json_str(out, r.request_id());
    if !r.detail.is_empty() {
        out.extend_from_slice(b",\"error_detail\":");
        json_str(out, r.detail.as_bytes());
    }
    out.extend_from_slice(b",\"protocol\":\"");
    out.extend_from_slice(r.protocol.as_bytes());
    out.push(b'"');
    if let Some(id) = r.stream {
        out.extend_from_slice(b",\"stream\":");
        out.extend_from_slice(num.format(id).as_bytes());
    }
    match r.tls {
        Some(t) => {
            let _ = write!(out, ",\"tls_protocol\":\"{}\",\"tls_cipher\":\"{}\"", t.protocol, t.cipher);
        }
        None => out.extend_from_slice(b",\"tls_protocol\":null,\"tls_cipher\":null"),
    }
    out.extend_from_slice(b"}\n");
}

/// `error_info` as Application Gateway v2 writes it.
fn appgw_error_info(r: &LogRecord<'_>) -> &'static str {
    match r.error {
        None => "ERRORINFO_NO_ERROR",
        Some(code) => code.appgw_error_info(r.detail).unwrap_or(code.as_str()),
    }
}

fn json_secs(out: &mut Vec<u8>, d: Duration) {
    let us = d.as_micros();
    let _ = write!(out, "{}.{:06}", us / 1_000_000, us % 1_000_000);
}

/// Appends `r` as one JSON line in Application Gateway v2's access log
/// shape (`access_log_format = "appgw"`): the diagnostic record's envelope
/// and its `properties`, with v2's field names and types (`serverStatus`
/// and `serverResponseLatency` are strings there, `-` without a server).
pub(crate) fn format_appgw_line(out: &mut Vec<u8>, r: &LogRecord<'_>) {
    let mut num = itoa::Buffer::new();
    let _ = write!(
        out,
        "{{\"timeStamp\":\"{}\",\"operationName\":\"ApplicationGatewayAccess\",\"category\":\"ApplicationGatewayAccessLog\",\"properties\":{{",
        humantime::format_rfc3339_millis(r.time)
    );
    let _ = write!(out, "\"clientIP\":\"{}\",\"clientPort\":{}", r.client.ip(), r.client.port());
    out.extend_from_slice(b",\"httpMethod\":");
    json_str(out, r.method);
    let (path, query) = ringgate_http::path::split_query(r.path);
    let query = query.unwrap_or_default();
    out.extend_from_slice(b",\"requestUri\":");
    json_str(out, path);
    out.extend_from_slice(b",\"requestQuery\":");
    json_str(out, query);
    out.extend_from_slice(b",\"originalRequestUriWithArgs\":");
    json_str(out, r.path);
    out.extend_from_slice(b",\"userAgent\":");
    json_str(out, r.user_agent);
    out.extend_from_slice(b",\"httpStatus\":");
    out.extend_from_slice(num.format(r.status).as_bytes());
    let _ = write!(out, ",\"httpVersion\":\"{}\"", r.protocol);
    out.extend_from_slice(b",\"receivedBytes\":");
    out.extend_from_slice(num.format(r.bytes_in).as_bytes());
    out.extend_from_slice(b",\"sentBytes\":");
    out.extend_from_slice(num.format(r.bytes_out).as_bytes());
    out.extend_from_slice(b",\"timeTaken\":");
    json_secs(out, r.total);
    let _ = write!(out, ",\"sslEnabled\":\"{}\"", if r.tls.is_some() { "on" } else { "off" });
    let (cipher, protocol) = r.tls.map_or(("", ""), |t| (t.cipher, t.protocol));
    let _ = write!(out, ",\"sslCipher\":\"{cipher}\",\"sslProtocol\":\"{protocol}\"");
    out.extend_from_slice(b",\"serverRouted\":");
    json_str(out, if r.server.is_empty() { b"-" } else { r.server.as_bytes() });
    out.extend_from_slice(b",\"serverStatus\":\"");
    match r.backend_status {
        Some(s) => out.extend_from_slice(num.format(s).as_bytes()),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b"\",\"serverResponseLatency\":\"");
    match r.response_time {
        Some(d) => json_secs(out, d),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b"\",\"host\":");
    json_str(out, r.host);
    out.extend_from_slice(b",\"originalHost\":");
    json_str(out, r.host);
    let _ = write!(out, ",\"error_info\":\"{}\"", appgw_error_info(r));
    out.extend_from_slice(b",\"transactionId\":");
    json_str(out, r.request_id());
    out.extend_from_slice(b",\"ruleName\":");
    json_str(out, r.rule.as_bytes());
    out.extend_from_slice(b",\"listenerName\":");
    json_str(out, r.listener.as_bytes());
    out.extend_from_slice(b",\"backendPoolName\":");
    json_str(out, r.pool.as_bytes());
    out.extend_from_slice(b",\"backendSettingName\":");
    json_str(out, r.settings.as_bytes());
    // ringgate's own code, which v2's names do not always tell apart.
    out.extend_from_slice(b",\"ringgateError\":\"");
    if let Some(e) = r.error {
        out.extend_from_slice(e.as_str().as_bytes());
    }
    out.extend_from_slice(b"\"}}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let mut out = Vec::new();
        format_line(
            &mut out,
            &LogRecord {
                time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                client: "127.0.0.1:5555".parse().unwrap(),
                listener: "public",
                rule: "rule01",
                host: b"shop.example",
                method: b"GET",
                path: b"/a\"b\x01",
                status: 502,
                server: "10.0.0.1:80",
                backend_status: None,
                connect_time: Some(Duration::from_micros(1500)),
                response_time: None,
                total: Duration::from_micros(2001),
                bytes_in: 40,
                bytes_out: 200,
                error: Some(ErrorCode::Timeout),
                trace_id: b"4bf92f3577b34da6a3ce929d0e0e4736",
                detail: "",
                user_agent: b"curl/8",
                request_id: b"",
                protocol: "HTTP/2",
                tls: Some(ringgate_tls::TlsInfo { protocol: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256" }),
                pool: "pool01",
                settings: "setting01",
                stream: Some(7),
            },
        );
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "{\"time\":\"2023-11-14T22:13:20.123Z\",\"client\":\"127.0.0.1:5555\",\"listener\":\"public\",\"rule\":\"rule01\",\"host\":\"shop.example\",\"method\":\"GET\",\"path\":\"/a\\\"b\\u0001\",\"status\":502,\"backend\":\"10.0.0.1:80\",\"backend_status\":null,\"backend_connect_ms\":1.500,\"backend_response_ms\":null,\"total_ms\":2.001,\"bytes_in\":40,\"bytes_out\":200,\"error_info\":\"TIMEOUT\",\"appgw_error_info\":\"ERRORINFO_UPSTREAM_TIMED_OUT\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"user_agent\":\"curl/8\",\"request_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"protocol\":\"HTTP/2\",\"stream\":7,\"tls_protocol\":\"TLSv1.3\",\"tls_cipher\":\"TLS_AES_128_GCM_SHA256\"}\n"
        );
    }
}
