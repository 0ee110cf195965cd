//! Client side of the protocol: the request manager (queues, windows,
//! stream choice), the engine's client. With the `testkit` feature, also a
//! direct call path (`direct::DirectClient`: send a request on a chosen
//! stream, get the matching response) for tests and benchmarks of the
//! transport.

#[cfg(feature = "testkit")]
pub mod direct;
mod manager;
#[cfg(test)]
mod tests;

#[cfg(feature = "testkit")]
pub use direct::{ClientError, DirectClient};
// What the host's settings, status and request handle name.
pub use manager::{HealthStats, Priority, RequestError, RequestOptions, RmConfig};
// The sans-IO manager itself: the host drives it on its requests thread;
// the property tests and benchmarks drive it directly (test support).
#[cfg(feature = "testkit")]
pub use manager::{RequestManager, RmAction, RmStats, Ticket};
#[cfg(not(feature = "testkit"))]
pub(crate) use manager::{RequestManager, RmAction, RmStats, Ticket};
