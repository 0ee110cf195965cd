//! Hard limits on chain objects. Decoders and verifiers enforce them so a peer
//! cannot make a node hold or process more than this per object.

/// Largest committee an epoch may have (members). Bounds the signer bitmap
/// and the committee list carried by an epoch's last block.
pub const MAX_COMMITTEE_SIZE: usize = 1024;
/// Longest signer bitmap, bytes (one bit per committee member).
pub const MAX_BITMAP_LEN: usize = MAX_COMMITTEE_SIZE.div_ceil(8);
/// Most transfers one block may carry.
pub const MAX_TRANSFERS_PER_BLOCK: usize = 4096;
/// Largest encoded block (header + body) accepted, bytes.
pub const MAX_BLOCK_BYTES: usize = 1 << 20;
