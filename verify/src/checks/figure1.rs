//! 4. Figure 1 in practice — to be written.

use crate::Row;

/// Title in the report.
pub const NAME: &str = "4. Figure 1 in practice";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "";

/// The report rows.
pub fn rows() -> Vec<Row> {
    Vec::new()
}
