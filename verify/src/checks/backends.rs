//! 9. Backend agreement — to be written.

use crate::Row;

/// Title in the report.
pub const NAME: &str = "9. Backend agreement";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "";

/// The report rows.
pub fn rows() -> Vec<Row> {
    Vec::new()
}
