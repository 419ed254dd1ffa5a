//! Rewriting heads for the other side in one pass: connection-specific fields
//! dropped, forwarding fields added. Kept fields are copied as runs of whole
//! lines straight from the read buffer, so a typical head costs one or two
//! memcpys, not one per field.
//!
//! Framing is never copied. Content-Length and Transfer-Encoding (and Host)
//! are written from what the parser decided, so the next hop frames the body
//! exactly as ringgate did, whatever the sender put in those fields or named
//! in `Connection` (a `Connection: Content-Length` that made a proxy drop the
//! field while still forwarding the body is a classic smuggling vector).

use crate::head::{BodyKind, Header, HeaderKind};
use crate::request::RequestHead;
use crate::response::{ResponseCodings, ResponseHead};

/// Header fields to leave out of a rewritten head, by name (any case): the
/// ones a rewrite rule set sets or deletes.
#[derive(Clone, Copy)]
pub struct DropFields<'a>(pub &'a dyn Fn(&[u8]) -> bool);

impl std::fmt::Debug for DropFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DropFields(..)")
    }
}

/// What the gateway adds to a forwarded request. The forwarding fields are
/// Application Gateway's: X-Forwarded-For (the client as `ip:port`),
/// X-Forwarded-Proto, X-Forwarded-Port, X-Forwarded-Host, X-Original-Host
/// and X-Original-URL (the target as the client sent it, before any
/// normalization or rewrite), plus a W3C `traceparent`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardInfo<'a> {
    /// The client as text, `ip:port` (`[ip]:port` for IPv6), appended to
    /// X-Forwarded-For.
    pub client_ip: &'a [u8],
    /// The listener's port as text (X-Forwarded-Port); empty: not sent.
    pub port: &'a [u8],
    /// A `traceparent` value to send, replacing the client's (which is kept
    /// when this is `None`: the caller found it valid).
    pub traceparent: Option<&'a [u8]>,
    /// Whole header lines (`Name: value\r\n`) to add, from rewrite rules.
    pub extra: &'a [u8],
    /// Fields of the client's to leave out (those `extra` replaces or a
    /// rewrite deletes).
    pub drop: Option<DropFields<'a>>,
    /// `http` or `https`: the scheme the client used (X-Forwarded-Proto).
    pub proto: &'a [u8],
    /// Host sent instead of the client's (the settings' `host_name`).
    pub host_override: Option<&'a [u8]>,
    /// Host sent when the request has none (HTTP/1.0 without Host).
    pub fallback_host: &'a [u8],
    /// The target (path and query) sent instead of the client's: the
    /// normalized path a path rule matched, or an `override_backend_path`.
    pub target: Option<&'a [u8]>,
    /// The client is not a trusted proxy: its own X-Forwarded-For is left
    /// out, and the field names the client alone.
    pub drop_forwarded_for: bool,
}

fn write_content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Copies the kept header lines of `headers` as contiguous runs.
fn copy_kept(buf: &[u8], headers: &[Header], fields_end: usize, keep: impl Fn(&Header) -> bool, out: &mut Vec<u8>) {
    let line_end = |i: usize| headers.get(i + 1).map_or(fields_end, |h| h.name.start as usize);
    let mut run_start: Option<usize> = None;
    for (i, h) in headers.iter().enumerate() {
        if keep(h) {
            run_start.get_or_insert(h.name.start as usize);
        } else if let Some(s) = run_start.take() {
            out.extend_from_slice(&buf[s..h.name.start as usize]);
        }
        if i + 1 == headers.len()
            && let Some(s) = run_start.take()
        {
            out.extend_from_slice(&buf[s..line_end(i)]);
        }
    }
}

/// A path in origin-form: an absolute-form target's path may be empty or
/// start with the query (`http://h?q`), and origin-form needs the slash.
fn write_origin_path(path: &[u8], out: &mut Vec<u8>) {
    if path.first() != Some(&b'/') && path != b"*" {
        out.push(b'/');
    }
    out.extend_from_slice(path);
}

/// The value of the X-Forwarded-For sent on: the client's own list when
/// `keep_clients` (a trusted client), then `client` (`ip:port`). The
/// forwarded head and the `add_x_forwarded_for_proxy` variable both use it.
pub fn write_forwarded_for(buf: &[u8], head: &RequestHead, keep_clients: bool, client: &[u8], out: &mut Vec<u8>) {
    for h in head.headers.iter().filter(|h| keep_clients && h.kind == HeaderKind::XForwardedFor) {
        let v = h.value.of(buf);
        if !v.is_empty() {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(client);
}

/// Writes the head to send to the backend for the request in `buf`.
pub fn write_request_head(buf: &[u8], head: &RequestHead, info: &ForwardInfo<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method_span.of(buf));
    out.push(b' ');
    write_origin_path(info.target.unwrap_or_else(|| head.path.of(buf)), out);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    let host = match (info.host_override, head.host) {
        (Some(h), _) => h,
        (None, Some(h)) => h.of(buf),
        (None, None) => info.fallback_host,
    };
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");

    let upgrade = head.upgrade;
    let keep = |h: &Header| {
        !h.listed_in_connection
            && match h.kind {
                HeaderKind::Upgrade => upgrade,
                HeaderKind::Traceparent => info.traceparent.is_none(),
                // The gateway answers `Expect: 100-continue` itself; Host,
                // framing and the forwarding fields are written anew.
                HeaderKind::Host
                | HeaderKind::ContentLength
                | HeaderKind::TransferEncoding
                | HeaderKind::Expect
                | HeaderKind::XForwardedFor
                | HeaderKind::XForwardedProto
                | HeaderKind::XForwardedHost
                | HeaderKind::XForwardedPort
                | HeaderKind::XOriginalHost
                | HeaderKind::XOriginalUrl => false,
                k => !k.is_hop_by_hop(),
            }
            && info.drop.is_none_or(|d| !(d.0)(h.name.of(buf)))
    };
    copy_kept(buf, &head.headers, head.head_len - 2, keep, out);
    match (head.body, head.content_length) {
        (BodyKind::Chunked, _) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        // Content-Length: 0 is kept too: a POST without it may be refused
        // 411 by the server.
        (_, Some(n)) => write_content_length(out, n),
        _ => {}
    }

    out.extend_from_slice(b"X-Forwarded-For: ");
    write_forwarded_for(buf, head, !info.drop_forwarded_for, info.client_ip, out);
    out.extend_from_slice(b"\r\nX-Forwarded-Proto: ");
    out.extend_from_slice(info.proto);
    out.extend_from_slice(b"\r\n");
    if !info.port.is_empty() {
        out.extend_from_slice(b"X-Forwarded-Port: ");
        out.extend_from_slice(info.port);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(h) = head.host {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(h.of(buf));
        out.extend_from_slice(b"\r\nX-Original-Host: ");
        out.extend_from_slice(h.of(buf));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"X-Original-URL: ");
    write_origin_path(head.path.of(buf), out);
    out.extend_from_slice(b"\r\n");
    if let Some(t) = info.traceparent {
        out.extend_from_slice(b"traceparent: ");
        out.extend_from_slice(t);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(info.extra);
    if upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The response's framing fields, from what the parser decided. 1xx and 204
/// carry none (RFC 9110 §8.6, RFC 9112 §6.1); a HEAD or 304 response keeps
/// the length or coding the full response would have had; a de-chunked body
/// (for an HTTP/1.0 client) is delimited by the close.
fn write_response_framing(buf: &[u8], head: &ResponseHead, rw: &ResponseRewrite<'_>, out: &mut Vec<u8>) {
    if head.status < 200 || head.status == 204 || rw.dechunk {
        return;
    }
    match head.transfer_encoding {
        ResponseCodings::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        ResponseCodings::Other => {
            // The codings as the backend listed them (they end in chunked,
            // or the body ends at the close): one field, values joined.
            out.extend_from_slice(b"Transfer-Encoding: ");
            let values = head.headers.iter().filter(|h| h.kind == HeaderKind::TransferEncoding);
            for (i, h) in values.enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(h.value.of(buf));
            }
            out.extend_from_slice(b"\r\n");
        }
        ResponseCodings::Absent => {
            if let Some(n) = head.content_length {
                write_content_length(out, n);
            }
        }
    }
}

/// How a response head is adapted for the client.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseRewrite<'a> {
    /// The gateway closes the client connection after this response.
    pub close: bool,
    /// An HTTP/1.0 client is kept alive: say so, as 1.0 closes by default.
    pub keep_alive: bool,
    /// The body is de-chunked (for an HTTP/1.0 client): drop Transfer-Encoding.
    pub dechunk: bool,
    /// A 101 to an upgrade request: pass Upgrade and `Connection: upgrade`.
    pub upgrade: bool,
    /// Whole `Set-Cookie: ...\r\n` lines to add (affinity: one cookie, or
    /// two on https listeners).
    pub set_cookie: Option<&'a [u8]>,
    /// Whole header lines to add, from rewrite rules.
    pub extra: &'a [u8],
    /// Fields of the backend's to leave out (replaced or deleted by rules).
    pub drop: Option<DropFields<'a>>,
}

/// Writes the head to send to the client for the response in `buf`.
pub fn write_response_head(buf: &[u8], head: &ResponseHead, rw: &ResponseRewrite<'_>, out: &mut Vec<u8>) {
    // The gateway speaks its own version (RFC 9110 §6.2), whatever the
    // backend's; the rest of the status line is the backend's.
    out.extend_from_slice(b"HTTP/1.1");
    out.extend_from_slice(&buf[head.status_line.start as usize + 8..head.status_line.end as usize]);
    out.extend_from_slice(b"\r\n");
    let keep = |h: &Header| {
        !h.listed_in_connection
            && match h.kind {
                HeaderKind::Upgrade => rw.upgrade,
                HeaderKind::TransferEncoding | HeaderKind::ContentLength => false,
                k => !k.is_hop_by_hop(),
            }
            && rw.drop.is_none_or(|d| !(d.0)(h.name.of(buf)))
    };
    copy_kept(buf, &head.headers, head.head_len - 2, keep, out);
    write_response_framing(buf, head, rw, out);
    out.extend_from_slice(rw.extra);
    if let Some(lines) = rw.set_cookie {
        out.extend_from_slice(lines);
    }
    if rw.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if rw.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if rw.keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ParseLimits, Parsed, parse_request, parse_response};

    fn req(raw: &[u8]) -> RequestHead {
        let mut h = RequestHead::default();
        assert!(matches!(parse_request(raw, &ParseLimits::default(), &mut h), Ok(Parsed::Complete(_))));
        h
    }

    const INFO: ForwardInfo<'static> = ForwardInfo {
        client_ip: b"10.9.8.7",
        proto: b"http",
        host_override: None,
        fallback_host: b"10.0.0.1:80",
        target: None,
        port: b"",
        traceparent: None,
        extra: b"",
        drop: None,
        drop_forwarded_for: false,
    };

    fn rewrite(raw: &[u8], info: &ForwardInfo<'_>) -> String {
        let h = req(raw);
        let mut out = Vec::new();
        write_request_head(raw, &h, info, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_untrusted_clients_forwarded_for_is_replaced() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
        let out = rewrite(raw, &ForwardInfo { drop_forwarded_for: true, ..INFO });
        assert!(out.contains("\r\nX-Forwarded-For: 10.9.8.7\r\n") && !out.contains("6.6.6.6"), "{out}");
    }

    #[test]
    fn request_drops_hop_by_hop_and_adds_forwarding() {
        let raw = b"GET /a?b=1 HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\nX-Secret: s\r\nTE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-Proto: https\r\nUser-Agent: t\r\n\r\n";
        assert_eq!(
            rewrite(raw, &INFO),
            "GET /a?b=1 HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\nUser-Agent: t\r\nX-Forwarded-For: 1.1.1.1, 10.9.8.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: shop.example\r\nX-Original-Host: shop.example\r\nX-Original-URL: /a?b=1\r\n\r\n"
        );
    }

    #[test]
    fn request_host_override_and_absolute_form() {
        let info = ForwardInfo { host_override: Some(b"app.internal"), ..INFO };
        let raw = b"GET http://Shop.example:8080 HTTP/1.1\r\nHost: ignored\r\n\r\n";
        assert_eq!(
            rewrite(raw, &info),
            "GET / HTTP/1.1\r\nHost: app.internal\r\nX-Forwarded-For: 10.9.8.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: Shop.example:8080\r\nX-Original-Host: Shop.example:8080\r\nX-Original-URL: /\r\n\r\n"
        );
    }

    #[test]
    fn forwarding_fields_as_application_gateway_sends_them() {
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let drop_x = |n: &[u8]| n.eq_ignore_ascii_case(b"x-drop");
        let info = ForwardInfo {
            client_ip: b"10.9.8.7:5555",
            port: b"8080",
            traceparent: Some(tp),
            extra: b"X-Added: 1\r\n",
            drop: Some(DropFields(&drop_x)),
            target: Some(b"/rewritten?q=1"),
            ..INFO
        };
        let raw = b"GET /orig?a HTTP/1.1\r\nHost: h\r\nX-Drop: x\r\ntraceparent: junk\r\nX-Forwarded-Port: 1\r\nX-Original-URL: /spoofed\r\nX-Original-Host: spoofed\r\nKeep: k\r\n\r\n";
        assert_eq!(
            rewrite(raw, &info),
            "GET /rewritten?q=1 HTTP/1.1\r\nHost: h\r\nKeep: k\r\nX-Forwarded-For: 10.9.8.7:5555\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 8080\r\nX-Forwarded-Host: h\r\nX-Original-Host: h\r\nX-Original-URL: /orig?a\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Added: 1\r\n\r\n"
        );
        // A valid traceparent of the client's is kept as it is.
        let keep = ForwardInfo { traceparent: None, ..info };
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n";
        assert_eq!(rewrite(raw, &keep).matches("traceparent").count(), 1);
    }

    #[test]
    fn http10_without_host_gets_the_fallback() {
        let raw = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(
            rewrite(raw, &INFO),
            "GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\nX-Forwarded-For: 10.9.8.7\r\nX-Forwarded-Proto: http\r\nX-Original-URL: /\r\n\r\n"
        );
    }

    #[test]
    fn repeated_content_length_is_forwarded_once() {
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\nX: y\r\nContent-Length: 3\r\n\r\nabc";
        let out = rewrite(raw, &INFO);
        assert_eq!(out.matches("Content-Length").count(), 1, "{out}");
        assert!(out.contains("X: y\r\nContent-Length: 3\r\n"), "{out}");
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok";
        let out = resp_text(resp);
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
    }

    /// The repro: `Connection: Content-Length` once made the
    /// field vanish while the body was still forwarded, so the body's bytes
    /// were parsed by the server as a second request.
    #[test]
    fn framing_named_in_connection_is_written_from_the_parse() {
        let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
        for conn in ["Content-Length", "close, Content-Length", "content-length, Host", "Host"] {
            let raw = format!("POST / HTTP/1.1\r\nHost: t\r\nConnection: {conn}\r\nContent-Length: 35\r\n\r\n");
            assert_eq!(
                rewrite(raw.as_bytes(), &INFO),
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 35\r\nX-Forwarded-For: 10.9.8.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: t\r\nX-Original-Host: t\r\nX-Original-URL: /\r\n\r\n",
                "Connection: {conn}"
            );
        }
        assert_eq!(smuggled.len(), 35);
        let raw = b"POST / HTTP/1.1\r\nHost: t\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            rewrite(raw, &INFO),
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 10.9.8.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: t\r\nX-Original-Host: t\r\nX-Original-URL: /\r\n\r\n"
        );
        // The client's spelling is never what is forwarded.
        let raw = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:  CHUNKED\t\r\nA: b\r\n\r\n";
        assert!(rewrite(raw, &INFO).contains("A: b\r\nTransfer-Encoding: chunked\r\n"));
        let raw = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 007\r\n\r\n";
        assert!(rewrite(raw, &INFO).contains("\r\nContent-Length: 7\r\n"));
        let raw = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
        assert!(rewrite(raw, &INFO).contains("\r\nContent-Length: 0\r\n"));
    }

    #[test]
    fn response_framing_is_written_from_the_parse() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
        assert_eq!(resp_text(raw), "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\n");
        let raw = b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(resp_text(raw), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(resp_text(raw), "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        // No framing on 1xx and 204; HEAD and 304 keep the full response's.
        let raw = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(resp_text(raw), "HTTP/1.1 204 No Content\r\n\r\n");
        let raw = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(resp_text(raw), "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n");
    }

    fn resp_text(raw: &[u8]) -> String {
        resp(raw, &ResponseRewrite::default())
    }

    #[test]
    fn upgrade_requests_keep_upgrade() {
        let raw =
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
        let out = rewrite(raw, &INFO);
        assert!(out.contains("\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n"), "{out}");
        assert!(out.ends_with("Connection: upgrade\r\n\r\n"), "{out}");
    }

    fn resp(raw: &[u8], rw: &ResponseRewrite<'_>) -> String {
        let mut h = ResponseHead::default();
        assert!(matches!(parse_response(raw, 16384, 100, false, &mut h), Ok(Parsed::Complete(_))));
        let mut out = Vec::new();
        write_response_head(raw, &h, rw, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn response_rewrites() {
        let raw = b"HTTP/1.0 200 OK\r\nServer: nginx\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(
            resp(raw, &ResponseRewrite::default()),
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\n"
        );
        let rw =
            ResponseRewrite { close: true, set_cookie: Some(b"Set-Cookie: A=b; Path=/\r\n"), ..Default::default() };
        assert_eq!(
            resp(raw, &rw),
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\nSet-Cookie: A=b; Path=/\r\nConnection: close\r\n\r\n"
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n";
        let rw = ResponseRewrite { dechunk: true, close: true, ..Default::default() };
        assert_eq!(resp(chunked, &rw), "HTTP/1.1 200 OK\r\nX: y\r\nConnection: close\r\n\r\n");
        let rw = ResponseRewrite { keep_alive: true, ..Default::default() };
        assert_eq!(
            resp(b"HTTP/1.1 204 No Content\r\n\r\n", &rw),
            "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"
        );
    }
}
