//! 5. De-noising, the point of Table III.
//!
//! With the noise taken out, SGD converges to the minimiser of the smoothed
//! loss `C̄`; without it, it does not.
//!
//! # Function
//!
//! A separable quartic in `m = 64` coordinates:
//!
//! ```text
//! C(w) = Σ_i (w_i⁴/4 − β w_i)                         argmin C  = β^{1/3}
//! C̄(w) = E C(w + θ), θ ~ U(−a, a)^m
//! ∂_i C̄ = E (w_i + θ_i)³ − β = w_i³ + a² w_i − β      (E θ = 0, E θ² = a²/3, E θ³ = 0)
//! argmin C̄ = the real root of w³ + a² w − β = 0 (increasing in w, so unique):
//!          = ∛(β/2 + √(β²/4 + a⁶/27)) + ∛(β/2 − √(β²/4 + a⁶/27))     (Cardano)
//! ```
//!
//! At `β = 1`: `argmin C = 1`, `argmin C̄ = 0.9169` (a = 0.5), `0.6823` (a = 1).
//!
//! # What is computed
//!
//! SGD (constant lr `η = 10⁻³`, no momentum) through
//! [`SmoothOut::step_sgd`] on a [`Harness`]'s backend (the report runs
//! every row on the core reference, and its de-noised rows again on the CPU
//! backend, asserting that both measure the same bits), from `w = argmin C`
//! in every coordinate: a burn-in of `10τ` steps (the start's offset decays
//! by `e⁻¹⁰`), then a window of `12τ` steps whose iterates are averaged
//! (Polyak averaging), with `τ = 1/(η C̄''(w*))` the relaxation time of the
//! linearised iteration (`C̄'' = 3w*² + a²`, τ ≈ 400 steps).
//!
//! *Standard error: batch means over independent batches.* Successive
//! iterates are strongly correlated: the linearised iteration is AR(1) with
//! coefficient `1 − 1/τ`, so the integrated autocorrelation time is about
//! `2τ` ≈ 800 steps and the i.i.d. formula `sd/√N` underestimates the SE by
//! about `√(2τ)` ≈ 28 (the row prints both). Batch means fix this by
//! averaging over batches much longer than the correlation time, but
//! neighbouring time batches stay correlated, and a first version of this
//! check with 20 batches of `5τ` gave z-scores with standard deviation
//! 1.2–1.4 over 30 seeds instead of 1. Here the batches are the 64
//! coordinates instead: the function is separable and each element has its
//! own noise draw, so each coordinate's whole window is an *exactly*
//! independent, identically distributed batch. The estimate is the mean of
//! the 64 batch means, its SE `sd(batch means)/√64` (63 degrees of freedom).
//!
//! *Constant-step bias.* With constant `η` the stationary mean of SGD is not
//! exactly `w*`: expanding `E ∂C̄(w) = 0` to second order gives
//! `E w − w* ≈ −η σ_g² C̄'''/(4 C̄''²)`, with `σ_g² = Var((w* + θ)³) =
//! 3w*⁴a² + 2w*²a⁴ + a⁶/7` and `C̄''' = 6w*`. [`Setting::bias_ratio`] divides
//! it by the predicted SE `σ_g/(C̄''√(mT))` (the asymptotic variance of
//! averaged SGD); it is 0.31 at `a = 1` and 0.21 at `a = 0.5`, so the 5 SE
//! bound keeps more than 4.5 SE for sampling noise. (A decaying step would
//! remove the bias but make late iterates correlated over ever longer
//! times.)
//!
//! *Without de-noising* (`Denoise::Off`, the ablation of Table III) the
//! noise accumulates: `w_{t+1} = w_t + θ_t − η∇C(w_t + θ_t)`, a random walk
//! held only by the gradient. At `η = 10⁻³` the iterates spread with a
//! standard deviation of 2–3 (against 0.02 with de-noising) around a mean
//! near 0.1: the stationary condition `E[w³ + a²w] = β` over that wide
//! spread is met by a mean near `β/(3 Var w)`. Such a run converges in
//! distribution, not to a point; its mean is estimated the same way over a
//! `120τ` window (same `a`, `η` and start), and the row reports whether it
//! stayed finite (then how many of its own SE the mean misses `w*` by) or
//! diverged.
//!
//! # Broken variants
//!
//! [`Variant::Off`] (the library's `Denoise::Off` while a de-noised run is
//! claimed) and [`Variant::WrongDraw`] (the update is applied, then the
//! draw of ghost batch 1 is subtracted instead of ghost 0's, through the
//! backend's own `denoise`) both leave a random walk in `w`; the tests show
//! both miss `argmin C̄` by more than [`DETECT_Z`] = 20 of their own SE
//! over the `120τ` window (measured 35–45), by more than the 5 SE bound
//! under the de-noised schedule itself (measured 8–14: their SE is wide),
//! and by 500–1250 of the de-noised run's SE; their iterates spread 110–230
//! times wider.
//! [`Variant::Exact`] (restoring a copy) is a second correct variant and
//! passes.
//!
//! # Tolerances
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | Polyak mean (de-noised) vs `argmin C̄` | ≤ `Z_BOUND` = 5 SE | Monte Carlo over 64 independent replicas (t with 63 df: P(|t| > 5) ≈ 5·10⁻⁶); predicted constant-step bias ≤ 0.31 SE |
//! | predicted constant-step bias | ≤ [`MAX_BIAS_RATIO`] = 0.5 SE | keeps ≥ 4.5 SE of the bound for sampling noise |
//! | `argmin C` vs `argmin C̄` (the check can tell them apart) | ≥ [`DETECT_Z`] = 20 SE | a run that ignored the noise would converge near `argmin C` and fail by at least this |
//! | Polyak mean without de-noising vs `argmin C̄` | ≥ 20 of its own SE, or divergence | the ablation must be clearly off, not marginally |
//! | f32 run | same 5 SE | regenerating de-noise in f32 leaves ~10⁻⁷ per step at random signs, ~10⁻⁵ after 10⁴ steps, ≪ SE ≈ 10⁻³ |
//! | CPU-backend rows vs the reference's | 0 differing bits of the measured values | the CPU backend gives the reference's bits (check 9) and the host computes the same gradient from them |

use smoothout::reference::{ParamNoise, Scale};
use smoothout::{
    Config, Denoise, Draw, Noise, NoiseKey, ParamSpec, PerturbOps, Real, Result, Sgd, SmoothOut,
    Unit,
};

use crate::harness::{agreement_row, CpuHarness, Harness, RefHarness};
use crate::stats::{MeanVar, Z_BOUND};
use crate::Row;

/// Title in the report.
pub const NAME: &str = "5. De-noising (Table III)";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "With the library's de-noising, SGD's averaged late iterates converge to \
the closed-form minimiser of the smoothed loss C̄ (not of C), while without de-noising they \
scatter widely around a mean tens of standard errors away from it.";

/// How many SE a broken run (or `argmin C`) must be off by to count as
/// clearly different: four times the acceptance bound.
pub const DETECT_Z: f64 = 4.0 * Z_BOUND;
/// Largest accepted predicted constant-step bias, in SE.
pub const MAX_BIAS_RATIO: f64 = 0.5;
/// `|w|` beyond which a run counts as diverged.
pub const DIVERGED: f64 = 1e3;

/// The quartic `C(w) = Σ (w_i⁴/4 − β w_i)` under `U(−a, a)` noise, and the
/// SGD schedule used on it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setting {
    /// Noise strength.
    pub a: f64,
    /// Linear coefficient β > 0.
    pub beta: f64,
    /// Number of coordinates (independent replicas).
    pub m: usize,
    /// Learning rate η.
    pub lr: f64,
    /// Burn-in steps.
    pub burn: u64,
    /// Steps averaged after the burn-in.
    pub window: u64,
}

impl Setting {
    /// `m = 64`, `η = 10⁻³`, burn-in `10τ`, window `12τ`.
    #[must_use]
    pub fn new(a: f64, beta: f64) -> Self {
        let mut s = Setting {
            a,
            beta,
            m: 64,
            lr: 1e-3,
            burn: 0,
            window: 0,
        };
        let tau = s.tau();
        s.burn = (10.0 * tau).ceil() as u64;
        s.window = (12.0 * tau).ceil() as u64;
        s
    }

    /// The same with a ten times longer window (`120τ`), for runs without
    /// de-noising: their iterates spread a hundred times wider, so their
    /// mean needs more steps to be pinned down.
    #[must_use]
    pub fn ablation(mut self) -> Self {
        self.window *= 10;
        self
    }

    /// `argmin C = β^{1/3}`.
    #[must_use]
    pub fn argmin_loss(&self) -> f64 {
        self.beta.cbrt()
    }

    /// `argmin C̄`: the real root of `w³ + a²w − β` by Cardano's formula,
    /// polished by two Newton steps (for small `a` the formula's second
    /// cube root cancels catastrophically; `f' = 3w² + a² > 0` makes Newton
    /// safe and brings the root to rounding accuracy).
    #[must_use]
    pub fn argmin_smoothed(&self) -> f64 {
        let (p, q) = (self.a * self.a, -self.beta);
        let s = (q * q / 4.0 + p * p * p / 27.0).sqrt();
        let mut w = (-q / 2.0 + s).cbrt() + (-q / 2.0 - s).cbrt();
        for _ in 0..2 {
            w -= self.smoothed_slope(w) / (3.0 * w * w + p);
        }
        w
    }

    /// `∂C̄/∂w_i = w³ + a²w − β`.
    #[must_use]
    pub fn smoothed_slope(&self, w: f64) -> f64 {
        w * w * w + self.a * self.a * w - self.beta
    }

    /// `C̄'' = 3w*² + a²` at `w* = argmin C̄`.
    #[must_use]
    pub fn curvature(&self) -> f64 {
        let w = self.argmin_smoothed();
        3.0 * w * w + self.a * self.a
    }

    /// The relaxation time `τ = 1/(η C̄'')` in steps.
    #[must_use]
    pub fn tau(&self) -> f64 {
        1.0 / (self.lr * self.curvature())
    }

    /// `σ_g² = Var((w* + θ)³) = 3w*⁴a² + 2w*²a⁴ + a⁶/7`.
    #[must_use]
    pub fn gradient_variance(&self) -> f64 {
        let (w2, a2) = (self.argmin_smoothed().powi(2), self.a * self.a);
        3.0 * w2 * w2 * a2 + 2.0 * w2 * a2 * a2 + a2 * a2 * a2 / 7.0
    }

    /// The predicted SE of the Polyak mean, `σ_g / (C̄'' √(m T))`.
    #[must_use]
    pub fn predicted_se(&self) -> f64 {
        let n = self.m as f64 * self.window as f64;
        self.gradient_variance().sqrt() / (self.curvature() * n.sqrt())
    }

    /// The magnitude of the predicted constant-step bias,
    /// `η σ_g² C̄''' / (4 C̄''²)`, over [`Setting::predicted_se`].
    #[must_use]
    pub fn bias_ratio(&self) -> f64 {
        let c2 = self.curvature();
        let c3 = 6.0 * self.argmin_smoothed();
        let bias = self.lr * self.gradient_variance() * c3 / (4.0 * c2 * c2);
        bias / self.predicted_se()
    }
}

/// How the noise is taken out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `Denoise::Regenerate` (the library's default).
    Regenerate,
    /// `Denoise::Exact` (restore a copy).
    Exact,
    /// Broken: `Denoise::Off` while a de-noised run is claimed.
    Off,
    /// Broken: the update is applied at the perturbed point, then the draw
    /// of ghost batch 1 (not 0, which was added) is subtracted.
    WrongDraw,
}

/// What a run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Polyak mean of the late iterates (all coordinates).
    pub mean: f64,
    /// Standard error of `mean` from the spread of the `m` replicas' means.
    pub se: f64,
    /// The i.i.d. standard error `sd/√N` over all late iterates, for
    /// comparison (too small: the iterates are correlated).
    pub naive_se: f64,
    /// The standard deviation of the late iterates.
    pub spread: f64,
    /// `argmin C̄`.
    pub target: f64,
    /// The step at which `|w|` passed [`DIVERGED`] or became non-finite.
    pub diverged_at: Option<u64>,
}

impl Outcome {
    /// `|mean − argmin C̄| / SE` (infinite for a diverged run).
    #[must_use]
    pub fn z(&self) -> f64 {
        if self.diverged_at.is_some() {
            f64::INFINITY
        } else {
            self.z_from(self.target)
        }
    }

    /// `|mean − x| / SE`.
    #[must_use]
    pub fn z_from(&self, x: f64) -> f64 {
        (self.mean - x).abs() / self.se
    }
}

/// One SGD run of `setting` with `variant` in precision `T` on `H`'s
/// backend, noise seed `seed`. The gradient is computed on the host from
/// the downloaded perturbed parameters and uploaded into the gradient
/// buffer; the iterates are downloaded after every step.
pub fn run<H: Harness, T: Real>(setting: &Setting, variant: Variant, seed: u64) -> Result<Outcome> {
    let backend = H::backend::<T>();
    let denoise = match variant {
        Variant::Regenerate => Denoise::Regenerate,
        Variant::Exact => Denoise::Exact,
        Variant::Off | Variant::WrongDraw => Denoise::Off,
    };
    let config = Config::new(Noise::uniform(setting.a)?)
        .with_denoise(denoise)
        .with_seed(seed);
    let m = setting.m;
    let mut so = SmoothOut::new(&backend, config, vec![ParamSpec::weight("w", [m])])?;
    let start = T::from_f64(setting.argmin_loss());
    let mut w = vec![H::upload(&backend, vec![start; m])?];
    let mut g = vec![H::upload(&backend, vec![T::zero(); m])?];
    let mut v = vec![H::upload(&backend, vec![T::zero(); m])?];
    let mut grad = vec![T::zero(); m];
    let sgd = Sgd::new(setting.lr, 0.0, 0.0)?;
    let beta = T::from_f64(setting.beta);
    let mut coords = vec![MeanVar::default(); m];
    let mut all = MeanVar::default();
    let mut diverged_at = None;
    for step in 0..setting.burn + setting.window {
        let draw = Draw::new(step, 0);
        so.step_sgd(&backend, &mut w, &mut g, &mut v, &sgd, draw, |p, g| {
            let p = H::download(&backend, &p[0])?;
            for (g, &x) in grad.iter_mut().zip(&p) {
                *g = x * x * x - beta; // ∇C at the perturbed point
            }
            H::write(&backend, &grad, &mut g[0])
        })?;
        if variant == Variant::WrongDraw {
            let wrong = ParamNoise {
                key: NoiseKey::for_draw(seed, step, 1, 0),
                unit: Unit::Uniform,
                scale: Scale::Fixed(T::from_f64(setting.a)),
            };
            backend.denoise(&mut w[0], &wrong)?;
        }
        let w = H::download(&backend, &w[0])?;
        if w.iter().any(|x| {
            let x = Real::to_f64(*x);
            !x.is_finite() || x.abs() > DIVERGED
        }) {
            diverged_at = Some(step);
            break;
        }
        if step >= setting.burn {
            for (c, x) in coords.iter_mut().zip(&w) {
                c.push(Real::to_f64(*x));
                all.push(Real::to_f64(*x));
            }
        }
    }
    let mut replicas = MeanVar::default();
    for c in &coords {
        replicas.push(c.mean());
    }
    Ok(Outcome {
        mean: replicas.mean(),
        se: replicas.std_error(),
        naive_se: all.std_error(),
        spread: all.variance().sqrt(),
        target: setting.argmin_smoothed(),
        diverged_at,
    })
}

/// The strengths reported.
pub const REPORT_A: [f64; 2] = [0.5, 1.0];
/// β in the report.
pub const REPORT_BETA: f64 = 1.0;
/// The report seed.
pub const REPORT_SEED: u64 = 5;

/// The claim of the rows without de-noising.
const ABLATION: &str =
    "without de-noising (Denoise::Off, same a): distance of its Polyak mean from argmin C̄, in its SE";

/// The report rows: every row on the reference; the de-noised rows again
/// on the CPU backend (the ablation's long windows, about 10⁵ steps, are
/// left to the reference: on two threads each tiny step costs a few thread
/// hand-offs); and the row asserting that the CPU rows measured the
/// reference's bits.
pub fn rows() -> Vec<Row> {
    let mut rows = rows_on::<RefHarness>(true);
    let cpu = rows_on::<CpuHarness>(false);
    let reference: Vec<Row> = rows
        .iter()
        .filter(|r| r.claim != ABLATION)
        .cloned()
        .collect();
    let agree = agreement_row(
        NAME,
        CpuHarness::NAME,
        &reference,
        &cpu,
        "the de-noised reference rows above",
    );
    rows.extend(cpu);
    rows.push(agree);
    rows
}

/// The report rows on `H`'s backend, with the ablation (`Denoise::Off`)
/// rows when `ablation` (see [`Harness::tag`] for the setting).
pub fn rows_on<H: Harness>(ablation: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    for a in REPORT_A {
        if let Err(e) = rows_at::<H>(a, ablation, &mut rows) {
            rows.push(Row::at_most(
                NAME,
                "the runs completed",
                "Alg. 1",
                format!("a = {a}: error {e}{}", H::tag()),
                f64::NAN,
                Z_BOUND,
            ));
        }
    }
    rows
}

fn rows_at<H: Harness>(a: f64, ablation: bool, rows: &mut Vec<Row>) -> Result<()> {
    let s = Setting::new(a, REPORT_BETA);
    let base = format!(
        "C = Σ w⁴/4 − w, m = {}, a = {a}, η = {}, argmin C̄ = {:.4}, argmin C = 1",
        s.m,
        s.lr,
        s.argmin_smoothed()
    );
    let tag = H::tag();
    let de64 = run::<H, f64>(&s, Variant::Regenerate, REPORT_SEED)?;
    let de32 = run::<H, f32>(&s, Variant::Regenerate, REPORT_SEED)?;
    for (label, out) in [("f64", de64), ("f32", de32)] {
        rows.push(Row::at_most(
            NAME,
            format!(
                "de-noised ({label}, Regenerate): distance of the Polyak mean from argmin C̄, in SE"
            ),
            "Alg. 1, Eq. 11",
            format!(
                "{base}; {} + {} steps; mean {:.5}, SE {:.2e} (i.i.d. SE {:.1e}), \
                 predicted bias {:.2} SE{tag}",
                s.burn,
                s.window,
                out.mean,
                out.se,
                out.naive_se,
                s.bias_ratio()
            ),
            out.z(),
            Z_BOUND,
        ));
        if label == "f64" {
            rows.push(Row::at_least(
                NAME,
                "the check separates C̄ from C: distance of the same mean from argmin C, in SE",
                "Eq. 1",
                format!("{base}{tag}"),
                out.z_from(s.argmin_loss()),
                DETECT_Z,
            ));
        }
    }
    if !ablation {
        return Ok(());
    }
    let long = s.ablation();
    let off = run::<H, f64>(&long, Variant::Off, REPORT_SEED)?;
    let what = match off.diverged_at {
        Some(t) => format!("diverged (|w| > {DIVERGED:e}) at step {t}"),
        None => format!(
            "stays finite, biased: mean {:.3} ± {:.3}, spread (sd) {:.2} vs {:.3} de-noised",
            off.mean, off.se, off.spread, de64.spread
        ),
    };
    rows.push(Row::at_least(
        NAME,
        ABLATION,
        "Table III",
        format!("{base}; {} + {} steps; {what}{tag}", long.burn, long.window),
        off.z(),
        DETECT_Z,
    ));
    Ok(())
}
