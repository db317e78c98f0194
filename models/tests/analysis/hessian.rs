//! Hessian measures: Lanczos and Hutchinson on quadratics with known
//! spectra (exact products and finite differences), the finite-difference
//! product against its stated error bound on a smooth non-quadratic
//! function, small networks against their explicit Hessians (built column
//! by column, checked against second differences of loss values and, for
//! softmax regression, against the analytic formula), broken products that
//! the same checks reject, restoration of the weights, typed errors, and
//! determinism across seeds and thread counts.
//!
//! Every check is a function that returns the measured error, so that the
//! right product and a broken one go through the same code.
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | Lanczos, exact product, `steps ≥ n` | `\|θ_i − λ_i\| ≤ 1e-12 · max\|λ\|` | `T` is `H` in an orthonormal basis; QL and full reorthogonalisation err by a few `ε · ‖H‖` |
//! | Lanczos, finite differences on a quadratic, `steps ≥ n` | `1e-8 · max\|λ\|` | a quadratic has no truncation error; rounding `ε (‖∇f‖ + ‖H‖‖x₀‖)/h ≈ 2e-16 · 300 / 1e-5 ≈ 6e-9` (dimension 10) |
//! | Lanczos, `steps < n` | `θ_i ≤ λ_i + 1e-9`, `λ_i − θ_i ≤ min(r_i, r_i²/δ_i) + 1e-9` | interlacing puts `θ_i` below `λ_i`; an eigenvalue lies within the residual `r_i` of `θ_i`, and within `r_i²/δ_i` by the gap theorem (`δ_i`: distance to the other eigenvalues) — here that eigenvalue is `λ_i`; 1e-9 covers rounding and the finite differences (≈ 2e-10 on this quadratic) |
//! | Hutchinson | `\|mean − tr\| ≤ 5 · se` | a normal mean is outside 5 standard errors with probability 6e-7 (fixed seeds, so either always or never) |
//! | Hutchinson's `se² · S` | within `[0.5, 2] ×` its exact variance `2 Σ_{i≠j} A_ij²` | the sample variance of 100 draws has relative sd `≈ √(2/99) ≈ 0.14` |
//! | finite-difference product, smooth `f` | `\|err_i\| ≤ ‖v‖ (h²/6 · M_i + δ_i/h)` | the bound stated in `FiniteDifferenceHvp`'s docs, `M_i` and `δ_i` computed analytically below; at `h = 1e-2` the error is also `h²/6 · ∇⁴f[u,u,u,e_i] · ‖v‖` to within 5 % (the leading term) |
//! | network Hessian, symmetry | `\|H_ij − H_ji\| ≤ 1e-7 · max\|H\|` | each column's finite-difference error is about `1e-10 · max\|H\|` here |
//! | network columns vs second differences of loss values | `\|H_ij − D_ij\| ≤ 1e-6 · max(1, max\|H\|)` | `D_ij = (f(x+he_i+he_j) − f(x+he_i−he_j) − f(x−he_i+he_j) + f(x−he_i−he_j))/4h²` with `h = 1e-3`: truncation `≈ h²/3 · \|f⁽⁴⁾\| ≈ 3e-7 · \|f⁽⁴⁾\|`, rounding `≈ 10 ε \|f\| / h² ≈ 2e-9`; a sign or factor error is `O(max\|H\|)` |
//! | softmax regression vs analytic | `1e-8 · max\|H\|` | a smooth loss, `f64`, `h = 1e-5`: the product errs by about `1e-10 · ‖H‖` |
//! | network Lanczos vs dense eigenvalues | `1e-7 · max\|λ\|` for `steps = n`; otherwise the `steps < n` guarantees above with slack `1e-7 · max\|λ\|` | the finite-difference operator is symmetric to about `1e-10 · ‖H‖` (measured `2e-11`); the dense eigenvalues carry the columns' error too |
//!
//! ReLU kinks: the network checks perturb each weight by at most `2h = 2e-3`
//! (values) or `1e-5` (products); with these seeds no pre-activation lies
//! that close to 0 — if one did, the value check would fail loudly, not
//! pass silently.

use rand_core::RngCore;
use smoothout::tensor::TensorBackend;
use smoothout::NoiseKey;
use smoothout_cpu::Cpu;
use smoothout_models::analysis::{
    flat_params, hessian_spectrum, hutchinson_trace, network_hessian, top_eigenvalues,
    FiniteDifferenceHvp, HessianConfig, HessianSpectrum, Hvp, NetworkLoss, Objective, Snapshot,
    DEFAULT_HVP_STEP, SMOOTH_HVP_STEP,
};
use smoothout_models::data::{seeded_rng, Dataset, Normalize};
use smoothout_models::layers::Layer;
use smoothout_models::networks::{mlp, NetConfig, Sequential};
use smoothout_models::train::{Result, TrainError};

// ---------------------------------------------------------------- helpers

fn uniform(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn gaussian(rng: &mut impl RngCore) -> f64 {
    let u1 = 1.0 - uniform(rng);
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

fn norm(x: &[f64]) -> f64 {
    dot(x, x).sqrt()
}

fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// The largest `|a_i − b_i|`.
fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The dense `n × n` matrix of `h`, column `j` = `H e_j` (row-major).
fn dense<H: Hvp + ?Sized>(h: &mut H) -> Vec<f64> {
    let n = h.dim();
    let mut a = vec![0.0; n * n];
    let mut e = vec![0.0; n];
    let mut col = vec![0.0; n];
    for j in 0..n {
        e[j] = 1.0;
        h.hvp(&e, &mut col).unwrap();
        e[j] = 0.0;
        for i in 0..n {
            a[i * n + j] = col[i];
        }
    }
    a
}

/// Eigenvalues of a symmetric matrix (row-major), descending, by cyclic
/// Jacobi rotations — independent of the module's tridiagonal QL.
fn jacobi_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    let mut a = a.to_vec();
    let total: f64 = a.iter().map(|v| v * v).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= 1e-30 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut d: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    d.sort_by(|x, y| y.total_cmp(x));
    d
}

fn symmetrized(a: &[f64], n: usize) -> Vec<f64> {
    let mut s = a.to_vec();
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
        }
    }
    s
}

fn trace(a: &[f64], n: usize) -> f64 {
    (0..n).map(|i| a[i * n + i]).sum()
}

// ------------------------------------------------------ quadratics (test 1)

/// `f(x) = ½ xᵀ A x + bᵀ x` with `A = Q diag(λ) Qᵀ`, `Q` a product of
/// Householder reflections `I − 2 v vᵀ` of seeded unit vectors.
struct Quadratic {
    lambda: Vec<f64>,
    reflections: Vec<Vec<f64>>,
    b: Vec<f64>,
}

impl Quadratic {
    fn new(lambda: Vec<f64>, seed: u64) -> Self {
        let n = lambda.len();
        let mut rng = seeded_rng(seed);
        let reflections = (0..4)
            .map(|_| {
                let v: Vec<f64> = (0..n).map(|_| gaussian(&mut rng)).collect();
                let s = norm(&v);
                v.into_iter().map(|x| x / s).collect()
            })
            .collect();
        let b = (0..n).map(|_| gaussian(&mut rng)).collect();
        Quadratic {
            lambda,
            reflections,
            b,
        }
    }

    fn reflect(v: &[f64], x: &mut [f64]) {
        let c = 2.0 * dot(v, x);
        for (x, &v) in x.iter_mut().zip(v) {
            *x -= c * v;
        }
    }

    /// `A x`: `Qᵀ` (reflections in order), `Λ`, `Q` (in reverse).
    fn apply(&self, x: &[f64], out: &mut [f64]) {
        out.copy_from_slice(x);
        for v in &self.reflections {
            Self::reflect(v, out);
        }
        for (o, l) in out.iter_mut().zip(&self.lambda) {
            *o *= l;
        }
        for v in self.reflections.iter().rev() {
            Self::reflect(v, out);
        }
    }

    fn sorted_eigenvalues(&self) -> Vec<f64> {
        let mut l = self.lambda.clone();
        l.sort_by(|x, y| y.total_cmp(x));
        l
    }
}

impl Objective for Quadratic {
    fn dim(&self) -> usize {
        self.lambda.len()
    }
    fn value_and_grad(&mut self, x: &[f64], g: &mut [f64]) -> Result<f64> {
        self.apply(x, g);
        let f = 0.5 * dot(x, g) + dot(&self.b, x);
        for (g, b) in g.iter_mut().zip(&self.b) {
            *g += b;
        }
        Ok(f)
    }
}

/// The quadratic's exact product `A v`.
struct Exact<'q>(&'q Quadratic);

impl Hvp for Exact<'_> {
    fn dim(&self) -> usize {
        self.0.lambda.len()
    }
    fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
        self.0.apply(v, out);
        Ok(())
    }
}

/// λ = 10, 7, 5, 3, 2, 1, ½, −½, −1, −3 (a saddle).
fn small_quadratic() -> Quadratic {
    Quadratic::new(
        vec![1.0, -3.0, 7.0, 0.5, 10.0, 2.0, -1.0, 5.0, -0.5, 3.0],
        11,
    )
}

/// Dimension 200: 100, 90, 80, then 197 values in [−1, 10] (a gap).
fn large_quadratic() -> Quadratic {
    let mut rng = seeded_rng(5);
    let mut lambda = vec![100.0, 90.0, 80.0];
    lambda.extend((0..197).map(|_| -1.0 + 11.0 * uniform(&mut rng)));
    Quadratic::new(lambda, 12)
}

fn x0_for(n: usize) -> Vec<f64> {
    let mut rng = seeded_rng(99);
    (0..n).map(|_| 2.0 * uniform(&mut rng) - 1.0).collect()
}

/// The largest `|θ_i − λ_i|` of the top `top` Ritz values, with the
/// Ritz values and the residuals.
fn lanczos_error<H: Hvp + ?Sized>(
    h: &mut H,
    want: &[f64],
    top: usize,
    steps: usize,
) -> (f64, Vec<f64>, Vec<f64>) {
    let (theta, r) = top_eigenvalues(h, top, steps, 7).unwrap();
    (max_abs_diff(&theta, want), theta, r)
}

/// How far Hutchinson's mean is from the trace, in standard errors.
fn hutchinson_z<H: Hvp + ?Sized>(h: &mut H, tr: f64, samples: usize) -> (f64, f64, f64) {
    let (mean, se) = hutchinson_trace(h, samples, 3).unwrap();
    ((mean - tr).abs() / se, mean, se)
}

#[test]
fn lanczos_is_exact_when_its_space_is_everything() {
    let q = small_quadratic();
    let want = q.sorted_eigenvalues();
    let scale = max_abs(&want);
    let n = q.lambda.len();

    let (err, theta, r) = lanczos_error(&mut Exact(&q), &want, 10, n);
    assert!(err <= 1e-12 * scale, "exact product: {theta:?} vs {want:?}");
    assert!(r.iter().all(|&r| r <= 1e-12 * scale), "{r:?}");
    // More steps than dimensions is the same computation.
    assert_eq!(
        top_eigenvalues(&mut Exact(&q), 10, 25, 7).unwrap(),
        (theta, r)
    );

    let mut obj = small_quadratic();
    let x0 = x0_for(n);
    let mut fd = FiniteDifferenceHvp::new(&mut obj, &x0, SMOOTH_HVP_STEP).unwrap();
    let (err, theta, _) = lanczos_error(&mut fd, &want, 10, n);
    assert!(
        err <= 1e-8 * scale,
        "finite differences: {theta:?} vs {want:?}"
    );

    // Dimension 200, all of it, exact products.
    let q = large_quadratic();
    let want = q.sorted_eigenvalues();
    let (err, theta, _) = lanczos_error(&mut Exact(&q), &want, 200, 200);
    assert!(err <= 1e-12 * 100.0, "{:?}", &theta[..5]);
}

/// Dimension 200: 100, 95, 90, then 197 values in [−1, 60] — gaps small
/// enough that 12 steps leave visible residuals.
fn slow_quadratic() -> Quadratic {
    let mut rng = seeded_rng(5);
    let mut lambda = vec![100.0, 95.0, 90.0];
    lambda.extend((0..197).map(|_| -1.0 + 61.0 * uniform(&mut rng)));
    Quadratic::new(lambda, 12)
}

/// For each of the top Ritz values: how far it breaks the guarantees —
/// `θ_i ≤ λ_i` (interlacing) and `λ_i − θ_i ≤ min(r_i, r_i²/δ_i)` (the
/// residual bound and the gap theorem, `δ_i` the distance from `θ_i` to
/// the other eigenvalues). Positive: broken by that much.
fn residual_violation(theta: &[f64], r: &[f64], lambda: &[f64]) -> f64 {
    let mut worst = f64::NEG_INFINITY;
    for i in 0..theta.len() {
        let delta = lambda
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, l)| (theta[i] - l).abs())
            .fold(f64::INFINITY, f64::min);
        let err = lambda[i] - theta[i];
        worst = worst.max(-err).max(err - r[i].min(r[i] * r[i] / delta));
    }
    worst
}

#[test]
fn lanczos_with_fewer_steps_is_within_its_residuals() {
    let q = slow_quadratic();
    let want = q.sorted_eigenvalues();
    let mut obj = slow_quadratic();
    let x0 = x0_for(200);
    let mut fd = FiniteDifferenceHvp::new(&mut obj, &x0, DEFAULT_HVP_STEP).unwrap();
    for (name, (_, theta, r)) in [
        ("exact", lanczos_error(&mut Exact(&q), &want, 3, 12)),
        ("finite differences", lanczos_error(&mut fd, &want, 3, 12)),
    ] {
        let v = residual_violation(&theta, &r, &want);
        assert!(
            v <= 1e-9,
            "{name}: θ = {theta:?}, λ = {:?}, residuals {r:?}",
            &want[..3]
        );
        // Not converged: the bound is doing the work.
        assert!(r.iter().all(|&r| r > 1e-3), "{name}: residuals {r:?}");
    }
    // The gapped spectrum converges in 20 steps to rounding.
    let q = large_quadratic();
    let want = q.sorted_eigenvalues();
    let (err, _, r) = lanczos_error(&mut Exact(&q), &want, 3, 20);
    assert!(
        err < 1e-12 * 100.0 && r.iter().all(|&r| r < 1e-12),
        "{err}, {r:?}"
    );
}

#[test]
fn lanczos_restarts_after_a_breakdown() {
    // Two distinct eigenvalues: the Krylov space of any start vector is
    // 2-dimensional, so the repeated ones need fresh vectors.
    let q = Quadratic::new(vec![5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0], 4);
    let (err, theta, r) = lanczos_error(&mut Exact(&q), &[5.0, 5.0, 5.0, 1.0], 4, 8);
    assert!(err < 1e-12, "{theta:?}");
    assert!(r.iter().all(|&r| r < 1e-12), "{r:?}");
    // The zero matrix: every step breaks down.
    let zero = Quadratic::new(vec![0.0; 6], 4);
    let s = hessian_spectrum(&mut Exact(&zero), &HessianConfig::default()).unwrap();
    assert_eq!(
        (s.eigenvalues, s.trace, s.trace_se),
        (vec![0.0; 3], 0.0, 0.0)
    );
}

#[test]
fn hutchinson_is_within_five_standard_errors() {
    let q = large_quadratic();
    let tr: f64 = q.lambda.iter().sum();
    let a = dense(&mut Exact(&q));
    let n = 200;
    let diag2: f64 = (0..n).map(|i| a[i * n + i] * a[i * n + i]).sum();
    let frob2: f64 = a.iter().map(|v| v * v).sum();
    let variance = 2.0 * (frob2 - diag2);

    let (z_exact, mean_exact, se) = hutchinson_z(&mut Exact(&q), tr, 100);
    assert!(
        z_exact <= 5.0,
        "{mean_exact} vs {tr}: {z_exact} standard errors"
    );
    let ratio = se * se * 100.0 / variance;
    assert!((0.5..=2.0).contains(&ratio), "se² S / Var = {ratio}");

    // The same signs through finite differences: the same estimate up to
    // the products' error.
    let mut obj = large_quadratic();
    let x0 = x0_for(n);
    let mut fd = FiniteDifferenceHvp::new(&mut obj, &x0, DEFAULT_HVP_STEP).unwrap();
    let (z_fd, mean_fd, _) = hutchinson_z(&mut fd, tr, 100);
    assert!(z_fd <= 5.0);
    assert!(
        (mean_fd - mean_exact).abs() < 1e-6 * tr.abs(),
        "{mean_fd} vs {mean_exact}"
    );
}

#[test]
fn hutchinson_follows_the_documented_stream() {
    // H = [[0, 1], [1, 0]]: zᵀHz = 2 z₀ z₁ = ±2, with z from the bits the
    // docs name, so mean and standard error are known exactly.
    struct Swap;
    impl Hvp for Swap {
        fn dim(&self) -> usize {
            2
        }
        fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
            out[0] = v[1];
            out[1] = v[0];
            Ok(())
        }
    }
    let samples = 7;
    let seed = 9;
    let t: Vec<f64> = (0..samples)
        .map(|s| {
            let w = NoiseKey::from_seed(seed).fold_in(s).word(0);
            let z = |i: u32| if (w >> i) & 1 == 1 { -1.0 } else { 1.0 };
            2.0 * z(0) * z(1)
        })
        .collect();
    let mean = t.iter().sum::<f64>() / 7.0;
    let var = t.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 6.0;
    let (got_mean, got_se) = hutchinson_trace(&mut Swap, samples as usize, seed).unwrap();
    assert_eq!(got_mean, mean);
    assert!(
        (got_se - (var / 7.0).sqrt()).abs() <= 1e-15,
        "{got_se} vs {}",
        (var / 7.0).sqrt()
    );
    assert!(got_se > 0.0, "the draws were all equal: pick another seed");
}

// ------------------------------------- finite-difference bound (test 2)

/// `f(x) = Σ_k α_k exp(w_k·x) + Σ_i β_i cos x_i`: every derivative is
/// known.
struct Smooth {
    alpha: Vec<f64>,
    w: Vec<Vec<f64>>,
    beta: Vec<f64>,
}

impl Smooth {
    fn new() -> Self {
        let mut rng = seeded_rng(21);
        let n = 8;
        Smooth {
            alpha: (0..3).map(|_| 0.5 + uniform(&mut rng)).collect(),
            w: (0..3)
                .map(|_| (0..n).map(|_| uniform(&mut rng) - 0.5).collect())
                .collect(),
            beta: (0..n).map(|_| 2.0 * uniform(&mut rng) - 1.0).collect(),
        }
    }

    fn hessian_times(&self, x: &[f64], v: &[f64]) -> Vec<f64> {
        let mut out: Vec<f64> = (0..x.len())
            .map(|i| -self.beta[i] * x[i].cos() * v[i])
            .collect();
        for (a, w) in self.alpha.iter().zip(&self.w) {
            let c = a * dot(w, x).exp() * dot(w, v);
            for (o, wi) in out.iter_mut().zip(w) {
                *o += c * wi;
            }
        }
        out
    }

    /// `∇⁴f(x)[u, u, u, ·]`.
    fn fourth(&self, x: &[f64], u: &[f64]) -> Vec<f64> {
        let mut out: Vec<f64> = (0..x.len())
            .map(|i| self.beta[i] * x[i].cos() * u[i].powi(3))
            .collect();
        for (a, w) in self.alpha.iter().zip(&self.w) {
            let c = a * dot(w, x).exp() * dot(w, u).powi(3);
            for (o, wi) in out.iter_mut().zip(w) {
                *o += c * wi;
            }
        }
        out
    }

    /// The docs' bound per coordinate: `‖v‖ (h²/6 · M_i + δ_i / h)`, with
    /// `M_i` the largest `|∇⁴f[u,u,u,e_i]|` on the segment (each term at
    /// its largest) and `δ_i = (K + 4) ε Σ|terms of ∂_i f| + ε Σ_j |H_ij x₀_j|`
    /// (a sum of `K + 1` products of a few rounded factors, and the
    /// rounding of `x₀ ± h u`).
    fn bound(&self, x0: &[f64], v: &[f64], h: f64) -> Vec<f64> {
        let nv = norm(v);
        let u: Vec<f64> = v.iter().map(|x| x / nv).collect();
        let eps = f64::EPSILON;
        let k = self.alpha.len() as f64;
        (0..x0.len())
            .map(|i| {
                let mut m = self.beta[i].abs() * u[i].abs().powi(3);
                let mut terms = self.beta[i].abs() * 1.0;
                let mut hx = self.beta[i].abs() * x0[i].abs();
                for (a, w) in self.alpha.iter().zip(&self.w) {
                    let wu = dot(w, &u);
                    let top = a * (dot(w, x0) + h * wu.abs()).exp();
                    m += top * wu.abs().powi(3) * w[i].abs();
                    terms += top * w[i].abs();
                    hx += top
                        * w[i].abs()
                        * w.iter().zip(x0).map(|(a, b)| (a * b).abs()).sum::<f64>();
                }
                let delta = (k + 4.0) * eps * terms + eps * hx;
                nv * (h * h / 6.0 * m + delta / h)
            })
            .collect()
    }
}

impl Objective for Smooth {
    fn dim(&self) -> usize {
        self.beta.len()
    }
    fn value_and_grad(&mut self, x: &[f64], g: &mut [f64]) -> Result<f64> {
        let mut f = 0.0;
        for (i, gi) in g.iter_mut().enumerate() {
            *gi = -self.beta[i] * x[i].sin();
            f += self.beta[i] * x[i].cos();
        }
        for (a, w) in self.alpha.iter().zip(&self.w) {
            let e = a * dot(w, x).exp();
            f += e;
            for (gi, wi) in g.iter_mut().zip(w) {
                *gi += e * wi;
            }
        }
        Ok(f)
    }
}

fn smooth_x0() -> Vec<f64> {
    let mut rng = seeded_rng(22);
    (0..8).map(|_| 3.0 * uniform(&mut rng) - 1.5).collect()
}

fn smooth_directions() -> Vec<Vec<f64>> {
    let mut rng = seeded_rng(23);
    let mut dirs: Vec<Vec<f64>> = (0..8)
        .map(|i| (0..8).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for scale in [1e-3, 1.0, 40.0] {
        dirs.push((0..8).map(|_| scale * gaussian(&mut rng)).collect());
    }
    dirs
}

/// The largest ratio, over the directions and coordinates, of the error of
/// `h`'s products at `x0` to the stated bound for step `step`: at most 1
/// for a product that keeps the promise of the docs.
fn fd_bound_ratio<H: Hvp + ?Sized>(h: &mut H, f: &Smooth, x0: &[f64], step: f64) -> f64 {
    let mut worst = 0.0f64;
    let mut out = vec![0.0; x0.len()];
    for v in smooth_directions() {
        h.hvp(&v, &mut out).unwrap();
        let want = f.hessian_times(x0, &v);
        for ((o, w), b) in out.iter().zip(&want).zip(f.bound(x0, &v, step)) {
            worst = worst.max((o - w).abs() / b);
        }
    }
    worst
}

#[test]
fn finite_differences_keep_the_stated_error_bound() {
    let f = Smooth::new();
    let x0 = smooth_x0();
    for step in [
        1e-1,
        1e-2,
        1e-3,
        1e-4,
        SMOOTH_HVP_STEP,
        1e-6,
        1e-7,
        DEFAULT_HVP_STEP,
    ] {
        let mut obj = Smooth::new();
        let mut fd = FiniteDifferenceHvp::new(&mut obj, &x0, step).unwrap();
        let ratio = fd_bound_ratio(&mut fd, &f, &x0, step);
        assert!(ratio <= 1.0, "h = {step:e}: error / bound = {ratio}");
    }
    // The bound is not vacuous: at the smooth optimum the products are good
    // to 1e-9 of ‖H‖ ‖v‖ (‖H‖ ≤ its largest absolute row sum).
    let mut obj = Smooth::new();
    let mut fd = FiniteDifferenceHvp::new(&mut obj, &x0, SMOOTH_HVP_STEP).unwrap();
    let hd = dense(&mut fd);
    let exact = dense(&mut AnalyticSmooth(&f, &x0));
    let h_norm = (0..8)
        .map(|i| (0..8).map(|j| exact[i * 8 + j].abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let err = max_abs_diff(&hd, &exact);
    assert!(err <= 1e-9 * h_norm, "{err} vs ‖H‖ = {h_norm}");
    // And it is the leading term: at h = 1e-2 the error is h²/6 ∇⁴f[u,u,u,·]
    // ‖v‖, to within 5 %, where that term is not small.
    let step = 1e-2;
    let mut obj = Smooth::new();
    let mut fd = FiniteDifferenceHvp::new(&mut obj, &x0, step).unwrap();
    let mut out = vec![0.0; 8];
    for v in smooth_directions().into_iter().skip(8) {
        fd.hvp(&v, &mut out).unwrap();
        let nv = norm(&v);
        let u: Vec<f64> = v.iter().map(|x| x / nv).collect();
        let want = f.hessian_times(&x0, &v);
        let lead = f.fourth(&x0, &u);
        let big = max_abs(&lead);
        for i in 0..8 {
            if lead[i].abs() > 0.1 * big {
                let predicted = step * step / 6.0 * lead[i] * nv;
                let ratio = (out[i] - want[i]) / predicted;
                assert!(
                    (0.95..=1.05).contains(&ratio),
                    "coordinate {i}: ratio {ratio}"
                );
            }
        }
    }
}

/// The smooth function's exact product at `x0`.
struct AnalyticSmooth<'a>(&'a Smooth, &'a [f64]);

impl Hvp for AnalyticSmooth<'_> {
    fn dim(&self) -> usize {
        self.1.len()
    }
    fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
        out.copy_from_slice(&self.0.hessian_times(self.1, v));
        Ok(())
    }
}

// ------------------------------------------------- broken products (test 4)

/// What a broken product gets wrong.
#[derive(Clone, Copy, Debug)]
enum Flaw {
    /// `‖v‖ (∇f(x₀ + hu) + ∇f(x₀ − hu)) / 2h`: a sign error.
    Sum,
    /// `‖v‖ (∇f(x₀ + hu) − ∇f(x₀)) / h`: first-order accurate only.
    Forward,
    /// `H u` instead of `H v`: the scale of `v` forgotten.
    Unscaled,
}

/// A finite-difference product with a flaw.
struct Broken<'o, O: Objective> {
    objective: &'o mut O,
    x0: Vec<f64>,
    step: f64,
    flaw: Flaw,
}

impl<O: Objective> Hvp for Broken<'_, O> {
    fn dim(&self) -> usize {
        self.x0.len()
    }
    fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
        let n = self.x0.len();
        let nv = norm(v);
        let at = |s: f64| -> Vec<f64> {
            self.x0
                .iter()
                .zip(v)
                .map(|(x, v)| x + s * self.step * v / nv)
                .collect()
        };
        let (xp, xm) = (at(1.0), at(-1.0));
        let (mut gp, mut gm, mut g0) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        self.objective.value_and_grad(&xp, &mut gp)?;
        self.objective.value_and_grad(&xm, &mut gm)?;
        let x0 = self.x0.clone();
        self.objective.value_and_grad(&x0, &mut g0)?;
        for i in 0..n {
            out[i] = match self.flaw {
                Flaw::Sum => nv * (gp[i] + gm[i]) / (2.0 * self.step),
                Flaw::Forward => nv * (gp[i] - g0[i]) / self.step,
                Flaw::Unscaled => (gp[i] - gm[i]) / (2.0 * self.step),
            };
        }
        Ok(())
    }
}

/// `−H v`.
struct Negated<'h>(&'h mut dyn Hvp);

impl Hvp for Negated<'_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
        self.0.hvp(v, out)?;
        out.iter_mut().for_each(|x| *x = -*x);
        Ok(())
    }
}

#[test]
fn broken_products_fail_the_same_checks() {
    // Lanczos and Hutchinson checks of the quadratic (tolerances as in
    // the tests above: 1e-8 of the scale, 5 standard errors).
    let q = small_quadratic();
    let want = q.sorted_eigenvalues();
    let mut exact = Exact(&q);
    let (err, theta, _) = lanczos_error(&mut Negated(&mut exact), &want, 3, 10);
    assert!(err > 1e-8 * 10.0, "a negated product passed: {theta:?}");
    let tr: f64 = q.lambda.iter().sum();
    let (z, mean, _) = hutchinson_z(&mut Negated(&mut exact), tr, 100);
    assert!(
        z > 5.0,
        "a negated product passed Hutchinson: {mean} vs {tr}"
    );

    // The bound check of the smooth function.
    let f = Smooth::new();
    let x0 = smooth_x0();
    for flaw in [Flaw::Sum, Flaw::Forward, Flaw::Unscaled] {
        let mut obj = Smooth::new();
        let mut broken = Broken {
            objective: &mut obj,
            x0: x0.clone(),
            step: SMOOTH_HVP_STEP,
            flaw,
        };
        let ratio = fd_bound_ratio(&mut broken, &f, &x0, SMOOTH_HVP_STEP);
        assert!(ratio > 1.0, "{flaw:?} passed the bound check ({ratio})");
    }

    // The network's column check against second differences of values.
    let (b, data, norm, mut net) = small_problem();
    let mut loss = NetworkLoss::new(&b, &mut net, &data, &norm, 3).unwrap();
    let x0 = loss.params().unwrap();
    for flaw in [Flaw::Sum, Flaw::Unscaled] {
        // Unscaled is right for unit vectors: the column check cannot see
        // it, the bound check above does.
        let h = dense(&mut Broken {
            objective: &mut loss,
            x0: x0.clone(),
            step: DEFAULT_HVP_STEP,
            flaw,
        });
        let err = value_difference_error(&h, &mut loss, &x0);
        match flaw {
            Flaw::Unscaled => assert!(err <= VALUE_TOLERANCE, "{err}"),
            _ => assert!(
                err > VALUE_TOLERANCE,
                "{flaw:?} passed the column check ({err})"
            ),
        }
    }
    let h = {
        let mut fd = FiniteDifferenceHvp::new(&mut loss, &x0, DEFAULT_HVP_STEP).unwrap();
        dense(&mut Negated(&mut fd))
    };
    let err = value_difference_error(&h, &mut loss, &x0);
    assert!(
        err > VALUE_TOLERANCE,
        "a negated Hessian passed the column check ({err})"
    );
}

// --------------------------------------------------------- networks (test 3)

/// `n` examples of `inputs` random bytes, labels cycling through
/// `classes`.
fn synthetic(n: usize, inputs: usize, classes: usize, seed: u64) -> Dataset {
    let mut rng = seeded_rng(seed);
    let pixels = (0..n * inputs)
        .map(|_| (rng.next_u64() % 256) as u8)
        .collect();
    let labels = (0..n).map(|i| (i % classes) as u8).collect();
    Dataset::new(pixels, labels, [1, 1, inputs], classes, 255).unwrap()
}

/// `mlp(6 → hidden → 3)` with its weights moved off the initialisation
/// (non-zero biases, γ ≠ 1, β ≠ 0) and non-trivial BatchNorm running
/// statistics.
fn small_net<B: TensorBackend + 'static>(b: &B, hidden: &[usize], seed: u64) -> Sequential<B> {
    let mut net = mlp(b, NetConfig::seeded(seed), 6, hidden, 3).unwrap();
    let mut rng = seeded_rng(seed + 100);
    let mut snap = Snapshot::of(b, &net).unwrap();
    for p in &mut snap.params {
        *p += 0.2 * gaussian(&mut rng);
    }
    let mut at = 0;
    for (name, buf) in net.buffers() {
        let len = b.len(buf);
        for v in &mut snap.buffers[at..at + len] {
            *v = if name.ends_with("running_var") {
                0.5 + uniform(&mut rng)
            } else {
                0.3 * gaussian(&mut rng)
            };
        }
        at += len;
    }
    snap.apply(b, &mut net).unwrap();
    net
}

/// The small network problem of several tests: the single-threaded f64
/// CPU backend, 8 synthetic examples of 6 inputs and 3 classes (seed 31),
/// their normalisation, and a 6-5-3 [`small_net`] (seed 1).
fn small_problem() -> (Cpu<f64>, Dataset, Normalize, Sequential<Cpu<f64>>) {
    let b = Cpu::<f64>::with_threads(1).unwrap();
    let data = synthetic(8, 6, 3, 31);
    let norm = Normalize::fit(&data).unwrap();
    let net = small_net(&b, &[5], 1);
    (b, data, norm, net)
}

/// Second differences of loss values must match the Hessian to this,
/// relative to `max(1, max|H|)` (see the table).
const VALUE_TOLERANCE: f64 = 1e-6;

/// The largest `|H_ij − D_ij| / max(1, max|H|)` over `i ≤ j`, with `D`
/// the second difference of loss values with step 1e-3. Leaves the loss at
/// `x0`.
fn value_difference_error<B: TensorBackend + 'static>(
    h: &[f64],
    loss: &mut NetworkLoss<'_, B>,
    x0: &[f64],
) -> f64 {
    let n = x0.len();
    let step = 1e-3;
    let mut f = |di: (usize, f64), dj: (usize, f64)| -> f64 {
        let mut x = x0.to_vec();
        x[di.0] += di.1 * step;
        x[dj.0] += dj.1 * step;
        loss.set_params(&x).unwrap();
        loss.value().unwrap()
    };
    let mut worst = 0.0f64;
    for i in 0..n {
        for j in i..n {
            let d = (f((i, 1.0), (j, 1.0)) - f((i, 1.0), (j, -1.0)) - f((i, -1.0), (j, 1.0))
                + f((i, -1.0), (j, -1.0)))
                / (4.0 * step * step);
            worst = worst.max((h[i * n + j] - d).abs());
        }
    }
    loss.set_params(x0).unwrap();
    worst / max_abs(h).max(1.0)
}

#[test]
fn network_hessian_matches_its_columns_and_second_differences() {
    let (b, data, norm, mut net) = small_problem();
    let n = net.num_params();
    assert_eq!(n, 6 * 5 + 5 + 2 * 5 + 5 * 3 + 3);
    let h = {
        let mut loss = NetworkLoss::new(&b, &mut net, &data, &norm, 3).unwrap();
        let x0 = loss.params().unwrap();
        let h = {
            let mut fd = FiniteDifferenceHvp::new(&mut loss, &x0, DEFAULT_HVP_STEP).unwrap();
            dense(&mut fd)
        };
        // (a) symmetric
        let scale = max_abs(&h);
        for i in 0..n {
            for j in 0..i {
                assert!(
                    (h[i * n + j] - h[j * n + i]).abs() <= 1e-7 * scale,
                    "H[{i},{j}] = {} vs H[{j},{i}] = {}",
                    h[i * n + j],
                    h[j * n + i]
                );
            }
        }
        // (b) every entry against second differences of loss values
        let err = value_difference_error(&h, &mut loss, &x0);
        assert!(err <= VALUE_TOLERANCE, "columns vs values: {err}");
        h
    };
    // (c) Lanczos and Hutchinson through network_hessian against the dense
    // matrix: every step (the exact case) and the defaults.
    let dense_eigen = jacobi_eigenvalues(&symmetrized(&h, n), n);
    let scale = max_abs(&dense_eigen);
    let exact = HessianConfig {
        top: 5,
        lanczos_steps: n,
        ..HessianConfig::default()
    };
    let s = network_hessian(&b, &mut net, &data, &norm, 3, &exact).unwrap();
    let err = max_abs_diff(&s.eigenvalues, &dense_eigen);
    assert!(
        err <= 1e-7 * scale,
        "{:?} vs {:?}",
        s.eigenvalues,
        &dense_eigen[..5]
    );
    let s = network_hessian(&b, &mut net, &data, &norm, 3, &HessianConfig::default()).unwrap();
    let v = residual_violation(&s.eigenvalues, &s.residuals, &dense_eigen);
    assert!(
        v <= 1e-7 * scale,
        "{:?} vs {:?}, residuals {:?}",
        s.eigenvalues,
        &dense_eigen[..3],
        s.residuals
    );
    let tr = trace(&h, n);
    assert!(
        (s.trace - tr).abs() <= 5.0 * s.trace_se && s.trace_se > 0.0,
        "trace {} ± {} vs {tr}",
        s.trace,
        s.trace_se
    );
    assert_eq!(s.hvps, 20 + 30);
    assert_eq!(s.trace_samples, 30);
}

/// `(1/N) Σ x̃ x̃ᵀ ⊗ (diag p − p pᵀ)`, `x̃ = (x, 1)`, in the layout of
/// `flat_params` for one `Linear(d → k)`: weight `[k, d]` row-major, then
/// bias `[k]`.
fn softmax_regression_hessian(x: &[f64], theta: &[f64], d: usize, k: usize) -> Vec<f64> {
    let n = k * d + k;
    let examples = x.len() / d;
    let index = |c: usize, j: usize| if j < d { c * d + j } else { k * d + c };
    let mut h = vec![0.0; n * n];
    for xe in x.chunks(d) {
        let z: Vec<f64> = (0..k)
            .map(|c| dot(&theta[c * d..(c + 1) * d], xe) + theta[k * d + c])
            .collect();
        let zmax = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let e: Vec<f64> = z.iter().map(|v| (v - zmax).exp()).collect();
        let sum: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|v| v / sum).collect();
        let xt: Vec<f64> = xe.iter().copied().chain([1.0]).collect();
        for c in 0..k {
            for c2 in 0..k {
                let a = if c == c2 { p[c] } else { 0.0 } - p[c] * p[c2];
                for j in 0..=d {
                    for j2 in 0..=d {
                        h[index(c, j) * n + index(c2, j2)] += xt[j] * xt[j2] * a / examples as f64;
                    }
                }
            }
        }
    }
    h
}

#[test]
fn softmax_regression_hessian_is_the_analytic_one() {
    let b = Cpu::<f64>::with_threads(1).unwrap();
    let data = synthetic(10, 6, 3, 41);
    let norm = Normalize::fit(&data).unwrap();
    let mut net = small_net(&b, &[], 2);
    let (d, k) = (6, 3);
    let n = net.num_params();
    assert_eq!(n, k * d + k);
    let theta = flat_params(&b, &net).unwrap();
    let mut x32 = vec![0.0f32; data.len() * d];
    data.batch_f32(&(0..data.len()).collect::<Vec<_>>(), &mut x32)
        .unwrap();
    norm.apply(&mut x32, data.image_shape()).unwrap();
    let x: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
    let want = softmax_regression_hessian(&x, &theta, d, k);
    let scale = max_abs(&want);

    let got = {
        let mut loss = NetworkLoss::new(&b, &mut net, &data, &norm, 4).unwrap();
        // No ReLU here: the function is smooth, so the step that balances
        // truncation and rounding applies.
        let mut fd = FiniteDifferenceHvp::new(&mut loss, &theta, SMOOTH_HVP_STEP).unwrap();
        let h = dense(&mut fd);
        // The products leave the network at the last point evaluated.
        loss.set_params(&theta).unwrap();
        h
    };
    let err = max_abs_diff(&got, &want);
    assert!(err <= 1e-8 * scale, "{err} vs max |H| = {scale}");

    // network_hessian (every step) against the analytic matrix.
    let eig = jacobi_eigenvalues(&want, n);
    let config = HessianConfig {
        top: 4,
        lanczos_steps: n,
        trace_samples: 50,
        ..HessianConfig::default()
    };
    let s = network_hessian(&b, &mut net, &data, &norm, 4, &config).unwrap();
    let err = max_abs_diff(&s.eigenvalues, &eig);
    assert!(
        err <= 1e-7 * eig[0],
        "{:?} vs {:?}",
        s.eigenvalues,
        &eig[..4]
    );
    let tr = trace(&want, n);
    assert!(
        (s.trace - tr).abs() <= 5.0 * s.trace_se,
        "{} ± {} vs {tr}",
        s.trace,
        s.trace_se
    );
    // Softmax regression's Hessian is singular (a shift of all logits
    // changes nothing): the smallest eigenvalue is 0.
    assert!(eig[n - 1].abs() <= 1e-12 * eig[0], "{:?}", eig[n - 1]);
}

// ----------------------------------------- restoration and errors (test 5)

#[test]
fn network_hessian_puts_the_weights_back_bit_for_bit() {
    let (b, data, norm, mut net) = small_problem();
    let before = Snapshot::of(&b, &net).unwrap();
    let config = HessianConfig {
        lanczos_steps: 6,
        trace_samples: 3,
        ..HessianConfig::default()
    };
    network_hessian(&b, &mut net, &data, &norm, 3, &config).unwrap();
    assert_eq!(Snapshot::of(&b, &net).unwrap(), before);
    // A huge step makes the loss overflow: the error comes after the
    // weights were moved, and they are put back all the same.
    let huge = HessianConfig {
        step: 1e300,
        ..config.clone()
    };
    let err = network_hessian(&b, &mut net, &data, &norm, 3, &huge).unwrap_err();
    assert!(
        err.to_string()
            .contains("the Hessian-vector product is not finite"),
        "{err}"
    );
    assert_eq!(Snapshot::of(&b, &net).unwrap(), before);
}

fn setting(e: TrainError) -> &'static str {
    match e {
        TrainError::Config { setting, .. } => setting,
        other => panic!("not a configuration error: {other}"),
    }
}

#[test]
fn bad_settings_are_typed_errors() {
    let (b, data, norm, mut net) = small_problem();
    let before = Snapshot::of(&b, &net).unwrap();
    let d = HessianConfig::default();
    for (config, want) in [
        (
            HessianConfig {
                top: 0,
                ..d.clone()
            },
            "--top",
        ),
        (
            HessianConfig {
                lanczos_steps: 0,
                ..d.clone()
            },
            "--lanczos-steps",
        ),
        (
            HessianConfig {
                top: 21,
                ..d.clone()
            },
            "--top",
        ),
        (
            HessianConfig {
                top: 64,
                lanczos_steps: 100,
                ..d.clone()
            },
            "--top",
        ),
        (
            HessianConfig {
                trace_samples: 1,
                ..d.clone()
            },
            "--trace-samples",
        ),
        (
            HessianConfig {
                step: 0.0,
                ..d.clone()
            },
            "--hvp-step",
        ),
        (
            HessianConfig {
                step: -1e-5,
                ..d.clone()
            },
            "--hvp-step",
        ),
        (
            HessianConfig {
                step: f64::NAN,
                ..d.clone()
            },
            "--hvp-step",
        ),
        (
            HessianConfig {
                step: f64::INFINITY,
                ..d.clone()
            },
            "--hvp-step",
        ),
    ] {
        let e = network_hessian(&b, &mut net, &data, &norm, 3, &config).unwrap_err();
        assert_eq!(setting(e), want, "{config:?}");
    }
    assert!(network_hessian(&b, &mut net, &data, &norm, 0, &d).is_err());
    assert_eq!(Snapshot::of(&b, &net).unwrap(), before);

    // The product.
    let mut q = small_quadratic();
    for step in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = FiniteDifferenceHvp::new(&mut q, &[0.0; 10], step)
            .err()
            .unwrap();
        assert_eq!(setting(e), "--hvp-step");
    }
    assert_matches!(
        FiniteDifferenceHvp::new(&mut q, &[0.0; 9], 1e-5)
            .err()
            .unwrap(),
        TrainError::Core(smoothout::Error::LengthMismatch {
            expected: 10,
            actual: 9,
            ..
        })
    );
    let mut bad = [0.0; 10];
    bad[4] = f64::NAN;
    assert!(FiniteDifferenceHvp::new(&mut q, &bad, 1e-5).is_err());
    let mut fd = FiniteDifferenceHvp::new(&mut q, &[0.0; 10], 1e-5).unwrap();
    let mut out = [0.0; 10];
    assert!(fd.hvp(&[1.0; 9], &mut out).is_err());
    assert!(fd.hvp(&[f64::INFINITY; 10], &mut out).is_err());
    fd.hvp(&[0.0; 10], &mut out).unwrap();
    assert_eq!(out, [0.0; 10]);

    // The measures.
    let q = small_quadratic();
    let mut exact = Exact(&q);
    for (top, steps, flag) in [
        (0, 5, "--top"),
        (6, 5, "--top"),
        (11, 20, "--top"),
        (1, 0, "--lanczos-steps"),
    ] {
        assert_eq!(
            setting(top_eigenvalues(&mut exact, top, steps, 0).unwrap_err()),
            flag,
            "top {top}, {steps} steps"
        );
    }
    assert_eq!(
        setting(hutchinson_trace(&mut exact, 1, 0).unwrap_err()),
        "--trace-samples"
    );
    let empty = Quadratic::new(vec![], 0);
    assert!(top_eigenvalues(&mut Exact(&empty), 1, 1, 0).is_err());
    assert!(hutchinson_trace(&mut Exact(&empty), 2, 0).is_err());
    assert!(hessian_spectrum(&mut Exact(&empty), &d).is_err());

    // A product that is not finite, named as such.
    struct Nan;
    impl Hvp for Nan {
        fn dim(&self) -> usize {
            3
        }
        fn hvp(&mut self, _: &[f64], out: &mut [f64]) -> Result<()> {
            out.fill(f64::NAN);
            Ok(())
        }
    }
    for e in [
        top_eigenvalues(&mut Nan, 1, 3, 0).unwrap_err(),
        hutchinson_trace(&mut Nan, 2, 0).unwrap_err(),
    ] {
        assert!(
            e.to_string()
                .contains("the Hessian-vector product is not finite"),
            "{e}"
        );
    }
}

// ---------------------------------------------------- determinism (test 6)

fn spectrum_on<B: TensorBackend + 'static>(b: &B, seed: u64) -> HessianSpectrum {
    let data = synthetic(40, 6, 3, 51);
    let norm = Normalize::fit(&data).unwrap();
    let mut net = small_net(b, &[16, 16], 3);
    let config = HessianConfig {
        lanczos_steps: 8,
        trace_samples: 4,
        seed,
        ..HessianConfig::default()
    };
    network_hessian(b, &mut net, &data, &norm, 16, &config).unwrap()
}

#[test]
fn spectra_depend_on_the_seed_only() {
    let one = Cpu::<f64>::with_threads(1).unwrap();
    let two = Cpu::<f64>::with_threads(2).unwrap().with_chunk(64).unwrap();
    let s = spectrum_on(&one, 3);
    assert_eq!(s, spectrum_on(&one, 3));
    assert_eq!(s, spectrum_on(&two, 3), "1 vs 2 threads");
    let other = spectrum_on(&one, 4);
    assert_ne!(s.trace, other.trace);
    assert_ne!(s.eigenvalues, other.eigenvalues);

    let q = large_quadratic();
    let config = HessianConfig::default();
    assert_eq!(
        hessian_spectrum(&mut Exact(&q), &config).unwrap(),
        hessian_spectrum(&mut Exact(&q), &config).unwrap()
    );
}

// ------------------------------------------------------ kinks and the step

/// `f(x) = Σ_i relu(a_iᵀx + b_i) · d_iᵀx`: a gradient that jumps by
/// `(d_iᵀx) a_i` where unit `i` switches, like a ReLU network's. Unit `i`'s
/// pre-activation at `x0` is `offsets[i]`; away from the switches the
/// Hessian is `Σ_{i active} (a_i d_iᵀ + d_i a_iᵀ)` (ReLU'' = 0).
struct Kinked {
    a: Vec<Vec<f64>>,
    b: Vec<f64>,
    d: Vec<Vec<f64>>,
}

impl Kinked {
    fn new(n: usize, x0: &[f64], offsets: &[f64]) -> Kinked {
        let mut rng = seeded_rng(77);
        let mut vecs = || -> Vec<Vec<f64>> {
            (0..offsets.len())
                .map(|_| (0..n).map(|_| gaussian(&mut rng)).collect())
                .collect()
        };
        let (a, d) = (vecs(), vecs());
        let b = a
            .iter()
            .zip(offsets)
            .map(|(ai, off)| off - dot(ai, x0))
            .collect();
        Kinked { a, b, d }
    }

    fn hessian_times(&self, x0: &[f64], v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; v.len()];
        for ((ai, bi), di) in self.a.iter().zip(&self.b).zip(&self.d) {
            if dot(ai, x0) + bi > 0.0 {
                let (av, dv) = (dot(ai, v), dot(di, v));
                for k in 0..v.len() {
                    out[k] += ai[k] * dv + di[k] * av;
                }
            }
        }
        out
    }
}

impl Objective for Kinked {
    fn dim(&self) -> usize {
        self.a[0].len()
    }
    fn value_and_grad(
        &mut self,
        x: &[f64],
        grad: &mut [f64],
    ) -> smoothout_models::train::Result<f64> {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut f = 0.0;
        for ((ai, bi), di) in self.a.iter().zip(&self.b).zip(&self.d) {
            let z = dot(ai, x) + bi;
            if z > 0.0 {
                let dx = dot(di, x);
                f += z * dx;
                for k in 0..x.len() {
                    grad[k] += ai[k] * dx + di[k] * z;
                }
            }
        }
        Ok(f)
    }
}

/// The default step is small enough that a pre-activation 3·10⁻⁶ from its
/// switch is not crossed, where the step that is best for smooth functions
/// crosses it and the product is off by the jump over 2h.
#[test]
fn the_default_step_does_not_cross_nearby_kinks() {
    let n = 12;
    let x0: Vec<f64> = (0..n).map(|i| 0.3 * (i as f64 + 1.0).sin()).collect();
    // Pre-activations: one 3e-6 above its switch, the rest well away.
    let offsets = [3e-6, -0.4, 0.7, 0.05, -0.02, 1.3, 0.2, -0.9];
    let relative_error = |step: f64| -> f64 {
        let mut f = Kinked::new(n, &x0, &offsets);
        let (a0, want_of) = (f.a[0].clone(), Kinked::new(n, &x0, &offsets));
        let mut fd = FiniteDifferenceHvp::new(&mut f, &x0, step).unwrap();
        // Along unit 0's normal: its pre-activation moves by h‖a_0‖.
        let mut out = vec![0.0; n];
        fd.hvp(&a0, &mut out).unwrap();
        let want = want_of.hessian_times(&x0, &a0);
        let err: Vec<f64> = out.iter().zip(&want).map(|(o, w)| o - w).collect();
        max_abs(&err) / max_abs(&want)
    };
    let at_default = relative_error(DEFAULT_HVP_STEP);
    let at_smooth = relative_error(SMOOTH_HVP_STEP);
    assert!(at_default < 1e-6, "default step: {at_default}");
    assert!(
        at_smooth > 1e-2,
        "smooth step should cross the kink: {at_smooth}"
    );
}

/// On a ReLU network with many pre-activations, the default step and one
/// ten times smaller measure the same spectrum (no crossing at either, and
/// rounding far below the digits that matter).
#[test]
fn the_network_spectrum_does_not_depend_on_the_step_below_the_default() {
    let b = Cpu::<f64>::with_threads(2).unwrap();
    let data = synthetic(64, 6, 3, 52);
    let norm = Normalize::fit(&data).unwrap();
    let measure = |step: f64| {
        let mut net = small_net(&b, &[32, 32], 5);
        let config = HessianConfig {
            lanczos_steps: 12,
            trace_samples: 6,
            step,
            ..HessianConfig::default()
        };
        network_hessian(&b, &mut net, &data, &norm, 64, &config).unwrap()
    };
    let (s, t) = (measure(DEFAULT_HVP_STEP), measure(DEFAULT_HVP_STEP / 10.0));
    let scale = s.eigenvalues[0].abs().max(1.0);
    for (x, y) in s.eigenvalues.iter().zip(&t.eigenvalues) {
        assert!(
            (x - y).abs() <= 1e-5 * scale,
            "{:?} vs {:?}",
            s.eigenvalues,
            t.eigenvalues
        );
    }
    assert!(
        (s.trace - t.trace).abs() <= 1e-5 * s.trace.abs().max(scale),
        "{} vs {}",
        s.trace,
        t.trace
    );
}
