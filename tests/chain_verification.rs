//! Verification rules of the reference chain (DESIGN.md §4).

mod common;

use std::sync::Arc;

#[cfg(feature = "testkit")]
use streamsync::byzantine::ForgedFork;
use streamsync::chain::verify::{sig_job, verify_block, verify_segment, SigPolicy};
use streamsync::chain::{Block, BlockWithSig, Body, CommitSig, Header, VerifyError};
use streamsync::crypto::verify_batch;

/// Every XOR mask applied to every byte.
const MASKS: [u8; 2] = [0x01, 0xff];

fn sample() -> (
    streamsync::chain::ChainSpec,
    Header,
    BlockWithSig,
    Arc<streamsync::chain::verify::CommitteeKeys>,
) {
    // Epochs of 4 blocks: block 3 ends epoch 0 and carries the next committee.
    let (genesis, chain, blocks) = common::chain(common::spec(7, 4, 8), 3, 3);
    let keys = common::committees(&chain, &genesis, &blocks);
    let parent = blocks[1].block.header.clone();
    (chain, parent, blocks[2].clone(), keys[0].clone())
}

#[test]
fn sample_block_verifies() {
    let (chain, parent, block, keys) = sample();
    assert!(chain.is_epoch_last(block.block.number()));
    verify_block(&chain, &parent, &block, &keys).expect("valid block");
}

/// Flips every byte of `bytes` with each mask, rebuilds the block with
/// `rebuild` (None: the decoder refused it) and asserts verification refuses
/// every decodable corruption. Also asserts most corruptions do decode, so
/// verification rather than the decoder is what is being tested.
fn assert_every_corruption_rejected(
    what: &str,
    bytes: &[u8],
    rebuild: impl Fn(&[u8]) -> Option<BlockWithSig>,
) {
    let (chain, parent, _, keys) = sample();
    let mut decoded = 0;
    for i in 0..bytes.len() {
        for m in MASKS {
            let mut b = bytes.to_vec();
            b[i] ^= m;
            let Some(bad) = rebuild(&b) else { continue };
            decoded += 1;
            assert!(
                verify_block(&chain, &parent, &bad, &keys).is_err(),
                "{what} byte {i} ^ {m:#x} accepted"
            );
        }
    }
    assert!(
        decoded > bytes.len(),
        "{what}: only {decoded} corruptions decoded"
    );
}

#[test]
fn every_single_byte_corruption_of_header_is_rejected() {
    let (_, _, block, _) = sample();
    assert_every_corruption_rejected("header", &block.block.header.to_bytes(), |b| {
        Some(BlockWithSig {
            block: Block {
                header: Header::from_bytes(b).ok()?,
                body: block.block.body.clone(),
            },
            commit_sig: block.commit_sig.clone(),
        })
    });
}

#[test]
fn every_single_byte_corruption_of_body_is_rejected() {
    let (_, _, block, _) = sample();
    assert_every_corruption_rejected("body", &block.block.body.to_bytes(), |b| {
        Some(BlockWithSig {
            block: Block {
                header: block.block.header.clone(),
                body: Body::from_bytes(b).ok()?,
            },
            commit_sig: block.commit_sig.clone(),
        })
    });
}

#[test]
fn every_single_byte_corruption_of_commit_signature_is_rejected() {
    let (_, _, block, _) = sample();
    assert_every_corruption_rejected("commit signature", &block.commit_sig.to_bytes(), |b| {
        Some(BlockWithSig {
            block: block.block.clone(),
            commit_sig: CommitSig::from_bytes(b).ok()?,
        })
    });
}

#[test]
fn one_bad_signature_among_128_is_named() {
    let (genesis, chain, blocks) = common::chain(common::spec(3, 1000, 16), 1, 129);
    let keys = &common::committees(&chain, &genesis, &blocks)[0];
    let mut jobs: Vec<_> = blocks[..128]
        .iter()
        .map(|b| {
            let h = &b.block.header;
            sig_job(h.number, &h.hash(), h.view_id, &b.commit_sig, keys).expect("well-formed")
        })
        .collect();
    assert!(verify_batch(&jobs).is_empty());
    // Block 78's signature replaced by block 79's: well-formed, wrong message.
    jobs[77].sig = jobs[78].sig.clone();
    let bad = verify_batch(&jobs);
    assert_eq!(bad, vec![77]);
    assert_eq!(blocks[bad[0]].block.number(), 78);
}

#[test]
fn segment_across_epochs_verifies_in_parallel() {
    let (genesis, chain, blocks) = common::chain(common::spec(5, 10, 8), 2, 45);
    let keys = common::committees(&chain, &genesis, &blocks);
    let lookup = |e: u64| keys.iter().find(|k| k.epoch == e).cloned();
    for policy in [SigPolicy::All, SigPolicy::EveryNth(7)] {
        let check = verify_segment(
            &chain,
            Some((&genesis.block.header, &genesis.block.hash())),
            &blocks,
            policy,
            |e| (e == 0).then(|| keys[0].clone()),
        );
        assert!(check.is_valid(), "{policy:?}: {:?}", check.errors);
    }
    // Only the committee of epoch 0 is given: later ones come from the segment.
    assert!(lookup(4).is_some());
}

#[test]
fn segment_without_known_committee_reports_unknown_committee_not_invalid_data() {
    let (genesis, chain, blocks) = common::chain(common::spec(5, 10, 8), 0, 5);
    let errs = verify_segment(
        &chain,
        Some((&genesis.block.header, &genesis.block.hash())),
        &blocks,
        SigPolicy::All,
        |_| None,
    )
    .errors;
    assert!(!errs.is_empty());
    assert!(errs.iter().all(
        |e| matches!(e, VerifyError::UnknownCommittee { .. }) && !e.is_proof_of_invalid_data()
    ));
}

#[test]
fn tampered_parent_link_names_the_block() {
    let (genesis, chain, mut blocks) = common::chain(common::spec(5, 10, 8), 0, 6);
    blocks[3].block.header.parent_hash[0] ^= 1;
    let errs = verify_segment(
        &chain,
        Some((&genesis.block.header, &genesis.block.hash())),
        &blocks,
        SigPolicy::All,
        |_| None,
    )
    .errors;
    assert!(
        matches!(errs.as_slice(), [VerifyError::BadLink { number: 4, .. }]),
        "{errs:?}"
    );
}

#[test]
fn committee_named_outside_epoch_end_is_refused() {
    let (genesis, chain, mut blocks) = common::chain(common::spec(5, 10, 8), 0, 3);
    let committee = genesis.block.body.committee();
    blocks[1].block.body.next_committee = committee.keys.clone();
    blocks[1].block.header.next_committee_hash = committee.hash();
    let errs = verify_segment(
        &chain,
        Some((&genesis.block.header, &genesis.block.hash())),
        &blocks,
        SigPolicy::All,
        |_| None,
    )
    .errors;
    assert!(
        matches!(
            errs.first(),
            Some(VerifyError::BadHandOver { number: 2, .. })
        ),
        "{errs:?}"
    );
}

#[test]
fn generator_is_deterministic() {
    let head = |seed| {
        common::chain(common::spec(seed, 5, 4), 2, 12)
            .2
            .last()
            .expect("blocks")
            .block
            .hash()
    };
    assert_eq!(head(11), head(11));
    assert_ne!(head(11), head(12));
}

#[test]
fn networks_never_share_a_genesis() {
    let mut a = common::spec(1, 5, 4);
    let g1 = a.build().expect("genesis").block.hash();
    a.network = "testnet".into();
    let g2 = a.build().expect("genesis").block.hash();
    assert_ne!(g1, g2);
}

#[test]
fn bit_flipped_blocks_never_panic_the_decoder() {
    let (_, _, blocks) = common::chain(common::spec(9, 3, 4), 2, 3);
    let bytes = blocks[2].to_bytes();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let _ = BlockWithSig::from_bytes(&b);
        }
    }
}

/// Finding 1 of the trust review: real blocks up to an epoch's last block,
/// a forged last block naming the attacker's keys, then blocks signed by
/// them. With sampled verification (`VerifyHeaderBatchSize` 100) and the
/// real committees, every segment holding the forged hand-over is refused
/// at the hand-over, wherever the epoch boundary falls in the segment:
/// whether SyncEpoch established the next committee (it wins over the named
/// one) or could not (the hand-over's own signature fails).
#[test]
#[cfg(feature = "testkit")] // ForgedFork is test support
fn forged_hand_over_is_refused_for_every_alignment_under_sampling() {
    const LEN: usize = 128;
    let (genesis, chain, blocks) = common::chain(common::spec(17, 200, 8), 1, 560);
    let keys = common::committees(&chain, &genesis, &blocks);
    let hand_over = chain.epoch_last_block(1);
    let mut fork = ForgedFork::new(&chain, hand_over, 8, 99).expect("attacker keys");
    let real = |n: u64| blocks.get(n as usize - 1).cloned();
    let forged: Vec<BlockWithSig> = (hand_over..hand_over + LEN as u64)
        .map(|n| fork.block(n, real).expect("forged").clone())
        .collect();
    let policy = SigPolicy::EveryNth(100);
    for offset in 0..LEN as u64 {
        let first = hand_over - offset;
        let parent = &blocks[first as usize - 2].block.header;
        let parent_hash = parent.hash();
        let honest: Vec<BlockWithSig> = blocks[first as usize - 1..][..LEN].to_vec();
        let mut attack: Vec<BlockWithSig> = honest[..offset as usize].to_vec();
        attack.extend_from_slice(&forged[..LEN - offset as usize]);
        for established in [2, 3] {
            // Epochs 0, 1 and, when SyncEpoch established it, 2.
            let known = |e: u64| {
                keys.iter()
                    .find(|k| k.epoch == e && e < established)
                    .cloned()
            };
            let good = verify_segment(&chain, Some((parent, &parent_hash)), &honest, policy, known);
            assert!(
                good.is_valid(),
                "offset {offset}: honest segment refused: {:?}",
                good.errors
            );
            assert!(
                good.sigs_checked.len() <= 3,
                "offset {offset}: sampling not in effect: {:?}",
                good.sigs_checked
            );
            let bad = verify_segment(&chain, Some((parent, &parent_hash)), &attack, policy, known);
            let first_error = bad.errors.first();
            assert_eq!(
                first_error.map(VerifyError::block_number),
                Some(hand_over),
                "offset {offset}, established up to epoch {}: {:?}",
                established - 1,
                bad.errors
            );
            if established == 3 {
                assert!(
                    matches!(first_error, Some(VerifyError::CommitteeMismatch { .. })),
                    "{first_error:?}"
                );
            } else {
                assert!(
                    bad.sigs_checked.contains(&hand_over),
                    "hand-over not sampled"
                );
                assert!(first_error.is_some_and(VerifyError::is_signature_error));
            }
        }
    }
}
