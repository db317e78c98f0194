//! What the commands share: their data ([`load`]), the CPU backend and its
//! `--threads` check, whether a path exists, a sweep's run resumed or started
//! ([`resume_or_start`]), and how often runs checkpoint.

use std::path::Path;

use smoothout_cpu::Cpu;
use smoothout_models::data::{
    load_cifar10, load_cifar100, load_fashion_mnist, load_mnist, Dataset, DatasetKind, Split,
};
use smoothout_models::train::{LoadOptions, TrainConfig, TrainError, Trainer, CHECKPOINT_FILE};

use crate::args::DatasetArg;

/// Checkpoint every this many steps unless `--checkpoint-every` says.
pub(crate) const DEFAULT_CHECKPOINT_EVERY: u64 = 200;

/// Images held out of the 1 797 built-in digits for testing.
const DIGITS_TEST: usize = 360;

pub(crate) fn load(dataset: DatasetArg, root: &Path) -> Result<Split, TrainError> {
    Ok(match dataset.kind() {
        DatasetKind::Digits => Dataset::digits_embedded().shuffled_split(DIGITS_TEST, 0)?,
        DatasetKind::Mnist => load_mnist(root)?,
        DatasetKind::FashionMnist => load_fashion_mnist(root)?,
        DatasetKind::Cifar10 => load_cifar10(root)?,
        DatasetKind::Cifar100 => load_cifar100(root)?,
        _ => {
            return Err(TrainError::Config {
                setting: "--dataset",
                reason: "this dataset has no loader in the program".into(),
            })
        }
    })
}

pub(crate) fn backend(threads: usize) -> Result<Cpu<f32>, TrainError> {
    Cpu::with_threads(threads).map_err(threads_error)
}

pub(crate) fn threads_error(e: smoothout_cpu::CpuError) -> TrainError {
    TrainError::Config {
        setting: "--threads",
        reason: e.to_string(),
    }
}

/// `--threads` checked before anything runs: the CPU backends check it
/// again, but with `--device cuda` the measurements after training are the
/// first to start one.
pub(crate) fn check_threads(threads: usize) -> Result<(), TrainError> {
    smoothout_cpu::check_threads(threads).map_err(threads_error)
}

/// Whether `path` exists. Only a missing file is `false`: when the
/// operating system cannot tell (no permission to search a directory on
/// the way, a loop of symbolic links, …) that is the error, with its reason,
/// rather than a file that "does not exist" or a run to start afresh.
pub(crate) fn exists(path: &Path) -> Result<bool, TrainError> {
    path.try_exists().map_err(|e| TrainError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("cannot be read: {e}")),
    })
}

/// A sweep's run in `dir` on the CPU backend with `threads` threads:
/// resumed from its checkpoint when that file exists (`accept_unchecked` as
/// `--accept-unchecked-checkpoint` says), else started afresh.
pub(crate) fn resume_or_start(
    threads: usize,
    accept_unchecked: bool,
    cfg: TrainConfig,
    train: &Dataset,
    dir: &Path,
) -> Result<Trainer<Cpu<f32>>, TrainError> {
    let ckpt = dir.join(CHECKPOINT_FILE);
    let b = backend(threads)?;
    if exists(&ckpt)? {
        let options = LoadOptions { accept_unchecked };
        Trainer::resume_with(b, cfg, train, &ckpt, options)
    } else {
        Trainer::new(b, cfg, train)
    }
}
