//! Fuzz target: ringgate_http::fuzz::response (see that function for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringgate_http::fuzz::response(data));
