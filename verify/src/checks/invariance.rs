//! 6. AdaSmoothOut invariance (§III-D, Eq. 12).
//!
//! A ReLU network is positively homogeneous unit by unit: scaling hidden
//! unit `j` of layer `l` — its incoming weights `W_l[j, :]` and bias
//! `b_l[j]` — by `c > 0` and its outgoing weights `W_{l+1}[:, j]` by `1/c`
//! gives the same function, because `relu(c z) = c relu(z)`. So the loss
//! `C` is unchanged. The point of AdaSmoothOut (Eq. 12) is that its noise
//! follows such a rescaling: the noise of a row is proportional to the
//! row's norm, `θ̂_i = a ‖w_i‖ / (‖u_i‖ + 1e-6) · u_i`, so a row scaled by
//! `c` gets `c` times the noise from the same unit draw `u_i`.
//!
//! # What is and is not invariant
//!
//! AdaSmoothOut's noise is *equivariant under per-row scaling*: if every
//! perturbed buffer of `w'` is a per-row scaling `D w` (`D` diagonal,
//! positive, per dim-0 row), then with the same draw `w' + θ̂' = D (w + θ̂)`
//! exactly in real arithmetic. The `+1e-6` does not spoil this: the library
//! adds it to the noise norm `‖u_i‖`, which does not depend on `w`
//! (`reference::filter_scales`), so it cancels from the ratio of the two
//! scales. (Added to `‖w_i‖` instead, it would break the invariance for
//! rows of norm near 1e-6; the paper's Eq. 12 has no epsilon at all.) So
//! whenever the rescaled network is a per-row scaling of the perturbed
//! buffers *and* the rescaling leaves the network's function unchanged,
//! every perturbed network is the rescaled image of the original's
//! perturbed network, and `C̄(w') = C̄(w)` draw by draw. Two cases qualify:
//!
//! * **Layer-wise rescaling, every layer perturbed.** Scaling *all* units
//!   of hidden layer `l` by the same `c` scales every row of `W_l` and
//!   every element of `b_l` by `c`, and every row of `W_{l+1}` by `1/c`:
//!   a per-row scaling everywhere. Invariant.
//! * **Unit rescaling, the compensating weight `W_{l+1}` not perturbed.**
//!   Row `j` of `W_l` and `b_l[j]` are scaled by `c`; `W_{l+1}` is scaled
//!   column-wise, which is not a per-row scaling, but it gets no noise.
//!   Invariant.
//!
//! It does **not** hold for a single unit rescaled with `W_{l+1}`
//! perturbed: scaling column `j` of `W_{l+1}` by `1/c` changes the norm of
//! every row of `W_{l+1}` by a different factor, and each row's noise is
//! spread over all its columns, so the noise on `W_{l+1}[i, j]` is not `1/c`
//! times what it was and the noise on the other columns changes too. The
//! report measures this change (it is not rounding: many standard errors of
//! the paired difference). The paper's statement is about the filter being
//! scaled, and that part holds; full-network invariance under arbitrary
//! unit-wise rescaling does not.
//!
//! Fixed noise (`Scaling::Fixed`) is invariant in neither case: a row
//! scaled by `c` keeps noise `a u`, so its relative noise changes by `1/c`.
//! The report measures that change as well.
//!
//! # Method
//!
//! [`smoothed`] runs the library's [`SmoothOut`] on a [`Harness`]'s
//! backend in `f64` (the core reference; for the cases [`CPU_CASES`] also
//! the CPU backend, in rows of their own; guard API, exact de-noising so
//! the weights never drift), on the original parameters and on their
//! rescaled copy with the *same* draws, and evaluates the loss of [`Mlp`]
//! at both perturbed networks: common random numbers, so an invariance
//! shows up draw by draw and a non-invariance as a paired mean difference
//! `D̄` with a small standard error. For that mean each draw is paired with its reflection
//! `−θ̂` (the perturbed weights `2w − (w + θ̂)`, which have the same
//! distribution since `u` is symmetric and `‖−u‖ = ‖u‖`): the first-order
//! part of `D`, which averages to zero but dominates its spread, cancels
//! within the pair, and the `O(a²)` change of `C̄` stands out. Rescaling by a power of two is exact in binary floating
//! point, and so is every step after it (norms, scales, products and sums
//! all scale by the same power of two), so the two computations agree bit
//! for bit; for other `c` they agree to rounding, bounded as follows.
//!
//! # The rounding bound
//!
//! With `u = 2⁻⁵³`, `γ_k = k u / (1 − k u)`, `n_l` the fan-in of layer `l`:
//!
//! * each evaluation's pre-activation `b_j + Σ_k W_jk h_k` has absolute
//!   error at most `γ_{n_l+1} (|W_l| |h| + |b_l|)_j` (Higham, Eq. 3.5);
//! * a rescaled row differs from the exact image of the original's
//!   perturbed row by at most `(γ_{n_l} + 14u)` times `c (|w| + |θ|)`
//!   per element: `fl(c w)` one rounding; the two computed row norms
//!   `γ_{n_l}/2 + u` each plus the `c` rounding; the scales two roundings
//!   each (`‖u_i‖ + 1e-6` is the same number on both sides); `s u` and
//!   `w + θ` one rounding each, on both sides;
//! * by induction over layers, using `|z_l|, |h_l| ≤ A_l` for the absolute
//!   network `A_l = |W_l| A_{l−1} + |b_l|`, `A_0 = |x|`, with magnitudes
//!   `2|w| + |v|` (`v` the perturbed weights; they dominate `|w| + |θ|`
//!   and `|v|`, and `A` is itself homogeneous so the image has the same
//!   `A`), the two computed outputs differ by at most
//!   `d = G A_L + 2u (|f| + |y|)`, `G = Σ_l (2γ_{n_l+1} + γ_{n_l} + 14u)`
//!   (the last term for the residual subtraction);
//! * the loss `½ r²` then differs by at most `d |r| + d²/2` per output,
//!   and the loss sums (outputs, samples, the division by `n`) add
//!   `γ_{m+n+2}` relative on each side.
//!
//! `B = 2 · [ (1/n) Σ (d |r| + d²/2) + 2 γ_{m+n+2} C ]`, the factor 2
//! covering the second-order terms the induction drops. It is an a-priori
//! worst case: on the report's network `B` is about 10⁻¹¹ relative to `C`
//! while the measured differences are a few ulps (ratios ~10⁻⁵–10⁻⁴). A
//! broken rescaling misses it by seven orders of magnitude or more (tests).
//!
//! # Tolerances
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | `C(w') − C(w)`, `c` a power of two | 0 differing bits | the scaling is exact and commutes with every rounding |
//! | `C(w') − C(w)`, other `c` | `≤ B` (ratio ≤ 1) | forward-error bound above, `θ = 0` |
//! | AdaSmoothOut `C(w'+θ̂') − C(w+θ̂)` per draw, invariant cases | `≤ B` per draw (max ratio ≤ 1); 0 bits for powers of two | the same bound with the noise's magnitudes and scale roundings |
//! | non-invariant cases (Fixed; AdaSmoothOut with `W_{l+1}` perturbed) | paired `|D̄| / SE ≥ 5` | a real change in `C̄`, not sampling noise: [`Z_BOUND`] standard errors of the paired mean |
//! | CPU-backend rows ([`CPU_CASES`]) vs the reference's | 0 differing bits of the measured values | the CPU backend gives the reference's bits (check 9) |
//!
//! The deliberately broken rescalings of [`Variant`] (bias left unscaled,
//! no `1/c` compensation) are not reported; the tests show that they
//! exceed `B` by many orders of magnitude.

use smoothout::{Config, Denoise, Draw, Noise, Scaling, SmoothOut};

use crate::harness::{
    download_all, push_cpu_cases, upload_all, Buf, CpuHarness, Harness, RefHarness,
};
use crate::mlp::{Data, Mlp};
use crate::stats::{MeanVar, Z_BOUND};
use crate::Row;

/// Title in the report.
pub const NAME: &str = "6. AdaSmoothOut invariance";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "Rescaling a ReLU unit leaves C unchanged to rounding, and AdaSmoothOut's \
     C̄ too (same draws) whenever the rescaling scales each perturbed buffer row by row \
     (a whole layer; or one unit with its outgoing weights unperturbed), while fixed noise \
     changes C̄ and so does AdaSmoothOut when a single unit's outgoing weights are perturbed.";

/// What is rescaled; hidden layers are numbered `1 … L−1` as in [`Mlp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rescale {
    /// Unit `unit` of hidden layer `layer`: row `unit` of `W_layer` and
    /// `b_layer[unit]` by `c`, column `unit` of `W_{layer+1}` by `1/c`.
    Unit {
        /// Hidden layer, `1 ≤ layer < L`.
        layer: usize,
        /// Unit within the layer.
        unit: usize,
    },
    /// Every unit of hidden layer `layer` by the same `c`.
    Layer {
        /// Hidden layer, `1 ≤ layer < L`.
        layer: usize,
    },
}

impl Rescale {
    fn layer(self) -> usize {
        match self {
            Rescale::Unit { layer, .. } | Rescale::Layer { layer } => layer,
        }
    }
}

/// How the rescaling is carried out: correctly, or deliberately broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Incoming weights and bias by `c`, outgoing weights by `1/c`.
    Correct,
    /// Broken: the bias is not scaled (`relu(c Wx + b) ≠ c relu(Wx + b)`).
    BiasUnscaled,
    /// Broken: the outgoing weights are not divided by `c`.
    Uncompensated,
}

/// A rescaling `w → w'`: which units, by what factor `c`, carried out how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rescaling {
    /// The rescaled units.
    pub what: Rescale,
    /// The factor `c > 0`.
    pub c: f64,
    /// Correct, or deliberately broken.
    pub variant: Variant,
}

impl Rescaling {
    /// `what` rescaled by `c`, carried out as `variant` says.
    #[must_use]
    pub fn new(what: Rescale, c: f64, variant: Variant) -> Self {
        Rescaling { what, c, variant }
    }

    /// `what` rescaled by `c`, correctly.
    #[must_use]
    pub fn correct(what: Rescale, c: f64) -> Self {
        Self::new(what, c, Variant::Correct)
    }
}

/// Which parameters SmoothOut perturbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perturb {
    /// Every weight and bias.
    All,
    /// All but the compensating weight `W_{l+1}` of the rescaled layer `l`.
    AllButCompensating,
}

/// The copy of `params` (buffers `W_1, b_1, …` of `mlp`) after `rescaling`.
///
/// # Panics
///
/// If the layer is not hidden, the unit is out of range, or `c ≤ 0`.
#[must_use]
pub fn rescale(mlp: &Mlp, params: &[Vec<f64>], rescaling: Rescaling) -> Vec<Vec<f64>> {
    let Rescaling { what, c, variant } = rescaling;
    let l = what.layer();
    assert!(
        (1..mlp.layers()).contains(&l),
        "layer {l} is not hidden in {:?}",
        mlp.sizes()
    );
    assert!(c > 0.0 && c.is_finite(), "c = {c} must be positive");
    let (nin, nunits, nnext) = (mlp.sizes()[l - 1], mlp.sizes()[l], mlp.sizes()[l + 1]);
    let units: Vec<usize> = match what {
        Rescale::Unit { unit, .. } => {
            assert!(unit < nunits, "unit {unit} of {nunits}");
            vec![unit]
        }
        Rescale::Layer { .. } => (0..nunits).collect(),
    };
    let mut p = params.to_vec();
    let (w, b, next) = (2 * (l - 1), 2 * (l - 1) + 1, 2 * l);
    for &j in &units {
        for x in &mut p[w][j * nin..(j + 1) * nin] {
            *x *= c;
        }
        if variant != Variant::BiasUnscaled {
            p[b][j] *= c;
        }
        if variant != Variant::Uncompensated {
            for i in 0..nnext {
                p[next][i * nunits + j] /= c;
            }
        }
    }
    p
}

fn views(p: &[Vec<f64>]) -> Vec<&[f64]> {
    p.iter().map(Vec::as_slice).collect()
}

fn gamma(k: usize) -> f64 {
    let ku = k as f64 * f64::EPSILON / 2.0;
    ku / (1.0 - ku)
}

/// The a-priori bound `B` of the module docs on `|Ĉ(v') − Ĉ(v)|`, where
/// `v` are the (perturbed) weights of the original, `w` its unperturbed
/// weights (`v = w` without noise) and `v'` the rescaled network's
/// counterpart of `v`.
#[must_use]
pub fn rounding_bound(mlp: &Mlp, w: &[Vec<f64>], v: &[Vec<f64>], data: &Data) -> f64 {
    let u = f64::EPSILON / 2.0;
    let dominating: Vec<Vec<f64>> = w
        .iter()
        .zip(v)
        .map(|(w, v)| {
            w.iter()
                .zip(v)
                .map(|(w, v)| 2.0 * w.abs() + v.abs())
                .collect()
        })
        .collect();
    let big_g: f64 = mlp.sizes()[..mlp.layers()]
        .iter()
        .map(|&n| 2.0 * gamma(n + 1) + gamma(n) + 14.0 * u)
        .sum();
    let a = mlp.magnitudes(&views(&dominating), data);
    let f = mlp.outputs_of(&views(v), data);
    let c = mlp.loss_from_outputs(&f, data);
    let mut s = 0.0;
    for ((a, f), y) in a.iter().zip(&f).zip(&data.y) {
        let d = big_g * a + 2.0 * u * (f.abs() + y.abs());
        s += d * (f - y).abs() + 0.5 * d * d;
    }
    let m = mlp.outputs();
    2.0 * (s / data.n as f64 + 2.0 * gamma(m + data.n + 2) * c)
}

/// `w − θ` for `v = w + θ`: the reflected perturbation, `2w − v`.
fn reflect(w: &[Vec<f64>], v: &[Vec<f64>]) -> Vec<Vec<f64>> {
    w.iter()
        .zip(v)
        .map(|(w, v)| w.iter().zip(v).map(|(w, v)| w - (v - w)).collect())
        .collect()
}

fn bits_differing(a: f64, b: f64) -> u64 {
    u64::from((a.to_bits() ^ b.to_bits()).count_ones())
}

/// Distance in units in the last place between two losses (both ≥ 0, so
/// their bit patterns are ordered like the numbers).
fn ulps(a: f64, b: f64) -> u64 {
    a.to_bits().abs_diff(b.to_bits())
}

/// The loss before and after rescaling, with the rounding bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossInvariance {
    /// `C(w)`.
    pub before: f64,
    /// `C(w')`.
    pub after: f64,
    /// The bound `B` on `|C(w') − C(w)|`.
    pub bound: f64,
}

impl LossInvariance {
    /// `|C(w') − C(w)| / B`: at most 1 for an invariant rescaling.
    #[must_use]
    pub fn ratio(&self) -> f64 {
        (self.after - self.before).abs() / self.bound
    }

    /// Number of bits in which `C(w')` and `C(w)` differ.
    #[must_use]
    pub fn differing_bits(&self) -> u64 {
        bits_differing(self.before, self.after)
    }

    /// `|C(w') − C(w)|` in units in the last place.
    #[must_use]
    pub fn ulps(&self) -> u64 {
        ulps(self.before, self.after)
    }
}

/// `C` before and after `rescale(mlp, params, rescaling)`.
#[must_use]
pub fn loss_invariance(
    mlp: &Mlp,
    params: &[Vec<f64>],
    data: &Data,
    rescaling: Rescaling,
) -> LossInvariance {
    let scaled = rescale(mlp, params, rescaling);
    LossInvariance {
        before: mlp.loss(&views(params), data),
        after: mlp.loss(&views(&scaled), data),
        bound: rounding_bound(mlp, params, params, data),
    }
}

/// The noise and draws of a [`smoothed`] comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Smoothing {
    /// Fixed (SmoothOut) or per-row (AdaSmoothOut).
    pub scaling: Scaling,
    /// Which buffers get noise.
    pub perturb: Perturb,
    /// Strength `a` of `U(−a, a)`.
    pub a: f64,
    /// Number of draws `N`.
    pub draws: u64,
    /// SmoothOut seed.
    pub seed: u64,
}

/// The smoothed loss of the original and of the rescaled network, draw by
/// draw with the same draws.
#[derive(Clone, Debug)]
pub struct SmoothedInvariance {
    /// `C(w + θ̂_d)` over the draws.
    pub before: MeanVar,
    /// Paired differences `D_d = C(w' + θ̂'_d) − C(w + θ̂_d)`.
    pub diff: MeanVar,
    /// `max_d |D_d| / B_d`.
    pub max_ratio: f64,
    /// Total number of differing bits between the paired losses.
    pub differing_bits: u64,
    /// `max_d |D_d|` in units in the last place of `C`.
    pub max_ulps: u64,
}

impl SmoothedInvariance {
    /// `|D̄| / SE(D)`: how many standard errors the change in `C̄` is from 0
    /// (0 when every `D_d` is 0).
    #[must_use]
    pub fn z(&self) -> f64 {
        self.diff.z_score(0.0)
    }

    /// `|D̄| / C̄(w)`: the relative change in `C̄`.
    #[must_use]
    pub fn relative_change(&self) -> f64 {
        self.diff.mean().abs() / self.before.mean()
    }
}

/// `C̄` of the original and of its rescaled copy under the library's
/// SmoothOut with `smoothing` on `H`'s backend, with common draws (the
/// perturbed buffers are downloaded after each perturbation).
///
/// # Panics
///
/// If the rescaling is invalid (see [`rescale`]), the library refuses the
/// configuration (e.g. `a < 0`) or the backend fails.
#[must_use]
pub fn smoothed<H: Harness>(
    mlp: &Mlp,
    params: &[Vec<f64>],
    data: &Data,
    rescaling: Rescaling,
    smoothing: Smoothing,
) -> SmoothedInvariance {
    let backend = H::backend::<f64>();
    let next = 2 * rescaling.what.layer();
    let specs: Vec<_> = mlp
        .specs()
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let skip = smoothing.perturb == Perturb::AllButCompensating && i == next;
            s.with_perturbed(!skip)
        })
        .collect();
    let config = Config::new(Noise::uniform(smoothing.a).expect("a valid strength"))
        .with_scaling(smoothing.scaling)
        .with_denoise(Denoise::Exact)
        .with_seed(smoothing.seed);
    let new = || SmoothOut::new(&backend, config, specs.clone()).expect("a valid configuration");
    let (mut so, mut so_scaled) = (new(), new());
    let w = params.to_vec();
    let w_scaled = rescale(mlp, params, rescaling);
    let mut buf = upload_all::<H, f64>(&backend, &w).expect("upload");
    let mut buf_scaled = upload_all::<H, f64>(&backend, &w_scaled).expect("upload");
    let mut out = SmoothedInvariance {
        before: MeanVar::default(),
        diff: MeanVar::default(),
        max_ratio: 0.0,
        differing_bits: 0,
        max_ulps: 0,
    };
    for d in 0..smoothing.draws {
        let draw = Draw::new(d, 0);
        let perturbed = |so: &mut SmoothOut<H::Backend<f64>>, p: &mut Vec<Buf<H, f64>>| {
            let g = so.guard(&backend, p, draw).expect("perturb");
            let v = download_all::<H, f64>(&backend, &g).expect("download");
            g.denoise().expect("de-noise");
            v
        };
        let v = perturbed(&mut so, &mut buf);
        let v_scaled = perturbed(&mut so_scaled, &mut buf_scaled);
        let (c0, c1) = (
            mlp.loss(&views(&v), data),
            mlp.loss(&views(&v_scaled), data),
        );
        // The antithetic partner −θ (θ is symmetric): its first-order part
        // of D cancels, leaving the O(a²) change of C̄ (module docs).
        let (r0, r1) = (
            mlp.loss(&views(&reflect(&w, &v)), data),
            mlp.loss(&views(&reflect(&w_scaled, &v_scaled)), data),
        );
        out.before.push(0.5 * (c0 + r0));
        out.diff.push(0.5 * ((c1 - c0) + (r1 - r0)));
        out.differing_bits += bits_differing(c0, c1);
        out.max_ulps = out.max_ulps.max(ulps(c0, c1));
        if c1 != c0 {
            let ratio = (c1 - c0).abs() / rounding_bound(mlp, params, &v, data);
            out.max_ratio = out.max_ratio.max(ratio);
        }
    }
    out
}

/// The report's network, weights and data: `[4, 8, 8, 3]`, He weights,
/// biases `N(0, 0.3²)`, 32 samples.
#[must_use]
pub fn report_setting() -> (Mlp, Vec<Vec<f64>>, Data) {
    let mlp = Mlp::new(&[4, 8, 8, 3]);
    let params = mlp.init(61, 0.3);
    let data = mlp.data(32, 62);
    (mlp, params, data)
}

/// Powers of two the bit-identity rows use.
pub const POWERS_OF_TWO: [f64; 3] = [0.125, 4.0, 32.0];
/// Other factors, for the rounding-bound rows.
pub const FACTORS: [f64; 3] = [0.3, 1.7, 7.1];

/// The report rows.
pub fn rows() -> Vec<Row> {
    let (mlp, params, data) = report_setting();
    let net = format!("MLP {:?}, n = {}", mlp.sizes(), data.n);
    let mut rows = Vec::new();
    let all_units: Vec<Rescale> = (1..mlp.layers())
        .flat_map(|layer| (0..mlp.sizes()[layer]).map(move |unit| Rescale::Unit { layer, unit }))
        .collect();

    let (mut bits, mut ratio, mut max_ulps) = (0, 0.0f64, 0);
    for &what in &all_units {
        for c in POWERS_OF_TWO {
            bits +=
                loss_invariance(&mlp, &params, &data, Rescaling::correct(what, c)).differing_bits();
        }
        for c in FACTORS {
            let l = loss_invariance(&mlp, &params, &data, Rescaling::correct(what, c));
            ratio = ratio.max(l.ratio());
            max_ulps = max_ulps.max(l.ulps());
        }
    }
    rows.push(Row::at_most(
        NAME,
        "C(w') = C(w), unit rescaling by a power of two: differing bits",
        "ReLU homogeneity",
        format!(
            "{net}; each of {} hidden units, c ∈ {POWERS_OF_TWO:?}",
            all_units.len()
        ),
        bits as f64,
        0.0,
    ));
    rows.push(Row::at_most(
        NAME,
        "C(w') = C(w) to rounding, other c: max |ΔC| / B",
        "ReLU homogeneity",
        format!(
            "{net}; each of {} hidden units, c ∈ {FACTORS:?}; largest |ΔC| {max_ulps} ulp",
            all_units.len()
        ),
        ratio,
        1.0,
    ));
    let cases = invariant_cases();
    let reference: Vec<Vec<Row>> = cases
        .iter()
        .map(|&case| invariant_rows::<RefHarness>(&mlp, &params, &data, case))
        .collect();
    rows.extend(reference.iter().flatten().cloned());
    rows.extend(not_invariant_rows::<RefHarness>(&mlp, &params, &data));
    push_cpu_cases(
        &mut rows,
        NAME,
        &reference,
        &CPU_CASES,
        |i| invariant_rows::<CpuHarness>(&mlp, &params, &data, cases[i]),
        "the reference rows above of the same cases",
    );
    rows
}

/// A rescaling under which AdaSmoothOut is invariant, which buffers are
/// perturbed, and its label in the report.
pub type Case = (Rescale, Perturb, &'static str);

/// The invariant cases of the report (on its `[4, 8, 8, 3]` network).
#[must_use]
pub fn invariant_cases() -> [Case; 4] {
    [
        (
            Rescale::Layer { layer: 1 },
            Perturb::All,
            "whole layer 1, every buffer perturbed",
        ),
        (
            Rescale::Layer { layer: 2 },
            Perturb::All,
            "whole layer 2, every buffer perturbed",
        ),
        (
            Rescale::Unit { layer: 1, unit: 3 },
            Perturb::AllButCompensating,
            "unit 3 of layer 1, W_2 unperturbed",
        ),
        (
            Rescale::Unit { layer: 2, unit: 5 },
            Perturb::AllButCompensating,
            "unit 5 of layer 2, W_3 unperturbed",
        ),
    ]
}

/// The cases of [`invariant_cases`] the report also runs on the CPU
/// backend: one of each kind (a whole layer; a unit with its compensating
/// weight unperturbed). Each of the `2 · 6 · 500` perturbations of a case
/// costs the CPU backend a few thread hand-offs per buffer, so all four
/// and the non-invariant rows would add about eight seconds.
pub const CPU_CASES: [usize; 2] = [0, 3];

/// The two rows of one invariant case on `H`'s backend (see
/// [`Harness::tag`] for the setting): bit identity for powers of two, the
/// rounding bound for other factors; 500 AdaSmoothOut draws per factor.
#[must_use]
pub fn invariant_rows<H: Harness>(
    mlp: &Mlp,
    params: &[Vec<f64>],
    data: &Data,
    (what, perturb, label): Case,
) -> Vec<Row> {
    let net = format!("MLP {:?}, n = {}", mlp.sizes(), data.n);
    let tag = H::tag();
    let draws = 500;
    let ada = Smoothing {
        scaling: Scaling::FilterNorm,
        perturb,
        a: 0.1,
        draws,
        seed: 63,
    };
    let mut bits = 0;
    for c in POWERS_OF_TWO {
        bits += smoothed::<H>(mlp, params, data, Rescaling::correct(what, c), ada).differing_bits;
    }
    let (mut ratio, mut max_ulps) = (0.0f64, 0);
    for c in FACTORS {
        let s = smoothed::<H>(mlp, params, data, Rescaling::correct(what, c), ada);
        ratio = ratio.max(s.max_ratio);
        max_ulps = max_ulps.max(s.max_ulps);
    }
    vec![
        Row::at_most(
            NAME,
            format!(
                "AdaSmoothOut C̄(w') = C̄(w), same draws, c a power of two: differing bits ({label})"
            ),
            "Eq. 12",
            format!("{net}; a = 0.1, {draws} draws per c, c ∈ {POWERS_OF_TWO:?}{tag}"),
            bits as f64,
            0.0,
        ),
        Row::at_most(
            NAME,
            format!("AdaSmoothOut C̄(w') = C̄(w) to rounding, per draw: max |ΔC| / B ({label})"),
            "Eq. 12",
            format!(
                "{net}; a = 0.1, {draws} draws per c, c ∈ {FACTORS:?}; largest |ΔC| {max_ulps} ulp{tag}"
            ),
            ratio,
            1.0,
        ),
    ]
}

/// The rows of the non-invariant cases on `H`'s backend (see
/// [`Harness::tag`] for the setting): 5000 common draws each.
#[must_use]
pub fn not_invariant_rows<H: Harness>(mlp: &Mlp, params: &[Vec<f64>], data: &Data) -> Vec<Row> {
    let net = format!("MLP {:?}, n = {}", mlp.sizes(), data.n);
    let tag = H::tag();
    let mut rows = Vec::new();
    let draws = 5_000;
    for (what, scaling, perturb, a, c, claim) in [
        (
            Rescale::Unit { layer: 1, unit: 3 },
            Scaling::Fixed,
            Perturb::AllButCompensating,
            0.1,
            4.0,
            "Fixed noise is not invariant: unit 3 of layer 1 rescaled (W_2 unperturbed)",
        ),
        (
            Rescale::Layer { layer: 1 },
            Scaling::Fixed,
            Perturb::All,
            0.1,
            4.0,
            "Fixed noise is not invariant: whole layer 1 rescaled",
        ),
        (
            Rescale::Unit { layer: 1, unit: 3 },
            Scaling::FilterNorm,
            Perturb::All,
            0.1,
            4.0,
            "AdaSmoothOut is not invariant when one unit is rescaled and W_2 is perturbed (its rows change norm unevenly)",
        ),
    ] {
        let s = smoothed::<H>(
            mlp,
            params,
            data,
            Rescaling::correct(what, c),
            Smoothing {
                scaling,
                perturb,
                a,
                draws,
                seed: 64,
            },
        );
        rows.push(Row::at_least(
            NAME,
            format!("{claim}: paired |D̄| / SE"),
            "Eq. 12",
            format!(
                "{net}; {scaling:?}, a = {a}, c = {c}, {draws} common draws; relative change of C̄ {:.2e}{tag}",
                s.relative_change()
            ),
            s.z(),
            Z_BOUND,
        ));
    }
    rows
}
