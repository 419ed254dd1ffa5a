//! Fuzz target: ringgate_http::fuzz::request (see that function for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringgate_http::fuzz::request(data));
