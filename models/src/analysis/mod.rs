//! Sharpness and loss-landscape analysis.
//!
//! [`minimize`] and [`maximize`] are L-BFGS-B (limited-memory BFGS with
//! simple bounds), the optimiser behind Keskar et al.'s (C_ε, A)-sharpness:
//! the largest loss in a small box around the weights.
//! [`interpolate`], [`landscape_1d`], [`landscape_2d`] and
//! [`sensitivity_curve`] measure a trained network's loss along the line
//! between two minima, on filter-normalised random slices, and under weight
//! noise of growing strength (the paper's Fig. 2 and Eq. 9).

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
