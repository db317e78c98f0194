//! 2. Theorem 1: flat constraint — to be written.

use crate::Row;

/// Title in the report.
pub const NAME: &str = "2. Theorem 1: flat constraint";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "";

/// The report rows.
pub fn rows() -> Vec<Row> {
    Vec::new()
}
