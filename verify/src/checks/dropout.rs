//! 7. Dropout as Bernoulli noise (end of §III-B).
//!
//! The paper views dropout (of weights: DropConnect) as SmoothOut with
//! Bernoulli noise that adapts to the weight it perturbs:
//!
//! ```text
//! θ_i = −w_i with probability p (the dropout ratio),  θ_i = 0 otherwise
//! C̄(w) = E[C(w + θ)] = E[C(w ∘ m)] = Σ_m p^{#dropped(m)} (1 − p)^{k − #dropped(m)} C(w ∘ m)
//! ```
//!
//! with `m ∈ {0, 1}^k` the keep mask. On a network of `k ≤ 16` parameters
//! the sum over all `2^k` masks is computed exactly ([`exact_expectation`]),
//! and the library's Monte Carlo estimates must agree with it:
//!
//! * [`Objective`] with [`Noise::bernoulli`] (copy by copy through
//!   `Objective::perturbed`, so that the standard error is known);
//! * [`SmoothOut`] with `Denoise::Exact` (guard API) on a [`Harness`]'s
//!   backend (the core reference; the CPU backend in rows of their own,
//!   [`CPU_DRAWS`] draws per `p`, which must measure what the reference
//!   measures with those draws), which must also give the weights back bit
//!   for bit;
//! * the gradient `Objective::value_and_grad`, whose expectation is
//!   `E[m ∘ ∇C(w ∘ m)]` ([`exact_gradient`], enumerated too), in batches
//!   whose means give the standard error;
//! * the frequency of dropped weights, against `p`.
//!
//! The library draws a drop when the top 24 bits of a Philox word fall
//! below `round(p · 2²⁴)`, so its probability is [`effective_p`], within
//! 3·10⁻⁸ of `p`; the enumeration uses that probability, so the comparison
//! is exact in expectation (the report's `p` are multiples of 2⁻²⁴ anyway).
//!
//! # Broken variants
//!
//! [`Variant::KeepProbability`] draws with `1 − p` (the keep probability
//! used as the drop probability) and [`Variant::Inverted`] scales the kept
//! weights by `1/(1 − p)`, as inverted dropout does at training time. Both
//! are what a plausible implementation of "dropout as noise" might do, and
//! neither is the paper's θ. The tests show that both miss the enumeration
//! by many standard errors, and that `KeepProbability` also misses the drop
//! frequency. `KeepProbability` coincides with the correct draw at
//! `p = 1/2` (then `1 − p = p`, and the draws are identical bit for bit);
//! `Inverted` coincides at `p = 0` only.
//!
//! # Tolerances
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | Monte Carlo mean of `C(w ∘ m)` vs enumeration | `≤ 5` standard errors ([`Z_BOUND`]) | `N` independent copies, sample standard error; the enumeration's own rounding (a sum of 2¹⁶ positive terms: at most `γ_{2¹⁶}` ≈ 7·10⁻¹² relative) is far below one SE (~10⁻³ relative) |
//! | drop frequency vs `p` | `≤ 5` binomial standard errors `√(p(1−p)/(N k))` | independent draws |
//! | gradient components vs enumeration | largest of `k` batch-mean z-scores `≤ 5` | 100 batches, so the batch means are close to normal; `k ≤ 16` comparisons, false-alarm chance below 10⁻⁴ |
//! | weights after `Denoise::Exact` | 0 differing bits | the step restores a copy |
//! | CPU-backend rows ([`CPU_DRAWS`] draws per `p`) vs the same rows on the reference | 0 differing bits of the measured values | the CPU backend gives the reference's bits (check 9) |

use smoothout::unit::bernoulli_threshold;
use smoothout::{Config, Denoise, Draw, Noise, Objective, SmoothOut};

use crate::harness::{agreement_row, download_all, upload_all, CpuHarness, Harness, RefHarness};
use crate::mlp::{Data, Mlp};
use crate::stats::{MeanVar, Z_BOUND};
use crate::Row;

/// Title in the report.
pub const NAME: &str = "7. Dropout as Bernoulli noise";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "The library's Bernoulli noise (θ_i = −w_i with probability p) drops \
     weights with frequency p, and its Monte Carlo loss and gradient agree with the exact \
     expected DropConnect loss and gradient enumerated over all 2^k masks.";

/// How the Bernoulli noise is turned into a perturbed network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The paper's θ: drop each weight with probability `p`.
    Correct,
    /// Broken: drop with probability `1 − p`.
    KeepProbability,
    /// Broken: drop with probability `p`, scale the kept weights by
    /// `1/(1 − p)` (inverted dropout).
    Inverted,
}

impl Variant {
    fn drop_probability(self, p: f64) -> f64 {
        match self {
            Variant::KeepProbability => 1.0 - p,
            Variant::Correct | Variant::Inverted => p,
        }
    }

    /// Applies the variant's rescaling to a dropped copy.
    fn finish(self, p: f64, w: &mut [f64]) {
        if self == Variant::Inverted {
            let s = 1.0 / (1.0 - p);
            for x in w {
                *x *= s;
            }
        }
    }
}

/// The probability with which the library drops an element when asked for
/// `p`: `round(p · 2²⁴) / 2²⁴`.
#[must_use]
pub fn effective_p(p: f64) -> f64 {
    f64::from(bernoulli_threshold(p)) / 16_777_216.0
}

fn mask_probability(p: f64, k: usize, dropped: u32) -> f64 {
    p.powi(dropped as i32) * (1.0 - p).powi((k as u32 - dropped) as i32)
}

/// `E[C(w ∘ m)]` over the keep masks `m` with drop probability
/// [`effective_p`]`(p)`, by enumeration (masks in binary order).
///
/// # Panics
///
/// If `w` has more than 24 elements (2²⁴ masks) or the wrong length.
#[must_use]
pub fn exact_expectation(mlp: &Mlp, w: &[f64], data: &Data, p: f64) -> f64 {
    let k = w.len();
    assert!(k <= 24, "{k} parameters: too many masks to enumerate");
    let p = effective_p(p);
    let mut x = vec![0.0; k];
    let mut sum = 0.0;
    for mask in 0u32..1 << k {
        for (i, (x, w)) in x.iter_mut().zip(w).enumerate() {
            *x = if mask >> i & 1 == 1 { 0.0 } else { *w };
        }
        let prob = mask_probability(p, k, mask.count_ones());
        if prob > 0.0 {
            sum += prob * mlp.loss(&mlp.split(&x), data);
        }
    }
    sum
}

/// `loss_and_grad` of `mlp` on a flat parameter vector.
fn flat_loss_and_grad(mlp: &Mlp, x: &[f64], data: &Data, g: &mut [f64]) -> f64 {
    let mut parts: Vec<&mut [f64]> = Vec::with_capacity(2 * mlp.layers());
    let mut rest = g;
    for n in mlp.lens() {
        let (a, b) = rest.split_at_mut(n);
        parts.push(a);
        rest = b;
    }
    mlp.loss_and_grad(&mlp.split(x), data, &mut parts)
}

/// `E[m ∘ ∇C(w ∘ m)]`, the gradient of `C̄` under Bernoulli noise, by
/// enumeration as in [`exact_expectation`].
///
/// # Panics
///
/// As [`exact_expectation`].
#[must_use]
pub fn exact_gradient(mlp: &Mlp, w: &[f64], data: &Data, p: f64) -> Vec<f64> {
    let k = w.len();
    assert!(k <= 24, "{k} parameters: too many masks to enumerate");
    let p = effective_p(p);
    let (mut x, mut g, mut sum) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
    for mask in 0u32..1 << k {
        for (i, (x, w)) in x.iter_mut().zip(w).enumerate() {
            *x = if mask >> i & 1 == 1 { 0.0 } else { *w };
        }
        let prob = mask_probability(p, k, mask.count_ones());
        if prob > 0.0 {
            flat_loss_and_grad(mlp, &x, data, &mut g);
            for (i, (s, g)) in sum.iter_mut().zip(&g).enumerate() {
                if mask >> i & 1 == 0 {
                    *s += prob * g;
                }
            }
        }
    }
    sum
}

/// A Monte Carlo run: the losses of the perturbed copies and how many
/// weights were dropped.
#[derive(Clone, Debug, Default)]
pub struct MonteCarlo {
    /// `C` of each perturbed copy.
    pub loss: MeanVar,
    /// Nonzero weights set to zero, over all copies.
    pub dropped: u64,
    /// Nonzero weights seen, over all copies.
    pub elements: u64,
}

impl MonteCarlo {
    /// How many standard errors the mean loss lies from `exact`.
    #[must_use]
    pub fn z(&self, exact: f64) -> f64 {
        self.loss.z_score(exact)
    }

    /// The observed drop frequency.
    #[must_use]
    pub fn frequency(&self) -> f64 {
        self.dropped as f64 / self.elements as f64
    }

    /// How many binomial standard errors the drop frequency lies from
    /// [`effective_p`]`(p)`.
    #[must_use]
    pub fn frequency_z(&self, p: f64) -> f64 {
        let p = effective_p(p);
        let gap = (self.frequency() - p).abs();
        if gap == 0.0 {
            0.0
        } else {
            gap / (p * (1.0 - p) / self.elements as f64).sqrt()
        }
    }

    fn record(&mut self, w: &[f64], dropped_copy: &[f64]) {
        for (w, x) in w.iter().zip(dropped_copy) {
            if *w != 0.0 {
                self.elements += 1;
                self.dropped += u64::from(*x == 0.0);
            }
        }
    }
}

/// `copies` perturbed copies of the flat parameters `w` from the library's
/// [`Objective`] with Bernoulli noise (seed `seed`), turned into networks
/// as `variant` says.
///
/// # Panics
///
/// If `p ∉ [0, 1]` or `copies == 0` (the library refuses them), or
/// `Variant::Inverted` with `p = 1`.
#[must_use]
pub fn objective_monte_carlo(
    mlp: &Mlp,
    w: &[f64],
    data: &Data,
    p: f64,
    copies: usize,
    seed: u64,
    variant: Variant,
) -> MonteCarlo {
    let noise = Noise::bernoulli(variant.drop_probability(p)).expect("p in [0, 1]");
    let obj = Objective::new(noise, copies, seed).expect("copies >= 1");
    let mut x = vec![0.0; w.len()];
    let mut mc = MonteCarlo::default();
    for i in 0..copies {
        obj.perturbed(i, w, &mut x).expect("matching lengths");
        mc.record(w, &x);
        variant.finish(p, &mut x);
        mc.loss.push(mlp.loss(&mlp.split(&x), data));
    }
    mc
}

/// `draws` draws of the library's [`SmoothOut`] step with Bernoulli noise
/// and exact de-noising (guard API, on `H`'s backend) on the buffers
/// `params`, and the number of bits in which the weights differ from
/// `params` after the last de-noise (0 when restored exactly). The perturbed
/// buffers are downloaded after each perturbation.
///
/// # Panics
///
/// As [`objective_monte_carlo`], or if the backend fails.
#[must_use]
pub fn smoothout_monte_carlo<H: Harness>(
    mlp: &Mlp,
    params: &[Vec<f64>],
    data: &Data,
    p: f64,
    draws: u64,
    seed: u64,
    variant: Variant,
) -> (MonteCarlo, u64) {
    let backend = H::backend::<f64>();
    let noise = Noise::bernoulli(variant.drop_probability(p)).expect("p in [0, 1]");
    let config = Config::new(noise)
        .with_denoise(Denoise::Exact)
        .with_seed(seed);
    let mut so = SmoothOut::new(&backend, config, mlp.specs()).expect("a valid configuration");
    let mut w = upload_all::<H, f64>(&backend, params).expect("upload");
    let flat_w: Vec<f64> = params.concat();
    let mut mc = MonteCarlo::default();
    for d in 0..draws {
        let guard = so
            .guard(&backend, &mut w, Draw::new(d, 0))
            .expect("perturb");
        let mut x: Vec<f64> = download_all::<H, f64>(&backend, &guard)
            .expect("download")
            .concat();
        guard.denoise().expect("de-noise");
        mc.record(&flat_w, &x);
        variant.finish(p, &mut x);
        mc.loss.push(mlp.loss(&mlp.split(&x), data));
    }
    let bits = download_all::<H, f64>(&backend, &w)
        .expect("download")
        .concat()
        .iter()
        .zip(&flat_w)
        .map(|(a, b)| u64::from((a.to_bits() ^ b.to_bits()).count_ones()))
        .sum();
    (mc, bits)
}

/// The library's Bernoulli gradient `Objective::value_and_grad` in
/// `batches` independent batches (seeds `seed, seed + 1, …`) of `copies`
/// copies each: one [`MeanVar`] of batch means per component.
///
/// # Panics
///
/// As [`objective_monte_carlo`].
#[must_use]
pub fn objective_gradient(
    mlp: &Mlp,
    w: &[f64],
    data: &Data,
    p: f64,
    batches: u64,
    copies: usize,
    seed: u64,
) -> Vec<MeanVar> {
    let k = w.len();
    let noise = Noise::bernoulli(p).expect("p in [0, 1]");
    let mut out = vec![MeanVar::default(); k];
    let (mut s, mut gs, mut g) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
    for b in 0..batches {
        let obj = Objective::new(noise, copies, seed.wrapping_add(b)).expect("copies >= 1");
        obj.value_and_grad(w, &mut s, &mut gs, &mut g, |x, gx| {
            flat_loss_and_grad(mlp, x, data, gx)
        })
        .expect("matching lengths");
        for (m, g) in out.iter_mut().zip(&g) {
            m.push(*g);
        }
    }
    out
}

/// The largest z-score of the batch means against the exact gradient.
#[must_use]
pub fn gradient_z(batches: &[MeanVar], exact: &[f64]) -> f64 {
    batches
        .iter()
        .zip(exact)
        .map(|(m, e)| m.z_score(*e))
        .fold(0.0, f64::max)
}

/// The report's network, weights and data: `[3, 3, 1]` (k = 16
/// parameters), He weights, biases `N(0, 0.3²)`, 16 samples.
#[must_use]
pub fn report_setting() -> (Mlp, Vec<Vec<f64>>, Data) {
    let mlp = Mlp::new(&[3, 3, 1]);
    let params = mlp.init(71, 0.3);
    let data = mlp.data(16, 72);
    (mlp, params, data)
}

/// Draws per `p` of the report's CPU-backend rows. Each draw costs the CPU
/// backend a few thread hand-offs per buffer (about 90 µs on two threads),
/// so the reference's 50 000 draws at three `p` would add some 13 s.
pub const CPU_DRAWS: u64 = 2_000;

/// The rows of the SmoothOut route alone at drop probability `p`, `draws`
/// draws (seed 74, as in the report), on `H`'s backend (see
/// [`Harness::tag`] for the setting): the mean against the enumeration,
/// the drop frequency, and the weights restored.
#[must_use]
pub fn smoothout_rows<H: Harness>(
    mlp: &Mlp,
    params: &[Vec<f64>],
    data: &Data,
    p: f64,
    draws: u64,
) -> Vec<Row> {
    let w = params.concat();
    let k = w.len();
    let net = format!("MLP {:?} (k = {k}), n = {}", mlp.sizes(), data.n);
    let tag = H::tag();
    let exact = exact_expectation(mlp, &w, data, p);
    let (so, bits) = smoothout_monte_carlo::<H>(mlp, params, data, p, draws, 74, Variant::Correct);
    vec![
        Row::at_most(
            NAME,
            "SmoothOut::guard (Bernoulli, exact de-noise) mean of C(w+θ) = exact E (standard errors)",
            "§III-B",
            format!("{net}; p = {p}, {draws} draws; exact E = {exact:.6}{tag}"),
            so.z(exact),
            Z_BOUND,
        ),
        Row::at_most(
            NAME,
            "SmoothOut::guard drop frequency = p (binomial standard errors)",
            "§III-B",
            format!(
                "{net}; p = {p}, {draws} × {k} draws; observed {:.5}{tag}",
                so.frequency()
            ),
            so.frequency_z(p),
            Z_BOUND,
        ),
        Row::at_most(
            NAME,
            "weights restored after every Bernoulli draw (Denoise::Exact): differing bits",
            "Alg. 1",
            format!("{net}; p = {p}, {draws} draws{tag}"),
            bits as f64,
            0.0,
        ),
    ]
}

/// The report rows: the enumeration against both library routes on the
/// reference; the SmoothOut route again on the CPU backend with
/// [`CPU_DRAWS`] draws per `p`; and a row asserting that the CPU rows
/// measured what the same rows measure on the reference at that size.
pub fn rows() -> Vec<Row> {
    let mut rows = reference_rows();
    let (mlp, params, data) = report_setting();
    let mut cpu = Vec::new();
    let mut reference = Vec::new();
    for p in REPORT_P {
        cpu.extend(smoothout_rows::<CpuHarness>(
            &mlp, &params, &data, p, CPU_DRAWS,
        ));
        reference.extend(smoothout_rows::<RefHarness>(
            &mlp, &params, &data, p, CPU_DRAWS,
        ));
    }
    let agree = agreement_row(
        NAME,
        CpuHarness::NAME,
        &reference,
        &cpu,
        "run for this row with the same draws, not shown",
    );
    rows.extend(cpu);
    rows.push(agree);
    rows
}

/// The drop probabilities of the report.
pub const REPORT_P: [f64; 3] = [0.1, 0.25, 0.5];

/// The report's reference rows.
fn reference_rows() -> Vec<Row> {
    let (mlp, params, data) = report_setting();
    let w = params.concat();
    let k = w.len();
    let net = format!("MLP {:?} (k = {k}), n = {}", mlp.sizes(), data.n);
    let mut rows = Vec::new();
    let copies = 50_000;
    for p in REPORT_P {
        let exact = exact_expectation(&mlp, &w, &data, p);
        let obj = objective_monte_carlo(&mlp, &w, &data, p, copies, 73, Variant::Correct);
        let (so, bits) = smoothout_monte_carlo::<RefHarness>(
            &mlp,
            &params,
            &data,
            p,
            copies as u64,
            74,
            Variant::Correct,
        );
        let setting = |what: &str| format!("{net}; p = {p}, {copies} {what}; exact E = {exact:.6}");
        rows.push(Row::at_most(
            NAME,
            "Objective (Bernoulli) mean of C(w+θ) = exact E[C(w∘m)] (standard errors)",
            "§III-B",
            setting("copies"),
            obj.z(exact),
            Z_BOUND,
        ));
        rows.push(Row::at_most(
            NAME,
            "SmoothOut::guard (Bernoulli, exact de-noise) mean of C(w+θ) = exact E (standard errors)",
            "§III-B",
            setting("draws"),
            so.z(exact),
            Z_BOUND,
        ));
        rows.push(Row::at_most(
            NAME,
            "drop frequency = p (binomial standard errors; larger of Objective and SmoothOut)",
            "§III-B",
            format!(
                "{net}; p = {p}, {copies} × {k} draws each; observed {:.5} and {:.5}",
                obj.frequency(),
                so.frequency()
            ),
            obj.frequency_z(p).max(so.frequency_z(p)),
            Z_BOUND,
        ));
        rows.push(Row::at_most(
            NAME,
            "weights restored after every Bernoulli draw (Denoise::Exact): differing bits",
            "Alg. 1",
            format!("{net}; p = {p}, {copies} draws"),
            bits as f64,
            0.0,
        ));
    }
    let (p, batches, per) = (0.25, 100, 500);
    let exact = exact_gradient(&mlp, &w, &data, p);
    let g = objective_gradient(&mlp, &w, &data, p, batches, per, 75);
    rows.push(Row::at_most(
        NAME,
        "Objective gradient = exact E[m∘∇C(w∘m)] (largest z over components)",
        "§III-B, Eq. 10",
        format!("{net}; p = {p}, {batches} batches of {per} copies"),
        gradient_z(&g, &exact),
        Z_BOUND,
    ));
    rows
}
