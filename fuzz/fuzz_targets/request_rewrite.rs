//! Fuzz target: ringgate_http::fuzz::request_rewrite (parse, rewrite, forward,
//! re-parse as the server: same framing; see that function).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringgate_http::fuzz::request_rewrite(data));
