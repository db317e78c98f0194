//! Datasets: augmentation, the catalogue, the file formats (CIFAR, digits,
//! IDX), `Dataset`, the parsers under fuzzing and the real fetched
//! datasets.
//!
//! One test crate of smoothout-models per area, so that it links once; each
//! module holds the tests of one topic. Shared helpers: `tests/support/`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod augment;
mod catalog;
mod cifar;
mod dataset;
mod digits;
mod fuzz;
mod idx;
mod real;
