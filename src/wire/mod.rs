//! The wire protocol (DESIGN.md §6). This foundation defines the protocol id
//! (also the `topic` label of every metric); frames and messages follow with
//! the transport.

mod protocol_id;

pub use protocol_id::{ProtocolId, ProtocolIdError, PROTOCOL_PREFIX, PROTOCOL_VERSION};
