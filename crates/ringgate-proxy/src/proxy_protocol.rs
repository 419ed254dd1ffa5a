//! The PROXY protocol (HAProxy's; v1 text and v2 binary, parsed by the `ppp`
//! crate) on `proxy_protocol` listeners: a TCP load balancer in front of the
//! gateway opens each connection with a header giving the client's address,
//! which then stands for the connection's peer everywhere (X-Forwarded-For,
//! the access log, affinity).

use std::net::{IpAddr, SocketAddr};

use ppp::{HeaderResult, PartialResult, v1, v2};

/// A v2 header may carry up to 64 KiB of TLVs; load balancers send well under
/// this (AWS's and HAProxy's carry at most a few hundred bytes), and a header
/// still incomplete past it is refused rather than buffered.
pub(crate) const MAX_HEADER: usize = 4096;

/// A complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProxyHeader {
    /// Its length: the connection's own bytes start after it.
    pub len: usize,
    /// The client's address; `None` for a `LOCAL` command (the balancer's own
    /// health check), `UNKNOWN` and non-IP families, where the connection's
    /// own peer stands.
    pub source: Option<SocketAddr>,
}

/// `Ok(None)`: more bytes are needed. `Err`: the connection does not start
/// with a PROXY header, said in words for the log.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<ProxyHeader>, String> {
    // By its first byte (v2's signature starts with CR, v1 with `P`), so a
    // bad v2 header is reported as such, not as "not v1" (what ppp's
    // combined parser would say after falling back).
    let result: HeaderResult<'_> =
        if buf.first() == Some(&b'\r') { v2::Header::try_from(buf).into() } else { v1::Header::try_from(buf).into() };
    if result.is_incomplete() {
        return if buf.len() >= MAX_HEADER {
            Err(format!("no complete PROXY protocol header within {MAX_HEADER} bytes"))
        } else {
            Ok(None)
        };
    }
    let ip = |a: IpAddr, port: u16| Some(SocketAddr::new(a, port));
    match result {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                v1::Addresses::Tcp4(a) => ip(a.source_address.into(), a.source_port),
                v1::Addresses::Tcp6(a) => ip(a.source_address.into(), a.source_port),
                v1::Addresses::Unknown => None,
            };
            Ok(Some(ProxyHeader { len: h.header.len(), source }))
        }
        HeaderResult::V2(Ok(h)) => {
            let source = match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => ip(a.source_address.into(), a.source_port),
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => ip(a.source_address.into(), a.source_port),
                (v2::Command::Proxy, _) => None,
            };
            Ok(Some(ProxyHeader { len: h.len(), source }))
        }
        HeaderResult::V1(Err(e)) => Err(if buf.starts_with(b"PROXY") {
            format!("invalid PROXY protocol v1 header: {e}")
        } else {
            "the connection does not start with a PROXY protocol header (proxy_protocol = true on this listener)"
                .to_string()
        }),
        HeaderResult::V2(Err(e)) => Err(format!("invalid PROXY protocol v2 header: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

    fn v2_tcp4(src: [u8; 4], sport: u16, tlvs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x21); // version 2, PROXY
        h.push(0x11); // TCP over IPv4
        h.extend_from_slice(&(12 + tlvs.len() as u16).to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&[10, 0, 0, 1]);
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&443u16.to_be_bytes());
        h.extend_from_slice(tlvs);
        h
    }

    #[test]
    fn v1_gives_the_source_and_its_length() {
        let raw = b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 80\r\nGET / HTTP/1.1\r\n";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!(h.source, Some("192.0.2.7:51000".parse().unwrap()));
        assert_eq!(&raw[h.len..], b"GET / HTTP/1.1\r\n");
        let h = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n").unwrap().unwrap();
        assert_eq!(h.source, Some("[2001:db8::7]:51000".parse().unwrap()));
        let h = parse(b"PROXY UNKNOWN\r\nGET").unwrap().unwrap();
        assert_eq!((h.source, h.len), (None, 15));
    }

    #[test]
    fn v2_gives_the_source_and_skips_tlvs() {
        let mut raw = v2_tcp4([198, 51, 100, 9], 40000, &[0x04, 0x00, 0x02, 0xaa, 0xbb]);
        let len = raw.len();
        raw.extend_from_slice(b"GET /");
        let h = parse(&raw).unwrap().unwrap();
        assert_eq!((h.source, h.len), (Some("198.51.100.9:40000".parse().unwrap()), len));
        // LOCAL: the balancer's own connection, its address stands.
        let mut local = raw.clone();
        local[12] = 0x20;
        assert_eq!(parse(&local).unwrap().unwrap().source, None);
    }

    #[test]
    fn partial_headers_wait_and_garbage_is_refused() {
        let raw = v2_tcp4([198, 51, 100, 9], 40000, &[]);
        for cut in [1, 5, 12, 15, raw.len() - 1] {
            assert_eq!(parse(&raw[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(b"PROXY TCP4 192.0.2.7"), Ok(None));
        let e = parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err();
        assert!(e.contains("does not start with a PROXY protocol header"), "{e}");
        let e = parse(b"PROXY TCP4 999.0.2.7 10.0.0.1 1 2\r\n").unwrap_err();
        assert!(e.starts_with("invalid PROXY protocol v1 header"), "{e}");
        let mut bad = raw.clone();
        bad[12] = 0x31; // version 3
        assert!(parse(&bad).unwrap_err().starts_with("invalid PROXY protocol v2 header"));
        // A v1 line that never ends is not buffered for ever.
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; MAX_HEADER]].concat();
        assert!(parse(&long).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic_and_within_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(Some(h)) = parse(&bytes) {
                prop_assert!(h.len <= bytes.len());
            }
        }
    }
}
