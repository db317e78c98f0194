//! The paper's networks, built from [`crate::layers`].

use super::sequential::{GlobalAvgPool, LinearNoBias, Sequential};
use crate::layers::{BasicBlock, BatchNorm, Conv2d, Dropout, Linear, MaxPool2d, Relu};
use crate::rng::seeded_rng;
use rand_core::RngCore;
use smoothout::tensor::TensorBackend;
use smoothout::{Error, Result};

/// What every network constructor takes besides the backend: the seed of
/// the initialisation (and of the dropout masks) and the ghost batch size
/// of every BatchNorm (`None`: statistics over the whole batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetConfig {
    /// Seed from which each layer's initialisation seed is drawn, in order.
    pub seed: u64,
    /// Ghost batch size of every BatchNorm, or `None`.
    pub ghost_batch: Option<usize>,
}

impl NetConfig {
    /// Seed `seed`, no ghost batches.
    #[must_use]
    pub fn seeded(seed: u64) -> Self {
        NetConfig {
            seed,
            ghost_batch: None,
        }
    }

    /// The same configuration with ghost batches of `ghost` samples.
    #[must_use]
    pub fn with_ghost_batch(self, ghost: Option<usize>) -> Self {
        NetConfig {
            ghost_batch: ghost,
            ..self
        }
    }
}

/// The stem of [`resnet18`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stem {
    /// 3×3 convolution, stride 1, padding 1, no max-pool: the common variant
    /// for 32×32 CIFAR inputs (e.g. kuangliu/pytorch-cifar).
    Cifar,
    /// 7×7 convolution, stride 2, padding 3, then max-pool 3/2 with padding
    /// 1: He et al.'s ImageNet stem (torchvision's `resnet18`).
    ImageNet,
}

/// A convolution without bias from `channels` to `filters`, kernel `k`,
/// stride and padding `(k, stride, padding)`, initialised from the next
/// draw of `rng`, named `name` (every convolution of the paper's networks).
fn conv<B: TensorBackend>(
    b: &B,
    (channels, filters): (usize, usize),
    (k, stride, padding): (usize, usize, usize),
    rng: &mut impl RngCore,
    name: impl Into<String>,
) -> Result<Conv2d<B>> {
    Ok(
        Conv2d::new(b, channels, filters, k, stride, padding, rng.next_u64())?
            .without_bias()
            .named(name),
    )
}

fn bn<B: TensorBackend>(b: &B, c: usize, cfg: NetConfig, name: &str) -> Result<BatchNorm<B>> {
    Ok(BatchNorm::new(b, c)?
        .with_ghost_batch(cfg.ghost_batch)?
        .named(name))
}

/// F1 (Keskar et al.'s MNIST network): `784 → [Linear 512 → BN → ReLU] ×5 →
/// Linear 10`, Linears with bias.
///
/// Input `[N, 784]` or `[N, 1, 28, 28]` (flattened by the first Linear).
/// Parameter names: `fc1…fc6` (`.weight`, `.bias`), `bn1…bn5` (`.weight`
/// = γ, `.bias` = β).
///
/// # Errors
/// As the layers' constructors (a zero ghost batch size).
pub fn f1<B: TensorBackend + 'static>(b: &B, cfg: NetConfig) -> Result<Sequential<B>> {
    mlp(b, cfg, 784, &[512; 5], 10)
}

/// A fully connected network: `inputs → [Linear h → BN → ReLU]` for each
/// width `h` of `hidden`, then `Linear classes`; [`f1`] is
/// `mlp(b, cfg, 784, &[512; 5], 10)`. Names `fc1…`, `bn1…` as in [`f1`].
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::networks::{mlp, NetConfig};
/// let net = mlp(&Reference::<f32>::new(), NetConfig::seeded(1), 64, &[32], 10)?;
/// assert_eq!(net.num_params(), 64 * 32 + 32 + 2 * 32 + 32 * 10 + 10);
/// # Ok::<(), smoothout::Error>(())
/// ```
///
/// # Errors
/// As the layers' constructors (a zero width or ghost batch size).
pub fn mlp<B: TensorBackend + 'static>(
    b: &B,
    cfg: NetConfig,
    inputs: usize,
    hidden: &[usize],
    classes: usize,
) -> Result<Sequential<B>> {
    let mut rng = seeded_rng(cfg.seed);
    let mut net = Sequential::new();
    let mut fan_in = inputs;
    for (i, &width) in hidden.iter().enumerate() {
        let i = i + 1;
        net.push(
            "",
            Linear::new(b, fan_in, width, rng.next_u64())?.named(format!("fc{i}")),
        );
        net.push("", bn(b, width, cfg, &format!("bn{i}"))?);
        net.push("", Relu::new());
        fan_in = width;
    }
    let last = hidden.len() + 1;
    net.push(
        "",
        Linear::new(b, fan_in, classes, rng.next_u64())?.named(format!("fc{last}")),
    );
    Ok(net)
}

/// The classifier head shared by C1/C3 and AlexNet-BN:
/// `[FC (no bias) → BN → ReLU → dropout 0.5] × 2 → FC`, with widths
/// `[input, hidden₁, hidden₂]` and PyTorch's `classifier.*` names.
fn classifier<B: TensorBackend + 'static>(
    net: &mut Sequential<B>,
    b: &B,
    cfg: NetConfig,
    rng: &mut impl RngCore,
    [input, h1, h2]: [usize; 3],
    classes: usize,
) -> Result<()> {
    for (stream, (fan_in, width, index)) in [(input, h1, 0), (h1, h2, 4)].into_iter().enumerate() {
        net.push(
            "",
            LinearNoBias::new(b, fan_in, width, rng.next_u64())?
                .named(format!("classifier.{index}")),
        );
        net.push("", bn(b, width, cfg, &format!("classifier.{}", index + 1))?);
        net.push("", Relu::new());
        net.push_dropout(Dropout::new(0.5, rng.next_u64())?.with_stream(stream as u64));
    }
    net.push(
        "",
        Linear::new(b, h2, classes, rng.next_u64())?.named("classifier.8"),
    );
    Ok(())
}

/// The shallow CIFAR network of Keskar et al. (C1 with `classes = 10`, C3
/// with `classes = 100`), as the SmoothOut authors wrote it
/// (`models/cifar_shallow.py` in wenwei202/smoothout):
///
/// ```text
/// features.0  conv 5×5, 3 → 64, padding 2, no bias      32×32 → 32×32
/// features.1  max-pool 3, stride 2, no padding          32×32 → 15×15
/// features.2  BatchNorm 64,  features.3 ReLU
/// features.4  conv 5×5, 64 → 64, padding 2, no bias     15×15 → 15×15
/// features.5  max-pool 3, stride 2                      15×15 → 7×7
/// features.6  BatchNorm 64,  features.7 ReLU
/// classifier.0  Linear 64·7·7 = 3136 → 384, no bias
/// classifier.1  BatchNorm 384, .2 ReLU, .3 dropout 0.5
/// classifier.4  Linear 384 → 192, no bias
/// classifier.5  BatchNorm 192, .6 ReLU, .7 dropout 0.5
/// classifier.8  Linear 192 → classes, with bias
/// ```
///
/// "Same" padding (2 for the 5×5 kernels) and un-padded pooling, as in the
/// authors' code; the layers before a BatchNorm have no bias. Input
/// `[N, 3, 32, 32]`. Parameter names follow PyTorch's module indices
/// (`features.0.weight`, `classifier.1.bias`, …).
///
/// # Errors
/// As the layers' constructors.
pub fn cifar_shallow<B: TensorBackend + 'static>(
    b: &B,
    classes: usize,
    cfg: NetConfig,
) -> Result<Sequential<B>> {
    let mut rng = seeded_rng(cfg.seed);
    let mut net = Sequential::new();
    net.push("", conv(b, (3, 64), (5, 1, 2), &mut rng, "features.0")?);
    net.push("", MaxPool2d::new(3, 2, 0));
    net.push("", bn(b, 64, cfg, "features.2")?);
    net.push("", Relu::new());
    net.push("", conv(b, (64, 64), (5, 1, 2), &mut rng, "features.4")?);
    net.push("", MaxPool2d::new(3, 2, 0));
    net.push("", bn(b, 64, cfg, "features.6")?);
    net.push("", Relu::new());
    classifier(&mut net, b, cfg, &mut rng, [64 * 7 * 7, 384, 192], classes)?;
    Ok(net)
}

/// C1: [`cifar_shallow`] with 10 classes (CIFAR-10).
///
/// # Errors
/// As [`cifar_shallow`].
pub fn c1<B: TensorBackend + 'static>(b: &B, cfg: NetConfig) -> Result<Sequential<B>> {
    cifar_shallow(b, 10, cfg)
}

/// C3: [`cifar_shallow`] with 100 classes (CIFAR-100).
///
/// # Errors
/// As [`cifar_shallow`].
pub fn c3<B: TensorBackend + 'static>(b: &B, cfg: NetConfig) -> Result<Sequential<B>> {
    cifar_shallow(b, 100, cfg)
}

/// A ResNet after its stem, from `channels` channels: stages of basic
/// blocks, `(filters, blocks, first stride)` each in `plan`, named
/// `layer1.0`, `layer1.1`, …; then global average pooling and the Linear
/// `fc` to `classes`.
fn stages_and_head<B: TensorBackend + 'static>(
    b: &B,
    net: &mut Sequential<B>,
    mut channels: usize,
    plan: &[(usize, usize, usize)],
    cfg: NetConfig,
    rng: &mut impl RngCore,
    classes: usize,
) -> Result<()> {
    for (s, &(filters, blocks, stride)) in plan.iter().enumerate() {
        for i in 0..blocks {
            let st = if i == 0 { stride } else { 1 };
            let block = BasicBlock::new(b, channels, filters, st, rng.next_u64())?
                .with_ghost_batch(cfg.ghost_batch)?;
            net.push(format!("layer{}.{i}", s + 1), block);
            channels = filters;
        }
    }
    net.push("", GlobalAvgPool::new());
    net.push(
        "",
        Linear::new(b, channels, classes, rng.next_u64())?.named("fc"),
    );
    Ok(())
}

/// He et al.'s CIFAR ResNet of depth `6n + 2`: a 3×3 convolution to 16
/// channels (no bias) with BN and ReLU, three stages of `n` basic blocks
/// with 16, 32 and 64 filters (the first block of stages 2 and 3 with
/// stride 2), global average pooling and a Linear to `classes`.
///
/// Shortcuts where the shape changes are 1×1 convolutions with BatchNorm
/// (He et al.'s option B, as [`BasicBlock`] builds them, and as
/// torchvision-style CIFAR ResNets do), not the zero-padding identity
/// (option A) of the paper's CIFAR experiments: this adds 2,752 parameters
/// to ResNet-44. Names: `conv1`, `bn1`, `layer{s}.{i}.…`, `fc`.
///
/// # Errors
/// [`Error::InvalidSetting`] named `"resnet depth"` unless `depth = 6n + 2`
/// with `n ≥ 1`; otherwise as the layers' constructors.
pub fn resnet_cifar<B: TensorBackend + 'static>(
    b: &B,
    depth: usize,
    classes: usize,
    cfg: NetConfig,
) -> Result<Sequential<B>> {
    if depth < 8 || !(depth - 2).is_multiple_of(6) {
        return Err(Error::InvalidSetting {
            name: "resnet depth",
            value: depth as f64,
            expected: "6n + 2 with n >= 1 (20, 32, 44, 56, 110, ...)",
        });
    }
    let n = (depth - 2) / 6;
    let mut rng = seeded_rng(cfg.seed);
    let mut net = Sequential::new();
    net.push("", conv(b, (3, 16), (3, 1, 1), &mut rng, "conv1")?);
    net.push("", bn(b, 16, cfg, "bn1")?);
    net.push("", Relu::new());
    stages_and_head(
        b,
        &mut net,
        16,
        &[(16, n, 1), (32, n, 2), (64, n, 2)],
        cfg,
        &mut rng,
        classes,
    )?;
    Ok(net)
}

/// ResNet-44 for CIFAR-10: [`resnet_cifar`] with depth 44 and 10 classes.
///
/// # Errors
/// As [`resnet_cifar`].
pub fn resnet44<B: TensorBackend + 'static>(b: &B, cfg: NetConfig) -> Result<Sequential<B>> {
    resnet_cifar(b, 44, 10, cfg)
}

/// ResNet-18 (He et al.'s ImageNet architecture): a stem (see [`Stem`]),
/// four stages of two basic blocks with 64, 128, 256 and 512 filters (the
/// first block of stages 2–4 with stride 2 and a 1×1 projection), global
/// average pooling and a Linear to `classes`. For CIFAR use
/// [`Stem::Cifar`] (3×3 stem, no max-pool; 32×32 inputs end at 4×4 before
/// the pool). Names: `conv1`, `bn1`, `layer{s}.{i}.…`, `fc`.
///
/// # Errors
/// As the layers' constructors.
pub fn resnet18<B: TensorBackend + 'static>(
    b: &B,
    classes: usize,
    stem: Stem,
    cfg: NetConfig,
) -> Result<Sequential<B>> {
    let mut rng = seeded_rng(cfg.seed);
    let mut net = Sequential::new();
    let (k, s, p) = match stem {
        Stem::Cifar => (3, 1, 1),
        Stem::ImageNet => (7, 2, 3),
    };
    net.push("", conv(b, (3, 64), (k, s, p), &mut rng, "conv1")?);
    net.push("", bn(b, 64, cfg, "bn1")?);
    net.push("", Relu::new());
    if stem == Stem::ImageNet {
        net.push("", MaxPool2d::new(3, 2, 1));
    }
    stages_and_head(
        b,
        &mut net,
        64,
        &[(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)],
        cfg,
        &mut rng,
        classes,
    )?;
    Ok(net)
}

/// Spatial size after AlexNet's feature extractor for `input × input`
/// images, or `None` if the input is too small.
#[must_use]
pub fn alexnet_feature_size(input: usize) -> Option<usize> {
    let conv = |n: usize, k: usize, s: usize, p: usize| -> Option<usize> {
        (n + 2 * p).checked_sub(k).map(|m| m / s + 1)
    };
    let n = conv(input, 11, 4, 2)?;
    let n = conv(n, 3, 2, 0)?;
    let n = conv(n, 3, 2, 0)?; // conv2 (5×5, padding 2) keeps the size
    conv(n, 3, 2, 0) // conv3–5 (3×3, padding 1) keep it
}

/// AlexNet with batch norm, as the SmoothOut authors wrote it
/// (`AlexNetOWT_BN` in `models/alexnet.py` of wenwei202/smoothout, after
/// Krizhevsky's "one weird trick" AlexNet), for `input × input` images
/// (224 in the authors' ImageNet runs, giving 6×6 features):
///
/// ```text
/// features.0   conv 11×11/4, 3 → 64, padding 2, no bias;  .1 max-pool 3/2;  .2 BN;  .3 ReLU
/// features.4   conv 5×5, 64 → 192, padding 2, no bias;    .5 max-pool 3/2;  .6 ReLU; .7 BN
/// features.8   conv 3×3, 192 → 384, padding 1, no bias;   .9 ReLU;  .10 BN
/// features.11  conv 3×3, 384 → 256, padding 1, no bias;   .12 ReLU; .13 BN
/// features.14  conv 3×3, 256 → 256, padding 1, no bias;   .15 max-pool 3/2; .16 ReLU; .17 BN
/// classifier.0 Linear 256·s·s → 4096, no bias; .1 BN; .2 ReLU; .3 dropout 0.5
/// classifier.4 Linear 4096 → 4096, no bias;    .5 BN; .6 ReLU; .7 dropout 0.5
/// classifier.8 Linear 4096 → classes
/// ```
///
/// The authors' code has no CIFAR AlexNet: its CIFAR "AlexNet" class is the
/// shallow network ([`cifar_shallow`]); `alexnetv2`/`alexnetv3` differ
/// only in dropout (0.2, 0.0) and training regime. The order ReLU → BN
/// after the later convolutions is theirs.
///
/// # Errors
/// [`Error::InvalidSetting`] named `"alexnet input size"` for inputs below
/// 63 pixels (no feature left); otherwise as the layers' constructors.
pub fn alexnet_bn<B: TensorBackend + 'static>(
    b: &B,
    classes: usize,
    input: usize,
    cfg: NetConfig,
) -> Result<Sequential<B>> {
    let s = alexnet_feature_size(input)
        .filter(|&s| s > 0)
        .ok_or(Error::InvalidSetting {
            name: "alexnet input size",
            value: input as f64,
            expected: "at least 63",
        })?;
    let mut rng = seeded_rng(cfg.seed);
    let mut net = Sequential::new();
    let mut push_conv = |net: &mut Sequential<B>, i: usize, channels, kernel| {
        net.push(
            "",
            conv(b, channels, kernel, &mut rng, format!("features.{i}"))?,
        );
        Ok::<_, Error>(())
    };
    push_conv(&mut net, 0, (3, 64), (11, 4, 2))?;
    net.push("", MaxPool2d::new(3, 2, 0));
    net.push("", bn(b, 64, cfg, "features.2")?);
    net.push("", Relu::new());
    push_conv(&mut net, 4, (64, 192), (5, 1, 2))?;
    net.push("", MaxPool2d::new(3, 2, 0));
    net.push("", Relu::new());
    net.push("", bn(b, 192, cfg, "features.7")?);
    push_conv(&mut net, 8, (192, 384), (3, 1, 1))?;
    net.push("", Relu::new());
    net.push("", bn(b, 384, cfg, "features.10")?);
    push_conv(&mut net, 11, (384, 256), (3, 1, 1))?;
    net.push("", Relu::new());
    net.push("", bn(b, 256, cfg, "features.13")?);
    push_conv(&mut net, 14, (256, 256), (3, 1, 1))?;
    net.push("", MaxPool2d::new(3, 2, 0));
    net.push("", Relu::new());
    net.push("", bn(b, 256, cfg, "features.17")?);
    classifier(
        &mut net,
        b,
        cfg,
        &mut rng,
        [256 * s * s, 4096, 4096],
        classes,
    )?;
    Ok(net)
}
