//! The exact bytes the connection-level failure modes put on the wire, public
//! so end-to-end tests can say what the proxy was fed without copying them.

/// Sent before reading the body of a request carrying `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// [`Mode::HalfResponse`](crate::Mode::HalfResponse): announces 100 body bytes,
/// sends 10, then the backend closes.
pub const HALF_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";

/// [`Mode::Garbage`](crate::Mode::Garbage): not HTTP at all; then the backend closes.
pub const GARBAGE: &[u8] = b"this is not http\r\n\r\n";

/// [`Mode::MalformedStatus`](crate::Mode::MalformedStatus): the status code is not a number.
pub const MALFORMED_STATUS: &[u8] = b"HTTP/1.1 abc Bad\r\nContent-Length: 0\r\n\r\n";

/// [`Mode::MalformedHeaders`](crate::Mode::MalformedHeaders): a header line without a colon.
pub const MALFORMED_HEADERS: &[u8] = b"HTTP/1.1 200 OK\r\nBad Header Line\r\nContent-Length: 2\r\n\r\nok";

/// [`Mode::BodyLonger`](crate::Mode::BodyLonger): announces 5 body bytes, sends
/// 15 (`hello` then 10 stray bytes that a client would take as the start of
/// the next response).
pub const BODY_LONGER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRABYTES";

/// [`Mode::BodyShorter`](crate::Mode::BodyShorter): announces 50 body bytes,
/// sends 5, then the backend sends nothing more while keeping the connection open.
pub const BODY_SHORTER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort";

#[cfg(test)]
mod tests {
    use super::*;

    fn body(raw: &[u8]) -> &[u8] {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head end") + 4;
        &raw[end..]
    }

    #[test]
    fn failure_bodies_have_the_promised_lengths() {
        assert_eq!(body(HALF_RESPONSE).len(), 10);
        assert_eq!(body(BODY_LONGER).len(), 15);
        assert_eq!(body(BODY_SHORTER).len(), 5);
        assert_eq!(body(MALFORMED_HEADERS), b"ok");
    }
}
