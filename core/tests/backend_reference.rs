//! The shared backend suite ([`smoothout::testgen`]) on the [`Reference`]
//! backend itself: the bodies compare it with the plain-slice functions it
//! wraps, which pins the wrapper (offsets, buffer handling, errors) and
//! checks that the suite runs green on the ground truth.
//!
//! Run with `cargo test -p smoothout --features testgen`.
#![cfg(feature = "testgen")]

use smoothout::Reference;

smoothout::backend_tests!(reference_f32, Reference::<f32>::new(), |v: Vec<f32>| v);
smoothout::backend_tests!(reference_f64, Reference::<f64>::new(), |v: Vec<f64>| v);
