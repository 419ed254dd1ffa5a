//! W3C Trace Context (`traceparent`): a request keeps the trace its client
//! started, or gets a new one, so one id follows it from the access log to
//! the server's logs.
//!
//! `traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`;
//! lower-case hex, neither id all zeros, version `ff` invalid. A value of a
//! later version is accepted when its first 55 bytes have this form and a
//! `-` follows, as the specification asks.

/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

fn is_lower_hex(s: &[u8]) -> bool {
    s.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The trace id (32 hex digits) of a valid `traceparent` value.
pub fn trace_id(v: &[u8]) -> Option<&[u8]> {
    if v.len() < TRACEPARENT_LEN {
        return None;
    }
    let (version, trace, parent, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    let dashes = v[2] == b'-' && v[35] == b'-' && v[52] == b'-';
    let ok = dashes
        && is_lower_hex(version)
        && version != b"ff"
        && is_lower_hex(trace)
        && is_lower_hex(parent)
        && is_lower_hex(flags)
        && trace.iter().any(|&b| b != b'0')
        && parent.iter().any(|&b| b != b'0')
        && match version {
            b"00" => v.len() == TRACEPARENT_LEN,
            _ => v.len() == TRACEPARENT_LEN || v[TRACEPARENT_LEN] == b'-',
        };
    ok.then_some(trace)
}

/// A fast per-worker generator (wyrand): trace ids need to be unique, not
/// unpredictable.
#[derive(Debug, Clone)]
pub struct TraceIds(u64);

impl TraceIds {
    pub fn new(seed: u64) -> TraceIds {
        TraceIds(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A new `traceparent` (version 00, sampled) into `out`.
    pub fn generate(&mut self, out: &mut [u8; TRACEPARENT_LEN]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut put = |at: usize, mut x: u64, digits: usize| {
            for i in (0..digits).rev() {
                out[at + i] = HEX[(x & 15) as usize];
                x >>= 4;
            }
        };
        // Never all zeros: the low bit of each id is set.
        put(3, self.next(), 16);
        put(19, self.next() | 1, 16);
        put(36, self.next() | 1, 16);
        out[0] = b'0';
        out[1] = b'0';
        out[2] = b'-';
        out[35] = b'-';
        out[52] = b'-';
        out[53] = b'0';
        out[54] = b'1';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_values() {
        let ok = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(ok), Some(&b"4bf92f3577b34da6a3ce929d0e0e4736"[..]));
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"garbage",
        ] {
            assert_eq!(trace_id(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // A later version may carry more.
        assert!(trace_id(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future").is_some());
    }

    #[test]
    fn generated_values_are_valid_and_differ() {
        let mut ids = TraceIds::new(42);
        let (mut a, mut b) = ([0; TRACEPARENT_LEN], [0; TRACEPARENT_LEN]);
        ids.generate(&mut a);
        ids.generate(&mut b);
        assert!(trace_id(&a).is_some(), "{}", String::from_utf8_lossy(&a));
        assert!(trace_id(&b).is_some());
        assert_ne!(a, b);
    }
}
