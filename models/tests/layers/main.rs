//! Layers and networks: forward passes, finite-difference gradient checks,
//! every network's forward and backward pass, parameter lists and counts.
//!
//! One test crate of smoothout-models per area, so that it links once; each
//! module holds the tests of one topic. Shared helpers: `tests/support/`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod forward;
mod gradcheck;
mod networks_forward;
mod networks_param_lists;
mod networks_params;
mod owned;
