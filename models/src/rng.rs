//! Seeded host-side randomness, shared by the data (shuffles, splits,
//! augmentation), the layers and networks (weight initialisation), the
//! trainer (data order per epoch, augmentation per step) and the analysis:
//! unbiased bounded integers, shuffles and permutations on `rand_xoshiro`'s
//! xoshiro256++ (DESIGN.md: the host-side generator for data shuffling and
//! initialisation), and the trainer's per-stream seeds (`derive_seed`).

use rand_core::{RngCore, SeedableRng};
pub use rand_xoshiro::Xoshiro256PlusPlus;

/// A xoshiro256++ generator seeded from `seed` (through SplitMix64, as
/// `rand_core`'s `seed_from_u64` does). Never `Copy` or `Default`: a stream
/// is only ever created from an explicit seed.
///
/// ```
/// use rand_core::RngCore;
/// use smoothout_models::rng::seeded_rng;
///
/// let (mut a, mut b) = (seeded_rng(7), seeded_rng(7));
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[must_use]
pub fn seeded_rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// A uniform integer in `0..n`, without modulo bias (Lemire's
/// multiply-and-reject). Returns 0 for `n == 0`.
///
/// ```text
/// m = x · n  (128-bit), x uniform in [0, 2^64)
/// accept when (m mod 2^64) ≥ (2^64 − n) mod n; result m >> 64
/// ```
pub fn uniform_below<R: RngCore + ?Sized>(rng: &mut R, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Shuffles `items` in place (Fisher–Yates from the end, one
/// [`uniform_below`] draw per position `len-1 … 1`), so the result depends
/// only on the generator's state.
///
/// ```
/// use smoothout_models::rng::{seeded_rng, shuffle};
///
/// let mut v: Vec<u32> = (0..10).collect();
/// shuffle(&mut v, &mut seeded_rng(1));
/// v.sort_unstable();
/// assert_eq!(v, (0..10).collect::<Vec<_>>());
/// ```
pub fn shuffle<T, R: RngCore + ?Sized>(items: &mut [T], rng: &mut R) {
    for i in (1..items.len()).rev() {
        let j = uniform_below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// A random permutation of `0..n` drawn from `seed`: [`shuffle`] of the
/// identity with [`seeded_rng`]`(seed)`.
///
/// ```
/// use smoothout_models::rng::permutation;
///
/// let p = permutation(5, 42);
/// assert_eq!(p, permutation(5, 42));
/// assert_eq!(p.len(), 5);
/// ```
#[must_use]
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    shuffle(&mut p, &mut seeded_rng(seed));
    p
}

/// Stream of the trainer's data order: [`derive_seed`]`(seed, STREAM_ORDER,
/// epoch)` seeds the permutation of epoch `epoch`. Data order, augmentation
/// and anything added later use distinct streams, so they never share draws.
pub(crate) const STREAM_ORDER: u64 = 1;
/// Stream of the trainer's augmentation: [`derive_seed`]`(seed,
/// STREAM_AUGMENT, step)` seeds the crops and flips of step `step`.
pub(crate) const STREAM_AUGMENT: u64 = 2;

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed for `stream` at `index` under the run's `seed`, for the host-side
/// generator ([`seeded_rng`]): `mix(mix(seed ^ mix(stream)) ^ index)` with
/// SplitMix64's finaliser.
///
/// Why this and not `smoothout::NoiseKey::fold_in`: the two serve different
/// generators. `fold_in` derives the 64-bit keys of the Philox streams that
/// the weight noise θ is drawn from, on every backend; this derives the
/// 64-bit seeds of the xoshiro256++ generator that orders and augments the
/// data on the host. Both are pure functions of (seed, position), so either
/// would keep runs reproducible and resumable — but replacing this one by
/// `fold_in` would give every epoch a different data order and every step a
/// different crop, so every published and checkpointed run (the metrics in
/// docs/results, the resume tests' reference runs) would change. The two
/// schemes stay, each for its own generator.
pub(crate) fn derive_seed(seed: u64, stream: u64, index: u64) -> u64 {
    mix(mix(seed ^ mix(stream)) ^ index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = seeded_rng(3);
        let mut counts = [0u32; 3];
        let draws = 30_000;
        for _ in 0..draws {
            counts[uniform_below(&mut rng, 3) as usize] += 1;
        }
        // Each count is Binomial(30000, 1/3): sd ≈ 81.6; allow 5 sd.
        for c in counts {
            assert!((f64::from(c) - 10_000.0).abs() < 5.0 * 81.65, "{counts:?}");
        }
        assert_eq!(uniform_below(&mut rng, 0), 0);
        assert_eq!(uniform_below(&mut rng, 1), 0);
        assert!(uniform_below(&mut rng, u64::MAX) < u64::MAX);
    }

    #[test]
    fn permutation_is_a_permutation_and_seeded() {
        let p = permutation(1000, 9);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(p, permutation(1000, 9));
        assert_ne!(p, permutation(1000, 10));
        assert!(permutation(0, 1).is_empty());
    }

    // Pins the stream: a change of generator, seeding or shuffle order would
    // silently change every training run's data order. The expected value was
    // computed independently (a Python transcription of SplitMix64 seeding,
    // xoshiro256++ from its reference C, Lemire's bound and Fisher–Yates).
    #[test]
    fn permutation_known_answer() {
        assert_eq!(permutation(10, 42), [5, 3, 1, 0, 9, 6, 4, 7, 2, 8]);
    }
}
