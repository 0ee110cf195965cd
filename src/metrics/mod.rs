//! Prometheus metrics with the guide's names (DESIGN.md §11), so existing
//! Harmony dashboards work unchanged.
//!
//! - `names`: one constant per metric, its type and description.
//! - `recorder`: builds the Prometheus recorder (no async runtime), labels
//!   every series with `topic` = the protocol id, registers every metric.
//! - [`server`]: a small synchronous HTTP endpoint serving `/metrics` (and
//!   `/status` when given a status source), which also runs the recorder's
//!   upkeep. It runs on its own thread.
//! - `samples`: histogram samples a sans-IO core keeps until its driver
//!   publishes them (cores never write to the global recorder).

pub(crate) mod names;
pub(crate) mod recorder;
pub(crate) mod samples;
pub mod server;

pub use names::{MetricKind, MetricSpec, ALL_METRICS};
pub use recorder::{build_recorder, install_global, register_all, MetricsError};
pub(crate) use samples::Samples;
pub use server::MetricsServer;
