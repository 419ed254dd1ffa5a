//! `ringgate-testbackend`: a deliberately misbehaving HTTP/1.1 server for
//! ringgate's end-to-end tests, benchmarks and `ringgate demo`.
//!
//! Plain `std::net` with a thread per connection: it has to be obviously
//! correct and able to break HTTP on purpose, not fast. A [`Backend`] serves
//! on a free loopback port; its [`Mode`] can be switched at run time, and its
//! counters and request log show what the proxy actually sent (or that it
//! opened no connection at all).
//!
//! In [`Mode::Ok`] (and after the delay of [`Mode::Slow`]) these paths pick a
//! behaviour per request:
//!
//! | path | answer |
//! |---|---|
//! | `/echo` | 200, the request body back, `x-request-body-bytes: N` |
//! | `/echo-headers` | 200, one `name: value\n` line per request header, in order |
//! | `/status/NNN` | that status (200..=999), body `NNN Reason\n` (none for 204, 304) |
//! | `/chunked?n=N` | 200, chunked, chunks `chunk-0\n` .. `chunk-<N-1>\n` (default 3) |
//! | `/bytes?n=N` | 200, Content-Length, N bytes of `abc..z` repeated (default 1024) |
//! | `/slow?ms=N` | waits N ms (default 1000), then the normal answer |
//! | `/close` | the normal answer without `connection: close`, then closes |
//! | `/eof-body?n=N` | 200 with neither Content-Length nor chunked: N bytes, then close |
//! | `/upgrade` | with `Upgrade: websocket`, `Connection: Upgrade`: 101, then echoes every byte |
//! | `/continue` | like `/echo`; with `Expect: 100-continue` the 100 comes first |
//! | anything else | 200, `content-type: text/plain`, `x-backend: <name>`, the configured body |
//!
//! Every request with `Expect: 100-continue` gets `100 Continue` before its
//! body is read (in modes that answer at all). The health path (default
//! `/health`) answers per [`Backend::set_health`] unless the mode is
//! connection-level ([`Mode::is_connection_level`]); with
//! [`BackendBuilder::hold_health`] not before [`Backend::release_health`]. Request heads that do
//! not parse get 400 (431 when too large, 413 for bodies over 64 MiB) and a
//! close.
//!
//! [`Blackhole`] is an address whose connects time out rather than being
//! refused. [`wire`] holds the exact bytes of the failure modes.
#![forbid(unsafe_code)]

mod backend;
mod blackhole;
mod connection;
mod mode;
mod request;
mod response;
mod wait;
pub mod wire;

pub use backend::{Backend, BackendBuilder, RecordedRequest};
pub use blackhole::Blackhole;
pub use mode::{Mode, ParseModeError};
pub use wait::wait_until;
