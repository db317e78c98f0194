//! 6. AdaSmoothOut invariance — to be written.

use crate::Row;

/// Title in the report.
pub const NAME: &str = "6. AdaSmoothOut invariance";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "";

/// The report rows.
pub fn rows() -> Vec<Row> {
    Vec::new()
}
