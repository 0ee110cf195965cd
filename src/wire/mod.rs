//! The wire protocol (DESIGN.md §6): protocol ids, frames, messages and the
//! handshake payload. Pure encoding and decoding with limits; no I/O.
//!
//! # Wire format (version 1)
//!
//! **Transport.** TCP. Each connection starts with a Noise handshake,
//! `Noise_XX_25519_ChaChaPoly_BLAKE2s`, prologue empty. Every Noise message
//! (handshake or transport) travels as `u16 BE length ‖ message`, at most
//! 65535 bytes. The initiator sends XX message 1 (no payload); the responder
//! message 2 with its [`handshake`] payload; the initiator message 3 with its
//! payload. Each side verifies the other's payload: the identity key (libp2p
//! ed25519, protobuf) must have signed `"streamsync-noise-static-key:" ‖`
//! the peer's Noise static key, and the protocol ids must match (same
//! service, network and shard, same major version). Otherwise it closes.
//!
//! **Frames.** After the handshake both directions carry a byte stream of
//! frames, `u32 BE length ‖ payload`, payload ≤ 16 MiB ([`MAX_FRAME_LEN`]).
//! The byte stream is cut into pieces of at most 65519 bytes, each encrypted
//! as one Noise transport message (16-byte tag). A length over the cap closes
//! the stream before anything is buffered for it.
//!
//! **Messages.** A frame's payload is one message: a type byte, then an RLP
//! list whose first item is the 64-bit request id (requests pick it;
//! responses echo it). Integers are canonical RLP (no leading zeros); a
//! "hash" is a 32-byte string; "opt" is a byte string where the empty string
//! means absent.
//!
//! | type | message | RLP list after the type byte |
//! | --- | --- | --- |
//! | 0x01 | GetBlockNumber | `[id]` |
//! | 0x02 | GetBlockHashes | `[id, [number, ...]]` (≤ 1024) |
//! | 0x03 | GetBlocksByNumber | `[id, [number, ...]]` (≤ 128) |
//! | 0x04 | GetBlocksByHashes | `[id, [hash, ...]]` (≤ 128) |
//! | 0x05 | GetEpochState | `[id, epoch]` |
//! | 0x06 | GetPeers | `[id, max]` (≤ 64) |
//! | 0x07, 0x08 | reserved (receipts, state ranges) | |
//! | 0x41 | BlockNumber | `[id, number, hash]` (the head) |
//! | 0x42 | BlockHashes | `[id, [opt hash, ...]]`, one per number asked |
//! | 0x43 | Blocks | `[id, [opt block, ...]]`, in request order, may stop early |
//! | 0x45 | EpochState | `[id, opt block]` |
//! | 0x46 | Peers | `[id, [record, ...]]` (≤ 64, each ≤ 4096 B) |
//! | 0x7f | ErrorResponse | `[id, code, retry_after_ms, message]` |
//!
//! A "block" is the RLP of `BlockWithSig = [block, commit_sig]` with
//! `block = [header, body]` (see `chain::types`). `Blocks` stops adding
//! blocks once the response passes [`limits::SOFT_RESPONSE_BYTES`] (2 MiB);
//! a shorter answer is normal, the client asks again for the rest. A
//! `record` is a libp2p signed envelope holding a peer record (protobuf).
//! `EpochState(e)` answers the block naming the committee of epoch `e` (the
//! last block of `e - 1`, genesis for 0). Error codes: 1 rate limited (retry
//! after `retry_after_ms`), 2 too many items, 3 internal (server fault), 4
//! unsupported, 5 going away. Request id 0 is never a request's: an
//! ErrorResponse with id 0 and code 5 announces that the sender is about to
//! close the stream on purpose (pools full, duplicate stream, shutdown), so
//! the receiver does not count the close as a failure. Unknown type bytes, malformed RLP, trailing bytes and lists
//! over their limits are protocol violations: the receiver closes the stream.

pub mod frame;
pub mod handshake;
pub mod limits;
pub mod message;
mod protocol_id;

pub use frame::{encode_frame, FrameDecoder, FrameError, MAX_FRAME_LEN};
pub use message::{ErrorCode, Message, Request, RequestId, Response, WireError};
pub use protocol_id::{ProtocolId, ProtocolIdError, PROTOCOL_PREFIX, PROTOCOL_VERSION};
