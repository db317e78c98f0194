//! L-BFGS-B: limited-memory BFGS for smooth functions under simple bounds
//! `lower ≤ x ≤ upper`, after R. H. Byrd, P. Lu, J. Nocedal and C. Zhu,
//! "A limited memory algorithm for bound constrained optimization",
//! SIAM J. Sci. Comput. 16(5), 1995, with the projection step of
//! J. L. Morales and J. Nocedal, "Remark on algorithm 778", ACM TOMS 38(1),
//! 2011.
//!
//! # The algorithm
//!
//! The last `m` steps `sᵢ = xᵢ₊₁ − xᵢ` and gradient changes
//! `yᵢ = gᵢ₊₁ − gᵢ` define a quasi-Newton matrix in compact form, never
//! stored as an `n × n` matrix:
//!
//! ```text
//! B = θ I − W M Wᵀ,   W = [Y  θS]  (n × 2m),   θ = yᵀy / sᵀy (newest pair)
//! M = [ −D   Lᵀ  ]⁻¹  D = diag(sᵢᵀyᵢ),  L = strictly lower part of SᵀY
//!     [  L  θSᵀS ]
//! ```
//!
//! Each iteration then
//!
//! 1. finds the **generalized Cauchy point** `xᶜ`: the first local minimiser
//!    of the quadratic model `q(z) = f + gᵀz + ½ zᵀBz` along the projected
//!    steepest-descent path `t ↦ P(x − t g)`, `P` the projection onto the
//!    box. The path is piecewise linear with a kink where a coordinate meets
//!    its bound; the breakpoints are visited in increasing order from a
//!    binary heap (built in `O(n)`, popped only as far as needed), and on
//!    each segment the model's slope and curvature are updated in `O(m²)`;
//! 2. **minimises the model over the free variables** (those strictly inside
//!    their bounds at `xᶜ`, the others held there), by the Sherman–Morrison–
//!    Woodbury inverse of the reduced `B`, which needs only a `2m × 2m`
//!    solve; the result is projected onto the box and kept if it points
//!    downhill from `x`, otherwise the step from `xᶜ` is shortened to stay
//!    feasible (Morales & Nocedal);
//! 3. searches along `d = x̄ − x` for a step satisfying the strong Wolfe
//!    conditions (`c₁ = 10⁻³`, `c₂ = 0.9`), bracketing then zooming with
//!    safeguarded cubic interpolation, never leaving the box. A trial point
//!    where `f` or its gradient is not finite counts as "too far" and the
//!    step shrinks;
//! 4. stores the new pair if `sᵀy > ε yᵀy` (so that `B` stays positive
//!    definite), dropping the oldest beyond `m`.
//!
//! If the search direction is not downhill or the line search finds no
//! decrease, the memory is cleared and the iteration restarts from a
//! steepest-descent model; if that fails too the run stops with
//! [`Termination::LineSearchFailed`].
//!
//! Memory is `2mn` numbers for the pairs plus a few `n`-vectors. An
//! iteration costs `O(mn)` for the products with `W`, `O(n + b log n)` for
//! `b` breakpoints passed on the Cauchy path (each `O(m²)`), and
//! `O(m² · min(free, active))` to form the reduced matrix of step 2.
//!
//! The stopping rules and defaults ([`LbfgsbConfig::default`]) follow
//! SciPy's `fmin_l_bfgs_b`: `m = 10`, `ftol = 10⁷ ε`, `pgtol = 10⁻⁵`,
//! 15000 iterations and evaluations.
//!
//! # Example
//!
//! ```
//! use smoothout_models::analysis::{minimize, LbfgsbConfig, Termination};
//!
//! // f(x) = (x₀ − 2)² + (x₁ + 3)² over the box [0, 1] × [−1, 1]:
//! // the minimiser is the point of the box nearest (2, −3).
//! let f = |x: &[f64], g: &mut [f64]| {
//!     g[0] = 2.0 * (x[0] - 2.0);
//!     g[1] = 2.0 * (x[1] + 3.0);
//!     (x[0] - 2.0).powi(2) + (x[1] + 3.0).powi(2)
//! };
//! let r = minimize(f, &[0.5, 0.0], &[0.0, -1.0], &[1.0, 1.0], &LbfgsbConfig::default())?;
//! assert_eq!(r.x, [1.0, -1.0]);
//! assert_eq!(r.termination, Termination::ProjectedGradient);
//! # Ok::<(), smoothout_models::analysis::LbfgsbError>(())
//! ```

use std::fmt;

use bounds::{max_feasible_step, projected_gradient_norm, Bounds};
use cauchy::cauchy_point;
use dense::dot;
use memory::Memory;
use model::Model;
use search::{line_search, SearchEnd, MAX_STEP};
use subspace::subspace_minimum;
use workspace::Workspace;

mod bounds;
mod cauchy;
mod dense;
mod memory;
mod model;
mod search;
mod subspace;
mod workspace;

#[cfg(test)]
mod tests;

/// Settings of [`minimize`] and [`maximize`].
///
/// `Default` gives SciPy's `fmin_l_bfgs_b` defaults: `memory = 10`,
/// `ftol = 10⁷ · f64::EPSILON` (SciPy's `factr = 1e7`), `pgtol = 1e-5`,
/// `max_iterations = max_evaluations = 15000`.
///
/// ```
/// use smoothout_models::analysis::LbfgsbConfig;
///
/// let tight = LbfgsbConfig { pgtol: 1e-10, ..LbfgsbConfig::default() };
/// assert_eq!(tight.memory, 10);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LbfgsbConfig {
    /// Number `m` of correction pairs kept (at least 1).
    pub memory: usize,
    /// Stop after this many iterations (accepted steps).
    pub max_iterations: usize,
    /// Stop once this many evaluations of `f` have been made, counting the
    /// one at the start point.
    pub max_evaluations: usize,
    /// Stop when `(f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤ ftol`.
    pub ftol: f64,
    /// Stop when the projected gradient's largest entry,
    /// `max_i |P(x − g)_i − x_i|`, is at most `pgtol`.
    pub pgtol: f64,
}

impl Default for LbfgsbConfig {
    fn default() -> Self {
        Self {
            memory: 10,
            max_iterations: 15_000,
            max_evaluations: 15_000,
            ftol: 1e7 * f64::EPSILON,
            pgtol: 1e-5,
        }
    }
}

/// Why [`minimize`] or [`maximize`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// The projected gradient is small: `‖P(x − g) − x‖∞ ≤ pgtol`.
    ProjectedGradient,
    /// The last step reduced `f` by a relative amount of at most `ftol`:
    /// `(f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤ ftol`.
    RelativeReduction,
    /// `max_iterations` steps were taken.
    MaxIterations,
    /// `max_evaluations` evaluations were spent.
    MaxEvaluations,
    /// No step reduces `f` any more, even from a steepest-descent model
    /// (typically: `f` is flat to rounding, or the gradient does not match
    /// `f`). `x` is still the best point found.
    LineSearchFailed,
}

/// The outcome of [`minimize`] or [`maximize`].
#[derive(Clone, Debug, PartialEq)]
pub struct LbfgsbResult {
    /// The best point found (inside the box).
    pub x: Vec<f64>,
    /// `f(x)`.
    pub f: f64,
    /// `∇f(x)`.
    pub gradient: Vec<f64>,
    /// Accepted steps.
    pub iterations: usize,
    /// Evaluations of `f`, the one at the start point included.
    pub evaluations: usize,
    /// Why the run stopped.
    pub termination: Termination,
}

/// Invalid input to [`minimize`] or [`maximize`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LbfgsbError {
    /// `x0`, `lower` and `upper` have different lengths.
    LengthMismatch {
        /// Length of `x0`.
        x0: usize,
        /// Length of `lower`.
        lower: usize,
        /// Length of `upper`.
        upper: usize,
    },
    /// The problem has no variables.
    Empty,
    /// `lower[index] > upper[index]`.
    InvertedBounds {
        /// The offending variable.
        index: usize,
        /// Its lower bound.
        lower: f64,
        /// Its upper bound.
        upper: f64,
    },
    /// `lower[index]` is NaN.
    NanLowerBound {
        /// The offending variable.
        index: usize,
    },
    /// `upper[index]` is NaN.
    NanUpperBound {
        /// The offending variable.
        index: usize,
    },
    /// `x0[index]` is NaN.
    NanStart {
        /// The offending variable.
        index: usize,
    },
    /// `config.memory` is 0.
    ZeroMemory,
    /// `config.ftol` or `config.pgtol` is negative or NaN.
    InvalidTolerance {
        /// `"ftol"` or `"pgtol"`.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// `f` at the (projected) start point is not finite.
    NonFiniteValueAtStart {
        /// The value returned.
        value: f64,
    },
    /// The gradient at the (projected) start point has a non-finite entry.
    NonFiniteGradientAtStart {
        /// The first non-finite entry.
        index: usize,
        /// Its value.
        value: f64,
    },
}

impl fmt::Display for LbfgsbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthMismatch { x0, lower, upper } => write!(
                f,
                "x0, lower and upper have lengths {x0}, {lower} and {upper}; \
                 give one bound of each kind per variable (±infinity for none)"
            ),
            Self::Empty => write!(f, "the problem has no variables; pass at least one"),
            Self::InvertedBounds {
                index,
                lower,
                upper,
            } => write!(
                f,
                "variable {index} has lower bound {lower} above its upper bound {upper}; \
                 swap them or widen the box"
            ),
            Self::NanLowerBound { index } => write!(
                f,
                "the lower bound of variable {index} is NaN; use -infinity for \"no bound\""
            ),
            Self::NanUpperBound { index } => write!(
                f,
                "the upper bound of variable {index} is NaN; use +infinity for \"no bound\""
            ),
            Self::NanStart { index } => write!(
                f,
                "start point entry {index} is NaN; start from a finite point"
            ),
            Self::ZeroMemory => write!(
                f,
                "memory is 0; keep at least one correction pair (SciPy uses 10)"
            ),
            Self::InvalidTolerance { name, value } => write!(
                f,
                "{name} is {value}; it must be a non-negative number (0 disables the test)"
            ),
            Self::NonFiniteValueAtStart { value } => write!(
                f,
                "f at the start point (projected into the box) is {value}; \
                 start where the function is finite"
            ),
            Self::NonFiniteGradientAtStart { index, value } => write!(
                f,
                "gradient entry {index} at the start point (projected into the box) is {value}; \
                 start where the gradient is finite, or check that f writes every entry"
            ),
        }
    }
}

impl std::error::Error for LbfgsbError {}

impl LbfgsbError {
    /// The same error as reported for `−f` (values at the start point negated).
    fn negated(self) -> Self {
        match self {
            Self::NonFiniteValueAtStart { value } => Self::NonFiniteValueAtStart { value: -value },
            Self::NonFiniteGradientAtStart { index, value } => Self::NonFiniteGradientAtStart {
                index,
                value: -value,
            },
            other => other,
        }
    }
}

/// Minimises `f` over the box `lower ≤ x ≤ upper` by L-BFGS-B, starting from
/// `x0` projected into the box.
///
/// `f(x, g)` returns `f(x)` and writes `∇f(x)` into `g` (which arrives
/// zeroed). Infinite bounds mean "unbounded on that side"; `lower[i] ==
/// upper[i]` fixes variable `i`. After the start point, a trial point where
/// `f` or its gradient is not finite is treated as a failed step (the line
/// search shrinks the step); it never panics.
///
/// The result is the best point found, whatever the [`Termination`].
///
/// # Errors
///
/// [`LbfgsbError`] for mismatched lengths, an empty problem, NaN entries,
/// `lower > upper`, `memory == 0`, negative tolerances, or a non-finite
/// value or gradient at the start point.
///
/// # Example
///
/// ```
/// use smoothout_models::analysis::{minimize, LbfgsbConfig};
///
/// // Rosenbrock's function, unconstrained.
/// let rosen = |x: &[f64], g: &mut [f64]| {
///     let (a, b) = (1.0 - x[0], x[1] - x[0] * x[0]);
///     g[0] = -2.0 * a - 400.0 * x[0] * b;
///     g[1] = 200.0 * b;
///     a * a + 100.0 * b * b
/// };
/// let inf = f64::INFINITY;
/// let r = minimize(rosen, &[-1.2, 1.0], &[-inf; 2], &[inf; 2], &LbfgsbConfig::default())?;
/// assert!((r.x[0] - 1.0).abs() < 1e-4 && (r.x[1] - 1.0).abs() < 1e-4);
/// # Ok::<(), smoothout_models::analysis::LbfgsbError>(())
/// ```
pub fn minimize<F: FnMut(&[f64], &mut [f64]) -> f64>(
    mut f: F,
    x0: &[f64],
    lower: &[f64],
    upper: &[f64],
    config: &LbfgsbConfig,
) -> Result<LbfgsbResult, LbfgsbError> {
    validate(x0, lower, upper, config)?;
    let bounds = Bounds { lower, upper };
    let n = x0.len();
    let mut x: Vec<f64> = (0..n).map(|i| bounds.clamp(i, x0[i])).collect();
    let mut g = vec![0.0; n];
    let mut evaluations = 0;
    g.fill(0.0);
    let mut fx = f(&x, &mut g);
    evaluations += 1;
    if !fx.is_finite() {
        return Err(LbfgsbError::NonFiniteValueAtStart { value: fx });
    }
    if let Some(index) = g.iter().position(|v| !v.is_finite()) {
        return Err(LbfgsbError::NonFiniteGradientAtStart {
            index,
            value: g[index],
        });
    }

    let boxed = (0..n).all(|i| lower[i].is_finite() && upper[i].is_finite());
    let any_bound = (0..n).any(|i| lower[i].is_finite() || upper[i].is_finite());
    let mut memory = Memory::new(config.memory);
    let mut ws = Workspace::new(n);
    let mut iterations = 0;

    let termination = loop {
        if projected_gradient_norm(&x, &g, &bounds) <= config.pgtol {
            break Termination::ProjectedGradient;
        }
        if iterations >= config.max_iterations {
            break Termination::MaxIterations;
        }
        if evaluations >= config.max_evaluations {
            break Termination::MaxEvaluations;
        }

        // Steps 1 and 2: the point x̄ the model prefers.
        let model = Model {
            x: &x,
            g: &g,
            bounds: &bounds,
            mem: &memory,
        };
        let ok = cauchy_point(model, &mut ws) && subspace_minimum(model, &mut ws);
        let mut slope = 0.0;
        for i in 0..n {
            ws.d[i] = ws.xbar[i] - x[i];
            slope += g[i] * ws.d[i];
        }
        // `!(slope < 0)` also catches NaN.
        if !ok || slope.is_nan() || slope >= 0.0 {
            if memory.is_empty() {
                break Termination::LineSearchFailed;
            }
            memory.clear();
            continue;
        }

        // Step 3: the line search.
        let feasible = max_feasible_step(&x, &ws.d, &bounds);
        let step_max = if iterations == 0 && any_bound {
            1.0
        } else {
            feasible.min(MAX_STEP)
        };
        let first = if iterations == 0 && !boxed {
            let norm = dot(&ws.d, &ws.d).sqrt();
            (1.0 / norm).min(step_max)
        } else {
            step_max.min(1.0)
        };
        let search = line_search(
            &mut f,
            &x,
            &bounds,
            fx,
            slope,
            first,
            step_max,
            &mut evaluations,
            config.max_evaluations,
            &mut ws,
        );
        match search.end {
            SearchEnd::Wolfe | SearchEnd::Decrease => {}
            SearchEnd::Failed => {
                if memory.is_empty() {
                    break Termination::LineSearchFailed;
                }
                memory.clear();
                continue;
            }
            SearchEnd::Budget => {
                if search.step > 0.0 {
                    std::mem::swap(&mut x, &mut ws.x_lo);
                    std::mem::swap(&mut g, &mut ws.g_lo);
                    fx = search.f;
                    iterations += 1;
                }
                break Termination::MaxEvaluations;
            }
        }

        // Step 4: accept the point and update the memory.
        for i in 0..n {
            ws.s[i] = ws.x_lo[i] - x[i];
            ws.y[i] = ws.g_lo[i] - g[i];
        }
        std::mem::swap(&mut x, &mut ws.x_lo);
        std::mem::swap(&mut g, &mut ws.g_lo);
        let f_old = fx;
        fx = search.f;
        iterations += 1;
        let sy = dot(&ws.s, &ws.y);
        let yy = dot(&ws.y, &ws.y);
        if sy > f64::EPSILON * yy && !memory.push(&ws.s, &ws.y) {
            memory.clear();
        }

        let scale = f_old.abs().max(fx.abs()).max(1.0);
        if (f_old - fx) / scale <= config.ftol {
            if projected_gradient_norm(&x, &g, &bounds) <= config.pgtol {
                break Termination::ProjectedGradient;
            }
            break Termination::RelativeReduction;
        }
    };

    Ok(LbfgsbResult {
        x,
        f: fx,
        gradient: g,
        iterations,
        evaluations,
        termination,
    })
}

/// Maximises `f` over the box `lower ≤ x ≤ upper`: [`minimize`] on `−f`
/// **with gradient `−∇f`**, the result reported in `f`'s own sign
/// (`result.f = f(x)`, `result.gradient = ∇f(x)`).
///
/// Negating only the value and passing `∇f` unchanged is the classic
/// mistake: the optimiser then walks downhill in `f` while expecting the
/// value to fall, its line search sees no decrease, and it stops near the
/// start. This function negates both.
///
/// [`Termination::ProjectedGradient`] then refers to the projected gradient
/// of `−f`: at a maximiser on a bound, `∇f` points out of the box.
///
/// # Errors
///
/// As [`minimize`]; a non-finite value or gradient at the start point is
/// reported in `f`'s sign.
///
/// # Example
///
/// The (C_ε, A)-sharpness situation: a convex function's maximum over a box
/// is at a vertex.
///
/// ```
/// use smoothout_models::analysis::{maximize, LbfgsbConfig};
///
/// // f(x) = ½‖x‖² + bᵀx over [−1, 1]²: the maximiser is (sign b₀, sign b₁).
/// let b = [0.3, -0.2];
/// let f = |x: &[f64], g: &mut [f64]| {
///     let mut v = 0.0;
///     for i in 0..2 {
///         g[i] = x[i] + b[i];
///         v += 0.5 * x[i] * x[i] + b[i] * x[i];
///     }
///     v
/// };
/// let r = maximize(f, &[0.0, 0.0], &[-1.0; 2], &[1.0; 2], &LbfgsbConfig::default())?;
/// assert_eq!(r.x, [1.0, -1.0]);
/// assert!((r.f - 1.5).abs() < 1e-12);
/// # Ok::<(), smoothout_models::analysis::LbfgsbError>(())
/// ```
pub fn maximize<F: FnMut(&[f64], &mut [f64]) -> f64>(
    mut f: F,
    x0: &[f64],
    lower: &[f64],
    upper: &[f64],
    config: &LbfgsbConfig,
) -> Result<LbfgsbResult, LbfgsbError> {
    let negated = |x: &[f64], g: &mut [f64]| {
        let value = f(x, g);
        for gi in g.iter_mut() {
            *gi = -*gi;
        }
        -value
    };
    match minimize(negated, x0, lower, upper, config) {
        Ok(mut r) => {
            r.f = -r.f;
            for gi in &mut r.gradient {
                *gi = -*gi;
            }
            Ok(r)
        }
        Err(e) => Err(e.negated()),
    }
}

fn validate(
    x0: &[f64],
    lower: &[f64],
    upper: &[f64],
    config: &LbfgsbConfig,
) -> Result<(), LbfgsbError> {
    if x0.len() != lower.len() || x0.len() != upper.len() {
        return Err(LbfgsbError::LengthMismatch {
            x0: x0.len(),
            lower: lower.len(),
            upper: upper.len(),
        });
    }
    if x0.is_empty() {
        return Err(LbfgsbError::Empty);
    }
    if config.memory == 0 {
        return Err(LbfgsbError::ZeroMemory);
    }
    for (name, value) in [("ftol", config.ftol), ("pgtol", config.pgtol)] {
        if value.is_nan() || value < 0.0 {
            return Err(LbfgsbError::InvalidTolerance { name, value });
        }
    }
    for i in 0..x0.len() {
        if lower[i].is_nan() {
            return Err(LbfgsbError::NanLowerBound { index: i });
        }
        if upper[i].is_nan() {
            return Err(LbfgsbError::NanUpperBound { index: i });
        }
        if lower[i] > upper[i] {
            return Err(LbfgsbError::InvertedBounds {
                index: i,
                lower: lower[i],
                upper: upper[i],
            });
        }
        if x0[i].is_nan() {
            return Err(LbfgsbError::NanStart { index: i });
        }
    }
    Ok(())
}
