//! ringgate's health model, after the troubleshooting reference: every server
//! of every (backend HTTP settings, pool) pair a rule uses is probed, and marked
//! down after `unhealthy_threshold` consecutive failures.
//!
//! - [`HealthTable`]: one [`HealthEntry`] per (settings, pool, server), shared by
//!   every worker; the request path reads a server's state with one atomic load.
//! - [`observe`]: the pure state machine of consecutive results.
//! - [`ServerGroup`]: `min_servers`, the servers of a pool kept in rotation
//!   whatever their probes say, decided by the table's writers.
//! - [`Prober`]: a dedicated thread that probes every server and writes the table.

mod dns;
mod group;
mod prober;
mod state;
mod table;

pub use dns::resolve;
pub use group::{ServerGroup, kept};
pub use prober::{ProbeResult, ProbeTarget, ProbeTls, Prober, probe_addr, probe_url, speaks_http, speaks_tls, targets};
pub use state::{Counters, HealthState, ProbeFailure, observe};
pub use table::{HealthEntry, HealthTable, ProbeDetail, ServerKey};
