//! ringgate's configuration: the TOML file an operator writes, read once and
//! validated into typed values.
//!
//! Two layers, as in the troubleshooting reference's vocabulary: the file
//! describes listeners, backend pools, backend HTTP settings, probes and rules;
//! [`load_file`] walks it, collects *every* problem at once (each naming the
//! file, the line, the table entry and the field), and only when there are none
//! returns a [`Config`] whose fields are `Duration`s, `SocketAddr`s and indices.
//! Nothing downstream ever sees a string from the file it has to re-check.

mod diag;
mod load;
mod model;
mod routing;
mod units;
mod validate;

pub use diag::{ConfigErrors, Diagnostic};
pub use load::{load_file, load_str};
pub use model::*;
pub use routing::*;
pub use units::{parse_duration, parse_size};
