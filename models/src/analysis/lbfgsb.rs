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

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;

/// Sufficient-decrease constant `c₁` of the Wolfe conditions.
const SUFFICIENT_DECREASE: f64 = 1e-3;
/// Curvature constant `c₂` of the strong Wolfe conditions.
const CURVATURE: f64 = 0.9;
/// Function evaluations one line search may spend.
const MAX_TRIALS: usize = 20;
/// Longest step a line search may try along a direction that no bound stops.
const MAX_STEP: f64 = 1e10;

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
        let ok = cauchy_point(&x, &g, &bounds, &memory, &mut ws)
            && subspace_minimum(&x, &g, &bounds, &memory, &mut ws);
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

/// The box, borrowed from the caller.
struct Bounds<'a> {
    lower: &'a [f64],
    upper: &'a [f64],
}

impl Bounds<'_> {
    /// `v` projected onto `[lower[i], upper[i]]` (`max`/`min` rather than
    /// `clamp`, which panics on NaN).
    fn clamp(&self, i: usize, v: f64) -> f64 {
        v.max(self.lower[i]).min(self.upper[i])
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `max_i |P(x − g)_i − x_i|`.
fn projected_gradient_norm(x: &[f64], g: &[f64], bounds: &Bounds<'_>) -> f64 {
    let mut norm = 0.0f64;
    for i in 0..x.len() {
        norm = norm.max((bounds.clamp(i, x[i] - g[i]) - x[i]).abs());
    }
    norm
}

/// The largest `λ` with `x + λd` inside the box (infinite if no bound stops
/// the direction).
fn max_feasible_step(x: &[f64], d: &[f64], bounds: &Bounds<'_>) -> f64 {
    let mut step = f64::INFINITY;
    for i in 0..x.len() {
        let room = if d[i] > 0.0 {
            bounds.upper[i] - x[i]
        } else if d[i] < 0.0 {
            bounds.lower[i] - x[i]
        } else {
            continue;
        };
        step = step.min((room / d[i]).max(0.0));
    }
    step
}

/// The correction pairs and the small matrices of the compact
/// representation `B = θI − W M Wᵀ`, `W = [Y θS]`.
struct Memory {
    capacity: usize,
    /// Steps, oldest first.
    s: VecDeque<Vec<f64>>,
    /// Gradient changes, oldest first.
    y: VecDeque<Vec<f64>>,
    /// `ss[i][j] = sᵢ·sⱼ`.
    ss: Vec<Vec<f64>>,
    /// `sy[i][j] = sᵢ·yⱼ`.
    sy: Vec<Vec<f64>>,
    /// `yy[i][j] = yᵢ·yⱼ`.
    yy: Vec<Vec<f64>>,
    theta: f64,
    /// `M`, `2k × 2k` row-major for `k` pairs.
    m: Vec<f64>,
}

impl Memory {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            s: VecDeque::with_capacity(capacity),
            y: VecDeque::with_capacity(capacity),
            ss: Vec::new(),
            sy: Vec::new(),
            yy: Vec::new(),
            theta: 1.0,
            m: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.s.len()
    }

    fn is_empty(&self) -> bool {
        self.s.is_empty()
    }

    fn clear(&mut self) {
        self.s.clear();
        self.y.clear();
        self.ss.clear();
        self.sy.clear();
        self.yy.clear();
        self.theta = 1.0;
        self.m.clear();
    }

    /// Adds a pair (dropping the oldest when full) and rebuilds `M`.
    /// `false` if `M` could not be formed.
    fn push(&mut self, s_new: &[f64], y_new: &[f64]) -> bool {
        let (mut s_buf, mut y_buf) = if self.len() == self.capacity {
            for gram in [&mut self.ss, &mut self.sy, &mut self.yy] {
                gram.remove(0);
                for row in gram.iter_mut() {
                    row.remove(0);
                }
            }
            (
                self.s.pop_front().unwrap_or_default(),
                self.y.pop_front().unwrap_or_default(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        s_buf.clear();
        s_buf.extend_from_slice(s_new);
        y_buf.clear();
        y_buf.extend_from_slice(y_new);

        let k = self.len();
        let mut ss_row = Vec::with_capacity(k + 1);
        let mut sy_row = Vec::with_capacity(k + 1);
        let mut yy_row = Vec::with_capacity(k + 1);
        for i in 0..k {
            let ss = dot(&self.s[i], &s_buf);
            let yy = dot(&self.y[i], &y_buf);
            self.ss[i].push(ss);
            self.yy[i].push(yy);
            self.sy[i].push(dot(&self.s[i], &y_buf));
            ss_row.push(ss);
            yy_row.push(yy);
            sy_row.push(dot(&s_buf, &self.y[i]));
        }
        let sy_new = dot(&s_buf, &y_buf);
        let yy_new = dot(&y_buf, &y_buf);
        ss_row.push(dot(&s_buf, &s_buf));
        sy_row.push(sy_new);
        yy_row.push(yy_new);
        self.ss.push(ss_row);
        self.sy.push(sy_row);
        self.yy.push(yy_row);
        self.s.push_back(s_buf);
        self.y.push_back(y_buf);
        self.theta = yy_new / sy_new;
        self.form_m()
    }

    /// The `2k × 2k` matrix `K = M⁻¹ = [[−D, Lᵀ], [L, θSᵀS]]`.
    fn middle(&self) -> Vec<f64> {
        let k = self.len();
        let dim = 2 * k;
        let mut km = vec![0.0; dim * dim];
        for i in 0..k {
            km[i * dim + i] = -self.sy[i][i];
            for j in 0..k {
                if i > j {
                    // L[i][j] = sᵢ·yⱼ below the diagonal, Lᵀ above it.
                    km[(k + i) * dim + j] = self.sy[i][j];
                    km[j * dim + k + i] = self.sy[i][j];
                }
                km[(k + i) * dim + k + j] = self.theta * self.ss[i][j];
            }
        }
        km
    }

    fn form_m(&mut self) -> bool {
        let dim = 2 * self.len();
        match invert(&self.middle(), dim) {
            Some(m) => {
                self.m = m;
                true
            }
            None => false,
        }
    }

    /// `out = M v`.
    fn m_times(&self, v: &[f64], out: &mut [f64]) {
        let dim = v.len();
        for (r, o) in out.iter_mut().enumerate() {
            *o = dot(&self.m[r * dim..(r + 1) * dim], v);
        }
    }

    /// Row `i` of `W = [Y θS]`.
    fn w_row(&self, i: usize, out: &mut [f64]) {
        let k = self.len();
        for j in 0..k {
            out[j] = self.y[j][i];
            out[k + j] = self.theta * self.s[j][i];
        }
    }

    /// `out = Wᵀ v`.
    fn wt_times(&self, v: &[f64], out: &mut [f64]) {
        let k = self.len();
        for j in 0..k {
            out[j] = dot(&self.y[j], v);
            out[k + j] = self.theta * dot(&self.s[j], v);
        }
    }

    /// Entry `(r, c)` of `WᵀW`.
    fn wtw(&self, r: usize, c: usize) -> f64 {
        let k = self.len();
        let t = self.theta;
        match (r < k, c < k) {
            (true, true) => self.yy[r][c],
            (true, false) => t * self.sy[c - k][r],
            (false, true) => t * self.sy[r - k][c],
            (false, false) => t * t * self.ss[r - k][c - k],
        }
    }
}

/// Buffers reused across iterations.
struct Workspace {
    xc: Vec<f64>,
    xbar: Vec<f64>,
    d: Vec<f64>,
    /// `Wᵀ(xᶜ − x)` premultiplied by `M`, from the Cauchy search.
    mc: Vec<f64>,
    breaks: Vec<Breakpoint>,
    free: Vec<usize>,
    /// Reduced gradient, then the subspace step, over `free`.
    r: Vec<f64>,
    x_trial: Vec<f64>,
    g_trial: Vec<f64>,
    x_lo: Vec<f64>,
    g_lo: Vec<f64>,
    s: Vec<f64>,
    y: Vec<f64>,
}

impl Workspace {
    fn new(n: usize) -> Self {
        Self {
            xc: vec![0.0; n],
            xbar: vec![0.0; n],
            d: vec![0.0; n],
            mc: Vec::new(),
            breaks: Vec::new(),
            free: Vec::new(),
            r: Vec::new(),
            x_trial: vec![0.0; n],
            g_trial: vec![0.0; n],
            x_lo: vec![0.0; n],
            g_lo: vec![0.0; n],
            s: vec![0.0; n],
            y: vec![0.0; n],
        }
    }
}

/// A kink of the projected path, ordered so that `BinaryHeap` pops the
/// smallest `t` first.
#[derive(Clone, Copy, Debug)]
struct Breakpoint {
    t: f64,
    index: usize,
}

impl PartialEq for Breakpoint {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Breakpoint {}

impl PartialOrd for Breakpoint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Breakpoint {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .t
            .total_cmp(&self.t)
            .then(other.index.cmp(&self.index))
    }
}

/// Step 1: the generalized Cauchy point into `ws.xc`, and `M Wᵀ(xᶜ − x)`
/// into `ws.mc`. `false` if the model has no minimiser along the path
/// (possible only when rounding has spoilt `B`'s positive definiteness).
fn cauchy_point(
    x: &[f64],
    g: &[f64],
    bounds: &Bounds<'_>,
    mem: &Memory,
    ws: &mut Workspace,
) -> bool {
    let n = x.len();
    let dim = 2 * mem.len();
    let theta = mem.theta;

    // Moving coordinates travel along −g until their bound; those already
    // at the bound they are pushed against do not move at all.
    ws.breaks.clear();
    ws.xc.copy_from_slice(x);
    ws.d.fill(0.0);
    let mut sq_norm = 0.0; // dᵀd over the coordinates still moving
    let mut moving = 0usize;
    for i in 0..n {
        let gi = g[i];
        let t = if gi < 0.0 {
            (bounds.upper[i] - x[i]) / -gi
        } else if gi > 0.0 {
            (x[i] - bounds.lower[i]) / gi
        } else {
            continue;
        };
        if t <= 0.0 {
            continue;
        }
        ws.d[i] = -gi;
        sq_norm += gi * gi;
        moving += 1;
        if t.is_finite() {
            ws.breaks.push(Breakpoint { t, index: i });
        }
    }
    ws.mc.clear();
    ws.mc.resize(dim, 0.0);
    if moving == 0 {
        return true;
    }

    // p = Wᵀd, c = Wᵀz (z = path point − x), kept premultiplied by M too.
    let mut p = vec![0.0; dim];
    let mut mp = vec![0.0; dim];
    let mut c = vec![0.0; dim];
    let mut w = vec![0.0; dim];
    let mut mw = vec![0.0; dim];
    if dim > 0 {
        mem.wt_times(&ws.d, &mut p);
        mem.m_times(&p, &mut mp);
    }
    // Along a segment starting at path parameter t, with z = t·d on the
    // moving coordinates: q'(t) = gᵀd + dᵀBz = (θt − 1)dᵀd − pᵀMc and
    // q'' = dᵀBd = θdᵀd − pᵀMp.
    let mut heap = BinaryHeap::from(std::mem::take(&mut ws.breaks));
    let mut t_seg = 0.0;
    let mut slope = -sq_norm;
    let mut curv = theta * sq_norm - dot(&p, &mp);
    let mut dt_min = if curv > 0.0 {
        -slope / curv
    } else {
        f64::INFINITY
    };
    while let Some(bp) = heap.peek().copied() {
        let dt = bp.t - t_seg;
        if dt_min < dt {
            break;
        }
        heap.pop();
        // Advance to the breakpoint and pin coordinate b to its bound.
        let b = bp.index;
        let gb = g[b];
        ws.xc[b] = if ws.d[b] > 0.0 {
            bounds.upper[b]
        } else {
            bounds.lower[b]
        };
        t_seg = bp.t;
        for j in 0..dim {
            c[j] += dt * p[j];
            ws.mc[j] += dt * mp[j];
        }
        ws.d[b] = 0.0;
        sq_norm -= gb * gb;
        moving -= 1;
        if moving == 0 {
            break;
        }
        if dim > 0 {
            mem.w_row(b, &mut w);
            mem.m_times(&w, &mut mw);
            for j in 0..dim {
                p[j] += gb * w[j];
                mp[j] += gb * mw[j];
            }
        }
        slope = (theta * t_seg - 1.0) * sq_norm - dot(&p, &ws.mc);
        curv = theta * sq_norm - dot(&p, &mp);
        if slope >= 0.0 {
            dt_min = 0.0;
            break;
        }
        dt_min = if curv > 0.0 {
            -slope / curv
        } else {
            f64::INFINITY
        };
    }
    ws.breaks = heap.into_vec();
    if moving == 0 {
        return true;
    }
    if !dt_min.is_finite() {
        return false;
    }
    let dt_min = dt_min.max(0.0);
    let t = t_seg + dt_min;
    for (i, (xc, &d)) in ws.xc.iter_mut().zip(&ws.d).enumerate() {
        if d != 0.0 {
            *xc = bounds.clamp(i, x[i] + t * d);
        }
    }
    for (mc, &mp) in ws.mc.iter_mut().zip(&mp) {
        *mc += dt_min * mp;
    }
    true
}

/// Step 2: minimises the model over the coordinates free at `xᶜ`, writing
/// `x̄` into `ws.xbar`. `false` if the reduced system is singular.
fn subspace_minimum(
    x: &[f64],
    g: &[f64],
    bounds: &Bounds<'_>,
    mem: &Memory,
    ws: &mut Workspace,
) -> bool {
    let n = x.len();
    let k = mem.len();
    let dim = 2 * k;
    let theta = mem.theta;
    ws.xbar.copy_from_slice(&ws.xc);
    ws.free.clear();
    ws.free
        .extend((0..n).filter(|&i| bounds.lower[i] < ws.xc[i] && ws.xc[i] < bounds.upper[i]));
    if ws.free.is_empty() {
        return true;
    }

    // Reduced gradient of the model at xᶜ: r = Zᵀ(g + θ(xᶜ − x) − W M c).
    let mut w = vec![0.0; dim];
    ws.r.clear();
    for &i in &ws.free {
        let mut ri = g[i] + theta * (ws.xc[i] - x[i]);
        if dim > 0 {
            mem.w_row(i, &mut w);
            ri -= dot(&w, &ws.mc);
        }
        ws.r.push(ri);
    }

    // With V = ZᵀW, Sherman–Morrison–Woodbury gives the reduced inverse
    // (θI − VMVᵀ)⁻¹ r = r/θ + V (M⁻¹ − VᵀV/θ)⁻¹ Vᵀr / θ², and M⁻¹ is K.
    if dim > 0 {
        let mut vtr = vec![0.0; dim];
        let mut vtv = vec![0.0; dim * dim];
        let free_count = ws.free.len();
        if 2 * free_count <= n {
            for (pos, &i) in ws.free.iter().enumerate() {
                mem.w_row(i, &mut w);
                accumulate_outer(&mut vtv, &w, 1.0);
                for j in 0..dim {
                    vtr[j] += w[j] * ws.r[pos];
                }
            }
        } else {
            // Fewer fixed than free coordinates: VᵀV = WᵀW − (fixed rows).
            for r in 0..dim {
                for c in r..dim {
                    vtv[r * dim + c] = mem.wtw(r, c);
                }
            }
            let mut next_free = ws.free.iter().peekable();
            for i in 0..n {
                if next_free.peek() == Some(&&i) {
                    next_free.next();
                    continue;
                }
                mem.w_row(i, &mut w);
                accumulate_outer(&mut vtv, &w, -1.0);
            }
            for (pos, &i) in ws.free.iter().enumerate() {
                mem.w_row(i, &mut w);
                for j in 0..dim {
                    vtr[j] += w[j] * ws.r[pos];
                }
            }
        }
        let mut system = mem.middle();
        for r in 0..dim {
            for c in 0..dim {
                let v = if r <= c {
                    vtv[r * dim + c]
                } else {
                    vtv[c * dim + r]
                };
                system[r * dim + c] -= v / theta;
            }
        }
        if !solve(&mut system, dim, &mut vtr) {
            return false;
        }
        for (pos, &i) in ws.free.iter().enumerate() {
            mem.w_row(i, &mut w);
            ws.r[pos] = -ws.r[pos] / theta - dot(&w, &vtr) / (theta * theta);
        }
    } else {
        for r in &mut ws.r {
            *r = -*r / theta;
        }
    }
    // ws.r now holds the unconstrained subspace step from xᶜ.

    // Morales–Nocedal: project xᶜ + step onto the box; keep it if it points
    // downhill from x, otherwise shorten the step to stay inside.
    let mut slope = 0.0;
    for (pos, &i) in ws.free.iter().enumerate() {
        ws.xbar[i] = bounds.clamp(i, ws.xc[i] + ws.r[pos]);
    }
    for i in 0..n {
        slope += g[i] * (ws.xbar[i] - x[i]);
    }
    if slope < 0.0 {
        return true;
    }
    let mut alpha = 1.0f64;
    for (pos, &i) in ws.free.iter().enumerate() {
        let step = ws.r[pos];
        let room = if step > 0.0 {
            bounds.upper[i] - ws.xc[i]
        } else if step < 0.0 {
            bounds.lower[i] - ws.xc[i]
        } else {
            continue;
        };
        alpha = alpha.min((room / step).max(0.0));
    }
    for (pos, &i) in ws.free.iter().enumerate() {
        ws.xbar[i] = bounds.clamp(i, ws.xc[i] + alpha * ws.r[pos]);
    }
    true
}

/// `a += sign · w wᵀ` on the upper triangle of the square matrix `a`.
fn accumulate_outer(a: &mut [f64], w: &[f64], sign: f64) {
    let dim = w.len();
    for r in 0..dim {
        let wr = sign * w[r];
        for c in r..dim {
            a[r * dim + c] += wr * w[c];
        }
    }
}

/// Solves `a x = b` in place (`b` becomes `x`) by Gaussian elimination with
/// partial pivoting; `a` is `dim × dim` row-major and is overwritten.
/// `false` if `a` is singular or the solution is not finite.
fn solve(a: &mut [f64], dim: usize, b: &mut [f64]) -> bool {
    for col in 0..dim {
        let pivot_row = (col..dim)
            .max_by(|&r, &s| a[r * dim + col].abs().total_cmp(&a[s * dim + col].abs()))
            .unwrap_or(col);
        let pivot = a[pivot_row * dim + col];
        if pivot == 0.0 || !pivot.is_finite() {
            return false;
        }
        if pivot_row != col {
            for c in 0..dim {
                a.swap(col * dim + c, pivot_row * dim + c);
            }
            b.swap(col, pivot_row);
        }
        for r in col + 1..dim {
            let factor = a[r * dim + col] / pivot;
            if factor != 0.0 {
                for c in col..dim {
                    a[r * dim + c] -= factor * a[col * dim + c];
                }
                b[r] -= factor * b[col];
            }
        }
    }
    for r in (0..dim).rev() {
        let mut v = b[r];
        for c in r + 1..dim {
            v -= a[r * dim + c] * b[c];
        }
        b[r] = v / a[r * dim + r];
    }
    b.iter().all(|v| v.is_finite())
}

/// The inverse of the `dim × dim` row-major matrix `a`, column by column.
fn invert(a: &[f64], dim: usize) -> Option<Vec<f64>> {
    let mut inv = vec![0.0; dim * dim];
    let mut col = vec![0.0; dim];
    let mut work = vec![0.0; dim * dim];
    for c in 0..dim {
        work.copy_from_slice(a);
        col.fill(0.0);
        col[c] = 1.0;
        if !solve(&mut work, dim, &mut col) {
            return None;
        }
        for r in 0..dim {
            inv[r * dim + c] = col[r];
        }
    }
    // M is symmetric; average away the rounding asymmetry.
    for r in 0..dim {
        for c in r + 1..dim {
            let v = 0.5 * (inv[r * dim + c] + inv[c * dim + r]);
            inv[r * dim + c] = v;
            inv[c * dim + r] = v;
        }
    }
    Some(inv)
}

/// How a line search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SearchEnd {
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
struct Search {
    end: SearchEnd,
    step: f64,
    f: f64,
}

/// A trial step with `φ(a) = f(x + a d)` and `φ'(a) = ∇f(x + a d)ᵀd`.
#[derive(Clone, Copy, Debug)]
struct Trial {
    a: f64,
    f: f64,
    slope: f64,
}

/// Step 3: a strong Wolfe line search along `ws.d` from `x`, inside the box
/// (`0 < step ≤ step_max`), bracketing then zooming (Nocedal & Wright,
/// *Numerical Optimization*, algorithms 3.5 and 3.6) with safeguarded cubic
/// interpolation. Non-finite trial points shrink the step by bisection.
#[allow(clippy::too_many_arguments)]
fn line_search<F: FnMut(&[f64], &mut [f64]) -> f64>(
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
fn evaluate_trial<F: FnMut(&[f64], &mut [f64]) -> f64>(
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
fn cubic_minimiser(p: &Trial, q: &Trial) -> f64 {
    let d1 = p.slope + q.slope - 3.0 * (p.f - q.f) / (p.a - q.a);
    let disc = d1 * d1 - p.slope * q.slope;
    if disc.is_nan() || disc < 0.0 {
        return f64::NAN;
    }
    let d2 = (q.a - p.a).signum() * disc.sqrt();
    q.a - (q.a - p.a) * (q.slope + d2 - d1) / (q.slope - p.slope + 2.0 * d2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `B v` from the compact form.
    fn compact_times(mem: &Memory, v: &[f64]) -> Vec<f64> {
        let dim = 2 * mem.len();
        let mut wtv = vec![0.0; dim];
        let mut mwtv = vec![0.0; dim];
        mem.wt_times(v, &mut wtv);
        mem.m_times(&wtv, &mut mwtv);
        let mut w = vec![0.0; dim];
        (0..v.len())
            .map(|i| {
                mem.w_row(i, &mut w);
                mem.theta * v[i] - dot(&w, &mwtv)
            })
            .collect()
    }

    /// The compact representation equals the BFGS recursion from `θI`
    /// applied to the stored pairs in order, as an explicit matrix.
    #[test]
    fn compact_form_matches_dense_bfgs() {
        let n = 5;
        let mut mem = Memory::new(3);
        // Pairs with sᵀy > 0 from a fixed SPD "Hessian" plus a perturbation.
        let mut pairs = Vec::new();
        for k in 0..5 {
            let s: Vec<f64> = (0..n)
                .map(|i| ((i * 7 + k * 3) % 5) as f64 - 1.7 + 0.1 * k as f64)
                .collect();
            let y: Vec<f64> = (0..n)
                .map(|i| (1.0 + i as f64) * s[i] + 0.3 * s[(i + 1) % n])
                .collect();
            assert!(dot(&s, &y) > 0.0);
            assert!(mem.push(&s, &y));
            pairs.push((s, y));
        }
        assert_eq!(mem.len(), 3);
        let kept = &pairs[2..];
        let theta = mem.theta;
        let mut b = vec![0.0; n * n];
        for i in 0..n {
            b[i * n + i] = theta;
        }
        for (s, y) in kept {
            let bs: Vec<f64> = (0..n).map(|i| dot(&b[i * n..(i + 1) * n], s)).collect();
            let sbs = dot(s, &bs);
            let sy = dot(s, y);
            for i in 0..n {
                for j in 0..n {
                    b[i * n + j] += -bs[i] * bs[j] / sbs + y[i] * y[j] / sy;
                }
            }
        }
        for e in 0..n {
            let mut v = vec![0.0; n];
            v[e] = 1.0;
            let col = compact_times(&mem, &v);
            for i in 0..n {
                // Tolerance: a few hundred ulps of the matrix scale (~10).
                assert!(
                    (col[i] - b[i * n + e]).abs() < 1e-11,
                    "B[{i}][{e}]: compact {} dense {}",
                    col[i],
                    b[i * n + e]
                );
            }
        }
    }

    /// A memory of three pairs in `n = 6` and the dense `B` it represents.
    fn sample_memory() -> (Memory, Vec<f64>) {
        let n = 6;
        let mut mem = Memory::new(3);
        for k in 0..3 {
            let s: Vec<f64> = (0..n)
                .map(|i| ((i * 5 + k * 2) % 7) as f64 / 3.0 - 0.9)
                .collect();
            let y: Vec<f64> = (0..n)
                .map(|i| (0.5 + i as f64) * s[i] - 0.2 * s[(i + 2) % n])
                .collect();
            assert!(mem.push(&s, &y));
        }
        let mut b = vec![0.0; n * n];
        for e in 0..n {
            let mut v = vec![0.0; n];
            v[e] = 1.0;
            for (i, col) in compact_times(&mem, &v).into_iter().enumerate() {
                b[i * n + e] = col;
            }
        }
        (mem, b)
    }

    /// `gᵀz + ½ zᵀBz`.
    fn model(g: &[f64], b: &[f64], z: &[f64]) -> f64 {
        let n = g.len();
        (0..n)
            .map(|i| z[i] * (g[i] + 0.5 * dot(&b[i * n..(i + 1) * n], z)))
            .sum()
    }

    /// The Cauchy point is the first local minimiser of the model along the
    /// projected path, found here by a fine scan of the path.
    #[test]
    fn cauchy_point_is_first_minimiser_along_the_path() {
        let (mem, b) = sample_memory();
        let n = 6;
        let x = [0.1, -0.2, 0.3, 0.0, 0.5, -0.4];
        let g = [1.5, -2.0, 0.7, 3.0, -0.4, 1.1];
        let lower = [-0.5, -1.0, -0.1, -0.3, -2.0, -0.6];
        let upper = [0.5, 0.1, 1.0, 0.3, 0.7, 0.2];
        let bounds = Bounds {
            lower: &lower,
            upper: &upper,
        };
        let mut ws = Workspace::new(n);
        assert!(cauchy_point(&x, &g, &bounds, &mem, &mut ws));
        let at = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|i| bounds.clamp(i, x[i] - t * g[i]) - x[i])
                .collect()
        };
        let q = |t: f64| model(&g, &b, &at(t));
        let h = 1e-5;
        let mut t = 0.0;
        while q(t + h) < q(t) && t < 10.0 {
            t += h;
        }
        let z_scan = at(t);
        for i in 0..n {
            // Tolerance: the scan's step h times |g|.
            assert!(
                (ws.xc[i] - x[i] - z_scan[i]).abs() < 4.0 * h,
                "coordinate {i}: {} vs {}",
                ws.xc[i] - x[i],
                z_scan[i]
            );
        }
        // mc = M Wᵀ(xᶜ − x).
        let z: Vec<f64> = (0..n).map(|i| ws.xc[i] - x[i]).collect();
        let mut c = vec![0.0; 6];
        let mut mc = vec![0.0; 6];
        mem.wt_times(&z, &mut c);
        mem.m_times(&c, &mut mc);
        for (j, (want, got)) in mc.iter().zip(&ws.mc).enumerate() {
            assert!((want - got).abs() < 1e-10, "mc[{j}]");
        }
    }

    /// Without bounds every variable is free and x̄ is the quasi-Newton
    /// point x − B⁻¹g.
    #[test]
    fn unbounded_subspace_step_is_the_quasi_newton_step() {
        let (mem, b) = sample_memory();
        let n = 6;
        let x = [0.1, -0.2, 0.3, 0.0, 0.5, -0.4];
        let g = [1.5, -2.0, 0.7, 3.0, -0.4, 1.1];
        let (lower, upper) = ([f64::NEG_INFINITY; 6], [f64::INFINITY; 6]);
        let bounds = Bounds {
            lower: &lower,
            upper: &upper,
        };
        let mut ws = Workspace::new(n);
        assert!(cauchy_point(&x, &g, &bounds, &mem, &mut ws));
        assert!(subspace_minimum(&x, &g, &bounds, &mem, &mut ws));
        let mut step: Vec<f64> = g.iter().map(|v| -v).collect();
        let mut dense = b.clone();
        assert!(solve(&mut dense, n, &mut step));
        for i in 0..n {
            assert!(
                (ws.xbar[i] - x[i] - step[i]).abs() < 1e-10,
                "coordinate {i}: {} vs {}",
                ws.xbar[i] - x[i],
                step[i]
            );
        }
    }

    #[test]
    fn solve_pivots_and_detects_singularity() {
        // Needs a row swap: the (0, 0) entry is zero.
        let mut a = vec![0.0, 2.0, 3.0, 1.0];
        let mut b = vec![4.0, 5.0];
        assert!(solve(&mut a, 2, &mut b));
        assert_eq!(b, [1.0, 2.0]);
        let mut singular = vec![1.0, 2.0, 2.0, 4.0];
        let mut b = vec![1.0, 1.0];
        assert!(!solve(&mut singular, 2, &mut b));
    }

    #[test]
    fn cubic_minimiser_is_exact_on_a_quadratic() {
        // φ(a) = (a − 1)²: values and slopes at 0 and 2.
        let p = Trial {
            a: 0.0,
            f: 1.0,
            slope: -2.0,
        };
        let q = Trial {
            a: 2.0,
            f: 1.0,
            slope: 2.0,
        };
        assert!((cubic_minimiser(&p, &q) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn breakpoints_pop_smallest_first() {
        let mut heap = BinaryHeap::from(vec![
            Breakpoint { t: 3.0, index: 0 },
            Breakpoint { t: 0.5, index: 1 },
            Breakpoint { t: 2.0, index: 2 },
        ]);
        let order: Vec<usize> = std::iter::from_fn(|| heap.pop().map(|b| b.index)).collect();
        assert_eq!(order, [1, 2, 0]);
    }
}
