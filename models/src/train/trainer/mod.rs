//! The trainer: a [`Trainer`]'s state and how it is built. Its work lies in
//! the files beside this one: `report.rs`, what a run is given and what it
//! reports; `step.rs`, one optimiser step (data order, ghost chunks,
//! SmoothOut draws, the update); `run.rs`, the epochs with evaluation and
//! files; `state.rs`, its state as a checkpoint and back.

use std::sync::Arc;

use smoothout::tensor::TensorBackend;
use smoothout::{ParamSpec, Sgd, SmoothOut};

use super::config::{Method, OptimizerKind, TrainConfig};
use super::files::EpochMetrics;
use super::memory::check_memory;
use super::row_noise::RowNoise;
use crate::bytes::Bytes;
use crate::data::{Dataset, Normalize};
use crate::error::{Result, TrainError};
use crate::layers::{Layer, SoftmaxCrossEntropy};
use crate::networks::Sequential;
use crate::optim::{Adam, AdamConfig, Optimizer, SgdMomentum};

mod report;
mod run;
mod state;
mod step;

pub use report::{Event, RunEnd, RunFiles, StepInfo, CHECKPOINT_FILE};

/// The run's optimiser, each variant named after the type it holds:
/// [`SgdMomentum`] for both [`OptimizerKind::Sgd`] (heavy ball) and
/// [`OptimizerKind::Nesterov`], [`Adam`] for [`OptimizerKind::Adam`].
enum Opt<B: TensorBackend> {
    SgdMomentum(SgdMomentum<B>),
    Adam(Adam<B>),
}

impl<B: TensorBackend> Opt<B> {
    fn get_mut(&mut self) -> &mut dyn Optimizer<B> {
        match self {
            Opt::SgdMomentum(o) => o,
            Opt::Adam(o) => o,
        }
    }
    fn get(&self) -> &dyn Optimizer<B> {
        match self {
            Opt::SgdMomentum(o) => o,
            Opt::Adam(o) => o,
        }
    }
}

/// Running sums over the current epoch (part of a checkpoint).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct EpochSums {
    loss: f64,
    correct: u64,
    seen: u64,
    seconds: f64,
}

/// Trains one network by one [`TrainConfig`] on one dataset.
///
/// Every source of randomness is a pure function of the configuration's
/// seed and the position in training (data order of epoch `e`, the
/// augmentation of step `t`, noise of draw `(t, ghost)`), and the state
/// that changes — weights, BatchNorm statistics, optimiser buffers, the
/// step counter, the metrics so far — is what a checkpoint holds. So a run
/// resumed from any checkpoint ends bit-identical to one that never
/// stopped.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::data::Dataset;
/// use smoothout_models::train::{Method, Network, TrainConfig, Trainer};
///
/// let data = Dataset::digits_embedded().shuffled_split(300, 0)?;
/// let cfg = TrainConfig::new(Method::AdaSmoothOut, Network::Mlp(vec![32]))
///     .with_batch(64)
///     .with_epochs(1);
/// let mut trainer = Trainer::new(Reference::<f32>::new(), cfg, &data.train)?;
/// let history = trainer.run(&data, None, &mut |_| {})?;
/// assert_eq!(history.len(), 1);
/// assert!(history[0].test_acc > 0.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Trainer<B: TensorBackend + 'static> {
    /// Shared with the closure a step runs in ([`BufferOps::run`]).
    backend: Arc<B>,
    config: TrainConfig,
    net: Sequential<B>,
    specs: Vec<ParamSpec>,
    smoothout: Option<SmoothOut<B>>,
    /// RWP's and m-RWP's noise.
    rows: Option<RowNoise<B>>,
    opt: Opt<B>,
    loss: SoftmaxCrossEntropy,
    normalize: Normalize,
    image_shape: [usize; 3],
    classes: usize,
    train_len: usize,
    steps_per_epoch: u64,
    total_epochs: u64,
    step: u64,
    sums: EpochSums,
    history: Vec<EpochMetrics>,
    notes: Vec<(String, String)>,
    order: Option<(u64, Vec<usize>)>,
    /// SAM and ASAM: the perturbed parameters at `w` while the second pass
    /// runs at `w + ε`; m-RWP: the gradient at `w` (allocated at the first
    /// step).
    held: Vec<B::Buffer>,
    /// The two-pass methods: the BatchNorm statistics of the first pass
    /// while the second runs (allocated at the first step).
    held_stats: Vec<B::Buffer>,
    /// Host memory a chunk's pass reuses from step to step: its inputs in
    /// the backend's element type, then its logits.
    host: Vec<B::Elem>,
    /// The memory of the update's and the noise's parameter lists.
    lists: step::ListMemory,
    /// The memory of [`Trainer::step`]'s batch.
    batch: step::BatchMemory,
}

impl<B: TensorBackend + 'static> core::fmt::Debug for Trainer<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("step", &self.step)
            .field("steps_per_epoch", &self.steps_per_epoch)
            .finish_non_exhaustive()
    }
}

impl<B: TensorBackend + 'static> Trainer<B> {
    /// A fresh run of `config` on `backend`, for training data `train`
    /// (which fixes the input shape, the classes, the steps per epoch and
    /// the normalisation, fitted per channel on it).
    ///
    /// # Errors
    /// [`TrainError::Config`] for an invalid configuration or a network
    /// that does not fit the data (also [`TrainConfig::validate_data`]);
    /// [`TrainError::Data`] for an empty set; [`TrainError::Memory`] when
    /// the run needs more memory than the machine has available
    /// ([`TrainConfig::memory`], checked before anything is allocated).
    pub fn new(backend: B, config: TrainConfig, train: &Dataset) -> Result<Self> {
        config.validate()?;
        config.validate_data(train.len())?;
        if train.is_empty() {
            return Err(TrainError::config("--dataset", "the training set is empty"));
        }
        let image_shape = train.image_shape();
        let classes = train.classes();
        check_training_memory::<B>(&config, image_shape, classes, train.len())?;
        let net = config
            .network
            .build(&backend, config.seed, image_shape, classes)?;
        let specs: Vec<ParamSpec> = net
            .specs()
            .into_iter()
            .map(|s| config.perturb.apply(s))
            .collect();
        let steps_per_epoch = train.len().div_ceil(config.batch) as u64;
        let total_epochs = config.total_epochs()?;
        let total_steps = total_epochs.saturating_mul(steps_per_epoch);
        let smoothout = match config.smoothout(total_steps)? {
            Some(c) => Some(SmoothOut::new(&backend, c, specs.clone())?),
            None => None,
        };
        let rows = match config.method {
            Method::Rwp | Method::MixedRwp => {
                Some(RowNoise::new(config.a, config.seed, specs.clone())?)
            }
            _ => None,
        };
        let sizes: Vec<usize> = specs.iter().map(ParamSpec::len).collect();
        let lr = config.regime.lr(0, 0)?;
        let opt = match config.optimizer {
            OptimizerKind::Sgd | OptimizerKind::Nesterov => Opt::SgdMomentum(SgdMomentum::new(
                &backend,
                &sizes,
                Sgd::new(lr, config.momentum, config.weight_decay)?,
                config.optimizer == OptimizerKind::Nesterov,
            )?),
            OptimizerKind::Adam => Opt::Adam(Adam::new(
                &backend,
                &sizes,
                AdamConfig::new(lr)?.with_weight_decay(config.weight_decay)?,
            )?),
        };
        Ok(Trainer {
            normalize: Normalize::fit(train)?,
            loss: SoftmaxCrossEntropy::new(classes),
            image_shape,
            classes,
            train_len: train.len(),
            steps_per_epoch,
            total_epochs,
            step: 0,
            sums: EpochSums::default(),
            history: Vec::new(),
            notes: Vec::new(),
            order: None,
            held: Vec::new(),
            held_stats: Vec::new(),
            host: Vec::new(),
            lists: step::ListMemory::default(),
            batch: step::BatchMemory::default(),
            net,
            specs,
            smoothout,
            rows,
            opt,
            config,
            backend: Arc::new(backend),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The network.
    #[must_use]
    pub fn network(&self) -> &Sequential<B> {
        &self.net
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Optimiser steps taken.
    #[must_use]
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// Optimiser steps per epoch (the last batch of an epoch may be short).
    #[must_use]
    pub fn steps_per_epoch(&self) -> u64 {
        self.steps_per_epoch
    }

    /// Epochs in the run (after the regime's multiplier).
    #[must_use]
    pub fn total_epochs(&self) -> u64 {
        self.total_epochs
    }

    /// The metrics of the epochs finished so far.
    #[must_use]
    pub fn history(&self) -> &[EpochMetrics] {
        &self.history
    }

    /// Optimiser steps in the whole run.
    fn total_steps(&self) -> u64 {
        self.total_epochs.saturating_mul(self.steps_per_epoch)
    }

    /// Whether every epoch has run.
    #[must_use]
    pub fn finished(&self) -> bool {
        self.step >= self.total_steps()
    }
}

/// Refuses a run of `config` on `train_len` examples of `image_shape` in
/// `classes` classes that needs more memory than is available.
fn check_training_memory<B: TensorBackend>(
    config: &TrainConfig,
    image_shape: [usize; 3],
    classes: usize,
    train_len: usize,
) -> Result<()> {
    let estimate = config.memory(
        image_shape,
        classes,
        train_len,
        core::mem::size_of::<B::Elem>(),
    );
    let advice = |available: u64| {
        let Some(e) = estimate.as_ref() else {
            return "use a smaller network (fewer or narrower layers in --net, e.g. mlp-64-64)"
                .to_string();
        };
        match e.without_activations() {
            Some(fixed) if fixed < available => {
                let per_example = (e.footprint.cached_per_example)
                    .saturating_add(e.footprint.working_per_example)
                    .saturating_mul(core::mem::size_of::<B::Elem>() as u64)
                    .max(1);
                let fit = (available - fixed) / per_example;
                format!(
                    "the activations of one ghost chunk need {}: use a --batch or --ghost of at \
                     most {fit} examples, or a smaller network (--net)",
                    Bytes(e.activations)
                )
            }
            _ => "the network alone does not fit, whatever the batch: use a smaller network \
                  (fewer or narrower layers in --net, e.g. mlp-64-64)"
                .to_string(),
        }
    };
    check_memory(
        || {
            format!(
                "training {} on {image_shape:?} images in {classes} classes at batch {}{}",
                config.network.name(),
                config.batch,
                config
                    .ghost
                    .map_or_else(String::new, |g| format!(" (ghost {g})"))
            )
        },
        estimate.as_ref(),
        advice,
    )
}
