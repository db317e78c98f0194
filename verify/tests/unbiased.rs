//! Check 1 (Eq. 6, 8) over random functions, points and noise, and the
//! broken variants it must reject.
//!
//! The property tests run the report's functions on proptest inputs (fixed
//! proptest seed, so a run reproduces) and require every row to pass; the
//! Monte Carlo bound is 5 standard errors per comparison (module docs of
//! `smoothout_verify::checks::unbiased`). The broken-variant tests use
//! fixed inputs and state the gap they expect, in standard errors: each is
//! far beyond the 5-SE bound, and the measured z must agree with the
//! prediction to within 5 (the estimate's own noise) plus 10% (the sample
//! standard deviation's error at these N).

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use smoothout::Noise;
use smoothout_verify::checks::unbiased::{
    objective_row, online_rows, report_functions, sample_copies, sample_online, smoothed_rows,
    OnlineLoss, TestFn, Variant,
};
use smoothout_verify::harness::{CpuHarness, Harness, RefHarness};
use smoothout_verify::stats::Z_BOUND;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        rng_seed: RngSeed::Fixed(2018),
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// Uniform U(−a, a) with a ∈ [0.05, 1], or Gaussian with σ ∈ [0.05, 0.6].
fn noise() -> impl Strategy<Value = Noise> {
    prop_oneof![
        (0.05f64..1.0).prop_map(|a| Noise::Uniform { a }),
        (0.05f64..0.6).prop_map(|std| Noise::Gaussian { std }),
    ]
}

fn strength(noise: Noise) -> f64 {
    match noise {
        Noise::Uniform { a } => a,
        Noise::Gaussian { std } => std,
        Noise::Bernoulli { .. } => unreachable!(),
    }
}

/// A test function of one of the five kinds, with a point `w`, in `m ≤ 5`
/// coordinates.
fn function(noise: Noise) -> impl Strategy<Value = (TestFn, Vec<f64>)> {
    (1usize..=5).prop_flat_map(move |m| {
        let v = move |lo: f64, hi: f64| prop::collection::vec(lo..hi, m);
        let w = v(-1.5, 1.5);
        // exp(kᵀθ) stays light-tailed when ‖k‖ · strength ≤ 0.7.
        let kmax = 0.7 / (strength(noise) * (m as f64).sqrt());
        prop_oneof![
            (v(0.05, 5.0), v(-1.0, 1.0)).prop_map(|(h, c)| TestFn::Quadratic { h, c }),
            (v(0.05, 3.0), v(-1.0, 1.0)).prop_map(|(k, c)| TestFn::Quartic { k, c }),
            (v(-2.0, 2.0), v(0.2, 5.0)).prop_map(|(amp, b)| TestFn::CosSum { amp, b }),
            v(0.2, 3.0).prop_map(|b| TestFn::CosProduct { b }),
            v(-kmax, kmax).prop_map(|k| TestFn::Exp { k }),
        ]
        .prop_flat_map(move |f| (Just(f), w.clone()))
    })
}

proptest! {
    #![proptest_config(config(64))]

    /// Eq. 6: the mean value and gradient over the library's copies match
    /// the closed form within 5 SE, for every kind of test function.
    #[test]
    fn copies_average_to_the_smoothed_loss(
        (noise, (f, w)) in noise().prop_flat_map(|n| (Just(n), function(n))),
        seed in any::<u64>(),
    ) {
        for row in smoothed_rows(&f, &w, noise, 3000, seed, Variant::Correct).unwrap() {
            prop_assert!(row.pass, "{row:?}");
        }
    }
}

proptest! {
    #![proptest_config(config(8))]

    /// `Objective::value_and_grad` is the mean of the per-copy values it
    /// averages, to within its rounding bound.
    #[test]
    fn objective_is_the_mean_of_its_copies(
        noise in noise(), m in 1usize..=6, fseed in any::<u64>(), seed in any::<u64>(),
    ) {
        let row = objective_row(&report_functions(m, fseed), noise, 2000, seed).unwrap();
        prop_assert!(row.pass, "{row:?}");
    }
}

/// An online loss with `m ≤ 4` coordinates and a point `w`.
fn online() -> impl Strategy<Value = (OnlineLoss, Vec<f64>)> {
    (1usize..=4).prop_flat_map(|m| {
        let v = move |lo: f64, hi: f64| prop::collection::vec(lo..hi, m);
        (
            prop_oneof![
                (v(-1.0, 1.0), v(0.0, 1.0)).prop_map(|(mu, s)| OnlineLoss::Quadratic { mu, s }),
                (v(-1.0, 1.0), v(0.0, 2.0)).prop_map(|(mu, s)| OnlineLoss::Cosine { mu, s }),
            ],
            v(-1.5, 1.5),
        )
    })
}

proptest! {
    #![proptest_config(config(24))]

    /// Eq. 7–8: Algorithm 1's perturbation (`SmoothOut::step`) with fresh
    /// data each step averages to `C̄(w) = E_θ E_x Q(x, w + θ)`.
    #[test]
    fn online_steps_average_to_the_smoothed_loss(
        noise in noise(), (q, w) in online(), seed in any::<u64>(),
    ) {
        online_rows_pass::<RefHarness>(&q, &w, noise, seed)?;
    }
}

/// The Eq. 7–8 rows of `q` at `w` on `H` over 3000 steps pass; returns
/// their measured values.
fn online_rows_pass<H: Harness>(
    q: &OnlineLoss,
    w: &[f64],
    noise: Noise,
    seed: u64,
) -> Result<Vec<f64>, TestCaseError> {
    let rows = online_rows::<H>(q, w, noise, 3000, seed, Variant::Correct).unwrap();
    for row in &rows {
        prop_assert!(row.pass, "{row:?}");
    }
    Ok(rows.iter().map(|r| r.measured).collect())
}

/// The same on the CPU backend, both losses and both noises, measuring the
/// reference's values bit for bit.
#[test]
fn online_steps_average_on_cpu() {
    let q = OnlineLoss::Quadratic {
        mu: vec![0.4, -0.3, 0.9],
        s: vec![0.2, 0.7, 0.5],
    };
    let cos = OnlineLoss::Cosine {
        mu: vec![-0.6, 0.1],
        s: vec![1.3, 0.4],
    };
    for (q, w, noise) in [
        (&q, vec![0.1, 0.2, -0.5], Noise::Uniform { a: 0.4 }),
        (&cos, vec![0.8, -1.1], Noise::Gaussian { std: 0.25 }),
    ] {
        let got = online_rows_pass::<CpuHarness>(q, &w, noise, 21).unwrap();
        let want = online_rows_pass::<RefHarness>(q, &w, noise, 21).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "{}", q.name());
    }
}

const N: usize = 4000;

/// `h = (1, 2, 3)` at its centre: `C̄ − C = E θ² · Σh/2`, `∇C̄ = 0`.
fn quadratic() -> (TestFn, Vec<f64>) {
    let c = vec![0.2, -0.1, 0.4];
    (
        TestFn::Quadratic {
            h: vec![1.0, 2.0, 3.0],
            c: c.clone(),
        },
        c,
    )
}

fn assert_near(z: f64, expected: f64, what: &str) {
    eprintln!("{what}: measured {z:.1} SE, expected ≈ {expected:.1} SE, bound {Z_BOUND}");
    assert!(
        (z - expected).abs() <= Z_BOUND + 0.1 * expected,
        "{what}: measured {z:.1} SE, expected ≈ {expected:.1} SE"
    );
}

/// One-sided noise `|θ|` shifts each gradient component of the quadratic by
/// `h E|θ|`, while its per-draw standard deviation is `h sd|θ|`:
///
/// * U(0, a): `E|θ| = a/2`, `sd = a/√12`, so `z = √(3N) ≈ 109.5` at N = 4000;
/// * half-normal: `E|θ| = σ√(2/π)`, `sd = σ√(1 − 2/π)`, so
///   `z = √N · 1.3236 ≈ 83.7`.
///
/// Both are ≥ 16 times the 5-SE bound. At `w = c` the value is blind to
/// this bug (`E|θ|² = E θ²`), which the test records too.
#[test]
fn one_sided_noise_fails() {
    let (f, w) = quadratic();
    let n = N as f64;
    let two_over_pi = 2.0 / std::f64::consts::PI;
    for (noise, expected) in [
        (Noise::Uniform { a: 0.5 }, (3.0 * n).sqrt()),
        (
            Noise::Gaussian { std: 0.3 },
            n.sqrt() * (two_over_pi / (1.0 - two_over_pi)).sqrt(),
        ),
    ] {
        let rows = smoothed_rows(&f, &w, noise, N, 9, Variant::OneSided).unwrap();
        assert!(!rows[1].pass, "gradient must fail: {:?}", rows[1]);
        assert_near(rows[1].measured, expected, "one-sided gradient");
        assert!(rows[0].pass, "value is blind at w = c: {:?}", rows[0]);
    }
}

/// Half-scale noise lowers `C̄ − C` of the quadratic at `w = c` from
/// `E θ² Σh/2` to a quarter of it. With `v = Σ h_i θ_i²/2`:
///
/// * U(−a/2, a/2), a = 0.5: gap `Σh · a²/8 = 0.1875`; `sd(v) = √(Σh²/720) · a² = 0.03486`
///   (`Var θ² = 4b⁴/45` for U(−b, b), b = a/2);
///   `z = 5.378 √N ≈ 340`;
/// * N(0, σ²/4), σ = 0.3: gap `Σh · 3σ²/8 = 0.2025`; `sd(v) = √(Σh²/32) σ² = 0.05953`
///   (`Var z² = 2`); `z = 3.402 √N ≈ 215`.
#[test]
fn half_scale_fails() {
    let (f, w) = quadratic();
    let (sh, sh2) = (6.0f64, 14.0f64);
    let n = N as f64;
    let (a, s) = (0.5f64, 0.3f64);
    for (noise, gap, sd) in [
        (
            Noise::Uniform { a },
            sh * a * a / 8.0,
            (sh2 / 720.0).sqrt() * a * a,
        ),
        (
            Noise::Gaussian { std: s },
            sh * 3.0 * s * s / 8.0,
            (sh2 / 32.0).sqrt() * s * s,
        ),
    ] {
        let rows = smoothed_rows(&f, &w, noise, N, 10, Variant::HalfScale).unwrap();
        assert!(!rows[0].pass, "value must fail: {:?}", rows[0]);
        assert_near(rows[0].measured, gap / sd * n.sqrt(), "half-scale value");
    }
}

/// The same per-draw quantities as `sample_copies` reports: a sanity check
/// that the variants really change the noise and the correct one does not.
#[test]
fn variants_change_the_draws() {
    let (f, w) = quadratic();
    let noise = Noise::Uniform { a: 0.5 };
    let means = |v| {
        let s = sample_copies(&f, &w, noise, 1000, 3, v).unwrap();
        s.value.mean()
    };
    let (c, o, h) = (
        means(Variant::Correct),
        means(Variant::OneSided),
        means(Variant::HalfScale),
    );
    // |θ|² = θ², so the values at w = c coincide draw by draw (up to the
    // rounding of (w + θ) − w).
    assert!((c - o).abs() <= 1e-12 * c, "{c} vs {o}");
    assert!(h < 0.3 * c, "half scale: {h} vs {c}");
}

/// Online, quadratic loss at `w = μ`, data `x = μ + s z` with s = 0.1, U(−a, a)
/// noise with a = 0.5, m = 3, T = 4000 steps. Per coordinate, with
/// `y = θ − s z`: `E y² = E θ² + s²`, `E y⁴ = E θ⁴ + 6 E θ² s² + 3s⁴`,
/// `Var(y²/2) = (E y⁴ − (E y²)²)/4`.
///
/// * half scale: gap `m (a²/3 − a²/12)/2 = 0.09375`, per-step sd 0.0322,
///   `z ≈ 184`;
/// * one-sided: each gradient component is `|θ| − s z`, mean `a/2`, sd
///   `√(a²/12 + s²) = 0.1755`, `z ≈ 90`.
#[test]
fn online_broken_variants_fail() {
    let m = 3;
    let (a, s) = (0.5f64, 0.1f64);
    let mu = vec![0.3, -0.2, 0.1];
    let q = OnlineLoss::Quadratic {
        mu: mu.clone(),
        s: vec![s; m],
    };
    let noise = Noise::Uniform { a };
    let t = 4000u64;
    let sqrt_t = (t as f64).sqrt();

    let (m2, m4) = ((a / 2.0).powi(2) / 3.0, (a / 2.0).powi(4) / 5.0);
    let (ey2, ey4) = (m2 + s * s, m4 + 6.0 * m2 * s * s + 3.0 * s.powi(4));
    let sd = (m as f64 * (ey4 - ey2 * ey2) / 4.0).sqrt();
    let gap = m as f64 * (a * a / 3.0 - a * a / 12.0) / 2.0;
    let rows = online_rows::<RefHarness>(&q, &mu, noise, t, 11, Variant::HalfScale).unwrap();
    assert!(!rows[0].pass, "{:?}", rows[0]);
    assert_near(
        rows[0].measured,
        gap / sd * sqrt_t,
        "online half-scale value",
    );

    let rows = online_rows::<RefHarness>(&q, &mu, noise, t, 12, Variant::OneSided).unwrap();
    assert!(!rows[1].pass, "{:?}", rows[1]);
    let z = (a / 2.0) / (a * a / 12.0 + s * s).sqrt() * sqrt_t;
    assert_near(rows[1].measured, z, "online one-sided gradient");

    // And the correct variant passes on the same inputs.
    let s = sample_online::<RefHarness>(&q, &mu, noise, t, 12, Variant::Correct).unwrap();
    assert!(s.grad_z(&[0.0; 3]) <= Z_BOUND);
}
