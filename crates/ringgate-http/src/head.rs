//! What requests and responses share: spans into the read buffer, header
//! classification, and the field-value grammars that decide body framing
//! (Content-Length, Transfer-Encoding, Connection).

/// A byte range of the buffer a head was parsed from. Heads are bounded by the
/// configured limits, so `u32` is plenty and keeps [`Header`] small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub(crate) fn within(base: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - base.as_ptr() as usize;
        Span { start: start as u32, end: (start + part.len()) as u32 }
    }

    /// The bytes this span covers in `buf`.
    #[inline]
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    #[inline]
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    Http10,
    #[default]
    Http11,
}

/// Header fields the gateway acts on; everything else is [`HeaderKind::Other`]
/// and passed through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    Cookie,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    XForwardedPort,
    XOriginalHost,
    XOriginalUrl,
    Traceparent,
    Other,
}

impl HeaderKind {
    /// Classifies a field name, case-insensitively. Dispatching on the length
    /// first keeps this to one or two comparisons per header.
    pub fn of(name: &[u8]) -> HeaderKind {
        let eq = |s: &[u8]| name.eq_ignore_ascii_case(s);
        match name.len() {
            2 if eq(b"te") => HeaderKind::Te,
            4 if eq(b"host") => HeaderKind::Host,
            6 if eq(b"cookie") => HeaderKind::Cookie,
            6 if eq(b"expect") => HeaderKind::Expect,
            7 if eq(b"upgrade") => HeaderKind::Upgrade,
            7 if eq(b"trailer") => HeaderKind::Trailer,
            10 if eq(b"connection") => HeaderKind::Connection,
            10 if eq(b"keep-alive") => HeaderKind::KeepAlive,
            11 if eq(b"traceparent") => HeaderKind::Traceparent,
            14 if eq(b"content-length") => HeaderKind::ContentLength,
            14 if eq(b"x-original-url") => HeaderKind::XOriginalUrl,
            15 if eq(b"x-forwarded-for") => HeaderKind::XForwardedFor,
            15 if eq(b"x-original-host") => HeaderKind::XOriginalHost,
            16 if eq(b"proxy-connection") => HeaderKind::ProxyConnection,
            16 if eq(b"x-forwarded-host") => HeaderKind::XForwardedHost,
            16 if eq(b"x-forwarded-port") => HeaderKind::XForwardedPort,
            17 if eq(b"transfer-encoding") => HeaderKind::TransferEncoding,
            17 if eq(b"x-forwarded-proto") => HeaderKind::XForwardedProto,
            _ => HeaderKind::Other,
        }
    }

    /// Connection-specific fields (RFC 9110 §7.6.1) that a proxy must not
    /// forward. Transfer-Encoding is not listed: bodies are passed through in
    /// their original framing, so the field travels with them.
    pub fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            HeaderKind::Connection
                | HeaderKind::KeepAlive
                | HeaderKind::ProxyConnection
                | HeaderKind::Te
                | HeaderKind::Trailer
                | HeaderKind::Upgrade
        )
    }
}

/// One header field of a parsed head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub name: Span,
    pub value: Span,
    pub kind: HeaderKind,
    /// Named by the Connection header, so it must not be forwarded either.
    pub listed_in_connection: bool,
}

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyKind {
    /// No body at all.
    #[default]
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilClose,
}

/// Options of the Connection header, and the other field names it lists.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConnectionOptions {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// It names fields other than the three options above.
    pub lists_fields: bool,
}

pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Iterates the comma-separated elements of a list-valued field, skipping
/// empty ones as RFC 9110 §5.6.1 asks.
pub(crate) fn list_items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim_ows).filter(|i| !i.is_empty())
}

pub(crate) fn parse_connection(v: &[u8], opts: &mut ConnectionOptions) {
    for token in list_items(v) {
        if token.eq_ignore_ascii_case(b"close") {
            opts.close = true;
        } else if token.eq_ignore_ascii_case(b"keep-alive") {
            opts.keep_alive = true;
        } else if token.eq_ignore_ascii_case(b"upgrade") {
            opts.upgrade = true;
        } else {
            opts.lists_fields = true;
        }
    }
}

/// Marks fields named by the Connection header(s) so they are not forwarded.
pub(crate) fn mark_connection_listed(buf: &[u8], headers: &mut [Header]) {
    let mut named: Vec<Span> = Vec::new();
    for h in headers.iter().filter(|h| h.kind == HeaderKind::Connection) {
        let v = h.value.of(buf);
        for token in list_items(v) {
            if !(token.eq_ignore_ascii_case(b"close")
                || token.eq_ignore_ascii_case(b"keep-alive")
                || token.eq_ignore_ascii_case(b"upgrade"))
            {
                named.push(Span::within(buf, token));
            }
        }
    }
    for h in headers.iter_mut() {
        let name = h.name.of(buf);
        if named.iter().any(|n| n.of(buf).eq_ignore_ascii_case(name)) {
            h.listed_in_connection = true;
        }
    }
}

/// Folds one Content-Length field value into `acc`. A list of identical values
/// is tolerated (RFC 9110 §8.6); different values, signs, spaces inside the
/// number, or overflow are errors.
pub(crate) fn fold_content_length(v: &[u8], acc: &mut Option<u64>) -> Result<(), &'static str> {
    let mut any = false;
    for item in v.split(|&b| b == b',') {
        let item = trim_ows(item);
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return Err("invalid Content-Length");
        }
        let mut n: u64 = 0;
        for &d in item {
            n = n * 10 + u64::from(d - b'0');
        }
        match *acc {
            Some(prev) if prev != n => return Err("conflicting Content-Length values"),
            _ => *acc = Some(n),
        }
        any = true;
    }
    if any { Ok(()) } else { Err("empty Content-Length") }
}

/// Whether every CR in `head` is followed by an LF and every LF follows a CR.
/// The precise line-ending checks walk the line ends one by one with memchr,
/// a call per line (the largest part of a small head's parse in callgrind);
/// this looks at eight bytes per step instead, and a head that fails it is
/// handed to the precise check to name the fault.
pub(crate) fn crlf_only(head: &[u8]) -> bool {
    const LO: u64 = u64::from_le_bytes([0x01; 8]);
    const HI: u64 = u64::from_le_bytes([0x80; 8]);
    // The high bit of each byte of `w` equal to `b`; exact (no carries
    // between bytes, unlike the classic has-zero-byte trick).
    let eq = |w: u64, b: u8| {
        let x = w ^ (LO * u64::from(b));
        !(((x & !HI) + !HI) | x) & HI
    };
    // Little-endian words: the byte after byte i is 8 bits up, so an LF
    // must sit exactly where the CRs shifted up by one byte land. `carry`
    // brings a CR in a word's last byte to the next word's first.
    let step = |w: u64, carry: &mut u64| {
        let (cr, lf) = (eq(w, b'\r'), eq(w, b'\n'));
        let ok = lf == (cr << 8) | *carry;
        *carry = cr >> 56;
        ok
    };
    let mut carry = 0;
    let mut words = head.chunks_exact(8);
    for c in &mut words {
        let mut b = [0; 8];
        b.copy_from_slice(c);
        let w = u64::from_le_bytes(b);
        // Most words hold no byte below 0x0E, so no CR or LF, and with no CR
        // carried in there is nothing to check (an exact "has a byte less
        // than" test).
        if carry == 0 && (w.wrapping_sub(LO * 0x0E) & !w & HI) == 0 {
            continue;
        }
        if !step(w, &mut carry) {
            return false;
        }
    }
    // The rest, zero-padded: a CR in the head's last byte meets a zero, not
    // an LF, and fails; with no rest, a carried CR meets the zero word.
    let rest = words.remainder();
    let mut b = [0; 8];
    b[..rest.len()].copy_from_slice(rest);
    step(u64::from_le_bytes(b), &mut carry)
}

/// Transfer codings seen so far across a response's Transfer-Encoding fields.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Codings {
    pub present: bool,
    /// Exactly one field whose value is exactly `chunked`: the common case,
    /// relayed as a literal without looking at the fields again.
    pub only_chunked: bool,
    fields: u8,
    /// The last coding is `chunked`.
    pub chunked_last: bool,
    /// `chunked` appears before the last coding (invalid: it must be final
    /// and applied once).
    pub chunked_not_last: bool,
    pub empty: bool,
}

pub(crate) fn fold_transfer_encoding(v: &[u8], c: &mut Codings) {
    c.present = true;
    c.fields = c.fields.saturating_add(1);
    c.only_chunked = c.fields == 1 && v.eq_ignore_ascii_case(b"chunked");
    let mut any = false;
    for coding in list_items(v) {
        any = true;
        if c.chunked_last {
            c.chunked_not_last = true;
        }
        // A coding may carry parameters ("gzip;q=1" is not valid here, but
        // compare only the coding name).
        let name = trim_ows(coding.split(|&b| b == b';').next().unwrap_or(coding));
        c.chunked_last = name.eq_ignore_ascii_case(b"chunked");
    }
    if !any {
        c.empty = true;
    }
}

/// A request's Transfer-Encoding, across all its fields. A request is
/// forwarded only with exactly one `chunked`: every other list is either
/// malformed (400) or names a coding the gateway does not decode (501), and
/// passing such a list on is how gateway and server come to frame one body
/// two ways (`cow, chunked` reads as chunked here and as close-delimited, or
/// an error, to a server that does not know `cow`).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RequestCodings {
    pub present: bool,
    chunked: bool,
    /// A coding other than chunked, named for the 501 answer.
    other: bool,
    /// The first syntax fault found, for the 400 answer.
    malformed: Option<&'static str>,
}

/// What a request's Transfer-Encoding amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestFraming {
    /// No Transfer-Encoding field.
    Absent,
    /// Exactly one `chunked`.
    Chunked,
    /// 400, with the reason.
    Malformed(&'static str),
    /// 501: a well-formed list with a coding other than chunked.
    Unsupported,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn fold_request_transfer_encoding(v: &[u8], c: &mut RequestCodings) {
    c.present = true;
    let fault = |c: &mut RequestCodings, why| {
        c.malformed.get_or_insert(why);
    };
    if v.is_empty() {
        return fault(c, "empty Transfer-Encoding");
    }
    for item in v.split(|&b| b == b',') {
        let item = trim_ows(item);
        if item.is_empty() {
            // RFC 9110 §5.6.1 lets a recipient skip empty elements, but a
            // server behind may not: the list is refused, not repaired.
            fault(c, "empty element in the Transfer-Encoding list");
            continue;
        }
        let mut parts = item.splitn(2, |&b| b == b';');
        let name = trim_ows(parts.next().unwrap_or_default());
        let params = parts.next();
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            fault(c, "invalid transfer coding in Transfer-Encoding");
        } else if name.eq_ignore_ascii_case(b"chunked") {
            if params.is_some() {
                fault(c, "chunked takes no parameters in Transfer-Encoding");
            } else if c.chunked {
                fault(c, "chunked applied more than once");
            }
            c.chunked = true;
        } else {
            if c.chunked {
                fault(c, "chunked is not the final transfer coding");
            }
            c.other = true;
        }
    }
}

impl RequestCodings {
    pub(crate) fn framing(&self) -> RequestFraming {
        match (self.present, self.malformed) {
            (false, _) => RequestFraming::Absent,
            (true, Some(why)) => RequestFraming::Malformed(why),
            // RFC 9112 §6.3 (4): without a final chunked the length cannot
            // be known: 400, whatever the codings.
            (true, None) if !self.chunked => RequestFraming::Malformed("Transfer-Encoding without a final chunked"),
            // §6.1: a coding it does not implement, before chunked: 501.
            (true, None) if self.other => RequestFraming::Unsupported,
            (true, None) => RequestFraming::Chunked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_ignores_case() {
        assert_eq!(HeaderKind::of(b"HOST"), HeaderKind::Host);
        assert_eq!(HeaderKind::of(b"Content-Length"), HeaderKind::ContentLength);
        assert_eq!(HeaderKind::of(b"transfer-ENCODING"), HeaderKind::TransferEncoding);
        assert_eq!(HeaderKind::of(b"X-Forwarded-For"), HeaderKind::XForwardedFor);
        assert_eq!(HeaderKind::of(b"content-type"), HeaderKind::Other);
        assert_eq!(HeaderKind::of(b"Te"), HeaderKind::Te);
    }

    #[test]
    fn content_length_lists() {
        let mut acc = None;
        assert_eq!(fold_content_length(b"42", &mut acc), Ok(()));
        assert_eq!(fold_content_length(b"42, 42", &mut acc), Ok(()));
        assert_eq!(acc, Some(42));
        assert!(fold_content_length(b"43", &mut acc).is_err());
        for bad in [&b"+1"[..], b"-1", b"1 2", b"", b"0x10", b"99999999999999999999", b"1,"] {
            assert!(fold_content_length(bad, &mut None).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn crlf_only_agrees_with_a_byte_by_byte_scan() {
        let slow = |h: &[u8]| {
            h.iter().enumerate().all(|(i, &b)| match b {
                b'\n' => i > 0 && h[i - 1] == b'\r',
                b'\r' => h.get(i + 1) == Some(&b'\n'),
                _ => true,
            })
        };
        let alphabet = [b'a', b'\r', b'\n'];
        // Every string over {a, CR, LF} up to 10 bytes: covers line ends on
        // and across every word boundary, and at the very end.
        for len in 0..=10u32 {
            for n in 0..3usize.pow(len) {
                let mut k = n;
                let h: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[k % 3];
                        k /= 3;
                        b
                    })
                    .collect();
                assert_eq!(crlf_only(&h), slow(&h), "{h:?}");
            }
        }
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long-Field-Name: some value here\r\n\r\n";
        assert!(crlf_only(head));
        for i in 0..head.len() {
            let mut bad = head.to_vec();
            if bad[i] == b'\r' {
                bad[i] = b'x';
                assert!(!crlf_only(&bad), "LF without its CR at {i}");
            } else if bad[i] != b'\n' {
                bad[i] = b'\n';
                assert!(!crlf_only(&bad), "bare LF at {i}");
                bad[i] = b'\r';
                assert!(!crlf_only(&bad), "bare CR at {i}");
            }
        }
        assert!(crlf_only(&[0x8d, 0x8a, 0x0d, 0x0a]), "bytes with the high bit set are not CR or LF");
    }

    #[test]
    fn request_transfer_encoding_is_exactly_one_chunked() {
        let framing = |fields: &[&[u8]]| {
            let mut c = RequestCodings::default();
            for f in fields {
                fold_request_transfer_encoding(f, &mut c);
            }
            c.framing()
        };
        for ok in [&b"chunked"[..], b"Chunked", b"CHUNKED"] {
            assert_eq!(framing(&[ok]), RequestFraming::Chunked, "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &[&b"chunked,"[..]][..],
            &[b", chunked"],
            &[b"chunked, ,"],
            &[b""],
            &[b"chunked;foo=bar"],
            &[b"chunked, chunked"],
            &[b"chunked", b"chunked"],
            &[b"chunked, gzip"],
            &[b"chunked", b"gzip"],
            &[b"chun ked"],
            &[b"\"chunked\""],
            &[b"gzip, chunked;x=1"],
        ] {
            assert!(matches!(framing(bad), RequestFraming::Malformed(_)), "{bad:?}: {:?}", framing(bad));
        }
        for no_final_chunked in [&[&b"gzip"[..]][..], &[b"xchunked"], &[b"identity"], &[b"cow", b"gzip"]] {
            assert_eq!(
                framing(no_final_chunked),
                RequestFraming::Malformed("Transfer-Encoding without a final chunked"),
                "{no_final_chunked:?}"
            );
        }
        for unsupported in [
            &[&b"gzip, chunked"[..]][..],
            &[b"identity, chunked"],
            &[b"cow, chunked"],
            &[b"cow", b"chunked"],
            &[b"gzip;q=1, chunked"],
        ] {
            assert_eq!(framing(unsupported), RequestFraming::Unsupported, "{unsupported:?}");
        }
        assert_eq!(framing(&[]), RequestFraming::Absent);
    }

    #[test]
    fn transfer_codings() {
        let mut c = Codings::default();
        fold_transfer_encoding(b"gzip, chunked", &mut c);
        assert!(c.chunked_last && !c.chunked_not_last);
        let mut c = Codings::default();
        fold_transfer_encoding(b"chunked", &mut c);
        fold_transfer_encoding(b"gzip", &mut c);
        assert!(!c.chunked_last && c.chunked_not_last);
        let mut c = Codings::default();
        fold_transfer_encoding(b"chunked, chunked", &mut c);
        assert!(c.chunked_not_last);
        let mut c = Codings::default();
        fold_transfer_encoding(b" , ", &mut c);
        assert!(c.empty);
    }
}
