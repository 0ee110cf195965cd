//! The wire protocol (DESIGN.md §6): protocol ids, frames, messages and the
//! handshake payload. Pure encoding and decoding with limits; no I/O.
//!
//! # Wire format (version 1)
//!
//! This is a summary. The complete specification, precise enough for a
//! second implementation (byte layouts of handshake, blocks and peer
//! records, request-id rules, error codes, the goodbye, rate limiting and
//! every limit with its default), is `docs/WIRE.md` at the repository root.
//! Where the two differ, `docs/WIRE.md` is the reference.
//!
//! **Transport.** TCP. Each connection starts with a Noise handshake,
//! `Noise_XX_25519_ChaChaPoly_BLAKE2s`, prologue empty. Every Noise message
//! (handshake or transport) travels as `u16 BE length ‖ message`, at most
//! 65535 bytes. The initiator (dialler) sends XX message 1 (no payload);
//! the responder message 2 with its `handshake` payload; the initiator
//! message 3 with its payload. The payload (≤ 1024 bytes) carries the
//! identity key (libp2p ed25519, protobuf), its 64-byte signature over
//! `"streamsync-noise-static-key:" ‖` the sender's 32-byte Noise static
//! key, and the protocol id `streamsync/<service>/<network>/<shard>/<semver>`
//! ([`ProtocolId`]; networks `mainnet`, `testnet`, `localnet`, `partner`).
//! Each side verifies the other's payload against the static key Noise
//! authenticated and requires the same service, network, shard and major
//! version; otherwise it closes. The handshake must finish within
//! [`NetConfig::handshake_timeout`](crate::net::NetConfig::handshake_timeout)
//! (10 s).
//!
//! **Frames.** After the handshake both directions carry a byte stream of
//! frames, `u32 BE length ‖ payload`, payload ≤ 16 MiB (`MAX_FRAME_LEN`).
//! A length over the cap closes the stream as soon as its 4 bytes arrive.
//! The frame stream is carried in Noise transport messages of at most 65519
//! bytes of plaintext each (16-byte tag). Any chunking is valid: a frame
//! may span several Noise messages and one Noise message may carry parts of
//! several frames. This node encrypts each frame on its own.
//!
//! **Messages.** A frame's payload is one message: a type byte, then an RLP
//! list whose first item is the 64-bit request id (requests pick it;
//! responses echo it; 0 is reserved). Integers are canonical RLP (no
//! leading zeros); a "hash" is a 32-byte string; "opt" is a byte string
//! where the empty string means absent. An `opt block` is a byte string
//! *wrapping* the RLP of a `BlockWithSig = [[header, body], commit_sig]`
//! (see `chain::types`); a `record` is a byte string wrapping a libp2p
//! signed envelope (protobuf) whose payload is streamsync's own RLP
//! `[peer_id, protocol_id, seq, [multiaddr, ...]]` (see
//! `stream::record`).
//!
//! | type | message | RLP list after the type byte |
//! | --- | --- | --- |
//! | 0x01 | GetBlockNumber | `[id]` |
//! | 0x02 | GetBlockHashes | `[id, [number, ...]]` (≤ 1024) |
//! | 0x03 | GetBlocksByNumber | `[id, [number, ...]]` (≤ 128) |
//! | 0x04 | GetBlocksByHashes | `[id, [hash, ...]]` (≤ 128) |
//! | 0x05 | GetEpochState | `[id, epoch]` |
//! | 0x06 | GetPeers | `[id, max]` (≤ 64) |
//! | 0x07, 0x08 | reserved (receipts, state ranges): refused | |
//! | 0x41 | BlockNumber | `[id, number, hash]` (the head) |
//! | 0x42 | BlockHashes | `[id, [opt hash, ...]]`, one per number asked |
//! | 0x43 | Blocks | `[id, [opt block, ...]]`, in request order, may stop early |
//! | 0x45 | EpochState | `[id, opt block]` |
//! | 0x46 | Peers | `[id, [record, ...]]` (≤ 64, each ≤ 4096 bytes) |
//! | 0x7f | ErrorResponse | `[id, code, retry_after_ms, message]` (message ≤ 256 bytes) |
//!
//! `Blocks` stops adding blocks once the response holds
//! [`limits::SOFT_RESPONSE_BYTES`] (2 MiB) of blocks; a shorter answer is
//! normal, the client asks again for the rest. `EpochState(e)` answers the
//! block naming the committee of epoch `e` (the last block of `e - 1`,
//! genesis for 0). Unknown and reserved type bytes, empty frames, malformed
//! or non-canonical RLP, trailing bytes and lists or strings over their
//! limits are protocol violations: the receiver closes the stream.
//!
//! **Both sides send requests**, on inbound and outbound streams alike: a
//! node asks every stream that joins its active pool `GetPeers`, and a
//! stream that lets three attempts in a row time out (2 s each) without
//! ever answering is closed. Responses may arrive in any order; the server
//! does not track ids (id 0 and duplicate ids are answered like any other).
//!
//! **Error codes** ([`ErrorCode`]): 1 rate limited (retry after
//! `retry_after_ms`; also "server busy" when the server queue is full);
//! 3 internal (the server's store failed; not the requester's fault);
//! 5 going away. Codes 2 (too many items) and 4 (unsupported) are defined
//! but never sent: requests over a limit and unknown types close the stream
//! instead. The goodbye, [`Message::going_away`], is an `ErrorResponse`
//! with id 0 and code 5, sent best effort just before this node closes an
//! open stream itself: on every close the stream manager decides
//! (housekeeping such as pools full or a duplicate stream, but also
//! removals for faults) and at shutdown; never before a close for a
//! protocol violation, a rate-limit violation, a timeout or a full write
//! buffer. A peer that closes after a goodbye is not counted as failing.
//!
//! **Limits** (defaults; `docs/WIRE.md` has the full table): handshake and
//! TCP connect 10 s each, 64 inbound handshakes, 2048 connections (checked
//! on accept), 16 MiB per frame, 64 MiB unsent per connection, 4096 queued
//! requests, per stream 500 requests/s (burst 1000) and 128 MiB/s (burst
//! 32 MiB), globally 5000 requests/s (burst 10000) and 512 MiB/s (burst
//! 128 MiB), 64 strikes before a rate-limit violation
//! ([`crate::runtime::RateLimits`]); item caps in [`limits`].

// Framing and the handshake payload: the transport's business; tests and
// fuzz targets use them directly (test support).
pub(crate) mod frame;
#[cfg(feature = "testkit")]
pub mod handshake;
#[cfg(not(feature = "testkit"))]
pub(crate) mod handshake;
pub mod limits;
mod message;
mod protocol_id;

// Named by a closed stream's reason (`net::CloseReason`).
pub use frame::FrameError;
#[cfg(feature = "testkit")]
pub use frame::{encode_frame, FrameDecoder, MAX_FRAME_LEN};
pub use handshake::HandshakeError;
pub use message::{ErrorCode, Message, Request, RequestId, Response, WireError};
pub use protocol_id::{ProtocolId, ProtocolIdError, PROTOCOL_PREFIX, PROTOCOL_VERSION};
