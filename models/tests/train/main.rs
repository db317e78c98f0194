//! Training: the trainer, checkpoints (and damaged ones), the SAM family of
//! methods, regimes through the program, and exact resumes.
//!
//! One test crate of smoothout-models per area, so that it links once; each
//! module holds the tests of one topic. Shared helpers: `tests/support/`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod checkpoint;
mod checkpoint_fuzz;
mod methods;
mod recycle;
mod regime;
mod resume;
mod trainer;
