//! The training loop: data order, ghost chunks, SmoothOut draws, updates,
//! evaluation, checkpoints.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use smoothout::{Draw, ParamSpec, Real, Sgd, SmoothOut, TensorBackend};

use super::checkpoint::{
    load_checkpoint_with, save_checkpoint, Checkpoint, LoadOptions, TensorData,
};
use super::config::{Method, OptimizerKind, TrainConfig};
use super::files::{history_from_str, history_to_string, write_metrics, EpochMetrics};
use super::memory::check_memory;
use super::row_noise::RowNoise;
use crate::bytes::Bytes;
use crate::data::{Dataset, Normalize, Split};
use crate::error::{Result, TrainError};
use crate::eval::{count_correct, evaluate, upload_f32};
use crate::layers::{Layer, SoftmaxCrossEntropy};
use crate::networks::Sequential;
use crate::optim::{clip_grad_norm, Adam, AdamConfig, Ascent, OptimState, Optimizer, SgdMomentum};
use crate::rng::{derive_seed, permutation, seeded_rng, STREAM_AUGMENT, STREAM_ORDER};

/// Tag of the checkpoint format this module writes.
pub const CHECKPOINT_FORMAT: &str = "smoothout-checkpoint-1";
/// File name of a run's checkpoint inside its directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// What to do when a checkpoint belongs to another run.
const RESUME_HINT: &str = "start afresh without --resume, or point --out at the run that wrote it";

enum Opt<B: TensorBackend> {
    Sgd(SgdMomentum<B>),
    Adam(Adam<B>),
}

impl<B: TensorBackend> Opt<B> {
    fn get_mut(&mut self) -> &mut dyn Optimizer<B> {
        match self {
            Opt::Sgd(o) => o,
            Opt::Adam(o) => o,
        }
    }
    fn get(&self) -> &dyn Optimizer<B> {
        match self {
            Opt::Sgd(o) => o,
            Opt::Adam(o) => o,
        }
    }
}

/// What the trainer reports while it runs (see [`Trainer::run`]).
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

/// How [`Trainer::run_until_stopped`] ended.
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

/// Where and how often [`Trainer::run`] writes its files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFiles {
    /// The run's directory: `checkpoint.safetensors`, `metrics.jsonl` and
    /// `metrics.csv` go there.
    pub dir: PathBuf,
    /// Also checkpoint every this many steps within an epoch (a checkpoint
    /// is always written after each epoch).
    pub every: Option<u64>,
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
    backend: B,
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
            OptimizerKind::Sgd | OptimizerKind::Nesterov => Opt::Sgd(SgdMomentum::new(
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
            net,
            specs,
            smoothout,
            rows,
            opt,
            config,
            backend,
        })
    }

    /// [`Trainer::new`], then the state of the checkpoint at `path`, whose
    /// checksums must be present and intact.
    ///
    /// # Errors
    /// As [`Trainer::resume_with`].
    pub fn resume(backend: B, config: TrainConfig, train: &Dataset, path: &Path) -> Result<Self> {
        Self::resume_with(backend, config, train, path, LoadOptions::default())
    }

    /// [`Trainer::new`], then the state of the checkpoint at `path`, read
    /// by [`load_checkpoint_with`](super::load_checkpoint_with) with
    /// `options` (whether a file without checksums is accepted).
    ///
    /// # Errors
    /// As [`Trainer::new`] and [`Trainer::restore`]; as
    /// [`load_checkpoint_with`](super::load_checkpoint_with) when the file
    /// cannot be read, is damaged or carries no checksums.
    pub fn resume_with(
        backend: B,
        config: TrainConfig,
        train: &Dataset,
        path: &Path,
        options: LoadOptions,
    ) -> Result<Self> {
        let mut t = Trainer::new(backend, config, train)?;
        let ckpt = load_checkpoint_with(path, options)?;
        t.restore(&ckpt, path)?;
        Ok(t)
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

    /// The example indices of step `step_in_epoch` of `epoch` (0-based).
    fn batch_indices(&mut self, epoch: u64, step_in_epoch: u64) -> Vec<usize> {
        let seed = derive_seed(self.config.seed, STREAM_ORDER, epoch);
        let n = self.train_len;
        if self.order.as_ref().map(|(e, _)| *e) != Some(epoch) {
            self.order = Some((epoch, permutation(n, seed)));
        }
        let Some((_, order)) = &self.order else {
            return Vec::new();
        };
        let lo = (step_in_epoch as usize)
            .saturating_mul(self.config.batch)
            .min(n);
        let hi = lo.saturating_add(self.config.batch).min(n);
        order[lo..hi].to_vec()
    }

    /// Normalised and augmented training inputs of `indices` for `step`.
    fn inputs(&self, data: &Dataset, indices: &[usize], step: u64) -> Result<Vec<f32>> {
        let mut x = vec![0.0f32; indices.len() * data.image_len()];
        data.batch_f32(indices, &mut x)?;
        let mut rng = seeded_rng(derive_seed(self.config.seed, STREAM_AUGMENT, step));
        self.config
            .augment
            .apply(&mut x, self.image_shape, &mut rng)?;
        self.normalize.apply(&mut x, self.image_shape)?;
        Ok(x)
    }

    /// Runs a SmoothOut operation on the network's parameters (nothing for
    /// the baseline).
    fn with_smoothout(
        &mut self,
        op: impl FnOnce(&mut SmoothOut<B>, &B, &mut [&mut B::Buffer]) -> smoothout::Result<()>,
    ) -> Result<()> {
        let Some(so) = self.smoothout.as_mut() else {
            return Ok(());
        };
        Ok(op(so, &self.backend, &mut self.net.params_mut())?)
    }

    /// Adds θ of `draw` to the network's parameters (the methods that
    /// draw noise).
    fn perturb(&mut self, draw: Draw) -> Result<()> {
        if let Some(r) = self.rows.as_mut() {
            return Ok(r.perturb(&self.backend, &mut self.net.params_mut(), draw)?);
        }
        self.with_smoothout(|so, b, p| so.perturb(b, p, draw))
    }

    /// Takes θ of `draw` out again (the methods that draw noise).
    fn denoise(&mut self, draw: Draw) -> Result<()> {
        if let Some(r) = self.rows.as_mut() {
            return Ok(r.denoise(&self.backend, &mut self.net.params_mut(), draw)?);
        }
        self.with_smoothout(|so, b, p| so.denoise(b, p, draw))
    }

    /// Forward and backward of one ghost chunk; gradients are added in,
    /// scaled by `weight` (the chunk's share of the batch). Returns the
    /// chunk's mean loss and correct count.
    fn chunk_pass(&mut self, x: &[f32], labels: &[u32], weight: f64) -> Result<(f64, u64)> {
        let b = &self.backend;
        let xs = upload_f32(b, x)?;
        let mut shape = vec![labels.len()];
        shape.extend_from_slice(&self.image_shape);
        let (logits, lshape) = self.net.forward(b, &xs, &shape, true)?;
        let (loss, mut dz) = self.loss.forward(b, &logits, &lshape, labels)?;
        if !loss.is_finite() {
            return Err(TrainError::NonFinite { step: self.step });
        }
        let correct = count_correct(&b.to_vec(&logits)?, self.classes, labels);
        if weight != 1.0 {
            b.scale(B::Elem::from_f64(weight), &mut dz)?;
        }
        self.net.backward_params(b, &dz)?;
        Ok((loss, correct))
    }

    /// One optimiser step on a batch the caller prepared: `x` holds
    /// `labels.len()` images of the training set's shape, normalised and
    /// augmented as wanted. Ghost chunks, each perturbed with its own draw
    /// and de-noised after its backward (the last one fused into the SGD
    /// update), clipping, the update; the step counter advances (the
    /// learning rate follows it). SAM, ASAM and m-RWP run the chunks twice,
    /// as [`Method`] describes, with the BatchNorm statistics of the first
    /// pass. Returns the batch's mean loss and how many examples the
    /// network got right (at the point [`StepInfo::loss`] says). [`Trainer::step`]
    /// does the same on the next batch of the run's data order.
    ///
    /// # Errors
    /// [`TrainError::Config`] for an empty batch, `x` of the wrong length,
    /// or a ghost chunk of one example for a network with BatchNorm over
    /// features; [`TrainError::NonFinite`] when the loss or SAM's
    /// gradient norm diverges (the parameters are then de-noised or put
    /// back at `w`, and not updated); backend errors.
    pub fn step_batch(&mut self, x: &[f32], labels: &[u32]) -> Result<(f64, u64)> {
        let image_len: usize = self.image_shape.iter().product();
        if labels.is_empty() || x.len() != labels.len() * image_len {
            return Err(TrainError::config(
                "batch",
                format!(
                    "{} inputs for {} labels of {image_len} values each",
                    x.len(),
                    labels.len()
                ),
            ));
        }
        let n = labels.len();
        if self.config.one_example_chunk(n) {
            return Err(TrainError::config(
                "batch",
                format!(
                    "a batch of {n} in chunks of {} has a chunk of 1 example: {}",
                    self.config.chunk(),
                    self.config.one_example_why()
                ),
            ));
        }
        let chunks = n.div_ceil(self.config.chunk());
        self.net.zero_grad(&self.backend)?;
        let (loss_sum, correct) = match self.config.method {
            Method::Sam | Method::Asam => self.ascent_passes(x, labels)?,
            Method::MixedRwp => self.mixed_passes(x, labels)?,
            _ => self.passes(x, labels, 1.0, true)?,
        };
        let last = Draw::new(self.step, chunks as u64 - 1);
        let epoch = self.step / self.steps_per_epoch;
        let lr = self.config.regime.lr(epoch, self.step)?;
        self.update(last, lr)?;
        self.step += 1;
        Ok((loss_sum / n as f64, correct))
    }

    /// Forward and backward of every ghost chunk of the batch (`x`,
    /// `labels` checked by [`Trainer::step_batch`]), gradients added in,
    /// each chunk's scaled by `weight` times its share of the batch. With
    /// `noisy`, each chunk is perturbed with its own draw and de-noised
    /// after its backward, except the last, which [`Trainer::update`]
    /// de-noises (nothing happens for methods without noise). Returns the
    /// summed loss over the examples and the correct count.
    fn passes(
        &mut self,
        x: &[f32],
        labels: &[u32],
        weight: f64,
        noisy: bool,
    ) -> Result<(f64, u64)> {
        let image_len: usize = self.image_shape.iter().product();
        let n = labels.len();
        let chunk = self.config.chunk();
        let chunks = n.div_ceil(chunk);
        let (mut loss_sum, mut correct) = (0.0, 0);
        for g in 0..chunks {
            let (lo, hi) = (g * chunk, ((g + 1) * chunk).min(n));
            let draw = Draw::new(self.step, g as u64);
            self.net
                .set_dropout_step(self.step.wrapping_mul(chunks as u64) + g as u64);
            if noisy {
                self.perturb(draw)?;
            }
            let share = weight * ((hi - lo) as f64 / n as f64);
            let pass = self.chunk_pass(&x[lo * image_len..hi * image_len], &labels[lo..hi], share);
            let (loss, c) = match pass {
                Ok(v) => v,
                Err(e) => {
                    if noisy {
                        self.denoise(draw)?;
                    }
                    return Err(e);
                }
            };
            loss_sum += loss * (hi - lo) as f64;
            correct += c;
            if noisy && g + 1 < chunks {
                self.denoise(draw)?;
            }
        }
        Ok((loss_sum, correct))
    }

    /// Runs `pass`, the second pass of a two-pass method, and then puts
    /// back the BatchNorm statistics as the first pass left them, whatever
    /// `pass` returned: the running statistics come from the first pass
    /// only (a second pass at `w + ε` would count each batch twice, and at a
    /// point the network never takes).
    fn second_pass<T>(&mut self, pass: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let stats: Vec<&B::Buffer> = self.net.buffers().into_iter().map(|(_, s)| s).collect();
        hold(&self.backend, &mut self.held_stats, &stats)?;
        let result = pass(self);
        let b = &self.backend;
        for ((_, s), h) in self.net.buffers_mut().into_iter().zip(&self.held_stats) {
            b.copy(h, s)?;
        }
        result
    }

    /// m-RWP's passes: the gradient at `w` (BatchNorm statistics
    /// updated), held, then the gradient at `w + θ` (θ of the last chunk
    /// left for [`Trainer::update`] to remove), and the mix `β·g(w) +
    /// (1 − β)·g(w + θ)` in the network's gradient buffers. Each pass sums
    /// its chunks as a one-pass step does, so at γ = 0 and β = ½ the mix is
    /// the baseline's gradient bit for bit. Returns the first pass's summed
    /// loss and correct count.
    fn mixed_passes(&mut self, x: &[f32], labels: &[u32]) -> Result<(f64, u64)> {
        let clean = self.passes(x, labels, 1.0, false)?;
        hold(&self.backend, &mut self.held, &self.net.grads())?;
        self.net.zero_grad(&self.backend)?;
        self.second_pass(|t| t.passes(x, labels, 1.0, true))?;
        let b = &self.backend;
        let beta = self.config.beta;
        for (g, h) in self.net.grads_mut().into_iter().zip(&self.held) {
            b.scale(B::Elem::from_f64(1.0 - beta), g)?;
            b.axpy(B::Elem::from_f64(beta), h, g)?;
        }
        Ok(clean)
    }

    /// SAM's and ASAM's passes: the gradient at `w` (BatchNorm statistics
    /// updated), ε from it on the perturbed parameters, the gradient at
    /// `w + ε` in the network's gradient buffers, and the parameters back
    /// at `w` exactly (restored from a copy, not by subtracting ε). Returns
    /// the first pass's summed loss and correct count.
    fn ascent_passes(&mut self, x: &[f32], labels: &[u32]) -> Result<(f64, u64)> {
        let clean = self.passes(x, labels, 1.0, false)?;
        let ascent = match self.config.method {
            Method::Asam => Ascent::Asam {
                rho: self.config.a,
                eta: self.config.eta,
            },
            _ => Ascent::Sam { rho: self.config.a },
        };
        let b = &self.backend;
        let (params, grads) = self.net.params_and_grads_mut();
        let (mut ps, mut gs) = (Vec::new(), Vec::new());
        for ((p, g), spec) in params.into_iter().zip(grads).zip(&self.specs) {
            if spec.perturbed {
                ps.push(p);
                gs.push(&*g);
            }
        }
        hold(
            b,
            &mut self.held,
            &ps.iter().map(|p| &**p).collect::<Vec<_>>(),
        )?;
        let norm = ascent.perturb(b, &mut ps, &gs)?;
        if !norm.is_finite() {
            return Err(TrainError::NonFinite { step: self.step });
        }
        self.net.zero_grad(&self.backend)?;
        let second = self.second_pass(|t| t.passes(x, labels, 1.0, false));
        let b = &self.backend;
        let params = self.net.params_mut();
        let perturbed = params
            .into_iter()
            .zip(&self.specs)
            .filter_map(|(p, spec)| spec.perturbed.then_some(p));
        for (p, h) in perturbed.zip(&self.held) {
            b.copy(h, p)?;
        }
        second?;
        Ok(clean)
    }

    /// Clipping, de-noising of `last` and the update at rate `lr`, in
    /// place on the network's own buffers.
    fn update(&mut self, last: Draw, lr: f64) -> Result<()> {
        let b = &self.backend;
        let (mut params, mut grads) = self.net.params_and_grads_mut();
        if let Some(max) = self.config.clip {
            clip_grad_norm(b, &mut grads, max)?;
        }
        self.opt.get_mut().set_lr(lr)?;
        let sgd_step = |sgd: &SgdMomentum<B>| Sgd {
            lr,
            ..*sgd.config()
        };
        match (&mut self.smoothout, &mut self.rows, &mut self.opt) {
            (Some(so), _, Opt::Sgd(sgd)) if !sgd.nesterov() => {
                let cfg = sgd_step(sgd);
                so.denoise_sgd(b, &mut params, &grads, sgd.velocity_mut(), &cfg, last)?;
                sgd.count_step();
            }
            (None, Some(r), Opt::Sgd(sgd)) if !sgd.nesterov() => {
                let cfg = sgd_step(sgd);
                r.denoise_sgd(b, &mut params, &grads, sgd.velocity_mut(), &cfg, last)?;
                sgd.count_step();
            }
            (so, rows, opt) => {
                if let Some(so) = so {
                    so.denoise(b, &mut params, last)?;
                }
                if let Some(r) = rows {
                    r.denoise(b, &mut params, last)?;
                }
                let grads: Vec<&B::Buffer> = grads.into_iter().map(|g| &*g).collect();
                opt.get_mut().step(b, &mut params, &grads)?;
            }
        }
        Ok(())
    }

    /// Runs the next step of the run on `train` (the set given to
    /// [`Trainer::new`]). Returns the step's figures.
    ///
    /// # Errors
    /// [`TrainError::Config`] when the run is finished; backend and data
    /// errors; [`TrainError::NonFinite`] when the loss diverges (the
    /// parameters are then de-noised and not updated).
    pub fn step(&mut self, train: &Dataset) -> Result<StepInfo> {
        if self.finished() {
            return Err(TrainError::config(
                "--epochs",
                "the run has finished every epoch; raise --epochs to continue it",
            ));
        }
        if train.len() != self.train_len {
            return Err(TrainError::config(
                "--dataset",
                "the training set differs from the one the trainer was built for",
            ));
        }
        let start = Instant::now();
        let epoch = self.step / self.steps_per_epoch;
        let in_epoch = self.step % self.steps_per_epoch;
        let indices = self.batch_indices(epoch, in_epoch);
        let x = self.inputs(train, &indices, self.step)?;
        let mut labels = vec![0usize; indices.len()];
        train.batch_labels(&indices, &mut labels)?;
        let labels: Vec<u32> = labels.into_iter().map(|l| l as u32).collect();
        let lr = self.config.regime.lr(epoch, self.step)?;
        let (loss, correct) = self.step_batch(&x, &labels)?;
        self.sums.loss += loss * indices.len() as f64;
        self.sums.correct += correct;
        self.sums.seen += indices.len() as u64;
        self.sums.seconds += start.elapsed().as_secs_f64();
        Ok(StepInfo {
            epoch: epoch + 1,
            epochs: self.total_epochs,
            step_in_epoch: in_epoch + 1,
            steps_per_epoch: self.steps_per_epoch,
            global_step: self.step,
            loss,
            lr,
            images_per_sec: self.sums.seen as f64 / self.sums.seconds.max(1e-9),
        })
    }

    /// Mean loss and accuracy of the network in eval mode over `data`.
    ///
    /// # Errors
    /// [`TrainError::Config`] when `data`'s images or classes differ from
    /// the training set's; backend errors.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<(f64, f64)> {
        if data.image_shape() != self.image_shape || data.classes() != self.classes {
            return Err(TrainError::config(
                "--dataset",
                "the evaluation set's image shape or classes differ from the training set's",
            ));
        }
        evaluate(
            &self.backend,
            &mut self.net,
            &self.normalize,
            data,
            self.config.eval_batch,
        )
    }

    /// Trains until every epoch has run (continuing from the current step),
    /// evaluating after each epoch, reporting through `on_event`, and —
    /// with `files` — checkpointing after each epoch (and every
    /// `files.every` steps) and rewriting the metrics files. Returns the
    /// history of every epoch.
    ///
    /// # Errors
    /// As [`Trainer::step`] and [`Trainer::evaluate`]; [`TrainError::Io`]
    /// when a file cannot be written (the previous checkpoint is kept).
    pub fn run(
        &mut self,
        data: &Split,
        files: Option<&RunFiles>,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Vec<EpochMetrics>> {
        self.run_until(self.total_steps(), data, files, on_event)
    }

    /// [`Trainer::run`], stopping once `step` optimiser steps are done (or
    /// the run is finished, whichever comes first).
    ///
    /// # Errors
    /// As [`Trainer::run`].
    pub fn run_until(
        &mut self,
        step: u64,
        data: &Split,
        files: Option<&RunFiles>,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Vec<EpochMetrics>> {
        self.run_until_stopped(step, data, files, on_event, &AtomicBool::new(false))?;
        Ok(self.history.clone())
    }

    /// [`Trainer::run_until`] that also stops, between two steps, once
    /// `stop` is set — by a signal handler, another thread, or `on_event`'s
    /// owner. The step under way when `stop` is set finishes (with its
    /// epoch's evaluation if it ends one); then, with `files`, a checkpoint
    /// of the step reached is written (unless one was just written), so
    /// that [`Trainer::resume`] continues bit-identically. `stop` is only
    /// read, never reset.
    ///
    /// A `stop` already set when this is called takes no step and writes
    /// nothing.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use smoothout::Reference;
    /// use smoothout_models::data::Dataset;
    /// use smoothout_models::train::{Event, Method, Network, RunEnd, TrainConfig, Trainer};
    ///
    /// let data = Dataset::digits_embedded().shuffled_split(300, 0)?;
    /// let cfg = TrainConfig::new(Method::Baseline, Network::Mlp(vec![16])).with_batch(128);
    /// let mut t = Trainer::new(Reference::<f32>::new(), cfg, &data.train)?;
    /// let stop = AtomicBool::new(false);
    /// let end = t.run_until_stopped(u64::MAX, &data, None, &mut |e| {
    ///     if let Event::Step(s) = e {
    ///         if s.global_step == 5 {
    ///             stop.store(true, Ordering::Relaxed); // e.g. from a Ctrl-C handler
    ///         }
    ///     }
    /// }, &stop)?;
    /// assert_eq!(end, RunEnd::Stopped { step: 5 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Trainer::run`].
    pub fn run_until_stopped(
        &mut self,
        step: u64,
        data: &Split,
        files: Option<&RunFiles>,
        on_event: &mut dyn FnMut(Event<'_>),
        stop: &AtomicBool,
    ) -> Result<RunEnd> {
        if files.and_then(|f| f.every) == Some(0) {
            return Err(TrainError::config(
                "--checkpoint-every",
                "must be at least 1",
            ));
        }
        // The step of the last checkpoint this call wrote, if any.
        let mut saved = None;
        let start = self.step;
        while !self.finished() && self.step < step {
            if stop.load(Ordering::Relaxed) {
                if let Some(f) = files.filter(|_| saved != Some(self.step) && self.step > start) {
                    let path = f.dir.join(CHECKPOINT_FILE);
                    self.save(&path)?;
                    on_event(Event::Saved {
                        path: &path,
                        step: self.step,
                    });
                }
                return Ok(RunEnd::Stopped { step: self.step });
            }
            let info = self.step(&data.train)?;
            on_event(Event::Step(&info));
            let at_epoch_end = info.step_in_epoch == info.steps_per_epoch;
            if at_epoch_end {
                on_event(Event::Evaluating { epoch: info.epoch });
                let m = self.finish_epoch(data, info.epoch, info.lr)?;
                on_event(Event::Epoch(&m));
            }
            if let Some(f) = files {
                let due = f.every.is_some_and(|k| self.step % k == 0);
                if at_epoch_end || due {
                    let path = f.dir.join(CHECKPOINT_FILE);
                    self.save(&path)?;
                    if at_epoch_end {
                        write_metrics(&f.dir, &self.history)?;
                    }
                    saved = Some(self.step);
                    on_event(Event::Saved {
                        path: &path,
                        step: self.step,
                    });
                }
            }
        }
        Ok(RunEnd::Done)
    }

    /// Evaluates after epoch `epoch` (1-based) and appends its metrics.
    fn finish_epoch(&mut self, data: &Split, epoch: u64, lr: f64) -> Result<EpochMetrics> {
        let (train_loss, train_acc) = if self.config.eval_train {
            self.evaluate(&data.train)?
        } else {
            let seen = self.sums.seen.max(1) as f64;
            (self.sums.loss / seen, self.sums.correct as f64 / seen)
        };
        let (test_loss, test_acc) = self.evaluate(&data.test)?;
        let m = EpochMetrics {
            epoch,
            step: self.step,
            lr,
            train_loss,
            train_acc,
            test_loss,
            test_acc,
            seconds: self.sums.seconds,
            images_per_sec: self.sums.seen as f64 / self.sums.seconds.max(1e-9),
        };
        self.history.push(m.clone());
        self.sums = EpochSums::default();
        Ok(m)
    }

    /// The run's state as a checkpoint: parameters (`param.<name>`),
    /// BatchNorm statistics (`buffer.<name>`), optimiser buffers
    /// (`optim.<i>`), the normalisation (`normalize.mean`/`.std`), and in
    /// the metadata the format, the configuration's fingerprint, the
    /// network, the step, the epoch's running sums and the history.
    ///
    /// # Errors
    /// Backend errors.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let b = &self.backend;
        let mut c = Checkpoint::new();
        for (spec, p) in self.specs.iter().zip(self.net.params()) {
            let v = b.to_vec(p)?;
            c.push(
                format!("param.{}", spec.name),
                &spec.shape,
                TensorData::from_slice(&v),
            );
        }
        for (name, buf) in self.net.buffers() {
            let v = b.to_vec(buf)?;
            c.push(
                format!("buffer.{name}"),
                &[v.len()],
                TensorData::from_slice(&v),
            );
        }
        let state = self.opt.get().state(b)?;
        for (i, v) in state.buffers.iter().enumerate() {
            c.push(format!("optim.{i}"), &[v.len()], TensorData::from_slice(v));
        }
        let (mean, std) = (self.normalize.mean(), self.normalize.std());
        c.push(
            "normalize.mean",
            &[mean.len()],
            TensorData::F32(mean.to_vec()),
        );
        c.push("normalize.std", &[std.len()], TensorData::F32(std.to_vec()));
        let meta = [
            ("format", CHECKPOINT_FORMAT.to_string()),
            ("fingerprint", self.config.fingerprint()),
            ("network", self.config.network.name()),
            ("image_shape", format!("{:?}", self.image_shape)),
            ("classes", self.classes.to_string()),
            ("step", self.step.to_string()),
            ("optim_kind", state.kind.to_string()),
            ("optim_step", state.step.to_string()),
            ("epoch_loss", format!("{:e}", self.sums.loss)),
            ("epoch_correct", self.sums.correct.to_string()),
            ("epoch_seen", self.sums.seen.to_string()),
            ("epoch_seconds", format!("{:e}", self.sums.seconds)),
            ("history", history_to_string(&self.history)),
        ];
        for (k, v) in &self.notes {
            c.metadata.insert(format!("note.{k}"), v.clone());
        }
        for (k, v) in meta {
            c.metadata.insert(k.to_string(), v);
        }
        Ok(c)
    }

    /// Adds a note that every later checkpoint carries in its metadata as
    /// `note.<key>` (e.g. the dataset's name, so that `smoothout eval` can
    /// find it); notes do not affect training.
    pub fn annotate(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.notes.retain(|(k, _)| *k != key);
        self.notes.push((key, value.into()));
    }

    /// Writes [`Trainer::checkpoint`] to `path` atomically.
    ///
    /// # Errors
    /// [`TrainError::Io`]; backend errors. The previous file is kept on
    /// error.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_checkpoint(path, &self.checkpoint()?)
    }

    /// Loads the state of a checkpoint written by a run of the same
    /// configuration (epochs aside) on the same data.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when the checkpoint is of another format,
    /// configuration, network or element type, lacks a tensor, or holds a
    /// NaN or infinity in any tensor (named) or in its epoch's running
    /// sums — values that came from the file, refused before any training
    /// could be blamed for them; nothing is changed then.
    pub fn restore(&mut self, c: &Checkpoint, path: &Path) -> Result<()> {
        let r = Reader { c, path };
        r.check_format().map_err(|e| match e {
            TrainError::Checkpoint { path, reason } => TrainError::Checkpoint {
                path,
                reason: format!("{reason} ({RESUME_HINT})"),
            },
            e => e,
        })?;
        let fp = self.config.fingerprint();
        let stored = r.meta("fingerprint")?;
        if stored != fp {
            return Err(r.bad(format!(
                "it was written by another configuration ({RESUME_HINT}):\n  checkpoint: {stored}\n  this run:   {fp}"
            )));
        }
        let step: u64 = r.number("step")?;
        if step > self.total_steps() {
            return Err(r.bad(format!(
                "it holds {step} steps, more than this run's {} epochs of {} steps ({RESUME_HINT})",
                self.total_epochs, self.steps_per_epoch
            )));
        }
        r.check_finite()?;
        // Read and check everything before changing anything.
        let params: Vec<Vec<B::Elem>> = self
            .specs
            .iter()
            .map(|s| r.tensor(&format!("param.{}", s.name), s.len()))
            .collect::<Result<_>>()?;
        let buffers: Vec<Vec<B::Elem>> = self
            .net
            .buffers()
            .into_iter()
            .map(|(n, buf)| r.tensor(&format!("buffer.{n}"), self.backend.len(buf)))
            .collect::<Result<_>>()?;
        let current = self.opt.get().state(&self.backend)?;
        let optim = OptimState {
            kind: current.kind,
            step: r.number("optim_step")?,
            buffers: current
                .buffers
                .iter()
                .enumerate()
                .map(|(i, v)| r.tensor(&format!("optim.{i}"), v.len()))
                .collect::<Result<_>>()?,
        };
        let stored = r.meta("optim_kind")?;
        if stored != current.kind {
            return Err(r.bad(format!(
                "its optimiser is {stored}, this run's is {} ({RESUME_HINT})",
                current.kind
            )));
        }
        let history = history_from_str(path, r.meta("history")?)?;
        let sums = EpochSums {
            loss: r.finite("epoch_loss")?,
            correct: r.number("epoch_correct")?,
            seen: r.number("epoch_seen")?,
            seconds: r.finite("epoch_seconds")?,
        };
        let b = &self.backend;
        for (p, v) in self.net.params_mut().into_iter().zip(&params) {
            *p = b.upload(v)?;
        }
        for ((_, buf), v) in self.net.buffers_mut().into_iter().zip(&buffers) {
            *buf = b.upload(v)?;
        }
        self.opt.get_mut().load_state(b, &optim)?;
        self.step = step;
        self.history = history;
        self.sums = sums;
        self.order = None;
        Ok(())
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

/// Checked reads from a checkpoint, with errors that name its file.
struct Reader<'a> {
    c: &'a Checkpoint,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn bad(&self, reason: String) -> TrainError {
        TrainError::checkpoint(self.path, reason)
    }

    fn meta(&self, key: &str) -> Result<&'a str> {
        self.c
            .meta(key)
            .ok_or_else(|| self.bad(format!("metadata `{key}` is missing")))
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        self.meta(key)?
            .parse()
            .map_err(|_| self.bad(format!("metadata `{key}` is not a number")))
    }

    /// Metadata `key` as a finite number.
    fn finite(&self, key: &str) -> Result<f64> {
        let v: f64 = self.number(key)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.bad(format!(
                "metadata `{key}` is {v}, not a finite number: the run that wrote it had diverged, \
                 or the file was edited"
            )))
        }
    }

    fn check_format(&self) -> Result<()> {
        if self.meta("format")? == CHECKPOINT_FORMAT {
            Ok(())
        } else {
            Err(self.bad(format!("format is not {CHECKPOINT_FORMAT}")))
        }
    }

    /// Every tensor of the checkpoint, whether it is used or not, holds
    /// only finite values; the error names the first tensor that does not.
    fn check_finite(&self) -> Result<()> {
        for (name, _, data) in &self.c.tensors {
            if let Some((at, value, count)) = data.non_finite() {
                let others = match count {
                    1 => String::new(),
                    n => format!("; {} more after it", n - 1),
                };
                return Err(self.bad(format!(
                    "tensor '{name}' holds {value} at element {at} of {}{others}: the checkpoint \
                     stores non-finite values (the run that wrote it had diverged, or the file was \
                     edited), so it cannot be used",
                    data.len()
                )));
            }
        }
        Ok(())
    }

    /// Tensor `name` as `len` elements of the run's type.
    fn tensor<E: Real>(&self, name: &str, len: usize) -> Result<Vec<E>> {
        let (_, data) = self
            .c
            .tensor(name)
            .ok_or_else(|| self.bad(format!("tensor `{name}` is missing")))?;
        let v = data.to_vec::<E>(self.path, name)?;
        if v.len() != len {
            return Err(self.bad(format!(
                "tensor `{name}` has {} elements, expected {len}",
                v.len()
            )));
        }
        Ok(v)
    }
}

/// Copies `from` into `held`, allocating `held` anew unless it already
/// holds buffers of the same lengths (so a trainer allocates once, at its
/// first step).
fn hold<B: TensorBackend>(b: &B, held: &mut Vec<B::Buffer>, from: &[&B::Buffer]) -> Result<()> {
    let fits = held.len() == from.len() && held.iter().zip(from).all(|(h, f)| b.len(h) == b.len(f));
    if !fits {
        *held = from
            .iter()
            .map(|f| b.zeros(b.len(f)))
            .collect::<smoothout::Result<_>>()?;
    }
    for (f, h) in from.iter().zip(held.iter_mut()) {
        b.copy(f, h)?;
    }
    Ok(())
}

/// The network and normalisation stored in a checkpoint written by
/// [`Trainer::save`], ready for [`evaluate`], with its image shape and
/// classes.
///
/// # Errors
/// [`TrainError::Checkpoint`], naming `path`, when the checkpoint lacks a
/// tensor or metadata entry, holds another element type, holds a NaN or
/// an infinity in any tensor (named), or holds values no network is built
/// from (an unknown network, 0 classes, an image shape the network cannot
/// take, a standard deviation that is not positive, a network of another
/// size than its tensors); [`TrainError::Memory`] when the network its
/// metadata describes needs more memory than is available (checked before
/// anything is allocated).
pub fn network_from_checkpoint<B: TensorBackend + 'static>(
    b: &B,
    c: &Checkpoint,
    path: &Path,
) -> Result<(Sequential<B>, Normalize, [usize; 3], usize)> {
    let r = Reader { c, path };
    r.check_format()?;
    r.check_finite()?;
    let name = r.meta("network")?;
    let network = super::config::Network::parse(name)
        .map_err(|_| r.bad(format!("metadata `network` = `{name}` is not a network")))?;
    let dims: Vec<usize> = r
        .meta("image_shape")?
        .trim_matches(|ch| ch == '[' || ch == ']')
        .split(',')
        .map(|d| {
            d.trim()
                .parse()
                .map_err(|_| r.bad("metadata `image_shape` is malformed".into()))
        })
        .collect::<Result<_>>()?;
    let image_shape: [usize; 3] = dims
        .try_into()
        .map_err(|_| r.bad("metadata `image_shape` is not [C, H, W]".into()))?;
    let classes: usize = r.number("classes")?;
    if classes == 0 {
        return Err(r.bad("metadata `classes` is 0".into()));
    }
    // The sizes come from the file: check them before allocating.
    check_memory(
        || {
            format!(
                "the network of checkpoint {} (its metadata says network = {}, image_shape = \
                 {image_shape:?}, classes = {classes})",
                path.display(),
                network.name()
            )
        },
        network
            .memory(image_shape, classes, core::mem::size_of::<B::Elem>())
            .as_ref(),
        |_| {
            "evaluate it on a machine with more memory; if its metadata was edited, the \
             checkpoint is damaged (evaluate the run's own checkpoint, or train it again)"
                .to_string()
        },
    )?;
    if let Some(f) = network.footprint(image_shape, classes) {
        let stored: u64 = c
            .tensors
            .iter()
            .filter(|(name, _, _)| name.starts_with("param."))
            .map(|(_, _, d)| d.len() as u64)
            .sum();
        if stored != f.parameters {
            return Err(r.bad(format!(
                "its metadata (network = {}, image_shape = {image_shape:?}, classes = {classes}) \
                 describes {} parameters, its tensors hold {stored}: the metadata does not fit \
                 the tensors",
                network.name(),
                f.parameters
            )));
        }
    }
    let mut net = network.build(b, 0, image_shape, classes).map_err(|e| {
        r.bad(format!(
            "its network {name} cannot take {image_shape:?} images in {classes} classes: {e}"
        ))
    })?;
    let specs = net.specs();
    for (spec, p) in specs.iter().zip(net.params_mut()) {
        *p = b.upload(&r.tensor(&format!("param.{}", spec.name), spec.len())?)?;
    }
    for (name, buf) in net.buffers_mut() {
        let len = b.len(buf);
        *buf = b.upload(&r.tensor(&format!("buffer.{name}"), len)?)?;
    }
    let stats = |name: &str| -> Result<Vec<f32>> {
        match c.tensor(name) {
            Some((_, TensorData::F32(v))) => Ok(v.clone()),
            _ => Err(r.bad(format!("tensor `{name}` is missing or not f32"))),
        }
    };
    let normalize = Normalize::new(stats("normalize.mean")?, stats("normalize.std")?)
        .map_err(|e| r.bad(format!("tensors `normalize.mean`/`normalize.std`: {e}")))?;
    if normalize.mean().len() != image_shape[0] {
        return Err(r.bad(format!(
            "tensor `normalize.mean` has {} channels, metadata `image_shape` {}",
            normalize.mean().len(),
            image_shape[0]
        )));
    }
    Ok((net, normalize, image_shape, classes))
}
