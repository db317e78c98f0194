//! Per-channel normalisation to zero mean and unit variance.

use super::dataset::Dataset;
use super::error::{DataError, Result};

/// Per-channel normalisation of `f32` images:
///
/// ```text
/// x ← (x − mean[c]) / std[c]      for every value x of channel c
/// ```
///
/// Use [`Normalize::fit`] for the statistics of a training set (computed
/// exactly from pixel histograms), or [`Normalize::new`] for published
/// ones.
///
/// ```
/// use smoothout_models::data::{Dataset, Normalize};
///
/// let digits = Dataset::digits_embedded();
/// let norm = Normalize::fit(&digits)?;
/// let mut all = digits.to_f32();
/// norm.apply(&mut all, digits.image_shape())?;
/// let mean = all.iter().map(|&x| f64::from(x)).sum::<f64>() / all.len() as f64;
/// assert!(mean.abs() < 1e-5);
/// # Ok::<(), smoothout_models::data::DataError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// Normalisation with the given per-channel means and standard
    /// deviations.
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when the two differ in length;
    /// [`DataError::Empty`] when they are empty;
    /// [`DataError::InvalidSetting`] for a mean that is not finite or a
    /// standard deviation that is not finite and positive.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.len() != std.len() {
            return Err(DataError::LengthMismatch {
                what: "std (one per channel, like mean)",
                expected: mean.len(),
                actual: std.len(),
            });
        }
        if mean.is_empty() {
            return Err(DataError::Empty {
                what: "normalisation statistics",
            });
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(DataError::InvalidSetting {
                name: "mean",
                value: m.to_string(),
                expected: "a finite number",
            });
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(DataError::InvalidSetting {
                name: "std",
                value: s.to_string(),
                expected: "a finite positive number",
            });
        }
        Ok(Normalize { mean, std })
    }

    /// The per-channel mean and (population) standard deviation of
    /// `dataset`'s pixels scaled to `[0, 1]`, as [`Dataset::batch_f32`]
    /// produces them. Computed in `f64` from exact per-channel histograms,
    /// so the result does not depend on the order of the examples.
    ///
    /// # Errors
    /// [`DataError::InvalidSetting`] when a channel is constant (zero
    /// standard deviation).
    pub fn fit(dataset: &Dataset) -> Result<Self> {
        let [channels, h, w] = dataset.image_shape();
        let plane = h * w;
        let mut hist = vec![[0u64; 256]; channels];
        for image in dataset.pixels().chunks_exact(channels * plane) {
            for (c, values) in image.chunks_exact(plane).enumerate() {
                for &v in values {
                    hist[c][usize::from(v)] += 1;
                }
            }
        }
        let max = f64::from(dataset.max_pixel());
        let mut mean = Vec::with_capacity(channels);
        let mut std = Vec::with_capacity(channels);
        for counts in &hist {
            let n: u64 = counts.iter().sum();
            let n = n as f64;
            let m = counts
                .iter()
                .enumerate()
                .map(|(v, &k)| v as f64 / max * k as f64)
                .sum::<f64>()
                / n;
            let var = counts
                .iter()
                .enumerate()
                .map(|(v, &k)| (v as f64 / max - m).powi(2) * k as f64)
                .sum::<f64>()
                / n;
            mean.push(m as f32);
            std.push(var.sqrt() as f32);
        }
        Normalize::new(mean, std).map_err(|_| DataError::InvalidSetting {
            name: "dataset",
            value: "a channel with one pixel value".into(),
            expected: "varying pixels in every channel (else normalisation divides by 0)",
        })
    }

    /// The per-channel means.
    #[must_use]
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The per-channel standard deviations.
    #[must_use]
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Normalises every image of `batch` (images of `image_shape`, one after
    /// another) in place.
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when the shape has another channel
    /// count than the statistics, or `batch` is not a whole number of
    /// images; [`DataError::Empty`] for a zero in `image_shape`. Nothing is
    /// changed on error.
    pub fn apply(&self, batch: &mut [f32], image_shape: [usize; 3]) -> Result<()> {
        let [c, h, w] = image_shape;
        if c != self.mean.len() {
            return Err(DataError::LengthMismatch {
                what: "image channels (one mean and std each)",
                expected: self.mean.len(),
                actual: c,
            });
        }
        if image_shape.contains(&0) {
            return Err(DataError::Empty {
                what: "image shape",
            });
        }
        let plane = h.saturating_mul(w);
        let len = plane.saturating_mul(c);
        DataError::check_whole_images(batch.len(), len)?;
        for image in batch.chunks_exact_mut(len) {
            for ((values, &m), &s) in image.chunks_exact_mut(plane).zip(&self.mean).zip(&self.std) {
                for x in values {
                    *x = (*x - m) / s;
                }
            }
        }
        Ok(())
    }
}
