//! BLS12-381 commit signatures (min_pk: 48-byte public keys in G1, 96-byte
//! signatures in G2) with Ethereum's ciphersuite, and parallel batch
//! verification on rayon.
//!
//! blst is built with its `no-threads` feature: rayon alone schedules the
//! work, so the two thread pools never oversubscribe the cores.

use blst::min_pk::{AggregatePublicKey, PublicKey, SecretKey, Signature};
use blst::{blst_scalar, BLST_ERROR};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

/// Domain separation tag of Ethereum's BLS ciphersuite (proof-of-possession
/// scheme, signatures in G2).
pub const BLS_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Length of a compressed public key, bytes.
pub const PUBLIC_KEY_LEN: usize = 48;
/// Length of a compressed signature, bytes.
pub const SIGNATURE_LEN: usize = 96;
/// Signatures per multi-signature batch: blst's random-linear-combination
/// check amortises the final exponentiation; 64 is the knee on this machine
/// (DESIGN.md §2). Each chunk runs on one rayon worker.
pub const VERIFY_CHUNK: usize = 64;
/// Bits of randomness per signature in batch verification (blst's
/// recommended security for random linear combinations).
const RAND_BITS: usize = 64;

/// Why a BLS value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlsError {
    /// Bytes do not encode a point on the curve (or are the wrong length).
    #[error("invalid BLS {what} encoding: {reason:?}")]
    BadEncoding {
        /// "public key", "signature" or "secret key".
        what: &'static str,
        /// blst's reason.
        reason: BLST_ERROR,
    },
    /// A point is not in the prime-order subgroup or is the identity.
    #[error("BLS {what} fails the subgroup/identity check: {reason:?}")]
    NotInGroup {
        /// "public key" or "signature".
        what: &'static str,
        /// blst's reason.
        reason: BLST_ERROR,
    },
    /// No keys to aggregate.
    #[error("no public keys to aggregate")]
    EmptyAggregate,
    /// Key material too short for key generation.
    #[error("secret key derivation failed: {0:?}")]
    KeyGen(BLST_ERROR),
}

/// A BLS secret key. Only the generator and tests sign; the engine verifies.
#[derive(Clone, Debug)]
pub struct BlsSecretKey(SecretKey);

impl BlsSecretKey {
    /// Derives a key deterministically from ≥ 32 bytes of key material
    /// (IETF KeyGen).
    pub fn from_ikm(ikm: &[u8]) -> Result<Self, BlsError> {
        SecretKey::key_gen(ikm, &[])
            .map(Self)
            .map_err(BlsError::KeyGen)
    }

    /// The matching public key.
    pub fn public_key(&self) -> BlsPublicKey {
        BlsPublicKey(self.0.sk_to_pk())
    }

    /// Signs `msg` with [`BLS_DST`].
    pub fn sign(&self, msg: &[u8]) -> BlsSignature {
        BlsSignature(self.0.sign(msg, BLS_DST, &[]))
    }

    /// Sum of secret keys modulo the group order. Since every signer of a
    /// commit signs the same message, the aggregate of their signatures equals
    /// one signature by this sum: the generator signs once per block instead
    /// of once per signer (DESIGN.md §4).
    pub fn sum<'a>(keys: impl IntoIterator<Item = &'a BlsSecretKey>) -> Option<BlsSecretKey> {
        let mut acc: Option<blst_scalar> = None;
        for k in keys {
            let mut s = blst_scalar::default();
            // SAFETY: both pointers are valid for the duration of the call;
            // blst reads 32 bytes and writes one scalar.
            unsafe { blst::blst_scalar_from_bendian(&mut s, k.0.serialize().as_ptr()) };
            acc = Some(match acc {
                None => s,
                Some(a) => {
                    let mut out = blst_scalar::default();
                    // SAFETY: valid pointers to initialised scalars.
                    unsafe { blst::blst_sk_add_n_check(&mut out, &a, &s) };
                    out
                }
            });
        }
        let acc = acc?;
        let mut be = [0u8; 32];
        // SAFETY: `be` has room for 32 bytes.
        unsafe { blst::blst_bendian_from_scalar(be.as_mut_ptr(), &acc) };
        SecretKey::from_bytes(&be).ok().map(Self)
    }
}

/// A BLS public key that passed the subgroup check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlsPublicKey(PublicKey);

impl BlsPublicKey {
    /// Decodes and validates (on-curve, subgroup, not identity) a compressed
    /// key. Do this once per committee, not per signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        let pk = PublicKey::uncompress(bytes).map_err(|reason| BlsError::BadEncoding {
            what: "public key",
            reason,
        })?;
        pk.validate().map_err(|reason| BlsError::NotInGroup {
            what: "public key",
            reason,
        })?;
        Ok(Self(pk))
    }

    /// The 48-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.compress()
    }

    /// Aggregates already-validated keys (the signers of one commit).
    pub fn aggregate<'a>(
        keys: impl IntoIterator<Item = &'a BlsPublicKey>,
    ) -> Result<BlsPublicKey, BlsError> {
        let mut it = keys.into_iter();
        let first = it.next().ok_or(BlsError::EmptyAggregate)?;
        let mut agg = AggregatePublicKey::from_public_key(&first.0);
        for k in it {
            agg.add_public_key(&k.0, false)
                .map_err(|reason| BlsError::NotInGroup {
                    what: "public key",
                    reason,
                })?;
        }
        Ok(BlsPublicKey(agg.to_public_key()))
    }
}

/// A BLS signature (decoded, not yet group-checked: verification does that).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlsSignature(Signature);

impl BlsSignature {
    /// Decodes a 96-byte compressed signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        Signature::uncompress(bytes)
            .map(Self)
            .map_err(|reason| BlsError::BadEncoding {
                what: "signature",
                reason,
            })
    }

    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0.compress()
    }

    /// Verifies one signature by `pk` over `msg` (group-checks the signature).
    pub fn verify(&self, msg: &[u8], pk: &BlsPublicKey) -> bool {
        self.0.verify(true, msg, BLS_DST, &[], &pk.0, false) == BLST_ERROR::BLST_SUCCESS
    }
}

/// One signature check: `sig` by (aggregate) key `pk` over `msg`.
#[derive(Clone, Debug)]
pub struct SigJob {
    /// The signed message.
    pub msg: Vec<u8>,
    /// The (aggregate) public key of the signers.
    pub pk: BlsPublicKey,
    /// The signature.
    pub sig: BlsSignature,
}

/// What [`check_batch`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchCheck {
    /// Indices of the invalid jobs, ascending (empty: all valid).
    pub bad: Vec<usize>,
    /// Jobs that went through the pairing check (counted where it runs, so
    /// a caller's count of verified signatures is what was checked).
    pub checked: usize,
}

/// Verifies `jobs` in parallel on the current rayon pool, in chunks of at
/// most [`VERIFY_CHUNK`] (fewer when that leaves rayon threads idle) checked
/// with blst's multi-signature batch verification
/// (random linear combination). A failing chunk is bisected until the bad
/// jobs are isolated.
pub fn check_batch(jobs: &[SigJob]) -> BatchCheck {
    // Up to VERIFY_CHUNK per chunk, but small batches still spread over
    // every rayon thread.
    let threads = rayon::current_num_threads().max(1);
    let chunk = jobs.len().div_ceil(threads).clamp(1, VERIFY_CHUNK);
    let (mut bad, checked) = jobs
        .par_chunks(chunk)
        .enumerate()
        .map(|(ci, part)| {
            let mut rng = ChaCha20Rng::from_entropy();
            let mut out = Vec::new();
            find_bad(part, ci * chunk, &mut rng, &mut out);
            (out, part.len())
        })
        .reduce(
            || (Vec::new(), 0),
            |(mut a, n), (b, m)| {
                a.extend(b);
                (a, n + m)
            },
        );
    bad.sort_unstable();
    BatchCheck { bad, checked }
}

/// [`check_batch`]'s invalid jobs: their indices, ascending; an empty
/// vector means all are valid.
pub fn verify_batch(jobs: &[SigJob]) -> Vec<usize> {
    check_batch(jobs).bad
}

fn find_bad(jobs: &[SigJob], offset: usize, rng: &mut ChaCha20Rng, out: &mut Vec<usize>) {
    if jobs.is_empty() || verify_together(jobs, rng) {
        return;
    }
    if jobs.len() == 1 {
        out.push(offset);
        return;
    }
    let mid = jobs.len() / 2;
    find_bad(&jobs[..mid], offset, rng, out);
    find_bad(&jobs[mid..], offset + mid, rng, out);
}

fn verify_together(jobs: &[SigJob], rng: &mut ChaCha20Rng) -> bool {
    if let [one] = jobs {
        return one.sig.verify(&one.msg, &one.pk);
    }
    let msgs: Vec<&[u8]> = jobs.iter().map(|j| j.msg.as_slice()).collect();
    let pks: Vec<&PublicKey> = jobs.iter().map(|j| &j.pk.0).collect();
    let sigs: Vec<&Signature> = jobs.iter().map(|j| &j.sig.0).collect();
    let rands: Vec<blst_scalar> = jobs
        .iter()
        .map(|_| {
            let mut s = blst_scalar::default();
            // Non-zero 64-bit scalars in the low bytes (little-endian).
            let r = rng.next_u64() | 1;
            s.b[..8].copy_from_slice(&r.to_le_bytes());
            s
        })
        .collect();
    Signature::verify_multiple_aggregate_signatures(
        &msgs, BLS_DST, &pks, false, &sigs, true, &rands, RAND_BITS,
    ) == BLST_ERROR::BLST_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> BlsSecretKey {
        BlsSecretKey::from_ikm(&[i; 32]).expect("32 bytes of ikm")
    }

    #[test]
    fn aggregate_of_same_message_equals_signature_by_summed_key() {
        let keys: Vec<_> = (1..=5).map(key).collect();
        let msg = b"block 7";
        let sum = BlsSecretKey::sum(&keys).expect("non-empty");
        let sig = sum.sign(msg);
        let pks: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
        let agg = BlsPublicKey::aggregate(&pks).expect("non-empty");
        assert!(sig.verify(msg, &agg));
        assert!(!sig.verify(b"block 8", &agg));
    }

    #[test]
    fn batch_names_exactly_the_bad_signatures() {
        let k = key(9);
        let pk = k.public_key();
        let mut jobs: Vec<SigJob> = (0..150u32)
            .map(|i| {
                let msg = i.to_be_bytes().to_vec();
                SigJob {
                    sig: k.sign(&msg),
                    msg,
                    pk: pk.clone(),
                }
            })
            .collect();
        assert!(verify_batch(&jobs).is_empty());
        jobs[3].msg = b"tampered".to_vec();
        jobs[130].sig = k.sign(b"other");
        assert_eq!(verify_batch(&jobs), vec![3, 130]);
    }

    #[test]
    fn public_key_round_trips_and_garbage_is_refused() {
        let pk = key(1).public_key();
        assert_eq!(BlsPublicKey::from_bytes(&pk.to_bytes()), Ok(pk));
        assert!(BlsPublicKey::from_bytes(&[0xAB; 48]).is_err());
        assert!(BlsPublicKey::from_bytes(&[1; 3]).is_err());
        assert!(BlsSignature::from_bytes(&[0x11; 96]).is_err());
    }
}
