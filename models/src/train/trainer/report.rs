//! What a run is given and what it reports: where its files go
//! ([`RunFiles`], [`CHECKPOINT_FILE`]), each step's figures ([`StepInfo`]),
//! the events of [`Trainer::run`](crate::train::Trainer::run) ([`Event`])
//! and how a run ended ([`RunEnd`]).

use std::path::{Path, PathBuf};

use crate::train::files::EpochMetrics;

/// File name of a run's checkpoint inside its directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// What the trainer reports while it runs (see [`Trainer::run`](crate::train::Trainer::run)).
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// An optimiser step finished.
    Step(&'a StepInfo),
    /// The epoch's training steps are done; evaluation starts.
    Evaluating {
        /// 1-based epoch.
        epoch: u64,
    },
    /// An epoch finished and was evaluated.
    Epoch(&'a EpochMetrics),
    /// A checkpoint was written.
    Saved {
        /// The file.
        path: &'a Path,
        /// Optimiser steps it holds.
        step: u64,
    },
}

/// How [`Trainer::run_until_stopped`](crate::train::Trainer::run_until_stopped) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunEnd {
    /// The run is finished, or reached the step it was asked to stop at.
    Done,
    /// The stop flag was set: training stopped after `step` optimiser
    /// steps (and, with files, the checkpoint holds that step).
    Stopped {
        /// Optimiser steps done.
        step: u64,
    },
}

/// Where and how often [`Trainer::run`](crate::train::Trainer::run) writes its files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFiles {
    /// The run's directory: `checkpoint.safetensors`, `metrics.jsonl` and
    /// `metrics.csv` go there.
    pub dir: PathBuf,
    /// Also checkpoint every this many steps within an epoch (a checkpoint
    /// is always written after each epoch).
    pub every: Option<u64>,
}

/// One step's figures, for progress displays.
#[derive(Clone, Debug, PartialEq)]
pub struct StepInfo {
    /// 1-based epoch.
    pub epoch: u64,
    /// Epochs in the run.
    pub epochs: u64,
    /// 1-based step within the epoch.
    pub step_in_epoch: u64,
    /// Steps per epoch.
    pub steps_per_epoch: u64,
    /// Optimiser steps taken so far in the run.
    pub global_step: u64,
    /// Mean training loss of this step's batch: at the perturbed point for
    /// SmoothOut, AdaSmoothOut and RWP, at the unperturbed point (the first
    /// pass) for SAM, ASAM and m-RWP.
    pub loss: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// Training images per second over the epoch so far.
    pub images_per_sec: f64,
}
