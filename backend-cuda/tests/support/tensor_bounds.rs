//! The data, shapes and bounds of `tensor.rs`'s module table, shared by
//! `tensor.rs` (on a GPU) and `host_emulated_tensor/` (the kernels
//! emulated on the host), so that both compare within the same bounds on
//! the same cases.

use smoothout::tensor::BatchNorm;

const EPS32: f64 = f32::EPSILON as f64;
const EPS64: f64 = f64::EPSILON;

/// The shared bodies' inputs ([`smoothout::testgen::tensor::data`]) in
/// `f32`.
pub fn data(len: usize, salt: u64) -> Vec<f32> {
    smoothout::testgen::tensor::data(len, salt)
}

/// `|got − want| ≤ tol(i)` for every element; returns how many elements
/// were compared and how many of them are the same bits.
pub fn within(what: &str, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f64) -> (usize, usize) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let mut equal = 0;
    for (i, (&x, &y)) in got.iter().zip(want).enumerate() {
        equal += usize::from(x.to_bits() == y.to_bits());
        let (x, y, t) = (f64::from(x), f64::from(y), tol(i));
        assert!(
            (x - y).abs() <= t,
            "{what}: element {i}: {x:e} vs reference {y:e}, bound {t:e}"
        );
    }
    (got.len(), equal)
}

/// The sum bound of the table for `M` terms of absolute sum `abs`.
fn sum_bound(want: f32, m: usize, abs: f64) -> f64 {
    2.0 * EPS32 * f64::from(want).abs() + 4.0 * m as f64 * EPS64 * abs
}

/// Channel `c`'s elements of a `[outer, channels, inner]` tensor, in order.
fn channel(v: &[f32], channels: usize, inner: usize, c: usize) -> impl Iterator<Item = f64> + '_ {
    v.chunks(channels * inner)
        .flat_map(move |o| o[c * inner..(c + 1) * inner].iter().map(|&x| f64::from(x)))
}

/// `gemm_summed`'s bound: the shared GEMM bound with `k` replaced by
/// `count · k`, for products of absolute sum `mag` onto an old `c` of
/// absolute value `old` (0 when β = 0).
pub fn gemm_summed_bound(count: usize, k: usize, alpha: f64, beta: f64, mag: f64, old: f64) -> f64 {
    2.0 * (count * k + 2) as f64 * EPS32 * (alpha.abs() * mag + beta.abs() * old)
}

// ---- Batch normalisation ----------------------------------------------------

/// `(batch, channels, spatial, ε)`: 2 × 3 × 5 × 7, a batch of 64 with 16
/// channels of 8 × 8, BatchNorm1d, odd sizes, one element, ε = 0, and
/// channels long enough for several slices (30 000 and 18 432 elements).
pub const BNS: [(usize, usize, usize, f64); 9] = [
    (2, 3, 35, 1e-5),
    (64, 16, 64, 1e-5),
    (7, 5, 1, 1e-3),
    (5, 7, 143, 1e-5),
    (1, 2, 1, 1e-5),
    (1, 3, 9, 0.1),
    (3, 4, 49, 0.0),
    (300, 2, 100, 1e-5),
    (2048, 4, 9, 1e-5),
];

/// Case `s`'s `(x, dy, γ, β)`: `x` offset so that the mean is not ~0 and
/// the variance not ~1/3.
pub fn bn_inputs(bn: &BatchNorm, s: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let salt = 900 + 10 * s as u64;
    let x = data(bn.len(), salt)
        .into_iter()
        .map(|v| 3.0 * v + 0.5)
        .collect();
    (
        x,
        data(bn.len(), salt + 1),
        data(bn.channels, salt + 2),
        data(bn.channels, salt + 3),
    )
}

/// The mean and variance against the reference's `(m0, v0)`, within the
/// sum bound; returns [`within`]'s counts for each.
pub fn check_bn_stats(
    what: &str,
    bn: &BatchNorm,
    x: &[f32],
    (mean, var): (&[f32], &[f32]),
    (m0, v0): (&[f32], &[f32]),
) -> [(usize, usize); 2] {
    let m = bn.batch * bn.spatial;
    let (channels, spatial) = (bn.channels, bn.spatial);
    [
        within(&format!("mean {what}"), mean, m0, |c| {
            let abs: f64 = channel(x, channels, spatial, c).map(f64::abs).sum();
            sum_bound(m0[c], m, abs / m as f64)
        }),
        within(&format!("var {what}"), var, v0, |c| {
            let mu = f64::from(m0[c]);
            let abs: f64 = channel(x, channels, spatial, c)
                .map(|v| (v - mu) * (v - mu))
                .sum();
            sum_bound(v0[c], m, abs / m as f64)
        }),
    ]
}

/// `[dγ, dβ, dx]` against the reference's, all computed with the
/// reference's statistics (`centres`: `r::batch_norm_centres`), within the
/// table's bounds; returns [`within`]'s counts for each.
#[allow(clippy::too_many_arguments)]
pub fn check_bn_grads(
    what: &str,
    bn: &BatchNorm,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    centres: &[(f64, f64)],
    [dgamma, dbeta, dx]: [&[f32]; 3],
    [dg0, db0, dx0]: [&[f32]; 3],
) -> [(usize, usize); 3] {
    let (batch, channels, spatial) = (bn.batch, bn.channels, bn.spatial);
    let m = batch * spatial;
    let xhat = |i: usize| {
        let (mu, inv) = centres[(i / spatial) % channels];
        (f64::from(x[i]) - mu) * inv
    };
    // Per channel: Σ|dy| and Σ|dy · x̂|, in f64.
    let (abs_dy, abs_dyx): (Vec<f64>, Vec<f64>) = (0..channels)
        .map(|c| {
            (0..batch)
                .flat_map(|n| {
                    let base = (n * channels + c) * spatial;
                    base..base + spatial
                })
                .map(|i| {
                    let d = f64::from(dy[i]).abs();
                    (d, d * xhat(i).abs())
                })
                .fold((0.0, 0.0), |(a, b), (d, e)| (a + d, b + e))
        })
        .unzip();
    [
        within(&format!("dgamma {what}"), dgamma, dg0, |c| {
            sum_bound(dg0[c], m, abs_dyx[c])
        }),
        within(&format!("dbeta {what}"), dbeta, db0, |c| {
            sum_bound(db0[c], m, abs_dy[c])
        }),
        within(&format!("dx {what}"), dx, dx0, |i| {
            let c = (i / spatial) % channels;
            let k = (f64::from(gamma[c]) * centres[c].1 / m as f64).abs();
            2.0 * EPS32 * f64::from(dx0[i]).abs()
                + k * 4.0 * m as f64 * EPS64 * (abs_dy[c] + xhat(i).abs() * abs_dyx[c])
        }),
    ]
}

// ---- bias_grad --------------------------------------------------------------

/// `(outer, channels, inner)`: linear layers (inner 1, a batch of 2048),
/// convolutions (8 × 8, 5 × 7), odd sizes, several slices per channel.
pub const BIAS_GRADS: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (2048, 10, 1),
    (64, 16, 64),
    (2, 3, 35),
    (5, 7, 11),
    (300, 2, 100),
    (3, 100, 1),
];

/// Case `s`'s `dy` (`[outer, channels, inner]`).
pub fn bias_grad_input((outer, channels, inner): (usize, usize, usize), s: usize) -> Vec<f32> {
    data(outer * channels * inner, 1100 + s as u64)
}

/// `bias_grad`'s `got` against the reference's `want`, within the sum
/// bound; returns [`within`]'s counts.
pub fn check_bias_grad(
    what: &str,
    (outer, channels, inner): (usize, usize, usize),
    dy: &[f32],
    got: &[f32],
    want: &[f32],
) -> (usize, usize) {
    within(what, got, want, |c| {
        let abs: f64 = channel(dy, channels, inner, c).map(f64::abs).sum();
        sum_bound(want[c], outer * inner, abs)
    })
}

// ---- Softmax cross-entropy --------------------------------------------------

/// `(rows, classes, offset)`: one class, odd sizes, CIFAR-10 and -100
/// batches, logits offset by ±10⁴ (exp would overflow without the row
/// maximum).
pub const SOFTMAXES: [(usize, usize, f32); 8] = [
    (1, 1, 0.0),
    (5, 10, 0.0),
    (33, 7, 0.0),
    (4, 100, 1e4),
    (3, 3, -1e4),
    (2048, 10, 0.0),
    (64, 100, 0.0),
    (7, 1000, 3.0),
];

/// Case `s`'s logits and labels.
pub fn softmax_inputs(
    (rows, classes, offset): (usize, usize, f32),
    s: usize,
) -> (Vec<f32>, Vec<u32>) {
    let z = data(rows * classes, 1200 + s as u64)
        .into_iter()
        .map(|v| v * 8.0 + offset)
        .collect();
    let labels = (0..rows).map(|i| ((i * 7 + s) % classes) as u32).collect();
    (z, labels)
}

/// The mean loss of `rows` rows of `classes` against the reference's
/// `want`, within the table's bound.
pub fn check_loss(what: &str, classes: usize, rows: usize, got: f64, want: f64) {
    let tol = (2 * classes + rows + 16) as f64 * EPS64 * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tol,
        "loss {what}: {got:e} vs reference {want:e}, bound {tol:e}"
    );
}

/// `dlogits` against the reference's, within the table's bound; returns
/// [`within`]'s counts.
pub fn check_dlogits(
    what: &str,
    classes: usize,
    rows: usize,
    got: &[f32],
    want: &[f32],
) -> (usize, usize) {
    let abs = (2 * classes + 8) as f64 * EPS64 / rows as f64;
    within(&format!("dlogits {what}"), got, want, |i| {
        EPS32 * f64::from(want[i]).abs() + abs
    })
}
