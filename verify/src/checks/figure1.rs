//! 4. Figure 1 in practice.
//!
//! SmoothOut SGD leaves a sharp minimum for a flat one of similar depth;
//! plain SGD stays.
//!
//! # Landscape
//!
//! The 1-D loss of `core/examples/landscape.rs`, generalised to `m`
//! dimensions (radial wells, so the minima's structure is the same along
//! `e_1` and every other direction only adds curvature):
//!
//! ```text
//! C(w) = −exp(−‖w‖²/2) − D · exp(−‖w − c e_1‖² / (2σ²))        D = 0.4, σ = 0.1, c = 1.1
//!        flat: σ_f = 1 at 0          sharp: σ = 0.1, on the flat well's flank
//! ```
//!
//! Minima: flat at `w_f ≈ 0` (`C ≈ −1.00`), sharp at `w_s ≈ 1.085 e_1`
//! (`C ≈ −0.95`, about 40 times the curvature), barrier at `w₁ ≈ 0.87`.
//!
//! # What is computed
//!
//! For `n = 200` runs per landscape (`m = 1` and `m = 10`), a start
//! `w_0 = w_s + U(−0.03, 0.03)^m` (from the library's noise under the run's
//! seed) is confirmed to be in the sharp basin, then two runs of 2000 steps
//! of SGD (lr 0.01, no momentum) go through [`SmoothOut::step_sgd`] on a
//! [`Harness`]'s `f64` backend with the run's seed in [`Config::with_seed`]
//! (the report runs on the core reference, and the first [`CPU_RUNS`] runs
//! again on the CPU backend, asserting that they end on the same bits):
//!
//! * SmoothOut: `θ ~ U(−a, a)`, `a = 0.5`, de-noised (`Denoise::Regenerate`);
//! * plain SGD: the same call with `a = 0`.
//!
//! The basin of an end point is decided by gradient flow from it (Euler
//! steps of 0.01 up to time 200): `Flat` or `Sharp` when the flow ends
//! within 0.05 of that minimum with `‖∇C‖ < 10⁻⁶`, `Neither` otherwise (a
//! point on the far plateau, `‖w‖ ≳ 4`, where `‖∇C‖ < 10⁻³`, does not reach
//! a minimum in that time: such a run has converged to nothing). Rows: the
//! fraction of SmoothOut runs ending in the flat basin (bound 0.95) and of
//! plain SGD runs ending in the sharp basin (bound 1, i.e. all).
//!
//! # Confidence
//!
//! A rate is a binomial proportion. The one-sided 99% Clopper–Pearson lower
//! bound [`binomial_lower`] on the true rate, given `k` successes in `n`
//! runs, is the `p` with `P(X ≥ k; n, p) = 0.01`; for `k = n` it is
//! `0.01^{1/n}`. With the report's `n = 200` and every run in the flat
//! basin it is `0.01^{1/200} = 0.9772`, above 0.95: the observed rate is
//! not a lucky sample of a true rate below 0.95 (at `n = 100` it would be
//! 0.955). The row's setting prints the bound for the counts observed.
//!
//! # Broken variants
//!
//! [`Variant`] changes the SmoothOut run only:
//!
//! * `WeakNoise`: `a = 0.01`, a tenth of the sharp width. `C̄` keeps the
//!   sharp minimum and the runs stay in it: measured flat rate 0 (bound 0.95).
//! * `NoDenoise`: `Denoise::Off` at `a = 0.5`. The noise is never taken out,
//!   so `w` is a random walk with steps of standard deviation `a/√3` per
//!   coordinate (about `a√(t/3) ≈ 13` after 2000 steps, against a gradient
//!   pull of at most `0.01 · 0.6` per step): the run ends far out on the
//!   plateau. Measured flat rate ≈ 0.2 at `m = 1` and 0 at `m = 10`.
//!
//! # Tolerances
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | SmoothOut runs ending in the flat basin | ≥ [`RATE_BOUND`] = 0.95 | the brief's claim; with `n = 200` and 200 successes the 99% lower bound is 0.977 |
//! | plain SGD runs ending in the sharp basin | ≥ 1 (all) | plain SGD from inside the sharp basin is deterministic gradient descent with a step (0.01) below `2/curvature` (0.05): it cannot leave |
//! | starts in the sharp basin | all (checked, else an error) | the comparison is meaningful only from there |
//! | basin by gradient flow | within 0.05 of the minimum, `‖∇C‖ < 10⁻⁶` | the minima are 1.085 apart; Euler flow contracts by a factor 0.99 per step in the flat well and 0.6 in the sharp one, so time 200 settles any point that is not on the plateau |
//! | broken variant (tests, 40 runs) | flat rate ≤ 0.25 (measured 0 and 0.175) | far below 0.95: at a true rate of 0.2 the chance of ≥ 38 of 40 is < 10⁻²³ |
//! | CPU-backend end points vs the reference's runs of the same seeds | 0 differing bits | the CPU backend gives the reference's bits (check 9) and the host computes the same gradient from them |

use smoothout::{
    Config, Denoise, Draw, Error, Noise, NoiseKey, NoiseOps, ParamSpec, Result, Sgd, SmoothOut,
};

use crate::harness::{differing_bits, CpuHarness, Harness, RefHarness};
use crate::Row;

/// Title in the report.
pub const NAME: &str = "4. Figure 1 in practice";
/// What passing shows, in one sentence.
pub const SHOWS: &str =
    "SGD through the library's SmoothOut step, started inside a sharp minimum, \
ends in the flat minimum of similar depth in at least 95% of seeded runs in 1 and 10 dimensions, \
while plain SGD from the same starts always stays.";

/// The rate SmoothOut must reach.
pub const RATE_BOUND: f64 = 0.95;
/// Noise strength of the SmoothOut runs.
pub const A: f64 = 0.5;
/// Half-width of the start box around the sharp minimum.
pub const START_SPREAD: f64 = 0.03;
/// SGD steps per run.
pub const STEPS: u64 = 2000;
/// Learning rate.
pub const LR: f64 = 0.01;
/// Runs per landscape in the report.
pub const REPORT_RUNS: usize = 200;
/// Salt separating the start keys from the training noise keys.
const START_SALT: u64 = 0x57A2_7000_57A2_7000;

/// The two-well loss of the module docs in `m` dimensions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Landscape {
    /// Dimension.
    pub m: usize,
    /// Depth `D` of the sharp well.
    pub sharp_depth: f64,
    /// Width `σ` of the sharp well.
    pub sharp_width: f64,
    /// Position `c` of the sharp well along `e_1`.
    pub sharp_at: f64,
}

/// Where gradient flow from a point ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basin {
    /// At the flat minimum.
    Flat,
    /// At the sharp minimum.
    Sharp,
    /// At neither within the flow time.
    Neither,
}

impl Landscape {
    /// The landscape of the module docs in `m` dimensions.
    #[must_use]
    pub fn new(m: usize) -> Self {
        Landscape {
            m,
            sharp_depth: 0.4,
            sharp_width: 0.1,
            sharp_at: 1.1,
        }
    }

    /// `C(w)`; writes `∇C(w)` into `g`.
    pub fn loss_grad(&self, w: &[f64], g: &mut [f64]) -> f64 {
        let r2: f64 = w.iter().map(|x| x * x).sum();
        let d2: f64 = w
            .iter()
            .enumerate()
            .map(|(i, &x)| if i == 0 { x - self.sharp_at } else { x })
            .map(|x| x * x)
            .sum();
        let s2 = self.sharp_width * self.sharp_width;
        let flat = -(-r2 / 2.0).exp();
        let sharp = -self.sharp_depth * (-d2 / (2.0 * s2)).exp();
        for (i, (g, &x)) in g.iter_mut().zip(w).enumerate() {
            let d = if i == 0 { x - self.sharp_at } else { x };
            *g = -x * flat - d / s2 * sharp;
        }
        flat + sharp
    }

    /// Gradient flow from `w` (Euler steps of 0.01, at most 20 000), and
    /// where it ended.
    #[must_use]
    pub fn flow(&self, w: &[f64]) -> Vec<f64> {
        let mut w = w.to_vec();
        let mut g = vec![0.0; self.m];
        for _ in 0..20_000 {
            self.loss_grad(&w, &mut g);
            if g.iter().map(|x| x * x).sum::<f64>() < 1e-24 {
                break;
            }
            for (x, g) in w.iter_mut().zip(&g) {
                *x -= 0.01 * g;
            }
        }
        w
    }

    /// The two minima, `(flat, sharp)`, by gradient flow from 0 and `c e_1`.
    #[must_use]
    pub fn minima(&self) -> (Vec<f64>, Vec<f64>) {
        let mut s = vec![0.0; self.m];
        s[0] = self.sharp_at;
        (self.flow(&vec![0.0; self.m]), self.flow(&s))
    }

    /// The basin of `w` (see the module docs).
    #[must_use]
    pub fn basin(&self, w: &[f64], minima: &(Vec<f64>, Vec<f64>)) -> Basin {
        let end = self.flow(w);
        let mut g = vec![0.0; self.m];
        self.loss_grad(&end, &mut g);
        let still = g.iter().map(|x| x * x).sum::<f64>().sqrt() < 1e-6;
        let near = |p: &[f64]| {
            end.iter()
                .zip(p)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f64>()
                .sqrt()
                < 0.05
        };
        match (still, near(&minima.0), near(&minima.1)) {
            (true, true, _) => Basin::Flat,
            (true, _, true) => Basin::Sharp,
            _ => Basin::Neither,
        }
    }
}

/// Which SmoothOut run, correct or deliberately broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `U(−a, a)` with regenerating de-noise.
    Correct,
    /// `a = 0.01`, far below the sharp width.
    WeakNoise,
    /// `Denoise::Off` at the same `a`.
    NoDenoise,
}

impl Variant {
    /// The library configuration of the SmoothOut run at strength `a`.
    pub fn config(self, a: f64, seed: u64) -> Result<Config> {
        let (a, denoise) = match self {
            Variant::Correct => (a, Denoise::Regenerate),
            Variant::WeakNoise => (0.01, Denoise::Regenerate),
            Variant::NoDenoise => (a, Denoise::Off),
        };
        Ok(Config::new(Noise::uniform(a)?)
            .with_denoise(denoise)
            .with_seed(seed))
    }
}

/// `steps` of SGD (lr [`LR`]) from `start` through [`SmoothOut::step_sgd`]
/// with `config` on `backend`; returns the end point. The gradient is
/// computed on the host from the downloaded perturbed point.
pub fn train<H: Harness>(
    backend: &H::Backend<f64>,
    land: &Landscape,
    config: Config,
    start: &[f64],
    steps: u64,
) -> Result<Vec<f64>> {
    let mut so = SmoothOut::new(backend, config, vec![ParamSpec::bias("w", land.m)])?;
    let (mut w, mut g, mut v) = (
        vec![H::upload(backend, start.to_vec())?],
        vec![H::upload(backend, vec![0.0; land.m])?],
        vec![H::upload(backend, vec![0.0; land.m])?],
    );
    let mut grad = vec![0.0; land.m];
    let sgd = Sgd::new(LR, 0.0, 0.0)?;
    for step in 0..steps {
        so.step_sgd(
            backend,
            &mut w,
            &mut g,
            &mut v,
            &sgd,
            Draw::new(step, 0),
            |p, g| {
                let p = H::download(backend, &p[0])?;
                land.loss_grad(&p, &mut grad); // the gradient at the perturbed point
                H::write(backend, &grad, &mut g[0])
            },
        )?;
    }
    H::download(backend, &w[0])
}

/// Counts over a set of runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// SmoothOut runs.
    pub runs: usize,
    /// Plain SGD runs (0 or `runs`).
    pub plain_runs: usize,
    /// SmoothOut runs ending in the flat basin.
    pub smooth_flat: usize,
    /// SmoothOut runs ending in neither basin.
    pub smooth_neither: usize,
    /// Plain SGD runs ending in the sharp basin.
    pub sgd_sharp: usize,
}

impl Counts {
    /// SmoothOut's flat rate.
    #[must_use]
    pub fn flat_rate(&self) -> f64 {
        self.smooth_flat as f64 / self.runs as f64
    }

    /// Plain SGD's sharp rate (NaN without plain runs).
    #[must_use]
    pub fn stay_rate(&self) -> f64 {
        self.sgd_sharp as f64 / self.plain_runs as f64
    }
}

/// The start of run `run`: `w_s + U(−0.03, 0.03)^m` from the library's
/// noise (`fill_noise` on `backend`) under a key of its own.
pub fn start<H: Harness>(
    backend: &H::Backend<f64>,
    minima: &(Vec<f64>, Vec<f64>),
    seed: u64,
    run: usize,
) -> Result<Vec<f64>> {
    let mut u = H::upload(backend, vec![0.0; minima.1.len()])?;
    let key = NoiseKey::from_seed(seed ^ START_SALT).fold_in(run as u64);
    backend.fill_noise(key, &Noise::uniform(START_SPREAD)?, &mut u)?;
    let u = H::download(backend, &u)?;
    Ok(u.iter().zip(&minima.1).map(|(u, s)| s + u).collect())
}

/// `runs` runs of SmoothOut (`variant` at strength `a`) from starts in the
/// sharp basin, each paired with plain SGD from the same start when
/// `with_plain`; run `i` uses seed `seed + i`. Every run goes through one
/// backend of `H`. Returns the counts and the end point of every run: for
/// each run in order, the SmoothOut run's end, then the plain SGD run's
/// (when `with_plain`).
///
/// # Errors
///
/// A library error, or [`Error::InvalidSetting`] if a start is not in the
/// sharp basin.
pub fn run<H: Harness>(
    land: &Landscape,
    variant: Variant,
    a: f64,
    runs: usize,
    steps: u64,
    seed: u64,
    with_plain: bool,
) -> Result<(Counts, Vec<Vec<f64>>)> {
    let backend = H::backend::<f64>();
    let minima = land.minima();
    let mut c = Counts {
        runs,
        ..Counts::default()
    };
    let mut ends = Vec::with_capacity(if with_plain { 2 * runs } else { runs });
    for i in 0..runs {
        let s = seed.wrapping_add(i as u64);
        let w0 = start::<H>(&backend, &minima, seed, i)?;
        if land.basin(&w0, &minima) != Basin::Sharp {
            return Err(Error::InvalidSetting {
                name: "start outside the sharp basin, run",
                value: i as f64,
                expected: "a start in the sharp basin",
            });
        }
        let end = train::<H>(&backend, land, variant.config(a, s)?, &w0, steps)?;
        match land.basin(&end, &minima) {
            Basin::Flat => c.smooth_flat += 1,
            Basin::Neither => c.smooth_neither += 1,
            Basin::Sharp => {}
        }
        ends.push(end);
        if with_plain {
            let plain = Config::new(Noise::uniform(0.0)?).with_seed(s);
            let end = train::<H>(&backend, land, plain, &w0, steps)?;
            c.plain_runs += 1;
            if land.basin(&end, &minima) == Basin::Sharp {
                c.sgd_sharp += 1;
            }
            ends.push(end);
        }
    }
    Ok((c, ends))
}

/// The one-sided `1 − alpha` Clopper–Pearson lower bound on a binomial rate
/// from `k` successes in `n` trials: the `p` with `P(X ≥ k; n, p) = alpha`
/// (0 for `k = 0`), by bisection on the tail summed in log space.
///
/// ```
/// use smoothout_verify::checks::figure1::binomial_lower;
/// let p = binomial_lower(200, 200, 0.01);
/// assert!((p - 0.01f64.powf(1.0 / 200.0)).abs() < 1e-12);
/// ```
#[must_use]
pub fn binomial_lower(k: usize, n: usize, alpha: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    // ln j! for j ≤ n, so that each binomial coefficient costs O(1).
    let mut ln_fact = vec![0.0f64; n + 1];
    for j in 1..=n {
        ln_fact[j] = ln_fact[j - 1] + (j as f64).ln();
    }
    let tail = |p: f64| -> f64 {
        (k..=n)
            .map(|j| {
                let ln_choose = ln_fact[n] - ln_fact[j] - ln_fact[n - j];
                (ln_choose + j as f64 * p.ln() + (n - j) as f64 * (-p).ln_1p()).exp()
            })
            .sum()
    };
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if tail(mid) < alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The report seed.
pub const REPORT_SEED: u64 = 40;

/// Runs per landscape of the report's CPU-backend rows: the first runs
/// (same seeds and starts) of the reference's [`REPORT_RUNS`]. Each of
/// their tiny steps costs the CPU backend a few thread hand-offs, so all
/// 200 would take half a minute.
pub const CPU_RUNS: usize = 8;

/// The report rows: every row on the reference; the same rows on the CPU
/// backend over the first [`CPU_RUNS`] runs; and a row asserting that those
/// runs end, bit for bit, where the reference's runs of the same seeds end.
pub fn rows() -> Vec<Row> {
    let (mut rows, want) = rows_on::<RefHarness>(REPORT_RUNS);
    let (cpu, got) = rows_on::<CpuHarness>(CPU_RUNS);
    // Per landscape the reference's ends start with those of its first
    // CPU_RUNS runs (two ends per run: SmoothOut, then plain SGD).
    let want: Vec<f64> = want
        .iter()
        .flat_map(|ends| ends.iter().take(2 * CPU_RUNS).flatten().copied())
        .collect();
    let got: Vec<f64> = got.iter().flatten().flatten().copied().collect();
    let bits = differing_bits(&want, &got).map_or(f64::NAN, |b| b as f64);
    rows.extend(cpu);
    rows.push(Row::at_most(
        NAME,
        format!(
            "backend={} runs end where the reference's runs with the same seeds end: differing bits",
            CpuHarness::NAME
        ),
        "backend contract",
        format!(
            "m = 1 and 10: end points of the {CPU_RUNS} SmoothOut and {CPU_RUNS} plain SGD runs of \
             each CPU row above against the first {CPU_RUNS} of the reference's {REPORT_RUNS}; \
             {} coordinates compared",
            got.len()
        ),
        bits,
        0.0,
    ));
    rows
}

/// The report rows on `H`'s backend with `runs` runs per landscape (see
/// [`Harness::tag`] for the setting), and each landscape's end points (see
/// [`run`]).
pub fn rows_on<H: Harness>(runs: usize) -> (Vec<Row>, Vec<Vec<Vec<f64>>>) {
    let tag = H::tag();
    let mut rows = Vec::new();
    let mut ends = Vec::new();
    for m in [1usize, 10] {
        let land = Landscape::new(m);
        let setting = |what: &str, k: usize, n: usize| {
            format!(
                "m = {m}, {what}, {n} runs × {STEPS} steps, lr {LR}, starts w_s ± {START_SPREAD}; \
                 99% lower bound {:.3}{tag}",
                binomial_lower(k, n, 0.01)
            )
        };
        match run::<H>(
            &land,
            Variant::Correct,
            A,
            runs,
            STEPS,
            REPORT_SEED + 1000 * m as u64,
            true,
        ) {
            Ok((c, e)) => {
                ends.push(e);
                rows.push(Row::at_least(
                    NAME,
                    "SmoothOut SGD from the sharp basin ends in the flat basin (rate)",
                    "Fig. 1, Alg. 1",
                    setting(&format!("U(−{A}, {A}), de-noised"), c.smooth_flat, c.runs),
                    c.flat_rate(),
                    RATE_BOUND,
                ));
                rows.push(Row::at_least(
                    NAME,
                    "plain SGD (a = 0) from the same starts stays in the sharp basin (rate)",
                    "Fig. 1",
                    setting("a = 0", c.sgd_sharp, c.plain_runs),
                    c.stay_rate(),
                    1.0,
                ));
            }
            Err(e) => rows.push(Row::at_least(
                NAME,
                "the runs completed",
                "Fig. 1",
                format!("m = {m}: error {e}{tag}"),
                f64::NAN,
                RATE_BOUND,
            )),
        }
    }
    (rows, ends)
}
