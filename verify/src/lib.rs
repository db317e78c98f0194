//! The theory of SmoothOut (§III of the paper) checked numerically.
//!
//! Each check in [`checks`] computes rows of the report: a claim, the
//! equation it comes from, the setting, the measured value and the bound it
//! is held to (a confidence bound for Monte Carlo estimates, a quadrature or
//! rounding bound for exact computations; each check's docs justify its
//! bounds). The same functions back the property tests in `tests/`, which
//! also run deliberately broken variants to show that each check can fail.
//!
//! `cargo run -p smoothout-verify --release -- report` runs every check,
//! prints the table and writes it as markdown and JSON.
#![deny(missing_docs)]

pub mod checks;
pub mod harness;
pub mod mlp;
pub mod quad;
pub mod report;
mod row;
pub mod stats;

pub use row::{Relation, Row};
