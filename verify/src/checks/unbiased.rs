//! Check 1, unbiasedness (Eq. 6, 8): the library's perturbations average to
//! the smoothed loss `C̄(w) = E C(w + θ)` and its gradient.
//!
//! # What is computed
//!
//! *N-copy form (Eq. 6).* For a test function `C` with a closed-form smoothed
//! value, copy `i` of an [`Objective`] is perturbed by the library
//! ([`Objective::perturbed`], the same code [`Objective::value_and_grad`]
//! averages), `C(w + θ_i)` and every component of `∇C(w + θ_i)` are pushed
//! into a [`MeanVar`], and the sample means are compared with `C̄(w)` and
//! `∇C̄(w)` in units of their own standard errors. A second comparison holds
//! [`Objective::value_and_grad`] to the mean of the same per-copy values (up
//! to rounding), so the standard errors belong to the estimate the library
//! returns.
//!
//! ```text
//! noise moments       U(−a, a): E θ² = a²/3, E θ⁴ = a⁴/5, E cos bθ = sin(ba)/(ba), E e^{kθ} = sinh(ka)/(ka)
//!                     N(0, σ²): E θ² = σ²,   E θ⁴ = 3σ⁴,  E cos bθ = e^{−b²σ²/2},   E e^{kθ} = e^{k²σ²/2}
//! quadratic           C = Σ h_i (w_i − c_i)²/2       C̄ = C + E θ² · Σ h_i / 2           ∇C̄ = ∇C
//! quartic             C = Σ k_i (w_i − c_i)⁴         C̄ = Σ k_i (x⁴ + 6x² E θ² + E θ⁴)   ∂_i C̄ = 4k_i (x³ + 3x E θ²),  x = w_i − c_i
//! sum of cosines      C = Σ α_i cos(b_i w_i)         C̄ = Σ α_i cos(b_i w_i) E cos(b_i θ)
//! product of cosines  C = Π cos(b_i w_i)             C̄ = Π cos(b_i w_i) E cos(b_i θ)   (independent coordinates factorise)
//! exponential         C = exp(kᵀw)                   C̄ = exp(kᵀw) Π E e^{k_i θ},   ∇C̄ = k C̄
//! ```
//!
//! The exponential is derived here: `E e^{k(w+θ)} = e^{kw} E e^{kθ}`, and
//! `(1/2a)∫_{−a}^{a} e^{kt} dt = (e^{ka} − e^{−ka})/(2ka) = sinh(ka)/(ka)`
//! (the Gaussian value is the normal moment generating function).
//! Its gradient is `k` times its value draw by draw, so its gradient row
//! repeats the value row's z; the other functions' gradients are
//! independent checks.
//!
//! *Online form (Eq. 7–8).* Data `x_t` come from the library's unit noise
//! under a data key (`NoiseKey::from_seed(seed ^ DATA_SALT).fold_in(t)`), so
//! `C(w) = E_x Q(x, w)` is known in closed form; each step runs
//! [`SmoothOut::step`] (Algorithm 1's perturbation, exact de-noise, on a
//! [`Harness`]'s backend: the core reference, and for the cases
//! [`CPU_ONLINE`] the CPU backend, in rows of their own) and records
//! `Q(x_t, w + θ_t)` and `∇_w Q(x_t, w + θ_t)` at the perturbed parameters
//! it hands out:
//!
//! ```text
//! quadratic  Q = ½ Σ (w_i − x_i)²,  x_i = μ_i + s_i z_i, z ~ N(0, 1):   C = ½ Σ ((w_i − μ_i)² + s_i²),  C̄ = C + m E θ²/2
//! cosine     Q = Σ cos(w_i − x_i),  x_i = μ_i + s_i u_i, u ~ U(−1, 1):  C = Σ cos(w_i − μ_i) sin(s_i)/s_i,  C̄ = C · E cos θ
//! ```
//!
//! # Broken variants
//!
//! [`Variant`] swaps the noise for a deliberately wrong one, built from the
//! same library draws: `OneSided` uses `|θ|` (U(0, a), or a half-normal) —
//! biased by `E|θ|` — and `HalfScale` uses strength `a/2` (or `σ/2`). The
//! tests show both fail: one-sided noise shifts the gradient of a quadratic
//! by `h·E|θ|` (about `√(3N)` standard errors under uniform noise; note that
//! it leaves the value at `w = c` unchanged, since `E θ²` is the same), and
//! half scale lowers `C̄ − C` of a quadratic to a quarter.
//!
//! # Tolerances
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | mean of `C(w + θ_i)` vs `C̄(w)` | `Z_BOUND` = 5 standard errors | Monte Carlo: the SE is `√(s²/N)` with `s²` the sample variance of the per-copy values; a correct implementation exceeds 5 SE with probability ≈ 6·10⁻⁷ per comparison (draws are seeded, so runs reproduce) |
//! | mean of `∂_j C(w + θ_i)` vs `∂_j C̄(w)` | 5 SE for every component `j` (the row shows the largest z) | as above, per component |
//! | online means of `Q(x_t, w + θ_t)`, `∇_w Q` vs `C̄`, `∇C̄` | 5 SE (per step) | as above; steps are independent (fresh keys for data and noise) |
//! | [`Objective::value_and_grad`] vs the mean of the per-copy values | `3Nε · M` per component, `M` the largest per-copy magnitude | exact arithmetic: the library's running sum (and `axpy` with `1/N`) errs by at most `Nε · M`, Welford's mean by at most `(N + 4 ln N) ε · M`; ε = 2⁻⁵³ |
//! | broken variant detected | `≥ DETECT_Z` = 4 · 5 SE | the gap must be far outside what a correct implementation shows |
//! | CPU-backend online rows ([`CPU_ONLINE`]) vs the reference's | 0 differing bits of the measured values | the CPU backend gives the reference's bits (check 9) |
//!
//! The generator's discretisation is far inside these bounds: uniform unit
//! values are the 2²⁴ midpoints (second moment `(1 − 2⁻⁴⁸)/3`); the
//! Box–Muller radius is cut at `√(48 ln 2)`, which changes `E z²` by about
//! 6·10⁻⁷ relative. At the `N ≤ 10⁵` used here those biases are below 10⁻³
//! standard errors.

use smoothout::reference::{self, fill_unit};
use smoothout::{Config, Denoise, Draw, Noise, NoiseKey, Objective, ParamSpec, SmoothOut, Unit};

use crate::harness::{push_cpu_cases, CpuHarness, Harness, RefHarness};
use crate::stats::{max_z, MeanVar, Z_BOUND};
use crate::Row;

/// Title in the report.
pub const NAME: &str = "1. Unbiasedness (Eq. 6, 8)";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "The library's uniform and Gaussian perturbations, both in the N-copy \
objective (Eq. 6) and in Algorithm 1's step (Eq. 8), average to the closed-form smoothed loss \
and its gradient, and a one-sided or half-scale noise is caught.";

/// How many standard errors a broken variant must be off by to count as
/// detected: four times the acceptance bound.
pub const DETECT_Z: f64 = 4.0 * Z_BOUND;

/// Salt that separates the online data keys from the noise keys.
pub const DATA_SALT: u64 = 0xDA7A_DA7A_DA7A_DA7A;

/// Which noise the check feeds to `C`: the library's, or a deliberately
/// broken one made from the library's draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// θ exactly as the library draws it.
    Correct,
    /// `|θ|`: U(0, a) instead of U(−a, a) (a half-normal for Gaussian noise).
    OneSided,
    /// The strength halved: U(−a/2, a/2), or N(0, σ²/4).
    HalfScale,
}

impl Variant {
    /// The noise the variant asks the library for.
    fn noise(self, noise: Noise) -> Noise {
        match (self, noise) {
            (Variant::HalfScale, Noise::Uniform { a }) => Noise::Uniform { a: a / 2.0 },
            (Variant::HalfScale, Noise::Gaussian { std }) => Noise::Gaussian { std: std / 2.0 },
            _ => noise,
        }
    }

    /// Post-processes the perturbed point `p = w + θ` in place.
    fn adjust(self, w: &[f64], p: &mut [f64]) {
        if self == Variant::OneSided {
            for (p, w) in p.iter_mut().zip(w) {
                *p = w + (*p - w).abs();
            }
        }
    }
}

/// `E θ²`, `E θ⁴`, `E cos(bθ)` and `E e^{kθ}` of one coordinate of the noise.
///
/// # Panics
///
/// For Bernoulli noise, which is not additive.
#[must_use]
pub fn moments(noise: Noise) -> NoiseMoments {
    match noise {
        Noise::Uniform { a } => NoiseMoments {
            noise,
            m2: a * a / 3.0,
            m4: a.powi(4) / 5.0,
        },
        Noise::Gaussian { std } => NoiseMoments {
            noise,
            m2: std * std,
            m4: 3.0 * std.powi(4),
        },
        Noise::Bernoulli { .. } => panic!("unbiasedness is checked for additive noise only"),
    }
}

/// The moments of one coordinate of additive noise (see [`moments`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseMoments {
    noise: Noise,
    /// `E θ²`.
    pub m2: f64,
    /// `E θ⁴`.
    pub m4: f64,
}

impl NoiseMoments {
    /// `E cos(bθ)`: `sin(ba)/(ba)` for U(−a, a), `e^{−b²σ²/2}` for N(0, σ²).
    #[must_use]
    pub fn cos(&self, b: f64) -> f64 {
        match self.noise {
            Noise::Uniform { a } if b * a != 0.0 => (b * a).sin() / (b * a),
            Noise::Gaussian { std } => (-(b * std).powi(2) / 2.0).exp(),
            _ => 1.0,
        }
    }

    /// `E e^{kθ}`: `sinh(ka)/(ka)` for U(−a, a), `e^{k²σ²/2}` for N(0, σ²).
    #[must_use]
    pub fn mgf(&self, k: f64) -> f64 {
        match self.noise {
            Noise::Uniform { a } if k * a != 0.0 => (k * a).sinh() / (k * a),
            Noise::Gaussian { std } => ((k * std).powi(2) / 2.0).exp(),
            _ => 1.0,
        }
    }
}

/// A test function with a closed-form smoothed value and gradient.
#[derive(Clone, Debug, PartialEq)]
pub enum TestFn {
    /// `Σ h_i (w_i − c_i)²/2`.
    Quadratic {
        /// Curvatures `h_i`.
        h: Vec<f64>,
        /// Centres `c_i`.
        c: Vec<f64>,
    },
    /// `Σ k_i (w_i − c_i)⁴`.
    Quartic {
        /// Coefficients `k_i`.
        k: Vec<f64>,
        /// Centres `c_i`.
        c: Vec<f64>,
    },
    /// `Σ α_i cos(b_i w_i)`.
    CosSum {
        /// Amplitudes `α_i`.
        amp: Vec<f64>,
        /// Frequencies `b_i`.
        b: Vec<f64>,
    },
    /// `Π cos(b_i w_i)`.
    CosProduct {
        /// Frequencies `b_i`.
        b: Vec<f64>,
    },
    /// `exp(kᵀw)`.
    Exp {
        /// Exponent coefficients `k_i`.
        k: Vec<f64>,
    },
}

/// `Π_{j≠i} x_j` for every `i` (no division, so zeros are fine).
fn products_but_one(x: &[f64]) -> Vec<f64> {
    let mut out = vec![1.0; x.len()];
    let mut left = 1.0;
    for i in 0..x.len() {
        out[i] = left;
        left *= x[i];
    }
    let mut right = 1.0;
    for i in (0..x.len()).rev() {
        out[i] *= right;
        right *= x[i];
    }
    out
}

impl TestFn {
    /// Number of coordinates.
    #[must_use]
    pub fn dim(&self) -> usize {
        match self {
            TestFn::Quadratic { h, .. } => h.len(),
            TestFn::Quartic { k, .. } => k.len(),
            TestFn::CosSum { b, .. } | TestFn::CosProduct { b } => b.len(),
            TestFn::Exp { k } => k.len(),
        }
    }

    /// Short name for the report.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            TestFn::Quadratic { .. } => "quadratic",
            TestFn::Quartic { .. } => "quartic",
            TestFn::CosSum { .. } => "sum of cosines",
            TestFn::CosProduct { .. } => "product of cosines",
            TestFn::Exp { .. } => "exp(kᵀw)",
        }
    }

    /// `C(w)`, with `∇C(w)` written into `g`.
    pub fn value_grad(&self, w: &[f64], g: &mut [f64]) -> f64 {
        match self {
            TestFn::Quadratic { h, c } => {
                let mut v = 0.0;
                for i in 0..w.len() {
                    let x = w[i] - c[i];
                    g[i] = h[i] * x;
                    v += 0.5 * h[i] * x * x;
                }
                v
            }
            TestFn::Quartic { k, c } => {
                let mut v = 0.0;
                for i in 0..w.len() {
                    let x = w[i] - c[i];
                    g[i] = 4.0 * k[i] * x * x * x;
                    v += k[i] * x.powi(4);
                }
                v
            }
            TestFn::CosSum { amp, b } => {
                let mut v = 0.0;
                for i in 0..w.len() {
                    let (s, c) = (b[i] * w[i]).sin_cos();
                    g[i] = -amp[i] * b[i] * s;
                    v += amp[i] * c;
                }
                v
            }
            TestFn::CosProduct { b } => {
                let cos: Vec<f64> = w.iter().zip(b).map(|(w, b)| (b * w).cos()).collect();
                let others = products_but_one(&cos);
                for i in 0..w.len() {
                    g[i] = -b[i] * (b[i] * w[i]).sin() * others[i];
                }
                cos.iter().product()
            }
            TestFn::Exp { k } => {
                let v = k.iter().zip(w).map(|(k, w)| k * w).sum::<f64>().exp();
                for (g, k) in g.iter_mut().zip(k) {
                    *g = k * v;
                }
                v
            }
        }
    }

    /// The closed-form `C̄(w)` under `noise`, with `∇C̄(w)` written into `g`.
    pub fn smoothed(&self, noise: Noise, w: &[f64], g: &mut [f64]) -> f64 {
        let mo = moments(noise);
        match self {
            TestFn::Quadratic { h, .. } => {
                self.value_grad(w, g) + mo.m2 * h.iter().sum::<f64>() / 2.0
            }
            TestFn::Quartic { k, c } => {
                let mut v = 0.0;
                for i in 0..w.len() {
                    let x = w[i] - c[i];
                    v += k[i] * (x.powi(4) + 6.0 * x * x * mo.m2 + mo.m4);
                    g[i] = 4.0 * k[i] * (x * x * x + 3.0 * x * mo.m2);
                }
                v
            }
            TestFn::CosSum { amp, b } => {
                let mut v = 0.0;
                for i in 0..w.len() {
                    let (s, c) = (b[i] * w[i]).sin_cos();
                    let e = mo.cos(b[i]);
                    g[i] = -amp[i] * b[i] * s * e;
                    v += amp[i] * c * e;
                }
                v
            }
            TestFn::CosProduct { b } => {
                let f: Vec<f64> = w
                    .iter()
                    .zip(b)
                    .map(|(w, b)| (b * w).cos() * mo.cos(*b))
                    .collect();
                let others = products_but_one(&f);
                for i in 0..w.len() {
                    g[i] = -b[i] * (b[i] * w[i]).sin() * mo.cos(b[i]) * others[i];
                }
                f.iter().product()
            }
            TestFn::Exp { k } => {
                let e: f64 = k.iter().map(|&k| mo.mgf(k)).product();
                let v = k.iter().zip(w).map(|(k, w)| k * w).sum::<f64>().exp() * e;
                for (g, k) in g.iter_mut().zip(k) {
                    *g = k * v;
                }
                v
            }
        }
    }
}

/// Per-draw statistics of a value and of each gradient component.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The value's running mean and variance.
    pub value: MeanVar,
    /// Each gradient component's.
    pub grad: Vec<MeanVar>,
    /// `max_i |C(w + θ_i)|` and, per component, `max_i |∂_j C(w + θ_i)|`
    /// (for rounding bounds).
    pub max_abs: Vec<f64>,
}

impl Sample {
    fn new(m: usize) -> Self {
        Sample {
            value: MeanVar::default(),
            grad: vec![MeanVar::default(); m],
            max_abs: vec![0.0; m + 1],
        }
    }

    fn push(&mut self, v: f64, g: &[f64]) {
        self.value.push(v);
        self.max_abs[0] = self.max_abs[0].max(v.abs());
        for (j, &gj) in g.iter().enumerate() {
            self.grad[j].push(gj);
            self.max_abs[j + 1] = self.max_abs[j + 1].max(gj.abs());
        }
    }

    /// `|mean − expected|` of the value, in standard errors.
    #[must_use]
    pub fn value_z(&self, expected: f64) -> f64 {
        self.value.z_score(expected)
    }

    /// The largest `|mean − expected|` over gradient components, in standard
    /// errors.
    #[must_use]
    pub fn grad_z(&self, expected: &[f64]) -> f64 {
        max_z(&self.grad, expected)
    }

    /// The two rows of [`smoothed_rows`] and [`online_rows`]: the mean value
    /// against `c`, then the mean gradient against `g` (the largest z over
    /// components), each `≤ 5` standard errors; `claims` names the two.
    fn mean_rows(
        &self,
        c: f64,
        g: &[f64],
        claims: [&str; 2],
        equation: &'static str,
        setting: String,
    ) -> Vec<Row> {
        let [value_claim, grad_claim] = claims;
        vec![
            Row::at_most(
                NAME,
                value_claim,
                equation,
                setting.clone(),
                self.value_z(c),
                Z_BOUND,
            ),
            Row::at_most(NAME, grad_claim, equation, setting, self.grad_z(g), Z_BOUND),
        ]
    }
}

/// Draws `C(w + θ_i)` and `∇C(w + θ_i)` for the `draws` copies of an
/// [`Objective`] over `noise` with `seed`, as the variant perturbs them.
pub fn sample_copies(
    f: &TestFn,
    w: &[f64],
    noise: Noise,
    draws: usize,
    seed: u64,
    variant: Variant,
) -> smoothout::Result<Sample> {
    let obj = Objective::new(variant.noise(noise), draws, seed)?;
    let m = w.len();
    let (mut p, mut g) = (vec![0.0; m], vec![0.0; m]);
    let mut s = Sample::new(m);
    for i in 0..draws {
        obj.perturbed(i, w, &mut p)?;
        variant.adjust(w, &mut p);
        let v = f.value_grad(&p, &mut g);
        s.push(v, &g);
    }
    Ok(s)
}

fn noise_label(noise: Noise) -> String {
    match noise {
        Noise::Uniform { a } => format!("U(−{a}, {a})"),
        Noise::Gaussian { std } => format!("N(0, {std}²)"),
        Noise::Bernoulli { p } => format!("Bernoulli({p})"),
    }
}

fn variant_label(variant: Variant) -> &'static str {
    match variant {
        Variant::Correct => "",
        Variant::OneSided => ", one-sided abs(θ) (broken)",
        Variant::HalfScale => ", half scale (broken)",
    }
}

/// The two Eq. 6 rows for one function, point and noise: the mean value and
/// the mean gradient against the closed form, each `≤ 5` standard errors
/// (the gradient row shows the largest over components).
pub fn smoothed_rows(
    f: &TestFn,
    w: &[f64],
    noise: Noise,
    draws: usize,
    seed: u64,
    variant: Variant,
) -> smoothout::Result<Vec<Row>> {
    let s = sample_copies(f, w, noise, draws, seed, variant)?;
    let mut g = vec![0.0; w.len()];
    let c = f.smoothed(noise, w, &mut g);
    let setting = format!(
        "{}, m={}, {}, N={draws}{}",
        f.name(),
        w.len(),
        noise_label(noise),
        variant_label(variant)
    );
    Ok(s.mean_rows(
        c,
        &g,
        [
            "mean of C(w+θ_i) = C̄(w) (standard errors)",
            "mean of ∇C(w+θ_i) = ∇C̄(w) (largest z over components)",
        ],
        "Eq. 6",
        setting,
    ))
}

/// [`Objective::value_and_grad`] against the mean of the per-copy values it
/// averages, for several functions: the row shows the component whose
/// difference is the largest fraction of its rounding bound
/// `3Nε · max_i |v_i|`, with that bound.
pub fn objective_row(
    fns: &[(TestFn, Vec<f64>)],
    noise: Noise,
    draws: usize,
    seed: u64,
) -> smoothout::Result<Row> {
    let obj = Objective::new(noise, draws, seed)?;
    let mut worst = (0.0, 0.0);
    for (f, w) in fns {
        let m = w.len();
        let s = sample_copies(f, w, noise, draws, seed, Variant::Correct)?;
        let (mut sc, mut gs, mut grad) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
        let v = obj.value_and_grad(w, &mut sc, &mut gs, &mut grad, |p, g| f.value_grad(p, g))?;
        let means = std::iter::once(s.value.mean()).chain(s.grad.iter().map(MeanVar::mean));
        let lib = std::iter::once(v).chain(grad.iter().copied());
        for ((mean, lib), max_abs) in means.zip(lib).zip(&s.max_abs) {
            let bound = 3.0 * draws as f64 * f64::EPSILON / 2.0 * max_abs;
            worst = worse(worst, ((lib - mean).abs(), bound));
        }
    }
    Ok(Row::at_most(
        NAME,
        "Objective::value_and_grad = mean of its per-copy values and gradients",
        "Eq. 6",
        format!(
            "{} functions, {}, N={draws}; worst component vs its rounding bound",
            fns.len(),
            noise_label(noise)
        ),
        worst.0,
        worst.1,
    ))
}

/// The pair whose `measured / bound` is larger (a zero bound counts as
/// infinitely tight).
fn worse(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let ratio = |(m, b): (f64, f64)| if m == 0.0 { 0.0 } else { m / b };
    if ratio(b) > ratio(a) {
        b
    } else {
        a
    }
}

/// An online loss `Q(x, w)` with data `x` drawn from the library's unit
/// noise, for Eq. 7–8.
#[derive(Clone, Debug, PartialEq)]
pub enum OnlineLoss {
    /// `Q = ½ Σ (w_i − x_i)²`, `x_i = μ_i + s_i z_i`, `z ~ N(0, 1)`.
    Quadratic {
        /// Data means `μ_i`.
        mu: Vec<f64>,
        /// Data standard deviations `s_i`.
        s: Vec<f64>,
    },
    /// `Q = Σ cos(w_i − x_i)`, `x_i = μ_i + s_i u_i`, `u ~ U(−1, 1)`.
    Cosine {
        /// Data centres `μ_i`.
        mu: Vec<f64>,
        /// Data half-widths `s_i`.
        s: Vec<f64>,
    },
}

impl OnlineLoss {
    fn parts(&self) -> (&[f64], &[f64], Unit) {
        match self {
            OnlineLoss::Quadratic { mu, s } => (mu, s, Unit::Gaussian),
            OnlineLoss::Cosine { mu, s } => (mu, s, Unit::Uniform),
        }
    }

    /// Short name for the report.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            OnlineLoss::Quadratic { .. } => "Q = ½‖w − x‖², Gaussian x",
            OnlineLoss::Cosine { .. } => "Q = Σ cos(w − x), uniform x",
        }
    }

    /// Draws the data `x_t` of step `t` into `x`.
    pub fn data(&self, key: NoiseKey, t: u64, x: &mut [f64]) {
        let (mu, s, unit) = self.parts();
        fill_unit(key.fold_in(t), unit, 0, x);
        for ((x, mu), s) in x.iter_mut().zip(mu).zip(s) {
            *x = mu + s * *x;
        }
    }

    /// `Q(x, w)`, with `∇_w Q` written into `g`.
    pub fn value_grad(&self, x: &[f64], w: &[f64], g: &mut [f64]) -> f64 {
        let mut v = 0.0;
        for i in 0..w.len() {
            let d = w[i] - x[i];
            match self {
                OnlineLoss::Quadratic { .. } => {
                    g[i] = d;
                    v += 0.5 * d * d;
                }
                OnlineLoss::Cosine { .. } => {
                    let (s, c) = d.sin_cos();
                    g[i] = -s;
                    v += c;
                }
            }
        }
        v
    }

    /// The closed-form `C̄(w) = E_θ E_x Q(x, w + θ)`, with `∇C̄` into `g`.
    pub fn smoothed(&self, noise: Noise, w: &[f64], g: &mut [f64]) -> f64 {
        let mo = moments(noise);
        let (mu, s, _) = self.parts();
        let mut v = 0.0;
        for i in 0..w.len() {
            let d = w[i] - mu[i];
            match self {
                OnlineLoss::Quadratic { .. } => {
                    g[i] = d;
                    v += 0.5 * (d * d + s[i] * s[i] + mo.m2);
                }
                OnlineLoss::Cosine { .. } => {
                    let sinc = if s[i] == 0.0 { 1.0 } else { s[i].sin() / s[i] };
                    let e = sinc * mo.cos(1.0);
                    g[i] = -d.sin() * e;
                    v += d.cos() * e;
                }
            }
        }
        v
    }
}

/// Runs `steps` steps of Algorithm 1's perturbation through [`SmoothOut`]
/// (fixed scaling, exact de-noise, on `H`'s backend), recording
/// `Q(x_t, w + θ_t)` and `∇_w Q(x_t, w + θ_t)` as the variant perturbs them
/// (the perturbed parameters are downloaded inside the step).
pub fn sample_online<H: Harness>(
    q: &OnlineLoss,
    w: &[f64],
    noise: Noise,
    steps: u64,
    seed: u64,
    variant: Variant,
) -> smoothout::Result<Sample> {
    let m = w.len();
    let backend = H::backend::<f64>();
    let config = Config::new(variant.noise(noise))
        .with_denoise(Denoise::Exact)
        .with_seed(seed);
    let mut so = SmoothOut::new(&backend, config, vec![ParamSpec::weight("w", [m])])?;
    let mut params = vec![H::upload(&backend, w.to_vec())?];
    let data_key = NoiseKey::from_seed(seed ^ DATA_SALT);
    let (mut x, mut p, mut g) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
    let mut s = Sample::new(m);
    for t in 0..steps {
        q.data(data_key, t, &mut x);
        so.step(&backend, &mut params, Draw::new(t, 0), |perturbed| {
            p.copy_from_slice(&H::download(&backend, &perturbed[0])?);
            Ok::<(), smoothout::Error>(())
        })?;
        variant.adjust(w, &mut p);
        let v = q.value_grad(&x, &p, &mut g);
        s.push(v, &g);
    }
    Ok(s)
}

/// The two Eq. 8 rows for one online loss, on `H`'s backend: the mean of
/// `Q(x_t, w + θ_t)` and of its gradient against `C̄(w)` and `∇C̄(w)`,
/// within 5 SE.
pub fn online_rows<H: Harness>(
    q: &OnlineLoss,
    w: &[f64],
    noise: Noise,
    steps: u64,
    seed: u64,
    variant: Variant,
) -> smoothout::Result<Vec<Row>> {
    let s = sample_online::<H>(q, w, noise, steps, seed, variant)?;
    let mut g = vec![0.0; w.len()];
    let c = q.smoothed(noise, w, &mut g);
    let setting = format!(
        "{}, m={}, {}, T={steps} steps{}{}",
        q.name(),
        w.len(),
        noise_label(noise),
        variant_label(variant),
        H::tag()
    );
    Ok(s.mean_rows(
        c,
        &g,
        [
            "mean of Q(x_t, w+θ_t) = C̄(w) (standard errors)",
            "mean of ∇Q(x_t, w+θ_t) = ∇C̄(w) (largest z over components)",
        ],
        "Eq. 7–8",
        setting,
    ))
}

/// `n` values uniform on `[lo, hi]` from the library's unit noise of `key`
/// (the report's fixed inputs).
#[must_use]
pub fn uniform_inputs(key: NoiseKey, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut u = vec![0.0; n];
    reference::fill_unit(key, Unit::Uniform, 0, &mut u);
    u.iter().map(|u| lo + (hi - lo) * (u + 1.0) / 2.0).collect()
}

/// The report's test functions, `m` coordinates each, with a point `w`;
/// inputs come from the library's unit noise of `seed`.
#[must_use]
pub fn report_functions(m: usize, seed: u64) -> Vec<(TestFn, Vec<f64>)> {
    let key = |i: u64| NoiseKey::from_seed(seed).fold_in(i);
    let u = |i, lo, hi| uniform_inputs(key(i), m, lo, hi);
    // |k| ≤ 0.5/√m keeps kᵀθ of order one, so exp(kᵀθ) has light tails.
    let kmax = 0.5 / (m as f64).sqrt();
    vec![
        (
            TestFn::Quadratic {
                h: u(0, 0.1, 4.0),
                c: u(1, -1.0, 1.0),
            },
            u(2, -1.0, 1.0),
        ),
        (
            TestFn::Quartic {
                k: u(3, 0.1, 2.0),
                c: u(4, -1.0, 1.0),
            },
            u(5, -1.0, 1.0),
        ),
        (
            TestFn::CosSum {
                amp: u(6, -2.0, 2.0),
                b: u(7, 0.5, 4.0),
            },
            u(8, -1.0, 1.0),
        ),
        (TestFn::CosProduct { b: u(9, 0.5, 3.0) }, u(10, -1.0, 1.0)),
        (
            TestFn::Exp {
                k: u(11, -kmax, kmax),
            },
            u(12, -1.0, 1.0),
        ),
    ]
}

/// The report rows.
pub fn rows() -> Vec<Row> {
    const DRAWS: usize = 40_000;
    const STEPS: u64 = 40_000;
    const M: usize = 4;
    let mut rows = Vec::new();
    let noises = [Noise::Uniform { a: 0.5 }, Noise::Gaussian { std: 0.3 }];
    let fns = report_functions(M, 61);
    for (n, &noise) in noises.iter().enumerate() {
        for (j, (f, w)) in fns.iter().enumerate() {
            let seed = 1000 + 10 * n as u64 + j as u64;
            rows.extend(
                smoothed_rows(f, w, noise, DRAWS, seed, Variant::Correct).expect("valid settings"),
            );
        }
        rows.push(objective_row(&fns, noise, DRAWS / 4, 2000 + n as u64).expect("valid settings"));
    }
    let key = |i: u64| NoiseKey::from_seed(62).fold_in(i);
    let online = [
        OnlineLoss::Quadratic {
            mu: uniform_inputs(key(0), M, -1.0, 1.0),
            s: uniform_inputs(key(1), M, 0.1, 1.0),
        },
        OnlineLoss::Cosine {
            mu: uniform_inputs(key(2), M, -1.0, 1.0),
            s: uniform_inputs(key(3), M, 0.1, 2.0),
        },
    ];
    let w = uniform_inputs(key(4), M, -1.0, 1.0);
    let mut cases = Vec::new();
    for (n, &noise) in noises.iter().enumerate() {
        for (j, q) in online.iter().enumerate() {
            cases.push((q, noise, 3000 + 10 * n as u64 + j as u64));
        }
    }
    fn online_case<H: Harness>(
        (q, noise, seed): (&OnlineLoss, Noise, u64),
        w: &[f64],
        steps: u64,
    ) -> Vec<Row> {
        online_rows::<H>(q, w, noise, steps, seed, Variant::Correct).expect("valid")
    }
    let reference: Vec<Vec<Row>> = cases
        .iter()
        .map(|&c| online_case::<RefHarness>(c, &w, STEPS))
        .collect();
    rows.extend(reference.iter().flatten().cloned());
    rows.extend(detection_rows(DRAWS / 4));
    push_cpu_cases(
        &mut rows,
        NAME,
        &reference,
        &CPU_ONLINE,
        |i| online_case::<CpuHarness>(cases[i], &w, STEPS),
        "the Eq. 7–8 reference rows above with the same loss and noise",
    );
    rows
}

/// Which of the report's four online (Eq. 7–8) cases — quadratic and
/// cosine loss under uniform, then Gaussian noise — also run on the CPU
/// backend: the quadratic under uniform noise and the cosine under
/// Gaussian noise, so both losses and both noises are covered. Each of the
/// 40 000 tiny steps costs the CPU backend a few thread hand-offs (about
/// 0.8 s per case).
pub const CPU_ONLINE: [usize; 2] = [0, 3];

/// One row per broken variant, each showing the check rejects it by at
/// least [`DETECT_Z`] standard errors (fixed inputs; the expected gaps are
/// in the tests).
pub fn detection_rows(draws: usize) -> Vec<Row> {
    let quad = TestFn::Quadratic {
        h: vec![1.0, 2.0, 3.0],
        c: vec![0.2, -0.1, 0.4],
    };
    let w = [0.2, -0.1, 0.4];
    let uniform = Noise::Uniform { a: 0.5 };
    let mut g = vec![0.0; 3];
    let mut rows = Vec::new();
    for (variant, what) in [
        (Variant::OneSided, "gradient"),
        (Variant::HalfScale, "value"),
    ] {
        let s = sample_copies(&quad, &w, uniform, draws, 77, variant).expect("valid settings");
        let c = quad.smoothed(uniform, &w, &mut g);
        let z = if what == "value" {
            s.value_z(c)
        } else {
            s.grad_z(&g)
        };
        rows.push(Row::at_least(
            NAME,
            format!("broken noise detected by the {what} comparison (standard errors)"),
            "Eq. 6",
            format!(
                "quadratic h=(1,2,3) at w=c, {}, N={draws}{}",
                noise_label(uniform),
                variant_label(variant)
            ),
            z,
            DETECT_Z,
        ));
    }
    rows
}
