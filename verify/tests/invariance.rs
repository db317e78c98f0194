//! Check 6: AdaSmoothOut invariance holds over random networks and
//! rescalings in the cases the module docs derive, and each broken variant
//! misses its bound by a wide margin. The AdaSmoothOut body runs on the
//! reference (property test) and on the CPU backend (fixed cases, with the
//! reference's bits).

use proptest::prelude::*;
use smoothout::Scaling;
use smoothout_verify::checks::invariance::{
    loss_invariance, report_setting, smoothed, Perturb, Rescale, Rescaling, SmoothedInvariance,
    Smoothing, Variant,
};
use smoothout_verify::harness::{CpuHarness, Harness, RefHarness};
use smoothout_verify::mlp::{Data, Mlp};
use smoothout_verify::stats::Z_BOUND;

/// A network, its parameters and its data.
type Setting = (Mlp, Vec<Vec<f64>>, Data);

/// A random network with one or two hidden layers, its parameters and data.
fn network() -> impl Strategy<Value = Setting> {
    (
        prop::collection::vec(1usize..7, 3..5),
        any::<u64>(),
        0.0f64..1.0,
        1usize..12,
    )
        .prop_map(|(sizes, seed, bias_std, n)| {
            let mlp = Mlp::new(&sizes);
            let params = mlp.init(seed, bias_std);
            let data = mlp.data(n, seed ^ 0x5eed);
            (mlp, params, data)
        })
}

/// A rescaling of `mlp`: a unit or a whole hidden layer, from three indices.
fn pick(mlp: &Mlp, layer: usize, unit: usize, whole: bool) -> Rescale {
    let layer = 1 + layer % (mlp.layers() - 1);
    if whole {
        Rescale::Layer { layer }
    } else {
        Rescale::Unit {
            layer,
            unit: unit % mlp.sizes()[layer],
        }
    }
}

/// `cases` cases from a fixed seed, nothing persisted.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(3),
        ..ProptestConfig::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// `C` is unchanged to rounding (ratio to the a-priori bound ≤ 1) for
    /// any `c ∈ [0.01, 100]`, and bit for bit for powers of two.
    #[test]
    fn loss_is_invariant((mlp, params, data) in network(),
                         layer in 0usize..8, unit in 0usize..8, whole: bool,
                         c in 0.01f64..100.0, k in -8i32..8) {
        let what = pick(&mlp, layer, unit, whole);
        let l = loss_invariance(&mlp, &params, &data, Rescaling::correct(what, c));
        prop_assert!(l.ratio() <= 1.0, "{what:?} c {c}: ratio {}", l.ratio());
        let p = loss_invariance(&mlp, &params, &data, Rescaling::correct(what, 2f64.powi(k)));
        prop_assert_eq!(p.differing_bits(), 0, "{:?} c 2^{}", what, k);
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// AdaSmoothOut's `C̄` is unchanged draw by draw (same draws) when the
    /// rescaling is a per-row scaling of every perturbed buffer: a whole
    /// layer with everything perturbed, or one unit with the compensating
    /// weight unperturbed.
    #[test]
    fn adasmoothout_is_invariant_for_row_scalings(setting in network(),
                                                  layer in 0usize..8, unit in 0usize..8,
                                                  whole: bool, c in 0.01f64..100.0,
                                                  k in -8i32..8, a in 0.0f64..0.5,
                                                  seed: u64) {
        let what = pick(&setting.0, layer, unit, whole);
        adasmoothout_invariant::<RefHarness>(&setting, what, c, k, a, seed)?;
    }
}

/// The AdaSmoothOut invariance on `H` for a per-row scaling `what` (a whole
/// layer, everything perturbed; or a unit, its compensating weight not):
/// within the rounding bound for `c`, bit for bit for `2^k`. Returns both
/// comparisons.
fn adasmoothout_invariant<H: Harness>(
    (mlp, params, data): &Setting,
    what: Rescale,
    c: f64,
    k: i32,
    a: f64,
    seed: u64,
) -> Result<[SmoothedInvariance; 2], TestCaseError> {
    let perturb = match what {
        Rescale::Layer { .. } => Perturb::All,
        Rescale::Unit { .. } => Perturb::AllButCompensating,
    };
    let smoothing = Smoothing {
        scaling: Scaling::FilterNorm,
        perturb,
        a,
        draws: 8,
        seed,
    };
    let s = smoothed::<H>(mlp, params, data, Rescaling::correct(what, c), smoothing);
    prop_assert!(s.max_ratio <= 1.0, "{what:?} c {c}: ratio {}", s.max_ratio);
    let p = smoothed::<H>(
        mlp,
        params,
        data,
        Rescaling::correct(what, 2f64.powi(k)),
        smoothing,
    );
    prop_assert_eq!(p.differing_bits, 0, "{:?} c 2^{}", what, k);
    Ok([s, p])
}

/// The same on the CPU backend for a layer and a unit of the report
/// network: the paired differences are the reference's bit for bit.
#[test]
fn adasmoothout_is_invariant_on_cpu() {
    let setting = report_setting();
    for (what, c, k) in [
        (Rescale::Layer { layer: 2 }, 2.9, 3),
        (Rescale::Unit { layer: 1, unit: 6 }, 0.37, -2),
    ] {
        let got = adasmoothout_invariant::<CpuHarness>(&setting, what, c, k, 0.2, 14).unwrap();
        let want = adasmoothout_invariant::<RefHarness>(&setting, what, c, k, 0.2, 14).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.max_ratio.to_bits(), w.max_ratio.to_bits(), "{what:?}");
            assert_eq!(g.diff.mean().to_bits(), w.diff.mean().to_bits(), "{what:?}");
            assert_eq!(
                g.before.mean().to_bits(),
                w.before.mean().to_bits(),
                "{what:?}"
            );
        }
    }
}

/// Every hidden unit of the report network as a unit rescaling. Each is
/// active on some sample (a unit dead on every sample would hide a broken
/// rescaling), which the smallest ratio below confirms.
fn report_units() -> Vec<Rescale> {
    let (mlp, _, _) = report_setting();
    (1..mlp.layers())
        .flat_map(|layer| (0..mlp.sizes()[layer]).map(move |unit| Rescale::Unit { layer, unit }))
        .collect()
}

/// Leaving the bias unscaled, or not dividing the outgoing weights by `c`,
/// changes `C` by far more than rounding: over every hidden unit of the
/// report network with `c = 4` the smallest ratio to the bound must exceed
/// 10⁶ (measured: 1.8·10⁷ with the bias unscaled, 2.8·10⁸ uncompensated;
/// the correct rescaling's largest is 1.7·10⁻⁵).
#[test]
fn broken_rescalings_miss_the_bound() {
    let (mlp, params, data) = report_setting();
    for variant in [Variant::BiasUnscaled, Variant::Uncompensated] {
        let smallest = report_units()
            .into_iter()
            .map(|what| {
                loss_invariance(&mlp, &params, &data, Rescaling::new(what, 4.0, variant)).ratio()
            })
            .fold(f64::INFINITY, f64::min);
        println!("{variant:?}: smallest |ΔC| / B over units = {smallest:.3e}");
        assert!(smallest > 1e6, "{variant:?}: {smallest:.3e}");
    }
}

/// Rescaling `what` changes `C̄` in the report's setting under noise of
/// `scaling` on `perturb` (a = 0.1, 2000 draws from `seed`): some draw by
/// more than 10⁶ times the rounding bound, the mean by more than twice
/// [`Z_BOUND`] standard errors. Prints both, after `label`.
fn assert_not_invariant(
    (mlp, params, data): &Setting,
    label: &str,
    what: Rescale,
    scaling: Scaling,
    perturb: Perturb,
    seed: u64,
) {
    let smoothing = Smoothing {
        scaling,
        perturb,
        a: 0.1,
        draws: 2000,
        seed,
    };
    let s = smoothed::<RefHarness>(mlp, params, data, Rescaling::correct(what, 4.0), smoothing);
    println!(
        "{label} {what:?}: max ratio {:.3e}, z {:.1}",
        s.max_ratio,
        s.z()
    );
    assert!(s.max_ratio > 1e6, "{what:?}: ratio {:.3e}", s.max_ratio);
    assert!(s.z() > 2.0 * Z_BOUND, "{what:?}: z {}", s.z());
}

/// Under fixed noise the rescaled unit's noise is not rescaled: draw by
/// draw `C` differs by far more than rounding (measured ratios 6·10⁹ to
/// 8·10¹⁰ against a bound of 1), and the change of `C̄` is many standard
/// errors (antithetic pairs, 2000 draws: z = 19, 70, 81 against 10).
#[test]
fn fixed_noise_is_not_invariant() {
    let setting = report_setting();
    for (what, perturb) in [
        (
            Rescale::Unit { layer: 1, unit: 3 },
            Perturb::AllButCompensating,
        ),
        (Rescale::Layer { layer: 1 }, Perturb::All),
        (Rescale::Layer { layer: 2 }, Perturb::All),
    ] {
        assert_not_invariant(&setting, "Fixed", what, Scaling::Fixed, perturb, 9);
    }
}

/// The limit of the claim: one unit rescaled with the compensating weight
/// `W_{l+1}` perturbed changes AdaSmoothOut's `C̄`, draw by draw (ratios
/// 2.8·10¹⁰ and 5.6·10⁹) and in the mean (z = 50 and 31 against 10).
#[test]
fn adasmoothout_with_compensating_weight_perturbed_is_not_invariant() {
    let setting = report_setting();
    for what in [
        Rescale::Unit { layer: 1, unit: 3 },
        Rescale::Unit { layer: 2, unit: 5 },
    ] {
        let label = "FilterNorm, W_l+1 perturbed,";
        assert_not_invariant(&setting, label, what, Scaling::FilterNorm, Perturb::All, 10);
    }
}

/// A broken rescaling breaks AdaSmoothOut's invariance too, in a case
/// where the correct one holds bit for bit (ratios 8·10⁹ with the bias
/// unscaled, 8·10¹¹ uncompensated).
#[test]
fn broken_rescaling_breaks_the_smoothed_invariance() {
    let (mlp, params, data) = report_setting();
    let smoothing = Smoothing {
        scaling: Scaling::FilterNorm,
        perturb: Perturb::AllButCompensating,
        a: 0.1,
        draws: 50,
        seed: 11,
    };
    let what = Rescale::Unit { layer: 1, unit: 3 };
    let run = |variant| {
        smoothed::<RefHarness>(
            &mlp,
            &params,
            &data,
            Rescaling::new(what, 4.0, variant),
            smoothing,
        )
    };
    assert_eq!(run(Variant::Correct).differing_bits, 0);
    for variant in [Variant::BiasUnscaled, Variant::Uncompensated] {
        let s = run(variant);
        println!(
            "{variant:?} under AdaSmoothOut: max ratio {:.3e}",
            s.max_ratio
        );
        assert!(s.max_ratio > 1e6, "{variant:?}: {:.3e}", s.max_ratio);
    }
}
