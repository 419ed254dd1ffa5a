//! The binary as `ringgate demo` and the end-to-end suite start it: one
//! `listening on ADDR` line on stdout, then HTTP on that address.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the backend process however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> (Running, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringgate-testbackend"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ringgate-testbackend");
    let stdout = child.stdout.take().expect("piped stdout");
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read first line");
    let addr =
        line.trim_end().strip_prefix("listening on ").expect("`listening on ADDR` line").parse().expect("address");
    (running, addr)
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn binary_prints_its_address_and_serves_the_configured_answers() {
    let (_running, addr) = start(&["--name", "cli", "--body-bytes", "4", "--health-status", "503"]);
    assert!(addr.ip().is_loopback());
    let ok = get(addr, "/");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains("\r\nx-backend: cli\r\n"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nabcd"), "{ok}");
    let health = get(addr, "/health");
    assert!(health.starts_with("HTTP/1.1 503 "), "{health}");
}

#[test]
fn binary_applies_the_mode_flags() {
    let (_running, addr) = start(&["--mode", "status", "--status", "502"]);
    assert!(get(addr, "/").starts_with("HTTP/1.1 502 "));
    let (_running, addr) = start(&["--mode", "garbage"]);
    assert_eq!(get(addr, "/"), "this is not http\r\n\r\n");
}

#[test]
fn binary_rejects_an_unknown_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringgate-testbackend"))
        .args(["--mode", "sideways"])
        .output()
        .expect("run ringgate-testbackend");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mode `sideways`"));
    assert!(out.stdout.is_empty());
}
