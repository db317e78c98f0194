//! 3. Theorem 2: sharp constraint — to be written.

use crate::Row;

/// Title in the report.
pub const NAME: &str = "3. Theorem 2: sharp constraint";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "";

/// The report rows.
pub fn rows() -> Vec<Row> {
    Vec::new()
}
