//! Cryptographic primitives: keccak256 hashing and BLS12-381 commit signatures.
//!
//! Owns no state beyond immutable keys. Everything here is pure and may run on
//! any thread; [`bls::verify_batch`] fans out on the rayon pool of the caller.

pub mod bls;
pub mod hash;
pub mod identity;

pub use bls::{
    check_batch, verify_batch, BatchCheck, BlsError, BlsPublicKey, BlsSecretKey, BlsSignature,
    SigJob, BLS_DST, PUBLIC_KEY_LEN, SIGNATURE_LEN, VERIFY_CHUNK,
};
pub use hash::{keccak256, B256};
pub use identity::{verify_noise_static, IdentityError, NodeIdentity};
