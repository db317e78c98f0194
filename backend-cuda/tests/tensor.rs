//! The tensor operations of [`Cuda`] against the plain-loop reference
//! ([`smoothout::tensor::reference`], [`Reference<f32>`]).
//!
//! Every test needs a GPU: without one (or without the CUDA libraries) it
//! prints `skipped: <why>` and passes. The backend is created once per test
//! process.
//!
//! Where the CUDA result is bit-identical to the reference, the shared
//! bodies of [`smoothout::testgen::tensor`] run unchanged (their own table
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

use smoothout::tensor::reference as r;
use smoothout::tensor::{
    BatchNormBackwardPass, BatchNormForwardPass, BatchNormGrads, BatchNormOps, BatchNormStats,
    BatchNormStatsPass, BatchedGemm, CrossEntropy, Gemm, GemmBatch, LossOps, MapOps, MatmulOps,
};
use smoothout::testgen::tensor::{batch_norm_layouts, batch_norm_passes};
use smoothout::{BackendTypes, BufferOps, Reference};
use smoothout_cuda::Cuda;

#[path = "support/tensor_bounds.rs"]
mod bounds;
use bounds::{
    bias_grad_input, bn_inputs, check_bias_grad, check_bn_grads, check_bn_stats, check_dlogits,
    check_loss, data, gemm_summed_bound, softmax_inputs, within, BIAS_GRADS, BNS, SOFTMAXES,
};

/// The process-wide backend, or why there is none.
fn gpu() -> Option<&'static Cuda> {
    static GPU: OnceLock<Result<Cuda, String>> = OnceLock::new();
    match GPU.get_or_init(|| {
        smoothout_cuda::standin::test_backend(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
    }) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// Instantiates shared bodies of `smoothout::testgen::tensor` on the GPU.
macro_rules! shared {
    ($($body:ident),* $(,)?) => {
        $(
            #[test]
            fn $body() {
                let Some(gpu) = gpu() else { return };
                let make = |v: Vec<f32>| gpu.upload(&v).unwrap();
                smoothout::testgen::tensor::$body(gpu, &make);
            }
        )*
    };
}

// Every shared body but `batch_norm` and `softmax_cross_entropy`, which
// `batch_norm_within_bounds` and `softmax_cross_entropy_within_bounds` check
// within the table's bounds instead.
smoothout::tensor_shared_bodies!(shared,);

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

#[test]
fn batch_norm_within_bounds() {
    let Some(gpu) = gpu() else { return };
    let reference = Reference::<f32>::new();
    for (s, bn) in batch_norm_layouts(&BNS) {
        let (channels, what) = (bn.channels, format!("{bn:?}"));
        let (x, dy, gamma, beta) = bn_inputs(&bn, s);
        let nan = |n| vec![f32::NAN; n];
        let inputs = [&x[..], &dy, &gamma, &beta];
        let [m0, v0, y0, dx0, dg0, db0] = batch_norm_passes(&reference, &|v| v, bn, inputs);

        // Statistics.
        let xb = up(gpu, &x);
        let stats = || {
            let (mut mb, mut vb) = (up(gpu, &nan(channels)), up(gpu, &nan(channels)));
            gpu.batch_norm_stats(BatchNormStatsPass {
                bn,
                x: &xb,
                mean: &mut mb,
                var: &mut vb,
            })
            .unwrap();
            (down(gpu, &mb), down(gpu, &vb))
        };
        let (mean, var) = stats();
        check_bn_stats(&what, &bn, &x, (&mean, &var), (&m0, &v0));
        // Deterministic: the same bits again.
        let (mean2, var2) = stats();
        same_bits(&format!("mean again {what}"), &mean2, &mean);
        same_bits(&format!("var again {what}"), &var2, &var);

        // Forward with the reference's statistics: bit-identical.
        let (m0b, v0b) = (up(gpu, &m0), up(gpu, &v0));
        let (gb, bb) = (up(gpu, &gamma), up(gpu, &beta));
        let mut yb = up(gpu, &nan(bn.len()));
        gpu.batch_norm_forward(BatchNormForwardPass {
            bn,
            x: &xb,
            y: &mut yb,
            gamma: &gb,
            beta: &bb,
            stats: BatchNormStats::new(&m0b, &v0b),
        })
        .unwrap();
        same_bits(&format!("forward {what}"), &down(gpu, &yb), &y0);

        // Backward with the reference's statistics.
        let dyb = up(gpu, &dy);
        let (mut dxb, mut dgb, mut dbb) = (
            up(gpu, &nan(bn.len())),
            up(gpu, &nan(channels)),
            up(gpu, &nan(channels)),
        );
        gpu.batch_norm_backward(BatchNormBackwardPass {
            bn,
            x: &xb,
            dy: &dyb,
            gamma: &gb,
            stats: BatchNormStats::new(&m0b, &v0b),
            grads: BatchNormGrads::new(&mut dxb, &mut dgb, &mut dbb),
        })
        .unwrap();
        let centres = r::batch_norm_centres(&bn, &m0, &v0);
        check_bn_grads(
            &what,
            &bn,
            &x,
            &dy,
            &gamma,
            &centres,
            [&down(gpu, &dgb), &down(gpu, &dbb), &down(gpu, &dxb)],
            [&dg0, &db0, &dx0],
        );
    }
}

#[test]
fn bias_grad_within_bounds() {
    let Some(gpu) = gpu() else { return };
    let reference = Reference::<f32>::new();
    for (s, &shape) in BIAS_GRADS.iter().enumerate() {
        let (outer, channels, inner) = shape;
        let dy = bias_grad_input(shape, s);
        let mut want = vec![f32::NAN; channels];
        reference.bias_grad(&dy, inner, &mut want).unwrap();
        let dyb = up(gpu, &dy);
        let mut db = up(gpu, &vec![f32::NAN; channels]);
        gpu.bias_grad(&dyb, inner, &mut db).unwrap();
        let got = down(gpu, &db);
        check_bias_grad(
            &format!("bias_grad {outer}×{channels}×{inner}"),
            shape,
            &dy,
            &got,
            &want,
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
    for (s, &case) in SOFTMAXES.iter().enumerate() {
        let (rows, classes, offset) = case;
        let (z, labels) = softmax_inputs(case, s);
        let mut d0 = vec![f32::NAN; z.len()];
        let l0 = r::softmax_cross_entropy(classes, &z, &labels, &mut d0).unwrap();
        let mut db = up(gpu, &vec![f32::NAN; z.len()]);
        let l = gpu
            .softmax_cross_entropy(CrossEntropy::new(classes, &up(gpu, &z), &labels, &mut db))
            .unwrap();
        let what = format!("{rows}×{classes} offset {offset}");
        check_loss(&what, classes, rows, l, l0);
        check_dlogits(&what, classes, rows, &down(gpu, &db), &d0);
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
        r::gemm_summed(BatchedGemm::new((g, batch), &a, &b, &mut want)).unwrap();
        let (ab, bb, mut cb) = (up(gpu, &a), up(gpu, &b), up(gpu, &c0));
        gpu.gemm_summed(BatchedGemm::new((g, batch), &ab, &bb, &mut cb))
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
            gemm_summed_bound(count, k, alpha, beta, mag, old)
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
