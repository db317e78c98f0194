//! Buffers that one minimisation reuses across its iterations.

use super::bounds::Breakpoint;

/// Buffers reused across iterations.
pub(super) struct Workspace {
    pub(super) xc: Vec<f64>,
    pub(super) xbar: Vec<f64>,
    pub(super) d: Vec<f64>,
    /// `Wᵀ(xᶜ − x)` premultiplied by `M`, from the Cauchy search.
    pub(super) mc: Vec<f64>,
    pub(super) breaks: Vec<Breakpoint>,
    pub(super) free: Vec<usize>,
    /// Reduced gradient, then the subspace step, over `free`.
    pub(super) r: Vec<f64>,
    pub(super) x_trial: Vec<f64>,
    pub(super) g_trial: Vec<f64>,
    pub(super) x_lo: Vec<f64>,
    pub(super) g_lo: Vec<f64>,
    pub(super) s: Vec<f64>,
    pub(super) y: Vec<f64>,
}

impl Workspace {
    pub(super) fn new(n: usize) -> Self {
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
