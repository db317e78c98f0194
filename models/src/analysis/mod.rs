//! Sharpness and loss-landscape analysis (the paper's Table I, Fig. 2 and
//! Fig. 5).
//!
//! * [`sharpness`] / [`network_sharpness`]: Keskar et al.'s
//!   (C_ε, A)-sharpness — the largest relative rise of the loss in a small
//!   box around the weights, in the full space or a random subspace —
//!   searched with [`maximize`], an L-BFGS-B (limited-memory BFGS with
//!   simple bounds; [`minimize`] is the same for minima).
//! * [`interpolate`], [`landscape_1d`], [`landscape_2d`] and
//!   [`sensitivity_curve`] measure a trained network's loss along the line
//!   between two minima, on filter-normalised random slices, and under
//!   weight noise of growing strength ([`slopes`]: the paper's Eq. 9).
//! * [`write_line_plot`] and [`write_surface_plot`] draw the pictures (PNG
//!   and SVG, with an embedded font) and write their numbers as CSV beside
//!   them.
//!
//! `smoothout experiment table1` puts them together.

mod landscape;
mod lbfgsb;

pub use landscape::{
    filter_normalized_direction, flat_buffers, flat_params, interpolate, landscape_1d,
    landscape_2d, sensitivity_curve, set_flat_buffers, set_flat_params, slopes, EvalSet,
    InterpolationPoint, LandscapePoint, SensitivityPoint, SetMetrics, Snapshot,
};
pub use lbfgsb::{maximize, minimize, LbfgsbConfig, LbfgsbError, LbfgsbResult, Termination};
mod plot;
mod sharpness;
pub use plot::{
    write_line_plot, write_surface_plot, LinePlot, PlotFiles, Series, Surface, PLOT_SIZE,
};
pub use sharpness::{
    network_sharpness, sharpness, NetworkLoss, Objective, Sharpness, SharpnessConfig, SharpnessRun,
};
