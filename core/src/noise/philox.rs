//! Philox4x32-10, the counter-based generator behind every noise draw.
//!
//! The block function follows the Random123 layout (Salmon et al., SC'11),
//! which is also cuRAND's `curand_Philox4x32_10`: a 128-bit counter
//! `[c0, c1, c2, c3]` and a 64-bit key `[k0, k1]` give four 32-bit words.
//!
//! ```text
//! round:   (hi0, lo0) = M0 * c0        (hi1, lo1) = M1 * c2      (32x32 -> 64 bit)
//!          c = [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0]
//! key bump between rounds: k0 += W0, k1 += W1        (wrapping)
//! M0 = 0xD2511F53  M1 = 0xCD9E8D57  W0 = 0x9E3779B9  W1 = 0xBB67AE85
//! ```
//!
//! # Keys and counters
//!
//! A [`NoiseKey`] is derived JAX-style: `NoiseKey::from_seed(seed)` splits the
//! seed into `[lo32, hi32]`, and [`NoiseKey::fold_in`] hashes a 64-bit value
//! into the key by running the block function on the counter
//! `[lo32(v), hi32(v), 0, 0]` under the current key and keeping the first two
//! output words. The noise for element `i` of a parameter is then word `i % 4`
//! of the block at counter `[lo32(i / 4), hi32(i / 4), 0, 0]` under the key
//! `from_seed(seed).fold_in(step).fold_in(ghost).fold_in(param)`.

/// First round multiplier.
pub const M0: u32 = 0xD251_1F53;
/// Second round multiplier.
pub const M1: u32 = 0xCD9E_8D57;
/// First key increment (golden ratio).
pub const W0: u32 = 0x9E37_79B9;
/// Second key increment (sqrt(3) - 1).
pub const W1: u32 = 0xBB67_AE85;

/// Blocks generated together by [`blocks`]: 32 blocks are 128 words, four
/// independent 512-bit vectors of eight blocks for each round (16 blocks
/// were about 7% slower per word).
pub const TILE_BLOCKS: usize = 32;
/// Words (noise elements) per tile.
pub const TILE: usize = 4 * TILE_BLOCKS;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

/// One Philox4x32-10 block: `counter`, `key` → four words.
///
/// ```
/// use smoothout::philox::philox4x32_10;
/// assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
/// ```
#[must_use]
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// [`TILE_BLOCKS`] consecutive blocks, counters `first, first + 1, …`, with
/// the upper counter words zero, written word-interleaved into `out` so that
/// `out[4 * j + w]` is word `w` of block `first + j`.
///
/// The rounds run over arrays of lanes (structure of arrays), which the
/// compiler turns into vector multiplies; the result equals calling
/// [`philox4x32_10`] block by block.
#[inline(always)]
pub fn blocks(key: NoiseKey, first: u64, out: &mut [u32; TILE]) {
    // Each 32-bit word lives in the low half of a 64-bit lane, so the
    // 32×32→64-bit products map onto one vector multiply (`pmuludq`, which
    // reads only the low halves) with no widening or narrowing shuffles. The
    // high halves of the lanes are left to hold garbage: nothing reads them
    // but the final truncation, which drops them.
    const LO: u64 = 0xffff_ffff;
    let mut c0 = [0u64; TILE_BLOCKS];
    let mut c1 = [0u64; TILE_BLOCKS];
    let mut c2 = [0u64; TILE_BLOCKS];
    let mut c3 = [0u64; TILE_BLOCKS];
    for j in 0..TILE_BLOCKS {
        let n = first.wrapping_add(j as u64);
        c0[j] = n & LO;
        c1[j] = n >> 32;
    }
    let (k0, k1) = (u64::from(key.0[0]), u64::from(key.0[1]));
    // The ten rounds are written out so that the lanes stay in registers.
    macro_rules! rounds {
        ($($r:literal)*) => {$(
            let rk0 = k0.wrapping_add($r * u64::from(W0));
            let rk1 = k1.wrapping_add($r * u64::from(W1));
            for j in 0..TILE_BLOCKS {
                let p0 = (c0[j] & LO) * u64::from(M0);
                let p1 = (c2[j] & LO) * u64::from(M1);
                let n0 = (p1 >> 32) ^ c1[j] ^ rk0;
                let n2 = (p0 >> 32) ^ c3[j] ^ rk1;
                c0[j] = n0;
                c1[j] = p1;
                c2[j] = n2;
                c3[j] = p0;
            }
        )*};
    }
    rounds!(0 1 2 3 4 5 6 7 8 9);
    for j in 0..TILE_BLOCKS {
        out[4 * j] = c0[j] as u32;
        out[4 * j + 1] = c1[j] as u32;
        out[4 * j + 2] = c2[j] as u32;
        out[4 * j + 3] = c3[j] as u32;
    }
}

/// Where a tile's Philox blocks come from. [`Portable`] is [`blocks`],
/// which every target compiles; a backend may bring vector code of its own
/// for a wider instruction set, which must write the same words (the CPU
/// backend's AVX-512 tiles are tested against [`blocks`]).
pub trait Blocks: Copy {
    /// Blocks `first .. first + TILE_BLOCKS` of `key`'s stream, laid out as
    /// [`blocks`] lays them out.
    fn blocks(self, key: NoiseKey, first: u64, out: &mut [u32; TILE]);
}

/// The portable tiles: [`blocks`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Portable;

impl Blocks for Portable {
    #[inline(always)]
    fn blocks(self, key: NoiseKey, first: u64, out: &mut [u32; TILE]) {
        blocks(key, first, out);
    }
}

/// A 64-bit Philox key naming one independent noise stream.
///
/// Keys are values: copying one copies a name, not a generator state. The
/// stream a key names is addressed by element index, so there is no state to
/// advance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NoiseKey(pub [u32; 2]);

impl NoiseKey {
    /// The root key of a seed: `[lo32(seed), hi32(seed)]`.
    #[must_use]
    pub const fn from_seed(seed: u64) -> Self {
        NoiseKey([seed as u32, (seed >> 32) as u32])
    }

    /// A new key derived from this one and `value` (JAX `fold_in`): the
    /// first two words of the block at counter `[lo32(value), hi32(value), 0, 0]`.
    #[must_use]
    pub fn fold_in(self, value: u64) -> Self {
        let out = philox4x32_10([value as u32, (value >> 32) as u32, 0, 0], self.0);
        NoiseKey([out[0], out[1]])
    }

    /// The key of one parameter's noise for one draw:
    /// `from_seed(seed).fold_in(step).fold_in(ghost).fold_in(param)`.
    ///
    /// ```
    /// use smoothout::NoiseKey;
    /// let a = NoiseKey::for_draw(7, 100, 0, 3);
    /// assert_ne!(a, NoiseKey::for_draw(7, 100, 1, 3)); // a fresh draw per ghost batch
    /// assert_eq!(a, NoiseKey::from_seed(7).fold_in(100).fold_in(0).fold_in(3));
    /// ```
    #[must_use]
    pub fn for_draw(seed: u64, step: u64, ghost: u64, param: u64) -> Self {
        Self::from_seed(seed)
            .fold_in(step)
            .fold_in(ghost)
            .fold_in(param)
    }

    /// The raw 32-bit word for element `index` of this key's stream.
    #[must_use]
    pub fn word(self, index: u64) -> u32 {
        let b = index / 4;
        philox4x32_10([b as u32, (b >> 32) as u32, 0, 0], self.0)[(index % 4) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's published known-answer vectors for Philox4x32-10
    /// (`kat_vectors`): counter, key, expected output.
    const KAT: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0; 4],
            [0; 2],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [0xffff_ffff; 4],
            [0xffff_ffff; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];

    #[test]
    fn random123_known_answers() {
        for (ctr, key, expected) in KAT {
            assert_eq!(
                philox4x32_10(ctr, key),
                expected,
                "ctr {ctr:08x?} key {key:08x?}"
            );
        }
    }

    #[test]
    fn tiles_equal_single_blocks() {
        let key = NoiseKey::from_seed(0xdead_beef_1234);
        for first in [0u64, 1, 15, u64::from(u32::MAX) - 3, u64::MAX - 20] {
            let mut tile = [0u32; TILE];
            blocks(key, first, &mut tile);
            for j in 0..TILE_BLOCKS {
                let n = first.wrapping_add(j as u64);
                let want = philox4x32_10([n as u32, (n >> 32) as u32, 0, 0], key.0);
                assert_eq!(&tile[4 * j..4 * j + 4], &want, "block {n}");
            }
        }
    }

    #[test]
    fn folding_separates_every_coordinate() {
        let base = NoiseKey::for_draw(1, 2, 3, 4);
        assert_ne!(base, NoiseKey::for_draw(2, 2, 3, 4));
        assert_ne!(base, NoiseKey::for_draw(1, 3, 3, 4));
        assert_ne!(base, NoiseKey::for_draw(1, 2, 4, 4));
        assert_ne!(base, NoiseKey::for_draw(1, 2, 3, 5));
        // The coordinates are ordered: swapping two is a different key.
        assert_ne!(base, NoiseKey::for_draw(1, 3, 2, 4));
    }
}
