//! A `rand_core` adapter: one key's noise words as an ordinary stream.

use crate::noise::philox::{philox4x32_10, NoiseKey};
use rand_core::{impls, RngCore, SeedableRng};

/// The words of a [`NoiseKey`]'s stream, in element order, as an
/// [`RngCore`]. Word `i` is exactly the word behind noise element `i`.
///
/// Not `Copy` and not `Default`: a generator is always seeded on purpose.
///
/// ```
/// use rand_core::RngCore;
/// use smoothout::{NoiseKey, PhiloxRng};
/// let key = NoiseKey::from_seed(9);
/// let mut rng = PhiloxRng::new(key);
/// assert_eq!(rng.next_u32(), key.word(0));
/// assert_eq!(rng.next_u32(), key.word(1));
/// ```
#[derive(Clone, Debug)]
pub struct PhiloxRng {
    key: NoiseKey,
    block: u64,
    buf: [u32; 4],
    pos: usize,
}

impl PhiloxRng {
    /// The stream of `key`, from element 0.
    #[must_use]
    pub fn new(key: NoiseKey) -> Self {
        PhiloxRng {
            key,
            block: 0,
            buf: [0; 4],
            pos: 4,
        }
    }
}

impl RngCore for PhiloxRng {
    fn next_u32(&mut self) -> u32 {
        if self.pos == 4 {
            let b = self.block;
            self.buf = philox4x32_10([b as u32, (b >> 32) as u32, 0, 0], self.key.0);
            self.block = b.wrapping_add(1);
            self.pos = 0;
        }
        let x = self.buf[self.pos];
        self.pos += 1;
        x
    }

    fn next_u64(&mut self) -> u64 {
        impls::next_u64_via_u32(self)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        impls::fill_bytes_via_next(self, dst);
    }
}

impl SeedableRng for PhiloxRng {
    /// The seed is the little-endian `u64` given to [`NoiseKey::from_seed`].
    type Seed = [u8; 8];

    fn from_seed(seed: [u8; 8]) -> Self {
        PhiloxRng::new(NoiseKey::from_seed(u64::from_le_bytes(seed)))
    }
}
