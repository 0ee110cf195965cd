//! keccak256, the hash of blocks, transactions roots and commitments.

use tiny_keccak::{Hasher, Keccak};

/// A 32-byte hash (block hash, tx root, state root, committee hash).
pub type B256 = [u8; 32];

/// The all-zero hash, used where a header field is "absent" (e.g. the
/// next-committee hash of a block that does not end an epoch).
pub const ZERO_HASH: B256 = [0u8; 32];

/// keccak256 of the concatenation of `parts` (no separators, no length
/// prefixes: callers encode unambiguously, e.g. with RLP).
pub fn keccak256_parts(parts: &[&[u8]]) -> B256 {
    let mut k = Keccak::v256();
    for p in parts {
        k.update(p);
    }
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// keccak256 of `data`.
pub fn keccak256(data: &[u8]) -> B256 {
    keccak256_parts(&[data])
}

/// Lower-case hex of `bytes`, no `0x` prefix.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_of_empty_input_matches_ethereum() {
        assert_eq!(
            to_hex(&keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn parts_hash_like_their_concatenation() {
        assert_eq!(keccak256_parts(&[b"ab", b"c"]), keccak256(b"abc"));
    }
}
