//! The in-memory labelled image set every loader returns.

use super::error::{DataError, Result};
use crate::rng::permutation;

/// Labelled images in memory: `n` images of shape `[channels, height, width]`
/// stored as bytes, image after image, each channel-major then row-major
/// (`NCHW`), with one label per image.
///
/// Pixels stay bytes (a quarter of the memory of `f32`); [`Dataset::batch_f32`]
/// turns a batch into floats in `[0, 1]`:
///
/// ```text
/// x = pixel / max_pixel        max_pixel = 255 (MNIST, CIFAR) or 16 (8×8 digits)
/// ```
///
/// Every constructor validates: no example, an image dimension of zero, a
/// label not below `classes` or a pixel above `max_pixel` is an error, so a
/// `Dataset` is always consistent.
///
/// ```
/// use smoothout_models::data::Dataset;
///
/// let digits = Dataset::digits_embedded();
/// assert_eq!(digits.shape(), [1797, 1, 8, 8]);
/// assert_eq!(digits.classes(), 10);
///
/// let mut batch = vec![0.0f32; 2 * digits.image_len()];
/// digits.batch_f32(&[0, 5], &mut batch)?;
/// assert!(batch.iter().all(|&x| (0.0..=1.0).contains(&x)));
/// # Ok::<(), smoothout_models::data::DataError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    image_shape: [usize; 3],
    classes: usize,
    max_pixel: u8,
}

/// A training set and a test set with the same image shape and classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// The examples to train on.
    pub train: Dataset,
    /// The held-out examples.
    pub test: Dataset,
}

impl Dataset {
    /// A dataset from raw parts.
    ///
    /// `pixels` holds `labels.len()` images of `image_shape` =
    /// `[channels, height, width]` bytes each, in `NCHW` order.
    ///
    /// # Errors
    /// * [`DataError::InvalidSetting`]: `classes` not in `1..=256`, or
    ///   `max_pixel` zero.
    /// * [`DataError::Empty`]: no labels, or a zero in `image_shape`.
    /// * [`DataError::LengthMismatch`]: `pixels` not a whole number of images.
    /// * [`DataError::CountMismatch`]: images and labels differ in number.
    /// * [`DataError::LabelOutOfRange`], [`DataError::PixelOutOfRange`].
    ///
    /// ```
    /// use smoothout_models::data::{DataError, Dataset};
    ///
    /// let two = Dataset::new(vec![0, 255, 7, 9], vec![1, 0], [1, 1, 2], 2, 255)?;
    /// assert_eq!(two.image(1), Some(&[7u8, 9][..]));
    ///
    /// let bad = Dataset::new(vec![0, 0], vec![3], [1, 1, 2], 2, 255);
    /// assert!(matches!(bad, Err(DataError::LabelOutOfRange { label: 3, .. })));
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<u8>,
        image_shape: [usize; 3],
        classes: usize,
        max_pixel: u8,
    ) -> Result<Self> {
        if !(1..=256).contains(&classes) {
            return Err(DataError::InvalidSetting {
                name: "classes",
                value: classes.to_string(),
                expected: "1 to 256 (labels are bytes)",
            });
        }
        if max_pixel == 0 {
            return Err(DataError::InvalidSetting {
                name: "max_pixel",
                value: "0".into(),
                expected: "1 to 255",
            });
        }
        if image_shape.contains(&0) {
            return Err(DataError::Empty {
                what: "image shape",
            });
        }
        let image_len = image_shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| DataError::InvalidSetting {
                name: "image_shape",
                value: format!("{image_shape:?}"),
                expected: "an image size that fits in memory",
            })?;
        if labels.is_empty() {
            return Err(DataError::Empty { what: "dataset" });
        }
        if !pixels.len().is_multiple_of(image_len) {
            return Err(DataError::LengthMismatch {
                what: "pixels (a whole number of images)",
                expected: labels.len().saturating_mul(image_len),
                actual: pixels.len(),
            });
        }
        let images = pixels.len() / image_len;
        if images != labels.len() {
            return Err(DataError::CountMismatch {
                images,
                labels: labels.len(),
            });
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= classes)
        {
            return Err(DataError::LabelOutOfRange {
                index,
                label: u32::from(label),
                classes,
            });
        }
        if max_pixel < u8::MAX {
            if let Some(pos) = pixels.iter().position(|&p| p > max_pixel) {
                return Err(DataError::PixelOutOfRange {
                    index: pos / image_len,
                    value: u32::from(pixels[pos]),
                    max: max_pixel,
                });
            }
        }
        Ok(Dataset {
            pixels,
            labels,
            image_shape,
            classes,
            max_pixel,
        })
    }

    /// Number of examples (never zero).
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always `false`: a `Dataset` holds at least one example.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[n, channels, height, width]`.
    #[must_use]
    pub fn shape(&self) -> [usize; 4] {
        let [c, h, w] = self.image_shape;
        [self.len(), c, h, w]
    }

    /// `[channels, height, width]` of one image.
    #[must_use]
    pub fn image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    /// Values per image: `channels · height · width`.
    #[must_use]
    pub fn image_len(&self) -> usize {
        let [c, h, w] = self.image_shape;
        c * h * w
    }

    /// Number of classes; every label is below it.
    #[must_use]
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The pixel value that maps to 1.0 (255, or 16 for the 8×8 digits).
    #[must_use]
    pub fn max_pixel(&self) -> u8 {
        self.max_pixel
    }

    /// All labels, one per example.
    #[must_use]
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// All pixels, `NCHW`, as stored.
    #[must_use]
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixels of example `index`, or `None` past the end.
    #[must_use]
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let len = self.image_len();
        let start = index.checked_mul(len)?;
        self.pixels.get(start..start.checked_add(len)?)
    }

    /// The label of example `index`, or `None` past the end.
    #[must_use]
    pub fn label(&self, index: usize) -> Option<u8> {
        self.labels.get(index).copied()
    }

    /// How many examples each class has (`classes()` entries).
    ///
    /// ```
    /// use smoothout_models::data::Dataset;
    ///
    /// let counts = Dataset::digits_embedded().class_counts();
    /// assert_eq!(counts.iter().sum::<usize>(), 1797);
    /// ```
    #[must_use]
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// Writes the examples at `indices` into `out` as floats in `[0, 1]`
    /// (`pixel / max_pixel`), image after image in `NCHW` order; no
    /// allocation.
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when `out.len()` is not
    /// `indices.len() · image_len()`; [`DataError::IndexOutOfRange`] for an
    /// index past the end (then `out` is partly written).
    pub fn batch_f32(&self, indices: &[usize], out: &mut [f32]) -> Result<()> {
        let len = self.image_len();
        let expected = indices.len().saturating_mul(len);
        if out.len() != expected {
            return Err(DataError::LengthMismatch {
                what: "output buffer",
                expected,
                actual: out.len(),
            });
        }
        let table = self.to_f32_table();
        for (&index, dst) in indices.iter().zip(out.chunks_exact_mut(len)) {
            let src = self.image(index).ok_or(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            })?;
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = table[usize::from(s)];
            }
        }
        Ok(())
    }

    /// The labels of the examples at `indices`, as `usize` class indices,
    /// written into `out`.
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when `out.len() != indices.len()`;
    /// [`DataError::IndexOutOfRange`] for an index past the end.
    pub fn batch_labels(&self, indices: &[usize], out: &mut [usize]) -> Result<()> {
        if out.len() != indices.len() {
            return Err(DataError::LengthMismatch {
                what: "label buffer",
                expected: indices.len(),
                actual: out.len(),
            });
        }
        for (&index, dst) in indices.iter().zip(out) {
            *dst = usize::from(self.label(index).ok_or(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            })?);
        }
        Ok(())
    }

    /// Every image as floats in `[0, 1]`, `NCHW` (four bytes per pixel:
    /// prefer [`batch_f32`](Self::batch_f32) for large sets).
    #[must_use]
    pub fn to_f32(&self) -> Vec<f32> {
        let table = self.to_f32_table();
        self.pixels.iter().map(|&p| table[usize::from(p)]).collect()
    }

    /// `pixel / max_pixel` for every byte value, correctly rounded.
    fn to_f32_table(&self) -> [f32; 256] {
        let max = f32::from(self.max_pixel);
        std::array::from_fn(|v| f32::from(v as u8) / max)
    }

    /// A new dataset of the examples at `indices`, in that order (repeats
    /// allowed).
    ///
    /// # Errors
    /// [`DataError::Empty`] for no indices, [`DataError::IndexOutOfRange`].
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        if indices.is_empty() {
            return Err(DataError::Empty { what: "subset" });
        }
        let mut pixels = Vec::with_capacity(indices.len().saturating_mul(self.image_len()));
        let mut labels = Vec::with_capacity(indices.len());
        for &index in indices {
            let image = self.image(index).ok_or(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            })?;
            pixels.extend_from_slice(image);
            labels.push(self.labels[index]);
        }
        Ok(Dataset {
            pixels,
            labels,
            ..*self
        })
    }

    /// The first `train_len` examples as the training set, the rest as the
    /// test set.
    ///
    /// # Errors
    /// [`DataError::InvalidSetting`] unless `0 < train_len < len()`.
    pub fn split_at(&self, train_len: usize) -> Result<Split> {
        if train_len == 0 || train_len >= self.len() {
            return Err(DataError::InvalidSetting {
                name: "train_len",
                value: train_len.to_string(),
                expected: "at least 1 and less than the number of examples",
            });
        }
        let at = train_len * self.image_len();
        let part = |pixels: &[u8], labels: &[u8]| Dataset {
            pixels: pixels.to_vec(),
            labels: labels.to_vec(),
            ..*self
        };
        Ok(Split {
            train: part(&self.pixels[..at], &self.labels[..train_len]),
            test: part(&self.pixels[at..], &self.labels[train_len..]),
        })
    }

    /// A random split with `test_len` test examples: the examples are
    /// permuted by [`permutation`]`(len, seed)`, the first `test_len` of the
    /// permutation form the test set and the rest the training set, each
    /// kept in the original order.
    ///
    /// ```
    /// use smoothout_models::data::Dataset;
    ///
    /// let split = Dataset::digits_embedded().shuffled_split(360, 0)?;
    /// assert_eq!((split.train.len(), split.test.len()), (1437, 360));
    /// # Ok::<(), smoothout_models::data::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::InvalidSetting`] unless `0 < test_len < len()`.
    pub fn shuffled_split(&self, test_len: usize, seed: u64) -> Result<Split> {
        if test_len == 0 || test_len >= self.len() {
            return Err(DataError::InvalidSetting {
                name: "test_len",
                value: test_len.to_string(),
                expected: "at least 1 and less than the number of examples",
            });
        }
        let mut perm = permutation(self.len(), seed);
        let (test, train) = perm.split_at_mut(test_len);
        test.sort_unstable();
        train.sort_unstable();
        Ok(Split {
            train: self.subset(train)?,
            test: self.subset(test)?,
        })
    }

    /// The examples of `parts` one after another.
    ///
    /// # Errors
    /// [`DataError::Empty`] for no parts; [`DataError::InvalidSetting`] when
    /// the parts differ in image shape, classes or maximum pixel.
    pub fn concat(parts: &[Dataset]) -> Result<Dataset> {
        let first = parts.first().ok_or(DataError::Empty { what: "concat" })?;
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for part in parts {
            if !part.same_kind(first) {
                return Err(DataError::InvalidSetting {
                    name: "concat parts",
                    value: format!(
                        "{:?} / {} classes vs {:?} / {} classes",
                        part.image_shape, part.classes, first.image_shape, first.classes
                    ),
                    expected: "the same image shape, classes and maximum pixel",
                });
            }
            pixels.extend_from_slice(&part.pixels);
            labels.extend_from_slice(&part.labels);
        }
        Ok(Dataset {
            pixels,
            labels,
            ..*first
        })
    }

    /// Whether `other` has the same image shape, classes and maximum pixel.
    fn same_kind(&self, other: &Dataset) -> bool {
        self.image_shape == other.image_shape
            && self.classes == other.classes
            && self.max_pixel == other.max_pixel
    }
}
