//! Client side of the protocol. For now a direct call path
//! ([`direct::DirectClient`]): send a request on a chosen stream, get the
//! matching response. The request manager (queues, windows, stream choice)
//! replaces it as the engine's client.

pub mod direct;
pub mod manager;
#[cfg(test)]
mod tests;

pub use direct::{ClientError, DirectClient};
pub use manager::{
    HealthStats, Priority, RequestError, RequestManager, RequestOptions, RmAction, RmConfig,
    RmStats, Ticket,
};
