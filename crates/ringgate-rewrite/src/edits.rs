//! The result of evaluating a rule set: header edits, new path and query,
//! held in buffers that one connection reuses from request to request, so
//! evaluation allocates nothing in the steady state.

use std::sync::Arc;

use regex::bytes::{CaptureLocations, Regex};

/// A header name as configured and lowercased, shared between the compiled
/// rule set and the edits it produces (cloning it is a reference count, not
/// an allocation).
#[derive(Debug)]
pub(crate) struct HeaderName {
    pub(crate) configured: Box<str>,
    pub(crate) lower: Box<str>,
}

/// One header edit: `value` `None` deletes every field of that name,
/// `Some` replaces them all with one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderEdit<'a> {
    /// The name as configured (`X-Forwarded-For`), for writing a new field.
    pub name: &'a str,
    /// The name lowercased, for matching the fields of a parsed head.
    pub name_lower: &'a str,
    /// The new value; `None` deletes the header. Never contains CR, LF, NUL
    /// or another control character except tab.
    pub value: Option<&'a [u8]>,
}

#[derive(Debug)]
struct Slot {
    name: Arc<HeaderName>,
    value: Option<(usize, usize)>,
}

/// The edits of one phase, to apply in one pass over a parsed head.
///
/// There is at most one edit per header name (case-insensitive): a later
/// rule's edit of a header replaces an earlier one's, so the last rule (in
/// sequence order) wins. Applying them: drop every field of the head whose
/// name has an edit ([`Edits::header`]), then write one field per edit that
/// has a value. Like Application Gateway, setting a header thus replaces all
/// fields of that name (several `Set-Cookie`, say) with one.
///
/// Reuse one `Edits` per connection: [`crate::RuleSet::request_edits`] and
/// [`crate::RuleSet::response_edits`] clear it first and keep its capacity.
#[derive(Debug, Default)]
pub struct Edits {
    headers: Vec<Slot>,
    /// Every substituted value, back to back; slots and path/query index it.
    pub(crate) buf: Vec<u8>,
    pub(crate) path: Option<(usize, usize)>,
    pub(crate) query: Option<(usize, usize)>,
    pub(crate) dropped: u32,
    pub(crate) matched: u32,
    pub(crate) caps: CaptureCache,
}

impl Edits {
    /// Empty edits; allocates nothing until a rule fires.
    pub fn new() -> Self {
        Edits::default()
    }

    /// Forgets all edits, keeping the buffers.
    pub fn clear(&mut self) {
        self.headers.clear();
        self.buf.clear();
        self.path = None;
        self.query = None;
        self.dropped = 0;
        self.matched = 0;
    }

    /// No header, path or query edit (values may still have been dropped).
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.path.is_none() && self.query.is_none()
    }

    /// The header edits, in the order their headers were first edited.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = HeaderEdit<'_>> + '_ {
        self.headers.iter().map(|s| self.view(s))
    }

    /// The edit of header `name` (any case), if any.
    pub fn header(&self, name: &[u8]) -> Option<HeaderEdit<'_>> {
        self.headers.iter().find(|s| name.eq_ignore_ascii_case(s.name.lower.as_bytes())).map(|s| self.view(s))
    }

    /// The new path (starts with `/`; no `?`, `#`, space or control
    /// character), replacing the request's path.
    pub fn path(&self) -> Option<&[u8]> {
        self.path.map(|(a, b)| &self.buf[a..b])
    }

    /// The new query string, without `?`, replacing the request's; empty
    /// means remove the query. No `#`, space or control character.
    pub fn query(&self) -> Option<&[u8]> {
        self.query.map(|(a, b)| &self.buf[a..b])
    }

    /// How many edits were not made because their substituted value was
    /// unsafe (a control character from a client header, a path without a
    /// leading `/`, ...). Worth a counter: it is usually a probe.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// How many rules matched.
    pub fn matched_rules(&self) -> u32 {
        self.matched
    }

    fn view<'a>(&'a self, s: &'a Slot) -> HeaderEdit<'a> {
        HeaderEdit { name: &s.name.configured, name_lower: &s.name.lower, value: s.value.map(|(a, b)| &self.buf[a..b]) }
    }

    /// Records an edit of `name`, replacing any earlier edit of it.
    pub(crate) fn set_header(&mut self, name: &Arc<HeaderName>, value: Option<(usize, usize)>) {
        let same = |s: &&mut Slot| Arc::ptr_eq(&s.name, name) || s.name.lower == name.lower;
        match self.headers.iter_mut().find(same) {
            Some(s) => *s = Slot { name: Arc::clone(name), value },
            None => self.headers.push(Slot { name: Arc::clone(name), value }),
        }
    }
}

/// More entries than this means many rule sets share a connection; starting
/// over then is cheaper than searching a long list.
const MAX_CACHED: usize = 64;

/// Capture locations of the conditions whose groups a template references,
/// kept across requests: `CaptureLocations` is tied to its regex and costs an
/// allocation to create. Keyed by rule set id and the condition's slot.
#[derive(Debug, Default)]
pub(crate) struct CaptureCache {
    entries: Vec<(u64, u32, CaptureLocations)>,
}

impl CaptureCache {
    pub(crate) fn locs(&mut self, set: u64, slot: u32, regex: &Regex) -> &mut CaptureLocations {
        let i = match self.entries.iter().position(|e| e.0 == set && e.1 == slot) {
            Some(i) => i,
            None => {
                if self.entries.len() >= MAX_CACHED {
                    self.entries.clear();
                }
                self.entries.push((set, slot, regex.capture_locations()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].2
    }

    pub(crate) fn get(&self, set: u64, slot: u32) -> Option<&CaptureLocations> {
        self.entries.iter().find(|e| e.0 == set && e.1 == slot).map(|e| &e.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Arc<HeaderName> {
        Arc::new(HeaderName { configured: s.into(), lower: s.to_ascii_lowercase().into() })
    }

    #[test]
    fn later_edit_of_a_header_replaces_the_earlier_one_in_place() {
        let mut e = Edits::new();
        e.buf.extend_from_slice(b"onetwo");
        e.set_header(&name("X-A"), Some((0, 3)));
        e.set_header(&name("X-B"), None);
        e.set_header(&name("x-a"), Some((3, 6)));
        let h: Vec<_> = e.headers().collect();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0], HeaderEdit { name: "x-a", name_lower: "x-a", value: Some(b"two") });
        assert_eq!(h[1].value, None);
        assert_eq!(e.header(b"X-A").unwrap().value, Some(&b"two"[..]));
        assert!(e.header(b"x-c").is_none());
    }

    #[test]
    fn clear_keeps_capacity() {
        let mut e = Edits::new();
        e.buf.extend_from_slice(b"abc");
        e.set_header(&name("X-A"), Some((0, 3)));
        e.path = Some((0, 1));
        e.dropped = 2;
        let cap = e.buf.capacity();
        e.clear();
        assert!(e.is_empty());
        assert_eq!((e.dropped(), e.matched_rules(), e.path(), e.query()), (0, 0, None, None));
        assert_eq!(e.buf.capacity(), cap);
    }
}
