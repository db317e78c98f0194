//! Datasets: loaders, parsers, splits, shuffling and augmentation.
//!
//! Every loader returns a [`Dataset`]: labelled images as bytes in `NCHW`
//! order, turned into `f32` in `[0, 1]` batch by batch with
//! [`Dataset::batch_f32`].
//!
//! | dataset | loader | source |
//! |---|---|---|
//! | 8×8 digits (1 797) | [`Dataset::digits_embedded`], [`load_digits`] | embedded; `scripts/fetch-data.sh digits` |
//! | MNIST (60 000 + 10 000) | [`load_mnist`] | `scripts/fetch-data.sh mnist` |
//! | Fashion-MNIST (60 000 + 10 000) | [`load_fashion_mnist`] | `scripts/fetch-data.sh fashion-mnist` |
//! | CIFAR-10 (50 000 + 10 000) | [`load_cifar10`] | by hand: no registry ships it |
//! | CIFAR-100 (50 000 + 10 000) | [`load_cifar100`], [`load_cifar100_coarse`] | by hand |
//!
//! Loaders take the data root (`data/` by convention, see [`DatasetKind`]
//! for the folders) and fail with a [`DataError`] that says what is missing
//! or wrong and how to fix it. The parsers ([`parse_idx`], [`parse_cifar`],
//! [`parse_digits_csv`]) take bytes, reject malformed input with a typed
//! error, never panic, and never allocate more than the input justifies.
//!
//! # Example: a seeded, augmented, normalised batch
//!
//! ```
//! use smoothout_models::data::{permutation, seeded_rng, Augment, Dataset, Normalize};
//!
//! let split = Dataset::digits_embedded().shuffled_split(360, 0)?;
//! let norm = Normalize::fit(&split.train)?;
//! let augment = Augment::none().with_crop(1);
//! let mut rng = seeded_rng(1);
//!
//! let order = permutation(split.train.len(), 2);     // one epoch's order
//! let batch_idx = &order[..32];
//! let mut x = vec![0.0f32; 32 * split.train.image_len()];
//! let mut y = vec![0usize; 32];
//! split.train.batch_f32(batch_idx, &mut x)?;
//! split.train.batch_labels(batch_idx, &mut y)?;
//! augment.apply(&mut x, split.train.image_shape(), &mut rng)?;
//! norm.apply(&mut x, split.train.image_shape())?;
//! assert!(y.iter().all(|&label| label < 10));
//! # Ok::<(), smoothout_models::data::DataError>(())
//! ```

mod augment;
mod catalog;
mod checksum;
mod cifar;
mod dataset;
mod digits;
mod error;
mod gzip;
mod idx;
mod kind;
mod normalize;

pub use augment::Augment;
pub use catalog::{verify, KnownFile, KNOWN_FILES};
pub use checksum::{sha256_file, sha256_hex};
pub use cifar::{
    load_cifar10, load_cifar100, load_cifar100_coarse, parse_cifar, CifarLayout, CIFAR_IMAGE_LEN,
};
pub use dataset::{Dataset, Split};
pub use digits::{load_digits, parse_digits_csv, DIGITS_CSV_GZ, DIGITS_FIELDS, DIGITS_MAX_PIXEL};
pub use error::{DataError, Result};
pub use gzip::MAX_DECOMPRESSED;
pub use idx::{load_fashion_mnist, load_idx_files, load_mnist, parse_idx};
pub use kind::DatasetKind;
pub use normalize::Normalize;
// The seeded generator lives in `crate::rng` (the layers use it too); the
// data keep their names for it.
pub use crate::rng::{permutation, seeded_rng, shuffle, uniform_below, Xoshiro256PlusPlus};
