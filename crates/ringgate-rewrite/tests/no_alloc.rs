//! The zero-cost claims, measured with a counting allocator: evaluating a
//! rule set that does not match allocates nothing, and once a connection's
//! `Edits` has served one matching request, further matching requests do
//! not allocate either. (Its own test binary, so the allocator counts only
//! this.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringgate_rewrite::{
    ActionSpec, ConditionSpec, Edits, RuleSet, RuleSetSpec, RuleSpec, Variable, Vars, compile, cookie_value,
};

thread_local! {
    // Per thread, so the test harness's other threads are not counted.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds the GlobalAlloc contract; counting touches only a const-initialised
// thread-local Cell, which neither allocates nor unwinds.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc`/`realloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `dealloc`, and the caller's contract for `realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

/// A request as the proxy would lend it: slices of its head.
struct Request<'a> {
    path: &'a [u8],
    query: &'a [u8],
    user_agent: &'a [u8],
    cookie: &'a [u8],
    status: &'a [u8],
}

impl Vars for Request<'_> {
    fn var(&self, v: &Variable) -> Option<&[u8]> {
        match v {
            Variable::UriPath => Some(self.path),
            Variable::QueryString => Some(self.query),
            Variable::HttpStatus => Some(self.status),
            Variable::RequestHeader(n) if &**n == "user-agent" => Some(self.user_agent),
            Variable::Cookie(n) => cookie_value(self.cookie, n),
            _ => None,
        }
    }
}

fn cond(variable: &str, pattern: &str) -> ConditionSpec {
    ConditionSpec { variable: variable.into(), pattern: pattern.into(), ignore_case: true, negate: false }
}

fn rule_set() -> RuleSet {
    let spec = RuleSetSpec {
        name: "set01".into(),
        rules: vec![
            RuleSpec {
                name: "article".into(),
                sequence: 10,
                conditions: vec![cond("uri_path", r"^/article/(\d+)$"), cond("http_req_User-Agent", "(mobile)")],
                actions: ActionSpec {
                    request_headers: vec![
                        ("X-Device".into(), "{http_req_user-agent_1}".into()),
                        ("X-Debug".into(), "".into()),
                    ],
                    url_path: Some("/view?id={var_uri_path_1}&{var_query_string}".into()),
                    ..ActionSpec::default()
                },
            },
            RuleSpec {
                name: "tier".into(),
                sequence: 20,
                conditions: vec![cond("cookie_tier", "^(gold)$")],
                actions: ActionSpec {
                    request_headers: vec![("X-Tier".into(), "{var_cookie_tier_1}".into())],
                    response_headers: vec![("X-Tier-Served".into(), "{var_cookie_tier}".into())],
                    ..ActionSpec::default()
                },
            },
            RuleSpec {
                name: "errors".into(),
                sequence: 30,
                conditions: vec![cond("http_status", "^5")],
                actions: ActionSpec {
                    response_headers: vec![("Cache-Control".into(), "no-store".into())],
                    ..ActionSpec::default()
                },
            },
        ],
    };
    compile(&spec).expect("the test set compiles")
}

const MISS: Request<'static> =
    Request { path: b"/static/app.js", query: b"v=3", user_agent: b"curl/8", cookie: b"", status: b"200" };
const HIT: Request<'static> = Request {
    path: b"/article/42",
    query: b"ref=home",
    user_agent: b"Mozilla/5.0 Mobile",
    cookie: b"a=1; tier=gold",
    status: b"503",
};

#[test]
fn a_set_that_does_not_match_allocates_nothing() {
    let set = rule_set();
    let mut edits = Edits::new();
    // The regex crate fills its per-thread search cache on first use.
    set.request_edits(&MISS, &mut edits);
    set.response_edits(&MISS, &mut edits);
    let n = allocations(|| {
        for _ in 0..100 {
            set.request_edits(&MISS, &mut edits);
            assert!(edits.is_empty());
            set.response_edits(&MISS, &mut edits);
            assert!(edits.is_empty());
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn a_matching_set_reuses_its_edits_without_allocating() {
    let set = rule_set();
    let mut edits = Edits::new();
    set.request_edits(&HIT, &mut edits);
    set.response_edits(&HIT, &mut edits);
    let n = allocations(|| {
        for _ in 0..100 {
            set.request_edits(&HIT, &mut edits);
            assert_eq!(edits.path(), Some(&b"/view"[..]));
            assert_eq!(edits.query(), Some(&b"id=42&ref=home"[..]));
            assert_eq!(edits.headers().len(), 3);
            set.response_edits(&HIT, &mut edits);
            assert_eq!(edits.headers().len(), 2);
            set.request_edits(&MISS, &mut edits);
            assert!(edits.is_empty());
        }
    });
    assert_eq!(n, 0);
    assert_eq!(edits.header(b"x-device").and_then(|h| h.value), None);
    set.request_edits(&HIT, &mut edits);
    assert_eq!(edits.header(b"x-device").and_then(|h| h.value), Some(&b"Mobile"[..]));
    assert_eq!(edits.header(b"x-debug").map(|h| h.value), Some(None));
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocations(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(16));
    });
    assert_eq!(n, 1);
    // A fresh Edits that meets no match allocates nothing at all.
    let set = rule_set();
    let mut warm = Edits::new();
    set.request_edits(&MISS, &mut warm);
    let n = allocations(|| {
        let mut edits = Edits::new();
        set.request_edits(&MISS, &mut edits);
        std::hint::black_box(&edits);
    });
    assert_eq!(n, 0);
}
