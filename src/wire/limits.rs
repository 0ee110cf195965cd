//! Per-request and per-response limits: every peer-facing bound of the
//! protocol, as named constants (DESIGN.md §6).

/// Most block numbers in one `GetBlockHashes`.
pub const MAX_HASHES_PER_REQUEST: usize = 1024;
/// Most blocks in one `GetBlocksByNumber` / `GetBlocksByHashes`.
pub const MAX_BLOCKS_PER_REQUEST: usize = 128;
/// Most signed peer records in one `Peers` response (and asked for by `GetPeers`).
pub const MAX_PEERS_PER_RESPONSE: usize = 64;
/// Largest signed peer record accepted, bytes.
pub const MAX_PEER_RECORD_LEN: usize = 4096;
/// Longest error message in an `ErrorResponse`, bytes.
pub const MAX_ERROR_MESSAGE_LEN: usize = 256;
/// Soft limit of a response, bytes: the server stops adding blocks past it;
/// the client asks for the rest and does not blame the peer.
pub const SOFT_RESPONSE_BYTES: usize = 2 << 20;

/// Largest frame a peer may send while it owes us no answer (bytes): a
/// request is at most ~10 KiB (1,024 block numbers), an unsolicited
/// goodbye far less. A larger frame is only valid as the answer to a
/// request of ours, so a peer we asked nothing cannot make us buffer
/// megabytes of a frame.
pub const MAX_UNSOLICITED_FRAME: usize = 64 * 1024;
