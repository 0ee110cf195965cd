//! Table names and key encodings.

/// `meta`: format magic, genesis spec, chain identity, head pointer.
pub const META: &str = "meta";
/// `headers`: number (8 B BE) → RLP(header).
pub const HEADERS: &str = "headers";
/// `bodies`: number (8 B BE) → RLP(body).
pub const BODIES: &str = "bodies";
/// `hashes`: number (8 B BE) → block hash (32 B).
pub const HASHES: &str = "hashes";
/// `hash_to_number`: block hash (32 B) → number (8 B BE).
pub const HASH_TO_NUMBER: &str = "hash_to_number";
/// `commit_sigs`: number (8 B BE) → RLP(commit signature of that block):
/// the one block N+1's header carries (covered by N+1's hash), or for the
/// head the one the inserting caller verified. Never an unverified copy
/// sent beside a block.
pub const COMMIT_SIGS: &str = "commit_sigs";
/// `committees`: epoch (8 B BE) → RLP(committee).
pub const COMMITTEES: &str = "committees";
/// `accounts`: address (20 B) → RLP(account).
pub const ACCOUNTS: &str = "accounts";
/// `stage_progress`: stage name → block number (8 B BE).
pub const STAGE_PROGRESS: &str = "stage_progress";
/// `account_changes`: number (8 B BE) → RLP list of (address, RLP of the
/// account before the block, empty if it did not exist): what
/// [`super::Store::unwind_to`] restores.
pub const ACCOUNT_CHANGES: &str = "account_changes";
/// `staging_hashes`: number (8 B BE) → downloaded hash (`UseMemDB = false`).
pub const STAGING_HASHES: &str = "staging_hashes";
/// `staging_blocks`: number (8 B BE) → RLP(block with signature) (`UseMemDB = false`).
pub const STAGING_BLOCKS: &str = "staging_blocks";

/// Every table, in the order `inspect` lists them.
pub const TABLES: [&str; 12] = [
    META,
    HEADERS,
    BODIES,
    HASHES,
    HASH_TO_NUMBER,
    COMMIT_SIGS,
    COMMITTEES,
    ACCOUNTS,
    STAGE_PROGRESS,
    ACCOUNT_CHANGES,
    STAGING_HASHES,
    STAGING_BLOCKS,
];

/// `meta` key of the format magic.
pub const META_MAGIC: &[u8] = b"magic";
/// Value of the format magic (bump the version on incompatible changes).
pub const MAGIC: &[u8] = b"streamsync-store-v1";
/// `meta` key of the RLP genesis spec.
pub const META_GENESIS: &[u8] = b"genesis_spec";
/// `meta` key of the head: number (8 B BE) ‖ hash (32 B).
pub const META_HEAD: &[u8] = b"head";

/// 8-byte big-endian key of a number.
pub fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Decodes an 8-byte big-endian value.
pub fn from_be(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}
