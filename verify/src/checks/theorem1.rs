//! Check 2, Theorem 1 (flat constraint): if `C` is symmetric about `w_f` on the
//! box `D(w_f, τ)` with `τ > a`, the smoothed loss under U(−a, a) noise has
//! `∇C̄(w_f) = 0`, so its minimum stays at `w_f` (φ = 0).
//!
//! # What is computed
//!
//! *Separable losses, by quadrature, m = 1 … 1000.* `C(w) = Σ_i g_i(w_i − w_{f,i})`
//! with profiles ([`Profile`])
//!
//! ```text
//! g(t) = Σ_{k=1}^{d} c_k t^{2k} + A (1 − cos bt)            even: the flat bowl
//!      + R (t − τ)³ for t > τ,  + L (−t − τ)³ for t < −τ    outside the box: asymmetric when R ≠ L
//!      + β t³                                              the asymmetric counterexample (β = 0 otherwise)
//! ∂C̄/∂w_i (w_f) = E g_i'(θ_i) = (1/2a) ∫_{−a}^{a} g_i'(t) dt
//! ```
//!
//! The integral is computed numerically from `g'`, never from the closed
//! form `(g(a) − g(−a))/2a`: the negative half `[−a, 0]` with the
//! 12-point and the positive half `[0, a]` with the 13-point Gauss–Legendre
//! rule (pieces split again at `±τ` when `τ < a`, so each piece is smooth).
//! The halves use different rules on purpose: a symmetric rule would cancel
//! an odd integrand by construction, whatever the theorem says.
//!
//! *A non-separable loss, by Monte Carlo through the library's noise,
//! m = 1 … 100.* ([`Bowl`])
//!
//! ```text
//! C(w_f + d) = ln(1 + dᵀAd) + cos(bᵀd) + Σ_i [R_i relu(d_i − τ)³ + L_i relu(−d_i − τ)³] + β Σ_i d_i³
//! ```
//!
//! with `A` positive semi-definite and dense: centrally symmetric on the box
//! when β = 0, so each `∂_i C(w_f + θ)` is odd in θ and averages to 0. The
//! mean of `∇C(w_f + θ_i)` over the copies of an [`Objective`] is compared
//! with 0, component by component, in standard errors.
//!
//! # Counterexamples ([`Variant`])
//!
//! The check must see a gradient when the hypothesis fails:
//!
//! ```text
//! OddTerm { β }       g gets + β t³ everywhere:          ∂C̄/∂w_i (w_f) = β a²
//! NarrowTau { τ < a } symmetric only inside τ:            ∂C̄/∂w_i (w_f) = (R_i − L_i)(a − τ)³ / (2a)
//! ```
//!
//! Both are reported as rows whose claim is "detected": the measured
//! gradient is at least [`DETECT_FACTOR`] times the quadrature error bound,
//! or at least [`DETECT_Z`] standard errors for Monte Carlo.
//!
//! # Tolerances
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | quadrature of `(1/2a)∫ g'` vs 0 | `E_disc + E_round` (below), computed per coordinate | quadrature: stated error of the rule, plus first-order rounding |
//! | the row over m coordinates | the coordinate with the largest ratio of gradient to its bound, with that bound | each coordinate must pass its own bound |
//! | quadrature vs closed form `(g(a) − g(−a))/2a` (counterexamples only) | quadrature bound + `(2d + 10) ε (G(a) + G(−a))/(2a)` | validates the quadrature where the answer is not 0; `G` sums the absolute values of the terms of `g`, `2d + 10` counts the roundings of evaluating, subtracting and dividing |
//! | Monte Carlo `mean ∂_i C(w_f + θ)` vs 0 | 5 SE per component, SE from the sample variance | as in check 1; ≈ 6·10⁻⁷ false alarms per comparison |
//! | counterexample detected (quadrature) | `≥ DETECT_FACTOR` = 10³ × the error bound | a zero gradient cannot reach it |
//! | counterexample detected (Monte Carlo) | `≥ DETECT_Z` = 20 SE (largest component) | four times the acceptance bound: a zero-mean estimate reaches it with probability < 10⁻⁸⁰ |
//!
//! The quadrature bound, per coordinate, with `n` points per piece (12 or
//! 13), pieces of length `L`, midpoints `mid` and half-lengths `h`, nodes
//! `x_k = mid + h ξ_k` and weights `h ω_k`:
//!
//! ```text
//! E_disc  = (1/2a) Σ_pieces L^{2n+1} (n!)⁴ / ((2n+1) ((2n)!)³) · A b^{2n+1}
//! E_round = (ε/2a) Σ_k h ω_k [ (n_tot + pieces + 2d + 10 + 32) · G1(x_k) + 4 (abs(mid) + h) · G2(x_k) ]
//! ```
//!
//! `E_disc` is the Gauss–Legendre remainder `L^{2n+1}(n!)⁴/((2n+1)((2n)!)³) · f^{(2n)}(ξ)`:
//! an n-point rule is exact for polynomials of degree ≤ 2n − 1, and the
//! polynomial part of `g'` has degree ≤ 2·[`MAX_DEGREE`] − 1 = 11 < 23, so
//! only `A b sin(bt)` contributes, with `|f^{(2n)}| ≤ A b^{2n+1}` (below
//! 10⁻²⁰ for the `b ≤ 4`, `L ≤ 1` used here). `E_round` is first order in
//! ε = 2⁻⁵³: `G1` and `G2` sum the absolute values of the terms of `g'` and
//! `g''`; the factor on `G1` counts the summation of the `n_tot` products
//! and the pieces, the evaluation of `g'` (≤ 2d + 6 roundings per term) and
//! [`WEIGHT_ERROR`] = 32 for the weights `ω_k`; the `G2` term covers nodes
//! off by up to 4 ulps of the piece (`ξ_k`, then `mid + h ξ_k`). Measured
//! once against 50-digit Newton iterations on the Legendre recurrence, the
//! 12- and 13-point rules of [`crate::quad::gauss_legendre`] have nodes
//! within 0.3 ulp of 1 and weights within 22 · 2⁻⁵³ relative (the weights
//! inherit the error of `P_n'` at the node), inside these allowances.

use smoothout::{Noise, NoiseKey, Objective};

use crate::checks::unbiased::uniform_inputs;
use crate::quad::gauss_legendre;
use crate::stats::{max_z, MeanVar, Z_BOUND};
use crate::Row;

/// Title in the report.
pub const NAME: &str = "2. Theorem 1: flat constraint";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "For losses symmetric about w_f on a box wider than the noise, the \
smoothed gradient at w_f vanishes to quadrature accuracy (m up to 1000) and to Monte Carlo \
accuracy through the library's noise (m up to 100), while an odd term or a box narrower than \
a gives a gradient far outside those errors.";

/// Points of the rule on the negative half `[−a, 0]` (and its pieces).
pub const N_NEG: usize = 12;
/// Points of the rule on the positive half `[0, a]` (and its pieces).
pub const N_POS: usize = 13;
/// Relative error of the rule's weights allowed by the rounding bound, in
/// units of ε = 2⁻⁵³ (measured: ≤ 22 for the 12- and 13-point rules).
pub const WEIGHT_ERROR: usize = 32;
/// Largest power `t^{2d}` in a profile's even polynomial.
pub const MAX_DEGREE: usize = 6;
/// A counterexample counts as detected (quadrature) when its gradient is at
/// least this many times the error bound.
pub const DETECT_FACTOR: f64 = 1e3;
/// A counterexample counts as detected (Monte Carlo) at this many standard
/// errors.
pub const DETECT_Z: f64 = 4.0 * Z_BOUND;

const EPS: f64 = f64::EPSILON / 2.0;

/// Which loss is checked: one satisfying the theorem, or a counterexample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Variant {
    /// As given (the tests take `τ > a`): the theorem applies.
    Symmetric,
    /// `+ β t³` in every coordinate: asymmetric everywhere.
    OddTerm {
        /// β.
        beta: f64,
    },
    /// The box shrunk to `τ < a`: symmetric only inside it.
    NarrowTau {
        /// The new τ.
        tau: f64,
    },
}

impl Variant {
    fn label(self) -> String {
        match self {
            Variant::Symmetric => String::new(),
            Variant::OddTerm { beta } => format!(", + {beta}·t³ (counterexample)"),
            Variant::NarrowTau { tau } => format!(", τ = {tau} < a (counterexample)"),
        }
    }

    /// Changes a loss's odd coefficient β or its box half-width τ as the
    /// variant says (a [`Profile`]'s or a [`Bowl`]'s).
    fn apply(self, odd: &mut f64, tau: &mut f64) {
        match self {
            Variant::Symmetric => {}
            Variant::OddTerm { beta } => *odd = beta,
            Variant::NarrowTau { tau: t } => *tau = t,
        }
    }
}

/// One coordinate's profile `g` (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// `c_1 … c_d` of `Σ c_k t^{2k}`, `d ≤` [`MAX_DEGREE`].
    pub even: Vec<f64>,
    /// `A` of `A (1 − cos bt)`.
    pub cos_amp: f64,
    /// `b` of `A (1 − cos bt)`.
    pub cos_freq: f64,
    /// Half-width τ of the symmetric box.
    pub tau: f64,
    /// `R`: `+ R (t − τ)³` for `t > τ`.
    pub right: f64,
    /// `L`: `+ L (−t − τ)³` for `t < −τ`.
    pub left: f64,
    /// β: `+ β t³` everywhere.
    pub odd: f64,
}

impl Profile {
    /// The profile as the variant changes it.
    #[must_use]
    pub fn with(&self, variant: Variant) -> Profile {
        let mut p = self.clone();
        variant.apply(&mut p.odd, &mut p.tau);
        p
    }

    /// `g(t)` and the sum of its terms' absolute values.
    #[must_use]
    pub fn g(&self, t: f64) -> (f64, f64) {
        let mut terms = Vec::with_capacity(self.even.len() + 4);
        for (k, c) in self.even.iter().enumerate() {
            terms.push(c * t.powi(2 * (k as i32 + 1)));
        }
        terms.push(self.cos_amp * (1.0 - (self.cos_freq * t).cos()));
        terms.push(self.odd * t.powi(3));
        if t > self.tau {
            terms.push(self.right * (t - self.tau).powi(3));
        }
        if t < -self.tau {
            terms.push(self.left * (-t - self.tau).powi(3));
        }
        (terms.iter().sum(), terms.iter().map(|x| x.abs()).sum())
    }

    /// `g'(t)`, the sum of its terms' absolute values, and the same sum for
    /// `g''(t)`.
    #[must_use]
    pub fn dg(&self, t: f64) -> (f64, f64, f64) {
        let (mut d1, mut a1, mut a2) = (0.0, 0.0, 0.0);
        let mut add = |v: f64, second: f64| {
            d1 += v;
            a1 += v.abs();
            a2 += second.abs();
        };
        for (k, c) in self.even.iter().enumerate() {
            let p = 2.0 * (k as f64 + 1.0);
            add(
                p * c * t.powi(2 * k as i32 + 1),
                p * (p - 1.0) * c * t.powi(2 * k as i32),
            );
        }
        let (s, co) = (self.cos_freq * t).sin_cos();
        add(
            self.cos_amp * self.cos_freq * s,
            self.cos_amp * self.cos_freq * self.cos_freq * co,
        );
        add(3.0 * self.odd * t * t, 6.0 * self.odd * t);
        if t > self.tau {
            let x = t - self.tau;
            add(3.0 * self.right * x * x, 6.0 * self.right * x);
        }
        if t < -self.tau {
            let x = -t - self.tau;
            add(-3.0 * self.left * x * x, 6.0 * self.left * x);
        }
        (d1, a1, a2)
    }
}

/// A number with its error bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounded {
    /// The computed value.
    pub value: f64,
    /// A bound on its error.
    pub bound: f64,
}

/// `(n!)⁴ / ((2n + 1) ((2n)!)³)`, the Gauss–Legendre remainder constant.
fn gl_constant(n: usize) -> f64 {
    let fact = |k: usize| (1..=k).map(|i| i as f64).product::<f64>();
    fact(n).powi(4) / ((2 * n + 1) as f64 * fact(2 * n).powi(3))
}

/// `∂C̄/∂w_i` at `w_f` for one profile under U(−a, a):
/// `(1/2a) ∫_{−a}^{a} g'(t) dt` by Gauss–Legendre quadrature of `g'`
/// (12 points per piece left of 0, 13 right of it, pieces split at `±τ`
/// when `τ < a`), with its error bound (module docs, Tolerances).
#[must_use]
pub fn smoothed_partial(g: &Profile, a: f64) -> Bounded {
    let mut cuts = vec![-a, 0.0, a];
    if g.tau < a {
        cuts.extend([-g.tau, g.tau]);
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let (neg, pos) = (gauss_legendre(N_NEG), gauss_legendre(N_POS));
    let pieces = cuts.len() - 1;
    let n_total: usize = cuts
        .windows(2)
        .map(|c| if c[1] <= 0.0 { N_NEG } else { N_POS })
        .sum();
    let k_eval = (n_total + pieces + 2 * g.even.len() + 10 + WEIGHT_ERROR) as f64;
    let (mut sum, mut err_round, mut err_disc) = (0.0, 0.0, 0.0);
    for c in cuts.windows(2) {
        let (lo, hi) = (c[0], c[1]);
        let (mid, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
        let (rule, n) = if hi <= 0.0 {
            (&neg, N_NEG)
        } else {
            (&pos, N_POS)
        };
        let mut piece = 0.0;
        for &(x, w) in rule {
            let t = mid + half * x;
            let (d1, a1, a2) = g.dg(t);
            piece += w * d1;
            err_round += half * w * (k_eval * a1 + 4.0 * (mid.abs() + half) * a2);
        }
        sum += half * piece;
        let len = hi - lo;
        err_disc += gl_constant(n)
            * len.powi(2 * n as i32 + 1)
            * g.cos_amp.abs()
            * g.cos_freq.abs().powi(2 * n as i32 + 1);
    }
    let scale = 1.0 / (2.0 * a);
    Bounded {
        value: sum * scale,
        bound: (EPS * err_round + err_disc) * scale,
    }
}

/// The closed form `(g(a) − g(−a)) / 2a`, with its rounding bound (used only
/// to validate the quadrature on the counterexamples).
#[must_use]
pub fn closed_form_partial(g: &Profile, a: f64) -> Bounded {
    let ((gp, ap), (gm, am)) = (g.g(a), g.g(-a));
    Bounded {
        value: (gp - gm) / (2.0 * a),
        bound: (2 * g.even.len() + 10) as f64 * EPS * (ap + am) / (2.0 * a),
    }
}

/// The pair whose `measured / bound` is larger.
fn worse(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let ratio = |(m, b): (f64, f64)| if m == 0.0 { 0.0 } else { m / b };
    if ratio(b) > ratio(a) {
        b
    } else {
        a
    }
}

/// `∇C̄(w_f) = 0` for the separable loss of `profiles` (after `variant`):
/// the coordinate with the largest `|∂_i| / bound_i`, against its bound.
#[must_use]
pub fn flat_row(profiles: &[Profile], a: f64, variant: Variant) -> Row {
    let worst = profiles
        .iter()
        .map(|p| smoothed_partial(&p.with(variant), a))
        .fold((0.0, 0.0), |w, q| worse(w, (q.value.abs(), q.bound)));
    Row::at_most(
        NAME,
        "∇C̄(w_f) = 0: separable C, quadrature of g' (worst coordinate)",
        "Thm. 1",
        format!(
            "m={}, a={a}, τ_min={:.3}, GL {N_NEG}/{N_POS} points{}",
            profiles.len(),
            min_tau(profiles, variant),
            variant.label()
        ),
        worst.0,
        worst.1,
    )
}

fn min_tau(profiles: &[Profile], variant: Variant) -> f64 {
    profiles
        .iter()
        .map(|p| p.with(variant).tau)
        .fold(f64::INFINITY, f64::min)
}

/// A counterexample is detected: the coordinate with the smallest
/// `|∂_i| / bound_i` still has `|∂_i| ≥ DETECT_FACTOR · bound_i`.
#[must_use]
pub fn detected_row(profiles: &[Profile], a: f64, variant: Variant) -> Row {
    let (m, b) = profiles
        .iter()
        .map(|p| smoothed_partial(&p.with(variant), a))
        .map(|q| (q.value.abs(), DETECT_FACTOR * q.bound))
        .min_by(|x, y| (x.0 / x.1).total_cmp(&(y.0 / y.1)))
        .unwrap_or((0.0, 0.0));
    Row::at_least(
        NAME,
        "nonzero ∇C̄(w_f) detected: separable C, quadrature (weakest coordinate)",
        "Thm. 1",
        format!("m={}, a={a}{}", profiles.len(), variant.label()),
        m,
        b,
    )
}

/// The quadrature agrees with the closed form `(g(a) − g(−a))/2a` on every
/// coordinate (worst coordinate against its bound).
#[must_use]
pub fn closed_form_row(profiles: &[Profile], a: f64, variant: Variant) -> Row {
    let worst = profiles
        .iter()
        .map(|p| {
            let p = p.with(variant);
            let (q, c) = (smoothed_partial(&p, a), closed_form_partial(&p, a));
            ((q.value - c.value).abs(), q.bound + c.bound)
        })
        .fold((0.0, 0.0), worse);
    Row::at_most(
        NAME,
        "quadrature of g' = (g(a) − g(−a))/2a (worst coordinate)",
        "Thm. 1",
        format!("m={}, a={a}{}", profiles.len(), variant.label()),
        worst.0,
        worst.1,
    )
}

/// `m` profiles with inputs from the library's unit noise of `seed`: even
/// polynomials of degree up to 2·[`MAX_DEGREE`], a cosine bump, `τ` in
/// `(1.05a, 3a]`, and outside slopes `R ∈ [1, 5]`, `L ∈ [−5, −1]` (so
/// `R − L ≥ 2` when the box is narrowed).
#[must_use]
pub fn report_profiles(m: usize, a: f64, seed: u64) -> Vec<Profile> {
    let key = |i: u64| NoiseKey::from_seed(seed).fold_in(i);
    let u = |i, lo, hi| uniform_inputs(key(i), m, lo, hi);
    let (deg, amp, freq, tau, right, left) = (
        u(0, 1.0, MAX_DEGREE as f64 + 0.999),
        u(1, 0.0, 1.0),
        u(2, 0.5, 4.0),
        u(3, 1.05 * a, 3.0 * a),
        u(4, 1.0, 5.0),
        u(5, -5.0, -1.0),
    );
    let coef = uniform_inputs(key(6), m * MAX_DEGREE, 0.0, 2.0);
    (0..m)
        .map(|i| Profile {
            even: coef[i * MAX_DEGREE..i * MAX_DEGREE + deg[i] as usize].to_vec(),
            cos_amp: amp[i],
            cos_freq: freq[i],
            tau: tau[i],
            right: right[i],
            left: left[i],
            odd: 0.0,
        })
        .collect()
}

/// The non-separable loss of the module docs, about `w_f = 0`:
/// `F(d) = ln(1 + dᵀAd) + cos(bᵀd) + Σ [R_i relu(d_i − τ)³ + L_i relu(−d_i − τ)³] + β Σ d_i³`.
#[derive(Clone, Debug, PartialEq)]
pub struct Bowl {
    /// `A`, `m × m`, row-major, symmetric positive semi-definite.
    pub a_mat: Vec<f64>,
    /// `b`.
    pub b: Vec<f64>,
    /// Half-width τ of the symmetric box.
    pub tau: f64,
    /// `R_i`.
    pub right: Vec<f64>,
    /// `L_i`.
    pub left: Vec<f64>,
    /// β.
    pub odd: f64,
}

impl Bowl {
    /// Number of coordinates.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.b.len()
    }

    /// A bowl with `A = BᵀB/m` for `B` with entries in `[−1, 1]`; all inputs
    /// from the library's unit noise of `seed`. `R ∈ [1, 5]`, `L ∈ [−5, −1]`.
    #[must_use]
    pub fn from_seed(m: usize, tau: f64, seed: u64) -> Bowl {
        let key = |i: u64| NoiseKey::from_seed(seed).fold_in(i);
        let bm = uniform_inputs(key(0), m * m, -1.0, 1.0);
        Bowl {
            a_mat: gram(&bm, m),
            b: uniform_inputs(key(1), m, -2.0 / (m as f64).sqrt(), 2.0 / (m as f64).sqrt()),
            tau,
            right: uniform_inputs(key(2), m, 1.0, 5.0),
            left: uniform_inputs(key(3), m, -5.0, -1.0),
            odd: 0.0,
        }
    }

    /// The bowl as the variant changes it.
    #[must_use]
    pub fn with(&self, variant: Variant) -> Bowl {
        let mut b = self.clone();
        variant.apply(&mut b.odd, &mut b.tau);
        b
    }

    /// `∇F(d)` into `g`.
    pub fn grad(&self, d: &[f64], g: &mut [f64]) {
        let m = d.len();
        let mut s = 0.0;
        for i in 0..m {
            let row = &self.a_mat[i * m..(i + 1) * m];
            g[i] = row.iter().zip(d).map(|(a, d)| a * d).sum::<f64>();
            s += d[i] * g[i];
        }
        let bd: f64 = self.b.iter().zip(d).map(|(b, d)| b * d).sum();
        let sin = bd.sin();
        for i in 0..m {
            let mut gi = 2.0 * g[i] / (1.0 + s) - sin * self.b[i] + 3.0 * self.odd * d[i] * d[i];
            if d[i] > self.tau {
                gi += 3.0 * self.right[i] * (d[i] - self.tau).powi(2);
            }
            if d[i] < -self.tau {
                gi -= 3.0 * self.left[i] * (-d[i] - self.tau).powi(2);
            }
            g[i] = gi;
        }
    }

    /// The exact `∇C̄(w_f)` under U(−a, a): 0 when symmetric on the box
    /// (`τ ≥ a`, β = 0); `β a² + (R_i − L_i) relu(a − τ)³/(2a)` in general.
    #[must_use]
    pub fn expected_gradient(&self, a: f64) -> Vec<f64> {
        let out = (a - self.tau).max(0.0).powi(3) / (2.0 * a);
        self.right
            .iter()
            .zip(&self.left)
            .map(|(r, l)| self.odd * a * a + (r - l) * out)
            .collect()
    }
}

/// `BᵀB/m` for a square `m × m` row-major `B`.
#[must_use]
pub fn gram(bm: &[f64], m: usize) -> Vec<f64> {
    let mut a = vec![0.0; m * m];
    for k in 0..m {
        let row = &bm[k * m..(k + 1) * m];
        for i in 0..m {
            for j in 0..m {
                a[i * m + j] += row[i] * row[j] / m as f64;
            }
        }
    }
    a
}

/// Per-component statistics of `∇C(w_f + θ_i)` over the copies of an
/// [`Objective`] (U(−a, a), `draws` copies, `seed`).
pub fn mc_gradient(
    bowl: &Bowl,
    w_f: &[f64],
    a: f64,
    draws: usize,
    seed: u64,
) -> smoothout::Result<Vec<MeanVar>> {
    let m = bowl.dim();
    let obj = Objective::new(Noise::uniform(a)?, draws, seed)?;
    let (mut p, mut d, mut g) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
    let mut out = vec![MeanVar::default(); m];
    for i in 0..draws {
        obj.perturbed(i, w_f, &mut p)?;
        for j in 0..m {
            d[j] = p[j] - w_f[j];
        }
        bowl.grad(&d, &mut g);
        for (o, &gj) in out.iter_mut().zip(&g) {
            o.push(gj);
        }
    }
    Ok(out)
}

/// The two Monte Carlo rows for the non-separable bowl (after `variant`),
/// from one estimate of `∇C̄(w_f)` through the library's noise (see
/// [`mc_gradient`]), as the largest `|mean_i|` in standard errors:
///
/// 1. `∇C̄(w_f) = 0`: at most [`Z_BOUND`] (a symmetric bowl passes);
/// 2. a counterexample is detected: at least [`DETECT_Z`].
pub fn mc_rows(
    bowl: &Bowl,
    w_f: &[f64],
    a: f64,
    draws: usize,
    seed: u64,
    variant: Variant,
) -> smoothout::Result<[Row; 2]> {
    let b = bowl.with(variant);
    let stats = mc_gradient(&b, w_f, a, draws, seed)?;
    let z = max_z(&stats, &vec![0.0; b.dim()]);
    Ok([
        Row::at_most(
            NAME,
            "∇C̄(w_f) = 0: non-separable C, library noise (largest z over components)",
            "Thm. 1",
            format!(
                "m={}, a={a}, τ={}, N={draws}{}",
                b.dim(),
                b.tau,
                variant.label()
            ),
            z,
            Z_BOUND,
        ),
        Row::at_least(
            NAME,
            "nonzero ∇C̄(w_f) detected: non-separable C, library noise (largest z)",
            "Thm. 1",
            format!("m={}, a={a}, N={draws}{}", b.dim(), variant.label()),
            z,
            DETECT_Z,
        ),
    ])
}

/// The report rows.
pub fn rows() -> Vec<Row> {
    const A: f64 = 0.5;
    const DRAWS: usize = 20_000;
    let mut rows = Vec::new();
    for (j, m) in [1usize, 10, 100, 1000].into_iter().enumerate() {
        rows.push(flat_row(
            &report_profiles(m, A, 100 + j as u64),
            A,
            Variant::Symmetric,
        ));
    }
    let profiles = report_profiles(1000, A, 110);
    for v in [
        Variant::OddTerm { beta: 0.5 },
        Variant::NarrowTau { tau: A / 2.0 },
    ] {
        rows.push(detected_row(&profiles, A, v));
        rows.push(closed_form_row(&profiles, A, v));
    }
    for (j, m) in [1usize, 10, 100].into_iter().enumerate() {
        let bowl = Bowl::from_seed(m, 1.5 * A, 200 + j as u64);
        let w_f = uniform_inputs(NoiseKey::from_seed(300 + j as u64), m, -1.0, 1.0);
        let [flat, _] = mc_rows(&bowl, &w_f, A, DRAWS, 400 + j as u64, Variant::Symmetric)
            .expect("valid settings");
        rows.push(flat);
    }
    let bowl = Bowl::from_seed(10, 1.5 * A, 210);
    let w_f = uniform_inputs(NoiseKey::from_seed(310), 10, -1.0, 1.0);
    for (j, v) in [
        Variant::OddTerm { beta: 0.5 },
        Variant::NarrowTau { tau: A / 2.0 },
    ]
    .into_iter()
    .enumerate()
    {
        let [_, detected] = mc_rows(&bowl, &w_f, A, DRAWS, 410 + j as u64, v).expect("valid");
        rows.push(detected);
    }
    rows
}
