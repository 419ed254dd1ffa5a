//! ringgate's data plane.
//!
//! [`Gateway`] binds the listeners and runs one worker thread per core. Each
//! worker owns a monoio (io_uring) runtime, an SO_REUSEPORT socket per
//! listening address and a pool of idle backend connections; a request never
//! takes a lock or crosses threads. Configuration arrives as an immutable
//! [`Plan`], swapped atomically on reload.
//!
//! A connection goes through four layers, each using only the ones below:
//!
//! - `runtime`: the worker thread (its ring, the housekeeping tick, reload
//!   and drain) and `accept`: each socket's accept loop, the TLS handshake,
//!   and the choice of codec by ALPN or by the HTTP/2 preface;
//! - the client codecs: `h1` (a connection's request loop: heads, keep-alive,
//!   pipelining, time-outs, tunnels after a 101) and `h2` (a connection of
//!   multiplexed streams on the `h2` crate, with its abuse defences); each
//!   turns a request into a parsed head plus a byte stream for its body and
//!   its response, in HTTP/1.1 message syntax;
//! - the request path, one for both codecs: `request` (routing, redirects,
//!   affinity, the fast-path 502, error pages, access log and metrics) and
//!   `exchange` (the backend: pool or connect, forwarded head and body, the
//!   response relayed, the connection pooled only if clean);
//! - the worker's state (`worker`: plan, pools, buffers, open connections),
//!   and the pure parts: `route`, `balance`, `rewrite_apply`, `plan`.
//!
//! HTTP/2 reaches the backends as HTTP/1.1, as with Application Gateway v2.

mod accept;
mod access_log;
mod backend_stream;
mod balance;
mod compat;
mod conn_pool;
mod error;
mod exchange;
mod gateway;
mod h1;
mod h2;
mod io;
mod local;
pub mod metrics;
mod plan;
mod proxy_protocol;
#[cfg(test)]
mod recv_multishot_tests;
mod request;
mod rewrite_apply;
mod route;
mod runtime;
mod splice;
mod tunnel;
mod worker;

pub use balance::{Pick, affinity_token, find_cookie, pick};
pub use error::ProxyError;
pub use gateway::{BoundListener, Gateway, Shared, StartError};
pub use metrics::MetricsRegistry;
pub use plan::{Plan, ServerPlan, TargetPlan};
pub use rewrite_apply::{RequestVars, rewritten_target};
pub use route::{HostRoutes, PathMapPlan, PathRoute, RedirectPlan, RouteAction, RulePlan, routing_path, strip_port};
pub use runtime::set_memory_release;
