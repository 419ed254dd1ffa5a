//! The request path as routing sees it. Path rules are matched on a
//! normalized path so that two spellings of one resource cannot reach two
//! pools: `/images/../admin` is `/admin`, `/%61dmin` is `/admin`. The query
//! string is not part of it.
//!
//! Normalization (RFC 3986 §6.2.2): percent-encoded *unreserved* characters
//! (ALPHA, DIGIT, `-`, `.`, `_`, `~`) are decoded, other escapes are kept
//! with their hex digits upper-cased, and dot segments are removed (§5.2.4).
//! A malformed escape (`%zz`, `%4`) makes the path invalid: a server could
//! read it either way. Nothing else is changed: `//` stays, and reserved
//! escapes such as `%2F` stay encoded, so they can never become a separator.

/// Why a path cannot be normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// Not an origin-form path (no leading `/`).
    NotAbsolute,
}

impl PathError {
    pub fn reason(self) -> &'static str {
        match self {
            PathError::BadEscape => "invalid percent-encoding in the request path",
            PathError::NotAbsolute => "the request path does not start with '/'",
        }
    }
}

/// The path part of a request target (everything before `?`), and the query
/// (after it, without the `?`), if any.
pub fn split_query(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(b'?', target) {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether `path` is already in normal form, the common case: no `%` and
/// no dot segment. Lets the caller skip the copy.
pub fn is_normal(path: &[u8]) -> bool {
    if memchr::memchr(b'%', path).is_some() {
        return false;
    }
    // A dot segment is "." or ".." between slashes (or at the end).
    for i in memchr::memchr_iter(b'.', path) {
        if i == 0 || path[i - 1] != b'/' {
            continue;
        }
        let rest = &path[i..];
        if rest == b"." || rest == b".." || rest.starts_with(b"./") || rest.starts_with(b"../") {
            return false;
        }
    }
    true
}

/// Writes the normal form of `path` (without its query) to `out`.
pub fn normalize_into(path: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    out.clear();
    if path.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Pass 1: escapes.
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b != b'%' {
            decoded.push(b);
            i += 1;
            continue;
        }
        let (Some(h), Some(l)) = (path.get(i + 1).copied().and_then(hex), path.get(i + 2).copied().and_then(hex))
        else {
            return Err(PathError::BadEscape);
        };
        let c = h << 4 | l;
        if is_unreserved(c) {
            decoded.push(c);
        } else {
            decoded.push(b'%');
            decoded.push(path[i + 1].to_ascii_uppercase());
            decoded.push(path[i + 2].to_ascii_uppercase());
        }
        i += 3;
    }
    // Pass 2: remove_dot_segments (RFC 3986 §5.2.4) over whole segments.
    let mut segments: Vec<&[u8]> = Vec::new();
    let body = &decoded[1..];
    let parts: Vec<&[u8]> = body.split(|&b| b == b'/').collect();
    let last = parts.len() - 1;
    let mut trailing_slash = false;
    for (n, seg) in parts.iter().enumerate() {
        match *seg {
            b"." => trailing_slash = n == last,
            b".." => {
                segments.pop();
                trailing_slash = n == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    out.push(b'/');
    for (n, seg) in segments.iter().enumerate() {
        if n > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(seg);
    }
    if trailing_slash && !segments.is_empty() {
        out.push(b'/');
    }
    Ok(())
}

/// The normal form of `path`, as a new vector (for configuration and tests).
pub fn normalize(path: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::new();
    normalize_into(path, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> String {
        String::from_utf8(normalize(p.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(n("/images/../admin"), "/admin");
        assert_eq!(n("/a/./b"), "/a/b");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/a/b/."), "/a/b/");
        assert_eq!(n("/../../x"), "/x");
        assert_eq!(n("/.."), "/");
        assert_eq!(n("/"), "/");
        assert_eq!(n("/a//b"), "/a//b");
        assert_eq!(n("/a/..b/c"), "/a/..b/c");
        assert_eq!(n("/a/b./c"), "/a/b./c");
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_kept() {
        assert_eq!(n("/%61dmin"), "/admin");
        assert_eq!(n("/images/%2e%2e/admin"), "/admin");
        assert_eq!(n("/images/%2E%2E/admin"), "/admin");
        assert_eq!(n("/a%2fb"), "/a%2Fb");
        assert_eq!(n("/a%2F..%2Fb"), "/a%2F..%2Fb");
        assert_eq!(n("/%7e"), "/~");
        assert_eq!(n("/%20"), "/%20");
        assert_eq!(normalize(b"/%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize(b"/%4"), Err(PathError::BadEscape));
        assert_eq!(normalize(b"x"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn is_normal_agrees_with_normalize() {
        for p in ["/", "/a/b", "/a/../b", "/a/./b", "/a.b/c", "/.well-known/x", "/a/..", "/a/.", "/%41", "/a/..b"] {
            let normal = n(p);
            assert_eq!(is_normal(p.as_bytes()), normal == p, "{p} -> {normal}");
        }
    }

    #[test]
    fn query_is_split_off() {
        assert_eq!(split_query(b"/a?b=1"), (&b"/a"[..], Some(&b"b=1"[..])));
        assert_eq!(split_query(b"/a"), (&b"/a"[..], None));
        assert_eq!(split_query(b"/a?"), (&b"/a"[..], Some(&b""[..])));
    }
}
