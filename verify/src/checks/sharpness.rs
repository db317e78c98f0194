//! 8. Sensitivity sharpness s (Eq. 9) — to be written.

use crate::Row;

/// Title in the report.
pub const NAME: &str = "8. Sensitivity sharpness s (Eq. 9)";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "";

/// The report rows.
pub fn rows() -> Vec<Row> {
    Vec::new()
}
