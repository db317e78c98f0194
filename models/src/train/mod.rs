//! Training: the loop, checkpoints and metrics files.
//!
//! A [`TrainConfig`] says what to train and how (method, noise, network,
//! batch and ghost batch, optimiser, learning-rate regime, seed); a
//! [`Trainer`] runs it on a backend, one optimiser step at a time or all
//! epochs with [`Trainer::run`], which evaluates train and test loss and
//! accuracy after each epoch and, given a [`RunFiles`], writes the run's
//! directory:
//!
//! | file | contents |
//! |---|---|
//! | `checkpoint.safetensors` | weights, BatchNorm statistics, optimiser buffers, step, metrics so far, and a checksum of each tensor and of the header ([`load_checkpoint`] verifies them) |
//! | `metrics.jsonl` | one JSON object per epoch ([`EpochMetrics`]) |
//! | `metrics.csv` | the same as CSV |
//!
//! Every file is written atomically (a temporary file, then a rename), so
//! a run killed at any moment leaves the previous checkpoint whole, and
//! [`Trainer::resume`] continues it to weights bit-identical to those of a
//! run that was never interrupted (`tests/train/resume.rs` kills a real
//! process to check this).
//!
//! [`RunFiles::prepare`] makes a run's directory ready before training
//! (created, proven writable, temporaries of killed writes removed, its
//! contents reported), and [`Trainer::run_until_stopped`] stops between two
//! steps when a flag is set — e.g. by a Ctrl-C handler — with a checkpoint
//! of the step reached.
//!
//! # One step
//!
//! With ghost batches of `g` examples a batch runs in chunks; for chunk `k`
//! of step `t`, SmoothOut adds θ drawn for `(t, k)`, runs forward and
//! backward (gradients of each chunk weighted by its share of the batch),
//! and takes θ out again; the last chunk's de-noise is fused into the SGD
//! update (`smoothout::SmoothOut::denoise_sgd`). Nesterov and Adam
//! de-noise first, then update.
//!
//! ```
//! use smoothout::Reference;
//! use smoothout_models::data::Dataset;
//! use smoothout_models::train::{Method, Network, TrainConfig, Trainer};
//!
//! let data = Dataset::digits_embedded().shuffled_split(300, 0)?;
//! let cfg = TrainConfig::new(Method::SmoothOut, Network::Mlp(vec![16])).with_batch(128);
//! let mut t = Trainer::new(Reference::<f32>::new(), cfg, &data.train)?;
//! let info = t.step(&data.train)?;
//! assert_eq!((info.epoch, info.step_in_epoch), (1, 1));
//! assert_eq!(t.steps_per_epoch(), 12);   // ⌈1497 / 128⌉
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpoint;
mod config;
mod files;
mod memory;
mod row_noise;
mod run_dir;
mod saved_network;
mod trainer;

pub use crate::bytes::Bytes;
pub use crate::error::{Result, TrainError};
pub use crate::eval::evaluate;
pub use checkpoint::{
    load_checkpoint, load_checkpoint_with, save_checkpoint, write_atomic, Checkpoint, LoadOptions,
    TensorData, CHECKPOINT_FORMAT,
};
pub use config::{Method, Network, NoiseKind, OptimizerKind, PerturbSet, TrainConfig};
pub use files::{history_from_str, history_to_string, write_metrics, EpochMetrics};
pub use memory::{
    available_memory, check_memory, Footprint, MemoryEstimate, EVAL_BATCH, FALLBACK_MEMORY_LIMIT,
};
pub use row_noise::RowNoise;
pub use run_dir::RunDirState;
pub use saved_network::network_from_checkpoint;
pub use trainer::{Event, RunEnd, RunFiles, StepInfo, Trainer, CHECKPOINT_FILE};
