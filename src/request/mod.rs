//! Client side of the protocol: the request manager (queues, windows,
//! stream choice), the engine's client. With the `testkit` feature, also a
//! direct call path (`direct::DirectClient`: send a request on a chosen
//! stream, get the matching response) for tests and benchmarks of the
//! transport.

#[cfg(feature = "testkit")]
pub mod direct;
pub mod manager;
#[cfg(test)]
mod tests;

#[cfg(feature = "testkit")]
pub use direct::{ClientError, DirectClient};
pub use manager::{
    HealthStats, Priority, RequestError, RequestManager, RequestOptions, RmAction, RmConfig,
    RmStats, Ticket,
};
