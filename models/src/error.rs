//! Typed errors of training, checkpoints, evaluation and analysis: what
//! went wrong, and what to do about it (`smoothout_models::train` exports
//! them; evaluation and the analysis use them without depending on the
//! trainer).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::bytes::Bytes;
use crate::data::DataError;

/// Every way configuring, running, checkpointing or resuming a training run
/// can fail. The `Display` text names the file or setting and the fix.
#[derive(Debug)]
#[non_exhaustive]
pub enum TrainError {
    /// A backend or configuration error from the core crate.
    Core(smoothout::Error),
    /// Loading or preparing the data failed.
    Data(DataError),
    /// A setting of the run is invalid or the settings contradict each
    /// other.
    Config {
        /// The setting (as the command line spells it, e.g. `--batch`).
        setting: &'static str,
        /// What is wrong and what to use instead.
        reason: String,
    },
    /// A run, or a checkpoint's network, needs more memory than the machine
    /// has available (see [`crate::train::check_memory`]); nothing was
    /// allocated.
    Memory {
        /// What needs it (the network, the input shape, the batch, and the
        /// file the sizes come from).
        what: String,
        /// The estimate in bytes; `None` when it does not fit in 64 bits.
        needed: Option<u64>,
        /// The estimate by part, when there is one.
        parts: Option<String>,
        /// The bytes available.
        available: u64,
        /// Where `available` comes from.
        source: &'static str,
        /// What to reduce.
        advice: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A checkpoint file is not one this program wrote, is damaged, or does
    /// not fit the run it is loaded into.
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint file carries no checksums (written before smoothout
    /// stored them, or by another program), so damage to it cannot be
    /// detected; it is refused unless the loader is told to accept such
    /// files (`LoadOptions::accept_unchecked`,
    /// `--accept-unchecked-checkpoint`).
    UncheckedCheckpoint {
        /// The file.
        path: PathBuf,
    },
    /// The loss became NaN or infinite (diverged): lower the learning rate
    /// or the noise.
    NonFinite {
        /// The optimiser step at which it happened.
        step: u64,
    },
    /// A run's directory cannot be created or written to (found before
    /// training starts, by creating it and a probe file in it).
    Unwritable {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
}

/// `Result` with [`TrainError`].
pub type Result<T, E = TrainError> = core::result::Result<T, E>;

impl TrainError {
    /// A [`TrainError::Config`].
    pub(crate) fn config(setting: &'static str, reason: impl Into<String>) -> Self {
        TrainError::Config {
            setting,
            reason: reason.into(),
        }
    }

    /// A [`TrainError::Checkpoint`].
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TrainError::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The same error with `hint` — what to do, in the words of the
    /// command that met it — appended to a [`TrainError::Checkpoint`]'s
    /// reason in parentheses; any other error unchanged. (What fixes a
    /// bad checkpoint depends on the command: resuming a run can start
    /// afresh, evaluating one cannot.)
    ///
    /// ```
    /// use smoothout_models::train::TrainError;
    /// let e = TrainError::Checkpoint { path: "run/checkpoint.safetensors".into(), reason: "metadata `classes` is 0".into() };
    /// assert_eq!(
    ///     e.with_checkpoint_hint("train the run again").to_string(),
    ///     "checkpoint run/checkpoint.safetensors: metadata `classes` is 0 (train the run again)"
    /// );
    /// ```
    #[must_use]
    pub fn with_checkpoint_hint(self, hint: &str) -> Self {
        match self {
            TrainError::Checkpoint { path, reason } => TrainError::Checkpoint {
                path,
                reason: format!("{reason} ({hint})"),
            },
            e => e,
        }
    }

    /// A [`TrainError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Core(e) => write!(f, "{e}"),
            TrainError::Data(e) => write!(f, "{e}"),
            TrainError::Config { setting, reason } => write!(f, "invalid {setting}: {reason}"),
            TrainError::Memory {
                what,
                needed,
                parts,
                available,
                source,
                advice,
            } => {
                let available = Bytes(*available);
                match needed {
                    Some(n) => write!(f, "{what} needs about {}", Bytes(*n))?,
                    None => write!(f, "{what} needs more than 2^64 bytes")?,
                }
                if let Some(p) = parts {
                    write!(f, " ({p})")?;
                }
                write!(f, ", more than the {available} {source}: {advice}")
            }
            TrainError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            TrainError::Checkpoint { path, reason } => {
                write!(f, "checkpoint {}: {reason}", path.display())
            }
            TrainError::UncheckedCheckpoint { path } => write!(
                f,
                "checkpoint {} carries no checksums (it was written by an older smoothout, or by another program), \
                 so damage to it cannot be detected: pass --accept-unchecked-checkpoint to load it anyway",
                path.display()
            ),
            TrainError::NonFinite { step } => write!(
                f,
                "the training loss is not finite at step {step}: the run diverged; lower --lr or the noise strength --a"
            ),
            TrainError::Unwritable { path, source } => write!(
                f,
                "cannot create or write in the run directory {}: {source}; choose an --out directory this user can write to",
                path.display()
            ),
        }
    }
}

impl std::error::Error for TrainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrainError::Core(e) => Some(e),
            TrainError::Data(e) => Some(e),
            TrainError::Io { source, .. } | TrainError::Unwritable { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<smoothout::Error> for TrainError {
    fn from(e: smoothout::Error) -> Self {
        TrainError::Core(e)
    }
}

impl From<DataError> for TrainError {
    fn from(e: DataError) -> Self {
        TrainError::Data(e)
    }
}
