//! De-noising: de-noised SGD converges to argmin C̄ over random strengths,
//! coefficients and seeds (both de-noising modes, f64 and f32); without
//! de-noising, or subtracting the wrong draw, it misses by far. The
//! convergence body runs on the reference (property test) and on the CPU
//! backend (fixed cases), which must also give the reference's bits.

use proptest::prelude::*;
use smoothout::{Noise, Objective, Result};
use smoothout_verify::checks::denoising::{
    run, Outcome, Setting, Variant, DETECT_Z, MAX_BIAS_RATIO,
};
use smoothout_verify::harness::{CpuHarness, Harness, RefHarness};
use smoothout_verify::stats::{MeanVar, Z_BOUND};

/// One de-noised run on `H` in `f32` (`single`) or `f64`.
fn run_on<H: Harness>(s: &Setting, variant: Variant, seed: u64, single: bool) -> Result<Outcome> {
    if single {
        run::<H, f32>(s, variant, seed)
    } else {
        run::<H, f64>(s, variant, seed)
    }
}

/// The claims of a de-noised run: within 5 SE of argmin C̄, at least 20 SE
/// from argmin C, iterates correlated (the i.i.d. SE far too small).
fn assert_converges(s: &Setting, out: &Outcome) -> std::result::Result<(), TestCaseError> {
    prop_assert!(
        s.bias_ratio() <= MAX_BIAS_RATIO,
        "bias ratio {}",
        s.bias_ratio()
    );
    prop_assert!(out.diverged_at.is_none());
    prop_assert!(out.z() <= Z_BOUND, "{out:?}, z = {}", out.z());
    prop_assert!(out.z_from(s.argmin_loss()) >= DETECT_Z, "{out:?}");
    prop_assert!(out.se > 5.0 * out.naive_se, "{out:?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Fixed: the bounds are confidence bounds, so a run must be reproducible.
        rng_seed: proptest::test_runner::RngSeed::Fixed(8),
        failure_persistence: None,
        ..ProptestConfig::with_cases(8)
    })]

    /// The Polyak mean lies within 5 SE of argmin C̄, and at least 20 SE
    /// from argmin C; the predicted constant-step bias stays below 0.5 SE.
    #[test]
    fn denoised_sgd_converges_to_argmin_smoothed(
        a in 0.4f64..1.5,
        beta in 0.5f64..2.0,
        seed in any::<u64>(),
        exact in any::<bool>(),
        single in any::<bool>(),
    ) {
        let s = Setting::new(a, beta);
        let variant = if exact { Variant::Exact } else { Variant::Regenerate };
        let out = run_on::<RefHarness>(&s, variant, seed, single).unwrap();
        assert_converges(&s, &out)?;
    }

    /// Cardano's root zeroes ∂C̄ = w³ + a²w − β, and the library's
    /// Monte Carlo (Objective) of E[(w + θ)³ − β] at that root is 0 within
    /// 5 SE — the closed form of C̄ matches the library's noise.
    #[test]
    fn argmin_smoothed_is_the_root(a in 0.1f64..2.0, beta in 0.1f64..3.0, seed in any::<u64>()) {
        let s = Setting::new(a, beta);
        let w = s.argmin_smoothed();
        prop_assert!(s.smoothed_slope(w).abs() <= 1e-12 * (1.0 + beta));
        let obj = Objective::new(Noise::uniform(a).unwrap(), 20_000, seed).unwrap();
        let mut mv = MeanVar::default();
        obj.value(&[w], &mut [0.0], |x| {
            let g = x[0].powi(3) - beta;
            mv.push(g);
            g
        })
        .unwrap();
        prop_assert!(mv.z_score(0.0) <= Z_BOUND, "z = {}", mv.z_score(0.0));
    }
}

/// The same claims on the CPU backend, both de-noising modes and both
/// precisions, and every outcome bit for bit the reference's.
#[test]
fn denoised_sgd_converges_on_cpu() {
    let s = Setting::new(0.8, 1.3);
    for (variant, single) in [
        (Variant::Regenerate, false),
        (Variant::Exact, false),
        (Variant::Regenerate, true),
    ] {
        let out = run_on::<CpuHarness>(&s, variant, 29, single).unwrap();
        assert_converges(&s, &out).unwrap();
        let want = run_on::<RefHarness>(&s, variant, 29, single).unwrap();
        assert_eq!(format!("{out:?}"), format!("{want:?}"), "{variant:?}");
        assert_eq!(out.mean.to_bits(), want.mean.to_bits());
        assert_eq!(out.se.to_bits(), want.se.to_bits());
    }
}

/// Without de-noising, or with the wrong draw subtracted, the first claim
/// fails: under the de-noised schedule the mean misses argmin C̄ by more
/// than the 5 SE bound in its own (wide) SE (measured 8–14), and by more
/// than 100 of the de-noised run's SE (measured 500–1250); over the
/// ablation's longer window it misses by more than 20 of its own SE
/// (measured 35–45). The iterates spread more than 50 times wider than
/// de-noised ones (measured 110–230).
#[test]
fn broken_denoising_fails() {
    for (a, beta) in [(0.5, 1.0), (1.0, 1.0), (1.0, 2.0)] {
        let s = Setting::new(a, beta);
        let good = run::<RefHarness, f64>(&s, Variant::Regenerate, 17).unwrap();
        for variant in [Variant::Off, Variant::WrongDraw] {
            let short = run::<RefHarness, f64>(&s, variant, 17).unwrap();
            assert!(short.z() > Z_BOUND, "{variant:?}, a = {a}: {short:?}");
            assert!(
                (short.mean - s.argmin_smoothed()).abs() > 100.0 * good.se,
                "{variant:?}, a = {a}: {short:?} vs {good:?}"
            );
            assert!(short.spread > 50.0 * good.spread);
            let long = run::<RefHarness, f64>(&s.ablation(), variant, 17).unwrap();
            assert!(long.diverged_at.is_none());
            assert!(long.z() > DETECT_Z, "{variant:?}, a = {a}: {long:?}");
        }
    }
}

/// The report rows pass.
#[test]
fn report_rows_pass() {
    let rows = smoothout_verify::checks::denoising::rows();
    // 8 on the reference, the 6 de-noised ones on the CPU, their agreement.
    assert_eq!(rows.len(), 15);
    for r in &rows {
        assert!(
            r.pass,
            "{} [{}]: {} vs {}",
            r.claim, r.setting, r.measured, r.bound
        );
    }
}

/// The input a random proptest run once found (a = 0.112, β = 2.457): for
/// small a Cardano's second cube root cancels catastrophically, and without
/// the Newton polish the root's slope was ~1e-11, above the 1e-12·(1 + β)
/// bound. With it the slope is at rounding level.
#[test]
fn argmin_smoothed_is_accurate_for_small_a() {
    for (a, beta) in [
        (0.11238634807851856, 2.4569324967191633),
        (0.1, 3.0),
        (1e-3, 1.0),
    ] {
        let s = Setting::new(a, beta);
        let w = s.argmin_smoothed();
        assert!(
            s.smoothed_slope(w).abs() <= 1e-12 * (1.0 + beta),
            "a = {a}, β = {beta}: slope {}",
            s.smoothed_slope(w)
        );
    }
}
