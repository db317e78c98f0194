//! Optimisers: learning-rate regimes and updates.
//!
//! One test crate of smoothout-models per area, so that it links once; each
//! module holds the tests of one topic. Shared helpers: `tests/support/`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod regime;
mod update;
