//! Helpers shared by smoothout-models' test crates: deterministic data, the
//! finite-difference gradient check and `per_backend!` (layers), small files
//! in the dataset formats (data), scratch directories and byte damage
//! (files), and running the `smoothout` program (program). Each test crate
//! includes this folder as its `support` module and uses what it needs.
#![allow(dead_code, unused_macros)]

#[macro_use]
pub mod layers;

pub mod data;
pub mod files;
pub mod program;
