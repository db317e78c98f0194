//! What a training run is: method, noise, network, optimiser, data order.

use std::fmt::Write as _;

use smoothout::tensor::TensorBackend;
use smoothout::{Config, Denoise, Noise, ParamSpec, Role, Scaling, Schedule};

use crate::data::Augment;
use crate::error::{Result, TrainError};
use crate::networks::{self, NetConfig, Sequential};
use crate::optim::LrRegime;

/// The rule every learning rate of a training run follows, as the error
/// for `lr` states it.
fn lr_rule(lr: f64) -> String {
    format!("{lr} is not a finite value > 0 (a rate of 0 trains nothing)")
}

/// The training method. SmoothOut, AdaSmoothOut and the two random weight
/// perturbations draw their noise from the same counter-based generator
/// and remove it by regenerating it; SAM and ASAM perturb along the
/// gradient. Every method perturbs the parameters [`TrainConfig::perturb`]
/// names and has its strength in [`TrainConfig::a`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Plain training, no noise.
    Baseline,
    /// SmoothOut: θ of fixed strength `a` on every perturbed element.
    SmoothOut,
    /// AdaSmoothOut: θ scaled per row (filter) by `a · ‖w_i‖` (DESIGN.md).
    AdaSmoothOut,
    /// SAM (Foret et al., 2021): the gradient at `w + ε`, `ε = ρ·g/‖g‖`
    /// (`ρ` = [`TrainConfig::a`]), applied at `w`. Two passes per step.
    Sam,
    /// ASAM (Kwon et al., 2021): SAM with `ε = ρ·T²g/‖Tg‖`, `T = |w| + η`
    /// element-wise (`η` = [`TrainConfig::eta`]). Two passes per step.
    Asam,
    /// Random weight perturbation: Gaussian θ with `σ = γ·‖w_i‖` per row
    /// (filter), `γ` = [`TrainConfig::a`], removed by regeneration. One pass.
    Rwp,
    /// Mixed-loss RWP (Li et al., 2024): the gradient of
    /// `β·L(w) + (1 − β)·L(w + θ)` (`β` = [`TrainConfig::beta`]), θ as
    /// [`Method::Rwp`]'s. Two passes per step.
    MixedRwp,
}

impl Method {
    /// Every method, in the order tables list them.
    pub const ALL: [Method; 7] = [
        Method::Baseline,
        Method::SmoothOut,
        Method::AdaSmoothOut,
        Method::Sam,
        Method::Asam,
        Method::Rwp,
        Method::MixedRwp,
    ];

    /// The name the command line uses (`baseline`, `smoothout`,
    /// `adasmoothout`, `sam`, `asam`, `rwp`, `mrwp`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Method::Baseline => "baseline",
            Method::SmoothOut => "smoothout",
            Method::AdaSmoothOut => "adasmoothout",
            Method::Sam => "sam",
            Method::Asam => "asam",
            Method::Rwp => "rwp",
            Method::MixedRwp => "mrwp",
        }
    }

    /// The method [`Method::name`] calls `s`.
    ///
    /// ```
    /// use smoothout_models::train::Method;
    /// assert_eq!(Method::parse("mrwp")?, Method::MixedRwp);
    /// assert!(Method::parse("sgd").is_err());
    /// # Ok::<(), smoothout_models::train::TrainError>(())
    /// ```
    ///
    /// # Errors
    /// [`TrainError::Config`] (`--method`) naming the methods.
    pub fn parse(s: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                TrainError::config(
                    "--method",
                    format!("`{s}` is not a method: use one of {}", names.join(", ")),
                )
            })
    }

    /// The command-line flag of the strength [`TrainConfig::a`] is for this
    /// method: `--a` (SmoothOut, AdaSmoothOut; also the baseline's, which
    /// ignores it), `--rho` (SAM, ASAM) or `--gamma` (RWP, m-RWP).
    #[must_use]
    pub fn strength_flag(self) -> &'static str {
        match self {
            Method::Baseline | Method::SmoothOut | Method::AdaSmoothOut => "--a",
            Method::Sam | Method::Asam => "--rho",
            Method::Rwp | Method::MixedRwp => "--gamma",
        }
    }

    /// Forward and backward passes over each batch: 2 for SAM, ASAM and
    /// m-RWP, 1 otherwise.
    #[must_use]
    pub fn passes(self) -> u32 {
        match self {
            Method::Sam | Method::Asam | Method::MixedRwp => 2,
            _ => 1,
        }
    }

    /// The strength the command line uses when none is given: 0.0375 for
    /// SmoothOut and 0.15 for AdaSmoothOut (the paper's), ρ = 0.05 for SAM
    /// (its authors' CIFAR value), ρ = 0.5 for ASAM (its authors', with
    /// η = 0.01), γ = 0.01 for RWP and m-RWP.
    #[must_use]
    pub fn default_strength(self) -> f64 {
        match self {
            Method::Baseline | Method::SmoothOut => 0.0375,
            Method::AdaSmoothOut => 0.15,
            Method::Sam => 0.05,
            Method::Asam => 0.5,
            Method::Rwp | Method::MixedRwp => 0.01,
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
    /// The method.
    pub method: Method,
    /// The network.
    pub network: Network,
    /// The distribution of θ.
    pub noise: NoiseKind,
    /// The method's strength (ignored by the baseline): SmoothOut's `a` of
    /// U(−a, a), the Gaussian's σ or the drop probability; SAM's and ASAM's
    /// radius ρ; RWP's and m-RWP's γ (σ = γ·‖w_i‖).
    pub a: f64,
    /// ASAM's η in `T = |w| + η` (ignored by the other methods).
    pub eta: f64,
    /// m-RWP's weight β of the unperturbed loss (ignored by the other
    /// methods).
    pub beta: f64,
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
    /// (the paper's MNIST value; for SAM, ASAM, RWP and m-RWP
    /// [`Method::default_strength`] and Gaussian noise for the RWPs),
    /// η = 0.01, β = 0.5, constant schedule, regenerating de-noise,
    /// weights and biases perturbed, batch 128, no ghost batches, 10
    /// epochs, SGD with momentum 0.9 and lr 0.1 divided by 10 at 50% and 75%
    /// of training, no weight decay or clipping, seed 0, no augmentation,
    /// train-set evaluation on, evaluation batches of 1000.
    #[must_use]
    pub fn new(method: Method, network: Network) -> Self {
        let rwp = matches!(method, Method::Rwp | Method::MixedRwp);
        TrainConfig {
            method,
            network,
            noise: if rwp {
                NoiseKind::Gaussian
            } else {
                NoiseKind::Uniform
            },
            a: match method {
                Method::Baseline | Method::SmoothOut | Method::AdaSmoothOut => 0.0375,
                m => m.default_strength(),
            },
            eta: 0.01,
            beta: 0.5,
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

    /// The core SmoothOut configuration of SmoothOut and AdaSmoothOut;
    /// `None` for the other methods (the RWPs draw their noise through
    /// [`super::RowNoise`]).
    ///
    /// # Errors
    /// [`TrainError::Config`] (`--a`) for an invalid strength;
    /// [`TrainError::Core`] for a combination the core rejects (e.g.
    /// Bernoulli noise with regenerating de-noise).
    pub fn smoothout(&self, total_steps: u64) -> Result<Option<Config>> {
        let scaling = match self.method {
            Method::Baseline | Method::Sam | Method::Asam | Method::Rwp | Method::MixedRwp => {
                return Ok(None)
            }
            Method::SmoothOut => Scaling::Fixed,
            Method::AdaSmoothOut => Scaling::FilterNorm,
        };
        let noise = match self.noise {
            NoiseKind::Uniform => Noise::uniform(self.a),
            NoiseKind::Gaussian => Noise::gaussian(self.a),
            NoiseKind::Bernoulli => Noise::bernoulli(self.a),
        }
        .map_err(|e| TrainError::config(self.method.strength_flag(), e.to_string()))?;
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
        self.validate_method()?;
        self.smoothout(1)?;
        Ok(())
    }

    /// The checks of SAM's, ASAM's and the RWPs' own settings.
    fn validate_method(&self) -> Result<()> {
        let m = self.method;
        let rwp = matches!(m, Method::Rwp | Method::MixedRwp);
        if (rwp || matches!(m, Method::Sam | Method::Asam))
            && !(self.a.is_finite() && self.a >= 0.0)
        {
            return Err(TrainError::config(
                m.strength_flag(),
                format!("{} is not a finite strength >= 0", self.a),
            ));
        }
        if m == Method::Asam && !(self.eta.is_finite() && self.eta >= 0.0) {
            return Err(TrainError::config(
                "--eta",
                format!("{} is not a finite value >= 0", self.eta),
            ));
        }
        if m == Method::MixedRwp && !(0.0..=1.0).contains(&self.beta) {
            return Err(TrainError::config(
                "--beta",
                format!(
                    "{} is outside [0, 1]: it weighs the unperturbed loss against the perturbed one",
                    self.beta
                ),
            ));
        }
        if rwp && self.schedule != Schedule::Constant {
            return Err(TrainError::config(
                "--schedule",
                format!("{} keeps γ constant; schedules are SmoothOut's", m.name()),
            ));
        }
        if rwp && self.denoise != Denoise::Regenerate {
            return Err(TrainError::config(
                "--no-denoise",
                format!(
                    "{} always removes its noise by regenerating it (--no-denoise and \
                     --exact-denoise are SmoothOut's)",
                    m.name()
                ),
            ));
        }
        if rwp && self.noise != NoiseKind::Gaussian {
            return Err(TrainError::config(
                "--noise",
                format!(
                    "{} draws Gaussian noise (σ = γ·‖w_i‖ per filter); for {:?} noise scaled \
                     per filter use --method adasmoothout",
                    m.name(),
                    self.noise
                ),
            ));
        }
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
        // Only the methods that read them carry η and β, so that the
        // fingerprints of the other methods' checkpoints stay as they were.
        match self.method {
            Method::Asam => {
                let _ = write!(s, " eta={:e}", self.eta);
            }
            Method::MixedRwp => {
                let _ = write!(s, " beta={:e}", self.beta);
            }
            _ => {}
        }
        s
    }
}
