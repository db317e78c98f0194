//! L-BFGS-B (`smoothout_models::analysis::{minimize, maximize}`): bounded
//! quadratics with known optima, Rosenbrock with and without bounds (KKT
//! conditions, SciPy reference values), maximisation and the sign of the
//! gradient, a large separable problem, every error, and a property test.
//!
//! Tolerances (each with its reason):
//!
//! | quantity | tolerance | why |
//! |---|---|---|
//! | free coordinate of a diagonal quadratic | `pgtol / min D` | the gradient `Dᵢ(xᵢ − cᵢ)` equals the projected gradient there |
//! | coordinate on its bound | exact | the Cauchy step and the projection put it exactly on the bound |
//! | Rosenbrock minimiser, pgtol 1e-9 | 1e-6 | the Hessian at (1, …, 1) has smallest eigenvalue ≈ 0.4 (n = 2) to ≈ 0.01 (n = 10), so ‖x − 1‖ ≲ ‖g‖/λmin |
//! | Rosenbrock bounded, vs SciPy | f: 1e-9 relative; x: 1e-5 | SciPy stopped at its own pgtol 1e-5 / factr 1e7 |
//! | KKT | projected gradient ≤ pgtol | what termination by `ProjectedGradient` promises |

use proptest::prelude::*;
use smoothout_models::analysis::{
    maximize, minimize, LbfgsbConfig, LbfgsbError, LbfgsbResult, Termination,
};
use smoothout_testkit::SplitMix64;

const INF: f64 = f64::INFINITY;

fn tight() -> LbfgsbConfig {
    LbfgsbConfig {
        pgtol: 1e-9,
        ftol: 0.0,
        ..LbfgsbConfig::default()
    }
}

/// `max_i |clamp(x − g) − x|`, the quantity `pgtol` bounds.
fn projected_gradient(x: &[f64], g: &[f64], lower: &[f64], upper: &[f64]) -> f64 {
    (0..x.len())
        .map(|i| ((x[i] - g[i]).max(lower[i]).min(upper[i]) - x[i]).abs())
        .fold(0.0, f64::max)
}

/// KKT for minimisation: inside, g ≈ 0; on the lower bound g ≥ −tol; on the
/// upper bound g ≤ tol.
fn assert_kkt(r: &LbfgsbResult, lower: &[f64], upper: &[f64], tol: f64) {
    for i in 0..r.x.len() {
        let (x, g) = (r.x[i], r.gradient[i]);
        assert!(
            lower[i] <= x && x <= upper[i],
            "x[{i}] = {x} outside the box"
        );
        if x == lower[i] && x == upper[i] {
            continue;
        } else if x == lower[i] {
            assert!(g >= -tol, "at lower bound, g[{i}] = {g} points inward");
        } else if x == upper[i] {
            assert!(g <= tol, "at upper bound, g[{i}] = {g} points inward");
        } else {
            assert!(g.abs() <= tol, "free x[{i}] = {x} has g = {g}");
        }
    }
}

/// f = ½ Σ dᵢ (xᵢ − cᵢ)².
fn diagonal_quadratic(d: Vec<f64>, c: Vec<f64>) -> impl FnMut(&[f64], &mut [f64]) -> f64 {
    move |x, g| {
        let mut f = 0.0;
        for i in 0..x.len() {
            let r = x[i] - c[i];
            g[i] = d[i] * r;
            f += 0.5 * d[i] * r * r;
        }
        f
    }
}

/// The same quadratic shifted by a constant so that its minimum over the
/// box is exactly 0: with p = clamp(c), each term is
/// ½ dᵢ ((xᵢ − cᵢ)² − (pᵢ − cᵢ)²) = ½ dᵢ (xᵢ − pᵢ)(xᵢ + pᵢ − 2cᵢ), a product
/// that stays accurate near the optimum. Without the shift, rounding in a
/// large f(x*) hides the last decreases (|Δf| below an ulp of f) and no
/// value-based line search can push the gradient below ≈ √(d · ulp(f)).
fn shifted_quadratic(
    d: Vec<f64>,
    c: Vec<f64>,
    lower: &[f64],
    upper: &[f64],
) -> impl FnMut(&[f64], &mut [f64]) -> f64 {
    let p: Vec<f64> = (0..c.len())
        .map(|i| c[i].max(lower[i]).min(upper[i]))
        .collect();
    move |x, g| {
        let mut f = 0.0;
        for i in 0..x.len() {
            g[i] = d[i] * (x[i] - c[i]);
            f += 0.5 * d[i] * (x[i] - p[i]) * (x[i] + p[i] - 2.0 * c[i]);
        }
        f
    }
}

/// Chained Rosenbrock: Σ 100 (xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)².
fn rosenbrock(x: &[f64], g: &mut [f64]) -> f64 {
    let mut f = 0.0;
    g.fill(0.0);
    for i in 0..x.len() - 1 {
        let a = 1.0 - x[i];
        let b = x[i + 1] - x[i] * x[i];
        f += a * a + 100.0 * b * b;
        g[i] += -2.0 * a - 400.0 * x[i] * b;
        g[i + 1] += 200.0 * b;
    }
    f
}

fn rosenbrock_start(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
        .collect()
}

#[test]
fn diagonal_quadratic_minimiser_is_the_clamped_centre() {
    let d = vec![1.0, 10.0, 0.5, 3.0, 2.0];
    let c = vec![3.0, -4.0, 0.2, 0.9, -0.3];
    let lower = [-1.0, -1.0, -1.0, -1.0, -INF];
    let upper = [1.0, 1.0, 1.0, 0.5, INF];
    let r = minimize(
        diagonal_quadratic(d, c.clone()),
        &[0.0; 5],
        &lower,
        &upper,
        &tight(),
    )
    .unwrap();
    assert_eq!(r.termination, Termination::ProjectedGradient);
    // Active coordinates exactly on their bounds.
    assert_eq!(r.x[0], 1.0);
    assert_eq!(r.x[1], -1.0);
    assert_eq!(r.x[3], 0.5);
    // Free coordinates: |x − c| ≤ pgtol / d.
    assert!((r.x[2] - 0.2).abs() <= 1e-9 / 0.5);
    assert!((r.x[4] + 0.3).abs() <= 1e-9 / 2.0);
}

#[test]
fn non_diagonal_quadratic_matches_hand_solution() {
    // f = ½ (x − c)ᵀ A (x − c), A = [[2, 1], [1, 2]], c = (−1, 2), x₀ ≥ 0.
    // With x₀ = 0 active: ∂f/∂x₁ = 1·(0 + 1) + 2(x₁ − 2) = 0 ⇒ x₁ = 1.5, and
    // ∂f/∂x₀ = 2·1 + 1·(−0.5) = 1.5 > 0 confirms the bound is active.
    // The clamped centre (0, 2) is *not* the answer here.
    let f = |x: &[f64], g: &mut [f64]| {
        let (r0, r1) = (x[0] + 1.0, x[1] - 2.0);
        g[0] = 2.0 * r0 + r1;
        g[1] = r0 + 2.0 * r1;
        0.5 * (r0 * g[0] + r1 * g[1])
    };
    let lower = [0.0, -INF];
    let upper = [INF, 10.0];
    let r = minimize(f, &[3.0, -5.0], &lower, &upper, &tight()).unwrap();
    assert_eq!(r.termination, Termination::ProjectedGradient);
    assert_eq!(r.x[0], 0.0);
    assert!((r.x[1] - 1.5).abs() < 1e-9, "{:?}", r.x);
    assert!((r.gradient[0] - 1.5).abs() < 1e-8);
}

#[test]
fn random_spd_quadratic_satisfies_kkt() {
    // f = ½ xᵀAx − bᵀx with A = QᵀQ + I (SPD, dense), box [−1, 1]ⁿ.
    let n = 20;
    let mut gen = SplitMix64(11);
    let q: Vec<f64> = (0..n * n).map(|_| gen.next_f64() - 0.5).collect();
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..n).map(|k| q[k * n + i] * q[k * n + j]).sum::<f64>();
        }
        a[i * n + i] += 1.0;
    }
    let b: Vec<f64> = (0..n).map(|_| 6.0 * (gen.next_f64() - 0.5)).collect();
    let f = |x: &[f64], g: &mut [f64]| {
        let mut v = 0.0;
        for i in 0..n {
            g[i] = (0..n).map(|j| a[i * n + j] * x[j]).sum::<f64>() - b[i];
            v += 0.5 * x[i] * (g[i] - b[i]);
        }
        v
    };
    let lower = vec![-1.0; n];
    let upper = vec![1.0; n];
    // pgtol 1e-7, not 1e-9: f(x*) ≈ −1 here, and once |Δf| is below an ulp
    // of f the line search cannot see progress; that happens near
    // ‖g‖ ≈ √(λ · ulp(f)) ≈ 1e-8.
    let config = LbfgsbConfig {
        pgtol: 1e-7,
        ..tight()
    };
    let r = minimize(f, &vec![0.0; n], &lower, &upper, &config).unwrap();
    assert_eq!(r.termination, Termination::ProjectedGradient);
    let active = r.x.iter().filter(|x| x.abs() == 1.0).count();
    assert!(
        active > 0 && active < n,
        "test needs a mix: {active} active"
    );
    assert_kkt(&r, &lower, &upper, 1e-7);
}

#[test]
fn rosenbrock_unconstrained_reaches_ones() {
    for n in [2, 10] {
        let x0 = rosenbrock_start(n);
        let r = minimize(rosenbrock, &x0, &vec![-INF; n], &vec![INF; n], &tight()).unwrap();
        eprintln!(
            "rosenbrock n = {n}: {} iterations, {} evaluations, {:?}, f = {:e}",
            r.iterations, r.evaluations, r.termination, r.f
        );
        for (i, x) in r.x.iter().enumerate() {
            assert!((x - 1.0).abs() < 1e-6, "n = {n}: x[{i}] = {x}");
        }
        // SciPy needs 36 (n = 2) and 71 (n = 10) at its looser defaults.
        assert!(r.iterations < 150, "n = {n}: {} iterations", r.iterations);

        // With SciPy's defaults the answer is still close.
        let d = minimize(
            rosenbrock,
            &x0,
            &vec![-INF; n],
            &vec![INF; n],
            &LbfgsbConfig::default(),
        )
        .unwrap();
        eprintln!(
            "rosenbrock n = {n}, defaults: {} iterations, {} evaluations, {:?}",
            d.iterations, d.evaluations, d.termination
        );
        assert!(d.x.iter().all(|x| (x - 1.0).abs() < 1e-3), "{:?}", d.x);
    }
}

#[test]
fn rosenbrock_with_cut_off_minimum_satisfies_kkt() {
    // x ≤ 0.5 everywhere excludes (1, …, 1). SciPy 1.x (fmin_l_bfgs_b,
    // defaults): n = 2 → (0.5, 0.25), f = 0.25; n = 10 → f =
    // 7.594812948946875 (pgtol 1e-12), x₁ = 0.263065983.
    for (n, f_ref, x1_ref) in [(2, 0.25, 0.25), (10, 7.594812948946875, 0.263065983)] {
        let lower = vec![-INF; n];
        let upper = vec![0.5; n];
        let r = minimize(rosenbrock, &rosenbrock_start(n), &lower, &upper, &tight()).unwrap();
        eprintln!(
            "bounded rosenbrock n = {n}: {} iterations, {:?}",
            r.iterations, r.termination
        );
        assert_eq!(r.termination, Termination::ProjectedGradient);
        assert_eq!(r.x[0], 0.5, "the cut must be active on x₀");
        assert!(r.gradient[0] < 0.0, "f wants to grow x₀ past the bound");
        assert_kkt(&r, &lower, &upper, 1e-9);
        assert!(projected_gradient(&r.x, &r.gradient, &lower, &upper) <= 1e-9);
        assert!(
            (r.f - f_ref).abs() <= 1e-9 * f_ref,
            "f = {} vs {f_ref}",
            r.f
        );
        assert!((r.x[1] - x1_ref).abs() < 1e-5, "x₁ = {}", r.x[1]);
    }
}

#[test]
fn maximize_finds_a_concave_quadratics_peak() {
    // f = −½ Σ (xᵢ − cᵢ)² + 7: the peak is c, inside the box.
    let c = [0.3, -0.7, 1.1];
    let f = |x: &[f64], g: &mut [f64]| {
        let mut v = 7.0;
        for i in 0..3 {
            g[i] = -(x[i] - c[i]);
            v -= 0.5 * (x[i] - c[i]).powi(2);
        }
        v
    };
    let r = maximize(f, &[0.0; 3], &[-2.0; 3], &[2.0; 3], &tight()).unwrap();
    for ((x, c), g) in r.x.iter().zip(c).zip(&r.gradient) {
        assert!((x - c).abs() < 1e-9);
        // Reported in f's own sign.
        assert!(g.abs() < 1e-9);
    }
    assert!(
        (r.f - 7.0).abs() < 1e-15,
        "f is reported unnegated: {}",
        r.f
    );
}

/// ½‖x‖² + bᵀx and its gradient.
fn convex_bowl(b: &[f64]) -> impl FnMut(&[f64], &mut [f64]) -> f64 + '_ {
    move |x, g| {
        let mut v = 0.0;
        for i in 0..x.len() {
            g[i] = x[i] + b[i];
            v += 0.5 * x[i] * x[i] + b[i] * x[i];
        }
        v
    }
}

#[test]
fn maximize_convex_over_box_reaches_the_vertex_chosen_by_signs() {
    // The sharpness situation: the maximum of a convex function over a box
    // around the centre is a vertex, here x = ε·sign(b).
    let b: [f64; 6] = [0.3, -0.2, 0.05, -1.0, 0.7, -0.01];
    let n = b.len();
    let eps = 0.1;
    let (lower, upper) = (vec![-eps; n], vec![eps; n]);
    let vertex: Vec<f64> = b.iter().map(|bi| eps * bi.signum()).collect();
    let peak: f64 = (0..n).map(|i| 0.5 * eps * eps + b[i] * vertex[i]).sum();

    let mut points = Vec::new();
    let mut bowl = convex_bowl(&b);
    let recording = |x: &[f64], g: &mut [f64]| {
        points.push(x.to_vec());
        bowl(x, g)
    };
    let r = maximize(
        recording,
        &vec![0.0; n],
        &lower,
        &upper,
        &LbfgsbConfig::default(),
    )
    .unwrap();
    assert_eq!(r.x, vertex);
    assert!((r.f - peak).abs() < 1e-15);
    // The first trial point after the centre moves towards the vertex in
    // every coordinate.
    let first = &points[1];
    for i in 0..n {
        assert_eq!(
            first[i].signum(),
            b[i].signum(),
            "coordinate {i}: {first:?}"
        );
    }
    // The returned gradient is ∇f, pointing out of the box at the maximiser.
    for (g, v) in r.gradient.iter().zip(&vertex) {
        assert!(g * v > 0.0);
    }
}

#[test]
fn negating_only_the_value_fails_where_maximize_succeeds() {
    // The classic mistake: minimise −f but hand over +∇f. The optimiser then
    // steps along −∇f, where −f *rises*; no step decreases it and it stops
    // at the centre. `maximize` negates both.
    let b = [0.3, -0.2, 0.05, -1.0];
    let n = b.len();
    let (lower, upper) = (vec![-0.1; n], vec![0.1; n]);
    // both start at the centre with the default settings
    let (centre, config) = (vec![0.0; n], LbfgsbConfig::default());
    let right = maximize(convex_bowl(&b), &centre, &lower, &upper, &config).unwrap();
    let mut bowl = convex_bowl(&b);
    let value_only = |x: &[f64], g: &mut [f64]| -bowl(x, g);
    let wrong = minimize(value_only, &centre, &lower, &upper, &config).unwrap();
    let f_wrong = -wrong.f;
    assert_eq!(wrong.termination, Termination::LineSearchFailed);
    assert_eq!(wrong.x, vec![0.0; n], "it cannot leave the centre");
    assert!(right.f > f_wrong + 0.1, "{} vs {}", right.f, f_wrong);
}

#[test]
fn large_separable_quadratic_finishes_in_a_few_iterations() {
    // n = 200 000; two curvatures and half the centres outside the box.
    let n = 200_000;
    let d: Vec<f64> = (0..n).map(|i| if i % 3 == 0 { 4.0 } else { 1.0 }).collect();
    let c: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 0.5 } else { 2.0 } * if i % 5 < 2 { -1.0 } else { 1.0 })
        .collect();
    let (lower, upper) = (vec![-1.0; n], vec![1.0; n]);
    let f = shifted_quadratic(d, c.clone(), &lower, &upper);
    let r = minimize(f, &vec![0.0; n], &lower, &upper, &tight()).unwrap();
    eprintln!("n = {n}: {} iterations, {:?}", r.iterations, r.termination);
    assert_eq!(r.termination, Termination::ProjectedGradient);
    assert!(r.iterations <= 10, "{} iterations", r.iterations);
    // pgtol 1e-9 and curvature ≥ 1: free coordinates within 1e-9.
    for (i, (x, c)) in r.x.iter().zip(&c).enumerate() {
        let want = c.clamp(-1.0, 1.0);
        assert!((x - want).abs() <= 1e-9, "x[{i}] = {x} vs {want}");
    }
}

#[test]
fn every_invalid_input_is_a_typed_error() {
    let f = |_: &[f64], _: &mut [f64]| 0.0;
    let ok = LbfgsbConfig::default();
    let cases: Vec<(LbfgsbError, Result<LbfgsbResult, LbfgsbError>)> = vec![
        (
            LbfgsbError::LengthMismatch {
                x0: 2,
                lower: 1,
                upper: 2,
            },
            minimize(f, &[0.0; 2], &[0.0], &[1.0; 2], &ok),
        ),
        (LbfgsbError::Empty, minimize(f, &[], &[], &[], &ok)),
        (
            LbfgsbError::InvertedBounds {
                index: 1,
                lower: 2.0,
                upper: 1.0,
            },
            minimize(f, &[0.0; 2], &[0.0, 2.0], &[1.0; 2], &ok),
        ),
        (
            LbfgsbError::NanLowerBound { index: 0 },
            minimize(f, &[0.0], &[f64::NAN], &[1.0], &ok),
        ),
        (
            LbfgsbError::NanUpperBound { index: 0 },
            minimize(f, &[0.0], &[0.0], &[f64::NAN], &ok),
        ),
        (
            LbfgsbError::NanStart { index: 1 },
            minimize(f, &[0.0, f64::NAN], &[-INF; 2], &[INF; 2], &ok),
        ),
        (
            LbfgsbError::ZeroMemory,
            minimize(
                f,
                &[0.0],
                &[0.0],
                &[1.0],
                &LbfgsbConfig {
                    memory: 0,
                    ..ok.clone()
                },
            ),
        ),
        (
            LbfgsbError::InvalidTolerance {
                name: "pgtol",
                value: -1.0,
            },
            minimize(
                f,
                &[0.0],
                &[0.0],
                &[1.0],
                &LbfgsbConfig {
                    pgtol: -1.0,
                    ..ok.clone()
                },
            ),
        ),
        (
            LbfgsbError::NonFiniteValueAtStart { value: INF },
            minimize(|_: &[f64], _: &mut [f64]| INF, &[0.0], &[0.0], &[1.0], &ok),
        ),
        (
            LbfgsbError::NonFiniteGradientAtStart {
                index: 1,
                value: -INF,
            },
            minimize(
                |_: &[f64], g: &mut [f64]| {
                    g[1] = -INF;
                    0.0
                },
                &[0.0; 2],
                &[0.0; 2],
                &[1.0; 2],
                &ok,
            ),
        ),
        // maximize reports the start values in f's own sign.
        (
            LbfgsbError::NonFiniteValueAtStart { value: -INF },
            maximize(|_: &[f64], _: &mut [f64]| -INF, &[0.0], &[0.0], &[1.0], &ok),
        ),
    ];
    for (want, got) in cases {
        assert_eq!(got, Err(want.clone()));
        let message = want.to_string();
        assert!(message.len() > 20, "{message}");
    }
    // NaN f at the start: NaN ≠ NaN, so match instead.
    let nan = minimize(
        |_: &[f64], _: &mut [f64]| f64::NAN,
        &[0.0],
        &[0.0],
        &[1.0],
        &ok,
    );
    assert_matches!(nan, Err(LbfgsbError::NonFiniteValueAtStart { value }) if value.is_nan());
    let e: Box<dyn std::error::Error> = Box::new(LbfgsbError::ZeroMemory);
    assert!(e.to_string().contains("memory"));
}

#[test]
fn start_outside_the_box_is_projected() {
    let mut first = None;
    let mut quad = diagonal_quadratic(vec![1.0, 1.0], vec![0.2, 0.4]);
    let f = |x: &[f64], g: &mut [f64]| {
        first.get_or_insert_with(|| x.to_vec());
        quad(x, g)
    };
    let r = minimize(f, &[5.0, -5.0], &[0.0; 2], &[1.0; 2], &tight()).unwrap();
    assert_eq!(
        first.unwrap(),
        [1.0, 0.0],
        "first evaluation is at the projection"
    );
    assert!((r.x[0] - 0.2).abs() < 1e-9 && (r.x[1] - 0.4).abs() < 1e-9);
}

#[test]
fn fixed_variables_stay_fixed() {
    let lower = [0.25, -1.0, 3.0];
    let upper = [0.25, 1.0, 3.0];
    let mut seen_other = false;
    let mut quad = diagonal_quadratic(vec![1.0; 3], vec![-2.0, 0.5, 9.0]);
    let f = |x: &[f64], g: &mut [f64]| {
        seen_other |= x[0] != 0.25 || x[2] != 3.0;
        quad(x, g)
    };
    let r = minimize(f, &[0.0; 3], &lower, &upper, &tight()).unwrap();
    assert!(!seen_other, "a fixed variable was moved");
    assert_eq!(r.x[0], 0.25);
    assert_eq!(r.x[2], 3.0);
    assert!((r.x[1] - 0.5).abs() < 1e-9);
    assert_eq!(r.termination, Termination::ProjectedGradient);
}

#[test]
fn infinite_bounds_are_one_sided() {
    // c = (−5, 5, 100): x₀ ≥ −1 stops the first, x₁ ≤ +∞ lets the second
    // reach 5, x₂ ≤ 2 stops the third.
    let lower = [-1.0, -INF, -INF];
    let upper = [INF, INF, 2.0];
    let r = minimize(
        diagonal_quadratic(vec![1.0, 2.0, 0.1], vec![-5.0, 5.0, 100.0]),
        &[0.0; 3],
        &lower,
        &upper,
        &tight(),
    )
    .unwrap();
    assert_eq!(r.x[0], -1.0);
    assert!((r.x[1] - 5.0).abs() < 1e-9);
    assert_eq!(r.x[2], 2.0);
}

#[test]
fn nan_away_from_the_start_does_not_panic() {
    // (x − 3)², but NaN for x > 1: the line search must back off and the
    // result is the best finite point, at the edge of the finite region.
    let f = |x: &[f64], g: &mut [f64]| {
        if x[0] > 1.0 {
            g[0] = f64::NAN;
            return f64::NAN;
        }
        g[0] = 2.0 * (x[0] - 3.0);
        (x[0] - 3.0).powi(2)
    };
    let r = minimize(f, &[0.0], &[-INF], &[INF], &LbfgsbConfig::default()).unwrap();
    assert!(r.f.is_finite() && r.x[0] <= 1.0);
    assert!(r.x[0] > 0.9, "it should get close to the edge: {}", r.x[0]);
    assert!(r.f < 9.0, "it must improve on the start");

    // NaN in the gradient only, at every trial point: no step can be
    // accepted, and the start is returned.
    let mut calls = 0;
    let g_nan = |x: &[f64], g: &mut [f64]| {
        calls += 1;
        g[0] = if calls == 1 {
            2.0 * x[0] - 1.0
        } else {
            f64::NAN
        };
        x[0] * x[0] - x[0]
    };
    let r = minimize(g_nan, &[2.0], &[-INF], &[INF], &LbfgsbConfig::default()).unwrap();
    assert_eq!(r.termination, Termination::LineSearchFailed);
    assert_eq!(r.x, [2.0]);
}

#[test]
fn budgets_stop_the_run() {
    let n = 10;
    let x0 = rosenbrock_start(n);
    let (lower, upper) = (vec![-INF; n], vec![INF; n]);
    let r = minimize(
        rosenbrock,
        &x0,
        &lower,
        &upper,
        &LbfgsbConfig {
            max_iterations: 3,
            ..tight()
        },
    )
    .unwrap();
    assert_eq!(
        (r.termination, r.iterations),
        (Termination::MaxIterations, 3)
    );

    let mut calls = 0;
    let counted = |x: &[f64], g: &mut [f64]| {
        calls += 1;
        rosenbrock(x, g)
    };
    let r = minimize(
        counted,
        &x0,
        &lower,
        &upper,
        &LbfgsbConfig {
            max_evaluations: 7,
            ..tight()
        },
    )
    .unwrap();
    assert_eq!(r.termination, Termination::MaxEvaluations);
    assert_eq!(r.evaluations, 7);
    assert_eq!(calls, 7);
    let mut g = vec![0.0; n];
    assert_eq!(rosenbrock(&r.x, &mut g), r.f, "f matches the returned x");
    assert_eq!(g, r.gradient);
    assert!(r.f < rosenbrock(&x0, &mut g));

    // Already optimal: no iteration at all.
    let r = minimize(rosenbrock, &[1.0, 1.0], &[-INF; 2], &[INF; 2], &tight()).unwrap();
    assert_eq!(
        (r.termination, r.iterations, r.evaluations),
        (Termination::ProjectedGradient, 0, 1)
    );
}

#[test]
fn relative_reduction_stops_with_default_ftol() {
    // With pgtol 0 only the ftol test (or a failed line search) can stop it.
    let config = LbfgsbConfig {
        pgtol: 0.0,
        ..LbfgsbConfig::default()
    };
    let r = minimize(rosenbrock, &[-1.2, 1.0], &[-INF; 2], &[INF; 2], &config).unwrap();
    assert_eq!(r.termination, Termination::RelativeReduction);
    assert!(r.f < 1e-9);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        rng_seed: proptest::test_runner::RngSeed::Fixed(7),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random diagonal quadratics over random boxes: the minimiser is the
    /// clamped centre. Tolerance: at termination by `ProjectedGradient`
    /// (pgtol 1e-9) a free coordinate has |dᵢ(xᵢ − cᵢ)| ≤ 1e-9, so
    /// |xᵢ − cᵢ| ≤ 1e-9 / 0.1 = 1e-8 with dᵢ ≥ 0.1; an active coordinate
    /// lies on its bound exactly.
    #[test]
    fn diagonal_quadratics_end_at_the_clamped_centre(
        rows in proptest::collection::vec(
            (0.1f64..10.0, -10.0f64..10.0, -5.0f64..5.0, 0.0f64..5.0, -20.0f64..20.0),
            1..30,
        )
    ) {
        let d: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let c: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let lower: Vec<f64> = rows.iter().map(|r| r.2).collect();
        let upper: Vec<f64> = rows.iter().map(|r| r.2 + r.3).collect();
        let x0: Vec<f64> = rows.iter().map(|r| r.4).collect();
        let f = shifted_quadratic(d, c.clone(), &lower, &upper);
        let r = minimize(f, &x0, &lower, &upper, &tight()).unwrap();
        prop_assert_eq!(r.termination, Termination::ProjectedGradient);
        for i in 0..c.len() {
            let want = c[i].max(lower[i]).min(upper[i]);
            if want == c[i] {
                prop_assert!((r.x[i] - want).abs() <= 1e-8, "x[{}] = {} vs {}", i, r.x[i], want);
            } else {
                prop_assert_eq!(r.x[i], want);
            }
        }
    }
}
