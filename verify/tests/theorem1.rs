//! Check 2 (Theorem 1) over random symmetric losses, and the counterexamples
//! it must detect.
//!
//! Bounds are those of `smoothout_verify::checks::theorem1` (quadrature:
//! discretisation plus first-order rounding, computed per coordinate; Monte
//! Carlo: 5 standard errors). Proptest runs from a fixed seed, so a run
//! reproduces.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use smoothout_verify::checks::theorem1::{
    closed_form_partial, closed_form_row, detected_row, flat_row, gram, mc_gradient, mc_rows,
    smoothed_partial, Bowl, Profile, Variant, DETECT_Z, MAX_DEGREE,
};
use smoothout_verify::stats::{max_z, Z_BOUND};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        rng_seed: RngSeed::Fixed(1),
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// A profile symmetric on `[−τ, τ]`, `τ ∈ (1.01a, 3a]`, with outside slopes
/// `R ∈ [1, 5]`, `L ∈ [−5, −1]` (asymmetric as soon as the box is narrowed).
fn profile(a: f64) -> impl Strategy<Value = Profile> {
    (
        prop::collection::vec(0.0f64..2.0, 1..=MAX_DEGREE),
        0.0f64..1.0,
        0.5f64..4.0,
        1.01f64..3.0,
        1.0f64..5.0,
        -5.0f64..-1.0,
    )
        .prop_map(move |(even, cos_amp, cos_freq, t, right, left)| Profile {
            even,
            cos_amp,
            cos_freq,
            tau: t * a,
            right,
            left,
            odd: 0.0,
        })
}

fn separable(max_m: usize) -> impl Strategy<Value = (f64, Vec<Profile>)> {
    (0.05f64..1.0).prop_flat_map(move |a| (Just(a), prop::collection::vec(profile(a), 1..=max_m)))
}

proptest! {
    #![proptest_config(config(64))]

    /// Symmetric on a box wider than the noise: the quadrature of `g'` is 0
    /// to within its bound in every coordinate, the bound is small enough to
    /// mean something, and the detector does not fire.
    #[test]
    fn symmetric_separable_gradient_vanishes((a, profiles) in separable(200)) {
        let row = flat_row(&profiles, a, Variant::Symmetric);
        prop_assert!(row.pass, "{row:?}");
        prop_assert!(row.bound < 1e-10, "bound too loose to mean anything: {row:?}");
        let det = detected_row(&profiles, a, Variant::Symmetric);
        prop_assert!(!det.pass, "false detection: {det:?}");
    }

    /// An odd term `β t³` (|β| ∈ [0.05, 2]) gives `∂C̄ = β a² ≥ 1.25·10⁻⁴`;
    /// a box narrowed to `τ ≤ 0.9a` gives `(R − L)(a − τ)³/(2a) ≥ 2.5·10⁻⁶`
    /// (R − L ≥ 2, a ≥ 0.05). The quadrature bound is below 10⁻¹⁰ (checked
    /// above), so the flat row fails and the detector (10³ × bound) fires
    /// by a factor of more than 10³; the quadrature also agrees with the
    /// closed form `(g(a) − g(−a))/2a`.
    #[test]
    fn counterexamples_are_detected(
        (a, profiles) in separable(50),
        beta in prop_oneof![0.05f64..2.0, -2.0f64..-0.05],
        narrow in 0.0f64..0.9,
    ) {
        for v in [Variant::OddTerm { beta }, Variant::NarrowTau { tau: narrow * a }] {
            let flat = flat_row(&profiles, a, v);
            prop_assert!(!flat.pass, "{flat:?}");
            let det = detected_row(&profiles, a, v);
            prop_assert!(det.pass, "{det:?}");
            let cf = closed_form_row(&profiles, a, v);
            prop_assert!(cf.pass, "{cf:?}");
        }
    }
}

/// The odd-term counterexample of the task: `g = t² + β t³` gives exactly
/// `β a²`; β = 0.1, a = 0.5 → 0.025, against a quadrature bound of order
/// 10⁻¹⁶.
#[test]
fn odd_term_gradient_is_beta_a_squared() {
    let g = Profile {
        even: vec![1.0],
        cos_amp: 0.0,
        cos_freq: 1.0,
        tau: 10.0,
        right: 0.0,
        left: 0.0,
        odd: 0.1,
    };
    let q = smoothed_partial(&g, 0.5);
    eprintln!(
        "t² + 0.1 t³, a = 0.5: quadrature {} ± {}, expected 0.025",
        q.value, q.bound
    );
    assert!((q.value - 0.025).abs() <= q.bound, "{q:?}");
    assert!(q.value >= 1e10 * q.bound, "{q:?}");
    let c = closed_form_partial(&g, 0.5);
    assert!((c.value - 0.025).abs() <= c.bound, "{c:?}");
}

/// A bowl with a random dense `A = BᵀB/m`, `b`, outside slopes and box.
fn bowl() -> impl Strategy<Value = (f64, Bowl, Vec<f64>)> {
    (1usize..=30, 0.05f64..1.0).prop_flat_map(|(m, a)| {
        let v = move |lo: f64, hi: f64, n: usize| prop::collection::vec(lo..hi, n);
        (
            Just(a),
            (
                v(-1.0, 1.0, m * m),
                v(-2.0, 2.0, m),
                1.01f64..3.0,
                v(-5.0, 5.0, m),
                v(-5.0, 5.0, m),
            )
                .prop_map(move |(bm, b, t, right, left)| Bowl {
                    a_mat: gram(&bm, m),
                    b,
                    tau: t * a,
                    right,
                    left,
                    odd: 0.0,
                }),
            v(-2.0, 2.0, m),
        )
    })
}

proptest! {
    #![proptest_config(config(24))]

    /// Non-separable and centrally symmetric on a box wider than the noise:
    /// the mean gradient over the library's copies is within 5 SE of 0.
    #[test]
    fn symmetric_bowl_gradient_vanishes((a, bowl, w_f) in bowl(), seed in any::<u64>()) {
        let [row, _] = mc_rows(&bowl, &w_f, a, 3000, seed, Variant::Symmetric).unwrap();
        prop_assert!(row.pass, "{row:?}");
    }
}

/// The Monte Carlo counterexamples at fixed inputs (m = 10, a = 0.5,
/// τ = 0.75 → narrowed to 0.25, N = 8000): the flat row fails, the
/// estimate agrees with the predicted gradient (`β a² = 0.125` per
/// component for β = 0.5; `(R_i − L_i)(a − τ)³/(2a) = (R_i − L_i)/64 ≥ 0.031`
/// for the narrow box) within 5 SE, and the detector fires. The predicted
/// z of the largest component (≈ 60 and ≈ 45 with these seeds) must clear
/// the detector's 20 SE by at least 10 SE, twice the acceptance bound, so
/// the estimate's own noise (≈ 1 SE) cannot decide the outcome; it is
/// printed next to the measured one.
#[test]
fn bowl_counterexamples_fail_for_the_predicted_reason() {
    let (m, a, n) = (10, 0.5, 8000);
    let bowl = Bowl::from_seed(m, 0.75, 210);
    let w_f: Vec<f64> = (0..m).map(|i| 0.1 * i as f64 - 0.4).collect();
    for (seed, v) in [
        (7u64, Variant::OddTerm { beta: 0.5 }),
        (8, Variant::NarrowTau { tau: 0.25 }),
    ] {
        let [flat, det] = mc_rows(&bowl, &w_f, a, n, seed, v).unwrap();
        assert!(!flat.pass, "{flat:?}");
        let b = bowl.with(v);
        let stats = mc_gradient(&b, &w_f, a, n, seed).unwrap();
        let expected = b.expected_gradient(a);
        assert!(
            max_z(&stats, &expected) <= Z_BOUND,
            "estimate vs prediction"
        );
        let predicted = stats
            .iter()
            .zip(&expected)
            .map(|(s, e)| e.abs() / s.std_error())
            .fold(0.0, f64::max);
        eprintln!(
            "{v:?}: measured {:.1} SE, predicted ≈ {predicted:.1} SE",
            flat.measured
        );
        assert!(predicted >= DETECT_Z + 2.0 * Z_BOUND, "{predicted}");
        assert!(det.pass, "{det:?}");
    }
}
