//! Helpers shared by smoothout-models' test crates: deterministic data, the
//! finite-difference gradient check and `per_backend!` (layers), small files
//! in the dataset formats (data), scratch directories and byte damage
//! (files), running the `smoothout` program (program), and a trainer warmed
//! up for counting a steady step's allocations (steady). Each test crate
//! includes this folder as its `support` module and uses what it needs.
#![allow(dead_code, unused_macros)]

/// `assert!(matches!(value, pattern))`, printing the value (or the
/// message given after the pattern) when it does not match. The value is
/// evaluated once and borrowed, so the pattern's bindings are references.
macro_rules! assert_matches {
    ($value:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match &$value {
            value => assert!(matches!(value, $pattern $(if $guard)?), "{:?}", value),
        }
    };
    ($value:expr, $pattern:pat $(if $guard:expr)?, $($message:tt)+) => {
        assert!(matches!(&$value, $pattern $(if $guard)?), $($message)+)
    };
}

#[macro_use]
pub mod layers;

pub mod data;
pub mod files;
pub mod program;
pub mod steady;
