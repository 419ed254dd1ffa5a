//! Applying a target's rewrite rule set: the server variables a set's
//! conditions and values read ([`RequestVars`]), and turning its edits into
//! what the head writers take (extra header lines, the fields to leave out,
//! a new target). Nothing here runs for a target without a rule set, and a
//! set whose rules do not match leaves the heads exactly as they were.

use std::cell::OnceCell;

use ringgate_http::path::split_query;
use ringgate_http::{HeaderKind, RequestHead, ResponseHead, Version};
use ringgate_rewrite::{CertField, Edits, Variable, Vars};

/// The request (and, in the response phase, the response) as a rule set
/// sees it. `ringgate route` uses it too, over the head it builds, so that
/// what it says a rule set does is what the data plane does.
#[derive(Debug)]
pub struct RequestVars<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    /// The target as it will be forwarded when routing changed it (a
    /// normalized path, `override_backend_path`); else the client's.
    pub forwarded_target: Option<&'a [u8]>,
    pub client_ip: &'a [u8],
    pub client_port: &'a [u8],
    pub server_port: &'a [u8],
    pub scheme: &'a [u8],
    pub response: Option<(&'a [u8], &'a ResponseHead)>,
    /// The client connection's TLS parameters (`ssl_connection_protocol`,
    /// `ciphers_used`).
    pub tls: Option<ringgate_tls::TlsInfo>,
    /// The client's own X-Forwarded-For is kept in
    /// `add_x_forwarded_for_proxy` (see `trusted_proxies`).
    pub keep_forwarded_for: bool,
    /// The connection's client certificate (mutual TLS).
    pub client_cert: Option<&'a ringgate_tls::ClientCert>,
    status: [u8; 3],
    xff: OnceCell<Vec<u8>>,
}

impl<'a> RequestVars<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        buf: &'a [u8],
        head: &'a RequestHead,
        forwarded_target: Option<&'a [u8]>,
        client_ip: &'a [u8],
        client_port: &'a [u8],
        server_port: &'a [u8],
        scheme: &'a [u8],
        response: Option<(&'a [u8], &'a ResponseHead)>,
    ) -> Self {
        let mut status = [b'0'; 3];
        if let Some((_, r)) = response {
            let s = r.status.min(999);
            status = [b'0' + (s / 100) as u8, b'0' + (s / 10 % 10) as u8, b'0' + (s % 10) as u8];
        }
        RequestVars {
            buf,
            head,
            forwarded_target,
            client_ip,
            client_port,
            server_port,
            scheme,
            response,
            tls: None,
            keep_forwarded_for: true,
            client_cert: None,
            status,
            xff: OnceCell::new(),
        }
    }

    /// The same variables, with what the client connection adds.
    pub fn of_connection(
        mut self,
        tls: Option<ringgate_tls::TlsInfo>,
        keep_forwarded_for: bool,
        client_cert: Option<&'a ringgate_tls::ClientCert>,
    ) -> Self {
        self.tls = tls;
        self.keep_forwarded_for = keep_forwarded_for;
        self.client_cert = client_cert;
        self
    }

    fn target(&self) -> &'a [u8] {
        self.forwarded_target.unwrap_or_else(|| self.head.path.of(self.buf))
    }

    fn request_header(&self, lower: &str) -> Option<&'a [u8]> {
        let buf = self.buf;
        self.head
            .headers
            .iter()
            .find(|h| h.name.of(buf).eq_ignore_ascii_case(lower.as_bytes()))
            .map(|h| h.value.of(buf))
    }
}

impl Vars for RequestVars<'_> {
    fn var(&self, v: &Variable) -> Option<&[u8]> {
        let buf = self.buf;
        match v {
            Variable::ClientIp => Some(self.client_ip),
            Variable::ClientPort => Some(self.client_port),
            Variable::ServerPort => Some(self.server_port),
            Variable::RequestScheme => Some(self.scheme),
            Variable::SslEnabled => (self.scheme == b"https").then_some(b"on"),
            Variable::SslConnectionProtocol => self.tls.map(|t| t.protocol.as_bytes()),
            Variable::CiphersUsed => self.tls.map(|t| t.cipher.as_bytes()),
            Variable::ClientCertificate(field) => {
                let c = self.client_cert?;
                let v = match field {
                    CertField::Verification => return Some(c.verification.as_bytes()),
                    CertField::Pem => &c.escaped_pem,
                    CertField::EndDate => &c.end_date,
                    CertField::Fingerprint => &c.fingerprint,
                    CertField::Issuer => &c.issuer,
                    CertField::Serial => &c.serial,
                    CertField::StartDate => &c.start_date,
                    CertField::Subject => &c.subject,
                };
                (!v.is_empty()).then_some(v.as_bytes())
            }
            Variable::Host => self.head.host.map(|h| crate::route::strip_port(h.of(buf))),
            Variable::HttpMethod => Some(self.head.method_span.of(buf)),
            Variable::HttpVersion => Some(match self.head.version {
                Version::Http11 => b"HTTP/1.1",
                Version::Http10 => b"HTTP/1.0",
            }),
            Variable::UriPath => Some(split_query(self.target()).0),
            Variable::QueryString => split_query(self.target()).1,
            Variable::RequestUri => Some(self.head.target.of(buf)),
            Variable::AddXForwardedForProxy => Some(self.xff.get_or_init(|| {
                let mut out = Vec::new();
                ringgate_http::write_forwarded_for(buf, self.head, self.keep_forwarded_for, self.client_ip, &mut out);
                out
            })),
            Variable::Cookie(name) => self
                .head
                .headers
                .iter()
                .filter(|h| h.kind == HeaderKind::Cookie)
                .find_map(|h| ringgate_rewrite::cookie_value(h.value.of(buf), name)),
            Variable::RequestHeader(lower) => self.request_header(lower),
            Variable::HttpStatus => self.response.map(|_| &self.status[..]),
            Variable::ResponseHeader(lower) => {
                let (rbuf, r) = self.response?;
                r.headers
                    .iter()
                    .find(|h| h.name.of(rbuf).eq_ignore_ascii_case(lower.as_bytes()))
                    .map(|h| h.value.of(rbuf))
            }
        }
    }
}

/// Writes the header lines the edits set (`Name: value\r\n`) into `out`,
/// and returns the Host value a request edit sets (sent as Host, not as an
/// extra line).
pub(crate) fn extra_lines<'e>(edits: &'e Edits, out: &mut Vec<u8>) -> Option<&'e [u8]> {
    let mut host = None;
    for e in edits.headers() {
        let Some(value) = e.value else { continue };
        if e.name_lower == "host" {
            host = Some(value);
            continue;
        }
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    host
}

/// The target after the edits' URL rewrite of `current` (path and query
/// as they would be forwarded), or `None` when the edits leave the URL.
pub fn rewritten_target(edits: &Edits, current: &[u8]) -> Option<Vec<u8>> {
    if edits.path().is_none() && edits.query().is_none() {
        return None;
    }
    let (path, query) = split_query(current);
    let mut out = Vec::with_capacity(current.len() + 16);
    out.extend_from_slice(edits.path().unwrap_or(path));
    match (edits.query(), query) {
        (Some(q), _) if !q.is_empty() => {
            out.push(b'?');
            out.extend_from_slice(q);
        }
        (Some(_), _) => {}
        (None, Some(q)) => {
            out.push(b'?');
            out.extend_from_slice(q);
        }
        (None, None) => {}
    }
    Some(out)
}
