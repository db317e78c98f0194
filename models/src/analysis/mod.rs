//! Sharpness and loss-landscape analysis (the paper's Table I, Fig. 2 and
//! Fig. 5).
//!
//! * [`sharpness()`] / [`network_sharpness`]: Keskar et al.'s
//!   (C_ε, A)-sharpness — the largest relative rise of the loss in a small
//!   box around the weights, in the full space or a random subspace —
//!   searched with [`maximize`], an L-BFGS-B (limited-memory BFGS with
//!   simple bounds; [`minimize`] is the same for minima).
//! * [`interpolate`], [`landscape_1d`], [`landscape_2d`] and
//!   [`sensitivity_curve`] measure a trained network's loss along the line
//!   between two minima, on filter-normalised random slices, and under
//!   weight noise of growing strength ([`slopes`]: the paper's Eq. 9).
//! * [`network_hessian`] / [`hessian_spectrum`]: the PyHessian measures —
//!   the top Hessian eigenvalues by Lanczos ([`top_eigenvalues`]) and the
//!   trace by Hutchinson's estimator ([`hutchinson_trace`]) — from
//!   Hessian-vector products ([`Hvp`]), for a network by central
//!   differences of its gradient ([`FiniteDifferenceHvp`]).
//! * [`write_line_plot`], [`write_scatter_plot`] and [`write_surface_plot`]
//!   draw the pictures (PNG and SVG, with an embedded font) and write their
//!   numbers as CSV beside them.
//! * [`Summary`] and [`t975`]: mean ± sd over seeds and 95% intervals.
//!
//! `smoothout experiment table1` puts them together.

mod hessian;
mod landscape;
mod lbfgsb;

pub use hessian::{
    hessian_spectrum, hutchinson_trace, network_hessian, top_eigenvalues, FiniteDifferenceHvp,
    HessianConfig, HessianSpectrum, Hvp, DEFAULT_HVP_STEP, SMOOTH_HVP_STEP,
};

pub use landscape::{
    filter_normalized_direction, flat_buffers, flat_params, interpolate, landscape_1d,
    landscape_2d, sensitivity_curve, set_flat_buffers, set_flat_params, slopes, EvalSet,
    InterpolationPoint, LandscapePoint, SensitivityPoint, SetMetrics, Snapshot,
};
pub use lbfgsb::{maximize, minimize, LbfgsbConfig, LbfgsbError, LbfgsbResult, Termination};
mod plot;
mod sharpness;
mod stats;
pub use plot::{
    write_line_plot, write_scatter_plot, write_surface_plot, LinePlot, PlotFiles, Series, Surface,
    PLOT_SIZE,
};
pub use sharpness::{
    network_sharpness, sharpness, NetworkLoss, Objective, Sharpness, SharpnessConfig, SharpnessRun,
};
pub use stats::{t975, Summary};
