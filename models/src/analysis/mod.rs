//! Sharpness and loss-landscape analysis.
//!
//! [`minimize`] and [`maximize`] are L-BFGS-B (limited-memory BFGS with
//! simple bounds), the optimiser behind Keskar et al.'s (C_ε, A)-sharpness:
//! the largest loss in a small box around the weights.

mod lbfgsb;

pub use lbfgsb::{maximize, minimize, LbfgsbConfig, LbfgsbError, LbfgsbResult, Termination};
mod plot;
pub use plot::{
    write_line_plot, write_surface_plot, LinePlot, PlotFiles, Series, Surface, PLOT_SIZE,
};
