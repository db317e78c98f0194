//! The tensor operations of [`Cuda`] against the plain-loop reference
//! ([`smoothout::tensor_reference`], [`Reference<f32>`]).
//!
//! Every test needs a GPU: without one (or without the CUDA libraries) it
//! prints `skipped: <why>` and passes. The backend is created once per test
//! process.
//!
//! Where the CUDA result is bit-identical to the reference, the shared
//! bodies of [`smoothout::testgen_tensor`] run unchanged (their own table
//! gives their tolerances; GEMM's is a Higham-style bound). Where the device
//! sums in another order, or uses its own `exp` and `log`, the tests here
//! compare within these bounds (`ε₃₂ = 2⁻²³`, `ε₆₄ = 2⁻⁵²`, `M` the number
//! of terms of a sum, `ulp(v) ≤ ε₃₂ |v|`):
//!
//! | quantity | tolerance | why |
//! |---|---|---|
//! | im2col, col2im, pooling, relu, relu_backward, scale, add, mul, fill, add_bias | bit-identical (shared bodies) | copies and single roundings; the gathers (col2im, pooling backward) add each element's contributions in the reference's order |
//! | `maps` (shared body, includes `bias_grad`) | bit-identical | its shapes have at most 75 terms per channel: the `f64` sums of the two orders differ by far less than half an `f32` ulp, so both round to the same `f32` (deterministic data; checked by host emulation of the kernels) |
//! | batch-norm forward, given the same statistics | bit-identical | per element in `f64` with correctly rounded `sqrt` and division, no FMA (`--fmad=false`), one rounding |
//! | mean, variance, `dγ`, `dβ`, `bias_grad` | `2 ε₃₂ |ref| + 4 M ε₆₄ Σ|t|` | both are `f64` sums of the same `M` terms `t` in different orders (sequential vs slices and a fixed tree), each within `(M − 1) ε₆₄ Σ|t|` of the exact sum (Higham §4.2), rounded once to `f32` (at most one `f32` ulp apart from that); the variance's terms use each side's own `f64` mean, whose difference enters squared |
//! | batch-norm `dx` | `2 ε₃₂ |ref| + |k| · 4 M ε₆₄ (Σ|dy| + |x̂| Σ|dy · x̂|)`, `k = γ · inv_std / M` | `dx = k (M dy − dβ − x̂ dγ)` in `f64` with `dβ`, `dγ` within the sum bound above; the bracket can cancel, so the bound is absolute |
//! | loss | `(2 C + N + 16) ε₆₄ max(1, |ref|)` (`C` classes, `N` rows) | the device's `f64` `exp` and `log` are within 1 ulp (CUDA's documented bounds), libm's within 1 ulp: the row sum of `C` exponentials differs by at most `2 C ε₆₄` relative, its log by that absolutely; the `N` row losses are added in the same order on the host, each addition at most one ulp apart |
//! | `dlogits` | `ε₃₂ |ref| + (2 C + 8) ε₆₄ / N` | `p = exp(z − max − log Σ)` differs by at most `(2 C + 8) ε₆₄` absolutely (`p ≤ 1`), `(p − t) / N` then rounds once to `f32`; the absolute term covers the cancellation `p − 1` near `p = 1` |
//! | `gemm_summed` at a convolution's weight-gradient shape | the shared GEMM bound with `k` replaced by `count · k` | `count` products into a temporary buffer (each one cuBLAS SGEMM), then an `f64` sum over the products |
//!
//! Every comparison can fail: a wrong index moves values by far more than
//! these bounds (the data are hashes in `[−1, 1)`, not constants).

use std::sync::OnceLock;

use smoothout::tensor_reference as r;
use smoothout::{
    BackendTypes, BatchNorm, BatchNormOps, BufferOps, Gemm, GemmBatch, LossOps, MapOps, MatmulOps,
    Reference,
};
use smoothout_cuda::Cuda;

const EPS32: f64 = f32::EPSILON as f64;
const EPS64: f64 = f64::EPSILON;

/// The process-wide backend, or why there is none.
fn gpu() -> Option<&'static Cuda> {
    static GPU: OnceLock<Result<Cuda, String>> = OnceLock::new();
    match GPU.get_or_init(|| Cuda::new().map_err(|e| e.to_string())) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// Instantiates shared bodies of `smoothout::testgen_tensor` on the GPU.
macro_rules! shared {
    ($($body:ident),* $(,)?) => {
        $(
            #[test]
            fn $body() {
                let Some(gpu) = gpu() else { return };
                let make = |v: Vec<f32>| gpu.upload(&v).unwrap();
                smoothout::testgen_tensor::$body(gpu, &make);
            }
        )*
    };
}

shared!(
    gemm_all_transposes,
    gemm_beta_zero_ignores_c,
    gemm_known_answer,
    gemm_rejects_bad_requests,
    gemm_strided_all_transposes,
    gemm_summed_all_transposes,
    gemm_batched_rejects_bad_requests,
    im2col_and_col2im,
    im2col_col2im_adjoint,
    conv_rejects_bad_requests,
    pool_max_and_avg,
    pool_max_tie_goes_to_first,
    pool_rejects_bad_requests,
    batch_norm_rejects_bad_requests,
    softmax_cross_entropy_rejects_bad_requests,
    maps,
    maps_reject_bad_lengths,
);

/// Deterministic values in `[-1, 1)` (SplitMix64 of the index and salt).
fn data(len: usize, salt: u64) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            let mut z = (i ^ salt.rotate_left(32)).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 / (1u64 << 52) as f64 - 1.0) as f32
        })
        .collect()
}

/// The backend's buffer.
type Buf = <Cuda as BackendTypes>::Buffer;

fn up(gpu: &Cuda, v: &[f32]) -> Buf {
    gpu.upload(v).unwrap()
}

fn down(gpu: &Cuda, b: &Buf) -> Vec<f32> {
    gpu.to_vec(b).unwrap()
}

fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (x, y)) in got.iter().zip(want).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "{what}: element {i}: {x} vs {y}");
    }
}

/// `|got − want| ≤ tol(i)` for every element.
fn within(what: &str, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&x, &y)) in got.iter().zip(want).enumerate() {
        let (x, y, t) = (f64::from(x), f64::from(y), tol(i));
        assert!(
            (x - y).abs() <= t,
            "{what}: element {i}: {x} vs reference {y}, bound {t}"
        );
    }
}

/// The sum bound of the module's table for `M` terms of absolute sum `abs`.
fn sum_bound(want: f32, m: usize, abs: f64) -> f64 {
    2.0 * EPS32 * f64::from(want).abs() + 4.0 * m as f64 * EPS64 * abs
}

/// Channel `c`'s elements of a `[outer, channels, inner]` tensor, in order.
fn channel(v: &[f32], channels: usize, inner: usize, c: usize) -> impl Iterator<Item = f64> + '_ {
    v.chunks(channels * inner)
        .flat_map(move |o| o[c * inner..(c + 1) * inner].iter().map(|&x| f64::from(x)))
}

/// `(batch, channels, spatial, ε)`: 2 × 3 × 5 × 7, a batch of 64 with 16
/// channels of 8 × 8, BatchNorm1d, odd sizes, one element, ε = 0, and
/// channels long enough for several slices (30 000 and 18 432 elements).
const BNS: [(usize, usize, usize, f64); 9] = [
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

#[test]
fn batch_norm_within_bounds() {
    let Some(gpu) = gpu() else { return };
    let reference = Reference::<f32>::new();
    for (s, &(batch, channels, spatial, eps)) in BNS.iter().enumerate() {
        let bn = BatchNorm {
            batch,
            channels,
            spatial,
            eps,
        };
        let what = format!("{bn:?}");
        let salt = 900 + 10 * s as u64;
        // Offset so that the mean is not ~0 and the variance not ~1/3.
        let x: Vec<f32> = data(bn.len(), salt)
            .into_iter()
            .map(|v| 3.0 * v + 0.5)
            .collect();
        let dy = data(bn.len(), salt + 1);
        let gamma = data(channels, salt + 2);
        let beta = data(channels, salt + 3);
        let m = batch * spatial;
        let nan = |n| vec![f32::NAN; n];

        // Statistics.
        let (mut m0, mut v0) = (nan(channels), nan(channels));
        reference
            .batch_norm_stats(&bn, &x, &mut m0, &mut v0)
            .unwrap();
        let xb = up(gpu, &x);
        let (mut mb, mut vb) = (up(gpu, &nan(channels)), up(gpu, &nan(channels)));
        gpu.batch_norm_stats(&bn, &xb, &mut mb, &mut vb).unwrap();
        let (mean, var) = (down(gpu, &mb), down(gpu, &vb));
        within(&format!("mean {what}"), &mean, &m0, |c| {
            let abs: f64 = channel(&x, channels, spatial, c).map(f64::abs).sum();
            sum_bound(m0[c], m, abs / m as f64)
        });
        within(&format!("var {what}"), &var, &v0, |c| {
            let mu = f64::from(m0[c]);
            let abs: f64 = channel(&x, channels, spatial, c)
                .map(|v| (v - mu) * (v - mu))
                .sum();
            sum_bound(v0[c], m, abs / m as f64)
        });
        // Deterministic: the same bits again.
        let (mut mb2, mut vb2) = (up(gpu, &nan(channels)), up(gpu, &nan(channels)));
        gpu.batch_norm_stats(&bn, &xb, &mut mb2, &mut vb2).unwrap();
        same_bits(&format!("mean again {what}"), &down(gpu, &mb2), &mean);
        same_bits(&format!("var again {what}"), &down(gpu, &vb2), &var);

        // Forward with the reference's statistics: bit-identical.
        let (m0b, v0b) = (up(gpu, &m0), up(gpu, &v0));
        let (gb, bb) = (up(gpu, &gamma), up(gpu, &beta));
        let mut y0 = nan(bn.len());
        reference
            .batch_norm_forward(&bn, &x, &gamma, &beta, &m0, &v0, &mut y0)
            .unwrap();
        let mut yb = up(gpu, &nan(bn.len()));
        gpu.batch_norm_forward(&bn, &xb, &gb, &bb, &m0b, &v0b, &mut yb)
            .unwrap();
        same_bits(&format!("forward {what}"), &down(gpu, &yb), &y0);

        // Backward with the reference's statistics.
        let (mut dx0, mut dg0, mut db0) = (nan(bn.len()), nan(channels), nan(channels));
        reference
            .batch_norm_backward(&bn, &x, &dy, &gamma, &m0, &v0, &mut dx0, &mut dg0, &mut db0)
            .unwrap();
        let dyb = up(gpu, &dy);
        let (mut dxb, mut dgb, mut dbb) = (
            up(gpu, &nan(bn.len())),
            up(gpu, &nan(channels)),
            up(gpu, &nan(channels)),
        );
        gpu.batch_norm_backward(
            &bn, &xb, &dyb, &gb, &m0b, &v0b, &mut dxb, &mut dgb, &mut dbb,
        )
        .unwrap();
        let centres = r::batch_norm_centres(&bn, &m0, &v0);
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
        within(&format!("dgamma {what}"), &down(gpu, &dgb), &dg0, |c| {
            sum_bound(dg0[c], m, abs_dyx[c])
        });
        within(&format!("dbeta {what}"), &down(gpu, &dbb), &db0, |c| {
            sum_bound(db0[c], m, abs_dy[c])
        });
        within(&format!("dx {what}"), &down(gpu, &dxb), &dx0, |i| {
            let c = (i / spatial) % channels;
            let k = (f64::from(gamma[c]) * centres[c].1 / m as f64).abs();
            2.0 * EPS32 * f64::from(dx0[i]).abs()
                + k * 4.0 * m as f64 * EPS64 * (abs_dy[c] + xhat(i).abs() * abs_dyx[c])
        });
    }
}

#[test]
fn bias_grad_within_bounds() {
    let Some(gpu) = gpu() else { return };
    let reference = Reference::<f32>::new();
    // (outer, channels, inner): linear layers (inner 1, a batch of 2048),
    // convolutions (8 × 8, 5 × 7), odd sizes, several slices per channel.
    for (s, &(outer, channels, inner)) in [
        (1usize, 1usize, 1usize),
        (2048, 10, 1),
        (64, 16, 64),
        (2, 3, 35),
        (5, 7, 11),
        (300, 2, 100),
        (3, 100, 1),
    ]
    .iter()
    .enumerate()
    {
        let dy = data(outer * channels * inner, 1100 + s as u64);
        let mut want = vec![f32::NAN; channels];
        reference.bias_grad(&dy, inner, &mut want).unwrap();
        let dyb = up(gpu, &dy);
        let mut db = up(gpu, &vec![f32::NAN; channels]);
        gpu.bias_grad(&dyb, inner, &mut db).unwrap();
        let got = down(gpu, &db);
        let m = outer * inner;
        within(
            &format!("bias_grad {outer}×{channels}×{inner}"),
            &got,
            &want,
            |c| {
                let abs: f64 = channel(&dy, channels, inner, c).map(f64::abs).sum();
                sum_bound(want[c], m, abs)
            },
        );
        let mut again = up(gpu, &vec![f32::NAN; channels]);
        gpu.bias_grad(&dyb, inner, &mut again).unwrap();
        same_bits("bias_grad again", &down(gpu, &again), &got);
    }
    // No rows: every sum is empty (−0.0, as Rust's f64 `sum`).
    let mut want = vec![f32::NAN; 3];
    reference.bias_grad(&vec![], 2, &mut want).unwrap();
    let mut db = up(gpu, &[f32::NAN; 3]);
    gpu.bias_grad(&up(gpu, &[]), 2, &mut db).unwrap();
    same_bits("bias_grad of nothing", &down(gpu, &db), &want);
}

#[test]
fn softmax_cross_entropy_within_bounds() {
    let Some(gpu) = gpu() else { return };
    // (rows, classes, offset): one class, odd sizes, CIFAR-10 and -100
    // batches, logits offset by ±10⁴ (exp would overflow without the row
    // maximum).
    for (s, &(rows, classes, offset)) in [
        (1usize, 1usize, 0.0f32),
        (5, 10, 0.0),
        (33, 7, 0.0),
        (4, 100, 1e4),
        (3, 3, -1e4),
        (2048, 10, 0.0),
        (64, 100, 0.0),
        (7, 1000, 3.0),
    ]
    .iter()
    .enumerate()
    {
        let z: Vec<f32> = data(rows * classes, 1200 + s as u64)
            .into_iter()
            .map(|v| v * 8.0 + offset)
            .collect();
        let labels: Vec<u32> = (0..rows).map(|i| ((i * 7 + s) % classes) as u32).collect();
        let mut d0 = vec![f32::NAN; z.len()];
        let l0 = r::softmax_cross_entropy(classes, &z, &labels, &mut d0).unwrap();
        let mut db = up(gpu, &vec![f32::NAN; z.len()]);
        let l = gpu
            .softmax_cross_entropy(classes, &up(gpu, &z), &labels, &mut db)
            .unwrap();
        let what = format!("{rows}×{classes} offset {offset}");
        let tol = (2 * classes + rows + 16) as f64 * EPS64 * l0.abs().max(1.0);
        assert!(
            (l - l0).abs() <= tol,
            "loss {what}: {l} vs reference {l0}, bound {tol}"
        );
        let abs = (2 * classes + 8) as f64 * EPS64 / rows as f64;
        within(&format!("dlogits {what}"), &down(gpu, &db), &d0, |i| {
            EPS32 * f64::from(d0[i]).abs() + abs
        });
    }
}

#[test]
fn gemm_summed_weight_gradient_shape() {
    let Some(gpu) = gpu() else { return };
    // dW (16 filters × 75 = 3·5·5 column rows) = Σ_i dY_i (16 × 64
    // positions) · col_iᵀ (col_i stored 75 × 64), over 64 images, onto an
    // old gradient (β = 1) and onto NaN (β = 0).
    let (count, m, n, k) = (64usize, 16usize, 75usize, 64usize);
    let batch = GemmBatch {
        count,
        stride_a: m * k,
        stride_b: n * k,
        stride_c: 0,
    };
    let a = data(count * m * k, 1300);
    let b = data(count * n * k, 1301);
    for (alpha, beta) in [(1.0, 1.0), (-0.5, 0.0)] {
        let g = Gemm::new(m, n, k)
            .transposed(false, true)
            .scaled(alpha, beta);
        let c0 = if beta == 0.0 {
            vec![f32::NAN; m * n]
        } else {
            data(m * n, 1302)
        };
        let mut want = c0.clone();
        r::gemm_summed(&g, &batch, &a, &b, &mut want).unwrap();
        let mut cb = up(gpu, &c0);
        gpu.gemm_summed(&g, &batch, &up(gpu, &a), &up(gpu, &b), &mut cb)
            .unwrap();
        within(&format!("{g:?}"), &down(gpu, &cb), &want, |e| {
            let (i, j) = (e / n, e % n);
            let mag: f64 = (0..count)
                .flat_map(|q| (0..k).map(move |p| (q, p)))
                .map(|(q, p)| {
                    f64::from(a[q * m * k + i * k + p]) * f64::from(b[q * n * k + j * k + p])
                })
                .map(f64::abs)
                .sum();
            let old = if beta == 0.0 {
                0.0
            } else {
                f64::from(c0[e]).abs()
            };
            2.0 * (count * k + 2) as f64 * EPS32 * (alpha.abs() * mag + beta.abs() * old)
        });
    }
}

#[test]
fn relu_keeps_nan_and_negative_zero() {
    let Some(gpu) = gpu() else { return };
    let x = [
        f32::NAN,
        -0.0,
        0.0,
        -1.5,
        2.5,
        f32::NEG_INFINITY,
        f32::INFINITY,
    ];
    let mut want = [0.0f32; 7];
    r::relu(&x, &mut want);
    let mut y = up(gpu, &[9.0; 7]);
    gpu.relu(&up(gpu, &x), &mut y).unwrap();
    same_bits("relu", &down(gpu, &y), &want);
    assert!(down(gpu, &y)[0].is_nan() && down(gpu, &y)[1].is_sign_negative());
}
