//! Check 8, sensitivity sharpness `s = ΔC̄(w*; a)/Δa` (Eq. 9), measured by the
//! library's [`smoothout::sensitivity`] on quadratics where it is known
//! exactly.
//!
//! # What is computed
//!
//! For `C(w) = ½ wᵀHw` with `H` symmetric positive semi-definite and
//! `θ ~ U(−a, a)^m` (so `E θθᵀ = (a²/3) I`):
//!
//! ```text
//! C̄(w; a) = C(w) + a · wᵀH E θ + ½ E θᵀHθ = C(w) + a² tr(H)/6        (exactly)
//! s_k = (C̄(w; a_{k+1}) − C̄(w; a_k)) / (a_{k+1} − a_k) = tr(H) (a_{k+1} + a_k)/6
//! ```
//!
//! [`smoothout::sensitivity`] returns `values[k]` (the N-copy estimate of
//! `C̄(w; a_k)`, the same copies for every `a_k`) and `slopes[k]`. The same
//! copies are recomputed one by one ([`Objective::perturbed`] with the same
//! seed) to get the per-copy values `v_{k,i}` and per-copy slopes
//! `(v_{k+1,i} − v_{k,i})/(a_{k+1} − a_k)`, whose sample variances give the
//! standard errors; a third row checks that the library's numbers are the
//! means of exactly those copies.
//!
//! With `a_0 = 0` the first slope is the first positive value's
//! `(v_1 − C(w))/a_1`, copy by copy, so the slopes row often repeats the
//! values row's largest z; at the minimum `w* = 0` every per-copy value is
//! `a_k² · ½uᵀHu`, so all the z-scores coincide there. The random-point
//! rows are where the grid points differ.
//!
//! Ordering: a sharper minimum (`10H`) measured with an independent seed
//! must have a larger slope at every grid step, by at least 5 standard
//! errors of the difference `√(SE_sharp² + SE_flat²)`.
//!
//! # Broken variants ([`Variant`])
//!
//! `WrongFormula` compares with `C(w) + a² tr(H)/3` (and slopes
//! `tr(H)(a_{k+1} + a_k)/3`); `Swapped` claims the flat minimum is the
//! sharper one. The tests show both fail.
//!
//! # Tolerances
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | `values[k]` vs `C(w) + a_k² tr(H)/6`, `a_k > 0` | 5 SE (largest z over the grid) | Monte Carlo: SE = `√(s²/N)` from the per-copy values; ≈ 6·10⁻⁷ false alarms per comparison. The uniform draws' discretisation changes `E u²` by `4·10⁻¹⁵` relative |
//! | `slopes[k]` vs `tr(H)(a_{k+1} + a_k)/6` | 5 SE of the per-copy slopes (largest z) | as above; common random numbers make the per-copy slopes much less variable than the values |
//! | `values[k]`, `slopes[k]` vs the mean of the per-copy numbers | `3Nε · M_k`, `M_k` the largest per-copy magnitude at `a_k`; for slopes `3Nε (M_{k+1} + M_k)/Δa` | exact arithmetic: the library's running sum errs by at most `Nε M`, Welford's mean by `(N + 4 ln N)ε M`, ε = 2⁻⁵³; slopes are differences of means divided by `Δa` |
//! | ordering `s_k(10H) − s_k(H)` | `≥ 5` SE of the difference at every step (the row shows the smallest z) | independent seeds, so the variances add |

use smoothout::{sensitivity, Noise, NoiseKey, Objective, Unit};

use crate::checks::theorem1::gram;
use crate::checks::unbiased::uniform_inputs;
use crate::stats::{MeanVar, Z_BOUND};
use crate::Row;

/// Title in the report.
pub const NAME: &str = "8. Sensitivity sharpness s (Eq. 9)";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "On quadratics, smoothout::sensitivity measures C̄(w; a) = C(w) + \
a²·tr(H)/6 and its slopes tr(H)(a_k + a_{k+1})/6 within 5 standard errors, and ranks a 10× \
sharper minimum above the flat one at every grid step.";

const EPS: f64 = f64::EPSILON / 2.0;

/// The formula or ordering the measurement is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `C̄ = C + a² tr(H)/6`; the sharper minimum has the larger slopes.
    Correct,
    /// `C̄ = C + a² tr(H)/3` (the variance of U(−a, a) taken as `2a²/3`).
    WrongFormula,
    /// The flat and sharp minima swapped in the ordering claim.
    Swapped,
}

impl Variant {
    /// The factor `1/6` (or the wrong `1/3`) in front of `a² tr(H)`.
    fn factor(self) -> f64 {
        if self == Variant::WrongFormula {
            1.0 / 3.0
        } else {
            1.0 / 6.0
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Correct => "",
            Variant::WrongFormula => ", formula a²tr(H)/3 (broken)",
            Variant::Swapped => ", flat and sharp swapped (broken)",
        }
    }
}

/// `C(w) = ½ wᵀHw`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quadratic {
    /// Dimension `m`.
    pub m: usize,
    /// `H`, `m × m`, row-major, symmetric positive semi-definite.
    pub h: Vec<f64>,
}

impl Quadratic {
    /// `H = BᵀB/m · scale` for `B` with entries in `[−1, 1]` from the
    /// library's unit noise of `seed`.
    #[must_use]
    pub fn from_seed(m: usize, scale: f64, seed: u64) -> Self {
        let b = uniform_inputs(NoiseKey::from_seed(seed), m * m, -1.0, 1.0);
        let h = gram(&b, m).into_iter().map(|x| x * scale).collect();
        Quadratic { m, h }
    }

    /// `H = BᵀB/r` for an `r × m` row-major factor `B` (rank ≤ r).
    ///
    /// # Panics
    ///
    /// When `b.len() != r · m`.
    #[must_use]
    pub fn from_factor(m: usize, r: usize, b: &[f64]) -> Self {
        assert_eq!(b.len(), r * m, "factor must be r × m");
        let mut h = vec![0.0; m * m];
        for row in b.chunks_exact(m) {
            for i in 0..m {
                for j in 0..m {
                    h[i * m + j] += row[i] * row[j] / r as f64;
                }
            }
        }
        Quadratic { m, h }
    }

    /// `½ wᵀHw`.
    #[must_use]
    pub fn value(&self, w: &[f64]) -> f64 {
        let m = self.m;
        let mut v = 0.0;
        for i in 0..m {
            let hw: f64 = self.h[i * m..(i + 1) * m]
                .iter()
                .zip(w)
                .map(|(h, w)| h * w)
                .sum();
            v += w[i] * hw;
        }
        0.5 * v
    }

    /// `tr H`.
    #[must_use]
    pub fn trace(&self) -> f64 {
        (0..self.m).map(|i| self.h[i * self.m + i]).sum()
    }

    /// The same quadratic with `H` multiplied by `c`.
    #[must_use]
    pub fn scaled(&self, c: f64) -> Self {
        Quadratic {
            m: self.m,
            h: self.h.iter().map(|x| x * c).collect(),
        }
    }
}

/// What [`smoothout::sensitivity`] returned, and the per-copy statistics of
/// the same copies.
#[derive(Clone, Debug)]
pub struct Measured {
    /// The grid `a_0 < a_1 < …`.
    pub grid: Vec<f64>,
    /// The library's `values[k]`.
    pub values: Vec<f64>,
    /// The library's `slopes[k]`.
    pub slopes: Vec<f64>,
    /// Per-copy values at each `a_k`.
    pub value_stats: Vec<MeanVar>,
    /// Per-copy slopes over each interval.
    pub slope_stats: Vec<MeanVar>,
    /// `max_i |v_{k,i}|` at each `a_k` (for rounding bounds).
    pub max_abs: Vec<f64>,
}

/// Runs [`smoothout::sensitivity`] (uniform noise, `copies` copies, `seed`)
/// on `q` at `w`, and recomputes the same copies one by one.
pub fn measure(
    q: &Quadratic,
    w: &[f64],
    grid: &[f64],
    copies: usize,
    seed: u64,
) -> smoothout::Result<Measured> {
    let n = grid.len();
    let (mut values, mut slopes) = (vec![0.0; n], vec![0.0; n.saturating_sub(1)]);
    let mut scratch = vec![0.0; q.m];
    sensitivity(
        grid,
        Unit::Uniform,
        copies,
        seed,
        w,
        &mut scratch,
        &mut values,
        &mut slopes,
        |p| q.value(p),
    )?;
    let objs = grid
        .iter()
        .map(|&a| Objective::new(Noise::uniform(a)?, copies, seed))
        .collect::<smoothout::Result<Vec<_>>>()?;
    let mut value_stats = vec![MeanVar::default(); n];
    let mut slope_stats = vec![MeanVar::default(); n.saturating_sub(1)];
    let mut max_abs = vec![0.0f64; n];
    let mut v = vec![0.0; n];
    for i in 0..copies {
        for (k, obj) in objs.iter().enumerate() {
            obj.perturbed(i, w, &mut scratch)?;
            v[k] = q.value(&scratch);
            value_stats[k].push(v[k]);
            max_abs[k] = max_abs[k].max(v[k].abs());
        }
        for (k, s) in slope_stats.iter_mut().enumerate() {
            s.push((v[k + 1] - v[k]) / (grid[k + 1] - grid[k]));
        }
    }
    Ok(Measured {
        grid: grid.to_vec(),
        values,
        slopes,
        value_stats,
        slope_stats,
        max_abs,
    })
}

/// The exact `C̄(w; a_k)` and slopes under the variant's formula.
#[must_use]
pub fn expected(q: &Quadratic, w: &[f64], grid: &[f64], variant: Variant) -> (Vec<f64>, Vec<f64>) {
    let (c, t, f) = (q.value(w), q.trace(), variant.factor());
    let values = grid.iter().map(|a| c + f * a * a * t).collect();
    let slopes = grid
        .windows(2)
        .map(|p| f * t * (p[1] * p[1] - p[0] * p[0]) / (p[1] - p[0]))
        .collect();
    (values, slopes)
}

/// `|x − expected|` in standard errors of `s` (NaN-safe: 0 when both are 0).
fn z(x: f64, expected: f64, s: &MeanVar) -> f64 {
    let gap = (x - expected).abs();
    if gap == 0.0 {
        0.0
    } else {
        gap / s.std_error()
    }
}

fn grid_label(grid: &[f64]) -> String {
    let g: Vec<String> = grid.iter().map(f64::to_string).collect();
    format!("a ∈ {{{}}}", g.join(", "))
}

/// The Eq. 9 rows for one quadratic and point: values (for `a_k > 0`) and
/// slopes against the variant's formula (largest z, `≤ 5`), and the
/// library's numbers against the means of their copies (worst against its
/// rounding bound).
pub fn formula_rows(
    q: &Quadratic,
    w: &[f64],
    grid: &[f64],
    copies: usize,
    seed: u64,
    variant: Variant,
) -> smoothout::Result<Vec<Row>> {
    let ms = measure(q, w, grid, copies, seed)?;
    let (ev, es) = expected(q, w, grid, variant);
    let zv = (0..grid.len())
        .filter(|&k| grid[k] > 0.0)
        .map(|k| z(ms.values[k], ev[k], &ms.value_stats[k]))
        .fold(0.0, f64::max);
    let zs = (0..ms.slopes.len())
        .map(|k| z(ms.slopes[k], es[k], &ms.slope_stats[k]))
        .fold(0.0, f64::max);
    let nb = 3.0 * copies as f64 * EPS;
    let mut worst = (0.0f64, 0.0f64);
    let mut consider = |m: f64, b: f64| {
        let r = |(m, b): (f64, f64)| if m == 0.0 { 0.0 } else { m / b };
        if r((m, b)) > r(worst) {
            worst = (m, b);
        }
    };
    for k in 0..grid.len() {
        consider(
            (ms.values[k] - ms.value_stats[k].mean()).abs(),
            nb * ms.max_abs[k],
        );
    }
    for k in 0..ms.slopes.len() {
        let da = grid[k + 1] - grid[k];
        consider(
            (ms.slopes[k] - ms.slope_stats[k].mean()).abs(),
            nb * (ms.max_abs[k + 1] + ms.max_abs[k]) / da,
        );
    }
    let at = if w.iter().all(|&x| x == 0.0) {
        "at w*=0"
    } else {
        "at a random w"
    };
    let setting = format!(
        "m={}, tr H={:.3}, {at}, {}, N={copies}{}",
        q.m,
        q.trace(),
        grid_label(grid),
        variant.label()
    );
    Ok(vec![
        Row::at_most(
            NAME,
            "sensitivity values = C(w) + a²·tr(H)/6 (largest z over a > 0)",
            "Eq. 9",
            setting.clone(),
            zv,
            Z_BOUND,
        ),
        Row::at_most(
            NAME,
            "sensitivity slopes s_k = tr(H)(a_k + a_{k+1})/6 (largest z)",
            "Eq. 9",
            setting.clone(),
            zs,
            Z_BOUND,
        ),
        Row::at_most(
            NAME,
            "sensitivity values and slopes = means of their copies (worst vs rounding bound)",
            "Eq. 9",
            setting,
            worst.0,
            worst.1,
        ),
    ])
}

/// The ordering row: `s_k(10H) − s_k(H)` at the minimum `w* = 0`, with
/// independent seeds, in standard errors of the difference; the smallest
/// over the grid must be `≥ 5`. `Swapped` subtracts the other way round.
pub fn ordering_row(
    q: &Quadratic,
    grid: &[f64],
    copies: usize,
    seeds: (u64, u64),
    variant: Variant,
) -> smoothout::Result<Row> {
    let w = vec![0.0; q.m];
    let sharp_q = q.scaled(10.0);
    let (flat, sharp) = (
        measure(q, &w, grid, copies, seeds.0)?,
        measure(&sharp_q, &w, grid, copies, seeds.1)?,
    );
    let (hi, lo) = if variant == Variant::Swapped {
        (&flat, &sharp)
    } else {
        (&sharp, &flat)
    };
    let min_z = (0..flat.slopes.len())
        .map(|k| {
            let se = hi.slope_stats[k]
                .std_error()
                .hypot(lo.slope_stats[k].std_error());
            (hi.slopes[k] - lo.slopes[k]) / se
        })
        .fold(f64::INFINITY, f64::min);
    Ok(Row::at_least(
        NAME,
        "sharper minimum (10·H) has larger s at every step (smallest z of the difference)",
        "Eq. 9",
        format!(
            "m={}, tr H={:.3} vs {:.3}, {}, N={copies}{}",
            q.m,
            q.trace(),
            sharp_q.trace(),
            grid_label(grid),
            variant.label()
        ),
        min_z,
        Z_BOUND,
    ))
}

/// The report's grid of strengths.
pub const GRID: [f64; 5] = [0.0, 0.02, 0.05, 0.1, 0.2];

/// The report rows.
pub fn rows() -> Vec<Row> {
    const COPIES: usize = 20_000;
    let mut rows = Vec::new();
    for (j, m) in [2usize, 10, 50].into_iter().enumerate() {
        let q = Quadratic::from_seed(m, 1.0, 500 + j as u64);
        let w_star = vec![0.0; m];
        let w = uniform_inputs(NoiseKey::from_seed(510 + j as u64), m, -1.0, 1.0);
        for (i, point) in [w_star, w].iter().enumerate() {
            rows.extend(
                formula_rows(
                    &q,
                    point,
                    &GRID,
                    COPIES,
                    520 + 2 * j as u64 + i as u64,
                    Variant::Correct,
                )
                .expect("valid settings"),
            );
        }
        rows.push(
            ordering_row(
                &q,
                &GRID,
                COPIES,
                (530 + j as u64, 540 + j as u64),
                Variant::Correct,
            )
            .expect("valid settings"),
        );
    }
    rows
}
