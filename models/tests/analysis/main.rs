//! Analysis: Hessian measures, loss landscapes, L-BFGS-B, plotting and
//! sharpness.
//!
//! One test crate of smoothout-models per area, so that it links once; each
//! module holds the tests of one topic. Shared helpers: `tests/support/`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod hessian;
mod landscape;
mod lbfgsb;
mod plot;
mod sharpness;
