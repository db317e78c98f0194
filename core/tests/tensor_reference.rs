//! The shared tensor-op suite ([`smoothout::testgen::tensor`]) on the
//! [`Reference`] backend: its wrapper against the plain-loop functions,
//! the hand-computed answers and identities, and every error case.
//!
//! Run with `cargo test -p smoothout --features testgen`.
#![cfg(feature = "testgen")]

use smoothout::Reference;

smoothout::tensor_backend_tests!(tensor_f32, Reference::<f32>::new(), |v: Vec<f32>| v);
smoothout::tensor_backend_tests!(tensor_f64, Reference::<f64>::new(), |v: Vec<f64>| v);
