//! The box `lower ≤ x ≤ upper` and the projected path through it: the
//! projection, the projected-gradient norm, the longest feasible step, and
//! the path's kinks (breakpoints) in the order the Cauchy search visits them.

use std::cmp::Ordering;

/// The box, borrowed from the caller.
pub(super) struct Bounds<'a> {
    pub(super) lower: &'a [f64],
    pub(super) upper: &'a [f64],
}

impl Bounds<'_> {
    /// `v` projected onto `[lower[i], upper[i]]` (`max`/`min` rather than
    /// `clamp`, which panics on NaN).
    pub(super) fn clamp(&self, i: usize, v: f64) -> f64 {
        v.max(self.lower[i]).min(self.upper[i])
    }
}

/// `max_i |P(x − g)_i − x_i|`.
pub(super) fn projected_gradient_norm(x: &[f64], g: &[f64], bounds: &Bounds<'_>) -> f64 {
    let mut norm = 0.0f64;
    for i in 0..x.len() {
        norm = norm.max((bounds.clamp(i, x[i] - g[i]) - x[i]).abs());
    }
    norm
}

/// The largest `λ` with `x + λd` inside the box (infinite if no bound stops
/// the direction).
pub(super) fn max_feasible_step(x: &[f64], d: &[f64], bounds: &Bounds<'_>) -> f64 {
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

/// A kink of the projected path, ordered so that `BinaryHeap` pops the
/// smallest `t` first.
#[derive(Clone, Copy, Debug)]
pub(super) struct Breakpoint {
    pub(super) t: f64,
    pub(super) index: usize,
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
