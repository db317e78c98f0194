//! 7. Dropout as Bernoulli noise — to be written.

use crate::Row;

/// Title in the report.
pub const NAME: &str = "7. Dropout as Bernoulli noise";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "";

/// The report rows.
pub fn rows() -> Vec<Row> {
    Vec::new()
}
