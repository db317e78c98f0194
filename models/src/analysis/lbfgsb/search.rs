//! Step 3 of an iteration: the strong Wolfe line search inside the box,
//! bracketing then zooming with safeguarded cubic interpolation.

use super::bounds::Bounds;
use super::dense::dot;
use super::workspace::Workspace;

/// Sufficient-decrease constant `c₁` of the Wolfe conditions.
pub(super) const SUFFICIENT_DECREASE: f64 = 1e-3;
/// Curvature constant `c₂` of the strong Wolfe conditions.
pub(super) const CURVATURE: f64 = 0.9;
/// Function evaluations one line search may spend.
pub(super) const MAX_TRIALS: usize = 20;
/// Longest step a line search may try along a direction that no bound stops.
pub(super) const MAX_STEP: f64 = 1e10;

/// How a line search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SearchEnd {
    /// The strong Wolfe conditions hold (or the step is the longest
    /// feasible one and still decreases `f` with a downhill slope).
    Wolfe,
    /// Only sufficient decrease holds: the trials ran out.
    Decrease,
    /// No trial point decreased `f` enough.
    Failed,
    /// The evaluation budget ran out; `step > 0` if some point decreased `f`.
    Budget,
}

/// The result of a line search; an accepted point is in `ws.x_lo`,
/// `ws.g_lo`.
pub(super) struct Search {
    pub(super) end: SearchEnd,
    pub(super) step: f64,
    pub(super) f: f64,
}

/// A trial step with `φ(a) = f(x + a d)` and `φ'(a) = ∇f(x + a d)ᵀd`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Trial {
    pub(super) a: f64,
    pub(super) f: f64,
    pub(super) slope: f64,
}

/// Step 3: a strong Wolfe line search along `ws.d` from `x`, inside the box
/// (`0 < step ≤ step_max`), bracketing then zooming (Nocedal & Wright,
/// *Numerical Optimization*, algorithms 3.5 and 3.6) with safeguarded cubic
/// interpolation. Non-finite trial points shrink the step by bisection.
#[allow(clippy::too_many_arguments)]
pub(super) fn line_search<F: FnMut(&[f64], &mut [f64]) -> f64>(
    f: &mut F,
    x: &[f64],
    bounds: &Bounds<'_>,
    f0: f64,
    slope0: f64,
    first: f64,
    step_max: f64,
    evaluations: &mut usize,
    max_evaluations: usize,
    ws: &mut Workspace,
) -> Search {
    let decrease_ok = |t: &Trial| t.f <= f0 + SUFFICIENT_DECREASE * t.a * slope0;
    let curvature_ok = |t: &Trial| t.slope.abs() <= -CURVATURE * slope0;
    let give_up = |lo: Trial, end: SearchEnd| Search {
        end: if lo.a > 0.0 || end == SearchEnd::Budget {
            end
        } else {
            SearchEnd::Failed
        },
        step: lo.a,
        f: lo.f,
    };
    let accept = |ws: &mut Workspace, t: Trial| {
        std::mem::swap(&mut ws.x_lo, &mut ws.x_trial);
        std::mem::swap(&mut ws.g_lo, &mut ws.g_trial);
        Search {
            end: SearchEnd::Wolfe,
            step: t.a,
            f: t.f,
        }
    };
    let mut trials = 0;

    // `lo`: the best point so far that decreases f enough (a = 0 is x);
    // `hi`: the other end of the bracket, `None` in slope/value if
    // non-finite.
    let mut lo = Trial {
        a: 0.0,
        f: f0,
        slope: slope0,
    };
    let mut a = first.min(step_max);
    let mut hi: Option<Trial>;
    let mut hi_a: f64;
    loop {
        if *evaluations >= max_evaluations {
            return give_up(lo, SearchEnd::Budget);
        }
        if trials >= MAX_TRIALS {
            return give_up(lo, SearchEnd::Decrease);
        }
        trials += 1;
        let Some(t) = evaluate_trial(f, x, bounds, a, evaluations, ws) else {
            hi = None;
            hi_a = a;
            break;
        };
        if !decrease_ok(&t) || (lo.a > 0.0 && t.f >= lo.f) {
            hi = Some(t);
            hi_a = a;
            break;
        }
        if curvature_ok(&t) {
            return accept(ws, t);
        }
        if t.slope >= 0.0 {
            hi = Some(lo);
            hi_a = lo.a;
            lo = t;
            std::mem::swap(&mut ws.x_lo, &mut ws.x_trial);
            std::mem::swap(&mut ws.g_lo, &mut ws.g_trial);
            break;
        }
        lo = t;
        std::mem::swap(&mut ws.x_lo, &mut ws.x_trial);
        std::mem::swap(&mut ws.g_lo, &mut ws.g_trial);
        if a >= step_max {
            // Blocked by the box while still going downhill: take it.
            return Search {
                end: SearchEnd::Wolfe,
                step: lo.a,
                f: lo.f,
            };
        }
        a = (4.0 * a).min(step_max);
    }

    // Zoom: the bracket between lo and hi holds a Wolfe point.
    loop {
        if *evaluations >= max_evaluations {
            return give_up(lo, SearchEnd::Budget);
        }
        let width = hi_a - lo.a;
        if trials >= MAX_TRIALS || width.abs() <= f64::EPSILON * lo.a.abs().max(hi_a.abs()) {
            return give_up(lo, SearchEnd::Decrease);
        }
        trials += 1;
        let (near, far) = (lo.a + 0.1 * width, lo.a + 0.9 * width);
        let (left, right) = (near.min(far), near.max(far));
        let guess = hi.map_or(f64::NAN, |h| cubic_minimiser(&lo, &h));
        let a = if guess.is_finite() {
            guess.max(left).min(right)
        } else {
            lo.a + 0.5 * width
        };
        let Some(t) = evaluate_trial(f, x, bounds, a, evaluations, ws) else {
            hi = None;
            hi_a = a;
            continue;
        };
        if !decrease_ok(&t) || t.f >= lo.f {
            hi = Some(t);
            hi_a = a;
            continue;
        }
        if curvature_ok(&t) {
            return accept(ws, t);
        }
        if t.slope * (hi_a - lo.a) >= 0.0 {
            hi = Some(lo);
            hi_a = lo.a;
        }
        lo = t;
        std::mem::swap(&mut ws.x_lo, &mut ws.x_trial);
        std::mem::swap(&mut ws.g_lo, &mut ws.g_trial);
    }
}

/// Evaluates `f` at `P(x + a d)` into `ws.x_trial`, `ws.g_trial`; `None` if
/// the value or gradient is not finite.
pub(super) fn evaluate_trial<F: FnMut(&[f64], &mut [f64]) -> f64>(
    f: &mut F,
    x: &[f64],
    bounds: &Bounds<'_>,
    a: f64,
    evaluations: &mut usize,
    ws: &mut Workspace,
) -> Option<Trial> {
    if a == 1.0 {
        // Exactly x̄, so that coordinates it put on a bound land there.
        ws.x_trial.copy_from_slice(&ws.xbar);
    } else {
        for (i, (xt, &d)) in ws.x_trial.iter_mut().zip(&ws.d).enumerate() {
            *xt = bounds.clamp(i, x[i] + a * d);
        }
    }
    ws.g_trial.fill(0.0);
    let value = f(&ws.x_trial, &mut ws.g_trial);
    *evaluations += 1;
    if !value.is_finite() || ws.g_trial.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(Trial {
        a,
        f: value,
        slope: dot(&ws.g_trial, &ws.d),
    })
}

/// The minimiser of the cubic matching value and slope at `p` and `q`
/// (NaN if it has none).
pub(super) fn cubic_minimiser(p: &Trial, q: &Trial) -> f64 {
    let d1 = p.slope + q.slope - 3.0 * (p.f - q.f) / (p.a - q.a);
    let disc = d1 * d1 - p.slope * q.slope;
    if disc.is_nan() || disc < 0.0 {
        return f64::NAN;
    }
    let d2 = (q.a - p.a).signum() * disc.sqrt();
    q.a - (q.a - p.a) * (q.slope + d2 - d1) / (q.slope - p.slope + 2.0 * d2)
}
