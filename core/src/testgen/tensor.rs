//! One tensor-op suite, every backend: the bodies behind
//! [`tensor_backend_tests!`](crate::tensor_backend_tests).
//!
//! Each public function is a test body generic over a [`TensorBackend`] `B`
//! and a constructor `make: Fn(Vec<B::Elem>) -> B::Buffer`. It runs one
//! operation on awkward shapes and compares the result with the plain-loop
//! ground truth of [`crate::tensor::reference`], panicking at the first
//! difference; the `*_rejects_*` bodies check that every malformed request
//! is a typed error (never a panic). A few bodies also pin the ground truth
//! itself with hand-computed answers or identities (the max-pool tie, the
//! im2col/col2im adjoint, a 2 × 2 product).
//!
//! Only with the cargo feature `testgen`.
//!
//! # What is compared, and how closely
//!
//! | quantity | tolerance | why |
//! |---|---|---|
//! | `gemm` | `|c − c_ref| ≤ 2 (k + 2) ε (|α| Σ_p |a_ip| |b_pj| + |β| |c_ij|)` | a backend may sum the `k` products in another order, blocked or with FMA. Each of the two results is within `γ_k Σ |a||b|` of the exact dot product (`γ_k ≈ k ε`, Higham, *Accuracy and Stability*, §3.1), and the scaling by α and the addition of `β c` add two more roundings; the difference of two such results is bounded by twice that |
//! | `gemm_strided` | the `gemm` bound, per product `c_i` | each product is one GEMM on its own matrices |
//! | `gemm_summed` | the `gemm` bound with `k` replaced by `count · k` and `Σ_p` by `Σ_i Σ_p` | a backend may add the `count · k` products in another order (a GPU: all products, then one reduction). In the reference's order (one GEMM per product into the same `c`) each term passes through at most `k + 1 + count ≤ count · k + 2` roundings (its dot product, the scaling by α, the running sum), so each result is within half the bound of the exact sum |
//! | batched, the reference itself | the same bounds, against the exact sum evaluated in `f64` | pins the reference's definition (strides, β on the first product only) independently of any backend |
//! | batched, elements of `c` outside every addressed matrix | bit-identical (untouched) | gaps between strided outputs and the buffer's tail are neither read nor written |
//! | `im2col`, `col2im` | bit-identical | copies; `col2im` adds each image's entries in the same order (per image, rows then columns) |
//! | `pool_forward`, `pool_backward` | bit-identical | the same window order per plane; max picks the first maximal element |
//! | `batch_norm_stats`, `_forward`, `_backward` | bit-identical | `f64` sums over each channel in (sample, position) order, element-wise formulas in `f64`, one rounding to `Elem` |
//! | `softmax_cross_entropy` loss and gradient | bit-identical | each row in `f64` through `libm`, row losses added in order |
//! | maps (`relu`, `relu_backward`, `scale`, `add`, `mul`, `fill`, `add_bias`, `bias_grad`) | bit-identical | element-wise, one rounding; `bias_grad` sums in `f64` in order |
//! | `gemm_bias` | bit-identical to the same backend's `gemm` then `add_bias` | a backend that adds the bias as it stores the product adds it after the product's last rounding, as the separate pass would |
//!
//! Values are compared through their exact widening to `f64` with
//! [`f64::to_bits`], so `-0.0` differs from `+0.0`; any two NaNs match,
//! whatever their payloads (IEEE 754 leaves a computed NaN's payload to the
//! machine: x86 passes the operand's on, NVIDIA GPUs return one canonical
//! NaN).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::Error;
use crate::real::Real;
use crate::tensor::reference as r;
use crate::tensor::{BatchNorm, BatchedGemm, Conv2d, Gemm, GemmBatch, Pool2d, PoolKind};
use crate::tensor::{BatchNormBackwardPass, BatchNormForwardPass, BatchNormStatsPass};
use crate::tensor::{BatchNormGrads, BatchNormStats, MapOps};
use crate::tensor::{CrossEntropy, Operands, TensorBackend};
use crate::testgen::{same_bits, MakeBuffer};
use num_traits::float::FloatCore;
use num_traits::Zero;

/// Instantiates every body of
/// [`smoothout::testgen::tensor`](crate::testgen::tensor) as a `#[test]` for
/// one backend.
///
/// ```text
/// tensor_backend_tests!(module_name, backend_expression, make_buffer_expression);
/// ```
///
/// The arguments are those of [`backend_tests!`](crate::backend_tests)
/// (without `max_len`: every shape here is small). Needs the cargo feature
/// `testgen` of `smoothout`.
///
/// # Example
///
/// ```no_run
/// use smoothout::Reference;
///
/// smoothout::tensor_backend_tests!(tensor_f32, Reference::<f32>::new(), |v: Vec<f32>| v);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! tensor_backend_tests {
    ($name:ident, $backend:expr, $make:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::tensor_backend_tests!(@each $backend, $make; batch_norm, softmax_cross_entropy);
            $crate::tensor_shared_bodies!($crate::tensor_backend_tests, @each $backend, $make;);
        }
    };
    (@each $backend:expr, $make:expr; $($body:ident),* $(,)?) => {
        $(
            #[test]
            fn $body() {
                let backend = $backend;
                let make = $make;
                $crate::testgen::tensor::$body(&backend, &make);
            }
        )*
    };
}

/// Calls `callback!(arguments… name, name, …)` with the names of the
/// bodies of [`smoothout::testgen::tensor`](crate::testgen::tensor) that
/// every backend runs unchanged, including one that sums in another order
/// than the reference (a GPU): all but `batch_norm` and
/// `softmax_cross_entropy`, which compare the reference's sums bit for bit
/// (such a backend checks those two within bounds instead).
///
/// ```text
/// tensor_shared_bodies!(callback_macro, leading_arguments…);
/// ```
///
/// # Example
///
/// ```
/// macro_rules! names {
///     ($($body:ident),* $(,)?) => { const NAMES: &[&str] = &[$(stringify!($body)),*]; };
/// }
/// smoothout::tensor_shared_bodies!(names,);
/// # fn main() {
/// assert_eq!(NAMES.len(), 18);
/// assert!(!NAMES.contains(&"batch_norm"));
/// # }
/// ```
#[macro_export]
macro_rules! tensor_shared_bodies {
    ($callback:path, $($arguments:tt)*) => {
        $callback!($($arguments)*
            gemm_all_transposes,
            gemm_beta_zero_ignores_c,
            gemm_known_answer,
            gemm_rejects_bad_requests,
            gemm_bias,
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
    };
}

/// Deterministic values in `[-1, 1)` (a SplitMix64 hash of the index and
/// `salt`), the inputs of the shared bodies.
pub fn data<T: Real>(len: usize, salt: u64) -> Vec<T> {
    (0..len as u64)
        .map(|i| {
            let mut z = (i ^ salt.rotate_left(32)).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            T::from_f64((z >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        })
        .collect()
}

fn read<B: TensorBackend>(backend: &B, buf: &B::Buffer) -> Vec<B::Elem> {
    backend.to_vec(buf).expect("to_vec")
}

fn expect_err<T: core::fmt::Debug>(what: &str, r: crate::Result<T>) {
    match r {
        Err(Error::InvalidSetting { .. } | Error::LengthMismatch { .. }) => {}
        other => panic!("{what}: expected a typed size/setting error, got {other:?}"),
    }
}

/// `(m, n, k)`: ones, odd sizes, more than one 64-row block, a long
/// reduction, empty reductions and products.
const GEMM_SHAPES: [(usize, usize, usize); 8] = [
    (1, 1, 1),
    (3, 5, 7),
    (17, 13, 65),
    (130, 9, 33),
    (5, 70, 300),
    (2, 3, 0),
    (0, 4, 5),
    (4, 0, 5),
];

/// `α/β` pairs of the GEMM bodies: β = 0 (with NaN in `c` for the batched
/// forms), β = 1 (a gradient accumulating) and a general pair.
const GEMM_SCALARS: [(f64, f64); 3] = [(1.0, 0.0), (0.5, 1.0), (-1.25, -0.75)];

/// The GEMM bound of the module's table, `2 (k + 2) ε (|α| mag + |β| |c|)`,
/// for a reduction of `k` products whose absolute values sum to `mag`, onto
/// an old `c` of absolute value `cm` (0 when β = 0).
fn gemm_bound(eps: f64, k: usize, g: &Gemm, mag: f64, cm: f64) -> f64 {
    2.0 * (k as f64 + 2.0) * eps * (g.alpha.abs() * mag + g.beta.abs() * cm)
}

/// Runs `g` on the backend and the reference and checks the bound in the
/// module's table.
fn gemm_case<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F, g: Gemm, salt: u64) {
    let a: Vec<B::Elem> = data(g.m * g.k, salt);
    let b: Vec<B::Elem> = data(g.k * g.n, salt + 1);
    let c0: Vec<B::Elem> = data(g.m * g.n, salt + 2);
    let mut want = c0.clone();
    r::gemm(&g, &a, &b, &mut want).expect("reference gemm");
    let mut c = make(c0.clone());
    backend
        .gemm(Operands::new(g, &make(a.clone()), &make(b.clone()), &mut c))
        .expect("gemm");
    let got = read(backend, &c);
    let eps = Real::to_f64(B::Elem::epsilon());
    let at = |i: usize, p: usize| {
        Real::to_f64(if g.trans_a {
            a[p * g.m + i]
        } else {
            a[i * g.k + p]
        })
    };
    let bt = |p: usize, j: usize| {
        Real::to_f64(if g.trans_b {
            b[j * g.k + p]
        } else {
            b[p * g.n + j]
        })
    };
    for i in 0..g.m {
        for j in 0..g.n {
            let mag: f64 = (0..g.k).map(|p| (at(i, p) * bt(p, j)).abs()).sum();
            let cm = if g.beta == 0.0 {
                0.0
            } else {
                Real::to_f64(c0[i * g.n + j]).abs()
            };
            let tol = gemm_bound(eps, g.k, &g, mag, cm);
            let (x, y) = (
                Real::to_f64(got[i * g.n + j]),
                Real::to_f64(want[i * g.n + j]),
            );
            assert!(
                (x - y).abs() <= tol,
                "gemm {g:?}: c[{i}, {j}] = {x}, reference {y}, bound {tol}"
            );
        }
    }
}

/// GEMM with every transpose combination, α/β pairs and shapes.
pub fn gemm_all_transposes<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    for (s, &(m, n, k)) in GEMM_SHAPES.iter().enumerate() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (alpha, beta) in GEMM_SCALARS {
                let g = Gemm::new(m, n, k).transposed(ta, tb).scaled(alpha, beta);
                gemm_case(backend, make, g, 10 * s as u64);
            }
        }
    }
}

/// `β = 0`: NaN in `c` does not reach the result.
pub fn gemm_beta_zero_ignores_c<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    let g = Gemm::new(70, 6, 11);
    let mut c = make(vec![B::Elem::nan(); 70 * 6]);
    backend
        .gemm(Operands::new(
            g,
            &make(data(70 * 11, 1)),
            &make(data(11 * 6, 2)),
            &mut c,
        ))
        .expect("gemm");
    assert!(read(backend, &c).iter().all(|v| v.is_finite()));
}

/// A 2 × 2 product by hand, every transpose (pins the reference too).
pub fn gemm_known_answer<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    let v = |x: &[f64]| x.iter().map(|&x| B::Elem::from_f64(x)).collect::<Vec<_>>();
    // a = [[1, 2], [3, 4]], b = [[5, 6], [7, 8]], a·b = [[19, 22], [43, 50]].
    let (a, at) = (v(&[1., 2., 3., 4.]), v(&[1., 3., 2., 4.]));
    let (b, bt) = (v(&[5., 6., 7., 8.]), v(&[5., 7., 6., 8.]));
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let g = Gemm::new(2, 2, 2).transposed(ta, tb).scaled(2.0, 1.0);
        let mut c = make(v(&[1., 1., 1., 1.]));
        let (a, b) = (if ta { &at } else { &a }, if tb { &bt } else { &b });
        backend
            .gemm(Operands::new(g, &make(a.clone()), &make(b.clone()), &mut c))
            .expect("gemm");
        same_bits(
            &format!("{g:?}"),
            &read(backend, &c),
            &v(&[39., 45., 87., 101.]),
        );
    }
}

/// [`MatmulOps::gemm_bias`](crate::tensor::MatmulOps::gemm_bias) equals
/// `gemm` followed by `add_bias(bias, 1, c)` on the same backend, bit for
/// bit, for every transpose, α/β pair and non-empty shape (a bias per
/// column); and a bias that does not fit is a typed error.
pub fn gemm_bias<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    for (s, &(m, n, k)) in GEMM_SHAPES.iter().enumerate() {
        if m * n == 0 {
            continue;
        }
        let salt = 900 + 10 * s as u64;
        let (a, b, bias) = (
            make(data(m * k, salt)),
            make(data(k * n, salt + 1)),
            make(data(n, salt + 3)),
        );
        let c0: Vec<B::Elem> = data(m * n, salt + 2);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (alpha, beta) in GEMM_SCALARS {
                let g = Gemm::new(m, n, k).transposed(ta, tb).scaled(alpha, beta);
                let mut want = make(c0.clone());
                backend
                    .gemm(Operands::new(g, &a, &b, &mut want))
                    .expect("gemm");
                backend.add_bias(&bias, 1, &mut want).expect("add_bias");
                let mut got = make(c0.clone());
                backend
                    .gemm_bias(Operands::new(g, &a, &b, &mut got), &bias)
                    .expect("gemm_bias");
                same_bits(
                    &format!("gemm_bias {g:?}"),
                    &read(backend, &got),
                    &read(backend, &want),
                );
            }
        }
    }
    let z = |n| make(vec![B::Elem::zero(); n]);
    let g = Gemm::new(2, 3, 4).transposed(false, true);
    let (a, b, mut c) = (z(8), z(12), z(6));
    for (what, bias) in [("empty bias", 0), ("bias not dividing c", 4)] {
        let req = Operands::new(g, &a, &b, &mut c);
        expect_err(what, backend.gemm_bias(req, &z(bias)));
    }
    let short = z(7);
    let req = Operands::new(g, &short, &b, &mut c);
    expect_err("gemm_bias a", backend.gemm_bias(req, &z(3)));
}

/// Wrong lengths of each operand and non-finite scalars.
pub fn gemm_rejects_bad_requests<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    let g = Gemm::new(3, 4, 5);
    let z = |n| make(vec![B::Elem::zero(); n]);
    expect_err(
        "a",
        backend.gemm(Operands::new(g, &z(14), &z(20), &mut z(12))),
    );
    expect_err(
        "b",
        backend.gemm(Operands::new(g, &z(15), &z(21), &mut z(12))),
    );
    expect_err(
        "c",
        backend.gemm(Operands::new(g, &z(15), &z(20), &mut z(11))),
    );
    let bad = g.scaled(f64::NAN, 0.0);
    expect_err(
        "alpha",
        backend.gemm(Operands::new(bad, &z(15), &z(20), &mut z(12))),
    );
    let bad = g.scaled(1.0, f64::INFINITY);
    expect_err(
        "beta",
        backend.gemm(Operands::new(bad, &z(15), &z(20), &mut z(12))),
    );
    let huge = Gemm::new(usize::MAX, 2, 2);
    expect_err(
        "overflow",
        backend.gemm(Operands::new(huge, &z(1), &z(4), &mut z(1))),
    );
}

/// `(m, n, k, count)` for the batched forms: ones, odd sizes, more than one
/// 64-row block, an empty reduction, empty outputs.
const BATCH_SHAPES: [(usize, usize, usize, usize); 6] = [
    (1, 1, 1, 1),
    (3, 5, 7, 4),
    (17, 13, 65, 3),
    (70, 9, 33, 2),
    (2, 3, 0, 3),
    (0, 4, 5, 3),
];

/// The batch layouts of a shape: packed, with gaps, `a` shared (stride 0),
/// `b` shared with a gap after each output. `stride_c` is 0 when `summed`.
fn batch_layouts(g: &Gemm, count: usize, summed: bool) -> [GemmBatch; 4] {
    let (ma, mb, mc) = (g.m * g.k, g.k * g.n, g.m * g.n);
    let sc = |s: usize| if summed { 0 } else { s };
    let batch = |stride_a, stride_b, stride_c| GemmBatch {
        count,
        stride_a,
        stride_b,
        stride_c: sc(stride_c),
    };
    [
        batch(ma, mb, mc),
        batch(ma + 3, mb + 1, mc + 2),
        batch(0, mb, mc),
        batch(ma, 0, mc + 1),
    ]
}

/// Runs a batched request on the backend and the reference, with one spare
/// element after the last matrix of each buffer, and with `c` all NaN when
/// β = 0 (so reading it would show). Checks the module's bounds for every
/// addressed element of `c` (backend against reference, reference against
/// the exact sum in `f64`) and that every other element is untouched.
fn gemm_batch_case<B: TensorBackend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    g: Gemm,
    batch: GemmBatch,
    summed: bool,
    salt: u64,
) {
    let (ma, mb, mc) = (g.m * g.k, g.k * g.n, g.m * g.n);
    let span = |stride: usize, size: usize| (batch.count - 1) * stride + size + 1;
    let a: Vec<B::Elem> = data(span(batch.stride_a, ma), salt);
    let b: Vec<B::Elem> = data(span(batch.stride_b, mb), salt + 1);
    let mut c0: Vec<B::Elem> = data(span(batch.stride_c, mc), salt + 2);
    if g.beta == 0.0 {
        c0.fill(B::Elem::nan());
    }
    let what = if summed {
        "gemm_summed"
    } else {
        "gemm_strided"
    };
    let mut want = c0.clone();
    let mut c = make(c0.clone());
    let (ab, bb) = (make(a.clone()), make(b.clone()));
    let reference = BatchedGemm::new((g, batch), &a[..], &b, &mut want);
    let request = BatchedGemm::new((g, batch), &ab, &bb, &mut c);
    if summed {
        r::gemm_summed(reference).expect("reference gemm_summed");
        backend.gemm_summed(request).expect("gemm_summed");
    } else {
        r::gemm_strided(reference).expect("reference gemm_strided");
        backend.gemm_strided(request).expect("gemm_strided");
    }
    let got = read(backend, &c);
    let eps = Real::to_f64(B::Elem::epsilon());
    let at = |q: usize, i: usize, p: usize| {
        let o = q * batch.stride_a;
        Real::to_f64(if g.trans_a {
            a[o + p * g.m + i]
        } else {
            a[o + i * g.k + p]
        })
    };
    let bt = |q: usize, p: usize, j: usize| {
        let o = q * batch.stride_b;
        Real::to_f64(if g.trans_b {
            b[o + j * g.k + p]
        } else {
            b[o + p * g.n + j]
        })
    };
    let mut addressed = vec![false; c0.len()];
    let outputs = if summed { 1 } else { batch.count };
    for o in 0..outputs {
        let products = if summed { 0..batch.count } else { o..o + 1 };
        for i in 0..g.m {
            for j in 0..g.n {
                let idx = o * batch.stride_c + i * g.n + j;
                addressed[idx] = true;
                let (mut sum, mut mag) = (0.0, 0.0);
                for q in products.clone() {
                    for p in 0..g.k {
                        let v = at(q, i, p) * bt(q, p, j);
                        sum += v;
                        mag += v.abs();
                    }
                }
                let old = Real::to_f64(c0[idx]);
                let (exact, cm) = if g.beta == 0.0 {
                    (g.alpha * sum, 0.0)
                } else {
                    (g.alpha * sum + g.beta * old, old.abs())
                };
                let tol = gemm_bound(eps, products.len() * g.k, &g, mag, cm);
                let (x, y) = (Real::to_f64(got[idx]), Real::to_f64(want[idx]));
                assert!(
                    (x - y).abs() <= tol,
                    "{what} {g:?} {batch:?}: c[{idx}] = {x}, reference {y}, bound {tol}"
                );
                assert!(
                    (y - exact).abs() <= tol,
                    "reference {what} {g:?} {batch:?}: c[{idx}] = {y}, exact {exact}, bound {tol}"
                );
            }
        }
    }
    let untouched = |v: &[B::Elem]| -> Vec<B::Elem> {
        v.iter()
            .zip(&addressed)
            .filter(|(_, &hit)| !hit)
            .map(|(&v, _)| v)
            .collect()
    };
    let rest = untouched(&c0);
    same_bits(
        &format!("{what} {g:?} {batch:?}: untouched elements"),
        &untouched(&got),
        &rest,
    );
    same_bits(
        &format!("reference {what} {g:?} {batch:?}: untouched elements"),
        &untouched(&want),
        &rest,
    );
}

/// Every batched case of one form: each shape, transpose, α/β pair and
/// layout, salted `salt · shape index`.
fn gemm_batch_cases<B: TensorBackend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    summed: bool,
    salt: u64,
) {
    for (s, &(m, n, k, count)) in BATCH_SHAPES.iter().enumerate() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (alpha, beta) in GEMM_SCALARS {
                let g = Gemm::new(m, n, k).transposed(ta, tb).scaled(alpha, beta);
                for batch in batch_layouts(&g, count, summed) {
                    gemm_batch_case(backend, make, g, batch, summed, salt * s as u64);
                }
            }
        }
    }
}

/// `gemm_strided` on every shape, layout (packed, gaps, `a` or `b` shared
/// by stride 0), transpose and α/β pair, within the GEMM bound; β = 0 with
/// NaN in `c` does not read it; gaps are left alone.
pub fn gemm_strided_all_transposes<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    gemm_batch_cases(backend, make, false, 20);
}

/// `gemm_summed` on every shape, layout, transpose and α/β pair, within the
/// GEMM bound with `k` replaced by `count · k`; β = 0 with NaN in `c` does
/// not read it; β ≠ 0 applies to the old `c` once.
pub fn gemm_summed_all_transposes<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    gemm_batch_cases(backend, make, true, 30);
}

/// `Err(InvalidSetting)` naming `name`.
fn expect_setting<T: core::fmt::Debug>(what: &str, name: &str, r: crate::Result<T>) {
    match r {
        Err(Error::InvalidSetting { name: n, .. }) if n.contains(name) => {}
        other => panic!("{what}: expected InvalidSetting naming {name:?}, got {other:?}"),
    }
}

/// Both batched forms: no products, a matrix past the end of each buffer,
/// non-finite scalars, sizes and strides that overflow; the strided form's
/// overlapping outputs and the summed form's non-zero `stride_c`.
pub fn gemm_batched_rejects_bad_requests<B: TensorBackend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
) {
    let g = Gemm::new(3, 4, 5);
    let z = |n| make(vec![B::Elem::zero(); n]);
    let packed = GemmBatch {
        count: 3,
        stride_a: 15,
        stride_b: 20,
        stride_c: 12,
    };
    let summed = GemmBatch {
        stride_c: 0,
        ..packed
    };
    // One form (summed or strided) with `a`, `b`, `c` of the given lengths.
    let run = |summed: bool, g: Gemm, batch: GemmBatch, (a, b, c): (usize, usize, usize)| {
        let (a, b, mut c) = (z(a), z(b), z(c));
        let request = BatchedGemm::new((g, batch), &a, &b, &mut c);
        if summed {
            backend.gemm_summed(request)
        } else {
            backend.gemm_strided(request)
        }
    };
    let (ls, lsum) = ((45, 60, 36), (45, 60, 12));
    // The valid requests pass, so each rejection below is for its reason.
    run(false, g, packed, ls).expect("valid strided request");
    run(true, g, summed, lsum).expect("valid summed request");
    for (form, batch, lens) in [(false, packed, ls), (true, summed, lsum)] {
        let (la, lb, lc) = lens;
        let what = |case: &str| format!("{} {case}", if form { "summed" } else { "strided" });
        let count0 = GemmBatch { count: 0, ..batch };
        expect_setting(&what("count 0"), "count", run(form, g, count0, lens));
        expect_err(&what("a short"), run(form, g, batch, (la - 1, lb, lc)));
        expect_err(&what("b short"), run(form, g, batch, (la, lb - 1, lc)));
        expect_err(&what("c short"), run(form, g, batch, (la, lb, lc - 1)));
        let bad = g.scaled(f64::NAN, 0.0);
        expect_setting(&what("alpha"), "alpha", run(form, bad, batch, lens));
        let bad = g.scaled(1.0, f64::INFINITY);
        expect_setting(&what("beta"), "beta", run(form, bad, batch, lens));
        let huge = Gemm::new(usize::MAX, 2, 2);
        expect_err(&what("m·k overflows"), run(form, huge, batch, lens));
        // (count − 1) · stride overflows, then the addition of the size.
        let big = GemmBatch {
            stride_a: usize::MAX / 2 + 1,
            ..batch
        };
        expect_setting(&what("stride_a · 2"), "stride_a", run(form, g, big, lens));
        let big = GemmBatch {
            count: 2,
            stride_b: usize::MAX - 5,
            ..batch
        };
        expect_setting(&what("stride_b + k·n"), "stride_b", run(form, g, big, lens));
    }
    // Strided: overlapping outputs (also a shared one), and an overflowing
    // output stride; one product needs no output stride.
    for stride_c in [11, 0] {
        let overlap = GemmBatch { stride_c, ..packed };
        expect_setting(
            &format!("strided stride_c {stride_c}"),
            "stride_c",
            run(false, g, overlap, ls),
        );
    }
    let one = GemmBatch {
        count: 1,
        stride_c: 0,
        ..packed
    };
    run(false, g, one, (15, 20, 12)).expect("one product, stride_c 0");
    let big = GemmBatch {
        stride_c: usize::MAX,
        ..packed
    };
    expect_setting(
        "strided stride_c overflows",
        "stride_c",
        run(false, g, big, ls),
    );
    // Summed: one output, so stride_c must be 0.
    expect_setting("summed stride_c 12", "stride_c", run(true, g, packed, ls));
}

/// Convolutions: padding, strides, rectangular kernels and images, 1 × 1,
/// a kernel as large as the padded image.
pub const CONVS: [Conv2d; 6] = [
    conv(2, 3, 5, 7, 3, 3, 1, 1),
    conv(1, 2, 8, 8, 2, 3, 2, 0),
    conv(3, 1, 4, 4, 1, 1, 1, 0),
    conv(2, 2, 6, 5, 4, 4, 3, 2),
    conv(1, 1, 3, 3, 5, 5, 1, 1),
    conv(2, 4, 9, 9, 5, 5, 1, 2),
];

#[allow(clippy::too_many_arguments)]
const fn conv(
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    kernel_h: usize,
    kernel_w: usize,
    stride: usize,
    padding: usize,
) -> Conv2d {
    Conv2d {
        batch,
        channels,
        height,
        width,
        kernel_h,
        kernel_w,
        stride,
        padding,
    }
}

fn col_len(c: &Conv2d) -> usize {
    c.batch * c.col_rows() * c.col_cols()
}

/// im2col bit for bit; col2im accumulating onto a non-zero `x`, bit for bit.
pub fn im2col_and_col2im<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    for (s, c) in CONVS.iter().enumerate() {
        let x: Vec<B::Elem> = data(c.batch * c.image_len(), s as u64);
        let mut want = vec![B::Elem::nan(); col_len(c)];
        r::im2col(c, &x, &mut want).expect("reference im2col");
        let mut col = make(vec![B::Elem::nan(); col_len(c)]);
        backend
            .im2col(c, &make(x.clone()), &mut col)
            .expect("im2col");
        same_bits(&format!("im2col {c:?}"), &read(backend, &col), &want);

        let cols: Vec<B::Elem> = data(col_len(c), 100 + s as u64);
        let mut want = x.clone();
        r::col2im(c, &cols, &mut want).expect("reference col2im");
        let mut xb = make(x);
        backend.col2im(c, &make(cols), &mut xb).expect("col2im");
        same_bits(&format!("col2im {c:?}"), &read(backend, &xb), &want);
    }
}

/// `⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩` (in `f64`, to a relative `1e-4` of
/// `Σ |x||y|`: two sums of the same products in different orders), which
/// pins the reference's index arithmetic.
pub fn im2col_col2im_adjoint<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    for (s, c) in CONVS.iter().enumerate() {
        let n = c.batch * c.image_len();
        let x: Vec<B::Elem> = data(n, 7 + s as u64);
        let y: Vec<B::Elem> = data(col_len(c), 70 + s as u64);
        let mut col = make(vec![B::Elem::zero(); col_len(c)]);
        backend
            .im2col(c, &make(x.clone()), &mut col)
            .expect("im2col");
        let mut back = make(vec![B::Elem::zero(); n]);
        backend
            .col2im(c, &make(y.clone()), &mut back)
            .expect("col2im");
        let dot = |u: &[B::Elem], v: &[B::Elem]| -> (f64, f64) {
            u.iter().zip(v).fold((0.0, 0.0), |(s, m), (&u, &v)| {
                let p = Real::to_f64(u) * Real::to_f64(v);
                (s + p, m + p.abs())
            })
        };
        let (l, ml) = dot(&read(backend, &col), &y);
        let (rr, _) = dot(&x, &read(backend, &back));
        assert!(
            (l - rr).abs() <= 1e-4 * ml.max(1e-30),
            "adjoint {c:?}: {l} vs {rr}"
        );
    }
}

/// Zero sizes, a kernel larger than the padded image, wrong lengths.
pub fn conv_rejects_bad_requests<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    let ok = CONVS[0];
    let z = |n| make(vec![B::Elem::zero(); n]);
    let n = ok.batch * ok.image_len();
    let mut bads = vec![
        Conv2d { batch: 0, ..ok },
        Conv2d { channels: 0, ..ok },
        Conv2d { height: 0, ..ok },
        Conv2d { width: 0, ..ok },
        Conv2d { kernel_h: 0, ..ok },
        Conv2d { kernel_w: 0, ..ok },
        Conv2d { stride: 0, ..ok },
        Conv2d { kernel_h: 8, ..ok },
        Conv2d { kernel_w: 10, ..ok },
    ];
    bads.push(Conv2d {
        batch: usize::MAX / 2,
        ..ok
    });
    for bad in bads {
        expect_err(
            &format!("im2col {bad:?}"),
            backend.im2col(&bad, &z(n), &mut z(col_len(&ok))),
        );
        expect_err(
            &format!("col2im {bad:?}"),
            backend.col2im(&bad, &z(col_len(&ok)), &mut z(n)),
        );
    }
    expect_err(
        "im2col x",
        backend.im2col(&ok, &z(n + 1), &mut z(col_len(&ok))),
    );
    expect_err(
        "im2col col",
        backend.im2col(&ok, &z(n), &mut z(col_len(&ok) - 1)),
    );
    expect_err(
        "col2im x",
        backend.col2im(&ok, &z(col_len(&ok)), &mut z(n - 1)),
    );
    expect_err(
        "col2im col",
        backend.col2im(&ok, &z(col_len(&ok) + 1), &mut z(n)),
    );
}

#[allow(clippy::too_many_arguments)]
const fn pool(
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    kind: PoolKind,
) -> Pool2d {
    Pool2d {
        batch,
        channels,
        height,
        width,
        kernel,
        stride,
        padding,
        kind,
    }
}

/// Pooling geometries: overlapping 3/2 windows (C1), 2/2, padded, and a
/// stride larger than the kernel with padding.
const POOLS: [(usize, usize, usize, usize, usize, usize, usize); 5] = [
    (2, 3, 7, 6, 3, 2, 0),
    (1, 2, 8, 8, 2, 2, 0),
    (1, 1, 5, 5, 3, 1, 1),
    (2, 1, 6, 7, 4, 3, 2),
    (3, 2, 1, 1, 1, 1, 0),
];

/// Max and average pooling, forward and backward, bit for bit; the data is
/// quantised to multiples of 1/4 so that windows hold ties.
pub fn pool_max_and_avg<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    for (s, &(n, c, h, w, k, st, pd)) in POOLS.iter().enumerate() {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let p = pool(n, c, h, w, k, st, pd, kind);
            let x: Vec<B::Elem> = data::<B::Elem>(n * c * h * w, s as u64)
                .into_iter()
                .map(|v| B::Elem::from_f64(libm::floor(Real::to_f64(v) * 4.0) / 4.0))
                .collect();
            let out = n * c * p.out_h() * p.out_w();
            let mut want = vec![B::Elem::zero(); out];
            r::pool_forward(&p, &x, &mut want).expect("reference pool");
            let mut y = make(vec![B::Elem::nan(); out]);
            backend
                .pool_forward(&p, &make(x.clone()), &mut y)
                .expect("pool");
            same_bits(&format!("pool_forward {p:?}"), &read(backend, &y), &want);

            let dy: Vec<B::Elem> = data(out, 50 + s as u64);
            let mut want = vec![B::Elem::nan(); x.len()];
            r::pool_backward(&p, &x, &dy, &mut want).expect("reference pool backward");
            let mut dx = make(vec![B::Elem::nan(); x.len()]);
            backend
                .pool_backward(Operands::new(p, &make(x.clone()), &make(dy), &mut dx))
                .expect("pool backward");
            same_bits(&format!("pool_backward {p:?}"), &read(backend, &dx), &want);
        }
    }
}

/// A window of equal values sends its whole gradient to its first element;
/// overlapping windows add up; padding never wins a max.
pub fn pool_max_tie_goes_to_first<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    let v = |x: &[f64]| x.iter().map(|&x| B::Elem::from_f64(x)).collect::<Vec<_>>();
    // 3 × 3 plane of −1 (padding would be 0 > −1), kernel 2, stride 1,
    // padding 1: 4 × 4 outputs; every window's first in-image element wins.
    let p = pool(1, 1, 3, 3, 2, 1, 1, PoolKind::Max);
    let mut y = make(v(&[9.0; 16]));
    backend
        .pool_forward(&p, &make(v(&[-1.0; 9])), &mut y)
        .expect("pool");
    same_bits(
        "max of −1 with padding",
        &read(backend, &y),
        &v(&[-1.0; 16]),
    );
    let mut dx = make(v(&[9.0; 9]));
    backend
        .pool_backward(Operands::new(
            p,
            &make(v(&[-1.0; 9])),
            &make(v(&[1.0; 16])),
            &mut dx,
        ))
        .expect("pool backward");
    // Window (oy, ox) covers rows oy−1..oy+1 clipped; its first element is
    // (max(oy−1, 0), max(ox−1, 0)).
    let want = v(&[4., 2., 2., 2., 1., 1., 2., 1., 1.]);
    same_bits("tie routing", &read(backend, &dx), &want);
}

/// Zero sizes, padding above kernel / 2, windows larger than the image,
/// wrong lengths.
pub fn pool_rejects_bad_requests<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    let ok = pool(2, 3, 7, 6, 3, 2, 1, PoolKind::Max);
    let z = |n| make(vec![B::Elem::zero(); n]);
    let (nx, ny) = (2 * 3 * 7 * 6, 2 * 3 * ok.out_h() * ok.out_w());
    for bad in [
        Pool2d { batch: 0, ..ok },
        Pool2d { channels: 0, ..ok },
        Pool2d { height: 0, ..ok },
        Pool2d { width: 0, ..ok },
        Pool2d { kernel: 0, ..ok },
        Pool2d { stride: 0, ..ok },
        Pool2d { padding: 2, ..ok },
        Pool2d {
            kernel: 9,
            padding: 1,
            ..ok
        },
        Pool2d {
            batch: usize::MAX / 4,
            ..ok
        },
    ] {
        expect_err(
            &format!("forward {bad:?}"),
            backend.pool_forward(&bad, &z(nx), &mut z(ny)),
        );
        expect_err(
            &format!("backward {bad:?}"),
            backend.pool_backward(Operands::new(bad, &z(nx), &z(ny), &mut z(nx))),
        );
    }
    expect_err(
        "forward x",
        backend.pool_forward(&ok, &z(nx - 1), &mut z(ny)),
    );
    expect_err(
        "forward y",
        backend.pool_forward(&ok, &z(nx), &mut z(ny + 1)),
    );
    expect_err(
        "backward dy",
        backend.pool_backward(Operands::new(ok, &z(nx), &z(ny - 1), &mut z(nx))),
    );
    expect_err(
        "backward dx",
        backend.pool_backward(Operands::new(ok, &z(nx), &z(ny), &mut z(nx + 1))),
    );
}

/// Batch-norm layouts: 2-D with odd spatial sizes, 1-D, one sample of one
/// element (variance 0, ε alone), a batch of 1 with spatial extent.
const BNS: [(usize, usize, usize, f64); 5] = [
    (4, 3, 5, 1e-5),
    (7, 5, 1, 1e-3),
    (1, 2, 1, 1e-5),
    (1, 3, 9, 0.1),
    (3, 4, 49, 0.0),
];

/// Each row `(batch, channels, spatial, ε)` of a table of batch-norm cases
/// as its layout, numbered from 0.
pub fn batch_norm_layouts(
    rows: &[(usize, usize, usize, f64)],
) -> impl Iterator<Item = (usize, BatchNorm)> + '_ {
    let layout = |&(batch, channels, spatial, eps): &(usize, usize, usize, f64)| BatchNorm {
        batch,
        channels,
        spatial,
        eps,
    };
    rows.iter().map(layout).enumerate()
}

/// The three batch-norm passes in order on `backend`, every output started
/// as NaN: the statistics of `x`, the forward pass with them, the backward
/// pass with them. Returns `[mean, var, y, dx, dgamma, dbeta]`, read back.
/// On [`crate::Reference`] with `make = |v| v` it gives the ground truth a
/// backend's own test compares with.
///
/// # Panics
/// When a pass fails.
pub fn batch_norm_passes<B: TensorBackend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    bn: BatchNorm,
    [x, dy, gamma, beta]: [&[B::Elem]; 4],
) -> [Vec<B::Elem>; 6] {
    let nan = |n| make(vec![B::Elem::nan(); n]);
    let (x, dy) = (make(x.to_vec()), make(dy.to_vec()));
    let (gamma, beta) = (make(gamma.to_vec()), make(beta.to_vec()));
    let (mut mean, mut var) = (nan(bn.channels), nan(bn.channels));
    backend
        .batch_norm_stats(BatchNormStatsPass {
            bn,
            x: &x,
            mean: &mut mean,
            var: &mut var,
        })
        .expect("stats");
    let stats = BatchNormStats::new(&mean, &var);
    let mut y = nan(bn.len());
    backend
        .batch_norm_forward(BatchNormForwardPass {
            bn,
            x: &x,
            y: &mut y,
            gamma: &gamma,
            beta: &beta,
            stats,
        })
        .expect("forward");
    let (mut dx, mut dgamma, mut dbeta) = (nan(bn.len()), nan(bn.channels), nan(bn.channels));
    backend
        .batch_norm_backward(BatchNormBackwardPass {
            bn,
            x: &x,
            dy: &dy,
            gamma: &gamma,
            stats,
            grads: BatchNormGrads::new(&mut dx, &mut dgamma, &mut dbeta),
        })
        .expect("backward");
    [mean, var, y, dx, dgamma, dbeta].map(|b| read(backend, &b))
}

/// Statistics, forward and backward, bit for bit.
pub fn batch_norm<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    let reference = crate::Reference::<B::Elem>::new();
    for (s, bn) in batch_norm_layouts(&BNS) {
        let s = 200 + 10 * s as u64;
        let x: Vec<B::Elem> = data(bn.len(), s);
        let dy: Vec<B::Elem> = data(bn.len(), s + 1);
        let gamma: Vec<B::Elem> = data(bn.channels, s + 2);
        let beta: Vec<B::Elem> = data(bn.channels, s + 3);
        let inputs = [&x[..], &dy, &gamma, &beta];
        let want = batch_norm_passes(&reference, &|v| v, bn, inputs);
        let got = batch_norm_passes(backend, make, bn, inputs);
        let names = ["mean", "var", "forward", "dx", "dgamma", "dbeta"];
        for ((name, got), want) in names.iter().zip(&got).zip(&want) {
            same_bits(&format!("{name} {bn:?}"), got, want);
        }
    }
}

/// Zero sizes, bad ε, and a wrong length for every buffer of every call.
pub fn batch_norm_rejects_bad_requests<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    let ok = BatchNorm {
        batch: 2,
        channels: 3,
        spatial: 4,
        eps: 1e-5,
    };
    let z = |n| make(vec![B::Elem::zero(); n]);
    // Each call with its buffers' lengths, in the request's field order.
    let stats = |bn, [x, mean, var]: [usize; 3]| {
        backend.batch_norm_stats(BatchNormStatsPass {
            bn,
            x: &z(x),
            mean: &mut z(mean),
            var: &mut z(var),
        })
    };
    let forward = |bn, [x, y, gamma, beta, mean, var]: [usize; 6]| {
        backend.batch_norm_forward(BatchNormForwardPass {
            bn,
            x: &z(x),
            y: &mut z(y),
            gamma: &z(gamma),
            beta: &z(beta),
            stats: BatchNormStats::new(&z(mean), &z(var)),
        })
    };
    let backward = |bn, [x, dy, gamma, mean, var, dx, dg, db]: [usize; 8]| {
        backend.batch_norm_backward(BatchNormBackwardPass {
            bn,
            x: &z(x),
            dy: &z(dy),
            gamma: &z(gamma),
            stats: BatchNormStats::new(&z(mean), &z(var)),
            grads: BatchNormGrads::new(&mut z(dx), &mut z(dg), &mut z(db)),
        })
    };
    let (t, c) = (24, 3);
    let lengths = ([t, c, c], [t, t, c, c, c, c], [t, t, c, c, c, t, c, c]);
    for bad in [
        BatchNorm { batch: 0, ..ok },
        BatchNorm { channels: 0, ..ok },
        BatchNorm { spatial: 0, ..ok },
        BatchNorm { eps: -1.0, ..ok },
        BatchNorm {
            eps: f64::NAN,
            ..ok
        },
        BatchNorm {
            spatial: usize::MAX / 2,
            ..ok
        },
    ] {
        expect_err("stats", stats(bad, lengths.0));
        expect_err("forward", forward(bad, lengths.1));
        expect_err("backward", backward(bad, lengths.2));
    }
    // Each buffer in turn one element short.
    for k in 0..3 {
        expect_err("stats length", stats(ok, one_short(lengths.0, k)));
    }
    for k in 0..6 {
        expect_err("forward length", forward(ok, one_short(lengths.1, k)));
    }
    for k in 0..8 {
        expect_err("backward length", backward(ok, one_short(lengths.2, k)));
    }
}

/// `lengths` with entry `k` one less.
fn one_short<const N: usize>(mut lengths: [usize; N], k: usize) -> [usize; N] {
    lengths[k] -= 1;
    lengths
}

/// Loss and gradient bit for bit; one class, many rows, and logits offset by
/// ±10⁴ (exp would overflow without the row maximum).
pub fn softmax_cross_entropy<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    for (s, &(rows, classes, offset)) in [
        (1usize, 1usize, 0.0),
        (5, 10, 0.0),
        (33, 7, 0.0),
        (4, 100, 1e4),
        (3, 3, -1e4),
    ]
    .iter()
    .enumerate()
    {
        let z: Vec<B::Elem> = data::<B::Elem>(rows * classes, 300 + s as u64)
            .into_iter()
            .map(|v| B::Elem::from_f64(Real::to_f64(v) * 8.0 + offset))
            .collect();
        let labels: Vec<u32> = (0..rows).map(|i| ((i * 7 + s) % classes) as u32).collect();
        let mut d0 = vec![B::Elem::nan(); z.len()];
        let l0 = r::softmax_cross_entropy(classes, &z, &labels, &mut d0).expect("reference");
        assert!(l0.is_finite() && l0 >= 0.0, "reference loss {l0}");
        let mut d = make(vec![B::Elem::nan(); z.len()]);
        let l = backend
            .softmax_cross_entropy(CrossEntropy::new(
                classes,
                &make(z.clone()),
                &labels,
                &mut d,
            ))
            .expect("loss");
        assert_eq!(
            l.to_bits(),
            l0.to_bits(),
            "loss {rows}×{classes}: {l} vs {l0}"
        );
        same_bits(
            &format!("dlogits {rows}×{classes}"),
            &read(backend, &d),
            &d0,
        );
    }
}

/// No classes, no rows, a label out of range, wrong lengths.
pub fn softmax_cross_entropy_rejects_bad_requests<B: TensorBackend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
) {
    let z = |n| make(vec![B::Elem::zero(); n]);
    expect_err(
        "classes 0",
        backend.softmax_cross_entropy(CrossEntropy::new(0, &z(0), &[0], &mut z(0))),
    );
    expect_err(
        "no rows",
        backend.softmax_cross_entropy(CrossEntropy::new(3, &z(0), &[], &mut z(0))),
    );
    expect_err(
        "label",
        backend.softmax_cross_entropy(CrossEntropy::new(3, &z(6), &[0, 3], &mut z(6))),
    );
    expect_err(
        "logits",
        backend.softmax_cross_entropy(CrossEntropy::new(3, &z(5), &[0, 1], &mut z(6))),
    );
    expect_err(
        "dlogits",
        backend.softmax_cross_entropy(CrossEntropy::new(3, &z(6), &[0, 1], &mut z(7))),
    );
    expect_err(
        "overflow",
        backend.softmax_cross_entropy(CrossEntropy::new(usize::MAX, &z(1), &[0, 1], &mut z(1))),
    );
}

/// A map run on a backend: `(backend, x, y)`.
type BackendMap<'a, B> =
    &'a dyn Fn(&B, &<B as crate::BackendTypes>::Buffer, &mut <B as crate::BackendTypes>::Buffer);
/// The same map on the reference backend.
type ReferenceMap<'a, T> = &'a dyn Fn(&crate::Reference<T>, &Vec<T>, &mut Vec<T>);

/// Every map bit for bit at lengths across chunk boundaries, with zeros,
/// negative zeros and NaN in the ReLU input.
pub fn maps<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    let reference = crate::Reference::<B::Elem>::new();
    for (s, n) in [1usize, 3, 65, 1000, 100_003].into_iter().enumerate() {
        let mut x: Vec<B::Elem> = data(n, 400 + s as u64);
        x[0] = B::Elem::zero();
        if n > 2 {
            x[1] = -B::Elem::zero();
            x[2] = B::Elem::nan();
        }
        let y: Vec<B::Elem> = data(n, 500 + s as u64);
        let alpha = B::Elem::from_f64(-0.7);

        // Each map on the backend and on the reference backend.
        let check = |what: &str, f: BackendMap<'_, B>, g: ReferenceMap<'_, B::Elem>| {
            let mut want = y.clone();
            g(&reference, &x, &mut want);
            let mut got = make(y.clone());
            f(backend, &make(x.clone()), &mut got);
            same_bits(&format!("{what} n = {n}"), &read(backend, &got), &want);
        };
        check(
            "relu",
            &|b, x, y| b.relu(x, y).expect("relu"),
            &|b, x, y| b.relu(x, y).expect("relu"),
        );
        check(
            "relu_backward",
            &|b, x, y| {
                let dy = make(data(n, 600));
                b.relu_backward(x, &dy, y).expect("relu_backward")
            },
            &|b, x, y| b.relu_backward(x, &data(n, 600), y).expect("relu_backward"),
        );
        check(
            "scale",
            &|b, _, y| b.scale(alpha, y).expect("scale"),
            &|b, _, y| b.scale(alpha, y).expect("scale"),
        );
        check("add", &|b, x, y| b.add(x, y).expect("add"), &|b, x, y| {
            b.add(x, y).expect("add")
        });
        check("mul", &|b, x, y| b.mul(x, y).expect("mul"), &|b, x, y| {
            b.mul(x, y).expect("mul")
        });
        check(
            "fill",
            &|b, _, y| b.fill(alpha, y).expect("fill"),
            &|b, _, y| b.fill(alpha, y).expect("fill"),
        );
    }
    for (s, &(outer, channels, inner)) in MAPS_BIASES.iter().enumerate() {
        let n = outer * channels * inner;
        let x: Vec<B::Elem> = data(n, 700 + s as u64);
        let bias: Vec<B::Elem> = data(channels, 800 + s as u64);
        let mut want = x.clone();
        reference
            .add_bias(&bias, inner, &mut want)
            .expect("ref add_bias");
        let mut got = make(x.clone());
        backend
            .add_bias(&make(bias.clone()), inner, &mut got)
            .expect("add_bias");
        same_bits("add_bias", &read(backend, &got), &want);

        let mut want = vec![B::Elem::nan(); channels];
        reference
            .bias_grad(&x, inner, &mut want)
            .expect("ref bias_grad");
        let mut got = make(vec![B::Elem::nan(); channels]);
        backend
            .bias_grad(&make(x), inner, &mut got)
            .expect("bias_grad");
        same_bits("bias_grad", &read(backend, &got), &want);
    }
}

/// `(outer, channels, inner)` of [`maps`]' bias cases (`add_bias`,
/// `bias_grad`): linear (inner 1) and convolution (inner 25) layouts. Case
/// `s` takes `x` from salt `700 + s` and the bias from salt `800 + s`.
pub const MAPS_BIASES: [(usize, usize, usize); 4] =
    [(1, 1, 1), (33, 10, 1), (3, 16, 25), (2, 5, 7)];

/// Wrong lengths for every binary map; zero or mismatched bias shapes.
pub fn maps_reject_bad_lengths<B: TensorBackend, F: MakeBuffer<B>>(backend: &B, make: &F) {
    let z = |n| make(vec![B::Elem::zero(); n]);
    expect_err("relu", backend.relu(&z(3), &mut z(4)));
    expect_err(
        "relu_backward dy",
        backend.relu_backward(&z(3), &z(4), &mut z(3)),
    );
    expect_err(
        "relu_backward dx",
        backend.relu_backward(&z(3), &z(3), &mut z(2)),
    );
    expect_err("add", backend.add(&z(3), &mut z(4)));
    expect_err("mul", backend.mul(&z(5), &mut z(4)));
    expect_err("add_bias inner 0", backend.add_bias(&z(3), 0, &mut z(6)));
    expect_err("add_bias empty", backend.add_bias(&z(0), 2, &mut z(6)));
    expect_err("add_bias length", backend.add_bias(&z(4), 2, &mut z(12)));
    expect_err("bias_grad inner 0", backend.bias_grad(&z(6), 0, &mut z(3)));
    expect_err("bias_grad empty", backend.bias_grad(&z(6), 2, &mut z(0)));
    expect_err("bias_grad length", backend.bias_grad(&z(10), 2, &mut z(3)));
}
