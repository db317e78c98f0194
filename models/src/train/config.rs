//! What a training run is: method, noise, network, optimiser, data order.

use std::fmt::Write as _;

use smoothout::{Config, Denoise, Noise, ParamSpec, Role, Scaling, Schedule, TensorBackend};

use super::error::{Result, TrainError};
use crate::data::Augment;
use crate::networks::{self, NetConfig, Sequential};
use crate::optim::LrRegime;

/// The rule every learning rate of a training run follows, as the error
/// for `lr` states it.
fn lr_rule(lr: f64) -> String {
    format!("{lr} is not a finite value > 0 (a rate of 0 trains nothing)")
}

/// The training method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Plain training, no noise.
    Baseline,
    /// SmoothOut: θ of fixed strength `a` on every perturbed element.
    SmoothOut,
    /// AdaSmoothOut: θ scaled per row (filter) by `a · ‖w_i‖` (DESIGN.md).
    AdaSmoothOut,
}

impl Method {
    /// The name the command line uses (`baseline`, `smoothout`,
    /// `adasmoothout`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Method::Baseline => "baseline",
            Method::SmoothOut => "smoothout",
            Method::AdaSmoothOut => "adasmoothout",
        }
    }
}

/// The distribution of θ (its strength is [`TrainConfig::a`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NoiseKind {
    /// Uniform in `[−a, a]` (the paper's choice).
    #[default]
    Uniform,
    /// Gaussian with standard deviation `a`.
    Gaussian,
    /// Multiplicative drop-out of weights with probability `a` (needs
    /// exact de-noising).
    Bernoulli,
}

/// Which parameters SmoothOut perturbs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PerturbSet {
    /// Linear/Conv weights and biases, not BatchNorm's γ and β (the
    /// authors' choice).
    #[default]
    WeightsAndBiases,
    /// Linear/Conv weights only.
    Weights,
    /// Every parameter, BatchNorm's included.
    All,
}

impl PerturbSet {
    /// `spec` with `perturbed` set as this set says.
    #[must_use]
    pub fn apply(self, spec: ParamSpec) -> ParamSpec {
        let on = matches!(
            (self, spec.role),
            (PerturbSet::All, _) | (_, Role::Weight) | (PerturbSet::WeightsAndBiases, Role::Bias)
        );
        spec.with_perturbed(on)
    }
}

/// The update rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OptimizerKind {
    /// SGD with heavy-ball momentum (its de-noise is fused into the update).
    #[default]
    Sgd,
    /// SGD with Nesterov momentum.
    Nesterov,
    /// Adam (β = (0.9, 0.999), ε = 1e-8).
    Adam,
}

/// The network to train.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// A fully connected net with these hidden widths (each followed by
    /// BatchNorm and ReLU); any input shape.
    Mlp(Vec<usize>),
    /// F1: the MLP `784 → 512×5 → classes` (28×28 single-channel input).
    F1,
    /// C1/C3: the shallow CIFAR network (3×32×32 input).
    CifarShallow,
    /// ResNet-44 (3×32×32 input).
    ResNet44,
    /// ResNet-18 with the 3×3 CIFAR stem (3×32×32 input).
    ResNet18,
}

impl Network {
    /// The name the command line and checkpoints use: `mlp-64-64` (the
    /// hidden widths), `f1`, `cifar-shallow`, `resnet44`, `resnet18`;
    /// [`Network::parse`] reads it back.
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Network::Mlp(h) => {
                let widths: Vec<String> = h.iter().map(ToString::to_string).collect();
                format!("mlp-{}", widths.join("-"))
            }
            Network::F1 => "f1".into(),
            Network::CifarShallow => "cifar-shallow".into(),
            Network::ResNet44 => "resnet44".into(),
            Network::ResNet18 => "resnet18".into(),
        }
    }

    /// The network named `s` (as [`Network::name`] writes it; plain `mlp`
    /// is `mlp-64-64`, and `c1`/`c3` are `cifar-shallow`).
    ///
    /// ```
    /// use smoothout_models::train::Network;
    /// assert_eq!(Network::parse("mlp-128-64")?, Network::Mlp(vec![128, 64]));
    /// assert_eq!(Network::parse(&Network::F1.name())?, Network::F1);
    /// assert!(Network::parse("mlp-0").is_err() && Network::parse("vgg").is_err());
    /// # Ok::<(), smoothout_models::train::TrainError>(())
    /// ```
    ///
    /// # Errors
    /// [`TrainError::Config`] (`--net`) naming the accepted spellings.
    pub fn parse(s: &str) -> Result<Network> {
        let bad = || {
            TrainError::config(
                "--net",
                format!(
                    "`{s}` is not a network: use mlp, mlp-W-W-… (hidden widths), f1, cifar-shallow, resnet44 or resnet18"
                ),
            )
        };
        Ok(match s {
            "f1" => Network::F1,
            "cifar-shallow" | "c1" | "c3" => Network::CifarShallow,
            "resnet44" => Network::ResNet44,
            "resnet18" => Network::ResNet18,
            "mlp" => Network::Mlp(vec![64, 64]),
            _ => {
                let widths = s.strip_prefix("mlp-").ok_or_else(bad)?;
                let w: Vec<usize> = widths
                    .split('-')
                    .map(|w| w.parse().ok().filter(|&w| w > 0).ok_or_else(bad))
                    .collect::<Result<_>>()?;
                Network::Mlp(w)
            }
        })
    }

    /// Whether the network has a BatchNorm over features (after a fully
    /// connected layer, `[N, C]` inputs): its statistics come from the
    /// examples of a ghost chunk alone, so a chunk of one example has zero
    /// variance, normalises every input to β and passes no gradient back.
    /// The ResNets' BatchNorms follow convolutions and also average over
    /// the pixels (at least 4×4 of them), so they train on one-example
    /// chunks.
    ///
    /// ```
    /// use smoothout_models::train::Network;
    /// assert!(Network::Mlp(vec![64]).has_feature_batch_norm());
    /// assert!(!Network::ResNet44.has_feature_batch_norm());
    /// ```
    #[must_use]
    pub fn has_feature_batch_norm(&self) -> bool {
        match self {
            Network::Mlp(hidden) => !hidden.is_empty(),
            Network::F1 | Network::CifarShallow => true,
            Network::ResNet44 | Network::ResNet18 => false,
        }
    }

    /// Builds the network for images of `image_shape` (`[C, H, W]`) and
    /// `classes` classes, initialised from `seed`.
    ///
    /// # Errors
    /// [`TrainError::Config`] (`--net`) when the network cannot take that
    /// input.
    pub fn build<B: TensorBackend + 'static>(
        &self,
        b: &B,
        seed: u64,
        image_shape: [usize; 3],
        classes: usize,
    ) -> Result<Sequential<B>> {
        let cfg = NetConfig::seeded(seed);
        let cifar = [3, 32, 32];
        let needs = |shape: [usize; 3], what: &str| {
            if image_shape == shape {
                Ok(())
            } else {
                Err(TrainError::config(
                    "--net",
                    format!(
                        "{} takes {what} images ({shape:?}), the data has {image_shape:?}; pick a network for this dataset (e.g. --net mlp)",
                        self.name()
                    ),
                ))
            }
        };
        Ok(match self {
            Network::Mlp(hidden) => {
                let inputs = image_shape
                    .iter()
                    .try_fold(1usize, |n, &d| n.checked_mul(d))
                    .ok_or_else(|| {
                        TrainError::config(
                            "--net",
                            format!("{image_shape:?} images have more values than fit in memory"),
                        )
                    })?;
                networks::mlp(b, cfg, inputs, hidden, classes)?
            }
            Network::F1 => {
                needs([1, 28, 28], "28×28 single-channel")?;
                networks::mlp(b, cfg, 784, &[512; 5], classes)?
            }
            Network::CifarShallow => {
                needs(cifar, "3×32×32")?;
                networks::cifar_shallow(b, classes, cfg)?
            }
            Network::ResNet44 => {
                needs(cifar, "3×32×32")?;
                networks::resnet_cifar(b, 44, classes, cfg)?
            }
            Network::ResNet18 => {
                needs(cifar, "3×32×32")?;
                networks::resnet18(b, classes, networks::Stem::Cifar, cfg)?
            }
        })
    }
}

/// Everything that defines a training run. Two runs with equal
/// configurations (and data) produce bit-identical weights, whatever the
/// thread count, and a run resumed from a checkpoint continues exactly as
/// if it had not stopped.
///
/// ```
/// use smoothout_models::train::{Method, Network, TrainConfig};
/// let cfg = TrainConfig::new(Method::AdaSmoothOut, Network::F1)
///     .with_batch(256)
///     .with_epochs(10);
/// assert!(cfg.validate().is_ok());
/// assert!(cfg.clone().with_batch(0).validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Baseline, SmoothOut or AdaSmoothOut.
    pub method: Method,
    /// The network.
    pub network: Network,
    /// The distribution of θ.
    pub noise: NoiseKind,
    /// Noise strength: `a` of U(−a, a), the Gaussian's σ, or the drop
    /// probability (ignored by the baseline).
    pub a: f64,
    /// Strength over training.
    pub schedule: Schedule,
    /// How θ is removed ([`Denoise::Off`] is the no-denoise ablation).
    pub denoise: Denoise,
    /// Which parameters are perturbed.
    pub perturb: PerturbSet,
    /// Examples per optimiser step.
    pub batch: usize,
    /// Ghost batch size: the batch runs in chunks of this many examples,
    /// each with its own BatchNorm statistics and (SmoothOut) its own noise
    /// draw, de-noised after that chunk's backward; gradients are averaged
    /// over the batch. At most [`TrainConfig::batch`]; when it does not
    /// divide the batch, the last chunk is shorter (its gradient weighs by
    /// its size). `None`: one chunk.
    pub ghost: Option<usize>,
    /// Epochs to train (before the regime's train-longer multiplier).
    pub epochs: u64,
    /// The learning rate by epoch and step.
    pub regime: LrRegime,
    /// The update rule.
    pub optimizer: OptimizerKind,
    /// Momentum of SGD (ignored by Adam).
    pub momentum: f64,
    /// Coupled L2 weight decay.
    pub weight_decay: f64,
    /// Clip the gradient's global norm to this value, if set.
    pub clip: Option<f64>,
    /// Seed of initialisation, data order, augmentation, dropout and noise.
    pub seed: u64,
    /// Training-time augmentation.
    pub augment: Augment,
    /// Also evaluate on the whole training set after each epoch (eval mode);
    /// otherwise the train columns hold the running average over the epoch.
    pub eval_train: bool,
    /// Examples per evaluation batch.
    pub eval_batch: usize,
}

impl TrainConfig {
    /// `method` on `network` with the defaults: uniform noise, `a = 0.0375`
    /// (the paper's MNIST value), constant schedule, regenerating de-noise,
    /// weights and biases perturbed, batch 128, no ghost batches, 10
    /// epochs, SGD with momentum 0.9 and lr 0.1 divided by 10 at 50% and 75%
    /// of training, no weight decay or clipping, seed 0, no augmentation,
    /// train-set evaluation on, evaluation batches of 1000.
    #[must_use]
    pub fn new(method: Method, network: Network) -> Self {
        TrainConfig {
            method,
            network,
            noise: NoiseKind::Uniform,
            a: 0.0375,
            schedule: Schedule::Constant,
            denoise: Denoise::Regenerate,
            perturb: PerturbSet::WeightsAndBiases,
            batch: 128,
            ghost: None,
            epochs: 10,
            regime: LrRegime::decay_points(0.1, 10),
            optimizer: OptimizerKind::Sgd,
            momentum: 0.9,
            weight_decay: 0.0,
            clip: None,
            seed: 0,
            augment: Augment::none(),
            eval_train: true,
            eval_batch: 1000,
        }
    }

    /// With `batch` examples per step.
    #[must_use]
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    /// With `epochs` epochs and the default step regime rescaled to them
    /// (lr 0.1 → 0.01 at half → 0.001 at three quarters).
    #[must_use]
    pub fn with_epochs(mut self, epochs: u64) -> Self {
        self.epochs = epochs;
        self.regime = LrRegime::decay_points(0.1, epochs);
        self
    }

    /// With this seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Epochs including the regime's train-longer multiplier.
    ///
    /// # Errors
    /// [`TrainError::Config`] on overflow.
    pub fn total_epochs(&self) -> Result<u64> {
        self.regime
            .total_epochs(self.epochs)
            .map_err(|e| TrainError::config("--epochs", e.to_string()))
    }

    /// The ghost chunk size (the batch when there are no ghost batches). A
    /// batch of `n` examples runs in ⌈n / chunk⌉ chunks, the last one
    /// shorter when `chunk` does not divide `n`.
    #[must_use]
    pub fn chunk(&self) -> usize {
        self.ghost.unwrap_or(self.batch).min(self.batch)
    }

    /// Whether a batch of `n` examples, cut into ghost chunks, has a chunk
    /// of exactly one example for a network that cannot train on one
    /// ([`Network::has_feature_batch_norm`]).
    pub(crate) fn one_example_chunk(&self, n: usize) -> bool {
        let chunk = self.chunk();
        self.network.has_feature_batch_norm()
            && n > 0
            && chunk > 0
            && (chunk == 1 || n % chunk == 1)
    }

    /// Why a one-example chunk is refused.
    pub(crate) fn one_example_why(&self) -> String {
        format!(
            "{} normalises each feature over a chunk's examples (BatchNorm), and over one \
             example the variance is zero, so every input becomes β and no gradient flows back",
            self.network.name()
        )
    }

    /// Checks what depends on the size of the training set: the last,
    /// short batch of an epoch (`train_len` mod `batch` examples) must not
    /// leave a chunk of one example for a network with BatchNorm over
    /// features ([`Network::has_feature_batch_norm`]). [`Trainer::new`]
    /// calls it after [`TrainConfig::validate`].
    ///
    /// ```
    /// use smoothout_models::train::{Method, Network, TrainConfig};
    /// let cfg = TrainConfig::new(Method::Baseline, Network::Mlp(vec![16])).with_batch(64);
    /// assert!(cfg.validate_data(640).is_ok() && cfg.validate_data(650).is_ok());
    /// assert!(cfg.validate_data(641).is_err()); // a last batch of 1 example
    /// ```
    ///
    /// [`Trainer::new`]: super::Trainer::new
    ///
    /// # Errors
    /// [`TrainError::Config`] (`--batch`) naming the sizes and a batch size
    /// that works.
    pub fn validate_data(&self, train_len: usize) -> Result<()> {
        if self.batch == 0 {
            return Err(TrainError::config("--batch", "must be at least 1"));
        }
        let leaves_one = |c: &TrainConfig| c.one_example_chunk(train_len % c.batch);
        if !leaves_one(self) {
            return Ok(());
        }
        let last = train_len % self.batch;
        let chunk = if last > self.chunk() {
            format!(
                ", cut into chunks of {} (--ghost) ending in one of 1",
                self.chunk()
            )
        } else {
            String::new()
        };
        // The nearest batch size that passes every check, the ghost size kept.
        let works = |batch: usize| {
            let c = self.clone().with_batch(batch);
            c.ghost.is_none_or(|g| g <= batch) && !c.one_example_chunk(batch) && !leaves_one(&c)
        };
        let nearest = (1..=1024)
            .flat_map(|d| [self.batch.checked_add(d), self.batch.checked_sub(d)])
            .flatten()
            .find(|&b| b > 0 && works(b))
            .map_or_else(String::new, |b| format!(" (e.g. --batch {b})"));
        Err(TrainError::config(
            "--batch",
            format!(
                "the {train_len} training examples in batches of {} leave a last batch of {last} \
                 each epoch{chunk}: {}; choose a --batch that leaves no chunk of 1 example{nearest}",
                self.batch,
                self.one_example_why()
            ),
        ))
    }

    /// The core SmoothOut configuration, or `None` for the baseline.
    ///
    /// # Errors
    /// [`TrainError::Config`] (`--a`) for an invalid strength;
    /// [`TrainError::Core`] for a combination the core rejects (e.g.
    /// Bernoulli noise with regenerating de-noise).
    pub fn smoothout(&self, total_steps: u64) -> Result<Option<Config>> {
        let scaling = match self.method {
            Method::Baseline => return Ok(None),
            Method::SmoothOut => Scaling::Fixed,
            Method::AdaSmoothOut => Scaling::FilterNorm,
        };
        let noise = match self.noise {
            NoiseKind::Uniform => Noise::uniform(self.a),
            NoiseKind::Gaussian => Noise::gaussian(self.a),
            NoiseKind::Bernoulli => Noise::bernoulli(self.a),
        }
        .map_err(|e| TrainError::config("--a", e.to_string()))?;
        let cfg = Config::new(noise)
            .with_scaling(scaling)
            .with_schedule(self.schedule, total_steps)
            .with_denoise(self.denoise)
            .with_seed(self.seed);
        cfg.validate()?;
        Ok(Some(cfg))
    }

    /// Checks a learning rate of a training run: finite and > 0. (An
    /// [`LrRegime`] or optimiser accepts a rate of 0, which leaves the
    /// weights unchanged; a training run at that rate trains nothing.)
    ///
    /// ```
    /// use smoothout_models::train::TrainConfig;
    /// assert!(TrainConfig::check_lr(0.1).is_ok());
    /// assert!(TrainConfig::check_lr(0.0).is_err() && TrainConfig::check_lr(-0.1).is_err());
    /// ```
    ///
    /// # Errors
    /// [`TrainError::Config`] (`--lr`) for a rate that is not finite and
    /// positive, the same text for 0 and for negatives.
    pub fn check_lr(lr: f64) -> Result<()> {
        if lr.is_finite() && lr > 0.0 {
            Ok(())
        } else {
            Err(TrainError::config("--lr", lr_rule(lr)))
        }
    }

    /// Checks every setting, naming the command-line flag of the first bad
    /// one: among others every learning rate of the regime is finite and
    /// positive, `ghost ≤ batch`, and a network with BatchNorm over features
    /// never trains on a ghost chunk of one example (for the last, short
    /// batch of an epoch see [`TrainConfig::validate_data`]).
    ///
    /// # Errors
    /// [`TrainError::Config`] or [`TrainError::Core`].
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 {
            return Err(TrainError::config("--batch", "must be at least 1"));
        }
        if self.ghost == Some(0) {
            return Err(TrainError::config("--ghost", "must be at least 1"));
        }
        if self.eval_batch == 0 {
            return Err(TrainError::config("--eval-batch", "must be at least 1"));
        }
        if self.epochs == 0 {
            return Err(TrainError::config("--epochs", "must be at least 1"));
        }
        if let Network::Mlp(h) = &self.network {
            if h.contains(&0) {
                return Err(TrainError::config("--net", "MLP widths must be at least 1"));
            }
        }
        for &(epoch, lr) in self.regime.points() {
            Self::check_lr(lr).map_err(|e| match epoch {
                0 => e,
                _ => TrainError::config(
                    "--lr",
                    format!("{} (the regime's rate from epoch {epoch})", lr_rule(lr)),
                ),
            })?;
        }
        if let Some(g) = self.ghost.filter(|&g| g > self.batch) {
            return Err(TrainError::config(
                "--ghost",
                format!(
                    "{g} is larger than --batch {}: a ghost batch is a chunk of the batch; give --ghost at most {}",
                    self.batch, self.batch
                ),
            ));
        }
        if self.one_example_chunk(self.batch) {
            let why = self.one_example_why();
            return Err(match self.ghost {
                Some(1) => TrainError::config(
                    "--ghost",
                    format!("chunks of 1 example: {why}; give --ghost at least 2"),
                ),
                None => TrainError::config(
                    "--batch",
                    format!("batches of 1 example: {why}; give --batch at least 2"),
                ),
                Some(g) => TrainError::config(
                    "--ghost",
                    format!(
                        "--batch {} in chunks of {g} leaves a last chunk of 1 example: {why}; \
                         give a --ghost that divides --batch or leaves a last chunk of at least 2",
                        self.batch
                    ),
                ),
            });
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(TrainError::config(
                "--momentum",
                format!("{} is outside [0, 1)", self.momentum),
            ));
        }
        if self.optimizer == OptimizerKind::Nesterov && self.momentum == 0.0 {
            return Err(TrainError::config(
                "--momentum",
                "Nesterov needs momentum > 0 (use --optimizer sgd for plain SGD)",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(TrainError::config(
                "--weight-decay",
                format!("{} is not a finite value >= 0", self.weight_decay),
            ));
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(TrainError::config(
                    "--clip",
                    format!("{c} is not a finite value > 0"),
                ));
            }
        }
        self.total_epochs()?;
        self.smoothout(1)?;
        Ok(())
    }

    /// Every setting that determines the trajectory, as text: a checkpoint
    /// stores it, and resuming into a run with another fingerprint fails.
    /// The number of epochs is left out, so a finished run can be extended.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "method={} network={} noise={:?} a={:e} schedule={:?} denoise={:?} perturb={:?} \
             batch={} ghost={:?} regime={:?} optimizer={:?} momentum={:e} weight_decay={:e} \
             clip={:?} seed={} augment={:?}",
            self.method.name(),
            self.network.name(),
            self.noise,
            self.a,
            self.schedule,
            self.denoise,
            self.perturb,
            self.batch,
            self.ghost,
            self.regime,
            self.optimizer,
            self.momentum,
            self.weight_decay,
            self.clip,
            self.seed,
            self.augment,
        );
        s
    }
}
