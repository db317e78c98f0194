//! Hessian measures of a loss, the set PyHessian reports (Yao et al.,
//! *PyHessian: Neural Networks Through the Lens of the Hessian*, 2020): the
//! top eigenvalues by Lanczos and the trace by Hutchinson's estimator, both
//! from Hessian-vector products only — the Hessian itself is never formed.
//!
//! ```text
//! λ₁ ≥ λ₂ ≥ … ≥ λ_top        Lanczos with full reorthogonalisation (top_eigenvalues)
//! tr H ≈ (1/S) Σ_s z_sᵀ H z_s    z_s ∈ {−1, +1}ⁿ Rademacher (hutchinson_trace)
//! ```
//!
//! The products come from any [`Hvp`]. For a loss that only has a gradient
//! (any [`Objective`], e.g. [`NetworkLoss`]), [`FiniteDifferenceHvp`] takes
//! central differences of the gradient; [`network_hessian`] puts it all
//! together for a network, at its current weights, and puts the weights
//! back afterwards.
//!
//! Finite differences want `f64`: measure an `f32`-trained network on an
//! `f64` copy of it (the same architecture on an `f64` backend, loaded with
//! [`Snapshot::of`]`(…)?.apply(…)`, which widens exactly; see the example
//! of [`network_hessian`]).
//!
//! Randomness is the core crate's Philox stream, so a seed gives the same
//! spectrum on every backend, machine and thread count: Hutchinson's
//! sample `s` takes coordinate `i`'s sign from bit `i mod 32` of word
//! `⌊i/32⌋` of `NoiseKey::from_seed(seed).fold_in(s)`; Lanczos's start
//! vector (and the fresh vector after a breakdown number `r`, see
//! [`top_eigenvalues`]) is Gaussian from
//! `NoiseKey::from_seed(seed).fold_in(u64::MAX).fold_in(r)`.
//!
//! [`Snapshot::of`]: super::Snapshot::of

use smoothout::reference::fill_unit;
use smoothout::tensor::{check_len, TensorBackend};
use smoothout::{NoiseKey, Unit};

use super::landscape::with_restore;
use super::sharpness::{NetworkLoss, Objective};
use crate::data::{Dataset, Normalize};
use crate::networks::Sequential;
use crate::train::{Result, TrainError};

/// Hessian-vector products of some function of a flat `f64` parameter
/// vector.
///
/// ```
/// use smoothout_models::analysis::{top_eigenvalues, Hvp};
/// use smoothout_models::train::Result;
///
/// /// H = diag(1, 2, …, n), exactly.
/// struct Diagonal(usize);
/// impl Hvp for Diagonal {
///     fn dim(&self) -> usize { self.0 }
///     fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
///         for (i, (o, x)) in out.iter_mut().zip(v).enumerate() { *o = (i + 1) as f64 * x; }
///         Ok(())
///     }
/// }
/// let (top, _) = top_eigenvalues(&mut Diagonal(5), 2, 5, 0)?;
/// assert!((top[0] - 5.0).abs() < 1e-12 && (top[1] - 4.0).abs() < 1e-12);
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
pub trait Hvp {
    /// Number of variables `n`.
    fn dim(&self) -> usize;

    /// `out = H v`, with `v` and `out` of length [`Hvp::dim`].
    ///
    /// # Errors
    /// Whatever computing the product can fail with.
    fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()>;
}

/// The default finite-difference step `h` of [`FiniteDifferenceHvp`]
/// (along a unit direction): `10⁻⁸`, chosen for ReLU networks in `f64`.
///
/// Central differences of the gradient have a truncation error of
/// `h²/6 · M` (`M` the third derivative of the gradient along the
/// direction) and a rounding error of about `δ/h` (`δ` the absolute error
/// of a computed gradient component, `≈ ε·G` with `ε = 2⁻⁵² ≈ 2.2·10⁻¹⁶`
/// in `f64` and `G` the gradient's scale). For a smooth function their sum
/// is smallest at [`SMOOTH_HVP_STEP`] `≈ (3ε)^(1/3)`.
///
/// A network with ReLUs or max-pooling is not smooth: when a
/// pre-activation changes sign between `x₀ − h u` and `x₀ + h u`, the
/// gradient's jump divided by `2h` enters the product (see
/// [`FiniteDifferenceHvp`], *Kinks*). The chance of that falls in
/// proportion to `h`, its size does not, and a network has many
/// pre-activations (units × examples) — so the step is taken as small as
/// rounding allows rather than where it balances truncation. At `10⁻⁸` the
/// rounding term is about `ε·G/h ≈ 2·10⁻⁸·G` (seven to eight digits; the
/// truncation term of a network's loss, of order `h²`, is far below it),
/// and the chance of a crossing is a thousand times smaller than at
/// `10⁻⁵`. Measured: a trained 64-64 MLP on the digits gave λ₁ = 31.6 at
/// `h = 10⁻⁵` (one crossing) and 0.7429 at every `h` from `10⁻⁷` to
/// `10⁻⁹` (`models/tests/analysis/hessian.rs` checks that the default
/// agrees with a step ten times smaller on a ReLU network).
///
/// In `f32` (`ε ≈ 1.2·10⁻⁷`) no step gives more than about four digits:
/// evaluate in `f64`.
pub const DEFAULT_HVP_STEP: f64 = 1e-8;

/// The step that balances truncation and rounding for a *smooth* function
/// evaluated in `f64`: `h* = (3δ/M)^(1/3)`, which for `M ≈ G` (a loss of
/// order one in weights of order one) is `(3ε)^(1/3) ≈ 8.7·10⁻⁶`, rounded
/// to `10⁻⁵`. The error there is about `3δ/(2h) ≈ 3·10⁻¹¹·G` per unit of
/// `‖v‖`. A gradient summed over many examples carries a larger `δ`; the
/// optimum moves up only as its cube root.
pub const SMOOTH_HVP_STEP: f64 = 1e-5;

/// Hessian-vector products of an [`Objective`] by central differences of
/// its gradient at a fixed point `x₀`:
///
/// ```text
/// H v ≈ ‖v‖ · (∇f(x₀ + h u) − ∇f(x₀ − h u)) / (2h),      u = v / ‖v‖
/// ```
///
/// Two gradient evaluations per product (none for `v = 0`, whose product
/// is `0`). Normalising `v` makes `h` the length of the step whatever
/// `v`'s scale.
///
/// # Error bound
///
/// Coordinate `i` of the result differs from `(H v)_i` by at most
///
/// ```text
/// ‖v‖ · ( h²/6 · max_{|t|≤h} |∇⁴f(x₀ + t u)[u, u, u, e_i]|  +  δ_i / h )
/// ```
///
/// The first term is the truncation of the central difference of
/// `φ(t) = ∂_i f(x₀ + t u)` (Taylor to third order: `φ'''` is the third
/// derivative of the gradient, the fourth of `f`). The second is rounding:
/// `δ_i` bounds the absolute error of the computed `∂_i f` at the two
/// points — about `ε · Σ|terms|` for a gradient summed from terms, plus
/// `ε · Σ_j |H_ij| |x₀_j|` because `x₀ ± h u` is itself rounded to `f64`.
/// See [`DEFAULT_HVP_STEP`] for the step that balances the two.
///
/// A quadratic has no truncation error: the difference quotient is exact
/// up to rounding.
///
/// The objective is left where it was last evaluated (`x₀ − h u`): for a
/// [`NetworkLoss`], load `x₀` back with [`NetworkLoss::set_params`], or
/// use [`network_hessian`], which restores the network.
///
/// # Kinks (ReLU, max-pool)
///
/// A ReLU network's gradient is only piecewise smooth. The quotient equals
/// the exact product of automatic differentiation (ReLU'' = 0, max-pool's
/// winners held fixed) up to the bound above as long as no pre-activation
/// changes sign, and no max-pool winner changes, between `x₀ − h u` and
/// `x₀ + h u`. When one does, the gradient's jump divided by `2h` enters
/// the result — an error the bound does not cover. Its probability falls
/// with `h` (a unit direction moves each pre-activation by `O(h)`), its
/// size does not.
///
/// ```
/// use smoothout_models::analysis::{FiniteDifferenceHvp, Hvp, Objective, SMOOTH_HVP_STEP};
/// use smoothout_models::train::Result;
///
/// /// f(x) = exp(x₀) + x₀ x₁²: H = [[eˣ⁰, 2x₁], [2x₁, 2x₀]].
/// struct F;
/// impl Objective for F {
///     fn dim(&self) -> usize { 2 }
///     fn value_and_grad(&mut self, x: &[f64], g: &mut [f64]) -> Result<f64> {
///         g[0] = x[0].exp() + x[1] * x[1];
///         g[1] = 2.0 * x[0] * x[1];
///         Ok(x[0].exp() + x[0] * x[1] * x[1])
///     }
/// }
/// let x0 = [0.5, -1.0];
/// let mut f = F;
/// // A smooth function: the step that balances truncation and rounding.
/// let mut h = FiniteDifferenceHvp::new(&mut f, &x0, SMOOTH_HVP_STEP)?;
/// let mut out = [0.0; 2];
/// h.hvp(&[1.0, 0.0], &mut out)?;
/// assert!((out[0] - 0.5f64.exp()).abs() < 1e-9 && (out[1] + 2.0).abs() < 1e-9);
/// assert!(FiniteDifferenceHvp::new(&mut f, &x0, 0.0).is_err());
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
pub struct FiniteDifferenceHvp<'o, O: Objective> {
    objective: &'o mut O,
    x0: Vec<f64>,
    step: f64,
    x: Vec<f64>,
    g_plus: Vec<f64>,
    g_minus: Vec<f64>,
}

impl<'o, O: Objective> FiniteDifferenceHvp<'o, O> {
    /// Products of `objective`'s Hessian at `x0`, with step `step`
    /// ([`DEFAULT_HVP_STEP`] unless there is a reason).
    ///
    /// # Errors
    /// [`TrainError::Config`] for a step that is not finite and positive
    /// or an `x0` with a value that is not finite;
    /// [`smoothout::Error::LengthMismatch`] (as [`TrainError::Core`]) when
    /// `x0` does not hold one value per variable.
    pub fn new(objective: &'o mut O, x0: &[f64], step: f64) -> Result<Self> {
        check_step(step)?;
        let n = objective.dim();
        check_len("x0 (one value per variable)", n, x0.len())?;
        if let Some(i) = x0.iter().position(|x| !x.is_finite()) {
            return Err(TrainError::config(
                "hessian",
                format!(
                    "x0[{i}] is {}; the Hessian is measured at a finite point",
                    x0[i]
                ),
            ));
        }
        Ok(FiniteDifferenceHvp {
            objective,
            x0: x0.to_vec(),
            step,
            x: vec![0.0; n],
            g_plus: vec![0.0; n],
            g_minus: vec![0.0; n],
        })
    }
}

impl<O: Objective> Hvp for FiniteDifferenceHvp<'_, O> {
    fn dim(&self) -> usize {
        self.x0.len()
    }

    /// # Errors
    /// [`smoothout::Error::LengthMismatch`] (as [`TrainError::Core`]) for
    /// `v` or `out` of the wrong length; [`TrainError::Config`] for a `v`
    /// that is not finite; errors of the objective.
    fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
        let n = self.x0.len();
        check_len("Hessian-vector product input v", n, v.len())?;
        check_len("Hessian-vector product output", n, out.len())?;
        let norm = norm(v);
        if !norm.is_finite() {
            return Err(TrainError::config(
                "hessian",
                "the vector to multiply by the Hessian is not finite",
            ));
        }
        if norm == 0.0 {
            out.fill(0.0);
            return Ok(());
        }
        let h = self.step;
        for ((x, &x0), &v) in self.x.iter_mut().zip(&self.x0).zip(v) {
            *x = x0 + h * (v / norm);
        }
        self.objective.value_and_grad(&self.x, &mut self.g_plus)?;
        for ((x, &x0), &v) in self.x.iter_mut().zip(&self.x0).zip(v) {
            *x = x0 - h * (v / norm);
        }
        self.objective.value_and_grad(&self.x, &mut self.g_minus)?;
        let scale = norm / (2.0 * self.step);
        for ((o, &p), &m) in out.iter_mut().zip(&self.g_plus).zip(&self.g_minus) {
            *o = (p - m) * scale;
        }
        Ok(())
    }
}

/// What [`hessian_spectrum`] and [`network_hessian`] measure.
#[derive(Clone, Debug, PartialEq)]
pub struct HessianConfig {
    /// How many of the largest eigenvalues (`λ₁ ≥ λ₂ ≥ …`, algebraic);
    /// at least 1 and at most `lanczos_steps`.
    pub top: usize,
    /// Lanczos steps, one Hessian-vector product each: the dimension of
    /// the Krylov space. More than the number of variables `n` is the
    /// exact case and runs `n` steps (see [`top_eigenvalues`]).
    pub lanczos_steps: usize,
    /// Rademacher vectors of Hutchinson's trace estimate, one product
    /// each; at least 2, for a standard error.
    pub trace_samples: usize,
    /// Seed of the Lanczos start vector and of the Rademacher vectors.
    pub seed: u64,
    /// Finite-difference step of [`network_hessian`]
    /// ([`FiniteDifferenceHvp`]); [`hessian_spectrum`] does not use it
    /// (its [`Hvp`] has its own).
    pub step: f64,
}

impl Default for HessianConfig {
    /// The top 3 eigenvalues from 20 Lanczos steps, the trace from 30
    /// samples, seed 0, step [`DEFAULT_HVP_STEP`]: 50 products in all.
    fn default() -> Self {
        HessianConfig {
            top: 3,
            lanczos_steps: 20,
            trace_samples: 30,
            seed: 0,
            step: DEFAULT_HVP_STEP,
        }
    }
}

/// The Hessian measures of [`hessian_spectrum`].
#[derive(Clone, Debug, PartialEq)]
pub struct HessianSpectrum {
    /// The largest `top` Ritz values, descending (largest algebraic, so a
    /// saddle's negative eigenvalues come last, if at all).
    pub eigenvalues: Vec<f64>,
    /// For each, the Lanczos residual `‖H y − θ y‖ = |β_m s_{m,i}|`: an
    /// eigenvalue of `H` lies within it of the Ritz value. It measures
    /// Lanczos's convergence only: with finite-difference products the
    /// values are also off by the products' error (see
    /// [`FiniteDifferenceHvp`]), which a residual far below it (a well
    /// separated top eigenvalue converges to `10⁻¹⁵` and beyond) does not
    /// show.
    pub residuals: Vec<f64>,
    /// Hutchinson's estimate of `tr H`: the mean of `zᵀ H z`.
    pub trace: f64,
    /// Its standard error: the samples' standard deviation (`n − 1`
    /// denominator) over `√samples`.
    pub trace_se: f64,
    /// Rademacher vectors drawn.
    pub trace_samples: usize,
    /// Hessian-vector products spent in all (Lanczos and Hutchinson).
    pub hvps: usize,
}

/// The largest `top` eigenvalues of the symmetric operator `h`, by `steps`
/// Lanczos steps from a Philox Gaussian start vector, with full
/// reorthogonalisation; returns `(eigenvalues, residuals)`, both of length
/// `top`, eigenvalues descending.
///
/// ```text
/// w = H q_j − α_j q_j − β_{j−1} q_{j−1},   α_j = q_jᵀ H q_j
/// w ← w − Q Qᵀ w   (twice: against every q so far)
/// β_j = ‖w‖,   q_{j+1} = w / β_j
/// T = tridiag(β, α, β) = S Θ Sᵀ  (implicit QL);   residual_i = |β_m S_{m,i}|
/// ```
///
/// The Ritz values `θ_i` are the eigenvalues of `T`; for a symmetric `H`
/// each one has an eigenvalue of `H` within its residual
/// `‖H y_i − θ_i y_i‖` (`y_i = Q s_i`). From a random start, the top Ritz
/// values converge first, quickly where the spectrum has a gap; `θ_i` is
/// never above `λ_i` (in exact arithmetic).
///
/// `steps` above the dimension `n` is the exact case: Lanczos runs `n`
/// steps, its space is then all of `ℝⁿ`, `T` is `H` in another basis and
/// the residuals are at rounding level. A breakdown (`β_j ≤ 10⁻¹² ·
/// max_k ‖H q_k‖`: the space so far is invariant, as when the start vector
/// lies in a few eigenvectors' span) continues from a fresh Gaussian
/// vector orthogonal to every `q` (zero coupling in `T`), so the result
/// always holds `top` values.
///
/// With products by finite differences the operator is only symmetric up
/// to their error; the residuals do not include it.
///
/// ```
/// use smoothout_models::analysis::{top_eigenvalues, Hvp};
/// use smoothout_models::train::Result;
///
/// /// The n × n matrix with 2 on the diagonal and −1 beside it:
/// /// λ_k = 2 − 2 cos(kπ/(n+1)).
/// struct Chain(usize);
/// impl Hvp for Chain {
///     fn dim(&self) -> usize { self.0 }
///     fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
///         for i in 0..self.0 {
///             out[i] = 2.0 * v[i] - if i > 0 { v[i - 1] } else { 0.0 }
///                 - if i + 1 < self.0 { v[i + 1] } else { 0.0 };
///         }
///         Ok(())
///     }
/// }
/// let pi = std::f64::consts::PI;
/// let lambda = |k: usize| 2.0 - 2.0 * (k as f64 * pi / 51.0).cos();
///
/// // Every step: exact.
/// let (theta, _) = top_eigenvalues(&mut Chain(50), 2, 50, 0)?;
/// assert!((theta[0] - lambda(50)).abs() < 1e-12 && (theta[1] - lambda(49)).abs() < 1e-12);
///
/// // Ten steps: below λ₁, with an eigenvalue within the residual.
/// let (theta, r) = top_eigenvalues(&mut Chain(50), 1, 10, 0)?;
/// assert!(theta[0] <= lambda(50) && r[0] > 0.0);
/// assert!((1..=50).any(|k| (lambda(k) - theta[0]).abs() <= r[0]));
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
///
/// # Errors
/// [`TrainError::Config`] for `top == 0`, `steps == 0`, `top > steps`,
/// `top` above the dimension, a dimension of 0, a product that is not
/// finite ("the Hessian-vector product is not finite"), or an eigenvalue
/// iteration of `T` that does not converge; errors of `h`.
pub fn top_eigenvalues<H: Hvp + ?Sized>(
    h: &mut H,
    top: usize,
    steps: usize,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    check_lanczos(h.dim(), top, steps)?;
    lanczos(h, top, steps, seed)
}

/// Hutchinson's estimate of `tr H` from `samples` Rademacher vectors:
/// returns `(mean, standard error)`,
///
/// ```text
/// t_s = z_sᵀ H z_s,  z_s ∈ {−1, +1}ⁿ;   mean = (1/S) Σ t_s;   se = sd(t) / √S
/// ```
///
/// unbiased, with variance `2 Σ_{i≠j} H_ij² / S` per mean (zero for a
/// diagonal `H`). The signs are Philox bits (see the module docs).
///
/// ```
/// use smoothout_models::analysis::{hutchinson_trace, Hvp};
/// use smoothout_models::train::Result;
///
/// /// H = [[2, 1], [1, 3]]: tr H = 5.
/// struct Two;
/// impl Hvp for Two {
///     fn dim(&self) -> usize { 2 }
///     fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
///         out[0] = 2.0 * v[0] + v[1];
///         out[1] = v[0] + 3.0 * v[1];
///         Ok(())
///     }
/// }
/// // zᵀHz = 5 ± 2: the estimate is within 5 standard errors of 5.
/// let (mean, se) = hutchinson_trace(&mut Two, 100, 0)?;
/// assert!(se > 0.0 && (mean - 5.0).abs() <= 5.0 * se);
/// assert!(hutchinson_trace(&mut Two, 1, 0).is_err());   // no standard error
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
///
/// # Errors
/// [`TrainError::Config`] for `samples < 2`, a dimension of 0, or a
/// product that is not finite; errors of `h`.
pub fn hutchinson_trace<H: Hvp + ?Sized>(
    h: &mut H,
    samples: usize,
    seed: u64,
) -> Result<(f64, f64)> {
    check_dim(h.dim())?;
    check_samples(samples)?;
    hutchinson(h, samples, seed)
}

/// The top eigenvalues ([`top_eigenvalues`], `config.lanczos_steps`
/// steps) and the trace ([`hutchinson_trace`], `config.trace_samples`
/// vectors) of `h`, both seeded with `config.seed`. `config.step` is not
/// used: `h` has its own.
///
/// ```
/// use smoothout_models::analysis::{hessian_spectrum, HessianConfig, Hvp};
/// use smoothout_models::train::Result;
///
/// struct Diagonal(Vec<f64>);
/// impl Hvp for Diagonal {
///     fn dim(&self) -> usize { self.0.len() }
///     fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
///         for ((o, x), d) in out.iter_mut().zip(v).zip(&self.0) { *o = d * x; }
///         Ok(())
///     }
/// }
/// let mut h = Diagonal(vec![3.0, -1.0, 0.5, 2.0]);
/// let s = hessian_spectrum(&mut h, &HessianConfig::default())?;
/// assert!((s.eigenvalues[0] - 3.0).abs() < 1e-12 && (s.eigenvalues[2] - 0.5).abs() < 1e-12);
/// assert!((s.trace - 4.5).abs() < 1e-12 && s.trace_se == 0.0);   // exact for a diagonal H
/// assert_eq!(s.hvps, 4 + 30);   // 20 steps asked, 4 dimensions: 4 steps
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
///
/// # Errors
/// As [`top_eigenvalues`] and [`hutchinson_trace`]; the settings are all
/// checked before the first product.
pub fn hessian_spectrum<H: Hvp + ?Sized>(
    h: &mut H,
    config: &HessianConfig,
) -> Result<HessianSpectrum> {
    check_lanczos(h.dim(), config.top, config.lanczos_steps)?;
    check_samples(config.trace_samples)?;
    let mut counted = Counting { inner: h, hvps: 0 };
    let (eigenvalues, residuals) =
        lanczos(&mut counted, config.top, config.lanczos_steps, config.seed)?;
    let (trace, trace_se) = hutchinson(&mut counted, config.trace_samples, config.seed)?;
    Ok(HessianSpectrum {
        eigenvalues,
        residuals,
        trace,
        trace_se,
        trace_samples: config.trace_samples,
        hvps: counted.hvps,
    })
}

/// The Hessian of `net`'s mean training loss on `data` (normalised by
/// `normalize`, evaluated in batches of `batch`) with respect to all its
/// parameters — flat, in spec order, as [`super::flat_params`] lists them,
/// BatchNorm's γ and β included — measured with [`hessian_spectrum`] on
/// [`FiniteDifferenceHvp`] products of [`NetworkLoss`] at the network's
/// current parameters.
///
/// BatchNorm is frozen (it normalises with its running statistics: the
/// inference-mode loss that [`NetworkLoss`] evaluates and `evaluate`
/// reports), so the loss is a sum over examples and the batch size changes
/// only speed (and the order of the sums: rounding). The parameters and running statistics are restored bit for
/// bit afterwards, also on error.
///
/// Each product costs two gradient evaluations over all of `data`. Run it
/// on an `f64` backend (see [`DEFAULT_HVP_STEP`] for why); an `f32`-trained
/// network is copied exactly:
///
/// ```
/// use smoothout::Reference;
/// use smoothout_cpu::Cpu;
/// use smoothout_models::analysis::{network_hessian, HessianConfig, Snapshot};
/// use smoothout_models::data::{Dataset, Normalize};
/// use smoothout_models::networks::{mlp, NetConfig};
///
/// let digits = Dataset::digits_embedded().subset(&(0..50).collect::<Vec<_>>())?;
/// let normalize = Normalize::fit(&digits)?;
/// let b32 = Reference::<f32>::new();
/// let net32 = mlp(&b32, NetConfig::seeded(0), 64, &[8], 10)?;   // e.g. a trained network
///
/// // The same architecture in f64, loaded with the f32 weights and statistics.
/// let b64 = Cpu::<f64>::with_threads(1)?;
/// let mut net64 = mlp(&b64, NetConfig::seeded(0), 64, &[8], 10)?;
/// Snapshot::of(&b32, &net32)?.apply(&b64, &mut net64)?;
///
/// let config = HessianConfig { top: 2, lanczos_steps: 10, trace_samples: 4, ..HessianConfig::default() };
/// let before = Snapshot::of(&b64, &net64)?;
/// let s = network_hessian(&b64, &mut net64, &digits, &normalize, 25, &config)?;
/// assert!(s.eigenvalues[0] >= s.eigenvalues[1] && s.eigenvalues[0] > 0.0);
/// assert_eq!(s.hvps, 10 + 4);
/// assert_eq!(Snapshot::of(&b64, &net64)?, before);   // put back
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`TrainError::Config`] for the settings that [`hessian_spectrum`] and
/// [`FiniteDifferenceHvp::new`] reject (checked before anything is
/// computed), an empty `data` or `batch == 0`, and a product that is not
/// finite; data and backend errors.
pub fn network_hessian<B: TensorBackend + 'static>(
    backend: &B,
    net: &mut Sequential<B>,
    data: &Dataset,
    normalize: &Normalize,
    batch: usize,
    config: &HessianConfig,
) -> Result<HessianSpectrum> {
    let n = net.num_params();
    check_lanczos(n, config.top, config.lanczos_steps)?;
    check_samples(config.trace_samples)?;
    check_step(config.step)?;
    with_restore(backend, net, |b, net| {
        let mut loss = NetworkLoss::new(b, net, data, normalize, batch)?;
        let x0 = loss.params()?;
        let mut h = FiniteDifferenceHvp::new(&mut loss, &x0, config.step)?;
        hessian_spectrum(&mut h, config)
    })
}

/// Counts the products it passes on.
struct Counting<'h, H: ?Sized> {
    inner: &'h mut H,
    hvps: usize,
}

impl<H: Hvp + ?Sized> Hvp for Counting<'_, H> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn hvp(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
        self.hvps += 1;
        self.inner.hvp(v, out)
    }
}

/// `β ≤ BREAKDOWN · max ‖H q‖` ends a Krylov space: what is left of `w`
/// after reorthogonalisation is rounding, not a direction of the space.
const BREAKDOWN: f64 = 1e-12;

/// Fresh vectors tried after a breakdown before giving up (each one lies in
/// the space already spanned with probability zero).
const RESTART_TRIES: u64 = 16;

fn lanczos<H: Hvp + ?Sized>(
    h: &mut H,
    top: usize,
    steps: usize,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = h.dim();
    let m = steps.min(n);
    let stream = NoiseKey::from_seed(seed).fold_in(u64::MAX);
    let mut fresh = 0u64;
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(m);
    q.push(fresh_vector(stream, &mut fresh, n, &q)?);
    let mut alpha = Vec::with_capacity(m);
    let mut beta: Vec<f64> = Vec::with_capacity(m);
    let mut w = vec![0.0; n];
    let mut scale = 0.0f64;
    let mut last_beta = 0.0;
    for j in 0..m {
        h.hvp(&q[j], &mut w)?;
        check_product(&w)?;
        scale = scale.max(norm(&w));
        let a = dot(&q[j], &w);
        alpha.push(a);
        axpy(-a, &q[j], &mut w);
        if j > 0 {
            axpy(-beta[j - 1], &q[j - 1], &mut w);
        }
        orthogonalize(&mut w, &q);
        orthogonalize(&mut w, &q);
        let b = norm(&w);
        if j + 1 == m {
            last_beta = b;
            break;
        }
        if b > BREAKDOWN * scale {
            beta.push(b);
            w.iter_mut().for_each(|x| *x /= b);
            q.push(w.clone());
        } else {
            beta.push(0.0);
            q.push(fresh_vector(stream, &mut fresh, n, &q)?);
        }
    }
    let (theta, s) = tridiagonal_eigen(&alpha, &beta)?;
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &k| theta[k].total_cmp(&theta[i]));
    let last = m - 1;
    let eigenvalues = order[..top].iter().map(|&i| theta[i]).collect();
    let residuals = order[..top]
        .iter()
        .map(|&i| (last_beta * s[last * m + i]).abs())
        .collect();
    Ok((eigenvalues, residuals))
}

/// A unit Gaussian vector orthogonal to `q` from the next key of `stream`.
fn fresh_vector(stream: NoiseKey, next: &mut u64, n: usize, q: &[Vec<f64>]) -> Result<Vec<f64>> {
    for _ in 0..RESTART_TRIES {
        let mut v = vec![0.0; n];
        fill_unit(stream.fold_in(*next), Unit::Gaussian, 0, &mut v);
        *next += 1;
        let before = norm(&v);
        orthogonalize(&mut v, q);
        orthogonalize(&mut v, q);
        let after = norm(&v);
        if after > 1e-8 * before {
            v.iter_mut().for_each(|x| *x /= after);
            return Ok(v);
        }
    }
    Err(TrainError::config(
        "hessian",
        format!(
            "Lanczos could not find a vector outside its {}-dimensional space in {RESTART_TRIES} tries",
            q.len()
        ),
    ))
}

fn hutchinson<H: Hvp + ?Sized>(h: &mut H, samples: usize, seed: u64) -> Result<(f64, f64)> {
    let n = h.dim();
    let root = NoiseKey::from_seed(seed);
    let mut z = vec![0.0; n];
    let mut hz = vec![0.0; n];
    let mut t = Vec::with_capacity(samples);
    for s in 0..samples {
        rademacher(root.fold_in(s as u64), &mut z);
        h.hvp(&z, &mut hz)?;
        check_product(&hz)?;
        t.push(dot(&z, &hz));
    }
    let count = samples as f64;
    let mean = t.iter().sum::<f64>() / count;
    let var = t.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (count - 1.0);
    Ok((mean, (var / count).sqrt()))
}

/// `z_i = ±1` from bit `i mod 32` of word `⌊i/32⌋` of `key`'s stream
/// (bit 1: −1).
fn rademacher(key: NoiseKey, z: &mut [f64]) {
    for (w, chunk) in z.chunks_mut(32).enumerate() {
        let bits = key.word(w as u64);
        for (b, x) in chunk.iter_mut().enumerate() {
            *x = if (bits >> b) & 1 == 1 { -1.0 } else { 1.0 };
        }
    }
}

/// Eigenvalues and eigenvectors of the symmetric tridiagonal matrix with
/// diagonal `d` and off-diagonal `e` (`e.len() + 1 == d.len()`), by the
/// implicit QL method with Wilkinson shifts (EISPACK's `tql2`, as in
/// *Numerical Recipes*' `tqli`). Returns the eigenvalues (unordered) and
/// the eigenvectors as the columns of a row-major `m × m` matrix.
fn tridiagonal_eigen(d: &[f64], e: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    let m = d.len();
    let mut d = d.to_vec();
    let mut e: Vec<f64> = e.iter().copied().chain([0.0]).collect();
    let mut z = vec![0.0; m * m];
    for i in 0..m {
        z[i * m + i] = 1.0;
    }
    for l in 0..m {
        let mut iterations = 0;
        loop {
            let mut k = l;
            while k + 1 < m {
                let dd = d[k].abs() + d[k + 1].abs();
                if e[k].abs() <= f64::EPSILON * dd {
                    break;
                }
                k += 1;
            }
            if k == l {
                break;
            }
            iterations += 1;
            if iterations > 30 * m.max(2) {
                return Err(TrainError::config(
                    "hessian",
                    "the eigenvalues of the Lanczos matrix did not converge",
                ));
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[k] - d[l] + e[l] / (g + if g >= 0.0 { r } else { -r });
            let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
            let mut underflow = false;
            let mut i = k;
            while i > l {
                i -= 1;
                let f = s * e[i];
                let bb = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[k] = 0.0;
                    underflow = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * bb;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - bb;
                for row in z.chunks_mut(m) {
                    let f = row[i + 1];
                    row[i + 1] = s * row[i] + c * f;
                    row[i] = c * row[i] - s * f;
                }
            }
            if underflow {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[k] = 0.0;
        }
    }
    Ok((d, z))
}

fn check_dim(n: usize) -> Result<()> {
    if n == 0 {
        Err(TrainError::config(
            "hessian",
            "the function has no variables (dimension 0)",
        ))
    } else {
        Ok(())
    }
}

fn check_lanczos(n: usize, top: usize, steps: usize) -> Result<()> {
    check_dim(n)?;
    if top == 0 {
        return Err(TrainError::config("--top", "ask for at least 1 eigenvalue"));
    }
    if steps == 0 {
        return Err(TrainError::config(
            "--lanczos-steps",
            "Lanczos needs at least 1 step",
        ));
    }
    if top > steps {
        return Err(TrainError::config(
            "--top",
            format!("{top} eigenvalues need at least {top} Lanczos steps, not {steps}"),
        ));
    }
    if top > n {
        return Err(TrainError::config(
            "--top",
            format!("{top} eigenvalues asked of a function of {n} variables"),
        ));
    }
    Ok(())
}

fn check_step(step: f64) -> Result<()> {
    if step.is_finite() && step > 0.0 {
        Ok(())
    } else {
        Err(TrainError::config(
            "--hvp-step",
            format!("the finite-difference step is {step}; it must be finite and > 0 (the default is {DEFAULT_HVP_STEP:e})"),
        ))
    }
}

fn check_samples(samples: usize) -> Result<()> {
    if samples < 2 {
        Err(TrainError::config(
            "--trace-samples",
            format!("{samples} sample(s): at least 2 are needed for a standard error"),
        ))
    } else {
        Ok(())
    }
}

fn check_product(out: &[f64]) -> Result<()> {
    match out.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(TrainError::config(
            "hessian",
            format!(
                "the Hessian-vector product is not finite (element {i} is {}); try another step or check the loss",
                out[i]
            ),
        )),
    }
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

fn norm(x: &[f64]) -> f64 {
    dot(x, x).sqrt()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// One classical Gram–Schmidt pass: `w ← w − Q Qᵀ w` (all coefficients
/// from the same `w`).
fn orthogonalize(w: &mut [f64], q: &[Vec<f64>]) {
    let c: Vec<f64> = q.iter().map(|qi| dot(qi, w)).collect();
    for (qi, c) in q.iter().zip(c) {
        axpy(-c, qi, w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `m × m` matrix with 2 on the diagonal and −1 beside it has
    /// eigenvalues `2 − 2 cos(kπ/(m+1))` and eigenvectors
    /// `sin(ikπ/(m+1))` (the discrete Laplacian).
    #[test]
    fn tridiagonal_solver_knows_the_discrete_laplacian() {
        for m in [1, 2, 3, 7, 40] {
            let (theta, z) = tridiagonal_eigen(&vec![2.0; m], &vec![-1.0; m - 1]).unwrap();
            let mut got = theta.clone();
            got.sort_by(f64::total_cmp);
            let pi = core::f64::consts::PI;
            for (k, g) in got.iter().enumerate() {
                let want = 2.0 - 2.0 * ((k + 1) as f64 * pi / (m + 1) as f64).cos();
                assert!((g - want).abs() < 1e-13, "m = {m}, k = {k}: {g} vs {want}");
            }
            // Columns are orthonormal eigenvectors: T s = θ s.
            for (c, &t) in theta.iter().enumerate() {
                let col: Vec<f64> = (0..m).map(|r| z[r * m + c]).collect();
                assert!((norm(&col) - 1.0).abs() < 1e-13);
                for r in 0..m {
                    let mut ts = 2.0 * col[r];
                    if r > 0 {
                        ts -= col[r - 1];
                    }
                    if r + 1 < m {
                        ts -= col[r + 1];
                    }
                    assert!((ts - t * col[r]).abs() < 1e-12, "m = {m}");
                }
            }
        }
    }

    #[test]
    fn tridiagonal_solver_handles_zero_couplings_and_zero_matrices() {
        let (theta, _) = tridiagonal_eigen(&[3.0, 0.0, -1.0, 5.0], &[0.0, 0.0, 0.0]).unwrap();
        let mut got = theta;
        got.sort_by(f64::total_cmp);
        assert_eq!(got, [-1.0, 0.0, 3.0, 5.0]);
        let (theta, _) = tridiagonal_eigen(&[0.0; 3], &[0.0; 2]).unwrap();
        assert_eq!(theta, [0.0; 3]);
        // Two decoupled 2 × 2 blocks [[1, 2], [2, 1]]: eigenvalues −1, 3 each.
        let (theta, _) = tridiagonal_eigen(&[1.0; 4], &[2.0, 0.0, 2.0]).unwrap();
        let mut got = theta;
        got.sort_by(f64::total_cmp);
        for (g, w) in got.iter().zip([-1.0, -1.0, 3.0, 3.0]) {
            assert!((g - w).abs() < 1e-14, "{got:?}");
        }
    }

    #[test]
    fn rademacher_signs_are_balanced_and_keyed() {
        let mut z = vec![0.0; 1000];
        rademacher(NoiseKey::from_seed(1), &mut z);
        assert!(z.iter().all(|&x| x == 1.0 || x == -1.0));
        let sum: f64 = z.iter().sum();
        assert!(sum.abs() < 5.0 * 1000f64.sqrt(), "{sum}");
        let mut other = vec![0.0; 1000];
        rademacher(NoiseKey::from_seed(2), &mut other);
        assert_ne!(z, other);
        // Coordinate i is bit i mod 32 of word i / 32.
        let w = NoiseKey::from_seed(1).word(3);
        assert_eq!(z[3 * 32 + 5], if (w >> 5) & 1 == 1 { -1.0 } else { 1.0 });
    }
}
