//! ringgate's data plane.
//!
//! [`Gateway`] binds the listeners and runs one worker thread per core. Each
//! worker owns a monoio (io_uring) runtime, an SO_REUSEPORT socket per
//! listening address and a pool of idle backend connections; a request never
//! takes a lock or crosses threads. Configuration arrives as an immutable
//! [`Plan`], swapped atomically on reload.

mod access_log;
mod backend_stream;
mod accept;
mod balance;
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
mod request;
#[cfg(test)]
mod recv_multishot_tests;
mod rewrite_apply;
mod route;
mod runtime;
mod tunnel;
mod worker;

pub use balance::{Pick, affinity_token, find_cookie, pick};
pub use error::ProxyError;
pub use gateway::{BoundListener, Gateway, Shared, StartError};
pub use metrics::MetricsRegistry;
pub use plan::{Plan, ServerPlan, TargetPlan};
pub use rewrite_apply::rewritten_target;
pub use route::{HostRoutes, PathMapPlan, PathRoute, RedirectPlan, RouteAction, RulePlan, routing_path, strip_port};
