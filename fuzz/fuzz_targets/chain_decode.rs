//! Every chain decoder on arbitrary bytes: must return Ok or Err, never panic,
//! and whatever decodes must re-encode to the same bytes (canonical RLP).
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamsync::chain::{Block, BlockWithSig, Body, CommitSig, Committee, Header};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::from_bytes(data) {
        assert_eq!(h.to_bytes(), data);
        let _ = h.hash();
    }
    if let Ok(b) = Body::from_bytes(data) {
        assert_eq!(b.to_bytes(), data);
        let _ = b.tx_root();
    }
    if let Ok(b) = Block::from_bytes(data) {
        assert_eq!(b.to_bytes(), data);
    }
    if let Ok(b) = BlockWithSig::from_bytes(data) {
        assert_eq!(b.to_bytes(), data);
    }
    if let Ok(c) = CommitSig::from_bytes(data) {
        assert_eq!(c.to_bytes(), data);
    }
    if let Ok(c) = Committee::from_bytes(data) {
        assert_eq!(c.to_bytes(), data);
    }
});
