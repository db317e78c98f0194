//! The `smoothout` program run as a user runs it: `experiment compare`,
//! `--device cuda`, errors, the flatness table, run directories and hostile
//! sizes.
//!
//! One test crate of smoothout-models per area, so that it links once; each
//! module holds the tests of one topic. Shared helpers: `tests/support/`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod compare;
mod cuda;
mod errors;
mod flatness;
mod run_dir;
mod sizes;
