//! `Cpu`'s BatchNorm at the widths of real networks, against the reference
//! bit for bit: many channels (several blocks of them, vectors of 16 and
//! partial ones), spatial extents that are and are not multiples of the
//! transposed runs and of 16, dense layouts (`spatial = 1`), one to three
//! threads, `f32` and `f64`. (The shared suite's layouts are a few
//! channels wide.)

use ndarray::{ArrayD, IxDyn};
use smoothout::tensor::BatchNorm;
use smoothout::testgen::tensor::{batch_norm_passes, data};
use smoothout::{Real, Reference};
use smoothout_cpu::Cpu;

/// A 1-D array holding `v`.
fn array<T>(v: Vec<T>) -> ArrayD<T> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("a 1-D shape always fits")
}

/// `(batch, channels, spatial)`.
const LAYOUTS: [(usize, usize, usize); 9] = [
    (3, 16, 32),
    (2, 37, 50),
    (2, 64, 64),
    (4, 8, 17),
    (2, 23, 16),
    (1, 130, 9),
    (2, 3, 1024),
    (5, 24, 1),
    (3, 130, 1),
];

fn check<T: Real>() {
    let reference = Reference::<T>::new();
    for (i, &(batch, channels, spatial)) in LAYOUTS.iter().enumerate() {
        let bn = BatchNorm {
            batch,
            channels,
            spatial,
            eps: 1e-5,
        };
        let salt = 900 + 10 * i as u64;
        // Inputs with a mean away from zero, as activations have, and
        // magnitudes from 2⁻²⁰ to 2²⁰, so that the sums round and the
        // order of the additions shows. (In `f32` the outputs' rounding
        // hides most of that: there the test checks which elements are
        // summed, and `f64` checks their order too.)
        let x: Vec<T> = data::<T>(bn.len(), salt)
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                (v + T::from_f64(0.75)) * T::from_f64(f64::powi(2.0, (i * 7 % 41) as i32 - 20))
            })
            .collect();
        let dy: Vec<T> = data(bn.len(), salt + 1);
        let (gamma, beta): (Vec<T>, Vec<T>) = (data(channels, salt + 2), data(channels, salt + 3));
        let inputs = [&x[..], &dy, &gamma, &beta];
        let want = batch_norm_passes(&reference, &|v| v, bn, inputs);
        for threads in 1..=3 {
            let cpu = Cpu::<T>::with_threads(threads).expect("thread pool");
            let got = batch_norm_passes(&cpu, &array, bn, inputs);
            let names = ["mean", "var", "forward", "dx", "dgamma", "dbeta"];
            for ((name, got), want) in names.iter().zip(&got).zip(&want) {
                let differs = got
                    .iter()
                    .zip(want)
                    .position(|(&g, &w)| Real::to_f64(g).to_bits() != Real::to_f64(w).to_bits());
                assert_eq!(
                    differs, None,
                    "{name} of {bn:?} with {threads} threads: the first element that differs"
                );
            }
        }
    }
}

#[test]
fn wide_layouts_give_the_reference_bits_f32() {
    check::<f32>();
}

#[test]
fn wide_layouts_give_the_reference_bits_f64() {
    check::<f64>();
}
