//! From Philox words to unit noise: the exact bit layout.
//!
//! Every draw starts from the 32-bit word `x` of its element (see
//! [`crate::noise::philox`]). Only the top 24 bits `k = x >> 8` are used, so every
//! value below is exact in `f32` and a CUDA kernel reproduces it bit for bit
//! with plain IEEE single-precision arithmetic:
//!
//! ```text
//! uniform   u = (2k + 1) · 2^-24 − 1            ∈ (−1, 1), symmetric, mean exactly 0
//!           computed as (k as f32) · 2^-23 + (2^-24 − 1)  — both steps exact
//! bernoulli dropped  ⇔  k < t,  t = round(p · 2^24)  (P = t / 2^24; p = 0 never, p = 1 always)
//! gaussian  elements 2j, 2j+1 of a block pair words (x_a, x_b):
//!           u1 = (k_a + 1) · 2^-24 ∈ (0, 1],  u2 = k_b · 2^-24 ∈ [0, 1)
//!           r = sqrtf(−2 · logf(u1)),  φ = 2π · u2
//!           z_{2j} = r · cosf(φ),  z_{2j+1} = r · sinf(φ)     (libm's f32 functions)
//! ```
//!
//! The uniform and Bernoulli values are reproducible on any IEEE machine; the
//! Gaussian ones depend on the `logf`/`sinf`/`cosf` implementation, which is
//! `libm` here (called directly, so enabling `std` cannot change them).

use crate::noise::philox::{Blocks, NoiseKey, TILE, TILE_BLOCKS};

/// The shape of a unit draw, before any strength or scaling is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Uniform on (−1, 1).
    Uniform,
    /// Standard normal (Box–Muller).
    Gaussian,
}

const TWO_POW_M23: f32 = 1.0 / 8_388_608.0;
const TWO_POW_M24: f32 = 1.0 / 16_777_216.0;
/// `2^-24 − 1`, exact in `f32`.
const UNIFORM_OFFSET: f32 = TWO_POW_M24 - 1.0;

/// The uniform value of one word, `(2(x >> 8) + 1) · 2^-24 − 1`.
///
/// ```
/// use smoothout::unit::uniform_from_word;
/// assert_eq!(uniform_from_word(0), -1.0 + 2f32.powi(-24));
/// assert_eq!(uniform_from_word(u32::MAX), 1.0 - 2f32.powi(-24));
/// assert_eq!(uniform_from_word(0x8000_0000) , 2f32.powi(-24));
/// ```
#[must_use]
#[inline(always)]
pub fn uniform_from_word(x: u32) -> f32 {
    (x >> 8) as f32 * TWO_POW_M23 + UNIFORM_OFFSET
}

/// The pair of standard normals made from two words.
#[must_use]
#[inline]
pub fn gaussian_from_words(xa: u32, xb: u32) -> (f32, f32) {
    let u1 = ((xa >> 8) + 1) as f32 * TWO_POW_M24;
    let u2 = (xb >> 8) as f32 * TWO_POW_M24;
    let r = libm::sqrtf(-2.0 * libm::logf(u1));
    let phi = core::f32::consts::TAU * u2;
    let (s, c) = libm::sincosf(phi);
    (r * c, r * s)
}

/// The integer threshold of a Bernoulli draw with probability `p ∈ [0, 1]`:
/// an element is dropped when `x >> 8 < bernoulli_threshold(p)`.
#[must_use]
pub fn bernoulli_threshold(p: f64) -> u32 {
    libm::round(p * 16_777_216.0) as u32
}

/// Unit noise for the [`TILE`] elements `TILE * tile .. TILE * (tile + 1)`
/// of a stream, from the Philox blocks of `gen`.
#[inline(always)]
pub fn unit_tile<G: Blocks>(gen: G, key: NoiseKey, unit: Unit, tile: u64, out: &mut [f32; TILE]) {
    let mut words = [0u32; TILE];
    gen.blocks(key, tile * TILE_BLOCKS as u64, &mut words);
    match unit {
        Unit::Uniform => {
            for (o, &x) in out.iter_mut().zip(&words) {
                *o = uniform_from_word(x);
            }
        }
        Unit::Gaussian => {
            for (o, x) in out.chunks_exact_mut(2).zip(words.chunks_exact(2)) {
                let (z0, z1) = gaussian_from_words(x[0], x[1]);
                o[0] = z0;
                o[1] = z1;
            }
        }
    }
}

/// The unit value of one element (slow path, for tests and spot checks).
///
/// ```
/// use smoothout::{NoiseKey, unit::{unit_at, Unit}};
/// let key = NoiseKey::from_seed(1);
/// let u = unit_at(key, Unit::Uniform, 12345);
/// assert!(u > -1.0 && u < 1.0);
/// ```
#[must_use]
pub fn unit_at(key: NoiseKey, unit: Unit, index: u64) -> f32 {
    match unit {
        Unit::Uniform => uniform_from_word(key.word(index)),
        Unit::Gaussian => {
            let even = index & !1;
            let (z0, z1) = gaussian_from_words(key.word(even), key.word(even + 1));
            if index & 1 == 0 {
                z0
            } else {
                z1
            }
        }
    }
}

/// The tiles covering the elements `start .. start + len` of a stream: for
/// each, `(tile, range within the tile, range within the caller's slice)`.
#[inline(always)]
pub fn tiles(
    start: u64,
    len: usize,
) -> impl Iterator<Item = (u64, core::ops::Range<usize>, core::ops::Range<usize>)> {
    let t = TILE as u64;
    let end = start + len as u64;
    let first = start / t;
    let last = end.div_ceil(t);
    (first..last).map(move |tile| {
        let lo = (tile * t).max(start);
        let hi = ((tile + 1) * t).min(end);
        let in_tile = (lo - tile * t) as usize..(hi - tile * t) as usize;
        let in_slice = (lo - start) as usize..(hi - start) as usize;
        (tile, in_tile, in_slice)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::philox::Portable;

    #[test]
    fn uniform_is_exact_and_symmetric() {
        for k in [0u32, 1, 2, 0x7f_ffff, 0x80_0000, 0xff_fffe, 0xff_ffff] {
            let x = k << 8;
            let exact = (2.0 * f64::from(k) + 1.0) * 2f64.powi(-24) - 1.0;
            assert_eq!(f64::from(uniform_from_word(x)), exact, "k = {k}");
            // The mirror image of k is 2^24 - 1 - k.
            assert_eq!(
                uniform_from_word(x),
                -uniform_from_word((0xff_ffff - k) << 8)
            );
        }
    }

    #[test]
    fn tiles_match_single_elements() {
        let key = NoiseKey::for_draw(3, 1, 0, 2);
        for unit in [Unit::Uniform, Unit::Gaussian] {
            let mut tile = [0f32; TILE];
            unit_tile(Portable, key, unit, 5, &mut tile);
            for (i, &v) in tile.iter().enumerate() {
                let want = unit_at(key, unit, 5 * TILE as u64 + i as u64);
                assert_eq!(v.to_bits(), want.to_bits(), "{unit:?} element {i}");
            }
        }
    }

    #[test]
    fn tiles_cover_ranges_exactly() {
        for (start, len) in [
            (0u64, 0usize),
            (0, 64),
            (3, 1),
            (63, 2),
            (100, 500),
            (64, 64),
        ] {
            let mut next = 0;
            for (tile, in_tile, in_slice) in tiles(start, len) {
                assert_eq!(in_slice.start, next);
                assert_eq!(in_tile.len(), in_slice.len());
                assert_eq!(
                    tile * TILE as u64 + in_tile.start as u64,
                    start + next as u64
                );
                next = in_slice.end;
            }
            assert_eq!(next, len);
        }
    }

    #[test]
    fn bernoulli_threshold_edges() {
        assert_eq!(bernoulli_threshold(0.0), 0);
        assert_eq!(bernoulli_threshold(1.0), 1 << 24);
        assert_eq!(bernoulli_threshold(0.5), 1 << 23);
    }
}
