//! Finite-difference checks, in `f64`, of the analytic gradients of batch
//! normalisation (training mode: the statistics depend on `x`) and of the
//! softmax cross-entropy, on the [`Reference`] backend (other backends are
//! bit-identical to it for these operations, see `smoothout::testgen::tensor`).
//!
//! The scalar checked is `L = Σ w ⊙ y` with fixed random `w`, so
//! `dL/dy = w`. Central differences with step `h = 1e-5` have truncation
//! error `h² |L'''| / 6 ≈ 1e-10` and rounding error `≈ ε |L| / h ≈ 1e-10`
//! for `|L| ≈ 10`; the bound `|fd − analytic| ≤ 1e-6 · (|fd| + |analytic|)
//! + 1e-8` leaves four orders of magnitude of margin over both.
#![cfg(feature = "alloc")]

use smoothout::tensor::{
    BatchNorm, BatchNormBackwardPass, BatchNormForwardPass, BatchNormStatsPass,
};
use smoothout::tensor::{BatchNormGrads, BatchNormOps, BatchNormStats, CrossEntropy, LossOps};
use smoothout::Reference;

const H: f64 = 1e-5;

fn data(n: usize, salt: u64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let z = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            ((z >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn close(what: &str, fd: f64, an: f64) {
    assert!(
        (fd - an).abs() <= 1e-6 * (fd.abs() + an.abs()) + 1e-8,
        "{what}: finite difference {fd}, analytic {an}"
    );
}

/// The batch statistics `(mean, var)` of `x`.
fn stats(b: &Reference<f64>, bn: &BatchNorm, x: &Vec<f64>) -> (Vec<f64>, Vec<f64>) {
    let (mut mean, mut var) = (vec![0.0; bn.channels], vec![0.0; bn.channels]);
    b.batch_norm_stats(BatchNormStatsPass {
        bn: *bn,
        x,
        mean: &mut mean,
        var: &mut var,
    })
    .expect("stats");
    (mean, var)
}

fn bn_loss(b: &Reference<f64>, bn: &BatchNorm, x: &[f64], g: &[f64], be: &[f64], w: &[f64]) -> f64 {
    let x = x.to_vec();
    let (m, v) = stats(b, bn, &x);
    let mut y = vec![0.0; bn.len()];
    b.batch_norm_forward(BatchNormForwardPass {
        bn: *bn,
        x: &x,
        y: &mut y,
        gamma: &g.to_vec(),
        beta: &be.to_vec(),
        stats: BatchNormStats::new(&m, &v),
    })
    .expect("forward");
    y.iter().zip(w).map(|(y, w)| y * w).sum()
}

#[test]
fn batch_norm_backward_matches_finite_differences() {
    let b = Reference::<f64>::new();
    for bn in [
        BatchNorm {
            batch: 4,
            channels: 3,
            spatial: 5,
            eps: 1e-5,
        },
        BatchNorm {
            batch: 6,
            channels: 2,
            spatial: 1,
            eps: 1e-3,
        },
    ] {
        let x: Vec<f64> = data(bn.len(), 1).iter().map(|v| 3.0 * v + 0.5).collect();
        let gamma: Vec<f64> = data(bn.channels, 2).iter().map(|v| 1.0 + v).collect();
        let beta = data(bn.channels, 3);
        let w = data(bn.len(), 4);
        let (m, v) = stats(&b, &bn, &x);
        let (mut dx, mut dg, mut db) = (
            vec![0.0; bn.len()],
            vec![0.0; bn.channels],
            vec![0.0; bn.channels],
        );
        let grads = BatchNormGrads::new(&mut dx, &mut dg, &mut db);
        b.batch_norm_backward(BatchNormBackwardPass {
            bn,
            x: &x,
            dy: &w,
            gamma: &gamma,
            stats: BatchNormStats::new(&m, &v),
            grads,
        })
        .expect("backward");
        let f = |x: &[f64], g: &[f64], be: &[f64]| bn_loss(&b, &bn, x, g, be, &w);
        for i in 0..bn.len() {
            let (mut p, mut q) = (x.clone(), x.clone());
            p[i] += H;
            q[i] -= H;
            let fd = (f(&p, &gamma, &beta) - f(&q, &gamma, &beta)) / (2.0 * H);
            close(&format!("{bn:?} dx[{i}]"), fd, dx[i]);
        }
        for c in 0..bn.channels {
            let (mut p, mut q) = (gamma.clone(), gamma.clone());
            p[c] += H;
            q[c] -= H;
            let fd = (f(&x, &p, &beta) - f(&x, &q, &beta)) / (2.0 * H);
            close(&format!("{bn:?} dgamma[{c}]"), fd, dg[c]);
            let (mut p, mut q) = (beta.clone(), beta.clone());
            p[c] += H;
            q[c] -= H;
            let fd = (f(&x, &gamma, &p) - f(&x, &gamma, &q)) / (2.0 * H);
            close(&format!("{bn:?} dbeta[{c}]"), fd, db[c]);
        }
    }
}

#[test]
fn softmax_cross_entropy_backward_matches_finite_differences() {
    let b = Reference::<f64>::new();
    for (rows, classes) in [(1usize, 1usize), (3, 4), (5, 10)] {
        let z: Vec<f64> = data(rows * classes, 5).iter().map(|v| 4.0 * v).collect();
        let labels: Vec<u32> = (0..rows).map(|i| ((3 * i + 1) % classes) as u32).collect();
        let mut d = vec![0.0; z.len()];
        b.softmax_cross_entropy(CrossEntropy::new(classes, &z, &labels, &mut d))
            .expect("loss");
        let mut scratch = vec![0.0; z.len()];
        let mut f = |z: &Vec<f64>| {
            b.softmax_cross_entropy(CrossEntropy::new(classes, z, &labels, &mut scratch))
                .expect("loss")
        };
        for i in 0..z.len() {
            let (mut p, mut q) = (z.clone(), z.clone());
            p[i] += H;
            q[i] -= H;
            let fd = (f(&p) - f(&q)) / (2.0 * H);
            close(&format!("{rows}×{classes} dlogits[{i}]"), fd, d[i]);
        }
    }
}
