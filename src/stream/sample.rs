//! Uniform random choice among peers, for the places where taking the
//! first ones would send a whole network to the same few nodes (the boot
//! list, peer-exchange answers).

use rand_core::RngCore;

/// Moves a uniformly random `k` of `v`'s items (all of them if it holds
/// fewer) to its front, in random order, and returns them: a partial
/// Fisher–Yates shuffle, `k` draws of `rng`. The rest of `v` keeps the
/// items not chosen, in no particular order.
pub fn random_prefix<'a, T>(v: &'a mut [T], k: usize, rng: &mut impl RngCore) -> &'a mut [T] {
    let k = k.min(v.len());
    for i in 0..k {
        let r = i + (rng.next_u64() % (v.len() - i) as u64) as usize;
        v.swap(i, r);
    }
    &mut v[..k]
}

/// A fast generator seeded once from the operating system, for the
/// samples above (one `getrandom` call instead of one per draw).
pub fn os_seeded() -> rand_chacha::ChaCha8Rng {
    use rand_core::SeedableRng;
    rand_chacha::ChaCha8Rng::seed_from_u64(rand_core::OsRng.next_u64())
}
