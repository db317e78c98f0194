//! The theorems of the SmoothOut paper as property tests and a printed report, and the runners for its tables, will live here; nothing is implemented yet.
