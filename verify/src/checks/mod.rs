//! The checks, one module each, in the order of the report.

pub mod backends;
pub mod denoising;
pub mod dropout;
pub mod figure1;
pub mod invariance;
pub mod sharpness;
pub mod theorem1;
pub mod theorem2;
pub mod unbiased;

use crate::Row;

/// A check: its title and the function that computes its report rows.
pub struct Check {
    /// Title, numbered as in the report.
    pub name: &'static str,
    /// One sentence: what passing shows.
    pub shows: &'static str,
    /// Runs the check at report scale.
    pub rows: fn() -> Vec<Row>,
}

/// Every check, in report order.
pub const ALL: &[Check] = &[
    Check {
        name: unbiased::NAME,
        shows: unbiased::SHOWS,
        rows: unbiased::rows,
    },
    Check {
        name: theorem1::NAME,
        shows: theorem1::SHOWS,
        rows: theorem1::rows,
    },
    Check {
        name: theorem2::NAME,
        shows: theorem2::SHOWS,
        rows: theorem2::rows,
    },
    Check {
        name: figure1::NAME,
        shows: figure1::SHOWS,
        rows: figure1::rows,
    },
    Check {
        name: denoising::NAME,
        shows: denoising::SHOWS,
        rows: denoising::rows,
    },
    Check {
        name: invariance::NAME,
        shows: invariance::SHOWS,
        rows: invariance::rows,
    },
    Check {
        name: dropout::NAME,
        shows: dropout::SHOWS,
        rows: dropout::rows,
    },
    Check {
        name: sharpness::NAME,
        shows: sharpness::SHOWS,
        rows: sharpness::rows,
    },
    Check {
        name: backends::NAME,
        shows: backends::SHOWS,
        rows: backends::rows,
    },
];
