//! 1. Unbiasedness (Eq. 6, 8) — to be written.

use crate::Row;

/// Title in the report.
pub const NAME: &str = "1. Unbiasedness (Eq. 6, 8)";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "";

/// The report rows.
pub fn rows() -> Vec<Row> {
    Vec::new()
}
