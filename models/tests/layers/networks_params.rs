//! Parameter counts of the paper's networks against published figures or
//! counts derived by hand from the reference architectures.
//!
//! All counts are of parameters only — weights, biases and BatchNorm's γ
//! and β — as PyTorch's `Module.parameters()` counts them. BatchNorm's
//! running mean and variance are buffers, not parameters: they are neither
//! listed in the specs nor counted. Every count is exact (integers).
//!
//! | network | ours | reference figure | source |
//! |---|---|---|---|
//! | F1 | 1,462,794 | computed: `(784·512 + 512) + 4·(512·512 + 512) + (512·10 + 10)` Linears + `5·2·512` BN | Keskar et al. 2017, Table 1 (architecture; no count published) |
//! | C1 | 1,388,490 | computed from the authors' `models/cifar_shallow.py` (wenwei202/smoothout), see [`c1_count`] | same file (no count published) |
//! | C3 | 1,405,860 | C1 with a 192 → 100 head | same file |
//! | ResNet-44 | 661,338 | "0.66M" | He et al. 2016, *Deep Residual Learning*, Table 6 (option A: 658,586, see below) |
//! | ResNet-18, 3×3 stem, 10 classes | 11,173,962 | 11,173,962 | the count widely published for kuangliu/pytorch-cifar's `ResNet18()` (e.g. its `torchsummary` output) |
//! | ResNet-18, ImageNet stem, 1000 classes | 11,689,512 | 11,689,512 | torchvision's `resnet18` model card ("num_params") |
//! | AlexNet-BN, 1000 classes, 224² | 61,110,184 | torchvision `alexnet` 61,100,840, less its 8 biases before a BN, plus 2·(channels) for the 7 BNs | torchvision model card; authors' `models/alexnet.py` |
//!
//! ResNet-44: He et al.'s 0.66M is for option A shortcuts (zero-padding
//! identity, no parameters), which gives 658,586; our [`BasicBlock`]
//! projections (option B: 1×1 conv + BN where the shape changes, as the
//! authors' and torchvision-style code use) add `16·32 + 2·32 + 32·64 +
//! 2·64 = 2,752`, giving 661,338. Both round to 0.66M.
//!
//! [`BasicBlock`]: smoothout_models::layers::BasicBlock

use smoothout::Reference;
use smoothout_cpu::Cpu;
use smoothout_models::layers::Layer;
use smoothout_models::networks::{
    alexnet_bn, alexnet_feature_size, c1, c3, f1, resnet18, resnet_cifar, NetConfig, Stem,
};
use std::collections::HashSet;

fn cpu() -> Cpu<f32> {
    Cpu::with_threads(4).unwrap()
}

fn unique_names(specs: &[smoothout::ParamSpec]) {
    let names: HashSet<_> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), specs.len(), "parameter names are unique");
}

#[test]
fn f1_count() {
    let net = f1(&Reference::<f32>::new(), NetConfig::default()).unwrap();
    let linears = (784 * 512 + 512) + 4 * (512 * 512 + 512) + (512 * 10 + 10);
    let bn = 5 * 2 * 512;
    assert_eq!(net.num_params(), linears + bn);
    assert_eq!(net.num_params(), 1_462_794);
    let specs = net.specs();
    unique_names(&specs);
    // perturbed: the six Linears' weights and biases, not BN's γ, β
    let perturbed: usize = specs.iter().filter(|s| s.perturbed).map(|s| s.len()).sum();
    assert_eq!(perturbed, linears);
    assert_eq!(specs.last().unwrap().name, "fc6.bias");
}

/// C1 as in the authors' `cifar_shallow.py`: convs and the two hidden
/// Linears without bias (each is followed by a BatchNorm), padding 2, pools
/// 3/2 without padding (32 → 15 → 7), so the first Linear takes 64·7·7.
#[test]
fn c1_count() {
    let b = cpu();
    let conv = 3 * 64 * 25 + 64 * 64 * 25;
    let fc = 64 * 7 * 7 * 384 + 384 * 192 + (192 * 10 + 10);
    let bn = 2 * (64 + 64 + 384 + 192);
    let net = c1(&b, NetConfig::default()).unwrap();
    assert_eq!(net.num_params(), conv + fc + bn);
    assert_eq!(net.num_params(), 1_388_490);
    let specs = net.specs();
    unique_names(&specs);
    let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "features.0.weight",
            "features.2.weight",
            "features.2.bias",
            "features.4.weight",
            "features.6.weight",
            "features.6.bias",
            "classifier.0.weight",
            "classifier.1.weight",
            "classifier.1.bias",
            "classifier.4.weight",
            "classifier.5.weight",
            "classifier.5.bias",
            "classifier.8.weight",
            "classifier.8.bias",
        ]
    );
    assert_eq!(specs[0].shape, [64, 3, 5, 5]);
    assert_eq!(specs[6].shape, [384, 3136]);
}

#[test]
fn c3_count() {
    let net = c3(&cpu(), NetConfig::default()).unwrap();
    assert_eq!(
        net.num_params(),
        1_388_490 - (192 * 10 + 10) + (192 * 100 + 100)
    );
    assert_eq!(net.num_params(), 1_405_860);
}

#[test]
fn resnet44_count() {
    let net = resnet_cifar(&cpu(), 44, 10, NetConfig::default()).unwrap();
    let specs = net.specs();
    unique_names(&specs);
    let n = net.num_params();
    assert_eq!(n, 661_338);
    // option A (no projection parameters) would give 658,586
    let projections = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64);
    assert_eq!(n - projections, 658_586);
    // He et al. 2016, Table 6: 0.66M
    assert_eq!((n as f64 / 1e4).round() / 100.0, 0.66);
    // 1 stem conv + 42 block convs + 2 projection convs + fc weight
    let weights = specs
        .iter()
        .filter(|s| {
            s.name.ends_with("conv1.weight")
                || s.name.ends_with("conv2.weight")
                || s.name.ends_with("shortcut.0.weight")
                || s.name == "fc.weight"
        })
        .count();
    assert_eq!(weights, 1 + 42 + 2 + 1);
    // the other depths of He et al.'s Table 6 (option A counts: less the
    // projections): ResNet-20 0.27M, ResNet-32 0.46M, ResNet-56 0.85M
    for (depth, m) in [(20, 0.27), (32, 0.46), (56, 0.85)] {
        let n = resnet_cifar(&cpu(), depth, 10, NetConfig::default())
            .unwrap()
            .num_params()
            - projections;
        assert_eq!((n as f64 / 1e4).round() / 100.0, m, "depth {depth}: {n}");
    }
}

#[test]
fn resnet18_cifar_count() {
    let net = resnet18(&cpu(), 10, Stem::Cifar, NetConfig::default()).unwrap();
    unique_names(&net.specs());
    assert_eq!(net.num_params(), 11_173_962);
    assert_eq!(net.specs()[0].shape, [64, 3, 3, 3]);
}

#[test]
fn resnet18_imagenet_count() {
    let net = resnet18(&cpu(), 1000, Stem::ImageNet, NetConfig::default()).unwrap();
    assert_eq!(net.num_params(), 11_689_512);
    assert_eq!(net.specs()[0].shape, [64, 3, 7, 7]);
}

#[test]
fn alexnet_count() {
    assert_eq!(alexnet_feature_size(224), Some(6));
    assert_eq!(alexnet_feature_size(63), Some(1));
    let net = alexnet_bn(&cpu(), 1000, 224, NetConfig::default()).unwrap();
    unique_names(&net.specs());
    // torchvision's AlexNet (same channels, biases everywhere, no BN)
    let torchvision = 61_100_840;
    let conv_biases = 64 + 192 + 384 + 256 + 256;
    let fc_biases = 4096 + 4096;
    let bn = 2 * (64 + 192 + 384 + 256 + 256 + 4096 + 4096);
    assert_eq!(net.num_params(), torchvision - conv_biases - fc_biases + bn);
    assert_eq!(net.num_params(), 61_110_184);
    let names: Vec<_> = net
        .specs()
        .into_iter()
        .filter(|s| !s.perturbed)
        .map(|s| s.name)
        .collect();
    // the BatchNorms sit where the authors' indices put them
    assert_eq!(
        names.iter().step_by(2).cloned().collect::<Vec<_>>(),
        [
            "features.2.weight",
            "features.7.weight",
            "features.10.weight",
            "features.13.weight",
            "features.17.weight",
            "classifier.1.weight",
            "classifier.5.weight"
        ]
    );
}
