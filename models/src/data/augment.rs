//! Seeded data augmentation: random crop with zero padding and random
//! horizontal flip, in place on `f32` images.

use rand_core::RngCore;

use super::error::{DataError, Result};
use crate::rng::uniform_below;

/// Random crop with zero padding and random horizontal flip, the standard
/// CIFAR augmentation (He et al.: pad 4, crop 32×32, flip half the images).
///
/// For each image, in this order, the generator supplies
///
/// ```text
/// dy, dx ∈ {−p, …, p}   two uniform_below(2p + 1) draws minus p   (only if p > 0)
/// flip   ∈ {no, yes}    the top bit of one next_u64               (only if flip is on)
/// ```
///
/// and every channel becomes
///
/// ```text
/// out[y][x] = in[y + dy][x + dx]   (0 where y + dy or x + dx falls outside)
/// out[y][x] = out[y][w − 1 − x]    if flip
/// ```
///
/// which is a crop of the image padded by `p` zeros on every side. Apply it
/// to pixels in `[0, 1]` before [`Normalize`](super::Normalize), so that the
/// padding is black as in the reference pipelines. The same seed gives the
/// same result on every machine and thread count: batches are processed
/// image after image.
///
/// ```
/// use smoothout_models::data::{seeded_rng, Augment, Dataset};
///
/// let digits = Dataset::digits_embedded();
/// let mut batch = vec![0.0f32; 4 * digits.image_len()];
/// digits.batch_f32(&[0, 1, 2, 3], &mut batch)?;
/// let before = batch.clone();
///
/// Augment::none().with_crop(1).with_flip(true)
///     .apply(&mut batch, digits.image_shape(), &mut seeded_rng(0))?;
/// assert_ne!(batch, before);
/// # Ok::<(), smoothout_models::data::DataError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Augment {
    padding: usize,
    flip: bool,
}

impl Augment {
    /// No augmentation: [`apply`](Self::apply) leaves images unchanged and
    /// draws nothing.
    #[must_use]
    pub fn none() -> Self {
        Augment {
            padding: 0,
            flip: false,
        }
    }

    /// Padding 4 and horizontal flip: the CIFAR augmentation of the paper's
    /// ResNet experiments.
    #[must_use]
    pub fn cifar() -> Self {
        Augment {
            padding: 4,
            flip: true,
        }
    }

    /// Random crop after `padding` zeros on every side (0: no crop).
    #[must_use]
    pub fn with_crop(self, padding: usize) -> Self {
        Augment { padding, ..self }
    }

    /// Random horizontal flip of half the images (on average).
    #[must_use]
    pub fn with_flip(self, flip: bool) -> Self {
        Augment { flip, ..self }
    }

    /// The crop padding.
    #[must_use]
    pub fn padding(&self) -> usize {
        self.padding
    }

    /// Whether images are flipped at random.
    #[must_use]
    pub fn flip(&self) -> bool {
        self.flip
    }

    /// Augments each image of `batch` (images of `image_shape` =
    /// `[channels, height, width]`, one after another) in place.
    ///
    /// # Errors
    /// [`DataError::Empty`] for a zero in `image_shape`;
    /// [`DataError::LengthMismatch`] when `batch` is not a whole number of
    /// images; [`DataError::InvalidSetting`] when the padding exceeds the
    /// height or width. Nothing is changed or drawn on error.
    pub fn apply<R: RngCore + ?Sized>(
        &self,
        batch: &mut [f32],
        image_shape: [usize; 3],
        rng: &mut R,
    ) -> Result<()> {
        let len = self.check(image_shape)?;
        DataError::check_whole_images(batch.len(), len)?;
        for image in batch.chunks_exact_mut(len) {
            self.apply_unchecked(image, image_shape, rng);
        }
        Ok(())
    }

    /// Augments one image in place.
    ///
    /// # Errors
    /// As [`apply`](Self::apply), with [`DataError::LengthMismatch`] when
    /// `image.len()` is not `channels · height · width`.
    pub fn apply_image<R: RngCore + ?Sized>(
        &self,
        image: &mut [f32],
        image_shape: [usize; 3],
        rng: &mut R,
    ) -> Result<()> {
        let len = self.check(image_shape)?;
        if image.len() != len {
            return Err(DataError::LengthMismatch {
                what: "image",
                expected: len,
                actual: image.len(),
            });
        }
        self.apply_unchecked(image, image_shape, rng);
        Ok(())
    }

    /// Validates the shape and padding; returns the image length.
    fn check(&self, image_shape: [usize; 3]) -> Result<usize> {
        let [c, h, w] = image_shape;
        if image_shape.contains(&0) {
            return Err(DataError::Empty {
                what: "image shape",
            });
        }
        if self.padding > h || self.padding > w {
            return Err(DataError::InvalidSetting {
                name: "crop padding",
                value: self.padding.to_string(),
                expected: "at most the image height and width",
            });
        }
        c.checked_mul(h)
            .and_then(|v| v.checked_mul(w))
            .ok_or_else(|| DataError::InvalidSetting {
                name: "image_shape",
                value: format!("{image_shape:?}"),
                expected: "an image size that fits in memory",
            })
    }

    fn apply_unchecked<R: RngCore + ?Sized>(
        &self,
        image: &mut [f32],
        [_, h, w]: [usize; 3],
        rng: &mut R,
    ) {
        let (mut dy, mut dx) = (0isize, 0isize);
        if self.padding > 0 {
            // padding ≤ h, w, which are image dimensions: 2p + 1 fits easily.
            let span = 2 * self.padding as u64 + 1;
            let p = self.padding as isize;
            dy = uniform_below(rng, span) as isize - p;
            dx = uniform_below(rng, span) as isize - p;
        }
        let flip = self.flip && rng.next_u64() >> 63 == 1;
        for plane in image.chunks_exact_mut(h * w) {
            shift_plane(plane, h, w, dy, dx);
            if flip {
                for row in plane.chunks_exact_mut(w) {
                    row.reverse();
                }
            }
        }
    }
}

/// `plane[y][x] ← plane[y + dy][x + dx]` (0 outside), in place.
///
/// Visiting rows in the direction of `dy` and columns in the direction of
/// `dx` means every source element is read before it is overwritten.
fn shift_plane(plane: &mut [f32], h: usize, w: usize, dy: isize, dx: isize) {
    if dy == 0 && dx == 0 {
        return;
    }
    let (hi, wi) = (h as isize, w as isize);
    for k in 0..hi {
        let y = if dy > 0 { k } else { hi - 1 - k };
        let sy = y + dy;
        for j in 0..wi {
            let x = if dx > 0 { j } else { wi - 1 - j };
            let sx = x + dx;
            let value = if (0..hi).contains(&sy) && (0..wi).contains(&sx) {
                plane[(sy * wi + sx) as usize]
            } else {
                0.0
            };
            plane[(y * wi + x) as usize] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference: pad into a fresh buffer, then crop.
    fn shift_reference(src: &[f32], h: usize, w: usize, dy: isize, dx: isize) -> Vec<f32> {
        let mut out = vec![0.0; h * w];
        for y in 0..h as isize {
            for x in 0..w as isize {
                let (sy, sx) = (y + dy, x + dx);
                if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                    out[(y * w as isize + x) as usize] = src[(sy * w as isize + sx) as usize];
                }
            }
        }
        out
    }

    #[test]
    fn in_place_shift_matches_reference() {
        let (h, w) = (5, 7);
        let src: Vec<f32> = (0..h * w).map(|i| i as f32 + 1.0).collect();
        for dy in -5..=5 {
            for dx in -7..=7 {
                let mut plane = src.clone();
                shift_plane(&mut plane, h, w, dy, dx);
                assert_eq!(
                    plane,
                    shift_reference(&src, h, w, dy, dx),
                    "dy={dy} dx={dx}"
                );
            }
        }
    }
}
